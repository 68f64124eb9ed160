/*
 * ctl_util.c -- what every command of mnemoctl stands on (ctl_int.h): failing and usage
 * messages with their exit codes, the configuration and the database connection, JSON
 * output, and text people wrote shown safely on a terminal.  The command tables
 * (ctl_data.c, ctl_refresh.c, ctl_triage.c) and the dispatcher (mnemoctl.c) use it; it
 * uses none of them.
 */
#include "daemon/ctl/ctl_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- failing */

int ctl_fail(const mn_error *err)
{
  /* messages quote what people wrote (names, notes, the database's failing row): escaped */
  fprintf(stderr, "mnemoctl: %s\n", ctl_text(err->msg, 0));
  if (err->detail[0]) fprintf(stderr, "  detail: %s\n", ctl_text(err->detail, 0));
  return err->code == MN_ERR_USAGE ? MN_EXIT_USAGE : MN_EXIT_FAIL;
}

char ctl_usage_topic[64];

int ctl_usage(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "mnemoctl: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\nTry \"mnemoctl help%s%s\".\n", *ctl_usage_topic ? " " : "", ctl_usage_topic);
  va_end(ap);
  return MN_EXIT_USAGE;
}

mn_status ctl_load_config(ctl *c, mn_error *err)
{
  mn_status rc;
  char found[4096];
  const char *path = c->config_path ? c->config_path : mn_config_find(found, sizeof found);
  if (path && *path)
    rc = mn_config_load_file(path, &c->cfg, err);
  else
    rc = mn_config_init(&c->cfg, err);
  if (rc != MN_OK) return rc;
  c->have_cfg = true;
  if (!(path && *path) && (rc = mn_config_adhoc(&c->cfg, err)) != MN_OK) return rc;
  const char *env_db = getenv("MNEMO_DB");
  if (c->db)
    rc = mn_config_set_literal(&c->cfg, "database.conninfo", c->db, "--db", err);
  else if (env_db && *env_db)
    rc = mn_config_set_literal(&c->cfg, "database.conninfo", env_db, "MNEMO_DB", err);
  mn_config_apply_log(&c->cfg);
  return rc;
}

mn_status ctl_connect(ctl *c, PGconn **conn, mn_error *err)
{
  mn_status rc = ctl_load_config(c, err);
  if (rc != MN_OK) return rc;
  db_options opt = {.conninfo = c->cfg.database.conninfo,
                    .application_name = c->cfg.database.application_name,
                    .connect_timeout_s = c->cfg.database.connect_timeout_s};
  return db_connect(&opt, conn, err);
}

void ctl_print_json(json_t *o)
{
  json_dumpf(o, stdout, JSON_INDENT(2));
  putchar('\n');
  json_decref(o);
}

int ctl_done(PGconn *conn, PGresult *res, const mn_error *err, int code)
{
  PQclear(res);
  PQfinish(conn);
  return code == MN_EXIT_FAIL ? ctl_fail(err) : code;
}

/* ---------------------------------------------------------------- text on a terminal */

const char *ctl_text(const char *s, size_t max)
{
  static char slots[CTL_TEXT_SLOTS][1024];
  static unsigned next;
  char *out = slots[next++ % CTL_TEXT_SLOTS];
  static const char ellipsis[] = "…";
  bool cut = false;
  if (!s) return "-";
  if (max == 0 || max > 1000) max = 1000;
  size_t n = strlen(s);
  mn_text_escape(s, n, 0, out, max + 1, &cut);
  if (cut) { /* again, leaving room for the ellipsis within max */
    size_t room = max > sizeof ellipsis - 1 ? max - (sizeof ellipsis - 1) : 0;
    size_t w = 0;
    if (room) {
      mn_text_escape(s, n, 0, out, room + 1, NULL);
      w = strlen(out);
    }
    memcpy(out + w, ellipsis, sizeof ellipsis);
  }
  return out;
}

void ctl_put_text(FILE *f, const char *s, const char *indent)
{
  for (;;) {
    const char *nl = strchr(s, '\n');
    size_t n = nl ? (size_t)(nl - s) : strlen(s);
    mn_text_fput(f, s, n, MN_TEXT_TAB);
    if (!nl) break;
    fprintf(f, "\n%s", indent);
    s = nl + 1;
  }
}
