/*
 * bpe_train.c -- learning a language-balanced byte-level BPE (tok_bpe_train).
 *
 * Not the encoder: bpe.c reads a tokenizer.json and encodes with it; this file and
 * bpe_learn.c only learn the merges and write the tokenizer.json.  Three phases:
 *
 *   1. read   every JSONL record of the chosen split, its text cut into pre-tokens by the
 *             MNEMO pattern (trainer__split_next), counted per (language, piece);
 *   2. weigh  each language's counts by the balance (replay's samplers over its characters),
 *             the distinct pieces merged into words of one weight each;
 *   3. merge  greedily: the pair of the largest weighted count, until the vocabulary is full.
 *
 * With a development parallel set (o->parity), phase 1 leaves its texts out of the counts (a
 * dev text that is whole lines of a record: the premium must be measured on text the
 * tokenizer never trained on), and phases 2 and 3 run o->rounds times: after each,
 * each language's premium on the set (bpe_parity.c) multiplies its weight by
 * (premium / median)^gamma, and the round of the lowest max premium is the result.  The
 * premium is a ratio of token counts that moves with a language's weight only through the
 * merges it wins, so the loop needs no gradient; keeping the best round guards against a
 * step that overshoots.  Phase 1 runs once: the counts per language do not change.
 * Then, unless o->dev_out, phases 1 to 3 run once more on all the text, dev texts included,
 * each language weighing the share of the characters it had in the best round: the loop chose
 * shares on held-out text, and the result learns them from everything there is.  A thin
 * language's catalogs are much of its text (Burmese: 142 kB of 197 kB left out in the loop),
 * so the round's tokenizer is one trained on a third of it.
 *
 * Languages are balanced in characters, not bytes: UTF-8 spends one byte on a Latin letter and
 * three on a Devanagari or Burmese one, so equal bytes would give those scripts a third of
 * the text, and a third of the merges they need (docs/tokenizer.md measures it).
 *
 * Phase 3 and the tokenizer.json it writes are bpe_learn.c's.
 */
#include "replay/replay.h"
#include "trainer/trainer_int.h"

#include <assert.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define WEIGHT_TOTAL 1099511627776.0 /* 2^40: the weighted text's bytes */

/* ---------------------------------------------------------------- phase 1: read */

typedef struct lang_acc {
  char code[8];
  int64_t bytes, chars;                      /* training text read */
  int64_t dev_records, dev_texts, dev_bytes; /* left out as dev text: records touched, texts */
} lang_acc;

typedef struct reader {
  const tok_train_options *o;
  const trainer__devset *dev; /* its texts are left out (NULL: none) */
  trainer__pieces pieces;     /* key: the language's index */
  lang_acc *langs;
  int nlangs;
  tok_train_stats *st;
} reader;

static int lang_index(reader *r, const char *code, mn_error *err)
{
  for (int i = 0; i < r->nlangs; i++)
    if (strcmp(r->langs[i].code, code) == 0) return i;
  if (r->nlangs == TOK_MAX_TAGS) {
    mn_error_set(err, MN_ERR_INPUT, "more than %d languages", TOK_MAX_TAGS);
    return -1;
  }
  if (strlen(code) >= sizeof r->langs[0].code || !code[0]) {
    mn_error_set(err, MN_ERR_INPUT, "language code \"%s\" is not 1 to 7 characters", code);
    return -1;
  }
  lang_acc *l = &r->langs[r->nlangs];
  snprintf(l->code, sizeof l->code, "%s", code);
  l->bytes = 0;
  return r->nlangs++;
}

