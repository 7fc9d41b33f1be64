/* Quotas: the budgets document, the window arithmetic, the 429 helpers, and
 * one conformance suite of the counters run against every store backend on
 * SQLite (a fresh temp file per test) and PostgreSQL (one throwaway server,
 * a fresh schema per test; skipped only when PostgreSQL 15 is missing).
 *
 * Time: the store takes now_ms, and every test reads it from the business
 * clock (dagi_clock_now_ms()), which set_clock() moves with the test offset
 * (core/clock.h) - a day ahead without sleeping, the way an e2e test moves
 * a running node. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

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

#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "core/pool.h"
#include "quota/quota.h"
#include "quota/quota_async.h"
#include "quota/quota_reply.h"
#include "quota/quota_store.h"
#include "store/db.h"
#include "store/migrate.h"

#include "db_fixture.h"

#define DAY_MS 86400000LL
#define MINUTE_MS 60000LL
/* 2026-03-14T10:00:00.000Z: a Saturday morning, far from any window edge. */
#define T0 1773482400000LL

/* ---- the clock ---- */

static void set_clock(int64_t t_ms)
{
    int64_t real = dagi_clock_now_ms() - dagi_clock_offset_ms();
    dagi_clock_set_offset_ms(t_ms - real);
}

static int64_t now(void)
{
    return dagi_clock_now_ms();
}

/* ---- budgets from text ---- */

static struct dagi_quota_budgets *budgets_of(const char *yaml)
{
    struct dagi_cfg_errors errs;
    dagi_cfg_errors_init(&errs);
    struct dagi_quota_budgets *b = NULL;
    int rc = dagi_quota_budgets_load(yaml, strlen(yaml), "t.yml", &b, &errs);
    if (rc)
        fail_msg("budgets: %s", dagi_buf_str(&errs.text));
    dagi_cfg_errors_release(&errs);
    return b;
}

/* The errors of a document that must be refused. */
static char *errors_of(const char *yaml)
{
    struct dagi_cfg_errors errs;
    dagi_cfg_errors_init(&errs);
    int rc = dagi_quota_check_text(yaml, strlen(yaml), "quotas.yml", &errs);
    assert_int_not_equal(rc, 0);
    assert_true(errs.count > 0);
    char *text = dagi_xstrdup(dagi_buf_str(&errs.text));
    dagi_cfg_errors_release(&errs);
    return text;
}

static char *source_path(const char *rel)
{
    const char *dir = getenv("DAGI_SOURCE_DIR");
    if (dir)
        return dagi_xasprintf("%s/%s", dir, rel);
    const char *me = __FILE__, *tail = "tests/unit/test_quota.c";
    size_t n = strlen(me) - strlen(tail);
    return dagi_xasprintf("%.*s%s", (int)n, me, rel);
}

/* ==== the document ==== */

static void test_schema_errors_have_lines(void **state)
{
    (void)state;
    char *e = errors_of("budgets:\n"
                        "  - id: a\n"
                        "    per: user\n"
                        "    window: day\n"
                        "    requests: 0\n" /* line 5: 0 is not a limit */
                        "  - id: b\n"
                        "    per: everyone\n" /* line 7 */
                        "    window: day\n"
                        "    tokens: 10\n"
                        "  - id: c\n"
                        "    per: team\n"
                        "    window: week\n" /* line 12 */
                        "    tokens: 10\n"
                        "  - id: d\n" /* line 14: no limit at all */
                        "    per: agent\n"
                        "    window: month\n"
                        "  - id: e\n"
                        "    per: user\n"
                        "    window: day\n"
                        "    requests: 1\n"
                        "    colour: red\n" /* line 21 */
                        "  - per: user\n"   /* line 22: no id */
                        "    window: day\n"
                        "    requests: 1\n"
                        "  - id: Bad.Id\n" /* line 25 */
                        "    per: user\n"
                        "    window: day\n"
                        "    requests: 1\n");
    assert_non_null(strstr(e, "quotas.yml:5: budgets[0].requests"));
    assert_non_null(strstr(e, "quotas.yml:7: budgets[1].per"));
    assert_non_null(strstr(e, "quotas.yml:12: budgets[2].window"));
    assert_non_null(strstr(e, "quotas.yml:14: budgets[3]"));
    assert_non_null(strstr(e, "needs a limit"));
    assert_non_null(strstr(e, "quotas.yml:21: budgets[4].colour"));
    assert_non_null(strstr(e, "quotas.yml:22: budgets[5].id: required"));
    assert_non_null(strstr(e, "quotas.yml:25: budgets[6].id"));
    free(e);

    e = errors_of("budgets:\n"
                  "  - {id: same, per: user, window: day, requests: 1}\n"
                  "  - {id: other, per: user, window: day, requests: 1, agents: [x, x]}\n"
                  "  - {id: same, per: team, window: day, tokens: 1}\n");
    assert_non_null(strstr(e, "quotas.yml:3: budgets[1].agents: \"x\" is listed twice"));
    free(e);
    e = errors_of("budgets:\n"
                  "  - {id: same, per: user, window: day, requests: 1}\n"
                  "  - {id: same, per: team, window: day, tokens: 1}\n");
    assert_non_null(strstr(e, "quotas.yml:1: budgets: budget id \"same\" is used twice"));
    free(e);
    e = errors_of("budgets: [\n"); /* YAML syntax */
    assert_non_null(strstr(e, "quotas.yml:"));
    free(e);
    e = errors_of("budgets:\n  - {id: a, per: user, match: \"tg 42\", window: day, requests: 1}\n");
    assert_non_null(strstr(e, "quotas.yml:2: budgets[0].match"));
    free(e);
}

