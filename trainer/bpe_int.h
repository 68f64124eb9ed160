/*
 * bpe_int.h -- what bpe.c (encoding) and bpe_load.c (tokenizer.json) share: the tokenizer's
 * tables; tokenizer.c takes its UTF-8 writer (for the byte tokenizer's tokenizer.json).
 */
#ifndef MNEMO_TRAINER_BPE_INT_H
#define MNEMO_TRAINER_BPE_INT_H

#include "trainer/trainer_int.h"

#include <string.h>

#define NO_ID       UINT32_MAX
#define NO_RANK     UINT32_MAX
#define LINEAR_MAX  128       /* words up to this many bytes merge by scanning; longer: a heap */
#define CACHE_WORD  255       /* longest word the cache keeps */
#define CACHE_SLOTS (1 << 17) /* the cache empties at half full */
#define CACHE_BYTES (4u << 20)

enum { K_VOCAB = 1, K_RAW = 2, K_ADDED = 4, K_SPECIAL = 8 };

typedef struct added_tok {
  uint8_t *s; /* content (NFC'd when normalized and the tokenizer normalizes) */
  size_t n;
  uint32_t id;
  bool special, lstrip, rstrip, normalized;
} added_tok;

struct tok_bpe {
  tok_split split;
  bool bytelevel_regex; /* spelled as ByteLevel with use_regex (GPT-2) rather than a Split */
  bool nfc, ignore_merges;
  uint32_t nid;  /* ids 0..nid-1: the model's and added tokens (not tags) */
  uint32_t *off; /* nid + 1: the piece of id i is bytes[off[i]..off[i+1]) */
  uint8_t *bytes;
  uint32_t *voff; /* nid + 1: the vocab string of id i (K_VOCAB) in vstr */
  char *vstr;
  uint8_t *kind;         /* nid: K_* */
  uint32_t byte_id[256]; /* the token of each byte */
  uint64_t *mkey, *mval; /* merges: (left << 32 | right) -> (rank << 32 | new id) */
  uint64_t mmask;
  int mshift;
  uint32_t *merges; /* nmerges pairs (left, right) in rank order */
  size_t nmerges;
  uint32_t *vtab; /* the vocab by its bytes (ignore_merges), open addressing, NO_ID empty */
  uint64_t vmask;
  added_tok *added;
  size_t nadded, nadded_kind[2]; /* of normalized false, true */
  uint8_t first[2][32];          /* first bytes of added tokens, by normalized */
  json_t *post;                  /* the post_processor as read, or NULL */
  uint64_t serial;
};

/* hash of a byte string (never 0) */

static inline uint64_t mix(uint64_t h)
{
  h ^= h >> 32;
  h *= 0xd6e8feb86659fd93ull;
  h ^= h >> 32;
  return h;
}

static inline uint64_t hash_bytes(const uint8_t *p, size_t n)
{
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xbf58476d1ce4e5b9ull);
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    h = (h ^ w) * 0x94d049bb133111ebull;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  if (n) {
    uint64_t w = 0;
    memcpy(&w, p, n);
    h = (h ^ w) * 0x94d049bb133111ebull;
  }
  return mix(h) | 1; /* never 0: the cache's empty mark */
}

/* trainer__bpe_utf8_put -- cp (below U+10000) as UTF-8 at o: its length */
size_t trainer__bpe_utf8_put(uint32_t cp, uint8_t *o);
/* trainer__bpe_decode_token -- the bytes of a token string as the ByteLevel decoder gives
 * them (out has room for n); *mapped: whether every character was a byte's */
size_t trainer__bpe_decode_token(const char *str, size_t n, uint8_t *out, bool *mapped);

#endif /* MNEMO_TRAINER_BPE_INT_H */
