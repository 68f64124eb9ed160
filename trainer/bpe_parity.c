/*
 * bpe_parity.c -- the development parallel set of tok_bpe_train's parity loop: reading it,
 * and measuring a trained tokenizer's premium per language on it.
 *
 * Not the loop (bpe_train.c reweighs and trains again) and not an evaluation: the premium
 * measured here tunes the tokenizer, so the set must not be the test text (the UDHR of
 * var/corpus/parallel.jsonl); scripts/corpus makes one from gettext catalogs.
 *
 * A language's dev premium is its tokens on the items it shares with the reference language
 * over the reference's tokens on the same items (Petrov et al., 2023), counted by mnemo's own
 * encoder (trainer__bpe_encode, which agrees with Hugging Face's id for id) on the
 * tokenizer.json a round wrote.
 *
 * The tokenizer must not have trained on the set: tok_bpe_train leaves every dev text out of
 * the training counts of its language (trainer__dev_has, a hash set of (language, text)), or
 * the premium would measure memorised text (the catalogs' msgstrs are training text too).
 *
 * Invariants after trainer__dev_read: (lang, item) is unique; every text is non-empty; the
 * reference has a record; ref[r] is the reference's record of record r's item (or -1), so a
 * language's premium is a sum over its records; slot finds every record's text, and each of
 * its beginnings that ends before a newline, by (code, bytes).
 */
#include "trainer/trainer_int.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DEV_MAX_BYTES ((size_t)1 << 30) /* the set's texts at most: it is encoded every round */

typedef struct dev_rec {
  char code[8]; /* the language */
  int lang;     /* its index into codes */
  char *item;   /* owned */
  char *text;   /* owned */
  size_t n;     /* text's bytes */
  int64_t line; /* in the file, for messages */
  int64_t ref;  /* the reference's record of this item, or -1 */
} dev_rec;

struct trainer__devset {
  char (*codes)[8]; /* TOK_MAX_TAGS */
  int ncodes, ref_lang;
  int *index; /* per code: its index in a premium array, or -1 (no item shared) */
  dev_rec *r;
  size_t n, cap, bytes;
  struct dev_key {
    uint32_t rec, len; /* the first len bytes of record rec's text */
    int flags;         /* TRAINER_DEV_TEXT, TRAINER_DEV_MORE */
  } * key;
  size_t nkey, capkey;
  uint32_t *slot; /* (code, bytes) -> key index + 1, 0 empty; open addressing */
  size_t nslot;
};

static uint64_t text_hash(const char *code, const uint8_t *s, size_t n)
{
  uint64_t h = 1469598103934665603ULL;
  for (const char *c = code; *c; c++)
    h = (h ^ (uint8_t)*c) * 1099511628211ULL;
  h = (h ^ 0xff) * 1099511628211ULL; /* no code byte is 0xff: code and text stay apart */
  for (size_t i = 0; i < n; i++)
    h = (h ^ s[i]) * 1099511628211ULL;
  return h ^ (h >> 29);
}

void trainer__dev_destroy(trainer__devset *d)
{
  if (!d) return;
  for (size_t i = 0; i < d->n; i++) {
    free(d->r[i].item);
    free(d->r[i].text);
  }
  free(d->r);
  free(d->codes);
  free(d->index);
  free(d->slot);
  free(d->key);
  free(d);
}

