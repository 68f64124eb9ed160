/*
 * cpu_int.h -- what the CPU backend's files share; not part of the backend's API.
 */
#ifndef MNEMO_KERNELS_CPU_INT_H
#define MNEMO_KERNELS_CPU_INT_H

#include "kernels/kernels.h"

#include <math.h>
#include <omp.h>
#include <string.h>

/* kernels__block_of -- the calling OpenMP thread's share [lo, hi) of n items. */
static inline void kernels__block_of(int n, int *lo, int *hi)
{
  int nt = omp_get_num_threads(), t = omp_get_thread_num();
  int per = (n + nt - 1) / nt;
  *lo = t * per < n ? t * per : n;
  *hi = *lo + per < n ? *lo + per : n;
}

/*
 * kernels__exp_simd -- e^x for float, written so that "omp simd" loops vectorise it (glibc's
 * expf and tanhf are scalar calls: GELU spent a quarter of a training step in them).
 * Cody-Waite range reduction by ln 2, a degree-6 polynomial on [-ln2/2, ln2/2],
 * the exponent put back through the bits; relative error about 2e-7 (checked
 * against exp in double by test_cpu_ops).
 */
#pragma omp declare simd
static inline float kernels__exp_simd(float x)
{
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  float n = rintf(x * 1.44269504088896341f);
  float f = x - n * 0.693359375f - n * -2.12194440e-4f; /* ln 2 in two parts */
  float p =
      1.0f +
      f * (1.0f + f * (0.5f + f * (0.16666666f +
                                   f * (0.041666667f + f * (0.0083333333f + f * 0.0013888889f)))));
  int32_t bits = ((int32_t)n + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

/* The causal softmax of one row of attention scores (softmax.c), shared by the portable
 * attention of ops.c and the AVX-512 one of attention_avx512.c.
 * a[0..t] = softmax(a[0..t]); a[t+1..end) = 0 (the future has no weight) */
void kernels__softmax_causal_row(float *a, int t, int end);
/* d[0..t] = a * (d - sum(a * d)) * scale, the softmax backward of one row;
 * d[t+1..end) = 0 */
void kernels__softmax_causal_row_backward(float *d, const float *a, int t, int end, float scale);

/* Attention for heads of 64 with AVX-512 (attention_avx512.c); usable() says whether this
 * CPU and shape can take it.  scratch: B*NH*T*T + B*C*(T+80) floats for both. */
bool kernels__attention_avx512_usable(int C, int NH);
void kernels__attention_forward_avx512(float *out, float *att, float *scratch, const float *qkv,
                                       int B, int T, int C, int NH);
void kernels__attention_backward_avx512(float *dqkv, float *scratch, const float *dout,
                                        const float *qkv, const float *att, int B, int T, int C,
                                        int NH);
/* The Llama family's ops (ops_llama.c), as kernels.h describes them */
void kernels__rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N,
                              int C, float eps);
void kernels__rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                               const float *w, const float *rstd, int N, int C);
void kernels__residual_rmsnorm_forward(float *res, float *out, float *rstd, const float *a,
                                       const float *b, const float *w, int N, int C, float eps);
void kernels__rope_qkv_forward(float *out, const float *inp, const float *cos, const float *sin,
                               int B, int T, int NH, int KVH, int HD);
void kernels__rope_qkv_backward(float *dinp, const float *dout, const float *cos, const float *sin,
                                int B, int T, int NH, int KVH, int HD);
void kernels__swiglu_forward(float *out, const float *inp, int N, int F);
void kernels__swiglu_backward(float *dinp, const float *inp, const float *dout, int N, int F);

/* tests: take the portable sgemm path even where AVX-512 is usable */
void kernels__cpu_force_portable_attention(bool on);

#endif /* MNEMO_KERNELS_CPU_INT_H */
