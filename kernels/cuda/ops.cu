/*
 * ops.cu -- the CUDA backend: the ops of kernels.h on device memory, fp32, with cuBLAS for
 * every matrix product (the attention's too, batched over heads).
 *
 * Same contracts as the CPU reference (kernels/cpu/ops.c), which tests/kernels/
 * test_cuda_ops.c compares every op against: backward ops add into parameter gradients and
 * layernorm's dinp, overwrite the other activation gradients; nothing allocates.  The ops
 * only enqueue work on the backend's stream and return nothing: the first failure (a launch,
 * a cuBLAS call, a copy) is kept with its file:line and returned by sync(), so an error is
 * an MN_ERR_CUDA the caller handles, never an exit (STYLE.md §3).
 *
 * First the simple, right version (METHOD.md): one warp per row for the row-wise ops,
 * attention materialised as (B, NH, T, T) like the CPU's, atomics for the embedding
 * gradient (tokens repeat), deterministic fixed-order sums for sum_squares.  The Llama
 * family's ops (RMSNorm, rotary embeddings, SwiGLU) are in ops_llama.cu, on the same stream.
 */
#include "kernels/cuda/cuda_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define LN_EPS 1e-5f
#define GELU_K 0.7978845608028654f

/* ---------------------------------------------------------------- state and errors */

static struct {
  bool ready;
  cudaStream_t stream;
  cublasHandle_t blas;
  double *partial;             /* sum_squares: one double per block */
  cublasComputeType_t compute; /* the products' arithmetic (kernels_math) */
  /* the first failure since the last sync */
  bool failed;
  char what[512];
} g;

void kernels__cuda_note_failure(const char *file, int line, const char *expr, const char *msg)
{
  if (g.failed) return;
  g.failed = true;
  /* the call, shortened: its first words say which one */
  snprintf(g.what, sizeof g.what, "%.100s:%d: %.120s: %.200s", file, line, expr, msg);
}

/* gemm / gemm_batched -- column-major fp32 products in the chosen arithmetic */
static void gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                 const float *alpha, const float *A, int lda, const float *B, int ldb,
                 const float *beta, float *C, int ldc)
{
  CKB(cublasGemmEx(g.blas, ta, tb, m, n, k, alpha, A, CUDA_R_32F, lda, B, CUDA_R_32F, ldb, beta, C,
                   CUDA_R_32F, ldc, g.compute, CUBLAS_GEMM_DEFAULT));
}

static void gemm_batched(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                         const float *alpha, const float *A, int lda, long long sa, const float *B,
                         int ldb, long long sb, const float *beta, float *C, int ldc, long long sc,
                         int count)
{
  CKB(cublasGemmStridedBatchedEx(g.blas, ta, tb, m, n, k, alpha, A, CUDA_R_32F, lda, sa, B,
                                 CUDA_R_32F, ldb, sb, beta, C, CUDA_R_32F, ldc, sc, count,
                                 g.compute, CUBLAS_GEMM_DEFAULT));
}

/* ---------------------------------------------------------------- encoder */

__global__ void k_encoder_forward(float *out, const int32_t *tokens, const float *wte,
                                  const float *wpe, int B, int T, int C)
{
  size_t n = (size_t)B * T * C;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x) {
    size_t bt = i / C;
    int c = (int)(i % C), t = (int)(bt % T);
    float e = wte[(size_t)tokens[bt] * C + c];
    out[i] = wpe ? e + wpe[(size_t)t * C + c] : e; /* no wpe: rotary embeddings */
  }
}

static void encoder_forward(float *out, const int32_t *tokens, const float *wte, const float *wpe,
                            int B, int T, int C)
{
  k_encoder_forward<<<kernels__blocks((size_t)B * T * C, 256), 256, 0, g.stream>>>(out, tokens, wte,
                                                                                   wpe, B, T, C);
  LAUNCHED(encoder_forward);
}

/* dwte: atomics (two positions may hold one token); dwpe (when there is one): each (t, c) sums
 * its B rows */
