/*
 * bpe.c -- byte-level BPE as Hugging Face's tokenizer.json describes it: load, encode,
 * pieces, and the tokenizer.json it is written back as.
 *
 * Encoding follows Hugging Face's tokenizers step by step, so ids agree with it id for id:
 *   1. invalid UTF-8 becomes U+FFFD, one per maximal invalid subpart (WHATWG's decoder: the
 *      reference takes strings, so that is what it sees of such bytes);
 *   2. added tokens whose normalized flag is false are cut out of the text, leftmost and
 *      longest first (lstrip/rstrip take the white space beside them);
 *   3. each piece between them is normalized (NFC when the file asks; the quick check
 *      lets text that is NFC through untouched), and added tokens with normalized true are
 *      cut out of that;
 *   4. the pre-tokenizer splits what is left (bpe_split.c), and each piece's bytes are one
 *      word for BPE: with ignore_merges a word found whole in the vocab is that one id;
 *      otherwise, from one symbol a byte, the adjacent pair of lowest merge rank (the
 *      leftmost of equals) is merged until no pair has a merge.
 * Not implemented, so refused at load: other models, normalizers and pre-tokenizers,
 * byte_fallback, dropout, subword prefixes and suffixes, single_word added tokens,
 * truncation and padding.
 *
 * Invariants: a tok_bpe is immutable after load.  Every byte has a token (refused
 * otherwise), so a word always encodes; ids are below TOK_MAX_ID; a word of n bytes gives
 * at most n ids, and an added token at least one byte, so n ids are reserved up front.
 * A tok_cache remembers words of one tokenizer (its serial); given to another it empties.
 */
#include "trainer/trainer_int.h"

#include <stdlib.h>
#include <string.h>

#include "trainer/bpe_int.h"

/* ---------------------------------------------------------------- bytes to characters */

uint32_t trainer__byte_char(uint8_t b)
{
  if (b <= 32) return 256u + b;
  if (b <= 126) return b;
  if (b <= 160) return 256u + 33 + (b - 127u);
  if (b == 173) return 256u + 67;
  return b;
}

/* the byte character cp stands for, or -1 */
static int char_byte(uint32_t cp)
{
  if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 255 && cp != 173)) return (int)cp;
  if (cp >= 256 && cp <= 288) return (int)(cp - 256);
  if (cp >= 289 && cp <= 322) return (int)(cp - 289 + 127);
  if (cp == 323) return 173;
  return -1;
}

size_t trainer__bpe_utf8_put(uint32_t cp, uint8_t *o)
{
  if (cp < 0x80) return o[0] = (uint8_t)cp, 1;
  if (cp < 0x800) return o[0] = (uint8_t)(0xC0 | cp >> 6), o[1] = (uint8_t)(0x80 | (cp & 63)), 2;
  o[0] = (uint8_t)(0xE0 | cp >> 12);
  o[1] = (uint8_t)(0x80 | (cp >> 6 & 63));
  o[2] = (uint8_t)(0x80 | (cp & 63));
  return 3;
}

/* the bytes a token string stands for, as the ByteLevel decoder gives them: each character
 * mapped back to its byte, or the string's own bytes when one character is no byte's.
 * out has room for n bytes; returns the length and whether it was mapped */
size_t trainer__bpe_decode_token(const char *str, size_t n, uint8_t *out, bool *mapped)
{
  const uint8_t *s = (const uint8_t *)str;
  size_t k = 0;
  for (size_t i = 0; i < n;) {
    uint32_t cp = s[i];
    size_t len = 1;
    if (cp >= 0xC0 && cp < 0xE0 && i + 1 < n) cp = (cp & 0x1F) << 6 | (s[i + 1] & 0x3F), len = 2;
    int b = (cp >= 0x80 && len == 1) ? -1 : char_byte(cp);
    if (b < 0) {
      memcpy(out, s, n);
      *mapped = false;
      return n;
    }
    out[k++] = (uint8_t)b;
    i += len;
  }
  *mapped = true;
  return k;
}

static inline uint64_t merge_get(const tok_bpe *b, uint32_t l, uint32_t r)
{
  uint64_t key = (uint64_t)l << 32 | r;
  for (uint64_t i = (key * 0x9E3779B97F4A7C15ull) >> b->mshift;; i = (i + 1) & b->mmask) {
    if (b->mkey[i] == key) return b->mval[i];
    if (b->mkey[i] == UINT64_MAX) return UINT64_MAX;
  }
}

