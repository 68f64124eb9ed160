/*
 * stats.c -- the paired bootstrap of a language's change in bits per byte and the rule
 * that decides on it (guards.h).
 *
 * The bootstrap is the hot part: a guard run checks every language (40 and more) with
 * thousands of resamples of about a thousand items each, so the inner loop draws two item
 * indices per 64-bit random number, sums in four independent accumulators and reads both
 * models' scores from one interleaved array.  Resamples run in parallel (OpenMP), each
 * from its own random stream, so the thread count never changes a bit of the result.
 */
#include "guards/guards.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#define GOLDEN_GAMMA 0x9e3779b97f4a7c15ULL /* splitmix64's increment */

/* One item's two scores side by side: a draw touches one cache line, not two. */
typedef struct item_pair {
  double base, cand;
} item_pair;

/*
 * next64 -- mn_splitmix64, inlined: it is called once per two draws, and a call into
 * another translation unit through a pointer to the state would put a store and a load
 * on the loop's critical path.  The same sequence as common/util.c's.
 */
static inline uint64_t next64(uint64_t *state)
{
  uint64_t z = (*state += GOLDEN_GAMMA);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/*
 * stream_start -- the random state of resample r: a function of (seed, r) only.  The seed
 * is whitened first so that seeds 1 and 2 give unrelated streams; key ^ r is then distinct
 * per resample and splitmix64's output function is a bijection, so every resample starts
 * at its own pseudo-random point of the 2^64 cycle (overlaps of a few thousand streams of
 * a few hundred steps are vanishingly unlikely).
 */
static uint64_t stream_start(uint64_t seed, uint64_t r)
{
  uint64_t s = seed;
  uint64_t key = mn_splitmix64(&s) ^ r;
  return mn_splitmix64(&key);
}

/*
 * redraw -- Lemire's rejection step, taken when the low half of a multiply-shift product
 * fell below threshold = 2^32 mod n (for n = 1000, once in 14 million draws): draw again
 * from the same stream until the index is unbiased.
 */
static uint64_t redraw(uint64_t *state, uint32_t n, uint32_t threshold)
{
  uint64_t m;
  do {
    m = (next64(state) >> 32) * n;
  } while ((uint32_t)m < threshold);
  return m;
}

/* resample_change -- one resample's sum(cand)/sum(base) - 1 over n indices drawn from state. */
static double resample_change(const item_pair *items, uint32_t n, uint32_t threshold,
                              uint64_t state)
{
  /* four accumulators: a sum chained through one register waits out the add latency */
  double b0 = 0, b1 = 0, c0 = 0, c1 = 0;
  uint32_t k = 0;
  for (; k + 2 <= n; k += 2) {
    uint64_t x = next64(&state);
    uint64_t m0 = (x & 0xffffffffu) * n, m1 = (x >> 32) * n;
    if ((uint32_t)m0 < threshold) m0 = redraw(&state, n, threshold);
    if ((uint32_t)m1 < threshold) m1 = redraw(&state, n, threshold);
    const item_pair *p0 = &items[m0 >> 32], *p1 = &items[m1 >> 32];
    b0 += p0->base;
    c0 += p0->cand;
    b1 += p1->base;
    c1 += p1->cand;
  }
  if (k < n) {
    uint64_t m = (next64(&state) >> 32) * n;
    if ((uint32_t)m < threshold) m = redraw(&state, n, threshold);
    b0 += items[m >> 32].base;
    c0 += items[m >> 32].cand;
  }
  double sb = b0 + b1, sc = c0 + c1;
  /* items may score 0 bits (an empty item): a resample of only those has no ratio */
  if (sb == 0) return sc > 0 ? INFINITY : 0.0;
  return sc / sb - 1.0;
}

/*
 * select_kth -- Wirth's selection (Hoare's FIND): afterwards v[k] holds what v[k] would
 * hold sorted, with nothing larger before it and nothing smaller after it.  Expected linear
 * time; v holds no NaN (resample_change never returns one).
 */
static void select_kth(double *v, size_t count, size_t k)
{
  ptrdiff_t lo = 0, hi = (ptrdiff_t)count - 1, kk = (ptrdiff_t)k;
  while (lo < hi) {
    double pivot = v[kk];
    ptrdiff_t i = lo, j = hi;
    do {
      while (v[i] < pivot)
        i++;
      while (pivot < v[j])
        j--;
      if (i <= j) {
        double t = v[i];
        v[i] = v[j];
        v[j] = t;
        i++;
        j--;
      }
    } while (i <= j);
    if (j < kk) lo = i;
    if (kk < i) hi = j;
  }
}

/* quantile -- the p-quantile of v (linear between the order statistics around p*(count-1),
 * R's type 7); reorders v. */
static double quantile(double *v, size_t count, double p)
{
  double h = p * (double)(count - 1);
  size_t j = (size_t)floor(h);
  if (j >= count - 1) j = count - 1;
  select_kth(v, count, j);
  double g = h - (double)j, a = v[j];
  if (g <= 0 || j + 1 >= count) return a;
  /* everything after j is >= v[j]: the next order statistic is their minimum */
  double b = v[j + 1];
  for (size_t i = j + 2; i < count; i++)
    if (v[i] < b) b = v[i];
  if (a == b) return a; /* also keeps inf - inf out of the interpolation */
  return a + g * (b - a);
}

static mn_status check_inputs(const double *base, const double *cand, size_t n, int resamples,
                              double level, double *sum_base, double *sum_cand, mn_error *err)
{
  if (n == 0)
    return mn_error_set(err, MN_ERR_INPUT, "no items to compare: the bootstrap needs n > 0");
  if (n > UINT32_MAX)
    return mn_error_set(err, MN_ERR_INPUT, "%zu items are too many for the bootstrap (at most %u)",
                        n, (unsigned)UINT32_MAX);
  if (resamples < 100)
    return mn_error_set(err, MN_ERR_INPUT,
                        "%d resamples are too few for a bootstrap interval: want at least 100",
                        resamples);
  if (!(level > 0 && level < 1))
    return mn_error_set(err, MN_ERR_INPUT, "a confidence level of %g: want one in (0, 1)", level);
  double sb = 0, sc = 0;
  for (size_t i = 0; i < n; i++) {
    const double v[2] = {base[i], cand[i]};
    const char *who[2] = {"base", "candidate"};
    for (int m = 0; m < 2; m++) {
      if (!isfinite(v[m]))
        return mn_error_set(err, MN_ERR_INPUT, "item %zu has a %s score of %g: not finite", i,
                            who[m], v[m]);
      if (v[m] < 0)
        return mn_error_set(err, MN_ERR_INPUT,
                            "item %zu has a negative %s score (%g bits): NLL cannot be negative", i,
                            who[m], v[m]);
    }
    sb += base[i];
    sc += cand[i];
  }
  if (!isfinite(sb) || !isfinite(sc))
    return mn_error_set(err, MN_ERR_INPUT,
                        "the scores of %zu items sum past the largest double: not NLL in bits", n);
  if (!(sb > 0))
    return mn_error_set(err, MN_ERR_INPUT,
                        "the base model's scores sum to 0 bits over %zu items: "
                        "a relative change is undefined",
                        n);
  *sum_base = sb;
  *sum_cand = sc;
  return MN_OK;
}

mn_status guard_bootstrap(const double *base, const double *cand, size_t n, uint64_t seed,
                          int resamples, double level, guard_interval *out, mn_error *err)
{
  assert(out && (n == 0 || (base && cand)));
  mn_status rc = MN_OK;
  item_pair *items = NULL;
  double *values = NULL, sb = 0, sc = 0;

  rc = check_inputs(base, cand, n, resamples, level, &sb, &sc, err);
  if (rc != MN_OK) goto out;
  items = malloc(n * sizeof *items);
  values = malloc((size_t)resamples * sizeof *values);
  if (!items || !values) {
    rc = mn_error_set(err, MN_ERR_NOMEM,
                      "out of memory for a bootstrap of %zu items x %d resamples", n, resamples);
    goto out;
  }
  for (size_t i = 0; i < n; i++)
    items[i] = (item_pair){base[i], cand[i]};

  const uint32_t n32 = (uint32_t)n;
  const uint32_t threshold = (uint32_t)(-n32) % n32; /* 2^32 mod n: Lemire's rejection bound */
  /* static schedule, one value slot per resample: which thread computes a resample never
   * changes what it computes */
#pragma omp parallel for schedule(static)
  for (int r = 0; r < resamples; r++)
    values[r] = resample_change(items, n32, threshold, stream_start(seed, (uint64_t)r));

  const double tail = (1.0 - level) / 2.0;
  out->change = sc / sb - 1.0;
  out->lo = quantile(values, (size_t)resamples, tail);
  out->hi = quantile(values, (size_t)resamples, 1.0 - tail);
out:
  free(items);
  free(values);
  return rc;
}

const char *guard_outcome_name(guard_outcome o)
{
  switch (o) {
  case GUARD_PASS: return "pass";
  case GUARD_FAIL: return "fail";
  case GUARD_INSUFFICIENT: return "insufficient evidence";
  }
  return "unknown";
}

/* items_needed -- ceil(n * ratio^2), at least n + 1 (n items were not enough), saturating at
 * SIZE_MAX rather than overflowing the conversion. */
static size_t items_needed(size_t n, double ratio)
{
  double want = ceil((double)n * ratio * ratio);
  size_t needed;
  if (!(want < (double)SIZE_MAX)) /* also an infinite or NaN ratio */
    needed = SIZE_MAX;
  else
    needed = (size_t)want;
  return needed > n ? needed : (n < SIZE_MAX ? n + 1 : SIZE_MAX);
}

void guard_decide(const guard_interval *iv, size_t n, const guard_rule *rule, guard_decision *out)
{
  assert(iv && rule && out && !isnan(iv->change) && !isnan(iv->lo) && !isnan(iv->hi));
  const double bound = rule->must_improve ? 0.0 : rule->tolerance;
  const bool fits = rule->must_improve ? iv->hi < 0 : iv->hi <= bound;
  const bool past = rule->must_improve ? iv->change >= 0 : iv->change > bound;
  const size_t min_items = rule->min_items > 0 ? (size_t)rule->min_items : 0;
  char what[128];

  snprintf(what, sizeof what, "bits per byte changed by %+.2f%% (interval %+.2f%% to %+.2f%%)",
           100 * iv->change, 100 * iv->lo, 100 * iv->hi);
  out->needed = 0;
  if (n < min_items) {
    /* what the interval alone would ask for: n when it already fits; nothing beyond the
     * minimum when the point estimate is past the bound (more items would not help it) */
    size_t estimate = 0;
    if (fits)
      estimate = n;
    else if (!past)
      estimate = items_needed(n, (iv->hi - iv->change) / (bound - iv->change));
    out->outcome = GUARD_INSUFFICIENT;
    out->needed = estimate > min_items ? estimate : min_items;
    snprintf(out->reason, sizeof out->reason,
             "only %zu items were scored, fewer than the %zu required; %s; "
             "about %zu items would be needed",
             n, min_items, what, out->needed);
  } else if (fits) {
    out->outcome = GUARD_PASS;
    if (rule->must_improve)
      snprintf(out->reason, sizeof out->reason, "%s: improved, as a language with fresh data must",
               what);
    else
      snprintf(out->reason, sizeof out->reason, "%s: within the %+.2f%% allowed", what,
               100 * bound);
  } else if (past) {
    out->outcome = GUARD_FAIL;
    if (rule->must_improve)
      snprintf(out->reason, sizeof out->reason,
               "%s: no improvement although the language had fresh data", what);
    else
      snprintf(out->reason, sizeof out->reason, "%s: past the %+.2f%% allowed", what, 100 * bound);
  } else {
    /* the point estimate fits but the interval does not: the upper half-width shrinks as
     * 1/sqrt(n), so it fits the room left below the bound at n * (half-width / room)^2 */
    out->outcome = GUARD_INSUFFICIENT;
    out->needed = items_needed(n, (iv->hi - iv->change) / (bound - iv->change));
    snprintf(out->reason, sizeof out->reason,
             "%s: the estimate is within the %+.2f%% bound but the interval reaches past it; "
             "about %zu items would be needed, %zu were scored",
             what, 100 * bound, out->needed, n);
  }
}
