/*
 * finetune.c -- what a fine-tune adds to pretraining (train.h): the baseline's weights as
 * EWC's anchor and its Fisher, replayed windows in every batch (drawn by language share
 * with boosts, from the step alone so a resume draws the same), the baseline as a teacher
 * for distillation, and the stages of progressive unfreezing with each tensor's first
 * update step.  The loop that uses it is train.c; what shapes the run goes into its lineage.
 */
#include "replay/replay.h"
#include "trainer/train.h"
#include "trainer/trainer_int.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- stages */

mn_status finetune_stages_parse(const char *text, int L, finetune_stages *f, mn_error *err)
{
  memset(f, 0, sizeof *f);
  if (!text) return mn_error_set(err, MN_ERR_CONFIG, "finetune.stages is empty");
  size_t len = strlen(text);
  if (len >= 256)
    return mn_error_set(err, MN_ERR_CONFIG, "finetune.stages is longer than %d bytes", 255);
  int64_t at = 0;
  const char *p = text;
  for (;;) { /* one stage "K[:STEPS]" up to the next comma */
    const char *comma = strchr(p, ',');
    size_t n = comma ? (size_t)(comma - p) : strlen(p);
    char tok[256];
    snprintf(tok, sizeof tok, "%.*s", (int)n, p);
    if (n > 0) {
      if (f->n == FINETUNE_MAX_STAGES)
        return mn_error_set(err, MN_ERR_CONFIG, "finetune.stages: at most %d stages",
                            FINETUNE_MAX_STAGES);
      char *colon = strchr(tok, ':');
      if (colon) *colon = '\0';
      int64_t k = -1, steps = INT64_MAX;
      bool all = strcmp(tok, "all") == 0;
      if (!all && (!mn_parse_i64(tok, &k) || k < 1 || k > L))
        return mn_error_set(
            err, MN_ERR_CONFIG,
            "finetune.stages: \"%s\" is not a number of top blocks (1 .. %d) or all", tok, L);
      if (colon && (!mn_parse_i64(colon + 1, &steps) || steps < 1))
        return mn_error_set(err, MN_ERR_CONFIG, "finetune.stages: \"%s\" is not a number of steps",
                            colon + 1);
      if (f->n > 0 && f->end[f->n - 1] == INT64_MAX)
        return mn_error_set(err, MN_ERR_CONFIG,
                            "finetune.stages: a stage without a number of steps must be the last");
      f->first_block[f->n] = all ? -1 : L - (int)k;
      at = steps == INT64_MAX || at > INT64_MAX - steps ? INT64_MAX : at + steps;
      f->end[f->n++] = at;
    }
    if (!comma) break;
    p = comma + 1;
  }
  if (f->n == 0) return mn_error_set(err, MN_ERR_CONFIG, "finetune.stages is empty");
  f->end[f->n - 1] = INT64_MAX;
  return MN_OK;
}

int finetune_stages_first_block(const finetune_stages *f, int64_t t)
{
  for (int i = 0; i < f->n; i++)
    if (t <= f->end[i]) return f->first_block[i];
  return -1;
}

/* ---------------------------------------------------------------- the setup */

void finetune__fini(finetune_setup *f)
{
  free(f->anchor), free(f->fisher), free(f->replay_cum), free(f->replay_tags), free(f->replay_q);
  replay_adapt_fini(&f->adapt);
  replay_store_fini(&f->replay);
  gpt_destroy(f->teacher);
  memset(f, 0, sizeof *f);
}

/* replay_rows -- sequences fresh..B-1 of the batch from the replay store: the language by
 * its share, the window uniformly; drawn from (seed, step) alone, so a resumed run draws
 * the same ones without saving any state */
void finetune__replay_rows(const finetune_setup *f, uint64_t seed, int64_t t, int fresh, int B,
                           int T, int32_t *tok, int32_t *tgt)
{
  uint64_t s = seed ^ ((uint64_t)t * 0xd1342543de82ef95ULL);
  for (int b = fresh; b < B; b++) {
    double u = (double)(mn_splitmix64(&s) >> 11) / 9007199254740992.0;
    uint32_t l = 0;
    while (l + 1 < f->replay.nlangs && (u >= f->replay_cum[l] || f->replay.langs[l].count == 0))
      l++;
    while (f->replay.langs[l].count == 0) /* rounding past the last share: step back */
      l--;
    const replay_lang *rl = &f->replay.langs[l];
    const uint32_t *w = rl->windows + (mn_splitmix64(&s) % rl->count) * (size_t)f->replay.window;
    int32_t *x = tok + (size_t)b * T, *y = tgt + (size_t)b * T;
    x[0] = f->replay_tags[l]; /* as the loader does: the tag first */
    for (int i = 1; i < T; i++)
      x[i] = w[i];
    for (int i = 0; i < T; i++)
      y[i] = w[i + 1];
  }
}

