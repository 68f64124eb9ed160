/*
 * bpe_train.c -- learning a language-balanced byte-level BPE (tok_bpe_train).
 *
 * Not the encoder: bpe.c reads a tokenizer.json and encodes with it; this file only learns
 * the merges and writes the tokenizer.json.  Three phases:
 *
 *   1. read   every JSONL record of the chosen split, its text cut into pre-tokens by the
 *             MNEMO pattern (trainer__split_next), counted per (language, piece);
 *   2. weigh  each language's counts by the balance (replay's samplers over its characters),
 *             the distinct pieces merged into words of one weight each;
 *   3. merge  greedily: the pair of the largest weighted count, until the vocabulary is full.
 *
 * With a development parallel set (o->parity), phase 1 leaves its texts out of the counts (a
 * dev text that is whole lines of a record: the premium must be measured on text the
 * tokenizer never trained on), and phases 2 and 3 run o->rounds times: after each,
 * each language's premium on the set (bpe_parity.c) multiplies its weight by
 * (premium / median)^gamma, and the round of the lowest max premium is the result.  The
 * premium is a ratio of token counts that moves with a language's weight only through the
 * merges it wins, so the loop needs no gradient; keeping the best round guards against a
 * step that overshoots.  Phase 1 runs once: the counts per language do not change.
 * Then, unless o->dev_out, phases 1 to 3 run once more on all the text, dev texts included,
 * each language weighing the share of the characters it had in the best round: the loop chose
 * shares on held-out text, and the result learns them from everything there is.  A thin
 * language's catalogs are much of its text (Burmese: 142 kB of 197 kB left out in the loop),
 * so the round's tokenizer is one trained on a third of it.
 *
 * Languages are balanced in characters, not bytes: UTF-8 spends one byte on a Latin letter and
 * three on a Devanagari or Burmese one, so equal bytes would give those scripts a third of
 * the text, and a third of the merges they need (docs/tokenizer.md measures it).
 *
 * Invariants of phase 3:
 *   - Weights are whole numbers held in doubles, scaled so the whole weighted text is 2^40
 *     bytes: every pair count is a sum of whole numbers below 2^53, so the incremental updates
 *     are exact (a count falls to exactly 0) and a run is bit-reproducible.
 *   - pairs[p].count is the weighted count of pair p over every word now; pairs[p].words lists
 *     every word that holds p (and maybe some that held it once: they are skipped).
 *   - The heap holds, for every pair of count > 0, an entry of at least its count; an entry
 *     whose count is not the pair's is stale: popped, it is put back at the pair's count (or
 *     dropped at 0).  So the valid top is the largest count, ties to the smaller (a, b) ids
 *     (Hugging Face breaks ties by its own pair order; we only need a fixed one).
 *   - A merge whose string is already a token reuses that token's id (as Hugging Face's
 *     trainer does); the vocabulary counts ids, not merges.
 */
#include "replay/replay.h"
#include "trainer/trainer_int.h"

#include <assert.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define WEIGHT_TOTAL 1099511627776.0 /* 2^40: the weighted text's bytes */
#define MAX_WORD     (1u << 20)      /* a pre-token is at most this many bytes */

/* ---------------------------------------------------------------- growable arrays */

/* grow -- make room for n items of size sz in *p (capacity *cap); MN_ERR_NOMEM on failure */
static mn_status grow(void **p, size_t *cap, size_t n, size_t sz, mn_error *err)
{
  if (n <= *cap) return MN_OK;
  size_t c = *cap ? *cap : 16;
  while (c < n)
    c *= 2;
  void *q = c > SIZE_MAX / sz ? NULL : realloc(*p, c * sz);
  if (!q) return mn_error_set(err, MN_ERR_NOMEM, "out of memory learning BPE merges");
  *p = q;
  *cap = c;
  return MN_OK;
}

static uint64_t hash_bytes(const uint8_t *s, size_t n, uint64_t seed)
{
  uint64_t h = 1469598103934665603ULL ^ seed;
  for (size_t i = 0; i < n; i++)
    h = (h ^ s[i]) * 1099511628211ULL;
  return h ^ (h >> 29);
}

