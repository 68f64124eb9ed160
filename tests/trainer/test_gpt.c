/*
 * test_gpt.c -- the whole model: layout, loss at initialisation, gradients of
 * every tensor against finite differences, determinism, learning a tiny
 * corpus by heart, the learning-rate schedule.
 */
#include "tests/test.h"
#include "trainer/trainer.h"

#include <math.h>

static const gpt_config tiny = {.max_seq_len = 16,
                                .vocab_size = 260,
                                .padded_vocab = 272,
                                .n_layer = 2,
                                .n_head = 2,
                                .n_embd = 16};

/* the Llama family at the same width: untied head, one key-value head for two query heads, Llama
 * 3's rotary scaling at short wavelengths (so that every band of it is crossed in 16 positions);
 * and Qwen2's: tied, biases on the projections, four heads over two */
static const gpt_config tiny_llama = {.max_seq_len = 16,
                                      .vocab_size = 260,
                                      .padded_vocab = 272,
                                      .n_layer = 2,
                                      .n_head = 2,
                                      .n_embd = 16,
                                      .arch = GPT_ARCH_LLAMA,
                                      .n_kv_head = 1,
                                      .n_ff = 24,
                                      .untied = true,
                                      .norm_eps = 1e-5f,
                                      .rope_theta = 10000.0,
                                      .rope_factor = 8.0,
                                      .rope_low_freq = 1.0,
                                      .rope_high_freq = 4.0,
                                      .rope_orig_max = 8};
static const gpt_config tiny_qwen2 = {.max_seq_len = 16,
                                      .vocab_size = 260,
                                      .padded_vocab = 272,
                                      .n_layer = 2,
                                      .n_head = 4,
                                      .n_embd = 16,
                                      .arch = GPT_ARCH_QWEN2,
                                      .n_kv_head = 2,
                                      .n_ff = 40,
                                      .norm_eps = 1e-6f,
                                      .rope_theta = 1000000.0};
static const gpt_config *cfg = &tiny; /* the family the tests that run for each take */

static gpt *make(int B, int T, uint64_t seed)
{
  gpt *m = NULL;
  mn_error err = {0};
  if (gpt_create(cfg, B, T, seed, kernels_cpu(), &m, &err) != MN_OK) {
    fprintf(stderr, "gpt_create: %s\n", err.msg);
    exit(1);
  }
  return m;
}

static void layout(void)
{
  int n = gpt_num_tensors(&tiny);
  T_EQ_INT(n, 2 + 12 * tiny.n_layer + 2);
  size_t expect = 0;
  bool contiguous = true;
  for (int i = 0; i < n; i++) {
    char name[64];
    size_t shape[2], off;
    int ndim;
    gpt_tensor_info(&tiny, i, name, shape, &ndim, &off);
    contiguous = contiguous && off == expect;
    expect += shape[0] * (ndim == 2 ? shape[1] : 1);
    if (i == 2) T_EQ_STR(name, "h.0.ln_1.weight");
    if (i == 4) T_CHECK(shape[0] == 48 && shape[1] == 16);  /* c_attn (3C, C) */
    if (i == 12) T_CHECK(shape[0] == 16 && shape[1] == 64); /* c_proj of the MLP (C, 4C) */
  }
  T_CHECK(contiguous);
  T_EQ_INT(expect, gpt_num_params(&tiny));
  /* block l begins where tensor 2 + 12 l begins: the trainable suffix is one range */
  char name[64];
  size_t shape[2], off;
  int ndim;
  gpt_tensor_info(&tiny, 2 + 12, name, shape, &ndim, &off);
  T_EQ_INT(off, gpt_block_offset(&tiny, 1));
  T_EQ_STR(name, "h.1.ln_1.weight");
  mn_error err;
  gpt_config bad = tiny;
  bad.n_head = 3;
  T_EQ_INT(gpt_config_check(&bad, &err), MN_ERR_CONFIG);
  bad = tiny;
  bad.padded_vocab = 100;
  T_EQ_INT(gpt_config_check(&bad, &err), MN_ERR_CONFIG);
}

