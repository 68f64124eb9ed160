/*
 * ctl_refresh.c -- mnemoctl's commands for refreshes and their decisions: bootstrap,
 * refresh, jobs, cancel, status, candidates, show, approve, reject, rollback, lineage,
 * generate.
 *
 * Decisions are SQL functions of migration 0004 that only mnemo_operator may execute; a
 * refusal here is the database's, quoted with its SQLSTATE.
 */
#define _GNU_SOURCE /* readlink */
#include "daemon/card.h"
#include "daemon/ctl/ctl_int.h"
#include "trainer/trainer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ckpt_arg -- a checkpoint id, or "production" (resolved by the caller's query) */
static bool ckpt_arg(const char *s, int64_t *id)
{
  if (strcmp(s, "production") == 0) {
    *id = 0;
    return true;
  }
  return mn_parse_i64(s, id) && *id > 0;
}

/* resolve -- "production" to its id */
static mn_status resolve(PGconn *conn, int64_t *id, mn_error *err)
{
  if (*id > 0) return MN_OK;
  PGresult *r;
  mn_status rc = db_query(conn, "SELECT id FROM mnemo.checkpoints WHERE state = 'production'", 0,
                          NULL, &r, "could not find the production checkpoint", err);
  if (rc != MN_OK) return rc;
  if (PQntuples(r) == 1) *id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
  PQclear(r);
  if (*id == 0)
    return mn_error_set(err, MN_ERR_INPUT,
                        "no production checkpoint: register one with mnemoctl bootstrap");
  return MN_OK;
}

/* ---------------------------------------------------------------- bootstrap */

/* checkpoint_tags_in_database_numbering -- meta's tags (the model's ids, from its tokenizer's
 * first tag id) moved to the database's numbering (from TOK_FIRST_TAG); the byte tokenizer's
 * are already.  A checkpoint carrying another tokenizer is read once more for it. */
static mn_status checkpoint_tags_in_database_numbering(const char *path, ckpt_meta *meta,
                                                       mn_error *err)
{
  tokenizer *bytes = NULL, *tok = NULL;
  mn_status rc = tok_create_bytes(&bytes, err);
  if (rc != MN_OK || strcmp(meta->tok_sha256, tok_sha256(bytes)) == 0) goto out;
  if ((rc = tok_load(path, &tok, NULL, err)) != MN_OK) goto out;
  rc = tok_tags_rebase(&meta->tags, tok_base(tok), TOK_FIRST_TAG, err);
  if (rc != MN_OK) mn_error_prefix(err, "cannot register \"%s\"", path);
out:
  tok_destroy(bytes);
  tok_destroy(tok);
  return rc;
}

/* tags_match_database -- MN_OK when every language tag of the checkpoint at path is the
 * database's: the same language with the same id.  Refused (MN_ERR_INPUT, naming the language
 * and both ids): a language both know with different ids, a tag id the database gave to
 * another language, and a language the database does not know (its id would be whatever
 * the database assigns next, and a later tag could never be trusted). */
static mn_status tags_match_database(const char *path, const tok_tags *ck, const tok_tags *db,
                                     mn_error *err)
{
  for (int i = 0; i < ck->n; i++) {
    const char *code = ck->t[i].code;
    int id = ck->t[i].id, want = tok_tag_of(db, code);
    const char *owner = tok_code_of(db, id);
    if (want == id) continue;
    if (want >= 0)
      mn_error_set(err, MN_ERR_INPUT,
                   "cannot register \"%s\": language \"%s\" has tag %d in the checkpoint but "
                   "tag %d in the database",
                   path, code, id, want);
    else if (owner)
      mn_error_set(err, MN_ERR_INPUT,
                   "cannot register \"%s\": tag %d is language \"%s\" in the checkpoint but "
                   "language \"%s\" in the database, which has no tag for \"%s\"",
                   path, id, code, owner, code);
    else
      mn_error_set(err, MN_ERR_INPUT,
                   "cannot register \"%s\": language \"%s\" (tag %d in the checkpoint) is not "
                   "in the database",
                   path, code, id);
    return mn_error_detail(err,
                           "a model's tags must be the ones the database assigned (mnemoctl lang "
                           "list; a new language gets its tag from mnemoctl lang add): train it "
                           "on shards made with the database's table (mnemoctl export --out DIR "
                           "writes DIR/tags.tsv; mnemo shard --tags)");
  }
  return MN_OK;
}

