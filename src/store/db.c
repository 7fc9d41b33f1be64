/* The relational store's front: URL dispatch to a backend's ops table, the
 * thin wrappers, the pool hop (dagi_db_run), and the helpers both backends
 * share (slot pool, error mapping). */
#include "store/db.h"

#include "core/mem.h"
#include "core/pool.h"
#include "store/db_internal.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* --- dispatch --- */

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int dagi_db_open(const char *url, const struct dagi_db_opts *opts, struct dagi_db **out,
                 struct dagi_error *err)
{
    static const struct dagi_db_opts defaults = {0};
    const struct dagi_db_ops *ops = NULL;
    if (!url)
        return dagi_error_set(err, DAGI_EINVAL, "database URL missing");
    if (has_prefix(url, "sqlite:"))
        ops = &dagi_db_sqlite_ops;
    else if (has_prefix(url, "postgres://") || has_prefix(url, "postgresql://"))
        ops = &dagi_db_postgres_ops;
    else
        return dagi_error_set(err, DAGI_EINVAL,
                              "database URL must start with sqlite: or postgres://");
    return ops->open(url, opts ? opts : &defaults, out, err);
}

void dagi_db_close(struct dagi_db *db)
{
    if (db)
        db->ops->close(db);
}

enum dagi_db_dialect dagi_db_dialect(struct dagi_db *db)
{
    return db->ops->dialect;
}

const struct dagi_db_ops *dagi_db_backend(struct dagi_db *db)
{
    return db->ops;
}

enum dagi_db_dialect dagi_db_conn_dialect(struct dagi_db_conn *conn)
{
    return conn->db->ops->dialect;
}

int dagi_db_acquire(struct dagi_db *db, struct dagi_db_conn **out, struct dagi_error *err)
{
    return db->ops->acquire(db, out, err);
}

void dagi_db_release(struct dagi_db_conn *conn)
{
    if (conn)
        conn->db->ops->release(conn);
}

int dagi_db_begin(struct dagi_db_conn *conn, bool write, struct dagi_error *err)
{
    return conn->db->ops->begin(conn, write, err);
}

int dagi_db_commit(struct dagi_db_conn *conn, struct dagi_error *err)
{
    return conn->db->ops->commit(conn, err);
}

int dagi_db_rollback(struct dagi_db_conn *conn)
{
    return conn->db->ops->rollback(conn);
}

int dagi_db_exec(struct dagi_db_conn *conn, const char *sql, const struct dagi_db_value *params,
                 size_t n, int64_t *affected, struct dagi_error *err)
{
    return conn->db->ops->exec(conn, sql, params, n, affected, err);
}

int dagi_db_query(struct dagi_db_conn *conn, const char *sql, const struct dagi_db_value *params,
                  size_t n, struct dagi_db_rows **out, struct dagi_error *err)
{
    return conn->db->ops->query(conn, sql, params, n, out, err);
}

int dagi_db_exec_script(struct dagi_db_conn *conn, const char *sql, struct dagi_error *err)
{
    return conn->db->ops->exec_script(conn, sql, err);
}

int dagi_db_rows_next(struct dagi_db_rows *rows, struct dagi_error *err)
{
    return rows->ops->next(rows, err);
}

size_t dagi_db_rows_columns(struct dagi_db_rows *rows)
{
    return rows->ops->columns(rows);
}

bool dagi_db_col_null(struct dagi_db_rows *rows, size_t col)
{
    return rows->ops->col_null(rows, col);
}

int64_t dagi_db_col_int(struct dagi_db_rows *rows, size_t col)
{
    return rows->ops->col_int(rows, col);
}

double dagi_db_col_double(struct dagi_db_rows *rows, size_t col)
{
    return rows->ops->col_double(rows, col);
}

const char *dagi_db_col_text(struct dagi_db_rows *rows, size_t col, size_t *len)
{
    return rows->ops->col_text(rows, col, len);
}

const void *dagi_db_col_blob(struct dagi_db_rows *rows, size_t col, size_t *len)
{
    return rows->ops->col_blob(rows, col, len);
}

void dagi_db_rows_free(struct dagi_db_rows *rows)
{
    if (rows)
        rows->ops->free(rows);
}

/* --- the pool hop --- */

struct run_job {
    struct dagi_db *db;
    int (*fn)(struct dagi_db_conn *conn, void *ud, struct dagi_error *err);
    void (*done)(void *ud, int rc, const struct dagi_error *err);
    void *ud;
    int rc;
    struct dagi_error err;
};

/* On a pool thread.  The connection goes back to the pool here, on the
 * thread that used it, before the loop hears about the result: done() must
 * not be able to observe a connection still lent out. */
