/* SQLite backend: "sqlite:PATH" and "sqlite::memory:".
 *
 * Connections.  A pool of pool_size connections, opened lazily (the first
 * one at open time, so a bad path fails early and WAL is switched on once).
 * Each is opened SQLITE_OPEN_NOMUTEX: the pool lends a connection to one
 * thread at a time, so SQLite's per-connection mutex would only cost.
 * ":memory:" is one private database per connection, so a memory database
 * gets exactly one connection and callers queue for it.
 *
 * Writers.  SQLite has one writer per database.  Left to SQLite, writers of
 * one process would poll for the lock in the busy handler (sleeps of up to
 * 100 ms, no fairness).  So begin(write=true) first takes an in-process
 * writer token (a condition variable, woken at once on release), then
 * BEGIN IMMEDIATE, which still serialises against other processes through
 * the busy timeout.  Deferred transactions and autocommit statements do not
 * take the token; they wait in the busy handler as usual.
 *
 * Statements are prepared once per connection and kept in a small LRU keyed
 * by SQL text.  A cached statement held by live rows is not shared: a second
 * use of the same SQL meanwhile gets a private statement, finalized after.
 *
 * Placeholders are $1..$n (what PostgreSQL takes).  SQLite treats "$1" as a
 * named parameter, so each value is bound by name with
 * sqlite3_bind_parameter_index(): a placeholder may repeat or appear out of
 * order.  Any other placeholder form is refused, so SQL that works here also
 * works on PostgreSQL. */
#include "store/db.h"

#include "core/mem.h"
#include "store/db_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define STMT_CACHE_MAX 32

struct cached_stmt {
    struct dagi_lru_link lru; /* in sqlite_conn.lru, most recent first */
    char *sql;
    sqlite3_stmt *stmt;
    int max_param; /* highest $N the statement uses */
    bool busy;     /* held by live rows */
};

struct sqlite_rows;

struct sqlite_conn {
    struct dagi_db_conn base;
    struct sqlite_db *owner;
    unsigned index;
    sqlite3 *handle;
    struct dagi_lru lru; /* of cached_stmt */
    size_t cached;
    struct sqlite_rows *live; /* rows not yet freed */
    bool holds_writer;
    int lock_fd; /* the migration lock, -1 when not held */
};

struct sqlite_db {
    struct dagi_db base;
    char *path;
    char *lock_path;
    bool memory;
    unsigned busy_ms;
    struct dagi_db_slots slots;
    struct dagi_db_slots writer; /* one slot: the in-process writer token */
    struct sqlite_conn *conns;
};

struct sqlite_rows {
    struct dagi_db_rows base;
    struct sqlite_conn *conn; /* NULL once the connection was released */
    struct sqlite_rows *prev, *next;
    sqlite3_stmt *stmt;
    struct cached_stmt *entry; /* NULL for a private statement */
    bool first_ready;          /* query() stepped onto the first row */
    bool on_row;
    bool done;
};

static const struct dagi_db_rows_ops sqlite_rows_ops;

static int fail_handle(sqlite3 *h, struct dagi_error *err, const char *what)
{
    int code = dagi_db_code_from_sqlite(sqlite3_extended_errcode(h));
    return dagi_db_fail(err, code, what, sqlite3_errmsg(h));
}

/* --- statements --- */

/* The statement a cache link belongs to; NULL past either end. */
static struct cached_stmt *stmt_of(struct dagi_lru_link *l)
{
    return l ? container_of(l, struct cached_stmt, lru) : NULL;
}

static void cache_drop(struct sqlite_conn *c, struct cached_stmt *e)
{
    dagi_lru_unlink(&c->lru, &e->lru);
    c->cached--;
    sqlite3_finalize(e->stmt);
    free(e->sql);
    free(e);
}

/* Checks that every placeholder is a canonical "$N" and returns the highest
 * N.  "$01" would be a different parameter from "$1" to SQLite, and "?" or
 * ":name" would not work on PostgreSQL, so both are refused. */
static int check_placeholders(sqlite3_stmt *stmt, int *max_param, struct dagi_error *err)
{
    int count = sqlite3_bind_parameter_count(stmt), max = 0;
    for (int j = 1; j <= count; j++) {
        const char *name = sqlite3_bind_parameter_name(stmt, j);
        char canonical[24];
        long n = name && name[0] == '$' ? strtol(name + 1, NULL, 10) : 0;
        snprintf(canonical, sizeof(canonical), "$%ld", n);
        if (n < 1 || n > 65535 || strcmp(canonical, name) != 0)
            return dagi_error_set(err, DAGI_EINVAL, "placeholder %s: use $1..$n",
                                  name ? name : "?");
        if (n > max)
            max = (int)n;
    }
    *max_param = max;
    return DAGI_OK;
}

