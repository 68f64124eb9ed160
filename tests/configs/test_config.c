/*
 * test_config.c -- the YAML loader: every error path names file:line:col and
 * the key, a bad file changes nothing, secrets never show, and the example
 * file documents every key.
 */
#include "configs/config.h"
#include "tests/test.h"

#include <stdlib.h>

/* load -- returns the status; on failure err holds the message. */
static mn_status load(const char *yaml, mn_config *cfg, mn_error *err)
{
  return mn_config_load_buffer("test.yaml", yaml, strlen(yaml), cfg, err);
}

static void expect_error(const char *yaml, const char *where, const char *what)
{
  mn_config cfg;
  mn_error err = {0};
  memset(&cfg, 0x5a, sizeof cfg);
  mn_status rc = load(yaml, &cfg, &err);
  T_CHECK_MSG(rc == MN_ERR_CONFIG, "yaml <<%s>> gave %s", yaml, mn_status_name(rc));
  T_CONTAINS(err.msg, where);
  T_CONTAINS(err.msg, what);
  /* the caller's struct is untouched by a failed load */
  unsigned char *p = (unsigned char *)&cfg;
  bool untouched = true;
  for (size_t i = 0; i < sizeof cfg; i++)
    untouched = untouched && p[i] == 0x5a;
  T_CHECK_MSG(untouched, "failed load wrote to the caller's struct: %s", yaml);
  if (rc == MN_OK) mn_config_fini(&cfg);
}

static void defaults_are_valid(void)
{
  mn_config cfg;
  mn_error err = {0};
  T_EQ_INT(mn_config_init(&cfg, &err), MN_OK);
  T_EQ_INT(cfg.log.level, MN_LOG_INFO);
  T_EQ_INT(cfg.log.format, MN_LOG_LOGFMT);
  T_EQ_STR(cfg.database.conninfo, "");
  T_EQ_INT(cfg.database.connect_timeout_s, 10);
  mn_config_fini(&cfg);
  /* empty files and comment-only files mean "all defaults" */
  T_EQ_INT(load("", &cfg, &err), MN_OK);
  mn_config_fini(&cfg);
  T_EQ_INT(load("# nothing here\n", &cfg, &err), MN_OK);
  mn_config_fini(&cfg);
}

static void good_file(void)
{
  mn_config cfg;
  mn_error err = {0};
  setenv("MNEMO_TEST_PW", "s3cret-pa$$", 1);
  const char *yaml = "log:\n"
                     "  level: DEBUG\n"
                     "  format: json\n"
                     "database:\n"
                     "  conninfo: \"host=/tmp dbname=mnemo password=${MNEMO_TEST_PW}\"\n"
                     "  connect_timeout_s: 3\n"
                     "  application_name: cost $$5\n";
  T_EQ_INT(load(yaml, &cfg, &err), MN_OK);
  T_EQ_INT(cfg.log.level, MN_LOG_DEBUG);
  T_EQ_INT(cfg.log.format, MN_LOG_JSON);
  T_EQ_STR(cfg.database.conninfo, "host=/tmp dbname=mnemo password=s3cret-pa$$");
  T_EQ_STR(cfg.database.application_name, "cost $5");
  T_EQ_INT(cfg.database.connect_timeout_s, 3);
  T_EQ_INT(cfg.database.migrate_lock_timeout_s, 60);
  T_CHECK(cfg.ingest.heldout_fraction == 0.05);
  /* dump: values with their origin, the secret redacted */
  mn_buf b;
  mn_buf_init(&b, 1 << 16);
  T_EQ_INT(mn_config_dump(&cfg, &b, &err), MN_OK);
  T_CHECK(!strstr(b.data, "s3cret"));
  T_CONTAINS(b.data, "conninfo: \"<redacted>\"  # test.yaml:5:13, secret");
  T_CONTAINS(b.data, "level: debug  # test.yaml:2:10");
  T_CONTAINS(b.data, "migrate_lock_timeout_s: 60  # default");
  T_CONTAINS(b.data, "heldout_fraction: 0.05  # default");
  mn_buf_fini(&b);
  /* mn_config_set: an override with its origin */
  T_EQ_INT(mn_config_set(&cfg, "database.connect_timeout_s", "7", "--flag", &err), MN_OK);
  T_EQ_INT(cfg.database.connect_timeout_s, 7);
  T_EQ_INT(mn_config_set(&cfg, "database.connect_timeout_s", "0", "--flag", &err), MN_ERR_CONFIG);
  T_CONTAINS(err.msg, "--flag: key \"database.connect_timeout_s\": 0 is out of bounds [1, 3600]");
  T_EQ_INT(cfg.database.connect_timeout_s, 7); /* unchanged */
  T_EQ_INT(mn_config_set(&cfg, "database.nope", "1", "--flag", &err), MN_ERR_CONFIG);
  /* literal values (--db, MNEMO_DB) keep their dollars */
  T_EQ_INT(mn_config_set_literal(&cfg, "database.conninfo", "password=a$$b${c", "--db", &err),
           MN_OK);
  T_EQ_STR(cfg.database.conninfo, "password=a$$b${c");
  mn_config_fini(&cfg);
}

