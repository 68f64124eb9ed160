/*
 * triage.c -- the daemon's triage of user reports (triage.h, docs/triage.md).
 *
 * A thread with its own connection (bgthread.h), LISTENing on mnemo_reports: when reports
 * arrive it writes the new ones (and the signatures of the open ones of their languages) to
 * a batch file (common/protocol.h), runs `mnemo triage` on it as a child (child.h) -- the
 * production model and the language
 * identifier are the worker's business, not the daemon's -- and records each result with
 * mnemo.triage_record in one transaction.  Reports are never lost: a report stays `new`
 * until a result for it is recorded, so a crash anywhere means it is triaged again.
 *
 * What the worker needs is kept under daemon.data_dir/triage: the language identifier,
 * trained from the stored training documents and trained again when the set of languages
 * with training text changes, and the worker's config.  Each production checkpoint keeps
 * its languages' typical bits per byte in checkpoints/<id>/typical.json, computed by the
 * first triage run after it became production (or when the thread has nothing else to do).
 */
#define _GNU_SOURCE
#include "daemon/triage.h"
#include "common/protocol.h"
#include "daemon/bgthread.h"
#include "daemon/child.h"
#include "daemon/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define TYPICAL_ITEMS   8     /* held-out documents per language for its typical bits per byte */
#define TYPICAL_CHARS   256   /* of each, the first characters */
#define OPEN_SIGNATURES 20000 /* open reports a new one is compared with, newest first */
#define CHILD_TIMEOUT_S 1800

/* KEY -- a batch key of protocol.h as an SQL string literal: KEY(MN_BATCH_ID) is 'id' */
#define KEY(k) "'" k "'"

/* BATCH_SQL -- the batch in (protocol.h), one JSON object a row: the open reports of the new
 * ones' languages first (what a new one may repeat), the newest $2 of them; then the new
 * ones, oldest first, at most $1.  The keys come from protocol.h, so the worker reads what
 * the daemon writes.  Not formatted by clang-format: cut where the SQL reads best. */
/* clang-format off */
static const char BATCH_SQL[] =
    "SELECT j FROM ("
    " SELECT 0 AS k, id, json_build_object("
    KEY(MN_BATCH_KIND) ", " KEY(MN_BATCH_KIND_OPEN) ","
    " " KEY(MN_BATCH_ID) ", id,"
    " " KEY(MN_BATCH_GROUP) ", group_id,"
    " " KEY(MN_BATCH_LANG) ", claimed_lang,"
    " " KEY(MN_BATCH_MINHASH) ", encode(minhash, 'hex')) AS j"
    " FROM (SELECT * FROM mnemo.reports WHERE status IN ('triaged', 'accepted')"
    " AND minhash IS NOT NULL AND claimed_lang IN (SELECT claimed_lang"
    " FROM mnemo.reports WHERE status = 'new') ORDER BY id DESC"
    " LIMIT $2::int) o"
    " UNION ALL"
    " SELECT 1, id, json_build_object("
    KEY(MN_BATCH_KIND) ", " KEY(MN_BATCH_KIND_NEW) ","
    " " KEY(MN_BATCH_ID) ", r.id,"
    " " KEY(MN_BATCH_LANG) ", r.claimed_lang,"
    " " KEY(MN_BATCH_SCRIPT) ", l.script,"
    " " KEY(MN_BATCH_TEXT) ", r.text,"
    " " KEY(MN_BATCH_EXPECTED) ", r.expected_text)"
    " FROM (SELECT * FROM mnemo.reports WHERE status = 'new'"
    " ORDER BY id LIMIT $1::int) r"
    " JOIN mnemo.languages l ON l.code = r.claimed_lang) x ORDER BY k, id";
/* clang-format on */

struct triager {
  bgthread *bg;
  char *yaml;
  char dir[PATH_MAX], data_dir[PATH_MAX], worker[PATH_MAX];
  int64_t batch, lid_max_bytes;
};

