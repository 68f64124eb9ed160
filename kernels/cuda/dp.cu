/*
 * dp.cu -- data parallel with NCCL (kernels.h): one process per GPU; the gradients of the
 * trainable suffix are averaged over the ranks after each backward, on the backend's stream,
 * so every rank takes the same step.
 *
 * Rendezvous through a file: rank 0 writes NCCL's unique id (atomically: temporary file,
 * fsync, rename), the others poll for it.  A file left by an earlier run must not be taken
 * for this one's: rank 0 removes it first, and the others accept only a file written after
 * they started (less a minute of clock skew between machines).  Errors are MN_ERR_CUDA with
 * NCCL's own words, never an exit.
 */
#include "kernels/cuda/cuda_int.h"

#include <nccl.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct kernels_dp {
  ncclComm_t comm;
};

#define NCCL_TRY(expr, err)                                                                        \
  do {                                                                                             \
    ncclResult_t r_ = (expr);                                                                      \
    if (r_ != ncclSuccess)                                                                         \
      return mn_error_set((err), MN_ERR_CUDA, "%s:%d: %s: %s", __FILE__, __LINE__, #expr,          \
                          ncclGetErrorString(r_));                                                 \
  } while (0)

static mn_status read_id(const char *path, time_t since, int timeout_s, ncclUniqueId *id,
                         mn_error *err)
{
  for (int waited = 0;; waited++) {
    struct stat st;
    if (stat(path, &st) == 0 && st.st_mtime >= since - 60 && st.st_size == sizeof *id) {
      FILE *f = fopen(path, "rb");
      size_t got = f ? fread(id, 1, sizeof *id, f) : 0;
      if (f) fclose(f);
      if (got == sizeof *id) return MN_OK;
    }
    if (waited >= timeout_s * 10)
      return mn_error_set(err, MN_ERR_IO,
                          "no rendezvous: \"%s\" was not written by rank 0 within %d s", path,
                          timeout_s);
    usleep(100000);
  }
}

extern "C" mn_status kernels_dp_open(int rank, int world, const char *id_file, int timeout_s,
                                     kernels_dp **out, mn_error *err)
{
  *out = NULL;
  cudaStream_t stream;
  if (world < 1 || rank < 0 || rank >= world)
    return mn_error_set(err, MN_ERR_CONFIG, "rank %d of a world of %d", rank, world);
  if (!kernels__cuda_stream(&stream))
    return mn_error_set(err, MN_ERR_CONFIG, "data parallel needs the CUDA backend (train.device)");
  ncclUniqueId id;
  time_t started = time(NULL);
  if (rank == 0) {
    NCCL_TRY(ncclGetUniqueId(&id), err);
    unlink(id_file);
    mn_status rc = mn_write_file_atomic(id_file, &id, sizeof id, 0600, err);
    if (rc != MN_OK) return rc;
  } else {
    mn_status rc = read_id(id_file, started, timeout_s, &id, err);
    if (rc != MN_OK) return rc;
  }
  kernels_dp *dp = (kernels_dp *)calloc(1, sizeof *dp);
  if (!dp) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  ncclResult_t r = ncclCommInitRank(&dp->comm, world, id, rank);
  if (r != ncclSuccess) {
    free(dp);
    return mn_error_set(err, MN_ERR_CUDA, "NCCL could not join rank %d of %d: %s", rank, world,
                        ncclGetErrorString(r));
  }
  *out = dp;
  return MN_OK;
}

extern "C" mn_status kernels_dp_allreduce_mean(kernels_dp *dp, float *buf, size_t n, mn_error *err)
{
  cudaStream_t stream;
  if (!kernels__cuda_stream(&stream))
    return mn_error_set(err, MN_ERR_CONFIG, "the CUDA backend is not open");
  NCCL_TRY(ncclAllReduce(buf, buf, n, ncclFloat, ncclAvg, dp->comm, stream), err);
  return MN_OK;
}

extern "C" void kernels_dp_close(kernels_dp *dp)
{
  if (!dp) return;
  ncclCommDestroy(dp->comm);
  free(dp);
}
