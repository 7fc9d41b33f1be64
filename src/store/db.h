/* The relational store: one interface, two backends (STYLE.md's pattern).
 *
 *   sqlite:PATH            embedded default (WAL, secure_delete, busy timeout)
 *   postgres://...         PostgreSQL through libpq, a connection pool and
 *                          prepared statements
 *
 * The API is synchronous and must run on the worker pool (or another thread
 * that is not an event loop), never on a loop thread: dagi_db_run() does the
 * hop - it runs a function with a connection on the pool and delivers the
 * result back to the loop.
 *
 * SQL is written once, with $1..$n placeholders, in the subset both engines
 * share; parameters are always bound, never formatted into SQL.  Where the
 * engines differ (types, upserts), migrations carry a dialect variant, and
 * code asks dagi_db_dialect().
 *
 * Ownership: a dagi_db owns its connections; a connection is lent by
 * dagi_db_acquire() to one thread until dagi_db_release(); rows belong to
 * the connection and are valid until dagi_db_rows_free() or the next call on
 * that connection. */
#ifndef DAGI_STORE_DB_H
#define DAGI_STORE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/err.h"

struct dagi_db;
struct dagi_db_conn;
struct dagi_db_rows;
struct dagi_pool;

enum dagi_db_dialect { DAGI_DB_SQLITE, DAGI_DB_POSTGRES };

enum dagi_db_type { DAGI_DB_NULL, DAGI_DB_INT, DAGI_DB_DOUBLE, DAGI_DB_TEXT, DAGI_DB_BLOB };

struct dagi_db_value {
    enum dagi_db_type type;
    union {
        int64_t i;
        double d;
        struct {
            const char *ptr; /* TEXT: UTF-8, need not be NUL-terminated */
            size_t len;
        } s;
    } v;
};

/* Convenience constructors for parameter arrays. */
static inline struct dagi_db_value dagi_db_int(int64_t i)
{
    struct dagi_db_value x = {.type = DAGI_DB_INT, .v.i = i};
    return x;
}
static inline struct dagi_db_value dagi_db_textn(const char *s, size_t n)
{
    struct dagi_db_value x = {.type = DAGI_DB_TEXT, .v.s = {s, n}};
    return x;
}
static inline struct dagi_db_value dagi_db_text(const char *s)
{
    return dagi_db_textn(s, strlen(s));
}
static inline struct dagi_db_value dagi_db_blob(const void *p, size_t n)
{
    struct dagi_db_value x = {.type = DAGI_DB_BLOB, .v.s = {(const char *)p, n}};
    return x;
}
static inline struct dagi_db_value dagi_db_null(void)
{
    struct dagi_db_value x = {.type = DAGI_DB_NULL};
    return x;
}

struct dagi_db_opts {
    unsigned pool_size;       /* connections (0 = 4; SQLite: readers, plus one writer) */
    unsigned busy_timeout_ms; /* waiting for a lock (0 = 5 s) */
};

/* The backend ops table.  Optional slots are documented as such. */
struct dagi_db_ops {
    const char *name; /* "sqlite", "postgres" */
    enum dagi_db_dialect dialect;
    int (*open)(const char *url, const struct dagi_db_opts *opts, struct dagi_db **out,
                struct dagi_error *err);
    void (*close)(struct dagi_db *db);
    int (*acquire)(struct dagi_db *db, struct dagi_db_conn **out, struct dagi_error *err);
    void (*release)(struct dagi_db_conn *conn);
    int (*begin)(struct dagi_db_conn *conn, bool write, struct dagi_error *err);
    int (*commit)(struct dagi_db_conn *conn, struct dagi_error *err);
    int (*rollback)(struct dagi_db_conn *conn);
    int (*exec)(struct dagi_db_conn *conn, const char *sql, const struct dagi_db_value *params,
                size_t n, int64_t *affected, struct dagi_error *err);
    int (*query)(struct dagi_db_conn *conn, const char *sql, const struct dagi_db_value *params,
                 size_t n, struct dagi_db_rows **out, struct dagi_error *err);
    /* Runs a multi-statement script without parameters (migrations). */
    int (*exec_script)(struct dagi_db_conn *conn, const char *sql, struct dagi_error *err);
    /* Takes / drops the database-wide migration lock (PostgreSQL: an
     * advisory lock; SQLite: an exclusive lock file beside the database). */
    int (*lock)(struct dagi_db_conn *conn, struct dagi_error *err);
    void (*unlock)(struct dagi_db_conn *conn);
};

