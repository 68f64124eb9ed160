/*
 * gpt.c -- the GPT-2 family model: layout, initialisation, forward, backward,
 * AdamW step with gradient clipping, learning-rate schedule.
 *
 * Memory is allocated in gpt_create: the parameters (one buffer, layer-major), the
 * activations of every layer for the largest batch, and a small set of gradient buffers
 * that the backward pass reuses from the top block down (only the residual stream's
 * gradient travels between blocks).  The gradients and the two AdamW moments cover only a
 * suffix of the parameters, [from, nparams): none until a model first trains, then its
 * trainable part, grown (never shrunk) when unfreezing thaws lower blocks -- a frozen
 * prefix, an evaluation or a distillation teacher costs them nothing.  A step allocates
 * nothing except at such a thaw.
 *
 * The buffers are the backend's (kernels_backend.mem_alloc): host memory for the CPU,
 * device memory for CUDA.  A device-resident model keeps host views of what callers read
 * or write on the host (parameters, moments, gradients, the last forward's losses, probs
 * and logits), copied down on demand when the device's are newer, and up when a caller says
 * it wrote them (gpt_params_written, gpt_opt_written); a step moves only its tokens up and
 * its losses down.  On the CPU a view is the buffer itself and none of this copies.
 *
 * Invariant: tensors follow the order of gpt_tensor_info, so the parameters
 * of blocks l..L-1 plus the final LayerNorm are the contiguous range
 * [gpt_block_offset(l), num_params).
 */
#include "trainer/trainer_int.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PI 3.14159265358979323846

/* ---------------------------------------------------------------- the model */

/* activations of one forward, for up to B x T tokens; per-layer arrays are [L][...] */
typedef struct acts {
  float *encoded;                   /* (B,T,C) */
  float *ln1, *ln1_mean, *ln1_rstd; /* (L,B,T,C), (L,B,T) x2 (RMSNorm: no mean) */
  float *qkv;                       /* (L,B,T,3C): attention's input (rope_qkv's output) */
  float *atty;                      /* (L,B,T,C) */
  float *att;                       /* (L,B,NH,T,T) */
  float *attproj;                   /* (L,B,T,C) */
  float *res2;                      /* (L,B,T,C) */
  float *ln2, *ln2_mean, *ln2_rstd;
  float *fch;      /* (L,B,T,fc_rows): the MLP's first projection */
  float *fch_gelu; /* (L,B,T,F): its activation (GELU, or SwiGLU's product) */
  float *fcproj;   /* (L,B,T,C) */
  float *res3;     /* (L,B,T,C) */
  float *lnf, *lnf_mean, *lnf_rstd;
  float *logits, *probs;      /* (B,T,Vp) */
  float *losses;              /* (B,T) */
  float *rope_cos, *rope_sin; /* (maxT, HD/2): rotary angles (none for GPT-2) */
} acts;

/* gradient buffers reused block by block */
typedef struct grad_bufs {
  float *dres;             /* (B,T,C) the residual stream */
  float *dln, *datty;      /* (B,T,C) */
  float *dqkv;             /* (B,T,3C) */
  float *dfch, *dfch_gelu; /* (B,T,fc_rows), (B,T,F) */
  float *qkvr;             /* (B,T,qkv_rows): the Llama family's projections before rope_qkv
                            * in a forward, their gradient in a backward */
  float *dlogits;          /* (B,T,Vp) */
  float *dlosses;          /* (B,T) */
  float *att_scratch;      /* B*NH*T*T + B*C*(T+80): attention's, fwd and bwd */
} grad_bufs;

/* host views that the device's copies have overtaken */
enum {
  STALE_PARAMS = 1,
  STALE_GRADS = 2,
  STALE_OPT = 4,
  STALE_PROBS = 8,
  STALE_LOGITS = 16,
  STALE_LOSSES = 32
};

struct gpt {
  gpt_config cfg;
  const kernels_backend *k;
  bool host; /* the backend computes in host memory: every view is its buffer */
  unsigned stale;
  float *h_params, *h_grads, *h_m, *h_v; /* host views */
  float *h_losses, *h_probs, *h_logits;  /* host views of the last forward (probs, logits:
                                          * allocated when first asked for) */
  float *h_dlosses;                      /* staging for the loss gradient */
  int32_t *d_tokens, *d_targets;         /* the backend's copies of the last inputs */
  float *d_fisher, *d_anchor, *d_soft;   /* the backend's copies of EWC's and the teacher's */
  const char *failed; /* a setting the device had no room for: gpt_sync reports it */
  float *scalars;     /* the backend's: gradient norm, clipping scale, mean loss */
  int maxB, maxT;
  size_t nparams;
  int first_trainable; /* the lowest trainable block; -1: the embeddings too (the default) */
  const float *ewc_fisher, *ewc_anchor; /* borrowed; NULL: no EWC */
  int64_t *first_step;                  /* per tensor: the step of its first update (0: step 1) */
  float ewc_lambda;
  const float *soft; /* borrowed; NULL: one-hot targets only */
  int soft_row0;
  float soft_w;
  float *params, *grads, *m, *v; /* grads, m, v: parameters [from[i], nparams) */
  size_t from[3];                /* per state array (equal unless a growth failed) */
  size_t lo;                     /* the suffix all three cover: the largest from */
  float *act_mem, *grad_mem;
  size_t act_floats, grad_floats; /* their sizes, for kernels_host_free */
  acts a;
  grad_bufs g;
  /* the last forward */
  const int32_t *tokens;
  const int32_t *targets;
  int B, T;
};

static float normal(uint64_t *s) /* Box-Muller */
{
  double u1 = ((double)(mn_splitmix64(s) >> 11) + 0.5) / 9007199254740992.0;
  double u2 = (double)(mn_splitmix64(s) >> 11) / 9007199254740992.0;
  return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * PI * u2));
}

