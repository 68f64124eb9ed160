/*
 * mnemoctl.c -- the operators' command-line tool.
 *
 *   mnemoctl [--config FILE] [--db CONNINFO] [--json] COMMAND [ARGS]
 *
 * Human tables by default, --json for scripts.  Exit codes (common/protocol.h): 0 ok,
 * 1 failure, 2 usage error; no command of mnemoctl runs a guard, so none exits
 * MN_EXIT_GUARD (3).  Only main() decides to exit.
 * Configuration: --config FILE, else mn_config_find's ($MNEMO_CONFIG, ./mnemo.yaml,
 * $XDG_CONFIG_HOME/mnemo/mnemo.yaml, /etc/mnemo/mnemo.yaml: files only this user or root may
 * write), else the defaults; the database: --db, else $MNEMO_DB, else database.conninfo.
 * Global options may follow the command too.
 */
#include "daemon/ctl/ctl_int.h"

#include <getopt.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef ctl_command command;

const char *ctl_synopsis(const ctl_command *cmd, bool all, char *buf, size_t size)
{
  size_t n = (size_t)snprintf(buf, size, "%s%s%s%s%s", cmd->name, cmd->sub ? " " : "",
                              cmd->sub ? cmd->sub : "", *cmd->args ? " " : "", cmd->args);
  for (int pass = 0; pass < 2; pass++) /* the required ones first */
    for (const ctl_opt *o = cmd->opts; o && o->name && n < size; o++) {
      bool opt = !o->required;
      if (opt != (pass == 1) || (opt && !all)) continue;
      n += (size_t)snprintf(buf + n, size - n, " %s--%s%s%s%s%s", opt ? "[" : "", o->name,
                            o->meta ? " " : "", o->meta ? o->meta : "", o->many ? "..." : "",
                            opt ? "]" : "");
    }
  return buf;
}

static void print_command_help(const command *cmd)
{
  char syn[512], head[96];
  /* the synopsis after the command's words (none when it takes nothing) */
  size_t words = strlen(cmd->name) + (cmd->sub ? 1 + strlen(cmd->sub) : 0);
  const char *rest = ctl_synopsis(cmd, true, syn, sizeof syn) + words;
  snprintf(head, sizeof head, "usage: mnemoctl %s%s%s%s", cmd->name, cmd->sub ? " " : "",
           cmd->sub ? cmd->sub : "", *rest ? " " : "");
  mn_help_usage(stdout, head, *rest ? rest + 1 : rest);
  printf("\n");
  mn_help_fill(stdout, cmd->summary, 0, 0);
  printf("\n");
  if (*cmd->help) {
    printf("\n");
    mn_help_fill(stdout, cmd->help, 0, 0);
    printf("\n");
  }
  printf("\noptions:\n");
  for (const ctl_opt *o = cmd->opts; o && o->name; o++) {
    char left[64], text[256];
    snprintf(left, sizeof left, "--%s%s%s%s", o->name, o->meta ? " " : "", o->meta ? o->meta : "",
             o->many ? "..." : "");
    snprintf(text, sizeof text, "%s%s", o->help, o->required ? " (required)" : "");
    mn_help_item(stdout, left, 22, text);
  }
  mn_help_item(stdout, "--json", 22, "machine-readable output (docs/json.md)");
  mn_help_item(stdout, "--db CONNINFO", 22, "the database (default: $MNEMO_DB, else the config)");
  mn_help_item(stdout, "--config FILE", 22,
               "configuration file (default: as \"mnemoctl help\" says)");
  mn_help_item(stdout, "--help", 22, "this text");
}

/*
 * parse_options -- the command's options (its table, --help, --json) into c;
 * options and arguments may come in any order.  Returns 1 when help was shown,
 * -1 on a usage error (printed), else 0 with the *npos arguments moved to argv[1..].
 */
