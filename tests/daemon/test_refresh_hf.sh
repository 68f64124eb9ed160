#!/usr/bin/env bash
# test_refresh_hf.sh -- the whole cycle on a model imported from Hugging Face, against a real
# PostgreSQL: a tiny random LlamaForCausalLM (untied head, grouped-query attention, Llama 3
# rotary scaling, bf16, two shards, a byte-level BPE tokenizer) made in Hugging Face's layout
# by tests/trainer/hf_ref.py, then
#   import-hf (tags in rows of their own) -> the worker's commands on it: shard, replay,
#   fisher, a fine-tune with replay, EWC, distillation and progressive unfreezing (its loss
#   falls), evalset, eval, guard, generate -> bootstrap -> a report triaged under it (its
#   severity) -> fresh data -> mnemoctl refresh -> verdict -> approval -> promotion ->
#   export-hf of production (LlamaForCausalLM again: bf16, the tags in tokenizer.json, and
#   Hugging Face's forward on it gives mnemo's logits) -> rollback.
#
#   test_refresh_hf.sh MNEMOCTL MNEMOD MNEMO HF_LOGITS_TOOL HF_REF_PY
set -euo pipefail
ctl=$1
mnemod=$2
mnemo=$3
tool=$4
ref=$5
here=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tests/daemon/cluster.sh
. "$here/tests/daemon/cluster.sh"
fail() {
  echo "FAIL: $*" >&2
  for f in "$tmp"/*.log "$tmp"/data/jobs/*/worker.log; do
    [ -f "$f" ] && { echo "== $f" >&2; tail -n 40 "$f" >&2; }
  done
  psql "$admin" -c "select id, kind, state, attempt, step, error from mnemo.jobs order by id" >&2 || true
  exit 1
}
py=
for p in python3 /usr/bin/python3; do # Debian's python3-torch is in the system python
  if command -v "$p" >/dev/null && "$p" -c "import torch" 2>/dev/null; then py=$p && break; fi
done
[ -n "$py" ] || { echo "FAIL: no python3 with torch (scripts/setup installs python3-torch)" >&2; exit 1; }
start_cluster mnemo-rhf

made_up_docs 11 120 fresh1:lat:100
made_up_languages

# ---------------------------------------------------------------- the user's model
"$py" "$ref" tokenizer --family llama3 --vocab 400 --out "$tmp/tok.json" >/dev/null
"$py" "$ref" make --arch llama --out "$tmp/hf" --dtype bf16 --untied --rope-scaling llama3 \
  --shards 2 --layers 2 --width 64 --heads 4 --kv-heads 2 --ff 160 --positions 256 \
  --tokenizer "$tmp/tok.json" >/dev/null || fail "hf_ref.py make"
psql "$admin" -XAtq -F $'\t' -c "select code, tag_id from mnemo.languages order by code" >"$tmp/tags.tsv"
"$mnemo" import-hf --tag-rows 16 --tags "$tmp/tags.tsv" "$tmp/hf" "$tmp/imported.safetensors" \
  >/dev/null || fail "import-hf"

# ---------------------------------------------------------------- the worker's commands
for split in train heldout; do
  psql "$admin" -XAtqc "select json_build_object('lang', lang, 'text', text, 'split', split)
                        from mnemo.documents where split = '$split' order by id" >"$tmp/$split.jsonl"
  "$mnemo" shard --tokenizer "$tmp/imported.safetensors" --tags "$tmp/tags.tsv" \
    --out "$tmp/$split.shard" "$tmp/$split.jsonl" >"$tmp/shard-$split.json" || fail "shard $split"
done
"$py" - "$tmp/shard-train.json" <<'PY' || fail "the tags are not the ids after the tokenizer's"
import json, sys
tags = json.loads(open(sys.argv[1]).read())["tags"]
assert sorted(tags.values()) == [400, 401, 402], tags  # the tokenizer's 400 ids, then the tags
PY
cat >"$tmp/w.yaml" <<EOF
train: {batch_size: 4, seq_len: 64, steps: 40, lr: 0.003, warmup_steps: 2, checkpoint_every: 0}
finetune: {baseline: "$tmp/imported.safetensors", fisher: "$tmp/fisher.safetensors", ewc_lambda: 10,
           replay_store: "$tmp/replay.store", replay_ratio: 0.25, distill: 0.2, stages: "1:10,all"}