extern const struct dagi_db_ops dagi_db_sqlite_ops;
extern const struct dagi_db_ops dagi_db_postgres_ops;

/* Opens by URL: "sqlite:PATH" (or "sqlite::memory:") or "postgres://..."/
 * "postgresql://...".  DAGI_EINVAL for an unknown scheme. */
int dagi_db_open(const char *url, const struct dagi_db_opts *opts, struct dagi_db **out,
                 struct dagi_error *err);
void dagi_db_close(struct dagi_db *db);
enum dagi_db_dialect dagi_db_dialect(struct dagi_db *db);
const struct dagi_db_ops *dagi_db_backend(struct dagi_db *db);
/* The same, for code that holds only a connection (inside dagi_db_run). */
enum dagi_db_dialect dagi_db_conn_dialect(struct dagi_db_conn *conn);

/* The dialect of the database a connection belongs to. */
enum dagi_db_dialect dagi_db_conn_dialect(struct dagi_db_conn *conn);
int dagi_db_acquire(struct dagi_db *db, struct dagi_db_conn **out, struct dagi_error *err);
void dagi_db_release(struct dagi_db_conn *conn);
/* write = true takes the write lock up front (SQLite BEGIN IMMEDIATE). */
int dagi_db_begin(struct dagi_db_conn *conn, bool write, struct dagi_error *err);
int dagi_db_commit(struct dagi_db_conn *conn, struct dagi_error *err);
int dagi_db_rollback(struct dagi_db_conn *conn);
int dagi_db_exec(struct dagi_db_conn *conn, const char *sql, const struct dagi_db_value *params,
                 size_t n, int64_t *affected, struct dagi_error *err);
int dagi_db_query(struct dagi_db_conn *conn, const char *sql, const struct dagi_db_value *params,
                  size_t n, struct dagi_db_rows **out, struct dagi_error *err);
int dagi_db_exec_script(struct dagi_db_conn *conn, const char *sql, struct dagi_error *err);

/* Rows: next() returns 1 with a row, 0 at the end, negative on error. */
int dagi_db_rows_next(struct dagi_db_rows *rows, struct dagi_error *err);
size_t dagi_db_rows_columns(struct dagi_db_rows *rows);
bool dagi_db_col_null(struct dagi_db_rows *rows, size_t col);
int64_t dagi_db_col_int(struct dagi_db_rows *rows, size_t col);
double dagi_db_col_double(struct dagi_db_rows *rows, size_t col);
/* Valid until the next row; *len may be NULL.  NULL for SQL NULL. */
const char *dagi_db_col_text(struct dagi_db_rows *rows, size_t col, size_t *len);
const void *dagi_db_col_blob(struct dagi_db_rows *rows, size_t col, size_t *len);
void dagi_db_rows_free(struct dagi_db_rows *rows);

/* Errors a caller may act on: DAGI_EEXIST for a unique-constraint
 * violation, DAGI_EAGAIN for a serialization failure / busy database that is
 * worth retrying, DAGI_EUNAVAIL when the server is unreachable. */

/* Runs fn(conn, ud) on the pool with an acquired connection, then
 * done(ud, rc) on the loop thread (rc is fn's return, or DAGI_ECANCELED when
 * the pool is stopping). */
int dagi_db_run(struct dagi_db *db, struct dagi_pool *pool,
                int (*fn)(struct dagi_db_conn *conn, void *ud, struct dagi_error *err),
                void (*done)(void *ud, int rc, const struct dagi_error *err), void *ud);

#endif
