/*
 * replay.h -- the replay store: per language, a fixed-capacity reservoir of the
 * token windows the production model has been trained on (DESIGN.md §4, §5).
 *
 * A fine-tune mixes replayed windows into its batches so that what the model
 * knew keeps being rehearsed.  The store is updated only when a checkpoint is
 * promoted (replay_store_absorb): the windows that checkpoint trained on are
 * offered to each language's reservoir.  Each reservoir keeps its `seen` count
 * (windows ever offered) and its random state in the file, so that after any
 * number of refreshes every window ever offered to a language has had the same
 * chance, capacity / seen, to be held (Vitter's algorithm R, continued).
 *
 * The windows' ids are one tokenizer's, and the file names it: a store is never mixed, and
 * a fine-tune refuses a store whose tokenizer is not its model's.
 *
 * File (little-endian), written atomically (temporary file, fsync, rename):
 *   0   magic "MNREPLAY"        8   u32 version (2)      12  u32 token bytes (2 or 4)
 *   16  u32 tokens per window   20  u32 languages        24  u64 windows held
 *   32  the tokenizer of the windows: its SHA-256 (tok_sha256), 32 raw bytes, never all zero
 *   64  languages, 48 bytes each, in code order:
 *         char code[16], u32 capacity, u32 count, u64 seen, u64 rng, u64 first window
 *   then the windows (u16 tokens, or u32 when an id needs it), language after language
 *   last 32 bytes: SHA-256 of everything before them
 * Version 1 is the same without the tokenizer (a 32-byte header, languages from 32): its
 * windows are the byte tokenizer's, the only one then.  It is still read, with an empty
 * tok_sha256; replay/ knows no tokenizer, so the caller says what that means (the trainer and
 * the worker: the byte tokenizer).  Only version 2 is written.
 * A reader checks every field and the checksum and refuses the file otherwise,
 * naming it and the problem.  Depends on common/ only.
 */
#ifndef MNEMO_REPLAY_H
#define MNEMO_REPLAY_H

#include "common/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define REPLAY_VERSION   2
#define REPLAY_CODE_SIZE 16

typedef struct replay_lang {
  char code[REPLAY_CODE_SIZE]; /* NUL-terminated language code */
  uint32_t capacity;           /* windows the reservoir can hold, fixed at creation */
  uint32_t count;              /* windows held: min(seen, capacity) */
  uint64_t seen;               /* windows ever offered */
  uint64_t rng;                /* the reservoir's random state (splitmix64) */
  uint32_t *windows;           /* count x window tokens */
} replay_lang;

typedef struct replay_store {
  uint32_t window; /* tokens per window */
  /* the tokenizer that made the windows' ids (tok_sha256, hex); "" read from a version 1
   * file (the byte tokenizer's: the caller resolves it) */
  char tok_sha256[MN_SHA256_HEX_LEN + 1];
  uint32_t nlangs;
  replay_lang *langs; /* in code order */
} replay_store;

/* replay_store_init / _fini -- an empty store of windows of `window` tokens made by the
 * tokenizer tok_sha256 (hex; NULL or "" names none, and such a store cannot be encoded).  The
 * caller owns the struct; _fini frees what the store holds. */
void replay_store_init(replay_store *s, uint32_t window, const char *tok_sha256);
void replay_store_fini(replay_store *s);

/*
 * replay_store_offer -- offer n windows of one language to its reservoir (created with
 * `capacity` when the language is new; an existing language keeps its capacity, and a
 * different one is refused).  Each window is `window` tokens.
 */
MN_NODISCARD mn_status replay_store_offer(replay_store *s, const char *code, uint32_t capacity,
                                          const uint32_t *windows, size_t n, mn_error *err);

/* replay_store_find -- the language's reservoir, or NULL. */
const replay_lang *replay_store_find(const replay_store *s, const char *code);

/* encode/decode: the file's bytes (decode checks everything; `name` names the source in
 * messages).  encode writes version 2 and refuses (MN_ERR_INPUT) a store that names no
 * tokenizer; decode reads versions 1 and 2. */
MN_NODISCARD mn_status replay_store_encode(const replay_store *s, mn_buf *out, mn_error *err);
MN_NODISCARD mn_status replay_store_decode(const void *p, size_t n, const char *name,
                                           replay_store *out /* OUT */, mn_error *err);

MN_NODISCARD mn_status replay_store_load(const char *path, replay_store *out /* OUT */,
                                         mn_error *err);
MN_NODISCARD mn_status replay_store_save(const replay_store *s, const char *path, mn_error *err);
/* replay_store_checksum -- the file's own SHA-256 (its last 32 bytes) as hex: what a run that
 * uses the store records, so that a resume can tell the store changed.  Not a verification:
 * replay_store_load does that. */
