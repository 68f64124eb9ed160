/*
 * jobs.h -- the job queue in PostgreSQL (mnemo.jobs, migration 0004) and what mnemod
 * does with it: claim, lease, fence, retry (jobs.c).  Not here: the runner that takes a
 * claimed job through its steps (runner.h).  A header of mnemod's own (daemon.h says
 * which headers of daemon/ are whose).
 *
 * Claims use FOR UPDATE SKIP LOCKED and increment the attempt; a running job holds a
 * lease on the database clock that the heartbeat renews; every write of a job's results
 * happens in a transaction that first checks (id, attempt, owner) still hold the job --
 * the attempt is a fencing token, so a daemon that lost its lease cannot write over the
 * attempt that replaced it.  A job past its lease is taken back: queued again with
 * backoff, or failed with its last error once its attempts are spent.
 */
#ifndef MNEMO_JOBS_H
#define MNEMO_JOBS_H

#include "configs/config.h"
#include "daemon/daemon.h"

#include <jansson.h>

typedef struct mn_job {
  int64_t id, ckpt, attempt, max_attempts, watermark; /* ckpt, watermark: 0 when not set */
  int64_t retry_of;   /* refresh: the refresh it retries (0: none; migration 0007) */
  char kind[16];      /* "refresh" or "promote" */
  char protect[1024]; /* refresh: its finetune.guard_boosts ("" for none) */
  bool cancel_requested;
} mn_job;

/* jobs_claim -- take the next due job; *got false when there is none. */
MN_NODISCARD mn_status jobs_claim(PGconn *c, const char *owner, const mn_config *cfg,
                                  mn_job *out /* OUT */, bool *got /* OUT */, mn_error *err);

/* jobs_reap -- take back running jobs past their lease, or held by owner but not by its
 * runner (except job `running`, 0: none); *n counts them. */
MN_NODISCARD mn_status jobs_reap(PGconn *c, const char *owner, int64_t running,
                                 const mn_config *cfg, int *n /* OUT */, mn_error *err);

/* jobs_heartbeat -- renew the lease and store progress (NULL: unchanged); *held false when
 * the job is no longer this attempt's; *cancel when an operator asked to cancel it. */
MN_NODISCARD mn_status jobs_heartbeat(PGconn *c, const mn_job *j, const char *owner,
                                      int64_t lease_s, const char *step, const json_t *progress,
                                      bool *held /* OUT */, bool *cancel /* OUT */, mn_error *err);

/* jobs_begin -- BEGIN and check the fence; MN_ERR_STATE (rolled back) when the job moved on. */
MN_NODISCARD mn_status jobs_begin(PGconn *c, const mn_job *j, const char *owner, mn_error *err);
/* jobs_commit / jobs_rollback -- end what jobs_begin started */
MN_NODISCARD mn_status jobs_commit(PGconn *c, mn_error *err);
void jobs_rollback(PGconn *c);

/* jobs_finish -- succeeded or cancelled, with a note; fenced */
MN_NODISCARD mn_status jobs_finish(PGconn *c, const mn_job *j, const char *owner, const char *state,
                                   const char *note, mn_error *err);
/* jobs_finish_in -- jobs_finish inside a transaction the caller opened with jobs_begin (and
 * commits): so a step's last write and the job's end commit together.  With protect (a
 * refresh whose candidate a guard rejected) its retry is queued in it too, protecting those
 * languages (mnemo.guard_retry); *retry (may be NULL) the retry's id, 0 when none may be
 * queued (a retry itself, or another refresh is queued or running). */
MN_NODISCARD mn_status jobs_finish_in(PGconn *c, const mn_job *j, const char *state,
                                      const char *note, const char *protect,
                                      int64_t *retry /* OUT */, mn_error *err);
/* jobs_fail -- this attempt failed: queued again with backoff, or failed for good (its
 * attempts spent, or permanent: a failure another attempt would meet again; the refresh's
 * checkpoint with it, a job_failed event); fenced.  *final: failed for good. */
MN_NODISCARD mn_status jobs_fail(PGconn *c, const mn_job *j, const char *owner, const char *why,
                                 bool permanent, const mn_config *cfg, bool *final /* OUT */,
                                 mn_error *err);
/* jobs_requeue -- give the job back without spending its attempt (SIGTERM); fenced */
MN_NODISCARD mn_status jobs_requeue(PGconn *c, const mn_job *j, const char *owner, mn_error *err);

/* jobs_wait_ms -- how long until a queued job is due or a lease ends (-1: nothing) */
MN_NODISCARD mn_status jobs_wait_ms(PGconn *c, int64_t *ms /* OUT */, mn_error *err);

/* jobs_fresh_due -- whether enough fresh training text arrived since the last refresh
 * (schedule.min_fresh_bytes, schedule.min_fresh_language_bytes); *why says which */
MN_NODISCARD mn_status jobs_fresh_due(PGconn *c, const mn_config *cfg, bool *due /* OUT */,
                                      char *why, size_t whylen, mn_error *err);

/* jobs_request_refresh -- mnemo.request_refresh(reason); *job the one queued or running */
MN_NODISCARD mn_status jobs_request_refresh(PGconn *c, const char *reason, int64_t *job /* OUT */,
                                            mn_error *err);

#endif /* MNEMO_JOBS_H */
