/*
 * gpt_layout.c -- the model families' parameter layout: which tensors a family has, their
 * shapes, names and offsets in the one layer-major buffer, and the check of a configuration.
 * gpt.c computes with it; checkpoints and interop name and place tensors by it.
 */
#include "trainer/trainer_int.h"

#include <stdio.h>

const char *gpt_arch_name(gpt_arch a)
{
  static const char *const names[GPT_ARCH_COUNT] = {"gpt2", "llama", "qwen2"};
  return a >= 0 && a < GPT_ARCH_COUNT ? names[a] : "?";
}

bool gpt_block_has(const gpt_config *c, int t)
{
  if (t < 0 || t >= GPT_BLOCK_TENSORS) return false;
  if (gpt__is_gpt2(c)) return true;
  switch (t) {
  case GPT_LN1W:
  case GPT_QKVW:
  case GPT_ATTPROJW:
  case GPT_LN2W:
  case GPT_FCW:
  case GPT_FCPROJW: return true;
  case GPT_QKVB: return c->arch == GPT_ARCH_QWEN2;
  default: return false;
  }
}

int gpt_block_tensors(const gpt_config *c)
{
  int n = 0;
  for (int t = 0; t < GPT_BLOCK_TENSORS; t++)
    n += gpt_block_has(c, t);
  return n;
}

int gpt_lead_tensors(const gpt_config *c)
{
  return gpt__is_gpt2(c) ? 2 : 1;
}

/* block_shape -- tensor t of a block: rows, and columns (0: a vector) */
void gpt__block_shape(const gpt_config *c, int t, size_t *rows, size_t *cols)
{
  size_t C = (size_t)c->n_embd;
  switch (t) {
  case GPT_QKVW: *rows = gpt__qkv_rows(c), *cols = C; return;
  case GPT_QKVB: *rows = gpt__qkv_rows(c), *cols = 0; return;
  case GPT_ATTPROJW: *rows = C, *cols = C; return;
  case GPT_FCW: *rows = gpt__fc_rows(c), *cols = C; return;
  case GPT_FCB: *rows = gpt__fc_rows(c), *cols = 0; return;
  case GPT_FCPROJW: *rows = C, *cols = gpt__ff(c); return;
  default: *rows = C, *cols = 0; return; /* norms and the C-wide biases */
  }
}

size_t gpt__tensor_count(size_t rows, size_t cols)
{
  return rows * (cols ? cols : 1);
}

static size_t block_size(const gpt_config *c)
{
  size_t n = 0, r, k;
  for (int t = 0; t < GPT_BLOCK_TENSORS; t++)
    if (gpt_block_has(c, t)) gpt__block_shape(c, t, &r, &k), n += gpt__tensor_count(r, k);
  return n;
}

static size_t lead_size(const gpt_config *c)
{
  size_t C = (size_t)c->n_embd;
  return (size_t)c->padded_vocab * C + (gpt__is_gpt2(c) ? (size_t)c->max_seq_len * C : 0);
}

static size_t tail_size(const gpt_config *c)
{
  size_t C = (size_t)c->n_embd;
  if (gpt__is_gpt2(c)) return 2 * C;
  return C + (c->untied ? (size_t)c->padded_vocab * C : 0);
}

size_t gpt_num_params(const gpt_config *cfg)
{
  return lead_size(cfg) + (size_t)cfg->n_layer * block_size(cfg) + tail_size(cfg);
}

size_t gpt_block_offset(const gpt_config *cfg, int l)
{
  return lead_size(cfg) + (size_t)l * block_size(cfg);
}

int gpt_num_tensors(const gpt_config *cfg)
{
  int tail = gpt__is_gpt2(cfg) ? 2 : 1 + cfg->untied;
  return gpt_lead_tensors(cfg) + gpt_block_tensors(cfg) * cfg->n_layer + tail;
}

static const char *const block_names[GPT_BLOCK_TENSORS] = {
    "ln_1.weight",        "ln_1.bias",        "attn.c_attn.weight", "attn.c_attn.bias",
    "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight",        "ln_2.bias",
    "mlp.c_fc.weight",    "mlp.c_fc.bias",    "mlp.c_proj.weight",  "mlp.c_proj.bias"};
static const char *const llama_names[GPT_BLOCK_TENSORS] = {
    [GPT_LN1W] = "attn_norm.weight",       [GPT_QKVW] = "attn.qkv.weight",
    [GPT_QKVB] = "attn.qkv.bias",          [GPT_ATTPROJW] = "attn.o_proj.weight",
    [GPT_LN2W] = "mlp_norm.weight",        [GPT_FCW] = "mlp.gate_up.weight",
    [GPT_FCPROJW] = "mlp.down_proj.weight"};

static void set_info(size_t rows, size_t cols, size_t off, size_t shape[2], int *ndim,
                     size_t *offset)
{
  shape[0] = rows, shape[1] = cols, *ndim = cols ? 2 : 1, *offset = off;
}

