/*
 * ingest_read.c -- ingest's reader thread (ingest.c says how the two threads work): files
 * into units (line, paragraph, file, JSONL record), each checked in C with its file:line
 * (common/text.c's rule, language, source, size), hashed (SHA-256, split), repeats of this
 * run dropped, and the good ones packed into batches for the loading thread; bad ones are
 * reported and, with --skip-bad, copied to the rejects file.
 */
#include "daemon/ingest_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- a line reader */

typedef struct reader {
  int fd;
  const char *name;
  char *buf;
  size_t start, end;
  bool eof;
  bool cr;       /* the line last returned ended in "\r\n" (the "\r" was removed) */
  int64_t line;  /* number of the line last returned, 1-based */
  int64_t total; /* bytes read from fd */
} reader;

void (*ingest__after_read)(int fd) = NULL;

/* reader_read -- read() into buf, counting the bytes; EINTR retried */
static ssize_t reader_read(reader *r, char *buf, size_t n)
{
  ssize_t got;
  do
    got = read(r->fd, buf, n);
  while (got < 0 && errno == EINTR);
  if (got > 0) r->total += got;
  if (ingest__after_read) ingest__after_read(r->fd);
  return got;
}

/*
 * reader_line -- the next line without its "\n" (and "\r") into out.  Lines
 * longer than cap are consumed whole but only their first cap bytes are kept,
 * and *too_long is set.  Returns 1 for a line, 0 at the end, -1 on a read error.
 */
static int reader_line(reader *r, mn_buf *out, size_t cap, bool *too_long, mn_error *err)
{
  mn_buf_reset(out);
  *too_long = false;
  bool any = false;
  for (;;) {
    if (r->start == r->end) {
      if (r->eof) break;
      ssize_t got = reader_read(r, r->buf, READ_CHUNK);
      if (got < 0) {
        mn_error_set(err, MN_ERR_IO, "could not read \"%s\": %s", r->name, strerror(errno));
        return -1;
      }
      r->start = 0;
      r->end = (size_t)got;
      if (got == 0) {
        r->eof = true;
        break;
      }
    }
    any = true;
    char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
    size_t n = (nl ? (size_t)(nl - (r->buf + r->start)) : r->end - r->start);
    size_t keep = n;
    if (out->len + keep > cap) {
      keep = out->len < cap ? cap - out->len : 0;
      *too_long = true;
    }
    if (keep && mn_buf_append(out, r->buf + r->start, keep, err) != MN_OK) return -1;
    r->start += n + (nl ? 1 : 0);
    if (nl) break;
  }
  if (!any) return 0;
  r->cr = out->len && out->data[out->len - 1] == '\r';
  if (r->cr) out->data[--out->len] = '\0';
  if (r->line == 0 && out->len >= 3 && memcmp(out->data, "\xEF\xBB\xBF", 3) == 0) {
    memmove(out->data, out->data + 3, out->len - 2); /* a UTF-8 byte order mark is not text */
    out->len -= 3;
  }
  r->line++;
  return 1;
}

static bool seen_add(ingest_state *r, const uint8_t sha[MN_SHA256_LEN], mn_error *err,
                     mn_status *rc)
{
  static const uint8_t empty[MN_SHA256_LEN];
  if ((r->seen_n + 1) * 2 > r->seen_cap) {
    size_t cap = r->seen_cap ? r->seen_cap * 2 : 4096;
    uint8_t(*t)[MN_SHA256_LEN] = calloc(cap, MN_SHA256_LEN);
    if (!t) {
      *rc =
          mn_error_set(err, MN_ERR_NOMEM, "out of memory tracking %zu document hashes", r->seen_n);
      return false;
    }
    for (size_t i = 0; i < r->seen_cap; i++) {
      if (memcmp(r->seen[i], empty, MN_SHA256_LEN) == 0) continue;
      uint64_t h;
      memcpy(&h, r->seen[i], 8);
      size_t j = h & (cap - 1);
      while (memcmp(t[j], empty, MN_SHA256_LEN) != 0)
        j = (j + 1) & (cap - 1);
      memcpy(t[j], r->seen[i], MN_SHA256_LEN);
    }
    free(r->seen);
    r->seen = t;
    r->seen_cap = cap;
  }
  uint64_t h;
  memcpy(&h, sha, 8);
  for (size_t j = h & (r->seen_cap - 1);; j = (j + 1) & (r->seen_cap - 1)) {
    if (memcmp(r->seen[j], sha, MN_SHA256_LEN) == 0) return false;
    if (memcmp(r->seen[j], empty, MN_SHA256_LEN) == 0) {
      memcpy(r->seen[j], sha, MN_SHA256_LEN);
      r->seen_n++;
      return true;
    }
  }
}

