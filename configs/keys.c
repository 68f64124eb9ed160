/*
 * keys.c -- the one table that describes every configuration key.
 *
 * To add a key: add the field to mn_config (config.h), one row here, and the
 * key with a comment to configs/mnemo.example.yaml (a test checks that the
 * example sets every key).  Keys of one section stay together.  A string whose
 * text means more (a schedule, a secret) gets a check: the parser its user
 * calls, so that a config that loads is one the program can use.
 *
 * reloadable: whether mnemod takes a new value on SIGHUP.  Yes for what it reads
 * afresh at each use: the schedule, thresholds, webhooks, triage, and what a job's
 * attempt copies into its job.yaml when it starts (train, finetune, guards; a
 * SIGHUP changes the next attempt, never the running one).  No for what running
 * parts were built from: the database connection, the model's shape, the data
 * folder and the worker binary -- those keep their value until a restart.
 */
#include "configs/config.h"

#include <openssl/crypto.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- checks of values */

/* check_schedule -- empty (none), or a schedule that parses and fires on some day */
static bool check_schedule(const char *v, char *why, size_t whylen)
{
  mn_cron c;
  mn_error e = {0};
  int64_t next;
  if (!*v) return true;
  if (mn_cron_parse(v, &c, &e) != MN_OK) {
    snprintf(why, whylen, "%s", e.msg);
    return false;
  }
  /* from a fixed time, so a file's validity does not depend on the clock: a schedule that
   * fires at all fires within eight years of any day (cron.c) */
  if (mn_cron_next(&c, 0, &next, &e) != MN_OK) {
    snprintf(why, whylen, "schedule \"%s\": %s", v, e.msg);
    return false;
  }
  return true;
}

/* check_webhook_secret -- empty (none), or a key the webhook thread can sign with */
static bool check_webhook_secret(const char *v, char *why, size_t whylen)
{
  mn_webhook_key k;
  mn_error e = {0};
  if (!*v) return true;
  mn_status rc = mn_webhook_key_parse(v, &k, &e);
  OPENSSL_cleanse(&k, sizeof k);
  if (rc != MN_OK) snprintf(why, whylen, "%s", e.msg); /* never quotes the secret */
  return rc == MN_OK;
}

/* check_webhook_url -- empty (none), or an http(s) URL */
static bool check_webhook_url(const char *v, char *why, size_t whylen)
{
  mn_error e = {0};
  if (!*v) return true;
  if (mn_webhook_url_check(v, &e) == MN_OK) return true;
  snprintf(why, whylen, "%s", e.msg);
  return false;
}

/* check_listen -- empty (off), or HOST:PORT with an IPv4 address or a bracketed IPv6 one */
static bool check_listen(const char *v, char *why, size_t whylen)
{
  char host[64];
  int port;
  if (!*v) return true;
  if (mn_listen_parse(v, host, sizeof host, &port) != 0) {
    snprintf(why, whylen,
             "\"%s\" is not ADDRESS:PORT or PORT (\"127.0.0.1:8080\", \"[::1]:8080\", "
             "\"8080\"; port 0-65535)",
             v);
    return false;
  }
  return true;
}

/* ---------------------------------------------------------------- the table */

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const log_formats[] = {"logfmt", "json", NULL};
static const char *const replay_samplers[] = {"temperature", "unimax", NULL};
static const char *const devices[] = {"cpu", "cuda", NULL};
static const char *const maths[] = {"fp32", "tf32", "bf16", NULL};

#define INT_KEY(k, d, lo, hi, rel, h, field)                                                       \
  {                                                                                                \
    .key = (k), .type = MN_CFG_INT, .def = (d), .min = (lo), .max = (hi), .reloadable = (rel),     \
    .help = (h), .offset = offsetof(mn_config, field)                                              \
  }
#define DBL_KEY(k, d, lo, hi, rel, h, field)                                                       \
  {                                                                                                \
    .key = (k), .type = MN_CFG_DOUBLE, .def = (d), .dmin = (lo), .dmax = (hi),                     \
    .reloadable = (rel), .help = (h), .offset = offsetof(mn_config, field)                         \
  }
#define STR_KEY(k, d, rel, sec, h, field)                                                          \
  {                                                                                                \
    .key = (k), .type = MN_CFG_STRING, .def = (d), .reloadable = (rel), .secret = (sec),           \
    .help = (h), .offset = offsetof(mn_config, field)                                              \
  }
