/*
 * kernels.h -- the compute backends (DESIGN.md §5).
 *
 * The backend table: every op of the GPT forward and backward pass behind
 * one struct of function pointers, so the trainer never knows which device
 * computes.  kernels/cpu/ is the readable reference (C, OpenMP, CBLAS) and is
 * always built; kernels/cuda/ is its fast twin with the same op names.  No
 * CUDA header is included here or anywhere outside kernels/cuda/.
 *
 * Conventions of every op (llm.c's, so results compare):
 *  - tensors are float, row-major, shapes in the comments: (B,T,C) is B*T*C floats;
 *  - a weight W of a linear layer is (OC, C): out = inp . W^T + bias;
 *  - backward ops ADD into parameter gradients (dw, dbias, dwte, ...: the caller
 *    zeroes them once per step) and into layernorm's dinp, the residual stream
 *    whose gradient sums two paths; the other activation gradients (the dinp of
 *    matmul and gelu, dqkv, dlogits) have one producer and are OVERWRITTEN, so
 *    the step does not spend a memset on each;
 *  - no op allocates: scratch space is passed in by the caller.
 */
#ifndef MNEMO_KERNELS_H
#define MNEMO_KERNELS_H

#include "common/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kernels_device_info {
  bool built;       /* false when mnemo was built without the CUDA backend */
  int device_count; /* 0: no usable device or driver */
  char name[256];   /* device 0 */
  int cc_major, cc_minor;
  size_t total_mem;    /* bytes, device 0 */
  int runtime_version; /* e.g. 13000 */
  int driver_version;  /* 0 when no driver */
  int cublas_version;  /* e.g. 130000; 0 when no device */
  char why[256];       /* why device_count is 0 */
} kernels_device_info;

/* EWC (elastic weight consolidation), fused into the optimizer step: the penalty
 * lambda/2 * sum_i F_i (theta_i - anchor_i)^2 adds lambda F (theta - anchor) to the
 * (clipped) data gradient.  fisher and anchor point at the same elements as params. */
typedef struct kernels_ewc {
  const float *fisher, *anchor;
  float lambda;
} kernels_ewc;

