#!/usr/bin/env python3
"""hf_ref.py -- an independent PyTorch reference for `mnemo import-hf` and `mnemo export-hf`.

transformers is not packaged for Debian and no weights can be downloaded, so this writes tiny
random models in Hugging Face's exact layout and rebuilds the forward passes of
GPT2LMHeadModel, LlamaForCausalLM and Qwen2ForCausalLM from their config.json and safetensors
alone, following transformers' modeling_gpt2.py, modeling_llama.py, modular_qwen2.py and
modeling_rope_utils.py (_compute_default_rope_parameters, _compute_llama3_parameters).  It
shares no code with mnemo: safetensors are read and written here, byte by byte.

  hf_ref.py make --arch gpt2|llama|qwen2 --out DIR [--dtype f32|bf16|f16] [--shards N]
           [--untied] [--rope-scaling llama3] [--vocab V] [--layers L] [--width C]
           [--heads NH] [--kv-heads KVH] [--ff F] [--positions P] [--seed S]
           [--head-dim HD] [--tokenizer FILE] [--prefix-less] [--config-style 4|5]
      a model folder as save_pretrained writes it: config.json (transformers 4.x keys by
      default; --config-style 5 writes transformers 5's `rope_parameters` and `dtype`),
      model.safetensors or model-0000k-of-0000N.safetensors with model.safetensors.index.json;
      random seeded weights (norm weights near 1, biases nonzero), rounded to --dtype.
      --prefix-less: GPT-2's tensors without "transformer." and with the causal-mask buffers
      h.N.attn.bias, as the original gpt2 repository's file has them.  --head-dim: Llama's
      head_dim other than width / heads (the projections NH * HD wide).  --tokenizer copies a
      tokenizer.json and writes a tokenizer_config.json; the vocabulary is then its size.
  hf_ref.py tokenizer --family gpt2|llama3|qwen2 --vocab N --out FILE
      a byte-level BPE tokenizer.json of N ids in that family's layout (bytes in GPT-2's
      order, merges learned from a fixed text, the family's special tokens last)
  hf_ref.py to-llmc --dir DIR --out FILE [--padded-vocab VP]
      a GPT-2 folder as llm.c's fp32 checkpoint (for `mnemo import-llmc`, which exists today:
      a way into mnemo for random weights that does not go through import-hf)
  hf_ref.py forward --dir DIR --ids 1,2,3 [--out FILE] [--compare FILE --tol T]
      the logits (T rows of vocab_size) of the model in DIR as little-endian float32;
      every dtype read is computed in float32.  --compare: FILE's logits (T rows, each at
      least vocab_size wide: mnemo pads its vocabulary) must agree with them in their first
      vocab_size columns, as compare-logits measures (one process instead of three)
  hf_ref.py compare-tensors DIR_A DIR_B [--except-rows NAME:FROM:TO]... [--canonical-gpt2]
      the same tensor names, dtypes, shapes and bytes (single file or sharded, either side);
      --except-rows leaves rows FROM..TO-1 of a 2-D tensor out on both sides (where a side
      has them), the other rows still compared; --canonical-gpt2 reads bare GPT-2 names as
      "transformer." ones and leaves out the h.N.attn.bias / masked_bias buffers
  hf_ref.py compare-logits A B --tol T [--rows R --cols V]
      max |a - b| / max(1, max |b|) below T (printed); --rows/--cols: compare the first V
      columns of R rows when the files' rows are of different widths (a padded vocabulary)
  hf_ref.py selftest
      unit checks of the reference itself (attention, rotary, llama3 scaling, dtypes, files)

Exit status: 0 agreement, 1 a difference (named on stderr), 2 bad usage or unreadable input.
"""
import argparse
import json
import math
import os
import re
import shutil
import struct
import sys
import tempfile

import torch
import torch.nn.functional as F

torch.set_grad_enabled(False)

# ---------------------------------------------------------------- safetensors

# safetensors dtype names -> (torch dtype, bytes)
ST_DTYPES = {
    "F64": (torch.float64, 8), "F32": (torch.float32, 4), "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2), "I64": (torch.int64, 8), "I32": (torch.int32, 4),
    "I16": (torch.int16, 2), "I8": (torch.int8, 1), "U8": (torch.uint8, 1), "BOOL": (torch.bool, 1),
}
DTYPE_ARG = {"f32": "F32", "bf16": "BF16", "f16": "F16"}
TORCH_DTYPE_NAME = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}


class Bad(Exception):
    """input that cannot be read (exit 2)"""


class Tensor:
    """one stored tensor: its dtype name, shape and raw little-endian bytes"""

    def __init__(self, dtype, shape, data, where=""):
        self.dtype, self.shape, self.data, self.where = dtype, list(shape), data, where

    def numel(self):
        n = 1
        for s in self.shape:
            n *= s
        return n

    def to_float(self):
        if self.dtype not in ("F32", "F16", "BF16"):
            raise Bad(f"{self.where}: dtype {self.dtype} is not a floating weight this "
                      "reference reads")
        td = ST_DTYPES[self.dtype][0]
        if not self.data:
            return torch.zeros(self.shape, dtype=torch.float32)
        t = torch.frombuffer(bytearray(self.data), dtype=td)
        return t.reshape(self.shape).to(torch.float32)


def tensor_bytes(t):
    """the raw little-endian bytes of a torch tensor (this machine is little-endian)"""
    assert sys.byteorder == "little"
    t = t.contiguous()
    if t.numel() == 0:
        return b""
    return t.view(torch.uint8).numpy().tobytes() if t.dtype != torch.bool else \
        t.to(torch.uint8).numpy().tobytes()


def from_torch(t, dtype):
    """a Tensor of dtype name from a float tensor (rounded to nearest even, as .to() does)"""
    return Tensor(dtype, list(t.shape), tensor_bytes(t.to(ST_DTYPES[dtype][0])))


