/*
 * daemon.h -- the service side: PostgreSQL access, the schema migrator and ingest.
 *
 * This module is the only code in mnemo that talks to PostgreSQL (DESIGN.md §2):
 * connections, the schema migrator, ingest of documents.
 * Every statement with values is parameterised (PQexecParams).
 *
 * The headers of daemon/ (STYLE.md §1, one public header a folder):
 *  - daemon.h (this one) is the folder's public header: what the programs of daemon/
 *    (mnemod, mnemoctl) and the tests may use -- connections, migrations, ingest.
 *  - NAME.h is the interface of one of mnemod's modules to the rest of the folder, each
 *    declaring only its own module: jobs.h (the queue), runner.h (the job runner),
 *    child.h (the workers mnemod starts), bgthread.h (a thread with its own connection),
 *    outbox.h (webhook delivery), triage.h (the triage thread), card.h (model cards),
 *    webhook.h (signing), fault.h (a test hook).  Nothing outside daemon/ includes them,
 *    except the tests of the module they declare (test_webhook.c).  They include daemon.h
 *    and common headers, never each other's modules' internals, so there is no loop.
 *  - NAME_int.h is shared by the files of one module only (runner_int.h for runner.c and
 *    runner_steps.c, ingest_int.h, ctl/ctl_int.h for mnemoctl).
 */
#ifndef MNEMO_DAEMON_H
#define MNEMO_DAEMON_H

#include "common/common.h"
#include "migrations/migrations.h"

#include <libpq-fe.h>

/* ---------------------------------------------------------------- connections */

typedef struct db_options {
  const char *conninfo;         /* libpq string or URI (a secret: never logged) */
  const char *application_name; /* NULL: "mnemo" */
  int64_t connect_timeout_s;    /* <= 0: libpq's default */
} db_options;

/*
 * db_connect -- open a connection.  On success *out owns it (PQfinish).
 * On failure *out is NULL and err names the database and the server's reason,
 * never the password.
 */
MN_NODISCARD mn_status db_connect(const db_options *opt, PGconn **out /* OUT */, mn_error *err);

/*
 * db_error -- record a failed result (or a NULL one) as MN_ERR_DB: the
 * message is "what: server message", the detail holds SQLSTATE, DETAIL, HINT.
 */
mn_status db_error(PGconn *conn, const PGresult *res, const char *what, mn_error *err);

/* db_exec -- run a command without parameters or rows; MN_ERR_DB on failure. */
MN_NODISCARD mn_status db_exec(PGconn *conn, const char *sql, mn_error *err);

/* db_query -- run a parameterised statement; on success *res is the caller's (PQclear),
 * on failure MN_ERR_DB as "what: server message" and *res is NULL. */
MN_NODISCARD mn_status db_query(PGconn *conn, const char *sql, int nparams,
                                const char *const *params, PGresult **res /* OUT */,
                                const char *what, mn_error *err);

/* db_export_jsonl -- the rows of sql (one text column: a JSON object) into path, one per
 * line, streamed row by row and written atomically; *rows counts them. */
MN_NODISCARD mn_status db_export_jsonl(PGconn *conn, const char *sql, int nparams,
                                       const char *const *params, const char *path,
                                       int64_t *rows /* OUT */, mn_error *err);

/* db_export_tags -- the language tag table into path (atomically), "code<TAB>tag id" a line
 * in code order: the tags as the database assigned them (migrations/0003), the one table
 * every shard's tags come from (tok_tags_read reads it); *rows counts the languages. */
MN_NODISCARD mn_status db_export_tags(PGconn *conn, const char *path, int64_t *rows /* OUT */,
                                      mn_error *err);

/* ---------------------------------------------------------------- migrations */

#define MIGRATE_LOCK_KEY 0x6d6e656d6f4d4752LL /* "mnemoMGR": the advisory lock of migrators */
#define INGEST_LOCK_KEY  0x6d6e656d6f494e47LL /* "mnemoING": ingests, one at a time */

typedef enum {
  MIGRATION_PENDING = 0, /* in the binary, not in the database */
  MIGRATION_APPLIED,     /* in both, same checksum */
  MIGRATION_CHANGED,     /* in both, the file changed after it was applied */
  MIGRATION_UNKNOWN,     /* in the database only: the database is newer than this binary */
} migration_state;