/* The ops.  N is the number of rows (B*T); Vp >= V is the padded vocabulary. */
typedef struct kernels_backend {
  const char *name;
  bool host_memory; /* its memory is the host's (the CPU backend): no copies needed */
  /* out (B,T,C) = wte[tokens[b,t]] + wpe[t];  wte (Vp,C), wpe (maxT,C) or NULL (no learned
   * positions: rotary embeddings) */
  void (*encoder_forward)(float *out, const int32_t *tokens, const float *wte, const float *wpe,
                          int B, int T, int C);
  /* dwpe may be NULL (no learned positions) */
  void (*encoder_backward)(float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                           int B, int T, int C);
  /* out (N,C) = (inp - mean) * rstd * w + b, eps 1e-5; mean, rstd (N) kept for backward */
  void (*layernorm_forward)(float *out, float *mean, float *rstd, const float *inp, const float *w,
                            const float *b, int N, int C);
  void (*layernorm_backward)(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                             const float *w, const float *mean, const float *rstd, int N, int C);
  /* out (N,OC) = inp (N,C) . w^T (w is (OC,C)) + bias (OC); bias may be NULL */
  void (*matmul_forward)(float *out, const float *inp, const float *w, const float *bias, int N,
                         int C, int OC);
  /* dinp = dout . w (overwritten; may be NULL); dw += dout^T . inp (dw may be NULL: a frozen
   * weight); dbias += column sums (may be NULL) */
  void (*matmul_backward)(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                          const float *w, int N, int C, int OC);
  /* causal multi-head attention: qkv (B,T,3C) -> out (B,T,C); att (B,NH,T,T) keeps the
   * softmax probabilities for backward: row t holds columns 0..t; what follows is the
   * backend's own business (the CPU backend writes zeros to the end of the block of 64
   * columns, or of its tile of rows, and its backward relies on them: pair a backend's
   * forward with its own backward) */
  void (*attention_forward)(float *out, float *att, float *scratch, const float *qkv, int B, int T,
                            int C, int NH);
  /* dqkv is overwritten; scratch (forward's too): B*NH*T*T + B*C*(T+80) floats,
   * contents not kept between calls */
  void (*attention_backward)(float *dqkv, float *scratch, const float *dout, const float *qkv,
                             const float *att, int B, int T, int C, int NH);
  /* GELU, tanh approximation */
  void (*gelu_forward)(float *out, const float *inp, size_t n);
  /* dinp = gelu'(inp) * dout (overwritten) */
  void (*gelu_backward)(float *dinp, const float *inp, const float *dout, size_t n);
  /* out = a + b */
  void (*residual_forward)(float *out, const float *a, const float *b, size_t n);
  /* fused: res (N,C) = a + b, then out = layernorm(res) as layernorm_forward: one pass over
   * the residual stream instead of two (the sum is kept: the next residual reads it) */
  void (*residual_layernorm_forward)(float *res, float *out, float *mean, float *rstd,
                                     const float *a, const float *b, const float *w,
                                     const float *bias, int N, int C);
  /* The Llama family's ops (RMSNorm, rotary embeddings with grouped-query attention, SwiGLU).
   * RMSNorm: out (N,C) = inp * rstd * w, rstd = 1 / sqrt(mean(inp^2) + eps) kept (N) for
   * backward */
  void (*rmsnorm_forward)(float *out, float *rstd, const float *inp, const float *w, int N, int C,
                          float eps);
  /* dinp += (the residual stream's gradient sums two paths, as layernorm's); dw += */
  void (*rmsnorm_backward)(float *dinp, float *dw, const float *dout, const float *inp,
                           const float *w, const float *rstd, int N, int C);
  /* fused: res (N,C) = a + b, then out = rmsnorm(res) as rmsnorm_forward */
  void (*residual_rmsnorm_forward)(float *res, float *out, float *rstd, const float *a,
                                   const float *b, const float *w, int N, int C, float eps);
  /* rope_qkv_forward -- attention_forward's input from grouped-query projections: inp
   * (B,T,(NH + 2 KVH) HD) holds each position's query heads, then KVH key heads, then KVH
   * value heads; out (B,T,3C), C = NH HD, gets the queries and keys rotated (rotate-half
   * pairs (i, i + HD/2) of each head, angle t * freq[i] at position t: cos and sin tables
   * (maxT, HD/2) in the backend's memory; cos NULL: no rotation) and each key and value head
   * repeated for its NH / KVH query heads */
  void (*rope_qkv_forward)(float *out, const float *inp, const float *cos, const float *sin, int B,
                           int T, int NH, int KVH, int HD);
  /* dinp (B,T,(NH + 2 KVH) HD), overwritten, from dout (B,T,3C): the rotation undone, the
   * gradients of a repeated head summed */
  void (*rope_qkv_backward)(float *dinp, const float *dout, const float *cos, const float *sin,
                            int B, int T, int NH, int KVH, int HD);
  /* SwiGLU: out (N,F) = silu(inp[:, :F]) * inp[:, F:], inp (N,2F) the gate and up
   * projections side by side */
  void (*swiglu_forward)(float *out, const float *inp, int N, int F);
  /* dinp (N,2F), overwritten */
  void (*swiglu_backward)(float *dinp, const float *inp, const float *dout, int N, int F);
  /* softmax over the first V of Vp logits per row, then -log p[target]:
   * losses (N), probs (N,Vp) kept for backward (padded columns 0) */
  void (*crossentropy_forward)(float *losses, float *probs, const float *logits,
                               const int32_t *targets, int N, int V, int Vp);
  /* dlogits (N,Vp) = (probs - t) * dlosses, padded columns 0, for the target distribution
   * t = (1 - w) onehot(target) + w soft: the gradient of the cross-entropy against t.  soft
   * (N,Vp), a teacher's probabilities (distillation), may be NULL (then t is the one-hot) */
  void (*crossentropy_backward)(float *dlogits, const float *probs, const float *dlosses,
                                const int32_t *targets, const float *soft, float w, int N, int V,
                                int Vp);
  /* AdamW with decoupled weight decay over n parameters, step t >= 1; the gradient is
   * grads[i] * grad_scale (gradient clipping folded in: no separate pass over grads), plus
   * EWC's when ewc is not NULL.  scale_at, when not NULL, points at the scale in the
   * backend's memory instead (clip_scale's: the host never waits for it); a NaN there
   * leaves everything unchanged (a non-finite gradient: no step) */
  void (*adamw_update)(float *params, const float *grads, float *m, float *v, size_t n, float lr,
                       float beta1, float beta2, float eps, float weight_decay, float grad_scale,
                       const float *scale_at, int t, const kernels_ewc *ewc);
  /* sum of x[i]^2 in double, in fixed chunks: the same result whatever the thread count */
  double (*sum_squares)(const float *x, size_t n);
  /* clip_scale -- out[0] = ||x|| and out[1] = the clipping scale (clip / ||x|| when that is
   * below 1 and clip > 0, else 1; NaN when the norm is not finite), in the backend's memory,
   * in the same fixed order as sum_squares */
  void (*clip_scale)(float *out, const float *x, size_t n, float clip);
  /* mean -- out[0] = the mean of x[0..n) (in a fixed order), in the backend's memory */
  void (*mean)(float *out, const float *x, size_t n);

  /* Memory the ops work on: host memory for the CPU backend, device memory for CUDA.
   * mem_alloc gives zeroed memory (NULL when out of memory); the copies are synchronous;
   * to_device and to_host copy between the backend's memory and the host's. */
  void *(*mem_alloc)(size_t bytes);
  void (*mem_free)(void *p, size_t bytes);
  void (*mem_zero)(void *p, size_t bytes);
  void (*to_device)(void *dst, const void *src, size_t bytes);
  void (*to_host)(void *dst, const void *src, size_t bytes);
  /* sync -- wait for every op queued so far; the first failure since the last sync (a
   * launch, a library call, a copy) as MN_ERR_CUDA with file:line.  The ops return nothing:
   * a device's errors surface here, once per step. */
  mn_status (*sync)(mn_error *err);
} kernels_backend;

