/*
 * cmd_eval.c -- `mnemo eval`, `mnemo evalset` and `mnemo guard`: scoring a checkpoint on
 * shards or on evaluation sets, building evaluation sets, and the guards' verdict.
 */
#define _XOPEN_SOURCE 700
#include "guards/verdict.h"
#include "worker/worker_int.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const worker_opt worker__eval_opts[] = {
    WORKER_TEXT("checkpoint", checkpoint, "CKPT", "the checkpoint to score"),
    WORKER_FLAG("per-doc", per_doc, "also one record per document (per item with --sets)"),
    WORKER_COUNT_UP_TO("max-tokens", max_tokens, "N", WORKER_BIG,
                       "at most N tokens of each language's section"),
    WORKER_TEXT("sets", sets, "SET[,SET]", "score evaluation sets instead of shards"),
    WORKER_TEXT("cache", cache, "DIR", "scores cached per (checkpoint, set version)"),
    WORKER_OPT_END,
};

const worker_opt worker__evalset_opts[] = {
    WORKER_TEXT("out", out, "SET", "the set to write (atomically)"),
    WORKER_TEXT("tags", tags, "TSV", "only the languages of this tag table"),
    WORKER_TEXT("checkpoint", checkpoint, "CKPT",
                "only the languages this checkpoint has tags for"),
    WORKER_TEXT("parallel", parallel, "FILE",
                "parallel items, JSONL {\"lang\", \"item\", \"text\"}"),
    WORKER_TEXT("reference", reference, "L",
                "the language whose characters normalise parallel items (guards.parity_reference)"),
    WORKER_TEXT("probes", probes, "FILE", "report probes, JSONL from mnemod"),
    WORKER_COUNT("max-items", max_items, "N", "held-out documents per language (0: all)"),
    WORKER_COUNT_UP_TO("max-item-bytes", max_item_bytes, "B", WORKER_BIG,
                       "a held-out document's first B bytes only (0: all of it)"),
    WORKER_OPT_END,
};

const worker_opt worker__guard_opts[] = {
    WORKER_TEXT("baseline", baseline, "CKPT", "the model in production"),
    WORKER_TEXT("candidate", candidate, "CKPT", "the model that would replace it"),
    WORKER_TEXT("sets", sets, "SET[,SET]", "the evaluation sets both are scored on"),
    WORKER_TEXT("cache", cache, "DIR", "scores cached per (checkpoint, set version)"),
    WORKER_TEXT("must-improve", must_improve, "L,L",
                "languages that had fresh data and must improve (guards.must_improve)"),
    WORKER_TEXT("history", history, "VERDICT,...",
                "earlier verdicts: the best so far per language"),
    WORKER_TEXT("out", out, "VERDICT.json", "also write the verdict here (atomically)"),
    WORKER_OPT_END,
};

/* ---------------------------------------------------------------- eval */

/* the progress line of scoring a set on a terminal: what is scored (a checkpoint, as whom),
 * predictions done of all of them, and the items they belong to */
typedef struct score_progress {
  mn_progress line;
  const char *who; /* "" or "baseline " */
  const char *ckpt;
  size_t items;
} score_progress;

static void on_score_progress(int64_t done, int64_t total, void *ctx)
{
  score_progress *p = ctx;
  mn_progress_update(&p->line, (double)done, (double)total,
                     "scoring %lld/%lld tokens of %zu items with %s%s", (long long)done,
                     (long long)total, p->items, p->who, p->ckpt);
}

typedef struct lang_score {
  double bits;
  int64_t bytes;
} lang_score;

/* score -- add the text targets' bits of one window [tag, x...] -> y to s, and their bytes */
static void score(gpt *m, const tokenizer *tok, const int32_t *x, const int32_t *y, int T,
                  lang_score *s)
{
  double *bits = &s->bits;
  int64_t *bytes = &s->bytes;
  evalset_score_rows(m, tok, x, y, 1, T, &T, &bits, &bytes);
}

/* worker__scoring_model -- a checkpoint loaded into a model that takes one sequence of *T tokens
 * (train.seq_len, at most the model's positions), on the configured threads */
mn_status worker__scoring_model(const worker_ctx *w, const char *path, ckpt_meta *meta, gpt **m,
                                int *T, mn_error *err)
{
  kernels_cpu_set_threads((int)w->cfg.train.threads);
  mn_status rc = ckpt_read_meta(path, meta, err);
  if (rc != MN_OK) return rc;
  *T = meta->config.max_seq_len;
  if (w->cfg.train.seq_len < *T) *T = (int)w->cfg.train.seq_len;
  const kernels_backend *k;
  if ((rc = worker__train_backend(&w->cfg, &k, err)) != MN_OK ||
      (rc = gpt_create(&meta->config, 1, *T, 0, k, m, err)) != MN_OK)
    return rc;
  return ckpt_load(path, *m, meta, err);
}

