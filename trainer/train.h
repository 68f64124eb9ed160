/*
 * train.h -- the training loop as a library: pretraining and fine-tuning a model on shards
 * into a folder of resumable checkpoints (trainer/train.c), and what a fine-tune adds to
 * pretraining (trainer/finetune.c): the baseline as EWC's anchor with its Fisher, replayed
 * windows in every batch, distillation, and the stages of progressive unfreezing.
 *
 * Not here: where the options come from (the worker `mnemo` maps the config's train.* and
 * finetune.* keys onto them), signals (the caller's handler sets the stop flag it passes
 * in), and printing (progress goes out through a callback).  Nothing here exits, prints or
 * reads a global of the program.
 *
 * Invariants:
 *  - A run is its lineage (seed, batch, schedule, optimizer, shards, a fine-tune's setup):
 *    resuming a checkpoint continues it bit-identically, and a resume whose lineage differs
 *    is refused, naming the key.
 *  - DIR/model.safetensors always names a complete (weights, .opt) pair: each save writes
 *    DIR/step-N.safetensors and its .opt, then flips the link in one rename.
 *  - The stop flag is read at step boundaries only: a stopped run saves the step it
 *    finished and ends with TRAIN_EVENT_INTERRUPTED, resumable.
 */
#ifndef MNEMO_TRAIN_H
#define MNEMO_TRAIN_H

#include "trainer/trainer.h"

#include <signal.h>

/* ---------------------------------------------------------------- fine-tune stages */

#define FINETUNE_MAX_STAGES 16

/* Progressive unfreezing: stage i trains the top blocks from first_block[i] (-1: every
 * parameter, the embeddings too) while the step is at most end[i]; the last stage runs to
 * the end (end INT64_MAX). */
typedef struct finetune_stages {
  int n;
  int first_block[FINETUNE_MAX_STAGES];
  int64_t end[FINETUNE_MAX_STAGES];
} finetune_stages;

/*
 * finetune_stages_parse -- "K:STEPS,...,all" (finetune.stages) for a model of n_layer
 * blocks: K top blocks for STEPS steps each, then the next; the last stage may be "K" or
 * "all" without a number of steps.  MN_ERR_CONFIG naming the part that is wrong (not a
 * number of blocks in 1 .. n_layer, not a number of steps, a stage after an open-ended one,
 * more than 16, empty); *out is only meaningful on success.
 */
MN_NODISCARD mn_status finetune_stages_parse(const char *text, int n_layer,
                                             finetune_stages *out /* OUT */, mn_error *err);
/* finetune_stages_first_block -- the first trainable block at step t (-1: all). */
int finetune_stages_first_block(const finetune_stages *s, int64_t t);

/* ---------------------------------------------------------------- options */

/* What a fine-tune adds (finetune.* keys); strings borrowed, "" or NULL for none. */
typedef struct finetune_options {
  const char *baseline; /* the checkpoint to start from (required) */
  const char *fisher;   /* its diagonal Fisher: EWC when ewc_lambda > 0 */
  double ewc_lambda;
  const char *replay_store; /* windows replayed when replay_ratio > 0 */
  double replay_ratio;
  int replay_sampler; /* 0 temperature (language_alpha), 1 UniMax */
  double unimax_epochs;
  const char *replay_boosts; /* "deu:3,swh:2": an operator's; a language not held is an error */
  const char *report_boosts; /* the same from reports: a language not held is skipped */
  const char *guard_boosts;  /* the same from a guard's retry (mnemod), skipped likewise */
  double distill;            /* > 0: towards the baseline's predictions on replayed rows */
  double adapt_max_boost;    /* > 1: the drift controller on replayed languages, this bound */
  const char *stages;        /* finetune_stages_parse */
  double lr_factor;          /* discriminative rates per block */
} finetune_options;

typedef enum train_event_kind {
  TRAIN_EVENT_START,       /* the model is set up; nothing trained yet */
  TRAIN_EVENT_STEP,        /* a step was taken */
  TRAIN_EVENT_CHECKPOINT,  /* a checkpoint was saved (dir, step) */
  TRAIN_EVENT_DONE,        /* the run reached its last step (sha256, seconds) */
  TRAIN_EVENT_INTERRUPTED, /* stopped by the flag after saving the step it finished */
} train_event_kind;

