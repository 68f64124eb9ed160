/*
 * runner_steps.c -- what each step of a refresh and of a promotion does (runner.c runs
 * them in order, one job at a time, and supervises the worker a step starts).
 *
 * A step either does its work here (rows, file moves) or fills in the worker's arguments
 * and sets *spawned.  Every step finds its output when it was done before, so an attempt
 * after a crash re-runs the list from the top without repeating work.  Paths are built
 * from ids under daemon.data_dir, never from text in the database.
 */
#define _GNU_SOURCE
#include "common/protocol.h"
#include "daemon/card.h"
#include "daemon/runner_int.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---------------------------------------------------------------- paths */

void runner__path_job(const runner *r, char *out, size_t n, const char *file)
{
  snprintf(out, n, "%s/jobs/%lld%s%s", r->cfg->daemon.data_dir, (long long)r->job.id,
           file ? "/" : "", file ? file : "");
}

void runner__path_ckpt(const runner *r, int64_t id, char *out, size_t n, const char *file)
{
  snprintf(out, n, "%s/checkpoints/%lld%s%s", r->cfg->daemon.data_dir, (long long)id,
           file ? "/" : "", file ? file : "");
}

bool runner__exists(const char *p)
{
  struct stat st;
  return stat(p, &st) == 0;
}

static mn_status mkdirs(const char *path, mn_error *err)
{
  char tmp[PATH_MAX];
  snprintf(tmp, sizeof tmp, "%s", path);
  for (char *s = tmp + 1; *s; s++)
    if (*s == '/') {
      *s = 0;
      if (mkdir(tmp, 0750) != 0 && errno != EEXIST) break;
      *s = '/';
    }
  if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
    return mn_error_set(err, MN_ERR_IO, "could not create \"%s\": %s", path, strerror(errno));
  return MN_OK;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
  (void)st, (void)flag, (void)f;
  remove(p);
  return 0;
}

