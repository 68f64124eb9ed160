/*
 * db_test.h -- a fresh database per test on the cluster of the ctest fixture.
 *
 * The fixture (tests/pg_fixture.sh) writes the cluster's conninfo to the file
 * named by $MNEMO_TEST_PG_FILE.  A db test without it fails: it never skips.
 */
#ifndef MNEMO_DB_TEST_H
#define MNEMO_DB_TEST_H

#include "common/common.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char t_admin_conninfo[512];

/* t_db_admin -- the fixture's conninfo; exits 1 (a failure, not a skip) without it. */
static const char *t_db_admin(void)
{
  if (t_admin_conninfo[0]) return t_admin_conninfo;
  const char *file = getenv("MNEMO_TEST_PG_FILE");
  FILE *f = file ? fopen(file, "r") : NULL;
  if (!f || !fgets(t_admin_conninfo, sizeof t_admin_conninfo, f)) {
    fprintf(stderr,
            "db test: no test cluster (MNEMO_TEST_PG_FILE=%s): run it through ctest, "
            "whose fixture starts one\n",
            file ? file : "unset");
    exit(1);
  }
  fclose(f);
  t_admin_conninfo[strcspn(t_admin_conninfo, "\n")] = '\0';
  return t_admin_conninfo;
}

static void t_db_admin_exec(const char *sql)
{
  PGconn *c = PQconnectdb(t_db_admin());
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) {
    fprintf(stderr, "db test: %s: %s", sql, PQerrorMessage(c));
    exit(1);
  }
  PQclear(r);
  PQfinish(c);
}

/*
 * t_db_fresh -- drop and create database "t_<tag>_<pid>", return its conninfo
 * in out.  Databases are dropped again by t_db_drop, or with the cluster.
 */
static void t_db_fresh(const char *tag, char *out, size_t outlen)
{
  char sql[256];
  snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS t_%s_%ld WITH (FORCE)", tag, (long)getpid());
  t_db_admin_exec(sql);
  snprintf(sql, sizeof sql, "CREATE DATABASE t_%s_%ld", tag, (long)getpid());
  t_db_admin_exec(sql);
  snprintf(out, outlen, "%s dbname=t_%s_%ld", t_db_admin(), tag, (long)getpid());
}

static void t_db_drop(const char *tag)
{
  char sql[256];
  snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS t_%s_%ld WITH (FORCE)", tag, (long)getpid());
  t_db_admin_exec(sql);
}

/* t_db_value -- the first column of the first row of sql, or "" (static buffer). */
static const char *t_db_value(PGconn *c, const char *sql)
{
  static char buf[1024];
  PGresult *r = PQexec(c, sql);
  buf[0] = '\0';
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
    snprintf(buf, sizeof buf, "%s", PQgetvalue(r, 0, 0));
  else if (PQresultStatus(r) != PGRES_TUPLES_OK)
    fprintf(stderr, "db test: %s: %s", sql, PQerrorMessage(c));
  PQclear(r);
  return buf;
}

#endif /* MNEMO_DB_TEST_H */
