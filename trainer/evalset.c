/*
 * evalset.c -- evaluation sets: the items a candidate and its baseline are both scored on
 * (DESIGN.md §6), and the per-item scoring behind `mnemo eval --set` and `mnemo guard`.
 *
 * A set is one text file, written atomically: a header line, then one JSON object per item,
 * sorted by (kind, language, id) so that the same items always make the same bytes.  The
 * header names the SHA-256 of everything after it: that checksum is the set's version, and
 * scores are cached under (checkpoint, version), so two models are only ever compared on
 * identical items.  Item kinds:
 *   heldout   a held-out document (never trained on); id: the first 16 hex digits of its
 *             text's SHA-256.  Which documents are held out is the split stored at ingest
 *             (mnemo.documents.split), given as each record's "split"; a record without
 *             one (a corpus file made by hand) is split by ingest's hash rule at today's
 *             ingest.heldout_fraction, right only for documents ingested at that fraction;
 *   parallel  a UDHR item (the same content in every language); ref_chars: the characters
 *             of the reference language's version of the item, the common denominator;
 *   probe     the text of a user report (its expected text when given): report, status
 *             (accepted or fixed) and, for a fixed one, fixed_bits, the bits it scored
 *             when it was marked fixed.
 */
#include "trainer/trainer_int.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const kind_names[] = {"heldout", "parallel", "probe"};

const char *evalset_kind_name(evalset_kind k)
{
  return k >= 0 && k <= EVAL_PROBE ? kind_names[k] : "?";
}

static void item_free(evalset_item *it)
{
  free(it->id), free(it->text), free(it->report), free(it->status);
}

void evalset_fini(evalset *s)
{
  for (size_t i = 0; i < s->n; i++)
    item_free(&s->items[i]);
  free(s->items);
  memset(s, 0, sizeof *s);
}

int evalset_item_cmp(const evalset_item *x, const evalset_item *y)
{
  if (x->kind != y->kind) return x->kind < y->kind ? -1 : 1;
  int c = strcmp(x->lang, y->lang);
  return c ? c : strcmp(x->id, y->id);
}

static int item_cmp(const void *a, const void *b)
{
  return evalset_item_cmp(a, b);
}

