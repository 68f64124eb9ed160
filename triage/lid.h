/*
 * lid.h -- language identification of short texts (user reports) by byte n-grams.
 *
 * A multinomial naive Bayes over hashed byte 1- to 5-grams (words padded with a space on
 * each side), trained from the ingested training documents of every enabled language.
 * The table is bucket-major (all languages of one bucket side by side) and holds each
 * language's negative log-probability quantised to LID_QUANT nats per step, so a text is
 * scored with one hash and one contiguous read of L bytes per n-gram.
 *
 * A text gets its best language and a confidence (the posterior with the overlap of the
 * n-gram orders discounted), "und" when it is too short or no language is confident, and
 * the spans of a code-switched text: a Viterbi path over its words with a cost per switch,
 * kept when at least two languages each hold a span of LID_MIN_SPAN_BYTES.
 */
#ifndef MNEMO_LID_H
#define MNEMO_LID_H

#include "common/common.h"

#include <stddef.h>
#include <stdint.h>

#define LID_MAX_LANGS      256
#define LID_CODE_MAX       16
#define LID_MAX_SPANS      8
#define LID_MIN_SPAN_BYTES 12

typedef struct lid_model lid_model;

typedef struct lid_span {
  size_t start, end; /* byte offsets in the text */
  char lang[LID_CODE_MAX];
} lid_span;

typedef struct lid_result {
  char lang[LID_CODE_MAX]; /* the best language, or "und" (then second: the best guess) */
  double confidence;       /* its posterior, 0..1 */
  char second[LID_CODE_MAX];
  double second_confidence;
  double fit; /* cost per n-gram under the best language / that language's typical */
  bool mixed; /* code-switching: spans of at least two languages */
  int nspans;
  lid_span spans[LID_MAX_SPANS];
} lid_result;

/* lid_train -- a model from JSONL files of {"lang", "text"}; at most max_bytes of text per
 * language are read (0: all).  Languages with no text are absent from the model. */
MN_NODISCARD mn_status lid_train(const char *const *files, int nfiles, int64_t max_bytes,
                                 lid_model **out /* OUT */, mn_error *err);

/* lid_save / lid_load -- the model file (written atomically; checked when read). */
MN_NODISCARD mn_status lid_save(const lid_model *m, const char *path, mn_error *err);
MN_NODISCARD mn_status lid_load(const char *path, lid_model **out /* OUT */, mn_error *err);
/* lid_destroy -- frees a model from lid_train or lid_load; NULL is a no-op */
void lid_destroy(lid_model *m);

int lid_languages(const lid_model *m);
const char *lid_language(const lid_model *m, int i);

/* lid_classify -- text must be valid UTF-8 (callers check and say so). */
void lid_classify(const lid_model *m, const char *text, size_t len, lid_result *out);

#endif
