/*
 * ops.c -- the CPU backend: every forward and backward op of the GPT, in C
 * with OpenMP threads and OpenBLAS sgemm for the matrix products.
 *
 * This is the reference: the CUDA twin is tested against it and the finite
 * differences of tests/kernels/test_cpu_ops.c test it.  It favours plain loops
 * a reader can check against the maths; speed comes from sgemm (where nearly
 * all the FLOPs are) and from running rows, heads and batches in parallel.
 *
 * Invariants: no op allocates; backward ops overwrite the gradient of the
 * activation they flow into (dinp, dqkv, dlogits) and add into parameter
 * gradients and the residual stream (dw, dbias, layernorm's dinp); threads never
 * write the same element (work is split by row, by head or by column).
 */
#include "kernels/cpu/cpu_int.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#define LN_EPS 1e-5f
#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */

#pragma omp declare simd
static inline float tanh_simd(float u)
{
  return 1.0f - 2.0f / (kernels__exp_simd(2.0f * u) + 1.0f);
}

float kernels__exp(float x); /* for the accuracy test */
float kernels__exp(float x)
{
  return kernels__exp_simd(x);
}

/* ---------------------------------------------------------------- encoder */

static void encoder_forward(float *out, const int32_t *tokens, const float *wte, const float *wpe,
                            int B, int T, int C)
{
#pragma omp parallel for collapse(2)
  for (int b = 0; b < B; b++) {
    for (int t = 0; t < T; t++) {
      float *o = out + ((size_t)b * T + t) * C;
      const float *e = wte + (size_t)tokens[b * T + t] * C;
      if (!wpe) { /* rotary embeddings: positions enter in attention */
        memcpy(o, e, (size_t)C * sizeof *o);
        continue;
      }
      const float *p = wpe + (size_t)t * C;
      for (int c = 0; c < C; c++)
        o[c] = e[c] + p[c];
    }
  }
}

static void encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                             int B, int T, int C)
{
  /* split by channel: two positions may share a token, never a channel */
#pragma omp parallel for
  for (int c = 0; c < C; c++) {
    for (int b = 0; b < B; b++) {
      for (int t = 0; t < T; t++) {
        float d = dout[((size_t)b * T + t) * C + c];
        dwte[(size_t)tokens[b * T + t] * C + c] += d;
        if (dwpe) dwpe[(size_t)t * C + c] += d;
      }
    }
  }
}

/* ---------------------------------------------------------------- layernorm */

static void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                              const float *w, const float *b, int N, int C)
{
#pragma omp parallel for
  for (int i = 0; i < N; i++) {
    const float *x = inp + (size_t)i * C;
    float m = 0, v = 0;
    for (int c = 0; c < C; c++)
      m += x[c];
    m /= (float)C;
    for (int c = 0; c < C; c++)
      v += (x[c] - m) * (x[c] - m);
    float s = 1.0f / sqrtf(v / (float)C + LN_EPS);
    float *o = out + (size_t)i * C;
    for (int c = 0; c < C; c++)
      o[c] = (x[c] - m) * s * w[c] + b[c];
    mean[i] = m;
    rstd[i] = s;
  }
}

static void layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                               const float *inp, const float *w, const float *mean,
                               const float *rstd, int N, int C)
{
  /* dinp by row (rows are independent) */
#pragma omp parallel for
  for (int i = 0; i < N; i++) {
    const float *x = inp + (size_t)i * C, *d = dout + (size_t)i * C;
    float m = mean[i], s = rstd[i];
    float dnorm_mean = 0, dnorm_norm_mean = 0;
    for (int c = 0; c < C; c++) {
      float dn = w[c] * d[c];
      dnorm_mean += dn;
      dnorm_norm_mean += dn * (x[c] - m) * s;
    }
    dnorm_mean /= (float)C;
    dnorm_norm_mean /= (float)C;
    float *di = dinp + (size_t)i * C;
    for (int c = 0; c < C; c++) {
      float dn = w[c] * d[c];
      di[c] += (dn - dnorm_mean - (x[c] - m) * s * dnorm_norm_mean) * s;
    }
  }
  /* dw, db: each thread owns a block of channels and walks the rows along memory */
#pragma omp parallel
  {
    int c0, c1;
    kernels__block_of(C, &c0, &c1);
    for (int i = 0; i < N; i++) {
      const float *x = inp + (size_t)i * C, *d = dout + (size_t)i * C;
      float m = mean[i], s = rstd[i];
#pragma omp simd
      for (int c = c0; c < c1; c++) {
        dw[c] += (x[c] - m) * s * d[c];
        db[c] += d[c];
      }
    }
  }
}

