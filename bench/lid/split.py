#!/usr/bin/env python3
"""split.py CORPUS.jsonl OUT -- the documents a language identifier trains on and the
held-out sentences it is judged on.

A document whose SHA-256 starts with a byte below 13 (about 5%) is held out; its lines of
20 to 300 bytes are the test sentences, at most PER_LANG per language (documents in corpus
order).  Everything else goes to OUT/train.jsonl."""
import collections, hashlib, json, os, sys

PER_LANG = int(os.environ.get("PER_LANG", "100"))
src, out = sys.argv[1], sys.argv[2]
n = collections.Counter()
with open(os.path.join(out, "train.jsonl"), "w", encoding="utf-8") as tr, \
     open(os.path.join(out, "sentences.jsonl"), "w", encoding="utf-8") as te:
    for line in open(src, encoding="utf-8"):
        d = json.loads(line)
        if hashlib.sha256(d["text"].encode()).digest()[0] >= 13:
            tr.write(line)
            continue
        for s in d["text"].split("\n"):
            s = s.strip()
            if 20 <= len(s.encode()) <= 300 and n[d["lang"]] < PER_LANG:
                n[d["lang"]] += 1
                te.write(json.dumps({"id": d["lang"], "text": s}, ensure_ascii=False) + "\n")
print("split: %d held-out sentences in %d languages" % (sum(n.values()), len(n)))
