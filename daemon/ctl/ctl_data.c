/*
 * ctl_data.c -- mnemoctl's data-plane commands: languages, sources, ingest,
 * user reports.
 *
 * Each command validates its input before touching the database and names
 * what is wrong (the language code, the file and line, the JSON).  Values
 * always travel as parameters ($1), never spliced into SQL.
 */
#include "daemon/ctl/ctl_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REPORT_MAX_BYTES 65536 /* the table's CHECKs on text, expected_text and context */
#define REJECT_MAX_TRIES 100   /* FILE.rejects, FILE.rejects.1, ... FILE.rejects.99 */

/* user_value -- 0 when value may be stored as a one-line name (empty only when may_be_empty),
 * else a usage error naming the option */
static int user_value(const char *option, const char *value, bool may_be_empty)
{
  mn_text_issue iss;
  char why[128];
  if (!value) return 0;
  mn_text_problem p = mn_text_check(value, strlen(value), 0, &iss);
  if (p == MN_TEXT_OK || (may_be_empty && p == MN_TEXT_EMPTY)) return 0;
  mn_text_describe(&iss, why, sizeof why);
  return ctl_usage("%s \"%s\" cannot be stored: %s", option, ctl_text(value, 80), why);
}

int ctl_user_value(const char *option, const char *value)
{
  return user_value(option, value, false);
}

static long long to_ll(const char *s)
{
  int64_t v = 0;
  return mn_parse_i64(s, &v) ? (long long)v : 0;
}

/* exists -- run a query expected to return at most one row; *found tells whether it did. */
static mn_status exists(PGconn *conn, const char *sql, const char *param, bool *found,
                        const char *what, mn_error *err)
{
  PGresult *res = NULL;
  mn_status rc = db_query(conn, sql, 1, &param, &res, what, err);
  if (rc == MN_OK) *found = PQntuples(res) > 0;
  PQclear(res);
  return rc;
}

/* ---------------------------------------------------------------- languages */

static int cmd_lang_add(ctl *c, int argc, char **argv)
{
  mn_error err = {0};
  PGconn *conn = NULL;
  PGresult *res = NULL;
  bool found = false;
  if (argc != 1) return ctl_usage("lang add takes exactly one CODE (ISO 639-3)");
  int urc = ctl_user_value("--name", c->a.name);
  if (urc) return urc;
  const char *code = argv[0];
  if (ctl_connect(c, &conn, &err) != MN_OK) goto fail;
  if (exists(conn, "SELECT 1 FROM mnemo.iso639_3 WHERE code = $1", code, &found,
             "could not look up the language code", &err) != MN_OK)
    goto fail;
  if (!found) {
    mn_error_set(&err, MN_ERR_INPUT, "unknown ISO 639-3 language code \"%s\"", ctl_text(code, 40));
    mn_error_detail(&err, "codes have three lower-case letters: spa, swh, tha, cmn, rus, ...");
    goto fail;
  }
  if (exists(conn, "SELECT 1 FROM mnemo.iso15924 WHERE code = $1", c->a.script, &found,
             "could not look up the script code", &err) != MN_OK)
    goto fail;
  if (!found) {
    mn_error_set(&err, MN_ERR_INPUT, "unknown ISO 15924 script code \"%s\"",
                 ctl_text(c->a.script, 40));
    mn_error_detail(&err, "script codes have four letters, the first upper case: Latn, Cyrl, "
                          "Arab, Deva, Thai, Hans, Hant, Jpan, Kore, Ethi, ...");
    goto fail;
  }
  /* adding a language again keeps its tag id (and its name unless --name is given);
   * the script may be corrected; --disabled disables it */
  const char *params[] = {code, c->a.name, c->a.script, c->a.disabled ? "false" : "true"};
  if (db_query(conn,
               "INSERT INTO mnemo.languages (code, name, script, enabled)"
               " SELECT $1, coalesce($2, i.name), $3, $4 FROM mnemo.iso639_3 i WHERE i.code = $1"
               " ON CONFLICT (code) DO UPDATE SET script = EXCLUDED.script,"
               "   name = CASE WHEN $2::text IS NULL THEN languages.name ELSE EXCLUDED.name END,"
               "   enabled = languages.enabled AND EXCLUDED.enabled"
               " RETURNING code, name, script, enabled, tag_id",
               4, params, &res, "could not add the language", &err) != MN_OK)
    goto fail;
  if (c->json)
    ctl_print_json(json_pack("{s:s, s:s, s:s, s:b, s:I}", "code", PQgetvalue(res, 0, 0), "name",
                             PQgetvalue(res, 0, 1), "script", PQgetvalue(res, 0, 2), "enabled",
                             PQgetvalue(res, 0, 3)[0] == 't', "tag_id",
                             (json_int_t)to_ll(PQgetvalue(res, 0, 4))));
  else
    printf("language %s (%s, %s): tag id %s%s\n", ctl_text(PQgetvalue(res, 0, 0), 0),
           ctl_text(PQgetvalue(res, 0, 1), 0), ctl_text(PQgetvalue(res, 0, 2), 0),
           PQgetvalue(res, 0, 4), PQgetvalue(res, 0, 3)[0] == 't' ? "" : ", disabled");
  PQclear(res);
  PQfinish(conn);
  return MN_EXIT_OK;
fail:
  PQclear(res);
  PQfinish(conn);
  return ctl_fail(&err);
}

