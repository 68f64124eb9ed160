/*
 * utf8.c -- strict UTF-8 validation (RFC 3629).
 *
 * Accepts exactly the shortest encodings of U+0000..U+D7FF and U+E000..U+10FFFF.
 * NUL bytes are valid UTF-8; callers that refuse them (ingest) check separately.
 * ASCII runs are skipped eight bytes at a time: most of our text is mostly ASCII.
 */
#include "common/common.h"

#include <string.h>

const char *mn_utf8_problem_str(mn_utf8_problem p)
{
  switch (p) {
  case MN_UTF8_OK: return "valid";
  case MN_UTF8_BAD_LEAD: return "invalid UTF-8 lead byte";
  case MN_UTF8_TRUNCATED: return "truncated UTF-8 sequence";
  case MN_UTF8_BAD_CONT: return "invalid UTF-8 continuation byte";
  case MN_UTF8_OVERLONG: return "overlong UTF-8 encoding";
  case MN_UTF8_SURROGATE: return "UTF-16 surrogate encoded in UTF-8";
  case MN_UTF8_TOO_LARGE: return "code point above U+10FFFF";
  }
  return "unknown UTF-8 problem";
}

static inline bool is_cont(uint8_t c)
{
  return (c & 0xC0) == 0x80;
}

mn_utf8_problem mn_utf8_check(const void *s, size_t n, size_t *bad_offset)
{
  const uint8_t *p = s;
  size_t i = 0;
  while (i < n) {
    /* fast path: 8 ASCII bytes */
    if (n - i >= 8) {
      uint64_t w;
      memcpy(&w, p + i, 8);
      if ((w & 0x8080808080808080ULL) == 0) {
        i += 8;
        continue;
      }
    }
    uint8_t c = p[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c < 0xC2) {
      /* 0x80..0xBF is a stray continuation; 0xC0, 0xC1 can only start overlongs */
      if (c >= 0xC0) {
        if (i + 1 < n && is_cont(p[i + 1])) goto overlong;
        if (i + 1 >= n) goto truncated;
        goto bad_cont;
      }
      goto bad_lead;
    } else if (c < 0xE0) {
      len = 2;
      cp = c & 0x1F;
    } else if (c < 0xF0) {
      len = 3;
      cp = c & 0x0F;
    } else if (c < 0xF5) { /* F5..FF would encode above U+10FFFF or more than 4 bytes */
      len = 4;
      cp = c & 0x07;
    } else {
      goto bad_lead;
    }
    for (size_t k = 1; k < len; k++) {
      if (i + k >= n) goto truncated;
      if (!is_cont(p[i + k])) goto bad_cont;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) goto overlong;
    if (cp >= 0xD800 && cp <= 0xDFFF) {
      *bad_offset = i;
      return MN_UTF8_SURROGATE;
    }
    if (cp > 0x10FFFF) {
      *bad_offset = i;
      return MN_UTF8_TOO_LARGE;
    }
    i += len;
  }
  return MN_UTF8_OK;

bad_lead:
  *bad_offset = i;
  return MN_UTF8_BAD_LEAD;
truncated:
  *bad_offset = i;
  return MN_UTF8_TRUNCATED;
bad_cont:
  *bad_offset = i;
  return MN_UTF8_BAD_CONT;
overlong:
  *bad_offset = i;
  return MN_UTF8_OVERLONG;
}
