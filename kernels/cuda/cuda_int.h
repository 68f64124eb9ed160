/*
 * cuda_int.h -- helpers shared by the CUDA sources of kernels/cuda/.
 *
 * CUDA_TRY / CUBLAS_TRY turn a failing call into MN_ERR_CUDA with file:line
 * and return it: a daemon never exits on a device error (STYLE.md §3).  CK / CKB / LAUNCHED
 * are the ops' form of the same: they note the failure for the next sync().
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

/*
 * What the sources of the backend's ops share (ops.cu keeps the state: the stream, cuBLAS,
 * the first failure since the last sync).  The ops enqueue work and return nothing: a failed
 * launch or copy is noted, with its file:line, and sync() returns it (kernels.h).
 */
/* kernels__cuda_note_failure -- keep the first failure since the last sync */
void kernels__cuda_note_failure(const char *file, int line, const char *expr, const char *msg);

#define CK(expr)                                                                                   \
  do {                                                                                             \
    cudaError_t e_ = (expr);                                                                       \
    if (e_ != cudaSuccess)                                                                         \
      kernels__cuda_note_failure(__FILE__, __LINE__, #expr, cudaGetErrorString(e_));               \
  } while (0)
#define CKB(expr)                                                                                  \
  do {                                                                                             \
    cublasStatus_t s_ = (expr);                                                                    \
    if (s_ != CUBLAS_STATUS_SUCCESS)                                                               \
      kernels__cuda_note_failure(__FILE__, __LINE__, #expr, cublasGetStatusString(s_));            \
  } while (0)
/* after every launch: a bad configuration fails at launch, not at the next sync */
#define LAUNCHED(name) CK(cudaGetLastError())

/* kernels__blocks -- a grid for n items (at least one block: the kernels' loops check n, and
 * an empty grid is an invalid launch) */
static inline unsigned kernels__blocks(size_t n, unsigned threads)
{
  size_t b = n ? (n + threads - 1) / threads : 1;
  return (unsigned)(b > 65535u * 32u ? 65535u * 32u : b);
}

__device__ __forceinline__ float kernels__warp_sum(float v)
{
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float kernels__warp_max(float v)
{
  for (int o = 16; o > 0; o >>= 1)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/* The Llama family's ops (ops_llama.cu), as kernels.h describes them */
void kernels__cuda_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N,
                                   int C, float eps);
void kernels__cuda_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                                    const float *w, const float *rstd, int N, int C);
void kernels__cuda_residual_rmsnorm_forward(float *res, float *out, float *rstd, const float *a,
                                            const float *b, const float *w, int N, int C,
                                            float eps);
void kernels__cuda_rope_qkv_forward(float *out, const float *inp, const float *cos,
                                    const float *sin, int B, int T, int NH, int KVH, int HD);
void kernels__cuda_rope_qkv_backward(float *dinp, const float *dout, const float *cos,
                                     const float *sin, int B, int T, int NH, int KVH, int HD);
void kernels__cuda_swiglu_forward(float *out, const float *inp, int N, int F);
void kernels__cuda_swiglu_backward(float *dinp, const float *inp, const float *dout, int N, int F);

/* kernels__local_device -- the GPU of this process among count: its local rank
 * (MNEMO_LOCAL_RANK, LOCAL_RANK, SLURM_LOCALID, OMPI_COMM_WORLD_LOCAL_RANK) modulo count */
int kernels__local_device(int count);
/* kernels__cuda_stream -- the backend's stream; false before kernels_cuda succeeded */
bool kernels__cuda_stream(cudaStream_t *out);

#endif /* MNEMO_CUDA_INT_H */
