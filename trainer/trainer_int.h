/*
 * trainer_int.h -- helpers shared inside trainer/, not part of its interface.
 */
#ifndef MNEMO_TRAINER_INT_H
#define MNEMO_TRAINER_INT_H

#include "replay/replay.h"
#include "trainer/train.h"
#include "trainer/trainer.h"

#include <jansson.h>

/* ---------------------------------------------------------------- the families' layout */

static inline bool gpt__is_gpt2(const gpt_config *c)
{
  return c->arch == GPT_ARCH_GPT2;
}

/* the family's dimensions: key-value heads, a head's width, the MLP's width, its first
 * projection's rows (SwiGLU's gate and up side by side) */
static inline int gpt__kv_heads(const gpt_config *c)
{
  return gpt__is_gpt2(c) ? c->n_head : c->n_kv_head;
}
static inline size_t gpt__head_dim(const gpt_config *c)
{
  return (size_t)c->n_embd / (size_t)c->n_head;
}
static inline size_t gpt__qkv_rows(const gpt_config *c)
{
  return (size_t)c->n_embd + 2 * (size_t)gpt__kv_heads(c) * gpt__head_dim(c);
}
static inline size_t gpt__ff(const gpt_config *c)
{
  return gpt__is_gpt2(c) ? 4 * (size_t)c->n_embd : (size_t)c->n_ff;
}
static inline size_t gpt__fc_rows(const gpt_config *c)
{
  return gpt__is_gpt2(c) ? gpt__ff(c) : 2 * gpt__ff(c);
}

/* gpt__block_shape -- tensor t (GPT_LN1W...) of a block: rows, and columns (0: a vector) */
void gpt__block_shape(const gpt_config *c, int t, size_t *rows, size_t *cols);
size_t gpt__tensor_count(size_t rows, size_t cols); /* rows x cols (cols 0: rows) */

/* safetensors' element types mnemo reads and writes (F32 in its own checkpoints; BF16 and F16
 * for Hugging Face's) */
typedef enum st_dtype { ST_F32 = 0, ST_BF16, ST_F16, ST_DTYPES } st_dtype;
const char *trainer__st_dtype_name(st_dtype d); /* "F32", "BF16", "F16" */
/* to and from the 16-bit types: round to nearest even; NaN stays NaN, overflow is infinite */
uint16_t trainer__f32_to_16(st_dtype d, float f);
float trainer__16_to_f32(st_dtype d, uint16_t h);

/* one tensor to write: name, shape (ndim 1 or 2), count floats at data, stored as dtype
 * (F32 unless set: the floats are rounded to it) */
typedef struct st_tensor {
  const char *name;
  size_t shape[2];
  int ndim;
  const float *data;
  size_t count;
  st_dtype dtype;
} st_tensor;

/*
 * ckpt__write_st -- a safetensors file of t[0..n) back to back, with meta as
 * __metadata__ (borrowed), written atomically (checkpoint.c).
 */
MN_NODISCARD mn_status ckpt__write_st(const char *path, const st_tensor *t, int n, json_t *meta,
                                      mn_error *err);

/* trainer__hf_write -- m's weights as Hugging Face names them for its family, in the dtypes
 * the import read (F32 for a model mnemo trained), to the safetensors file path (hf.c) */
MN_NODISCARD mn_status trainer__hf_write(const char *path, gpt *m, const ckpt_meta *meta,
                                         mn_error *err);
/* trainer__hf_config -- the config.json of the checkpoint (meta): the imported one with the
 * model's rows as vocab_size, or GPT-2's for a model mnemo trained; NULL: out of memory */
json_t *trainer__hf_config(const ckpt_meta *meta, uint32_t eot);
/* trainer__hf_origin_check -- the checkpoint's origin (if any) is an import's and its
 * config.json describes the model its weights are (MN_ERR_CORRUPT naming ckpt otherwise): an
 * export writes it back only then */
MN_NODISCARD mn_status trainer__hf_origin_check(const ckpt_meta *meta, const char *ckpt,
                                                mn_error *err);

/* ckpt__read_tokenizer -- the tokenizer.json text a checkpoint carries (*json malloc'd; NULL:
 * the byte tokenizer) and its tags (checkpoint.c) */
MN_NODISCARD mn_status ckpt__read_tokenizer(const char *path, char **json /* OUT */,
                                            tok_tags *tags /* OUT */,
                                            char sha[MN_SHA256_HEX_LEN + 1] /* OUT */,
                                            mn_error *err);
/* trainer__tok_canonical -- the tokenizer's canonical tokenizer.json (compact, sorted keys,
 * no tags), whose SHA-256 is tok_sha256 (*out malloc'd; tokenizer.c) */
MN_NODISCARD mn_status trainer__tok_canonical(const tokenizer *t, char **out /* OUT */,
                                              mn_error *err);