static int cmd_bootstrap(ctl *c, int argc, char **argv)
{
  mn_error err = {0};
  PGconn *conn = NULL;
  PGresult *res = NULL;
  if (argc != 1) return ctl_usage("bootstrap takes one CHECKPOINT file");
  struct stat st;
  if (stat(argv[0], &st) != 0)
    return ctl_usage("could not read checkpoint \"%s\": %s", argv[0], strerror(errno));
  /* a checkpoint, of a model its file holds, before anything is registered (its header,
   * shapes and sizes: the worker verifies the weights' checksum at each load) */
  static ckpt_meta meta;
  if (ckpt_read_meta(argv[0], &meta, &err) != MN_OK) return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  if (ctl_connect(c, &conn, &err) != MN_OK) return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  /* its language tags must be the database's: a tag id never changes once assigned */
  static tok_tags db_tags;
  if (db_query(conn, "SELECT code, tag_id FROM mnemo.languages ORDER BY code", 0, NULL, &res,
               "could not read the languages", &err) != MN_OK)
    return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  db_tags.n = 0;
  for (int i = 0; i < PQntuples(res); i++) {
    int64_t id = 0;
    if (!mn_parse_i64(PQgetvalue(res, i, 1), &id) || id > INT_MAX ||
        tok_tags_add(&db_tags, PQgetvalue(res, i, 0), (int)id, &err) != MN_OK) {
      mn_error_set(&err, MN_ERR_DB, "could not read the languages: bad tag id \"%s\" of \"%s\"",
                   PQgetvalue(res, i, 1), PQgetvalue(res, i, 0));
      return ctl_done(conn, res, &err, MN_EXIT_FAIL);
    }
  }
  PQclear(res);
  res = NULL;
  if (checkpoint_tags_in_database_numbering(argv[0], &meta, &err) != MN_OK ||
      tags_match_database(argv[0], &meta.tags, &db_tags, &err) != MN_OK)
    return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  if (db_exec(conn, "BEGIN", &err) != MN_OK) return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  const char *p[] = {c->a.trained_on_stored ? "t" : "f", c->a.note ? c->a.note : "",
                     meta.sha256[0] ? meta.sha256 : NULL};
  if (db_query(conn,
               "SELECT mnemo.bootstrap(CASE WHEN $1::bool THEN (SELECT coalesce(max(id), 0)"
               " FROM mnemo.documents) ELSE 0 END, $3, $2)",
               3, p, &res, "could not register the checkpoint", &err) != MN_OK)
    return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  int64_t id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
  PQclear(res);
  res = NULL;
  /* the files first, the row's commit last: a failure leaves no row naming missing files */
  char dir[PATH_MAX], to[PATH_MAX];
  snprintf(dir, sizeof dir, "%s/checkpoints/%lld", c->cfg.daemon.data_dir, (long long)id);
  char parent[PATH_MAX];
  snprintf(parent, sizeof parent, "%s/checkpoints", c->cfg.daemon.data_dir);
  mkdir(c->cfg.daemon.data_dir, 0750);
  mkdir(parent, 0750);
  if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
    mn_error_set(&err, MN_ERR_IO, "could not create \"%s\": %s", dir, strerror(errno));
    return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  }
  struct {
    const char *from, *name;
  } files[] = {{argv[0], "model.safetensors"},
               {c->a.replay, "replay.store"},
               {c->a.fisher, "fisher.safetensors"}};
  for (size_t i = 0; i < 3; i++) {
    if (!files[i].from) continue;
    snprintf(to, sizeof to, "%s/%s", dir, files[i].name);
    if (mn_copy_file_atomic(files[i].from, to, 0640, &err) != MN_OK)
      return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  }
  if (db_exec(conn, "COMMIT", &err) != MN_OK) return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  if (c->json)
    ctl_print_json(json_pack("{s:I, s:s}", "checkpoint", (json_int_t)id, "dir", dir));
  else {
    const char *later = c->a.replay && c->a.fisher ? ""
                        : c->a.replay ? "; its Fisher is estimated by the first refresh"
                        : c->a.fisher
                            ? "; its replay store is filled by the first refresh"
                            : "; its replay store and Fisher are built by the first refresh";
    printf("checkpoint %lld is production (%s)%s\n", (long long)id, dir, later);
  }
  return ctl_done(conn, res, &err, MN_EXIT_OK);
}

/* ---------------------------------------------------------------- jobs */

static int cmd_refresh(ctl *c, int argc, char **argv)
{
  mn_error err = {0};
  PGconn *conn = NULL;
  PGresult *res = NULL;
  if (argc != 0) return ctl_usage("refresh takes no arguments (got \"%s\")", argv[0]);
  const char *p[] = {c->a.note ? c->a.note : "mnemoctl refresh"};
  /* in one transaction: the job is this call's when its row was written by this
   * transaction (xmin), whatever another caller did at the same moment */
  if (ctl_connect(c, &conn, &err) != MN_OK || db_exec(conn, "BEGIN", &err) != MN_OK ||
      db_query(conn, "WITH r AS (SELECT mnemo.request_refresh($1) AS id) SELECT r.id FROM r", 1, p,
               &res, "could not queue a refresh", &err) != MN_OK)
    return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  const char *q[] = {PQgetvalue(res, 0, 0)};
  PGresult *job = NULL;
  if (db_query(conn,
               "SELECT id, coalesce(retry_of::text, ''),"
               " CASE WHEN xmin = pg_current_xact_id()::xid THEN '' ELSE state END,"
               " requested_by FROM mnemo.jobs WHERE id = $1::bigint",
               1, q, &job, "could not read the refresh", &err) != MN_OK ||
      db_exec(conn, "COMMIT", &err) != MN_OK) {
    PQclear(job);
    return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  }
  PQclear(res);
  res = job;
  const char *retry_of = PQgetvalue(res, 0, 1), *state = PQgetvalue(res, 0, 2);
  bool queued = !*state; /* this call made it */
  if (c->json)
    ctl_print_json(json_pack("{s:I, s:b, s:s, s:o}", "job",
                             (json_int_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10), "queued", queued,
                             "state", queued ? "queued" : state, "retry_of",
                             *retry_of ? json_integer(strtoll(retry_of, NULL, 10)) : json_null()));
  else if (*retry_of) /* a guard's retry holds the one refresh slot: on older documents */
    printf("refresh job %s is in flight already: a guard's retry of refresh %s, on its "
           "documents; request again when it ends to train on what arrived since\n",
           PQgetvalue(res, 0, 0), retry_of);
  else if (queued)
    printf("refresh job %s queued\n", PQgetvalue(res, 0, 0));
  else
    printf("refresh job %s is %s already (asked by %s): nothing new queued; one refresh at "
           "a time\n",
           PQgetvalue(res, 0, 0), state, ctl_text(PQgetvalue(res, 0, 3), 0));
  return ctl_done(conn, res, &err, MN_EXIT_OK);
}

