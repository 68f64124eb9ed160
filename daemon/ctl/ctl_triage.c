/*
 * ctl_triage.c -- mnemoctl's triage of user reports: the queue, one report whole, and the
 * operator's decisions (accept, reject).  Checkpoint approval keeps its own approve/reject.
 *
 * The decisions are functions of migration 0005 that only mnemo_operator may execute; they
 * act on a report's whole group of near-duplicates.  docs/triage.md.
 *
 * Everything a reporter or an operator wrote (texts, notes, names) and everything the
 * worker derived from it reaches the terminal through ctl_text / ctl_put_text (ctl_int.h).
 */
#include "daemon/ctl/ctl_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the queue: groups with a report waiting for a decision, by priority = the group's worst
 * severity times 1 + ln(reports in the group); no severity (no model to score with) last */
#define QUEUE_SQL                                                                                  \
  "WITH g AS (SELECT coalesce(group_id, id) AS grp, count(*) AS size,"                             \
  "  max(severity) FILTER (WHERE status = 'triaged') AS severity,"                                 \
  "  bool_or(status = 'triaged') AS waiting FROM mnemo.reports"                                    \
  "  WHERE status IN ('triaged', 'accepted') GROUP BY 1)"                                          \
  " SELECT r.id AS report, r.claimed_lang AS lang, r.triage->>'detected' AS detected,"             \
  "  (r.triage->>'confidence')::float8 AS confidence, (r.triage->>'mixed')::boolean AS mixed,"     \
  "  g.severity, g.size AS reports, g.severity * (1 + ln(g.size)) AS priority, r.text,"            \
  "  r.created_at FROM g JOIN mnemo.reports r ON r.id = g.grp WHERE g.waiting"                     \
  "  AND ($1::text IS NULL OR r.claimed_lang = $1)"                                                \
  " ORDER BY g.severity * (1 + ln(g.size)) DESC NULLS LAST, r.id LIMIT $2::bigint"

static int cmd_triage(ctl *c, int argc, char **argv)
{
  mn_error err = {0};
  PGconn *conn = NULL;
  PGresult *res = NULL;
  int64_t limit = 50;
  if (argc != 0)
    return ctl_usage("triage takes no arguments (got \"%s\"); see \"mnemoctl triage --help\"",
                     argv[0]);
  if (c->a.limit && (!mn_parse_i64(c->a.limit, &limit) || limit < 1))
    return ctl_usage("--limit wants a positive number, got \"%s\"", c->a.limit);
  char lim[32];
  snprintf(lim, sizeof lim, "%lld", (long long)limit);
  const char *p[] = {c->a.lang, lim};
  if (ctl_connect(c, &conn, &err) != MN_OK ||
      db_query(conn, QUEUE_SQL, 2, p, &res, "could not read the triage queue", &err) != MN_OK)
    return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  json_t *arr = ctl_json_rows(res);
  if (c->json) {
    ctl_print_json(arr);
    return ctl_done(conn, res, &err, MN_EXIT_OK);
  }
  printf("%-7s %-5s %-12s %8s %7s  %s\n", "report", "lang", "detected", "severity", "reports",
         "text");
  size_t i;
  json_t *o;
  json_array_foreach(arr, i, o)
  {
    const char *lang = json_string_value(json_object_get(o, "lang"));
    const char *det = json_string_value(json_object_get(o, "detected"));
    char d[32], sev[16];
    /* a language other than the claimed one is marked for the person triaging */
    snprintf(d, sizeof d, "%s%s%s", det ? ctl_text(det, 8) : "-",
             json_is_true(json_object_get(o, "mixed")) ? "+mixed" : "",
             det && lang && strcmp(det, lang) != 0 ? " (!)" : "");
    json_t *s = json_object_get(o, "severity");
    snprintf(sev, sizeof sev, json_is_number(s) ? "%.2f" : "-", json_number_value(s));
    const char *t = json_string_value(json_object_get(o, "text"));
    printf("%-7lld %s %s %8s %7lld  %s\n",
           (long long)json_integer_value(json_object_get(o, "report")), ctl_cell(lang, 5),
           ctl_cell(d, 12), sev, (long long)json_integer_value(json_object_get(o, "reports")),
           ctl_text(t ? t : "", 50));
  }
  printf("%zu group(s) waiting\n", json_array_size(arr));
  json_decref(arr);
  return ctl_done(conn, res, &err, MN_EXIT_OK);
}

