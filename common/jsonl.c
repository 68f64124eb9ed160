/*
 * jsonl.c -- the one JSONL reader (common.h): a JSON object a line, blank lines skipped,
 * every error naming file:line.  The JSONL files of the compute side and the daemon go through
 * here: documents for shards, sources of evaluation sets, held-out text, the language
 * identifier's training text, the triage batch and its results.  Not for: ingest's
 * streaming reader (daemon/ingest_read.c), which reads under byte caps and reports per
 * document instead of stopping, and `mnemo lid`, whose lines may be plain text.
 */
#include "common/common.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

mn_status mn_jsonl_open(mn_jsonl *r, const char *path, mn_error *err)
{
  memset(r, 0, sizeof *r);
  FILE *f = fopen(path, "r");
  if (!f) return mn_error_set(err, MN_ERR_IO, "could not open \"%s\": %s", path, strerror(errno));
  mn_jsonl_from(r, f, path);
  r->own = true;
  return MN_OK;
}

void mn_jsonl_from(mn_jsonl *r, FILE *f, const char *name)
{
  memset(r, 0, sizeof *r);
  r->f = f;
  snprintf(r->name, sizeof r->name, "%s", name);
}

mn_status mn_jsonl_fail(const mn_jsonl *r, mn_error *err, mn_status code, const char *fmt, ...)
{
  char msg[sizeof err->msg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return mn_error_set(err, code, "%s:%lld: %s", r->name, (long long)r->line_no, msg);
}

mn_status mn_jsonl_next(mn_jsonl *r, json_t **obj, mn_error *err)
{
  *obj = NULL;
  for (;;) {
    errno = 0;
    ssize_t n = getline(&r->line, &r->cap, r->f);
    if (n <= 0) break;
    r->line_no++;
    if (strspn(r->line, " \t\r\n") == (size_t)n) continue;
    json_error_t je;
    json_t *o = json_loadb(r->line, (size_t)n, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &je);
    if (!o) /* jansson takes only an object or an array: a scalar fails to parse here */
      return mn_jsonl_fail(r, err, MN_ERR_INPUT,
                           strncmp(je.text, "'[' or '{' expected", 19) == 0
                               ? "not a JSON object (%s)"
                               : "not valid JSON (%s)",
                           je.text);
    if (!json_is_object(o)) {
      json_decref(o);
      return mn_jsonl_fail(r, err, MN_ERR_INPUT, "not a JSON object (an array)");
    }
    *obj = o;
    return MN_OK;
  }
  /* getline fails without setting the stream's error when it runs out of memory: only a
   * true end of file ends the input, or the records after a huge line would be lost */
  if (ferror(r->f) || !feof(r->f)) {
    int e = errno ? errno : EIO;
    return mn_error_set(err, e == ENOMEM ? MN_ERR_NOMEM : MN_ERR_IO,
                        "%s:%lld: could not read the line: %s", r->name, (long long)r->line_no + 1,
                        strerror(e));
  }
  return MN_OK;
}

const char *mn_json_str(const json_t *v)
{
  const char *s = json_string_value(v);
  return s && strlen(s) == json_string_length(v) ? s : NULL;
}

void mn_jsonl_close(mn_jsonl *r)
{
  if (r->own && r->f) fclose(r->f);
  free(r->line);
  memset(r, 0, sizeof *r);
}

mn_status mn_jsonl_each(const char *path, mn_jsonl_fn fn, void *ctx, mn_error *err)
{
  mn_jsonl r;
  mn_status rc = mn_jsonl_open(&r, path, err);
  if (rc != MN_OK) return rc;
  json_t *o;
  while ((rc = mn_jsonl_next(&r, &o, err)) == MN_OK && o) {
    rc = fn(o, &r, ctx, err);
    json_decref(o);
    if (rc != MN_OK) break;
  }
  mn_jsonl_close(&r);
  return rc;
}
