/*
 * ctl_util.c -- what every command of mnemoctl stands on (ctl_int.h): failing and usage
 * messages with their exit codes, the configuration and the database connection, JSON
 * output, and text people wrote shown safely on a terminal.  The command tables
 * (ctl_data.c, ctl_refresh.c, ctl_triage.c) and the dispatcher (mnemoctl.c) use it; it
 * uses none of them.
 */
#define _XOPEN_SOURCE 700 /* wcwidth */
#include "daemon/ctl/ctl_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

/* ---------------------------------------------------------------- failing */

bool ctl_json_errors;

/* sqlstate_words -- what a database error's class means to an operator (NULL: nothing to add) */
static const char *sqlstate_words(const char *detail)
{
  static const struct {
    const char *state, *words;
  } known[] = {
      {"SQLSTATE 42501", "your login's roles do not allow this (mnemoctl user list shows who has "
                         "which; an administrator grants them)"},
      {"SQLSTATE 28P01", "the database refused the login name or password"},
      {"SQLSTATE 55000", "not now: the thing is in another state"},
      {"SQLSTATE 22023", "a value the database does not accept"},
      {"SQLSTATE 23505", "it exists already"},
      {"SQLSTATE 23503", "it refers to something that does not exist"},
      {"SQLSTATE P0002", "no such thing"},
      {"SQLSTATE 57014", "it took too long and was cancelled"},
      {"SQLSTATE 53300", "the database has no connection to spare"},
  };
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (strncmp(detail, known[i].state, 14) == 0) return known[i].words;
  return NULL;
}

int ctl_fail(const mn_error *err)
{
  /* the SQLSTATE is for scripts (--json) and logs; an operator reads what it means, then the
   * server's DETAIL and HINT */
  const char *words = sqlstate_words(err->detail);
  const char *rest = err->detail;
  if (strncmp(rest, "SQLSTATE ", 9) == 0) {
    rest += strcspn(rest, ";");
    rest += strspn(rest, "; ");
  }
  if (ctl_json_errors) { /* escaped: a message may quote bytes that are not UTF-8 */
    json_t *o = json_pack("{s:s, s:s}", "error", mn_status_name(err->code), "message",
                          ctl_text(err->msg, 0));
    json_object_set_new(o, "detail",
                        err->detail[0] ? json_string(ctl_text(err->detail, 0)) : json_null());
    json_object_set_new(o, "sqlstate",
                        strncmp(err->detail, "SQLSTATE ", 9) == 0 ? json_stringn(err->detail + 9, 5)
                                                                  : json_null());
    char *t = json_dumps(o, JSON_COMPACT);
    if (t) fprintf(stderr, "%s\n", t);
    free(t);
    json_decref(o);
  } else {
    /* messages quote what people wrote (names, notes, the failing row): escaped */
    fprintf(stderr, "mnemoctl: %s\n", ctl_text(err->msg, 0));
    if (words) fprintf(stderr, "  why: %s\n", words);
    if (!words && err->detail[0]) /* nothing to say in words: the detail as it is */
      fprintf(stderr, "  detail: %s\n", ctl_text(err->detail, 0));
    else if (*rest)
      fprintf(stderr, "  %s\n", ctl_text(rest, 0)); /* "DETAIL: ...; HINT: ..." */
  }
  return err->code == MN_ERR_USAGE ? MN_EXIT_USAGE : MN_EXIT_FAIL;
}

/* is_time -- a timestamp with or without time zone: the session's zone is UTC (ctl_connect)
 * and its style ISO, so the text is "YYYY-MM-DD HH:MM:SS[.ffffff]+00" */
static bool is_time(const PGresult *r, int col, const char *v)
{
  Oid t = PQftype(r, col);
  return (t == 1184 || t == 1114) && strlen(v) >= 19 && v[10] == ' ' && v[4] == '-';
}

