/*
 * fault.c -- the job runner's test-only fault hook (fault.h), for tests/daemon/
 * test_faults.sh: it lets a test kill the daemon, the worker or PostgreSQL at one chosen
 * step of a refresh or a promotion instead of at a moment found by luck.
 *
 *   MNEMO_FAULT_PAUSE="ENTRY[,ENTRY]..."     read once, at the first step of the process
 *   ENTRY = KIND:STEP[@child][=write]
 *
 *   refresh:install        stop (raise(SIGSTOP)) just before the step runs
 *   refresh:finetune@child stop the worker the step just started, once it runs mnemo (its
 *                          exec done: PR_SET_PDEATHSIG still holds, so it dies with the
 *                          daemon), then stop the daemon; the worker cannot finish before
 *                          the test kills it, and a test that wants it to go on continues
 *                          both (a step that starts no worker never reaches this point)
 *   promote:card=write     do not stop: the daemon's next atomic write fails (EIO, through
 *                          common's mn_fault_arm) -- the full disk of a test that cannot
 *                          mount a small tmpfs
 *
 * KIND is a job kind (refresh, promote), STEP a step name of runner.c.  Each entry fires
 * once per process: a daemon that retries the job in the same process passes the point
 * the second time.  Before stopping, the hook logs "fault point" (kind, step, at, child)
 * with one write, so a test that waits for that line and then for the process state T
 * knows where the daemon stands and which worker to kill.  The test continues the
 * daemon with SIGCONT or kills it.
 *
 * Not for production: with the variable unset (the case of every deployment) fault_point
 * returns after one getenv, on the first call only.  The runner lives on one thread, so
 * the table needs no lock.
 */
#include "daemon/fault.h"

#include "common/common.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_ENTRIES 64

typedef struct entry {
  char kind[16], step[32];
  bool child; /* @child: after the worker started, not before the step */
  bool write; /* =write: fail the next atomic write instead of stopping */
  bool fired;
} entry;

static entry entries[MAX_ENTRIES];
static int nentries = -1; /* -1: the variable not read yet */

/* parse -- one ENTRY of MNEMO_FAULT_PAUSE into e; false when it is malformed */
static bool parse(const char *s, size_t n, entry *e)
{
  char buf[96];
  if (n == 0 || n >= sizeof buf) return false;
  memcpy(buf, s, n);
  buf[n] = 0;
  memset(e, 0, sizeof *e);
  char *eq = strchr(buf, '=');
  if (eq) {
    if (strcmp(eq, "=write") != 0) return false;
    e->write = true;
    *eq = 0;
  }
  char *at = strchr(buf, '@');
  if (at) {
    if (strcmp(at, "@child") != 0) return false;
    e->child = true;
    *at = 0;
  }
  char *colon = strchr(buf, ':');
  if (!colon || colon == buf || !colon[1]) return false;
  *colon = 0;
  if (strlen(buf) >= sizeof e->kind || strlen(colon + 1) >= sizeof e->step) return false;
  snprintf(e->kind, sizeof e->kind, "%s", buf);
  snprintf(e->step, sizeof e->step, "%s", colon + 1);
  return true;
}

static void load(void)
{
  nentries = 0;
  const char *v = getenv("MNEMO_FAULT_PAUSE");
  if (!v || !*v) return;
  while (*v && nentries < MAX_ENTRIES) {
    size_t n = strcspn(v, ",");
    if (parse(v, n, &entries[nentries]))
      nentries++;
    else
      mn_log(MN_LOG_WARN, "fault point ignored: not KIND:STEP[@child][=write]",
             MN_KV_S("variable", "MNEMO_FAULT_PAUSE"));
    v += n;
    if (*v == ',') v++;
  }
  mn_log(MN_LOG_WARN, "fault points armed (a test run)", MN_KV_I("points", nentries));
}

/* hold -- stop the worker once it has become mnemo (2 s at most): before its exec it may
 * not have set its parent-death signal yet */
static void hold(pid_t child)
{
  char link[64], self[PATH_MAX], exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  self[n > 0 ? n : 0] = 0;
  snprintf(link, sizeof link, "/proc/%d/exe", (int)child);
  for (int i = 0; i < 2000; i++) {
    ssize_t k = readlink(link, exe, sizeof exe - 1);
    if (k < 0 && errno == ENOENT) break; /* it ended already */
    if (k > 0) {
      exe[k] = 0;
      if (strcmp(exe, self) != 0) break;
    }
    nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
  }
  kill(child, SIGSTOP);
}

void fault_point(const char *kind, const char *step, pid_t child)
{
  if (nentries < 0) load();
  for (int i = 0; i < nentries; i++) {
    entry *e = &entries[i];
    if (e->fired || e->child != (child > 0) || strcmp(e->kind, kind) != 0 ||
        strcmp(e->step, step) != 0)
      continue;
    e->fired = true;
    if (child > 0 && !e->write) hold(child);
    mn_log(MN_LOG_WARN, "fault point", MN_KV_S("kind", kind), MN_KV_S("step", step),
           MN_KV_S("at", child > 0 ? "child" : "before"), MN_KV_I("child", child),
           MN_KV_S("action", e->write ? "write" : "stop"));
    if (e->write)
      mn_fault_arm(MN_FAULT_WRITE, 1);
    else
      raise(SIGSTOP);
    return;
  }
}
