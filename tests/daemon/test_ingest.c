/*
 * test_ingest.c -- ingest against a real private cluster: exact per-language
 * counts over several scripts, re-ingest adds nothing, each bad-input class is
 * reported at its file:line and stores nothing, --skip-bad stores exactly the
 * good units and rejects the bad ones verbatim, the held-out split is stable,
 * NOTIFY arrives once per ingest, and an ingest larger than one batch keeps all of
 * this across batch boundaries (a bad unit in the last batch undoes the earlier ones).
 */
#include "daemon/daemon.h"
#include "tests/db_test.h"
#include "tests/test.h"

#include <fcntl.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <unistd.h>

#define DATA MNEMO_SOURCE_DIR "/tests/data/ingest/"

static char conninfo[600];
static PGconn *conn;

static void sql(const char *q)
{
  PGresult *r = PQexec(conn, q);
  if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
    fprintf(stderr, "%s: %s", q, PQerrorMessage(conn));
    exit(1);
  }
  PQclear(r);
}

static void setup(void)
{
  mn_error err = {0};
  int applied = 0;
  t_db_fresh("ingest", conninfo, sizeof conninfo);
  db_options o = {.conninfo = conninfo, .connect_timeout_s = 10};
  if (db_connect(&o, &conn, &err) != MN_OK ||
      migrate_apply(conn, mn_migrations, mn_migrations_count, 10, &applied, &err) != MN_OK) {
    fprintf(stderr, "setup: %s (%s)\n", err.msg, err.detail);
    exit(1);
  }
  sql("INSERT INTO mnemo.languages (code, name, script) VALUES ('spa', 'Spanish', 'Latn'),"
      " ('rus', 'Russian', 'Cyrl'), ('tha', 'Thai', 'Thai'), ('cmn', 'Mandarin', 'Hans'),"
      " ('arb', 'Arabic', 'Arab'), ('hin', 'Hindi', 'Deva'), ('kat', 'Georgian', 'Geor'),"
      " ('amh', 'Amharic', 'Ethi'), ('swh', 'Swahili', 'Latn')");
  sql("INSERT INTO mnemo.languages (code, name, script, enabled) VALUES ('deu', 'German', 'Latn', "
      "false)");
}

static ingest_options opts(void)
{
  return (ingest_options){.max_document_bytes = 1 << 20, .heldout_fraction = 0.05};
}

static const ingest_lang_stats *stats(const ingest_result *r, const char *lang)
{
  for (size_t i = 0; i < r->nlangs; i++)
    if (strcmp(r->langs[i].lang, lang) == 0) return &r->langs[i];
  return NULL;
}

static long long count(const char *q)
{
  return strtoll(t_db_value(conn, q), NULL, 10);
}

static void jsonl_sample_and_reingest(void)
{
  ingest_options o = opts();
  o.format = INGEST_JSONL;
  o.source = "fallback";
  ingest_result r;
  mn_error err = {0};
  char *files[] = {DATA "sample.jsonl"};
  T_EQ_INT(ingest_run(conn, &o, files, 1, &r, &err), MN_OK);
  T_CHECK(r.committed);
  T_EQ_INT(r.units, 13); /* the blank line is not a unit */
  T_EQ_INT(r.inserted, 12);
  T_EQ_INT(r.duplicates, 1);
  T_EQ_INT(r.bad, 0);
  T_EQ_INT(r.nlangs, 8);
  const ingest_lang_stats *s = stats(&r, "spa");
  T_CHECK(s && s->units == 4 && s->inserted == 3 && s->duplicates == 1);
  s = stats(&r, "tha");
  T_CHECK(s && s->units == 2 && s->inserted == 2 && s->duplicates == 0);
  T_CHECK(s && s->bytes == count("SELECT sum(bytes) FROM mnemo.documents WHERE lang = 'tha'"));
  ingest_result_fini(&r);
  T_EQ_INT(count("SELECT count(*) FROM mnemo.documents"), 12);
  T_EQ_INT(count("SELECT count(*) FROM mnemo.documents WHERE lang = 'rus'"), 2);
  T_EQ_INT(count("SELECT count(*) FROM mnemo.documents WHERE lang = 'kat'"), 1);
  /* the record without a source took the default; every document has one */
  T_EQ_INT(count("SELECT count(*) FROM mnemo.documents d JOIN mnemo.sources s ON s.id = d.source_id"
                 " WHERE s.name = 'fallback' AND d.text LIKE 'Los niños%'"),
           1);
  /* bytes, hash and text agree; Thai text survived the round trip byte for byte */
  T_EQ_INT(count("SELECT count(*) FROM mnemo.documents WHERE bytes <> octet_length(text) OR "
                 "sha256 <> sha256(convert_to(text, 'UTF8'))"),
           0);
  T_EQ_STR(t_db_value(conn, "SELECT text FROM mnemo.documents WHERE text LIKE 'ตลาด%'"),
           "ตลาดเช้าวันเสาร์มีผลไม้สดจากสวนมาขาย");

  /* again: nothing new */
  T_EQ_INT(ingest_run(conn, &o, files, 1, &r, &err), MN_OK);
  T_EQ_INT(r.inserted, 0);
  T_EQ_INT(r.duplicates, 13);
  ingest_result_fini(&r);
  T_EQ_INT(count("SELECT count(*) FROM mnemo.documents"), 12);
}

