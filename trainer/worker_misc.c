/*
 * worker_misc.c -- the other mnemo commands: shard, generate, bench, fisher, replay, lid
 * and triage.
 */
#define _XOPEN_SOURCE 700
#include "configs/config.h"
#include "guards/verdict.h"
#include "replay/replay.h"
#include "trainer/trainer_int.h"
#include "trainer/worker_int.h"
#include "triage/lid.h"
#include "triage/triage.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static double peak_rss_mb(void)
{
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_maxrss / 1024.0;
}

/* ---------------------------------------------------------------- shard */

/* worker__read_tags -- a TSV of code <tab> tag id, as the database assigned them */
mn_status worker__read_tags(const char *path, tok_tags *tags, mn_error *err)
{
  FILE *f = fopen(path, "r");
  if (!f) return mn_error_set(err, MN_ERR_IO, "could not open \"%s\": %s", path, strerror(errno));
  char line[256];
  int ln = 0;
  while (fgets(line, sizeof line, f)) {
    ln++;
    char code[16];
    int id;
    if (sscanf(line, "%15s %d", code, &id) != 2 || tok_tags_add(tags, code, id, err) != MN_OK) {
      fclose(f);
      if (!err->msg[0])
        return mn_error_set(err, MN_ERR_INPUT, "%s:%d: expected \"code<TAB>tag\"", path, ln);
      return mn_error_prefix(err, "%s:%d", path, ln);
    }
  }
  fclose(f);
  return MN_OK;
}

int worker__cmd_shard(worker *w, opts *o)
{
  mn_error err = {0};
  tok_tags tags = {0};
  shard_builder *b = NULL;
  int rc = EXIT_FAIL;
  if (!o->out || o->npos < 1)
    return worker__usage("shard needs --out FILE and at least one JSONL file");
  const char *split = o->split ? o->split : "all";
  if (strcmp(split, "all") && strcmp(split, "train") && strcmp(split, "heldout"))
    return worker__usage("--split must be train, heldout or all, got \"%s\"", split);
  if (o->tags && worker__read_tags(o->tags, &tags, &err) != MN_OK) return worker__fail(&err);
  if (shard_builder_create(&tags, &b, &err) != MN_OK) return worker__fail(&err);
  int64_t docs = 0, skipped = 0;
  for (int i = 0; i < o->npos; i++) {
    FILE *f = fopen(o->pos[i], "r");
    if (!f) {
      mn_error_set(&err, MN_ERR_IO, "could not open \"%s\": %s", o->pos[i], strerror(errno));
      goto out;
    }
    char *l = NULL;
    size_t cap = 0;
    ssize_t n;
    int64_t ln = 0;
    while ((n = getline(&l, &cap, f)) > 0) {
      ln++;
      json_error_t je;
      json_t *r = json_loadb(l, (size_t)n, JSON_ALLOW_NUL, &je);
      const char *lang = json_string_value(json_object_get(r, "lang"));
      json_t *t = json_object_get(r, "text");
      if (!lang || !json_is_string(t)) {
        json_decref(r);
        if (n <= 1) continue; /* a blank line */
        mn_error_set(&err, MN_ERR_INPUT, "%s:%lld: expected {\"lang\": ..., \"text\": ...}",
                     o->pos[i], (long long)ln);
        free(l);
        fclose(f);
        goto out;
      }
      const char *text = json_string_value(t);
      size_t tn = json_string_length(t);
      bool keep = true, held, by_hash;
      mn_status s = MN_OK;
      if (strcmp(split, "all") != 0) { /* the record's stored split, or the hash rule */
        s = evalset__record_split(r, text, tn, w->cfg.ingest.heldout_fraction, &held, &by_hash,
                                  &err);
        keep = s == MN_OK && held == (strcmp(split, "heldout") == 0);
      }
      if (keep) s = shard_builder_add(b, lang, text, tn, &err);
      json_decref(r);
      if (s != MN_OK) {
        mn_error_prefix(&err, "%s:%lld", o->pos[i], (long long)ln);
        free(l);
        fclose(f);
        goto out;
      }
      docs += keep;
      skipped += !keep;
    }
    free(l);
    fclose(f);
  }
  if (shard_builder_write(b, o->out, &err) != MN_OK) goto out;
  json_t *langs = json_object();
  for (int i = 0; i < tags.n; i++)
    json_object_set_new(langs, tags.t[i].code, json_integer(tags.t[i].id));
  worker__emit(json_pack("{s:s, s:s, s:I, s:I, s:s, s:o}", "event", "shard", "out", o->out,
                         "documents", (json_int_t)docs, "skipped", (json_int_t)skipped, "split",
                         split, "tags", langs));
  rc = EXIT_OK;
out:
  shard_builder_destroy(b);
  return rc == EXIT_OK ? rc : worker__fail(&err);
}

