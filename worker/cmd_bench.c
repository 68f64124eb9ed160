/*
 * cmd_bench.c -- `mnemo bench`: the speed of a training step of the configured model on
 * random tokens (tokens/s, GFLOP/s against the machine's sgemm rate measured beside it), of
 * progressive unfreezing's stages, of EWC's fused penalty, and on a CUDA device (MFU).
 */
#include "worker/worker_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

const worker_opt worker__bench_opts[] = {
    WORKER_COUNT("steps", steps, "N", "timed steps after two warm-up steps (default: 10)"),
    WORKER_FLAG("stages", stages, "the step time with the top k blocks trainable"),
    WORKER_FLAG("ewc", ewc, "the step time with the EWC penalty fused into the update"),
    WORKER_TEXT("device", device, "cpu|cuda", "where the steps run (default: cpu)"),
    WORKER_TEXT("math", math, "fp32|tf32|bf16", "how a device's products compute (default: fp32)"),
    WORKER_TEXT("checkpoint", checkpoint, "CKPT",
                "the model of a checkpoint (its weights loaded) instead of the configured one"),
    WORKER_OPT_END,
};

static double peak_rss_mb(void)
{
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_maxrss / 1024.0;
}

/* sgemm_probe -- n x n x n single-precision products split over the threads as the model's
 * are, to measure the machine's sgemm rate in the same process as a training step. */
typedef struct sgemm_probe {
  int n;
  size_t bytes;
  float *a, *b, *c;
} sgemm_probe;

static bool sgemm_probe_init(sgemm_probe *p, int n)
{
  /* allocated as the model's buffers are (huge pages where the kernel allows) */
  p->n = n;
  p->bytes = (size_t)n * n * sizeof(float);
  p->a = kernels_host_alloc(p->bytes), p->b = kernels_host_alloc(p->bytes);
  p->c = kernels_host_alloc(p->bytes);
  if (!p->a || !p->b || !p->c) return false;
  for (size_t i = 0; i < (size_t)n * n; i++)
    p->a[i] = p->b[i] = (float)(i % 7) * 0.1f;
  return true;
}

static void sgemm_probe_fini(sgemm_probe *p)
{
  kernels_host_free(p->a, p->bytes), kernels_host_free(p->b, p->bytes);
  kernels_host_free(p->c, p->bytes);
}

/* sgemm_rate -- GFLOP/s of the best of `runs` products (0 when the probe has no memory). */
static double sgemm_rate(sgemm_probe *p, int runs)
{
  if (!p->a || !p->b || !p->c) return 0.0;
  const kernels_backend *k = kernels_cpu();
  double best = INFINITY;
  for (int r = 0; r < runs; r++) {
    double t0 = mn_monotonic_ms();
    k->matmul_forward(p->c, p->a, p->b, NULL, p->n, p->n, p->n);
    double ms = mn_monotonic_ms() - t0;
    best = ms < best ? ms : best;
  }
  return 2.0 * p->n * p->n * (double)p->n / (best / 1e3) / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* step_parts -- mean milliseconds of forward, backward and update over `steps` steps after
 * two warm-up steps, with the model's current trainable part */
static void step_parts(gpt *m, const int32_t *x, const int32_t *y, int B, int T,
                       const gpt_adamw *opt, int steps, double ms[3])
{
  ms[0] = ms[1] = ms[2] = 0;
  for (int t = 1; t <= steps + 2; t++) {
    double t0 = mn_monotonic_ms();
    gpt_zero_grad(m);
    gpt_forward(m, x, y, B, T);
    double t1 = mn_monotonic_ms();
    gpt_backward(m);
    double t2 = mn_monotonic_ms();
    gpt_update(m, opt, t);
    double t3 = mn_monotonic_ms();
    if (t > 2) ms[0] += t1 - t0, ms[1] += t2 - t1, ms[2] += t3 - t2;
  }
  for (int i = 0; i < 3; i++)
    ms[i] /= steps;
}

/*
 * bench_stages -- progressive unfreezing: the step time with the top k blocks trainable
 * against full fine-tuning, and against the ideal: the forward, plus k/L of the full
 * backward, plus the update's share for the trainable parameters.
 */
static void bench_stages(gpt *m, const int32_t *x, const int32_t *y, int B, int T,
                         const gpt_adamw *opt, int steps)
{
  int L = gpt_get_config(m)->n_layer;
  double full[3];
  gpt_set_trainable(m, -1);
  step_parts(m, x, y, B, T, opt, steps, full);
  double full_ms = full[0] + full[1] + full[2];
  size_t n = gpt_params_count(m);
  int ks[] = {1, 2, L / 2, L};
  for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
    int k = ks[i];
    if (k < 1 || (i > 0 && k <= ks[i - 1])) continue;
    double part[3];
    gpt_set_trainable(m, L - k);
    step_parts(m, x, y, B, T, opt, steps, part);
    double ms = part[0] + part[1] + part[2];
    double share = (double)(n - gpt_trainable_offset(m)) / (double)n;
    double ideal = full[0] + full[1] * k / L + full[2] * share;
    worker__emit(json_pack("{s:s, s:i, s:i, s:f, s:f, s:f, s:f, s:f}", "event", "bench_stage",
                           "trainable_blocks", k, "layers", L, "ms_per_step", ms,
                           "full_ms_per_step", full_ms, "saving", 1.0 - ms / full_ms,
                           "ideal_ms_per_step", ideal, "over_ideal", ms / ideal - 1.0));
  }
  gpt_set_trainable(m, -1);
}

