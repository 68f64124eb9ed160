/*
 * bpe_learn.c -- phase 3 of tok_bpe_train (bpe_train.c): merges learned greedily from weighted
 * words, written as a tokenizer.json; and the set of byte strings both files count with.
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
 *   - Every token is whole UTF-8 characters or the first bytes of one (char_aligned): a pair
 *     whose token would cut a character is banned when it reaches the top, and never pushed
 *     again.
 */
#include "trainer/trainer_int.h"

#include <assert.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

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

void trainer__pieces_fini(trainer__pieces *s)
{
  free(s->arena);
  free(s->e);
  free(s->slot);
  memset(s, 0, sizeof *s);
}

static mn_status piece_rehash(trainer__pieces *s, size_t nslot, mn_error *err)
{
  uint32_t *slot = calloc(nslot, sizeof *slot);
  if (!slot) return mn_error_set(err, MN_ERR_NOMEM, "out of memory counting pre-tokens");
  for (size_t i = 0; i < s->n; i++) {
    const struct trainer__piece *p = &s->e[i];
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

mn_status trainer__pieces_add(trainer__pieces *s, uint32_t key, const uint8_t *b, size_t n,
                              double c, size_t *idx, mn_error *err)
{
  mn_status rc;
  if ((s->n + 1) * 2 > s->nslot && (rc = piece_rehash(s, s->nslot ? s->nslot * 2 : 1024, err)))
    return rc;
  size_t h = hash_bytes(b, n, key) & (s->nslot - 1);
  for (; s->slot[h]; h = (h + 1) & (s->nslot - 1)) {
    struct trainer__piece *p = &s->e[s->slot[h] - 1];
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
  s->e[s->n] =
      (struct trainer__piece){.off = s->arena_len, .len = (uint32_t)n, .key = key, .count = c};
  s->arena_len += n;
  s->slot[h] = (uint32_t)(s->n + 1);
  *idx = s->n++;
  return MN_OK;
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
  trainer__pieces tokens; /* entry i is token i (its count unused) */
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
  trainer__pieces_fini(&L->tokens);
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
  uint8_t *cat = malloc(2 * TRAINER_BPE_MAX_WORD);
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
    if ((rc = trainer__pieces_add(&L->tokens, 0, cat, na + nb, 0, &id, err))) break;
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
static mn_status learner_init(learner *L, const trainer__pieces *words, const double *wt,
                              mn_error *err)
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
    const struct trainer__piece *p = &words->e[i];
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
    rc = trainer__pieces_add(&L->tokens, 0, &b, 1, 0, &idx, err);
  }
  /* 256: <|endoftext|>, under key 1 so that no merged token (key 0) is taken for it */
  if (rc == MN_OK)
    rc = trainer__pieces_add(&L->tokens, 1, (const uint8_t *)"<|endoftext|>", 13, 0, &idx, err);
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
  char *out = NULL, *buf = malloc(4 * TRAINER_BPE_MAX_WORD + 1),
       *buf2 = malloc(4 * TRAINER_BPE_MAX_WORD + 1);
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

mn_status trainer__bpe_learn(trainer__pieces *words, const double *wt, uint32_t want,
                             const char (*tags)[8], int ntags, char **json, uint32_t *merges,
                             uint32_t *ids, mn_error *err)
{
  learner L = {0};
  mn_status rc = learner_init(&L, words, wt, err);
  trainer__pieces_fini(words); /* the learner holds its own copy */
  uint32_t made;
  *json = NULL;
  if (rc == MN_OK && (rc = learn(&L, want, &made, err)) == MN_OK) {
    *merges = (uint32_t)L.nmerges;
    *ids = (uint32_t)L.tokens.n;
    if (!(*json = to_json(&L, tags, ntags)))
      rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory writing the tokenizer.json");
  }
  learner_fini(&L);
  return rc;
}