void gpt_tensor_info(const gpt_config *cfg, int i, char name[64], size_t shape[2], int *ndim,
                     size_t *offset)
{
  size_t C = (size_t)cfg->n_embd, Vp = (size_t)cfg->padded_vocab;
  int L = cfg->n_layer, lead = gpt_lead_tensors(cfg), nb = gpt_block_tensors(cfg);
  if (i == 0) {
    snprintf(name, 64, "wte");
    set_info(Vp, C, 0, shape, ndim, offset);
    return;
  }
  if (i < lead) {
    snprintf(name, 64, "wpe");
    set_info((size_t)cfg->max_seq_len, C, Vp * C, shape, ndim, offset);
    return;
  }
  if (i >= lead + nb * L) { /* the final norm, then an untied head */
    int j = i - lead - nb * L;
    size_t off = gpt_block_offset(cfg, L);
    if (gpt__is_gpt2(cfg)) {
      snprintf(name, 64, "ln_f.%s", j == 0 ? "weight" : "bias");
      set_info(C, 0, off + (j == 0 ? 0 : C), shape, ndim, offset);
    } else if (j == 0) {
      snprintf(name, 64, "norm.weight");
      set_info(C, 0, off, shape, ndim, offset);
    } else {
      snprintf(name, 64, "lm_head.weight");
      set_info(Vp, C, off + C, shape, ndim, offset);
    }
    return;
  }
  int l = (i - lead) / nb, k = (i - lead) % nb, t = 0;
  size_t off = gpt_block_offset(cfg, l), r, c;
  for (;; t++) { /* the k-th tensor the family has, and the offset past those before it */
    if (!gpt_block_has(cfg, t)) continue;
    gpt__block_shape(cfg, t, &r, &c);
    if (k-- == 0) break;
    off += gpt__tensor_count(r, c);
  }
  snprintf(name, 64, "h.%d.%s", l, gpt__is_gpt2(cfg) ? block_names[t] : llama_names[t]);
  set_info(r, c, off, shape, ndim, offset);
}

mn_status gpt_config_check(const gpt_config *c, mn_error *err)
{
  if (c->n_layer < 1 || c->n_layer > 256 || c->n_head < 1 || c->n_head > 256 || c->n_embd < 1 ||
      c->n_embd > 16384 || c->n_embd % c->n_head != 0)
    return mn_error_set(err, MN_ERR_CONFIG,
                        "invalid model shape: %d layers, %d heads, width %d (the width must be a "
                        "multiple of the heads)",
                        c->n_layer, c->n_head, c->n_embd);
  if (c->vocab_size < TOK_FIRST_TAG + 1 || c->padded_vocab < c->vocab_size ||
      c->padded_vocab > TOK_MAX_ID)
    return mn_error_set(err, MN_ERR_CONFIG,
                        "invalid vocabulary: %d tokens padded to %d (need at least %d, padded "
                        "at most %d)",
                        c->vocab_size, c->padded_vocab, TOK_FIRST_TAG + 1, TOK_MAX_ID);
  int max_positions = gpt__is_gpt2(c) ? 65536 : 1 << 24; /* rotary: no table of positions */
  if (c->max_seq_len < 2 || c->max_seq_len > max_positions)
    return mn_error_set(err, MN_ERR_CONFIG, "invalid sequence length %d", c->max_seq_len);
  if (c->arch < 0 || c->arch >= GPT_ARCH_COUNT)
    return mn_error_set(err, MN_ERR_CONFIG, "unknown model family %d", (int)c->arch);
  if (gpt__is_gpt2(c)) {
    if (c->n_kv_head || c->n_ff || c->untied || c->norm_eps != 0.0f || c->rope_theta != 0.0 ||
        c->rope_factor != 0.0)
      return mn_error_set(err, MN_ERR_CONFIG,
                          "a GPT-2 model has no key-value heads, MLP width, untied head, RMSNorm "
                          "or rotary settings");
    return MN_OK;
  }
  size_t hd = gpt__head_dim(c);
  if (c->n_kv_head < 1 || c->n_head % c->n_kv_head != 0 || hd % 2 != 0 || hd > 1024)
    return mn_error_set(err, MN_ERR_CONFIG,
                        "invalid attention: %d query heads, %d key-value heads of width %zu (the "
                        "key-value heads must divide the query heads; a head's width even, at "
                        "most 1024)",
                        c->n_head, c->n_kv_head, hd);
  if (c->n_ff < 1 || c->n_ff > 1 << 18)
    return mn_error_set(err, MN_ERR_CONFIG, "invalid MLP width %d", c->n_ff);
  if (!(c->norm_eps > 0.0f && c->norm_eps < 1.0f))
    return mn_error_set(err, MN_ERR_CONFIG, "invalid RMSNorm epsilon %g", (double)c->norm_eps);
  if (!(c->rope_theta > 1.0 && c->rope_theta < 1e12))
    return mn_error_set(err, MN_ERR_CONFIG, "invalid rope_theta %g", c->rope_theta);
  if (c->rope_factor != 0.0 && !(c->rope_factor >= 1.0 && c->rope_low_freq > 0.0 &&
                                 c->rope_high_freq > c->rope_low_freq && c->rope_orig_max >= 2))
    return mn_error_set(err, MN_ERR_CONFIG,
                        "invalid llama3 rope_scaling: factor %g, low_freq_factor %g, "
                        "high_freq_factor %g, original_max_position_embeddings %d",
                        c->rope_factor, c->rope_low_freq, c->rope_high_freq, c->rope_orig_max);
  return MN_OK;
}

bool gpt_config_equal(const gpt_config *a, const gpt_config *b)
{
  return a->max_seq_len == b->max_seq_len && a->vocab_size == b->vocab_size &&
         a->padded_vocab == b->padded_vocab && a->n_layer == b->n_layer && a->n_head == b->n_head &&
         a->n_embd == b->n_embd && a->arch == b->arch && a->n_kv_head == b->n_kv_head &&
         a->n_ff == b->n_ff && a->untied == b->untied && a->norm_eps == b->norm_eps &&
         a->rope_theta == b->rope_theta && a->rope_factor == b->rope_factor &&
         a->rope_low_freq == b->rope_low_freq && a->rope_high_freq == b->rope_high_freq &&
         a->rope_orig_max == b->rope_orig_max;
}
