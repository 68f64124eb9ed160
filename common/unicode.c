/*
 * unicode.c -- Unicode character properties and NFC, from generated tables.
 *
 * For the byte-level BPE pre-tokenizers (trainer/bpe_split.c) and their NFC normalizer:
 * the general categories L, N, M, the White_Space property, canonical combining classes
 * and canonical (de)composition, all of one Unicode version (MN_UC_VERSION in
 * unicode_tables.h, written by scripts/gen-unicode).  Not for case mapping, scripts
 * (script.c) or compatibility forms (NFKC).
 *
 * Invariants: the lookup table is built once, on first use (pthread_once), from the
 * range table; afterwards it is read-only, so lookups may run on any thread.  Lookups take
 * any uint32_t: past U+10FFFF everything is 0.
 */
#include "common/common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/unicode_tables.h"

#define NRANGES (sizeof mn_uc_ranges / sizeof mn_uc_ranges[0])
#define NDECOMP (sizeof mn_uc_decomp / sizeof mn_uc_decomp[0])
#define NCP     0x110000u

/* the lookup: stage1[cp >> 7] is a block of 128 uint16 values (flags | ccc << 8) */
static uint16_t stage1[NCP >> 7];
static uint16_t stage2[MN_UC_BLOCKS][128];
/* the primary composites: (first << 21 | second) and the composite, sorted by the pair */
static uint64_t comp_pair[NDECOMP];
static uint32_t comp_char[NDECOMP];
static size_t ncomp;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static _Atomic(const uint16_t *) ready; /* stage1 once built */

static int cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a >> 21, y = *(const uint64_t *)b >> 21;
  return x < y ? -1 : x > y;
}

static void build(void)
{
  static uint16_t block[128];
  size_t r = 0, nblocks = 0;
  for (uint32_t b = 0; b < NCP; b += 128) {
    for (uint32_t i = 0; i < 128; i++) {
      uint32_t cp = b + i;
      while (r + 1 < NRANGES && (mn_uc_ranges[r + 1] & 0x1FFFFF) <= cp)
        r++;
      uint32_t v = mn_uc_ranges[r] >> 21;
      block[i] = (uint16_t)((v & 31) | (uint32_t)mn_uc_ccc[v >> 5] << 8);
    }
    size_t k = 0;
    while (k < nblocks && memcmp(stage2[k], block, sizeof block) != 0)
      k++;
    if (k == nblocks) {
      if (nblocks == MN_UC_BLOCKS) abort(); /* the generator counted them: cannot happen */
      memcpy(stage2[nblocks++], block, sizeof block);
    }
    stage1[b >> 7] = (uint16_t)k;
  }
  /* composition pairs: (first << 21 | second) << 21 | composite, sorted by the pair */
  uint64_t *tmp = malloc(NDECOMP * sizeof *tmp);
  if (!tmp) abort(); /* 16 KB once at start-up; nothing sensible to do without it */
  for (size_t i = 0; i < NDECOMP; i++) {
    uint64_t d = mn_uc_decomp[i];
    uint64_t second = (d >> 42) & 0x1FFFFF;
    if (second && !(d >> 63))
      tmp[ncomp++] = ((d >> 21) & 0x1FFFFF) << 42 | second << 21 | (d & 0x1FFFFF);
  }
  qsort(tmp, ncomp, sizeof *tmp, cmp_u64);
  for (size_t i = 0; i < ncomp; i++) {
    comp_pair[i] = tmp[i] >> 21;
    comp_char[i] = (uint32_t)(tmp[i] & 0x1FFFFF);
  }
  free(tmp);
  atomic_store_explicit(&ready, stage1, memory_order_release);
}

const char *mn_uc_version(void)
{
  return MN_UC_VERSION;
}

uint32_t mn_uc_props(uint32_t cp)
{
  if (cp >= NCP) return 0;
  const uint16_t *s1 = atomic_load_explicit(&ready, memory_order_acquire);
  if (!s1) {
    pthread_once(&once, build);
    s1 = stage1;
  }
  return stage2[s1[cp >> 7]][cp & 127];
}

/* ---------------------------------------------------------------- NFC */

#define SBASE  0xAC00u
#define LBASE  0x1100u
#define VBASE  0x1161u
#define TBASE  0x11A7u
#define LCOUNT 19u
#define VCOUNT 21u
#define TCOUNT 28u
#define NCOUNT (VCOUNT * TCOUNT)
#define SCOUNT (LCOUNT * NCOUNT)

