/*
 * child.h -- the daemon's `mnemo` children: start one, learn that it ended, stop it.  Both
 * users of a worker go through here: the job runner (runner.c, one step's worker, watched
 * from mnemod's poll loop: its stdout pipe and SIGCHLD through the signal self-pipe) and
 * the triage thread (triage.c, which blocks until its worker ends).
 *
 * Not for: reading what the child writes (the runner parses its progress lines itself),
 * choosing which `mnemo` to run (runner_worker_path, runner.h).
 *
 * Invariants: a child is started by child_spawn only and reaped exactly once, by
 * child_reap, child_wait or child_kill (never by a bare waitpid(-1)): mnemod has several
 * children at once (the runner's and the triage thread's), and each waits for its own pid.
 * The child dies with the thread that started it (PR_SET_PDEATHSIG): a kill -9 of mnemod
 * leaves no worker at work.  It stays in mnemod's process group, so a terminal's ^C reaches
 * both, as before.  The caller owns the struct (child_init ... child_fini).
 */
#ifndef MNEMO_CHILD_H
#define MNEMO_CHILD_H

#include "common/common.h"

#include <stdbool.h>
#include <sys/types.h>

typedef struct child {
  pid_t pid;   /* > 0 from child_spawn until child_fini or the next spawn; 0: none */
  int pidfd;   /* readable when the child ended (child_wait opens it); -1: not open */
  bool exited; /* reaped: status holds its end */
  int status;  /* waitpid's status, once exited */
} child;

/* child_init -- no child yet */
void child_init(child *ch);

/*
 * child_spawn -- start argv (argv[0] a path, run without a shell) with stdin on /dev/null,
 * stdout on out_fd and stderr on log_fd, every signal unblocked and SIGPIPE at its
 * default; the line "head argv..." is written to log_fd first (for people: a failed write
 * does not stop the work).  The caller closes its copies of out_fd and log_fd.  On failure
 * (fork) err says why and there is no child.  ch must hold no unreaped child.
 */
MN_NODISCARD mn_status child_spawn(child *ch, char *const *argv, int out_fd, int log_fd,
                                   const char *head, mn_error *err);

/* child_reap -- without waiting: true when the child has ended (now or before), its end in
 * ch->status.  For a caller told by SIGCHLD or its output's end of file. */
bool child_reap(child *ch);

typedef enum {
  CHILD_EXITED = 0, /* it ended: ch->status says how */
  CHILD_TIMEOUT,    /* timeout_ms passed; it still runs */
  CHILD_CANCELLED,  /* cancel_fd became readable; it still runs */
} child_wait_result;

/*
 * child_wait -- block until the child ends, timeout_ms passes (< 0: no limit) or cancel_fd
 * (-1: none) is readable, without spinning: poll() on a pidfd of the child beside cancel_fd.
 * On kernels without pidfd_open (before 5.3) it checks every 50 ms instead.
 */
child_wait_result child_wait(child *ch, int timeout_ms, int cancel_fd);

/* child_signal -- send sig to a child that has not been reaped (SIGTERM: the worker saves
 * what it can and exits MN_EXIT_INTERRUPTED); the caller learns of its end as usual */
void child_signal(const child *ch, int sig);

/* child_kill -- SIGKILL and reap (at once: nothing survives SIGKILL); nothing when the
 * child was reaped already or none was started */
void child_kill(child *ch);

/* child_exit_code -- the exit status, or 128 + the signal that ended it (a shell's
 * convention); -1 while it has not been reaped */
int child_exit_code(const child *ch);

/* child_fini -- kill and reap a child still running, close the pidfd; ch is as after
 * child_init */
void child_fini(child *ch);

#endif /* MNEMO_CHILD_H */