/* family_layout -- the Llama family's tensors: no wpe, fused q/k/v of (NH + 2 KVH) HD rows,
 * gate and up side by side, the final norm then the untied head last; Qwen2's biases */
static void family_layout(void)
{
  int n = gpt_num_tensors(&tiny_llama);
  T_EQ_INT(n, 1 + 6 * 2 + 2);
  size_t expect = 0, shape[2], off;
  int ndim;
  char name[64];
  for (int i = 0; i < n; i++) {
    gpt_tensor_info(&tiny_llama, i, name, shape, &ndim, &off);
    T_EQ_INT(off, expect);
    expect += shape[0] * (ndim == 2 ? shape[1] : 1);
  }
  T_EQ_INT(expect, gpt_num_params(&tiny_llama));
  gpt_tensor_info(&tiny_llama, 2, name, shape, &ndim, &off);
  T_EQ_STR(name, "h.0.attn.qkv.weight");
  T_CHECK(shape[0] == 16 + 2 * 8 && shape[1] == 16);
  gpt_tensor_info(&tiny_llama, 5, name, shape, &ndim, &off);
  T_EQ_STR(name, "h.0.mlp.gate_up.weight");
  T_CHECK(shape[0] == 48 && shape[1] == 16);
  gpt_tensor_info(&tiny_llama, n - 1, name, shape, &ndim, &off);
  T_EQ_STR(name, "lm_head.weight");
  T_EQ_INT(off, gpt_block_offset(&tiny_llama, 2) + 16);
  T_EQ_INT(gpt_num_tensors(&tiny_qwen2), 1 + 7 * 2 + 1);
  gpt_tensor_info(&tiny_qwen2, 3, name, shape, &ndim, &off);
  T_EQ_STR(name, "h.0.attn.qkv.bias");
  T_CHECK(ndim == 1 && shape[0] == 32);
  mn_error err;
  gpt_config bad = tiny_qwen2;
  bad.n_kv_head = 3; /* does not divide 4 heads */
  T_EQ_INT(gpt_config_check(&bad, &err), MN_ERR_CONFIG);
  bad = tiny_qwen2;
  bad.norm_eps = 0;
  T_EQ_INT(gpt_config_check(&bad, &err), MN_ERR_CONFIG);
  bad = tiny;
  bad.n_ff = 64; /* GPT-2 has no setting of the Llama family */
  T_EQ_INT(gpt_config_check(&bad, &err), MN_ERR_CONFIG);
}

static int32_t tokens[2 * 8], targets[2 * 8];

static void make_batch(void)
{
  for (int i = 0; i < 16; i++) {
    tokens[i] = (int32_t)((i * 37 + 11) % tiny.vocab_size);
    targets[i] = (int32_t)((i * 53 + 7) % tiny.vocab_size);
  }
}

static void loss_at_init(void)
{
  gpt *m = make(2, 8, 42);
  float loss = gpt_forward(m, tokens, targets, 2, 8);
  T_CHECK_MSG(fabsf(loss - logf((float)tiny.vocab_size)) < 0.05f, "loss %f vs ln V %f", loss,
              logf((float)tiny.vocab_size));
  gpt_destroy(m);
}

static double loss_d(gpt *m)
{
  gpt_forward(m, tokens, targets, 2, 8);
  const float *l = gpt_losses(m);
  double s = 0;
  for (int i = 0; i < 16; i++)
    s += l[i];
  return s / 16;
}

/*
 * Every tensor of the model against central differences.  Parameters are
 * first pushed away from their initialisation (random values of 0.3) so that
 * no gradient is zero by symmetry.  With eps = 1e-3 the truncation error is
 * ~1e-6 relative; the loss is a double sum of float per-position losses whose
 * rounding (~1e-7 of ~5.6) over 2 eps gives ~3e-4 absolute noise on the
 * numeric gradient, so the bound is 1e-3 + 3e-2 relative.
 */