/* ---------------------------------------------------------------- matmul */

/*
 * The products run single-threaded sgemm inside our OpenMP threads, each on a block
 * of rows: two thread pools (OpenMP's and OpenBLAS's) on the same cores spin against
 * each other, which cost a fifth of a step here.
 */

static void matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N,
                           int C, int OC)
{
#pragma omp parallel
  {
    int r0, r1;
    kernels__block_of(N, &r0, &r1);
    if (r1 > r0) { /* out (N,OC) = bias + inp (N,C) . w^T */
      /* the bias first, then sgemm adds to it (beta 1): with beta 0 OpenBLAS clears the
       * output in a pass of its own, and the bias would need another */
      if (bias)
        for (int i = r0; i < r1; i++)
          memcpy(out + (size_t)i * OC, bias, (size_t)OC * sizeof *out);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, OC, C, 1.0f,
                  inp + (size_t)r0 * C, C, w, C, bias ? 1.0f : 0.0f, out + (size_t)r0 * OC, OC);
    }
  }
}

static void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout,
                            const float *inp, const float *w, int N, int C, int OC)
{
#pragma omp parallel
  {
    int r0, r1, o0, o1;
    kernels__block_of(N, &r0, &r1);
    /* dinp (N,C) = dout (N,OC) . w (OC,C), by rows of N */
    if (dinp && r1 > r0)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r1 - r0, C, OC, 1.0f,
                  dout + (size_t)r0 * OC, OC, w, C, 0.0f, dinp + (size_t)r0 * C, C);
    /* dw (OC,C) += dout^T (OC,N) . inp (N,C), by rows of OC (none when dw is NULL: frozen) */
    kernels__block_of(OC, &o0, &o1);
    if (o1 > o0) {
      if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, o1 - o0, C, N, 1.0f, dout + o0, OC,
                    inp, C, 1.0f, dw + (size_t)o0 * C, C);
      if (dbias) /* row by row: the inner loop runs along memory */
        for (int i = 0; i < N; i++) {
          const float *d = dout + (size_t)i * OC;
#pragma omp simd
          for (int o = o0; o < o1; o++)
            dbias[o] += d[o];
        }
    }
  }
}

/* ---------------------------------------------------------------- attention */

/*
 * Attention, per (batch, head), with single-threaded sgemm on strided views of qkv
 * (row stride 3C): S = Q K^T scaled, a causal softmax row by row, O = P V.  Rows go
 * in blocks of ATT_BLOCK so a block of rows multiplies only the columns it can see
 * (the causal half is not computed).  Work is split over the B*NH pairs.
 */
static bool portable_attention;
void kernels__cpu_force_portable_attention(bool on)
{
  portable_attention = on;
}

#define ATT_BLOCK 64

