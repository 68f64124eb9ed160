/*
 * text.c -- what text mnemo accepts from people, and how it shows text to them.
 *
 * One rule (mn_text_check) for every text a person writes and mnemo stores or judges:
 * documents at ingest (daemon/ingest.c), reports at triage (triage/triage.c) and
 * mnemoctl report, source names.  Acceptable text is valid UTF-8 and not blank, and holds
 * no NUL, no other C0 control but tab (and newline, and the CR of a CRLF, where the caller
 * allows them), no DEL, no C1 control, no byte order mark (a leading one is the caller's to
 * strip first), no bidirectional embedding, override or isolate (U+202A..U+202E,
 * U+2066..U+2069: they reorder what a reader sees) and no U+FFFD (the text was decoded
 * lossily before it reached us).  docs/data-plane.md says what each ingest unit allows.
 *
 * The other direction (mn_text_escape): text shown on a terminal has its control
 * characters, bidirectional controls and invalid bytes written as escapes ("\x1b",
 * "\u202e"), so a stored string cannot move the cursor, clear the screen, forge a table
 * row or reorder a line.  Backslashes are left as they are: the escapes make text safe
 * to show, not reversible (--json output is the exact text).
 *
 * Not for: Unicode normalisation, or judging whether text is in a language.
 */
#include "common/common.h"

#include <string.h>

/* decode -- the code point at s[i] of valid UTF-8, its length in *len */
static uint32_t decode(const unsigned char *s, size_t n, size_t i, size_t *len)
{
  uint32_t c = s[i];
  size_t k = c < 0x80 ? 0 : c < 0xE0 ? 1 : c < 0xF0 ? 2 : 3;
  if (k) c &= 0x3Fu >> k;
  for (size_t j = 1; j <= k && i + j < n; j++)
    c = (c << 6) | (s[i + j] & 0x3F);
  *len = k + 1;
  return c;
}

static bool is_bidi_control(uint32_t c)
{
  return (c >= 0x202A && c <= 0x202E) || (c >= 0x2066 && c <= 0x2069);
}

bool mn_text_is_space(uint32_t c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200B) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

const char *mn_text_problem_str(mn_text_problem p)
{
  switch (p) {
  case MN_TEXT_OK: return "acceptable";
  case MN_TEXT_EMPTY: return "empty text";
  case MN_TEXT_BLANK: return "text of white space only";
  case MN_TEXT_UTF8: return "invalid UTF-8";
  case MN_TEXT_NUL: return "NUL byte";
  case MN_TEXT_CONTROL: return "control character";
  case MN_TEXT_BOM: return "byte order mark";
  case MN_TEXT_BIDI: return "bidirectional control";
  case MN_TEXT_REPLACEMENT: return "replacement character (the text was decoded lossily)";
  }
  return "unknown text problem";
}

mn_text_problem mn_text_check(const char *s, size_t n, unsigned flags, mn_text_issue *out)
{
  mn_text_issue iss = {.problem = MN_TEXT_OK};
  const unsigned char *u = (const unsigned char *)s;
  bool blank = true;
  size_t off = 0;
  if (n == 0) {
    iss.problem = MN_TEXT_EMPTY;
    goto out;
  }
  if ((iss.utf8 = mn_utf8_check(s, n, &off)) != MN_UTF8_OK) {
    iss.problem = MN_TEXT_UTF8;
    iss.offset = off;
    goto out;
  }
  for (size_t i = 0, len = 1; i < n; i += len) {
    uint32_t c = decode(u, n, i, &len);
    mn_text_problem p = MN_TEXT_OK;
    if (c == 0)
      p = MN_TEXT_NUL;
    else if (c == '\n')
      p = flags & MN_TEXT_NEWLINE ? MN_TEXT_OK : MN_TEXT_CONTROL;
    else if (c == '\r')
      p = (flags & MN_TEXT_CRLF) && i + 1 < n && u[i + 1] == '\n' ? MN_TEXT_OK : MN_TEXT_CONTROL;
    else if ((c < 0x20 && c != '\t') || (c >= 0x7F && c <= 0x9F))
      p = MN_TEXT_CONTROL;
    else if (c == 0xFEFF)
      p = MN_TEXT_BOM;
    else if (is_bidi_control(c))
      p = MN_TEXT_BIDI;
    else if (c == 0xFFFD)
      p = MN_TEXT_REPLACEMENT;
    if (p != MN_TEXT_OK) {
      iss.problem = p;
      iss.offset = i;
      iss.code_point = c;
      goto out;
    }
    blank = blank && mn_text_is_space(c);
  }
  if (blank) iss.problem = MN_TEXT_BLANK;
out:
  if (out) *out = iss;
  return iss.problem;
}

