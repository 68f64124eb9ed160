/*
 * console_int.h -- shared by the files of the console: console.c (the server, sessions,
 * logins, routing), console_pages.c and console_views.c (the pages), console_html.c (HTML
 * writing, escaping and SVG charts) and metrics.c (/metrics, /readyz).
 */
#ifndef MNEMO_CONSOLE_INT_H
#define MNEMO_CONSOLE_INT_H

#include "daemon/console.h"

#include <pthread.h>
#include <stdarg.h>

/* ---------------------------------------------------------------- HTML writing */

/* page -- a growing response body; an append that fails (memory) sets bad and the rest are
 * ignored: the request then answers 500 */
typedef struct page {
  mn_buf b;
  bool bad;
} page;

void h_init(page *p);
void h_fini(page *p);
void h_raw(page *p, const char *s);
void h_fmt(page *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* h_text -- s escaped for HTML text and attribute values (& < > " ' as entities) */
void h_text(page *p, const char *s);
/* h_num -- a number with digits significant digits, "–" for NaN */
void h_num(page *p, double v, int digits);
/* h_pct -- a share as a signed percentage ("+1.23%"), "–" for NaN */
void h_pct(page *p, double v);
/* h_top / h_bottom -- the page around the content: title, navigation, the login and its
 * logout form (csrf NULL: the login page, no navigation) */
void h_top(page *p, const char *title, const char *login, const char *csrf);
void h_bottom(page *p);
/* h_csrf -- the hidden field every form carries */
void h_csrf(page *p, const char *csrf);

/* SVG charts, drawn inline: a sparkline of v[0..n) (NaN: a gap) */
void svg_sparkline(page *p, const double *v, size_t n);
/* a line chart of v[0..n) against labels[0..n) (the x axis), title on each point */
void svg_history(page *p, const double *v, const char *const *labels, size_t n, const char *what);
/* one interval against a tolerance: change with [lo, hi] on an axis from -span to +span
 * (shares), the tolerance marked; NaN tol: none */
void svg_interval(page *p, double change, double lo, double hi, double tol, double span,
                  bool failing);

/* ---------------------------------------------------------------- requests */

typedef struct session session;

/* form fields the console's forms send (each at most 4 KiB) */
enum { FORM_FIELD_MAX = 4096 };
typedef struct form {
  char csrf[80], login[80], password[1024], note[FORM_FIELD_MAX], decision[16], confirm[8],
      lang[16];
} form;

/* req -- one request as the pages see it */
typedef struct req {
  console *con;
  session *s;         /* NULL: not logged in */
  const char *login;  /* the session's login */
  const char *csrf;   /* the session's CSRF token */
  PGconn *db;         /* the session's connection (its lock held) */
  const char *url;    /* path, without the query */
  const char *query1; /* ?fragment=1 etc.: the value of "fragment", or NULL */
  bool post;
  const form *f;
  /* the answer */
  int status;
  page out;
  const char *type;   /* Content-Type; NULL: text/html */
  char location[256]; /* a redirect (303) when set */
  bool cacheable;     /* a page without forms: may be reused for the login */
} req;

/* the pages (console_pages.c, console_views.c); each fills r->out and r->status */
void page_languages(req *r);
void page_language(req *r, const char *code);
void page_candidates(req *r);
void page_candidate(req *r, int64_t id);
void page_jobs(req *r, bool fragment);
void page_reports(req *r);
void act_decide(req *r, int64_t id);
void act_cancel(req *r, int64_t id);
void act_report(req *r, int64_t id);
/* page_db_error -- the database refused or failed: say so, with its message, as 403 when
 * it was a matter of privileges (SQLSTATE 42501) and 409/500 otherwise */
void page_db_error(req *r, const char *what, const mn_error *err);
/* page_message -- a short page with a title and a sentence (status as given) */
void page_message(req *r, int status, const char *title, const char *text);

/* ---------------------------------------------------------------- metrics (metrics.c) */

typedef struct metrics_src {
  const char *conninfo;
  int64_t connect_timeout_s, max_languages;
  pthread_mutex_t lock;
  PGconn *db; /* the daemon's login; NULL until needed, again after a failure */
} metrics_src;

/* metrics_render -- /metrics in the Prometheus text format (version 0.0.4) */
void metrics_render(metrics_src *m, console_role role, req *r);
/* metrics_ready -- /readyz: 200 when the database answers and every migration this binary
 * has is applied (and nothing newer), 503 saying what is missing else */
void metrics_ready(metrics_src *m, console_role role, req *r);
void metrics_fini(metrics_src *m);

#endif /* MNEMO_CONSOLE_INT_H */
