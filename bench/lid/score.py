#!/usr/bin/env python3
"""score.py OUT -- accuracy of mnemo lid and its peers on the held-out sentences, side by
side: over all our languages, and over the languages each peer supports (mnemo on the same
sentences beside it).  Codes are compared after mapping to one key: ISO 639-1 where the
language (or its macrolanguage) has one, else ISO 639-3."""
import collections, json, os, sys

out = sys.argv[1]
iso = json.load(open("/usr/share/iso-codes/json/iso_639-3.json"))["639-3"]
alpha2 = {l["alpha_3"]: l["alpha_2"] for l in iso if "alpha_2" in l}
macro = {"arb": "ara", "cmn": "zho", "ekk": "est", "lvs": "lav", "npi": "nep", "zsm": "msa",
         "pes": "fas", "swh": "swa", "uzn": "uzb", "khk": "mon", "azj": "aze", "als": "sqi",
         "ydd": "yid", "plt": "mlg", "gaz": "orm", "quz": "que", "nob": "nob"}
other = {"no": "nb", "iw": "he", "jw": "jv", "zh-Hant": "zh", "in": "id", "sh": "hr"}


def key(code):
    code = other.get(code, code)
    if len(code) == 2:
        return code
    c = macro.get(code, code)
    return alpha2.get(c, alpha2.get(code, code))


rows = [json.loads(l) for l in open(os.path.join(out, "sentences.jsonl"), encoding="utf-8")]
mnemo = [json.loads(l) for l in open(os.path.join(out, "mnemo.jsonl"))]
timing = json.load(open(os.path.join(out, "mnemo-time.json")))
truth = [key(r["id"]) for r in rows]
mine = [key(r["lang"]) for r in mnemo]
langs = sorted(set(truth))


def acc(pred, idx):
    return sum(pred[i] == truth[i] for i in idx) / len(idx) if idx else float("nan")


everything = list(range(len(rows)))
print("%d held-out sentences in %d languages (at most %s each)" % (
    len(rows), len(langs), os.environ.get("PER_LANG", "100")))
print()
print("| detector | our languages it knows | its accuracy on them | mnemo lid on the same "
      "| its accuracy on all | sentences/s (classifying) | load s |")
print("|---|---|---|---|---|---|---|")
print("| mnemo lid | %d | %.3f | %.3f | %.3f | %.0f | %.2f |" % (
    len(langs), acc(mine, everything), acc(mine, everything), acc(mine, everything),
    len(rows) / timing["run_s"], timing["load_s"]))
worst = {}
for line in open(os.path.join(out, "peers.jsonl")):
    p = json.loads(line)
    if "error" in p:
        print("| %s | not available: %s | | | | | |" % (p["detector"], p["error"][:80]))
        continue
    known = {key(c) for c in p["supports"]}
    pred = [key(c) for c in p["pred"]]
    idx = [i for i in everything if truth[i] in known]
    cover = sorted({truth[i] for i in idx})
    print("| %s | %d | %.3f | %.3f | %.3f | %.0f | %.2f |" % (
        p["detector"], len(cover), acc(pred, idx), acc(mine, idx), acc(pred, everything),
        len(rows) / p["run_s"], p["load_s"]))
    per = collections.defaultdict(list)
    for i in idx:
        per[truth[i]].append(i)
    worst[p["detector"]] = sorted((acc(pred, v), acc(mine, v), l) for l, v in per.items())[:5]
print()
per = collections.defaultdict(list)
for i in everything:
    per[truth[i]].append(i)
print("mnemo lid's weakest languages: " + ", ".join(
    "%s %.2f" % (l, a) for a, l in sorted((acc(mine, v), l) for l, v in per.items())[:6]))
for d, w in worst.items():
    print("%s's weakest (its accuracy / mnemo's): %s" % (d, ", ".join(
        "%s %.2f/%.2f" % (l, a, b) for a, b, l in w)))
