/*
 * protocol.h -- the contract between mnemod and the worker `mnemo`, in one place that both
 * sides include: the programs' exit codes and the triage batch (the JSONL the daemon
 * writes for `mnemo triage` and the JSONL the worker writes back).  Constants only.
 *
 * Not here: the job spec (configs/, mn_config_dump_worker) and the progress events on the
 * worker's stdout (docs/trainer.md; the daemon reads only "event" and its fields).
 */
#ifndef MNEMO_PROTOCOL_H
#define MNEMO_PROTOCOL_H

/* ---------------------------------------------------------------- exit codes
 * The same four meanings in mnemo, mnemoctl and mnemod (DESIGN.md §3). */
enum {
  MN_EXIT_OK = 0,
  MN_EXIT_FAIL = 1,         /* it failed: the message on stderr says why */
  MN_EXIT_USAGE = 2,        /* the command line was wrong: nothing was done */
  MN_EXIT_GUARD = 3,        /* a guard said no (mnemo guard, mnemoctl approve/promote):
                             * the verdict is complete all the same */
  MN_EXIT_INTERRUPTED = 75, /* stopped by SIGINT/SIGTERM: complete outputs were kept, a
                             * rerun resumes (EX_TEMPFAIL) */
  MN_EXIT_CONFIG = 78,      /* mnemod: its configuration cannot be used (EX_CONFIG): starting
                             * it again will not help (the unit's RestartPreventExitStatus) */
};

/* ---------------------------------------------------------------- the triage batch
 * In (mnemod -> `mnemo triage`), one JSON object a line, the open reports first:
 *   {"kind": "open", "id", "group", "lang", "minhash"}  a report triaged before (hex minhash)
 *   {"kind": "new", "id", "lang", "script", "text", "expected"?}  a report to triage
 * Out (`mnemo triage` -> mnemod), one line per new report:
 *   {"id", "valid", "why"?}                      an unusable report ("why": what is wrong)
 *   {"id", "valid", "detected", "confidence", "second", "mixed", "spans", "group",
 *    "similarity", "minhash", "bpb_text", "bpb_expected"?, "typical_bpb",
 *    "severity" | "no_severity"}                a usable one
 * The daemon stores "id", "detected", "severity", "group", "minhash" and "why" in columns
 * and the rest as the report's triage detail (jsonb).  The keys: */
#define MN_BATCH_KIND      "kind"
#define MN_BATCH_KIND_OPEN "open"
#define MN_BATCH_KIND_NEW  "new"
#define MN_BATCH_ID        "id"
#define MN_BATCH_GROUP     "group"
#define MN_BATCH_LANG      "lang"
#define MN_BATCH_MINHASH   "minhash"
#define MN_BATCH_SCRIPT    "script"
#define MN_BATCH_TEXT      "text"
#define MN_BATCH_EXPECTED  "expected"
#define MN_BATCH_VALID     "valid"
#define MN_BATCH_WHY       "why"
#define MN_BATCH_DETECTED  "detected"
#define MN_BATCH_SEVERITY  "severity"

#endif