static int cmd_triage_show(ctl *c, int argc, char **argv)
{
  mn_error err = {0};
  PGconn *conn = NULL;
  PGresult *res = NULL;
  int64_t id;
  if (argc != 1 || !mn_parse_i64(argv[0], &id) || id < 1)
    return ctl_usage("triage show takes one REPORT id");
  const char *p[] = {argv[0]};
  if (ctl_connect(c, &conn, &err) != MN_OK ||
      db_query(conn,
               "SELECT r.id AS report, r.status, mnemo.report_status(r.id) AS reporter_status,"
               " r.claimed_lang, r.probe_lang, r.detected_lang, r.severity, r.triage,"
               " coalesce(r.group_id, r.id) AS \"group\", (SELECT json_agg(m.id ORDER BY m.id)"
               "  FROM mnemo.reports m WHERE coalesce(m.group_id, m.id) ="
               "  coalesce(r.group_id, r.id)) AS group_reports, r.text, r.expected_text,"
               " r.context, r.reporter, r.created_at, r.triaged_at, r.decided_by, r.decided_at,"
               " nullif(r.notes, '') AS notes, r.fixed_by, r.fixed_bits"
               " FROM mnemo.reports r WHERE r.id = $1::bigint",
               1, p, &res, "could not read the report", &err) != MN_OK)
    return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  if (PQntuples(res) != 1) {
    mn_error_set(&err, MN_ERR_INPUT, "no report %s", argv[0]);
    return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  }
  json_t *o = ctl_json_row(res, 0);
  if (c->json) {
    ctl_print_json(o);
    return ctl_done(conn, res, &err, MN_EXIT_OK);
  }
#define RAW(k) json_string_value(json_object_get(o, k))
#define S(k)   ctl_text(RAW(k), 0) /* "-" when absent */
  json_t *tr = json_object_get(o, "triage");
  printf("report %s: %s (the reporter sees \"%s\")\n", argv[0], S("status"), S("reporter_status"));
  printf("language: claimed %s", S("claimed_lang"));
  if (json_is_object(tr)) {
    const char *det = json_string_value(json_object_get(tr, "detected"));
    printf(", detected %s (confidence %.2f)%s", ctl_text(det, 0),
           json_number_value(json_object_get(tr, "confidence")),
           det && RAW("claimed_lang") && strcmp(det, RAW("claimed_lang")) != 0
               ? "  <- not the claimed language"
               : "");
    size_t i;
    json_t *sp;
    if (json_is_true(json_object_get(tr, "mixed"))) {
      printf("\ncode-switched:");
      json_array_foreach(json_object_get(tr, "spans"), i, sp)
          printf(" %s[%lld,%lld)", ctl_text(json_string_value(json_object_get(sp, "lang")), 0),
                 (long long)json_integer_value(json_object_get(sp, "start")),
                 (long long)json_integer_value(json_object_get(sp, "end")));
    }
  }
  printf("\n");
  if (json_is_object(tr) && json_is_number(json_object_get(tr, "severity")))
    printf("severity: %.2f (text %.3f bits/byte%s, the language's typical %.3f)\n",
           json_number_value(json_object_get(tr, "severity")),
           json_number_value(json_object_get(tr, "bpb_text")),
           json_is_number(json_object_get(tr, "bpb_expected")) ? ", expected text" : "",
           json_number_value(json_object_get(tr, "typical_bpb")));
  else if (json_is_object(tr) && json_is_string(json_object_get(tr, "no_severity")))
    printf("severity: none (%s)\n",
           ctl_text(json_string_value(json_object_get(tr, "no_severity")), 0));
  printf("group: %lld, %zu report(s)\n", (long long)json_integer_value(json_object_get(o, "group")),
         json_array_size(json_object_get(o, "group_reports")));
  printf("reporter: %s at %s\n", S("reporter"), S("created_at"));
  if (json_is_string(json_object_get(o, "decided_by")))
    printf("decided by %s at %s\n", S("decided_by"), S("decided_at"));
  if (json_is_string(json_object_get(o, "probe_lang"))) printf("probe of: %s\n", S("probe_lang"));
  if (json_is_integer(json_object_get(o, "fixed_by")))
    printf("fixed by checkpoint %lld (%.1f bits)\n",
           (long long)json_integer_value(json_object_get(o, "fixed_by")),
           json_number_value(json_object_get(o, "fixed_bits")));
  if (RAW("notes") && *RAW("notes")) printf("notes: %s\n", S("notes"));
  /* the texts whole, every line indented: a text cannot forge the lines around it */
  printf("\ntext:\n  ");
  ctl_put_text(stdout, RAW("text") ? RAW("text") : "", "  ");
  printf("\n");
  if (RAW("expected_text")) {
    printf("\nexpected:\n  ");
    ctl_put_text(stdout, RAW("expected_text"), "  ");
    printf("\n");
  }
#undef S
#undef RAW
  json_decref(o);
  return ctl_done(conn, res, &err, MN_EXIT_OK);
}

