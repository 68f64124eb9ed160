/*
 * console_pages.c -- the console's pages about the model: every language (worst first), a
 * language's history, the candidates, a candidate's verdict and the decision on it.
 *
 * Every query runs on the session's own connection, as the person logged in: what the
 * database refuses them is refused here (page_db_error), and an approval's by_user is their
 * login.  Numbers come from mnemo.checkpoint_numbers and mnemo.language_history
 * (migration 0008); a verdict is drawn from the JSON the guard wrote.
 */
#include "daemon/card.h"
#include "daemon/console_int.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

PGresult *page_query(req *r, const char *sql, int n, const char *const *p, const char *what)
{
  PGresult *res = NULL;
  mn_error err = {0};
  if (db_query(r->db, sql, n, p, &res, what, &err) != MN_OK) {
    page_db_error(r, what, &err);
    return NULL;
  }
  return res;
}

const char *cell(const PGresult *res, int row, int col)
{
  return PQgetvalue(res, row, col);
}

double cell_num(const PGresult *res, int row, int col)
{
  return PQgetisnull(res, row, col) ? NAN : strtod(PQgetvalue(res, row, col), NULL);
}

/* ---------------------------------------------------------------- languages */

typedef struct lang_row {
  const char *code, *name, *script;
  bool enabled;
  double bpb, gap, change, severity;
  long open;
  double *hist; /* into one array */
  size_t nhist;
} lang_row;

/* worst first: the widest parity gap (how far behind the best language it is), then the
 * largest bits per byte; languages without numbers last */
static int by_worst(const void *a, const void *b)
{
  const lang_row *x = a, *y = b;
  double gx = isnan(x->gap) ? -1 : x->gap, gy = isnan(y->gap) ? -1 : y->gap;
  if (gx != gy) return gx < gy ? 1 : -1;
  double bx = isnan(x->bpb) ? -1 : x->bpb, by = isnan(y->bpb) ? -1 : y->bpb;
  if (bx != by) return bx < by ? 1 : -1;
  return strcmp(x->code, y->code);
}

