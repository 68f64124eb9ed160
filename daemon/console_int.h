/*
 * console_int.h -- shared by the files of the console: console.c (the server, sessions,
 * reused pages, routing), console_login.c (logging in, the limit on failures), console_pages.c and
 * console_views.c (the pages), console_html.c (HTML writing, escaping and SVG charts) and metrics.c
 * (/metrics, /readyz).
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
/* h_link -- <a href="PREFIXtext">text</a>, text escaped (a checkpoint, a language) */
void h_link(page *p, const char *prefix, const char *text);
/* h_cells -- the columns from..to of row i as escaped table cells */
void h_cells(page *p, const PGresult *r, int i, int from, int to);
/* h_csrf -- the hidden field every form carries (CSRF_SLOT written as itself) */
void h_csrf(page *p, const char *csrf);
/* A reused page is shared by every session of a login, each with its own CSRF token: it is
 * made with this slot where the token goes, and each answer fills in its own.  The slot
 * holds a '<', which h_text never writes, so no text from a person can fake it. */
#define CSRF_SLOT "<csrf>"

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
      lang[16], next[256];
} form;

/* req -- one request as the pages see it */
typedef struct req {
  console *con;
  session *s;         /* NULL: not logged in */
  const char *login;  /* the session's login */
  const char *csrf;   /* the session's CSRF token */
  PGconn *db;         /* the session's connection (its lock held) */
  const char *url;    /* path, without the query */
  const char *query1; /* the value of ?fragment= (the login page: where to go next), or NULL */
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
/* page_query -- a statement on the session's connection; NULL after answering the error
 * (page_db_error) */
PGresult *page_query(req *r, const char *sql, int n, const char *const *p, const char *what);
/* cell / cell_num -- a value of a result (a number: NaN for NULL) */
const char *cell(const PGresult *res, int row, int col);
double cell_num(const PGresult *res, int row, int col);
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

/* ---------------------------------------------------------------- the server's state
 * (console.c; console_login.c logs people in) */

struct MHD_Connection;
struct MHD_Daemon;

enum { BODY_MAX = 64 << 10, FAIL_SLOTS = 4096, TOKEN_BYTES = 32, LOGIN_SESSIONS = 8 };

struct session {
  session *next;
  char token[2 * TOKEN_BYTES + 1], csrf[2 * TOKEN_BYTES + 1], login[64];
  PGconn *db;
  pthread_mutex_t lock; /* held while a request uses db */
  int64_t last_s;       /* last use */
  int refs;             /* requests holding it (under the console's lock) */
  bool dead;            /* logged out or expired: freed when refs is 0 */
};

typedef struct fail_slot {
  char key[96]; /* "addr <ip>" or "login <name>" */
  int count;
  int64_t first_s;
} fail_slot;

typedef struct cached {
  struct cached *next;
  char login[64], url[256];
  page body;
  double at_ms;
  bool computing;
} cached;

struct console {
  struct MHD_Daemon *d;
  char *conninfo; /* where people log in */
  int64_t connect_timeout_s, idle_s, fail_max, fail_window_s, cache_ms, max_sessions;
  bool tls;
  mn_buf cert, key;
  int port;
  _Atomic int role;
  pthread_mutex_t lock; /* sessions, fails, cache */
  session *sessions;
  fail_slot fails[FAIL_SLOTS];
  cached *cache;
  uint64_t cache_gen; /* a POST drops every reused page: pages made before it are not kept */
  metrics_src metrics;
};

int64_t console_now_s(void);
/* random_hex -- 32 random bytes as 64 hex digits (no randomness: abort) */
void random_hex(char *out /* 2 * TOKEN_BYTES + 1 */);
/* same_token -- a and b are equal tokens (constant time) */
bool same_token(const char *a, const char *b);
void session_free(session *s);
/* sweep -- unlink the expired and dead sessions (under c->lock); free those none holds */
void sweep(console *c);
/* login_page -- the login form (why: an error to show, or NULL); r->query1: where to go next */
void login_page(req *r, const char *nonce, const char *why);
/* do_login -- POST /login: a new session, or NULL and why (r->status, r->out) */
session *do_login(console *c, struct MHD_Connection *conn, req *r, const form *f, char *nonce);

#endif /* MNEMO_CONSOLE_INT_H */