static int set_enabled(ctl *c, int argc, char **argv, bool enabled)
{
  mn_error err = {0};
  PGconn *conn = NULL;
  PGresult *res = NULL;
  if (argc != 1) return ctl_usage("lang %s takes exactly one CODE", enabled ? "enable" : "disable");
  if (ctl_connect(c, &conn, &err) != MN_OK) goto fail;
  const char *params[] = {argv[0], enabled ? "true" : "false"};
  if (db_query(conn, "UPDATE mnemo.languages SET enabled = $2 WHERE code = $1 RETURNING code", 2,
               params, &res, "could not change the language", &err) != MN_OK)
    goto fail;
  if (PQntuples(res) == 0) {
    mn_error_set(&err, MN_ERR_INPUT, "language \"%s\" is not known (mnemoctl lang add)",
                 ctl_text(argv[0], 40));
    goto fail;
  }
  if (c->json)
    ctl_print_json(json_pack("{s:s, s:b}", "code", argv[0], "enabled", enabled));
  else
    printf("language %s %s\n", ctl_text(argv[0], 0), enabled ? "enabled" : "disabled");
  PQclear(res);
  PQfinish(conn);
  return MN_EXIT_OK;
fail:
  PQclear(res);
  PQfinish(conn);
  return ctl_fail(&err);
}

static int cmd_lang_enable(ctl *c, int argc, char **argv)
{
  return set_enabled(c, argc, argv, true);
}
static int cmd_lang_disable(ctl *c, int argc, char **argv)
{
  return set_enabled(c, argc, argv, false);
}

static int cmd_lang_list(ctl *c, int argc, char **argv)
{
  mn_error err = {0};
  PGconn *conn = NULL;
  PGresult *res = NULL;
  if (argc != 0) return ctl_usage("lang list takes no arguments (got \"%s\")", argv[0]);
  if (ctl_connect(c, &conn, &err) != MN_OK) goto fail;
  if (db_query(conn,
               "SELECT l.code, l.name, l.script, l.enabled, l.tag_id,"
               "       count(d.id) FILTER (WHERE d.split = 'train') AS train_documents,"
               "       count(d.id) FILTER (WHERE d.split = 'heldout') AS heldout_documents,"
               "       coalesce(sum(d.bytes), 0) AS bytes"
               "  FROM mnemo.languages l LEFT JOIN mnemo.documents d ON d.lang = l.code"
               " GROUP BY l.code ORDER BY l.code",
               0, NULL, &res, "could not list languages", &err) != MN_OK)
    goto fail;
  int n = PQntuples(res);
  if (c->json) {
    ctl_print_json(ctl_json_rows(res));
  } else {
    printf("%-5s %-28s %-6s %-7s %6s %9s %9s %10s\n", "code", "name", "script", "enabled", "tag",
           "train", "heldout", "MB");
    for (int i = 0; i < n; i++)
      printf("%s %s %s %-7s %6s %9s %9s %10.2f\n", ctl_cell(PQgetvalue(res, i, 0), 5),
             ctl_cell(PQgetvalue(res, i, 1), 28), ctl_cell(PQgetvalue(res, i, 2), 6),
             PQgetvalue(res, i, 3)[0] == 't' ? "yes" : "no", PQgetvalue(res, i, 4),
             PQgetvalue(res, i, 5), PQgetvalue(res, i, 6),
             (double)to_ll(PQgetvalue(res, i, 7)) / 1e6);
    printf("%d language(s)\n", n);
  }
  PQclear(res);
  PQfinish(conn);
  return MN_EXIT_OK;
fail:
  PQclear(res);
  PQfinish(conn);
  return ctl_fail(&err);
}

/* ---------------------------------------------------------------- sources */

static int cmd_source_add(ctl *c, int argc, char **argv)
{
  mn_error err = {0};
  PGconn *conn = NULL;
  PGresult *res = NULL;
  if (argc != 1) return ctl_usage("source add takes exactly one NAME");
  int urc = user_value("source NAME", argv[0], false);
  if (!urc) urc = user_value("--origin", c->a.origin, true);
  if (!urc) urc = user_value("--licence", c->a.licence, true);
  if (!urc) urc = user_value("--note", c->a.note, true);
  if (urc) return urc;
  if (ctl_connect(c, &conn, &err) != MN_OK) goto fail;
  const char *params[] = {argv[0], c->a.origin ? c->a.origin : "", c->a.licence ? c->a.licence : "",
                          c->a.note ? c->a.note : ""};
  if (db_query(conn,
               "INSERT INTO mnemo.sources (name, origin, licence, notes) VALUES ($1, $2, $3, $4)"
               " ON CONFLICT (name) DO UPDATE SET origin = EXCLUDED.origin,"
               " licence = EXCLUDED.licence, notes = EXCLUDED.notes RETURNING id",
               4, params, &res, "could not record the source", &err) != MN_OK)
    goto fail;
  if (c->json)
    ctl_print_json(
        json_pack("{s:s, s:I}", "name", argv[0], "id", (json_int_t)to_ll(PQgetvalue(res, 0, 0))));
  else
    printf("source %s: id %s\n", ctl_text(argv[0], 0), PQgetvalue(res, 0, 0));
  PQclear(res);
  PQfinish(conn);
  return MN_EXIT_OK;
fail:
  PQclear(res);
  PQfinish(conn);
  return ctl_fail(&err);
}