/* bench_ewc -- the step time with EWC's penalty fused into the update, against without */
static int bench_ewc(gpt *m, const int32_t *x, const int32_t *y, int B, int T, const gpt_adamw *opt,
                     int steps)
{
  size_t n = gpt_params_count(m);
  float *F = malloc(n * sizeof(float)), *A = malloc(n * sizeof(float));
  if (!F || !A) {
    free(F), free(A);
    mn_error err = {0};
    mn_error_set(&err, MN_ERR_NOMEM, "out of memory");
    return worker__fail(&err);
  }
  for (size_t i = 0; i < n; i++)
    F[i] = (float)(i % 97) * 1e-3f, A[i] = gpt_params(m)[i];
  double plain[3], with[3];
  step_parts(m, x, y, B, T, opt, steps, plain);
  gpt_set_ewc(m, F, A, 10.0f);
  step_parts(m, x, y, B, T, opt, steps, with);
  gpt_set_ewc(m, NULL, NULL, 0);
  double a = plain[0] + plain[1] + plain[2], b = with[0] + with[1] + with[2];
  worker__emit(json_pack("{s:s, s:f, s:f, s:f, s:f, s:f}", "event", "bench_ewc", "ms_per_step", a,
                         "ewc_ms_per_step", b, "overhead", b / a - 1.0, "update_ms", plain[2],
                         "ewc_update_ms", with[2]));
  free(F), free(A);
  return MN_EXIT_OK;
}

/* bench_device -- training steps on a device: tokens/s and MFU (6N + 6LCT FLOPs per token
 * against the card's dense bf16 peak, ANCHORS.md), each step waited for */
