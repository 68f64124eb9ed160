/*
 * sampler.c -- how much each language contributes to a batch: temperature shares and
 * UniMax budgets (replay.h).
 */
#include "replay/replay.h"

#include <math.h>
#include <stdlib.h>

static mn_status check_inputs(const double *n, const double *boost, size_t k, mn_error *err)
{
  if (k == 0) return mn_error_set(err, MN_ERR_INPUT, "a sampler needs at least one language");
  for (size_t i = 0; i < k; i++) {
    if (!(n[i] >= 0) || !isfinite(n[i]))
      return mn_error_set(err, MN_ERR_INPUT, "language %zu has %g of data: not a size", i, n[i]);
    if (boost && (!(boost[i] > 0) || !isfinite(boost[i])))
      return mn_error_set(err, MN_ERR_INPUT, "language %zu has a boost of %g: it must be > 0", i,
                          boost[i]);
  }
  return MN_OK;
}

mn_status replay_shares_temperature(const double *n, const double *boost, size_t k, double alpha,
                                    double *q, mn_error *err)
{
  mn_status rc = check_inputs(n, boost, k, err);
  if (rc != MN_OK) return rc;
  if (!(alpha >= 0) || !isfinite(alpha))
    return mn_error_set(err, MN_ERR_INPUT, "a sampling temperature alpha of %g: want >= 0", alpha);
  double sum = 0;
  for (size_t i = 0; i < k; i++) {
    q[i] = n[i] > 0 ? pow(n[i], alpha) * (boost ? boost[i] : 1.0) : 0.0;
    sum += q[i];
  }
  if (!(sum > 0)) return mn_error_set(err, MN_ERR_INPUT, "no language has any data to sample");
  for (size_t i = 0; i < k; i++)
    q[i] /= sum;
  return MN_OK;
}

typedef struct fill_item {
  double level; /* cap / weight: the water level at which this language is full */
  size_t i;
} fill_item;

static int by_level(const void *a, const void *b)
{
  const fill_item *x = a, *y = b;
  if (x->level != y->level) return x->level < y->level ? -1 : 1;
  return (x->i > y->i) - (x->i < y->i); /* ties in input order: the result is deterministic */
}

mn_status replay_budget_unimax(const double *n, const double *boost, size_t k, double total,
                               double epochs, double *budget, double *unused, mn_error *err)
{
  mn_status rc = check_inputs(n, boost, k, err);
  if (rc != MN_OK) return rc;
  if (!(total >= 0) || !isfinite(total) || !(epochs > 0) || !isfinite(epochs))
    return mn_error_set(err, MN_ERR_INPUT,
                        "UniMax wants a budget >= 0 and epochs > 0, got %g and %g", total, epochs);
  fill_item *items = malloc(k * sizeof *items);
  if (!items) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  double weights = 0;
  for (size_t i = 0; i < k; i++) {
    double w = boost ? boost[i] : 1.0;
    items[i] = (fill_item){.level = epochs * n[i] / w, .i = i};
    weights += w;
  }
  /* fill the languages that run out first: each takes its even (weighted) part of what is
   * left, or all it can use; the rest share what it leaves */
  qsort(items, k, sizeof *items, by_level);
  double left = total;
  for (size_t j = 0; j < k; j++) {
    size_t i = items[j].i;
    double w = boost ? boost[i] : 1.0, cap = epochs * n[i];
    double fair = weights > 0 ? left * w / weights : 0.0;
    budget[i] = fair < cap ? fair : cap;
    left -= budget[i];
    weights -= w;
  }
  free(items);
  *unused = left > 0 ? left : 0.0;
  return MN_OK;
}
