/*
 * console.c -- the HTTP server of console.h: libmicrohttpd, sessions, CSRF, the reuse of
 * pages without forms, routing, and the static files (logging in: console_login.c).
 *
 * A request is answered in two calls of the access handler (libmicrohttpd's pattern): the
 * first allocates its state, the next ones feed a POST body to a post processor, the last
 * answers.  Each connection has a thread of its own (at most console.max_connections); a
 * page holds its session's lock while it uses the session's connection (at most 10 s of
 * waiting for it, then 503): one person's requests queue on their own connection, not on
 * anyone else's.
 *
 * Paths without a session: /login, /healthz, /readyz, /metrics and /static/ (what a
 * scraper and the login page need; GET only); any other GET without one is sent to /login
 * (and back after it), a POST refused.  Every POST must carry the session's CSRF token (the
 * login form a token bound to a cookie of its own), compared in constant time.
 */
#include "daemon/console_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* the state of one request between the handler's calls */
typedef struct pending {
  struct MHD_PostProcessor *pp;
  form f;
  size_t body;
  bool too_big;
} pending;

int64_t console_now_s(void)
{
  return (int64_t)time(NULL);
}

void random_hex(char *out /* 2 * TOKEN_BYTES + 1 */)
{
  uint8_t b[TOKEN_BYTES];
  if (RAND_bytes(b, sizeof b) != 1) abort(); /* no randomness: no safe session at all */
  mn_hex_encode(b, sizeof b, out);
}

bool same_token(const char *a, const char *b)
{
  size_t n = strlen(a);
  return n == 2 * TOKEN_BYTES && strlen(b) == n && CRYPTO_memcmp(a, b, n) == 0;
}

/* ---------------------------------------------------------------- sessions */

void session_free(session *s)
{
  PQfinish(s->db);
  pthread_mutex_destroy(&s->lock);
  OPENSSL_cleanse(s, sizeof *s);
  free(s);
}

/* sweep -- unlink the expired and dead sessions (under c->lock); free those no request holds */
void sweep(console *c)
{
  int64_t now = console_now_s();
  for (session **pp = &c->sessions; *pp;) {
    session *s = *pp;
    if (now - s->last_s > c->idle_s) s->dead = true;
    if (s->dead && s->refs == 0) {
      *pp = s->next;
      session_free(s);
    } else {
      pp = &s->next;
    }
  }
}

/* session_get -- the live session of a cookie, held (session_put), or NULL; touch: a use
 * (it keeps the session from expiring) */
static session *session_get(console *c, const char *token, bool touch)
{
  if (!token) return NULL;
  pthread_mutex_lock(&c->lock);
  sweep(c);
  session *found = NULL;
  for (session *s = c->sessions; s; s = s->next)
    if (!s->dead && same_token(s->token, token)) found = s;
  if (found) {
    found->refs++;
    if (touch) found->last_s = console_now_s();
  }
  pthread_mutex_unlock(&c->lock);
  return found;
}

static void session_put(console *c, session *s)
{
  pthread_mutex_lock(&c->lock);
  s->refs--;
  sweep(c);
  pthread_mutex_unlock(&c->lock);
}

/* ---------------------------------------------------------------- reused pages */

static void cache_drop_all(console *c)
{
  pthread_mutex_lock(&c->lock);
  c->cache_gen++;
  for (cached **pp = &c->cache; *pp;) {
    cached *e = *pp;
    if (e->computing) { /* its thread frees nothing: it finds its entry gone and stores a new one */
      pp = &e->next;
      e->at_ms = -1e300;
      continue;
    }
    *pp = e->next;
    h_fini(&e->body);
    free(e);
  }
  pthread_mutex_unlock(&c->lock);
}

/* cache_take -- a copy of the login's page for url into out when one is fresh enough, or
 * stale while another request makes it again; false: this request makes it (cache_store) */
static bool cache_take(console *c, const char *login, const char *url, page *out, uint64_t *gen)
{
  bool got = false;
  pthread_mutex_lock(&c->lock);
  *gen = c->cache_gen;
  for (cached *e = c->cache; e; e = e->next) {
    if (strcmp(e->login, login) != 0 || strcmp(e->url, url) != 0) continue;
    bool fresh = mn_monotonic_ms() - e->at_ms <= (double)c->cache_ms;
    if (fresh || e->computing) {
      h_raw(out, e->body.b.data ? e->body.b.data : "");
      got = !out->bad;
    } else {
      e->computing = true;
    }
    break;
  }
  pthread_mutex_unlock(&c->lock);
  return got;
}

