/*
 * test_cpu_ops.c -- the CPU backend against finite differences and hand-worked values.
 *
 * Each backward op is checked on fresh random inputs: with a fixed random R,
 * the scalar L = sum(out * R) has dL/dout = R, so backward(dout = R) must give
 * dL/dx, which central differences estimate as (L(x+e) - L(x-e)) / 2e.
 *
 * Tolerances: the ops compute in float, L is summed in double.  With e = 1e-2
 * and inputs of order 1, the truncation error of a central difference of a
 * smooth op is O(e^2) ~ 1e-4 relative, and float rounding of L, divided by 2e,
 * stays near 1e-5 for the sizes here; so |analytic - numeric| must be within
 * 2e-3 + 2e-2 * max(|analytic|, |numeric|).  A wrong formula misses by far more
 * (a missing factor or term is off by 10% or more, and a sign by 200%).
 */
#include "kernels/cpu/cpu_int.h"
#include "tests/test.h"

#include <math.h>

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static float frand(void) /* uniform in [-1, 1) */
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static float *randn(size_t n, float scale)
{
  float *p = malloc(n * sizeof *p);
  for (size_t i = 0; i < n; i++)
    p[i] = frand() * scale;
  return p;
}

/* garbage -- n NaNs: an op that must overwrite its output cannot let one through */
static float *garbage(size_t n)
{
  float *p = malloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++)
    p[i] = NAN;
  return p;
}

static float *zeros(size_t n)
{
  return calloc(n, sizeof(float));
}

static const kernels_backend *K;

/* forward of the op under test, from the current inputs, into out */
typedef void (*forward_fn)(void *ctx, float *out);

static double loss(forward_fn f, void *ctx, float *out, const float *R, size_t nout)
{
  f(ctx, out);
  double L = 0;
  for (size_t i = 0; i < nout; i++)
    L += (double)out[i] * R[i];
  return L;
}

/* check_grad -- compare grad[] of input x[] with central differences at up to 40 places. */
static void check_grad(const char *what, forward_fn f, void *ctx, float *out, const float *R,
                       size_t nout, float *x, const float *grad, size_t n)
{
  const float eps = 1e-2f;
  size_t samples = n < 40 ? n : 40;
  int bad = 0;
  double worst = 0;
  for (size_t s = 0; s < samples; s++) {
    size_t i = samples == n ? s : (s * n) / samples + (rng % (n / samples));
    float keep = x[i];
    x[i] = keep + eps;
    double lp = loss(f, ctx, out, R, nout);
    x[i] = keep - eps;
    double lm = loss(f, ctx, out, R, nout);
    x[i] = keep;
    double num = (lp - lm) / (2.0 * eps), ana = grad[i];
    double err = fabs(num - ana), tol = 2e-3 + 2e-2 * fmax(fabs(num), fabs(ana));
    if (!(err <= tol)) { /* written so that a NaN gradient fails too */
      if (bad++ < 3) fprintf(stderr, "  %s[%zu]: analytic %.6g, numeric %.6g\n", what, i, ana, num);
    }
    if (err / tol > worst) worst = err / tol;
  }
  T_CHECK_MSG(bad == 0, "%s: %d of %zu gradients off (worst %.1fx the tolerance)", what, bad,
              samples, worst);
}

/* ---------------------------------------------------------------- encoder */

typedef struct {
  int B, T, C, V;
  int32_t *tok;
  float *wte, *wpe;
} enc_ctx;

static void enc_fwd(void *p, float *out)
{
  enc_ctx *c = p;
  K->encoder_forward(out, c->tok, c->wte, c->wpe, c->B, c->T, c->C);
}

static void encoder(void)
{
  enc_ctx c = {.B = 2, .T = 5, .C = 8, .V = 7};
  c.tok = malloc(sizeof(int32_t) * 10);
  for (int i = 0; i < 10; i++)
    c.tok[i] = (int32_t)(i * 3 % c.V); /* tokens repeat */
  c.wte = randn((size_t)c.V * c.C, 1);
  c.wpe = randn((size_t)c.T * c.C, 1);
  size_t n = (size_t)c.B * c.T * c.C;
  float *out = zeros(n), *R = randn(n, 1);
  float *dwte = zeros((size_t)c.V * c.C), *dwpe = zeros((size_t)c.T * c.C);
  enc_fwd(&c, out);
  T_CHECK(out[c.C + 2] == c.wte[c.tok[1] * c.C + 2] + c.wpe[c.C + 2]);
  K->encoder_backward(dwte, dwpe, R, c.tok, c.B, c.T, c.C);
  check_grad("dwte", enc_fwd, &c, out, R, n, c.wte, dwte, (size_t)c.V * c.C);
  check_grad("dwpe", enc_fwd, &c, out, R, n, c.wpe, dwpe, (size_t)c.T * c.C);
  /* no learned positions (rotary embeddings): out is the token's row, dwpe is NULL */
  float *keep = c.wpe;
  c.wpe = NULL;
  enc_fwd(&c, out);
  T_CHECK(memcmp(out + 7 * c.C, c.wte + c.tok[7] * c.C, sizeof(float) * c.C) == 0);
  memset(dwte, 0, sizeof(float) * c.V * c.C);
  K->encoder_backward(dwte, NULL, R, c.tok, c.B, c.T, c.C);
  check_grad("dwte (no wpe)", enc_fwd, &c, out, R, n, c.wte, dwte, (size_t)c.V * c.C);
  c.wpe = keep;
  free(c.tok), free(c.wte), free(c.wpe), free(out), free(R), free(dwte), free(dwpe);
}

