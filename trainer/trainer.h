/*
 * trainer.h -- the compute core: byte tokenizer, GPT model, optimizer step,
 * token shards and checkpoints.  Files in, files out; no database.
 *
 * The model is GPT-2 family (pre-LayerNorm blocks, GELU tanh MLP, learned
 * positions, tied embeddings).  Parameters live in ONE buffer laid out
 * layer-major -- [embeddings | block 0 | ... | block L-1 | final LN] -- with
 * gradients and AdamW moments in parallel buffers, so any trainable suffix of
 * blocks is one contiguous range (DESIGN.md §5).  All ops go through a
 * kernels_backend; nothing here allocates inside a training step.
 *
 * The training loop and a fine-tune's setup are in trainer/train.h; the worker program
 * `mnemo` that drives all of it is worker/ (a table of commands).
 */
#ifndef MNEMO_TRAINER_H
#define MNEMO_TRAINER_H

#include "common/common.h"
#include "kernels/kernels.h"

/* ---------------------------------------------------------------- tokens */

/* The byte tokenizer's ids: 0-255 the UTF-8 bytes, 256 <|eot|>, language tags from 257.  The
 * database numbers tags this way (migrations/0003); another tokenizer's tags are the same
 * tags moved up to start at its tok_base (tok_tags_rebase). */
#define TOK_EOT       256 /* <|eot|> */
#define TOK_FIRST_TAG 257 /* <|lang:xxx|> tags follow */

/* ---------------------------------------------------------------- language tags */

#define TOK_MAX_TAGS 1024
#define TOK_MAX_ID   (1 << 24) /* token ids are below this (u32 in files) */

typedef struct tok_tags {
  int n;
  struct {
    char code[8]; /* ISO 639-3 */
    int id;       /* token id >= TOK_FIRST_TAG */
  } t[TOK_MAX_TAGS];
} tok_tags;

int tok_tag_of(const tok_tags *tags, const char *code); /* -1 when unknown */
const char *tok_code_of(const tok_tags *tags, int id);  /* NULL when unknown */
/* tok_tags_add -- add code with id (or the next free id when id < 0); MN_ERR_INPUT on a clash. */
MN_NODISCARD mn_status tok_tags_add(tok_tags *tags, const char *code, int id, mn_error *err);
/* as JSON text {"spa": 257, ...}: *out malloc'd */
MN_NODISCARD mn_status tok_tags_to_json(const tok_tags *tags, char **out /* OUT */, mn_error *err);
MN_NODISCARD mn_status tok_tags_from_json(const char *json, tok_tags *tags /* OUT */,
                                          mn_error *err);
/* tok_tags_read -- add the tags of a TSV file, "code<TAB>tag id" a line (as the database
 * assigned them); MN_ERR_IO when it cannot be opened, MN_ERR_INPUT naming file:line. */
MN_NODISCARD mn_status tok_tags_read(const char *path, tok_tags *tags, mn_error *err);
/* tok_tags_rebase -- move every tag by base - from (tags numbered from `from` to tags numbered
 * from `base`: the database's numbering, from TOK_FIRST_TAG, onto a tokenizer's tok_base);
 * MN_ERR_INPUT when a tag would fall below base or past TOK_MAX_ID. */
MN_NODISCARD mn_status tok_tags_rebase(tok_tags *tags, uint32_t from, uint32_t base, mn_error *err);

/*
 * tokenizer -- text to token ids and back (trainer/tokenizer.c, trainer/bpe.c).  Two kinds:
 *   bytes  ids 0-255 are the text's UTF-8 bytes, 256 is <|eot|> (today's models);
 *   bpe    byte-level BPE as Hugging Face's tokenizer.json describes it: the byte-to-unicode
 *          map, a pre-tokenizer split (GPT-2's, Llama 3's or Qwen's pattern), ranked merges
 *          (either spelling: "a b" or ["a", "b"]), added tokens matched first, NFC when the
 *          file asks for it.
 * Ids from 0 to tok_base - 1 are the tokenizer's own; language tags follow from tok_base
 * (the model has room for them).  A tokenizer.json that uses anything not listed here is
 * refused with the name of what is missing, never read in part.
 *
 * A tokenizer is immutable once made: encode and decode may run on several threads at once
 * only when each has its own tok_cache (NULL: no cache, slower).
 */
typedef struct tokenizer tokenizer;
typedef struct tok_cache tok_cache;

MN_NODISCARD mn_status tok_create_bytes(tokenizer **out /* OUT */, mn_error *err);
/* tok_from_json -- a tokenizer from the text of a tokenizer.json; `name` (a path) names it in
 * errors.  Added tokens spelled <|lang:xxx|> are language tags, returned in tags (may be NULL);
 * they must come after every other id. */
MN_NODISCARD mn_status tok_from_json(const char *json, size_t n, const char *name,
                                     tokenizer **out /* OUT */, tok_tags *tags /* OUT */,
                                     mn_error *err);
/* tok_load -- a tokenizer.json file, or the tokenizer a checkpoint carries */
MN_NODISCARD mn_status tok_load(const char *path, tokenizer **out /* OUT */,
                                tok_tags *tags /* OUT, may be NULL */, mn_error *err);
void tok_destroy(tokenizer *t); /* NULL-safe */