static mn_status read_dev(json_t *rec, const mn_jsonl *in, void *ctx, mn_error *err)
{
  trainer__devset *d = ctx;
  const char *code = mn_json_str(json_object_get(rec, "lang"));
  const char *item = mn_json_str(json_object_get(rec, "item"));
  json_t *t = json_object_get(rec, "text");
  if (!code || !item || !json_is_string(t))
    return mn_jsonl_fail(in, err, MN_ERR_INPUT,
                         "expected {\"lang\": ..., \"item\": ..., \"text\": ...}");
  size_t n = json_string_length(t);
  if (n == 0) return mn_jsonl_fail(in, err, MN_ERR_INPUT, "an empty text");
  if (!code[0] || strlen(code) >= sizeof d->codes[0])
    return mn_jsonl_fail(in, err, MN_ERR_INPUT, "language code \"%s\" is not 1 to 7 characters",
                         code);
  if (n > DEV_MAX_BYTES - d->bytes)
    return mn_jsonl_fail(in, err, MN_ERR_INPUT, "the development set is over %zu bytes",
                         DEV_MAX_BYTES);
  int li = 0;
  while (li < d->ncodes && strcmp(d->codes[li], code) != 0)
    li++;
  if (li == d->ncodes) {
    if (d->ncodes == TOK_MAX_TAGS)
      return mn_jsonl_fail(in, err, MN_ERR_INPUT, "more than %d languages", TOK_MAX_TAGS);
    snprintf(d->codes[d->ncodes++], sizeof d->codes[0], "%s", code);
  }
  if (d->n == d->cap) {
    size_t c = d->cap ? d->cap * 2 : 1024;
    dev_rec *q = realloc(d->r, c * sizeof *q);
    if (!q) return mn_error_set(err, MN_ERR_NOMEM, "out of memory reading the development set");
    d->r = q;
    d->cap = c;
  }
  dev_rec *r = &d->r[d->n];
  *r = (dev_rec){.lang = li, .n = n, .line = in->line_no, .ref = -1};
  memcpy(r->code, d->codes[li], sizeof r->code);
  r->item = strdup(item);
  r->text = malloc(n);
  if (!r->item || !r->text) {
    free(r->item);
    free(r->text);
    return mn_error_set(err, MN_ERR_NOMEM, "out of memory reading the development set");
  }
  memcpy(r->text, json_string_value(t), n);
  d->n++;
  d->bytes += n;
  return MN_OK;
}

static int cmp_rec(const void *x, const void *y)
{
  const dev_rec *a = x, *b = y;
  int c = strcmp(a->code, b->code);
  if (!c) c = strcmp(a->item, b->item);
  return c ? c : (a->line > b->line) - (a->line < b->line);
}

/* ref_of -- the reference's record of item (the records sorted), or -1 */
static int64_t ref_of(const trainer__devset *d, size_t lo, size_t hi, const char *item)
{
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(d->r[mid].item, item);
    if (c == 0) return (int64_t)mid;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -1;
}

/* find_key -- the slot of (code, text[0..n)): a key's, or the empty slot where it would go */
static size_t find_key(const trainer__devset *d, const char *code, const uint8_t *text, size_t n)
{
  size_t h = text_hash(code, text, n) & (d->nslot - 1);
  for (; d->slot[h]; h = (h + 1) & (d->nslot - 1)) {
    const struct dev_key *k = &d->key[d->slot[h] - 1];
    const dev_rec *r = &d->r[k->rec];
    if (k->len == n && strcmp(r->code, code) == 0 && memcmp(r->text, text, n) == 0) break;
  }
  return h;
}

/* add_key -- the first len bytes of record rec's text, with flags (d->key has room) */
static void add_key(trainer__devset *d, size_t rec, size_t len, int flags)
{
  const dev_rec *r = &d->r[rec];
  size_t h = find_key(d, r->code, (const uint8_t *)r->text, len);
  if (d->slot[h]) {
    d->key[d->slot[h] - 1].flags |= flags;
    return;
  }
  d->key[d->nkey] = (struct dev_key){.rec = (uint32_t)rec, .len = (uint32_t)len, .flags = flags};
  d->slot[h] = (uint32_t)++d->nkey;
}

