/*
 * test_bpe_train.c -- tok_bpe_train: the merges of a small text worked out by hand (ties to
 * the pair of smaller ids), the balance changing which language's pair wins, held-out
 * records never learned from, the tokenizer.json's layout (bytes in byte order, eot 256,
 * tags after the merges in the database's order), a second run byte-identical, and every
 * refusal (vocab too small, no training text, a bad record by file:line, tags with a gap);
 * the parity loop on two scripts (it lowers the max dev premium, a second run is the same, a
 * bad dev set is refused by file:line), and its dev texts left out of the training counts
 * (and learned from after the loop unless dev_out); merges that keep to character boundaries.
 */
#include "tests/test.h"
#include "trainer/trainer.h"

#include <jansson.h>
#include <unistd.h>

static char dir[64];
static tok_train_stats st;

/* put -- a JSONL file of `text` in dir, its path in path */
static void put(const char *name, const char *text, char *path, size_t n)
{
  snprintf(path, n, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(1);
  }
}

/* train -- tok_bpe_train on one file; the parsed tokenizer.json (NULL on failure, err set) */
static json_t *train(const char *path, const tok_train_options *o, char **text, mn_error *err)
{
  char *json = NULL;
  const char *paths[] = {path};
  if (tok_bpe_train(paths, 1, o, &json, &st, err) != MN_OK) {
    T_CHECK(json == NULL);
    return NULL;
  }
  json_t *root = json_loads(json, 0, NULL);
  T_CHECK(root != NULL);
  if (text)
    *text = json;
  else
    free(json);
  return root;
}

static const char *merge_part(json_t *root, size_t i, size_t k)
{
  return json_string_value(json_array_get(
      json_array_get(json_object_get(json_object_get(root, "model"), "merges"), i), k));
}

static long long vocab_id(json_t *root, const char *tok)
{
  json_t *v = json_object_get(json_object_get(json_object_get(root, "model"), "vocab"), tok);
  return v ? (long long)json_integer_value(v) : -1;
}

static void test_by_hand(void)
{
  char p[128];
  mn_error err = {0};
  put("hand.jsonl", "{\"lang\": \"xxx\", \"text\": \"aaabdaaabac\"}\n", p, sizeof p);
  tok_train_options o = {.vocab = 261, .all_splits = true};
  json_t *root = train(p, &o, NULL, &err);
  T_CHECK_MSG(root != NULL, "%s", err.msg);
  if (!root) return;
  /* aa (4), then ab and (aa, a) tie at 2: ab has the smaller ids; then (aa, ab) at 2 */
  T_EQ_STR(merge_part(root, 0, 0), "a");
  T_EQ_STR(merge_part(root, 0, 1), "a");
  T_EQ_STR(merge_part(root, 1, 0), "a");
  T_EQ_STR(merge_part(root, 1, 1), "b");
  T_EQ_STR(merge_part(root, 2, 0), "aa");
  T_EQ_STR(merge_part(root, 2, 1), "ab");
  T_EQ_INT(st.merges, 3);
  T_EQ_INT(st.vocab, 261);
  T_EQ_INT(vocab_id(root, "aa"), 257);
  T_EQ_INT(vocab_id(root, "aaab"), 259);
  /* the bytes in byte order, each its GPT-2 character; eot at 256 */
  T_EQ_INT(vocab_id(root, "\xc4\x80"), 0);  /* U+0100 is byte 0 */
  T_EQ_INT(vocab_id(root, "\xc4\xa0"), 32); /* U+0120 is the space */
  T_EQ_INT(vocab_id(root, "a"), 97);
  T_EQ_INT(vocab_id(root, "<|endoftext|>"), 256);
  json_t *added = json_object_get(root, "added_tokens");
  T_EQ_INT(json_array_size(added), 2);
  T_EQ_STR(json_string_value(json_object_get(json_array_get(added, 1), "content")), "<|lang:xxx|>");
  T_EQ_INT(json_integer_value(json_object_get(json_array_get(added, 1), "id")), 260);
  T_CHECK(json_is_true(json_object_get(json_array_get(added, 1), "special")));
  json_decref(root);
}

/* lang A: 90 x "rs" and 90 x "z" (a piece without pairs); lang B: 10 x "pq".  By the data, rs wins;
 * balanced (each language half the characters), pq weighs 10 / 20 against rs's 90 / 270. */