__global__ void k_encoder_backward_wte(float *dwte, const float *dout, const int32_t *tokens, int N,
                                       int C)
{
  size_t n = (size_t)N * C;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x)
    atomicAdd(&dwte[(size_t)tokens[i / C] * C + i % C], dout[i]);
}

__global__ void k_encoder_backward_wpe(float *dwpe, const float *dout, int B, int T, int C)
{
  size_t n = (size_t)T * C;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x) {
    float s = 0;
    for (int b = 0; b < B; b++)
      s += dout[(size_t)b * T * C + i];
    dwpe[i] += s;
  }
}

static void encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                             int B, int T, int C)
{
  k_encoder_backward_wte<<<kernels__blocks((size_t)B * T * C, 256), 256, 0, g.stream>>>(
      dwte, dout, tokens, B * T, C);
  LAUNCHED(encoder_backward_wte);
  if (!dwpe) return; /* no learned positions */
  k_encoder_backward_wpe<<<kernels__blocks((size_t)T * C, 256), 256, 0, g.stream>>>(dwpe, dout, B,
                                                                                    T, C);
  LAUNCHED(encoder_backward_wpe);
}

/* ---------------------------------------------------------------- layernorm */

/* one warp per row */
__global__ void k_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                                    const float *w, const float *b, int N, int C)
{
  int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= N) return;
  const float *x = inp + (size_t)row * C;
  float s = 0;
  for (int c = lane; c < C; c += 32)
    s += x[c];
  float m = kernels__warp_sum(s) / (float)C;
  float v = 0;
  for (int c = lane; c < C; c += 32)
    v += (x[c] - m) * (x[c] - m);
  float r = rsqrtf(kernels__warp_sum(v) / (float)C + LN_EPS);
  float *o = out + (size_t)row * C;
  for (int c = lane; c < C; c += 32)
    o[c] = (x[c] - m) * r * w[c] + b[c];
  if (lane == 0) mean[row] = m, rstd[row] = r;
}

static void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                              const float *w, const float *b, int N, int C)
{
  if (N <= 0) return; /* no rows: nothing to launch */
  k_layernorm_forward<<<(N + 7) / 8, 256, 0, g.stream>>>(out, mean, rstd, inp, w, b, N, C);
  LAUNCHED(layernorm_forward);
}

__global__ void k_layernorm_backward_dinp(float *dinp, const float *dout, const float *inp,
                                          const float *w, const float *mean, const float *rstd,
                                          int N, int C)
{
  int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= N) return;
  const float *x = inp + (size_t)row * C, *d = dout + (size_t)row * C;
  float m = mean[row], r = rstd[row], a = 0, bsum = 0;
  for (int c = lane; c < C; c += 32) {
    float dn = w[c] * d[c];
    a += dn;
    bsum += dn * (x[c] - m) * r;
  }
  a = kernels__warp_sum(a) / (float)C;
  bsum = kernels__warp_sum(bsum) / (float)C;
  float *di = dinp + (size_t)row * C;
  for (int c = lane; c < C; c += 32)
    di[c] += (w[c] * d[c] - a - (x[c] - m) * r * bsum) * r;
}

/* column sums: a block of 32 columns x 16 row lanes, the 16 partial sums added in order */
__global__ void k_layernorm_backward_dw(float *dw, float *db, const float *dout, const float *inp,
                                        const float *mean, const float *rstd, int N, int C)
{
  __shared__ float sw[16][33], sb[16][33];
  int c = blockIdx.x * 32 + threadIdx.x, ry = threadIdx.y;
  float aw = 0, ab = 0;
  if (c < C)
    for (int i = ry; i < N; i += 16) {
      float d = dout[(size_t)i * C + c];
      aw += (inp[(size_t)i * C + c] - mean[i]) * rstd[i] * d;
      ab += d;
    }
  sw[ry][threadIdx.x] = aw, sb[ry][threadIdx.x] = ab;
  __syncthreads();
  if (ry == 0 && c < C) {
    float tw = 0, tb = 0;
    for (int k = 0; k < 16; k++)
      tw += sw[k][threadIdx.x], tb += sb[k][threadIdx.x];
    dw[c] += tw;
    db[c] += tb;
  }
}