json_t *ctl_json_cell(const PGresult *r, int row, int col)
{
  if (PQgetisnull(r, row, col)) return json_null();
  const char *v = PQgetvalue(r, row, col);
  switch (PQftype(r, col)) {
  case 20: /* int8 */
  case 21: /* int2 */
  case 23: /* int4 */
  case 26: /* oid */ return json_integer(strtoll(v, NULL, 10));
  case 1700: /* numeric: sum() of integers has no fraction */
    if (v[strspn(v, "-0123456789")] == '\0' && strlen(v) < 19)
      return json_integer(strtoll(v, NULL, 10));
    /* fall through */
  case 700: /* float4 */
  case 701: /* float8 */ {
    double x = strtod(v, NULL); /* NaN and the infinities have no JSON: null */
    return isfinite(x) ? json_real(x) : json_null();
  }
  case 16: /* bool */ return json_boolean(v[0] == 't');
  case 114: /* json */
  case 3802: /* jsonb */ {
    json_t *j = json_loads(v, JSON_DECODE_ANY, NULL);
    if (!j) /* an integer beyond 64 bits (the server keeps any): as a float */
      j = json_loads(v, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, NULL);
    return j ? j : json_string(v);
  }
  default:
    if (is_time(r, col, v)) {
      char iso[24];
      snprintf(iso, sizeof iso, "%.10sT%.8sZ", v, v + 11);
      return json_string(iso);
    }
    return json_string(v);
  }
}

json_t *ctl_json_row(const PGresult *r, int row)
{
  json_t *o = json_object();
  for (int k = 0; k < PQnfields(r); k++)
    json_object_set_new(o, PQfname(r, k), ctl_json_cell(r, row, k));
  return o;
}

json_t *ctl_json_rows(const PGresult *r)
{
  json_t *arr = json_array();
  for (int i = 0; i < PQntuples(r); i++)
    json_array_append_new(arr, ctl_json_row(r, i));
  return arr;
}

const char *ctl_cell_text(const PGresult *r, int row, int col)
{
  static char slots[CTL_TEXT_SLOTS][24];
  static unsigned next;
  if (PQgetisnull(r, row, col)) return "-";
  const char *v = PQgetvalue(r, row, col);
  if (!is_time(r, col, v)) return v;
  char *out = slots[next++ % CTL_TEXT_SLOTS];
  snprintf(out, 24, "%.19s", v);
  return out;
}

char ctl_usage_topic[64];

int ctl_usage(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  if (ctl_json_errors) { /* under --json, a usage error is the error object too */
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    mn_error e = {0};
    mn_error_set(&e, MN_ERR_USAGE, "%s", msg);
    return ctl_fail(&e);
  }
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
  if ((rc = db_connect(&opt, conn, err)) != MN_OK) return rc;
  /* times are read in UTC and in one style (ctl_json_cell, ctl_cell_text) */
  return db_exec(*conn, "SET TIME ZONE 'UTC'; SET datestyle TO ISO", err);
}

/* put_shortest -- the number that jansson wrote at s (len bytes) in the fewest significant
 * digits that read back as the same double (jansson writes 17: 9.174 is 9.1739999999999995),
 * in positional notation from 1e-4 to 1e16 (100.0, not 1e+02) and with an exponent beyond,
 * as Python's repr writes a float */
static void put_shortest(FILE *f, const char *s, size_t len)
{
  char in[64], out[48];
  if (len >= sizeof in || !memchr(s, '.', len)) {
    fwrite(s, 1, len, f); /* an integer, or an exponent form: as it is */
    return;
  }
  memcpy(in, s, len);
  in[len] = 0;
  double x = strtod(in, NULL), a = fabs(x);
  if (a >= 1e-4 && a < 1e16) {
    for (int d = 0; d <= 20; d++) {
      snprintf(out, sizeof out, "%.*f", d, x);
      if (strtod(out, NULL) == x) break;
    }
  } else {
    for (int p = 1; p <= 17; p++) {
      snprintf(out, sizeof out, "%.*g", p, x);
      if (strtod(out, NULL) == x) break;
    }
  }
  fputs(out, f);
  if (!strpbrk(out, ".eEn")) fputs(".0", f); /* still a float to a reader that types them */
}

void ctl_print_json(json_t *o)
{
  char *t = json_dumps(o, JSON_INDENT(2) | JSON_ENCODE_ANY);
  json_decref(o);
  if (!t) return;
  /* jansson's text, its floats rewritten: outside strings, a token that starts like a
   * number is one */
  for (const char *p = t; *p;) {
    if (*p == '"') {
      const char *q = p + 1;
      while (*q && *q != '"')
        q += (*q == '\\' && q[1]) ? 2 : 1;
      if (*q) q++;
      fwrite(p, 1, (size_t)(q - p), stdout);
      p = q;
    } else if (*p == '-' || (*p >= '0' && *p <= '9')) {
      size_t n = strspn(p, "-+0123456789.eE");
      put_shortest(stdout, p, n);
      p += n;
    } else {
      putchar(*p++);
    }
  }
  putchar('\n');
  free(t);
}