static void text_units(void)
{
  ingest_options o = opts();
  o.lang = "swh";
  o.source = "swahili-test";
  ingest_result r;
  mn_error err = {0};
  char *files[] = {DATA "swahili.txt"};
  o.unit = INGEST_UNIT_PARAGRAPH;
  T_EQ_INT(ingest_run(conn, &o, files, 1, &r, &err), MN_OK);
  T_EQ_INT(r.units, 3);
  T_EQ_INT(r.inserted, 3);
  ingest_result_fini(&r);
  T_EQ_STR(t_db_value(conn, "SELECT text FROM mnemo.documents WHERE text LIKE 'Soko%'"),
           "Soko la asubuhi lina matunda mengi kutoka mashambani.\n"
           "Watoto walicheza mpira uwanjani hadi jioni.");
  /* lines: the two one-line paragraphs are duplicates now, the other two lines are new */
  o.unit = INGEST_UNIT_LINE;
  T_EQ_INT(ingest_run(conn, &o, files, 1, &r, &err), MN_OK);
  T_EQ_INT(r.units, 4);
  T_EQ_INT(r.inserted, 2);
  T_EQ_INT(r.duplicates, 2);
  ingest_result_fini(&r);
  o.unit = INGEST_UNIT_FILE;
  T_EQ_INT(ingest_run(conn, &o, files, 1, &r, &err), MN_OK);
  T_EQ_INT(r.units, 1);
  T_EQ_INT(r.inserted, 1);
  ingest_result_fini(&r);
  T_EQ_INT(count("SELECT count(*) FROM mnemo.documents WHERE lang = 'swh'"), 6);

  /* standard input */
  int saved = dup(0), fd = open(DATA "swahili.txt", O_RDONLY);
  dup2(fd, 0);
  close(fd);
  char *dash[] = {"-"};
  o.unit = INGEST_UNIT_LINE;
  T_EQ_INT(ingest_run(conn, &o, dash, 1, &r, &err), MN_OK);
  T_EQ_INT(r.units, 4);
  T_EQ_INT(r.duplicates, 4);
  ingest_result_fini(&r);
  dup2(saved, 0);
  close(saved);

  /* plain text without a language is a usage error, before anything is read */
  o.lang = NULL;
  T_EQ_INT(ingest_run(conn, &o, files, 1, &r, &err), MN_ERR_USAGE);
  ingest_result_fini(&r);
}

static bool has_problem(const ingest_result *r, const char *where, const char *reason)
{
  for (size_t i = 0; i < r->nproblems; i++)
    if (strstr(r->problems[i].where, where) && strstr(r->problems[i].reason, reason)) return true;
  fprintf(stderr, "  no problem \"%s: %s\" among:\n", where, reason);
  for (size_t i = 0; i < r->nproblems; i++)
    fprintf(stderr, "    %s: %s\n", r->problems[i].where, r->problems[i].reason);
  return false;
}

