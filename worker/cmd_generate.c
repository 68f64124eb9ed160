/*
 * cmd_generate.c -- `mnemo generate`: text from a checkpoint in one language, sampled among
 * bytes and <|eot|> (top-k, temperature, seeded), printed as valid UTF-8.
 */
#include "worker/worker_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const worker_opt worker__generate_opts[] = {
    WORKER_TEXT("checkpoint", checkpoint, "CKPT", "the model"),
    WORKER_TEXT("lang", lang, "L", "the language (its tag starts the text)"),
    WORKER_TEXT("prompt", prompt, "P", "the text to continue (UTF-8)"),
    WORKER_COUNT("tokens", tokens, "N", "bytes to generate at most (default 100)"),
    WORKER_REAL("temperature", temperature, "T", 0, INFINITY, "sampling temperature (default 0.8)"),
    WORKER_COUNT("top-k", top_k, "K", "sample among the K likeliest (default 40)"),
    WORKER_COUNT_UP_TO("seed", seed, "S", INT64_MAX, "the sampler's seed (default 1)"),
    WORKER_OPT_END,
};

int worker__cmd_generate(worker_ctx *w, worker_args *o)
{
  mn_error err = {0};
  gpt *m = NULL;
  ckpt_meta meta;
  if (!o->checkpoint || !o->lang)
    return worker__usage("generate needs --checkpoint FILE and --lang L");
  const char *prompt = o->prompt ? o->prompt : "";
  size_t bad_at;
  if (mn_utf8_check(prompt, strlen(prompt), &bad_at) != MN_UTF8_OK) {
    mn_error_set(&err, MN_ERR_INPUT, "the prompt is not valid UTF-8 (byte %zu)", bad_at);
    return worker__fail(&err);
  }
  if (o->tokens > 1000000) return worker__usage("--tokens is at most 1000000");
  kernels_cpu_set_threads((int)w->cfg.train.threads);
  if (ckpt_read_meta(o->checkpoint, &meta, &err) != MN_OK) return worker__fail(&err);
  int tag = tok_tag_of(&meta.tags, o->lang);
  if (tag < 0) {
    mn_error_set(&err, MN_ERR_INPUT, "the checkpoint knows no language \"%s\"", o->lang);
    return worker__fail(&err);
  }
  int T = meta.config.max_seq_len;
  const kernels_backend *k;
  if (worker__train_backend(&w->cfg, &k, &err) != MN_OK ||
      gpt_create(&meta.config, 1, T, 0, k, &m, &err) != MN_OK)
    return worker__fail(&err);
  if (ckpt_load(o->checkpoint, m, &meta, &err) != MN_OK) {
    gpt_destroy(m);
    return worker__fail(&err);
  }
  int64_t want = o->tokens ? o->tokens : 100;
  int top_k = o->top_k ? (int)o->top_k : 40;
  double temp = o->temperature > 0 ? o->temperature : 0.8;
  uint64_t rng = o->seed ? (uint64_t)o->seed : 1;
  size_t plen = strlen(prompt);
  size_t cap = plen + (size_t)want + 2;
  int32_t *ctx = malloc(sizeof(int32_t) * cap);
  unsigned char *outb = malloc(cap);
  int32_t *win = malloc(sizeof(int32_t) * (size_t)T);
  float *p = malloc(sizeof(float) * 257);
  if (!ctx || !outb || !win || !p) {
    free(ctx), free(outb), free(win), free(p);
    gpt_destroy(m);
    mn_error_set(&err, MN_ERR_NOMEM, "out of memory generating %lld tokens", (long long)want);
    return worker__fail(&err);
  }
  size_t n = 0, nout = 0;
  for (size_t i = 0; i < plen; i++)
    ctx[n++] = (unsigned char)prompt[i];
  for (int64_t g = 0; g < want; g++) {
    /* the window: the tag, then the last T-1 tokens */
    int len = (int)(n < (size_t)T - 1 ? n : (size_t)T - 1);
    win[0] = tag;
    for (int i = 0; i < len; i++)
      win[i + 1] = ctx[n - (size_t)len + (size_t)i];
    gpt_forward(m, win, NULL, 1, len + 1);
    const float *logits = gpt_logits(m) + (size_t)len * meta.config.padded_vocab;
    /* sample among bytes and <|eot|> only (tags are never generated) */
    float mx = -INFINITY;
    for (int i = 0; i < 257; i++)
      mx = logits[i] > mx ? logits[i] : mx;
    float kth = -INFINITY;
    if (top_k > 0 && top_k < 257) { /* the k-th largest logit */
      float tmp[257];
      memcpy(tmp, logits, sizeof tmp);
      for (int a = 0; a < top_k; a++) {
        int best = a;
        for (int b = a + 1; b < 257; b++)
          best = tmp[b] > tmp[best] ? b : best;
        float s = tmp[a];
        tmp[a] = tmp[best];
        tmp[best] = s;
      }
      kth = tmp[top_k - 1];
    }
    double sum = 0;
    for (int i = 0; i < 257; i++) {
      p[i] = logits[i] < kth ? 0.0f : (float)exp((logits[i] - mx) / temp);
      sum += p[i];
    }
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    double u = (double)(rng >> 11) / 9007199254740992.0 * sum, acc = 0;
    int tokn = 256;
    for (int i = 0; i < 257; i++) {
      acc += p[i];
      if (u < acc) {
        tokn = i;
        break;
      }
    }
    if (tokn == TOK_EOT) break;
    ctx[n++] = tokn;
    outb[nout++] = (unsigned char)tokn;
  }
  /* print valid UTF-8 only: a sequence cut by the end or sampled badly becomes U+FFFD */
  mn_buf text;
  mn_buf_init(&text, cap * 3 + 16);
  (void)!mn_buf_append(&text, prompt, plen, NULL);
  size_t i = 0;
  while (i < nout) {
    size_t off;
    mn_utf8_problem pr = mn_utf8_check(outb + i, nout - i, &off);
    if (pr == MN_UTF8_OK) {
      (void)!mn_buf_append(&text, outb + i, nout - i, NULL);
      break;
    }
    (void)!mn_buf_append(&text, outb + i, off, NULL);
    (void)!mn_buf_append(&text, "\xEF\xBF\xBD", 3, NULL);
    i += off + 1;
  }
  if (w->json || !isatty(STDOUT_FILENO))
    worker__emit(json_pack("{s:s, s:s, s:s%, s:I}", "event", "generate", "lang", o->lang, "text",
                           text.data ? text.data : "", text.len, "tokens", (json_int_t)nout));
  else if (fwrite(text.data ? text.data : "", 1, text.len, stdout) == text.len)
    putchar('\n'); /* a sampled byte 0 is text too: written whole, not cut there */
  mn_buf_fini(&text);
  free(ctx), free(outb), free(win), free(p);
  gpt_destroy(m);
  return MN_EXIT_OK;
}
