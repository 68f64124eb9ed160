/*
 * test_migrate.c -- the migrator against a real private cluster: fresh apply,
 * re-run is a no-op, a changed file is refused, a newer database is refused,
 * a failing file rolls back alone and names its line, concurrent migrators
 * apply each file exactly once, and a held lock times out clearly.
 */
#include "daemon/daemon.h"
#include "tests/db_test.h"
#include "tests/test.h"

#include <pthread.h>

static PGconn *connect_to(const char *conninfo)
{
  PGconn *c = NULL;
  mn_error err = {0};
  db_options opt = {
      .conninfo = conninfo, .application_name = "test_migrate", .connect_timeout_s = 10};
  if (db_connect(&opt, &c, &err) != MN_OK) {
    fprintf(stderr, "connect: %s (%s)\n", err.msg, err.detail);
    exit(1);
  }
  return c;
}

/* A synthetic list: the real migration 1 (it creates the ledger), then test files. */
static mn_migration synth[6];
static size_t nsynth;

static void synth_reset(void)
{
  nsynth = 0;
  synth[nsynth++] = mn_migrations[0];
}

static void synth_add(const char *name, const char *sql)
{
  static char files[6][64];
  int v = (int)nsynth + 1;
  snprintf(files[nsynth], sizeof files[nsynth], "%04d_%s.sql", v, name);
  synth[nsynth] = (mn_migration){v, name, files[nsynth], sql, strlen(sql)};
  nsynth++;
}

static void fresh_apply_and_rerun(void)
{
  char ci[600];
  mn_error err = {0};
  int applied = -1;
  t_db_fresh("fresh", ci, sizeof ci);
  PGconn *c = connect_to(ci);

  /* before: version 0, everything pending */
  migration_row *rows = NULL;
  size_t n = 0;
  T_EQ_INT(migrate_status(c, mn_migrations, mn_migrations_count, &rows, &n, &err), MN_OK);
  T_EQ_INT(n, mn_migrations_count);
  for (size_t i = 0; i < n; i++)
    T_EQ_INT(rows[i].state, MIGRATION_PENDING);
  free(rows);

  T_EQ_INT(migrate_apply(c, mn_migrations, mn_migrations_count, 10, &applied, &err), MN_OK);
  T_EQ_INT(applied, mn_migrations_count);
  char want[32];
  snprintf(want, sizeof want, "%zu", mn_migrations_count);
  T_EQ_STR(t_db_value(c, "SELECT count(*) FROM mnemo.schema_migrations"), want);
  T_EQ_STR(t_db_value(c, "SELECT max(version) FROM mnemo.schema_migrations"), want);
  char sha[65];
  T_EQ_INT(mn_sha256_hex(mn_migrations[0].sql, mn_migrations[0].len, sha, &err), MN_OK);
  T_EQ_STR(t_db_value(c, "SELECT sha256 FROM mnemo.schema_migrations WHERE version = 1"), sha);
  T_EQ_STR(t_db_value(c, "SELECT name FROM mnemo.schema_migrations WHERE version = 1"),
           "create_schema_roles");
  T_EQ_STR(t_db_value(c, "SELECT count(*) FROM pg_roles WHERE rolname IN "
                         "('mnemo_daemon','mnemo_operator','mnemo_reporter','mnemo_ingest')"),
           "4");
  T_EQ_STR(t_db_value(c, "SELECT (duration_ms >= 0)::text FROM mnemo.schema_migrations LIMIT 1"),
           "true");

  /* re-run: nothing applied, the ledger untouched */
  char before[1024];
  snprintf(before, sizeof before, "%s",
           t_db_value(c, "SELECT string_agg(applied_at::text, ',') FROM mnemo.schema_migrations"));
  T_EQ_INT(migrate_apply(c, mn_migrations, mn_migrations_count, 10, &applied, &err), MN_OK);
  T_EQ_INT(applied, 0);
  T_EQ_STR(t_db_value(c, "SELECT string_agg(applied_at::text, ',') FROM mnemo.schema_migrations"),
           before);

  T_EQ_INT(migrate_status(c, mn_migrations, mn_migrations_count, &rows, &n, &err), MN_OK);
  for (size_t i = 0; i < n; i++)
    T_EQ_INT(rows[i].state, MIGRATION_APPLIED);
  free(rows);
  PQfinish(c);
  t_db_drop("fresh");
}