static void attention_forward(float *out, float *att, float *scratch, const float *qkv, int B,
                              int T, int C, int NH)
{
  if (!portable_attention && kernels__attention_avx512_usable(C, NH)) {
    kernels__attention_forward_avx512(out, att, scratch, qkv, B, T, C, NH);
    return;
  }
  int hs = C / NH;
  float scale = 1.0f / sqrtf((float)hs);
  int C3 = 3 * C;
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < NH; h++) {
      const float *Q = qkv + (size_t)b * T * C3 + (size_t)h * hs;
      const float *K = Q + C, *V = Q + 2 * C;
      float *P = att + ((size_t)b * NH + h) * T * T;
      float *O = out + (size_t)b * T * C + (size_t)h * hs;
      for (int r0 = 0; r0 < T; r0 += ATT_BLOCK) {
        int r1 = r0 + ATT_BLOCK < T ? r0 + ATT_BLOCK : T;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, r1, hs, scale,
                    Q + (size_t)r0 * C3, C3, K, C3, 0.0f, P + (size_t)r0 * T, T);
        for (int t = r0; t < r1; t++) /* only the diagonal block is ever read past t */
          kernels__softmax_causal_row(P + (size_t)t * T, t, r1);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r1 - r0, hs, r1, 1.0f,
                    P + (size_t)r0 * T, T, V, C3, 0.0f, O + (size_t)r0 * C, C);
      }
    }
  }
}

static void attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                               const float *att, int B, int T, int C, int NH)
{
  if (!portable_attention && kernels__attention_avx512_usable(C, NH)) {
    kernels__attention_backward_avx512(dqkv, scratch, dout, qkv, att, B, T, C, NH);
    return;
  }
  int hs = C / NH;
  float scale = 1.0f / sqrtf((float)hs);
  int C3 = 3 * C;
  /* one (batch, head) per task: it alone writes that head's slice of dq, dk, dv */
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < NH; h++) {
      const float *Q = qkv + (size_t)b * T * C3 + (size_t)h * hs;
      const float *K = Q + C, *V = Q + 2 * C;
      float *dQ = dqkv + (size_t)b * T * C3 + (size_t)h * hs;
      float *dK = dQ + C, *dV = dQ + 2 * C;
      const float *P = att + ((size_t)b * NH + h) * T * T;
      const float *dO = dout + (size_t)b * T * C + (size_t)h * hs;
      float *dS = scratch + ((size_t)b * NH + h) * T * T;
      /* dV = P^T dO: row t2 of dV sums over t >= t2 (P is zero above the diagonal) */
      for (int r0 = 0; r0 < T; r0 += ATT_BLOCK) {
        int r1 = r0 + ATT_BLOCK < T ? r0 + ATT_BLOCK : T;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1 - r0, hs, T - r0, 1.0f,
                    P + (size_t)r0 * T + r0, T, dO + (size_t)r0 * C, C, 0.0f, dV + (size_t)r0 * C3,
                    C3);
      }
      for (int r0 = 0; r0 < T; r0 += ATT_BLOCK) {
        int r1 = r0 + ATT_BLOCK < T ? r0 + ATT_BLOCK : T;
        /* dP = dO V^T, the visible columns only */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, r1, hs, 1.0f,
                    dO + (size_t)r0 * C, C, V, C3, 0.0f, dS + (size_t)r0 * T, T);
        /* through the softmax: dS = P (dP - sum(P dP)) scaled */
        for (int t = r0; t < r1; t++)
          kernels__softmax_causal_row_backward(dS + (size_t)t * T, P + (size_t)t * T, t, r1, scale);
        /* dQ = dS K, the visible columns only */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r1 - r0, hs, r1, 1.0f,
                    dS + (size_t)r0 * T, T, K, C3, 0.0f, dQ + (size_t)r0 * C3, C3);
      }
      /* dK = dS^T Q, likewise over t >= t2 only */
      for (int r0 = 0; r0 < T; r0 += ATT_BLOCK) {
        int r1 = r0 + ATT_BLOCK < T ? r0 + ATT_BLOCK : T;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1 - r0, hs, T - r0, 1.0f,
                    dS + (size_t)r0 * T + r0, T, Q + (size_t)r0 * C3, C3, 0.0f,
                    dK + (size_t)r0 * C3, C3);
      }
    }
  }
}

/* ---------------------------------------------------------------- pointwise */

static void gelu_forward(float *out, const float *inp, size_t n)
{
#pragma omp parallel for simd
  for (size_t i = 0; i < n; i++) {
    float x = inp[i];
    out[i] = 0.5f * x * (1.0f + tanh_simd(GELU_K * (x + 0.044715f * x * x * x)));
  }
}

