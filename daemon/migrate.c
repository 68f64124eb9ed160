/*
 * migrate.c -- apply migrations/NNNN_name.sql to a database, each exactly once.
 *
 * Invariants (see docs/migrations.md):
 *  - A file and its row in mnemo.schema_migrations commit together or not at all.
 *  - Migrators serialise on one session advisory lock (MIGRATE_LOCK_KEY) and read
 *    the ledger only after taking it, so concurrent migrators apply each file once.
 *  - Nothing is applied when an applied file's checksum changed, or when the
 *    database knows versions this binary does not (a newer mnemo migrated it).
 *  - The ledger lives in the schema that migration 1 creates; a database without
 *    mnemo.schema_migrations is at version 0.
 */
#include "daemon/daemon.h"

#include <assert.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *migration_state_name(migration_state s)
{
  switch (s) {
  case MIGRATION_PENDING: return "pending";
  case MIGRATION_APPLIED: return "applied";
  case MIGRATION_CHANGED: return "changed";
  case MIGRATION_UNKNOWN: return "unknown";
  }
  return "?";
}

typedef struct ledger_row {
  int version;
  char name[128];
  char sha256[MN_SHA256_HEX_LEN + 1];
  char applied_at[64];
  double duration_ms;
} ledger_row;

/* read_ledger -- the applied migrations, in version order; *rows malloc'd (may be NULL). */
static mn_status read_ledger(PGconn *conn, ledger_row **rows, size_t *nrows, mn_error *err)
{
  mn_status rc = MN_OK;
  PGresult *res = NULL;
  *rows = NULL;
  *nrows = 0;

  res = PQexec(conn, "SELECT to_regclass('mnemo.schema_migrations') IS NOT NULL");
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    rc = db_error(conn, res, "could not look for the migration ledger", err);
    goto out;
  }
  bool exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
  PQclear(res);
  res = NULL;
  if (!exists) goto out;

  res = PQexec(conn, "SELECT version, name, sha256,"
                     " to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
                     " duration_ms FROM mnemo.schema_migrations ORDER BY version");
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    rc = db_error(conn, res, "could not read mnemo.schema_migrations", err);
    goto out;
  }
  size_t n = (size_t)PQntuples(res);
  if (n == 0) goto out;
  ledger_row *r = calloc(n, sizeof *r);
  if (!r) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory reading the migration ledger");
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    int64_t v = 0;
    (void)mn_parse_i64(PQgetvalue(res, (int)i, 0), &v);
    r[i].version = (int)v;
    snprintf(r[i].name, sizeof r[i].name, "%s", PQgetvalue(res, (int)i, 1));
    snprintf(r[i].sha256, sizeof r[i].sha256, "%s", PQgetvalue(res, (int)i, 2));
    snprintf(r[i].applied_at, sizeof r[i].applied_at, "%s", PQgetvalue(res, (int)i, 3));
    r[i].duration_ms = strtod(PQgetvalue(res, (int)i, 4), NULL);
  }
  *rows = r;
  *nrows = n;
out:
  PQclear(res);
  return rc;
}