static mn_status push(evalset *s, size_t *cap, evalset_item *it, mn_error *err)
{
  if (s->n == *cap) {
    size_t nc = *cap ? *cap * 2 : 256;
    evalset_item *p = realloc(s->items, nc * sizeof *p);
    if (!p) {
      item_free(it);
      return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    s->items = p, *cap = nc;
  }
  s->items[s->n++] = *it;
  return MN_OK;
}

static int64_t utf8_chars(const char *s, size_t n)
{
  int64_t c = 0;
  for (size_t i = 0; i < n; i++)
    c += ((unsigned char)s[i] & 0xC0) != 0x80;
  return c;
}

/* check_record -- one JSONL record of a source file, checked: a valid lang and non-empty
 * UTF-8 text without NUL (key `text_key`) */
static mn_status check_record(json_t *r, const mn_jsonl *in, const char *text_key, mn_error *err)
{
  const char *lang = mn_json_str(json_object_get(r, "lang"));
  json_t *t = json_object_get(r, text_key);
  if (!mn_lang_code_valid(lang))
    return mn_jsonl_fail(in, err, MN_ERR_INPUT, "\"lang\" must be a language code (2-7 of a-z _)");
  size_t bad;
  if (!json_is_string(t) || json_string_length(t) == 0 ||
      mn_utf8_check(json_string_value(t), json_string_length(t), &bad) != MN_UTF8_OK ||
      memchr(json_string_value(t), 0, json_string_length(t)))
    return mn_jsonl_fail(in, err, MN_ERR_INPUT, "\"%s\" must be non-empty UTF-8 text without NUL",
                         text_key);
  return MN_OK;
}

typedef mn_status (*record_fn)(json_t *rec, const char *file, int64_t ln, void *ctx, mn_error *err);

/* each_record -- fn for every record of a JSONL file (common's reader: blank lines skipped,
 * file:line in every message), each checked first */
static mn_status each_record(const char *file, const char *text_key, record_fn fn, void *ctx,
                             mn_error *err)
{
  mn_jsonl in;
  mn_status rc = mn_jsonl_open(&in, file, err);
  json_t *r;
  while (rc == MN_OK && (rc = mn_jsonl_next(&in, &r, err)) == MN_OK && r) {
    if ((rc = check_record(r, &in, text_key, err)) == MN_OK) rc = fn(r, file, in.line_no, ctx, err);
    json_decref(r);
  }
  if (in.f) mn_jsonl_close(&in);
  return rc;
}

typedef struct build_ctx {
  const evalset_sources *src;
  evalset *s;
  size_t cap;
  evalset_counts *counts;
  /* the reference language's parallel items: name -> characters */
  char **ref_names;
  int64_t *ref_chars;
  size_t nref, ref_cap;
} build_ctx;

static bool wanted(const build_ctx *c, const char *lang)
{
  return !c->src->tags || tok_tag_of(c->src->tags, lang) >= 0;
}

static mn_status dup_text(json_t *v, char **out, size_t *len, mn_error *err)
{
  *len = json_string_length(v);
  *out = malloc(*len + 1);
  if (!*out) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  memcpy(*out, json_string_value(v), *len + 1);
  return MN_OK;
}

static mn_status sha_of_text(const char *text, size_t n, uint8_t sha[MN_SHA256_LEN], mn_error *err)
{
  mn_sha256 h;
  mn_status rc = mn_sha256_init(&h, err);
  if (rc != MN_OK) return rc;
  if ((rc = mn_sha256_update(&h, text, n, err)) != MN_OK) {
    mn_sha256_abort(&h);
    return rc;
  }
  return mn_sha256_final(&h, sha, err);
}

mn_status evalset_record_split(json_t *rec, const char *text, size_t n, double fraction,
                               bool *heldout, bool *by_hash, mn_error *err)
{
  json_t *v = json_object_get(rec, "split");
  const char *split = mn_json_str(v);
  *heldout = false, *by_hash = !v;
  if (v) {
    if (!split || (strcmp(split, "heldout") != 0 && strcmp(split, "train") != 0))
      return mn_error_set(err, MN_ERR_INPUT,
                          "\"split\" must be \"train\" or \"heldout\" (the split stored at "
                          "ingest), got %s%.32s%s",
                          split ? "\"" : "", split ? split : "another JSON value",
                          split ? "\"" : "");
    *heldout = strcmp(split, "heldout") == 0;
    return MN_OK;
  }
  uint8_t sha[MN_SHA256_LEN];
  mn_status rc = sha_of_text(text, n, sha, err);
  if (rc == MN_OK) *heldout = mn_split_heldout(sha, fraction);
  return rc;
}

static mn_status add_heldout(json_t *r, const char *file, int64_t ln, void *ctx, mn_error *err)
{
  build_ctx *c = ctx;
  const char *lang = mn_json_str(json_object_get(r, "lang"));
  json_t *t = json_object_get(r, "text");
  uint8_t sha[MN_SHA256_LEN];
  bool held, by_hash;
  mn_status rc = evalset_record_split(r, json_string_value(t), json_string_length(t),
                                      c->src->heldout_fraction, &held, &by_hash, err);
  if (rc != MN_OK) {
    mn_error_prefix(err, "%s:%lld", file, (long long)ln);
    return rc;
  }
  c->counts->split_hashed += by_hash;
  c->counts->split_stored += !by_hash;
  /* only held-out documents: a trained-on document would flatter every model */
  if (!held) {
    c->counts->not_heldout++;
    return MN_OK;
  }
  if ((rc = sha_of_text(json_string_value(t), json_string_length(t), sha, err)) != MN_OK) return rc;
  if (!wanted(c, lang)) {
    c->counts->other_language++;
    return MN_OK;
  }
  char hex[2 * MN_SHA256_LEN + 1];
  mn_hex_encode(sha, MN_SHA256_LEN, hex);
  evalset_item it = {.kind = EVAL_HELDOUT, .fixed_bits = -1};
  snprintf(it.lang, sizeof it.lang, "%s", lang);
  if ((it.id = malloc(17)) == NULL) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  memcpy(it.id, hex, 16), it.id[16] = 0;
  if ((rc = dup_text(t, &it.text, &it.len, err)) != MN_OK) {
    item_free(&it);
    return rc;
  }
  if (c->src->max_item_bytes > 0 && it.len > (size_t)c->src->max_item_bytes) {
    size_t cut = (size_t)c->src->max_item_bytes; /* back to the start of a character */
    while (cut > 0 && ((unsigned char)it.text[cut] & 0xC0) == 0x80)
      cut--;
    it.len = cut;
    it.text[cut] = 0;
  }
  return push(c->s, &c->cap, &it, err);
}

static mn_status item_name(json_t *r, const char *key, const char *file, int64_t ln, char **out,
                           mn_error *err)
{
  json_t *v = json_object_get(r, key);
  char buf[32];
  const char *name = mn_json_str(v);
  if (json_is_integer(v)) {
    snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
    name = buf;
  }
  if (!name || !*name || strlen(name) > 64)
    return mn_error_set(err, MN_ERR_INPUT, "%s:%lld: \"%s\" must be a name of 1-64 characters",
                        file, (long long)ln, key);
  return mn_strdup(name, out, err);
}

/* the reference language's items first: every other language's item needs its size */
static mn_status add_reference(json_t *r, const char *file, int64_t ln, void *ctx, mn_error *err)
{
  build_ctx *c = ctx;
  if (strcmp(mn_json_str(json_object_get(r, "lang")), c->src->reference) != 0) return MN_OK;
  if (c->nref == c->ref_cap) {
    size_t nc = c->ref_cap ? c->ref_cap * 2 : 64;
    char **n = realloc(c->ref_names, nc * sizeof *n);
    if (!n) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    c->ref_names = n;
    int64_t *k = realloc(c->ref_chars, nc * sizeof *k);
    if (!k) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    c->ref_chars = k, c->ref_cap = nc;
  }
  mn_status rc = item_name(r, "item", file, ln, &c->ref_names[c->nref], err);
  if (rc != MN_OK) return rc;
  json_t *t = json_object_get(r, "text");
  int64_t chars = utf8_chars(json_string_value(t), json_string_length(t));
  for (size_t i = 0; i < c->nref; i++) /* one reference per item, or the denominator is a guess */
    if (strcmp(c->ref_names[i], c->ref_names[c->nref]) == 0) {
      bool same = c->ref_chars[i] == chars;
      free(c->ref_names[c->nref]);
      if (same) return MN_OK;
      return mn_error_set(err, MN_ERR_INPUT,
                          "%s:%lld: a second reference text (%s) for item \"%s\", of another size",
                          file, (long long)ln, c->src->reference, c->ref_names[i]);
    }
  c->ref_chars[c->nref++] = chars;
  return MN_OK;
}

static mn_status add_parallel(json_t *r, const char *file, int64_t ln, void *ctx, mn_error *err)
{
  build_ctx *c = ctx;
  const char *lang = mn_json_str(json_object_get(r, "lang"));
  if (!wanted(c, lang)) {
    c->counts->other_language++;
    return MN_OK;
  }
  evalset_item it = {.kind = EVAL_PARALLEL, .fixed_bits = -1};
  snprintf(it.lang, sizeof it.lang, "%s", lang);
  mn_status rc = item_name(r, "item", file, ln, &it.id, err);
  if (rc != MN_OK) return rc;
  for (size_t i = 0; i < c->nref; i++)
    if (strcmp(c->ref_names[i], it.id) == 0) it.ref_chars = c->ref_chars[i];
  if (it.ref_chars <= 0) { /* the reference lacks the item: nothing to normalise by */
    c->counts->no_reference++;
    item_free(&it);
    return MN_OK;
  }
  if ((rc = dup_text(json_object_get(r, "text"), &it.text, &it.len, err)) != MN_OK) {
    item_free(&it);
    return rc;
  }
  return push(c->s, &c->cap, &it, err);
}

static mn_status add_probe(json_t *r, const char *file, int64_t ln, void *ctx, mn_error *err)
{
  build_ctx *c = ctx;
  const char *lang = mn_json_str(json_object_get(r, "lang"));
  const char *status = mn_json_str(json_object_get(r, "status"));
  json_t *exp = json_object_get(r, "expected"), *fb = json_object_get(r, "fixed_bits");
  if (!status || (strcmp(status, "accepted") && strcmp(status, "fixed")))
    return mn_error_set(err, MN_ERR_INPUT, "%s:%lld: \"status\" must be accepted or fixed", file,
                        (long long)ln);
  bool fixed = strcmp(status, "fixed") == 0;
  if (fixed && !(json_is_number(fb) && json_number_value(fb) >= 0))
    return mn_error_set(err, MN_ERR_INPUT,
                        "%s:%lld: a fixed report needs \"fixed_bits\", the bits it scored when "
                        "marked fixed",
                        file, (long long)ln);
  size_t bad;
  if (exp && !json_is_null(exp) &&
      (!json_is_string(exp) || json_string_length(exp) == 0 ||
       mn_utf8_check(json_string_value(exp), json_string_length(exp), &bad) != MN_UTF8_OK ||
       memchr(json_string_value(exp), 0, json_string_length(exp))))
    return mn_error_set(err, MN_ERR_INPUT, "%s:%lld: \"expected\" must be non-empty UTF-8 text",
                        file, (long long)ln);
  if (!wanted(c, lang)) {
    c->counts->other_language++;
    return MN_OK;
  }
  evalset_item it = {.kind = EVAL_PROBE, .fixed_bits = fixed ? json_number_value(fb) : -1};
  snprintf(it.lang, sizeof it.lang, "%s", lang);
  mn_status rc;
  if ((rc = item_name(r, "report", file, ln, &it.report, err)) != MN_OK ||
      (rc = mn_strdup(status, &it.status, err)) != MN_OK) {
    item_free(&it);
    return rc;
  }
  char id[80];
  snprintf(id, sizeof id, "report-%s", it.report);
  /* what the user expected is what the model should find likely; else the text itself */
  json_t *scored = exp && json_is_string(exp) ? exp : json_object_get(r, "text");
  if ((rc = mn_strdup(id, &it.id, err)) != MN_OK ||
      (rc = dup_text(scored, &it.text, &it.len, err)) != MN_OK) {
    item_free(&it);
    return rc;
  }
  return push(c->s, &c->cap, &it, err);
}

static json_t *item_json(const evalset_item *it)
{
  json_t *o = json_pack("{s:s, s:s, s:s, s:s%}", "kind", evalset_kind_name(it->kind), "lang",
                        it->lang, "id", it->id, "text", it->text, it->len);
  if (!o) return NULL;
  if (it->kind == EVAL_PARALLEL) json_object_set_new(o, "ref_chars", json_integer(it->ref_chars));
  if (it->kind == EVAL_PROBE) {
    json_object_set_new(o, "report", json_string(it->report));
    json_object_set_new(o, "status", json_string(it->status));
    if (it->fixed_bits >= 0) json_object_set_new(o, "fixed_bits", json_real(it->fixed_bits));
  }
  return o;
}

mn_status evalset_build(const evalset_sources *src, const char *out, evalset_counts *counts,
                        mn_error *err)
{
  evalset s = {0};
  build_ctx c = {.src = src, .s = &s, .counts = counts};
  mn_buf body;
  mn_buf_init(&body, SIZE_MAX / 2);
  memset(counts, 0, sizeof *counts);
  mn_status rc = MN_OK;
  for (int i = 0; rc == MN_OK && i < src->nheldout; i++)
    rc = each_record(src->heldout[i], "text", add_heldout, &c, err);
  if (rc == MN_OK && src->parallel) {
    if (!mn_lang_code_valid(src->reference))
      rc = mn_error_set(err, MN_ERR_INPUT, "the reference language \"%s\" is not a code",
                        src->reference ? src->reference : "");
    else if ((rc = each_record(src->parallel, "text", add_reference, &c, err)) == MN_OK &&
             c.nref == 0)
      rc = mn_error_set(err, MN_ERR_INPUT,
                        "%s holds no item in the reference language \"%s\": parallel surprisal "
                        "is normalised by its characters",
                        src->parallel, src->reference);
    if (rc == MN_OK) rc = each_record(src->parallel, "text", add_parallel, &c, err);
  }
  if (rc == MN_OK && src->probes) rc = each_record(src->probes, "text", add_probe, &c, err);
  if (rc != MN_OK) goto out;
  if (s.n) qsort(s.items, s.n, sizeof *s.items, item_cmp);
  /* a duplicate (kind, language, id) is one item: the same document offered twice */
  size_t keep = 0, same = 0; /* same: items kept so far of this kind and language */
  for (size_t i = 0; i < s.n; i++) {
    evalset_item *it = &s.items[i];
    bool dup = keep && evalset_item_cmp(&s.items[keep - 1], it) == 0;
    if (dup) { /* the same document offered twice is one item; two different ones are an error */
      const evalset_item *was = &s.items[keep - 1];
      bool equal = was->len == it->len && memcmp(was->text, it->text, it->len) == 0 &&
                   was->fixed_bits == it->fixed_bits &&
                   (!was->status || strcmp(was->status, it->status) == 0);
      if (!equal) {
        rc = mn_error_set(err, MN_ERR_INPUT,
                          "%s item %s/%s is given twice with different content (text, status "
                          "or fixed_bits): which one to judge by is not for the order of the "
                          "input to decide",
                          evalset_kind_name(it->kind), it->lang, it->id);
        for (size_t k = i; k < s.n; k++) /* not yet kept: free them here */
          item_free(&s.items[k]);
        s.n = keep;
        goto out;
      }
    }
    if (!keep || s.items[keep - 1].kind != it->kind || strcmp(s.items[keep - 1].lang, it->lang))
      same = 0;
    /* the first max_items held-out documents of a language in id order: a uniform sample */
    bool over = it->kind == EVAL_HELDOUT && src->max_items > 0 && same >= (size_t)src->max_items;
    if (dup || over) {
      counts->duplicates += dup;
      counts->over_cap += !dup && over;
      item_free(it);
      continue;
    }
    s.items[keep++] = *it;
    same++;
  }
  s.n = keep;
  for (size_t i = 0; i < s.n && rc == MN_OK; i++) {
    json_t *o = item_json(&s.items[i]);
    char *line = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    if (!line) {
      rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
      break;
    }
    if ((rc = mn_buf_append(&body, line, strlen(line), err)) == MN_OK)
      rc = mn_buf_append(&body, "\n", 1, err);
    free(line);
    counts->items[s.items[i].kind]++;
  }
  if (rc != MN_OK) goto out;
  if (src->nheldout > 0 && counts->items[EVAL_HELDOUT] == 0) { /* a set that proves nothing */
    rc = mn_error_set(err, MN_ERR_INPUT,
                      "no held-out document in %s%s (%lld trained-on: by their \"split\" or, "
                      "for %lld records without one, the hash split at fraction %g; %lld of "
                      "other languages): a set without them cannot guard any language",
                      src->heldout[0], src->nheldout > 1 ? " and the other files" : "",
                      (long long)counts->not_heldout, (long long)counts->split_hashed,
                      src->heldout_fraction, (long long)counts->other_language);
    goto out;
  }
  if (s.n == 0) {
    rc = mn_error_set(err, MN_ERR_INPUT, "the set would hold no item: nothing to score");
    goto out;
  }
  char sha[MN_SHA256_HEX_LEN + 1];
  if ((rc = mn_sha256_hex(body.data, body.len, sha, err)) != MN_OK) goto out;
  json_t *hdr =
      json_pack("{s:s, s:i, s:s, s:I, s:s}", "format", "mnemo-evalset", "version", 1, "reference",
                src->parallel ? src->reference : "", "items", (json_int_t)s.n, "sha256", sha);
  if (hdr && src->nheldout > 0) { /* how held-out documents were told from trained-on ones */
    int64_t hashed = counts->split_hashed, stored = counts->split_stored;
    json_object_set_new(hdr, "heldout_split",
                        json_string(!hashed   ? "stored"
                                    : !stored ? "hash"
                                              : "stored+hash"));
    if (hashed) /* held-out by the hash means held out at this fraction */
      json_object_set_new(hdr, "heldout_fraction", json_real(src->heldout_fraction));
  }
  if (hdr && src->max_item_bytes > 0) /* the items are documents' beginnings: say how long */
    json_object_set_new(hdr, "max_item_bytes", json_integer((json_int_t)src->max_item_bytes));
  char *h = hdr ? json_dumps(hdr, JSON_COMPACT) : NULL;
  json_decref(hdr);
  mn_atomic_file *f;
  if (!h) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  } else if ((rc = mn_atomic_open(out, 0644, &f, err)) == MN_OK) {
    if ((rc = mn_atomic_write(f, h, strlen(h), err)) != MN_OK ||
        (rc = mn_atomic_write(f, "\n", 1, err)) != MN_OK ||
        (rc = mn_atomic_write(f, body.data, body.len, err)) != MN_OK)
      mn_atomic_abort(f);
    else
      rc = mn_atomic_commit(f, err);
  }
  free(h);
  if (rc == MN_OK) snprintf(counts->sha256, sizeof counts->sha256, "%s", sha);
out:
  for (size_t i = 0; i < c.nref; i++)
    free(c.ref_names[i]);
  free(c.ref_names), free(c.ref_chars);
  evalset_fini(&s);
  mn_buf_fini(&body);
  return rc;
}