static void problem(ingest_state *r, const char *file, int64_t line, const char *fmt, ...)
    MN_PRINTF(4, 5);

static void problem(ingest_state *r, const char *file, int64_t line, const char *fmt, ...)
{
  ingest_result *res = r->res;
  res->bad++;
  if (res->nproblems >= INGEST_MAX_PROBLEMS) return;
  ingest_problem *p = &res->problems[res->nproblems++];
  snprintf(p->where, sizeof p->where, "%s:%lld", file, (long long)line);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->reason, sizeof p->reason, fmt, ap);
  va_end(ap);
}

/* ---------------------------------------------------------------- batches (reader side) */

static uint64_t fnv1a(const char *p)
{
  uint64_t h = 1469598103934665603ULL;
  for (; *p; p++)
    h = (h ^ (unsigned char)*p) * 1099511628211ULL;
  return h;
}

/* source_index -- the index of a source name; a new name is recorded in the run and in
 * the batch being filled, so the loader learns it before its first row. */
static mn_status source_index(ingest_state *r, const char *name, uint32_t *idx, mn_error *err)
{
  if ((r->nsources + 1) * 2 > r->slots_cap) {
    size_t cap = r->slots_cap ? r->slots_cap * 2 : 64;
    uint32_t *t = calloc(cap, sizeof *t);
    if (!t) return mn_error_set(err, MN_ERR_NOMEM, "out of memory indexing source names");
    for (size_t i = 0; i < r->nsources; i++) {
      size_t j = fnv1a(r->sources[i]) & (cap - 1);
      while (t[j])
        j = (j + 1) & (cap - 1);
      t[j] = (uint32_t)i + 1;
    }
    free(r->source_slots);
    r->source_slots = t;
    r->slots_cap = cap;
  }
  size_t mask = r->slots_cap - 1, j = fnv1a(name) & mask;
  for (; r->source_slots[j]; j = (j + 1) & mask)
    if (strcmp(r->sources[r->source_slots[j] - 1], name) == 0) {
      *idx = r->source_slots[j] - 1;
      return MN_OK;
    }
  batch *b = r->cur;
  if (r->nsources == r->sources_cap) {
    size_t cap = r->sources_cap ? r->sources_cap * 2 : 16;
    char **t = realloc(r->sources, cap * sizeof *t);
    if (!t) return mn_error_set(err, MN_ERR_NOMEM, "out of memory recording source names");
    r->sources = t;
    r->sources_cap = cap;
  }
  if (b->n_new == b->cap_new) {
    size_t cap = b->cap_new ? b->cap_new * 2 : 16;
    char **t = realloc(b->new_sources, cap * sizeof *t);
    if (!t) return mn_error_set(err, MN_ERR_NOMEM, "out of memory recording source names");
    b->new_sources = t;
    b->cap_new = cap;
  }
  char *copy = strdup(name);
  if (!copy) return mn_error_set(err, MN_ERR_NOMEM, "out of memory recording source names");
  r->sources[r->nsources] = copy; /* owned by the run; the batch only points at it */
  b->new_sources[b->n_new++] = copy;
  r->source_slots[j] = (uint32_t)r->nsources + 1;
  *idx = (uint32_t)r->nsources++;
  return MN_OK;
}

/* batch_ship -- hand the batch being filled to the loader and take an empty one (none
 * after the last).  Fails once the loader has failed: there is no point reading on. */
static mn_status batch_ship(ingest_state *r, bool last, mn_error *err)
{
  batch *b = r->cur;
  b->bad = r->res->bad;
  b->last = last;
  pthread_mutex_lock(&r->mu);
  r->full[(r->full_head + r->nfull) % BATCHES] = b;
  r->nfull++;
  r->cur = NULL;
  pthread_cond_broadcast(&r->cv);
  if (!last) {
    while (r->nspare == 0)
      pthread_cond_wait(&r->cv, &r->mu);
    r->cur = r->spare[--r->nspare];
  }
  pthread_mutex_unlock(&r->mu);
  if (!last && atomic_load(&r->stop))
    return mn_error_set(err, MN_ERR_DB, "stopped reading: storing the documents failed");
  return MN_OK;
}

