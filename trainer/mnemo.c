/*
 * mnemo.c -- the compute worker: files in, files out, no database.
 *
 *   mnemo [--config FILE] [--set KEY=VALUE]... COMMAND [ARGS]
 *     shard     JSONL {"lang", "text"} -> a token shard (train or held-out split)
 *     pretrain  shards -> checkpoint (resumable; SIGTERM saves and exits 75)
 *     eval      checkpoint + shards -> bits per byte per language (--per-doc: NLL per document)
 *     generate  checkpoint + language + prompt -> text
 *     bench     tokens/s and GFLOP/s of a training step for the configured model
 *     replay    absorb shards' windows into the replay store; verify a store
 *     fisher    checkpoint + shards -> its diagonal Fisher per language (EWC)
 *     finetune  baseline + fresh shards + replay + Fisher -> candidate (resumable)
 *     evalset   held-out documents, parallel items, probes -> a checksummed evaluation set
 *     guard     baseline + candidate + evaluation sets -> the verdict (exit 3: a guard said no)
 *
 * Progress is JSON lines on stdout (one object per event), or a progress line on
 * stderr when stderr is a terminal.  Exit codes: 0 done, 1 failure, 2 usage, 3 a guard
 * said no, 75 interrupted with a resumable checkpoint saved.
 */
#define _XOPEN_SOURCE 700 /* realpath */
#include "configs/config.h"
#include "guards/verdict.h"
#include "replay/replay.h"
#include "trainer/lid.h"
#include "trainer/trainer_int.h"
#include "trainer/triage.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_GUARD = 3, EXIT_INTERRUPTED = 75 };

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig)
{
  (void)sig;
  stop_requested = 1;
}

typedef struct worker {
  mn_config cfg;
  bool json;
} worker;

static int fail(const mn_error *err)
{
  fprintf(stderr, "mnemo: %s\n", err->msg);
  if (err->detail[0]) fprintf(stderr, "  detail: %s\n", err->detail);
  return err->code == MN_ERR_USAGE ? EXIT_USAGE : EXIT_FAIL;
}

static int usage(const char *fmt, ...) MN_PRINTF(1, 2);
static int usage(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "mnemo: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\nTry \"mnemo --help\".\n");
  va_end(ap);
  return EXIT_USAGE;
}

/* ranks of a data-parallel run other than 0 say nothing: one run, one voice */
static bool silent;

/* emit -- one JSON line on stdout (flushed: a supervisor reads it as it comes). */
static void emit(json_t *o)
{
  if (silent) {
    json_decref(o);
    return;
  }
  char *s = json_dumps(o, JSON_COMPACT);
  if (s) {
    fputs(s, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    free(s);
  }
  json_decref(o);
}

static gpt_config model_config(const mn_config *c)
{
  return (gpt_config){.max_seq_len = (int)c->model.max_seq_len,
                      .vocab_size = (int)c->model.vocab,
                      .padded_vocab = (int)c->model.vocab,
                      .n_layer = (int)c->model.n_layer,
                      .n_head = (int)c->model.n_head,
                      .n_embd = (int)c->model.n_embd};
}

static double peak_rss_mb(void)
{
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_maxrss / 1024.0;
}

/* a tiny option scanner: --name VALUE pairs and flags, the rest positional */
typedef struct opts {
  const char *out, *resume, *checkpoint, *lang, *prompt, *split, *tags, *store, *previous;
  const char *weighting, *spec, *parallel, *reference, *probes, *sets, *cache, *baseline;
  const char *candidate, *must_improve, *history, *model, *typical, *heldout, *device, *math;
  int64_t tokens, max_tokens, top_k, steps, seed, capacity, windows, max_items, max_item_bytes;
  int64_t max_bytes;
  double temperature, gamma;
  bool per_doc, stages, ewc, json;
  char **pos;
  int npos;
} opts;

static int parse(int argc, char **argv, opts *o)
{
  o->pos = argv;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    const char **s = NULL;
    int64_t *n = NULL;
    if (strcmp(a, "--out") == 0)
      s = &o->out;
    else if (strcmp(a, "--resume") == 0)
      s = &o->resume;
    else if (strcmp(a, "--checkpoint") == 0)
      s = &o->checkpoint;
    else if (strcmp(a, "--lang") == 0)
      s = &o->lang;
    else if (strcmp(a, "--prompt") == 0)
      s = &o->prompt;
    else if (strcmp(a, "--split") == 0)
      s = &o->split;
    else if (strcmp(a, "--tags") == 0)
      s = &o->tags;
    else if (strcmp(a, "--store") == 0)
      s = &o->store;
    else if (strcmp(a, "--capacity") == 0)
      n = &o->capacity;
    else if (strcmp(a, "--windows") == 0)
      n = &o->windows;
    else if (strcmp(a, "--previous") == 0)
      s = &o->previous;
    else if (strcmp(a, "--weighting") == 0)
      s = &o->weighting;
    else if (strcmp(a, "--spec") == 0)
      s = &o->spec;
    else if (strcmp(a, "--parallel") == 0)
      s = &o->parallel;
    else if (strcmp(a, "--reference") == 0)
      s = &o->reference;
    else if (strcmp(a, "--probes") == 0)
      s = &o->probes;
    else if (strcmp(a, "--sets") == 0)
      s = &o->sets;
    else if (strcmp(a, "--cache") == 0)
      s = &o->cache;
    else if (strcmp(a, "--baseline") == 0)
      s = &o->baseline;
    else if (strcmp(a, "--candidate") == 0)
      s = &o->candidate;
    else if (strcmp(a, "--must-improve") == 0)
      s = &o->must_improve;
    else if (strcmp(a, "--history") == 0)
      s = &o->history;
    else if (strcmp(a, "--max-items") == 0)
      n = &o->max_items;
    else if (strcmp(a, "--max-item-bytes") == 0)
      n = &o->max_item_bytes;
    else if (strcmp(a, "--max-bytes") == 0)
      n = &o->max_bytes;
    else if (strcmp(a, "--model") == 0)
      s = &o->model;
    else if (strcmp(a, "--typical") == 0)
      s = &o->typical;
    else if (strcmp(a, "--heldout") == 0)
      s = &o->heldout;
    else if (strcmp(a, "--device") == 0)
      s = &o->device;
    else if (strcmp(a, "--math") == 0)
      s = &o->math;
    else if (strcmp(a, "--tokens") == 0)
      n = &o->tokens;
    else if (strcmp(a, "--max-tokens") == 0)
      n = &o->max_tokens;
    else if (strcmp(a, "--top-k") == 0)
      n = &o->top_k;
    else if (strcmp(a, "--steps") == 0)
      n = &o->steps;
    else if (strcmp(a, "--seed") == 0)
      n = &o->seed;
    else if (strcmp(a, "--per-doc") == 0) {
      o->per_doc = true;
      continue;
    } else if (strcmp(a, "--stages") == 0) {
      o->stages = true;
      continue;
    } else if (strcmp(a, "--ewc") == 0) {
      o->ewc = true;
      continue;
    } else if (strcmp(a, "--json") == 0) {
      o->json = true;
      continue;

    } else if (strcmp(a, "--temperature") == 0 || strcmp(a, "--gamma") == 0) {
      bool temp = a[2] == 't';
      if (i + 1 >= argc) return usage("%s needs a value", a);
      char *end;
      double v = strtod(argv[++i], &end);
      if (*end || !(v > 0) || (!temp && v > 1))
        return usage("%s wants a number in %s, got \"%s\"", a, temp ? "(0, inf)" : "(0, 1]",
                     argv[i]);
      *(temp ? &o->temperature : &o->gamma) = v;
      continue;
    } else if (a[0] == '-' && a[1] == '-') {
      return usage("unknown option \"%s\"", a);
    } else {
      o->pos[o->npos++] = argv[i];
      continue;
    }
    if (i + 1 >= argc) return usage("%s needs a value", a);
    if (s)
      *s = argv[++i];
    else if (!mn_parse_i64(argv[++i], n) || *n < 0)
      return usage("%s wants a non-negative number, got \"%s\"", a, argv[i]);
  }
  return 0;
}

/* ---------------------------------------------------------------- shard */

/* read_tags -- a TSV of code <tab> tag id, as the database assigned them */
static mn_status read_tags(const char *path, tok_tags *tags, mn_error *err)
{
  FILE *f = fopen(path, "r");
  if (!f) return mn_error_set(err, MN_ERR_IO, "could not open \"%s\": %s", path, strerror(errno));
  char line[256];
  int ln = 0;
  while (fgets(line, sizeof line, f)) {
    ln++;
    char code[16];
    int id;
    if (sscanf(line, "%15s %d", code, &id) != 2 || tok_tags_add(tags, code, id, err) != MN_OK) {
      fclose(f);
      if (!err->msg[0])
        return mn_error_set(err, MN_ERR_INPUT, "%s:%d: expected \"code<TAB>tag\"", path, ln);
      return mn_error_prefix(err, "%s:%d", path, ln);
    }
  }
  fclose(f);
  return MN_OK;
}