static int prepare(struct sqlite_conn *c, const char *sql, unsigned flags, sqlite3_stmt **out,
                   int *max_param, struct dagi_error *err)
{
    sqlite3_stmt *stmt = NULL, *extra = NULL;
    const char *tail = NULL;
    int rc;
    if (sqlite3_prepare_v3(c->handle, sql, -1, flags, &stmt, &tail) != SQLITE_OK) {
        rc = fail_handle(c->handle, err, NULL);
        goto out;
    }
    if (!stmt) {
        rc = dagi_error_set(err, DAGI_EINVAL, "empty SQL statement");
        goto out;
    }
    /* a tail of only whitespace and comments prepares to no statement */
    if (tail && *tail &&
        (sqlite3_prepare_v2(c->handle, tail, -1, &extra, NULL) != SQLITE_OK || extra)) {
        rc = dagi_error_set(err, DAGI_EINVAL,
                            "one SQL statement per call (use dagi_db_exec_script for scripts)");
        goto out;
    }
    rc = check_placeholders(stmt, max_param, err);
out:
    sqlite3_finalize(extra);
    if (rc < 0)
        sqlite3_finalize(stmt);
    else
        *out = stmt;
    return rc;
}

/* Finds or prepares the statement for sql.  *entry is the cache entry now
 * marked busy, or NULL for a private statement the caller finalizes. */
static int stmt_get(struct sqlite_conn *c, const char *sql, size_t nparams, sqlite3_stmt **out,
                    struct cached_stmt **entry, struct dagi_error *err)
{
    struct cached_stmt *e;
    sqlite3_stmt *stmt = NULL;
    int max_param = 0, rc = DAGI_OK;
    for (e = stmt_of(c->lru.head); e; e = stmt_of(e->lru.next))
        if (strcmp(e->sql, sql) == 0)
            break;
    if (e && !e->busy) {
        dagi_lru_unlink(&c->lru, &e->lru);
        dagi_lru_push_front(&c->lru, &e->lru);
        stmt = e->stmt;
        max_param = e->max_param;
    } else if (e) { /* in use by live rows: a private copy */
        rc = prepare(c, sql, 0, &stmt, &max_param, err);
        e = NULL;
    } else {
        rc = prepare(c, sql, SQLITE_PREPARE_PERSISTENT, &stmt, &max_param, err);
        if (rc == DAGI_OK) {
            e = dagi_xcalloc(1, sizeof(*e));
            *e = (struct cached_stmt){
                .sql = dagi_xstrdup(sql), .stmt = stmt, .max_param = max_param};
            dagi_lru_push_front(&c->lru, &e->lru);
            c->cached++;
            /* evict from the cold end, skipping statements still in use */
            for (struct cached_stmt *v = stmt_of(c->lru.tail); v && c->cached > STMT_CACHE_MAX;) {
                struct cached_stmt *prev = stmt_of(v->lru.prev);
                if (!v->busy && v != e)
                    cache_drop(c, v);
                v = prev;
            }
        }
    }
    if (rc < 0)
        return rc;
    if ((size_t)max_param != nparams) {
        if (!e)
            sqlite3_finalize(stmt);
        return dagi_error_set(err, DAGI_EINVAL, "statement uses $%d but %zu parameters were given",
                              max_param, nparams);
    }
    if (e)
        e->busy = true;
    *out = stmt;
    *entry = e;
    return DAGI_OK;
}

static void stmt_put(sqlite3_stmt *stmt, struct cached_stmt *entry)
{
    if (!entry) {
        sqlite3_finalize(stmt);
        return;
    }
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt); /* drops copies of large values now */
    entry->busy = false;
}

/* Values are copied (SQLITE_TRANSIENT): rows are stepped after query()
 * returns, when the caller's parameter array may be gone. */