static int cmd_triage_accept(ctl *c, int argc, char **argv)
{
  mn_error err = {0};
  PGconn *conn = NULL;
  PGresult *res = NULL;
  int64_t id;
  if (argc != 1 || !mn_parse_i64(argv[0], &id) || id < 1)
    return ctl_usage("triage accept takes one REPORT id");
  const char *p[] = {argv[0], c->a.lang, c->a.note ? c->a.note : ""};
  char what[64];
  snprintf(what, sizeof what, "could not accept report %s", argv[0]);
  /* two statements: one does not see what its own function changed */
  if (ctl_connect(c, &conn, &err) != MN_OK ||
      db_query(conn, "SELECT mnemo.triage_accept($1::bigint, $2, $3)", 3, p, &res, what, &err) !=
          MN_OK)
    return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  char n[32];
  snprintf(n, sizeof n, "%s", PQgetvalue(res, 0, 0));
  PQclear(res);
  res = NULL;
  if (db_query(conn, "SELECT $2::text, probe_lang FROM mnemo.reports WHERE id = $1::bigint", 2,
               (const char *const[]){argv[0], n}, &res, what, &err) != MN_OK)
    return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  if (c->json)
    ctl_print_json(json_pack("{s:I, s:s, s:I}", "report", (json_int_t)id, "probe_lang",
                             PQgetvalue(res, 0, 1), "accepted",
                             (json_int_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10)));
  else
    printf("report %s accepted with its group (%s report(s)): a probe of %s's guard from the next "
           "refresh on, and %s is replayed more (triage.boost_per_report)\n",
           argv[0], PQgetvalue(res, 0, 0), ctl_text(PQgetvalue(res, 0, 1), 0),
           ctl_text(PQgetvalue(res, 0, 1), 0));
  return ctl_done(conn, res, &err, MN_EXIT_OK);
}

static int cmd_triage_reject(ctl *c, int argc, char **argv)
{
  mn_error err = {0};
  PGconn *conn = NULL;
  PGresult *res = NULL;
  int64_t id;
  if (argc != 1 || !mn_parse_i64(argv[0], &id) || id < 1)
    return ctl_usage("triage reject takes one REPORT id");
  const char *p[] = {argv[0], c->a.note};
  char what[64];
  snprintf(what, sizeof what, "could not reject report %s", argv[0]);
  if (ctl_connect(c, &conn, &err) != MN_OK ||
      db_query(conn, "SELECT mnemo.triage_reject($1::bigint, $2)", 2, p, &res, what, &err) != MN_OK)
    return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  if (c->json)
    ctl_print_json(json_pack("{s:I, s:I}", "report", (json_int_t)id, "rejected",
                             (json_int_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10)));
  else
    printf("report %s rejected with its group (%s report(s))\n", argv[0], PQgetvalue(res, 0, 0));
  return ctl_done(conn, res, &err, MN_EXIT_OK);
}

static const ctl_opt queue_opts[] = {CTL_ARG("lang", lang, "LANG", "only this claimed language"),
                                     CTL_ARG("limit", limit, "N", "at most N groups (default: 50)"),
                                     {0}};
static const ctl_opt accept_opts[] = {
    CTL_ARG("lang", lang, "LANG",
            "the language whose guard gets the probe (default: the claimed one)"),
    CTL_ARG("note", note, "NOTE", "why, kept with the decision"),
    {0}};
static const ctl_opt reject_opts[] = {
    CTL_NEED("note", note, "NOTE", "why, kept with the decision; the reporter sees it"), {0}};

const ctl_command ctl_triage_commands[] = {
    {"triage", NULL, cmd_triage, "", "The queue of reports to decide on.",
     "One row per group of near-duplicate reports with a report waiting for a decision:\n"
     "the claimed and detected language ((!) when they differ, +mixed when code-switched),\n"
     "the severity (the production model's bits per byte on the text over the language's\n"
     "typical; 1 is ordinary), the group's size and an excerpt.  Ordered by severity times\n"
     "1 + ln(size).\n",
     queue_opts},
    {"triage", "show", cmd_triage_show, "REPORT", "A report whole, with what triage found.",
     "Status (and what the reporter sees), languages, code-switched spans, severity, group,\n"
     "decisions and the full texts.\n",
     NULL},
    {"triage", "accept", cmd_triage_accept, "REPORT", "Accept a report's group (operators).",
     "The group's first report becomes a probe of LANG's guard (the claimed language by\n"
     "default): no refresh may make it worse, and a promotion that makes it clearly better\n"
     "marks the group fixed.  LANG's replay share is boosted in the next refreshes (decaying).\n",
     accept_opts},
    {"triage", "reject", cmd_triage_reject, "REPORT", "Reject a report's group (operators).",
     "Records why; the reporter sees \"rejected: NOTE\".\n", reject_opts},
};
const size_t ctl_triage_ncommands = sizeof ctl_triage_commands / sizeof ctl_triage_commands[0];