static void test_document_loads(void **state)
{
    (void)state;
    struct dagi_quota_budgets *b = budgets_of("");
    assert_int_equal(dagi_quota_budgets_count(b), 0);
    dagi_quota_budgets_unref(b);

    b = budgets_of("budgets:\n"
                   "  - id: free-user-daily\n"
                   "    per: user\n"
                   "    agents: [helion]\n"
                   "    window: day\n"
                   "    requests: 5\n"
                   "  - {id: team-x, per: team, match: energy, window: month, tokens: 10000}\n");
    assert_int_equal(dagi_quota_budgets_count(b), 2);
    const struct dagi_quota_budget *u = dagi_quota_budgets_find(b, "free-user-daily");
    assert_non_null(u);
    assert_string_equal(u->match, "*");
    assert_int_equal(u->requests, 5);
    assert_int_equal(u->tokens, 0);
    assert_int_equal(u->window, DAGI_QUOTA_DAY);
    assert_int_equal(u->agents.count, 1);
    const struct dagi_quota_budget *t = dagi_quota_budgets_at(b, 1);
    assert_string_equal(t->id, "team-x");
    assert_int_equal(t->per, DAGI_QUOTA_PER_TEAM);
    assert_null(dagi_quota_budgets_find(b, "nope"));

    /* which apply */
    const char *id = NULL;
    struct dagi_quota_subject s = {.user = "tg:42", .team = "energy", .agent = "helion"};
    assert_true(dagi_quota_budget_applies(u, &s, &id));
    assert_string_equal(id, "tg:42");
    assert_true(dagi_quota_budget_applies(t, &s, &id));
    assert_string_equal(id, "energy");
    s.agent = "druid"; /* not in agents */
    assert_false(dagi_quota_budget_applies(u, &s, NULL));
    s.agent = NULL;
    assert_false(dagi_quota_budget_applies(u, &s, NULL));
    s.team = "other"; /* match is one team */
    assert_false(dagi_quota_budget_applies(t, &s, NULL));
    s.team = "";
    assert_false(dagi_quota_budget_applies(t, &s, NULL));

    /* a second reference outlives the first */
    struct dagi_quota_budgets *again = dagi_quota_budgets_ref(b);
    dagi_quota_budgets_unref(b);
    assert_string_equal(dagi_quota_budgets_at(again, 0)->id, "free-user-daily");
    dagi_quota_budgets_unref(again);
}

static void test_sample_file_valid(void **state)
{
    (void)state;
    char *path = source_path("config/quotas.yml");
    struct dagi_cfg_errors errs;
    dagi_cfg_errors_init(&errs);
    struct dagi_quota_budgets *b = NULL;
    int rc = dagi_quota_budgets_load_file(path, &b, &errs);
    if (rc)
        fail_msg("%s", dagi_buf_str(&errs.text));
    assert_true(dagi_quota_budgets_count(b) >= 3);
    /* generous: a person is never stopped by the sample */
    for (size_t i = 0; i < dagi_quota_budgets_count(b); i++) {
        const struct dagi_quota_budget *x = dagi_quota_budgets_at(b, i);
        assert_true(x->requests == 0 || x->requests >= 100);
        assert_true(x->tokens == 0 || x->tokens >= 1000000);
    }
    dagi_quota_budgets_unref(b);
    dagi_cfg_errors_release(&errs);
    free(path);
}

/* ==== windows, tokens, answers ==== */

static void test_windows(void **state)
{
    (void)state;
    int64_t s, e;
    char text[32];
    dagi_quota_window_bounds(DAGI_QUOTA_MINUTE, T0 + 59999, &s, &e);
    assert_int_equal(s, T0);
    assert_int_equal(e, T0 + MINUTE_MS);
    dagi_quota_window_bounds(DAGI_QUOTA_DAY, T0, &s, &e);
    dagi_quota_format_time(s, text);
    assert_string_equal(text, "2026-03-14T00:00:00.000Z");
    assert_int_equal(e - s, DAY_MS);
    dagi_quota_window_bounds(DAGI_QUOTA_MONTH, T0, &s, &e);
    dagi_quota_format_time(s, text);
    assert_string_equal(text, "2026-03-01T00:00:00.000Z");
    dagi_quota_format_time(e, text);
    assert_string_equal(text, "2026-04-01T00:00:00.000Z");
    /* the last millisecond of a year, and a leap February */
    dagi_quota_window_bounds(DAGI_QUOTA_MONTH, 1798761599999LL, &s,
                             &e); /* 2026-12-31T23:59:59.999 */
    dagi_quota_format_time(e, text);
    assert_string_equal(text, "2027-01-01T00:00:00.000Z");
    dagi_quota_window_bounds(DAGI_QUOTA_MONTH, 1709251200000LL - 1, &s,
                             &e); /* 2024-02-29T23:59:59.999 */
    dagi_quota_format_time(s, text);
    assert_string_equal(text, "2024-02-01T00:00:00.000Z");
    assert_int_equal(e - s, 29 * DAY_MS);
    /* the end is exclusive: the reset instant starts the next window */
    dagi_quota_window_bounds(DAGI_QUOTA_DAY, e, &s, &e);
    dagi_quota_format_time(s, text);
    assert_string_equal(text, "2024-03-01T00:00:00.000Z");
    /* before 1970 */
    dagi_quota_window_bounds(DAGI_QUOTA_DAY, -1, &s, &e);
    assert_int_equal(s, -DAY_MS);
    assert_int_equal(e, 0);
    dagi_quota_format_time(-1, text);
    assert_string_equal(text, "1969-12-31T23:59:59.999Z");
}

static void test_subject_tokens(void **state)
{
    (void)state;
    char out[DAGI_QUOTA_TOKEN_MAX];
    assert_int_equal(dagi_quota_subject_token("tg:42", out, sizeof(out)), 5);
    assert_string_equal(out, "tg_42");
    dagi_quota_subject_token("olena_k-2", out, sizeof(out));
    assert_string_equal(out, "olena_k-2");
    dagi_quota_subject_token("a.b*c>d e", out, sizeof(out));
    assert_string_equal(out, "a%2Eb%2Ac%3Ed%20e");
    dagi_quota_subject_token("Олена", out, sizeof(out));
    assert_null(strpbrk(out, ".*> \t"));
    assert_int_equal(strlen(out), 30);
    assert_int_equal(dagi_quota_subject_token("", out, sizeof(out)), DAGI_EINVAL);
    assert_int_equal(dagi_quota_subject_token("abc", out, 3), DAGI_ETOOBIG);
    char longest[DAGI_QUOTA_NAME_MAX + 1];
    memset(longest, '.', DAGI_QUOTA_NAME_MAX);
    longest[DAGI_QUOTA_NAME_MAX] = '\0';
    assert_int_equal(dagi_quota_subject_token(longest, out, sizeof(out)), 3 * DAGI_QUOTA_NAME_MAX);
}