/* count_text -- the pre-tokens of text[0..n) counted for language li, up to its cap */
static mn_status count_text(reader *r, const mn_jsonl *in, int li, const uint8_t *text, size_t n,
                            mn_error *err)
{
  mn_status rc;
  lang_acc *l = &r->langs[li];
  int64_t cap = r->o->max_bytes_per_lang;
  for (size_t i = 0; i < n;) {
    size_t k = trainer__split_next(TOK_SPLIT_MNEMO, text + i, n - i);
    assert(k >= 1 && k <= n - i);
    if (cap > 0 && l->bytes + (int64_t)k > cap) break; /* the cap cuts at a piece */
    size_t idx;
    if (k > TRAINER_BPE_MAX_WORD)
      return mn_jsonl_fail(in, err, MN_ERR_INPUT, "a pre-token of %zu bytes (at most %u)", k,
                           TRAINER_BPE_MAX_WORD);
    if ((rc = trainer__pieces_add(&r->pieces, (uint32_t)li, text + i, k, 1.0, &idx, err)))
      return rc;
    l->bytes += (int64_t)k;
    for (size_t c = 0; c < k; c++)
      l->chars += (text[i + c] & 0xc0) != 0x80;
    r->st->pieces++;
    i += k;
  }
  return MN_OK;
}

static mn_status read_record(json_t *rec, const mn_jsonl *in, void *ctx, mn_error *err)
{
  reader *r = ctx;
  const char *code = mn_json_str(json_object_get(rec, "lang"));
  json_t *t = json_object_get(rec, "text");
  if (!code || !json_is_string(t))
    return mn_jsonl_fail(in, err, MN_ERR_INPUT, "expected {\"lang\": ..., \"text\": ...}");
  const uint8_t *text = (const uint8_t *)json_string_value(t);
  size_t n = json_string_length(t);
  mn_status rc;
  int li = lang_index(r, code, err);
  if (li < 0) return mn_error_prefix(err, "%s:%lld", in->name, (long long)in->line_no);
  if (!r->o->all_splits) {
    bool held, by_hash;
    if ((rc = evalset_record_split(rec, (const char *)text, n, r->o->heldout_fraction, &held,
                                   &by_hash, err)))
      return mn_error_prefix(err, "%s:%lld", in->name, (long long)in->line_no);
    if (held) {
      r->st->skipped++;
      return MN_OK;
    }
  }
  lang_acc *l = &r->langs[li];
  if (r->o->max_bytes_per_lang > 0 && l->bytes >= r->o->max_bytes_per_lang) {
    r->st->skipped++;
    return MN_OK;
  }
  r->st->records++;
  if (!r->dev) return count_text(r, in, li, text, n, err);
  /* leave the dev texts out: a dev text that is whole lines of the record (a catalog's
   * document is its msgstrs joined by newlines), the longest at each line start, with the
   * newline after it; the text between is counted run by run */
  size_t keep = 0, i = 0;
  bool touched = false;
  while (i < n) {
    size_t hit = 0, e = i;
    for (int f = TRAINER_DEV_MORE; f & TRAINER_DEV_MORE; e++) {
      const uint8_t *nl = memchr(text + e, '\n', n - e);
      e = nl ? (size_t)(nl - text) : n;
      f = trainer__dev_lines(r->dev, l->code, text + i, e - i);
      if (f & TRAINER_DEV_TEXT) hit = e - i;
      if (e == n) break;
    }
    if (!hit) {
      const uint8_t *nl = memchr(text + i, '\n', n - i);
      i = nl ? (size_t)(nl - text) + 1 : n;
      continue;
    }
    if ((rc = count_text(r, in, li, text + keep, i - keep, err))) return rc;
    size_t end = i + hit + (i + hit < n); /* and its newline */
    l->dev_texts++;
    l->dev_bytes += (int64_t)(end - i);
    touched = true;
    keep = i = end;
  }
  l->dev_records += touched;
  return count_text(r, in, li, text + keep, n - keep, err);
}

/* ---------------------------------------------------------------- phase 2: weigh */

