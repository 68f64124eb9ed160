#!/usr/bin/env bash
# test_export.sh -- language tags are the database's, end to end: mnemoctl export writes a
# split's documents per language and the tag table (refusing a bad --split or --lang, and a
# role that may not read documents); mnemo shard --tags takes that table; the README's path
# (export -> shard -> pretrain -> eval) works as written; mnemoctl bootstrap refuses a
# checkpoint whose tags are not the database's, naming the language and both ids, and
# stores nothing.
set -euo pipefail
ctl=$1
mnemo=$2
here=$(cd "$(dirname "$0")/../.." && pwd)
admin=$(cat "$MNEMO_TEST_PG_FILE")
db=t_export_$$
tmp=$(mktemp -d /tmp/mnemo-test-export-XXXXXX)
cleanup() {
  psql "$admin" -qc "drop database if exists $db with (force)" >/dev/null 2>&1 || true
  for r in ingest operator; do psql "$admin" -qc "drop role if exists t_x${r}_$$" >/dev/null 2>&1 || true; done
  [ -n "${KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_rc() { # expect_rc WANT CMD...: stdout in $tmp/out, stderr in $tmp/err
  local want=$1 rc=0
  shift
  "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  [ $rc -eq "$want" ] || { cat "$tmp/out" "$tmp/err" >&2; fail "\"$*\" exited $rc, want $want"; }
}
count() { psql "$MNEMO_DB" -qAtc "$1"; }
m() { "$mnemo" --config "$here/configs/models/tiny.yaml" --set train.seq_len=16 "$@"; }
unset MNEMO_CONFIG
psql "$admin" -qc "create database $db"
export MNEMO_DB="$admin dbname=$db"
"$ctl" migrate >/dev/null 2>&1
# half the documents held out, so both splits have every language
printf 'ingest: {heldout_fraction: 0.5}\ndaemon: {data_dir: "%s/data"}\n' "$tmp" >"$tmp/mnemo.yaml"
export MNEMO_CONFIG=$tmp/mnemo.yaml

# the database assigns tags in the order languages are added: tha 257, swh 258, spa 259, rus 260
for l in tha:Thai swh:Latn spa:Latn rus:Cyrl; do expect_rc 0 "$ctl" lang add "${l%%:*}" --script "${l##*:}"; done
python3 - "$tmp/docs.jsonl" <<'PY'
import json, sys
words = {"spa": "el río la casa un libro verde agua", "swh": "habari mvua kubwa jana usiku nyumba",
         "tha": "สวัสดี ภาษา ไทย บ้าน น้ำ ฝน ตก"}
with open(sys.argv[1], "w", encoding="utf-8") as f:
    for i in range(12):
        for lang, w in words.items():
            ws = w.split()
            text = " ".join(ws[(i + k) % len(ws)] for k in range(4 + i % 3)) + " %d." % i
            f.write(json.dumps({"lang": lang, "text": text, "source": "t"}, ensure_ascii=False) + "\n")
PY
expect_rc 0 "$ctl" ingest --format jsonl "$tmp/docs.jsonl"
for l in spa swh tha; do
  for s in train heldout; do
    [ "$(count "select count(*) from mnemo.documents where lang = '$l' and split = '$s'")" -gt 0 ] ||
      fail "no $s document of $l: the test needs both splits"
  done
done

# export: one file per language with documents (rus has none), the whole tag table
expect_rc 0 "$ctl" export --split train --out "$tmp/train"
[ "$(cd "$tmp/train" && ls | tr '\n' ' ')" = "spa.jsonl swh.jsonl tags.tsv tha.jsonl " ] ||
  fail "export wrote: $(ls "$tmp/train")"
printf 'rus\t260\nspa\t259\nswh\t258\ntha\t257\n' | cmp -s - "$tmp/train/tags.tsv" ||
  fail "tags.tsv: $(cat "$tmp/train/tags.tsv")"
