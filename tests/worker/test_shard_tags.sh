#!/usr/bin/env bash
# test_shard_tags.sh -- `mnemo shard` takes language tags from the database's table (--tags)
# or a checkpoint (--checkpoint), never from the order it meets languages in: the same
# documents in two language orders give the same tags and byte-identical shards; no table
# is a usage error; a language without a tag is refused by file:line; a table and a
# checkpoint that number a language (or a tag) differently are refused naming both.
set -euo pipefail
mnemo=$1
tmp=$(mktemp -d /tmp/mnemo-test-shard-tags-XXXXXX)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
here=$(cd "$(dirname "$0")/../.." && pwd)
m() { "$mnemo" --config "$here/configs/models/tiny.yaml" --set train.seq_len=16 "$@"; }
expect_rc() { # expect_rc WANT CMD...: stdout in $tmp/out, stderr in $tmp/err
  local want=$1 rc=0
  shift
  "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  [ $rc -eq "$want" ] || { cat "$tmp/out" "$tmp/err" >&2; fail "\"$*\" exited $rc, want $want"; }
}
# section_tags SHARD -- "code:tag" of each section, from the file itself (trainer/shard.c: a
# header of 64 bytes in version 1, 104 after, then 32-byte sections: code[8], tag u32 le, ...)
section_tags() {
  python3 -c '
import struct, sys
d = open(sys.argv[1], "rb").read()
h = 64 if struct.unpack_from("<I", d, 8)[0] == 1 else 104
n = struct.unpack_from("<I", d, 16)[0]
print(" ".join("%s:%d" % (d[h + 32 * i:h + 8 + 32 * i].rstrip(b"\0").decode(), struct.unpack_from("<I", d, h + 8 + 32 * i)[0]) for i in range(n)))' "$1"
}

# the database's table: ids as it assigned them, not in the order of any input
printf 'spa\t263\nswh\t258\ntha\t300\n' >"$tmp/tags.tsv"
printf '%s\n' '{"lang": "swh", "text": "Habari ya asubuhi"}' '{"lang": "swh", "text": "Mvua kubwa"}' \
  '{"lang": "spa", "text": "Buenos días"}' '{"lang": "tha", "text": "สวัสดีครับ"}' >"$tmp/a.jsonl"
printf '%s\n' '{"lang": "tha", "text": "สวัสดีครับ"}' '{"lang": "spa", "text": "Buenos días"}' \
  '{"lang": "swh", "text": "Habari ya asubuhi"}' '{"lang": "swh", "text": "Mvua kubwa"}' >"$tmp/b.jsonl"
expect_rc 0 m shard --tags "$tmp/tags.tsv" --out "$tmp/a.shard" "$tmp/a.jsonl"
cp "$tmp/out" "$tmp/a.event"
expect_rc 0 m shard --tags "$tmp/tags.tsv" --out "$tmp/b.shard" "$tmp/b.jsonl"
cmp -s "$tmp/a.shard" "$tmp/b.shard" || fail "two language orders gave different shards"
[ "$(section_tags "$tmp/a.shard")" = "spa:263 swh:258 tha:300" ] ||
  fail "the shard's tags are not the table's: $(section_tags "$tmp/a.shard")"
# the old failure: a shard that meets one language alone numbered it 257
grep '"swh"' "$tmp/a.jsonl" >"$tmp/swh.jsonl"
expect_rc 0 m shard --tags "$tmp/tags.tsv" --out "$tmp/swh.shard" "$tmp/swh.jsonl"
[ "$(section_tags "$tmp/swh.shard")" = "swh:258" ] || fail "swh alone: $(section_tags "$tmp/swh.shard")"
# the event reports the tags
python3 -c 'import json,sys; e=json.loads(open(sys.argv[1]).read().splitlines()[-1]); assert e["event"]=="shard" and e["tags"]=={"spa":263,"swh":258,"tha":300} and e["documents"]==4, e' \
  "$tmp/a.event" || fail "shard event: $(cat "$tmp/a.event")"

# no tag table: a usage error that says where to get one; nothing written
expect_rc 2 m shard --out "$tmp/none.shard" "$tmp/a.jsonl"
grep -q "mnemoctl export" "$tmp/err" && grep -q -- "--tags" "$tmp/err" && grep -q -- "--checkpoint" "$tmp/err" ||
  fail "no table: $(cat "$tmp/err")"
[ ! -e "$tmp/none.shard" ] || fail "a shard was written without a tag table"

# a language the table lacks: refused by file:line, naming it and mnemoctl lang add
printf 'spa\t263\nswh\t258\n' >"$tmp/no-tha.tsv"
expect_rc 1 m shard --tags "$tmp/no-tha.tsv" --out "$tmp/no-tha.shard" "$tmp/a.jsonl"
grep -qF "$tmp/a.jsonl:4: language \"tha\" has no tag in $tmp/no-tha.tsv" "$tmp/err" &&
  grep -q "mnemoctl lang add tha" "$tmp/err" || fail "a language without a tag: $(cat "$tmp/err")"