/* a job: "retrying" is a queued job that failed an attempt; step_done/steps and eta_s are
 * the worker's last progress report */
#define JOBS_SQL                                                                                   \
  "SELECT id, kind,"                                                                               \
  " CASE WHEN state = 'queued' AND attempt > 0 THEN 'retrying' ELSE state END AS state,"           \
  " attempt, max_attempts, nullif(step, '') AS step, (progress->>'step')::bigint AS step_done,"    \
  " (progress->>'steps')::bigint AS steps, round((progress->>'eta_s')::numeric) AS eta_s,"         \
  " ckpt_id AS checkpoint, retry_of, created_at, error FROM mnemo.jobs"
static const ctl_col jobs_cols[] = {{"id", "{id}"},
                                    {"kind", "{kind}"},
                                    {"state", "{state}"},
                                    {"attempt", "{attempt}/{max_attempts}"},
                                    {"step", "{step}"},
                                    {"progress", "{step_done}/{steps}"},
                                    {"eta", "{eta_s} s"},
                                    {"checkpoint", "{checkpoint}"},
                                    {"created", "{created_at}"},
                                    {"error", "{error}"},
                                    {0}};

static int cmd_jobs(ctl *c, int argc, char **argv)
{
  mn_error err = {0};
  PGconn *conn = NULL;
  PGresult *res = NULL;
  if (argc != 0) return ctl_usage("jobs takes no arguments (got \"%s\")", argv[0]);
  int64_t limit = 20;
  if (c->a.limit && (!mn_parse_i64(c->a.limit, &limit) || limit < 1))
    return ctl_usage("--limit wants a positive number, got \"%s\"", c->a.limit);
  char lim[32];
  snprintf(lim, sizeof lim, "%lld", (long long)limit);
  const char *p[] = {lim};
  if (ctl_connect(c, &conn, &err) != MN_OK ||
      db_query(conn, JOBS_SQL " ORDER BY id DESC LIMIT $1::bigint", 1, p, &res,
               "could not list jobs", &err) != MN_OK)
    return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  ctl_print_rows(c, res, jobs_cols);
  return ctl_done(conn, res, &err, MN_EXIT_OK);
}

static int cmd_jobs_show(ctl *c, int argc, char **argv)
{
  mn_error err = {0};
  PGconn *conn = NULL;
  PGresult *res = NULL;
  int64_t id;
  if (argc != 1 || !mn_parse_i64(argv[0], &id)) return ctl_usage("jobs show takes one JOB id");
  const char *p[] = {argv[0]};
  if (ctl_connect(c, &conn, &err) != MN_OK ||
      db_query(conn,
               "SELECT id AS job, kind, state, attempt, max_attempts, nullif(step, '') AS step, "
               "progress,"
               " nullif(reason, '') AS reason,"
               " requested_by, ckpt_id AS checkpoint, retry_of, cancel_requested, created_at,"
               " started_at, finished_at, run_after, lease_owner, error"
               " FROM mnemo.jobs WHERE id = $1::bigint",
               1, p, &res, "could not read the job", &err) != MN_OK)
    return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  if (PQntuples(res) != 1) {
    mn_error_set(&err, MN_ERR_INPUT, "no job %lld", (long long)id);
    return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  }
  json_t *o = ctl_json_row(res, 0);
  if (c->json) {
    ctl_print_json(o);
    return ctl_done(conn, res, &err, MN_EXIT_OK);
  }
  const char *k;
  json_t *v;
  json_object_foreach(o, k, v)
  {
    if (strcmp(k, "error") == 0 || strcmp(k, "progress") == 0) continue;
    char *t = json_is_string(v) || json_is_null(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY);
    printf("%-17s %s\n", k, json_is_null(v) ? "-" : t ? t : ctl_text(json_string_value(v), 0));
    free(t);
  }
  char *prog = json_dumps(json_object_get(o, "progress"), JSON_COMPACT);
  printf("%-17s %s\n", "progress", ctl_text(prog, 0));
  free(prog);
  printf("error\n");
  const char *e = json_string_value(json_object_get(o, "error"));
  if (e) {
    printf("  ");
    ctl_put_text(stdout, e, "  ");
    printf("\n");
  } else {
    printf("  (none)\n");
  }
  json_decref(o);
  return ctl_done(conn, res, &err, MN_EXIT_OK);
}

