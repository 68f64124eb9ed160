/*
 * ctl_int.h -- what the source files of mnemoctl share: the invocation state,
 * the command table's shape, option declarations and output helpers.
 *
 * Not a public header: only the files of daemon/ctl/ include it.
 */
#ifndef MNEMO_CTL_INT_H
#define MNEMO_CTL_INT_H

#include "common/protocol.h" /* the exit codes, MN_EXIT_* */
#include "configs/config.h"
#include "daemon/daemon.h"

#include <jansson.h>
#include <stddef.h>

/* The values of an option that may be given more than once (CTL_LIST), in order. */
#define CTL_LIST_MAX 64
typedef struct ctl_list {
  const char *v[CTL_LIST_MAX];
  int n;
} ctl_list;

/* Values of every command option; each command declares which it accepts. */
typedef struct ctl_args {
  const char *lang, *source, *format, *unit, *reject, *text, *expected, *context, *status;
  const char *script, *name, *origin, *licence, *limit;
  const char *note, *reason, *replay, *fisher, *prompt, *tokens, *split, *out, *role;
  ctl_list langs;
  bool skip_bad, disabled, quiet, trained_on_stored, password_stdin;
} ctl_args;

typedef struct ctl {
  const char *config_path;
  const char *db;
  bool json;
  mn_config cfg;
  bool have_cfg;
  ctl_args a;
} ctl;

/* One option of a command: --name META (meta set) or --name (a flag); stored at offset in
 * ctl_args (a repeatable one, many: each value appended to the ctl_list there).  A required
 * one is checked by the parser ("lang add needs --script SCRIPT") and shown without brackets
 * in the command's synopsis.  The same option name has the same META in every command, and
 * a default is written "(default: X)" at the end of help (test_docs checks both). */
typedef struct ctl_opt {
  const char *name;
  const char *meta; /* NULL: a flag */
  size_t offset;
  const char *help;
  bool many, required;
} ctl_opt;

#define CTL_ARG(n, field, m, h)                                                                    \
  {                                                                                                \
    (n), (m), offsetof(ctl_args, field), (h), false, false                                         \
  }
#define CTL_NEED(n, field, m, h)                                                                   \
  {                                                                                                \
    (n), (m), offsetof(ctl_args, field), (h), false, true                                          \
  }
#define CTL_LIST(n, field, m, h)                                                                   \
  {                                                                                                \
    (n), (m), offsetof(ctl_args, field), (h), true, false                                          \
  }
#define CTL_FLAG(n, field, h)                                                                      \
  {                                                                                                \
    (n), NULL, offsetof(ctl_args, field), (h), false, false                                        \
  }

typedef struct ctl_command {
  const char *name;
  const char *sub; /* NULL: none */
  int (*run)(ctl *c, int argc, char **argv);
  const char *args; /* the positional arguments ("CODE", "[CHECKPOINT]", "FILE..."); the
                     * options' part of the synopsis comes from opts (ctl_synopsis) */
  const char *summary;
  const char *help;
  const ctl_opt *opts; /* NULL-name terminated; NULL: none beyond --help and --json */
} ctl_command;

/* ctl_synopsis -- "lang add CODE --script SCRIPT" and, when all, the optional ones in
 * brackets too ("[--name NAME] [--disabled]") into buf */
const char *ctl_synopsis(const ctl_command *cmd, bool all, char *buf, size_t size);

extern const ctl_command ctl_data_commands[];
extern const size_t ctl_data_ncommands;
extern const ctl_command ctl_refresh_commands[];
extern const size_t ctl_refresh_ncommands;
extern const ctl_command ctl_triage_commands[];
extern const size_t ctl_triage_ncommands;
extern const ctl_command ctl_users_commands[];
extern const size_t ctl_users_ncommands;
extern const ctl_command ctl_docs_commands[];
extern const size_t ctl_docs_ncommands;
/* ctl_next_command -- every command of every table in turn (*cursor starts at 0), NULL at
 * the end: for the manual page and the completion script */
const ctl_command *ctl_next_command(size_t *cursor);

/* ctl_json_errors -- --json was given: errors go to stderr as one JSON object ({"error":
 * kind, "message", "detail", "sqlstate"}) */
extern bool ctl_json_errors;
/* ctl_fail -- print err ("mnemoctl: msg", what a database error means, "  detail: ...") and
 * return the exit code. */
