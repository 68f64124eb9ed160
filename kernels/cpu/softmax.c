/*
 * softmax.c -- the causal softmax of one row of attention scores and its backward, in C with
 * "omp simd" loops: the one copy that both attentions of the CPU backend use (the portable
 * one in ops.c and the AVX-512 one in attention_avx512.c).  No op allocates.
 */
#include "kernels/cpu/cpu_int.h"

#include <math.h>

/* The row reductions keep LANES partial results: a single running max or sum waits on
 * the latency of each vector operation (measured: half of the softmax's time). */
#define LANES 32

/* kernels__softmax_causal_row -- a[0..t] = softmax(a[0..t]); a[t+1..end) = 0 (no weight on the
 * future) */
void kernels__softmax_causal_row(float *a, int t, int end)
{
  int n = t + 1, full = n / LANES * LANES;
  float part[LANES], maxv = -INFINITY, sum = 0;
  for (int j = 0; j < LANES; j++)
    part[j] = -INFINITY;
  for (int i = 0; i < full; i += LANES)
#pragma omp simd
    for (int j = 0; j < LANES; j++)
      part[j] = a[i + j] > part[j] ? a[i + j] : part[j];
  for (int i = full; i < n; i++)
    maxv = a[i] > maxv ? a[i] : maxv;
  for (int j = 0; j < LANES; j++)
    maxv = part[j] > maxv ? part[j] : maxv;
  for (int j = 0; j < LANES; j++)
    part[j] = 0;
  for (int i = 0; i < full; i += LANES)
#pragma omp simd
    for (int j = 0; j < LANES; j++) {
      a[i + j] = kernels__exp_simd(a[i + j] - maxv);
      part[j] += a[i + j];
    }
  for (int i = full; i < n; i++) {
    a[i] = kernels__exp_simd(a[i] - maxv);
    sum += a[i];
  }
  for (int j = 0; j < LANES; j++)
    sum += part[j];
  float inv = 1.0f / sum;
#pragma omp simd
  for (int i = 0; i < n; i++)
    a[i] *= inv;
  for (int i = n; i < end; i++)
    a[i] = 0;
}

/* kernels__softmax_causal_row_backward -- d[0..t] = a * (d - sum(a * d)) * scale; d[t+1..end) = 0
 */
void kernels__softmax_causal_row_backward(float *d, const float *a, int t, int end, float scale)
{
  int n = t + 1, full = n / LANES * LANES;
  float part[LANES] = {0}, dot = 0;
  for (int i = 0; i < full; i += LANES)
#pragma omp simd
    for (int j = 0; j < LANES; j++)
      part[j] += a[i + j] * d[i + j];
  for (int i = full; i < n; i++)
    dot += a[i] * d[i];
  for (int j = 0; j < LANES; j++)
    dot += part[j];
#pragma omp simd
  for (int i = 0; i < n; i++)
    d[i] = a[i] * (d[i] - dot) * scale;
  for (int i = n; i < end; i++)
    d[i] = 0;
}