/* the vocab id whose piece is w[0..m), or NO_ID */
static inline uint32_t vocab_get(const tok_bpe *b, const uint8_t *w, size_t m)
{
  for (uint64_t i = hash_bytes(w, m) & b->vmask;; i = (i + 1) & b->vmask) {
    uint32_t id = b->vtab[i];
    if (id == NO_ID) return NO_ID;
    if (b->off[id + 1] - b->off[id] == m && memcmp(b->bytes + b->off[id], w, m) == 0) return id;
  }
}

/* ---------------------------------------------------------------- merging one word */

/* the ids of word w[0..m) (m >= 2) by scanning: out has room for m */
static size_t merge_linear(const tok_bpe *b, const uint8_t *w, size_t m, uint32_t *id)
{
  uint32_t rk[LINEAR_MAX], nw[LINEAR_MAX];
  size_t cnt = m;
  for (size_t i = 0; i < m; i++)
    id[i] = b->byte_id[w[i]];
  for (size_t i = 0; i + 1 < cnt; i++) {
    uint64_t v = merge_get(b, id[i], id[i + 1]);
    rk[i] = (uint32_t)(v >> 32);
    nw[i] = (uint32_t)v;
  }
  for (;;) {
    uint32_t best = NO_RANK;
    size_t bi = 0;
    for (size_t i = 0; i + 1 < cnt; i++)
      if (rk[i] < best) best = rk[i], bi = i;
    if (best == NO_RANK) break;
    id[bi] = nw[bi];
    size_t tail = cnt - bi - 2;
    memmove(id + bi + 1, id + bi + 2, tail * sizeof *id);
    memmove(rk + bi + 1, rk + bi + 2, (tail ? tail - 1 : 0) * sizeof *rk);
    memmove(nw + bi + 1, nw + bi + 2, (tail ? tail - 1 : 0) * sizeof *nw);
    cnt--;
    if (bi + 1 < cnt) {
      uint64_t v = merge_get(b, id[bi], id[bi + 1]);
      rk[bi] = (uint32_t)(v >> 32), nw[bi] = (uint32_t)v;
    }
    if (bi > 0) {
      uint64_t v = merge_get(b, id[bi - 1], id[bi]);
      rk[bi - 1] = (uint32_t)(v >> 32), nw[bi - 1] = (uint32_t)v;
    }
  }
  return cnt;
}

typedef struct hentry {
  uint32_t rank, pos, nw, span; /* a merge of the symbols at pos and after it, span bytes */
} hentry;

static inline bool hless(const hentry *a, const hentry *c)
{
  return a->rank < c->rank || (a->rank == c->rank && a->pos < c->pos);
}

static void hpush(hentry *h, size_t *n, hentry e)
{
  size_t i = (*n)++;
  while (i > 0 && hless(&e, &h[(i - 1) / 2])) {
    h[i] = h[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  h[i] = e;
}

static hentry hpop(hentry *h, size_t *n)
{
  hentry top = h[0], last = h[--*n];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= *n) break;
    if (c + 1 < *n && hless(&h[c + 1], &h[c])) c++;
    if (!hless(&h[c], &last)) break;
    h[i] = h[c];
    i = c;
  }
  if (*n) h[i] = last;
  return top;
}

/* the ids of a long word with a heap of candidate merges (Hugging Face's word.rs): an entry
 * still holds when its symbol lives and spans, with its next, the bytes it was made for
 * (symbols only grow, so the same span is the same pair) */