static void changed_checksum_refused(void)
{
  char ci[600];
  mn_error err = {0};
  int applied = -1;
  t_db_fresh("changed", ci, sizeof ci);
  PGconn *c = connect_to(ci);
  synth_reset();
  synth_add("add_t", "CREATE TABLE mnemo.t (x int);\n");
  T_EQ_INT(migrate_apply(c, synth, nsynth, 10, &applied, &err), MN_OK);
  T_EQ_INT(applied, 2);

  /* the same version with one more line: refused, and nothing new is applied */
  synth[1].sql = "CREATE TABLE mnemo.t (x int);\n-- an innocent edit\n";
  synth[1].len = strlen(synth[1].sql);
  synth_add("add_u", "CREATE TABLE mnemo.u (x int);\n");
  T_EQ_INT(migrate_apply(c, synth, nsynth, 10, &applied, &err), MN_ERR_DB);
  T_EQ_INT(applied, 0);
  T_CONTAINS(err.msg, "0002_add_t.sql was changed after it was applied");
  T_CONTAINS(err.detail, "applied as \"add_t\" with sha256");
  T_EQ_STR(t_db_value(c, "SELECT to_regclass('mnemo.u') IS NULL"), "t");
  migration_row *rows = NULL;
  size_t n = 0;
  T_EQ_INT(migrate_status(c, synth, nsynth, &rows, &n, &err), MN_OK);
  T_EQ_INT(n, 3);
  if (n == 3) {
    T_EQ_INT(rows[1].state, MIGRATION_CHANGED);
    T_EQ_INT(rows[2].state, MIGRATION_PENDING);
  }
  free(rows);
  PQfinish(c);
  t_db_drop("changed");
}

static void newer_database_refused(void)
{
  char ci[600];
  mn_error err = {0};
  int applied = -1;
  t_db_fresh("newer", ci, sizeof ci);
  PGconn *c = connect_to(ci);
  synth_reset();
  synth_add("two", "CREATE TABLE mnemo.two (x int);\n");
  synth_add("three", "CREATE TABLE mnemo.three (x int);\n");
  T_EQ_INT(migrate_apply(c, synth, nsynth, 10, &applied, &err), MN_OK);
  T_EQ_INT(applied, 3);
  /* an older binary knows only versions 1 and 2 */
  T_EQ_INT(migrate_apply(c, synth, 2, 10, &applied, &err), MN_ERR_DB);
  T_CONTAINS(err.msg, "the database has migration 3 (three), newer than this mnemo");
  migration_row *rows = NULL;
  size_t n = 0;
  T_EQ_INT(migrate_status(c, synth, 2, &rows, &n, &err), MN_OK);
  T_EQ_INT(n, 3);
  if (n == 3) T_EQ_INT(rows[2].state, MIGRATION_UNKNOWN);
  free(rows);
  PQfinish(c);
  t_db_drop("newer");
}

