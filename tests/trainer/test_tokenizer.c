/*
 * test_tokenizer.c -- byte-level BPE (trainer/bpe*.c) and the Unicode tables under it
 * (common/unicode.c): the byte map, the four split patterns on hand-picked cases, NFC, a
 * small tokenizer built here (merges, ignore_merges, added tokens and their flags,
 * invalid UTF-8, the cache, to_json and back, tags), and every refusal naming the file and
 * the JSON path.  Agreement with Hugging Face on real tokenizers is test_tokenizer_ref.sh.
 */
#include "tests/test.h"
#include "trainer/trainer_int.h"

#include <stdlib.h>
#include <string.h>

static void test_byte_map(void)
{
  bool seen[400] = {false};
  for (int b = 0; b < 256; b++) {
    uint32_t c = trainer__byte_char((uint8_t)b);
    T_CHECK(c < 400 && !seen[c]);
    if (c < 400) seen[c] = true;
  }
  T_EQ_INT(trainer__byte_char(' '), 0x120); /* Ġ */
  T_EQ_INT(trainer__byte_char('\n'), 0x10A);
  T_EQ_INT(trainer__byte_char('a'), 'a');
  T_EQ_INT(trainer__byte_char(0xAD), 0x143);
}

/* the pieces of text under p joined by '|' */
static void pieces(tok_split p, const char *text, char *out, size_t cap)
{
  size_t n = strlen(text), o = 0;
  for (size_t i = 0; i < n;) {
    size_t k = trainer__split_next(p, (const uint8_t *)text + i, n - i);
    if (o && o < cap - 1) out[o++] = '|';
    for (size_t j = 0; j < k && o < cap - 1; j++)
      out[o++] = text[i + j];
    i += k;
  }
  out[o] = 0;
}

static void test_split(void)
{
  static const struct {
    tok_split p;
    const char *text, *want;
  } cases[] = {
      {TOK_SPLIT_GPT2, "Hello world's  end", "Hello| world|'s| | end"},
      {TOK_SPLIT_GPT2, "it'S 12345 x!!  \n", "it|'|S| 12345| x|!!|  \n"},
      {TOK_SPLIT_GPT2, "a  \tb", "a|  |\t|b"},
      {TOK_SPLIT_LLAMA3, "it'S 12345 x!!\r\n\r\ny", "it|'S| |123|45| x|!!\r\n\r\n|y"},
      {TOK_SPLIT_LLAMA3, "a \n\n  b", "a| \n\n| | b"},
      {TOK_SPLIT_LLAMA3, "(word) 'ſ x'ſ", "(word|)| '|ſ| x|'ſ"},
      {TOK_SPLIT_QWEN2, "x123", "x|1|2|3"},
      {TOK_SPLIT_LLAMA3, "नमस्ते", "नमस|्त|े"},
      {TOK_SPLIT_MNEMO, "नमस्ते दुनिया", "नमस्ते| दुनिया"},
      {TOK_SPLIT_LLAMA3, "  ", "  "},
      {TOK_SPLIT_LLAMA3, "a   ", "a|   "},
  };
  char got[256];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    pieces(cases[i].p, cases[i].text, got, sizeof got);
    T_CHECK_MSG(!strcmp(got, cases[i].want), "case %zu: \"%s\" -> \"%s\", want \"%s\"", i,
                cases[i].text, got, cases[i].want);
  }
  /* every pattern covers any bytes, invalid ones too, in pieces of at least one byte */
  uint8_t junk[64];
  uint64_t x = 88172645463325252ull;
  for (int r = 0; r < 2000; r++) {
    for (size_t i = 0; i < sizeof junk; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      junk[i] = (uint8_t)x;
    }
    for (int p = TOK_SPLIT_GPT2; p < TOK_SPLIT_COUNT; p++)
      for (size_t i = 0; i < sizeof junk;) {
        size_t k = trainer__split_next((tok_split)p, junk + i, sizeof junk - i);
        if (k < 1 || k > sizeof junk - i) {
          T_CHECK_MSG(false, "pattern %d gave %zu of %zu", p, k, sizeof junk - i);
          break;
        }
        i += k;
      }
  }
}