static void test_balance(void)
{
  char p[128];
  mn_error err = {0};
  mn_buf b;
  mn_buf_init(&b, 1 << 20);
  for (int i = 0; i < 90; i++)
    T_CHECK(mn_buf_appendf(&b, &err,
                           "{\"lang\": \"aaa\", \"text\": \"rs\"}\n"
                           "{\"lang\": \"aaa\", \"text\": \"z\"}\n") == MN_OK);
  for (int i = 0; i < 10; i++)
    T_CHECK(mn_buf_appendf(&b, &err, "{\"lang\": \"bbb\", \"text\": \"pq\"}\n") == MN_OK);
  T_CHECK(mn_buf_appendf(&b, &err, "%c", 0) == MN_OK);
  put("balance.jsonl", b.data, p, sizeof p);
  mn_buf_fini(&b);
  tok_train_options o = {.vocab = 260, .all_splits = true, .balance = TOK_BALANCE_NONE};
  json_t *root = train(p, &o, NULL, &err);
  T_CHECK_MSG(root != NULL, "%s", err.msg);
  if (root) T_EQ_STR(merge_part(root, 0, 0), "r");
  json_decref(root);
  o.balance = TOK_BALANCE_TEMPERATURE; /* alpha 0: uniform */
  root = train(p, &o, NULL, &err);
  T_CHECK_MSG(root != NULL, "%s", err.msg);
  if (root) T_EQ_STR(merge_part(root, 0, 0), "p");
  T_CHECK(st.nlangs == 2 && st.lang[0].share > 0.49 && st.lang[0].share < 0.51);
  json_decref(root);
  o.balance = TOK_BALANCE_UNIMAX; /* epochs 100: B is not capped, so uniform too */
  o.epochs = 100;
  root = train(p, &o, NULL, &err);
  T_CHECK_MSG(root != NULL, "%s", err.msg);
  if (root) T_EQ_STR(merge_part(root, 0, 0), "p");
  json_decref(root);
  o.epochs = 1; /* nobody repeats: the data's mix again */
  root = train(p, &o, NULL, &err);
  T_CHECK_MSG(root != NULL, "%s", err.msg);
  if (root) T_EQ_STR(merge_part(root, 0, 0), "r");
  json_decref(root);
}

static void test_heldout_and_tags(void)
{
  char p[128];
  mn_error err = {0};
  /* held-out "uv" is the most frequent pair; only "xy" may be learned */
  put("split.jsonl",
      "{\"lang\": \"zzz\", \"text\": \"xy\", \"split\": \"train\"}\n"
      "{\"lang\": \"zzz\", \"text\": \"uv uv uv uv\", \"split\": \"heldout\"}\n"
      "{\"lang\": \"aaa\", \"text\": \"uv uv uv\", \"split\": \"heldout\"}\n",
      p, sizeof p);
  tok_tags tags = {0};
  T_CHECK(tok_tags_add(&tags, "zzz", 257, &err) == MN_OK);
  T_CHECK(tok_tags_add(&tags, "aaa", 258, &err) == MN_OK);
  tok_train_options o = {.vocab = 300, .tags = &tags};
  char *text1 = NULL, *text2 = NULL;
  json_t *root = train(p, &o, &text1, &err);
  T_CHECK_MSG(root != NULL, "%s", err.msg);
  if (!root) return;
  T_EQ_INT(st.merges, 1); /* the pairs ran out */
  T_EQ_INT(st.records, 1);
  T_EQ_INT(st.skipped, 2);
  T_EQ_STR(merge_part(root, 0, 0), "x");
  T_EQ_INT(vocab_id(root, "uv"), -1);
  json_t *added = json_object_get(root, "added_tokens");
  T_EQ_STR(json_string_value(json_object_get(json_array_get(added, 1), "content")), "<|lang:zzz|>");
  T_EQ_INT(json_integer_value(json_object_get(json_array_get(added, 1), "id")), 258);
  T_EQ_STR(json_string_value(json_object_get(json_array_get(added, 2), "content")), "<|lang:aaa|>");
  T_EQ_INT(json_integer_value(json_object_get(json_array_get(added, 2), "id")), 259);
  T_EQ_INT(st.vocab, 260);
  json_decref(root);
  /* a second run is the same file */
  root = train(p, &o, &text2, &err);
  T_CHECK(text1 && text2 && strcmp(text1, text2) == 0);
  json_decref(root);
  free(text1);
  free(text2);
  /* a gap in the tags is refused */
  tok_tags gap = {0};
  T_CHECK(tok_tags_add(&gap, "zzz", 257, &err) == MN_OK);
  T_CHECK(tok_tags_add(&gap, "aaa", 259, &err) == MN_OK);
  o.tags = &gap;
  T_CHECK(train(p, &o, NULL, &err) == NULL);
  T_EQ_INT(err.code, MN_ERR_INPUT);
  T_CONTAINS(err.msg, "consecutively");
}