static uint64_t mix64(uint64_t x)
{
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/* ---------------------------------------------------------------- pieces: bytes -> entry */

/* A set of byte strings (with a small key beside them: the language), each an entry with a
 * count; the bytes live in one arena.  Open addressing over entry indices + 1. */
typedef struct piece_set {
  uint8_t *arena;
  size_t arena_len, arena_cap;
  struct piece {
    uint64_t off;
    uint32_t len;
    uint32_t key;
    double count;
  } * e;
  size_t n, cap;
  uint32_t *slot; /* entry index + 1, 0 empty */
  size_t nslot;
} piece_set;

static void piece_set_fini(piece_set *s)
{
  free(s->arena);
  free(s->e);
  free(s->slot);
  memset(s, 0, sizeof *s);
}

static mn_status piece_rehash(piece_set *s, size_t nslot, mn_error *err)
{
  uint32_t *slot = calloc(nslot, sizeof *slot);
  if (!slot) return mn_error_set(err, MN_ERR_NOMEM, "out of memory counting pre-tokens");
  for (size_t i = 0; i < s->n; i++) {
    const struct piece *p = &s->e[i];
    size_t h = hash_bytes(s->arena + p->off, p->len, p->key) & (nslot - 1);
    while (slot[h])
      h = (h + 1) & (nslot - 1);
    slot[h] = (uint32_t)(i + 1);
  }
  free(s->slot);
  s->slot = slot;
  s->nslot = nslot;
  return MN_OK;
}

/* piece_add -- count += c for (key, bytes); *idx the entry's index */
static mn_status piece_add(piece_set *s, uint32_t key, const uint8_t *b, size_t n, double c,
                           size_t *idx, mn_error *err)
{
  mn_status rc;
  if ((s->n + 1) * 2 > s->nslot && (rc = piece_rehash(s, s->nslot ? s->nslot * 2 : 1024, err)))
    return rc;
  size_t h = hash_bytes(b, n, key) & (s->nslot - 1);
  for (; s->slot[h]; h = (h + 1) & (s->nslot - 1)) {
    struct piece *p = &s->e[s->slot[h] - 1];
    if (p->key == key && p->len == n && memcmp(s->arena + p->off, b, n) == 0) {
      p->count += c;
      *idx = s->slot[h] - 1;
      return MN_OK;
    }
  }
  if (s->n >= UINT32_MAX - 1)
    return mn_error_set(err, MN_ERR_INPUT, "too many distinct pre-tokens (over 2^32)");
  if ((rc = grow((void **)&s->e, &s->cap, s->n + 1, sizeof *s->e, err)) ||
      (rc = grow((void **)&s->arena, &s->arena_cap, s->arena_len + n, 1, err)))
    return rc;
  memcpy(s->arena + s->arena_len, b, n);
  s->e[s->n] = (struct piece){.off = s->arena_len, .len = (uint32_t)n, .key = key, .count = c};
  s->arena_len += n;
  s->slot[h] = (uint32_t)(s->n + 1);
  *idx = s->n++;
  return MN_OK;
}

/* ---------------------------------------------------------------- phase 1: read */

typedef struct lang_acc {
  char code[8];
  int64_t bytes, chars;                      /* training text read */
  int64_t dev_records, dev_texts, dev_bytes; /* left out as dev text: records touched, texts */
} lang_acc;

typedef struct reader {
  const tok_train_options *o;
  const trainer__devset *dev; /* its texts are left out (NULL: none) */
  piece_set pieces;           /* key: the language's index */
  lang_acc *langs;
  int nlangs;
  tok_train_stats *st;
} reader;

static int lang_index(reader *r, const char *code, mn_error *err)
{
  for (int i = 0; i < r->nlangs; i++)
    if (strcmp(r->langs[i].code, code) == 0) return i;
  if (r->nlangs == TOK_MAX_TAGS) {
    mn_error_set(err, MN_ERR_INPUT, "more than %d languages", TOK_MAX_TAGS);
    return -1;
  }
  if (strlen(code) >= sizeof r->langs[0].code || !code[0]) {
    mn_error_set(err, MN_ERR_INPUT, "language code \"%s\" is not 1 to 7 characters", code);
    return -1;
  }
  lang_acc *l = &r->langs[r->nlangs];
  snprintf(l->code, sizeof l->code, "%s", code);
  l->bytes = 0;
  return r->nlangs++;
}

/* count_text -- the pre-tokens of text[0..n) counted for language li, up to its cap */
static mn_status count_text(reader *r, const mn_jsonl *in, int li, const uint8_t *text, size_t n,
                            mn_error *err)
{
  mn_status rc;
  lang_acc *l = &r->langs[li];
  int64_t cap = r->o->max_bytes_per_lang;
  for (size_t i = 0; i < n;) {
    size_t k = trainer__split_next(TOK_SPLIT_MNEMO, text + i, n - i);
    assert(k >= 1 && k <= n - i);
    if (cap > 0 && l->bytes + (int64_t)k > cap) break; /* the cap cuts at a piece */
    size_t idx;
    if (k > MAX_WORD)
      return mn_jsonl_fail(in, err, MN_ERR_INPUT, "a pre-token of %zu bytes (at most %u)", k,
                           MAX_WORD);
    if ((rc = piece_add(&r->pieces, (uint32_t)li, text + i, k, 1.0, &idx, err))) return rc;
    l->bytes += (int64_t)k;
    for (size_t c = 0; c < k; c++)
      l->chars += (text[i + c] & 0xc0) != 0x80;
    r->st->pieces++;
    i += k;
  }
  return MN_OK;
}

static mn_status read_record(json_t *rec, const mn_jsonl *in, void *ctx, mn_error *err)
{
  reader *r = ctx;
  const char *code = mn_json_str(json_object_get(rec, "lang"));
  json_t *t = json_object_get(rec, "text");
  if (!code || !json_is_string(t))
    return mn_jsonl_fail(in, err, MN_ERR_INPUT, "expected {\"lang\": ..., \"text\": ...}");
  const uint8_t *text = (const uint8_t *)json_string_value(t);
  size_t n = json_string_length(t);
  mn_status rc;
  int li = lang_index(r, code, err);
  if (li < 0) return mn_error_prefix(err, "%s:%lld", in->name, (long long)in->line_no);
  if (!r->o->all_splits) {
    bool held, by_hash;
    if ((rc = evalset_record_split(rec, (const char *)text, n, r->o->heldout_fraction, &held,
                                   &by_hash, err)))
      return mn_error_prefix(err, "%s:%lld", in->name, (long long)in->line_no);
    if (held) {
      r->st->skipped++;
      return MN_OK;
    }
  }
  lang_acc *l = &r->langs[li];
  if (r->o->max_bytes_per_lang > 0 && l->bytes >= r->o->max_bytes_per_lang) {
    r->st->skipped++;
    return MN_OK;
  }
  r->st->records++;
  if (!r->dev) return count_text(r, in, li, text, n, err);
  /* leave the dev texts out: a dev text that is whole lines of the record (a catalog's
   * document is its msgstrs joined by newlines), the longest at each line start, with the
   * newline after it; the text between is counted run by run */
  size_t keep = 0, i = 0;
  bool touched = false;
  while (i < n) {
    size_t hit = 0, e = i;
    for (int f = TRAINER_DEV_MORE; f & TRAINER_DEV_MORE; e++) {
      const uint8_t *nl = memchr(text + e, '\n', n - e);
      e = nl ? (size_t)(nl - text) : n;
      f = trainer__dev_lines(r->dev, l->code, text + i, e - i);
      if (f & TRAINER_DEV_TEXT) hit = e - i;
      if (e == n) break;
    }
    if (!hit) {
      const uint8_t *nl = memchr(text + i, '\n', n - i);
      i = nl ? (size_t)(nl - text) + 1 : n;
      continue;
    }
    if ((rc = count_text(r, in, li, text + keep, i - keep, err))) return rc;
    size_t end = i + hit + (i + hit < n); /* and its newline */
    l->dev_texts++;
    l->dev_bytes += (int64_t)(end - i);
    touched = true;
    keep = i = end;
  }
  l->dev_records += touched;
  return count_text(r, in, li, text + keep, n - keep, err);
}

/* ---------------------------------------------------------------- phase 2: weigh */

/* lang_weights -- w[i] per character of language i's text, by the balance */
static mn_status lang_weights(const tok_train_options *o, const lang_acc *l, int k, double *w,
                              mn_error *err)
{
  mn_status rc = MN_OK;
  double *n = malloc((size_t)k * sizeof *n), *q = malloc((size_t)k * sizeof *q);
  if (!n || !q) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory weighing languages");
    goto out;
  }
  double total = 0, unused;
  for (int i = 0; i < k; i++)
    total += n[i] = (double)l[i].chars; /* balanced in characters: see the file's head */
  if (o->balance == TOK_BALANCE_TEMPERATURE)
    rc = replay_shares_temperature(n, NULL, (size_t)k, o->alpha, q, err);
  else if (o->balance == TOK_BALANCE_UNIMAX)
    rc = replay_budget_unimax(n, NULL, (size_t)k, total, o->epochs, q, &unused, err);
  else
    memcpy(q, n, (size_t)k * sizeof *q);
  for (int i = 0; rc == MN_OK && i < k; i++)
    w[i] = n[i] > 0 ? q[i] / n[i] : 0;
out:
  free(n);
  free(q);
  return rc;
}