void runner__rm_tree(const char *p)
{
  nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---------------------------------------------------------------- arguments */

void runner__args_reset(runner *r)
{
  for (int i = 0; i < r->argc; i++)
    free(r->argv[i]);
  r->argc = 0;
  r->argv[0] = NULL;
}

static void arg(runner *r, const char *s)
{
  if (r->argc < MAX_ARGS - 1) {
    r->argv[r->argc++] = strdup(s);
    r->argv[r->argc] = NULL;
  }
}

static void arg_int(runner *r, int64_t v)
{
  char b[32];
  snprintf(b, sizeof b, "%lld", (long long)v);
  arg(r, b);
}

/* worker_argv -- mnemo --config JOB.yaml --json COMMAND: the job's frozen config */
static void worker_argv(runner *r, const char *command)
{
  char spec[PATH_MAX];
  runner__path_job(r, spec, sizeof spec, "job.yaml");
  runner__args_reset(r);
  arg(r, r->worker);
  arg(r, "--config");
  arg(r, spec);
  arg(r, command);
}

/* ---------------------------------------------------------------- database helpers */

/* export_jsonl -- db_export_jsonl, skipped when the file exists: a job's exports are fixed by
 * its watermark, so an earlier attempt's are as good (*rows -1 then) */
static mn_status export_jsonl(PGconn *c, const char *sql, int n, const char *const *p,
                              const char *path, int64_t *rows, mn_error *err)
{
  *rows = -1;
  if (runner__exists(path)) return MN_OK;
  return db_export_jsonl(c, sql, n, p, path, rows, err);
}

/* write_spec -- the job's config, frozen once: a retry trains the same run it resumes;
 * boosts: finetune.report_boosts (NULL: none); a guard's retry protects what its job says
 * (finetune.guard_boosts) */
static mn_status write_spec(runner *r, bool finetune, const char *boosts, mn_error *err)
{
  char path[PATH_MAX], p[PATH_MAX];
  runner__path_job(r, path, sizeof path, "job.yaml");
  if (runner__exists(path)) return MN_OK;
  mn_config cfg;
  mn_status rc = mn_config_init(&cfg, err);
  mn_buf y;
  mn_buf_init(&y, 1 << 20);
  if (rc == MN_OK) rc = mn_config_dump_worker(r->cfg, &y, err);
  mn_config_fini(&cfg);
  /* the dump is the daemon's config; the job's own paths are appended (the last value of
   * a key wins only in flow maps, so the dump is loaded and amended instead) */
  if (rc == MN_OK) rc = mn_config_load_buffer("job.yaml", y.data, y.len, &cfg, err);
  if (rc == MN_OK && finetune) {
    runner__path_ckpt(r, r->base, p, sizeof p, "model.safetensors");
    rc = mn_config_set_literal(&cfg, "finetune.baseline", p, "mnemod", err);
    runner__path_ckpt(r, r->base, p, sizeof p, "fisher.safetensors");
    if (rc == MN_OK) rc = mn_config_set_literal(&cfg, "finetune.fisher", p, "mnemod", err);
    runner__path_ckpt(r, r->base, p, sizeof p, "replay.store");
    if (rc == MN_OK) rc = mn_config_set_literal(&cfg, "finetune.replay_store", p, "mnemod", err);
    if (rc == MN_OK && boosts && *boosts)
      rc = mn_config_set_literal(&cfg, "finetune.report_boosts", boosts, "mnemod", err);
    if (rc == MN_OK && r->job.protect[0])
      rc = mn_config_set_literal(&cfg, "finetune.guard_boosts", r->job.protect, "mnemod", err);
  }
  if (rc == MN_OK) {
    mn_buf_reset(&y);
    rc = mn_config_dump_worker(&cfg, &y, err);
  }
  if (rc == MN_OK) rc = mn_write_file_atomic(path, y.data, y.len, 0640, err);
  mn_config_fini(&cfg);
  mn_buf_fini(&y);
  return rc;
}

/* export_tags -- the database's tag table, which every shard of the job is made with (its
 * step passes --tags), unless an earlier attempt wrote it */
static mn_status export_tags(runner *r, PGconn *c, mn_error *err)
{
  char path[PATH_MAX];
  int64_t n;
  runner__path_job(r, path, sizeof path, "tags.tsv");
  if (runner__exists(path)) return MN_OK;
  return db_export_tags(c, path, &n, err);
}

/* ---------------------------------------------------------------- refresh steps */

/* report_boosts -- "kat:1.5,swh:1.25": the sampling factors of languages with accepted
 * reports (mnemo.report_boosts, triage.*) */
static mn_status report_boosts(runner *r, PGconn *c, char *out, size_t n, mn_error *err)
{
  char per[32], half[32], max[32];
  snprintf(per, sizeof per, "%.17g", r->cfg->triage.boost_per_report);
  snprintf(half, sizeof half, "%.17g", r->cfg->triage.boost_half_life_h);
  snprintf(max, sizeof max, "%.17g", r->cfg->triage.max_boost);
  PGresult *res;
  mn_status rc =
      db_query(c,
               "SELECT string_agg(lang || ':' || round(factor::numeric, 4), ','"
               " ORDER BY lang) FROM mnemo.report_boosts($1::float8, $2::float8,"
               " $3::float8) WHERE factor > 1",
               3, (const char *const[]){per, half, max}, &res, "read the report boosts", err);
  if (rc != MN_OK) return rc;
  snprintf(out, n, "%s", PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0));
  PQclear(res);
  return MN_OK;
}

