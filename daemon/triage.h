/*
 * triage.h -- the daemon's side of report triage (triage.c, docs/triage.md): a thread with
 * its own connection that hands new reports to `mnemo triage` and records the results.
 * Not the compute side: that is triage/triage.h (language ID, text checks, near-duplicate
 * groups, severity), which runs in the worker, never in mnemod.  Its symbols are called
 * triager_* so that the two never share a name.  A header of mnemod's own (daemon.h says
 * which headers of daemon/ are whose).
 */
#ifndef MNEMO_DAEMON_TRIAGE_H
#define MNEMO_DAEMON_TRIAGE_H

#include "configs/config.h"

typedef struct triager triager;

/* triager_create -- a thread with its own connection triaging new reports with `worker`
 * (mnemo); cfg is copied */
MN_NODISCARD mn_status triager_create(const mn_config *cfg, const char *worker,
                                      triager **out /* OUT */, mn_error *err);
void triager_destroy(triager *t); /* NULL-safe; kills its worker, joins the thread */

#endif /* MNEMO_DAEMON_TRIAGE_H */