static void bad_input_changes_nothing(void)
{
  long long before = count("SELECT count(*) FROM mnemo.documents");
  long long sources = count("SELECT count(*) FROM mnemo.sources");
  ingest_options o = opts();
  ingest_result r;
  mn_error err = {0};

  o.lang = "swh";
  o.source = "bad-utf8";
  char *text[] = {DATA "bad_utf8.txt"};
  T_EQ_INT(ingest_run(conn, &o, text, 1, &r, &err), MN_ERR_INPUT);
  T_CONTAINS(err.msg, "1 of 3 units are bad; nothing was stored");
  T_CHECK(has_problem(&r, "bad_utf8.txt:2", "invalid UTF-8 continuation byte at byte 21"));
  T_EQ_INT(r.nproblems, 1);
  T_CHECK(!r.committed);
  ingest_result_fini(&r);

  o = opts();
  o.format = INGEST_JSONL;
  char *recs[] = {DATA "bad_records.jsonl"};
  T_EQ_INT(ingest_run(conn, &o, recs, 1, &r, &err), MN_ERR_INPUT);
  T_EQ_INT(r.units, 10);
  T_EQ_INT(r.bad, 8);
  T_CHECK(has_problem(&r, "bad_records.jsonl:2", "empty text"));
  T_CHECK(has_problem(&r, "bad_records.jsonl:3", "unknown language \"xyz\""));
  T_CHECK(has_problem(&r, "bad_records.jsonl:4", "malformed JSON"));
  T_CHECK(has_problem(&r, "bad_records.jsonl:5", "NUL byte at byte 7"));
  T_CHECK(has_problem(&r, "bad_records.jsonl:6", "must be a JSON object"));
  T_CHECK(has_problem(&r, "bad_records.jsonl:7", "\"text\" must be a string"));
  T_CHECK(has_problem(&r, "bad_records.jsonl:8", "language \"deu\" is disabled"));
  T_CHECK(has_problem(&r, "bad_records.jsonl:9", "invalid UTF-8 continuation byte at byte 35"));
  ingest_result_fini(&r);

  /* too large, against a small cap */
  o.max_document_bytes = 20;
  char *sample[] = {DATA "sample.jsonl"};
  T_EQ_INT(ingest_run(conn, &o, sample, 1, &r, &err), MN_ERR_INPUT);
  T_CHECK(has_problem(&r, "sample.jsonl:1", "exceeds ingest.max_document_bytes (20)"));
  ingest_result_fini(&r);

  /* a missing file */
  o = opts();
  o.format = INGEST_JSONL;
  char *missing[] = {DATA "sample.jsonl", "/nonexistent/input.jsonl"};
  T_EQ_INT(ingest_run(conn, &o, missing, 2, &r, &err), MN_ERR_IO);
  T_CONTAINS(err.msg, "/nonexistent/input.jsonl");
  ingest_result_fini(&r);

  T_EQ_INT(count("SELECT count(*) FROM mnemo.documents"), before);
  T_EQ_INT(count("SELECT count(*) FROM mnemo.sources"), sources);
}

static void skip_bad_stores_the_good(void)
{
  char rejects[] = "/tmp/mnemo-test-rejects-XXXXXX";
  int fd = mkstemp(rejects);
  close(fd);
  long long before = count("SELECT count(*) FROM mnemo.documents");
  ingest_options o = opts();
  o.format = INGEST_JSONL;
  o.skip_bad = true;
  o.reject_path = rejects;
  ingest_result r;
  mn_error err = {0};
  char *recs[] = {DATA "bad_records.jsonl"};
  T_EQ_INT(ingest_run(conn, &o, recs, 1, &r, &err), MN_OK);
  T_EQ_INT(r.bad, 8);
  T_EQ_INT(r.inserted, 2);
  ingest_result_fini(&r);
  T_EQ_INT(count("SELECT count(*) FROM mnemo.documents"), before + 2);
  T_EQ_INT(count("SELECT count(*) FROM mnemo.documents WHERE text IN "
                 "('Una frase perfectamente buena.', 'Otra frase buena al final.')"),
           2);
  /* the reject file holds exactly the bad lines, verbatim */
  mn_buf got, want;
  mn_buf_init(&got, 1 << 16);
  mn_buf_init(&want, 1 << 16);
  T_EQ_INT(mn_buf_read_file(&got, rejects, &err), MN_OK);
  T_EQ_INT(mn_buf_read_file(&want, DATA "bad_records.jsonl", &err), MN_OK);
  char *first_nl = strchr(want.data, '\n');
  char *last_line = strrchr(want.data, '{'); /* the last (good) record */
  T_CHECK(first_nl && last_line);
  if (first_nl && last_line) {
    *last_line = '\0';
    T_EQ_STR(got.data, first_nl + 1);
  }
  mn_buf_fini(&got);
  mn_buf_fini(&want);
  unlink(rejects);
}

/* write_many -- JSONL of n records over 3 languages and 5 sources; every 7th text repeats
 * the one 70,001 records earlier (another batch), and the last record is bad when asked. */
static void write_many(const char *path, int n, bool bad_last)
{
  static const char *const langs[] = {"spa", "rus", "tha"};
  FILE *f = fopen(path, "w");
  for (int i = 0; i < n; i++) {
    int k = (i % 7 == 0 && i >= 70001) ? i - 70001 : i;
    fprintf(f, "{\"lang\": \"%s\", \"source\": \"many-%d\", \"text\": \"registro %d\"}\n",
            langs[k % 3], i / 40000, k);
  }
  if (bad_last) fprintf(f, "{\"lang\": \"spa\", \"text\": \"\"}\n");
  fclose(f);
}

