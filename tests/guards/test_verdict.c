/*
 * test_verdict.c -- the verdict over synthetic scores: identical models pass; a planted 5%
 * regression fails that language and no other; a tiny language is insufficient evidence;
 * the parity gap's arithmetic on a hand-made parallel set; the probe rules; bad policy
 * lists refused; the table puts failing languages first; the best so far from earlier
 * verdicts (a passed candidate counts, a failed one and another set's verdict do not).
 */
#include "guards/verdict.h"
#include "tests/test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const langs[] = {"arb", "deu", "kat", "spa", "tha"};

/* items for every language: n held-out items with base bits 200..2200, candidate = base
 * times (1 + shift[lang]) times a noise of +-1% */
static guard_item *heldout(size_t n, const double *shift, char ids[][16], size_t *count)
{
  guard_item *it = calloc(5 * n, sizeof *it);
  uint64_t s = 42;
  for (int l = 0; l < 5; l++)
    for (size_t i = 0; i < n; i++) {
      guard_item *x = &it[l * n + i];
      snprintf(ids[l * n + i], 16, "%s-%zu", langs[l], i);
      double u = (double)(mn_splitmix64(&s) >> 11) / 9007199254740992.0;
      double e = (double)(mn_splitmix64(&s) >> 11) / 9007199254740992.0;
      *x = (guard_item){.kind = GUARD_ITEM_HELDOUT,
                        .lang = langs[l],
                        .id = ids[l * n + i],
                        .bytes = 100 + 1000 * u,
                        .fixed_bits = -1,
                        .base = 200 + 2000 * u};
      x->cand = x->base * (1 + shift[l]) * (1 + 0.02 * (e - 0.5));
    }
  *count = 5 * n;
  return it;
}

static guard_policy policy(void)
{
  return (guard_policy){.tolerance = 0.01,
                        .min_items = 30,
                        .resamples = 2000,
                        .level = 0.95,
                        .seed = 7,
                        .parity_widen = 0.02,
                        .probe_tolerance = 0};
}

static const json_t *lang_row(const json_t *v, const char *lang)
{
  size_t i;
  json_t *r;
  json_array_foreach(json_object_get(v, "languages"), i, r)
  {
    if (strcmp(json_string_value(json_object_get(r, "lang")), lang) == 0) return r;
  }
  return NULL;
}

static const char *outcome(const json_t *v, const char *lang)
{
  return json_string_value(json_object_get(lang_row(v, lang), "outcome"));
}

