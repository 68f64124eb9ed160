/*
 * loader.c -- training windows drawn from token shards, language by language.
 *
 * Sections of the same language in several shards are sampled as one pool (a
 * window never crosses a section).  Sections shorter than a window are left
 * out.  Half the windows start where a document starts (at its tag), the other
 * half anywhere: generation starts a text from its tag alone, and a window
 * from a random offset teaches the first position only what follows the tag
 * somewhere in a text (a newline, as often as not), not how a text in that
 * language begins.  Deterministic: the whole state is the 64-bit generator.
 */
#include "trainer/trainer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct piece {
  const uint32_t *tok;
  uint64_t count;
} piece;

typedef struct lang_pool {
  char code[8];
  int tag;
  piece *pieces;
  int npieces;
  uint64_t starts; /* window start positions in all pieces */
  uint64_t *docs;  /* those where a document starts (its tag), as such positions */
  uint64_t ndocs;
  double cdf;
} lang_pool;

struct loader {
  lang_pool *langs;
  int nlangs;
  int T;
  uint64_t rng;
};

mn_status loader_create(const shard *shards, int nshards, int T, double alpha, uint64_t seed,
                        loader **out, mn_error *err)
{
  loader *l = calloc(1, sizeof *l);
  *out = NULL;
  if (!l) return mn_error_set(err, MN_ERR_NOMEM, "out of memory creating the data loader");
  l->T = T;
  l->rng = seed;
  for (int s = 0; s < nshards; s++) {
    for (uint32_t i = 0; i < shards[s].nsections; i++) {
      const shard_section *sec = &shards[s].sections[i];
      if (sec->count < (uint64_t)T + 1) continue;
      lang_pool *p = NULL;
      for (int k = 0; k < l->nlangs && !p; k++)
        if (strcmp(l->langs[k].code, sec->code) == 0) p = &l->langs[k];
      if (p && p->tag != sec->tag) {
        loader_destroy(l);
        return mn_error_set(err, MN_ERR_INPUT,
                            "language \"%s\" has tag %d in one shard and %d "
                            "in another",
                            sec->code, p->tag, sec->tag);
      }
      if (!p) {
        lang_pool *g = realloc(l->langs, (size_t)(l->nlangs + 1) * sizeof *g);
        if (!g) goto nomem;
        l->langs = g;
        p = &l->langs[l->nlangs++];
        memset(p, 0, sizeof *p);
        memcpy(p->code, sec->code, sizeof p->code);
        p->tag = sec->tag;
      }
      piece *pc = realloc(p->pieces, (size_t)(p->npieces + 1) * sizeof *pc);
      if (!pc) goto nomem;
      p->pieces = pc;
      p->pieces[p->npieces++] = (piece){shards[s].tokens + sec->first, sec->count};
      const uint32_t *t = shards[s].tokens + sec->first;
      for (uint64_t k = 0; k < sec->count - (uint64_t)T; k++) /* documents start at their tag */
        if (t[k] == (uint32_t)sec->tag) {
          if ((p->ndocs & (p->ndocs - 1)) == 0) { /* 0, 1, 2, 4, ...: grow */
            uint64_t *d = realloc(p->docs, (p->ndocs ? 2 * p->ndocs : 1) * sizeof *d);
            if (!d) goto nomem;
            p->docs = d;
          }
          p->docs[p->ndocs++] = p->starts + k;
        }
      p->starts += sec->count - (uint64_t)T;
    }
  }
  if (l->nlangs == 0) {
    loader_destroy(l);
    return mn_error_set(err, MN_ERR_INPUT,
                        "no language has a section of at least %d tokens to train on", T + 1);
  }
  double total = 0;
  for (int k = 0; k < l->nlangs; k++)
    total += pow((double)l->langs[k].starts, alpha);
  double acc = 0;
  for (int k = 0; k < l->nlangs; k++) {
    acc += pow((double)l->langs[k].starts, alpha) / total;
    l->langs[k].cdf = acc;
  }
  l->langs[l->nlangs - 1].cdf = 1.0;
  *out = l;
  return MN_OK;
nomem:
  loader_destroy(l);
  return mn_error_set(err, MN_ERR_NOMEM, "out of memory creating the data loader");
}

void loader_destroy(loader *l)
{
  if (!l) return;
  for (int k = 0; k < l->nlangs; k++)
    free(l->langs[k].pieces), free(l->langs[k].docs);
  free(l->langs);
  free(l);
}

void loader_next(loader *l, int B, int32_t *tokens, int32_t *targets)
{
  int T = l->T;
  for (int b = 0; b < B; b++) {
    double u = (double)(mn_splitmix64(&l->rng) >> 11) / 9007199254740992.0;
    int k = 0;
    while (k < l->nlangs - 1 && u >= l->langs[k].cdf)
      k++;
    const lang_pool *p = &l->langs[k];
    uint64_t r = mn_splitmix64(&l->rng), pos;
    if ((r & 1) && p->ndocs) /* a document's start */
      pos = p->docs[(r >> 1) % p->ndocs];
    else
      pos = (r >> 1) % p->starts;
    int pi = 0;
    while (pos >= p->pieces[pi].count - (uint64_t)T)
      pos -= p->pieces[pi++].count - (uint64_t)T;
    const uint32_t *w = p->pieces[pi].tok + pos; /* T+1 tokens from here */
    int32_t *x = tokens + (size_t)b * T, *y = targets + (size_t)b * T;
    x[0] = p->tag;
    for (int i = 1; i < T; i++)
      x[i] = w[i];
    for (int i = 0; i < T; i++)
      y[i] = w[i + 1];
  }
}

uint64_t loader_state(const loader *l)
{
  return l->rng;
}
void loader_set_state(loader *l, uint64_t state)
{
  l->rng = state;
}
int loader_languages(const loader *l)
{
  return l->nlangs;
}

double loader_share(const loader *l, int i, const char **code)
{
  *code = l->langs[i].code;
  return l->langs[i].cdf - (i > 0 ? l->langs[i - 1].cdf : 0.0);
}
