/* The relational store's conformance suite (STYLE.md: one suite per
 * interface).  Every test in `conformance` runs twice: once against SQLite
 * (a fresh temp file per test) and once against PostgreSQL (one throwaway
 * server for the whole program, a fresh schema per test).  The PostgreSQL
 * tests are skipped only when PostgreSQL 15 is not installed.  A few tests
 * of one engine's own machinery follow each group.
 *
 * `test_store --migrate-child URL` is the child of the two-process
 * migration test: a fresh process (fork + exec), as two nodes would be. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/pool.h"
#include "store/db.h"
#include "store/migrate.h"

#include "pg_fixture.h"

static struct pg_fixture pg;
static bool pg_up;
static int schema_seq;

struct env {
    enum dagi_db_dialect dialect;
    char url[512];
    char dir[256];   /* SQLite: temp dir */
    char schema[32]; /* PostgreSQL: this test's schema */
    struct dagi_db *db;
};

#define NEED_DB(e)                                                                                 \
    do {                                                                                           \
        if (!(e)->db)                                                                              \
            skip();                                                                                \
    } while (0)

/* --- helpers --- */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static struct dagi_db_conn *acquire(struct env *e)
{
    struct dagi_db_conn *conn = NULL;
    struct dagi_error err = {0};
    int rc = dagi_db_acquire(e->db, &conn, &err);
    if (rc < 0)
        fail_msg("acquire: %s", err.message);
    return conn;
}

static void exec_ok(struct dagi_db_conn *conn, const char *sql, const struct dagi_db_value *p,
                    size_t n)
{
    struct dagi_error err = {0};
    int rc = dagi_db_exec(conn, sql, p, n, NULL, &err);
    if (rc < 0)
        fail_msg("%s: %s (%d)", sql, err.message, rc);
}

static void script_ok(struct dagi_db_conn *conn, const char *sql)
{
    struct dagi_error err = {0};
    int rc = dagi_db_exec_script(conn, sql, &err);
    if (rc < 0)
        fail_msg("%s: %s (%d)", sql, err.message, rc);
}

/* The first column of the only row. */
static int64_t query_int(struct dagi_db_conn *conn, const char *sql, const struct dagi_db_value *p,
                         size_t n)
{
    struct dagi_db_rows *rows = NULL;
    struct dagi_error err = {0};
    int rc = dagi_db_query(conn, sql, p, n, &rows, &err);
    if (rc < 0)
        fail_msg("%s: %s (%d)", sql, err.message, rc);
    rc = dagi_db_rows_next(rows, &err);
    if (rc != 1)
        fail_msg("%s: no row (%d %s)", sql, rc, err.message);
    int64_t v = dagi_db_col_int(rows, 0);
    dagi_db_rows_free(rows);
    return v;
}

static bool table_exists(struct env *e, struct dagi_db_conn *conn, const char *name)
{
    struct dagi_db_value p[] = {dagi_db_text(name)};
    if (e->dialect == DAGI_DB_SQLITE)
        return query_int(conn,
                         "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $1", p,
                         1) > 0;
    return query_int(conn, "SELECT to_regclass($1) IS NOT NULL", p, 1) > 0;
}

/* --- setups --- */

static int open_env(struct env *e)
{
    struct dagi_error err = {0};
    if (dagi_db_open(e->url, NULL, &e->db, &err) < 0) {
        fprintf(stderr, "open %s: %s\n", e->url, err.message);
        return -1;
    }
    return 0;
}

static int setup_sqlite(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    e->dialect = DAGI_DB_SQLITE;
    snprintf(e->dir, sizeof(e->dir), "/tmp/dagi-store-XXXXXX");
    if (!mkdtemp(e->dir))
        return -1;
    snprintf(e->url, sizeof(e->url), "sqlite:%s/test.db", e->dir);
    *state = e;
    return open_env(e);
}

static int teardown_sqlite(void **state)
{
    struct env *e = *state;
    dagi_db_close(e->db);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", e->dir);
    free(e);
    return 0;
}

/* The server starts with the first PostgreSQL test (the SQLite tests do
 * not wait for it) and stops when the program's tests are done. */
static int start_pg_once(void)
{
    static int state; /* 0 not tried, 1 up or not installed, -1 failed */
    if (state == 0) {
        state = 1;
        if (pg_fixture_available()) {
            if (pg_fixture_start(&pg) == 0) {
                pg_up = true;
            } else {
                fprintf(stderr, "could not start PostgreSQL\n");
                pg_fixture_stop(&pg);
                state = -1;
            }
        }
    }
    return state > 0 ? 0 : -1;
}

static int teardown_all(void **state)
{
    (void)state;
    if (pg_up)
        pg_fixture_stop(&pg);
    pg_up = false;
    return 0;
}

static void on_admin_notice(void *arg, const char *message)
{
    (void)arg, (void)message; /* "drop cascades to ..." */
}

static int pg_admin(const char *sql)
{
    PGconn *c = PQconnectdb(pg.conninfo);
    PQsetNoticeProcessor(c, on_admin_notice, NULL);
    PGresult *res = PQexec(c, sql);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc < 0)
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
    PQclear(res);
    PQfinish(c);
    return rc;
}

static int setup_pg(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    e->dialect = DAGI_DB_POSTGRES;
    *state = e;
    if (start_pg_once() < 0)
        return -1;
    if (!pg_up)
        return 0; /* PostgreSQL 15 not installed: the test skips */
    snprintf(e->schema, sizeof(e->schema), "t_%d", ++schema_seq);
    char sql[64];
    snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", e->schema);
    if (pg_admin(sql) < 0)
        return -1;
    /* the schema goes first in search_path: unqualified names land in it */
    snprintf(e->url, sizeof(e->url), "%s?options=-csearch_path%%3D%s", pg.url, e->schema);
    return open_env(e);
}