static void identical_and_planted(void)
{
  static char ids[5 * 200][16];
  double same[5] = {0};
  size_t n;
  guard_item *it = heldout(200, same, ids, &n);
  for (size_t i = 0; i < n; i++)
    it[i].cand = it[i].base;
  guard_policy p = policy();
  json_t *v = NULL;
  mn_error err = {0};
  T_EQ_INT(guard_verdict(it, n, &p, NULL, &v, &err), MN_OK);
  T_CHECK(json_is_true(json_object_get(v, "pass")));
  T_EQ_INT(json_array_size(json_object_get(v, "failing")), 0);
  for (int l = 0; l < 5; l++)
    T_EQ_STR(outcome(v, langs[l]), "pass");
  json_decref(v);
  free(it);

  double shift[5] = {0, 0, 0.05, 0, 0}; /* kat 5% worse; the others noise only */
  it = heldout(200, shift, ids, &n);
  T_EQ_INT(guard_verdict(it, n, &p, NULL, &v, &err), MN_OK);
  T_CHECK(!json_is_true(json_object_get(v, "pass")));
  for (int l = 0; l < 5; l++)
    T_EQ_STR(outcome(v, langs[l]), l == 2 ? "fail" : "pass");
  const json_t *f = json_object_get(v, "failing");
  T_CHECK(json_array_size(f) == 1 && strcmp(json_string_value(json_array_get(f, 0)), "kat") == 0);
  const json_t *kat = lang_row(v, "kat");
  T_CHECK(fabs(json_real_value(json_object_get(kat, "change")) - 0.05) < 0.003);
  /* a kat tolerance of 6% lets it pass; its rule says so */
  p.tolerances = "spa:0.02,kat:0.06";
  json_decref(v);
  T_EQ_INT(guard_verdict(it, n, &p, NULL, &v, &err), MN_OK);
  T_EQ_STR(outcome(v, "kat"), "pass");
  T_CHECK(strstr(json_string_value(json_object_get(lang_row(v, "kat"), "rule")), "6.00%") != NULL);
  /* the table: the failing language first */
  p.tolerances = NULL;
  json_decref(v);
  T_EQ_INT(guard_verdict(it, n, &p, NULL, &v, &err), MN_OK);
  char *text = NULL;
  size_t len = 0;
  FILE *mf = open_memstream(&text, &len);
  guard_render(v, mf);
  fclose(mf);
  char *first_row = strstr(text, "\nkat ");
  T_CHECK(first_row && first_row < strstr(text, "\narb ") && strstr(text, "verdict: FAIL"));
  free(text);
  /* a language the models serve with no held-out item in the set: insufficient evidence */
  p.languages = "arb,deu,kat,spa,tha,swh";
  json_decref(v);
  T_EQ_INT(guard_verdict(it, n, &p, NULL, &v, &err), MN_OK);
  T_EQ_STR(outcome(v, "swh"), "insufficient evidence");
  T_EQ_INT(json_integer_value(json_object_get(lang_row(v, "swh"), "items_needed")), 30);
  T_EQ_STR(outcome(v, "spa"), "pass");
  p.languages = NULL;
  /* forgetting against the best production value so far */
  json_t *best = json_pack("{s:f}", "spa", 0.5);
  json_decref(v);
  T_EQ_INT(guard_verdict(it, n, &p, best, &v, &err), MN_OK);
  const json_t *spa = lang_row(v, "spa");
  double cb = json_real_value(json_object_get(spa, "candidate_bpb"));
  T_CHECK(fabs(json_real_value(json_object_get(spa, "forgetting_vs_best")) - (cb / 0.5 - 1)) <
          1e-12);
  T_CHECK(json_object_get(lang_row(v, "deu"), "forgetting_vs_best") == NULL);
  json_decref(best);
  json_decref(v);
  free(it);
}

static void insufficient_and_must_improve(void)
{
  static char ids[5 * 10][16];
  double same[5] = {0};
  size_t n;
  guard_item *it = heldout(10, same, ids, &n);
  guard_policy p = policy();
  json_t *v = NULL;
  mn_error err = {0};
  T_EQ_INT(guard_verdict(it, n, &p, NULL, &v, &err), MN_OK);
  T_CHECK(!json_is_true(json_object_get(v, "pass")));
  for (int l = 0; l < 5; l++) {
    T_EQ_STR(outcome(v, langs[l]), "insufficient evidence");
    T_CHECK(json_integer_value(json_object_get(lang_row(v, langs[l]), "items_needed")) >= 30);
  }
  json_decref(v);
  free(it);

  static char ids2[5 * 100][16];
  double shift[5] = {0, 0, -0.03, 0, 0};
  it = heldout(100, shift, ids2, &n);
  p.must_improve = "kat,spa"; /* kat improved 3%; spa did not change */
  T_EQ_INT(guard_verdict(it, n, &p, NULL, &v, &err), MN_OK);
  T_EQ_STR(outcome(v, "kat"), "pass");
  T_CHECK(strcmp(outcome(v, "spa"), "pass") != 0);
  T_CHECK(json_is_true(json_object_get(lang_row(v, "spa"), "must_improve")));
  json_decref(v);
  p.must_improve = "kat,swh"; /* no evidence for swh at all */
  T_EQ_INT(guard_verdict(it, n, &p, NULL, &v, &err), MN_ERR_INPUT);
  T_CHECK(strstr(err.msg, "swh") != NULL && v == NULL);
  p.must_improve = NULL;
  p.tolerances = "kat=0.1";
  T_EQ_INT(guard_verdict(it, n, &p, NULL, &v, &err), MN_ERR_INPUT);
  T_CHECK(strstr(err.msg, "guards.tolerances") && strstr(err.msg, "kat=0.1"));
  p.tolerances = "kat:-1";
  T_EQ_INT(guard_verdict(it, n, &p, NULL, &v, &err), MN_ERR_INPUT);
  free(it);
}