const char *tok_kind(const tokenizer *t); /* "bytes" or "bpe" */
uint32_t tok_base(const tokenizer *t);    /* the tokenizer's ids; tags start here */
uint32_t tok_eot(const tokenizer *t);     /* the end-of-text id */
/* tok_sha256 -- the tokenizer's identity: SHA-256 hex of its canonical tokenizer.json
 * (without tags), so shards and checkpoints can say which tokenizer made their ids */
const char *tok_sha256(const tokenizer *t);
/* tok_piece -- the bytes token id stands for (its length; 0 for eot, specials and tags) */
size_t tok_piece(const tokenizer *t, uint32_t id, const uint8_t **bytes /* OUT */);

/* tok_encode -- the ids of a document's text[0..n) appended to *ids (a malloc'd array of
 * *len, capacity *cap, grown as needed).  The text is text: a special token written in it
 * (<|endoftext|>, <|lang:xxx|>) is encoded as the characters it is, never as the token, so
 * no document can end itself or claim another language (Hugging Face's split_special_tokens).
 * Invalid UTF-8: bytes, every byte a token; bpe, each maximal invalid run one U+FFFD, as
 * Hugging Face's tokenizers receives it from a JavaScript string.  MN_ERR_NOMEM only. */
MN_NODISCARD mn_status tok_encode(const tokenizer *t, tok_cache *cache, const char *text, size_t n,
                                  uint32_t **ids, size_t *len, size_t *cap, mn_error *err);
/* tok_encode_specials -- the same with a BPE tokenizer's special added tokens matched where the
 * text spells them, as Hugging Face encodes by default (tags are never matched; the byte
 * tokenizer matches nothing) */
MN_NODISCARD mn_status tok_encode_specials(const tokenizer *t, tok_cache *cache, const char *text,
                                           size_t n, uint32_t **ids, size_t *len, size_t *cap,
                                           mn_error *err);
/* tok_decode -- the bytes of ids appended to out (tags, eot and specials write nothing) */
MN_NODISCARD mn_status tok_decode(const tokenizer *t, const uint32_t *ids, size_t n, mn_buf *out,
                                  mn_error *err);
MN_NODISCARD mn_status tok_cache_create(tok_cache **out /* OUT */, mn_error *err);
void tok_cache_destroy(tok_cache *c); /* NULL-safe */

/* tok_to_json -- a tokenizer.json Hugging Face loads (the byte tokenizer too: a byte-level
 * BPE without merges), with tags as special added tokens after tok_base (a slot no language
 * holds is <|unused:ID|>, so every id is where Hugging Face counts it); *out malloc'd */
MN_NODISCARD mn_status tok_to_json(const tokenizer *t, const tok_tags *tags, char **out /* OUT */,
                                   mn_error *err);

/*
 * tok_bpe_train -- a language-balanced byte-level BPE learned from JSONL {"lang", "text",
 * "split"?} (trainer/bpe_train.c; docs/tokenizer.md says why and how).  Each text is split by
 * the MNEMO pre-tokenizer, its pieces counted per language; each language's counts are
 * weighted so that its share of the text's characters is the sampler's
 * (replay_shares_temperature, replay_budget_unimax, or the data's own), and merges are learned
 * greedily on the weighted pair counts (ties: the pair of smaller ids, so a run is reproducible).
 *
 * *json is a tokenizer.json (malloc'd, the caller frees it) Hugging Face's tokenizers loads:
 * ids 0-255 the bytes in byte order (as the byte tokenizer), 256 <|endoftext|>, merged tokens
 * from 257, then the tags as special added tokens at consecutive ids: o->tags' (numbered from
 * TOK_FIRST_TAG by the database, which must be consecutive) or else the input's languages
 * sorted by code.  o->vocab counts every id; fewer merges are made when pairs run out.
 * MN_ERR_IO when a file cannot be read, MN_ERR_INPUT naming file:line for a bad record, a
 * vocab too small for bytes, eot and tags, or no training text; *json is NULL then.
 *
 * The parity loop (o->parity, a development parallel set {"lang", "item", "text"} that must
 * not be the test text): its texts are left out of their language's training counts (where
 * a dev text is one or more whole lines of a record: st->lang says how many records, texts
 * and bytes), so the premium is measured on text the tokenizer never saw; after each training, each
 * language's dev premium (its tokens on the items it shares with o->parity_ref over the reference's
 * tokens on them, by mnemo's encoder) multiplies its weight by (premium / the round's
 * median)^gamma, and it trains again, o->rounds trainings in all; *json is the round of the lowest
 * max dev premium (ties: the lower median, then the earlier round).  A language without dev items
 * keeps its weight (the median language's factor, 1); with o->floor no weight falls below round
 * 0's, so the loop gives weight to the languages above the median and takes none from the others
 * (the reference among them).  st->round says each round's max and median
 * (over the training languages with dev items, the reference among them at 1).
 */
typedef enum tok_balance {
  TOK_BALANCE_NONE,        /* the data's own mix */
  TOK_BALANCE_TEMPERATURE, /* shares proportional to characters^alpha (0: uniform) */
  TOK_BALANCE_UNIMAX,      /* UniMax: even shares, none over epochs x its text */
} tok_balance;

