/*
 * script.c -- which writing system a letter belongs to (ISO 15924 codes), and how much of a
 * text is written in a given one (common.h).  Used by triage's text checks; a table, no
 * state.  Not for: language identification (triage/lid.c) or normalisation.
 */
#include "common/common.h"

#include <string.h>

typedef struct script_range {
  uint32_t lo, hi;
  const char *code;
} script_range;

/* letters of the scripts our languages are written in (sorted); anything else -- digits,
 * punctuation, spaces, symbols, combining marks shared by all -- is not a letter here */
static const script_range scripts[] = {
    {0x0041, 0x005A, "Latn"}, {0x0061, 0x007A, "Latn"},   {0x00C0, 0x00D6, "Latn"},
    {0x00D8, 0x00F6, "Latn"}, {0x00F8, 0x02AF, "Latn"},   {0x0370, 0x03FF, "Grek"},
    {0x0400, 0x052F, "Cyrl"}, {0x0531, 0x058F, "Armn"},   {0x0591, 0x05FF, "Hebr"},
    {0x0610, 0x065F, "Arab"}, {0x066E, 0x06FF, "Arab"},   {0x0750, 0x077F, "Arab"},
    {0x08A0, 0x08FF, "Arab"}, {0x0900, 0x0963, "Deva"},   {0x0966, 0x097F, "Deva"},
    {0x0980, 0x09FF, "Beng"}, {0x0A00, 0x0A7F, "Guru"},   {0x0A80, 0x0AFF, "Gujr"},
    {0x0B00, 0x0B7F, "Orya"}, {0x0B80, 0x0BFF, "Taml"},   {0x0C00, 0x0C7F, "Telu"},
    {0x0C80, 0x0CFF, "Knda"}, {0x0D00, 0x0D7F, "Mlym"},   {0x0D80, 0x0DFF, "Sinh"},
    {0x0E01, 0x0E3A, "Thai"}, {0x0E40, 0x0E7F, "Thai"},   {0x0E80, 0x0EFF, "Laoo"},
    {0x0F00, 0x0FFF, "Tibt"}, {0x1000, 0x109F, "Mymr"},   {0x10A0, 0x10FF, "Geor"},
    {0x1100, 0x11FF, "Hang"}, {0x1200, 0x139F, "Ethi"},   {0x1780, 0x17FF, "Khmr"},
    {0x1800, 0x18AF, "Mong"}, {0x19E0, 0x19FF, "Khmr"},   {0x1C80, 0x1C8F, "Cyrl"},
    {0x1C90, 0x1CBF, "Geor"}, {0x1E00, 0x1EFF, "Latn"},   {0x1F00, 0x1FFF, "Grek"},
    {0x2C60, 0x2C7F, "Latn"}, {0x2D00, 0x2D2F, "Geor"},   {0x2D80, 0x2DDF, "Ethi"},
    {0x2DE0, 0x2DFF, "Cyrl"}, {0x3005, 0x3007, "Hani"},   {0x3041, 0x309F, "Hira"},
    {0x30A1, 0x30FA, "Kana"}, {0x30FD, 0x30FF, "Kana"},   {0x3131, 0x318F, "Hang"},
    {0x31F0, 0x31FF, "Kana"}, {0x3400, 0x4DBF, "Hani"},   {0x4E00, 0x9FFF, "Hani"},
    {0xA640, 0xA69F, "Cyrl"}, {0xA720, 0xA7FF, "Latn"},   {0xA960, 0xA97F, "Hang"},
    {0xA9E0, 0xA9FF, "Mymr"}, {0xAA60, 0xAA7F, "Mymr"},   {0xAC00, 0xD7FF, "Hang"},
    {0xF900, 0xFAFF, "Hani"}, {0xFB1D, 0xFB4F, "Hebr"},   {0xFB50, 0xFDFF, "Arab"},
    {0xFE70, 0xFEFF, "Arab"}, {0xFF21, 0xFF3A, "Latn"},   {0xFF41, 0xFF5A, "Latn"},
    {0xFF66, 0xFF9F, "Kana"}, {0x20000, 0x3FFFF, "Hani"},
};

const char *mn_script_of(uint32_t cp)
{
  size_t lo = 0, hi = sizeof scripts / sizeof scripts[0];
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (cp < scripts[mid].lo)
      hi = mid;
    else if (cp > scripts[mid].hi)
      lo = mid + 1;
    else
      return scripts[mid].code;
  }
  return NULL;
}

bool mn_script_in(const char *of, const char *want)
{
  if (strcmp(of, want) == 0) return true;
  if (strcmp(want, "Jpan") == 0)
    return !strcmp(of, "Hira") || !strcmp(of, "Kana") || !strcmp(of, "Hani");
  if (strcmp(want, "Kore") == 0) return !strcmp(of, "Hang") || !strcmp(of, "Hani");
  if (!strcmp(want, "Hans") || !strcmp(want, "Hant")) return !strcmp(of, "Hani");
  return false;
}

/* next_cp -- the code point at s[*i] of valid UTF-8, *i advanced */
static uint32_t next_cp(const unsigned char *s, size_t n, size_t *i)
{
  uint32_t c = s[*i];
  int k = c < 0x80 ? 0 : c < 0xE0 ? 1 : c < 0xF0 ? 2 : 3;
  if (k) c &= 0x3F >> k;
  (*i)++;
  for (; k > 0 && *i < n; k--)
    c = (c << 6) | (s[(*i)++] & 0x3F);
  return c;
}

double mn_script_share(const char *s, size_t n, const char *script, size_t *letters)
{
  size_t all = 0, in = 0, i = 0;
  const unsigned char *u = (const unsigned char *)s;
  while (i < n) {
    const char *of = mn_script_of(next_cp(u, n, &i));
    if (!of) continue;
    all++;
    if (script && mn_script_in(of, script)) in++;
  }
  if (letters) *letters = all;
  return all ? (double)in / (double)all : 0.0;
}
