/*
 * train.c -- the training loop (train.h): pretraining and fine-tuning into a folder of
 * resumable checkpoints.  One step: a batch of windows (fresh from the loader, replayed from
 * the store for a fine-tune), forward, backward, (the ranks' mean gradient,) AdamW with the
 * schedule's rate; progress out through the caller's callback; a checkpoint every
 * checkpoint_every steps, at the end, and when the stop flag is seen at a step's end.
 *
 * Not here: the config (the caller maps its keys onto train_options), signals, printing.
 * The lineage (everything that shapes the trajectory) is written into every checkpoint and
 * compared on resume: a resumed run must be the same run to be bit-identical.
 */
#define _XOPEN_SOURCE 700 /* realpath, symlink */
#include "trainer/train.h"
#include "trainer/trainer_int.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void emit(const train_options *o, const train_event *ev)
{
  if (o->on_event) o->on_event(ev, o->ctx);
}

mn_status train_backend(bool cuda, kernels_math math, const kernels_backend **k, mn_error *err)
{
  *k = kernels_cpu();
  if (!cuda) return MN_OK;
  char why[256];
  mn_status rc = kernels_cuda(math, k, why, err);
  if (rc == MN_OK && !*k)
    rc =
        mn_error_set(err, MN_ERR_CUDA, "train.device is cuda but there is no CUDA device: %s", why);
  return rc;
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
                          const finetune_setup *ft, mn_error *err)
{
  char name[64], path[4096], opt_path[4200], link_tmp[4200], link[4200];
  snprintf(name, sizeof name, "step-%08lld.safetensors", (long long)meta->step);
  snprintf(path, sizeof path, "%s/%s", dir, name);
  snprintf(opt_path, sizeof opt_path, "%s.opt", path);
  mn_status rc = ckpt_save(path, m, meta, err);
  if (rc != MN_OK) return rc;
  ckpt_opt_state st = {.step = meta->step, .rng = loader_state(ld)};
  snprintf(st.weights_sha256, sizeof st.weights_sha256, "%s", meta->sha256);
  if (ft && (rc = finetune__adapt_state(ft, &st.adapt, err)) != MN_OK) return rc;
  rc = ckpt_save_opt(opt_path, m, &st, err);
  free(st.adapt);
  if (rc != MN_OK) return rc;
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

/* pair_before -- the step of the newest pair DIR/step-N.safetensors with N < step (0: none):
 * a resumed run removes it when an uninterrupted one would have */
static int64_t pair_before(const char *dir, int64_t step)
{
  DIR *d = opendir(dir);
  int64_t best = 0;
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) {
    const char *n = e->d_name, *suffix = ".safetensors";
    size_t len = strlen(n);
    if (len != 5 + 8 + strlen(suffix) || strncmp(n, "step-", 5) != 0 || strcmp(n + 13, suffix) != 0)
      continue;
    int64_t s = 0;
    for (int i = 5; i < 13 && s >= 0; i++)
      s = n[i] >= '0' && n[i] <= '9' ? s * 10 + (n[i] - '0') : -1;
    if (s > best && s < step) best = s;
  }
  if (d) closedir(d);
  return best;
}