/* cumulate -- the sampler's cumulative shares: the prepared shares times the controller's
 * factors (none: the shares as they are), normalised */
static void cumulate(finetune_setup *f)
{
  uint32_t k = f->replay.nlangs;
  double sum = 0, cum = 0;
  for (uint32_t i = 0; i < k; i++)
    sum += f->replay_q[i] * replay_adapt_boost(&f->adapt, i);
  for (uint32_t i = 0; i < k; i++) {
    cum += f->replay_q[i] * replay_adapt_boost(&f->adapt, i);
    f->replay_cum[i] = sum > 0 ? cum / sum : (double)(i + 1) / k;
  }
}

void finetune__observe(finetune_setup *f, const float *losses, const float *teacher_losses,
                       const int32_t *tok, int B, int T)
{
  if (!f->adapt.k || !losses || !teacher_losses) return;
  for (int b = B - f->nrep; b < B; b++) {
    uint32_t l = 0;
    while (l < f->replay.nlangs && f->replay_tags[l] != tok[(size_t)b * T])
      l++;
    double lm = 0, lt = 0;
    const float *tl = teacher_losses + (size_t)(b - (B - f->nrep)) * T;
    for (int i = 0; i < T; i++)
      lm += losses[(size_t)b * T + i], lt += tl[i];
    replay_adapt_add(&f->adapt, l, lm / T, lt / T);
  }
}

void finetune__adapt_fix(finetune_setup *f, const char *code)
{
  for (size_t i = 0; i < f->adapt.k; i++)
    if (strcmp(f->replay.langs[i].code, code) == 0) f->adapt.fixed[i] = true;
}

void finetune__adapt_step(finetune_setup *f)
{
  if (f->adapt.k && replay_adapt_step(&f->adapt, &f->law)) cumulate(f);
}

mn_status finetune__adapt_state(const finetune_setup *f, char **out, mn_error *err)
{
  *out = NULL;
  if (!f->adapt.k) return MN_OK;
  json_t *o = json_object();
  for (uint32_t i = 0; o && i < f->replay.nlangs; i++)
    json_object_set_new(o, f->replay.langs[i].code,
                        json_pack("[f, f, f, I]", f->adapt.acc_model[i], f->adapt.acc_base[i],
                                  f->adapt.log_boost[i], (json_int_t)f->adapt.seen[i]));
  /* 17 digits: the doubles come back bit for bit */
  *out = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17)) : NULL;
  json_decref(o);
  return *out ? MN_OK : mn_error_set(err, MN_ERR_NOMEM, "out of memory");
}

mn_status finetune__adapt_restore(finetune_setup *f, const char *text, mn_error *err)
{
  if (!f->adapt.k && !text) return MN_OK;
  if (!f->adapt.k || !text)
    return mn_error_set(err, MN_ERR_INPUT,
                        "the optimizer state %s the drift controller's and this run %s it: "
                        "another run's (finetune.adapt_max_boost)",
                        text ? "holds" : "lacks", text ? "has none of" : "needs");
  json_error_t je;
  json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, &je);
  mn_status rc = MN_OK;
  if (!json_is_object(o) || json_object_size(o) != f->replay.nlangs)
    rc = mn_error_set(err, MN_ERR_INPUT, "the drift controller's saved state is not this run's");
  for (uint32_t i = 0; rc == MN_OK && i < f->replay.nlangs; i++) {
    json_t *v = json_object_get(o, f->replay.langs[i].code);
    double am, ab, lb;
    json_int_t n;
    if (!v || json_unpack(v, "[F, F, F, I]", &am, &ab, &lb, &n) != 0 || n < 0 || !(ab >= 0) ||
        !(am >= 0) || !(lb >= 0) || !(lb <= log(f->law.max_boost) + 1e-12)) {
      rc = mn_error_set(err, MN_ERR_INPUT, "the drift controller's saved state lacks %s",
                        f->replay.langs[i].code);
      break;
    }
    f->adapt.acc_model[i] = am, f->adapt.acc_base[i] = ab, f->adapt.log_boost[i] = lb;
    f->adapt.seen[i] = (int64_t)n;
    f->adapt.drift[i] = ab > 0 ? (am - ab) / ab : 0;
  }
  json_decref(o);
  if (rc == MN_OK) cumulate(f);
  return rc;
}