static void test_block_answers(void **state)
{
    (void)state;
    struct dagi_quota_block b = {.budget_id = "free-user-daily",
                                 .window = DAGI_QUOTA_DAY,
                                 .limit = 5,
                                 .used = 5,
                                 .window_start_ms = T0 - 10 * 3600000LL,
                                 .reset_at_ms = T0 + 14 * 3600000LL};
    json_t *body = dagi_quota_block_body(&b);
    json_t *e = json_object_get(body, "error");
    assert_string_equal(json_string_value(json_object_get(e, "type")), "quota_exceeded");
    assert_string_equal(json_string_value(json_object_get(e, "budget")), "free-user-daily");
    assert_string_equal(json_string_value(json_object_get(e, "window")), "day");
    assert_string_equal(json_string_value(json_object_get(e, "kind")), "requests");
    assert_int_equal(json_integer_value(json_object_get(e, "limit")), 5);
    assert_string_equal(json_string_value(json_object_get(e, "reset_at")),
                        "2026-03-15T00:00:00.000Z");
    assert_int_equal(json_integer_value(json_object_get(e, "reset_at_ms")), b.reset_at_ms);
    assert_non_null(strstr(json_string_value(json_object_get(e, "message")), "free-user-daily"));
    json_decref(body);

    assert_int_equal(dagi_quota_block_retry_after_s(&b, T0), 14 * 3600);
    assert_int_equal(dagi_quota_block_retry_after_s(&b, b.reset_at_ms - 1), 1);
    assert_int_equal(dagi_quota_block_retry_after_s(&b, b.reset_at_ms + 5), 1);

    char text[512];
    size_t n = dagi_quota_block_text(&b, text, sizeof(text));
    assert_int_equal(n, strlen(text));
    assert_non_null(strstr(text, "Вичерпано ліміт запитів: 5 на добу. Оновиться 15.03.2026 о "
                                 "00:00 UTC."));
    assert_non_null(strstr(text, "Request limit reached: 5 per day. It resets on 2026-03-15 at "
                                 "00:00 UTC."));
    b.tokens = true;
    b.limit = 10000;
    dagi_quota_block_text(&b, text, sizeof(text));
    assert_non_null(strstr(text, "токенів: 10000"));
    /* a short buffer never ends inside a UTF-8 character */
    for (size_t cap = 1; cap < 40; cap++) {
        char small[40];
        size_t len = dagi_quota_block_text(&b, small, cap);
        assert_true(len < cap);
        assert_int_equal(len, strlen(small));
        json_t *valid = json_string(small); /* jansson refuses invalid UTF-8 */
        assert_non_null(valid);
        json_decref(valid);
    }
}

/* ==== the counters' conformance suite ==== */

struct env {
    enum dagi_db_dialect dialect;
    const struct dagi_quota_store_ops *ops;
    struct db_fixture fx;
    struct dagi_db *db;
    struct dagi_metrics *metrics;
    struct dagi_quota_store *store;
};

#define NEED_DB(e)                                                                                 \
    do {                                                                                           \
        if (!(e)->db)                                                                              \
            skip();                                                                                \
    } while (0)

static int open_env(struct env *e)
{
    struct dagi_error err = {0};
    struct dagi_migrate_status st;
    if (dagi_db_open(e->fx.url, NULL, &e->db, &err) < 0 ||
        dagi_migrate(e->db, NULL, 0, &st, &err) < 0) {
        fprintf(stderr, "open %s: %s\n", e->fx.url, err.message);
        return -1;
    }
    e->metrics = dagi_metrics_new(1000);
    struct dagi_quota_store_opts o = {.db = e->db, .source = "quota@test", .metrics = e->metrics};
    if (dagi_quota_store_new_with(e->ops, &o, &e->store, &err)) {
        fprintf(stderr, "quota store: %s\n", err.message);
        return -1;
    }
    set_clock(T0);
    return 0;
}

static void close_env(struct env *e)
{
    dagi_quota_store_free(e->store);
    dagi_db_close(e->db);
    if (e->metrics)
        dagi_metrics_free(e->metrics);
    dagi_clock_set_offset_ms(0);
}

static int setup_sqlite(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    e->dialect = DAGI_DB_SQLITE;
    e->ops = &dagi_quota_store_db_ops;
    *state = e;
    if (db_fixture_sqlite(&e->fx, "quota") < 0)
        return -1;
    return open_env(e);
}

static int setup_pg(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    e->dialect = DAGI_DB_POSTGRES;
    e->ops = &dagi_quota_store_db_ops;
    *state = e;
    int rc = db_fixture_postgres(&e->fx, "q");
    if (rc != 0)
        return rc == DB_FIXTURE_SKIP ? 0 : -1; /* PostgreSQL 15 not installed: the test skips */
    return open_env(e);
}

static int teardown_env(void **state)
{
    struct env *e = *state;
    close_env(e);
    db_fixture_release(&e->fx);
    free(e);
    return 0;
}

/* ---- helpers ---- */

static struct dagi_quota_reservation *reserve_ok(struct env *e, struct dagi_quota_budgets *b,
                                                 const struct dagi_quota_subject *s,
                                                 int64_t max_tokens)
{
    struct dagi_quota_reservation *r = NULL;
    struct dagi_quota_block block;
    struct dagi_error err = {0};
    int rc = dagi_quota_reserve(e->store, b, s, max_tokens, now(), &r, &block, &err);
    if (rc)
        fail_msg("reserve: %d %s", rc, err.message);
    return r;
}

static void reserve_blocked(struct env *e, struct dagi_quota_budgets *b,
                            const struct dagi_quota_subject *s, int64_t max_tokens,
                            struct dagi_quota_block *block)
{
    struct dagi_quota_reservation *r = NULL;
    struct dagi_error err = {0};
    int rc = dagi_quota_reserve(e->store, b, s, max_tokens, now(), &r, block, &err);
    if (rc != DAGI_EPERM)
        fail_msg("reserve: expected a block, got %d %s", rc, err.message);
    assert_null(r);
}

static void settle_ok(struct env *e, struct dagi_quota_reservation *r, int64_t in, int64_t out,
                      bool estimated)
{
    struct dagi_quota_spend sp = {in, out, estimated, "qwen3-8b"};
    struct dagi_error err = {0};
    int rc = dagi_quota_settle(e->store, r, &sp, now(), &err);
    if (rc)
        fail_msg("settle: %d %s", rc, err.message);
    dagi_quota_reservation_free(r);
}

static struct dagi_quota_usage_entry usage_of(struct env *e, struct dagi_quota_budgets *b,
                                              const struct dagi_quota_subject *s,
                                              const char *budget_id)
{
    struct dagi_quota_usage u = {0};
    struct dagi_error err = {0};
    int rc = dagi_quota_usage(e->store, b, s, now(), &u, &err);
    if (rc)
        fail_msg("usage: %d %s", rc, err.message);
    struct dagi_quota_usage_entry found = {0};
    bool seen = false;
    for (size_t i = 0; i < u.count; i++)
        if (strcmp(u.items[i].budget_id, budget_id) == 0) {
            found = u.items[i];
            seen = true;
        }
    dagi_quota_usage_release(&u);
    if (!seen)
        fail_msg("usage: no counter for %s", budget_id);
    return found;
}

static struct dagi_db_conn *acquire(struct env *e)
{
    struct dagi_db_conn *conn = NULL;
    struct dagi_error err = {0};
    if (dagi_db_acquire(e->db, &conn, &err))
        fail_msg("acquire: %s", err.message);
    return conn;
}

