/*
 * test_triage.c -- the parts of report triage that need no model: which texts are unusable
 * and why, scripts of letters, and MinHash similarity (the grouping of near-duplicates).
 */
#include "triage/triage.h"

#include "tests/test.h"

#include <math.h>

static bool ok(const char *s, const char *script, char *why)
{
  return triage_check_text(s, strlen(s), script, 1000, why, 160);
}

static void unusable_texts(void)
{
  char why[160];
  T_CHECK(ok("Habari ya asubuhi, rafiki yangu", "Latn", why));
  T_CHECK(ok("გამარჯობა, როგორ ხარ? 123", "Geor", why));
  T_CHECK(ok("今日は良い天気ですね", "Jpan", why)); /* Han and Hiragana are Japanese */
  T_CHECK(ok("오늘 날씨가 좋네요 日本", "Kore", why));
  T_CHECK(ok("anything at all", NULL, why));
  T_CHECK(!ok("", "Latn", why) && strcmp(why, "empty") == 0);
  T_CHECK(!ok(" \t\n ", "Latn", why) && strcmp(why, "empty") == 0);
  T_CHECK(!ok("12345 !!! ...", "Latn", why) && strcmp(why, "no letters") == 0);
  T_CHECK(!ok("abc\x01"
              "def",
              "Latn", why));
  T_CONTAINS(why, "binary data (U+0001 at byte 3)");
  T_CHECK(!ok("abc\xc2\x85"
              "def",
              "Latn", why)); /* a C1 control */
  T_CONTAINS(why, "U+0085");
  /* the text rule shared with ingest (common/text.c) */
  T_CHECK(ok("two lines\r\nof a web form", "Latn", why)); /* CRLF line ends are fine */
  T_CHECK(ok("\xEF\xBB\xBFleading byte order mark", "Latn", why));
  T_CHECK(!ok("row one\rforged row", "Latn", why)); /* a lone CR forges terminal rows */
  T_CONTAINS(why, "binary data (U+000D at byte 7)");
  T_CHECK(!ok("clear \x1b[2J screen", "Latn", why));
  T_CONTAINS(why, "U+001B");
  T_CHECK(!ok("inner\xEF\xBB\xBF"
              "bom",
              "Latn", why));
  T_CONTAINS(why, "U+FEFF at byte 5");
  T_CHECK(!ok("evil \xE2\x80\xAE"
              "txt.exe",
              "Latn", why));
  T_CONTAINS(why, "bidirectional control (U+202E at byte 5)");
  T_CHECK(!ok("isolate \xE2\x81\xA6x", "Latn", why));
  T_CONTAINS(why, "U+2066");
  T_CHECK(!ok("\xC2\xA0\xE3\x80\x80 ", "Latn", why) && strcmp(why, "empty") == 0); /* NBSP */
  T_CHECK(!ok("abc\xff", "Latn", why));
  T_CONTAINS(why, "not UTF-8");
  T_CHECK(!ok("Habari ya asubuhi", "Cyrl", why));
  T_CONTAINS(why, "Cyrl");
  T_CHECK(!ok("Привет and then the whole answer went on in English", "Cyrl", why));
  /* code-switched: a fifth of its letters in the claimed script is enough */
  T_CHECK(ok("ร้านอาหารเปิด 9 โมง but the answer switched to English halfway", "Thai", why));
  char big[1200];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = 0;
  T_CHECK(!ok(big, "Latn", why));
  T_CONTAINS(why, "more than 1000");
  size_t letters;
  T_CHECK(fabs(mn_script_share("abc где", strlen("abc где"), "Cyrl", &letters) - 0.5) < 1e-9);
  T_EQ_INT(letters, 6);
}

static double sim(const char *a, const char *b)
{
  uint32_t x[TRIAGE_MINHASH], y[TRIAGE_MINHASH];
  triage_minhash(a, strlen(a), x);
  triage_minhash(b, strlen(b), y);
  return triage_similarity(x, y);
}

static void near_duplicates(void)
{
  const char *r = "The Swahili answers keep switching to English halfway through the reply, "
                  "for example when I ask about the weather in Mombasa.";
  T_CHECK(sim(r, r) == 1.0);
  /* case and white space do not matter */
  T_CHECK(sim(r, "the swahili answers keep switching to english halfway  through the reply,\n"
                 "for example when I ask about the weather in Mombasa.") == 1.0);
  /* a few words changed: still the same report (above the default 0.6) */
  double s = sim(r, "The Swahili answers keep switching into English halfway through the reply, "
                    "e.g. when I ask about the weather in Mombasa!");
  T_CHECK_MSG(s >= 0.6, "%.3f", s);
  /* another problem: far apart */
  s = sim(r, "Thai text comes out garbled: the vowels are placed after the wrong consonants.");
  T_CHECK_MSG(s < 0.2, "%.3f", s);
  T_CHECK(sim("ab", "ab") == 1.0 && sim("ab", "ac") < 0.2); /* shorter than a shingle */
}

int main(void)
{
  T_RUN(unusable_texts);
  T_RUN(near_duplicates);
  return T_DONE();
}
