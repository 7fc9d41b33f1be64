/* PostgreSQL backend through libpq: "postgres://..." / "postgresql://...".
 *
 * Connections.  A pool of pool_size connections, each opened on first use
 * with application_name=dagi (unless the URL names another).  Before a
 * connection is lent out it is checked: one that libpq knows is broken,
 * or whose socket is readable while idle (the server said goodbye: a
 * restart, pg_terminate_backend), is replaced by a fresh one.  A connection
 * that breaks while lent out fails that call with DAGI_EUNAVAIL and is
 * replaced on its next acquire; statements are never retried behind the
 * caller's back, since a statement may have committed before the break.
 *
 * Statements are prepared once per connection (PQprepare, names dagi_s<N>)
 * and kept in a small LRU keyed by SQL text plus which parameters are
 * blobs.  Parameters go as text, except blobs, which go in binary format
 * typed bytea (so "SELECT $1" with a blob works without a cast SQLite would
 * not parse); the other types are left for the server to infer from the
 * SQL, as the SQL is written once for both engines.
 *
 * Results come back as text: integers, numerics, booleans ("t"/"f") and
 * timestamps then need no per-type binary decoding, and only bytea columns
 * are decoded (PQunescapeBytea), lazily, when a cell is read.  Results are
 * fetched whole, so page large reads with LIMIT.
 *
 * Transactions.  begin(write=true) is BEGIN ISOLATION LEVEL SERIALIZABLE
 * and begin(write=false) REPEATABLE READ: the guarantees SQLite gives
 * (one writer; a snapshot per transaction), so a read-modify-write that is
 * correct on SQLite cannot lose an update here.  The price is a
 * serialization failure (40001 -> DAGI_EAGAIN) where SQLite would have made
 * the writer wait: write transactions must be retried, on both engines. */
#include "store/db.h"

#include "core/mem.h"
#include "store/db_internal.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STMT_CACHE_MAX 64
#define BYTEAOID 17 /* catalog/pg_type_d.h, which libpq-dev does not ship */
/* The migration lock: "dagimigr" read as a big-endian int64.  A constant
 * in the SQL text, not a parameter. */
#define MIGRATE_LOCK_KEY "7233173838382180210"

struct pg_stmt {
    struct dagi_lru_link lru; /* in pg_conn.lru, most recent first */
    char *sql;
    char *sig; /* one char per parameter: 'b' blob, '.' other */
    char name[32];
};

struct pg_db;

struct pg_conn {
    struct dagi_db_conn base;
    struct pg_db *owner;
    unsigned index;
    PGconn *pg;
    struct dagi_lru lru; /* of pg_stmt */
    size_t cached;
    unsigned long next_name;
    bool locked;
};

struct pg_db {
    struct dagi_db base;
    char *url;
    unsigned busy_ms;
    struct dagi_db_slots slots;
    struct pg_conn *conns;
};

struct pg_rows {
    struct dagi_db_rows base;
    PGresult *res;
    int row; /* current row, -1 before the first */
    int nrows, ncols;
    unsigned char **decoded; /* bytea cells of the current row, by column */
    size_t *decoded_len;
};

static const struct dagi_db_rows_ops pg_rows_ops;

/* NOTICEs (CREATE TABLE IF NOT EXISTS ... skipping) would go to stderr. */
static void on_notice(void *arg, const char *message)
{
    (void)arg, (void)message;
}

/* Maps a failed result (or none: libpq returns NULL when out of memory or
 * when the connection is gone) to a dagi_err with the server's message. */
static int fail_result(struct pg_conn *c, const PGresult *res, struct dagi_error *err,
                       const char *what)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    int code = dagi_db_code_from_sqlstate(state);
    if (PQstatus(c->pg) != CONNECTION_OK)
        code = DAGI_EUNAVAIL;
    return dagi_db_fail(err, code, what, msg ? msg : PQerrorMessage(c->pg));
}

static bool result_ok(const PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    return res && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY);
}

/* Runs a fixed command (no parameters, no cache). */
static int simple(struct pg_conn *c, const char *sql, struct dagi_error *err)
{
    PGresult *res = PQexec(c->pg, sql);
    int rc = result_ok(res) ? DAGI_OK : fail_result(c, res, err, NULL);
    PQclear(res);
    return rc;
}

