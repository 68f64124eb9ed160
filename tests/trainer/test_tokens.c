/*
 * test_tokens.c -- the pipeline with a tokenizer other than bytes: a tiny byte-level BPE
 * written by hand, through shards, checkpoints, scoring and export, and the byte
 * tokenizer's own tokenizer.json and version 1 shards.
 */
#include "tests/test.h"
#include "trainer/bpe_int.h"
#include "trainer/trainer_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

/* tiny_json -- bytes 0-255, <|endoftext|> 256, "ab" 257, "abab" 258; GPT-2's split */
static char *tiny_json(void)
{
  json_t *vocab = json_object();
  for (int b = 0; b < 256; b++) {
    char ch[4] = {0};
    trainer__bpe_utf8_put(trainer__byte_char((uint8_t)b), (uint8_t *)ch);
    json_object_set_new(vocab, ch, json_integer(b));
  }
  json_object_set_new(vocab, "ab", json_integer(257));
  json_object_set_new(vocab, "abab", json_integer(258));
  json_t *j = json_pack(
      "{s:{s:s, s:b, s:b, s:b}, s:n, s:{s:s, s:b, s:b, s:b}, s:{s:s, s:o, s:[s, [s, s]]}, "
      "s:[{s:i, s:s, s:b, s:b, s:b, s:b, s:b}]}",
      "pre_tokenizer", "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 0, "use_regex",
      1, "normalizer", "decoder", "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 0,
      "use_regex", 1, "model", "type", "BPE", "vocab", vocab, "merges", "a b", "ab", "ab",
      "added_tokens", "id", 256, "content", "<|endoftext|>", "single_word", 0, "lstrip", 0,
      "rstrip", 0, "normalized", 0, "special", 1);
  char *s = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  return s;
}

static tokenizer *tiny(void)
{
  char *text = tiny_json();
  tokenizer *t = NULL;
  mn_error err = {0};
  T_EQ_INT(tok_from_json(text, strlen(text), "tiny.json", &t, NULL, &err), MN_OK);
  free(text);
  return t;
}

static void test_encode_decode(void)
{
  tokenizer *t = tiny();
  mn_error err = {0};
  T_EQ_STR(tok_kind(t), "bpe");
  T_EQ_INT(tok_base(t), 259);
  T_EQ_INT(tok_eot(t), 256);
  uint32_t *ids = NULL;
  size_t n = 0, cap = 0;
  T_EQ_INT(tok_encode(t, NULL, "abab abab", 9, &ids, &n, &cap, &err), MN_OK);
  T_EQ_INT(n, 3);
  T_EQ_INT(ids[0], 258);
  T_EQ_INT(ids[1], 32); /* the space: GPT-2's split puts it before the word, no merge */
  T_EQ_INT(ids[2], 258);
  const uint8_t *p;
  T_EQ_INT(tok_piece(t, 258, &p), 4);
  T_CHECK(memcmp(p, "abab", 4) == 0);
  T_EQ_INT(tok_piece(t, 256, &p), 0); /* eot: no text */
  mn_buf out;
  mn_buf_init(&out, 1 << 20);
  T_EQ_INT(tok_decode(t, ids, n, &out, &err), MN_OK);
  T_EQ_INT(out.len, 9);
  T_CHECK(memcmp(out.data, "abab abab", 9) == 0);
  mn_buf_fini(&out);
  free(ids);
  tok_destroy(t);
}

