"""torch_llama.py -- the Llama family (Llama, Qwen2) in PyTorch eager: the peer of `mnemo bench
--checkpoint` on an imported model, same shapes and optimizer.

RMSNorm, rotary embeddings (rotate-half), grouped-query attention (key and value heads repeated
for their query heads), SwiGLU MLP, biases on q, k, v for qwen2, tied or untied head; AdamW
(betas 0.9/0.95, weight decay 0.1 on matrices), gradient clipping at 1.  Prints one JSON line:
tokens/s of a full training step (forward, backward, clip, update).

usage: python3 torch_llama.py llama|qwen2 L C NH KVH FF VOCAB TIED T B STEPS THREADS
       [cpu|cuda [fp32|tf32|bf16]]
"""
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ARCH = sys.argv[1]
L, C, NH, KVH, FF, V, TIED, T, B, STEPS, THREADS = map(int, sys.argv[2:13])
DEVICE = sys.argv[13] if len(sys.argv) > 13 else "cpu"
MATH = sys.argv[14] if len(sys.argv) > 14 else "fp32"
HD = C // NH
torch.set_num_threads(THREADS)
torch.manual_seed(0)
if DEVICE == "cuda":
    torch.backends.cuda.matmul.allow_tf32 = MATH == "tf32"


def wait():
    if DEVICE == "cuda":
        torch.cuda.synchronize()


class RMSNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(C))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


def rotate(x, cos, sin):
    h = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., h:], x[..., :h]), dim=-1) * sin


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn_norm = RMSNorm()
        bias = ARCH == "qwen2"
        self.q = nn.Linear(C, C, bias=bias)
        self.k = nn.Linear(C, KVH * HD, bias=bias)
        self.v = nn.Linear(C, KVH * HD, bias=bias)
        self.o = nn.Linear(C, C, bias=False)
        self.mlp_norm = RMSNorm()
        self.gate = nn.Linear(C, FF, bias=False)
        self.up = nn.Linear(C, FF, bias=False)
        self.down = nn.Linear(FF, C, bias=False)

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        h = self.attn_norm(x)
        q = self.q(h).view(b, t, NH, HD).transpose(1, 2)
        k = self.k(h).view(b, t, KVH, HD).transpose(1, 2)
        v = self.v(h).view(b, t, KVH, HD).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        k = k.repeat_interleave(NH // KVH, dim=1)
        v = v.repeat_interleave(NH // KVH, dim=1)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(HD))
        att = att.masked_fill(mask[:t, :t] == 0, float("-inf"))
        y = (F.softmax(att, dim=-1) @ v).transpose(1, 2).reshape(b, t, C)
        x = x + self.o(y)
        h = self.mlp_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(V, C)
        self.layers = nn.ModuleList(Block() for _ in range(L))
        self.norm = RMSNorm()
        self.head = None if TIED else nn.Linear(C, V, bias=False)
        freq = 1.0 / (10000.0 ** (torch.arange(0, HD, 2).float() / HD))
        ang = torch.outer(torch.arange(T).float(), freq)
        ang = torch.cat((ang, ang), dim=-1)
        self.register_buffer("cos", ang.cos())
        self.register_buffer("sin", ang.sin())
        self.register_buffer("mask", torch.tril(torch.ones(T, T)))

    def forward(self, idx, targets):
        x = self.embed(idx)
        t = idx.shape[1]
        for blk in self.layers:
            x = blk(x, self.cos[:t], self.sin[:t], self.mask)
        x = self.norm(x)
        logits = x @ self.embed.weight.t() if self.head is None else self.head(x)
        return F.cross_entropy(logits.view(-1, V), targets.view(-1))


model = Model().to(DEVICE)
params = sum(p.numel() for p in model.parameters())
decay = [p for p in model.parameters() if p.dim() == 2]
no_decay = [p for p in model.parameters() if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                         {"params": no_decay, "weight_decay": 0.0}], lr=1e-4, betas=(0.9, 0.95))
x = torch.randint(0, V, (B, T), device=DEVICE)
y = torch.randint(0, V, (B, T), device=DEVICE)
times = []
for step in range(STEPS + 2):
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    if MATH == "bf16":
        with torch.autocast(DEVICE, dtype=torch.bfloat16):
            loss = model(x, y)
    else:
        loss = model(x, y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    wait()
    if step >= 2:
        times.append(time.perf_counter() - t0)
mean = sum(times) / len(times)
print(json.dumps({"impl": "pytorch", "version": torch.__version__, "threads": THREADS,
                  "device": DEVICE, "math": MATH, "arch": ARCH,
                  "params": params, "ms_per_step": mean * 1e3, "tokens_per_s": B * T / mean,
                  "best_ms_per_step": min(times) * 1e3}))