static mn_status merge_heap(const tok_bpe *b, const uint8_t *w, size_t m, uint32_t *out,
                            size_t *nout, mn_error *err)
{
  uint32_t *id = malloc(m * 3 * sizeof *id);
  hentry *h = malloc(m * 3 * sizeof *h); /* pushes: m - 1, then at most 2 a merge */
  if (!id || !h) {
    free(id);
    free(h);
    return mn_error_set(err, MN_ERR_NOMEM, "out of memory merging a word of %zu bytes", m);
  }
  uint32_t *len = id + m, *prev = id + 2 * m; /* next of i is i + len[i] */
  size_t nh = 0;
  for (size_t i = 0; i < m; i++)
    id[i] = b->byte_id[w[i]], len[i] = 1, prev[i] = (uint32_t)i - 1;
  for (size_t i = 0; i + 1 < m; i++) {
    uint64_t v = merge_get(b, id[i], id[i + 1]);
    if (v != UINT64_MAX) hpush(h, &nh, (hentry){(uint32_t)(v >> 32), (uint32_t)i, (uint32_t)v, 2});
  }
  while (nh) {
    hentry e = hpop(h, &nh);
    size_t p = e.pos, q = p + len[p];
    if (!len[p] || q >= m || len[p] + len[q] != e.span) continue;
    id[p] = e.nw;
    len[p] += len[q];
    len[q] = 0;
    size_t r = p + len[p];
    if (r < m) {
      prev[r] = (uint32_t)p;
      uint64_t v = merge_get(b, id[p], id[r]);
      if (v != UINT64_MAX)
        hpush(h, &nh, (hentry){(uint32_t)(v >> 32), (uint32_t)p, (uint32_t)v, len[p] + len[r]});
    }
    if (p > 0) {
      size_t l = prev[p];
      uint64_t v = merge_get(b, id[l], id[p]);
      if (v != UINT64_MAX)
        hpush(h, &nh, (hentry){(uint32_t)(v >> 32), (uint32_t)l, (uint32_t)v, len[l] + len[p]});
    }
  }
  size_t k = 0;
  for (size_t i = 0; i < m; i += len[i])
    out[k++] = id[i];
  *nout = k;
  free(id);
  free(h);
  return MN_OK;
}

/* ---------------------------------------------------------------- the word cache */

struct tok_cache {
  uint64_t serial; /* the tokenizer its words are of; 0: none yet */
  size_t used, kbytes, nids;
  struct centry {
    uint64_t h; /* 0: empty */
    uint32_t koff, ioff;
    uint16_t klen, nids;
  } * slot;
  uint8_t *keys;
  uint32_t *ids;
};

mn_status tok_cache_create(tok_cache **out, mn_error *err)
{
  tok_cache *c = calloc(1, sizeof *c);
  if (c) {
    c->slot = calloc(CACHE_SLOTS, sizeof *c->slot);
    c->keys = malloc(CACHE_BYTES);
    c->ids = malloc(CACHE_BYTES * sizeof *c->ids);
  }
  if (!c || !c->slot || !c->keys || !c->ids) {
    tok_cache_destroy(c);
    *out = NULL;
    return mn_error_set(err, MN_ERR_NOMEM, "out of memory for a tokenizer cache");
  }
  *out = c;
  return MN_OK;
}

void tok_cache_destroy(tok_cache *c)
{
  if (!c) return;
  free(c->slot);
  free(c->keys);
  free(c->ids);
  free(c);
}

static void cache_clear(tok_cache *c, uint64_t serial)
{
  if (c->used) memset(c->slot, 0, CACHE_SLOTS * sizeof *c->slot);
  c->used = c->kbytes = c->nids = 0;
  c->serial = serial;
}

/* ---------------------------------------------------------------- encoding */

/* the ids of one pre-token w[0..m) written to out (room for m); MN_ERR_NOMEM only */
static mn_status encode_word(const tok_bpe *b, tok_cache *c, const uint8_t *w, size_t m,
                             uint32_t *out, size_t *nout, mn_error *err)
{
  if (m == 1) {
    out[0] = b->byte_id[w[0]];
    *nout = 1;
    return MN_OK;
  }
  uint64_t h = 0, i = 0;
  if (c && m <= CACHE_WORD) {
    h = hash_bytes(w, m);
    for (i = h & (CACHE_SLOTS - 1); c->slot[i].h; i = (i + 1) & (CACHE_SLOTS - 1)) {
      const struct centry *e = &c->slot[i];
      if (e->h == h && e->klen == m && memcmp(c->keys + e->koff, w, m) == 0) {
        memcpy(out, c->ids + e->ioff, e->nids * sizeof *out);
        *nout = e->nids;
        return MN_OK;
      }
    }
  }
  uint32_t id = b->ignore_merges ? vocab_get(b, w, m) : NO_ID;
  if (id != NO_ID) {
    out[0] = id;
    *nout = 1;
  } else if (m <= LINEAR_MAX) {
    *nout = merge_linear(b, w, m, out);
  } else {
    mn_status rc = merge_heap(b, w, m, out, nout, err);
    if (rc != MN_OK) return rc;
  }
  if (h) {
    if (c->used >= CACHE_SLOTS / 2 || c->kbytes + m > CACHE_BYTES || c->nids + m > CACHE_BYTES) {
      cache_clear(c, c->serial);
      for (i = h & (CACHE_SLOTS - 1); c->slot[i].h; i = (i + 1) & (CACHE_SLOTS - 1)) {
      }
    }
    struct centry *e = &c->slot[i];
    e->h = h;
    e->koff = (uint32_t)c->kbytes;
    e->klen = (uint16_t)m;
    e->ioff = (uint32_t)c->nids;
    e->nids = (uint16_t)*nout;
    memcpy(c->keys + c->kbytes, w, m);
    memcpy(c->ids + c->nids, out, *nout * sizeof *out);
    c->kbytes += m;
    c->nids += *nout;
    c->used++;
  }
  return MN_OK;
}