static int parse_options(const command *cmd, ctl *c, int argc, char **argv, int *npos)
{
  *npos = 0;
  struct option opts[44];
  size_t n = 0;
  for (const ctl_opt *o = cmd->opts; o && o->name && n < 36; o++, n++)
    opts[n] =
        (struct option){o->name, o->meta ? required_argument : no_argument, NULL, 256 + (int)n};
  opts[n++] = (struct option){"help", no_argument, NULL, 'h'};
  opts[n++] = (struct option){"json", no_argument, NULL, 'j'};
  /* the global options are taken after the command too */
  opts[n++] = (struct option){"db", required_argument, NULL, 'd'};
  opts[n++] = (struct option){"config", required_argument, NULL, 'c'};
  opts[n] = (struct option){NULL, 0, NULL, 0};
  optind = 0; /* full re-initialisation (glibc) */
  opterr = 0;
  for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) /* usage errors before it too */
    if (strcmp(argv[i], "--json") == 0) c->json = ctl_json_errors = true;
  int ch;
  while ((ch = getopt_long(argc, argv, "-h", opts, NULL)) != -1) {
    if (ch == 1) { /* an argument in between options: keep it, in order, from argv[1] */
      argv[++*npos] = optarg;
      continue;
    }
    if (ch == 'h') {
      print_command_help(cmd);
      return 1;
    }
    if (ch == 'j') {
      c->json = ctl_json_errors = true;
      continue;
    }
    if (ch == 'd' || ch == 'c') {
      *(ch == 'd' ? &c->db : &c->config_path) = optarg;
      continue;
    }
    if (ch >= 256) {
      const ctl_opt *o = &cmd->opts[ch - 256];
      char *slot = (char *)&c->a + o->offset;
      /* the option as written: getopt takes "--not" for "--note"; a script that works by
       * luck breaks when another option begins the same way, so names are whole */
      const char *as = o->meta && optarg == argv[optind - 1] ? argv[optind - 2] : argv[optind - 1];
      size_t len = strlen(o->name);
      if (strncmp(as + 2, o->name, len) != 0 || (as[2 + len] && as[2 + len] != '=')) {
        ctl_usage("unknown option \"%.*s\"; did you mean \"--%s\"?", (int)strcspn(as, "="), as,
                  o->name);
        return -1;
      }
      if (!o->many && (o->meta ? *(const char **)(void *)slot != NULL : *(bool *)(void *)slot)) {
        ctl_usage("--%s given twice", o->name); /* which one was meant? */
        return -1;
      }
      if (o->many) {
        ctl_list *l = (ctl_list *)(void *)slot;
        if (l->n >= CTL_LIST_MAX) {
          ctl_usage("more than %d --%s options", CTL_LIST_MAX, o->name);
          return -1;
        }
        l->v[l->n++] = optarg;
      } else if (o->meta)
        *(const char **)(void *)slot = optarg;
      else
        *(bool *)(void *)slot = true;
      continue;
    }
    if (ch == ':' || (ch == '?' && (optopt >= 256 || optopt == 'd' || optopt == 'c')))
      ctl_usage("option \"%s\" needs a value", argv[optind - 1]);
    else if (ch == '?' && optopt > 0 && optopt < 256) /* a short option, maybe in a bundle */
      ctl_usage("unknown option \"-%c\" for \"%s%s%s\"", optopt, cmd->name, cmd->sub ? " " : "",
                cmd->sub ? cmd->sub : "");
    else {
      const char *names[44], *bad = argv[optind - 1], *dash = bad;
      size_t nn = 0;
      for (const ctl_opt *o = cmd->opts; o && o->name && nn < 38; o++)
        names[nn++] = o->name;
      names[nn++] = "json";
      names[nn++] = "help";
      names[nn++] = "db";
      names[nn++] = "config";
      while (*dash == '-')
        dash++;
      char word[64];
      snprintf(word, sizeof word, "%.*s", (int)strcspn(dash, "="), dash);
      const char *near = mn_nearest(word, names, nn);
      if (near)
        ctl_usage("unknown option \"%s\" for \"%s%s%s\"; did you mean \"--%s\"?", bad, cmd->name,
                  cmd->sub ? " " : "", cmd->sub ? cmd->sub : "", near);
      else
        ctl_usage("unknown option \"%s\" for \"%s%s%s\"; see \"mnemoctl help %s%s%s\"", bad,
                  cmd->name, cmd->sub ? " " : "", cmd->sub ? cmd->sub : "", cmd->name,
                  cmd->sub ? " " : "", cmd->sub ? cmd->sub : "");
    }
    return -1;
  }
  while (optind < argc)
    argv[++*npos] = argv[optind++]; /* after "--" */
  for (const ctl_opt *o = cmd->opts; o && o->name; o++) {
    if (!o->required || !o->meta || o->many) continue; /* only a string's slot is a pointer */
    const char *v = *(const char **)(void *)((char *)&c->a + o->offset);
    if (!v || !*v) {
      ctl_usage("%s%s%s needs --%s %s: %s", cmd->name, cmd->sub ? " " : "",
                cmd->sub ? cmd->sub : "", o->name, o->meta, o->help);
      return -1;
    }
  }
  return 0;
}