mn_status train_run(const train_options *o, train_result *res, mn_error *err)
{
  mn_status rc = MN_ERR_INPUT;
  shard *shards = NULL;
  gpt *m = NULL;
  const kernels_backend *kb = NULL;
  kernels_dp *dp = NULL;
  float *sync_dev = NULL; /* data parallel: the ranks' stop flags and the drift controller's
                           * rows, averaged each step */
  float *sync = NULL;     /* their host side: 1 + 2 k floats */
  size_t nsync = 0;
  int rank = o->rank, world = o->world > 1 ? o->world : 1;
  loader *ld = NULL;
  tokenizer *tkz = NULL;
  ckpt_meta meta, base;
  finetune_setup ft;
  json_t *ft_lineage = NULL;
  int32_t *tok = NULL, *tgt = NULL;
  double *lang_loss = NULL;
  int *lang_rows = NULL;
  const char **adapt_codes = NULL; /* the drift controller's languages and factors, per step */
  double *adapt_boost = NULL;
  const char **codes = NULL;
  double *shares = NULL;
  memset(&meta, 0, sizeof meta);
  memset(&ft, 0, sizeof ft);
  memset(res, 0, sizeof *res);
  const finetune_options *fo = o->finetune;
  bool finetune = fo != NULL;
  const char *cmd = finetune ? "finetune" : "pretrain";
  const char *const *paths = o->shards;
  int npaths = o->nshards;
  gpt_config gc = o->model;
  int B = o->batch, T = o->seq_len;
  /* stop_after N stops after step N; the schedule always spans steps, so a run cut in
   * parts and resumed is the same run */
  int64_t total = o->steps, steps = o->stop_after && o->stop_after < total ? o->stop_after : total;
  if (npaths < 1 || !o->out || B < 1 || T < 1)
    return mn_error_set(err, MN_ERR_USAGE,
                        "%s needs an output folder, shards, a batch and a window", cmd);
  if (finetune && !(fo->baseline && *fo->baseline))
    return mn_error_set(err, MN_ERR_USAGE,
                        "finetune needs a baseline (the checkpoint to start from)");
  if (mkdir(o->out, 0755) != 0 && errno != EEXIST)
    return mn_error_set(err, MN_ERR_IO, "could not create \"%s\": %s", o->out, strerror(errno));
  if ((rc = shard_read_many(paths, npaths, &shards, err)) != MN_OK) goto out;
  if (finetune) { /* the baseline's model and tags; the fresh shards must agree with them */
    if ((rc = ckpt_read_meta(fo->baseline, &base, err)) != MN_OK) goto out;
    gc = base.config;
    snprintf(meta.origin, sizeof meta.origin, "%s", base.origin); /* an import stays one */
    for (int i = 0; i < base.tags.n; i++)
      if ((rc = tok_tags_add(&meta.tags, base.tags.t[i].code, base.tags.t[i].id, err)) != MN_OK)
        goto out;
    for (int s = 0; s < npaths; s++)
      if ((rc = shard_fits(&shards[s], paths[s], &base, fo->baseline, err)) != MN_OK) goto out;
  }
  /* the tokenizer: the checkpoint's the run continues, or the one given; every shard's ids
   * must be its ids */
  const char *tok_from = finetune ? fo->baseline : o->resume ? o->resume : o->tokenizer;
  if ((rc = tok_from ? tok_load(tok_from, &tkz, NULL, err) : tok_create_bytes(&tkz, err)) != MN_OK)
    goto out;
  for (int s = 0; s < npaths; s++)
    if (strcmp(shards[s].tok_sha256, tok_sha256(tkz)) != 0) {
      rc = mn_error_set(err, MN_ERR_INPUT,
                        "the shard %s was made by another tokenizer (%.16s...) than the model's "
                        "(%.16s..., %s %s): make it with mnemo shard --tokenizer",
                        paths[s], shards[s].tok_sha256, tok_sha256(tkz), tok_kind(tkz),
                        tok_from ? tok_from : "bytes");
      goto out;
    }
  if (!finetune && !o->resume && tok_base(tkz) != TOK_FIRST_TAG) /* room for as many tags */
    gc.vocab_size = gc.padded_vocab = (int)tok_base(tkz) + (gc.vocab_size - TOK_FIRST_TAG);
  meta.tok = tkz;
  if ((rc = tags_of_shards(shards, npaths, &meta.tags, err)) != MN_OK) goto out;
  uint64_t seed = o->seed;
  int64_t step0 = 0;
  bool resumed_here = false; /* resumed from a pair in --out */
  char prev_lineage[sizeof meta.lineage] = "";
  ft_lineage = json_object(); /* what of a fine-tune's setup shapes the run */
  ckpt_meta prev = {0};
  ckpt_opt_state st = {0};
  if (o->resume) { /* the model's shape is the checkpoint's */
    if ((rc = ckpt_read_meta(o->resume, &prev, err)) != MN_OK) goto out;
    gc = prev.config;
  }
  if (T > gc.max_seq_len) { /* a fine-tune's model is its baseline's, a resume's its own */
    const char *whose = o->resume ? "the checkpoint" : finetune ? "the baseline" : "model.*";
    const char *path = o->resume ? o->resume : finetune ? fo->baseline : "max_seq_len";
    rc = mn_error_set(err, MN_ERR_CONFIG, "train.seq_len %d exceeds the %d positions of %s %s", T,
                      gc.max_seq_len, whose, path);
    goto out;
  }
  if ((rc = train_backend(o->cuda, o->math, &kb, err)) != MN_OK ||
      (rc = gpt_create(&gc, B, T, seed, kb, &m, err)) != MN_OK)
    goto out;
  /* a fine-tune's anchor is the baseline, whatever step it resumes from */
  if (finetune && ((rc = ckpt_load(fo->baseline, m, &base, err)) != MN_OK ||
                   (rc = finetune__prepare(fo, m, &base, B, T, total, o->language_alpha, kb, &ft,
                                           ft_lineage, err)) != MN_OK))
    goto out;
  if (o->resume) {
    if ((rc = ckpt_load(o->resume, m, &prev, err)) != MN_OK) goto out;
    char opt_path[4200], *real = realpath(o->resume, NULL); /* model.safetensors is a link */
    snprintf(opt_path, sizeof opt_path, "%s.opt", real ? real : o->resume);
    /* the pair resumed from is this run's own when it is in --out: the next save but one
     * removes it, as it would have in an uninterrupted run */
    char own[4200], *own_real;
    snprintf(own, sizeof own, "%s/step-%08lld.safetensors", o->out, (long long)prev.step);
    own_real = realpath(own, NULL);
    resumed_here = real && own_real && strcmp(real, own_real) == 0;
    free(own_real);
    free(real);
    if ((rc = ckpt_load_opt(opt_path, m, prev.sha256, &st, err)) != MN_OK) goto out;
    rc = finetune ? finetune__adapt_restore(&ft, st.adapt, err) : MN_OK;
    free(st.adapt);
    st.adapt = NULL;
    if (rc == MN_OK && st.step != prev.step)
      rc = mn_error_set(err, MN_ERR_CORRUPT,
                        "cannot resume %s: its optimizer state \"%s\" is of step %lld, the "
                        "weights of step %lld",
                        o->resume, opt_path, (long long)st.step, (long long)prev.step);
    if (rc != MN_OK) goto out;
    step0 = prev.step;
    snprintf(prev_lineage, sizeof prev_lineage, "%s", prev.lineage);
    snprintf(meta.origin, sizeof meta.origin, "%s", prev.origin);
    for (int i = 0; i < prev.tags.n; i++) /* the checkpoint's tags stay as they were */
      if ((rc = tok_tags_add(&meta.tags, prev.tags.t[i].code, prev.tags.t[i].id, err)) != MN_OK)
        goto out;
  }
  if ((rc = loader_create(shards, npaths, T, o->language_alpha, seed + 1, &ld, err)) != MN_OK)
    goto out;
  if (o->resume) {
    loader_set_state(ld, st.rng);
    meta.step = step0; /* a run already past --steps saves nothing and keeps its step */
  }
  if (world > 1) { /* data parallel: the ranks meet, each draws its own windows */
    char id[4200];
    const char *f = o->dp_id_file;
    snprintf(id, sizeof id, "%s", f && *f ? f : "");
    if (!id[0]) snprintf(id, sizeof id, "%s/nccl.id", o->out);
    if (!o->cuda) {
      rc =
          mn_error_set(err, MN_ERR_CONFIG,
                       "a data-parallel run (rank %d of %d) needs train.device: cuda", rank, world);
      goto out;
    }
    if ((rc = kernels_dp_open(rank, world, id, 600, &dp, err)) != MN_OK) goto out;
    nsync = 1 + (finetune ? 2 * ft.adapt.k : 0);
    if (!(sync_dev = kb->mem_alloc(nsync * sizeof *sync_dev)) ||
        !(sync = malloc(nsync * sizeof *sync))) {
      rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
      goto out;
    }
    loader_set_state(ld, loader_state(ld) ^ (0x9E3779B97F4A7C15ULL * (uint64_t)rank));
  }
  for (int i = 0; i < meta.tags.n; i++) /* against the model actually trained */
    if (meta.tags.t[i].id >= gc.vocab_size) {
      rc = mn_error_set(err, MN_ERR_INPUT, "tag %d of \"%s\" does not fit a vocabulary of %d",
                        meta.tags.t[i].id, meta.tags.t[i].code, gc.vocab_size);
      goto out;
    }
  int nl = meta.tags.n, ns = loader_languages(ld);
  codes = calloc((size_t)(ns > nl ? ns : nl) + 1, sizeof *codes);
  shares = calloc((size_t)ns + 1, sizeof *shares);
  if (!codes || !shares) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    goto out;
  }
  for (int i = 0; i < ns; i++) {
    shares[i] = loader_share(ld, i, &codes[i]);
    if (finetune && shares[i] > 0) finetune__adapt_fix(&ft, codes[i]); /* fresh: trained */
  }
  emit(o, &(train_event){.kind = TRAIN_EVENT_START,
                         .step = step0,
                         .params = gpt_params_count(m),
                         .batch = B,
                         .seq_len = T,
                         .threads = kernels_cpu_threads(),
                         .steps = steps,
                         .nlangs = ns,
                         .codes = codes,
                         .shares = shares});
  /* the lineage: everything that shapes the run's trajectory; a resume must match it */
  json_t *shard_ids = json_array();
  for (int i = 0; i < npaths; i++)
    json_array_append_new(shard_ids, json_string(shards[i].sha256));
  json_t *run =
      json_pack("{s:s, s:I, s:i, s:i, s:I, s:f, s:I, s:f, s:f, s:f, s:f, s:f, s:f, "
                "s:i, s:o}",
                "kind", cmd, "seed", (json_int_t)seed, "batch", B, "seq_len", T, "steps",
                (json_int_t)total, "lr", o->lr, "warmup_steps", (json_int_t)o->warmup_steps,
                "min_lr_frac", o->min_lr_frac, "weight_decay", o->weight_decay, "grad_clip",
                o->grad_clip, "beta1", o->beta1, "beta2", o->beta2, "language_alpha",
                o->language_alpha, "threads", kernels_cpu_threads(), "shards", shard_ids);
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
        rc = mn_error_set(
            err, MN_ERR_INPUT,
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
    rc = mn_error_set(err, MN_ERR_INPUT, "the run's lineage is too long (too many shards?)");
    goto out;
  }
  snprintf(meta.lineage, sizeof meta.lineage, "%s", lin);
  free(lin);
  tok = malloc(sizeof(int32_t) * (size_t)B * T), tgt = malloc(sizeof(int32_t) * (size_t)B * T);
  /* per-language losses of each step: a row's language is its first token, the tag */
  lang_loss = calloc((size_t)nl + 1, sizeof(double));
  lang_rows = calloc((size_t)nl + 1, sizeof(int));
  adapt_codes = calloc(ft.adapt.k + 1, sizeof *adapt_codes);
  adapt_boost = calloc(ft.adapt.k + 1, sizeof *adapt_boost);
  if (!tok || !tgt || !lang_loss || !lang_rows || !adapt_codes || !adapt_boost) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    goto out;
  }
  for (int i = 0; i < nl; i++)
    codes[i] = meta.tags.t[i].code;
  gpt_adamw opt = {.beta1 = (float)o->beta1,
                   .beta2 = (float)o->beta2,
                   .eps = 1e-8f,
                   .weight_decay = (float)o->weight_decay,
                   .grad_clip = (float)o->grad_clip,
                   .lr_factor = finetune ? (float)fo->lr_factor : 0.0f};
  double t0 = mn_monotonic_ms();
  /* the pairs model.safetensors may still name */
  int64_t t, saved = resumed_here ? step0 : 0,
             saved_before = resumed_here ? pair_before(o->out, step0) : 0;
  bool interrupted = false;
  for (t = step0 + 1; t <= steps; t++) {
    double ts = mn_monotonic_ms();
    if (finetune) gpt_set_trainable(m, finetune_stages_first_block(&ft.stages, t));
    loader_next(ld, B - ft.nrep, tok, tgt);
    if (ft.nrep) finetune__replay_rows(&ft, seed + 7919 * rank, t, B - ft.nrep, B, T, tok, tgt);
    if (ft.teacher) { /* the baseline's predictions on the replayed windows */
      size_t r0 = (size_t)(B - ft.nrep) * T;
      gpt_forward(ft.teacher, tok + r0, tgt + r0, ft.nrep, T);
      gpt_set_soft_targets(m, B - ft.nrep, gpt_probs(ft.teacher), (float)ft.distill);
    }
    gpt_zero_grad(m);
    gpt_forward_queue(m, tok, tgt, B, T);
    gpt_backward(m);
    if (dp) { /* the mean gradient of every rank's batch: all take the same step */
      size_t n;
      float *g = gpt_grads_backend(m, &n);
      if (!g) { /* out of memory: gpt_sync says for what */
        if ((rc = gpt_sync(m, err)) == MN_OK) rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
        goto out;
      }
      if ((rc = kernels_dp_allreduce_mean(dp, g, n, err)) != MN_OK) goto out;
    }
    opt.lr =
        gpt_lr_at((float)o->lr, (int)o->warmup_steps, (int)total, (float)o->min_lr_frac, (int)t);
    /* the step is queued whole and read at its end; a non-finite gradient takes no step
     * (gpt_update), and a non-finite loss or gradient stops the run: the last checkpoint
     * stays the last good one */
    float norm = gpt_update(m, &opt, (int)t), loss = gpt_mean_loss(m);
    if ((rc = gpt_sync(m, err)) != MN_OK) goto out; /* a device's failure, said as itself */
    if (!isfinite(loss) || !isfinite(norm)) {
      rc = mn_error_set(err, MN_ERR_NUMERIC,
                        "the loss is %f and the gradient norm %f at step %lld: training diverged; "
                        "the last checkpoint is step %lld",
                        loss, norm, (long long)t, (long long)(saved ? saved : step0));
      goto out;
    }
    double now = mn_monotonic_ms();
    double tps = (double)B * T * world * (double)(t - step0) / ((now - t0) / 1e3);
    double eta = (double)(steps - t) * (now - t0) / 1e3 / (double)(t - step0);
    train_event ev = {.kind = TRAIN_EVENT_STEP,
                      .step = t,
                      .loss = loss,
                      .lr = opt.lr,
                      .grad_norm = norm,
                      .tokens_per_s = tps,
                      .step_ms = now - ts,
                      .eta_s = eta,
                      .steps = steps,
                      .finetune = finetune};
    if (o->per_language) {
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
      for (int li = 0; li < nl; li++)
        lang_loss[li] = lang_rows[li] ? lang_loss[li] / lang_rows[li] : NAN;
      ev.ntags = nl, ev.tag_codes = codes, ev.tag_loss = lang_loss;
    }
    if (finetune && ft.adapt.k) /* the drift of the replayed rows */
      finetune__observe(&ft, gpt_losses(m), gpt_losses(ft.teacher), tok, B, T);
    if (dp && nsync > 1) { /* every rank's controller sees every rank's replayed rows, so all
                            * keep the same state */
      size_t k = (nsync - 1) / 2;
      for (size_t i = 0; i < k; i++)
        sync[1 + i] = (float)ft.adapt.sum_model[i], sync[1 + k + i] = (float)ft.adapt.sum_base[i];
      kb->to_device(sync_dev + 1, sync + 1, 2 * k * sizeof *sync);
      if ((rc = kernels_dp_allreduce_mean(dp, sync_dev + 1, 2 * k, err)) != MN_OK) goto out;
      kb->to_host(sync + 1, sync_dev + 1, 2 * k * sizeof *sync);
      for (size_t i = 0; i < k; i++)
        ft.adapt.sum_model[i] = sync[1 + i], ft.adapt.sum_base[i] = sync[1 + k + i];
    }
    if (finetune) {
      finetune__adapt_step(&ft);
      ev.trainable_from = gpt_trainable_first(m);
      ev.replayed = ft.nrep;
      if (ft.fisher && (t % 10 == 0 || t == steps)) /* a pass over three arrays */
        ev.has_ewc_penalty = true, ev.ewc_penalty = gpt_ewc_penalty(m);
      if (ft.adapt.k) {
        for (size_t i = 0; i < ft.adapt.k; i++)
          adapt_codes[i] = ft.replay.langs[i].code,
          adapt_boost[i] = replay_adapt_boost(&ft.adapt, i);
        ev.nadapt = (int)ft.adapt.k, ev.adapt_codes = adapt_codes;
        ev.adapt_drift = ft.adapt.drift, ev.adapt_seen = ft.adapt.seen,
        ev.adapt_boost = adapt_boost;
      }
    }
    emit(o, &ev);
    meta.step = t;
    bool stop = o->stop && *o->stop;
    if (dp) { /* every rank stops at the same step, or one would wait forever in the next
               * step's all-reduce for a rank that has left */
      sync[0] = stop ? 1.0f : 0.0f;
      kb->to_device(sync_dev, sync, sizeof *sync);
      if ((rc = kernels_dp_allreduce_mean(dp, sync_dev, 1, err)) != MN_OK) goto out;
      kb->to_host(sync, sync_dev, sizeof *sync);
      stop = sync[0] > 0;
    }
    if (t == steps) stop = false; /* the run is complete: it ends as done, not interrupted */
    bool periodic = o->checkpoint_every > 0 && t % o->checkpoint_every == 0;
    if ((periodic || stop) && rank == 0) { /* rank 0 saves for all */
      if ((rc = save_all(o->out, m, &meta, ld, saved_before, finetune ? &ft : NULL, err)) != MN_OK)
        goto out;
      saved_before = saved;
      saved = t;
      emit(o, &(train_event){.kind = TRAIN_EVENT_CHECKPOINT, .step = t, .dir = o->out});
    }
    if (stop) {
      interrupted = true;
      break;
    }
  }
  if (!interrupted) {
    if (rank == 0 && meta.step > step0 && saved != meta.step &&
        (rc = save_all(o->out, m, &meta, ld, saved_before, finetune ? &ft : NULL, err)) != MN_OK)
      goto out;
    if (meta.step == step0) { /* nothing ran: the checkpoint is as it was */
      ckpt_meta cur;
      char path[4200];
      snprintf(path, sizeof path, "%s/model.safetensors", o->out);
      mn_error ignored = {0}; /* none there: the sha256 stays empty, as it was */
      if (ckpt_read_meta(path, &cur, &ignored) == MN_OK)
        snprintf(meta.sha256, sizeof meta.sha256, "%s", cur.sha256);
    }
    emit(o, &(train_event){.kind = TRAIN_EVENT_DONE,
                           .step = meta.step,
                           .dir = o->out,
                           .sha256 = meta.sha256,
                           .seconds = (mn_monotonic_ms() - t0) / 1e3});
  } else {
    emit(o, &(train_event){.kind = TRAIN_EVENT_INTERRUPTED, .step = meta.step, .dir = o->out});
  }
  res->step = meta.step;
  res->interrupted = interrupted;
  snprintf(res->sha256, sizeof res->sha256, "%s", meta.sha256);
  rc = MN_OK;
out:
  if (sync_dev) kb->mem_free(sync_dev, nsync * sizeof *sync_dev);
  free(sync);
  free(tok), free(tgt), free(lang_loss), free(lang_rows), free(adapt_codes), free(adapt_boost);
  free(codes), free(shares);
  kernels_dp_close(dp);
  json_decref(ft_lineage);
  finetune__fini(&ft);
  loader_destroy(ld);
  gpt_destroy(m);
  tok_destroy(tkz);
  shard_destroy_many(shards, npaths);
  return rc;
}