mn_status migrate_status(PGconn *conn, const mn_migration *list, size_t n, migration_row **rows,
                         size_t *nrows, mn_error *err)
{
  mn_status rc = MN_OK;
  ledger_row *led = NULL;
  size_t nled = 0;
  migration_row *out = NULL;
  size_t nout = 0;
  *rows = NULL;
  *nrows = 0;

  rc = read_ledger(conn, &led, &nled, err);
  if (rc != MN_OK) goto out;
  out = calloc(n + nled + 1, sizeof *out);
  if (!out) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory comparing migrations");
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    migration_row *m = &out[nout++];
    m->version = list[i].version;
    snprintf(m->name, sizeof m->name, "%s", list[i].name);
    rc = mn_sha256_hex(list[i].sql, list[i].len, m->sha256_file, err);
    if (rc != MN_OK) goto out;
    m->state = MIGRATION_PENDING;
    for (size_t j = 0; j < nled; j++) {
      if (led[j].version != m->version) continue;
      memcpy(m->sha256_db, led[j].sha256, sizeof m->sha256_db);
      memcpy(m->name_db, led[j].name, sizeof m->name_db);
      memcpy(m->applied_at, led[j].applied_at, sizeof m->applied_at);
      m->duration_ms = led[j].duration_ms;
      /* a renamed file (same version) counts as changed too: the ledger must match the tree */
      bool same = strcmp(m->sha256_db, m->sha256_file) == 0 && strcmp(led[j].name, m->name) == 0;
      m->state = same ? MIGRATION_APPLIED : MIGRATION_CHANGED;
    }
  }
  for (size_t j = 0; j < nled; j++) {
    bool known = false;
    for (size_t i = 0; i < n; i++)
      known = known || list[i].version == led[j].version;
    if (known) continue;
    migration_row *m = &out[nout++];
    m->version = led[j].version;
    snprintf(m->name, sizeof m->name, "%s", led[j].name);
    memcpy(m->sha256_db, led[j].sha256, sizeof m->sha256_db);
    memcpy(m->applied_at, led[j].applied_at, sizeof m->applied_at);
    m->duration_ms = led[j].duration_ms;
    m->state = MIGRATION_UNKNOWN;
  }
  *rows = out;
  *nrows = nout;
  out = NULL;
out:
  free(out);
  free(led);
  return rc;
}

/*
 * find_transaction_control -- the line of the first statement that begins with
 * BEGIN, COMMIT, END, ROLLBACK, ABORT, START, SAVEPOINT, RELEASE or PREPARE
 * (transaction control), outside comments, strings, quoted identifiers and
 * dollar-quoted bodies; 0 when there is none.  Such a statement would end
 * the migrator's transaction and leave a file half-applied, so it is refused
 * before anything is sent.  (SQL-standard "BEGIN ATOMIC ... END" function
 * bodies would be refused too; write plpgsql bodies in $$ instead.)
 */
static int find_transaction_control(const char *sql, size_t len)
{
  static const char *const words[] = {"begin", "commit",    "end",     "rollback", "abort",
                                      "start", "savepoint", "release", "prepare"};
  int line = 1;
  bool at_start = true; /* no token yet in the current statement */
  size_t i = 0;
  while (i < len) {
    char c = sql[i];
    if (c == '\n') {
      line++;
      i++;
    } else if (c == ' ' || c == '\t' || c == '\r' || c == '\f') {
      i++;
    } else if (c == '-' && i + 1 < len && sql[i + 1] == '-') {
      while (i < len && sql[i] != '\n')
        i++;
    } else if (c == '/' && i + 1 < len && sql[i + 1] == '*') {
      int depth = 1; /* PostgreSQL block comments nest */
      i += 2;
      while (i < len && depth > 0) {
        if (sql[i] == '\n') line++;
        if (sql[i] == '/' && i + 1 < len && sql[i + 1] == '*')
          depth++, i++;
        else if (sql[i] == '*' && i + 1 < len && sql[i + 1] == '/')
          depth--, i++;
        i++;
      }
    } else if (c == ';') {
      at_start = true;
      i++;
    } else if (c == '\'' || c == '"') {
      bool escapes = c == '\'' && i > 0 && (sql[i - 1] == 'E' || sql[i - 1] == 'e');
      for (i++; i < len; i++) {
        if (sql[i] == '\n') line++;
        if (escapes && sql[i] == '\\')
          i++;
        else if (sql[i] == c && i + 1 < len && sql[i + 1] == c)
          i++; /* doubled quote */
        else if (sql[i] == c)
          break;
      }
      i++;
      at_start = false;
    } else if (c == '$' && (i + 1 < len) &&
               (sql[i + 1] == '$' || isalpha((unsigned char)sql[i + 1]) || sql[i + 1] == '_')) {
      size_t t = i + 1;
      while (t < len && (isalnum((unsigned char)sql[t]) || sql[t] == '_'))
        t++;
      if (t < len && sql[t] == '$') { /* $tag$ ... $tag$ */
        size_t taglen = t - i + 1;
        const char *tag = sql + i;
        for (i = t + 1; i < len; i++) {
          if (sql[i] == '\n') line++;
          if (sql[i] == '$' && len - i >= taglen && memcmp(sql + i, tag, taglen) == 0) break;
        }
        i += taglen;
      } else {
        i = t;
      }
      at_start = false;
    } else if (isalpha((unsigned char)c) || c == '_') {
      size_t t = i;
      while (t < len && (isalnum((unsigned char)sql[t]) || sql[t] == '_'))
        t++;
      if (at_start) {
        for (size_t w = 0; w < sizeof words / sizeof words[0]; w++)
          if (strlen(words[w]) == t - i && strncasecmp(sql + i, words[w], t - i) == 0) return line;
      }
      at_start = false;
      i = t;
    } else {
      at_start = false;
      i++;
    }
  }
  return 0;
}