EOF
"$mnemo" --config "$tmp/w.yaml" replay absorb --store "$tmp/replay.store" --capacity 32 \
  "$tmp/train.shard" >/dev/null || fail "replay absorb"
"$mnemo" --config "$tmp/w.yaml" fisher --checkpoint "$tmp/imported.safetensors" --windows 2 \
  --out "$tmp/fisher.safetensors" "$tmp/train.shard" >/dev/null || fail "fisher"
"$mnemo" --config "$tmp/w.yaml" --json finetune --spec "$tmp/w.yaml" --out "$tmp/ft" "$tmp/train.shard" \
  >"$tmp/ft.jsonl" 2>"$tmp/ft.log" || fail "finetune: $(tail -n 3 "$tmp/ft.log")"
"$py" - "$tmp/ft.jsonl" <<'PY' || fail "the fine-tune on the imported model did not learn"
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"step"' in l and '"loss"' in l]
first = sum(s["loss"] for s in steps[:5]) / 5
last = sum(s["loss"] for s in steps[-5:]) / 5
assert steps[0]["trainable_from"] == 1 and steps[-1]["trainable_from"] == -1, "stages"
assert steps[-1]["replayed"] > 0, "no replay"
assert last < first - 0.5, (first, last)
print("fine-tune loss %.3f -> %.3f" % (first, last))
PY
"$mnemo" --config "$tmp/w.yaml" evalset --checkpoint "$tmp/imported.safetensors" --out "$tmp/set.evalset" \
  "$tmp/heldout.jsonl" >/dev/null || fail "evalset"
"$mnemo" --config "$tmp/w.yaml" guard --baseline "$tmp/imported.safetensors" \
  --candidate "$tmp/ft/model.safetensors" --sets "$tmp/set.evalset" >"$tmp/guard.json" 2>"$tmp/guard.err" ||
  [ $? = 3 ] || fail "guard: $(cat "$tmp/guard.err")"
grep -q '"lat"' "$tmp/guard.json" || fail "the guard scored no language: $(head -c 300 "$tmp/guard.json")"
"$mnemo" --config "$tmp/w.yaml" eval --checkpoint "$tmp/ft/model.safetensors" "$tmp/heldout.shard" \
  >"$tmp/eval.json" || fail "eval"
grep -q '"bits_per_byte"' "$tmp/eval.json" || fail "eval: $(cat "$tmp/eval.json")"
"$mnemo" --config "$tmp/w.yaml" generate --checkpoint "$tmp/ft/model.safetensors" --lang ell \
  --tokens 20 >"$tmp/gen.json" || fail "generate"
grep -q '"text"' "$tmp/gen.json" || fail "generate: $(cat "$tmp/gen.json")"

# ---------------------------------------------------------------- the daemon's cycle
cat >"$tmp/mnemo.yaml" <<EOF
ingest: {heldout_fraction: 0.5}
train: {batch_size: 4, seq_len: 64, steps: 30, lr: 0.002, warmup_steps: 2, checkpoint_every: 0}
finetune: {ewc_lambda: 10, replay_ratio: 0.25, stages: "all"}
guards: {tolerance: 10, min_items: 5, resamples: 1000}
daemon: {data_dir: "$tmp/data", lease_s: 4, retry_backoff_s: 1, fisher_windows: 2,
         replay_capacity: 32, eval_items: 20}
EOF
MNEMO_DB=$operator "$ctl" --config "$tmp/mnemo.yaml" bootstrap "$tmp/imported.safetensors" \
  --trained-on-stored --note "an imported Llama" >/dev/null || fail "bootstrap"
