/* test_utf8.c -- strict UTF-8 validation: valid text in many scripts, and each invalid class;
 * the text rule built on it (mn_text_check) and escaping for terminals (mn_text_escape). */
#include "common/common.h"
#include "tests/test.h"

static mn_utf8_problem check(const char *s, size_t n, size_t *off)
{
  *off = (size_t)-1;
  return mn_utf8_check(s, n, off);
}

static void valid_text(void)
{
  const char *samples[] = {
      "",
      "plain ASCII, long enough to take the eight-byte fast path several times over",
      "Habari ya asubuhi",           /* Swahili */
      "สวัสดีครับ",                     /* Thai */
      "你好，世界",                  /* Mandarin */
      "Здравствуйте",                /* Russian */
      "नमस्ते दुनिया",                  /* Hindi */
      "ሰላም ለዓለም",                    /* Amharic */
      "emoji \xF0\x9F\x98\x80 done", /* U+1F600, four bytes */
      "\xEF\xBF\xBF",                /* U+FFFF */
      "\xF4\x8F\xBF\xBF",            /* U+10FFFF, the largest */
      "\xED\x9F\xBF",                /* U+D7FF, just below the surrogates */
      "\xEE\x80\x80",                /* U+E000, just above */
      "\xC2\x80",                    /* U+0080, the smallest two-byte */
  };
  for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
    size_t off;
    T_CHECK_MSG(check(samples[i], strlen(samples[i]), &off) == MN_UTF8_OK, "sample %zu", i);
  }
  size_t off;
  T_EQ_INT(check("a\0b", 3, &off), MN_UTF8_OK); /* NUL is valid UTF-8 */
}

typedef struct {
  const char *bytes;
  size_t len;
  mn_utf8_problem want;
  size_t offset;
} bad_case;

static void invalid_classes(void)
{
  const bad_case cases[] = {
      {"abc\x80", 4, MN_UTF8_BAD_LEAD, 3},              /* stray continuation */
      {"\xFF", 1, MN_UTF8_BAD_LEAD, 0},                 /* never valid */
      {"\xF8\x88\x80\x80\x80", 5, MN_UTF8_BAD_LEAD, 0}, /* old five-byte form */
      {"ok \xC3", 4, MN_UTF8_TRUNCATED, 3},             /* cut after the lead */
      {"ok \xE0\xA4", 5, MN_UTF8_TRUNCATED, 3},         /* cut in the middle */
      {"\xC3(", 2, MN_UTF8_BAD_CONT, 0},
      {"12345678\xE2\x82(", 11, MN_UTF8_BAD_CONT, 8}, /* after the fast path */
      {"\xC0\xAF", 2, MN_UTF8_OVERLONG, 0},           /* "/" in two bytes */
      {"\xC1\xBF", 2, MN_UTF8_OVERLONG, 0},
      {"\xE0\x80\xAF", 3, MN_UTF8_OVERLONG, 0},      /* three-byte overlong */
      {"x\xF0\x80\x80\xAF", 5, MN_UTF8_OVERLONG, 1}, /* four-byte overlong */
      {"\xED\xA0\x80", 3, MN_UTF8_SURROGATE, 0},     /* U+D800 */
      {"ab\xED\xBF\xBF", 5, MN_UTF8_SURROGATE, 2},   /* U+DFFF */
      {"\xF4\x90\x80\x80", 4, MN_UTF8_TOO_LARGE, 0}, /* U+110000 */
      {"\xF7\xBF\xBF\xBF", 4, MN_UTF8_BAD_LEAD, 0},  /* F5..FF never lead */
      {"\xF5\x80\x80\x80", 4, MN_UTF8_BAD_LEAD, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t off;
    mn_utf8_problem got = check(cases[i].bytes, cases[i].len, &off);
    T_CHECK_MSG(got == cases[i].want, "case %zu: got %s, want %s", i, mn_utf8_problem_str(got),
                mn_utf8_problem_str(cases[i].want));
    T_CHECK_MSG(off == cases[i].offset, "case %zu: offset %zu, want %zu", i, off, cases[i].offset);
  }
}

/* every single byte value, alone: exactly 0x00..0x7F are valid */
static void single_bytes(void)
{
  int valid = 0;
  for (int b = 0; b < 256; b++) {
    char c = (char)b;
    size_t off;
    valid += check(&c, 1, &off) == MN_UTF8_OK;
  }
  T_EQ_INT(valid, 128);
}

/* every code point round trip: encode each scalar value and validate it */
static void all_code_points(void)
{
  long bad = 0;
  for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    unsigned char b[4];
    size_t n;
    if (cp < 0x80) {
      b[0] = (unsigned char)cp;
      n = 1;
    } else if (cp < 0x800) {
      b[0] = (unsigned char)(0xC0 | cp >> 6);
      b[1] = (unsigned char)(0x80 | (cp & 63));
      n = 2;
    } else if (cp < 0x10000) {
      b[0] = (unsigned char)(0xE0 | cp >> 12);
      b[1] = (unsigned char)(0x80 | ((cp >> 6) & 63));
      b[2] = (unsigned char)(0x80 | (cp & 63));
      n = 3;
    } else {
      b[0] = (unsigned char)(0xF0 | cp >> 18);
      b[1] = (unsigned char)(0x80 | ((cp >> 12) & 63));
      b[2] = (unsigned char)(0x80 | ((cp >> 6) & 63));
      b[3] = (unsigned char)(0x80 | (cp & 63));
      n = 4;
    }
    size_t off;
    bad += check((const char *)b, n, &off) != MN_UTF8_OK;
  }
  T_EQ_INT(bad, 0);
}