static void init_params(gpt *m, uint64_t seed)
{
  float *params = m->h_params;
  const gpt_config *c = &m->cfg;
  uint64_t s = seed;
  int n = gpt_num_tensors(c);
  float proj_std = 0.02f / sqrtf(2.0f * (float)c->n_layer);
  for (int i = 0; i < n; i++) {
    char name[64];
    size_t shape[2], off;
    int ndim;
    gpt_tensor_info(c, i, name, shape, &ndim, &off);
    size_t count = shape[0] * (ndim == 2 ? shape[1] : 1);
    float *p = params + off;
    bool is_ln_weight = (strstr(name, "ln_") || strstr(name, "norm")) && strstr(name, ".weight");
    if (ndim == 1) {
      for (size_t j = 0; j < count; j++)
        p[j] = is_ln_weight ? 1.0f : 0.0f;
      continue;
    }
    bool proj = strstr(name, "c_proj.weight") || strstr(name, "o_proj.weight") ||
                strstr(name, "down_proj.weight"); /* into the residual stream */
    float std = proj ? proj_std : 0.02f;
    for (size_t j = 0; j < count; j++)
      p[j] = std * normal(&s);
    if (i == 0 || strcmp(name, "lm_head.weight") == 0) /* padded vocabulary rows: never input,
                                                        * never predicted */
      memset(p + (size_t)c->vocab_size * shape[1], 0,
             (size_t)(c->padded_vocab - c->vocab_size) * shape[1] * sizeof(float));
  }
}

/*
 * rope_tables -- cos and sin of the rotary angles t * freq[i] for the model's positions, in
 * double, then to the backend: freq[i] = theta^(-2i/HD), with Llama 3's scaling where the
 * config has it (Hugging Face's _compute_llama3_parameters: long wavelengths divided by the
 * factor, short ones kept, a smooth blend between).
 */
static mn_status rope_tables(gpt *m, mn_error *err)
{
  const gpt_config *c = &m->cfg;
  size_t hd = gpt__head_dim(c), h = hd / 2, n = (size_t)m->maxT * h;
  double *freq = malloc(h * sizeof *freq);
  float *tab = malloc(2 * n * sizeof *tab);
  if (!freq || !tab) {
    free(freq), free(tab);
    return mn_error_set(err, MN_ERR_NOMEM, "out of memory for the rotary tables");
  }
  for (size_t i = 0; i < h; i++) {
    double f = 1.0 / pow(c->rope_theta, (double)(2 * i) / (double)hd);
    if (c->rope_factor != 0.0) {
      double wavelen = 2 * PI / f, old = (double)c->rope_orig_max;
      double low_wavelen = old / c->rope_low_freq, high_wavelen = old / c->rope_high_freq;
      if (wavelen > low_wavelen) {
        f /= c->rope_factor;
      } else if (wavelen >= high_wavelen) {
        double smooth = (old / wavelen - c->rope_low_freq) / (c->rope_high_freq - c->rope_low_freq);
        f = (1 - smooth) * f / c->rope_factor + smooth * f;
      }
    }
    freq[i] = f;
  }
  for (int t = 0; t < m->maxT; t++)
    for (size_t i = 0; i < h; i++) {
      tab[(size_t)t * h + i] = (float)cos((double)t * freq[i]);
      tab[n + (size_t)t * h + i] = (float)sin((double)t * freq[i]);
    }
  m->k->to_device(m->a.rope_cos, tab, n * sizeof *tab);
  m->k->to_device(m->a.rope_sin, tab + n, n * sizeof *tab);
  free(freq), free(tab);
  return MN_OK;
}

