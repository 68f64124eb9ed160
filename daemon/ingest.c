/*
 * ingest.c -- read, validate and bulk-load documents (mnemoctl ingest).
 *
 * Two threads and one transaction.  The reader thread turns files into units
 * (line, paragraph, file, or JSONL record), checks each in C (UTF-8, NUL, empty,
 * size, language known and enabled, source), hashes it (SHA-256, split) and packs
 * the good ones into batches of about BATCH_BYTES.  The calling thread, holding
 * the connection, takes each batch: new source names are upserted, the hashes
 * already stored are looked up (one query per batch), and the rest goes with a
 * binary COPY straight into mnemo.documents.  Reading and checking overlap the
 * server's work on the previous batch.  Concurrent ingests are serialised by a
 * transaction-level advisory lock, so a hash looked up as absent stays absent
 * until the COPY; a writer that bypasses mnemoctl and stores the same text at that
 * moment makes the unique index refuse the batch, and the whole ingest with it.
 * Checking in C gives every bad unit its exact file:line before anything is
 * sent; the database checks again (constraints) for writers that bypass us.
 * What text is acceptable is common/text.c's rule (mn_text_check), the one triage
 * applies to reports; a unit's "\r\n" line ends become "\n" first, whatever the unit.
 * A regular file that changes size while it is read fails the whole ingest: its last
 * unit could be cut anywhere.
 *
 * Invariants: a failed run stores nothing; a document is stored once however
 * often it is ingested; memory is bounded by the batches in flight (three) and
 * the largest unit, not by the input.
 */
#include "daemon/daemon.h"

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

#define BATCH_BYTES      (4u << 20) /* text per batch: a COPY and a hash query each */
#define BATCHES          3          /* in flight: one filling, one queued, one loading */
#define READ_CHUNK       (1u << 20)
#define MAX_SOURCE_BYTES 200

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

/* ---------------------------------------------------------------- state of one run */

typedef struct known_lang {
  char code[16];
  bool enabled;
} known_lang;

/* One good unit waiting in a batch. */
typedef struct batch_row {
  size_t off;      /* of its text in batch.text */
  uint32_t len;    /* bytes of text */
  uint32_t lang;   /* index into run.langs */
  uint32_t source; /* index of its source name, in the order names were first seen */
  bool heldout, stored;
  uint8_t sha[MN_SHA256_LEN];
} batch_row;

#define BATCH_ROWS 65536 /* rows per batch, whatever their size */

typedef struct batch {
  mn_buf text;
  batch_row *rows;
  size_t n;
  char **new_sources; /* names first seen in this batch, in index order */
  size_t n_new, cap_new;
  int64_t bad; /* bad units read so far, when the batch was shipped */
  bool last;   /* the reader's final batch (possibly empty) */
} batch;

typedef struct run {
  PGconn *conn;
  const ingest_options *opt;
  ingest_result *res;
  known_lang *langs;
  size_t nlangs;
  double t0;

  /* the reader thread's own state */
  mn_buf unit; /* the unit being built (paragraphs) */
  mn_buf line; /* the line just read */
  mn_buf norm; /* a unit's text with its "\r\n" made "\n" */
  mn_atomic_file *rejects;
  double last_progress;
  /* hashes read by this run (open addressing): a text repeated in the input is
   * loaded once, the first occurrence with its language and source */
  uint8_t (*seen)[MN_SHA256_LEN];
  size_t seen_cap, seen_n;
  char **sources; /* source names by index, and an open-addressing index of them */
  size_t nsources, sources_cap;
  uint32_t *source_slots; /* index + 1; 0 is empty */
  size_t slots_cap;
  int64_t *lang_units; /* good units per language */
  batch *cur;          /* the batch being filled */
  mn_status reader_rc;
  mn_error reader_err;

  /* the hand-over between the two threads */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  batch *full[BATCHES]; /* a FIFO of shipped batches */
  size_t full_head, nfull;
  batch *spare[BATCHES];
  size_t nspare;
  atomic_bool stop; /* the loader failed: the reader stops at its next batch */
  batch pool[BATCHES];

  /* the loading thread's own state */
  int64_t *source_ids; /* mnemo.sources ids by index */
  size_t nsource_ids, source_ids_cap;
  int64_t *lang_inserted, *lang_bytes, *lang_heldout;
  mn_buf send; /* binary COPY data on its way */
} run;