static mn_status st_prepare(runner *r, PGconn *c, bool *spawned, mn_error *err)
{
  (void)spawned;
  char id[32], wm[32], path[PATH_MAX];
  snprintf(id, sizeof id, "%lld", (long long)r->job.id);
  PGresult *res;
  mn_status rc = jobs_begin(c, &r->job, r->owner, err);
  if (rc != MN_OK) return rc;
  /* the watermark is fixed by the first attempt: a retry trains on the same documents */
  const char *p1[] = {id};
  rc = db_query(c,
                "UPDATE mnemo.jobs SET watermark = coalesce(watermark,"
                " (SELECT coalesce(max(id), 0) FROM mnemo.documents)) WHERE id = $1::bigint"
                " RETURNING watermark,"
                " (SELECT count(*) FROM mnemo.documents d WHERE d.split = 'train'"
                "   AND d.consumed_by IS NULL AND d.id <= jobs.watermark),"
                " (SELECT count(*) FROM mnemo.checkpoints WHERE state = 'production')",
                1, p1, &res, "fix the refresh's watermark", err);
  bool prod = false;
  if (rc == MN_OK) {
    r->job.watermark = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    r->nfresh = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    prod = strcmp(PQgetvalue(res, 0, 2), "1") == 0;
    PQclear(res);
  }
  if (rc == MN_OK && !prod && r->job.ckpt == 0) { /* retrying would not help */
    rc = jobs_commit(c, err);
    r->cur = r->nsteps;
    if (rc == MN_OK)
      rc = jobs_finish(c, &r->job, r->owner, "failed",
                       "no production checkpoint to refresh: register one with mnemoctl bootstrap",
                       err);
    return rc;
  }
  if (rc == MN_OK && r->nfresh == 0 && r->job.ckpt == 0) {
    rc = jobs_commit(c, err);
    r->cur = r->nsteps; /* nothing to train on: done */
    if (rc == MN_OK) rc = jobs_finish(c, &r->job, r->owner, "succeeded", "no fresh documents", err);
    return rc;
  }
  snprintf(wm, sizeof wm, "%lld", (long long)r->job.watermark);
  const char *p2[] = {id, wm};
  if (rc == MN_OK)
    rc = db_query(c, "SELECT mnemo.checkpoint_create($1::bigint, $2::bigint)", 2, p2, &res,
                  "create the candidate's row", err);
  char cid[32] = "";
  if (rc == MN_OK) {
    r->job.ckpt = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    snprintf(cid, sizeof cid, "%lld", (long long)r->job.ckpt);
    /* a statement of its own: the row the function made is not in the snapshot of its call */
    rc = db_query(c, "SELECT parent_id FROM mnemo.checkpoints WHERE id = $1::bigint", 1,
                  (const char *const[]){cid}, &res, "read the candidate's parent", err);
  }
  if (rc == MN_OK) {
    r->base = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    rc = jobs_commit(c, err);
  } else {
    jobs_rollback(c);
  }
  if (rc != MN_OK) return rc;
  runner__path_job(r, path, sizeof path, NULL);
  rc = mkdirs(path, err);
  runner__path_ckpt(r, r->job.ckpt, path, sizeof path, NULL);
  if (rc == MN_OK) rc = mkdirs(path, err);
  if (rc == MN_OK) rc = export_tags(r, c, err);
  int64_t n;
  /* the fresh documents recorded with the candidate's row (mnemo.trained_on): what the
   * promotion will mark consumed, whatever commits later below the watermark */
  runner__path_job(r, path, sizeof path, "fresh.jsonl");
  if (rc == MN_OK)
    rc = export_jsonl(c,
                      "SELECT json_build_object('lang', d.lang, 'text', d.text)"
                      " FROM mnemo.documents d JOIN mnemo.checkpoints k ON k.id = $2::bigint"
                      " WHERE d.split = 'train' AND d.consumed_by IS NULL AND d.id <= $1::bigint"
                      " AND (NOT k.fresh_recorded OR EXISTS (SELECT 1 FROM mnemo.trained_on t"
                      " WHERE t.ckpt_id = k.id AND t.doc_id = d.id)) ORDER BY d.id",
                      2, (const char *const[]){wm, cid}, path, &n, err);
  /* the evaluation set's held-out documents: the newest eval_items per language, each with
   * its stored split, which the worker takes as it is (today's ingest.heldout_fraction may
   * not be the one they were ingested at) */
  char items[32];
  snprintf(items, sizeof items, "%lld", (long long)r->cfg->daemon.eval_items);
  runner__path_job(r, path, sizeof path, "heldout.jsonl");
  if (rc == MN_OK)
    rc = export_jsonl(c,
                      "SELECT json_build_object('lang', lang, 'text', text, 'split', split) FROM ("
                      " SELECT lang, text, split, id, row_number() OVER (PARTITION BY lang ORDER"
                      " BY id DESC) AS k FROM mnemo.documents WHERE split = 'heldout'"
                      " AND id <= $1::bigint) d WHERE k <= $2::int ORDER BY id",
                      2, (const char *const[]){wm, items}, path, &n, err);
  /* what the baseline was trained on, for its Fisher and replay store when it has none */
  char f1[PATH_MAX], f2[PATH_MAX], b[32];
  runner__path_ckpt(r, r->base, f1, sizeof f1, "fisher.safetensors");
  runner__path_ckpt(r, r->base, f2, sizeof f2, "replay.store");
  snprintf(b, sizeof b, "%lld", (long long)(r->cfg->daemon.fisher_windows * 4 + 16));
  runner__path_job(r, path, sizeof path, "past.jsonl");
  if (rc == MN_OK && (!runner__exists(f1) || !runner__exists(f2)))
    rc = export_jsonl(c,
                      "SELECT json_build_object('lang', lang, 'text', text) FROM ("
                      " SELECT lang, text, id, row_number() OVER (PARTITION BY lang ORDER BY id"
                      " DESC) AS k FROM mnemo.documents WHERE split = 'train'"
                      " AND consumed_by IS NOT NULL) d WHERE k <= $1::int ORDER BY id",
                      1, (const char *const[]){b}, path, &n, err);
  /* accepted reports: their groups' first reports become probes of their languages' guard
   * (fixed ones keep the bits they were fixed at), and their languages are replayed more */
  runner__path_job(r, path, sizeof path, "probes.jsonl");
  if (rc == MN_OK)
    rc = export_jsonl(c,
                      "SELECT json_build_object('report', id::text, 'lang', probe_lang, 'text',"
                      " text, 'expected', expected_text, 'status', status, 'fixed_bits',"
                      " fixed_bits) FROM mnemo.reports WHERE status IN ('accepted', 'fixed')"
                      " AND id = coalesce(group_id, id) ORDER BY id",
                      0, NULL, path, &n, err);
  char boosts[4096] = "";
  if (rc == MN_OK) rc = report_boosts(r, c, boosts, sizeof boosts, err);
  if (rc == MN_OK) rc = write_spec(r, true, boosts, err);
  return rc;
}