mn_status trainer__dev_read(const char *path, const char *ref, trainer__devset **out, mn_error *err)
{
  mn_status rc = MN_OK;
  trainer__devset *d = calloc(1, sizeof *d);

  *out = NULL;
  if (!d || !(d->codes = calloc(TOK_MAX_TAGS, sizeof *d->codes)) ||
      !(d->index = malloc(TOK_MAX_TAGS * sizeof *d->index))) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory reading the development set");
    goto out;
  }
  if ((rc = mn_jsonl_each(path, read_dev, d, err))) goto out;
  if (d->n) qsort(d->r, d->n, sizeof *d->r, cmp_rec);
  for (size_t i = 1; i < d->n; i++)
    if (d->r[i].lang == d->r[i - 1].lang && strcmp(d->r[i].item, d->r[i - 1].item) == 0) {
      rc = mn_error_set(err, MN_ERR_INPUT, "%s:%lld: item \"%s\" of %s again (first at line %lld)",
                        path, (long long)d->r[i].line, d->r[i].item, d->codes[d->r[i].lang],
                        (long long)d->r[i - 1].line);
      goto out;
    }
  /* the reference's records: one run of the sorted array */
  size_t lo = 0, hi;
  while (lo < d->n && strcmp(d->r[lo].code, ref) != 0)
    lo++;
  for (hi = lo; hi < d->n && strcmp(d->r[hi].code, ref) == 0;)
    hi++;
  if (lo == hi) {
    rc = mn_error_set(err, MN_ERR_INPUT,
                      "cannot measure a premium: %s has no record of the reference language %s",
                      path, ref);
    goto out;
  }
  d->ref_lang = d->r[lo].lang;
  int shared[TOK_MAX_TAGS] = {0};
  for (size_t i = 0; i < d->n; i++) {
    d->r[i].ref = ref_of(d, lo, hi, d->r[i].item);
    shared[d->r[i].lang] += d->r[i].ref >= 0;
  }
  int k = 0;
  for (int i = 0; i < d->ncodes; i++)
    d->index[i] = shared[i] ? k++ : -1;
  if (k < 2) { /* the reference alone: no premium to measure */
    rc = mn_error_set(err, MN_ERR_INPUT,
                      "cannot measure a premium: no language of %s shares an item with the "
                      "reference language %s",
                      path, ref);
    goto out;
  }
  /* the texts and their line-ended beginnings by (code, bytes): the training reader leaves
   * the texts out.  Keys are at most the texts' lines, so twice that many slots suffice. */
  size_t lines = d->n;
  for (size_t i = 0; i < d->n; i++)
    for (size_t c = 0; c < d->r[i].n; c++)
      lines += d->r[i].text[c] == '\n';
  for (d->nslot = 16; d->nslot < 2 * lines;)
    d->nslot *= 2;
  if (!(d->slot = calloc(d->nslot, sizeof *d->slot)) ||
      !(d->key = malloc(lines * sizeof *d->key))) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory reading the development set");
    goto out;
  }
  for (size_t i = 0; i < d->n; i++) {
    const dev_rec *r = &d->r[i];
    for (size_t c = 0; c <= r->n; c++)
      if (c == r->n || r->text[c] == '\n')
        add_key(d, i, c, c == r->n ? TRAINER_DEV_TEXT : TRAINER_DEV_MORE);
  }
  *out = d;
  d = NULL;
out:
  trainer__dev_destroy(d);
  assert((rc == MN_OK) == (*out != NULL));
  return rc;
}

int trainer__dev_index(const trainer__devset *d, const char *code)
{
  for (int i = 0; i < d->ncodes; i++)
    if (strcmp(d->codes[i], code) == 0) return d->index[i];
  return -1;
}

int trainer__dev_lines(const trainer__devset *d, const char *code, const uint8_t *text, size_t n)
{
  size_t h = find_key(d, code, text, n);
  return d->slot[h] ? d->key[d->slot[h] - 1].flags : 0;
}

mn_status trainer__dev_premium(const trainer__devset *d, const char *json, double *prem,
                               mn_error *err)
{
  mn_status rc = MN_OK;
  tok_bpe *t = NULL;
  tok_cache *c = NULL;
  json_t *root = NULL;
  json_error_t je;
  uint32_t base, eot;
  uint32_t *ids = NULL;
  size_t len = 0, cap = 0;
  double *tokens = malloc((d->n ? d->n : 1) * sizeof *tokens);
  double *num = calloc(TOK_MAX_TAGS, sizeof *num), *den = calloc(TOK_MAX_TAGS, sizeof *den);

  if (!tokens || !num || !den) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory measuring the development set");
    goto out;
  }
  if (!(root = json_loads(json, 0, &je))) {
    rc = mn_error_set(err, MN_ERR_INPUT, "cannot read the round's tokenizer.json: %s", je.text);
    goto out;
  }
  if ((rc = trainer__bpe_from_json(root, "the round's tokenizer", &t, &base, &eot, NULL, err)) ||
      (rc = tok_cache_create(&c, err)))
    goto out;
  for (size_t i = 0; i < d->n && rc == MN_OK; i++) {
    len = 0;
    rc = trainer__bpe_encode(t, c, false, d->r[i].text, d->r[i].n, &ids, &len, &cap, err);
    tokens[i] = (double)len;
  }
  if (rc) goto out;
  for (size_t i = 0; i < d->n; i++) {
    int k = d->index[d->r[i].lang];
    if (k < 0 || d->r[i].ref < 0) continue;
    num[k] += tokens[i];
    den[k] += tokens[d->r[i].ref];
  }
  for (int i = 0; i < d->ncodes; i++) {
    int k = d->index[i];
    if (k >= 0) prem[k] = den[k] > 0 ? num[k] / den[k] : NAN;
  }
out:
  trainer__bpe_destroy(t);
  tok_cache_destroy(c);
  json_decref(root);
  free(ids);
  free(tokens);
  free(num);
  free(den);
  return rc;
}
