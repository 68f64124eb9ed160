/*
 * tokenizer.c -- the tokenizer interface: the byte kind here, byte-level BPE in bpe.c.
 *
 * A tokenizer's identity is the SHA-256 of its canonical tokenizer.json (sorted keys,
 * compact, without tags): a shard and a checkpoint name it, so ids made by one tokenizer
 * are never read by a model of another.
 *
 * Not for: language tags (tags.c), the BPE merges and the pre-tokenizer (bpe.c).
 */
#include "trainer/bpe_int.h"
#include "trainer/trainer_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { KIND_BYTES, KIND_BPE };

struct tokenizer {
  int kind;
  uint32_t base, eot;
  tok_bpe *bpe;
  char sha256[MN_SHA256_HEX_LEN + 1];
};

/* the bytes each id of the byte tokenizer stands for: itself */
#define B4(n)  (n), (n) + 1, (n) + 2, (n) + 3
#define B16(n) B4(n), B4((n) + 4), B4((n) + 8), B4((n) + 12)
#define B64(n) B16(n), B16((n) + 16), B16((n) + 32), B16((n) + 48)
static const uint8_t byte_piece[256] = {B64(0), B64(64), B64(128), B64(192)};

/* bytes_json -- the byte tokenizer as Hugging Face spells it: a byte-level BPE without
 * merges whose id b is byte b, and <|eot|> */
static json_t *bytes_json(void)
{
  json_t *vocab = json_object();
  for (int b = 0; vocab && b < 256; b++) {
    char ch[8];
    size_t n = trainer__bpe_utf8_put(trainer__byte_char((uint8_t)b), (uint8_t *)ch);
    ch[n] = 0;
    json_object_set_new(vocab, ch, json_integer(b));
  }
  return json_pack("{s:s, s:n, s:n, s:{s:s, s:b, s:b, s:b}, s:n, s:{s:s, s:b, s:b, s:b}, "
                   "s:{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:b, s:o, s:[]}, "
                   "s:[{s:i, s:s, s:b, s:b, s:b, s:b, s:b}]}",
                   "version", "1.0", "truncation", "padding", "pre_tokenizer", "type", "ByteLevel",
                   "add_prefix_space", 0, "trim_offsets", 0, "use_regex", 0, "normalizer",
                   "decoder", "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 0,
                   "use_regex", 0, "model", "type", "BPE", "dropout", "unk_token",
                   "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 0,
                   "byte_fallback", 0, "ignore_merges", 0, "vocab", vocab, "merges", "added_tokens",
                   "id", TOK_EOT, "content", "<|eot|>", "single_word", 0, "lstrip", 0, "rstrip", 0,
                   "normalized", 0, "special", 1);
}

