/* The audit chain (src/auditlog): every test in `chain` runs against SQLite
 * (a temp file) and PostgreSQL (one throwaway server, a schema per test),
 * both migrated with the compiled-in migrations, so the tables and
 * triggers under test are the real ones.  The pure parts (encoding, the
 * wire format, pseudonyms, the throttle) run once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auditlog/audit.h"
#include "auditlog/chain.h"
#include "auditlog/throttle.h"
#include "bus/event.h"
#include "core/buf.h"
#include "core/clock.h"
#include "store/db.h"
#include "store/migrate.h"

#include "db_fixture.h"
static const unsigned char test_key[DAGI_AUDIT_KEY_BYTES] = "0123456789abcdef0123456789abcdef";

struct env {
    enum dagi_db_dialect dialect;
    struct db_fixture fx;
    struct dagi_db *db;
};

#define NEED_DB(e)                                                                                 \
    do {                                                                                           \
        if (!(e)->db)                                                                              \
            skip();                                                                                \
    } while (0)

/* --- setups --- */

static int open_env(struct env *e)
{
    struct dagi_error err = {0};
    struct dagi_migrate_status st;
    if (dagi_db_open(e->fx.url, NULL, &e->db, &err) < 0 ||
        dagi_migrate(e->db, NULL, 0, &st, &err) < 0) {
        fprintf(stderr, "open %s: %s\n", e->fx.url, err.message);
        return -1;
    }
    return 0;
}

static int setup_sqlite(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    e->dialect = DAGI_DB_SQLITE;
    *state = e;
    if (db_fixture_sqlite(&e->fx, "audit") < 0)
        return -1;
    return open_env(e);
}

static int setup_pg(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    e->dialect = DAGI_DB_POSTGRES;
    *state = e;
    int rc = db_fixture_postgres(&e->fx, "a");
    if (rc != 0)
        return rc == DB_FIXTURE_SKIP ? 0 : -1; /* PostgreSQL 15 not installed: the test skips */
    return open_env(e);
}

static int teardown_env(void **state)
{
    struct env *e = *state;
    dagi_db_close(e->db);
    db_fixture_release(&e->fx);
    free(e);
    return 0;
}

/* --- helpers --- */

static struct dagi_db_conn *acquire(struct env *e)
{
    struct dagi_db_conn *conn = NULL;
    struct dagi_error err = {0};
    if (dagi_db_acquire(e->db, &conn, &err) < 0)
        fail_msg("acquire: %s", err.message);
    return conn;
}

static void script_ok(struct dagi_db_conn *conn, const char *sql)
{
    struct dagi_error err = {0};
    if (dagi_db_exec_script(conn, sql, &err) < 0)
        fail_msg("%s: %s", sql, err.message);
}

static int64_t query_int(struct dagi_db_conn *conn, const char *sql)
{
    struct dagi_db_rows *rows = NULL;
    struct dagi_error err = {0};
    if (dagi_db_query(conn, sql, NULL, 0, &rows, &err) < 0)
        fail_msg("%s: %s", sql, err.message);
    assert_int_equal(dagi_db_rows_next(rows, &err), 1);
    int64_t v = dagi_db_col_int(rows, 0);
    dagi_db_rows_free(rows);
    return v;
}

/* Event i of a test: varied fields, metadata with figures. */
static void make_record(struct dagi_audit_record *r, int i, const char *actor)
{
    char subject[64], trace[32];
    snprintf(subject, sizeof(subject), "agent:helion/%d", i);
    snprintf(trace, sizeof(trace), "trace-%d", i);
    json_t *meta = json_pack("{s:i,s:s,s:b}", "n", i, "route", "agents", "ok", i % 2);
    struct dagi_audit_event ev = {
        .service = i % 3 ? "gateway" : "keys",
        .action = i % 3 ? "auth_failed" : "key_created",
        .actor = actor,
        .subject = subject,
        .decision = i % 3 ? "deny" : "ok",
        .trace_id = trace,
        .metadata = meta,
    };
    struct dagi_error err = {0};
    if (dagi_audit_record_from_event(r, test_key, &ev, &err))
        fail_msg("record %d: %s", i, err.message);
    json_decref(meta);
}