static int cmd_shard(worker *w, opts *o)
{
  mn_error err = {0};
  tok_tags tags = {0};
  shard_builder *b = NULL;
  int rc = EXIT_FAIL;
  if (!o->out || o->npos < 1) return usage("shard needs --out FILE and at least one JSONL file");
  const char *split = o->split ? o->split : "all";
  if (strcmp(split, "all") && strcmp(split, "train") && strcmp(split, "heldout"))
    return usage("--split must be train, heldout or all, got \"%s\"", split);
  if (o->tags && read_tags(o->tags, &tags, &err) != MN_OK) return fail(&err);
  if (shard_builder_create(&tags, &b, &err) != MN_OK) return fail(&err);
  int64_t docs = 0, skipped = 0;
  for (int i = 0; i < o->npos; i++) {
    FILE *f = fopen(o->pos[i], "r");
    if (!f) {
      mn_error_set(&err, MN_ERR_IO, "could not open \"%s\": %s", o->pos[i], strerror(errno));
      goto out;
    }
    char *l = NULL;
    size_t cap = 0;
    ssize_t n;
    int64_t ln = 0;
    while ((n = getline(&l, &cap, f)) > 0) {
      ln++;
      json_error_t je;
      json_t *r = json_loadb(l, (size_t)n, JSON_ALLOW_NUL, &je);
      const char *lang = json_string_value(json_object_get(r, "lang"));
      json_t *t = json_object_get(r, "text");
      if (!lang || !json_is_string(t)) {
        json_decref(r);
        if (n <= 1) continue; /* a blank line */
        mn_error_set(&err, MN_ERR_INPUT, "%s:%lld: expected {\"lang\": ..., \"text\": ...}",
                     o->pos[i], (long long)ln);
        free(l);
        fclose(f);
        goto out;
      }
      const char *text = json_string_value(t);
      size_t tn = json_string_length(t);
      bool keep = true, held, by_hash;
      mn_status s = MN_OK;
      if (strcmp(split, "all") != 0) { /* the record's stored split, or the hash rule */
        s = evalset__record_split(r, text, tn, w->cfg.ingest.heldout_fraction, &held, &by_hash,
                                  &err);
        keep = s == MN_OK && held == (strcmp(split, "heldout") == 0);
      }
      if (keep) s = shard_builder_add(b, lang, text, tn, &err);
      json_decref(r);
      if (s != MN_OK) {
        mn_error_prefix(&err, "%s:%lld", o->pos[i], (long long)ln);
        free(l);
        fclose(f);
        goto out;
      }
      docs += keep;
      skipped += !keep;
    }
    free(l);
    fclose(f);
  }
  if (shard_builder_write(b, o->out, &err) != MN_OK) goto out;
  json_t *langs = json_object();
  for (int i = 0; i < tags.n; i++)
    json_object_set_new(langs, tags.t[i].code, json_integer(tags.t[i].id));
  emit(json_pack("{s:s, s:s, s:I, s:I, s:s, s:o}", "event", "shard", "out", o->out, "documents",
                 (json_int_t)docs, "skipped", (json_int_t)skipped, "split", split, "tags", langs));
  rc = EXIT_OK;
out:
  shard_builder_destroy(b);
  return rc == EXIT_OK ? rc : fail(&err);
}

/* ---------------------------------------------------------------- shared helpers */

static mn_status read_shards(opts *o, shard **out, mn_error *err)
{
  shard *s = calloc((size_t)o->npos, sizeof *s);
  *out = NULL;
  if (!s) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  for (int i = 0; i < o->npos; i++) {
    mn_status rc = shard_read(o->pos[i], &s[i], err);
    if (rc != MN_OK) {
      for (int k = 0; k < i; k++)
        shard_free(&s[k]);
      free(s);
      return rc;
    }
  }
  *out = s;
  return MN_OK;
}