typedef struct tok_train_options {
  uint32_t vocab;             /* every id: 256 bytes, eot, merged tokens, tags */
  tok_balance balance;        /* how languages are weighted */
  double alpha;               /* TOK_BALANCE_TEMPERATURE's exponent, in [0, 1] */
  double epochs;              /* TOK_BALANCE_UNIMAX's most repeats of a language's text, >= 1 */
  int64_t max_bytes_per_lang; /* training text read per language at most (0: all) */
  bool all_splits;            /* false: training records only (evalset_record_split) */
  double heldout_fraction;    /* the hash split of records without "split" */
  const tok_tags *tags;       /* the database's tags, or NULL */
  const char *parity;         /* the parity loop's dev parallel set (JSONL), or NULL: none */
  const char *parity_ref;     /* its reference language (NULL: "eng") */
  int rounds;                 /* trainings in all with a dev set, 1..TOK_MAX_ROUNDS (0: 6) */
  double gamma;               /* a round's weight factor is (premium / median)^gamma (0: 4) */
  bool floor;                 /* no language's weight below its balanced one (round 0's) */
  bool dev_out;               /* the result, too, never learns from the dev texts (false: the
                               * best round's shares learned again from all the text) */
} tok_train_options;

#define TOK_MAX_ROUNDS   16
#define TOK_PARITY_GAMMA 4 /* the default gamma: chosen on the dev set (docs/tokenizer.md) */

typedef struct tok_train_stats {
  int64_t records, skipped; /* records trained on; held-out (or over the cap) not */
  int64_t words, pieces;    /* distinct pre-tokens; pre-tokens counted */
  uint32_t merges, vocab;   /* merges learned; ids in the file (tags included) */
  double read_s, merge_s;   /* seconds reading and splitting; learning merges */
  int nlangs;
  struct {
    char code[8];
    int64_t bytes;                             /* training text the result learned from */
    int64_t dev_records, dev_texts, dev_bytes; /* with a dev set: left out as its texts */
    double share;   /* its share of the weighted characters (of the round chosen) */
    double premium; /* its dev premium in the round chosen (NAN: no dev items, no dev set) */
  } lang[TOK_MAX_TAGS];
  int nrounds, best_round; /* the parity loop's trainings (1 without a dev set); the one kept */
  bool refit;              /* the result: the best round's shares over all the text (dev too) */
  int dev_langs;           /* training languages with dev items (the reference included) */
  struct {
    double max, median; /* dev premium over the training languages with dev items */
    char worst[8];      /* the language of the max */
    double seconds;     /* training and measuring */
  } round[TOK_MAX_ROUNDS];
} tok_train_stats;

MN_NODISCARD mn_status tok_bpe_train(const char *const *paths, int npaths,
                                     const tok_train_options *o, char **json /* OUT */,
                                     tok_train_stats *st /* OUT */, mn_error *err);

/* ---------------------------------------------------------------- the model */

/* The model families (docs/models.md): GPT-2's (pre-LayerNorm blocks, GELU MLP, learned
 * positions, tied head; what mnemo trains from scratch) and the Llama family's (RMSNorm, rotary
 * embeddings, grouped-query attention, SwiGLU MLP, tied or untied head; Qwen2 adds biases on
 * the query, key and value projections), imported from Hugging Face (interop.c). */
typedef enum gpt_arch {
  GPT_ARCH_GPT2 = 0,
  GPT_ARCH_LLAMA,
  GPT_ARCH_QWEN2,
  GPT_ARCH_COUNT
} gpt_arch;
const char *gpt_arch_name(gpt_arch a); /* "gpt2", "llama", "qwen2" */

typedef struct gpt_config {
  int max_seq_len;             /* maxT: learned positions (GPT-2), or the longest context */
  int vocab_size;              /* V: tokens the model predicts (bytes, eot, tags) */
  int padded_vocab;            /* Vp >= V: rows of wte; padding rows are never predicted */
  int n_layer, n_head, n_embd; /* L, NH, C */
  /* the family; the rest is the Llama family's (zero for GPT-2, as in every checkpoint made
   * before families) */
  gpt_arch arch;
  int n_kv_head;     /* KVH: key and value heads (grouped-query attention); divides NH */
  int n_ff;          /* F: the MLP's width (its gate and up projections) */
  bool untied;       /* an output head of its own (lm_head), else the head is wte */
  float norm_eps;    /* RMSNorm's epsilon */
  double rope_theta; /* rotary embeddings' base */
  /* Llama 3's rope_scaling (factor 0: none): frequencies below the low band divided by
   * factor, smoothly in between */
  double rope_factor, rope_low_freq, rope_high_freq;
  int rope_orig_max; /* original_max_position_embeddings */
} gpt_config;

/* Parameter tensors of one block, in layout order (shapes with C = n_embd); a family has a
 * subset of them, in this order.  GPT-2: all.  Llama: LN1W (RMSNorm), QKVW ((NH + 2 KVH) HD,
 * C: queries, keys, values), ATTPROJW, LN2W, FCW (2F, C: gate then up), FCPROJW (C, F); Qwen2
 * adds QKVB. */
enum {
  GPT_LN1W,     /* (C) */
  GPT_LN1B,     /* (C) */
  GPT_QKVW,     /* (3C, C) */
  GPT_QKVB,     /* (3C) */
  GPT_ATTPROJW, /* (C, C) */
  GPT_ATTPROJB, /* (C) */
  GPT_LN2W,     /* (C) */
  GPT_LN2B,     /* (C) */
  GPT_FCW,      /* (4C, C) */
  GPT_FCB,      /* (4C) */
  GPT_FCPROJW,  /* (C, 4C) */
  GPT_FCPROJB,  /* (C) */
  GPT_BLOCK_TENSORS
};

