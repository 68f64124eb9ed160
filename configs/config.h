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
 * Validation is whole: a value is checked against its row when it is read (type, bounds,
 * and for some keys the parser of what it means: a schedule, a webhook secret, a webhook
 * URL), and the rules between keys once the file is read.  A config that loads is one
 * mnemod can run; mnemod (at start and on SIGHUP) and `mnemoctl config check` use the
 * same loader, so neither accepts what the other refuses.
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

enum { MN_CONFIG_MAX_KEYS = 112 };

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
    char *baseline, *fisher, *replay_store, *stages, *replay_boosts, *report_boosts, *guard_boosts;
    double ewc_lambda, replay_ratio, lr_factor, unimax_epochs, distill, adapt_max_boost;
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
    double tolerance, level, parity_widen, probe_tolerance, retry_boost;
    int64_t min_items, resamples, seed;
    char *tolerances, *must_improve, *parity_reference;
  } guards;
  struct {
    int64_t max_text_bytes, lid_max_bytes, batch;
    double group_similarity, boost_per_report, max_boost, boost_half_life_h, fix_margin;
  } triage;
  struct {
    char *listen, *conninfo, *tls_cert, *tls_key;
    int64_t max_connections, max_sessions, session_idle_s, login_failures, login_window_s;
    int64_t cache_ms;
    int64_t metrics_languages;
  } console;

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
  /* MN_CFG_STRING: NULL, or what the value must also be (a schedule, a webhook secret):
   * false with why filled (never quoting a secret) refuses it */
  bool (*check)(const char *value, char *why, size_t whylen);
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

/*
 * mn_config_keep_fixed -- what SIGHUP does with a new config: every key that is not
 * reloadable gets cur's value (and an origin saying so) in next.  changed[i] (may be NULL;
 * one per row of the table) says whether next had another value for row i.  On failure
 * (out of memory) next may hold some of cur's values; it stays valid to free.
 */
MN_NODISCARD mn_status mn_config_keep_fixed(mn_config *next, const mn_config *cur,
                                            bool *changed /* OUT, MN_CONFIG_MAX_KEYS */,
                                            mn_error *err);

/* mn_config_find -- the configuration file to read when no --config was given: $MNEMO_CONFIG,
 * else the first of ./mnemo.yaml, $XDG_CONFIG_HOME/mnemo/mnemo.yaml (default ~/.config),
 * /etc/mnemo/mnemo.yaml (the systemd unit's) that is a regular file, readable, owned by this
 * user or root and writable by no one else (a config names programs to run); NULL: none (the
 * defaults).  The result is env's, a literal or buf. */
const char *mn_config_find(char *buf, size_t cap);

/* mn_config_adhoc -- a run without any config file: daemon.data_dir, unless set, is the
 * user's own $XDG_STATE_HOME/mnemo (~/.local/state/mnemo; made, mode 0700), never the shared
 * /var/lib/mnemo a deployment's file names (ad-hoc runs overwrote a deployment's triage
 * files there); with no home folder at all, MN_ERR_CONFIG asking for daemon.data_dir. */
MN_NODISCARD mn_status mn_config_adhoc(mn_config *cfg, mn_error *err);

/* mn_config_dump -- the effective configuration as YAML, secrets redacted, origins as comments. */
MN_NODISCARD mn_status mn_config_dump(const mn_config *cfg, mn_buf *out, mn_error *err);
/* mn_config_dump_worker -- the configuration a worker process is given (job.yaml, the
 * triage worker's): every key but database.*, webhooks.* and console.*, which only the daemon
 * uses, so
 * no secret and nothing that needs one; it loads back as a valid configuration. */
MN_NODISCARD mn_status mn_config_dump_worker(const mn_config *cfg, mn_buf *out, mn_error *err);

/* mn_config_describe -- the table as Markdown (key, type, default, bounds, reloadable, help). */
MN_NODISCARD mn_status mn_config_describe(mn_buf *out, mn_error *err);

/* mn_config_apply_log -- configure common/'s logger from cfg->log. */
void mn_config_apply_log(const mn_config *cfg);

/* ---------------------------------------------------------------- values of keys
 *
 * What a value means, for keys whose values a type and bounds do not describe.  The key
 * table checks with these; the daemon uses them to act on the value.  Pure functions.
 */

/*
 * Schedules (schedule.refresh, cron.c): five-field cron expressions, in UTC.
 *
 * Fields: minute 0-59, hour 0-23, day of month 1-31, month 1-12, day of week 0-7 (0 and 7
 * are Sunday).  Each is a comma list of `*`, `N`, `A-B`, with an optional `/STEP` after `*`,
 * `A-B` or `N` (`N/S`: from N to the field's end).  As in Vixie cron, when both the day of
 * month and the day of week are restricted a day matches if either does.  Names (`mon`,
 * `jan`) and `@daily`-style macros are not accepted: one spelling, one meaning.
 */
typedef struct mn_cron {
  uint64_t minutes;          /* bit m: minute m */
  uint32_t hours;            /* bit h */
  uint32_t days;             /* bit d, 1..31 */
  uint32_t months;           /* bit m, 1..12 */
  uint32_t weekdays;         /* bit w, 0..6 (Sunday 0) */
  bool any_day, any_weekday; /* the field was `*` (or `*` with step 1) */
} mn_cron;

/* mn_cron_parse -- MN_ERR_INPUT naming the expression, the field and what is wrong. */
MN_NODISCARD mn_status mn_cron_parse(const char *expr, mn_cron *out /* OUT */, mn_error *err);

/* mn_cron_next -- the first whole minute strictly after `after` (seconds since the epoch,
 * UTC) at which the schedule fires; MN_ERR_INPUT when it never does (e.g. "0 0 30 2 *"). */
MN_NODISCARD mn_status mn_cron_next(const mn_cron *c, int64_t after, int64_t *next /* OUT */,
                                    mn_error *err);

/* Webhooks (webhooks.secret, webhooks.url; values.c). */
enum { MN_WEBHOOK_KEY_MAX = 64 };

typedef struct mn_webhook_key {
  uint8_t bytes[MN_WEBHOOK_KEY_MAX];
  size_t len;
} mn_webhook_key;

/* mn_webhook_key_parse -- "whsec_<base64>" (24 to 64 bytes of key); MN_ERR_INPUT otherwise,
 * never echoing the secret. */
MN_NODISCARD mn_status mn_webhook_key_parse(const char *secret, mn_webhook_key *key /* OUT */,
                                            mn_error *err);

/* mn_webhook_url_check -- an http:// or https:// URL naming a host, without blanks or
 * control characters; MN_ERR_INPUT saying what is wrong. */
MN_NODISCARD mn_status mn_webhook_url_check(const char *url, mn_error *err);

/* mn_listen_parse -- console.listen: "ADDR:PORT" with a numeric IPv4 address, "[ADDR]:PORT"
 * with an IPv6 one, or a bare "PORT" (127.0.0.1); 0 and host (the address without
 * brackets), *port; -1 when malformed. */
int mn_listen_parse(const char *v, char *host, size_t hostlen, int *port /* OUT */);

#endif /* MNEMO_CONFIG_H */