static int bind_params(struct sqlite_conn *c, sqlite3_stmt *stmt,
                       const struct dagi_db_value *params, size_t n, struct dagi_error *err)
{
    for (size_t i = 0; i < n; i++) {
        char name[24];
        snprintf(name, sizeof(name), "$%zu", i + 1);
        int idx = sqlite3_bind_parameter_index(stmt, name), rc = SQLITE_OK;
        /* PostgreSQL cannot type a parameter the SQL does not use, so an
         * unused one is refused here as well */
        if (idx == 0)
            return dagi_error_set(err, DAGI_EINVAL, "parameter %s is not used by the statement",
                                  name);
        const struct dagi_db_value *v = &params[i];
        switch (v->type) {
        case DAGI_DB_NULL:
            rc = sqlite3_bind_null(stmt, idx);
            break;
        case DAGI_DB_INT:
            rc = sqlite3_bind_int64(stmt, idx, v->v.i);
            break;
        case DAGI_DB_DOUBLE:
            rc = sqlite3_bind_double(stmt, idx, v->v.d);
            break;
        case DAGI_DB_TEXT:
            rc = sqlite3_bind_text64(stmt, idx, v->v.s.ptr ? v->v.s.ptr : "", v->v.s.len,
                                     SQLITE_TRANSIENT, SQLITE_UTF8);
            break;
        case DAGI_DB_BLOB:
            /* a NULL pointer would bind SQL NULL, not an empty blob */
            if (v->v.s.len == 0)
                rc = sqlite3_bind_zeroblob(stmt, idx, 0);
            else
                rc = sqlite3_bind_blob64(stmt, idx, v->v.s.ptr, v->v.s.len, SQLITE_TRANSIENT);
            break;
        default:
            return dagi_error_set(err, DAGI_EINVAL, "parameter $%zu: unknown type", i + 1);
        }
        if (rc != SQLITE_OK)
            return fail_handle(c->handle, err, name);
    }
    return DAGI_OK;
}

/* --- connections --- */

static int conn_open(struct sqlite_db *db, struct sqlite_conn *c, bool first,
                     struct dagi_error *err)
{
    int rc = DAGI_OK;
    sqlite3 *h = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(db->path, &h, flags, NULL) != SQLITE_OK) {
        rc = h ? fail_handle(h, err, db->path) : dagi_error_set(err, DAGI_ENOMEM, "sqlite3_open");
        goto out;
    }
    sqlite3_extended_result_codes(h, 1);
    sqlite3_busy_timeout(h, (int)db->busy_ms);
    /* WAL is a property of the file: set once, by the first connection */
    if (first && !db->memory && sqlite3_exec(h, "PRAGMA journal_mode=WAL", NULL, NULL, NULL)) {
        rc = fail_handle(h, err, "PRAGMA journal_mode=WAL");
        goto out;
    }
    if (sqlite3_exec(h,
                     "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON",
                     NULL, NULL, NULL) != SQLITE_OK) {
        rc = fail_handle(h, err, "PRAGMA");
        goto out;
    }
    c->handle = h;
    h = NULL;
out:
    sqlite3_close_v2(h);
    return rc;
}

static void conn_close(struct sqlite_conn *c)
{
    while (c->lru.head)
        cache_drop(c, stmt_of(c->lru.head));
    sqlite3_close_v2(c->handle); /* _v2: defers if a caller leaked rows */
    c->handle = NULL;
}

static void sqlite_close(struct dagi_db *base)
{
    struct sqlite_db *db = (struct sqlite_db *)base;
    for (unsigned i = 0; i < db->slots.n; i++)
        conn_close(&db->conns[i]);
    dagi_db_slots_release(&db->slots);
    dagi_db_slots_release(&db->writer);
    free(db->conns);
    free(db->path);
    free(db->lock_path);
    free(db);
}

static int sqlite_open(const char *url, const struct dagi_db_opts *opts, struct dagi_db **out,
                       struct dagi_error *err)
{
    const char *path = url + strlen("sqlite:");
    if (strncmp(path, "//", 2) == 0) /* sqlite:///abs/path and sqlite://rel */
        path += 2;
    if (!*path)
        return dagi_error_set(err, DAGI_EINVAL, "%s: no database path", url);
    struct sqlite_db *db = dagi_xcalloc(1, sizeof(*db));
    db->base.ops = &dagi_db_sqlite_ops;
    db->path = dagi_xstrdup(path);
    db->memory = strcmp(path, ":memory:") == 0;
    db->lock_path = dagi_xasprintf("%s.migrate.lock", path);
    db->busy_ms = opts->busy_timeout_ms ? opts->busy_timeout_ms : DAGI_DB_DEFAULT_BUSY_MS;
    unsigned n = db->memory ? 1 : opts->pool_size ? opts->pool_size : DAGI_DB_DEFAULT_POOL;
    dagi_db_slots_init(&db->slots, n);
    dagi_db_slots_init(&db->writer, 1);
    db->conns = dagi_xcalloc(n, sizeof(*db->conns));
    for (unsigned i = 0; i < n; i++)
        db->conns[i] =
            (struct sqlite_conn){.base.db = &db->base, .owner = db, .index = i, .lock_fd = -1};
    int rc = conn_open(db, &db->conns[0], true, err);
    if (rc < 0) {
        sqlite_close(&db->base);
        return rc;
    }
    *out = &db->base;
    return DAGI_OK;
}