/* gpt_block_has -- whether a block of the family has tensor t (GPT_LN1W...) */
bool gpt_block_has(const gpt_config *cfg, int t);
/* gpt_block_tensors -- tensors per block; gpt_lead_tensors -- tensors before block 0 (wte,
 * and wpe for GPT-2) */
int gpt_block_tensors(const gpt_config *cfg);
int gpt_lead_tensors(const gpt_config *cfg);

typedef struct gpt gpt;

/* gpt_num_params -- parameters of a configuration (wte counts padded rows). */
size_t gpt_num_params(const gpt_config *cfg);
/* gpt_block_offset -- first parameter of block l (l == L: the final norm, then an untied
 * head). */
size_t gpt_block_offset(const gpt_config *cfg, int l);
/* gpt_tensor_info -- the i-th tensor of the layout: the lead tensors, each block's, then the
 * final norm's (and the untied head, last). */
int gpt_num_tensors(const gpt_config *cfg);
void gpt_tensor_info(const gpt_config *cfg, int i, char name[64] /* OUT */,
                     size_t shape[2] /* OUT */, int *ndim /* OUT */, size_t *offset /* OUT */);
MN_NODISCARD mn_status gpt_config_check(const gpt_config *cfg, mn_error *err);
/* gpt_config_equal -- the same model shape and family, field by field */
bool gpt_config_equal(const gpt_config *a, const gpt_config *b);

/*
 * gpt_create -- a model for batches of up to B sequences of up to T tokens.
 * Parameters are initialised GPT-2 style from seed (N(0, 0.02), projections
 * scaled by 1/sqrt(2L), LayerNorm 1 and 0, biases 0).  All memory (params,
 * activations) is allocated here, once; the gradients and AdamW moments come with training
 * (gpt_state_from).
 */
MN_NODISCARD mn_status gpt_create(const gpt_config *cfg, int B, int T, uint64_t seed,
                                  const kernels_backend *k, gpt **out /* OUT */, mn_error *err);
void gpt_destroy(gpt *m);

const gpt_config *gpt_get_config(const gpt *m);
/* Host views (on a device backend, copies brought down when the device's are newer):
 * after writing parameters through gpt_params, or moments through gpt_adam_m/v, say so
 * with gpt_params_written / gpt_opt_written (no-ops on the CPU, where the view is the
 * buffer). */
float *gpt_params(gpt *m); /* num_params floats, layer-major */
/* The gradients and the AdamW moments cover only a suffix of the parameters, from
 * gpt_state_from: none until the model first trains (an evaluation or a distillation
 * teacher never has them), then its trainable part, grown -- values kept, the new part zero
 * -- when gpt_set_trainable thaws lower blocks, never shrunk.  gpt_grads, gpt_adam_m and
 * gpt_adam_v return num_params - gpt_state_from floats, parameter i at [i - gpt_state_from]
 * (the trainable part's, allocated now, when there was no state); NULL when out of memory. */
float *gpt_grads(gpt *m);
float *gpt_adam_m(gpt *m);
float *gpt_adam_v(gpt *m);
size_t gpt_state_from(const gpt *m);
/* gpt_reserve_state -- grow the state to cover parameters [from, num_params) (a resumed
 * run's moments) */
MN_NODISCARD mn_status gpt_reserve_state(gpt *m, size_t from, mn_error *err);
void gpt_params_written(gpt *m);
void gpt_opt_written(gpt *m);
size_t gpt_params_count(const gpt *m);
/* gpt_grads_backend -- the trainable suffix of the gradients in the backend's own memory
 * (device memory on CUDA) and its length: for a data-parallel all-reduce (NULL and 0 when
 * out of memory) */
float *gpt_grads_backend(gpt *m, size_t *n /* OUT */);
/* gpt_sync -- wait for the backend; its first failure since the last sync (MN_ERR_CUDA
 * with file:line on a device).  Once per step. */
MN_NODISCARD mn_status gpt_sync(gpt *m, mn_error *err);

/*
 * gpt_forward -- logits for tokens (B,T); with targets (B,T) also the mean loss
 * (returned) and per-position losses (gpt_losses).  B, T at most those of create.
 * Returns -1 without targets.
 */
float gpt_forward(gpt *m, const int32_t *tokens, const int32_t *targets, int B, int T);
/* gpt_forward_queue / gpt_mean_loss -- the same in two parts: a training step queues its
 * forward, backward and update and reads the loss at its end (on a device, nothing waits
 * before then) */
void gpt_forward_queue(gpt *m, const int32_t *tokens, const int32_t *targets, int B, int T);
float gpt_mean_loss(gpt *m);
const float *gpt_losses(const gpt *m); /* (B,T) nats, after a forward with targets */
const float *gpt_probs(const gpt *m);  /* (B,T,Vp), after a forward with targets */
const float *gpt_logits(const gpt *m); /* (B,T,Vp), after any forward */

/*
 * gpt_set_trainable -- progressive unfreezing: train blocks first..L-1 and the final
 * norm (and an untied head); first = -1 (the default) trains the embeddings too (a tied head
 * is the embeddings), first = L only the final norm (and an untied head).  Out-of-range
 * values are clamped.  The
 * trainable parameters are one suffix of the layer-major buffer, from
 * gpt_trainable_offset; backward stops at block `first`, and gpt_update leaves the
 * frozen prefix (values and moments) bit-identical.
 */
