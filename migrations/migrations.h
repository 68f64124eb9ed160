/*
 * migrations.h -- the SQL migrations, embedded in the binary at build time.
 *
 * migrations/NNNN_name.sql are append-only: once a file has been applied
 * anywhere, it is never edited (the migrator refuses a changed checksum).
 * Versions start at 1 and have no gaps; the build checks both.
 */
#ifndef MNEMO_MIGRATIONS_H
#define MNEMO_MIGRATIONS_H

#include <stddef.h>

typedef struct mn_migration {
  int version;      /* 1, 2, ... */
  const char *name; /* "create_schema_roles" */
  const char *file; /* "0001_create_schema_roles.sql" */
  const char *sql;  /* the file's bytes, NUL-terminated */
  size_t len;       /* bytes, without the NUL */
} mn_migration;

extern const mn_migration mn_migrations[];
extern const size_t mn_migrations_count;

#endif /* MNEMO_MIGRATIONS_H */