static void free_shards(shard *s, int n)
{
  for (int i = 0; s && i < n; i++)
    shard_free(&s[i]);
  free(s);
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

/* train_backend -- where training computes (train.device, train.math) */
static mn_status train_backend(const mn_config *c, const kernels_backend **k, mn_error *err)
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
    if ((rc = train_backend(c, &k, err)) != MN_OK ||
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

static int train_run(worker *w, opts *o, bool finetune)
{
  mn_error err = {0};
  shard *shards = NULL;
  gpt *m = NULL;
  const kernels_backend *kb = NULL;
  kernels_dp *dp = NULL;
  int rank, world;
  dp_world(&rank, &world);
  loader *ld = NULL;
  int rc = EXIT_FAIL;
  ckpt_meta meta, base;
  finetune_setup ft;
  json_t *ft_lineage = NULL;
  memset(&meta, 0, sizeof meta);
  memset(&ft, 0, sizeof ft);
  const char *cmd = finetune ? "finetune" : "pretrain";
  if (!o->out || o->npos < 1) return usage("%s needs --out DIR and at least one shard", cmd);
  const mn_config *c = &w->cfg;
  if (finetune && !(c->finetune.baseline && *c->finetune.baseline))
    return usage("finetune needs finetune.baseline (the checkpoint to start from) in --spec");
  gpt_config gc = model_config(c);
  int B = (int)c->train.batch_size, T = (int)c->train.seq_len;
  /* --steps N stops after step N; the schedule always spans train.steps, so a run cut in
   * parts and resumed is the same run */
  int64_t total = c->train.steps, steps = o->steps && o->steps < total ? o->steps : total;
  if (T > gc.max_seq_len)
    return usage("train.seq_len %d exceeds model.max_seq_len %d", T, gc.max_seq_len);
  signal(SIGTERM, on_signal); /* from the start: an early SIGTERM still exits 75 */
  signal(SIGINT, on_signal);
  if (mkdir(o->out, 0755) != 0 && errno != EEXIST) {
    mn_error_set(&err, MN_ERR_IO, "could not create \"%s\": %s", o->out, strerror(errno));
    return fail(&err);
  }
  kernels_cpu_set_threads((int)c->train.threads);
  if (read_shards(o, &shards, &err) != MN_OK) goto out;
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
    if (train_backend(c, &kb, &err) != MN_OK || gpt_create(&gc, B, T, seed, kb, &m, &err) != MN_OK)
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
    if (train_backend(c, &kb, &err) != MN_OK || gpt_create(&gc, B, T, seed, kb, &m, &err) != MN_OK)
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
    silent = rank > 0;
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
  emit(json_pack("{s:s, s:I, s:I, s:i, s:i, s:I, s:o, s:i}", "event", "start", "params",
                 (json_int_t)gpt_params_count(m), "from_step", (json_int_t)step0, "batch", B,
                 "seq_len", T, "steps", (json_int_t)steps, "language_shares", shares, "threads",
                 kernels_cpu_threads()));
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
      emit(ev);
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
      emit(json_pack("{s:s, s:I, s:s}", "event", "checkpoint", "step", (json_int_t)t, "dir",
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
    emit(json_pack("{s:s, s:I, s:s, s:s, s:f}", "event", "done", "step", (json_int_t)meta.step,
                   "checkpoint", o->out, "sha256", meta.sha256, "seconds",
                   (mn_monotonic_ms() - t0) / 1e3));
    rc = EXIT_OK;
  } else {
    emit(json_pack("{s:s, s:I, s:s}", "event", "interrupted", "step", (json_int_t)meta.step,
                   "resume", o->out));
    rc = EXIT_INTERRUPTED;
  }
out:
  kernels_dp_close(dp);
  json_decref(ft_lineage);
  finetune_fini(&ft);
  loader_destroy(ld);
  gpt_destroy(m);
  free_shards(shards, o->npos);
  return rc == EXIT_FAIL ? fail(&err) : rc;
}

static int cmd_pretrain(worker *w, opts *o)
{
  return train_run(w, o, false);
}

static int cmd_finetune(worker *w, opts *o)
{
  return train_run(w, o, true);
}

/* ---------------------------------------------------------------- eval */

typedef struct lang_score {
  double bits;
  int64_t bytes;
} lang_score;

/* score -- add the byte targets' bits of one window [tag, x...] -> y to s. */
static void score(gpt *m, const int32_t *x, const int32_t *y, int T, lang_score *s)
{
  gpt_forward(m, x, y, 1, T);
  const float *l = gpt_losses(m);
  for (int i = 0; i < T; i++)
    if (y[i] < 256) {
      s->bits += l[i] / 0.69314718055994530942; /* nats to bits */
      s->bytes++;
    }
}

/* scoring_model -- a checkpoint loaded into a model that takes one sequence of *T tokens
 * (train.seq_len, at most the model's positions), on the configured threads */
static mn_status scoring_model(const worker *w, const char *path, ckpt_meta *meta, gpt **m, int *T,
                               mn_error *err)
{
  kernels_cpu_set_threads((int)w->cfg.train.threads);
  mn_status rc = ckpt_read_meta(path, meta, err);
  if (rc != MN_OK) return rc;
  *T = meta->config.max_seq_len;
  if (w->cfg.train.seq_len < *T) *T = (int)w->cfg.train.seq_len;
  const kernels_backend *k;
  if ((rc = train_backend(&w->cfg, &k, err)) != MN_OK ||
      (rc = gpt_create(&meta->config, 1, *T, 0, k, m, err)) != MN_OK)
    return rc;
  return ckpt_load(path, *m, meta, err);
}

/* ---------------------------------------------------------------- evaluation sets */

static int cmd_evalset(worker *w, opts *o)
{
  mn_error err = {0};
  tok_tags tags = {0};
  if (!o->out || (o->npos < 1 && !o->parallel && !o->probes))
    return usage("evalset needs --out SET and held-out JSONL files, --parallel FILE or "
                 "--probes FILE");
  if (o->tags && o->checkpoint)
    return usage("evalset takes the languages from --tags or from --checkpoint, not both");
  if (o->tags && read_tags(o->tags, &tags, &err) != MN_OK) return fail(&err);
  if (o->checkpoint) { /* the languages the model has a tag for: those it can be scored on */
    ckpt_meta meta;
    if (ckpt_read_meta(o->checkpoint, &meta, &err) != MN_OK) return fail(&err);
    tags = meta.tags;
  }
  evalset_sources src = {.heldout = (const char *const *)o->pos,
                         .nheldout = o->npos,
                         .heldout_fraction = w->cfg.ingest.heldout_fraction,
                         .parallel = o->parallel,
                         .reference = o->reference ? o->reference : w->cfg.guards.parity_reference,
                         .probes = o->probes,
                         .tags = o->tags || o->checkpoint ? &tags : NULL,
                         .max_items = o->max_items,
                         .max_item_bytes = o->max_item_bytes};
  evalset_counts n;
  if (evalset_build(&src, o->out, &n, &err) != MN_OK) return fail(&err);
  emit(json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:{s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I}}",
                 "event", "evalset", "out", o->out, "sha256", n.sha256, "heldout",
                 (json_int_t)n.items[EVAL_HELDOUT], "parallel", (json_int_t)n.items[EVAL_PARALLEL],
                 "probes", (json_int_t)n.items[EVAL_PROBE], "left_out", "not_heldout",
                 (json_int_t)n.not_heldout, "other_language", (json_int_t)n.other_language,
                 "no_reference", (json_int_t)n.no_reference, "duplicates", (json_int_t)n.duplicates,
                 "over_cap", (json_int_t)n.over_cap, "split", "stored", (json_int_t)n.split_stored,
                 "hashed", (json_int_t)n.split_hashed));
  return EXIT_OK;
}

static int item_ptr_cmp(const void *a, const void *b)
{
  return evalset_item_cmp(*(const evalset_item *const *)a, *(const evalset_item *const *)b);
}

/* load_sets -- the comma-separated sets of --sets as one: items of all, in order */
static mn_status load_sets(const char *list, evalset *all, mn_error *err)
{
  char buf[4096];
  memset(all, 0, sizeof *all);
  if (!list || strlen(list) >= sizeof buf)
    return mn_error_set(err, MN_ERR_USAGE, "--sets wants SET[,SET...]");
  snprintf(buf, sizeof buf, "%s", list);
  mn_sha256 h;
  mn_status rc = mn_sha256_init(&h, err);
  for (char *save = NULL, *p = strtok_r(buf, ",", &save); rc == MN_OK && p;
       p = strtok_r(NULL, ",", &save)) {
    evalset s;
    if ((rc = evalset_load(p, &s, err)) != MN_OK) break;
    evalset_item *items = realloc(all->items, (all->n + s.n) * sizeof *items);
    if (!items) {
      evalset_free(&s);
      rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
      break;
    }
    all->items = items;
    if (all->reference[0] && s.reference[0] && strcmp(all->reference, s.reference) != 0) {
      rc = mn_error_set(err, MN_ERR_INPUT,
                        "%s normalises parallel items by %s, an earlier set by %s: their parity "
                        "figures do not compare",
                        p, s.reference, all->reference);
      evalset_free(&s);
      break;
    }
    memcpy(items + all->n, s.items, s.n * sizeof *items);
    all->n += s.n;
    free(s.items); /* the items moved */
    if (!all->reference[0]) snprintf(all->reference, sizeof all->reference, "%s", s.reference);
    rc = mn_sha256_update(&h, s.sha256, strlen(s.sha256), err);
  }
  /* an item in two sets would count twice: half the evidence passing for all of it */
  const evalset_item **by = rc == MN_OK ? malloc((all->n + 1) * sizeof *by) : NULL;
  if (rc == MN_OK && !by) rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  for (size_t i = 0; by && i < all->n; i++)
    by[i] = &all->items[i];
  if (by) qsort(by, all->n, sizeof *by, item_ptr_cmp);
  for (size_t i = 1; by && rc == MN_OK && i < all->n; i++)
    if (evalset_item_cmp(by[i - 1], by[i]) == 0)
      rc = mn_error_set(err, MN_ERR_INPUT,
                        "%s item %s/%s is in more than one of the sets %s: it would count twice",
                        evalset_kind_name(by[i]->kind), by[i]->lang, by[i]->id, list);
  free(by);
  uint8_t d[MN_SHA256_LEN];
  if (rc == MN_OK && (rc = mn_sha256_final(&h, d, err)) == MN_OK)
    mn_hex_encode(d, MN_SHA256_LEN, all->sha256); /* one set: the hash of its version */
  else
    mn_sha256_abort(&h), evalset_free(all);
  return rc;
}

/* eval_sets -- `eval --sets`: bits per byte per language and kind; --per-doc: every item */
static int eval_sets(worker *w, opts *o)
{
  mn_error err = {0};
  evalset s;
  if (load_sets(o->sets, &s, &err) != MN_OK) return fail(&err);
  kernels_cpu_set_threads((int)w->cfg.train.threads);
  double *bits = calloc(s.n ? s.n : 1, sizeof *bits);
  ckpt_meta meta;
  bool cached = false;
  evalset_run run = {.cache_dir = o->cache, .seq_len = (int)w->cfg.train.seq_len};
  double t0 = mn_monotonic_ms();
  int rc = EXIT_FAIL;
  if (!bits) {
    mn_error_set(&err, MN_ERR_NOMEM, "out of memory");
    goto out;
  }
  if (train_backend(&w->cfg, &run.backend, &err) != MN_OK) goto out;
  if (evalset_score_checkpoint(o->checkpoint, &s, &run, bits, &meta, &cached, &err) != MN_OK)
    goto out;
  double secs = (mn_monotonic_ms() - t0) / 1e3;
  json_t *per = json_object();
  int64_t bytes_all = 0, predictions = 0;
  for (size_t i = 0; i < s.n; i++) {
    const evalset_item *it = &s.items[i];
    if (o->per_doc) {
      char *line;
      if (evalset_item_json(it, bits[i], &line, &err) != MN_OK) {
        json_decref(per);
        goto out;
      }
      puts(line);
      free(line);
    }
    char key[32];
    snprintf(key, sizeof key, "%s/%s", it->lang, evalset_kind_name(it->kind));
    json_t *e = json_object_get(per, key);
    if (!e)
      json_object_set_new(per, key,
                          e = json_pack("{s:f, s:I, s:I}", "bits", 0.0, "bytes", (json_int_t)0,
                                        "items", (json_int_t)0));
    json_object_set_new(e, "bits",
                        json_real(json_real_value(json_object_get(e, "bits")) + bits[i]));
    json_object_set_new(
        e, "bytes",
        json_integer(json_integer_value(json_object_get(e, "bytes")) + (json_int_t)it->len));
    json_object_set_new(e, "items",
                        json_integer(json_integer_value(json_object_get(e, "items")) + 1));
    bytes_all += (int64_t)it->len;
    predictions += (int64_t)it->len + 1; /* the bytes and the eot */
  }
  json_t *langs = json_array();
  const char *key;
  json_t *e;
  json_object_foreach(per, key, e)
  {
    double b = json_real_value(json_object_get(e, "bits"));
    json_int_t n = json_integer_value(json_object_get(e, "bytes"));
    char lang[16];
    const char *slash = strchr(key, '/');
    snprintf(lang, sizeof lang, "%.*s", (int)(slash - key), key);
    json_array_append_new(langs, json_pack("{s:s, s:s, s:O, s:I, s:f}", "lang", lang, "kind",
                                           slash + 1, "items", json_object_get(e, "items"), "bytes",
                                           n, "bits_per_byte", n ? b / (double)n : -1.0));
  }
  json_decref(per);
  fflush(stdout);
  /* tokens_per_s: predictions per second of forward passes (a training step's tokens/s is
   * measured the same way); seconds: the whole command, loading included */
  emit(json_pack("{s:s, s:s, s:s, s:s, s:b, s:o, s:I, s:I, s:f, s:f, s:f}", "event", "eval",
                 "checkpoint", o->checkpoint, "weights", meta.sha256, "set", s.sha256, "cached",
                 cached, "languages", langs, "bytes", (json_int_t)bytes_all, "predictions",
                 (json_int_t)predictions, "seconds", secs, "scoring_seconds", run.scoring_s,
                 "tokens_per_s", run.scoring_s > 0 ? (double)predictions / run.scoring_s : 0.0));
  rc = EXIT_OK;
out:
  free(bits);
  evalset_free(&s);
  return rc == EXIT_OK ? rc : fail(&err);
}

/* best_so_far -- {lang: best bits per byte} from earlier verdicts on the same set: each
 * one's baseline (production then) and, where it passed, its candidate */
static mn_status best_so_far(const char *list, const char *set_sha, json_t **best, mn_error *err)
{
  char buf[4096];
  *best = NULL;
  if (!list || !*list) return MN_OK;
  if (strlen(list) >= sizeof buf) return mn_error_set(err, MN_ERR_USAGE, "--history is too long");
  snprintf(buf, sizeof buf, "%s", list);
  *best = json_object();
  for (char *save = NULL, *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
    json_error_t je;
    json_t *v = json_load_file(p, 0, &je);
    if (!v || !json_is_array(json_object_get(v, "languages"))) {
      json_decref(v);
      json_decref(*best);
      *best = NULL;
      return mn_error_set(err, MN_ERR_INPUT, "%s: not a verdict (%s)", p,
                          v ? "no languages" : je.text);
    }
    const char *set = json_string_value(json_object_get(v, "set"));
    bool passed = json_is_true(json_object_get(v, "pass"));
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(v, "languages"), i, r)
    {
      if (!set || strcmp(set, set_sha) != 0) break; /* other items: not comparable */
      const char *lang = json_string_value(json_object_get(r, "lang"));
      double b = json_number_value(json_object_get(r, "baseline_bpb"));
      double c = json_number_value(json_object_get(r, "candidate_bpb"));
      double m = passed && c > 0 && c < b ? c : b;
      json_t *have = json_object_get(*best, lang);
      if (lang && m > 0 && (!have || m < json_number_value(have)))
        json_object_set_new(*best, lang, json_real(m));
    }
    json_decref(v);
  }
  return MN_OK;
}