/* trainer__bytes_sha256 -- the byte tokenizer's identity (what files made before tokenizers
 * were named were made with) */
MN_NODISCARD mn_status trainer__bytes_sha256(char out[MN_SHA256_HEX_LEN + 1], mn_error *err);

/* What a fine-tune adds to pretraining (finetune.c), set up by finetune__prepare and used by
 * the loop (train.c): the baseline's weights as EWC's anchor and its Fisher, replayed
 * windows in every batch, the baseline as teacher, and the stages of unfreezing. */
typedef struct finetune_setup {
  float *anchor, *fisher; /* num_params each; fisher NULL: no EWC */
  replay_store replay;
  double *replay_cum; /* cumulative language shares over replay.langs */
  int *replay_tags;
  int nrep;       /* replayed sequences per batch */
  double distill; /* finetune.distill where there are replayed windows, else 0 */
  gpt *teacher;   /* the baseline, scoring the replayed windows (distillation, the drift
                   * controller); or NULL */
  finetune_stages stages;
  double *replay_q;     /* the sampler's shares before the controller's factors */
  replay_adapt adapt;   /* the drift controller: adapt.k > 0 when on */
  replay_adapt_law law; /* its law */
} finetune_setup;

/* finetune__prepare -- the baseline (already loaded into m) as anchor, its Fisher, the
 * replay store, the teacher (on backend k), the stages; lineage receives what of it shapes
 * the run.  On failure f may hold some of it: finetune__fini frees it either way. */
MN_NODISCARD mn_status finetune__prepare(const finetune_options *fo, gpt *m, const ckpt_meta *base,
                                         int B, int T, int64_t steps, double alpha,
                                         const kernels_backend *k, finetune_setup *f,
                                         json_t *lineage, mn_error *err);
void finetune__fini(finetune_setup *f);
/* finetune__replay_rows -- rows fresh..B-1 of a batch (B,T) from the replay store, drawn
 * from (seed, step t) alone */
void finetune__replay_rows(const finetune_setup *f, uint64_t seed, int64_t t, int fresh, int B,
                           int T, int32_t *tok, int32_t *tgt);
/* trainer__open_regular -- path opened for reading, refused (MN_ERR_INPUT, named) unless a
 * regular file: a FIFO or a device in a model's folder must not hang or feed a reader */
MN_NODISCARD mn_status trainer__open_regular(const char *path, int *fd /* OUT */, mn_error *err);

/* finetune__observe / finetune__adapt_step -- the drift controller after a step: the
 * model's and the teacher's losses (B,T) and (nrep,T) on the batch tok give the replayed rows'
 * drifts (adapt.sum_*: a data-parallel run averages them over the ranks in between); the step
 * folds them in, the factors move, the sampler's shares follow */
void finetune__observe(finetune_setup *f, const float *losses, const float *teacher_losses,
                       const int32_t *tok, int B, int T);
void finetune__adapt_step(finetune_setup *f);
/* finetune__adapt_fix -- language code is one the fresh text trains: the controller reports
 * its drift but gives it no factor */
void finetune__adapt_fix(finetune_setup *f, const char *code);
/* finetune__adapt_state / finetune__adapt_restore -- the controller's state as JSON text (for
 * the optimizer file: a resume continues it exactly), and back; restore refuses a state of
 * other languages */
MN_NODISCARD mn_status finetune__adapt_state(const finetune_setup *f, char **out /* OUT */,
                                             mn_error *err);
MN_NODISCARD mn_status finetune__adapt_restore(finetune_setup *f, const char *text, mn_error *err);

/* ---------------------------------------------------------------- the parity loop's dev set */

/* trainer__devset -- a development parallel set read for tok_bpe_train's parity loop
 * (bpe_parity.c): records {"lang", "item", "text"}, (lang, item) unique, the reference
 * language present. */
typedef struct trainer__devset trainer__devset;
/* trainer__dev_read -- the set in path with reference language ref; on failure *out is NULL
 * and err names file:line (MN_ERR_INPUT) or the file (MN_ERR_IO) */
MN_NODISCARD mn_status trainer__dev_read(const char *path, const char *ref,
                                         trainer__devset **out /* OUT */, mn_error *err);
void trainer__dev_destroy(trainer__devset *d); /* NULL-safe */
/* trainer__dev_index -- the index of language code in trainer__dev_premium, or -1 when the set
 * has no item of it that the reference also has */
int trainer__dev_index(const trainer__devset *d, const char *code);
/* trainer__dev_lines -- what text[0..n) is to language code's records: TRAINER_DEV_TEXT when
 * it is one's text, TRAINER_DEV_MORE when it and a newline begin one's text; 0 neither */