/* ---------------------------------------------------------------- layernorm */

typedef struct {
  int N, C;
  float *inp, *w, *b, *mean, *rstd;
} ln_ctx;

static void ln_fwd(void *p, float *out)
{
  ln_ctx *c = p;
  K->layernorm_forward(out, c->mean, c->rstd, c->inp, c->w, c->b, c->N, c->C);
}

static void layernorm(void)
{
  ln_ctx c = {.N = 6, .C = 16};
  size_t n = (size_t)c.N * c.C;
  c.inp = randn(n, 2);
  c.w = randn((size_t)c.C, 1);
  c.b = randn((size_t)c.C, 1);
  c.mean = zeros((size_t)c.N);
  c.rstd = zeros((size_t)c.N);
  float *out = zeros(n), *R = randn(n, 1);
  /* with w = 1, b = 0 every row has mean 0 and variance 1 */
  float *ones = malloc(sizeof(float) * c.C), *zero = zeros((size_t)c.C);
  for (int i = 0; i < c.C; i++)
    ones[i] = 1;
  K->layernorm_forward(out, c.mean, c.rstd, c.inp, ones, zero, c.N, c.C);
  double m = 0, v = 0;
  for (int i = 0; i < c.C; i++)
    m += out[i];
  for (int i = 0; i < c.C; i++)
    v += (out[i] - m / c.C) * (out[i] - m / c.C);
  T_CHECK(fabs(m / c.C) < 1e-5 && fabs(v / c.C - 1) < 1e-3);

  float *dinp = zeros(n), *dw = zeros((size_t)c.C), *db = zeros((size_t)c.C);
  ln_fwd(&c, out);
  K->layernorm_backward(dinp, dw, db, R, c.inp, c.w, c.mean, c.rstd, c.N, c.C);
  check_grad("layernorm dinp", ln_fwd, &c, out, R, n, c.inp, dinp, n);
  check_grad("layernorm dw", ln_fwd, &c, out, R, n, c.w, dw, (size_t)c.C);
  check_grad("layernorm db", ln_fwd, &c, out, R, n, c.b, db, (size_t)c.C);
  free(c.inp), free(c.w), free(c.b), free(c.mean), free(c.rstd), free(out), free(R);
  free(ones), free(zero), free(dinp), free(dw), free(db);
}

/* ---------------------------------------------------------------- matmul */

typedef struct {
  int N, C, OC;
  float *inp, *w, *bias;
} mm_ctx;

static void mm_fwd(void *p, float *out)
{
  mm_ctx *c = p;
  K->matmul_forward(out, c->inp, c->w, c->bias, c->N, c->C, c->OC);
}

static void matmul(void)
{
  mm_ctx c = {.N = 7, .C = 12, .OC = 9};
  c.inp = randn((size_t)c.N * c.C, 1);
  c.w = randn((size_t)c.OC * c.C, 1);
  c.bias = randn((size_t)c.OC, 1);
  size_t n = (size_t)c.N * c.OC;
  float *out = zeros(n), *R = randn(n, 1);
  mm_fwd(&c, out);
  double maxerr = 0; /* against the definition */
  for (int i = 0; i < c.N; i++)
    for (int o = 0; o < c.OC; o++) {
      double s = c.bias[o];
      for (int k = 0; k < c.C; k++)
        s += (double)c.inp[i * c.C + k] * c.w[o * c.C + k];
      maxerr = fmax(maxerr, fabs(s - out[i * c.OC + o]));
    }
  T_CHECK_MSG(maxerr < 1e-4, "matmul forward off by %g", maxerr);
  float *dinp = garbage((size_t)c.N * c.C), *dw = zeros((size_t)c.OC * c.C),
        *db = zeros((size_t)c.OC);
  K->matmul_backward(dinp, dw, db, R, c.inp, c.w, c.N, c.C, c.OC);
  check_grad("matmul dinp", mm_fwd, &c, out, R, n, c.inp, dinp, (size_t)c.N * c.C);
  check_grad("matmul dw", mm_fwd, &c, out, R, n, c.w, dw, (size_t)c.OC * c.C);
  check_grad("matmul dbias", mm_fwd, &c, out, R, n, c.bias, db, (size_t)c.OC);
  /* parameter gradients add (a second call doubles them); dinp is overwritten */
  float before = dw[5], dinp_before = dinp[3];
  K->matmul_backward(dinp, dw, db, R, c.inp, c.w, c.N, c.C, c.OC);
  T_CHECK(fabsf(dw[5] - 2 * before) <= 1e-5f * fabsf(before) + 1e-6f);
  T_CHECK(dinp[3] == dinp_before);
  free(c.inp), free(c.w), free(c.bias), free(out), free(R), free(dinp), free(dw), free(db);
}

