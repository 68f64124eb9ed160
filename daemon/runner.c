/*
 * runner.c -- one job at a time through its steps (runner.h; the steps: runner_steps.c).
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
#include "daemon/fault.h"
#include "daemon/runner_int.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- the child */

static mn_status spawn(runner *r, mn_error *err)
{
  r->permanent = false; /* what the last worker said is not this one's */
  r->worker_error[0] = '\0';
  char log[PATH_MAX];
  runner__path_job(r, log, sizeof log, "worker.log");
  int lfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  int pfd[2];
  if (lfd < 0 || pipe2(pfd, O_CLOEXEC) != 0) {
    if (lfd >= 0) close(lfd);
    return mn_error_set(err, MN_ERR_IO, "could not start the worker (%s): %s", log,
                        strerror(errno));
  }
  char head[PATH_MAX + 64];
  snprintf(head, sizeof head, "== attempt %lld step %s:", (long long)r->job.attempt,
           r->steps[r->cur].name);
  mn_status rc = child_spawn(&r->child, r->argv, pfd[1], lfd, head, err);
  close(pfd[1]);
  close(lfd);
  if (rc != MN_OK) {
    close(pfd[0]);
    return rc;
  }
  fcntl(pfd[0], F_SETFL, O_NONBLOCK);
  r->out_fd = pfd[0];
  r->linelen = 0;
  r->step_ms = mn_monotonic_ms();
  mn_log(MN_LOG_INFO, "step started", MN_KV_I("job", r->job.id),
         MN_KV_S("step", r->steps[r->cur].name), MN_KV_I("attempt", r->job.attempt),
         MN_KV_I("pid", r->child.pid));
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
  } else if (strcmp(ev, "error") == 0) { /* the worker's own word on why it stops */
    r->permanent = json_is_true(json_object_get(e, "permanent"));
    const char *m = json_string_value(json_object_get(e, "message"));
    if (m) snprintf(r->worker_error, sizeof r->worker_error, "%s", m);
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
  runner__path_job(r, log, sizeof log, "worker.log");
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
  if (r->child.pid <= 0) return;
  child_fini(&r->child); /* killed and reaped */
  if (r->out_fd >= 0) close(r->out_fd);
  r->out_fd = -1;
}

/* ---------------------------------------------------------------- the job */

static void end_job(runner *r, bool clean)
{
  kill_child(r);
  if (clean) {
    char dir[PATH_MAX];
    runner__path_job(r, dir, sizeof dir, NULL);
    runner__rm_tree(dir);
  }
  runner__args_reset(r);
  json_decref(r->progress);
  r->progress = NULL;
  r->active = false;
  r->stopping = false;
  r->permanent = false;
  r->worker_error[0] = '\0';
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
    if (!runner__exists(dir)) continue;
    tree_bytes = 0;
    nftw(dir, add_size, 16, FTW_PHYS);
    used += tree_bytes;
    if (used > budget) {
      mn_log(MN_LOG_INFO, "failed job's folder removed (daemon.keep_failed_mb)",
             MN_KV_S("dir", dir));
      runner__rm_tree(dir);
    }
  }
  PQclear(res);
}

/* fail_attempt -- the attempt failed: retried later, or failed for good (its attempts
 * spent, or a failure that would come again: r->permanent) */