static void layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                               const float *inp, const float *w, const float *mean,
                               const float *rstd, int N, int C)
{
  if (N <= 0 || C <= 0) return;
  k_layernorm_backward_dinp<<<(N + 7) / 8, 256, 0, g.stream>>>(dinp, dout, inp, w, mean, rstd, N,
                                                               C);
  LAUNCHED(layernorm_backward_dinp);
  k_layernorm_backward_dw<<<(C + 31) / 32, dim3(32, 16), 0, g.stream>>>(dw, db, dout, inp, mean,
                                                                        rstd, N, C);
  LAUNCHED(layernorm_backward_dw);
}

/* ---------------------------------------------------------------- matmul */

/*
 * Row-major X (r, c) is column-major X^T to cuBLAS.  So out (N,OC) = inp (N,C) w^T is, in
 * cuBLAS's terms, out^T (OC,N) = w^T^T inp^T: gemm(T, N, OC, N, C, w ld C, inp ld C).
 */
__global__ void k_fill_rows(float *out, const float *bias, int N, int OC)
{
  size_t n = (size_t)N * OC;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x)
    out[i] = bias[i % OC];
}

static void matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N,
                           int C, int OC)
{
  const float one = 1.0f, zero = 0.0f;
  if (bias) {
    k_fill_rows<<<kernels__blocks((size_t)N * OC, 256), 256, 0, g.stream>>>(out, bias, N, OC);
    LAUNCHED(fill_rows);
  }
  gemm(CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, &one, w, C, inp, C, bias ? &one : &zero, out, OC);
}

/* column sums of dout (N,OC) into dbias, as layernorm's */
__global__ void k_column_sums(float *acc, const float *x, int N, int OC)
{
  __shared__ float s[16][33];
  int c = blockIdx.x * 32 + threadIdx.x, ry = threadIdx.y;
  float a = 0;
  if (c < OC)
    for (int i = ry; i < N; i += 16)
      a += x[(size_t)i * OC + c];
  s[ry][threadIdx.x] = a;
  __syncthreads();
  if (ry == 0 && c < OC) {
    float t = 0;
    for (int k = 0; k < 16; k++)
      t += s[k][threadIdx.x];
    acc[c] += t;
  }
}

static void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout,
                            const float *inp, const float *w, int N, int C, int OC)
{
  const float one = 1.0f, zero = 0.0f;
  /* dinp (N,C) = dout (N,OC) w (OC,C): dinp^T = w^T dout^T */
  if (dinp) gemm(CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, &one, w, C, dout, OC, &zero, dinp, C);
  /* dw (OC,C) += dout^T inp: dw^T (C,OC) += inp^T dout */
  if (dw) gemm(CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, &one, inp, C, dout, OC, &one, dw, C);
  if (dbias && OC > 0) {
    k_column_sums<<<(OC + 31) / 32, dim3(32, 16), 0, g.stream>>>(dbias, dout, N, OC);
    LAUNCHED(column_sums);
  }
}

/* ---------------------------------------------------------------- attention */

/*
 * Per batch row b, the heads are one strided batch of products on views of qkv (row
 * stride 3C; head h starts hs further): S = scale Q K^T, a causal softmax row by row into
 * att (zeros past the diagonal, so the full products below are right), O = P V.
 */
__global__ void k_softmax_causal(float *att, int rows, int T)
{
  int r = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (r >= rows) return;
  int t = r % T;
  float *a = att + (size_t)r * T;
  float m = -INFINITY;
  for (int j = lane; j <= t; j += 32)
    m = fmaxf(m, a[j]);
  m = kernels__warp_max(m);
  float s = 0;
  for (int j = lane; j <= t; j += 32) {
    float e = expf(a[j] - m);
    a[j] = e;
    s += e;
  }
  float inv = 1.0f / kernels__warp_sum(s);
  for (int j = lane; j < T; j += 32)
    a[j] = j <= t ? a[j] * inv : 0.0f;
}