static int sqlite_acquire(struct dagi_db *base, struct dagi_db_conn **out, struct dagi_error *err)
{
    struct sqlite_db *db = (struct sqlite_db *)base;
    unsigned i;
    if (dagi_db_slots_take(&db->slots, db->busy_ms, &i) < 0)
        return dagi_error_set(err, DAGI_EAGAIN, "all %u database connections are in use",
                              db->slots.n);
    struct sqlite_conn *c = &db->conns[i];
    if (!c->handle) {
        int rc = conn_open(db, c, false, err);
        if (rc < 0) {
            dagi_db_slots_give(&db->slots, i);
            return rc;
        }
    }
    *out = &c->base;
    return DAGI_OK;
}

/* Rows still open are cut loose: their statements go back to the cache
 * and the rows object only waits for dagi_db_rows_free(). */
static void detach_rows(struct sqlite_conn *c)
{
    while (c->live) {
        struct sqlite_rows *r = c->live;
        c->live = r->next;
        stmt_put(r->stmt, r->entry);
        r->stmt = NULL;
        r->conn = NULL;
        r->prev = r->next = NULL;
    }
}

static void give_writer(struct sqlite_conn *c)
{
    if (c->holds_writer) {
        c->holds_writer = false;
        dagi_db_slots_give(&c->owner->writer, 0);
    }
}

