#!/usr/bin/env python3
"""forgetting.py -- what each safeguard buys against forgetting (bench/forgetting/run).

The setup, on the demo corpus (var/corpus):
  - nine languages in eight scripts; held-out documents (10%, by hash, as ingest splits)
    are the evaluation text of every arm, the same windows for all;
  - a base model (bench/forgetting/base.yaml, fixed seed, cached in var/forgetting/base)
    pretrained on all nine, Georgian barely (5% of its text);
  - fresh data for two languages only, skewed 70/30 by bytes: Spanish (well known) and
    Georgian (barely seen);
  - arms with equal steps from that base: control (more of the pretraining mix: the drift
    untouched languages show anyway), naive (fresh only), replay replacing 25% and 50% of
    each batch, replay added on top (20% of a larger batch, the fresh part as in naive),
    EWC alone at three strengths, distill (replay added, its windows' targets half the
    base's own predictions), and safeguards (replay added with distillation and German's
    replay boosted, a light EWC, unfreezing).
Per arm and language: bits per byte, and its change against the base.  Per arm:
worst_forgetting (the worst relative increase among the seven untouched languages),
worst_forgetting_net (the same, net of the control's), gain (the mean relative decrease
on the two fresh languages) and gain_ratio (over the naive arm's).  Written to
var/forgetting/results.json, results.md and chart.svg.
"""
import hashlib
import json
import os
import subprocess
import sys
import time

LANGS = ["spa", "deu", "rus", "ell", "arb", "hin", "tha", "kor", "kat"]
FRESH = {"spa": 0.7, "kat": 0.3}
BARELY = "kat"
PRETRAIN_CAP = 300_000  # bytes of pretraining text per language
HELDOUT = 0.10
STEPS = int(os.environ.get("FT_STEPS", "600"))
FT_LR = float(os.environ.get("FT_LR", "0.003"))
EVAL_TOKENS = 30_000


def unit(text, salt):
    """A number in [0, 1) from the text's SHA-256 (bytes 0-7: held-out, as ingest does)."""
    h = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(h[salt:salt + 8], "big") / 2.0**64


def run(cmd, log=None, threads=None):
    env = dict(os.environ)
    out = open(log, "w") if log else subprocess.DEVNULL
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, env=env, text=True)


def wait(p, what):
    _, err = p.communicate()
    if p.returncode != 0:
        sys.exit("%s failed (%d): %s" % (what, p.returncode, err.strip()))


def prepare(corpus, d, mnemo, base_cfg):
    """pre.jsonl, fresh.jsonl, eval.jsonl and their shards, with one tag table."""
    pre, fresh, ev = [], {l: [] for l in FRESH}, []
    size = {l: 0 for l in LANGS}
    for line in open(os.path.join(corpus, "train.jsonl"), encoding="utf-8"):
        r = json.loads(line)
        lang, text = r["lang"], r["text"]
        if lang not in LANGS:
            continue
        rec = json.dumps({"lang": lang, "text": text}, ensure_ascii=False)
        if unit(text, 0) < HELDOUT:
            ev.append(rec)
            continue
        u = unit(text, 8)
        to_pre = (u < 0.05) if lang == BARELY else (u < 0.5 if lang in FRESH else True)
        if to_pre:
            if size[lang] < PRETRAIN_CAP:
                pre.append(rec)
                size[lang] += len(text.encode("utf-8"))
        else:
            fresh[lang].append(rec)
    # 70/30 by bytes: cap the larger share to the smaller's proportion
    nbytes = {l: sum(len(json.loads(x)["text"].encode()) for x in fresh[l]) for l in FRESH}
    unit_bytes = min(nbytes[l] / FRESH[l] for l in FRESH)
    fresh_rows = []
    for l in FRESH:
        budget, used = unit_bytes * FRESH[l], 0
        for x in fresh[l]:
            n = len(json.loads(x)["text"].encode())
            if used + n > budget:
                break
            fresh_rows.append(x)
            used += n
        nbytes[l] = used
    with open(os.path.join(d, "tags.tsv"), "w") as f:
        for i, l in enumerate(sorted(LANGS)):
            f.write("%s\t%d\n" % (l, 257 + i))
    for name, rows in (("pre", pre), ("fresh", fresh_rows), ("eval", ev)):
        with open(os.path.join(d, name + ".jsonl"), "w", encoding="utf-8") as f:
            f.write("\n".join(rows) + "\n")
        subprocess.run([mnemo, "--config", base_cfg, "shard", "--tags", os.path.join(d, "tags.tsv"),
                        "--out", os.path.join(d, name + ".shard"),
                        os.path.join(d, name + ".jsonl")], check=True, stdout=subprocess.DEVNULL)
    return {"pretrain_bytes": size, "fresh_bytes": nbytes, "eval_documents": len(ev)}