static void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n)
{
#pragma omp parallel for simd
  for (size_t i = 0; i < n; i++) {
    float x = inp[i];
    float u = GELU_K * (x + 0.044715f * x * x * x);
    float th = tanh_simd(u);
    float sech2 = 1.0f - th * th;
    float du = GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
    dinp[i] = (0.5f * (1.0f + th) + 0.5f * x * sech2 * du) * dout[i];
  }
}

static void residual_forward(float *out, const float *a, const float *b, size_t n)
{
#pragma omp parallel for
  for (size_t i = 0; i < n; i++)
    out[i] = a[i] + b[i];
}

/* the CPU's is the two ops in turn: the reference the fused CUDA kernel is checked against */
static void residual_layernorm_forward(float *res, float *out, float *mean, float *rstd,
                                       const float *a, const float *b, const float *w,
                                       const float *bias, int N, int C)
{
  residual_forward(res, a, b, (size_t)N * C);
  layernorm_forward(out, mean, rstd, res, w, bias, N, C);
}

/* ---------------------------------------------------------------- loss */

static void crossentropy_forward(float *losses, float *probs, const float *logits,
                                 const int32_t *targets, int N, int V, int Vp)
{
#pragma omp parallel for
  for (int i = 0; i < N; i++) {
    const float *l = logits + (size_t)i * Vp;
    float *p = probs + (size_t)i * Vp;
    float maxv = -INFINITY;
#pragma omp simd reduction(max : maxv)
    for (int j = 0; j < V; j++)
      maxv = l[j] > maxv ? l[j] : maxv;
    float sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < V; j++) {
      p[j] = kernels__exp_simd(l[j] - maxv);
      sum += p[j];
    }
    float inv = 1.0f / sum;
    for (int j = 0; j < V; j++)
      p[j] *= inv;
    for (int j = V; j < Vp; j++)
      p[j] = 0;
    losses[i] = -logf(p[targets[i]]);
  }
}

static void crossentropy_backward(float *dlogits, const float *probs, const float *dlosses,
                                  const int32_t *targets, const float *soft, float w, int N, int V,
                                  int Vp)
{
#pragma omp parallel for
  for (int i = 0; i < N; i++) {
    const float *p = probs + (size_t)i * Vp;
    float *d = dlogits + (size_t)i * Vp;
    float dl = dlosses[i];
    if (soft) {
      const float *s = soft + (size_t)i * Vp;
      for (int j = 0; j < V; j++)
        d[j] = (p[j] - w * s[j] - (j == targets[i] ? 1.0f - w : 0.0f)) * dl;
    } else {
      for (int j = 0; j < V; j++)
        d[j] = (p[j] - (j == targets[i] ? 1.0f : 0.0f)) * dl;
    }
    for (int j = V; j < Vp; j++)
      d[j] = 0;
  }
}

/* ---------------------------------------------------------------- optimizer */

/* adam_step -- one element's AdamW step with gradient g (inlined into both loops below) */
#pragma omp declare simd
static inline float adam_step(float p, float *m, float *v, float g, float lr, float beta1,
                              float beta2, float c1, float c2, float eps, float weight_decay)
{
  float mi = beta1 * *m + (1.0f - beta1) * g;
  float vi = beta2 * *v + (1.0f - beta2) * g * g;
  *m = mi;
  *v = vi;
  return p - lr * ((mi / c1) / (sqrtf(vi / c2) + eps) + weight_decay * p);
}