static mn_status canonical_text(json_t *canonical, char **out, mn_error *err)
{
  *out = canonical ? json_dumps(canonical, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(canonical);
  return *out ? MN_OK : mn_error_set(err, MN_ERR_NOMEM, "out of memory naming a tokenizer");
}

static mn_status set_identity(tokenizer *t, json_t *canonical, mn_error *err)
{
  char *text;
  mn_status rc = canonical_text(canonical, &text, err);
  if (rc == MN_OK) rc = mn_sha256_hex(text, strlen(text), t->sha256, err);
  free(text);
  return rc;
}

mn_status trainer__tok_canonical(const tokenizer *t, char **out, mn_error *err)
{
  return canonical_text(t->kind == KIND_BYTES ? bytes_json() : trainer__bpe_to_json(t->bpe), out,
                        err);
}

/* the byte tokenizer's identity, computed once: every checkpoint's metadata read needs it */
static char bytes_sha[MN_SHA256_HEX_LEN + 1];
static mn_status bytes_sha_rc = MN_OK;
static pthread_once_t bytes_sha_once = PTHREAD_ONCE_INIT;

static void bytes_sha_init(void)
{
  tokenizer *t;
  mn_error e = {0};
  bytes_sha_rc = tok_create_bytes(&t, &e);
  if (bytes_sha_rc == MN_OK) snprintf(bytes_sha, sizeof bytes_sha, "%s", t->sha256);
  tok_destroy(t);
}

mn_status trainer__bytes_sha256(char out[MN_SHA256_HEX_LEN + 1], mn_error *err)
{
  pthread_once(&bytes_sha_once, bytes_sha_init);
  if (bytes_sha_rc != MN_OK)
    return mn_error_set(err, bytes_sha_rc, "could not name the byte tokenizer (out of memory)");
  memcpy(out, bytes_sha, sizeof bytes_sha);
  return MN_OK;
}

mn_status tok_create_bytes(tokenizer **out, mn_error *err)
{
  *out = NULL;
  tokenizer *t = calloc(1, sizeof *t);
  if (!t) return mn_error_set(err, MN_ERR_NOMEM, "out of memory making the byte tokenizer");
  t->kind = KIND_BYTES;
  t->base = TOK_FIRST_TAG;
  t->eot = TOK_EOT;
  if (set_identity(t, bytes_json(), err) != MN_OK) {
    free(t);
    return err->code;
  }
  *out = t;
  return MN_OK;
}

mn_status tok_from_json(const char *text, size_t n, const char *name, tokenizer **out,
                        tok_tags *tags, mn_error *err)
{
  *out = NULL;
  if (tags) memset(tags, 0, sizeof *tags);
  json_error_t je;
  json_t *root = json_loadb(text, n, JSON_REJECT_DUPLICATES, &je);
  if (!json_is_object(root)) {
    json_decref(root);
    return mn_error_set(err, MN_ERR_INPUT, "%s: not a tokenizer.json (line %d: %s)", name, je.line,
                        je.text);
  }
  tokenizer *t = calloc(1, sizeof *t);
  mn_status rc = t ? MN_OK : mn_error_set(err, MN_ERR_NOMEM, "out of memory reading %s", name);
  if (rc == MN_OK) {
    t->kind = KIND_BPE;
    rc = trainer__bpe_from_json(root, name, &t->bpe, &t->base, &t->eot, tags, err);
  }
  json_decref(root);
  if (rc == MN_OK) rc = set_identity(t, trainer__bpe_to_json(t->bpe), err);
  if (rc != MN_OK) {
    tok_destroy(t);
    return rc;
  }
  *out = t;
  return MN_OK;
}

/* peek -- the first bytes of path (at most n): what kind of file it is, without reading a
 * checkpoint of gigabytes whole */
static mn_status peek(const char *path, char *buf, size_t n, size_t *got, mn_error *err)
{
  int fd;
  *got = 0;
  mn_status rc = trainer__open_regular(path, &fd, err); /* no FIFO, no folder */
  while (rc == MN_OK && *got < n) {
    ssize_t r = read(fd, buf + *got, n - *got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0)
      rc = mn_error_set(err, MN_ERR_IO, "could not read \"%s\": %s", path, strerror(errno));
    if (r <= 0) break;
    *got += (size_t)r;
  }
  if (fd >= 0) close(fd);
  return rc;
}

mn_status tok_load(const char *path, tokenizer **out, tok_tags *tags, mn_error *err)
{
  *out = NULL;
  char head[4096];
  size_t n = 0, i = 0;
  mn_status rc = peek(path, head, sizeof head, &n, err);
  while (rc == MN_OK && i < n && strchr(" \t\r\n", head[i]))
    i++;
  /* a safetensors file starts with its header's length, then the header's "{" */
  bool ckpt = rc == MN_OK && n > 8 && head[8] == '{' && head[0] != '{';
  if (rc == MN_OK && !ckpt && i < n && head[i] == '{') {
    mn_buf b;
    mn_buf_init(&b, (size_t)1 << 30);
    if ((rc = mn_buf_read_file(&b, path, err)) == MN_OK)
      rc = tok_from_json(b.data, b.len, path, out, tags, err);
    mn_buf_fini(&b);
  } else if (rc == MN_OK && !ckpt) {
    rc = mn_error_set(err, MN_ERR_INPUT,
                      "\"%s\" is neither a tokenizer.json (a JSON object) nor a checkpoint", path);
  } else if (rc == MN_OK) { /* a checkpoint: the tokenizer it carries */
    char *json = NULL, sha[MN_SHA256_HEX_LEN + 1];
    tok_tags *ct = tags ? tags : malloc(sizeof *ct);
    rc = ct ? ckpt__read_tokenizer(path, &json, ct, sha, err)
            : mn_error_set(err, MN_ERR_NOMEM, "out of memory reading \"%s\"", path);
    if (rc == MN_OK && json) {
      tok_tags *inner = malloc(sizeof *inner);
      rc = inner ? tok_from_json(json, strlen(json), path, out, inner, err)
                 : mn_error_set(err, MN_ERR_NOMEM, "out of memory reading \"%s\"", path);
      free(inner);
      if (rc == MN_OK && strcmp(tok_sha256(*out), sha) != 0) {
        rc = mn_error_set(err, MN_ERR_CORRUPT,
                          "\"%s\": the tokenizer it carries is not the one its checksum names "
                          "(the file is corrupted)",
                          path);
        tok_destroy(*out);
        *out = NULL;
      }
    } else if (rc == MN_OK) {
      rc = tok_create_bytes(out, err);
    }
    free(json);
    if (!tags) free(ct);
  }
  return rc;
}

void tok_destroy(tokenizer *t)
{
  if (!t) return;
  trainer__bpe_destroy(t->bpe);
  free(t);
}

const char *tok_kind(const tokenizer *t)
{
  return t->kind == KIND_BYTES ? "bytes" : "bpe";
}
uint32_t tok_base(const tokenizer *t)
{
  return t->base;
}
uint32_t tok_eot(const tokenizer *t)
{
  return t->eot;
}
const char *tok_sha256(const tokenizer *t)
{
  return t->sha256;
}

size_t tok_piece(const tokenizer *t, uint32_t id, const uint8_t **bytes)
{
  if (t->kind == KIND_BPE) return trainer__bpe_piece(t->bpe, id, bytes);
  *bytes = id < 256 ? &byte_piece[id] : NULL;
  return id < 256;
}

static mn_status grow(uint32_t **ids, size_t *cap, size_t need, mn_error *err)
{
  if (need <= *cap) return MN_OK;
  size_t c = *cap ? *cap : 256;
  while (c < need)
    c *= 2;
  uint32_t *p = realloc(*ids, c * sizeof *p);
  if (!p) return mn_error_set(err, MN_ERR_NOMEM, "out of memory encoding text");
  *ids = p;
  *cap = c;
  return MN_OK;
}

static mn_status encode(const tokenizer *t, tok_cache *cache, bool specials, const char *text,
                        size_t n, uint32_t **ids, size_t *len, size_t *cap, mn_error *err)
{
  if (t->kind == KIND_BPE)
    return trainer__bpe_encode(t->bpe, cache, specials, text, n, ids, len, cap, err);
  if (grow(ids, cap, *len + n, err) != MN_OK) return err->code;
  for (size_t i = 0; i < n; i++)
    (*ids)[(*len)++] = (unsigned char)text[i];
  return MN_OK;
}

mn_status tok_encode(const tokenizer *t, tok_cache *cache, const char *text, size_t n,
                     uint32_t **ids, size_t *len, size_t *cap, mn_error *err)
{
  return encode(t, cache, false, text, n, ids, len, cap, err);
}

mn_status tok_encode_specials(const tokenizer *t, tok_cache *cache, const char *text, size_t n,
                              uint32_t **ids, size_t *len, size_t *cap, mn_error *err)
{
  return encode(t, cache, true, text, n, ids, len, cap, err);
}

mn_status tok_decode(const tokenizer *t, const uint32_t *ids, size_t n, mn_buf *out, mn_error *err)
{
  for (size_t i = 0; i < n; i++) {
    const uint8_t *p;
    size_t k = tok_piece(t, ids[i], &p);
    if (k && mn_buf_append(out, p, k, err) != MN_OK) return err->code;
  }
  return MN_OK;
}

mn_status tok_to_json(const tokenizer *t, const tok_tags *tags, char **out, mn_error *err)
{
  *out = NULL;
  json_t *j = t->kind == KIND_BYTES ? bytes_json() : trainer__bpe_to_json(t->bpe);
  json_t *added = json_object_get(j, "added_tokens");
  if (!json_is_array(added)) {
    json_decref(j);
    return mn_error_set(err, MN_ERR_NOMEM, "out of memory writing a tokenizer.json");
  }
  /* the tags, and a placeholder in every slot between them that no language holds: Hugging
   * Face numbers added tokens that are not in the vocab one after another, so a gap in the
   * database's numbering would shift every later tag */
  int top = -1;
  for (int i = 0; tags && i < tags->n; i++)
    top = tags->t[i].id > top ? tags->t[i].id : top;
  for (int id = (int)t->base; id <= top; id++) {
    const char *code = tok_code_of(tags, id);
    char content[32];
    if (code)
      snprintf(content, sizeof content, "<|lang:%s|>", code);
    else
      snprintf(content, sizeof content, "<|unused:%d|>", id);
    json_array_append_new(added, json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", id,
                                           "content", content, "single_word", 0, "lstrip", 0,
                                           "rstrip", 0, "normalized", 0, "special", 1));
  }
  *out = json_dumps(j, JSON_INDENT(1) | JSON_SORT_KEYS);
  json_decref(j);
  return *out ? MN_OK : mn_error_set(err, MN_ERR_NOMEM, "out of memory writing a tokenizer.json");
}