/* guard -- baseline and candidate scored on the same sets, then every guard rule */
static int cmd_guard(worker *w, opts *o)
{
  mn_error err = {0};
  if (!o->baseline || !o->candidate || !o->sets)
    return usage("guard needs --baseline CKPT, --candidate CKPT and --sets SET[,SET...]");
  evalset s;
  if (load_sets(o->sets, &s, &err) != MN_OK) return fail(&err);
  kernels_cpu_set_threads((int)w->cfg.train.threads);
  double *bits[2] = {calloc(s.n + 1, sizeof(double)), calloc(s.n + 1, sizeof(double))};
  guard_item *items = calloc(s.n + 1, sizeof *items);
  json_t *best = NULL, *v = NULL;
  ckpt_meta meta[2];
  bool cached[2];
  int rc = EXIT_FAIL;
  const char *ck[2] = {o->baseline, o->candidate};
  evalset_run run = {.cache_dir = o->cache, .seq_len = (int)w->cfg.train.seq_len};
  if (!bits[0] || !bits[1] || !items) {
    mn_error_set(&err, MN_ERR_NOMEM, "out of memory");
    goto out;
  }
  if (train_backend(&w->cfg, &run.backend, &err) != MN_OK) goto out;
  for (int m = 0; m < 2; m++) {
    double t0 = mn_monotonic_ms();
    if (evalset_score_checkpoint(ck[m], &s, &run, bits[m], &meta[m], &cached[m], &err) != MN_OK)
      goto out;
    if (!w->json && isatty(STDOUT_FILENO)) continue;
    emit(json_pack("{s:s, s:s, s:s, s:b, s:f}", "event", "scored", "checkpoint", ck[m], "weights",
                   meta[m].sha256, "cached", cached[m], "seconds", (mn_monotonic_ms() - t0) / 1e3));
  }
  for (size_t i = 0; i < s.n; i++) {
    const evalset_item *it = &s.items[i];
    items[i] = (guard_item){.kind = (guard_item_kind)it->kind,
                            .lang = it->lang,
                            .id = it->id,
                            .bytes = (double)it->len,
                            .ref_chars = (double)it->ref_chars,
                            .report = it->report,
                            .fixed_bits = it->kind == EVAL_PROBE ? it->fixed_bits : -1,
                            .base = bits[0][i],
                            .cand = bits[1][i]};
  }
  const mn_config *c = &w->cfg;
  guard_policy pol = {.tolerance = c->guards.tolerance,
                      .tolerances = c->guards.tolerances,
                      .min_items = (int)c->guards.min_items,
                      .resamples = (int)c->guards.resamples,
                      .level = c->guards.level,
                      .seed = (uint64_t)c->guards.seed,
                      .parity_widen = c->guards.parity_widen,
                      .probe_tolerance = c->guards.probe_tolerance,
                      .must_improve = o->must_improve ? o->must_improve : c->guards.must_improve};
  /* every language both models serve must be shown to hold, not only those the set has */
  char served[TOK_MAX_TAGS * 9] = "";
  for (int i = 0, n = 0; i < meta[0].tags.n; i++)
    if (tok_tag_of(&meta[1].tags, meta[0].tags.t[i].code) >= 0)
      n += snprintf(served + n, sizeof served - (size_t)n, "%s%s", n ? "," : "",
                    meta[0].tags.t[i].code);
  pol.languages = served;
  if (best_so_far(o->history, s.sha256, &best, &err) != MN_OK) goto out;
  double t0 = mn_monotonic_ms();
  if (guard_verdict(items, s.n, &pol, best, &v, &err) != MN_OK) goto out;
  json_object_set_new(v, "seconds_deciding", json_real((mn_monotonic_ms() - t0) / 1e3));
  json_object_set_new(v, "baseline",
                      json_pack("{s:s, s:s}", "path", o->baseline, "weights", meta[0].sha256));
  json_object_set_new(v, "candidate",
                      json_pack("{s:s, s:s}", "path", o->candidate, "weights", meta[1].sha256));
  json_object_set_new(v, "set", json_string(s.sha256));
  if (o->out) {
    char *text = json_dumps(v, JSON_INDENT(1) | JSON_SORT_KEYS);
    mn_status st = text ? mn_write_file_atomic(o->out, text, strlen(text), 0644, &err)
                        : mn_error_set(&err, MN_ERR_NOMEM, "out of memory");
    free(text);
    if (st != MN_OK) goto out;
  }
  if (!w->json && isatty(STDOUT_FILENO)) {
    guard_render(v, stdout);
  } else {
    json_object_set_new(v, "event", json_string("verdict"));
    emit(json_incref(v));
  }
  rc = json_is_true(json_object_get(v, "pass")) ? EXIT_OK : EXIT_GUARD;
out:
  json_decref(v), json_decref(best);
  free(bits[0]), free(bits[1]), free(items);
  evalset_free(&s);
  return rc == EXIT_FAIL ? fail(&err) : rc;
}

static int cmd_eval(worker *w, opts *o)
{
  if (o->sets && o->checkpoint) return eval_sets(w, o);
  mn_error err = {0};
  shard *shards = NULL;
  gpt *m = NULL;
  int rc = EXIT_FAIL;
  ckpt_meta meta;
  if (!o->checkpoint || o->npos < 1) return usage("eval needs --checkpoint FILE and shards");
  int T = 0;
  if (scoring_model(w, o->checkpoint, &meta, &m, &T, &err) != MN_OK) goto out;
  if (read_shards(o, &shards, &err) != MN_OK) goto out;
  int32_t *x = malloc(sizeof(int32_t) * (size_t)T), *y = malloc(sizeof(int32_t) * (size_t)T);
  json_t *langs = json_array();
  for (int si = 0; si < o->npos; si++) {
    for (uint32_t k = 0; k < shards[si].nsections; k++) {
      const shard_section *sec = &shards[si].sections[k];
      const uint16_t *tok = shards[si].tokens + sec->first;
      if (shard_section_fits(sec, o->pos[si], &meta, o->checkpoint, &err) != MN_OK) goto out_loop;
      int tag = sec->tag;
      lang_score total = {0};
      int64_t limit = o->max_tokens ? o->max_tokens : INT64_MAX, used = 0;
      /* documents: [tag, bytes..., eot]; each scored from its tag, in windows of T */
      uint64_t d0 = 0;
      int64_t doc = 0;
      while (d0 < sec->count && used < limit) {
        uint64_t d1 = d0 + 1;
        while (d1 < sec->count && tok[d1] != TOK_EOT)
          d1++;
        lang_score ds = {0};
        for (uint64_t p = d0 + 1; p <= d1 && p < sec->count; p += (uint64_t)T) {
          int n = (int)((d1 + 1 - p) < (uint64_t)T ? (d1 + 1 - p) : (uint64_t)T);
          x[0] = tag;
          for (int i = 1; i < n; i++)
            x[i] = tok[p + (uint64_t)i - 1];
          for (int i = 0; i < n; i++)
            y[i] = tok[p + (uint64_t)i];
          score(m, x, y, n, &ds);
          used += n;
        }
        if (o->per_doc)
          emit(json_pack("{s:s, s:s, s:I, s:I, s:f}", "event", "doc", "lang", sec->code, "doc",
                         (json_int_t)doc, "bytes", (json_int_t)ds.bytes, "nll_bits", ds.bits));
        total.bits += ds.bits;
        total.bytes += ds.bytes;
        doc++;
        d0 = d1 + 1;
      }
      double bpb = total.bytes ? total.bits / (double)total.bytes : NAN;
      json_array_append_new(langs, json_pack("{s:s, s:I, s:I, s:f}", "lang", sec->code, "documents",
                                             (json_int_t)doc, "bytes", (json_int_t)total.bytes,
                                             "bits_per_byte", isfinite(bpb) ? bpb : -1.0));
    }
  }
  if (w->json || !isatty(STDOUT_FILENO)) {
    emit(json_pack("{s:s, s:s, s:o}", "event", "eval", "checkpoint", o->checkpoint, "languages",
                   langs));
  } else {
    printf("%-6s %10s %10s %14s\n", "lang", "documents", "bytes", "bits/byte");
    size_t i;
    json_t *v;
    json_array_foreach(langs, i, v)
    {
      printf("%-6s %10lld %10lld %14.4f\n", json_string_value(json_object_get(v, "lang")),
             (long long)json_integer_value(json_object_get(v, "documents")),
             (long long)json_integer_value(json_object_get(v, "bytes")),
             json_real_value(json_object_get(v, "bits_per_byte")));
    }
    json_decref(langs);
  }
  rc = EXIT_OK;
out_loop:
  free(x);
  free(y);
  if (rc != EXIT_OK) json_decref(langs);
out:
  free_shards(shards, o->npos);
  gpt_destroy(m);
  return rc == EXIT_OK ? rc : fail(&err);
}

/* ---------------------------------------------------------------- generate */