static void test_refusals(void)
{
  char p[128];
  mn_error err = {0};
  put("ok.jsonl",
      "{\"lang\": \"aaa\", \"text\": \"hello\"}\n{\"lang\": \"bbb\", \"text\": \"x\"}\n", p,
      sizeof p);
  tok_train_options o = {.vocab = 258, .all_splits = true}; /* 2 tags need 259 */
  T_CHECK(train(p, &o, NULL, &err) == NULL);
  T_EQ_INT(err.code, MN_ERR_INPUT);
  T_CONTAINS(err.msg, "at least 259");
  o.vocab = 259; /* just room: no merges */
  json_t *root = train(p, &o, NULL, &err);
  T_CHECK_MSG(root != NULL, "%s", err.msg);
  T_EQ_INT(st.merges, 0);
  json_decref(root);
  put("bad.jsonl", "{\"lang\": \"aaa\", \"text\": \"hello\"}\n{\"lang\": \"aaa\"}\n", p, sizeof p);
  o.vocab = 1000;
  T_CHECK(train(p, &o, NULL, &err) == NULL);
  T_EQ_INT(err.code, MN_ERR_INPUT);
  T_CONTAINS(err.msg, "bad.jsonl:2");
  put("broken.jsonl", "{\"lang\": \"aaa\", \"text\": \"hello\"}\n\n{\"lang\": \n", p, sizeof p);
  T_CHECK(train(p, &o, NULL, &err) == NULL);
  T_CONTAINS(err.msg, "broken.jsonl:3");
  put("held.jsonl", "{\"lang\": \"aaa\", \"text\": \"hello\", \"split\": \"heldout\"}\n", p,
      sizeof p);
  o.all_splits = false;
  T_CHECK(train(p, &o, NULL, &err) == NULL);
  T_CONTAINS(err.msg, "no training text");
  snprintf(p, sizeof p, "%s/absent.jsonl", dir);
  T_CHECK(train(p, &o, NULL, &err) == NULL);
  T_EQ_INT(err.code, MN_ERR_IO);
}

/* lang aaa (Latin) has ten times the text of bbb (Greek, two bytes a letter); by the data's
 * mix every merge goes to aaa, so bbb's dev premium is its bytes over aaa's tokens.  The
 * parity loop moves weight to bbb until bbb's pairs win merges. */
