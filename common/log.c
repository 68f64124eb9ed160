/*
 * log.c -- structured logging: one event, one line, one write(2).
 *
 * Two formats, chosen by config (log.format):
 *   logfmt  ts=2026-11-26T05:17:27.123Z level=info msg="migration applied" version=1
 *   json    {"ts":"...","level":"info","msg":"migration applied","version":1}
 * Events below the configured level cost one comparison.  Lines are built in
 * a private buffer and written with one write(2), so lines from several
 * threads or processes sharing stderr never interleave (below PIPE_BUF).
 */
#include "common/common.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static _Atomic int log_level = MN_LOG_INFO;
static _Atomic int log_format = MN_LOG_LOGFMT;
static _Atomic int log_fd = -1;

#define MN_LOG_MAX_LINE (1u << 16) /* longer events are cut to their message */

static const char *const level_names[] = {"debug", "info", "warn", "error"};

const char *mn_log_level_name(mn_log_level level)
{
  return (unsigned)level < 4 ? level_names[level] : "unknown";
}

bool mn_log_level_parse(const char *s, mn_log_level *out)
{
  for (int i = 0; i < 4; i++) {
    if (strcasecmp(s, level_names[i]) == 0) {
      *out = (mn_log_level)i;
      return true;
    }
  }
  return false;
}

bool mn_log_format_parse(const char *s, mn_log_format *out)
{
  if (strcasecmp(s, "logfmt") == 0)
    *out = MN_LOG_LOGFMT;
  else if (strcasecmp(s, "json") == 0)
    *out = MN_LOG_JSON;
  else
    return false;
  return true;
}

void mn_log_configure(mn_log_level level, mn_log_format format, int fd)
{
  atomic_store(&log_level, (int)level);
  atomic_store(&log_format, (int)format);
  atomic_store(&log_fd, fd);
}

/* Appends to the line being built; an append past the cap sets overflow. */
static _Thread_local bool overflow;

static void put(mn_buf *b, const void *p, size_t n)
{
  if (mn_buf_append(b, p, n, NULL) != MN_OK) overflow = true;
}

static void putf(mn_buf *b, const char *fmt, ...) MN_PRINTF(2, 3);

static void putf(mn_buf *b, const char *fmt, ...)
{
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof tmp) {
    overflow = true;
    return;
  }
  put(b, tmp, (size_t)n);
}

/* logfmt value: bare when safe, else quoted with \" \\ \n \t \r and \u00XX escapes. */
static void logfmt_value(mn_buf *b, const char *s)
{
  bool quote = (*s == '\0');
  for (const char *p = s; *p && !quote; p++) {
    unsigned char c = (unsigned char)*p;
    if (c <= ' ' || c == '=' || c == '"' || c == '\\' || c == 0x7f) quote = true;
  }
  if (!quote) {
    put(b, s, strlen(s));
    return;
  }
  put(b, "\"", 1);
  for (const char *p = s; *p; p++) {
    unsigned char c = (unsigned char)*p;
    switch (c) {
    case '"': put(b, "\\\"", 2); break;
    case '\\': put(b, "\\\\", 2); break;
    case '\n': put(b, "\\n", 2); break;
    case '\t': put(b, "\\t", 2); break;
    case '\r': put(b, "\\r", 2); break;
    default:
      if (c < 0x20 || c == 0x7f)
        putf(b, "\\u%04x", c);
      else
        put(b, p, 1);
    }
  }
  put(b, "\"", 1);
}

static void emit_logfmt(mn_buf *b, const char *ts, mn_log_level level, const char *msg,
                        const mn_kv *kv, size_t nkv)
{
  putf(b, "ts=%s level=%s msg=", ts, mn_log_level_name(level));
  logfmt_value(b, msg);
  for (size_t i = 0; i < nkv; i++) {
    putf(b, " %s=", kv[i].key);
    switch (kv[i].type) {
    case MN_KV_STR: logfmt_value(b, kv[i].v.s ? kv[i].v.s : ""); break;
    case MN_KV_INT: putf(b, "%lld", kv[i].v.i); break;
    case MN_KV_DBL: putf(b, "%.6g", kv[i].v.d); break;
    case MN_KV_BOOL: putf(b, "%s", kv[i].v.b ? "true" : "false"); break;
    case MN_KV_NONE: break;
    }
  }
}

static void emit_json(mn_buf *b, const char *ts, mn_log_level level, const char *msg,
                      const mn_kv *kv, size_t nkv)
{
  json_t *o = json_object();
  if (!o) return;
  json_object_set_new(o, "ts", json_string(ts));
  json_object_set_new(o, "level", json_string(mn_log_level_name(level)));
  /* non-UTF-8 text is still logged: jansson refuses it, so fall back to a marker */
  json_t *m = json_string(msg);
  json_object_set_new(o, "msg", m ? m : json_string("<invalid UTF-8>"));
  for (size_t i = 0; i < nkv; i++) {
    json_t *v = NULL;
    switch (kv[i].type) {
    case MN_KV_STR:
      v = json_string(kv[i].v.s ? kv[i].v.s : "");
      if (!v) v = json_string("<invalid UTF-8>");
      break;
    case MN_KV_INT: v = json_integer(kv[i].v.i); break;
    case MN_KV_DBL: v = isfinite(kv[i].v.d) ? json_real(kv[i].v.d) : json_null(); break;
    case MN_KV_BOOL: v = json_boolean(kv[i].v.b); break;
    case MN_KV_NONE: v = json_null(); break;
    }
    json_object_set_new(o, kv[i].key, v);
  }
  char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  if (s) {
    put(b, s, strlen(s));
    free(s);
  } else {
    overflow = true;
  }
  json_decref(o);
}

void mn_log__emit(mn_log_level level, const char *msg, const mn_kv *kv, size_t nkv)
{
  if ((int)level < atomic_load(&log_level)) return;
  char ts[32];
  mn_buf b;
  mn_buf_init(&b, MN_LOG_MAX_LINE);
  mn_wall_iso8601(ts);
  overflow = false;
  bool json = atomic_load(&log_format) == MN_LOG_JSON;
  if (json)
    emit_json(&b, ts, level, msg, kv, nkv);
  else
    emit_logfmt(&b, ts, level, msg, kv, nkv);
  if (overflow) {
    /* over the cap: say so, with the start of the message, rather than emit half a line */
    char head[512];
    snprintf(head, sizeof head, "%s", msg);
    mn_buf_reset(&b);
    const mn_kv t = MN_KV_B("truncated", true);
    if (json)
      emit_json(&b, ts, level, head, &t, 1);
    else
      emit_logfmt(&b, ts, level, head, &t, 1);
  }
  b.max += 1; /* room for the newline, always */
  (void)!mn_buf_append(&b, "\n", 1, NULL);
  int fd = atomic_load(&log_fd);
  if (fd < 0) fd = STDERR_FILENO;
  const char *p = b.data;
  size_t n = b.len;
  while (p && n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      break; /* nowhere left to report a logging failure */
    }
    p += w;
    n -= (size_t)w;
  }
  mn_buf_fini(&b);
}

void mn_log_error(const char *msg, const mn_error *err)
{
  if (err->detail[0])
    mn_log(MN_LOG_ERROR, msg, MN_KV_S("code", mn_status_name(err->code)),
           MN_KV_S("error", err->msg), MN_KV_S("detail", err->detail));
  else
    mn_log(MN_LOG_ERROR, msg, MN_KV_S("code", mn_status_name(err->code)),
           MN_KV_S("error", err->msg));
}
