/*
 * completion.c -- shell completion scripts (bash, zsh) written from a program's command
 * table: commands, their subcommands, each one's options with what they are for, and file
 * names for arguments and option values.  mnemoctl and mnemo turn their own tables into
 * mn_comp_cmd rows and print what mn_completion writes.
 */
#include "common/common.h"

#include <stdio.h>
#include <string.h>

/* zsh_quoted -- s inside single quotes for zsh, ':' escaped (it separates name and text) */
static void zsh_quoted(FILE *f, const char *s)
{
  for (; *s; s++) {
    if (*s == '\'')
      fputs("'\\''", f);
    else if (*s == ':')
      fputs("\\:", f);
    else if (*s == '\n')
      fputc(' ', f);
    else
      fputc(*s, f);
  }
}

/* values -- the words of a positional argument that is a choice ("bash|zsh",
 * "[mnemoctl|mnemod|mnemo.yaml]"): for bash "a b", for zsh " 'a' 'b'"; nothing for any
 * other argument */
static void values(FILE *f, const char *args, bool zsh)
{
  if (!args || !strchr(args, '|')) return;
  const char *p = args + (*args == '[');
  size_t len = strcspn(p, "] ");
  for (size_t i = 0; i < len;) {
    size_t w = strcspn(p + i, "|] ");
    if (zsh)
      fprintf(f, " '%.*s'", (int)w, p + i);
    else
      fprintf(f, "%s%.*s", i ? " " : "", (int)w, p + i);
    i += w + 1;
  }
}

/* first_of -- whether cmds[i] is the first row with its name */
static bool first_of(const mn_comp_cmd *cmds, size_t i)
{
  for (size_t k = 0; k < i; k++)
    if (strcmp(cmds[k].name, cmds[i].name) == 0) return false;
  return true;
}

/* valued -- the options that take a value (any command's, the globals'), "--a|--b" */
static void valued(FILE *f, const mn_comp_cmd *cmds, size_t n, const mn_comp_opt *globals,
                   size_t ng)
{
  bool first = true;
  for (size_t g = 0; g < ng; g++)
    if (globals[g].meta) fprintf(f, "%s--%s", first ? "" : "|", globals[g].name), first = false;
  for (size_t i = 0; i < n; i++)
    for (size_t k = 0; k < cmds[i].nopts; k++) {
      bool seen = false;
      for (size_t j = 0; j <= i && !seen; j++)
        for (size_t m = 0; m < (j == i ? k : cmds[j].nopts) && !seen; m++)
          seen = cmds[j].opts[m].meta && strcmp(cmds[j].opts[m].name, cmds[i].opts[k].name) == 0;
      for (size_t g = 0; g < ng && !seen; g++)
        seen = globals[g].meta && strcmp(globals[g].name, cmds[i].opts[k].name) == 0;
      if (cmds[i].opts[k].meta && !seen)
        fprintf(f, "%s--%s", first ? "" : "|", cmds[i].opts[k].name), first = false;
    }
  if (first) fputs("--", f); /* a pattern that matches no option with a value */
}

/* zsh_opts -- "'--name[help]:META:_files'" entries of a zsh array */
static void zsh_opts(FILE *f, const mn_comp_opt *o, size_t n)
{
  for (size_t k = 0; k < n; k++) {
    fprintf(f, " '--%s:", o[k].name);
    zsh_quoted(f, o[k].help);
    if (o[k].meta) {
      fputs(" (", f);
      zsh_quoted(f, o[k].meta);
      fputc(')', f);
    }
    fputc('\'', f);
  }
}

/* option_cases -- the end of the case over the command and closing it, then the case over
 * "$cmd $sub" adding each command's options: "NAME SUB" before "NAME *", as the first
 * pattern that matches is taken (a subcommand with none of its own stops there too) */
static void option_cases(FILE *f, const mn_comp_cmd *cmds, size_t n, bool zsh)
{
  fputs("  esac\n  case \"$cmd $sub\" in\n", f);
  for (int pass = 0; pass < 2; pass++)
    for (size_t i = 0; i < n; i++) {
      if ((cmds[i].nopts == 0 && !cmds[i].sub) || (cmds[i].sub == NULL) != (pass == 1)) continue;
      fprintf(f, "  \"%s %s\"%s) %s", cmds[i].name, cmds[i].sub ? cmds[i].sub : "",
              cmds[i].sub ? "" : "*", zsh ? "opts+=(" : "opts=\"$opts");
      if (zsh)
        zsh_opts(f, cmds[i].opts, cmds[i].nopts);
      else
        for (size_t k = 0; k < cmds[i].nopts; k++)
          fprintf(f, " --%s", cmds[i].opts[k].name);
      fputs(zsh ? ") ;;\n" : "\" ;;\n", f);
    }
}