void page_languages(req *r)
{
  PGresult *L = page_query(
      r,
      "WITH cur AS (SELECT n.lang, n.bpb, n.bits_per_char FROM mnemo.checkpoint_numbers n"
      "   JOIN mnemo.checkpoints c ON c.id = n.ckpt_id WHERE c.state = 'production'),"
      " best AS (SELECT min(bits_per_char) AS b FROM cur WHERE bits_per_char > 0)"
      " SELECT l.code, l.name, l.script, l.enabled, cur.bpb,"
      "   cur.bits_per_char / best.b - 1,"
      "   coalesce(s.new + s.triaged + s.accepted, 0), coalesce(s.open_severity, 0)"
      "  FROM mnemo.languages l CROSS JOIN best LEFT JOIN cur ON cur.lang = l.code"
      "  LEFT JOIN mnemo.report_summary s ON s.lang = l.code ORDER BY l.code",
      0, NULL, "read the languages");
  if (!L) return;
  PGresult *H =
      page_query(r, "SELECT lang, bpb, change FROM mnemo.language_history ORDER BY lang, promotion",
                 0, NULL, "read the history");
  PGresult *W = H ? page_query(r,
                               "SELECT id FROM mnemo.checkpoints WHERE state = 'awaiting_approval'"
                               " ORDER BY id",
                               0, NULL, "read the candidates")
                  : NULL;
  int n = PQntuples(L), nh = H ? PQntuples(H) : 0;
  lang_row *rows = calloc((size_t)n + 1, sizeof *rows);
  double *hist = calloc((size_t)nh + 1, sizeof *hist);
  if (!H || !W || !rows || !hist) {
    if (H && W) page_message(r, 500, "Out of memory", "The page is too large to draw.");
    goto out;
  }
  for (int i = 0, h = 0; i < n; i++) {
    lang_row *x = &rows[i];
    x->code = cell(L, i, 0), x->name = cell(L, i, 1), x->script = cell(L, i, 2);
    x->enabled = cell(L, i, 3)[0] == 't';
    x->bpb = cell_num(L, i, 4), x->gap = cell_num(L, i, 5),
    x->open = strtol(cell(L, i, 6), NULL, 10);
    x->severity = cell_num(L, i, 7), x->change = NAN;
    /* both sorted by code: this language's history is the run at h */
    while (h < nh && strcmp(cell(H, h, 0), x->code) < 0)
      h++;
    x->hist = &hist[h];
    for (; h < nh && strcmp(cell(H, h, 0), x->code) == 0; h++) {
      hist[h] = cell_num(H, h, 1);
      if (!PQgetisnull(H, h, 2)) x->change = cell_num(H, h, 2);
      x->nhist++;
    }
  }
  qsort(rows, (size_t)n, sizeof *rows, by_worst);
  page *p = &r->out;
  h_top(p, "Languages", r->login, r->csrf);
  for (int i = 0; i < PQntuples(W); i++) {
    h_raw(p, "<p class=\"banner\">Candidate ");
    h_link(p, "/candidate/", cell(W, i, 0));
    h_raw(p, " awaits an operator's decision.</p>");
  }
  h_fmt(p,
        "<p>%d languages, worst first: the widest parity gap on parallel text (how many "
        "more bits a character than the best language), then bits per byte.  Numbers are "
        "production's, as its verdicts measured them.</p>",
        n);
  h_raw(p, "<table class=\"langs\"><thead><tr><th>Language</th><th>Script</th>"
           "<th>Bits per byte</th><th>History</th><th>Last change</th><th>Parity gap</th>"
           "<th>Open reports</th><th>Severity</th></tr></thead><tbody>");
  for (int i = 0; i < n; i++) {
    const lang_row *x = &rows[i];
    h_raw(p, "<tr><td>");
    h_link(p, "/lang/", x->code);
    h_raw(p, " ");
    h_text(p, x->name);
    h_raw(p, x->enabled ? "" : " (disabled)");
    h_raw(p, "</td><td>");
    h_text(p, x->script);
    h_raw(p, "</td><td class=\"n\">");
    h_num(p, x->bpb, 4);
    h_raw(p, "</td><td>");
    svg_sparkline(p, x->hist, x->nhist);
    h_fmt(p, "</td><td class=\"n%s\">", x->change > 0 ? " fail" : "");
    h_pct(p, x->change);
    h_raw(p, "</td><td class=\"n\">");
    h_pct(p, x->gap);
    h_fmt(p, "</td><td class=\"n\">%ld</td><td class=\"n\">", x->open);
    h_num(p, x->severity, 2);
    h_raw(p, "</td></tr>\n");
  }
  h_raw(p, "</tbody></table>");
  h_bottom(p);
out:
  free(rows);
  free(hist);
  PQclear(L);
  PQclear(H);
  PQclear(W);
}

/* ---------------------------------------------------------------- a language */

static void report_rows(page *p, const PGresult *R)
{
  for (int i = 0; i < PQntuples(R); i++) {
    h_raw(p, "<tr><td class=\"n\">");
    h_text(p, cell(R, i, 0));
    h_raw(p, "</td><td>");
    h_text(p, cell(R, i, 1));
    h_raw(p, "</td><td class=\"n\">");
    h_num(p, cell_num(R, i, 2), 2);
    h_raw(p, "</td><td>");
    h_text(p, cell(R, i, 3));
    h_raw(p, "</td><td class=\"text\">");
    h_text(p, cell(R, i, 4));
    h_raw(p, "</td></tr>\n");
  }
}