/* --- the statement cache --- */

/* The statement a cache link belongs to; NULL past either end. */
static struct pg_stmt *stmt_of(struct dagi_lru_link *l)
{
    return l ? container_of(l, struct pg_stmt, lru) : NULL;
}

/* Forgets a statement; with `deallocate` also on the server (not when the
 * session is gone, which took its statements with it). */
static void cache_drop(struct pg_conn *c, struct pg_stmt *s, bool deallocate)
{
    if (deallocate) {
        char sql[64];
        snprintf(sql, sizeof(sql), "DEALLOCATE %s", s->name);
        PQclear(PQexec(c->pg, sql));
    }
    dagi_lru_unlink(&c->lru, &s->lru);
    c->cached--;
    free(s->sql);
    free(s->sig);
    free(s);
}

static void cache_clear(struct pg_conn *c)
{
    while (c->lru.head)
        cache_drop(c, stmt_of(c->lru.head), false);
}

/* Finds or prepares the statement; *out NULL means "run it unnamed"
 * (inside a failed transaction, where PREPARE would only fail too). */
static int stmt_get(struct pg_conn *c, const char *sql, const char *sig, const Oid *types, int n,
                    struct pg_stmt **out, struct dagi_error *err)
{
    struct pg_stmt *s;
    for (s = stmt_of(c->lru.head); s; s = stmt_of(s->lru.next)) {
        if (strcmp(s->sql, sql) == 0 && strcmp(s->sig, sig) == 0) {
            dagi_lru_unlink(&c->lru, &s->lru);
            dagi_lru_push_front(&c->lru, &s->lru);
            *out = s;
            return DAGI_OK;
        }
    }
    *out = NULL;
    if (PQtransactionStatus(c->pg) == PQTRANS_INERROR)
        return DAGI_OK;
    while (c->cached >= STMT_CACHE_MAX)
        cache_drop(c, stmt_of(c->lru.tail), true);
    s = dagi_xcalloc(1, sizeof(*s));
    snprintf(s->name, sizeof(s->name), "dagi_s%lu", c->next_name++);
    PGresult *res = PQprepare(c->pg, s->name, sql, n, types);
    int rc = result_ok(res) ? DAGI_OK : fail_result(c, res, err, NULL);
    PQclear(res);
    if (rc < 0) {
        free(s);
        return rc;
    }
    s->sql = dagi_xstrdup(sql);
    s->sig = dagi_xstrdup(sig);
    dagi_lru_push_front(&c->lru, &s->lru);
    c->cached++;
    *out = s;
    return DAGI_OK;
}

/* "cached plan must not change result type": a prepared SELECT * outlived
 * an ALTER TABLE.  The statement has to be prepared again. */
static bool stale_plan(const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    return state && strcmp(state, "0A000") == 0 && msg && strstr(msg, "cached plan");
}

/* --- running a statement --- */

struct params {
    const char **values;
    int *lengths, *formats;
    Oid *types;
    char *sig;
    char **owned; /* text copies, freed after the call */
    int n;
};

static void params_release(struct params *p)
{
    for (int i = 0; i < p->n; i++)
        free(p->owned[i]);
    free(p->values);
    free(p->lengths);
    free(p->formats);
    free(p->types);
    free(p->sig);
    free(p->owned);
}

/* Text values must be NUL-terminated for libpq (it ignores lengths of text
 * parameters), so each is copied. */
