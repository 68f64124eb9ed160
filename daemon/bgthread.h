/*
 * bgthread.h -- a background thread of mnemod with its own PostgreSQL connection: the
 * skeleton that webhook delivery (outbox.c) and report triage (triage.c) share.  The module
 * owns the thread, the connection (made again with a doubling wait when it fails), a wake
 * pipe, the stop request and the join; its user supplies what one round does.
 *
 * The loop: connect when there is no good connection (then the setup callback, e.g.
 * LISTEN); run one round; wait in poll() on the wake pipe, the stop pipe and (watch_socket)
 * the connection's socket for as long as the round asked, 60 s at most; again until a stop
 * is asked.  A connection that cannot be made is logged as "NAME: database unreachable"
 * and retried after 0.5 s, 1 s, 2 s ... 30 s.  A round that failed waits the same way (up
 * to fail_backoff_max_ms); a good round resets the wait to 0.5 s.
 *
 * Not for: the daemon's main loop (mnemod.c), which has its own poll and signals, nor for
 * work that must not run twice: a round may be repeated after any failure or restart.
 * A header of mnemod's own (daemon.h says which headers of daemon/ are whose).
 */
#ifndef MNEMO_BGTHREAD_H
#define MNEMO_BGTHREAD_H

#include "daemon/daemon.h"

#include <stdbool.h>

typedef struct bgthread bgthread;

/* what a round asks of the loop */
typedef enum {
  BGTHREAD_IDLE = 0, /* done: wait for a wake-up, the socket or *wait_ms */
  BGTHREAD_AGAIN,    /* there is more to do: the next round at once */
  BGTHREAD_FAILED,   /* failed (the round logged why): back off; the connection is kept
                      * unless libpq says it is bad */
  BGTHREAD_LOST,     /* the connection failed (the round logged why): drop it, back off */
} bgthread_next;

/* bgthread_round_fn -- one round on connection c.  *wait_ms comes in as 60000 and may be
 * lowered (the time until something is due).  Long rounds look at bgthread_stopping. */
typedef bgthread_next (*bgthread_round_fn)(bgthread *bg, PGconn *c, void *ctx, int *wait_ms);
/* bgthread_setup_fn -- after each new connection (LISTEN ...); a failure counts as a
 * connection that could not be made */
typedef mn_status (*bgthread_setup_fn)(PGconn *c, void *ctx, mn_error *err);

typedef struct bgthread_spec {
  const char *name;          /* in logs ("webhooks", "triage") and the connection's
                              * application_name ("mnemod webhooks"); copied */
  const char *conninfo;      /* copied */
  int64_t connect_timeout_s; /* <= 0: libpq's default */
  bool watch_socket;         /* the connection's socket wakes the loop (notifications) */
  int fail_backoff_max_ms;   /* the longest wait after BGTHREAD_FAILED */
  bgthread_setup_fn setup;   /* NULL: none */
  bgthread_round_fn round;   /* required */
  void *ctx;                 /* the callbacks'; borrowed: it must outlive the thread */
} bgthread_spec;

/*
 * bgthread_create -- start the thread.  On success *out owns it (bgthread_destroy); on
 * failure *out is NULL, err says why and nothing needs freeing.
 */
MN_NODISCARD mn_status bgthread_create(const bgthread_spec *spec, bgthread **out /* OUT */,
                                       mn_error *err);
/* bgthread_wake -- run a round soon (NULL-safe; from any thread; never blocks) */
void bgthread_wake(bgthread *bg);
/* bgthread_stopping -- a stop was asked: a round in progress should end soon */
bool bgthread_stopping(const bgthread *bg);
/* bgthread_stop_fd -- a descriptor that becomes readable when a stop is asked and stays so
 * (for a round that blocks in its own poll(), e.g. waiting for a child) */
int bgthread_stop_fd(const bgthread *bg);
/* bgthread_destroy -- ask the thread to stop, join it (its round in progress ends first),
 * close its connection and free it.  NULL-safe. */
void bgthread_destroy(bgthread *bg);

#endif /* MNEMO_BGTHREAD_H */