/* ---------------------------------------------------------------- reading */

static mn_status parse_item(json_t *o, evalset_item *it, mn_error *err)
{
  const char *kind = json_string_value(json_object_get(o, "kind"));
  const char *lang = mn_json_str(json_object_get(o, "lang"));
  const char *id = json_string_value(json_object_get(o, "id"));
  json_t *t = json_object_get(o, "text");
  memset(it, 0, sizeof *it);
  it->fixed_bits = -1;
  int k = -1;
  for (int i = 0; kind && i <= EVAL_PROBE; i++)
    if (strcmp(kind, kind_names[i]) == 0) k = i;
  if (k < 0 || !mn_lang_code_valid(lang) || !id || !json_is_string(t) || json_string_length(t) == 0)
    return mn_error_set(err, MN_ERR_CORRUPT, "an item lacks kind, lang, id or text");
  it->kind = (evalset_kind)k;
  snprintf(it->lang, sizeof it->lang, "%s", lang);
  mn_status rc;
  if ((rc = mn_strdup(id, &it->id, err)) != MN_OK || (rc = dup_text(t, &it->text, &it->len, err)))
    return rc;
  if (k == EVAL_PARALLEL) {
    it->ref_chars = json_integer_value(json_object_get(o, "ref_chars"));
    if (it->ref_chars <= 0)
      return mn_error_set(err, MN_ERR_CORRUPT, "parallel item %s/%s has no ref_chars", lang, id);
  }
  if (k == EVAL_PROBE) {
    const char *rep = json_string_value(json_object_get(o, "report"));
    const char *st = json_string_value(json_object_get(o, "status"));
    json_t *fb = json_object_get(o, "fixed_bits");
    if (!rep || !st)
      return mn_error_set(err, MN_ERR_CORRUPT, "probe %s lacks report or status", id);
    if ((rc = mn_strdup(rep, &it->report, err)) != MN_OK ||
        (rc = mn_strdup(st, &it->status, err)) != MN_OK)
      return rc;
    if (fb) it->fixed_bits = json_number_value(fb);
  }
  return MN_OK;
}