static int64_t append_one(struct dagi_db_conn *conn, struct dagi_audit_record *r, bool *dup)
{
    struct dagi_error err = {0};
    bool duplicate = false;
    int rc = dagi_audit_chain_append(conn, r, &duplicate, &err);
    if (rc)
        fail_msg("append: %s (%d)", err.message, rc);
    if (dup)
        *dup = duplicate;
    return r->seq;
}

static void append_n(struct env *e, int n)
{
    struct dagi_db_conn *conn = acquire(e);
    struct dagi_audit_record *r = calloc(1, sizeof(*r));
    for (int i = 1; i <= n; i++) {
        make_record(r, i, i % 2 ? "user:alice" : NULL);
        assert_int_equal(append_one(conn, r, NULL), i);
    }
    free(r);
    dagi_db_release(conn);
}

static struct dagi_audit_verify verify(struct env *e)
{
    struct dagi_db_conn *conn = acquire(e);
    struct dagi_audit_verify v;
    struct dagi_error err = {0};
    if (dagi_audit_chain_verify(conn, &v, &err))
        fail_msg("verify: %s", err.message);
    dagi_db_release(conn);
    return v;
}

/* Drops the refusing triggers, as someone with the database's owner
 * rights could: the chain must still tell. */
static void drop_triggers(struct dagi_db_conn *conn, enum dagi_db_dialect d)
{
    if (d == DAGI_DB_SQLITE)
        script_ok(conn, "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;"
                        "DROP TRIGGER audit_log_no_replace");
    else
        script_ok(conn, "DROP TRIGGER audit_log_no_change ON audit_log;"
                        "DROP TRIGGER audit_log_no_truncate ON audit_log");
}

/* --- the chain, on each engine --- */

static void test_append_and_verify(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_audit_verify v = verify(e);
    assert_true(v.ok);
    assert_int_equal(v.records, 0);

    struct dagi_db_conn *conn = acquire(e);
    struct dagi_audit_record *r = calloc(2, sizeof(*r));
    unsigned char prev[DAGI_AUDIT_HASH_BYTES] = {0};
    for (int i = 1; i <= 5; i++) {
        make_record(&r[0], i, "user:alice");
        assert_int_equal(append_one(conn, &r[0], NULL), i);
        /* linked to the one before, hashed as documented */
        assert_memory_equal(r[0].prev_hash, prev, sizeof(prev));
        dagi_audit_record_hash(prev, &r[0], r[1].hash);
        assert_memory_equal(r[0].hash, r[1].hash, DAGI_AUDIT_HASH_BYTES);
        memcpy(prev, r[0].hash, sizeof(prev));
    }
    dagi_db_release(conn);
    v = verify(e);
    assert_true(v.ok);
    assert_int_equal(v.records, 5);
    assert_int_equal(v.last_seq, 5);
    assert_memory_equal(v.head, prev, sizeof(prev));
    free(r);
}

static void test_redelivery_is_idempotent(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    append_n(e, 2);
    struct dagi_db_conn *conn = acquire(e);
    struct dagi_audit_record *r = calloc(2, sizeof(*r));
    make_record(&r[0], 7, "user:bob");
    r[1] = r[0]; /* the same event delivered again */
    bool dup = true;
    assert_int_equal(append_one(conn, &r[0], &dup), 3);
    assert_false(dup);
    assert_int_equal(append_one(conn, &r[1], &dup), 3);
    assert_true(dup);
    assert_memory_equal(r[0].hash, r[1].hash, DAGI_AUDIT_HASH_BYTES);
    assert_int_equal(query_int(conn, "SELECT count(*) FROM audit_log"), 3);
    dagi_db_release(conn);
    assert_true(verify(e).ok);
    free(r);
}