static void many_batches(void)
{
  char path[] = "/tmp/mnemo-test-many-XXXXXX";
  close(mkstemp(path));
  const int n = 150000; /* more than two batches of rows */
  int repeats = 0;
  for (int i = 70001; i < n; i++)
    repeats += i % 7 == 0;
  long long before = count("SELECT count(*) FROM mnemo.documents");
  ingest_options o = opts();
  o.format = INGEST_JSONL;
  o.source = "many-default";
  ingest_result r;
  mn_error err = {0};
  char *files[] = {path};

  /* a bad record at the very end: the batches already sent are undone */
  write_many(path, n, true);
  T_EQ_INT(ingest_run(conn, &o, files, 1, &r, &err), MN_ERR_INPUT);
  T_EQ_INT(r.bad, 1);
  T_CHECK(!r.committed);
  ingest_result_fini(&r);
  T_EQ_INT(count("SELECT count(*) FROM mnemo.documents"), before);
  T_EQ_INT(count("SELECT count(*) FROM mnemo.sources WHERE name LIKE 'many-%'"), 0);

  write_many(path, n, false);
  T_EQ_INT(ingest_run(conn, &o, files, 1, &r, &err), MN_OK);
  T_EQ_INT(r.units, n);
  T_EQ_INT(r.inserted, n - repeats);
  T_EQ_INT(r.duplicates, repeats);
  const ingest_lang_stats *s = stats(&r, "tha");
  T_CHECK(s && s->inserted == count("SELECT count(*) FROM mnemo.documents d JOIN mnemo.sources "
                                    "src ON src.id = d.source_id WHERE src.name LIKE 'many-%' "
                                    "AND d.lang = 'tha'"));
  ingest_result_fini(&r);
  T_EQ_INT(count("SELECT count(*) FROM mnemo.documents"), before + n - repeats);
  /* each record went with its own source, including those first seen in a later batch */
  T_EQ_INT(count("SELECT count(*) FROM mnemo.documents d JOIN mnemo.sources src ON src.id = "
                 "d.source_id WHERE src.name = 'many-3' AND d.text = 'registro 120002'"),
           1);
  T_EQ_INT(count("SELECT count(DISTINCT source_id) FROM mnemo.documents d JOIN mnemo.sources src "
                 "ON src.id = d.source_id WHERE src.name LIKE 'many-%'"),
           4);

  /* again: every record is a duplicate now, and nothing changes */
  T_EQ_INT(ingest_run(conn, &o, files, 1, &r, &err), MN_OK);
  T_EQ_INT(r.inserted, 0);
  T_EQ_INT(r.duplicates, n);
  ingest_result_fini(&r);
  T_EQ_INT(count("SELECT count(*) FROM mnemo.documents"), before + n - repeats);
  unlink(path);
}

static void heldout_split_is_stable(void)
{
  /* the rule itself */
  uint8_t sha[MN_SHA256_LEN] = {0};
  T_CHECK(mn_split_heldout(sha, 0.05));
  T_CHECK(!mn_split_heldout(sha, 0.0));
  memset(sha, 0xff, sizeof sha);
  T_CHECK(!mn_split_heldout(sha, 0.5));
  sha[0] = 0x0c; /* 0x0cff.. / 2^64 = 0.0508: just above 5% */
  T_CHECK(!mn_split_heldout(sha, 0.05));
  sha[0] = 0x0b; /* 0.0469 */
  T_CHECK(mn_split_heldout(sha, 0.05));

  /* 2,000 documents: about 5% held out, each exactly where its hash says */
  char path[] = "/tmp/mnemo-test-split-XXXXXX";
  int fd = mkstemp(path);
  FILE *f = fdopen(fd, "w");
  for (int i = 0; i < 2000; i++)
    fprintf(f, "Hati namba %d ya majaribio ya mgawanyo.\n", i);
  fclose(f);
  ingest_options o = opts();
  o.lang = "swh";
  o.source = "split-test";
  ingest_result r;
  mn_error err = {0};
  char *files[] = {path};
  T_EQ_INT(ingest_run(conn, &o, files, 1, &r, &err), MN_OK);
  T_EQ_INT(r.inserted, 2000);
  const ingest_lang_stats *s = stats(&r, "swh");
  T_CHECK_MSG(s && s->heldout >= 60 && s->heldout <= 140, "heldout %lld of 2000",
              s ? (long long)s->heldout : -1LL);
  ingest_result_fini(&r);
  long long mism =
      count("SELECT count(*) FROM mnemo.documents d JOIN mnemo.sources s ON s.id = d.source_id"
            " WHERE s.name = 'split-test' AND (d.split = 'heldout') <>"
            " (('x' || encode(substr(d.sha256, 1, 8), 'hex'))::bit(64)::bigint::numeric"
            "   + CASE WHEN get_byte(d.sha256, 0) >= 128 THEN 18446744073709551616 ELSE 0 END"
            "   < 0.05 * 18446744073709551616)");
  T_EQ_INT(mism, 0);
  unlink(path);
}

