/*
 * test_config.c -- the YAML loader: every error path names file:line:col and
 * the key, a bad file changes nothing, secrets never show, and the example
 * file documents every key.  Values the daemon could not use (a schedule that is
 * not one or never fires, a webhook secret that does not decode, a webhook URL
 * that is not http(s), a URL without a secret) are refused by the loader itself,
 * which mnemod and `mnemoctl config check` share; what SIGHUP keeps of a running
 * config (mn_config_keep_fixed) follows the table's reloadable column.
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

#define GOOD_SECRET "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

/* the values mnemod could not run are refused where they are written */
static void values_the_daemon_needs(void)
{
  /* schedules: out of range, a step of 0, a date that never comes, too few fields */
  expect_error("schedule:\n  refresh: \"61 * * * *\"\n", "test.yaml:2:12",
               "key \"schedule.refresh\": schedule \"61 * * * *\": the minute field");
  expect_error("schedule:\n  refresh: \"*/0 * * * *\"\n", "test.yaml:2:12",
               "key \"schedule.refresh\": schedule \"*/0 * * * *\": the minute field");
  expect_error("schedule:\n  refresh: \"0 0 30 2 *\"\n", "test.yaml:2:12",
               "schedule \"0 0 30 2 *\": the schedule never fires");
  expect_error("schedule: {refresh: \"0 3 * *\"}\n", "test.yaml:1:21", "4 fields, want five");
  expect_error("schedule: {refresh: \"@daily\"}\n", "test.yaml:1:21", "schedule \"@daily\"");
  /* webhook secrets: the right length but not base64, too short, no prefix; never echoed */
  expect_error("webhooks:\n  secret: \"whsec_!!!!AwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"\n",
               "test.yaml:2:11", "key \"webhooks.secret\": the webhook secret is not valid base64");
  expect_error("webhooks:\n  secret: \"whsec_AAEC wQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"\n",
               "test.yaml:2:11", "not valid base64");
  expect_error("webhooks:\n  secret: \"whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh=8\"\n",
               "test.yaml:2:11", "not valid base64");
  expect_error("webhooks:\n  secret: whsec_c2hvcnQ=\n", "test.yaml:2:11",
               "a webhook secret is \"whsec_\" and the base64 of 24 to 64 bytes");
  setenv("MNEMO_TEST_HOOK", "hunter2hunter2hunter2hunter2hunter2hunter2", 1);
  mn_config cfg;
  mn_error err = {0};
  T_EQ_INT(load("webhooks:\n  secret: \"${MNEMO_TEST_HOOK}\"\n", &cfg, &err), MN_ERR_CONFIG);
  T_CONTAINS(err.msg, "test.yaml:2:11: key \"webhooks.secret\"");
  T_CHECK_MSG(!strstr(err.msg, "hunter2"), "the secret was echoed: %s", err.msg);
  /* webhook URLs: http and https only, with a host */
  expect_error("webhooks:\n  url: file:///etc/passwd\n  secret: " GOOD_SECRET "\n", "test.yaml:2:8",
               "key \"webhooks.url\": webhook URL \"file:///etc/passwd\": only "
               "http:// and https://");
  expect_error("webhooks: {url: \"ftp://h/x\", secret: " GOOD_SECRET "}\n", "test.yaml:1:17",
               "only http:// and https://");
  expect_error("webhooks: {url: \"example.org/hook\"}\n", "test.yaml:1:17",
               "only http:// and https://");
  expect_error("webhooks: {url: \"http:///hook\"}\n", "test.yaml:1:17", "names no host");
  expect_error("webhooks: {url: \"http://h/a b\"}\n", "test.yaml:1:17", "a blank");
  /* a URL needs a secret: named where the URL is */
  expect_error("log: {level: info}\nwebhooks:\n  url: http://127.0.0.1:9/hook\n", "test.yaml:3:8",
               "key \"webhooks.url\": webhooks are signed: set webhooks.secret too");
  /* what is good loads */
  T_EQ_INT(load("schedule: {refresh: \"0 0 29 2 *\"}\nwebhooks:\n  url: HTTPS://h:8443/x?y=1\n"
                "  secret: " GOOD_SECRET "\n",
                &cfg, &err),
           MN_OK);
  T_EQ_STR(cfg.webhooks.url, "HTTPS://h:8443/x?y=1");
  /* mn_config_set goes through the same checks */
  T_EQ_INT(mn_config_set(&cfg, "schedule.refresh", "0 0 31 4 *", "--flag", &err), MN_ERR_CONFIG);
  T_CONTAINS(err.msg, "--flag: key \"schedule.refresh\": schedule \"0 0 31 4 *\"");
  T_EQ_STR(cfg.schedule.refresh, "0 0 29 2 *"); /* unchanged */
  mn_config_fini(&cfg);
  /* console.listen: a numeric address and a port; TLS needs both files */
  expect_error("console: {listen: \"localhost:8080\"}\n", "test.yaml:1:19", "ADDRESS:PORT");
  expect_error("console: {listen: \"127.0.0.1\"}\n", "test.yaml:1:19", "ADDRESS:PORT");
  expect_error("console: {listen: \"127.0.0.1:65536\"}\n", "test.yaml:1:19", "ADDRESS:PORT");
  expect_error("console: {listen: \"::1:80\"}\n", "test.yaml:1:19", "ADDRESS:PORT");
  expect_error("console: {listen: \"[::1]:8x\"}\n", "test.yaml:1:19", "ADDRESS:PORT");
  expect_error("console: {tls_cert: /etc/c.pem}\n", "test.yaml:1:21",
               "TLS needs both console.tls_cert and console.tls_key");
  char host[64];
  int port = -1;
  T_EQ_INT(mn_listen_parse("[::1]:0", host, sizeof host, &port), 0);
  T_EQ_STR(host, "::1");
  T_EQ_INT(port, 0);
  T_EQ_INT(mn_listen_parse("10.1.2.3:8443", host, sizeof host, &port), 0);
  T_EQ_STR(host, "10.1.2.3");
  T_EQ_INT(port, 8443);
  T_EQ_INT(mn_listen_parse("10.1.2.3:", host, sizeof host, &port), -1);
  T_EQ_INT(mn_listen_parse(":80", host, sizeof host, &port), -1);
  T_EQ_INT(mn_listen_parse("8080", host, sizeof host, &port), 0); /* loopback by default */
  T_EQ_STR(host, "127.0.0.1");
  T_EQ_INT(port, 8080);
  T_EQ_INT(mn_listen_parse("99999", host, sizeof host, &port), -1);
}

