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

#endif /* MNEMO_TRAINER_INT_H */
