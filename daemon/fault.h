/*
 * fault.h -- a test-only hook that stops the job runner at a chosen step, so a test can
 * kill the daemon, its worker or PostgreSQL at exactly that point (tests/daemon/
 * test_faults.sh).  It does nothing unless MNEMO_FAULT_PAUSE is set; fault.c says how.
 */
#ifndef MNEMO_FAULT_H
#define MNEMO_FAULT_H

#include <sys/types.h>

/*
 * fault_point -- the runner is about to run step `step` of a job of kind `kind` (child 0),
 * or has just started that step's worker (child: its pid).  When an armed entry of
 * MNEMO_FAULT_PAUSE names this point, it fires once: the process stops itself (SIGSTOP)
 * until the test continues it (SIGCONT) or kills it -- after the point's worker, if any,
 * was stopped too -- or, for an entry ending "=write", the daemon's next atomic write
 * fails.  Without the variable it returns at once.
 */
void fault_point(const char *kind, const char *step, pid_t child);

#endif /* MNEMO_FAULT_H */
