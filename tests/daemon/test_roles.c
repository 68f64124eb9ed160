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

/*
 * as -- run q as role inside a transaction that is rolled back, so checks do not
 * change what later checks see.  Returns the SQLSTATE ("00000" on success).
 */
static const char *as(const char *role, const char *q)
{
  static char state[6];
  char set[96];
  snprintf(set, sizeof set, "SET LOCAL ROLE %s", role);
  PGresult *r = PQexec(conn, "BEGIN");
  PQclear(r);
  r = PQexec(conn, set);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) {
    fprintf(stderr, "SET ROLE %s failed: %s", role, PQerrorMessage(conn));
    exit(1);
  }
  PQclear(r);
  r = PQexec(conn, q);
  ExecStatusType st = PQresultStatus(r);
  const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  snprintf(state, sizeof state, "%s",
           st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? "00000"
           : code                                          ? code
                                                           : "?????");
  PQclear(r);
  r = PQexec(conn, "ROLLBACK");
  PQclear(r);
  return state;
}

#define CAN(role, q)                                                                               \
  T_CHECK_MSG(strcmp(as(role, q), "00000") == 0, "%s cannot (%s): %s", role, as(role, q), q)
/* refused for lack of privilege (42501), not for some other error */
#define CANNOT(role, q)                                                                            \
  T_CHECK_MSG(strcmp(as(role, q), "42501") == 0, "%s got %s, not 42501: %s", role, as(role, q), q)

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
  /* what mnemoctl ingest sends */
  CAN("mnemo_ingest",
      "CREATE TEMP TABLE st (lang text, source text, text text, bytes int, sha256 bytea, split "
      "text); INSERT INTO st VALUES ('spa', 's', 'x', 1, sha256('x'), 'train');"
      "INSERT INTO mnemo.sources (name) SELECT DISTINCT source FROM st ON CONFLICT (name) DO "
      "NOTHING; WITH ins AS (INSERT INTO mnemo.documents (lang, source_id, text, bytes, sha256, "
      "split) SELECT s.lang, src.id, s.text, s.bytes, s.sha256, s.split FROM st s JOIN "
      "mnemo.sources src ON src.name = s.source ON CONFLICT (sha256) DO NOTHING RETURNING lang, "
      "bytes, split) SELECT lang, count(*) FROM ins GROUP BY lang");
  /* it cannot choose what is not the document's own */
  CANNOT("mnemo_ingest", "INSERT INTO mnemo.documents (lang, source_id, text, bytes, sha256, "
                         "split, consumed_by) VALUES ('spa', 1, 'y', 1, sha256('y'), 'train', 42)");
  CANNOT("mnemo_ingest", "INSERT INTO mnemo.documents (lang, source_id, text, bytes, sha256, "
                         "split, ingested_at) VALUES ('spa', 1, 'y', 1, sha256('y'), 'train', "
                         "'1999-01-01')");
  CANNOT("mnemo_ingest", "UPDATE mnemo.sources SET licence = 'mine'");
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
  PGresult *r = PQexec(conn, "BEGIN; SET LOCAL ROLE mnemo_reporter; INSERT INTO mnemo.reports "
                             "(claimed_lang, text) VALUES ('spa', 'quién'); RESET ROLE");
  PQclear(r);
  T_EQ_STR(t_db_value(conn, "SELECT reporter FROM mnemo.reports ORDER BY id DESC LIMIT 1"),
           "postgres");
  r = PQexec(conn, "ROLLBACK");
  PQclear(r);
  CANNOT("mnemo_reporter", "INSERT INTO mnemo.reports (claimed_lang, text, status) VALUES "
                           "('spa', 'x', 'accepted')");
  CANNOT("mnemo_reporter", "INSERT INTO mnemo.reports (claimed_lang, text, reporter) VALUES "
                           "('spa', 'x', 'someone-else')");
  CANNOT("mnemo_reporter", "SELECT text FROM mnemo.reports");
  CANNOT("mnemo_reporter", "UPDATE mnemo.reports SET status = 'fixed'");
  CAN("mnemo_reporter", "SELECT mnemo.report_status(1)");
  CANNOT("mnemo_reporter", "SELECT mnemo.triage_reject(1, 'spam')");
  CANNOT("mnemo_reporter", "SELECT * FROM mnemo.report_summary");
  CANNOT("mnemo_reporter", DOC("no"));
  CANNOT("mnemo_reporter", "SELECT text FROM mnemo.documents");
}