static int cmd_generate(worker *w, opts *o)
{
  mn_error err = {0};
  gpt *m = NULL;
  ckpt_meta meta;
  if (!o->checkpoint || !o->lang) return usage("generate needs --checkpoint FILE and --lang L");
  const char *prompt = o->prompt ? o->prompt : "";
  size_t bad_at;
  if (mn_utf8_check(prompt, strlen(prompt), &bad_at) != MN_UTF8_OK) {
    mn_error_set(&err, MN_ERR_INPUT, "the prompt is not valid UTF-8 (byte %zu)", bad_at);
    return fail(&err);
  }
  if (o->tokens > 1000000) return usage("--tokens is at most 1000000");
  kernels_cpu_set_threads((int)w->cfg.train.threads);
  if (ckpt_read_meta(o->checkpoint, &meta, &err) != MN_OK) return fail(&err);
  int tag = tok_tag_of(&meta.tags, o->lang);
  if (tag < 0) {
    mn_error_set(&err, MN_ERR_INPUT, "the checkpoint knows no language \"%s\"", o->lang);
    return fail(&err);
  }
  int T = meta.config.max_seq_len;
  const kernels_backend *k;
  if (train_backend(&w->cfg, &k, &err) != MN_OK ||
      gpt_create(&meta.config, 1, T, 0, k, &m, &err) != MN_OK)
    return fail(&err);
  if (ckpt_load(o->checkpoint, m, &meta, &err) != MN_OK) {
    gpt_destroy(m);
    return fail(&err);
  }
  int64_t want = o->tokens ? o->tokens : 100;
  int top_k = o->top_k ? (int)o->top_k : 40;
  double temp = o->temperature > 0 ? o->temperature : 0.8;
  uint64_t rng = o->seed ? (uint64_t)o->seed : 1;
  size_t plen = strlen(prompt);
  size_t cap = plen + (size_t)want + 2;
  int32_t *ctx = malloc(sizeof(int32_t) * cap);
  unsigned char *outb = malloc(cap);
  int32_t *win = malloc(sizeof(int32_t) * (size_t)T);
  float *p = malloc(sizeof(float) * 257);
  if (!ctx || !outb || !win || !p) {
    free(ctx), free(outb), free(win), free(p);
    gpt_destroy(m);
    mn_error_set(&err, MN_ERR_NOMEM, "out of memory generating %lld tokens", (long long)want);
    return fail(&err);
  }
  size_t n = 0, nout = 0;
  for (size_t i = 0; i < plen; i++)
    ctx[n++] = (unsigned char)prompt[i];
  for (int64_t g = 0; g < want; g++) {
    /* the window: the tag, then the last T-1 tokens */
    int len = (int)(n < (size_t)T - 1 ? n : (size_t)T - 1);
    win[0] = tag;
    for (int i = 0; i < len; i++)
      win[i + 1] = ctx[n - (size_t)len + (size_t)i];
    gpt_forward(m, win, NULL, 1, len + 1);
    const float *logits = gpt_logits(m) + (size_t)len * meta.config.padded_vocab;
    /* sample among bytes and <|eot|> only (tags are never generated) */
    float mx = -INFINITY;
    for (int i = 0; i < 257; i++)
      mx = logits[i] > mx ? logits[i] : mx;
    float kth = -INFINITY;
    if (top_k > 0 && top_k < 257) { /* the k-th largest logit */
      float tmp[257];
      memcpy(tmp, logits, sizeof tmp);
      for (int a = 0; a < top_k; a++) {
        int best = a;
        for (int b = a + 1; b < 257; b++)
          best = tmp[b] > tmp[best] ? b : best;
        float s = tmp[a];
        tmp[a] = tmp[best];
        tmp[best] = s;
      }
      kth = tmp[top_k - 1];
    }
    double sum = 0;
    for (int i = 0; i < 257; i++) {
      p[i] = logits[i] < kth ? 0.0f : (float)exp((logits[i] - mx) / temp);
      sum += p[i];
    }
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    double u = (double)(rng >> 11) / 9007199254740992.0 * sum, acc = 0;
    int tokn = 256;
    for (int i = 0; i < 257; i++) {
      acc += p[i];
      if (u < acc) {
        tokn = i;
        break;
      }
    }
    if (tokn == TOK_EOT) break;
    ctx[n++] = tokn;
    outb[nout++] = (unsigned char)tokn;
  }
  /* print valid UTF-8 only: a sequence cut by the end or sampled badly becomes U+FFFD */
  mn_buf text;
  mn_buf_init(&text, cap * 3 + 16);
  (void)!mn_buf_append(&text, prompt, plen, NULL);
  size_t i = 0;
  while (i < nout) {
    size_t off;
    mn_utf8_problem pr = mn_utf8_check(outb + i, nout - i, &off);
    if (pr == MN_UTF8_OK) {
      (void)!mn_buf_append(&text, outb + i, nout - i, NULL);
      break;
    }
    (void)!mn_buf_append(&text, outb + i, off, NULL);
    (void)!mn_buf_append(&text, "\xEF\xBF\xBD", 3, NULL);
    i += off + 1;
  }
  if (w->json || !isatty(STDOUT_FILENO))
    emit(json_pack("{s:s, s:s, s:s, s:I}", "event", "generate", "lang", o->lang, "text",
                   text.data ? text.data : "", "tokens", (json_int_t)nout));
  else
    printf("%s\n", text.data ? text.data : "");
  mn_buf_fini(&text);
  free(ctx), free(outb), free(win), free(p);
  gpt_destroy(m);
  return EXIT_OK;
}

/* ---------------------------------------------------------------- bench */

/* sgemm_probe -- n x n x n single-precision products split over the threads as the model's
 * are, to measure the machine's sgemm rate in the same process as a training step. */
typedef struct sgemm_probe {
  int n;
  size_t bytes;
  float *a, *b, *c;
} sgemm_probe;

static bool sgemm_probe_init(sgemm_probe *p, int n)
{
  /* allocated as the model's buffers are (huge pages where the kernel allows) */
  p->n = n;
  p->bytes = (size_t)n * n * sizeof(float);
  p->a = kernels_host_alloc(p->bytes), p->b = kernels_host_alloc(p->bytes);
  p->c = kernels_host_alloc(p->bytes);
  if (!p->a || !p->b || !p->c) return false;
  for (size_t i = 0; i < (size_t)n * n; i++)
    p->a[i] = p->b[i] = (float)(i % 7) * 0.1f;
  return true;
}

static void sgemm_probe_fini(sgemm_probe *p)
{
  kernels_host_free(p->a, p->bytes), kernels_host_free(p->b, p->bytes);
  kernels_host_free(p->c, p->bytes);
}

/* sgemm_rate -- GFLOP/s of the best of `runs` products (0 when the probe has no memory). */
static double sgemm_rate(sgemm_probe *p, int runs)
{
  if (!p->a || !p->b || !p->c) return 0.0;
  const kernels_backend *k = kernels_cpu();
  double best = INFINITY;
  for (int r = 0; r < runs; r++) {
    double t0 = mn_monotonic_ms();
    k->matmul_forward(p->c, p->a, p->b, NULL, p->n, p->n, p->n);
    double ms = mn_monotonic_ms() - t0;
    best = ms < best ? ms : best;
  }
  return 2.0 * p->n * p->n * (double)p->n / (best / 1e3) / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* step_parts -- mean milliseconds of forward, backward and update over `steps` steps after
 * two warm-up steps, with the model's current trainable part */
static void step_parts(gpt *m, const int32_t *x, const int32_t *y, int B, int T,
                       const gpt_adamw *opt, int steps, double ms[3])
{
  ms[0] = ms[1] = ms[2] = 0;
  for (int t = 1; t <= steps + 2; t++) {
    double t0 = mn_monotonic_ms();
    gpt_zero_grad(m);
    gpt_forward(m, x, y, B, T);
    double t1 = mn_monotonic_ms();
    gpt_backward(m);
    double t2 = mn_monotonic_ms();
    gpt_update(m, opt, t);
    double t3 = mn_monotonic_ms();
    if (t > 2) ms[0] += t1 - t0, ms[1] += t2 - t1, ms[2] += t3 - t2;
  }
  for (int i = 0; i < 3; i++)
    ms[i] /= steps;
}

/*
 * bench_stages -- progressive unfreezing: the step time with the top k blocks trainable
 * against full fine-tuning, and against the ideal: the forward, plus k/L of the full
 * backward, plus the update's share for the trainable parameters.
 */
static void bench_stages(gpt *m, const int32_t *x, const int32_t *y, int B, int T,
                         const gpt_adamw *opt, int steps)
{
  int L = gpt_get_config(m)->n_layer;
  double full[3];
  gpt_set_trainable(m, -1);
  step_parts(m, x, y, B, T, opt, steps, full);
  double full_ms = full[0] + full[1] + full[2];
  size_t n = gpt_params_count(m);
  int ks[] = {1, 2, L / 2, L};
  for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
    int k = ks[i];
    if (k < 1 || (i > 0 && k <= ks[i - 1])) continue;
    double part[3];
    gpt_set_trainable(m, L - k);
    step_parts(m, x, y, B, T, opt, steps, part);
    double ms = part[0] + part[1] + part[2];
    double share = (double)(n - gpt_trainable_offset(m)) / (double)n;
    double ideal = full[0] + full[1] * k / L + full[2] * share;
    emit(json_pack("{s:s, s:i, s:i, s:f, s:f, s:f, s:f, s:f}", "event", "bench_stage",
                   "trainable_blocks", k, "layers", L, "ms_per_step", ms, "full_ms_per_step",
                   full_ms, "saving", 1.0 - ms / full_ms, "ideal_ms_per_step", ideal, "over_ideal",
                   ms / ideal - 1.0));
  }
  gpt_set_trainable(m, -1);
}

/* bench_ewc -- the step time with EWC's penalty fused into the update, against without */
static int bench_ewc(gpt *m, const int32_t *x, const int32_t *y, int B, int T, const gpt_adamw *opt,
                     int steps)
{
  size_t n = gpt_params_count(m);
  float *F = malloc(n * sizeof(float)), *A = malloc(n * sizeof(float));
  if (!F || !A) {
    free(F), free(A);
    mn_error err = {0};
    mn_error_set(&err, MN_ERR_NOMEM, "out of memory");
    return fail(&err);
  }
  for (size_t i = 0; i < n; i++)
    F[i] = (float)(i % 97) * 1e-3f, A[i] = gpt_params(m)[i];
  double plain[3], with[3];
  step_parts(m, x, y, B, T, opt, steps, plain);
  gpt_set_ewc(m, F, A, 10.0f);
  step_parts(m, x, y, B, T, opt, steps, with);
  gpt_set_ewc(m, NULL, NULL, 0);
  double a = plain[0] + plain[1] + plain[2], b = with[0] + with[1] + with[2];
  emit(json_pack("{s:s, s:f, s:f, s:f, s:f, s:f}", "event", "bench_ewc", "ms_per_step", a,
                 "ewc_ms_per_step", b, "overhead", b / a - 1.0, "update_ms", plain[2],
                 "ewc_update_ms", with[2]));
  free(F), free(A);
  return EXIT_OK;
}

/* bench_device -- training steps on a device: tokens/s and MFU (6N + 6LCT FLOPs per token
 * against the card's dense bf16 peak, ANCHORS.md), each step waited for */