static void test_parity(void)
{
  char p[128], dev[128];
  mn_error err = {0};
  mn_buf b;
  mn_buf_init(&b, 1 << 20);
  for (int i = 0; i < 50; i++)
    T_CHECK(mn_buf_appendf(&b, &err,
                           "{\"lang\": \"aaa\", \"text\": \"the quick brown fox jumps\"}\n") ==
            MN_OK);
  for (int i = 0; i < 5; i++)
    T_CHECK(mn_buf_appendf(&b, &err,
                           "{\"lang\": \"bbb\", \"text\": \"αβγδ "
                           "εζηθ\"}\n") == MN_OK);
  T_CHECK(mn_buf_appendf(&b, &err, "%c", 0) == MN_OK);
  put("two.jsonl", b.data, p, sizeof p);
  mn_buf_fini(&b);
  put("dev.jsonl",
      "{\"lang\": \"bbb\", \"item\": \"1\", \"text\": \"αβγδ\"}\n"
      "{\"lang\": \"aaa\", \"item\": \"1\", \"text\": \"the quick\"}\n"
      "{\"lang\": \"bbb\", \"item\": \"2\", \"text\": \"εζηθ\"}\n"
      "{\"lang\": \"aaa\", \"item\": \"2\", \"text\": \"brown fox\"}\n"
      "{\"lang\": \"bbb\", \"item\": \"3\", \"text\": \"only bbb has it\"}\n"
      "{\"lang\": \"ccc\", \"item\": \"1\", \"text\": \"not trained\"}\n",
      dev, sizeof dev);
  tok_train_options o = {.vocab = 273,
                         .all_splits = true,
                         .balance = TOK_BALANCE_NONE,
                         .parity = dev,
                         .parity_ref = "aaa",
                         .rounds = 6};
  char *text1 = NULL, *text2 = NULL;
  json_t *root = train(p, &o, &text1, &err);
  T_CHECK_MSG(root != NULL, "%s", err.msg);
  if (!root) return;
  T_EQ_INT(st.nrounds, 6);
  T_EQ_INT(st.dev_langs, 2); /* aaa (the reference, at 1) and bbb; ccc was not trained */
  T_EQ_STR(st.round[0].worst, "bbb");
  /* round 0: 14 merges of aaa; bbb's 16 bytes over aaa's 8 tokens */
  T_CHECK_MSG(st.round[0].max == 2, "round 0's max %g", st.round[0].max);
  T_CHECK(st.best_round > 0);
  /* the kept round: bbb below the reference, so the max is aaa's 1 */
  T_CHECK_MSG(st.round[st.best_round].max == 1, "max %g, round 0 %g", st.round[st.best_round].max,
              st.round[0].max);
  T_EQ_STR(st.lang[0].code, "aaa");
  T_CHECK(st.lang[0].premium == 1 && st.lang[1].premium < 0.5);
  T_CHECK(st.lang[1].share > 0.1); /* by the data, bbb's share was 40 / 1290 characters */
  json_decref(root);
  /* a second run is the same file and the same rounds */
  tok_train_stats first = st;
  root = train(p, &o, &text2, &err);
  T_CHECK(text1 && text2 && strcmp(text1, text2) == 0);
  T_EQ_INT(st.best_round, first.best_round);
  for (int r = 0; r < st.nrounds; r++)
    T_CHECK(st.round[r].max == first.round[r].max && st.round[r].median == first.round[r].median);
  json_decref(root);
  free(text1);
  free(text2);
  /* bad dev sets: refused by file:line before training, nothing returned */
  put("dev-bad.jsonl",
      "{\"lang\": \"aaa\", \"item\": \"1\", \"text\": \"x\"}\n{\"lang\": \"bbb\", "
      "\"text\": \"y\"}\n",
      dev, sizeof dev);
  T_CHECK(train(p, &o, NULL, &err) == NULL);
  T_EQ_INT(err.code, MN_ERR_INPUT);
  T_CONTAINS(err.msg, "dev-bad.jsonl:2");
  put("dev-twice.jsonl",
      "{\"lang\": \"aaa\", \"item\": \"1\", \"text\": \"x\"}\n"
      "{\"lang\": \"aaa\", \"item\": \"2\", \"text\": \"y\"}\n"
      "{\"lang\": \"aaa\", \"item\": \"1\", \"text\": \"z\"}\n",
      dev, sizeof dev);
  T_CHECK(train(p, &o, NULL, &err) == NULL);
  T_CONTAINS(err.msg, "dev-twice.jsonl:3");
  put("dev-empty.jsonl", "{\"lang\": \"aaa\", \"item\": \"1\", \"text\": \"\"}\n", dev, sizeof dev);
  T_CHECK(train(p, &o, NULL, &err) == NULL);
  T_CONTAINS(err.msg, "dev-empty.jsonl:1");
  put("dev-noref.jsonl", "{\"lang\": \"bbb\", \"item\": \"1\", \"text\": \"x\"}\n", dev,
      sizeof dev);
  T_CHECK(train(p, &o, NULL, &err) == NULL);
  T_CONTAINS(err.msg, "reference language aaa");
  put("dev-alone.jsonl",
      "{\"lang\": \"aaa\", \"item\": \"1\", \"text\": \"x\"}\n"
      "{\"lang\": \"bbb\", \"item\": \"9\", \"text\": \"y\"}\n",
      dev, sizeof dev);
  T_CHECK(train(p, &o, NULL, &err) == NULL);
  T_CONTAINS(err.msg, "shares an item with the reference");
  /* the refit reads the text twice: a pipe or a device is refused up front */
  snprintf(dev, sizeof dev, "%s/dev.jsonl", dir);
  T_CHECK(train("/dev/null", &o, NULL, &err) == NULL);
  T_CONTAINS(err.msg, "\"/dev/null\" is not a regular file");
  o.parity = "/nonexistent/dev.jsonl";
  T_CHECK(train(p, &o, NULL, &err) == NULL);
  T_EQ_INT(err.code, MN_ERR_IO);
  o.parity = dev;
  o.rounds = TOK_MAX_ROUNDS + 1;
  T_CHECK(train(p, &o, NULL, &err) == NULL);
  T_CONTAINS(err.msg, "rounds");
}

