/*
 * tok_encode_tool -- the C side of test_tokenizer_ref.sh and bench/tokenizer: byte-level
 * BPE (trainer/bpe.c) on records of a file, printed so they can be compared with Hugging
 * Face's tokenizers.  Not a test by itself.
 *
 *   tok_encode_tool TOKENIZER.json RECORDS IDS [DECODED]
 *       RECORDS: texts separated by NUL bytes; IDS gets one line of ids a record,
 *       DECODED (optional) the bytes of those ids, NUL-separated
 *   tok_encode_tool --rewrite TOKENIZER.json OUT.json     load, write back (to_json)
 *   tok_encode_tool --bench TOKENIZER.json RECORDS REPEAT
 *       encode every record REPEAT times on one thread with one cache; prints the best
 *       and median MB/s of the repeats and the tokens, as JSON
 */
#include "trainer/trainer_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void die(const char *what, const mn_error *err)
{
  fprintf(stderr, "tok_encode_tool: %s%s%s\n", what, err ? ": " : "", err ? err->msg : "");
  exit(1);
}

static tok_bpe *load(const char *path)
{
  json_error_t je;
  json_t *root = json_load_file(path, 0, &je);
  if (!root) {
    fprintf(stderr, "tok_encode_tool: %s: %s\n", path, je.text);
    exit(1);
  }
  tok_bpe *b;
  uint32_t base, eot;
  mn_error err = {0};
  static tok_tags tags;
  if (trainer__bpe_from_json(root, path, &b, &base, &eot, &tags, &err) != MN_OK) die("load", &err);
  json_decref(root);
  return b;
}

static char *slurp(const char *path, size_t *n)
{
  mn_buf buf;
  mn_error err = {0};
  mn_buf_init(&buf, (size_t)1 << 34);
  if (mn_buf_read_file(&buf, path, &err) != MN_OK) die(path, &err);
  *n = buf.len;
  return buf.data ? buf.data : calloc(1, 1);
}

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
  mn_error err = {0};
  if (argc == 4 && !strcmp(argv[1], "--rewrite")) {
    tok_bpe *b = load(argv[2]);
    json_t *j = trainer__bpe_to_json(b);
    if (!j || json_dump_file(j, argv[3], JSON_COMPACT) != 0) die("could not write", NULL);
    json_decref(j);
    trainer__bpe_destroy(b);
    return 0;
  }
  bool bench = argc == 5 && !strcmp(argv[1], "--bench");
  if (!bench && argc != 4 && argc != 5) {
    fprintf(stderr, "usage: tok_encode_tool TOKENIZER.json RECORDS IDS [DECODED]\n"
                    "       tok_encode_tool --rewrite TOKENIZER.json OUT.json\n"
                    "       tok_encode_tool --bench TOKENIZER.json RECORDS REPEAT\n");
    return 2;
  }
  tok_bpe *b = load(argv[1 + bench]);
  size_t n;
  char *text = slurp(argv[2 + bench], &n);
  tok_cache *cache;
  if (tok_cache_create(&cache, &err) != MN_OK) die("cache", &err);
  uint32_t *ids = NULL;
  size_t len = 0, cap = 0;
  if (bench) {
    int rep = (int)strtol(argv[4], NULL, 10);
    if (rep < 1) rep = 1;
    double *mbs = calloc((size_t)rep, sizeof *mbs);
    size_t tokens = 0;
    for (int r = 0; r < rep; r++) {
      tokens = 0;
      double t0 = now();
      for (size_t i = 0; i < n;) {
        size_t k = strnlen(text + i, n - i);
        len = 0;
        if (trainer__bpe_encode(b, cache, true, text + i, k, &ids, &len, &cap, &err) != MN_OK)
          die("encode", &err);
        tokens += len;
        i += k + 1;
      }
      mbs[r] = n / 1e6 / (now() - t0);
    }
    qsort(mbs, (size_t)rep, sizeof *mbs, cmp_d);
    printf("{\"bytes\": %zu, \"tokens\": %zu, \"median_mb_s\": %.3f, \"best_mb_s\": %.3f}\n", n,
           tokens, mbs[rep / 2], mbs[rep - 1]);
    free(mbs);
  } else {
    FILE *fi = fopen(argv[3], "w"), *fd = argc == 5 ? fopen(argv[4], "wb") : NULL;
    if (!fi || (argc == 5 && !fd)) die("could not open the output", NULL);
    for (size_t i = 0; i <= n;) {
      size_t k = i < n ? strnlen(text + i, n - i) : 0;
      if (i == n && n > 0) break; /* the file ends with a separator */
      len = 0;
      if (trainer__bpe_encode(b, cache, true, text + i, k, &ids, &len, &cap, &err) != MN_OK)
        die("encode", &err);
      for (size_t j = 0; j < len; j++)
        fprintf(fi, j ? " %u" : "%u", ids[j]);
      fputc('\n', fi);
      for (size_t j = 0; fd && j < len; j++) {
        const uint8_t *p;
        size_t m = trainer__bpe_piece(b, ids[j], &p);
        fwrite(p, 1, m, fd);
      }
      if (fd) fputc(0, fd);
      i += k + 1;
    }
    if (fclose(fi) != 0 || (fd && fclose(fd) != 0)) die("could not write the output", NULL);
  }
  free(ids);
  free(text);
  tok_cache_destroy(cache);
  trainer__bpe_destroy(b);
  return 0;
}
