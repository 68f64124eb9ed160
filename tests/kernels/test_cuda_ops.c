/*
 * test_cuda_ops.c -- every op of the CUDA backend against the CPU reference (label gpu).
 *
 * Fresh random inputs for every check (never zeros), outputs poisoned with NaN before each
 * run (an element the op did not write stays NaN and fails), accumulated outputs started
 * from the same random values on both sides (an op that overwrites instead of adding, or
 * skips, fails).  The measure is ||out - ref|| / ||ref|| over the whole output; NaN never
 * passes.  Bounds: fp32 1e-5 (different summation orders only), TF32 products 5e-3, bf16
 * products 2e-2 (operands rounded to 8 bits of mantissa, fp32 sums).
 * Each op runs at two shapes: a small one and GPT-2 124M's width (C 768, 12 heads); the Llama
 * family's ops at a small one and SmolLM-135M's (C 576, 9 query heads of 64 sharing 3 key and
 * value heads, SwiGLU width 1536).
 * Without a device (or a CUDA build) it exits 77: ctest reports it as skipped.
 * The errors measured are printed, one line per op and shape, for scripts/gpu-check.
 */
#include "kernels/kernels.h"

#include "tests/test.h"

#include <math.h>
#include <stdint.h>

static const kernels_backend *cpu, *gpu;
static uint64_t rng = 0x9E3779B97F4A7C15ULL;

