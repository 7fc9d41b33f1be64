/* Consent records: the store functions against SQLite and PostgreSQL (one
 * suite, run on both; the PostgreSQL half skips only when PostgreSQL 15 is
 * not installed), with only the consent migration applied - state,
 * history, idempotence, lists, the append-only history, racing writers.
 * Then the HTTP API and Telegram's /consent over a real server, pool and
 * loop (SQLite): who may read and change what, the answers, and the audit
 * events each change emits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auditlog/audit.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/http_server.h"
#include "core/pool.h"
#include "node/gate.h"
#include "privacy/consent.h"
#include "privacy/consent_command.h"
#include "privacy/consent_routes.h"
#include "store/db.h"
#include "store/migrate.h"

#include "db_fixture.h"

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

static void msleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Only the consent migration: this suite does not depend on the others. */
static int migrate_consent(struct dagi_db *db)
{
    for (size_t i = 0; i < dagi_migration_count; i++)
        if (strcmp(dagi_migrations[i].name, "0004_consent") == 0) {
            struct dagi_migrate_status st;
            struct dagi_error err = {0};
            if (dagi_migrate(db, &dagi_migrations[i], 1, &st, &err)) {
                fprintf(stderr, "migrate: %s\n", err.message);
                return -1;
            }
            return 0;
        }
    fprintf(stderr, "no 0004_consent migration\n");
    return -1;
}

static int open_env(struct env *e)
{
    struct dagi_error err = {0};
    if (dagi_db_open(e->fx.url, NULL, &e->db, &err) < 0) {
        fprintf(stderr, "open %s: %s\n", e->fx.url, err.message);
        return -1;
    }
    return migrate_consent(e->db);
}

static int setup_sqlite(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    e->dialect = DAGI_DB_SQLITE;
    *state = e;
    if (db_fixture_sqlite(&e->fx, "consent") < 0)
        return -1;
    return open_env(e);
}