def st_read(path):
    """name -> Tensor, and the __metadata__, of one safetensors file, every field checked"""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise Bad(f"{path}: shorter than a safetensors header")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise Bad(f"{path}: header length {n} past the end of the file")
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise Bad(f"{path}: the header is not JSON: {e}")
    data = raw[8 + n:]
    meta = header.pop("__metadata__", None)
    out, spans = {}, []
    for name, e in header.items():
        try:
            dtype, shape, (b, en) = e["dtype"], e["shape"], e["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise Bad(f"{path}: tensor {name}: needs dtype, shape and data_offsets")
        if dtype not in ST_DTYPES:
            raise Bad(f"{path}: tensor {name}: unknown dtype {dtype}")
        t = Tensor(dtype, shape, b"", f"{path}:{name}")
        if not (0 <= b <= en <= len(data)) or en - b != t.numel() * ST_DTYPES[dtype][1]:
            raise Bad(f"{path}: tensor {name}: data_offsets [{b}, {en}] do not fit {dtype} {shape}")
        t.data = data[b:en]
        out[name] = t
        spans.append((b, en, name))
    spans.sort()
    end = 0
    for b, en, name in spans:  # the data must be tiled: no overlap, no hole
        if b != end:
            raise Bad(f"{path}: tensor {name} starts at {b}, not at {end}")
        end = en
    if end != len(data):
        raise Bad(f"{path}: {len(data) - end} bytes after the last tensor")
    return out, meta


def st_write(path, tensors, metadata=None):
    """tensors (name -> Tensor) as the safetensors library writes them: the header JSON padded
    with spaces to a multiple of 8 bytes, the data ordered by alignment then name"""
    order = sorted(tensors, key=lambda k: (-ST_DTYPES[tensors[k].dtype][1], k))
    header, off = {}, 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for k in order:
        t = tensors[k]
        header[k] = {"dtype": t.dtype, "shape": t.shape, "data_offsets": [off, off + len(t.data)]}
        off += len(t.data)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for k in order:
            f.write(tensors[k].data)


def load_dir(d):
    """every tensor of a model folder (model.safetensors, or the shards its index names)"""
    index = os.path.join(d, "model.safetensors.index.json")
    single = os.path.join(d, "model.safetensors")
    if os.path.exists(index):
        with open(index) as f:
            idx = json.load(f)
        wm = idx.get("weight_map")
        if not isinstance(wm, dict) or not wm:
            raise Bad(f"{index}: no weight_map")
        out, total = {}, 0
        for fname in sorted(set(wm.values())):
            got, _ = st_read(os.path.join(d, fname))
            for name, t in got.items():
                if wm.get(name) != fname:
                    raise Bad(f"{index}: {name} is in {fname}, the index says {wm.get(name)}")
                if name in out:
                    raise Bad(f"{d}: {name} is in two shards")
                out[name] = t
                total += len(t.data)
        missing = sorted(set(wm) - set(out))
        if missing:
            raise Bad(f"{index}: {missing[0]} is in no shard")
        ts = idx.get("metadata", {}).get("total_size")
        if ts is not None and ts != total:
            raise Bad(f"{index}: total_size {ts}, the shards hold {total} bytes")
        return out
    if os.path.exists(single):
        return st_read(single)[0]
    raise Bad(f"{d}: neither model.safetensors nor model.safetensors.index.json")


def write_dir(d, tensors, shards):
    """tensors into d: one model.safetensors, or `shards` files and the index save_pretrained
    writes (tensors in name order, split into runs of about equal bytes)"""
    meta = {"format": "pt"}
    for f in os.listdir(d):  # what an earlier write left would be read instead
        if re.fullmatch(r"model(-\d+-of-\d+)?\.safetensors(\.index\.json)?", f):
            os.remove(os.path.join(d, f))
    if shards <= 1:
        st_write(os.path.join(d, "model.safetensors"), tensors, meta)
        return
    names = sorted(tensors, key=natural_key)
    total = sum(len(tensors[k].data) for k in names)
    groups, acc, cur = [[] for _ in range(shards)], 0, 0
    for k in names:  # the k-th shard takes what falls in its share of the bytes
        while cur < shards - 1 and acc >= total * (cur + 1) / shards:
            cur += 1
        groups[cur].append(k)
        acc += len(tensors[k].data)
    if any(not g for g in groups):
        raise Bad(f"cannot split {len(names)} tensors into {shards} non-empty shards")
    wm = {}
    for i, g in enumerate(groups):
        fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        st_write(os.path.join(d, fname), {k: tensors[k] for k in g}, meta)
        for k in g:
            wm[k] = fname
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(wm.items()))},
                  f, indent=2, sort_keys=True)
        f.write("\n")


def natural_key(name):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


# ---------------------------------------------------------------- tokenizers

def bytes_to_unicode():
    """GPT-2's byte -> printable character map, in its order (the order of GPT-2's ids)"""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [(b, chr(c)) for b, c in zip(bs, cs)]


SPLIT_REGEX = {
    "llama3": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
}
SPECIALS = {"gpt2": ["<|endoftext|>"], "llama3": ["<|begin_of_text|>", "<|end_of_text|>"],
            "qwen2": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]}
# bos and eos of each family's config.json, as indexes into SPECIALS
BOS_EOS = {"gpt2": (0, 0), "llama3": (0, 1), "qwen2": (0, 0)}
MERGE_TEXT = ("All human beings are born free and equal in dignity and rights. They are endowed "
              "with reason and conscience and should act towards one another in a spirit of "
              "brotherhood. Todos los seres humanos nacen libres e iguales en dignidad y derechos. "
              "Watu wote wamezaliwa huru, hadhi na haki zao ni sawa. ") * 3


def learn_merges(n):
    """n merges by the plain BPE rule over MERGE_TEXT's words (frequency, then first seen)"""
    enc = dict(bytes_to_unicode())
    words = {}
    for w in re.findall(r" ?[A-Za-z]+| ?[^\sA-Za-z]+|\s+", MERGE_TEXT):
        key = tuple(enc[b] for b in w.encode("utf-8"))
        words[key] = words.get(key, 0) + 1
    merges = []
    while len(merges) < n:
        pairs = {}
        for w, c in words.items():
            for p in zip(w, w[1:]):
                pairs[p] = pairs.get(p, 0) + c
        if not pairs:
            raise Bad(f"the merge text has room for {len(merges)} merges, not {n}")
        best = max(pairs.items(), key=lambda kv: kv[1])[0]  # first of the most frequent
        merges.append(best)
        new = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] = new.get(tuple(out), 0) + c
        words = new
    return merges


def make_tokenizer(family, vocab):
    """a tokenizer.json of `vocab` ids: 256 bytes, merges, then the family's special tokens"""
    specials = SPECIALS[family]
    nmerge = vocab - 256 - len(specials)
    if nmerge < 0:
        raise Bad(f"a {family} tokenizer needs at least {256 + len(specials)} ids")
    v = {c: i for i, (_, c) in enumerate(bytes_to_unicode())}
    merges = learn_merges(nmerge)
    for a, b in merges:
        if a + b in v:
            raise Bad(f"merge {a!r} {b!r} makes a token twice")
        v[a + b] = len(v)
    added = [{"id": len(v) + i, "content": s, "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True}
             for i, s in enumerate(specials)]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                  "use_regex": True}
    if family == "gpt2":
        pre, norm = byte_level, None
        post, dec = dict(byte_level), dict(byte_level)
    else:
        pre = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": SPLIT_REGEX[family]}, "behavior": "Isolated",
             "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": family == "llama3",
             "use_regex": False}]}
        norm = {"type": "NFC"} if family == "qwen2" else None
        bl = {"type": "ByteLevel", "add_prefix_space": family == "llama3",
              "trim_offsets": family == "llama3", "use_regex": family == "llama3"}
        post, dec = dict(bl), dict(bl)
    model = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
             "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
             "ignore_merges": family == "llama3", "vocab": v,
             # GPT-2 and Llama 3 spell merges "a b"; Qwen's newer files as pairs
             "merges": [[a, b] for a, b in merges] if family == "qwen2" else
             [f"{a} {b}" for a, b in merges]}
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
            "normalizer": norm, "pre_tokenizer": pre, "post_processor": post, "decoder": dec,
            "model": model}


def tokenizer_size(tok):
    ids = list(tok["model"]["vocab"].values()) + [a["id"] for a in tok.get("added_tokens", [])]
    return max(ids) + 1


def tokenizer_family(tok):
    contents = [a["content"] for a in tok.get("added_tokens", [])]
    for fam in ("llama3", "qwen2", "gpt2"):
        if all(s in contents for s in SPECIALS[fam]):
            return fam
    return None


# ---------------------------------------------------------------- make

DEFAULTS = {  # layers, width, heads, kv heads, ff, positions, vocab
    "gpt2": dict(layers=2, width=64, heads=4, kv_heads=4, ff=256, positions=64, vocab=300),
    "llama": dict(layers=2, width=64, heads=4, kv_heads=2, ff=160, positions=128, vocab=300),
    "qwen2": dict(layers=2, width=64, heads=4, kv_heads=2, ff=176, positions=128, vocab=300),
}
ARCH = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}
LLAMA3 = dict(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
              original_max_position_embeddings=64)
TRANSFORMERS_VERSION = {4: "4.46.3", 5: "5.0.0"}