static int params_init(struct params *p, const struct dagi_db_value *v, size_t n,
                       struct dagi_error *err)
{
    *p = (struct params){0};
    if (n > 65535)
        return dagi_error_set(err, DAGI_EINVAL, "%zu parameters: at most 65535", n);
    size_t slots = n ? n : 1;
    p->n = (int)n;
    p->values = dagi_xcalloc(slots, sizeof(*p->values));
    p->lengths = dagi_xcalloc(slots, sizeof(*p->lengths));
    p->formats = dagi_xcalloc(slots, sizeof(*p->formats));
    p->types = dagi_xcalloc(slots, sizeof(*p->types));
    p->owned = dagi_xcalloc(slots, sizeof(*p->owned));
    p->sig = dagi_xcalloc(n + 1, 1);
    for (size_t i = 0; i < n; i++) {
        p->sig[i] = '.';
        switch (v[i].type) {
        case DAGI_DB_NULL:
            break;
        case DAGI_DB_INT:
            p->owned[i] = dagi_xasprintf("%" PRId64, v[i].v.i);
            break;
        case DAGI_DB_DOUBLE:
            if (isnan(v[i].v.d))
                p->owned[i] = dagi_xstrdup("NaN");
            else if (isinf(v[i].v.d))
                p->owned[i] = dagi_xstrdup(v[i].v.d > 0 ? "Infinity" : "-Infinity");
            else
                p->owned[i] = dagi_xasprintf("%.17g", v[i].v.d);
            break;
        case DAGI_DB_TEXT:
            if (v[i].v.s.len && memchr(v[i].v.s.ptr, '\0', v[i].v.s.len))
                return dagi_error_set(err, DAGI_EINVAL, "parameter $%zu: text with a NUL byte",
                                      i + 1);
            p->owned[i] = dagi_xmalloc(v[i].v.s.len + 1);
            if (v[i].v.s.len)
                memcpy(p->owned[i], v[i].v.s.ptr, v[i].v.s.len);
            p->owned[i][v[i].v.s.len] = '\0';
            break;
        case DAGI_DB_BLOB:
            if (v[i].v.s.len > INT32_MAX)
                return dagi_error_set(err, DAGI_ETOOBIG, "parameter $%zu: blob too large", i + 1);
            p->values[i] = v[i].v.s.len ? v[i].v.s.ptr : "";
            p->lengths[i] = (int)v[i].v.s.len;
            p->formats[i] = 1;
            p->types[i] = BYTEAOID;
            p->sig[i] = 'b';
            break;
        default:
            return dagi_error_set(err, DAGI_EINVAL, "parameter $%zu: unknown type", i + 1);
        }
        if (p->owned[i])
            p->values[i] = p->owned[i];
    }
    return DAGI_OK;
}

static int run(struct pg_conn *c, const char *sql, const struct dagi_db_value *values, size_t n,
               PGresult **out, struct dagi_error *err)
{
    struct params p = {0};
    PGresult *res = NULL;
    int rc = params_init(&p, values, n, err);
    if (rc < 0)
        goto out;
    for (int attempt = 0; attempt < 2; attempt++) {
        bool idle = PQtransactionStatus(c->pg) == PQTRANS_IDLE;
        struct pg_stmt *s;
        rc = stmt_get(c, sql, p.sig, p.types, p.n, &s, err);
        if (rc < 0)
            goto out;
        if (s)
            res = PQexecPrepared(c->pg, s->name, p.n, p.values, p.lengths, p.formats, 0);
        else
            res = PQexecParams(c->pg, sql, p.n, p.types, p.values, p.lengths, p.formats, 0);
        if (result_ok(res))
            break;
        /* a stale plan failed before doing anything: outside a transaction
         * it is safe to prepare again and rerun once */
        if (s && res && stale_plan(res)) {
            cache_drop(c, s, PQtransactionStatus(c->pg) != PQTRANS_INERROR);
            if (idle && attempt == 0) {
                PQclear(res);
                res = NULL;
                continue;
            }
        }
        rc = fail_result(c, res, err, NULL);
        goto out;
    }
    *out = res;
    res = NULL;
out:
    PQclear(res);
    params_release(&p);
    return rc;
}

/* --- connections --- */

static int conn_connect(struct pg_db *db, struct pg_conn *c, struct dagi_error *err)
{
    /* keywords before "dbname" are defaults the URL may override */
    const char *keys[] = {"application_name", "connect_timeout", "dbname", NULL};
    const char *vals[] = {"dagi", "10", db->url, NULL};
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    if (!pg)
        return dagi_error_set(err, DAGI_ENOMEM, "PQconnectdbParams");
    if (PQstatus(pg) != CONNECTION_OK) {
        int rc = dagi_db_fail(err, DAGI_EUNAVAIL, "postgres", PQerrorMessage(pg));
        PQfinish(pg);
        return rc;
    }
    PQsetNoticeProcessor(pg, on_notice, NULL);
    c->pg = pg;
    c->locked = false;
    return DAGI_OK;
}

