/*
 * test_gpt_cuda.c -- the whole model on the CUDA backend against the same model on the CPU
 * (label gpu): the same initial weights, the same batches, three AdamW steps with gradient
 * clipping, EWC from the second step, distillation rows on the third; then progressive
 * unfreezing (the frozen prefix bit-identical on the device too).  Losses, probabilities,
 * gradients and weights compared by ||cuda - cpu|| / ||cpu||; every step's device errors
 * surface through gpt_sync.  Exits 77 without a device (or a CUDA build).
 */
#include "tests/test.h"
#include "trainer/trainer.h"

#include <math.h>

static const gpt_config gpt2 = {.max_seq_len = 64,
                                .vocab_size = 300,
                                .padded_vocab = 320,
                                .n_layer = 2,
                                .n_head = 4,
                                .n_embd = 128};
/* the Llama family: Llama with an untied head, 4 query heads over 2 key-value heads and Llama
 * 3's rotary scaling; Qwen2 tied, with biases, 2 over 1 */
static const gpt_config llama = {.max_seq_len = 64,
                                 .vocab_size = 300,
                                 .padded_vocab = 320,
                                 .n_layer = 2,
                                 .n_head = 4,
                                 .n_embd = 128,
                                 .arch = GPT_ARCH_LLAMA,
                                 .n_kv_head = 2,
                                 .n_ff = 344,
                                 .untied = true,
                                 .norm_eps = 1e-5f,
                                 .rope_theta = 500000.0,
                                 .rope_factor = 32.0,
                                 .rope_low_freq = 1.0,
                                 .rope_high_freq = 4.0,
                                 .rope_orig_max = 32};
static const gpt_config qwen2 = {.max_seq_len = 64,
                                 .vocab_size = 300,
                                 .padded_vocab = 320,
                                 .n_layer = 2,
                                 .n_head = 2,
                                 .n_embd = 128,
                                 .arch = GPT_ARCH_QWEN2,
                                 .n_kv_head = 1,
                                 .n_ff = 256,
                                 .norm_eps = 1e-6f,
                                 .rope_theta = 1000000.0};
static gpt_config cfg; /* the family same_training runs */
enum { B = 4, T = 64 };
static const kernels_backend *gpu;