/* replay_boosts -- a list of factors ("deu:3,swh:2") multiplied into boost, per store
 * language.  strict (finetune.replay_boosts, an operator's): a language the store does not
 * hold is an error, not a silent no-op; else (finetune.report_boosts, from reports) it is
 * skipped and left out of *applied */
static mn_status replay_boosts(const char *key, const char *list, bool strict,
                               const replay_store *s, double *boost, mn_buf *applied, mn_error *err)
{
  char code[8];
  double v;
  const char *entry;
  size_t len;
  int r;
  if (!list) return MN_OK;
  while ((r = mn_lang_list_next(&list, code, &v, &entry, &len)) != 0) {
    if (r < 0 || !(v > 0))
      return mn_error_set(err, MN_ERR_INPUT, "%s: \"%.*s\" is not LANG:FACTOR with a factor > 0",
                          key, (int)len, entry);
    const replay_lang *l = replay_store_find(s, code);
    if (!l && strict)
      return mn_error_set(err, MN_ERR_INPUT, "%s: the replay store holds no window of \"%s\"", key,
                          code);
    if (!l) continue;
    boost[l - s->langs] *= v;
    mn_status rc =
        applied ? mn_buf_appendf(applied, err, "%s%s:%g", applied->len ? "," : "", code, v) : MN_OK;
    if (rc != MN_OK) return rc;
  }
  return MN_OK;
}

/* finetune_prepare -- the baseline (already loaded into m) as anchor, its Fisher, the
 * replay store, the stages; ft_lineage receives what of it shapes the run */