static void cache_abandon(console *c, const char *login, const char *url)
{
  pthread_mutex_lock(&c->lock);
  for (cached *e = c->cache; e; e = e->next)
    if (strcmp(e->login, login) == 0 && strcmp(e->url, url) == 0) e->computing = false;
  pthread_mutex_unlock(&c->lock);
}

static void cache_store(console *c, const char *login, const char *url, const page *body,
                        uint64_t gen)
{
  pthread_mutex_lock(&c->lock);
  if (gen != c->cache_gen) { /* a POST came between: what this page read may be old */
    pthread_mutex_unlock(&c->lock);
    cache_abandon(c, login, url);
    return;
  }
  cached *e = c->cache;
  for (; e; e = e->next)
    if (strcmp(e->login, login) == 0 && strcmp(e->url, url) == 0) break;
  if (!e && (e = calloc(1, sizeof *e)) != NULL) {
    snprintf(e->login, sizeof e->login, "%s", login);
    snprintf(e->url, sizeof e->url, "%s", url);
    h_init(&e->body);
    e->next = c->cache;
    c->cache = e;
  }
  if (e) {
    h_fini(&e->body);
    h_init(&e->body);
    h_raw(&e->body, body->b.data ? body->b.data : "");
    e->at_ms = e->body.bad ? -1e300 : mn_monotonic_ms();
    e->computing = false;
  }
  pthread_mutex_unlock(&c->lock);
}

/* fill_csrf -- p with each CSRF_SLOT replaced by csrf */
static void fill_csrf(page *p, const char *csrf)
{
  if (!p->b.data || !strstr(p->b.data, CSRF_SLOT)) return;
  page out;
  h_init(&out);
  const char *s = p->b.data, *hit;
  while ((hit = strstr(s, CSRF_SLOT)) != NULL) {
    h_fmt(&out, "%.*s%s", (int)(hit - s), s, csrf);
    s = hit + sizeof CSRF_SLOT - 1;
  }
  h_raw(&out, s);
  bool bad = out.bad || p->bad;
  h_fini(p);
  *p = out;
  p->bad = bad;
}

/* ---------------------------------------------------------------- answers */

static const char CSP[] = "default-src 'none'; style-src 'self'; script-src 'self'; "
                          "img-src 'self'; connect-src 'self'; form-action 'self'; "
                          "frame-ancestors 'none'; base-uri 'none'";

static bool serving_tls; /* set once, before the server starts: HSTS on every answer */