static void daemon_role(void)
{
  CAN("mnemo_daemon", "SELECT text FROM mnemo.documents");
  CANNOT("mnemo_daemon", "UPDATE mnemo.documents SET consumed_by = NULL"); /* promote() does */
  /* triage: findings through mnemo.triage_record only; operators decide */
  CANNOT("mnemo_daemon", "UPDATE mnemo.reports SET detected_lang = 'spa', severity = 2.5");
  CANNOT("mnemo_daemon", "UPDATE mnemo.reports SET status = 'accepted'");
  CANNOT("mnemo_daemon", "SELECT mnemo.triage_accept(1, NULL, 'self-accepted')");
  CANNOT("mnemo_daemon", "SELECT mnemo.triage_reject(1, 'no')");
  CAN("mnemo_daemon", "SELECT * FROM mnemo.report_boosts(0.5, 168, 3)");
  CAN("mnemo_daemon", "SELECT * FROM mnemo.report_summary");
  CANNOT("mnemo_daemon", "UPDATE mnemo.documents SET text = 'changed'");
  CANNOT("mnemo_daemon", "DELETE FROM mnemo.documents");
  CANNOT("mnemo_daemon", "INSERT INTO mnemo.languages (code, name, script) VALUES "
                         "('rus', 'Russian', 'Cyrl')");
  CANNOT("mnemo_daemon", "DELETE FROM mnemo.reports");
  CANNOT("mnemo_daemon", "UPDATE mnemo.reports SET text = 'changed'");
  /* refreshes: the daemon runs jobs and proposes; it never decides, undoes or registers */
  CAN("mnemo_daemon", "SELECT mnemo.request_refresh('schedule')");
  CAN("mnemo_daemon", "UPDATE mnemo.jobs SET progress = '{}'");
  CANNOT("mnemo_daemon", "SELECT mnemo.approve(1, 'self-approval')");
  CANNOT("mnemo_daemon", "SELECT mnemo.reject(1, 'no')");
  CANNOT("mnemo_daemon", "SELECT mnemo.rollback('undo')");
  /* the daemon records the ends of its jobs, never another kind of event (a forged
   * promoted row would send a signed webhook) */
  CANNOT("mnemo_daemon", "SELECT mnemo.log_event('promoted', NULL, NULL, '{}')");
  CANNOT("mnemo_daemon", "SELECT mnemo.log_job_event('promoted', 1, '{}')");
  CANNOT("mnemo_daemon", "SELECT mnemo.log_job_event('rolled_back', 1, '{}')");
  CANNOT("mnemo_daemon", "INSERT INTO mnemo.events (kind) VALUES ('promoted')");
  CANNOT("mnemo_daemon",
         "INSERT INTO mnemo.outbox (event_id, type, payload) VALUES (1, 'x', '{}')");
  CANNOT("mnemo_daemon", "SELECT mnemo.bootstrap(0, repeat('0', 64), 'mine')");
  CANNOT("mnemo_daemon", "SELECT mnemo.cancel_job(1)");
  CANNOT("mnemo_daemon", "INSERT INTO mnemo.approvals (ckpt_id, decision, note) VALUES "
                         "(1, 'approve', 'x')");
  CANNOT("mnemo_daemon", "UPDATE mnemo.checkpoints SET state = 'approved'");
  CANNOT("mnemo_daemon", "INSERT INTO mnemo.jobs (kind, ckpt_id) VALUES ('promote', 1)");
  CANNOT("mnemo_daemon", "UPDATE mnemo.jobs SET ckpt_id = 1");
}

static void operator_role(void)
{
  CANNOT("mnemo_operator", "INSERT INTO mnemo.languages (code, name, script, tag_id) VALUES "
                           "('ukr', 'Ukrainian', 'Cyrl', 5)");
  CAN("mnemo_operator", "INSERT INTO mnemo.sources (name, licence) VALUES ('op', 'MIT')");
  CAN("mnemo_operator", "INSERT INTO mnemo.languages (code, name, script) VALUES "
                        "('rus', 'Russian', 'Cyrl')");
  CAN("mnemo_operator", "UPDATE mnemo.languages SET enabled = false WHERE code = 'rus'");
  CANNOT("mnemo_operator", "UPDATE mnemo.reports SET status = 'triaged', notes = 'seen'");
  CANNOT("mnemo_operator", "SELECT mnemo.triage_record(1, 'spa', 1, NULL, NULL, '{}', NULL)");
  CANNOT("mnemo_operator", "SELECT mnemo.reports_fix(1, 0.02)");
  CAN("mnemo_operator", "SELECT mnemo.report_status(1)");
  CAN("mnemo_operator", "SELECT text FROM mnemo.documents");
  CANNOT("mnemo_operator", "UPDATE mnemo.documents SET text = 'changed'");
  CANNOT("mnemo_operator", "DELETE FROM mnemo.documents");
  CANNOT("mnemo_operator", "UPDATE mnemo.languages SET tag_id = 999");
  CANNOT("mnemo_operator", "DELETE FROM mnemo.reports");
  /* refreshes: operators decide through the functions, never by writing the tables */
  CAN("mnemo_operator", "SELECT mnemo.request_refresh('by hand')");
  CAN("mnemo_operator", "SELECT mnemo.bootstrap(0, repeat('0', 64), 'first')");
  CANNOT("mnemo_operator", "SELECT mnemo.promote(1, 1)");
  CANNOT("mnemo_operator", "SELECT mnemo.checkpoint_advance(1, 'awaiting_approval', '', NULL, "
                           "NULL)");
  CANNOT("mnemo_operator", "SELECT mnemo.log_event('promoted', NULL, NULL, '{}')");
  CANNOT("mnemo_operator", "UPDATE mnemo.checkpoints SET state = 'production'");
  CANNOT("mnemo_operator", "INSERT INTO mnemo.approvals (ckpt_id, decision, note) VALUES "
                           "(1, 'approve', 'x')");
  CANNOT("mnemo_operator", "UPDATE mnemo.jobs SET state = 'succeeded'");
}