static int teardown_pg(void **state)
{
    struct env *e = *state;
    dagi_db_close(e->db);
    if (e->schema[0]) {
        char sql[64];
        snprintf(sql, sizeof(sql), "DROP SCHEMA %s CASCADE", e->schema);
        pg_admin(sql);
    }
    free(e);
    return 0;
}

/* --- conformance --- */

static const char cyrillic[] = "Привет, \"мир\" - it's O'Brien; \\ back\\slash 🙂";
static const unsigned char bytes[] = {0x00, 0x01, 0xff, 0x00, 'a', 0x00, '\\', '\''};

static void test_types_round_trip(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_db_conn *conn = acquire(e);
    script_ok(conn, "CREATE TABLE types_t (id BIGINT PRIMARY KEY, i BIGINT, d DOUBLE PRECISION, "
                    "s TEXT, b BYTEA)");
    const char *ins = "INSERT INTO types_t (id, i, d, s, b) VALUES ($1, $2, $3, $4, $5)";
    struct dagi_db_value r1[] = {dagi_db_int(1),
                                 dagi_db_int(INT64_MAX),
                                 {.type = DAGI_DB_DOUBLE, .v.d = 3.141592653589793},
                                 dagi_db_text(cyrillic),
                                 dagi_db_blob(bytes, sizeof(bytes))};
    struct dagi_db_value r2[] = {dagi_db_int(2),
                                 dagi_db_int(INT64_MIN),
                                 {.type = DAGI_DB_DOUBLE, .v.d = -1.5e300},
                                 dagi_db_textn("", 0),
                                 dagi_db_blob(NULL, 0)};
    struct dagi_db_value r3[] = {dagi_db_int(3), dagi_db_null(), dagi_db_null(), dagi_db_null(),
                                 dagi_db_null()};
    exec_ok(conn, ins, r1, 5);
    exec_ok(conn, ins, r2, 5);
    exec_ok(conn, ins, r3, 5);

    struct dagi_db_rows *rows = NULL;
    struct dagi_error err = {0};
    assert_int_equal(
        dagi_db_query(conn, "SELECT i, d, s, b FROM types_t ORDER BY id", NULL, 0, &rows, &err), 0);
    assert_int_equal(dagi_db_rows_columns(rows), 4);
    size_t len = 0;

    assert_int_equal(dagi_db_rows_next(rows, &err), 1);
    assert_true(dagi_db_col_int(rows, 0) == INT64_MAX);
    assert_true(dagi_db_col_double(rows, 1) == 3.141592653589793);
    const char *s = dagi_db_col_text(rows, 2, &len);
    assert_int_equal(len, strlen(cyrillic));
    assert_memory_equal(s, cyrillic, len);
    const void *b = dagi_db_col_blob(rows, 3, &len);
    assert_int_equal(len, sizeof(bytes));
    assert_memory_equal(b, bytes, len);
    for (size_t c = 0; c < 4; c++)
        assert_false(dagi_db_col_null(rows, c));

    assert_int_equal(dagi_db_rows_next(rows, &err), 1);
    assert_true(dagi_db_col_int(rows, 0) == INT64_MIN);
    assert_true(dagi_db_col_double(rows, 1) == -1.5e300);
    s = dagi_db_col_text(rows, 2, &len);
    assert_non_null(s); /* empty, not NULL */
    assert_int_equal(len, 0);
    b = dagi_db_col_blob(rows, 3, &len);
    assert_non_null(b);
    assert_int_equal(len, 0);

    assert_int_equal(dagi_db_rows_next(rows, &err), 1);
    for (size_t c = 0; c < 4; c++)
        assert_true(dagi_db_col_null(rows, c));
    assert_null(dagi_db_col_text(rows, 2, &len));
    assert_null(dagi_db_col_blob(rows, 3, &len));
    assert_int_equal(dagi_db_rows_next(rows, &err), 0);
    dagi_db_rows_free(rows);

    /* parameters echoed without a table: the blob keeps its NULs */
    struct dagi_db_value echo[] = {dagi_db_blob(bytes, sizeof(bytes)), dagi_db_text(cyrillic)};
    assert_int_equal(dagi_db_query(conn, "SELECT $1, $2", echo, 2, &rows, &err), 0);
    assert_int_equal(dagi_db_rows_next(rows, &err), 1);
    b = dagi_db_col_blob(rows, 0, &len);
    assert_int_equal(len, sizeof(bytes));
    assert_memory_equal(b, bytes, len);
    s = dagi_db_col_text(rows, 1, &len);
    assert_int_equal(len, strlen(cyrillic));
    assert_memory_equal(s, cyrillic, len);
    dagi_db_rows_free(rows);
    dagi_db_release(conn);
}

static void test_placeholders(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_db_conn *conn = acquire(e);
    script_ok(conn, "CREATE TABLE ph (a BIGINT, b BIGINT, c BIGINT, t TEXT)");
    /* out of order and repeated */
    struct dagi_db_value p[] = {dagi_db_int(1), dagi_db_int(2), dagi_db_text("x")};
    exec_ok(conn, "INSERT INTO ph (a, b, c, t) VALUES ($2, $1, $2, $3)", p, 3);
    assert_int_equal(query_int(conn, "SELECT a * 100 + b * 10 + c FROM ph", NULL, 0), 212);
    struct dagi_db_value q[] = {dagi_db_int(2), dagi_db_text("x")};
    assert_int_equal(
        query_int(conn, "SELECT count(*) FROM ph WHERE t = $2 AND a = $1 AND c = $1 AND b < $1", q,
                  2),
        1);
    /* a parameter missing, or one too many: refused (no silent NULL) */
    struct dagi_error err = {0};
    assert_true(dagi_db_exec(conn, "INSERT INTO ph (a, b) VALUES ($1, $2)", p, 1, NULL, &err) < 0);
    dagi_db_release(conn);
}

