/*
 * child.c -- the daemon's `mnemo` children (child.h): fork and exec with the descriptors
 * set up, reap one pid at a time, wait on a pidfd.
 *
 * Why a pidfd: the triage thread must wait for its worker and also notice a stop request
 * at once, and mnemod's SIGCHLD goes to the main loop's self-pipe, not to that thread.  A
 * pidfd is a descriptor that becomes readable when the child ends, so one poll() covers
 * both, with no sleep loop.  The runner does not need it: its worker's end reaches the main
 * loop as SIGCHLD and as end of file on the stdout pipe, and it calls child_reap.
 */
#define _GNU_SOURCE
#include "daemon/child.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

void child_init(child *ch)
{
  ch->pid = 0;
  ch->pidfd = -1;
  ch->exited = false;
  ch->status = 0;
}

mn_status child_spawn(child *ch, char *const *argv, int out_fd, int log_fd, const char *head,
                      mn_error *err)
{
  assert(ch->pid == 0 || ch->exited);
  child_fini(ch);
  /* the log is for people: a failed write of the header does not stop the work */
  if (dprintf(log_fd, "%s", head) < 0) {
  }
  for (int i = 0; argv[i]; i++)
    if (dprintf(log_fd, " %s", argv[i]) < 0) break;
  if (dprintf(log_fd, "\n") < 0) {
  }
  /* the worker's environment: the daemon's without its database secrets (the worker has no
   * database; its config leaves database.* out for the same reason) and with
   * MNEMO_SUPERVISED=1 (it then says what kind of error stopped it, as a JSON line); made
   * before the fork, where allocating is safe */
  static const char *const dropped[] = {"MNEMO_SUPERVISED=", "MNEMO_DB=", "PGPASSWORD=",
                                        "MNEMO_DB_PASSWORD=", "MNEMO_WEBHOOK_SECRET="};
  extern char **environ;
  size_t nenv = 0;
  while (environ[nenv])
    nenv++;
  char **envp = malloc((nenv + 2) * sizeof *envp);
  if (!envp) return mn_error_set(err, MN_ERR_NOMEM, "out of memory starting the worker");
  size_t k = 0;
  for (size_t i = 0; i < nenv; i++) {
    bool keep = true;
    for (size_t d = 0; d < sizeof dropped / sizeof dropped[0]; d++)
      if (strncmp(environ[i], dropped[d], strlen(dropped[d])) == 0) keep = false;
    if (keep) envp[k++] = environ[i];
  }
  envp[k++] = (char *)"MNEMO_SUPERVISED=1";
  envp[k] = NULL;
  /* every signal blocked across the fork: until the child has put back the default
   * handlers, a signal sent to it (the runner's SIGTERM) must not run mnemod's handler there,
   * which would write to mnemod's signal pipe and stop mnemod instead of the worker */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  pid_t parent = getpid();
  pid_t pid = fork();
  int fork_errno = errno;
  if (pid != 0) {
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    free(envp);
  }
  if (pid < 0)
    return mn_error_set(err, MN_ERR_IO, "could not fork the worker: %s", strerror(fork_errno));
  if (pid == 0) {
    /* the worker dies with the daemon (or the thread that started it): a kill -9 of mnemod
     * leaves no orphan at work */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    /* the defaults first, then the signals unblocked (a stop then reaches the worker) */
    static const int caught[] = {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD};
    for (size_t i = 0; i < sizeof caught / sizeof caught[0]; i++)
      signal(caught[i], SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0) dup2(nul, 0);
    if (nul > 2) close(nul);
    dup2(out_fd, 1);
    dup2(log_fd, 2);
    execve(argv[0], argv, envp);
    _exit(127);
  }
  ch->pid = pid;
  return MN_OK;
}

bool child_reap(child *ch)
{
  if (ch->pid <= 0) return false;
  if (ch->exited) return true;
  int st;
  pid_t w;
  while ((w = waitpid(ch->pid, &st, WNOHANG)) < 0 && errno == EINTR) {
  }
  if (w == ch->pid) {
    ch->exited = true;
    ch->status = st;
  } else if (w < 0) { /* not our child any more (ECHILD): nothing left to wait for */
    ch->exited = true;
    ch->status = SIGKILL; /* read as "killed": a signal, as WIFSIGNALED says of it */
  }
  return ch->exited;
}

child_wait_result child_wait(child *ch, int timeout_ms, int cancel_fd)
{
  if (ch->pid <= 0 || child_reap(ch)) return CHILD_EXITED;
  if (ch->pidfd < 0) ch->pidfd = (int)syscall(SYS_pidfd_open, ch->pid, 0);
  double deadline = timeout_ms < 0 ? -1 : mn_monotonic_ms() + timeout_ms;
  for (;;) {
    int wait_ms = -1;
    if (deadline >= 0) {
      double left = deadline - mn_monotonic_ms();
      if (left <= 0) return CHILD_TIMEOUT;
      wait_ms = (int)left + 1;
    }
    if (ch->pidfd < 0 && (wait_ms < 0 || wait_ms > 50)) wait_ms = 50; /* no pidfd: check */
    struct pollfd p[2] = {{.fd = ch->pidfd, .events = POLLIN}, {.fd = cancel_fd, .events = POLLIN}};
    int n = poll(p, 2, wait_ms); /* a negative fd is skipped */
    if (n < 0 && errno != EINTR) n = 0;
    if (child_reap(ch)) return CHILD_EXITED;
    if (n > 0 && p[1].revents) return CHILD_CANCELLED;
  }
}

void child_signal(const child *ch, int sig)
{
  if (ch->pid > 0 && !ch->exited) kill(ch->pid, sig);
}

void child_kill(child *ch)
{
  if (ch->pid <= 0 || ch->exited) return;
  kill(ch->pid, SIGKILL);
  int st = SIGKILL;
  while (waitpid(ch->pid, &st, 0) < 0 && errno == EINTR) {
  }
  ch->exited = true;
  ch->status = st;
}

int child_exit_code(const child *ch)
{
  if (ch->pid <= 0 || !ch->exited) return -1;
  return WIFEXITED(ch->status) ? WEXITSTATUS(ch->status) : 128 + WTERMSIG(ch->status);
}

void child_fini(child *ch)
{
  child_kill(ch);
  if (ch->pidfd >= 0) close(ch->pidfd);
  child_init(ch);
}
