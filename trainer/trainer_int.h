/*
 * trainer_int.h -- helpers shared inside trainer/, not part of its interface.
 */
#ifndef MNEMO_TRAINER_INT_H
#define MNEMO_TRAINER_INT_H

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

/*
 * evalset__record_split -- whether a corpus record {"lang", "text", "split"?} is a held-out
 * document (evalset.c).  The split stored at ingest (mnemo.documents.split, exported as
 * "split": "train" | "heldout") is the truth and is taken as it is: ingest.heldout_fraction
 * may have changed since.  A record without one (a corpus file made by hand) is split by
 * ingest's hash rule (mn_split_heldout of the text's SHA-256) at `fraction`, which agrees
 * with what ingest stored only at the fraction the documents were ingested at.  *by_hash
 * says which rule decided.  MN_ERR_INPUT when "split" is there but neither value (the
 * caller adds file:line).
 */
MN_NODISCARD mn_status evalset__record_split(json_t *rec, const char *text, size_t n,
                                             double fraction, bool *heldout /* OUT */,
                                             bool *by_hash /* OUT */, mn_error *err);

#endif /* MNEMO_TRAINER_INT_H */