static int64_t query_int(struct env *e, const char *sql)
{
    struct dagi_db_conn *conn = acquire(e);
    struct dagi_db_rows *rows = NULL;
    struct dagi_error err = {0};
    if (dagi_db_query(conn, sql, NULL, 0, &rows, &err) || dagi_db_rows_next(rows, &err) != 1)
        fail_msg("%s: %s", sql, err.message);
    int64_t v = dagi_db_col_int(rows, 0);
    dagi_db_rows_free(rows);
    dagi_db_release(conn);
    return v;
}

/* The outbox rows whose subject starts with `prefix`, oldest first: an
 * array of {"subject": ..., "event": <the envelope>}. */
static json_t *outbox(struct env *e, const char *prefix)
{
    struct dagi_db_conn *conn = acquire(e);
    struct dagi_db_rows *rows = NULL;
    struct dagi_error err = {0};
    if (dagi_db_query(conn, "SELECT subject, payload FROM outbox ORDER BY seq", NULL, 0, &rows,
                      &err))
        fail_msg("outbox: %s", err.message);
    json_t *list = json_array();
    while (dagi_db_rows_next(rows, &err) == 1) {
        const char *subject = dagi_db_col_text(rows, 0, NULL);
        size_t len = 0;
        const char *payload = dagi_db_col_text(rows, 1, &len);
        if (strncmp(subject, prefix, strlen(prefix)) != 0)
            continue;
        json_t *ev = json_loadb(payload, len, 0, NULL);
        assert_non_null(ev);
        json_array_append_new(list, json_pack("{s:s,s:o}", "subject", subject, "event", ev));
    }
    dagi_db_rows_free(rows);
    dagi_db_release(conn);
    return list;
}

static json_t *event_data(json_t *list, size_t i)
{
    return json_object_get(json_object_get(json_array_get(list, i), "event"), "data");
}

static const char *event_subject(json_t *list, size_t i)
{
    return json_string_value(json_object_get(json_array_get(list, i), "subject"));
}