typedef struct out_ids {
  uint32_t **ids;
  size_t *len, *cap;
} out_ids;

static mn_status reserve(out_ids *o, size_t extra, mn_error *err)
{
  if (*o->cap - *o->len >= extra) return MN_OK;
  size_t want = *o->cap ? *o->cap : 256;
  while (want - *o->len < extra) {
    if (want > SIZE_MAX / 2 / sizeof **o->ids)
      return mn_error_set(err, MN_ERR_NOMEM, "too many token ids");
    want *= 2;
  }
  uint32_t *p = realloc(*o->ids, want * sizeof *p);
  if (!p) return mn_error_set(err, MN_ERR_NOMEM, "out of memory for %zu token ids", want);
  *o->ids = p;
  *o->cap = want;
  return MN_OK;
}

/* pre-tokenize s[0..n) and encode each piece */
static mn_status encode_words(const tok_bpe *b, tok_cache *c, const uint8_t *s, size_t n,
                              out_ids *o, mn_error *err)
{
  mn_status rc = reserve(o, n, err);
  for (size_t i = 0; rc == MN_OK && i < n;) {
    size_t k = b->split == TOK_SPLIT_NONE ? n - i : trainer__split_next(b->split, s + i, n - i);
    size_t got = 0;
    rc = encode_word(b, c, s + i, k, *o->ids + *o->len, &got, err);
    *o->len += got;
    i += k;
  }
  return rc;
}

static bool is_space_at(const uint8_t *s, size_t n, size_t *len);
static bool is_space_before(const uint8_t *s, size_t i, size_t *len);

/* the leftmost, longest added token of kind `norm` in s[from..n): its span (lstrip and rstrip
 * applied, not before `from`) and index; false when there is none */
static bool find_added(const tok_bpe *b, int norm, bool specials, const uint8_t *s, size_t n,
                       size_t from, size_t *start, size_t *end, size_t *which)
{
  if (!b->nadded_kind[norm]) return false;
  const uint8_t *first = b->first[norm];
  for (size_t i = from; i < n; i++) {
    if (!(first[s[i] >> 3] & (1u << (s[i] & 7)))) continue;
    size_t best = SIZE_MAX;
    for (size_t t = 0; t < b->nadded; t++) { /* longest first: the array is sorted so */
      const added_tok *a = &b->added[t];
      if (a->normalized == norm && (specials || !a->special) && a->n <= n - i &&
          memcmp(a->s, s + i, a->n) == 0) {
        best = t;
        break;
      }
    }
    if (best == SIZE_MAX) continue;
    const added_tok *a = &b->added[best];
    size_t st = i, en = i + a->n, k;
    if (a->lstrip)
      while (st > from && is_space_before(s, st, &k))
        st -= k;
    if (a->rstrip)
      while (en < n && is_space_at(s + en, n - en, &k))
        en += k;
    *start = st, *end = en, *which = best;
    return true;
  }
  return false;
}

/* normalize s[0..n), cut out the normalized added tokens, encode the rest */
static mn_status encode_normalized(const tok_bpe *b, tok_cache *c, bool specials, const uint8_t *s,
                                   size_t n, out_ids *o, mn_error *err)
{
  mn_status rc = MN_OK;
  mn_buf nb;
  mn_buf_init(&nb, SIZE_MAX / 2);
  if (b->nfc && !mn_nfc_quick((const char *)s, n)) {
    if ((rc = mn_nfc((const char *)s, n, &nb, err)) != MN_OK) goto out;
    s = (const uint8_t *)nb.data;
    n = nb.len;
  }
  size_t pos = 0, st, en, which;
  while (rc == MN_OK && find_added(b, 1, specials, s, n, pos, &st, &en, &which)) {
    if ((rc = encode_words(b, c, s + pos, st - pos, o, err)) != MN_OK) goto out;
    if ((rc = reserve(o, 1, err)) != MN_OK) goto out;
    (*o->ids)[(*o->len)++] = b->added[which].id;
    pos = en;
  }
  if (rc == MN_OK) rc = encode_words(b, c, s + pos, n - pos, o, err);
out:
  mn_buf_fini(&nb);
  return rc;
}

