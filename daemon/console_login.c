/*
 * console_login.c -- logging in to the console: the login page, the limit on failed logins
 * and the new session, with a database connection as the person's own login.  console.c
 * serves, console_int.h has the shapes both share.
 */
#include "daemon/console_int.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- failed logins
 *
 * Two counters an attempt: its client address (an IPv6 one by its /64) and the login name
 * it tried.  An attempt is counted before it is tried (parallel attempts cannot pass the
 * limit together) and given back when it succeeds or when the database could not be asked.
 * A slot that blocks is never given to another key before its window ends: when every
 * slot blocks, new keys are refused too (closed, not open). */

static bool fail_blocks(const console *c, const fail_slot *f, int64_t now)
{
  return f->count >= c->fail_max && now - f->first_s < c->fail_window_s;
}

static fail_slot *fail_find(console *c, const char *key)
{
  for (int i = 0; i < FAIL_SLOTS; i++)
    if (c->fails[i].count > 0 && strcmp(c->fails[i].key, key) == 0) return &c->fails[i];
  return NULL;
}

/* fail_wait -- seconds until key may try again (0: now; -1: the table is full of blocks) */
static int64_t fail_wait(console *c, const char *key)
{
  int64_t now = console_now_s();
  fail_slot *f = fail_find(c, key);
  if (f) return fail_blocks(c, f, now) ? f->first_s + c->fail_window_s - now : 0;
  for (int i = 0; i < FAIL_SLOTS; i++)
    if (!fail_blocks(c, &c->fails[i], now)) return 0;
  return -1;
}

/* fail_count -- one more attempt of key (a slot for it: an empty or expired one, else the
 * oldest that blocks nobody; fail_wait said there is one) */
static void fail_count(console *c, const char *key)
{
  int64_t now = console_now_s();
  fail_slot *f = fail_find(c, key);
  if (!f) {
    for (int i = 0; i < FAIL_SLOTS; i++) {
      fail_slot *x = &c->fails[i];
      if (fail_blocks(c, x, now)) continue;
      bool idle = x->count == 0 || now - x->first_s >= c->fail_window_s;
      if (!f || idle || (f->count > 0 && x->first_s < f->first_s)) f = x;
      if (idle) break;
    }
    if (!f) return;
    memset(f, 0, sizeof *f);
    snprintf(f->key, sizeof f->key, "%s", key);
    f->first_s = now;
  }
  if (now - f->first_s >= c->fail_window_s) f->count = 0, f->first_s = now;
  f->count++;
}

/* fail_undo -- an attempt counted that was no failure */
static void fail_undo(console *c, const char *key)
{
  fail_slot *f = fail_find(c, key);
  if (f && f->count > 0) f->count--;
}

/* ---------------------------------------------------------------- login */

void login_page(req *r, const char *nonce, const char *why)
{
  h_top(&r->out, "Log in", NULL, NULL);
  if (why) {
    h_raw(&r->out, "<p class=\"message error\">");
    h_text(&r->out, why);
    h_raw(&r->out, "</p>");
  }
  h_raw(&r->out, "<form class=\"login\" method=\"post\" action=\"/login\"><label>PostgreSQL "
                 "login<input name=\"login\" autocomplete=\"username\" required autofocus>"
                 "</label><label>Password<input name=\"password\" type=\"password\" "
                 "autocomplete=\"current-password\" required></label>");
  h_csrf(&r->out, nonce);
  h_raw(&r->out, "<input type=\"hidden\" name=\"next\" value=\"");
  h_text(&r->out, r->query1 ? r->query1 : "/");
  h_raw(&r->out, "\">");
  h_raw(&r->out, "<button>Log in</button></form><p>You act as your own PostgreSQL login: "
                 "what you may see and do is what the database grants it.</p>");
  h_bottom(&r->out);
}

/* client_addr -- the peer's address as text (an IPv6 one's /64) */
static void client_addr(struct MHD_Connection *conn, char *out, size_t cap)
{
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  snprintf(out, cap, "?");
  if (!ci || !ci->client_addr) return;
  const struct sockaddr *sa = ci->client_addr;
  if (sa->sa_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
              (socklen_t)cap);
  else if (sa->sa_family == AF_INET6) { /* one client holds a whole /64: counted as one */
    struct in6_addr a = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    memset(a.s6_addr + 8, 0, 8);
    inet_ntop(AF_INET6, &a, out, (socklen_t)cap);
  }
}

static bool login_name_ok(const char *s)
{
  size_t n = strlen(s);
  if (n == 0 || n > 63) return false;
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f) return false;
  return true;
}

/* auth_failure -- the server said no to the name or password (28P01, 28000), as opposed to
 * not being reachable, full, or starting: only those count against the limit.  libpq gives
 * a failed connection's message, not its SQLSTATE: the server's words (lc_messages C). */
static bool auth_failure(const char *msg)
{
  return strstr(msg, "password authentication failed") || strstr(msg, "authentication failed") ||
         (strstr(msg, "role \"") && strstr(msg, "does not exist")) ||
         strstr(msg, "no password supplied") || strstr(msg, "not permitted to log in") ||
         strstr(msg, "no pg_hba.conf entry");
}

/* session_add -- s among the sessions; a login's oldest beyond LOGIN_SESSIONS is closed
 * (each holds a database connection); false when console.max_sessions are open */