/* ---------------------------------------------------------------- config */

static int cmd_config_check(ctl *c, int argc, char **argv)
{
  mn_error err = {0};
  if (argc != 1) return ctl_usage("config check takes exactly one FILE");
  mn_config cfg;
  if (mn_config_load_file(argv[0], &cfg, &err) != MN_OK) return ctl_fail(&err);
  size_t n, set = 0;
  (void)mn_config_keys(&n);
  for (size_t i = 0; i < n; i++)
    set += cfg.origin[i].line > 0;
  if (c->json) {
    json_t *o = json_pack("{s:s, s:b, s:I}", "file", argv[0], "ok", 1, "keys_set", (json_int_t)set);
    ctl_print_json(o);
  } else {
    printf("%s: ok (%zu of %zu keys set, the rest default)\n", argv[0], set, n);
  }
  mn_config_fini(&cfg);
  return MN_EXIT_OK;
}

/* key_value -- a key's value in cfg as JSON, typed by the key (a secret redacted) */
static json_t *key_value(const mn_config *cfg, const mn_config_key *k)
{
  const void *f = (const char *)cfg + k->offset;
  switch (k->type) {
  case MN_CFG_INT: return json_integer(*(const int64_t *)f);
  case MN_CFG_DOUBLE: return json_real(*(const double *)f);
  case MN_CFG_ENUM: return json_string(k->choices[*(const int *)f]);
  case MN_CFG_STRING: {
    const char *s = *(char *const *)f;
    return json_string(k->secret && s && *s ? "<redacted>" : s ? s : "");
  }
  }
  return json_null();
}

static int cmd_config_dump(ctl *c, int argc, char **argv)
{
  mn_error err = {0};
  if (argc != 0) return ctl_usage("config dump takes no arguments (got \"%s\")", argv[0]);
  if (ctl_load_config(c, &err) != MN_OK) return ctl_fail(&err);
  if (c->json) { /* {"key": {"value": V, "origin": "FILE:LINE:COL" | "default" | "MNEMO_DB"}} */
    size_t n;
    const mn_config_key *keys = mn_config_keys(&n);
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++) {
      const mn_cfg_origin * or = &c->cfg.origin[i];
      char where[4200];
      if (or->line)
        snprintf(where, sizeof where, "%s:%d:%d", or->what, or->line, or->col);
      else
        snprintf(where, sizeof where, "%s", or->what ? or->what : "default");
      json_object_set_new(
          o, keys[i].key,
          json_pack("{s:o, s:s}", "value", key_value(&c->cfg, &keys[i]), "origin", where));
    }
    ctl_print_json(o);
    return MN_EXIT_OK;
  }
  mn_buf b;
  mn_buf_init(&b, 1 << 20);
  if (mn_config_dump(&c->cfg, &b, &err) != MN_OK) {
    mn_buf_fini(&b);
    return ctl_fail(&err);
  }
  fputs("# effective mnemo configuration; comments say where each value came from\n", stdout);
  fwrite(b.data, 1, b.len, stdout);
  mn_buf_fini(&b);
  return MN_EXIT_OK;
}