static int cmd_sources(ctl *c, int argc, char **argv)
{
  mn_error err = {0};
  PGconn *conn = NULL;
  PGresult *res = NULL;
  if (argc != 0) return ctl_usage("sources takes no arguments (got \"%s\")", argv[0]);
  if (ctl_connect(c, &conn, &err) != MN_OK) goto fail;
  if (db_query(conn,
               "SELECT s.name, nullif(s.licence, '') AS licence, nullif(s.origin, '') AS origin,"
               "       count(d.id) AS documents, coalesce(sum(d.bytes), 0) AS bytes"
               "  FROM mnemo.sources s LEFT JOIN mnemo.documents d ON d.source_id = s.id"
               " GROUP BY s.id ORDER BY s.name",
               0, NULL, &res, "could not list sources", &err) != MN_OK)
    goto fail;
  int n = PQntuples(res);
  if (c->json) {
    ctl_print_json(ctl_json_rows(res));
  } else {
    printf("%-28s %-20s %10s %10s  %s\n", "source", "licence", "documents", "MB", "origin");
    for (int i = 0; i < n; i++)
      printf("%s %s %10s %10.2f  %s\n", ctl_cell(PQgetvalue(res, i, 0), 28),
             ctl_cell(ctl_cell_text(res, i, 1), 20), PQgetvalue(res, i, 3),
             (double)to_ll(PQgetvalue(res, i, 4)) / 1e6, ctl_text(ctl_cell_text(res, i, 2), 0));
  }
  PQclear(res);
  PQfinish(conn);
  return MN_EXIT_OK;
fail:
  PQclear(res);
  PQfinish(conn);
  return ctl_fail(&err);
}

/* ---------------------------------------------------------------- ingest */

static void print_ingest(const ctl *c, const ingest_result *r, const char *reject_path,
                         mn_status rc, const mn_error *err)
{
  if (c->json) {
    json_t *langs = json_array(), *probs = json_array();
    for (size_t i = 0; i < r->nlangs; i++) {
      const ingest_lang_stats *s = &r->langs[i];
      json_array_append_new(langs,
                            json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "lang", s->lang, "units",
                                      (json_int_t)s->units, "inserted", (json_int_t)s->inserted,
                                      "duplicates", (json_int_t)s->duplicates, "heldout",
                                      (json_int_t)s->heldout, "bytes", (json_int_t)s->bytes));
    }
    for (size_t i = 0; i < r->nproblems; i++)
      json_array_append_new(probs, json_pack("{s:s, s:s}", "where", r->problems[i].where, "reason",
                                             r->problems[i].reason));
    json_t *o = json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:f, s:o, s:o}", "committed",
                          r->committed, "units", (json_int_t)r->units, "bad", (json_int_t)r->bad,
                          "inserted", (json_int_t)r->inserted, "duplicates",
                          (json_int_t)r->duplicates, "bytes_read", (json_int_t)r->bytes_read,
                          "seconds", r->seconds, "languages", langs, "problems", probs);
    json_object_set_new(o, "error", rc != MN_OK ? json_string(err->msg) : json_null());
    json_object_set_new(o, "rejected", json_integer(r->rejected));
    json_object_set_new(o, "reject_file",
                        r->rejected > 0 && reject_path ? json_string(reject_path) : json_null());
    ctl_print_json(o);
    return;
  }
  for (size_t i = 0; i < r->nproblems; i++)
    fprintf(stderr, "%s: %s\n", ctl_text(r->problems[i].where, 0),
            ctl_text(r->problems[i].reason, 0));
  if ((int64_t)r->nproblems < r->bad)
    fprintf(stderr, "... and %lld more bad unit(s)\n", (long long)(r->bad - (int64_t)r->nproblems));
  if (rc != MN_OK) return;
  printf("%-5s %10s %10s %10s %9s %10s\n", "lang", "units", "new", "duplicate", "heldout", "MB");
  for (size_t i = 0; i < r->nlangs; i++) {
    const ingest_lang_stats *s = &r->langs[i];
    printf("%-5s %10lld %10lld %10lld %9lld %10.2f\n", ctl_text(s->lang, 0), (long long)s->units,
           (long long)s->inserted, (long long)s->duplicates, (long long)s->heldout,
           (double)s->bytes / 1e6);
  }
  double mb = (double)r->bytes_read / 1e6;
  printf("%lld unit(s) read (%.1f MB in %.2f s, %.1f MB/s): %lld new, %lld duplicate, %lld bad\n",
         (long long)r->units, mb, r->seconds, r->seconds > 0 ? mb / r->seconds : 0.0,
         (long long)r->inserted, (long long)r->duplicates, (long long)r->bad);
}

