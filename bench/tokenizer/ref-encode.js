// bench/tokenizer/ref-encode.js TOKENIZER.json TEXTS.jsonl -- every record's "text" encoded by
// Hugging Face's tokenizers (the npm reference) and by a straightforward reference written
// here (the MNEMO split as a JavaScript regex, GPT-2's byte-to-character map, the ranked
// merges applied to each piece until none applies); exits 1 naming the first record whose
// ids differ.  Prints "N records, M tokens: the same ids".
'use strict';
const fs = require('fs');
const { Tokenizer } = require('tokenizers');

// the MNEMO pattern; JavaScript before Node 23 has no (?i:...), so the contractions are
// spelled out
const SPLIT = new RegExp("'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])" +
  '|[^\\r\\n\\p{L}\\p{N}\\p{M}]?[\\p{L}\\p{M}]+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}\\p{M}]+[\\r\\n]*' +
  '|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+', 'gu');

function byteChars() {
  const bs = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) { bs.push(b); cs.push(256 + n++); }
  const m = new Array(256);
  bs.forEach((b, i) => { m[b] = String.fromCodePoint(cs[i]); });
  return m;
}

function reference(json) {
  const chars = byteChars();
  const vocab = json.model.vocab;
  const rank = new Map();
  json.model.merges.forEach((m, i) => {
    const [a, b] = Array.isArray(m) ? m : m.split(' ');
    const k = a + '\u0000' + b;
    if (!rank.has(k)) rank.set(k, i);
  });
  return (text) => {
    const ids = [];
    for (const piece of text.match(SPLIT) || []) {
      let syms = [...Buffer.from(piece, 'utf8')].map((b) => chars[b]);
      for (;;) { // the lowest-ranked adjacent pair, every occurrence left to right
        let best = Infinity;
        for (let i = 0; i + 1 < syms.length; i++) {
          const r = rank.get(syms[i] + '\u0000' + syms[i + 1]);
          if (r !== undefined && r < best) best = r;
        }
        if (best === Infinity) break;
        const out = [];
        for (let i = 0; i < syms.length; i++) {
          if (i + 1 < syms.length && rank.get(syms[i] + '\u0000' + syms[i + 1]) === best) {
            out.push(syms[i] + syms[i + 1]);
            i++;
          } else out.push(syms[i]);
        }
        syms = out;
      }
      for (const s of syms) {
        if (!(s in vocab)) throw new Error('no id for ' + JSON.stringify(s));
        ids.push(vocab[s]);
      }
    }
    return ids;
  };
}

(async () => {
  const json = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const t = Tokenizer.fromFile(process.argv[2]);
  const ref = reference(json);
  const recs = fs.readFileSync(process.argv[3], 'utf8').split('\n').filter((l) => l.trim())
    .map((l) => JSON.parse(l));
  let tokens = 0;
  for (const [i, r] of recs.entries()) {
    const hf = (await t.encode(r.text, null, { addSpecialTokens: false })).getIds();
    const mine = ref(r.text);
    if (hf.length !== mine.length || hf.some((v, k) => v !== mine[k])) {
      console.error(`record ${i + 1} (${r.lang}): Hugging Face ${JSON.stringify(hf.slice(0, 40))}` +
        ` but the reference ${JSON.stringify(mine.slice(0, 40))}`);
      process.exit(1);
    }
    tokens += hf.length;
  }
  console.log(`${recs.length} records, ${tokens} tokens: the same ids`);
})().catch((e) => { console.error(e); process.exit(1); });