/* seen_add -- true when sha is new to this run (and now recorded); false for a repeat,
 * or with *rc set when memory runs out. */
static bool seen_add(run *r, const uint8_t sha[MN_SHA256_LEN], mn_error *err, mn_status *rc)
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

static mn_status load_languages(run *r, mn_error *err)
{
  PGresult *res = PQexec(r->conn, "SELECT code, enabled FROM mnemo.languages ORDER BY code");
  mn_status rc = MN_OK;
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    rc = db_error(r->conn, res, "could not read mnemo.languages", err);
    goto out;
  }
  r->nlangs = (size_t)PQntuples(res);
  r->langs = calloc(r->nlangs + 1, sizeof *r->langs);
  r->res->langs = calloc(r->nlangs + 1, sizeof *r->res->langs);
  if (!r->langs || !r->res->langs) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory loading languages");
    goto out;
  }
  for (size_t i = 0; i < r->nlangs; i++) {
    snprintf(r->langs[i].code, sizeof r->langs[i].code, "%s", PQgetvalue(res, (int)i, 0));
    r->langs[i].enabled = PQgetvalue(res, (int)i, 1)[0] == 't';
  }
out:
  PQclear(res);
  return rc;
}

static void problem(run *r, const char *file, int64_t line, const char *fmt, ...) MN_PRINTF(4, 5);

static void problem(run *r, const char *file, int64_t line, const char *fmt, ...)
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
static mn_status source_index(run *r, const char *name, uint32_t *idx, mn_error *err)
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
static mn_status batch_ship(run *r, bool last, mn_error *err)
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

static void progress(run *r, bool last)
{
  if (!r->opt->progress) return;
  double now = mn_monotonic_ms();
  if (!last && now - r->last_progress < 250) return;
  r->last_progress = now;
  double mb = (double)r->res->bytes_read / 1e6, s = (now - r->t0) / 1e3;
  fprintf(stderr, "\r%lld units, %.1f MB, %.1f MB/s%s", (long long)r->res->units, mb,
          s > 0 ? mb / s : 0.0, last ? "\n" : "");
}

static mn_status reject(run *r, const char *raw, size_t n, const char *sep, mn_error *err)
{
  if (!r->rejects) return MN_OK;
  mn_status rc = mn_atomic_write(r->rejects, raw, n, err);
  if (rc == MN_OK) rc = mn_atomic_write(r->rejects, sep, strlen(sep), err);
  if (rc == MN_OK) r->res->rejected++;
  return rc;
}

/* name_problem -- why a source name cannot be stored, or NULL (why has the room) */
static const char *name_problem(const char *name, char *why, size_t cap)
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
static mn_status unit(run *r, const char *file, int64_t line, const char *lang, const char *source,
                      const char *text, size_t n, const char *raw, size_t rawlen, const char *sep,
                      mn_error *err)
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
  const char *np = name_problem(source, why, sizeof why);
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