static void identities_are_permanent(void)
{
  /* even the owner cannot delete a language or change its tag: the tag id is never reused */
  PGresult *r = PQexec(conn, "DELETE FROM mnemo.languages WHERE code = 'spa'");
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
  /* a tag id can never collide with a byte or <|eot|>, even from the owner */
  r = PQexec(conn, "INSERT INTO mnemo.languages (code, name, script, tag_id) VALUES "
                   "('ukr', 'Ukrainian', 'Cyrl', 200)");
  T_CHECK(PQresultStatus(r) == PGRES_FATAL_ERROR);
  PQclear(r);
  /* report context: an object */
  r = PQexec(conn, "INSERT INTO mnemo.reports (claimed_lang, text, context) VALUES ('spa', 'x', "
                   "'[1]')");
  T_CHECK(PQresultStatus(r) == PGRES_FATAL_ERROR);
  PQclear(r);
  T_EQ_STR(t_db_value(conn, "SELECT string_agg(tag_id::text, ',' ORDER BY tag_id) FROM "
                            "mnemo.languages"),
           "257");
}

/* reporters see the status of their own reports only: the operator's rejection note of
 * another person's report is not theirs to read (logins, so session_user is theirs) */
static void reporters_see_their_own(void)
{
  PGresult *r = PQexec(conn, "DROP ROLE IF EXISTS rep_a, rep_b, op_a;"
                             "CREATE ROLE rep_a LOGIN IN ROLE mnemo_reporter;"
                             "CREATE ROLE rep_b LOGIN IN ROLE mnemo_reporter;"
                             "CREATE ROLE op_a LOGIN IN ROLE mnemo_operator");
  T_CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
  PQclear(r);
  char ci[700];
  snprintf(ci, sizeof ci, "%s user=rep_a", conninfo);
  PGconn *a = PQconnectdb(ci);
  snprintf(ci, sizeof ci, "%s user=rep_b", conninfo);
  PGconn *b = PQconnectdb(ci);
  snprintf(ci, sizeof ci, "%s user=op_a", conninfo);
  PGconn *op = PQconnectdb(ci);
  T_CHECK(PQstatus(a) == CONNECTION_OK && PQstatus(b) == CONNECTION_OK &&
          PQstatus(op) == CONNECTION_OK);
  char id[32];
  snprintf(id, sizeof id, "%s",
           t_db_value(a, "INSERT INTO mnemo.reports (claimed_lang, text) VALUES ('spa', "
                         "'privado') RETURNING id"));
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT coalesce(mnemo.report_status(%s), '(none)')", id);
  T_EQ_STR(t_db_value(a, sql), "received");
  T_EQ_STR(t_db_value(b, sql), "(none)");
  T_EQ_STR(t_db_value(op, sql), "received");
  PQfinish(a);
  PQfinish(b);
  PQfinish(op);
  r = PQexec(conn, "DROP OWNED BY rep_a, rep_b, op_a; DROP ROLE rep_a; DROP ROLE rep_b; "
                   "DROP ROLE op_a");
  PQclear(r);
}

int main(void)
{
  setup();
  T_RUN(ingest_role);
  T_RUN(reporter_role);
  T_RUN(daemon_role);
  T_RUN(operator_role);
  T_RUN(identities_are_permanent);
  T_RUN(reporters_see_their_own);
  PQfinish(conn);
  t_db_drop("roles");
  return T_DONE();
}