mn_status evalset_load(const char *path, evalset *s, mn_error *err)
{
  memset(s, 0, sizeof *s);
  mn_buf b;
  mn_buf_init(&b, SIZE_MAX / 2);
  mn_status rc = mn_buf_read_file(&b, path, err);
  if (rc != MN_OK) return rc;
  const char *p = b.data, *end = p + b.len, *nl = memchr(p, '\n', b.len);
  json_error_t je;
  json_t *hdr = nl ? json_loadb(p, (size_t)(nl - p), 0, &je) : NULL;
  const char *fmt = json_string_value(json_object_get(hdr, "format"));
  const char *want = json_string_value(json_object_get(hdr, "sha256"));
  json_int_t nitems = json_integer_value(json_object_get(hdr, "items"));
  char sha[MN_SHA256_HEX_LEN + 1] = "";
  size_t cap = 0;
  if (!fmt || strcmp(fmt, "mnemo-evalset") != 0 ||
      json_integer_value(json_object_get(hdr, "version")) != 1 || !want || nitems < 0) {
    rc = mn_error_set(err, MN_ERR_CORRUPT, "%s: not an evaluation set (mnemo-evalset version 1)",
                      path);
    goto out;
  }
  if ((rc = mn_sha256_hex(nl + 1, (size_t)(end - nl - 1), sha, err)) != MN_OK) goto out;
  if (strcmp(sha, want) != 0) {
    rc = mn_error_set(err, MN_ERR_CORRUPT,
                      "%s: the items' checksum is %.12s..., the header says %.12s...: the file "
                      "is damaged or was edited",
                      path, sha, want);
    goto out;
  }
  snprintf(s->sha256, sizeof s->sha256, "%s", sha);
  const char *ref = json_string_value(json_object_get(hdr, "reference"));
  snprintf(s->reference, sizeof s->reference, "%s", ref ? ref : "");
  int64_t ln = 1;
  for (p = nl + 1; p < end;) {
    const char *e = memchr(p, '\n', (size_t)(end - p));
    if (!e) e = end;
    ln++;
    json_t *o = json_loadb(p, (size_t)(e - p), 0, &je);
    evalset_item it;
    memset(&it, 0, sizeof it); /* item_free below is safe whatever failed */
    rc = o ? parse_item(o, &it, err) : mn_error_set(err, MN_ERR_CORRUPT, "not JSON (%s)", je.text);
    json_decref(o);
    if (rc == MN_OK)
      rc = push(s, &cap, &it, err);
    else
      item_free(&it);
    if (rc != MN_OK) {
      mn_error_prefix(err, "%s:%lld", path, (long long)ln);
      goto out;
    }
    p = e + 1;
  }
  if ((json_int_t)s->n != nitems)
    rc = mn_error_set(err, MN_ERR_CORRUPT, "%s: %zu items, the header says %lld", path, s->n,
                      (long long)nitems);
out:
  json_decref(hdr);
  mn_buf_fini(&b);
  if (rc != MN_OK) evalset_fini(s);
  return rc;
}

