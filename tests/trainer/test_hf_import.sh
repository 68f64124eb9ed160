#!/usr/bin/env bash
# test_hf_import.sh -- `mnemo import-hf` and `mnemo export-hf` against Hugging Face's own
# semantics, rebuilt in PyTorch by hf_ref.py (transformers is not packaged for Debian; no
# weights can be downloaded, so every model is a tiny random one in the exact layout
# save_pretrained writes: config.json, safetensors single or sharded, tokenizer.json).
#
#   test_hf_import.sh MNEMO HF_LOGITS_TOOL HF_REF_PY
#
# 1. hf_ref.py checks itself (selftest).
# 2. export-hf of the GPT-2 checkpoints mnemo has today: a random GPT-2 brought in through
#    import-llmc exports to the very bytes it was made of, and a trained checkpoint (as
#    bench/hf/run trains it) gives Hugging Face's logits.
# 3. import-hf, for GPT-2 (f32; bare names and f16), Llama (f32 tied; bf16 untied with llama3
#    rope scaling in 2 shards; transformers 5's config keys; keys left to the class defaults)
#    and Qwen2 (f32 tied; bf16 untied with embedding rows past the tokenizer): the
#    checkpoint's logits (hf_logits_tool) are Hugging Face's (hf_ref.py forward) within 1e-4
#    of the largest logit; export-hf writes back the same tensors bit for bit, in the dtype
#    they came in, and a config.json that means the same model; the export imports again to
#    the same logits; and other spellings of a config (eos lists, rope_scaling's "type",
#    nulls for defaults, transformers 5 without original_max_position_embeddings).
# 4. --tag-rows 8: 8 more rows in the embeddings (and an untied head), the rest unchanged.
# 5. buffers in the files that transformers ignores (Llama's rotary_emb.inv_freq).
# 6. refusals: a family mnemo does not have, an F64 tensor, a missing head, tensor or shape,
#    and models transformers computes in ways no mnemo model does (rope types other than
#    llama3, head_dim other than width / heads, biases, activations, sliding windows): exit 1,
#    the cause named on stderr, nothing written.
#
# The contract assumed of the commands (mnemo's exit codes: 0 done, 1 failure, 2 usage):
#   mnemo import-hf DIR CKPT [--tag-rows N]   exit 0 and CKPT written; a refusal exits 1,
#                                             names the cause on stderr, leaves no CKPT
#   mnemo export-hf CKPT DIR                  exit 0, DIR a folder Hugging Face loads
# KEEP=1 keeps the temporary folder.
set -euo pipefail
mnemo=$1
tool=$2
ref=$3
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/mnemo-test-hfimport-XXXXXX)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

py=
for p in python3 /usr/bin/python3; do # Debian's python3-torch is in the system python
  if command -v "$p" >/dev/null && "$p" -c "import torch" 2>/dev/null; then py=$p && break; fi
done
[ -n "$py" ] || fail "no python3 with torch (apt-get install python3-torch)"
ref() { "$py" "$ref" "$@"; }
# cfg_edit DIR CODE -- run python CODE on DIR/config.json as the dict c, and write it back
cfg_edit() {
  "$py" - "$1/config.json" "$2" <<'PY'
import json, sys
path, code = sys.argv[1], sys.argv[2]
c = json.load(open(path))
exec(code)
with open(path, "w") as f:
    json.dump(c, f, indent=2, sort_keys=True)
PY
}
cfg_get() { "$py" -c "import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1/config.json" "$2"; }
# edit_tensors DIR CODE -- run python CODE on DIR's tensors as w (name -> float32 tensor,
# dt[name] its dtype name, F32 for a new one) and write them back as one file
edit_tensors() {
  "$py" - "$ref" "$1" "$2" <<'PY'
import os, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
import torch
import hf_ref
d = sys.argv[2]
raw = hf_ref.load_dir(d)
w = {k: t.to_float() for k, t in raw.items()}
dt = {k: t.dtype for k, t in raw.items()}
exec(sys.argv[3])
hf_ref.write_dir(d, {k: hf_ref.from_torch(v, dt.get(k, "F32")) for k, v in w.items()}, 1)
PY
}
variant() { # variant NAME FROM CONFIG_EDIT -- a copy of FROM with its config.json edited
  rm -rf "${tmp:?}/$1"
  cp -r "$2" "$tmp/$1"
  [ -z "$3" ] || cfg_edit "$tmp/$1" "$3"
}