/* ---------------------------------------------------------------- evaluation sets */

int worker__cmd_evalset(worker_ctx *w, worker_args *o)
{
  mn_error err = {0};
  tok_tags tags = {0};
  if (!o->out || (o->npos < 1 && !o->parallel && !o->probes))
    return worker__usage("evalset needs --out SET and held-out JSONL files, --parallel FILE or "
                         "--probes FILE");
  if (o->tags && o->checkpoint)
    return worker__usage("evalset takes the languages from --tags or from --checkpoint, not both");
  if (o->tags && tok_tags_read(o->tags, &tags, &err) != MN_OK) return worker__fail(&err);
  if (o->checkpoint) { /* the languages the model has a tag for: those it can be scored on */
    ckpt_meta meta;
    if (ckpt_read_meta(o->checkpoint, &meta, &err) != MN_OK) return worker__fail(&err);
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
  if (evalset_build(&src, o->out, &n, &err) != MN_OK) return worker__fail(&err);
  worker__emit(json_pack(
      "{s:s, s:s, s:s, s:I, s:I, s:I, s:{s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I}}", "event",
      "evalset", "out", o->out, "sha256", n.sha256, "heldout", (json_int_t)n.items[EVAL_HELDOUT],
      "parallel", (json_int_t)n.items[EVAL_PARALLEL], "probes", (json_int_t)n.items[EVAL_PROBE],
      "left_out", "not_heldout", (json_int_t)n.not_heldout, "other_language",
      (json_int_t)n.other_language, "no_reference", (json_int_t)n.no_reference, "duplicates",
      (json_int_t)n.duplicates, "over_cap", (json_int_t)n.over_cap, "split", "stored",
      (json_int_t)n.split_stored, "hashed", (json_int_t)n.split_hashed));
  return MN_EXIT_OK;
}

/* load_sets -- the comma-separated sets of --sets as one (evalset_load_many) */
static mn_status load_sets(const char *list, evalset *all, mn_error *err)
{
  char buf[4096];
  const char *paths[256];
  int n = 0;
  memset(all, 0, sizeof *all);
  if (!list || strlen(list) >= sizeof buf)
    return mn_error_set(err, MN_ERR_USAGE, "--sets wants SET[,SET...]");
  snprintf(buf, sizeof buf, "%s", list);
  for (char *p = buf, *comma; p; p = comma ? comma + 1 : NULL) {
    if ((comma = strchr(p, ',')) != NULL) *comma = '\0';
    if (!*p) continue;
    if (n == (int)(sizeof paths / sizeof paths[0]))
      return mn_error_set(err, MN_ERR_USAGE, "--sets names more than %d sets", n);
    paths[n++] = p;
  }
  return evalset_load_many(paths, n, all, err);
}

/* eval_sets -- `eval --sets`: bits per byte per language and kind; --per-doc: every item */
static int eval_sets(worker_ctx *w, worker_args *o)
{
  mn_error err = {0};
  evalset s;
  if (load_sets(o->sets, &s, &err) != MN_OK) return worker__fail(&err);
  kernels_cpu_set_threads((int)w->cfg.train.threads);
  double *bits = calloc(s.n ? s.n : 1, sizeof *bits);
  ckpt_meta meta;
  bool cached = false;
  score_progress sp = {.who = "", .ckpt = o->checkpoint, .items = s.n};
  mn_progress_init(&sp.line, worker__progress_out(w));
  evalset_run run = {.cache_dir = o->cache,
                     .seq_len = (int)w->cfg.train.seq_len,
                     .on_progress = on_score_progress,
                     .ctx = &sp};
  double t0 = mn_monotonic_ms();
  int rc = MN_EXIT_FAIL;
  if (!bits) {
    mn_error_set(&err, MN_ERR_NOMEM, "out of memory");
    goto out;
  }
  if (worker__train_backend(&w->cfg, &run.backend, &err) != MN_OK) goto out;
  mn_status st = evalset_score_checkpoint(o->checkpoint, &s, &run, bits, &meta, &cached, &err);
  mn_progress_end(&sp.line);
  if (st != MN_OK) goto out;
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
  worker__emit(json_pack("{s:s, s:s, s:s, s:s, s:b, s:o, s:I, s:I, s:f, s:f, s:f}", "event", "eval",
                         "checkpoint", o->checkpoint, "weights", meta.sha256, "set", s.sha256,
                         "cached", cached, "languages", langs, "bytes", (json_int_t)bytes_all,
                         "predictions", (json_int_t)predictions, "seconds", secs, "scoring_seconds",
                         run.scoring_s, "tokens_per_s",
                         run.scoring_s > 0 ? (double)predictions / run.scoring_s : 0.0));
  rc = MN_EXIT_OK;
out:
  free(bits);
  evalset_fini(&s);
  return rc == MN_EXIT_OK ? rc : worker__fail(&err);
}

/* best_so_far -- guard_best_so_far of the comma-separated verdicts of --history */
static mn_status best_so_far(const char *list, const char *set_sha, json_t **best, mn_error *err)
{
  char buf[4096];
  const char *paths[256];
  size_t n = 0;
  *best = NULL;
  if (!list || !*list) return MN_OK;
  if (strlen(list) >= sizeof buf) return mn_error_set(err, MN_ERR_USAGE, "--history is too long");
  snprintf(buf, sizeof buf, "%s", list);
  for (char *p = buf, *comma; p; p = comma ? comma + 1 : NULL) {
    if ((comma = strchr(p, ',')) != NULL) *comma = '\0';
    if (!*p) continue;
    if (n == sizeof paths / sizeof paths[0])
      return mn_error_set(err, MN_ERR_USAGE, "--history names more than %zu verdicts", n);
    paths[n++] = p;
  }
  return guard_best_so_far(paths, n, set_sha, best, err);
}

/* guard -- baseline and candidate scored on the same sets, then every guard rule */
int worker__cmd_guard(worker_ctx *w, worker_args *o)
{
  mn_error err = {0};
  if (!o->baseline || !o->candidate || !o->sets)
    return worker__usage("guard needs --baseline CKPT, --candidate CKPT and --sets SET[,SET...]");
  evalset s;
  if (load_sets(o->sets, &s, &err) != MN_OK) return worker__fail(&err);
  kernels_cpu_set_threads((int)w->cfg.train.threads);
  double *bits[2] = {calloc(s.n + 1, sizeof(double)), calloc(s.n + 1, sizeof(double))};
  guard_item *items = calloc(s.n + 1, sizeof *items);
  json_t *best = NULL, *v = NULL;
  ckpt_meta meta[2];
  bool cached[2];
  int rc = MN_EXIT_FAIL;
  const char *ck[2] = {o->baseline, o->candidate};
  score_progress sp = {.items = s.n};
  mn_progress_init(&sp.line, worker__progress_out(w));
  evalset_run run = {.cache_dir = o->cache,
                     .seq_len = (int)w->cfg.train.seq_len,
                     .on_progress = on_score_progress,
                     .ctx = &sp};
  if (!bits[0] || !bits[1] || !items) {
    mn_error_set(&err, MN_ERR_NOMEM, "out of memory");
    goto out;
  }
  if (worker__train_backend(&w->cfg, &run.backend, &err) != MN_OK) goto out;
  for (int m = 0; m < 2; m++) {
    double t0 = mn_monotonic_ms();
    sp.who = m ? "candidate " : "baseline ", sp.ckpt = ck[m];
    mn_status st = evalset_score_checkpoint(ck[m], &s, &run, bits[m], &meta[m], &cached[m], &err);
    mn_progress_end(&sp.line); /* one line each */
    if (st != MN_OK) goto out;
    if (!w->json && isatty(STDOUT_FILENO)) continue;
    worker__emit(json_pack("{s:s, s:s, s:s, s:b, s:f}", "event", "scored", "checkpoint", ck[m],
                           "weights", meta[m].sha256, "cached", cached[m], "seconds",
                           (mn_monotonic_ms() - t0) / 1e3));
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
    worker__emit(json_incref(v));
  }
  rc = json_is_true(json_object_get(v, "pass")) ? MN_EXIT_OK : MN_EXIT_GUARD;
out:
  json_decref(v), json_decref(best);
  free(bits[0]), free(bits[1]), free(items);
  evalset_fini(&s);
  return rc == MN_EXIT_FAIL ? worker__fail(&err) : rc;
}

int worker__cmd_eval(worker_ctx *w, worker_args *o)
{
  if (o->sets && (o->npos || o->max_tokens))
    return worker__usage("eval scores --sets or shards, not both (--max-tokens is for shards)");
  if (o->cache && !o->sets) return worker__usage("eval --cache is for --sets");
  if (o->sets && o->checkpoint) return eval_sets(w, o);
  mn_error err = {0};
  shard *shards = NULL;
  gpt *m = NULL;
  tokenizer *tkz = NULL;
  int rc = MN_EXIT_FAIL;
  ckpt_meta meta;
  if (!o->checkpoint || o->npos < 1)
    return worker__usage("eval needs --checkpoint FILE and shards");
  int T = 0;
  if (worker__scoring_model(w, o->checkpoint, &meta, &m, &T, &err) != MN_OK) goto out;
  if (tok_load(o->checkpoint, &tkz, NULL, &err) != MN_OK) goto out;
  if (shard_read_many((const char *const *)o->pos, o->npos, &shards, &err) != MN_OK) goto out;
  for (int s = 0; s < o->npos; s++)
    if (shard_fits(&shards[s], o->pos[s], &meta, o->checkpoint, &err) != MN_OK) goto out;
  int32_t *x = malloc(sizeof(int32_t) * (size_t)T), *y = malloc(sizeof(int32_t) * (size_t)T);
  json_t *langs = json_array();
  /* progress on a terminal: tokens of all sections (each up to --max-tokens) */
  mn_progress line;
  mn_progress_init(&line, worker__progress_out(w));
  int64_t limit = o->max_tokens ? o->max_tokens : INT64_MAX, all = 0, before = 0;
  for (int si = 0; si < o->npos; si++)
    for (uint32_t k = 0; k < shards[si].nsections; k++)
      all += (int64_t)shards[si].sections[k].count < limit ? (int64_t)shards[si].sections[k].count
                                                           : limit;
  for (int si = 0; si < o->npos; si++) {
    for (uint32_t k = 0; k < shards[si].nsections; k++) {
      const shard_section *sec = &shards[si].sections[k];
      const uint32_t *tok = shards[si].tokens + sec->first;
      int tag = sec->tag;
      lang_score total = {0};
      int64_t used = 0, mine = (int64_t)sec->count < limit ? (int64_t)sec->count : limit;
      /* documents: [tag, tokens..., eot]; each scored from its tag, in windows of T */
      uint64_t d0 = 0;
      int64_t doc = 0;
      while (d0 < sec->count && used < limit) {
        uint64_t d1 = d0 + 1;
        while (d1 < sec->count && tok[d1] != shards[si].eot)
          d1++;
        lang_score ds = {0};
        for (uint64_t p = d0 + 1; p <= d1 && p < sec->count; p += (uint64_t)T) {
          int n = (int)((d1 + 1 - p) < (uint64_t)T ? (d1 + 1 - p) : (uint64_t)T);
          x[0] = tag;
          for (int i = 1; i < n; i++)
            x[i] = (int32_t)tok[p + (uint64_t)i - 1];
          for (int i = 0; i < n; i++)
            y[i] = (int32_t)tok[p + (uint64_t)i];
          score(m, tkz, x, y, n, &ds);
          used += n;
          int64_t done = before + (used < mine ? used : mine);
          mn_progress_update(&line, (double)done, (double)all,
                             "scoring %lld/%lld tokens (%s) with %s", (long long)done,
                             (long long)all, sec->code, o->checkpoint);
        }
        if (o->per_doc)
          worker__emit(json_pack("{s:s, s:s, s:I, s:I, s:f}", "event", "doc", "lang", sec->code,
                                 "doc", (json_int_t)doc, "bytes", (json_int_t)ds.bytes, "nll_bits",
                                 ds.bits));
        total.bits += ds.bits;
        total.bytes += ds.bytes;
        doc++;
        d0 = d1 + 1;
      }
      before += mine; /* a document's tag is not a prediction: the section's end is its all */
      mn_progress_update(&line, (double)before, (double)all,
                         "scoring %lld/%lld tokens (%s) with %s", (long long)before, (long long)all,
                         sec->code, o->checkpoint);
      double bpb = total.bytes ? total.bits / (double)total.bytes : NAN;
      json_array_append_new(langs, json_pack("{s:s, s:I, s:I, s:f}", "lang", sec->code, "documents",
                                             (json_int_t)doc, "bytes", (json_int_t)total.bytes,
                                             "bits_per_byte", isfinite(bpb) ? bpb : -1.0));
    }
  }
  mn_progress_end(&line);
  if (w->json || !isatty(STDOUT_FILENO)) {
    worker__emit(json_pack("{s:s, s:s, s:o}", "event", "eval", "checkpoint", o->checkpoint,
                           "languages", langs));
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
  rc = MN_EXIT_OK;
  free(x);
  free(y);
  if (rc != MN_EXIT_OK) json_decref(langs);
out:
  shard_destroy_many(shards, o->npos);
  gpt_destroy(m);
  tok_destroy(tkz);
  return rc == MN_EXIT_OK ? rc : worker__fail(&err);
}