/* How the CUDA backend's matrix products compute (weights, activations and gradients stay
 * fp32 in memory: the master copy is fp32 whatever the choice): */
typedef enum kernels_math {
  KERNELS_MATH_FP32 = 0, /* fp32 throughout (about 1e-6 relative error) */
  KERNELS_MATH_TF32,     /* tensor cores, operands rounded to TF32 (about 3e-4) */
  KERNELS_MATH_BF16,     /* tensor cores, operands rounded to bf16, fp32 sums (about 3e-3) */
} kernels_math;

/*
 * kernels_cuda -- the CUDA backend on device 0 (cuBLAS for the products) computing its
 * products as `math` says, or NULL in *out with why (not built, no device) -- not an
 * error.  MN_ERR_CUDA when a device is there but fails.
 */
MN_NODISCARD mn_status kernels_cuda(kernels_math math, const kernels_backend **out /* OUT */,
                                    char why[256], mn_error *err);
/*
 * Data parallel (kernels/cuda/dp.cu, NCCL): one process per GPU, each on the GPU of its
 * local rank (MNEMO_LOCAL_RANK, LOCAL_RANK, SLURM_LOCALID or OMPI_COMM_WORLD_LOCAL_RANK;
 * device 0 without one).  kernels_dp_open joins rank `rank` of `world`: rank 0 writes a
 * NCCL unique id to id_file (atomically), the others wait for it (up to timeout_s): a file
 * on a shared file system is the rendezvous, so mpirun or srun can start the processes on
 * several machines.  kernels_dp_allreduce_mean replaces buf (device memory of the CUDA
 * backend, n floats) by its mean over the ranks, on the backend's stream.
 */
typedef struct kernels_dp kernels_dp;
MN_NODISCARD mn_status kernels_dp_open(int rank, int world, const char *id_file, int timeout_s,
                                       kernels_dp **out /* OUT */, mn_error *err);
MN_NODISCARD mn_status kernels_dp_allreduce_mean(kernels_dp *dp, float *buf, size_t n,
                                                 mn_error *err);
void kernels_dp_close(kernels_dp *dp); /* NULL-safe */

/* kernels_math_parse -- "fp32", "tf32" or "bf16"; false for anything else */
bool kernels_math_parse(const char *s, kernels_math *out /* OUT */);

/* kernels_cpu -- the CPU reference backend (OpenMP threads, OpenBLAS sgemm). */
const kernels_backend *kernels_cpu(void);
/* kernels_cpu_set_threads -- threads for OpenMP loops and for sgemm (n <= 0: every core). */
void kernels_cpu_set_threads(int n);
int kernels_cpu_threads(void);

/* kernels_host_alloc -- a zeroed host buffer of `bytes` for the model's large arrays,
 * 2 MiB-aligned and advised to use transparent huge pages; NULL when out of memory.
 * Free it with kernels_host_free and the same size (NULL is ignored). */
MN_NODISCARD void *kernels_host_alloc(size_t bytes);
void kernels_host_free(void *p, size_t bytes);

/*
 * kernels_cuda_probe -- fill info with what CUDA sees.  No device, or a
 * build without CUDA, is not an error: device_count is 0 and why says why.
 * MN_ERR_CUDA is returned (with file:line) when a device exists but fails.
 */
MN_NODISCARD mn_status kernels_cuda_probe(kernels_device_info *info /* OUT */, mn_error *err);

#ifdef __cplusplus
}
#endif
#endif /* MNEMO_KERNELS_H */