static void gradients(void)
{
  gpt *m = make(2, 8, 7);
  float *p = gpt_params(m);
  uint64_t s = 12345;
  size_t np = gpt_params_count(m);
  for (size_t i = 0; i < np; i++) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    p[i] += 0.3f * ((float)(s >> 40) / 16777216.0f - 0.5f);
  }
  gpt_zero_grad(m);
  gpt_forward(m, tokens, targets, 2, 8);
  gpt_backward(m);
  const float *g = gpt_grads(m);
  int n = gpt_num_tensors(cfg), bad = 0, checked = 0;
  for (int t = 0; t < n; t++) {
    char name[64];
    size_t shape[2], off;
    int ndim;
    gpt_tensor_info(cfg, t, name, shape, &ndim, &off);
    size_t count = shape[0] * (ndim == 2 ? shape[1] : 1);
    for (int k = 0; k < 4; k++) {
      size_t i = off + (size_t)((k * 2654435761u + 17u * (unsigned)t) % count);
      if (t == 0) i = off + (size_t)tokens[k] * 16 + (size_t)k; /* rows that are used */
      float keep = p[i];
      const float eps = 1e-3f;
      p[i] = keep + eps;
      double lp = loss_d(m);
      p[i] = keep - eps;
      double lm = loss_d(m);
      p[i] = keep;
      double num = (lp - lm) / (2 * eps), ana = g[i];
      checked++;
      if (!(fabs(num - ana) <= 1e-3 + 3e-2 * fmax(fabs(num), fabs(ana)))) { /* NaN fails */
        if (bad++ < 5)
          fprintf(stderr, "  %s[%zu]: analytic %.6g numeric %.6g\n", name, i - off, ana, num);
      }
    }
  }
  T_CHECK_MSG(bad == 0, "%d of %d gradients disagree with finite differences", bad, checked);
  gpt_destroy(m);
}

static void determinism_and_overfit(void)
{
  gpt *a = make(2, 8, 99), *b = make(2, 8, 99);
  gpt_adamw o = {.lr = 3e-3f,
                 .beta1 = 0.9f,
                 .beta2 = 0.95f,
                 .eps = 1e-8f,
                 .weight_decay = 0.0f,
                 .grad_clip = 1.0f};
  bool same = true;
  float first = 0, last = 0;
  for (int t = 1; t <= 300; t++) {
    gpt_zero_grad(a);
    float la = gpt_forward(a, tokens, targets, 2, 8);
    gpt_backward(a);
    gpt_update(a, &o, t);
    if (t <= 5) { /* the twin, for five steps */
      gpt_zero_grad(b);
      float lb = gpt_forward(b, tokens, targets, 2, 8);
      gpt_backward(b);
      gpt_update(b, &o, t);
      same = same && memcmp(&la, &lb, sizeof la) == 0;
    }
    if (t == 1) first = la;
    last = la;
  }
  T_CHECK(same);
  /* 16 fixed (token, target) pairs learnt by heart: from ln(260) = 5.56 to near zero */
  T_CHECK_MSG(last < 0.1f, "loss %f -> %f after 300 steps", first, last);
  gpt_destroy(a);
  gpt_destroy(b);
}

/*
 * unfreezing -- with the top block (and the final LayerNorm) trainable: the gradients of
 * that suffix equal those of a full backward, bit for bit; gradients and moments exist only
 * for that suffix (none before the first step); the frozen prefix keeps its values over
 * several steps; the trainable part moves; a thaw grows the state, keeping the moments the
 * suffix had and starting the thawed block's at zero.
 */
