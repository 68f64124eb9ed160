#!/usr/bin/env python3
"""forgetting.py -- what each safeguard buys against forgetting (bench/forgetting/run).

Scenarios (SCENARIOS, default all three), each on the demo corpus (var/corpus):
  - nine languages; held-out documents (10%, by hash, as ingest splits) are the evaluation
    text of every arm, the same windows for all;
  - a base model (bench/forgetting/base.yaml, fixed seed, cached in var/forgetting/NAME/base)
    pretrained on all nine, one of them barely (5% of its text);
  - fresh data for two languages only, skewed by bytes; the others are untouched:
      spa-kat  Spanish 70% / Georgian 30% (barely seen); 9 languages in 8 scripts
      rus-tam  Russian 85% / Tamil 15% (barely seen), beside Ukrainian, Bulgarian, Serbian
               (Cyrillic), French, Italian, Japanese, Chinese
      mar-khm  Marathi 50% / Khmer 50% (barely seen), beside Hindi and Nepali (Devanagari),
               Bengali, Portuguese, Czech, Turkish, Greek
  - arms with equal steps from that base, each fine-tune seed (SEEDS, default "20261126 2"):
    control (more of the pretraining mix: the drift untouched languages show anyway), naive
    (fresh only), replay replacing 25% and 50% of each batch, replay added on top (20% of a
    larger batch, the fresh part as in naive), EWC alone at three strengths, distill (replay
    added, its windows' targets half the base's own predictions), fixed (distill with a
    light EWC and unfreezing: the safeguards without the drift controller), and safeguards
    (fixed with the drift controller, bound ADAPT_MAX, default 2) -- one configuration for every
    scenario, no language named by hand.  REUSE="control naive" keeps those arms' finished
    runs when their job spec is unchanged (a change to the controller cannot touch them);
    SUMMARY_ONLY=1 only rewrites the summary from the results there.  Replay-only, EWC-only and distill arms run with
    the controller off (finetune.adapt_max_boost 1).
Per arm and language: bits per byte, and its change against the base.  Per arm:
worst_forgetting (the worst relative increase among the seven untouched languages),
worst_forgetting_net (the same, net of the control's), gain (the mean relative decrease
on the two fresh languages) and gain_ratio (over the naive arm's); the safeguards arm's
replay factors over time and the step time of each arm.  Written to
var/forgetting/NAME/SEED/results.json, results.md and chart.svg, and a summary over every
scenario and seed to var/forgetting/summary.md.
"""
import hashlib
import json
import os
import subprocess
import sys
import time

SCENARIOS = {
    "spa-kat": {"langs": ["spa", "deu", "rus", "ell", "arb", "hin", "tha", "kor", "kat"],
                "fresh": {"spa": 0.7, "kat": 0.3}, "barely": "kat"},
    "rus-tam": {"langs": ["rus", "ukr", "bul", "srp", "fra", "ita", "jpn", "cmn", "tam"],
                "fresh": {"rus": 0.85, "tam": 0.15}, "barely": "tam"},
    "mar-khm": {"langs": ["mar", "hin", "npi", "ben", "por", "ces", "tur", "ell", "khm"],
                "fresh": {"mar": 0.5, "khm": 0.5}, "barely": "khm"},
}
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


def prepare(corpus, d, mnemo, base_cfg, sc):
    """pre.jsonl, fresh.jsonl, eval.jsonl and their shards, with one tag table."""
    LANGS, FRESH, BARELY = sc["langs"], sc["fresh"], sc["barely"]
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


def stamp_of(base_cfg, d):
    """what a base is made from: its config and its data (the shard is deterministic)"""
    h = hashlib.sha256()
    for f in (base_cfg, os.path.join(d, "pre.shard")):
        h.update(open(f, "rb").read())
    return h.hexdigest()


def base_of(mnemo, base_cfg, d):
    """the scenario's base, cached while base/stamp says it was made from this config and
    data; returns a Popen to wait for (then write_stamp), or None when cached"""
    stamp = os.path.join(d, "base", "stamp")
    ok = os.path.exists(os.path.join(d, "base", "model.safetensors")) and os.path.exists(stamp)
    if ok and open(stamp).read().strip() == stamp_of(base_cfg, d):
        return None
    subprocess.run(["rm", "-rf", os.path.join(d, "base")], check=True)
    return run([mnemo, "--config", base_cfg, "--set", "train.threads=1", "pretrain", "--out",
                os.path.join(d, "base"), os.path.join(d, "pre.shard")], os.path.join(d, "base.log"))


def write_stamp(base_cfg, d):
    with open(os.path.join(d, "base", "stamp"), "w") as f:
        f.write(stamp_of(base_cfg, d) + "\n")