def model_config(a, bos, eos):
    """config.json as PretrainedConfig.save_pretrained writes it for the class: every key of
    the class (model-specific keys always; shared ones where they differ from the base
    defaults), sorted, indented by 2"""
    dt = TORCH_DTYPE_NAME[DTYPE_ARG[a.dtype]]
    c = {"architectures": [ARCH[a.arch]], "model_type": a.arch, "vocab_size": a.vocab,
         "bos_token_id": bos, "eos_token_id": eos,
         "transformers_version": TRANSFORMERS_VERSION[a.config_style]}
    c["dtype" if a.config_style >= 5 else "torch_dtype"] = dt
    if a.arch == "gpt2":
        # GPT2Config: tie_word_embeddings True is the base default too, so it is not written
        c.update({"activation_function": "gelu_new", "attn_pdrop": 0.1, "embd_pdrop": 0.1,
                  "initializer_range": 0.02, "layer_norm_epsilon": 1e-05, "n_ctx": a.positions,
                  "n_embd": a.width, "n_head": a.heads,
                  "n_inner": None if a.ff == 4 * a.width else a.ff, "n_layer": a.layers,
                  "n_positions": a.positions, "reorder_and_upcast_attn": False,
                  "resid_pdrop": 0.1, "scale_attn_by_inverse_layer_idx": False,
                  "scale_attn_weights": True, "summary_activation": None,
                  "summary_first_dropout": 0.1, "summary_proj_to_labels": True,
                  "summary_type": "cls_index", "summary_use_proj": True, "use_cache": True})
        if a.untied:
            c["tie_word_embeddings"] = False
        return c
    theta = 500000.0 if a.rope_scaling == "llama3" else 10000.0
    c.update({"attention_dropout": 0.0, "hidden_act": "silu", "hidden_size": a.width,
              "initializer_range": 0.02, "intermediate_size": a.ff,
              "max_position_embeddings": a.positions, "num_attention_heads": a.heads,
              "num_hidden_layers": a.layers, "num_key_value_heads": a.kv_heads,
              "rms_norm_eps": 1e-05 if a.arch == "llama" else 1e-06,
              "tie_word_embeddings": not a.untied, "use_cache": True})
    if a.arch == "llama":
        c.update({"attention_bias": False, "head_dim": a.head_dim, "mlp_bias": False,
                  "pretraining_tp": 1})
    else:
        c.update({"max_window_layers": a.layers, "sliding_window": None,
                  "use_sliding_window": False})
        if a.config_style >= 5:
            c["layer_types"] = ["full_attention"] * a.layers
    scaling = dict(LLAMA3, rope_type="llama3") if a.rope_scaling == "llama3" else None
    if a.config_style >= 5:
        c["rope_parameters"] = dict(scaling or {"rope_type": "default"}, rope_theta=theta)
    else:
        c["rope_scaling"] = scaling
        c["rope_theta"] = theta
    return c


def model_tensors(a):
    """name -> float32 tensor of a random model of that config, in Hugging Face's names"""
    g = torch.Generator().manual_seed(a.seed)

    def normal(*shape, std=1.0):
        return torch.randn(*shape, generator=g) * std

    def linear(out_f, in_f):  # nn.Linear: (out, in)
        return normal(out_f, in_f, std=1.0 / math.sqrt(in_f))

    def norm_w(n):
        return 1.0 + normal(n, std=0.1)

    def bias(n):
        return normal(n, std=0.1)

    C, V, L = a.width, a.vocab, a.layers
    w = {}
    if a.arch == "gpt2":
        p = "" if a.prefix_less else "transformer."
        w[p + "wte.weight"] = normal(V, C, std=0.5)
        w[p + "wpe.weight"] = normal(a.positions, C, std=0.2)
        for i in range(L):
            h = f"{p}h.{i}."
            w[h + "ln_1.weight"], w[h + "ln_1.bias"] = norm_w(C), bias(C)
            w[h + "attn.c_attn.weight"] = linear(3 * C, C).t().contiguous()  # Conv1D: (in, out)
            w[h + "attn.c_attn.bias"] = bias(3 * C)
            w[h + "attn.c_proj.weight"] = linear(C, C).t().contiguous()
            w[h + "attn.c_proj.bias"] = bias(C)
            w[h + "ln_2.weight"], w[h + "ln_2.bias"] = norm_w(C), bias(C)
            w[h + "mlp.c_fc.weight"] = linear(a.ff, C).t().contiguous()
            w[h + "mlp.c_fc.bias"] = bias(a.ff)
            w[h + "mlp.c_proj.weight"] = linear(C, a.ff).t().contiguous()
            w[h + "mlp.c_proj.bias"] = bias(C)
            if a.prefix_less:  # the old persistent causal-mask buffer
                w[h + "attn.bias"] = torch.tril(torch.ones(a.positions, a.positions)).view(
                    1, 1, a.positions, a.positions)
        w[p + "ln_f.weight"], w[p + "ln_f.bias"] = norm_w(C), bias(C)
        if a.untied:
            w["lm_head.weight"] = normal(V, C, std=0.5)
        return w
    hd = a.head_dim
    w["model.embed_tokens.weight"] = normal(V, C, std=0.5)
    for i in range(L):
        h = f"model.layers.{i}."
        w[h + "input_layernorm.weight"] = norm_w(C)
        w[h + "self_attn.q_proj.weight"] = linear(a.heads * hd, C)
        w[h + "self_attn.k_proj.weight"] = linear(a.kv_heads * hd, C)
        w[h + "self_attn.v_proj.weight"] = linear(a.kv_heads * hd, C)
        if a.arch == "qwen2":
            w[h + "self_attn.q_proj.bias"] = bias(a.heads * hd)
            w[h + "self_attn.k_proj.bias"] = bias(a.kv_heads * hd)
            w[h + "self_attn.v_proj.bias"] = bias(a.kv_heads * hd)
        w[h + "self_attn.o_proj.weight"] = linear(C, a.heads * hd)
        w[h + "post_attention_layernorm.weight"] = norm_w(C)
        w[h + "mlp.gate_proj.weight"] = linear(a.ff, C)
        w[h + "mlp.up_proj.weight"] = linear(a.ff, C)
        w[h + "mlp.down_proj.weight"] = linear(C, a.ff)
    w["model.norm.weight"] = norm_w(C)
    if a.untied:
        w["lm_head.weight"] = normal(V, C, std=0.5)
    return w


def cmd_make(a):
    d = DEFAULTS[a.arch]
    for k, v in d.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if a.arch == "gpt2":
        if a.kv_heads != a.heads:
            raise Bad("GPT-2 has no grouped-query attention (--kv-heads)")
        if a.rope_scaling:
            raise Bad("GPT-2 has no rotary embeddings (--rope-scaling)")
    elif a.prefix_less:
        raise Bad("--prefix-less is GPT-2's")
    if a.head_dim is None:
        a.head_dim = a.width // a.heads
    elif a.arch != "llama":
        raise Bad("--head-dim is Llama's (LlamaConfig.head_dim)")
    if a.width % a.heads or a.heads % a.kv_heads:
        raise Bad("the width must be a multiple of the heads, the heads of the kv heads")
    if a.rope_scaling == "llama3" and a.positions <= LLAMA3["original_max_position_embeddings"]:
        raise Bad("llama3 scaling wants --positions above its original 64")
    tok = None
    if a.tokenizer:
        with open(a.tokenizer) as f:
            tok = json.load(f)
        if a.vocab_given is None:
            a.vocab = tokenizer_size(tok)
        elif a.vocab < tokenizer_size(tok):
            raise Bad(f"--vocab {a.vocab} is smaller than the tokenizer's "
                      f"{tokenizer_size(tok)} ids")
    fam = tok and tokenizer_family(tok)
    if fam:
        base = tokenizer_size(tok) - len(SPECIALS[fam])
        bos, eos = (base + i for i in BOS_EOS[fam])
    else:
        bos, eos = (a.vocab - 1, a.vocab - 1) if a.arch != "llama" else (a.vocab - 2, a.vocab - 1)
    os.makedirs(a.out, exist_ok=True)
    cfg = model_config(a, bos, eos)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    dt = DTYPE_ARG[a.dtype]
    tensors = {k: from_torch(v, dt) for k, v in model_tensors(a).items()}
    write_dir(a.out, tensors, a.shards)
    if tok is not None:
        shutil.copyfile(a.tokenizer, os.path.join(a.out, "tokenizer.json"))
        specials = {str(t["id"]): {k: t[k] for k in t if k != "id"}
                    for t in tok.get("added_tokens", [])}
        tc = {"added_tokens_decoder": specials, "clean_up_tokenization_spaces": False,
              "model_max_length": a.positions, "tokenizer_class": "PreTrainedTokenizerFast"}
        if fam:
            tc["bos_token"] = SPECIALS[fam][BOS_EOS[fam][0]]
            tc["eos_token"] = SPECIALS[fam][BOS_EOS[fam][1]]
        with open(os.path.join(a.out, "tokenizer_config.json"), "w") as f:
            json.dump(tc, f, indent=2, sort_keys=True)
            f.write("\n")
    print(json.dumps({"made": a.out, "arch": ARCH[a.arch], "vocab_size": a.vocab, "dtype": dt,
                      "tensors": len(tensors), "shards": max(a.shards, 1)}))
    return 0


