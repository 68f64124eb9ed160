/*
 * jobs.c -- the job queue's statements (jobs.h).  Short transactions only: a claim, a
 * heartbeat, a fenced write of results.  Times come from the database clock.
 */
#include "daemon/jobs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t i64(const PGresult *r, int row, int col)
{
  return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

#define FMT_I64(buf, v) snprintf((buf), sizeof(buf), "%lld", (long long)(v))

mn_status jobs_claim(PGconn *c, const char *owner, const mn_config *cfg, mn_job *out, bool *got,
                     mn_error *err)
{
  char lease[32], maxa[32];
  FMT_I64(lease, cfg->daemon.lease_s);
  FMT_I64(maxa, cfg->daemon.max_attempts);
  const char *p[] = {owner, lease, maxa};
  PGresult *r;
  /* promotions first: an approved candidate should not wait behind a refresh */
  mn_status rc = db_query(
      c,
      "UPDATE mnemo.jobs SET state = 'running', attempt = attempt + 1, lease_owner = $1,"
      " lease_until = now() + make_interval(secs => $2::int), heartbeat_at = now(),"
      " started_at = coalesce(started_at, now()),"
      " max_attempts = CASE WHEN attempt = 0 THEN $3::int ELSE max_attempts END"
      " WHERE id = (SELECT id FROM mnemo.jobs WHERE state = 'queued' AND run_after <= now()"
      "             ORDER BY kind = 'promote' DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED)"
      " RETURNING id, kind, ckpt_id, attempt, max_attempts, watermark, cancel_requested,"
      " coalesce(retry_of, 0), protect",
      3, p, &r, "claim a job", err);
  if (rc != MN_OK) return rc;
  *got = PQntuples(r) == 1;
  if (*got) {
    memset(out, 0, sizeof *out);
    out->id = i64(r, 0, 0);
    snprintf(out->kind, sizeof out->kind, "%s", PQgetvalue(r, 0, 1));
    out->ckpt = i64(r, 0, 2);
    out->attempt = i64(r, 0, 3);
    out->max_attempts = i64(r, 0, 4);
    out->watermark = i64(r, 0, 5);
    out->cancel_requested = PQgetvalue(r, 0, 6)[0] == 't';
    out->retry_of = i64(r, 0, 7);
    snprintf(out->protect, sizeof out->protect, "%s", PQgetvalue(r, 0, 8));
  }
  PQclear(r);
  return MN_OK;
}

/* after_final_failure -- the audit row, the webhook, and a refresh's checkpoint failed */
static mn_status after_final_failure(PGconn *c, int64_t job, int64_t ckpt, const char *kind,
                                     const char *why, mn_error *err)
{
  char js[32], cs[32];
  FMT_I64(js, job);
  FMT_I64(cs, ckpt);
  const char *p[] = {js, why};
  PGresult *r;
  /* the event's checkpoint is the job's own (log_job_event reads it) */
  mn_status rc = db_query(c,
                          "SELECT mnemo.log_job_event('job_failed', $1::bigint,"
                          " jsonb_build_object('error', $2::text))",
                          2, p, &r, "record a failed job", err);
  PQclear(r);
  if (rc == MN_OK && ckpt && strcmp(kind, "refresh") == 0) {
    rc = db_query(
        c,
        "SELECT mnemo.checkpoint_advance(id, 'failed', $2::text, NULL, NULL)"
        " FROM mnemo.checkpoints WHERE id = $1::bigint AND state IN ('training', 'candidate')",
        2, (const char *[]){cs, why}, &r, "mark the refresh's checkpoint failed", err);
    PQclear(r);
  }
  return rc;
}

/* after_cancel -- a job an attempt's failure ended as cancelled (a cancel was asked for): its
 * job_cancelled event, as a cancel the runner saw itself records */
static mn_status after_cancel(PGconn *c, int64_t job, mn_error *err)
{
  char js[32];
  FMT_I64(js, job);
  const char *p[] = {js};
  PGresult *r;
  mn_status rc = db_query(c,
                          "SELECT mnemo.log_job_event('job_cancelled', $1::bigint,"
                          " jsonb_build_object('why', 'cancelled; its attempt ended meanwhile'))",
                          1, p, &r, "record a cancelled job", err);
  PQclear(r);
  return rc;
}

/* the state a failed attempt leaves: queued with backoff, or failed once attempts are spent;
 * cancelled when a cancel was asked for meanwhile */
#define FAIL_STATE                                                                                 \
  " CASE WHEN cancel_requested THEN 'cancelled' WHEN attempt >= max_attempts THEN 'failed'"        \
  " ELSE 'queued' END "
#define FAIL_SET                                                                                   \
  " lease_owner = NULL, lease_until = NULL,"                                                       \
  " run_after = now() + make_interval(secs => $3::int * power(2, greatest(attempt - 1, 0)))"

mn_status jobs_reap(PGconn *c, const char *owner, int64_t running, const mn_config *cfg, int *n,
                    mn_error *err)
{
  char run[32], back[32];
  FMT_I64(run, running);
  FMT_I64(back, cfg->daemon.retry_backoff_s);
  const char *p[] = {owner, run, back};
  PGresult *r;
  *n = 0;
  mn_status rc = db_exec(c, "BEGIN", err);
  if (rc != MN_OK) return rc;
  rc = db_query(
      c,
      "UPDATE mnemo.jobs SET" FAIL_SET ", state =" FAIL_STATE ","
      " finished_at = CASE WHEN cancel_requested OR attempt >= max_attempts THEN now() END,"
      " error = 'taken back: ' || coalesce(lease_owner, '?') || ' stopped renewing its lease'"
      " WHERE state = 'running' AND id <> $2::bigint"
      "   AND (lease_until < now() OR lease_owner = $1)"
      " RETURNING id, kind, coalesce(ckpt_id, 0), state, error",
      3, p, &r, "take back jobs past their lease", err);
  for (int i = 0; rc == MN_OK && i < PQntuples(r); i++) {
    const char *state = PQgetvalue(r, i, 3);
    mn_log(MN_LOG_WARN, "job taken back", MN_KV_I("job", i64(r, i, 0)), MN_KV_S("state", state),
           MN_KV_S("why", PQgetvalue(r, i, 4)));
    if (strcmp(state, "failed") == 0)
      rc = after_final_failure(c, i64(r, i, 0), i64(r, i, 2), PQgetvalue(r, i, 1),
                               PQgetvalue(r, i, 4), err);
    else if (strcmp(state, "cancelled") == 0)
      rc = after_cancel(c, i64(r, i, 0), err);
  }
  if (rc == MN_OK) *n = PQntuples(r);
  PQclear(r);
  if (rc == MN_OK) return jobs_commit(c, err);
  jobs_rollback(c);
  return rc;
}

mn_status jobs_heartbeat(PGconn *c, const mn_job *j, const char *owner, int64_t lease_s,
                         const char *step, const json_t *progress, bool *held, bool *cancel,
                         mn_error *err)
{
  char id[32], att[32], lease[32];
  FMT_I64(id, j->id);
  FMT_I64(att, j->attempt);
  FMT_I64(lease, lease_s);
  char *pj = progress ? json_dumps(progress, JSON_COMPACT) : NULL;
  const char *p[] = {id, att, owner, lease, step, pj};
  PGresult *r;
  mn_status rc =
      db_query(c,
               "UPDATE mnemo.jobs SET lease_until = now() + make_interval(secs => $4::int),"
               " heartbeat_at = now(), step = coalesce($5, step),"
               " progress = coalesce($6::jsonb, progress)"
               " WHERE id = $1::bigint AND attempt = $2::int AND lease_owner = $3"
               "   AND state = 'running' RETURNING cancel_requested",
               6, p, &r, "renew a job's lease", err);
  free(pj);
  if (rc != MN_OK) return rc;
  *held = PQntuples(r) == 1;
  *cancel = *held && PQgetvalue(r, 0, 0)[0] == 't';
  PQclear(r);
  return MN_OK;
}

mn_status jobs_begin(PGconn *c, const mn_job *j, const char *owner, mn_error *err)
{
  char id[32], att[32];
  FMT_I64(id, j->id);
  FMT_I64(att, j->attempt);
  const char *p[] = {id, att, owner};
  PGresult *r;
  mn_status rc = db_exec(c, "BEGIN", err);
  if (rc != MN_OK) return rc;
  rc = db_query(c,
                "SELECT 1 FROM mnemo.jobs WHERE id = $1::bigint AND attempt = $2::int"
                " AND lease_owner = $3 AND state = 'running' FOR UPDATE",
                3, p, &r, "check the job's fence", err);
  if (rc == MN_OK && PQntuples(r) != 1)
    rc = mn_error_set(err, MN_ERR_STATE, "job %lld attempt %lld is no longer this daemon's",
                      (long long)j->id, (long long)j->attempt);
  PQclear(r);
  if (rc != MN_OK) jobs_rollback(c);
  return rc;
}

mn_status jobs_commit(PGconn *c, mn_error *err)
{
  return db_exec(c, "COMMIT", err);
}

void jobs_rollback(PGconn *c)
{
  PGresult *r = PQexec(c, "ROLLBACK");
  PQclear(r);
}

mn_status jobs_finish_in(PGconn *c, const mn_job *j, const char *state, const char *note,
                         const char *protect, int64_t *retry, mn_error *err)
{
  char id[32];
  FMT_I64(id, j->id);
  const char *p[] = {id, state, note};
  PGresult *r;
  if (retry) *retry = 0;
  mn_status rc = db_query(c,
                          "UPDATE mnemo.jobs SET state = $2, error = nullif($3, ''),"
                          " finished_at = now(), lease_owner = NULL, lease_until = NULL"
                          " WHERE id = $1::bigint",
                          3, p, &r, "finish a job", err);
  PQclear(r);
  if (rc == MN_OK) {
    rc = db_query(c,
                  "SELECT mnemo.log_job_event('job_' || $2, $1::bigint,"
                  " jsonb_build_object('note', $3::text))",
                  3, p, &r, "record a finished job", err);
    PQclear(r);
  }
  if (rc == MN_OK && protect && *protect) { /* optional: a failure is logged, not the job's */
    if ((rc = db_exec(c, "SAVEPOINT guard_retry", err)) != MN_OK) return rc;
    mn_error e = {0};
    mn_status q = db_query(c, "SELECT coalesce(mnemo.guard_retry($1::bigint, $2), 0)", 2,
                           (const char *const[]){id, protect}, &r, "queue the guard's retry", &e);
    if (q == MN_OK && retry) *retry = i64(r, 0, 0);
    PQclear(r);
    if (q != MN_OK) {
      mn_log(MN_LOG_WARN, "no guard retry", MN_KV_I("job", j->id), MN_KV_S("error", e.msg));
      rc = db_exec(c, "ROLLBACK TO SAVEPOINT guard_retry", err);
    }
  }
  return rc;
}

mn_status jobs_finish(PGconn *c, const mn_job *j, const char *owner, const char *state,
                      const char *note, mn_error *err)
{
  mn_status rc = jobs_begin(c, j, owner, err);
  if (rc != MN_OK) return rc;
  rc = jobs_finish_in(c, j, state, note, NULL, NULL, err);
  if (rc == MN_OK) return jobs_commit(c, err);
  jobs_rollback(c);
  return rc;
}

mn_status jobs_fail(PGconn *c, const mn_job *j, const char *owner, const char *why, bool permanent,
                    const mn_config *cfg, bool *final, mn_error *err)
{
  char id[32], att[32], back[32];
  FMT_I64(id, j->id);
  FMT_I64(att, j->attempt);
  FMT_I64(back, cfg->daemon.retry_backoff_s);
  const char *p[] = {id, att, back, why, permanent ? "true" : "false"};
  PGresult *r;
  *final = false;
  mn_status rc = jobs_begin(c, j, owner, err);
  if (rc != MN_OK) return rc;
  rc = db_query(
      c,
      "UPDATE mnemo.jobs SET" FAIL_SET ", error = $4,"
      " state = CASE WHEN $5::bool AND NOT cancel_requested THEN 'failed' ELSE" FAIL_STATE "END,"
      " finished_at = CASE WHEN $5::bool OR cancel_requested OR attempt >= max_attempts"
      " THEN now() END"
      " WHERE id = $1::bigint AND attempt = $2::int RETURNING state, coalesce(ckpt_id, 0)",
      5, p, &r, "record a failed attempt", err);
  if (rc == MN_OK && PQntuples(r) == 1) {
    *final = strcmp(PQgetvalue(r, 0, 0), "failed") == 0;
    int64_t ckpt = i64(r, 0, 1);
    if (*final) rc = after_final_failure(c, j->id, ckpt, j->kind, why, err);
    if (strcmp(PQgetvalue(r, 0, 0), "cancelled") == 0) rc = after_cancel(c, j->id, err);
  }
  PQclear(r);
  if (rc == MN_OK) return jobs_commit(c, err);
  jobs_rollback(c);
  return rc;
}

mn_status jobs_requeue(PGconn *c, const mn_job *j, const char *owner, mn_error *err)
{
  char id[32];
  FMT_I64(id, j->id);
  const char *p[] = {id};
  PGresult *r;
  mn_status rc = jobs_begin(c, j, owner, err);
  if (rc != MN_OK) return rc;
  rc = db_query(c,
                "UPDATE mnemo.jobs SET state = 'queued', attempt = attempt - 1, run_after = now(),"
                " lease_owner = NULL, lease_until = NULL WHERE id = $1::bigint",
                1, p, &r, "give a job back", err);
  PQclear(r);
  if (rc == MN_OK) {
    rc = db_query(c,
                  "SELECT mnemo.log_job_event('job_requeued', $1::bigint,"
                  " '{\"why\": \"mnemod stopping\"}')",
                  1, p, &r, "record a requeued job", err);
    PQclear(r);
  }
  if (rc == MN_OK) return jobs_commit(c, err);
  jobs_rollback(c);
  return rc;
}

mn_status jobs_wait_ms(PGconn *c, int64_t *ms, mn_error *err)
{
  PGresult *r;
  mn_status rc = db_query(c,
                          "SELECT ceil(extract(epoch FROM least("
                          "   (SELECT min(run_after) FROM mnemo.jobs WHERE state = 'queued'),"
                          "   (SELECT min(lease_until) FROM mnemo.jobs WHERE state = 'running'))"
                          " - now()) * 1000)::bigint",
                          0, NULL, &r, "find the next due job", err);
  if (rc != MN_OK) return rc;
  *ms = PQgetisnull(r, 0, 0) ? -1 : i64(r, 0, 0);
  if (!PQgetisnull(r, 0, 0) && *ms < 0) *ms = 0; /* due 1-2 ms ago is due, not "none" (-1) */
  PQclear(r);
  return MN_OK;
}

mn_status jobs_fresh_due(PGconn *c, const mn_config *cfg, bool *due, char *why, size_t whylen,
                         mn_error *err)
{
  *due = false;
  if (cfg->schedule.min_fresh_bytes <= 0 && cfg->schedule.min_fresh_language_bytes <= 0)
    return MN_OK;
  PGresult *r;
  /* fresh: after the newest refresh's watermark (its outcome aside: a rejected candidate's
   * data does not ask for a second refresh by itself) and after production's */
  mn_status rc = db_query(
      c,
      "WITH since AS (SELECT greatest((SELECT max(watermark) FROM mnemo.jobs"
      "                                 WHERE kind = 'refresh'),"
      "                                (SELECT max(watermark) FROM mnemo.checkpoints"
      "                                 WHERE state = 'production'), 0) AS w),"
      " per AS (SELECT lang, sum(bytes) AS b FROM mnemo.documents, since"
      "         WHERE split = 'train' AND consumed_by IS NULL AND id > since.w GROUP BY lang)"
      " SELECT coalesce(sum(b), 0)::bigint,"
      "        coalesce((SELECT lang FROM per ORDER BY b DESC, lang LIMIT 1), ''),"
      "        coalesce(max(b), 0)::bigint FROM per",
      0, NULL, &r, "measure the fresh data", err);
  if (rc != MN_OK) return rc;
  int64_t total = i64(r, 0, 0), top = i64(r, 0, 2);
  if (cfg->schedule.min_fresh_bytes > 0 && total >= cfg->schedule.min_fresh_bytes) {
    *due = true;
    snprintf(why, whylen, "fresh data: %lld bytes in all", (long long)total);
  } else if (cfg->schedule.min_fresh_language_bytes > 0 &&
             top >= cfg->schedule.min_fresh_language_bytes) {
    *due = true;
    snprintf(why, whylen, "fresh data: %lld bytes in %s", (long long)top, PQgetvalue(r, 0, 1));
  }
  PQclear(r);
  return MN_OK;
}

mn_status jobs_request_refresh(PGconn *c, const char *reason, int64_t *job, mn_error *err)
{
  const char *p[] = {reason};
  PGresult *r;
  mn_status rc =
      db_query(c, "SELECT mnemo.request_refresh($1)", 1, p, &r, "request a refresh", err);
  if (rc != MN_OK) return rc;
  *job = i64(r, 0, 0);
  PQclear(r);
  return MN_OK;
}
