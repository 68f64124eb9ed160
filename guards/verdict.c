/*
 * verdict.c -- every guard rule over one evaluation set's scores, as a JSON verdict and a
 * table (see verdict.h for the rules).
 */
#include "guards/verdict.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* in_list -- whether code is an entry of the list ("a,b" or "a:x,b:y"); *value receives the
 * entry's number when it has one (the list was checked by check_list) */
static bool in_list(const char *list, const char *code, double *value)
{
  char c[8];
  double v;
  const char *e;
  size_t n;
  while (mn_lang_list_next(&list, c, &v, &e, &n) != 0)
    if (strcmp(c, code) == 0) {
      if (value && !isnan(v)) *value = v;
      return true;
    }
  return false;
}

/* check_list -- every entry a language code, with a share >= 0 when `numbers`, without one
 * otherwise */
static mn_status check_list(const char *what, const char *list, bool numbers, mn_error *err)
{
  char c[8];
  double v;
  const char *e;
  size_t n;
  int r;
  while ((r = mn_lang_list_next(&list, c, &v, &e, &n)) != 0)
    if (r < 0 || (numbers ? !(v >= 0) : !isnan(v)))
      return mn_error_set(err, MN_ERR_INPUT, "%s: \"%.*s\" is not %s", what, (int)n, e,
                          numbers ? "LANG:SHARE (e.g. kat:0.03)" : "a language code");
  return MN_OK;
}

/* has_heldout -- whether the held-out items it[0..k0) hold a language */
static bool has_heldout(const guard_item **it, size_t k0, const char *code)
{
  for (size_t i = 0; i < k0; i++)
    if (strcmp(it[i]->lang, code) == 0) return true;
  return false;
}

static int by_lang(const void *a, const void *b)
{
  const guard_item *x = *(const guard_item *const *)a, *y = *(const guard_item *const *)b;
  if (x->kind != y->kind) return x->kind < y->kind ? -1 : 1;
  int c = strcmp(x->lang, y->lang);
  /* then the input order: the bootstrap maps its draws to positions, so the order within a
   * language must not depend on the sort's stability */
  return c ? c : (x < y ? -1 : x > y);
}

static json_t *interval_json(const guard_interval *iv)
{
  return json_pack("[f, f]", iv->lo, iv->hi);
}

/* the held-out rule per language; *failing collects the languages that did not pass */
static mn_status heldout_rules(const guard_item **it, size_t n, const guard_policy *p,
                               const json_t *best, json_t *langs, json_t *failing, mn_error *err)
{
  double *base = malloc((n ? n : 1) * sizeof *base), *cand = malloc((n ? n : 1) * sizeof *cand);
  mn_status rc = MN_OK;
  if (!base || !cand) {
    free(base), free(cand);
    return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  }
  for (size_t i = 0; i < n && rc == MN_OK;) {
    size_t j = i, k = 0;
    double bytes = 0, sb = 0, sc = 0;
    for (; j < n && strcmp(it[j]->lang, it[i]->lang) == 0; j++, k++) {
      base[k] = it[j]->base, cand[k] = it[j]->cand;
      bytes += it[j]->bytes, sb += it[j]->base, sc += it[j]->cand;
    }
    const char *lang = it[i]->lang;
    guard_rule rule = {.tolerance = p->tolerance, .min_items = p->min_items};
    in_list(p->tolerances, lang, &rule.tolerance);
    rule.must_improve = in_list(p->must_improve, lang, NULL);
    guard_interval iv;
    if ((rc = guard_bootstrap(base, cand, k, p->seed, p->resamples, p->level, &iv, err)) != MN_OK) {
      mn_error_prefix(err, "language %s (held-out items)", lang);
      break;
    }
    guard_decision d;
    guard_decide(&iv, k, &rule, &d);
    char rule_text[96];
    if (rule.must_improve)
      snprintf(rule_text, sizeof rule_text, "must improve: upper bound < 0");
    else
      snprintf(rule_text, sizeof rule_text, "upper bound <= %+.2f%%", 100 * rule.tolerance);
    double bb = bytes > 0 ? sb / bytes : 0, cb = bytes > 0 ? sc / bytes : 0;
    json_t *row = json_pack("{s:s, s:I, s:f, s:f, s:f, s:o, s:f, s:b, s:s, s:s, s:s}", "lang", lang,
                            "items", (json_int_t)k, "baseline_bpb", bb, "candidate_bpb", cb,
                            "change", iv.change, "interval", interval_json(&iv), "tolerance",
                            rule.tolerance, "must_improve", rule.must_improve, "rule", rule_text,
                            "outcome", guard_outcome_name(d.outcome), "reason", d.reason);
    if (!row) {
      rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
      break;
    }
    if (d.outcome == GUARD_INSUFFICIENT) /* SIZE_MAX: no number of items would do */
      json_object_set_new(row, "items_needed",
                          d.needed > (size_t)INT64_MAX ? json_null()
                                                       : json_integer((json_int_t)d.needed));
    json_t *b = best ? json_object_get(best, lang) : NULL;
    if (json_is_number(b) && json_number_value(b) > 0) {
      double bestv = fmin(json_number_value(b), bb); /* the baseline is production too */
      json_object_set_new(row, "best_bpb", json_real(bestv));
      json_object_set_new(row, "forgetting_vs_best", json_real(cb / bestv - 1));
    }
    json_array_append_new(langs, row);
    if (d.outcome != GUARD_PASS) json_array_append_new(failing, json_string(lang));
    i = j;
  }
  free(base), free(cand);
  return rc;
}