static void on_run_work(void *arg)
{
    struct run_job *job = arg;
    struct dagi_db_conn *conn = NULL;
    job->rc = dagi_db_acquire(job->db, &conn, &job->err);
    if (job->rc < 0)
        return;
    job->rc = job->fn(conn, job->ud, &job->err);
    if (job->rc < 0 && job->err.code == 0)
        dagi_error_set(&job->err, job->rc, "%s", dagi_strerror(job->rc));
    /* release() rolls back a transaction fn left open */
    dagi_db_release(conn);
}

/* On the loop thread. */
static void on_run_done(void *arg, bool cancelled)
{
    struct run_job *job = arg;
    if (cancelled)
        job->rc =
            dagi_error_set(&job->err, DAGI_ECANCELED, "database job cancelled: pool stopping");
    if (job->done)
        job->done(job->ud, job->rc, &job->err);
    free(job);
}

int dagi_db_run(struct dagi_db *db, struct dagi_pool *pool,
                int (*fn)(struct dagi_db_conn *conn, void *ud, struct dagi_error *err),
                void (*done)(void *ud, int rc, const struct dagi_error *err), void *ud)
{
    if (!db || !pool || !fn)
        return DAGI_EINVAL;
    struct run_job *job = dagi_xcalloc(1, sizeof(*job));
    *job = (struct run_job){.db = db, .fn = fn, .done = done, .ud = ud};
    int rc = dagi_pool_submit(pool, on_run_work, on_run_done, job);
    if (rc < 0)
        free(job); /* not queued: done() will not be called */
    return rc;
}

/* --- slots --- */

void dagi_db_slots_init(struct dagi_db_slots *s, unsigned n)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->freed, &attr);
    pthread_condattr_destroy(&attr);
    s->n = n;
    s->busy = dagi_xcalloc(n, sizeof(*s->busy));
}

void dagi_db_slots_release(struct dagi_db_slots *s)
{
    pthread_cond_destroy(&s->freed);
    pthread_mutex_destroy(&s->lock);
    free(s->busy);
    s->busy = NULL;
}

int dagi_db_slots_take(struct dagi_db_slots *s, unsigned timeout_ms, unsigned *index)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    int rc = DAGI_EAGAIN;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        for (unsigned i = 0; i < s->n; i++) {
            if (!s->busy[i]) {
                s->busy[i] = true;
                *index = i;
                rc = DAGI_OK;
                goto out;
            }
        }
        if (pthread_cond_timedwait(&s->freed, &s->lock, &deadline) == ETIMEDOUT)
            goto out;
    }
out:
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void dagi_db_slots_give(struct dagi_db_slots *s, unsigned index)
{
    pthread_mutex_lock(&s->lock);
    s->busy[index] = false;
    pthread_cond_signal(&s->freed);
    pthread_mutex_unlock(&s->lock);
}

/* --- errors --- */

int dagi_db_code_from_sqlite(int extended_rc)
{
    switch (extended_rc) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
        return DAGI_EEXIST;
    }
    switch (extended_rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return DAGI_EAGAIN;
    case SQLITE_NOMEM:
        return DAGI_ENOMEM;
    }
    return DAGI_EIO;
}

int dagi_db_code_from_sqlstate(const char *sqlstate)
{
    if (!sqlstate || strlen(sqlstate) != 5)
        return DAGI_EIO;
    if (strcmp(sqlstate, "23505") == 0) /* unique_violation */
        return DAGI_EEXIST;
    /* serialization_failure, deadlock_detected, lock_not_available */
    if (strcmp(sqlstate, "40001") == 0 || strcmp(sqlstate, "40P01") == 0 ||
        strcmp(sqlstate, "55P03") == 0)
        return DAGI_EAGAIN;
    /* class 08 connection exception; 57P01-03 the server shutting down or
     * starting up: all "the server is not there right now" */
    if (strncmp(sqlstate, "08", 2) == 0 || strcmp(sqlstate, "57P01") == 0 ||
        strcmp(sqlstate, "57P02") == 0 || strcmp(sqlstate, "57P03") == 0)
        return DAGI_EUNAVAIL;
    return DAGI_EIO;
}

int dagi_db_fail(struct dagi_error *err, int code, const char *what, const char *engine_message)
{
    const char *msg = engine_message ? engine_message : "";
    size_t len = strlen(msg);
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
        len--;
    if (len == 0) {
        msg = dagi_strerror(code);
        len = strlen(msg);
    }
    if (what)
        return dagi_error_set(err, code, "%s: %.*s", what, (int)len, msg);
    return dagi_error_set(err, code, "%.*s", (int)len, msg);
}