/* spawn_shard -- jsonl -> shard, unless the shard is there: the database's tags, the ids of
 * the production model's tokenizer */
static mn_status spawn_shard(runner *r, const char *in, const char *out, bool *spawned)
{
  char pin[PATH_MAX], pout[PATH_MAX], tags[PATH_MAX], tok[PATH_MAX];
  runner__path_job(r, pin, sizeof pin, in);
  runner__path_job(r, pout, sizeof pout, out);
  runner__path_job(r, tags, sizeof tags, "tags.tsv");
  runner__path_ckpt(r, r->base, tok, sizeof tok, "model.safetensors");
  if (runner__exists(pout) || !runner__exists(pin)) return MN_OK;
  worker_argv(r, "shard");
  arg(r, "--tags");
  arg(r, tags);
  arg(r, "--tokenizer");
  arg(r, tok);
  arg(r, "--out");
  arg(r, pout);
  arg(r, pin);
  *spawned = true;
  return MN_OK;
}

static mn_status st_shard(runner *r, PGconn *c, bool *spawned, mn_error *err)
{
  (void)c, (void)err;
  if (r->nfresh == 0) return MN_OK;
  return spawn_shard(r, "fresh.jsonl", "fresh.shard", spawned);
}

static mn_status st_shard_past(runner *r, PGconn *c, bool *spawned, mn_error *err)
{
  (void)c, (void)err;
  return spawn_shard(r, "past.jsonl", "past.shard", spawned);
}

static mn_status st_replay_base(runner *r, PGconn *c, bool *spawned, mn_error *err)
{
  (void)c, (void)err;
  char store[PATH_MAX], past[PATH_MAX];
  runner__path_ckpt(r, r->base, store, sizeof store, "replay.store");
  runner__path_job(r, past, sizeof past, "past.shard");
  if (runner__exists(store)) return MN_OK;
  worker_argv(r, "replay");
  arg(r, "absorb");
  arg(r, "--store");
  arg(r, store);
  arg(r, "--capacity");
  arg_int(r, r->cfg->daemon.replay_capacity);
  arg(r, past);
  *spawned = true;
  return MN_OK;
}

static mn_status st_fisher_base(runner *r, PGconn *c, bool *spawned, mn_error *err)
{
  (void)c, (void)err;
  char out[PATH_MAX], model[PATH_MAX], past[PATH_MAX];
  runner__path_ckpt(r, r->base, out, sizeof out, "fisher.safetensors");
  runner__path_ckpt(r, r->base, model, sizeof model, "model.safetensors");
  runner__path_job(r, past, sizeof past, "past.shard");
  if (runner__exists(out)) return MN_OK;
  worker_argv(r, "fisher");
  arg(r, "--checkpoint");
  arg(r, model);
  arg(r, "--windows");
  arg_int(r, r->cfg->daemon.fisher_windows);
  arg(r, "--out");
  arg(r, out);
  arg(r, past);
  *spawned = true;
  return MN_OK;
}

static mn_status st_finetune(runner *r, PGconn *c, bool *spawned, mn_error *err)
{
  (void)c, (void)err;
  char installed[PATH_MAX], out[PATH_MAX], resume[PATH_MAX], spec[PATH_MAX], shard[PATH_MAX];
  runner__path_ckpt(r, r->job.ckpt, installed, sizeof installed, "model.safetensors");
  if (runner__exists(installed)) return MN_OK;
  runner__path_job(r, out, sizeof out, "candidate");
  runner__path_job(r, resume, sizeof resume, "candidate/model.safetensors");
  runner__path_job(r, spec, sizeof spec, "job.yaml");
  runner__path_job(r, shard, sizeof shard, "fresh.shard");
  runner__args_reset(r);
  arg(r, r->worker);
  arg(r, "finetune");
  arg(r, "--spec");
  arg(r, spec);
  arg(r, "--out");
  arg(r, out);
  if (runner__exists(resume)) { /* an earlier attempt saved a checkpoint: go on from it */
    arg(r, "--resume");
    arg(r, resume);
  }
  arg(r, shard);
  *spawned = true;
  return MN_OK;
}

