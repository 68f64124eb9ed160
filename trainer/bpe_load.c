/*
 * bpe_load.c -- byte-level BPE from a tokenizer.json, and back.
 *
 * Reads what bpe.c encodes with (its header says what that is) and refuses, naming the
 * file and the JSON path, every feature it does not implement: a file is loaded whole and
 * exactly, or not at all.  Merges are read in both spellings ("a b" and ["a", "b"]); a
 * merge naming a token not in the vocab is refused as Hugging Face refuses it, and of two
 * equal pairs the later rank holds (Hugging Face builds its map in file order).
 */
#include "trainer/trainer_int.h"

#include <assert.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/bpe_int.h"

static mn_status refuse(mn_error *err, const char *name, const char *fmt, ...) MN_PRINTF(3, 4);
static mn_status refuse(mn_error *err, const char *name, const char *fmt, ...)
{
  char msg[200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return mn_error_set(err, MN_ERR_INPUT, "%s: %s", name, msg);
}

/* the "type" of an object, or "" */
static const char *type_of(json_t *o)
{
  const char *t = json_string_value(json_object_get(o, "type"));
  return t ? t : "";
}

static bool is_false(json_t *o, const char *key)
{
  return json_is_false(json_object_get(o, key));
}
static bool null_or_absent(json_t *o, const char *key)
{
  json_t *v = json_object_get(o, key);
  return !v || json_is_null(v);
}

static mn_status read_pretok(tok_bpe *b, json_t *root, const char *name, mn_error *err)
{
  json_t *p = json_object_get(root, "pre_tokenizer");
  if (!strcmp(type_of(p), "ByteLevel")) {
    if (!is_false(p, "add_prefix_space"))
      return refuse(err, name, "pre_tokenizer.add_prefix_space must be false");
    json_t *re = json_object_get(p, "use_regex");
    b->bytelevel_regex = !re || json_is_true(re);
    b->split = b->bytelevel_regex ? TOK_SPLIT_GPT2 : TOK_SPLIT_NONE;
    return MN_OK;
  }
  json_t *seq = json_object_get(p, "pretokenizers");
  if (strcmp(type_of(p), "Sequence") != 0 || json_array_size(seq) != 2)
    return refuse(err, name,
                  "pre_tokenizer %s is not supported (ByteLevel, or a Sequence of a Split "
                  "and ByteLevel)",
                  p ? type_of(p) : "null");
  json_t *sp = json_array_get(seq, 0), *bl = json_array_get(seq, 1);
  if (strcmp(type_of(sp), "Split") != 0)
    return refuse(err, name, "pre_tokenizer.pretokenizers[0] must be a Split, not \"%s\"",
                  type_of(sp));
  const char *re = json_string_value(json_object_get(json_object_get(sp, "pattern"), "Regex"));
  if (!re) return refuse(err, name, "pre_tokenizer.pretokenizers[0].pattern must be a Regex");
  b->split = TOK_SPLIT_NONE;
  for (int i = 1; i < TOK_SPLIT_COUNT; i++)
    if (!strcmp(re, trainer__split_regex[i])) b->split = (tok_split)i;
  if (b->split == TOK_SPLIT_NONE)
    return refuse(err, name,
                  "pre_tokenizer.pretokenizers[0].pattern.Regex \"%.80s\" is not "
                  "supported (GPT-2's, Llama 3's, Qwen2's or mnemo's only)",
                  re);
  const char *beh = json_string_value(json_object_get(sp, "behavior"));
  if (!beh || strcmp(beh, "Isolated") != 0 || !is_false(sp, "invert"))
    return refuse(err, name,
                  "pre_tokenizer.pretokenizers[0] must have behavior Isolated and "
                  "invert false");
  if (strcmp(type_of(bl), "ByteLevel") != 0 || !is_false(bl, "add_prefix_space") ||
      !is_false(bl, "use_regex"))
    return refuse(err, name,
                  "pre_tokenizer.pretokenizers[1] must be ByteLevel with "
                  "add_prefix_space and use_regex false");
  return MN_OK;
}

static mn_status read_parts(tok_bpe *b, json_t *root, const char *name, mn_error *err)
{
  if (!null_or_absent(root, "truncation") || !null_or_absent(root, "padding"))
    return refuse(err, name, "truncation and padding must be null");
  json_t *nz = json_object_get(root, "normalizer");
  if (nz && !json_is_null(nz)) {
    json_t *list = json_object_get(nz, "normalizers");
    if (!strcmp(type_of(nz), "NFC")) {
      b->nfc = true;
    } else if (!strcmp(type_of(nz), "Sequence") && json_is_array(list)) {
      size_t i;
      json_t *v;
      json_array_foreach(list, i, v)
      {
        if (strcmp(type_of(v), "NFC") != 0)
          return refuse(err, name,
                        "normalizer.normalizers[%zu].type \"%s\" is not supported "
                        "(NFC only)",
                        i, type_of(v));
        b->nfc = true;
      }
    } else {
      return refuse(err, name, "normalizer.type \"%s\" is not supported (NFC or null only)",
                    type_of(nz));
    }
  }
  mn_status rc = read_pretok(b, root, name, err);
  if (rc != MN_OK) return rc;
  json_t *dec = json_object_get(root, "decoder");
  if (strcmp(type_of(dec), "ByteLevel") != 0)
    return refuse(err, name, "decoder %s is not supported (ByteLevel only)",
                  dec && !json_is_null(dec) ? type_of(dec) : "null");
  json_t *post = json_object_get(root, "post_processor");
  if (post && !json_is_null(post)) {
    if (strcmp(type_of(post), "ByteLevel") != 0 && strcmp(type_of(post), "TemplateProcessing") != 0)
      return refuse(err, name,
                    "post_processor.type \"%s\" is not supported (ByteLevel, "
                    "TemplateProcessing or null)",
                    type_of(post));
    if (!(b->post = json_deep_copy(post)))
      return mn_error_set(err, MN_ERR_NOMEM, "out of memory reading \"%s\"", name);
  }
  json_t *m = json_object_get(root, "model");
  if (!json_is_object(m)) return refuse(err, name, "model is missing");
  json_t *t = json_object_get(m, "type");
  if (t && strcmp(type_of(m), "BPE") != 0)
    return refuse(err, name, "model.type \"%s\" is not supported (byte-level BPE only)",
                  type_of(m));
  if (!null_or_absent(m, "dropout")) return refuse(err, name, "model.dropout must be null");
  json_t *bf = json_object_get(m, "byte_fallback");
  if (bf && !json_is_false(bf)) return refuse(err, name, "model.byte_fallback must be false");
  static const char *const fixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
  for (int i = 0; i < 2; i++) {
    json_t *v = json_object_get(m, fixes[i]);
    if (v && !json_is_null(v) && !(json_is_string(v) && !json_string_length(v)))
      return refuse(err, name, "model.%s must be null or empty", fixes[i]);
  }
  json_t *im = json_object_get(m, "ignore_merges");
  if (im && !json_is_boolean(im)) return refuse(err, name, "model.ignore_merges is not a boolean");
  b->ignore_merges = json_is_true(im);
  return MN_OK;
}

static _Atomic uint64_t serials; /* each tokenizer's number, for the caches */

/* the tables of the vocab: pieces, strings, kinds; the byte tokens */
static mn_status read_vocab(tok_bpe *b, json_t *vocab, uint32_t nid, const char *name,
                            mn_error *err)
{
  const char *key;
  json_t *v;
  size_t total = 0;
  b->nid = nid;
  b->off = calloc((size_t)nid + 1, sizeof *b->off);
  b->voff = calloc((size_t)nid + 1, sizeof *b->voff);
  b->kind = calloc(nid, 1);
  if (!b->off || !b->voff || !b->kind) goto nomem;
  json_object_foreach(vocab, key, v)
  {
    uint32_t id = (uint32_t)json_integer_value(v);
    if (b->kind[id])
      return refuse(err, name, "model.vocab: id %u is given to two tokens (\"%.40s\")", id, key);
    b->kind[id] = K_VOCAB;
    b->voff[id + 1] = (uint32_t)strlen(key);
    total += strlen(key);
  }
  for (size_t k = 0; k < b->nadded; k++) {
    b->kind[b->added[k].id] |= (uint8_t)(K_ADDED | (b->added[k].special ? K_SPECIAL : 0));
    total += b->added[k].n;
  }
  if (total >= UINT32_MAX) return refuse(err, name, "model.vocab is too large");
  for (uint32_t i = 0; i < nid; i++)
    b->voff[i + 1] += b->voff[i];
  b->vstr = malloc(total + 1);
  b->bytes = malloc(total + 1);
  if (!b->vstr || !b->bytes) goto nomem;
  json_object_foreach(vocab, key, v)
  {
    uint32_t id = (uint32_t)json_integer_value(v);
    memcpy(b->vstr + b->voff[id], key, b->voff[id + 1] - b->voff[id]);
  }
  /* pieces in id order (a piece is never longer than its string) */
  uint32_t at = 0;
  for (uint32_t id = 0; id < nid; id++) {
    bool mapped = true;
    b->off[id] = at;
    if (b->kind[id] & K_VOCAB) {
      at += (uint32_t)trainer__bpe_decode_token(
          b->vstr + b->voff[id], b->voff[id + 1] - b->voff[id], b->bytes + at, &mapped);
    } else if (b->kind[id] & K_ADDED) { /* an added token outside the vocab: its content */
      size_t k = 0;
      while (b->added[k].id != id)
        k++;
      at += (uint32_t)trainer__bpe_decode_token((const char *)b->added[k].s, b->added[k].n,
                                                b->bytes + at, &mapped);
      mapped = true;
    }
    if (!mapped) b->kind[id] |= K_RAW;
  }
  b->off[nid] = at;
  for (int c = 0; c < 256; c++) {
    uint8_t s[4];
    size_t k = trainer__bpe_utf8_put(trainer__byte_char((uint8_t)c), s);
    json_t *id = json_object_getn(vocab, (const char *)s, k);
    if (!id) return refuse(err, name, "model.vocab has no token for byte 0x%02x", c);
    b->byte_id[c] = (uint32_t)json_integer_value(id);
  }
  if (b->ignore_merges) {
    size_t slots = 1;
    while (slots < 2 * (size_t)nid)
      slots *= 2;
    if (!(b->vtab = malloc(slots * sizeof *b->vtab))) goto nomem;
    memset(b->vtab, 0xFF, slots * sizeof *b->vtab);
    b->vmask = slots - 1;
    for (uint32_t id = 0; id < nid; id++) {
      if (b->kind[id] != K_VOCAB) continue; /* a raw string is never a word's */
      uint64_t i = hash_bytes(b->bytes + b->off[id], b->off[id + 1] - b->off[id]) & b->vmask;
      while (b->vtab[i] != NO_ID)
        i = (i + 1) & b->vmask;
      b->vtab[i] = id;
    }
  }
  return MN_OK;
nomem:
  return mn_error_set(err, MN_ERR_NOMEM, "out of memory reading \"%s\"", name);
}

static mn_status merge_put(tok_bpe *b, uint32_t l, uint32_t r, uint32_t rank, uint32_t nw)
{
  uint64_t key = (uint64_t)l << 32 | r;
  uint64_t i = (key * 0x9E3779B97F4A7C15ull) >> b->mshift;
  while (b->mkey[i] != UINT64_MAX && b->mkey[i] != key)
    i = (i + 1) & b->mmask;
  b->mkey[i] = key;
  b->mval[i] = (uint64_t)rank << 32 | nw; /* a repeated pair: the later rank, as HF */
  return MN_OK;
}

static mn_status read_merges(tok_bpe *b, json_t *vocab, json_t *merges, const char *name,
                             mn_error *err)
{
  if (!json_is_array(merges)) return refuse(err, name, "model.merges is missing or not an array");
  size_t n = json_array_size(merges), slots = 16;
  while (slots < 2 * n)
    slots *= 2;
  b->mshift = 64;
  for (size_t s = slots; s > 1; s /= 2)
    b->mshift--;
  b->mmask = slots - 1;
  b->mkey = malloc(slots * sizeof *b->mkey);
  b->mval = malloc(slots * sizeof *b->mval);
  b->merges = malloc((n ? n : 1) * 2 * sizeof *b->merges);
  char *cat = NULL;
  size_t catcap = 0;
  mn_status rc = MN_OK;
  if (!b->mkey || !b->mval || !b->merges) goto nomem;
  memset(b->mkey, 0xFF, slots * sizeof *b->mkey);
  for (size_t r = 0; r < n; r++) {
    json_t *m = json_array_get(merges, r);
    const char *a, *c;
    size_t na, nc;
    if (json_is_string(m)) {
      a = json_string_value(m);
      const char *sp = strchr(a, ' ');
      if (!sp || strchr(sp + 1, ' ') || sp == a || !sp[1]) {
        rc = refuse(err, name, "model.merges[%zu] \"%.40s\" is not two tokens", r, a);
        goto out;
      }
      na = (size_t)(sp - a);
      c = sp + 1;
      nc = strlen(c);
    } else if (json_is_array(m) && json_array_size(m) == 2 &&
               json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
      a = json_string_value(json_array_get(m, 0));
      na = json_string_length(json_array_get(m, 0));
      c = json_string_value(json_array_get(m, 1));
      nc = json_string_length(json_array_get(m, 1));
    } else {
      rc = refuse(err, name, "model.merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]", r);
      goto out;
    }
    if (na + nc + 1 > catcap) {
      catcap = 2 * (na + nc + 1);
      char *p = realloc(cat, catcap);
      if (!p) goto nomem;
      cat = p;
    }
    memcpy(cat, a, na);
    memcpy(cat + na, c, nc);
    json_t *ia = json_object_getn(vocab, a, na), *ic = json_object_getn(vocab, c, nc),
           *iw = json_object_getn(vocab, cat, na + nc);
    if (!ia || !ic || !iw) {
      rc = refuse(err, name, "model.merges[%zu]: \"%.*s\" is not in the vocab", r,
                  (int)(!ia   ? (na > 40 ? 40 : na)
                        : !ic ? (nc > 40 ? 40 : nc)
                              : (na + nc > 40 ? 40 : na + nc)),
                  !ia   ? a
                  : !ic ? c
                        : cat);
      goto out;
    }
    uint32_t l = (uint32_t)json_integer_value(ia), rr = (uint32_t)json_integer_value(ic);
    b->merges[2 * r] = l;
    b->merges[2 * r + 1] = rr;
    merge_put(b, l, rr, (uint32_t)r, (uint32_t)json_integer_value(iw));
  }
  b->nmerges = n;
  goto out;
nomem:
  rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory reading \"%s\"", name);
out:
  free(cat);
  return rc;
}