static int cmd_config_keys(ctl *c, int argc, char **argv)
{
  mn_error err = {0};
  if (argc != 0) return ctl_usage("config keys takes no arguments (got \"%s\")", argv[0]);
  if (c->json) { /* the key table: each key's type, default (typed), bounds and help */
    size_t n;
    const mn_config_key *keys = mn_config_keys(&n);
    static const char *const types[] = {"integer", "string", "enum", "number"}; /* mn_cfg_type */
    mn_config defaults;
    if (mn_config_init(&defaults, &err) != MN_OK) return ctl_fail(&err);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
      const mn_config_key *k = &keys[i];
      json_t *choices = json_null(), *min = json_null(), *max = json_null();
      if (k->type == MN_CFG_ENUM) {
        choices = json_array();
        for (int e = 0; k->choices[e]; e++)
          json_array_append_new(choices, json_string(k->choices[e]));
      } else if (k->type == MN_CFG_INT) {
        min = json_integer(k->min), max = json_integer(k->max);
      } else if (k->type == MN_CFG_DOUBLE) {
        min = json_real(k->dmin), max = json_real(k->dmax);
      }
      json_array_append_new(arr, json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:b, s:b, s:s}", "key",
                                           k->key, "type", types[k->type], "default",
                                           key_value(&defaults, k), "min", min, "max", max,
                                           "choices", choices, "reloadable", k->reloadable,
                                           "secret", k->secret, "help", k->help));
    }
    mn_config_fini(&defaults);
    ctl_print_json(arr);
    return MN_EXIT_OK;
  }
  mn_buf b;
  mn_buf_init(&b, 1 << 20);
  if (mn_config_describe(&b, &err) != MN_OK) {
    mn_buf_fini(&b);
    return ctl_fail(&err);
  }
  fwrite(b.data, 1, b.len, stdout);
  mn_buf_fini(&b);
  return MN_EXIT_OK;
}

/* ---------------------------------------------------------------- migrate */

static int cmd_migrate(ctl *c, int argc, char **argv)
{
  mn_error err = {0};
  PGconn *conn = NULL;
  int applied = 0;
  if (argc != 0) return ctl_usage("migrate takes no arguments (got \"%s\")", argv[0]);
  if (ctl_connect(c, &conn, &err) != MN_OK) return ctl_fail(&err);
  mn_status rc = migrate_apply(conn, mn_migrations, mn_migrations_count,
                               c->cfg.database.migrate_lock_timeout_s, &applied, &err);
  PQfinish(conn);
  if (rc != MN_OK) {
    if (applied) mn_error_prefix(&err, "%d migration(s) were applied, then", applied);
    return ctl_fail(&err);
  }
  if (c->json)
    ctl_print_json(json_pack("{s:b, s:i, s:i}", "ok", 1, "applied", applied, "known",
                             (int)mn_migrations_count));
  else
    printf("applied %d migration(s); the database is at version %zu\n", applied,
           mn_migrations_count);
  return MN_EXIT_OK;
}