/* ---------------------------------------------------------------- phase 3: merge */

typedef struct pair_info {
  uint64_t key; /* a << 32 | b */
  double count;
  uint32_t *words, nwords, capwords;
  bool banned; /* its token would cut a character: never merged (char_aligned) */
} pair_info;

typedef struct heap_entry {
  double count;
  uint64_t key;
} heap_entry;

typedef struct learner {
  /* words: symbols sym[start[w] .. start[w] + len[w]) of weight wt[w] */
  int32_t *sym;
  uint64_t *start;
  uint32_t *len, *stamp;
  double *wt;
  size_t nwords;
  /* pairs: key -> index */
  pair_info *pairs;
  size_t npairs, cappairs;
  uint32_t *pslot; /* pair index + 1 */
  size_t npslot;
  heap_entry *heap;
  size_t nheap, capheap;
  /* tokens: id -> bytes, and bytes -> id */
  piece_set tokens; /* entry i is token i (its count unused) */
  int32_t (*merges)[2];
  size_t nmerges, capmerges;
  uint32_t *touched;
  size_t ntouched, captouched;
  uint32_t *ptouch; /* per pair: the merge that last touched it */
  size_t cap_ptouch;
} learner;

static void learner_fini(learner *L)
{
  free(L->sym);
  free(L->start);
  free(L->len);
  free(L->stamp);
  free(L->wt);
  for (size_t i = 0; i < L->npairs; i++)
    free(L->pairs[i].words);
  free(L->pairs);
  free(L->pslot);
  free(L->heap);
  piece_set_fini(&L->tokens);
  free(L->merges);
  free(L->touched);
  free(L->ptouch);
}

static bool heap_before(const heap_entry *x, const heap_entry *y)
{
  return x->count > y->count || (x->count == y->count && x->key < y->key);
}

static mn_status heap_push(learner *L, double count, uint64_t key, mn_error *err)
{
  mn_status rc = grow((void **)&L->heap, &L->capheap, L->nheap + 1, sizeof *L->heap, err);
  if (rc) return rc;
  size_t i = L->nheap++;
  heap_entry e = {count, key};
  while (i > 0 && heap_before(&e, &L->heap[(i - 1) / 2])) {
    L->heap[i] = L->heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  L->heap[i] = e;
  return MN_OK;
}

static heap_entry heap_pop(learner *L)
{
  heap_entry top = L->heap[0], last = L->heap[--L->nheap];
  size_t i = 0, n = L->nheap;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && heap_before(&L->heap[c + 1], &L->heap[c])) c++;
    if (!heap_before(&L->heap[c], &last)) break;
    L->heap[i] = L->heap[c];
    i = c;
  }
  if (n) L->heap[i] = last;
  return top;
}

static mn_status pair_rehash(learner *L, size_t nslot, mn_error *err)
{
  uint32_t *slot = calloc(nslot, sizeof *slot);
  if (!slot) return mn_error_set(err, MN_ERR_NOMEM, "out of memory learning BPE merges");
  for (size_t i = 0; i < L->npairs; i++) {
    size_t h = mix64(L->pairs[i].key) & (nslot - 1);
    while (slot[h])
      h = (h + 1) & (nslot - 1);
    slot[h] = (uint32_t)(i + 1);
  }
  free(L->pslot);
  L->pslot = slot;
  L->npslot = nslot;
  return MN_OK;
}