/* ---------------------------------------------------------------- several sets as one */

static int item_ptr_cmp(const void *a, const void *b)
{
  return evalset_item_cmp(*(const evalset_item *const *)a, *(const evalset_item *const *)b);
}

mn_status evalset_load_many(const char *const *paths, int npaths, evalset *all, mn_error *err)
{
  char list[4096] = ""; /* the sets' names, in messages */
  for (int i = 0, k = 0; i < npaths && k < (int)sizeof list; i++)
    k += snprintf(list + k, sizeof list - (size_t)k, "%s%s", i ? "," : "", paths[i]);
  memset(all, 0, sizeof *all);
  mn_sha256 h;
  mn_status rc = mn_sha256_init(&h, err);
  for (int pi = 0; rc == MN_OK && pi < npaths; pi++) {
    const char *p = paths[pi];
    evalset s;
    if ((rc = evalset_load(p, &s, err)) != MN_OK) break;
    evalset_item *items = realloc(all->items, (all->n + s.n) * sizeof *items);
    if (!items) {
      evalset_fini(&s);
      rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
      break;
    }
    all->items = items;
    if (all->reference[0] && s.reference[0] && strcmp(all->reference, s.reference) != 0) {
      rc = mn_error_set(err, MN_ERR_INPUT,
                        "%s normalises parallel items by %s, an earlier set by %s: their parity "
                        "figures do not compare",
                        p, s.reference, all->reference);
      evalset_fini(&s);
      break;
    }
    memcpy(items + all->n, s.items, s.n * sizeof *items);
    all->n += s.n;
    free(s.items); /* the items moved */
    if (!all->reference[0]) snprintf(all->reference, sizeof all->reference, "%s", s.reference);
    rc = mn_sha256_update(&h, s.sha256, strlen(s.sha256), err);
  }
  /* an item in two sets would count twice: half the evidence passing for all of it */
  const evalset_item **by = rc == MN_OK ? malloc((all->n + 1) * sizeof *by) : NULL;
  if (rc == MN_OK && !by) rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  for (size_t i = 0; by && i < all->n; i++)
    by[i] = &all->items[i];
  if (by) qsort(by, all->n, sizeof *by, item_ptr_cmp);
  for (size_t i = 1; by && rc == MN_OK && i < all->n; i++)
    if (evalset_item_cmp(by[i - 1], by[i]) == 0)
      rc = mn_error_set(err, MN_ERR_INPUT,
                        "%s item %s/%s is in more than one of the sets %s: it would count twice",
                        evalset_kind_name(by[i]->kind), by[i]->lang, by[i]->id, list);
  free(by);
  uint8_t d[MN_SHA256_LEN];
  if (rc == MN_OK && (rc = mn_sha256_final(&h, d, err)) == MN_OK)
    mn_hex_encode(d, MN_SHA256_LEN, all->sha256); /* one set: the hash of its version */
  else
    mn_sha256_abort(&h), evalset_fini(all);
  return rc;
}

