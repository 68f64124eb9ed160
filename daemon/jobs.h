/*
 * jobs.h -- the job queue in PostgreSQL (mnemo.jobs, migration 0004) and what mnemod
 * does with it: claim, lease, fence, retry; the runner that takes a job through its
 * steps with `mnemo` children; the webhook outbox's delivery.
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
#include <sys/types.h>

typedef struct mn_job {
  int64_t id, ckpt, attempt, max_attempts, watermark; /* ckpt, watermark: 0 when not set */
  char kind[16];                                      /* "refresh" or "promote" */
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
/* jobs_fail -- this attempt failed: queued again with backoff, or failed for good (the
 * refresh's checkpoint with it, a job_failed event); fenced.  *final: failed for good. */
MN_NODISCARD mn_status jobs_fail(PGconn *c, const mn_job *j, const char *owner, const char *why,
                                 const mn_config *cfg, bool *final /* OUT */, mn_error *err);
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

/* ---------------------------------------------------------------- the runner
 *
 * One job at a time, driven by mnemod's poll loop: steps run in the daemon (database
 * work, files) or as a `mnemo` child whose JSON progress lines are read from a pipe.
 * Each step is idempotent, so an attempt after a crash re-runs every step and those done
 * already find their outputs.
 */
typedef struct runner runner;

/* runner_new -- owner: this daemon's lease name; cfg must outlive the runner */
MN_NODISCARD mn_status runner_new(const char *owner, runner **out /* OUT */, mn_error *err);
void runner_free(runner *r);
void runner_set_config(runner *r, const mn_config *cfg);
bool runner_busy(const runner *r);
/* runner_fd -- the child's stdout to poll (-1: none) */
int runner_fd(const runner *r);
/* runner_timeout_ms -- when runner_tick must run next (-1: no deadline of its own) */
int runner_timeout_ms(const runner *r);
/* runner_tick -- claim, start and advance jobs, heartbeat, read the child's output, reap it.
 * A database failure returns an error: the caller reconnects (the job's lease covers it). */
MN_NODISCARD mn_status runner_tick(runner *r, PGconn *c, bool readable, mn_error *err);
/* runner_notify -- a NOTIFY on mnemo_jobs: check cancellation and claim at the next tick */
void runner_notify(runner *r);
/* runner_stop -- SIGTERM: ask the child to save and stop (graceful) or kill it; the job
 * is given back without spending its attempt.  Returns once no child runs. */
void runner_stop(runner *r, PGconn *c, bool graceful);
/* runner_abandon -- leadership lost: kill the child and forget the job (its lease ends) */
void runner_abandon(runner *r);
/* runner_child_exited -- SIGCHLD arrived */
void runner_child_exited(runner *r);

/* ---------------------------------------------------------------- webhooks */

typedef struct outbox outbox;
/* outbox_start -- a thread with its own connection delivering mnemo.outbox; NULL url: none */
MN_NODISCARD mn_status outbox_start(const mn_config *cfg, outbox **out /* OUT */, mn_error *err);
void outbox_wake(outbox *o);
void outbox_stop(outbox *o); /* NULL-safe; joins the thread */

/* ---------------------------------------------------------------- triage (triage.c) */

typedef struct triager triager;
/* triage_start -- a thread with its own connection triaging new reports with `worker`
 * (mnemo); cfg is copied */
MN_NODISCARD mn_status triage_start(const mn_config *cfg, const char *worker,
                                    triager **out /* OUT */, mn_error *err);
void triage_stop(triager *t); /* NULL-safe; kills its worker, joins the thread */
/* worker_spawn -- start argv (a `mnemo`) with stdout on out_fd and stderr on log_fd (head
 * and the arguments written there first); it is killed if its parent dies.  The caller
 * closes its copies of the descriptors and reaps *pid. */
MN_NODISCARD mn_status worker_spawn(char *const *argv, int out_fd, int log_fd, const char *head,
                                    pid_t *pid /* OUT */, mn_error *err);
/* runner_worker_path -- daemon.worker, or the mnemo beside this executable */
void runner_worker_path(const mn_config *cfg, char *out, size_t n);

#endif /* MNEMO_JOBS_H */