/* install -- move a finished file into a checkpoint's folder (one rename, synced) */
static mn_status install(const char *from, const char *to, mn_error *err)
{
  char real[PATH_MAX];
  if (!realpath(from, real))
    return mn_error_set(err, MN_ERR_IO, "could not resolve \"%s\": %s", from, strerror(errno));
  if (rename(real, to) != 0)
    return mn_error_set(err, MN_ERR_IO, "could not move \"%s\" to \"%s\": %s", real, to,
                        strerror(errno));
  return mn_fsync_parent(to, err);
}

static mn_status st_install(runner *r, PGconn *c, bool *spawned, mn_error *err)
{
  (void)spawned;
  char to[PATH_MAX], from[PATH_MAX], dir[PATH_MAX], id[32];
  runner__path_ckpt(r, r->job.ckpt, to, sizeof to, "model.safetensors");
  runner__path_ckpt(r, r->job.ckpt, dir, sizeof dir, NULL);
  runner__path_job(r, from, sizeof from, "candidate/model.safetensors");
  mn_status rc = runner__exists(to) ? MN_OK : install(from, to, err);
  if (rc != MN_OK) return rc;
  snprintf(id, sizeof id, "%lld", (long long)r->job.ckpt);
  rc = jobs_begin(c, &r->job, r->owner, err);
  if (rc != MN_OK) return rc;
  PGresult *res;
  const char *p[] = {id, r->sha[0] ? r->sha : NULL};
  rc = db_query(c, "SELECT mnemo.checkpoint_advance($1::bigint, 'candidate', NULL, $2, NULL)", 2, p,
                &res, "mark the candidate trained", err);
  PQclear(res);
  if (rc == MN_OK) return jobs_commit(c, err);
  jobs_rollback(c);
  return rc;
}

static mn_status st_evalset(runner *r, PGconn *c, bool *spawned, mn_error *err)
{
  (void)c, (void)err;
  char out[PATH_MAX], base[PATH_MAX], held[PATH_MAX], probes[PATH_MAX];
  runner__path_job(r, out, sizeof out, "set");
  runner__path_ckpt(r, r->base, base, sizeof base, "model.safetensors");
  runner__path_job(r, held, sizeof held, "heldout.jsonl");
  runner__path_job(r, probes, sizeof probes, "probes.jsonl");
  if (runner__exists(out)) return MN_OK;
  worker_argv(r, "evalset");
  if (runner__exists(probes)) {
    arg(r, "--probes");
    arg(r, probes);
  }
  arg(r, "--checkpoint");
  arg(r, base);
  arg(r, "--max-items");
  arg_int(r, r->cfg->daemon.eval_items);
  arg(r, "--max-item-bytes");
  arg_int(r, r->cfg->daemon.eval_item_bytes);
  arg(r, "--out");
  arg(r, out);
  arg(r, held);
  *spawned = true;
  return MN_OK;
}

static mn_status st_guard(runner *r, PGconn *c, bool *spawned, mn_error *err)
{
  (void)c, (void)err;
  char base[PATH_MAX], cand[PATH_MAX], set[PATH_MAX], cache[PATH_MAX], out[PATH_MAX];
  runner__path_ckpt(r, r->base, base, sizeof base, "model.safetensors");
  runner__path_ckpt(r, r->job.ckpt, cand, sizeof cand, "model.safetensors");
  runner__path_job(r, set, sizeof set, "set");
  runner__path_job(r, cache, sizeof cache, "cache");
  runner__path_job(r, out, sizeof out, "verdict.json");
  worker_argv(r, "guard");
  arg(r, "--baseline");
  arg(r, base);
  arg(r, "--candidate");
  arg(r, cand);
  arg(r, "--sets");
  arg(r, set);
  arg(r, "--cache");
  arg(r, cache);
  arg(r, "--out");
  arg(r, out);
  r->extra_ok = MN_EXIT_GUARD; /* a guard said no: a verdict all the same */
  *spawned = true;
  return MN_OK;
}

/* guard_protect -- "deu:3,hin:3": the languages a rejected candidate failed that the
 * baseline's replay store can hold (production absorbed documents of theirs), each at
 * guards.retry_boost; empty when no retry is due: off, a retry already, none to protect, or
 * all of them -- one factor on every replayed language is the sampler as it was, and the
 * retry would be the rejected run again -- or a list too long to record (logged) */
