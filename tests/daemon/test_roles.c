/*
 * test_roles.c -- each role can do its job and nothing else (DESIGN.md §7).
 *
 * A superuser connection switches to each role with SET ROLE, so the checks
 * are the database's own privilege checks, exactly as a login user granted
 * that role would meet them.
 */
#include "daemon/daemon.h"
#include "tests/db_test.h"
#include "tests/test.h"

static PGconn *conn;
static char conninfo[600];

/* as -- run q as role; returns true when it succeeded. */
static bool as(const char *role, const char *q)
{
  char set[96];
  snprintf(set, sizeof set, "SET ROLE %s", role);
  PGresult *r = PQexec(conn, set);
  PQclear(r);
  r = PQexec(conn, q);
  ExecStatusType st = PQresultStatus(r);
  bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
  if (!ok && !strstr(PQresultErrorMessage(r), "permission denied"))
    fprintf(stderr, "  (%s: %s: %s)", role, q, PQresultErrorMessage(r));
  PQclear(r);
  r = PQexec(conn, "RESET ROLE");
  PQclear(r);
  return ok;
}

#define CAN(role, q)    T_CHECK_MSG(as(role, q), "%s cannot: %s", role, q)
#define CANNOT(role, q) T_CHECK_MSG(!as(role, q), "%s can: %s", role, q)

static void setup(void)
{
  mn_error err = {0};
  int applied;
  t_db_fresh("roles", conninfo, sizeof conninfo);
  db_options o = {.conninfo = conninfo, .connect_timeout_s = 10};
  if (db_connect(&o, &conn, &err) != MN_OK ||
      migrate_apply(conn, mn_migrations, mn_migrations_count, 10, &applied, &err) != MN_OK) {
    fprintf(stderr, "setup: %s\n", err.msg);
    exit(1);
  }
  PGresult *r =
      PQexec(conn, "INSERT INTO mnemo.languages (code, name, script) VALUES "
                   "('spa', 'Spanish', 'Latn'); INSERT INTO mnemo.sources (name) VALUES "
                   "('s'); INSERT INTO mnemo.documents (lang, source_id, text, bytes, "
                   "sha256, split) VALUES ('spa', 1, 'hola', 4, sha256('hola'), 'train')");
  if (PQresultStatus(r) != PGRES_COMMAND_OK) {
    fprintf(stderr, "setup: %s", PQerrorMessage(conn));
    exit(1);
  }
  PQclear(r);
}

#define DOC(text)                                                                                  \
  "INSERT INTO mnemo.documents (lang, source_id, text, bytes, sha256, split) VALUES ('spa', 1, "   \
  "'" text "', octet_length('" text "'), sha256('" text "'), 'train')"

static void ingest_role(void)
{
  CAN("mnemo_ingest", DOC("adiós"));
  CAN("mnemo_ingest", "INSERT INTO mnemo.sources (name) VALUES ('from-ingest')");
  CAN("mnemo_ingest", "SELECT code, enabled FROM mnemo.languages");
  CANNOT("mnemo_ingest", "SELECT text FROM mnemo.documents");
  CANNOT("mnemo_ingest", "UPDATE mnemo.documents SET split = 'heldout'");
  CANNOT("mnemo_ingest", "DELETE FROM mnemo.documents");
  CANNOT("mnemo_ingest", "INSERT INTO mnemo.reports (claimed_lang, text) VALUES ('spa', 'x')");
  CANNOT("mnemo_ingest", "INSERT INTO mnemo.languages (code, name, script) VALUES "
                         "('rus', 'Russian', 'Cyrl')");
  CANNOT("mnemo_ingest", "SELECT * FROM mnemo.schema_migrations");
}

