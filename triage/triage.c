/*
 * triage.c -- checks, language, near-duplicates and severity of user reports (triage.h).
 *
 * Severity: a report's text (and its expected text, when given) is scored by the
 * production model exactly as evaluation items are (evalset_score: windows from the
 * language tag), in bits per byte, and divided by that language's typical bits per byte on
 * its newest held-out documents under the same model.  1 means "as surprising as ordinary
 * text of the language"; 2 means twice as surprising.  The larger of the two ratios is the
 * severity: a garbled answer and an expected text the model finds unlikely both say the
 * model is worse there than usual.  The typical values are computed once per checkpoint
 * and kept in a small JSON file beside it.
 */
#include "triage/triage.h"

#include "common/protocol.h"
#include "trainer/trainer.h"
#include "triage/lid.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

bool triage_check_text(const char *s, size_t n, const char *script, int64_t max_bytes, char *why,
                       size_t whylen)
{
  size_t letters = 0, skip = 0;
  mn_text_issue iss;
  if (n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) skip = 3; /* a leading BOM is not text */
  if (n == skip) {
    snprintf(why, whylen, "empty");
    return false;
  }
  if (max_bytes > 0 && (int64_t)n > max_bytes) {
    snprintf(why, whylen, "%zu bytes, more than %lld (triage.max_text_bytes)", n,
             (long long)max_bytes);
    return false;
  }
  /* the rule ingest applies to documents (common/text.c), line breaks and CRLF allowed */
  switch (mn_text_check(s + skip, n - skip, MN_TEXT_NEWLINE | MN_TEXT_CRLF, &iss)) {
  case MN_TEXT_OK: break;
  case MN_TEXT_EMPTY:
  case MN_TEXT_BLANK: snprintf(why, whylen, "empty"); return false;
  case MN_TEXT_UTF8:
    snprintf(why, whylen, "not UTF-8 (%s at byte %zu)", mn_utf8_problem_str(iss.utf8),
             skip + iss.offset);
    return false;
  case MN_TEXT_BIDI:
    snprintf(why, whylen, "bidirectional control (U+%04X at byte %zu)", (unsigned)iss.code_point,
             skip + iss.offset);
    return false;
  default: /* NUL, C0 and C1 controls, DEL, an inner BOM, U+FFFD */
    snprintf(why, whylen, "binary data (U+%04X at byte %zu)", (unsigned)iss.code_point,
             skip + iss.offset);
    return false;
  }
  s += skip;
  n -= skip;
  double share = mn_script_share(s, n, script, &letters);
  if (letters == 0) {
    snprintf(why, whylen, "no letters");
    return false;
  }
  if (script && *script && share < TRIAGE_MIN_SCRIPT_SHARE) {
    snprintf(why, whylen, "%.0f%% of its letters are in %s, the script of the claimed language",
             100 * share, script);
    return false;
  }
  return true;
}

/* ---------------------------------------------------------------- MinHash */

static uint64_t mix64(uint64_t z)
{
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

void triage_minhash(const char *s, size_t n, uint32_t sig[TRIAGE_MINHASH])
{
  for (int k = 0; k < TRIAGE_MINHASH; k++)
    sig[k] = UINT32_MAX;
  unsigned char w[5];
  size_t have = 0, shingles = 0;
  bool space = true; /* leading white space is dropped */
  uint64_t h;
  for (size_t i = 0; i <= n; i++) {
    unsigned char c = i < n ? (unsigned char)s[i] : ' ';
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (space && i < n) continue;
      c = ' ';
      space = true;
    } else {
      space = false;
      if (c >= 'A' && c <= 'Z') c = (unsigned char)(c + 32);
    }
    if (have == 5) memmove(w, w + 1, --have);
    w[have++] = c;
    if (have < 5) continue;
    h = 0xCBF29CE484222325ULL; /* FNV-1a of the shingle, then one mix per function */
    for (int j = 0; j < 5; j++)
      h = (h ^ w[j]) * 0x100000001B3ULL;
    for (int k = 0; k < TRIAGE_MINHASH; k++) {
      uint32_t v = (uint32_t)mix64(h + 0x9E3779B97F4A7C15ULL * (uint64_t)(k + 1));
      if (v < sig[k]) sig[k] = v;
    }
    shingles++;
  }
  if (!shingles && have) { /* shorter than a shingle: the whole text is one */
    h = 0xCBF29CE484222325ULL;
    for (size_t j = 0; j < have; j++)
      h = (h ^ w[j]) * 0x100000001B3ULL;
    for (int k = 0; k < TRIAGE_MINHASH; k++)
      sig[k] = (uint32_t)mix64(h + 0x9E3779B97F4A7C15ULL * (uint64_t)(k + 1));
  }
}