static const char *str_of(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static int64_t int_of(json_t *obj, const char *key)
{
    return json_integer_value(json_object_get(obj, key));
}

/* ---- the suite ---- */

/* Must show: a 5-requests-per-day budget; the 6th is refused, naming the
 * budget and its reset, with quota.blocked in the outbox. */
static void test_sixth_request_blocked(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_quota_budgets *b =
        budgets_of("budgets:\n  - {id: free-user-daily, per: user, window: day, requests: 5}\n");
    struct dagi_quota_subject s = {.user = "tg:42", .agent = "helion", .trace_id = "trace-6"};
    for (int i = 0; i < 5; i++)
        settle_ok(e, reserve_ok(e, b, &s, 100), 10, 20, false);
    struct dagi_quota_block block;
    reserve_blocked(e, b, &s, 100, &block);
    assert_string_equal(block.budget_id, "free-user-daily");
    assert_false(block.tokens);
    assert_int_equal(block.limit, 5);
    assert_int_equal(block.used, 5);
    char reset_at[32];
    dagi_quota_format_time(block.reset_at_ms, reset_at);
    assert_string_equal(reset_at, "2026-03-15T00:00:00.000Z");

    json_t *blocked = outbox(e, "quota.blocked.");
    assert_int_equal(json_array_size(blocked), 1);
    assert_string_equal(event_subject(blocked, 0), "quota.blocked.tg_42");
    json_t *d = event_data(blocked, 0);
    assert_string_equal(str_of(d, "budget"), "free-user-daily");
    assert_string_equal(str_of(d, "user_id"), "tg:42");
    assert_string_equal(str_of(d, "kind"), "requests");
    assert_int_equal(int_of(d, "reset_at_ms"), block.reset_at_ms);
    json_t *ev = json_object_get(json_array_get(blocked, 0), "event");
    assert_string_equal(str_of(ev, "type"), "quota.blocked");
    assert_string_equal(str_of(ev, "trace_id"), "trace-6");
    json_decref(blocked);

    /* a refusal counted nothing: still 5 */
    assert_int_equal(usage_of(e, b, &s, "free-user-daily").requests, 5);
    /* another user is not affected */
    struct dagi_quota_subject other = {.user = "tg:43"};
    settle_ok(e, reserve_ok(e, b, &other, 100), 1, 1, false);

    json_t *consumed = outbox(e, "quota.consumed.");
    assert_int_equal(json_array_size(consumed), 6);
    json_decref(consumed);
    struct dagi_buf m;
    dagi_buf_init(&m, 1 << 20);
    dagi_metrics_render(e->metrics, &m);
    assert_non_null(
        strstr(dagi_buf_str(&m), "quota_blocked_total{budget_id=\"free-user-daily\"} 1"));
    assert_non_null(strstr(dagi_buf_str(&m), "agent_budget_consumed{agent_id=\"helion\"} 150"));
    dagi_buf_release(&m);
    dagi_quota_budgets_unref(b);
}

/* Settles above and below the reservation; what is held counts until then. */
static void test_tokens_settle_above_and_below(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_quota_budgets *b =
        budgets_of("budgets:\n  - {id: t, per: user, window: day, tokens: 1000}\n");
    struct dagi_quota_subject s = {.user = "olena", .team = "energy", .agent = "helion"};
    struct dagi_quota_reservation *r1 = reserve_ok(e, b, &s, 300);
    assert_int_equal(r1->count, 1);
    struct dagi_quota_usage_entry u = usage_of(e, b, &s, "t");
    assert_int_equal(u.tokens_used, 0);
    assert_int_equal(u.tokens_held, 300);
    assert_int_equal(u.requests, 1);
    assert_int_equal(u.tokens_limit, 1000);

    settle_ok(e, r1, 200, 300, false); /* 500: above the 300 held */
    u = usage_of(e, b, &s, "t");
    assert_int_equal(u.tokens_used, 500);
    assert_int_equal(u.tokens_held, 0);

    struct dagi_quota_reservation *r2 = reserve_ok(e, b, &s, 400); /* 500 + 400 <= 1000 */
    struct dagi_quota_block block;
    reserve_blocked(e, b, &s, 101, &block); /* 500 + 400 held + 101 > 1000 */
    assert_true(block.tokens);
    assert_int_equal(block.used, 500);
    assert_int_equal(block.held, 400);
    assert_int_equal(block.requested, 101);
    struct dagi_quota_reservation *r3 = reserve_ok(e, b, &s, 100); /* exactly 1000 */
    settle_ok(e, r2, 60, 40, true);                                /* 100: below the 400 */
    settle_ok(e, r3, 0, 0, false);
    u = usage_of(e, b, &s, "t");
    assert_int_equal(u.tokens_used, 600);
    assert_int_equal(u.tokens_held, 0);
    assert_int_equal(u.requests, 3);
    reserve_blocked(e, b, &s, 401, &block);
    settle_ok(e, reserve_ok(e, b, &s, 400), 400, 0, false);
    assert_int_equal(usage_of(e, b, &s, "t").tokens_used, 1000);

    json_t *consumed = outbox(e, "quota.consumed.olena");
    assert_int_equal(json_array_size(consumed), 4);
    json_t *d = event_data(consumed, 1);
    assert_int_equal(int_of(d, "tokens_in"), 60);
    assert_int_equal(int_of(d, "tokens_out"), 40);
    assert_int_equal(int_of(d, "tokens"), 100);
    assert_int_equal(int_of(d, "reserved"), 400);
    assert_true(json_is_true(json_object_get(d, "estimated")));
    assert_string_equal(str_of(d, "agent_id"), "helion");
    assert_string_equal(str_of(d, "team_id"), "energy");
    assert_string_equal(str_of(d, "model"), "qwen3-8b");
    json_t *bud = json_array_get(json_object_get(d, "budgets"), 0);
    assert_string_equal(str_of(bud, "id"), "t");
    assert_true(json_is_true(json_object_get(bud, "charged")));
    assert_int_equal(int_of(bud, "tokens_used"), 600);
    assert_false(json_is_true(json_object_get(event_data(consumed, 0), "estimated")));
    json_decref(consumed);

    /* a second settle of the same reservation is refused */
    struct dagi_quota_reservation *r4 = reserve_ok(e, b, &s, 0);
    struct dagi_quota_spend sp = {1, 1, false, NULL};
    struct dagi_error err = {0};
    assert_int_equal(dagi_quota_settle(e->store, r4, &sp, now(), &err), DAGI_OK);
    assert_int_equal(dagi_quota_settle(e->store, r4, &sp, now(), &err), DAGI_ENOENT);
    assert_int_equal(dagi_quota_release(e->store, r4, now(), &err), DAGI_ENOENT);
    dagi_quota_reservation_free(r4);
    dagi_quota_budgets_unref(b);
}

/* release frees the held tokens; the request itself still counts. */
static void test_release(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_quota_budgets *b =
        budgets_of("budgets:\n  - {id: t, per: user, window: day, tokens: 1000, requests: 2}\n");
    struct dagi_quota_subject s = {.user = "u"};
    struct dagi_quota_reservation *r = reserve_ok(e, b, &s, 1000);
    struct dagi_quota_block block;
    reserve_blocked(e, b, &s, 1, &block);
    struct dagi_error err = {0};
    assert_int_equal(dagi_quota_release(e->store, r, now(), &err), DAGI_OK);
    dagi_quota_reservation_free(r);
    struct dagi_quota_usage_entry u = usage_of(e, b, &s, "t");
    assert_int_equal(u.tokens_used, 0);
    assert_int_equal(u.tokens_held, 0);
    assert_int_equal(u.requests, 1);
    settle_ok(e, reserve_ok(e, b, &s, 1000), 5, 5, false);
    reserve_blocked(e, b, &s, 1, &block); /* the request limit: 2 made */
    assert_false(block.tokens);
    json_t *consumed = outbox(e, "quota.consumed.");
    assert_int_equal(json_array_size(consumed), 1); /* release emits nothing */
    json_decref(consumed);
    dagi_quota_budgets_unref(b);
}

/* Several budgets: one refusal reserves nothing anywhere. */
static void test_atomic_across_budgets(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_quota_budgets *b = budgets_of(
        "budgets:\n"
        "  - {id: user-day, per: user, window: day, requests: 100}\n"
        "  - {id: team-month, per: team, window: month, tokens: 1000}\n"
        "  - {id: helion-only, per: user, agents: [helion], window: minute, requests: 100}\n"
        "  - {id: agent-day, per: agent, match: helion, window: day, tokens: 5000}\n");
    struct dagi_quota_subject s = {.user = "u1", .team = "energy", .agent = "helion"};
    struct dagi_quota_reservation *r = reserve_ok(e, b, &s, 800);
    assert_int_equal(r->count, 4);
    assert_string_equal(r->counters[1].budget_id, "team-month");
    assert_string_equal(r->counters[1].subject_id, "energy");
    assert_string_equal(r->counters[3].subject_id, "helion");
    struct dagi_quota_subject mate = {.user = "u2", .team = "energy", .agent = "helion"};
    struct dagi_quota_block block;
    reserve_blocked(e, b, &mate, 800, &block);
    assert_string_equal(block.budget_id, "team-month");
    assert_string_equal(block.subject_id, "energy");
    /* u2's other counters were not touched by the refused request */
    struct dagi_quota_usage uu = {0};
    struct dagi_error err = {0};
    assert_int_equal(dagi_quota_usage(e->store, b, &mate, now(), &uu, &err), 0);
    assert_int_equal(uu.count, 4);
    assert_int_equal(uu.items[0].requests, 0);
    assert_int_equal(uu.items[2].requests, 0);
    assert_int_equal(uu.items[3].tokens_held, 800); /* u1's, on the shared agent counter */
    dagi_quota_usage_release(&uu);
    settle_ok(e, r, 100, 100, false);

    /* usage by team alone, and by a user without an agent (shows helion-only too) */
    struct dagi_quota_subject team_only = {.team = "energy"};
    struct dagi_quota_usage_entry t = usage_of(e, b, &team_only, "team-month");
    assert_int_equal(t.tokens_used, 200);
    struct dagi_quota_subject user_only = {.user = "u1"};
    assert_int_equal(usage_of(e, b, &user_only, "helion-only").requests, 1);
    struct dagi_quota_subject nobody = {0};
    assert_int_equal(dagi_quota_usage(e->store, b, &nobody, now(), &uu, &err), DAGI_EINVAL);

    /* a request to another agent is outside helion-only and agent-day */
    struct dagi_quota_subject druid = {.user = "u1", .agent = "druid"};
    struct dagi_quota_reservation *rd = reserve_ok(e, b, &druid, 10);
    assert_int_equal(rd->count, 1);
    settle_ok(e, rd, 1, 1, false);
    /* no budget at all: nothing to count, no store access */
    struct dagi_quota_budgets *none = dagi_quota_budgets_empty();
    struct dagi_quota_reservation *rn = reserve_ok(e, none, &s, 1000000);
    assert_int_equal(rn->count, 0);
    settle_ok(e, rn, 5, 5, false);
    dagi_quota_budgets_unref(none);
    dagi_quota_budgets_unref(b);
}

/* Must show: the window resets with the test clock, with quota.reset. */
static void test_window_reset_with_clock(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_quota_budgets *b =
        budgets_of("budgets:\n  - {id: daily, per: user, window: day, requests: 2}\n");
    struct dagi_quota_subject s = {.user = "tg:7"};
    settle_ok(e, reserve_ok(e, b, &s, 10), 1, 1, false);
    struct dagi_quota_reservation *late = reserve_ok(e, b, &s, 10); /* spans midnight */
    struct dagi_quota_block block;
    reserve_blocked(e, b, &s, 10, &block);
    json_t *resets = outbox(e, "quota.reset.");
    assert_int_equal(json_array_size(resets), 0); /* the first window is no reset */
    json_decref(resets);

    set_clock(block.reset_at_ms); /* 00:00:00.000 of the next day */
    struct dagi_quota_reservation *r = reserve_ok(e, b, &s, 10);
    assert_int_equal(r->counters[0].window_start_ms, block.reset_at_ms);
    resets = outbox(e, "quota.reset.");
    assert_int_equal(json_array_size(resets), 1);
    assert_string_equal(event_subject(resets, 0), "quota.reset.tg_7");
    json_t *d = event_data(resets, 0);
    assert_string_equal(str_of(d, "budget"), "daily");
    assert_string_equal(str_of(d, "by"), "schedule");
    assert_int_equal(int_of(d, "window_start_ms"), block.reset_at_ms);
    assert_int_equal(int_of(d, "previous_window_start_ms"), block.window_start_ms);
    json_decref(resets);
    /* the late settle of yesterday's request charges nothing today */
    settle_ok(e, late, 50, 50, false);
    settle_ok(e, r, 3, 4, false);
    assert_int_equal(usage_of(e, b, &s, "daily").tokens_used, 7);
    json_t *consumed = outbox(e, "quota.consumed.");
    json_t *bud = json_array_get(json_object_get(event_data(consumed, 1), "budgets"), 0);
    assert_false(json_is_true(json_object_get(bud, "charged")));
    json_decref(consumed);
    settle_ok(e, reserve_ok(e, b, &s, 10), 1, 1, false);
    reserve_blocked(e, b, &s, 10, &block); /* 2 again in the new day */

    /* minute windows roll with the clock too, and a month ends on the 1st */
    struct dagi_quota_budgets *m =
        budgets_of("budgets:\n  - {id: burst, per: user, window: minute, requests: 1}\n"
                   "  - {id: monthly, per: user, window: month, requests: 3}\n");
    settle_ok(e, reserve_ok(e, m, &s, 0), 0, 0, false);
    reserve_blocked(e, m, &s, 0, &block);
    assert_string_equal(block.budget_id, "burst");
    set_clock(block.reset_at_ms);
    settle_ok(e, reserve_ok(e, m, &s, 0), 0, 0, false);
    set_clock(now() + MINUTE_MS);
    settle_ok(e, reserve_ok(e, m, &s, 0), 0, 0, false);
    set_clock(now() + MINUTE_MS);
    reserve_blocked(e, m, &s, 0, &block);
    assert_string_equal(block.budget_id, "monthly");
    char text[32];
    dagi_quota_format_time(block.reset_at_ms, text);
    assert_string_equal(text, "2026-04-01T00:00:00.000Z");
    dagi_quota_budgets_unref(m);
    dagi_quota_budgets_unref(b);
}

/* An abandoned reservation stops counting after its expiry; purge removes
 * it a day later. */
static void test_abandoned_reservation_expires(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_quota_budgets *b =
        budgets_of("budgets:\n  - {id: t, per: user, window: day, tokens: 1000}\n");
    struct dagi_quota_subject s = {.user = "crashy"};
    struct dagi_quota_reservation *lost = reserve_ok(e, b, &s, 1000); /* never settled */
    struct dagi_quota_block block;
    reserve_blocked(e, b, &s, 1, &block);
    /* The business clock runs on from where set_clock puts it, so the
     * instants come from the reservation, with margins only forward. */
    assert_int_equal(lost->expires_at_ms - lost->reserved_at_ms, DAGI_QUOTA_HOLD_TTL_MS);
    set_clock(lost->expires_at_ms - 1000);
    reserve_blocked(e, b, &s, 1, &block);
    assert_int_equal(block.held, 1000);
    set_clock(lost->expires_at_ms);
    assert_int_equal(usage_of(e, b, &s, "t").tokens_held, 0);
    struct dagi_quota_reservation *r = reserve_ok(e, b, &s, 1000);
    settle_ok(e, r, 100, 100, false);
    /* a late settle still charges what it spent */
    struct dagi_quota_reservation *lost2 = reserve_ok(e, b, &s, 10);
    set_clock(T0 + 2 * DAGI_QUOTA_HOLD_TTL_MS);
    settle_ok(e, lost2, 5, 5, false);
    assert_int_equal(usage_of(e, b, &s, "t").tokens_used, 210);

    size_t removed = 99;
    struct dagi_error err = {0};
    assert_int_equal(dagi_quota_purge(e->store, now(), &removed, &err), 0);
    assert_int_equal(removed, 0); /* expired less than a day ago */
    set_clock(lost->expires_at_ms + DAGI_QUOTA_PURGE_AFTER_MS);
    assert_int_equal(dagi_quota_purge(e->store, now(), &removed, &err), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(query_int(e, "SELECT count(*) FROM quota_holds"), 0);
    struct dagi_quota_spend sp = {1, 1, false, NULL};
    assert_int_equal(dagi_quota_settle(e->store, lost, &sp, now(), &err), DAGI_ENOENT);
    dagi_quota_reservation_free(lost);
    dagi_quota_budgets_unref(b);
}

/* Admin reset: zeroes the counter, frees what is held, emits quota.reset. */
static void test_admin_reset(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_quota_budgets *b =
        budgets_of("budgets:\n  - {id: d, per: user, window: day, requests: 1, tokens: 100}\n"
                   "  - {id: team-d, per: team, window: day, requests: 1}\n");
    struct dagi_quota_subject s = {.user = "tg:9", .team = "energy"};
    struct dagi_quota_reservation *held = reserve_ok(e, b, &s, 100);
    struct dagi_quota_block block;
    reserve_blocked(e, b, &s, 0, &block);
    struct dagi_error err = {0};
    const struct dagi_quota_budget *d = dagi_quota_budgets_find(b, "d");
    assert_int_equal(dagi_quota_reset(e->store, d, "tg:9", now(), "tr-admin", &err), 0);
    struct dagi_quota_usage_entry u = usage_of(e, b, &s, "d");
    assert_int_equal(u.requests, 0);
    assert_int_equal(u.tokens_held, 0);
    reserve_blocked(e, b, &s, 0, &block); /* the team's counter was not reset */
    assert_string_equal(block.budget_id, "team-d");
    assert_int_equal(dagi_quota_reset(e->store, dagi_quota_budgets_find(b, "team-d"), "energy",
                                      now(), NULL, &err),
                     0);
    struct dagi_quota_reservation *r = reserve_ok(e, b, &s, 100);
    settle_ok(e, held, 30, 0, false); /* the held one still charges */
    settle_ok(e, r, 20, 0, false);
    assert_int_equal(usage_of(e, b, &s, "d").tokens_used, 50);

    json_t *resets = outbox(e, "quota.reset.");
    assert_int_equal(json_array_size(resets), 2);
    assert_string_equal(event_subject(resets, 0), "quota.reset.tg_9");
    assert_string_equal(str_of(event_data(resets, 0), "by"), "admin");
    assert_string_equal(str_of(event_data(resets, 0), "per"), "user");
    assert_string_equal(event_subject(resets, 1), "quota.reset.energy");
    assert_string_equal(str_of(event_data(resets, 1), "per"), "team");
    json_decref(resets);
    assert_int_equal(dagi_quota_reset(e->store, d, "", now(), NULL, &err), DAGI_EINVAL);
    dagi_quota_budgets_unref(b);
}

static void exec_script_ok(struct env *e, const char *sql)
{
    struct dagi_db_conn *conn = acquire(e);
    struct dagi_error err = {0};
    if (dagi_db_exec_script(conn, sql, &err))
        fail_msg("%s: %s", sql, err.message);
    dagi_db_release(conn);
}

/* Events are written in the transaction of the change they announce: when
 * the outbox insert fails, the settle changes nothing and can be retried;
 * when a refusal's event cannot be written, the reserve fails. */
static void test_events_in_the_transaction(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_quota_budgets *b =
        budgets_of("budgets:\n  - {id: t, per: user, window: day, tokens: 1000, requests: 2}\n");
    struct dagi_quota_subject s = {.user = "u"};
    struct dagi_quota_reservation *r = reserve_ok(e, b, &s, 500);
    if (e->dialect == DAGI_DB_SQLITE)
        exec_script_ok(e, "CREATE TRIGGER outbox_down BEFORE INSERT ON outbox"
                          " BEGIN SELECT RAISE(ABORT, 'outbox down'); END;");
    else
        exec_script_ok(e, "CREATE FUNCTION outbox_down() RETURNS trigger AS $$"
                          " BEGIN RAISE EXCEPTION 'outbox down'; END $$ LANGUAGE plpgsql;"
                          " CREATE TRIGGER outbox_down BEFORE INSERT ON outbox"
                          " FOR EACH ROW EXECUTE FUNCTION outbox_down();");
    struct dagi_quota_spend sp = {300, 300, false, NULL};
    struct dagi_error err = {0};
    int rc = dagi_quota_settle(e->store, r, &sp, now(), &err);
    assert_true(rc < 0 && rc != DAGI_ENOENT);
    struct dagi_quota_usage_entry u = usage_of(e, b, &s, "t");
    assert_int_equal(u.tokens_used, 0);   /* not charged */
    assert_int_equal(u.tokens_held, 500); /* still held */
    /* a refusal whose event cannot be written is an error, not a block */
    struct dagi_quota_reservation *none = NULL;
    struct dagi_quota_block block;
    rc = dagi_quota_reserve(e->store, b, &s, 600, now(), &none, &block, &err);
    assert_true(rc < 0 && rc != DAGI_EPERM);
    if (e->dialect == DAGI_DB_SQLITE)
        exec_script_ok(e, "DROP TRIGGER outbox_down;");
    else
        exec_script_ok(e, "DROP TRIGGER outbox_down ON outbox;");
    assert_int_equal(dagi_quota_settle(e->store, r, &sp, now(), &err), DAGI_OK);
    dagi_quota_reservation_free(r);
    u = usage_of(e, b, &s, "t");
    assert_int_equal(u.tokens_used, 600);
    assert_int_equal(u.tokens_held, 0);
    json_t *all = outbox(e, "quota.");
    assert_int_equal(json_array_size(all), 1);
    assert_string_equal(event_subject(all, 0), "quota.consumed.u");
    json_decref(all);
    dagi_quota_budgets_unref(b);
}

/* ---- 50 in parallel ---- */

#define PARALLEL 50
#define PER_REQUEST 1000
#define TOKEN_LIMIT 10000

struct racer {
    struct env *e;
    struct dagi_db *db; /* its own handle (own connection) */
    struct dagi_quota_store *store;
    struct dagi_quota_budgets *b;
    pthread_barrier_t *go;
    struct dagi_quota_reservation *r;
    int rc;
    char user[16];
};

static void *race(void *ud)
{
    struct racer *x = ud;
    struct dagi_quota_subject s = {.user = x->user, .team = "energy"};
    struct dagi_quota_block block;
    struct dagi_error err = {0};
    pthread_barrier_wait(x->go);
    x->rc = dagi_quota_reserve(x->store, x->b, &s, PER_REQUEST, now(), &x->r, &block, &err);
    if (x->rc && x->rc != DAGI_EPERM)
        fprintf(stderr, "racer %s: %d %s\n", x->user, x->rc, err.message);
    return NULL;
}

/* All reserve at once and hold; returns how many got through. */
static size_t race_once(struct env *e, struct racer *racers, struct dagi_quota_budgets *b)
{
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, PARALLEL);
    pthread_t t[PARALLEL];
    for (size_t i = 0; i < PARALLEL; i++) {
        racers[i].b = b;
        racers[i].go = &go;
        racers[i].r = NULL;
        pthread_create(&t[i], NULL, race, &racers[i]);
    }
    size_t granted = 0;
    for (size_t i = 0; i < PARALLEL; i++) {
        pthread_join(t[i], NULL);
        assert_true(racers[i].rc == DAGI_OK || racers[i].rc == DAGI_EPERM);
        granted += racers[i].rc == DAGI_OK;
    }
    pthread_barrier_destroy(&go);
    (void)e;
    return granted;
}

/* Must show: 50 parallel requests against a 10,000-token budget never
 * overspend beyond the reservations in flight. */
static void test_parallel_never_overspend(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_quota_budgets *b =
        budgets_of("budgets:\n  - {id: team-tokens, per: team, window: day, tokens: 10000}\n");
    struct racer *racers = calloc(PARALLEL, sizeof(*racers));
    struct dagi_db_opts one = {.pool_size = 1, .busy_timeout_ms = 20000};
    for (size_t i = 0; i < PARALLEL; i++) {
        struct dagi_error err = {0};
        racers[i].e = e;
        snprintf(racers[i].user, sizeof(racers[i].user), "u%zu", i);
        if (dagi_db_open(e->fx.url, &one, &racers[i].db, &err))
            fail_msg("open: %s", err.message);
        struct dagi_quota_store_opts o = {.db = racers[i].db, .metrics = e->metrics};
        if (dagi_quota_store_new_with(e->ops, &o, &racers[i].store, &err))
            fail_msg("store: %s", err.message);
    }
    struct dagi_quota_subject team = {.team = "energy"};

    /* round 1: nothing used, 50 x 1000 asked for 10,000: exactly 10 fit */
    assert_int_equal(race_once(e, racers, b), TOKEN_LIMIT / PER_REQUEST);
    struct dagi_quota_usage_entry u = usage_of(e, b, &team, "team-tokens");
    assert_int_equal(u.tokens_held, TOKEN_LIMIT);
    assert_int_equal(u.requests, TOKEN_LIMIT / PER_REQUEST);
    /* settle each for 600: 6,000 used */
    for (size_t i = 0; i < PARALLEL; i++)
        if (racers[i].r)
            settle_ok(e, racers[i].r, 300, 300, false);
    u = usage_of(e, b, &team, "team-tokens");
    assert_int_equal(u.tokens_used, 6000);
    assert_int_equal(u.tokens_held, 0);

    /* round 2: 4,000 left: exactly 4 fit */
    assert_int_equal(race_once(e, racers, b), 4);
    u = usage_of(e, b, &team, "team-tokens");
    assert_true(u.tokens_used + u.tokens_held <= TOKEN_LIMIT);
    assert_int_equal(u.tokens_held, 4000);
    for (size_t i = 0; i < PARALLEL; i++)
        if (racers[i].r)
            settle_ok(e, racers[i].r, PER_REQUEST, 0, false);
    assert_int_equal(usage_of(e, b, &team, "team-tokens").tokens_used, TOKEN_LIMIT);
    /* round 3: full */
    assert_int_equal(race_once(e, racers, b), 0);
    json_t *blocked = outbox(e, "quota.blocked.");
    assert_int_equal(json_array_size(blocked), (PARALLEL - 10) + (PARALLEL - 4) + PARALLEL);
    json_decref(blocked);

    for (size_t i = 0; i < PARALLEL; i++) {
        dagi_quota_store_free(racers[i].store);
        dagi_db_close(racers[i].db);
    }
    free(racers);
    dagi_quota_budgets_unref(b);
}

/* ---- from a loop ---- */

struct loop_result {
    atomic_int done;
    int rc;
    pthread_t thread;
    struct dagi_quota_reservation *r;
    struct dagi_quota_block block;
};

static void on_reserved(void *ud, int rc, struct dagi_quota_reservation *r,
                        const struct dagi_quota_block *block, const struct dagi_error *err)
{
    struct loop_result *res = ud;
    (void)err;
    res->rc = rc;
    res->r = r;
    res->thread = pthread_self();
    if (block)
        res->block = *block;
    atomic_store(&res->done, 1);
}

static void on_finished(void *ud, int rc, const struct dagi_error *err)
{
    struct loop_result *res = ud;
    (void)err;
    res->rc = rc;
    res->thread = pthread_self();
    atomic_store(&res->done, 1);
}

static void run_until_done(struct event_base *base, atomic_int *flag)
{
    struct timespec start, t;
    clock_gettime(CLOCK_MONOTONIC, &start);
    struct timeval tick = {0, 10000};
    while (!atomic_load(flag)) {
        event_base_loopexit(base, &tick);
        event_base_dispatch(base);
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - start.tv_sec > 30)
            fail_msg("timed out waiting for the pool");
    }
}