#define TRAINER_DEV_TEXT 1
#define TRAINER_DEV_MORE 2
int trainer__dev_lines(const trainer__devset *d, const char *code, const uint8_t *text, size_t n);
/* trainer__dev_premium -- prem[k] (k a trainer__dev_index) under the tokenizer.json json;
 * prem has room for TOK_MAX_TAGS.  MN_ERR_NOMEM, or MN_ERR_INPUT when json is no tokenizer. */
MN_NODISCARD mn_status trainer__dev_premium(const trainer__devset *d, const char *json,
                                            double *prem /* OUT */, mn_error *err);

/* ---------------------------------------------------------------- byte-level BPE (bpe.c) */

/* The pre-tokenizer patterns bpe.c splits by, each a hand-written matcher of exactly the
 * regex trainer__split_regex[p] (what tokenizer.json spells), Unicode classes from
 * common/unicode tables. */
typedef enum tok_split {
  TOK_SPLIT_NONE,   /* the whole text is one piece */
  TOK_SPLIT_GPT2,   /* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
  TOK_SPLIT_LLAMA3, /* Llama 3's: case-insensitive contractions, \p{N}{1,3} */
  TOK_SPLIT_QWEN2,  /* Qwen2's and Qwen3's: Llama 3's with \p{N} one digit at a time */
  TOK_SPLIT_MNEMO,  /* mnemo's own: Llama 3's with marks (\p{M}) kept inside words */
  TOK_SPLIT_COUNT
} tok_split;
extern const char *const trainer__split_regex[TOK_SPLIT_COUNT];
/* trainer__split_next -- the length (>= 1) of the first piece of text[0..n), n >= 1, under p */
size_t trainer__split_next(tok_split p, const uint8_t *text, size_t n);
/* trainer__byte_char -- the character byte b stands for in byte-level BPE (GPT-2's map) */
uint32_t trainer__byte_char(uint8_t b);

typedef struct tok_bpe tok_bpe;
/* trainer__bpe_from_json -- the BPE of a parsed tokenizer.json (root borrowed): its base (ids
 * below are its own), its end-of-text id, and the <|lang:xxx|> added tokens as tags (may be
 * NULL).  Refuses, naming `name` and the feature, whatever it does not implement. */
MN_NODISCARD mn_status trainer__bpe_from_json(json_t *root, const char *name, tok_bpe **out,
                                              uint32_t *base, uint32_t *eot, tok_tags *tags,
                                              mn_error *err);
void trainer__bpe_destroy(tok_bpe *b);
/* specials false: added tokens marked special are text where they occur (a document's text is
 * text); true: matched, as Hugging Face encodes by default */
MN_NODISCARD mn_status trainer__bpe_encode(const tok_bpe *b, tok_cache *c, bool specials,
                                           const char *text, size_t n, uint32_t **ids, size_t *len,
                                           size_t *cap, mn_error *err);
size_t trainer__bpe_piece(const tok_bpe *b, uint32_t id, const uint8_t **bytes);
/* trainer__bpe_to_json -- a new tokenizer.json object for b, without tags (NULL: no memory) */
json_t *trainer__bpe_to_json(const tok_bpe *b);

/* ---------------------------------------------------------------- learning BPE (bpe_learn.c) */

#define TRAINER_BPE_MAX_WORD (1u << 20) /* a pre-token is at most this many bytes */

/* A set of byte strings (with a small key beside them: the language), each an entry with a
 * count; the bytes live in one arena.  Open addressing over entry indices + 1. */
typedef struct trainer__pieces {
  uint8_t *arena;
  size_t arena_len, arena_cap;
  struct trainer__piece {
    uint64_t off;
    uint32_t len;
    uint32_t key;
    double count;
  } * e;
  size_t n, cap;
  uint32_t *slot; /* entry index + 1, 0 empty */
  size_t nslot;
} trainer__pieces;

void trainer__pieces_fini(trainer__pieces *s); /* empties s */
/* trainer__pieces_add -- count += c for (key, bytes b[0..n)); *idx the entry's index */
MN_NODISCARD mn_status trainer__pieces_add(trainer__pieces *s, uint32_t key, const uint8_t *b,
                                           size_t n, double c, size_t *idx /* OUT */,
                                           mn_error *err);
/* trainer__bpe_learn -- merges learned greedily from words (distinct byte strings; wt[i] the
 * weight of entry i, whole numbers summing below 2^53) until `want` new tokens or no pair is
 * left, each keeping to character boundaries; *json (malloc'd) their tokenizer.json with
 * tags[i] as special tokens after them, *merges the merges, *ids the ids before the tags.
 * words is emptied (trainer__pieces_fini) either way. */
MN_NODISCARD mn_status trainer__bpe_learn(trainer__pieces *words, const double *wt, uint32_t want,
                                          const char (*tags)[8], int ntags, char **json /* OUT */,
                                          uint32_t *merges /* OUT */, uint32_t *ids /* OUT */,
                                          mn_error *err);

#endif /* MNEMO_TRAINER_INT_H */