double triage_similarity(const uint32_t a[TRIAGE_MINHASH], const uint32_t b[TRIAGE_MINHASH])
{
  int eq = 0;
  for (int k = 0; k < TRIAGE_MINHASH; k++)
    eq += a[k] == b[k];
  return (double)eq / TRIAGE_MINHASH;
}

static void sig_hex(const uint32_t sig[TRIAGE_MINHASH], char out[TRIAGE_MINHASH * 8 + 1])
{
  for (int k = 0; k < TRIAGE_MINHASH; k++)
    snprintf(out + 8 * k, 9, "%08x", (unsigned)sig[k]);
}

static bool sig_parse(const char *hex, uint32_t sig[TRIAGE_MINHASH])
{
  if (!hex || strlen(hex) != TRIAGE_MINHASH * 8) return false;
  for (int k = 0; k < TRIAGE_MINHASH; k++) {
    char part[9];
    memcpy(part, hex + 8 * k, 8);
    part[8] = 0;
    char *end;
    unsigned long v = strtoul(part, &end, 16);
    if (*end) return false;
    sig[k] = (uint32_t)v;
  }
  return true;
}

/* ---------------------------------------------------------------- the batch */

typedef struct report {
  bool open; /* triaged before: only its group and signature matter */
  int64_t id, group;
  char lang[16], script[8];
  char *text, *expected;
  size_t tlen, elen;
  uint32_t sig[TRIAGE_MINHASH];
  /* results */
  bool valid;
  char why[160];
  double similarity;
  int t_item, e_item; /* their items in the scored set, or -1 */
} report;

typedef struct batch {
  report *r;
  size_t n, cap;
} batch;

static void batch_free(batch *b)
{
  for (size_t i = 0; i < b->n; i++)
    free(b->r[i].text), free(b->r[i].expected);
  free(b->r);
}

static mn_status copy_code(json_t *v, char *out, size_t n, const char *what, const mn_jsonl *in,
                           mn_error *err)
{
  const char *s = mn_json_str(v);
  if (!s || !*s || strlen(s) >= n)
    return mn_jsonl_fail(in, err, MN_ERR_INPUT, "\"%s\" missing or not a code", what);
  memcpy(out, s, strlen(s) + 1);
  return MN_OK;
}

static mn_status dup_json_text(json_t *v, char **out, size_t *len, mn_error *err)
{
  *len = json_string_length(v);
  *out = malloc(*len + 1);
  if (!*out) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  memcpy(*out, json_string_value(v), *len);
  (*out)[*len] = 0;
  return MN_OK;
}

/* read_record -- one line of the batch (common/protocol.h) into b */
static mn_status read_record(batch *b, json_t *o, const mn_jsonl *in, mn_error *err)
{
  const char *kind = mn_json_str(json_object_get(o, MN_BATCH_KIND));
  json_t *id = json_object_get(o, MN_BATCH_ID);
  if (!kind || (strcmp(kind, MN_BATCH_KIND_OPEN) && strcmp(kind, MN_BATCH_KIND_NEW)) ||
      !json_is_integer(id))
    return mn_jsonl_fail(in, err, MN_ERR_INPUT, "not an \"%s\" or \"%s\" report with an %s",
                         MN_BATCH_KIND_OPEN, MN_BATCH_KIND_NEW, MN_BATCH_ID);
  if (b->n == b->cap) {
    size_t cap = b->cap ? 2 * b->cap : 64;
    report *r = realloc(b->r, cap * sizeof *r);
    if (!r) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    b->r = r, b->cap = cap;
  }
  report *r = &b->r[b->n];
  memset(r, 0, sizeof *r);
  r->id = json_integer_value(id);
  r->open = strcmp(kind, MN_BATCH_KIND_OPEN) == 0;
  r->t_item = r->e_item = -1;
  mn_status rc =
      copy_code(json_object_get(o, MN_BATCH_LANG), r->lang, sizeof r->lang, MN_BATCH_LANG, in, err);
  if (rc != MN_OK) return rc;
  if (r->open) {
    json_t *g = json_object_get(o, MN_BATCH_GROUP);
    r->group = json_is_integer(g) ? json_integer_value(g) : r->id;
    if (!sig_parse(mn_json_str(json_object_get(o, MN_BATCH_MINHASH)), r->sig))
      return mn_jsonl_fail(in, err, MN_ERR_INPUT, "\"%s\" is not %d hex digits", MN_BATCH_MINHASH,
                           TRIAGE_MINHASH * 8);
    b->n++;
    return MN_OK;
  }
  json_t *sv = json_object_get(o, MN_BATCH_SCRIPT);
  const char *script = mn_json_str(sv);
  if (sv && !json_is_null(sv) && (!script || strlen(script) >= sizeof r->script))
    return mn_jsonl_fail(in, err, MN_ERR_INPUT, "\"%s\" is not a script code", MN_BATCH_SCRIPT);
  snprintf(r->script, sizeof r->script, "%s", script ? script : "");
  json_t *t = json_object_get(o, MN_BATCH_TEXT), *e = json_object_get(o, MN_BATCH_EXPECTED);
  if (!json_is_string(t))
    return mn_jsonl_fail(in, err, MN_ERR_INPUT, "\"%s\" missing", MN_BATCH_TEXT);
  b->n++; /* owned from here: freed with the batch */
  if ((rc = dup_json_text(t, &r->text, &r->tlen, err)) != MN_OK) return rc;
  if (json_is_string(e)) rc = dup_json_text(e, &r->expected, &r->elen, err);
  return rc;
}