/* The dev texts are left out of the training counts: aaa's records hold a dev text as a line
 * (and one over two lines); only the dev texts have a 'z', so no merge may hold one.  A dev
 * text inside a line, or another language's, is training text as before. */
static void test_parity_dev_left_out(void)
{
  char p[128], dev[128];
  mn_error err = {0};
  put("leak.jsonl",
      "{\"lang\": \"aaa\", \"text\": \"the cat sat\\nzzz qzz\\nthe cat ran\"}\n"
      "{\"lang\": \"aaa\", \"text\": \"zzz qzz\\nthe dog\"}\n"
      "{\"lang\": \"aaa\", \"text\": \"the hat\\nzyz\\nzyz\\nthe end\"}\n"
      "{\"lang\": \"aaa\", \"text\": \"the mat zzz qzz\"}\n"
      "{\"lang\": \"bbb\", \"text\": \"ooo ppp\\nthe cat sat\"}\n"
      "{\"lang\": \"ccc\", \"text\": \"qqq wqw\"}\n",
      p, sizeof p);
  put("leak-dev.jsonl",
      "{\"lang\": \"aaa\", \"item\": \"1\", \"text\": \"zzz qzz\"}\n"
      "{\"lang\": \"aaa\", \"item\": \"2\", \"text\": \"zyz\\nzyz\"}\n"
      "{\"lang\": \"aaa\", \"item\": \"3\", \"text\": \"the cat\"}\n"
      "{\"lang\": \"bbb\", \"item\": \"1\", \"text\": \"the cat sat\"}\n"
      "{\"lang\": \"ccc\", \"item\": \"1\", \"text\": \"qqq wqw\"}\n",
      dev, sizeof dev);
  tok_train_options o = {.vocab = 400,
                         .all_splits = true,
                         .balance = TOK_BALANCE_NONE,
                         .parity = dev,
                         .parity_ref = "aaa",
                         .rounds = 1,
                         .dev_out = true};
  json_t *root = train(p, &o, NULL, &err);
  T_CHECK_MSG(root != NULL, "%s", err.msg);
  if (!root) return;
  /* aaa: "zzz qzz\n" twice and "zyz\nzyz\n" once, whole lines; not "the mat zzz qzz", whose
   * line is more than the dev text, nor "the cat" (not a whole line) */
  T_EQ_STR(st.lang[0].code, "aaa");
  T_EQ_INT(st.lang[0].dev_records, 2 + 1);
  T_EQ_INT(st.lang[0].dev_texts, 3);
  T_EQ_INT(st.lang[0].dev_bytes, 8 + 8 + 8);
  T_EQ_INT(st.lang[0].bytes, 23 + 7 + 15 + 15);
  /* bbb: its own dev text, a whole last line (no newline after it) */
  T_EQ_INT(st.lang[1].dev_texts, 1);
  T_EQ_INT(st.lang[1].dev_bytes, 11);
  T_EQ_INT(st.lang[1].bytes, 8);
  /* "zy" and "yz" are only in a dev text: no merge may hold them */
  json_t *merges = json_object_get(json_object_get(root, "model"), "merges");
  for (size_t i = 0; i < json_array_size(merges); i++) {
    char m[64];
    snprintf(m, sizeof m, "%s%s", merge_part(root, i, 0), merge_part(root, i, 1));
    T_CHECK_MSG(!strstr(m, "zy") && !strstr(m, "yz"), "merge %zu is %s", i, m);
  }
  T_CHECK_MSG(vocab_id(root, "zyz") < 0, "a dev text's word was learned");
  T_CHECK(!st.refit);
  json_decref(root);
  /* refit (the default): the round's shares learned again from all the text, dev texts too;
   * the stats still say what the loop left out, and bytes are what the result learned from */
  o.dev_out = false;
  root = train(p, &o, NULL, &err);
  T_CHECK_MSG(root != NULL, "%s", err.msg);
  if (!root) return;
  T_CHECK(st.refit);
  T_CHECK_MSG(vocab_id(root, "zyz") >= 0, "the refit did not learn the dev text");
  T_EQ_INT(st.lang[0].dev_texts, 3);
  T_EQ_INT(st.lang[0].bytes, 23 + 7 + 15 + 15 + 8 + 8 + 8);
  T_EQ_INT(st.lang[1].bytes, 8 + 11);
  /* ccc's only text is a dev text: the loop never trained on it, the refit gives it its
   * balanced share (it had none) and learns from it */
  T_EQ_STR(st.lang[2].code, "ccc");
  T_CHECK_MSG(st.lang[2].share > 0, "ccc's share %g", st.lang[2].share);
  T_CHECK(vocab_id(root, "qq") >= 0);
  json_decref(root);
  /* without the dev set the same file learns "zyz" */
  o.parity = NULL;
  root = train(p, &o, NULL, &err);
  T_CHECK(root != NULL && vocab_id(root, "zyz") >= 0);
  json_decref(root);
}

