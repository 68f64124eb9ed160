/*
 * bpe.c -- byte-level BPE as Hugging Face's tokenizer.json describes it.
 *
 * Not written yet: every tokenizer.json is refused, so nothing reads one in part.
 */
#include "trainer/trainer_int.h"

const char *const trainer__split_regex[TOK_SPLIT_COUNT] = {""};

size_t trainer__split_next(tok_split p, const uint8_t *text, size_t n)
{
  (void)p, (void)text;
  return n;
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the rest are
 * numbered from U+0100 in byte order */
uint32_t trainer__byte_char(uint8_t b)
{
  if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) return b;
  uint32_t k = 0;
  for (int c = 0; c < b; c++)
    if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE)) k++;
  return 256 + k;
}

mn_status trainer__bpe_from_json(json_t *root, const char *name, tok_bpe **out, uint32_t *base,
                                 uint32_t *eot, tok_tags *tags, mn_error *err)
{
  (void)root, (void)base, (void)eot, (void)tags;
  *out = NULL;
  return mn_error_set(err, MN_ERR_INPUT, "%s: byte-level BPE is not supported yet", name);
}

void trainer__bpe_destroy(tok_bpe *b)
{
  (void)b;
}

mn_status trainer__bpe_encode(const tok_bpe *b, tok_cache *c, const char *text, size_t n,
                              uint32_t **ids, size_t *len, size_t *cap, mn_error *err)
{
  (void)b, (void)c, (void)text, (void)n, (void)ids, (void)len, (void)cap;
  return mn_error_set(err, MN_ERR_INPUT, "byte-level BPE is not supported yet");
}

size_t trainer__bpe_piece(const tok_bpe *b, uint32_t id, const uint8_t **bytes)
{
  (void)b, (void)id;
  *bytes = NULL;
  return 0;
}

json_t *trainer__bpe_to_json(const tok_bpe *b)
{
  (void)b;
  return NULL;
}

mn_status tok_cache_create(tok_cache **out, mn_error *err)
{
  (void)err;
  *out = NULL;
  return MN_OK;
}

void tok_cache_destroy(tok_cache *c)
{
  (void)c;
}