mn_status gpt_create(const gpt_config *cfg, int B, int T, uint64_t seed, const kernels_backend *k,
                     gpt **out, mn_error *err)
{
  mn_status rc = MN_OK;
  gpt *m = NULL;
  *out = NULL;
  if ((rc = gpt_config_check(cfg, err)) != MN_OK) return rc;
  if (B < 1 || T < 1 || T > cfg->max_seq_len)
    return mn_error_set(err, MN_ERR_CONFIG,
                        "batch %d x %d does not fit the model (at most %d "
                        "positions)",
                        B, T, cfg->max_seq_len);
  m = calloc(1, sizeof *m);
  if (!m) return mn_error_set(err, MN_ERR_NOMEM, "out of memory creating the model");
  m->cfg = *cfg;
  m->k = k;
  m->maxB = B;
  m->maxT = T;
  m->nparams = gpt_num_params(cfg);
  m->first_trainable = -1;
  m->lo = m->from[0] = m->from[1] = m->from[2] = m->nparams; /* no state until training */
  m->first_step = calloc((size_t)gpt_num_tensors(cfg), sizeof *m->first_step);
  if (!m->first_step) {
    free(m);
    return mn_error_set(err, MN_ERR_NOMEM, "out of memory creating the model");
  }
  size_t L = (size_t)cfg->n_layer, C = (size_t)cfg->n_embd, NH = (size_t)cfg->n_head;
  size_t Vp = (size_t)cfg->padded_vocab, BT = (size_t)B * T, FR = gpt__fc_rows(cfg),
         F = gpt__ff(cfg);
  size_t QR = gpt__is_gpt2(cfg) ? 0 : gpt__qkv_rows(cfg),
         ROPE = gpt__is_gpt2(cfg) ? 0 : (size_t)T * gpt__head_dim(cfg) / 2;

  /* params: one allocation, the backend's (the state arrays come with training) */
  m->host = k->host_memory;
  size_t pb = m->nparams * sizeof(float);
  m->params = k->mem_alloc(pb);
  bool views = true;
  if (m->host) {
    m->h_params = m->params;
  } else {
    m->h_params = kernels_host_alloc(pb);
    m->h_losses = malloc(BT * sizeof(float)), m->h_dlosses = malloc(BT * sizeof(float));
    m->d_tokens = k->mem_alloc(BT * sizeof(int32_t));
    m->d_targets = k->mem_alloc(BT * sizeof(int32_t));
    views = m->h_params && m->h_losses && m->h_dlosses && m->d_tokens && m->d_targets;
  }

  size_t sizes[] = {
      BT * C, /* encoded */
      L * BT * C,
      L * BT,
      L * BT,                             /* ln1 */
      L * BT * 3 * C,                     /* qkv */
      L * BT * C,                         /* atty */
      L * (size_t)B * NH * (size_t)T * T, /* att */
      L * BT * C,
      L * BT * C, /* attproj, res2 */
      L * BT * C,
      L * BT,
      L * BT, /* ln2 */
      L * BT * FR,
      L * BT * F, /* fch, fch_gelu */
      L * BT * C,
      L * BT * C, /* fcproj, res3 */
      BT * C,
      BT,
      BT, /* lnf */
      BT * Vp,
      BT * Vp,
      BT, /* logits, probs, losses */
      ROPE,
      ROPE, /* rope_cos, rope_sin */
  };
  float **slots[] = {&m->a.encoded,  &m->a.ln1,      &m->a.ln1_mean, &m->a.ln1_rstd, &m->a.qkv,
                     &m->a.atty,     &m->a.att,      &m->a.attproj,  &m->a.res2,     &m->a.ln2,
                     &m->a.ln2_mean, &m->a.ln2_rstd, &m->a.fch,      &m->a.fch_gelu, &m->a.fcproj,
                     &m->a.res3,     &m->a.lnf,      &m->a.lnf_mean, &m->a.lnf_rstd, &m->a.logits,
                     &m->a.probs,    &m->a.losses,   &m->a.rope_cos, &m->a.rope_sin};
  size_t total = 0, n = sizeof sizes / sizeof sizes[0];
  for (size_t i = 0; i < n; i++)
    total += sizes[i];
  m->act_floats = total;
  m->act_mem = k->mem_alloc(total * sizeof(float));
  m->scalars = k->mem_alloc(4 * sizeof(float));
  size_t gsizes[] = {
      BT * C, BT * C,  BT * C, BT * 3 * C, BT * FR,
      BT * F, BT * Vp, BT,     BT * QR,    (size_t)B * NH * T * T + (size_t)B * C * (T + 80)};
  float **gslots[] = {&m->g.dres,      &m->g.dln,     &m->g.datty,   &m->g.dqkv, &m->g.dfch,
                      &m->g.dfch_gelu, &m->g.dlogits, &m->g.dlosses, &m->g.qkvr, &m->g.att_scratch};
  size_t gtotal = 0, gn = sizeof gsizes / sizeof gsizes[0];
  for (size_t i = 0; i < gn; i++)
    gtotal += gsizes[i];
  m->grad_floats = gtotal;
  m->grad_mem = k->mem_alloc(gtotal * sizeof(float));
  if (!m->params || !m->act_mem || !m->grad_mem || !m->scalars || !views) {
    rc = mn_error_set(err, MN_ERR_NOMEM,
                      "out of memory for a model of %zu parameters and %.0f MB of activations",
                      m->nparams, (double)(total + gtotal) * 4 / 1e6);
    goto out;
  }
  float *p = m->act_mem;
  for (size_t i = 0; i < n; i++)
    *slots[i] = p, p += sizes[i];
  p = m->grad_mem;
  for (size_t i = 0; i < gn; i++)
    *gslots[i] = p, p += gsizes[i];
  init_params(m, seed);
  gpt_params_written(m);
  if (!gpt__is_gpt2(cfg) && (rc = rope_tables(m, err)) != MN_OK) goto out;
  *out = m;
  m = NULL;
out:
  gpt_destroy(m);
  return rc;
}

void gpt_destroy(gpt *m)
{
  if (!m) return;
  const kernels_backend *k = m->k;
  size_t pb = m->nparams * sizeof(float), BT = (size_t)m->maxB * m->maxT;
  size_t BTV = BT * (size_t)m->cfg.padded_vocab * sizeof(float);
  k->mem_free(m->params, pb);
  float *bufs[3] = {m->grads, m->m, m->v}, *hviews[3] = {m->h_grads, m->h_m, m->h_v};
  for (int i = 0; i < 3; i++) {
    size_t sb = (m->nparams - m->from[i]) * sizeof(float);
    if (m->from[i] == m->nparams) continue;
    k->mem_free(bufs[i], sb);
    if (!m->host) kernels_host_free(hviews[i], sb);
  }
  k->mem_free(m->act_mem, m->act_floats * sizeof(float));
  k->mem_free(m->grad_mem, m->grad_floats * sizeof(float));
  k->mem_free(m->scalars, 4 * sizeof(float));
  if (!m->host) {
    kernels_host_free(m->h_params, pb);
    kernels_host_free(m->h_probs, BTV), kernels_host_free(m->h_logits, BTV);
    free(m->h_losses), free(m->h_dlosses);
    k->mem_free(m->d_tokens, BT * sizeof(int32_t)), k->mem_free(m->d_targets, BT * sizeof(int32_t));
    k->mem_free(m->d_fisher, pb), k->mem_free(m->d_anchor, pb);
    k->mem_free(m->d_soft, BTV); /* maxB x maxT x Vp, as gpt_set_soft_targets made it */
  }
  free(m->first_step);
  free(m);
}