/*
 * reserve_rejects -- claim a reject file name that no file has: base, else base.1, base.2,
 * ... (an earlier run's rejects are never replaced).  The claimed name is created empty
 * (O_EXCL), so a concurrent run cannot take it too; ingest renames its file over it, and
 * the caller removes it again when nothing was written (release_rejects).
 */
static mn_status reserve_rejects(const char *base, char *out, size_t cap, struct stat *st,
                                 mn_error *err)
{
  for (int i = 0; i < REJECT_MAX_TRIES; i++) {
    int n = i ? snprintf(out, cap, "%s.%d", base, i) : snprintf(out, cap, "%s", base);
    if (n < 0 || (size_t)n >= cap)
      return mn_error_set(err, MN_ERR_USAGE, "reject file name \"%s\" is too long",
                          ctl_text(base, 100));
    int fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
      int rc = fstat(fd, st);
      close(fd);
      if (rc == 0) return MN_OK;
      return mn_error_set(err, MN_ERR_IO, "could not create reject file \"%s\": %s",
                          ctl_text(out, 200), strerror(errno));
    }
    if (errno != EEXIST)
      return mn_error_set(err, MN_ERR_IO, "could not create reject file \"%s\": %s",
                          ctl_text(out, 200), strerror(errno));
  }
  return mn_error_set(err, MN_ERR_IO, "cannot create a reject file: \"%s\" and %s.1 to .%d exist",
                      ctl_text(base, 200), ctl_text(base, 200), REJECT_MAX_TRIES - 1);
}

/* release_rejects -- remove the reserved name when it is still the empty file we created */
static void release_rejects(const char *path, const struct stat *reserved)
{
  struct stat now;
  if (stat(path, &now) == 0 && now.st_ino == reserved->st_ino && now.st_dev == reserved->st_dev &&
      now.st_size == 0)
    unlink(path);
}

static int cmd_ingest(ctl *c, int argc, char **argv)
{
  mn_error err = {0};
  PGconn *conn = NULL;
  ingest_result r = {0};
  ingest_options o = {.lang = c->a.lang, .source = c->a.source, .skip_bad = c->a.skip_bad};
  char reject_default[512], reject_path[600];
  struct stat reserved;
  if (argc < 1) return ctl_usage("ingest needs at least one FILE (\"-\" reads standard input)");
  const char *fmt = c->a.format ? c->a.format : "text";
  if (strcmp(fmt, "text") == 0)
    o.format = INGEST_TEXT;
  else if (strcmp(fmt, "jsonl") == 0)
    o.format = INGEST_JSONL;
  else
    return ctl_usage("--format must be text or jsonl, got \"%s\"", fmt);
  const char *unit = c->a.unit ? c->a.unit : "line";
  if (strcmp(unit, "line") == 0)
    o.unit = INGEST_UNIT_LINE;
  else if (strcmp(unit, "paragraph") == 0)
    o.unit = INGEST_UNIT_PARAGRAPH;
  else if (strcmp(unit, "file") == 0)
    o.unit = INGEST_UNIT_FILE;
  else
    return ctl_usage("--unit must be line, paragraph or file, got \"%s\"", unit);
  if (o.format == INGEST_JSONL && c->a.unit)
    return ctl_usage("--unit applies to --format text only");
  if (o.format == INGEST_JSONL && c->a.lang)
    return ctl_usage("--lang applies to --format text only (JSONL records carry \"lang\")");
  if (o.format == INGEST_TEXT && (!o.lang || !o.source))
    return ctl_usage("plain text needs --lang LANG and --source SOURCE");
  if (c->a.reject && !c->a.skip_bad) return ctl_usage("--reject goes with --skip-bad");
  int urc = o.source ? user_value("--source", o.source, false) : 0;
  if (urc) return urc;
  if (c->a.skip_bad) { /* every input's bad units go to one file, named after the first */
    int n = snprintf(reject_default, sizeof reject_default, "%s.rejects",
                     strcmp(argv[0], "-") == 0 ? "stdin" : argv[0]);
    if (!c->a.reject && (n < 0 || (size_t)n >= sizeof reject_default))
      return ctl_usage("the input's name is too long for a reject file name; give --reject");
  }
  if (ctl_connect(c, &conn, &err) != MN_OK) return ctl_fail(&err);
  if (c->a.skip_bad) {
    const char *base = c->a.reject ? c->a.reject : reject_default;
    if (reserve_rejects(base, reject_path, sizeof reject_path, &reserved, &err) != MN_OK) {
      PQfinish(conn);
      return ctl_fail(&err);
    }
    o.reject_path = reject_path;
  }
  o.max_document_bytes = c->cfg.ingest.max_document_bytes;
  o.heldout_fraction = c->cfg.ingest.heldout_fraction;
  o.progress = !c->json && !c->a.quiet && isatty(STDERR_FILENO);
  mn_status rc = ingest_run(conn, &o, argv, (size_t)argc, &r, &err);
  PQfinish(conn);
  if (o.reject_path && (rc != MN_OK || r.rejected == 0)) release_rejects(o.reject_path, &reserved);
  print_ingest(c, &r, o.reject_path, rc, &err);
  if (rc == MN_OK && r.bad > 0 && o.reject_path && !c->json) {
    if (r.rejected > 0)
      printf("%lld bad unit(s) written to %s", (long long)r.rejected, ctl_text(o.reject_path, 0));
    else
      printf("no bad unit could be copied to a reject file");
    if (r.bad > r.rejected)
      printf("%s%lld too long to copy (listed above)", r.rejected > 0 ? "; " : ": ",
             (long long)(r.bad - r.rejected));
    printf("\n");
    const char *base = c->a.reject ? c->a.reject : reject_default;
    if (r.rejected > 0 && strcmp(base, o.reject_path) != 0)
      printf("(%s already existed and was left as it was)\n", ctl_text(base, 0));
  }
  ingest_result_fini(&r);
  return rc == MN_OK ? MN_EXIT_OK : ctl_fail(&err);
}