/* whether content is a language tag <|lang:xxx|>: its code in code[8] */
static bool tag_code(const char *content, char code[8])
{
  size_t n = strlen(content);
  if (n < 11 || n > 17 || strncmp(content, "<|lang:", 7) != 0 || strcmp(content + n - 2, "|>"))
    return false;
  memcpy(code, content + 7, n - 9);
  code[n - 9] = 0;
  return mn_lang_code_valid(code);
}

static int cmp_added(const void *x, const void *y)
{
  const added_tok *a = x, *c = y;
  if (a->n != c->n) return a->n > c->n ? -1 : 1;
  return a->id < c->id ? -1 : a->id > c->id;
}

/* the added tokens: their count, ids checked; tags to `tags` */
static mn_status read_added(tok_bpe *b, json_t *list, const char *name, tok_tags *tags,
                            uint32_t *maxid, uint32_t *mintag, mn_error *err)
{
  size_t i;
  json_t *a;
  if (list && !json_is_array(list)) return refuse(err, name, "added_tokens is not an array");
  if (!(b->added = calloc(json_array_size(list) + 1, sizeof *b->added)))
    return mn_error_set(err, MN_ERR_NOMEM, "out of memory reading \"%s\"", name);
  json_array_foreach(list, i, a)
  {
    json_t *jid = json_object_get(a, "id");
    const char *content = json_string_value(json_object_get(a, "content"));
    if (!json_is_integer(jid) || json_integer_value(jid) < 0 ||
        json_integer_value(jid) >= TOK_MAX_ID || !content || !*content)
      return refuse(err, name, "added_tokens[%zu] needs an id below %d and a content", i,
                    TOK_MAX_ID);
    uint32_t id = (uint32_t)json_integer_value(jid);
    char code[8];
    if (strncmp(content, "<|unused:", 9) == 0) { /* a tag slot no language holds (tok_to_json) */
      if (id < *mintag) *mintag = id;
      continue;
    }
    if (tag_code(content, code)) {
      if (id < *mintag) *mintag = id;
      if (tags) {
        mn_status rc = tok_tags_add(tags, code, (int)id, err);
        if (rc != MN_OK) return mn_error_prefix(err, "%s: added_tokens[%zu]", name, i);
      }
      continue;
    }
    static const char *const flags[] = {"single_word", "lstrip", "rstrip", "normalized", "special"};
    bool f[5];
    for (int k = 0; k < 5; k++) {
      json_t *v = json_object_get(a, flags[k]);
      if (v && !json_is_boolean(v))
        return refuse(err, name, "added_tokens[%zu].%s is not a boolean", i, flags[k]);
      f[k] = json_is_true(v);
    }
    if (f[0]) return refuse(err, name, "added_tokens[%zu].single_word true is not supported", i);
    added_tok *t = &b->added[b->nadded++];
    t->id = id;
    t->lstrip = f[1], t->rstrip = f[2], t->normalized = f[3], t->special = f[4];
    t->n = strlen(content);
    if (t->normalized && b->nfc) {
      mn_buf nb;
      mn_buf_init(&nb, SIZE_MAX / 2);
      if (mn_nfc(content, t->n, &nb, err) != MN_OK) return MN_ERR_NOMEM;
      t->s = (uint8_t *)nb.data;
      t->n = nb.len;
    } else if ((t->s = malloc(t->n + 1))) {
      memcpy(t->s, content, t->n);
    }
    if (!t->s) return mn_error_set(err, MN_ERR_NOMEM, "out of memory reading \"%s\"", name);
    if (id > *maxid || *maxid == NO_ID) *maxid = id;
  }
  qsort(b->added, b->nadded, sizeof *b->added, cmp_added);
  for (size_t k = 0; k < b->nadded; k++) {
    added_tok *t = &b->added[k];
    b->nadded_kind[t->normalized]++;
    b->first[t->normalized][t->s[0] >> 3] |= (uint8_t)(1u << (t->s[0] & 7));
  }
  return MN_OK;
}

