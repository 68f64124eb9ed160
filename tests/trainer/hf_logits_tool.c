/*
 * hf_logits_tool -- the C side of test_hf_import.sh: the logits a mnemo checkpoint gives a
 * sequence of token ids, written so hf_ref.py can compare them with Hugging Face's forward
 * pass.  Not a test by itself.
 *
 *   hf_logits_tool CKPT OUT ID...
 *       one forward over the ids (one row of T = the number of ids) on the CPU backend;
 *       OUT gets gpt_logits' T rows of padded_vocab float32 (little-endian, as the machine
 *       stores them), and stdout one JSON line with T, vocab_size and padded_vocab
 *
 * Exit status: 0 written, 1 the checkpoint or the output failed, 2 bad arguments.
 */
#include "trainer/trainer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* parse_ids -- argv's ids into a new array *out (the caller frees it); false naming the bad one */
static bool parse_ids(char **argv, int n, int vocab, int32_t **out /* OUT */)
{
  int32_t *ids = malloc((size_t)n * sizeof *ids);
  if (!ids) {
    fprintf(stderr, "hf_logits_tool: out of memory\n");
    return false;
  }
  for (int i = 0; i < n; i++) {
    char *end;
    errno = 0;
    long v = strtol(argv[i], &end, 10);
    if (errno || end == argv[i] || *end || v < 0 || v >= vocab) {
      fprintf(stderr, "hf_logits_tool: id \"%s\" is not a token id below %d\n", argv[i], vocab);
      free(ids);
      return false;
    }
    ids[i] = (int32_t)v;
  }
  *out = ids;
  return true;
}

int main(int argc, char **argv)
{
  if (argc < 4) {
    fprintf(stderr, "usage: hf_logits_tool CKPT OUT ID...\n");
    return 2;
  }
  const char *ckpt = argv[1], *out = argv[2];
  int T = argc - 3, rc = 1;
  mn_error err = {0};
  ckpt_meta meta;
  gpt *m = NULL;
  int32_t *ids = NULL;
  FILE *f = NULL;

  if (ckpt_read_meta(ckpt, &meta, &err) != MN_OK) goto fail;
  const gpt_config *c = &meta.config;
  if (T > c->max_seq_len) {
    fprintf(stderr, "hf_logits_tool: %d ids, the model takes at most %d\n", T, c->max_seq_len);
    rc = 2;
    goto out;
  }
  if (!parse_ids(argv + 3, T, c->vocab_size, &ids)) {
    rc = 2;
    goto out;
  }
  if (gpt_create(c, 1, T, 0, kernels_cpu(), &m, &err) != MN_OK) goto fail;
  if (ckpt_load(ckpt, m, &meta, &err) != MN_OK) goto fail;
  gpt_forward(m, ids, NULL, 1, T);
  size_t n = (size_t)T * (size_t)c->padded_vocab; /* (1, T, Vp) */
  f = fopen(out, "wb");
  if (!f || fwrite(gpt_logits(m), sizeof(float), n, f) != n) {
    fprintf(stderr, "hf_logits_tool: could not write \"%s\": %s\n", out, strerror(errno));
    goto out;
  }
  if (fclose(f) != 0) {
    f = NULL;
    fprintf(stderr, "hf_logits_tool: could not write \"%s\": %s\n", out, strerror(errno));
    goto out;
  }
  f = NULL;
  printf("{\"tokens\": %d, \"vocab_size\": %d, \"padded_vocab\": %d, \"arch\": \"%s\"}\n", T,
         c->vocab_size, c->padded_vocab, gpt_arch_name(c->arch));
  rc = 0;
  goto out;
fail:
  fprintf(stderr, "hf_logits_tool: %s\n", err.msg);
  if (err.detail[0]) fprintf(stderr, "  detail: %s\n", err.detail);
out:
  if (f) fclose(f);
  free(ids);
  gpt_destroy(m);
  return rc;
}
