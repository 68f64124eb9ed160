/*
 * test_rollback.c -- the production chain and the consumed documents under every order
 * of refresh, verdict, approval, rejection, promotion and rollback (migration 0006).
 *
 * A walk-back first: chain 1 -> 2 -> 3, repeated rollbacks give 2, 1, then a refusal;
 * a rolled-back checkpoint comes back only by id, with its documents.  Then a property
 * test: random sequences of the transitions, each called as the role that calls it in
 * production (the daemon's functions as mnemo_daemon, the decisions as mnemo_operator),
 * and after each step the production pointer, every checkpoint's state, the chain and
 * every document's consumed_by must match a model kept here.  The model is the rule in
 * words: production is trained on what its chain absorbed; a rollback makes the parent
 * production; a candidate reaches approval and production only while its parent is
 * production.
 */
#include "daemon/daemon.h"
#include "tests/db_test.h"
#include "tests/test.h"

#include <inttypes.h>

static PGconn *conn;
static char conninfo[600];

/* q -- run sql with params as role ("" for the owner); true on success; the first value
 * of the first row (if any) in val, the error message in msg */
static bool q(const char *role, const char *sql, int n, const char *const *p, char *val,
              size_t vlen, char *msg, size_t mlen)
{
  char set[96];
  PGresult *r = PQexec(conn, "BEGIN");
  PQclear(r);
  if (role[0]) {
    snprintf(set, sizeof set, "SET LOCAL ROLE %s", role);
    r = PQexec(conn, set);
    PQclear(r);
  }
  r = PQexecParams(conn, sql, n, NULL, p, NULL, NULL, 0);
  ExecStatusType st = PQresultStatus(r);
  bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
  if (val) snprintf(val, vlen, "%s", ok && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
  if (msg) snprintf(msg, mlen, "%s", ok ? "" : PQresultErrorMessage(r));
  PQclear(r);
  r = PQexec(conn, ok ? "COMMIT" : "ROLLBACK");
  PQclear(r);
  return ok;
}

static void must(const char *sql)
{
  char msg[512];
  if (!q("", sql, 0, NULL, NULL, 0, msg, sizeof msg)) {
    fprintf(stderr, "setup: %s: %s", sql, msg);
    exit(1);
  }
}

static void fresh_db(void)
{
  mn_error err = {0};
  int applied;
  if (conn) PQfinish(conn);
  t_db_fresh("rollback", conninfo, sizeof conninfo);
  db_options o = {.conninfo = conninfo, .connect_timeout_s = 10};
  if (db_connect(&o, &conn, &err) != MN_OK ||
      migrate_apply(conn, mn_migrations, mn_migrations_count, 10, &applied, &err) != MN_OK) {
    fprintf(stderr, "setup: %s\n", err.msg);
    exit(1);
  }
  must("INSERT INTO mnemo.languages (code, name, script) VALUES ('spa', 'Spanish', 'Latn')");
  must("INSERT INTO mnemo.sources (name) VALUES ('s')");
}

/* ---------------------------------------------------------------- the model */

#define MAXC 128
#define MAXD 2048

typedef struct {
  int64_t id, parent, watermark, job, promote_job;
  char state[24];
  bool was_production;
} mck;

static mck ck[MAXC];
static int nck;
static int64_t prod; /* model's production id */
static int64_t doc_id[MAXD];
static bool doc_train[MAXD];
static bool absorbed[MAXC][MAXD]; /* by checkpoint index, document index */
static bool trained[MAXC][MAXD];  /* a refresh's fresh documents, recorded at its start */
static int nd;
static unsigned doc_serial;

static mck *find(int64_t id)
{
  for (int i = 0; i < nck; i++)
    if (ck[i].id == id) return &ck[i];
  return NULL;
}

static int idx(int64_t id)
{
  mck *c = find(id);
  return c ? (int)(c - ck) : -1;
}

/* expected consumed_by of document d: the member of production's chain that absorbed it */
static int64_t expect_consumed(int d)
{
  for (mck *k = find(prod); k; k = k->parent ? find(k->parent) : NULL)
    if (absorbed[k - ck][d]) return k->id;
  return 0;
}

static void add_docs(int n)
{
  for (int i = 0; i < n && nd < MAXD; i++) {
    char text[64], sql[512], v[32];
    bool train = rand() % 5 != 0;
    snprintf(text, sizeof text, "documento %u", ++doc_serial);
    snprintf(sql, sizeof sql,
             "INSERT INTO mnemo.documents (lang, source_id, text, bytes, sha256, split) VALUES "
             "('spa', 1, '%s', octet_length('%s'), sha256('%s'), '%s') RETURNING id",
             text, text, text, train ? "train" : "heldout");
    if (!q("", sql, 0, NULL, v, sizeof v, NULL, 0)) exit(1);
    doc_id[nd] = strtoll(v, NULL, 10);
    doc_train[nd++] = train;
  }
}

/* absorb -- what a promotion of c consumes: what it trained on (a bootstrap: the fresh
 * train documents up to its watermark) */
static void absorb(int c, int64_t wm)
{
  bool boot = ck[c].parent == 0;
  for (int d = 0; d < nd; d++)
    if (expect_consumed(d) == 0 && (boot ? doc_train[d] && doc_id[d] <= wm : trained[c][d]))
      absorbed[c][d] = true;
}

static void set_state(int64_t id, const char *s)
{
  snprintf(find(id)->state, sizeof ck[0].state, "%s", s);
}

static void bootstrap(void)
{
  char v[32], wm[32];
  add_docs(20);
  snprintf(wm, sizeof wm, "%" PRId64, doc_id[nd - 1]);
  const char *p[] = {wm};
  T_CHECK(q("mnemo_operator", "SELECT mnemo.bootstrap($1::bigint, repeat('0', 64), 'base')", 1, p,
            v, sizeof v, NULL, 0));
  mck *c = &ck[nck++];
  memset(c, 0, sizeof *c);
  c->id = strtoll(v, NULL, 10);
  c->watermark = doc_id[nd - 1];
  c->was_production = true;
  snprintf(c->state, sizeof c->state, "production");
  prod = c->id;
  absorb(nck - 1, c->watermark);
}

/* ---------------------------------------------------------------- the transitions */

static int64_t open_refresh; /* the model's training checkpoint, 0: none */
/* what the property test exercised: promotions, rollbacks (walks and by id), refusals */
static int n_promoted, n_walked, n_by_id, n_refused;

static void refresh_start(void)
{
  if (open_refresh || nck >= MAXC) return;
  char v[32], job[32], wm[32];
  T_CHECK(
      q("mnemo_daemon", "SELECT mnemo.request_refresh('test')", 0, NULL, job, sizeof job, NULL, 0));
  snprintf(wm, sizeof wm, "%" PRId64, nd ? doc_id[nd - 1] : 0);
  const char *p[] = {job, wm};
  char msg[512];
  /* only a running refresh gets a candidate: the daemon claims the job first */
  T_CHECK(!q("mnemo_daemon", "SELECT mnemo.checkpoint_create($1::bigint, $2::bigint)", 2, p, v,
             sizeof v, msg, sizeof msg));
  T_CONTAINS(msg, "is not a running refresh");
  T_CHECK(q("", "UPDATE mnemo.jobs SET state = 'running' WHERE id = $1::bigint", 1, p, NULL, 0,
            NULL, 0));
  T_CHECK(q("mnemo_daemon", "SELECT mnemo.checkpoint_create($1::bigint, $2::bigint)", 2, p, v,
            sizeof v, NULL, 0));
  mck *c = &ck[nck++];
  memset(c, 0, sizeof *c);
  c->id = strtoll(v, NULL, 10);
  c->parent = prod;
  c->watermark = strtoll(wm, NULL, 10);
  c->job = strtoll(job, NULL, 10);
  snprintf(c->state, sizeof c->state, "training");
  open_refresh = c->id;
  /* what it trains on: the train documents up to its watermark that are fresh now */
  for (int d = 0; d < nd; d++)
    trained[nck - 1][d] = doc_train[d] && doc_id[d] <= c->watermark && expect_consumed(d) == 0;
}

static void refresh_verdict(bool pass)
{
  if (!open_refresh) return;
  char id[32], job[32], msg[512];
  mck *c = find(open_refresh);
  snprintf(id, sizeof id, "%" PRId64, c->id);
  snprintf(job, sizeof job, "%" PRId64, c->job);
  const char *p[] = {id, pass ? "awaiting_approval" : "rejected"};
  T_CHECK(q("mnemo_daemon",
            "SELECT mnemo.checkpoint_advance($1::bigint, 'candidate', '', NULL, NULL)", 1, p, NULL,
            0, msg, sizeof msg));
  T_CHECK_MSG(q("mnemo_daemon",
                "SELECT mnemo.checkpoint_advance($1::bigint, $2, 'guard', NULL, NULL)", 2, p, NULL,
                0, msg, sizeof msg),
              "verdict: %s", msg);
  set_state(c->id, pass && c->parent == prod ? "awaiting_approval" : "rejected");
  const char *pj[] = {job};
  T_CHECK(q("", "UPDATE mnemo.jobs SET state = 'succeeded' WHERE id = $1::bigint", 1, pj, NULL, 0,
            NULL, 0));
  open_refresh = 0;
}

static mck *pick(void)
{
  return nck ? &ck[rand() % nck] : NULL;
}

/* pick_in -- mostly one in state s (when there is one), sometimes any: refusals matter too */
static mck *pick_in(const char *s)
{
  int n = 0;
  for (int i = 0; i < nck; i++)
    n += strcmp(ck[i].state, s) == 0;
  if (n == 0 || rand() % 4 == 0) return pick();
  n = rand() % n;
  for (int i = 0; i < nck; i++)
    if (strcmp(ck[i].state, s) == 0 && n-- == 0) return &ck[i];
  return pick();
}

static void decide(bool approve)
{
  mck *c = pick_in("awaiting_approval");
  char id[32], v[32], msg[512];
  snprintf(id, sizeof id, "%" PRId64, c->id);
  const char *p[] = {id};
  bool ok = q("mnemo_operator",
              approve ? "SELECT mnemo.approve($1::bigint, 'looks good')"
                      : "SELECT mnemo.reject($1::bigint, 'no')",
              1, p, v, sizeof v, msg, sizeof msg);
  bool want = strcmp(c->state, "awaiting_approval") == 0 && (!approve || c->parent == prod);
  T_CHECK_MSG(ok == want, "%s %" PRId64 " (%s, parent %" PRId64 ", production %" PRId64 "): %s",
              approve ? "approve" : "reject", c->id, c->state, c->parent, prod,
              ok ? "succeeded" : msg);
  if (ok && approve) {
    set_state(c->id, "approved");
    c->promote_job = strtoll(v, NULL, 10);
  } else if (ok) {
    set_state(c->id, "rejected");
  }
}

static void promote(void)
{
  mck *c = pick_in("approved");
  if (!c->promote_job) return; /* only what an approval queued */
  char id[32], job[32], msg[512];
  snprintf(id, sizeof id, "%" PRId64, c->id);
  snprintf(job, sizeof job, "%" PRId64, c->promote_job);
  const char *p[] = {id, job};
  bool ok = q("mnemo_daemon", "SELECT mnemo.promote($1::bigint, $2::bigint)", 2, p, NULL, 0, msg,
              sizeof msg);
  bool again = strcmp(c->state, "production") == 0; /* a re-run: nothing changes */
  bool want = again || (strcmp(c->state, "approved") == 0 && c->parent == prod);
  T_CHECK_MSG(ok == want, "promote %" PRId64 " (%s): %s", c->id, c->state, ok ? "succeeded" : msg);
  if (ok && !again) {
    set_state(prod, "retired");
    set_state(c->id, "production");
    prod = c->id;
    c->was_production = true;
    absorb(idx(c->id), c->watermark);
    n_promoted++;
  }
}

static void rollback(int64_t to)
{
  char tos[32], v[32], msg[512];
  snprintf(tos, sizeof tos, "%" PRId64, to);
  const char *p[] = {"undo", to ? tos : NULL};
  bool ok = q("mnemo_operator", "SELECT mnemo.rollback($1, $2::bigint)", 2, p, v, sizeof v, msg,
              sizeof msg);
  mck *cur = find(prod), *t = to ? find(to) : find(cur->parent);
  bool want = t && t != cur && (!to || (strcmp(t->state, "retired") == 0 && t->was_production));
  T_CHECK_MSG(ok == want, "rollback to %" PRId64 " from %" PRId64 ": %s", to, prod,
              ok ? "succeeded" : msg);
  if (!ok || !want) {
    n_refused++;
    return;
  }
  T_EQ_INT(strtoll(v, NULL, 10), t->id);
  if (to)
    n_by_id++;
  else
    n_walked++;
  set_state(cur->id, "retired");
  set_state(t->id, "production");
  prod = t->id;
  for (int i = 0; i < nck; i++)
    if ((strcmp(ck[i].state, "awaiting_approval") == 0 || strcmp(ck[i].state, "approved") == 0) &&
        ck[i].parent != prod)
      set_state(ck[i].id, "rejected");
}

/* ---------------------------------------------------------------- the comparison */

static bool matches(const char *when)
{
  int before = t_failed_checks;
  char want[64];
  snprintf(want, sizeof want, "%" PRId64, prod);
  T_EQ_STR(t_db_value(conn, "SELECT coalesce(string_agg(id::text, ','), '') FROM "
                            "mnemo.checkpoints WHERE state = 'production'"),
           want);
  PGresult *r = PQexec(conn, "SELECT id, state FROM mnemo.checkpoints ORDER BY id");
  T_EQ_INT(PQntuples(r), nck);
  for (int i = 0; i < PQntuples(r) && i < nck; i++) {
    mck *c = find(strtoll(PQgetvalue(r, i, 0), NULL, 10));
    T_CHECK_MSG(c && strcmp(c->state, PQgetvalue(r, i, 1)) == 0,
                "checkpoint %s is %s, the model says %s", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                c ? c->state : "(none)");
  }
  PQclear(r);
  /* the chain, production first */
  char sql[160], chain[1024] = "", *w = chain;
  for (mck *k = find(prod); k; k = k->parent ? find(k->parent) : NULL)
    w +=
        snprintf(w, sizeof chain - (size_t)(w - chain), "%s%" PRId64, w == chain ? "" : ",", k->id);
  snprintf(sql, sizeof sql,
           "SELECT string_agg(id::text, ',' ORDER BY depth) FROM mnemo.chain(%" PRId64 ")", prod);
  T_EQ_STR(t_db_value(conn, sql), chain);
  r = PQexec(conn, "SELECT id, coalesce(consumed_by, 0) FROM mnemo.documents ORDER BY id");
  T_EQ_INT(PQntuples(r), nd);
  int bad = 0;
  for (int d = 0; d < PQntuples(r) && d < nd; d++) {
    int64_t got = strtoll(PQgetvalue(r, d, 1), NULL, 10), exp = expect_consumed(d);
    if (got != exp && bad++ < 3)
      T_CHECK_MSG(false, "document %" PRId64 " consumed by %" PRId64 ", the model says %" PRId64,
                  doc_id[d], got, exp);
  }
  PQclear(r);
  if (t_failed_checks != before) fprintf(stderr, "   after %s\n", when);
  return t_failed_checks == before;
}

/* ---------------------------------------------------------------- tests */

static void walk_back(void)
{
  fresh_db();
  nck = nd = 0, prod = 0, open_refresh = 0;
  memset(absorbed, 0, sizeof absorbed), memset(trained, 0, sizeof trained);
  bootstrap();
  int64_t base = prod;
  for (int i = 0; i < 2; i++) {
    add_docs(10);
    refresh_start();
    refresh_verdict(true);
    ck[nck - 1].promote_job = 0;
    char id[32], v[32], job[32];
    snprintf(id, sizeof id, "%" PRId64, ck[nck - 1].id);
    const char *p[] = {id};
    T_CHECK(
        q("mnemo_operator", "SELECT mnemo.approve($1::bigint, 'ok')", 1, p, v, sizeof v, NULL, 0));
    set_state(ck[nck - 1].id, "approved");
    snprintf(job, sizeof job, "%s", v);
    const char *pp[] = {id, job};
    T_CHECK(
        q("mnemo_daemon", "SELECT mnemo.promote($1::bigint, $2::bigint)", 2, pp, NULL, 0, NULL, 0));
    set_state(prod, "retired");
    set_state(ck[nck - 1].id, "production");
    prod = ck[nck - 1].id;
    ck[nck - 1].was_production = true;
    absorb(nck - 1, ck[nck - 1].watermark);
  }
  int64_t c2 = ck[1].id, c3 = ck[2].id;
  T_CHECK(matches("two promotions"));
  /* a report fixed by 3 and one by 2 */
  must("INSERT INTO mnemo.reports (claimed_lang, text) VALUES ('spa', 'uno'), ('spa', 'dos')");
  char sql[256];
  snprintf(sql, sizeof sql,
           "UPDATE mnemo.reports SET status = 'fixed', probe_lang = 'spa', fixed_bits = 1, "
           "fixed_by = CASE text WHEN 'uno' THEN %" PRId64 " ELSE %" PRId64 " END",
           c3, c2);
  must(sql);
  /* 3 -> 2 -> 1 -> refused: never back to 3 */
  rollback(0);
  T_EQ_INT(prod, c2);
  T_CHECK(matches("rollback 1"));
  T_EQ_STR(t_db_value(conn, "SELECT string_agg(status, ',' ORDER BY id) FROM mnemo.reports"),
           "accepted,fixed");
  rollback(0);
  T_EQ_INT(prod, base);
  T_CHECK(matches("rollback 2"));
  T_EQ_STR(t_db_value(conn, "SELECT string_agg(status, ',' ORDER BY id) FROM mnemo.reports"),
           "accepted,accepted");
  T_EQ_STR(t_db_value(conn, "SELECT count(*) FROM mnemo.documents WHERE consumed_by IS NOT NULL "
                            "AND consumed_by <> (SELECT id FROM mnemo.checkpoints WHERE state = "
                            "'production')"),
           "0");
  char msg[512];
  T_CHECK(
      !q("mnemo_operator", "SELECT mnemo.rollback('again')", 0, NULL, NULL, 0, msg, sizeof msg));
  T_CONTAINS(msg, "is the base of the production chain");
  /* by id: 3 comes back with what 2 and 3 absorbed */
  rollback(c3);
  T_EQ_INT(prod, c3);
  T_CHECK(matches("rollback to 3 by id"));
  T_EQ_STR(t_db_value(conn, "SELECT count(*) FROM mnemo.documents WHERE split = 'train' AND "
                            "consumed_by IS NULL"),
           "0");
  /* refusals: production itself, a never-promoted id, no id at all */
  T_CHECK(!q("mnemo_operator", "SELECT mnemo.rollback('x', $1::bigint)", 1,
             (const char *const[]){"999"}, NULL, 0, msg, sizeof msg));
  T_CONTAINS(msg, "no checkpoint 999");
  snprintf(sql, sizeof sql, "%" PRId64, c3);
  T_CHECK(!q("mnemo_operator", "SELECT mnemo.rollback('x', $1::bigint)", 1,
             (const char *const[]){sql}, NULL, 0, msg, sizeof msg));
  T_CONTAINS(msg, "production already");
  T_CHECK(!q("mnemo_daemon", "SELECT mnemo.rollback('x')", 0, NULL, NULL, 0, msg, sizeof msg));
  T_CONTAINS(msg, "permission denied");
  T_CHECK(
      !q("mnemo_operator", "SELECT mnemo.rollback(E' \\t ')", 0, NULL, NULL, 0, msg, sizeof msg));
  T_CONTAINS(msg, "needs a note");
  T_CHECK(matches("refusals"));
  /* the daemon's events tell its jobs' states as they are, once: no forged job_failed */
  snprintf(sql, sizeof sql, "%" PRId64, ck[1].job);
  const char *pj[] = {sql};
  T_CHECK(!q("mnemo_daemon", "SELECT mnemo.log_job_event('job_failed', $1::bigint, '{}')", 1, pj,
             NULL, 0, msg, sizeof msg));
  T_CONTAINS(msg, "cannot record job_failed");
  T_CHECK(q("mnemo_daemon", "SELECT mnemo.log_job_event('job_succeeded', $1::bigint, '{}')", 1, pj,
            NULL, 0, msg, sizeof msg));
  T_CHECK(!q("mnemo_daemon", "SELECT mnemo.log_job_event('job_succeeded', $1::bigint, '{}')", 1, pj,
             NULL, 0, msg, sizeof msg));
  T_CONTAINS(msg, "cannot record job_succeeded");
}

/* a candidate judged against a baseline that was rolled back never reaches production */
static void stale_candidates(void)
{
  fresh_db();
  nck = nd = 0, prod = 0, open_refresh = 0;
  memset(absorbed, 0, sizeof absorbed), memset(trained, 0, sizeof trained);
  bootstrap();
  add_docs(5);
  refresh_start();
  refresh_verdict(true);
  mck *c2 = &ck[nck - 1];
  char id[32], v[32];
  snprintf(id, sizeof id, "%" PRId64, c2->id);
  T_CHECK(q("mnemo_operator", "SELECT mnemo.approve($1::bigint, 'ok')", 1,
            (const char *const[]){id}, v, sizeof v, NULL, 0));
  set_state(c2->id, "approved");
  c2->promote_job = strtoll(v, NULL, 10);
  promote();
  while (prod != c2->id)
    promote(); /* pick() is random: until it picks c2 */
  /* a refresh of 2 awaits approval; another trains; 2 is rolled back */
  add_docs(5);
  refresh_start();
  refresh_verdict(true);
  int64_t waiting = ck[nck - 1].id;
  add_docs(5);
  refresh_start();
  rollback(0);
  T_CHECK(matches("rollback with open candidates"));
  T_EQ_STR(find(waiting)->state, "rejected");
  refresh_verdict(true); /* its parent is not production: rejected, not awaiting */
  T_CHECK(matches("verdict of a stale refresh"));
  snprintf(id, sizeof id, "%" PRId64, waiting);
  T_EQ_STR(t_db_value(conn, "SELECT reasons FROM mnemo.checkpoints ORDER BY id DESC LIMIT 1"),
           "its baseline, checkpoint 2, is no longer production (1 is)");
}

/* a document whose ingest commits after the refresh read its watermark, with an id below
 * it, was never trained on: the promotion leaves it fresh for the next refresh */
static void late_commit(void)
{
  fresh_db();
  nck = nd = 0, prod = 0, open_refresh = 0;
  memset(absorbed, 0, sizeof absorbed), memset(trained, 0, sizeof trained);
  bootstrap();
  PGconn *slow = PQconnectdb(conninfo);
  T_CHECK(PQstatus(slow) == CONNECTION_OK);
  PGresult *r = PQexec(slow, "BEGIN; INSERT INTO mnemo.documents (lang, source_id, text, bytes, "
                             "sha256, split) VALUES ('spa', 1, 'tarde', 5, sha256('tarde'), "
                             "'train')");
  T_CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
  PQclear(r);
  add_docs(3); /* committed, with ids above the slow one's */
  refresh_start();
  r = PQexec(slow, "COMMIT");
  PQclear(r);
  PQfinish(slow);
  int64_t cand = ck[nck - 1].id;
  refresh_verdict(true);
  char id[32], v[32];
  snprintf(id, sizeof id, "%" PRId64, cand);
  T_CHECK(q("mnemo_operator", "SELECT mnemo.approve($1::bigint, 'ok')", 1,
            (const char *const[]){id}, v, sizeof v, NULL, 0));
  T_CHECK(q("mnemo_daemon", "SELECT mnemo.promote($1::bigint, $2::bigint)", 2,
            (const char *const[]){id, v}, NULL, 0, NULL, 0));
  T_EQ_STR(t_db_value(conn, "SELECT coalesce(consumed_by::text, 'fresh') FROM mnemo.documents "
                            "WHERE text = 'tarde'"),
           "fresh");
  char sql[160], want[16];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM mnemo.documents WHERE consumed_by = %" PRId64,
           cand);
  snprintf(want, sizeof want, "%d", doc_train[nd - 1] + doc_train[nd - 2] + doc_train[nd - 3]);
  T_EQ_STR(t_db_value(conn, sql), want); /* the three, those of them that are train */
}