/* SIGHUP's rule: keys that are not reloadable keep the running value, and say so */
static void reload_keeps_fixed_keys(void)
{
  mn_config cur, next;
  mn_error err = {0};
  bool changed[MN_CONFIG_MAX_KEYS];
  size_t n;
  const mn_config_key *keys = mn_config_keys(&n);
  T_EQ_INT(load("daemon: {data_dir: /srv/a, lease_s: 60}\nmodel: {n_layer: 4}\n"
                "database: {conninfo: \"password=old\"}\n",
                &cur, &err),
           MN_OK);
  T_EQ_INT(load("daemon: {data_dir: /srv/b, lease_s: 90}\nmodel: {n_layer: 4}\n"
                "database: {conninfo: \"password=new\"}\nschedule: {refresh: \"0 3 * * *\"}\n"
                "train: {lr: 0.001}\n",
                &next, &err),
           MN_OK);
  memset(changed, 0x55, sizeof changed);
  T_EQ_INT(mn_config_keep_fixed(&next, &cur, changed, &err), MN_OK);
  size_t flagged = 0;
  for (size_t i = 0; i < n; i++) {
    bool want = strcmp(keys[i].key, "daemon.data_dir") == 0 ||
                strcmp(keys[i].key, "database.conninfo") == 0;
    T_CHECK_MSG(changed[i] == want, "changed[%s] is %d", keys[i].key, (int)changed[i]);
    flagged += changed[i];
  }
  T_EQ_INT(flagged, 2);
  T_EQ_STR(next.daemon.data_dir, "/srv/a");         /* not reloadable: kept */
  T_EQ_STR(next.database.conninfo, "password=old"); /* nor this (a secret) */
  T_EQ_INT(next.daemon.lease_s, 90);                /* reloadable: taken */
  T_EQ_STR(next.schedule.refresh, "0 3 * * *");     /* taken */
  T_CHECK(next.train.lr == 0.001);                  /* a job's: the next attempt takes it */
  T_EQ_INT(next.model.n_layer, 4);
  mn_config_fini(&cur); /* next must not point into cur any more */
  mn_buf b;
  mn_buf_init(&b, 1 << 16);
  T_EQ_INT(mn_config_dump(&next, &b, &err), MN_OK);
  T_CONTAINS(b.data, "data_dir: \"/srv/a\"  # kept: changing it needs a restart");
  T_CONTAINS(b.data, "lease_s: 90  # test.yaml:1:");
  T_CHECK(!strstr(b.data, "password"));
  mn_buf_fini(&b);
  mn_config_fini(&next);
  /* the table says what a running daemon cannot take */
  const char *fixed[] = {"database.conninfo", "model.n_embd", "daemon.data_dir", "daemon.worker"};
  const char *taken[] = {"schedule.refresh", "webhooks.url", "webhooks.secret", "train.steps",
                         "triage.batch"};
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
    T_CHECK_MSG(!mn_config_key_find(fixed[i])->reloadable, "%s", fixed[i]);
  for (size_t i = 0; i < sizeof taken / sizeof taken[0]; i++)
    T_CHECK_MSG(mn_config_key_find(taken[i])->reloadable, "%s", taken[i]);
}

/* the config a worker is given (job.yaml) loads back: no secret, nothing that needs one
 * (a redacted secret in it once failed every refresh at its first step) */
static void worker_dump_loads(void)
{
  mn_config cfg, back;
  mn_error err = {0};
  T_EQ_INT(load("database: {conninfo: \"password=hush\"}\n"
                "webhooks: {url: \"https://hooks.example/x\", secret: \"" GOOD_SECRET "\"}\n"
                "train: {lr: 0.002}\n",
                &cfg, &err),
           MN_OK);
  mn_buf b;
  mn_buf_init(&b, 1 << 16);
  T_EQ_INT(mn_config_dump_worker(&cfg, &b, &err), MN_OK);
  T_CHECK(!strstr(b.data, "whsec_") && !strstr(b.data, "hush") && !strstr(b.data, "redacted"));
  T_CHECK(!strstr(b.data, "webhooks") && !strstr(b.data, "conninfo") && !strstr(b.data, "console"));
  T_EQ_INT(mn_config_load_buffer("job.yaml", b.data, b.len, &back, &err), MN_OK);
  T_CHECK(back.train.lr == 0.002);
  T_EQ_STR(back.webhooks.secret, "");
  mn_buf_fini(&b);
  mn_config_fini(&back);
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
  T_RUN(values_the_daemon_needs);
  T_RUN(reload_keeps_fixed_keys);
  T_RUN(worker_dump_loads);
  T_RUN(too_big);
  T_RUN(example_documents_every_key);
  return T_DONE();
}
