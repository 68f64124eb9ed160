/*
 * ops_llama.c -- the CPU backend's ops of the Llama family (Llama, Qwen2): RMSNorm, rotary
 * position embeddings with grouped-query heads, SwiGLU.  kernels.h states what each computes;
 * the maths is written out here so a reader can check it, as in ops.c.
 *
 * Rotary embeddings use the rotate-half pairing of Hugging Face's Llama (element i of a head
 * with element i + HD/2), so imported weights are used as stored.  Grouped-query attention
 * reuses the multi-head attention of ops.c: rope_qkv_forward writes each key and value head
 * once per query head that reads it, and its backward sums their gradients.
 */
#include "kernels/cpu/cpu_int.h"

#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- RMSNorm */

static float rms_row(float *out, const float *x, const float *w, int C, float eps)
{
  float ss = 0;
#pragma omp simd reduction(+ : ss)
  for (int c = 0; c < C; c++)
    ss += x[c] * x[c];
  float s = 1.0f / sqrtf(ss / (float)C + eps);
#pragma omp simd
  for (int c = 0; c < C; c++)
    out[c] = x[c] * s * w[c];
  return s;
}

void kernels__rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N,
                              int C, float eps)
{
#pragma omp parallel for
  for (int i = 0; i < N; i++)
    rstd[i] = rms_row(out + (size_t)i * C, inp + (size_t)i * C, w, C, eps);
}

void kernels__residual_rmsnorm_forward(float *res, float *out, float *rstd, const float *a,
                                       const float *b, const float *w, int N, int C, float eps)
{
#pragma omp parallel for
  for (int i = 0; i < N; i++) {
    float *r = res + (size_t)i * C;
    const float *x = a + (size_t)i * C, *y = b + (size_t)i * C;
#pragma omp simd
    for (int c = 0; c < C; c++)
      r[c] = x[c] + y[c];
    rstd[i] = rms_row(out + (size_t)i * C, r, w, C, eps);
  }
}

/*
 * y = x s w with s = (mean(x^2) + eps)^-1/2:  dx_c = s (w_c d_c) - x_c s^3 mean(w d x),
 * dw_c = sum over rows of x_c s d_c.
 */
void kernels__rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                               const float *w, const float *rstd, int N, int C)
{
#pragma omp parallel for
  for (int i = 0; i < N; i++) {
    const float *x = inp + (size_t)i * C, *d = dout + (size_t)i * C;
    float s = rstd[i], dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int c = 0; c < C; c++)
      dot += w[c] * d[c] * x[c];
    float k = dot / (float)C * s * s * s;
    float *di = dinp + (size_t)i * C;
#pragma omp simd
    for (int c = 0; c < C; c++)
      di[c] += s * w[c] * d[c] - x[c] * k;
  }
  /* dw: each thread owns a block of channels and walks the rows along memory */
#pragma omp parallel
  {
    int c0, c1;
    kernels__block_of(C, &c0, &c1);
    for (int i = 0; i < N; i++) {
      const float *x = inp + (size_t)i * C, *d = dout + (size_t)i * C;
      float s = rstd[i];
#pragma omp simd
      for (int c = c0; c < c1; c++)
        dw[c] += x[c] * s * d[c];
    }
  }
}

/* ---------------------------------------------------------------- rotary embeddings */

/* rotate -- one head of HD: out = x rotated by the angles of (cos, sin) (sign 1), or back
 * (sign -1, the transpose: the backward of a rotation) */
static void rotate(float *out, const float *x, const float *cos, const float *sin, int HD,
                   float sign)
{
  int h = HD / 2;
  if (!cos) {
    memcpy(out, x, (size_t)HD * sizeof *out);
    return;
  }
  for (int i = 0; i < h; i++) {
    float c = cos[i], s = sign * sin[i], a = x[i], b = x[i + h];
    out[i] = a * c - b * s;
    out[i + h] = b * c + a * s;
  }
}

void kernels__rope_qkv_forward(float *out, const float *inp, const float *cos, const float *sin,
                               int B, int T, int NH, int KVH, int HD)
{
  int C = NH * HD, W = (NH + 2 * KVH) * HD, group = NH / KVH;
#pragma omp parallel for collapse(2)
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      size_t row = (size_t)b * T + t;
      const float *x = inp + row * W;
      float *o = out + row * 3 * C;
      const float *ct = cos ? cos + (size_t)t * (HD / 2) : NULL;
      const float *st = sin ? sin + (size_t)t * (HD / 2) : NULL;
      for (int h = 0; h < NH; h++) {
        int kv = h / group;
        rotate(o + (size_t)h * HD, x + (size_t)h * HD, ct, st, HD, 1.0f);
        rotate(o + C + (size_t)h * HD, x + C + (size_t)kv * HD, ct, st, HD, 1.0f);
        memcpy(o + 2 * C + (size_t)h * HD, x + C + (size_t)(KVH + kv) * HD, (size_t)HD * sizeof *o);
      }
    }
}

void kernels__rope_qkv_backward(float *dinp, const float *dout, const float *cos, const float *sin,
                                int B, int T, int NH, int KVH, int HD)
{
  int C = NH * HD, W = (NH + 2 * KVH) * HD, group = NH / KVH;
#pragma omp parallel for collapse(2)
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      size_t row = (size_t)b * T + t;
      const float *d = dout + row * 3 * C;
      float *di = dinp + row * W;
      const float *ct = cos ? cos + (size_t)t * (HD / 2) : NULL;
      const float *st = sin ? sin + (size_t)t * (HD / 2) : NULL;
      float tmp[1024]; /* a head's width: HD <= 1024 (gpt_config_check) */
      for (int h = 0; h < NH; h++)
        rotate(di + (size_t)h * HD, d + (size_t)h * HD, ct, st, HD, -1.0f);
      memset(di + C, 0, (size_t)2 * KVH * HD * sizeof *di);
      for (int h = 0; h < NH; h++) {
        int kv = h / group;
        float *dk = di + C + (size_t)kv * HD, *dv = di + C + (size_t)(KVH + kv) * HD;
        rotate(tmp, d + C + (size_t)h * HD, ct, st, HD, -1.0f);
        const float *gv = d + 2 * C + (size_t)h * HD;
        for (int i = 0; i < HD; i++) {
          dk[i] += tmp[i];
          dv[i] += gv[i];
        }
      }
    }
}

/* ---------------------------------------------------------------- SwiGLU */

void kernels__swiglu_forward(float *out, const float *inp, int N, int F)
{
#pragma omp parallel for
  for (int i = 0; i < N; i++) {
    const float *g = inp + (size_t)i * 2 * F, *u = g + F;
    float *o = out + (size_t)i * F;
#pragma omp simd
    for (int j = 0; j < F; j++)
      o[j] = g[j] / (1.0f + kernels__exp_simd(-g[j])) * u[j];
  }
}

/* silu(g) = g sig(g), silu'(g) = sig(g) (1 + g (1 - sig(g))) */
void kernels__swiglu_backward(float *dinp, const float *inp, const float *dout, int N, int F)
{
#pragma omp parallel for
  for (int i = 0; i < N; i++) {
    const float *g = inp + (size_t)i * 2 * F, *u = g + F, *d = dout + (size_t)i * F;
    float *dg = dinp + (size_t)i * 2 * F, *du = dg + F;
#pragma omp simd
    for (int j = 0; j < F; j++) {
      float sg = 1.0f / (1.0f + kernels__exp_simd(-g[j]));
      du[j] = d[j] * g[j] * sg;
      dg[j] = d[j] * u[j] * sg * (1.0f + g[j] * (1.0f - sg));
    }
  }
}