# twelve ids: byte tokens, merges, the specials at 298 and 299, a repeat
ids=(0 5 299 17 256 3 3 120 298 1 64 200)
ids_c=$(
  IFS=,
  echo "${ids[*]}"
)

# logits_agree DIR CKPT NAME -- the checkpoint's logits are Hugging Face's for DIR (the first
# vocab_size columns of each row: mnemo may pad its vocabulary); DIR's go to NAME.hf.bin
logits_agree() {
  local dir=$1 ckpt=$2 name=$3
  "$tool" "$ckpt" "$tmp/$name.mnemo.bin" "${ids[@]}" >/dev/null || fail "$name: hf_logits_tool on $ckpt"
  ref forward --dir "$dir" --ids "$ids_c" --out "$tmp/$name.hf.bin" --compare "$tmp/$name.mnemo.bin" \
    --tol 1e-4 >"$tmp/$name.cmp" 2>&1 || fail "$name: mnemo's logits are not Hugging Face's: $(cat "$tmp/$name.cmp")"
  echo "  $name: $(cat "$tmp/$name.cmp")"
}
# same_model DIR OUT NAME -- OUT's config.json and tensors mean the model of DIR (whose logits
# logits_agree left in NAME.hf.bin) for Hugging Face, to float32 rounding (an epsilon written
# back from a float32 may move them by that)
same_model() {
  ref forward --dir "$2" --ids "$ids_c" --compare "$tmp/$3.hf.bin" --tol 1e-6 >"$tmp/$3.same" 2>&1 ||
    fail "$3: $2 is not the model of $1 for Hugging Face: $(cat "$tmp/$3.same")"
}

echo "1. the reference"
ref selftest >"$tmp/selftest.txt" || { cat "$tmp/selftest.txt" >&2; fail "hf_ref.py selftest"; }
grep -c '^ok' "$tmp/selftest.txt" | sed 's/^/  selftest: /; s/$/ checks/'

echo "2. export-hf of today's GPT-2 checkpoints"
ref tokenizer --family gpt2 --vocab 300 --out "$tmp/tok-gpt2.json"
ref tokenizer --family llama3 --vocab 300 --out "$tmp/tok-llama3.json"
ref tokenizer --family qwen2 --vocab 300 --out "$tmp/tok-qwen2.json"
ref make --arch gpt2 --out "$tmp/llmc" --seed 11 >/dev/null
ref to-llmc --dir "$tmp/llmc" --out "$tmp/llmc.bin"
"$mnemo" import-llmc "$tmp/llmc.bin" "$tmp/llmc.ckpt" >/dev/null || fail "import-llmc"
logits_agree "$tmp/llmc" "$tmp/llmc.ckpt" llmc
"$mnemo" export-hf "$tmp/llmc.ckpt" "$tmp/llmc.out" >/dev/null || fail "export-hf of the llm.c import"
ref compare-tensors "$tmp/llmc" "$tmp/llmc.out" >/dev/null || fail "export-hf did not write back the llm.c model's tensors"
logits_agree "$tmp/llmc.out" "$tmp/llmc.ckpt" llmc-export
# a trained checkpoint, as bench/hf/run makes it
text="Watu wote wamezaliwa huru, hadhi na haki zao ni sawa."
printf '{"lang": "swh", "text": "%s"}\n{"lang": "spa", "text": "Todos los seres humanos nacen libres."}\n' \
  "$text" >"$tmp/d.jsonl"
printf 'swh\t257\nspa\t258\n' >"$tmp/tags.tsv"
m() { "$mnemo" --config "$root/configs/models/tiny.yaml" --set model.max_seq_len=64 --set train.seq_len=32 "$@"; }
m shard --tags "$tmp/tags.tsv" --out "$tmp/d.shard" "$tmp/d.jsonl" >/dev/null || fail "shard"
m --set train.steps=40 pretrain --out "$tmp/run" "$tmp/d.shard" >/dev/null || fail "pretrain"
m export-hf "$tmp/run/model.safetensors" "$tmp/trained" >/dev/null || fail "export-hf of a trained checkpoint"
logits_agree "$tmp/trained" "$tmp/run/model.safetensors" trained