void mn_text_describe(const mn_text_issue *iss, char *out, size_t cap)
{
  switch (iss->problem) {
  case MN_TEXT_OK:
  case MN_TEXT_EMPTY:
  case MN_TEXT_BLANK: snprintf(out, cap, "%s", mn_text_problem_str(iss->problem)); break;
  case MN_TEXT_UTF8:
    snprintf(out, cap, "%s at byte %zu", mn_utf8_problem_str(iss->utf8), iss->offset);
    break;
  case MN_TEXT_NUL: snprintf(out, cap, "NUL byte at byte %zu", iss->offset); break;
  default:
    snprintf(out, cap, "%s U+%04X at byte %zu", mn_text_problem_str(iss->problem),
             (unsigned)iss->code_point, iss->offset);
  }
}

size_t mn_text_crlf_to_lf(char *s, size_t n)
{
  size_t w = 0;
  for (size_t i = 0; i < n; i++)
    if (!(s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')) s[w++] = s[i];
  if (w < n) s[w] = '\0';
  return w;
}

/* ---------------------------------------------------------------- showing text */

/* escape_of -- the escape of the character at u[i] (length *len), or NULL when it is shown as
 * it is; buf holds the escape */
static const char *escape_of(const unsigned char *u, size_t n, size_t i, unsigned flags,
                             size_t *len, char buf[16])
{
  size_t bad = 0, k = u[i] < 0x80 ? 1 : u[i] < 0xE0 ? 2 : u[i] < 0xF0 ? 3 : 4;
  if (u[i] >= 0x80 && (i + k > n || mn_utf8_check(u + i, k, &bad) != MN_UTF8_OK)) {
    *len = 1; /* an invalid byte, shown as its value */
    snprintf(buf, 16, "\\x%02x", u[i]);
    return buf;
  }
  uint32_t c = decode(u, n, i, len);
  if (c == '\n' && (flags & MN_TEXT_NEWLINE)) return NULL;
  if (c == '\t' && (flags & MN_TEXT_TAB)) return NULL;
  if (c == '\n') return "\\n";
  if (c == '\t') return "\\t";
  if (c == '\r') return "\\r";
  if (c < 0x20 || c == 0x7F) {
    snprintf(buf, 16, "\\x%02x", (unsigned)c);
    return buf;
  }
  if ((c >= 0x80 && c <= 0x9F) || c == 0xFEFF || is_bidi_control(c) || c == 0x200E || c == 0x200F ||
      c == 0x061C || c == 0x2028 || c == 0x2029) {
    snprintf(buf, 16, "\\u%04x", (unsigned)c);
    return buf;
  }
  return NULL;
}

size_t mn_text_escape(const char *s, size_t n, unsigned flags, char *out, size_t cap, bool *cut)
{
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0, w = 0;
  if (cut) *cut = false;
  if (cap == 0) {
    if (cut) *cut = n > 0;
    return 0;
  }
  while (i < n) {
    char buf[16];
    size_t len = 1;
    const char *esc = escape_of(u, n, i, flags, &len, buf);
    const char *put = esc ? esc : s + i;
    size_t m = esc ? strlen(esc) : len;
    if (w + m + 1 > cap) {
      if (cut) *cut = true;
      break;
    }
    memcpy(out + w, put, m);
    w += m;
    i += len;
  }
  out[w] = '\0';
  return i;
}

void mn_text_fput(FILE *f, const char *s, size_t n, unsigned flags)
{
  char buf[4096];
  size_t i = 0;
  while (i < n) {
    size_t took = mn_text_escape(s + i, n - i, flags, buf, sizeof buf, NULL);
    fputs(buf, f);
    if (took == 0) break; /* cannot happen: any character's escape fits */
    i += took;
  }
}

void mn_roff(FILE *f, const char *s)
{
  bool bol = true;
  for (; *s; s++) {
    if (bol && (*s == '.' || *s == '\'')) fputs("\\&", f);
    if (*s == '\\')
      fputs("\\e", f);
    else if (*s == '-')
      fputs("\\-", f);
    else
      fputc(*s, f);
    bol = *s == '\n';
  }
}
