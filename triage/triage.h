/*
 * triage.h -- what a user report is worth looking at (docs/triage.md).
 *
 * For each new report: is its text usable at all (UTF-8, not empty, not binary, not
 * huge, written in its claimed language's script), which language it is written in
 * (triage/lid.h), which earlier report it repeats (MinHash over byte shingles), and how
 * much worse the production model finds it than that language's ordinary held-out text
 * (the severity).  `mnemo triage` runs it over a JSONL batch the daemon writes.
 */
#ifndef MNEMO_TRIAGE_H
#define MNEMO_TRIAGE_H

#include "common/common.h"

#include <stdint.h>
#include <stdio.h>

#define TRIAGE_MINHASH          64 /* hash functions of a signature */
/* a report must have at least this share of its letters in its language's script: a
 * code-switched report ("ร้านอาหารเปิด 9 โมง but the answer switched to English") holds */
#define TRIAGE_MIN_SCRIPT_SHARE 0.2

/* triage_check_text -- false, with why ("empty", "not UTF-8 at byte 7", ...), when the text
 * cannot be a report's text: empty or blank, longer than max_bytes, not acceptable by the
 * rule ingest applies to documents (mn_text_check: invalid UTF-8, control characters, a lone
 * CR, an inner BOM, U+FFFD: "binary data"; bidirectional controls; a leading BOM is
 * skipped), no letters, or too few of its letters in
 * `script` (TRIAGE_MIN_SCRIPT_SHARE; an ISO 15924 code; "" or NULL: any script) */
bool triage_check_text(const char *s, size_t n, const char *script, int64_t max_bytes, char *why,
                       size_t whylen);

/* triage_minhash -- the signature of s: for each of TRIAGE_MINHASH hash functions, the least
 * hash of its byte 5-grams after case folding (ASCII) and collapsing white space */
void triage_minhash(const char *s, size_t n, uint32_t sig[TRIAGE_MINHASH]);
/* triage_similarity -- the share of equal entries: an estimate of the shingles' Jaccard index */
double triage_similarity(const uint32_t a[TRIAGE_MINHASH], const uint32_t b[TRIAGE_MINHASH]);

typedef struct triage_config {
  const char *checkpoint; /* the production model */
  const char *lid;        /* the language identifier (mnemo lid train) */
  const char *typical;    /* each language's held-out bits per byte under checkpoint: read,
                           * or computed from heldout and written when absent or stale */
  const char *heldout;    /* JSONL {"lang", "text"}: the held-out text for typical */
  int64_t max_text_bytes;
  double group_similarity;
  int seq_len;
} triage_config;

/*
 * triage_run -- the batch in `in` (JSONL, named in_name in errors; its format, and that of the
 * one JSON line per new report written on out, are in common/protocol.h).  A new report joins the
 * group of the most similar open (or earlier new) report of its language at or above
 * group_similarity.
 */
MN_NODISCARD mn_status triage_run(const triage_config *c, FILE *in, const char *in_name, FILE *out,
                                  mn_error *err);

#endif