def cmd_tokenizer(a):
    tok = make_tokenizer(a.family, a.vocab)
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, indent=2)
        f.write("\n")
    return 0


# ---------------------------------------------------------------- the forward passes

def rms_norm(x, w, eps):
    """LlamaRMSNorm: in float32, x * rsqrt(mean(x^2) + eps), then times the weight"""
    x32 = x.to(torch.float32)
    var = x32.pow(2).mean(-1, keepdim=True)
    return w * (x32 * torch.rsqrt(var + eps)).to(x.dtype)


def rope_parameters(cfg):
    """(rope_type, theta, its dict) from a config of transformers 4 (rope_theta, rope_scaling
    with "rope_type" or the older "type") or 5 (rope_parameters holding rope_theta)"""
    rp = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    rtype = rp.get("rope_type", rp.get("type", "default"))
    theta = rp.get("rope_theta", cfg.get("rope_theta", 10000.0))
    if rtype == "llama3":  # transformers 5's standardize_rope_params: a top-level
        rp = dict(rp)      # original_max_position_embeddings wins, else max_position_embeddings
        if cfg.get("rope_parameters") and "original_max_position_embeddings" in cfg:
            rp["original_max_position_embeddings"] = cfg["original_max_position_embeddings"]
        rp.setdefault("original_max_position_embeddings", cfg["max_position_embeddings"])
    return rtype, float(theta), rp


def inv_freq_default(theta, dim):
    """_compute_default_rope_parameters: in float32, as transformers computes it"""
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


def inv_freq_llama3(inv_freq, rp):
    """_compute_llama3_parameters: wavelengths above original/low_freq_factor divided by
    factor, below original/high_freq_factor kept, smoothly in between"""
    factor, low, high = rp["factor"], rp["low_freq_factor"], rp["high_freq_factor"]
    old = rp["original_max_position_embeddings"]
    low_wl, high_wl = old / low, old / high
    wavelen = 2 * math.pi / inv_freq
    out = torch.where(wavelen > low_wl, inv_freq / factor, inv_freq)
    smooth = (old / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * out / factor + smooth * out
    medium = ~(wavelen < high_wl) * ~(wavelen > low_wl)
    return torch.where(medium, smoothed, out)


def rope_cos_sin(cfg, head_dim, T):
    rtype, theta, rp = rope_parameters(cfg)
    if cfg.get("partial_rotary_factor", rp.get("partial_rotary_factor", 1.0)) != 1.0:
        raise Bad("partial_rotary_factor is not implemented by this reference")
    inv = inv_freq_default(theta, head_dim)
    if rtype == "llama3":
        inv = inv_freq_llama3(inv, rp)
    elif rtype != "default":
        raise Bad(f"rope type {rtype} is not implemented by this reference")
    pos = torch.arange(T, dtype=torch.int64).float()
    freqs = (inv[:, None].float() @ pos[None, :]).transpose(0, 1)  # (T, hd/2)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x, cos, sin):
    """x (heads, T, hd); pairs i and i + hd/2 rotate together"""
    return x * cos[None] + rotate_half(x) * sin[None]


def repeat_kv(x, n_rep):
    """(kvh, T, hd) -> (kvh * n_rep, T, hd): query head h reads kv head h // n_rep"""
    kvh, T, hd = x.shape
    if n_rep == 1:
        return x
    return x[:, None].expand(kvh, n_rep, T, hd).reshape(kvh * n_rep, T, hd)


def attention(q, k, v, scale, window=None):
    """eager_attention_forward: q (NH, T, hd), k and v (NH, T, hd); causal (and, with a
    window, only the last `window` keys), softmax in float32"""
    T = q.shape[1]
    att = (q @ k.transpose(-1, -2)) * scale
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    allowed = j <= i
    if window is not None:
        allowed = allowed & (j > i - window)
    att = att.masked_fill(~allowed, torch.finfo(att.dtype).min)
    att = F.softmax(att, dim=-1, dtype=torch.float32).to(q.dtype)
    return att @ v


ACT = {"gelu_new": lambda x: 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) *
                                                         (x + 0.044715 * x.pow(3.0)))),
       "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
       "gelu": F.gelu, "relu": F.relu, "silu": F.silu, "swish": F.silu}


def need(w, name):
    if name not in w:
        raise Bad(f"the model has no tensor {name}")
    return w[name]


def gpt2_forward(cfg, w, ids):
    """GPT2LMHeadModel (modeling_gpt2.py): learned positions, pre-LayerNorm blocks, Conv1D
    weights (in, out), attention scaled by 1/sqrt(head_dim) (scale_attn_weights) and by
    1/(layer+1) when scale_attn_by_inverse_layer_idx, the MLP n_inner wide (4C when null),
    activation_function, the head tied to wte unless tie_word_embeddings is false"""
    C = cfg.get("n_embd", cfg.get("hidden_size"))
    L = cfg.get("n_layer", cfg.get("num_hidden_layers"))
    NH = cfg.get("n_head", cfg.get("num_attention_heads"))
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    act = ACT[cfg.get("activation_function", "gelu_new")]
    if cfg.get("add_cross_attention"):
        raise Bad("cross attention is not implemented by this reference")
    hd = C // NH
    W = {}
    for k, v in w.items():  # "transformer." or none, as the original repository's file
        if re.search(r"(^|\.)h\.\d+\.attn\.(bias|masked_bias)$", k):
            continue
        W[k[len("transformer."):] if k.startswith("transformer.") else k] = v
    T = len(ids)
    if T > need(W, "wpe.weight").shape[0]:
        raise Bad(f"{T} tokens, {W['wpe.weight'].shape[0]} positions")
    x = need(W, "wte.weight")[ids] + W["wpe.weight"][:T]

    def conv1d(h, p):
        return h @ need(W, p + ".weight") + need(W, p + ".bias")

    def ln(h, p):
        return F.layer_norm(h, (C,), need(W, p + ".weight"), need(W, p + ".bias"), eps)

    for i in range(L):
        p = f"h.{i}"
        q, k, v = conv1d(ln(x, p + ".ln_1"), p + ".attn.c_attn").split(C, dim=-1)
        q, k, v = (t.view(T, NH, hd).transpose(0, 1) for t in (q, k, v))
        scale = 1.0 / math.sqrt(hd) if cfg.get("scale_attn_weights", True) else 1.0
        if cfg.get("scale_attn_by_inverse_layer_idx", False):
            scale /= float(i + 1)
        y = attention(q, k, v, scale).transpose(0, 1).reshape(T, C)
        x = x + conv1d(y, p + ".attn.c_proj")
        x = x + conv1d(act(conv1d(ln(x, p + ".ln_2"), p + ".mlp.c_fc")), p + ".mlp.c_proj")
    x = ln(x, "ln_f")
    tied = cfg.get("tie_word_embeddings", True)
    head = W["wte.weight"] if tied else need(w, "lm_head.weight")
    return x @ head.t()