/* line_of -- 1-based line of the pos-th character (1-based, as PostgreSQL counts) of sql. */
static int line_of(const char *sql, size_t len, long pos)
{
  int line = 1;
  long chars = 0;
  for (size_t i = 0; i < len; i++) {
    if (((unsigned char)sql[i] & 0xC0) != 0x80) chars++; /* count characters, not bytes */
    if (chars >= pos) break;
    if (sql[i] == '\n') line++;
  }
  return line;
}

/* apply_one -- run one file and record it, in one transaction. */
static mn_status apply_one(PGconn *conn, const mn_migration *m, const char *sha, mn_error *err)
{
  mn_status rc = MN_OK;
  PGresult *res = NULL;
  double t0 = mn_monotonic_ms();

  int tc = find_transaction_control(m->sql, m->len);
  if (tc)
    return mn_error_set(err, MN_ERR_DB,
                        "cannot apply migration %s: line %d controls the transaction (BEGIN, "
                        "COMMIT, ROLLBACK, ...); the migrator runs each file in its own",
                        m->file, tc);
  rc = db_exec(conn, "BEGIN", err);
  if (rc != MN_OK) return rc;
  /* the file may hold many statements: PQexec runs them all inside our transaction */
  res = PQexec(conn, m->sql);
  ExecStatusType st = PQresultStatus(res);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
    const char *pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
    char where[160];
    if (pos)
      snprintf(where, sizeof where, "migration %s failed at line %d", m->file,
               line_of(m->sql, m->len, strtol(pos, NULL, 10)));
    else
      snprintf(where, sizeof where, "migration %s failed", m->file);
    rc = db_error(conn, res, where, err);
    goto out;
  }
  if (PQtransactionStatus(conn) != PQTRANS_INTRANS) {
    rc = mn_error_set(err, MN_ERR_DB,
                      "migration %s ended its own transaction: a migration must not contain "
                      "BEGIN, COMMIT or ROLLBACK",
                      m->file);
    goto out;
  }
  PQclear(res);

  char version[16], duration[32];
  snprintf(version, sizeof version, "%d", m->version);
  snprintf(duration, sizeof duration, "%.3f", mn_monotonic_ms() - t0);
  const char *params[] = {version, m->name, sha, duration};
  res = PQexecParams(conn,
                     "INSERT INTO mnemo.schema_migrations (version, name, sha256, duration_ms) "
                     "VALUES ($1, $2, $3, $4)",
                     4, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(res) != PGRES_COMMAND_OK) {
    rc = db_error(conn, res, "could not record the migration in mnemo.schema_migrations", err);
    mn_error_prefix(err, "migration %s", m->file);
    goto out;
  }
  PQclear(res);
  res = NULL;
  rc = db_exec(conn, "COMMIT", err);
  if (rc == MN_OK)
    mn_log(MN_LOG_INFO, "migration applied", MN_KV_I("version", m->version),
           MN_KV_S("name", m->name), MN_KV_D("duration_ms", mn_monotonic_ms() - t0));