/* ---------------------------------------------------------------- scoring */

/*
 * evalset_score -- each item read as [tag, tokens..., eot] in windows of T predictions, every
 * window starting again from the tag (as `mnemo eval` reads shard documents); bits[i] are
 * the bits of the item's text tokens (the eot is not counted), which divided by the item's
 * UTF-8 bytes give bits per byte whatever the tokenizer.  Windows of many items share a
 * forward of up to B rows; a short row is padded and its padding not counted.
 */
void evalset_score_rows(gpt *m, const tokenizer *tok, const int32_t *x, const int32_t *y, int rows,
                        int T, const int *len, double *const *bits, int64_t *const *bytes)
{
  gpt_forward(m, x, y, rows, T);
  const float *l = gpt_losses(m);
  for (int r = 0; r < rows; r++)
    for (int k = 0; k < len[r]; k++) {
      const uint8_t *piece;
      size_t nb = tok_piece(tok, (uint32_t)y[(size_t)r * T + k], &piece);
      if (nb) { /* a token of text: not a tag, not the eot */
        *bits[r] += l[(size_t)r * T + k] / 0.69314718055994530942; /* nats to bits */
        if (bytes) *bytes[r] += (int64_t)nb;
      }
    }
}

typedef struct score_batch {
  const tokenizer *tok;
  int B, T, rows, tmax;
  int64_t done, total;    /* predictions scored, of all */
  const evalset_run *run; /* its on_progress, or NULL */
  int32_t *x, *y;         /* B rows at stride T */
  size_t *item;           /* each row's item */
  int *len;               /* each row's predictions */
  double **acc;           /* each row's item's bits */
} score_batch;

/* flush -- one forward over the batch's rows, each row's bits added to its item */
static void flush(gpt *m, score_batch *b, double *bits)
{
  if (!b->rows) return;
  int tm = b->tmax;
  for (int r = 1; r < b->rows && tm < b->T; r++) { /* the forward reads rows at stride tm */
    memmove(b->x + (size_t)r * tm, b->x + (size_t)r * b->T, (size_t)tm * sizeof *b->x);
    memmove(b->y + (size_t)r * tm, b->y + (size_t)r * b->T, (size_t)tm * sizeof *b->y);
  }
  for (int r = 0; r < b->rows; r++)
    b->acc[r] = &bits[b->item[r]];
  evalset_score_rows(m, b->tok, b->x, b->y, b->rows, tm, b->len, b->acc, NULL);
  for (int r = 0; r < b->rows; r++)
    b->done += b->len[r];
  b->rows = 0, b->tmax = 0;
  if (b->run && b->run->on_progress) b->run->on_progress(b->done, b->total, b->run->ctx);
}

