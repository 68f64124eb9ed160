/*
 * keys.c -- the one table that describes every configuration key.
 *
 * To add a key: add the field to mn_config (config.h), one row here, and the
 * key with a comment to configs/mnemo.example.yaml (a test checks that the
 * example sets every key).  Keys of one section stay together.
 */
#include "configs/config.h"

#include <stddef.h>
#include <string.h>

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const log_formats[] = {"logfmt", "json", NULL};

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