static enum MHD_Result answer_full(struct MHD_Connection *conn, int status, const char *type,
                                   const char *body, size_t len, const char *cookie,
                                   const char *location, const char *cache_control)
{
  struct MHD_Response *res =
      MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (!res) return MHD_NO;
  MHD_add_response_header(res, "Content-Type", type);
  MHD_add_response_header(res, "Cache-Control", cache_control);
  if (serving_tls) MHD_add_response_header(res, "Strict-Transport-Security", "max-age=31536000");
  MHD_add_response_header(res, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header(res, "X-Frame-Options", "DENY");
  MHD_add_response_header(res, "Referrer-Policy", "same-origin");
  MHD_add_response_header(res, "Content-Security-Policy", CSP);
  if (cookie) MHD_add_response_header(res, "Set-Cookie", cookie);
  if (location) MHD_add_response_header(res, "Location", location);
  enum MHD_Result rc = MHD_queue_response(conn, (unsigned)status, res);
  MHD_destroy_response(res);
  return rc;
}

static enum MHD_Result answer(struct MHD_Connection *conn, int status, const char *type,
                              const char *body, size_t len, const char *cookie,
                              const char *location)
{
  return answer_full(conn, status, type, body, len, cookie, location, "no-store");
}

static enum MHD_Result answer_text(struct MHD_Connection *conn, int status, const char *text)
{
  return answer(conn, status, "text/plain; charset=utf-8", text, strlen(text), NULL, NULL);
}

void page_message(req *r, int status, const char *title, const char *text)
{
  r->status = status;
  h_top(&r->out, title, r->login, r->csrf);
  h_raw(&r->out, "<p class=\"message\">");
  h_text(&r->out, text);
  h_raw(&r->out, "</p>");
  h_bottom(&r->out);
}

void page_db_error(req *r, const char *what, const mn_error *err)
{
  bool denied = strstr(err->detail, "SQLSTATE 42501") != NULL;
  bool state = strstr(err->detail, "SQLSTATE 55000") != NULL ||
               strstr(err->detail, "SQLSTATE 22023") != NULL;
  bool missing = strstr(err->detail, "SQLSTATE P0002") != NULL;
  bool gone = strstr(err->detail, "SQLSTATE ?????") != NULL; /* no answer: the connection */
  h_fini(&r->out);
  h_init(&r->out);
  r->status = denied ? 403 : state ? 409 : missing ? 404 : gone ? 503 : 500;
  h_top(&r->out, denied ? "Refused by the database" : "The database said no", r->login, r->csrf);
  (void)what; /* db_error began the message with it already */
  h_raw(&r->out, "<p class=\"message error\">");
  h_text(&r->out, err->msg);
  h_raw(&r->out, "</p>");
  if (denied)
    h_raw(&r->out, "<p>Who may do what is the database's decision: your login's roles do not "
                   "allow this.</p>");
  h_bottom(&r->out);
}

/* ---------------------------------------------------------------- static files */

static const char CSS[] =
    "body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d232b;background:#f6f7f9}"
    "header{display:flex;gap:1.5em;align-items:center;padding:.6em 1.2em;background:#1d2b3a;"
    "color:#fff}header a{color:#dfe8f2;text-decoration:none;margin-right:1em}"
    ".brand{font-weight:700;font-size:1.2em;color:#fff}.who{margin-left:auto;display:flex;"
    "gap:.6em;align-items:center}main{padding:1em 1.5em;max-width:1200px}"
    "table{border-collapse:collapse;background:#fff;margin:.5em 0 1.5em}"
    "th,td{padding:.3em .7em;border-bottom:1px solid #e1e4e8;text-align:left;vertical-align:top}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#eef1f4}"
    ".fail,.failing{color:#b00020}.pass{color:#17693a}.insufficient{color:#8a5a00}"
    "svg .line{fill:none;stroke:#2a6fb0;stroke-width:1.6}svg circle{fill:#2a6fb0}"
    "svg .grid{stroke:#e1e4e8}svg .axis{font-size:11px;fill:#555}"
    "svg .zero{stroke:#888}svg .tol{stroke:#b00020;stroke-dasharray:3 2;stroke-width:2}"
    "svg .bar{stroke:#2a6fb0;stroke-width:4}.iv.failing .bar{stroke:#b00020}"
    ".iv.failing circle{fill:#b00020}.message{font-size:1.1em}.error,.error pre{color:#b00020}"
    "pre{white-space:pre-wrap;background:#fff;padding:.8em;border:1px solid #e1e4e8}"
    "form.decide{background:#fff;padding:1em;border:1px solid #c9d1d9;max-width:40em}"
    "textarea{width:100%;min-height:4em}.banner{background:#fff4d6;padding:.6em 1em;"
    "border:1px solid #e8c860;margin-bottom:1em}.login{max-width:22em;background:#fff;"
    "padding:1.2em;border:1px solid #c9d1d9}.login input{width:100%;margin:.2em 0 .8em}";

static const char JS[] =
    "'use strict';\n"
    "// live parts of a page: an element with data-live=URL is fetched again every 2 s\n"
    "document.addEventListener('DOMContentLoaded', function () {\n"
    "  document.querySelectorAll('[data-live]').forEach(function (el) {\n"
    "    setInterval(function () {\n"
    "      fetch(el.dataset.live, {credentials: 'same-origin'}).then(function (r) {\n"
    "        if (r.redirected) { location.reload(); return null; } // the session ended\n"
    "        return r.ok ? r.text() : null;\n"
    "      }).then(function (t) { if (t !== null) el.innerHTML = t; }).catch(function () {});\n"
    "    }, 2000);\n"
    "  });\n"
    "});\n";

/* local_path -- a path of this console to go back to after logging in: "/" then letters,
 * digits and / _ - . only (no "//host", no scheme, no query) */
static bool local_path(const char *u)
{
  if (!u || u[0] != '/' || u[1] == '/' || strlen(u) > 200) return false;
  for (const char *k = u; *k; k++)
    if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') ||
          *k == '/' || *k == '_' || *k == '-' || *k == '.'))
      return false;
  return true;
}

