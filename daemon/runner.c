/*
 * runner.c -- one job at a time through its steps (jobs.h).
 *
 * A refresh: prepare (watermark, candidate row, exports) -> shard -> the baseline's
 * replay store and Fisher when it has none -> finetune (resumable) -> install the
 * candidate -> evaluation set -> guard -> verdict.  A promotion: promote (one
 * transaction) -> shard what it consumed -> replay store absorbs it -> online Fisher ->
 * model card.  Steps that need the model run `mnemo` as a child; the daemon only moves
 * files and rows.  Every step finds its output when it was done before, so a new
 * attempt after a crash re-runs the list from the top without repeating work: files are
 * written atomically by whoever writes them, rows by fenced, idempotent statements.
 *
 * Paths are built from ids under daemon.data_dir, never from text in the database.
 */
#define _GNU_SOURCE /* pipe2 */
#include "daemon/card.h"
#include "daemon/fault.h"
#include "daemon/jobs.h"

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

#define MAX_ARGS 32

typedef struct step step;

struct runner {
  char owner[160];
  const mn_config *cfg;
  char worker[PATH_MAX];
  bool active, poke, stopping;
  mn_job job;
  const step *steps;
  int nsteps, cur;
  int64_t base;   /* the baseline: production when the refresh began; a promotion's parent */
  int64_t nfresh; /* documents the job trains on (refresh) or absorbs (promotion) */
  char sha[MN_SHA256_HEX_LEN + 1];
  /* the child */
  pid_t pid;
  int out_fd, extra_ok; /* extra_ok: an exit code besides 0 that means done (guard: 3) */
  bool exited;
  int wstatus;
  char line[1 << 16];
  size_t linelen;
  json_t *progress;
  bool progress_dirty;
  double hb_ms, lease_ok_ms, step_ms;
  char *argv[MAX_ARGS];
  int argc;
};

typedef mn_status (*step_fn)(runner *r, PGconn *c, bool *spawned, mn_error *err);
struct step {
  const char *name;
  step_fn fn;
};

/* ---------------------------------------------------------------- paths */

static void path_job(const runner *r, char *out, size_t n, const char *file)
{
  snprintf(out, n, "%s/jobs/%lld%s%s", r->cfg->daemon.data_dir, (long long)r->job.id,
           file ? "/" : "", file ? file : "");
}

static void path_ckpt(const runner *r, int64_t id, char *out, size_t n, const char *file)
{
  snprintf(out, n, "%s/checkpoints/%lld%s%s", r->cfg->daemon.data_dir, (long long)id,
           file ? "/" : "", file ? file : "");
}

static bool exists(const char *p)
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
    return mn_error_set(err, MN_ERR_IO, "cannot create \"%s\": %s", path, strerror(errno));
  return MN_OK;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
  (void)st, (void)flag, (void)f;
  remove(p);
  return 0;
}