void gpt_set_trainable(gpt *m, int first);
/* gpt_set_first_step -- the step at which tensor i (gpt_tensor_info's numbering) is first
 * updated, for Adam's bias correction (default 1); a fine-tune sets it from its stages. */
void gpt_set_first_step(gpt *m, int tensor, int64_t step);
int gpt_trainable_first(const gpt *m);
size_t gpt_trainable_offset(const gpt *m);

/* gpt_zero_grad / gpt_backward -- gradients of the last forward's mean loss (adds into grads);
 * only the trainable suffix is zeroed and computed. */
void gpt_zero_grad(gpt *m);
void gpt_backward(gpt *m);

/* gpt_grad_norm -- the L2 norm of the trainable part's gradients (all of them by default). */
float gpt_grad_norm(gpt *m);

/*
 * gpt_set_ewc -- elastic weight consolidation: the penalty lambda/2 * sum F (theta - anchor)^2
 * over the trainable parameters, its gradient fused into gpt_update (added after clipping:
 * the pull towards the anchor is not scaled down with the data gradient).  fisher and
 * anchor are num_params floats in the layer-major layout, borrowed until EWC is set
 * again; NULL fisher, NULL anchor or lambda 0 turn it off.
 */
void gpt_set_ewc(gpt *m, const float *fisher, const float *anchor, float lambda);
/* gpt_ewc_penalty -- the penalty at the current weights (0 without EWC). */
double gpt_ewc_penalty(const gpt *m);

/*
 * gpt_set_soft_targets -- distillation: sequences row0..B-1 of every following backward are
 * trained towards (1 - w) onehot(target) + w soft instead of the one-hot target; soft is
 * ((B - row0) * T, Vp) probabilities (a teacher's gpt_probs), borrowed until set again.
 * NULL soft or w 0 turn it off.  The loss gpt_forward returns stays the one-hot one.
 */
void gpt_set_soft_targets(gpt *m, int row0, const float *soft, float w);

typedef struct gpt_adamw {
  float lr, beta1, beta2, eps, weight_decay;
  float grad_clip; /* <= 0: none */
  float lr_factor; /* discriminative rates: each block down divides lr by it (<= 1: none) */
} gpt_adamw;

/*
 * gpt_update -- one AdamW step (step t >= 1) over the trainable parameters, after
 * clipping the gradient norm; weight decay on matrices only (not biases,
 * LayerNorms).  Returns the gradient norm (of the trainable part) before clipping.  A
 * non-finite norm takes no step: weights and moments stay as they were.
 */
float gpt_update(gpt *m, const gpt_adamw *opt, int t);

/* gpt_lr_at -- warm-up then cosine decay to min_frac * lr, for step t (1-based) of total. */
float gpt_lr_at(float lr, int warmup, int total, float min_frac, int t);

/* gpt_flops_per_token -- 6N + 6 L C T (training FLOPs per token, ANCHORS.md); N without an
 * untied model's input embeddings (a lookup). */
double gpt_flops_per_token(const gpt_config *cfg, int T);

/* ---------------------------------------------------------------- checkpoints */

/*
 * A checkpoint is one safetensors file: every parameter tensor (F32, our
 * layout order, names as in gpt_tensor_info) and __metadata__ with the
 * format, the model config, the tag table, the lineage (free JSON), the step
 * and the SHA-256 of the tensor data.  The optimizer state (AdamW m and v, the
 * step, the data sampler's state) is a second safetensors file, PATH.opt,
 * that names the SHA-256 of the weights it belongs to.  Both are written
 * atomically; loading checks everything and names the file and the problem.
 */
typedef struct ckpt_meta {
  gpt_config config;
  tok_tags tags;
  const tokenizer *tok;                   /* save: the model's tokenizer (NULL: bytes) */
  char tok_sha256[MN_SHA256_HEX_LEN + 1]; /* its identity (set by save and load) */
  int64_t step;
  char lineage[8192]; /* JSON text; "{}" when none */
  /* where the model came from, as JSON text: "" for a model mnemo trained from scratch; for an
   * import, {"hf": {"config": its config.json, "dtype": ..., ...}} (import_hf).  Carried into
   * every checkpoint made from it (fine-tunes, resumes), so export_hf writes the same model
   * back. */
  char origin[8192];
  char sha256[MN_SHA256_HEX_LEN + 1]; /* of the tensor data (filled by save and load) */
} ckpt_meta;

typedef struct ckpt_opt_state {
  int64_t step;
  uint64_t rng; /* the data sampler's state */
  char weights_sha256[MN_SHA256_HEX_LEN + 1];
  char *adapt; /* a fine-tune's drift controller (JSON) or NULL: ckpt_save_opt's is the
                * caller's, ckpt_load_opt's is malloc'd (free it) */
} ckpt_opt_state;

MN_NODISCARD mn_status ckpt_save(const char *path, gpt *m, ckpt_meta *meta /* sha256 set */,
                                 mn_error *err);
MN_NODISCARD mn_status ckpt_save_opt(const char *path, gpt *m, const ckpt_opt_state *st,
                                     mn_error *err);
/* ckpt_read_meta -- the metadata (for creating a model of the right shape), only when the
 * file holds that model: its size and tensor table are checked against the config first, so
 * a header's claim never sizes an allocation (MN_ERR_CORRUPT naming the file otherwise). */
