/*
 * test_guards.c -- the guards' bootstrap and rule: identical models show no change, a
 * planted regression fails among languages that pass, too few items and wide intervals are
 * "insufficient evidence" with an item count that does suffice, a language with fresh data
 * must improve, the 95% interval covers the true change about 95% of the time (simulated),
 * results do not depend on the thread count, and bad input is refused by name.
 */
#include "guards/guards.h"
#include "tests/test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

static const guard_rule RULE = {.tolerance = 0.01, .min_items = 30, .must_improve = false};
static const guard_rule FRESH = {.tolerance = 0.01, .min_items = 30, .must_improve = true};

static double uniform(uint64_t *state, double lo, double hi)
{
  return lo + (hi - lo) * ((double)(mn_splitmix64(state) >> 11) * 0x1p-53);
}

/*
 * make_items -- n items of 100..3000 bits under the base model; the candidate scores each
 * base * ratio * e with e uniform in [1 - spread, 1 + spread] (mean 1, independent of the
 * item).  Both arrays are allocated (the caller frees them).
 */
static void make_items(uint64_t *state, size_t n, double ratio, double spread, double **base,
                       double **cand)
{
  *base = malloc(n * sizeof **base);
  *cand = malloc(n * sizeof **cand);
  if (!*base || !*cand) abort();
  for (size_t i = 0; i < n; i++) {
    (*base)[i] = uniform(state, 100, 3000);
    (*cand)[i] = (*base)[i] * ratio * uniform(state, 1 - spread, 1 + spread);
  }
}

/* rescale -- make the sample's change exactly `change`, so that a test about the width of
 * the interval does not hinge on where one sample's point estimate happened to land. */
static void rescale(const double *base, double *cand, size_t n, double change)
{
  double sb = 0, sc = 0;
  for (size_t i = 0; i < n; i++)
    sb += base[i], sc += cand[i];
  for (size_t i = 0; i < n; i++)
    cand[i] *= (1 + change) * sb / sc;
}

static guard_decision decide(const double *base, const double *cand, size_t n, uint64_t seed,
                             int resamples, const guard_rule *rule, guard_interval *iv)
{
  mn_error err = {0};
  guard_decision d = {0};
  mn_status rc = guard_bootstrap(base, cand, n, seed, resamples, 0.95, iv, &err);
  T_CHECK_MSG(rc == MN_OK, "%s", err.msg);
  if (rc == MN_OK) guard_decide(iv, n, rule, &d);
  return d;
}

static void identical_models_pass(void)
{
  uint64_t s = 1;
  double *base, *cand;
  make_items(&s, 200, 1.0, 0.0, &base, &cand);
  memcpy(cand, base, 200 * sizeof *cand);
  guard_interval iv;
  guard_decision d = decide(base, cand, 200, 7, 2000, &RULE, &iv);
  T_CHECK_MSG(iv.change == 0 && fabs(iv.lo) <= 1e-12 && fabs(iv.hi) <= 1e-12,
              "change %g, interval [%g, %g]", iv.change, iv.lo, iv.hi);
  T_EQ_STR(guard_outcome_name(d.outcome), "pass");
  T_EQ_INT(d.needed, 0);
  T_CONTAINS(d.reason, "+0.00%");
  T_CONTAINS(d.reason, "within the +1.00% allowed");
  free(base), free(cand);
}

static void planted_regression_fails(void)
{
  uint64_t s = 2;
  for (int l = 0; l < 5; l++) {
    double *base, *cand;
    make_items(&s, 500, l == 2 ? 1.05 : 1.0, 0.02, &base, &cand);
    guard_interval iv;
    guard_decision d = decide(base, cand, 500, (uint64_t)(100 + l), 2000, &RULE, &iv);
    T_CHECK_MSG(d.outcome == (l == 2 ? GUARD_FAIL : GUARD_PASS), "language %d: %s: %s", l,
                guard_outcome_name(d.outcome), d.reason);
    if (l == 2) {
      T_CHECK_MSG(fabs(iv.change - 0.05) < 0.005, "planted 5%%, measured %g", iv.change);
      T_CONTAINS(d.reason, "past the +1.00% allowed");
    }
    free(base), free(cand);
  }
}