static void test_affected_counts(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_db_conn *conn = acquire(e);
    struct dagi_error err = {0};
    int64_t n = -1;
    script_ok(conn, "CREATE TABLE aff (id BIGINT PRIMARY KEY, v BIGINT)");
    assert_int_equal(dagi_db_exec(conn, "INSERT INTO aff (id, v) VALUES (1, 1), (2, 1), (3, 2)",
                                  NULL, 0, &n, &err),
                     0);
    assert_int_equal(n, 3);
    struct dagi_db_value p[] = {dagi_db_int(1)};
    assert_int_equal(dagi_db_exec(conn, "UPDATE aff SET v = v + 10 WHERE v = $1", p, 1, &n, &err),
                     0);
    assert_int_equal(n, 2);
    struct dagi_db_value none[] = {dagi_db_int(99)};
    assert_int_equal(dagi_db_exec(conn, "UPDATE aff SET v = 0 WHERE id = $1", none, 1, &n, &err),
                     0);
    assert_int_equal(n, 0);
    assert_int_equal(dagi_db_exec(conn, "DELETE FROM aff", NULL, 0, &n, &err), 0);
    assert_int_equal(n, 3);
    dagi_db_release(conn);
}

static void test_unique_violation(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_db_conn *conn = acquire(e);
    struct dagi_error err = {0};
    script_ok(conn, "CREATE TABLE uq (id BIGINT PRIMARY KEY, name TEXT NOT NULL UNIQUE)");
    struct dagi_db_value a[] = {dagi_db_int(1), dagi_db_text("a")};
    struct dagi_db_value same_id[] = {dagi_db_int(1), dagi_db_text("b")};
    struct dagi_db_value same_name[] = {dagi_db_int(2), dagi_db_text("a")};
    const char *ins = "INSERT INTO uq (id, name) VALUES ($1, $2)";
    exec_ok(conn, ins, a, 2);
    assert_int_equal(dagi_db_exec(conn, ins, same_id, 2, NULL, &err), DAGI_EEXIST);
    assert_int_equal(err.code, DAGI_EEXIST);
    assert_int_equal(dagi_db_exec(conn, ins, same_name, 2, NULL, &err), DAGI_EEXIST);
    /* the connection is still good, and so is the cached statement */
    struct dagi_db_value b[] = {dagi_db_int(2), dagi_db_text("b")};
    exec_ok(conn, ins, b, 2);
    assert_int_equal(query_int(conn, "SELECT count(*) FROM uq", NULL, 0), 2);
    dagi_db_release(conn);
}

static void test_transactions(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_db_conn *a = acquire(e), *b = acquire(e);
    struct dagi_error err = {0};
    const char *count = "SELECT count(*) FROM tx";
    script_ok(a, "CREATE TABLE tx (id BIGINT PRIMARY KEY)");

    assert_int_equal(dagi_db_begin(a, true, &err), 0);
    exec_ok(a, "INSERT INTO tx (id) VALUES (1)", NULL, 0);
    assert_int_equal(query_int(a, count, NULL, 0), 1); /* sees its own write */
    assert_int_equal(query_int(b, count, NULL, 0), 0); /* others do not, and are not blocked */
    assert_int_equal(dagi_db_commit(a, &err), 0);
    assert_int_equal(query_int(b, count, NULL, 0), 1);

    assert_int_equal(dagi_db_begin(a, false, &err), 0);
    exec_ok(a, "INSERT INTO tx (id) VALUES (2)", NULL, 0);
    assert_int_equal(dagi_db_rollback(a), 0);
    assert_int_equal(query_int(b, count, NULL, 0), 1);
    assert_int_equal(query_int(a, count, NULL, 0), 1);

    /* commit without a transaction, and a nested begin: errors */
    assert_true(dagi_db_commit(a, &err) < 0);
    assert_int_equal(dagi_db_begin(a, true, &err), 0);
    assert_true(dagi_db_begin(a, true, &err) < 0);
    assert_int_equal(dagi_db_rollback(a), 0);

    /* a transaction left open is rolled back on release, and frees the writer */
    assert_int_equal(dagi_db_begin(a, true, &err), 0);
    exec_ok(a, "INSERT INTO tx (id) VALUES (3)", NULL, 0);
    dagi_db_release(a);
    assert_int_equal(dagi_db_begin(b, true, &err), 0);
    assert_int_equal(query_int(b, count, NULL, 0), 1);
    exec_ok(b, "INSERT INTO tx (id) VALUES (3)", NULL, 0);
    assert_int_equal(dagi_db_commit(b, &err), 0);
    dagi_db_release(b);
}

struct counter_job {
    struct env *e;
    int done, retries, rc;
    char message[512];
};

static int is_retry(int rc)
{
    return rc == DAGI_EAGAIN;
}

/* Read-modify-write in a write transaction: lost updates would show. */
static void *counter_thread(void *arg)
{
    struct counter_job *j = arg;
    struct dagi_db_conn *conn = NULL;
    struct dagi_error err = {0};
    j->rc = dagi_db_acquire(j->e->db, &conn, &err);
    while (j->rc == 0 && j->done < 500) {
        struct dagi_db_rows *rows = NULL;
        int64_t n = 0;
        int rc = dagi_db_begin(conn, true, &err);
        if (rc == 0)
            rc = dagi_db_query(conn, "SELECT n FROM counter WHERE id = 1", NULL, 0, &rows, &err);
        if (rc == 0) {
            rc = dagi_db_rows_next(rows, &err);
            rc = rc == 1 ? 0 : rc < 0 ? rc : DAGI_EINTERNAL;
            n = dagi_db_col_int(rows, 0);
            dagi_db_rows_free(rows);
        }
        struct dagi_db_value p[] = {dagi_db_int(n + 1)};
        if (rc == 0)
            rc = dagi_db_exec(conn, "UPDATE counter SET n = $1 WHERE id = 1", p, 1, NULL, &err);
        if (rc == 0)
            rc = dagi_db_commit(conn, &err);
        if (rc == 0) {
            j->done++;
            continue;
        }
        dagi_db_rollback(conn);
        if (!is_retry(rc)) {
            j->rc = rc;
            break;
        }
        j->retries++;
    }
    if (j->rc < 0)
        snprintf(j->message, sizeof(j->message), "%s", err.message);
    dagi_db_release(conn);
    return NULL;
}