/* ---------------------------------------------------------------- generate */

int worker__cmd_generate(worker *w, opts *o)
{
  mn_error err = {0};
  gpt *m = NULL;
  ckpt_meta meta;
  if (!o->checkpoint || !o->lang)
    return worker__usage("generate needs --checkpoint FILE and --lang L");
  const char *prompt = o->prompt ? o->prompt : "";
  size_t bad_at;
  if (mn_utf8_check(prompt, strlen(prompt), &bad_at) != MN_UTF8_OK) {
    mn_error_set(&err, MN_ERR_INPUT, "the prompt is not valid UTF-8 (byte %zu)", bad_at);
    return worker__fail(&err);
  }
  if (o->tokens > 1000000) return worker__usage("--tokens is at most 1000000");
  kernels_cpu_set_threads((int)w->cfg.train.threads);
  if (ckpt_read_meta(o->checkpoint, &meta, &err) != MN_OK) return worker__fail(&err);
  int tag = tok_tag_of(&meta.tags, o->lang);
  if (tag < 0) {
    mn_error_set(&err, MN_ERR_INPUT, "the checkpoint knows no language \"%s\"", o->lang);
    return worker__fail(&err);
  }
  int T = meta.config.max_seq_len;
  const kernels_backend *k;
  if (worker__train_backend(&w->cfg, &k, &err) != MN_OK ||
      gpt_create(&meta.config, 1, T, 0, k, &m, &err) != MN_OK)
    return worker__fail(&err);
  if (ckpt_load(o->checkpoint, m, &meta, &err) != MN_OK) {
    gpt_destroy(m);
    return worker__fail(&err);
  }
  int64_t want = o->tokens ? o->tokens : 100;
  int top_k = o->top_k ? (int)o->top_k : 40;
  double temp = o->temperature > 0 ? o->temperature : 0.8;
  uint64_t rng = o->seed ? (uint64_t)o->seed : 1;
  size_t plen = strlen(prompt);
  size_t cap = plen + (size_t)want + 2;
  int32_t *ctx = malloc(sizeof(int32_t) * cap);
  unsigned char *outb = malloc(cap);
  int32_t *win = malloc(sizeof(int32_t) * (size_t)T);
  float *p = malloc(sizeof(float) * 257);
  if (!ctx || !outb || !win || !p) {
    free(ctx), free(outb), free(win), free(p);
    gpt_destroy(m);
    mn_error_set(&err, MN_ERR_NOMEM, "out of memory generating %lld tokens", (long long)want);
    return worker__fail(&err);
  }
  size_t n = 0, nout = 0;
  for (size_t i = 0; i < plen; i++)
    ctx[n++] = (unsigned char)prompt[i];
  for (int64_t g = 0; g < want; g++) {
    /* the window: the tag, then the last T-1 tokens */
    int len = (int)(n < (size_t)T - 1 ? n : (size_t)T - 1);
    win[0] = tag;
    for (int i = 0; i < len; i++)
      win[i + 1] = ctx[n - (size_t)len + (size_t)i];
    gpt_forward(m, win, NULL, 1, len + 1);
    const float *logits = gpt_logits(m) + (size_t)len * meta.config.padded_vocab;
    /* sample among bytes and <|eot|> only (tags are never generated) */
    float mx = -INFINITY;
    for (int i = 0; i < 257; i++)
      mx = logits[i] > mx ? logits[i] : mx;
    float kth = -INFINITY;
    if (top_k > 0 && top_k < 257) { /* the k-th largest logit */
      float tmp[257];
      memcpy(tmp, logits, sizeof tmp);
      for (int a = 0; a < top_k; a++) {
        int best = a;
        for (int b = a + 1; b < 257; b++)
          best = tmp[b] > tmp[best] ? b : best;
        float s = tmp[a];
        tmp[a] = tmp[best];
        tmp[best] = s;
      }
      kth = tmp[top_k - 1];
    }
    double sum = 0;
    for (int i = 0; i < 257; i++) {
      p[i] = logits[i] < kth ? 0.0f : (float)exp((logits[i] - mx) / temp);
      sum += p[i];
    }
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    double u = (double)(rng >> 11) / 9007199254740992.0 * sum, acc = 0;
    int tokn = 256;
    for (int i = 0; i < 257; i++) {
      acc += p[i];
      if (u < acc) {
        tokn = i;
        break;
      }
    }
    if (tokn == TOK_EOT) break;
    ctx[n++] = tokn;
    outb[nout++] = (unsigned char)tokn;
  }
  /* print valid UTF-8 only: a sequence cut by the end or sampled badly becomes U+FFFD */
  mn_buf text;
  mn_buf_init(&text, cap * 3 + 16);
  (void)!mn_buf_append(&text, prompt, plen, NULL);
  size_t i = 0;
  while (i < nout) {
    size_t off;
    mn_utf8_problem pr = mn_utf8_check(outb + i, nout - i, &off);
    if (pr == MN_UTF8_OK) {
      (void)!mn_buf_append(&text, outb + i, nout - i, NULL);
      break;
    }
    (void)!mn_buf_append(&text, outb + i, off, NULL);
    (void)!mn_buf_append(&text, "\xEF\xBF\xBD", 3, NULL);
    i += off + 1;
  }
  if (w->json || !isatty(STDOUT_FILENO))
    worker__emit(json_pack("{s:s, s:s, s:s, s:I}", "event", "generate", "lang", o->lang, "text",
                           text.data ? text.data : "", "tokens", (json_int_t)nout));
  else
    printf("%s\n", text.data ? text.data : "");
  mn_buf_fini(&text);
  free(ctx), free(outb), free(win), free(p);
  gpt_destroy(m);
  return EXIT_OK;
}