static int bench_device(gpt *m, const int32_t *x, const int32_t *y, int B, int T,
                        const gpt_adamw *opt, int steps, const char *math, bool json)
{
  mn_error err = {0};
  kernels_device_info info;
  if (kernels_cuda_probe(&info, &err) != MN_OK) return worker__fail(&err);
  double total = 0, best = INFINITY;
  for (int t = 1; t <= steps + 2; t++) {
    double t0 = mn_monotonic_ms();
    gpt_zero_grad(m);
    gpt_forward_queue(m, x, y, B, T); /* as training does: the step queued whole */
    gpt_backward(m);
    gpt_update(m, opt, t);
    gpt_mean_loss(m);
    if (gpt_sync(m, &err) != MN_OK) return worker__fail(&err);
    double ms = mn_monotonic_ms() - t0;
    if (t > 2) total += ms, best = ms < best ? ms : best;
  }
  const gpt_config *gc = gpt_get_config(m);
  double mean = total / steps, tps = (double)B * T / (mean / 1e3);
  double flops = gpt_flops_per_token(gc, T) * tps;
  /* dense bf16 peaks by the vendors' datasheets (SXM parts); unknown cards: no MFU */
  double peak = strstr(info.name, "H100") || strstr(info.name, "H200") ? 989.4e12
                : strstr(info.name, "A100")                            ? 312e12
                                                                       : 0;
  json_t *r = json_pack("{s:s, s:s, s:s, s:I, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:f, "
                        "s:f, s:s}",
                        "event", "bench", "device", "cuda", "card", info.name, "params",
                        (json_int_t)gpt_params_count(m), "n_layer", gc->n_layer, "n_embd",
                        gc->n_embd, "n_head", gc->n_head, "batch", B, "seq_len", T, "steps", steps,
                        "ms_per_step", mean, "best_ms_per_step", best, "tokens_per_s", tps,
                        "tflops", flops / 1e12, "mfu", peak > 0 ? flops / peak : 0.0, "math", math);
  if (json) {
    worker__emit(r);
  } else {
    printf("%s: %zu parameters, B=%d T=%d, %s products: %.1f ms/step, %.0f tokens/s, %.1f "
           "TFLOP/s, MFU %.1f%%\n",
           info.name, gpt_params_count(m), B, T, math, mean, tps, flops / 1e12,
           peak > 0 ? 100 * flops / peak : 0.0);
    json_decref(r);
  }
  return MN_EXIT_OK;
}