/* An idle connection has nothing to say: the pool's connections do not
 * LISTEN, and the server speaks unasked only to say goodbye (an error, then
 * EOF: shutdown, pg_terminate_backend) or, rarely, with a notice.  So a
 * readable socket is treated as broken; a spurious reconnect is cheap, a
 * statement sent into a dying session is not.  (PQconsumeInput would not
 * do: it buffers the goodbye and leaves the status CONNECTION_OK.) */
static bool conn_healthy(struct pg_conn *c)
{
    if (PQstatus(c->pg) != CONNECTION_OK)
        return false;
    struct pollfd pfd = {.fd = PQsocket(c->pg), .events = POLLIN};
    return pfd.fd >= 0 && poll(&pfd, 1, 0) == 0;
}

static void conn_drop(struct pg_conn *c)
{
    cache_clear(c);
    PQfinish(c->pg);
    c->pg = NULL;
    c->locked = false;
}

static void pg_close(struct dagi_db *base)
{
    struct pg_db *db = (struct pg_db *)base;
    for (unsigned i = 0; i < db->slots.n; i++)
        if (db->conns[i].pg)
            conn_drop(&db->conns[i]);
    dagi_db_slots_release(&db->slots);
    free(db->conns);
    free(db->url);
    free(db);
}

/* Connects nothing: the URL is only parsed, so a node can start while its
 * database is still coming up; acquire() reports DAGI_EUNAVAIL meanwhile. */
static int pg_open(const char *url, const struct dagi_db_opts *opts, struct dagi_db **out,
                   struct dagi_error *err)
{
    char *msg = NULL;
    PQconninfoOption *info = PQconninfoParse(url, &msg);
    if (!info) {
        int rc = dagi_db_fail(err, DAGI_EINVAL, "database URL", msg ? msg : "out of memory");
        PQfreemem(msg);
        return rc;
    }
    PQconninfoFree(info);
    struct pg_db *db = dagi_xcalloc(1, sizeof(*db));
    db->base.ops = &dagi_db_postgres_ops;
    db->url = dagi_xstrdup(url);
    db->busy_ms = opts->busy_timeout_ms ? opts->busy_timeout_ms : DAGI_DB_DEFAULT_BUSY_MS;
    unsigned n = opts->pool_size ? opts->pool_size : DAGI_DB_DEFAULT_POOL;
    dagi_db_slots_init(&db->slots, n);
    db->conns = dagi_xcalloc(n, sizeof(*db->conns));
    for (unsigned i = 0; i < n; i++)
        db->conns[i] = (struct pg_conn){.base.db = &db->base, .owner = db, .index = i};
    *out = &db->base;
    return DAGI_OK;
}

static int pg_acquire(struct dagi_db *base, struct dagi_db_conn **out, struct dagi_error *err)
{
    struct pg_db *db = (struct pg_db *)base;
    unsigned i;
    if (dagi_db_slots_take(&db->slots, db->busy_ms, &i) < 0)
        return dagi_error_set(err, DAGI_EAGAIN, "all %u database connections are in use",
                              db->slots.n);
    struct pg_conn *c = &db->conns[i];
    if (c->pg && !conn_healthy(c))
        conn_drop(c);
    if (!c->pg) {
        int rc = conn_connect(db, c, err);
        if (rc < 0) {
            dagi_db_slots_give(&db->slots, i);
            return rc;
        }
    }
    *out = &c->base;
    return DAGI_OK;
}

static int pg_rollback(struct dagi_db_conn *base)
{
    struct pg_conn *c = (struct pg_conn *)base;
    PGTransactionStatusType st = PQtransactionStatus(c->pg);
    if (st != PQTRANS_INTRANS && st != PQTRANS_INERROR)
        return DAGI_OK;
    return simple(c, "ROLLBACK", NULL);
}

static void pg_unlock(struct dagi_db_conn *base);