static void failing_file_rolls_back_alone(void)
{
  char ci[600];
  mn_error err = {0};
  int applied = -1;
  t_db_fresh("failing", ci, sizeof ci);
  PGconn *c = connect_to(ci);
  synth_reset();
  synth_add("good", "CREATE TABLE mnemo.good (x int);\n");
  synth_add("bad", "-- first line\nCREATE TABLE mnemo.half (x int);\nCREAT TABLE oops (x int);\n");
  T_EQ_INT(migrate_apply(c, synth, nsynth, 10, &applied, &err), MN_ERR_DB);
  T_EQ_INT(applied, 2);
  T_CONTAINS(err.msg, "migration 0003_bad.sql failed at line 3");
  T_CONTAINS(err.msg, "syntax error");
  T_CONTAINS(err.detail, "SQLSTATE 42601");
  T_EQ_STR(t_db_value(c, "SELECT max(version) FROM mnemo.schema_migrations"), "2");
  T_EQ_STR(t_db_value(c, "SELECT to_regclass('mnemo.half') IS NULL"), "t"); /* rolled back */
  T_EQ_STR(t_db_value(c, "SELECT to_regclass('mnemo.good') IS NOT NULL"), "t");

  /* a file that controls the transaction is refused before anything is sent */
  const char *controls[] = {
      "COMMIT;\nCREATE TABLE mnemo.after_commit (x int);\n",
      "CREATE TABLE mnemo.after_commit (x int);\n  commit ;\nBEGIN;\n",
      "-- comment; COMMIT\nSELECT 1;\n/* nested /* COMMIT; */ */ END;\n",
      "select 'it''s; ' || $q$ ; begin $q$;\n\nROLLBACK;\n",
      "SAVEPOINT s1;\n",
  };
  const int control_line[] = {1, 2, 3, 3, 1};
  for (size_t i = 0; i < sizeof controls / sizeof controls[0]; i++) {
    synth_reset();
    synth_add("good", "CREATE TABLE mnemo.good (x int);\n");
    synth_add("controls", controls[i]);
    T_EQ_INT(migrate_apply(c, synth, nsynth, 10, &applied, &err), MN_ERR_DB);
    char want[64];
    snprintf(want, sizeof want, "line %d controls the transaction", control_line[i]);
    T_CONTAINS(err.msg, want);
    T_EQ_STR(t_db_value(c, "SELECT to_regclass('mnemo.after_commit') IS NULL"), "t");
  }
  T_EQ_STR(t_db_value(c, "SELECT max(version) FROM mnemo.schema_migrations"), "2");

  /* words inside strings, comments and $$ bodies are not statements; empty files are fine */
  synth_reset();
  synth_add("good", "CREATE TABLE mnemo.good (x int);\n");
  synth_add("quoted",
            "-- BEGIN; COMMIT;\nDO $body$ BEGIN PERFORM 1; END $body$;\n"
            "SELECT 'commit; rollback', E'\\'; begin', \"end\" FROM (SELECT 1 AS \"end\") t;\n"
            "CREATE TABLE mnemo.begin_end (\"commit\" int);\n");
  synth_add("empty", "-- nothing to do yet\n");
  T_EQ_INT(migrate_apply(c, synth, nsynth, 10, &applied, &err), MN_OK);
  T_CHECK_MSG(applied == 2, "applied %d: %s", applied, err.msg);
  T_EQ_STR(t_db_value(c, "SELECT to_regclass('mnemo.begin_end') IS NOT NULL"), "t");

  /* a renamed file (same version, same text) no longer matches the ledger */
  synth[2].name = "quoted_renamed";
  T_EQ_INT(migrate_apply(c, synth, nsynth, 10, &applied, &err), MN_ERR_DB);
  T_CONTAINS(err.detail, "applied as \"quoted\"");
  PQfinish(c);
  t_db_drop("failing");
}

typedef struct racer {
  const char *conninfo;
  mn_status rc;
  int applied;
  mn_error err;
} racer;

static void *race(void *arg)
{
  racer *r = arg;
  PGconn *c = connect_to(r->conninfo);
  r->rc = migrate_apply(c, synth, nsynth, 30, &r->applied, &r->err);
  PQfinish(c);
  return NULL;
}