/* progress -- the terminal's line: units, MB, MB/s and, when the inputs' sizes are known,
 * how far and how long to go (mn_progress) */
static void progress(ingest_state *r, bool last)
{
  if (!r->prog.out) return; /* off: nothing to do for each unit */
  double mb = (double)r->res->bytes_read / 1e6, s = (mn_monotonic_ms() - r->t0) / 1e3;
  double total = (double)r->bytes_total, done = (double)r->res->bytes_read;
  if (done > total || last) done = total; /* separators are not counted as read: the end is 100% */
  r->prog.force = last;                   /* the last counts are drawn, whatever the time */
  mn_progress_update(&r->prog, done, total, "%lld units, %.1f MB, %.1f MB/s",
                     (long long)r->res->units, mb, s > 0 ? mb / s : 0.0);
  if (last) mn_progress_end(&r->prog);
}

static mn_status reject(ingest_state *r, const char *raw, size_t n, const char *sep, mn_error *err)
{
  if (!r->rejects) return MN_OK;
  mn_status rc = mn_atomic_write(r->rejects, raw, n, err);
  if (rc == MN_OK) rc = mn_atomic_write(r->rejects, sep, strlen(sep), err);
  if (rc == MN_OK) r->res->rejected++;
  return rc;
}

/* name_problem -- why a source name cannot be stored, or NULL (why has the room) */
const char *ingest__name_problem(const char *name, char *why, size_t cap)
{
  mn_text_issue iss;
  if (!name || !*name) return "no source (give --source or a \"source\" field)";
  if (strlen(name) > MAX_SOURCE_BYTES) {
    snprintf(why, cap, "source name longer than %d bytes", MAX_SOURCE_BYTES);
    return why;
  }
  if (mn_text_check(name, strlen(name), 0, &iss) == MN_TEXT_OK) return NULL;
  char what[128];
  mn_text_describe(&iss, what, sizeof what);
  snprintf(why, cap, "source name: %s", what);
  return why;
}

/*
 * unit -- one candidate document: check it, then stage it or record why not.
 * raw/rawlen is what goes to the reject file when the unit is bad.
 */
static mn_status unit(ingest_state *r, const char *file, int64_t line, const char *lang,
                      const char *source, const char *text, size_t n, const char *raw,
                      size_t rawlen, const char *sep, mn_error *err)
{
  ingest_result *res = r->res;
  mn_text_issue iss;
  char why[160];
  const known_lang *kl = NULL;
  mn_status rc = MN_OK;
  res->units++;
  res->bytes_read += (int64_t)rawlen;
  progress(r, false);

#define BAD(...)                                                                                   \
  do {                                                                                             \
    problem(r, file, line, __VA_ARGS__);                                                           \
    return reject(r, raw, rawlen, sep, err);                                                       \
  } while (0)

  if (n && memchr(text, '\r', n)) { /* a document's lines end in "\n", whatever the unit */
    mn_buf_reset(&r->norm);
    if ((rc = mn_buf_append(&r->norm, text, n, err)) != MN_OK) return rc;
    n = mn_text_crlf_to_lf(r->norm.data, r->norm.len);
    text = r->norm.data;
  }
  if (mn_text_check(text, n, MN_TEXT_NEWLINE, &iss) != MN_TEXT_OK) {
    mn_text_describe(&iss, why, sizeof why);
    if (iss.problem == MN_TEXT_EMPTY || iss.problem == MN_TEXT_BLANK) BAD("%s", why);
    BAD("%s of the text", why);
  }
  if ((int64_t)n > r->opt->max_document_bytes)
    BAD("text of %zu bytes exceeds ingest.max_document_bytes (%lld)", n,
        (long long)r->opt->max_document_bytes);
  for (size_t i = 0; i < r->nlangs && !kl; i++)
    if (strcmp(r->langs[i].code, lang) == 0) kl = &r->langs[i];
  if (!kl) BAD("unknown language \"%.20s\" (add it with mnemoctl lang add)", lang);
  if (!kl->enabled) BAD("language \"%s\" is disabled", lang);
  const char *np = ingest__name_problem(source, why, sizeof why);
  if (np) BAD("%s", np);
#undef BAD

  uint8_t sha[MN_SHA256_LEN];
  mn_sha256 h;
  rc = mn_sha256_init(&h, err);
  if (rc == MN_OK) rc = mn_sha256_update(&h, text, n, err);
  if (rc == MN_OK) rc = mn_sha256_final(&h, sha, err);
  if (rc != MN_OK) return rc;
  r->lang_units[kl - r->langs]++;
  if (!seen_add(r, sha, err, &rc)) return rc; /* a repeat: counted as a duplicate later */
  uint32_t src = 0;
  if ((rc = source_index(r, source, &src, err)) != MN_OK) return rc;
  batch *b = r->cur;
  size_t at = b->text.len;
  if ((rc = mn_buf_append(&b->text, text, n, err)) != MN_OK) return rc;
  batch_row *row = &b->rows[b->n++];
  *row = (batch_row){.off = at,
                     .len = (uint32_t)n,
                     .lang = (uint32_t)(kl - r->langs),
                     .source = src,
                     .heldout = mn_split_heldout(sha, r->opt->heldout_fraction)};
  memcpy(row->sha, sha, sizeof sha);
  if (b->text.len >= BATCH_BYTES || b->n == BATCH_ROWS) rc = batch_ship(r, false, err);
  return rc;
}