/* ---------------------------------------------------------------- attention */

typedef struct {
  int B, T, C, NH;
  float *qkv, *att, *scratch;
} att_ctx;

static void att_fwd(void *p, float *out)
{
  att_ctx *c = p;
  K->attention_forward(out, c->att, c->scratch, c->qkv, c->B, c->T, c->C, c->NH);
}

static size_t att_scratch_floats(const att_ctx *c)
{
  return (size_t)c->B * c->NH * c->T * c->T + (size_t)c->B * c->C * (c->T + 80);
}

static void attention(void)
{
  att_ctx c = {.B = 2, .T = 6, .C = 8, .NH = 2};
  size_t nqkv = (size_t)c.B * c.T * 3 * c.C, n = (size_t)c.B * c.T * c.C;
  c.qkv = randn(nqkv, 1);
  c.att = zeros((size_t)c.B * c.NH * c.T * c.T);
  c.scratch = garbage(att_scratch_floats(&c));
  float *out = zeros(n), *R = randn(n, 1), *dqkv = garbage(nqkv);
  att_fwd(&c, out);
  /* each row of probabilities over the visible columns sums to 1 */
  bool rows_ok = true;
  for (int r = 0; r < c.B * c.NH * c.T; r++) {
    int t = r % c.T;
    double s = 0;
    for (int t2 = 0; t2 <= t; t2++)
      s += c.att[(size_t)r * c.T + t2];
    if (fabs(s - 1) > 1e-5) rows_ok = false;
  }
  T_CHECK(rows_ok);
  /* causality: changing the last position's key and value changes no earlier output */
  float *before = malloc(n * sizeof(float));
  memcpy(before, out, n * sizeof(float));
  for (int i = c.C; i < 3 * c.C; i++)
    c.qkv[((size_t)c.T - 1) * 3 * c.C + i] += 0.5f;
  att_fwd(&c, out);
  bool causal = true;
  for (int t = 0; t < c.T - 1; t++)
    for (int i = 0; i < c.C; i++)
      causal = causal && out[t * c.C + i] == before[t * c.C + i];
  T_CHECK(causal);
  T_CHECK(memcmp(out + (c.T - 1) * c.C, before + (c.T - 1) * c.C, sizeof(float) * c.C) != 0);

  att_fwd(&c, out);
  K->attention_backward(dqkv, c.scratch, R, c.qkv, c.att, c.B, c.T, c.C, c.NH);
  check_grad("attention dqkv", att_fwd, &c, out, R, n, c.qkv, dqkv, nqkv);
  free(c.qkv), free(c.att), free(out), free(R), free(dqkv), free(c.scratch), free(before);
}

/* attention_heads_of_64 -- the AVX-512 path (heads of 64) against the portable sgemm path,
 * forward and backward, at a T that is a multiple of neither the 6-row tile nor 64, and
 * its own gradients against finite differences.  On a CPU without AVX-512 both runs take
 * the portable path and must agree exactly. */