static mn_status fail_attempt(runner *r, PGconn *c, const char *why, mn_error *out)
{
  mn_error err = {0};
  bool final = false, permanent = r->permanent;
  r->permanent = false;
  mn_log(MN_LOG_WARN, "job attempt failed", MN_KV_I("job", r->job.id),
         MN_KV_I("attempt", r->job.attempt), MN_KV_S("step", r->steps[r->cur].name),
         MN_KV_B("permanent", permanent), MN_KV_S("error", why));
  mn_status rc = jobs_fail(c, &r->job, r->owner, why, permanent, r->cfg, &final, &err);
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
  while (r->active && r->child.pid == 0 && !r->stopping) {
    if (r->cur >= r->nsteps) {
      end_job(r, true);
      return MN_OK;
    }
    bool spawned = false;
    r->extra_ok = 0;
    runner__args_reset(r);
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
      fault_point(r->job.kind, r->steps[r->cur].name, r->child.pid); /* tests only (fault.c) */
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
  int code = child_exit_code(&r->child);
  child_fini(&r->child);
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
  /* the worker's own message (its error event), else the last line of its log */
  if (r->worker_error[0])
    snprintf(last, sizeof last, "%s", r->worker_error);
  else
    last_log_line(r, last, sizeof last);
  snprintf(why, sizeof why, "step %s: mnemo exited with %d%s%s", name, code, last[0] ? ": " : "",
           last);
  return fail_attempt(r, c, why, err);
}

/* ---------------------------------------------------------------- the interface */

mn_status runner_create(const char *owner, runner **out, mn_error *err)
{
  runner *r = calloc(1, sizeof *r);
  if (!r) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  snprintf(r->owner, sizeof r->owner, "%s", owner);
  r->out_fd = -1;
  child_init(&r->child);
  *out = r;
  return MN_OK;
}

void runner_destroy(runner *r)
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
  return r->child.pid > 0 ? r->out_fd : -1;
}

int runner_timeout_ms(const runner *r)
{
  if (!r->active) return -1;
  double now = mn_monotonic_ms();
  double next = r->hb_ms + (double)r->cfg->daemon.lease_s * 1000.0 / 3.0 - now;
  if (r->progress_dirty && r->hb_ms + 2000 - now < next) next = r->hb_ms + 2000 - now;
  if (r->child.pid > 0) {
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
  child_reap(&r->child);
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
  r->steps = refresh ? runner__refresh_steps : runner__promote_steps;
  r->nsteps = refresh ? runner__refresh_nsteps : runner__promote_nsteps;
  r->hb_ms = r->lease_ok_ms = mn_monotonic_ms();
  mn_log(MN_LOG_INFO, "job claimed", MN_KV_I("job", r->job.id), MN_KV_S("kind", r->job.kind),
         MN_KV_I("attempt", r->job.attempt), MN_KV_I("max_attempts", r->job.max_attempts));
  if (r->job.cancel_requested) return cancel_job(r, c, err);
  return advance(r, c, err);
}

mn_status runner_tick(runner *r, PGconn *c, bool readable, mn_error *err)
{
  if (!r->active) return r->stopping ? MN_OK : start(r, c, err);
  if (r->child.pid > 0 && readable && read_output(r)) runner_child_exited(r);
  if (r->child.pid > 0 && !r->child.exited) runner_child_exited(r);
  double now = mn_monotonic_ms();
  /* without a renewed lease the job may be someone else's by now: stop touching it */
  if (now - r->lease_ok_ms > (double)r->cfg->daemon.lease_s * 1000.0) {
    mn_log(MN_LOG_WARN, "lease not renewed in time: the job is dropped", MN_KV_I("job", r->job.id));
    end_job(r, false);
    return MN_OK;
  }
  if (r->child.pid > 0 && r->child.exited) return child_done(r, c, err);
  if (r->child.pid > 0 && now - r->step_ms > (double)r->cfg->daemon.step_timeout_s * 1000.0) {
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
  if (r->active && r->child.pid == 0) return advance(r, c, err);
  return MN_OK;
}

void runner_stop(runner *r, PGconn *c, bool graceful)
{
  if (!r->active) return;
  mn_error err = {0};
  if (r->child.pid > 0 && graceful && !r->stopping) {
    r->stopping = true;
    child_signal(&r->child, SIGTERM); /* it saves a resumable checkpoint, exits 75 */
    mn_log(MN_LOG_INFO, "asked the worker to save and stop", MN_KV_I("pid", r->child.pid));
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