static mn_text_problem text(const char *s, size_t n, unsigned flags, mn_text_issue *iss)
{
  return mn_text_check(s, n, flags, iss);
}
#define TXT(lit, flags, iss) text((lit), sizeof(lit) - 1, (flags), (iss))

static void text_rule(void)
{
  mn_text_issue iss;
  char why[128];
  const unsigned nl = MN_TEXT_NEWLINE, crlf = MN_TEXT_NEWLINE | MN_TEXT_CRLF;
  T_EQ_INT(TXT("Habari ya asubuhi", 0, &iss), MN_TEXT_OK);
  T_EQ_INT(TXT("tab\tok", 0, &iss), MN_TEXT_OK);
  T_EQ_INT(TXT("שלום \xE2\x80\x8F", 0, &iss), MN_TEXT_OK); /* RLM is a mark, not an override */
  T_EQ_INT(TXT("", 0, &iss), MN_TEXT_EMPTY);
  T_EQ_INT(TXT(" \t ", 0, &iss), MN_TEXT_BLANK);
  T_EQ_INT(TXT(" \n\xC2\xA0\xE3\x80\x80 ", nl, &iss), MN_TEXT_BLANK); /* NBSP, ideographic space */
  T_EQ_INT(TXT("two\nlines", 0, &iss), MN_TEXT_CONTROL);
  T_EQ_INT(iss.offset, 3);
  T_EQ_INT(TXT("two\nlines", nl, &iss), MN_TEXT_OK);
  T_EQ_INT(TXT("two\r\nlines", nl, &iss), MN_TEXT_CONTROL); /* CR only where the caller allows */
  T_EQ_INT(TXT("two\r\nlines", crlf, &iss), MN_TEXT_OK);
  T_EQ_INT(TXT("row\rforged", crlf, &iss), MN_TEXT_CONTROL); /* a lone CR never */
  T_EQ_INT(iss.code_point, '\r');
  T_EQ_INT(TXT("end\r", crlf, &iss), MN_TEXT_CONTROL);
  T_EQ_INT(TXT("a\x1b[2Jb", nl, &iss), MN_TEXT_CONTROL);
  mn_text_describe(&iss, why, sizeof why);
  T_EQ_STR(why, "control character U+001B at byte 1");
  T_EQ_INT(TXT("del\x7f", 0, &iss), MN_TEXT_CONTROL);
  T_EQ_INT(TXT("c1\xC2\x85", 0, &iss), MN_TEXT_CONTROL);
  T_EQ_INT(iss.code_point, 0x85);
  T_EQ_INT(TXT("ff\x0c", nl, &iss), MN_TEXT_CONTROL);
  T_EQ_INT(TXT("a\0b", 0, &iss), MN_TEXT_NUL);
  mn_text_describe(&iss, why, sizeof why);
  T_EQ_STR(why, "NUL byte at byte 1");
  T_EQ_INT(TXT("\xEF\xBB\xBFlead", 0, &iss), MN_TEXT_BOM); /* the caller strips a leading one */
  T_EQ_INT(TXT("in\xEF\xBB\xBFner", 0, &iss), MN_TEXT_BOM);
  T_EQ_INT(iss.offset, 2);
  T_EQ_INT(TXT("admin\xE2\x80\xAEtxt.exe", 0, &iss), MN_TEXT_BIDI); /* U+202E */
  T_EQ_INT(iss.code_point, 0x202E);
  T_EQ_INT(TXT("x\xE2\x81\xA6y", 0, &iss), MN_TEXT_BIDI); /* U+2066 */
  T_EQ_INT(TXT("x\xE2\x81\xA9y", 0, &iss), MN_TEXT_BIDI); /* U+2069 */
  T_EQ_INT(TXT("x\xE2\x80\xAAy", 0, &iss), MN_TEXT_BIDI); /* U+202A */
  T_EQ_INT(TXT("lossy \xEF\xBF\xBD", 0, &iss), MN_TEXT_REPLACEMENT);
  T_EQ_INT(TXT("bad \xC3(", 0, &iss), MN_TEXT_UTF8);
  mn_text_describe(&iss, why, sizeof why);
  T_EQ_STR(why, "invalid UTF-8 continuation byte at byte 4");
  char crlf_text[] = "a\r\nb\rc\r\n";
  T_EQ_INT(mn_text_crlf_to_lf(crlf_text, strlen(crlf_text)), 6);
  T_EQ_STR(crlf_text, "a\nb\rc\n");
}

