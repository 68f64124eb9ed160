/*
 * ops_llama.cu -- the CUDA backend's ops of the Llama family (Llama, Qwen2): RMSNorm, rotary
 * position embeddings with grouped-query heads, SwiGLU.  The twins of kernels/cpu/ops_llama.c,
 * with its contracts (kernels.h): rmsnorm_backward adds into dinp and dw, rope_qkv_backward and
 * swiglu_backward overwrite their dinp.  tests/kernels/test_cuda_ops.c compares each with the
 * CPU's.
 *
 * Not the backend's state: ops.cu keeps the stream and the failures (cuda_int.h); these ops
 * enqueue on that stream and note a failed launch for its sync().
 *
 * Simple kernels, as in ops.cu: a block per row for the norms (a sum over the row by warp
 * shuffles, then across the block's warps in a fixed order), a thread per element for the
 * rotations and SwiGLU.  Every output element has exactly one writer: the backward of the
 * repeated key and value heads sums over the query heads of a group in one thread, in the
 * CPU's order, so no atomics and the same result on every run; the norms' dw sums columns as
 * layernorm's does in ops.cu.
 */
#include "kernels/cuda/cuda_int.h"

#include <math.h>

#define ROW_THREADS 128 /* a block per row of the norms: 4 warps */
#define EW_THREADS  256 /* the elementwise kernels */

/* stream -- the backend's stream (these ops are reached only through the table that
 * kernels_cuda hands out once the stream exists) */
static cudaStream_t stream(void)
{
  cudaStream_t s = 0;
  (void)kernels__cuda_stream(&s);
  return s;
}

/* block_sum -- v summed over the block of ROW_THREADS, the warps' sums added in a fixed order:
 * the same value on every thread.  The second barrier lets a caller call it again. */
static __device__ float block_sum(float v)
{
  __shared__ float part[ROW_THREADS / 32];
  int lane = threadIdx.x % 32, wid = threadIdx.x / 32;
  v = kernels__warp_sum(v);
  if (lane == 0) part[wid] = v;
  __syncthreads();
  float s = 0;
  for (int k = 0; k < ROW_THREADS / 32; k++)
    s += part[k];
  __syncthreads();
  return s;
}

/* ---------------------------------------------------------------- RMSNorm */

/*
 * One block per row of C: x = a, or a + b written to res when b is not NULL (the fused
 * residual); rstd = 1 / sqrt(mean(x^2) + eps); out = x rstd w.  The second pass reads back
 * what the same thread wrote (or read) in the first, so out may be inp and res may be a.
 */
__global__ void k_rmsnorm_forward(float *res, float *out, float *rstd, const float *a,
                                  const float *b, const float *w, int C, float eps)
{
  size_t o = (size_t)blockIdx.x * C;
  float ss = 0;
  for (int c = threadIdx.x; c < C; c += ROW_THREADS) {
    float x = a[o + c];
    if (b) {
      x += b[o + c];
      res[o + c] = x;
    }
    ss += x * x;
  }
  float s = rsqrtf(block_sum(ss) / (float)C + eps);
  for (int c = threadIdx.x; c < C; c += ROW_THREADS) {
    float x = b ? res[o + c] : a[o + c];
    out[o + c] = x * s * w[c];
  }
  if (threadIdx.x == 0) rstd[blockIdx.x] = s;
}

void kernels__cuda_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N,
                                   int C, float eps)
{
  if (N <= 0) return; /* no rows: nothing to launch */
  k_rmsnorm_forward<<<N, ROW_THREADS, 0, stream()>>>(NULL, out, rstd, inp, NULL, w, C, eps);
  LAUNCHED(rmsnorm_forward);
}

void kernels__cuda_residual_rmsnorm_forward(float *res, float *out, float *rstd, const float *a,
                                            const float *b, const float *w, int N, int C, float eps)
{
  if (N <= 0) return;
  k_rmsnorm_forward<<<N, ROW_THREADS, 0, stream()>>>(res, out, rstd, a, b, w, C, eps);
  LAUNCHED(residual_rmsnorm_forward);
}