def spec_text(base_cfg, extra):
    """base.yaml with the train keys an arm changes, and its finetune section."""
    lines = open(base_cfg).read().splitlines()
    out, section = [], None
    for line in lines:
        if line and not line.startswith(" ") and line.endswith(":"):
            section = line[:-1]
        key = line.strip().split(":")[0] if line.startswith("  ") else None
        if section == "train" and key in extra.get("train", {}):
            continue
        out.append(line)
        if line == "train:":
            for k, v in extra.get("train", {}).items():
                out.append("  %s: %s" % (k, v))
    out.append("finetune:")
    for k, v in extra.get("finetune", {}).items():
        out.append("  %s: %s" % (k, json.dumps(v) if isinstance(v, str) else v))
    return "\n".join(out) + "\n"


def evaluate(mnemo, base_cfg, ckpt, eval_shard):
    p = subprocess.run([mnemo, "--config", base_cfg, "eval", "--checkpoint", ckpt, "--max-tokens",
                        str(EVAL_TOKENS), eval_shard], check=True, capture_output=True, text=True)
    r = json.loads(p.stdout.strip().splitlines()[-1])
    return {l["lang"]: l["bits_per_byte"] for l in r["languages"]}


def svg_chart(rows, path):
    """worst forgetting (%) against gain ratio, one labelled point per arm"""
    W, H, P = 640, 420, 60
    xs = [r["gain_ratio"] for r in rows] + [0, 1.05]
    ys = [100 * r["worst_forgetting"] for r in rows] + [0]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    y1 = y1 if y1 > y0 else y0 + 1
    X = lambda v: P + (v - x0) / (x1 - x0) * (W - 2 * P)
    Y = lambda v: H - P - (v - y0) / (y1 - y0) * (H - 2 * P)
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" '
           'font-size="12">' % (W, H), '<rect width="100%" height="100%" fill="white"/>',
           '<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>' % (P, H - P, W - P, H - P),
           '<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>' % (P, P, P, H - P),
           '<text x="%d" y="%d" text-anchor="middle">gain on the fresh languages, as a share of '
           'the naive arm\'s</text>' % (W / 2, H - 15),
           '<text x="15" y="%d" transform="rotate(-90 15 %d)" text-anchor="middle">worst forgetting '
           'of an untouched language (%%)</text>' % (H / 2, H / 2)]
    for v in (0, 0.25, 0.5, 0.75, 1.0):
        if x0 <= v <= x1:
            out.append('<text x="%.1f" y="%d" text-anchor="middle">%.2f</text>' % (X(v), H - P + 15, v))
    for i in range(5):
        v = y0 + (y1 - y0) * i / 4
        out.append('<text x="%d" y="%.1f" text-anchor="end">%.1f</text>' % (P - 5, Y(v) + 4, v))
    for r in rows:
        x, y = X(r["gain_ratio"]), Y(100 * r["worst_forgetting"])
        out.append('<circle cx="%.1f" cy="%.1f" r="4" fill="%s"/>' %
                   (x, y, "crimson" if r["arm"] == "safeguards" else "steelblue"))
        out.append('<text x="%.1f" y="%.1f">%s</text>' % (x + 6, y - 6, r["arm"]))
    out.append("</svg>")
    open(path, "w").write("\n".join(out) + "\n")


