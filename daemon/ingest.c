/*
 * ingest.c -- read, validate and bulk-load documents (mnemoctl ingest).
 *
 * The pipeline, all in one transaction:
 *   files -> units (line, paragraph, file, or JSONL record) -> checks in C
 *   (UTF-8, NUL, empty, size, language known and enabled, source) -> SHA-256
 *   and split -> COPY into a temporary staging table -> sources upserted ->
 *   INSERT ... SELECT ... ON CONFLICT (sha256) DO NOTHING into mnemo.documents.
 * Checking in C gives every bad unit its exact file:line before anything is
 * sent; the database checks again (constraints) for writers that bypass us.
 *
 * Invariants: a failed run stores nothing; a document is stored once however
 * often it is ingested; memory is bounded by the largest unit, not the input.
 */
#include "daemon/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COPY_FLUSH_BYTES (1u << 20)
#define READ_CHUNK       (1u << 20)
#define MAX_SOURCE_BYTES 200

/* ---------------------------------------------------------------- a line reader */

typedef struct reader {
  int fd;
  const char *name;
  char *buf;
  size_t start, end;
  bool eof;
  bool cr;      /* the line last returned ended in "\r\n" (the "\r" was removed) */
  int64_t line; /* number of the line last returned, 1-based */
} reader;

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
      ssize_t got = read(r->fd, r->buf, READ_CHUNK);
      if (got < 0) {
        if (errno == EINTR) continue;
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

typedef struct run {
  PGconn *conn;
  const ingest_options *opt;
  ingest_result *res;
  known_lang *langs;
  size_t nlangs;
  mn_buf copy; /* COPY rows waiting to be sent */
  mn_buf unit; /* the unit being built (paragraphs) */
  mn_buf line; /* the line just read */
  mn_atomic_file *rejects;
  double t0, last_progress;
  bool copying;
  /* hashes staged by this run (open addressing): a text repeated in the input is
   * staged once, so the first occurrence is the one stored, whatever the plan */
  uint8_t (*seen)[MN_SHA256_LEN];
  size_t seen_cap, seen_n;
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

/* copy_escape -- append s[0..n) to the COPY text-format buffer, escaped. */
static mn_status copy_escape(mn_buf *b, const char *s, size_t n, mn_error *err)
{
  mn_status rc = mn_buf_reserve(b, n + 16, err);
  size_t run_start = 0;
  for (size_t i = 0; i < n && rc == MN_OK; i++) {
    char c = s[i], e;
    switch (c) {
    case '\\': e = '\\'; break;
    case '\n': e = 'n'; break;
    case '\r': e = 'r'; break;
    case '\t': e = 't'; break;
    default: continue;
    }
    rc = mn_buf_append(b, s + run_start, i - run_start, err);
    char esc[2] = {'\\', e};
    if (rc == MN_OK) rc = mn_buf_append(b, esc, 2, err);
    run_start = i + 1;
  }
  if (rc == MN_OK) rc = mn_buf_append(b, s + run_start, n - run_start, err);
  return rc;
}

static mn_status copy_flush(run *r, mn_error *err)
{
  if (r->copy.len == 0) return MN_OK;
  if (PQputCopyData(r->conn, r->copy.data, (int)r->copy.len) != 1)
    return db_error(r->conn, NULL, "could not send documents to the database", err);
  mn_buf_reset(&r->copy);
  return MN_OK;
}

static ingest_lang_stats *lang_stats(run *r, const char *code)
{
  ingest_result *res = r->res;
  for (size_t i = 0; i < res->nlangs; i++)
    if (strcmp(res->langs[i].lang, code) == 0) return &res->langs[i];
  ingest_lang_stats *s = &res->langs[res->nlangs++]; /* room for every known language */
  memset(s, 0, sizeof *s);
  snprintf(s->lang, sizeof s->lang, "%s", code);
  return s;
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
  return rc;
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
  size_t off = 0;
  mn_utf8_problem up;
  const known_lang *kl = NULL;
  res->units++;
  res->bytes_read += (int64_t)rawlen;
  progress(r, false);

#define BAD(...)                                                                                   \
  do {                                                                                             \
    problem(r, file, line, __VA_ARGS__);                                                           \
    return reject(r, raw, rawlen, sep, err);                                                       \
  } while (0)

  if (n == 0) BAD("empty text");
  if ((up = mn_utf8_check(text, n, &off)) != MN_UTF8_OK)
    BAD("%s at byte %zu of the text", mn_utf8_problem_str(up), off);
  const char *nul = memchr(text, '\0', n);
  if (nul) BAD("NUL byte at byte %zu of the text", (size_t)(nul - text));
  if ((int64_t)n > r->opt->max_document_bytes)
    BAD("text of %zu bytes exceeds ingest.max_document_bytes (%lld)", n,
        (long long)r->opt->max_document_bytes);
  for (size_t i = 0; i < r->nlangs && !kl; i++)
    if (strcmp(r->langs[i].code, lang) == 0) kl = &r->langs[i];
  if (!kl) BAD("unknown language \"%.20s\" (add it with mnemoctl lang add)", lang);
  if (!kl->enabled) BAD("language \"%s\" is disabled", lang);
  if (!source || !*source) BAD("no source (give --source or a \"source\" field)");
  if (strlen(source) > MAX_SOURCE_BYTES) BAD("source name longer than %d bytes", MAX_SOURCE_BYTES);
  if (mn_utf8_check(source, strlen(source), &off) != MN_UTF8_OK)
    BAD("source name is not valid UTF-8");
  for (const char *p = source; *p; p++)
    if ((unsigned char)*p < 0x20) BAD("source name contains a control character");
#undef BAD

  uint8_t sha[MN_SHA256_LEN];
  char hex[MN_SHA256_HEX_LEN + 1];
  mn_sha256 h;
  mn_status rc = mn_sha256_init(&h, err);
  if (rc == MN_OK) rc = mn_sha256_update(&h, text, n, err);
  if (rc == MN_OK) rc = mn_sha256_final(&h, sha, err);
  if (rc != MN_OK) return rc;
  lang_stats(r, lang)->units++;
  if (!seen_add(r, sha, err, &rc)) return rc; /* a repeat: counted as a duplicate later */
  mn_hex_encode(sha, sizeof sha, hex);
  bool heldout = mn_split_heldout(sha, r->opt->heldout_fraction);

  /* seq  lang  source  text  bytes  sha256  split */
  rc = mn_buf_appendf(&r->copy, err, "%lld\t%s\t", (long long)res->units, lang);
  if (rc == MN_OK) rc = copy_escape(&r->copy, source, strlen(source), err);
  if (rc == MN_OK) rc = mn_buf_append(&r->copy, "\t", 1, err);
  if (rc == MN_OK) rc = copy_escape(&r->copy, text, n, err);
  if (rc == MN_OK)
    rc = mn_buf_appendf(&r->copy, err, "\t%zu\t\\\\x%s\t%s\n", n, hex,
                        heldout ? "heldout" : "train");
  if (rc != MN_OK) return rc;
  if (r->copy.len >= COPY_FLUSH_BYTES) rc = copy_flush(r, err);
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

static bool is_blank(const mn_buf *b)
{
  for (size_t i = 0; i < b->len; i++)
    if (b->data[i] != ' ' && b->data[i] != '\t' && b->data[i] != '\f' && b->data[i] != '\v' &&
        b->data[i] != '\n' && b->data[i] != '\r')
      return false;
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
      ssize_t n = read(rd.fd, chunk, READ_CHUNK);
      if (n < 0 && errno == EINTR) continue;
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
    if (rc == MN_OK && !too_long && is_blank(&r->unit)) mn_buf_reset(&r->unit); /* empty */
    if (rc == MN_OK) rc = text_unit(r, name, 1, &r->unit, too_long, "\n", err);
  }
  if (rc == MN_OK && got < 0) rc = err->code;
out:
  free(rd.buf);
  if (!is_stdin && rd.fd >= 0) close(rd.fd);
  return rc;
}

/* ---------------------------------------------------------------- the transaction */

static mn_status copy_end(run *r, mn_error *err)
{
  mn_status rc = copy_flush(r, err);
  r->copying = false;
  if (PQputCopyEnd(r->conn, rc == MN_OK ? NULL : "ingest failed") != 1 && rc == MN_OK)
    rc = db_error(r->conn, NULL, "could not finish sending documents", err);
  PGresult *res;
  while ((res = PQgetResult(r->conn))) {
    if (PQresultStatus(res) != PGRES_COMMAND_OK && rc == MN_OK)
      rc = db_error(r->conn, res, "could not stage documents", err);
    PQclear(res);
  }
  return rc;
}

static mn_status move_documents(run *r, mn_error *err)
{
  mn_status rc = db_exec(r->conn,
                         "INSERT INTO mnemo.sources (name) SELECT DISTINCT source FROM "
                         "mnemo_ingest_stage ON CONFLICT (name) DO NOTHING",
                         err);
  if (rc != MN_OK) return mn_error_prefix(err, "could not record sources");
  PGresult *res = PQexec(
      r->conn, "WITH ins AS ("
               "  INSERT INTO mnemo.documents (lang, source_id, text, bytes, sha256, split)"
               "  SELECT s.lang, src.id, s.text, s.bytes, s.sha256, s.split"
               "    FROM mnemo_ingest_stage s JOIN mnemo.sources src ON src.name = s.source"
               "  ON CONFLICT (sha256) DO NOTHING"
               "  RETURNING lang, bytes, split)"
               " SELECT lang, count(*), sum(bytes), count(*) FILTER (WHERE split = 'heldout')"
               "   FROM ins GROUP BY lang");
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    rc = db_error(r->conn, res, "could not store documents", err);
    PQclear(res);
    return rc;
  }
  for (int i = 0; i < PQntuples(res); i++) {
    ingest_lang_stats *s = lang_stats(r, PQgetvalue(res, i, 0));
    int64_t v;
    if (mn_parse_i64(PQgetvalue(res, i, 1), &v)) s->inserted = v;
    if (mn_parse_i64(PQgetvalue(res, i, 2), &v)) s->bytes = v;
    if (mn_parse_i64(PQgetvalue(res, i, 3), &v)) s->heldout = v;
  }
  PQclear(res);
  for (size_t i = 0; i < r->res->nlangs; i++) {
    ingest_lang_stats *s = &r->res->langs[i];
    s->duplicates = s->units - s->inserted;
    r->res->inserted += s->inserted;
    r->res->duplicates += s->duplicates;
  }
  return MN_OK;
}

static int by_lang(const void *a, const void *b)
{
  return strcmp(((const ingest_lang_stats *)a)->lang, ((const ingest_lang_stats *)b)->lang);
}

mn_status ingest_run(PGconn *conn, const ingest_options *opt, char *const *files, size_t nfiles,
                     ingest_result *res, mn_error *err)
{
  mn_status rc = MN_OK;
  run r = {.conn = conn, .opt = opt, .res = res};
  memset(res, 0, sizeof *res);
  r.t0 = mn_monotonic_ms();
  mn_buf_init(&r.copy, COPY_FLUSH_BYTES + (size_t)opt->max_document_bytes * 2 + 4096);
  mn_buf_init(&r.unit, (size_t)opt->max_document_bytes * 6 + 65536 + 2);
  mn_buf_init(&r.line, (size_t)opt->max_document_bytes * 6 + 65536 + 2);
  bool in_tx = false;

  if (opt->format == INGEST_TEXT && (!opt->lang || !opt->source)) {
    rc = mn_error_set(err, MN_ERR_USAGE, "plain text needs --lang and --source");
    goto out;
  }
  /* staging stays in memory when it fits (temp tables use local buffers, 8 MB by default);
   * this only works before the session's first temporary table, and is harmless after */
  (void)!db_exec(conn, "SET temp_buffers = '512MB'", NULL);
  if ((rc = db_exec(conn, "BEGIN", err)) != MN_OK) goto out;
  in_tx = true;
  if ((rc = load_languages(&r, err)) != MN_OK) goto out;
  rc = db_exec(conn,
               "CREATE TEMP TABLE mnemo_ingest_stage (seq bigint, lang text, source text, "
               "text text, bytes integer, sha256 bytea, split text) ON COMMIT DROP",
               err);
  if (rc != MN_OK) goto out;
  PGresult *cr = PQexec(conn, "COPY mnemo_ingest_stage FROM STDIN");
  if (PQresultStatus(cr) != PGRES_COPY_IN) {
    rc = db_error(conn, cr, "could not start COPY", err);
    PQclear(cr);
    goto out;
  }
  PQclear(cr);
  r.copying = true;
  if (opt->skip_bad && opt->reject_path &&
      (rc = mn_atomic_open(opt->reject_path, 0644, &r.rejects, err)) != MN_OK)
    goto out;

  for (size_t i = 0; i < nfiles && rc == MN_OK; i++)
    rc = ingest_file(&r, files[i], err);
  mn_status crc = copy_end(&r, err);
  double t_staged = mn_monotonic_ms();
  mn_log(MN_LOG_DEBUG, "ingest staged", MN_KV_I("units", res->units),
         MN_KV_D("ms", t_staged - r.t0));
  if (rc == MN_OK) rc = crc;
  if (rc != MN_OK) goto out;
  progress(&r, true);

  if (res->bad > 0 && !opt->skip_bad) {
    rc = mn_error_set(err, MN_ERR_INPUT, "%lld of %lld units are bad; nothing was stored",
                      (long long)res->bad, (long long)res->units);
    mn_error_detail(err, "first: %s: %s (--skip-bad stores the good units)", res->problems[0].where,
                    res->problems[0].reason);
    goto out;
  }
  if ((rc = move_documents(&r, err)) != MN_OK) goto out;
  double t_moved = mn_monotonic_ms();
  mn_log(MN_LOG_DEBUG, "ingest moved", MN_KV_I("inserted", res->inserted),
         MN_KV_D("ms", t_moved - t_staged));
  if ((rc = db_exec(conn, "COMMIT", err)) != MN_OK) goto out;
  mn_log(MN_LOG_DEBUG, "ingest committed", MN_KV_D("ms", mn_monotonic_ms() - t_moved));
  in_tx = false;
  res->committed = true;
  if (r.rejects && res->bad > 0) {
    rc = mn_atomic_commit(r.rejects, err); /* the documents are stored whatever happens here */
    r.rejects = NULL;
  } /* no bad unit: no reject file, and an old one is left as it was */
out:
  if (r.copying) (void)copy_end(&r, NULL);
  if (in_tx) {
    PGresult *rb = PQexec(conn, "ROLLBACK");
    PQclear(rb);
  }
  mn_atomic_abort(r.rejects);
  if (res->nlangs > 1) qsort(res->langs, res->nlangs, sizeof *res->langs, by_lang);
  res->seconds = (mn_monotonic_ms() - r.t0) / 1e3;
  free(r.langs);
  free(r.seen);
  mn_buf_fini(&r.copy);
  mn_buf_fini(&r.unit);
  mn_buf_fini(&r.line);
  return rc;
}

void ingest_result_fini(ingest_result *res)
{
  free(res->langs);
  res->langs = NULL;
  res->nlangs = 0;
}
