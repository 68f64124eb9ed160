/*
 * lid.c -- language identification by hashed byte n-grams (lid.h).
 *
 * Text is normalised first: ASCII letters lowercased, every other ASCII byte (digits,
 * punctuation, white space) becomes one space, runs of spaces collapse, and the text is
 * padded with a space at each end; bytes of other scripts stay as they are.  Then every
 * 1- to 5-gram of the normalised bytes that is not all spaces is hashed (FNV-1a with the
 * order mixed in) into one of LID_BUCKETS buckets.
 */
#include "triage/lid.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LID_BITS      18
#define LID_BUCKETS   (1u << LID_BITS)
#define LID_ORDER     5
#define LID_QUANT     0.1          /* nats per step of the quantised table */
#define LID_ALPHA     0.05         /* add-alpha smoothing of the counts */
#define LID_SWITCH    600          /* a language switch costs 60 nats on the Viterbi path */
#define LID_MIN_BYTES 4            /* fewer letters than this: unknown */
#define LID_CONFIDENT 0.5          /* a posterior below this: unknown */
#define LID_MAX_WORDS 4096         /* the code-switching path looks at this many words at most */
#define LID_CALIBRATE (256 * 1024) /* bytes per language that set its typical fit */
#define LID_UNFIT     1.2 /* a text costing this many times its language's typical: unknown */

static const char magic[8] = {'M', 'N', 'L', 'I', 'D', '2', 0, 0};

struct lid_model {
  int nl;
  char codes[LID_MAX_LANGS][LID_CODE_MAX];
  float typical[LID_MAX_LANGS]; /* the language's own text: mean table units per n-gram */
  uint8_t *table;               /* [bucket][language]: -log p / LID_QUANT, rounded, at most 255 */
};

void lid_destroy(lid_model *m)
{
  if (!m) return;
  free(m->table);
  free(m);
}

int lid_languages(const lid_model *m)
{
  return m->nl;
}

const char *lid_language(const lid_model *m, int i)
{
  return i >= 0 && i < m->nl ? m->codes[i] : "und";
}

/* ---------------------------------------------------------------- features */

typedef struct norm {
  uint8_t *b;   /* normalised bytes */
  size_t *orig; /* b[i] came from text[orig[i]] (padding: the nearest) */
  size_t n;
} norm;

static bool normalise(const char *text, size_t len, norm *o)
{
  o->b = malloc(len + 2);
  o->orig = malloc((len + 2) * sizeof *o->orig);
  if (!o->b || !o->orig) {
    free(o->b), free(o->orig);
    return false;
  }
  size_t n = 0;
  o->b[n] = ' ', o->orig[n++] = 0;
  for (size_t i = 0; i < len; i++) {
    uint8_t c = (uint8_t)text[i];
    if (c < 0x80) {
      if (c >= 'A' && c <= 'Z') c = (uint8_t)(c + 32);
      if (!(c >= 'a' && c <= 'z')) c = ' ';
    }
    if (c == ' ' && o->b[n - 1] == ' ') continue;
    o->b[n] = c, o->orig[n++] = i;
  }
  if (o->b[n - 1] != ' ') o->b[n] = ' ', o->orig[n++] = len;
  o->n = n;
  return true;
}

static inline uint32_t bucket(const uint8_t *p, int k)
{
  uint64_t h = 14695981039346656037ULL ^ (uint64_t)k;
  for (int i = 0; i < k; i++)
    h = (h ^ p[i]) * 1099511628211ULL;
  h ^= h >> 29; /* FNV's low bits are weak: fold before taking the top */
  h *= 0xbf58476d1ce4e5b9ULL;
  return (uint32_t)(h >> (64 - LID_BITS));
}

/* each_gram -- fn(bucket, start) for every n-gram of b[0..n) not made of spaces only */
#define EACH_GRAM(nb, START, BUCKET, BODY)                                                         \
  for (size_t START = 0; START < (nb).n; START++)                                                  \
    for (int k_ = 1; k_ <= LID_ORDER && START + (size_t)k_ <= (nb).n; k_++) {                      \
      if (k_ == 1 && (nb).b[START] == ' ') continue;                                               \
      uint32_t BUCKET = bucket((nb).b + START, k_);                                                \
      BODY                                                                                         \
    }

/* ---------------------------------------------------------------- training */

typedef struct trainer {
  int nl;
  char codes[LID_MAX_LANGS][LID_CODE_MAX];
  uint32_t *counts[LID_MAX_LANGS];
  uint64_t total[LID_MAX_LANGS], bytes[LID_MAX_LANGS];
} trainer;

