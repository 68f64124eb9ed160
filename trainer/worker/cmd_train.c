/*
 * cmd_train.c -- `mnemo pretrain` and `mnemo finetune`: the training loop (train_run), the
 * fine-tune setup (replay, boosts, stages, EWC anchor) and checkpoint saving.
 */
#define _XOPEN_SOURCE 700 /* realpath */
#include "replay/replay.h"
#include "trainer/worker/worker_int.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const worker_opt worker__pretrain_opts[] = {
    WORKER_TEXT("out", out, "DIR", "where checkpoints go (DIR/model.safetensors names the last)"),
    WORKER_TEXT("resume", resume, "CKPT",
                "continue this checkpoint (and its .opt) bit-identically"),
    WORKER_COUNT("steps", steps, "N", "stop after step N of train.steps"),
    WORKER_OPT_END,
};

const worker_opt worker__finetune_opts[] = {
    WORKER_TEXT("out", out, "DIR", "where checkpoints go (DIR/model.safetensors names the last)"),
    WORKER_TEXT("resume", resume, "CKPT",
                "continue this checkpoint (and its .opt) bit-identically"),
    WORKER_COUNT("steps", steps, "N", "stop after step N of train.steps"),
    WORKER_OPT_END,
};

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig)
{
  (void)sig;
  stop_requested = 1;
}

/* tags_of_shards -- the union of the shards' tags (a conflict is an error). */
static mn_status tags_of_shards(const shard *s, int n, tok_tags *tags, mn_error *err)
{
  for (int i = 0; i < n; i++)
    for (uint32_t k = 0; k < s[i].nsections; k++) {
      mn_status rc = tok_tags_add(tags, s[i].sections[k].code, s[i].sections[k].tag, err);
      if (rc != MN_OK) return rc;
    }
  return MN_OK;
}

/*
 * save_all -- DIR/step-N.safetensors and its .opt, then DIR/model.safetensors, a symlink,
 * flipped to them in one rename: a crash at any moment leaves model.safetensors naming a
 * complete pair (the previous one until the flip).  The pair before the previous is removed.
 */
static mn_status save_all(const char *dir, gpt *m, ckpt_meta *meta, loader *ld, int64_t remove_step,
                          mn_error *err)
{
  char name[64], path[4096], opt_path[4200], link_tmp[4200], link[4200];
  snprintf(name, sizeof name, "step-%08lld.safetensors", (long long)meta->step);
  snprintf(path, sizeof path, "%s/%s", dir, name);
  snprintf(opt_path, sizeof opt_path, "%s.opt", path);
  mn_status rc = ckpt_save(path, m, meta, err);
  if (rc != MN_OK) return rc;
  ckpt_opt_state st = {.step = meta->step, .rng = loader_state(ld)};
  snprintf(st.weights_sha256, sizeof st.weights_sha256, "%s", meta->sha256);
  if ((rc = ckpt_save_opt(opt_path, m, &st, err)) != MN_OK) return rc;
  snprintf(link, sizeof link, "%s/model.safetensors", dir);
  snprintf(link_tmp, sizeof link_tmp, "%s/model.safetensors.tmp.%ld", dir, (long)getpid());
  unlink(link_tmp);
  if (symlink(name, link_tmp) != 0 || rename(link_tmp, link) != 0) {
    unlink(link_tmp);
    return mn_error_set(err, MN_ERR_IO, "could not point \"%s\" at %s: %s", link, name,
                        strerror(errno));
  }
  if (remove_step > 0 && remove_step != meta->step) { /* an older pair, no longer named */
    snprintf(path, sizeof path, "%s/step-%08lld.safetensors", dir, (long long)remove_step);
    snprintf(opt_path, sizeof opt_path, "%s.opt", path);
    unlink(opt_path);
    unlink(path);
  }
  return MN_OK;
}

/* ---------------------------------------------------------------- pretrain and finetune */

/* What a fine-tune adds to pretraining: the baseline's weights as EWC's anchor and its
 * Fisher, replayed windows in every batch, and the stages of progressive unfreezing. */
typedef struct finetune_setup {
  float *anchor, *fisher; /* num_params each; fisher NULL: no EWC */
  replay_store replay;
  double *replay_cum; /* cumulative language shares over replay.langs */
  int *replay_tags;
  int nrep;     /* replayed sequences per batch */
  gpt *teacher; /* the baseline, scoring the replayed windows (finetune.distill); or NULL */
  int nstages, stage_blocks[16];
  int64_t stage_end[16]; /* stage i runs while t <= stage_end[i]; the last runs to the end */
} finetune_setup;