static mn_status jsonl_record(run *r, const char *file, int64_t line, const mn_buf *l,
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

static mn_status text_unit(run *r, const char *file, int64_t line, const mn_buf *b, bool too_long,
                           const char *sep, mn_error *err)
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

static mn_status ingest_file(run *r, const char *path, mn_error *err)
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

/* ---------------------------------------------------------------- the reader thread */

typedef struct reader_job {
  run *r;
  char *const *files;
  size_t nfiles;
} reader_job;

static void *reader_main(void *arg)
{
  reader_job *job = arg;
  run *r = job->r;
  mn_status rc = MN_OK;
  for (size_t i = 0; i < job->nfiles && rc == MN_OK; i++)
    rc = ingest_file(r, job->files[i], &r->reader_err);
  r->reader_rc = rc;
  if (rc == MN_OK) progress(r, true);
  (void)batch_ship(r, true, NULL); /* always: the loader waits for the last batch */
  return NULL;
}

/* ---------------------------------------------------------------- loading (the caller's thread) */

static batch *batch_take(run *r)
{
  pthread_mutex_lock(&r->mu);
  while (r->nfull == 0)
    pthread_cond_wait(&r->cv, &r->mu);
  batch *b = r->full[r->full_head];
  r->full_head = (r->full_head + 1) % BATCHES;
  r->nfull--;
  pthread_mutex_unlock(&r->mu);
  return b;
}

static void batch_give_back(run *r, batch *b)
{
  mn_buf_reset(&b->text);
  b->n = 0;
  b->n_new = 0;
  b->last = false;
  pthread_mutex_lock(&r->mu);
  r->spare[r->nspare++] = b;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
}

/* source_id -- the id of a source name, inserted when new (one round trip). */
static mn_status source_id(run *r, const char *name, int64_t *id, mn_error *err)
{
  const char *params[1] = {name};
  /* when the name is taken, ins returns nothing and the SELECT sees the stored row; one
   * stored by a transaction that committed while this statement ran is found by the
   * second query */
  static const char *const queries[2] = {
      "WITH ins AS (INSERT INTO mnemo.sources (name) VALUES ($1) ON CONFLICT (name) DO NOTHING "
      "RETURNING id) SELECT id FROM ins UNION ALL SELECT id FROM mnemo.sources WHERE name = $1",
      "SELECT id FROM mnemo.sources WHERE name = $1"};
  for (int q = 0; q < 2; q++) {
    PGresult *res = PQexecParams(r->conn, queries[q], 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
      mn_status rc = db_error(r->conn, res, "could not record a source", err);
      PQclear(res);
      return rc;
    }
    bool found = PQntuples(res) > 0 && mn_parse_i64(PQgetvalue(res, 0, 0), id);
    PQclear(res);
    if (found) return MN_OK;
  }
  return mn_error_set(err, MN_ERR_DB, "source \"%s\" was neither stored nor found", name);
}

static int cmp_sha(const void *a, const void *b)
{
  return memcmp(a, b, MN_SHA256_LEN);
}

/* mark_stored -- mark the rows of b whose text is already in mnemo.documents (one query). */
static mn_status mark_stored(run *r, batch *b, mn_error *err)
{
  mn_buf *q = &r->send;
  mn_buf_reset(q);
  mn_status rc = mn_buf_append(q, "{", 1, err);
  for (size_t i = 0; i < b->n && rc == MN_OK; i++) { /* "\\x<hex>" per element */
    char el[MN_SHA256_HEX_LEN + 8] = "\"\\\\x";
    mn_hex_encode(b->rows[i].sha, MN_SHA256_LEN, el + 4);
    memcpy(el + 4 + MN_SHA256_HEX_LEN, i + 1 < b->n ? "\"," : "\"}", 3);
    rc = mn_buf_append(q, el, strlen(el), err);
  }
  if (rc == MN_OK) rc = mn_buf_append(q, "", 1, err); /* the terminating NUL */
  if (rc != MN_OK) return rc;
  const char *params[1] = {q->data};
  PGresult *res =
      PQexecParams(r->conn, "SELECT sha256 FROM mnemo.documents WHERE sha256 = ANY($1::bytea[])", 1,
                   NULL, params, NULL, NULL, 1 /* binary: 32 raw bytes each */);
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    rc = db_error(r->conn, res, "could not look up stored documents", err);
    PQclear(res);
    return rc;
  }
  size_t k = (size_t)PQntuples(res);
  uint8_t(*found)[MN_SHA256_LEN] = k ? malloc(k * MN_SHA256_LEN) : NULL;
  if (k && !found) rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory comparing hashes");
  for (size_t i = 0; i < k && rc == MN_OK; i++) {
    if (PQgetlength(res, (int)i, 0) != MN_SHA256_LEN) {
      rc = mn_error_set(err, MN_ERR_DB, "mnemo.documents holds a sha256 that is not 32 bytes");
      break;
    }
    memcpy(found[i], PQgetvalue(res, (int)i, 0), MN_SHA256_LEN);
  }
  PQclear(res);
  if (rc == MN_OK && k) {
    qsort(found, k, MN_SHA256_LEN, cmp_sha);
    for (size_t i = 0; i < b->n; i++)
      b->rows[i].stored = bsearch(b->rows[i].sha, found, k, MN_SHA256_LEN, cmp_sha) != NULL;
  }
  free(found);
  return rc;
}

/* Binary COPY: a header, then per row a 16-bit field count and each field as a 32-bit
 * length and its bytes, all big-endian; a count of -1 ends the data. */