MN_NODISCARD mn_status replay_store_checksum(const char *path, char hex[MN_SHA256_HEX_LEN + 1],
                                             mn_error *err);

/* One language's new windows, for replay_store_absorb. */
typedef struct replay_offer {
  const char *code;
  const uint32_t *windows;
  size_t n;
} replay_offer;

/*
 * replay_store_absorb -- load the store at path (an absent file is an empty store of
 * `window` tokens), offer every offer in turn (new languages get `capacity`), and save
 * it atomically: a crash or an error leaves the old file or the new one, never a mix.
 * tok_sha256 is the tokenizer that made the offered windows (hex); v1_tok_sha256 is what a
 * version 1 store's windows are taken to be (the byte tokenizer's, which replay/ cannot
 * compute).  A store of another tokenizer is refused (MN_ERR_INPUT, naming the store and both
 * tokenizers) and left as it was; a version 1 store is saved as version 2.
 */
MN_NODISCARD mn_status replay_store_absorb(const char *path, const char *tok_sha256,
                                           const char *v1_tok_sha256, uint32_t window,
                                           uint32_t capacity, const replay_offer *offers,
                                           size_t noffers, mn_error *err);

/* ---------------------------------------------------------------- samplers over languages
 *
 * Which language the next window comes from.  n[i] is what language i has (tokens or
 * windows), boost[i] > 0 multiplies its weight (NULL: all 1; the triage of user reports
 * raises a language this way).  Languages with n[i] = 0 get nothing.
 */

/* replay_shares_temperature -- q[i] proportional to boost[i] * n[i]^alpha, summing to 1:
 * alpha = 1 follows the data, alpha = 0 is uniform, in between flattens it. */
MN_NODISCARD mn_status replay_shares_temperature(const double *n, const double *boost, size_t k,
                                                 double alpha, double *q /* OUT, k */,
                                                 mn_error *err);

/*
 * replay_budget_unimax -- UniMax (Chung et al., 2023): a budget of `total` windows split
 * as evenly as the boosts allow (language i's part proportional to boost[i]), none given
 * more than epochs * n[i]; what a capped language cannot take is handed on to the others
 * (water-filling).  budget[i] sums to total, or to the sum of the caps when they are
 * smaller (*unused says by how much).
 */
MN_NODISCARD mn_status replay_budget_unimax(const double *n, const double *boost, size_t k,
                                            double total, double epochs,
                                            double *budget /* OUT, k */, double *unused /* OUT */,
                                            mn_error *err);

/* ---------------------------------------------------------------- the drift controller
 *
 * During a fine-tune, per replayed language: the relative drift of the model in training on
 * that language's replayed windows against the baseline on the same windows ((loss - base) /
 * base, smoothed), and a factor on the language's replay share that grows while the drift
 * stays above a target and shrinks back when it falls below (adapt.c has the law).
 */
typedef struct replay_adapt_law {
  double smoothing; /* share of the sums a step that replays the language forgets, (0, 1] */
  double target;    /* the relative drift the controller holds a language to */
  double rate;      /* log-factor per step and unit of drift above the target */
  double max_boost; /* the largest factor (>= 1) */
  bool relative;    /* drift over the protected languages' mean (when above 0), not over 0 */
} replay_adapt_law;
extern const replay_adapt_law replay_adapt_default;

typedef struct replay_adapt {
  size_t k;                     /* languages (a replay store's order) */
  double *drift;                /* relative drift of the forgetting sums (0 before any) */
  double *log_boost;            /* the factor in force, as a logarithm (0: none) */
  int64_t *seen;                /* steps that replayed the language */
  double *sum_model, *sum_base; /* the current step's rows */
  double *acc_model, *acc_base; /* the sums that forget geometrically */
  bool *fixed;                  /* no factor (a language the fresh text trains) */
} replay_adapt;

MN_NODISCARD mn_status replay_adapt_init(replay_adapt *a, size_t k, mn_error *err);
void replay_adapt_fini(replay_adapt *a);
/* replay_adapt_add -- one replayed row of language lang: the mean loss of the model in
 * training and of the baseline on it (non-finite values are ignored) */
void replay_adapt_add(replay_adapt *a, size_t lang, double model_loss, double base_loss);
/* replay_adapt_step -- fold the step's rows into each replayed language's drift and move its
 * factor; true when a factor changed */
bool replay_adapt_step(replay_adapt *a, const replay_adapt_law *law);
double replay_adapt_boost(const replay_adapt *a, size_t lang);

#ifdef __cplusplus
}
#endif
#endif /* MNEMO_REPLAY_H */
