/*
 * triage.h -- the daemon's side of report triage (triage.c, docs/triage.md): a thread with
 * its own connection that hands new reports to `mnemo triage` and records the results.
 * Not the compute side: that is triage/triage.h (language ID, text checks, near-duplicate
 * groups, severity), which runs in the worker, never in mnemod.  A header of mnemod's own (daemon.h
 * says which headers of daemon/ are whose).
 */
#ifndef MNEMO_DAEMON_TRIAGE_H
#define MNEMO_DAEMON_TRIAGE_H

#include "configs/config.h"

typedef struct triager triager;

/* triage_start -- a thread with its own connection triaging new reports with `worker`
 * (mnemo); cfg is copied */
MN_NODISCARD mn_status triage_start(const mn_config *cfg, const char *worker,
                                    triager **out /* OUT */, mn_error *err);
void triage_stop(triager *t); /* NULL-safe; kills its worker, joins the thread */

#endif /* MNEMO_DAEMON_TRIAGE_H */