/* pair_of -- the index of pair key, made (count 0) when absent */
static mn_status pair_of(learner *L, uint64_t key, size_t *idx, mn_error *err)
{
  mn_status rc;
  if ((L->npairs + 1) * 2 > L->npslot &&
      (rc = pair_rehash(L, L->npslot ? L->npslot * 2 : 1 << 16, err)))
    return rc;
  size_t h = mix64(key) & (L->npslot - 1);
  for (; L->pslot[h]; h = (h + 1) & (L->npslot - 1))
    if (L->pairs[L->pslot[h] - 1].key == key) {
      *idx = L->pslot[h] - 1;
      return MN_OK;
    }
  if (L->npairs >= UINT32_MAX - 1)
    return mn_error_set(err, MN_ERR_INPUT, "too many distinct pairs (over 2^32)");
  if ((rc = grow((void **)&L->pairs, &L->cappairs, L->npairs + 1, sizeof *L->pairs, err)) ||
      (rc = grow((void **)&L->ptouch, &L->cap_ptouch, L->npairs + 1, sizeof *L->ptouch, err)))
    return rc;
  L->pairs[L->npairs] = (pair_info){.key = key};
  L->ptouch[L->npairs] = UINT32_MAX;
  L->pslot[h] = (uint32_t)(L->npairs + 1);
  *idx = L->npairs++;
  return MN_OK;
}