/* parity: three languages, two items; bits per reference character by hand */
static void parity(void)
{
  guard_item it[6];
  const char *pl[3] = {"ell", "kor", "spa"};
  /* reference characters 100 and 300; base bits: ell 200+600, kor 100+300, spa 300+900 */
  double base[3] = {2, 1, 3}, cand[3] = {2, 1, 3.3};
  for (int l = 0; l < 3; l++)
    for (int k = 0; k < 2; k++) {
      double ch = k ? 300 : 100;
      it[l * 2 + k] = (guard_item){.kind = GUARD_ITEM_PARALLEL,
                                   .lang = pl[l],
                                   .id = k ? "article-2" : "article-1",
                                   .bytes = 50,
                                   .ref_chars = ch,
                                   .fixed_bits = -1,
                                   .base = base[l] * ch,
                                   .cand = cand[l] * ch};
    }
  guard_policy p = policy();
  json_t *v = NULL;
  mn_error err = {0};
  T_EQ_INT(guard_verdict(it, 6, &p, NULL, &v, &err), MN_OK);
  const json_t *par = json_object_get(v, "parity");
  T_CHECK(fabs(json_real_value(json_object_get(par, "baseline_gap")) - 3.0) < 1e-12);  /* spa/kor */
  T_CHECK(fabs(json_real_value(json_object_get(par, "candidate_gap")) - 3.3) < 1e-12); /* 10% */
  T_CHECK(fabs(json_real_value(json_object_get(par, "widen")) - 0.1) < 1e-12);
  T_EQ_STR(json_string_value(json_object_get(par, "outcome")), "fail");
  T_CHECK(!json_is_true(json_object_get(v, "pass")));
  json_decref(v);
  p.parity_widen = 0.11;
  T_EQ_INT(guard_verdict(it, 6, &p, NULL, &v, &err), MN_OK);
  T_EQ_STR(json_string_value(json_object_get(json_object_get(v, "parity"), "outcome")), "pass");
  /* the parity gap holds, but a set without held-out items guards no language: it fails */
  T_CHECK(!json_is_true(json_object_get(v, "pass")));
  const json_t *f = json_object_get(v, "failing");
  T_CHECK(json_array_size(f) == 1 &&
          strcmp(json_string_value(json_array_get(f, 0)), "no held-out evidence") == 0);
  json_decref(v);
}