/* s[0..n) with each maximal invalid subpart replaced by U+FFFD (WHATWG's UTF-8 decoder);
 * out has room for 3n bytes */
static size_t replace_invalid(const uint8_t *s, size_t n, uint8_t *out)
{
  size_t k = 0;
  for (size_t i = 0; i < n;) {
    uint8_t c = s[i];
    size_t need = 0;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c < 0x80) {
      out[k++] = c;
      i++;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF)
      need = 1;
    else if (c >= 0xE0 && c <= 0xEF)
      need = 2, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4)
      need = 3, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    size_t j = i + 1, got = 0;
    while (got < need && j < n && s[j] >= lo && s[j] <= hi)
      j++, got++, lo = 0x80, hi = 0xBF;
    if (need && got == need) {
      memcpy(out + k, s + i, j - i);
      k += j - i;
    } else {
      k += trainer__bpe_utf8_put(0xFFFD, out + k);
    }
    i = j;
  }
  return k;
}

mn_status trainer__bpe_encode(const tok_bpe *b, tok_cache *c, bool specials, const char *text,
                              size_t n, uint32_t **ids, size_t *len, size_t *cap, mn_error *err)
{
  mn_status rc = MN_OK;
  out_ids o = {ids, len, cap};
  const uint8_t *s = (const uint8_t *)text;
  uint8_t *fixed = NULL;
  if (c && c->serial != b->serial) cache_clear(c, b->serial);
  size_t bad;
  if (mn_utf8_check(s, n, &bad) != MN_UTF8_OK) {
    if (n > SIZE_MAX / 3 || !(fixed = malloc(3 * n)))
      return mn_error_set(err, MN_ERR_NOMEM, "out of memory encoding %zu bytes", n);
    n = replace_invalid(s, n, fixed);
    s = fixed;
  }
  size_t pos = 0, st, en, which;
  while (find_added(b, 0, specials, s, n, pos, &st, &en, &which)) {
    if ((rc = encode_normalized(b, c, specials, s + pos, st - pos, &o, err)) != MN_OK) goto out;
    if ((rc = reserve(&o, 1, err)) != MN_OK) goto out;
    (*ids)[(*len)++] = b->added[which].id;
    pos = en;
  }
  rc = encode_normalized(b, c, specials, s + pos, n - pos, &o, err);
out:
  free(fixed);
  return rc;
}

size_t trainer__bpe_piece(const tok_bpe *b, uint32_t id, const uint8_t **bytes)
{
  if (id >= b->nid || (b->kind[id] & K_SPECIAL)) {
    *bytes = (const uint8_t *)"";
    return 0;
  }
  *bytes = b->bytes + b->off[id];
  return b->off[id + 1] - b->off[id];
}

static uint32_t cp_at(const uint8_t *s, size_t n, size_t *len)
{
  uint8_t c = s[0];
  if (c < 0x80 || n < 2) return *len = 1, c;
  if (c < 0xE0) return *len = 2, (uint32_t)(c & 0x1F) << 6 | (s[1] & 0x3F);
  if (c < 0xF0 || n < 4)
    return *len = n < 3 ? 1 : 3,
           (uint32_t)(c & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
  *len = 4;
  return (uint32_t)(c & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 | (uint32_t)(s[2] & 0x3F) << 6 |
         (s[3] & 0x3F);
}

static bool is_space_at(const uint8_t *s, size_t n, size_t *len)
{
  return (mn_uc_props(cp_at(s, n, len)) & MN_UC_SPACE) != 0;
}

/* whether the character that ends at s[i] is white space (its length in *len) */
static bool is_space_before(const uint8_t *s, size_t i, size_t *len)
{
  size_t j = i - 1;
  while (j > 0 && i - j < 4 && (s[j] & 0xC0) == 0x80)
    j--;
  size_t k;
  bool sp = is_space_at(s + j, i - j, &k) && j + k == i;
  *len = i - j;
  return sp;
}