static uint64_t pair_key(int32_t a, int32_t b)
{
  return (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
}

/* pair_add -- count of (a, b) += d in word w; a pair that grows is noted for the heap */
static mn_status pair_add(learner *L, int32_t a, int32_t b, double d, uint32_t w, uint32_t merge,
                          mn_error *err)
{
  size_t p;
  mn_status rc = pair_of(L, pair_key(a, b), &p, err);
  if (rc) return rc;
  pair_info *pi = &L->pairs[p];
  pi->count += d;
  assert(pi->count >= 0);
  if (d <= 0) return MN_OK;
  if (!pi->nwords || pi->words[pi->nwords - 1] != w) {
    if (pi->nwords == UINT32_MAX)
      return mn_error_set(err, MN_ERR_INPUT, "a pair in over 2^32 words");
    size_t cap = pi->capwords;
    if ((rc = grow((void **)&pi->words, &cap, (size_t)pi->nwords + 1, sizeof *pi->words, err)))
      return rc;
    pi->capwords = (uint32_t)(cap < UINT32_MAX ? cap : UINT32_MAX);
    pi->words[pi->nwords++] = w;
  }
  if (L->ptouch[p] != merge) {
    L->ptouch[p] = merge;
    if ((rc = grow((void **)&L->touched, &L->captouched, L->ntouched + 1, sizeof *L->touched, err)))
      return rc;
    L->touched[L->ntouched++] = (uint32_t)p;
  }
  return MN_OK;
}

/* push_touched -- a heap entry at the count of every pair that grew */
static mn_status push_touched(learner *L, mn_error *err)
{
  mn_status rc = MN_OK;
  for (size_t i = 0; rc == MN_OK && i < L->ntouched; i++) {
    const pair_info *pi = &L->pairs[L->touched[i]];
    if (pi->count > 0 && !pi->banned) rc = heap_push(L, pi->count, pi->key, err);
  }
  L->ntouched = 0;
  return rc;
}

/* apply_merge -- (a, b) becomes c in every word that holds it, the pair counts updated */
static mn_status apply_merge(learner *L, size_t p, int32_t a, int32_t b, int32_t c, uint32_t merge,
                             mn_error *err)
{
  mn_status rc = MN_OK;
  /* the list may grow while we walk it (a word can make (c, c)): walk a count fixed now */
  uint32_t nw = L->pairs[p].nwords;
  for (uint32_t k = 0; k < nw && rc == MN_OK; k++) {
    uint32_t w = L->pairs[p].words[k];
    if (L->stamp[w] == merge) continue;
    L->stamp[w] = merge;
    int32_t *s = L->sym + L->start[w];
    uint32_t n = L->len[w], j = 0;
    double d = L->wt[w];
    for (uint32_t i = 0; i < n && rc == MN_OK;) {
      if (i + 1 < n && s[i] == a && s[i + 1] == b) {
        if (j > 0 && (rc = pair_add(L, s[j - 1], a, -d, w, merge, err)) == MN_OK)
          rc = pair_add(L, s[j - 1], c, d, w, merge, err);
        if (rc == MN_OK && i + 2 < n && (rc = pair_add(L, b, s[i + 2], -d, w, merge, err)) == MN_OK)
          rc = pair_add(L, c, s[i + 2], d, w, merge, err);
        if (rc == MN_OK) rc = pair_add(L, a, b, -d, w, merge, err);
        s[j++] = c;
        i += 2;
      } else {
        s[j++] = s[i++];
      }
    }
    L->len[w] = j;
  }
  free(L->pairs[p].words); /* (a, b) is in no word now */
  L->pairs[p].words = NULL;
  L->pairs[p].nwords = L->pairs[p].capwords = 0;
  return rc;
}

/* token_bytes -- token id's bytes */
static const uint8_t *token_bytes(const learner *L, int32_t id, size_t *n)
{
  *n = L->tokens.e[id].len;
  return L->tokens.arena + L->tokens.e[id].off;
}

/* char_aligned -- whether a token of bytes s[0..n) keeps to character boundaries: whole UTF-8
 * characters, or the first bytes of one.  Every script whose letters share their first bytes
 * (Burmese: E1 80 or E1 81 before each) otherwise spends merges on tokens that end inside
 * the next letter ("ကား" + E1 80); kept to whole letters, the 32K parity tokenizer's Burmese
 * premium on the UDHR fell from 1.92 to 1.85 (docs/tokenizer.md).  A byte that no character starts
 * with joins nothing: it is its own token, as in text that is not UTF-8. */
static bool char_aligned(const uint8_t *s, size_t n)
{
  for (size_t i = 0; i < n;) {
    uint8_t b = s[i];
    size_t need = b < 0x80                 ? 1
                  : b >= 0xc2 && b <= 0xdf ? 2
                  : b >= 0xe0 && b <= 0xef ? 3
                  : b >= 0xf0 && b <= 0xf4 ? 4
                                           : 0;
    if (!need) return n == 1;
    size_t k = 1;
    while (k < need && i + k < n && (s[i + k] & 0xc0) == 0x80)
      k++;
    if (k < need) return i == 0 && i + k == n; /* the first bytes of one character, or cut */
    i += need;
  }
  return true;
}

/* learn -- merges until `want` new tokens or no pair is left */
static mn_status learn(learner *L, uint32_t want, uint32_t *made, mn_error *err)
{
  mn_status rc = MN_OK;
  uint8_t *cat = malloc(2 * MAX_WORD);
  if (!cat) return mn_error_set(err, MN_ERR_NOMEM, "out of memory learning BPE merges");
  *made = 0;
  for (uint32_t merge = 1; *made < want && L->nheap > 0 && rc == MN_OK;) {
    heap_entry e = heap_pop(L);
    size_t p;
    if ((rc = pair_of(L, e.key, &p, err))) break;
    double cur = L->pairs[p].count;
    if (cur != e.count) { /* stale: put back at its count */
      if (cur > 0) rc = heap_push(L, cur, e.key, err);
      continue;
    }
    int32_t a = (int32_t)(e.key >> 32), b = (int32_t)(e.key & 0xffffffffu);
    size_t na, nb, id;
    const uint8_t *ba = token_bytes(L, a, &na), *bb = token_bytes(L, b, &nb);
    memcpy(cat, ba, na);
    memcpy(cat + na, bb, nb);
    if (!char_aligned(cat, na + nb)) {
      L->pairs[p].banned = true;
      continue;
    }
    size_t before = L->tokens.n;
    if ((rc = piece_add(&L->tokens, 0, cat, na + nb, 0, &id, err))) break;
    *made += L->tokens.n > before; /* else the string was a token already: its id again */
    if ((rc = grow((void **)&L->merges, &L->capmerges, L->nmerges + 1, sizeof *L->merges, err)))
      break;
    L->merges[L->nmerges][0] = a;
    L->merges[L->nmerges][1] = b;
    L->nmerges++;
    if ((rc = apply_merge(L, p, a, b, (int32_t)id, merge, err)) == MN_OK) rc = push_touched(L, err);
    assert(rc != MN_OK || L->pairs[p].count == 0);
    merge++;
  }
  free(cat);
  return rc;
}

/* learner_init -- the words of the weighted pieces, the tokens 0..256, the first pairs */
static mn_status learner_init(learner *L, const piece_set *words, const double *wt, mn_error *err)
{
  mn_status rc = MN_OK;
  size_t idx, total = 0, nw = 0;
  for (size_t i = 0; i < words->n; i++)
    if (wt[i] > 0 && words->e[i].len > 1) {
      total += words->e[i].len;
      nw++;
    }
  if (nw >= UINT32_MAX) return mn_error_set(err, MN_ERR_INPUT, "too many distinct pre-tokens");
  L->sym = malloc((total ? total : 1) * sizeof *L->sym);
  L->start = malloc((nw ? nw : 1) * sizeof *L->start);
  L->len = malloc((nw ? nw : 1) * sizeof *L->len);
  L->stamp = malloc((nw ? nw : 1) * sizeof *L->stamp);
  L->wt = malloc((nw ? nw : 1) * sizeof *L->wt);
  if (!L->sym || !L->start || !L->len || !L->stamp || !L->wt)
    return mn_error_set(err, MN_ERR_NOMEM, "out of memory learning BPE merges");
  size_t off = 0;
  for (size_t i = 0; i < words->n; i++) {
    const struct piece *p = &words->e[i];
    if (!(wt[i] > 0 && p->len > 1)) continue;
    const uint8_t *b = words->arena + p->off;
    L->start[L->nwords] = off;
    L->len[L->nwords] = p->len;
    L->stamp[L->nwords] = UINT32_MAX;
    L->wt[L->nwords] = wt[i];
    for (uint32_t k = 0; k < p->len; k++)
      L->sym[off + k] = b[k];
    off += p->len;
    L->nwords++;
  }
  for (int i = 0; i < 256 && rc == MN_OK; i++) {
    uint8_t b = (uint8_t)i;
    rc = piece_add(&L->tokens, 0, &b, 1, 0, &idx, err);
  }
  /* 256: <|endoftext|>, under key 1 so that no merged token (key 0) is taken for it */
  if (rc == MN_OK)
    rc = piece_add(&L->tokens, 1, (const uint8_t *)"<|endoftext|>", 13, 0, &idx, err);
  for (size_t w = 0; w < L->nwords && rc == MN_OK; w++) {
    const int32_t *s = L->sym + L->start[w];
    for (uint32_t k = 0; k + 1 < L->len[w] && rc == MN_OK; k++)
      rc = pair_add(L, s[k], s[k + 1], L->wt[w], (uint32_t)w, 0, err);
  }
  if (rc == MN_OK) rc = push_touched(L, err);
  return rc;
}

/* ---------------------------------------------------------------- the tokenizer.json */

/* token_str -- token id as byte-level BPE spells it (each byte its character), in buf */
static const char *token_str(const learner *L, int32_t id, char *buf)
{
  size_t n, k = 0;
  const uint8_t *b = token_bytes(L, id, &n);
  if (id == TOK_EOT) return "<|endoftext|>";
  for (size_t i = 0; i < n; i++) {
    uint32_t c = trainer__byte_char(b[i]); /* below 0x800: one or two bytes */
    if (c < 0x80) {
      buf[k++] = (char)c;
    } else {
      buf[k++] = (char)(0xc0 | (c >> 6));
      buf[k++] = (char)(0x80 | (c & 0x3f));
    }
  }
  buf[k] = 0;
  return buf;
}

static json_t *added_token(const char *content, uint32_t id)
{
  return json_pack("{s:I, s:s, s:b, s:b, s:b, s:b, s:b}", "id", (json_int_t)id, "content", content,
                   "single_word", 0, "lstrip", 0, "rstrip", 0, "normalized", 0, "special", 1);
}

/* to_json -- the tokenizer.json of L's tokens and merges, tags[i] at base + i; NULL: no memory */
static char *to_json(const learner *L, const char (*tags)[8], int ntags)
{
  char *out = NULL, *buf = malloc(4 * MAX_WORD + 1), *buf2 = malloc(4 * MAX_WORD + 1);
  uint32_t base = (uint32_t)L->tokens.n;
  json_t *vocab = json_object(), *merges = json_array(), *added = json_array();
  json_t *root = NULL;
  bool ok = buf && buf2 && vocab && merges && added;
  for (uint32_t id = 0; ok && id < base; id++)
    ok = json_object_set_new(vocab, token_str(L, (int32_t)id, buf), json_integer(id)) == 0;
  for (size_t i = 0; ok && i < L->nmerges; i++)
    ok = json_array_append_new(merges, json_pack("[s, s]", token_str(L, L->merges[i][0], buf),
                                                 token_str(L, L->merges[i][1], buf2))) == 0;
  ok = ok && json_array_append_new(added, added_token("<|endoftext|>", TOK_EOT)) == 0;
  for (int i = 0; ok && i < ntags; i++) {
    char tag[32];
    snprintf(tag, sizeof tag, "<|lang:%s|>", tags[i]);
    ok = json_array_append_new(added, added_token(tag, base + (uint32_t)i)) == 0;
  }
  if (ok) {
    json_t *model =
        json_pack("{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:b, s:O, s:O}", "type", "BPE", "dropout",
                  "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 0,
                  "byte_fallback", 0, "ignore_merges", 0, "vocab", vocab, "merges", merges);
    json_t *pre =
        json_pack("{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, {s:s, s:b, s:b, s:b}]}", "type", "Sequence",
                  "pretokenizers", "type", "Split", "pattern", "Regex",
                  trainer__split_regex[TOK_SPLIT_MNEMO], "behavior", "Isolated", "invert", 0,
                  "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 0, "use_regex", 0);
    json_t *dec = json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 0,
                            "trim_offsets", 0, "use_regex", 0);
    if (model && pre && dec)
      root = json_pack("{s:s, s:n, s:n, s:O, s:n, s:o, s:n, s:o, s:o}", "version", "1.0",
                       "truncation", "padding", "added_tokens", added, "normalizer",
                       "pre_tokenizer", pre, "post_processor", "decoder", dec, "model", model);
    else {
      json_decref(model);
      json_decref(pre);
      json_decref(dec);
    }
  }
  if (root) out = json_dumps(root, JSON_COMPACT);
  json_decref(root);
  json_decref(vocab);
  json_decref(merges);
  json_decref(added);
  free(buf);
  free(buf2);
  return out;
}

/* ---------------------------------------------------------------- tok_bpe_train */

static int cmp_code(const void *x, const void *y)
{
  return strcmp((const char *)x, (const char *)y);
}

/* tags_in_order -- the codes of o->tags by id, which must run from TOK_FIRST_TAG without a gap */
static mn_status tags_in_order(const tok_tags *t, char (*codes)[8], mn_error *err)
{
  for (int i = 0; i < t->n; i++) {
    int k = t->t[i].id - TOK_FIRST_TAG;
    if (k < 0 || k >= t->n || codes[k][0])
      return mn_error_set(err, MN_ERR_INPUT,
                          "cannot place tag %s (%d): a tokenizer's tags are numbered "
                          "consecutively from %d",
                          t->t[i].code, t->t[i].id, TOK_FIRST_TAG);
    snprintf(codes[k], sizeof codes[k], "%s", t->t[i].code);
  }
  return MN_OK;
}

static mn_status vocab_fits(uint32_t vocab, int ntags, mn_error *err)
{
  uint32_t least = TOK_FIRST_TAG + (uint32_t)ntags;
  if (vocab < least)
    return mn_error_set(err, MN_ERR_INPUT,
                        "cannot fit vocab %u: 256 bytes, <|endoftext|> and %d tags need at "
                        "least %u",
                        vocab, ntags, least);
  if (vocab > TOK_MAX_ID)
    return mn_error_set(err, MN_ERR_INPUT, "vocab %u is over the most, %d", vocab, TOK_MAX_ID);
  return MN_OK;
}

/* train_round -- phases 2 and 3: the merges of r's pieces with language i weighing w[i] per
 * character, *json its tokenizer.json (malloc'd; NULL on failure) */
static mn_status train_round(const reader *r, const double *w, const tok_train_options *o,
                             const char (*codes)[8], int ntags, char **json, tok_train_stats *st,
                             mn_error *err)
{
  mn_status rc = MN_OK;
  piece_set words = {0};
  learner L = {0};
  double *wt = NULL;

  *json = NULL;
  /* 2. weigh: per distinct piece, scaled to whole numbers */
  double t0 = mn_monotonic_ms();
  for (size_t i = 0; i < r->pieces.n && rc == MN_OK; i++) {
    const struct piece *p = &r->pieces.e[i];
    size_t idx;
    rc = piece_add(&words, 0, r->pieces.arena + p->off, p->len, w[p->key] * p->count, &idx, err);
  }
  if (rc) goto out;
  wt = malloc((words.n ? words.n : 1) * sizeof *wt);
  if (!wt) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory weighing languages");
    goto out;
  }
  double bytes = 0;
  for (size_t i = 0; i < words.n; i++)
    bytes += words.e[i].count * words.e[i].len;
  for (size_t i = 0; i < words.n; i++)
    wt[i] = bytes > 0 ? nearbyint(words.e[i].count * (WEIGHT_TOTAL / bytes)) : 0;
  st->words = (int64_t)words.n;
  /* 3. merge */
  if ((rc = learner_init(&L, &words, wt, err))) goto out;
  piece_set_fini(&words);
  uint32_t made;
  if ((rc = learn(&L, o->vocab - TOK_FIRST_TAG - (uint32_t)ntags, &made, err))) goto out;
  st->merge_s += (mn_monotonic_ms() - t0) / 1e3;
  st->merges = (uint32_t)L.nmerges;
  st->vocab = (uint32_t)L.tokens.n + (uint32_t)ntags;
  *json = to_json(&L, codes, ntags);
  if (!*json) rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory writing the tokenizer.json");
out:
  piece_set_fini(&words);
  learner_fini(&L);
  free(wt);
  assert((rc == MN_OK) == (*json != NULL));
  return rc;
}

