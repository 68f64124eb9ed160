/*
 * bgthread.c -- the background-thread skeleton of mnemod (bgthread.h): one thread, one
 * connection made again with backoff, a wake pipe and a stop pipe.
 *
 * Invariants: only the thread touches the connection; other threads only write to the
 * pipes and read the stop flag.  The wake pipe is drained by the loop each time it wakes;
 * the stop pipe is written once, by bgthread_destroy, and never drained, so a round that
 * polls it (bgthread_stop_fd) cannot miss the request.  Both pipes are non-blocking: a full
 * wake pipe means a wake-up is pending anyway.
 */
#define _GNU_SOURCE /* pipe2 */
#include "daemon/bgthread.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WAIT_MAX_MS        60000
#define BACKOFF_MIN_MS     500
#define CONNECT_BACKOFF_MS 30000 /* the longest wait for a connection */

struct bgthread {
  pthread_t thread;
  int wake[2], stop[2];
  atomic_bool stopping;
  char name[64], app[80];
  char *conninfo;
  int64_t connect_timeout_s;
  bool watch_socket;
  int fail_backoff_max_ms;
  bgthread_setup_fn setup;
  bgthread_round_fn round;
  void *ctx;
};

/* backoff -- the wait now, and the next one doubled up to max */
static int backoff(int *next, int max)
{
  int now = *next;
  *next = *next < max ? *next * 2 : max;
  return now;
}

static PGconn *connect_db(bgthread *bg)
{
  mn_error err = {0};
  PGconn *c = NULL;
  db_options opt = {.conninfo = bg->conninfo,
                    .application_name = bg->app,
                    .connect_timeout_s = bg->connect_timeout_s};
  if (db_connect(&opt, &c, &err) == MN_OK && (!bg->setup || bg->setup(c, bg->ctx, &err) == MN_OK))
    return c;
  char msg[128];
  snprintf(msg, sizeof msg, "%s: database unreachable", bg->name);
  mn_log_error(msg, &err);
  PQfinish(c);
  return NULL;
}

static void *run(void *arg)
{
  bgthread *bg = arg;
  PGconn *c = NULL;
  int next_ms = BACKOFF_MIN_MS;
  while (!atomic_load(&bg->stopping)) {
    int wait_ms = WAIT_MAX_MS;
    if (!c || PQstatus(c) != CONNECTION_OK) {
      PQfinish(c);
      c = connect_db(bg);
    }
    if (c) {
      bgthread_next n = bg->round(bg, c, bg->ctx, &wait_ms);
      if (n == BGTHREAD_AGAIN) {
        next_ms = BACKOFF_MIN_MS;
        continue;
      }
      if (n == BGTHREAD_IDLE) next_ms = BACKOFF_MIN_MS;
      if (n == BGTHREAD_FAILED) wait_ms = backoff(&next_ms, bg->fail_backoff_max_ms);
      if (n == BGTHREAD_LOST) {
        PQfinish(c);
        c = NULL;
        wait_ms = backoff(&next_ms, CONNECT_BACKOFF_MS);
      }
    } else {
      wait_ms = backoff(&next_ms, CONNECT_BACKOFF_MS);
    }
    struct pollfd p[3] = {{.fd = bg->wake[0], .events = POLLIN},
                          {.fd = bg->stop[0], .events = POLLIN},
                          {.fd = c && bg->watch_socket ? PQsocket(c) : -1, .events = POLLIN}};
    if (poll(p, 3, wait_ms) > 0 && p[0].revents) {
      char buf[64];
      while (read(bg->wake[0], buf, sizeof buf) > 0) {
      }
    }
  }
  PQfinish(c);
  return NULL;
}

static void close_pipes(bgthread *bg)
{
  for (int i = 0; i < 2; i++) {
    if (bg->wake[i] >= 0) close(bg->wake[i]);
    if (bg->stop[i] >= 0) close(bg->stop[i]);
  }
}

mn_status bgthread_create(const bgthread_spec *spec, bgthread **out, mn_error *err)
{
  mn_status rc = MN_OK;
  *out = NULL;
  bgthread *bg = calloc(1, sizeof *bg);
  if (!bg) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  bg->wake[0] = bg->wake[1] = bg->stop[0] = bg->stop[1] = -1;
  snprintf(bg->name, sizeof bg->name, "%s", spec->name);
  snprintf(bg->app, sizeof bg->app, "mnemod %s", spec->name);
  bg->conninfo = strdup(spec->conninfo ? spec->conninfo : "");
  bg->connect_timeout_s = spec->connect_timeout_s;
  bg->watch_socket = spec->watch_socket;
  bg->fail_backoff_max_ms = spec->fail_backoff_max_ms;
  bg->setup = spec->setup;
  bg->round = spec->round;
  bg->ctx = spec->ctx;
  if (!bg->conninfo) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    goto out;
  }
  if (pipe2(bg->wake, O_CLOEXEC | O_NONBLOCK) != 0 ||
      pipe2(bg->stop, O_CLOEXEC | O_NONBLOCK) != 0) {
    rc = mn_error_set(err, MN_ERR_IO, "could not start the %s thread: %s", bg->name,
                      strerror(errno));
    goto out;
  }
  int e = pthread_create(&bg->thread, NULL, run, bg);
  if (e != 0) {
    rc = mn_error_set(err, MN_ERR_INTERNAL, "could not start the %s thread: %s", bg->name,
                      strerror(e));
    goto out;
  }
  *out = bg;
  bg = NULL; /* the caller owns it now */
out:
  if (bg) {
    close_pipes(bg);
    free(bg->conninfo);
    free(bg);
  }
  assert((rc == MN_OK) == (*out != NULL));
  return rc;
}

void bgthread_wake(bgthread *bg)
{
  if (bg && write(bg->wake[1], "w", 1) < 0) { /* full: a wake-up is pending anyway */
  }
}

bool bgthread_stopping(const bgthread *bg)
{
  return atomic_load(&bg->stopping);
}

int bgthread_stop_fd(const bgthread *bg)
{
  return bg->stop[0];
}

void bgthread_destroy(bgthread *bg)
{
  if (!bg) return;
  atomic_store(&bg->stopping, true);
  if (write(bg->stop[1], "s", 1) < 0) { /* cannot be full: written once */
  }
  pthread_join(bg->thread, NULL);
  close_pipes(bg);
  free(bg->conninfo);
  free(bg);
}
