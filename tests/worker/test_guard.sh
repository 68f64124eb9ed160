#!/usr/bin/env bash
# test_guard.sh -- evaluation sets and the regression guards end to end on a tiny model:
# a set built from held-out documents, a parallel file and probes (held-out by each
# record's stored split whatever today's fraction; the same set from the same inputs in any
# order; a bad record refused with its file and line, nothing written;
# a damaged set refused); eval per item, cached per (checkpoint, set); `mnemo guard`: the
# base against itself passes (exit 0), a naive fine-tune on one language against its base
# fails on at least one other language (exit 3), a tiny set gives insufficient evidence;
# on a terminal (script(1)) eval and guard draw a progress line ending at 100%, elsewhere none.
set -euo pipefail
mnemo=$1
tmp=$(mktemp -d /tmp/mnemo-test-guard-XXXXXX)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
here=$(cd "$(dirname "$0")/../.." && pwd)
m() { "$mnemo" --config "$here/configs/models/tiny.yaml" --set train.seq_len=32 \
  --set ingest.heldout_fraction=0.5 --set guards.resamples=2000 "$@"; }

# three made-up languages in three scripts: words from a few syllables each, documents of
# about 150 bytes; half of them held out by the ingest hash split
python3 - "$tmp" <<'PY'
import json, random, sys
d = sys.argv[1]
rng = random.Random(7)
syll = {"lat": "ka to ri sa mu ne lo pa vi de".split(),
        "ell": "κα το ρι σα μυ νε λο πα βι δε".split(),
        "rus": "ка то ри са му не ло па ви де".split()}
def doc(lang):
    return " ".join("".join(rng.choice(syll[lang]) for _ in range(rng.randint(1, 3)))
                    for _ in range(rng.randint(25, 40)))
with open(d + "/all.jsonl", "w") as f:
    for lang in syll:
        for _ in range(160):
            f.write(json.dumps({"lang": lang, "text": doc(lang)}, ensure_ascii=False) + "\n")
with open(d + "/lat.jsonl", "w") as f:  # the fresh data of the naive fine-tune
    for _ in range(200):
        f.write(json.dumps({"lang": "lat", "text": doc("lat")}) + "\n")
with open(d + "/parallel.jsonl", "w") as f:  # the "same" item in every language
    for i in range(6):
        for lang in syll:
            f.write(json.dumps({"lang": lang, "item": "article-%d" % i, "text": doc(lang)},
                               ensure_ascii=False) + "\n")
        f.write(json.dumps({"lang": "eng", "item": "article-%d" % i, "text": "x" * 100}) + "\n")
with open(d + "/probes.jsonl", "w") as f:
    f.write(json.dumps({"report": 1, "lang": "ell", "text": "κα το", "expected": "κα το ρι",
                        "status": "accepted"}, ensure_ascii=False) + "\n")
    f.write(json.dumps({"report": 2, "lang": "rus", "text": "ка то ри са", "status": "fixed",
                        "fixed_bits": 1000.0}, ensure_ascii=False) + "\n")
PY
printf 'ell\t257\nlat\t258\nrus\t259\n' >"$tmp/tags.tsv"
m shard --tags "$tmp/tags.tsv" --split train --out "$tmp/train.shard" "$tmp/all.jsonl" >/dev/null
m shard --tags "$tmp/tags.tsv" --out "$tmp/lat.shard" "$tmp/lat.jsonl" >/dev/null

# the evaluation set: only held-out documents; eng (not a model language) only normalises
m evalset --tags "$tmp/tags.tsv" --parallel "$tmp/parallel.jsonl" --probes "$tmp/probes.jsonl" \
  --out "$tmp/set" "$tmp/all.jsonl" >"$tmp/set.log"
python3 - "$tmp/set.log" <<'PY' || fail "evalset: $(cat "$tmp/set.log")"
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])
assert 150 < r["heldout"] < 330 and r["left_out"]["not_heldout"] == 480 - r["heldout"], r
assert r["parallel"] == 18 and r["probes"] == 2 and r["left_out"]["other_language"] == 6, r
PY
# the split stored at ingest is the truth, not today's fraction: documents held out at 0.3 and
# exported with their "split" (as the daemon exports mnemo.documents), built at a fraction
# of 0.05: every held-out record is an item and every train record is left out
python3 - "$tmp/all.jsonl" "$tmp/stored.jsonl" <<'PY'
import hashlib, json, sys
with open(sys.argv[2], "w", encoding="utf-8") as f:
    for l in open(sys.argv[1], encoding="utf-8"):
        r = json.loads(l)
        h = int.from_bytes(hashlib.sha256(r["text"].encode()).digest()[:8], "big")
        r["split"] = "heldout" if h < int(0.3 * 2**64) else "train"
        f.write(json.dumps(r, ensure_ascii=False) + "\n")