static int cmd_cancel(ctl *c, int argc, char **argv)
{
  mn_error err = {0};
  PGconn *conn = NULL;
  PGresult *res = NULL;
  int64_t id;
  if (argc != 1 || !mn_parse_i64(argv[0], &id)) return ctl_usage("cancel takes one JOB id");
  const char *p[] = {argv[0]};
  if (ctl_connect(c, &conn, &err) != MN_OK ||
      db_query(conn, "SELECT mnemo.cancel_job($1::bigint)", 1, p, &res, "could not cancel", &err) !=
          MN_OK)
    return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  if (c->json)
    ctl_print_json(json_pack("{s:I, s:s}", "job", (json_int_t)id, "state", PQgetvalue(res, 0, 0)));
  else
    printf("job %s: %s\n", argv[0], PQgetvalue(res, 0, 0));
  return ctl_done(conn, res, &err, MN_EXIT_OK);
}

/* ---------------------------------------------------------------- status */

#define CANDIDATES_SQL                                                                             \
  "SELECT c.id AS checkpoint, c.state, c.parent_id AS parent, c.job_id AS job,"                    \
  " (SELECT count(*) FROM mnemo.verdicts v WHERE v.ckpt_id = c.id AND v.outcome = 'pass')"         \
  "   AS passed, (SELECT count(*) FROM mnemo.verdicts v WHERE v.ckpt_id = c.id) AS languages,"     \
  " c.updated_at, nullif(c.reasons, '') AS reasons FROM mnemo.checkpoints c"
static const ctl_col candidates_cols[] = {{"checkpoint", "{checkpoint}"},
                                          {"state", "{state}"},
                                          {"parent", "{parent}"},
                                          {"job", "{job}"},
                                          {"passed", "{passed}/{languages}"},
                                          {"updated", "{updated_at}"},
                                          {"reasons", "{reasons}"},
                                          {0}};

static int cmd_status(ctl *c, int argc, char **argv)
{
  mn_error err = {0};
  PGconn *conn = NULL;
  PGresult *res = NULL;
  if (argc != 0) return ctl_usage("status takes no arguments (got \"%s\")", argv[0]);
  if (ctl_connect(c, &conn, &err) != MN_OK) return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  /* the leader holds the advisory lock 0x6d6e656d6f64 ("mnemod"): classid 0x6d6e, objid
   * 0x656d6f64 */
  if (db_query(conn,
               "SELECT substring(a.application_name from '^mnemod pid ([0-9]+)')::bigint AS pid,"
               " substring(a.application_name from ' on (.*)$') AS host, a.pid AS backend_pid,"
               " coalesce(a.client_addr::text, 'local') AS client, a.backend_start AS since"
               " FROM pg_locks l"
               " JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory'"
               " AND l.granted AND l.classid = 28014 AND l.objid = 1701670756"
               " AND l.database = (SELECT oid FROM pg_database WHERE datname ="
               " current_database())",
               0, NULL, &res, "could not find the leader", &err) != MN_OK)
    return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  json_t *o = json_object();
  bool led = PQntuples(res) == 1;
  json_object_set_new(o, "leader", led ? ctl_json_row(res, 0) : json_null());
  if (!c->json && led)
    printf("leader: mnemod pid %s on %s, leading since %s UTC (database backend %s, from %s)\n",
           PQgetisnull(res, 0, 0) ? "?" : PQgetvalue(res, 0, 0),
           ctl_text(PQgetisnull(res, 0, 1) ? "?" : PQgetvalue(res, 0, 1), 0),
           ctl_cell_text(res, 0, 4), PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3));
  else if (!c->json)
    printf("leader: none (no mnemod running)\n");
  PQclear(res);
  res = NULL;
  static const struct {
    const char *key, *title, *sql;
    const ctl_col *cols;
  } parts[] = {
      {"production", "production", CANDIDATES_SQL " WHERE c.state = 'production'", candidates_cols},
      {"candidates", "candidates",
       CANDIDATES_SQL " WHERE c.state IN ('training', 'candidate', 'awaiting_approval',"
                      " 'approved') ORDER BY c.id",
       candidates_cols},
      {"jobs", "jobs in flight", JOBS_SQL " WHERE state IN ('queued', 'running') ORDER BY id",
       jobs_cols},
      {"reports", "reports by language (open severity: triaged and accepted)",
       "SELECT lang, new, triaged, accepted, fixed, rejected,"
       " round(open_severity::numeric, 2) AS open_severity FROM mnemo.report_summary"
       " ORDER BY open_severity DESC, lang",
       NULL},
      {"boosts", "replay boosts from accepted reports (the next refresh)",
       "SELECT lang, round(factor::numeric, 3) AS factor, groups FROM"
       " mnemo.report_boosts($1::float8, $2::float8, $3::float8) WHERE factor > 1",
       NULL},
  };
  char per[32], half[32], max[32];
  snprintf(per, sizeof per, "%.17g", c->cfg.triage.boost_per_report);
  snprintf(half, sizeof half, "%.17g", c->cfg.triage.boost_half_life_h);
  snprintf(max, sizeof max, "%.17g", c->cfg.triage.max_boost);
  const char *bp[] = {per, half, max};
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
    bool boosts = strcmp(parts[i].key, "boosts") == 0;
    if (db_query(conn, parts[i].sql, boosts ? 3 : 0, boosts ? bp : NULL, &res,
                 "could not read the status", &err) != MN_OK) {
      json_decref(o);
      return ctl_done(conn, res, &err, MN_EXIT_FAIL);
    }
    if (c->json) {
      json_object_set_new(o, parts[i].key, ctl_json_rows(res));
    } else {
      printf("\n%s:\n", parts[i].title);
      if (PQntuples(res) == 0)
        printf("  none\n");
      else
        ctl_print_rows(c, res, parts[i].cols);
    }
    PQclear(res);
    res = NULL;
  }
  if (c->json)
    ctl_print_json(o);
  else
    json_decref(o);
  return ctl_done(conn, res, &err, MN_EXIT_OK);
}