static void tiny_set_is_insufficient(void)
{
  uint64_t s = 3;
  double *base, *cand;
  make_items(&s, 5, 1.0, 0.01, &base, &cand);
  guard_interval iv;
  guard_decision d = decide(base, cand, 5, 9, 1000, &RULE, &iv);
  T_EQ_STR(guard_outcome_name(d.outcome), "insufficient evidence");
  T_CHECK_MSG(d.needed >= 30, "needed %zu", d.needed);
  char num[32];
  snprintf(num, sizeof num, "about %zu items", d.needed);
  T_CONTAINS(d.reason, num);
  T_CONTAINS(d.reason, "only 5 items");
  free(base), free(cand);
}

/* The rule's arithmetic on intervals chosen so that every quotient is exact. */
static void rule_by_hand(void)
{
  guard_decision d;
  guard_rule loose = {.tolerance = 0.5, .min_items = 30, .must_improve = false};
  guard_interval iv = {.change = 0.25, .lo = -0.25, .hi = 0.75};
  guard_decide(&iv, 100, &loose, &d); /* upper half-width 0.5, room 0.25: 100 * 2^2 */
  T_EQ_INT(d.outcome, GUARD_INSUFFICIENT);
  T_EQ_INT(d.needed, 400);
  T_CONTAINS(d.reason, "about 400 items would be needed, 100 were scored");
  guard_decide(&iv, 10, &loose, &d); /* too few items: the larger of 30 and 10 * 2^2 */
  T_EQ_INT(d.outcome, GUARD_INSUFFICIENT);
  T_EQ_INT(d.needed, 40);
  loose.min_items = 50;
  guard_decide(&iv, 10, &loose, &d);
  T_EQ_INT(d.needed, 50);
  iv.hi = 0.5; /* exactly at the bound: fits */
  guard_decide(&iv, 100, &loose, &d);
  T_EQ_INT(d.outcome, GUARD_PASS);
  iv = (guard_interval){.change = 0.75, .lo = 0.7, .hi = 0.8};
  guard_decide(&iv, 100, &loose, &d);
  T_EQ_INT(d.outcome, GUARD_FAIL);
  T_EQ_INT(d.needed, 0);
  /* fresh data: an interval that ends at exactly no change has not shown an improvement */
  iv = (guard_interval){.change = -0.25, .lo = -0.5, .hi = 0.0};
  guard_decide(&iv, 100, &FRESH, &d);
  T_EQ_INT(d.outcome, GUARD_INSUFFICIENT);
  T_EQ_INT(d.needed, 101);
  T_EQ_STR(guard_outcome_name(GUARD_FAIL), "fail");
}

/*
 * noisy_within_tolerance -- a 0.5% change (within the 1% allowed) measured on 100 noisy
 * items: the interval reaches past 1%, so the guard asks for more items.  At the number it
 * asks for, the interval's upper end lands near the bound (the estimate is right), and at
 * twice that it is clearly inside: the guard passes.
 */
static void noisy_within_tolerance(void)
{
  uint64_t s = 4;
  double *base, *cand;
  make_items(&s, 100, 1.0, 0.3, &base, &cand);
  rescale(base, cand, 100, 0.005);
  guard_interval iv;
  guard_decision d = decide(base, cand, 100, 11, 2000, &RULE, &iv);
  T_CHECK_MSG(d.outcome == GUARD_INSUFFICIENT && d.needed > 100 && d.needed < 100000,
              "%s, needed %zu: %s", guard_outcome_name(d.outcome), d.needed, d.reason);
  free(base), free(cand);
  if (d.outcome != GUARD_INSUFFICIENT || d.needed < 100 || d.needed >= 100000) return;

  size_t needed = d.needed;
  make_items(&s, needed, 1.0, 0.3, &base, &cand);
  rescale(base, cand, needed, 0.005);
  d = decide(base, cand, needed, 12, 2000, &RULE, &iv);
  T_CHECK_MSG(fabs(iv.hi - 0.01) < 0.0015, "with the %zu items asked for, hi is %g", needed, iv.hi);
  fprintf(stderr, "  100 items: insufficient, %zu asked for; with them: %s, hi %+.5f\n", needed,
          guard_outcome_name(d.outcome), iv.hi);
  free(base), free(cand);

  make_items(&s, 2 * needed, 1.0, 0.3, &base, &cand);
  rescale(base, cand, 2 * needed, 0.005);
  d = decide(base, cand, 2 * needed, 13, 2000, &RULE, &iv);
  T_CHECK_MSG(d.outcome == GUARD_PASS, "with %zu items: %s", 2 * needed, d.reason);
  free(base), free(cand);
}