static void property(void)
{
  static const unsigned seeds[] = {1, 2, 3, 4, 5};
  for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++) {
    srand(seeds[s]);
    fresh_db();
    nck = nd = 0, prod = 0, open_refresh = 0;
    memset(absorbed, 0, sizeof absorbed), memset(trained, 0, sizeof trained);
    bootstrap();
    char when[96];
    for (int step = 0; step < 200; step++) {
      int a = rand() % 100;
      const char *what;
      if (a < 15)
        what = "documents", add_docs(1 + rand() % 4);
      else if (a < 30)
        what = "refresh", refresh_start();
      else if (a < 45)
        what = "verdict", refresh_verdict(rand() % 4 != 0);
      else if (a < 60)
        what = "approve", decide(true);
      else if (a < 65)
        what = "reject", decide(false);
      else if (a < 82)
        what = "promote", promote();
      else if (a < 93)
        what = "rollback", rollback(0);
      else
        what = "rollback by id", rollback(pick()->id);
      snprintf(when, sizeof when, "seed %u step %d (%s)", seeds[s], step, what);
      if (!matches(when)) break;
    }
    fprintf(stderr, "   seed %u: %d checkpoints, %d documents\n", seeds[s], nck, nd);
  }
  fprintf(stderr, "   %d promotions, %d rollbacks (walks), %d by id, %d refused\n", n_promoted,
          n_walked, n_by_id, n_refused);
  /* the sequences exercised what they are for */
  T_CHECK(n_promoted >= 15 && n_walked >= 15 && n_by_id >= 3 && n_refused >= 3);
}

int main(void)
{
  T_RUN(walk_back);
  T_RUN(stale_candidates);
  T_RUN(late_commit);
  T_RUN(property);
  PQfinish(conn);
  t_db_drop("rollback");
  return T_DONE();
}