static void attention_heads_of_64(void)
{
  att_ctx c = {.B = 2, .T = 70, .C = 128, .NH = 2};
  size_t nqkv = (size_t)c.B * c.T * 3 * c.C, n = (size_t)c.B * c.T * c.C;
  size_t natt = (size_t)c.B * c.NH * c.T * c.T;
  __builtin_cpu_init();
  bool avx512 = __builtin_cpu_supports("avx512f");
  T_CHECK(kernels__attention_avx512_usable(c.C, c.NH) == avx512);
  T_CHECK(!kernels__attention_avx512_usable(c.C, 4)); /* heads of 32: the portable path */
  if (!avx512) fprintf(stderr, "  this CPU has no AVX-512: both runs take the portable path\n");
  c.qkv = randn(nqkv, 1);
  c.att = garbage(natt);
  c.scratch = garbage(att_scratch_floats(&c));
  float *R = randn(n, 1), *out[2], *dqkv[2], *att[2];
  for (int portable = 0; portable < 2; portable++) {
    kernels__cpu_force_portable_attention(portable);
    out[portable] = garbage(n), dqkv[portable] = garbage(nqkv);
    att_fwd(&c, out[portable]);
    K->attention_backward(dqkv[portable], c.scratch, R, c.qkv, c.att, c.B, c.T, c.C, c.NH);
    att[portable] = malloc(natt * sizeof(float));
    memcpy(att[portable], c.att, natt * sizeof(float));
  }
  kernels__cpu_force_portable_attention(false);
  double dout = 0, dgrad = 0, datt = 0;
  for (size_t i = 0; i < n; i++)
    dout = fmax(dout, fabs((double)out[0][i] - out[1][i]));
  for (size_t i = 0; i < nqkv; i++)
    dgrad = fmax(dgrad, fabs((double)dqkv[0][i] - dqkv[1][i]));
  for (int r = 0; r < c.B * c.NH * c.T; r++) /* the visible part of every row */
    for (int t2 = 0; t2 <= r % c.T; t2++)
      datt = fmax(datt, fabs((double)att[0][(size_t)r * c.T + t2] - att[1][(size_t)r * c.T + t2]));
  T_CHECK_MSG(dout < 1e-5 && datt < 1e-6 && dgrad < 1e-4,
              "fast and portable attention differ: out %g, att %g, dqkv %g", dout, datt, dgrad);
  att_fwd(&c, out[0]);
  K->attention_backward(dqkv[0], c.scratch, R, c.qkv, c.att, c.B, c.T, c.C, c.NH);
  check_grad("attention (heads of 64) dqkv", att_fwd, &c, out[1], R, n, c.qkv, dqkv[0], nqkv);
  for (int i = 0; i < 2; i++)
    free(out[i]), free(dqkv[i]), free(att[i]);
  free(c.qkv), free(c.att), free(c.scratch), free(R);
}

/* ---------------------------------------------------------------- gelu, residual */

typedef struct {
  size_t n;
  float *inp;
} gelu_ctx;

static void gelu_fwd(void *p, float *out)
{
  gelu_ctx *c = p;
  K->gelu_forward(out, c->inp, c->n);
}

static void gelu_and_residual(void)
{
  gelu_ctx c = {.n = 64};
  c.inp = randn(c.n, 3);
  float *out = zeros(c.n), *R = randn(c.n, 1), *dinp = garbage(c.n);
  float pts[3] = {0.0f, 1.0f, -10.0f}, got[3];
  K->gelu_forward(got, pts, 3);
  T_CHECK(got[0] == 0.0f);
  T_CHECK(fabsf(got[1] - 0.841192f) < 1e-5f); /* 0.5(1 + tanh(sqrt(2/pi)(1.044715))) */
  T_CHECK(fabsf(got[2]) < 1e-6f);
  gelu_fwd(&c, out);
  K->gelu_backward(dinp, c.inp, R, c.n);
  check_grad("gelu dinp", gelu_fwd, &c, out, R, c.n, c.inp, dinp, c.n);

  float a[4] = {1, 2, 3, 4}, b[4] = {0.5f, -2, 0, 1}, s[4];
  K->residual_forward(s, a, b, 4);
  T_CHECK(s[0] == 1.5f && s[1] == 0 && s[2] == 3 && s[3] == 5);
  free(c.inp), free(out), free(R), free(dinp);
}

/* ---------------------------------------------------------------- the Llama family */

/* max_rel -- the largest |got - want| / max(|want|, 1) over n values (NaN: infinity) */
static double max_rel(const float *got, const double *want, size_t n)
{
  double worst = 0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs(got[i] - want[i]) / fmax(fabs(want[i]), 1.0);
    worst = isnan(e) ? INFINITY : fmax(worst, e);
  }
  return worst;
}

typedef struct {
  int N, C;
  float eps;
  float *inp, *w, *rstd;
} rms_ctx;

static void rms_fwd(void *p, float *out)
{
  rms_ctx *c = p;
  K->rmsnorm_forward(out, c->rstd, c->inp, c->w, c->N, c->C, c->eps);
}