static void rm_tree(const char *p)
{
  nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---------------------------------------------------------------- arguments */

static void args_reset(runner *r)
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

/* worker_args -- mnemo --config JOB.yaml --json COMMAND: the job's frozen config */
static void worker_args(runner *r, const char *command)
{
  char spec[PATH_MAX];
  path_job(r, spec, sizeof spec, "job.yaml");
  args_reset(r);
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
  if (exists(path)) return MN_OK;
  return db_export_jsonl(c, sql, n, p, path, rows, err);
}

/* write_spec -- the job's config, frozen once: a retry trains the same run it resumes;
 * boosts: finetune.report_boosts (NULL: none) */
static mn_status write_spec(runner *r, bool finetune, const char *boosts, mn_error *err)
{
  char path[PATH_MAX], p[PATH_MAX];
  path_job(r, path, sizeof path, "job.yaml");
  if (exists(path)) return MN_OK;
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
    path_ckpt(r, r->base, p, sizeof p, "model.safetensors");
    rc = mn_config_set_literal(&cfg, "finetune.baseline", p, "mnemod", err);
    path_ckpt(r, r->base, p, sizeof p, "fisher.safetensors");
    if (rc == MN_OK) rc = mn_config_set_literal(&cfg, "finetune.fisher", p, "mnemod", err);
    path_ckpt(r, r->base, p, sizeof p, "replay.store");
    if (rc == MN_OK) rc = mn_config_set_literal(&cfg, "finetune.replay_store", p, "mnemod", err);
    if (rc == MN_OK && boosts && *boosts)
      rc = mn_config_set_literal(&cfg, "finetune.report_boosts", boosts, "mnemod", err);
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

static mn_status export_tags(runner *r, PGconn *c, mn_error *err)
{
  char path[PATH_MAX];
  int64_t n;
  path_job(r, path, sizeof path, "tags.tsv");
  /* one "code<TAB>id" per line: the tag table the worker's shards use */
  return export_jsonl(c, "SELECT code || E'\\t' || tag_id FROM mnemo.languages ORDER BY code", 0,
                      NULL, path, &n, err);
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
  path_job(r, path, sizeof path, NULL);
  rc = mkdirs(path, err);
  path_ckpt(r, r->job.ckpt, path, sizeof path, NULL);
  if (rc == MN_OK) rc = mkdirs(path, err);
  if (rc == MN_OK) rc = export_tags(r, c, err);
  int64_t n;
  /* the fresh documents recorded with the candidate's row (mnemo.trained_on): what the
   * promotion will mark consumed, whatever commits later below the watermark */
  path_job(r, path, sizeof path, "fresh.jsonl");
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
  path_job(r, path, sizeof path, "heldout.jsonl");
  if (rc == MN_OK)
    rc = export_jsonl(c,
                      "SELECT json_build_object('lang', lang, 'text', text, 'split', split) FROM ("
                      " SELECT lang, text, split, id, row_number() OVER (PARTITION BY lang ORDER"
                      " BY id DESC) AS k FROM mnemo.documents WHERE split = 'heldout'"
                      " AND id <= $1::bigint) d WHERE k <= $2::int ORDER BY id",
                      2, (const char *const[]){wm, items}, path, &n, err);
  /* what the baseline was trained on, for its Fisher and replay store when it has none */
  char f1[PATH_MAX], f2[PATH_MAX], b[32];
  path_ckpt(r, r->base, f1, sizeof f1, "fisher.safetensors");
  path_ckpt(r, r->base, f2, sizeof f2, "replay.store");
  snprintf(b, sizeof b, "%lld", (long long)(r->cfg->daemon.fisher_windows * 4 + 16));
  path_job(r, path, sizeof path, "past.jsonl");
  if (rc == MN_OK && (!exists(f1) || !exists(f2)))
    rc = export_jsonl(c,
                      "SELECT json_build_object('lang', lang, 'text', text) FROM ("
                      " SELECT lang, text, id, row_number() OVER (PARTITION BY lang ORDER BY id"
                      " DESC) AS k FROM mnemo.documents WHERE split = 'train'"
                      " AND consumed_by IS NOT NULL) d WHERE k <= $1::int ORDER BY id",
                      1, (const char *const[]){b}, path, &n, err);
  /* accepted reports: their groups' first reports become probes of their languages' guard
   * (fixed ones keep the bits they were fixed at), and their languages are replayed more */
  path_job(r, path, sizeof path, "probes.jsonl");
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

/* spawn_shard -- jsonl -> shard, unless the shard is there */
static mn_status spawn_shard(runner *r, const char *in, const char *out, bool *spawned)
{
  char pin[PATH_MAX], pout[PATH_MAX], tags[PATH_MAX];
  path_job(r, pin, sizeof pin, in);
  path_job(r, pout, sizeof pout, out);
  path_job(r, tags, sizeof tags, "tags.tsv");
  if (exists(pout) || !exists(pin)) return MN_OK;
  worker_args(r, "shard");
  arg(r, "--tags");
  arg(r, tags);
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
  path_ckpt(r, r->base, store, sizeof store, "replay.store");
  path_job(r, past, sizeof past, "past.shard");
  if (exists(store)) return MN_OK;
  worker_args(r, "replay");
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
  path_ckpt(r, r->base, out, sizeof out, "fisher.safetensors");
  path_ckpt(r, r->base, model, sizeof model, "model.safetensors");
  path_job(r, past, sizeof past, "past.shard");
  if (exists(out)) return MN_OK;
  worker_args(r, "fisher");
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
  path_ckpt(r, r->job.ckpt, installed, sizeof installed, "model.safetensors");
  if (exists(installed)) return MN_OK;
  path_job(r, out, sizeof out, "candidate");
  path_job(r, resume, sizeof resume, "candidate/model.safetensors");
  path_job(r, spec, sizeof spec, "job.yaml");
  path_job(r, shard, sizeof shard, "fresh.shard");
  args_reset(r);
  arg(r, r->worker);
  arg(r, "finetune");
  arg(r, "--spec");
  arg(r, spec);
  arg(r, "--out");
  arg(r, out);
  if (exists(resume)) { /* an earlier attempt saved a checkpoint: go on from it */
    arg(r, "--resume");
    arg(r, resume);
  }
  arg(r, shard);
  *spawned = true;
  return MN_OK;
}

static mn_status fsync_dir(const char *dir, mn_error *err)
{
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || fsync(fd) != 0) {
    mn_status rc = mn_error_set(err, MN_ERR_IO, "cannot sync \"%s\": %s", dir, strerror(errno));
    if (fd >= 0) close(fd);
    return rc;
  }
  close(fd);
  return MN_OK;
}

/* install -- move a finished file into a checkpoint's folder (one rename, synced) */
static mn_status install(const char *from, const char *to, const char *todir, mn_error *err)
{
  char real[PATH_MAX];
  if (!realpath(from, real))
    return mn_error_set(err, MN_ERR_IO, "cannot resolve \"%s\": %s", from, strerror(errno));
  if (rename(real, to) != 0)
    return mn_error_set(err, MN_ERR_IO, "cannot move \"%s\" to \"%s\": %s", real, to,
                        strerror(errno));
  return fsync_dir(todir, err);
}

static mn_status st_install(runner *r, PGconn *c, bool *spawned, mn_error *err)
{
  (void)spawned;
  char to[PATH_MAX], from[PATH_MAX], dir[PATH_MAX], id[32];
  path_ckpt(r, r->job.ckpt, to, sizeof to, "model.safetensors");
  path_ckpt(r, r->job.ckpt, dir, sizeof dir, NULL);
  path_job(r, from, sizeof from, "candidate/model.safetensors");
  mn_status rc = exists(to) ? MN_OK : install(from, to, dir, err);
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
  path_job(r, out, sizeof out, "set");
  path_ckpt(r, r->base, base, sizeof base, "model.safetensors");
  path_job(r, held, sizeof held, "heldout.jsonl");
  path_job(r, probes, sizeof probes, "probes.jsonl");
  if (exists(out)) return MN_OK;
  worker_args(r, "evalset");
  if (exists(probes)) {
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
  path_ckpt(r, r->base, base, sizeof base, "model.safetensors");
  path_ckpt(r, r->job.ckpt, cand, sizeof cand, "model.safetensors");
  path_job(r, set, sizeof set, "set");
  path_job(r, cache, sizeof cache, "cache");
  path_job(r, out, sizeof out, "verdict.json");
  worker_args(r, "guard");
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
  r->extra_ok = 3; /* a guard said no: a verdict all the same */
  *spawned = true;
  return MN_OK;
}

static mn_status st_verdict(runner *r, PGconn *c, bool *spawned, mn_error *err)
{
  (void)spawned;
  char path[PATH_MAX], id[32];
  path_job(r, path, sizeof path, "verdict.json");
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
  char *vj = json_dumps(v, JSON_COMPACT);
  json_decref(v);
  snprintf(id, sizeof id, "%lld", (long long)r->job.ckpt);
  const char *p[] = {id, pass ? "awaiting_approval" : "rejected", why.len ? why.data : "", vj};
  if (rc == MN_OK) rc = jobs_begin(c, &r->job, r->owner, err);
  if (rc == MN_OK) {
    PGresult *res;
    rc = db_query(c, "SELECT mnemo.checkpoint_advance($1::bigint, $2, $3, NULL, $4::jsonb)", 4, p,
                  &res, "record the verdict", err);
    PQclear(res);
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
  if (rc == MN_OK)
    rc = jobs_finish(c, &r->job, r->owner, "succeeded", pass ? "awaiting approval" : "rejected",
                     err);
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
  path_job(r, path, sizeof path, NULL);
  rc = mkdirs(path, err);
  if (rc == MN_OK) rc = export_tags(r, c, err);
  int64_t n;
  path_job(r, path, sizeof path, "fresh.jsonl");
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
  path_ckpt(r, r->job.ckpt, installed, sizeof installed, "replay.store");
  if (exists(installed)) return MN_OK;
  path_ckpt(r, r->base, from, sizeof from, "replay.store");
  path_job(r, to, sizeof to, "replay.store");
  /* a fresh copy each attempt: absorbing twice into one store would count windows twice */
  return mn_copy_file_atomic(from, to, 0640, err);
}

static mn_status st_replay_absorb(runner *r, PGconn *c, bool *spawned, mn_error *err)
{
  (void)c, (void)err;
  char installed[PATH_MAX], store[PATH_MAX], shard[PATH_MAX];
  path_ckpt(r, r->job.ckpt, installed, sizeof installed, "replay.store");
  if (exists(installed) || r->nfresh == 0) return MN_OK;
  path_job(r, store, sizeof store, "replay.store");
  path_job(r, shard, sizeof shard, "fresh.shard");
  worker_args(r, "replay");
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
  path_ckpt(r, r->job.ckpt, to, sizeof to, "replay.store");
  if (exists(to)) return MN_OK;
  path_ckpt(r, r->job.ckpt, dir, sizeof dir, NULL);
  path_job(r, from, sizeof from, "replay.store");
  return install(from, to, dir, err);
}

static mn_status st_fisher_online(runner *r, PGconn *c, bool *spawned, mn_error *err)
{
  (void)c;
  char out[PATH_MAX], prev[PATH_MAX], model[PATH_MAX], shard[PATH_MAX];
  path_ckpt(r, r->job.ckpt, out, sizeof out, "fisher.safetensors");
  if (exists(out)) return MN_OK;
  path_ckpt(r, r->base, prev, sizeof prev, "fisher.safetensors");
  /* nothing absorbed: no Fisher here (the previous one belongs to other weights); the next
   * refresh estimates one from the stored past (st_prepare, st_fisher_base) */
  if (r->nfresh == 0) return MN_OK;
  path_ckpt(r, r->job.ckpt, model, sizeof model, "model.safetensors");
  path_job(r, shard, sizeof shard, "fresh.shard");
  worker_args(r, "fisher");
  arg(r, "--checkpoint");
  arg(r, model);
  if (exists(prev)) { /* online: decayed past + the absorbed documents */
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
  path_ckpt(r, r->job.ckpt, dir, sizeof dir, NULL);
  mn_status rc = card_write(c, r->job.ckpt, dir, err);
  if (rc == MN_OK) rc = jobs_finish(c, &r->job, r->owner, "succeeded", "promoted", err);
  return rc;
}

static const step refresh_steps[] = {
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

static const step promote_steps[] = {
    {"promote", st_promote},
    {"shard", st_shard},
    {"replay_copy", st_replay_copy},
    {"replay_absorb", st_replay_absorb},
    {"replay_install", st_replay_install},
    {"fisher", st_fisher_online},
    {"card", st_card},
};

/* ---------------------------------------------------------------- the child */

mn_status worker_spawn(char *const *argv, int out_fd, int log_fd, const char *head, pid_t *pid,
                       mn_error *err)
{
  /* the log is for people: a failed write of the header does not stop the work */
  if (dprintf(log_fd, "%s", head) < 0) {
  }
  for (int i = 0; argv[i]; i++)
    if (dprintf(log_fd, " %s", argv[i]) < 0) break;
  if (dprintf(log_fd, "\n") < 0) {
  }
  pid_t parent = getpid();
  *pid = fork();
  if (*pid < 0) return mn_error_set(err, MN_ERR_IO, "cannot fork the worker: %s", strerror(errno));
  if (*pid == 0) {
    /* the worker dies with the daemon (or the thread that started it): a kill -9 of mnemod
     * leaves no orphan at work */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0) dup2(nul, 0);
    dup2(out_fd, 1);
    dup2(log_fd, 2);
    execv(argv[0], argv);
    _exit(127);
  }
  return MN_OK;
}

static mn_status spawn(runner *r, mn_error *err)
{
  char log[PATH_MAX];
  path_job(r, log, sizeof log, "worker.log");
  int lfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  int pfd[2];
  if (lfd < 0 || pipe2(pfd, O_CLOEXEC) != 0) {
    if (lfd >= 0) close(lfd);
    return mn_error_set(err, MN_ERR_IO, "cannot start the worker (%s): %s", log, strerror(errno));
  }
  char head[PATH_MAX + 64];
  snprintf(head, sizeof head, "== attempt %lld step %s:", (long long)r->job.attempt,
           r->steps[r->cur].name);
  pid_t pid;
  mn_status rc = worker_spawn(r->argv, pfd[1], lfd, head, &pid, err);
  close(pfd[1]);
  close(lfd);
  if (rc != MN_OK) {
    close(pfd[0]);
    return rc;
  }
  fcntl(pfd[0], F_SETFL, O_NONBLOCK);
  r->pid = pid;
  r->out_fd = pfd[0];
  r->exited = false;
  r->linelen = 0;
  r->step_ms = mn_monotonic_ms();
  mn_log(MN_LOG_INFO, "step started", MN_KV_I("job", r->job.id),
         MN_KV_S("step", r->steps[r->cur].name), MN_KV_I("attempt", r->job.attempt),
         MN_KV_I("pid", pid));
  return MN_OK;
}

/* on_line -- one JSON progress line of the worker */
static void on_line(runner *r, const char *s)
{
  json_t *e = json_loads(s, 0, NULL);
  const char *ev = json_string_value(json_object_get(e, "event"));
  if (!ev) {
    json_decref(e);
    return;
  }
  if (strcmp(ev, "step") == 0) {
    int64_t t = json_integer_value(json_object_get(e, "step"));
    double ms = json_number_value(json_object_get(e, "step_ms"));
    int64_t steps = r->cfg->train.steps;
    json_t *p = json_pack("{s:s, s:I, s:I, s:O, s:O, s:O, s:f}", "worker", r->steps[r->cur].name,
                          "step", (json_int_t)t, "steps", (json_int_t)steps, "loss",
                          json_object_get(e, "loss"), "languages", json_object_get(e, "languages"),
                          "tokens_per_s", json_object_get(e, "tokens_per_s"), "eta_s",
                          steps > t ? (double)(steps - t) * ms / 1e3 : 0.0);
    if (p) {
      json_decref(r->progress);
      r->progress = p;
      r->progress_dirty = true;
    }
  } else if (strcmp(ev, "done") == 0) {
    const char *sha = json_string_value(json_object_get(e, "sha256"));
    if (sha && strlen(sha) == MN_SHA256_HEX_LEN) snprintf(r->sha, sizeof r->sha, "%s", sha);
  }
  json_decref(e);
}

/* read_output -- what the child wrote, line by line; true at end of file */
static bool read_output(runner *r)
{
  for (;;) {
    ssize_t n = read(r->out_fd, r->line + r->linelen, sizeof r->line - 1 - r->linelen);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false; /* EAGAIN: nothing more now */
    if (n == 0) return true;
    r->linelen += (size_t)n;
    r->line[r->linelen] = 0;
    char *start = r->line, *nl;
    while ((nl = strchr(start, '\n')) != NULL) {
      *nl = 0;
      on_line(r, start);
      start = nl + 1;
    }
    r->linelen -= (size_t)(start - r->line);
    memmove(r->line, start, r->linelen);
    if (r->linelen == sizeof r->line - 1) r->linelen = 0; /* a line too long: dropped */
  }
}

/* last_log_line -- the worker's last line of stderr, for the job's error */
static void last_log_line(runner *r, char *out, size_t n)
{
  char log[PATH_MAX];
  path_job(r, log, sizeof log, "worker.log");
  out[0] = 0;
  FILE *f = fopen(log, "r");
  if (!f) return;
  char buf[512];
  while (fgets(buf, sizeof buf, f))
    if (strncmp(buf, "== ", 3) != 0 && buf[0] != '\n') {
      buf[strcspn(buf, "\n")] = 0;
      snprintf(out, n, "%s", buf);
    }
  fclose(f);
}

static void kill_child(runner *r)
{
  if (r->pid <= 0) return;
  kill(r->pid, SIGKILL);
  waitpid(r->pid, NULL, 0);
  r->pid = 0;
  if (r->out_fd >= 0) close(r->out_fd);
  r->out_fd = -1;
}

/* ---------------------------------------------------------------- the job */

static void end_job(runner *r, bool clean)
{
  kill_child(r);
  if (clean) {
    char dir[PATH_MAX];
    path_job(r, dir, sizeof dir, NULL);
    rm_tree(dir);
  }
  args_reset(r);
  json_decref(r->progress);
  r->progress = NULL;
  r->active = false;
  r->stopping = false;
}

static int64_t tree_bytes; /* add_size's sum (the runner lives on one thread) */
static int add_size(const char *p, const struct stat *st, int flag, struct FTW *f)
{
  (void)p, (void)f;
  if (flag == FTW_F) tree_bytes += st->st_size;
  return 0;
}

/* prune_failed -- failed and cancelled jobs' folders beyond daemon.keep_failed_mb, oldest
 * first (their ids from the database: a queued retry's folder is never touched) */
static void prune_failed(runner *r, PGconn *c)
{
  PGresult *res = PQexec(c, "SELECT id FROM mnemo.jobs WHERE state IN ('failed', 'cancelled')"
                            " ORDER BY id DESC");
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    PQclear(res);
    return;
  }
  int64_t budget = r->cfg->daemon.keep_failed_mb << 20, used = 0;
  for (int i = 0; i < PQntuples(res); i++) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/jobs/%lld", r->cfg->daemon.data_dir,
             strtoll(PQgetvalue(res, i, 0), NULL, 10));
    if (!exists(dir)) continue;
    tree_bytes = 0;
    nftw(dir, add_size, 16, FTW_PHYS);
    used += tree_bytes;
    if (used > budget) {
      mn_log(MN_LOG_INFO, "failed job's folder removed (daemon.keep_failed_mb)",
             MN_KV_S("dir", dir));
      rm_tree(dir);
    }
  }
  PQclear(res);
}

/* fail_attempt -- the attempt failed: retried later or failed for good */
static mn_status fail_attempt(runner *r, PGconn *c, const char *why, mn_error *out)
{
  mn_error err = {0};
  bool final = false;
  mn_log(MN_LOG_WARN, "job attempt failed", MN_KV_I("job", r->job.id),
         MN_KV_I("attempt", r->job.attempt), MN_KV_S("step", r->steps[r->cur].name),
         MN_KV_S("error", why));
  mn_status rc = jobs_fail(c, &r->job, r->owner, why, r->cfg, &final, &err);
  end_job(r, false);
  if (rc == MN_OK && final) {
    mn_log(MN_LOG_ERROR, "job failed", MN_KV_I("job", r->job.id), MN_KV_S("error", why));
    prune_failed(r, c);
  }
  if (rc == MN_OK || err.code == MN_ERR_STATE) return MN_OK;
  *out = err;
  return mn_error_prefix(out, "could not record the failure");
}

static mn_status cancel_job(runner *r, PGconn *c, mn_error *err)
{
  kill_child(r);
  mn_log(MN_LOG_INFO, "job cancelled", MN_KV_I("job", r->job.id));
  mn_status rc = MN_OK;
  if (strcmp(r->job.kind, "refresh") == 0 && r->job.ckpt) {
    char id[32];
    snprintf(id, sizeof id, "%lld", (long long)r->job.ckpt);
    rc = jobs_begin(c, &r->job, r->owner, err);
    if (rc == MN_OK) {
      PGresult *res;
      rc = db_query(c,
                    "SELECT mnemo.checkpoint_advance(id, 'failed', 'cancelled', NULL, NULL)"
                    " FROM mnemo.checkpoints WHERE id = $1::bigint"
                    " AND state IN ('training', 'candidate')",
                    1, (const char *const[]){id}, &res, "fail the cancelled candidate", err);
      PQclear(res);
      if (rc == MN_OK)
        rc = jobs_commit(c, err);
      else
        jobs_rollback(c);
    }
  }
  if (rc == MN_OK)
    rc = jobs_finish(c, &r->job, r->owner, "cancelled", "cancelled by an operator", err);
  end_job(r, false);
  return rc == MN_OK || err->code == MN_ERR_STATE ? MN_OK : rc;
}

static mn_status heartbeat(runner *r, PGconn *c, mn_error *err)
{
  bool held = false, cancel = false;
  mn_status rc = jobs_heartbeat(c, &r->job, r->owner, r->cfg->daemon.lease_s,
                                r->steps[r->cur < r->nsteps ? r->cur : r->nsteps - 1].name,
                                r->progress_dirty ? r->progress : NULL, &held, &cancel, err);
  if (rc != MN_OK) return rc;
  double now = mn_monotonic_ms();
  r->hb_ms = now;
  r->progress_dirty = false;
  if (!held) {
    mn_log(MN_LOG_WARN, "job lost: another attempt holds it", MN_KV_I("job", r->job.id));
    end_job(r, false);
    return MN_OK;
  }
  r->lease_ok_ms = now;
  if (cancel || r->job.cancel_requested) return cancel_job(r, c, err);
  return MN_OK;
}

/* advance -- run daemon steps until one spawns a child or the job ends */
static mn_status advance(runner *r, PGconn *c, mn_error *err)
{
  while (r->active && r->pid == 0 && !r->stopping) {
    if (r->cur >= r->nsteps) {
      end_job(r, true);
      return MN_OK;
    }
    bool spawned = false;
    r->extra_ok = 0;
    args_reset(r);
    fault_point(r->job.kind, r->steps[r->cur].name, 0); /* tests only (fault.c) */
    mn_status rc = r->steps[r->cur].fn(r, c, &spawned, err);
    if (rc == MN_ERR_STATE) { /* fenced out: another attempt has the job */
      mn_log_error("job lost", err);
      end_job(r, false);
      return MN_OK;
    }
    if (rc == MN_ERR_DB && PQstatus(c) != CONNECTION_OK) return rc; /* reconnect; lease holds */
    if (rc != MN_OK) {
      char why[600];
      snprintf(why, sizeof why, "step %s: %s%s%s%s", r->steps[r->cur].name, err->msg,
               err->detail[0] ? " (" : "", err->detail, err->detail[0] ? ")" : "");
      return fail_attempt(r, c, why, err);
    }
    if (!r->active) return MN_OK; /* the step ended the job */
    if (spawned) {
      rc = spawn(r, err);
      if (rc != MN_OK) return fail_attempt(r, c, err->msg, err);
      fault_point(r->job.kind, r->steps[r->cur].name, r->pid); /* tests only (fault.c) */
      r->progress_dirty = true;
      json_decref(r->progress);
      r->progress = json_pack("{s:s}", "worker", r->steps[r->cur].name);
      return heartbeat(r, c, err); /* the step shows at once */
    }
    r->cur++;
  }
  return MN_OK;
}

/* child_done -- the worker exited: the step is done, or the attempt failed */
static mn_status child_done(runner *r, PGconn *c, mn_error *err)
{
  while (!read_output(r) && errno == EAGAIN) {
    break;
  }
  close(r->out_fd);
  r->out_fd = -1;
  r->pid = 0;
  int code = WIFEXITED(r->wstatus) ? WEXITSTATUS(r->wstatus) : 128 + WTERMSIG(r->wstatus);
  const char *name = r->steps[r->cur].name;
  mn_log(MN_LOG_INFO, "step ended", MN_KV_I("job", r->job.id), MN_KV_S("step", name),
         MN_KV_I("exit", code), MN_KV_D("seconds", (mn_monotonic_ms() - r->step_ms) / 1e3));
  if (r->stopping) { /* SIGTERM: the worker saved what it could; the job goes back */
    mn_status rc = jobs_requeue(c, &r->job, r->owner, err);
    if (rc == MN_OK) mn_log(MN_LOG_INFO, "job given back", MN_KV_I("job", r->job.id));
    end_job(r, false);
    return rc == MN_OK || err->code == MN_ERR_STATE ? MN_OK : rc;
  }
  if (code == 0 || (r->extra_ok && code == r->extra_ok)) {
    r->cur++;
    return advance(r, c, err);
  }
  char why[600], last[400];
  last_log_line(r, last, sizeof last);
  snprintf(why, sizeof why, "step %s: mnemo exited with %d%s%s", name, code, last[0] ? ": " : "",
           last);
  return fail_attempt(r, c, why, err);
}

/* ---------------------------------------------------------------- the interface */

mn_status runner_new(const char *owner, runner **out, mn_error *err)
{
  runner *r = calloc(1, sizeof *r);
  if (!r) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  snprintf(r->owner, sizeof r->owner, "%s", owner);
  r->out_fd = -1;
  *out = r;
  return MN_OK;
}

void runner_free(runner *r)
{
  if (!r) return;
  end_job(r, false);
  free(r);
}

void runner_worker_path(const mn_config *cfg, char *out, size_t n)
{
  if (cfg->daemon.worker && *cfg->daemon.worker) {
    snprintf(out, n, "%s", cfg->daemon.worker);
    return;
  }
  char self[PATH_MAX];
  ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
  self[k > 0 ? k : 0] = 0;
  char *slash = strrchr(self, '/');
  if (slash) slash[1] = 0;
  snprintf(out, n, "%smnemo", self);
}

void runner_set_config(runner *r, const mn_config *cfg)
{
  r->cfg = cfg;
  runner_worker_path(cfg, r->worker, sizeof r->worker);
}

bool runner_busy(const runner *r)
{
  return r->active;
}

int runner_fd(const runner *r)
{
  return r->pid > 0 ? r->out_fd : -1;
}

int runner_timeout_ms(const runner *r)
{
  if (!r->active) return -1;
  double now = mn_monotonic_ms();
  double next = r->hb_ms + (double)r->cfg->daemon.lease_s * 1000.0 / 3.0 - now;
  if (r->progress_dirty && r->hb_ms + 2000 - now < next) next = r->hb_ms + 2000 - now;
  if (r->pid > 0) {
    double t = r->step_ms + (double)r->cfg->daemon.step_timeout_s * 1000.0 - now;
    if (t < next) next = t;
  }
  return next < 0 ? 0 : (int)next + 1;
}

void runner_notify(runner *r)
{
  r->poke = true;
}

void runner_child_exited(runner *r)
{
  if (r->pid > 0 && !r->exited && waitpid(r->pid, &r->wstatus, WNOHANG) == r->pid) r->exited = true;
}

static mn_status start(runner *r, PGconn *c, mn_error *err)
{
  int n = 0;
  mn_status rc = jobs_reap(c, r->owner, 0, r->cfg, &n, err);
  if (rc != MN_OK) return rc;
  bool got = false;
  rc = jobs_claim(c, r->owner, r->cfg, &r->job, &got, err);
  if (rc != MN_OK || !got) return rc;
  r->active = true;
  r->cur = 0;
  r->base = 0;
  r->nfresh = 0;
  r->sha[0] = 0;
  bool refresh = strcmp(r->job.kind, "refresh") == 0;
  r->steps = refresh ? refresh_steps : promote_steps;
  r->nsteps = refresh ? (int)(sizeof refresh_steps / sizeof refresh_steps[0])
                      : (int)(sizeof promote_steps / sizeof promote_steps[0]);
  r->hb_ms = r->lease_ok_ms = mn_monotonic_ms();
  mn_log(MN_LOG_INFO, "job claimed", MN_KV_I("job", r->job.id), MN_KV_S("kind", r->job.kind),
         MN_KV_I("attempt", r->job.attempt), MN_KV_I("max_attempts", r->job.max_attempts));
  if (r->job.cancel_requested) return cancel_job(r, c, err);
  return advance(r, c, err);
}

mn_status runner_tick(runner *r, PGconn *c, bool readable, mn_error *err)
{
  if (!r->active) return r->stopping ? MN_OK : start(r, c, err);
  if (r->pid > 0 && readable && read_output(r)) runner_child_exited(r);
  if (r->pid > 0 && !r->exited) runner_child_exited(r);
  double now = mn_monotonic_ms();
  /* without a renewed lease the job may be someone else's by now: stop touching it */
  if (now - r->lease_ok_ms > (double)r->cfg->daemon.lease_s * 1000.0) {
    mn_log(MN_LOG_WARN, "lease not renewed in time: the job is dropped", MN_KV_I("job", r->job.id));
    end_job(r, false);
    return MN_OK;
  }
  if (r->pid > 0 && r->exited) return child_done(r, c, err);
  if (r->pid > 0 && now - r->step_ms > (double)r->cfg->daemon.step_timeout_s * 1000.0) {
    kill_child(r);
    char why[128];
    snprintf(why, sizeof why, "step %s: timed out after %lld s (daemon.step_timeout_s)",
             r->steps[r->cur].name, (long long)r->cfg->daemon.step_timeout_s);
    return fail_attempt(r, c, why, err);
  }
  bool due = r->poke || now - r->hb_ms >= (double)r->cfg->daemon.lease_s * 1000.0 / 3.0 ||
             (r->progress_dirty && now - r->hb_ms >= 2000);
  r->poke = false;
  if (due) {
    mn_status rc = heartbeat(r, c, err);
    if (rc != MN_OK) return rc;
  }
  if (r->active && r->pid == 0) return advance(r, c, err);
  return MN_OK;
}

void runner_stop(runner *r, PGconn *c, bool graceful)
{
  if (!r->active) return;
  mn_error err = {0};
  if (r->pid > 0 && graceful && !r->stopping) {
    r->stopping = true;
    kill(r->pid, SIGTERM); /* the worker saves a resumable checkpoint and exits 75 */
    mn_log(MN_LOG_INFO, "asked the worker to save and stop", MN_KV_I("pid", r->pid));
    return;
  }
  kill_child(r);
  if (c && jobs_requeue(c, &r->job, r->owner, &err) == MN_OK)
    mn_log(MN_LOG_INFO, "job given back", MN_KV_I("job", r->job.id));
  end_job(r, false);
}

void runner_abandon(runner *r)
{
  if (r->active) mn_log(MN_LOG_WARN, "job abandoned: leadership lost", MN_KV_I("job", r->job.id));
  end_job(r, false);
}