base=$(sql "select id from mnemo.checkpoints where state = 'production'")
MNEMO_DB=$daemon_db "$mnemod" --config "$tmp/mnemo.yaml" 2>>"$tmp/d.log" &
pids+=($!)
until_true 20 grep -q 'msg=leader' "$tmp/d.log" || fail "mnemod did not lead"
# a report, triaged under the imported model: its severity comes from the model's score
MNEMO_DB=$reporter "$ctl" report --lang rus --text "ка то ри са му не ло па ви де ка то ри са" >/dev/null ||
  fail "report"
until_true 240 is "select count(*) from mnemo.reports where status = 'new'" 0 || fail "the report was not triaged"
is "select severity is not null from mnemo.reports order by id limit 1" t || fail "the report has no severity"

"$ctl" --config "$tmp/ingest.yaml" ingest --format jsonl "$tmp/fresh1.jsonl" >/dev/null
MNEMO_DB=$operator "$ctl" refresh --note test >/dev/null || fail "mnemoctl refresh"
until_true 300 is "select state from mnemo.jobs where kind = 'refresh'" succeeded || fail "the refresh did not finish"
cand=$(sql "select ckpt_id from mnemo.jobs where kind = 'refresh'")
is "select state from mnemo.checkpoints where id = $cand" awaiting_approval ||
  fail "candidate $cand: $(sql "select state || ' ' || reasons from mnemo.checkpoints where id = $cand")"
MNEMO_DB=$operator "$ctl" approve "$cand" --note "the imported model, refreshed" >/dev/null || fail "approve"
until_true 120 is "select state from mnemo.jobs where kind = 'promote'" succeeded || fail "no promotion"
is "select state from mnemo.checkpoints where id = $cand" production || fail "candidate not production"

# production exported: Hugging Face's class again, its dtype, the tags, the same logits
"$mnemo" export-hf "$tmp/data/checkpoints/$cand/model.safetensors" "$tmp/out" >/dev/null || fail "export-hf"
"$py" - "$tmp/out" <<'PY' || fail "the export is not the model imported"
import json, struct, sys
d = sys.argv[1]
c = json.load(open(d + "/config.json"))
assert c["architectures"] == ["LlamaForCausalLM"] and c["vocab_size"] == 416, c
assert c["rope_scaling"]["rope_type"] == "llama3" and c.get("tie_word_embeddings") is False, c
raw = open(d + "/model.safetensors", "rb")
h = json.loads(raw.read(struct.unpack("<Q", raw.read(8))[0]))
assert {e["dtype"] for k, e in h.items() if k != "__metadata__"} == {"BF16"}
t = json.load(open(d + "/tokenizer.json", encoding="utf-8"))
tags = {a["content"]: a["id"] for a in t["added_tokens"] if a["content"].startswith("<|lang:")}
assert tags == {"<|lang:lat|>": 400, "<|lang:ell|>": 401, "<|lang:rus|>": 402}, tags
PY
"$mnemo" import-hf "$tmp/out" "$tmp/again.safetensors" >/dev/null || fail "the export does not import again"
ids=400,5,17,200,33,4,9,12,100,7,399,1
"$tool" "$tmp/again.safetensors" "$tmp/mnemo.f32" ${ids//,/ } >/dev/null || fail "hf_logits_tool"
"$py" "$ref" forward --dir "$tmp/out" --ids "$ids" --out "$tmp/hf.f32" >/dev/null || fail "forward"
"$py" "$ref" compare-logits "$tmp/mnemo.f32" "$tmp/hf.f32" --tol 1e-4 >/dev/null ||
  fail "Hugging Face's forward on the export disagrees with mnemo"

MNEMO_DB=$operator "$ctl" rollback --note "back to the imported model" >/dev/null || fail "rollback"
is "select state from mnemo.checkpoints where id = $base" production || fail "rollback did not restore the import"
echo "ok: import-hf, the worker's commands, bootstrap, triage, refresh, approval, promotion, export-hf, rollback on a Llama"
