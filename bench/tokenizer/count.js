// bench/tokenizer/count.js JSONL NAME=tokenizer.json... -- the tokens of every record's
// "text" under each tokenizer, counted by Hugging Face's tokenizers (the npm reference), as
// JSON lines {"tokenizer", "lang", "item", "tokens", "bytes"}.  NAME=bytes counts UTF-8 bytes.
'use strict';
const fs = require('fs');
const { Tokenizer } = require('tokenizers');
(async () => {
  const recs = fs.readFileSync(process.argv[2], 'utf8').split('\n').filter((l) => l.trim())
    .map((l) => JSON.parse(l));
  for (const spec of process.argv.slice(3)) {
    const eq = spec.indexOf('=');
    const name = spec.slice(0, eq), file = spec.slice(eq + 1);
    const t = file === 'bytes' ? null : Tokenizer.fromFile(file);
    for (const r of recs) {
      const bytes = Buffer.byteLength(r.text, 'utf8');
      const n = t ? (await t.encode(r.text, null, { addSpecialTokens: false })).getIds().length
        : bytes;
      process.stdout.write(JSON.stringify({ tokenizer: name, lang: r.lang, item: r.item,
        tokens: n, bytes }) + '\n');
    }
  }
})().catch((e) => { console.error(e); process.exit(1); });