/* the parity gap: bits per reference character per language, worst over best */
static json_t *parity_rule(const guard_item **it, size_t n, const guard_policy *p, json_t *failing)
{
  json_t *langs = json_array();
  double gap[2] = {0, 0}, lo[2] = {INFINITY, INFINITY}, hi[2] = {0, 0};
  const char *worst[2] = {NULL, NULL}, *bestl[2] = {NULL, NULL};
  for (size_t i = 0; i < n;) {
    size_t j = i;
    double ch = 0, b = 0, c = 0;
    for (; j < n && strcmp(it[j]->lang, it[i]->lang) == 0; j++)
      ch += it[j]->ref_chars, b += it[j]->base, c += it[j]->cand;
    double v[2] = {b / ch, c / ch};
    for (int m = 0; m < 2; m++) {
      if (v[m] > hi[m]) hi[m] = v[m], worst[m] = it[i]->lang;
      if (v[m] < lo[m]) lo[m] = v[m], bestl[m] = it[i]->lang;
    }
    json_array_append_new(langs, json_pack("{s:s, s:I, s:f, s:f}", "lang", it[i]->lang, "items",
                                           (json_int_t)(j - i), "baseline_bits_per_char", v[0],
                                           "candidate_bits_per_char", v[1]));
    i = j;
  }
  if (json_array_size(langs) < 2) {
    json_decref(langs);
    return json_pack("{s:s, s:s}", "outcome", "pass", "reason",
                     "fewer than two languages have parallel items: no gap to guard");
  }
  for (int m = 0; m < 2; m++)
    gap[m] = hi[m] / lo[m];
  double widen = gap[1] / gap[0] - 1;
  bool ok = widen <= p->parity_widen;
  char reason[256];
  snprintf(reason, sizeof reason,
           "the gap (worst language over best) goes from %.3f (%s/%s) to %.3f (%s/%s), %+.2f%%; "
           "at most %+.2f%% allowed",
           gap[0], worst[0], bestl[0], gap[1], worst[1], bestl[1], 100 * widen,
           100 * p->parity_widen);
  if (!ok) json_array_append_new(failing, json_string("parity gap"));
  return json_pack("{s:f, s:f, s:f, s:f, s:s, s:s, s:o}", "baseline_gap", gap[0], "candidate_gap",
                   gap[1], "widen", widen, "limit", p->parity_widen, "outcome",
                   ok ? "pass" : "fail", "reason", reason, "languages", langs);
}

static json_t *probe_rules(const guard_item **it, size_t n, const guard_policy *p, json_t *failing)
{
  json_t *rows = json_array();
  for (size_t i = 0; i < n; i++) {
    const guard_item *q = it[i];
    bool fixed = q->fixed_bits >= 0;
    double ref = fixed ? q->fixed_bits : q->base, limit = ref * (1 + p->probe_tolerance);
    bool ok = q->cand <= limit;
    char reason[256];
    snprintf(reason, sizeof reason, "%s: %.1f bits, %s %.1f (limit %.1f)",
             fixed ? "fixed report" : "accepted report", q->cand, fixed ? "fixed at" : "baseline",
             ref, limit);
    json_array_append_new(rows, json_pack("{s:s, s:s, s:s, s:s, s:f, s:f, s:f, s:f, s:s, s:s}",
                                          "report", q->report ? q->report : "", "lang", q->lang,
                                          "id", q->id, "status", fixed ? "fixed" : "accepted",
                                          "bytes", q->bytes, "baseline_bits", q->base,
                                          "candidate_bits", q->cand, "limit_bits", limit, "outcome",
                                          ok ? "pass" : "fail", "reason", reason));
    if (!ok) {
      char what[96];
      snprintf(what, sizeof what, "probe %s", q->id);
      json_array_append_new(failing, json_string(what));
    }
  }
  return rows;
}