/* ---------------------------------------------------------------- bench */

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
  return EXIT_OK;
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
  return EXIT_OK;
}

int worker__cmd_bench(worker *w, opts *o)
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
  if (gpt_create(&gc, B, T, 1, k, &m, &err) != MN_OK) return worker__fail(&err);
  int32_t *x = malloc(sizeof(int32_t) * (size_t)B * T),
          *y = malloc(sizeof(int32_t) * (size_t)B * T);
  uint64_t s = 7;
  for (int i = 0; i < B * T; i++) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    x[i] = (int32_t)((s >> 33) % 256);
    y[i] = (int32_t)((s >> 13) % 256);
  }
  gpt_adamw opt = {.lr = 1e-4f,
                   .beta1 = 0.9f,
                   .beta2 = 0.95f,
                   .eps = 1e-8f,
                   .weight_decay = 0.1f,
                   .grad_clip = 1.0f};
  if (cuda) {
    int code =
        bench_device(m, x, y, B, T, &opt, steps, o->math ? o->math : "fp32", w->json || o->json);
    free(x), free(y);
    gpt_destroy(m);
    return code;
  }
  /* The machine's sgemm rate is measured right after each timed step (the best of a burst
   * of 1024^3 products), so that both see the same machine: on a shared host the clock
   * and the neighbours change from one second to the next.  The median burst is the
   * reference. */
  sgemm_probe probe = {0};
  bool probe_ok = sgemm_probe_init(&probe, 1024);
  double *rates = calloc((size_t)steps, sizeof(double));
  if (o->stages || o->ewc) {
    int code = EXIT_OK;
    if (o->stages) bench_stages(m, x, y, B, T, &opt, steps);
    if (o->ewc) code = bench_ewc(m, x, y, B, T, &opt, steps);
    free(x), free(y);
    gpt_destroy(m);
    return code;
  }
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
  json_t *r =
      json_pack("{s:s, s:I, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:i}", "event",
                "bench", "params", (json_int_t)gpt_params_count(m), "n_layer", gc.n_layer, "n_embd",
                gc.n_embd, "n_head", gc.n_head, "batch", B, "seq_len", T, "steps", steps,
                "ms_per_step", mean, "best_ms_per_step", best, "tokens_per_s", tps, "gflops",
                gflops, "peak_rss_mb", peak_rss_mb(), "threads", kernels_cpu_threads());
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
  return EXIT_OK;
}