static float uniform(void)
{
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (float)((rng >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static float *rand_host(size_t n, float scale)
{
  float *p = malloc(n * sizeof *p);
  for (size_t i = 0; i < n; i++)
    p[i] = uniform() * scale;
  return p;
}

/* sizes of what dev() allocated: the CPU standing in for the device frees by size */
static struct {
  void *p;
  size_t bytes;
} allocs[256];

static void *alloc(size_t bytes)
{
  void *p = gpu->mem_alloc(bytes);
  if (!p) {
    fprintf(stderr, "test_cuda_ops: out of memory for %zu bytes\n", bytes);
    exit(1);
  }
  for (size_t i = 0; i < sizeof allocs / sizeof allocs[0]; i++)
    if (!allocs[i].p) {
      allocs[i].p = p, allocs[i].bytes = bytes;
      break;
    }
  return p;
}

static void release(void *p)
{
  for (size_t i = 0; i < sizeof allocs / sizeof allocs[0]; i++)
    if (allocs[i].p == p) {
      gpu->mem_free(p, allocs[i].bytes);
      allocs[i].p = NULL;
      return;
    }
}

/* dev -- a device copy of host data (NULL host: poisoned with NaN) */
static float *dev(const float *host, size_t n)
{
  float *d = alloc(n * sizeof *d);
  float *tmp = NULL;
  if (!host) {
    tmp = malloc(n * sizeof *tmp);
    for (size_t i = 0; i < n; i++)
      tmp[i] = NAN;
    host = tmp;
  }
  gpu->to_device(d, host, n * sizeof *d);
  free(tmp);
  return d;
}

static int32_t *dev_tokens(const int32_t *host, size_t n)
{
  int32_t *d = alloc(n * sizeof *d);
  gpu->to_device(d, host, n * sizeof *d);
  return d;
}

/* check -- the device's n values against ref; prints and asserts the relative error */
static void check(const char *what, int shape, const float *d, const float *ref, size_t n,
                  double bound)
{
  float *got = malloc(n * sizeof *got);
  mn_error err = {0};
  mn_status rc = gpu->sync(&err);
  T_CHECK_MSG(rc == MN_OK, "%s: %s", what, err.msg);
  gpu->to_host(got, d, n * sizeof *got);
  double num = 0, den = 0;
  size_t nan = 0;
  for (size_t i = 0; i < n; i++) {
    if (isnan(got[i]) || isinf(got[i])) nan++;
    double e = (double)got[i] - ref[i];
    num += e * e;
    den += (double)ref[i] * ref[i];
  }
  double rel = den > 0 ? sqrt(num / den) : sqrt(num);
  printf("op %-28s shape %d  rel_err %.3e  bound %.0e  %s\n", what, shape, rel, bound,
         nan == 0 && rel <= bound ? "ok" : "FAIL");
  T_CHECK_MSG(nan == 0, "%s: %zu of %zu values not finite (unwritten or NaN)", what, nan, n);
  T_CHECK_MSG(rel <= bound, "%s: relative error %.3e > %.0e", what, rel, bound);
  free(got);
}

typedef struct shape {
  int B, T, C, NH, V, Vp;
} shape;

static const shape shapes[] = {{4, 64, 128, 4, 300, 320}, {2, 256, 768, 12, 1000, 1024}};
#define F32 1e-5

static void encoder(int s, const shape *h)
{
  int B = h->B, T = h->T, C = h->C, V = h->V, N = B * T;
  int32_t *tok = malloc((size_t)N * sizeof *tok);
  for (int i = 0; i < N; i++)
    tok[i] = (int32_t)((uniform() + 1.0f) * 0.5f * (V - 1)) % 16; /* repeats: atomics */
  float *wte = rand_host((size_t)V * C, 1), *wpe = rand_host((size_t)T * C, 1);
  float *out = rand_host((size_t)N * C, 1);
  cpu->encoder_forward(out, tok, wte, wpe, B, T, C);
  int32_t *dtok = dev_tokens(tok, (size_t)N);
  float *dwte_ = dev(wte, (size_t)V * C), *dwpe_ = dev(wpe, (size_t)T * C),
        *dout = dev(NULL, (size_t)N * C);
  gpu->encoder_forward(dout, dtok, dwte_, dwpe_, B, T, C);
  check("encoder_forward", s, dout, out, (size_t)N * C, F32);
  /* backward: gradients added to random starting values */
  float *g = rand_host((size_t)N * C, 1), *gwte = rand_host((size_t)V * C, 1),
        *gwpe = rand_host((size_t)T * C, 1);
  float *dg = dev(g, (size_t)N * C), *dgwte = dev(gwte, (size_t)V * C),
        *dgwpe = dev(gwpe, (size_t)T * C);
  cpu->encoder_backward(gwte, gwpe, g, tok, B, T, C);
  gpu->encoder_backward(dgwte, dgwpe, dg, dtok, B, T, C);
  check("encoder_backward dwte", s, dgwte, gwte, (size_t)V * C, F32);
  check("encoder_backward dwpe", s, dgwpe, gwpe, (size_t)T * C, F32);
  /* no learned positions (rotary embeddings): wpe and dwpe NULL */
  float *dout2 = dev(NULL, (size_t)N * C);
  cpu->encoder_forward(out, tok, wte, NULL, B, T, C);
  gpu->encoder_forward(dout2, dtok, dwte_, NULL, B, T, C);
  check("encoder_forward nowpe", s, dout2, out, (size_t)N * C, F32);
  cpu->encoder_backward(gwte, NULL, g, tok, B, T, C);
  gpu->encoder_backward(dgwte, NULL, dg, dtok, B, T, C);
  check("encoder_backward nowpe dwte", s, dgwte, gwte, (size_t)V * C, F32);
  release(dout2);
  release(dtok), release(dwte_), release(dwpe_);
  release(dout), release(dg), release(dgwte), release(dgwpe);
  free(tok), free(wte), free(wpe), free(out), free(g), free(gwte), free(gwpe);
}

static void layernorm(int s, const shape *h)
{
  int N = h->B * h->T, C = h->C;
  size_t NC = (size_t)N * C;
  float *x = rand_host(NC, 2), *w = rand_host((size_t)C, 1), *b = rand_host((size_t)C, 1);
  float *out = malloc(NC * sizeof *out), *mean = malloc((size_t)N * 4),
        *rstd = malloc((size_t)N * 4);
  cpu->layernorm_forward(out, mean, rstd, x, w, b, N, C);
  float *dx = dev(x, NC), *dw_ = dev(w, (size_t)C), *db_ = dev(b, (size_t)C);
  float *dout = dev(NULL, NC), *dmean = dev(NULL, (size_t)N), *drstd = dev(NULL, (size_t)N);
  gpu->layernorm_forward(dout, dmean, drstd, dx, dw_, db_, N, C);
  check("layernorm_forward out", s, dout, out, NC, F32);
  check("layernorm_forward mean", s, dmean, mean, (size_t)N, F32);
  check("layernorm_forward rstd", s, drstd, rstd, (size_t)N, F32);
  /* fused with the residual sum that feeds it */
  float *y = rand_host(NC, 2), *res = malloc(NC * sizeof *res);
  cpu->residual_layernorm_forward(res, out, mean, rstd, x, y, w, b, N, C);
  float *dy = dev(y, NC), *dres = dev(NULL, NC), *dout2 = dev(NULL, NC),
        *dmean2 = dev(NULL, (size_t)N), *drstd2 = dev(NULL, (size_t)N);
  gpu->residual_layernorm_forward(dres, dout2, dmean2, drstd2, dx, dy, dw_, db_, N, C);
  check("residual_layernorm res", s, dres, res, NC, F32);
  check("residual_layernorm out", s, dout2, out, NC, F32);
  check("residual_layernorm mean", s, dmean2, mean, (size_t)N, F32);
  check("residual_layernorm rstd", s, drstd2, rstd, (size_t)N, F32);
  release(dy), release(dres), release(dout2), release(dmean2), release(drstd2);
  free(y), free(res);
  cpu->layernorm_forward(out, mean, rstd, x, w, b, N, C); /* the plain op's again, for below */
  float *g = rand_host(NC, 1), *dinp = rand_host(NC, 1), *gw = rand_host((size_t)C, 1),
        *gb = rand_host((size_t)C, 1);
  float *dg = dev(g, NC), *ddinp = dev(dinp, NC), *dgw = dev(gw, (size_t)C),
        *dgb = dev(gb, (size_t)C);
  cpu->layernorm_backward(dinp, gw, gb, g, x, w, mean, rstd, N, C);
  gpu->layernorm_backward(ddinp, dgw, dgb, dg, dx, dw_, dmean, drstd, N, C);
  check("layernorm_backward dinp", s, ddinp, dinp, NC, F32);
  check("layernorm_backward dw", s, dgw, gw, (size_t)C, F32);
  check("layernorm_backward db", s, dgb, gb, (size_t)C, F32);
  float *all[] = {dx, dw_, db_, dout, dmean, drstd, dg, ddinp, dgw, dgb};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    release(all[i]);
  free(x), free(w), free(b), free(out), free(mean), free(rstd), free(g), free(dinp), free(gw),
      free(gb);
}

static void matmul(int s, const shape *h, kernels_math math)
{
  const kernels_backend *k;
  char why[256];
  mn_error err = {0};
  if (!gpu->host_memory) T_CHECK(kernels_cuda(math, &k, why, &err) == MN_OK && k == gpu);
  static const char *const tag[] = {"", " tf32", " bf16"};
  static const double bounds[] = {F32, 5e-3, 2e-2};
  int N = h->B * h->T, C = h->C, OC = 4 * h->C;
  double bound = bounds[math];
  char name[64];
  float *x = rand_host((size_t)N * C, 1), *w = rand_host((size_t)OC * C, 0.1f),
        *b = rand_host((size_t)OC, 1), *out = malloc((size_t)N * OC * 4);
  cpu->matmul_forward(out, x, w, b, N, C, OC);
  float *dx = dev(x, (size_t)N * C), *dw_ = dev(w, (size_t)OC * C), *db_ = dev(b, (size_t)OC),
        *dout = dev(NULL, (size_t)N * OC);
  gpu->matmul_forward(dout, dx, dw_, db_, N, C, OC);
  snprintf(name, sizeof name, "matmul_forward%s", tag[math]);
  check(name, s, dout, out, (size_t)N * OC, bound);
  float *g = rand_host((size_t)N * OC, 1), *gin = malloc((size_t)N * C * 4),
        *gw = rand_host((size_t)OC * C, 1), *gb = rand_host((size_t)OC, 1);
  float *dg = dev(g, (size_t)N * OC), *dgin = dev(NULL, (size_t)N * C),
        *dgw = dev(gw, (size_t)OC * C), *dgb = dev(gb, (size_t)OC);
  cpu->matmul_backward(gin, gw, gb, g, x, w, N, C, OC);
  gpu->matmul_backward(dgin, dgw, dgb, dg, dx, dw_, N, C, OC);
  snprintf(name, sizeof name, "matmul_backward dinp%s", tag[math]);
  check(name, s, dgin, gin, (size_t)N * C, bound);
  snprintf(name, sizeof name, "matmul_backward dw%s", tag[math]);
  check(name, s, dgw, gw, (size_t)OC * C, bound);
  snprintf(name, sizeof name, "matmul_backward dbias%s", tag[math]);
  check(name, s, dgb, gb, (size_t)OC, F32);
  /* the logits' case: no bias (beta 0 over a poisoned output); a frozen weight: no dw */
  float *dout2 = dev(NULL, (size_t)N * OC);
  cpu->matmul_forward(out, x, w, NULL, N, C, OC);
  gpu->matmul_forward(dout2, dx, dw_, NULL, N, C, OC);
  snprintf(name, sizeof name, "matmul_forward nobias%s", tag[math]);
  check(name, s, dout2, out, (size_t)N * OC, bound);
  float *dgin2 = dev(NULL, (size_t)N * C);
  cpu->matmul_backward(gin, NULL, NULL, g, x, w, N, C, OC);
  gpu->matmul_backward(dgin2, NULL, NULL, dg, dx, dw_, N, C, OC);
  snprintf(name, sizeof name, "matmul_backward frozen%s", tag[math]);
  check(name, s, dgin2, gin, (size_t)N * C, bound);
  release(dout2), release(dgin2);
  float *all[] = {dx, dw_, db_, dout, dg, dgin, dgw, dgb};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    release(all[i]);
  free(x), free(w), free(b), free(out), free(g), free(gin), free(gw), free(gb);
  if (!gpu->host_memory) T_CHECK(kernels_cuda(KERNELS_MATH_FP32, &k, why, &err) == MN_OK);
}

static void attention(int s, const shape *h)
{
  int B = h->B, T = h->T, C = h->C, NH = h->NH;
  size_t nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * T * C, natt = (size_t)B * NH * T * T;
  size_t nscratch = natt + (size_t)B * C * (T + 80);
  float *qkv = rand_host(nqkv, 1), *out = malloc(nout * 4), *att = malloc(natt * 4),
        *scratch = malloc(nscratch * 4);
  cpu->attention_forward(out, att, scratch, qkv, B, T, C, NH);
  float *dqkv_ = dev(qkv, nqkv), *dout = dev(NULL, nout), *datt = dev(NULL, natt),
        *dscr = dev(NULL, nscratch);
  gpu->attention_forward(dout, datt, dscr, dqkv_, B, T, C, NH);
  check("attention_forward out", s, dout, out, nout, F32);
  /* the probabilities on and below the diagonal (past it each backend keeps its own) */
  float *gatt = malloc(natt * 4);
  gpu->sync(&(mn_error){0});
  gpu->to_host(gatt, datt, natt * 4);
  double num = 0, den = 0;
  size_t bad = 0;
  for (size_t r = 0; r < (size_t)B * NH * T; r++)
    for (int j = 0; j <= (int)(r % T); j++) {
      double e = (double)gatt[r * T + j] - att[r * T + j];
      bad += isnan(gatt[r * T + j]);
      num += e * e, den += (double)att[r * T + j] * att[r * T + j];
    }
  printf("op %-28s shape %d  rel_err %.3e  bound %.0e  %s\n", "attention_forward att", s,
         sqrt(num / den), F32, !bad && sqrt(num / den) <= F32 ? "ok" : "FAIL");
  T_CHECK_MSG(!bad && sqrt(num / den) <= F32, "attention probabilities: %.3e, %zu NaN",
              sqrt(num / den), bad);
  float *g = rand_host(nout, 1), *gq = malloc(nqkv * 4);
  cpu->attention_backward(gq, scratch, g, qkv, att, B, T, C, NH);
  float *dg = dev(g, nout), *dgq = dev(NULL, nqkv);
  gpu->attention_backward(dgq, dscr, dg, dqkv_, datt, B, T, C, NH);
  check("attention_backward dqkv", s, dgq, gq, nqkv, F32);
  float *all[] = {dqkv_, dout, datt, dscr, dg, dgq};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    release(all[i]);
  free(qkv), free(out), free(att), free(scratch), free(gatt), free(g), free(gq);
}

static void pointwise(int s, const shape *h)
{
  size_t n = (size_t)h->B * h->T * 4 * h->C;
  float *x = rand_host(n, 4), *y = rand_host(n, 1), *out = malloc(n * 4), *g = rand_host(n, 1);
  float *dx = dev(x, n), *dy = dev(y, n), *dout = dev(NULL, n), *dg = dev(g, n);
  cpu->gelu_forward(out, x, n);
  gpu->gelu_forward(dout, dx, n);
  check("gelu_forward", s, dout, out, n, F32);
  cpu->gelu_backward(out, x, g, n);
  release(dout);
  dout = dev(NULL, n);
  gpu->gelu_backward(dout, dx, dg, n);
  check("gelu_backward", s, dout, out, n, F32);
  cpu->residual_forward(out, x, y, n);
  release(dout);
  dout = dev(NULL, n);
  gpu->residual_forward(dout, dx, dy, n);
  check("residual_forward", s, dout, out, n, F32);
  release(dx), release(dy), release(dout), release(dg);
  free(x), free(y), free(out), free(g);
}

static void crossentropy(int s, const shape *h)
{
  int N = h->B * h->T, V = h->V, Vp = h->Vp;
  size_t NV = (size_t)N * Vp;
  float *logits = rand_host(NV, 5), *probs = malloc(NV * 4), *losses = malloc((size_t)N * 4);
  int32_t *tgt = malloc((size_t)N * sizeof *tgt);
  for (int i = 0; i < N; i++)
    tgt[i] = (int32_t)((uniform() + 1.0f) * 0.5f * (V - 1));
  cpu->crossentropy_forward(losses, probs, logits, tgt, N, V, Vp);
  float *dl = dev(logits, NV), *dp = dev(NULL, NV), *dloss = dev(NULL, (size_t)N);
  int32_t *dt = dev_tokens(tgt, (size_t)N);
  gpu->crossentropy_forward(dloss, dp, dl, dt, N, V, Vp);
  check("crossentropy_forward losses", s, dloss, losses, (size_t)N, F32);
  check("crossentropy_forward probs", s, dp, probs, NV, F32);
  float *dlosses = rand_host((size_t)N, 1), *soft = malloc(NV * 4), *dlog = malloc(NV * 4);
  for (size_t i = 0; i < NV; i++) /* a teacher's distribution: the reference's own probs */
    soft[i] = probs[(i + 7) % NV];
  float *ddlosses = dev(dlosses, (size_t)N), *dsoft = dev(soft, NV), *ddlog = dev(NULL, NV);
  cpu->crossentropy_backward(dlog, probs, dlosses, tgt, NULL, 0.0f, N, V, Vp);
  gpu->crossentropy_backward(ddlog, dp, ddlosses, dt, NULL, 0.0f, N, V, Vp);
  check("crossentropy_backward", s, ddlog, dlog, NV, F32);
  cpu->crossentropy_backward(dlog, probs, dlosses, tgt, soft, 0.3f, N, V, Vp);
  release(ddlog);
  ddlog = dev(NULL, NV);
  gpu->crossentropy_backward(ddlog, dp, ddlosses, dt, dsoft, 0.3f, N, V, Vp);
  check("crossentropy_backward soft", s, ddlog, dlog, NV, F32);
  float *all[] = {dl, dp, dloss, ddlosses, dsoft, ddlog};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    release(all[i]);
  release(dt);
  free(logits), free(probs), free(losses), free(tgt), free(dlosses), free(soft), free(dlog);
}

static void optimizer(int s, const shape *h)
{
  size_t n = (size_t)h->C * h->C * 12 + 12345; /* not a multiple of a block */
  for (int ewc = 0; ewc < 2; ewc++) {
    float *p = rand_host(n, 1), *g = rand_host(n, 1), *m = rand_host(n, 0.1f),
          *v = rand_host(n, 0.1f), *F = rand_host(n, 1), *A = rand_host(n, 1);
    for (size_t i = 0; i < n; i++)
      v[i] = fabsf(v[i]), F[i] = fabsf(F[i]);
    float *dp = dev(p, n), *dg = dev(g, n), *dm = dev(m, n), *dv = dev(v, n), *dF = dev(F, n),
          *dA = dev(A, n);
    kernels_ewc he = {F, A, 0.5f}, de = {dF, dA, 0.5f};
    cpu->adamw_update(p, g, m, v, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.7f, NULL, 3,
                      ewc ? &he : NULL);
    gpu->adamw_update(dp, dg, dm, dv, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.7f, NULL, 3,
                      ewc ? &de : NULL);
    check(ewc ? "adamw_update ewc params" : "adamw_update params", s, dp, p, n, F32);
    check(ewc ? "adamw_update ewc m" : "adamw_update m", s, dm, m, n, F32);
    check(ewc ? "adamw_update ewc v" : "adamw_update v", s, dv, v, n, F32);
    /* the clipping scale computed where the step runs, read by the update through a pointer */
    float hs[2], *ds = dev(NULL, 2), *dmean = dev(NULL, 1), hmean;
    cpu->clip_scale(hs, g, n, 1.0f);
    gpu->clip_scale(ds, dg, n, 1.0f);
    check(ewc ? "clip_scale ewc" : "clip_scale", s, ds, hs, 2, 1e-6);
    cpu->mean(&hmean, g, n);
    gpu->mean(dmean, dg, n);
    check("mean", s, dmean, &hmean, 1, 1e-5);
    float *p2 = malloc(n * sizeof *p2), *m2 = malloc(n * sizeof *m2), *v2 = malloc(n * sizeof *v2);
    memcpy(p2, p, n * sizeof *p2), memcpy(m2, m, n * sizeof *m2), memcpy(v2, v, n * sizeof *v2);
    cpu->adamw_update(p2, g, m2, v2, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, &hs[1], 4, NULL);
    gpu->adamw_update(dp, dg, dm, dv, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, ds + 1, 4, NULL);
    check("adamw_update scale_at", s, dp, p2, n, F32);
    release(ds), release(dmean);
    free(p2), free(m2), free(v2);
    double a = cpu->sum_squares(g, n), b = gpu->sum_squares(dg, n), c = gpu->sum_squares(dg, n);
    printf("op %-28s shape %d  rel_err %.3e  bound %.0e  %s\n", "sum_squares", s, fabs(a - b) / a,
           1e-12, fabs(a - b) / a <= 1e-12 && b == c ? "ok" : "FAIL");
    T_CHECK_MSG(fabs(a - b) / a <= 1e-12, "sum_squares %.17g vs %.17g", b, a);
    T_CHECK_MSG(b == c, "sum_squares differs between runs: %.17g, %.17g", b, c);
    float *all[] = {dp, dg, dm, dv, dF, dA};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
      release(all[i]);
    free(p), free(g), free(m), free(v), free(F), free(A);
  }
}

/* the Llama family's shapes: B, T, query heads, key/value heads, head width, SwiGLU width */
typedef struct llama_shape {
  int B, T, NH, KVH, HD, F;
} llama_shape;

static const llama_shape llama_shapes[] = {{4, 64, 4, 2, 32, 344}, {2, 256, 9, 3, 64, 1536}};

static void rmsnorm(int s, const llama_shape *h)
{
  int N = h->B * h->T, C = h->NH * h->HD;
  size_t NC = (size_t)N * C;
  const float eps = 1e-5f;
  float *x = rand_host(NC, 2), *w = rand_host((size_t)C, 1), *out = malloc(NC * 4),
        *rstd = malloc((size_t)N * 4);
  cpu->rmsnorm_forward(out, rstd, x, w, N, C, eps);
  float *dx = dev(x, NC), *dw_ = dev(w, (size_t)C), *dout = dev(NULL, NC),
        *drstd = dev(NULL, (size_t)N);
  gpu->rmsnorm_forward(dout, drstd, dx, dw_, N, C, eps);
  check("rmsnorm_forward out", s, dout, out, NC, F32);
  check("rmsnorm_forward rstd", s, drstd, rstd, (size_t)N, F32);
  /* fused with the residual sum that feeds it */
  float *a = rand_host(NC, 1), *res = malloc(NC * 4), *out2 = malloc(NC * 4),
        *rstd2 = malloc((size_t)N * 4);
  cpu->residual_rmsnorm_forward(res, out2, rstd2, a, x, w, N, C, eps);
  float *da = dev(a, NC), *dres = dev(NULL, NC), *dout2 = dev(NULL, NC),
        *drstd2 = dev(NULL, (size_t)N);
  gpu->residual_rmsnorm_forward(dres, dout2, drstd2, da, dx, dw_, N, C, eps);
  check("residual_rmsnorm res", s, dres, res, NC, F32);
  check("residual_rmsnorm out", s, dout2, out2, NC, F32);
  check("residual_rmsnorm rstd", s, drstd2, rstd2, (size_t)N, F32);
  /* backward: dinp and dw add into random starting values */
  float *g = rand_host(NC, 1), *dinp = rand_host(NC, 1), *gw = rand_host((size_t)C, 1);
  float *dg = dev(g, NC), *ddinp = dev(dinp, NC), *dgw = dev(gw, (size_t)C);
  cpu->rmsnorm_backward(dinp, gw, g, x, w, rstd, N, C);
  gpu->rmsnorm_backward(ddinp, dgw, dg, dx, dw_, drstd, N, C);
  check("rmsnorm_backward dinp", s, ddinp, dinp, NC, F32);
  check("rmsnorm_backward dw", s, dgw, gw, (size_t)C, F32);
  float *all[] = {dx, dw_, dout, drstd, da, dres, dout2, drstd2, dg, ddinp, dgw};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    release(all[i]);
  free(x), free(w), free(out), free(rstd), free(a), free(res), free(out2), free(rstd2), free(g),
      free(dinp), free(gw);
}

static void rope(int s, const llama_shape *h)
{
  int B = h->B, T = h->T, NH = h->NH, KVH = h->KVH, HD = h->HD, half = HD / 2;
  size_t nin = (size_t)B * T * (NH + 2 * KVH) * HD, nout = (size_t)B * T * 3 * NH * HD;
  size_t ntab = (size_t)T * half;
  float *cos_t = malloc(ntab * 4), *sin_t = malloc(ntab * 4);
  for (int t = 0; t < T; t++) /* Llama's angles: t * 10000^(-2i/HD) */
    for (int i = 0; i < half; i++) {
      double ang = t * pow(10000.0, -2.0 * i / HD);
      cos_t[(size_t)t * half + i] = (float)cos(ang), sin_t[(size_t)t * half + i] = (float)sin(ang);
    }
  float *x = rand_host(nin, 1), *out = malloc(nout * 4), *g = rand_host(nout, 1),
        *gin = malloc(nin * 4);
  float *dcos = dev(cos_t, ntab), *dsin = dev(sin_t, ntab), *dx = dev(x, nin), *dg = dev(g, nout);
  for (int rot = 1; rot >= 0; rot--) { /* with the tables, then cos NULL: no rotation */
    const float *hc = rot ? cos_t : NULL, *hs = rot ? sin_t : NULL;
    const float *dc = rot ? dcos : NULL, *ds = rot ? dsin : NULL;
    float *dout = dev(NULL, nout), *dgin = dev(NULL, nin); /* both overwritten */
    cpu->rope_qkv_forward(out, x, hc, hs, B, T, NH, KVH, HD);
    gpu->rope_qkv_forward(dout, dx, dc, ds, B, T, NH, KVH, HD);
    check(rot ? "rope_qkv_forward" : "rope_qkv_forward nocos", s, dout, out, nout, F32);
    cpu->rope_qkv_backward(gin, g, hc, hs, B, T, NH, KVH, HD);
    gpu->rope_qkv_backward(dgin, dg, dc, ds, B, T, NH, KVH, HD);
    check(rot ? "rope_qkv_backward" : "rope_qkv_backward nocos", s, dgin, gin, nin, F32);
    release(dout), release(dgin);
  }
  release(dcos), release(dsin), release(dx), release(dg);
  free(cos_t), free(sin_t), free(x), free(out), free(g), free(gin);
}

static void swiglu(int s, const llama_shape *h)
{
  int N = h->B * h->T, F = h->F;
  size_t n = (size_t)N * F;
  float *x = rand_host(2 * n, 4), *out = malloc(n * 4), *g = rand_host(n, 1),
        *gin = malloc(2 * n * 4);
  float *dx = dev(x, 2 * n), *dout = dev(NULL, n), *dg = dev(g, n), *dgin = dev(NULL, 2 * n);
  cpu->swiglu_forward(out, x, N, F);
  gpu->swiglu_forward(dout, dx, N, F);
  check("swiglu_forward", s, dout, out, n, F32);
  cpu->swiglu_backward(gin, x, g, N, F);
  gpu->swiglu_backward(dgin, dx, dg, N, F);
  check("swiglu_backward", s, dgin, gin, 2 * n, F32);
  release(dx), release(dout), release(dg), release(dgin);
  free(x), free(out), free(g), free(gin);
}

static void every_op(void)
{
  for (int s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++) {
    const shape *h = &shapes[s];
    encoder(s, h);
    layernorm(s, h);
    matmul(s, h, KERNELS_MATH_FP32);
    matmul(s, h, KERNELS_MATH_TF32);
    matmul(s, h, KERNELS_MATH_BF16);
    attention(s, h);
    pointwise(s, h);
    crossentropy(s, h);
    optimizer(s, h);
    rmsnorm(s, &llama_shapes[s]);
    rope(s, &llama_shapes[s]);
    swiglu(s, &llama_shapes[s]);
  }
}

static void errors_surface(void)
{
  /* a launch with an impossible shape fails at sync, with the file and line, and the next
   * sync is clean again */
  mn_error err = {0};
  float *x = dev(NULL, 64);
  gpu->matmul_forward(x, x, x, NULL, 4, -1, 4); /* cuBLAS refuses a negative size */
  mn_status rc = gpu->sync(&err);
  T_CHECK(rc == MN_ERR_CUDA);
  T_CONTAINS(err.msg, "ops.cu:");
  T_CHECK(gpu->sync(&err) == MN_OK);
  release(x);
}

int main(void)
{
  char why[256] = "";
  mn_error err = {0};
  cpu = kernels_cpu();
  mn_status rc = kernels_cuda(KERNELS_MATH_FP32, &gpu, why, &err);
  if (rc != MN_OK) {
    fprintf(stderr, "test_cuda_ops: %s\n", err.msg);
    return 1;
  }
  /* MNEMO_TEST_GPU_AS_CPU=1 runs the harness with the CPU in the device's place: a check
   * of the test itself on machines without a GPU (every difference is then 0) */
  const char *as_cpu = getenv("MNEMO_TEST_GPU_AS_CPU");
  if (!gpu && as_cpu && strcmp(as_cpu, "1") == 0) gpu = kernels_cpu();
  if (!gpu) {
    printf("test_cuda_ops: skipped (%s)\n", why);
    return 77;
  }
  T_RUN(every_op);
  if (!gpu->host_memory) T_RUN(errors_surface);
  return T_DONE();
}