static void reporter_role(void)
{
  CAN("mnemo_reporter", "INSERT INTO mnemo.reports (claimed_lang, text, expected_text, context) "
                        "VALUES ('spa', 'texto raro', 'texto bueno', '{\"app\": \"chat\"}') "
                        "RETURNING id");
  /* the reporter is recorded by the database, not claimed by the writer */
  T_EQ_STR(t_db_value(conn, "SELECT reporter FROM mnemo.reports ORDER BY id DESC LIMIT 1"),
           "postgres");
  CANNOT("mnemo_reporter", "INSERT INTO mnemo.reports (claimed_lang, text, status) VALUES "
                           "('spa', 'x', 'accepted')");
  CANNOT("mnemo_reporter", "INSERT INTO mnemo.reports (claimed_lang, text, reporter) VALUES "
                           "('spa', 'x', 'someone-else')");
  CANNOT("mnemo_reporter", "SELECT text FROM mnemo.reports");
  CANNOT("mnemo_reporter", "UPDATE mnemo.reports SET status = 'fixed'");
  CANNOT("mnemo_reporter", DOC("no"));
  CANNOT("mnemo_reporter", "SELECT text FROM mnemo.documents");
}

static void daemon_role(void)
{
  CAN("mnemo_daemon", "SELECT text FROM mnemo.documents");
  CAN("mnemo_daemon", "UPDATE mnemo.documents SET consumed_by = 1");
  CAN("mnemo_daemon", "UPDATE mnemo.reports SET detected_lang = 'spa', severity = 2.5");
  CANNOT("mnemo_daemon", "UPDATE mnemo.documents SET text = 'changed'");
  CANNOT("mnemo_daemon", "DELETE FROM mnemo.documents");
  CANNOT("mnemo_daemon", "INSERT INTO mnemo.languages (code, name, script) VALUES "
                         "('rus', 'Russian', 'Cyrl')");
  CANNOT("mnemo_daemon", "DELETE FROM mnemo.reports");
  CANNOT("mnemo_daemon", "UPDATE mnemo.reports SET text = 'changed'");
}

static void operator_role(void)
{
  CAN("mnemo_operator", "INSERT INTO mnemo.languages (code, name, script) VALUES "
                        "('rus', 'Russian', 'Cyrl')");
  CAN("mnemo_operator", "UPDATE mnemo.languages SET enabled = false WHERE code = 'rus'");
  CAN("mnemo_operator", "UPDATE mnemo.reports SET status = 'triaged', notes = 'seen'");
  CAN("mnemo_operator", "SELECT text FROM mnemo.documents");
  CANNOT("mnemo_operator", "UPDATE mnemo.documents SET text = 'changed'");
  CANNOT("mnemo_operator", "DELETE FROM mnemo.documents");
  CANNOT("mnemo_operator", "UPDATE mnemo.languages SET tag_id = 999");
  CANNOT("mnemo_operator", "DELETE FROM mnemo.reports");
}

static void identities_are_permanent(void)
{
  /* even the owner cannot delete a language or change its tag: the tag id is never reused */
  PGresult *r = PQexec(conn, "DELETE FROM mnemo.languages WHERE code = 'rus'");
  T_CHECK(PQresultStatus(r) == PGRES_FATAL_ERROR);
  T_CONTAINS(PQresultErrorMessage(r), "disable it instead");
  PQclear(r);
  r = PQexec(conn, "UPDATE mnemo.languages SET tag_id = tag_id + 100 WHERE code = 'spa'");
  T_CHECK(PQresultStatus(r) == PGRES_FATAL_ERROR);
  PQclear(r);
  r = PQexec(conn, "INSERT INTO mnemo.languages (code, name, script) VALUES ('zzz', 'No', 'Latn')");
  T_CHECK(PQresultStatus(r) == PGRES_FATAL_ERROR); /* not an ISO 639-3 code */
  PQclear(r);
  /* documents: the stored hash and size must match the text */
  r = PQexec(conn, "INSERT INTO mnemo.documents (lang, source_id, text, bytes, sha256, split) "
                   "VALUES ('spa', 1, 'mentira', 7, sha256('verdad'), 'train')");
  T_CHECK(PQresultStatus(r) == PGRES_FATAL_ERROR);
  PQclear(r);
  T_EQ_STR(t_db_value(conn, "SELECT string_agg(tag_id::text, ',' ORDER BY tag_id) FROM "
                            "mnemo.languages"),
           "257,258");
}

int main(void)
{
  setup();
  T_RUN(ingest_role);
  T_RUN(reporter_role);
  T_RUN(daemon_role);
  T_RUN(operator_role);
  T_RUN(identities_are_permanent);
  PQfinish(conn);
  t_db_drop("roles");
  return T_DONE();
}