static void rmsnorm(void)
{
  rms_ctx c = {.N = 6, .C = 24, .eps = 1e-5f};
  size_t n = (size_t)c.N * c.C;
  c.inp = randn(n, 2);
  c.w = randn((size_t)c.C, 1);
  c.rstd = garbage((size_t)c.N);
  float *out = garbage(n), *R = randn(n, 1);
  /* against the definition, in double */
  double *want = malloc(n * sizeof *want), *want_r = malloc((size_t)c.N * sizeof *want_r);
  for (int i = 0; i < c.N; i++) {
    const float *x = c.inp + (size_t)i * c.C;
    double ss = 0;
    for (int k = 0; k < c.C; k++)
      ss += (double)x[k] * x[k];
    want_r[i] = 1.0 / sqrt(ss / c.C + c.eps);
    for (int k = 0; k < c.C; k++)
      want[(size_t)i * c.C + k] = x[k] * want_r[i] * c.w[k];
  }
  rms_fwd(&c, out);
  double eo = max_rel(out, want, n), er = max_rel(c.rstd, want_r, (size_t)c.N);
  T_CHECK_MSG(eo < 1e-5 && er < 1e-5, "rmsnorm forward off: out %g, rstd %g", eo, er);
  /* fused with the residual sum: res = a + b exactly, out and rstd those of rmsnorm(res) */
  float *a = randn(n, 1), *b = randn(n, 1), *res = garbage(n), *out2 = garbage(n),
        *rstd2 = garbage((size_t)c.N);
  K->residual_rmsnorm_forward(res, out2, rstd2, a, b, c.w, c.N, c.C, c.eps);
  bool sum_ok = true;
  for (size_t i = 0; i < n; i++)
    sum_ok = sum_ok && res[i] == a[i] + b[i];
  T_CHECK(sum_ok);
  K->rmsnorm_forward(out, c.rstd, res, c.w, c.N, c.C, c.eps);
  double fo = 0, fr = 0;
  for (size_t i = 0; i < n; i++)
    fo = fmax(fo, fabs((double)out2[i] - out[i]));
  for (int i = 0; i < c.N; i++)
    fr = fmax(fr, fabs((double)rstd2[i] - c.rstd[i]));
  T_CHECK_MSG(fo <= 1e-6 && fr <= 1e-6, "fused and plain rmsnorm differ: out %g, rstd %g", fo, fr);

  /* backward: dinp and dw add (the residual stream's gradient sums two paths) */
  float *dinp = zeros(n), *dw = zeros((size_t)c.C);
  rms_fwd(&c, out);
  K->rmsnorm_backward(dinp, dw, R, c.inp, c.w, c.rstd, c.N, c.C);
  check_grad("rmsnorm dinp", rms_fwd, &c, out, R, n, c.inp, dinp, n);
  check_grad("rmsnorm dw", rms_fwd, &c, out, R, n, c.w, dw, (size_t)c.C);
  rms_fwd(&c, out); /* check_grad left rstd at a perturbed input's */
  float before = dinp[5], dw_before = dw[3];
  K->rmsnorm_backward(dinp, dw, R, c.inp, c.w, c.rstd, c.N, c.C);
  T_CHECK(fabsf(dinp[5] - 2 * before) <= 1e-5f * fabsf(before) + 1e-6f);
  T_CHECK(fabsf(dw[3] - 2 * dw_before) <= 1e-5f * fabsf(dw_before) + 1e-6f);
  free(c.inp), free(c.w), free(c.rstd), free(out), free(R), free(want), free(want_r);
  free(a), free(b), free(res), free(out2), free(rstd2), free(dinp), free(dw);
}

typedef struct {
  int B, T, NH, KVH, HD;
  float *inp;
  const float *cos, *sin; /* (T, HD/2) or NULL */
} rope_ctx;

static void rope_fwd(void *p, float *out)
{
  rope_ctx *c = p;
  K->rope_qkv_forward(out, c->inp, c->cos, c->sin, c->B, c->T, c->NH, c->KVH, c->HD);
}

/* rope_reference -- rope_qkv_forward in double, as kernels.h states it: query head h and key
 * head h / (NH/KVH) rotated (element i with i + HD/2: out_i = x_i cos - x_{i+h} sin,
 * out_{i+h} = x_{i+h} cos + x_i sin, the angle of position t), value head h / (NH/KVH) copied */
static void rope_reference(double *out, const rope_ctx *c)
{
  int C = c->NH * c->HD, W = (c->NH + 2 * c->KVH) * c->HD, h2 = c->HD / 2;
  for (int r = 0; r < c->B * c->T; r++) {
    int t = r % c->T;
    for (int h = 0; h < c->NH; h++) {
      int kv = h / (c->NH / c->KVH);
      const float *src[3] = {c->inp + (size_t)r * W + (size_t)h * c->HD,
                             c->inp + (size_t)r * W + (size_t)(c->NH + kv) * c->HD,
                             c->inp + (size_t)r * W + (size_t)(c->NH + c->KVH + kv) * c->HD};
      for (int part = 0; part < 3; part++) {
        double *o = out + (size_t)r * 3 * C + (size_t)part * C + (size_t)h * c->HD;
        const float *x = src[part];
        for (int i = 0; i < h2; i++) {
          bool turn = part < 2 && c->cos;
          double cs = turn ? c->cos[t * h2 + i] : 1, sn = turn ? c->sin[t * h2 + i] : 0;
          o[i] = x[i] * cs - x[i + h2] * sn;
          o[i + h2] = x[i + h2] * cs + x[i] * sn;
        }
      }
    }
  }
}