MN_NODISCARD mn_status ckpt_read_meta(const char *path, ckpt_meta *meta /* OUT */, mn_error *err);
/* ckpt_load -- weights into m, whose config must equal the file's. */
MN_NODISCARD mn_status ckpt_load(const char *path, gpt *m, ckpt_meta *meta /* OUT */,
                                 mn_error *err);
/* ckpt_load_opt -- m and v into m; refuses a state that belongs to other weights. */
MN_NODISCARD mn_status ckpt_load_opt(const char *path, gpt *m, const char *weights_sha256,
                                     ckpt_opt_state *st /* OUT */, mn_error *err);

/*
 * The diagonal Fisher of a checkpoint, for EWC: one F32 tensor "fisher" of num_params
 * values in the layer-major layout, beside the checkpoint whose weights (sha256) it was
 * estimated at; info is JSON (languages and their windows, weighting, gamma, previous).
 * The checksum covers the weights' sha256, info and the data; a load refuses a damaged file,
 * another model's size, and negative or non-finite values.
 */
typedef struct fisher_meta {
  char weights_sha256[MN_SHA256_HEX_LEN + 1];
  char info[8192];
  char sha256[MN_SHA256_HEX_LEN + 1]; /* of the file's content (set by load) */
} fisher_meta;
MN_NODISCARD mn_status ckpt_save_fisher(const char *path, const float *fisher, size_t np,
                                        const fisher_meta *meta, mn_error *err);
MN_NODISCARD mn_status ckpt_load_fisher(const char *path, float *fisher /* OUT, np */, size_t np,
                                        fisher_meta *meta /* OUT */, mn_error *err);

/* ---------------------------------------------------------------- other ecosystems */

/* export_hf -- DIR/config.json and DIR/model.safetensors for Hugging Face GPT2LMHeadModel. */
MN_NODISCARD mn_status export_hf(const char *ckpt, const char *dir, mn_error *err);
/*
 * import_hf -- a Hugging Face model folder (config.json, model.safetensors or its shards,
 * tokenizer.json) of GPT2LMHeadModel, LlamaForCausalLM or Qwen2ForCausalLM into a checkpoint
 * at out, with tag_rows rows for language tags after the tokenizer's ids (< 0: the default,
 * 256; more when a tag needs it) and tags (may be NULL) the database's language tags
 * (numbered from TOK_FIRST_TAG: moved to follow the tokenizer, as shards number them; a
 * tokenizer.json mnemo exported brings its own).  Anything it does not implement is refused
 * by name (MN_ERR_INPUT), nothing written.
 */
MN_NODISCARD mn_status import_hf(const char *dir, const char *out, int tag_rows,
                                 const tok_tags *tags, mn_error *err);
/* import_llmc -- an llm.c fp32 GPT-2 checkpoint into our checkpoint format at out. */
MN_NODISCARD mn_status import_llmc(const char *file, const char *out, mn_error *err);

/* ---------------------------------------------------------------- shards */

/*
 * A shard holds token sections, one per language: every document is
 * [tag, tokens..., eot], documents of a language back to back, made by one tokenizer.
 * Layout (all little-endian):
 *   0   magic "MNSHARD\0"          8   u32 version (2)     12  u32 token bytes (2 or 4)
 *   16  u32 sections               20  u32 tokenizer base  24  u64 tokens in all
 *   32  the checksum (32 bytes): SHA-256 of, in this order, the 4 header bytes at 20 (the
 *       tokenizer base), the 40 at 64 (the tokenizer's sha, end-of-text id, reserved word),
 *       then the token data as stored; so a header cannot be given another tokenizer
 *   64  sha256 of the tokenizer (tok_sha256, 32 bytes)
 *   96  u32 end-of-text id         100 u32 reserved (0)
 *   104 sections: char code[8], u32 tag, u32 documents, u64 first token, u64 tokens
 *   then the tokens, u16 each (u32 when an id needs it).
 * Version 1 (a 64-byte header, u16 tokens, base and eot implied) was the byte tokenizer's and
 * is still read; its checksum at 32 is the SHA-256 of the token data alone.  The checksum is
 * the shard's identity (shard.sha256) in either version.  The reader checks every field,
 * that sections tile the tokens in order and each begins with its tag and ends with eot, that
 * no token is another language's tag, and the checksum.
 */
#define SHARD_VERSION 2

typedef struct shard_section {
  char code[8];
  int tag;
  uint32_t docs;
  uint64_t first, count; /* tokens */
} shard_section;

typedef struct shard {
  uint32_t *tokens;
  uint64_t ntokens;
  shard_section *sections;
  uint32_t nsections;
  char sha256[MN_SHA256_HEX_LEN + 1];     /* its checksum (at 32): the shard's identity */
  char tok_sha256[MN_SHA256_HEX_LEN + 1]; /* the tokenizer that made them */
  uint32_t base, eot;                     /* its first tag id and its end of text */
} shard;

/* shard_builder -- documents in, tokenized by tok (borrowed), sections by language; every
 * language must have a tag in tags (borrowed; ids from tok_base), or shard_builder_add
 * refuses it. */
typedef struct shard_builder shard_builder;
MN_NODISCARD mn_status shard_builder_create(const tokenizer *tok, const tok_tags *tags,
                                            shard_builder **out /* OUT */, mn_error *err);