static void test_triggers_refuse_changes(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    append_n(e, 3);
    struct dagi_db_conn *conn = acquire(e);
    struct dagi_error err = {0};
    const char *refused[] = {
        "UPDATE audit_log SET subject = 'x' WHERE seq = 2",
        "UPDATE audit_log SET hash = prev_hash",
        "DELETE FROM audit_log WHERE seq = 3",
        "DELETE FROM audit_log",
        e->dialect == DAGI_DB_SQLITE
            ? "INSERT OR REPLACE INTO audit_log SELECT * FROM audit_log WHERE seq = 1"
            : "TRUNCATE audit_log",
        e->dialect == DAGI_DB_SQLITE
            ? "INSERT INTO audit_log SELECT * FROM audit_log WHERE seq = 1 "
              "ON CONFLICT (seq) DO UPDATE SET subject = 'x'"
            : "INSERT INTO audit_log SELECT * FROM audit_log WHERE seq = 1 "
              "ON CONFLICT (seq) DO UPDATE SET subject = 'x'",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        err.message[0] = '\0';
        assert_true(dagi_db_exec(conn, refused[i], NULL, 0, NULL, &err) < 0);
        if (!strstr(err.message, "append-only"))
            fail_msg("%s: refused, but not by the trigger: %s", refused[i], err.message);
    }
    assert_int_equal(query_int(conn, "SELECT count(*) FROM audit_log"), 3);
    dagi_db_release(conn);
    struct dagi_audit_verify v = verify(e);
    assert_true(v.ok);
    assert_int_equal(v.records, 3);
}

static void test_changed_row_is_named(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    append_n(e, 6);
    struct dagi_db_conn *conn = acquire(e);
    drop_triggers(conn, e->dialect);
    script_ok(conn, "UPDATE audit_log SET decision = 'allow' WHERE seq = 4");
    dagi_db_release(conn);
    struct dagi_audit_verify v = verify(e);
    assert_false(v.ok);
    assert_int_equal(v.broken_seq, 4);
    assert_int_equal(v.records, 3);
    assert_non_null(strstr(v.reason, "does not match its hash"));
}

/* A forger who also rewrites the changed record's hash breaks the next
 * record's link instead: still named, one further. */
static void test_rehashed_row_breaks_the_next_link(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    append_n(e, 5);
    struct dagi_db_conn *conn = acquire(e);
    drop_triggers(conn, e->dialect);
    script_ok(conn, "UPDATE audit_log SET subject = 'agent:other' WHERE seq = 2");
    /* recompute seq 2's hash over its new content */
    struct dagi_db_rows *rows = NULL;
    struct dagi_error err = {0};
    assert_int_equal(dagi_db_query(conn,
                                   "SELECT seq, event_id, time_ms, service, action, actor, "
                                   "subject, decision, trace_id, metadata, prev_hash, hash FROM "
                                   "audit_log WHERE seq = 2",
                                   NULL, 0, &rows, &err),
                     0);
    assert_int_equal(dagi_db_rows_next(rows, &err), 1);
    struct dagi_audit_record *r = calloc(1, sizeof(*r));
    r->seq = dagi_db_col_int(rows, 0);
    snprintf(r->event_id, sizeof(r->event_id), "%s", dagi_db_col_text(rows, 1, NULL));
    r->time_ms = dagi_db_col_int(rows, 2);
    snprintf(r->service, sizeof(r->service), "%s", dagi_db_col_text(rows, 3, NULL));
    snprintf(r->action, sizeof(r->action), "%s", dagi_db_col_text(rows, 4, NULL));
    snprintf(r->actor, sizeof(r->actor), "%s", dagi_db_col_text(rows, 5, NULL));
    snprintf(r->subject, sizeof(r->subject), "%s", dagi_db_col_text(rows, 6, NULL));
    snprintf(r->decision, sizeof(r->decision), "%s", dagi_db_col_text(rows, 7, NULL));
    snprintf(r->trace_id, sizeof(r->trace_id), "%s", dagi_db_col_text(rows, 8, NULL));
    snprintf(r->metadata, sizeof(r->metadata), "%s", dagi_db_col_text(rows, 9, NULL));
    memcpy(r->prev_hash, dagi_db_col_blob(rows, 10, NULL), DAGI_AUDIT_HASH_BYTES);
    dagi_db_rows_free(rows);
    dagi_audit_record_hash(r->prev_hash, r, r->hash);
    struct dagi_db_value p[] = {dagi_db_blob(r->hash, DAGI_AUDIT_HASH_BYTES)};
    assert_int_equal(
        dagi_db_exec(conn, "UPDATE audit_log SET hash = $1 WHERE seq = 2", p, 1, NULL, &err), 0);
    dagi_db_release(conn);
    free(r);
    struct dagi_audit_verify v = verify(e);
    assert_false(v.ok);
    assert_int_equal(v.broken_seq, 3);
    assert_non_null(strstr(v.reason, "prev_hash"));
}