/* ---------------------------------------------------------------- formats */

/*
 * The common JSONL record -- one object whose members are "lang", "text" and "source",
 * each a string, each at most once -- is read here, without building a jansson tree.
 * Anything else (another key, another kind of value, a lone surrogate, invalid UTF-8,
 * a control character in a string, trailing data) is left to jansson, whose verdict and
 * messages stay the only ones: this reader accepts a subset of what jansson accepts and
 * yields the same strings for it.
 */
typedef struct json_str {
  size_t off, len; /* in ingest_state.rec, decoded, NUL-terminated */
  bool nul;        /* holds a decoded U+0000 */
} json_str;

static size_t jsonl_ws(const char *p, size_t i, size_t n)
{
  while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
    i++;
  return i;
}

static int hex4(const char *p)
{
  int v = 0;
  for (int k = 0; k < 4; k++) {
    char c = p[k];
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

/* jsonl_string -- the string starting at p[*i] (its opening quote) decoded onto out; false
 * when it is not one this reader takes.  out has room: nothing decodes longer than its
 * escape. */
static bool jsonl_string(const char *p, size_t n, size_t *i, mn_buf *out, json_str *s)
{
  size_t j = *i + 1;
  char *o = out->data + out->len;
  s->off = out->len;
  s->nul = false;
  for (;;) {
    size_t run = j;
    while (j < n && (unsigned char)p[j] >= 0x20 && p[j] != '"' && p[j] != '\\')
      j++;
    memcpy(o, p + run, j - run);
    o += j - run;
    if (j >= n || (unsigned char)p[j] < 0x20) return false;
    if (p[j] == '"') break;
    if (j + 1 >= n) return false;
    char e = p[j + 1];
    j += 2;
    switch (e) {
    case '"': *o++ = '"'; continue;
    case '\\': *o++ = '\\'; continue;
    case '/': *o++ = '/'; continue;
    case 'b': *o++ = '\b'; continue;
    case 'f': *o++ = '\f'; continue;
    case 'n': *o++ = '\n'; continue;
    case 'r': *o++ = '\r'; continue;
    case 't': *o++ = '\t'; continue;
    case 'u': break;
    default: return false;
    }
    int cp = j + 4 <= n ? hex4(p + j) : -1;
    if (cp < 0) return false;
    j += 4;
    if (cp >= 0xDC00 && cp <= 0xDFFF) return false; /* a lone low surrogate */
    if (cp >= 0xD800 && cp <= 0xDBFF) {             /* must be followed by its low half */
      int lo = j + 6 <= n && p[j] == '\\' && p[j + 1] == 'u' ? hex4(p + j + 2) : -1;
      if (lo < 0xDC00 || lo > 0xDFFF) return false;
      j += 6;
      cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    if (cp == 0) s->nul = true;
    if (cp < 0x80) {
      *o++ = (char)cp;
    } else if (cp < 0x800) {
      *o++ = (char)(0xC0 | (cp >> 6));
      *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      *o++ = (char)(0xE0 | (cp >> 12));
      *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
      *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
      *o++ = (char)(0xF0 | (cp >> 18));
      *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
      *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
      *o++ = (char)(0x80 | (cp & 0x3F));
    }
  }
  *o = '\0';
  s->len = (size_t)(o - (out->data + s->off));
  out->len = s->off + s->len + 1;
  out->data[out->len] = '\0'; /* mn_buf's invariant */
  *i = j + 1;
  return true;
}

/* jsonl_fast -- the record in l when it is the common kind (above): its strings decoded
 * into r->rec, *has_source false when it has no "source".  False: ask jansson. */
static bool jsonl_fast(ingest_state *r, const mn_buf *l, json_str *lang, json_str *text,
                       json_str *source, bool *has_source)
{
  const char *p = l->data;
  size_t n = l->len, off = 0;
  mn_buf *out = &r->rec;
  mn_buf_reset(out);
  if (mn_buf_reserve(out, n + 4, NULL) != MN_OK) return false; /* jansson reports it */
  if (mn_utf8_check(p, n, &off) != MN_UTF8_OK) return false;
  json_str *slot[3] = {lang, text, source};
  bool seen[3] = {false, false, false};
  size_t i = jsonl_ws(p, 0, n);
  if (i >= n || p[i] != '{') return false;
  i = jsonl_ws(p, i + 1, n);
  for (;;) {
    if (i >= n || p[i] != '"') return false;
    size_t k = i + 1, klen = 0;
    while (k < n && p[k] != '"' && p[k] != '\\' && (unsigned char)p[k] >= 0x20)
      k++;
    if (k >= n || p[k] != '"') return false; /* an escape in a key: jansson's */
    klen = k - i - 1;
    int which = klen == 4 && memcmp(p + i + 1, "lang", 4) == 0     ? 0
                : klen == 4 && memcmp(p + i + 1, "text", 4) == 0   ? 1
                : klen == 6 && memcmp(p + i + 1, "source", 6) == 0 ? 2
                                                                   : -1;
    if (which < 0 || seen[which]) return false;
    seen[which] = true;
    i = jsonl_ws(p, k + 1, n);
    if (i >= n || p[i] != ':') return false;
    i = jsonl_ws(p, i + 1, n);
    if (i >= n || p[i] != '"' || !jsonl_string(p, n, &i, out, slot[which])) return false;
    i = jsonl_ws(p, i, n);
    if (i < n && p[i] == ',') {
      i = jsonl_ws(p, i + 1, n);
      continue;
    }
    if (i < n && p[i] == '}') break;
    return false;
  }
  if (jsonl_ws(p, i + 1, n) != n || !seen[0] || !seen[1]) return false;
  /* lang and source are C strings to the checks that follow, as jansson gives them */
  if (lang->nul || (seen[2] && source->nul)) return false;
  *has_source = seen[2];
  return true;
}

static mn_status jsonl_record(ingest_state *r, const char *file, int64_t line, const mn_buf *l,
                              bool too_long, const char *sep, mn_error *err)
{
  size_t off = 0;
  mn_utf8_problem up;
  /* blank lines between records are allowed */
  bool blank = true;
  for (size_t i = 0; i < l->len && blank; i++)
    blank = l->data[i] == ' ' || l->data[i] == '\t';
  if (blank && !too_long) return MN_OK;

#define BAD(...)                                                                                   \
  do {                                                                                             \
    r->res->units++;                                                                               \
    r->res->bytes_read += (int64_t)l->len;                                                         \
    problem(r, file, line, __VA_ARGS__);                                                           \
    return reject(r, l->data, l->len, sep, err);                                                   \
  } while (0)

  if (too_long) { /* reported, not copied to the rejects: it was never read whole */
    r->res->units++;
    r->res->bytes_read += (int64_t)l->len;
    problem(r, file, line, "record longer than %zu bytes (not copied to the reject file)",
            (size_t)r->opt->max_document_bytes * 6 + 65536);
    return MN_OK;
  }
  json_str fl, ft, fs;
  bool has_source = false;
  if (jsonl_fast(r, l, &fl, &ft, &fs, &has_source)) {
    const char *d = r->rec.data;
    return unit(r, file, line, d + fl.off, has_source ? d + fs.off : r->opt->source, d + ft.off,
                ft.len, l->data, l->len, sep, err);
  }
  /* jansson validates UTF-8 itself; the exact byte is worth a second look only on failure */
  json_error_t je;
  json_t *o = json_loadb(l->data, l->len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &je);
  if (!o && (up = mn_utf8_check(l->data, l->len, &off)) != MN_UTF8_OK)
    BAD("%s at byte %zu of the line", mn_utf8_problem_str(up), off);
  if (!o) BAD("malformed JSON at column %d: %s", je.column, je.text);
  const char *why = NULL;
  json_t *jl = json_object_get(o, "lang"), *jt = json_object_get(o, "text"),
         *js = json_object_get(o, "source");
  if (!json_is_object(o))
    why = "a record must be a JSON object";
  else if (!json_is_string(jl))
    why = "\"lang\" must be a string";
  else if (!json_is_string(jt))
    why = "\"text\" must be a string";
  else if (js && !json_is_string(js))
    why = "\"source\" must be a string";
  else if (strlen(json_string_value(jl)) != json_string_length(jl))
    why = "\"lang\" holds U+0000";
  else if (js && strlen(json_string_value(js)) != json_string_length(js))
    why = "\"source\" holds U+0000";
  if (why) {
    json_decref(o);
    BAD("%s", why);
  }
#undef BAD
  mn_status rc =
      unit(r, file, line, json_string_value(jl), js ? json_string_value(js) : r->opt->source,
           json_string_value(jt), json_string_length(jt), l->data, l->len, sep, err);
  /* unit() counted the record once; its bytes are the whole line */
  json_decref(o);
  return rc;
}

/* is_blank -- a separator line (spaces and tabs only; its "\r" is already gone).  Other
 * white space makes a unit, which the text rule then refuses as blank. */
static bool is_blank(const mn_buf *b)
{
  for (size_t i = 0; i < b->len; i++)
    if (b->data[i] != ' ' && b->data[i] != '\t') return false;
  return true;
}

static mn_status text_unit(ingest_state *r, const char *file, int64_t line, const mn_buf *b,
                           bool too_long, const char *sep, mn_error *err)
{
  if (too_long) {
    r->res->units++;
    r->res->bytes_read += (int64_t)b->len;
    problem(r, file, line,
            "text longer than ingest.max_document_bytes (%lld; not copied to the reject file)",
            (long long)r->opt->max_document_bytes);
    return MN_OK; /* reported, not copied to the rejects: it was never read whole */
  }
  return unit(r, file, line, r->opt->lang, r->opt->source, b->data, b->len, b->data, b->len, sep,
              err);
}

static mn_status ingest_file(ingest_state *r, const char *path, mn_error *err)
{
  mn_status rc = MN_OK;
  bool is_stdin = strcmp(path, "-") == 0;
  const char *name = is_stdin ? "<stdin>" : path;
  reader rd = {.fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC), .name = name};
  if (rd.fd < 0)
    return mn_error_set(err, MN_ERR_IO, "could not open \"%s\": %s", path, strerror(errno));
  /* a regular file must be read whole as it was: one cut short (or grown) while we read
   * would give us a partial last unit */
  struct stat st0;
  off_t start = 0;
  bool regular = fstat(rd.fd, &st0) == 0 && S_ISREG(st0.st_mode);
  if (regular && (start = lseek(rd.fd, 0, SEEK_CUR)) < 0) regular = false;
  rd.buf = malloc(READ_CHUNK);
  if (!rd.buf) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory reading \"%s\"", name);
    goto out;
  }
  const ingest_options *o = r->opt;
  size_t cap = (size_t)o->max_document_bytes + 1; /* one byte more tells "too large" */
  if (o->format == INGEST_JSONL) cap = (size_t)o->max_document_bytes * 6 + 65536; /* escapes */
  bool too_long = false;
  int got;

  if (o->format == INGEST_JSONL) {
    while (rc == MN_OK && (got = reader_line(&rd, &r->line, cap, &too_long, err)) > 0)
      rc = jsonl_record(r, name, rd.line, &r->line, too_long, rd.cr ? "\r\n" : "\n", err);
  } else if (o->unit == INGEST_UNIT_LINE) {
    while (rc == MN_OK && (got = reader_line(&rd, &r->line, cap, &too_long, err)) > 0)
      if (!is_blank(&r->line) || too_long)
        rc = text_unit(r, name, rd.line, &r->line, too_long, rd.cr ? "\r\n" : "\n", err);
  } else if (o->unit == INGEST_UNIT_PARAGRAPH) {
    int64_t first = 0;
    bool long_par = false;
    mn_buf_reset(&r->unit);
    for (;;) {
      got = rc == MN_OK ? reader_line(&rd, &r->line, cap, &too_long, err) : -1;
      bool end = got <= 0 || is_blank(&r->line);
      if (!end) {
        if (!first) first = rd.line;
        long_par = long_par || too_long || r->unit.len + r->line.len + 1 > cap;
        if (!long_par) {
          if (r->unit.len) rc = mn_buf_append(&r->unit, "\n", 1, err);
          if (rc == MN_OK) rc = mn_buf_append(&r->unit, r->line.data, r->line.len, err);
        }
      } else if (first) {
        rc = text_unit(r, name, first, &r->unit, long_par, "\n\n", err);
        first = 0;
        long_par = false;
        mn_buf_reset(&r->unit);
      }
      if (got <= 0 || rc != MN_OK) break;
    }
  } else { /* the whole file is one unit */
    mn_buf_reset(&r->unit);
    too_long = false;
    while (rc == MN_OK && !too_long) {
      char *chunk = rd.buf;
      ssize_t n = reader_read(&rd, chunk, READ_CHUNK);
      if (n < 0) {
        rc = mn_error_set(err, MN_ERR_IO, "could not read \"%s\": %s", name, strerror(errno));
        break;
      }
      if (n == 0) break;
      size_t keep = (size_t)n;
      if (r->unit.len + keep > cap) {
        keep = cap - r->unit.len;
        too_long = true;
      }
      rc = mn_buf_append(&r->unit, chunk, keep, err);
    }
    got = 0;
    if (rc == MN_OK && r->unit.len >= 3 && memcmp(r->unit.data, "\xEF\xBB\xBF", 3) == 0) {
      memmove(r->unit.data, r->unit.data + 3, r->unit.len - 2); /* a byte order mark */
      r->unit.len -= 3;
    }
    if (rc == MN_OK) rc = text_unit(r, name, 1, &r->unit, too_long, "\n", err);
  }
  if (rc == MN_OK && got < 0) rc = err->code;
  struct stat st1 = {0};
  bool whole_file = o->format == INGEST_TEXT && o->unit == INGEST_UNIT_FILE;
  if (rc == MN_OK && regular && !(whole_file && too_long) &&
      (fstat(rd.fd, &st1) != 0 || st1.st_size != st0.st_size ||
       rd.total != (int64_t)(st0.st_size - start) || st1.st_mtim.tv_sec != st0.st_mtim.tv_sec ||
       st1.st_mtim.tv_nsec != st0.st_mtim.tv_nsec)) {
    rc = mn_error_set(err, MN_ERR_IO,
                      "\"%s\" changed while it was read (%lld bytes when opened, %lld read, %lld "
                      "now); its last unit may be cut short, so nothing was stored",
                      name, (long long)(st0.st_size - start), (long long)rd.total,
                      (long long)st1.st_size);
    mn_error_detail(err, "ingest it again once nothing writes to it");
  }
out:
  free(rd.buf);
  if (!is_stdin && rd.fd >= 0) close(rd.fd);
  return rc;
}

void *ingest__reader_main(void *arg)
{
  reader_job *job = arg;
  ingest_state *r = job->r;
  mn_status rc = MN_OK;
  for (size_t i = 0; i < job->nfiles && rc == MN_OK; i++)
    rc = ingest_file(r, job->files[i], &r->reader_err);
  r->reader_rc = rc;
  if (rc == MN_OK) progress(r, true);
  (void)batch_ship(r, true, NULL); /* always: the loader waits for the last batch */
  return NULL;
}
