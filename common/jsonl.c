/*
 * jsonl.c -- the one JSONL reader (common.h): a JSON object a line, blank lines skipped,
 * every error naming file:line.  Every JSONL file mnemo reads goes through here: sources of
 * evaluation sets, the language identifier's training text, the triage batch and its
 * results, replay exports.  Not for: ingest's streaming reader (daemon/ingest_read.c), which
 * reads from a socket under byte caps and reports per document instead of stopping.
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
  ssize_t n;
  errno = 0;
  while ((n = getline(&r->line, &r->cap, r->f)) > 0) {
    r->line_no++;
    if (strspn(r->line, " \t\r\n") == (size_t)n) continue;
    json_error_t je;
    json_t *o = json_loadb(r->line, (size_t)n, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(o)) {
      json_decref(o);
      return mn_jsonl_fail(r, err, MN_ERR_INPUT, "not a JSON object (%s)",
                           o ? "another JSON value" : je.text);
    }
    *obj = o;
    return MN_OK;
  }
  if (ferror(r->f))
    return mn_error_set(err, MN_ERR_IO, "could not read \"%s\": %s", r->name,
                        strerror(errno ? errno : EIO));
  return MN_OK;
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