static void nfc_is(const char *in, const char *want)
{
  mn_buf b;
  mn_error err = {0};
  mn_buf_init(&b, 1 << 20);
  T_CHECK(mn_nfc(in, strlen(in), &b, &err) == MN_OK);
  T_CHECK_MSG(b.len == strlen(want) && !memcmp(b.data, want, b.len), "NFC of \"%s\"", in);
  mn_buf_fini(&b);
}

static void test_nfc(void)
{
  T_CHECK(mn_nfc_quick("plain ascii", 11));
  T_CHECK(mn_nfc_quick("café नमस्ते", strlen("café नमस्ते")));
  T_CHECK(!mn_nfc_quick("cafe\xcc\x81", 6));
  nfc_is("cafe\xcc\x81", "café");
  nfc_is("\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8", "각"); /* Hangul L V T */
  nfc_is("q\xcc\x87\xcc\xa3", "q\xcc\xa3\xcc\x87");     /* reordered */
  nfc_is("\xe0\xa5\x98", "\xe0\xa4\x95\xe0\xa4\xbc");   /* excluded: stays apart */
  nfc_is("\xe2\x84\xab", "\xc3\x85");                   /* Ångström sign: Å */
  T_EQ_INT(mn_uc_props(0x3000) & MN_UC_SPACE, MN_UC_SPACE);
  T_EQ_INT(mn_uc_props(0xFEFF) & MN_UC_SPACE, 0); /* JavaScript's \s, not White_Space */
  T_EQ_INT(mn_uc_props(0x0301) >> 8, 230);
  T_EQ_INT(mn_uc_props(0x110000), 0);
}

/* ---------------------------------------------------------------- a small tokenizer */

/* tokenizer.json of the 256 bytes (ids 0-255), merges h e, l l, he ll, Ġ w (256-259), and
 * added <|endoftext|> 300 (special), <x> 301 (lstrip, rstrip), <n> 302 (normalized);
 * `edit` is applied to it before it is written */
static json_t *small_json(void)
{
  json_t *vocab = json_object();
  for (int b = 0; b < 256; b++) {
    uint8_t s[4];
    uint32_t c = trainer__byte_char((uint8_t)b);
    size_t k = c < 0x80 ? (s[0] = (uint8_t)c, 1)
                        : (s[0] = (uint8_t)(0xC0 | c >> 6), s[1] = (uint8_t)(0x80 | (c & 63)), 2);
    json_object_setn_new(vocab, (const char *)s, k, json_integer(b));
  }
  json_object_set_new(vocab, "he", json_integer(256));
  json_object_set_new(vocab, "ll", json_integer(257));
  json_object_set_new(vocab, "hell", json_integer(258));
  json_object_set_new(vocab, "\xc4\xa0w", json_integer(259));
  json_object_set_new(vocab, "wow", json_integer(260)); /* reachable by ignore_merges only */
  json_t *root = json_pack(
      "{s:n, s:n, s:[{s:i, s:s, s:b, s:b, s:b, s:b, s:b}, {s:i, s:s, s:b, s:b, s:b, s:b, s:b},"
      " {s:i, s:s, s:b, s:b, s:b, s:b, s:b}], s:n,"
      " s:{s:s, s:b, s:b, s:b}, s:n, s:{s:s}, s:{s:s, s:o, s:[s, [s, s], s, s], s:b}}",
      "truncation", "padding", "added_tokens", "id", 300, "content", "<|endoftext|>", "single_word",
      0, "lstrip", 0, "rstrip", 0, "normalized", 0, "special", 1, "id", 301, "content", "<x>",
      "single_word", 0, "lstrip", 1, "rstrip", 1, "normalized", 0, "special", 0, "id", 302,
      "content", "<n>", "single_word", 0, "lstrip", 0, "rstrip", 0, "normalized", 1, "special", 0,
      "normalizer", "pre_tokenizer", "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 1,
      "use_regex", 1, "post_processor", "decoder", "type", "ByteLevel", "model", "type", "BPE",
      "vocab", vocab, "merges", "h e", "l", "l", "he ll", "\xc4\xa0 w", "ignore_merges", 0);
  return root;
}

static tok_bpe *load_small(json_t *root, uint32_t *base, tok_tags *tags, mn_error *err)
{
  tok_bpe *b = NULL;
  uint32_t eot = 0;
  if (trainer__bpe_from_json(root, "small.json", &b, base, &eot, tags, err) == MN_OK)
    T_EQ_INT(eot, 300);
  return b;
}