def llama_forward(cfg, w, ids):
    """LlamaForCausalLM / Qwen2ForCausalLM: RMSNorm, rotary embeddings (rotate_half, llama3
    scaling), grouped-query attention, SiLU-gated MLP, final norm, head tied to
    embed_tokens only when tie_word_embeddings (false when absent: both classes' default)"""
    arch = cfg["architectures"][0]
    qwen = arch == "Qwen2ForCausalLM"
    C, L, NH = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"]
    KVH = cfg.get("num_key_value_heads") or NH
    hd = cfg.get("head_dim") or C // NH
    eps = cfg.get("rms_norm_eps", 1e-6)
    act = ACT[cfg.get("hidden_act", "silu")]
    # Llama: attention_bias puts biases on q, k, v and o; Qwen2: on q, k and v, always
    qkv_bias, o_bias = (True, False) if qwen else (cfg.get("attention_bias", False),) * 2
    mlp_bias = False if qwen else cfg.get("mlp_bias", False)
    windows = [None] * L
    if qwen and cfg.get("use_sliding_window", False) and cfg.get("sliding_window") is not None:
        first = cfg.get("max_window_layers", 28)
        types = cfg.get("layer_types") or ["sliding_attention" if i >= first else "full_attention"
                                           for i in range(L)]
        windows = [cfg["sliding_window"] if t == "sliding_attention" else None for t in types]
    T = len(ids)
    cos, sin = rope_cos_sin(cfg, hd, T)

    def lin(h, p, b):
        y = h @ need(w, p + ".weight").t()
        return y + need(w, p + ".bias") if b else y

    x = need(w, "model.embed_tokens.weight")[ids]
    for i in range(L):
        p = f"model.layers.{i}."
        h = rms_norm(x, need(w, p + "input_layernorm.weight"), eps)
        q = lin(h, p + "self_attn.q_proj", qkv_bias).view(T, NH, hd).transpose(0, 1)
        k = lin(h, p + "self_attn.k_proj", qkv_bias).view(T, KVH, hd).transpose(0, 1)
        v = lin(h, p + "self_attn.v_proj", qkv_bias).view(T, KVH, hd).transpose(0, 1)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = attention(q, repeat_kv(k, NH // KVH), repeat_kv(v, NH // KVH), hd ** -0.5, windows[i])
        x = x + lin(y.transpose(0, 1).reshape(T, NH * hd), p + "self_attn.o_proj", o_bias)
        h = rms_norm(x, need(w, p + "post_attention_layernorm.weight"), eps)
        m = act(lin(h, p + "mlp.gate_proj", mlp_bias)) * lin(h, p + "mlp.up_proj", mlp_bias)
        x = x + lin(m, p + "mlp.down_proj", mlp_bias)
    x = rms_norm(x, need(w, "model.norm.weight"), eps)
    tied = cfg.get("tie_word_embeddings", False)
    head = w["model.embed_tokens.weight"] if tied else need(w, "lm_head.weight")
    return x @ head.t()


FORWARD = {"GPT2LMHeadModel": gpt2_forward, "LlamaForCausalLM": llama_forward,
           "Qwen2ForCausalLM": llama_forward}


def model_forward(d, ids):
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    arch = (cfg.get("architectures") or ["?"])[0]
    if arch not in FORWARD:
        raise Bad(f"{d}: architecture {arch} is not one this reference implements")
    w = {k: t.to_float() for k, t in load_dir(d).items()}
    V = cfg["vocab_size"]
    if any(i < 0 or i >= V for i in ids):
        raise Bad(f"an id is outside the vocabulary of {V}")
    logits = FORWARD[arch](cfg, w, torch.tensor(ids, dtype=torch.long))
    if logits.shape[-1] != V:
        raise Bad(f"{d}: the head has {logits.shape[-1]} rows, config.json says vocab_size {V}")
    return logits


def cmd_forward(a):
    ids = [int(s) for s in a.ids.split(",") if s.strip()]
    logits = model_forward(a.dir, ids)
    if a.out:
        with open(a.out, "wb") as f:
            f.write(tensor_bytes(logits.to(torch.float32)))
    if a.compare is None:
        print(json.dumps({"tokens": len(ids), "vocab": logits.shape[-1],
                          "max_abs_logit": float(logits.abs().max())}))
        return 0
    if a.tol is None:
        raise Bad("--compare needs --tol")
    T, V = logits.shape
    other = read_f32(a.compare)
    if other.numel() % T or other.numel() // T < V:
        raise Bad(f"{a.compare}: {other.numel()} floats are not {T} rows of at least {V}")
    return logits_verdict(other.view(T, -1)[:, :V], logits, a.tol)


def cmd_to_llmc(a):
    """a GPT-2 folder as llm.c's fp32 checkpoint (train_gpt2.py's write_model): a header of
    256 int32 [20240326, 3, maxT, V, L, NH, C, Vp], then each tensor stacked over the layers
    in nn.Linear's (out, in) layout, the vocabulary padded with zero rows to Vp"""
    with open(os.path.join(a.dir, "config.json")) as f:
        cfg = json.load(f)
    if (cfg.get("architectures") or ["?"])[0] != "GPT2LMHeadModel":
        raise Bad(f"{a.dir}: to-llmc takes a GPT2LMHeadModel")
    w = {}
    for k, t in load_dir(a.dir).items():
        if not re.search(r"(^|\.)h\.\d+\.attn\.(bias|masked_bias)$", k):
            w[k[len("transformer."):] if k.startswith("transformer.") else k] = t.to_float()
    C, L, NH = cfg["n_embd"], cfg["n_layer"], cfg["n_head"]
    P, V = cfg["n_positions"], cfg["vocab_size"]
    Vp = a.padded_vocab or V
    if Vp < V or (cfg.get("n_inner") or 4 * C) != 4 * C or not cfg.get("tie_word_embeddings", True):
        raise Bad("llm.c holds a tied GPT-2 with a 4C MLP and Vp >= V only")
    wte = torch.cat([w["wte.weight"], torch.zeros(Vp - V, C)])
    parts = [wte, w["wpe.weight"]]
    per = [("ln_1.weight", False), ("ln_1.bias", False), ("attn.c_attn.weight", True),
           ("attn.c_attn.bias", False), ("attn.c_proj.weight", True), ("attn.c_proj.bias", False),
           ("ln_2.weight", False), ("ln_2.bias", False), ("mlp.c_fc.weight", True),
           ("mlp.c_fc.bias", False), ("mlp.c_proj.weight", True), ("mlp.c_proj.bias", False)]
    for name, conv in per:
        parts += [w[f"h.{i}.{name}"].t() if conv else w[f"h.{i}.{name}"] for i in range(L)]
    parts += [w["ln_f.weight"], w["ln_f.bias"]]
    header = torch.zeros(256, dtype=torch.int32)
    header[:8] = torch.tensor([20240326, 3, P, V, L, NH, C, Vp], dtype=torch.int32)
    with open(a.out, "wb") as f:
        f.write(tensor_bytes(header))
        for t in parts:
            f.write(tensor_bytes(t.contiguous().to(torch.float32)))
    return 0


# ---------------------------------------------------------------- comparisons

def canonical_gpt2(tensors):
    out = {}
    for k, t in tensors.items():
        if re.search(r"(^|\.)h\.\d+\.attn\.(bias|masked_bias)$", k):
            continue
        if re.match(r"(wte|wpe|ln_f|h)\.", k):
            k = "transformer." + k
        out[k] = t
    return out


def parse_except(specs):
    ex = {}
    for s in specs or []:
        m = re.fullmatch(r"(.+):(\d+):(\d+)", s)
        if not m or int(m.group(2)) > int(m.group(3)):
            raise Bad(f"--except-rows wants NAME:FROM:TO (FROM <= TO), not {s}")
        ex.setdefault(m.group(1), []).append((int(m.group(2)), int(m.group(3))))
    return ex


def kept_rows(t, ranges):
    """t's raw bytes without rows in ranges (clipped to its rows), and the rows left"""
    if len(t.shape) != 2:
        raise Bad(f"{t.where}: --except-rows needs a 2-D tensor, not {t.shape}")
    rows, row_bytes = t.shape[0], t.shape[1] * ST_DTYPES[t.dtype][1]
    keep = [r for r in range(rows) if not any(f <= r < e for f, e in ranges)]
    return b"".join(t.data[r * row_bytes:(r + 1) * row_bytes] for r in keep), len(keep)


def first_difference(x, y, dtype):
    size = ST_DTYPES[dtype][1]
    for i in range(0, min(len(x), len(y)), size):
        if x[i:i + size] != y[i:i + size]:
            e = i // size
            if dtype in ("F32", "F16", "BF16"):
                a = Tensor(dtype, [1], x[i:i + size]).to_float().item()
                b = Tensor(dtype, [1], y[i:i + size]).to_float().item()
                return f"element {e}: {a!r} against {b!r}"
            return f"element {e}: bytes {x[i:i + size].hex()} against {y[i:i + size].hex()}"
    return "lengths differ"


def cmd_compare_tensors(a):
    A, B = load_dir(a.dir_a), load_dir(a.dir_b)
    if a.canonical_gpt2:
        A, B = canonical_gpt2(A), canonical_gpt2(B)
    ex = parse_except(a.except_rows)
    for name in ex:
        if name not in A and name not in B:
            raise Bad(f"--except-rows names {name}, which neither side has")
    only_a = sorted(set(A) - set(B), key=natural_key)
    only_b = sorted(set(B) - set(A), key=natural_key)
    if only_a or only_b:
        which = f"{only_a[0]} is only in {a.dir_a}" if only_a else \
            f"{only_b[0]} is only in {a.dir_b}"
        print(f"compare-tensors: {which} ({len(only_a)} + {len(only_b)} names differ)",
              file=sys.stderr)
        return 1
    excepted = 0
    for name in sorted(A, key=natural_key):
        x, y = A[name], B[name]
        if x.dtype != y.dtype:
            print(f"compare-tensors: {name}: dtype {x.dtype} in {a.dir_a}, {y.dtype} in {a.dir_b}",
                  file=sys.stderr)
            return 1
        if name in ex:
            (xd, xr), (yd, yr) = kept_rows(x, ex[name]), kept_rows(y, ex[name])
            excepted += (x.shape[0] - xr) + (y.shape[0] - yr)
            xs, ys = [xr] + x.shape[1:], [yr] + y.shape[1:]
        else:
            xd, yd, xs, ys = x.data, y.data, x.shape, y.shape
        if xs != ys:
            print(f"compare-tensors: {name}: shape {xs} in {a.dir_a}, {ys} in {a.dir_b}"
                  f"{' (rows excepted)' if name in ex else ''}", file=sys.stderr)
            return 1
        if xd != yd:
            print(f"compare-tensors: {name} ({x.dtype} {xs}) differs: "
                  f"{first_difference(xd, yd, x.dtype)}", file=sys.stderr)
            return 1
    print(json.dumps({"identical_tensors": len(A), "rows_excepted": excepted}))
    return 0


def read_f32(path):
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) % 4:
        raise Bad(f"{path}: {len(raw)} bytes is not a whole number of float32")
    return torch.frombuffer(bytearray(raw), dtype=torch.float32) if raw else torch.zeros(0)


def cmd_compare_logits(a):
    x, y = read_f32(a.a), read_f32(a.b)
    if a.rows is not None or a.cols is not None:
        if a.rows is None or a.cols is None:
            raise Bad("--rows and --cols go together")
        parts = []
        for path, t in ((a.a, x), (a.b, y)):
            if t.numel() % a.rows or t.numel() // a.rows < a.cols:
                raise Bad(f"{path}: {t.numel()} floats are not {a.rows} rows of at least {a.cols}")
            parts.append(t.view(a.rows, -1)[:, :a.cols])
        x, y = parts
    elif x.numel() != y.numel():
        print(f"compare-logits: {a.a} has {x.numel()} floats, {a.b} {y.numel()}", file=sys.stderr)
        return 1
    return logits_verdict(x, y, a.tol)


def logits_verdict(x, y, tol):
    """max |x - y| / max(1, max |y|) below tol: printed; 0, or 1 naming the difference"""
    if x.numel() == 0:
        raise Bad("no logits to compare")
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        print("compare-logits: a logit is not finite", file=sys.stderr)
        return 1
    diff = float((x - y).abs().max())
    scale = max(1.0, float(y.abs().max()))
    rel = diff / scale
    where = torch.nonzero((x - y).abs() == diff)[0].tolist()
    print(json.dumps({"max_abs_diff": diff, "at": where, "scale": scale, "measured": rel,
                      "tol": tol}))
    if not rel < tol:
        print(f"logits: max |a-b| / max(1, max|b|) = {rel:.3g} (at {where}), not below {tol:g}",
              file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------- selftest

def selftest(_a):
    """unit checks of this reference: each compares one piece with a second, plainer
    derivation of what transformers computes"""
    failures = []

    def check(ok, what):
        print(f"{'ok  ' if ok else 'FAIL'} {what}")
        if not ok:
            failures.append(what)

    g = torch.Generator().manual_seed(7)
    # attention: GQA with kv heads == heads is plain multi-head attention, written per head
    NH, T, hd = 4, 9, 8
    q, k, v = (torch.randn(NH, T, hd, generator=g) for _ in range(3))
    got = attention(q, repeat_kv(k, 1), repeat_kv(v, 1), hd ** -0.5)
    want = torch.empty_like(got)
    for h in range(NH):
        for t in range(T):
            s = torch.tensor([float(q[h, t] @ k[h, j]) / math.sqrt(hd) for j in range(t + 1)])
            p = torch.exp(s - s.max()) / torch.exp(s - s.max()).sum()
            want[h, t] = (p[:, None] * v[h, : t + 1]).sum(0)
    check(torch.allclose(got, want, atol=1e-5),
          "attention with kv heads == heads is per-head causal softmax")
    # grouped: query head h reads kv head h // (NH / KVH), not h % KVH
    kv2, vv2 = torch.randn(2, T, hd, generator=g), torch.randn(2, T, hd, generator=g)
    got = attention(q, repeat_kv(kv2, 2), repeat_kv(vv2, 2), hd ** -0.5)
    want = attention(q, kv2[[0, 0, 1, 1]], vv2[[0, 0, 1, 1]], hd ** -0.5)
    check(torch.equal(got, want), "repeat_kv: query heads 0,1 read kv head 0 and 2,3 kv head 1")
    # a sliding window of T keys is the full causal mask; of 1 key, attention to itself
    check(torch.equal(attention(q, k, v, 0.3, T), attention(q, k, v, 0.3)),
          "a window of T keys changes nothing")
    check(torch.allclose(attention(q, k, v, 0.3, 1), v, atol=1e-6),
          "a window of 1 key returns the token's own value")

    # rotary embeddings
    cfg = {"max_position_embeddings": 128, "rope_theta": 10000.0}
    cos, sin = rope_cos_sin(cfg, hd, T)
    x = torch.randn(NH, T, hd, generator=g)
    r = apply_rope(x, cos, sin)
    check(torch.equal(r[:, 0], x[:, 0]), "rope at position 0 is the identity")
    check(torch.allclose(r.norm(dim=-1), x.norm(dim=-1), atol=1e-5), "rope keeps each head's norm")
    e = torch.zeros(1, T, hd)
    e[..., 1] = 1.0
    re1 = apply_rope(e, cos, sin)
    nz = sorted(set(int(i) for i in (re1[0].abs() > 1e-7).nonzero()[:, 1]))
    check(nz == [1, 1 + hd // 2],
          f"rope pairs dimension 1 with {1 + hd // 2} (rotate_half), got {nz}")
    inv = inv_freq_default(10000.0, hd)
    ang = 5 * float(inv[1])  # position 5, pair 1, against the plain formula
    check(abs(float(re1[0, 5, 1]) - math.cos(ang)) < 1e-6 and abs(float(re1[0, 5, 1 + hd // 2]) - math.sin(ang)) < 1e-6,
          "rope at position p turns pair i by p * theta^(-2i/d)")
    qv, kv = torch.randn(hd, generator=g), torch.randn(hd, generator=g)
    cs, sn = rope_cos_sin(cfg, hd, 12)

    def dot(pq, pk):
        return float(apply_rope(qv.expand(1, 12, hd), cs, sn)[0, pq] @ apply_rope(kv.expand(1, 12, hd), cs, sn)[0, pk])
    check(abs(dot(7, 3) - dot(10, 6)) < 1e-4, "rotated q.k depends on the distance only")
    check(all(abs(float(inv[i]) - 10000.0 ** (-2 * i / hd)) < 1e-6 for i in range(hd // 2)),
          "inv_freq = theta^(-2i/d)")

    # llama3 scaling, against the formula written out in double per frequency
    rp = dict(LLAMA3)
    for theta, dim in ((500000.0, 16), (10000.0, 16), (500000.0, 64)):
        base = inv_freq_default(theta, dim)
        got = inv_freq_llama3(base, rp)
        fac, lo, hi, old = rp["factor"], rp["low_freq_factor"], rp["high_freq_factor"], rp["original_max_position_embeddings"]
        bands = {"high": 0, "medium": 0, "low": 0}
        ok = True
        for i in range(dim // 2):
            f = float(base[i])
            wl = 2 * math.pi / f
            if wl < old / hi:
                want, band = f, "high"
            elif wl > old / lo:
                want, band = f / fac, "low"
            else:
                s = (old / wl - lo) / (hi - lo)
                want, band = (1 - s) * f / fac + s * f, "medium"
            bands[band] += 1
            ok &= abs(float(got[i]) - want) <= 1e-6 * want
            if band == "high":
                ok &= float(got[i]) == f
        check(ok,
              f"llama3 scaling (theta {theta:g}, dim {dim}): frequencies {bands}; high ones unchanged, low ones / factor")
    check(torch.equal(inv_freq_llama3(base, dict(rp, factor=1.0)), base),
          "llama3 scaling with factor 1 changes nothing")
    _, _, rp5 = rope_parameters({"rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0,
                                                     "low_freq_factor": 1.0, "high_freq_factor": 4.0},
                                 "max_position_embeddings": 256})
    check(rp5["original_max_position_embeddings"] == 256,
          "transformers 5: a missing original_max_position_embeddings is max_position_embeddings")
    check(rope_parameters({"rope_scaling": {"type": "llama3"}, "rope_theta": 3.0, "max_position_embeddings": 8})[:2] == ("llama3", 3.0),
          "rope_scaling's older key \"type\" is read as rope_type")

    # RMSNorm against its formula
    xx, ww = torch.randn(5, 16, generator=g), torch.randn(16, generator=g)
    want = torch.stack([ww * r_ / math.sqrt(float((r_ * r_).mean()) + 1e-5) for r_ in xx])
    check(torch.allclose(rms_norm(xx, ww, 1e-5), want, atol=1e-5),
          "RMSNorm is w * x / sqrt(mean(x^2) + eps)")
    gx = torch.linspace(-4, 4, 81)
    check(torch.allclose(ACT["gelu_new"](gx), F.gelu(gx, approximate="tanh"), atol=1e-6),
          "gelu_new is GELU's tanh form")

    # dtypes: rounding, bytes and round trips
    vals = torch.randn(1000, generator=g)
    for dt in ("BF16", "F16", "F32"):
        t = from_torch(vals, dt)
        back = t.to_float()
        check(torch.equal(back, vals.to(ST_DTYPES[dt][0]).float()),
              f"{dt}: written and read back bit for bit")
    bits = vals.view(torch.int32)
    rne = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).to(torch.int16)  # round to nearest even
    check(torch.equal(from_torch(vals, "BF16").to_float().to(torch.bfloat16).view(torch.int16), rne),
          "BF16 is float32 rounded to nearest even (no NaN here)")
    check(Tensor("BF16", [1], bytes([0x80, 0x3F])).to_float().item() == 1.0,
          "BF16 bytes 80 3f (little-endian) are 1.0")
    check(Tensor("F16", [1], bytes([0x00, 0x3C])).to_float().item() == 1.0,
          "F16 bytes 00 3c are 1.0")

    with tempfile.TemporaryDirectory() as tmp:
        # a safetensors file: padded header, read back whole
        p = os.path.join(tmp, "x.safetensors")
        st_write(p, {"b": from_torch(vals[:3], "F16"), "a": from_torch(vals[:5], "F32")}, {"format": "pt"})
        raw = open(p, "rb").read()
        (n,) = struct.unpack("<Q", raw[:8])
        got, meta = st_read(p)
        check(n % 8 == 0 and meta == {"format": "pt"} and got["a"].shape == [5] and got["b"].dtype == "F16",
              "safetensors: header padded to 8 bytes, metadata and tensors read back")
        bad = bytearray(raw)
        bad[:8] = struct.pack("<Q", n + 1000)
        open(p, "wb").write(bad)
        try:
            st_read(p)
            check(False, "a header length past the end is refused")
        except Bad:
            check(True, "a header length past the end is refused")

        def make(arch, out, *extra):
            ns = parse_args(["make", "--arch", arch, "--out", os.path.join(tmp, out), "--seed", "3"] + list(extra))
            with open(os.devnull, "w") as dn:
                old, sys.stdout = sys.stdout, dn
                try:
                    ns.func(ns)
                finally:
                    sys.stdout = old
            return os.path.join(tmp, out)

        ids = [0, 5, 299, 17, 256, 3, 3, 120, 298, 1, 64, 200]
        # the same model split into shards, or its GPT-2 names bare, gives the same logits
        for arch, extra in (("llama", []), ("qwen2", []), ("gpt2", [])):
            one = model_forward(make(arch, f"{arch}-one", *extra), ids)
            sh = model_forward(make(arch, f"{arch}-sh", "--shards", "3", *extra), ids)
            check(torch.equal(one, sh), f"{arch}: three shards read as one file")
        bare = model_forward(make("gpt2", "gpt2-bare", "--prefix-less"), ids)
        check(torch.equal(bare, model_forward(os.path.join(tmp, "gpt2-one"), ids)),
              "gpt2: bare names with attn.bias buffers give the prefixed model's logits")
        t = load_dir(os.path.join(tmp, "gpt2-bare"))
        check("h.0.attn.bias" in t and "wte.weight" in t and "lm_head.weight" not in t,
              "gpt2 --prefix-less: its names")
        # untied with lm_head == embed_tokens is the tied model
        d = make("llama", "llama-untied", "--untied")
        w = load_dir(d)
        w["lm_head.weight"] = w["model.embed_tokens.weight"]
        write_dir(d, w, 1)
        check(torch.allclose(model_forward(d, ids), model_forward(os.path.join(tmp, "llama-one"), ids), atol=1e-6),
              "llama: an untied head equal to the embeddings is the tied model")
        # v5's rope_parameters and v4's rope_theta + rope_scaling are the same model
        a4 = model_forward(make("llama", "l4", "--rope-scaling", "llama3", "--positions", "256"), ids)
        a5 = model_forward(make("llama", "l5", "--rope-scaling", "llama3", "--positions", "256", "--config-style", "5"), ids)
        check(torch.equal(a4, a5),
              "llama3: transformers 5's rope_parameters read as 4's rope_theta + rope_scaling")
        hd8 = model_forward(make("llama", "l-hd8", "--head-dim", "8"), ids)
        w = load_dir(os.path.join(tmp, "l-hd8"))
        check(hd8.shape == (12, 300) and w["model.layers.0.self_attn.q_proj.weight"].shape == [32, 64]
              and w["model.layers.0.self_attn.o_proj.weight"].shape == [64, 32],
              "llama --head-dim 8 of width 64: projections 4 x 8 wide, and its forward runs")
        plain = model_forward(make("llama", "l0", "--positions", "256"), ids)
        rel = float((a4 - plain).abs().max() / plain.abs().max())
        check(rel > 1e-3,
              f"llama3 scaling and theta move the logits by {rel:.2e} (the test would see them)")
        # bf16 and f16 folders hold rounded values: the logits are those of the rounded f32 model
        b16 = model_forward(make("qwen2", "q-bf16", "--dtype", "bf16"), ids)
        rel = float((b16 - model_forward(os.path.join(tmp, "qwen2-one"), ids)).abs().max() / b16.abs().max())
        check(1e-5 < rel < 0.2, f"qwen2 bf16 against f32: rounding moves the logits by {rel:.2e}")
        # every tensor matters: any one shuffled (a wrong layout keeps its values) moves the
        # logits a hundred times past the tests' 1e-4
        for arch in ("gpt2", "llama", "qwen2"):
            d = os.path.join(tmp, f"{arch}-one")
            base_l = model_forward(d, ids)
            w = load_dir(d)
            weakest = (1.0, "")
            for name in sorted(w, key=natural_key):
                w2 = dict(w)
                f = w[name].to_float()
                perm = torch.randperm(f.numel(), generator=g)
                w2[name] = from_torch(f.flatten()[perm].view(f.shape), "F32")
                d2 = os.path.join(tmp, f"{arch}-pert")
                shutil.rmtree(d2, ignore_errors=True)
                shutil.copytree(d, d2)
                write_dir(d2, w2, 1)
                r_ = float((model_forward(d2, ids) - base_l).abs().max() / max(1.0, float(base_l.abs().max())))
                weakest = min(weakest, (r_, name))
            check(weakest[0] > 1e-2,
                  f"{arch}: any tensor shuffled moves the logits; the least, {weakest[1]}, by {weakest[0]:.1e}")
        # compare-tensors: the same folder, a flipped bit, and excepted rows
        src = os.path.join(tmp, "llama-one")
        cp = os.path.join(tmp, "llama-cp")
        shutil.copytree(src, cp)

        def ct(*args):
            ns = parse_args(["compare-tensors", src, cp] + list(args))
            with open(os.devnull, "w") as dn:
                old = sys.stdout, sys.stderr
                sys.stdout = sys.stderr = dn
                try:
                    return ns.func(ns)
                finally:
                    sys.stdout, sys.stderr = old
        check(ct() == 0, "compare-tensors: a copy is identical")
        w = load_dir(cp)
        e = w["model.norm.weight"]
        e.data = e.data[:9] + bytes([e.data[9] ^ 1]) + e.data[10:]
        write_dir(cp, w, 2)
        check(ct() == 1, "compare-tensors: one flipped bit (in a sharded copy) is a difference")
        w = load_dir(src)
        emb = w["model.embed_tokens.weight"].to_float()
        grown = torch.cat([emb, torch.randn(8, emb.shape[1], generator=g)])
        w["model.embed_tokens.weight"] = from_torch(grown, "F32")
        write_dir(cp, w, 1)
        check(ct() == 1, "compare-tensors: 8 more embedding rows are a difference")
        check(ct("--except-rows", "model.embed_tokens.weight:300:308") == 0,
              "compare-tensors: ... unless excepted")
        check(ct("--except-rows", "model.embed_tokens.weight:300:307") == 1,
              "compare-tensors: one row short of them is not")
        grown[4, 0] += 1.0
        w["model.embed_tokens.weight"] = from_torch(grown, "F32")
        write_dir(cp, w, 1)
        check(ct("--except-rows", "model.embed_tokens.weight:300:308") == 1,
              "compare-tensors: a changed row outside them is")
        check(ct("--except-rows", "model.embed_tokens.weight:4:5", "--except-rows", "model.embed_tokens.weight:300:308") == 0,
              "compare-tensors: two ranges of one tensor")
        # the tokenizers: sizes and specials where the config says
        for fam in ("gpt2", "llama3", "qwen2"):
            tok = make_tokenizer(fam, 300)
            ids_ = sorted(list(tok["model"]["vocab"].values()) + [x["id"] for x in tok["added_tokens"]])
            check(ids_ == list(range(300)) and tokenizer_family(tok) == fam,
                  f"{fam} tokenizer: ids 0..299, its specials last")
    print(f"selftest: {'FAILED ' + str(len(failures)) if failures else 'ok'}")
    return 1 if failures else 0


# ---------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(prog="hf_ref.py", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("--arch", choices=sorted(ARCH), required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--dtype", choices=sorted(DTYPE_ARG), default="f32")
    m.add_argument("--shards", type=int, default=1)
    m.add_argument("--untied", action="store_true")
    m.add_argument("--rope-scaling", choices=["llama3"])
    m.add_argument("--vocab", type=int, dest="vocab_given")
    m.add_argument("--layers", type=int)
    m.add_argument("--width", type=int)
    m.add_argument("--heads", type=int)
    m.add_argument("--kv-heads", type=int)
    m.add_argument("--ff", type=int)
    m.add_argument("--positions", type=int)
    m.add_argument("--seed", type=int, default=1)
    m.add_argument("--head-dim", type=int)
    m.add_argument("--tokenizer")
    m.add_argument("--prefix-less", action="store_true")
    m.add_argument("--config-style", type=int, choices=[4, 5], default=4)
    m.set_defaults(func=cmd_make)
    t = sub.add_parser("tokenizer")
    t.add_argument("--family", choices=sorted(SPECIALS), required=True)
    t.add_argument("--vocab", type=int, required=True)
    t.add_argument("--out", required=True)
    t.set_defaults(func=cmd_tokenizer)
    lc = sub.add_parser("to-llmc")
    lc.add_argument("--dir", required=True)
    lc.add_argument("--out", required=True)
    lc.add_argument("--padded-vocab", type=int)
    lc.set_defaults(func=cmd_to_llmc)
    f = sub.add_parser("forward")
    f.add_argument("--dir", required=True)
    f.add_argument("--ids", required=True)
    f.add_argument("--out")
    f.add_argument("--compare")
    f.add_argument("--tol", type=float)
    f.set_defaults(func=cmd_forward)
    c = sub.add_parser("compare-tensors")
    c.add_argument("dir_a")
    c.add_argument("dir_b")
    c.add_argument("--except-rows", action="append", metavar="NAME:FROM:TO")
    c.add_argument("--canonical-gpt2", action="store_true")
    c.set_defaults(func=cmd_compare_tensors)
    g = sub.add_parser("compare-logits")
    g.add_argument("a")
    g.add_argument("b")
    g.add_argument("--tol", type=float, required=True)
    g.add_argument("--rows", type=int)
    g.add_argument("--cols", type=int)
    g.set_defaults(func=cmd_compare_logits)
    s = sub.add_parser("selftest")
    s.set_defaults(func=selftest)
    ns = p.parse_args(argv)
    if ns.cmd == "make":
        ns.vocab = ns.vocab_given
    return ns


def main(argv):
    ns = parse_args(argv)
    try:
        return ns.func(ns)
    except (Bad, OSError, KeyError, ValueError) as e:
        print(f"hf_ref.py {ns.cmd}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