static void fresh_data_must_improve(void)
{
  uint64_t s = 5;
  double *base, *cand;
  guard_interval iv;
  make_items(&s, 500, 0.97, 0.02, &base, &cand);
  guard_decision d = decide(base, cand, 500, 21, 2000, &FRESH, &iv);
  T_CHECK_MSG(d.outcome == GUARD_PASS, "a 3%% improvement: %s", d.reason);
  T_CONTAINS(d.reason, "improved");
  free(base), free(cand);

  make_items(&s, 500, 1.0, 0.02, &base, &cand);
  d = decide(base, cand, 500, 22, 2000, &FRESH, &iv);
  T_CHECK_MSG(d.outcome != GUARD_PASS, "no change: %s", d.reason);
  /* ... while the same evidence passes a language without fresh data */
  guard_decide(&iv, 500, &RULE, &d);
  T_CHECK_MSG(d.outcome == GUARD_PASS, "no change, no fresh data: %s", d.reason);
  memcpy(cand, base, 500 * sizeof *cand);
  d = decide(base, cand, 500, 23, 2000, &FRESH, &iv);
  T_CHECK_MSG(d.outcome == GUARD_FAIL, "identical models, fresh data: %s", d.reason);
  T_CONTAINS(d.reason, "no improvement");
  free(base), free(cand);
}

/*
 * coverage -- 300 simulated languages of 200 items whose true change is exactly 2%
 * (cand = base * 1.02 * e, e of mean 1 independent of the item): the 95% percentile
 * interval should hold 0.02 in about 95% of them (one standard error of the rate is 1.3
 * points at 300 trials; the band is about three either side, a bit wider below, where the
 * percentile bootstrap of a ratio is known to run slightly short at this n).
 */
static void coverage(void)
{
  enum { SIMS = 300, N = 200 };
  uint64_t s = 6;
  int covered = 0;
  for (int k = 0; k < SIMS; k++) {
    double *base, *cand;
    make_items(&s, N, 1.02, 0.2, &base, &cand);
    guard_interval iv;
    mn_error err = {0};
    if (guard_bootstrap(base, cand, N, (uint64_t)(1000 + k), 2000, 0.95, &iv, &err) != MN_OK) {
      T_CHECK_MSG(false, "%s", err.msg);
      free(base), free(cand);
      return;
    }
    if (iv.lo <= 0.02 && 0.02 <= iv.hi) covered++;
    free(base), free(cand);
  }
  double rate = (double)covered / SIMS;
  T_CHECK_MSG(rate >= 0.91 && rate <= 0.98, "the 95%% interval covered the truth %d of %d times",
              covered, SIMS);
  fprintf(stderr, "  coverage %.3f (%d of %d)\n", rate, covered, SIMS);
}

static void same_seed_same_bits(void)
{
  uint64_t s = 7;
  double *base, *cand;
  make_items(&s, 1000, 1.01, 0.1, &base, &cand);
  guard_interval a, b, c, other;
  mn_error err = {0};
#ifdef _OPENMP
  int threads = omp_get_max_threads();
  omp_set_num_threads(1);
#endif
  T_EQ_INT(guard_bootstrap(base, cand, 1000, 42, 5000, 0.95, &a, &err), MN_OK);
#ifdef _OPENMP
  omp_set_num_threads(2);
#endif
  T_EQ_INT(guard_bootstrap(base, cand, 1000, 42, 5000, 0.95, &b, &err), MN_OK);
#ifdef _OPENMP
  omp_set_num_threads(3); /* more threads than cores, uneven shares */
#endif
  T_EQ_INT(guard_bootstrap(base, cand, 1000, 42, 5001, 0.95, &c, &err), MN_OK);
  T_EQ_INT(guard_bootstrap(base, cand, 1000, 43, 5000, 0.95, &other, &err), MN_OK);
#ifdef _OPENMP
  omp_set_num_threads(threads);
#endif
  T_CHECK(memcmp(&a.lo, &b.lo, sizeof a.lo) == 0 && memcmp(&a.hi, &b.hi, sizeof a.hi) == 0);
  T_CHECK(a.change == b.change);
  T_CHECK(fabs(c.lo - a.lo) < 1e-3); /* one more resample moves the quantile very little */
  T_CHECK(other.lo != a.lo);
  free(base), free(cand);
}