void shard_builder_destroy(shard_builder *b);
MN_NODISCARD mn_status shard_builder_add(shard_builder *b, const char *lang, const char *text,
                                         size_t n, mn_error *err);
/* shard_builder_write -- sections in language order, written atomically. */
MN_NODISCARD mn_status shard_builder_write(shard_builder *b, const char *path, mn_error *err);

/* shard_read -- a shard checked whole into *s (the caller's struct; release with shard_fini).
 * On failure *s holds nothing to release. */
MN_NODISCARD mn_status shard_read(const char *path, shard *s /* OUT */, mn_error *err);
void shard_fini(shard *s);
/* shard_read_many -- n shards into a new array *out (release with shard_destroy_many(*out, n));
 * on failure *out is NULL and the error names the shard. */
MN_NODISCARD mn_status shard_read_many(const char *const *paths, int n, shard **out /* OUT */,
                                       mn_error *err);
void shard_destroy_many(shard *s, int n); /* NULL-safe */
/*
 * shard_section_fits -- whether a section of the shard at shard_path can be read by the
 * checkpoint at ckpt_path (its meta): its tag is the one the checkpoint gives its language,
 * or, for a language the checkpoint has no tag for, a tag inside its vocabulary that no other
 * language holds.  MN_ERR_INPUT otherwise, naming the language, both files and both tags.
 */
MN_NODISCARD mn_status shard_section_fits(const shard_section *sec, const char *shard_path,
                                          const ckpt_meta *meta, const char *ckpt_path,
                                          mn_error *err);
/* shard_fits -- the whole shard: made by the checkpoint's tokenizer, every section fitting */
MN_NODISCARD mn_status shard_fits(const shard *s, const char *shard_path, const ckpt_meta *meta,
                                  const char *ckpt_path, mn_error *err);

/* ---------------------------------------------------------------- evaluation sets */

/* An evaluation set (trainer/evalset.c): held-out documents, parallel items and probes, one
 * versioned, checksummed file, so a candidate and its baseline are scored on the same items. */
typedef enum evalset_kind { EVAL_HELDOUT, EVAL_PARALLEL, EVAL_PROBE } evalset_kind;
const char *evalset_kind_name(evalset_kind k);

typedef struct evalset_item {
  evalset_kind kind;
  char lang[8];
  char *id;   /* heldout: 16 hex of the text's SHA-256; parallel: the item; probe: report-N */
  char *text; /* what is scored (a probe's expected text when it has one) */
  size_t len; /* bytes */
  int64_t ref_chars;     /* parallel: characters of the reference language's version */
  char *report, *status; /* probe: the report and accepted|fixed */
  double fixed_bits;     /* probe marked fixed: its bits then; else -1 */
} evalset_item;

typedef struct evalset {
  evalset_item *items; /* sorted by kind, language, id */
  size_t n;
  char sha256[MN_SHA256_HEX_LEN + 1]; /* of the items: the set's version */
  char reference[8];                  /* the parallel items' reference language, or "" */
} evalset;

typedef struct evalset_sources {
  const char *const *heldout; /* JSONL {"lang", "text", "split"?}: only held-out documents
                               * are taken (evalset_record_split: "split" as stored at
                               * ingest; without it, the hash split at heldout_fraction) */
  int nheldout;
  double heldout_fraction; /* ingest.heldout_fraction: for records without "split" only */
  const char *parallel;    /* JSONL {"lang", "item", "text"} (scripts/corpus), or NULL */
  const char *reference;   /* the language whose characters normalise parallel items */
  const char *probes;      /* JSONL {"report", "lang", "text", "expected"?, "status",
                            * "fixed_bits"?}, or NULL */
  const tok_tags *tags;    /* only these languages (NULL: all) */
  int64_t max_items;       /* held-out documents per language (0: all) */
  int64_t max_item_bytes;  /* a held-out document's first bytes only, cut at a character
                            * boundary (0: all of it) */
} evalset_sources;

typedef struct evalset_counts {
  int64_t items[3];                                                        /* by kind */
  int64_t not_heldout, other_language, no_reference, duplicates, over_cap; /* left out */
  int64_t split_stored, split_hashed; /* held-out file records split by their "split", by hash */
  char sha256[MN_SHA256_HEX_LEN + 1];
} evalset_counts;

/* evalset_build -- the set from its sources, written atomically to out; a bad record is an
 * error naming its file and line, and nothing is written. */
MN_NODISCARD mn_status evalset_build(const evalset_sources *src, const char *out,
                                     evalset_counts *counts /* OUT */, mn_error *err);
/* evalset_load -- a set, its checksum and every item checked. */
MN_NODISCARD mn_status evalset_load(const char *path, evalset *s /* OUT */, mn_error *err);
/*
 * evalset_record_split -- whether a corpus record {"lang", "text", "split"?} is a held-out
 * document.  The split stored at ingest (mnemo.documents.split, exported as
 * "split": "train" | "heldout") is the truth and is taken as it is: ingest.heldout_fraction
 * may have changed since.  A record without one (a corpus file made by hand) is split by
 * ingest's hash rule (mn_split_heldout of the text's SHA-256) at `fraction`, which agrees
 * with what ingest stored only at the fraction the documents were ingested at.  *by_hash
 * says which rule decided.  MN_ERR_INPUT when "split" is there but neither value (the
 * caller adds file:line).
 */