echo "3. import-hf, export-hf, import-hf again"
# case NAME TOKENIZER [CONFIG_EDIT] -- make ARGS... : the round trip of one model
case_() {
  local name=$1 tok=$2 edit=$3 dir=$tmp/$1
  shift 4
  ref make --out "$dir" --tokenizer "$tok" "$@" >/dev/null || fail "$name: hf_ref.py make"
  [ -z "$edit" ] || cfg_edit "$dir" "$edit"
  local canon=()
  [ "$(cfg_get "$dir" model_type)" != gpt2 ] || canon=(--canonical-gpt2)
  "$mnemo" import-hf "$dir" "$tmp/$name.ckpt" --tag-rows 0 >"$tmp/$name.log" 2>&1 ||
    fail "$name: import-hf: $(cat "$tmp/$name.log")"
  logits_agree "$dir" "$tmp/$name.ckpt" "$name"
  "$mnemo" export-hf "$tmp/$name.ckpt" "$tmp/$name.out" >"$tmp/$name.log" 2>&1 ||
    fail "$name: export-hf: $(cat "$tmp/$name.log")"
  # the importer's contract: export-hf writes the tensors it imported under their names, bit
  # for bit and in the dtype they came in (an f16 or bf16 model goes out f16 or bf16, not
  # widened to f32); GPT-2's bare names come back with "transformer.", without attn.bias
  ref compare-tensors "$dir" "$tmp/$name.out" "${canon[@]}" >"$tmp/$name.log" 2>&1 ||
    fail "$name: the export's tensors are not the imported ones: $(cat "$tmp/$name.log")"
  same_model "$dir" "$tmp/$name.out" "$name"
  "$py" - "$dir/tokenizer.json" "$tmp/$name.out/tokenizer.json" <<'PY' || fail "$name: the export's tokenizer.json is not the imported one"
import json, sys
a, b = (json.load(open(p, encoding="utf-8")) for p in sys.argv[1:3])
pairs = lambda t: [m.split(" ") if isinstance(m, str) else m for m in t["model"]["merges"]]
assert a["model"]["vocab"] == b["model"]["vocab"], "model.vocab differs"
assert pairs(a) == pairs(b), "model.merges differ"
got = {(x["id"], x["content"]) for x in b["added_tokens"]}
assert {(x["id"], x["content"]) for x in a["added_tokens"]} <= got, "an added token is missing"
PY
  "$mnemo" import-hf "$tmp/$name.out" "$tmp/$name.again.ckpt" --tag-rows 0 >"$tmp/$name.log" 2>&1 ||
    fail "$name: import-hf of the export: $(cat "$tmp/$name.log")"
  logits_agree "$tmp/$name.out" "$tmp/$name.again.ckpt" "$name.again"
  cmp -s "$tmp/$name.mnemo.bin" "$tmp/$name.again.mnemo.bin" ||
    fail "$name: the re-imported checkpoint computes other logits than the first import"
}
case_ gpt2-f32 "$tmp/tok-gpt2.json" "" -- --arch gpt2
case_ gpt2-bare-f16 "$tmp/tok-gpt2.json" "" -- --arch gpt2 --prefix-less --dtype f16 --seed 2
case_ llama-f32-tied "$tmp/tok-llama3.json" "" -- --arch llama --seed 3
case_ llama-bf16-untied-llama3-2shards "$tmp/tok-llama3.json" "" -- --arch llama --dtype bf16 \
  --untied --rope-scaling llama3 --positions 256 --shards 2 --seed 4
case_ qwen2-f32-tied "$tmp/tok-qwen2.json" "" -- --arch qwen2 --seed 5
# transformers 5 writes rope_theta and llama3's parameters inside "rope_parameters" and the
# dtype as "dtype"; one key-value head (multi-query attention)
case_ llama-v5-config "$tmp/tok-llama3.json" "" -- --arch llama --config-style 5 \
  --rope-scaling llama3 --positions 256 --kv-heads 1 --seed 6
# keys left out take LlamaConfig's defaults: no tie_word_embeddings is untied, no
# num_key_value_heads is one per query head, rms_norm_eps 1e-6, rope_theta 10000
case_ llama-class-defaults "$tmp/tok-llama3.json" \
  "[c.pop(k) for k in ('tie_word_embeddings', 'num_key_value_heads', 'head_dim', 'rms_norm_eps', 'rope_theta', 'rope_scaling')]" \
  -- --arch llama --untied --kv-heads 4 --seed 7
