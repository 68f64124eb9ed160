/*
 * console_views.c -- the console's pages about decisions and work: the candidates, one
 * candidate's verdict (each language's interval against its tolerance, failing first; the
 * rule that decided; the model card; the data it absorbed; who decided) with the approve
 * and reject form, the job queue with live progress and cancel, and report triage.
 *
 * Actions call the database's own functions (mnemo.approve, mnemo.reject,
 * mnemo.cancel_job, mnemo.triage_accept, mnemo.triage_reject) on the person's connection:
 * the console checks that a form is complete, the database whether they may.
 */
#include "daemon/card.h"
#include "daemon/console_int.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool blank(const char *s)
{
  for (; *s; s++)
    if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n') return false;
  return true;
}

/* ---------------------------------------------------------------- candidates */

void page_candidates(req *r)
{
  PGresult *C =
      page_query(r,
                 "SELECT c.id, c.state, coalesce(c.parent_id::text, ''), coalesce(c.job_id::text,"
                 " ''), to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),"
                 " (SELECT count(*) FILTER (WHERE v.outcome = 'pass') || '/' || count(*)"
                 "    FROM mnemo.verdicts v WHERE v.ckpt_id = c.id), c.reasons"
                 " FROM mnemo.checkpoints c ORDER BY c.id DESC LIMIT 200",
                 0, NULL, "read the checkpoints");
  if (!C) return;
  page *p = &r->out;
  h_top(p, "Candidates", r->login, r->csrf);
  h_raw(p, "<table><thead><tr><th>Checkpoint</th><th>State</th><th>Parent</th><th>Job</th>"
           "<th>Made (UTC)</th><th>Languages passed</th><th>Reasons</th></tr></thead><tbody>");
  for (int i = 0; i < PQntuples(C); i++) {
    h_raw(p, "<tr><td>");
    h_link(p, "/candidate/", cell(C, i, 0));
    h_raw(p, "</td>");
    h_cells(p, C, i, 1, 6);
    h_raw(p, "</tr>\n");
  }
  h_raw(p, "</tbody></table>");
  h_bottom(p);
  PQclear(C);
}

/* outcome_rank -- failing rows first: fail, insufficient, then pass */
static int outcome_rank(const json_t *row)
{
  const char *o = json_string_value(json_object_get(row, "outcome"));
  return !o ? 1 : strcmp(o, "pass") == 0 ? 2 : strcmp(o, "fail") == 0 ? 0 : 1;
}

static double upper(const json_t *row)
{
  const json_t *iv = json_object_get(row, "interval");
  return json_is_array(iv) ? json_number_value(json_array_get(iv, 1)) : NAN;
}

static int by_failing(const void *a, const void *b)
{
  const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
  int rx = outcome_rank(x), ry = outcome_rank(y);
  if (rx != ry) return rx - ry;
  double ux = upper(x), uy = upper(y);
  if (isnan(ux)) ux = -INFINITY;
  if (isnan(uy)) uy = -INFINITY;
  return ux < uy ? 1 : ux > uy ? -1 : 0;
}

static double jnum(const json_t *o, const char *k)
{
  const json_t *v = json_object_get(o, k);
  return json_is_number(v) ? json_number_value(v) : NAN;
}

static const char *jstr(const json_t *o, const char *k)
{
  const char *s = json_string_value(json_object_get(o, k));
  return s ? s : "";
}