static mn_status guard_protect(runner *r, PGconn *c, const json_t *v, char *out, size_t n,
                               mn_error *err)
{
  out[0] = '\0';
  if (r->cfg->guards.retry_boost <= 1 || r->job.retry_of) return MN_OK;
  char boost[32]; /* as written into the job: a factor that prints as 1 is none */
  snprintf(boost, sizeof boost, "%.6g", r->cfg->guards.retry_boost);
  if (strtod(boost, NULL) <= 1) return MN_OK;
  char *langs = json_dumps(json_object_get(v, "languages"), JSON_COMPACT);
  if (!langs) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  PGresult *res;
  mn_status rc = db_query(
      c,
      "SELECT string_agg(x.lang || ':' || $2, ',' ORDER BY x.lang), count(*),"
      " (SELECT count(*) FROM mnemo.languages l WHERE EXISTS (SELECT 1 FROM mnemo.documents d"
      "   WHERE d.lang = l.code AND d.consumed_by IS NOT NULL))"
      " FROM jsonb_to_recordset($1::jsonb) AS x(lang text, outcome text) WHERE x.outcome = 'fail'"
      " AND x.lang ~ '^[a-z]{2,8}$' AND EXISTS (SELECT 1 FROM mnemo.documents d"
      " WHERE d.lang = x.lang AND d.consumed_by IS NOT NULL)",
      2, (const char *const[]){langs, boost}, &res, "choose the languages a retry protects", err);
  free(langs);
  if (rc != MN_OK) return rc;
  const char *list = PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0);
  bool all = strcmp(PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2)) == 0;
  if (*list && all)
    mn_log(MN_LOG_WARN,
           "no guard retry: every language production knows failed, and replaying "
           "all of them more is replaying them as before",
           MN_KV_I("job", r->job.id));
  else if (strlen(list) >= n)
    mn_log(MN_LOG_WARN, "no guard retry: too many failing languages to record",
           MN_KV_I("job", r->job.id),
           MN_KV_I("languages", strtoll(PQgetvalue(res, 0, 1), NULL, 10)));
  else
    snprintf(out, n, "%s", list);
  PQclear(res);
  return MN_OK;
}

static mn_status st_verdict(runner *r, PGconn *c, bool *spawned, mn_error *err)
{
  (void)spawned;
  char path[PATH_MAX], id[32];
  runner__path_job(r, path, sizeof path, "verdict.json");
  json_error_t je;
  json_t *v = json_load_file(path, 0, &je);
  if (!json_is_object(v) || !json_is_array(json_object_get(v, "languages"))) {
    json_decref(v);
    return mn_error_set(err, MN_ERR_CORRUPT, "%s:%d: not a verdict: %s", path, je.line, je.text);
  }
  bool pass = json_is_true(json_object_get(v, "pass"));
  mn_buf why;
  mn_buf_init(&why, 4096);
  mn_status rc = MN_OK;
  size_t i;
  json_t *l;
  json_array_foreach(json_object_get(v, "languages"), i, l)
  {
    const char *o = json_string_value(json_object_get(l, "outcome"));
    if (o && strcmp(o, "pass") != 0 && why.len < 3000 && rc == MN_OK)
      rc = mn_buf_appendf(&why, err, "%s%s: %s", why.len ? "; " : "",
                          json_string_value(json_object_get(l, "lang")), o);
  }
  json_t *par = json_object_get(v, "parity");
  const char *po = json_string_value(json_object_get(par, "outcome"));
  if (rc == MN_OK && po && strcmp(po, "pass") != 0)
    rc = mn_buf_appendf(&why, err, "%sparity gap: %s", why.len ? "; " : "", po);
  /* the guard in the loop: the languages to protect in a retry, said in the verdict; a
   * retry's verdict names what it retried */
  char protect[1024] = "";
  if (rc == MN_OK && !pass) rc = guard_protect(r, c, v, protect, sizeof protect, err);
  if (rc == MN_OK && protect[0])
    json_object_set_new(
        v, "guard_retry",
        json_pack("{s:s, s:f}", "protect", protect, "boost", r->cfg->guards.retry_boost));
  if (rc == MN_OK && r->job.retry_of)
    json_object_set_new(
        v, "retry_of",
        json_pack("{s:I, s:s}", "job", (json_int_t)r->job.retry_of, "protected", r->job.protect));
  char *vj = json_dumps(v, JSON_COMPACT);
  json_decref(v);
  snprintf(id, sizeof id, "%lld", (long long)r->job.ckpt);
  const char *p[] = {id, pass ? "awaiting_approval" : "rejected", why.len ? why.data : "", vj};
  /* the verdict, the job's end and its retry commit together: an attempt after a crash
   * between them would find a rejected candidate that its steps cannot train again */
  int64_t retry = 0;
  if (rc == MN_OK) rc = jobs_begin(c, &r->job, r->owner, err);
  if (rc == MN_OK) {
    PGresult *res;
    rc = db_query(c, "SELECT mnemo.checkpoint_advance($1::bigint, $2, $3, NULL, $4::jsonb)", 4, p,
                  &res, "record the verdict", err);
    PQclear(res);
    if (rc == MN_OK)
      rc = jobs_finish_in(c, &r->job, "succeeded", pass ? "awaiting approval" : "rejected", protect,
                          &retry, err);
    if (rc == MN_OK)
      rc = jobs_commit(c, err);
    else
      jobs_rollback(c);
  }
  free(vj);
  mn_buf_fini(&why);
  if (rc == MN_OK)
    mn_log(MN_LOG_INFO, pass ? "candidate awaits approval" : "candidate rejected",
           MN_KV_I("checkpoint", r->job.ckpt), MN_KV_I("job", r->job.id));
  if (rc == MN_OK && protect[0] && !retry)
    mn_log(MN_LOG_WARN,
           "no guard retry: the job was asked to cancel, or another refresh is in flight",
           MN_KV_I("job", r->job.id), MN_KV_S("protect", protect));
  if (rc == MN_OK && retry)
    mn_log(MN_LOG_INFO, "guard retry queued", MN_KV_I("job", retry), MN_KV_I("retries", r->job.id),
           MN_KV_S("protect", protect));
  return rc;
}

