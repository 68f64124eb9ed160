/*
 * shard.c -- token shards: a tokenizer applied to documents, grouped by
 * language, written atomically, read back with every field checked.
 *
 * Not for: choosing which documents go in (the daemon exports them) or
 * sampling windows (loader.c).
 */
#include "trainer/trainer_int.h"

#include <stdlib.h>
#include <string.h>

#define HEADER_V1     64
#define HEADER_BYTES  104
#define SECTION_BYTES 32

struct shard_builder {
  const tokenizer *tok;
  tok_cache *cache;
  const tok_tags *tags;
  struct lang_buf {
    char code[8];
    uint32_t *tok;
    size_t n, cap;
    uint32_t docs;
  } * langs;
  size_t nlangs;
};

mn_status shard_builder_create(const tokenizer *tok, const tok_tags *tags, shard_builder **out,
                               mn_error *err)
{
  *out = calloc(1, sizeof **out);
  if (!*out) return mn_error_set(err, MN_ERR_NOMEM, "out of memory building a shard");
  (*out)->tok = tok;
  (*out)->tags = tags;
  for (int i = 0; i < tags->n; i++)
    if (tags->t[i].id < (int)tok_base(tok)) {
      shard_builder_destroy(*out);
      *out = NULL;
      return mn_error_set(err, MN_ERR_INPUT,
                          "tag %d of \"%s\" is one of the tokenizer's own ids (its tags start "
                          "at %u)",
                          tags->t[i].id, tags->t[i].code, tok_base(tok));
    }
  mn_status rc = tok_cache_create(&(*out)->cache, err);
  if (rc != MN_OK) {
    shard_builder_destroy(*out);
    *out = NULL;
  }
  return rc;
}

void shard_builder_destroy(shard_builder *b)
{
  if (!b) return;
  for (size_t i = 0; i < b->nlangs; i++)
    free(b->langs[i].tok);
  free(b->langs);
  tok_cache_destroy(b->cache);
  free(b);
}

/* push -- one token onto a language's buffer */
static mn_status push(struct lang_buf *l, uint32_t id, mn_error *err)
{
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 1 << 16;
    uint32_t *t = realloc(l->tok, cap * sizeof *t);
    if (!t) return mn_error_set(err, MN_ERR_NOMEM, "out of memory building a shard");
    l->tok = t;
    l->cap = cap;
  }
  l->tok[l->n++] = id;
  return MN_OK;
}

mn_status shard_builder_add(shard_builder *b, const char *lang, const char *text, size_t n,
                            mn_error *err)
{
  int tag = tok_tag_of(b->tags, lang);
  if (tag < 0)
    return mn_error_set(err, MN_ERR_INPUT,
                        "language \"%.16s\" has no tag in the tag table (tags are assigned by "
                        "the database: mnemoctl lang add, mnemoctl export)",
                        lang);
  struct lang_buf *l = NULL;
  for (size_t i = 0; i < b->nlangs && !l; i++)
    if (strcmp(b->langs[i].code, lang) == 0) l = &b->langs[i];
  if (!l) {
    struct lang_buf *g = realloc(b->langs, (b->nlangs + 1) * sizeof *g);
    if (!g) return mn_error_set(err, MN_ERR_NOMEM, "out of memory building a shard");
    b->langs = g;
    l = &b->langs[b->nlangs++];
    memset(l, 0, sizeof *l);
    snprintf(l->code, sizeof l->code, "%s", lang);
  }
  size_t n0 = l->n;
  mn_status rc = push(l, (uint32_t)tag, err);
  if (rc == MN_OK) rc = tok_encode(b->tok, b->cache, text, n, &l->tok, &l->n, &l->cap, err);
  if (rc == MN_OK) rc = push(l, tok_eot(b->tok), err);
  if (rc != MN_OK) {
    l->n = n0; /* the document is not half in */
    return rc;
  }
  l->docs++;
  return MN_OK;
}

static int by_code(const void *a, const void *b)
{
  return strcmp(((const struct lang_buf *)a)->code, ((const struct lang_buf *)b)->code);
}

/* put_tokens -- tokens as stored: little-endian, `width` bytes each (2 or 4) */
static void put_tokens(const uint32_t *t, size_t n, uint32_t width, uint8_t *out)
{
  for (size_t i = 0; i < n; i++)
    if (width == 2)
      out[2 * i] = (uint8_t)t[i], out[2 * i + 1] = (uint8_t)(t[i] >> 8);
    else
      mn_put_le32(out + 4 * i, t[i]);
}