static bool session_add(console *c, session *s)
{
  pthread_mutex_lock(&c->lock);
  sweep(c);
  int64_t all = 0, mine = 0;
  session *oldest = NULL;
  for (session *x = c->sessions; x; x = x->next) {
    if (x->dead) continue;
    all++;
    if (strcmp(x->login, s->login) == 0) {
      mine++;
      if (!oldest || x->last_s < oldest->last_s) oldest = x;
    }
  }
  if (mine >= LOGIN_SESSIONS) {
    oldest->dead = true;
    all--;
  }
  bool ok = all < c->max_sessions;
  if (ok) {
    s->next = c->sessions;
    c->sessions = s;
  }
  sweep(c);
  pthread_mutex_unlock(&c->lock);
  return ok;
}

/* do_login -- POST /login: a new session, or why not (r->status, r->out) */
session *do_login(console *c, struct MHD_Connection *conn, req *r, const form *f, char *nonce)
{
  const char *cookie = MHD_lookup_connection_value(conn, MHD_COOKIE_KIND, "mnemo_login");
  char addr[INET6_ADDRSTRLEN + 8], kaddr[128], klogin[128];
  client_addr(conn, addr, sizeof addr);
  snprintf(kaddr, sizeof kaddr, "addr %s", addr);
  snprintf(klogin, sizeof klogin, "login %.80s", f->login);
  r->status = 401;
  if (!cookie || !same_token(cookie, f->csrf)) {
    r->status = 403;
    login_page(r, nonce, "The login form was stale or came from elsewhere: try again.");
    return NULL;
  }
  if (!login_name_ok(f->login) || !*f->password) {
    login_page(r, nonce, "Give a login name and a password.");
    return NULL;
  }
  pthread_mutex_lock(&c->lock);
  int64_t wait = fail_wait(c, kaddr), w2 = fail_wait(c, klogin);
  if (wait >= 0 && (w2 < 0 || w2 > wait)) wait = w2;
  if (wait == 0) { /* counted before it is tried: parallel attempts cannot pass the limit */
    fail_count(c, kaddr);
    fail_count(c, klogin);
  }
  pthread_mutex_unlock(&c->lock);
  if (wait != 0) {
    char why[160];
    if (wait > 0)
      snprintf(why, sizeof why, "Too many failed logins: try again in %lld s.", (long long)wait);
    else
      snprintf(why, sizeof why, "Too many logins are failing right now: try again later.");
    r->status = 429;
    login_page(r, nonce, why);
    mn_log(MN_LOG_WARN, "console: login refused, too many failures", MN_KV_S("addr", addr),
           MN_KV_S("login", f->login));
    return NULL;
  }
  char timeout[32];
  snprintf(timeout, sizeof timeout, "%lld", (long long)c->connect_timeout_s);
  /* the conninfo first: the person's name and password override whatever it says; the
   * session's limits as options, so that a reconnection (PQreset) keeps them */
  const char *keys[] = {"dbname",
                        "user",
                        "password",
                        "application_name",
                        "connect_timeout",
                        "client_encoding",
                        "options",
                        "keepalives_idle",
                        NULL};
  const char *vals[] = {c->conninfo,
                        f->login,
                        f->password,
                        "mnemo console",
                        timeout,
                        "UTF8",
                        "-c statement_timeout=30s -c idle_in_transaction_session_timeout=60s",
                        "30",
                        NULL};
  PGconn *db = PQconnectdbParams(keys, vals, 1);
  if (!db || PQstatus(db) != CONNECTION_OK) {
    const char *why = db ? PQerrorMessage(db) : "out of memory";
    bool denied = db && auth_failure(why);
    mn_log(MN_LOG_WARN, denied ? "console: login failed" : "console: login impossible: no database",
           MN_KV_S("addr", addr), MN_KV_S("login", f->login), MN_KV_S("error", why));
    PQfinish(db);
    if (!denied) { /* not their fault: given back */
      pthread_mutex_lock(&c->lock);
      fail_undo(c, kaddr);
      fail_undo(c, klogin);
      pthread_mutex_unlock(&c->lock);
      r->status = 503;
      login_page(r, nonce, "The database cannot be reached just now: try again in a moment.");
      return NULL;
    }
    login_page(r, nonce, "The database refused this login name and password.");
    return NULL;
  }
  if (!PQconnectionUsedPassword(db)) {
    PQfinish(db);
    mn_log(MN_LOG_ERROR, "console: the database let a login in without a password; refusing "
                         "every console login until console.conninfo reaches it where it checks "
                         "passwords (pg_hba.conf: scram-sha-256)");
    r->status = 503;
    login_page(r, nonce,
               "The console cannot check passwords: the database let this login in without "
               "asking for one. An administrator must point console.conninfo at a server "
               "that asks (docs/console.md).");
    return NULL;
  }
  session *s = calloc(1, sizeof *s);
  if (!s) {
    PQfinish(db);
    r->status = 500;
    login_page(r, nonce, "Out of memory.");
    return NULL;
  }
  random_hex(s->token);
  random_hex(s->csrf);
  snprintf(s->login, sizeof s->login, "%s", f->login);
  s->db = db;
  s->last_s = console_now_s();
  pthread_mutex_init(&s->lock, NULL);
  pthread_mutex_lock(&c->lock);
  fail_slot *fs = fail_find(c, klogin); /* a login that succeeds: its name starts afresh */
  if (fs) fs->count = 0;
  fail_undo(c, kaddr); /* and this attempt was no failure of its address */
  pthread_mutex_unlock(&c->lock);
  if (!session_add(c, s)) {
    session_free(s);
    r->status = 503;
    login_page(r, nonce, "Too many console sessions are open: try again when some have ended.");
    mn_log(MN_LOG_WARN, "console: login refused, console.max_sessions open",
           MN_KV_S("login", f->login));
    return NULL;
  }
  mn_log(MN_LOG_INFO, "console: logged in", MN_KV_S("addr", addr), MN_KV_S("login", s->login));
  return s;
}