void page_language(req *r, const char *code)
{
  const char *pr[] = {code};
  PGresult *L = page_query(r, "SELECT name, script, enabled FROM mnemo.languages WHERE code = $1",
                           1, pr, "read the language"),
           *H = NULL, *P = NULL, *R = NULL, *D = NULL;
  const char **labels = NULL;
  double *v = NULL;
  if (!L) return;
  if (PQntuples(L) != 1) {
    page_message(r, 404, "No such language", "The database has no language with this code.");
    goto out;
  }
  if (!(H = page_query(
            r,
            "SELECT promotion, kind, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),"
            " ckpt_id, bpb, change, low, high FROM mnemo.language_history WHERE lang = $1"
            " ORDER BY promotion",
            1, pr, "read the history")) ||
      !(P = page_query(
            r,
            "SELECT id, status, CASE WHEN status = 'fixed' THEN fixed_bits END, coalesce("
            "fixed_by::text, ''), left(text, 300) FROM mnemo.reports WHERE probe_lang = $1 AND"
            " status IN ('accepted', 'fixed') AND coalesce(group_id, id) = id ORDER BY id DESC"
            " LIMIT 100",
            1, pr, "read the probes")) ||
      !(R = page_query(r,
                       "SELECT id, status, severity, coalesce(detected_lang, ''), left(text, 300)"
                       " FROM mnemo.reports WHERE claimed_lang = $1 ORDER BY id DESC LIMIT 100",
                       1, pr, "read the reports")) ||
      !(D = page_query(r,
                       "SELECT s.name, d.split, count(*), sum(d.bytes),"
                       " count(*) FILTER (WHERE d.consumed_by IS NOT NULL) FROM mnemo.documents d"
                       " JOIN mnemo.sources s ON s.id = d.source_id WHERE d.lang = $1"
                       " GROUP BY s.name, d.split ORDER BY s.name, d.split",
                       1, pr, "read the data")))
    goto out;
  int n = PQntuples(H);
  labels = calloc((size_t)n + 1, sizeof *labels);
  v = calloc((size_t)n + 1, sizeof *v);
  if (!labels || !v) {
    page_message(r, 500, "Out of memory", "The page is too large to draw.");
    goto out;
  }
  for (int i = 0; i < n; i++)
    labels[i] = cell(H, i, 2), v[i] = cell_num(H, i, 4);
  page *p = &r->out;
  char title[600]; /* a name of up to 512 bytes whole: never cut inside a character */
  snprintf(title, sizeof title, "%s · %.512s", code, cell(L, 0, 0));
  h_top(p, title, r->login, r->csrf);
  h_raw(p, "<p>Script ");
  h_text(p, cell(L, 0, 1));
  h_raw(p, cell(L, 0, 2)[0] == 't' ? ", enabled." : ", disabled.");
  h_raw(p, "</p><h2>Production's bits per byte across promotions</h2>");
  svg_history(p, v, labels, (size_t)n, "bits per byte across promotions");
  h_raw(p, "<table><thead><tr><th>Promotion</th><th>When (UTC)</th><th>Kind</th>"
           "<th>Checkpoint</th><th>Bits per byte</th><th>Change</th><th>Interval</th></tr>"
           "</thead><tbody>");
  for (int i = n - 1; i >= 0; i--) {
    h_raw(p, "<tr><td class=\"n\">");
    h_text(p, cell(H, i, 0));
    h_raw(p, "</td><td>");
    h_text(p, cell(H, i, 2));
    h_raw(p, "</td><td>");
    h_text(p, cell(H, i, 1));
    h_raw(p, "</td><td>");
    h_link(p, "/candidate/", cell(H, i, 3));
    h_raw(p, "</td><td class=\"n\">");
    h_num(p, cell_num(H, i, 4), 4);
    h_raw(p, "</td><td class=\"n\">");
    h_pct(p, cell_num(H, i, 5));
    h_raw(p, "</td><td class=\"n\">");
    if (!PQgetisnull(H, i, 6)) {
      h_raw(p, "[");
      h_pct(p, cell_num(H, i, 6));
      h_raw(p, ", ");
      h_pct(p, cell_num(H, i, 7));
      h_raw(p, "]");
    }
    h_raw(p, "</td></tr>\n");
  }
  h_raw(p, "</tbody></table><h2>Probes (accepted reports every candidate must pass)</h2>"
           "<table><thead><tr><th>Report</th><th>Status</th><th>Fixed at (bits)</th>"
           "<th>Fixed by</th><th>Text</th></tr></thead><tbody>");
  report_rows(p, P);
  h_raw(p, "</tbody></table><h2>Reports</h2><table><thead><tr><th>Report</th><th>Status</th>"
           "<th>Severity</th><th>Detected</th><th>Text</th></tr></thead><tbody>");
  report_rows(p, R);
  h_raw(p, "</tbody></table><h2>Data by source</h2><table><thead><tr><th>Source</th>"
           "<th>Split</th><th>Documents</th><th>Bytes</th><th>Absorbed</th></tr></thead><tbody>");
  for (int i = 0; i < PQntuples(D); i++) {
    h_raw(p, "<tr><td>");
    h_text(p, cell(D, i, 0));
    h_raw(p, "</td><td>");
    h_text(p, cell(D, i, 1));
    for (int k = 2; k < 5; k++) {
      h_raw(p, "</td><td class=\"n\">");
      h_text(p, cell(D, i, k));
    }
    h_raw(p, "</td></tr>\n");
  }
  h_raw(p, "</tbody></table>");
  h_bottom(p);
out:
  free(labels);
  free(v);
  PQclear(L), PQclear(H), PQclear(P), PQclear(R), PQclear(D);
}