/* verdict_section -- what decided, then each language against its tolerance */
static void verdict_section(page *p, const json_t *v)
{
  const json_t *langs = json_object_get(v, "languages"), *failing = json_object_get(v, "failing");
  size_t n = json_array_size(langs);
  json_t **rows = calloc(n + 1, sizeof *rows);
  if (!rows) {
    p->bad = true;
    return;
  }
  double span = 0.005;
  for (size_t i = 0; i < n; i++) {
    rows[i] = json_array_get(langs, i);
    const json_t *iv = json_object_get(rows[i], "interval");
    double lo = json_number_value(json_array_get(iv, 0)),
           hi = json_number_value(json_array_get(iv, 1));
    span = fmax(span, fmax(fabs(lo), fmax(fabs(hi), fabs(jnum(rows[i], "tolerance")))));
  }
  span *= 1.1;
  qsort(rows, n, sizeof *rows, by_failing);
  bool pass = json_is_true(json_object_get(v, "pass"));
  h_fmt(p, "<h2 class=\"%s\">Verdict: %s</h2>", pass ? "pass" : "fail",
        pass ? "every rule held" : "rejected by the guards");
  h_raw(p, "<p>The rule that decided: ");
  if (pass) {
    h_raw(p, "none failed — every language's upper bound within its tolerance, the parity gap "
             "within its limit, every probe within its own.");
  } else {
    h_raw(p, "<strong>");
    for (size_t i = 0; i < json_array_size(failing); i++) {
      h_raw(p, i ? ", " : "");
      h_text(p, json_string_value(json_array_get(failing, i)));
    }
    h_raw(p, "</strong> did not hold");
    if (n > 0 && outcome_rank(rows[0]) < 2) {
      h_raw(p, " — first: ");
      h_text(p, jstr(rows[0], "lang"));
      h_raw(p, ", rule “");
      h_text(p, jstr(rows[0], "rule"));
      h_raw(p, "”: ");
      h_text(p, jstr(rows[0], "reason"));
    }
    h_raw(p, ".");
  }
  h_fmt(p,
        "</p><table class=\"verdict\"><caption>Change in bits per byte: the dot, its "
        "interval the bar, on an axis from %+.1f%% to %+.1f%%, 0 at the grey line, the "
        "tolerance dashed.</caption>",
        -100 * span, 100 * span);
  h_raw(p, "<thead><tr><th>Language</th><th>Outcome</th><th>Items</th><th>Baseline</th>"
           "<th>Candidate</th><th>Change</th><th>Interval against tolerance</th><th>Rule</th>"
           "<th>Reason</th></tr></thead><tbody>");
  for (size_t i = 0; i < n; i++) {
    const json_t *row = rows[i], *iv = json_object_get(row, "interval");
    const char *o = jstr(row, "outcome");
    h_raw(p, "<tr><td>");
    h_link(p, "/lang/", jstr(row, "lang"));
    h_raw(p, "</td><td class=\"");
    h_text(p, o);
    h_raw(p, "\">");
    h_text(p, o);
    h_fmt(p, "</td><td class=\"n\">%lld</td><td class=\"n\">",
          (long long)json_integer_value(json_object_get(row, "items")));
    h_num(p, jnum(row, "baseline_bpb"), 4);
    h_raw(p, "</td><td class=\"n\">");
    h_num(p, jnum(row, "candidate_bpb"), 4);
    h_raw(p, "</td><td class=\"n\">");
    h_pct(p, jnum(row, "change"));
    h_raw(p, "</td><td>");
    double tol = json_is_true(json_object_get(row, "must_improve")) ? 0 : jnum(row, "tolerance");
    svg_interval(p, jnum(row, "change"),
                 json_is_array(iv) ? json_number_value(json_array_get(iv, 0)) : NAN, upper(row),
                 tol, span, strcmp(o, "pass") != 0);
    h_raw(p, "</td><td>");
    h_text(p, jstr(row, "rule"));
    h_raw(p, "</td><td>");
    h_text(p, jstr(row, "reason"));
    h_raw(p, "</td></tr>\n");
  }
  h_raw(p, "</tbody></table>");
  free(rows);
  const json_t *par = json_object_get(v, "parity");
  h_raw(p, "<h3>Parity gap</h3><p class=\"");
  h_text(p, jstr(par, "outcome"));
  h_raw(p, "\">");
  h_text(p, jstr(par, "reason"));
  h_raw(p, "</p>");
  const json_t *probes = json_object_get(v, "probes");
  if (json_array_size(probes) > 0) {
    h_raw(p, "<h3>Probes</h3><table><thead><tr><th>Probe</th><th>Language</th><th>Outcome</th>"
             "<th>Reason</th></tr></thead><tbody>");
    for (size_t i = 0; i < json_array_size(probes); i++) {
      const json_t *pr = json_array_get(probes, i);
      h_raw(p, "<tr><td>");
      h_text(p, jstr(pr, "id"));
      h_raw(p, "</td><td>");
      h_text(p, jstr(pr, "lang"));
      h_raw(p, "</td><td class=\"");
      h_text(p, jstr(pr, "outcome"));
      h_raw(p, "\">");
      h_text(p, jstr(pr, "outcome"));
      h_raw(p, "</td><td>");
      h_text(p, jstr(pr, "reason"));
      h_raw(p, "</td></tr>");
    }
    h_raw(p, "</tbody></table>");
  }
}

