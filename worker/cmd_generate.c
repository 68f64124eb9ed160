/*
 * cmd_generate.c -- `mnemo generate`: text from a checkpoint in one language, sampled among
 * its tokenizer's text tokens and its end of text (top-k, temperature, seeded), decoded and
 * printed as valid UTF-8; the end of text ends it.  Only tokens that continue the text as
 * UTF-8 are sampled: a byte-level BPE has tokens that are the first bytes of a character,
 * or a lone continuation byte, and a sampled one that does not fit (a fragment of a Gujarati
 * letter after a whole one) printed as U+FFFD and left the model in a context it had never
 * seen.
 */
#include "worker/worker_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const worker_opt worker__generate_opts[] = {
    WORKER_TEXT("checkpoint", checkpoint, "CKPT", "the model"),
    WORKER_TEXT("lang", lang, "LANG", "the language (its tag starts the text)"),
    WORKER_TEXT("prompt", prompt, "TEXT", "the text to continue (UTF-8)"),
    WORKER_COUNT("tokens", tokens, "N", "tokens to generate at most (default: 100)"),
    WORKER_REAL("temperature", temperature, "T", 0, INFINITY,
                "sampling temperature (default: 0.8)"),
    WORKER_COUNT("top-k", top_k, "K", "sample among the K likeliest (default: 40)"),
    WORKER_COUNT_UP_TO("seed", seed, "S", INT64_MAX, "the sampler's seed (default: 1)"),
    WORKER_TEXT("script", script, "CODE",
                "also report the share of the generated letters written in this ISO 15924 "
                "script (Latn, Thai, Jpan, ...)"),
    WORKER_OPT_END,
};

/* the UTF-8 the generated text owes: `need` continuation bytes, the next in [lo, hi] */
typedef struct utf8_state {
  int need;
  uint8_t lo, hi;
} utf8_state;

/* utf8_follow -- whether s[0..n) can follow as UTF-8 (RFC 3629: no overlong form, surrogate or
 * code point over U+10FFFF); if so *st becomes the state after it */
static bool utf8_follow(utf8_state *st, const uint8_t *s, size_t n)
{
  utf8_state t = *st;
  for (size_t i = 0; i < n; i++) {
    uint8_t b = s[i];
    if (t.need) {
      if (b < t.lo || b > t.hi) return false;
      t = (utf8_state){t.need - 1, 0x80, 0xbf};
    } else if (b >= 0xc2 && b <= 0xdf) {
      t = (utf8_state){1, 0x80, 0xbf};
    } else if (b >= 0xe0 && b <= 0xef) {
      t = (utf8_state){2, b == 0xe0 ? 0xa0 : 0x80, b == 0xed ? 0x9f : 0xbf};
    } else if (b >= 0xf0 && b <= 0xf4) {
      t = (utf8_state){3, b == 0xf0 ? 0x90 : 0x80, b == 0xf4 ? 0x8f : 0xbf};
    } else if (b >= 0x80) {
      return false;
    }
  }
  *st = t;
  return true;
}

/* by_logit_desc -- for the k-th largest logit */
static int by_logit_desc(const void *a, const void *b)
{
  float x = *(const float *)a, y = *(const float *)b;
  return (x < y) - (x > y);
}