static void finetune_fini(finetune_setup *f)
{
  free(f->anchor), free(f->fisher), free(f->replay_cum), free(f->replay_tags);
  replay_store_free(&f->replay);
  gpt_destroy(f->teacher);
}

/* parse_stages -- "K:STEPS,...,all" (the last may also be "K") */
static mn_status parse_stages(const char *text, int L, finetune_setup *f, mn_error *err)
{
  char buf[256];
  if (strlen(text) >= sizeof buf)
    return mn_error_set(err, MN_ERR_CONFIG, "finetune.stages is longer than %zu bytes",
                        sizeof buf - 1);
  snprintf(buf, sizeof buf, "%s", text);
  int64_t at = 0;
  f->nstages = 0;
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    if (f->nstages == 16)
      return mn_error_set(err, MN_ERR_CONFIG, "finetune.stages: at most 16 stages");
    char *colon = strchr(tok, ':');
    if (colon) *colon = '\0';
    int64_t k = -1, n = INT64_MAX;
    bool all = strcmp(tok, "all") == 0;
    if (!all && (!mn_parse_i64(tok, &k) || k < 1 || k > L))
      return mn_error_set(err, MN_ERR_CONFIG,
                          "finetune.stages: \"%s\" is not a number of top blocks (1 .. %d) or all",
                          tok, L);
    if (colon && (!mn_parse_i64(colon + 1, &n) || n < 1))
      return mn_error_set(err, MN_ERR_CONFIG, "finetune.stages: \"%s\" is not a number of steps",
                          colon + 1);
    if (f->nstages > 0 && f->stage_end[f->nstages - 1] == INT64_MAX)
      return mn_error_set(err, MN_ERR_CONFIG,
                          "finetune.stages: a stage without a number of steps must be the last");
    f->stage_blocks[f->nstages] = all ? -1 : L - (int)k; /* the first trainable block */
    at = n == INT64_MAX || at > INT64_MAX - n ? INT64_MAX : at + n;
    f->stage_end[f->nstages++] = at;
  }
  if (f->nstages == 0) return mn_error_set(err, MN_ERR_CONFIG, "finetune.stages is empty");
  f->stage_end[f->nstages - 1] = INT64_MAX;
  return MN_OK;
}

static int stage_first_block(const finetune_setup *f, int64_t t)
{
  for (int i = 0; i < f->nstages; i++)
    if (t <= f->stage_end[i]) return f->stage_blocks[i];
  return -1;
}

/* replay_rows -- sequences fresh..B-1 of the batch from the replay store: the language by
 * its share, the window uniformly; drawn from (seed, step) alone, so a resumed run draws
 * the same ones without saving any state */
static void replay_rows(const finetune_setup *f, uint64_t seed, int64_t t, int fresh, int B, int T,
                        int32_t *tok, int32_t *tgt)
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
    const uint16_t *w = rl->windows + (mn_splitmix64(&s) % rl->count) * (size_t)f->replay.window;
    int32_t *x = tok + (size_t)b * T, *y = tgt + (size_t)b * T;
    x[0] = f->replay_tags[l]; /* as the loader does: the tag first */
    for (int i = 1; i < T; i++)
      x[i] = w[i];
    for (int i = 0; i < T; i++)
      y[i] = w[i + 1];
  }
}

/* dp_world -- this process's rank and the world size of a data-parallel run, from the
 * launcher's environment (MNEMO_RANK/MNEMO_WORLD_SIZE, RANK/WORLD_SIZE as torchrun sets
 * them, Slurm's SLURM_PROCID/SLURM_NTASKS, Open MPI's); 0 of 1 without one */
