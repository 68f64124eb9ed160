/*
 * worker_int.h -- what the files of the mnemo worker program share (mnemo.c, worker_train.c,
 * worker_eval.c, worker_misc.c): its exit codes, its state, its options and the helpers the
 * commands call across files.  Not part of any library's interface.
 */
#ifndef MNEMO_WORKER_INT_H
#define MNEMO_WORKER_INT_H

#include "configs/config.h"
#include "trainer/trainer_int.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_GUARD = 3, EXIT_INTERRUPTED = 75 };

typedef struct worker {
  mn_config cfg;
  bool json;
} worker;

/* a tiny option scanner: --name VALUE pairs and flags, the rest positional */
typedef struct opts {
  const char *out, *resume, *checkpoint, *lang, *prompt, *split, *tags, *store, *previous;
  const char *weighting, *spec, *parallel, *reference, *probes, *sets, *cache, *baseline;
  const char *candidate, *must_improve, *history, *model, *typical, *heldout, *device, *math;
  int64_t tokens, max_tokens, top_k, steps, seed, capacity, windows, max_items, max_item_bytes;
  int64_t max_bytes;
  double temperature, gamma;
  bool per_doc, stages, ewc, json;
  char **pos;
  int npos;
} opts;

/* ranks of a data-parallel run other than 0 say nothing: one run, one voice (mnemo.c) */
extern bool worker__silent;

/* mnemo.c: the error and usage messages (they return the exit code), emit, the model's shape */
int worker__fail(const mn_error *err);
int worker__usage(const char *fmt, ...) MN_PRINTF(1, 2);
void worker__emit(json_t *o);
gpt_config worker__model_config(const mn_config *c);

/* worker_train.c: shards and tags, where training computes, pretrain and finetune */
mn_status worker__read_shards(opts *o, shard **out, mn_error *err);
void worker__free_shards(shard *s, int n);
mn_status worker__train_backend(const mn_config *c, const kernels_backend **k, mn_error *err);
int worker__cmd_pretrain(worker *w, opts *o);
int worker__cmd_finetune(worker *w, opts *o);

/* worker_eval.c: a checkpoint loaded for scoring; eval, evalset and guard */
mn_status worker__scoring_model(const worker *w, const char *path, ckpt_meta *meta, gpt **m, int *T,
                                mn_error *err);
int worker__cmd_evalset(worker *w, opts *o);
int worker__cmd_guard(worker *w, opts *o);
int worker__cmd_eval(worker *w, opts *o);

/* worker_misc.c: the tags TSV; shard, generate, bench, fisher, replay, lid and triage */
mn_status worker__read_tags(const char *path, tok_tags *tags, mn_error *err);
int worker__cmd_shard(worker *w, opts *o);
int worker__cmd_generate(worker *w, opts *o);
int worker__cmd_bench(worker *w, opts *o);
int worker__cmd_fisher(worker *w, opts *o);
int worker__cmd_replay(worker *w, opts *o);
int worker__cmd_lid(worker *w, opts *o);
int worker__cmd_triage(worker *w, opts *o);

#endif