[ ! -e "$tmp/no-tha.shard" ] || fail "a shard was written with a language refused"
# ... but a document of the other split is not looked at (its language needs no tag)
printf '%s\n' '{"lang": "spa", "text": "hola", "split": "train"}' \
  '{"lang": "tha", "text": "สวัสดี", "split": "heldout"}' >"$tmp/split.jsonl"
expect_rc 0 m shard --tags "$tmp/no-tha.tsv" --split train --out "$tmp/split.shard" "$tmp/split.jsonl"
[ "$(section_tags "$tmp/split.shard")" = "spa:263" ] || fail "split: $(section_tags "$tmp/split.shard")"

# a checkpoint's own tags: a model trained on the table's shards
expect_rc 0 m --set train.steps=2 pretrain --out "$tmp/run" "$tmp/a.shard"
ck=$tmp/run/model.safetensors
expect_rc 0 m shard --checkpoint "$ck" --out "$tmp/c.shard" "$tmp/b.jsonl"
cmp -s "$tmp/a.shard" "$tmp/c.shard" || fail "--checkpoint gave other tags than the table it was trained with"
expect_rc 1 m shard --checkpoint "$ck" --out "$tmp/x.shard" <(echo '{"lang": "kat", "text": "გამარჯობა"}')
grep -q 'language "kat" has no tag in the checkpoint' "$tmp/err" || fail "kat by checkpoint: $(cat "$tmp/err")"
# both: they agree (a new language the database added since is the table's)
printf 'spa\t263\nswh\t258\ntha\t300\nkat\t301\n' >"$tmp/more.tsv"
echo '{"lang": "kat", "text": "გამარჯობა"}' >"$tmp/kat.jsonl"
expect_rc 0 m shard --tags "$tmp/more.tsv" --checkpoint "$ck" --out "$tmp/kat.shard" "$tmp/a.jsonl" "$tmp/kat.jsonl"
[ "$(section_tags "$tmp/kat.shard")" = "kat:301 spa:263 swh:258 tha:300" ] ||
  fail "table and checkpoint: $(section_tags "$tmp/kat.shard")"
# both, disagreeing on a language: refused naming the language, both files and both tags
printf 'spa\t263\nswh\t259\ntha\t300\n' >"$tmp/other.tsv"
expect_rc 1 m shard --tags "$tmp/other.tsv" --checkpoint "$ck" --out "$tmp/o.shard" "$tmp/a.jsonl"
grep -qF "language \"swh\" has tag 259 in $tmp/other.tsv but tag 258 in the checkpoint $ck" "$tmp/err" ||
  fail "a language numbered twice: $(cat "$tmp/err")"
[ ! -e "$tmp/o.shard" ] || fail "a shard was written from disagreeing tables"
# both, one tag given to two languages: refused naming both languages
printf 'spa\t263\nkat\t258\ntha\t300\n' >"$tmp/clash.tsv"
expect_rc 1 m shard --tags "$tmp/clash.tsv" --checkpoint "$ck" --out "$tmp/o.shard" "$tmp/a.jsonl"
grep -qF "tag 258 is language \"kat\" in $tmp/clash.tsv but language \"swh\" in the checkpoint $ck" "$tmp/err" ||
  fail "a tag of two languages: $(cat "$tmp/err")"
# a checkpoint as --tokenizer brings its tags too, held to the same agreement
expect_rc 0 m shard --tokenizer "$ck" --out "$tmp/t.shard" "$tmp/b.jsonl"
cmp -s "$tmp/a.shard" "$tmp/t.shard" || fail "--tokenizer CKPT gave other tags than the checkpoint's"
expect_rc 1 m shard --tags "$tmp/other.tsv" --tokenizer "$ck" --out "$tmp/o.shard" "$tmp/a.jsonl"
grep -qF "language \"swh\" has tag 259 in $tmp/other.tsv but tag 258 in the tokenizer $ck" "$tmp/err" ||
  fail "--tags against --tokenizer CKPT: $(cat "$tmp/err")"
# a tag table is read strictly: a tag id is a decimal from 257, alone after the tab (a negative
# one once meant "the next free tag", numbered by line order)
for bad in 'spa\t-1' 'spa\t4294967556' 'spa\t263x' 'spa 263' 'spa\t256' 'spa\t99999999999'; do
  printf "$bad\nswh\t258\ntha\t300\n" >"$tmp/bad.tsv"
  expect_rc 1 m shard --tags "$tmp/bad.tsv" --out "$tmp/bad.shard" "$tmp/a.jsonl"
  grep -qF "$tmp/bad.tsv:1: " "$tmp/err" || fail "tag table line '$bad': $(cat "$tmp/err")"
  [ ! -e "$tmp/bad.shard" ] || fail "a shard was written from tag table line '$bad'"
done
echo "shard_tags: 1 passed, 0 failed"