static size_t utf8_next(const uint8_t *s, size_t n, uint32_t *cp)
{
  uint8_t c = s[0];
  if (c < 0x80 || n < 2) return *cp = c, 1;
  if (c < 0xE0) return *cp = (uint32_t)(c & 0x1F) << 6 | (s[1] & 0x3F), 2;
  if (c < 0xF0 || n < 4)
    return *cp = (uint32_t)(c & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F), 3;
  *cp = (uint32_t)(c & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 | (uint32_t)(s[2] & 0x3F) << 6 |
        (s[3] & 0x3F);
  return 4;
}

static size_t utf8_put(uint32_t cp, uint8_t *o)
{
  if (cp < 0x80) return o[0] = (uint8_t)cp, 1;
  if (cp < 0x800) return o[0] = (uint8_t)(0xC0 | cp >> 6), o[1] = (uint8_t)(0x80 | (cp & 63)), 2;
  if (cp < 0x10000) {
    o[0] = (uint8_t)(0xE0 | cp >> 12);
    o[1] = (uint8_t)(0x80 | (cp >> 6 & 63));
    o[2] = (uint8_t)(0x80 | (cp & 63));
    return 3;
  }
  o[0] = (uint8_t)(0xF0 | cp >> 18);
  o[1] = (uint8_t)(0x80 | (cp >> 12 & 63));
  o[2] = (uint8_t)(0x80 | (cp >> 6 & 63));
  o[3] = (uint8_t)(0x80 | (cp & 63));
  return 4;
}

bool mn_nfc_quick(const char *text, size_t n)
{
  const uint8_t *s = (const uint8_t *)text;
  unsigned last = 0;
  for (size_t i = 0; i < n;) {
    if (s[i] < 0x80) {
      last = 0;
      i++;
      continue;
    }
    uint32_t cp;
    i += utf8_next(s + i, n - i, &cp);
    uint32_t p = mn_uc_props(cp);
    unsigned ccc = p >> 8;
    if ((p & MN_UC_NFC_QC) || (ccc && last > ccc)) return false;
    last = ccc;
  }
  return true;
}

/* decompose cp fully into out (at most 4 code points for any canonical decomposition) */
static size_t decompose(uint32_t cp, uint32_t *out)
{
  if (cp - SBASE < SCOUNT) {
    uint32_t s = cp - SBASE, t = s % TCOUNT;
    out[0] = LBASE + s / NCOUNT;
    out[1] = VBASE + (s % NCOUNT) / TCOUNT;
    if (!t) return 2;
    out[2] = TBASE + t;
    return 3;
  }
  size_t lo = 0, hi = NDECOMP;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    uint32_t c = (uint32_t)(mn_uc_decomp[mid] & 0x1FFFFF);
    if (c == cp) {
      uint64_t d = mn_uc_decomp[mid];
      uint32_t first = (uint32_t)(d >> 21 & 0x1FFFFF), second = (uint32_t)(d >> 42 & 0x1FFFFF);
      size_t k = decompose(first, out);
      if (second) k += decompose(second, out + k);
      return k;
    }
    if (c < cp)
      lo = mid + 1;
    else
      hi = mid;
  }
  out[0] = cp;
  return 1;
}

static uint32_t compose(uint32_t a, uint32_t b)
{
  if (a - LBASE < LCOUNT && b - VBASE < VCOUNT)
    return SBASE + ((a - LBASE) * VCOUNT + (b - VBASE)) * TCOUNT;
  if (a - SBASE < SCOUNT && (a - SBASE) % TCOUNT == 0 && b - TBASE - 1 < TCOUNT - 1)
    return a + (b - TBASE);
  uint64_t key = (uint64_t)a << 21 | b;
  size_t lo = 0, hi = ncomp;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (comp_pair[mid] == key) return comp_char[mid];
    if (comp_pair[mid] < key)
      lo = mid + 1;
    else
      hi = mid;
  }
  return 0;
}

mn_status mn_nfc(const char *text, size_t n, mn_buf *out, mn_error *err)
{
  const uint8_t *s = (const uint8_t *)text;
  (void)mn_uc_props(0); /* the tables are built */
  /* each byte decomposes into at most 4 code points (a 1-byte character never decomposes) */
  uint32_t *cp = malloc((n + 1) * 4 * sizeof *cp);
  if (!cp) return mn_error_set(err, MN_ERR_NOMEM, "out of memory normalizing %zu bytes", n);
  size_t m = 0;
  for (size_t i = 0; i < n;) {
    uint32_t c;
    i += utf8_next(s + i, n - i, &c);
    size_t k = decompose(c, cp + m);
    /* canonical order: each new mark moves left past marks of a higher class */
    for (size_t j = m; j < m + k; j++) {
      unsigned cc = mn_uc_props(cp[j]) >> 8;
      size_t q = j;
      while (cc && q > 0 && (mn_uc_props(cp[q - 1]) >> 8) > cc) {
        uint32_t t = cp[q - 1];
        cp[q - 1] = cp[q];
        cp[q] = t;
        q--;
      }
    }
    m += k;
  }
  /* canonical composition (UAX #15): a character joins the last starter unless blocked */
  size_t w = 0;
  long starter = -1;
  unsigned last = 0;
  for (size_t i = 0; i < m; i++) {
    uint32_t c = cp[i];
    unsigned cc = mn_uc_props(c) >> 8;
    if (starter >= 0 && (w == (size_t)starter + 1 || (last && last < cc))) {
      uint32_t x = compose(cp[starter], c);
      if (x) {
        cp[starter] = x;
        continue;
      }
    }
    if (!cc) starter = (long)w;
    last = cc;
    cp[w++] = c;
  }
  mn_status rc = mn_buf_reserve(out, w * 4, err);
  if (rc == MN_OK)
    for (size_t i = 0; i < w; i++)
      out->len += utf8_put(cp[i], (uint8_t *)out->data + out->len);
  free(cp);
  return rc;
}
