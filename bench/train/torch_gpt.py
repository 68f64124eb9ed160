"""torch_gpt.py -- the same model, shapes and optimizer as `mnemo bench`, in PyTorch (eager).

GPT-2 family: pre-LayerNorm blocks (eps 1e-5), GELU tanh, learned positions, tied
embeddings, AdamW (betas 0.9/0.95, weight decay 0.1 on matrices), gradient clipping at 1.
Prints one JSON line: tokens/s of a full training step (forward, backward, clip, update).

usage: python3 torch_gpt.py L C NH T B VOCAB STEPS THREADS [cpu|cuda [fp32|tf32|bf16]]
On cuda every step is waited for (torch.cuda.synchronize) before the clock is read, as
`mnemo bench --device cuda` does.
"""
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

L, C, NH, T, B, V, STEPS, THREADS = map(int, sys.argv[1:9])
DEVICE = sys.argv[9] if len(sys.argv) > 9 else "cpu"
MATH = sys.argv[10] if len(sys.argv) > 10 else "fp32"
torch.set_num_threads(THREADS)
torch.manual_seed(0)
if DEVICE == "cuda":
    torch.backends.cuda.matmul.allow_tf32 = MATH == "tf32"
    torch.backends.cudnn.allow_tf32 = MATH == "tf32"


def wait():
    if DEVICE == "cuda":
        torch.cuda.synchronize()


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(C, eps=1e-5)
        self.c_attn = nn.Linear(C, 3 * C)
        self.c_proj = nn.Linear(C, C)
        self.ln_2 = nn.LayerNorm(C, eps=1e-5)
        self.c_fc = nn.Linear(C, 4 * C)
        self.mlp_proj = nn.Linear(4 * C, C)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q = q.view(b, t, NH, c // NH).transpose(1, 2)
        k = k.view(b, t, NH, c // NH).transpose(1, 2)
        v = v.view(b, t, NH, c // NH).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(c // NH))
        att = att.masked_fill(self.mask[:, :, :t, :t] == 0, float("-inf"))
        y = F.softmax(att, dim=-1) @ v
        x = x + self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(T, C)
        self.h = nn.ModuleList(Block() for _ in range(L))
        mask = torch.tril(torch.ones(T, T)).view(1, 1, T, T)
        for blk in self.h:
            blk.register_buffer("mask", mask)
        self.ln_f = nn.LayerNorm(C, eps=1e-5)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for blk in self.h:
            x = blk(x)
        logits = self.ln_f(x) @ self.wte.weight.t()  # tied embeddings
        return F.cross_entropy(logits.view(-1, V), targets.view(-1))


model = GPT().to(DEVICE)
params = sum(p.numel() for p in model.parameters())
decay = [p for p in model.parameters() if p.dim() == 2]
no_decay = [p for p in model.parameters() if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                         {"params": no_decay, "weight_decay": 0.0}], lr=1e-4, betas=(0.9, 0.95))
x = torch.randint(0, 256, (B, T), device=DEVICE)
y = torch.randint(0, 256, (B, T), device=DEVICE)
times = []
for step in range(STEPS + 2):
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    if MATH == "bf16":  # mixed precision: bf16 products, fp32 master weights
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
                  "device": DEVICE, "math": MATH,
                  "params": params, "ms_per_step": mean * 1e3, "tokens_per_s": B * T / mean,
                  "best_ms_per_step": min(times) * 1e3}))