/* each_stored -- the tokens of all languages as stored, a block at a time, to fn */
static mn_status each_stored(shard_builder *b, uint32_t width,
                             mn_status (*fn)(void *ctx, const uint8_t *p, size_t n, mn_error *err),
                             void *ctx, mn_error *err)
{
  enum { BLOCK = 1 << 16 };
  uint8_t *buf = malloc((size_t)BLOCK * width);
  if (!buf) return mn_error_set(err, MN_ERR_NOMEM, "out of memory writing a shard");
  mn_status rc = MN_OK;
  for (size_t i = 0; i < b->nlangs && rc == MN_OK; i++)
    for (size_t k = 0; k < b->langs[i].n && rc == MN_OK; k += BLOCK) {
      size_t m = b->langs[i].n - k < BLOCK ? b->langs[i].n - k : BLOCK;
      put_tokens(b->langs[i].tok + k, m, width, buf);
      rc = fn(ctx, buf, m * width, err);
    }
  free(buf);
  return rc;
}

static mn_status hash_block(void *ctx, const uint8_t *p, size_t n, mn_error *err)
{
  return mn_sha256_update(ctx, p, n, err);
}

/* hash_tokenizer -- what of a version 2 header the checksum covers before the tokens: the
 * base (4 bytes at 20), then the tokenizer's sha, the end of text and the reserved word (40
 * bytes at 64) */
static mn_status hash_tokenizer(mn_sha256 *h, const uint8_t *head, mn_error *err)
{
  mn_status rc = mn_sha256_update(h, head + 20, 4, err);
  if (rc == MN_OK) rc = mn_sha256_update(h, head + 64, 40, err);
  return rc;
}

static mn_status write_block(void *ctx, const uint8_t *p, size_t n, mn_error *err)
{
  return mn_atomic_write(ctx, p, n, err);
}

mn_status shard_builder_write(shard_builder *b, const char *path, mn_error *err)
{
  mn_status rc = MN_OK;
  mn_atomic_file *f = NULL;
  mn_sha256 h;
  uint8_t head[HEADER_BYTES] = {0}, digest[MN_SHA256_LEN], toksha[MN_SHA256_LEN];
  if (b->nlangs > 1) qsort(b->langs, b->nlangs, sizeof *b->langs, by_code);
  uint64_t total = 0;
  uint32_t width = 2; /* u16 unless an id needs more */
  for (size_t i = 0; i < b->nlangs; i++) {
    total += b->langs[i].n;
    for (size_t k = 0; k < b->langs[i].n; k++)
      if (b->langs[i].tok[k] > 0xFFFF) width = 4;
  }
  if (mn_hex_decode(tok_sha256(b->tok), toksha, sizeof toksha) != MN_SHA256_LEN)
    return mn_error_set(err, MN_ERR_INTERNAL, "the tokenizer has no identity");
  memcpy(head, "MNSHARD", 8);
  mn_put_le32(head + 8, SHARD_VERSION);
  mn_put_le32(head + 12, width);
  mn_put_le32(head + 16, (uint32_t)b->nlangs);
  mn_put_le32(head + 20, tok_base(b->tok));
  mn_put_le64(head + 24, total);
  memcpy(head + 64, toksha, MN_SHA256_LEN);
  mn_put_le32(head + 96, tok_eot(b->tok));
  /* the checksum covers the tokenizer the header names as well as the tokens (trainer.h) */
  if ((rc = mn_sha256_init(&h, err)) != MN_OK) return rc;
  if ((rc = hash_tokenizer(&h, head, err)) != MN_OK ||
      (rc = each_stored(b, width, hash_block, &h, err)) != MN_OK ||
      (rc = mn_sha256_final(&h, digest, err)) != MN_OK) {
    mn_sha256_abort(&h);
    return rc;
  }
  memcpy(head + 32, digest, MN_SHA256_LEN);
  if ((rc = mn_atomic_open(path, 0644, &f, err)) != MN_OK) return rc;
  rc = mn_atomic_write(f, head, sizeof head, err);
  uint64_t first = 0;
  for (size_t i = 0; i < b->nlangs && rc == MN_OK; i++) {
    uint8_t sec[SECTION_BYTES] = {0};
    memcpy(sec, b->langs[i].code, strlen(b->langs[i].code));
    mn_put_le32(sec + 8, (uint32_t)tok_tag_of(b->tags, b->langs[i].code));
    mn_put_le32(sec + 12, b->langs[i].docs);
    mn_put_le64(sec + 16, first);
    mn_put_le64(sec + 24, b->langs[i].n);
    first += b->langs[i].n;
    rc = mn_atomic_write(f, sec, sizeof sec, err);
  }
  if (rc == MN_OK) rc = each_stored(b, width, write_block, f, err);
  if (rc != MN_OK) {
    mn_atomic_abort(f);
    return rc;
  }
  return mn_atomic_commit(f, err);
}