/* down -- bring a stale host view up to date */
static void down(gpt *m, unsigned what, float *view, const float *buf, size_t floats)
{
  if (!(m->stale & what)) return;
  m->k->to_host(view, buf, floats * sizeof(float));
  m->stale &= ~what;
}

void gpt_params_written(gpt *m)
{
  m->stale &= ~STALE_PARAMS;
  if (!m->host) m->k->to_device(m->params, m->h_params, m->nparams * sizeof(float));
}

/* state_from -- gradients and moments for parameters [off, nparams): each array grown in
 * turn (its values kept, the new part zero), so that a thaw holds at most one old array
 * beside its successor; false, with m->failed set for gpt_sync, when out of memory */
static bool state_from(gpt *m, size_t off)
{
  if (off >= m->lo) return true;
  if (m->failed) return false;
  const kernels_backend *k = m->k;
  if (!m->host) { /* the device's values down first: the copy is made on the host */
    size_t n = m->nparams - m->lo;
    if (n) down(m, STALE_GRADS, m->h_grads, m->grads, n);
    if (n && (m->stale & STALE_OPT)) {
      k->to_host(m->h_m, m->m, n * sizeof(float));
      k->to_host(m->h_v, m->v, n * sizeof(float));
    }
    m->stale &= ~(unsigned)(STALE_GRADS | STALE_OPT);
  }
  float **bufs[3] = {&m->grads, &m->m, &m->v}, **hviews[3] = {&m->h_grads, &m->h_m, &m->h_v};
  size_t nb = (m->nparams - off) * sizeof(float);
  for (int i = 0; i < 3; i++) {
    size_t old = m->nparams - m->from[i], head = m->from[i] - off;
    float *view = m->host ? k->mem_alloc(nb) : kernels_host_alloc(nb);
    float *buf = m->host ? view : k->mem_alloc(nb);
    if (!view || !buf) {
      if (m->host)
        k->mem_free(view, nb);
      else
        kernels_host_free(view, nb), k->mem_free(buf, nb);
      m->failed = "out of memory for the gradients and optimizer moments of the trainable "
                  "blocks";
      return false;
    }
    memset(view, 0, head * sizeof(float));
    if (old) memcpy(view + head, *hviews[i], old * sizeof(float));
    if (!m->host) k->to_device(buf, view, nb);
    if (old) {
      k->mem_free(*bufs[i], old * sizeof(float));
      if (!m->host) kernels_host_free(*hviews[i], old * sizeof(float));
    }
    *bufs[i] = buf, *hviews[i] = view, m->from[i] = off;
  }
  m->lo = off;
  return true;
}

/* state_at -- the state array buf's entry for parameter i (i >= m->lo) */
static float *state_at(const gpt *m, float *buf, size_t i)
{
  assert(i >= m->lo && i <= m->nparams);
  return buf + (i - m->lo);
}

mn_status gpt_reserve_state(gpt *m, size_t from, mn_error *err)
{
  if (from > m->nparams) from = m->nparams;
  if (!state_from(m, from))
    return mn_error_set(err, MN_ERR_NOMEM, "%s (%zu parameters)", m->failed, m->nparams - from);
  return MN_OK;
}

size_t gpt_state_from(const gpt *m)
{
  return m->lo;
}

void gpt_opt_written(gpt *m)
{
  m->stale &= ~STALE_OPT;
  if (m->host || m->lo == m->nparams) return;
  m->k->to_device(m->m, m->h_m, (m->nparams - m->lo) * sizeof(float));
  m->k->to_device(m->v, m->h_v, (m->nparams - m->lo) * sizeof(float));
}

float *gpt_grads_backend(gpt *m, size_t *n)
{
  size_t off = gpt_trainable_offset(m);
  *n = 0;
  if (!state_from(m, off)) return NULL;
  *n = m->nparams - off;
  if (!m->host) m->stale |= STALE_GRADS; /* the caller changes them there */
  return state_at(m, m->grads, off);
}

mn_status gpt_sync(gpt *m, mn_error *err)
{
  if (m->failed) return mn_error_set(err, MN_ERR_NOMEM, "%s", m->failed);
  return m->k->sync(err);
}

const gpt_config *gpt_get_config(const gpt *m)
{
  return &m->cfg;
}
float *gpt_params(gpt *m)
{
  down(m, STALE_PARAMS, m->h_params, m->params, m->nparams);
  return m->h_params;
}
/* some_state -- the state as it stands; the trainable part's when there is none yet (none
 * at all once the model failed: a growth cut short leaves the arrays of unequal lengths) */
static bool some_state(gpt *m)
{
  if (m->failed) return false;
  return m->lo < m->nparams || state_from(m, gpt_trainable_offset(m));
}

float *gpt_grads(gpt *m)
{
  if (!some_state(m)) return NULL;
  down(m, STALE_GRADS, m->h_grads, m->grads, m->nparams - m->lo);
  return m->h_grads;
}
float *gpt_adam_m(gpt *m)
{
  if (!some_state(m)) return NULL;
  if (m->stale & STALE_OPT) {
    m->k->to_host(m->h_m, m->m, (m->nparams - m->lo) * sizeof(float));
    m->k->to_host(m->h_v, m->v, (m->nparams - m->lo) * sizeof(float));
    m->stale &= ~STALE_OPT;
  }
  return m->h_m;
}
float *gpt_adam_v(gpt *m)
{
  return gpt_adam_m(m) ? m->h_v : NULL;
}
size_t gpt_params_count(const gpt *m)
{
  return m->nparams;
}
const float *gpt_losses(const gpt *m)
{
  if (m->host) return m->a.losses;
  gpt *w = (gpt *)m; /* a view is a cache: filling it changes nothing the caller sees */
  down(w, STALE_LOSSES, w->h_losses, m->a.losses, (size_t)m->B * m->T);
  return m->h_losses;
}

