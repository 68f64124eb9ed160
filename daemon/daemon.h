/*
 * daemon.h -- the service side: PostgreSQL access and the schema migrator.
 *
 * This module is the only code in mnemo that talks to PostgreSQL (DESIGN.md §2).
 * Every statement with values is parameterised (PQexecParams).
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

/* ---------------------------------------------------------------- migrations */

#define MIGRATE_LOCK_KEY 0x6d6e656d6f4d4752LL /* "mnemoMGR": the advisory lock of migrators */

typedef enum {
  MIGRATION_PENDING = 0, /* in the binary, not in the database */
  MIGRATION_APPLIED,     /* in both, same checksum */
  MIGRATION_CHANGED,     /* in both, the file changed after it was applied */
  MIGRATION_UNKNOWN,     /* in the database only: the database is newer than this binary */
} migration_state;

typedef struct migration_row {
  int version;
  char name[128];
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

#endif /* MNEMO_DAEMON_H */
