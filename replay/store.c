/*
 * store.c -- the replay store: reservoirs of token windows per language, and
 * their file (format in replay.h).
 */
#include "replay/replay.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAGIC      "MNREPLAY"
#define HEADER_V1  32
#define HEADER     64 /* version 2: the tokenizer's sha at 32 */
#define LANG_ENTRY 48

/* ---------------------------------------------------------------- randomness */

/* below -- uniform in [0, n) (n >= 1); the bias is below n / 2^64 */
static uint64_t below(uint64_t *state, uint64_t n)
{
  return (uint64_t)(((unsigned __int128)mn_splitmix64(state) * n) >> 64);
}

/* a new language's first state: its code, hashed (FNV-1a), so stores are reproducible */
static uint64_t seed_of(const char *code)
{
  uint64_t h = 1469598103934665603ULL;
  for (const char *p = code; *p; p++)
    h = (h ^ (unsigned char)*p) * 1099511628211ULL;
  return h;
}

/* ---------------------------------------------------------------- the store in memory */

void replay_store_init(replay_store *s, uint32_t window, const char *tok_sha256)
{
  memset(s, 0, sizeof *s);
  s->window = window;
  snprintf(s->tok_sha256, sizeof s->tok_sha256, "%s", tok_sha256 ? tok_sha256 : "");
}

/* tok_bytes -- a tokenizer identity as the file stores it: 32 bytes, not all zero; false when
 * hex is not one */
static bool tok_bytes(const char *hex, uint8_t out[MN_SHA256_LEN])
{
  static const uint8_t zero[MN_SHA256_LEN];
  return strlen(hex) == MN_SHA256_HEX_LEN &&
         mn_hex_decode(hex, out, MN_SHA256_LEN) == MN_SHA256_LEN &&
         memcmp(out, zero, MN_SHA256_LEN) != 0;
}

void replay_store_fini(replay_store *s)
{
  if (!s) return;
  for (uint32_t i = 0; i < s->nlangs; i++)
    free(s->langs[i].windows);
  free(s->langs);
  s->langs = NULL;
  s->nlangs = 0;
}

const replay_lang *replay_store_find(const replay_store *s, const char *code)
{
  for (uint32_t i = 0; i < s->nlangs; i++)
    if (strcmp(s->langs[i].code, code) == 0) return &s->langs[i];
  return NULL;
}

/* lang_get -- the language's reservoir, inserted in code order when new */
static mn_status lang_get(replay_store *s, const char *code, uint32_t capacity, replay_lang **out,
                          mn_error *err)
{
  size_t len = strlen(code);
  if (len == 0 || len >= REPLAY_CODE_SIZE)
    return mn_error_set(err, MN_ERR_INPUT,
                        "language code \"%.40s\" is empty or longer than %d bytes", code,
                        REPLAY_CODE_SIZE - 1);
  uint32_t at = 0;
  for (; at < s->nlangs; at++) {
    int c = strcmp(s->langs[at].code, code);
    if (c == 0) {
      if (s->langs[at].capacity != capacity)
        return mn_error_set(err, MN_ERR_INPUT,
                            "the replay store holds %s with a capacity of %u windows, not %u "
                            "(a reservoir keeps the capacity it was created with)",
                            code, s->langs[at].capacity, capacity);
      *out = &s->langs[at];
      return MN_OK;
    }
    if (c > 0) break;
  }
  if (capacity == 0)
    return mn_error_set(err, MN_ERR_INPUT, "a replay capacity must be at least one window");
  replay_lang *t = realloc(s->langs, (s->nlangs + 1) * sizeof *t);
  if (!t)
    return mn_error_set(err, MN_ERR_NOMEM, "out of memory adding %s to the replay store", code);
  s->langs = t;
  memmove(&s->langs[at + 1], &s->langs[at], (s->nlangs - at) * sizeof *t);
  s->nlangs++;
  replay_lang *l = &s->langs[at];
  memset(l, 0, sizeof *l);
  memcpy(l->code, code, len + 1);
  l->capacity = capacity;
  l->rng = seed_of(code);
  *out = l;
  return MN_OK;
}