int worker__cmd_bench(worker_ctx *w, worker_args *o)
{
  mn_error err = {0};
  gpt *m = NULL;
  const mn_config *c = &w->cfg;
  gpt_config gc = worker__model_config(c);
  int B = (int)c->train.batch_size, T = (int)c->train.seq_len;
  int steps = o->steps ? (int)o->steps : 10;
  kernels_cpu_set_threads((int)c->train.threads);
  const kernels_backend *k = kernels_cpu();
  bool cuda = o->device && strcmp(o->device, "cuda") == 0;
  if (o->device && !cuda && strcmp(o->device, "cpu") != 0)
    return worker__usage("--device wants cpu or cuda, got \"%s\"", o->device);
  kernels_math math = KERNELS_MATH_FP32;
  if (o->math && !kernels_math_parse(o->math, &math))
    return worker__usage("--math wants fp32, tf32 or bf16, got \"%s\"", o->math);
  if (cuda) {
    char why[256];
    if (kernels_cuda(math, &k, why, &err) != MN_OK) return worker__fail(&err);
    if (!k) {
      mn_error_set(&err, MN_ERR_INPUT, "no CUDA device: %s", why);
      return worker__fail(&err);
    }
  }
  ckpt_meta *meta = o->checkpoint ? calloc(1, sizeof *meta) : NULL;
  if (o->checkpoint && (!meta || ckpt_read_meta(o->checkpoint, meta, &err) != MN_OK)) {
    free(meta);
    if (!err.msg[0]) mn_error_set(&err, MN_ERR_NOMEM, "out of memory");
    return worker__fail(&err);
  }
  if (meta) gc = meta->config;
  if (gpt_create(&gc, B, T, 1, k, &m, &err) != MN_OK ||
      (meta && ckpt_load(o->checkpoint, m, meta, &err) != MN_OK)) {
    free(meta);
    gpt_destroy(m);
    return worker__fail(&err);
  }
  free(meta);
  int vocab = o->checkpoint ? gc.vocab_size : 256; /* the configured model's: bytes */
  int32_t *x = malloc(sizeof(int32_t) * (size_t)B * T),
          *y = malloc(sizeof(int32_t) * (size_t)B * T);
  uint64_t s = 7;
  for (int i = 0; i < B * T; i++) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    x[i] = (int32_t)((s >> 33) % (uint64_t)vocab);
    y[i] = (int32_t)((s >> 13) % (uint64_t)vocab);
  }
  gpt_adamw opt = {.lr = 1e-4f,
                   .beta1 = 0.9f,
                   .beta2 = 0.95f,
                   .eps = 1e-8f,
                   .weight_decay = 0.1f,
                   .grad_clip = 1.0f};
  if (cuda) {
    int code = bench_device(m, x, y, B, T, &opt, steps, o->math ? o->math : "fp32", w->json);
    free(x), free(y);
    gpt_destroy(m);
    return code;
  }
  /* The machine's sgemm rate is measured right after each timed step (the best of a burst
   * of 1024^3 products), so that both see the same machine: on a shared host the clock
   * and the neighbours change from one second to the next.  The median burst is the
   * reference. */
  if (o->stages || o->ewc) {
    int code = MN_EXIT_OK;
    if (o->stages) bench_stages(m, x, y, B, T, &opt, steps);
    if (o->ewc) code = bench_ewc(m, x, y, B, T, &opt, steps);
    free(x), free(y);
    gpt_destroy(m);
    return code;
  }
  sgemm_probe probe = {0};
  bool probe_ok = sgemm_probe_init(&probe, 1024);
  double *rates = calloc((size_t)steps, sizeof(double));
  double best = INFINITY, total = 0;
  for (int t = 1; t <= steps + 2; t++) {
    double t0 = mn_monotonic_ms();
    gpt_zero_grad(m);
    gpt_forward(m, x, y, B, T);
    gpt_backward(m);
    gpt_update(m, &opt, t);
    double ms = mn_monotonic_ms() - t0;
    if (t > 2) { /* two warm-up steps */
      total += ms;
      best = ms < best ? ms : best;
      if (rates && probe_ok) rates[t - 3] = sgemm_rate(&probe, 10);
    }
  }
  double sgemm = 0.0;
  if (rates && probe_ok) {
    qsort(rates, (size_t)steps, sizeof(double), cmp_double);
    sgemm = steps % 2 ? rates[steps / 2] : (rates[steps / 2 - 1] + rates[steps / 2]) / 2;
  }
  free(rates);
  /* also the best of a longer burst after the steps, as a plain sgemm benchmark would
   * measure it: reported beside the reference, not used for the fraction */
  double sgemm_after = probe_ok ? sgemm_rate(&probe, 40) : 0.0;
  sgemm_probe_fini(&probe);
  double mean = total / steps;
  double tps = (double)B * T / (mean / 1e3);
  double gflops = gpt_flops_per_token(&gc, T) * tps / 1e9;
  json_t *r = json_pack(
      "{s:s, s:s, s:I, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:i}", "event",
      "bench", "arch", gpt_arch_name(gc.arch), "params", (json_int_t)gpt_params_count(m), "n_layer",
      gc.n_layer, "n_embd", gc.n_embd, "n_head", gc.n_head, "batch", B, "seq_len", T, "steps",
      steps, "ms_per_step", mean, "best_ms_per_step", best, "tokens_per_s", tps, "gflops", gflops,
      "peak_rss_mb", peak_rss_mb(), "threads", kernels_cpu_threads());
  json_object_set_new(r, "sgemm_gflops", json_real(sgemm));
  json_object_set_new(r, "sgemm_gflops_after", json_real(sgemm_after));
  json_object_set_new(r, "sgemm_fraction", json_real(sgemm > 0 ? gflops / sgemm : 0.0));
  if (w->json || !isatty(STDOUT_FILENO)) {
    worker__emit(r);
  } else {
    printf("%zu parameters, B=%d T=%d, %d threads: %.1f ms/step, %.0f tokens/s, %.1f GFLOP/s "
           "(%.0f%% of sgemm's %.1f), peak %.0f MB\n",
           gpt_params_count(m), B, T, kernels_cpu_threads(), mean, tps, gflops,
           sgemm > 0 ? 100 * gflops / sgemm : 0.0, sgemm, peak_rss_mb());
    json_decref(r);
  }
  free(x), free(y);
  gpt_destroy(m);
  return MN_EXIT_OK;
}
