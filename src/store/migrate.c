/* Schema migrations (see migrate.h).
 *
 * Order of a run: take the migration lock, create schema_migrations if it is
 * missing, read the current version, apply each newer migration in its own
 * transaction together with its schema_migrations row, drop the lock.  The
 * lock comes first because two PostgreSQL sessions racing through CREATE
 * TABLE IF NOT EXISTS can both try to create it, and one then fails on a
 * catalog unique index; under the lock the second one finds the table.
 *
 * The version is the highest one applied: a migration numbered below it
 * that was never applied (branches merged out of order) is not applied
 * later.  A database newer than this binary (current > latest) is left
 * alone: an older node may still run against it during a rolling update.
 * applied_at is Unix milliseconds from the business clock, as every other
 * time column. */
#include "store/migrate.h"

#include "core/clock.h"
#include "core/mem.h"
#include "store/db.h"

#include <stdbool.h>
#include <stdio.h>

static const char create_table_sql[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                       "version BIGINT PRIMARY KEY, "
                                       "name TEXT NOT NULL, "
                                       "applied_at BIGINT NOT NULL)";

static const char *migration_sql(const struct dagi_migration *m, enum dagi_db_dialect dialect)
{
    const char *variant = dialect == DAGI_DB_SQLITE ? m->sql_sqlite : m->sql_postgres;
    return variant ? variant : m->sql_all;
}

static int check_list(const struct dagi_migration *list, size_t count, enum dagi_db_dialect dialect,
                      struct dagi_error *err)
{
    for (size_t i = 0; i < count; i++) {
        const struct dagi_migration *m = &list[i];
        if (m->version <= 0 || (i > 0 && m->version <= list[i - 1].version))
            return dagi_error_set(err, DAGI_EINVAL, "migration %s: versions must ascend from 1",
                                  m->name ? m->name : "?");
        if (!m->name || !migration_sql(m, dialect))
            return dagi_error_set(err, DAGI_EINVAL, "migration %lld has no SQL for %s",
                                  (long long)m->version,
                                  dialect == DAGI_DB_SQLITE ? "sqlite" : "postgres");
    }
    return DAGI_OK;
}

static void fill_status(const struct dagi_migration *list, size_t count, int64_t current,
                        struct dagi_migrate_status *status)
{
    struct dagi_migrate_status st = {.current = current};
    for (size_t i = 0; i < count; i++) {
        if (list[i].version > st.latest)
            st.latest = list[i].version;
        if (list[i].version > current)
            st.pending++;
    }
    if (status)
        *status = st;
}

/* One integer from a one-row query. */
static int query_int(struct dagi_db_conn *conn, const char *sql, int64_t *out,
                     struct dagi_error *err)
{
    struct dagi_db_rows *rows = NULL;
    int rc = dagi_db_query(conn, sql, NULL, 0, &rows, err);
    if (rc < 0)
        return rc;
    rc = dagi_db_rows_next(rows, err);
    if (rc == 1) {
        *out = dagi_db_col_int(rows, 0);
        rc = DAGI_OK;
    } else if (rc == 0) {
        rc = dagi_error_set(err, DAGI_EINTERNAL, "no row from: %s", sql);
    }
    dagi_db_rows_free(rows);
    return rc;
}

static int current_version(struct dagi_db_conn *conn, int64_t *out, struct dagi_error *err)
{
    return query_int(conn, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", out, err);
}

/* Applies one migration with its version row, in one transaction. */
static int apply_one(struct dagi_db_conn *conn, const struct dagi_migration *m,
                     enum dagi_db_dialect dialect, struct dagi_error *err)
{
    struct dagi_error inner = {0};
    struct dagi_db_value row[] = {dagi_db_int(m->version), dagi_db_text(m->name),
                                  dagi_db_int(dagi_clock_now_ms())};
    int rc = dagi_db_begin(conn, true, &inner);
    if (rc < 0)
        goto out;
    rc = dagi_db_exec_script(conn, migration_sql(m, dialect), &inner);
    if (rc < 0)
        goto out;
    rc = dagi_db_exec(
        conn, "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)", row,
        DAGI_ARRAY_LEN(row), NULL, &inner);
    if (rc < 0)
        goto out;
    rc = dagi_db_commit(conn, &inner);
out:
    if (rc < 0) {
        dagi_db_rollback(conn);
        dagi_error_set(err, rc, "migration %s failed: %s", m->name, inner.message);
    }
    return rc;
}

int dagi_migrate(struct dagi_db *db, const struct dagi_migration *list, size_t count,
                 struct dagi_migrate_status *status, struct dagi_error *err)
{
    struct dagi_db_conn *conn = NULL;
    enum dagi_db_dialect dialect = dagi_db_dialect(db);
    int64_t current = 0;
    bool locked = false;
    if (!list) {
        list = dagi_migrations;
        count = dagi_migration_count;
    }
    int rc = check_list(list, count, dialect, err);
    if (rc < 0)
        return rc;
    rc = dagi_db_acquire(db, &conn, err);
    if (rc < 0)
        return rc;
    rc = dagi_db_backend(db)->lock(conn, err);
    if (rc < 0)
        goto out;
    locked = true;
    rc = dagi_db_exec_script(conn, create_table_sql, err);
    if (rc < 0)
        goto out;
    rc = current_version(conn, &current, err);
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < count; i++) {
        if (list[i].version <= current)
            continue;
        rc = apply_one(conn, &list[i], dialect, err);
        if (rc < 0)
            goto out;
        current = list[i].version;
    }
    fill_status(list, count, current, status);
out:
    if (locked)
        dagi_db_backend(db)->unlock(conn);
    dagi_db_release(conn);
    return rc;
}

int dagi_migrate_status(struct dagi_db *db, const struct dagi_migration *list, size_t count,
                        struct dagi_migrate_status *status, struct dagi_error *err)
{
    struct dagi_db_conn *conn = NULL;
    int64_t exists = 0, current = 0;
    if (!list) {
        list = dagi_migrations;
        count = dagi_migration_count;
    }
    int rc = dagi_db_acquire(db, &conn, err);
    if (rc < 0)
        return rc;
    /* asked without creating the table: status must not write */
    rc = query_int(conn,
                   dagi_db_dialect(db) == DAGI_DB_SQLITE
                       ? "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                         "AND name = 'schema_migrations'"
                       : "SELECT to_regclass('schema_migrations') IS NOT NULL",
                   &exists, err);
    if (rc == DAGI_OK && exists)
        rc = current_version(conn, &current, err);
    if (rc == DAGI_OK)
        fill_status(list, count, current, status);
    dagi_db_release(conn);
    return rc;
}