static void unfreezing(void)
{
  gpt *full = make(2, 8, 5), *part = make(2, 8, 5);
  int L = cfg->n_layer;
  size_t n = gpt_params_count(part);
  T_EQ_INT(gpt_state_from(part), n); /* nothing trained: no state (an evaluation, a teacher) */
  gpt_set_trainable(part, L - 1);
  T_EQ_INT(gpt_trainable_first(part), L - 1);
  T_EQ_INT(gpt_state_from(part), n);
  size_t off = gpt_trainable_offset(part);
  T_EQ_INT(off, gpt_block_offset(cfg, L - 1));
  gpt_zero_grad(full);
  gpt_forward(full, tokens, targets, 2, 8);
  gpt_backward(full);
  gpt_zero_grad(part);
  gpt_forward(part, tokens, targets, 2, 8);
  gpt_backward(part);
  T_EQ_INT(gpt_state_from(full), 0);
  T_EQ_INT(gpt_state_from(part), off); /* the trainable suffix only */
  T_CHECK(memcmp(gpt_grads(full) + off, gpt_grads(part), (n - off) * sizeof(float)) == 0);

  float *before = malloc(n * sizeof(float)), *mom = malloc(n * sizeof(float));
  memcpy(before, gpt_params(part), n * sizeof(float));
  gpt_adamw o = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
  for (int t = 1; t <= 5; t++) {
    gpt_zero_grad(part);
    gpt_forward(part, tokens, targets, 2, 8);
    gpt_backward(part);
    gpt_update(part, &o, t);
  }
  T_CHECK(memcmp(before, gpt_params(part), off * sizeof(float)) == 0);
  T_CHECK(memcmp(before + off, gpt_params(part) + off, (n - off) * sizeof(float)) != 0);
  T_EQ_INT(gpt_state_from(part), off);
  /* a thaw: the state grows to the block below; the suffix's moments move with it */
  memcpy(mom, gpt_adam_m(part), (n - off) * sizeof(float));
  T_CHECK(mom[0] != 0.0f || mom[n - off - 1] != 0.0f);
  gpt_set_trainable(part, L - 2);
  size_t off2 = gpt_trainable_offset(part);
  T_CHECK(off2 < off);
  T_EQ_INT(gpt_state_from(part), off2);
  const float *m2 = gpt_adam_m(part);
  T_CHECK(memcmp(mom, m2 + (off - off2), (n - off) * sizeof(float)) == 0);
  bool zero = true;
  for (size_t i = 0; i < off - off2; i++)
    zero = zero && m2[i] == 0.0f && gpt_adam_v(part)[i] == 0.0f;
  T_CHECK(zero);
  /* and never shrinks: freezing again keeps it */
  gpt_set_trainable(part, L - 1);
  T_EQ_INT(gpt_state_from(part), off2);
  /* out-of-range stages are clamped: -5 trains everything, L + 3 only the final LayerNorm */
  gpt_set_trainable(part, -5);
  T_EQ_INT(gpt_trainable_offset(part), 0);
  T_EQ_INT(gpt_state_from(part), 0);
  gpt_set_trainable(part, L + 3);
  T_EQ_INT(gpt_trainable_offset(part), gpt_block_offset(cfg, L));
  free(before), free(mom);
  gpt_destroy(full);
  gpt_destroy(part);
}

/*
 * late_thaw -- a tensor first updated at step 4 gets Adam's first-step correction then: it
 * moves by about lr (m / sqrt(v) = g / |g|), not the 0.56 lr that step 4's global correction
 * would give zero moments.
 */
static float median_step(const float *before, const float *after, size_t off, size_t count);
static void late_thaw(void)
{
  gpt *m = make(2, 8, 9);
  size_t n = gpt_params_count(m);
  char name[64];
  size_t shape[2], off;
  int ndim, qkv0 = 2 + GPT_BLOCK_TENSORS * 0 + GPT_QKVW;
  gpt_tensor_info(&tiny, qkv0, name, shape, &ndim, &off);
  gpt_adamw o = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-12f};
  gpt_set_trainable(m, tiny.n_layer - 1);
  for (int i = 0; i < gpt_num_tensors(&tiny); i++) { /* blocks below the top thaw at step 4 */
    gpt_tensor_info(&tiny, i, name, shape, &ndim, &off);
    if (off < gpt_block_offset(&tiny, tiny.n_layer - 1)) gpt_set_first_step(m, i, 4);
  }
  for (int t = 1; t <= 4; t++) {
    if (t == 4) gpt_set_trainable(m, -1);
    float *before = malloc(n * sizeof(float));
    memcpy(before, gpt_params(m), n * sizeof(float));
    gpt_zero_grad(m);
    gpt_forward(m, tokens, targets, 2, 8);
    gpt_backward(m);
    gpt_update(m, &o, t);
    if (t == 4) {
      gpt_tensor_info(&tiny, qkv0, name, shape, &ndim, &off);
      float med = median_step(before, gpt_params(m), off, shape[0] * shape[1]);
      T_CHECK_MSG(fabsf(med - 1e-3f) < 2e-5f, "%s moved %g at its first update, want 1e-3", name,
                  med);
    }
    free(before);
  }
  gpt_destroy(m);
}