static void attention_forward(float *out, float *att, float *scratch, const float *qkv, int B,
                              int T, int C, int NH)
{
  (void)scratch;
  int hs = C / NH;
  const float scale = 1.0f / sqrtf((float)hs), one = 1.0f, zero = 0.0f;
  long long C3 = 3LL * C, TT = (long long)T * T;
  for (int b = 0; b < B; b++) {
    const float *Q = qkv + (size_t)b * T * C3, *K = Q + C;
    float *P = att + (size_t)b * NH * TT;
    /* S^T = K Q^T in column-major terms: S row-major (T,T) */
    gemm_batched(CUBLAS_OP_T, CUBLAS_OP_N, T, T, hs, &scale, K, (int)C3, hs, Q, (int)C3, hs, &zero,
                 P, T, TT, NH);
  }
  int rows = B * NH * T;
  if (rows <= 0) return;
  k_softmax_causal<<<(rows + 7) / 8, 256, 0, g.stream>>>(att, rows, T);
  LAUNCHED(softmax_causal);
  for (int b = 0; b < B; b++) {
    const float *V = qkv + (size_t)b * T * C3 + 2 * C;
    const float *P = att + (size_t)b * NH * TT;
    float *O = out + (size_t)b * T * C;
    /* O^T (hs,T) = V^T P^T */
    gemm_batched(CUBLAS_OP_N, CUBLAS_OP_N, hs, T, T, &one, V, (int)C3, hs, P, T, TT, &zero, O, C,
                 hs, NH);
  }
}

/* dS = P (dP - sum_j P dP) scale on the visible columns, 0 past the diagonal */
__global__ void k_softmax_causal_backward(float *d, const float *att, int rows, int T, float scale)
{
  int r = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (r >= rows) return;
  int t = r % T;
  float *dr = d + (size_t)r * T;
  const float *a = att + (size_t)r * T;
  float dot = 0;
  for (int j = lane; j <= t; j += 32)
    dot += a[j] * dr[j];
  dot = kernels__warp_sum(dot);
  for (int j = lane; j < T; j += 32)
    dr[j] = j <= t ? a[j] * (dr[j] - dot) * scale : 0.0f;
}

static void attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                               const float *att, int B, int T, int C, int NH)
{
  int hs = C / NH;
  const float scale = 1.0f / sqrtf((float)hs), one = 1.0f, zero = 0.0f;
  long long C3 = 3LL * C, TT = (long long)T * T;
  float *dS = scratch; /* (B, NH, T, T): dP, then dS in place */
  for (int b = 0; b < B; b++) {
    const float *V = qkv + (size_t)b * T * C3 + 2 * C;
    const float *P = att + (size_t)b * NH * TT, *dO = dout + (size_t)b * T * C;
    float *dV = dqkv + (size_t)b * T * C3 + 2 * C;
    /* dV = P^T dO: dV^T (hs,T) = dO^T P */
    gemm_batched(CUBLAS_OP_N, CUBLAS_OP_T, hs, T, T, &one, dO, C, hs, P, T, TT, &zero, dV, (int)C3,
                 hs, NH);
    /* dP = dO V^T: dP^T (T,T) = V dO^T */
    gemm_batched(CUBLAS_OP_T, CUBLAS_OP_N, T, T, hs, &one, V, (int)C3, hs, dO, C, hs, &zero,
                 dS + (size_t)b * NH * TT, T, TT, NH);
  }
  int rows = B * NH * T;
  if (rows <= 0) return;
  k_softmax_causal_backward<<<(rows + 7) / 8, 256, 0, g.stream>>>(dS, att, rows, T, scale);
  LAUNCHED(softmax_causal_backward);
  for (int b = 0; b < B; b++) {
    const float *Q = qkv + (size_t)b * T * C3, *K = Q + C;
    const float *dSb = dS + (size_t)b * NH * TT;
    float *dQ = dqkv + (size_t)b * T * C3, *dK = dQ + C;
    /* dQ = dS K: dQ^T (hs,T) = K^T dS^T */
    gemm_batched(CUBLAS_OP_N, CUBLAS_OP_N, hs, T, T, &one, K, (int)C3, hs, dSb, T, TT, &zero, dQ,
                 (int)C3, hs, NH);
    /* dK = dS^T Q: dK^T (hs,T) = Q^T dS */
    gemm_batched(CUBLAS_OP_N, CUBLAS_OP_T, hs, T, T, &one, Q, (int)C3, hs, dSb, T, TT, &zero, dK,
                 (int)C3, hs, NH);
  }
}