int worker__cmd_generate(worker_ctx *w, worker_args *o)
{
  mn_error err = {0};
  gpt *m = NULL;
  tokenizer *tkz = NULL;
  ckpt_meta meta;
  int rc = MN_EXIT_FAIL;
  uint32_t *ctx = NULL, *out = NULL;
  int32_t *win = NULL;
  float *p = NULL, *tmp = NULL;
  mn_buf bytes, text;
  mn_buf_init(&bytes, SIZE_MAX / 4);
  mn_buf_init(&text, SIZE_MAX / 4);
  if (!o->checkpoint || !o->lang)
    return worker__usage("generate needs --checkpoint FILE and --lang LANG");
  const char *prompt = o->prompt ? o->prompt : "";
  size_t bad_at;
  if (mn_utf8_check(prompt, strlen(prompt), &bad_at) != MN_UTF8_OK) {
    mn_error_set(&err, MN_ERR_INPUT, "the prompt is not valid UTF-8 (byte %zu)", bad_at);
    return worker__fail(&err);
  }
  if (o->tokens > 1000000) return worker__usage("--tokens is at most 1000000");
  if (o->script && !(strlen(o->script) == 4 && o->script[0] >= 'A' && o->script[0] <= 'Z'))
    return worker__usage("--script takes an ISO 15924 code such as Latn or Thai, not \"%.16s\"",
                         o->script);
  kernels_cpu_set_threads((int)w->cfg.train.threads);
  if (ckpt_read_meta(o->checkpoint, &meta, &err) != MN_OK) return worker__fail(&err);
  int tag = tok_tag_of(&meta.tags, o->lang);
  if (tag < 0) {
    mn_error_set(&err, MN_ERR_INPUT, "the checkpoint knows no language \"%s\"", o->lang);
    return worker__fail(&err);
  }
  int T = meta.config.max_seq_len; /* the window: the model's, at most train.seq_len */
  if (w->cfg.train.seq_len < T) T = (int)w->cfg.train.seq_len;
  const kernels_backend *k;
  if (tok_load(o->checkpoint, &tkz, NULL, &err) != MN_OK ||
      worker__train_backend(&w->cfg, &k, &err) != MN_OK ||
      gpt_create(&meta.config, 1, T, 0, k, &m, &err) != MN_OK ||
      ckpt_load(o->checkpoint, m, &meta, &err) != MN_OK)
    goto out;
  int64_t want = o->tokens ? o->tokens : 100;
  int top_k = o->top_k ? (int)o->top_k : 40;
  double temp = o->temperature > 0 ? o->temperature : 0.8;
  /* the seed through splitmix64 first: xorshift from a small seed draws tiny numbers for
   * its first steps, and the first token was the lowest id of the top k for every seed below
   * about 2^30 */
  uint64_t seed = o->seed ? (uint64_t)o->seed : 1;
  uint64_t rng = mn_splitmix64(&seed);
  if (!rng) rng = 1; /* xorshift's one fixed point */
  /* sampled among the tokenizer's ids that are text and continue it as UTF-8, and its end of
   * text where no character is cut (never a tag or another special token) */
  utf8_state u8 = {0, 0x80, 0xbf}; /* the prompt is whole: nothing owed */
  uint32_t V = tok_base(tkz), eot = tok_eot(tkz);
  if (V > (uint32_t)meta.config.vocab_size) V = (uint32_t)meta.config.vocab_size;
  size_t n = 0, cap = 0, nout = 0;
  if (tok_encode(tkz, NULL, prompt, strlen(prompt), &ctx, &n, &cap, &err) != MN_OK) goto out;
  uint32_t *c2 = realloc(ctx, (n + (size_t)want + 1) * sizeof *ctx);
  out = malloc(((size_t)want + 1) * sizeof *out);
  win = malloc(sizeof(int32_t) * (size_t)T);
  p = malloc(sizeof(float) * V), tmp = malloc(sizeof(float) * V);
  if (c2) ctx = c2;
  if (!c2 || !out || !win || !p || !tmp) {
    mn_error_set(&err, MN_ERR_NOMEM, "out of memory generating %lld tokens", (long long)want);
    goto out;
  }
  for (int64_t g = 0; g < want; g++) {
    /* the window: the tag, then the last T-1 tokens */
    int len = (int)(n < (size_t)T - 1 ? n : (size_t)T - 1);
    win[0] = tag;
    for (int i = 0; i < len; i++)
      win[i + 1] = (int32_t)ctx[n - (size_t)len + (size_t)i];
    gpt_forward(m, win, NULL, 1, len + 1);
    const float *logits = gpt_logits(m) + (size_t)len * meta.config.padded_vocab;
    float mx = -INFINITY;
    uint32_t cand = 0;
    for (uint32_t i = 0; i < V; i++) {
      const uint8_t *piece;
      size_t len_i = i == eot ? 0 : tok_piece(tkz, i, &piece);
      utf8_state t = u8;
      bool ok = i == eot ? u8.need == 0 : len_i > 0 && utf8_follow(&t, piece, len_i);
      p[i] = ok ? logits[i] : -INFINITY;
      if (ok) tmp[cand++] = logits[i], mx = logits[i] > mx ? logits[i] : mx;
    }
    float kth = -INFINITY;
    if (top_k > 0 && (uint32_t)top_k < cand) { /* the k-th largest logit */
      qsort(tmp, cand, sizeof *tmp, by_logit_desc);
      kth = tmp[top_k - 1];
    }
    double sum = 0;
    for (uint32_t i = 0; i < V; i++) {
      p[i] = p[i] < kth || p[i] == -INFINITY ? 0.0f : (float)exp((p[i] - mx) / temp);
      sum += p[i];
    }
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    double u = (double)(rng >> 11) / 9007199254740992.0 * sum, acc = 0;
    uint32_t tokn = eot;
    for (uint32_t i = 0; i < V; i++) {
      acc += p[i];
      if (p[i] > 0 && u < acc) {
        tokn = i;
        break;
      }
    }
    if (tokn == eot) break; /* the end of the text */
    const uint8_t *piece;
    size_t plen = tok_piece(tkz, tokn, &piece);
    (void)utf8_follow(&u8, piece, plen); /* it does: only such were sampled */
    ctx[n++] = tokn;
    out[nout++] = tokn;
  }
  if (tok_decode(tkz, out, nout, &bytes, &err) != MN_OK) goto out;
  /* print valid UTF-8 only: a character cut by --tokens is left out; anything else invalid
   * (not sampled, but a tokenizer's pieces are not checked here) becomes U+FFFD */
  (void)!mn_buf_append(&text, prompt, strlen(prompt), NULL);
  const unsigned char *outb = (const unsigned char *)bytes.data;
  size_t i = 0;
  while (i < bytes.len) {
    size_t off;
    mn_utf8_problem pr = mn_utf8_check(outb + i, bytes.len - i, &off);
    if (pr == MN_UTF8_OK) {
      (void)!mn_buf_append(&text, outb + i, bytes.len - i, NULL);
      break;
    }
    (void)!mn_buf_append(&text, outb + i, off, NULL);
    if (pr == MN_UTF8_TRUNCATED) break;
    (void)!mn_buf_append(&text, "\xEF\xBF\xBD", 3, NULL);
    i += off + 1;
  }
  if (w->json || !isatty(STDOUT_FILENO)) {
    json_t *ev = json_pack("{s:s, s:s, s:s%, s:I}", "event", "generate", "lang", o->lang, "text",
                           text.data ? text.data : "", text.len, "tokens", (json_int_t)nout);
    if (o->script) { /* the generated part only, not the prompt */
      size_t letters, pl = strlen(prompt);
      double share =
          text.data ? mn_script_share(text.data + pl, text.len - pl, o->script, &letters) : 0;
      if (!text.data) letters = 0;
      json_object_set_new(ev, "script", json_string(o->script));
      json_object_set_new(ev, "script_share", json_real(share));
      json_object_set_new(ev, "letters", json_integer((json_int_t)letters));
    }
    worker__emit(ev);
  } else if (fwrite(text.data ? text.data : "", 1, text.len, stdout) == text.len)
    putchar('\n'); /* a sampled byte 0 is text too: written whole, not cut there */
  rc = MN_EXIT_OK;
out:
  mn_buf_fini(&bytes), mn_buf_fini(&text);
  free(ctx), free(out), free(win), free(p), free(tmp);
  gpt_destroy(m);
  tok_destroy(tkz);
  return rc == MN_EXIT_OK ? rc : worker__fail(&err);
}