static int cmp_double(const void *x, const void *y)
{
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

/* measure_round -- the dev premium of each training language (NAN: no dev items) under json,
 * and the round's max, median and worst in st->round[round] */
static mn_status measure_round(const trainer__devset *dev, const reader *r, const char *json,
                               int round, double *prem, tok_train_stats *st, mn_error *err)
{
  double *dp = malloc(TOK_MAX_TAGS * sizeof *dp), *v = malloc(TOK_MAX_TAGS * sizeof *v);
  mn_status rc = dp && v ? trainer__dev_premium(dev, json, dp, err)
                         : mn_error_set(err, MN_ERR_NOMEM, "out of memory measuring premiums");
  int n = 0;
  for (int i = 0; rc == MN_OK && i < r->nlangs; i++) {
    int k = trainer__dev_index(dev, r->langs[i].code);
    prem[i] = k >= 0 ? dp[k] : NAN;
    if (isnan(prem[i])) continue;
    if (!n || prem[i] > st->round[round].max) {
      st->round[round].max = prem[i];
      memcpy(st->round[round].worst, r->langs[i].code, sizeof st->round[round].worst);
    }
    v[n++] = prem[i];
  }
  if (rc == MN_OK) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    st->round[round].median = n ? (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2) : NAN;
    st->dev_langs = n;
  }
  free(dp);
  free(v);
  return rc;
}