static int lang_index(trainer *t, const char *code, mn_error *err)
{
  for (int i = 0; i < t->nl; i++)
    if (strcmp(t->codes[i], code) == 0) return i;
  if (t->nl == LID_MAX_LANGS) {
    mn_error_set(err, MN_ERR_INPUT, "more than %d languages", LID_MAX_LANGS);
    return -1;
  }
  if ((t->counts[t->nl] = calloc(LID_BUCKETS, sizeof(uint32_t))) == NULL) {
    mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    return -1;
  }
  snprintf(t->codes[t->nl], LID_CODE_MAX, "%s", code);
  return t->nl++;
}

/* calibrate -- a document of language l in the finished model: its cost per n-gram */
typedef struct calib {
  const lid_model *m;
  double units[LID_MAX_LANGS], grams[LID_MAX_LANGS];
} calib;

static mn_status train_file(trainer *t, calib *cal, const char *file, int64_t max_bytes,
                            mn_error *err)
{
  mn_jsonl in;
  mn_status rc = mn_jsonl_open(&in, file, err);
  if (rc != MN_OK) return rc;
  json_t *r;
  while ((rc = mn_jsonl_next(&in, &r, err)) == MN_OK && r) {
    const char *lang = mn_json_str(json_object_get(r, "lang"));
    json_t *tx = json_object_get(r, "text");
    if (!lang || !json_is_string(tx) || !mn_lang_code_valid(lang)) {
      rc = mn_jsonl_fail(&in, err, MN_ERR_INPUT,
                         "not a {\"lang\", \"text\"} record with a language code");
      json_decref(r);
      break;
    }
    size_t len = json_string_length(tx);
    if (cal) { /* the second pass: how well the model fits its own languages' text */
      int l = -1;
      for (int i = 0; i < cal->m->nl && l < 0; i++)
        if (strcmp(cal->m->codes[i], lang) == 0) l = i;
      norm nb;
      if (l >= 0 && cal->grams[l] < LID_CALIBRATE && normalise(json_string_value(tx), len, &nb)) {
        EACH_GRAM(nb, s, b, {
          (void)s;
          cal->units[l] += cal->m->table[(size_t)b * (size_t)cal->m->nl + (size_t)l];
          cal->grams[l] += 1;
        })
        free(nb.b), free(nb.orig);
      }
      json_decref(r);
      continue;
    }
    int l = lang_index(t, lang, err);
    if (l < 0) {
      json_decref(r);
      rc = err->code;
      break;
    }
    if (max_bytes > 0 && t->bytes[l] >= (uint64_t)max_bytes) {
      json_decref(r);
      continue;
    }
    t->bytes[l] += len;
    norm nb;
    if (!normalise(json_string_value(tx), len, &nb)) {
      json_decref(r);
      rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
      break;
    }
    uint32_t *c = t->counts[l];
    EACH_GRAM(nb, s, b, {
      (void)s;
      if (c[b] < UINT32_MAX) c[b]++;
      t->total[l]++;
    })
    free(nb.b), free(nb.orig);
    json_decref(r);
  }
  mn_jsonl_close(&in);
  return rc;
}