#define STR_KEY_CHECKED(k, d, rel, sec, chk, h, field)                                             \
  {                                                                                                \
    .key = (k), .type = MN_CFG_STRING, .def = (d), .reloadable = (rel), .secret = (sec),           \
    .help = (h), .offset = offsetof(mn_config, field), .check = (chk)                              \
  }
#define ENUM_KEY(k, d, ch, rel, h, field)                                                          \
  {                                                                                                \
    .key = (k), .type = MN_CFG_ENUM, .def = (d), .choices = (ch), .reloadable = (rel),             \
    .help = (h), .offset = offsetof(mn_config, field)                                              \
  }

static const mn_config_key keys[] = {
    ENUM_KEY("log.level", "info", log_levels, true, "least severe event written to stderr",
             log.level),
    ENUM_KEY("log.format", "logfmt", log_formats, true,
             "one line per event: key=value (logfmt) or one JSON object", log.format),

    STR_KEY("database.conninfo", "", false, true,
            "libpq connection string or URI; --db and MNEMO_DB override it; "
            "put passwords in the environment: password=${MNEMO_DB_PASSWORD}",
            database.conninfo),
    STR_KEY("database.application_name", "mnemo", false, false,
            "application_name shown in pg_stat_activity", database.application_name),
    INT_KEY("database.connect_timeout_s", "10", 1, 3600, false,
            "seconds to wait for a connection before giving up", database.connect_timeout_s),
    INT_KEY("database.migrate_lock_timeout_s", "60", 0, 86400, false,
            "seconds a migrator waits for another one to finish (0: forever)",
            database.migrate_lock_timeout_s),

    INT_KEY("ingest.max_document_bytes", "1048576", 1, 64 << 20, true,
            "largest document ingest accepts, in UTF-8 bytes; larger units are bad input",
            ingest.max_document_bytes),
    DBL_KEY("ingest.heldout_fraction", "0.05", 0.0, 0.5, true,
            "share of new documents held out for evaluation, chosen from each document's "
            "hash (stable); held-out text is never trained on",
            ingest.heldout_fraction),

    INT_KEY("model.n_layer", "6", 1, 256, false, "transformer blocks (L)", model.n_layer),
    INT_KEY("model.n_head", "8", 1, 256, false, "attention heads per block (NH)", model.n_head),
    INT_KEY("model.n_embd", "256", 8, 16384, false,
            "width of the residual stream (C); a multiple of n_head", model.n_embd),
    INT_KEY("model.max_seq_len", "256", 2, 65536, false, "learned positions (longest context)",
            model.max_seq_len),
    INT_KEY("model.vocab", "512", 260, 65535, false,
            "token ids the model knows: 256 bytes, <|eot|>, then language tags (padded so new "
            "languages need no resize)",
            model.vocab),

    INT_KEY("train.batch_size", "4", 1, 4096, true, "sequences per step (B)", train.batch_size),
    INT_KEY("train.seq_len", "256", 2, 65536, true,
            "tokens per sequence (T), at most model.max_seq_len", train.seq_len),
    INT_KEY("train.steps", "1000", 1, 1000000000, true, "optimizer steps of a run", train.steps),
    DBL_KEY("train.lr", "0.0006", 0.0, 1.0, true, "peak learning rate (AdamW)", train.lr),
    INT_KEY("train.warmup_steps", "100", 0, 1000000000, true,
            "linear warm-up steps before the cosine decay", train.warmup_steps),
    DBL_KEY("train.min_lr_frac", "0.1", 0.0, 1.0, true,
            "the cosine decays to this fraction of the peak rate", train.min_lr_frac),
    DBL_KEY("train.weight_decay", "0.1", 0.0, 1.0, true, "decoupled weight decay, on matrices only",
            train.weight_decay),
    DBL_KEY("train.grad_clip", "1.0", 0.0, 1000000.0, true,
            "clip the global gradient norm to this (0: no clipping)", train.grad_clip),
    DBL_KEY("train.beta1", "0.9", 0.0, 0.999999, false, "AdamW first-moment decay", train.beta1),
    DBL_KEY("train.beta2", "0.95", 0.0, 0.999999, false, "AdamW second-moment decay", train.beta2),
    INT_KEY("train.seed", "1234", 0, 4611686018427387903LL, true,
            "seed of the initial weights and of the data sampler (same seed, same run)",
            train.seed),
    INT_KEY("train.checkpoint_every", "500", 0, 1000000000, true,
            "steps between resumable checkpoints (0: only at the end)", train.checkpoint_every),
    INT_KEY("train.threads", "0", 0, 1024, true, "CPU threads for the CPU backend (0: every core)",
            train.threads),
    ENUM_KEY("train.device", "cpu", devices, true,
             "where the worker computes (pretrain, finetune, eval, guard, fisher, generate): "
             "cpu, or cuda (the GPU of the local rank; docs/cuda.md)",
             train.device),
    ENUM_KEY("train.math", "fp32", maths, true,
             "on cuda, how matrix products compute: fp32, tf32 or bf16 (weights stay fp32)",
             train.math),
    DBL_KEY("train.language_alpha", "0.3", 0.0, 1.0, true,
            "language sampling: p(language) proportional to tokens^alpha (0: uniform, 1: "
            "proportional)",
            train.language_alpha),

    STR_KEY("finetune.baseline", "", true, false,
            "the checkpoint a fine-tune starts from (the production model)", finetune.baseline),
    STR_KEY("finetune.fisher", "", true, false,
            "its diagonal Fisher (mnemo fisher) for EWC; empty: no EWC", finetune.fisher),
    DBL_KEY("finetune.ewc_lambda", "0", 0.0, 1e12, true,
            "EWC strength: the penalty is lambda/2 * sum F (theta - baseline)^2",
            finetune.ewc_lambda),
    STR_KEY("finetune.replay_store", "", true, false,
            "the replay store whose windows are mixed into each batch; empty: none",
            finetune.replay_store),
    DBL_KEY("finetune.replay_ratio", "0.25", 0.0, 0.95, true,
            "share of each batch's sequences drawn from the replay store", finetune.replay_ratio),
    STR_KEY("finetune.stages", "all", true, false,
            "progressive unfreezing: \"K:STEPS,...,all\" trains the top K blocks for STEPS steps, "
            "...; all: every parameter",
            finetune.stages),
    ENUM_KEY("finetune.replay_sampler", "temperature", replay_samplers, true,
             "which language a replayed window comes from: temperature (seen^train.language_alpha) "
             "or unimax (the run's replayed windows split evenly, capped at unimax_epochs of each "
             "language's store)",
             finetune.replay_sampler),
    DBL_KEY("finetune.unimax_epochs", "4", 0.01, 1000.0, true,
            "UniMax: at most this many passes over a language's replay windows in one run",
            finetune.unimax_epochs),
    DBL_KEY("finetune.lr_factor", "2.6", 1.0, 100.0, true,
            "discriminative rates: each block down divides the learning rate by this",
            finetune.lr_factor),
    STR_KEY("finetune.replay_boosts", "", true, false,
            "per-language factors on the replayed languages' shares: \"deu:3,swh:2\" (the "
            "languages a fresh batch endangers most, those of accepted reports)",
            finetune.replay_boosts),
    STR_KEY("finetune.report_boosts", "", true, false,
            "factors from accepted user reports, \"kat:1.5\", written by mnemod into a job's "
            "config; multiply replay_boosts; a language the replay store lacks is skipped",
            finetune.report_boosts),
    STR_KEY("finetune.guard_boosts", "", true, false,
            "factors on the replay shares of the languages a rejected candidate failed, "
            "\"deu:3\", written by mnemod into a guard retry's config; they multiply "
            "replay_boosts and report_boosts; a language the replay store lacks is skipped",
            finetune.guard_boosts),
    DBL_KEY("finetune.distill", "0.5", 0.0, 1.0, true,
            "distillation on replayed windows: their target is (1 - distill) the next token + "
            "distill the baseline's prediction; 0: the next token only (off without replay)",
            finetune.distill),
    DBL_KEY("finetune.adapt_max_boost", "2", 1.0, 100.0, true,
            "the drift controller: a replayed language the model in training predicts worse, "
            "against the baseline, than the others gets up to this factor more replay (1: off)",
            finetune.adapt_max_boost),

    STR_KEY_CHECKED(
        "schedule.refresh", "", true, false, check_schedule,
        "when mnemod refreshes: a five-field cron expression in UTC (\"0 3 * * *\") that "
        "fires on some day; empty: only on demand or when enough fresh data arrives",
        schedule.refresh),
    INT_KEY("schedule.min_fresh_bytes", "0", 0, INT64_MAX, true,
            "refresh when this many bytes of fresh training text have arrived in all (0: never "
            "for this reason)",
            schedule.min_fresh_bytes),
    INT_KEY("schedule.min_fresh_language_bytes", "0", 0, INT64_MAX, true,
            "refresh when one language has this many bytes of fresh training text (0: never "
            "for this reason)",
            schedule.min_fresh_language_bytes),

    STR_KEY("daemon.data_dir", "/var/lib/mnemo", false, false,
            "where mnemod keeps checkpoints/<id>/ and jobs/<id>/ (paths are built from ids only)",
            daemon.data_dir),
    STR_KEY("daemon.worker", "", false, false,
            "the mnemo worker binary; empty: the mnemo beside mnemod's own executable",
            daemon.worker),
    INT_KEY("daemon.lease_s", "60", 3, 86400, true,
            "a running job's lease (database clock), renewed every third of it; a job past its "
            "lease is taken back",
            daemon.lease_s),
    INT_KEY("daemon.max_attempts", "3", 1, 100, true,
            "attempts of a job before it is marked failed with its last error",
            daemon.max_attempts),
    INT_KEY("daemon.retry_backoff_s", "30", 0, 86400, true,
            "wait before a retry: this times 2^(attempt - 1)", daemon.retry_backoff_s),
    INT_KEY("daemon.step_timeout_s", "86400", 1, 31536000, true,
            "a worker step running longer is killed (the attempt fails)", daemon.step_timeout_s),
    INT_KEY("daemon.keep_failed_mb", "10240", 0, INT64_MAX, true,
            "failed jobs' folders are kept for debugging up to this many MiB, oldest removed first",
            daemon.keep_failed_mb),
    INT_KEY("daemon.fisher_windows", "8", 1, 1000000, true,
            "windows per language for the Fisher of a production checkpoint",
            daemon.fisher_windows),
    INT_KEY("daemon.replay_capacity", "1024", 1, 100000000, true,
            "windows per language in a replay store the daemon builds", daemon.replay_capacity),
    INT_KEY("daemon.eval_items", "200", 1, 1000000, true,
            "held-out documents per language in a refresh's evaluation set", daemon.eval_items),
    INT_KEY("daemon.eval_item_bytes", "0", 0, 1073741824, true,
            "score only the first bytes of each held-out document (cut at a character; 0: all "
            "of it): equal-sized items, and a cost that does not grow with document length",
            daemon.eval_item_bytes),

    STR_KEY_CHECKED(
        "webhooks.url", "", true, false, check_webhook_url,
        "where events are POSTed (Standard Webhooks), an http:// or https:// URL that needs "
        "webhooks.secret; empty: they stay in the outbox",
        webhooks.url),
    STR_KEY_CHECKED("webhooks.secret", "", true, true, check_webhook_secret,
                    "the signing secret: whsec_ + base64 of 24-64 bytes", webhooks.secret),
    INT_KEY("webhooks.timeout_s", "10", 1, 600, true, "connect and total time limit of a delivery",
            webhooks.timeout_s),
    INT_KEY("webhooks.max_attempts", "12", 1, 1000, true,
            "deliveries of one event before it is marked dead (backoff doubles from 1 s to 1 h)",
            webhooks.max_attempts),

    DBL_KEY("guards.tolerance", "0.01", 0.0, 10.0, true,
            "a language fails when its bits per byte may have grown by more than this share "
            "(the upper bound of the bootstrap interval of its relative change)",
            guards.tolerance),
    STR_KEY("guards.tolerances", "", true, false,
            "per-language overrides of guards.tolerance: \"kat:0.03,swh:0.05\"", guards.tolerances),
    INT_KEY("guards.min_items", "30", 1, 1000000, true,
            "fewer held-out items in a language: insufficient evidence, whatever they say",
            guards.min_items),
    INT_KEY("guards.resamples", "10000", 1000, 10000000, true,
            "paired bootstrap resamples per language", guards.resamples),
    DBL_KEY("guards.level", "0.95", 0.5, 0.9999, true,
            "confidence level of the two-sided bootstrap interval", guards.level),
    INT_KEY("guards.seed", "20261126", 0, 4611686018427387903LL, true,
            "seed of the bootstrap (the same evidence, the same verdict)", guards.seed),
    DBL_KEY("guards.parity_widen", "0.02", 0.0, 10.0, true,
            "the parity gap (worst language's parallel surprisal over the best's) may grow by "
            "at most this share",
            guards.parity_widen),
    STR_KEY("guards.parity_reference", "eng", true, false,
            "the language whose characters normalise parallel items", guards.parity_reference),
    DBL_KEY("guards.probe_tolerance", "0", 0.0, 10.0, true,
            "a probe of an accepted report may not get worse by more than this share (0: not "
            "at all); a fixed one may not pass its fixed bits by more",
            guards.probe_tolerance),
    STR_KEY("guards.must_improve", "", true, false,
            "languages that had fresh data and must improve (\"spa,kat\"); empty: none",
            guards.must_improve),
    DBL_KEY("guards.retry_boost", "3", 1.0, 100.0, true,
            "a refresh whose candidate fails for languages production was trained on is "
            "retried once, at the same watermark, with those languages' replay shares times "
            "this (1: no retry)",
            guards.retry_boost),

    INT_KEY("triage.max_text_bytes", "16384", 16, 65536, true,
            "a report text (or expected text) longer than this is rejected as invalid text",
            triage.max_text_bytes),
    INT_KEY("triage.lid_max_bytes", "1000000", 1000, 1000000000000000, true,
            "training text per language for the daemon's language identifier",
            triage.lid_max_bytes),
    INT_KEY("triage.batch", "256", 1, 100000, true, "reports triaged per worker run", triage.batch),
    DBL_KEY("triage.group_similarity", "0.6", 0.05, 1.0, true,
            "reports of one language whose MinHash Jaccard estimate reaches this are one group",
            triage.group_similarity),
    DBL_KEY("triage.boost_per_report", "0.5", 0.0, 100.0, true,
            "an accepted open report adds this to its language's replay sampling factor",
            triage.boost_per_report),
    DBL_KEY("triage.max_boost", "3", 1.0, 100.0, true,
            "a language's report boost never exceeds this factor", triage.max_boost),
    DBL_KEY("triage.boost_half_life_h", "168", 0.01, 87600.0, true,
            "hours after which an accepted report's boost has halved", triage.boost_half_life_h),
    DBL_KEY("triage.fix_margin", "0.02", 0.0, 1.0, true,
            "a promoted checkpoint fixes an accepted report when its probe's bits fell by this "
            "share against the baseline, or are no worse than the language's held-out bits per "
            "byte",
            triage.fix_margin),

    STR_KEY_CHECKED("console.listen", "", false, false, check_listen,
                    "where mnemod serves the console, /metrics, /healthz and /readyz: "
                    "\"127.0.0.1:8080\", \"[::1]:8080\" or a port alone (127.0.0.1); port 0: "
                    "any free one, logged; empty: no HTTP at all",
                    console.listen),
    STR_KEY("console.conninfo", "", false, true,
            "libpq string the console's people log in through, their login name and password "
            "added; it must reach PostgreSQL where it asks for a password (a host line with "
            "scram-sha-256 in pg_hba.conf); empty: database.conninfo",
            console.conninfo),
    STR_KEY("console.tls_cert", "", false, false,
            "PEM certificate (chain) for HTTPS; with console.tls_key; empty: plain HTTP (put a "
            "TLS reverse proxy in front, docs/console.md)",
            console.tls_cert),
    STR_KEY("console.tls_key", "", false, false, "PEM private key of console.tls_cert",
            console.tls_key),
    INT_KEY("console.max_connections", "256", 1, 4096, false,
            "connections served at once, each by a thread of its own (a page waiting for the "
            "database holds up no other); more wait to be accepted",
            console.max_connections),
    INT_KEY("console.max_sessions", "64", 1, 10000, false,
            "console sessions open at once, each with a database connection (a login keeps at "
            "most 8: its oldest is closed); more logins are refused until some end",
            console.max_sessions),
    INT_KEY("console.session_idle_s", "1800", 60, 604800, false,
            "a console session unused this long is closed (its database connection too)",
            console.session_idle_s),
    INT_KEY("console.login_failures", "5", 1, 1000, false,
            "failed logins from one address, or for one login name, before more are refused "
            "for console.login_window_s",
            console.login_failures),
    INT_KEY("console.login_window_s", "900", 1, 86400, false,
            "the window failed logins are counted in", console.login_window_s),
    INT_KEY("console.cache_ms", "1000", 0, 60000, false,
            "a login's pages without forms (languages, a language) are reused this long",
            console.cache_ms),
    INT_KEY("console.metrics_languages", "100", 0, 100000, false,
            "/metrics has per-language series only when there are at most this many languages "
            "(cardinality); 0: never",
            console.metrics_languages),
};

_Static_assert(sizeof keys / sizeof keys[0] <= MN_CONFIG_MAX_KEYS, "raise MN_CONFIG_MAX_KEYS");

const mn_config_key *mn_config_keys(size_t *n)
{
  *n = sizeof keys / sizeof keys[0];
  return keys;
}

const mn_config_key *mn_config_key_find(const char *key)
{
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    if (strcmp(keys[i].key, key) == 0) return &keys[i];
  return NULL;
}