PY
m --set ingest.heldout_fraction=0.05 evalset --tags "$tmp/tags.tsv" --out "$tmp/stored.set" \
  "$tmp/stored.jsonl" >"$tmp/stored.log"
python3 - "$tmp/stored.jsonl" "$tmp/stored.set" "$tmp/stored.log" <<'PY' ||
import hashlib, json, sys
recs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
held = {hashlib.sha256(r["text"].encode()).hexdigest()[:16] for r in recs if r["split"] == "heldout"}
rows = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
items = {r["id"] for r in rows[1:] if r["kind"] == "heldout"}
assert len(held) > 100 and items == held, (len(items), len(held))
assert rows[0]["heldout_split"] == "stored" and "heldout_fraction" not in rows[0], rows[0]
ev = json.loads(open(sys.argv[3]).read().splitlines()[-1])
assert ev["left_out"]["not_heldout"] == sum(r["split"] == "train" for r in recs), ev
assert ev["split"] == {"stored": len(recs), "hashed": 0}, ev
PY
  fail "evalset with stored splits: $(cat "$tmp/stored.log")"
# a split that is neither: refused naming file:line, nothing written
sed '2s/"split": "[a-z]*"/"split": "test"/' "$tmp/stored.jsonl" >"$tmp/badsplit.jsonl"
rc=0; m evalset --tags "$tmp/tags.tsv" --out "$tmp/badsplit.set" "$tmp/badsplit.jsonl" \
  >/dev/null 2>"$tmp/err" || rc=$?
[ $rc = 1 ] && grep -q 'badsplit.jsonl:2: "split" must be "train" or "heldout"' "$tmp/err" &&
  [ ! -e "$tmp/badsplit.set" ] || fail "a bad split: rc $rc, $(cat "$tmp/err")"
tac "$tmp/all.jsonl" >"$tmp/rev.jsonl" # the same documents in another order: the same set
m evalset --tags "$tmp/tags.tsv" --parallel "$tmp/parallel.jsonl" --probes "$tmp/probes.jsonl" \
  --out "$tmp/set2" "$tmp/rev.jsonl" >/dev/null
cmp -s "$tmp/set" "$tmp/set2" || fail "the same documents in another order made another set"
# --max-item-bytes: each held-out item is its document's beginning, cut at a character (the
# Greek and Cyrillic letters are two bytes: 41 falls inside one)
m evalset --tags "$tmp/tags.tsv" --max-item-bytes 41 --out "$tmp/short" "$tmp/all.jsonl" >/dev/null
python3 - "$tmp/short" "$tmp/all.jsonl" <<'PY' || fail "--max-item-bytes"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
docs = [json.loads(l)["text"] for l in open(sys.argv[2], encoding="utf-8")]
items = [r for r in rows[1:] if r["kind"] == "heldout"]
assert rows[0]["max_item_bytes"] == 41 and len(items) > 100, rows[0]
by_start = {}
for d in docs:
    by_start.setdefault(d.encode()[:41], d.encode())
for it in items:
    b = it["text"].encode()
    d = next(v for k, v in by_start.items() if k.startswith(b))
    assert b == d[:41].decode("utf-8", "ignore").encode(), (b, d[:41])  # longest whole prefix
assert any(len(it["text"].encode()) == 40 for it in items), "no item was cut back"
PY
# a bad record: refused with its file and line, and the set already there is untouched
cp "$tmp/set" "$tmp/set.before"
printf '{"lang": "ell", "text": ""}\n' >>"$tmp/rev.jsonl"
rc=0; m evalset --out "$tmp/set" "$tmp/rev.jsonl" >/dev/null 2>"$tmp/err" || rc=$?
[ $rc = 1 ] && grep -q "rev.jsonl:481" "$tmp/err" || fail "a bad record: rc $rc, $(cat "$tmp/err")"
cmp -s "$tmp/set" "$tmp/set.before" || fail "a refused build changed the set"
printf '{"report": 3, "lang": "ell", "text": "x", "status": "fixed"}\n' >"$tmp/bad-probe.jsonl"
rc=0; m evalset --probes "$tmp/bad-probe.jsonl" --out "$tmp/set3" >/dev/null 2>"$tmp/err" || rc=$?
[ $rc = 1 ] && grep -q "fixed_bits" "$tmp/err" && [ ! -e "$tmp/set3" ] ||
  fail "a fixed probe without its bits: rc $rc, $(cat "$tmp/err")"