typedef struct score_window {
  size_t item, p; /* item and its first prediction */
  int len;        /* predictions */
} score_window;

/* longest first, then in set order: full windows batch together, and the short last windows
 * of items share forwards of their own length instead of padding a full one */
static int window_cmp(const void *a, const void *b)
{
  const score_window *x = a, *y = b;
  if (x->len != y->len) return x->len > y->len ? -1 : 1;
  if (x->item != y->item) return x->item < y->item ? -1 : 1;
  return x->p < y->p ? -1 : x->p > y->p;
}

/* score -- evalset_score, telling run's on_progress (run may be NULL) */
static mn_status score(gpt *m, const tokenizer *tok, int B, int T, const tok_tags *tags,
                       const evalset *s, const evalset_run *run, double *bits /* OUT, n */,
                       mn_error *err)
{
  score_batch b = {.tok = tok, .B = B, .T = T, .run = run};
  score_window *w = NULL;
  size_t nw = 0, nids = 0, cap = 0;
  uint32_t *ids = NULL;
  size_t *first = calloc(s->n + 1, sizeof *first); /* item i's tokens: ids[first[i]..first[i+1]) */
  tok_cache *cache = NULL;
  b.x = calloc((size_t)B * T, sizeof *b.x), b.y = calloc((size_t)B * T, sizeof *b.y);
  b.item = calloc((size_t)B, sizeof *b.item), b.len = calloc((size_t)B, sizeof *b.len);
  b.acc = calloc((size_t)B, sizeof *b.acc);
  mn_status rc = tok_cache_create(&cache, err);
  if (rc == MN_OK && (!b.x || !b.y || !b.item || !b.len || !b.acc || !first)) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < s->n && rc == MN_OK; i++) {
    bits[i] = 0;
    if (tok_tag_of(tags, s->items[i].lang) < 0) {
      rc = mn_error_set(err, MN_ERR_INPUT,
                        "the checkpoint has no tag for \"%s\" (item %s of the set): build the "
                        "set for the model's languages (evalset --checkpoint)",
                        s->items[i].lang, s->items[i].id);
      goto out;
    }
    first[i] = nids;
    rc = tok_encode(tok, cache, s->items[i].text, s->items[i].len, &ids, &nids, &cap, err);
    nw += (nids - first[i]) / (size_t)T + 1; /* predictions: the tokens and the eot */
  }
  if (rc != MN_OK) goto out;
  first[s->n] = nids;
  if ((w = malloc((nw ? nw : 1) * sizeof *w)) == NULL) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    goto out;
  }
  nw = 0;
  for (size_t i = 0; i < s->n; i++)
    for (size_t p = 0, n = first[i + 1] - first[i]; p <= n; p += (size_t)T)
      w[nw++] = (score_window){
          .item = i, .p = p, .len = (int)(n + 1 - p < (size_t)T ? n + 1 - p : (size_t)T)};
  qsort(w, nw, sizeof *w, window_cmp);
  for (size_t k = 0; k < nw; k++)
    b.total += w[k].len;
  if (run && run->on_progress) run->on_progress(0, b.total, run->ctx);
  for (size_t k = 0; k < nw; k++) {
    const evalset_item *it = &s->items[w[k].item];
    const uint32_t *t = ids + first[w[k].item];
    size_t n = first[w[k].item + 1] - first[w[k].item], p = w[k].p;
    int len = w[k].len;
    int32_t *xr = b.x + (size_t)b.rows * T, *yr = b.y + (size_t)b.rows * T;
    xr[0] = tok_tag_of(tags, it->lang);
    for (int q = 1; q < len; q++)
      xr[q] = (int32_t)t[p + (size_t)q - 1];
    for (int q = 0; q < len; q++)
      yr[q] = p + (size_t)q < n ? (int32_t)t[p + (size_t)q] : (int32_t)tok_eot(tok);
    for (int q = len; q < T; q++)
      xr[q] = 0, yr[q] = (int32_t)tok_eot(tok);
    b.item[b.rows] = w[k].item, b.len[b.rows] = len;
    b.tmax = len > b.tmax ? len : b.tmax;
    if (++b.rows == B) flush(m, &b, bits);
  }
  flush(m, &b, bits);
out:
  free(w);
  free(ids);
  free(first);
  tok_cache_destroy(cache);
  free(b.x), free(b.y), free(b.item), free(b.len), free(b.acc);
  return rc;
}

mn_status evalset_score(gpt *m, const tokenizer *tok, int B, int T, const tok_tags *tags,
                        const evalset *s, double *bits /* OUT, n */, mn_error *err)
{
  return score(m, tok, B, T, tags, s, NULL, bits, err);
}

/* ---------------------------------------------------------------- scores of a checkpoint */

/* how items are scored (windows from the tag, the eot not counted): a cache of another
 * scoring is not these numbers */
#define SCORING_VERSION 1

/* the cache file of (checkpoint, set, window): a header, then one record per item, in the
 * set's order; false when the path does not fit */
static bool cache_path(const char *dir, const char *ckpt_sha, const char *set_sha, int T, char *out,
                       size_t n)
{
  int k =
      snprintf(out, n, "%s/%.16s-%.16s-T%d-v%d.scores", dir, ckpt_sha, set_sha, T, SCORING_VERSION);
  return k > 0 && (size_t)k < n;
}