# Qwen2.5's layout: embedding rows past the tokenizer's ids (vocab_size 320, 300 ids), bf16
case_ qwen2-bf16-untied-padded "$tmp/tok-qwen2.json" "" -- --arch qwen2 --dtype bf16 --untied \
  --vocab 320 --kv-heads 4 --config-style 5 --seed 8

# other spellings of the same models, as configs on the Hub have them (import and logits only)
spelling() { # spelling NAME CONFIG_EDIT MAKE_ARGS...
  local name=$1 edit=$2 dir=$tmp/$1
  shift 2
  ref make --arch llama --out "$dir" --tokenizer "$tmp/tok-llama3.json" "$@" >/dev/null
  cfg_edit "$dir" "$edit"
  "$mnemo" import-hf "$dir" "$tmp/$name.ckpt" --tag-rows 0 >"$tmp/$name.log" 2>&1 ||
    fail "$name: import-hf: $(cat "$tmp/$name.log")"
  logits_agree "$dir" "$tmp/$name.ckpt" "$name"
}
# Llama 3.1's several end-of-text ids
spelling eos-list "c['eos_token_id'] = [299, 298]" --seed 12
# rope_scaling's older key "type" for "rope_type"
spelling rope-type-key "c['rope_scaling']['type'] = c['rope_scaling'].pop('rope_type')" \
  --rope-scaling llama3 --positions 256 --seed 13
# null is the default: as many kv heads as query heads, head_dim hidden_size / heads
spelling nulls "c['num_key_value_heads'] = None; c['head_dim'] = None" --kv-heads 4 --seed 14
# transformers 5 fills a missing original_max_position_embeddings with max_position_embeddings
spelling v5-no-original "c['rope_parameters'].pop('original_max_position_embeddings')" \
  --rope-scaling llama3 --positions 256 --config-style 5 --seed 15

echo "4. --tag-rows 8"
for tied in tied untied; do
  name=llama-tags-$tied dir=$tmp/llama-tags-$tied untied=()
  [ $tied = tied ] || untied=(--untied)
  ref make --arch llama --out "$dir" --tokenizer "$tmp/tok-llama3.json" --seed 9 "${untied[@]}" >/dev/null
  "$mnemo" import-hf "$dir" "$tmp/$name.ckpt" --tag-rows 8 >"$tmp/$name.log" 2>&1 ||
    fail "$name: import-hf --tag-rows 8: $(cat "$tmp/$name.log")"
  logits_agree "$dir" "$tmp/$name.ckpt" "$name" # the first 300 columns: the old rows
  "$mnemo" export-hf "$tmp/$name.ckpt" "$tmp/$name.out" >"$tmp/$name.log" 2>&1 ||
    fail "$name: export-hf: $(cat "$tmp/$name.log")"
  except=(--except-rows model.embed_tokens.weight:300:308)
  [ $tied = tied ] || except+=(--except-rows lm_head.weight:300:308)
  ref compare-tensors "$dir" "$tmp/$name.out" "${except[@]}" >"$tmp/$name.log" 2>&1 ||
    fail "$name: the export's tensors past the tag rows: $(cat "$tmp/$name.log")"
  v=$(cfg_get "$tmp/$name.out" vocab_size)
  [ "$v" = 308 ] || fail "$name: the export's vocab_size is $v, not 300 + 8"
done

echo "5. tensors Hugging Face ignores"
# Llama files converted from older pytorch_model.bin hold rotary_emb.inv_freq buffers (no
# weights: transformers recomputes them and ignores these); GPT-2's attn.bias are in 3.
base=$tmp/llama-f32-tied
variant inv-freq "$base" ""
edit_tensors "$tmp/inv-freq" "
for i in range(2):
    w[f'model.layers.{i}.self_attn.rotary_emb.inv_freq'] = 1.0 / (10000 ** (torch.arange(0, 16, 2).float() / 16))"
"$mnemo" import-hf "$tmp/inv-freq" "$tmp/inv-freq.ckpt" --tag-rows 0 >"$tmp/inv-freq.log" 2>&1 ||
  fail "inv-freq: import-hf: $(cat "$tmp/inv-freq.log")"
logits_agree "$tmp/inv-freq" "$tmp/inv-freq.ckpt" inv-freq

