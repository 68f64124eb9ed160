/*
 * adapt.c -- the drift controller of a fine-tune (replay.h): per replayed language, how much
 * worse the model in training predicts that language's replayed windows than the baseline
 * does, smoothed, and the factor on the language's replay share that answers it.
 *
 * The law (docs/adaptive-safeguards.md says how it was chosen): each step that replays a
 * language adds its rows' losses, the model's and the baseline's, into two sums that forget
 * geometrically (each step that replays the language keeps 1 - smoothing of them); the drift
 * is their relative difference d = (model's - baseline's) / baseline's -- a ratio of sums,
 * not a mean of ratios, so one short or easy window does not swing it.  The factor's
 * logarithm integrates d's excess over a target, log b += rate * (d - target), held within
 * [0, log max_boost]: a language that keeps drifting gets ever more replay up to the bound,
 * one that recovers below the target gives it back, and with nothing drifting every factor
 * stays 1 and the sampler is unchanged.  A language marked fixed (one the fresh text itself
 * trains) keeps 1.
 */
#include "replay/replay.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const replay_adapt_law replay_adapt_default = {
    .smoothing = 0.02, .target = 0.0025, .rate = 2.0, .max_boost = 2.0, .relative = true};

mn_status replay_adapt_init(replay_adapt *a, size_t k, mn_error *err)
{
  memset(a, 0, sizeof *a);
  a->k = k;
  a->drift = calloc(k ? k : 1, sizeof *a->drift);
  a->log_boost = calloc(k ? k : 1, sizeof *a->log_boost);
  a->seen = calloc(k ? k : 1, sizeof *a->seen);
  a->sum_model = calloc(k ? k : 1, sizeof *a->sum_model);
  a->sum_base = calloc(k ? k : 1, sizeof *a->sum_base);
  a->acc_model = calloc(k ? k : 1, sizeof *a->acc_model);
  a->acc_base = calloc(k ? k : 1, sizeof *a->acc_base);
  a->fixed = calloc(k ? k : 1, sizeof *a->fixed);
  if (!a->drift || !a->log_boost || !a->seen || !a->sum_model || !a->sum_base || !a->acc_model ||
      !a->acc_base || !a->fixed) {
    replay_adapt_fini(a);
    return mn_error_set(err, MN_ERR_NOMEM, "out of memory for the drift controller");
  }
  return MN_OK;
}

void replay_adapt_fini(replay_adapt *a)
{
  free(a->drift), free(a->log_boost), free(a->seen), free(a->sum_model), free(a->sum_base);
  free(a->acc_model), free(a->acc_base), free(a->fixed);
  memset(a, 0, sizeof *a);
}

void replay_adapt_add(replay_adapt *a, size_t lang, double model_loss, double base_loss)
{
  if (lang >= a->k || !isfinite(model_loss) || !isfinite(base_loss)) return;
  a->sum_model[lang] += model_loss;
  a->sum_base[lang] += base_loss;
}

bool replay_adapt_step(replay_adapt *a, const replay_adapt_law *law)
{
  bool moved = false;
  double top = log(law->max_boost > 1 ? law->max_boost : 1);
  for (size_t i = 0; i < a->k; i++) {
    if (!(a->sum_base[i] > 0)) continue; /* not replayed this step */
    a->acc_model[i] = (1 - law->smoothing) * a->acc_model[i] + a->sum_model[i];
    a->acc_base[i] = (1 - law->smoothing) * a->acc_base[i] + a->sum_base[i];
    a->drift[i] = (a->acc_model[i] - a->acc_base[i]) / a->acc_base[i];
    a->seen[i]++;
  }
  /* relative: the level a language's drift is measured from is the mean drift of the
   * languages the controller protects, when that is above 0 -- a share moves rows between
   * languages, so a drift they all share is none it can answer */
  double level = 0, sum = 0;
  size_t n = 0;
  for (size_t i = 0; law->relative && i < a->k; i++)
    if (a->seen[i] && !a->fixed[i]) sum += a->drift[i], n++;
  if (n > 1 && sum / (double)n > 0) level = sum / (double)n;
  for (size_t i = 0; i < a->k; i++) {
    if (!(a->sum_base[i] > 0)) continue;
    double lb = a->log_boost[i] + law->rate * (a->drift[i] - level - law->target);
    lb = a->fixed[i] ? 0 : lb < 0 ? 0 : (lb > top ? top : lb);
    moved = moved || lb != a->log_boost[i];
    a->log_boost[i] = lb;
    a->sum_model[i] = a->sum_base[i] = 0;
  }
  return moved;
}

double replay_adapt_boost(const replay_adapt *a, size_t lang)
{
  return lang < a->k ? exp(a->log_boost[lang]) : 1.0;
}