void page_candidate(req *r, int64_t id)
{
  char ids[32];
  snprintf(ids, sizeof ids, "%lld", (long long)id);
  const char *pr[] = {ids};
  PGresult *C = page_query(
               r,
               "SELECT state, coalesce(parent_id::text, '–'), coalesce(job_id::text, '–'),"
               " to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), reasons,"
               " coalesce(verdict::text, '') FROM mnemo.checkpoints WHERE id = $1::bigint",
               1, pr, "read the checkpoint"),
           *A = NULL, *D = NULL;
  json_t *verdict = NULL, *card = NULL;
  mn_buf md;
  mn_buf_init(&md, 8 << 20);
  if (!C) return;
  if (PQntuples(C) != 1) {
    page_message(r, 404, "No such checkpoint", "The database has no checkpoint with this id.");
    goto out;
  }
  if (!(A = page_query(
            r,
            "SELECT decision, by_user, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),"
            " note FROM mnemo.approvals WHERE ckpt_id = $1::bigint ORDER BY id",
            1, pr, "read the decisions")) ||
      !(D = page_query(
            r,
            "SELECT d.lang, s.name, count(*), sum(d.bytes) FROM mnemo.trained_on t"
            " JOIN mnemo.documents d ON d.id = t.doc_id JOIN mnemo.sources s ON s.id ="
            " d.source_id WHERE t.ckpt_id = $1::bigint GROUP BY d.lang, s.name ORDER BY 1, 2",
            1, pr, "read the data it absorbed")))
    goto out;
  mn_error err = {0};
  if (card_json(r->db, id, &card, &err) != MN_OK || card_markdown(card, &md, &err) != MN_OK) {
    page_db_error(r, "read the model card", &err);
    goto out;
  }
  const char *state = cell(C, 0, 0);
  page *p = &r->out;
  char title[64];
  snprintf(title, sizeof title, "Checkpoint %lld", (long long)id);
  h_top(p, title, r->login, r->csrf);
  h_raw(p, "<p>State <strong>");
  h_text(p, state);
  h_raw(p, "</strong>, parent ");
  h_text(p, cell(C, 0, 1));
  h_raw(p, ", made by job ");
  h_text(p, cell(C, 0, 2));
  h_raw(p, " at ");
  h_text(p, cell(C, 0, 3));
  h_raw(p, " UTC.");
  if (*cell(C, 0, 4)) {
    h_raw(p, " Reasons: ");
    h_text(p, cell(C, 0, 4));
  }
  h_raw(p, "</p>");
  h_raw(p, "<h2>Decisions</h2>");
  if (PQntuples(A) == 0) h_raw(p, "<p>No one has decided yet.</p>");
  for (int i = 0; i < PQntuples(A); i++) {
    h_raw(p, "<p class=\"decision\"><strong>");
    h_text(p, cell(A, i, 0));
    h_raw(p, "</strong> by <strong class=\"by\">");
    h_text(p, cell(A, i, 1));
    h_raw(p, "</strong> at ");
    h_text(p, cell(A, i, 2));
    h_raw(p, " UTC: “");
    h_text(p, cell(A, i, 3));
    h_raw(p, "”</p>");
  }
  if (strcmp(state, "awaiting_approval") == 0) {
    h_fmt(p, "<form class=\"decide\" method=\"post\" action=\"/candidate/%lld\">", (long long)id);
    h_csrf(p, r->csrf);
    h_raw(p, "<label>Reason (required, recorded with your login)<textarea name=\"note\" "
             "maxlength=\"4000\" required></textarea></label><p><label><input type=\"checkbox\" "
             "name=\"confirm\" "
             "value=\"yes\" required> I have read the verdict below and take this decision"
             "</label></p><button name=\"decision\" value=\"approve\">Approve</button> "
             "<button name=\"decision\" value=\"reject\">Reject</button></form>");
  }
  if (*cell(C, 0, 5) && (verdict = json_loads(cell(C, 0, 5), 0, NULL)) != NULL)
    verdict_section(p, verdict);
  else
    h_raw(p, "<p>No verdict yet.</p>");
  h_raw(p, "<h2>Data it was trained on (fresh documents)</h2><table><thead><tr><th>Language"
           "</th><th>Source</th><th>Documents</th><th>Bytes</th></tr></thead><tbody>");
  for (int i = 0; i < PQntuples(D); i++) {
    h_raw(p, "<tr>");
    h_cells(p, D, i, 0, 3);
    h_raw(p, "</tr>");
  }
  h_raw(p, "</tbody></table><h2>Model card</h2><pre class=\"card\">");
  h_text(p, md.data ? md.data : "");
  h_raw(p, "</pre>");
  h_bottom(p);
out:
  json_decref(verdict);
  json_decref(card);
  mn_buf_fini(&md);
  PQclear(C), PQclear(A), PQclear(D);
}