static void test_async_from_loop(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct event_base *base = event_base_new();
    struct dagi_pool *pool = dagi_pool_new(base, 2, 16);
    struct dagi_quota_budgets *b =
        budgets_of("budgets:\n  - {id: d, per: user, window: day, requests: 1}\n");
    char user[] = "tg:1";
    struct dagi_quota_subject s = {.user = user};
    struct loop_result res = {0};
    assert_int_equal(dagi_quota_reserve_async(pool, e->store, b, &s, 100, on_reserved, &res), 0);
    user[0] = 'X';               /* copied at submit */
    dagi_quota_budgets_unref(b); /* the job holds its own reference */
    run_until_done(base, &res.done);
    assert_int_equal(res.rc, 0);
    assert_true(pthread_equal(res.thread, pthread_self()));
    assert_string_equal(res.r->user, "tg:1");
    struct dagi_quota_reservation *r = res.r;

    b = budgets_of("budgets:\n  - {id: d, per: user, window: day, requests: 1}\n");
    s.user = "tg:1";
    memset(&res, 0, sizeof(res));
    assert_int_equal(dagi_quota_reserve_async(pool, e->store, b, &s, 100, on_reserved, &res), 0);
    run_until_done(base, &res.done);
    assert_int_equal(res.rc, DAGI_EPERM);
    assert_null(res.r);
    assert_string_equal(res.block.budget_id, "d");

    memset(&res, 0, sizeof(res));
    struct dagi_quota_spend sp = {7, 8, false, "m"};
    assert_int_equal(dagi_quota_settle_async(pool, e->store, r, &sp, on_finished, &res), 0);
    run_until_done(base, &res.done);
    assert_int_equal(res.rc, 0);
    assert_true(pthread_equal(res.thread, pthread_self()));
    struct dagi_quota_subject s2 = {.user = "tg:1"};
    assert_int_equal(usage_of(e, b, &s2, "d").tokens_used, 15);
    dagi_quota_budgets_unref(b);
    dagi_pool_free(pool);
    event_base_free(base);
}