static int bench_device(gpt *m, const int32_t *x, const int32_t *y, int B, int T,
                        const gpt_adamw *opt, int steps, const char *math, bool json)
{
  mn_error err = {0};
  kernels_device_info info;
  if (kernels_cuda_probe(&info, &err) != MN_OK) return fail(&err);
  double total = 0, best = INFINITY;
  for (int t = 1; t <= steps + 2; t++) {
    double t0 = mn_monotonic_ms();
    gpt_zero_grad(m);
    gpt_forward_queue(m, x, y, B, T); /* as training does: the step queued whole */
    gpt_backward(m);
    gpt_update(m, opt, t);
    gpt_mean_loss(m);
    if (gpt_sync(m, &err) != MN_OK) return fail(&err);
    double ms = mn_monotonic_ms() - t0;
    if (t > 2) total += ms, best = ms < best ? ms : best;
  }
  const gpt_config *gc = gpt_get_config(m);
  double mean = total / steps, tps = (double)B * T / (mean / 1e3);
  double flops = gpt_flops_per_token(gc, T) * tps;
  /* dense bf16 peaks by the vendors' datasheets (SXM parts); unknown cards: no MFU */
  double peak = strstr(info.name, "H100") || strstr(info.name, "H200") ? 989.4e12
                : strstr(info.name, "A100")                            ? 312e12
                                                                       : 0;
  json_t *r = json_pack("{s:s, s:s, s:s, s:I, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:f, "
                        "s:f, s:s}",
                        "event", "bench", "device", "cuda", "card", info.name, "params",
                        (json_int_t)gpt_params_count(m), "n_layer", gc->n_layer, "n_embd",
                        gc->n_embd, "n_head", gc->n_head, "batch", B, "seq_len", T, "steps", steps,
                        "ms_per_step", mean, "best_ms_per_step", best, "tokens_per_s", tps,
                        "tflops", flops / 1e12, "mfu", peak > 0 ? flops / peak : 0.0, "math", math);
  if (json) {
    emit(r);
  } else {
    printf("%s: %zu parameters, B=%d T=%d, %s products: %.1f ms/step, %.0f tokens/s, %.1f "
           "TFLOP/s, MFU %.1f%%\n",
           info.name, gpt_params_count(m), B, T, math, mean, tps, flops / 1e12,
           peak > 0 ? 100 * flops / peak : 0.0);
    json_decref(r);
  }
  return EXIT_OK;
}

static int cmd_bench(worker *w, opts *o)
{
  mn_error err = {0};
  gpt *m = NULL;
  const mn_config *c = &w->cfg;
  gpt_config gc = model_config(c);
  int B = (int)c->train.batch_size, T = (int)c->train.seq_len;
  int steps = o->steps ? (int)o->steps : 10;
  kernels_cpu_set_threads((int)c->train.threads);
  const kernels_backend *k = kernels_cpu();
  bool cuda = o->device && strcmp(o->device, "cuda") == 0;
  if (o->device && !cuda && strcmp(o->device, "cpu") != 0)
    return usage("--device wants cpu or cuda, got \"%s\"", o->device);
  kernels_math math = KERNELS_MATH_FP32;
  if (o->math && !kernels_math_parse(o->math, &math))
    return usage("--math wants fp32, tf32 or bf16, got \"%s\"", o->math);
  if (cuda) {
    char why[256];
    if (kernels_cuda(math, &k, why, &err) != MN_OK) return fail(&err);
    if (!k) {
      mn_error_set(&err, MN_ERR_INPUT, "no CUDA device: %s", why);
      return fail(&err);
    }
  }
  if (gpt_create(&gc, B, T, 1, k, &m, &err) != MN_OK) return fail(&err);
  int32_t *x = malloc(sizeof(int32_t) * (size_t)B * T),
          *y = malloc(sizeof(int32_t) * (size_t)B * T);
  uint64_t s = 7;
  for (int i = 0; i < B * T; i++) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    x[i] = (int32_t)((s >> 33) % 256);
    y[i] = (int32_t)((s >> 13) % 256);
  }
  gpt_adamw opt = {.lr = 1e-4f,
                   .beta1 = 0.9f,
                   .beta2 = 0.95f,
                   .eps = 1e-8f,
                   .weight_decay = 0.1f,
                   .grad_clip = 1.0f};
  if (cuda) {
    int code =
        bench_device(m, x, y, B, T, &opt, steps, o->math ? o->math : "fp32", w->json || o->json);
    free(x), free(y);
    gpt_destroy(m);
    return code;
  }
  /* The machine's sgemm rate is measured right after each timed step (the best of a burst
   * of 1024^3 products), so that both see the same machine: on a shared host the clock
   * and the neighbours change from one second to the next.  The median burst is the
   * reference. */
  sgemm_probe probe = {0};
  bool probe_ok = sgemm_probe_init(&probe, 1024);
  double *rates = calloc((size_t)steps, sizeof(double));
  if (o->stages || o->ewc) {
    int code = EXIT_OK;
    if (o->stages) bench_stages(m, x, y, B, T, &opt, steps);
    if (o->ewc) code = bench_ewc(m, x, y, B, T, &opt, steps);
    free(x), free(y);
    gpt_destroy(m);
    return code;
  }
  double best = INFINITY, total = 0;
  for (int t = 1; t <= steps + 2; t++) {
    double t0 = mn_monotonic_ms();
    gpt_zero_grad(m);
    gpt_forward(m, x, y, B, T);
    gpt_backward(m);
    gpt_update(m, &opt, t);
    double ms = mn_monotonic_ms() - t0;
    if (t > 2) { /* two warm-up steps */
      total += ms;
      best = ms < best ? ms : best;
      if (rates && probe_ok) rates[t - 3] = sgemm_rate(&probe, 10);
    }
  }
  double sgemm = 0.0;
  if (rates && probe_ok) {
    qsort(rates, (size_t)steps, sizeof(double), cmp_double);
    sgemm = steps % 2 ? rates[steps / 2] : (rates[steps / 2 - 1] + rates[steps / 2]) / 2;
  }
  free(rates);
  /* also the best of a longer burst after the steps, as a plain sgemm benchmark would
   * measure it: reported beside the reference, not used for the fraction */
  double sgemm_after = probe_ok ? sgemm_rate(&probe, 40) : 0.0;
  sgemm_probe_fini(&probe);
  double mean = total / steps;
  double tps = (double)B * T / (mean / 1e3);
  double gflops = gpt_flops_per_token(&gc, T) * tps / 1e9;
  json_t *r =
      json_pack("{s:s, s:I, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:i}", "event",
                "bench", "params", (json_int_t)gpt_params_count(m), "n_layer", gc.n_layer, "n_embd",
                gc.n_embd, "n_head", gc.n_head, "batch", B, "seq_len", T, "steps", steps,
                "ms_per_step", mean, "best_ms_per_step", best, "tokens_per_s", tps, "gflops",
                gflops, "peak_rss_mb", peak_rss_mb(), "threads", kernels_cpu_threads());
  json_object_set_new(r, "sgemm_gflops", json_real(sgemm));
  json_object_set_new(r, "sgemm_gflops_after", json_real(sgemm_after));
  json_object_set_new(r, "sgemm_fraction", json_real(sgemm > 0 ? gflops / sgemm : 0.0));
  if (w->json || !isatty(STDOUT_FILENO)) {
    emit(r);
  } else {
    printf("%zu parameters, B=%d T=%d, %d threads: %.1f ms/step, %.0f tokens/s, %.1f GFLOP/s "
           "(%.0f%% of sgemm's %.1f), peak %.0f MB\n",
           gpt_params_count(m), B, T, kernels_cpu_threads(), mean, tps, gflops,
           sgemm > 0 ? 100 * gflops / sgemm : 0.0, sgemm, peak_rss_mb());
    json_decref(r);
  }
  free(x), free(y);
  gpt_destroy(m);
  return EXIT_OK;
}

/* ---------------------------------------------------------------- fisher */

/*
 * fisher -- the diagonal Fisher of a checkpoint's weights for EWC, from windows of
 * train.seq_len + 1 tokens per language; --previous F_OLD makes it the online estimate
 * gamma * F_OLD + F_new.
 */