/* view -- a host view of the last forward's (B,T,Vp) array, allocated when first asked for */
static const float *view(gpt *m, unsigned what, float **h, const float *buf)
{
  if (m->host) return buf;
  size_t n = (size_t)m->maxB * m->maxT * (size_t)m->cfg.padded_vocab;
  if (!*h && !(*h = kernels_host_alloc(n * sizeof(float)))) return NULL;
  down(m, what, *h, buf, (size_t)m->B * m->T * (size_t)m->cfg.padded_vocab);
  return *h;
}
const float *gpt_probs(const gpt *m)
{
  gpt *w = (gpt *)m; /* a view is a cache: filling it changes nothing the caller sees */
  return view(w, STALE_PROBS, &w->h_probs, m->a.probs);
}
const float *gpt_logits(const gpt *m)
{
  gpt *w = (gpt *)m;
  return view(w, STALE_LOGITS, &w->h_logits, m->a.logits);
}

/* pointers to block l's tensors in buffer base (params, or grads, which begin at parameter
 * from) */
typedef struct block_ptrs {
  float *t[GPT_BLOCK_TENSORS];
} block_ptrs;

static block_ptrs block_of(const gpt_config *c, float *base, size_t from, int l)
{
  block_ptrs b;
  assert(gpt_block_offset(c, l) >= from);
  float *p = base + (gpt_block_offset(c, l) - from);
  for (int i = 0; i < GPT_BLOCK_TENSORS; i++) {
    b.t[i] = NULL;
    if (!gpt_block_has(c, i)) continue;
    size_t r, k;
    gpt__block_shape(c, i, &r, &k);
    b.t[i] = p;
    p += gpt__tensor_count(r, k);
  }
  return b;
}

/* the output head in buffer base (beginning at parameter from): wte when tied, else the
 * untied head after the final norm */
static float *head_of(const gpt_config *c, float *base, size_t from)
{
  size_t at = c->untied ? gpt_block_offset(c, c->n_layer) + (size_t)c->n_embd : 0;
  assert(at >= from);
  return base + (at - from);
}

/* norm_forward -- the family's norm (LayerNorm with mean and rstd, or RMSNorm with rstd),
 * fused with the residual sum before it when a is not NULL (res = a + b, then the norm) */
static void norm_forward(const gpt *m, float *res, float *out, float *mean, float *rstd,
                         const float *a, const float *b, const float *w, const float *bias, int N)
{
  const kernels_backend *k = m->k;
  int C = m->cfg.n_embd;
  if (gpt__is_gpt2(&m->cfg)) {
    if (a)
      k->residual_layernorm_forward(res, out, mean, rstd, a, b, w, bias, N, C);
    else
      k->layernorm_forward(out, mean, rstd, b, w, bias, N, C);
  } else if (a) {
    k->residual_rmsnorm_forward(res, out, rstd, a, b, w, N, C, m->cfg.norm_eps);
  } else {
    k->rmsnorm_forward(out, rstd, b, w, N, C, m->cfg.norm_eps);
  }
}

static void norm_backward(const gpt *m, float *dinp, float *dw, float *db, const float *dout,
                          const float *inp, const float *w, const float *mean, const float *rstd,
                          int N)
{
  int C = m->cfg.n_embd;
  if (gpt__is_gpt2(&m->cfg))
    m->k->layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
  else
    m->k->rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, C);
}