mn_status replay_store_offer(replay_store *s, const char *code, uint32_t capacity,
                             const uint32_t *windows, size_t n, mn_error *err)
{
  replay_lang *l = NULL;
  mn_status rc = lang_get(s, code, capacity, &l, err);
  if (rc != MN_OK) return rc;
  size_t w = s->window;
  for (size_t i = 0; i < n; i++) {
    const uint32_t *win = windows + i * w;
    l->seen++;
    if (l->count < l->capacity) { /* still filling: keep every window */
      uint32_t *t = realloc(l->windows, ((size_t)l->count + 1) * w * sizeof *t);
      if (!t) return mn_error_set(err, MN_ERR_NOMEM, "out of memory holding replay windows");
      l->windows = t;
      memcpy(l->windows + (size_t)l->count * w, win, w * sizeof *win);
      l->count++;
      continue;
    }
    uint64_t j = below(&l->rng, l->seen); /* kept with probability capacity / seen */
    if (j < l->capacity) memcpy(l->windows + j * w, win, w * sizeof *win);
  }
  return MN_OK;
}

/* ---------------------------------------------------------------- the file */

mn_status replay_store_encode(const replay_store *s, mn_buf *out, mn_error *err)
{
  uint64_t total = 0;
  uint32_t width = 2; /* u16 unless an id needs more */
  for (uint32_t i = 0; i < s->nlangs; i++) {
    total += s->langs[i].count;
    for (size_t k = 0; k < (size_t)s->langs[i].count * s->window; k++)
      if (s->langs[i].windows[k] > 0xFFFF) width = 4;
  }
  uint8_t head[HEADER] = {0};
  if (!tok_bytes(s->tok_sha256, head + 32))
    return mn_error_set(err, MN_ERR_INPUT,
                        "a replay store must name the tokenizer of its windows (\"%.70s\" is not "
                        "a SHA-256)",
                        s->tok_sha256);
  memcpy(head, MAGIC, 8);
  mn_put_le32(head + 8, REPLAY_VERSION);
  mn_put_le32(head + 12, width);
  mn_put_le32(head + 16, s->window);
  mn_put_le32(head + 20, s->nlangs);
  mn_put_le64(head + 24, total);
  mn_buf_reset(out);
  mn_status rc = mn_buf_append(out, head, sizeof head, err);
  uint64_t first = 0;
  for (uint32_t i = 0; i < s->nlangs && rc == MN_OK; i++) {
    const replay_lang *l = &s->langs[i];
    uint8_t e[LANG_ENTRY] = {0};
    memcpy(e, l->code, strlen(l->code));
    mn_put_le32(e + 16, l->capacity);
    mn_put_le32(e + 20, l->count);
    mn_put_le64(e + 24, l->seen);
    mn_put_le64(e + 32, l->rng);
    mn_put_le64(e + 40, first);
    first += l->count;
    rc = mn_buf_append(out, e, sizeof e, err);
  }
  for (uint32_t i = 0; i < s->nlangs && rc == MN_OK; i++) {
    const replay_lang *l = &s->langs[i];
    size_t ntok = (size_t)l->count * s->window;
    if (ntok && (rc = mn_buf_reserve(out, ntok * width, err)) == MN_OK) {
      uint8_t *p = (uint8_t *)out->data + out->len;
      for (size_t k = 0; k < ntok; k++) /* little-endian whatever the host */
        if (width == 2)
          p[2 * k] = (uint8_t)l->windows[k], p[2 * k + 1] = (uint8_t)(l->windows[k] >> 8);
        else
          mn_put_le32(p + 4 * k, l->windows[k]);
      out->len += ntok * width;
    }
  }
  uint8_t sum[MN_SHA256_LEN];
  mn_sha256 h;
  if (rc == MN_OK) rc = mn_sha256_init(&h, err);
  if (rc == MN_OK) {
    rc = mn_sha256_update(&h, out->data, out->len, err);
    if (rc == MN_OK)
      rc = mn_sha256_final(&h, sum, err);
    else
      mn_sha256_abort(&h);
  }
  if (rc == MN_OK) rc = mn_buf_append(out, sum, sizeof sum, err);
  return rc;
}