static int cmd_fisher(worker *w, opts *o)
{
  if (!o->checkpoint || !o->out || o->npos < 1)
    return usage("fisher needs --checkpoint FILE, --out FILE and at least one shard");
  const char *weighting = o->weighting ? o->weighting : "equal";
  if (strcmp(weighting, "equal") != 0 && strcmp(weighting, "share") != 0)
    return usage("--weighting must be equal or share, got \"%s\"", weighting);
  if (o->gamma > 0 && !o->previous) return usage("--gamma goes with --previous");
  mn_error err = {0};
  shard *shards = NULL;
  gpt *m = NULL;
  float *F = NULL, *old = NULL;
  int code = EXIT_FAIL;
  ckpt_meta meta;
  fisher_meta fm, pm;
  memset(&fm, 0, sizeof fm);
  int T = 0;
  if (scoring_model(w, o->checkpoint, &meta, &m, &T, &err) != MN_OK) goto out;
  if (read_shards(o, &shards, &err) != MN_OK) goto out;
  for (int s = 0; s < o->npos; s++)
    for (uint32_t k = 0; k < shards[s].nsections; k++)
      if (shard_section_fits(&shards[s].sections[k], o->pos[s], &meta, o->checkpoint, &err) !=
          MN_OK)
        goto out;
  size_t np = gpt_params_count(m);
  F = malloc(np * sizeof(float));
  if (!F) {
    mn_error_set(&err, MN_ERR_NOMEM, "out of memory");
    goto out;
  }
  int windows = o->windows ? (int)o->windows : 32;
  if (fisher_estimate(m, shards, o->npos, T, windows, weighting[0] == 's', F, fm.info,
                      sizeof fm.info, &err) != MN_OK)
    goto out;
  if (o->previous) { /* online: gamma * the previous estimate + this one */
    double gamma = o->gamma > 0 ? o->gamma : 0.9;
    old = malloc(np * sizeof(float));
    if (!old) {
      mn_error_set(&err, MN_ERR_NOMEM, "out of memory");
      goto out;
    }
    if (ckpt_load_fisher(o->previous, old, np, &pm, &err) != MN_OK) goto out;
    for (size_t i = 0; i < np; i++)
      F[i] = (float)gamma * old[i] + F[i];
    json_t *info = json_loads(fm.info, 0, NULL);
    json_object_set_new(info, "gamma", json_real(gamma));
    json_object_set_new(info, "previous", json_string(pm.weights_sha256));
    char *text = info ? json_dumps(info, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(info);
    if (!text || strlen(text) >= sizeof fm.info) {
      free(text);
      mn_error_set(&err, MN_ERR_NOMEM, "could not describe the online Fisher");
      goto out;
    }
    memcpy(fm.info, text, strlen(text) + 1);
    free(text);
  }
  snprintf(fm.weights_sha256, sizeof fm.weights_sha256, "%s", meta.sha256);
  if (ckpt_save_fisher(o->out, F, np, &fm, &err) != MN_OK) goto out;
  double sum = 0, max = 0;
  for (size_t i = 0; i < np; i++)
    sum += F[i], max = F[i] > max ? F[i] : max;
  json_t *ev = json_pack("{s:s, s:s, s:s, s:f, s:f}", "event", "fisher", "out", o->out, "weighting",
                         weighting, "mean", sum / (double)np, "max", max);
  json_object_set_new(ev, "info", json_loads(fm.info, 0, NULL));
  emit(ev);
  code = EXIT_OK;
out:
  if (code != EXIT_OK) code = fail(&err);
  free(F), free(old);
  free_shards(shards, o->npos);
  gpt_destroy(m);
  return code;
}

/* ---------------------------------------------------------------- replay */

/* replay_absorb -- every shard's sections cut into windows of train.seq_len + 1 tokens,
 * back to back, offered to the store at --store (created when absent) */
static int cmd_replay_absorb(worker *w, opts *o)
{
  if (!o->store || o->capacity < 1 || o->capacity > UINT32_MAX || o->npos < 2)
    return usage("replay absorb needs --store FILE, --capacity N (windows per language) and at "
                 "least one shard");
  mn_error err = {0};
  uint32_t window = (uint32_t)w->cfg.train.seq_len + 1;
  int nshards = o->npos - 1;
  shard *shards = calloc((size_t)nshards, sizeof *shards);
  replay_offer *offers = NULL;
  size_t noffers = 0, total = 0;
  int code = EXIT_FAIL;
  if (!shards) {
    mn_error_set(&err, MN_ERR_NOMEM, "out of memory");
    goto out;
  }
  for (int i = 0; i < nshards; i++) {
    if (shard_read(o->pos[i + 1], &shards[i], &err) != MN_OK) goto out;
    total += shards[i].nsections;
  }
  offers = calloc(total ? total : 1, sizeof *offers);
  if (!offers) {
    mn_error_set(&err, MN_ERR_NOMEM, "out of memory");
    goto out;
  }
  for (int i = 0; i < nshards; i++)
    for (uint32_t k = 0; k < shards[i].nsections; k++) {
      const shard_section *sec = &shards[i].sections[k];
      if (sec->count / window == 0) continue; /* shorter than a window: nothing to offer */
      offers[noffers++] = (replay_offer){.code = sec->code,
                                         .windows = shards[i].tokens + sec->first,
                                         .n = (size_t)(sec->count / window)};
    }
  if (replay_store_absorb(o->store, window, (uint32_t)o->capacity, offers, noffers, &err) != MN_OK)
    goto out;
  replay_store s;
  if (replay_store_load(o->store, &s, &err) != MN_OK) goto out;
  for (size_t i = 0; i < noffers; i++) {
    const replay_lang *l = replay_store_find(&s, offers[i].code);
    emit(json_pack("{s:s, s:s, s:I, s:I, s:I}", "event", "replay_absorb", "lang", offers[i].code,
                   "offered", (json_int_t)offers[i].n, "held", (json_int_t)(l ? l->count : 0),
                   "seen", (json_int_t)(l ? l->seen : 0)));
  }
  replay_store_free(&s);
  code = EXIT_OK;
out:
  if (code != EXIT_OK) code = fail(&err);
  for (int i = 0; shards && i < nshards; i++)
    shard_free(&shards[i]);
  free(shards);
  free(offers);
  return code;
}

/* replay_verify -- read a store whole (every field and the checksum) and say what it holds */
static int cmd_replay_verify(opts *o)
{
  if (o->npos != 2) return usage("replay verify takes one argument: STORE");
  mn_error err = {0};
  replay_store s;
  if (replay_store_load(o->pos[1], &s, &err) != MN_OK) return fail(&err);
  uint64_t held = 0;
  for (uint32_t i = 0; i < s.nlangs; i++) {
    const replay_lang *l = &s.langs[i];
    held += l->count;
    emit(json_pack("{s:s, s:s, s:I, s:I, s:I}", "event", "replay_lang", "lang", l->code, "capacity",
                   (json_int_t)l->capacity, "held", (json_int_t)l->count, "seen",
                   (json_int_t)l->seen));
  }
  emit(json_pack("{s:s, s:s, s:b, s:i, s:i, s:I}", "event", "replay_verify", "store", o->pos[1],
                 "ok", 1, "window", (int)s.window, "languages", (int)s.nlangs, "windows",
                 (json_int_t)held));
  replay_store_free(&s);
  return EXIT_OK;
}

static int cmd_replay(worker *w, opts *o)
{
  const char *sub = o->npos > 0 ? o->pos[0] : "";
  if (strcmp(sub, "absorb") == 0) return cmd_replay_absorb(w, o);
  if (strcmp(sub, "verify") == 0) return cmd_replay_verify(o);
  return usage("replay wants absorb or verify, got \"%s\"", sub);
}

/* ---------------------------------------------------------------- lid */

static int cmd_lid_train(opts *o)
{
  if (!o->out || o->npos < 2)
    return usage("lid train needs --out MODEL and at least one JSONL file of {\"lang\", \"text\"}");
  mn_error err = {0};
  lid_model *m = NULL;
  double t0 = mn_monotonic_ms();
  if (lid_train((const char *const *)o->pos + 1, o->npos - 1, o->max_bytes, &m, &err) != MN_OK ||
      lid_save(m, o->out, &err) != MN_OK) {
    lid_free(m);
    return fail(&err);
  }
  emit(json_pack("{s:s, s:s, s:i, s:f}", "event", "lid_train", "out", o->out, "languages",
                 lid_languages(m), "seconds", (mn_monotonic_ms() - t0) / 1e3));
  lid_free(m);
  return EXIT_OK;
}

/* lid_line -- one text: a JSONL record's "text" (and "id") or the line itself */
static void lid_line(const lid_model *m, char *line, size_t n, int64_t ln, bool json)
{
  while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
    line[--n] = 0;
  json_t *rec = n && line[0] == '{' ? json_loadb(line, n, 0, NULL) : NULL;
  const char *text = line;
  size_t len = n;
  if (rec) {
    json_t *t = json_object_get(rec, "text");
    text = json_string_value(t) ? json_string_value(t) : "";
    len = json_string_length(t);
  }
  json_t *id = rec ? json_object_get(rec, "id") : NULL;
  size_t bad = 0;
  mn_utf8_problem up = mn_utf8_check(text, len, &bad);
  lid_result r;
  if (up == MN_UTF8_OK) lid_classify(m, text, len, &r);
  if (json) {
    json_t *o = json_pack("{s:I}", "line", (json_int_t)ln);
    if (id) json_object_set(o, "id", id);
    if (up != MN_UTF8_OK) {
      char why[96];
      snprintf(why, sizeof why, "invalid text: %s at byte %zu", mn_utf8_problem_str(up), bad);
      json_object_set_new(o, "lang", json_string("und"));
      json_object_set_new(o, "error", json_string(why));
    } else {
      json_t *sp = json_array();
      for (int i = 0; i < r.nspans; i++)
        json_array_append_new(sp, json_pack("{s:s, s:I, s:I}", "lang", r.spans[i].lang, "start",
                                            (json_int_t)r.spans[i].start, "end",
                                            (json_int_t)r.spans[i].end));
      json_t *res = json_pack("{s:s, s:f, s:s, s:f, s:f, s:b, s:o}", "lang", r.lang, "confidence",
                              r.confidence, "second", r.second, "second_confidence",
                              r.second_confidence, "fit", r.fit, "mixed", r.mixed, "spans", sp);
      json_object_update(o, res);
      json_decref(res);
    }
    emit(o);
  } else if (up != MN_UTF8_OK) {
    printf("und\t0.000\tinvalid text: %s at byte %zu\n", mn_utf8_problem_str(up), bad);
  } else {
    printf("%s\t%.3f", r.lang, r.confidence);
    if (r.mixed) {
      printf("\tmixed:");
      for (int i = 0; i < r.nspans; i++)
        printf(" %s[%zu,%zu)", r.spans[i].lang, r.spans[i].start, r.spans[i].end);
    }
    printf("\n");
  }
  json_decref(rec);
}

static int cmd_lid(worker *w, opts *o)
{
  if (o->npos > 0 && strcmp(o->pos[0], "train") == 0) return cmd_lid_train(o);
  if (!o->model || o->npos > 1)
    return usage("lid needs --model MODEL (from \"mnemo lid train\") and at most one FILE");
  mn_error err = {0};
  lid_model *m = NULL;
  if (lid_load(o->model, &m, &err) != MN_OK) return fail(&err);
  FILE *f = o->npos ? fopen(o->pos[0], "r") : stdin;
  if (!f) {
    lid_free(m);
    mn_error_set(&err, MN_ERR_IO, "cannot open \"%s\": %s", o->pos[0], strerror(errno));
    return fail(&err);
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t got;
  int64_t ln = 0;
  while ((got = getline(&line, &cap, f)) > 0)
    lid_line(m, line, (size_t)got, ++ln, w->json || o->json);
  int code = ferror(f) ? EXIT_FAIL : EXIT_OK;
  if (code != EXIT_OK) fprintf(stderr, "mnemo: cannot read %s\n", o->npos ? o->pos[0] : "stdin");
  free(line);
  if (f != stdin) fclose(f);
  lid_free(m);
  return code;
}

/* ---------------------------------------------------------------- triage */

static int cmd_triage(worker *w, opts *o)
{
  if (!o->checkpoint || !o->model || !o->typical || o->npos > 1)
    return usage("triage needs --checkpoint CKPT --model LID --typical FILE [--heldout JSONL] "
                 "and at most one FILE");
  mn_error err = {0};
  triage_config c = {.checkpoint = o->checkpoint,
                     .lid = o->model,
                     .typical = o->typical,
                     .heldout = o->heldout,
                     .max_text_bytes = w->cfg.triage.max_text_bytes,
                     .group_similarity = w->cfg.triage.group_similarity,
                     .seq_len = (int)w->cfg.train.seq_len};
  FILE *f = o->npos ? fopen(o->pos[0], "r") : stdin;
  if (!f) {
    mn_error_set(&err, MN_ERR_IO, "cannot open \"%s\": %s", o->pos[0], strerror(errno));
    return fail(&err);
  }
  mn_status rc = triage_run(&c, f, o->npos ? o->pos[0] : "stdin", stdout, &err);
  if (f != stdin) fclose(f);
  return rc == MN_OK ? EXIT_OK : fail(&err);
}

/* ---------------------------------------------------------------- main */

static void help(FILE *f)
{
  fprintf(f,
          "usage: mnemo [--config FILE] [--set KEY=VALUE]... [--json] COMMAND [ARGS]\n\n"
          "the compute worker of mnemo: files in, files out, no database\n\n"
          "commands:\n"
          "  shard --out FILE [--split train|heldout|all] [--tags TSV] JSONL...\n"
          "                       documents {\"lang\", \"text\", \"split\"?} into a token shard;\n"
          "                       --split by each record's stored \"split\" (train|heldout),\n"
          "                       else by the hash rule at ingest.heldout_fraction\n"
          "  pretrain --out DIR [--resume CKPT] [--steps N] SHARD...\n"
          "                       train a model; DIR/model.safetensors (+ .opt) is resumable;\n"
          "                       --steps N stops after step N of train.steps\n"
          "  eval --checkpoint CKPT [--per-doc] [--max-tokens N] SHARD...\n"
          "                       bits per byte per language (and NLL per document)\n"
          "  eval --checkpoint CKPT --sets SET[,SET] [--per-doc] [--cache DIR]\n"
          "                       bits per byte per language and kind of item (and NLL per\n"
          "                       item), cached per (checkpoint, set version)\n"
          "  evalset --out SET [--tags TSV | --checkpoint CKPT] [--parallel FILE [--reference L]]\n"
          "          [--probes FILE]"
          " [--max-items N] [--max-item-bytes B] [HELDOUT.jsonl...]\n"
          "                       a versioned, checksummed evaluation set: held-out documents\n"
          "                       (each record's stored \"split\"; a record without one by\n"
          "                       the hash rule at ingest.heldout_fraction), parallel items,\n"
          "                       report probes\n"
          "  guard --baseline CKPT --candidate CKPT --sets SET[,SET] [--cache DIR]\n"
          "        [--must-improve L,L] [--history VERDICT,...] [--out VERDICT.json]\n"
          "                       every per-language guard (guards.*): exit 0 pass, 3 fail\n"
          "  lid train --out MODEL [--max-bytes N] TRAIN.jsonl...\n"
          "                       a language identifier from {\"lang\", \"text\"} records\n"
          "  lid --model MODEL [--json] [FILE]\n"
          "                       the language of each line (or JSONL \"text\"), its\n"
          "                       confidence, and the spans of a code-switched text\n"
          "  triage --checkpoint CKPT --model LID --typical FILE [--heldout JSONL] [FILE]\n"
          "                       user reports (JSONL from mnemod): checks, language, groups of\n"
          "                       near-duplicates, severity against typical held-out text\n"
          "  generate --checkpoint CKPT --lang L [--prompt P] [--tokens N]\n"
          "           [--temperature T] [--top-k K] [--seed S]\n"
          "  bench [--steps N] [--stages] [--ewc] [--device cpu|cuda [--math fp32|tf32|bf16]]\n"
          "                       tokens/s and GFLOP/s of a training step; --stages: the\n"
          "                       step time with the top k blocks trainable (unfreezing);\n"
          "                       --ewc: with the EWC penalty fused into the update\n"
          "                       --device cuda: on the GPU, tokens/s and MFU against the\n"
          "                       card's dense bf16 peak (--math: how products compute;\n"
          "                       weights stay fp32)\n"
          "  finetune --spec JOB.yaml --out DIR [--resume CKPT] [--steps N] SHARD...\n"
          "                       refresh finetune.baseline on fresh shards: replayed windows,\n"
          "                       EWC, progressive unfreezing (finetune.* keys); resumable\n"
          "  fisher --checkpoint CKPT --out FILE [--windows N] [--weighting equal|share]\n"
          "         [--previous FILE [--gamma G]] SHARD...\n"
          "                       the diagonal Fisher of the weights, per language, for EWC;\n"
          "                       --previous: gamma (default 0.9) * that + this one\n"
          "  replay absorb --store FILE --capacity N SHARD...\n"
          "                       offer the shards' windows (train.seq_len + 1 tokens) to\n"
          "                       each language's reservoir; the store is replaced atomically\n"
          "  replay verify STORE  check a store whole; windows held and seen per language\n"
          "  export-hf CKPT DIR   config.json + model.safetensors for GPT2LMHeadModel\n"
          "  import-llmc FILE OUT an llm.c fp32 GPT-2 checkpoint into a mnemo checkpoint\n\n"
          "The model and training come from the config (model.*, train.*; presets in\n"
          "configs/models/).  Progress is JSON lines on stdout, or a progress line on a\n"
          "terminal.  Exit status: 0 done, 1 failure, 2 usage, 3 a guard said no,\n"
          "75 interrupted (resumable).\n");
}

int main(int argc, char **argv)
{
  worker w = {0};
  mn_error err = {0};
  const char *config_path = getenv("MNEMO_CONFIG");
  const char *sets[64];
  int nsets = 0, i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      help(stdout);
      return EXIT_OK;
    } else if (strcmp(argv[i], "--json") == 0) {
      w.json = true;
    } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
      config_path = argv[++i];
    } else if (strcmp(argv[i], "--set") == 0 && i + 1 < argc && nsets < 64) {
      sets[nsets++] = argv[++i];
    } else {
      return usage("unknown or incomplete option \"%s\"", argv[i]);
    }
  }
  if (i >= argc) {
    help(stderr);
    return EXIT_USAGE;
  }
  const char *cmd = argv[i];
  opts o = {0};
  if (strcmp(cmd, "--help") == 0) {
    help(stdout);
    return EXIT_OK;
  }
  if (parse(argc - i - 1, argv + i + 1, &o) != 0) return EXIT_USAGE;
  if (o.spec) config_path = o.spec; /* a job spec is a config file: it replaces --config */
  mn_status rc = config_path && *config_path ? mn_config_load_file(config_path, &w.cfg, &err)
                                             : mn_config_init(&w.cfg, &err);
  if (rc != MN_OK) return fail(&err);
  for (int s = 0; s < nsets; s++) {
    char key[128];
    const char *eq = strchr(sets[s], '=');
    if (!eq || (size_t)(eq - sets[s]) >= sizeof key) {
      mn_config_fini(&w.cfg);
      return usage("--set wants KEY=VALUE, got \"%s\"", sets[s]);
    }
    snprintf(key, sizeof key, "%.*s", (int)(eq - sets[s]), sets[s]);
    if (mn_config_set(&w.cfg, key, eq + 1, "--set", &err) != MN_OK) {
      mn_config_fini(&w.cfg);
      return fail(&err);
    }
  }
  mn_config_apply_log(&w.cfg);
  int code;
  if (strcmp(cmd, "shard") == 0) {
    code = cmd_shard(&w, &o);
  } else if (strcmp(cmd, "pretrain") == 0) {
    code = cmd_pretrain(&w, &o);
  } else if (strcmp(cmd, "eval") == 0) {
    code = cmd_eval(&w, &o);
  } else if (strcmp(cmd, "guard") == 0) {
    code = cmd_guard(&w, &o);
  } else if (strcmp(cmd, "evalset") == 0) {
    code = cmd_evalset(&w, &o);
  } else if (strcmp(cmd, "generate") == 0) {
    code = cmd_generate(&w, &o);
  } else if (strcmp(cmd, "bench") == 0) {
    code = cmd_bench(&w, &o);
  } else if (strcmp(cmd, "replay") == 0) {
    code = cmd_replay(&w, &o);
  } else if (strcmp(cmd, "fisher") == 0) {
    code = cmd_fisher(&w, &o);
  } else if (strcmp(cmd, "finetune") == 0) {
    code = cmd_finetune(&w, &o);
  } else if (strcmp(cmd, "lid") == 0) {
    code = cmd_lid(&w, &o);
  } else if (strcmp(cmd, "triage") == 0) {
    code = cmd_triage(&w, &o);
  } else if (strcmp(cmd, "export-hf") == 0 || strcmp(cmd, "import-llmc") == 0) {
    bool exp = cmd[0] == 'e';
    if (o.npos != 2) {
      code = usage("%s takes two arguments: %s", cmd, exp ? "CKPT DIR" : "FILE OUT");
    } else if ((exp ? export_hf(o.pos[0], o.pos[1], &err)
                    : import_llmc(o.pos[0], o.pos[1], &err)) != MN_OK) {
      code = fail(&err);
    } else {
      emit(json_pack("{s:s, s:s, s:s}", "event", cmd, "from", o.pos[0], "to", o.pos[1]));
      code = EXIT_OK;
    }
  } else {
    code = usage("unknown command \"%s\"", cmd);
  }
  mn_config_fini(&w.cfg);
  return code;
}