void gpt_forward_queue(gpt *m, const int32_t *tokens, const int32_t *targets, int B, int T)
{
  const kernels_backend *k = m->k;
  const gpt_config *c = &m->cfg;
  assert(B <= m->maxB && T <= m->maxT);
  int L = c->n_layer, C = c->n_embd, NH = c->n_head, V = c->vocab_size, Vp = c->padded_vocab;
  int N = B * T;
  size_t BTC = (size_t)N * C;
  acts *a = &m->a;
  if (!m->host) { /* the step's inputs up; the views of its outputs stale */
    k->to_device(m->d_tokens, tokens, (size_t)N * sizeof *tokens);
    if (targets) k->to_device(m->d_targets, targets, (size_t)N * sizeof *targets);
    tokens = m->d_tokens;
    targets = targets ? m->d_targets : NULL;
    m->stale |= STALE_PROBS | STALE_LOGITS | STALE_LOSSES;
  }
  m->tokens = tokens;
  m->targets = targets;
  m->B = B;
  m->T = T;

  float *wte = m->params, *wpe = gpt__is_gpt2(c) ? m->params + (size_t)Vp * C : NULL;
  k->encoder_forward(a->encoded, tokens, wte, wpe, B, T, C);
  const float *res = a->encoded;
  float *lnfw = m->params + gpt_block_offset(c, L), *lnfb = gpt__is_gpt2(c) ? lnfw + C : NULL;
  int KVH = gpt__kv_heads(c), HD = (int)gpt__head_dim(c), F = (int)gpt__ff(c),
      FR = (int)gpt__fc_rows(c);
  /* each residual sum is fused with the norm that reads it: the attention's with ln_2, the
   * MLP's with the next block's ln_1 (or ln_f after the last block) */
  block_ptrs w0 = block_of(c, m->params, 0, 0);
  norm_forward(m, NULL, a->ln1, a->ln1_mean, a->ln1_rstd, NULL, res, w0.t[GPT_LN1W], w0.t[GPT_LN1B],
               N);
  for (int l = 0; l < L; l++) {
    block_ptrs w = block_of(c, m->params, 0, l);
    size_t lN = (size_t)l * N;
    float *ln1 = a->ln1 + l * BTC, *qkv = a->qkv + l * BTC * 3, *atty = a->atty + l * BTC;
    float *att = a->att + (size_t)l * B * NH * T * T, *attproj = a->attproj + l * BTC;
    float *res2 = a->res2 + l * BTC, *ln2 = a->ln2 + l * BTC, *fch = a->fch + lN * FR;
    float *fch_gelu = a->fch_gelu + lN * F, *fcproj = a->fcproj + l * BTC;
    float *res3 = a->res3 + l * BTC;
    if (gpt__is_gpt2(c)) {
      k->matmul_forward(qkv, ln1, w.t[GPT_QKVW], w.t[GPT_QKVB], N, C, 3 * C);
    } else { /* grouped-query projections, then rotated and repeated into attention's input */
      k->matmul_forward(m->g.qkvr, ln1, w.t[GPT_QKVW], w.t[GPT_QKVB], N, C, (NH + 2 * KVH) * HD);
      k->rope_qkv_forward(qkv, m->g.qkvr, a->rope_cos, a->rope_sin, B, T, NH, KVH, HD);
    }
    k->attention_forward(atty, att, m->g.att_scratch, qkv, B, T, C, NH);
    k->matmul_forward(attproj, atty, w.t[GPT_ATTPROJW], w.t[GPT_ATTPROJB], N, C, C);
    norm_forward(m, res2, ln2, a->ln2_mean + lN, a->ln2_rstd + lN, res, attproj, w.t[GPT_LN2W],
                 w.t[GPT_LN2B], N);
    k->matmul_forward(fch, ln2, w.t[GPT_FCW], w.t[GPT_FCB], N, C, FR);
    if (gpt__is_gpt2(c))
      k->gelu_forward(fch_gelu, fch, (size_t)N * F);
    else
      k->swiglu_forward(fch_gelu, fch, N, F);
    k->matmul_forward(fcproj, fch_gelu, w.t[GPT_FCPROJW], w.t[GPT_FCPROJB], N, F, C);
    if (l + 1 < L) {
      block_ptrs wn = block_of(c, m->params, 0, l + 1);
      norm_forward(m, res3, a->ln1 + (l + 1) * BTC, a->ln1_mean + lN + N, a->ln1_rstd + lN + N,
                   res2, fcproj, wn.t[GPT_LN1W], wn.t[GPT_LN1B], N);
    } else {
      norm_forward(m, res3, a->lnf, a->lnf_mean, a->lnf_rstd, res2, fcproj, lnfw, lnfb, N);
    }
    res = res3;
  }
  k->matmul_forward(a->logits, a->lnf, head_of(c, m->params, 0), NULL, N, C, Vp);
  if (targets) k->crossentropy_forward(a->losses, a->probs, a->logits, targets, N, V, Vp);
}

float gpt_mean_loss(gpt *m)
{
  int N = m->B * m->T;
  if (m->host) { /* in order, as it always was */
    double sum = 0;
    for (int i = 0; i < N; i++)
      sum += m->a.losses[i];
    return (float)(sum / N);
  }
  float loss; /* reduced there, one float down: the step's only wait */
  m->k->mean(m->scalars + 2, m->a.losses, (size_t)N);
  m->k->to_host(&loss, m->scalars + 2, sizeof loss);
  return loss;
}

float gpt_forward(gpt *m, const int32_t *tokens, const int32_t *targets, int B, int T)
{
  gpt_forward_queue(m, tokens, targets, B, T);
  return targets ? gpt_mean_loss(m) : -1.0f;
}

void gpt_set_trainable(gpt *m, int first)
{
  int L = m->cfg.n_layer;
  m->first_trainable = first < -1 ? -1 : (first > L ? L : first);
  if (m->lo < m->nparams) state_from(m, gpt_trainable_offset(m)); /* a thaw: grown now */
}

int gpt_trainable_first(const gpt *m)
{
  return m->first_trainable;
}

size_t gpt_trainable_offset(const gpt *m)
{
  return m->first_trainable < 0 ? 0 : gpt_block_offset(&m->cfg, m->first_trainable);
}

void gpt_set_first_step(gpt *m, int tensor, int64_t step)
{
  if (tensor >= 0 && tensor < gpt_num_tensors(&m->cfg)) m->first_step[tensor] = step;
}

void gpt_set_ewc(gpt *m, const float *fisher, const float *anchor, float lambda)
{
  bool on = fisher && anchor && lambda != 0.0f;
  m->ewc_fisher = on ? fisher : NULL;
  m->ewc_anchor = on ? anchor : NULL;
  m->ewc_lambda = on ? lambda : 0.0f;
  if (on && !m->host) { /* the device reads copies, made now */
    size_t pb = m->nparams * sizeof(float);
    if (!m->d_fisher) m->d_fisher = m->k->mem_alloc(pb);
    if (!m->d_anchor) m->d_anchor = m->k->mem_alloc(pb);
    if (!m->d_fisher || !m->d_anchor) { /* no room: the next gpt_sync fails the run */
      m->ewc_fisher = m->ewc_anchor = NULL;
      m->ewc_lambda = 0.0f;
      m->failed = "out of device memory for EWC's Fisher and anchor";
      return;
    }
    m->k->to_device(m->d_fisher, fisher, pb);
    m->k->to_device(m->d_anchor, anchor, pb);
  }
}

void gpt_set_soft_targets(gpt *m, int row0, const float *soft, float w)
{
  bool on = soft && w > 0.0f;
  m->soft = on ? soft : NULL;
  m->soft_row0 = on ? row0 : 0;
  m->soft_w = on ? w : 0.0f;
  if (on && !m->host && !m->d_soft) { /* once, here: a step allocates nothing */
    size_t n = (size_t)m->maxB * m->maxT * (size_t)m->cfg.padded_vocab;
    m->d_soft = m->k->mem_alloc(n * sizeof(float));
    if (!m->d_soft) {
      m->soft = NULL, m->soft_w = 0.0f;
      m->failed = "out of device memory for the teacher's probabilities";
    }
  }
}