static bool exists(const char *p)
{
  struct stat st;
  return stat(p, &st) == 0;
}

/* run_child -- argv with stdout into out (NULL: /dev/null) and stderr appended to the log;
 * waits for it (killed after CHILD_TIMEOUT_S or when the thread is asked to stop); MN_OK
 * when it exited 0 */
static mn_status run_child(triager *t, bgthread *bg, char *const *argv, const char *out,
                           mn_error *err)
{
  char log[PATH_MAX + 16];
  snprintf(log, sizeof log, "%s/worker.log", t->dir);
  int lfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  int ofd = open(out ? out : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (lfd < 0 || ofd < 0) {
    if (lfd >= 0) close(lfd);
    if (ofd >= 0) close(ofd);
    return mn_error_set(err, MN_ERR_IO, "could not start the triage worker (%s): %s", log,
                        strerror(errno));
  }
  child ch;
  child_init(&ch);
  mn_status rc = child_spawn(&ch, argv, ofd, lfd, "==", err);
  close(lfd), close(ofd);
  if (rc != MN_OK) return rc;
  if (child_wait(&ch, CHILD_TIMEOUT_S * 1000, bgthread_stop_fd(bg)) != CHILD_EXITED)
    child_kill(&ch);
  int code = child_exit_code(&ch), st = ch.status;
  child_fini(&ch);
  if (code == 0) return MN_OK;
  return mn_error_set(err, MN_ERR_INTERNAL, "the triage worker (%s) failed: %s %d; see %s", argv[1],
                      WIFEXITED(st) ? "exit" : "signal",
                      WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), log);
}

static mn_status query1(PGconn *c, const char *sql, char *out, size_t n, mn_error *err)
{
  PGresult *res;
  mn_status rc = db_query(c, sql, 0, NULL, &res, sql, err);
  if (rc != MN_OK) return rc;
  snprintf(out, n, "%s", PQntuples(res) && !PQgetisnull(res, 0, 0) ? PQgetvalue(res, 0, 0) : "");
  PQclear(res);
  return MN_OK;
}

/* ensure_lid -- the language identifier, trained again when the languages with training
 * text are not those it was trained on */
static mn_status ensure_lid(triager *t, bgthread *bg, PGconn *c, mn_error *err)
{
  char langs[8192], path[PATH_MAX + 32], model[PATH_MAX + 32], have[8192] = "";
  mn_status rc = query1(c,
                        "SELECT string_agg(code, ',' ORDER BY code) FROM mnemo.languages l"
                        " WHERE enabled AND EXISTS (SELECT 1 FROM mnemo.documents d"
                        " WHERE d.lang = l.code AND d.split = 'train')",
                        langs, sizeof langs, err);
  if (rc != MN_OK) return rc;
  snprintf(path, sizeof path, "%s/lid.langs", t->dir);
  snprintf(model, sizeof model, "%s/lid.model", t->dir);
  FILE *f = fopen(path, "r");
  if (f) {
    if (!fgets(have, sizeof have, f)) have[0] = 0;
    fclose(f);
  }
  if (!langs[0])
    return mn_error_set(err, MN_ERR_STATE, "no training documents to learn languages from");
  if (exists(model) && strcmp(have, langs) == 0) return MN_OK;
  char train[PATH_MAX + 32], max[32];
  snprintf(train, sizeof train, "%s/lid-train.jsonl", t->dir);
  snprintf(max, sizeof max, "%lld", (long long)t->lid_max_bytes);
  int64_t n;
  double t0 = mn_monotonic_ms();
  /* each enabled language's newest training text, up to the budget */
  rc = db_export_jsonl(c,
                       "SELECT json_build_object('lang', lang, 'text', text) FROM ("
                       " SELECT d.lang, d.text, d.bytes, sum(d.bytes) OVER (PARTITION BY d.lang"
                       " ORDER BY d.id DESC) AS upto FROM mnemo.documents d"
                       " JOIN mnemo.languages l ON l.code = d.lang AND l.enabled"
                       " WHERE d.split = 'train') x WHERE upto - bytes < $1::bigint",
                       1, (const char *const[]){max}, train, &n, err);
  char *argv[] = {t->worker, "lid", "train", "--out", model, "--max-bytes", max, train, NULL};
  if (rc == MN_OK) rc = run_child(t, bg, argv, NULL, err);
  unlink(train);
  if (rc == MN_OK) rc = mn_write_file_atomic(path, langs, strlen(langs), 0640, err);
  if (rc == MN_OK)
    mn_log(MN_LOG_INFO, "triage: language identifier trained", MN_KV_S("languages", langs),
           MN_KV_I("documents", n), MN_KV_D("seconds", (mn_monotonic_ms() - t0) / 1e3));
  return rc;
}