static void rope_qkv(void)
{
  rope_ctx c = {.B = 2, .T = 5, .NH = 4, .KVH = 2, .HD = 8};
  int C = c.NH * c.HD, h2 = c.HD / 2;
  size_t nin = (size_t)c.B * c.T * (c.NH + 2 * c.KVH) * c.HD, n = (size_t)c.B * c.T * 3 * C;
  float *cos_t = malloc(sizeof(float) * c.T * h2), *sin_t = malloc(sizeof(float) * c.T * h2);
  for (int t = 0; t < c.T; t++) /* Llama's angles: t * 10000^(-2i/HD) */
    for (int i = 0; i < h2; i++) {
      double a = t * pow(10000.0, -2.0 * i / c.HD);
      cos_t[t * h2 + i] = (float)cos(a), sin_t[t * h2 + i] = (float)sin(a);
    }
  c.inp = randn(nin, 1);
  float *out = garbage(n), *R = randn(n, 1), *dinp = garbage(nin);
  double *want = malloc(n * sizeof *want);
  for (int rot = 1; rot >= 0; rot--) { /* with the tables, then cos NULL: no rotation */
    c.cos = rot ? cos_t : NULL, c.sin = rot ? sin_t : NULL;
    rope_fwd(&c, out);
    rope_reference(want, &c);
    double e = max_rel(out, want, n);
    T_CHECK_MSG(e < 1e-6, "rope_qkv forward (%s) off by %g", rot ? "rotated" : "cos NULL", e);
    /* backward overwrites dinp and sums the repeated key and value heads' gradients */
    for (size_t i = 0; i < nin; i++)
      dinp[i] = NAN;
    K->rope_qkv_backward(dinp, R, c.cos, c.sin, c.B, c.T, c.NH, c.KVH, c.HD);
    check_grad(rot ? "rope_qkv dinp" : "rope_qkv dinp (cos NULL)", rope_fwd, &c, out, R, n, c.inp,
               dinp, nin);
  }
  free(cos_t), free(sin_t), free(c.inp), free(out), free(R), free(dinp), free(want);
}

typedef struct {
  int N, F;
  float *inp;
} swiglu_ctx;

static void swiglu_fwd(void *p, float *out)
{
  swiglu_ctx *c = p;
  K->swiglu_forward(out, c->inp, c->N, c->F);
}

static void swiglu(void)
{
  swiglu_ctx c = {.N = 5, .F = 12};
  size_t n = (size_t)c.N * c.F, nin = 2 * n;
  c.inp = randn(nin, 3);
  float *out = garbage(n), *R = randn(n, 1), *dinp = garbage(nin);
  double *want = malloc(n * sizeof *want);
  for (int i = 0; i < c.N; i++) /* silu(gate) * up, the gate the first F columns */
    for (int j = 0; j < c.F; j++) {
      double g = c.inp[(size_t)i * 2 * c.F + j], u = c.inp[(size_t)i * 2 * c.F + c.F + j];
      want[(size_t)i * c.F + j] = g / (1.0 + exp(-g)) * u;
    }
  swiglu_fwd(&c, out);
  double e = max_rel(out, want, n);
  T_CHECK_MSG(e < 1e-5, "swiglu forward off by %g", e);
  K->swiglu_backward(dinp, c.inp, R, c.N, c.F);
  check_grad("swiglu dinp", swiglu_fwd, &c, out, R, n, c.inp, dinp, nin);
  free(c.inp), free(out), free(R), free(dinp), free(want);
}

/* ---------------------------------------------------------------- cross-entropy */

typedef struct {
  int N, V, Vp;
  float *logits, *probs;
  int32_t *targets;
  const float *soft; /* a teacher's distribution per row, and its weight */
  float w;
} ce_ctx;

static void ce_fwd(void *p, float *out)
{
  ce_ctx *c = p;
  K->crossentropy_forward(out, c->probs, c->logits, c->targets, c->N, c->V, c->Vp);
}

/* the cross-entropy against (1 - w) onehot + w soft, from the forward's probabilities */
static void ce_soft_fwd(void *p, float *out)
{
  ce_ctx *c = p;
  K->crossentropy_forward(out, c->probs, c->logits, c->targets, c->N, c->V, c->Vp);
  for (int i = 0; i < c->N; i++) {
    const float *q = c->probs + (size_t)i * c->Vp, *s = c->soft + (size_t)i * c->Vp;
    double l = 0;
    for (int j = 0; j < c->V; j++)
      l -= ((j == c->targets[i] ? 1.0 - c->w : 0.0) + c->w * s[j]) * log(q[j]);
    out[i] = (float)l;
  }
}