/* refit -- *json learned again from all the text of paths (the dev texts too), language i of
 * loop (whose texts left them out) weighing st->lang[i].share of the characters; st's counts
 * and bytes become the refit's */
static mn_status refit(const char *const *paths, int npaths, const tok_train_options *o,
                       const reader *loop, const char (*codes)[8], int ntags, char **json,
                       tok_train_stats *st, mn_error *err)
{
  mn_status rc = MN_OK;
  tok_train_stats *scratch = calloc(1, sizeof *scratch);
  reader all = {.o = o, .st = scratch, .langs = calloc(TOK_MAX_TAGS, sizeof *all.langs)};
  double *w = calloc(TOK_MAX_TAGS, sizeof *w);
  char *out = NULL;

  if (!scratch || !all.langs || !w) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory learning BPE merges");
    goto out;
  }
  double t0 = mn_monotonic_ms();
  for (int i = 0; i < npaths && rc == MN_OK; i++)
    rc = mn_jsonl_each(paths[i], read_record, &all, err);
  if (rc) goto out;
  /* the same files in the same order: the same languages in the same order */
  if (all.nlangs != loop->nlangs) {
    rc = mn_error_set(err, MN_ERR_IO,
                      "the training text changed while it was read (%d languages, "
                      "then %d)",
                      loop->nlangs, all.nlangs);
    goto out;
  }
  for (int i = 0; i < all.nlangs; i++) {
    if (strcmp(all.langs[i].code, loop->langs[i].code) != 0) {
      rc = mn_error_set(err, MN_ERR_IO, "the training text changed while it was read (%s, then %s)",
                        loop->langs[i].code, all.langs[i].code);
      goto out;
    }
    w[i] = all.langs[i].chars > 0 ? st->lang[i].share / (double)all.langs[i].chars : 0;
  }
  st->read_s += (mn_monotonic_ms() - t0) / 1e3;
  st->merge_s = 0;
  if ((rc = train_round(&all, w, o, codes, ntags, &out, st, err))) goto out;
  free(*json);
  *json = out;
  st->refit = true;
  st->records = scratch->records;
  st->skipped = scratch->skipped;
  st->pieces = scratch->pieces;
  for (int i = 0; i < all.nlangs; i++)
    st->lang[i].bytes = all.langs[i].bytes;
out:
  piece_set_fini(&all.pieces);
  free(all.langs);
  free(scratch);
  free(w);
  return rc;
}