/* A resample that draws only items the base model scores 0 bits has no ratio: it counts as
 * an infinite change, and the rule copes with an infinite interval. */
static void empty_items(void)
{
  const double base[4] = {0, 0, 0, 10}, cand[4] = {1, 1, 1, 10};
  guard_interval iv;
  mn_error err = {0};
  T_EQ_INT(guard_bootstrap(base, cand, 4, 1, 1000, 0.95, &iv, &err), MN_OK);
  T_CHECK_MSG(fabs(iv.change - 0.3) < 1e-12 && isinf(iv.hi) && iv.hi > 0, "change %g, hi %g",
              iv.change, iv.hi);
  guard_rule lax = {.tolerance = 1.0, .min_items = 0, .must_improve = false};
  guard_decision d;
  guard_decide(&iv, 4, &lax, &d);
  T_EQ_INT(d.outcome, GUARD_INSUFFICIENT);
  T_CHECK(d.needed == SIZE_MAX);
}

static void bad_input_is_refused(void)
{
  double base[3] = {10, 20, 30}, cand[3] = {11, 21, 31};
  guard_interval iv = {.change = 123, .lo = 123, .hi = 123};
  mn_error err = {0};
  T_EQ_INT(guard_bootstrap(base, cand, 0, 1, 1000, 0.95, &iv, &err), MN_ERR_INPUT);
  T_CONTAINS(err.msg, "no items");
  T_EQ_INT(guard_bootstrap(base, cand, 3, 1, 10, 0.95, &iv, &err), MN_ERR_INPUT);
  T_CONTAINS(err.msg, "10 resamples are too few");
  T_EQ_INT(guard_bootstrap(base, cand, 3, 1, 1000, 1.0, &iv, &err), MN_ERR_INPUT);
  T_CONTAINS(err.msg, "confidence level of 1");
  T_EQ_INT(guard_bootstrap(base, cand, 3, 1, 1000, 0.0, &iv, &err), MN_ERR_INPUT);
  cand[1] = NAN;
  T_EQ_INT(guard_bootstrap(base, cand, 3, 1, 1000, 0.95, &iv, &err), MN_ERR_INPUT);
  T_CONTAINS(err.msg, "item 1 has a candidate score of nan: not finite");
  cand[1] = 21;
  base[2] = INFINITY;
  T_EQ_INT(guard_bootstrap(base, cand, 3, 1, 1000, 0.95, &iv, &err), MN_ERR_INPUT);
  T_CONTAINS(err.msg, "item 2 has a base score of inf");
  base[2] = -1;
  T_EQ_INT(guard_bootstrap(base, cand, 3, 1, 1000, 0.95, &iv, &err), MN_ERR_INPUT);
  T_CONTAINS(err.msg, "negative base score");
  base[0] = base[1] = base[2] = 1e308;
  T_EQ_INT(guard_bootstrap(base, cand, 3, 1, 1000, 0.95, &iv, &err), MN_ERR_INPUT);
  T_CONTAINS(err.msg, "sum past the largest double");
  base[0] = base[1] = base[2] = 0;
  T_EQ_INT(guard_bootstrap(base, cand, 3, 1, 1000, 0.95, &iv, &err), MN_ERR_INPUT);
  T_CONTAINS(err.msg, "sum to 0 bits");
  T_CHECK(iv.change == 123 && iv.lo == 123 && iv.hi == 123); /* untouched on failure */
}

int main(void)
{
  T_RUN(identical_models_pass);
  T_RUN(planted_regression_fails);
  T_RUN(tiny_set_is_insufficient);
  T_RUN(rule_by_hand);
  T_RUN(noisy_within_tolerance);
  T_RUN(fresh_data_must_improve);
  T_RUN(coverage);
  T_RUN(same_seed_same_bits);
  T_RUN(empty_items);
  T_RUN(bad_input_is_refused);
  return T_DONE();
}
