/*
 * console_html.c -- writing the console's HTML: escaping, numbers, the frame of a page and
 * its charts, drawn as inline SVG (no script, nothing fetched from elsewhere).
 *
 * Everything that came from a person or the database goes through h_text; h_raw is for
 * the console's own markup only.
 */
#include "daemon/console_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PAGE_MAX = 64 << 20 };

void h_init(page *p)
{
  mn_buf_init(&p->b, PAGE_MAX);
  p->bad = false;
}

void h_fini(page *p)
{
  mn_buf_fini(&p->b);
}

static void put(page *p, const char *s, size_t n)
{
  mn_error err = {0};
  if (!p->bad && mn_buf_append(&p->b, s, n, &err) != MN_OK) p->bad = true;
}

void h_raw(page *p, const char *s)
{
  put(p, s, strlen(s));
}

void h_fmt(page *p, const char *fmt, ...)
{
  char small[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) {
    p->bad = true;
  } else if ((size_t)n < sizeof small) {
    put(p, small, (size_t)n);
  } else {
    char *big = malloc((size_t)n + 1);
    if (!big) {
      p->bad = true;
      return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    put(p, big, (size_t)n);
    free(big);
  }
}

void h_text(page *p, const char *s)
{
  const char *run = s;
  for (; s && *s; s++) {
    const char *e = NULL;
    switch (*s) {
    case '&': e = "&amp;"; break;
    case '<': e = "&lt;"; break;
    case '>': e = "&gt;"; break;
    case '"': e = "&quot;"; break;
    case '\'': e = "&#39;"; break;
    default: continue;
    }
    put(p, run, (size_t)(s - run));
    h_raw(p, e);
    run = s + 1;
  }
  if (s) put(p, run, (size_t)(s - run));
}

void h_num(page *p, double v, int digits)
{
  if (isnan(v))
    h_raw(p, "–");
  else
    h_fmt(p, "%.*f", digits, v);
}

void h_pct(page *p, double v)
{
  if (isnan(v))
    h_raw(p, "–");
  else /* a change under a tenth of a percent keeps its first digits */
    h_fmt(p, fabs(v) < 0.001 && v != 0 ? "%+.3f%%" : "%+.2f%%", 100 * v);
}

void h_link(page *p, const char *prefix, const char *text)
{
  h_raw(p, "<a href=\"");
  h_raw(p, prefix);
  h_text(p, text);
  h_raw(p, "\">");
  h_text(p, text);
  h_raw(p, "</a>");
}

void h_cells(page *p, const PGresult *r, int i, int from, int to)
{
  for (int k = from; k <= to; k++) {
    h_raw(p, "<td>");
    h_text(p, PQgetvalue(r, i, k));
    h_raw(p, "</td>");
  }
}

void h_csrf(page *p, const char *csrf)
{
  h_raw(p, "<input type=\"hidden\" name=\"csrf\" value=\"");
  if (strcmp(csrf, CSRF_SLOT) == 0)
    h_raw(p, CSRF_SLOT); /* filled in per answer */
  else
    h_text(p, csrf);
  h_raw(p, "\">");
}

void h_top(page *p, const char *title, const char *login, const char *csrf)
{
  h_raw(p, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
           "<link rel=\"stylesheet\" href=\"/static/console.css\">"
           "<script src=\"/static/console.js\" defer></script><title>");
  h_text(p, title);
  h_raw(p, " · mnemo</title></head><body><header><a class=\"brand\" href=\"/\">mnemo</a>");
  if (csrf) {
    h_raw(p, "<nav><a href=\"/\">Languages</a><a href=\"/candidates\">Candidates</a>"
             "<a href=\"/jobs\">Jobs</a><a href=\"/reports\">Reports</a></nav>"
             "<form class=\"who\" method=\"post\" action=\"/logout\"><span>");
    h_text(p, login);
    h_raw(p, "</span>");
    h_csrf(p, csrf);
    h_raw(p, "<button>Log out</button></form>");
  }
  h_raw(p, "</header><main><h1>");
  h_text(p, title);
  h_raw(p, "</h1>\n");
}

void h_bottom(page *p)
{
  h_raw(p, "</main></body></html>\n");
}

/* ---------------------------------------------------------------- charts */

static void range(const double *v, size_t n, double *lo, double *hi)
{
  *lo = INFINITY, *hi = -INFINITY;
  for (size_t i = 0; i < n; i++)
    if (!isnan(v[i])) {
      if (v[i] < *lo) *lo = v[i];
      if (v[i] > *hi) *hi = v[i];
    }
  if (*hi - *lo < 1e-9) *lo -= 0.5e-3, *hi += 0.5e-3;
}

/* polyline -- the points of v as x0 + i*dx, scaled into [y0 + h, y0]; a NaN breaks the line */
static void polyline(page *p, const double *v, size_t n, double x0, double dx, double y0, double h,
                     double lo, double hi, const char *cls)
{
  bool open = false;
  for (size_t i = 0; i < n; i++) {
    if (isnan(v[i])) {
      if (open) h_raw(p, "\"/>");
      open = false;
      continue;
    }
    if (!open) h_fmt(p, "<polyline class=\"%s\" points=\"", cls);
    h_fmt(p, "%s%.1f,%.1f", open ? " " : "", x0 + (double)i * dx,
          y0 + h - (v[i] - lo) / (hi - lo) * h);
    open = true;
  }
  if (open) h_raw(p, "\"/>");
}

void svg_sparkline(page *p, const double *v, size_t n)
{
  const double w = 120, h = 24;
  double lo, hi;
  range(v, n, &lo, &hi);
  h_fmt(p,
        "<svg class=\"spark\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
        "role=\"img\" aria-label=\"history\">",
        w, h, w, h);
  if (n > 0 && isfinite(lo)) {
    double dx = n > 1 ? (w - 4) / (double)(n - 1) : 0;
    polyline(p, v, n, 2, dx, 2, h - 4, lo, hi, "line");
    if (!isnan(v[n - 1]))
      h_fmt(p, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2\"/>", 2 + (double)(n - 1) * dx,
            2 + (h - 4) - (v[n - 1] - lo) / (hi - lo) * (h - 4));
  }
  h_raw(p, "</svg>");
}

void svg_history(page *p, const double *v, const char *const *labels, size_t n, const char *what)
{
  const double w = 720, h = 240, l = 60, r = 12, t = 12, b = 36;
  double lo, hi;
  range(v, n, &lo, &hi);
  h_fmt(p,
        "<svg class=\"chart\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
        "role=\"img\" aria-label=\"",
        w, h, w, h);
  h_text(p, what);
  h_raw(p, "\">");
  if (n == 0 || !isfinite(lo)) {
    h_raw(p, "<text x=\"20\" y=\"40\">no measurement yet</text></svg>");
    return;
  }
  double pw = w - l - r, ph = h - t - b, dx = n > 1 ? pw / (double)(n - 1) : 0;
  for (int k = 0; k <= 4; k++) { /* five gridlines, labelled */
    double y = t + ph * k / 4, val = hi - (hi - lo) * k / 4;
    h_fmt(p,
          "<line class=\"grid\" x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\"/>"
          "<text class=\"axis\" x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%.4f</text>",
          l, w - r, y, y, l - 6, y + 4, val);
  }
  polyline(p, v, n, l, dx, t, ph, lo, hi, "line");
  size_t every = n / 8 + 1;
  for (size_t i = 0; i < n; i++) {
    double x = l + (double)i * dx;
    if (!isnan(v[i])) {
      h_fmt(p, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\"><title>", x,
            t + ph - (v[i] - lo) / (hi - lo) * ph);
      h_text(p, labels[i]);
      h_fmt(p, ": %.4f</title></circle>", v[i]);
    }
    if (i % every == 0 || i == n - 1) {
      const char *anchor = n > 1 && i == 0 ? "start" : n > 1 && i == n - 1 ? "end" : "middle";
      h_fmt(p, "<text class=\"axis\" x=\"%.1f\" y=\"%.0f\" text-anchor=\"%s\">", x, h - b + 18,
            anchor);
      h_text(p, labels[i]);
      h_raw(p, "</text>");
    }
  }
  h_raw(p, "</svg>");
}

void svg_interval(page *p, double change, double lo, double hi, double tol, double span,
                  bool failing)
{
  const double w = 260, h = 22;
  if (!(span > 0)) span = 0.01;
#define X(v) (w / 2 + fmax(-1.0, fmin(1.0, (v) / span)) * (w / 2 - 6))
  h_fmt(p,
        "<svg class=\"iv%s\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
        "role=\"img\" aria-label=\"interval\">",
        failing ? " failing" : "", w, h, w, h);
  h_fmt(p, "<line class=\"zero\" x1=\"%.1f\" x2=\"%.1f\" y1=\"2\" y2=\"%.0f\"/>", X(0), X(0),
        h - 2);
  if (!isnan(tol))
    h_fmt(p,
          "<line class=\"tol\" x1=\"%.1f\" x2=\"%.1f\" y1=\"0\" y2=\"%.0f\"><title>tolerance "
          "%+.2f%%</title></line>",
          X(tol), X(tol), h, 100 * tol);
  if (!isnan(lo) && !isnan(hi))
    h_fmt(p, "<line class=\"bar\" x1=\"%.1f\" x2=\"%.1f\" y1=\"11\" y2=\"11\"/>", X(lo), X(hi));
  if (!isnan(change))
    h_fmt(p,
          "<circle cx=\"%.1f\" cy=\"11\" r=\"4\"><title>%+.2f%% [%+.2f%%, %+.2f%%]</title>"
          "</circle>",
          X(change), 100 * change, 100 * lo, 100 * hi);
#undef X
  h_raw(p, "</svg>");
}
