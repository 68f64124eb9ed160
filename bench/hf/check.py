"""check.py -- does `mnemo export-hf` mean what Hugging Face's GPT2LMHeadModel would compute?

transformers is not packaged for Debian, so this rebuilds GPT2LMHeadModel's forward pass
(Conv1D weights as (in, out), gelu_new, LayerNorm eps from config.json, tied lm_head)
in PyTorch from the exported config.json and model.safetensors alone, scores a document,
and compares the negative log-likelihood with `mnemo eval --per-doc` on the checkpoint.

usage: python3 check.py HF_DIR LANG TEXT MNEMO_NLL_BITS
"""
import json
import math
import struct
import sys

import torch
import torch.nn.functional as F

hf_dir, lang, text, want = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
cfg = json.load(open(f"{hf_dir}/config.json"))
raw = open(f"{hf_dir}/model.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
w = {}
for name, e in header.items():
    if name == "__metadata__":
        continue
    b, en = e["data_offsets"]
    w[name] = torch.frombuffer(bytearray(raw[8 + n + b:8 + n + en]), dtype=torch.float32).view(e["shape"])

C, L, NH, eps = cfg["n_embd"], cfg["n_layer"], cfg["n_head"], cfg["layer_norm_epsilon"]
tag = cfg["mnemo_language_tags"][lang]
doc = [tag] + list(text.encode("utf-8")) + [256]
x_ids = torch.tensor(doc[:-1])
y_ids = torch.tensor(doc[1:])

def conv1d(x, p):  # transformers' Conv1D: x @ W + b with W (in, out)
    return x @ w[p + ".weight"] + w[p + ".bias"]

def ln(x, p):
    return F.layer_norm(x, (C,), w[p + ".weight"], w[p + ".bias"], eps)

T = len(x_ids)
h = w["transformer.wte.weight"][x_ids] + w["transformer.wpe.weight"][:T]
mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
for i in range(L):
    p = f"transformer.h.{i}"
    q, k, v = conv1d(ln(h, p + ".ln_1"), p + ".attn.c_attn").split(C, dim=-1)
    q, k, v = (t.view(T, NH, C // NH).transpose(0, 1) for t in (q, k, v))
    att = (q @ k.transpose(-1, -2)) / math.sqrt(C // NH)
    att = att.masked_fill(~mask, float("-inf")).softmax(-1)
    h = h + conv1d((att @ v).transpose(0, 1).reshape(T, C), p + ".attn.c_proj")
    m = conv1d(ln(h, p + ".ln_2"), p + ".mlp.c_fc")
    m = 0.5 * m * (1 + torch.tanh(math.sqrt(2 / math.pi) * (m + 0.044715 * m ** 3)))  # gelu_new
    h = h + conv1d(m, p + ".mlp.c_proj")
logits = ln(h, "transformer.ln_f") @ w["transformer.wte.weight"].t()  # tied lm_head
nll = F.cross_entropy(logits, y_ids, reduction="none") / math.log(2)
got = float(nll[y_ids < 256].sum())  # bytes only, as mnemo eval scores
rel = abs(got - want) / max(abs(want), 1e-9)
out = {"hf_semantics_nll_bits": got, "mnemo_nll_bits": want, "relative_difference": rel}
ok = rel < 1e-4
# where transformers itself is installed (the GPU machines), GPT2LMHeadModel loads the
# folder and its logits are compared with the rebuild's (and its NLL with mnemo's)
try:
    from transformers import GPT2LMHeadModel
except ImportError:
    GPT2LMHeadModel = None
if GPT2LMHeadModel is not None:
    model = GPT2LMHeadModel.from_pretrained(hf_dir).eval()
    with torch.no_grad():
        hf_logits = model(x_ids.unsqueeze(0)).logits[0].float()
    V = min(logits.shape[-1], hf_logits.shape[-1])
    lrel = float((hf_logits[:, :V] - logits[:, :V]).norm() / logits[:, :V].norm())
    hf_nll = float((F.cross_entropy(hf_logits[:, :V], y_ids, reduction="none") / math.log(2))[y_ids < 256].sum())
    out.update({"transformers_logits_relative_difference": lrel, "transformers_nll_bits": hf_nll})
    ok = ok and lrel < 1e-4 and abs(hf_nll - want) / max(abs(want), 1e-9) < 1e-4
print(json.dumps(out))
sys.exit(0 if ok else 1)