/* aligned -- whether bytes s[0..n) are whole UTF-8 characters or the first bytes of one */
static bool aligned(const uint8_t *s, size_t n)
{
  for (size_t i = 0; i < n;) {
    size_t need = s[i] < 0x80 ? 1 : s[i] < 0xe0 ? 2 : s[i] < 0xf0 ? 3 : 4;
    for (size_t k = 1; k < need; k++) {
      if (i + k == n) return i == 0;
      if ((s[i + k] & 0xc0) != 0x80) return false;
    }
    i += need;
  }
  return true;
}

/* Every Burmese letter starts E1 80, so in "ကကက..." the pairs (80, 80) and (80, E1) are as
 * frequent as (E1, 80): a byte-pair count alone makes tokens that end inside the next letter.
 * Every merged token must be whole characters or the first bytes of one; the letter and its
 * runs still become tokens; an ASCII text learns as before. */
static void test_char_aligned(void)
{
  char p[128];
  mn_error err = {0};
  put("mya.jsonl",
      "{\"lang\": \"mya\", \"text\": \"ကကကကကကကက ကကကက ကား ကား ကား ကားကား\"}\n"
      "{\"lang\": \"xxx\", \"text\": \"aaabdaaabac\"}\n",
      p, sizeof p);
  tok_train_options o = {.vocab = 400, .all_splits = true, .balance = TOK_BALANCE_NONE};
  char *text = NULL;
  json_t *root = train(p, &o, &text, &err);
  T_CHECK_MSG(root != NULL, "%s", err.msg);
  if (!root) return;
  tokenizer *t = NULL;
  T_CHECK_MSG(tok_from_json(text, strlen(text), "mya", &t, NULL, &err) == MN_OK, "%s", err.msg);
  int merged = 0;
  for (uint32_t id = 257; t && id < tok_base(t); id++) {
    const uint8_t *b;
    size_t n = tok_piece(t, id, &b);
    if (n < 2) continue;
    merged++;
    T_CHECK_MSG(aligned(b, n), "token %u (%zu bytes, %02x...%02x) cuts a character", id, n, b[0],
                b[n - 1]);
  }
  T_CHECK(merged > 5);
  T_CHECK(vocab_id(root, "\xc3\xa1\xc4\xa2\xc4\xa2") >= 0); /* က (E1 80 80) is a token */
  T_CHECK(vocab_id(root, "aa") >= 0);
  tok_destroy(t);
  free(text);
  json_decref(root);
}

int main(void)
{
  snprintf(dir, sizeof dir, "/tmp/mnemo-bpe-train-XXXXXX");
  if (!mkdtemp(dir)) return 1;
  T_RUN(test_by_hand);
  T_RUN(test_balance);
  T_RUN(test_heldout_and_tags);
  T_RUN(test_refusals);
  T_RUN(test_parity);
  T_RUN(test_parity_dev_left_out);
  T_RUN(test_char_aligned);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return T_DONE();
}