mn_status replay_store_decode(const void *data, size_t n, const char *name, replay_store *out,
                              mn_error *err)
{
  const uint8_t *p = data;
  replay_store_init(out, 0, NULL);
#define BAD(...) mn_error_set(err, MN_ERR_CORRUPT, "replay store \"%s\": " __VA_ARGS__)
  if (n < HEADER_V1 + MN_SHA256_LEN || memcmp(p, MAGIC, 8) != 0)
    return BAD("not a replay store (no \"MNREPLAY\" header)", name);
  uint32_t version = mn_get_le32(p + 8), token_bytes = mn_get_le32(p + 12),
           window = mn_get_le32(p + 16);
  uint32_t nlangs = mn_get_le32(p + 20);
  uint64_t total = mn_get_le64(p + 24);
  if (version != 1 && version != REPLAY_VERSION)
    return BAD("version %u, this mnemo reads versions 1 to %d", name, version, REPLAY_VERSION);
  size_t head = version == 1 ? HEADER_V1 : HEADER;
  if (n < head + MN_SHA256_LEN) return BAD("truncated: shorter than its header", name);
  if (version >= 2) { /* version 1 names no tokenizer: the byte tokenizer's, left "" here */
    static const uint8_t zero[MN_SHA256_LEN];
    if (memcmp(p + 32, zero, MN_SHA256_LEN) == 0)
      return BAD("its header names no tokenizer (an all-zero SHA-256)", name);
  }
  if (token_bytes != 2 && token_bytes != 4)
    return BAD("%u-byte tokens, expected 2 or 4", name, token_bytes);
  if (window == 0 || window > (1u << 20)) return BAD("a window of %u tokens", name, window);
  /* sizes in 64 bits, each bounded before it is multiplied: no overflow below */
  uint64_t table = (uint64_t)nlangs * LANG_ENTRY, avail = n - head - MN_SHA256_LEN;
  if (table > avail) return BAD("truncated: %u languages announced", name, nlangs);
  if (total > (avail - table) / token_bytes / window ||
      head + table + total * window * token_bytes + MN_SHA256_LEN != n)
    return BAD("%zu bytes where the header announces %llu windows of %u tokens (truncated or "
               "extended)",
               name, n, (unsigned long long)total, window);
  uint8_t sum[MN_SHA256_LEN];
  mn_sha256 h;
  mn_status rc = mn_sha256_init(&h, err);
  if (rc == MN_OK) {
    rc = mn_sha256_update(&h, p, n - MN_SHA256_LEN, err);
    if (rc == MN_OK)
      rc = mn_sha256_final(&h, sum, err);
    else
      mn_sha256_abort(&h);
  }
  if (rc != MN_OK) return rc;
  if (memcmp(sum, p + n - MN_SHA256_LEN, MN_SHA256_LEN) != 0)
    return BAD("checksum mismatch (the file was changed or damaged)", name);

  out->window = window;
  if (version >= 2) mn_hex_encode(p + 32, MN_SHA256_LEN, out->tok_sha256);
  out->langs = nlangs ? calloc(nlangs, sizeof *out->langs) : NULL;
  if (nlangs && !out->langs)
    return mn_error_set(err, MN_ERR_NOMEM, "out of memory reading \"%s\"", name);
  uint64_t first = 0;
  const uint8_t *tokens = p + head + table;
  for (uint32_t i = 0; i < nlangs; i++) {
    const uint8_t *e = p + head + (size_t)i * LANG_ENTRY;
    replay_lang *l = &out->langs[i];
    out->nlangs = i + 1; /* so replay_store_fini releases what is read so far */
    if (memchr(e, '\0', REPLAY_CODE_SIZE) == NULL || e[0] == '\0') {
      rc = BAD("language %u has no valid code", name, i);
      break;
    }
    memcpy(l->code, e, REPLAY_CODE_SIZE);
    l->capacity = mn_get_le32(e + 16);
    l->count = mn_get_le32(e + 20);
    l->seen = mn_get_le64(e + 24);
    l->rng = mn_get_le64(e + 32);
    uint64_t f = mn_get_le64(e + 40);
    if (i > 0 && strcmp(out->langs[i - 1].code, l->code) >= 0) {
      rc = BAD("languages out of order at %s", name, l->code);
      break;
    }
    if (l->capacity == 0 || l->count != (l->seen < l->capacity ? l->seen : l->capacity) ||
        f != first || l->count > total - first) {
      rc = BAD("%s: capacity %u, %u windows held of %llu seen, first %llu: inconsistent", name,
               l->code, l->capacity, l->count, (unsigned long long)l->seen, (unsigned long long)f);
      break;
    }
    size_t ntok = (size_t)l->count * window;
    if (ntok) {
      l->windows = malloc(ntok * sizeof *l->windows);
      if (!l->windows) {
        rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory reading \"%s\"", name);
        break;
      }
      const uint8_t *q = tokens + first * window * token_bytes;
      for (size_t k = 0; k < ntok; k++)
        l->windows[k] =
            token_bytes == 2 ? (uint32_t)(q[2 * k] | q[2 * k + 1] << 8) : mn_get_le32(q + 4 * k);
    }
    first += l->count;
  }
  if (rc == MN_OK && first != total)
    rc = BAD("the languages hold %llu windows, the header says %llu", name,
             (unsigned long long)first, (unsigned long long)total);
