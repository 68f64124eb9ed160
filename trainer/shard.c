/*
 * shard.c -- token shards: the byte tokenizer applied to documents, grouped by
 * language, written atomically, read back with every field checked.
 *
 * Not for: choosing which documents go in (the daemon exports them) or
 * sampling windows (loader.c).
 */
#include "trainer/trainer.h"

#include <stdlib.h>
#include <string.h>

#define HEADER_BYTES  64
#define SECTION_BYTES 32

struct shard_builder {
  tok_tags *tags;
  struct lang_buf {
    char code[8];
    uint16_t *tok;
    size_t n, cap;
    uint32_t docs;
  } * langs;
  size_t nlangs;
};

mn_status shard_builder_create(tok_tags *tags, shard_builder **out, mn_error *err)
{
  *out = calloc(1, sizeof **out);
  if (!*out) return mn_error_set(err, MN_ERR_NOMEM, "out of memory building a shard");
  (*out)->tags = tags;
  return MN_OK;
}

void shard_builder_destroy(shard_builder *b)
{
  if (!b) return;
  for (size_t i = 0; i < b->nlangs; i++)
    free(b->langs[i].tok);
  free(b->langs);
  free(b);
}

mn_status shard_builder_add(shard_builder *b, const char *lang, const char *text, size_t n,
                            mn_error *err)
{
  mn_status rc = tok_tags_add(b->tags, lang, -1, err);
  if (rc != MN_OK) return rc;
  int tag = tok_tag_of(b->tags, lang);
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
  if (l->n + n + 2 > l->cap) {
    size_t cap = l->cap ? l->cap : 1 << 16;
    while (cap < l->n + n + 2)
      cap *= 2;
    uint16_t *t = realloc(l->tok, cap * sizeof *t);
    if (!t) return mn_error_set(err, MN_ERR_NOMEM, "out of memory building a shard");
    l->tok = t;
    l->cap = cap;
  }
  l->tok[l->n++] = (uint16_t)tag;
  for (size_t i = 0; i < n; i++)
    l->tok[l->n++] = (unsigned char)text[i];
  l->tok[l->n++] = TOK_EOT;
  l->docs++;
  return MN_OK;
}

static int by_code(const void *a, const void *b)
{
  return strcmp(((const struct lang_buf *)a)->code, ((const struct lang_buf *)b)->code);
}

mn_status shard_builder_write(shard_builder *b, const char *path, mn_error *err)
{
  mn_status rc = MN_OK;
  mn_atomic_file *f = NULL;
  mn_sha256 h;
  uint8_t head[HEADER_BYTES] = {0}, digest[MN_SHA256_LEN];
  if (b->nlangs > 1) qsort(b->langs, b->nlangs, sizeof *b->langs, by_code);
  uint64_t total = 0;
  for (size_t i = 0; i < b->nlangs; i++)
    total += b->langs[i].n;
  if ((rc = mn_sha256_init(&h, err)) != MN_OK) return rc;
  for (size_t i = 0; i < b->nlangs && rc == MN_OK; i++) /* little-endian hosts: bytes as stored */
    rc = mn_sha256_update(&h, b->langs[i].tok, b->langs[i].n * 2, err);
  if (rc != MN_OK || (rc = mn_sha256_final(&h, digest, err)) != MN_OK) {
    mn_sha256_abort(&h);
    return rc;
  }
  memcpy(head, "MNSHARD", 8);
  mn_put_le32(head + 8, SHARD_VERSION);
  mn_put_le32(head + 12, 2);
  mn_put_le32(head + 16, (uint32_t)b->nlangs);
  mn_put_le64(head + 24, total);
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
  for (size_t i = 0; i < b->nlangs && rc == MN_OK; i++)
    rc = mn_atomic_write(f, b->langs[i].tok, b->langs[i].n * 2, err);
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
  uint32_t nsec = 0;
  uint64_t total = 0;
  if (b.len < HEADER_BYTES) {
    rc = bad(path, err, "shorter than its header");
    goto out;
  }
  if (memcmp(p, "MNSHARD", 8) != 0) {
    rc = bad(path, err, "not a shard (bad magic)");
    goto out;
  }
  if (mn_get_le32(p + 8) != SHARD_VERSION || mn_get_le32(p + 12) != 2) {
    rc = bad(path, err, "unknown version or token width");
    goto out;
  }
  nsec = mn_get_le32(p + 16);
  total = mn_get_le64(p + 24);
  /* sizes checked before any multiplication that could wrap */
  uint64_t room = (uint64_t)b.len - HEADER_BYTES;
  if (nsec > TOK_MAX_TAGS || mn_get_le32(p + 20) != 0 || room < (uint64_t)nsec * SECTION_BYTES ||
      (room - (uint64_t)nsec * SECTION_BYTES) % 2 != 0 ||
      total != (room - (uint64_t)nsec * SECTION_BYTES) / 2) {
    rc = bad(path, err, "its size does not match its header (truncated?)");
    goto out;
  }
  s->sections = calloc(nsec ? nsec : 1, sizeof *s->sections);
  s->tokens = malloc(total ? total * 2 : 2);
  if (!s->sections || !s->tokens) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory reading shard \"%s\"", path);
    goto out;
  }
  memcpy(s->tokens, p + HEADER_BYTES + (size_t)nsec * SECTION_BYTES, total * 2);
  uint8_t digest[MN_SHA256_LEN];
  mn_sha256 h;
  if ((rc = mn_sha256_init(&h, err)) != MN_OK) goto out;
  if ((rc = mn_sha256_update(&h, s->tokens, total * 2, err)) != MN_OK ||
      (rc = mn_sha256_final(&h, digest, err)) != MN_OK) {
    mn_sha256_abort(&h);
    goto out;
  }
  mn_hex_encode(digest, sizeof digest, s->sha256);
  if (memcmp(digest, p + 32, MN_SHA256_LEN) != 0) {
    rc = bad(path, err, "the tokens do not match their SHA-256 (the file is corrupted)");
    goto out;
  }
  uint64_t next = 0;
  for (uint32_t i = 0; i < nsec; i++) {
    const uint8_t *q = p + HEADER_BYTES + (size_t)i * SECTION_BYTES;
    shard_section *sec = &s->sections[i];
    if (memchr(q, '\0', 8) == NULL) {
      rc = bad(path, err, "a language code is not terminated");
      goto out;
    }
    memcpy(sec->code, q, 8);
    sec->tag = (int)mn_get_le32(q + 8);
    sec->docs = mn_get_le32(q + 12);
    sec->first = mn_get_le64(q + 16);
    sec->count = mn_get_le64(q + 24);
    if (sec->first != next || sec->count > total - next || sec->count < 2 || sec->tag > 65535 ||
        sec->tag < TOK_FIRST_TAG || s->tokens[sec->first] != sec->tag ||
        s->tokens[sec->first + sec->count - 1] != TOK_EOT) {
      rc = bad(path, err, "a section does not tile the tokens, or does not start with its tag");
      goto out;
    }
    /* every token a byte, <|eot|> or this section's tag: nothing else may reach the model */
    for (uint64_t k = sec->first; k < sec->first + sec->count; k++)
      if (s->tokens[k] > TOK_EOT && s->tokens[k] != sec->tag) {
        rc = bad(path, err, "a section holds a token that is not a byte, <|eot|> or its tag");
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
