/*
 * ctl_docs.c -- mnemoctl's manual pages and shell completion, written from the command
 * tables and the configuration's key table, so that they cannot drift from what the
 * programs accept: `mnemoctl man [mnemoctl|mnemod|mnemo.yaml]` prints a page in roff,
 * `mnemoctl completion bash` a completion script.  The build writes the pages with them
 * (daemon/CMakeLists.txt) and `cmake --install` installs them.
 */
#include "daemon/ctl/ctl_int.h"

#include <stdio.h>
#include <string.h>

static void head(FILE *f, const char *name, int section, const char *what)
{
  fprintf(f, ".TH %s %d \"%s\" \"mnemo %s\" \"mnemo manual\"\n.SH NAME\n%s \\- ", name, section,
          "2026-12-04", MNEMO_VERSION, name);
  mn_roff(f, what);
  fputc('\n', f);
}

static void page_mnemoctl(FILE *f)
{
  head(f, "mnemoctl", 1, "drive mnemo: data, reports, refreshes, approvals, logins");
  fputs(".SH SYNOPSIS\n\\fBmnemoctl\\fR [\\fB\\-\\-config\\fR \\fIFILE\\fR] [\\fB\\-\\-db\\fR "
        "\\fICONNINFO\\fR] [\\fB\\-\\-json\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]\n"
        ".SH DESCRIPTION\nmnemo keeps a multilingual language model fresh without letting any "
        "language fall behind; mnemoctl is how operators drive it.  Who may do what is the "
        "database's decision: each person runs mnemoctl as their own PostgreSQL login.\n"
        ".SH COMMANDS\n",
        f);
  size_t cur = 0;
  for (const ctl_command *k; (k = ctl_next_command(&cur)) != NULL;) {
    char syn[512];
    fprintf(f, ".TP\n\\fB%s%s%s\\fR", k->name, k->sub ? " " : "", k->sub ? k->sub : "");
    const char *rest = ctl_synopsis(k, true, syn, sizeof syn) + strlen(k->name) +
                       (k->sub ? 1 + strlen(k->sub) : 0);
    mn_roff(f, rest);
    fputc('\n', f);
    mn_roff(f, k->summary);
    fputs("\n.br\n", f);
    mn_roff(f, k->help);
    for (const ctl_opt *o = k->opts; o && o->name; o++) {
      fprintf(f, ".RS\n.TP\n\\fB\\-\\-%s\\fR%s%s%s\n", o->name, o->meta ? " \\fI" : "",
              o->meta ? o->meta : "", o->meta ? "\\fR" : "");
      mn_roff(f, o->help);
      if (o->required) fputs(" (required)", f);
      fputs("\n.RE\n", f);
    }
  }
  fputs(".SH OPTIONS\n.TP\n\\fB\\-\\-config\\fR \\fIFILE\\fR\nthe configuration (default: "
        "$MNEMO_CONFIG, ./mnemo.yaml, $XDG_CONFIG_HOME/mnemo/mnemo.yaml, "
        "/etc/mnemo/mnemo.yaml)\n.TP\n\\fB\\-\\-db\\fR \\fICONNINFO\\fR\nthe PostgreSQL "
        "connection (default: $MNEMO_DB, else database.conninfo)\n.TP\n\\fB\\-\\-json\\fR\n"
        "machine-readable output; errors as one JSON object on standard error\n.TP\n"
        "\\fB\\-\\-help\\fR\nhelp; \\fBmnemoctl help\\fR \\fICOMMAND\\fR for one command\n"
        ".SH EXIT STATUS\n0 success, 1 failure, 2 usage error.\n"
        ".SH SEE ALSO\n\\fBmnemod\\fR(8), \\fBmnemo.yaml\\fR(5)\n",
        f);
}

static void page_mnemod(FILE *f)
{
  head(f, "mnemod", 8, "the mnemo daemon");
  fputs(".SH SYNOPSIS\n\\fBmnemod\\fR [\\fB\\-\\-config\\fR \\fIFILE\\fR] [\\fB\\-\\-db\\fR "
        "\\fICONNINFO\\fR] [\\fB\\-\\-version\\fR] [\\fB\\-h\\fR|\\fB\\-\\-help\\fR]\n"
        ".SH DESCRIPTION\nOne leader per database (the others wait): it refreshes the model on "
        "schedule.refresh (UTC), on fresh data or on request, runs each job step by step with "
        "\\fBmnemo\\fR as a child, judges every candidate on every language, promotes what an "
        "operator approved, triages reports, delivers webhooks, and serves the operators' "
        "console and /metrics when console.listen is set.\n"
        ".SH SIGNALS\n.TP\nSIGTERM, SIGINT\nstop (a running worker saves and its job goes "
        "back to the queue); a second one does not wait\n.TP\nSIGHUP\nreload the "
        "configuration: the new one whole, or nothing of it\n"
        ".SH EXIT STATUS\n0 stopped by a signal, 1 failure (a console that cannot be served), "
        "2 usage error, 78 a configuration it cannot use (a file missing or refused, no "
        "usable database, a bad schedule or console.listen): a restart will not help, and "
        "the systemd unit does not restart it.\n"
        ".SH FILES\n/etc/mnemo/mnemo.yaml (the systemd unit's), daemon.data_dir\n"
        ".SH SEE ALSO\n\\fBmnemoctl\\fR(1), \\fBmnemo.yaml\\fR(5)\n",
        f);
}