void act_decide(req *r, int64_t id)
{
  const form *f = r->f;
  bool approve = strcmp(f->decision, "approve") == 0;
  if (!approve && strcmp(f->decision, "reject") != 0) {
    page_message(r, 400, "Which decision?", "Choose Approve or Reject.");
    return;
  }
  if (blank(f->note)) {
    page_message(r, 400, "A reason is required",
                 "Say why: the reason is recorded with your login.");
    return;
  }
  if (strcmp(f->confirm, "yes") != 0) {
    page_message(r, 400, "Not confirmed",
                 "Tick the confirmation: a decision is not undone by a click.");
    return;
  }
  char ids[32];
  snprintf(ids, sizeof ids, "%lld", (long long)id);
  const char *pr[] = {ids, f->note};
  PGresult *res = page_query(
      r, approve ? "SELECT mnemo.approve($1::bigint, $2)" : "SELECT mnemo.reject($1::bigint, $2)",
      2, pr, approve ? "approve" : "reject");
  if (!res) return;
  PQclear(res);
  mn_log(MN_LOG_INFO, approve ? "console: approved" : "console: rejected",
         MN_KV_I("checkpoint", id), MN_KV_S("login", r->login));
  snprintf(r->location, sizeof r->location, "/candidate/%lld", (long long)id);
}

/* ---------------------------------------------------------------- jobs */

static void progress_text(page *p, const char *js)
{
  json_t *o = json_loads(js, 0, NULL);
  if (!json_is_object(o) || json_object_size(o) == 0) {
    json_decref(o);
    return;
  }
  const json_t *step = json_object_get(o, "step"), *steps = json_object_get(o, "steps");
  if (*jstr(o, "worker")) {
    h_text(p, jstr(o, "worker"));
    h_raw(p, json_is_integer(json_object_get(o, "step")) ? ": " : "");
  }
  if (json_is_integer(step)) h_fmt(p, "step %lld", (long long)json_integer_value(step));
  if (json_is_integer(steps) && json_integer_value(steps) > 0)
    h_fmt(p, " of %lld", (long long)json_integer_value(steps));
  if (!isnan(jnum(o, "loss"))) h_fmt(p, " · loss %.4f", jnum(o, "loss"));
  if (!isnan(jnum(o, "tokens_per_s"))) h_fmt(p, " · %.0f tokens/s", jnum(o, "tokens_per_s"));
  double eta = jnum(o, "eta_s");
  if (!isnan(eta) && eta > 0) {
    long left = lround(eta);
    h_fmt(p, " · about %ld min %02ld s left", left / 60, left % 60);
  }
  json_decref(o);
}

