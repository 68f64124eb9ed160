/*
 * bpe_split.c -- the pre-tokenizer patterns of byte-level BPE, matched by hand.
 *
 * Hugging Face's tokenizers splits text with a regex (Oniguruma) before BPE: the Split
 * pre-tokenizer (behavior Isolated) or ByteLevel with use_regex.  Each matcher here finds
 * what that regex's leftmost match at the start of the text is, alternative by alternative
 * in the pattern's order, backtracking worked out by hand:
 *   \s+(?!\S)     a run of white space, less its last character when a non-space follows
 *                 (when the run is one character, the next alternative \s+ takes it whole)
 *   \s*[\r\n]+    white space up to and including the run's last CR or LF
 *   [^\r\n\p{L}\p{N}]?\p{L}+   one optional character that is none of those, then letters
 * Every character matches some alternative of each pattern, so the pieces cover the text
 * and there is never a gap between matches.
 *
 * Input is valid UTF-8 (bpe.c replaces invalid bytes with U+FFFD first, as the reference
 * sees them); an invalid byte met anyway counts as one character of no class.  \s is
 * Unicode White_Space (Oniguruma's, not JavaScript's).  (?i:...) folds case as Oniguruma
 * does: 's also matches 'S and 'ſ (U+017F, whose case fold is s).
 */
#include "trainer/trainer_int.h"

const char *const trainer__split_regex[TOK_SPLIT_COUNT] = {
    [TOK_SPLIT_NONE] = "",
    [TOK_SPLIT_GPT2] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!"
                       "\\S)|\\s+",
    [TOK_SPLIT_LLAMA3] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                         "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    [TOK_SPLIT_QWEN2] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                        "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    [TOK_SPLIT_MNEMO] =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}\\p{M}]?[\\p{L}\\p{M}]+|"
        "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}\\p{M}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|"
        "\\s+",
};

/* classes of a character: the Unicode flags, and CR/LF */
enum { C_L = MN_UC_L, C_N = MN_UC_N, C_M = MN_UC_M, C_S = MN_UC_SPACE, C_NL = 32 };

/* the classes of ASCII: letters C_L, digits C_N, \t-\r and space C_S, \r \n C_NL too */
static const uint8_t ascii_class[128] = {
    // clang-format off
    0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 40, 8, 8, 40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,
    // clang-format on
};

/* the class of the character at s[0..n) (n >= 1) and its length */
static inline unsigned class_at(const uint8_t *s, size_t n, size_t *len)
{
  uint8_t c = s[0];
  if (c < 0x80) {
    *len = 1;
    return ascii_class[c];
  }
  uint32_t cp;
  size_t k;
  if (c >= 0xC2 && c < 0xE0 && n >= 2) {
    cp = (uint32_t)(c & 0x1F) << 6 | (s[1] & 0x3F);
    k = 2;
  } else if (c >= 0xE0 && c < 0xF0 && n >= 3) {
    cp = (uint32_t)(c & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    k = 3;
  } else if (c >= 0xF0 && c < 0xF5 && n >= 4) {
    cp = (uint32_t)(c & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 | (uint32_t)(s[2] & 0x3F) << 6 |
         (s[3] & 0x3F);
    k = 4;
  } else {
    *len = 1;
    return 0;
  }
  *len = k;
  return mn_uc_props(cp) & (C_L | C_N | C_M | C_S);
}

/* the end of the run of characters of a class in `want` (any of its bits) from i */
static inline size_t run_of(const uint8_t *s, size_t n, size_t i, unsigned want)
{
  while (i < n) {
    size_t k;
    if (!(class_at(s + i, n - i, &k) & want)) break;
    i += k;
  }
  return i;
}

/* ... and of characters of no class in `avoid` */
static inline size_t run_not(const uint8_t *s, size_t n, size_t i, unsigned avoid)
{
  while (i < n) {
    size_t k;
    if (class_at(s + i, n - i, &k) & avoid) break;
    i += k;
  }
  return i;
}

/* 's 't 're 've 'm 'll 'd after s[0] == '\'': the length, or 0 (icase: Llama 3's (?i:...)) */
static size_t contraction(const uint8_t *s, size_t n, bool icase)
{
  if (n < 2) return 0;
  uint8_t a = s[1], b = n >= 3 ? s[2] : 0;
  if (icase) {
    if (a == 0xC5 && b == 0xBF) return 3; /* 'ſ */
    if (a >= 'A' && a <= 'Z') a = (uint8_t)(a + 32);
    if (b >= 'A' && b <= 'Z') b = (uint8_t)(b + 32);
  }
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

/* a run of white space from 0: \s*[\r\n]+ (when nl) or \s+(?!\S) or \s+ */
static size_t space_run(const uint8_t *s, size_t n, bool nl)
{
  size_t i = 0, last_nl = 0, last_start = 0;
  while (i < n) {
    size_t k;
    unsigned c = class_at(s + i, n - i, &k);
    if (!(c & C_S)) break;
    if (c & C_NL) last_nl = i + k;
    last_start = i;
    i += k;
  }
  if (nl && last_nl) return last_nl;
  if (i == n || last_start == 0) return i;
  return last_start;
}

static size_t split_gpt2(const uint8_t *s, size_t n)
{
  size_t k;
  if (s[0] == '\'') {
    size_t c = contraction(s, n, false);
    if (c) return c;
  }
  size_t i = s[0] == ' ' && n > 1 ? 1 : 0;
  unsigned c = class_at(s + i, n - i, &k);
  if (c & C_L) return run_of(s, n, i + k, C_L);
  if (c & C_N) return run_of(s, n, i + k, C_N);
  if (!(c & (C_S | C_L | C_N))) return run_not(s, n, i + k, C_S | C_L | C_N);
  return space_run(s, n, false);
}

/* Llama 3's family: word = letters (and marks for mnemo's), digits up to `digits` */
static size_t split_llama(const uint8_t *s, size_t n, unsigned word, size_t digits)
{
  size_t k;
  if (s[0] == '\'') {
    size_t c = contraction(s, n, true);
    if (c) return c;
  }
  unsigned c0 = class_at(s, n, &k);
  if (c0 & word) return run_of(s, n, k, word);
  if (!(c0 & (C_NL | C_L | C_N | word)) && k < n) { /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    size_t k1;
    if (class_at(s + k, n - k, &k1) & word) return run_of(s, n, k + k1, word);
  }
  if (c0 & C_N) {
    size_t i = k;
    for (size_t d = 1; d < digits && i < n; d++) {
      size_t k1;
      if (!(class_at(s + i, n - i, &k1) & C_N)) break;
      i += k1;
    }
    return i;
  }
  size_t i = s[0] == ' ' && n > 1 ? 1 : 0;
  unsigned c = i ? class_at(s + i, n - i, &k) : c0;
  if (!(c & (C_S | C_L | C_N | word))) {
    i = run_not(s, n, i + k, C_S | C_L | C_N | word);
    return run_of(s, n, i, C_NL);
  }
  return space_run(s, n, true);
}

size_t trainer__split_next(tok_split p, const uint8_t *text, size_t n)
{
  switch (p) {
  case TOK_SPLIT_GPT2: return split_gpt2(text, n);
  case TOK_SPLIT_LLAMA3: return split_llama(text, n, C_L, 3);
  case TOK_SPLIT_QWEN2: return split_llama(text, n, C_L, 1);
  case TOK_SPLIT_MNEMO: return split_llama(text, n, C_L | C_M, 3);
  case TOK_SPLIT_NONE:
  case TOK_SPLIT_COUNT: break;
  }
  return n;
}