static void test_concurrent_writers(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_db_conn *conn = acquire(e);
    script_ok(conn, "CREATE TABLE counter (id BIGINT PRIMARY KEY, n BIGINT NOT NULL);"
                    "INSERT INTO counter (id, n) VALUES (1, 0)");
    dagi_db_release(conn);
    struct counter_job jobs[2] = {{.e = e}, {.e = e}};
    pthread_t threads[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&threads[i], NULL, counter_thread, &jobs[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], NULL);
    for (int i = 0; i < 2; i++) {
        if (jobs[i].rc < 0)
            fail_msg("writer %d: %s (%d)", i, jobs[i].message, jobs[i].rc);
        assert_int_equal(jobs[i].done, 500);
    }
    conn = acquire(e);
    assert_int_equal(query_int(conn, "SELECT n FROM counter WHERE id = 1", NULL, 0), 1000);
    dagi_db_release(conn);
}

static void test_rows_iteration(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_db_conn *conn = acquire(e);
    struct dagi_error err = {0};
    script_ok(conn, "CREATE TABLE it (id BIGINT PRIMARY KEY, name TEXT, x DOUBLE PRECISION)");
    for (int i = 9; i >= 0; i--) {
        char name[16];
        snprintf(name, sizeof(name), "row%d", i);
        struct dagi_db_value p[] = {
            dagi_db_int(i), dagi_db_text(name), {.type = DAGI_DB_DOUBLE, .v.d = i / 4.0}};
        exec_ok(conn, "INSERT INTO it (id, name, x) VALUES ($1, $2, $3)", p, 3);
    }
    struct dagi_db_rows *rows = NULL;
    struct dagi_db_value lo[] = {dagi_db_int(0)};
    assert_int_equal(dagi_db_query(conn, "SELECT id, name, x FROM it WHERE id >= $1 ORDER BY id",
                                   lo, 1, &rows, &err),
                     0);
    assert_int_equal(dagi_db_rows_columns(rows), 3);
    int seen = 0;
    int rc;
    while ((rc = dagi_db_rows_next(rows, &err)) == 1) {
        char name[16];
        snprintf(name, sizeof(name), "row%d", seen);
        assert_int_equal(dagi_db_col_int(rows, 0), seen);
        assert_string_equal(dagi_db_col_text(rows, 1, NULL), name);
        assert_true(dagi_db_col_double(rows, 2) == seen / 4.0);
        seen++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(seen, 10);
    assert_int_equal(dagi_db_rows_next(rows, &err), 0); /* stays at the end */
    dagi_db_rows_free(rows);

    /* an empty result still knows its columns */
    struct dagi_db_value hi[] = {dagi_db_int(100)};
    assert_int_equal(
        dagi_db_query(conn, "SELECT id, name FROM it WHERE id >= $1", hi, 1, &rows, &err), 0);
    assert_int_equal(dagi_db_rows_columns(rows), 2);
    assert_int_equal(dagi_db_rows_next(rows, &err), 0);
    dagi_db_rows_free(rows);
    dagi_db_release(conn);
}

static void test_bad_sql(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_db_conn *conn = acquire(e);
    struct dagi_error err = {0};
    struct dagi_db_rows *rows = NULL;
    assert_int_equal(dagi_db_exec(conn, "SELEC 1", NULL, 0, NULL, &err), DAGI_EIO);
    assert_non_null(strstr(err.message, "syntax error"));
    memset(&err, 0, sizeof(err));
    assert_int_equal(dagi_db_query(conn, "SELECT x FROM missing_table", NULL, 0, &rows, &err),
                     DAGI_EIO);
    assert_non_null(strstr(err.message, "missing_table"));
    assert_int_equal(dagi_db_exec_script(conn, "CREATE TABLE ok1 (x BIGINT); BROKEN", &err),
                     DAGI_EIO);
    assert_non_null(strstr(err.message, "syntax error"));
    /* a failed statement inside a transaction: commit reports it */
    assert_int_equal(dagi_db_begin(conn, true, &err), 0);
    script_ok(conn, "CREATE TABLE ok2 (x BIGINT)");
    assert_int_equal(dagi_db_exec(conn, "INSERT INTO ok2 (nope) VALUES (1)", NULL, 0, NULL, &err),
                     DAGI_EIO);
    dagi_db_rollback(conn);
    assert_false(table_exists(e, conn, "ok2"));
    /* and the connection is usable afterwards */
    assert_int_equal(query_int(conn, "SELECT 41 + 1", NULL, 0), 42);
    dagi_db_release(conn);
}

static int64_t cached_statements(struct env *e, struct dagi_db_conn *conn, const char *like)
{
    struct dagi_db_value p[] = {dagi_db_text(like)};
    if (e->dialect == DAGI_DB_SQLITE)
        return query_int(conn, "SELECT count(*) FROM sqlite_stmt WHERE sql LIKE $1", p, 1);
    return query_int(conn, "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE $1", p,
                     1);
}

static void test_statement_cache(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_db_conn *conn = acquire(e);
    script_ok(conn, "CREATE TABLE cache_t (id BIGINT PRIMARY KEY, v TEXT)");
    for (int i = 0; i < 2000; i++) {
        struct dagi_db_value p[] = {dagi_db_int(i), dagi_db_text("v")};
        exec_ok(conn, "INSERT INTO cache_t (id, v) VALUES ($1, $2)", p, 2);
    }
    assert_int_equal(query_int(conn, "SELECT count(*) FROM cache_t", NULL, 0), 2000);
    /* prepared once on this connection */
    assert_int_equal(cached_statements(e, conn, "INSERT INTO cache_t%"), 1);

    /* many distinct statements: the cache stays bounded and evicts the
     * coldest, and every result is still right */
    for (int k = 0; k < 150; k++) {
        char sql[64];
        snprintf(sql, sizeof(sql), "SELECT $1 + %d", k);
        struct dagi_db_value p[] = {dagi_db_int(1000)};
        assert_int_equal(query_int(conn, sql, p, 1), 1000 + k);
    }
    assert_int_equal(cached_statements(e, conn, "INSERT INTO cache_t%"), 0);
    assert_in_range(cached_statements(e, conn, "%"), 1, 65);
    /* the same SQL while its statement is still held by open rows */
    struct dagi_db_rows *outer = NULL, *inner = NULL;
    struct dagi_error err = {0};
    const char *sel = "SELECT id FROM cache_t WHERE id < $1 ORDER BY id";
    struct dagi_db_value p3[] = {dagi_db_int(3)};
    assert_int_equal(dagi_db_query(conn, sel, p3, 1, &outer, &err), 0);
    assert_int_equal(dagi_db_rows_next(outer, &err), 1);
    assert_int_equal(dagi_db_query(conn, sel, p3, 1, &inner, &err), 0);
    assert_int_equal(dagi_db_rows_next(inner, &err), 1);
    assert_int_equal(dagi_db_rows_next(inner, &err), 1);
    assert_int_equal(dagi_db_col_int(inner, 0), 1);
    assert_int_equal(dagi_db_col_int(outer, 0), 0);
    dagi_db_rows_free(inner);
    assert_int_equal(dagi_db_rows_next(outer, &err), 1);
    assert_int_equal(dagi_db_col_int(outer, 0), 1);
    dagi_db_rows_free(outer);
    dagi_db_release(conn);
}

/* dagi_db_run: fn on a pool thread, done on the loop thread */

struct run_state {
    pthread_t loop, worker;
    atomic_int done;
    int rc;
    bool done_on_loop;
    char message[512];
    sem_t *gate;
    atomic_int *started;
};

static int run_insert(struct dagi_db_conn *conn, void *ud, struct dagi_error *err)
{
    struct run_state *s = ud;
    s->worker = pthread_self();
    if (s->started)
        atomic_fetch_add(s->started, 1);
    if (s->gate)
        sem_wait(s->gate);
    int rc = dagi_db_exec(conn, "INSERT INTO run_t (id) VALUES (1)", NULL, 0, NULL, err);
    return rc < 0 ? rc : 7;
}

static int run_bad(struct dagi_db_conn *conn, void *ud, struct dagi_error *err)
{
    (void)ud;
    return dagi_db_exec(conn, "INSERT INTO no_such_table (id) VALUES (1)", NULL, 0, NULL, err);
}

static void on_run_done(void *ud, int rc, const struct dagi_error *err)
{
    struct run_state *s = ud;
    s->rc = rc;
    s->done_on_loop = pthread_equal(pthread_self(), s->loop);
    snprintf(s->message, sizeof(s->message), "%s", err ? err->message : "");
    atomic_store(&s->done, 1);
}

static void run_until_done(struct event_base *base, struct run_state *s)
{
    for (int i = 0; i < 500 && !atomic_load(&s->done); i++) {
        struct timeval tick = {0, 10000};
        event_base_loopexit(base, &tick);
        event_base_dispatch(base);
    }
    assert_true(atomic_load(&s->done));
}

static void test_run_on_loop(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_db_conn *conn = acquire(e);
    script_ok(conn, "CREATE TABLE run_t (id BIGINT PRIMARY KEY)");
    dagi_db_release(conn);

    struct event_base *base = event_base_new();
    struct dagi_pool *pool = dagi_pool_new(base, 2, 16);
    struct run_state ok = {.loop = pthread_self()}, bad = {.loop = pthread_self()};
    assert_int_equal(dagi_db_run(e->db, pool, run_insert, on_run_done, &ok), 0);
    run_until_done(base, &ok);
    assert_int_equal(ok.rc, 7);
    assert_true(ok.done_on_loop);
    assert_false(pthread_equal(ok.worker, ok.loop));

    assert_int_equal(dagi_db_run(e->db, pool, run_bad, on_run_done, &bad), 0);
    run_until_done(base, &bad);
    assert_int_equal(bad.rc, DAGI_EIO);
    assert_true(bad.done_on_loop);
    assert_non_null(strstr(bad.message, "no_such_table"));
    dagi_pool_free(pool);
    event_base_free(base);

    /* every connection went back to the pool */
    struct dagi_db_conn *all[4];
    for (int i = 0; i < 4; i++)
        all[i] = acquire(e);
    assert_int_equal(query_int(all[3], "SELECT count(*) FROM run_t", NULL, 0), 1);
    for (int i = 0; i < 4; i++)
        dagi_db_release(all[i]);
}

static void *post_later(void *arg)
{
    sleep_ms(200);
    sem_post(arg);
    return NULL;
}

/* A job still queued when the pool stops: done() with DAGI_ECANCELED. */
static void test_run_cancelled(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_db_conn *conn = acquire(e);
    script_ok(conn, "CREATE TABLE run_t (id BIGINT PRIMARY KEY)");
    dagi_db_release(conn);

    struct event_base *base = event_base_new();
    struct dagi_pool *pool = dagi_pool_new(base, 1, 16);
    sem_t gate;
    sem_init(&gate, 0, 0);
    atomic_int started = 0;
    struct run_state first = {.loop = pthread_self(), .gate = &gate, .started = &started};
    struct run_state second = {.loop = pthread_self()};
    assert_int_equal(dagi_db_run(e->db, pool, run_insert, on_run_done, &first), 0);
    assert_int_equal(dagi_db_run(e->db, pool, run_insert, on_run_done, &second), 0);
    for (int i = 0; i < 500 && !atomic_load(&started); i++)
        sleep_ms(10);
    pthread_t poster;
    pthread_create(&poster, NULL, post_later, &gate);
    dagi_pool_free(pool); /* the first job finishes; the second never starts */
    pthread_join(poster, NULL);
    assert_int_equal(first.rc, 7);
    assert_int_equal(second.rc, DAGI_ECANCELED);
    assert_true(second.done_on_loop);
    sem_destroy(&gate);
    event_base_free(base);
}

/* --- migrations --- */

static void test_migrate_compiled(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_error err = {0};
    struct dagi_migrate_status st = {0};
    int64_t latest = dagi_migrations[dagi_migration_count - 1].version;
    assert_true(dagi_migration_count > 0);
    assert_int_equal(dagi_migrate_status(e->db, NULL, 0, &st, &err), 0);
    assert_int_equal(st.current, 0);
    assert_int_equal(st.latest, latest);
    assert_int_equal(st.pending, dagi_migration_count);

    if (dagi_migrate(e->db, NULL, 0, &st, &err) < 0)
        fail_msg("migrate: %s", err.message);
    assert_int_equal(st.current, latest);
    assert_int_equal(st.pending, 0);
    memset(&st, 0, sizeof(st));
    assert_int_equal(dagi_migrate_status(e->db, NULL, 0, &st, &err), 0);
    assert_int_equal(st.current, st.latest);
    assert_int_equal(st.latest, latest);
    assert_int_equal(st.pending, 0);

    struct dagi_db_conn *conn = acquire(e);
    assert_true(table_exists(e, conn, "outbox"));
    struct dagi_db_value p[] = {dagi_db_text("relay"), dagi_db_text("node-1"), dagi_db_int(1)};
    exec_ok(conn, "INSERT INTO outbox_lease (name, holder, expires_at) VALUES ($1, $2, $3)", p, 3);
    assert_int_equal(query_int(conn, "SELECT count(*) FROM schema_migrations", NULL, 0),
                     (int64_t)dagi_migration_count);
    dagi_db_release(conn);
}

static const struct dagi_migration failing[] = {
    {1, "0001_first", "CREATE TABLE mig_a (x BIGINT)", NULL, NULL},
    {2, "0002_second", NULL, "CREATE TABLE mig_b (x BIGINT); CREATE TABLE mig_a (y BIGINT)",
     "CREATE TABLE mig_b (x BIGINT); CREATE TABLE mig_a (y BIGINT)"},
    {3, "0003_third", "CREATE TABLE mig_c (x BIGINT)", NULL, NULL},
};

static void test_migrate_failure(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_error err = {0};
    struct dagi_migrate_status st = {.current = -1};
    int rc = dagi_migrate(e->db, failing, 3, &st, &err);
    assert_true(rc < 0);
    assert_int_equal(st.current, -1); /* out-parameters only on success */
    assert_non_null(strstr(err.message, "migration 0002_second failed: "));
    assert_non_null(strstr(err.message, "mig_a"));
    assert_int_equal(dagi_migrate_status(e->db, failing, 3, &st, &err), 0);
    assert_int_equal(st.current, 1);
    assert_int_equal(st.latest, 3);
    assert_int_equal(st.pending, 2);
    struct dagi_db_conn *conn = acquire(e);
    assert_true(table_exists(e, conn, "mig_a"));
    assert_false(table_exists(e, conn, "mig_b")); /* rolled back with its migration */
    assert_false(table_exists(e, conn, "mig_c"));
    dagi_db_release(conn);

    /* a list out of order is refused before touching the database */
    struct dagi_migration reversed[] = {failing[2], failing[0]};
    assert_int_equal(dagi_migrate(e->db, reversed, 2, &st, &err), DAGI_EINVAL);
}

/* Slow enough (rows generated in SQL) that two migrators overlap. */
static const struct dagi_migration racing[] = {
    {1, "0001_r1",
     "CREATE TABLE race_1 (x BIGINT PRIMARY KEY); INSERT INTO race_1 (x) WITH RECURSIVE c(x) AS "
     "(SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000) SELECT x FROM c",
     NULL, NULL},
    {2, "0002_r2",
     "CREATE TABLE race_2 (x BIGINT PRIMARY KEY); INSERT INTO race_2 SELECT x FROM race_1", NULL,
     NULL},
    {3, "0003_r3",
     "CREATE TABLE race_3 (x BIGINT PRIMARY KEY); INSERT INTO race_3 SELECT x FROM race_2", NULL,
     NULL},
    {4, "0004_r4", "CREATE INDEX race_3_x ON race_3 (x)", NULL, NULL},
};

static void test_migrate_twice(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_error err = {0};
    struct dagi_migrate_status st = {0};
    if (dagi_migrate(e->db, racing, 4, &st, &err) < 0)
        fail_msg("%s", err.message);
    assert_int_equal(st.current, 4);
    /* the migrations are not idempotent: reapplying one would fail */
    if (dagi_migrate(e->db, racing, 4, &st, &err) < 0)
        fail_msg("second run: %s", err.message);
    assert_int_equal(st.current, 4);
    assert_int_equal(st.pending, 0);
    struct dagi_db_conn *conn = acquire(e);
    assert_int_equal(query_int(conn, "SELECT count(*) FROM schema_migrations", NULL, 0), 4);
    assert_int_equal(query_int(conn, "SELECT count(*) FROM race_3", NULL, 0), 20000);
    dagi_db_release(conn);
}

/* The child of test_migrate_processes (main() dispatches here). */
static int migrate_child(const char *url, int start_fd)
{
    struct dagi_db *db = NULL;
    struct dagi_error err = {0};
    struct dagi_migrate_status st;
    char go;
    if (read(start_fd, &go, 1) < 0) /* wait for the starting gun (EOF) */
        return 3;
    int rc = dagi_db_open(url, NULL, &db, &err);
    if (rc == 0)
        rc = dagi_migrate(db, racing, 4, &st, &err);
    if (rc < 0)
        fprintf(stderr, "migrate child: %s\n", err.message);
    dagi_db_close(db);
    return rc < 0 ? 1 : 0;
}

/* Starts `test_store --migrate-child URL FD`; it migrates `racing` once the
 * write end of the pipe `gun` is closed everywhere. */
static pid_t spawn_migrator(struct env *e, const int gun[2])
{
    pid_t pid = fork();
    if (pid == 0) {
        char fd[16];
        snprintf(fd, sizeof(fd), "%d", gun[0]);
        close(gun[1]);
        execl("/proc/self/exe", "test_store", "--migrate-child", e->url, fd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Reaps every child first, so that a failure leaves none behind. */
static void expect_exit_zero(const pid_t *kids, int n)
{
    int status[4] = {0};
    for (int i = 0; i < n; i++)
        if (kids[i] <= 0 || waitpid(kids[i], &status[i], 0) != kids[i])
            status[i] = -1;
    for (int i = 0; i < n; i++) {
        assert_true(WIFEXITED(status[i]));
        assert_int_equal(WEXITSTATUS(status[i]), 0);
    }
}

static void test_migrate_processes(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    int gun[2];
    assert_int_equal(pipe(gun), 0);
    pid_t kids[2];
    for (int i = 0; i < 2; i++)
        kids[i] = spawn_migrator(e, gun);
    close(gun[0]);
    sleep_ms(100); /* both children at the gun */
    close(gun[1]);
    expect_exit_zero(kids, 2);
    struct dagi_db_conn *conn = acquire(e);
    assert_int_equal(query_int(conn, "SELECT count(*) FROM schema_migrations", NULL, 0), 4);
    assert_int_equal(
        query_int(conn, "SELECT count(DISTINCT version) FROM schema_migrations", NULL, 0), 4);
    assert_int_equal(query_int(conn, "SELECT count(*) FROM race_3", NULL, 0), 20000);
    dagi_db_release(conn);
}

/* The lock itself, deterministically: while this process holds it, a
 * migrating process waits, and goes on when it is dropped. */
static void test_migrate_lock_excludes(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_error err = {0};
    struct dagi_db_conn *conn = acquire(e);
    assert_int_equal(dagi_db_backend(e->db)->lock(conn, &err), 0);
    int gun[2];
    assert_int_equal(pipe(gun), 0);
    pid_t kid = spawn_migrator(e, gun);
    close(gun[0]);
    close(gun[1]);
    sleep_ms(300);
    int status;
    bool waiting = waitpid(kid, &status, WNOHANG) == 0;
    bool untouched = !table_exists(e, conn, "schema_migrations");
    dagi_db_backend(e->db)->unlock(conn);
    dagi_db_release(conn);
    expect_exit_zero(&kid, 1);
    assert_true(waiting);
    assert_true(untouched);
    conn = acquire(e);
    assert_int_equal(query_int(conn, "SELECT count(*) FROM schema_migrations", NULL, 0), 4);
    dagi_db_release(conn);
}

/* --- engine-specific --- */

static void test_sqlite_settings(void **state)
{
    struct env *e = *state;
    struct dagi_db_conn *conn = acquire(e), *other = acquire(e);
    struct dagi_db_rows *rows = NULL;
    struct dagi_error err = {0};
    assert_string_equal(dagi_db_backend(e->db)->name, "sqlite");
    assert_int_equal(dagi_db_dialect(e->db), DAGI_DB_SQLITE);
    assert_int_equal(dagi_db_query(other, "PRAGMA journal_mode", NULL, 0, &rows, &err), 0);
    assert_int_equal(dagi_db_rows_next(rows, &err), 1);
    assert_string_equal(dagi_db_col_text(rows, 0, NULL), "wal");
    dagi_db_rows_free(rows);
    assert_int_equal(query_int(other, "PRAGMA foreign_keys", NULL, 0), 1);
    assert_int_equal(query_int(other, "PRAGMA secure_delete", NULL, 0), 1);
    assert_int_equal(query_int(other, "PRAGMA synchronous", NULL, 0), 1); /* NORMAL */
    assert_int_equal(query_int(other, "PRAGMA busy_timeout", NULL, 0), 5000);
    /* "?" placeholders do not work on PostgreSQL, so they are refused */
    struct dagi_db_value p[] = {dagi_db_int(1)};
    assert_int_equal(dagi_db_exec(conn, "SELECT ?", p, 1, NULL, &err), DAGI_EINVAL);
    assert_int_equal(dagi_db_exec(conn, "SELECT 1; SELECT 2", NULL, 0, NULL, &err), DAGI_EINVAL);
    dagi_db_release(other);
    dagi_db_release(conn);
}

static void test_sqlite_memory(void **state)
{
    (void)state;
    struct dagi_db *db = NULL;
    struct dagi_db_conn *conn = NULL, *second = NULL;
    struct dagi_error err = {0};
    struct dagi_db_opts opts = {.pool_size = 4, .busy_timeout_ms = 50};
    assert_int_equal(dagi_db_open("sqlite::memory:", &opts, &db, &err), 0);
    assert_int_equal(dagi_db_acquire(db, &conn, &err), 0);
    script_ok(conn, "CREATE TABLE m (x BIGINT)");
    /* one connection: a second caller waits, here in vain */
    assert_int_equal(dagi_db_acquire(db, &second, &err), DAGI_EAGAIN);
    dagi_db_release(conn);
    assert_int_equal(dagi_db_acquire(db, &conn, &err), 0); /* the same database */
    exec_ok(conn, "INSERT INTO m (x) VALUES (1)", NULL, 0);
    dagi_db_release(conn);
    struct dagi_migrate_status st;
    assert_int_equal(dagi_migrate(db, NULL, 0, &st, &err), 0);
    assert_int_equal(st.pending, 0);
    dagi_db_close(db);

    assert_int_equal(dagi_db_open("mysql://x", NULL, &db, &err), DAGI_EINVAL);
    assert_int_equal(dagi_db_open("sqlite:", NULL, &db, &err), DAGI_EINVAL);
    assert_true(dagi_db_open("sqlite:/nonexistent-dir/x.db", NULL, &db, &err) < 0);
}

static void test_pg_reconnect(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_error err = {0};
    struct dagi_db_conn *a = acquire(e), *b = acquire(e);
    assert_string_equal(dagi_db_backend(e->db)->name, "postgres");
    assert_int_equal(
        query_int(a,
                  "SELECT count(*) FROM pg_stat_activity WHERE pid = pg_backend_pid() AND "
                  "application_name = 'dagi'",
                  NULL, 0),
        1);
    /* broken while idle in the pool: replaced on acquire, unnoticed */
    int64_t pid = query_int(a, "SELECT pg_backend_pid()", NULL, 0);
    dagi_db_release(a);
    struct dagi_db_value p[] = {dagi_db_int(pid)};
    assert_int_equal(query_int(b, "SELECT pg_terminate_backend($1, 5000)::int", p, 1), 1);
    a = acquire(e); /* the lowest free slot: the same one */
    int64_t pid2 = query_int(a, "SELECT pg_backend_pid()", NULL, 0);
    assert_true(pid2 != pid);

    /* broken while lent out: that call fails, the next acquire heals */
    struct dagi_db_value p2[] = {dagi_db_int(pid2)};
    assert_int_equal(query_int(b, "SELECT pg_terminate_backend($1, 5000)::int", p2, 1), 1);
    assert_int_equal(dagi_db_exec(a, "SELECT 1", NULL, 0, NULL, &err), DAGI_EUNAVAIL);
    dagi_db_release(a);
    a = acquire(e);
    assert_int_equal(query_int(a, "SELECT 2", NULL, 0), 2);
    dagi_db_release(a);
    dagi_db_release(b);
}

static void test_pg_unreachable(void **state)
{
    (void)state;
    struct dagi_db *db = NULL;
    struct dagi_db_conn *conn = NULL;
    struct dagi_error err = {0};
    int port = pg_fixture_free_port(); /* nobody listens there */
    char url[128];
    snprintf(url, sizeof(url), "postgresql://postgres@127.0.0.1:%d/x?connect_timeout=2", port);
    assert_int_equal(dagi_db_open(url, NULL, &db, &err), 0); /* lazy: no connection yet */
    assert_int_equal(dagi_db_dialect(db), DAGI_DB_POSTGRES);
    assert_int_equal(dagi_db_acquire(db, &conn, &err), DAGI_EUNAVAIL);
    assert_non_null(strstr(err.message, "postgres"));
    dagi_db_close(db);
    assert_int_equal(dagi_db_open("postgres://host:notaport:/x?bad", NULL, &db, &err), DAGI_EINVAL);
}

/* One cmocka group (meson reads one TAP plan per program); each test is
 * named after its backend. */
#define T(backend, fn, setup, teardown)                                                            \
    {                                                                                              \
        backend ": " #fn, fn, setup, teardown, NULL                                                \
    }
#define CONFORMANCE(backend, setup, teardown)                                                      \
    T(backend, test_types_round_trip, setup, teardown),                                            \
        T(backend, test_placeholders, setup, teardown),                                            \
        T(backend, test_affected_counts, setup, teardown),                                         \
        T(backend, test_unique_violation, setup, teardown),                                        \
        T(backend, test_transactions, setup, teardown),                                            \
        T(backend, test_concurrent_writers, setup, teardown),                                      \
        T(backend, test_rows_iteration, setup, teardown),                                          \
        T(backend, test_bad_sql, setup, teardown),                                                 \
        T(backend, test_statement_cache, setup, teardown),                                         \
        T(backend, test_run_on_loop, setup, teardown),                                             \
        T(backend, test_run_cancelled, setup, teardown),                                           \
        T(backend, test_migrate_compiled, setup, teardown),                                        \
        T(backend, test_migrate_failure, setup, teardown),                                         \
        T(backend, test_migrate_twice, setup, teardown),                                           \
        T(backend, test_migrate_processes, setup, teardown),                                       \
        T(backend, test_migrate_lock_excludes, setup, teardown)

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--migrate-child") == 0)
        return migrate_child(argv[2], atoi(argv[3]));
    evthread_use_pthreads(); /* the pool's loopq wakes the loop from workers */
    const struct CMUnitTest tests[] = {
        CONFORMANCE("sqlite", setup_sqlite, teardown_sqlite),
        T("sqlite", test_sqlite_settings, setup_sqlite, teardown_sqlite),
        T("sqlite", test_sqlite_memory, NULL, NULL),
        CONFORMANCE("postgres", setup_pg, teardown_pg),
        T("postgres", test_pg_reconnect, setup_pg, teardown_pg),
        T("postgres", test_pg_unreachable, NULL, NULL),
    };
    return cmocka_run_group_tests_name("store", tests, NULL, teardown_all);
}