/* the byte tokenizer's tokenizer.json is a BPE without merges with the same ids */
static void test_bytes_json(void)
{
  tokenizer *b = NULL, *back = NULL;
  mn_error err = {0};
  tok_tags tags = {0}, got;
  T_EQ_INT(tok_create_bytes(&b, &err), MN_OK);
  T_EQ_INT(tok_tags_add(&tags, "spa", 257, &err), MN_OK);
  T_EQ_INT(tok_tags_add(&tags, "tha", 258, &err), MN_OK);
  char *json = NULL;
  T_EQ_INT(tok_to_json(b, &tags, &json, &err), MN_OK);
  T_EQ_INT(tok_from_json(json, strlen(json), "bytes.json", &back, &got, &err), MN_OK);
  T_EQ_INT(tok_base(back), 257);
  T_EQ_INT(tok_eot(back), 256);
  T_EQ_INT(got.n, 2);
  T_EQ_INT(tok_tag_of(&got, "tha"), 258);
  const char text[] = "h\xC3\xA9 \xE0\xB8\x81!";
  uint32_t *x = NULL, *y = NULL;
  size_t nx = 0, ny = 0, cx = 0, cy = 0;
  T_EQ_INT(tok_encode(b, NULL, text, sizeof text - 1, &x, &nx, &cx, &err), MN_OK);
  T_EQ_INT(tok_encode(back, NULL, text, sizeof text - 1, &y, &ny, &cy, &err), MN_OK);
  T_EQ_INT(nx, sizeof text - 1);
  T_EQ_INT(ny, nx);
  T_CHECK(memcmp(x, y, nx * sizeof *x) == 0);
  free(x), free(y), free(json);
  tok_destroy(back);
  /* a gap in the tags' numbering is held by placeholders, so Hugging Face counts every tag
   * where it is */
  T_EQ_INT(tok_tags_add(&tags, "kat", 261, &err), MN_OK);
  T_EQ_INT(tok_to_json(b, &tags, &json, &err), MN_OK);
  T_CONTAINS(json, "<|unused:259|>");
  T_CONTAINS(json, "<|unused:260|>");
  T_EQ_INT(tok_from_json(json, strlen(json), "gap.json", &back, &got, &err), MN_OK);
  T_EQ_INT(tok_base(back), 257);
  T_EQ_INT(got.n, 3);
  T_EQ_INT(tok_tag_of(&got, "kat"), 261);
  free(json);
  tok_destroy(b), tok_destroy(back);
}

static void test_rebase(void)
{
  tok_tags tags = {0};
  mn_error err = {0};
  T_EQ_INT(tok_tags_add(&tags, "spa", 257, &err), MN_OK);
  T_EQ_INT(tok_tags_add(&tags, "tha", 260, &err), MN_OK);
  T_EQ_INT(tok_tags_rebase(&tags, TOK_FIRST_TAG, 50257, &err), MN_OK);
  T_EQ_INT(tok_tag_of(&tags, "spa"), 50257);
  T_EQ_INT(tok_tag_of(&tags, "tha"), 50260);
  T_EQ_INT(tok_tags_rebase(&tags, 50258, 257, &err), MN_ERR_INPUT); /* spa would fall below */
  T_EQ_INT(tok_tag_of(&tags, "spa"), 50257);                        /* unchanged */
}

/* write_shard -- one document "abab abab" in spa (tag base + 0) by tok */
static void write_shard(const tokenizer *tok, const char *path)
{
  tok_tags tags = {0};
  mn_error err = {0};
  shard_builder *b = NULL;
  T_EQ_INT(tok_tags_add(&tags, "spa", (int)tok_base(tok), &err), MN_OK);
  T_EQ_INT(shard_builder_create(tok, &tags, &b, &err), MN_OK);
  T_EQ_INT(shard_builder_add(b, "spa", "abab abab", 9, &err), MN_OK);
  T_EQ_INT(shard_builder_add(b, "kat", "x", 1, &err), MN_ERR_INPUT); /* no tag: refused */
  T_CONTAINS(err.msg, "\"kat\" has no tag");
  T_EQ_INT(shard_builder_write(b, path, &err), MN_OK);
  shard_builder_destroy(b);
}