mn_status tok_bpe_train(const char *const *paths, int npaths, const tok_train_options *o,
                        char **json, tok_train_stats *st, mn_error *err)
{
  mn_status rc = MN_OK;
  reader r = {.o = o, .st = st};
  trainer__devset *dev = NULL;
  double *w = NULL, *w0 = NULL, *prem = NULL;
  char *cand = NULL;
  char(*codes)[8] = calloc(TOK_MAX_TAGS, sizeof *codes);
  int ntags = 0;
  int rounds = o->parity ? (o->rounds ? o->rounds : 6) : 1;
  double gamma = o->gamma ? o->gamma : TOK_PARITY_GAMMA;

  *json = NULL;
  memset(st, 0, sizeof *st);
  r.langs = calloc(TOK_MAX_TAGS, sizeof *r.langs);
  if (!codes || !r.langs) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory learning BPE merges");
    goto out;
  }
  if (rounds < 1 || rounds > TOK_MAX_ROUNDS) {
    rc = mn_error_set(err, MN_ERR_INPUT, "cannot train %d rounds: 1 to %d", rounds, TOK_MAX_ROUNDS);
    goto out;
  }
  if (o->tags) {
    ntags = o->tags->n;
    if ((rc = tags_in_order(o->tags, codes, err)) || (rc = vocab_fits(o->vocab, ntags, err)))
      goto out;
  }
  /* the dev set first: a bad one fails before minutes of training */
  if (o->parity &&
      (rc = trainer__dev_read(o->parity, o->parity_ref ? o->parity_ref : "eng", &dev, err)))
    goto out;
  /* 1. read (with a dev set, its texts left out) */
  r.dev = dev;
  double t0 = mn_monotonic_ms();
  for (int i = 0; i < npaths && rc == MN_OK; i++)
    rc = mn_jsonl_each(paths[i], read_record, &r, err);
  if (rc) goto out;
  for (int i = 0; o->tags && i < r.nlangs; i++)
    if (tok_tag_of(o->tags, r.langs[i].code) < 0) {
      rc = mn_error_set(err, MN_ERR_INPUT,
                        "language \"%s\" of the training text has no tag in the tag table "
                        "(the database assigns tags: mnemoctl lang add, mnemoctl export)",
                        r.langs[i].code);
      goto out;
    }
  if (!o->tags) {
    ntags = r.nlangs;
    for (int i = 0; i < r.nlangs; i++)
      memcpy(codes[i], r.langs[i].code, sizeof codes[i]);
    qsort(codes, (size_t)ntags, sizeof *codes, cmp_code);
    if ((rc = vocab_fits(o->vocab, ntags, err))) goto out;
  }
  if (st->pieces == 0) {
    rc = mn_error_set(err, MN_ERR_INPUT, "no training text in %d file%s%s", npaths,
                      npaths == 1 ? "" : "s", o->all_splits ? "" : " (training split)");
    goto out;
  }
  st->read_s = (mn_monotonic_ms() - t0) / 1e3;
  w = malloc((size_t)r.nlangs * sizeof *w);
  prem = malloc((size_t)r.nlangs * sizeof *prem);
  w0 = malloc((size_t)r.nlangs * sizeof *w0);
  if (!w || !prem || !w0) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory weighing languages");
    goto out;
  }
  if ((rc = lang_weights(o, r.langs, r.nlangs, w, err))) goto out;
  memcpy(w0, w, (size_t)r.nlangs * sizeof *w0);
  st->nlangs = r.nlangs;
  for (int i = 0; i < r.nlangs; i++) {
    memcpy(st->lang[i].code, r.langs[i].code, sizeof st->lang[i].code);
    st->lang[i].bytes = r.langs[i].bytes;
    st->lang[i].dev_records = r.langs[i].dev_records;
    st->lang[i].dev_texts = r.langs[i].dev_texts;
    st->lang[i].dev_bytes = r.langs[i].dev_bytes;
    st->lang[i].premium = NAN;
  }
  /* the rounds: train; with a dev set, measure, keep the best, reweigh by (premium / median)^gamma
   */
  for (int round = 0; round < rounds; round++) {
    t0 = mn_monotonic_ms();
    if ((rc = train_round(&r, w, o, (const char(*)[8])codes, ntags, &cand, st, err))) goto out;
    if (dev && (rc = measure_round(dev, &r, cand, round, prem, st, err))) goto out;
    st->round[round].seconds = (mn_monotonic_ms() - t0) / 1e3;
    st->nrounds = round + 1;
    double bmax = st->round[st->best_round].max, cmax = st->round[round].max;
    if (round == 0 || cmax < bmax ||
        (cmax == bmax && st->round[round].median < st->round[st->best_round].median)) {
      free(*json);
      *json = cand;
      cand = NULL;
      st->best_round = round;
      double mass = 0;
      for (int i = 0; i < r.nlangs; i++)
        mass += w[i] * (double)r.langs[i].chars;
      for (int i = 0; i < r.nlangs; i++) {
        st->lang[i].share = mass > 0 ? w[i] * (double)r.langs[i].chars / mass : 0;
        st->lang[i].premium = dev ? prem[i] : NAN;
      }
    }
    free(cand);
    cand = NULL;
    /* relative to the median, so a language without dev items (whose weight stays) keeps
     * its place beside the median language's */
    for (int i = 0; dev && i < r.nlangs; i++)
      if (!isnan(prem[i]))
        w[i] = fmax(w[i] * pow(prem[i] / st->round[round].median, gamma), o->floor ? w0[i] : 0);
  }
  if (dev && !o->dev_out) {
    piece_set_fini(&r.pieces); /* the refit reads its own: not both at once */
    if ((rc = refit(paths, npaths, o, &r, (const char(*)[8])codes, ntags, json, st, err))) goto out;
  }
out:
  piece_set_fini(&r.pieces);
  trainer__dev_destroy(dev);
  free(r.langs);
  free(codes);
  free(w);
  free(w0);
  free(prem);
  free(cand);
  if (rc != MN_OK) {
    free(*json);
    *json = NULL;
  }
  assert((rc == MN_OK) == (*json != NULL));
  return rc;
}