static int cmp_float(const void *a, const void *b)
{
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

/* median |change| of block l's attention weights after one step */
static float median_step(const float *before, const float *after, size_t off, size_t count)
{
  float *d = malloc(count * sizeof(float));
  for (size_t i = 0; i < count; i++)
    d[i] = fabsf(after[off + i] - before[off + i]);
  qsort(d, count, sizeof(float), cmp_float);
  float med = d[count / 2];
  free(d);
  return med;
}

/*
 * discriminative_rates -- AdamW's first step moves each weight by about its learning rate
 * (m / sqrt(v) = g / |g|), so with lr_factor 2 the top block moves by lr, the block below
 * by lr / 2 and the embeddings by lr / 2^L.
 */
static void discriminative_rates(void)
{
  gpt *m = make(2, 8, 6);
  size_t n = gpt_params_count(m);
  float *before = malloc(n * sizeof(float));
  memcpy(before, gpt_params(m), n * sizeof(float));
  gpt_adamw o = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-12f, .lr_factor = 2.0f};
  gpt_zero_grad(m);
  gpt_forward(m, tokens, targets, 2, 8);
  gpt_backward(m);
  gpt_update(m, &o, 1);
  int L = tiny.n_layer;
  char name[64];
  size_t shape[2], off;
  int ndim;
  for (int l = 0; l < L; l++) {
    gpt_tensor_info(&tiny, 2 + GPT_BLOCK_TENSORS * l + GPT_QKVW, name, shape, &ndim, &off);
    float med = median_step(before, gpt_params(m), off, shape[0] * shape[1]);
    float want = 1e-3f / powf(2.0f, (float)(L - 1 - l));
    T_CHECK_MSG(fabsf(med - want) < 0.02f * want, "%s moved %g, want %g", name, med, want);
  }
  gpt_tensor_info(&tiny, 0, name, shape, &ndim, &off); /* wte: rows of tokens in the batch */
  float moved = 0;
  for (size_t i = 0; i < shape[0] * shape[1]; i++)
    moved = fmaxf(moved, fabsf(gpt_params(m)[off + i] - before[off + i]));
  T_CHECK_MSG(fabsf(moved - 1e-3f / powf(2.0f, (float)L)) < 0.02f * 1e-3f / powf(2.0f, (float)L),
              "wte moved at most %g", moved);
  free(before);
  gpt_destroy(m);
}

/*
 * ewc_gradient -- the EWC gradient fused into gpt_update, read back through the update
 * itself and checked against finite differences of gpt_ewc_penalty.  With beta1 = 0 and a
 * large eps, Adam's first step is lr * g / (|g| + eps): the step reveals the gradient the
 * optimizer used, and subtracting the data gradient leaves EWC's.
 */