static int sqlite_rollback(struct dagi_db_conn *base)
{
    struct sqlite_conn *c = (struct sqlite_conn *)base;
    int rc = DAGI_OK;
    if (!sqlite3_get_autocommit(c->handle) &&
        sqlite3_exec(c->handle, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
        rc = dagi_db_code_from_sqlite(sqlite3_extended_errcode(c->handle));
    give_writer(c);
    return rc;
}

static void sqlite_unlock(struct dagi_db_conn *base);

static void sqlite_release(struct dagi_db_conn *base)
{
    struct sqlite_conn *c = (struct sqlite_conn *)base;
    detach_rows(c);
    sqlite_rollback(base); /* a transaction left open would block writers */
    sqlite_unlock(base);
    dagi_db_slots_give(&c->owner->slots, c->index);
}

static int sqlite_begin(struct dagi_db_conn *base, bool write, struct dagi_error *err)
{
    struct sqlite_conn *c = (struct sqlite_conn *)base;
    if (!sqlite3_get_autocommit(c->handle))
        return dagi_error_set(err, DAGI_EINVAL, "a transaction is already open");
    if (write) {
        unsigned slot;
        if (dagi_db_slots_take(&c->owner->writer, c->owner->busy_ms, &slot) < 0)
            return dagi_error_set(err, DAGI_EAGAIN, "database busy: waited %u ms for the writer",
                                  c->owner->busy_ms);
        c->holds_writer = true;
    }
    if (sqlite3_exec(c->handle, write ? "BEGIN IMMEDIATE" : "BEGIN", NULL, NULL, NULL) !=
        SQLITE_OK) {
        int rc = fail_handle(c->handle, err, "BEGIN");
        give_writer(c);
        return rc;
    }
    return DAGI_OK;
}

/* A failed COMMIT (SQLITE_BUSY) would leave the transaction open; it is
 * rolled back so that both backends end the transaction either way. */
static int sqlite_commit(struct dagi_db_conn *base, struct dagi_error *err)
{
    struct sqlite_conn *c = (struct sqlite_conn *)base;
    int rc = DAGI_OK;
    if (sqlite3_get_autocommit(c->handle))
        return dagi_error_set(err, DAGI_EINVAL, "COMMIT: no transaction is open");
    if (sqlite3_exec(c->handle, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = fail_handle(c->handle, err, "COMMIT");
    sqlite_rollback(base);
    return rc;
}

static int sqlite_exec(struct dagi_db_conn *base, const char *sql,
                       const struct dagi_db_value *params, size_t n, int64_t *affected,
                       struct dagi_error *err)
{
    struct sqlite_conn *c = (struct sqlite_conn *)base;
    sqlite3_stmt *stmt;
    struct cached_stmt *entry;
    int rc = stmt_get(c, sql, n, &stmt, &entry, err);
    if (rc < 0)
        return rc;
    rc = bind_params(c, stmt, params, n, err);
    if (rc < 0)
        goto out;
    int step;
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW)
        ; /* e.g. RETURNING: exec() drops the rows */
    if (step != SQLITE_DONE) {
        rc = fail_handle(c->handle, err, NULL);
        goto out;
    }
    if (affected)
        *affected = sqlite3_changes64(c->handle);
out:
    stmt_put(stmt, entry);
    return rc;
}

/* Steps onto the first row here, so that errors (a constraint in INSERT ..
 * RETURNING, a bad cast) surface from query() as they do on PostgreSQL. */
static int sqlite_query(struct dagi_db_conn *base, const char *sql,
                        const struct dagi_db_value *params, size_t n, struct dagi_db_rows **out,
                        struct dagi_error *err)
{
    struct sqlite_conn *c = (struct sqlite_conn *)base;
    sqlite3_stmt *stmt;
    struct cached_stmt *entry;
    int rc = stmt_get(c, sql, n, &stmt, &entry, err);
    if (rc < 0)
        return rc;
    rc = bind_params(c, stmt, params, n, err);
    if (rc < 0)
        goto fail;
    int step = sqlite3_step(stmt);
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        rc = fail_handle(c->handle, err, NULL);
        goto fail;
    }
    struct sqlite_rows *r = dagi_xcalloc(1, sizeof(*r));
    *r = (struct sqlite_rows){.base.ops = &sqlite_rows_ops,
                              .conn = c,
                              .stmt = stmt,
                              .entry = entry,
                              .first_ready = step == SQLITE_ROW,
                              .done = step == SQLITE_DONE};
    r->next = c->live;
    if (c->live)
        c->live->prev = r;
    c->live = r;
    *out = &r->base;
    return DAGI_OK;
fail:
    stmt_put(stmt, entry);
    return rc;
}

static int sqlite_exec_script(struct dagi_db_conn *base, const char *sql, struct dagi_error *err)
{
    struct sqlite_conn *c = (struct sqlite_conn *)base;
    char *msg = NULL;
    int rc = DAGI_OK;
    if (sqlite3_exec(c->handle, sql, NULL, NULL, &msg) != SQLITE_OK)
        rc = dagi_db_fail(err, dagi_db_code_from_sqlite(sqlite3_extended_errcode(c->handle)), NULL,
                          msg ? msg : sqlite3_errmsg(c->handle));
    sqlite3_free(msg);
    return rc;
}

/* The migration lock is an flock() on PATH.migrate.lock, not BEGIN
 * EXCLUSIVE: migrate applies each migration in a transaction of its own,
 * which cannot nest inside an EXCLUSIVE transaction held for the whole run.
 * flock locks belong to the open file description, so they exclude other
 * processes and other connections of this process alike, and the kernel
 * drops them when a migrating process dies.  A memory database has one
 * connection, which its holder already has to itself. */
static int sqlite_lock(struct dagi_db_conn *base, struct dagi_error *err)
{
    struct sqlite_conn *c = (struct sqlite_conn *)base;
    if (c->owner->memory || c->lock_fd >= 0)
        return DAGI_OK;
    int fd = open(c->owner->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return dagi_error_set(err, DAGI_EIO, "%s: %s", c->owner->lock_path, strerror(errno));
    int rc;
    while ((rc = flock(fd, LOCK_EX)) < 0 && errno == EINTR)
        ;
    if (rc < 0) {
        rc = dagi_error_set(err, DAGI_EIO, "flock %s: %s", c->owner->lock_path, strerror(errno));
        close(fd);
        return rc;
    }
    c->lock_fd = fd;
    return DAGI_OK;
}

static void sqlite_unlock(struct dagi_db_conn *base)
{
    struct sqlite_conn *c = (struct sqlite_conn *)base;
    if (c->lock_fd >= 0) {
        flock(c->lock_fd, LOCK_UN);
        close(c->lock_fd);
        c->lock_fd = -1;
    }
}

/* --- rows --- */

static int rows_next(struct dagi_db_rows *base, struct dagi_error *err)
{
    struct sqlite_rows *r = (struct sqlite_rows *)base;
    if (!r->conn)
        return dagi_error_set(err, DAGI_ECLOSED, "rows read after their connection was released");
    r->on_row = false;
    if (r->first_ready) {
        r->first_ready = false;
        r->on_row = true;
        return 1;
    }
    if (r->done)
        return 0;
    int step = sqlite3_step(r->stmt);
    if (step == SQLITE_ROW) {
        r->on_row = true;
        return 1;
    }
    r->done = true;
    if (step == SQLITE_DONE)
        return 0;
    return fail_handle(r->conn->handle, err, NULL);
}

static size_t rows_columns(struct dagi_db_rows *base)
{
    struct sqlite_rows *r = (struct sqlite_rows *)base;
    return r->stmt ? (size_t)sqlite3_column_count(r->stmt) : 0;
}

/* True when col is a column of the current row. */
static bool have_col(struct sqlite_rows *r, size_t col)
{
    return r->conn && r->on_row && col < (size_t)sqlite3_column_count(r->stmt);
}

static bool rows_col_null(struct dagi_db_rows *base, size_t col)
{
    struct sqlite_rows *r = (struct sqlite_rows *)base;
    return !have_col(r, col) || sqlite3_column_type(r->stmt, (int)col) == SQLITE_NULL;
}

static int64_t rows_col_int(struct dagi_db_rows *base, size_t col)
{
    struct sqlite_rows *r = (struct sqlite_rows *)base;
    return have_col(r, col) ? sqlite3_column_int64(r->stmt, (int)col) : 0;
}

static double rows_col_double(struct dagi_db_rows *base, size_t col)
{
    struct sqlite_rows *r = (struct sqlite_rows *)base;
    return have_col(r, col) ? sqlite3_column_double(r->stmt, (int)col) : 0.0;
}

/* SQLite returns a NULL pointer for an empty value too; only SQL NULL is
 * NULL here. */
static const char *rows_col_text(struct dagi_db_rows *base, size_t col, size_t *len)
{
    struct sqlite_rows *r = (struct sqlite_rows *)base;
    const char *p = NULL;
    size_t n = 0;
    if (!rows_col_null(base, col)) {
        p = (const char *)sqlite3_column_text(r->stmt, (int)col);
        n = (size_t)sqlite3_column_bytes(r->stmt, (int)col);
        if (!p)
            p = "";
    }
    if (len)
        *len = n;
    return p;
}

static const void *rows_col_blob(struct dagi_db_rows *base, size_t col, size_t *len)
{
    struct sqlite_rows *r = (struct sqlite_rows *)base;
    const void *p = NULL;
    size_t n = 0;
    if (!rows_col_null(base, col)) {
        p = sqlite3_column_blob(r->stmt, (int)col);
        n = (size_t)sqlite3_column_bytes(r->stmt, (int)col);
        if (!p)
            p = "";
    }
    if (len)
        *len = n;
    return p;
}

static void rows_free(struct dagi_db_rows *base)
{
    struct sqlite_rows *r = (struct sqlite_rows *)base;
    if (r->conn) {
        if (r->prev)
            r->prev->next = r->next;
        else
            r->conn->live = r->next;
        if (r->next)
            r->next->prev = r->prev;
        stmt_put(r->stmt, r->entry);
    }
    free(r);
}

static const struct dagi_db_rows_ops sqlite_rows_ops = {
    .next = rows_next,
    .columns = rows_columns,
    .col_null = rows_col_null,
    .col_int = rows_col_int,
    .col_double = rows_col_double,
    .col_text = rows_col_text,
    .col_blob = rows_col_blob,
    .free = rows_free,
};

const struct dagi_db_ops dagi_db_sqlite_ops = {
    .name = "sqlite",
    .dialect = DAGI_DB_SQLITE,
    .open = sqlite_open,
    .close = sqlite_close,
    .acquire = sqlite_acquire,
    .release = sqlite_release,
    .begin = sqlite_begin,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .exec = sqlite_exec,
    .query = sqlite_query,
    .exec_script = sqlite_exec_script,
    .lock = sqlite_lock,
    .unlock = sqlite_unlock,
};