static void crossentropy(void)
{
  ce_ctx c = {.N = 5, .V = 11, .Vp = 16};
  size_t n = (size_t)c.N * c.Vp;
  c.logits = randn(n, 2);
  c.probs = zeros(n);
  c.targets = malloc(sizeof(int32_t) * c.N);
  for (int i = 0; i < c.N; i++)
    c.targets[i] = (int32_t)((i * 5) % c.V);
  float *losses = zeros((size_t)c.N), *R = randn((size_t)c.N, 1), *dlogits = garbage(n);
  ce_fwd(&c, losses);
  double s = 0;
  for (int j = 0; j < c.Vp; j++)
    s += c.probs[j];
  T_CHECK(fabs(s - 1) < 1e-5);
  T_CHECK(c.probs[c.V] == 0 && c.probs[c.Vp - 1] == 0);
  T_CHECK(fabsf(losses[0] + logf(c.probs[c.targets[0]])) < 1e-6f);
  /* uniform logits: the loss is ln(V) whatever the padding holds */
  float *flat = zeros(n);
  for (size_t i = 0; i < n; i++)
    flat[i] = (i % c.Vp) >= (size_t)c.V ? 100.0f : 0.0f;
  float *l2 = zeros((size_t)c.N), *p2 = zeros(n);
  K->crossentropy_forward(l2, p2, flat, c.targets, c.N, c.V, c.Vp);
  T_CHECK(fabsf(l2[0] - logf((float)c.V)) < 1e-5f);
  K->crossentropy_backward(dlogits, c.probs, R, c.targets, NULL, 0.0f, c.N, c.V, c.Vp);
  check_grad("crossentropy dlogits", ce_fwd, &c, losses, R, (size_t)c.N, c.logits, dlogits, n);
  bool pad_zero = true;
  for (int i = 0; i < c.N; i++)
    for (int j = c.V; j < c.Vp; j++)
      pad_zero = pad_zero && dlogits[i * c.Vp + j] == 0;
  T_CHECK(pad_zero);
  /* soft targets (distillation): a teacher's probabilities, softmax of other logits */
  float *tl = randn(n, 7), *soft = zeros(n), *tloss = zeros((size_t)c.N);
  K->crossentropy_forward(tloss, soft, tl, c.targets, c.N, c.V, c.Vp);
  c.soft = soft;
  for (int k = 0; k < 3; k++) {
    c.w = k == 0 ? 0.0f : k == 1 ? 0.4f : 1.0f;
    ce_soft_fwd(&c, losses);
    K->crossentropy_backward(dlogits, c.probs, R, c.targets, soft, c.w, c.N, c.V, c.Vp);
    check_grad(k == 0   ? "soft w=0"
               : k == 1 ? "soft w=0.4"
                        : "soft w=1",
               ce_soft_fwd, &c, losses, R, (size_t)c.N, c.logits, dlogits, n);
  }
  /* a teacher equal to the student: at w = 1 the gradient vanishes */
  K->crossentropy_backward(dlogits, c.probs, R, c.targets, c.probs, 1.0f, c.N, c.V, c.Vp);
  double worst = 0;
  for (size_t i = 0; i < n; i++)
    worst = fmax(worst, fabs(dlogits[i]));
  T_CHECK_MSG(worst < 1e-7, "gradient %g against itself", worst);
  free(tl), free(soft), free(tloss);
  free(c.logits), free(c.probs), free(c.targets), free(losses), free(R), free(dlogits);
  free(flat), free(l2), free(p2);
}

/* ---------------------------------------------------------------- AdamW */

float kernels__exp(float x);

/* the vectorisable exp behind GELU and the softmaxes, against exp in double */
static void fast_exp(void)
{
  double worst = 0;
  for (float x = -80.0f; x <= 80.0f; x += 0.01234f) {
    double want = exp((double)x), got = kernels__exp(x);
    worst = fmax(worst, fabs(got - want) / want);
  }
  T_CHECK_MSG(worst < 1e-6, "relative error up to %g", worst);
  T_CHECK(kernels__exp(-200.0f) >= 0.0f && kernels__exp(-200.0f) < 1e-37f); /* no garbage */
  T_CHECK(isfinite(kernels__exp(200.0f)));
}

/* the step's scalars computed where the step runs: the norm and clipping scale, the mean
 * loss; a NaN scale takes no step */
