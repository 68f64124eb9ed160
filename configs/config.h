/*
 * config.h -- mnemo's configuration: one typed struct, described by one table.
 *
 * A YAML file (libyaml) is read over the defaults of the table.  Every key of
 * the struct has exactly one row in the table (keys.c): name, type, default,
 * bounds, whether SIGHUP may change it, whether it is secret, and its help.
 * Errors name "file:line:col" and the key; unknown keys are refused with the
 * nearest known key suggested; "${NAME}" in a value is replaced by the
 * environment variable NAME ("$$" is a literal "$").  Secret values never
 * appear in messages or dumps.
 *
 * Not for: command-line parsing (daemon/), per-job specs (trainer/).
 */
#ifndef MNEMO_CONFIG_H
#define MNEMO_CONFIG_H

#include "common/common.h"

#define MN_CONFIG_MAX_FILE (1u << 20) /* largest config file read: 1 MiB */

typedef enum { MN_CFG_INT = 0, MN_CFG_STRING, MN_CFG_ENUM, MN_CFG_DOUBLE } mn_cfg_type;

/* Where a key's value came from. */
typedef struct mn_cfg_origin {
  const char *what; /* "default", a file name, "--db", "MNEMO_DB", ... (static or cfg->source) */
  int line, col;    /* 1-based position in the file; 0 when not from a file */
} mn_cfg_origin;

enum { MN_CONFIG_MAX_KEYS = 96 };

/* The typed configuration.  Strings are owned by the struct (mn_config_fini). */
typedef struct mn_config {
  struct {
    int level;  /* mn_log_level */
    int format; /* mn_log_format */
  } log;
  struct {
    char *conninfo;
    char *application_name;
    int64_t connect_timeout_s;
    int64_t migrate_lock_timeout_s;
  } database;
  struct {
    int64_t max_document_bytes;
    double heldout_fraction;
  } ingest;
  struct {
    int64_t n_layer, n_head, n_embd, max_seq_len, vocab;
  } model;
  struct {
    int64_t batch_size, seq_len, steps, warmup_steps, seed, checkpoint_every, threads;
    int device; /* 0 cpu, 1 cuda */
    int math;   /* kernels_math: 0 fp32, 1 tf32, 2 bf16 */
    double lr, min_lr_frac, weight_decay, grad_clip, beta1, beta2, language_alpha;
  } train;
  struct {
    char *baseline, *fisher, *replay_store, *stages, *replay_boosts, *report_boosts;
    double ewc_lambda, replay_ratio, lr_factor, unimax_epochs, distill;
    int replay_sampler; /* 0 temperature, 1 unimax */
  } finetune;
  struct {
    char *refresh;
    int64_t min_fresh_bytes, min_fresh_language_bytes;
  } schedule;
  struct {
    char *data_dir, *worker;
    int64_t lease_s, max_attempts, retry_backoff_s, step_timeout_s, keep_failed_mb;
    int64_t fisher_windows, replay_capacity, eval_items, eval_item_bytes;
  } daemon;
  struct {
    char *url, *secret;
    int64_t timeout_s, max_attempts;
  } webhooks;
  struct {
    double tolerance, level, parity_widen, probe_tolerance;
    int64_t min_items, resamples, seed;
    char *tolerances, *must_improve, *parity_reference;
  } guards;
  struct {
    int64_t max_text_bytes, lid_max_bytes, batch;
    double group_similarity, boost_per_report, max_boost, boost_half_life_h, fix_margin;
  } triage;

  char *source; /* the file last loaded, or NULL */
  mn_cfg_origin origin[MN_CONFIG_MAX_KEYS];
} mn_config;

/* One row of the table. */
typedef struct mn_config_key {
  const char *key; /* dotted path: "database.conninfo" */
  mn_cfg_type type;
  const char *def;            /* default, written as in a YAML file */
  int64_t min, max;           /* MN_CFG_INT bounds, inclusive */
  double dmin, dmax;          /* MN_CFG_DOUBLE bounds, inclusive */
  const char *const *choices; /* MN_CFG_ENUM: NULL-terminated; stored as the index */
  bool reloadable;            /* SIGHUP may change it */
  bool secret;                /* never printed */
  const char *help;
  size_t offset; /* of the field in mn_config */
} mn_config_key;

/* mn_config_keys -- the table; *n gets its length. */
const mn_config_key *mn_config_keys(size_t *n /* OUT */);
const mn_config_key *mn_config_key_find(const char *key);

/*
 * mn_config_init -- fill cfg with the defaults of the table.
 * On failure (out of memory) nothing needs freeing; otherwise call mn_config_fini.
 */
MN_NODISCARD mn_status mn_config_init(mn_config *cfg, mn_error *err);
void mn_config_fini(mn_config *cfg);

/*
 * mn_config_load_file / mn_config_load_buffer -- defaults, then the YAML on top.
 * On success cfg is initialised (call mn_config_fini).  On failure cfg holds
 * nothing to free and err names "file:line:col", the key and the problem.
 */
MN_NODISCARD mn_status mn_config_load_file(const char *path, mn_config *cfg /* OUT */,
                                           mn_error *err);
MN_NODISCARD mn_status mn_config_load_buffer(const char *name, const char *data, size_t len,
                                             mn_config *cfg /* OUT */, mn_error *err);

/*
 * mn_config_set -- set one key from text (as in a YAML file, "${ENV}" expanded),
 * recording origin (a static string).  On failure cfg is unchanged.
 */
MN_NODISCARD mn_status mn_config_set(mn_config *cfg, const char *key, const char *value,
                                     const char *origin, mn_error *err);

/* mn_config_set_literal -- as mn_config_set, but value is taken as it is: no "${ENV}"
 * expansion (for values from the command line or the environment, such as --db). */
MN_NODISCARD mn_status mn_config_set_literal(mn_config *cfg, const char *key, const char *value,
                                             const char *origin, mn_error *err);

/* mn_config_dump -- the effective configuration as YAML, secrets redacted, origins as comments. */
MN_NODISCARD mn_status mn_config_dump(const mn_config *cfg, mn_buf *out, mn_error *err);

/* mn_config_describe -- the table as Markdown (key, type, default, bounds, reloadable, help). */
MN_NODISCARD mn_status mn_config_describe(mn_buf *out, mn_error *err);

/* mn_config_apply_log -- configure common/'s logger from cfg->log. */
void mn_config_apply_log(const mn_config *cfg);

#endif /* MNEMO_CONFIG_H */