/* four migrators at once: every file applied exactly once */
static void concurrent_migrators(void)
{
  char ci[600];
  t_db_fresh("race", ci, sizeof ci);
  synth_reset();
  synth_add("tally", "CREATE TABLE mnemo.tally (v int);\n"
                     "INSERT INTO mnemo.tally VALUES (2);\n");
  /* a slow file widens the window in which a second migrator could slip in */
  synth_add("slow", "SELECT pg_sleep(0.3);\nINSERT INTO mnemo.tally VALUES (3);\n");
  synth_add("last", "INSERT INTO mnemo.tally VALUES (4);\n");
  enum { N = 4 };
  pthread_t th[N];
  racer r[N];
  for (int i = 0; i < N; i++) {
    r[i] = (racer){.conninfo = ci};
    pthread_create(&th[i], NULL, race, &r[i]);
  }
  int total = 0;
  for (int i = 0; i < N; i++) {
    pthread_join(th[i], NULL);
    T_CHECK_MSG(r[i].rc == MN_OK, "racer %d: %s", i, r[i].err.msg);
    total += r[i].applied;
  }
  T_EQ_INT(total, 4);
  PGconn *c = connect_to(ci);
  T_EQ_STR(t_db_value(c, "SELECT string_agg(v::text, ',' ORDER BY v) FROM mnemo.tally"), "2,3,4");
  T_EQ_STR(t_db_value(c, "SELECT count(*) FROM mnemo.schema_migrations"), "4");
  PQfinish(c);
  t_db_drop("race");
}

static void held_lock_times_out(void)
{
  char ci[600], sql[128];
  mn_error err = {0};
  int applied = -1;
  t_db_fresh("lock", ci, sizeof ci);
  PGconn *holder = connect_to(ci);
  snprintf(sql, sizeof sql, "SELECT pg_advisory_lock(%lld)", (long long)MIGRATE_LOCK_KEY);
  T_EQ_STR(t_db_value(holder, sql), "");
  PGconn *c = connect_to(ci);
  double t0 = mn_monotonic_ms();
  T_EQ_INT(migrate_apply(c, mn_migrations, mn_migrations_count, 1, &applied, &err), MN_ERR_DB);
  T_CONTAINS(err.msg, "another migrator is running");
  T_CHECK(mn_monotonic_ms() - t0 >= 900);
  T_EQ_INT(applied, 0);
  PQfinish(holder); /* the lock goes with the session */
  T_EQ_INT(migrate_apply(c, mn_migrations, mn_migrations_count, 1, &applied, &err), MN_OK);
  T_EQ_INT(applied, mn_migrations_count);
  PQfinish(c);
  t_db_drop("lock");
}

static void connection_errors_hide_secrets(void)
{
  PGconn *c = NULL;
  mn_error err = {0};
  char ci[700];
  snprintf(ci, sizeof ci, "%s dbname=no_such_db password=topsecret", t_db_admin());
  db_options opt = {.conninfo = ci, .connect_timeout_s = 5};
  T_EQ_INT(db_connect(&opt, &c, &err), MN_ERR_DB);
  T_CHECK(c == NULL);
  T_CONTAINS(err.msg, "could not connect to database \"no_such_db\"");
  T_CONTAINS(err.detail, "does not exist");
  T_CHECK(!strstr(err.msg, "topsecret") && !strstr(err.detail, "topsecret"));
  opt.conninfo = "host=/tmp port='unterminated";
  T_EQ_INT(db_connect(&opt, &c, &err), MN_ERR_CONFIG);
  /* libpq's parse error would quote the password: ours does not */
  opt.conninfo = "host=/tmp password=abc def";
  T_EQ_INT(db_connect(&opt, &c, &err), MN_ERR_CONFIG);
  T_CHECK(!strstr(err.msg, "def") && !strstr(err.detail, "def") && !strstr(err.detail, "abc"));
  /* a bare name is a database name, not a malformed string */
  opt.conninfo = "t_no_such_bare_db";
  T_EQ_INT(db_connect(&opt, &c, &err), MN_ERR_DB);
  T_CONTAINS(err.msg, "could not connect");
  opt.conninfo = "";
  T_EQ_INT(db_connect(&opt, &c, &err), MN_ERR_CONFIG);
  T_CONTAINS(err.msg, "no database given");
}

int main(void)
{
  mn_log_configure(MN_LOG_WARN, MN_LOG_LOGFMT, -1);
  T_RUN(fresh_apply_and_rerun);
  T_RUN(changed_checksum_refused);
  T_RUN(newer_database_refused);
  T_RUN(failing_file_rolls_back_alone);
  T_RUN(concurrent_migrators);
  T_RUN(held_lock_times_out);
  T_RUN(connection_errors_hide_secrets);
  return T_DONE();
}