static void adamw_update(float *params, const float *grads, float *m, float *v, size_t n, float lr,
                         float beta1, float beta2, float eps, float weight_decay, float grad_scale,
                         const float *scale_at, int t, const kernels_ewc *ewc)
{
  if (scale_at) grad_scale = *scale_at;
  if (isnan(grad_scale)) return; /* a non-finite gradient: no step */
  float c1 = 1.0f - powf(beta1, (float)t), c2 = 1.0f - powf(beta2, (float)t);
  /* two loops rather than a test per element: the one without EWC reads two arrays less */
  if (ewc && ewc->lambda != 0.0f) {
    const float *F = ewc->fisher, *A = ewc->anchor;
    float lambda = ewc->lambda;
#pragma omp parallel for simd
    for (size_t i = 0; i < n; i++)
      params[i] = adam_step(params[i], &m[i], &v[i],
                            grads[i] * grad_scale + lambda * F[i] * (params[i] - A[i]), lr, beta1,
                            beta2, c1, c2, eps, weight_decay);
    return;
  }
#pragma omp parallel for simd
  for (size_t i = 0; i < n; i++)
    params[i] = adam_step(params[i], &m[i], &v[i], grads[i] * grad_scale, lr, beta1, beta2, c1, c2,
                          eps, weight_decay);
}

static double sum_squares(const float *x, size_t n)
{
  enum { MAX_CHUNKS = 1024 };
  double part[MAX_CHUNKS];
  size_t chunk = n / MAX_CHUNKS + 1;
  if (chunk < 32768) chunk = 32768;
  int nchunks = (int)((n + chunk - 1) / chunk);
#pragma omp parallel for
  for (int c = 0; c < nchunks; c++) {
    size_t lo = (size_t)c * chunk, hi = lo + chunk < n ? lo + chunk : n;
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (size_t i = lo; i < hi; i++)
      s += (double)x[i] * x[i];
    part[c] = s;
  }
  double total = 0;
  for (int c = 0; c < nchunks; c++)
    total += part[c]; /* in order: deterministic */
  return total;
}

/* ---------------------------------------------------------------- memory */

static void *mem_alloc(size_t bytes)
{
  return kernels_host_alloc(bytes);
}

static void mem_zero(void *p, size_t bytes)
{
  memset(p, 0, bytes);
}

static void mem_copy(void *dst, const void *src, size_t bytes)
{
  memcpy(dst, src, bytes);
}

static mn_status sync_none(mn_error *err)
{
  (void)err;
  return MN_OK;
}

static void clip_scale(float *out, const float *x, size_t n, float clip)
{
  float norm = (float)sqrt(sum_squares(x, n));
  out[0] = norm;
  out[1] = !isfinite(norm) ? NAN : clip > 0 && norm > clip ? clip / norm : 1.0f;
}

static void mean(float *out, const float *x, size_t n)
{
  double s = 0;
  for (size_t i = 0; i < n; i++)
    s += x[i];
  out[0] = n ? (float)(s / (double)n) : 0.0f;
}

static const kernels_backend cpu = {
    .name = "cpu",
    .host_memory = true,
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
    .rmsnorm_forward = kernels__rmsnorm_forward,
    .rmsnorm_backward = kernels__rmsnorm_backward,
    .residual_rmsnorm_forward = kernels__residual_rmsnorm_forward,
    .rope_qkv_forward = kernels__rope_qkv_forward,
    .rope_qkv_backward = kernels__rope_qkv_backward,
    .swiglu_forward = kernels__swiglu_forward,
    .swiglu_backward = kernels__swiglu_backward,
    .crossentropy_forward = crossentropy_forward,
    .crossentropy_backward = crossentropy_backward,
    .adamw_update = adamw_update,
    .sum_squares = sum_squares,
    .clip_scale = clip_scale,
    .mean = mean,
    .mem_alloc = mem_alloc,
    .mem_free = kernels_host_free,
    .mem_zero = mem_zero,
    .to_device = mem_copy,
    .to_host = mem_copy,
    .sync = sync_none,
};

const kernels_backend *kernels_cpu(void)
{
  return &cpu;
}

void kernels_cpu_set_threads(int n)
{
  if (n <= 0) n = omp_get_num_procs();
  omp_set_num_threads(n);
  openblas_set_num_threads(1); /* sgemm runs inside our threads, on blocks (see matmul) */
}

int kernels_cpu_threads(void)
{
  return omp_get_max_threads();
}