# a NUL in a text, the same item twice with different texts, no held-out document at all:
# each refused at build time
printf '{"lang": "ell", "text": "κα\\u0000το"}\n' >"$tmp/nul.jsonl"
printf '{"lang": "ell", "item": "a1", "text": "κα"}\n{"lang": "ell", "item": "a1", "text": "το"}\n{"lang": "eng", "item": "a1", "text": "xx"}\n' >"$tmp/twice.jsonl"
for bad in "nul.jsonl:without NUL" "twice.jsonl:given twice" "empty:no held-out document"; do
  f=${bad%%:*} why=${bad#*:}
  case $f in
    twice.jsonl) args=(--parallel "$tmp/$f") ;;
    empty) head -n 0 "$tmp/all.jsonl" >"$tmp/empty.jsonl"; args=("$tmp/empty.jsonl") ;;
    *) args=("$tmp/$f") ;;
  esac
  rc=0; m evalset --out "$tmp/bad-set" "${args[@]}" >/dev/null 2>"$tmp/err" || rc=$?
  [ $rc = 1 ] && grep -q "$why" "$tmp/err" && [ ! -e "$tmp/bad-set" ] ||
    fail "evalset with $f: rc $rc, $(cat "$tmp/err")"
done
sed 's/"κα/"κκ/' "$tmp/set" >"$tmp/damaged" # one item edited: the checksum no longer holds
rc=0; m eval --checkpoint x --sets "$tmp/damaged" >/dev/null 2>"$tmp/err" || rc=$?
[ $rc = 1 ] && grep -q "damaged or was edited" "$tmp/err" || fail "a damaged set: rc $rc, $(cat "$tmp/err")"

# a base on all three languages, and a naive fine-tune on the fresh Latin text only
m --set train.steps=300 --set train.lr=0.01 pretrain --out "$tmp/base" "$tmp/train.shard" >/dev/null
cat >"$tmp/job.yaml" <<SPEC
model: {n_layer: 2, n_head: 2, n_embd: 32, max_seq_len: 32, vocab: 512}
train: {batch_size: 4, seq_len: 32, steps: 200, lr: 0.003, warmup_steps: 5, checkpoint_every: 0}
finetune: {baseline: "$tmp/base/model.safetensors"}
SPEC
"$mnemo" finetune --spec "$tmp/job.yaml" --out "$tmp/naive" "$tmp/lat.shard" >/dev/null
# the model's own languages: the same set as from its tag table
m evalset --checkpoint "$tmp/base/model.safetensors" --parallel "$tmp/parallel.jsonl" \
  --probes "$tmp/probes.jsonl" --out "$tmp/set4" "$tmp/all.jsonl" >/dev/null
cmp -s "$tmp/set" "$tmp/set4" || fail "evalset --checkpoint differs from --tags"

# eval per item, then from the cache (the same numbers)
m eval --checkpoint "$tmp/base/model.safetensors" --sets "$tmp/set" --per-doc --cache "$tmp/cache" \
  >"$tmp/e1.log"
m eval --checkpoint "$tmp/base/model.safetensors" --sets "$tmp/set" --per-doc --cache "$tmp/cache" \
  >"$tmp/e2.log"
python3 - "$tmp/e1.log" "$tmp/e2.log" <<'PY' || fail "eval per item: $(tail -1 "$tmp/e1.log")"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert not a[-1]["cached"] and b[-1]["cached"]
items = [r for r in a if "nll_bits" in r]
assert items == [r for r in b if "nll_bits" in r] and len(items) > 150
assert all(r["nll_bits"] > 0 and r["bytes"] > 0 for r in items)
kinds = {(r["lang"], r["kind"]) for r in a[-1]["languages"]}
assert ("ell", "probe") in kinds and ("rus", "parallel") in kinds and ("lat", "heldout") in kinds
PY

# the cache is per window too: another train.seq_len scores again
m --set train.seq_len=16 eval --checkpoint "$tmp/base/model.safetensors" --sets "$tmp/set" \
  --cache "$tmp/cache" >"$tmp/e4.log"