/* ---------------------------------------------------------------- pointwise */

__global__ void k_gelu_forward(float *out, const float *inp, size_t n)
{
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x) {
    float x = inp[i];
    out[i] = 0.5f * x * (1.0f + tanhf(GELU_K * (x + 0.044715f * x * x * x)));
  }
}

__global__ void k_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n)
{
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x) {
    float x = inp[i];
    float th = tanhf(GELU_K * (x + 0.044715f * x * x * x));
    float du = GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
    dinp[i] = (0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du) * dout[i];
  }
}

__global__ void k_residual_forward(float *out, const float *a, const float *b, size_t n)
{
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x)
    out[i] = a[i] + b[i];
}

static void gelu_forward(float *out, const float *inp, size_t n)
{
  k_gelu_forward<<<kernels__blocks(n, 256), 256, 0, g.stream>>>(out, inp, n);
  LAUNCHED(gelu_forward);
}

static void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n)
{
  k_gelu_backward<<<kernels__blocks(n, 256), 256, 0, g.stream>>>(dinp, inp, dout, n);
  LAUNCHED(gelu_backward);
}

/* one warp per row: the sum written once and kept in registers for the statistics and the
 * normalised output (C <= 32 * RLN_MAX; wider rows take the two-op path) */
#define RLN_MAX 64
__global__ void k_residual_layernorm(float *res, float *out, float *mean, float *rstd,
                                     const float *a, const float *b, const float *w,
                                     const float *bias, int N, int C)
{
  int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= N) return;
  size_t o = (size_t)row * C;
  float x[RLN_MAX], s = 0;
#pragma unroll
  for (int k = 0; k < RLN_MAX; k++) {
    int c = lane + 32 * k;
    x[k] = c < C ? a[o + c] + b[o + c] : 0.0f;
    if (c < C) res[o + c] = x[k];
    s += x[k];
  }
  float m = kernels__warp_sum(s) / (float)C, v = 0;
#pragma unroll
  for (int k = 0; k < RLN_MAX; k++) {
    int c = lane + 32 * k;
    if (c < C) v += (x[k] - m) * (x[k] - m);
  }
  float r = rsqrtf(kernels__warp_sum(v) / (float)C + LN_EPS);
#pragma unroll
  for (int k = 0; k < RLN_MAX; k++) {
    int c = lane + 32 * k;
    if (c < C) out[o + c] = (x[k] - m) * r * w[c] + bias[c];
  }
  if (lane == 0) mean[row] = m, rstd[row] = r;
}

static void residual_forward(float *out, const float *a, const float *b, size_t n);

static void residual_layernorm_forward(float *res, float *out, float *mean, float *rstd,
                                       const float *a, const float *b, const float *w,
                                       const float *bias, int N, int C)
{
  if (N <= 0) return;
  if (C > 32 * RLN_MAX) { /* too wide for one warp's registers: the two ops */
    residual_forward(res, a, b, (size_t)N * C);
    layernorm_forward(out, mean, rstd, res, w, bias, N, C);
    return;
  }
  k_residual_layernorm<<<(N + 7) / 8, 256, 0, g.stream>>>(res, out, mean, rstd, a, b, w, bias, N,
                                                          C);
  LAUNCHED(residual_layernorm);
}