static int cmd_migrate_status(ctl *c, int argc, char **argv)
{
  mn_error err = {0};
  PGconn *conn = NULL;
  migration_row *rows = NULL;
  size_t n = 0;
  if (argc != 0) return ctl_usage("migrate status takes no arguments (got \"%s\")", argv[0]);
  if (ctl_connect(c, &conn, &err) != MN_OK) return ctl_fail(&err);
  mn_status rc = migrate_status(conn, mn_migrations, mn_migrations_count, &rows, &n, &err);
  PQfinish(conn);
  if (rc != MN_OK) return ctl_fail(&err);
  size_t pending = 0, bad = 0;
  int version = 0;
  for (size_t i = 0; i < n; i++) {
    pending += rows[i].state == MIGRATION_PENDING;
    bad += rows[i].state == MIGRATION_CHANGED || rows[i].state == MIGRATION_UNKNOWN;
    if (rows[i].state != MIGRATION_PENDING && rows[i].version > version) version = rows[i].version;
  }
  if (c->json) {
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
      bool applied = rows[i].applied_at[0];
      json_t *o = json_pack(
          "{s:i, s:s, s:s, s:o, s:o, s:o, s:o}", "version", rows[i].version, "name", rows[i].name,
          "state", migration_state_name(rows[i].state), "applied_at",
          applied ? json_string(rows[i].applied_at) : json_null(), "duration_ms",
          applied ? json_real(rows[i].duration_ms) : json_null(), "sha256_file",
          rows[i].sha256_file[0] ? json_string(rows[i].sha256_file) : json_null(), "sha256_db",
          rows[i].sha256_db[0] ? json_string(rows[i].sha256_db) : json_null());
      json_array_append_new(arr, o);
    }
    json_t *top = json_pack("{s:i, s:i, s:i, s:o}", "version", version, "known",
                            (int)mn_migrations_count, "pending", (int)pending, "migrations", arr);
    ctl_print_json(top);
  } else {
    printf("%-8s %-32s %-8s %-25s %s\n", "version", "name", "state", "applied_at", "duration");
    for (size_t i = 0; i < n; i++) {
      char dur[32] = "";
      if (rows[i].applied_at[0]) snprintf(dur, sizeof dur, "%.1f ms", rows[i].duration_ms);
      printf("%04d     %-32s %-8s %-25s %s\n", rows[i].version, rows[i].name,
             migration_state_name(rows[i].state), rows[i].applied_at[0] ? rows[i].applied_at : "-",
             dur[0] ? dur : "-");
    }
    printf("database at version %d; this mnemo knows %zu migration(s); %zu pending\n", version,
           mn_migrations_count, pending);
  }
  free(rows);
  if (bad) {
    mn_error e = {0};
    mn_error_set(&e, MN_ERR_CORRUPT,
                 "%zu migration(s) changed or unknown to this mnemo: \"mnemoctl migrate\" will "
                 "refuse to run",
                 bad);
    return ctl_fail(&e);
  }
  return MN_EXIT_OK;
}

/* ---------------------------------------------------------------- version */

static int cmd_version(ctl *c, int argc, char **argv)
{
  if (argc != 0) return ctl_usage("version takes no arguments (got \"%s\")", argv[0]);
  if (c->json)
    ctl_print_json(json_pack("{s:s, s:I}", "version", MNEMO_VERSION, "migrations",
                             (json_int_t)mn_migrations_count));
  else
    printf("mnemoctl %s (%zu migrations)\n", MNEMO_VERSION, mn_migrations_count);
  return MN_EXIT_OK;
}

static const command commands[] = {
    {"config", "check", cmd_config_check, "FILE", "Validate a configuration file.",
     "Loads FILE over the defaults and reports the first problem as file:line:col with\n"
     "the key: the same checks mnemod makes at start and on SIGHUP (schedules that parse\n"
     "and fire, webhook secrets that decode, http(s) webhook URLs).  Exit 0 when valid,\n"
     "1 when not.\n",
     NULL},
    {"config", "dump", cmd_config_dump, "", "Print the effective configuration.",
     "The configuration mnemoctl would use (--config or $MNEMO_CONFIG, then --db or\n"
     "$MNEMO_DB), as YAML with where each value came from; secrets are redacted.\n",
     NULL},
    {"config", "keys", cmd_config_keys, "", "List every configuration key.",
     "Prints the key table (type, default, bounds, reloadable, help) as Markdown.\n", NULL},
    {"migrate", "status", cmd_migrate_status, "", "Show applied and pending migrations.",
     "Compares the migrations built into this mnemoctl with mnemo.schema_migrations.\n"
     "Exit 1 when an applied file changed or the database is newer than this mnemoctl.\n",
     NULL},
    {"migrate", NULL, cmd_migrate, "", "Apply pending migrations.",
     "Applies each pending migration and its ledger row in one transaction, under an\n"
     "advisory lock (concurrent migrators apply each file once).  Refuses to run when an\n"
     "applied file changed or the database is newer than this mnemoctl.\n",
     NULL},
    {"version", NULL, cmd_version, "", "Print the version.", "", NULL},
};