python3 -c "
import json, sys
a, b = (json.loads(open(f).read().splitlines()[-1]) for f in sys.argv[1:])
assert not b['cached'] and a['languages'] != b['languages'], b
" "$tmp/e2.log" "$tmp/e4.log" || fail "the cache ignored the window: $(tail -1 "$tmp/e4.log")"
# one set given twice would count every item twice: refused
rc=0; m guard --baseline "$tmp/base/model.safetensors" --candidate "$tmp/base/model.safetensors" \
  --sets "$tmp/set,$tmp/set2" >/dev/null 2>"$tmp/err" || rc=$?
[ $rc = 1 ] && grep -q "would count twice" "$tmp/err" || fail "a set twice: rc $rc, $(cat "$tmp/err")"

# the set's held-out items score as `eval` scores the same documents from a held-out shard
m shard --tags "$tmp/tags.tsv" --split heldout --out "$tmp/ho.shard" "$tmp/all.jsonl" >/dev/null
m eval --checkpoint "$tmp/base/model.safetensors" --per-doc "$tmp/ho.shard" >"$tmp/e3.log"
python3 - "$tmp/e1.log" "$tmp/e3.log" <<'PY' || fail "set and shard scores differ"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
s = sorted(round(r["nll_bits"], 2) for r in a if r.get("kind") == "heldout")
t = sorted(round(r["nll_bits"], 2) for r in b if r.get("event") == "doc")
assert len(s) == len(t) > 150, (len(s), len(t))
worst = max(abs(x - y) / y for x, y in zip(s, t))
assert worst < 1e-4, worst
PY

# on a terminal (script(1) gives one) a progress line on stderr: what is scored, a percentage,
# rewritten in place ("\r") and ended at 100%; off a terminal, and with --json, none
args=(--config "$here/configs/models/tiny.yaml" --set train.seq_len=32)
on_tty() { script -qec "$(printf '%q ' "$mnemo" "${args[@]}" "$@")" /dev/null </dev/null; }
on_tty eval --checkpoint "$tmp/base/model.safetensors" --sets "$tmp/set" >"$tmp/tty1" ||
  fail "eval on a terminal: $(cat "$tmp/tty1")"
on_tty guard --baseline "$tmp/base/model.safetensors" --candidate "$tmp/base/model.safetensors" \
  --sets "$tmp/set" >"$tmp/tty2" || fail "guard on a terminal: $(cat "$tmp/tty2")"
on_tty eval --checkpoint "$tmp/base/model.safetensors" "$tmp/ho.shard" >"$tmp/tty3" ||
  fail "eval of a shard on a terminal: $(cat "$tmp/tty3")"
on_tty --json eval --checkpoint "$tmp/base/model.safetensors" --sets "$tmp/set" >"$tmp/tty4" ||
  fail "eval --json on a terminal: $(cat "$tmp/tty4")"
m eval --checkpoint "$tmp/base/model.safetensors" --sets "$tmp/set" >/dev/null 2>"$tmp/err"
[ ! -s "$tmp/err" ] || fail "a progress line off a terminal: $(cat "$tmp/err")"
python3 - "$tmp" <<'PY' || fail "progress on a terminal: $(cat -v "$tmp/tty1" "$tmp/tty2" "$tmp/tty3")"
import re, sys
d = sys.argv[1]
def lines(name):
    """the progress lines of a typescript: each a list of the states it was drawn in"""
    out = []
    for row in open(d + "/" + name, encoding="utf-8", newline="").read().split("\n"):
        if "\r" in row.rstrip("\r") and "scoring" in row:  # drawn with "\r", not only the pty's
            out.append([s.replace("\x1b[K", "") for s in row.rstrip("\r").split("\r")[1:]])
    return out
for name, want in (("tty1", 1), ("tty2", 2), ("tty3", 1)):
    got = lines(name)
    assert len(got) == want, (name, got)
    for states in got:
        pct = [int(re.search(r"(\d+)%(?:  ETA \S+)?$", s).group(1)) for s in states]  # an ETA after 3 s
        assert pct == sorted(pct) and pct[-1] == 100 and all(p < 100 for p in pct[:-1]), states
        m = re.match(r"scoring (\d+)/(\d+) tokens .*with .+ +100%$", states[-1])
        assert m and m.group(1) == m.group(2), states