/* y = x s w, s = (mean(x^2) + eps)^-1/2:  dx_c += s w_c d_c - x_c s^3 mean(w d x), one block
 * per row */
__global__ void k_rmsnorm_backward_dinp(float *dinp, const float *dout, const float *inp,
                                        const float *w, const float *rstd, int C)
{
  size_t o = (size_t)blockIdx.x * C;
  const float *x = inp + o, *d = dout + o;
  float s = rstd[blockIdx.x], dot = 0;
  for (int c = threadIdx.x; c < C; c += ROW_THREADS)
    dot += w[c] * d[c] * x[c];
  float k = block_sum(dot) / (float)C * s * s * s;
  float *di = dinp + o;
  for (int c = threadIdx.x; c < C; c += ROW_THREADS)
    di[c] += s * w[c] * d[c] - x[c] * k;
}

/* dw_c += sum over rows of x_c s d_c: a block of 32 columns x 16 row lanes, the 16 partial sums
 * added in order (layernorm's column sums in ops.cu) */
__global__ void k_rmsnorm_backward_dw(float *dw, const float *dout, const float *inp,
                                      const float *rstd, int N, int C)
{
  __shared__ float sw[16][33];
  int c = blockIdx.x * 32 + threadIdx.x, ry = threadIdx.y;
  float a = 0;
  if (c < C)
    for (int i = ry; i < N; i += 16)
      a += inp[(size_t)i * C + c] * rstd[i] * dout[(size_t)i * C + c];
  sw[ry][threadIdx.x] = a;
  __syncthreads();
  if (ry == 0 && c < C) {
    float t = 0;
    for (int k = 0; k < 16; k++)
      t += sw[k][threadIdx.x];
    dw[c] += t;
  }
}

void kernels__cuda_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                                    const float *w, const float *rstd, int N, int C)
{
  if (N <= 0 || C <= 0) return;
  k_rmsnorm_backward_dinp<<<N, ROW_THREADS, 0, stream()>>>(dinp, dout, inp, w, rstd, C);
  LAUNCHED(rmsnorm_backward_dinp);
  k_rmsnorm_backward_dw<<<(C + 31) / 32, dim3(32, 16), 0, stream()>>>(dw, dout, inp, rstd, N, C);
  LAUNCHED(rmsnorm_backward_dw);
}

/* ---------------------------------------------------------------- rotary embeddings */

/* rotated -- element e of the head at x, rotated by the angle (c, s) of its pair: rotate-half
 * pairs e < half with e + half.  (c, -s) rotates back: the transpose, the backward. */
static __device__ __forceinline__ float rotated(const float *x, int e, int half, float c, float s)
{
  return e < half ? x[e] * c - x[e + half] * s : x[e] * c + x[e - half] * s;
}

/* one thread per element of out (B,T,3C): its source head in inp (B,T,(NH + 2 KVH) HD) is
 * query head h, or key or value head h / group */
__global__ void k_rope_qkv_forward(float *out, const float *inp, const float *cos, const float *sin,
                                   int T, int NH, int KVH, int HD, size_t n)
{
  int C = NH * HD, W = (NH + 2 * KVH) * HD, group = NH / KVH, half = HD / 2;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x) {
    size_t row = i / (3 * (size_t)C);
    int j = (int)(i % (3 * (size_t)C)), part = j / C, h = j % C / HD, e = j % HD;
    int src = part == 0 ? h : part == 1 ? NH + h / group : NH + KVH + h / group;
    const float *x = inp + row * W + (size_t)src * HD;
    if (part == 2 || !cos) { /* values, or no rotation: a copy */
      out[i] = x[e];
      continue;
    }
    size_t a = (size_t)(row % T) * half + e % half; /* the angle of position t, pair e */
    out[i] = rotated(x, e, half, cos[a], sin[a]);
  }
}

void kernels__cuda_rope_qkv_forward(float *out, const float *inp, const float *cos,
                                    const float *sin, int B, int T, int NH, int KVH, int HD)
{
  size_t n = (size_t)B * T * 3 * NH * HD;
  k_rope_qkv_forward<<<kernels__blocks(n, EW_THREADS), EW_THREADS, 0, stream()>>>(
      out, inp, cos, sin, T, NH, KVH, HD, n);
  LAUNCHED(rope_qkv_forward);
}