/* record -- the worker's results (protocol.h's batch, out), one transaction */
static mn_status record(PGconn *c, const char *path, int *counts, mn_error *err)
{
  mn_jsonl in;
  mn_status rc = mn_jsonl_open(&in, path, err);
  if (rc != MN_OK) return rc;
  rc = db_exec(c, "BEGIN", err);
  json_t *o = NULL;
  while (rc == MN_OK && (rc = mn_jsonl_next(&in, &o, err)) == MN_OK && o) {
    json_t *id = json_object_get(o, MN_BATCH_ID);
    if (!json_is_integer(id)) {
      json_decref(o);
      rc = mn_jsonl_fail(&in, err, MN_ERR_CORRUPT, "a result without an id");
      break;
    }
    char sid[32], sev[32], grp[32], hex[600];
    snprintf(sid, sizeof sid, "%lld", (long long)json_integer_value(id));
    json_t *s = json_object_get(o, MN_BATCH_SEVERITY), *g = json_object_get(o, MN_BATCH_GROUP);
    snprintf(sev, sizeof sev, "%.17g", json_number_value(s));
    snprintf(grp, sizeof grp, "%lld", (long long)json_integer_value(g));
    const char *mh = json_string_value(json_object_get(o, MN_BATCH_MINHASH));
    snprintf(hex, sizeof hex, "\\x%s", mh ? mh : "");
    bool valid = json_is_true(json_object_get(o, MN_BATCH_VALID));
    const char *why = json_string_value(json_object_get(o, MN_BATCH_WHY));
    /* the id and the minhash have columns of their own; the rest is the detail */
    json_object_del(o, MN_BATCH_MINHASH);
    json_object_del(o, MN_BATCH_ID);
    char *detail = json_dumps(o, JSON_COMPACT);
    const char *p[] = {sid,
                       json_string_value(json_object_get(o, MN_BATCH_DETECTED)),
                       json_is_number(s) ? sev : NULL,
                       json_is_integer(g) ? grp : NULL,
                       mh ? hex : NULL,
                       detail,
                       valid ? NULL : (why ? why : "unusable")};
    PGresult *res;
    rc = db_query(c,
                  "SELECT mnemo.triage_record($1::bigint, $2::text, $3::float8, $4::bigint,"
                  " $5::bytea, $6::jsonb, $7::text)",
                  7, p, &res, "record a report's triage", err);
    if (rc == MN_OK) {
      const char *stt = PQgetvalue(res, 0, 0);
      counts[strcmp(stt, "rejected") == 0 ? 1 : strcmp(stt, "accepted") == 0 ? 2 : 0]++;
      PQclear(res);
    }
    free(detail);
    json_decref(o);
  }
  mn_jsonl_close(&in);
  if (rc == MN_OK) return db_exec(c, "COMMIT", err);
  PQclear(PQexec(c, "ROLLBACK"));
  return rc;
}