/* a shard, a checkpoint, its score and its export, with the tiny BPE */
static void test_pipeline(void)
{
  tokenizer *tok = tiny(), *bytes = NULL, *back = NULL;
  mn_error err = {0};
  char sh[128], bsh[128], ck[128], hf[128], path[256];
  snprintf(sh, sizeof sh, "%s/bpe.shard", dir);
  snprintf(bsh, sizeof bsh, "%s/bytes.shard", dir);
  snprintf(ck, sizeof ck, "%s/model.safetensors", dir);
  snprintf(hf, sizeof hf, "%s/hf", dir);
  write_shard(tok, sh);
  T_EQ_INT(tok_create_bytes(&bytes, &err), MN_OK);
  write_shard(bytes, bsh);
  shard s, sb;
  T_EQ_INT(shard_read(sh, &s, &err), MN_OK);
  T_EQ_INT(shard_read(bsh, &sb, &err), MN_OK);
  T_EQ_INT(s.base, 259);
  T_EQ_INT(s.eot, 256);
  T_EQ_STR(s.tok_sha256, tok_sha256(tok));
  T_EQ_INT(s.ntokens, 5); /* tag, abab, space, abab, eot */
  T_EQ_INT(s.tokens[0], 259);
  T_EQ_INT(s.tokens[1], 258);
  T_EQ_INT(s.tokens[4], 256);

  /* a model of the tiny tokenizer: its ids and two tag slots */
  gpt_config c = {.max_seq_len = 8,
                  .vocab_size = 261,
                  .padded_vocab = 264,
                  .n_layer = 1,
                  .n_head = 2,
                  .n_embd = 16};
  gpt *m = NULL;
  T_EQ_INT(gpt_create(&c, 1, 8, 7, kernels_cpu(), &m, &err), MN_OK);
  ckpt_meta meta = {.tok = tok, .step = 1};
  T_EQ_INT(tok_tags_add(&meta.tags, "spa", 259, &err), MN_OK);
  T_EQ_INT(ckpt_save(ck, m, &meta, &err), MN_OK);
  ckpt_meta rm;
  T_EQ_INT(ckpt_read_meta(ck, &rm, &err), MN_OK);
  T_EQ_STR(rm.tok_sha256, tok_sha256(tok));
  tok_tags tags;
  T_EQ_INT(tok_load(ck, &back, &tags, &err), MN_OK);
  T_EQ_STR(tok_sha256(back), tok_sha256(tok));
  T_EQ_INT(tok_tag_of(&tags, "spa"), 259);
  tok_destroy(back);
  back = NULL;
  T_EQ_INT(shard_fits(&s, sh, &rm, ck, &err), MN_OK);
  T_EQ_INT(shard_fits(&sb, bsh, &rm, ck, &err), MN_ERR_INPUT); /* the byte tokenizer's ids */
  T_CONTAINS(err.msg, "another tokenizer");
  char id16[17];
  snprintf(id16, sizeof id16, "%s", tok_sha256(tok)); /* enough of each identity to differ */
  T_CONTAINS(err.msg, id16);
  snprintf(id16, sizeof id16, "%s", sb.tok_sha256);
  T_CONTAINS(err.msg, id16);

  /* a forged header: the byte shard given the tiny tokenizer's identity is corrupted, not a
   * shard of the tiny tokenizer (the checksum covers the tokenizer the header names) */
  mn_buf fb;
  mn_buf_init(&fb, 1 << 20);
  T_EQ_INT(mn_buf_read_file(&fb, bsh, &err), MN_OK);
  T_EQ_INT(mn_hex_decode(tok_sha256(tok), (uint8_t *)fb.data + 64, 32), 32);
  snprintf(path, sizeof path, "%s/forged.shard", dir);
  T_EQ_INT(mn_write_file_atomic(path, fb.data, fb.len, 0644, &err), MN_OK);
  shard sf;
  T_EQ_INT(shard_read(path, &sf, &err), MN_ERR_CORRUPT);
  T_CONTAINS(err.msg, "corrupted");
  mn_put_le32((uint8_t *)fb.data + 96, 255); /* another end of text, the sha restored */
  T_EQ_INT(mn_hex_decode(sb.tok_sha256, (uint8_t *)fb.data + 64, 32), 32);
  T_EQ_INT(mn_write_file_atomic(path, fb.data, fb.len, 0644, &err), MN_OK);
  T_EQ_INT(shard_read(path, &sf, &err), MN_ERR_CORRUPT);
  mn_buf_fini(&fb);

  /* bits per byte: the text tokens' summed NLL (eot not counted) over the text's bytes */
  evalset_item it = {.kind = EVAL_HELDOUT, .lang = "spa", .id = "x", .text = "abab abab", .len = 9};
  evalset set = {.items = &it, .n = 1};
  double bits = -1;
  T_EQ_INT(evalset_score(m, tok, 1, 8, &meta.tags, &set, &bits, &err), MN_OK);
  int32_t x[4] = {259, 258, 32, 258}, y[4] = {258, 32, 258, 256};
  gpt_forward(m, x, y, 1, 4);
  const float *l = gpt_losses(m);
  double want = ((double)l[0] + (double)l[1] + (double)l[2]) / log(2.0);
  T_CHECK_MSG(fabs(bits - want) < 1e-6 * want, "bits %.12f, by hand %.12f", bits, want);
  double acc = 0, *pa = &acc;
  int64_t nb = 0, *pn = &nb;
  int len = 4;
  evalset_score_rows(m, tok, x, y, 1, 4, &len, &pa, &pn);
  T_EQ_INT(nb, 9);                          /* abab, space, abab: the bytes they stand for */
  T_CHECK(fabs(acc - want) < 1e-12 * want); /* the same forward */

  /* export: tokenizer.json loads back as the same tokenizer with the tags */
  T_EQ_INT(export_hf(ck, hf, &err), MN_OK);
  snprintf(path, sizeof path, "%s/tokenizer.json", hf);
  T_EQ_INT(tok_load(path, &back, &tags, &err), MN_OK);
  T_EQ_STR(tok_sha256(back), tok_sha256(tok));
  T_EQ_INT(tok_tag_of(&tags, "spa"), 259);
  tok_destroy(back);
  back = NULL;
  snprintf(path, sizeof path, "%s/tokenizer_config.json", hf);
  json_t *tc = json_load_file(path, 0, NULL);
  T_EQ_STR(json_string_value(json_object_get(tc, "eos_token")), "<|endoftext|>");
  json_decref(tc);
  snprintf(path, sizeof path, "%s/config.json", hf);
  json_t *cfg = json_load_file(path, 0, NULL);
  T_EQ_INT(json_integer_value(json_object_get(cfg, "eos_token_id")), 256);
  json_decref(cfg);

  /* a checkpoint whose tokenizer was changed is refused, not read as another tokenizer */
  FILE *f = fopen(ck, "r+b");
  T_CHECK(f != NULL);
  char *buf = malloc(1 << 20);
  size_t got = fread(buf, 1, 1 << 20, f);
  char *hit = NULL;
  for (size_t i = 0; i + 8 < got && !hit; i++)
    if (memcmp(buf + i, "\\\"abab\\\"", 8) == 0) hit = buf + i;
  T_CHECK(hit != NULL);
  if (hit) {
    hit[5] = 'c'; /* "abab" -> "abac" */
    fseek(f, hit - buf, SEEK_SET);
    fwrite(hit, 1, 8, f);
  }
  fclose(f);
  free(buf);
  T_CHECK(tok_load(ck, &back, NULL, &err) != MN_OK);
  T_CHECK(back == NULL);

  gpt_destroy(m);
  shard_fini(&s), shard_fini(&sb);
  tok_destroy(tok), tok_destroy(bytes);
}