static void error_paths(void)
{
  /* bad type */
  expect_error("database:\n  connect_timeout_s: soon\n", "test.yaml:2:22",
               "key \"database.connect_timeout_s\": expected an integer, got \"soon\"");
  /* out of bounds */
  expect_error("database:\n  connect_timeout_s: 99999\n", "test.yaml:2:22",
               "99999 is out of bounds [1, 3600]");
  /* numbers */
  expect_error("ingest:\n  heldout_fraction: lots\n", "test.yaml:2:21",
               "key \"ingest.heldout_fraction\": expected a number, got \"lots\"");
  expect_error("ingest:\n  heldout_fraction: 0.75\n", "test.yaml:2:21",
               "0.75 is out of bounds [0, 0.5]");
  expect_error("ingest:\n  heldout_fraction: nan\n", "test.yaml:2:21", "expected a number");
  /* bad enum */
  expect_error("log:\n  level: verbose\n", "test.yaml:2:10",
               "expected one of debug, info, warn, error, got \"verbose\"");
  /* unknown key with a suggestion */
  expect_error("log:\n  formt: json\n", "test.yaml:2:3",
               "key \"log.formt\": unknown key; did you mean \"log.format\"?");
  /* a right leaf in the wrong section */
  expect_error("level: info\n", "test.yaml:1:1", "did you mean \"log.level\"?");
  /* a misspelt section */
  expect_error("databse:\n  conninfo: x\n", "test.yaml:1:1",
               "key \"databse\": unknown key; did you mean \"database\"?");
  /* dotted names would dodge the duplicate check */
  expect_error("log: {level: info}\nlog.level: warn\n", "test.yaml:2:1", "may not contain \".\"");
  /* unknown with nothing near */
  expect_error("zebra_stripes: 12\n", "test.yaml:1:1", "key \"zebra_stripes\": unknown key");
  /* bad YAML at a known line and column */
  expect_error("log:\n  level: info\n\tformat: json\n", "test.yaml:3:1",
               "invalid YAML: found a tab character that violates indentation");
  expect_error("log: {level: info\n", "test.yaml:2:1", "invalid YAML");
  expect_error("log: [info\n", "test.yaml:1:6", "key \"log\": expected a mapping, got a list");
  /* missing environment variable; and a malformed reference */
  unsetenv("MNEMO_TEST_UNSET");
  expect_error("database:\n  conninfo: \"password=${MNEMO_TEST_UNSET}\"\n", "test.yaml:2:13",
               "environment variable \"MNEMO_TEST_UNSET\" is not set");
  expect_error("database:\n  conninfo: \"${1BAD}\"\n", "test.yaml:2:13",
               "malformed environment reference");
  /* structure */
  expect_error("log:\n  level: info\n  level: warn\n", "test.yaml:3:3", "duplicate key");
  expect_error("log: {level: info}\nlog: {format: json}\n", "test.yaml:2:1", "duplicate key");
  expect_error("log: debug\n", "test.yaml:1:6", "is a section");
  expect_error("log:\n  level: [info, warn]\n", "test.yaml:2:10",
               "expected a single value, got a list");
  expect_error("log:\n  level: {a: 1}\n", "test.yaml:2:10",
               "expected a single value, got a mapping");
  expect_error("- a\n- b\n", "test.yaml:1:1", "top level must be a mapping");
  expect_error("log: &x {level: info}\n", "test.yaml:1:6", "anchors and aliases");
  expect_error("a: &x 1\nlog:\n  level: *x\n", "test.yaml:1:4", "anchors and aliases");
  expect_error("log:\n  level: *x\n", "test.yaml:2:10", "anchors and aliases");
  expect_error("log:\n  level:\n", "test.yaml:2:9", "no value given");
  expect_error("log: {level: info}\n---\nlog: {level: warn}\n", "test.yaml:2:1",
               "only one YAML document");
  expect_error("database:\n  connect_timeout_s: \"1\\0\"\n", "test.yaml:2:22", "NUL byte");
}