for l in spa swh tha; do
  [ "$(wc -l <"$tmp/train/$l.jsonl")" = "$(count "select count(*) from mnemo.documents where lang = '$l' and split = 'train'")" ] ||
    fail "$l.jsonl has the wrong number of documents"
  # every record {"lang", "text", "split"}, the stored text exactly, in stored order
  python3 - "$tmp/train/$l.jsonl" "$l" train <(count "select text from mnemo.documents where lang = '$l' and split = 'train' order by id") <<'PY' ||
import json, sys
recs = [json.loads(x) for x in open(sys.argv[1], encoding="utf-8")]
texts = open(sys.argv[4], encoding="utf-8").read().splitlines()
assert all(sorted(r) == ["lang", "split", "text"] and r["lang"] == sys.argv[2] and r["split"] == sys.argv[3] for r in recs), recs[:2]
assert [r["text"] for r in recs] == texts, (recs[:2], texts[:2])
PY
    fail "$l.jsonl: records"
done
expect_rc 0 "$ctl" --json export --split all --out "$tmp/all" --lang swh --lang rus
[ "$(cd "$tmp/all" && ls | tr '\n' ' ')" = "rus.jsonl swh.jsonl tags.tsv " ] || fail "--lang: $(ls "$tmp/all")"
[ ! -s "$tmp/all/rus.jsonl" ] || fail "rus.jsonl is not empty"
[ "$(wc -l <"$tmp/all/swh.jsonl")" = 12 ] || fail "--split all: $(wc -l <"$tmp/all/swh.jsonl") swh documents, want 12"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["documents"]==12 and r["languages"]==4 and [f["lang"] for f in r["files"]]==["swh","rus"], r' "$tmp/out" ||
  fail "export --json: $(cat "$tmp/out")"

# refusals: usage errors (2) before anything is written
expect_rc 2 "$ctl" export --split test --out "$tmp/bad"
grep -q -- '--split must be train, heldout or all' "$tmp/err" || fail "bad --split: $(cat "$tmp/err")"
expect_rc 2 "$ctl" export --split train
expect_rc 2 "$ctl" export --out "$tmp/bad"
expect_rc 2 "$ctl" export --split train --out "$tmp/bad" --lang "Sw1"
grep -q -- '--lang "Sw1" is not a language code' "$tmp/err" || fail "bad --lang: $(cat "$tmp/err")"
expect_rc 2 "$ctl" export --split train --out "$tmp/bad" --lang spa --lang kat
grep -q -- '--lang "kat": unknown language' "$tmp/err" || fail "unknown --lang: $(cat "$tmp/err")"
[ -z "$(ls -A "$tmp/bad" 2>/dev/null)" ] || fail "a refused export wrote: $(ls "$tmp/bad")"
# a role that may not read documents is refused by the database; an operator may export
for r in ingest operator; do psql "$admin" -qc "create role t_x${r}_$$ login in role mnemo_$r"; done
expect_rc 1 env MNEMO_DB="$MNEMO_DB user=t_xingest_$$" "$ctl" export --split train --out "$tmp/by-ingest"
grep -q "permission denied" "$tmp/err" || fail "ingest role export: $(cat "$tmp/err")"
[ -z "$(ls -A "$tmp/by-ingest" 2>/dev/null)" ] || fail "a refused export wrote: $(ls "$tmp/by-ingest")"
expect_rc 0 env MNEMO_DB="$MNEMO_DB user=t_xoperator_$$" "$ctl" export --split train --out "$tmp/by-operator"
diff -r "$tmp/train" "$tmp/by-operator" >/dev/null || fail "the operator's export differs"