static const char copy_header[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";

static mn_status put_field(mn_buf *b, const void *p, uint32_t n, mn_error *err)
{
  uint32_t be = htonl(n);
  mn_status rc = mn_buf_append(b, &be, 4, err);
  return rc == MN_OK ? mn_buf_append(b, p, n, err) : rc;
}

static mn_status put_row(mn_buf *b, const run *r, const batch *bt, const batch_row *row,
                         mn_error *err)
{
  uint16_t nfields = htons(6);
  uint8_t id[8];
  uint64_t v = (uint64_t)r->source_ids[row->source];
  for (int i = 7; i >= 0; i--, v >>= 8)
    id[i] = (uint8_t)v;
  uint32_t bytes = htonl(row->len);
  const char *lang = r->langs[row->lang].code, *split = row->heldout ? "heldout" : "train";
  mn_status rc = mn_buf_append(b, &nfields, 2, err);
  if (rc == MN_OK) rc = put_field(b, lang, (uint32_t)strlen(lang), err);
  if (rc == MN_OK) rc = put_field(b, id, 8, err);
  if (rc == MN_OK) rc = put_field(b, bt->text.data + row->off, row->len, err);
  if (rc == MN_OK) rc = put_field(b, &bytes, 4, err);
  if (rc == MN_OK) rc = put_field(b, row->sha, MN_SHA256_LEN, err);
  if (rc == MN_OK) rc = put_field(b, split, (uint32_t)strlen(split), err);
  return rc;
}

static mn_status send_copy(run *r, mn_error *err)
{
  if (r->send.len && PQputCopyData(r->conn, r->send.data, (int)r->send.len) != 1)
    return db_error(r->conn, NULL, "could not send documents to the database", err);
  mn_buf_reset(&r->send);
  return MN_OK;
}

/* load_batch -- store the rows of b that are new: sources first, then one binary COPY. */
static mn_status load_batch(run *r, batch *b, mn_error *err)
{
  mn_status rc = MN_OK;
  for (size_t i = 0; i < b->n_new && rc == MN_OK; i++) {
    if (r->nsource_ids == r->source_ids_cap) {
      size_t cap = r->source_ids_cap ? r->source_ids_cap * 2 : 16;
      int64_t *t = realloc(r->source_ids, cap * sizeof *t);
      if (!t) return mn_error_set(err, MN_ERR_NOMEM, "out of memory recording source ids");
      r->source_ids = t;
      r->source_ids_cap = cap;
    }
    rc = source_id(r, b->new_sources[i], &r->source_ids[r->nsource_ids], err);
    if (rc == MN_OK) r->nsource_ids++;
  }
  if (rc != MN_OK || b->n == 0) return rc;
  if ((rc = mark_stored(r, b, err)) != MN_OK) return rc;
  size_t fresh = 0;
  for (size_t i = 0; i < b->n; i++)
    fresh += !b->rows[i].stored;
  if (fresh == 0) return MN_OK;

  PGresult *res = PQexec(r->conn, "COPY mnemo.documents (lang, source_id, text, bytes, sha256, "
                                  "split) FROM STDIN (FORMAT binary)");
  if (PQresultStatus(res) != PGRES_COPY_IN) {
    rc = db_error(r->conn, res, "could not start storing documents", err);
    PQclear(res);
    return rc;
  }
  PQclear(res);
  mn_buf_reset(&r->send);
  rc = mn_buf_append(&r->send, copy_header, sizeof copy_header, err);
  for (size_t i = 0; i < b->n && rc == MN_OK; i++) {
    const batch_row *row = &b->rows[i];
    if (row->stored) continue;
    rc = put_row(&r->send, r, b, row, err);
    if (rc == MN_OK && r->send.len >= (1u << 20)) rc = send_copy(r, err);
  }
  uint16_t end = 0xFFFF;
  if (rc == MN_OK) rc = mn_buf_append(&r->send, &end, 2, err);
  if (rc == MN_OK) rc = send_copy(r, err);
  if (PQputCopyEnd(r->conn, rc == MN_OK ? NULL : "ingest failed") != 1 && rc == MN_OK)
    rc = db_error(r->conn, NULL, "could not finish storing documents", err);
  while ((res = PQgetResult(r->conn))) {
    bool stuck = PQresultStatus(res) == PGRES_COPY_IN; /* the end never reached the server */
    if (PQresultStatus(res) != PGRES_COMMAND_OK && rc == MN_OK)
      rc = db_error(r->conn, res, "could not store documents", err);
    PQclear(res);
    if (stuck) break;
  }
  if (rc != MN_OK) return rc;
  for (size_t i = 0; i < b->n; i++) {
    const batch_row *row = &b->rows[i];
    if (row->stored) continue;
    r->lang_inserted[row->lang]++;
    r->lang_bytes[row->lang] += row->len;
    r->lang_heldout[row->lang] += row->heldout;
  }
  return MN_OK;
}

/* summarise -- per-language results (in code order, as the languages were loaded) */
static void summarise(run *r)
{
  ingest_result *res = r->res;
  res->nlangs = 0;
  for (size_t i = 0; i < r->nlangs; i++) {
    if (r->lang_units[i] == 0) continue;
    ingest_lang_stats *s = &res->langs[res->nlangs++];
    memset(s, 0, sizeof *s);
    snprintf(s->lang, sizeof s->lang, "%s", r->langs[i].code);
    s->units = r->lang_units[i];
    s->inserted = r->lang_inserted[i];
    s->bytes = r->lang_bytes[i];
    s->heldout = r->lang_heldout[i];
    s->duplicates = s->units - s->inserted;
    res->inserted += s->inserted;
    res->duplicates += s->duplicates;
  }
}

mn_status ingest_run(PGconn *conn, const ingest_options *opt, char *const *files, size_t nfiles,
                     ingest_result *res, mn_error *err)
{
  mn_status rc = MN_OK;
  run r = {.conn = conn, .opt = opt, .res = res};
  memset(res, 0, sizeof *res);
  r.t0 = mn_monotonic_ms();
  size_t unit_max = (size_t)opt->max_document_bytes * 6 + 65536 + 2;
  mn_buf_init(&r.unit, unit_max);
  mn_buf_init(&r.line, unit_max);
  mn_buf_init(&r.norm, unit_max);
  size_t send_max = (size_t)BATCH_ROWS * (MN_SHA256_HEX_LEN + 8) + (1u << 20) +
                    (size_t)opt->max_document_bytes + 4096;
  mn_buf_init(&r.send, send_max);
  for (int i = 0; i < BATCHES; i++)
    mn_buf_init(&r.pool[i].text, BATCH_BYTES + (size_t)opt->max_document_bytes + 16);
  pthread_mutex_init(&r.mu, NULL);
  pthread_cond_init(&r.cv, NULL);
  atomic_init(&r.stop, false);
  bool in_tx = false;
  pthread_t reader_thread;
  reader_job job = {.r = &r, .files = files, .nfiles = nfiles};

  if (opt->format == INGEST_TEXT && (!opt->lang || !opt->source)) {
    rc = mn_error_set(err, MN_ERR_USAGE, "plain text needs --lang and --source");
    goto out;
  }
  if ((rc = db_exec(conn, "BEGIN", err)) != MN_OK) goto out;
  in_tx = true;
  char lock[96];
  snprintf(lock, sizeof lock, "SELECT pg_advisory_xact_lock(%lld)", (long long)INGEST_LOCK_KEY);
  if ((rc = db_exec(conn, lock, err)) != MN_OK) goto out;
  if ((rc = load_languages(&r, err)) != MN_OK) goto out;
  /* the language and source given for every unit are checked once, up front: a bad one is
   * the command's mistake, not each unit's (and would reject the whole input unit by unit) */
  if (opt->lang) {
    const known_lang *kl = NULL;
    for (size_t i = 0; i < r.nlangs && !kl; i++)
      if (strcmp(r.langs[i].code, opt->lang) == 0) kl = &r.langs[i];
    if (!kl || !kl->enabled) {
      rc = mn_error_set(err, MN_ERR_USAGE, "--lang \"%.20s\": %s; nothing was read", opt->lang,
                        kl ? "the language is disabled" : "unknown language");
      mn_error_detail(err,
                      kl ? "enable it with mnemoctl lang enable" : "add it with mnemoctl lang add");
      goto out;
    }
  }
  char why[160];
  const char *np = opt->source ? name_problem(opt->source, why, sizeof why) : NULL;
  if (np) {
    rc = mn_error_set(err, MN_ERR_USAGE, "--source: %s; nothing was read", np);
    goto out;
  }
  size_t nl = r.nlangs + 1;
  r.lang_units = calloc(nl, sizeof(int64_t));
  r.lang_inserted = calloc(nl, sizeof(int64_t));
  r.lang_bytes = calloc(nl, sizeof(int64_t));
  r.lang_heldout = calloc(nl, sizeof(int64_t));
  for (int i = 0; i < BATCHES; i++) {
    r.pool[i].rows = malloc(BATCH_ROWS * sizeof(batch_row));
    if (!r.pool[i].rows) break;
    r.spare[r.nspare++] = &r.pool[i];
  }
  if (!r.lang_units || !r.lang_inserted || !r.lang_bytes || !r.lang_heldout || r.nspare < BATCHES) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory preparing the ingest");
    goto out;
  }
  r.cur = r.spare[--r.nspare];
  if (opt->skip_bad && opt->reject_path &&
      (rc = mn_atomic_open(opt->reject_path, 0644, &r.rejects, err)) != MN_OK)
    goto out;

  if (pthread_create(&reader_thread, NULL, reader_main, &job) != 0) {
    rc = mn_error_set(err, MN_ERR_INTERNAL, "could not start the reader thread");
    goto out;
  }
  for (;;) {
    batch *b = batch_take(&r);
    /* once a unit is bad (and not --skip-bad) nothing will be stored: only read on,
     * to report every problem */
    if (rc == MN_OK && (b->bad == 0 || opt->skip_bad)) rc = load_batch(&r, b, err);
    if (rc != MN_OK) atomic_store(&r.stop, true);
    bool last = b->last;
    batch_give_back(&r, b);
    if (last) break;
  }
  pthread_join(reader_thread, NULL);
  if (rc == MN_OK && r.reader_rc != MN_OK) {
    rc = r.reader_rc;
    if (err) *err = r.reader_err;
  }
  double t_loaded = mn_monotonic_ms();
  mn_log(MN_LOG_DEBUG, "ingest loaded", MN_KV_I("units", res->units),
         MN_KV_D("ms", t_loaded - r.t0));
  if (rc != MN_OK) goto out;

  if (res->bad > 0 && !opt->skip_bad) {
    rc = mn_error_set(err, MN_ERR_INPUT, "%lld of %lld units are bad; nothing was stored",
                      (long long)res->bad, (long long)res->units);
    mn_error_detail(err, "first: %s: %s (--skip-bad stores the good units)", res->problems[0].where,
                    res->problems[0].reason);
    goto out;
  }
  summarise(&r);
  if ((rc = db_exec(conn, "COMMIT", err)) != MN_OK) goto out;
  mn_log(MN_LOG_DEBUG, "ingest committed", MN_KV_D("ms", mn_monotonic_ms() - t_loaded));
  in_tx = false;
  res->committed = true;
  if (r.rejects && res->rejected > 0) {
    rc = mn_atomic_commit(r.rejects, err); /* the documents are stored whatever happens here */
    r.rejects = NULL;
  } /* nothing copied: no reject file, and an old one is left as it was */
out:
  if (in_tx) {
    PGresult *rb = PQexec(conn, "ROLLBACK");
    PQclear(rb);
  }
  if (!res->committed) { /* counts of what was not stored would mislead */
    res->inserted = res->duplicates = 0;
    res->nlangs = 0;
  }
  mn_atomic_abort(r.rejects);
  res->seconds = (mn_monotonic_ms() - r.t0) / 1e3;
  pthread_mutex_destroy(&r.mu);
  pthread_cond_destroy(&r.cv);
  for (int i = 0; i < BATCHES; i++) {
    mn_buf_fini(&r.pool[i].text);
    free(r.pool[i].rows);
    free(r.pool[i].new_sources);
  }
  for (size_t i = 0; i < r.nsources; i++)
    free(r.sources[i]);
  free(r.sources);
  free(r.source_slots);
  free(r.source_ids);
  free(r.lang_units), free(r.lang_inserted), free(r.lang_bytes), free(r.lang_heldout);
  free(r.langs);
  free(r.seen);
  mn_buf_fini(&r.unit);
  mn_buf_fini(&r.line);
  mn_buf_fini(&r.norm);
  mn_buf_fini(&r.send);
  return rc;
}

void ingest_result_fini(ingest_result *res)
{
  free(res->langs);
  res->langs = NULL;
  res->nlangs = 0;
}