static void pg_release(struct dagi_db_conn *base)
{
    struct pg_conn *c = (struct pg_conn *)base;
    if (PQstatus(c->pg) == CONNECTION_OK) {
        pg_rollback(base); /* a transaction left open would hold its locks */
        pg_unlock(base);
    }
    dagi_db_slots_give(&c->owner->slots, c->index);
}

static int pg_begin(struct dagi_db_conn *base, bool write, struct dagi_error *err)
{
    struct pg_conn *c = (struct pg_conn *)base;
    if (PQtransactionStatus(c->pg) != PQTRANS_IDLE && PQstatus(c->pg) == CONNECTION_OK)
        return dagi_error_set(err, DAGI_EINVAL, "a transaction is already open");
    return simple(
        c, write ? "BEGIN ISOLATION LEVEL SERIALIZABLE" : "BEGIN ISOLATION LEVEL REPEATABLE READ",
        err);
}

/* COMMIT of a failed transaction "succeeds" as a ROLLBACK; that is turned
 * into an error here.  Either way the transaction is over afterwards. */
static int pg_commit(struct dagi_db_conn *base, struct dagi_error *err)
{
    struct pg_conn *c = (struct pg_conn *)base;
    switch (PQtransactionStatus(c->pg)) {
    case PQTRANS_INTRANS:
        break;
    case PQTRANS_INERROR:
        pg_rollback(base);
        return dagi_error_set(err, DAGI_EIO,
                              "COMMIT: a statement of the transaction failed; rolled back");
    case PQTRANS_IDLE:
        return dagi_error_set(err, DAGI_EINVAL, "COMMIT: no transaction is open");
    default:
        return dagi_db_fail(err, DAGI_EUNAVAIL, "COMMIT", PQerrorMessage(c->pg));
    }
    int rc = simple(c, "COMMIT", err);
    pg_rollback(base);
    return rc;
}

static int pg_exec(struct dagi_db_conn *base, const char *sql, const struct dagi_db_value *params,
                   size_t n, int64_t *affected, struct dagi_error *err)
{
    struct pg_conn *c = (struct pg_conn *)base;
    PGresult *res;
    int rc = run(c, sql, params, n, &res, err);
    if (rc < 0)
        return rc;
    if (affected)
        *affected = strtoll(PQcmdTuples(res), NULL, 10); /* "" when none: 0 */
    PQclear(res);
    return DAGI_OK;
}

static int pg_query(struct dagi_db_conn *base, const char *sql, const struct dagi_db_value *params,
                    size_t n, struct dagi_db_rows **out, struct dagi_error *err)
{
    struct pg_conn *c = (struct pg_conn *)base;
    PGresult *res;
    int rc = run(c, sql, params, n, &res, err);
    if (rc < 0)
        return rc;
    struct pg_rows *r = dagi_xcalloc(1, sizeof(*r));
    *r = (struct pg_rows){.base.ops = &pg_rows_ops,
                          .res = res,
                          .row = -1,
                          .nrows = PQntuples(res),
                          .ncols = PQnfields(res)};
    if (r->ncols) {
        r->decoded = dagi_xcalloc((size_t)r->ncols, sizeof(*r->decoded));
        r->decoded_len = dagi_xcalloc((size_t)r->ncols, sizeof(*r->decoded_len));
    }
    *out = &r->base;
    return DAGI_OK;
}

static int pg_exec_script(struct dagi_db_conn *base, const char *sql, struct dagi_error *err)
{
    return simple((struct pg_conn *)base, sql, err);
}

/* A session-level advisory lock: it outlives the per-migration
 * transactions, and the server drops it if the session dies. */