static double rel(const float *a, const float *ref, size_t n)
{
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(a[i])) return INFINITY;
    num += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
    den += (double)ref[i] * ref[i];
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void same_training(void)
{
  mn_error err = {0};
  gpt *c = NULL, *g = NULL, *tc = NULL, *tg = NULL;
  T_CHECK(gpt_create(&cfg, B, T, 5, kernels_cpu(), &c, &err) == MN_OK);
  T_CHECK(gpt_create(&cfg, B, T, 5, gpu, &g, &err) == MN_OK);
  T_CHECK(gpt_create(&cfg, B, T, 9, kernels_cpu(), &tc, &err) == MN_OK); /* the teacher */
  T_CHECK(gpt_create(&cfg, B, T, 9, gpu, &tg, &err) == MN_OK);
  if (!c || !g || !tc || !tg) return;
  size_t np = gpt_params_count(c);
  /* the anchor is off every weight by more than rounding: where a gradient is zero in theory
   * (the key bias: a constant on a softmax row changes nothing), each backend's rounding
   * noise would otherwise decide Adam's direction under EWC */
  float *F = malloc(np * sizeof *F), *A = malloc(np * sizeof *A);
  for (size_t i = 0; i < np; i++)
    F[i] = (float)(i % 13) * 0.01f,
    A[i] = gpt_params(c)[i] * 0.5f + 0.01f * (float)((int)(i % 7) - 3);
  int32_t x[B * T], y[B * T];
  uint64_t s = 3;
  gpt_adamw opt = {.lr = 1e-3f,
                   .beta1 = 0.9f,
                   .beta2 = 0.95f,
                   .eps = 1e-8f,
                   .weight_decay = 0.1f,
                   .grad_clip = 1.0f};
  for (int t = 1; t <= 3; t++) {
    for (int i = 0; i < B * T; i++)
      x[i] = (int32_t)(mn_splitmix64(&s) % cfg.vocab_size),
      y[i] = (int32_t)(mn_splitmix64(&s) % cfg.vocab_size);
    /* step 1 trains the top block alone, step 2 thaws the rest: the state grows on the
     * device as on the host, the top block's moments kept */
    int first = t == 1 ? cfg.n_layer - 1 : -1;
    gpt_set_trainable(c, first), gpt_set_trainable(g, first);
    if (t == 2) gpt_set_ewc(c, F, A, 5.0f), gpt_set_ewc(g, F, A, 5.0f);
    if (t == 3) { /* the last two rows learn towards the teacher's probabilities */
      gpt_forward(tc, x + 2 * T, y + 2 * T, 2, T);
      gpt_forward(tg, x + 2 * T, y + 2 * T, 2, T);
      gpt_set_soft_targets(c, 2, gpt_probs(tc), 0.4f);
      gpt_set_soft_targets(g, 2, gpt_probs(tg), 0.4f);
    }
    gpt_zero_grad(c), gpt_zero_grad(g);
    float lc = gpt_forward(c, x, y, B, T), lg = gpt_forward(g, x, y, B, T);
    T_CHECK_MSG(fabsf(lg - lc) <= 1e-5f * fabsf(lc), "step %d loss %.7f vs %.7f", t, lg, lc);
    double rp = rel(gpt_probs(g), gpt_probs(c), (size_t)B * T * cfg.padded_vocab);
    double rlog = rel(gpt_logits(g), gpt_logits(c), (size_t)B * T * cfg.padded_vocab);
    T_CHECK_MSG(rlog <= 1e-5, "step %d logits %.3e", t, rlog);
    double rl = rel(gpt_losses(g), gpt_losses(c), (size_t)B * T);
    T_CHECK_MSG(rp <= 1e-5 && rl <= 1e-5, "step %d probs %.3e losses %.3e", t, rp, rl);
    gpt_backward(c), gpt_backward(g);
    size_t from = gpt_state_from(c), ns = np - from;
    T_CHECK_MSG(gpt_state_from(g) == from && from == gpt_trainable_offset(c),
                "step %d state from %zu and %zu, trainable from %zu", t, gpt_state_from(g), from,
                gpt_trainable_offset(c));
    T_CHECK(gpt_state_from(tg) == np && gpt_state_from(tc) == np); /* teachers: none */
    double rg = rel(gpt_grads(g), gpt_grads(c), ns);
    T_CHECK_MSG(rg <= 1e-4, "step %d gradients %.3e", t, rg);
    float nc = gpt_update(c, &opt, t), ng = gpt_update(g, &opt, t);
    T_CHECK_MSG(fabsf(nc - ng) <= 1e-4f * nc, "step %d gradient norm %.6f vs %.6f", t, ng, nc);
    T_CHECK_MSG(gpt_sync(g, &err) == MN_OK, "step %d: %s", t, err.msg);
    double rw = rel(gpt_params(g), gpt_params(c), np);
    T_CHECK_MSG(rw <= 1e-5, "step %d weights %.3e", t, rw);
    double rm = rel(gpt_adam_m(g), gpt_adam_m(c), ns), rv = rel(gpt_adam_v(g), gpt_adam_v(c), ns);
    T_CHECK_MSG(rm <= 1e-4 && rv <= 1e-4, "step %d moments %.3e %.3e", t, rm, rv);
    printf("step %d: loss %.6f, gradients %.2e, weights %.2e, moments %.2e %.2e\n", t, lg, rg, rw,
           rm, rv);
  }
  /* weights written on the host go up: the CPU model's, then both score alike */
  memcpy(gpt_params(g), gpt_params(c), np * sizeof(float));
  gpt_params_written(g);
  float l1 = gpt_forward(c, x, NULL, B, T), l2 = gpt_forward(g, x, NULL, B, T);
  T_CHECK(l1 == -1.0f && l2 == -1.0f); /* no targets: logits only */
  double rl2 = rel(gpt_logits(g), gpt_logits(c), (size_t)B * T * cfg.padded_vocab);
  T_CHECK_MSG(rl2 <= 1e-5, "logits after gpt_params_written %.3e", rl2);
  /* progressive unfreezing: the frozen prefix stays bit-identical on the device too */
  gpt_set_soft_targets(c, 0, NULL, 0), gpt_set_soft_targets(g, 0, NULL, 0);
  gpt_set_trainable(g, 1);
  size_t off = gpt_trainable_offset(g);
  float *before = malloc(off * sizeof *before);
  memcpy(before, gpt_params(g), off * sizeof *before);
  gpt_zero_grad(g);
  gpt_forward(g, x, y, B, T);
  gpt_backward(g);
  gpt_update(g, &opt, 4);
  T_CHECK(gpt_sync(g, &err) == MN_OK);
  T_CHECK(memcmp(before, gpt_params(g), off * sizeof *before) == 0);
  free(before), free(F), free(A);
  gpt_destroy(c), gpt_destroy(g), gpt_destroy(tc), gpt_destroy(tg);
}

int main(void)
{
  char why[256] = "";
  mn_error err = {0};
  if (kernels_cuda(KERNELS_MATH_FP32, &gpu, why, &err) != MN_OK) {
    fprintf(stderr, "test_gpt_cuda: %s\n", err.msg);
    return 1;
  }
  /* MNEMO_TEST_GPU_AS_CPU=1 runs the harness with the CPU in the device's place: a check
   * of the test itself on machines without a GPU (every difference is then 0) */
  const char *as_cpu = getenv("MNEMO_TEST_GPU_AS_CPU");
  if (!gpu && as_cpu && strcmp(as_cpu, "1") == 0) gpu = kernels_cpu();
  if (!gpu) {
    printf("test_gpt_cuda: skipped (%s)\n", why);
    return 77;
  }
  const gpt_config *families[] = {&gpt2, &llama, &qwen2};
  for (int f = 0; f < 3; f++) {
    cfg = *families[f];
    printf("family %s\n", gpt_arch_name(cfg.arch));
    T_RUN(same_training);
  }
  return T_DONE();
}