static void test_deleted_row_is_named(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    append_n(e, 5);
    struct dagi_db_conn *conn = acquire(e);
    drop_triggers(conn, e->dialect);
    script_ok(conn, "DELETE FROM audit_log WHERE seq = 3");
    dagi_db_release(conn);
    struct dagi_audit_verify v = verify(e);
    assert_false(v.ok);
    assert_int_equal(v.broken_seq, 3);
    assert_non_null(strstr(v.reason, "missing"));

    /* the first record gone: seq 1 is named, not 2 */
    conn = acquire(e);
    script_ok(conn, "DELETE FROM audit_log WHERE seq = 1");
    dagi_db_release(conn);
    v = verify(e);
    assert_false(v.ok);
    assert_int_equal(v.broken_seq, 1);
}

struct appender {
    struct env *e;
    int id, n, done;
    int rc;
    char message[512];
};

static void *appender_thread(void *arg)
{
    struct appender *a = arg;
    struct dagi_db *db = NULL;
    struct dagi_db_conn *conn = NULL;
    struct dagi_error err = {0};
    struct dagi_audit_record *r = calloc(1, sizeof(*r));
    /* a database object of its own: separate connections, as a second
     * audit role on the same PostgreSQL would have */
    a->rc = dagi_db_open(a->e->fx.url, NULL, &db, &err);
    if (!a->rc)
        a->rc = dagi_db_acquire(db, &conn, &err);
    for (int i = 0; !a->rc && i < a->n; i++) {
        char actor[32];
        snprintf(actor, sizeof(actor), "user:%d", a->id);
        make_record(r, a->id * 1000 + i, actor);
        bool dup;
        a->rc = dagi_audit_chain_append(conn, r, &dup, &err);
        if (!a->rc)
            a->done++;
    }
    if (a->rc)
        snprintf(a->message, sizeof(a->message), "%s", err.message);
    if (conn)
        dagi_db_release(conn);
    if (db)
        dagi_db_close(db);
    free(r);
    return NULL;
}