/* Every command: this file's table, then the data plane's (ctl_data.c). */
typedef struct table {
  const command *cmds;
  const size_t *n;
} table;
static const size_t ncommands = sizeof commands / sizeof commands[0];
static const table tables[] = {{commands, &ncommands},
                               {ctl_data_commands, &ctl_data_ncommands},
                               {ctl_refresh_commands, &ctl_refresh_ncommands},
                               {ctl_triage_commands, &ctl_triage_ncommands},
                               {ctl_users_commands, &ctl_users_ncommands},
                               {ctl_docs_commands, &ctl_docs_ncommands}};

const ctl_command *ctl_next_command(size_t *cursor)
{
  size_t k = *cursor;
  for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++) {
    if (k < *tables[t].n) {
      ++*cursor;
      return &tables[t].cmds[k];
    }
    k -= *tables[t].n;
  }
  return NULL;
}
#define FOR_EACH_COMMAND(cmdp)                                                                     \
  for (size_t t_ = 0; t_ < sizeof tables / sizeof tables[0]; t_++)                                 \
    for (const command *cmdp = tables[t_].cmds; cmdp < tables[t_].cmds + *tables[t_].n; cmdp++)

/* nearest_sub -- the subcommand of name nearest to word (a typo of it), or NULL */
static const char *nearest_sub(const char *name, const char *word)
{
  const char *subs[64];
  size_t ns = 0;
  FOR_EACH_COMMAND(k)
  {
    if (strcmp(k->name, name) == 0 && k->sub && ns < 64) subs[ns++] = k->sub;
  }
  return mn_nearest(word, subs, ns);
}

static void print_help(FILE *f)
{
  fprintf(f, "usage: mnemoctl [--config FILE] [--db CONNINFO] [--json] COMMAND [ARGS]\n\n"
             "mnemo keeps a multilingual language model fresh without letting any language\n"
             "fall behind; mnemoctl is how operators drive it.\n\ncommands:\n");
  FOR_EACH_COMMAND(k)
  {
    char syn[256];
    mn_help_item(f, ctl_synopsis(k, false, syn, sizeof syn), 28, k->summary);
  }
  fprintf(f, "\noptions:\n");
  mn_help_item(f, "--config FILE", 16,
               "configuration file (default: $MNEMO_CONFIG, ./mnemo.yaml, "
               "~/.config/mnemo/mnemo.yaml, /etc/mnemo/mnemo.yaml)");
  mn_help_item(f, "--db CONNINFO", 16, "the database (default: $MNEMO_DB, else the config)");
  mn_help_item(f, "--json", 16, "machine-readable output (docs/json.md)");
  mn_help_item(f, "--help", 16, "this text; mnemoctl help COMMAND (or COMMAND --help) for one");
  mn_help_item(f, "--version", 16, "the version");
  fprintf(f, "\nexit status: 0 ok, 1 failure, 2 usage error\n");
}