def main():
    root = sys.argv[1]
    mnemo = os.path.join(root, "build", "bin", "mnemo")
    base_cfg = os.path.join(root, "bench", "forgetting", "base.yaml")
    d = os.path.join(root, "var", "forgetting")
    os.makedirs(d, exist_ok=True)
    t0 = time.time()
    data = prepare(os.path.join(root, "var", "corpus"), d, mnemo, base_cfg)
    print("data:", json.dumps(data))
    shard = lambda n: os.path.join(d, n + ".shard")

    base = os.path.join(d, "base", "model.safetensors")
    steps = [l for l in open(base_cfg) if l.strip().startswith("steps:")][0].split(":")[1].strip()
    try:  # a cached base is used when it is the one this config trains on this data
        r = subprocess.run([mnemo, "--config", base_cfg, "pretrain", "--resume", base, "--out",
                            os.path.join(d, "base"), shard("pre")], capture_output=True, text=True)
        cached = r.returncode == 0 and '"step":%s' % steps in r.stdout
    except OSError:
        cached = False
    if not cached:
        print("pretraining the base (%s steps)..." % steps, flush=True)
        subprocess.run(["rm", "-rf", os.path.join(d, "base")], check=True)
        wait(run([mnemo, "--config", base_cfg, "pretrain", "--out", os.path.join(d, "base"),
                  shard("pre")], os.path.join(d, "base.log")), "pretraining")
    store, fisher = os.path.join(d, "replay.store"), os.path.join(d, "base.fisher")
    if os.path.exists(store):
        os.remove(store)
    wait(run([mnemo, "--config", base_cfg, "replay", "absorb", "--store", store, "--capacity", "256",
              shard("pre")]), "replay absorb")
    wait(run([mnemo, "--config", base_cfg, "fisher", "--checkpoint", base, "--out", fisher,
              "--windows", "32", shard("pre")]), "fisher")

    common = {"steps": STEPS, "lr": FT_LR, "warmup_steps": STEPS // 10, "min_lr_frac": 0.1,
              "seed": int(os.environ.get("FT_SEED", "20261126")),  # base.yaml's
              "checkpoint_every": 0, "threads": 1}
    lam = float(os.environ.get("EWC_LAMBDA", "1000"))
    safe_lam = float(os.environ.get("SAFE_LAMBDA", "70"))
    distill = float(os.environ.get("DISTILL", "0.5"))
    # German shares the Latin script and much vocabulary with the fresh Spanish: the language
    # a fresh batch endangers most (the worst of every replay arm), so its replay is boosted
    boosts = os.environ.get("BOOSTS", "deu:3")
    arms = [
        ("control", "pre", {"language_alpha": 0.3}, {}),
        ("naive", "fresh", {"language_alpha": 1.0}, {}),
        ("replay25", "fresh", {"language_alpha": 1.0},
         {"replay_store": store, "replay_ratio": 0.25}),
        ("replay50", "fresh", {"language_alpha": 1.0},
         {"replay_store": store, "replay_ratio": 0.5}),
        ("replay20_added", "fresh", {"language_alpha": 1.0, "batch_size": 10},
         {"replay_store": store, "replay_ratio": 0.2}),
        ("ewc_%g" % (lam / 10), "fresh", {"language_alpha": 1.0},
         {"fisher": fisher, "ewc_lambda": lam / 10}),
        ("ewc_%g" % lam, "fresh", {"language_alpha": 1.0}, {"fisher": fisher, "ewc_lambda": lam}),
        ("ewc_%g" % (lam * 10), "fresh", {"language_alpha": 1.0},
         {"fisher": fisher, "ewc_lambda": lam * 10}),
        # replay added on top, its windows' targets partly the base's own predictions
        ("distill", "fresh", {"language_alpha": 1.0, "batch_size": 10},
         {"replay_store": store, "replay_ratio": 0.2, "distill": distill}),
        # everything together: replay added on top (the same batch as replay20_added) with
        # distillation and the endangered language boosted, a light EWC (alone, lambda 1000
        # already costs a tenth of the gain), a short first stage of unfreezing
        ("safeguards", "fresh", {"language_alpha": 1.0, "batch_size": 10},
         {"replay_store": store, "replay_ratio": 0.2, "distill": distill, "replay_boosts": boosts,
          "fisher": fisher, "ewc_lambda": safe_lam, "stages": "2:%d,all" % (STEPS // 20),
          "lr_factor": 2.6}),
    ]
    pending = list(arms)
    while pending:  # two arms at once, one thread each
        batch, pending = pending[:2], pending[2:]
        procs = []
        for name, data_name, train, ft in batch:
            a = os.path.join(d, "arm-" + name)
            subprocess.run(["rm", "-rf", a], check=True)
            os.makedirs(a)
            ft = dict(ft, baseline=base)
            with open(os.path.join(a, "job.yaml"), "w") as f:
                f.write(spec_text(base_cfg, {"train": dict(common, **train), "finetune": ft}))
            procs.append((name, run([mnemo, "finetune", "--spec", os.path.join(a, "job.yaml"),
                                     "--out", a, shard(data_name)], os.path.join(a, "log.jsonl"))))
        for name, p in procs:
            wait(p, "arm " + name)
        print("arms done:", ", ".join(n for n, *_ in batch), "(%.0f s)" % (time.time() - t0),
              flush=True)

    bpb = {"base": evaluate(mnemo, base_cfg, base, shard("eval"))}
    for name, *_ in arms:
        bpb[name] = evaluate(mnemo, base_cfg, os.path.join(d, "arm-" + name, "model.safetensors"),
                             shard("eval"))
    rel = {a: {l: bpb[a][l] / bpb["base"][l] - 1 for l in LANGS} for a in bpb}
    untouched = [l for l in LANGS if l not in FRESH]
    gain = {a: sum(-rel[a][l] for l in FRESH) / len(FRESH) for a in bpb}
    rows = []
    for name, *_ in arms:
        rows.append({"arm": name,
                     "worst_forgetting": max(rel[name][l] for l in untouched),
                     "worst_forgetting_net": max(rel[name][l] - rel["control"][l] for l in untouched),
                     "gain": gain[name],
                     "gain_ratio": gain[name] / gain["naive"] if gain["naive"] > 0 else float("nan")})
    result = {"languages": LANGS, "fresh": FRESH, "steps": STEPS, "lr": FT_LR, "seed": common["seed"], "ewc_lambda": lam,
              "safeguards_lambda": safe_lam, "distill": distill, "boosts": boosts,
              "data": data,
              "bits_per_byte": bpb, "relative_change": rel, "arms": rows,
              "seconds": round(time.time() - t0)}
    json.dump(result, open(os.path.join(d, "results.json"), "w"), indent=1)
    md = ["| arm | worst forgetting | net of control | gain | gain ratio |", "|---|---|---|---|---|"]
    for r in rows:
        md.append("| %s | %+.1f%% | %+.1f%% | %.1f%% | %.2f |" % (
            r["arm"], 100 * r["worst_forgetting"], 100 * r["worst_forgetting_net"],
            100 * r["gain"], r["gain_ratio"]))
    md += ["", "bits per byte on held-out text (change against the base):", "",
           "| arm | " + " | ".join(LANGS) + " |", "|---" * (len(LANGS) + 1) + "|",
           "| base | " + " | ".join("%.3f" % bpb["base"][l] for l in LANGS) + " |"]
    for name, *_ in arms:
        md.append("| %s | " % name + " | ".join(
            "%.3f (%+.1f%%)" % (bpb[name][l], 100 * rel[name][l]) for l in LANGS) + " |")
    open(os.path.join(d, "results.md"), "w").write("\n".join(md) + "\n")
    svg_chart(rows, os.path.join(d, "chart.svg"))
    print("\n".join(md))
    print("\nwritten: var/forgetting/results.json, results.md, chart.svg (%d s)" % result["seconds"])


if __name__ == "__main__":
    main()