static void test_concurrent_appenders_keep_one_chain(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    enum { THREADS = 4, EACH = 40 };
    struct appender a[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        a[i] = (struct appender){.e = e, .id = i + 1, .n = EACH};
        pthread_create(&t[i], NULL, appender_thread, &a[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < THREADS; i++) {
        if (a[i].rc)
            fail_msg("appender %d: %s (%d)", i, a[i].message, a[i].rc);
        assert_int_equal(a[i].done, EACH);
    }
    struct dagi_db_conn *conn = acquire(e);
    assert_int_equal(query_int(conn, "SELECT count(*) FROM audit_log"), THREADS * EACH);
    assert_int_equal(query_int(conn, "SELECT max(seq) FROM audit_log"), THREADS * EACH);
    /* no fork: every prev_hash is the hash of exactly one other record */
    assert_int_equal(query_int(conn, "SELECT count(DISTINCT prev_hash) FROM audit_log"),
                     THREADS * EACH);
    dagi_db_release(conn);
    struct dagi_audit_verify v = verify(e);
    assert_true(v.ok);
    assert_int_equal(v.records, THREADS * EACH);
}

static void test_query_filters(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    dagi_clock_set_offset_ms(0);
    int64_t t0 = dagi_clock_now_ms();
    append_n(e, 9); /* odd i by user:alice, even by system; i%3==0 are keys */
    dagi_clock_set_offset_ms(3600 * 1000); /* an hour on */
    struct dagi_db_conn *conn = acquire(e);
    struct dagi_audit_record *r = calloc(1, sizeof(*r));
    make_record(r, 10, "user:carol");
    append_one(conn, r, NULL);
    dagi_clock_set_offset_ms(0);
    free(r);

    struct dagi_error err = {0};
    json_t *out = NULL;
    char alice[DAGI_AUDIT_ACTOR_MAX + 1];
    dagi_audit_actor_filter(test_key, "user:alice", alice);
    struct {
        struct dagi_audit_filter f;
        size_t count;
        int64_t first_seq;
    } cases[] = {
        {{.service = "keys"}, 3, 3},
        {{.service = "gateway", .action = "auth_failed", .decision = "deny"}, 7, 1},
        {{.actor = alice}, 5, 1},
        {{.actor = "system"}, 4, 2},
        {{.subject = "agent:helion/4"}, 1, 4},
        {{.since_ms = t0 + 1800 * 1000}, 1, 10},
        {{.until_ms = t0 + 1800 * 1000}, 9, 1},
        {{.after_seq = 7}, 3, 8},
        {{.service = "nobody"}, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(dagi_audit_chain_query(conn, &cases[i].f, &out, &err), 0);
        json_t *recs = json_object_get(out, "records");
        if (json_array_size(recs) != cases[i].count)
            fail_msg("case %zu: %zu records, want %zu", i, json_array_size(recs), cases[i].count);
        if (cases[i].count)
            assert_int_equal(json_integer_value(json_object_get(json_array_get(recs, 0), "seq")),
                             cases[i].first_seq);
        assert_true(json_is_null(json_object_get(out, "next_after_seq")));
        json_decref(out);
    }
    /* a principal never reaches the table: alice's records carry her pseudonym */
    assert_int_equal(query_int(conn, "SELECT count(*) FROM audit_log WHERE actor LIKE '%alice%'"),
                     0);

    /* pages: limit 4 gives 1-4, then 5-8, then 9-10 */
    struct dagi_audit_filter page = {.limit = 4};
    int64_t want = 1;
    for (int round = 0; round < 3; round++) {
        assert_int_equal(dagi_audit_chain_query(conn, &page, &out, &err), 0);
        json_t *recs = json_object_get(out, "records");
        assert_int_equal(json_array_size(recs), round < 2 ? 4 : 2);
        json_t *rec = json_array_get(recs, 0);
        assert_int_equal(json_integer_value(json_object_get(rec, "seq")), want);
        want += 4;
        json_t *next = json_object_get(out, "next_after_seq");
        if (round < 2)
            page.after_seq = json_integer_value(next);
        else
            assert_true(json_is_null(next));
        /* the record as the API shows it */
        assert_int_equal(strlen(json_string_value(json_object_get(rec, "hash"))), 64);
        assert_true(json_is_object(json_object_get(rec, "metadata")));
        json_decref(out);
    }
    dagi_db_release(conn);
}

/* The emitter's path for commands with no node: the actor pseudonymised. */
static void test_append_direct(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_error err = {0};
    json_t *meta = json_pack("{s:s}", "key_id", "abcdefghijkl");
    struct dagi_audit_event ev = {.service = "keys",
                                  .action = "key_revoked",
                                  .actor = "admin",
                                  .subject = "key:abcdefghijkl",
                                  .metadata = meta};
    assert_int_equal(dagi_audit_append_direct(e->db, test_key, &ev, &err), 0);
    struct dagi_audit_event bad = {.service = "Keys.*", .action = "x"};
    assert_int_equal(dagi_audit_append_direct(e->db, test_key, &bad, &err), DAGI_EINVAL);
    json_decref(meta);
    struct dagi_db_conn *conn = acquire(e);
    struct dagi_audit_filter f = {.actor = NULL};
    json_t *out = NULL;
    assert_int_equal(dagi_audit_chain_query(conn, &f, &out, &err), 0);
    json_t *rec = json_array_get(json_object_get(out, "records"), 0);
    char want[35];
    dagi_audit_pseudonym(test_key, "admin", want);
    assert_string_equal(json_string_value(json_object_get(rec, "actor")), want);
    assert_string_equal(json_string_value(json_object_get(rec, "decision")), "ok");
    assert_int_equal(json_array_size(json_object_get(out, "records")), 1);
    json_decref(out);
    dagi_db_release(conn);
    assert_true(verify(e).ok);
}

/* --- pure parts --- */

static void fixed_record(struct dagi_audit_record *r)
{
    memset(r, 0, sizeof(*r));
    r->seq = 1;
    snprintf(r->event_id, sizeof(r->event_id), "0193a0c4-5f1e-7a3b-9c2d-4e5f60718293");
    r->time_ms = 1764360307123;
    snprintf(r->service, sizeof(r->service), "gateway");
    snprintf(r->action, sizeof(r->action), "auth_failed");
    snprintf(r->actor, sizeof(r->actor), "anonymous");
    snprintf(r->subject, sizeof(r->subject), "route:GET /v1/models");
    snprintf(r->decision, sizeof(r->decision), "deny");
    snprintf(r->metadata, sizeof(r->metadata), "{}");
}

static void hash_of(const struct dagi_audit_record *r, unsigned char out[32])
{
    static const unsigned char zero[32];
    dagi_audit_record_hash(zero, r, out);
}

static void test_encoding_is_injective(void **state)
{
    (void)state;
    struct dagi_audit_record *a = calloc(2, sizeof(*a)), *b = a + 1;
    unsigned char ha[32], hb[32];

    /* the documented bytes: tag, then seq as 8 bytes, each with its length */
    fixed_record(a);
    struct dagi_buf buf;
    dagi_buf_init(&buf, DAGI_AUDIT_ENCODED_MAX);
    assert_int_equal(dagi_audit_record_encode(a, &buf), 0);
    static const unsigned char head[] = {0,   0,   0,   13,  'd', 'a', 'g', 'i', '.', 'a', 'u',
                                         'd', 'i', 't', '.', 'v', '1', 0,   0,   0,   8,   0,
                                         0,   0,   0,   0,   0,   0,   1,   0,   0,   0,   36};
    assert_memory_equal(buf.data, head, sizeof(head));
    unsigned char direct[32], streamed[32];
    static const unsigned char zero[32];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, zero, 32);
    crypto_generichash_update(&st, (const unsigned char *)buf.data, buf.len);
    crypto_generichash_final(&st, direct, 32);
    hash_of(a, streamed);
    assert_memory_equal(direct, streamed, 32); /* hash = BLAKE2b-256(prev || encode) */
    dagi_buf_release(&buf);

    /* bytes shifted between neighbours: never the same hash */
    struct {
        const char *f1, *v1, *f2, *v2;
    } shifts[] = {
        {"service", "gatewaya", "action", "uth_failed"},
        {"subject", "route:GET /v1/model", "decision", "sdeny"},
        {"subject", "route:GET /v1/modelsd", "decision", "eny"},
        {"actor", "anonymousroute:GET", "subject", " /v1/models"},
        {"trace_id", "x", "metadata", "{}"},
    };
    hash_of(a, ha);
    for (size_t i = 0; i < sizeof(shifts) / sizeof(shifts[0]); i++) {
        fixed_record(b);
        struct {
            const char *name;
            char *dst;
            size_t cap;
        } fields[] = {{"service", b->service, sizeof(b->service)},
                      {"action", b->action, sizeof(b->action)},
                      {"actor", b->actor, sizeof(b->actor)},
                      {"subject", b->subject, sizeof(b->subject)},
                      {"decision", b->decision, sizeof(b->decision)},
                      {"trace_id", b->trace_id, sizeof(b->trace_id)},
                      {"metadata", b->metadata, sizeof(b->metadata)}};
        for (size_t k = 0; k < sizeof(fields) / sizeof(fields[0]); k++) {
            if (!strcmp(fields[k].name, shifts[i].f1))
                snprintf(fields[k].dst, fields[k].cap, "%s", shifts[i].v1);
            if (!strcmp(fields[k].name, shifts[i].f2))
                snprintf(fields[k].dst, fields[k].cap, "%s", shifts[i].v2);
        }
        hash_of(b, hb);
        if (!memcmp(ha, hb, 32))
            fail_msg("shift %zu gives the same hash", i);
    }
    /* every single field counts, the integers too */
    fixed_record(b);
    b->seq = 2;
    hash_of(b, hb);
    assert_memory_not_equal(ha, hb, 32);
    fixed_record(b);
    b->time_ms++;
    hash_of(b, hb);
    assert_memory_not_equal(ha, hb, 32);
    fixed_record(b);
    b->event_id[35] = '4';
    hash_of(b, hb);
    assert_memory_not_equal(ha, hb, 32);
    /* and the previous hash */
    unsigned char prev[32] = {1};
    dagi_audit_record_hash(prev, a, hb);
    assert_memory_not_equal(ha, hb, 32);
    free(a);
}

static void test_wire_round_trip(void **state)
{
    (void)state;
    struct dagi_audit_record *r = calloc(2, sizeof(*r));
    make_record(&r[0], 4, "user:alice");
    char *text = dagi_audit_event_build(&r[0], "gateway@node1");
    assert_non_null(text);
    const char *why = NULL;
    assert_int_equal(
        dagi_audit_event_decode(text, strlen(text), "audit.gateway.auth_failed", &r[1], &why), 0);
    assert_string_equal(r[1].event_id, r[0].event_id);
    assert_true(r[1].time_ms == r[0].time_ms);
    assert_string_equal(r[1].actor, r[0].actor);
    assert_string_equal(r[1].metadata, r[0].metadata);
    assert_string_equal(r[1].trace_id, "trace-4");
    unsigned char h0[32], h1[32];
    hash_of(&r[0], h0);
    hash_of(&r[1], h1);
    assert_memory_equal(h0, h1, 32);    /* what travels is what was made */
    assert_null(strstr(text, "alice")); /* the principal never travels */

    /* another subject than the event's own */
    assert_int_equal(
        dagi_audit_event_decode(text, strlen(text), "audit.keys.key_created", &r[1], &why),
        DAGI_EPARSE);
    free(text);

    const char *bad[] = {
        "not json",
        "{\"id\":\"0193a0c4-5f1e-7a3b-9c2d-4e5f60718293\",\"type\":\"message.created\",\"time\":"
        "\"2026-11-28T20:05:07.123Z\",\"source\":\"\",\"trace_id\":\"\",\"schema_version\":1,"
        "\"data\":{}}",
        "{\"id\":\"0193a0c4-5f1e-7a3b-9c2d-4e5f60718293\",\"type\":\"audit\",\"time\":"
        "\"yesterday\",\"source\":\"\",\"trace_id\":\"\",\"schema_version\":1,\"data\":{"
        "\"service\":\"a\",\"action\":\"b\",\"actor\":\"system\",\"decision\":\"ok\"}}",
        "{\"id\":\"0193a0c4-5f1e-7a3b-9c2d-4e5f60718293\",\"type\":\"audit\",\"time\":"
        "\"2026-11-28T20:05:07.123Z\",\"source\":\"\",\"trace_id\":\"\",\"schema_version\":1,"
        "\"data\":{\"service\":\"A.B\",\"action\":\"b\",\"actor\":\"system\",\"decision\":\"ok\"}}",
        "{\"id\":\"0193a0c4-5f1e-7a3b-9c2d-4e5f60718293\",\"type\":\"audit\",\"time\":"
        "\"2026-11-28T20:05:07.123Z\",\"source\":\"\",\"trace_id\":\"\",\"schema_version\":1,"
        "\"data\":{\"service\":\"a\",\"action\":\"b\",\"decision\":\"ok\"}}",
        "{\"id\":\"0193a0c4-5f1e-7a3b-9c2d-4e5f60718293\",\"type\":\"audit\",\"time\":"
        "\"2026-11-28T20:05:07.123Z\",\"source\":\"\",\"trace_id\":\"\",\"schema_version\":1,"
        "\"data\":{\"service\":\"a\",\"action\":\"b\",\"actor\":\"x\\u0000y\",\"decision\":\"ok\"}"
        "}",
        "{\"id\":\"0193a0c4-5f1e-7a3b-9c2d-4e5f60718293\",\"type\":\"audit\",\"time\":"
        "\"2026-11-28T20:05:07.123Z\",\"source\":\"\",\"trace_id\":\"\",\"schema_version\":1,"
        "\"data\":{\"service\":\"a\",\"action\":\"b\",\"actor\":\"s\",\"decision\":\"ok\","
        "\"metadata\":[1]}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        if (dagi_audit_event_decode(bad[i], strlen(bad[i]), NULL, &r[1], &why) != DAGI_EPARSE)
            fail_msg("bad event %zu accepted", i);
        assert_non_null(why);
    }
    free(r);
}

static void test_key_and_pseudonyms(void **state)
{
    (void)state;
    char dir[] = "/tmp/dagi-audit-key-XXXXXX";
    assert_non_null(mkdtemp(dir));
    unsigned char k1[32], k2[32];
    struct dagi_error err = {0};
    assert_int_equal(dagi_audit_key_load(dir, k1, &err), 0);
    assert_int_equal(dagi_audit_key_load(dir, k2, &err), 0);
    assert_memory_equal(k1, k2, 32); /* made once, then read */
    char path[300];
    snprintf(path, sizeof(path), "%s/audit.key", dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    char p1[35], p2[35], p3[35];
    dagi_audit_pseudonym(k1, "user:alice", p1);
    dagi_audit_pseudonym(k1, "user:alice", p2);
    assert_string_equal(p1, p2);
    assert_int_equal(strlen(p1), 34);
    assert_true(p1[0] == 'p' && p1[1] == '_');
    dagi_audit_pseudonym(k1, "user:alicf", p3);
    assert_string_not_equal(p1, p3);
    dagi_audit_pseudonym(test_key, "user:alice", p3);
    assert_string_not_equal(p1, p3); /* keyed: another node's key, another pseudonym */

    char out[DAGI_AUDIT_ACTOR_MAX + 1];
    dagi_audit_actor_filter(k1, "user:alice", out);
    assert_string_equal(out, p1);
    dagi_audit_actor_filter(k1, p1, out);
    assert_string_equal(out, p1); /* a pseudonym is taken as it is */
    dagi_audit_actor_filter(k1, "system", out);
    assert_string_equal(out, "system");

    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(dagi_audit_key_load(dir, k2, &err), DAGI_EPERM);
    unlink(path);
    rmdir(dir);
}

static void test_throttle(void **state)
{
    (void)state;
    struct dagi_audit_throttle *t = dagi_audit_throttle_new(5);
    int64_t now = 1700000000000;
    assert_true(dagi_audit_throttle_allow(t, "10.0.0.1", now));
    assert_false(dagi_audit_throttle_allow(t, "10.0.0.1", now + 500)); /* same second */
    assert_true(dagi_audit_throttle_allow(t, "10.0.0.2", now + 500));  /* another ip */
    assert_true(dagi_audit_throttle_allow(t, "10.0.0.1", now + 1000)); /* the next second */
    /* the total cap: 5 a second whatever the ips */
    int allowed = 0;
    for (int i = 0; i < 100; i++) {
        char ip[32];
        snprintf(ip, sizeof(ip), "192.168.%d.%d", i / 250, i % 250);
        allowed += dagi_audit_throttle_allow(t, ip, now + 2000);
    }
    assert_int_equal(allowed, 5);
    dagi_audit_throttle_free(t);
}

#define T(backend, fn, setup, teardown)                                                            \
    (struct CMUnitTest)                                                                            \
    {                                                                                              \
        backend ": " #fn, fn, setup, teardown, NULL                                                \
    }
#define CHAIN(backend, setup, teardown)                                                            \
    T(backend, test_append_and_verify, setup, teardown),                                           \
        T(backend, test_redelivery_is_idempotent, setup, teardown),                                \
        T(backend, test_triggers_refuse_changes, setup, teardown),                                 \
        T(backend, test_changed_row_is_named, setup, teardown),                                    \
        T(backend, test_rehashed_row_breaks_the_next_link, setup, teardown),                       \
        T(backend, test_deleted_row_is_named, setup, teardown),                                    \
        T(backend, test_concurrent_appenders_keep_one_chain, setup, teardown),                     \
        T(backend, test_query_filters, setup, teardown),                                           \
        T(backend, test_append_direct, setup, teardown)

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encoding_is_injective), cmocka_unit_test(test_wire_round_trip),
        cmocka_unit_test(test_key_and_pseudonyms),    cmocka_unit_test(test_throttle),
        CHAIN("sqlite", setup_sqlite, teardown_env),  CHAIN("postgres", setup_pg, teardown_env),
    };
    return cmocka_run_group_tests_name("auditlog", tests, NULL, db_fixture_teardown_group);
}
