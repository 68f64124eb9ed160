/*
 * metrics.c -- /metrics in the Prometheus text format (0.0.4) and /readyz, read with a
 * connection of the daemon's own login (database.conninfo), made when first needed and
 * again after a failure.  Names as Prometheus advises: the mnemo_ prefix, base units
 * (seconds), _total for counters, _seconds, _timestamp_seconds.
 *
 * Counters are counts of rows that are never deleted (a job's end, a webhook's delivery),
 * so they only grow; gauges are counts of rows in a state now.  Per-language series only
 * while there are at most console.metrics_languages languages (cardinality: every language
 * a series per metric).  A scrape that cannot reach the database still answers, with
 * mnemo_database_up 0 and the role of this daemon.
 */
#include "daemon/console_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const double BUCKETS[] = {10, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400};
enum { NBUCKETS = sizeof BUCKETS / sizeof BUCKETS[0] };

/* conn -- the connection, made (again) when there is no good one; under m->lock */
static PGconn *conn(metrics_src *m, mn_error *err)
{
  if (m->db && PQstatus(m->db) == CONNECTION_OK) return m->db;
  PQfinish(m->db);
  m->db = NULL;
  db_options o = {.conninfo = m->conninfo,
                  .application_name = "mnemod metrics",
                  .connect_timeout_s = m->connect_timeout_s};
  if (db_connect(&o, &m->db, err) != MN_OK) return NULL;
  if (db_exec(m->db, "SET statement_timeout = '10s'", err) != MN_OK) {
    PQfinish(m->db);
    m->db = NULL;
  }
  return m->db;
}

void metrics_fini(metrics_src *m)
{
  PQfinish(m->db);
  m->db = NULL;
  free((char *)m->conninfo);
  m->conninfo = NULL;
  pthread_mutex_destroy(&m->lock);
}