static int pg_lock(struct dagi_db_conn *base, struct dagi_error *err)
{
    struct pg_conn *c = (struct pg_conn *)base;
    if (c->locked)
        return DAGI_OK;
    int rc = simple(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", err);
    if (rc == DAGI_OK)
        c->locked = true;
    return rc;
}

static void pg_unlock(struct dagi_db_conn *base)
{
    struct pg_conn *c = (struct pg_conn *)base;
    if (c->locked) {
        c->locked = false;
        simple(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", NULL);
    }
}

/* --- rows --- */

static void forget_decoded(struct pg_rows *r)
{
    for (int i = 0; i < r->ncols; i++) {
        PQfreemem(r->decoded[i]);
        r->decoded[i] = NULL;
    }
}

static int rows_next(struct dagi_db_rows *base, struct dagi_error *err)
{
    struct pg_rows *r = (struct pg_rows *)base;
    (void)err;
    forget_decoded(r);
    if (r->row < r->nrows)
        r->row++;
    return r->row < r->nrows ? 1 : 0;
}

static size_t rows_columns(struct dagi_db_rows *base)
{
    return (size_t)((struct pg_rows *)base)->ncols;
}

static bool rows_col_null(struct dagi_db_rows *base, size_t col)
{
    struct pg_rows *r = (struct pg_rows *)base;
    if (r->row < 0 || r->row >= r->nrows || col >= (size_t)r->ncols)
        return true;
    return PQgetisnull(r->res, r->row, (int)col);
}

/* Accepts what PostgreSQL prints for numbers and booleans. */
static int64_t rows_col_int(struct dagi_db_rows *base, size_t col)
{
    struct pg_rows *r = (struct pg_rows *)base;
    if (rows_col_null(base, col))
        return 0;
    const char *s = PQgetvalue(r->res, r->row, (int)col);
    if (strcmp(s, "t") == 0)
        return 1;
    if (strcmp(s, "f") == 0)
        return 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end == '.' || *end == 'e' || *end == 'E')
        return (int64_t)strtod(s, NULL);
    return v;
}

static double rows_col_double(struct dagi_db_rows *base, size_t col)
{
    struct pg_rows *r = (struct pg_rows *)base;
    if (rows_col_null(base, col))
        return 0.0;
    return strtod(PQgetvalue(r->res, r->row, (int)col), NULL); /* takes Infinity, NaN */
}

/* bytea cells come back decoded, so text and blob read the same bytes as
 * on SQLite. */
static const char *cell(struct pg_rows *r, size_t col, size_t *len)
{
    const char *p = NULL;
    size_t n = 0;
    if (rows_col_null(&r->base, col))
        goto out;
    if (PQftype(r->res, (int)col) == BYTEAOID) {
        if (!r->decoded[col]) {
            const unsigned char *text = (const unsigned char *)PQgetvalue(r->res, r->row, (int)col);
            r->decoded[col] = PQunescapeBytea(text, &r->decoded_len[col]);
            if (!r->decoded[col])
                abort(); /* out of memory: the policy of err.h */
        }
        p = (const char *)r->decoded[col];
        n = r->decoded_len[col];
    } else {
        p = PQgetvalue(r->res, r->row, (int)col);
        n = (size_t)PQgetlength(r->res, r->row, (int)col);
    }
out:
    if (len)
        *len = n;
    return p;
}

static const char *rows_col_text(struct dagi_db_rows *base, size_t col, size_t *len)
{
    return cell((struct pg_rows *)base, col, len);
}

static const void *rows_col_blob(struct dagi_db_rows *base, size_t col, size_t *len)
{
    return cell((struct pg_rows *)base, col, len);
}

static void rows_free(struct dagi_db_rows *base)
{
    struct pg_rows *r = (struct pg_rows *)base;
    if (r->decoded)
        forget_decoded(r);
    free(r->decoded);
    free(r->decoded_len);
    PQclear(r->res);
    free(r);
}

static const struct dagi_db_rows_ops pg_rows_ops = {
    .next = rows_next,
    .columns = rows_columns,
    .col_null = rows_col_null,
    .col_int = rows_col_int,
    .col_double = rows_col_double,
    .col_text = rows_col_text,
    .col_blob = rows_col_blob,
    .free = rows_free,
};

const struct dagi_db_ops dagi_db_postgres_ops = {
    .name = "postgres",
    .dialect = DAGI_DB_POSTGRES,
    .open = pg_open,
    .close = pg_close,
    .acquire = pg_acquire,
    .release = pg_release,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .exec = pg_exec,
    .query = pg_query,
    .exec_script = pg_exec_script,
    .lock = pg_lock,
    .unlock = pg_unlock,
};
