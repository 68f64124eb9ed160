/*
 * cmd_triage.c -- `mnemo triage`: a batch of user reports from mnemod through triage/
 * (checks, language, near-duplicate groups, severity), one result line per new report.
 */
#include "triage/triage.h"
#include "worker/worker_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

const worker_opt worker__triage_opts[] = {
    WORKER_TEXT("checkpoint", checkpoint, "CKPT", "the model in production (bits per byte)"),
    WORKER_TEXT("model", model, "LID", "the language identifier"),
    WORKER_TEXT("typical", typical, "FILE", "typical held-out bits per byte (cached here)"),
    WORKER_TEXT("heldout", heldout, "JSONL", "held-out text to compute --typical from when absent"),
    WORKER_OPT_END,
};

int worker__cmd_triage(worker_ctx *w, worker_args *o)
{
  if (!o->checkpoint || !o->model || !o->typical || o->npos > 1)
    return worker__usage(
        "triage needs --checkpoint CKPT --model LID --typical FILE [--heldout JSONL] "
        "and at most one FILE");
  mn_error err = {0};
  triage_config c = {.checkpoint = o->checkpoint,
                     .lid = o->model,
                     .typical = o->typical,
                     .heldout = o->heldout,
                     .max_text_bytes = w->cfg.triage.max_text_bytes,
                     .group_similarity = w->cfg.triage.group_similarity,
                     .seq_len = (int)w->cfg.train.seq_len};
  FILE *f = o->npos ? fopen(o->pos[0], "r") : stdin;
  if (!f) {
    mn_error_set(&err, MN_ERR_IO, "could not open \"%s\": %s", o->pos[0], strerror(errno));
    return worker__fail(&err);
  }
  mn_status rc = triage_run(&c, f, o->npos ? o->pos[0] : "stdin", stdout, &err);
  if (f != stdin) fclose(f);
  return rc == MN_OK ? MN_EXIT_OK : worker__fail(&err);
}