mn_status guard_verdict(const guard_item *items, size_t n, const guard_policy *p,
                        const json_t *best, json_t **out, mn_error *err)
{
  *out = NULL;
  mn_status rc;
  if ((rc = check_list("guards.tolerances", p->tolerances, true, err)) != MN_OK ||
      (rc = check_list("guards.must_improve", p->must_improve, false, err)) != MN_OK)
    return rc;
  const guard_item **it = malloc((n ? n : 1) * sizeof *it);
  if (!it) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  for (size_t i = 0; i < n; i++)
    it[i] = &items[i];
  qsort(it, n, sizeof *it, by_lang); /* each kind's languages contiguous */
  size_t k0 = 0, k1 = 0, k2 = 0;
  while (k0 < n && it[k0]->kind == GUARD_ITEM_HELDOUT)
    k0++;
  for (k1 = k0; k1 < n && it[k1]->kind == GUARD_ITEM_PARALLEL;)
    k1++;
  for (k2 = k1; k2 < n && it[k2]->kind == GUARD_ITEM_PROBE;)
    k2++;
  /* a must-improve language without evidence cannot have improved */
  char code[8];
  double val;
  const char *entry;
  size_t len;
  for (const char *m = p->must_improve; mn_lang_list_next(&m, code, &val, &entry, &len) != 0;)
    if (!has_heldout(it, k0, code)) {
      free(it);
      return mn_error_set(err, MN_ERR_INPUT,
                          "language %s must improve but the set holds no held-out item of it",
                          code);
    }
  json_t *v = json_object(), *langs = json_array(), *failing = json_array();
  rc = heldout_rules(it, k0, p, best, langs, failing, err);
  /* a language the models have but the set holds no held-out item of is not shown to hold */
  for (const char *l = p->languages;
       rc == MN_OK && mn_lang_list_next(&l, code, &val, &entry, &len) > 0;)
    if (!has_heldout(it, k0, code)) {
      json_array_append_new(langs,
                            json_pack("{s:s, s:i, s:s, s:s, s:s, s:i}", "lang", code, "items", 0,
                                      "outcome", guard_outcome_name(GUARD_INSUFFICIENT), "reason",
                                      "no held-out item in the set: nothing shows it holds", "rule",
                                      "at least min_items items", "items_needed", p->min_items));
      json_array_append_new(failing, json_string(code));
    }
  if (rc == MN_OK && k0 == 0) /* whatever else the set holds, no language was guarded */
    json_array_append_new(failing, json_string("no held-out evidence"));
  if (rc == MN_OK) {
    json_object_set_new(v, "languages", langs);
    json_object_set_new(v, "parity", parity_rule(it + k0, k1 - k0, p, failing));
    json_object_set_new(v, "probes", probe_rules(it + k1, k2 - k1, p, failing));
    json_object_set_new(v, "pass", json_boolean(json_array_size(failing) == 0));
    json_object_set_new(v, "failing", failing);
    json_object_set_new(v, "policy",
                        json_pack("{s:f, s:s, s:i, s:i, s:f, s:I, s:f, s:f, s:s}", "tolerance",
                                  p->tolerance, "tolerances", p->tolerances ? p->tolerances : "",
                                  "min_items", p->min_items, "resamples", p->resamples, "level",
                                  p->level, "seed", (json_int_t)p->seed, "parity_widen",
                                  p->parity_widen, "probe_tolerance", p->probe_tolerance,
                                  "must_improve", p->must_improve ? p->must_improve : ""));
    *out = v;
  } else {
    json_decref(langs), json_decref(failing), json_decref(v);
  }
  free(it);
  return rc;
}

/* ---------------------------------------------------------------- the table */

static int outcome_rank(const json_t *row)
{
  const char *o = json_string_value(json_object_get(row, "outcome"));
  return !o ? 3 : strcmp(o, "fail") == 0 ? 0 : strcmp(o, "pass") == 0 ? 2 : 1;
}

