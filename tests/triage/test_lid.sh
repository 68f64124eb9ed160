#!/usr/bin/env bash
# test_lid.sh -- `mnemo lid`: language identification of short texts.
#
# Five made-up languages: two in Latin letters from different syllables, one in Greek, one
# in Cyrillic, and one more in Latin letters that the model is not trained on.  Held-out
# sentences of the four are identified at >= 97%; the fifth comes out "und"; a text half
# in one Latin language and half in the other is "mixed" with a span for each, split near
# the seam; empty, too short and invalid UTF-8 lines get "und" or a clear error, never a
# crash; a damaged model file is refused.
set -euo pipefail
mnemo=$1
tmp=$(mktemp -d /tmp/mnemo-test-lid-XXXXXX)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

python3 - "$tmp" <<'PY'
import json, random, sys
d = sys.argv[1]
rng = random.Random(11)
syll = {"lat": "ka to ri sa mu ne lo pa vi de".split(),
        "ita": "bel lor chi gno sce zio tte glia qua rro".split(),
        "ell": "κα το ρι σα μυ νε λο πα βι δε".split(),
        "rus": "ка то ри са му не ло па ви де".split(),
        "zzz": "hux wyk jof ypt xaw kyv fuj owz".split()}
def sentence(lang, words):
    return " ".join("".join(rng.choice(syll[lang]) for _ in range(rng.randint(1, 3)))
                    for _ in range(words))
with open(d + "/train.jsonl", "w") as f:
    for lang in ("lat", "ita", "ell", "rus"):
        for _ in range(300):
            f.write(json.dumps({"lang": lang, "text": sentence(lang, rng.randint(10, 40))},
                               ensure_ascii=False) + "\n")
with open(d + "/test.jsonl", "w") as f:
    for lang in ("lat", "ita", "ell", "rus"):
        for i in range(100):
            f.write(json.dumps({"id": lang, "text": sentence(lang, rng.randint(3, 12))},
                               ensure_ascii=False) + "\n")
    for i in range(20):
        f.write(json.dumps({"id": "und", "text": sentence("zzz", 12)}) + "\n")
with open(d + "/mixed.jsonl", "w") as f:
    for i in range(20):
        a, b = sentence("lat", 8), sentence("ita", 8)
        f.write(json.dumps({"id": len(a.encode()), "text": a + " " + b}) + "\n")
PY
"$mnemo" lid train --out "$tmp/lid.model" "$tmp/train.jsonl" >"$tmp/train.log" ||
  fail "lid train: $(cat "$tmp/train.log")"
grep -q '"languages":4' "$tmp/train.log" || fail "lid train: $(cat "$tmp/train.log")"

"$mnemo" lid --model "$tmp/lid.model" --json "$tmp/test.jsonl" >"$tmp/test.out" || fail "lid"
python3 - "$tmp/test.out" <<'PY' || fail "identification"
import collections, json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
known = [r for r in rows if r["id"] != "und"]
acc = sum(r["lang"] == r["id"] for r in known) / len(known)
assert len(known) == 400 and acc >= 0.97, "accuracy %.3f: %s" % (
    acc, collections.Counter((r["id"], r["lang"]) for r in known if r["lang"] != r["id"]))
unknown = [r for r in rows if r["id"] == "und"]
und = sum(r["lang"] == "und" for r in unknown)
assert und >= 18, "a language it was not trained on: %d of 20 und, %s" % (
    und, [(r["lang"], round(r["fit"], 2)) for r in unknown])
assert all(0 <= r["confidence"] <= 1 for r in rows)
PY

"$mnemo" lid --model "$tmp/lid.model" --json "$tmp/mixed.jsonl" >"$tmp/mixed.out" || fail "lid"
python3 - "$tmp/mixed.out" <<'PY' || fail "code-switching"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
good = 0
for r in rows:
    s = r["spans"]
    if r["mixed"] and [x["lang"] for x in s] == ["lat", "ita"] and abs(s[1]["start"] - r["id"] - 1) <= 8:
        good += 1
assert good >= 18, "%d of 20 mixed texts split right: %s" % (good, rows[:3])
PY

# bad input: one answer per line, none of them a crash
printf '\n%s\n\xff\xfe broken\nka\n' 'katori samu nelo' >"$tmp/bad.txt"
"$mnemo" lid --model "$tmp/lid.model" "$tmp/bad.txt" >"$tmp/bad.out" || fail "lid on bad lines"
[ "$(wc -l <"$tmp/bad.out")" = 4 ] || fail "bad lines: $(cat "$tmp/bad.out")"
sed -n 1p "$tmp/bad.out" | grep -q '^und' || fail "an empty line: $(sed -n 1p "$tmp/bad.out")"
sed -n 2p "$tmp/bad.out" | grep -q '^lat' || fail "a good line: $(sed -n 2p "$tmp/bad.out")"
sed -n 3p "$tmp/bad.out" | grep -q 'invalid text: .* at byte 0' || fail "invalid UTF-8: $(sed -n 3p "$tmp/bad.out")"
sed -n 4p "$tmp/bad.out" | grep -q '^und' || fail "too short: $(sed -n 4p "$tmp/bad.out")"

# a damaged model is refused, and so is a file that is not one
cp "$tmp/lid.model" "$tmp/bad.model"
printf 'x' | dd of="$tmp/bad.model" bs=1 seek=5000 conv=notrunc 2>/dev/null
rc=0; echo "ka to" | "$mnemo" lid --model "$tmp/bad.model" >/dev/null 2>"$tmp/err" || rc=$?
[ $rc = 1 ] && grep -q 'checksum mismatch' "$tmp/err" || fail "a damaged model: rc $rc, $(cat "$tmp/err")"
rc=0; echo "ka to" | "$mnemo" lid --model "$tmp/train.jsonl" >/dev/null 2>"$tmp/err" || rc=$?
[ $rc = 1 ] && grep -q 'not a language identification model' "$tmp/err" || fail "not a model: $(cat "$tmp/err")"
rc=0; "$mnemo" lid train --out "$tmp/x.model" "$tmp/bad.txt" >/dev/null 2>"$tmp/err" || rc=$?
[ $rc = 1 ] && grep -q 'bad.txt:2: not a' "$tmp/err" || fail "training on a bad file: rc $rc, $(cat "$tmp/err")"
[ ! -e "$tmp/x.model" ] || fail "a failed training wrote a model"
echo "ok: identification, unknown language, code-switching, bad lines, damaged model"