static void ewc_gradient(void)
{
  gpt *m = make(2, 8, 8);
  size_t n = gpt_params_count(m);
  float *F = malloc(n * sizeof(float)), *A = malloc(n * sizeof(float));
  float *theta = malloc(n * sizeof(float)), *g = malloc(n * sizeof(float));
  uint64_t r = 42;
  for (size_t i = 0; i < n; i++) {
    r = r * 6364136223846793005ULL + 1442695040888963407ULL;
    F[i] = (float)((r >> 40) % 1000) / 100.0f; /* 0 .. 10 */
    A[i] = gpt_params(m)[i] + ((float)((r >> 20) % 2001) - 1000.0f) * 1e-4f;
  }
  const float lambda = 5.0f;
  gpt_set_ewc(m, F, A, lambda);
  gpt_zero_grad(m);
  gpt_forward(m, tokens, targets, 2, 8);
  gpt_backward(m);
  memcpy(theta, gpt_params(m), n * sizeof(float));
  memcpy(g, gpt_grads(m), n * sizeof(float));
  const float eps = 1e3f;
  gpt_adamw o = {.lr = 1.0f, .beta1 = 0.0f, .beta2 = 0.999f, .eps = eps};
  gpt_update(m, &o, 1);
  float *after = malloc(n * sizeof(float));
  memcpy(after, gpt_params(m), n * sizeof(float));
  int bad = 0, checked = 0;
  for (size_t i = 7; i < n; i += n / 50) {
    double step = (double)theta[i] - after[i];
    double used = step * eps / (1.0 - fabs(step)); /* step = g / (|g| + eps), solved for g */
    double ewc = used - g[i];
    float keep = theta[i];
    memcpy(gpt_params(m), theta, n * sizeof(float));
    const double h = 1e-2;
    gpt_params(m)[i] = keep + (float)h;
    double up = gpt_ewc_penalty(m);
    gpt_params(m)[i] = keep - (float)h;
    double down = gpt_ewc_penalty(m);
    gpt_params(m)[i] = keep;
    double num = (up - down) / (2 * h), want = lambda * F[i] * ((double)keep - A[i]);
    checked++;
    if (!(fabs(ewc - num) <= 2e-3 * fabs(num) + 1e-6) ||
        !(fabs(num - want) <= 1e-4 * fabs(want) + 1e-9)) {
      if (bad++ < 3)
        fprintf(stderr, "  [%zu] fused %.6g, numeric %.6g, formula %.6g\n", i, ewc, num, want);
    }
  }
  T_CHECK_MSG(bad == 0, "%d of %d EWC gradients off", bad, checked);
  gpt_set_ewc(m, NULL, A, lambda);
  T_CHECK(gpt_ewc_penalty(m) == 0.0);
  free(F), free(A), free(theta), free(g), free(after);
  gpt_destroy(m);
}

/* distillation: rows trained towards the model's own prediction (w = 1) give no gradient,
 * so a batch of B rows, the last B - R self-distilled, has R/B of the gradient of its first R
 * rows alone; w = 0.5 towards another model's prediction differs from the one-hot targets */
static void soft_targets(void)
{
  const int B = 4, R = 1, T = 8;
  int32_t x[4 * 8], y[4 * 8];
  for (int i = 0; i < B * T; i++)
    x[i] = (int32_t)((i * 37 + 11) % 256), y[i] = (int32_t)((i * 53 + 5) % 256);
  gpt *m = make(B, T, 7), *self = make(B, T, 7), *other = make(B, T, 8);
  size_t n = gpt_params_count(m);
  gpt_forward(self, x, y, B, T);
  gpt_set_soft_targets(m, R, gpt_probs(self) + (size_t)R * T * tiny.padded_vocab, 1.0f);
  gpt_zero_grad(m);
  gpt_forward(m, x, y, B, T);
  gpt_backward(m);
  float *full = malloc(n * sizeof(float));
  memcpy(full, gpt_grads(m), n * sizeof(float));
  gpt_set_soft_targets(m, 0, NULL, 0.0f);
  gpt_zero_grad(m);
  gpt_forward(m, x, y, R, T);
  gpt_backward(m);
  double worst = 0, scale = 0;
  for (size_t i = 0; i < n; i++) {
    worst = fmax(worst, fabs(full[i] - gpt_grads(m)[i] * R / B));
    scale = fmax(scale, fabs(full[i]));
  }
  T_CHECK_MSG(worst < 1e-6 * scale + 1e-9, "differs by %g (largest %g)", worst, scale);
  /* towards another model: the gradient moves; off again: back to the one-hot gradient */
  gpt_forward(other, x, y, B, T);
  gpt_zero_grad(m);
  gpt_forward(m, x, y, B, T);
  gpt_backward(m);
  memcpy(full, gpt_grads(m), n * sizeof(float));
  gpt_set_soft_targets(m, R, gpt_probs(other) + (size_t)R * T * tiny.padded_vocab, 0.5f);
  gpt_zero_grad(m);
  gpt_forward(m, x, y, B, T);
  gpt_backward(m);
  double moved = 0;
  for (size_t i = 0; i < n; i++)
    moved = fmax(moved, fabs(full[i] - gpt_grads(m)[i]));
  T_CHECK_MSG(moved > 1e-4 * scale, "moved by %g only", moved);
  free(full);
  gpt_destroy(m), gpt_destroy(self), gpt_destroy(other);
}

