/*
 * guards.h -- the per-language statistics of the regression guards: how much a candidate
 * checkpoint changed a language's bits per byte, with a paired bootstrap interval, and the
 * rule that turns that interval into pass, fail or "insufficient evidence".
 *
 * Both models score the same held-out items of a language (NLL in bits per item); the
 * items are the unit of resampling, so the interval accounts for items that are hard for
 * both models alike (the pairing) and for the spread between items.  This module does not
 * read scores, know languages or store verdicts: callers hand it arrays and get numbers.
 *
 * Invariants:
 *  - guard_bootstrap is a pure function of its inputs and the seed: each resample's random
 *    stream is derived from (seed, resample index) only, so the result is bit-identical
 *    whatever the number of OpenMP threads.
 *  - guard_decide never allocates and never fails.
 * Depends on common/ only.
 */
#ifndef MNEMO_GUARDS_H
#define MNEMO_GUARDS_H

#include "common/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One language's paired evidence: n items scored by both models, NLL in bits per item. */
typedef struct guard_interval {
  double change; /* relative change of bits per byte: sum(cand)/sum(base) - 1 (positive: worse) */
  double lo, hi; /* percentile bootstrap interval of change at `level` (two-sided, e.g. 0.95) */
} guard_interval;

/*
 * guard_bootstrap -- paired bootstrap over items: each of `resamples` resamples draws n item
 * indices uniformly with replacement and takes sum(cand[idx])/sum(base[idx]) - 1; lo and hi
 * are the (1-level)/2 and (1+level)/2 quantiles of those (linear interpolation between the
 * order statistics around p * (resamples - 1)).  A resample whose base items all score 0
 * counts as +infinity when its candidate items do not, 0 when they do too.
 *
 * Deterministic for a seed: the same result whatever the number of threads.  Errors
 * (MN_ERR_INPUT, naming the problem): n == 0, n above 2^32 - 1, resamples < 100, level not
 * in (0,1), a non-finite or negative value, sum(base) == 0; MN_ERR_NOMEM when the working
 * arrays (16 bytes per item, 8 per resample) cannot be allocated.  *out is written only on
 * success.
 */
MN_NODISCARD mn_status guard_bootstrap(const double *base, const double *cand, size_t n,
                                       uint64_t seed, int resamples, double level,
                                       guard_interval *out /* OUT */, mn_error *err);

typedef enum guard_outcome { GUARD_PASS, GUARD_FAIL, GUARD_INSUFFICIENT } guard_outcome;

/* guard_outcome_name -- "pass", "fail", "insufficient evidence" (static strings). */
const char *guard_outcome_name(guard_outcome o);

typedef struct guard_rule {
  double tolerance;  /* the relative regression allowed (e.g. 0.01) */
  int min_items;     /* fewer items: insufficient evidence whatever the interval */
  bool must_improve; /* the language had fresh data: it must improve (hi < 0) */
} guard_rule;

typedef struct guard_decision {
  guard_outcome outcome;
  size_t needed;    /* for insufficient evidence: items that would be needed (0 otherwise) */
  char reason[256]; /* one readable sentence, with the numbers */
} guard_decision;

/*
 * guard_decide -- the per-language rule.  bound = must_improve ? 0 : tolerance.
 *  - n < min_items: insufficient evidence; needed = the larger of min_items and the
 *    estimate below (n when the interval already fits, nothing when the point estimate
 *    is past the bound).
 *  - hi <= bound: pass.  With must_improve the comparison is strict (hi < 0): an interval
 *    that ends at exactly no change has not shown an improvement.
 *  - change > bound (the point estimate itself is past the bound): fail.  With
 *    must_improve, change >= 0 fails (no improvement at all).
 *  - otherwise (the point estimate is within the bound but the interval reaches past it):
 *    insufficient evidence; needed = ceil(n * ((hi - change) / (bound - change))^2), the
 *    number of items at which the interval's upper half-width would shrink (as 1/sqrt(n))
 *    to fit; at least n + 1, at most SIZE_MAX.
 * The reason names the change, the interval, the bound and (when insufficient) the items
 * needed.  iv must not hold NaN (guard_bootstrap never returns one).
 */
void guard_decide(const guard_interval *iv, size_t n, const guard_rule *rule,
                  guard_decision *out /* OUT */);

#ifdef __cplusplus
}
#endif
#endif /* MNEMO_GUARDS_H */
