/*
 * worker_int.h -- what the files of the worker program `mnemo` share: its state, the
 * command table's shape, the option tables' shape, and the helpers the commands call
 * (error and usage messages, progress lines on stdout and on a terminal, the model's shape
 * from the config).
 *
 * Not part of any library's interface: only the files of worker/ include it.  The
 * work itself is library code (trainer/trainer.h, trainer/train.h, guards/, triage/,
 * replay/); a command parses nothing by hand and prints what its library returns.
 */
#ifndef MNEMO_WORKER_INT_H
#define MNEMO_WORKER_INT_H

#include "common/protocol.h"
#include "configs/config.h"
#include "trainer/trainer.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The values of every command option; each command's table says which it takes (and an
 * option a command does not list is refused before it runs).  Zero: not given. */
typedef struct worker_args {
  const char *out, *resume, *checkpoint, *lang, *prompt, *split, *tags, *store, *previous;
  const char *weighting, *spec, *parallel, *reference, *probes, *sets, *cache, *baseline;
  const char *candidate, *must_improve, *history, *model, *typical, *heldout, *device, *math;
  const char *tokenizer, *script;
  const char *balance, *parity;
  int64_t tokens, max_tokens, top_k, steps, seed, capacity, windows, max_items, max_item_bytes;
  int64_t max_bytes, vocab, rounds, tag_rows;
  double temperature, gamma, alpha, epochs;
  bool per_doc, stages, ewc, floor, dev_out;
  char **pos; /* the arguments that are not options, in order */
  int npos;
} worker_args;

typedef struct worker_ctx {
  mn_config cfg;
  bool json; /* --json: JSON lines even on a terminal */
} worker_ctx;

/* One option of a command, stored at offset in worker_args. */
typedef enum worker_opt_kind {
  WORKER_OPT_TEXT,  /* --name VALUE: a string */
  WORKER_OPT_COUNT, /* --name N: a non-negative integer */
  WORKER_OPT_REAL,  /* --name X: a number in (lo, hi] (hi infinite: (lo, inf)) */
  WORKER_OPT_FLAG,  /* --name: true */
} worker_opt_kind;

typedef struct worker_opt {
  const char *name; /* without the leading "--" */
  worker_opt_kind kind;
  size_t offset;
  const char *value; /* what the help calls the value ("FILE", "N"); NULL for a flag */
  double lo, hi;     /* WORKER_OPT_REAL: (lo, hi]; WORKER_OPT_COUNT: hi the most (0: INT32_MAX) */
  const char *help;
} worker_opt;

#define WORKER_TEXT(n, field, v, h)                                                                \
  {                                                                                                \
    (n), WORKER_OPT_TEXT, offsetof(worker_args, field), (v), 0, 0, (h)                             \
  }
/* a count is 0 to INT32_MAX; WORKER_COUNT_UP_TO gives another most (bytes, tokens: WORKER_BIG,
 * exact in a double; INT64_MAX: any int64) */
#define WORKER_BIG 1000000000000000LL
#define WORKER_COUNT(n, field, v, h)                                                               \
  {                                                                                                \
    (n), WORKER_OPT_COUNT, offsetof(worker_args, field), (v), 0, 0, (h)                            \
  }
#define WORKER_COUNT_UP_TO(n, field, v, most, h)                                                   \
  {                                                                                                \
    (n), WORKER_OPT_COUNT, offsetof(worker_args, field), (v), 0, (double)(most), (h)               \
  }
#define WORKER_REAL(n, field, v, lo, hi, h)                                                        \
  {                                                                                                \
    (n), WORKER_OPT_REAL, offsetof(worker_args, field), (v), (lo), (hi), (h)                       \
  }
#define WORKER_FLAG(n, field, h)                                                                   \
  {                                                                                                \
    (n), WORKER_OPT_FLAG, offsetof(worker_args, field), NULL, 0, 0, (h)                            \
  }
#define WORKER_OPT_END                                                                             \
  {                                                                                                \
    NULL, WORKER_OPT_TEXT, 0, NULL, 0, 0, NULL                                                     \
  }

/* One row of the command table (mnemo.c): `mnemo NAME [SUB] ARGS`. */
typedef struct worker_command {
  const char *name;
  const char *sub;        /* a second word ("replay absorb"), or NULL */
  const char *args;       /* the synopsis after the name and options */
  const char *summary;    /* one line, for `mnemo --help` */
  const char *help;       /* the rest, for `mnemo NAME --help` (lines end in \n) */
  const worker_opt *opts; /* ends with WORKER_OPT_END; --json and --help come with every one */
  bool spec;              /* --spec FILE (a job spec) replaces the config: a fine-tune's */
  int (*run)(worker_ctx *w, worker_args *a);
} worker_command;

/* ranks of a data-parallel run other than 0 say nothing: one run, one voice (mnemo.c) */
extern bool worker__silent;

/* mnemo.c: the error and usage messages (they return the exit code), emit, the model's shape */
int worker__fail(const mn_error *err);
int worker__usage(const char *fmt, ...) MN_PRINTF(1, 2);
void worker__emit(json_t *o);
FILE *worker__progress_out(const worker_ctx *w);
gpt_config worker__model_config(const mn_config *c);

/* cmd_train.c: where training computes */
mn_status worker__train_backend(const mn_config *c, const kernels_backend **k, mn_error *err);
/* cmd_eval.c: a checkpoint loaded for scoring */
mn_status worker__scoring_model(const worker_ctx *w, const char *path, ckpt_meta *meta, gpt **m,
                                int *T, mn_error *err);

/* The commands: each file's option tables and run functions, one row each in mnemo.c. */
extern const worker_opt worker__shard_opts[], worker__train_opts[];
extern const worker_opt worker__eval_opts[], worker__evalset_opts[], worker__guard_opts[];
extern const worker_opt worker__generate_opts[], worker__bench_opts[], worker__fisher_opts[];
extern const worker_opt worker__replay_absorb_opts[], worker__lid_train_opts[];
extern const worker_opt worker__lid_opts[], worker__triage_opts[], worker__no_opts[];
extern const worker_opt worker__tokenizer_train_opts[], worker__import_hf_opts[];
int worker__cmd_shard(worker_ctx *w, worker_args *a);
int worker__cmd_import_hf(worker_ctx *w, worker_args *a);
int worker__cmd_pretrain(worker_ctx *w, worker_args *a);
int worker__cmd_finetune(worker_ctx *w, worker_args *a);
int worker__cmd_eval(worker_ctx *w, worker_args *a);
int worker__cmd_evalset(worker_ctx *w, worker_args *a);
int worker__cmd_guard(worker_ctx *w, worker_args *a);
int worker__cmd_generate(worker_ctx *w, worker_args *a);
int worker__cmd_bench(worker_ctx *w, worker_args *a);
int worker__cmd_fisher(worker_ctx *w, worker_args *a);
int worker__cmd_replay_absorb(worker_ctx *w, worker_args *a);
int worker__cmd_replay_verify(worker_ctx *w, worker_args *a);
int worker__cmd_lid_train(worker_ctx *w, worker_args *a);
int worker__cmd_lid(worker_ctx *w, worker_args *a);
int worker__cmd_triage(worker_ctx *w, worker_args *a);
int worker__cmd_tokenizer_train(worker_ctx *w, worker_args *a);
int worker__cmd_export_hf(worker_ctx *w, worker_args *a);
int worker__cmd_import_llmc(worker_ctx *w, worker_args *a);

#endif