/* ---------------------------------------------------------------- routing */

static bool parse_id(const char *s, const char *suffix, int64_t *id)
{
  char *end;
  if (*s < '1' || *s > '9') return false;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || strcmp(end, suffix) != 0) return false;
  *id = v;
  return true;
}

static bool lang_code_ok(const char *s)
{
  size_t n = strlen(s);
  if (n < 2 || n > 8) return false;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
      return false;
  return true;
}

/* route -- a request with a session: the page or the action it asks for */
static void route(req *r)
{
  const char *u = r->url;
  int64_t id;
  if (!r->post && strcmp(u, "/") == 0) {
    r->cacheable = true;
    page_languages(r);
  } else if (!r->post && strncmp(u, "/lang/", 6) == 0 && lang_code_ok(u + 6)) {
    r->cacheable = true;
    page_language(r, u + 6);
  } else if (!r->post && strcmp(u, "/candidates") == 0) {
    page_candidates(r);
  } else if (strncmp(u, "/candidate/", 11) == 0 && parse_id(u + 11, "", &id)) {
    if (r->post)
      act_decide(r, id);
    else
      page_candidate(r, id);
  } else if (!r->post && strcmp(u, "/jobs") == 0) {
    page_jobs(r, r->query1 != NULL);
  } else if (r->post && strncmp(u, "/jobs/", 6) == 0 && parse_id(u + 6, "/cancel", &id)) {
    act_cancel(r, id);
  } else if (!r->post && strcmp(u, "/reports") == 0) {
    page_reports(r);
  } else if (r->post && strncmp(u, "/reports/", 9) == 0 && parse_id(u + 9, "", &id)) {
    act_report(r, id);
  } else {
    page_message(r, 404, "Not found", "There is no such page.");
  }
}

static enum MHD_Result post_field(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *filename, const char *type, const char *enc,
                                  const char *data, uint64_t off, size_t size)
{
  (void)kind, (void)filename, (void)type, (void)enc;
  pending *p = cls;
  struct {
    const char *name;
    char *field;
    size_t cap;
  } fields[] = {{"csrf", p->f.csrf, sizeof p->f.csrf},
                {"login", p->f.login, sizeof p->f.login},
                {"password", p->f.password, sizeof p->f.password},
                {"note", p->f.note, sizeof p->f.note},
                {"decision", p->f.decision, sizeof p->f.decision},
                {"confirm", p->f.confirm, sizeof p->f.confirm},
                {"lang", p->f.lang, sizeof p->f.lang},
                {"next", p->f.next, sizeof p->f.next}};
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    if (strcmp(key, fields[i].name) != 0) continue;
    if (off + size >= fields[i].cap) {
      p->too_big = true;
      return MHD_YES;
    }
    memcpy(fields[i].field + off, data, size);
    fields[i].field[off + size] = '\0';
  }
  return MHD_YES;
}