static mn_status bad(const char *path, mn_error *err, const char *why)
{
  return mn_error_set(err, MN_ERR_CORRUPT, "could not read shard \"%s\": %s", path, why);
}

mn_status shard_read(const char *path, shard *s, mn_error *err)
{
  mn_buf b;
  memset(s, 0, sizeof *s);
  mn_buf_init(&b, (size_t)1 << 40);
  mn_status rc = mn_buf_read_file(&b, path, err);
  if (rc != MN_OK) {
    mn_buf_fini(&b);
    return rc;
  }
  const uint8_t *p = (const uint8_t *)b.data;
  uint32_t nsec = 0, version = 0, width = 0, head = 0;
  uint64_t total = 0;
  if (b.len < HEADER_V1) {
    rc = bad(path, err, "shorter than its header");
    goto out;
  }
  if (memcmp(p, "MNSHARD", 8) != 0) {
    rc = bad(path, err, "not a shard (bad magic)");
    goto out;
  }
  version = mn_get_le32(p + 8), width = mn_get_le32(p + 12);
  if (!(version == 1 && width == 2) && !(version == 2 && (width == 2 || width == 4))) {
    rc = bad(path, err, "unknown version or token width");
    goto out;
  }
  head = version == 1 ? HEADER_V1 : HEADER_BYTES;
  if (b.len < head) {
    rc = bad(path, err, "shorter than its header");
    goto out;
  }
  nsec = mn_get_le32(p + 16);
  total = mn_get_le64(p + 24);
  if (version == 1) { /* the byte tokenizer, the only one then */
    s->base = TOK_FIRST_TAG, s->eot = TOK_EOT;
    if (mn_get_le32(p + 20) != 0) {
      rc = bad(path, err, "its size does not match its header (truncated?)");
      goto out;
    }
    if ((rc = trainer__bytes_sha256(s->tok_sha256, err)) != MN_OK) goto out;
  } else {
    s->base = mn_get_le32(p + 20), s->eot = mn_get_le32(p + 96);
    mn_hex_encode(p + 64, MN_SHA256_LEN, s->tok_sha256);
    if (s->base < 2 || s->base >= TOK_MAX_ID || s->eot >= s->base || mn_get_le32(p + 100) != 0) {
      rc = bad(path, err, "its header names an impossible tokenizer");
      goto out;
    }
  }
  /* sizes checked before any multiplication that could wrap */
  uint64_t room = (uint64_t)b.len - head;
  if (nsec > TOK_MAX_TAGS || room < (uint64_t)nsec * SECTION_BYTES ||
      (room - (uint64_t)nsec * SECTION_BYTES) % width != 0 ||
      total != (room - (uint64_t)nsec * SECTION_BYTES) / width) {
    rc = bad(path, err, "its size does not match its header (truncated?)");
    goto out;
  }
  s->sections = calloc(nsec ? nsec : 1, sizeof *s->sections);
  s->tokens = malloc(total ? total * sizeof *s->tokens : 4);
  if (!s->sections || !s->tokens) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory reading shard \"%s\"", path);
    goto out;
  }
  const uint8_t *stored = p + head + (size_t)nsec * SECTION_BYTES;
  for (uint64_t k = 0; k < total; k++)
    s->tokens[k] = width == 2 ? (uint32_t)(stored[2 * k] | stored[2 * k + 1] << 8)
                              : mn_get_le32(stored + 4 * k);
  uint8_t digest[MN_SHA256_LEN];
  mn_sha256 h;
  if ((rc = mn_sha256_init(&h, err)) != MN_OK) goto out;
  if ((version >= 2 && (rc = hash_tokenizer(&h, p, err)) != MN_OK) ||
      (rc = mn_sha256_update(&h, stored, total * width, err)) != MN_OK ||
      (rc = mn_sha256_final(&h, digest, err)) != MN_OK) {
    mn_sha256_abort(&h);
    goto out;
  }
  mn_hex_encode(digest, sizeof digest, s->sha256); /* the checksum is the shard's identity */
  if (memcmp(digest, p + 32, MN_SHA256_LEN) != 0) {
    rc = bad(path, err,
             version == 1 ? "the tokens do not match their SHA-256 (the file is corrupted)"
                          : "its tokenizer and tokens do not match their SHA-256 (the file is "
                            "corrupted)");
    goto out;
  }
  uint64_t next = 0;
  for (uint32_t i = 0; i < nsec; i++) {
    const uint8_t *q = p + head + (size_t)i * SECTION_BYTES;
    shard_section *sec = &s->sections[i];
    if (memchr(q, '\0', 8) == NULL) {
      rc = bad(path, err, "a language code is not terminated");
      goto out;
    }
    memcpy(sec->code, q, 8);
    uint32_t tag = mn_get_le32(q + 8);
    sec->tag = tag < TOK_MAX_ID ? (int)tag : -1;
    sec->docs = mn_get_le32(q + 12);
    sec->first = mn_get_le64(q + 16);
    sec->count = mn_get_le64(q + 24);
    if (sec->first != next || sec->count > total - next || sec->count < 2 || sec->tag < 0 ||
        (uint32_t)sec->tag < s->base || sec->tag < TOK_FIRST_TAG ||
        s->tokens[sec->first] != (uint32_t)sec->tag ||
        s->tokens[sec->first + sec->count - 1] != s->eot) {
      rc = bad(path, err, "a section does not tile the tokens, or does not start with its tag");
      goto out;
    }
    /* every token the tokenizer's or this section's tag: nothing else may reach the model */
    for (uint64_t k = sec->first; k < sec->first + sec->count; k++)
      if (s->tokens[k] >= s->base && s->tokens[k] != (uint32_t)sec->tag) {
        rc = bad(path, err, "a section holds a token that is not the tokenizer's or its tag");
        goto out;
      }
    for (uint32_t j = 0; j < i; j++)
      if (s->sections[j].tag == sec->tag || strcmp(s->sections[j].code, sec->code) == 0) {
        rc = bad(path, err, "two sections share a language or a tag");
        goto out;
      }
    next += sec->count;
  }
  if (next != total) {
    rc = bad(path, err, "the sections do not cover the tokens");
    goto out;
  }
  s->nsections = nsec;
  s->ntokens = total;