static void residual_forward(float *out, const float *a, const float *b, size_t n)
{
  k_residual_forward<<<kernels__blocks(n, 256), 256, 0, g.stream>>>(out, a, b, n);
  LAUNCHED(residual_forward);
}

/* ---------------------------------------------------------------- loss */

/* one block of 256 per row: the max, the sum of exponentials, then the probabilities */
__global__ void k_crossentropy_forward(float *losses, float *probs, const float *logits,
                                       const int32_t *targets, int V, int Vp)
{
  __shared__ float red[8];
  int row = blockIdx.x, tid = threadIdx.x, lane = tid % 32, wid = tid / 32;
  const float *l = logits + (size_t)row * Vp;
  float *p = probs + (size_t)row * Vp;
  float m = -INFINITY;
  for (int j = tid; j < V; j += blockDim.x)
    m = fmaxf(m, l[j]);
  m = kernels__warp_max(m);
  if (lane == 0) red[wid] = m;
  __syncthreads();
  m = red[0];
  for (int k = 1; k < 8; k++)
    m = fmaxf(m, red[k]);
  __syncthreads();
  float s = 0;
  for (int j = tid; j < V; j += blockDim.x)
    s += expf(l[j] - m);
  s = kernels__warp_sum(s);
  if (lane == 0) red[wid] = s;
  __syncthreads();
  s = 0;
  for (int k = 0; k < 8; k++)
    s += red[k];
  float inv = 1.0f / s;
  for (int j = tid; j < Vp; j += blockDim.x)
    p[j] = j < V ? expf(l[j] - m) * inv : 0.0f;
  if (tid == 0) losses[row] = -logf(expf(l[targets[row]] - m) * inv);
}

static void crossentropy_forward(float *losses, float *probs, const float *logits,
                                 const int32_t *targets, int N, int V, int Vp)
{
  if (N <= 0) return;
  k_crossentropy_forward<<<N, 256, 0, g.stream>>>(losses, probs, logits, targets, V, Vp);
  LAUNCHED(crossentropy_forward);
}

__global__ void k_crossentropy_backward(float *dlogits, const float *probs, const float *dlosses,
                                        const int32_t *targets, const float *soft, float w, int N,
                                        int V, int Vp)
{
  size_t n = (size_t)N * Vp;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x) {
    int row = (int)(i / Vp), j = (int)(i % Vp);
    if (j >= V) {
      dlogits[i] = 0.0f;
      continue;
    }
    float hard = j == targets[row] ? 1.0f : 0.0f;
    float t = soft ? w * soft[i] + (1.0f - w) * hard : hard;
    dlogits[i] = (probs[i] - t) * dlosses[row];
  }
}

static void crossentropy_backward(float *dlogits, const float *probs, const float *dlosses,
                                  const int32_t *targets, const float *soft, float w, int N, int V,
                                  int Vp)
{
  k_crossentropy_backward<<<kernels__blocks((size_t)N * Vp, 256), 256, 0, g.stream>>>(
      dlogits, probs, dlosses, targets, soft, w, N, V, Vp);
  LAUNCHED(crossentropy_backward);
}

/* ---------------------------------------------------------------- optimizer */

__global__ void k_adamw(float *params, const float *grads, float *m, float *v, size_t n, float lr,
                        float beta1, float beta2, float c1, float c2, float eps, float wd,
                        float grad_scale, const float *scale_at, const float *F, const float *A,
                        float lambda)
{
  if (scale_at) grad_scale = *scale_at;
  if (isnan(grad_scale)) return; /* a non-finite gradient: no step */
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x) {
    float p = params[i], gr = grads[i] * grad_scale;
    if (F) gr += lambda * F[i] * (p - A[i]); /* EWC, fused: no pass of its own */
    float mi = beta1 * m[i] + (1.0f - beta1) * gr;
    float vi = beta2 * v[i] + (1.0f - beta2) * gr * gr;
    m[i] = mi;
    v[i] = vi;
    params[i] = p - lr * ((mi / c1) / (sqrtf(vi / c2) + eps) + wd * p);
  }
}