void guard_render(const json_t *v, FILE *f)
{
  const json_t *langs = json_object_get(v, "languages");
  fprintf(f, "verdict: %s\n", json_is_true(json_object_get(v, "pass")) ? "PASS" : "FAIL");
  size_t k;
  json_t *what;
  json_array_foreach(json_object_get(v, "failing"), k, what)
  {
    if (strcmp(json_string_value(what), "no held-out evidence") == 0)
      fprintf(f, "the set holds no held-out item: no language was shown to hold\n");
  }
  fputc('\n', f);
  fprintf(f, "%-6s %-22s %6s %9s %9s %8s %19s  %s\n", "lang", "outcome", "items", "baseline",
          "candidate", "change", "interval", "rule");
  for (int rank = 0; rank <= 2; rank++) { /* failing first, then insufficient, then passing */
    size_t i;
    json_t *r;
    json_array_foreach(langs, i, r)
    {
      if (outcome_rank(r) != rank) continue;
      const json_t *iv = json_object_get(r, "interval");
      if (!iv) { /* no item: nothing to show but the reason */
        fprintf(f, "%-6s %-22s %6d  %s\n", json_string_value(json_object_get(r, "lang")),
                json_string_value(json_object_get(r, "outcome")), 0,
                json_string_value(json_object_get(r, "reason")));
        continue;
      }
      fprintf(f, "%-6s %-22s %6lld %9.4f %9.4f %+7.2f%% [%+7.2f%%,%+7.2f%%]  %s\n",
              json_string_value(json_object_get(r, "lang")),
              json_string_value(json_object_get(r, "outcome")),
              (long long)json_integer_value(json_object_get(r, "items")),
              json_real_value(json_object_get(r, "baseline_bpb")),
              json_real_value(json_object_get(r, "candidate_bpb")),
              100 * json_real_value(json_object_get(r, "change")),
              100 * json_real_value(json_array_get(iv, 0)),
              100 * json_real_value(json_array_get(iv, 1)),
              json_string_value(json_object_get(r, "rule")));
      if (rank < 2) fprintf(f, "       %s\n", json_string_value(json_object_get(r, "reason")));
    }
  }
  const json_t *par = json_object_get(v, "parity");
  fprintf(f, "\nparity gap: %s, %s\n", json_string_value(json_object_get(par, "outcome")),
          json_string_value(json_object_get(par, "reason")));
  const json_t *probes = json_object_get(v, "probes");
  if (json_array_size(probes)) fprintf(f, "\nprobes:\n");
  for (int rank = 0; rank <= 2; rank++) {
    size_t i;
    json_t *r;
    json_array_foreach(probes, i, r)
    {
      if (outcome_rank(r) != rank) continue;
      fprintf(f, "  %-4s %-6s %-14s %s\n", json_string_value(json_object_get(r, "outcome")),
              json_string_value(json_object_get(r, "lang")),
              json_string_value(json_object_get(r, "id")),
              json_string_value(json_object_get(r, "reason")));
    }
  }
}

/* ---------------------------------------------------------------- earlier verdicts */

mn_status guard_best_so_far(const char *const *verdicts, size_t n, const char *set_sha,
                            json_t **best, mn_error *err)
{
  *best = NULL;
  if (n == 0) return MN_OK;
  *best = json_object();
  if (!*best) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  for (size_t k = 0; k < n; k++) {
    const char *p = verdicts[k];
    json_error_t je;
    json_t *v = json_load_file(p, 0, &je);
    if (!v || !json_is_array(json_object_get(v, "languages"))) {
      json_decref(v);
      json_decref(*best);
      *best = NULL;
      return mn_error_set(err, MN_ERR_INPUT, "%s: not a verdict (%s)", p,
                          v ? "no languages" : je.text);
    }
    const char *set = json_string_value(json_object_get(v, "set"));
    bool passed = json_is_true(json_object_get(v, "pass"));
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(v, "languages"), i, r)
    {
      if (!set || strcmp(set, set_sha) != 0) break; /* other items: not comparable */
      const char *lang = json_string_value(json_object_get(r, "lang"));
      double b = json_number_value(json_object_get(r, "baseline_bpb"));
      double c = json_number_value(json_object_get(r, "candidate_bpb"));
      double m = passed && c > 0 && c < b ? c : b;
      json_t *have = json_object_get(*best, lang);
      if (lang && m > 0 && (!have || m < json_number_value(have)))
        json_object_set_new(*best, lang, json_real(m));
    }
    json_decref(v);
  }
  return MN_OK;
}
