/*
 * cuda_int.h -- helpers shared by the CUDA sources of kernels/cuda/.
 *
 * CUDA_TRY / CUBLAS_TRY turn a failing call into MN_ERR_CUDA with file:line
 * and return it: a daemon never exits on a device error (STYLE.md §3).
 */
#ifndef MNEMO_CUDA_INT_H
#define MNEMO_CUDA_INT_H

#include "kernels/kernels.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#define CUDA_TRY(expr, err)                                                                        \
  do {                                                                                             \
    cudaError_t e_ = (expr);                                                                       \
    if (e_ != cudaSuccess)                                                                         \
      return mn_error_set((err), MN_ERR_CUDA, "%s:%d: %s: %s", __FILE__, __LINE__, #expr,          \
                          cudaGetErrorString(e_));                                                 \
  } while (0)

#define CUBLAS_TRY(expr, err)                                                                      \
  do {                                                                                             \
    cublasStatus_t s_ = (expr);                                                                    \
    if (s_ != CUBLAS_STATUS_SUCCESS)                                                               \
      return mn_error_set((err), MN_ERR_CUDA, "%s:%d: %s: %s", __FILE__, __LINE__, #expr,          \
                          cublasGetStatusString(s_));                                              \
  } while (0)

/* kernels__local_device -- the GPU of this process among count: its local rank
 * (MNEMO_LOCAL_RANK, LOCAL_RANK, SLURM_LOCALID, OMPI_COMM_WORLD_LOCAL_RANK) modulo count */
int kernels__local_device(int count);
/* kernels__cuda_stream -- the backend's stream; false before kernels_cuda succeeded */
bool kernels__cuda_stream(cudaStream_t *out);

#endif /* MNEMO_CUDA_INT_H */