/* pass -- one batch; *more when a full batch was taken (others may wait) */
static mn_status pass(triager *t, bgthread *bg, PGconn *c, bool *more, mn_error *err)
{
  *more = false;
  char prod[32], batch[32];
  mn_status rc = query1(c, "SELECT id FROM mnemo.checkpoints WHERE state = 'production'", prod,
                        sizeof prod, err);
  if (rc != MN_OK || !prod[0]) return rc; /* nothing to score with: reports wait */
  char typical[PATH_MAX + 64], model[PATH_MAX + 64], heldout[PATH_MAX + 32], in[PATH_MAX + 32],
      out[PATH_MAX + 32], lid[PATH_MAX + 32], cfg[PATH_MAX + 32];
  snprintf(typical, sizeof typical, "%s/checkpoints/%s/typical.json", t->data_dir, prod);
  snprintf(model, sizeof model, "%s/checkpoints/%s/model.safetensors", t->data_dir, prod);
  snprintf(heldout, sizeof heldout, "%s/heldout.jsonl", t->dir);
  snprintf(in, sizeof in, "%s/batch.jsonl", t->dir);
  snprintf(out, sizeof out, "%s/results.jsonl", t->dir);
  snprintf(lid, sizeof lid, "%s/lid.model", t->dir);
  snprintf(cfg, sizeof cfg, "%s/config.yaml", t->dir);
  snprintf(batch, sizeof batch, "%lld", (long long)t->batch);
  char count[32], nopen[32];
  rc = query1(c, "SELECT count(*) FROM mnemo.reports WHERE status = 'new'", count, sizeof count,
              err);
  int64_t nnew = rc == MN_OK ? strtoll(count, NULL, 10) : 0, n;
  if (nnew > t->batch) nnew = t->batch;
  bool need_typical = !exists(typical);
  if (rc != MN_OK || (nnew == 0 && !need_typical)) return rc;
  if ((rc = ensure_lid(t, bg, c, err)) != MN_OK) return rc;
  snprintf(nopen, sizeof nopen, "%d", OPEN_SIGNATURES);
  rc = db_export_jsonl(c, BATCH_SQL, 2, (const char *const[]){batch, nopen}, in, &n, err);
  if (rc == MN_OK) rc = mn_write_file_atomic(cfg, t->yaml, strlen(t->yaml), 0640, err);
  char items[16], chars[16];
  snprintf(items, sizeof items, "%d", TYPICAL_ITEMS);
  snprintf(chars, sizeof chars, "%d", TYPICAL_CHARS);
  if (rc == MN_OK && need_typical) /* the newest held-out text of each language */
    rc = db_export_jsonl(c,
                         "SELECT json_build_object('lang', lang, 'text', left(text, $2::int))"
                         " FROM (SELECT lang, text, id, row_number() OVER (PARTITION BY lang"
                         " ORDER BY id DESC) AS k FROM mnemo.documents WHERE split = 'heldout')"
                         " d WHERE k <= $1::int ORDER BY id",
                         2, (const char *const[]){items, chars}, heldout, &n, err);
  char *argv[16] = {t->worker, "--config", cfg, "triage",    "--checkpoint",
                    model,     "--model",  lid, "--typical", typical};
  int argc = 10;
  if (need_typical) argv[argc++] = "--heldout", argv[argc++] = heldout;
  argv[argc++] = in;
  argv[argc] = NULL;
  double t0 = mn_monotonic_ms();
  if (rc == MN_OK) rc = run_child(t, bg, argv, out, err);
  if (need_typical) unlink(heldout);
  int counts[3] = {0, 0, 0};
  if (rc == MN_OK && nnew > 0) rc = record(c, out, counts, err);
  if (rc == MN_OK && nnew > 0)
    mn_log(MN_LOG_INFO, "reports triaged", MN_KV_I("reports", counts[0] + counts[1] + counts[2]),
           MN_KV_I("triaged", counts[0]), MN_KV_I("rejected", counts[1]),
           MN_KV_I("joined_accepted", counts[2]),
           MN_KV_D("seconds", (mn_monotonic_ms() - t0) / 1e3));
  else if (rc == MN_OK)
    mn_log(MN_LOG_INFO, "triage: typical bits per byte computed", MN_KV_S("checkpoint", prod),
           MN_KV_D("seconds", (mn_monotonic_ms() - t0) / 1e3));
  *more = rc == MN_OK && nnew == t->batch;
  return rc;
}

