/*
 * db.c -- opening connections and turning libpq failures into mn_error.
 *
 * The conninfo may hold a password: it is never copied into a message.
 * Messages name the database, user and host that libpq resolved instead.
 */
#include "daemon/daemon.h"

#include <stdio.h>
#include <string.h>

/* first_line -- copy the first line of a libpq message (they end in "\n"). */
static void first_line(const char *in, char *out, size_t outlen)
{
  size_t n = strcspn(in ? in : "", "\n");
  snprintf(out, outlen, "%.*s", (int)n, in ? in : "");
}

/* describe_target -- "database \"x\" as user \"u\" on host:port" from the conninfo, no secrets. */
static void describe_target(const char *conninfo, char *out, size_t outlen)
{
  const char *db = NULL, *user = NULL, *host = NULL, *port = NULL;
  PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
  for (PQconninfoOption *o = opts; o && o->keyword; o++) {
    if (!o->val) continue;
    if (strcmp(o->keyword, "dbname") == 0)
      db = o->val;
    else if (strcmp(o->keyword, "user") == 0)
      user = o->val;
    else if (strcmp(o->keyword, "host") == 0)
      host = o->val;
    else if (strcmp(o->keyword, "port") == 0)
      port = o->val;
  }
  snprintf(out, outlen, "database \"%s\"%s%s%s on %s%s%s", db ? db : "(default)",
           user ? " as user \"" : "", user ? user : "", user ? "\"" : "",
           host ? host : "(default host)", port ? ":" : "", port ? port : "");
  PQconninfoFree(opts);
}

mn_status db_connect(const db_options *opt, PGconn **out, mn_error *err)
{
  char timeout[32];
  char target[512];
  *out = NULL;
  if (!opt->conninfo || !*opt->conninfo)
    return mn_error_set(err, MN_ERR_CONFIG,
                        "no database given: set --db, MNEMO_DB or database.conninfo");
  /* a bare database name ("mnemo") is fine: libpq takes it as dbname */
  bool bare = !strchr(opt->conninfo, '=') && strncmp(opt->conninfo, "postgres://", 11) != 0 &&
              strncmp(opt->conninfo, "postgresql://", 13) != 0;
  char *perr = NULL;
  PQconninfoOption *check = bare ? NULL : PQconninfoParse(opt->conninfo, &perr);
  if (!bare && !check) {
    PQfreemem(perr); /* libpq quotes the string, which may hold a password: not shown */
    mn_error_set(err, MN_ERR_CONFIG, "cannot parse the database connection string");
    return mn_error_detail(err, "write key=value pairs (quote values with spaces in '...') or a "
                                "postgresql:// URI; the string itself is not shown: it may hold "
                                "a password");
  }
  PQconninfoFree(check);

  snprintf(timeout, sizeof timeout, "%lld", (long long)opt->connect_timeout_s);
  /* earlier keywords are defaults: values in the conninfo (expanded from dbname) win */
  const char *keys[] = {"application_name", "connect_timeout", "client_encoding", "dbname", NULL};
  const char *vals[] = {opt->application_name ? opt->application_name : "mnemo",
                        opt->connect_timeout_s > 0 ? timeout : NULL, "UTF8", opt->conninfo, NULL};
  PGconn *conn = PQconnectdbParams(keys, vals, 1);
  if (!conn) return mn_error_set(err, MN_ERR_NOMEM, "out of memory connecting to the database");
  if (PQstatus(conn) != CONNECTION_OK) {
    char line[400];
    describe_target(opt->conninfo, target, sizeof target);
    first_line(PQerrorMessage(conn), line, sizeof line);
    PQfinish(conn);
    mn_error_set(err, MN_ERR_DB, "could not connect to %s", target);
    return mn_error_detail(err, "%s", line);
  }
  *out = conn;
  return MN_OK;
}

mn_status db_error(PGconn *conn, const PGresult *res, const char *what, mn_error *err)
{
  char line[400];
  if (!res) {
    first_line(PQerrorMessage(conn), line, sizeof line);
    return mn_error_set(err, MN_ERR_DB, "%s: %s", what, line[0] ? line : "no result");
  }
  const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
  const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
  const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
  if (!primary) {
    first_line(PQresultErrorMessage(res), line, sizeof line);
    primary = line[0] ? line : PQresStatus(PQresultStatus(res));
  }
  mn_error_set(err, MN_ERR_DB, "%s: %s", what, primary);
  return mn_error_detail(err, "SQLSTATE %s%s%s%s%s", state ? state : "?????",
                         detail ? "; DETAIL: " : "", detail ? detail : "", hint ? "; HINT: " : "",
                         hint ? hint : "");
}

mn_status db_exec(PGconn *conn, const char *sql, mn_error *err)
{
  PGresult *res = PQexec(conn, sql);
  mn_status rc = MN_OK;
  if (!res || (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK))
    rc = db_error(conn, res, sql, err);
  PQclear(res);
  return rc;
}

mn_status db_query(PGconn *conn, const char *sql, int nparams, const char *const *params,
                   PGresult **res, const char *what, mn_error *err)
{
  *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
  ExecStatusType st = PQresultStatus(*res);
  if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) return MN_OK;
  mn_status rc = db_error(conn, *res, what, err);
  PQclear(*res);
  *res = NULL;
  return rc;
}

mn_status db_export_jsonl(PGconn *c, const char *sql, int n, const char *const *p, const char *path,
                          int64_t *rows, mn_error *err)
{
  *rows = -1;
  mn_atomic_file *f = NULL;
  mn_status rc = mn_atomic_open(path, 0640, &f, err);
  if (rc != MN_OK) return rc;
  if (!PQsendQueryParams(c, sql, n, NULL, p, NULL, NULL, 0) || !PQsetSingleRowMode(c)) {
    mn_atomic_abort(f);
    return db_error(c, NULL, "export documents", err);
  }
  int64_t count = 0;
  PGresult *res;
  while ((res = PQgetResult(c)) != NULL) {
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_SINGLE_TUPLE && rc == MN_OK) {
      rc = mn_atomic_write(f, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), err);
      if (rc == MN_OK) rc = mn_atomic_write(f, "\n", 1, err);
      count++;
    } else if (st != PGRES_TUPLES_OK && st != PGRES_SINGLE_TUPLE && rc == MN_OK) {
      rc = db_error(c, res, "export documents", err);
    }
    PQclear(res);
  }
  if (rc != MN_OK) {
    mn_atomic_abort(f);
    return rc;
  }
  *rows = count;
  return mn_atomic_commit(f, err);
}

mn_status db_export_tags(PGconn *c, const char *path, int64_t *rows, mn_error *err)
{
  return db_export_jsonl(c, "SELECT code || E'\\t' || tag_id FROM mnemo.languages ORDER BY code", 0,
                         NULL, path, rows, err);
}
