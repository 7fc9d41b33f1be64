/* Schema migrations: versioned SQL files under src/store/migrations/,
 * compiled into the binary.
 *
 *   NNNN_name.sql            both engines
 *   NNNN_name.sqlite.sql     SQLite only  } a dialect variant, only where
 *   NNNN_name.postgres.sql   PostgreSQL   } the two databases differ
 *
 * Applied at start under the database's migration lock (advisory lock on
 * PostgreSQL, an exclusive lock on SQLite), each in its own transaction, and
 * recorded in one version sequence (table schema_migrations).  A migration
 * that fails rolls back and leaves the schema at the previous version with
 * an error naming the file and the database's message; two processes
 * starting at once migrate once. */
#ifndef DAGI_STORE_MIGRATE_H
#define DAGI_STORE_MIGRATE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct dagi_db;

struct dagi_migration {
    int64_t version;
    const char *name;    /* "0001_outbox" */
    const char *sql_all; /* NULL unless a generic file exists */
    const char *sql_sqlite;
    const char *sql_postgres;
};

/* The compiled-in list, ascending (generated at build time). */
extern const struct dagi_migration dagi_migrations[];
extern const size_t dagi_migration_count;

struct dagi_migrate_status {
    int64_t current; /* highest applied version, 0 for none */
    int64_t latest;  /* highest known version */
    size_t pending;
};

/* Blocking (run on a pool thread or in the CLI). `list` may be NULL for the
 * compiled-in one. */
int dagi_migrate(struct dagi_db *db, const struct dagi_migration *list, size_t count,
                 struct dagi_migrate_status *status, struct dagi_error *err);
int dagi_migrate_status(struct dagi_db *db, const struct dagi_migration *list, size_t count,
                        struct dagi_migrate_status *status, struct dagi_error *err);

#endif
