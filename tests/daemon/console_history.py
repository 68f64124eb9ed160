#!/usr/bin/env python3
"""console_history.py LANGS PROMOTIONS [SEED] -- SQL (on stdout, for psql as the cluster's
superuser) that gives a freshly migrated mnemo database a made-up past: LANGS languages, a
bootstrap and PROMOTIONS promotions, each with a guard verdict over every language (the
JSON `mnemo guard` writes and its rows in mnemo.verdicts), documents from two sources, and
then one candidate awaiting approval whose verdict fails one language, and reports (one
with HTML in its text).  The console's test draws it small; bench/console draws 60
languages and 100 promotions.  Rows are written directly: this is a fixture of what the
daemon records, not a way to run it.
"""
import json
import random
import sys


def q(s):
    return "'" + s.replace("'", "''") + "'"


def main():
    nlang, nprom = int(sys.argv[1]), int(sys.argv[2])
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 7)
    out = []
    w = out.append
    w("BEGIN;")
    # the languages: the first LANGS living individual languages, in Latin script
    w("INSERT INTO mnemo.languages (code, name, script) SELECT code, name, 'Latn' FROM "
      "mnemo.iso639_3 WHERE scope = 'I' AND type = 'L' ORDER BY code LIMIT %d;" % nlang)
    w("CREATE TEMP TABLE l AS SELECT code, row_number() OVER (ORDER BY code) AS k "
      "FROM mnemo.languages;")
    w("INSERT INTO mnemo.sources (name, licence) VALUES ('news', 'CC-BY-4.0'), "
      "('forum', 'CC0-1.0');")
    # documents: a few per language and source, half absorbed by the bootstrap
    w("INSERT INTO mnemo.documents (lang, source_id, text, bytes, sha256, split) "
      "SELECT l.code, s.id, t, octet_length(t), sha256(convert_to(t, 'UTF8')), "
      "CASE WHEN i % 4 = 0 THEN 'heldout' ELSE 'train' END FROM l, mnemo.sources s, "
      "generate_series(1, 6) i, LATERAL (SELECT 'text ' || l.code || ' ' || s.name || ' ' || i "
      "AS t) x;")
    codes = ["__%d" % i for i in range(nlang)]  # placeholders: resolved in SQL by rank k
    base = [rng.uniform(1.2, 3.5) for _ in codes]
    bpc = [rng.uniform(3.0, 6.0) for _ in codes]

    def verdict(ck, before, after, pbefore, pafter, fail_k=None):
        langs, failing = [], []
        for k in range(nlang):
            ch = after[k] / before[k] - 1
            half = rng.uniform(0.002, 0.01)
            lo, hi = ch - half, ch + half
            tol = 0.01
            outcome = "fail" if (fail_k == k) else "pass"
            if outcome == "fail":
                failing.append(k)
            langs.append((k, before[k], after[k], ch, lo, hi, tol, outcome))
        return langs, failing

    w("INSERT INTO mnemo.checkpoints (state, watermark, sha256) VALUES ('retired', 0, "
      "repeat('a', 64));")  # id 1: the bootstrap
    w("INSERT INTO mnemo.promotions (kind, ckpt_id, note) VALUES ('bootstrap', 1, 'fixture');")
    w("UPDATE mnemo.documents SET consumed_by = 1 WHERE id % 2 = 0;")
    cur, pcur = base[:], bpc[:]
    ck = 1

    def emit(ck, parent, state, langs, failing, pb, pa, note):
        # the verdict JSON with real language codes, built in SQL from the rank k
        rows = []
        for (k, b, a, ch, lo, hi, tol, outcome) in langs:
            rows.append("(%d, %r, %r, %r, %r, %r, %r, %s)" % (k + 1, b, a, ch, lo, hi, tol, q(outcome)))
        w("CREATE TEMP TABLE v%d (k int, b float8, a float8, ch float8, lo float8, hi float8, "
          "tol float8, outcome text);" % ck)
        w("INSERT INTO v%d VALUES %s;" % (ck, ", ".join(rows)))
        par = ", ".join("(%d, %r, %r)" % (k + 1, pb[k], pa[k]) for k in range(nlang))
        w("CREATE TEMP TABLE p%d (k int, b float8, a float8); INSERT INTO p%d VALUES %s;"
          % (ck, ck, par))
        w("INSERT INTO mnemo.checkpoints (parent_id, state, watermark, sha256, reasons, verdict) "
          "SELECT %d, %s, 0, repeat('b', 64), %s, jsonb_build_object("
          "'languages', (SELECT jsonb_agg(jsonb_build_object('lang', l.code, 'items', 40, "
          "'baseline_bpb', v.b, 'candidate_bpb', v.a, 'change', v.ch, 'interval', "
          "jsonb_build_array(v.lo, v.hi), 'tolerance', v.tol, 'must_improve', false, 'rule', "
          "'upper bound <= +1.00%%', 'outcome', v.outcome, 'reason', CASE v.outcome WHEN 'pass' "
          "THEN 'upper bound within tolerance' ELSE 'upper bound above tolerance' END) ORDER BY "
          "l.code) FROM v%d v JOIN l ON l.k = v.k), "
          "'parity', jsonb_build_object('outcome', 'pass', 'reason', 'the gap holds', "
          "'languages', (SELECT jsonb_agg(jsonb_build_object('lang', l.code, 'items', 10, "
          "'baseline_bits_per_char', p.b, 'candidate_bits_per_char', p.a)) FROM p%d p JOIN l "
          "ON l.k = p.k)), 'probes', '[]'::jsonb, 'pass', %s, 'failing', "
          "(SELECT coalesce(jsonb_agg(l.code), '[]') FROM v%d v JOIN l ON l.k = v.k WHERE "
          "v.outcome <> 'pass'));"
          % (parent, q(state), q(note), ck, ck, "false" if failing else "true", ck))
        w("INSERT INTO mnemo.verdicts (ckpt_id, lang, outcome, items, baseline_bpb, "
          "candidate_bpb, change, low, high, reason) SELECT %d, l.code, v.outcome, 40, v.b, v.a, "
          "v.ch, v.lo, v.hi, '' FROM v%d v JOIN l ON l.k = v.k;" % (ck, ck))

    for i in range(nprom):
        after = [c * (1 + rng.gauss(-0.004, 0.006)) for c in cur]
        pafter = [c * (1 + rng.gauss(-0.003, 0.005)) for c in pcur]
        langs, failing = verdict(ck + 1, cur, after, pcur, pafter)
        emit(ck + 1, ck, "retired", langs, failing, pcur, pafter, "")
        w("INSERT INTO mnemo.promotions (kind, ckpt_id, previous_id, note, at) VALUES "
          "('promote', %d, %d, 'fixture', now() - interval '%d hours');"
          % (ck + 1, ck, (nprom - i) * 24))
        ck += 1
        cur, pcur = after, pafter
    w("UPDATE mnemo.checkpoints SET state = 'production' WHERE id = %d;" % ck)
    # a candidate awaiting approval: the first language fails
    after = [c * (1 + rng.gauss(-0.004, 0.004)) for c in cur]
    after[0] = cur[0] * 1.03
    langs, failing = verdict(ck + 1, cur, after, pcur, pcur, fail_k=0)
    emit(ck + 1, ck, "awaiting_approval", langs, failing, pcur, pcur, "")
    w("INSERT INTO mnemo.trained_on (ckpt_id, doc_id) SELECT %d, id FROM mnemo.documents "
      "WHERE consumed_by IS NULL AND split = 'train';" % (ck + 1))
    # reports: one with HTML in its text, one triaged group of two
    first = "(SELECT code FROM l WHERE k = 1)"
    w("INSERT INTO mnemo.reports (claimed_lang, text, reporter) VALUES (%s, %s, 'fixture');"
      % (first, q('<script>alert("pwned")</script><b>bold</b> & more')))
    w("INSERT INTO mnemo.reports (claimed_lang, text, reporter, status, detected_lang, severity, "
      "triage) SELECT %s, 'the model answers in the wrong language', 'fixture', 'triaged', %s, "
      "2.5, '{\"confidence\": 0.93}';" % (first, first))
    w("UPDATE mnemo.reports SET group_id = id WHERE status = 'triaged';")
    w("COMMIT;")
    print("\n".join(out))


main()