static bool specials = true; /* as Hugging Face encodes by default */

static size_t enc(const tok_bpe *b, tok_cache *c, const char *text, size_t n, uint32_t *out)
{
  uint32_t *ids = NULL;
  size_t len = 0, cap = 0;
  mn_error err = {0};
  T_CHECK(trainer__bpe_encode(b, c, specials, text, n, &ids, &len, &cap, &err) == MN_OK);
  memcpy(out, ids, len * sizeof *ids);
  free(ids);
  return len;
}

#define ENC_IS(b, c, text, ...)                                                                    \
  do {                                                                                             \
    static const uint32_t want_[] = {__VA_ARGS__};                                                 \
    uint32_t got_[256];                                                                            \
    size_t n_ = enc(b, c, text, sizeof(text) - 1, got_);                                           \
    T_CHECK_MSG(n_ == sizeof want_ / sizeof *want_ && !memcmp(got_, want_, sizeof want_),          \
                "encoding \"%s\": %zu ids, first %u", text, n_, n_ ? got_[0] : 0);                 \
  } while (0)

static void test_small(void)
{
  mn_error err = {0};
  uint32_t base = 0;
  tok_tags tags = {0};
  json_t *root = small_json();
  tok_bpe *b = load_small(root, &base, &tags, &err);
  T_CHECK_MSG(b != NULL, "%s", err.msg);
  if (!b) return;
  T_EQ_INT(base, 303);
  tok_cache *c;
  T_CHECK(tok_cache_create(&c, &err) == MN_OK);
  for (int twice = 0; twice < 2; twice++) { /* the second time from the cache */
    ENC_IS(b, c, "hello wow", 258, 'o', 259, 'o', 'w');
    ENC_IS(b, c, "hel", 256, 'l');
    ENC_IS(b, c, "a<|endoftext|>b", 'a', 300, 'b');
    ENC_IS(b, c, "a  <x>  b", 'a', 301, 'b'); /* lstrip, rstrip take the spaces */
    ENC_IS(b, c, "<n><|endoftext|", 302, '<', '|', 'e', 'n', 'd', 'o', 'f', 't', 'e', 'x', 't',
           '|');
    ENC_IS(b, c, "\xff", 0xEF, 0xBF, 0xBD); /* U+FFFD */
    ENC_IS(b, c, "a\xe2\x82z", 'a', 0xEF, 0xBF, 0xBD, 'z');
    ENC_IS(b, NULL, "hello", 258, 'o');
  }
  /* a document's text is text: a special token spelled in it is its characters; added tokens
   * that are not special are still matched */
  specials = false;
  ENC_IS(b, c, "a<|endoftext|>b", 'a', '<', '|', 'e', 'n', 'd', 'o', 'f', 't', 'e', 'x', 't', '|',
         '>', 'b');
  ENC_IS(b, c, "a  <x>  b", 'a', 301, 'b');
  specials = true;
  const uint8_t *p;
  T_EQ_INT(trainer__bpe_piece(b, 259, &p), 2);
  T_CHECK(!memcmp(p, " w", 2));
  T_EQ_INT(trainer__bpe_piece(b, 300, &p), 0); /* special */
  T_EQ_INT(trainer__bpe_piece(b, 301, &p), 3);
  T_EQ_INT(trainer__bpe_piece(b, 299, &p), 0); /* a hole */
  T_EQ_INT(trainer__bpe_piece(b, 5000, &p), 0);
  /* written back and read again: the same ids; then with ignore_merges */
  json_t *back = trainer__bpe_to_json(b);
  T_CHECK(back != NULL);
  tok_bpe *b2 = back ? load_small(back, &base, NULL, &err) : NULL;
  T_CHECK_MSG(b2 != NULL, "%s", err.msg);
  if (b2) ENC_IS(b2, c, "hello wow <x> a", 258, 'o', 259, 'o', 'w', 301, 'a');
  json_object_set_new(json_object_get(back, "model"), "ignore_merges", json_true());
  tok_bpe *b3 = back ? load_small(back, &base, NULL, &err) : NULL;
  if (b3) ENC_IS(b3, c, "wow hello", 260, ' ', 258, 'o'); /* the same cache: it empties */
  trainer__bpe_destroy(b3);
  trainer__bpe_destroy(b2);
  json_decref(back);
  /* tags: after every other id, not in base, never matched in text */
  json_array_append_new(
      json_object_get(root, "added_tokens"),
      json_pack("{s:i, s:s, s:b}", "id", 303, "content", "<|lang:eng|>", "special", 1));
  tok_bpe *b4 = load_small(root, &base, &tags, &err);
  T_CHECK_MSG(b4 != NULL, "%s", err.msg);
  T_EQ_INT(base, 303);
  T_EQ_INT(tok_tag_of(&tags, "eng"), 303);
  trainer__bpe_destroy(b4);
  tok_cache_destroy(c);
  trainer__bpe_destroy(b);
  json_decref(root);
}