static void cookie_line(const console *c, char *out, size_t cap, const char *name,
                        const char *value, const char *path, bool clear)
{
  snprintf(out, cap, "%s=%s; Path=%s; HttpOnly; SameSite=Strict%s%s", name, value, path,
           c->tls ? "; Secure" : "", clear ? "; Max-Age=0" : "");
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
  (void)version;
  console *c = cls;
  bool post = strcmp(method, "POST") == 0;
  if (!*state) {
    pending *p = calloc(1, sizeof *p);
    if (!p) return MHD_NO;
    if (post) p->pp = MHD_create_post_processor(conn, 4096, post_field, p);
    *state = p;
    return MHD_YES;
  }
  pending *p = *state;
  if (*upload_size) {
    p->body += *upload_size;
    if (p->body > BODY_MAX)
      p->too_big = true;
    else if (p->pp)
      MHD_post_process(p->pp, upload, *upload_size);
    *upload_size = 0;
    return MHD_YES;
  }
  if (!post && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
    return answer_text(conn, 405, "only GET and POST\n");
  if (p->too_big) return answer_text(conn, 413, "the form is too large\n");

  req r = {.con = c, .url = url, .post = post, .f = &p->f, .status = 200};
  h_init(&r.out);
  enum MHD_Result rc;
  char cookie[200], nonce[2 * TOKEN_BYTES + 1];
  bool open_path = strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0 ||
                   strcmp(url, "/metrics") == 0 || strncmp(url, "/static/", 8) == 0;
  if (open_path && post) {
    rc = answer_text(conn, 405, "only GET here\n");
  } else if (strcmp(url, "/healthz") == 0) { /* touches no lock and no database */
    rc = answer_text(conn, 200, "ok\n");
  } else if (strcmp(url, "/readyz") == 0 || strcmp(url, "/metrics") == 0) {
    console_role role = (console_role)atomic_load(&c->role);
    if (url[1] == 'r')
      metrics_ready(&c->metrics, role, &r);
    else
      metrics_render(&c->metrics, role, &r);
    rc = r.out.bad ? answer_text(conn, 500, "out of memory\n")
                   : answer(conn, r.status, r.type, r.out.b.data ? r.out.b.data : "", r.out.b.len,
                            NULL, NULL);
  } else if (strcmp(url, "/static/console.css") == 0) {
    rc = answer_full(conn, 200, "text/css; charset=utf-8", CSS, sizeof CSS - 1, NULL, NULL,
                     "max-age=3600");
  } else if (strcmp(url, "/static/console.js") == 0) {
    rc = answer_full(conn, 200, "text/javascript; charset=utf-8", JS, sizeof JS - 1, NULL, NULL,
                     "max-age=3600");
  } else if (strcmp(url, "/login") == 0) {
    /* the browser's login token, kept while it has one: two tabs (or a favicon sent to
     * this page) must not make each other's forms stale */
    const char *had = MHD_lookup_connection_value(conn, MHD_COOKIE_KIND, "mnemo_login");
    if (had && strlen(had) == 2 * TOKEN_BYTES && strspn(had, "0123456789abcdef") == strlen(had))
      snprintf(nonce, sizeof nonce, "%s", had);
    else
      random_hex(nonce);
    const char *next =
        post ? p->f.next : MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "next");
    if (!local_path(next)) next = "/";
    r.query1 = next;
    session *s = post ? do_login(c, conn, &r, &p->f, nonce) : NULL;
    if (s) {
      cookie_line(c, cookie, sizeof cookie, "mnemo_session", s->token, "/", false);
      rc = answer(conn, 303, "text/plain", "", 0, cookie, next);
    } else {
      if (!post) login_page(&r, nonce, NULL);
      cookie_line(c, cookie, sizeof cookie, "mnemo_login", nonce, "/login", false);
      rc = answer(conn, r.status, "text/html; charset=utf-8", r.out.b.data ? r.out.b.data : "",
                  r.out.b.len, cookie, NULL);
    }
  } else {
    /* a page's own refresh (/jobs?fragment=1) is not someone using the session */
    bool poll = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "fragment") != NULL;
    session *s =
        session_get(c, MHD_lookup_connection_value(conn, MHD_COOKIE_KIND, "mnemo_session"), !poll);
    if (!s && !post) { /* to the login page, and back here after it */
      char to[300] = "/login";
      if (local_path(url) && strcmp(url, "/") != 0) snprintf(to, sizeof to, "/login?next=%s", url);
      rc = answer(conn, 303, "text/plain", "", 0, NULL, to);
    } else if (!s) {
      rc = answer_text(conn, 403, "not logged in\n");
    } else if (post && !same_token(s->csrf, p->f.csrf)) {
      session_put(c, s);
      rc = answer_text(conn, 403,
                       "the form's CSRF token is missing or wrong: reload the page and "
                       "try again\n");
    } else if (post && strcmp(url, "/logout") == 0) {
      pthread_mutex_lock(&c->lock);
      s->dead = true;
      pthread_mutex_unlock(&c->lock);
      session_put(c, s);
      cookie_line(c, cookie, sizeof cookie, "mnemo_session", "", "/", true);
      rc = answer(conn, 303, "text/plain", "", 0, cookie, "/login");
    } else {
      r.s = s, r.login = s->login, r.csrf = s->csrf;
      r.query1 = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "fragment");
      bool reuse =
          !post && c->cache_ms > 0 && (strcmp(url, "/") == 0 || strncmp(url, "/lang/", 6) == 0);
      if (reuse) r.csrf = CSRF_SLOT;
      uint64_t gen = 0;
      bool got = reuse && cache_take(c, s->login, url, &r.out, &gen);
      struct timespec until;
      clock_gettime(CLOCK_REALTIME, &until);
      until.tv_sec += 10;
      if (!got && pthread_mutex_timedlock(&s->lock, &until) != 0) {
        /* the session's connection is busy with another of its requests (a query waiting
         * on a lock): this thread does not wait with it */
        page_message(&r, 503, "Busy",
                     "Another request of this session is still running: "
                     "try again in a moment.");
        if (reuse) cache_abandon(c, s->login, url);
      } else if (!got) {
        if (PQstatus(s->db) != CONNECTION_OK) PQreset(s->db); /* libpq kept the password */
        r.db = s->db;
        route(&r);
        if (!post && PQstatus(s->db) != CONNECTION_OK) { /* the server went away: once more */
          PQreset(s->db);
          h_fini(&r.out);
          h_init(&r.out);
          r.status = 200, r.cacheable = false;
          route(&r);
        }
        pthread_mutex_unlock(&s->lock);
        if (reuse && r.cacheable && r.status == 200 && !r.out.bad)
          cache_store(c, s->login, url, &r.out, gen);
        else if (reuse)
          cache_abandon(c, s->login, url);
        if (post) cache_drop_all(c);
      }
      if (reuse) fill_csrf(&r.out, s->csrf);
      session_put(c, s);
      if (r.out.bad)
        rc = answer_text(conn, 500, "out of memory\n");
      else if (*r.location)
        rc = answer(conn, 303, "text/plain", "", 0, NULL, r.location);
      else
        rc = answer(conn, r.status, r.type ? r.type : "text/html; charset=utf-8",
                    r.out.b.data ? r.out.b.data : "", r.out.b.len, NULL, NULL);
    }
  }
  h_fini(&r.out);
  OPENSSL_cleanse(p->f.password, sizeof p->f.password);
  return rc;
}