static int cmd_candidates(ctl *c, int argc, char **argv)
{
  mn_error err = {0};
  PGconn *conn = NULL;
  PGresult *res = NULL;
  if (argc != 0) return ctl_usage("candidates takes no arguments (got \"%s\")", argv[0]);
  if (ctl_connect(c, &conn, &err) != MN_OK ||
      db_query(conn, CANDIDATES_SQL " WHERE c.job_id IS NOT NULL ORDER BY c.id DESC LIMIT 50", 0,
               NULL, &res, "could not list candidates", &err) != MN_OK)
    return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  ctl_print_rows(c, res, candidates_cols);
  return ctl_done(conn, res, &err, MN_EXIT_OK);
}

/* ---------------------------------------------------------------- show, lineage */

static int cmd_show(ctl *c, int argc, char **argv)
{
  mn_error err = {0};
  PGconn *conn = NULL;
  PGresult *res = NULL;
  int64_t id;
  if (argc != 1 || !ckpt_arg(argv[0], &id))
    return ctl_usage("show takes one CHECKPOINT id (or \"production\")");
  if (ctl_connect(c, &conn, &err) != MN_OK || resolve(conn, &id, &err) != MN_OK)
    return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  char ids[32];
  snprintf(ids, sizeof ids, "%lld", (long long)id);
  const char *p[] = {ids};
  if (c->json) {
    json_t *card = NULL;
    if (card_json(conn, id, &card, &err) != MN_OK) return ctl_done(conn, res, &err, MN_EXIT_FAIL);
    ctl_print_json(card);
    return ctl_done(conn, res, &err, MN_EXIT_OK);
  }
  if (db_query(conn,
               "SELECT k.state, coalesce(k.parent_id::text, '-'), coalesce(k.job_id::text, '-'),"
               " k.reasons, coalesce(k.verdict->>'pass', ''),"
               " coalesce(k.verdict->'guard_retry'->>'protect', ''),"
               " coalesce(k.verdict->'retry_of'->>'job', ''),"
               " coalesce(k.verdict->'retry_of'->>'protected', ''),"
               " coalesce(r.id::text, ''), r.state FROM mnemo.checkpoints k"
               " LEFT JOIN mnemo.jobs r ON r.retry_of = k.job_id WHERE k.id = $1::bigint",
               1, p, &res, "could not read the checkpoint", &err) != MN_OK)
    return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  if (PQntuples(res) != 1) {
    mn_error_set(&err, MN_ERR_INPUT, "no checkpoint %s", ids);
    return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  }
  printf("checkpoint %s: %s (parent %s, job %s)\n", ids, PQgetvalue(res, 0, 0),
         PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
  if (*PQgetvalue(res, 0, 4))
    printf("verdict: %s\n", strcmp(PQgetvalue(res, 0, 4), "true") == 0 ? "PASS" : "FAIL");
  if (*PQgetvalue(res, 0, 3)) printf("reasons: %s\n", ctl_text(PQgetvalue(res, 0, 3), 0));
  if (*PQgetvalue(res, 0, 5) && *PQgetvalue(res, 0, 8)) /* the guard in the loop */
    printf("guard retry: refresh %s, protecting %s (%s)\n", PQgetvalue(res, 0, 8),
           ctl_text(PQgetvalue(res, 0, 5), 0), PQgetvalue(res, 0, 9));
  else if (*PQgetvalue(res, 0, 5))
    printf("guard retry: none queued (cancel asked, or another refresh in flight), would "
           "protect %s\n",
           ctl_text(PQgetvalue(res, 0, 5), 0));
  if (*PQgetvalue(res, 0, 6))
    printf("a guard's retry of refresh %s, protecting %s\n", PQgetvalue(res, 0, 6),
           ctl_text(PQgetvalue(res, 0, 7), 0));
  PQclear(res);
  res = NULL;
  /* failing languages first, then those without evidence, then the passes; worst first */
  if (db_query(conn,
               "SELECT lang, outcome, items,"
               " coalesce(to_char(baseline_bpb, 'FM990.000'), '') AS baseline,"
               " coalesce(to_char(candidate_bpb, 'FM990.000'), '') AS candidate,"
               " coalesce(to_char(100 * change, 'FMS990.00') || '%', '') AS change,"
               " coalesce('[' || to_char(100 * low, 'FMS990.00') || '%, ' ||"
               "   to_char(100 * high, 'FMS990.00') || '%]', reason) AS interval"
               " FROM mnemo.verdicts v WHERE ckpt_id = $1::bigint"
               " ORDER BY CASE v.outcome WHEN 'fail' THEN 0 WHEN 'pass' THEN 2 ELSE 1 END,"
               " v.change DESC NULLS LAST, v.lang", /* v.: the numbers, not the text columns */
               1, p, &res, "could not read the verdict", &err) != MN_OK)
    return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  if (PQntuples(res) > 0) ctl_print_rows(c, res, NULL);
  return ctl_done(conn, res, &err, MN_EXIT_OK);
}

static int cmd_lineage(ctl *c, int argc, char **argv)
{
  mn_error err = {0};
  PGconn *conn = NULL;
  int64_t id;
  if (argc != 1 || !ckpt_arg(argv[0], &id))
    return ctl_usage("lineage takes one CHECKPOINT id (or \"production\")");
  json_t *card = NULL;
  if (ctl_connect(c, &conn, &err) != MN_OK || resolve(conn, &id, &err) != MN_OK ||
      card_json(conn, id, &card, &err) != MN_OK)
    return ctl_done(conn, NULL, &err, MN_EXIT_FAIL);
  if (c->json) {
    ctl_print_json(json_pack("{s:O, s:O, s:O}", "checkpoint", json_object_get(card, "checkpoint"),
                             "parent", json_object_get(card, "parent"), "data",
                             json_object_get(card, "data")));
    json_decref(card);
    return ctl_done(conn, NULL, &err, MN_EXIT_OK);
  }
  printf("checkpoint %lld (parent %lld) absorbed:\n", (long long)id,
         (long long)json_integer_value(json_object_get(card, "parent")));
  printf("%-5s %-28s %-24s %9s %11s  %s\n", "lang", "language", "source", "documents", "bytes",
         "document ids");
  size_t i;
  json_t *x;
  json_array_foreach(json_object_get(card, "data"), i, x)
  {
    printf("%s %s %s %9lld %11lld  %lld-%lld\n",
           ctl_cell(json_string_value(json_object_get(x, "lang")), 5),
           ctl_cell(json_string_value(json_object_get(x, "language")), 28),
           ctl_cell(json_string_value(json_object_get(x, "source")), 24),
           (long long)json_integer_value(json_object_get(x, "documents")),
           (long long)json_integer_value(json_object_get(x, "bytes")),
           (long long)json_integer_value(json_object_get(x, "first_id")),
           (long long)json_integer_value(json_object_get(x, "last_id")));
  }
  if (json_array_size(json_object_get(card, "data")) == 0) printf("  no documents\n");
  json_decref(card);
  return ctl_done(conn, NULL, &err, MN_EXIT_OK);
}

/* ---------------------------------------------------------------- decisions */

static int decide(ctl *c, int argc, char **argv, const char *fn)
{
  mn_error err = {0};
  PGconn *conn = NULL;
  PGresult *res = NULL;
  int64_t id;
  if (argc != 1 || !mn_parse_i64(argv[0], &id)) return ctl_usage("%s takes one CHECKPOINT id", fn);
  const char *p[] = {argv[0], c->a.note};
  char sql[96], what[64];
  snprintf(sql, sizeof sql, "SELECT mnemo.%s($1::bigint, $2)", fn);
  snprintf(what, sizeof what, "could not %s checkpoint %s", fn, argv[0]);
  if (ctl_connect(c, &conn, &err) != MN_OK || db_query(conn, sql, 2, p, &res, what, &err) != MN_OK)
    return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  bool approve = strcmp(fn, "approve") == 0;
  if (c->json)
    ctl_print_json(
        json_pack("{s:I, s:s, s:o}", "checkpoint", (json_int_t)id, "decision", fn, "promotion_job",
                  approve ? json_integer(strtoll(PQgetvalue(res, 0, 0), NULL, 10)) : json_null()));
  else if (approve)
    printf("checkpoint %s approved; promotion job %s queued\n", argv[0], PQgetvalue(res, 0, 0));
  else
    printf("checkpoint %s rejected\n", argv[0]);
  return ctl_done(conn, res, &err, MN_EXIT_OK);
}

static int cmd_approve(ctl *c, int argc, char **argv)
{
  return decide(c, argc, argv, "approve");
}

static int cmd_reject(ctl *c, int argc, char **argv)
{
  return decide(c, argc, argv, "reject");
}

static int cmd_rollback(ctl *c, int argc, char **argv)
{
  mn_error err = {0};
  PGconn *conn = NULL;
  PGresult *res = NULL;
  int64_t to = 0;
  if (argc > 1) return ctl_usage("rollback takes at most one CHECKPOINT id (got %d)", argc);
  if (argc == 1 && (!mn_parse_i64(argv[0], &to) || to <= 0))
    return ctl_usage("\"%s\" is not a checkpoint id", argv[0]);
  char tos[32];
  snprintf(tos, sizeof tos, "%lld", (long long)to);
  const char *p[] = {c->a.note, argc == 1 ? tos : NULL};
  if (ctl_connect(c, &conn, &err) != MN_OK ||
      db_query(conn, "SELECT mnemo.rollback($1, $2::bigint)", 2, p, &res, "could not roll back",
               &err) != MN_OK)
    return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  if (c->json)
    ctl_print_json(
        json_pack("{s:I}", "production", (json_int_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10)));
  else
    printf("checkpoint %s is production again\n", PQgetvalue(res, 0, 0));
  return ctl_done(conn, res, &err, MN_EXIT_OK);
}

/* ---------------------------------------------------------------- generate */

/* worker_line -- the first event of the worker's stdout (out) that holds key, or NULL */
static json_t *worker_line(const mn_buf *out, const char *key)
{
  for (const char *line = out->data, *nl; line && line < out->data + out->len;
       line = nl ? nl + 1 : NULL) {
    nl = memchr(line, '\n', out->len - (size_t)(line - out->data));
    json_t *j =
        json_loadb(line, nl ? (size_t)(nl - line) : out->len - (size_t)(line - out->data), 0, NULL);
    if (j && json_object_get(j, key)) return j;
    json_decref(j);
  }
  return NULL;
}

static int cmd_generate(ctl *c, int argc, char **argv)
{
  mn_error err = {0};
  PGconn *conn = NULL;
  PGresult *res = NULL;
  int64_t id;
  if (argc != 1 || !ckpt_arg(argv[0], &id))
    return ctl_usage("generate takes one CHECKPOINT id (or \"production\") and --lang LANG");
  char ids[32];
  if (ctl_connect(c, &conn, &err) != MN_OK || resolve(conn, &id, &err) != MN_OK)
    return ctl_done(conn, NULL, &err, MN_EXIT_FAIL);
  snprintf(ids, sizeof ids, "%lld", (long long)id);
  const char *p[] = {ids};
  if (db_query(conn, "SELECT state FROM mnemo.checkpoints WHERE id = $1::bigint", 1, p, &res,
               "could not read the checkpoint", &err) != MN_OK)
    return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "failed") == 0) {
    mn_error_set(&err, MN_ERR_INPUT, "no checkpoint %s%s", ids,
                 PQntuples(res) == 1 ? " to generate with: it failed" : "");
    return ctl_done(conn, res, &err, MN_EXIT_FAIL);
  }
  PQclear(res);
  PQfinish(conn);
  char model[PATH_MAX], worker[PATH_MAX];
  snprintf(model, sizeof model, "%s/checkpoints/%lld/model.safetensors", c->cfg.daemon.data_dir,
           (long long)id);
  if (c->cfg.daemon.worker && *c->cfg.daemon.worker) {
    snprintf(worker, sizeof worker, "%s", c->cfg.daemon.worker);
  } else { /* the mnemo beside this mnemoctl */
    ssize_t n = readlink("/proc/self/exe", worker, sizeof worker - 8);
    worker[n > 0 ? n : 0] = 0;
    char *slash = strrchr(worker, '/');
    snprintf(slash ? slash + 1 : worker, 8, "mnemo");
  }
  /* the worker writes JSON lines on a pipe, its failure as an error event too
   * (MNEMO_SUPERVISED): the text for people, the event under --json, whatever stdout is.
   * For people its own words reach standard error as well; under --json only ours do. */
  const char *args[16] = {worker, "--json", "generate", "--checkpoint", model, "--lang", c->a.lang};
  int n = 7;
  if (c->a.prompt) args[n++] = "--prompt", args[n++] = c->a.prompt;
  if (c->a.tokens) args[n++] = "--tokens", args[n++] = c->a.tokens;
  args[n] = NULL;
  int fd[2];
  if (pipe(fd) != 0) {
    mn_error_set(&err, MN_ERR_IO, "could not run the worker: pipe: %s", strerror(errno));
    return ctl_fail(&err);
  }
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fd[1], STDOUT_FILENO);
    close(fd[0]), close(fd[1]);
    if (c->json) { /* its text errors would break the one JSON object on standard error */
      int null = open("/dev/null", O_WRONLY);
      if (null >= 0) dup2(null, STDERR_FILENO);
    }
    setenv("MNEMO_SUPERVISED", "1", 1);
    execv(worker, (char *const *)args);
    _exit(127);
  }
  close(fd[1]);
  mn_buf out;
  mn_buf_init(&out, 64u << 20);
  char chunk[4096];
  bool full = false;
  for (ssize_t got; pid > 0 && (got = read(fd[0], chunk, sizeof chunk)) != 0;) {
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) break;
    if (!full && mn_buf_append(&out, chunk, (size_t)got, NULL) != MN_OK) full = true; /* drain */
  }
  close(fd[0]);
  int status = 0;
  while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  json_t *ev = worker_line(&out, "text"), *bad = worker_line(&out, "message");
  mn_buf_fini(&out);
  if (pid < 0)
    mn_error_set(&err, MN_ERR_IO, "could not run the worker \"%s\": %s", worker, strerror(errno));
  else if (WIFSIGNALED(status))
    mn_error_set(&err, MN_ERR_IO, "the worker \"%s\" was killed by signal %d", worker,
                 WTERMSIG(status));
  else if (WEXITSTATUS(status) == 127 && !bad)
    mn_error_set(&err, MN_ERR_IO, "could not run the worker \"%s\"", worker);
  else if (WEXITSTATUS(status) != 0 || !ev) {
    const char *why = json_string_value(json_object_get(bad, "message"));
    mn_error_set(&err, WEXITSTATUS(status) == MN_EXIT_USAGE ? MN_ERR_USAGE : MN_ERR_IO,
                 "the worker could not generate: %s",
                 why    ? why
                 : full ? "it wrote more than 64 MiB"
                        : "it wrote no text");
  }
  json_decref(bad);
  if (err.code != MN_OK) {
    json_decref(ev);
    return ctl_fail(&err);
  }
  if (c->json) { /* the worker's event in mnemoctl's shape: every key, null when unknown */
    json_t *script = json_object_get(ev, "script"), *share = json_object_get(ev, "script_share");
    ctl_print_json(json_pack("{s:I, s:s, s:O, s:O, s:O, s:O}", "checkpoint", (json_int_t)id, "lang",
                             c->a.lang, "text", json_object_get(ev, "text"), "tokens",
                             json_object_get(ev, "tokens"), "script", script ? script : json_null(),
                             "script_share", share ? share : json_null()));
  } else {
    fwrite(json_string_value(json_object_get(ev, "text")), 1,
           json_string_length(json_object_get(ev, "text")), stdout);
    putchar('\n');
  }
  json_decref(ev);
  return MN_EXIT_OK;
}