# the README's path, as written there: export -> shard (the table) -> pretrain -> eval
cd "$tmp"
expect_rc 0 "$ctl" export --split all --out data
expect_rc 0 m shard --split train --tags data/tags.tsv --out train.shard data/*.jsonl
python3 -c 'import json,sys; e=json.loads(open(sys.argv[1]).read().splitlines()[-1]); assert e["tags"]=={"rus":260,"spa":259,"swh":258,"tha":257}, e' "$tmp/out" ||
  fail "shard event: $(cat "$tmp/out")"
expect_rc 0 m shard --split heldout --tags data/tags.tsv --out heldout.shard data/*.jsonl
expect_rc 0 m --set train.steps=2 pretrain --out run train.shard
expect_rc 0 m eval --checkpoint run/model.safetensors heldout.shard
python3 -c 'import json,sys; e=json.loads(open(sys.argv[1]).read().splitlines()[-1]); assert sorted(x["lang"] for x in e["languages"])==["spa","swh","tha"], e' "$tmp/out" ||
  fail "eval: $(cat "$tmp/out")"
cd - >/dev/null
# the same documents met in another language order: the same tags, the same bytes
cat "$tmp/data/tha.jsonl" "$tmp/data/swh.jsonl" "$tmp/data/spa.jsonl" >"$tmp/reordered.jsonl"
expect_rc 0 m shard --split heldout --tags "$tmp/data/tags.tsv" --out "$tmp/reordered.shard" "$tmp/reordered.jsonl"
cmp -s "$tmp/heldout.shard" "$tmp/reordered.shard" || fail "another language order gave another shard"
grep -h '"train"' "$tmp/data/tha.jsonl" "$tmp/data/swh.jsonl" "$tmp/data/spa.jsonl" >"$tmp/train.jsonl"

# bootstrap: checkpoints whose tags are not the database's are refused, nothing stored
other() { # other NAME TAGS...: a 1-step checkpoint trained with a hand-made table
  local name=$1
  shift
  printf '%s\n' "$@" | tr ' ' '\t' >"$tmp/$name.tsv"
  m shard --tags "$tmp/$name.tsv" --out "$tmp/$name.shard" "$tmp/$name.jsonl" >/dev/null
  m --set train.steps=1 pretrain --out "$tmp/$name" "$tmp/$name.shard" >/dev/null
}
cat "$tmp/train/spa.jsonl" "$tmp/train/swh.jsonl" >"$tmp/swapped.jsonl"
other swapped "spa 257" "swh 258" # as input order numbered them
grep -h '"swh"' "$tmp/train.jsonl" | sed 's/"swh"/"kat"/' >"$tmp/kat.jsonl"
other kat "kat 258"
cp "$tmp/kat.jsonl" "$tmp/unknown.jsonl" && other unknown "kat 300"
expect_rc 1 "$ctl" bootstrap "$tmp/swapped/model.safetensors" --note "tags of another table"
grep -q 'language "spa" has tag 257 in the checkpoint but tag 259 in the database' "$tmp/err" ||
  fail "swapped tags: $(cat "$tmp/err")"
expect_rc 1 "$ctl" bootstrap "$tmp/kat/model.safetensors"
grep -q 'tag 258 is language "kat" in the checkpoint but language "swh" in the database' "$tmp/err" ||
  fail "a tag of another language: $(cat "$tmp/err")"
expect_rc 1 "$ctl" bootstrap "$tmp/unknown/model.safetensors"
grep -q 'language "kat" (tag 300 in the checkpoint) is not in the database' "$tmp/err" ||
  fail "an unknown language: $(cat "$tmp/err")"
[ "$(count "select count(*) from mnemo.checkpoints")" = 0 ] || fail "a refused bootstrap registered a row"
[ ! -e "$tmp/data/checkpoints" ] || fail "a refused bootstrap wrote files: $(ls -R "$tmp/data")"
# the checkpoint made from the database's table is taken
expect_rc 0 "$ctl" bootstrap "$tmp/run/model.safetensors" --note "from the export"
[ "$(count "select count(*) from mnemo.checkpoints where state = 'production'")" = 1 ] || fail "bootstrap"
[ -s "$tmp/data/checkpoints/1/model.safetensors" ] || fail "bootstrap copied no model"
echo "export: 1 passed, 0 failed"