/*
 * One thread per element of dinp (B,T,(NH + 2 KVH) HD), its only writer: a query head's
 * element is its gradient rotated back; a key or value head's sums the gradients of the
 * group of query heads that read it (rotated back for keys), in the order of the heads, as
 * the CPU does.  So the repeated heads need no atomics and the sums are the same every run.
 */
__global__ void k_rope_qkv_backward(float *dinp, const float *dout, const float *cos,
                                    const float *sin, int T, int NH, int KVH, int HD, size_t n)
{
  int C = NH * HD, W = (NH + 2 * KVH) * HD, group = NH / KVH, half = HD / 2;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x) {
    size_t row = i / W;
    int j = (int)(i % W), h = j / HD, e = j % HD;
    const float *d = dout + row * 3 * C;
    float c = 1.0f, s = 0.0f;
    bool rot = cos && h < NH + KVH; /* queries and keys turn, values do not */
    if (rot) {
      size_t a = (size_t)(row % T) * half + e % half;
      c = cos[a], s = -sin[a]; /* the inverse rotation */
    }
    float g = 0.0f;
    if (h < NH) {
      const float *x = d + (size_t)h * HD;
      g = rot ? rotated(x, e, half, c, s) : x[e];
    } else {
      int kv = h < NH + KVH ? h - NH : h - NH - KVH;
      const float *x = d + (h < NH + KVH ? C : 2 * C) + (size_t)kv * group * HD;
      for (int q = 0; q < group; q++, x += HD)
        g += rot ? rotated(x, e, half, c, s) : x[e];
    }
    dinp[i] = g;
  }
}

void kernels__cuda_rope_qkv_backward(float *dinp, const float *dout, const float *cos,
                                     const float *sin, int B, int T, int NH, int KVH, int HD)
{
  size_t n = (size_t)B * T * (NH + 2 * KVH) * HD;
  k_rope_qkv_backward<<<kernels__blocks(n, EW_THREADS), EW_THREADS, 0, stream()>>>(
      dinp, dout, cos, sin, T, NH, KVH, HD, n);
  LAUNCHED(rope_qkv_backward);
}

/* ---------------------------------------------------------------- SwiGLU */

/* out (N,F) = silu(g) u, g and u the two halves of a row of inp (N,2F) */
__global__ void k_swiglu_forward(float *out, const float *inp, int F, size_t n)
{
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x) {
    const float *gp = inp + i / F * 2 * F + i % F;
    float g = gp[0], u = gp[F];
    out[i] = g / (1.0f + expf(-g)) * u;
  }
}

/* silu(g) = g sig(g), silu'(g) = sig(g) (1 + g (1 - sig(g))); both halves of dinp written */
__global__ void k_swiglu_backward(float *dinp, const float *inp, const float *dout, int F, size_t n)
{
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x) {
    size_t o = i / F * 2 * F + i % F;
    float g = inp[o], u = inp[o + F], d = dout[i];
    float sg = 1.0f / (1.0f + expf(-g));
    dinp[o + F] = d * g * sg;
    dinp[o] = d * u * sg * (1.0f + g * (1.0f - sg));
  }
}

void kernels__cuda_swiglu_forward(float *out, const float *inp, int N, int F)
{
  size_t n = (size_t)N * F;
  k_swiglu_forward<<<kernels__blocks(n, EW_THREADS), EW_THREADS, 0, stream()>>>(out, inp, F, n);
  LAUNCHED(swiglu_forward);
}

void kernels__cuda_swiglu_backward(float *dinp, const float *inp, const float *dout, int N, int F)
{
  size_t n = (size_t)N * F;
  k_swiglu_backward<<<kernels__blocks(n, EW_THREADS), EW_THREADS, 0, stream()>>>(dinp, inp, dout, F,
                                                                                 n);
  LAUNCHED(swiglu_backward);
}