static void secrets_never_printed(void)
{
  /* a secret's value does not appear even when the error is about it */
  setenv("MNEMO_TEST_PW", "hunter2", 1);
  mn_config cfg;
  mn_error err = {0};
  T_EQ_INT(
      load("database:\n  conninfo: \"password=${MNEMO_TEST_PW}\"\n  conninfo: x\n", &cfg, &err),
      MN_ERR_CONFIG);
  T_CHECK(!strstr(err.msg, "hunter2") && !strstr(err.detail, "hunter2"));
  T_EQ_INT(load("database:\n  conninfo: \"\"\n", &cfg, &err), MN_OK);
  mn_buf b;
  mn_buf_init(&b, 1 << 16);
  T_EQ_INT(mn_config_dump(&cfg, &b, &err), MN_OK);
  T_CONTAINS(b.data, "conninfo: \"\""); /* empty is shown as empty, not as a secret */
  mn_buf_fini(&b);
  mn_config_fini(&cfg);
}

static void too_big(void)
{
  size_t n = MN_CONFIG_MAX_FILE + 1;
  char *big = malloc(n + 1);
  memset(big, '#', n);
  big[n] = '\0';
  mn_config cfg;
  mn_error err = {0};
  T_EQ_INT(mn_config_load_buffer("big.yaml", big, n, &cfg, &err), MN_ERR_CONFIG);
  T_CONTAINS(err.msg, "exceeds the limit");
  free(big);
  T_EQ_INT(mn_config_load_file("/nonexistent/mnemo.yaml", &cfg, &err), MN_ERR_IO);
  T_CONTAINS(err.msg, "/nonexistent/mnemo.yaml");
}

/* the example file loads and sets every key of the table explicitly */
static void example_documents_every_key(void)
{
  const char *path = MNEMO_SOURCE_DIR "/configs/mnemo.example.yaml";
  mn_config cfg;
  mn_error err = {0};
  setenv("MNEMO_DB_PASSWORD", "example", 1);
  mn_status rc = mn_config_load_file(path, &cfg, &err);
  T_CHECK_MSG(rc == MN_OK, "%s", err.msg);
  if (rc != MN_OK) return;
  size_t n;
  const mn_config_key *keys = mn_config_keys(&n);
  for (size_t i = 0; i < n; i++)
    T_CHECK_MSG(cfg.origin[i].line > 0, "%s does not set \"%s\"", path, keys[i].key);
  /* and every default in the table is valid for its own row */
  for (size_t i = 0; i < n; i++) {
    T_CHECK_MSG(keys[i].help && strlen(keys[i].help) > 10, "%s has no help", keys[i].key);
    T_EQ_INT(mn_config_set(&cfg, keys[i].key, keys[i].def, "default", &err), MN_OK);
  }
  mn_config_fini(&cfg);
}

int main(void)
{
  T_RUN(defaults_are_valid);
  T_RUN(good_file);
  T_RUN(error_paths);
  T_RUN(secrets_never_printed);
  T_RUN(too_big);
  T_RUN(example_documents_every_key);
  return T_DONE();
}