static void adamw_update(float *params, const float *grads, float *m, float *v, size_t n, float lr,
                         float beta1, float beta2, float eps, float weight_decay, float grad_scale,
                         const float *scale_at, int t, const kernels_ewc *ewc)
{
  float c1 = 1.0f - powf(beta1, (float)t), c2 = 1.0f - powf(beta2, (float)t);
  bool e = ewc && ewc->lambda != 0.0f;
  k_adamw<<<kernels__blocks(n, 256), 256, 0, g.stream>>>(
      params, grads, m, v, n, lr, beta1, beta2, c1, c2, eps, weight_decay, grad_scale, scale_at,
      e ? ewc->fisher : NULL, e ? ewc->anchor : NULL, e ? ewc->lambda : 0.0f);
  LAUNCHED(adamw);
}

/* sum of squares in double: a fixed grid, each block's share fixed, partial sums added in a
 * fixed order -- the same result on every run */
#define SS_BLOCKS 512
__global__ void k_sum_squares(double *partial, const float *x, size_t n)
{
  __shared__ double s[256];
  double a = 0;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x)
    a += (double)x[i] * x[i];
  s[threadIdx.x] = a;
  __syncthreads();
  for (int k = 128; k > 0; k >>= 1) {
    if ((int)threadIdx.x < k) s[threadIdx.x] += s[threadIdx.x + k];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = s[0];
}

static double sum_squares(const float *x, size_t n)
{
  double part[SS_BLOCKS], total = 0;
  k_sum_squares<<<SS_BLOCKS, 256, 0, g.stream>>>(g.partial, x, n);
  LAUNCHED(sum_squares);
  CK(cudaMemcpyAsync(part, g.partial, sizeof part, cudaMemcpyDeviceToHost, g.stream));
  CK(cudaStreamSynchronize(g.stream));
  for (int b = 0; b < SS_BLOCKS; b++)
    total += part[b];
  return g.failed ? NAN : total;
}

/* the partial sums added in order by one thread, the norm and scale written: no host in the
 * loop */
__global__ void k_clip_scale(float *out, const double *partial, int nb, float clip)
{
  double s = 0;
  for (int b = 0; b < nb; b++)
    s += partial[b];
  float norm = (float)sqrt(s);
  out[0] = norm;
  out[1] = !isfinite(norm) ? NAN : clip > 0 && norm > clip ? clip / norm : 1.0f;
}

static void clip_scale(float *out, const float *x, size_t n, float clip)
{
  k_sum_squares<<<SS_BLOCKS, 256, 0, g.stream>>>(g.partial, x, n);
  LAUNCHED(sum_squares);
  k_clip_scale<<<1, 1, 0, g.stream>>>(out, g.partial, SS_BLOCKS, clip);
  LAUNCHED(clip_scale);
}

/* one block: each thread a fixed stride, then a fixed tree */
__global__ void k_mean(float *out, const float *x, size_t n)
{
  __shared__ double s[256];
  double a = 0;
  for (size_t i = threadIdx.x; i < n; i += blockDim.x)
    a += x[i];
  s[threadIdx.x] = a;
  __syncthreads();
  for (int k = 128; k > 0; k >>= 1) {
    if ((int)threadIdx.x < k) s[threadIdx.x] += s[threadIdx.x + k];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[0] = n ? (float)(s[0] / (double)n) : 0.0f;
}

static void mean(float *out, const float *x, size_t n)
{
  k_mean<<<1, 256, 0, g.stream>>>(out, x, n);
  LAUNCHED(mean);
}

/* ---------------------------------------------------------------- memory */

static void *mem_alloc(size_t bytes)
{
  void *p = NULL;
  if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) {
    (void)cudaGetLastError(); /* out of memory is the caller's NULL, not a sticky failure */
    return NULL;
  }
  CK(cudaMemsetAsync(p, 0, bytes, g.stream));
  CK(cudaStreamSynchronize(g.stream));
  return p;
}