static int setup_pg(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    e->dialect = DAGI_DB_POSTGRES;
    *state = e;
    int rc = db_fixture_postgres(&e->fx, "c");
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

/* --- store helpers --- */

static int64_t query_int(struct env *e, const char *sql)
{
    struct dagi_db_conn *conn = NULL;
    struct dagi_db_rows *rows = NULL;
    struct dagi_error err = {0};
    if (dagi_db_acquire(e->db, &conn, &err) || dagi_db_query(conn, sql, NULL, 0, &rows, &err))
        fail_msg("%s: %s", sql, err.message);
    if (dagi_db_rows_next(rows, &err) != 1)
        fail_msg("%s: no row", sql);
    int64_t v = dagi_db_col_int(rows, 0);
    dagi_db_rows_free(rows);
    dagi_db_release(conn);
    return v;
}

static int exec_sql(struct env *e, const char *sql)
{
    struct dagi_db_conn *conn = NULL;
    struct dagi_error err = {0};
    if (dagi_db_acquire(e->db, &conn, &err))
        fail_msg("acquire: %s", err.message);
    int rc = dagi_db_exec(conn, sql, NULL, 0, NULL, &err);
    dagi_db_release(conn);
    return rc;
}

static bool get(struct env *e, const char *user, const char *agent)
{
    bool granted = true;
    struct dagi_error err = {0};
    if (dagi_consent_get(e->db, user, agent, &granted, &err))
        fail_msg("get: %s", err.message);
    return granted;
}

static bool set(struct env *e, const char *user, const char *agent, bool granted,
                enum dagi_consent_source source, const char *by, int64_t now)
{
    bool changed = false;
    struct dagi_error err = {0};
    if (dagi_consent_set(e->db, user, agent, granted, source, by, now, &changed, &err))
        fail_msg("set: %s", err.message);
    return changed;
}

/* --- the store, on both engines --- */

static void test_no_record_is_no_consent(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    assert_false(get(e, "user:olena", "helion"));
    struct dagi_consent_list list;
    struct dagi_error err = {0};
    assert_int_equal(dagi_consent_list(e->db, "user:olena", 0, &list, &err), 0);
    assert_int_equal(list.count, 0);
    assert_false(list.truncated);
    dagi_consent_list_release(&list);
}

static void test_grant_and_revoke_with_history(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    assert_true(set(e, "user:olena", "helion", true, DAGI_CONSENT_SOURCE_API, "user:olena", 1000));
    assert_true(get(e, "user:olena", "helion"));
    assert_false(get(e, "user:olena", "druid")); /* per agent */
    assert_false(get(e, "tg:42", "helion"));     /* per user */
    assert_true(
        set(e, "user:olena", "helion", false, DAGI_CONSENT_SOURCE_TELEGRAM, "user:olena", 2000));
    assert_false(get(e, "user:olena", "helion"));
    assert_true(set(e, "user:olena", "helion", true, DAGI_CONSENT_SOURCE_ADMIN, "admin", 3000));
    assert_int_equal(query_int(e, "SELECT count(*) FROM privacy_consent_history"), 3);
    assert_int_equal(query_int(e, "SELECT count(*) FROM privacy_consent"), 1);
    assert_int_equal(query_int(e, "SELECT count(*) FROM privacy_consent_history WHERE granted = 0"
                                  " AND source = 'telegram' AND changed_at_ms = 2000"),
                     1);
    assert_int_equal(query_int(e, "SELECT count(*) FROM privacy_consent_history WHERE granted = 1"
                                  " AND source = 'admin' AND changed_by = 'admin'"),
                     1);
    struct dagi_consent_list list;
    struct dagi_error err = {0};
    assert_int_equal(dagi_consent_list(e->db, "user:olena", 0, &list, &err), 0);
    assert_int_equal(list.count, 1);
    const struct dagi_consent_record *r = &list.records[0];
    assert_string_equal(r->user, "user:olena");
    assert_string_equal(r->agent_id, "helion");
    assert_true(r->granted);
    assert_int_equal(r->source, DAGI_CONSENT_SOURCE_ADMIN);
    assert_string_equal(r->changed_by, "admin");
    assert_int_equal(r->updated_at_ms, 3000);
    dagi_consent_list_release(&list);
}

static void test_repeats_write_nothing(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    assert_true(set(e, "tg:42", "helion", true, DAGI_CONSENT_SOURCE_TELEGRAM, "tg:42", 1000));
    assert_false(set(e, "tg:42", "helion", true, DAGI_CONSENT_SOURCE_API, "tg:42", 2000));
    assert_int_equal(query_int(e, "SELECT count(*) FROM privacy_consent_history"), 1);
    assert_int_equal(query_int(e, "SELECT updated_at_ms FROM privacy_consent"), 1000);
    /* a first revoke with no record records the refusal */
    assert_true(set(e, "tg:43", "helion", false, DAGI_CONSENT_SOURCE_TELEGRAM, "tg:43", 1500));
    assert_false(set(e, "tg:43", "helion", false, DAGI_CONSENT_SOURCE_TELEGRAM, "tg:43", 1600));
    assert_int_equal(query_int(e, "SELECT count(*) FROM privacy_consent WHERE granted = 0"), 1);
    assert_int_equal(query_int(e, "SELECT count(*) FROM privacy_consent_history"), 2);
    assert_false(get(e, "tg:43", "helion"));
}

static void test_list_order_and_limit(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    const char *agents[] = {"zeta", "alpha", "mid-1", "beta_2"};
    for (size_t k = 0; k < 4; k++)
        set(e, "user:ivan", agents[k], k % 2 == 0, DAGI_CONSENT_SOURCE_API, "user:ivan",
            (int64_t)k);
    set(e, "user:other", "alpha", true, DAGI_CONSENT_SOURCE_API, "user:other", 9);
    struct dagi_consent_list list;
    struct dagi_error err = {0};
    assert_int_equal(dagi_consent_list(e->db, "user:ivan", 0, &list, &err), 0);
    assert_int_equal(list.count, 4);
    assert_string_equal(list.records[0].agent_id, "alpha");
    assert_string_equal(list.records[1].agent_id, "beta_2");
    assert_string_equal(list.records[2].agent_id, "mid-1");
    assert_string_equal(list.records[3].agent_id, "zeta");
    assert_false(list.records[0].granted);
    assert_true(list.records[3].granted);
    dagi_consent_list_release(&list);
    assert_int_equal(dagi_consent_list(e->db, "user:ivan", 2, &list, &err), 0);
    assert_int_equal(list.count, 2);
    assert_true(list.truncated);
    dagi_consent_list_release(&list);
}

static void test_invalid_ids(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_error err = {0};
    bool b;
    static const char *const users[] = {"", "olena", "user:", ":x", "user:o lena", "user:\x01"};
    for (size_t k = 0; k < sizeof(users) / sizeof(users[0]); k++) {
        assert_int_equal(dagi_consent_set(e->db, users[k], "helion", true, DAGI_CONSENT_SOURCE_API,
                                          "admin", 1, NULL, &err),
                         DAGI_EINVAL);
        assert_int_equal(dagi_consent_get(e->db, users[k], "helion", &b, &err), DAGI_EINVAL);
    }
    static const char *const agents[] = {"", "Helion", "1abc", "he lion", "agent/x"};
    for (size_t k = 0; k < sizeof(agents) / sizeof(agents[0]); k++)
        assert_int_equal(dagi_consent_set(e->db, "user:a", agents[k], true, DAGI_CONSENT_SOURCE_API,
                                          "admin", 1, NULL, &err),
                         DAGI_EINVAL);
    char long_agent[DAGI_CONSENT_AGENT_MAX + 2];
    memset(long_agent, 'a', sizeof(long_agent) - 1);
    long_agent[sizeof(long_agent) - 1] = '\0';
    assert_int_equal(dagi_consent_get(e->db, "user:a", long_agent, &b, &err), DAGI_EINVAL);
    assert_int_equal(dagi_consent_set(e->db, "user:a", "helion", true, DAGI_CONSENT_SOURCE_API,
                                      "nobody", 1, NULL, &err),
                     DAGI_EINVAL);
    assert_int_equal(query_int(e, "SELECT count(*) FROM privacy_consent_history"), 0);
    enum dagi_consent_source s;
    assert_int_equal(dagi_consent_source_parse("telegram", &s), 0);
    assert_int_equal(s, DAGI_CONSENT_SOURCE_TELEGRAM);
    assert_int_equal(dagi_consent_source_parse("web", &s), DAGI_EINVAL);
    assert_string_equal(dagi_consent_source_name(DAGI_CONSENT_SOURCE_ADMIN), "admin");
}

static void test_history_is_append_only(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    set(e, "user:olena", "helion", true, DAGI_CONSENT_SOURCE_API, "user:olena", 1);
    assert_true(exec_sql(e, "UPDATE privacy_consent_history SET granted = 0") < 0);
    assert_true(exec_sql(e, "DELETE FROM privacy_consent_history") < 0);
    assert_int_equal(query_int(e, "SELECT count(*) FROM privacy_consent_history WHERE granted = 1"),
                     1);
}

struct racer {
    struct env *e;
    int seed;
    atomic_int *changes;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    for (int i = 0; i < 25; i++) {
        bool granted = ((r->seed * 7 + i * 13) % 3) != 0;
        bool changed = false;
        struct dagi_error err = {0};
        int rc = dagi_consent_set(r->e->db, "user:race", "helion", granted, DAGI_CONSENT_SOURCE_API,
                                  "user:race", i, &changed, &err);
        if (rc == 0 && changed)
            atomic_fetch_add(r->changes, 1);
        else if (rc && rc != DAGI_EAGAIN)
            fprintf(stderr, "race: %s\n", err.message);
    }
    return NULL;
}

/* Writers racing on one record: every history row is a real change -
 * consecutive rows alternate - and each is one a writer was told of. */
static void test_racing_writers(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    atomic_int changes = 0;
    pthread_t t[4];
    struct racer r[4];
    for (int k = 0; k < 4; k++) {
        r[k] = (struct racer){e, k, &changes};
        pthread_create(&t[k], NULL, race, &r[k]);
    }
    for (int k = 0; k < 4; k++)
        pthread_join(t[k], NULL);
    assert_true(atomic_load(&changes) > 0);
    assert_int_equal(query_int(e, "SELECT count(*) FROM privacy_consent_history"),
                     atomic_load(&changes));
    assert_int_equal(query_int(e, "SELECT count(*) FROM privacy_consent_history a"
                                  " JOIN privacy_consent_history b ON b.id = (SELECT min(id) FROM"
                                  " privacy_consent_history c WHERE c.id > a.id)"
                                  " WHERE a.granted = b.granted"),
                     0);
    assert_int_equal(query_int(e, "SELECT count(*) FROM privacy_consent_history"
                                  " WHERE id = (SELECT max(id) FROM privacy_consent_history)"
                                  " AND granted = (SELECT granted FROM privacy_consent)"),
                     1);
}

/* --- the HTTP API and /consent, over a real server --- */

static struct {
    struct event_base *base;
    struct dagi_http_server *srv;
    struct dagi_pool *pool;
    pthread_t thread;
    int port;
    struct env env;
    struct dagi_consent_api api;
    pthread_mutex_t lock;
    json_t *events; /* the audit events, as JSON */
} h;

static void *run_loop(void *arg)
{
    (void)arg;
    event_base_loop(h.base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

struct call {
    void (*fn)(void *);
    void *arg;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
};

static void on_call(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct call *c = arg;
    c->fn(c->arg);
    pthread_mutex_lock(&c->lock);
    c->done = 1;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static void on_loop(void (*fn)(void *), void *arg)
{
    struct call c = {fn, arg, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    struct timeval zero = {0, 0};
    event_base_once(h.base, -1, EV_TIMEOUT, on_call, &c, &zero);
    pthread_mutex_lock(&c.lock);
    while (!c.done)
        pthread_cond_wait(&c.cond, &c.lock);
    pthread_mutex_unlock(&c.lock);
}

static void on_audit(void *ud, const struct dagi_audit_event *ev)
{
    (void)ud;
    json_t *e = json_pack("{s:s,s:s,s:s,s:s,s:s,s:O}", "service", ev->service, "action", ev->action,
                          "actor", ev->actor, "subject", ev->subject, "decision",
                          ev->decision ? ev->decision : "ok", "metadata", ev->metadata);
    pthread_mutex_lock(&h.lock);
    json_array_append_new(h.events, e);
    pthread_mutex_unlock(&h.lock);
}

static size_t event_count(void)
{
    pthread_mutex_lock(&h.lock);
    size_t n = json_array_size(h.events);
    pthread_mutex_unlock(&h.lock);
    return n;
}

static json_t *event_at(size_t i)
{
    pthread_mutex_lock(&h.lock);
    json_t *e = json_incref(json_array_get(h.events, i));
    pthread_mutex_unlock(&h.lock);
    return e;
}

/* The test's gate: the caller named by X-Test-Caller - "admin", "key:<user>",
 * "keyadmin:<user>" (a key with the admin role), "hook" (a route's own
 * credential). */
static int test_gate(struct dagi_http_req *req, const struct dagi_http_route *route, void *ud)
{
    (void)route, (void)ud;
    const char *who = dagi_http_req_header(req, "x-test-caller");
    if (!who) {
        dagi_http_respond_error(req, 401, "unauthorized", NULL, "no caller");
        return -1;
    }
    struct dagi_caller *c = dagi_arena_zalloc(dagi_http_req_arena(req), sizeof(*c));
    if (strcmp(who, "admin") == 0) {
        c->kind = DAGI_CALLER_ADMIN;
        c->is_admin = true;
        snprintf(c->user_id, sizeof(c->user_id), "admin");
    } else if (strncmp(who, "key:", 4) == 0) {
        c->kind = DAGI_CALLER_KEY;
        snprintf(c->user_id, sizeof(c->user_id), "%s", who + 4);
    } else if (strncmp(who, "keyadmin:", 9) == 0) {
        c->kind = DAGI_CALLER_KEY;
        c->is_admin = true;
        snprintf(c->user_id, sizeof(c->user_id), "%s", who + 9);
    } else {
        c->kind = DAGI_CALLER_ROUTE;
    }
    dagi_http_req_set_principal(req, c);
    return 0;
}

static void add_routes(void *arg)
{
    (void)arg;
    struct dagi_error err = {0};
    if (dagi_consent_routes_add(h.srv, &h.api, &err))
        fail_msg("routes: %s", err.message);
    assert_int_equal(dagi_consent_routes_add(h.srv, &h.api, &err), DAGI_EEXIST);
}

static int setup_http(void **state)
{
    (void)state;
    memset(&h, 0, sizeof(h));
    pthread_mutex_init(&h.lock, NULL);
    h.events = json_array();
    void *e = NULL;
    if (setup_sqlite(&e))
        return -1;
    h.env = *(struct env *)e;
    free(e);
    h.base = event_base_new();
    h.pool = dagi_pool_new(h.base, 2, 64);
    h.api = (struct dagi_consent_api){.db = h.env.db, .pool = h.pool, .audit = on_audit};
    struct dagi_http_server_opts o = {.listen = "127.0.0.1:0", .max_body = 1 << 20};
    struct dagi_error err = {0};
    if (dagi_http_server_new(h.base, &o, &h.srv, &err))
        return -1;
    dagi_http_server_set_gate(h.srv, test_gate, NULL);
    add_routes(NULL);
    if (dagi_http_server_listen(h.srv, &err))
        return -1;
    h.port = atoi(strrchr(dagi_http_server_address(h.srv), ':') + 1);
    pthread_create(&h.thread, NULL, run_loop, NULL);
    return 0;
}

static void stop_loop(void *arg)
{
    (void)arg;
    dagi_http_server_free(h.srv);
    event_base_loopbreak(h.base);
}

static int teardown_http(void **state)
{
    (void)state;
    on_loop(stop_loop, NULL);
    pthread_join(h.thread, NULL);
    dagi_pool_free(h.pool);
    event_base_loop(h.base, EVLOOP_NONBLOCK);
    event_base_free(h.base);
    struct env *e = calloc(1, sizeof(*e));
    *e = h.env;
    void *p = e;
    teardown_env(&p);
    json_decref(h.events);
    return 0;
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    struct dagi_buf *b = ud;
    dagi_buf_append(b, data, size * n);
    return size * n;
}

/* One request; returns the status and the JSON answer (a new reference). */
static long request(const char *method, const char *path, const char *caller, const char *body,
                    json_t **out)
{
    CURL *c = curl_easy_init();
    char url[512], who[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", h.port, path);
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    if (caller) {
        snprintf(who, sizeof(who), "X-Test-Caller: %s", caller);
        hdr = curl_slist_append(hdr, who);
    }
    struct dagi_buf got;
    dagi_buf_init(&got, 1 << 20);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &got);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        fail_msg("%s %s: %s", method, path, curl_easy_strerror(rc));
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    json_error_t jerr;
    json_t *doc = json_loads(dagi_buf_str(&got), 0, &jerr);
    if (!doc)
        fail_msg("%s %s: not JSON: %s", method, path, dagi_buf_str(&got));
    dagi_buf_release(&got);
    if (out)
        *out = doc;
    else
        json_decref(doc);
    return status;
}

static const char *str(json_t *doc, const char *key)
{
    const char *s = json_string_value(json_object_get(doc, key));
    return s ? s : "(none)";
}

static void expect_event(size_t i, const char *action, const char *actor, const char *subject,
                         const char *user, const char *source)
{
    json_t *e = event_at(i);
    assert_non_null(e);
    assert_string_equal(str(e, "service"), "privacy");
    assert_string_equal(str(e, "action"), action);
    /* The record's user is the actor (pseudonymised by the emitter); who
     * changed it is told without a name. */
    assert_string_equal(str(e, "actor"), user);
    assert_string_equal(str(e, "subject"), subject);
    json_t *meta = json_object_get(e, "metadata");
    const char *by = !strcmp(actor, user) ? "self" : !strcmp(actor, "admin") ? "admin" : "other";
    assert_string_equal(str(meta, "by"), by);
    assert_string_equal(str(meta, "source"), source);
    assert_int_equal(json_object_size(meta), 2); /* ids only, never content */
    json_decref(e);
}

static void test_api_own_records(void **state)
{
    (void)state;
    json_t *doc;
    assert_int_equal(request("GET", "/v1/consent", "key:olena", NULL, &doc), 200);
    assert_string_equal(str(doc, "user"), "user:olena");
    assert_int_equal(json_array_size(json_object_get(doc, "consents")), 0);
    json_decref(doc);

    assert_int_equal(request("PUT", "/v1/consent/helion", "key:olena", "{\"granted\":true}", &doc),
                     200);
    assert_true(json_is_true(json_object_get(doc, "granted")));
    assert_true(json_is_true(json_object_get(doc, "changed")));
    assert_string_equal(str(doc, "source"), "api");
    assert_string_equal(str(doc, "agent_id"), "helion");
    json_decref(doc);
    assert_int_equal(event_count(), 1);
    expect_event(0, "consent_granted", "user:olena", "agent:helion", "user:olena", "api");

    /* the same again: no change, no event */
    assert_int_equal(request("PUT", "/v1/consent/helion", "key:olena", "{\"granted\":true}", &doc),
                     200);
    assert_true(json_is_false(json_object_get(doc, "changed")));
    json_decref(doc);
    assert_int_equal(event_count(), 1);

    assert_int_equal(request("GET", "/v1/consent", "key:olena", NULL, &doc), 200);
    json_t *list = json_object_get(doc, "consents");
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(str(json_array_get(list, 0), "agent_id"), "helion");
    assert_true(json_is_true(json_object_get(json_array_get(list, 0), "granted")));
    assert_string_equal(str(json_array_get(list, 0), "changed_by"), "user:olena");
    json_decref(doc);

    assert_int_equal(request("DELETE", "/v1/consent/helion", "key:olena", NULL, &doc), 200);
    assert_true(json_is_false(json_object_get(doc, "granted")));
    assert_true(json_is_true(json_object_get(doc, "changed")));
    json_decref(doc);
    assert_int_equal(event_count(), 2);
    expect_event(1, "consent_revoked", "user:olena", "agent:helion", "user:olena", "api");
    bool granted = true;
    struct dagi_error err = {0};
    assert_int_equal(dagi_consent_get(h.env.db, "user:olena", "helion", &granted, &err), 0);
    assert_false(granted);
}

static void test_api_others_records(void **state)
{
    (void)state;
    json_t *doc;
    size_t before = event_count();
    /* a user may not name another */
    assert_int_equal(request("PUT", "/v1/consent/helion", "key:olena",
                             "{\"granted\":true,\"user\":\"user:ivan\"}", &doc),
                     403);
    assert_string_equal(str(json_object_get(doc, "error"), "field"), "user");
    json_decref(doc);
    assert_int_equal(request("GET", "/v1/consent?user=user:ivan", "key:olena", NULL, NULL), 403);
    assert_int_equal(request("DELETE", "/v1/consent/helion?user=tg:42", "key:olena", NULL, NULL),
                     403);
    /* naming oneself is fine */
    assert_int_equal(request("GET", "/v1/consent?user=user:olena", "key:olena", NULL, NULL), 200);
    /* an admin may: the source says so */
    assert_int_equal(
        request("PUT", "/v1/consent/druid", "admin", "{\"granted\":true,\"user\":\"tg:42\"}", &doc),
        200);
    assert_string_equal(str(doc, "user"), "tg:42");
    assert_string_equal(str(doc, "source"), "admin");
    json_decref(doc);
    expect_event(before, "consent_granted", "admin", "agent:druid", "tg:42", "admin");
    assert_int_equal(request("GET", "/v1/consent?user=tg:42", "keyadmin:root", NULL, &doc), 200);
    assert_int_equal(json_array_size(json_object_get(doc, "consents")), 1);
    assert_string_equal(str(json_array_get(json_object_get(doc, "consents"), 0), "source"),
                        "admin");
    json_decref(doc);
    assert_int_equal(request("DELETE", "/v1/consent/druid?user=tg:42", "keyadmin:root", NULL, &doc),
                     200);
    assert_true(json_is_true(json_object_get(doc, "changed")));
    json_decref(doc);
    expect_event(before + 1, "consent_revoked", "user:root", "agent:druid", "tg:42", "admin");
    assert_int_equal(request("GET", "/v1/consent?user=nobody", "admin", NULL, NULL), 400);
    /* a webhook's own credential is no user */
    assert_int_equal(request("GET", "/v1/consent", "hook", NULL, NULL), 403);
    assert_int_equal(event_count(), before + 2);
}

static void test_api_bad_requests(void **state)
{
    (void)state;
    size_t before = event_count();
    json_t *doc;
    assert_int_equal(
        request("PUT", "/v1/consent/helion", "key:olena", "{\"granted\":\"yes\"}", &doc), 400);
    assert_string_equal(str(json_object_get(doc, "error"), "field"), "granted");
    json_decref(doc);
    assert_int_equal(request("PUT", "/v1/consent/helion", "key:olena", "{}", NULL), 400);
    assert_int_equal(request("PUT", "/v1/consent/helion", "key:olena",
                             "{\"granted\":true,\"grant\":true}", &doc),
                     400);
    assert_string_equal(str(json_object_get(doc, "error"), "field"), "grant");
    json_decref(doc);
    assert_int_equal(request("PUT", "/v1/consent/helion", "key:olena", "{\"granted\":tr", NULL),
                     400);
    assert_int_equal(
        request("PUT", "/v1/consent/Not_An_Id", "key:olena", "{\"granted\":true}", &doc), 400);
    assert_string_equal(str(json_object_get(doc, "error"), "field"), "agent_id");
    json_decref(doc);
    assert_int_equal(request("PUT", "/v1/consent/helion", "admin",
                             "{\"granted\":true,\"user\":\"no principal\"}", NULL),
                     400);
    assert_int_equal(request("PUT", "/v1/consent/helion", NULL, "{\"granted\":true}", NULL), 401);
    assert_int_equal(event_count(), before);
}

/* --- /consent --- */

static struct {
    atomic_int done;
    int rc;
    char text[1024];
} reply;

static void on_reply(void *ud, int rc, const char *text)
{
    (void)ud;
    reply.rc = rc;
    snprintf(reply.text, sizeof(reply.text), "%s", text ? text : "");
    atomic_store(&reply.done, 1);
}

struct command_call {
    const char *args;
    int rc;
};

static void run_command(void *arg)
{
    struct command_call *c = arg;
    struct dagi_consent_command cmd = {"helion", "tg:4242", c->args, "trace-1"};
    c->rc = dagi_consent_command_run(&h.api, &cmd, on_reply, NULL);
}

static const char *command(const char *args)
{
    atomic_store(&reply.done, 0);
    struct command_call c = {args, 0};
    on_loop(run_command, &c);
    assert_int_equal(c.rc, 0);
    for (int i = 0; i < 10000 && !atomic_load(&reply.done); i++)
        msleep(1); /* polling for the reply, with a 10 s deadline */
    assert_true(atomic_load(&reply.done));
    assert_int_equal(reply.rc, 0);
    return reply.text;
}

static void test_telegram_command(void **state)
{
    (void)state;
    size_t before = event_count();
    assert_non_null(strstr(command(""), "Consent for helion: not granted"));
    assert_int_equal(event_count(), before);
    assert_non_null(strstr(command("on"), "Consent granted: helion"));
    assert_int_equal(event_count(), before + 1);
    expect_event(before, "consent_granted", "tg:4242", "agent:helion", "tg:4242", "telegram");
    bool granted = false;
    struct dagi_error err = {0};
    assert_int_equal(dagi_consent_get(h.env.db, "tg:4242", "helion", &granted, &err), 0);
    assert_true(granted);
    assert_non_null(strstr(command(" "), "Consent for helion: granted"));
    assert_non_null(strstr(command("maybe"), "Usage: /consent"));
    assert_non_null(strstr(command("Ні"), "Consent revoked: in confidential mode helion"));
    expect_event(before + 1, "consent_revoked", "tg:4242", "agent:helion", "tg:4242", "telegram");
    assert_int_equal(event_count(), before + 2);
    assert_int_equal(dagi_consent_get(h.env.db, "tg:4242", "helion", &granted, &err), 0);
    assert_false(granted);
    /* a sender or agent that is no id is refused before any work */
    struct dagi_consent_command bad = {"helion", "", "on", NULL};
    assert_int_equal(dagi_consent_command_run(&h.api, &bad, on_reply, NULL), DAGI_EINVAL);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    evthread_use_pthreads(); /* the pool's completions wake the loop from workers */
#define BOTH(t)                                                                                    \
    cmocka_unit_test_setup_teardown(t, setup_sqlite, teardown_env),                             \
        cmocka_unit_test_setup_teardown(t, setup_pg, teardown_env)
    const struct CMUnitTest tests[] = {
        BOTH(test_no_record_is_no_consent),
        BOTH(test_grant_and_revoke_with_history),
        BOTH(test_repeats_write_nothing),
        BOTH(test_list_order_and_limit),
        BOTH(test_invalid_ids),
        BOTH(test_history_is_append_only),
        BOTH(test_racing_writers),
        cmocka_unit_test_setup_teardown(test_api_own_records, setup_http, teardown_http),
        cmocka_unit_test_setup_teardown(test_api_others_records, setup_http, teardown_http),
        cmocka_unit_test_setup_teardown(test_api_bad_requests, setup_http, teardown_http),
        cmocka_unit_test_setup_teardown(test_telegram_command, setup_http, teardown_http),
    };
    int failed = cmocka_run_group_tests_name("consent", tests, NULL, db_fixture_teardown_group);
    curl_global_cleanup();
    return failed;
}