static mn_status read_batch(FILE *f, const char *name, batch *b, mn_error *err)
{
  mn_jsonl in;
  mn_jsonl_from(&in, f, name);
  json_t *o;
  mn_status rc;
  while ((rc = mn_jsonl_next(&in, &o, err)) == MN_OK && o) {
    rc = read_record(b, o, &in, err);
    json_decref(o);
    if (rc != MN_OK) break;
  }
  mn_jsonl_close(&in);
  return rc;
}

/* ---------------------------------------------------------------- typical bits per byte */

typedef struct typical {
  json_t *langs; /* {"kat": {"bpb": x, "items": n}} */
} typical;

static mn_status set_push(evalset *s, size_t *cap, const char *lang, const char *id,
                          const char *text, size_t len, mn_error *err)
{
  if (s->n == *cap) {
    size_t c = *cap ? 2 * *cap : 64;
    evalset_item *it = realloc(s->items, c * sizeof *it);
    if (!it) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    s->items = it, *cap = c;
  }
  evalset_item *it = &s->items[s->n];
  memset(it, 0, sizeof *it);
  it->kind = EVAL_PROBE;
  it->fixed_bits = -1;
  snprintf(it->lang, sizeof it->lang, "%s", lang);
  it->id = strdup(id);
  it->text = malloc(len + 1);
  if (!it->id || !it->text) {
    free(it->id), free(it->text);
    return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  }
  memcpy(it->text, text, len);
  it->text[len] = 0;
  it->len = len;
  s->n++;
  return MN_OK;
}

/* typical_load -- the file when it belongs to this checkpoint and window; else computed from
 * the held-out JSONL and written */