/* lang_weights -- w[i] per character of language i's text, by the balance */
static mn_status lang_weights(const tok_train_options *o, const lang_acc *l, int k, double *w,
                              mn_error *err)
{
  mn_status rc = MN_OK;
  double *n = malloc((size_t)k * sizeof *n), *q = malloc((size_t)k * sizeof *q);
  if (!n || !q) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory weighing languages");
    goto out;
  }
  double total = 0, unused;
  for (int i = 0; i < k; i++)
    total += n[i] = (double)l[i].chars; /* balanced in characters: see the file's head */
  if (o->balance == TOK_BALANCE_TEMPERATURE)
    rc = replay_shares_temperature(n, NULL, (size_t)k, o->alpha, q, err);
  else if (o->balance == TOK_BALANCE_UNIMAX)
    rc = replay_budget_unimax(n, NULL, (size_t)k, total, o->epochs, q, &unused, err);
  else
    memcpy(q, n, (size_t)k * sizeof *q);
  for (int i = 0; rc == MN_OK && i < k; i++)
    w[i] = n[i] > 0 ? q[i] / n[i] : 0;
out:
  free(n);
  free(q);
  return rc;
}

/* ---------------------------------------------------------------- tok_bpe_train */

static int cmp_code(const void *x, const void *y)
{
  return strcmp((const char *)x, (const char *)y);
}

/* tags_in_order -- the codes of o->tags by id, which must run from TOK_FIRST_TAG without a gap */
static mn_status tags_in_order(const tok_tags *t, char (*codes)[8], mn_error *err)
{
  for (int i = 0; i < t->n; i++) {
    int k = t->t[i].id - TOK_FIRST_TAG;
    if (k < 0 || k >= t->n || codes[k][0])
      return mn_error_set(err, MN_ERR_INPUT,
                          "cannot place tag %s (%d): a tokenizer's tags are numbered "
                          "consecutively from %d",
                          t->t[i].code, t->t[i].id, TOK_FIRST_TAG);
    snprintf(codes[k], sizeof codes[k], "%s", t->t[i].code);
  }
  return MN_OK;
}

static mn_status vocab_fits(uint32_t vocab, int ntags, mn_error *err)
{
  uint32_t least = TOK_FIRST_TAG + (uint32_t)ntags;
  if (vocab < least)
    return mn_error_set(err, MN_ERR_INPUT,
                        "cannot fit vocab %u: 256 bytes, <|endoftext|> and %d tags need at "
                        "least %u",
                        vocab, ntags, least);
  if (vocab > TOK_MAX_ID)
    return mn_error_set(err, MN_ERR_INPUT, "vocab %u is over the most, %d", vocab, TOK_MAX_ID);
  return MN_OK;
}

/* train_round -- phases 2 and 3: the merges of r's pieces with language i weighing w[i] per
 * character, *json its tokenizer.json (malloc'd; NULL on failure) */
static mn_status train_round(const reader *r, const double *w, const tok_train_options *o,
                             const char (*codes)[8], int ntags, char **json, tok_train_stats *st,
                             mn_error *err)
{
  mn_status rc = MN_OK;
  trainer__pieces words = {0};
  double *wt = NULL;

  *json = NULL;
  /* 2. weigh: per distinct piece, scaled to whole numbers */
  double t0 = mn_monotonic_ms();
  for (size_t i = 0; i < r->pieces.n && rc == MN_OK; i++) {
    const struct trainer__piece *p = &r->pieces.e[i];
    size_t idx;
    rc = trainer__pieces_add(&words, 0, r->pieces.arena + p->off, p->len, w[p->key] * p->count,
                             &idx, err);
  }
  if (rc) goto out;
  wt = malloc((words.n ? words.n : 1) * sizeof *wt);
  if (!wt) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory weighing languages");
    goto out;
  }
  double bytes = 0;
  for (size_t i = 0; i < words.n; i++)
    bytes += words.e[i].count * words.e[i].len;
  for (size_t i = 0; i < words.n; i++)
    wt[i] = bytes > 0 ? nearbyint(words.e[i].count * (WEIGHT_TOTAL / bytes)) : 0;
  st->words = (int64_t)words.n;
  /* 3. merge (bpe_learn.c) */
  uint32_t ids;
  rc = trainer__bpe_learn(&words, wt, o->vocab - TOK_FIRST_TAG - (uint32_t)ntags, codes, ntags,
                          json, &st->merges, &ids, err);
  st->merge_s += (mn_monotonic_ms() - t0) / 1e3;
  st->vocab = ids + (uint32_t)ntags;