/* a version 1 shard (the byte tokenizer's, before tokenizers were named) still reads */
static void test_shard_v1(void)
{
  uint8_t f[64 + 32 + 8] = {0};
  uint16_t tok[4] = {257, 'h', 'i', 256};
  memcpy(f, "MNSHARD", 8);
  mn_put_le32(f + 8, 1);
  mn_put_le32(f + 12, 2);
  mn_put_le32(f + 16, 1);
  mn_put_le64(f + 24, 4);
  uint8_t le[8];
  for (int i = 0; i < 4; i++)
    le[2 * i] = (uint8_t)tok[i], le[2 * i + 1] = (uint8_t)(tok[i] >> 8);
  mn_error err = {0};
  char hex[65];
  T_EQ_INT(mn_sha256_hex(le, 8, hex, &err), MN_OK);
  T_EQ_INT(mn_hex_decode(hex, f + 32, 32), 32);
  memcpy(f + 64, "spa", 3);
  mn_put_le32(f + 64 + 8, 257);
  mn_put_le32(f + 64 + 12, 1);
  mn_put_le64(f + 64 + 24, 4);
  memcpy(f + 96, le, 8);
  char path[128];
  snprintf(path, sizeof path, "%s/v1.shard", dir);
  T_EQ_INT(mn_write_file_atomic(path, f, sizeof f, 0644, &err), MN_OK);
  shard s;
  T_EQ_INT(shard_read(path, &s, &err), MN_OK);
  T_EQ_INT(s.base, 257);
  T_EQ_INT(s.eot, 256);
  T_EQ_INT(s.tokens[1], 'h');
  char bytes_sha[65];
  T_EQ_INT(trainer__bytes_sha256(bytes_sha, &err), MN_OK);
  T_EQ_STR(s.tok_sha256, bytes_sha);
  T_EQ_STR(s.sha256, hex); /* version 1: the identity is the tokens' SHA-256 */
  shard_fini(&s);
  /* the same document in version 2: its identity covers the tokenizer too, so it differs */
  tokenizer *bytes = NULL;
  shard_builder *b = NULL;
  tok_tags tags = {0};
  T_EQ_INT(tok_create_bytes(&bytes, &err), MN_OK);
  T_EQ_INT(tok_tags_add(&tags, "spa", 257, &err), MN_OK);
  T_EQ_INT(shard_builder_create(bytes, &tags, &b, &err), MN_OK);
  T_EQ_INT(shard_builder_add(b, "spa", "hi", 2, &err), MN_OK);
  snprintf(path, sizeof path, "%s/v2.shard", dir);
  T_EQ_INT(shard_builder_write(b, path, &err), MN_OK);
  shard_builder_destroy(b);
  T_EQ_INT(shard_read(path, &s, &err), MN_OK);
  T_EQ_INT(s.ntokens, 4);
  T_CHECK(memcmp(s.tokens, (uint32_t[]){257, 'h', 'i', 256}, 4 * sizeof(uint32_t)) == 0);
  T_CHECK(strcmp(s.sha256, hex) != 0);
  /* ... and is what trainer.h says: base, tokenizer sha, eot, reserved, then the tokens */
  uint8_t cover[4 + 40 + 8] = {0};
  mn_put_le32(cover, 257);
  T_EQ_INT(mn_hex_decode(bytes_sha, cover + 4, 32), 32);
  mn_put_le32(cover + 36, 256);
  memcpy(cover + 44, le, 8);
  T_EQ_INT(mn_sha256_hex(cover, sizeof cover, hex, &err), MN_OK);
  T_EQ_STR(s.sha256, hex);
  shard_fini(&s);
  tok_destroy(bytes);
}

int main(void)
{
  snprintf(dir, sizeof dir, "/tmp/mnemo-test-tokens-XXXXXX");
  T_CHECK(mkdtemp(dir) != NULL);
  T_RUN(test_encode_decode);
  T_RUN(test_bytes_json);
  T_RUN(test_rebase);
  T_RUN(test_pipeline);
  T_RUN(test_shard_v1);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return T_DONE();
}