assert "with baseline" in lines("tty2")[0][-1] and "with candidate" in lines("tty2")[1][-1]
t = open(d + "/tty4", encoding="utf-8", newline="").read()  # --json: JSON lines only
assert '"event":"eval"' in t and "\x1b[K" not in t and not re.search("\r(?!\n)", t), t
PY

# the base against itself passes; the naive fine-tune fails on at least one other language
m guard --baseline "$tmp/base/model.safetensors" --candidate "$tmp/base/model.safetensors" \
  --sets "$tmp/set" --cache "$tmp/cache" --out "$tmp/self.json" >/dev/null ||
  fail "the base against itself: exit $?, $(head -c 600 "$tmp/self.json")"
rc=0; m guard --baseline "$tmp/base/model.safetensors" --candidate "$tmp/naive/model.safetensors" \
  --sets "$tmp/set" --cache "$tmp/cache" --out "$tmp/naive.json" >"$tmp/naive.log" || rc=$?
[ $rc = 3 ] || fail "the naive fine-tune: exit $rc, want 3"
python3 - "$tmp/self.json" "$tmp/naive.json" <<'PY' || fail "verdicts: $(head -c 2000 "$tmp/naive.json")"
import json, sys
s, n = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert s["pass"] and not s["failing"] and all(l["outcome"] == "pass" for l in s["languages"])
assert all(l["change"] == 0 and l["interval"] == [0, 0] for l in s["languages"])
out = {l["lang"]: l for l in n["languages"]}
assert not n["pass"] and any(out[l]["outcome"] == "fail" for l in ("ell", "rus")), out
for l in out.values():
    assert l["interval"][0] <= l["change"] <= l["interval"][1] and l["reason"] and l["rule"]
assert n["baseline"]["weights"] != n["candidate"]["weights"] and n["set"] == s["set"]
PY
# forgetting against the best production value so far: the base's verdict is history
m guard --baseline "$tmp/base/model.safetensors" --candidate "$tmp/naive/model.safetensors" \
  --sets "$tmp/set" --cache "$tmp/cache" --history "$tmp/self.json" --out "$tmp/hist.json" >/dev/null || true
python3 -c "
import json, sys
v = {l['lang']: l for l in json.load(open(sys.argv[1]))['languages']}
for l in v.values():
    assert abs(l['forgetting_vs_best'] - (l['candidate_bpb'] / l['best_bpb'] - 1)) < 1e-9, l
    assert l['best_bpb'] <= l['baseline_bpb'] + 1e-12, l
" "$tmp/hist.json" || fail "history: $(head -c 1500 "$tmp/hist.json")"
# must improve: the fresh language under the naive fine-tune improves; ell cannot
m guard --baseline "$tmp/base/model.safetensors" --candidate "$tmp/naive/model.safetensors" \
  --sets "$tmp/set" --cache "$tmp/cache" --must-improve lat,ell --out "$tmp/mi.json" >/dev/null || true
python3 -c "
import json, sys
v = {l['lang']: l for l in json.load(open(sys.argv[1]))['languages']}
assert v['ell']['must_improve'] and v['ell']['outcome'] != 'pass', v['ell']
" "$tmp/mi.json" || fail "must improve: $(head -c 1500 "$tmp/mi.json")"
# a tiny set: insufficient evidence, with the items it would need
head -n 8 "$tmp/all.jsonl" >"$tmp/few.jsonl"
m evalset --tags "$tmp/tags.tsv" --out "$tmp/few" "$tmp/few.jsonl" "$tmp/all.jsonl" --max-items 5 >/dev/null
rc=0; m guard --baseline "$tmp/base/model.safetensors" --candidate "$tmp/base/model.safetensors" \
  --sets "$tmp/few" --out "$tmp/few.json" >/dev/null || rc=$?
[ $rc = 3 ] || fail "a tiny set: exit $rc, want 3"
python3 -c "
import json, sys
v = json.load(open(sys.argv[1]))
assert all(l['outcome'] == 'insufficient evidence' and l['items_needed'] >= 30 for l in v['languages'])
" "$tmp/few.json" || fail "a tiny set: $(head -c 1500 "$tmp/few.json")"
# usage
rc=0; "$mnemo" guard --baseline x >/dev/null 2>&1 || rc=$?
[ $rc = 2 ] || fail "guard without a candidate: exit $rc, want 2"
echo "guard: 1 passed, 0 failed"