#define T(backend, fn, setup, teardown)                                                            \
    {                                                                                              \
        backend ": " #fn, fn, setup, teardown, NULL                                                \
    }
#define CONFORMANCE(backend, setup, teardown)                                                      \
    T(backend, test_sixth_request_blocked, setup, teardown),                                       \
        T(backend, test_tokens_settle_above_and_below, setup, teardown),                           \
        T(backend, test_release, setup, teardown),                                                 \
        T(backend, test_atomic_across_budgets, setup, teardown),                                   \
        T(backend, test_window_reset_with_clock, setup, teardown),                                 \
        T(backend, test_abandoned_reservation_expires, setup, teardown),                           \
        T(backend, test_admin_reset, setup, teardown),                                             \
        T(backend, test_events_in_the_transaction, setup, teardown),                               \
        T(backend, test_parallel_never_overspend, setup, teardown),                                \
        T(backend, test_async_from_loop, setup, teardown)

int main(void)
{
    evthread_use_pthreads();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_errors_have_lines),
        cmocka_unit_test(test_document_loads),
        cmocka_unit_test(test_sample_file_valid),
        cmocka_unit_test(test_windows),
        cmocka_unit_test(test_subject_tokens),
        cmocka_unit_test(test_block_answers),
        CONFORMANCE("sqlite", setup_sqlite, teardown_env),
        CONFORMANCE("postgres", setup_pg, teardown_env),
    };
    return cmocka_run_group_tests_name("quota", tests, NULL, db_fixture_teardown_group);
}