void trainer__bpe_destroy(tok_bpe *b)
{
  if (!b) return;
  for (size_t i = 0; b->added && i < b->nadded; i++)
    free(b->added[i].s);
  free(b->added);
  free(b->off);
  free(b->bytes);
  free(b->voff);
  free(b->vstr);
  free(b->kind);
  free(b->mkey);
  free(b->mval);
  free(b->merges);
  free(b->vtab);
  json_decref(b->post);
  free(b);
}

static const char *const eot_names[] = {"<|endoftext|>", "<|end_of_text|>", "<|eot|>", "</s>"};

mn_status trainer__bpe_from_json(json_t *root, const char *name, tok_bpe **out, uint32_t *base,
                                 uint32_t *eot, tok_tags *tags, mn_error *err)
{
  mn_status rc = MN_OK;
  tok_bpe *b = calloc(1, sizeof *b);
  *out = NULL;
  if (!b) return mn_error_set(err, MN_ERR_NOMEM, "out of memory reading \"%s\"", name);
  if (!json_is_object(root)) {
    rc = refuse(err, name, "not a JSON object");
    goto out;
  }
  if ((rc = read_parts(b, root, name, err)) != MN_OK) goto out;
  json_t *m = json_object_get(root, "model"), *vocab = json_object_get(m, "vocab");
  if (!json_is_object(vocab) || !json_object_size(vocab)) {
    rc = refuse(err, name, "model.vocab is missing or empty");
    goto out;
  }
  uint32_t maxid = NO_ID, mintag = NO_ID;
  const char *key;
  json_t *v;
  json_object_foreach(vocab, key, v)
  {
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= TOK_MAX_ID) {
      rc = refuse(err, name, "model.vocab[\"%.40s\"] is not an id below %d", key, TOK_MAX_ID);
      goto out;
    }
    uint32_t id = (uint32_t)json_integer_value(v);
    if (maxid == NO_ID || id > maxid) maxid = id;
  }
  rc = read_added(b, json_object_get(root, "added_tokens"), name, tags, &maxid, &mintag, err);
  if (rc != MN_OK) goto out;
  if (mintag != NO_ID && mintag <= maxid) {
    rc = refuse(err, name, "added_tokens: language tag %u is not after every other id (%u)", mintag,
                maxid);
    goto out;
  }
  if ((rc = read_vocab(b, vocab, maxid + 1, name, err)) != MN_OK) goto out;
  if ((rc = read_merges(b, vocab, json_object_get(m, "merges"), name, err)) != MN_OK) goto out;
  uint32_t e = NO_ID;
  for (size_t i = 0; e == NO_ID && i < sizeof eot_names / sizeof *eot_names; i++)
    for (size_t k = 0; k < b->nadded; k++)
      if (b->added[k].n == strlen(eot_names[i]) &&
          !memcmp(b->added[k].s, eot_names[i], b->added[k].n))
        e = b->added[k].id;
  if (e == NO_ID) {
    rc = refuse(err, name,
                "added_tokens has no end of text (<|endoftext|>, <|end_of_text|>, "
                "<|eot|> or </s>)");
    goto out;
  }
  b->serial = atomic_fetch_add(&serials, 1) + 1;
  *base = b->nid;
  *eot = e;
  *out = b;
  b = NULL;