out:
  trainer__pieces_fini(&words);
  free(wt);
  assert((rc == MN_OK) == (*json != NULL));
  return rc;
}

static int cmp_double(const void *x, const void *y)
{
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

/* measure_round -- the dev premium of each training language (NAN: no dev items) under json,
 * and the round's max, median and worst in st->round[round] */
static mn_status measure_round(const trainer__devset *dev, const reader *r, const char *json,
                               int round, double *prem, tok_train_stats *st, mn_error *err)
{
  double *dp = malloc(TOK_MAX_TAGS * sizeof *dp), *v = malloc(TOK_MAX_TAGS * sizeof *v);
  mn_status rc = dp && v ? trainer__dev_premium(dev, json, dp, err)
                         : mn_error_set(err, MN_ERR_NOMEM, "out of memory measuring premiums");
  int n = 0;
  for (int i = 0; rc == MN_OK && i < r->nlangs; i++) {
    int k = trainer__dev_index(dev, r->langs[i].code);
    prem[i] = k >= 0 ? dp[k] : NAN;
    if (isnan(prem[i])) continue;
    if (!n || prem[i] > st->round[round].max) {
      st->round[round].max = prem[i];
      memcpy(st->round[round].worst, r->langs[i].code, sizeof st->round[round].worst);
    }
    v[n++] = prem[i];
  }
  if (rc == MN_OK) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    st->round[round].median = n ? (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2) : NAN;
    st->dev_langs = n;
  }
  free(dp);
  free(v);
  return rc;
}

/* refit -- *json learned again from all the text of paths (the dev texts too), language i of
 * loop (whose texts left them out) weighing st->lang[i].share of the characters; st's counts
 * and bytes become the refit's */
static mn_status refit(const char *const *paths, int npaths, const tok_train_options *o,
                       const reader *loop, const char (*codes)[8], int ntags, char **json,
                       tok_train_stats *st, mn_error *err)
{
  mn_status rc = MN_OK;
  tok_train_stats *scratch = calloc(1, sizeof *scratch);
  reader all = {.o = o, .st = scratch, .langs = calloc(TOK_MAX_TAGS, sizeof *all.langs)};
  double *w = calloc(TOK_MAX_TAGS, sizeof *w);
  char *out = NULL;

  if (!scratch || !all.langs || !w) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory learning BPE merges");
    goto out;
  }
  double t0 = mn_monotonic_ms();
  for (int i = 0; i < npaths && rc == MN_OK; i++)
    rc = mn_jsonl_each(paths[i], read_record, &all, err);
  if (rc) goto out;
  /* the same files in the same order: the same languages in the same order */
  if (all.nlangs != loop->nlangs) {
    rc = mn_error_set(err, MN_ERR_IO,
                      "the training text changed while it was read (%d languages, "
                      "then %d)",
                      loop->nlangs, all.nlangs);
    goto out;
  }
  for (int i = 0; i < all.nlangs; i++) {
    if (strcmp(all.langs[i].code, loop->langs[i].code) != 0) {
      rc = mn_error_set(err, MN_ERR_IO, "the training text changed while it was read (%s, then %s)",
                        loop->langs[i].code, all.langs[i].code);
      goto out;
    }
  }
  /* a language the loop never trained on (all its text dev texts) has no share: it gets its
   * balanced one, round 0's over all the text */
  if ((rc = lang_weights(o, all.langs, all.nlangs, w, err))) goto out;
  double mass = 0;
  for (int i = 0; i < all.nlangs; i++)
    mass += w[i] * (double)all.langs[i].chars;
  double sum = 0;
  for (int i = 0; i < all.nlangs; i++) {
    if (st->lang[i].share == 0 && all.langs[i].chars > 0 && mass > 0)
      st->lang[i].share = w[i] * (double)all.langs[i].chars / mass;
    sum += st->lang[i].share;
  }
  for (int i = 0; i < all.nlangs; i++) {
    st->lang[i].share = sum > 0 ? st->lang[i].share / sum : 0;
    w[i] = all.langs[i].chars > 0 ? st->lang[i].share / (double)all.langs[i].chars : 0;
  }
  st->read_s += (mn_monotonic_ms() - t0) / 1e3;
  st->merge_s = 0;
  if ((rc = train_round(&all, w, o, codes, ntags, &out, st, err))) goto out;
  free(*json);
  *json = out;
  st->refit = true;
  st->records = scratch->records;
  st->skipped = scratch->skipped;
  st->pieces = scratch->pieces;
  for (int i = 0; i < all.nlangs; i++)
    st->lang[i].bytes = all.langs[i].bytes;