static mn_status typical_load(const triage_config *c, const ckpt_meta *meta, int T, typical *ty,
                              mn_error *err)
{
  json_t *f = json_load_file(c->typical, 0, NULL);
  const char *sha = json_string_value(json_object_get(f, "checkpoint"));
  if (sha && strcmp(sha, meta->sha256) == 0 &&
      json_integer_value(json_object_get(f, "seq_len")) == T &&
      json_is_object(json_object_get(f, "languages"))) {
    ty->langs = json_incref(json_object_get(f, "languages"));
    json_decref(f);
    return MN_OK;
  }
  json_decref(f);
  if (!c->heldout)
    return mn_error_set(err, MN_ERR_INPUT,
                        "\"%s\" is not the typical bits per byte of this checkpoint, and no "
                        "--heldout text was given to compute them",
                        c->typical);
  mn_jsonl in;
  mn_status rc = mn_jsonl_open(&in, c->heldout, err);
  if (rc != MN_OK) return rc;
  evalset s = {0};
  size_t cap = 0;
  json_t *o;
  while ((rc = mn_jsonl_next(&in, &o, err)) == MN_OK && o) {
    const char *lang = mn_json_str(json_object_get(o, "lang"));
    json_t *t = json_object_get(o, "text");
    size_t bad;
    if (!lang || !json_is_string(t) || strlen(lang) >= sizeof s.items[0].lang)
      rc = mn_jsonl_fail(&in, err, MN_ERR_INPUT, "not {\"lang\", \"text\"}");
    else if (tok_tag_of(&meta->tags, lang) >= 0 && json_string_length(t) > 0 &&
             mn_utf8_check(json_string_value(t), json_string_length(t), &bad) == MN_UTF8_OK) {
      char id[32];
      snprintf(id, sizeof id, "h%lld", (long long)in.line_no);
      rc = set_push(&s, &cap, lang, id, json_string_value(t), json_string_length(t), err);
    }
    json_decref(o);
    if (rc != MN_OK) break;
  }
  mn_jsonl_close(&in);
  double *bits = rc == MN_OK ? calloc(s.n ? s.n : 1, sizeof *bits) : NULL;
  if (rc == MN_OK && !bits) rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  ckpt_meta m2;
  bool cached;
  evalset_run run = {.seq_len = T};
  if (rc == MN_OK && s.n)
    rc = evalset_score_checkpoint(c->checkpoint, &s, &run, bits, &m2, &cached, err);
  json_t *langs = json_object();
  for (size_t i = 0; rc == MN_OK && i < s.n; i++) {
    json_t *l = json_object_get(langs, s.items[i].lang);
    if (!l)
      json_object_set_new(langs, s.items[i].lang,
                          l = json_pack("{s:f, s:f, s:i}", "bits", 0.0, "bytes", 0.0, "items", 0));
    json_object_set_new(l, "bits",
                        json_real(json_real_value(json_object_get(l, "bits")) + bits[i]));
    json_object_set_new(
        l, "bytes",
        json_real(json_real_value(json_object_get(l, "bytes")) + (double)s.items[i].len));
    json_object_set_new(l, "items",
                        json_integer(json_integer_value(json_object_get(l, "items")) + 1));
  }
  const char *k;
  json_t *l;
  json_object_foreach(langs, k, l)
  {
    double by = json_real_value(json_object_get(l, "bytes"));
    json_object_set_new(l, "bpb",
                        json_real(by > 0 ? json_real_value(json_object_get(l, "bits")) / by : 0));
  }
  free(bits);
  evalset_fini(&s);
  if (rc == MN_OK) {
    json_t *doc = json_pack("{s:s, s:s, s:i, s:O}", "format", "mnemo-typical", "checkpoint",
                            meta->sha256, "seq_len", T, "languages", langs);
    char *txt = json_dumps(doc, JSON_SORT_KEYS | JSON_INDENT(1));
    json_decref(doc);
    rc = txt ? mn_write_file_atomic(c->typical, txt, strlen(txt), 0640, err)
             : mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    free(txt);
  }
  if (rc == MN_OK)
    ty->langs = langs;
  else
    json_decref(langs);
  return rc;
}

static double typical_bpb(const typical *ty, const char *lang)
{
  json_t *l = json_object_get(ty->langs, lang);
  double v = json_real_value(json_object_get(l, "bpb"));
  return l && v > 0 ? v : -1;
}

/* ---------------------------------------------------------------- the run */

static json_t *spans_json(const lid_result *lr)
{
  json_t *sp = json_array();
  for (int i = 0; i < lr->nspans; i++)
    json_array_append_new(sp, json_pack("{s:s, s:I, s:I}", "lang", lr->spans[i].lang, "start",
                                        (json_int_t)lr->spans[i].start, "end",
                                        (json_int_t)lr->spans[i].end));
  return sp;
}

/* group -- the most similar earlier report of the same language (open ones and new ones
 * before it in the batch), at or above the threshold */
static void group(batch *b, size_t i, double threshold)
{
  report *r = &b->r[i];
  double best = 0;
  int64_t g = r->id;
  for (size_t j = 0; j < b->n; j++) {
    const report *o = &b->r[j];
    if (j == i || (!o->open && (j > i || !o->valid)) || strcmp(o->lang, r->lang) != 0) continue;
    double s = triage_similarity(r->sig, o->sig);
    if (s >= threshold && (s > best || (s == best && o->group < g))) best = s, g = o->group;
  }
  r->group = g;
  r->similarity = best;
}