static mn_status cache_read(const char *path, const char *ckpt_sha, const evalset *s, int T,
                            double *bits, bool *hit, mn_error *err)
{
  mn_buf b;
  mn_buf_init(&b, SIZE_MAX / 2);
  *hit = false;
  if (access(path, F_OK) != 0) return MN_OK;
  mn_status rc = mn_buf_read_file(&b, path, err);
  if (rc != MN_OK) return rc;
  const char *p = b.data, *end = p + b.len;
  size_t i = 0;
  bool ok = true;
  for (int64_t ln = 0; ok && p < end; ln++) {
    const char *e = memchr(p, '\n', (size_t)(end - p));
    if (!e) e = end;
    json_t *o = json_loadb(p, (size_t)(e - p), 0, NULL);
    if (ln == 0) {
      const char *c = json_string_value(json_object_get(o, "checkpoint"));
      const char *v = json_string_value(json_object_get(o, "set"));
      ok = c && v && strcmp(c, ckpt_sha) == 0 && strcmp(v, s->sha256) == 0 &&
           json_integer_value(json_object_get(o, "items")) == (json_int_t)s->n &&
           json_integer_value(json_object_get(o, "seq_len")) == T &&
           json_integer_value(json_object_get(o, "scoring")) == SCORING_VERSION;
    } else {
      const char *id = json_string_value(json_object_get(o, "id"));
      json_t *v = json_object_get(o, "nll_bits");
      ok = i < s->n && id && strcmp(id, s->items[i].id) == 0 && json_is_number(v) &&
           json_number_value(v) >= 0;
      if (ok) bits[i++] = json_number_value(v);
    }
    json_decref(o);
    p = e + 1;
  }
  mn_buf_fini(&b);
  /* a cache that does not match is not trusted: the items are scored again */
  *hit = ok && i == s->n;
  return MN_OK;
}

mn_status evalset_item_json(const evalset_item *it, double bits, char **out, mn_error *err)
{
  json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:f}", "kind", evalset_kind_name(it->kind), "lang",
                        it->lang, "id", it->id, "bytes", (json_int_t)it->len, "nll_bits", bits);
  *out = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  return *out ? MN_OK : mn_error_set(err, MN_ERR_NOMEM, "out of memory");
}

static mn_status cache_write(const char *path, const char *ckpt_sha, const evalset *s, int T,
                             const double *bits, mn_error *err)
{
  mn_buf b;
  mn_buf_init(&b, SIZE_MAX / 2);
  mn_status rc = mn_buf_appendf(&b, err,
                                "{\"checkpoint\":\"%s\",\"set\":\"%s\",\"items\":%zu,"
                                "\"seq_len\":%d,\"scoring\":%d}\n",
                                ckpt_sha, s->sha256, s->n, T, SCORING_VERSION);
  for (size_t i = 0; rc == MN_OK && i < s->n; i++) {
    char *line;
    if ((rc = evalset_item_json(&s->items[i], bits[i], &line, err)) != MN_OK) break;
    if ((rc = mn_buf_append(&b, line, strlen(line), err)) == MN_OK)
      rc = mn_buf_append(&b, "\n", 1, err);
    free(line);
  }
  if (rc == MN_OK) rc = mn_write_file_atomic(path, b.data, b.len, 0644, err);
  mn_buf_fini(&b);
  return rc;
}

mn_status evalset_score_checkpoint(const char *ckpt, const evalset *s, evalset_run *run,
                                   double *bits, ckpt_meta *meta, bool *cached, mn_error *err)
{
  gpt *m = NULL;
  tokenizer *tok = NULL;
  char path[4200] = "";
  mn_status rc = ckpt_read_meta(ckpt, meta, err);
  *cached = false;
  run->scoring_s = 0;
  if (rc != MN_OK) return rc;
  /* the window: scores depend on it, so the cache is keyed by it too */
  int T = meta->config.max_seq_len < run->seq_len ? meta->config.max_seq_len : run->seq_len;
  if (run->cache_dir && *run->cache_dir) {
    if (mkdir(run->cache_dir, 0755) != 0 && errno != EEXIST)
      return mn_error_set(err, MN_ERR_IO, "could not create \"%s\": %s", run->cache_dir,
                          strerror(errno));
    if (!cache_path(run->cache_dir, meta->sha256, s->sha256, T, path, sizeof path))
      return mn_error_set(err, MN_ERR_INPUT, "the cache folder's name is too long: %.64s...",
                          run->cache_dir);
    if ((rc = cache_read(path, meta->sha256, s, T, bits, cached, err)) != MN_OK || *cached)
      return rc;
  }
  int B = run->batch > 0 ? run->batch : 8;
  const kernels_backend *k = run->backend ? run->backend : kernels_cpu();
  if ((rc = tok_load(ckpt, &tok, NULL, err)) == MN_OK &&
      (rc = gpt_create(&meta->config, B, T, 0, k, &m, err)) == MN_OK &&
      (rc = ckpt_load(ckpt, m, meta, err)) == MN_OK) {
    double t0 = mn_monotonic_ms();
    rc = score(m, tok, B, T, &meta->tags, s, run, bits, err);
    if (rc == MN_OK) rc = gpt_sync(m, err); /* a device's failure: no scores */
    run->scoring_s = (mn_monotonic_ms() - t0) / 1e3;
  }
  if (rc == MN_OK && path[0]) rc = cache_write(path, meta->sha256, s, T, bits, err);
  gpt_destroy(m);
  tok_destroy(tok);
  return rc;
}