int ctl_fail(const mn_error *err);
/*
 * --json is a contract (docs/json.md, checked by test_json): every key present (null when
 * there is no value), numbers as numbers, floats in their shortest round-trip form, times
 * in ISO 8601 UTC ("2026-12-04T18:54:13Z"), JSON columns as JSON.  Queries return typed
 * columns and the types decide; SQL that builds JSON itself writes times with mnemo.iso()
 * (migration 0009).
 */
/* ctl_json_cell -- a result's value typed by its column: integers (numerics without a
 * fraction too), floats, booleans, null, times (ISO 8601 UTC), JSON, else a string */
json_t *ctl_json_cell(const PGresult *r, int row, int col);
/* ctl_json_row -- a row as an object of its columns (ctl_json_cell); ctl_json_rows every row */
json_t *ctl_json_row(const PGresult *r, int row);
json_t *ctl_json_rows(const PGresult *r);
/* ctl_cell_text -- a value for a person: "-" for null, a time as "2026-12-04 18:54:13" (UTC),
 * else as the server wrote it (a static slot, as ctl_text's) */
const char *ctl_cell_text(const PGresult *r, int row, int col);
/* ctl_usage_topic -- the command a usage error's hint points at ("lang add"; empty: none) */
extern char ctl_usage_topic[64];
/* ctl_usage -- print a usage error (and "Try mnemoctl help TOPIC") and return MN_EXIT_USAGE. */
int ctl_usage(const char *fmt, ...) MN_PRINTF(1, 2);
/* ctl_load_config -- the file (if any), then --db / MNEMO_DB; configures logging. */
MN_NODISCARD mn_status ctl_load_config(ctl *c, mn_error *err);
/* ctl_connect -- load the config and connect; on success *conn is the caller's. */
MN_NODISCARD mn_status ctl_connect(ctl *c, PGconn **conn /* OUT */, mn_error *err);
/* A column of a table for people: its heading and what it shows, a template of the result's
 * columns ("{attempt}/{max_attempts}"; "-" when any of them is null). */
typedef struct ctl_col {
  const char *heading, *show;
} ctl_col;
/* ctl_print_rows -- a result as a table for people (the columns cols, NULL-heading
 * terminated; NULL: every column as it is), or under --json as an array of objects of every
 * column (ctl_json_rows).  Cells are escaped and cut at 60 display columns. */
void ctl_print_rows(const ctl *c, const PGresult *r, const ctl_col *cols);
/* ctl_print_json -- print o indented on stdout and release it; every float in the fewest
 * digits that read back as the same double. */
void ctl_print_json(json_t *o);
/* ctl_done -- a command's end: release res and conn, print err when code is a failure */
int ctl_done(PGconn *conn, PGresult *res, const mn_error *err, int code);

/*
 * Every string a person wrote (report texts, notes, reasons, names, sources, licences,
 * excerpts, values read back from the database) reaches a human table only through
 * ctl_text or ctl_put_text: control characters, bidirectional controls and invalid bytes
 * are escaped there (mn_text_escape), so stored text cannot forge a row, move the cursor,
 * retitle the window or reorder a line.  --json prints the exact text (jansson escapes).
 */
#define CTL_TEXT_SLOTS 8 /* ctl_text results alive at once: enough for one printf */
/* ctl_text -- s escaped for one table cell (newlines too), at most max bytes shown (0: up to
 * 1000), ending in "…" when cut; NULL is "-".  The result lives in a static slot until
 * CTL_TEXT_SLOTS more calls (mnemoctl prints from one thread). */
const char *ctl_text(const char *s, size_t max);
/* ctl_width -- the display columns of s (UTF-8): wide characters 2, combining marks 0 */
int ctl_width(const char *s);
/* ctl_cell -- s for a left-aligned table cell of exactly cols display columns: escaped as
 * ctl_text, cut with "…" when longer, padded with spaces when shorter (a static slot, as
 * ctl_text's) */
const char *ctl_cell(const char *s, int cols);
/* ctl_put_text -- s whole on f, escaped, its line breaks kept and each line after the
 * first starting with indent (so a text cannot forge the lines around it) */
void ctl_put_text(FILE *f, const char *s, const char *indent);
/* ctl_user_value -- a usage error (exit 2) naming the option when value is not acceptable
 * as a one-line name (mn_text_check without newlines); 0 when it is */
int ctl_user_value(const char *option, const char *value);

#endif /* MNEMO_CTL_INT_H */