static int code_cmp(const void *a, const void *b)
{
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

mn_status lid_train(const char *const *files, int nfiles, int64_t max_bytes, lid_model **out,
                    mn_error *err)
{
  *out = NULL;
  trainer *t = calloc(1, sizeof *t);
  lid_model *m = calloc(1, sizeof *m);
  mn_status rc = t && m ? MN_OK : mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  for (int i = 0; rc == MN_OK && i < nfiles; i++)
    rc = train_file(t, NULL, files[i], max_bytes, err);
  if (rc == MN_OK && t->nl == 0) rc = mn_error_set(err, MN_ERR_INPUT, "no training text");
  if (rc == MN_OK && (m->table = malloc((size_t)LID_BUCKETS * (size_t)t->nl)) == NULL)
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  if (rc == MN_OK) { /* languages in code order: the same data make the same file */
    const char *order[LID_MAX_LANGS];
    for (int i = 0; i < t->nl; i++)
      order[i] = t->codes[i];
    qsort(order, (size_t)t->nl, sizeof *order, code_cmp);
    m->nl = t->nl;
    for (int j = 0; j < t->nl; j++) {
      int i = (int)((const char(*)[LID_CODE_MAX])order[j] - t->codes);
      snprintf(m->codes[j], LID_CODE_MAX, "%s", t->codes[i]);
      double denom = log((double)t->total[i] + LID_ALPHA * LID_BUCKETS);
      for (uint32_t b = 0; b < LID_BUCKETS; b++) {
        double q = (denom - log(t->counts[i][b] + LID_ALPHA)) / LID_QUANT;
        m->table[(size_t)b * (size_t)t->nl + (size_t)j] = (uint8_t)(q > 255 ? 255 : lround(q));
      }
    }
  }
  if (t)
    for (int i = 0; i < t->nl; i++)
      free(t->counts[i]);
  free(t);
  calib *cal = rc == MN_OK ? calloc(1, sizeof *cal) : NULL;
  if (rc == MN_OK && !cal) rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  if (cal) cal->m = m;
  for (int i = 0; rc == MN_OK && i < nfiles; i++)
    rc = train_file(NULL, cal, files[i], max_bytes, err);
  for (int l = 0; rc == MN_OK && l < m->nl; l++)
    m->typical[l] = (float)(cal->units[l] / (cal->grams[l] > 0 ? cal->grams[l] : 1));
  free(cal);
  if (rc != MN_OK) {
    lid_destroy(m);
    return rc;
  }
  *out = m;
  return MN_OK;
}

/* ---------------------------------------------------------------- the file */

static mn_status digest(const void *p, size_t n, uint8_t out[MN_SHA256_LEN], mn_error *err)
{
  mn_sha256 h;
  mn_status rc = mn_sha256_init(&h, err);
  if (rc == MN_OK && (rc = mn_sha256_update(&h, p, n, err)) != MN_OK) mn_sha256_abort(&h);
  return rc == MN_OK ? mn_sha256_final(&h, out, err) : rc;
}

mn_status lid_save(const lid_model *m, const char *path, mn_error *err)
{
  size_t table = (size_t)LID_BUCKETS * (size_t)m->nl;
  size_t n =
      sizeof magic + 8 + (size_t)m->nl * (LID_CODE_MAX + sizeof(float)) + table + MN_SHA256_LEN;
  uint8_t *p = calloc(1, n);
  if (!p) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  uint8_t *w = p;
  memcpy(w, magic, sizeof magic), w += sizeof magic;
  uint32_t hdr[2] = {(uint32_t)m->nl, LID_BITS};
  memcpy(w, hdr, sizeof hdr), w += sizeof hdr;
  for (int i = 0; i < m->nl; i++)
    memcpy(w, m->codes[i], LID_CODE_MAX), w += LID_CODE_MAX;
  memcpy(w, m->typical, (size_t)m->nl * sizeof(float)), w += (size_t)m->nl * sizeof(float);
  memcpy(w, m->table, table), w += table;
  mn_status rc = digest(p, (size_t)(w - p), w, err);
  if (rc == MN_OK) rc = mn_write_file_atomic(path, p, n, 0644, err);
  free(p);
  return rc;
}

mn_status lid_load(const char *path, lid_model **out, mn_error *err)
{
  *out = NULL;
  mn_buf file;
  mn_buf_init(&file, (size_t)1 << 30);
  mn_status rc = mn_buf_read_file(&file, path, err);
  if (rc != MN_OK) {
    mn_buf_fini(&file);
    return rc;
  }
  uint8_t *p = (uint8_t *)file.data;
  size_t n = file.len;
  uint32_t hdr[2] = {0, 0};
  if (n >= sizeof magic + sizeof hdr) memcpy(hdr, p + sizeof magic, sizeof hdr);
  size_t want = sizeof magic + sizeof hdr + (size_t)hdr[0] * (LID_CODE_MAX + sizeof(float)) +
                (size_t)LID_BUCKETS * hdr[0] + MN_SHA256_LEN;
  uint8_t sum[MN_SHA256_LEN];
  if (n < sizeof magic + sizeof hdr || memcmp(p, magic, sizeof magic) != 0 || hdr[1] != LID_BITS ||
      hdr[0] == 0 || hdr[0] > LID_MAX_LANGS || n != want) {
    mn_buf_fini(&file);
    return mn_error_set(err, MN_ERR_CORRUPT, "\"%s\" is not a language identification model", path);
  }
  if ((rc = digest(p, n - MN_SHA256_LEN, sum, err)) != MN_OK) {
    mn_buf_fini(&file);
    return rc;
  }
  if (memcmp(sum, p + n - MN_SHA256_LEN, MN_SHA256_LEN) != 0) {
    mn_buf_fini(&file);
    return mn_error_set(err, MN_ERR_CORRUPT, "\"%s\": checksum mismatch (damaged)", path);
  }
  lid_model *m = calloc(1, sizeof *m);
  if (m) m->table = malloc((size_t)LID_BUCKETS * hdr[0]);
  if (!m || !m->table) {
    lid_destroy(m);
    mn_buf_fini(&file);
    return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  }
  m->nl = (int)hdr[0];
  const uint8_t *r = p + sizeof magic + sizeof hdr;
  for (int i = 0; i < m->nl; i++, r += LID_CODE_MAX) {
    memcpy(m->codes[i], r, LID_CODE_MAX);
    m->codes[i][LID_CODE_MAX - 1] = 0;
    if (!mn_lang_code_valid(m->codes[i])) {
      lid_destroy(m);
      mn_buf_fini(&file);
      return mn_error_set(err, MN_ERR_CORRUPT, "\"%s\": a bad language code", path);
    }
  }
  memcpy(m->typical, r, (size_t)m->nl * sizeof(float));
  r += (size_t)m->nl * sizeof(float);
  memcpy(m->table, r, (size_t)LID_BUCKETS * hdr[0]);
  mn_buf_fini(&file);
  *out = m;
  return MN_OK;
}

/* ---------------------------------------------------------------- classifying */

static void posterior(const lid_model *m, const int64_t *score, int *best, double *pbest,
                      int *second, double *psecond)
{
  int b = 0, s = -1;
  for (int l = 1; l < m->nl; l++)
    if (score[l] < score[b]) b = l;
  double z = 0;
  for (int l = 0; l < m->nl; l++) { /* each byte is in LID_ORDER n-grams: discount the overlap */
    double d = (double)(score[l] - score[b]) * LID_QUANT / LID_ORDER;
    z += exp(-d);
    if (l != b && (s < 0 || score[l] < score[s])) s = l;
  }
  *best = b, *pbest = 1.0 / z;
  *second = s;
  *psecond = s < 0 ? 0 : exp(-(double)(score[s] - score[b]) * LID_QUANT / LID_ORDER) / z;
}

/* the Viterbi path over words: spans of one language, a switch costing LID_SWITCH */
static bool spans(const lid_model *m, const norm *nb, const size_t *wstart, const size_t *wend,
                  const int64_t *ws, int nw, int *path /* OUT: nw languages */, lid_result *out)
{
  int L = m->nl;
  bool done = false;
  int64_t *cost = malloc((size_t)L * sizeof *cost), *next = malloc((size_t)L * sizeof *next);
  uint8_t *back = malloc((size_t)nw * (size_t)L);
  if (!cost || !next || !back) goto out;
  for (int l = 0; l < L; l++)
    cost[l] = ws[l];
  for (int w = 1; w < nw; w++) {
    int arg = 0;
    for (int l = 1; l < L; l++)
      if (cost[l] < cost[arg]) arg = l;
    for (int l = 0; l < L; l++) {
      bool sw = cost[arg] + LID_SWITCH < cost[l];
      next[l] = (sw ? cost[arg] + LID_SWITCH : cost[l]) + ws[(size_t)w * (size_t)L + (size_t)l];
      back[(size_t)w * (size_t)L + (size_t)l] = (uint8_t)(sw ? arg : l);
    }
    memcpy(cost, next, (size_t)L * sizeof *cost);
  }
  int l = 0;
  for (int k = 1; k < L; k++)
    if (cost[k] < cost[l]) l = k;
  for (int w = nw - 1; w >= 0; w--) {
    path[w] = l;
    if (w > 0) l = back[(size_t)w * (size_t)L + (size_t)l];
  }
  /* runs of one language; a run shorter than LID_MIN_SPAN_BYTES joins the one before it
   * (the first joins the next) */
  lid_span *run = malloc((size_t)nw * sizeof *run);
  int nr = 0;
  if (!run) goto out;
  for (int w = 0; w < nw; w++) {
    size_t a = nb->orig[wstart[w]], z = nb->orig[wend[w] - 1] + 1;
    if (nr && strcmp(run[nr - 1].lang, m->codes[path[w]]) == 0) {
      run[nr - 1].end = z;
      continue;
    }
    run[nr].start = a, run[nr].end = z;
    snprintf(run[nr].lang, LID_CODE_MAX, "%s", m->codes[path[w]]);
    nr++;
  }
  int k = 0;
  for (int i = 0; i < nr; i++) {
    bool small = run[i].end - run[i].start < LID_MIN_SPAN_BYTES;
    if (k && (small || strcmp(run[k - 1].lang, run[i].lang) == 0)) {
      run[k - 1].end = run[i].end;
    } else if (k == 0 && small && i + 1 < nr) {
      run[i + 1].start = run[i].start;
    } else {
      run[k++] = run[i];
    }
  }
  for (int i = 0; i < k && i < LID_MAX_SPANS; i++)
    out->spans[i] = run[i];
  out->nspans = k < LID_MAX_SPANS ? k : LID_MAX_SPANS;
  out->mixed = k >= 2;
  free(run);
  done = true;
out:
  free(cost), free(next), free(back);
  return done;
}

void lid_classify(const lid_model *m, const char *text, size_t len, lid_result *out)
{
  memset(out, 0, sizeof *out);
  snprintf(out->lang, sizeof out->lang, "und");
  snprintf(out->second, sizeof out->second, "und");
  norm nb;
  if (!normalise(text, len, &nb)) return;
  int L = m->nl, nw = 0;
  int64_t *total = calloc((size_t)L, sizeof *total);
  int64_t *ws = calloc((size_t)LID_MAX_WORDS * (size_t)L, sizeof *ws);
  size_t *wstart = malloc(LID_MAX_WORDS * sizeof *wstart);
  size_t *wend = malloc(LID_MAX_WORDS * sizeof *wend);
  int *word = malloc(nb.n * sizeof *word);
  int *path = malloc(LID_MAX_WORDS * sizeof *path);
  int64_t *wgrams = calloc(LID_MAX_WORDS, sizeof *wgrams);
  if (!total || !ws || !wstart || !wend || !word || !path || !wgrams) goto out;
  /* words: runs of non-space bytes (past LID_MAX_WORDS, the last one grows); an n-gram
   * belongs to the word it starts in, one starting at a space to the word after it */
  size_t letters = 0;
  for (size_t i = 0; i < nb.n; i++) {
    if (nb.b[i] == ' ') continue;
    letters++;
    if (i > 0 && nb.b[i - 1] != ' ') {
      word[i] = nw - 1;
      wend[nw - 1] = i + 1;
    } else if (nw < LID_MAX_WORDS) {
      wstart[nw] = i, wend[nw] = i + 1;
      word[i] = nw++;
    } else {
      word[i] = nw - 1, wend[nw - 1] = i + 1;
    }
  }
  if (letters < LID_MIN_BYTES) goto out;
  for (size_t i = nb.n; i-- > 0;) /* a space: the next word's, or the last word's at the end */
    if (nb.b[i] == ' ') word[i] = i + 1 < nb.n ? word[i + 1] : nw - 1;
  EACH_GRAM(nb, s, b, {
    const uint8_t *row = m->table + (size_t)b * (size_t)L;
    int64_t *into = ws + (size_t)word[s] * (size_t)L;
    wgrams[word[s]]++;
    for (int l = 0; l < L; l++) {
      total[l] += row[l];
      into[l] += row[l];
    }
  })
  int best, second;
  posterior(m, total, &best, &out->confidence, &second, &out->second_confidence);
  snprintf(out->lang, sizeof out->lang, "%s", m->codes[best]);
  if (second >= 0) snprintf(out->second, sizeof out->second, "%s", m->codes[second]);
  if (nw < 2 || !spans(m, &nb, wstart, wend, ws, nw, path, out))
    for (int i = 0; i < nw; i++)
      path[i] = best;
  /* the fit: each word under its language on the path against those languages' typical */
  double cost = 0, typical = 0;
  for (int i = 0; i < nw; i++) {
    cost += (double)ws[(size_t)i * (size_t)L + (size_t)path[i]];
    typical += (double)wgrams[i] * m->typical[path[i]];
  }
  out->fit = typical > 0 ? cost / typical : 0;
  /* unknown: no language is confident, or even the best fits this text far worse than
   * its own (a language the model was not trained on) */
  if ((out->confidence < LID_CONFIDENT && !out->mixed) || out->fit > LID_UNFIT) {
    snprintf(out->second, sizeof out->second, "%s", m->codes[best]);
    snprintf(out->lang, sizeof out->lang, "und");
    out->mixed = false, out->nspans = 0;
  }
out:
  free(total), free(ws), free(wstart), free(wend), free(word), free(path), free(wgrams);
  free(nb.b), free(nb.orig);
}
