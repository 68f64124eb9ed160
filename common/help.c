/*
 * help.c -- help text as the programs print it (mnemoctl's and mnemo's --help): paragraphs
 * filled to 79 columns, option lists with their text in a column, usage lines broken only
 * before an option (never between an option and its value).  The tables hold paragraphs; the layout
 * is made here, once.
 */
#include "common/common.h"

#include <stdio.h>
#include <string.h>

int mn_help_fill(FILE *f, const char *text, int col, int indent)
{
  bool fresh = col <= indent; /* nothing printed on this line since its indent */
  for (const char *p = text; *p;) {
    if (p[0] == '\n' && p[1] == '\n') { /* a paragraph */
      fprintf(f, "\n\n%*s", indent, "");
      col = indent, fresh = true;
      p += 2;
      continue;
    }
    if (*p == ' ' || *p == '\n') {
      p++;
      continue;
    }
    int len = (int)strcspn(p, " \n");
    if (!fresh && col + 1 + len > MN_HELP_WIDTH) {
      fprintf(f, "\n%*s", indent, "");
      col = indent, fresh = true;
    }
    if (!fresh) fputc(' ', f), col++;
    fprintf(f, "%.*s", len, p);
    col += len, fresh = false; /* help text is ASCII: a byte a column */
    p += len;
  }
  return col;
}

void mn_help_item(FILE *f, const char *left, int cols, const char *text)
{
  if ((int)strlen(left) <= cols)
    fprintf(f, "  %-*s ", cols, left);
  else
    fprintf(f, "  %s\n  %-*s ", left, cols, "");
  mn_help_fill(f, text, 3 + cols, 3 + cols);
  fputc('\n', f);
}

void mn_help_usage(FILE *f, const char *head, const char *synopsis)
{
  int n = (int)strlen(head), col = n;
  fputs(head, f);
  for (const char *p = synopsis; *p;) {
    p += strspn(p, " ");
    const char *e = p;
    while (*e && (e[0] != ' ' || (e[1] != '-' && e[1] != '[')))
      e++;
    int len = (int)(e - p);
    if (len == 0) break;
    if (col > n && col + 1 + len > MN_HELP_WIDTH) fprintf(f, "\n%*s", n, ""), col = n;
    fprintf(f, "%s%.*s", col > n ? " " : "", len, p);
    col += (col > n) + len;
    p = e;
  }
  fputc('\n', f);
}