/* ---------------------------------------------------------------- promotion steps */

static mn_status st_promote(runner *r, PGconn *c, bool *spawned, mn_error *err)
{
  (void)spawned;
  char id[32], job[32], path[PATH_MAX];
  snprintf(id, sizeof id, "%lld", (long long)r->job.ckpt);
  snprintf(job, sizeof job, "%lld", (long long)r->job.id);
  const char *p[] = {id, job};
  PGresult *res;
  mn_status rc = jobs_begin(c, &r->job, r->owner, err);
  if (rc != MN_OK) return rc;
  rc = db_query(c, "SELECT mnemo.promote($1::bigint, $2::bigint)", 2, p, &res,
                "promote the checkpoint", err);
  if (rc == MN_OK) {
    PQclear(res);
    /* a statement of its own: one statement does not see what its function changed */
    rc = db_query(c,
                  "SELECT parent_id, (SELECT count(*) FROM mnemo.documents"
                  " WHERE consumed_by = $1::bigint) FROM mnemo.checkpoints WHERE id = $1::bigint",
                  1, p, &res, "read what the promotion consumed", err);
  }
  int64_t fixed = 0;
  if (rc == MN_OK) {
    r->base = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    r->nfresh = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    PQclear(res);
    /* the accepted reports whose probes the new production passes well are fixed by it */
    char margin[32];
    snprintf(margin, sizeof margin, "%.17g", r->cfg->triage.fix_margin);
    rc = db_query(c, "SELECT mnemo.reports_fix($1::bigint, $2::float8)", 2,
                  (const char *const[]){id, margin}, &res, "mark the reports it fixed", err);
  }
  if (rc == MN_OK) {
    fixed = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    rc = jobs_commit(c, err);
  } else {
    jobs_rollback(c);
  }
  if (rc != MN_OK) return rc;
  mn_log(MN_LOG_INFO, "promoted", MN_KV_I("checkpoint", r->job.ckpt), MN_KV_I("previous", r->base),
         MN_KV_I("documents", r->nfresh), MN_KV_I("reports_fixed", fixed));
  runner__path_job(r, path, sizeof path, NULL);
  rc = mkdirs(path, err);
  if (rc == MN_OK) rc = export_tags(r, c, err);
  int64_t n;
  runner__path_job(r, path, sizeof path, "fresh.jsonl");
  if (rc == MN_OK && r->nfresh > 0)
    rc = export_jsonl(c,
                      "SELECT json_build_object('lang', lang, 'text', text) FROM mnemo.documents"
                      " WHERE consumed_by = $1::bigint ORDER BY id",
                      1, (const char *const[]){id}, path, &n, err);
  if (rc == MN_OK) rc = write_spec(r, false, NULL, err);
  return rc;
}