typedef struct migration_row {
  int version;
  char name[128];
  char name_db[128]; /* the name it was applied under; empty when PENDING */
  migration_state state;
  char sha256_file[MN_SHA256_HEX_LEN + 1]; /* empty when UNKNOWN */
  char sha256_db[MN_SHA256_HEX_LEN + 1];   /* empty when PENDING */
  char applied_at[64];                     /* empty when PENDING */
  double duration_ms;
} migration_row;

/*
 * migrate_status -- compare the migrations in list[0..n) with the database.
 * On success *rows is a malloc'd array of *nrows rows (free it), in version order.
 */
MN_NODISCARD mn_status migrate_status(PGconn *conn, const mn_migration *list, size_t n,
                                      migration_row **rows /* OUT */, size_t *nrows /* OUT */,
                                      mn_error *err);

/*
 * migrate_apply -- apply every pending migration of list[0..n), in order.
 *
 * Takes the migrators' advisory lock (waiting up to lock_timeout_s, 0: forever),
 * then applies each pending file and records it in mnemo.schema_migrations in
 * one transaction.  Refuses to start when an applied file's checksum changed or
 * the database has versions this list does not know.  A failing file rolls back
 * alone; those before it stay applied.  *applied (may be NULL) counts the files
 * applied by this call.
 */
MN_NODISCARD mn_status migrate_apply(PGconn *conn, const mn_migration *list, size_t n,
                                     int64_t lock_timeout_s, int *applied /* OUT */, mn_error *err);

const char *migration_state_name(migration_state s);

/* ---------------------------------------------------------------- ingest
 *
 * Bulk intake of documents: files in, rows in mnemo.documents out.  Units
 * (lines, paragraphs, whole files, or JSONL records) are read and validated in
 * C by a reader thread and stored in batches, each with a binary COPY straight
 * into mnemo.documents, all in one transaction.  By default one bad unit means
 * nothing is stored; with skip_bad the good units are stored and the bad ones
 * are written, verbatim, to a reject file.  A document already stored (same
 * SHA-256) is counted as a duplicate, never stored twice.
 */

typedef enum { INGEST_TEXT = 0, INGEST_JSONL } ingest_format;
typedef enum { INGEST_UNIT_LINE = 0, INGEST_UNIT_PARAGRAPH, INGEST_UNIT_FILE } ingest_unit;

typedef struct ingest_options {
  ingest_format format;
  ingest_unit unit;           /* text format only */
  const char *lang;           /* text: the language of every unit */
  const char *source;         /* text: required; jsonl: used when a record has none */
  bool skip_bad;              /* store the good units even when some are bad */
  const char *reject_path;    /* with skip_bad: bad units go here verbatim (NULL: nowhere) */
  int64_t max_document_bytes; /* larger units are bad */
  double heldout_fraction;    /* share of new documents held out, by hash */
  bool progress;              /* a progress line on stderr (for a TTY) */
} ingest_options;

typedef struct ingest_problem {
  char where[300]; /* "file:line" */
  char reason[200];
} ingest_problem;

typedef struct ingest_lang_stats {
  char lang[16];
  int64_t units;      /* good units read */
  int64_t inserted;   /* new documents stored */
  int64_t duplicates; /* good units already stored (or repeated in the input) */
  int64_t heldout;    /* of the inserted, how many went to the held-out split */
  int64_t bytes;      /* UTF-8 bytes of the inserted */
} ingest_lang_stats;

#define INGEST_MAX_PROBLEMS 100

typedef struct ingest_result {
  int64_t units, bad, inserted, duplicates, bytes_read;
  int64_t rejected; /* bad units copied to the reject file (too long ones are not) */
  double seconds;
  bool committed;
  ingest_lang_stats *langs; /* one per language that had good units */
  size_t nlangs;
  ingest_problem problems[INGEST_MAX_PROBLEMS]; /* the first ones */
  size_t nproblems;
} ingest_result;

/*
 * ingest_run -- ingest files[0..nfiles) ("-" is standard input) in one transaction.
 *
 * On MN_OK the good units are committed (res->committed).  MN_ERR_INPUT: bad
 * units and no skip_bad, nothing stored, res->problems says where.  Other
 * errors (I/O, database) store nothing.  Always call ingest_result_fini.
 */
MN_NODISCARD mn_status ingest_run(PGconn *conn, const ingest_options *opt, char *const *files,
                                  size_t nfiles, ingest_result *res /* OUT */, mn_error *err);
void ingest_result_fini(ingest_result *res);
/* Test hook: called after each read() of an input file with its descriptor (NULL: none). */
extern void (*ingest__after_read)(int fd);

#endif /* MNEMO_DAEMON_H */