double gpt_ewc_penalty(const gpt *m)
{
  if (!m->ewc_fisher) return 0.0;
  double sum = 0;
  const float *params = gpt_params((gpt *)m); /* a view: filling it changes nothing seen */
  for (size_t i = gpt_trainable_offset(m); i < m->nparams; i++) {
    double d = (double)params[i] - m->ewc_anchor[i];
    sum += m->ewc_fisher[i] * d * d;
  }
  return 0.5 * m->ewc_lambda * sum;
}

void gpt_zero_grad(gpt *m)
{
  size_t off = gpt_trainable_offset(m); /* frozen gradients are never computed or read */
  if (!state_from(m, off)) return;
  m->k->mem_zero(state_at(m, m->grads, off), (m->nparams - off) * sizeof(float));
  if (!m->host) m->stale |= STALE_GRADS;
}

void gpt_backward(gpt *m)
{
  const kernels_backend *k = m->k;
  const gpt_config *c = &m->cfg;
  assert(m->targets); /* backward needs the loss of a forward with targets */
  if (!state_from(m, gpt_trainable_offset(m))) return; /* gpt_sync says why */
  int B = m->B, T = m->T, L = c->n_layer, C = c->n_embd, NH = c->n_head;
  int V = c->vocab_size, Vp = c->padded_vocab, N = B * T;
  size_t BTC = (size_t)N * C;
  acts *a = &m->a;
  grad_bufs *g = &m->g;

  float *dl = m->host ? g->dlosses : m->h_dlosses;
  for (int i = 0; i < N; i++)
    dl[i] = 1.0f / (float)N;
  if (!m->host) k->to_device(g->dlosses, dl, (size_t)N * sizeof(float));
  int hard = m->soft && m->soft_row0 < B ? m->soft_row0 * T : N; /* rows with one-hot targets */
  if (hard > 0)
    k->crossentropy_backward(g->dlogits, a->probs, g->dlosses, m->targets, NULL, 0.0f, hard, V, Vp);
  const float *soft = m->soft;
  if (hard < N && !m->host) { /* the teacher's probabilities up (a host view) */
    k->to_device(m->d_soft, soft, (size_t)(N - hard) * Vp * sizeof(float));
    soft = m->d_soft;
  }
  if (hard < N)
    k->crossentropy_backward(g->dlogits + (size_t)hard * Vp, a->probs + (size_t)hard * Vp,
                             g->dlosses + hard, m->targets + hard, soft, m->soft_w, N - hard, V,
                             Vp);
  bool embeddings = m->first_trainable < 0; /* then the state begins at parameter 0 */
  float *dwte = m->grads, *dwpe = gpt__is_gpt2(c) && embeddings ? m->grads + (size_t)Vp * C : NULL;
  /* the head's gradient: an untied head is always trainable (it follows the final norm); a
   * tied one is the embeddings */
  k->matmul_backward(g->dln, c->untied || embeddings ? head_of(c, m->grads, m->lo) : NULL, NULL,
                     g->dlogits, a->lnf, head_of(c, m->params, 0), N, C, Vp);
  const float *res_last = L > 0 ? a->res3 + (size_t)(L - 1) * BTC : a->encoded;
  float *lnfw = m->params + gpt_block_offset(c, L);
  float *dlnfw = state_at(m, m->grads, gpt_block_offset(c, L));
  k->mem_zero(g->dres, BTC * sizeof(float));
  norm_backward(m, g->dres, dlnfw, gpt__is_gpt2(c) ? dlnfw + C : NULL, g->dln, res_last, lnfw,
                a->lnf_mean, a->lnf_rstd, N);
  int KVH = gpt__kv_heads(c), HD = (int)gpt__head_dim(c), F = (int)gpt__ff(c),
      FR = (int)gpt__fc_rows(c);

  /* backward stops at the lowest trainable block: frozen blocks cost nothing */
  int lowest = m->first_trainable < 0 ? 0 : m->first_trainable;
  for (int l = L - 1; l >= lowest; l--) {
    block_ptrs w = block_of(c, m->params, 0, l), dw = block_of(c, m->grads, m->lo, l);
    size_t lN = (size_t)l * N;
    const float *res_in = l == 0 ? a->encoded : a->res3 + (size_t)(l - 1) * BTC;
    float *ln1 = a->ln1 + l * BTC, *qkv = a->qkv + l * BTC * 3, *atty = a->atty + l * BTC;
    float *att = a->att + (size_t)l * B * NH * T * T, *res2 = a->res2 + l * BTC;
    float *ln2 = a->ln2 + l * BTC, *fch = a->fch + lN * FR;
    float *fch_gelu = a->fch_gelu + lN * F;
    /* MLP: dres holds d(res3); the residual passes it through unchanged */
    k->matmul_backward(g->dfch_gelu, dw.t[GPT_FCPROJW], dw.t[GPT_FCPROJB], g->dres, fch_gelu,
                       w.t[GPT_FCPROJW], N, F, C);
    if (gpt__is_gpt2(c))
      k->gelu_backward(g->dfch, fch, g->dfch_gelu, (size_t)N * F);
    else
      k->swiglu_backward(g->dfch, fch, g->dfch_gelu, N, F);
    k->matmul_backward(g->dln, dw.t[GPT_FCW], dw.t[GPT_FCB], g->dfch, ln2, w.t[GPT_FCW], N, C, FR);
    norm_backward(m, g->dres, dw.t[GPT_LN2W], dw.t[GPT_LN2B], g->dln, res2, w.t[GPT_LN2W],
                  a->ln2_mean + lN, a->ln2_rstd + lN, N); /* dres is now d(res2) */
    /* attention */
    k->matmul_backward(g->datty, dw.t[GPT_ATTPROJW], dw.t[GPT_ATTPROJB], g->dres, atty,
                       w.t[GPT_ATTPROJW], N, C, C);
    k->attention_backward(g->dqkv, g->att_scratch, g->datty, qkv, att, B, T, C, NH);
    if (gpt__is_gpt2(c)) {
      k->matmul_backward(g->dln, dw.t[GPT_QKVW], dw.t[GPT_QKVB], g->dqkv, ln1, w.t[GPT_QKVW], N, C,
                         3 * C);
    } else {
      k->rope_qkv_backward(g->qkvr, g->dqkv, a->rope_cos, a->rope_sin, B, T, NH, KVH, HD);
      k->matmul_backward(g->dln, dw.t[GPT_QKVW], dw.t[GPT_QKVB], g->qkvr, ln1, w.t[GPT_QKVW], N, C,
                         (NH + 2 * KVH) * HD);
    }
    norm_backward(m, g->dres, dw.t[GPT_LN1W], dw.t[GPT_LN1B], g->dln, res_in, w.t[GPT_LN1W],
                  a->ln1_mean + lN, a->ln1_rstd + lN, N); /* dres is now d(res_in) */
  }
  if (embeddings) k->encoder_backward(dwte, dwpe, g->dres, m->tokens, B, T, C);
  if (!m->host) m->stale |= STALE_GRADS;
}