/* fill -- a template of cols for one row ("-" when a column it names is null or absent) */
static const char *fill(const PGresult *r, int row, const char *show, char *out, size_t size)
{
  size_t o = 0;
  for (const char *p = show; *p && o + 1 < size;) {
    const char *e = *p == '{' ? strchr(p, '}') : NULL;
    if (!e) {
      out[o++] = *p++;
      continue;
    }
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)(e - p - 1), p + 1);
    int k = PQfnumber(r, name);
    if (k < 0 || PQgetisnull(r, row, k)) return "-";
    o += (size_t)snprintf(out + o, size - o, "%s", ctl_cell_text(r, row, k));
    if (o >= size) o = size - 1;
    p = e + 1;
  }
  out[o] = 0;
  return out;
}

void ctl_print_rows(const ctl *c, const PGresult *r, const ctl_col *cols)
{
  if (c->json) {
    ctl_print_json(ctl_json_rows(r));
    return;
  }
  enum { MAXCOL = 32 };
  ctl_col all[MAXCOL + 1] = {{0}};
  char tmpl[MAXCOL][70];
  if (!cols) {
    for (int k = 0; k < PQnfields(r) && k < MAXCOL; k++) {
      snprintf(tmpl[k], sizeof tmpl[k], "{%s}", PQfname(r, k));
      all[k] = (ctl_col){PQfname(r, k), tmpl[k]};
    }
    cols = all;
  }
  int m = 0, n = PQntuples(r), w[MAXCOL];
  while (m < MAXCOL && cols[m].heading)
    m++;
  char buf[4096];
  /* columns as wide as their widest cell in display columns (at most 60), the last not
   * padded */
  for (int k = 0; k < m; k++) {
    w[k] = ctl_width(cols[k].heading);
    for (int i = 0; i < n; i++) {
      int l = ctl_width(ctl_text(fill(r, i, cols[k].show, buf, sizeof buf), 0));
      if (l > w[k]) w[k] = l < 60 ? l : 60;
    }
  }
  for (int k = 0; k < m; k++)
    printf("%s%s", k + 1 < m ? ctl_cell(cols[k].heading, w[k]) : cols[k].heading,
           k + 1 < m ? "  " : "\n");
  for (int i = 0; i < n; i++)
    for (int k = 0; k < m; k++) {
      const char *v = fill(r, i, cols[k].show, buf, sizeof buf);
      printf("%s%s", k + 1 < m ? ctl_cell(v, w[k]) : ctl_text(v, 0), k + 1 < m ? "  " : "\n");
    }
  if (n == 0) printf("(none)\n");
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

/* next_width -- the display columns of the character at s (wcwidth under mnemoctl's UTF-8
 * LC_CTYPE; a control character, or a byte the locale cannot decode: 1), its length in *len */
static int next_width(const char *s, size_t *len)
{
  wchar_t wc;
  mbstate_t st = {0};
  size_t n = mbrtowc(&wc, s, MB_CUR_MAX, &st);
  if (n == 0 || n > (size_t)MB_CUR_MAX) return *len = 1, 1;
  int w = wcwidth(wc);
  return *len = n, w < 0 ? 1 : w;
}

int ctl_width(const char *s)
{
  int w = 0;
  for (size_t len; *s; s += len)
    w += next_width(s, &len);
  return w;
}

const char *ctl_cell(const char *s, int cols)
{
  static char slots[CTL_TEXT_SLOTS][1400];
  static unsigned next;
  char *out = slots[next++ % CTL_TEXT_SLOTS];
  const char *t = ctl_text(s, 1000);
  if (cols < 1) cols = 1;
  if (cols > 300) cols = 300;
  size_t o = 0;
  int w = 0;
  bool fits = ctl_width(t) <= cols;
  for (const char *p = t; *p;) {
    size_t len;
    int cw = next_width(p, &len);
    if (!fits && w + cw > cols - 1) break; /* room for the ellipsis */
    memcpy(out + o, p, len);
    o += len, w += cw, p += len;
  }
  if (!fits) {
    memcpy(out + o, "…", 3);
    o += 3, w++;
  }
  while (w < cols && o < sizeof slots[0] - 1)
    out[o++] = ' ', w++;
  out[o] = '\0';
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