/* ---------------------------------------------------------------- reports */

/* report_text_ok -- the text rule of triage (mn_text_check: line breaks, CRLF too, allowed)
 * and the table's size cap, checked before the database; a leading byte order mark is
 * stripped (*s advanced) */
static bool report_text_ok(const char *what, const char **s, mn_error *err)
{
  if (strncmp(*s, "\xEF\xBB\xBF", 3) == 0) *s += 3;
  size_t n = strlen(*s);
  mn_text_issue iss;
  char why[128];
  if (n > REPORT_MAX_BYTES)
    return mn_error_set(err, MN_ERR_INPUT, "%s has %zu bytes, more than %d", what, n,
                        REPORT_MAX_BYTES),
           false;
  if (mn_text_check(*s, n, MN_TEXT_NEWLINE | MN_TEXT_CRLF, &iss) != MN_TEXT_OK) {
    mn_text_describe(&iss, why, sizeof why);
    return mn_error_set(err, MN_ERR_INPUT, "%s cannot be a report's text: %s", what, why), false;
  }
  return true;
}

/* json_nul_at -- the path ("$.a.b[2]") of the first string or key of j holding a NUL, or
 * false; PostgreSQL's jsonb cannot store U+0000 */
static bool json_nul_at(const json_t *j, char *path, size_t cap)
{
  size_t len = strlen(path);
  if (json_is_string(j)) return memchr(json_string_value(j), 0, json_string_length(j)) != NULL;
  if (json_is_array(j)) {
    for (size_t i = 0; i < json_array_size(j); i++) {
      snprintf(path + len, cap - len, "[%zu]", i);
      if (json_nul_at(json_array_get(j, i), path, cap)) return true;
    }
  } else if (json_is_object(j)) {
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)j, k, v)
    {
      snprintf(path + len, cap - len, ".%s", ctl_text(k, 40));
      if (json_nul_at(v, path, cap)) return true;
    }
  }
  path[len] = '\0';
  return false;
}

/* context_ok -- --context is a JSON object the table can store: checked before the
 * database, so the error names the option rather than echoing a CHECK and the row */
static bool context_ok(const char *ctx, mn_error *err)
{
  size_t n = strlen(ctx);
  if (n > REPORT_MAX_BYTES)
    return mn_error_set(err, MN_ERR_INPUT, "--context has %zu bytes, more than %d", n,
                        REPORT_MAX_BYTES),
           false;
  json_error_t je;
  json_t *o = json_loadb(ctx, n, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &je);
  char path[256] = "$";
  bool ok = json_is_object(o), nul = ok && json_nul_at(o, path, sizeof path);
  json_decref(o);
  if (!o) {
    mn_error_set(err, MN_ERR_INPUT, "--context must be a JSON object");
    mn_error_detail(err, "column %d: %s", je.column, ctl_text(je.text, 200));
  } else if (!ok) {
    mn_error_set(err, MN_ERR_INPUT, "--context must be a JSON object");
  } else if (nul) {
    mn_error_set(err, MN_ERR_INPUT, "--context holds a NUL character (\\u0000) at %s", path);
    mn_error_detail(err, "the database cannot store U+0000 in JSON; leave it out");
  }
  return ok && !nul;
}