static void escaping(void)
{
  char out[256];
  bool cut = true;
  const char forged[] = "ok\r999 accepted\x1b]0;pwned\x07\x1b[2J\xE2\x80\xAE"
                        "gnp.exe\xC2\x9B\x7f\xff\xEF\xBB\xBFz\tt\nn";
  size_t used = mn_text_escape(forged, sizeof forged - 1, 0, out, sizeof out, &cut);
  T_EQ_INT(used, sizeof forged - 1);
  T_CHECK(!cut);
  T_EQ_STR(out, "ok\\r999 accepted\\x1b]0;pwned\\x07\\x1b[2J\\u202egnp.exe\\u009b\\x7f\\xff"
                "\\ufeffz\\tt\\nn");
  for (const char *p = out; *p; p++) /* nothing a terminal acts on is left */
    T_CHECK((unsigned char)*p >= 0x20 && (unsigned char)*p != 0x7f);
  mn_text_escape("a\tb\nc\rd", 7, MN_TEXT_NEWLINE | MN_TEXT_TAB, out, sizeof out, &cut);
  T_EQ_STR(out, "a\tb\nc\\rd");
  /* plain text in any script is shown as it is */
  const char *th = "ร้านอาหารเปิด 9 โมง";
  mn_text_escape(th, strlen(th), 0, out, sizeof out, &cut);
  T_EQ_STR(out, th);
  /* a small buffer: cut before a character or an escape that does not fit whole */
  used = mn_text_escape("ab\x1b", 3, 0, out, 6, &cut);
  T_EQ_INT(used, 2);
  T_CHECK(cut);
  T_EQ_STR(out, "ab");
  used = mn_text_escape("a\xD0\x96", 3, 0, out, 3, &cut);
  T_EQ_INT(used, 1);
  T_EQ_STR(out, "a");
  /* a truncated sequence at the end is shown byte by byte */
  mn_text_escape("x\xE2\x80", 3, 0, out, sizeof out, &cut);
  T_EQ_STR(out, "x\\xe2\\x80");
}

int main(void)
{
  T_RUN(valid_text);
  T_RUN(invalid_classes);
  T_RUN(single_bytes);
  T_RUN(all_code_points);
  T_RUN(text_rule);
  T_RUN(escaping);
  return T_DONE();
}