echo "6. refusals"
# refuse NAME PATTERN DIR -- import-hf exits 1 with PATTERN (an ERE) on stderr, writes nothing
refuse() {
  local name=$1 pat=$2 dir=$3 rc=0
  rm -f "$tmp/no.ckpt"
  "$mnemo" import-hf "$dir" "$tmp/no.ckpt" --tag-rows 0 >"$tmp/out.txt" 2>"$tmp/err.txt" || rc=$?
  [ "$rc" = 1 ] || fail "$name: exit $rc, not 1: $(cat "$tmp/err.txt")"
  grep -Eq -- "$pat" "$tmp/err.txt" || fail "$name: no \"$pat\" in: $(cat "$tmp/err.txt")"
  [ ! -e "$tmp/no.ckpt" ] || fail "$name: a checkpoint was written"
  ! ls "$tmp"/no.ckpt?* >/dev/null 2>&1 || fail "$name: a temporary file was left"
  echo "  $name: refused: $(head -c 160 "$tmp/err.txt" | tr '\n' ' ')"
}
# a family mnemo does not have, by its class name
variant mistral "$base" "c['architectures'] = ['MistralForCausalLM']; c['model_type'] = 'mistral'"
refuse mistral MistralForCausalLM "$tmp/mistral"
# a tensor stored as F64, by its name
variant f64 "$base" ""
edit_tensors "$tmp/f64" "dt['model.norm.weight'] = 'F64'"
refuse f64 'model\.norm\.weight' "$tmp/f64"
# no tie_word_embeddings is untied for Llama (LlamaConfig's default): without lm_head.weight
# Hugging Face would draw a random head, and import-hf must not guess one
variant no-head "$base" "c.pop('tie_word_embeddings')"
refuse untied-without-lm_head 'lm_head\.weight' "$tmp/no-head"
variant missing "$base" ""
edit_tensors "$tmp/missing" "del w['model.layers.1.self_attn.k_proj.weight']"
refuse missing-tensor 'model\.layers\.1\.self_attn\.k_proj\.weight' "$tmp/missing"
variant shape "$base" ""
edit_tensors "$tmp/shape" "w['model.layers.0.mlp.up_proj.weight'] = w['model.layers.0.mlp.up_proj.weight'][:-1]"
refuse wrong-shape 'model\.layers\.0\.mlp\.up_proj\.weight' "$tmp/shape"
# models Hugging Face computes in ways no mnemo model does (each a model transformers loads)
variant yarn "$base" "c['rope_scaling'] = {'rope_type': 'yarn', 'factor': 4.0, 'original_max_position_embeddings': 32}"
refuse rope-yarn yarn "$tmp/yarn"
ref make --arch llama --out "$tmp/head-dim" --head-dim 32 --tokenizer "$tmp/tok-llama3.json" >/dev/null
refuse head-dim head_dim "$tmp/head-dim"
variant attn-bias "$base" "c['attention_bias'] = True"
edit_tensors "$tmp/attn-bias" "
for i in range(2):
    for x, n in (('q', 64), ('k', 32), ('v', 32), ('o', 64)):
        w[f'model.layers.{i}.self_attn.{x}_proj.bias'] = 0.1 * torch.randn(n)"
refuse llama-attention-bias 'attention_bias|o_proj\.bias' "$tmp/attn-bias"
variant mlp-bias "$base" "c['mlp_bias'] = True"
edit_tensors "$tmp/mlp-bias" "
for i in range(2):
    for x, n in (('gate', 160), ('up', 160), ('down', 64)):
        w[f'model.layers.{i}.mlp.{x}_proj.bias'] = 0.1 * torch.randn(n)"