int main(int argc, char **argv)
{
  static const struct option opts[] = {
      {"config", required_argument, NULL, 'c'}, {"db", required_argument, NULL, 'd'},
      {"json", no_argument, NULL, 'j'},         {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0}};
  ctl c = {0};
  int ch, rc;
  /* display widths of UTF-8 text in tables (wcwidth); only the character classes change */
  if (!setlocale(LC_CTYPE, "C.UTF-8")) setlocale(LC_CTYPE, "");
  opterr = 0;
  while ((ch = getopt_long(argc, argv, "+hc:d:", opts, NULL)) != -1) {
    switch (ch) {
    case 'c': c.config_path = optarg; break;
    case 'd': c.db = optarg; break;
    case 'j': c.json = ctl_json_errors = true; break;
    case 'h': print_help(stdout); return MN_EXIT_OK;
    case 'V': printf("mnemoctl %s\n", MNEMO_VERSION); return MN_EXIT_OK;
    default: return ctl_usage("unknown or incomplete option \"%s\"", argv[optind - 1]);
    }
  }
  if (optind >= argc) {
    print_help(stderr);
    return MN_EXIT_USAGE;
  }
  /* "help" and "help COMMAND [SUB]": the same as --help and "COMMAND [SUB] --help" */
  char *help_argv[4];
  if (strcmp(argv[optind], "help") == 0) {
    if (optind + 1 >= argc || strcmp(argv[optind + 1], "help") == 0) {
      print_help(stdout);
      return MN_EXIT_OK;
    }
    int k = 0;
    for (int i = optind + 1; i < argc && k < 2; i++)
      help_argv[k++] = argv[i];
    help_argv[k++] = (char *)"--help";
    help_argv[k] = NULL;
    argv = help_argv, argc = k, optind = 0;
  }
  const char *name = argv[optind];
  const char *sub = optind + 1 < argc ? argv[optind + 1] : NULL;
  const command *cmd = NULL;
  bool known_name = false;
  const command *exact = NULL;
  FOR_EACH_COMMAND(k)
  {
    if (strcmp(k->name, name) != 0) continue;
    known_name = true;
    if (k->sub && sub && strcmp(k->sub, sub) == 0) exact = k;
    if (!k->sub && !cmd) cmd = k;
  }
  if (exact) cmd = exact;
  /* "triage acept": a word that is nearly one of the command's subcommands, where the
   * command alone takes no arguments, is a typo of the subcommand */
  if (!exact && cmd && sub && sub[0] != '-' && (!*cmd->args || cmd->args[0] == '[')) {
    const char *near = nearest_sub(name, sub);
    snprintf(ctl_usage_topic, sizeof ctl_usage_topic, "%s", name);
    if (near)
      return ctl_usage("unknown subcommand \"%s %s\"; did you mean \"%s %s\"?", name, sub, name,
                       near);
  }
  if (cmd)
    snprintf(ctl_usage_topic, sizeof ctl_usage_topic, "%s%s%s", cmd->name, cmd->sub ? " " : "",
             cmd->sub ? cmd->sub : "");
  else if (known_name)
    snprintf(ctl_usage_topic, sizeof ctl_usage_topic, "%s", name);
  if (!known_name) {
    const char *names[256];
    size_t nn = 0;
    FOR_EACH_COMMAND(k)
    {
      if (nn < 256) names[nn++] = k->name;
    }
    const char *near = mn_nearest(name, names, nn);
    if (near) return ctl_usage("unknown command \"%s\"; did you mean \"%s\"?", name, near);
    return ctl_usage("unknown command \"%s\"", name);
  }
  if (!cmd) {
    if (sub && strcmp(sub, "--help") != 0 && strcmp(sub, "-h") != 0) {
      const char *near = nearest_sub(name, sub);
      if (near)
        return ctl_usage("unknown subcommand \"%s %s\"; did you mean \"%s %s\"?", name, sub, name,
                         near);
      return ctl_usage("unknown subcommand \"%s %s\"; see \"mnemoctl help %s\"", name, sub, name);
    }
    fprintf(sub ? stdout : stderr, "usage:\n");
    FOR_EACH_COMMAND(k)
    {
      char syn[256] = "mnemoctl ";
      if (strcmp(k->name, name) == 0)
        mn_help_item(sub ? stdout : stderr, ctl_synopsis(k, false, syn + 9, sizeof syn - 9) - 9, 37,
                     k->summary);
    }
    fprintf(sub ? stdout : stderr, "\n\"mnemoctl help %s SUBCOMMAND\" for one of them\n", name);
    return sub ? MN_EXIT_OK : MN_EXIT_USAGE;
  }
  /* the command's own argv: its name first, as getopt expects */
  int skip = cmd->sub ? 2 : 1;
  int cargc = argc - optind - skip + 1;
  char **cargv = argv + optind + skip - 1;
  int npos = 0;
  int p = parse_options(cmd, &c, cargc, cargv, &npos);
  if (p == 1) return MN_EXIT_OK;
  if (p < 0) return MN_EXIT_USAGE;
  ctl_json_errors = c.json;
  rc = cmd->run(&c, npos, cargv + 1);
  if (c.have_cfg) mn_config_fini(&c.cfg);
  return rc;
}