void page_jobs(req *r, bool fragment)
{
  PGresult *J =
      page_query(r,
                 "SELECT id, kind, CASE WHEN state = 'queued' AND attempt > 0 THEN 'retrying'"
                 " ELSE state END, attempt || '/' || max_attempts, step, progress::text,"
                 " reason, requested_by, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"
                 " HH24:MI:SS'), coalesce(ckpt_id::text, ''), coalesce(error, ''),"
                 " cancel_requested FROM mnemo.jobs ORDER BY (state IN ('queued', 'running'))"
                 " DESC, id DESC LIMIT 100",
                 0, NULL, "read the jobs");
  if (!J) return;
  page *p = &r->out;
  if (!fragment) {
    h_top(p, "Jobs", r->login, r->csrf);
    h_raw(p, "<p>Open jobs first; progress updates by itself every 2 s.</p>"
             "<div id=\"jobs\" data-live=\"/jobs?fragment=1\">");
  }
  h_raw(p, "<table><thead><tr><th>Job</th><th>Kind</th><th>State</th><th>Attempt</th>"
           "<th>Step</th><th>Progress</th><th>Reason</th><th>Asked by</th><th>Queued (UTC)</th>"
           "<th>Checkpoint</th><th></th></tr></thead><tbody>");
  for (int i = 0; i < PQntuples(J); i++) {
    const char *state = cell(J, i, 2);
    bool open = strcmp(state, "queued") == 0 || strcmp(state, "running") == 0 ||
                strcmp(state, "retrying") == 0;
    h_raw(p, "<tr>");
    h_cells(p, J, i, 0, 4);
    h_raw(p, "<td>");
    progress_text(p, cell(J, i, 5));
    h_raw(p, "</td>");
    h_cells(p, J, i, 6, 8);
    h_raw(p, "<td>");
    if (*cell(J, i, 9)) h_link(p, "/candidate/", cell(J, i, 9));
    h_raw(p, "</td><td>");
    if (open && cell(J, i, 11)[0] == 't') {
      h_raw(p, "cancelling…");
    } else if (open) {
      h_raw(p, "<form method=\"post\" action=\"/jobs/");
      h_text(p, cell(J, i, 0));
      h_raw(p, "/cancel\">");
      h_csrf(p, r->csrf);
      h_raw(p, "<button>Cancel</button></form>");
    }
    h_raw(p, "</td></tr>\n");
    if (*cell(J, i, 10)) { /* a failure's error in full; a finished job's last word plainly */
      bool failed = strcmp(state, "failed") == 0 || strcmp(state, "cancelled") == 0 || open;
      h_fmt(p, "<tr%s><td></td><td colspan=\"10\"><pre>", failed ? " class=\"error\"" : "");
      h_text(p, cell(J, i, 10));
      h_raw(p, "</pre></td></tr>\n");
    }
  }
  h_raw(p, "</tbody></table>");
  if (!fragment) {
    h_raw(p, "</div>");
    h_bottom(p);
  }
  PQclear(J);
}

void act_cancel(req *r, int64_t id)
{
  char ids[32];
  snprintf(ids, sizeof ids, "%lld", (long long)id);
  const char *pr[] = {ids};
  PGresult *res = page_query(r, "SELECT mnemo.cancel_job($1::bigint)", 1, pr, "cancel the job");
  if (!res) return;
  PQclear(res);
  mn_log(MN_LOG_INFO, "console: cancel asked", MN_KV_I("job", id), MN_KV_S("login", r->login));
  snprintf(r->location, sizeof r->location, "/jobs");
}

/* ---------------------------------------------------------------- reports */