def reused(a, arm, spec):
    """REUSE names arms whose finished run is kept when its job spec is the same (the
    binary is not compared: reuse an arm only when the change cannot touch it)"""
    if arm not in os.environ.get("REUSE", "").split():
        return False
    try:
        same = open(os.path.join(a, "job.yaml")).read() == spec
    except OSError:
        return False
    return same and os.path.exists(os.path.join(a, "model.safetensors"))


def arms_of(store, fisher, lam, safe_lam, distill, steps):
    # the drift controller and distillation (both on by default) off: the arm is what it says
    off = {"adapt_max_boost": 1, "distill": 0}
    guarded = {"replay_store": store, "replay_ratio": 0.2, "distill": distill, "fisher": fisher,
               "ewc_lambda": safe_lam, "stages": "2:%d,all" % (steps // 20), "lr_factor": 2.6,
               "adapt_max_boost": float(os.environ.get("ADAPT_MAX", "2"))}
    return [
        ("control", "pre", {"language_alpha": 0.3}, {}),
        ("naive", "fresh", {"language_alpha": 1.0}, {}),
        ("replay25", "fresh", {"language_alpha": 1.0},
         dict(off, replay_store=store, replay_ratio=0.25)),
        ("replay50", "fresh", {"language_alpha": 1.0},
         dict(off, replay_store=store, replay_ratio=0.5)),
        ("replay20_added", "fresh", {"language_alpha": 1.0, "batch_size": 10},
         dict(off, replay_store=store, replay_ratio=0.2)),
        ("ewc_%g" % (lam / 10), "fresh", {"language_alpha": 1.0},
         dict(off, fisher=fisher, ewc_lambda=lam / 10)),
        ("ewc_%g" % lam, "fresh", {"language_alpha": 1.0}, dict(off, fisher=fisher, ewc_lambda=lam)),
        ("ewc_%g" % (lam * 10), "fresh", {"language_alpha": 1.0},
         dict(off, fisher=fisher, ewc_lambda=lam * 10)),
        # replay added with distillation, a light EWC (alone, lambda 1000 already costs a
        # tenth of the gain), a short first stage of unfreezing; without, then with the
        # drift controller -- side by side (two at once), so their step times compare
        ("fixed", "fresh", {"language_alpha": 1.0, "batch_size": 10}, dict(guarded, adapt_max_boost=1)),
        ("safeguards", "fresh", {"language_alpha": 1.0, "batch_size": 10}, guarded),
        # replay added on top, its windows' targets partly the base's own predictions
        ("distill", "fresh", {"language_alpha": 1.0, "batch_size": 10},
         dict(off, replay_store=store, replay_ratio=0.2, distill=distill)),
    ]


def scenario_seed(mnemo, base_cfg, name, sc, d, seed, t0):
    """every arm of one scenario and seed; its results"""
    LANGS, FRESH = sc["langs"], sc["fresh"]
    shard = lambda n: os.path.join(d, n + ".shard")
    base = os.path.join(d, "base", "model.safetensors")
    store, fisher = os.path.join(d, "replay.store"), os.path.join(d, "base.fisher")
    out = os.path.join(d, str(seed))
    os.makedirs(out, exist_ok=True)
    common = {"steps": STEPS, "lr": FT_LR, "warmup_steps": STEPS // 10, "min_lr_frac": 0.1,
              "seed": seed, "checkpoint_every": 0, "threads": 1}
    lam = float(os.environ.get("EWC_LAMBDA", "1000"))
    safe_lam = float(os.environ.get("SAFE_LAMBDA", "70"))
    distill = float(os.environ.get("DISTILL", "0.5"))
    arms = arms_of(store, fisher, lam, safe_lam, distill, STEPS)
    only = os.environ.get("ARMS")
    if only:
        arms = [a for a in arms if a[0] in only.split() or a[0] in ("control", "naive")]
    specs = {arm: spec_text(base_cfg, {"train": dict(common, **train),
                                       "finetune": dict(ft, baseline=base)})
             for arm, _, train, ft in arms}
    pending = [x for x in arms if not reused(os.path.join(out, "arm-" + x[0]), x[0], specs[x[0]])]
    while pending:  # two arms at once, one thread each
        batch, pending = pending[:2], pending[2:]
        procs = []
        for arm, data_name, train, ft in batch:
            a, spec = os.path.join(out, "arm-" + arm), specs[arm]
            subprocess.run(["rm", "-rf", a], check=True)
            os.makedirs(a)
            with open(os.path.join(a, "job.yaml"), "w") as f:
                f.write(spec)
            procs.append((arm, run([mnemo, "finetune", "--spec", os.path.join(a, "job.yaml"),
                                    "--out", a, shard(data_name)], os.path.join(a, "log.jsonl"))))
        for arm, p in procs:
            wait(p, "%s seed %d arm %s" % (name, seed, arm))
        print("%s seed %d: %s done (%.0f s)" % (name, seed, ", ".join(n for n, *_ in batch),
                                              time.time() - t0), flush=True)

    bpb = {"base": evaluate(mnemo, base_cfg, base, shard("eval"))}
    steps_log, step_ms = {}, {}
    for arm, *_ in arms:
        a = os.path.join(out, "arm-" + arm)
        bpb[arm] = evaluate(mnemo, base_cfg, os.path.join(a, "model.safetensors"), shard("eval"))
        ev = [json.loads(l) for l in open(os.path.join(a, "log.jsonl"))]
        ev = [e for e in ev if e.get("event") == "step"]
        ms = sorted(e["step_ms"] for e in ev)
        step_ms[arm] = ms[len(ms) // 2] if ms else float("nan")
        if arm == "safeguards":
            steps_log = {"step": [e["step"] for e in ev],
                         "factor": [e.get("replay_factor", {}) for e in ev],
                         "drift": [e.get("drift", {}) for e in ev]}
    rel = {a: {l: bpb[a][l] / bpb["base"][l] - 1 for l in LANGS} for a in bpb}
    untouched = [l for l in LANGS if l not in FRESH]
    gain = {a: sum(-rel[a][l] for l in FRESH) / len(FRESH) for a in bpb}
    rows = []
    for arm, *_ in arms:
        worst = max(untouched, key=lambda l: rel[arm][l])
        rows.append({"arm": arm, "worst_forgetting": rel[arm][worst], "worst_language": worst,
                     "worst_forgetting_net": max(rel[arm][l] - rel["control"][l] for l in untouched),
                     "gain": gain[arm], "step_ms": step_ms[arm],
                     "gain_ratio": gain[arm] / gain["naive"] if gain["naive"] > 0 else float("nan")})
    result = {"scenario": name, "languages": LANGS, "fresh": FRESH, "steps": STEPS, "lr": FT_LR,
              "seed": seed, "ewc_lambda": lam, "safeguards_lambda": safe_lam, "distill": distill,
              "bits_per_byte": bpb, "relative_change": rel, "arms": rows,
              "safeguards_over_time": steps_log}
    json.dump(result, open(os.path.join(out, "results.json"), "w"), indent=1)
    md = ["### %s, seed %d" % (name, seed), "",
          "| arm | worst forgetting | net of control | gain | gain ratio | step ms |",
          "|---|---|---|---|---|---|"]
    for r in rows:
        md.append("| %s | %+.2f%% (%s) | %+.2f%% | %.1f%% | %.4f | %.1f |" % (
            r["arm"], 100 * r["worst_forgetting"], r["worst_language"],
            100 * r["worst_forgetting_net"], 100 * r["gain"], r["gain_ratio"], r["step_ms"]))
    md += ["", "bits per byte on held-out text (change against the base):", "",
           "| arm | " + " | ".join(LANGS) + " |", "|---" * (len(LANGS) + 1) + "|",
           "| base | " + " | ".join("%.3f" % bpb["base"][l] for l in LANGS) + " |"]
    for arm, *_ in arms:
        md.append("| %s | " % arm + " | ".join(
            "%.3f (%+.1f%%)" % (bpb[arm][l], 100 * rel[arm][l]) for l in LANGS) + " |")
    if steps_log.get("step"):  # the controller's factors, every tenth of the run
        n = len(steps_log["step"])
        md += ["", "the safeguards arm's replay factors (drift controller) over the run:", "",
               "| step | factors above 1 (relative drift) |", "|---|---|"]
        for i in range(n // 10 - 1, n, max(1, n // 10)):
            f, dr = steps_log["factor"][i], steps_log["drift"][i]
            up = ", ".join("%s x%.2f (%+.2f%%)" % (l, f[l], 100 * dr.get(l, 0))
                           for l in sorted(f, key=lambda l: -f[l]) if f[l] > 1.0)
            md.append("| %d | %s |" % (steps_log["step"][i], up or "none"))
    open(os.path.join(out, "results.md"), "w").write("\n".join(md) + "\n")
    svg_chart(rows, os.path.join(out, "chart.svg"))
    print("\n".join(md), flush=True)
    return result


def verdict(result):
    """the goal on one scenario and seed: safeguards <= 1% worst forgetting at >= 0.90 of
    naive's gain, and strictly better on both axes than every replay-only and EWC-only arm"""
    rows = {r["arm"]: r for r in result["arms"]}
    s = rows.get("safeguards")
    if not s:
        return "no safeguards arm", False
    peers = [r for a, r in rows.items() if a.startswith("replay") or a.startswith("ewc_")]
    # a peer not beaten on both axes, and on which: "replay20_added (gain 0.9876)"
    beaten = []
    for r in peers:
        axes = ([] if s["worst_forgetting"] < r["worst_forgetting"] else
                ["forgetting %+.2f%%" % (100 * r["worst_forgetting"])]) + \
               ([] if s["gain_ratio"] > r["gain_ratio"] else ["gain %.4f" % r["gain_ratio"]])
        if axes:
            beaten.append("%s (%s)" % (r["arm"], ", ".join(axes)))
    goal = s["worst_forgetting"] <= 0.01 and s["gain_ratio"] >= 0.90
    ok = goal and not beaten and peers
    why = "%+.2f%% (%s) at %.4f, %s" % (100 * s["worst_forgetting"], s["worst_language"],
                                       s["gain_ratio"], "within 1% at 0.90" if goal else "**outside 1% at 0.90**")
    if beaten:
        why += "; not beaten on both axes: " + ", ".join(beaten)
    if not peers:
        why += "; no replay-only or EWC-only arm ran (ARMS) to compare with"
    return why, bool(ok)


def summarize(top, names, seeds):
    """var/forgetting/summary.md from every scenario's and seed's results.json: the goal's
    verdict and the controller's cost (the safeguards arm's median step over fixed's, which
    differ only by the controller; both ran beside another arm)"""
    out = ["| scenario | seed | safeguards: worst forgetting at gain ratio | goal met "
           "| controller's cost per step |", "|---|---|---|---|---|"]
    for n in names:
        for seed in seeds:
            path = os.path.join(top, n, str(seed), "results.json")
            if not os.path.exists(path):
                continue
            r = json.load(open(path))
            why, ok = verdict(r)
            ms = {x["arm"]: x["step_ms"] for x in r["arms"]}
            cost = ("%+.1f%% (%.1f / %.1f ms)" % (100 * (ms["safeguards"] / ms["fixed"] - 1),
                                                 ms["safeguards"], ms["fixed"])
                    if "safeguards" in ms and "fixed" in ms else "-")
            out.append("| %s | %d | %s | %s | %s |" % (n, seed, why, "yes" if ok else "**no**", cost))
    open(os.path.join(top, "summary.md"), "w").write("\n".join(out) + "\n")
    print("\n".join(out))


def main():
    root = sys.argv[1]
    mnemo = os.path.join(root, "build", "bin", "mnemo")
    base_cfg = os.path.join(root, "bench", "forgetting", "base.yaml")
    top = os.path.join(root, "var", "forgetting")
    names = os.environ.get("SCENARIOS", " ".join(SCENARIOS)).split()
    seeds = [int(x) for x in os.environ.get("SEEDS", "20261126 2").split()]
    t0 = time.time()
    for n in names:
        if n not in SCENARIOS:
            sys.exit("unknown scenario %s (known: %s)" % (n, ", ".join(SCENARIOS)))
    if os.environ.get("SUMMARY_ONLY"):  # from the results already there, nothing run
        summarize(top, names, seeds)
        return
    # the data and the bases first, two bases at once (one thread each)
    pending = []
    for n in names:
        d = os.path.join(top, n)
        os.makedirs(d, exist_ok=True)
        data = prepare(os.path.join(root, "var", "corpus"), d, mnemo, base_cfg, SCENARIOS[n])
        print("%s data: %s" % (n, json.dumps(data)), flush=True)
        pending.append(n)
    while pending:
        batch, pending = pending[:2], pending[2:]
        procs = [(n, base_of(mnemo, base_cfg, os.path.join(top, n))) for n in batch]
        for n, p in procs:
            if p:
                print("%s: pretraining the base..." % n, flush=True)
                wait(p, "%s: pretraining" % n)
                write_stamp(base_cfg, os.path.join(top, n))
    for n in names:
        d = os.path.join(top, n)
        shard = lambda x: os.path.join(d, x + ".shard")
        store, fisher = os.path.join(d, "replay.store"), os.path.join(d, "base.fisher")
        if os.path.exists(store):
            os.remove(store)
        wait(run([mnemo, "--config", base_cfg, "replay", "absorb", "--store", store, "--capacity",
                  "256", shard("pre")]), "replay absorb")
        wait(run([mnemo, "--config", base_cfg, "fisher", "--checkpoint",
                  os.path.join(d, "base", "model.safetensors"), "--out", fisher, "--windows", "32",
                  shard("pre")]), "fisher")
    if os.environ.get("BASES_ONLY"):
        print("bases ready (%.0f s)" % (time.time() - t0))
        return
    for n in names:
        for seed in seeds:
            scenario_seed(mnemo, base_cfg, n, SCENARIOS[n], os.path.join(top, n), seed, t0)
    summarize(top, names, seeds)
    print("\nwritten: var/forgetting/summary.md and, per scenario and seed, results.json, "
          "results.md, chart.svg (%.0f s)" % (time.time() - t0))


if __name__ == "__main__":
    main()
