// tok_ref.js -- Hugging Face's tokenizers (npm tokenizers, Rust through Node) on records:
// the reference side of test_tokenizer_ref.sh and bench/tokenizer.
//   node tok_ref.js NODE_MODULES TOKENIZER.json RECORDS IDS
//       RECORDS: texts separated by NUL bytes, each decoded as UTF-8 by TextDecoder (invalid
//       bytes become U+FFFD, one per maximal invalid subpart); IDS: one line of ids a record
//   node tok_ref.js NODE_MODULES TOKENIZER.json RECORDS --bench REPEAT
//       the encode calls alone timed, one record a call, REPEAT times; JSON like the C side's
'use strict';
const fs = require('fs');
const path = require('path');
const [mods, tokPath, recPath, out, rep] = process.argv.slice(2);
const { Tokenizer } = require(path.join(mods, 'tokenizers'));

function records(buf) {
  const dec = new TextDecoder('utf-8');
  const recs = [];
  let i = 0;
  for (;;) {
    const j = buf.indexOf(0, i);
    if (j < 0) {
      if (i < buf.length || recs.length === 0) recs.push(dec.decode(buf.subarray(i)));
      break;
    }
    recs.push(dec.decode(buf.subarray(i, j)));
    i = j + 1;
  }
  return recs;
}

async function main() {
  const t = Tokenizer.fromFile(tokPath);
  const buf = fs.readFileSync(recPath);
  const recs = records(buf);
  if (out === '--bench') {
    const times = [];
    let tokens = 0;
    for (let r = 0; r < Number(rep); r++) {
      tokens = 0;
      const t0 = process.hrtime.bigint();
      for (const s of recs) tokens += (await t.encode(s, null, { addSpecialTokens: false })).getIds().length;
      times.push(Number(process.hrtime.bigint() - t0) / 1e9);
    }
    const mbs = times.map((s) => buf.length / 1e6 / s).sort((a, b) => a - b);
    console.log(JSON.stringify({ bytes: buf.length, tokens, median_mb_s: mbs[mbs.length >> 1],
      best_mb_s: mbs[mbs.length - 1] }));
    return;
  }
  const lines = [];
  for (const s of recs) lines.push((await t.encode(s, null, { addSpecialTokens: false })).getIds().join(' '));
  fs.writeFileSync(out, lines.join('\n') + '\n');
}
main().catch((e) => { console.error(e); process.exit(1); });