mn_status triage_run(const triage_config *c, FILE *in, const char *in_name, FILE *out,
                     mn_error *err)
{
  batch b = {0};
  lid_model *lid = NULL;
  typical ty = {0};
  evalset s = {0};
  size_t cap = 0;
  double *bits = NULL;
  ckpt_meta meta;
  mn_status rc = read_batch(in, in_name, &b, err);
  if (rc == MN_OK) rc = lid_load(c->lid, &lid, err);
  if (rc == MN_OK) rc = ckpt_read_meta(c->checkpoint, &meta, err);
  int T =
      rc == MN_OK && meta.config.max_seq_len < c->seq_len ? meta.config.max_seq_len : c->seq_len;
  if (rc == MN_OK) rc = typical_load(c, &meta, T, &ty, err);
  /* checks, signatures, groups; the texts worth scoring */
  for (size_t i = 0; rc == MN_OK && i < b.n; i++) {
    report *r = &b.r[i];
    if (r->open) continue;
    r->valid =
        triage_check_text(r->text, r->tlen, r->script, c->max_text_bytes, r->why, sizeof r->why);
    char ewhy[150];
    if (r->valid && r->expected &&
        !triage_check_text(r->expected, r->elen, r->script, c->max_text_bytes, ewhy, sizeof ewhy)) {
      r->valid = false;
      snprintf(r->why, sizeof r->why, "expected text: %s", ewhy);
    }
    if (!r->valid) continue;
    triage_minhash(r->text, r->tlen, r->sig);
    group(&b, i, c->group_similarity);
    if (tok_tag_of(&meta.tags, r->lang) < 0 || typical_bpb(&ty, r->lang) < 0) continue;
    char id[48];
    snprintf(id, sizeof id, "t%lld", (long long)r->id);
    r->t_item = (int)s.n;
    rc = set_push(&s, &cap, r->lang, id, r->text, r->tlen, err);
    if (rc == MN_OK && r->expected) {
      snprintf(id, sizeof id, "e%lld", (long long)r->id);
      r->e_item = (int)s.n;
      rc = set_push(&s, &cap, r->lang, id, r->expected, r->elen, err);
    }
  }
  bool cached;
  evalset_run run = {.seq_len = T};
  if (rc == MN_OK && (bits = calloc(s.n ? s.n : 1, sizeof *bits)) == NULL)
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  if (rc == MN_OK && s.n)
    rc = evalset_score_checkpoint(c->checkpoint, &s, &run, bits, &meta, &cached, err);
  for (size_t i = 0; rc == MN_OK && i < b.n; i++) {
    report *r = &b.r[i];
    if (r->open) continue;
    json_t *o = json_pack("{s:I, s:b}", MN_BATCH_ID, (json_int_t)r->id, MN_BATCH_VALID, r->valid);
    if (!r->valid) {
      json_object_set_new(o, MN_BATCH_WHY, json_string(r->why));
    } else {
      lid_result lr;
      lid_classify(lid, r->text, r->tlen, &lr);
      char hex[TRIAGE_MINHASH * 8 + 1];
      sig_hex(r->sig, hex);
      json_t *d = json_pack("{s:s, s:f, s:s, s:b, s:o, s:I, s:f, s:s}", MN_BATCH_DETECTED, lr.lang,
                            "confidence", lr.confidence, "second", lr.second, "mixed", lr.mixed,
                            "spans", spans_json(&lr), MN_BATCH_GROUP, (json_int_t)r->group,
                            "similarity", r->similarity, MN_BATCH_MINHASH, hex);
      json_object_update(o, d);
      json_decref(d);
      double ty_bpb = typical_bpb(&ty, r->lang), sev = -1;
      if (r->t_item >= 0) {
        double bt = bits[r->t_item] / (double)r->tlen;
        json_object_set_new(o, "bpb_text", json_real(bt));
        json_object_set_new(o, "typical_bpb", json_real(ty_bpb));
        sev = bt / ty_bpb;
      }
      if (r->e_item >= 0) {
        double be = bits[r->e_item] / (double)r->elen;
        json_object_set_new(o, "bpb_expected", json_real(be));
        if (be / ty_bpb > sev) sev = be / ty_bpb;
      }
      if (sev >= 0)
        json_object_set_new(o, MN_BATCH_SEVERITY, json_real(sev));
      else
        json_object_set_new(o, "no_severity",
                            json_string(tok_tag_of(&meta.tags, r->lang) < 0
                                            ? "the production model has no tag for this language"
                                            : "no held-out text of this language to compare with"));
    }
    char *line = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!line || fprintf(out, "%s\n", line) < 0)
      rc = mn_error_set(err, MN_ERR_IO, "could not write the results: %s", strerror(errno));
    free(line);
  }
  if (rc == MN_OK && fflush(out) != 0)
    rc = mn_error_set(err, MN_ERR_IO, "could not write the results: %s", strerror(errno));
  free(bits);
  evalset_fini(&s);
  json_decref(ty.langs);
  lid_destroy(lid);
  batch_free(&b);
  return rc;
}