static int cmd_report(ctl *c, int argc, char **argv)
{
  mn_error err = {0};
  PGconn *conn = NULL;
  PGresult *res = NULL;
  bool found = false;
  if (argc != 0) return ctl_usage("report takes no arguments (got \"%s\"); use --text", argv[0]);
  const char *text = c->a.text, *expected = c->a.expected;
  if (!report_text_ok("--text", &text, &err)) return ctl_fail(&err);
  if (expected && !report_text_ok("--expected", &expected, &err)) return ctl_fail(&err);
  if (c->a.context && !context_ok(c->a.context, &err)) return ctl_fail(&err);
  if (ctl_connect(c, &conn, &err) != MN_OK) goto fail;
  if (exists(conn, "SELECT 1 FROM mnemo.languages WHERE code = $1 AND enabled", c->a.lang, &found,
             "could not look up the language", &err) != MN_OK)
    goto fail;
  if (!found) {
    mn_error_set(&err, MN_ERR_INPUT, "language \"%s\" is not known or not enabled",
                 ctl_text(c->a.lang, 40));
    goto fail;
  }
  const char *params[] = {c->a.lang, text, expected, c->a.context ? c->a.context : "{}"};
  if (db_query(conn,
               "INSERT INTO mnemo.reports (claimed_lang, text, expected_text, context)"
               " VALUES ($1, $2, $3, $4::jsonb) RETURNING id",
               4, params, &res, "could not record the report", &err) != MN_OK) {
    /* stored as jsonb, a context under the byte cap can still exceed the table's CHECK
     * (pg_column_size): say so instead of echoing the constraint and the row */
    if (strstr(err.msg, "reports_context_check")) {
      mn_error_set(&err, MN_ERR_INPUT,
                   "--context is too large once stored (the table allows "
                   "%d bytes of jsonb); shorten it",
                   REPORT_MAX_BYTES);
    }
    goto fail;
  }
  if (c->json)
    ctl_print_json(json_pack("{s:I}", "id", (json_int_t)to_ll(PQgetvalue(res, 0, 0))));
  else
    printf("report %s recorded (status new)\n", PQgetvalue(res, 0, 0));
  PQclear(res);
  PQfinish(conn);
  return MN_EXIT_OK;
fail:
  PQclear(res);
  PQfinish(conn);
  return ctl_fail(&err);
}

static int cmd_reports(ctl *c, int argc, char **argv)
{
  mn_error err = {0};
  PGconn *conn = NULL;
  PGresult *res = NULL;
  int64_t limit = 50;
  if (argc != 0) return ctl_usage("reports takes no arguments (got \"%s\")", argv[0]);
  if (c->a.limit && (!mn_parse_i64(c->a.limit, &limit) || limit < 1))
    return ctl_usage("--limit wants a positive number, got \"%s\"", c->a.limit);
  static const char *const statuses[] = {"new", "triaged", "accepted", "rejected", "fixed"};
  bool ok = !c->a.status;
  for (size_t i = 0; i < 5 && !ok; i++)
    ok = strcmp(c->a.status, statuses[i]) == 0;
  const char *near = ok ? NULL : mn_nearest(c->a.status, statuses, 5);
  if (!ok)
    return ctl_usage("--status must be new, triaged, accepted, rejected or fixed, got \"%s\"%s%s%s",
                     c->a.status, near ? "; did you mean \"" : "", near ? near : "",
                     near ? "\"?" : "");
  if (ctl_connect(c, &conn, &err) != MN_OK) goto fail;
  char lim[32];
  snprintf(lim, sizeof lim, "%lld", (long long)limit);
  const char *params[] = {c->a.status, c->a.lang, lim};
  if (db_query(
          conn,
          "SELECT id, claimed_lang, detected_lang, status, severity, reporter, created_at,"
          "       text, expected_text, context, nullif(notes, '') AS notes"
          "  FROM mnemo.reports"
          " WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR claimed_lang = $2)"
          " ORDER BY id DESC LIMIT $3::bigint",
          3, params, &res, "could not list reports", &err) != MN_OK)
    goto fail;
  int n = PQntuples(res);
  if (c->json) {
    ctl_print_json(ctl_json_rows(res));
  } else {
    printf("%-6s %-5s %-8s %-9s %-20s %s\n", "id", "lang", "detected", "status", "created", "text");
    for (int i = 0; i < n; i++) {
      printf("%-6s %s %s %s %-20s %s\n", PQgetvalue(res, i, 0), ctl_cell(PQgetvalue(res, i, 1), 5),
             ctl_cell(ctl_cell_text(res, i, 2), 8), ctl_cell(PQgetvalue(res, i, 3), 9),
             ctl_cell_text(res, i, 6), ctl_text(PQgetvalue(res, i, 7), 60));
    }
    printf("%d report(s)\n", n);
  }
  PQclear(res);
  PQfinish(conn);
  return MN_EXIT_OK;
fail:
  PQclear(res);
  PQfinish(conn);
  return ctl_fail(&err);
}

/* ---------------------------------------------------------------- export */

/*
 * cmd_export -- a split's documents, one DIR/<code>.jsonl per language ({"lang", "text",
 * "split"} records by id: what mnemo shard and mnemo evalset read), and the tag
 * table DIR/tags.tsv, all from one snapshot (a repeatable-read transaction), so the files
 * agree with each other.  Each file is written atomically (db_export_jsonl): a killed export
 * leaves each name complete, or absent, or as an earlier export left it.  Reading document
 * text is the database's to allow (mnemo_operator and mnemo_daemon may; mnemo_ingest and
 * mnemo_reporter are refused there).
 */