static void page_config(FILE *f)
{
  head(f, "mnemo.yaml", 5, "the configuration of mnemo, mnemoctl and mnemod");
  fputs(".SH DESCRIPTION\nYAML, one section a subject; every key below, its type, default and "
        "bounds.  ${NAME} in a value is the environment's NAME.  Keys marked not reloadable "
        "keep their value until mnemod restarts.\n.SH KEYS\n",
        f);
  size_t n;
  const mn_config_key *keys = mn_config_keys(&n);
  static const char *const types[] = {"integer", "string", "one of", "number"}; /* mn_cfg_type */
  for (size_t i = 0; i < n; i++) {
    const mn_config_key *k = &keys[i];
    fprintf(f, ".TP\n\\fB%s\\fR (", k->key);
    mn_roff(f, (unsigned)k->type < 4 ? types[k->type] : "value");
    for (int c = 0; k->type == MN_CFG_ENUM && k->choices[c]; c++)
      fprintf(f, "%s%s", c ? ", " : " ", k->choices[c]);
    fputs("; default ", f);
    mn_roff(f, *k->def ? k->def : "empty");
    fprintf(f, "%s%s)\n", k->reloadable ? "" : "; not reloadable", k->secret ? "; a secret" : "");
    mn_roff(f, k->help);
    fputc('\n', f);
  }
  fputs(".SH SEE ALSO\n\\fBmnemoctl\\fR(1), \\fBmnemod\\fR(8)\n", f);
}

static int cmd_man(ctl *c, int argc, char **argv)
{
  (void)c;
  const char *which = argc > 0 ? argv[0] : "mnemoctl";
  if (argc > 1) return ctl_usage("man takes one page name");
  if (strcmp(which, "mnemoctl") == 0)
    page_mnemoctl(stdout);
  else if (strcmp(which, "mnemod") == 0)
    page_mnemod(stdout);
  else if (strcmp(which, "mnemo.yaml") == 0)
    page_config(stdout);
  else
    return ctl_usage("no page \"%s\": mnemoctl, mnemod or mnemo.yaml", which);
  return MN_EXIT_OK;
}

static int cmd_completion(ctl *c, int argc, char **argv)
{
  (void)c;
  if (argc != 1) return ctl_usage("completion takes one shell: bash or zsh");
  enum { MAXC = 128, MAXO = 512 };
  static mn_comp_cmd cmds[MAXC];
  static mn_comp_opt opts[MAXO];
  size_t n = 0, no = 0, cur = 0;
  for (const ctl_command *k; (k = ctl_next_command(&cur)) != NULL && n < MAXC; n++) {
    cmds[n] = (mn_comp_cmd){k->name, k->sub, k->summary, k->args, opts + no, 0};
    for (const ctl_opt *o = k->opts; o && o->name && no < MAXO; o++, cmds[n].nopts++)
      opts[no++] = (mn_comp_opt){o->name, o->meta, o->help};
  }
  static const mn_comp_opt globals[] = {
      {"json", NULL, "machine-readable output"},
      {"help", NULL, "help on the command"},
      {"db", "CONNINFO", "the database"},
      {"config", "FILE", "configuration file"},
  };
  if (mn_completion(stdout, argv[0], "mnemoctl", cmds, n, globals, 4) != 0)
    return ctl_usage("no completion for \"%s\": bash or zsh", argv[0]);
  return MN_EXIT_OK;
}

const ctl_command ctl_docs_commands[] = {
    {"man", NULL, cmd_man, "[mnemoctl|mnemod|mnemo.yaml]", "A manual page, in roff.",
     "Written from the command tables and the key table (man -l - reads it).\n", NULL},
    {"completion", NULL, cmd_completion, "bash|zsh", "A shell completion script.",
     "Commands, subcommands and each command's options, from the command tables.  bash:\n"
     "source it, or install it as /usr/share/bash-completion/completions/mnemoctl.  zsh:\n"
     "install it as _mnemoctl in a folder of $fpath (/usr/share/zsh/vendor-completions).\n",
     NULL},
};
const size_t ctl_docs_ncommands = sizeof ctl_docs_commands / sizeof ctl_docs_commands[0];
