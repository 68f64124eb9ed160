/*
 * ewc.c -- the diagonal empirical Fisher of a model, per language, for elastic weight
 * consolidation (trainer.h: fisher_estimate; the penalty itself is fused into
 * gpt_update).
 */
#include "trainer/trainer_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct lang_windows {
  const char *code;
  int tag;
  uint64_t windows; /* whole windows of T + 1 tokens over all its sections */
} lang_windows;

/* window_at -- the j-th window of T + 1 tokens of language code, counting over the shards'
 * sections of that language in order */
static const uint32_t *window_at(const shard *shards, int nshards, const char *code, uint64_t j,
                                 int T)
{
  for (int s = 0; s < nshards; s++)
    for (uint32_t k = 0; k < shards[s].nsections; k++) {
      const shard_section *sec = &shards[s].sections[k];
      if (strcmp(sec->code, code) != 0) continue;
      uint64_t n = sec->count / (uint64_t)(T + 1);
      if (j < n) return shards[s].tokens + sec->first + j * (uint64_t)(T + 1);
      j -= n;
    }
  return NULL;
}

mn_status fisher_estimate(gpt *m, const shard *shards, int nshards, int T, int windows,
                          bool by_share, float *fisher, char *info, size_t info_len, mn_error *err)
{
  size_t np = gpt_params_count(m);
  int nsec = 0;
  for (int s = 0; s < nshards; s++)
    nsec += (int)shards[s].nsections;
  lang_windows *langs = calloc((size_t)nsec + 1, sizeof *langs);
  float *acc = malloc(np * sizeof(float));
  int32_t *x = malloc(sizeof(int32_t) * (size_t)T), *y = malloc(sizeof(int32_t) * (size_t)T);
  json_t *per_lang = json_object();
  mn_status rc = MN_OK;
  if (!langs || !acc || !x || !y || !per_lang) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory estimating the Fisher");
    goto out;
  }
  if (windows < 1) {
    rc = mn_error_set(err, MN_ERR_USAGE, "the Fisher needs at least one window per language");
    goto out;
  }
  int nl = 0;
  uint64_t all = 0;
  for (int s = 0; s < nshards; s++)
    for (uint32_t k = 0; k < shards[s].nsections; k++) {
      const shard_section *sec = &shards[s].sections[k];
      int i = 0;
      while (i < nl && strcmp(langs[i].code, sec->code) != 0)
        i++;
      if (i == nl) langs[nl++] = (lang_windows){.code = sec->code, .tag = sec->tag};
      uint64_t n = sec->count / (uint64_t)(T + 1);
      langs[i].windows += n;
      all += n;
    }
  int used = 0;
  for (int i = 0; i < nl; i++)
    used += langs[i].windows > 0;
  if (used == 0) {
    rc = mn_error_set(err, MN_ERR_INPUT,
                      "no language has a whole window of %d tokens: the Fisher needs text", T + 1);
    goto out;
  }
  gpt_set_trainable(m, -1);
  memset(fisher, 0, np * sizeof(float));
  for (int l = 0; l < nl; l++) {
    uint64_t have = langs[l].windows, k = have < (uint64_t)windows ? have : (uint64_t)windows;
    if (k == 0) continue;
    memset(acc, 0, np * sizeof(float));
    for (uint64_t j = 0; j < k; j++) { /* spread evenly over the language's text */
      const uint32_t *w = window_at(shards, nshards, langs[l].code, j * have / k, T);
      x[0] = langs[l].tag; /* as in training: every sequence starts with its tag */
      for (int t = 1; t < T; t++)
        x[t] = w[t];
      for (int t = 0; t < T; t++)
        y[t] = w[t + 1];
      gpt_zero_grad(m);
      gpt_forward(m, x, y, 1, T);
      gpt_backward(m);
      const float *g = gpt_grads(m); /* the whole model trains: the state begins at 0 */
      if (!g) {
        if ((rc = gpt_sync(m, err)) == MN_OK)
          rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory for the Fisher's gradients");
        goto out;
      }
#pragma omp parallel for simd
      for (size_t i = 0; i < np; i++)
        acc[i] += g[i] * g[i];
    }
    /* the language's mean, weighted: equal, or by its share of the windows */
    float wgt = (float)((by_share ? (double)have / (double)all : 1.0 / used) / (double)k);
#pragma omp parallel for simd
    for (size_t i = 0; i < np; i++)
      fisher[i] += wgt * acc[i];
    json_object_set_new(per_lang, langs[l].code, json_integer((json_int_t)k));
  }
  json_t *j = json_pack("{s:O, s:s, s:i, s:i}", "languages", per_lang, "weighting",
                        by_share ? "share" : "equal", "windows_per_language", windows,
                        "tokens_per_window", T + 1);
  char *text = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  if (!text)
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory describing the Fisher");
  else if (strlen(text) >= info_len)
    rc = mn_error_set(err, MN_ERR_INPUT, "too many languages to describe in the Fisher's metadata");
  else
    memcpy(info, text, strlen(text) + 1);
  free(text);
  json_decref(j);
out:
  json_decref(per_lang);
  free(langs), free(acc), free(x), free(y);
  return rc;
}