static void head(page *p, const char *name, const char *type, const char *help)
{
  h_fmt(p, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* label -- a label value escaped as the format asks (\\, \", \n) */
static void label(page *p, const char *s)
{
  for (; *s; s++) {
    if (*s == '\\' || *s == '"')
      h_fmt(p, "\\%c", *s);
    else if (*s == '\n')
      h_raw(p, "\\n");
    else
      h_fmt(p, "%c", *s);
  }
}

static const char *role_name(console_role role)
{
  return role == CONSOLE_LEADER ? "leader" : role == CONSOLE_STANDBY ? "standby" : "starting";
}

/* sample -- a value as the format writes it (shortest round trip; NaN, +Inf) */
static void value(page *p, double v)
{
  if (isnan(v))
    h_raw(p, "NaN");
  else if (isinf(v))
    h_raw(p, v > 0 ? "+Inf" : "-Inf");
  else
    h_fmt(p, "%.17g", v);
}

/* the SQL of the job durations: per kind (both, even without jobs), the count at or under
 * each bucket, sum, count */
static void durations_sql(char *out, size_t cap)
{
  int n = snprintf(out, cap, "SELECT k.kind, coalesce(sum(d), 0), count(d)");
  for (int i = 0; i < NBUCKETS; i++)
    n += snprintf(out + n, cap - (size_t)n, ", count(d) FILTER (WHERE d <= %g)", BUCKETS[i]);
  snprintf(out + n, cap - (size_t)n,
           " FROM (VALUES ('promote'), ('refresh')) k(kind) LEFT JOIN (SELECT kind,"
           " extract(epoch FROM finished_at - started_at)::float8 AS d FROM mnemo.jobs"
           " WHERE finished_at IS NOT NULL AND started_at IS NOT NULL) x ON x.kind = k.kind"
           " GROUP BY k.kind ORDER BY k.kind");
}

static mn_status render(PGconn *db, int64_t max_languages, page *p, mn_error *err)
{
  PGresult *r = NULL;
  mn_status rc;
  char sql[2048];
  /* the queue by kind and state, zeros included */
  if ((rc = db_query(
           db,
           "SELECT k.kind, s.state, count(j.id) FROM (VALUES ('refresh'), ('promote')) k(kind)"
           " CROSS JOIN (VALUES ('queued'), ('running'), ('succeeded'), ('failed'),"
           " ('cancelled')) s(state) LEFT JOIN mnemo.jobs j ON j.kind = k.kind AND"
           " j.state = s.state GROUP BY 1, 2 ORDER BY 1, 2",
           0, NULL, &r, "metrics: jobs", err)) != MN_OK)
    return rc;
  head(p, "mnemo_jobs", "gauge", "Jobs by kind and state (the queue: queued and running).");
  for (int i = 0; i < PQntuples(r); i++)
    h_fmt(p, "mnemo_jobs{kind=\"%s\",state=\"%s\"} %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
          PQgetvalue(r, i, 2));
  PQclear(r);
  durations_sql(sql, sizeof sql);
  if ((rc = db_query(db, sql, 0, NULL, &r, "metrics: durations", err)) != MN_OK) return rc;
  head(p, "mnemo_job_duration_seconds", "histogram",
       "Wall time of finished jobs, from their start to their end.");
  for (int i = 0; i < PQntuples(r); i++) {
    const char *kind = PQgetvalue(r, i, 0);
    for (int b = 0; b < NBUCKETS; b++)
      h_fmt(p, "mnemo_job_duration_seconds_bucket{kind=\"%s\",le=\"%g\"} %s\n", kind, BUCKETS[b],
            PQgetvalue(r, i, 3 + b));
    h_fmt(p, "mnemo_job_duration_seconds_bucket{kind=\"%s\",le=\"+Inf\"} %s\n", kind,
          PQgetvalue(r, i, 2));
    h_fmt(p, "mnemo_job_duration_seconds_sum{kind=\"%s\"} ", kind);
    value(p, strtod(PQgetvalue(r, i, 1), NULL));
    h_fmt(p, "\nmnemo_job_duration_seconds_count{kind=\"%s\"} %s\n", kind, PQgetvalue(r, i, 2));
  }
  PQclear(r);
  if ((rc = db_query(db,
                     "SELECT (SELECT extract(epoch FROM max(finished_at))::float8 FROM mnemo.jobs"
                     "  WHERE kind = 'refresh' AND state = 'succeeded'),"
                     " (SELECT extract(epoch FROM max(at))::float8 FROM mnemo.promotions"
                     "  WHERE kind = 'promote'),"
                     " (SELECT count(*) FROM mnemo.outbox WHERE state = 'delivered'),"
                     " (SELECT coalesce(sum(attempts), 0) - count(*) FILTER (WHERE state ="
                     "  'delivered') FROM mnemo.outbox),"
                     " (SELECT count(*) FROM mnemo.outbox WHERE state = 'pending'),"
                     " (SELECT count(*) FROM mnemo.outbox WHERE state = 'dead'),"
                     " (SELECT count(*) FROM mnemo.languages)",
                     0, NULL, &r, "metrics: last times", err)) != MN_OK)
    return rc;
  static const struct {
    const char *name, *type, *help;
  } one[] = {
      {"mnemo_last_refresh_success_timestamp_seconds", "gauge",
       "When the last refresh job succeeded (seconds since the epoch; absent: never)."},
      {"mnemo_last_promotion_timestamp_seconds", "gauge",
       "When a candidate was last promoted (seconds since the epoch; absent: never)."},
      {"mnemo_webhook_deliveries_total", "counter", "Webhook events delivered."},
      {"mnemo_webhook_failures_total", "counter", "Webhook delivery attempts that failed."},
      {"mnemo_webhooks_pending", "gauge", "Webhook events waiting for a delivery."},
      {"mnemo_webhooks_dead", "gauge", "Webhook events given up after every attempt."},
      {"mnemo_languages", "gauge", "Languages registered."},
  };
  for (int k = 0; k < 7; k++) {
    if (PQgetisnull(r, 0, k)) continue;
    head(p, one[k].name, one[k].type, one[k].help);
    h_fmt(p, "%s ", one[k].name);
    value(p, strtod(PQgetvalue(r, 0, k), NULL));
    h_raw(p, "\n");
  }
  int64_t nlang = strtoll(PQgetvalue(r, 0, 6), NULL, 10);
  PQclear(r);
  if ((rc = db_query(db,
                     "SELECT s.status, count(r.id) FROM (VALUES ('new'), ('triaged'), ('accepted'),"
                     " ('rejected'), ('fixed')) s(status) LEFT JOIN mnemo.reports r ON r.status ="
                     " s.status GROUP BY 1 ORDER BY 1",
                     0, NULL, &r, "metrics: reports", err)) != MN_OK)
    return rc;
  head(p, "mnemo_reports", "gauge", "User reports by status.");
  for (int i = 0; i < PQntuples(r); i++)
    h_fmt(p, "mnemo_reports{status=\"%s\"} %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
  PQclear(r);
  if (nlang == 0 || nlang > max_languages) return MN_OK;
  if ((rc = db_query(db,
                     "SELECT l.code, n.bpb, coalesce(s.new + s.triaged + s.accepted, 0)"
                     " FROM mnemo.languages l LEFT JOIN (SELECT n.lang, n.bpb FROM"
                     " mnemo.checkpoint_numbers n JOIN mnemo.checkpoints c ON c.id = n.ckpt_id"
                     " WHERE c.state = 'production') n ON n.lang = l.code"
                     " LEFT JOIN mnemo.report_summary s ON s.lang = l.code ORDER BY l.code",
                     0, NULL, &r, "metrics: languages", err)) != MN_OK)
    return rc;
  head(p, "mnemo_language_heldout_bpb", "gauge",
       "Production's held-out bits per byte of each language, as its verdict measured them.");
  for (int i = 0; i < PQntuples(r); i++) {
    if (PQgetisnull(r, i, 1)) continue;
    h_raw(p, "mnemo_language_heldout_bpb{lang=\"");
    label(p, PQgetvalue(r, i, 0));
    h_raw(p, "\"} ");
    value(p, strtod(PQgetvalue(r, i, 1), NULL));
    h_raw(p, "\n");
  }
  head(p, "mnemo_language_open_reports", "gauge",
       "Reports of each language still open (new, triaged or accepted).");
  for (int i = 0; i < PQntuples(r); i++) {
    h_raw(p, "mnemo_language_open_reports{lang=\"");
    label(p, PQgetvalue(r, i, 0));
    h_fmt(p, "\"} %s\n", PQgetvalue(r, i, 2));
  }
  PQclear(r);
  return MN_OK;
}

/* lock -- the connection's lock, waited for at most 10 s (a scrape stuck on a hung database
 * must not pile up every later one behind it) */
static bool lock(metrics_src *m)
{
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 10;
  return pthread_mutex_timedlock(&m->lock, &until) == 0;
}

void metrics_render(metrics_src *m, console_role role, req *r)
{
  page body;
  h_init(&body);
  mn_error err = {0};
  bool up = false;
  if (lock(m)) {
    PGconn *db = conn(m, &err);
    up = db && render(db, m->max_languages, &body, &err) == MN_OK;
    pthread_mutex_unlock(&m->lock);
  } else {
    mn_error_set(&err, MN_ERR_DB, "the previous scrape is still waiting for the database");
  }
  if (!up) mn_log_error("console: /metrics could not read the database", &err);
  page *p = &r->out;
  head(p, "mnemo_leader", "gauge", "1 when this mnemod leads (runs jobs), 0 when it waits.");
  h_fmt(p, "mnemo_leader %d\n", role == CONSOLE_LEADER);
  head(p, "mnemo_database_up", "gauge", "1 when this scrape could read the database.");
  h_fmt(p, "mnemo_database_up %d\n", up);
  if (up) h_raw(p, body.b.data ? body.b.data : "");
  if (body.bad) p->bad = true;
  h_fini(&body);
  r->status = 200;
  r->type = "text/plain; version=0.0.4; charset=utf-8";
}

void metrics_ready(metrics_src *m, console_role role, req *r)
{
  mn_error err = {0};
  migration_row *rows = NULL;
  size_t n = 0;
  mn_status rc = MN_ERR_DB;
  if (lock(m)) {
    PGconn *db = conn(m, &err);
    rc = db ? migrate_status(db, mn_migrations, mn_migrations_count, &rows, &n, &err) : MN_ERR_DB;
    pthread_mutex_unlock(&m->lock);
  } else {
    mn_error_set(&err, MN_ERR_DB, "another check is still waiting for the database");
  }
  r->type = "text/plain; charset=utf-8";
  r->status = 503;
  if (rc != MN_OK) { /* the details (users, hosts) go to the log, not to anyone who asks */
    mn_log_error("console: /readyz: the database does not answer", &err);
    h_raw(&r->out, "not ready: the database does not answer (mnemod's log says why)\n");
    return;
  }
  size_t pending = 0, other = 0;
  for (size_t i = 0; i < n; i++)
    if (rows[i].state == MIGRATION_PENDING)
      pending++;
    else if (rows[i].state != MIGRATION_APPLIED)
      other++;
  free(rows);
  if (pending || other) {
    h_fmt(&r->out,
          "not ready: %zu migration(s) pending, %zu changed or unknown: run mnemoctl "
          "migrate with this version\n",
          pending, other);
    return;
  }
  if (role == CONSOLE_STARTING) {
    h_raw(&r->out, "not ready: starting\n");
    return;
  }
  r->status = 200;
  h_fmt(&r->out, "ready: %s, database reachable, migrations current\n", role_name(role));
}