static void bash(FILE *f, const char *prog, const mn_comp_cmd *cmds, size_t n,
                 const mn_comp_opt *globals, size_t ng)
{
  fprintf(f,
          "# bash completion of %s, written by \"%s completion bash\" from its command table\n"
          "_%s() {\n"
          "  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmd= sub= i w\n"
          "  case $prev in ",
          prog, prog, prog);
  valued(f, cmds, n, globals, ng);
  fputs(") COMPREPLY=($(compgen -f -- \"$cur\")); return ;; esac\n"
        "  for ((i = 1; i < COMP_CWORD; i++)); do\n    w=${COMP_WORDS[i]}\n    case $w in ",
        f);
  valued(f, cmds, n, globals, ng);
  fputs(") ((i++)) ;; -*) ;; *) if [ -z \"$cmd\" ]; then cmd=$w; elif [ -z \"$sub\" ]; then "
        "sub=$w; fi ;; esac\n  done\n  local cmds=\"",
        f);
  for (size_t i = 0; i < n; i++)
    if (first_of(cmds, i)) fprintf(f, "%s%s", i ? " " : "", cmds[i].name);
  fputs(" help\"\n  local subs= opts=\"", f);
  for (size_t g = 0; g < ng; g++)
    fprintf(f, "%s--%s", g ? " " : "", globals[g].name);
  fputs("\"\n  case $cmd in\n  help) subs=$cmds ;;\n", f);
  for (size_t i = 0; i < n; i++) {
    if (!first_of(cmds, i)) continue;
    fprintf(f, "  %s) subs=\"", cmds[i].name);
    bool first = true;
    for (size_t k = i; k < n; k++)
      if (strcmp(cmds[k].name, cmds[i].name) == 0 && cmds[k].sub)
        fprintf(f, "%s%s", first ? "" : " ", cmds[k].sub), first = false;
    if (first) values(f, cmds[i].args, false);
    fputs("\" ;;\n", f);
  }
  option_cases(f, cmds, n, false);
  fprintf(f,
          "  esac\n"
          "  if [ -z \"$cmd\" ]; then COMPREPLY=($(compgen -W \"$cmds\" -- \"$cur\"))\n"
          "  elif [[ $cur == -* ]]; then COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
          "  elif [ -n \"$subs\" ] && [ -z \"$sub\" ]; then COMPREPLY=($(compgen -W \"$subs\" -- "
          "\"$cur\"))\n"
          "  else COMPREPLY=($(compgen -f -- \"$cur\")); fi\n"
          "}\ncomplete -o filenames -F _%s %s\n",
          prog, prog);
}

static void zsh(FILE *f, const char *prog, const mn_comp_cmd *cmds, size_t n,
                const mn_comp_opt *globals, size_t ng)
{
  fprintf(f,
          "#compdef %s\n"
          "# zsh completion of %s, written by \"%s completion zsh\" from its command table:\n"
          "# put it in a folder of $fpath as _%s\n"
          "_%s() {\n"
          "  local cmd= sub= i w\n"
          "  local -a cmds subs opts\n"
          "  case ${words[CURRENT-1]} in ",
          prog, prog, prog, prog, prog);
  valued(f, cmds, n, globals, ng);
  fputs(") _files; return ;; esac\n"
        "  for ((i = 2; i < CURRENT; i++)); do\n    w=${words[i]}\n    case $w in ",
        f);
  valued(f, cmds, n, globals, ng);
  fputs(") ((i++)) ;; -*) ;; *) if [[ -z $cmd ]]; then cmd=$w; elif [[ -z $sub ]]; then "
        "sub=$w; fi ;; esac\n  done\n  cmds=(",
        f);
  for (size_t i = 0; i < n; i++) {
    if (!first_of(cmds, i)) continue;
    fprintf(f, " '%s:", cmds[i].name);
    zsh_quoted(f, cmds[i].sub ? "" : cmds[i].summary);
    if (cmds[i].sub) { /* a command of subcommands: name them */
      bool first = true;
      for (size_t k = i; k < n; k++)
        if (strcmp(cmds[k].name, cmds[i].name) == 0)
          fprintf(f, "%s%s", first ? "" : ", ", cmds[k].sub ? cmds[k].sub : "(alone)"),
              first = false;
    }
    fputc('\'', f);
  }
  fputs(" 'help:help on a command')\n  opts=(", f);
  zsh_opts(f, globals, ng);
  fputs(")\n  case $cmd in\n  help) subs=(\"${cmds[@]}\") ;;\n", f);
  for (size_t i = 0; i < n; i++) {
    if (!first_of(cmds, i)) continue;
    bool any = false;
    for (size_t k = i; k < n; k++)
      any |= strcmp(cmds[k].name, cmds[i].name) == 0 && cmds[k].sub;
    if (!any && !strchr(cmds[i].args ? cmds[i].args : "", '|')) continue;
    fprintf(f, "  %s) subs=(", cmds[i].name);
    for (size_t k = i; k < n; k++)
      if (strcmp(cmds[k].name, cmds[i].name) == 0 && cmds[k].sub) {
        fprintf(f, " '%s:", cmds[k].sub);
        zsh_quoted(f, cmds[k].summary);
        fputc('\'', f);
      }
    if (!any) values(f, cmds[i].args, true);
    fputs(") ;;\n", f);
  }
  option_cases(f, cmds, n, true);
  fprintf(f,
          "  esac\n"
          "  if [[ -z $cmd ]]; then _describe command cmds\n"
          "  elif [[ ${words[CURRENT]} == -* ]]; then _describe option opts\n"
          "  elif (( ${#subs} )) && [[ -z $sub ]]; then _describe subcommand subs\n"
          "  else _files; fi\n"
          "}\n_%s \"$@\"\n",
          prog);
}

int mn_completion(FILE *f, const char *shell, const char *prog, const mn_comp_cmd *cmds, size_t n,
                  const mn_comp_opt *globals, size_t nglobals)
{
  if (strcmp(shell, "bash") == 0)
    bash(f, prog, cmds, n, globals, nglobals);
  else if (strcmp(shell, "zsh") == 0)
    zsh(f, prog, cmds, n, globals, nglobals);
  else
    return -1;
  return 0;
}