static void mem_free(void *p, size_t bytes)
{
  (void)bytes;
  if (p) CK(cudaFree(p));
}

static void mem_zero(void *p, size_t bytes)
{
  CK(cudaMemsetAsync(p, 0, bytes, g.stream));
}

static void to_device(void *dst, const void *src, size_t bytes)
{
  CK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, g.stream));
  CK(cudaStreamSynchronize(g.stream));
}

static void to_host(void *dst, const void *src, size_t bytes)
{
  CK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, g.stream));
  CK(cudaStreamSynchronize(g.stream));
}

static mn_status sync_stream(mn_error *err)
{
  CK(cudaStreamSynchronize(g.stream));
  if (!g.failed) return MN_OK;
  g.failed = false;
  return mn_error_set(err, MN_ERR_CUDA, "%s", g.what);
}

static const kernels_backend cuda = {
    .name = "cuda",
    .host_memory = false,
    .encoder_forward = encoder_forward,
    .encoder_backward = encoder_backward,
    .layernorm_forward = layernorm_forward,
    .layernorm_backward = layernorm_backward,
    .matmul_forward = matmul_forward,
    .matmul_backward = matmul_backward,
    .attention_forward = attention_forward,
    .attention_backward = attention_backward,
    .gelu_forward = gelu_forward,
    .gelu_backward = gelu_backward,
    .residual_forward = residual_forward,
    .residual_layernorm_forward = residual_layernorm_forward,
    .rmsnorm_forward = kernels__cuda_rmsnorm_forward,
    .rmsnorm_backward = kernels__cuda_rmsnorm_backward,
    .residual_rmsnorm_forward = kernels__cuda_residual_rmsnorm_forward,
    .rope_qkv_forward = kernels__cuda_rope_qkv_forward,
    .rope_qkv_backward = kernels__cuda_rope_qkv_backward,
    .swiglu_forward = kernels__cuda_swiglu_forward,
    .swiglu_backward = kernels__cuda_swiglu_backward,
    .crossentropy_forward = crossentropy_forward,
    .crossentropy_backward = crossentropy_backward,
    .adamw_update = adamw_update,
    .sum_squares = sum_squares,
    .clip_scale = clip_scale,
    .mean = mean,
    .mem_alloc = mem_alloc,
    .mem_free = mem_free,
    .mem_zero = mem_zero,
    .to_device = to_device,
    .to_host = to_host,
    .sync = sync_stream,
};

bool kernels__cuda_stream(cudaStream_t *out)
{
  *out = g.stream;
  return g.ready;
}

extern "C" mn_status kernels_cuda(kernels_math math, const kernels_backend **out, char why[256],
                                  mn_error *err)
{
  *out = NULL;
  if (!g.ready) { /* once per process: the device of its local rank, a stream, cuBLAS */
    kernels_device_info info;
    mn_status rc = kernels_cuda_probe(&info, err);
    if (rc != MN_OK) return rc;
    if (info.device_count == 0) {
      snprintf(why, 256, "%s", info.why);
      return MN_OK;
    }
    CUDA_TRY(cudaSetDevice(kernels__local_device(info.device_count)), err);
    CUDA_TRY(cudaStreamCreateWithFlags(&g.stream, cudaStreamNonBlocking), err);
    CUBLAS_TRY(cublasCreate(&g.blas), err);
    CUBLAS_TRY(cublasSetStream(g.blas, g.stream), err);
    CUDA_TRY(cudaMalloc((void **)&g.partial, SS_BLOCKS * sizeof(double)), err);
    g.ready = true;
  }
  g.compute = math == KERNELS_MATH_TF32   ? CUBLAS_COMPUTE_32F_FAST_TF32
              : math == KERNELS_MATH_BF16 ? CUBLAS_COMPUTE_32F_FAST_16BF
                                          : CUBLAS_COMPUTE_32F;
  *out = &cuda;
  return MN_OK;
}