mn_status finetune__prepare(const finetune_options *fo, gpt *m, const ckpt_meta *base, int B, int T,
                            int64_t steps, double alpha, const kernels_backend *backend,
                            finetune_setup *f, json_t *lineage, mn_error *err)
{
  size_t np = gpt_params_count(m);
  mn_status rc;
  f->anchor = malloc(np * sizeof(float));
  if (!f->anchor) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  memcpy(f->anchor, gpt_params(m), np * sizeof(float));
  json_object_set_new(lineage, "baseline", json_string(base->sha256));
  const char *fp = fo->fisher;
  if (fp && *fp && fo->ewc_lambda > 0) {
    fisher_meta fm;
    f->fisher = malloc(np * sizeof(float));
    if (!f->fisher) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    if ((rc = ckpt_load_fisher(fp, f->fisher, np, &fm, err)) != MN_OK) return rc;
    if (strcmp(fm.weights_sha256, base->sha256) != 0)
      return mn_error_set(err, MN_ERR_INPUT,
                          "the Fisher \"%s\" was estimated at other weights than the baseline %s",
                          fp, fo->baseline);
    gpt_set_ewc(m, f->fisher, f->anchor, (float)fo->ewc_lambda);
    json_object_set_new(lineage, "ewc",
                        json_pack("{s:f, s:s}", "lambda", fo->ewc_lambda, "fisher", fm.sha256));
  }
  const char *rp = fo->replay_store;
  if (rp && *rp && fo->replay_ratio > 0) {
    if ((rc = replay_store_load(rp, &f->replay, err)) != MN_OK) return rc;
    uint64_t held = 0;
    for (uint32_t i = 0; i < f->replay.nlangs; i++)
      held += f->replay.langs[i].count;
    char store_sha[MN_SHA256_HEX_LEN + 1];
    if ((rc = replay_store_checksum(rp, store_sha, err)) != MN_OK) return rc;
    /* the windows' ids must be the baseline's tokenizer's: a store of another tokenizer (of
     * the same size, say) would pass the vocabulary check below and teach noise */
    char store_tok[MN_SHA256_HEX_LEN + 1];
    if (f->replay.tok_sha256[0]) /* version 1 names none: the byte tokenizer's */
      snprintf(store_tok, sizeof store_tok, "%s", f->replay.tok_sha256);
    else if ((rc = trainer__bytes_sha256(store_tok, err)) != MN_OK)
      return rc;
    if (strcmp(store_tok, base->tok_sha256) != 0) {
      mn_error_set(err, MN_ERR_INPUT,
                   "replay store \"%s\" holds windows of the tokenizer %.16s..., not the "
                   "baseline's %.16s...: absorb shards made with mnemo shard --tokenizer %s",
                   rp, store_tok, base->tok_sha256, fo->baseline);
      return mn_error_detail(err,
                             "the store's tokenizer: %s; the baseline's (%s): %s; absorb shards "
                             "made with mnemo shard --tokenizer BASELINE into a new store",
                             store_tok, fo->baseline, base->tok_sha256);
    }
    if (f->replay.window != (uint32_t)T + 1 || held == 0) /* no window: nothing to draw */
      return mn_error_set(err, MN_ERR_INPUT,
                          "replay store \"%s\" holds %llu windows of %u tokens; this fine-tune "
                          "needs some, of %d",
                          rp, (unsigned long long)held, f->replay.window, T + 1);
    uint32_t k = f->replay.nlangs;
    double *n = calloc(k, sizeof *n), *q = calloc(k, sizeof *q), *boost = calloc(k, sizeof *boost);
    f->replay_cum = calloc(k, sizeof *f->replay_cum);
    f->replay_tags = calloc(k, sizeof *f->replay_tags);
    if (!n || !q || !boost || !f->replay_cum || !f->replay_tags) {
      free(n), free(q), free(boost);
      return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    mn_buf applied, guarded;
    mn_buf_init(&applied, 256);
    mn_buf_init(&guarded, 256);
    for (uint32_t i = 0; i < k; i++)
      boost[i] = 1.0;
    if ((rc = replay_boosts("finetune.replay_boosts", fo->replay_boosts, true, &f->replay, boost,
                            NULL, err)) != MN_OK ||
        (rc = replay_boosts("finetune.report_boosts", fo->report_boosts, false, &f->replay, boost,
                            &applied, err)) != MN_OK ||
        (rc = replay_boosts("finetune.guard_boosts", fo->guard_boosts, false, &f->replay, boost,
                            &guarded, err)) != MN_OK) {
      free(n), free(q), free(boost);
      mn_buf_fini(&applied), mn_buf_fini(&guarded);
      return rc;
    }
    int V = gpt_get_config(m)->vocab_size;
    for (uint32_t i = 0; i < k; i++) { /* a store from elsewhere must fit this model */
      const replay_lang *rl = &f->replay.langs[i];
      for (size_t j = 0; j < (size_t)rl->count * f->replay.window; j++)
        if (rl->windows[j] >= (uint32_t)V) {
          free(n), free(q), free(boost);
          mn_buf_fini(&applied), mn_buf_fini(&guarded);
          return mn_error_set(err, MN_ERR_INPUT,
                              "replay store \"%s\": %s holds token %u, beyond the vocabulary of %d",
                              rp, rl->code, rl->windows[j], V);
        }
    }
    f->nrep = (int)lround(fo->replay_ratio * B);
    if (f->nrep >= B) f->nrep = B - 1; /* a batch always holds fresh text */
    if (f->nrep == 0) { /* a store asked for and nothing replayed: say so, do not drop it */
      free(n), free(q), free(boost);
      mn_buf_fini(&applied), mn_buf_fini(&guarded);
      return mn_error_set(err, MN_ERR_INPUT,
                          "finetune.replay_ratio %g of a batch of %d sequences replays none of "
                          "replay store \"%s\": raise the ratio or train.batch_size, or set "
                          "finetune.replay_ratio to 0",
                          fo->replay_ratio, B, rp);
    }
    if (fo->replay_sampler == 1) { /* UniMax over the run's replayed windows */
      double unused, total = f->nrep * (double)steps;
      for (uint32_t i = 0; i < k; i++)
        n[i] = (double)f->replay.langs[i].count;
      rc = replay_budget_unimax(n, boost, k, total, fo->unimax_epochs, q, &unused, err);
      double sum = 0;
      for (uint32_t i = 0; i < k && rc == MN_OK; i++)
        sum += q[i];
      for (uint32_t i = 0; i < k && rc == MN_OK; i++)
        q[i] = sum > 0 ? q[i] / sum : 1.0 / k;
    } else {
      for (uint32_t i = 0; i < k; i++) /* a language holding no window gets no share */
        n[i] = f->replay.langs[i].count ? (double)f->replay.langs[i].seen : 0.0;
      rc = replay_shares_temperature(n, boost, k, alpha, q, err);
    }
    for (uint32_t i = 0; i < k && rc == MN_OK; i++) {
      f->replay_tags[i] = tok_tag_of(&base->tags, f->replay.langs[i].code);
      if (f->replay_tags[i] < 0)
        rc = mn_error_set(err, MN_ERR_INPUT,
                          "replay store \"%s\" holds %s, which the baseline "
                          "has no tag for",
                          rp, f->replay.langs[i].code);
    }
    free(n), free(boost);
    f->replay_q = q;
    cumulate(f);
    if (rc == MN_OK && f->nrep > 0 && fo->adapt_max_boost > 1) { /* the drift controller */
      f->law = replay_adapt_default;
      f->law.max_boost = fo->adapt_max_boost;
      rc = replay_adapt_init(&f->adapt, k, err);
    }
    if (rc != MN_OK) {
      mn_buf_fini(&applied), mn_buf_fini(&guarded);
      return rc;
    }
    json_t *rl = json_pack("{s:f, s:i, s:I, s:s, s:f, s:s}", "ratio", fo->replay_ratio, "per_batch",
                           f->nrep, "windows", (json_int_t)held, "sampler",
                           fo->replay_sampler ? "unimax" : "temperature", "unimax_epochs",
                           fo->unimax_epochs, "store", store_sha);
    if (fo->replay_boosts &&
        fo->replay_boosts[0]) /* only when set: older runs' lineages stay resumable */
      json_object_set_new(rl, "boosts", json_string(fo->replay_boosts));
    if (applied.len) json_object_set_new(rl, "report_boosts", json_string(applied.data));
    if (guarded.len) json_object_set_new(rl, "guard_boosts", json_string(guarded.data));
    if (f->adapt.k) /* only when on: older runs' lineages stay resumable */
      json_object_set_new(rl, "adapt",
                          json_pack("{s:f, s:f, s:f, s:f, s:b}", "smoothing", f->law.smoothing,
                                    "target", f->law.target, "rate", f->law.rate, "max_boost",
                                    f->law.max_boost, "relative", f->law.relative));
    mn_buf_fini(&applied), mn_buf_fini(&guarded);
    json_object_set_new(lineage, "replay", rl);
  }
  /* distillation acts on replayed windows only: without any (no replay store, or a ratio
   * giving none per batch) it is off, as is the drift controller, and the lineage says
   * neither -- so the defaults (distill 0.5) cost nothing to a fine-tune without replay */
  f->distill = f->nrep ? fo->distill : 0;
  if (f->distill > 0) json_object_set_new(lineage, "distill", json_real(f->distill));
  if (f->distill > 0 || f->adapt.k) { /* the baseline scores the replayed windows */
    if ((rc = gpt_create(gpt_get_config(m), f->nrep, T, 0, backend, &f->teacher, err)) != MN_OK)
      return rc;
    memcpy(gpt_params(f->teacher), f->anchor, np * sizeof(float));
    gpt_params_written(f->teacher);
  }
  if ((rc = finetune_stages_parse(fo->stages, gpt_get_config(m)->n_layer, &f->stages, err)) !=
      MN_OK)
    return rc;
  /* each tensor's first update is the start of the first stage that trains it */
  const gpt_config *gc = gpt_get_config(m);
  for (int i = 0; i < gpt_num_tensors(gc); i++) {
    char name[64];
    size_t shape[2], off;
    int ndim;
    gpt_tensor_info(gc, i, name, shape, &ndim, &off);
    int64_t start = 1;
    for (int j = 0; j < f->stages.n; j++) {
      int first = f->stages.first_block[j];
      if (off >= (first < 0 ? 0 : gpt_block_offset(gc, first))) break;
      start = f->stages.end[j] == INT64_MAX ? start : f->stages.end[j] + 1;
    }
    gpt_set_first_step(m, i, start);
  }
  json_object_set_new(lineage, "stages", json_string(fo->stages));
  json_object_set_new(lineage, "lr_factor", json_real(fo->lr_factor));
  return MN_OK;
}