out:
  mn_buf_fini(&b);
  if (rc != MN_OK) shard_fini(s);
  return rc;
}

void shard_fini(shard *s)
{
  free(s->tokens);
  free(s->sections);
  memset(s, 0, sizeof *s);
}

mn_status shard_read_many(const char *const *paths, int n, shard **out, mn_error *err)
{
  shard *s = calloc(n > 0 ? (size_t)n : 1, sizeof *s);
  *out = NULL;
  if (!s) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  for (int i = 0; i < n; i++) {
    mn_status rc = shard_read(paths[i], &s[i], err);
    if (rc != MN_OK) {
      shard_destroy_many(s, i);
      return rc;
    }
  }
  *out = s;
  return MN_OK;
}

void shard_destroy_many(shard *s, int n)
{
  for (int i = 0; s && i < n; i++)
    shard_fini(&s[i]);
  free(s);
}

mn_status shard_section_fits(const shard_section *sec, const char *shard_path,
                             const ckpt_meta *meta, const char *ckpt_path, mn_error *err)
{
  int want = tok_tag_of(&meta->tags, sec->code);
  const char *owner = tok_code_of(&meta->tags, sec->tag); /* the tag's language there */
  if (want >= 0 && want != sec->tag)
    return mn_error_set(err, MN_ERR_INPUT,
                        "language \"%s\" has tag %d in the shard %s, but tag %d in the "
                        "checkpoint %s: the shard was made with another tag table",
                        sec->code, sec->tag, shard_path, want, ckpt_path);
  if (want < 0 && owner)
    return mn_error_set(err, MN_ERR_INPUT,
                        "language \"%s\" of the shard %s has tag %d, which the checkpoint %s "
                        "gives to \"%s\"; it has no tag for \"%s\"",
                        sec->code, shard_path, sec->tag, ckpt_path, owner, sec->code);
  if (want < 0 && sec->tag >= meta->config.vocab_size)
    return mn_error_set(err, MN_ERR_INPUT,
                        "language \"%s\" of the shard %s is not one the checkpoint %s has a "
                        "tag for, and its tag %d is outside that model's vocabulary of %d",
                        sec->code, shard_path, ckpt_path, sec->tag, meta->config.vocab_size);
  return MN_OK;
}

mn_status shard_fits(const shard *s, const char *shard_path, const ckpt_meta *meta,
                     const char *ckpt_path, mn_error *err)
{
  if (strcmp(s->tok_sha256, meta->tok_sha256) != 0)
    return mn_error_set(err, MN_ERR_INPUT,
                        "the shard %s was made by another tokenizer (%.16s...) than the "
                        "checkpoint %s's (%.16s...): make it with mnemo shard --tokenizer %s",
                        shard_path, s->tok_sha256, ckpt_path, meta->tok_sha256, ckpt_path);
  for (uint32_t k = 0; k < s->nsections; k++) {
    mn_status rc = shard_section_fits(&s->sections[k], shard_path, meta, ckpt_path, err);
    if (rc != MN_OK) return rc;
  }
  return MN_OK;
}