static void done(void *cls, struct MHD_Connection *conn, void **state,
                 enum MHD_RequestTerminationCode why)
{
  (void)cls, (void)conn, (void)why;
  pending *p = *state;
  if (!p) return;
  if (p->pp) MHD_destroy_post_processor(p->pp);
  OPENSSL_cleanse(p, sizeof *p);
  free(p);
  *state = NULL;
}

__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
  (void)cls;
  char line[512];
  vsnprintf(line, sizeof line, fmt, ap);
  line[strcspn(line, "\n")] = '\0';
  mn_log(MN_LOG_WARN, "console: http", MN_KV_S("error", line));
}

/* ---------------------------------------------------------------- life */

mn_status console_create(const mn_config *cfg, console **out, mn_error *err)
{
  *out = NULL;
  if (!*cfg->console.listen) return MN_OK;
  char host[64];
  int port;
  if (mn_listen_parse(cfg->console.listen, host, sizeof host, &port) != 0)
    return mn_error_set(err, MN_ERR_CONFIG, "console.listen \"%s\" is not ADDRESS:PORT",
                        cfg->console.listen);
  console *c = calloc(1, sizeof *c);
  if (!c) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  pthread_mutex_init(&c->lock, NULL);
  pthread_mutex_init(&c->metrics.lock, NULL);
  mn_buf_init(&c->cert, 1 << 20);
  mn_buf_init(&c->key, 1 << 20);
  c->conninfo = strdup(*cfg->console.conninfo ? cfg->console.conninfo : cfg->database.conninfo);
  c->metrics.conninfo = strdup(cfg->database.conninfo);
  c->metrics.connect_timeout_s = cfg->database.connect_timeout_s;
  c->metrics.max_languages = cfg->console.metrics_languages;
  c->connect_timeout_s = cfg->database.connect_timeout_s;
  c->idle_s = cfg->console.session_idle_s;
  c->fail_max = cfg->console.login_failures;
  c->fail_window_s = cfg->console.login_window_s;
  c->cache_ms = cfg->console.cache_ms;
  c->max_sessions = cfg->console.max_sessions;
  c->tls = *cfg->console.tls_cert != '\0';
  serving_tls = c->tls;
  mn_status rc = MN_OK;
  if (!c->conninfo || !c->metrics.conninfo) rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  if (rc == MN_OK && c->tls) {
    if (!MHD_is_feature_supported(MHD_FEATURE_TLS))
      rc = mn_error_set(err, MN_ERR_CONFIG, "console.tls_cert: this libmicrohttpd has no TLS");
    else if ((rc = mn_buf_read_file(&c->cert, cfg->console.tls_cert, err)) != MN_OK)
      mn_error_prefix(err, "console.tls_cert");
    else if ((rc = mn_buf_read_file(&c->key, cfg->console.tls_key, err)) != MN_OK)
      mn_error_prefix(err, "console.tls_key");
  }
  struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
  bool v6 = strchr(host, ':') != NULL;
  if (v6)
    inet_pton(AF_INET6, host, &a6.sin6_addr);
  else
    inet_pton(AF_INET, host, &a4.sin_addr);
  if (rc == MN_OK) {
    /* a thread per connection: a page that waits for the database (its session's
     * connection, a page being made again) holds up no other connection, as it would a
     * pool thread's every connection; the limit bounds the threads */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_AUTO | MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0) |
                     (c->tls ? MHD_USE_TLS : 0);
    const struct sockaddr *sa = v6 ? (const struct sockaddr *)(const void *)&a6
                                   : (const struct sockaddr *)(const void *)&a4;
    if (c->tls)
      c->d =
          MHD_start_daemon(flags, 0, NULL, NULL, handle, c, MHD_OPTION_SOCK_ADDR, sa,
                           MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->console.max_connections,
                           MHD_OPTION_NOTIFY_COMPLETED, done, c, MHD_OPTION_CONNECTION_TIMEOUT, 60u,
                           MHD_OPTION_EXTERNAL_LOGGER, mhd_log, c, MHD_OPTION_HTTPS_MEM_CERT,
                           c->cert.data, MHD_OPTION_HTTPS_MEM_KEY, c->key.data, MHD_OPTION_END);
    else
      c->d = MHD_start_daemon(flags, 0, NULL, NULL, handle, c, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
                              c, MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_CONNECTION_LIMIT,
                              (unsigned)cfg->console.max_connections, MHD_OPTION_NOTIFY_COMPLETED,
                              done, c, MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
    if (!c->d)
      rc = mn_error_set(err, MN_ERR_IO,
                        "console.listen \"%s\": could not serve there (the port is taken, the "
                        "address is not this machine's, or the certificate and key do not load)",
                        cfg->console.listen);
  }
  if (rc != MN_OK) {
    console_destroy(c);
    return rc;
  }
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(c->d, MHD_DAEMON_INFO_BIND_PORT);
  c->port = di ? di->port : port;
  mn_log(MN_LOG_INFO, "console: serving", MN_KV_S("address", host), MN_KV_I("port", c->port),
         MN_KV_B("tls", c->tls));
  bool loopback = strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0;
  if (!c->tls && !loopback)
    mn_log(MN_LOG_WARN,
           "console: plain HTTP beyond this machine: passwords cross the network "
           "in clear unless a TLS proxy is in front (console.tls_cert)",
           MN_KV_S("address", host));
  *out = c;
  return MN_OK;
}

int console_port(const console *c)
{
  return c ? c->port : 0;
}

void console_set_role(console *c, console_role role)
{
  if (c) atomic_store(&c->role, (int)role);
}

void console_destroy(console *c)
{
  if (!c) return;
  if (c->d) MHD_stop_daemon(c->d);
  while (c->sessions) {
    session *s = c->sessions;
    c->sessions = s->next;
    session_free(s);
  }
  while (c->cache) {
    cached *e = c->cache;
    c->cache = e->next;
    h_fini(&e->body);
    free(e);
  }
  metrics_fini(&c->metrics);
  pthread_mutex_destroy(&c->lock);
  free(c->conninfo);
  OPENSSL_cleanse(c->key.data ? c->key.data : (char *)"", c->key.len);
  mn_buf_fini(&c->cert);
  mn_buf_fini(&c->key);
  free(c);
}