/* One progress event; pointers live for the callback only. */
typedef struct train_event {
  train_event_kind kind;
  int64_t step; /* START: the step resumed from (0: a fresh run); else the step reached */
  /* START */
  size_t params;
  int batch, seq_len, threads;
  int64_t steps; /* the last step this run takes */
  int nlangs;    /* the sampler's languages: codes[i], shares[i] */
  const char *const *codes;
  const double *shares;
  /* STEP */
  float loss, lr, grad_norm;
  double tokens_per_s, step_ms, eta_s;
  int ntags; /* per_language: mean loss of each tag's rows, tag order */
  const char *const *tag_codes;
  const double *tag_loss; /* NAN where the batch had no row of the language */
  bool finetune;          /* then trainable_from, replayed and (maybe) ewc_penalty: */
  int trainable_from, replayed;
  bool has_ewc_penalty; /* every 10th step and the last, with EWC */
  double ewc_penalty;
  int nadapt; /* the drift controller (finetune.adapt_max_boost > 1), per replayed language: */
  const char *const *adapt_codes;
  const double *adapt_drift; /* smoothed relative drift against the baseline */
  const int64_t *adapt_seen; /* steps that replayed it (0: drift not yet known) */
  const double *adapt_boost; /* the factor on its replay share */
  /* CHECKPOINT, DONE, INTERRUPTED */
  const char *dir;
  const char *sha256; /* DONE: of the weights DIR/model.safetensors names */
  double seconds;     /* DONE: since the loop started */
} train_event;

typedef void (*train_event_fn)(const train_event *ev, void *ctx);

typedef struct train_options {
  const char *out;           /* DIR: created when absent */
  const char *resume;        /* a checkpoint of this run to continue, or NULL */
  const char *const *shards; /* the training data */
  int nshards;
  gpt_config model;      /* a fresh pretraining's shape (a resume's and a fine-tune's
                          * come from their checkpoints); with a tokenizer other than bytes its
                          * vocabulary is the tokenizer's ids and model.vocab_size - 257 tags */
  const char *tokenizer; /* a fresh pretraining's tokenizer: a tokenizer.json or a checkpoint
                          * (NULL: bytes); a resume's and a fine-tune's is their checkpoint's.
                          * Every shard must be made by it. */
  int batch, seq_len;
  int64_t steps;      /* the schedule's length (train.steps) */
  int64_t stop_after; /* stop after this step (0: steps); the schedule stays */
  uint64_t seed;
  double lr, min_lr_frac, weight_decay, grad_clip, beta1, beta2, language_alpha;
  int64_t warmup_steps, checkpoint_every;
  bool cuda; /* compute on the CUDA device (train_backend) */
  kernels_math math;
  int rank, world;                  /* data parallel: world > 1 needs cuda */
  const char *dp_id_file;           /* where the ranks meet (NULL: DIR/nccl.id) */
  const finetune_options *finetune; /* NULL: pretraining */
  bool per_language;                /* STEP events carry each language's loss */
  train_event_fn on_event;          /* may be NULL */
  void *ctx;
  const volatile sig_atomic_t *stop; /* set (by a signal handler, a callback): stop at the
                                      * end of the step, saved; may be NULL */
} train_options;

typedef struct train_result {
  int64_t step;     /* the step the checkpoint in DIR is at */
  bool interrupted; /* the stop flag ended it (resumable) */
  char sha256[MN_SHA256_HEX_LEN + 1];
} train_result;

/*
 * train_run -- train as opt says, into opt->out.  Events go to opt->on_event as they happen.
 * MN_OK when the run reached its last step or was stopped by the flag (res->interrupted),
 * its checkpoint saved either way; otherwise the error (a bad shard, a resume of another run,
 * divergence naming the last good checkpoint, a device's failure), and the checkpoint in
 * DIR is the last one saved before it.
 */
MN_NODISCARD mn_status train_run(const train_options *opt, train_result *res /* OUT */,
                                 mn_error *err);

/* train_backend -- the CPU, or the CUDA device computing its products as math says
 * (MN_ERR_CUDA when there is none, saying why). */
MN_NODISCARD mn_status train_backend(bool cuda, kernels_math math,
                                     const kernels_backend **out /* OUT */, mn_error *err);

#endif /* MNEMO_TRAIN_H */
