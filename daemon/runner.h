/*
 * runner.h -- the job runner of mnemod (runner.c, runner_steps.c): one job at a time,
 * driven by mnemod's poll loop.  Steps run in the daemon (database work, files) or as a
 * `mnemo` child (child.h) whose JSON progress lines are read from a pipe.  Each step is
 * idempotent, so an attempt after a crash re-runs every step and those done already find
 * their outputs.  Not here: the queue's statements (jobs.h), which the runner calls.
 * A header of mnemod's own (daemon.h says which headers of daemon/ are whose).
 */
#ifndef MNEMO_RUNNER_H
#define MNEMO_RUNNER_H

#include "configs/config.h"
#include "daemon/daemon.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct runner runner;

/* runner_create -- a runner with no job; owner: this daemon's lease name.  Call
 * runner_set_config before the first tick. */
MN_NODISCARD mn_status runner_create(const char *owner, runner **out /* OUT */, mn_error *err);
/* runner_destroy -- kill a worker still running (its job's lease ends) and free r; NULL-safe */
void runner_destroy(runner *r);
/* runner_set_config -- cfg must outlive the runner (or the next call) */
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

/* runner_worker_path -- daemon.worker, or the mnemo beside this executable */
void runner_worker_path(const mn_config *cfg, char *out, size_t n);

#endif /* MNEMO_RUNNER_H */