static void dp_world(int *rank, int *world)
{
  static const char *const vars[][2] = {{"MNEMO_RANK", "MNEMO_WORLD_SIZE"},
                                        {"RANK", "WORLD_SIZE"},
                                        {"SLURM_PROCID", "SLURM_NTASKS"},
                                        {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"}};
  *rank = 0, *world = 1;
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
    const char *r = getenv(vars[i][0]), *n = getenv(vars[i][1]);
    if (r && n && *r && *n) {
      *rank = atoi(r), *world = atoi(n);
      return;
    }
  }
}

/* worker__train_backend -- where training computes (train.device, train.math) */
mn_status worker__train_backend(const mn_config *c, const kernels_backend **k, mn_error *err)
{
  *k = kernels_cpu();
  if (c->train.device != 1) return MN_OK;
  char why[256];
  mn_status rc = kernels_cuda((kernels_math)c->train.math, k, why, err);
  if (rc == MN_OK && !*k)
    rc =
        mn_error_set(err, MN_ERR_CUDA, "train.device is cuda but there is no CUDA device: %s", why);
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
static mn_status finetune_prepare(const mn_config *c, gpt *m, const ckpt_meta *base, int B, int T,
                                  finetune_setup *f, json_t *lineage, mn_error *err)
{
  size_t np = gpt_params_count(m);
  mn_status rc;
  f->anchor = malloc(np * sizeof(float));
  if (!f->anchor) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  memcpy(f->anchor, gpt_params(m), np * sizeof(float));
  json_object_set_new(lineage, "baseline", json_string(base->sha256));
  const char *fp = c->finetune.fisher;
  if (fp && *fp && c->finetune.ewc_lambda > 0) {
    fisher_meta fm;
    f->fisher = malloc(np * sizeof(float));
    if (!f->fisher) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    if ((rc = ckpt_load_fisher(fp, f->fisher, np, &fm, err)) != MN_OK) return rc;
    if (strcmp(fm.weights_sha256, base->sha256) != 0)
      return mn_error_set(err, MN_ERR_INPUT,
                          "the Fisher \"%s\" was estimated at other weights than the baseline %s",
                          fp, c->finetune.baseline);
    gpt_set_ewc(m, f->fisher, f->anchor, (float)c->finetune.ewc_lambda);
    json_object_set_new(
        lineage, "ewc",
        json_pack("{s:f, s:s}", "lambda", c->finetune.ewc_lambda, "fisher", fm.sha256));
  }
  const char *rp = c->finetune.replay_store;
  if (rp && *rp && c->finetune.replay_ratio > 0) {
    if ((rc = replay_store_load(rp, &f->replay, err)) != MN_OK) return rc;
    uint64_t held = 0;
    for (uint32_t i = 0; i < f->replay.nlangs; i++)
      held += f->replay.langs[i].count;
    char store_sha[MN_SHA256_HEX_LEN + 1];
    if ((rc = replay_store_checksum(rp, store_sha, err)) != MN_OK) return rc;
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
    mn_buf applied;
    mn_buf_init(&applied, 256);
    for (uint32_t i = 0; i < k; i++)
      boost[i] = 1.0;
    if ((rc = replay_boosts("finetune.replay_boosts", c->finetune.replay_boosts, true, &f->replay,
                            boost, NULL, err)) != MN_OK ||
        (rc = replay_boosts("finetune.report_boosts", c->finetune.report_boosts, false, &f->replay,
                            boost, &applied, err)) != MN_OK) {
      free(n), free(q), free(boost);
      mn_buf_fini(&applied);
      return rc;
    }
    int V = gpt_get_config(m)->vocab_size;
    for (uint32_t i = 0; i < k; i++) { /* a store from elsewhere must fit this model */
      const replay_lang *rl = &f->replay.langs[i];
      for (size_t j = 0; j < (size_t)rl->count * f->replay.window; j++)
        if (rl->windows[j] >= V) {
          free(n), free(q), free(boost);
          mn_buf_fini(&applied);
          return mn_error_set(err, MN_ERR_INPUT,
                              "replay store \"%s\": %s holds token %u, beyond the vocabulary of %d",
                              rp, rl->code, rl->windows[j], V);
        }
    }
    f->nrep = (int)lround(c->finetune.replay_ratio * B);
    if (f->nrep >= B) f->nrep = B - 1;     /* a batch always holds fresh text */
    if (c->finetune.replay_sampler == 1) { /* UniMax over the run's replayed windows */
      double unused, total = f->nrep * (double)c->train.steps;
      for (uint32_t i = 0; i < k; i++)
        n[i] = (double)f->replay.langs[i].count;
      rc = replay_budget_unimax(n, boost, k, total, c->finetune.unimax_epochs, q, &unused, err);
      double sum = 0;
      for (uint32_t i = 0; i < k && rc == MN_OK; i++)
        sum += q[i];
      for (uint32_t i = 0; i < k && rc == MN_OK; i++)
        q[i] = sum > 0 ? q[i] / sum : 1.0 / k;
    } else {
      for (uint32_t i = 0; i < k; i++) /* a language holding no window gets no share */
        n[i] = f->replay.langs[i].count ? (double)f->replay.langs[i].seen : 0.0;
      rc = replay_shares_temperature(n, boost, k, c->train.language_alpha, q, err);
    }
    double cum = 0;
    for (uint32_t i = 0; i < k && rc == MN_OK; i++) {
      cum += q[i];
      f->replay_cum[i] = cum;
      f->replay_tags[i] = tok_tag_of(&base->tags, f->replay.langs[i].code);
      if (f->replay_tags[i] < 0)
        rc = mn_error_set(err, MN_ERR_INPUT,
                          "replay store \"%s\" holds %s, which the baseline "
                          "has no tag for",
                          rp, f->replay.langs[i].code);
    }
    free(n), free(q), free(boost);
    if (rc != MN_OK) {
      mn_buf_fini(&applied);
      return rc;
    }
    json_t *rl = json_pack("{s:f, s:i, s:I, s:s, s:f, s:s}", "ratio", c->finetune.replay_ratio,
                           "per_batch", f->nrep, "windows", (json_int_t)held, "sampler",
                           c->finetune.replay_sampler ? "unimax" : "temperature", "unimax_epochs",
                           c->finetune.unimax_epochs, "store", store_sha);
    if (c->finetune.replay_boosts[0]) /* only when set: older runs' lineages stay resumable */
      json_object_set_new(rl, "boosts", json_string(c->finetune.replay_boosts));
    if (applied.len) json_object_set_new(rl, "report_boosts", json_string(applied.data));
    mn_buf_fini(&applied);
    json_object_set_new(lineage, "replay", rl);
  }
  if (c->finetune.distill > 0) {
    if (!f->nrep)
      return mn_error_set(
          err, MN_ERR_INPUT,
          "finetune.distill %g needs replayed windows to distil on "
          "(finetune.replay_store and a replay_ratio giving at least one per batch)",
          c->finetune.distill);
    const kernels_backend *k;
    if ((rc = worker__train_backend(c, &k, err)) != MN_OK ||
        (rc = gpt_create(gpt_get_config(m), f->nrep, T, 0, k, &f->teacher, err)) != MN_OK)
      return rc;
    memcpy(gpt_params(f->teacher), f->anchor, np * sizeof(float));
    gpt_params_written(f->teacher);
    json_object_set_new(lineage, "distill", json_real(c->finetune.distill));
  }
  if ((rc = parse_stages(c->finetune.stages, gpt_get_config(m)->n_layer, f, err)) != MN_OK)
    return rc;
  /* each tensor's first update is the start of the first stage that trains it */
  const gpt_config *gc = gpt_get_config(m);
  for (int i = 0; i < gpt_num_tensors(gc); i++) {
    char name[64];
    size_t shape[2], off;
    int ndim;
    gpt_tensor_info(gc, i, name, shape, &ndim, &off);
    int64_t start = 1;
    for (int j = 0; j < f->nstages; j++) {
      int first = f->stage_blocks[j];
      if (off >= (first < 0 ? 0 : gpt_block_offset(gc, first))) break;
      start = f->stage_end[j] == INT64_MAX ? start : f->stage_end[j] + 1;
    }
    gpt_set_first_step(m, i, start);
  }
  json_object_set_new(lineage, "stages", json_string(c->finetune.stages));
  json_object_set_new(lineage, "lr_factor", json_real(c->finetune.lr_factor));
  return MN_OK;
}

static int train_run(worker *w, worker_args *o, bool finetune)
{
  mn_error err = {0};
  shard *shards = NULL;
  gpt *m = NULL;
  const kernels_backend *kb = NULL;
  kernels_dp *dp = NULL;
  int rank, world;
  dp_world(&rank, &world);
  loader *ld = NULL;
  int rc = MN_EXIT_FAIL;
  ckpt_meta meta, base;
  finetune_setup ft;
  json_t *ft_lineage = NULL;
  memset(&meta, 0, sizeof meta);
  memset(&ft, 0, sizeof ft);
  const char *cmd = finetune ? "finetune" : "pretrain";
  if (!o->out || o->npos < 1)
    return worker__usage("%s needs --out DIR and at least one shard", cmd);
  const mn_config *c = &w->cfg;
  if (finetune && !(c->finetune.baseline && *c->finetune.baseline))
    return worker__usage(
        "finetune needs finetune.baseline (the checkpoint to start from) in --spec");
  gpt_config gc = worker__model_config(c);
  int B = (int)c->train.batch_size, T = (int)c->train.seq_len;
  /* --steps N stops after step N; the schedule always spans train.steps, so a run cut in
   * parts and resumed is the same run */
  int64_t total = c->train.steps, steps = o->steps && o->steps < total ? o->steps : total;
  if (T > gc.max_seq_len)
    return worker__usage("train.seq_len %d exceeds model.max_seq_len %d", T, gc.max_seq_len);
  signal(SIGTERM, on_signal); /* from the start: an early SIGTERM still exits 75 */
  signal(SIGINT, on_signal);
  if (mkdir(o->out, 0755) != 0 && errno != EEXIST) {
    mn_error_set(&err, MN_ERR_IO, "could not create \"%s\": %s", o->out, strerror(errno));
    return worker__fail(&err);
  }
  kernels_cpu_set_threads((int)c->train.threads);
  if (worker__read_shards(o, &shards, &err) != MN_OK) goto out;
  if (finetune) { /* the baseline's model and tags; the fresh shards must agree with them */
    if (ckpt_read_meta(c->finetune.baseline, &base, &err) != MN_OK) goto out;
    gc = base.config;
    for (int i = 0; i < base.tags.n; i++)
      if (tok_tags_add(&meta.tags, base.tags.t[i].code, base.tags.t[i].id, &err) != MN_OK) goto out;
    for (int s = 0; s < o->npos; s++)
      for (uint32_t k = 0; k < shards[s].nsections; k++)
        if (shard_section_fits(&shards[s].sections[k], o->pos[s], &base, c->finetune.baseline,
                               &err) != MN_OK)
          goto out;
  }
  if (tags_of_shards(shards, o->npos, &meta.tags, &err) != MN_OK) goto out;
  uint64_t seed = (uint64_t)c->train.seed;
  int64_t step0 = 0;
  char prev_lineage[sizeof meta.lineage] = "";
  ft_lineage = json_object(); /* what of a fine-tune's setup shapes the run */
  if (o->resume) {
    ckpt_meta prev;
    if (ckpt_read_meta(o->resume, &prev, &err) != MN_OK) goto out;
    gc = prev.config;
    if (worker__train_backend(c, &kb, &err) != MN_OK ||
        gpt_create(&gc, B, T, seed, kb, &m, &err) != MN_OK)
      goto out;
    /* a fine-tune's anchor is the baseline, whatever step it resumes from */
    if (finetune && (ckpt_load(c->finetune.baseline, m, &base, &err) != MN_OK ||
                     finetune_prepare(c, m, &base, B, T, &ft, ft_lineage, &err) != MN_OK))
      goto out;
    if (ckpt_load(o->resume, m, &prev, &err) != MN_OK) goto out;
    char opt_path[4200], *real = realpath(o->resume, NULL); /* model.safetensors is a link */
    snprintf(opt_path, sizeof opt_path, "%s.opt", real ? real : o->resume);
    free(real);
    ckpt_opt_state st;
    if (ckpt_load_opt(opt_path, m, prev.sha256, &st, &err) != MN_OK) goto out;
    step0 = prev.step;
    snprintf(prev_lineage, sizeof prev_lineage, "%s", prev.lineage);
    for (int i = 0; i < prev.tags.n; i++) /* the checkpoint's tags stay as they were */
      if (tok_tags_add(&meta.tags, prev.tags.t[i].code, prev.tags.t[i].id, &err) != MN_OK) goto out;
    if (loader_create(shards, o->npos, T, c->train.language_alpha, seed + 1, &ld, &err) != MN_OK)
      goto out;
    loader_set_state(ld, st.rng);
    meta.step = step0; /* a run already past --steps saves nothing and keeps its step */
  } else {
    if (worker__train_backend(c, &kb, &err) != MN_OK ||
        gpt_create(&gc, B, T, seed, kb, &m, &err) != MN_OK)
      goto out;
    if (finetune && (ckpt_load(c->finetune.baseline, m, &base, &err) != MN_OK ||
                     finetune_prepare(c, m, &base, B, T, &ft, ft_lineage, &err) != MN_OK))
      goto out;
    if (loader_create(shards, o->npos, T, c->train.language_alpha, seed + 1, &ld, &err) != MN_OK)
      goto out;
  }
  if (world > 1) { /* data parallel: the ranks meet, each draws its own windows */
    char id[4200];
    const char *f = getenv("MNEMO_DP_ID_FILE");
    snprintf(id, sizeof id, "%s", f && *f ? f : "");
    if (!id[0]) snprintf(id, sizeof id, "%s/nccl.id", o->out);
    if (c->train.device != 1) {
      mn_error_set(&err, MN_ERR_CONFIG,
                   "a data-parallel run (rank %d of %d) needs train.device: cuda", rank, world);
      goto out;
    }
    if (kernels_dp_open(rank, world, id, 600, &dp, &err) != MN_OK) goto out;
    loader_set_state(ld, loader_state(ld) ^ (0x9E3779B97F4A7C15ULL * (uint64_t)rank));
    worker__silent = rank > 0;
  }
  for (int i = 0; i < meta.tags.n; i++) /* against the model actually trained */
    if (meta.tags.t[i].id >= gc.vocab_size) {
      mn_error_set(&err, MN_ERR_INPUT, "tag %d of \"%s\" does not fit a vocabulary of %d",
                   meta.tags.t[i].id, meta.tags.t[i].code, gc.vocab_size);
      goto out;
    }
  json_t *shares = json_object();
  for (int i = 0; i < loader_languages(ld); i++) {
    const char *code;
    double p = loader_share(ld, i, &code);
    json_object_set_new(shares, code, json_real(round(p * 1e4) / 1e4));
  }
  worker__emit(json_pack("{s:s, s:I, s:I, s:i, s:i, s:I, s:o, s:i}", "event", "start", "params",
                         (json_int_t)gpt_params_count(m), "from_step", (json_int_t)step0, "batch",
                         B, "seq_len", T, "steps", (json_int_t)steps, "language_shares", shares,
                         "threads", kernels_cpu_threads()));
  /* the lineage: everything that shapes the run's trajectory; a resume must match it */
  json_t *shard_ids = json_array();
  for (int i = 0; i < o->npos; i++)
    json_array_append_new(shard_ids, json_string(shards[i].sha256));
  json_t *run = json_pack(
      "{s:s, s:I, s:i, s:i, s:I, s:f, s:I, s:f, s:f, s:f, s:f, s:f, s:f, "
      "s:i, s:o}",
      "kind", cmd, "seed", (json_int_t)seed, "batch", B, "seq_len", T, "steps", (json_int_t)total,
      "lr", c->train.lr, "warmup_steps", (json_int_t)c->train.warmup_steps, "min_lr_frac",
      c->train.min_lr_frac, "weight_decay", c->train.weight_decay, "grad_clip", c->train.grad_clip,
      "beta1", c->train.beta1, "beta2", c->train.beta2, "language_alpha", c->train.language_alpha,
      "threads", kernels_cpu_threads(), "shards", shard_ids);
  if (finetune) json_object_update(run, ft_lineage);
  if (world > 1)
    json_object_set_new(run, "world", json_integer(world)); /* only then: older
                                                             * runs resume */
  if (o->resume && prev_lineage[0]) {
    json_t *was = json_loads(prev_lineage, 0, NULL), *both = json_deep_copy(run);
    json_object_update_missing(both, was); /* a key only the old run had differs too */
    const char *key;
    json_t *v;
    json_object_foreach(both, key, v)
    {
      json_t *now = json_object_get(run, key), *then = json_object_get(was, key);
      if (!now || !then || !json_equal(now, then)) {
        char *a = now ? json_dumps(now, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        char *b = then ? json_dumps(then, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        mn_error_set(&err, MN_ERR_INPUT,
                     "cannot resume %s: its %s was %s, now %s (a resumed run must be the same run)",
                     o->resume, key, b ? b : "missing", a ? a : "missing");
        free(a), free(b);
        json_decref(was);
        json_decref(both);
        json_decref(run);
        goto out;
      }
    }
    json_decref(was);
    json_decref(both);
  }
  char *lin = json_dumps(run, JSON_COMPACT);
  json_decref(run);
  if (!lin || strlen(lin) >= sizeof meta.lineage) {
    free(lin);
    mn_error_set(&err, MN_ERR_INPUT, "the run's lineage is too long (too many shards?)");
    goto out;
  }
  snprintf(meta.lineage, sizeof meta.lineage, "%s", lin);
  free(lin);
  int32_t *tok = malloc(sizeof(int32_t) * (size_t)B * T),
          *tgt = malloc(sizeof(int32_t) * (size_t)B * T);
  if (!tok || !tgt) {
    free(tok), free(tgt);
    mn_error_set(&err, MN_ERR_NOMEM, "out of memory");
    goto out;
  }
  gpt_adamw opt = {.beta1 = (float)c->train.beta1,
                   .beta2 = (float)c->train.beta2,
                   .eps = 1e-8f,
                   .weight_decay = (float)c->train.weight_decay,
                   .grad_clip = (float)c->train.grad_clip,
                   .lr_factor = finetune ? (float)c->finetune.lr_factor : 0.0f};
  bool tty = isatty(STDERR_FILENO) && !w->json;
  /* per-language losses of each step: a row's language is its first token, the tag */
  int nl = meta.tags.n;
  double *lang_loss = calloc((size_t)nl + 1, sizeof(double));
  int *lang_rows = calloc((size_t)nl + 1, sizeof(int));
  if (!lang_loss || !lang_rows) {
    free(tok), free(tgt), free(lang_loss), free(lang_rows);
    mn_error_set(&err, MN_ERR_NOMEM, "out of memory");
    goto out;
  }
  double t0 = mn_monotonic_ms(), last = 0;
  int64_t t, saved = 0, saved_before = 0; /* the pairs model.safetensors may still name */
  bool interrupted = false;
  for (t = step0 + 1; t <= steps; t++) {
    double ts = mn_monotonic_ms();
    if (finetune) gpt_set_trainable(m, stage_first_block(&ft, t));
    loader_next(ld, B - ft.nrep, tok, tgt);
    if (ft.nrep) replay_rows(&ft, seed + 7919 * rank, t, B - ft.nrep, B, T, tok, tgt);
    if (ft.teacher) { /* the baseline's predictions on the replayed windows */
      size_t r0 = (size_t)(B - ft.nrep) * T;
      gpt_forward(ft.teacher, tok + r0, tgt + r0, ft.nrep, T);
      gpt_set_soft_targets(m, B - ft.nrep, gpt_probs(ft.teacher), (float)c->finetune.distill);
    }
    gpt_zero_grad(m);
    gpt_forward_queue(m, tok, tgt, B, T);
    gpt_backward(m);
    if (dp) { /* the mean gradient of every rank's batch: all take the same step */
      size_t n;
      float *g = gpt_grads_backend(m, &n);
      if (kernels_dp_allreduce_mean(dp, g, n, &err) != MN_OK) {
        free(tok), free(tgt), free(lang_loss), free(lang_rows);
        goto out;
      }
    }
    opt.lr = gpt_lr_at((float)c->train.lr, (int)c->train.warmup_steps, (int)total,
                       (float)c->train.min_lr_frac, (int)t);
    /* the step is queued whole and read at its end; a non-finite gradient takes no step
     * (gpt_update), and a non-finite loss or gradient stops the run: the last checkpoint
     * stays the last good one */
    float norm = gpt_update(m, &opt, (int)t), loss = gpt_mean_loss(m);
    if (gpt_sync(m, &err) != MN_OK) { /* a device's failure, said as itself (not divergence) */
      free(tok), free(tgt), free(lang_loss), free(lang_rows);
      goto out;
    }
    if (!isfinite(loss) || !isfinite(norm)) {
      mn_error_set(&err, MN_ERR_NUMERIC,
                   "the loss is %f and the gradient norm %f at step %lld: training diverged; "
                   "the last checkpoint is step %lld",
                   loss, norm, (long long)t, (long long)(saved ? saved : step0));
      free(tok), free(tgt), free(lang_loss), free(lang_rows);
      goto out;
    }
    double now = mn_monotonic_ms();
    double tps = (double)B * T * world * (double)(t - step0) / ((now - t0) / 1e3);
    double eta = (double)(steps - t) * (now - t0) / 1e3 / (double)(t - step0);
    if (tty) {
      if (now - last > 250 || t == steps) {
        fprintf(stderr, "\rstep %lld/%lld  loss %.4f  lr %.2e  %.0f tok/s  ETA %.0fs   ",
                (long long)t, (long long)steps, loss, opt.lr, tps, eta);
        last = now;
      }
    } else {
      memset(lang_loss, 0, sizeof(double) * (size_t)(nl + 1));
      memset(lang_rows, 0, sizeof(int) * (size_t)(nl + 1));
      const float *losses = gpt_losses(m);
      for (int b = 0; b < B; b++) {
        int li = 0;
        while (li < nl && meta.tags.t[li].id != tok[(size_t)b * T])
          li++;
        double sum = 0;
        for (int i = 0; i < T; i++)
          sum += losses[(size_t)b * T + i];
        lang_loss[li] += sum / T;
        lang_rows[li]++;
      }
      json_t *per = json_object();
      for (int li = 0; li < nl; li++)
        if (lang_rows[li])
          json_object_set_new(per, meta.tags.t[li].code,
                              json_real(round(lang_loss[li] / lang_rows[li] * 1e4) / 1e4));
      json_t *ev = json_pack("{s:s, s:I, s:f, s:f, s:f, s:f, s:f, s:o}", "event", "step", "step",
                             (json_int_t)t, "loss", (double)loss, "lr", (double)opt.lr, "grad_norm",
                             (double)norm, "tokens_per_s", round(tps), "step_ms", now - ts,
                             "languages", per);
      if (finetune) {
        json_object_set_new(ev, "trainable_from", json_integer(gpt_trainable_first(m)));
        json_object_set_new(ev, "replayed", json_integer(ft.nrep));
        if (ft.fisher && (t % 10 == 0 || t == steps)) /* a pass over three arrays */
          json_object_set_new(ev, "ewc_penalty", json_real(gpt_ewc_penalty(m)));
      }
      worker__emit(ev);
    }
    meta.step = t;
    bool periodic = c->train.checkpoint_every > 0 && t % c->train.checkpoint_every == 0;
    if ((periodic || stop_requested) && rank == 0) { /* rank 0 saves for all */
      if (save_all(o->out, m, &meta, ld, saved_before, &err) != MN_OK) {
        free(tok), free(tgt), free(lang_loss), free(lang_rows);
        goto out;
      }
      saved_before = saved;
      saved = t;
      worker__emit(json_pack("{s:s, s:I, s:s}", "event", "checkpoint", "step", (json_int_t)t, "dir",
                             o->out));
    }
    if (stop_requested) {
      interrupted = true;
      break;
    }
  }
  if (tty) fputc('\n', stderr);
  free(tok), free(tgt), free(lang_loss), free(lang_rows);
  if (!interrupted) {
    if (rank == 0 && meta.step > step0 && saved != meta.step &&
        save_all(o->out, m, &meta, ld, saved_before, &err) != MN_OK)
      goto out;
    if (meta.step == step0) { /* nothing ran: the checkpoint is as it was */
      ckpt_meta cur;
      char path[4200];
      snprintf(path, sizeof path, "%s/model.safetensors", o->out);
      if (ckpt_read_meta(path, &cur, &err) == MN_OK)
        snprintf(meta.sha256, sizeof meta.sha256, "%s", cur.sha256);
    }
    worker__emit(json_pack("{s:s, s:I, s:s, s:s, s:f}", "event", "done", "step",
                           (json_int_t)meta.step, "checkpoint", o->out, "sha256", meta.sha256,
                           "seconds", (mn_monotonic_ms() - t0) / 1e3));
    rc = MN_EXIT_OK;
  } else {
    worker__emit(json_pack("{s:s, s:I, s:s}", "event", "interrupted", "step", (json_int_t)meta.step,
                           "resume", o->out));
    rc = MN_EXIT_INTERRUPTED;
  }
out:
  kernels_dp_close(dp);
  json_decref(ft_lineage);
  finetune_fini(&ft);
  loader_destroy(ld);
  gpt_destroy(m);
  worker__free_shards(shards, o->npos);
  return rc == MN_EXIT_FAIL ? worker__fail(&err) : rc;
}

int worker__cmd_pretrain(worker *w, worker_args *o)
{
  return train_run(w, o, false);
}

int worker__cmd_finetune(worker *w, worker_args *o)
{
  return train_run(w, o, true);
}
