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

static mn_status load_languages(ingest_state *r, mn_error *err)
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

/* ---------------------------------------------------------------- loading (the caller's thread) */

static batch *batch_take(ingest_state *r)
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

static void batch_give_back(ingest_state *r, batch *b)
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
static mn_status source_id(ingest_state *r, const char *name, int64_t *id, mn_error *err)
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

#define BYTEA_OID       17   /* pg_type.oid of bytea, fixed in every PostgreSQL */
#define BYTEA_ARRAY_OID 1001 /* and of bytea[] */

static int cmp_sha(const void *a, const void *b)
{
  return memcmp(a, b, MN_SHA256_LEN);
}

/* mark_stored -- mark the rows of b whose text is already in mnemo.documents (one query).
 * The hashes go as one binary bytea[] (PostgreSQL's array_send layout: dimensions, then a
 * 32-bit length before each element), which the server reads without parsing hex. */
static mn_status mark_stored(ingest_state *r, batch *b, mn_error *err)
{
  mn_buf *q = &r->send;
  mn_buf_reset(q);
  uint32_t head[5] = {htonl(1), htonl(0), htonl(BYTEA_OID), htonl((uint32_t)b->n), htonl(1)};
  mn_status rc = mn_buf_append(q, head, sizeof head, err); /* ndim, no NULLs, type, n, from 1 */
  for (size_t i = 0; i < b->n && rc == MN_OK; i++) {
    uint32_t len = htonl(MN_SHA256_LEN);
    rc = mn_buf_append(q, &len, 4, err);
    if (rc == MN_OK) rc = mn_buf_append(q, b->rows[i].sha, MN_SHA256_LEN, err);
  }
  if (rc != MN_OK) return rc;
  const Oid types[1] = {BYTEA_ARRAY_OID};
  const char *params[1] = {q->data};
  const int lengths[1] = {(int)q->len}, formats[1] = {1};
  PGresult *res = PQexecParams(r->conn, "SELECT sha256 FROM mnemo.documents WHERE sha256 = ANY($1)",
                               1, types, params, lengths, formats, 1 /* 32 raw bytes each */);
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

static mn_status put_row(mn_buf *b, const ingest_state *r, const batch *bt, const batch_row *row,
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

static mn_status send_copy(ingest_state *r, mn_error *err)
{
  if (r->send.len && PQputCopyData(r->conn, r->send.data, (int)r->send.len) != 1)
    return db_error(r->conn, NULL, "could not send documents to the database", err);
  mn_buf_reset(&r->send);
  return MN_OK;
}

/* load_batch -- store the rows of b that are new: sources first, then one binary COPY. */
static mn_status load_batch(ingest_state *r, batch *b, mn_error *err)
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
static void summarise(ingest_state *r)
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
  ingest_state r = {.conn = conn, .opt = opt, .res = res};
  memset(res, 0, sizeof *res);
  r.t0 = mn_monotonic_ms();
  mn_progress_init(&r.prog, opt->progress ? stderr : NULL);
  for (size_t i = 0; i < nfiles && opt->progress; i++) { /* for a percentage and an ETA */
    struct stat st;
    if (strcmp(files[i], "-") == 0 || stat(files[i], &st) != 0 || !S_ISREG(st.st_mode)) {
      r.bytes_total = 0;
      break;
    }
    r.bytes_total += (int64_t)st.st_size;
  }
  size_t unit_max = (size_t)opt->max_document_bytes * 6 + 65536 + 2;
  mn_buf_init(&r.unit, unit_max);
  mn_buf_init(&r.line, unit_max);
  mn_buf_init(&r.norm, unit_max);
  mn_buf_init(&r.rec, unit_max + 4);
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
  /* Each batch's lookup probes thousands of hashes.  The planner, costing every probe as a
   * random read and seeing a table that this transaction is still filling (no statistics
   * yet), picks a sequential scan of the whole table instead of the unique index: 40% of
   * the server's time on the demo corpus.  Nothing this transaction runs (the lookups, the
   * source upserts, the foreign-key checks of the COPY) is better off without an index.
   * A generic plan spares planning each lookup against its thousands of constants. */
  if ((rc = db_exec(conn, "SET LOCAL enable_seqscan = off", err)) != MN_OK ||
      (rc = db_exec(conn, "SET LOCAL plan_cache_mode = force_generic_plan", err)) != MN_OK)
    goto out;
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
  const char *np = opt->source ? ingest__name_problem(opt->source, why, sizeof why) : NULL;
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

  if (pthread_create(&reader_thread, NULL, ingest__reader_main, &job) != 0) {
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
  mn_progress_end(&r.prog); /* a line a failure left open ends before its message */
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
  mn_buf_fini(&r.rec);
  mn_buf_fini(&r.send);
  return rc;
}

void ingest_result_fini(ingest_result *res)
{
  free(res->langs);
  res->langs = NULL;
  res->nlangs = 0;
}