static int notifications(PGconn *listener, const char *channel)
{
  int n = 0;
  for (int round = 0; round < 50; round++) { /* 1 s: late ones would be counted too */
    PQconsumeInput(listener);
    PGnotify *note;
    while ((note = PQnotifies(listener))) {
      n += strcmp(note->relname, channel) == 0;
      PQfreemem(note);
    }
    fd_set fds;
    FD_ZERO(&fds);
    FD_SET(PQsocket(listener), &fds);
    struct timeval tv = {0, 20000};
    select(PQsocket(listener) + 1, &fds, NULL, NULL, &tv);
  }
  return n;
}

static void notify_once_per_statement(void)
{
  PGconn *listener = PQconnectdb(conninfo);
  PGresult *lr = PQexec(listener, "LISTEN mnemo_documents");
  PQclear(lr);
  lr = PQexec(listener, "LISTEN mnemo_reports");
  PQclear(lr);

  ingest_options o = opts();
  o.lang = "spa";
  o.source = "notify";
  char path[] = "/tmp/mnemo-test-notify-XXXXXX";
  int fd = mkstemp(path);
  FILE *f = fdopen(fd, "w");
  for (int i = 0; i < 50; i++)
    fprintf(f, "Frase número %d para la prueba de avisos.\n", i);
  fclose(f);
  ingest_result r;
  mn_error err = {0};
  char *files[] = {path};
  T_EQ_INT(ingest_run(conn, &o, files, 1, &r, &err), MN_OK);
  T_EQ_INT(r.inserted, 50);
  ingest_result_fini(&r);
  T_EQ_INT(notifications(listener, "mnemo_documents"), 1); /* 50 rows, one statement */
  unlink(path);

  sql("INSERT INTO mnemo.reports (claimed_lang, text) VALUES ('spa', 'uno'), ('spa', 'dos')");
  T_EQ_INT(notifications(listener, "mnemo_reports"), 1);
  sql("INSERT INTO mnemo.reports (claimed_lang, text) VALUES ('spa', 'tres')");
  sql("INSERT INTO mnemo.reports (claimed_lang, text) VALUES ('spa', 'cuatro')");
  T_EQ_INT(notifications(listener, "mnemo_reports"), 2);
  PQfinish(listener);
}

static void write_bytes(const char *path, const char *p, size_t n)
{
  FILE *f = fopen(path, "wb");
  T_CHECK(f && fwrite(p, 1, n, f) == n);
  if (f) fclose(f);
}
#define WRITE(path, lit) write_bytes((path), (lit), sizeof(lit) - 1)

/* one text rule (common/text.c) for every unit: what triage calls binary is never stored;
 * CRLF line ends become "\n" in every unit, the whole file included */