float gpt_grad_norm(gpt *m)
{
  size_t off = gpt_trainable_offset(m);
  if (!state_from(m, off)) return NAN;
  return (float)sqrt(m->k->sum_squares(state_at(m, m->grads, off), m->nparams - off));
}

float gpt_update(gpt *m, const gpt_adamw *o, int t)
{
  int n = gpt_num_tensors(&m->cfg), L = m->cfg.n_layer;
  size_t first = gpt_trainable_offset(m);
  float norm = 0.0f, scale = 1.0f;
  const float *scale_at = NULL;
  if (!state_from(m, first)) return NAN; /* no step: gpt_sync says why */
  if (m->host) {
    norm = gpt_grad_norm(m);
    if (!isfinite(norm)) return norm; /* no step on a non-finite gradient */
    scale = o->grad_clip > 0 && norm > o->grad_clip ? o->grad_clip / norm : 1.0f;
  } else { /* the norm and the scale stay on the device: the updates read them there */
    m->k->clip_scale(m->scalars, state_at(m, m->grads, first), m->nparams - first, o->grad_clip);
    scale_at = m->scalars + 1;
  }
  for (int i = 0; i < n; i++) {
    char name[64];
    size_t shape[2], off;
    int ndim;
    gpt_tensor_info(&m->cfg, i, name, shape, &ndim, &off);
    if (off < first) continue; /* frozen: its value, moments and all stay as they are */
    size_t count = shape[0] * (ndim == 2 ? shape[1] : 1);
    float wd = ndim == 2 ? o->weight_decay : 0.0f; /* no decay on biases and LayerNorms */
    /* discriminative rates: the final LayerNorm and the top block at lr, each block below
     * divided by lr_factor once more, the embeddings by lr_factor^L */
    int lead = gpt_lead_tensors(&m->cfg), nb = gpt_block_tensors(&m->cfg);
    int depth = i < lead ? L : (i >= lead + nb * L ? 0 : L - 1 - (i - lead) / nb);
    float lr = o->lr_factor > 1.0f ? o->lr / powf(o->lr_factor, (float)depth) : o->lr;
    const float *F = m->host ? m->ewc_fisher : m->d_fisher;
    const float *A = m->host ? m->ewc_anchor : m->d_anchor;
    kernels_ewc ewc = {m->ewc_fisher ? F + off : NULL, m->ewc_fisher ? A + off : NULL,
                       m->ewc_lambda};
    /* Adam's bias correction counts this tensor's own updates: one that thaws late starts
     * from zero moments like any other */
    int64_t t0 = m->first_step[i] > 0 ? m->first_step[i] : 1;
    int tl = t >= t0 ? (int)(t - t0 + 1) : 1;
    m->k->adamw_update(m->params + off, state_at(m, m->grads, off), state_at(m, m->m, off),
                       state_at(m, m->v, off), count, lr, o->beta1, o->beta2, o->eps, wd, scale,
                       scale_at, tl, m->ewc_fisher ? &ewc : NULL);
  }
  if (!m->host) { /* the norm down once the step is queued: the wait is at its end */
    m->stale |= STALE_PARAMS | STALE_OPT;
    m->k->to_host(&norm, m->scalars, sizeof norm);
  }
  return norm;
}

float gpt_lr_at(float lr, int warmup, int total, float min_frac, int t)
{
  if (warmup > 0 && t <= warmup) return lr * (float)t / (float)warmup;
  if (total <= warmup) return lr;
  double progress = (double)(t - warmup) / (double)(total - warmup);
  if (progress > 1) progress = 1;
  double cosine = 0.5 * (1.0 + cos(PI * progress));
  return (float)(lr * (min_frac + (1.0 - min_frac) * cosine));
}

double gpt_flops_per_token(const gpt_config *c, int T)
{
  /* an untied model's input embeddings are a lookup: no products */
  double n = (double)gpt_num_params(c) - (c->untied ? (double)c->padded_vocab * c->n_embd : 0.0);
  return 6.0 * n + 6.0 * c->n_layer * (double)c->n_embd * T;
}