/* ---------------------------------------------------------------- refusals */

static void refused(const char *edit, const char *want)
{
  json_t *root = small_json();
  json_error_t je;
  json_t *patch = json_loads(edit, 0, &je);
  T_CHECK_MSG(patch != NULL, "patch %s: %s", edit, je.text);
  /* the patch's keys replace the root's; "model.X" keys replace the model's X */
  const char *k;
  json_t *v;
  json_object_foreach(patch, k, v)
  {
    if (!strncmp(k, "model.", 6)) {
      if (json_is_null(v))
        json_object_del(json_object_get(root, "model"), k + 6);
      else
        json_object_set(json_object_get(root, "model"), k + 6, v);
    } else {
      json_object_set(root, k, v);
    }
  }
  mn_error err = {0};
  uint32_t base;
  tok_bpe *b = load_small(root, &base, NULL, &err);
  T_CHECK_MSG(b == NULL, "%s was not refused", edit);
  T_CHECK_MSG(strstr(err.msg, "small.json: ") == err.msg && strstr(err.msg, want),
              "%s: \"%s\", want \"%s\"", edit, err.msg, want);
  trainer__bpe_destroy(b);
  json_decref(patch);
  json_decref(root);
}

static void test_refusals(void)
{
  refused("{\"model.type\": \"Unigram\"}", "model.type \"Unigram\" is not supported");
  refused("{\"model.byte_fallback\": true}", "model.byte_fallback");
  refused("{\"model.dropout\": 0.1}", "model.dropout");
  refused("{\"model.continuing_subword_prefix\": \"##\"}", "model.continuing_subword_prefix");
  refused("{\"model.merges\": null}", "model.merges is missing");
  refused("{\"model.merges\": {\"a\": 1}}", "model.merges is missing or not an array");
  refused("{\"model.merges\": [\"h e\", 7]}", "model.merges[1]");
  refused("{\"model.merges\": [\"h e x\"]}", "model.merges[0]");
  refused("{\"model.merges\": [[\"h\", \"q\"]]}", "model.merges[0]: \"hq\" is not in the vocab");
  refused("{\"model.vocab\": {\"a\": 0}}", "no token for byte");
  refused("{\"normalizer\": {\"type\": \"NFKC\"}}", "normalizer.type \"NFKC\"");
  refused("{\"pre_tokenizer\": {\"type\": \"Metaspace\"}}", "pre_tokenizer Metaspace");
  refused("{\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true}}",
          "add_prefix_space must be false");
  refused("{\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", "
          "\"pattern\": {\"Regex\": \"\\\\w+\"}, \"behavior\": \"Isolated\", \"invert\": false}, "
          "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": false}]}}",
          "pattern.Regex \"\\w+\" is not supported");
  refused("{\"decoder\": null}", "decoder null");
  refused("{\"post_processor\": {\"type\": \"BertProcessing\"}}", "post_processor.type");
  refused("{\"truncation\": {\"max_length\": 5}}", "truncation");
  refused("{\"added_tokens\": [{\"id\": 300, \"content\": \"<s>\", \"special\": true}]}",
          "no end of text");
  refused("{\"added_tokens\": [{\"id\": 300, \"content\": \"</s>\", \"single_word\": true}]}",
          "added_tokens[0].single_word");
  refused("{\"added_tokens\": [{\"id\": 300, \"content\": \"</s>\"}, {\"id\": 100, \"content\": "
          "\"<|lang:eng|>\"}]}",
          "not after every other id");
}

int main(void)
{
  T_RUN(test_byte_map);
  T_RUN(test_split);
  T_RUN(test_nfc);
  T_RUN(test_small);
  T_RUN(test_refusals);
  return T_DONE();
}