static void text_rule_and_line_ends(void)
{
  char path[] = "/tmp/mnemo-test-rule-XXXXXX", rejects[] = "/tmp/mnemo-test-rule-rej-XXXXXX";
  close(mkstemp(path));
  close(mkstemp(rejects));
  long long before = count("SELECT count(*) FROM mnemo.documents");
  ingest_options o = opts();
  o.lang = "swh";
  o.source = "rule-test";
  o.skip_bad = true;
  o.reject_path = rejects;
  ingest_result r;
  mn_error err = {0};
  char *files[] = {path};
  WRITE(path, "Mstari mzuri wa kwanza.\n"
              "esc \x1b[2J clears the screen\n"
              "del \x7f here\n"
              "inner \xEF\xBB\xBF bom\n"
              "evil \xE2\x80\xAE txt.exe\n"
              "\xC2\xA0\xE3\x80\x80\n"
              "row\rforged\n"
              "form\x0c"
              "feed\n"
              "Mstari mzuri wa mwisho.\r\n");
  T_EQ_INT(ingest_run(conn, &o, files, 1, &r, &err), MN_OK);
  T_EQ_INT(r.units, 9);
  T_EQ_INT(r.bad, 7);
  T_EQ_INT(r.rejected, 7);
  T_EQ_INT(r.inserted, 2);
  T_CHECK(has_problem(&r, ":2", "control character U+001B at byte 4 of the text"));
  T_CHECK(has_problem(&r, ":3", "control character U+007F"));
  T_CHECK(has_problem(&r, ":4", "byte order mark U+FEFF at byte 6"));
  T_CHECK(has_problem(&r, ":5", "bidirectional control U+202E at byte 5"));
  T_CHECK(has_problem(&r, ":6", "white space only"));
  T_CHECK(has_problem(&r, ":7", "control character U+000D at byte 3"));
  T_CHECK(has_problem(&r, ":8", "control character U+000C"));
  ingest_result_fini(&r);
  T_EQ_INT(count("SELECT count(*) FROM mnemo.documents"), before + 2);
  T_EQ_INT(count("SELECT count(*) FROM mnemo.documents WHERE source_id = (SELECT id FROM "
                 "mnemo.sources WHERE name = 'rule-test') AND text ~ '[\\x01-\\x08\\x0b-\\x1f\\x7f"
                 "\\u202a-\\u202e\\u2066-\\u2069\\ufeff]'"),
           0);

  /* CRLF: the same two lines as one file, as one paragraph and as JSONL are "\n"-separated */
  o.skip_bad = false;
  o.reject_path = NULL;
  o.unit = INGEST_UNIT_FILE;
  WRITE(path, "\xEF\xBB\xBFLaini ya kwanza ya faili.\r\nLaini ya pili ya faili.\r\n");
  T_EQ_INT(ingest_run(conn, &o, files, 1, &r, &err), MN_OK);
  T_EQ_INT(r.inserted, 1);
  ingest_result_fini(&r);
  T_EQ_INT(count("SELECT count(*) FROM mnemo.documents WHERE text = "
                 "E'Laini ya kwanza ya faili.\\nLaini ya pili ya faili.\\n'"),
           1);
  o.unit = INGEST_UNIT_PARAGRAPH;
  WRITE(path, "Aya ya kwanza.\r\nMstari wake wa pili.\r\n\r\n");
  T_EQ_INT(ingest_run(conn, &o, files, 1, &r, &err), MN_OK);
  ingest_result_fini(&r);
  T_EQ_INT(count("SELECT count(*) FROM mnemo.documents WHERE text = "
                 "E'Aya ya kwanza.\\nMstari wake wa pili.'"),
           1);
  o = opts();
  o.format = INGEST_JSONL;
  o.source = "rule-test";
  WRITE(path, "{\"lang\": \"swh\", \"text\": \"Rekodi ya JSON.\\r\\nNa mstari wa pili.\"}\n"
              "{\"lang\": \"swh\", \"text\": \" \\u00a0 \"}\n");
  T_EQ_INT(ingest_run(conn, &o, files, 1, &r, &err), MN_ERR_INPUT);
  T_CHECK(has_problem(&r, ":2", "white space only"));
  ingest_result_fini(&r);
  WRITE(path, "{\"lang\": \"swh\", \"text\": \"Rekodi ya JSON.\\r\\nNa mstari wa pili.\"}\n");
  T_EQ_INT(ingest_run(conn, &o, files, 1, &r, &err), MN_OK);
  ingest_result_fini(&r);
  T_EQ_INT(count("SELECT count(*) FROM mnemo.documents WHERE text = "
                 "E'Rekodi ya JSON.\\nNa mstari wa pili.'"),
           1);
  T_EQ_INT(count("SELECT count(*) FROM mnemo.documents WHERE strpos(text, E'\\r') > 0"), 0);
  unlink(path);
  unlink(rejects);
}

/* a bad --lang or --source is the command's mistake: refused up front, not unit by unit */
static void bad_lang_is_a_usage_error(void)
{
  char rejects[] = "/tmp/mnemo-test-badlang-XXXXXX";
  close(mkstemp(rejects));
  long long before = count("SELECT count(*) FROM mnemo.documents");
  ingest_options o = opts();
  o.lang = "xyz";
  o.source = "bad-lang";
  o.skip_bad = true;
  o.reject_path = rejects;
  ingest_result r;
  mn_error err = {0};
  char *files[] = {DATA "swahili.txt"};
  T_EQ_INT(ingest_run(conn, &o, files, 1, &r, &err), MN_ERR_USAGE);
  T_CONTAINS(err.msg, "--lang \"xyz\": unknown language");
  T_EQ_INT(r.units, 0);
  T_EQ_INT(r.bad, 0);
  ingest_result_fini(&r);
  o.lang = "deu"; /* disabled */
  T_EQ_INT(ingest_run(conn, &o, files, 1, &r, &err), MN_ERR_USAGE);
  T_CONTAINS(err.msg, "disabled");
  ingest_result_fini(&r);
  o.lang = "swh";
  o.source = "bad\x1bsource";
  T_EQ_INT(ingest_run(conn, &o, files, 1, &r, &err), MN_ERR_USAGE);
  T_CONTAINS(err.msg, "--source: source name: control character U+001B at byte 3");
  ingest_result_fini(&r);
  struct stat st;
  T_CHECK(stat(rejects, &st) == 0 && st.st_size == 0); /* the reject file was not written */
  T_EQ_INT(count("SELECT count(*) FROM mnemo.documents"), before);
  unlink(rejects);
}

