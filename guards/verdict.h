/*
 * verdict.h -- the decision on a candidate: every rule of DESIGN.md §6 applied to the scores
 * of one evaluation set under the baseline and the candidate, as one JSON verdict and a
 * readable table (failing rows first).
 *
 * The rules, each of which can fail the verdict:
 *  - per language, held-out items: the paired bootstrap interval of the relative change in
 *    bits per byte against the language's tolerance (guard_decide: pass, fail or
 *    insufficient evidence); a must-improve language against 0;
 *  - the parity gap on parallel items: each language's bits per reference character, the
 *    worst language over the best; the candidate's gap may exceed the baseline's by at
 *    most parity_widen (a share);
 *  - probes: an accepted report's probe may not score worse than under the baseline (by
 *    more than probe_tolerance); a fixed report's probe may not exceed the bits it had when
 *    it was marked fixed (by more than probe_tolerance).
 * A set without held-out items fails, and so does a language of policy.languages that has
 * none.  The verdict passes only when every rule passes: it promotes only when each language is
 * shown to hold (an intersection-union test; docs/guards.md says why no multiplicity
 * correction is applied).
 *
 * Depends on common/ and jansson: the caller scores the items (trainer/) and stores the
 * verdict (daemon/).
 */
#ifndef MNEMO_GUARDS_VERDICT_H
#define MNEMO_GUARDS_VERDICT_H

#include "guards/guards.h"

#include <jansson.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum guard_item_kind {
  GUARD_ITEM_HELDOUT,
  GUARD_ITEM_PARALLEL,
  GUARD_ITEM_PROBE
} guard_item_kind;

/* One item scored by both models. */
typedef struct guard_item {
  guard_item_kind kind;
  const char *lang, *id;
  double bytes;       /* the item's bytes */
  double ref_chars;   /* parallel: the reference language's characters for the item */
  const char *report; /* probe: the report it comes from */
  double fixed_bits;  /* probe of a fixed report: its bits when marked fixed; < 0: accepted */
  double base, cand;  /* NLL in bits under the baseline and the candidate */
} guard_item;

typedef struct guard_policy {
  double tolerance;       /* default relative regression allowed per language */
  const char *tolerances; /* overrides "kat:0.03,swh:0.05" (NULL or "": none) */
  int min_items;          /* fewer held-out items: insufficient evidence */
  int resamples;          /* bootstrap resamples per language */
  double level;           /* two-sided confidence level */
  uint64_t seed;
  double parity_widen;      /* the parity gap may grow by this share */
  double probe_tolerance;   /* a probe may get worse by this share */
  const char *must_improve; /* "spa,kat": languages that must improve (NULL or "": none) */
  const char *languages;    /* "spa,kat,...": every language the models serve; one without
                             * held-out items is insufficient evidence (NULL: those present) */
} guard_policy;

/*
 * guard_verdict -- the verdict over n items as a new JSON object (*out, owned by the caller):
 * {"pass", "failing": [...], "languages": [...], "parity": {...}, "probes": [...],
 *  "policy": {...}}, every language with its baseline, candidate, change, interval, rule,
 * outcome and reason.  best, when not NULL, is {lang: best production bits per byte so far}
 * on the same set: each language then also reports its forgetting against that best.
 * MN_ERR_INPUT for a malformed tolerances or must_improve list (naming it), a must-improve
 * language with no held-out items, or bad scores (guard_bootstrap's errors, with the
 * language).
 */
MN_NODISCARD mn_status guard_verdict(const guard_item *items, size_t n, const guard_policy *p,
                                     const json_t *best, json_t **out /* OUT */, mn_error *err);

/*
 * guard_best_so_far -- {lang: best bits per byte} from the n earlier verdict files on the set
 * whose version is set_sha: each one's baseline (production then) and, where it passed, its
 * candidate; a verdict on another set adds nothing (its items differ).  *best is a new
 * object owned by the caller, NULL when n is 0; MN_ERR_INPUT naming a file that is not a
 * verdict (and *best NULL).
 */
MN_NODISCARD mn_status guard_best_so_far(const char *const *verdicts, size_t n, const char *set_sha,
                                         json_t **best /* OUT */, mn_error *err);

/* guard_render -- the verdict as a table: failing languages first, then parity and probes. */
void guard_render(const json_t *verdict, FILE *f);

#ifdef __cplusplus
}
#endif
#endif /* MNEMO_GUARDS_VERDICT_H */