refuse llama-mlp-bias 'mlp_bias|mlp\.(gate|up|down)_proj\.bias' "$tmp/mlp-bias"
variant act "$base" "c['hidden_act'] = 'gelu'"
refuse hidden-act 'hidden_act|gelu' "$tmp/act"
variant sliding "$tmp/qwen2-f32-tied" "c.update(use_sliding_window=True, sliding_window=4, max_window_layers=1)"
refuse qwen2-sliding-window sliding "$tmp/sliding"
variant gpt2-gelu "$tmp/gpt2-f32" "c['activation_function'] = 'gelu'"
refuse gpt2-erf-gelu 'activation_function|gelu' "$tmp/gpt2-gelu"
variant gpt2-scale "$tmp/gpt2-f32" "c['scale_attn_by_inverse_layer_idx'] = True"
refuse gpt2-layer-scaled-attention scale_attn_by_inverse_layer_idx "$tmp/gpt2-scale"
# values of the wrong type, or claims the weights cannot hold: refused by name, never a default
variant theta-str "$base" "c['rope_theta'] = '500000'"
refuse rope-theta-string rope_theta "$tmp/theta-str"
variant llama3-nofactor "$base" "c['rope_scaling'] = {'rope_type': 'llama3', 'low_freq_factor': 1.0, 'high_freq_factor': 4.0}"
refuse llama3-without-factor factor "$tmp/llama3-nofactor"
variant model-type "$base" "c['model_type'] = 'qwen2'"
refuse model-type-not-the-class model_type "$tmp/model-type"
# a FIFO where config.json or tokenizer.json belongs: refused at once, not waited on
for f in config.json tokenizer.json; do
  variant "fifo-$f" "$base" ""
  rm "$tmp/fifo-$f/$f" && mkfifo "$tmp/fifo-$f/$f"
  refuse "fifo-$f" "fifo-$f/$f\" is not a regular file" "$tmp/fifo-$f"
done
# the checkpoint written into the model's own folder (over its weights): refused, untouched
before=$(sha256sum "$base/model.safetensors" "$base/config.json")
rc=0; "$mnemo" import-hf "$base" "$base/model.safetensors" >/dev/null 2>"$tmp/err.txt" || rc=$?
[ $rc = 2 ] && grep -q "into the model folder" "$tmp/err.txt" ||
  fail "OUT inside DIR: rc $rc, $(cat "$tmp/err.txt")"
[ "$before" = "$(sha256sum "$base/model.safetensors" "$base/config.json")" ] ||
  fail "an import into its own folder changed the folder"
variant hd-wrap "$base" "c['head_dim'] = 16 + 2**62"
refuse head-dim-overflow head_dim "$tmp/hd-wrap"
variant huge "$base" "c.update(hidden_size=4096, num_attention_heads=32, num_key_value_heads=8, num_hidden_layers=200, head_dim=128)"
refuse config-larger-than-the-weights 'embed_tokens\.weight' "$tmp/huge"
# safetensors the format forbids: two tensors on the same bytes; a tensor in a shard the
# index does not name it in; a FIFO in the file's place (it must not hang)
variant overlap "$base" ""
"$py" - "$tmp/overlap/model.safetensors" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n])
h["model.layers.1.input_layernorm.weight"]["data_offsets"] = h["model.layers.0.input_layernorm.weight"]["data_offsets"]
t = json.dumps(h).encode()
t += b" " * (-len(t) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(t)) + t + raw[8 + n:])
PY
refuse overlapping-tensors overlap "$tmp/overlap"
variant index "$tmp/llama-bf16-untied-llama3-2shards" ""
"$py" - "$tmp/index/model.safetensors.index.json" <<'PY'
import json, sys
i = json.load(open(sys.argv[1]))
files = sorted(set(i["weight_map"].values()))
k = next(k for k, v in i["weight_map"].items() if v == files[0])
i["weight_map"][k] = files[1]
json.dump(i, open(sys.argv[1], "w"))
PY
refuse tensor-not-where-the-index-says 'index' "$tmp/index"
variant fifo "$base" ""
rm "$tmp/fifo/model.safetensors" && mkfifo "$tmp/fifo/model.safetensors"
refuse fifo-weights 'regular file' "$tmp/fifo"
# a tag id far past the tokenizer's (it would size the model)
printf 'eng\t1000000\n' >"$tmp/far.tsv"
rc=0
"$mnemo" import-hf --tags "$tmp/far.tsv" "$base" "$tmp/far.ckpt" 2>"$tmp/err.txt" || rc=$?
[ "$rc" = 1 ] && grep -q 'past the tokenizer' "$tmp/err.txt" && [ ! -e "$tmp/far.ckpt" ] ||
  fail "a tag a million ids past the tokenizer: exit $rc: $(cat "$tmp/err.txt")"
# export-hf OUT/ is the folder OUT
"$mnemo" export-hf "$tmp/llama-f32-tied.ckpt" "$tmp/slash/" >/dev/null && [ -f "$tmp/slash/config.json" ] ||
  fail "export-hf into a name with a trailing slash"
echo "test_hf_import: ok"