out:
  trainer__bpe_destroy(b);
  assert((rc == MN_OK) == (*out != NULL));
  return rc;
}

/* ---------------------------------------------------------------- tokenizer.json */

static json_t *byte_level(bool use_regex)
{
  return json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 0,
                   "trim_offsets", 1, "use_regex", use_regex);
}

json_t *trainer__bpe_to_json(const tok_bpe *b)
{
  json_t *root = json_object(), *vocab = json_object(), *merges = json_array(),
         *added = json_array(), *pre;
  bool ok = root && vocab && merges && added;
  for (uint32_t id = 0; ok && id < b->nid; id++)
    if (b->kind[id] & K_VOCAB)
      ok = !json_object_setn_new(vocab, b->vstr + b->voff[id], b->voff[id + 1] - b->voff[id],
                                 json_integer(id));
  for (size_t r = 0; ok && r < b->nmerges; r++) {
    uint32_t l = b->merges[2 * r], c = b->merges[2 * r + 1];
    ok = !json_array_append_new(
        merges, json_pack("[s%s%]", b->vstr + b->voff[l], (size_t)(b->voff[l + 1] - b->voff[l]),
                          b->vstr + b->voff[c], (size_t)(b->voff[c + 1] - b->voff[c])));
  }
  /* in id order, as Hugging Face writes them */
  for (uint32_t id = 0; ok && id < b->nid; id++) {
    if (!(b->kind[id] & K_ADDED)) continue;
    size_t k = 0;
    while (b->added[k].id != id)
      k++;
    const added_tok *t = &b->added[k];
    ok = !json_array_append_new(
        added, json_pack("{s:I, s:s%, s:b, s:b, s:b, s:b, s:b}", "id", (json_int_t)id, "content",
                         (const char *)t->s, t->n, "single_word", 0, "lstrip", t->lstrip, "rstrip",
                         t->rstrip, "normalized", t->normalized, "special", t->special));
  }
  if (b->split == TOK_SPLIT_GPT2 && b->bytelevel_regex)
    pre = byte_level(true);
  else if (b->split == TOK_SPLIT_NONE)
    pre = byte_level(false);
  else
    pre = json_pack("{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, o]}", "type", "Sequence", "pretokenizers",
                    "type", "Split", "pattern", "Regex", trainer__split_regex[b->split], "behavior",
                    "Isolated", "invert", 0, byte_level(false));
  json_t *model = json_pack("{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:b, s:o, s:o}", "type", "BPE",
                            "dropout", "unk_token", "continuing_subword_prefix",
                            "end_of_word_suffix", "fuse_unk", 0, "byte_fallback", 0,
                            "ignore_merges", b->ignore_merges, "vocab", vocab, "merges", merges);
  vocab = merges = NULL; /* the model holds them (or they are freed with it) */
  ok = ok && pre && model && !json_object_set_new(root, "version", json_string("1.0")) &&
       !json_object_set_new(root, "truncation", json_null()) &&
       !json_object_set_new(root, "padding", json_null()) &&
       !json_object_set_new(root, "added_tokens", added) &&
       !json_object_set_new(root, "normalizer",
                            b->nfc ? json_pack("{s:s}", "type", "NFC") : json_null()) &&
       !json_object_set_new(root, "pre_tokenizer", pre) &&
       !json_object_set_new(root, "post_processor",
                            b->post ? json_deep_copy(b->post) : json_null()) &&
       !json_object_set_new(root, "decoder", byte_level(true)) &&
       !json_object_set_new(root, "model", model);
  if (!ok) {
    json_decref(root);
    return NULL;
  }
  return root;
}