static mn_status st_replay_copy(runner *r, PGconn *c, bool *spawned, mn_error *err)
{
  (void)c, (void)spawned;
  char installed[PATH_MAX], from[PATH_MAX], to[PATH_MAX];
  runner__path_ckpt(r, r->job.ckpt, installed, sizeof installed, "replay.store");
  if (runner__exists(installed)) return MN_OK;
  runner__path_ckpt(r, r->base, from, sizeof from, "replay.store");
  runner__path_job(r, to, sizeof to, "replay.store");
  /* a fresh copy each attempt: absorbing twice into one store would count windows twice */
  return mn_copy_file_atomic(from, to, 0640, err);
}

static mn_status st_replay_absorb(runner *r, PGconn *c, bool *spawned, mn_error *err)
{
  (void)c, (void)err;
  char installed[PATH_MAX], store[PATH_MAX], shard[PATH_MAX];
  runner__path_ckpt(r, r->job.ckpt, installed, sizeof installed, "replay.store");
  if (runner__exists(installed) || r->nfresh == 0) return MN_OK;
  runner__path_job(r, store, sizeof store, "replay.store");
  runner__path_job(r, shard, sizeof shard, "fresh.shard");
  worker_argv(r, "replay");
  arg(r, "absorb");
  arg(r, "--store");
  arg(r, store);
  arg(r, "--capacity");
  arg_int(r, r->cfg->daemon.replay_capacity);
  arg(r, shard);
  *spawned = true;
  return MN_OK;
}

static mn_status st_replay_install(runner *r, PGconn *c, bool *spawned, mn_error *err)
{
  (void)c, (void)spawned;
  char to[PATH_MAX], from[PATH_MAX], dir[PATH_MAX];
  runner__path_ckpt(r, r->job.ckpt, to, sizeof to, "replay.store");
  if (runner__exists(to)) return MN_OK;
  runner__path_ckpt(r, r->job.ckpt, dir, sizeof dir, NULL);
  runner__path_job(r, from, sizeof from, "replay.store");
  return install(from, to, err);
}

static mn_status st_fisher_online(runner *r, PGconn *c, bool *spawned, mn_error *err)
{
  (void)c;
  char out[PATH_MAX], prev[PATH_MAX], model[PATH_MAX], shard[PATH_MAX];
  runner__path_ckpt(r, r->job.ckpt, out, sizeof out, "fisher.safetensors");
  if (runner__exists(out)) return MN_OK;
  runner__path_ckpt(r, r->base, prev, sizeof prev, "fisher.safetensors");
  /* nothing absorbed: no Fisher here (the previous one belongs to other weights); the next
   * refresh estimates one from the stored past (st_prepare, st_fisher_base) */
  if (r->nfresh == 0) return MN_OK;
  runner__path_ckpt(r, r->job.ckpt, model, sizeof model, "model.safetensors");
  runner__path_job(r, shard, sizeof shard, "fresh.shard");
  worker_argv(r, "fisher");
  arg(r, "--checkpoint");
  arg(r, model);
  if (runner__exists(prev)) { /* online: decayed past + the absorbed documents */
    arg(r, "--previous");
    arg(r, prev);
  }
  arg(r, "--windows");
  arg_int(r, r->cfg->daemon.fisher_windows);
  arg(r, "--out");
  arg(r, out);
  arg(r, shard);
  *spawned = true;
  return MN_OK;
}

static mn_status st_card(runner *r, PGconn *c, bool *spawned, mn_error *err)
{
  (void)spawned;
  char dir[PATH_MAX];
  runner__path_ckpt(r, r->job.ckpt, dir, sizeof dir, NULL);
  mn_status rc = card_write(c, r->job.ckpt, dir, err);
  if (rc == MN_OK) rc = jobs_finish(c, &r->job, r->owner, "succeeded", "promoted", err);
  return rc;
}

const step runner__refresh_steps[] = {
    {"prepare", st_prepare},
    {"shard", st_shard},
    {"shard_past", st_shard_past},
    {"replay_base", st_replay_base},
    {"fisher_base", st_fisher_base},
    {"finetune", st_finetune},
    {"install", st_install},
    {"evalset", st_evalset},
    {"guard", st_guard},
    {"verdict", st_verdict},
};

const step runner__promote_steps[] = {
    {"promote", st_promote},
    {"shard", st_shard},
    {"replay_copy", st_replay_copy},
    {"replay_absorb", st_replay_absorb},
    {"replay_install", st_replay_install},
    {"fisher", st_fisher_online},
    {"card", st_card},
};
const int runner__refresh_nsteps =
    (int)(sizeof runner__refresh_steps / sizeof runner__refresh_steps[0]);
const int runner__promote_nsteps =
    (int)(sizeof runner__promote_steps / sizeof runner__promote_steps[0]);