/* bad units that cannot be copied (too long) are counted apart: no empty reject file is
 * written for them, and an existing one is left as it was */
static void rejected_counts_what_was_written(void)
{
  char path[] = "/tmp/mnemo-test-long-XXXXXX", rejects[] = "/tmp/mnemo-test-long-rej-XXXXXX";
  close(mkstemp(path));
  int fd = mkstemp(rejects);
  T_CHECK(write(fd, "old\n", 4) == 4);
  close(fd);
  ingest_options o = opts();
  o.lang = "swh";
  o.source = "long-test";
  o.skip_bad = true;
  o.reject_path = rejects;
  o.max_document_bytes = 16;
  ingest_result r;
  mn_error err = {0};
  char *files[] = {path};
  WRITE(path, "Mstari huu ni mrefu mno kwa kikomo.\nFupi.\n");
  T_EQ_INT(ingest_run(conn, &o, files, 1, &r, &err), MN_OK);
  T_EQ_INT(r.bad, 1);
  T_EQ_INT(r.rejected, 0);
  ingest_result_fini(&r);
  mn_buf got;
  mn_buf_init(&got, 1 << 10);
  T_EQ_INT(mn_buf_read_file(&got, rejects, &err), MN_OK);
  T_EQ_STR(got.data, "old\n");
  mn_buf_fini(&got);
  unlink(path);
  unlink(rejects);
}

/* a file cut short while it is read stores nothing (its last line would be partial) */
static const char *truncate_path;
static int truncate_reads;
static void truncate_after_first_read(int fd)
{
  (void)fd;
  if (++truncate_reads == 1) T_CHECK(truncate(truncate_path, 1500000) == 0);
}

static void truncated_while_read(void)
{
  char path[] = "/tmp/mnemo-test-trunc-XXXXXX";
  close(mkstemp(path));
  FILE *f = fopen(path, "w");
  for (int i = 0; f && i < 100000; i++) /* ~3 MB: three reads of READ_CHUNK */
    fprintf(f, "Mstari wa majaribio nambari %06d.\n", i);
  if (f) fclose(f);
  long long before = count("SELECT count(*) FROM mnemo.documents");
  ingest_options o = opts();
  o.lang = "swh";
  o.source = "trunc-test";
  ingest_result r;
  mn_error err = {0};
  char *files[] = {path};
  truncate_path = path;
  truncate_reads = 0;
  ingest__after_read = truncate_after_first_read;
  T_EQ_INT(ingest_run(conn, &o, files, 1, &r, &err), MN_ERR_IO);
  ingest__after_read = NULL;
  T_CONTAINS(err.msg, "changed while it was read");
  T_CONTAINS(err.msg, "nothing was stored");
  T_CHECK(!r.committed);
  ingest_result_fini(&r);
  T_EQ_INT(count("SELECT count(*) FROM mnemo.documents"), before);
  /* untouched, the same file is stored whole */
  T_EQ_INT(ingest_run(conn, &o, files, 1, &r, &err), MN_OK);
  T_EQ_INT(r.inserted, 1500000 / 36 + 1); /* 36 bytes a line; the file ends mid-line now */
  ingest_result_fini(&r);
  unlink(path);
}

/* JSONL strings are decoded the same whichever reader takes the record (ingest_read.c reads
 * the common kind itself, jansson the rest): each stored text equals PostgreSQL's decoding
 * of its line, and what only jansson may judge is still judged by it */