/* ---------------------------------------------------------------- fisher */

/*
 * fisher -- the diagonal Fisher of a checkpoint's weights for EWC, from windows of
 * train.seq_len + 1 tokens per language; --previous F_OLD makes it the online estimate
 * gamma * F_OLD + F_new.
 */
int worker__cmd_fisher(worker *w, opts *o)
{
  if (!o->checkpoint || !o->out || o->npos < 1)
    return worker__usage("fisher needs --checkpoint FILE, --out FILE and at least one shard");
  const char *weighting = o->weighting ? o->weighting : "equal";
  if (strcmp(weighting, "equal") != 0 && strcmp(weighting, "share") != 0)
    return worker__usage("--weighting must be equal or share, got \"%s\"", weighting);
  if (o->gamma > 0 && !o->previous) return worker__usage("--gamma goes with --previous");
  mn_error err = {0};
  shard *shards = NULL;
  gpt *m = NULL;
  float *F = NULL, *old = NULL;
  int code = EXIT_FAIL;
  ckpt_meta meta;
  fisher_meta fm, pm;
  memset(&fm, 0, sizeof fm);
  int T = 0;
  if (worker__scoring_model(w, o->checkpoint, &meta, &m, &T, &err) != MN_OK) goto out;
  if (worker__read_shards(o, &shards, &err) != MN_OK) goto out;
  for (int s = 0; s < o->npos; s++)
    for (uint32_t k = 0; k < shards[s].nsections; k++)
      if (shard_section_fits(&shards[s].sections[k], o->pos[s], &meta, o->checkpoint, &err) !=
          MN_OK)
        goto out;
  size_t np = gpt_params_count(m);
  F = malloc(np * sizeof(float));
  if (!F) {
    mn_error_set(&err, MN_ERR_NOMEM, "out of memory");
    goto out;
  }
  int windows = o->windows ? (int)o->windows : 32;
  if (fisher_estimate(m, shards, o->npos, T, windows, weighting[0] == 's', F, fm.info,
                      sizeof fm.info, &err) != MN_OK)
    goto out;
  if (o->previous) { /* online: gamma * the previous estimate + this one */
    double gamma = o->gamma > 0 ? o->gamma : 0.9;
    old = malloc(np * sizeof(float));
    if (!old) {
      mn_error_set(&err, MN_ERR_NOMEM, "out of memory");
      goto out;
    }
    if (ckpt_load_fisher(o->previous, old, np, &pm, &err) != MN_OK) goto out;
    for (size_t i = 0; i < np; i++)
      F[i] = (float)gamma * old[i] + F[i];
    json_t *info = json_loads(fm.info, 0, NULL);
    json_object_set_new(info, "gamma", json_real(gamma));
    json_object_set_new(info, "previous", json_string(pm.weights_sha256));
    char *text = info ? json_dumps(info, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(info);
    if (!text || strlen(text) >= sizeof fm.info) {
      free(text);
      mn_error_set(&err, MN_ERR_NOMEM, "could not describe the online Fisher");
      goto out;
    }
    memcpy(fm.info, text, strlen(text) + 1);
    free(text);
  }
  snprintf(fm.weights_sha256, sizeof fm.weights_sha256, "%s", meta.sha256);
  if (ckpt_save_fisher(o->out, F, np, &fm, &err) != MN_OK) goto out;
  double sum = 0, max = 0;
  for (size_t i = 0; i < np; i++)
    sum += F[i], max = F[i] > max ? F[i] : max;
  json_t *ev = json_pack("{s:s, s:s, s:s, s:f, s:f}", "event", "fisher", "out", o->out, "weighting",
                         weighting, "mean", sum / (double)np, "max", max);
  json_object_set_new(ev, "info", json_loads(fm.info, 0, NULL));
  worker__emit(ev);
  code = EXIT_OK;
out:
  if (code != EXIT_OK) code = worker__fail(&err);
  free(F), free(old);
  worker__free_shards(shards, o->npos);
  gpt_destroy(m);
  return code;
}

/* ---------------------------------------------------------------- replay */

/* replay_absorb -- every shard's sections cut into windows of train.seq_len + 1 tokens,
 * back to back, offered to the store at --store (created when absent) */
static int cmd_replay_absorb(worker *w, opts *o)
{
  if (!o->store || o->capacity < 1 || o->capacity > UINT32_MAX || o->npos < 2)
    return worker__usage(
        "replay absorb needs --store FILE, --capacity N (windows per language) and at "
        "least one shard");
  mn_error err = {0};
  uint32_t window = (uint32_t)w->cfg.train.seq_len + 1;
  int nshards = o->npos - 1;
  shard *shards = calloc((size_t)nshards, sizeof *shards);
  replay_offer *offers = NULL;
  size_t noffers = 0, total = 0;
  int code = EXIT_FAIL;
  if (!shards) {
    mn_error_set(&err, MN_ERR_NOMEM, "out of memory");
    goto out;
  }
  for (int i = 0; i < nshards; i++) {
    if (shard_read(o->pos[i + 1], &shards[i], &err) != MN_OK) goto out;
    total += shards[i].nsections;
  }
  offers = calloc(total ? total : 1, sizeof *offers);
  if (!offers) {
    mn_error_set(&err, MN_ERR_NOMEM, "out of memory");
    goto out;
  }
  for (int i = 0; i < nshards; i++)
    for (uint32_t k = 0; k < shards[i].nsections; k++) {
      const shard_section *sec = &shards[i].sections[k];
      if (sec->count / window == 0) continue; /* shorter than a window: nothing to offer */
      offers[noffers++] = (replay_offer){.code = sec->code,
                                         .windows = shards[i].tokens + sec->first,
                                         .n = (size_t)(sec->count / window)};
    }
  if (replay_store_absorb(o->store, window, (uint32_t)o->capacity, offers, noffers, &err) != MN_OK)
    goto out;
  replay_store s;
  if (replay_store_load(o->store, &s, &err) != MN_OK) goto out;
  for (size_t i = 0; i < noffers; i++) {
    const replay_lang *l = replay_store_find(&s, offers[i].code);
    worker__emit(json_pack("{s:s, s:s, s:I, s:I, s:I}", "event", "replay_absorb", "lang",
                           offers[i].code, "offered", (json_int_t)offers[i].n, "held",
                           (json_int_t)(l ? l->count : 0), "seen", (json_int_t)(l ? l->seen : 0)));
  }
  replay_store_free(&s);
  code = EXIT_OK;
out:
  if (code != EXIT_OK) code = worker__fail(&err);
  for (int i = 0; shards && i < nshards; i++)
    shard_free(&shards[i]);
  free(shards);
  free(offers);
  return code;
}

/* replay_verify -- read a store whole (every field and the checksum) and say what it holds */
static int cmd_replay_verify(opts *o)
{
  if (o->npos != 2) return worker__usage("replay verify takes one argument: STORE");
  mn_error err = {0};
  replay_store s;
  if (replay_store_load(o->pos[1], &s, &err) != MN_OK) return worker__fail(&err);
  uint64_t held = 0;
  for (uint32_t i = 0; i < s.nlangs; i++) {
    const replay_lang *l = &s.langs[i];
    held += l->count;
    worker__emit(json_pack("{s:s, s:s, s:I, s:I, s:I}", "event", "replay_lang", "lang", l->code,
                           "capacity", (json_int_t)l->capacity, "held", (json_int_t)l->count,
                           "seen", (json_int_t)l->seen));
  }
  worker__emit(json_pack("{s:s, s:s, s:b, s:i, s:i, s:I}", "event", "replay_verify", "store",
                         o->pos[1], "ok", 1, "window", (int)s.window, "languages", (int)s.nlangs,
                         "windows", (json_int_t)held));
  replay_store_free(&s);
  return EXIT_OK;
}

int worker__cmd_replay(worker *w, opts *o)
{
  const char *sub = o->npos > 0 ? o->pos[0] : "";
  if (strcmp(sub, "absorb") == 0) return cmd_replay_absorb(w, o);
  if (strcmp(sub, "verify") == 0) return cmd_replay_verify(o);
  return worker__usage("replay wants absorb or verify, got \"%s\"", sub);
}

/* ---------------------------------------------------------------- lid */

static int cmd_lid_train(opts *o)
{
  if (!o->out || o->npos < 2)
    return worker__usage(
        "lid train needs --out MODEL and at least one JSONL file of {\"lang\", \"text\"}");
  mn_error err = {0};
  lid_model *m = NULL;
  double t0 = mn_monotonic_ms();
  if (lid_train((const char *const *)o->pos + 1, o->npos - 1, o->max_bytes, &m, &err) != MN_OK ||
      lid_save(m, o->out, &err) != MN_OK) {
    lid_free(m);
    return worker__fail(&err);
  }
  worker__emit(json_pack("{s:s, s:s, s:i, s:f}", "event", "lid_train", "out", o->out, "languages",
                         lid_languages(m), "seconds", (mn_monotonic_ms() - t0) / 1e3));
  lid_free(m);
  return EXIT_OK;
}

/* lid_line -- one text: a JSONL record's "text" (and "id") or the line itself */
static void lid_line(const lid_model *m, char *line, size_t n, int64_t ln, bool json)
{
  while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
    line[--n] = 0;
  json_t *rec = n && line[0] == '{' ? json_loadb(line, n, 0, NULL) : NULL;
  const char *text = line;
  size_t len = n;
  if (rec) {
    json_t *t = json_object_get(rec, "text");
    text = json_string_value(t) ? json_string_value(t) : "";
    len = json_string_length(t);
  }
  json_t *id = rec ? json_object_get(rec, "id") : NULL;
  size_t bad = 0;
  mn_utf8_problem up = mn_utf8_check(text, len, &bad);
  lid_result r;
  if (up == MN_UTF8_OK) lid_classify(m, text, len, &r);
  if (json) {
    json_t *o = json_pack("{s:I}", "line", (json_int_t)ln);
    if (id) json_object_set(o, "id", id);
    if (up != MN_UTF8_OK) {
      char why[96];
      snprintf(why, sizeof why, "invalid text: %s at byte %zu", mn_utf8_problem_str(up), bad);
      json_object_set_new(o, "lang", json_string("und"));
      json_object_set_new(o, "error", json_string(why));
    } else {
      json_t *sp = json_array();
      for (int i = 0; i < r.nspans; i++)
        json_array_append_new(sp, json_pack("{s:s, s:I, s:I}", "lang", r.spans[i].lang, "start",
                                            (json_int_t)r.spans[i].start, "end",
                                            (json_int_t)r.spans[i].end));
      json_t *res = json_pack("{s:s, s:f, s:s, s:f, s:f, s:b, s:o}", "lang", r.lang, "confidence",
                              r.confidence, "second", r.second, "second_confidence",
                              r.second_confidence, "fit", r.fit, "mixed", r.mixed, "spans", sp);
      json_object_update(o, res);
      json_decref(res);
    }
    worker__emit(o);
  } else if (up != MN_UTF8_OK) {
    printf("und\t0.000\tinvalid text: %s at byte %zu\n", mn_utf8_problem_str(up), bad);
  } else {
    printf("%s\t%.3f", r.lang, r.confidence);
    if (r.mixed) {
      printf("\tmixed:");
      for (int i = 0; i < r.nspans; i++)
        printf(" %s[%zu,%zu)", r.spans[i].lang, r.spans[i].start, r.spans[i].end);
    }
    printf("\n");
  }
  json_decref(rec);
}

int worker__cmd_lid(worker *w, opts *o)
{
  if (o->npos > 0 && strcmp(o->pos[0], "train") == 0) return cmd_lid_train(o);
  if (!o->model || o->npos > 1)
    return worker__usage("lid needs --model MODEL (from \"mnemo lid train\") and at most one FILE");
  mn_error err = {0};
  lid_model *m = NULL;
  if (lid_load(o->model, &m, &err) != MN_OK) return worker__fail(&err);
  FILE *f = o->npos ? fopen(o->pos[0], "r") : stdin;
  if (!f) {
    lid_free(m);
    mn_error_set(&err, MN_ERR_IO, "cannot open \"%s\": %s", o->pos[0], strerror(errno));
    return worker__fail(&err);
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t got;
  int64_t ln = 0;
  while ((got = getline(&line, &cap, f)) > 0)
    lid_line(m, line, (size_t)got, ++ln, w->json || o->json);
  int code = ferror(f) ? EXIT_FAIL : EXIT_OK;
  if (code != EXIT_OK) fprintf(stderr, "mnemo: cannot read %s\n", o->npos ? o->pos[0] : "stdin");
  free(line);
  if (f != stdin) fclose(f);
  lid_free(m);
  return code;
}

/* ---------------------------------------------------------------- triage */

int worker__cmd_triage(worker *w, opts *o)
{
  if (!o->checkpoint || !o->model || !o->typical || o->npos > 1)
    return worker__usage(
        "triage needs --checkpoint CKPT --model LID --typical FILE [--heldout JSONL] "
        "and at most one FILE");
  mn_error err = {0};
  triage_config c = {.checkpoint = o->checkpoint,
                     .lid = o->model,
                     .typical = o->typical,
                     .heldout = o->heldout,
                     .max_text_bytes = w->cfg.triage.max_text_bytes,
                     .group_similarity = w->cfg.triage.group_similarity,
                     .seq_len = (int)w->cfg.train.seq_len};
  FILE *f = o->npos ? fopen(o->pos[0], "r") : stdin;
  if (!f) {
    mn_error_set(&err, MN_ERR_IO, "cannot open \"%s\": %s", o->pos[0], strerror(errno));
    return worker__fail(&err);
  }
  mn_status rc = triage_run(&c, f, o->npos ? o->pos[0] : "stdin", stdout, &err);
  if (f != stdin) fclose(f);
  return rc == MN_OK ? EXIT_OK : worker__fail(&err);
}