/* ---------------------------------------------------------------- the table */

static const ctl_opt bootstrap_opts[] = {
    CTL_ARG("replay", replay, "FILE",
            "its replay store, with --fisher (default: the first refresh's)"),
    CTL_ARG("fisher", fisher, "FILE", "its Fisher, with --replay (default: the first refresh's)"),
    CTL_FLAG("trained-on-stored", trained_on_stored,
             "the documents stored now are what it was trained on (marked consumed)"),
    CTL_ARG("note", note, "NOTE", "why, kept in the audit log"),
    {0}};
static const ctl_opt refresh_opts[] = {
    CTL_ARG("note", note, "NOTE", "why, kept as the job's reason"), {0}};
static const ctl_opt jobs_opts[] = {
    CTL_ARG("limit", limit, "N", "at most N, newest first (default: 20)"), {0}};
static const ctl_opt note_opts[] = {CTL_NEED("note", note, "NOTE", "why, kept in the audit log"),
                                    {0}};
static const ctl_opt generate_opts[] = {
    CTL_NEED("lang", lang, "LANG", "the language"),
    CTL_ARG("prompt", prompt, "TEXT", "text to continue"),
    CTL_ARG("tokens", tokens, "N", "how many tokens to generate"),
    {0}};

const ctl_command ctl_refresh_commands[] = {
    {"bootstrap", NULL, cmd_bootstrap, "CHECKPOINT", "Register the first production checkpoint.",
     "Copies the checkpoint file (and its replay store and Fisher, if given) into\n"
     "daemon.data_dir/checkpoints/ID/ and makes it production.  Refused when a production\n"
     "checkpoint exists.\n",
     bootstrap_opts},
    {"refresh", NULL, cmd_refresh, "", "Queue a refresh now.",
     "Queues a refresh job for mnemod (or shows the one queued or running).\n", refresh_opts},
    {"jobs", NULL, cmd_jobs, "", "List jobs, newest first.",
     "Jobs with their state, attempt, step, progress and last error (escaped, on one line:\n"
     "jobs show JOB has it as it was written).\n",
     jobs_opts},
    {"jobs", "show", cmd_jobs_show, "JOB", "One job whole: times, attempts, progress, error.",
     "Every field of the job, its progress as the worker last reported it and its error in\n"
     "full.\n",
     NULL},
    {"cancel", NULL, cmd_cancel, "JOB", "Cancel a job.",
     "A queued job is cancelled at once; a running one is stopped by mnemod (its worker\n"
     "killed, its candidate marked failed).\n",
     NULL},
    {"status", NULL, cmd_status, "", "The leader, production, candidates and jobs in flight.",
     "Which mnemod leads, the production checkpoint, candidates and their verdicts, and the\n"
     "jobs queued or running with their progress.\n",
     NULL},
    {"candidates", NULL, cmd_candidates, "", "List checkpoints made by refreshes.",
     "Each refresh's checkpoint: its state, how many languages passed, and why it was\n"
     "rejected.\n",
     NULL},
    {"show", NULL, cmd_show, "CHECKPOINT", "A checkpoint and its verdict table.",
     "The verdict per language, failing languages first (--json: the whole card).\n", NULL},
    {"approve", NULL, cmd_approve, "CHECKPOINT", "Approve a candidate (operators).",
     "Records the approval (by the database's session user) and queues its promotion.  Only\n"
     "the mnemo_operator role may: the daemon's role is refused by the database.\n",
     note_opts},
    {"reject", NULL, cmd_reject, "CHECKPOINT", "Reject a candidate (operators).",
     "Records the rejection and why.\n", note_opts},
    {"rollback", NULL, cmd_rollback, "[CHECKPOINT]",
     "Make the previous production checkpoint current.",
     "The production checkpoint is retired and its parent (the production it was trained\n"
     "from) is production again; repeated, it walks back the chain to the base and then\n"
     "refuses.  With a CHECKPOINT id, that checkpoint is production again: any that was\n"
     "production before (a rolled-back one comes back only when asked by id).  The\n"
     "documents counted as consumed are always what the new production was trained on;\n"
     "open candidates of a retired checkpoint are rejected.  Recorded with who and why.\n",
     note_opts},
    {"lineage", NULL, cmd_lineage, "CHECKPOINT", "What a checkpoint absorbed.",
     "Documents per language and source (with licences) that the checkpoint consumed.\n", NULL},
    {"generate", NULL, cmd_generate, "CHECKPOINT", "Generate text.",
     "Runs the worker's generate on a registered checkpoint (or \"production\").\n", generate_opts},
};
const size_t ctl_refresh_ncommands = sizeof ctl_refresh_commands / sizeof ctl_refresh_commands[0];