#undef BAD
  if (rc != MN_OK) replay_store_fini(out);
  return rc;
}

mn_status replay_store_load(const char *path, replay_store *out, mn_error *err)
{
  mn_buf b;
  mn_buf_init(&b, (size_t)1 << 40);
  mn_status rc = mn_buf_read_file(&b, path, err);
  if (rc == MN_OK) rc = replay_store_decode(b.data, b.len, path, out, err);
  mn_buf_fini(&b);
  return rc;
}

mn_status replay_store_save(const replay_store *s, const char *path, mn_error *err)
{
  mn_buf b;
  mn_buf_init(&b, (size_t)1 << 40);
  mn_status rc = replay_store_encode(s, &b, err);
  if (rc == MN_OK) rc = mn_write_file_atomic(path, b.data, b.len, 0644, err);
  mn_buf_fini(&b);
  return rc;
}

mn_status replay_store_absorb(const char *path, const char *tok_sha256, const char *v1_tok_sha256,
                              uint32_t window, uint32_t capacity, const replay_offer *offers,
                              size_t noffers, mn_error *err)
{
  replay_store s;
  mn_status rc = MN_OK;
  if (access(path, F_OK) != 0 && errno == ENOENT)
    replay_store_init(&s, window, tok_sha256); /* no store yet: this absorb starts it */
  else if ((rc = replay_store_load(path, &s, err)) != MN_OK)
    return rc;
  if (!s.tok_sha256[0]) /* version 1: what the caller says such a store holds */
    snprintf(s.tok_sha256, sizeof s.tok_sha256, "%s", v1_tok_sha256);
  if (strcmp(s.tok_sha256, tok_sha256) != 0) {
    rc = mn_error_set(err, MN_ERR_INPUT,
                      "replay store \"%s\" holds windows of the tokenizer %.16s..., these are "
                      "of %.16s...: a store holds one tokenizer's ids (absorb them into another "
                      "store)",
                      path, s.tok_sha256, tok_sha256);
    mn_error_detail(err, "the store's tokenizer: %s; the offered windows': %s", s.tok_sha256,
                    tok_sha256);
  } else if (s.window != window)
    rc = mn_error_set(err, MN_ERR_INPUT,
                      "replay store \"%s\" holds windows of %u tokens, these are %u", path,
                      s.window, window);
  for (size_t i = 0; i < noffers && rc == MN_OK; i++)
    rc = replay_store_offer(&s, offers[i].code, capacity, offers[i].windows, offers[i].n, err);
  if (rc == MN_OK) rc = replay_store_save(&s, path, err);
  replay_store_fini(&s);
  return rc;
}

mn_status replay_store_checksum(const char *path, char hex[MN_SHA256_HEX_LEN + 1], mn_error *err)
{
  uint8_t sum[MN_SHA256_LEN];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return mn_error_set(err, MN_ERR_IO, "could not open \"%s\": %s", path, strerror(errno));
  off_t end = lseek(fd, 0, SEEK_END);
  ssize_t got = end >= (off_t)sizeof sum ? pread(fd, sum, sizeof sum, end - (off_t)sizeof sum) : -1;
  close(fd);
  if (got != (ssize_t)sizeof sum)
    return mn_error_set(err, MN_ERR_CORRUPT, "replay store \"%s\": too short for a checksum", path);
  mn_hex_encode(sum, sizeof sum, hex);
  return MN_OK;
}