/* drain -- true when notifications were waiting (read from the socket or held by libpq) */
static bool drain(PGconn *c)
{
  bool any = false;
  PGnotify *nt;
  PQconsumeInput(c);
  while ((nt = PQnotifies(c)) != NULL) {
    any = true;
    PQfreemem(nt);
  }
  return any;
}

static mn_status listen_reports(PGconn *c, void *ctx, mn_error *err)
{
  (void)ctx;
  return db_exec(c, "LISTEN mnemo_reports", err);
}

/* triage_round -- one round of the thread (bgthread.h): one batch */
static bgthread_next triage_round(bgthread *bg, PGconn *c, void *ctx, int *wait_ms)
{
  (void)wait_ms;
  mn_error err = {0};
  bool more = false;
  drain(c);
  if (pass(ctx, bg, c, &more, &err) != MN_OK) {
    mn_log_error("triage failed; reports wait for the next try", &err);
    return BGTHREAD_FAILED;
  }
  /* reports that arrived during the pass: their notifications may have come in with its
   * statements' results, read by libpq already, so the socket will not say so */
  return more || drain(c) ? BGTHREAD_AGAIN : BGTHREAD_IDLE;
}

mn_status triager_create(const mn_config *cfg, const char *worker, triager **out, mn_error *err)
{
  *out = NULL;
  triager *t = calloc(1, sizeof *t);
  if (!t) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  mn_buf y;
  mn_buf_init(&y, 1 << 20);
  mn_status rc = mn_config_dump_worker(cfg, &y, err);
  snprintf(t->data_dir, sizeof t->data_dir, "%s", cfg->daemon.data_dir);
  snprintf(t->dir, sizeof t->dir, "%s/triage", cfg->daemon.data_dir);
  snprintf(t->worker, sizeof t->worker, "%s", worker);
  t->yaml = rc == MN_OK ? strndup(y.data, y.len) : NULL;
  mn_buf_fini(&y);
  t->batch = cfg->triage.batch;
  t->lid_max_bytes = cfg->triage.lid_max_bytes;
  if (rc == MN_OK && (mkdir(cfg->daemon.data_dir, 0750) != 0 && errno != EEXIST))
    rc = mn_error_set(err, MN_ERR_IO, "could not create \"%s\": %s", cfg->daemon.data_dir,
                      strerror(errno));
  if (rc == MN_OK && mkdir(t->dir, 0750) != 0 && errno != EEXIST)
    rc = mn_error_set(err, MN_ERR_IO, "could not create \"%s\": %s", t->dir, strerror(errno));
  if (rc == MN_OK && !t->yaml) rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  bgthread_spec spec = {.name = "triage",
                        .conninfo = cfg->database.conninfo,
                        .connect_timeout_s = cfg->database.connect_timeout_s,
                        .watch_socket = true,
                        .fail_backoff_max_ms = 60000,
                        .setup = listen_reports,
                        .round = triage_round,
                        .ctx = t};
  if (rc == MN_OK) rc = bgthread_create(&spec, &t->bg, err);
  if (rc != MN_OK) {
    free(t->yaml), free(t);
    return rc;
  }
  *out = t;
  return MN_OK;
}

void triager_destroy(triager *t)
{
  if (!t) return;
  bgthread_destroy(t->bg); /* first: the thread uses t; its worker is killed */
  free(t->yaml);
  free(t);
}