static void schedule(void)
{
  T_CHECK(fabsf(gpt_lr_at(1.0f, 10, 110, 0.1f, 1) - 0.1f) < 1e-6f);
  T_CHECK(fabsf(gpt_lr_at(1.0f, 10, 110, 0.1f, 10) - 1.0f) < 1e-6f);
  T_CHECK(fabsf(gpt_lr_at(1.0f, 10, 110, 0.1f, 60) - 0.55f) < 1e-6f); /* half-way: the mean */
  T_CHECK(fabsf(gpt_lr_at(1.0f, 10, 110, 0.1f, 110) - 0.1f) < 1e-6f);
  T_CHECK(fabsf(gpt_lr_at(1.0f, 10, 110, 0.1f, 500) - 0.1f) < 1e-6f);
  double f = gpt_flops_per_token(&tiny, 8);
  T_CHECK(f == 6.0 * gpt_num_params(&tiny) + 6.0 * 2 * 16 * 8);
}

/* a non-finite gradient takes no step: weights and moments stay as they were */
static void no_step_on_nan(void)
{
  gpt *m = make(2, 8, 3);
  int32_t x[16], y[16];
  for (int i = 0; i < 16; i++)
    x[i] = 257 + i % 3, y[i] = (i * 7) % 256;
  gpt_adamw opt = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .grad_clip = 1.0f};
  gpt_zero_grad(m);
  gpt_forward_queue(m, x, y, 2, 8);
  float loss = gpt_mean_loss(m);
  T_CHECK(isfinite(loss) && loss == gpt_forward(m, x, y, 2, 8));
  gpt_backward(m);
  gpt_grads(m)[5] = NAN;
  size_t n = gpt_params_count(m);
  float *before = malloc(n * sizeof *before);
  memcpy(before, gpt_params(m), n * sizeof *before);
  float norm = gpt_update(m, &opt, 1);
  T_CHECK(isnan(norm));
  T_CHECK(memcmp(before, gpt_params(m), n * sizeof *before) == 0);
  T_CHECK(gpt_adam_m(m)[0] == 0.0f && gpt_adam_v(m)[7] == 0.0f);
  free(before);
  gpt_destroy(m);
}

int main(void)
{
  make_batch();
  T_RUN(layout);
  T_RUN(loss_at_init);
  const gpt_config *families[] = {&tiny, &tiny_llama, &tiny_qwen2};
  for (int f = 0; f < 3; f++) {
    cfg = families[f];
    printf("family %s\n", gpt_arch_name(cfg->arch));
    T_RUN(gradients);
    T_RUN(determinism_and_overfit);
    T_RUN(unfreezing);
  }
  cfg = &tiny;
  T_RUN(family_layout);
  T_RUN(schedule);
  T_RUN(discriminative_rates);
  T_RUN(ewc_gradient);
  T_RUN(late_thaw);
  T_RUN(soft_targets);
  T_RUN(no_step_on_nan);
  return T_DONE();
}
