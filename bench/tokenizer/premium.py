#!/usr/bin/env python3
"""bench/tokenizer/premium.py COUNTS.jsonl LANGUAGES.tsv OUT_PREFIX [MNEMO ...]

The tokenization premium per language: its tokens for the parallel (UDHR) items over the
English tokens of the same items (only items both have), per tokenizer.  Writes
OUT_PREFIX.md (the table and the summary) and OUT_PREFIX.svg (a chart), and prints the
summary.  LANGUAGES.tsv says which languages trained mnemo's tokenizers (4th column
"train"); the others are evaluation-only and reported apart.  MNEMO names the tokenizers
the goal is for (max <= 1.5, median <= 1.2, below every reference for >= 90% of them)."""
import json
import statistics
import sys
from collections import defaultdict

REFS = ["bytes", "gpt2", "llama3", "qwen3"]


def main():
    counts_path, langs_path, prefix = sys.argv[1:4]
    goal_for = sys.argv[4:]
    tok = defaultdict(lambda: defaultdict(dict))  # tokenizer -> lang -> item -> tokens
    order = []
    for line in open(counts_path, encoding="utf-8"):
        r = json.loads(line)
        if r["tokenizer"] not in order:
            order.append(r["tokenizer"])
        tok[r["tokenizer"]][r["lang"]][r["item"]] = r["tokens"]
    kind = {}
    for line in open(langs_path, encoding="utf-8"):
        f = line.rstrip("\n").split("\t")
        if len(f) >= 4:
            kind[f[0]] = f[3]
    prem = defaultdict(dict)  # tokenizer -> lang -> premium
    for t in order:
        eng = tok[t]["eng"]
        for lang, items in tok[t].items():
            shared = [i for i in items if i in eng]
            if shared:
                prem[t][lang] = sum(items[i] for i in shared) / sum(eng[i] for i in shared)
    langs = sorted(prem[order[0]])
    trained = [l for l in langs if kind.get(l) == "train"]
    # the goal's languages: the trained ones but English, whose premium is 1 by definition
    goal_langs = [l for l in trained if l != "eng"]
    evalonly = [l for l in langs if kind.get(l) != "train"]
    refs = [t for t in order if t in REFS]

    def summary(t, group):
        v = [prem[t][l] for l in group]
        return max(v), statistics.median(v)

    def beats(t, l):
        return all(prem[t][l] < prem[r][l] for r in refs)

    out = []
    out.append("Tokenization premium: a language's tokens for the UDHR articles over English's "
               "tokens for the same articles (var/corpus/parallel.jsonl), counted by Hugging "
               "Face tokenizers 0.23.2.\n")
    out.append("## Summary\n")
    out.append("| tokenizer | max (trained) | median (trained) | max (eval-only) | median (eval-only) "
               "| trained languages below every reference |")
    out.append("|---|---|---|---|---|---|")
    for t in order:
        mx, md = summary(t, trained)
        emx, emd = summary(t, evalonly) if evalonly else (float("nan"),) * 2
        b = "" if t in refs else "%d / %d" % (sum(beats(t, l) for l in goal_langs), len(goal_langs))
        worst = max(trained, key=lambda l: prem[t][l])
        out.append("| %s | %.2f (%s) | %.2f | %.2f | %.2f | %s |" % (t, mx, worst, md, emx, emd, b))
    out.append("")
    out.append("Medians and maxima are over the %d training languages (English included, at 1); "
               "the count below every reference is over the %d other than English." % (
                   len(trained), len(goal_langs)))
    out.append("")
    for t in goal_for:
        mx, md = summary(t, trained)
        nb = sum(beats(t, l) for l in goal_langs)
        ok = mx <= 1.5 and md <= 1.2 and nb >= 0.9 * len(goal_langs)
        out.append("Goal for %s on its %d training languages (max <= 1.5, median <= 1.2; below "
                   "every reference for >= 90%% of the %d other than English): max %.2f, median "
                   "%.2f, below every reference for %d (%.0f%%): %s." % (
                       t, len(trained), len(goal_langs), mx, md, nb, 100.0 * nb / len(goal_langs),
                       "met" if ok else "NOT met"))
        lose = [l for l in goal_langs if not beats(t, l)]
        if lose:
            out.append("  Not below every reference: " + ", ".join(
                "%s (%.2f; best reference %s %.2f)" % (
                    l, prem[t][l], min(refs, key=lambda r: prem[r][l]),
                    min(prem[r][l] for r in refs)) for l in lose) + ".")
    out.append("")
    for title, group in (("Languages mnemo's tokenizers trained on", trained),
                         ("Evaluation-only languages (no training text)", evalonly)):
        if not group:
            continue
        out.append("## %s\n" % title)
        out.append("| language | " + " | ".join(order) + " |")
        out.append("|---|" + "---|" * len(order))
        for l in group:
            out.append("| %s | " % l + " | ".join("%.2f" % prem[t][l] for t in order) + " |")
        out.append("")
    text = "\n".join(out)
    open(prefix + ".md", "w", encoding="utf-8").write(text)
    write_svg(prefix + ".svg", order, prem, trained, evalonly)
    print("\n".join(out[: 8 + len(order) + 2 * len(goal_for)]))


def write_svg(path, order, prem, trained, evalonly):
    """A dot chart: a row per language (by mnemo's first tokenizer's premium), a dot per
    tokenizer on a log scale of premium."""
    colors = ["#999999", "#d62728", "#ff7f0e", "#9467bd", "#1f77b4", "#17becf", "#2ca02c",
              "#8c564b"]
    key = order[-1] if order else None
    langs = sorted(trained, key=lambda l: prem[key][l]) + sorted(evalonly, key=lambda l: prem[key][l])
    import math
    lo, hi = 0.5, max(max(prem[t][l] for l in langs) for t in order) * 1.1
    W, left, right, top, rowh = 900, 70, 20, 60, 14
    H = top + rowh * len(langs) + 40

    def x(v):
        return left + (W - left - right) * (math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo))

    s = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" '
         'font-size="10">' % (W, H), '<rect width="100%" height="100%" fill="white"/>',
         '<text x="%d" y="16" font-size="13">Tokenization premium vs English (UDHR, log scale)'
         '</text>' % left]
    for i, t in enumerate(order):
        s.append('<circle cx="%d" cy="34" r="4" fill="%s"/><text x="%d" y="37">%s</text>'
                 % (left + i * 110, colors[i % len(colors)], left + i * 110 + 7, t))
    for v in (0.5, 1, 1.2, 1.5, 2, 3, 5, 10, 20):
        if v <= hi:
            s.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#ddd"/><text x="%.1f" '
                     'y="%d" text-anchor="middle">%g</text>' % (x(v), x(v), top - 8, H - 30, x(v),
                                                               H - 18, v))
    for j, l in enumerate(langs):
        y = top + j * rowh + rowh / 2
        label = l + ("*" if l in evalonly else "")
        s.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>' % (left - 6, y + 3, label))
        for i, t in enumerate(order):
            s.append('<circle cx="%.1f" cy="%.1f" r="3" fill="%s" fill-opacity="0.8"/>'
                     % (x(prem[t][l]), y, colors[i % len(colors)]))
    s.append('<text x="%d" y="%d">* evaluation-only (no training text)</text>' % (left, H - 4))
    s.append("</svg>")
    open(path, "w", encoding="utf-8").write("\n".join(s))


if __name__ == "__main__":
    main()
