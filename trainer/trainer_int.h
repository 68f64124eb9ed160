/*
 * trainer_int.h -- helpers shared inside trainer/, not part of its interface.
 */
#ifndef MNEMO_TRAINER_INT_H
#define MNEMO_TRAINER_INT_H

#include "replay/replay.h"
#include "trainer/train.h"
#include "trainer/trainer.h"

#include <jansson.h>

/* one F32 tensor to write: name, shape (ndim 1 or 2), count floats at data */
typedef struct st_tensor {
  const char *name;
  size_t shape[2];
  int ndim;
  const float *data;
  size_t count;
} st_tensor;

/*
 * ckpt__write_st -- a safetensors file of t[0..n) back to back, with meta as
 * __metadata__ (borrowed), written atomically (checkpoint.c).
 */
MN_NODISCARD mn_status ckpt__write_st(const char *path, const st_tensor *t, int n, json_t *meta,
                                      mn_error *err);

/* What a fine-tune adds to pretraining (finetune.c), set up by finetune__prepare and used by
 * the loop (train.c): the baseline's weights as EWC's anchor and its Fisher, replayed
 * windows in every batch, the baseline as teacher, and the stages of unfreezing. */
typedef struct finetune_setup {
  float *anchor, *fisher; /* num_params each; fisher NULL: no EWC */
  replay_store replay;
  double *replay_cum; /* cumulative language shares over replay.langs */
  int *replay_tags;
  int nrep;     /* replayed sequences per batch */
  gpt *teacher; /* the baseline, scoring the replayed windows (finetune.distill); or NULL */
  finetune_stages stages;
} finetune_setup;

/* finetune__prepare -- the baseline (already loaded into m) as anchor, its Fisher, the
 * replay store, the teacher (on backend k), the stages; lineage receives what of it shapes
 * the run.  On failure f may hold some of it: finetune__fini frees it either way. */
MN_NODISCARD mn_status finetune__prepare(const finetune_options *fo, gpt *m, const ckpt_meta *base,
                                         int B, int T, int64_t steps, double alpha,
                                         const kernels_backend *k, finetune_setup *f,
                                         json_t *lineage, mn_error *err);
void finetune__fini(finetune_setup *f);
/* finetune__replay_rows -- rows fresh..B-1 of a batch (B,T) from the replay store, drawn
 * from (seed, step t) alone */
void finetune__replay_rows(const finetune_setup *f, uint64_t seed, int64_t t, int fresh, int B,
                           int T, int32_t *tok, int32_t *tgt);

#endif /* MNEMO_TRAINER_INT_H */