static void clip_and_mean(void)
{
  float x[4] = {3.0f, 0.0f, 4.0f, 0.0f}, out[2];
  K->clip_scale(out, x, 4, 1.0f);
  T_CHECK(fabsf(out[0] - 5.0f) < 1e-6f && fabsf(out[1] - 0.2f) < 1e-6f);
  K->clip_scale(out, x, 4, 10.0f);
  T_CHECK(out[1] == 1.0f);
  K->clip_scale(out, x, 4, 0.0f); /* no clipping */
  T_CHECK(out[1] == 1.0f);
  x[1] = INFINITY;
  K->clip_scale(out, x, 4, 1.0f);
  T_CHECK(isnan(out[1]));
  float p[2] = {1.0f, 2.0f}, g[2] = {1.0f, 1.0f}, m[2] = {0}, v[2] = {0};
  K->adamw_update(p, g, m, v, 2, 0.1f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, &out[1], 1, NULL);
  T_CHECK(p[0] == 1.0f && p[1] == 2.0f && m[0] == 0.0f && v[1] == 0.0f);
  float scale = 0.5f;
  K->adamw_update(p, g, m, v, 2, 0.1f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, &scale, 1, NULL);
  T_CHECK(p[0] < 1.0f && fabsf(m[0] - 0.05f) < 1e-7f); /* the scale read through the pointer */
  float l[5] = {1, 2, 3, 4, 5}, mean;
  K->mean(&mean, l, 5);
  T_CHECK(mean == 3.0f);
}

static void adamw(void)
{
  float p[3] = {1.0f, -2.0f, 0.5f}, g[3] = {0.1f, -0.3f, 0.0f}, m[3] = {0}, v[3] = {0};
  double P[3] = {1.0, -2.0, 0.5}, M[3] = {0}, V[3] = {0};
  const double lr = 1e-2, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
  for (int t = 1; t <= 3; t++) {
    K->adamw_update(p, g, m, v, 3, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd, 0.5f,
                    NULL, t, NULL);
    for (int i = 0; i < 3; i++) { /* the textbook update, in double, of the scaled gradient */
      double gi = 0.5 * g[i];
      M[i] = b1 * M[i] + (1 - b1) * gi;
      V[i] = b2 * V[i] + (1 - b2) * gi * gi;
      double mh = M[i] / (1 - pow(b1, t)), vh = V[i] / (1 - pow(b2, t));
      P[i] -= lr * (mh / (sqrt(vh) + eps) + wd * P[i]);
    }
  }
  for (int i = 0; i < 3; i++)
    T_CHECK_MSG(fabs(p[i] - P[i]) < 1e-5, "p[%d] %g vs %g", i, p[i], P[i]);
  /* a zero gradient still decays the weight (decoupled weight decay) */
  T_CHECK(p[2] < 0.5f);
  /* EWC fused: lambda F (theta - anchor) joins the scaled gradient, theta before the step */
  float q[3] = {1.0f, -2.0f, 0.5f}, qm[3] = {0}, qv[3] = {0};
  const float F[3] = {2.0f, 0.0f, 5.0f}, A[3] = {0.5f, -1.0f, 0.4f};
  double Q[3] = {1.0, -2.0, 0.5}, QM[3] = {0}, QV[3] = {0};
  kernels_ewc ewc = {.fisher = F, .anchor = A, .lambda = 0.3f};
  for (int t = 1; t <= 3; t++) {
    K->adamw_update(q, g, qm, qv, 3, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd, 0.5f,
                    NULL, t, &ewc);
    for (int i = 0; i < 3; i++) {
      double gi = 0.5 * g[i] + 0.3 * F[i] * (Q[i] - A[i]);
      QM[i] = b1 * QM[i] + (1 - b1) * gi;
      QV[i] = b2 * QV[i] + (1 - b2) * gi * gi;
      double mh = QM[i] / (1 - pow(b1, t)), vh = QV[i] / (1 - pow(b2, t));
      Q[i] -= lr * (mh / (sqrt(vh) + eps) + wd * Q[i]);
    }
  }
  for (int i = 0; i < 3; i++)
    T_CHECK_MSG(fabs(q[i] - Q[i]) < 1e-5, "with EWC, q[%d] %g vs %g", i, q[i], Q[i]);
  T_CHECK(q[0] != p[0] && q[1] == p[1]); /* F = 0: no pull */
  /* the squared norm, in double, deterministic in its chunks */
  size_t n = 3000001;
  float *x = malloc(n * sizeof(float));
  double want = 0;
  for (size_t i = 0; i < n; i++) {
    x[i] = (float)((i % 1000) * 0.001);
    want += (double)x[i] * x[i];
  }
  double got = K->sum_squares(x, n);
  T_CHECK_MSG(fabs(got - want) <= 1e-9 * want, "%.17g vs %.17g", got, want);
  T_CHECK(K->sum_squares(x, n) == got);
  free(x);
}

int main(void)
{
  K = kernels_cpu();
  T_RUN(encoder);
  T_RUN(layernorm);
  T_RUN(matmul);
  T_RUN(attention);
  T_RUN(attention_heads_of_64);
  T_RUN(gelu_and_residual);
  T_RUN(rmsnorm);
  T_RUN(rope_qkv);
  T_RUN(swiglu);
  T_RUN(crossentropy);
  T_RUN(fast_exp);
  T_RUN(adamw);
  T_RUN(clip_and_mean);
  return T_DONE();
}
