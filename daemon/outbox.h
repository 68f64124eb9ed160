/*
 * outbox.h -- webhook delivery of mnemod (outbox.c): a thread with its own connection
 * sends the rows of mnemo.outbox (Standard Webhooks; signing in webhook.h).  Not here: the
 * rows themselves, which each event of interest writes in its own transaction (the
 * migrations' mnemo.log_event).  A header of mnemod's own (daemon.h says which headers of
 * daemon/ are whose).
 */
#ifndef MNEMO_OUTBOX_H
#define MNEMO_OUTBOX_H

#include "configs/config.h"

typedef struct outbox outbox;

/* outbox_create -- a thread with its own connection delivering mnemo.outbox; *out NULL
 * (and MN_OK) when webhooks.url is not set.  cfg is copied. */
MN_NODISCARD mn_status outbox_create(const mn_config *cfg, outbox **out /* OUT */, mn_error *err);
/* outbox_wake -- a NOTIFY on mnemo_outbox: look for due rows now (NULL-safe) */
void outbox_wake(outbox *o);
void outbox_destroy(outbox *o); /* NULL-safe; joins the thread */

#endif /* MNEMO_OUTBOX_H */