static int cmd_export(ctl *c, int argc, char **argv)
{
  mn_error err = {0};
  PGconn *conn = NULL;
  PGresult *res = NULL;
  const char *split = c->a.split, *dir = c->a.out;
  if (argc != 0) return ctl_usage("export takes no arguments (got \"%s\")", ctl_text(argv[0], 80));
  if (strcmp(split, "train") && strcmp(split, "heldout") && strcmp(split, "all"))
    return ctl_usage("--split must be train, heldout or all, got \"%s\"", ctl_text(split, 40));
  for (int i = 0; i < c->a.langs.n; i++)
    if (!mn_lang_code_valid(c->a.langs.v[i]))
      return ctl_usage("--lang \"%s\" is not a language code (ISO 639-3: spa, swh, tha, ...)",
                       ctl_text(c->a.langs.v[i], 40));
  if (mkdir(dir, 0750) != 0 && errno != EEXIST)
    return ctl_usage("could not create --out \"%s\": %s", ctl_text(dir, 0), strerror(errno));
  if (ctl_connect(c, &conn, &err) != MN_OK) goto fail;
  if (db_exec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", &err) != MN_OK) goto fail;
  /* the languages: those asked for (each must be known), else every one with documents */
  if (c->a.langs.n > 0) {
    for (int i = 0; i < c->a.langs.n; i++) {
      bool found = false;
      if (exists(conn, "SELECT 1 FROM mnemo.languages WHERE code = $1", c->a.langs.v[i], &found,
                 "could not look up the language", &err) != MN_OK)
        goto fail;
      if (!found) {
        mn_error_set(&err, MN_ERR_USAGE, "--lang \"%s\": unknown language; nothing was exported",
                     c->a.langs.v[i]);
        mn_error_detail(&err, "mnemoctl lang list shows the languages; mnemoctl lang add adds one");
        goto fail;
      }
    }
  } else {
    const char *p[] = {split};
    if (db_query(conn,
                 "SELECT DISTINCT lang FROM mnemo.documents WHERE $1 = 'all' OR split = $1"
                 " ORDER BY lang",
                 1, p, &res, "could not list the languages of the documents", &err) != MN_OK)
      goto fail;
  }
  int nlangs = res ? PQntuples(res) : c->a.langs.n;
  json_t *files = json_array();
  int64_t total = 0, n = 0;
  char path[PATH_MAX];
  for (int i = 0; i < nlangs; i++) {
    const char *lang = res ? PQgetvalue(res, i, 0) : c->a.langs.v[i];
    const char *p[] = {lang, split};
    snprintf(path, sizeof path, "%s/%s.jsonl", dir, lang);
    if (db_export_jsonl(conn,
                        "SELECT json_build_object('lang', lang, 'text', text, 'split', split)"
                        " FROM mnemo.documents WHERE lang = $1 AND ($2 = 'all' OR split = $2)"
                        " ORDER BY id",
                        2, p, path, &n, &err) != MN_OK) {
      json_decref(files);
      goto fail;
    }
    total += n;
    json_array_append_new(files, json_pack("{s:s, s:s, s:I}", "lang", lang, "path", path,
                                           "documents", (json_int_t)n));
    if (!c->json) printf("%s: %lld document(s)\n", ctl_text(path, 0), (long long)n);
  }
  snprintf(path, sizeof path, "%s/tags.tsv", dir);
  if (db_export_tags(conn, path, &n, &err) != MN_OK) {
    json_decref(files);
    goto fail;
  }
  if (c->json)
    ctl_print_json(json_pack("{s:s, s:o, s:I, s:s, s:I}", "split", split, "files", files,
                             "documents", (json_int_t)total, "tags", path, "languages",
                             (json_int_t)n));
  else {
    json_decref(files);
    printf("%s: %lld language tag(s)\n%lld %s document(s) in %d file(s)\n", ctl_text(path, 0),
           (long long)n, (long long)total, split, nlangs);
  }
  PQclear(res);
  PQfinish(conn); /* read only: nothing to commit */
  return MN_EXIT_OK;
fail:
  PQclear(res);
  PQfinish(conn);
  return ctl_fail(&err);
}

/* ---------------------------------------------------------------- the table */

static const ctl_opt lang_add_opts[] = {
    CTL_NEED("script", script, "SCRIPT", "ISO 15924 script code of the language's text"),
    CTL_ARG("name", name, "NAME", "display name (default: the ISO 639-3 name)"),
    CTL_FLAG("disabled", disabled, "add it disabled"),
    {0}};
static const ctl_opt source_add_opts[] = {
    CTL_ARG("origin", origin, "TEXT", "where the text comes from (package, URL, system)"),
    CTL_ARG("licence", licence, "TEXT", "the licence of the text"),
    CTL_ARG("note", note, "NOTE", "anything else worth knowing"),
    {0}};
static const ctl_opt ingest_opts[] = {
    CTL_ARG("format", format, "FORMAT",
            "text, or jsonl: {\"lang\", \"text\", \"source\"} per line (default: text)"),
    CTL_ARG("lang", lang, "LANG", "the language (ISO 639-3) of every unit (required for text)"),
    CTL_ARG("source", source, "SOURCE",
            "the source of every unit (required for text; jsonl: when a record has none)"),
    CTL_ARG("unit", unit, "UNIT",
            "a text's units: line, paragraph (blank-line separated) or file (default: line)"),
    CTL_FLAG("skip-bad", skip_bad, "store the good units even if some are bad"),
    CTL_ARG("reject", reject, "FILE", "with --skip-bad: bad units go here (default: FILE.rejects)"),
    CTL_FLAG("quiet", quiet, "no progress line"),
    {0}};
static const ctl_opt report_opts[] = {
    CTL_NEED("lang", lang, "LANG", "the language the user claims (ISO 639-3)"),
    CTL_NEED("text", text, "TEXT", "what the user saw or wrote"),
    CTL_ARG("expected", expected, "TEXT", "what the user expected instead"),
    CTL_ARG("context", context, "JSON", "a JSON object: where, which model, anything useful"),
    {0}};
static const ctl_opt export_opts[] = {
    CTL_NEED("split", split, "SPLIT", "train, heldout or all: the documents to export"),
    CTL_NEED("out", out, "DIR", "the folder to write (created if missing)"),
    CTL_LIST("lang", langs, "LANG", "only this language, again for more (default: every one)"),
    {0}};
static const ctl_opt reports_opts[] = {
    CTL_ARG("status", status, "STATUS", "only new, triaged, accepted, rejected or fixed reports"),
    CTL_ARG("lang", lang, "LANG", "only reports claiming this language"),
    CTL_ARG("limit", limit, "N", "at most N, newest first (default: 50)"),
    {0}};

const ctl_command ctl_data_commands[] = {
    {"lang", "add", cmd_lang_add, "CODE", "Add a language (or correct one).",
     "Adds the ISO 639-3 language CODE, written in the ISO 15924 SCRIPT.  It gets a tag\n"
     "token id that is never reused or changed.  Adding it again keeps its tag id.\n",
     lang_add_opts},
    {"lang", "list", cmd_lang_list, "", "List languages and their documents.",
     "Every language with its tag id, whether it is enabled, and its train and held-out\n"
     "documents.\n",
     NULL},
    {"lang", "enable", cmd_lang_enable, "CODE", "Enable a language.",
     "Enabled languages take new documents and reports.\n", NULL},
    {"lang", "disable", cmd_lang_disable, "CODE", "Disable a language.",
     "A disabled language keeps its documents and tag id; ingest refuses new ones.\n", NULL},
    {"source", "add", cmd_source_add, "NAME", "Record a source of documents (provenance).",
     "Records (or updates) where documents come from and under which licence (an\n"
     "operator's task).  Ingest creates unknown sources by name; this adds their origin\n"
     "and licence.\n",
     source_add_opts},
    {"sources", NULL, cmd_sources, "", "List sources with their documents.",
     "Every source with its licence, origin and how many documents it gave.\n", NULL},
    {"ingest", NULL, cmd_ingest, "FILE...", "Ingest documents (plain text or JSONL).",
     "Reads each FILE (\"-\" is standard input), checks every unit (UTF-8, control\n"
     "characters, blank, size, language known and enabled), and stores the new ones in one\n"
     "transaction; \"\\r\\n\" line ends become \"\\n\".  A bad unit is reported as\n"
     "file:line: reason, and by default nothing is stored; --skip-bad stores the good ones\n"
     "and writes the bad ones to a reject file (a new FILE.rejects.N when one exists).  A\n"
     "document already stored is counted as a duplicate.  Some documents (a stable share,\n"
     "ingest.heldout_fraction) are held out for evaluation and never trained on.\n",
     ingest_opts},
    {"report", NULL, cmd_report, "", "Record a user report about a language.",
     "Records what a user saw go wrong in their language, with what they expected and any\n"
     "context.  Other systems may insert reports directly (role mnemo_reporter).\n",
     report_opts},
    {"reports", NULL, cmd_reports, "", "List user reports, newest first.",
     "Reports with their claimed and detected language, status and an excerpt.\n", reports_opts},
    {"export", NULL, cmd_export, "", "Export documents and the tag table.",
     "Writes the documents of a split, DIR/CODE.jsonl per language ({\"lang\", \"text\",\n"
     "\"split\"} a line, in the order they were stored), and the language tag table,\n"
     "DIR/tags.tsv (code<TAB>tag id, as the database assigned them), all from one snapshot.\n"
     "These are the inputs of mnemo shard --tags DIR/tags.tsv and of mnemo evalset.\n"
     "Each file is written atomically: a killed export never leaves a\n"
     "half-written one.  Reading documents needs mnemo_operator or mnemo_daemon.\n",
     export_opts},
};
const size_t ctl_data_ncommands = sizeof ctl_data_commands / sizeof ctl_data_commands[0];