static void jsonl_escapes_decode_alike(void)
{
  char path[] = "/tmp/mnemo-test-esc-XXXXXX";
  close(mkstemp(path));
  long long before = count("SELECT count(*) FROM mnemo.documents");
  WRITE(path,
        "{\"lang\":\"spa\",\"text\":\"comillas \\\" barra \\\\ \\/ tab\\t fin\\nlinea\"}\n"
        "  {  \"text\" : \"orden \\u00f1 \\u00D1 \\u20ac \\ud83d\\ude00 inverso\" ,"
        " \"source\" : \"esc\\u0061pes\", \"lang\" : \"spa\" }  \r\n"
        "{\"lang\":\"spa\",\"text\":\"otra clave\",\"source\":\"s\",\"extra\":[1,{\"a\":null}]}\n"
        "{\"lang\":\"spa\",\"text\":\"clave con escape\",\"sourc\\u0065\":\"s2\"}\n"
        "{\"lang\":\"spa\",\"text\":\"\\b\\f control\"}\n"
        "{\"lang\":\"spa\",\"text\":\"sustituto solo \\ud83d fin\"}\n"
        "{\"lang\":\"spa\",\"text\":\"dos veces\",\"text\":\"repetida\"}\n"
        "{\"lang\":\"spa\",\"text\":\"cola\"} x\n"
        "{\"lang\":\"spa\",\"text\":\"tab \t crudo\"}\n"
        "{\"lang\":\"sp\\u0000a\",\"text\":\"nulo en lang\"}\n");
  ingest_options o = opts();
  o.format = INGEST_JSONL;
  o.source = "esc-test";
  o.skip_bad = true;
  ingest_result r;
  mn_error err = {0};
  char *files[] = {path};
  T_EQ_INT(ingest_run(conn, &o, files, 1, &r, &err), MN_OK);
  T_EQ_INT(r.units, 10);
  T_EQ_INT(r.inserted, 4);
  T_CHECK(has_problem(&r, ":5", "control character U+0008 at byte 0 of the text"));
  T_CHECK(has_problem(&r, ":6", "malformed JSON"));
  T_CHECK(has_problem(&r, ":7", "malformed JSON"));
  T_CHECK(has_problem(&r, ":8", "malformed JSON"));
  T_CHECK(has_problem(&r, ":9", "malformed JSON"));
  T_CHECK(has_problem(&r, ":10", "\"lang\" holds U+0000"));
  ingest_result_fini(&r);
  T_EQ_INT(count("SELECT count(*) FROM mnemo.documents") - before, 4);
  sql("CREATE TEMP TABLE esc_lines (n int, line text)");
  mn_buf file;
  mn_buf_init(&file, 1 << 20);
  T_EQ_INT(mn_buf_read_file(&file, path, &err), MN_OK);
  int n = 0;
  for (char *line = file.data, *nl; line && (nl = strchr(line, '\n')); line = nl + 1) {
    *nl = '\0';
    char num[16];
    snprintf(num, sizeof num, "%d", ++n);
    const char *params[2] = {num, line};
    PGresult *res =
        PQexecParams(conn, "INSERT INTO esc_lines VALUES ($1, $2)", 2, NULL, params, NULL, NULL, 0);
    T_EQ_INT(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
  }
  mn_buf_fini(&file);
  T_EQ_INT(n, 10);
  T_EQ_INT(count("SELECT count(*) FROM esc_lines e JOIN mnemo.documents d ON d.text = "
                 "rtrim(e.line, E'\\r')::json->>'text' JOIN mnemo.sources s ON s.id = "
                 "d.source_id AND s.name = coalesce(rtrim(e.line, E'\\r')::json->>'source', "
                 "'esc-test') WHERE e.n <= 4"),
           4); /* the fourth's key "sourc\u0065" is "source" to both */
  T_EQ_STR(t_db_value(conn, "SELECT text FROM mnemo.documents WHERE text LIKE 'orden %'"),
           "orden ñ Ñ € 😀 inverso");
  T_EQ_INT(count("SELECT count(*) FROM mnemo.documents d JOIN mnemo.sources s ON s.id = "
                 "d.source_id WHERE s.name = 'escapes' AND d.text LIKE 'orden %'"),
           1);
  T_EQ_INT(count("SELECT count(*) FROM mnemo.documents WHERE text = "
                 "E'comillas \" barra \\\\ / tab\\t fin\\nlinea'"),
           1);
  sql("DROP TABLE esc_lines");
  unlink(path);
}

int main(void)
{
  mn_log_configure(MN_LOG_WARN, MN_LOG_LOGFMT, -1);
  setup();
  T_RUN(jsonl_sample_and_reingest);
  T_RUN(text_units);
  T_RUN(bad_input_changes_nothing);
  T_RUN(skip_bad_stores_the_good);
  T_RUN(heldout_split_is_stable);
  T_RUN(notify_once_per_statement);
  T_RUN(many_batches);
  T_RUN(text_rule_and_line_ends);
  T_RUN(jsonl_escapes_decode_alike);
  T_RUN(bad_lang_is_a_usage_error);
  T_RUN(rejected_counts_what_was_written);
  T_RUN(truncated_while_read);
  PQfinish(conn);
  t_db_drop("ingest");
  return T_DONE();
}