void page_reports(req *r)
{
  PGresult *G =
      page_query(r,
                 "SELECT g.id, g.status, g.claimed_lang, coalesce(g.detected_lang, ''),"
                 " g.triage->'confidence', g.severity,"
                 " (SELECT count(*) FROM mnemo.reports m WHERE coalesce(m.group_id, m.id) = g.id),"
                 " g.text, coalesce(g.expected_text, ''), g.notes, coalesce(g.decided_by, ''),"
                 " to_char(g.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')"
                 " FROM mnemo.reports g WHERE coalesce(g.group_id, g.id) = g.id"
                 " ORDER BY (g.status IN ('new', 'triaged')) DESC, g.severity DESC NULLS LAST,"
                 " g.id DESC LIMIT 200",
                 0, NULL, "read the reports");
  if (!G) return;
  page *p = &r->out;
  h_top(p, "Reports", r->login, r->csrf);
  h_raw(p, "<p>One row a group (near-duplicates of one problem); undecided first, most "
           "severe first.  Accepting makes the group's first report a probe of its language's "
           "guard.</p><table class=\"reports\"><thead><tr><th>Group</th><th>Status</th>"
           "<th>Claimed</th><th>Detected (confidence)</th><th>Severity</th><th>Reports</th>"
           "<th>Text</th><th>Expected</th><th>Decision</th></tr></thead><tbody>");
  for (int i = 0; i < PQntuples(G); i++) {
    const char *status = cell(G, i, 1);
    h_raw(p, "<tr>");
    h_cells(p, G, i, 0, 2);
    h_raw(p, "<td>");
    h_text(p, cell(G, i, 3));
    if (!PQgetisnull(G, i, 4)) {
      h_raw(p, " (");
      h_num(p, cell_num(G, i, 4), 2);
      h_raw(p, ")");
    }
    h_raw(p, "</td><td class=\"n\">");
    h_num(p, cell_num(G, i, 5), 2);
    h_raw(p, "</td><td class=\"n\">");
    h_text(p, cell(G, i, 6));
    h_raw(p, "</td><td class=\"text\">");
    h_text(p, cell(G, i, 7));
    h_raw(p, "</td><td class=\"text\">");
    h_text(p, cell(G, i, 8));
    h_raw(p, "</td><td>");
    bool triaged = strcmp(status, "triaged") == 0;
    if (triaged || strcmp(status, "new") == 0) { /* a new one is not triaged: reject only */
      h_raw(p, "<form method=\"post\" action=\"/reports/");
      h_text(p, cell(G, i, 0));
      h_raw(p, "\">");
      h_csrf(p, r->csrf);
      h_raw(p, "<input name=\"note\" maxlength=\"4000\" placeholder=\"why (required to "
               "reject)\"> ");
      if (triaged)
        h_raw(p, "<input name=\"lang\" size=\"4\" maxlength=\"8\" placeholder=\"lang\" "
                 "title=\"the language whose guard the probe joins (empty: the claimed one)\"> "
                 "<button name=\"decision\" value=\"accept\">Accept</button> ");
      h_raw(p, "<button name=\"decision\" value=\"reject\">Reject</button></form>");
    } else {
      h_text(p, cell(G, i, 10));
      if (*cell(G, i, 9)) {
        h_raw(p, ": ");
        h_text(p, cell(G, i, 9));
      }
    }
    h_raw(p, "</td></tr>\n");
  }
  h_raw(p, "</tbody></table>");
  h_bottom(p);
  PQclear(G);
}

void act_report(req *r, int64_t id)
{
  const form *f = r->f;
  bool accept = strcmp(f->decision, "accept") == 0;
  if (!accept && strcmp(f->decision, "reject") != 0) {
    page_message(r, 400, "Which decision?", "Choose Accept or Reject.");
    return;
  }
  if (!accept && blank(f->note)) {
    page_message(r, 400, "A reason is required", "Say why the report is rejected.");
    return;
  }
  char ids[32];
  snprintf(ids, sizeof ids, "%lld", (long long)id);
  const char *pr[] = {ids, accept ? (*f->lang ? f->lang : NULL) : f->note, f->note};
  PGresult *res =
      page_query(r,
                 accept ? "SELECT mnemo.triage_accept($1::bigint, $2, $3)"
                        : "SELECT mnemo.triage_reject($1::bigint, $2)",
                 accept ? 3 : 2, pr, accept ? "accept the report" : "reject the report");
  if (!res) return;
  PQclear(res);
  mn_log(MN_LOG_INFO, accept ? "console: report accepted" : "console: report rejected",
         MN_KV_I("report", id), MN_KV_S("login", r->login));
  snprintf(r->location, sizeof r->location, "/reports");
}
