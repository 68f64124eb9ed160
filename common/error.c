/*
 * error.c -- mn_status names and the mn_error helpers.
 *
 * Not for: deciding to exit.  Only main() does that (STYLE.md §3).
 */
#include "common/common.h"

#include <stdio.h>
#include <string.h>

const char *mn_status_name(mn_status code)
{
  switch (code) {
  case MN_OK: return "ok";
  case MN_ERR_NOMEM: return "nomem";
  case MN_ERR_IO: return "io";
  case MN_ERR_CONFIG: return "config";
  case MN_ERR_DB: return "db";
  case MN_ERR_INPUT: return "input";
  case MN_ERR_CORRUPT: return "corrupt";
  case MN_ERR_CUDA: return "cuda";
  case MN_ERR_NUMERIC: return "numeric";
  case MN_ERR_HTTP: return "http";
  case MN_ERR_USAGE: return "usage";
  case MN_ERR_INTERNAL: return "internal";
  case MN_ERR_STATE: return "state";
  }
  return "unknown";
}

mn_status mn_error_set(mn_error *err, mn_status code, const char *fmt, ...)
{
  if (!err) return code;
  va_list ap;
  va_start(ap, fmt);
  err->code = code;
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  err->detail[0] = '\0';
  return code;
}

mn_status mn_error_detail(mn_error *err, const char *fmt, ...)
{
  if (!err) return MN_OK;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->detail, sizeof err->detail, fmt, ap);
  va_end(ap);
  return err->code;
}

mn_status mn_error_prefix(mn_error *err, const char *fmt, ...)
{
  if (!err) return MN_OK;
  char prefix[sizeof err->msg];
  char old[sizeof err->msg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, err->msg, sizeof old);
  int n = snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
  (void)n; /* a long message is truncated: the start says the most */
  return err->code;
}

void mn_error_clear(mn_error *err)
{
  if (!err) return;
  err->code = MN_OK;
  err->msg[0] = '\0';
  err->detail[0] = '\0';
}