static void probes(void)
{
  guard_item it[4] = {
      {.kind = GUARD_ITEM_PROBE,
       .lang = "tha",
       .id = "report-1",
       .report = "1",
       .fixed_bits = -1,
       .base = 40,
       .cand = 39}, /* accepted, better: pass */
      {.kind = GUARD_ITEM_PROBE,
       .lang = "tha",
       .id = "report-2",
       .report = "2",
       .fixed_bits = -1,
       .base = 40,
       .cand = 40.5}, /* accepted, worse: fail */
      {.kind = GUARD_ITEM_PROBE,
       .lang = "kat",
       .id = "report-3",
       .report = "3",
       .fixed_bits = 30,
       .base = 29,
       .cand = 29.9}, /* fixed, still under its fixed bits */
      {.kind = GUARD_ITEM_PROBE,
       .lang = "kat",
       .id = "report-4",
       .report = "4",
       .fixed_bits = 30,
       .base = 25,
       .cand = 30.5}, /* fixed, no longer: fail */
  };
  guard_policy p = policy();
  json_t *v = NULL;
  mn_error err = {0};
  T_EQ_INT(guard_verdict(it, 4, &p, NULL, &v, &err), MN_OK);
  const json_t *f = json_object_get(v, "failing");
  T_EQ_INT(json_array_size(f), 3); /* two probes, and no held-out item at all */
  char all[192];
  snprintf(all, sizeof all, "%s|%s|%s", json_string_value(json_array_get(f, 0)),
           json_string_value(json_array_get(f, 1)), json_string_value(json_array_get(f, 2)));
  T_CHECK(strstr(all, "report-2") && strstr(all, "report-4") && !strstr(all, "report-1") &&
          !strstr(all, "report-3"));
  json_decref(v);
  p.probe_tolerance = 0.02; /* 40.5 <= 40.8 and 30.5 <= 30.6: both within 2% */
  T_EQ_INT(guard_verdict(it, 4, &p, NULL, &v, &err), MN_OK);
  f = json_object_get(v, "failing"); /* only the missing held-out evidence is left */
  T_CHECK(json_array_size(f) == 1 &&
          strcmp(json_string_value(json_array_get(f, 0)), "no held-out evidence") == 0);
  json_decref(v);
}

static void write_text(const char *path, const char *text)
{
  FILE *f = fopen(path, "w");
  T_CHECK(f != NULL);
  if (!f) return;
  fputs(text, f);
  fclose(f);
}

static void best_so_far(void)
{
  char dir[] = "/tmp/mnemo-test-best-XXXXXX";
  T_CHECK(mkdtemp(dir) != NULL);
  char a[64], b[64], c[64], bad[64];
  snprintf(a, sizeof a, "%s/a.json", dir), snprintf(b, sizeof b, "%s/b.json", dir);
  snprintf(c, sizeof c, "%s/c.json", dir), snprintf(bad, sizeof bad, "%s/bad.json", dir);
  /* passed: the candidate's better spa counts; failed: only its baseline does */
  write_text(a, "{\"set\": \"S\", \"pass\": true, \"languages\": ["
                "{\"lang\": \"spa\", \"baseline_bpb\": 2.0, \"candidate_bpb\": 1.5},"
                "{\"lang\": \"kat\", \"baseline_bpb\": 3.0, \"candidate_bpb\": 3.5}]}");
  write_text(b, "{\"set\": \"S\", \"pass\": false, \"languages\": ["
                "{\"lang\": \"kat\", \"baseline_bpb\": 2.8, \"candidate_bpb\": 1.0}]}");
  write_text(c, "{\"set\": \"OTHER\", \"pass\": true, \"languages\": ["
                "{\"lang\": \"spa\", \"baseline_bpb\": 0.5, \"candidate_bpb\": 0.4}]}");
  write_text(bad, "[1, 2]");
  const char *all[] = {a, b, c};
  json_t *best = NULL;
  mn_error err = {0};
  T_EQ_INT(guard_best_so_far(all, 3, "S", &best, &err), MN_OK);
  T_CHECK(fabs(json_number_value(json_object_get(best, "spa")) - 1.5) < 1e-12);
  T_CHECK(fabs(json_number_value(json_object_get(best, "kat")) - 2.8) < 1e-12);
  T_EQ_INT((int)json_object_size(best), 2);
  json_decref(best);
  T_EQ_INT(guard_best_so_far(all, 0, "S", &best, &err), MN_OK);
  T_CHECK(best == NULL);
  const char *with_bad[] = {a, bad};
  T_EQ_INT(guard_best_so_far(with_bad, 2, "S", &best, &err), MN_ERR_INPUT);
  T_CHECK(best == NULL);
  T_CONTAINS(err.msg, "not a verdict");
  unlink(a), unlink(b), unlink(c), unlink(bad), rmdir(dir);
}

int main(void)
{
  T_RUN(identical_and_planted);
  T_RUN(insufficient_and_must_improve);
  T_RUN(parity);
  T_RUN(probes);
  T_RUN(best_so_far);
  return T_DONE();
}