out:
  trainer__pieces_fini(&all.pieces);
  free(all.langs);
  free(scratch);
  free(w);
  return rc;
}

mn_status tok_bpe_train(const char *const *paths, int npaths, const tok_train_options *o,
                        char **json, tok_train_stats *st, mn_error *err)
{
  mn_status rc = MN_OK;
  reader r = {.o = o, .st = st};
  trainer__devset *dev = NULL;
  double *w = NULL, *w0 = NULL, *prem = NULL;
  char *cand = NULL;
  char(*codes)[8] = calloc(TOK_MAX_TAGS, sizeof *codes);
  int ntags = 0;
  int rounds = o->parity ? (o->rounds ? o->rounds : 6) : 1;
  double gamma = o->gamma ? o->gamma : TOK_PARITY_GAMMA;

  *json = NULL;
  memset(st, 0, sizeof *st);
  r.langs = calloc(TOK_MAX_TAGS, sizeof *r.langs);
  if (!codes || !r.langs) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory learning BPE merges");
    goto out;
  }
  if (rounds < 1 || rounds > TOK_MAX_ROUNDS) {
    rc = mn_error_set(err, MN_ERR_INPUT, "cannot train %d rounds: 1 to %d", rounds, TOK_MAX_ROUNDS);
    goto out;
  }
  if (o->tags) {
    ntags = o->tags->n;
    if ((rc = tags_in_order(o->tags, codes, err)) || (rc = vocab_fits(o->vocab, ntags, err)))
      goto out;
  }
  /* the refit reads the text a second time: a pipe would be empty then, after minutes */
  for (int i = 0; o->parity && !o->dev_out && i < npaths; i++) {
    struct stat sb;
    if (stat(paths[i], &sb) != 0 || !S_ISREG(sb.st_mode)) {
      rc = mn_error_set(err, MN_ERR_INPUT,
                        "\"%s\" is not a regular file: with a dev set the training text is read "
                        "twice (the parity loop, then the result from all of it); give a file, or "
                        "keep the dev texts out of the result too (--dev-out)",
                        paths[i]);
      goto out;
    }
  }
  /* the dev set first: a bad one fails before minutes of training */
  if (o->parity &&
      (rc = trainer__dev_read(o->parity, o->parity_ref ? o->parity_ref : "eng", &dev, err)))
    goto out;
  /* 1. read (with a dev set, its texts left out) */
  r.dev = dev;
  double t0 = mn_monotonic_ms();
  for (int i = 0; i < npaths && rc == MN_OK; i++)
    rc = mn_jsonl_each(paths[i], read_record, &r, err);
  if (rc) goto out;
  for (int i = 0; o->tags && i < r.nlangs; i++)
    if (tok_tag_of(o->tags, r.langs[i].code) < 0) {
      rc = mn_error_set(err, MN_ERR_INPUT,
                        "language \"%s\" of the training text has no tag in the tag table "
                        "(the database assigns tags: mnemoctl lang add, mnemoctl export)",
                        r.langs[i].code);
      goto out;
    }
  if (!o->tags) {
    ntags = r.nlangs;
    for (int i = 0; i < r.nlangs; i++)
      memcpy(codes[i], r.langs[i].code, sizeof codes[i]);
    qsort(codes, (size_t)ntags, sizeof *codes, cmp_code);
    if ((rc = vocab_fits(o->vocab, ntags, err))) goto out;
  }
  if (st->pieces == 0) {
    rc = mn_error_set(err, MN_ERR_INPUT, "no training text in %d file%s%s", npaths,
                      npaths == 1 ? "" : "s", o->all_splits ? "" : " (training split)");
    goto out;
  }
  st->read_s = (mn_monotonic_ms() - t0) / 1e3;
  w = malloc((size_t)r.nlangs * sizeof *w);
  prem = malloc((size_t)r.nlangs * sizeof *prem);
  w0 = malloc((size_t)r.nlangs * sizeof *w0);
  if (!w || !prem || !w0) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory weighing languages");
    goto out;
  }
  if ((rc = lang_weights(o, r.langs, r.nlangs, w, err))) goto out;
  memcpy(w0, w, (size_t)r.nlangs * sizeof *w0);
  st->nlangs = r.nlangs;
  for (int i = 0; i < r.nlangs; i++) {
    memcpy(st->lang[i].code, r.langs[i].code, sizeof st->lang[i].code);
    st->lang[i].bytes = r.langs[i].bytes;
    st->lang[i].dev_records = r.langs[i].dev_records;
    st->lang[i].dev_texts = r.langs[i].dev_texts;
    st->lang[i].dev_bytes = r.langs[i].dev_bytes;
    st->lang[i].premium = NAN;
  }
  /* the rounds: train; with a dev set, measure, keep the best, reweigh by (premium / median)^gamma
   */
  for (int round = 0; round < rounds; round++) {
    t0 = mn_monotonic_ms();
    if ((rc = train_round(&r, w, o, (const char(*)[8])codes, ntags, &cand, st, err))) goto out;
    if (dev && (rc = measure_round(dev, &r, cand, round, prem, st, err))) goto out;
    st->round[round].seconds = (mn_monotonic_ms() - t0) / 1e3;
    st->nrounds = round + 1;
    double bmax = st->round[st->best_round].max, cmax = st->round[round].max;
    if (round == 0 || cmax < bmax ||
        (cmax == bmax && st->round[round].median < st->round[st->best_round].median)) {
      free(*json);
      *json = cand;
      cand = NULL;
      st->best_round = round;
      double mass = 0;
      for (int i = 0; i < r.nlangs; i++)
        mass += w[i] * (double)r.langs[i].chars;
      for (int i = 0; i < r.nlangs; i++) {
        st->lang[i].share = mass > 0 ? w[i] * (double)r.langs[i].chars / mass : 0;
        st->lang[i].premium = dev ? prem[i] : NAN;
      }
    }
    free(cand);
    cand = NULL;
    /* relative to the median, so a language without dev items (whose weight stays) keeps
     * its place beside the median language's */
    for (int i = 0; dev && i < r.nlangs; i++)
      if (!isnan(prem[i]))
        w[i] = fmax(w[i] * pow(prem[i] / st->round[round].median, gamma), o->floor ? w0[i] : 0);
  }
  if (dev && !o->dev_out) {
    trainer__pieces_fini(&r.pieces); /* the refit reads its own: not both at once */
    if ((rc = refit(paths, npaths, o, &r, (const char(*)[8])codes, ntags, json, st, err))) goto out;
  }
out:
  trainer__pieces_fini(&r.pieces);
  trainer__dev_destroy(dev);
  free(r.langs);
  free(codes);
  free(w);
  free(w0);
  free(prem);
  free(cand);
  if (rc != MN_OK) {
    free(*json);
    *json = NULL;
  }
  assert((rc == MN_OK) == (*json != NULL));
  return rc;
}