MN_NODISCARD mn_status evalset_record_split(struct json_t *rec, const char *text, size_t n,
                                            double fraction, bool *heldout /* OUT */,
                                            bool *by_hash /* OUT */, mn_error *err);

void evalset_fini(evalset *s);
/* evalset_load_many -- several sets as one: the items of all in order, the version the hash
 * of their versions (one set: the hash of its version); an item in two sets (it would count
 * twice) and parallel items normalised by different references are refused.  The caller
 * owns *all (evalset_fini); on failure it holds nothing. */
MN_NODISCARD mn_status evalset_load_many(const char *const *paths, int n, evalset *all /* OUT */,
                                         mn_error *err);
/* evalset_item_cmp -- the set's order: kind, then language, then id (0: the same item) */
int evalset_item_cmp(const evalset_item *a, const evalset_item *b);
/* evalset_score -- bits[i]: the NLL in bits of item i's text (its tokens under tok, the
 * model's tokenizer) under m (created for B rows of T); every item's language must have a tag
 * in tags.  bits[i] / items[i].len is bits per byte whatever the tokenizer. */
MN_NODISCARD mn_status evalset_score(gpt *m, const tokenizer *tok, int B, int T,
                                     const tok_tags *tags, const evalset *s,
                                     double *bits /* OUT, s->n */, mn_error *err);

/*
 * evalset_score_rows -- the one scoring loop (evalset_score's batches, `mnemo eval`'s shard
 * documents, triage through evalset_score_checkpoint): one forward over rows (rows, T) of
 * tokens x and targets y, then for each row r the NLL in bits of its first len[r]
 * predictions whose target is a token of text (tok_piece non-empty: tags, the eot and other
 * specials are not counted), added to *bits[r] one prediction at a time, and the bytes those
 * tokens stand for to *bytes[r] (bytes may be NULL).
 */
void evalset_score_rows(gpt *m, const tokenizer *tok, const int32_t *x, const int32_t *y, int rows,
                        int T, const int *len, double *const *bits, int64_t *const *bytes);

/* evalset_item_json -- one item's score as a JSON line {kind, lang, id, bytes, nll_bits}. */
MN_NODISCARD mn_status evalset_item_json(const evalset_item *it, double bits, char **out /* OUT */,
                                         mn_error *err);

typedef struct evalset_run {
  const char *cache_dir; /* scores cached per (checkpoint, set version); NULL or "": none */
  int batch;             /* rows per forward (<= 0: 8) */
  int seq_len;           /* window (at most the model's positions) */
  double scoring_s;      /* OUT: seconds in forward passes (0 when cached) */
  const kernels_backend *backend; /* where to score (NULL: the CPU) */
  /* progress (NULL: none): predictions scored of all the set's, at 0 before the first
   * forward and after each; not called when the scores come from the cache */
  void (*on_progress)(int64_t done, int64_t total, void *ctx);
  void *ctx;
} evalset_run;

/* evalset_score_checkpoint -- bits per item of the set under the checkpoint (its meta read),
 * from the cache when it holds them for exactly this checkpoint and set (*cached true). */
MN_NODISCARD mn_status evalset_score_checkpoint(const char *ckpt, const evalset *s,
                                                evalset_run *run, double *bits /* OUT */,
                                                ckpt_meta *meta /* OUT */, bool *cached /* OUT */,
                                                mn_error *err);

/* ---------------------------------------------------------------- the data sampler */

/*
 * loader -- training windows from one or more shards.  Each window is T+1
 * consecutive tokens of one language's section; its first input token is
 * replaced by the language tag, so every sequence starts with its tag.  The
 * language of each window is drawn with p proportional to (its tokens)^alpha,
 * the offset at a document's start for half the windows (generation begins a
 * text from its tag alone) and uniformly for the rest; the state is one 64-bit
 * number, saved with the optimizer state, so a resumed run draws the same
 * windows.
 */
typedef struct loader loader;

MN_NODISCARD mn_status loader_create(const shard *shards, int nshards, int T, double alpha,
                                     uint64_t seed, loader **out /* OUT */, mn_error *err);
void loader_destroy(loader *l);
/* loader_next -- B windows: tokens (B,T) and targets (B,T). */
void loader_next(loader *l, int B, int32_t *tokens, int32_t *targets);
uint64_t loader_state(const loader *l);
void loader_set_state(loader *l, uint64_t state);
/* loader_share -- the sampling probability of the i-th language, and its code. */
int loader_languages(const loader *l);
double loader_share(const loader *l, int i, const char **code /* OUT */);

/* ---------------------------------------------------------------- EWC */

/*
 * fisher_estimate -- the diagonal empirical Fisher of m's weights: for each language of the
 * shards, up to `windows` windows of T + 1 tokens spread evenly over its text (tag first,
 * as in training), each one sequence whose gradient is squared; the mean per language,
 * then the languages combined with equal weight (by_share false: a language with little
 * data is protected as much as one with much) or by their share of the windows.  m must
 * take batches of 1 x T.  info receives JSON of the languages and their windows.
 */
MN_NODISCARD mn_status fisher_estimate(gpt *m, const shard *shards, int nshards, int T, int windows,
                                       bool by_share, float *fisher /* OUT */, char *info,
                                       size_t info_len, mn_error *err);

#endif /* MNEMO_TRAINER_H */