out:
  PQclear(res);
  if (rc != MN_OK && PQtransactionStatus(conn) != PQTRANS_IDLE) {
    PGresult *rb = PQexec(conn, "ROLLBACK");
    PQclear(rb);
  }
  return rc;
}

static mn_status take_lock(PGconn *conn, int64_t lock_timeout_s, mn_error *err)
{
  char sql[128];
  snprintf(sql, sizeof sql, "SET lock_timeout = %lld", (long long)lock_timeout_s * 1000);
  mn_status rc = db_exec(conn, sql, err);
  if (rc != MN_OK) return rc;
  snprintf(sql, sizeof sql, "SELECT pg_advisory_lock(%lld)", (long long)MIGRATE_LOCK_KEY);
  PGresult *res = PQexec(conn, sql);
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (state && strcmp(state, "55P03") == 0) {
      rc = mn_error_set(err, MN_ERR_DB,
                        "could not take the migration lock within %lld s: another migrator is "
                        "running",
                        (long long)lock_timeout_s);
      mn_error_detail(err, "wait for it or raise database.migrate_lock_timeout_s");
    } else {
      rc = db_error(conn, res, "could not take the migration lock", err);
    }
  }
  PQclear(res);
  if (rc == MN_OK) rc = db_exec(conn, "RESET lock_timeout", err);
  return rc;
}

mn_status migrate_apply(PGconn *conn, const mn_migration *list, size_t n, int64_t lock_timeout_s,
                        int *applied, mn_error *err)
{
  mn_status rc = MN_OK;
  migration_row *rows = NULL;
  size_t nrows = 0;
  int count = 0;
  bool locked = false;

  for (size_t i = 0; i < n; i++)
    assert(list[i].version == (int)i + 1); /* the build checks this for the embedded list */
  if (applied) *applied = 0;

  rc = take_lock(conn, lock_timeout_s, err);
  if (rc != MN_OK) goto out;
  locked = true;
  /* read the ledger only now: another migrator may have finished while we waited */
  rc = migrate_status(conn, list, n, &rows, &nrows, err);
  if (rc != MN_OK) goto out;
  for (size_t i = 0; i < nrows; i++) {
    const migration_row *r = &rows[i];
    if (r->state == MIGRATION_CHANGED) {
      rc = mn_error_set(err, MN_ERR_DB,
                        "cannot migrate: migration %04d_%s.sql was changed after it was applied",
                        r->version, r->name);
      mn_error_detail(err,
                      "applied as \"%s\" with sha256 %s; the file now has sha256 %s; "
                      "restore the file and add a new migration instead",
                      r->name_db, r->sha256_db, r->sha256_file);
      goto out;
    }
    if (r->state == MIGRATION_UNKNOWN) {
      rc = mn_error_set(err, MN_ERR_DB,
                        "cannot migrate: the database has migration %d (%s), newer than this "
                        "mnemo, which knows up to %zu",
                        r->version, r->name, n);
      mn_error_detail(err, "a newer mnemo migrated this database; run that version");
      goto out;
    }
  }
  for (size_t i = 0; i < nrows; i++) {
    if (rows[i].state != MIGRATION_PENDING) continue;
    rc = apply_one(conn, &list[i], rows[i].sha256_file, err);
    if (rc != MN_OK) goto out;
    count++;
  }
out:
  if (locked) {
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT pg_advisory_unlock(%lld)", (long long)MIGRATE_LOCK_KEY);
    PGresult *res = PQexec(conn, sql);
    PQclear(res);
  }
  free(rows);
  if (applied) *applied = count;
  return rc;
}
