/*
 * runner_int.h -- what the job runner's two files share: the runner's state, the shape of
 * a step, the step lists and the path and argument helpers.  Not a public header: only
 * daemon/runner.c (the job and its child) and daemon/runner_steps.c (what each step
 * does) include it.
 */
#ifndef MNEMO_RUNNER_INT_H
#define MNEMO_RUNNER_INT_H

#include "daemon/child.h"
#include "daemon/jobs.h"
#include "daemon/runner.h"

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

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
  bool permanent;         /* the running step's worker said its failure would come again */
  char worker_error[400]; /* and what it said (its error event's message) */
  /* the child: a step's worker from spawn until child_done or kill_child (child.pid 0
   * otherwise) */
  child child;
  int out_fd, extra_ok; /* extra_ok: an exit code besides 0 that means done (MN_EXIT_GUARD) */
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

/* the steps of a refresh and of a promotion, in order (runner_steps.c) */
extern const step runner__refresh_steps[];
extern const int runner__refresh_nsteps;
extern const step runner__promote_steps[];
extern const int runner__promote_nsteps;

/* runner__path_job -- <data_dir>/jobs/<job>[/file] */
void runner__path_job(const runner *r, char *out, size_t n, const char *file);
/* runner__path_ckpt -- <data_dir>/checkpoints/<id>[/file] */
void runner__path_ckpt(const runner *r, int64_t id, char *out, size_t n, const char *file);
bool runner__exists(const char *p);
/* runner__rm_tree -- remove a folder and what is in it (best effort) */
void runner__rm_tree(const char *p);
/* runner__args_reset -- forget the last child's arguments */
void runner__args_reset(runner *r);

#endif /* MNEMO_RUNNER_INT_H */
