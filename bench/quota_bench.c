/* What quotas add to a request on the embedded store: one reserve (before
 * the model call) plus one settle (after it), on SQLite in a temp file (WAL,
 * the node's settings), against a baseline measured in the same run: one
 * plain write transaction of one INSERT - the least any durable bookkeeping
 * per request costs.
 *
 * Budgets: three that apply to every request (a user's per-minute requests,
 * a user's daily tokens and requests, a team's monthly tokens), limits no
 * request reaches, 100 users in 10 teams taking turns; the settle writes the
 * quota.consumed event into the outbox (no relay runs; rows accumulate as
 * they would while JetStream is away).  Each request is timed alone,
 * reserve + settle together; p50 and p99 over `requests`, median of `runs`,
 * each run on a fresh database.
 *
 *   quota_bench [requests [runs]]   (5000 3) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "quota/quota.h"
#include "quota/quota_store.h"
#include "store/db.h"
#include "store/migrate.h"

#define MAX_RUNS 16

#define die(...) (fprintf(stderr, __VA_ARGS__), fputc('\n', stderr), exit(1))

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_us(int64_t *v, size_t n, double p)
{
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)v[i] / 1000.0;
}

/* Samples over 5 ms: on SQLite these are the commits that ran a WAL
 * auto-checkpoint (every 1000 pages written), which fsyncs the database. */
static size_t slow(const int64_t *v, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += v[i] > 5000000;
    return k;
}

static double median(double *v, size_t n)
{
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static const char budgets_yaml[] = "budgets:\n"
                                   "  - {id: user-minute, per: user, window: minute, requests: "
                                   "1000000000}\n"
                                   "  - {id: user-day, per: user, window: day, requests: "
                                   "1000000000, tokens: 1000000000000}\n"
                                   "  - {id: team-month, per: team, window: month, tokens: "
                                   "1000000000000}\n";

static struct dagi_db *fresh_db(char *dir, size_t dir_len)
{
    snprintf(dir, dir_len, "/tmp/dagi-quota-bench-XXXXXX");
    if (!mkdtemp(dir))
        die("mkdtemp failed");
    char url[300];
    snprintf(url, sizeof(url), "sqlite:%s/bench.db", dir);
    struct dagi_db *db = NULL;
    struct dagi_error err = {0};
    struct dagi_migrate_status st;
    if (dagi_db_open(url, NULL, &db, &err) || dagi_migrate(db, NULL, 0, &st, &err))
        die("database: %s", err.message);
    return db;
}

static void drop_db(struct dagi_db *db, const char *dir)
{
    dagi_db_close(db);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* The baseline: BEGIN IMMEDIATE; one INSERT; COMMIT. */
static void run_baseline(struct dagi_db *db, int64_t *ns, size_t n)
{
    struct dagi_db_conn *conn = NULL;
    struct dagi_error err = {0};
    if (dagi_db_acquire(db, &conn, &err) ||
        dagi_db_exec_script(conn,
                            "CREATE TABLE bench_rows (id INTEGER PRIMARY KEY, user_id TEXT,"
                            " tokens INTEGER, at_ms INTEGER)",
                            &err))
        die("baseline: %s", err.message);
    for (size_t i = 0; i < n; i++) {
        char user[16];
        snprintf(user, sizeof(user), "u%zu", i % 100);
        struct dagi_db_value p[] = {dagi_db_text(user), dagi_db_int((int64_t)i),
                                    dagi_db_int(dagi_clock_now_ms())};
        int64_t t0 = dagi_clock_mono_ns();
        if (dagi_db_begin(conn, true, &err) ||
            dagi_db_exec(conn,
                         "INSERT INTO bench_rows (user_id, tokens, at_ms) VALUES ($1, $2, $3)", p,
                         3, NULL, &err) ||
            dagi_db_commit(conn, &err))
            die("baseline: %s", err.message);
        ns[i] = dagi_clock_mono_ns() - t0;
    }
    dagi_db_release(conn);
}

static void run_quota(struct dagi_db *db, struct dagi_quota_budgets *b, int64_t *ns, size_t n)
{
    struct dagi_quota_store *store = NULL;
    struct dagi_error err = {0};
    struct dagi_quota_store_opts o = {.db = db, .source = "quota@bench"};
    if (dagi_quota_store_new("db", &o, &store, &err))
        die("store: %s", err.message);
    for (size_t i = 0; i < n; i++) {
        char user[16], team[16];
        snprintf(user, sizeof(user), "u%zu", i % 100);
        snprintf(team, sizeof(team), "t%zu", i % 10);
        struct dagi_quota_subject s = {.user = user, .team = team, .agent = "helion"};
        struct dagi_quota_spend sp = {.prompt_tokens = 120, .completion_tokens = 380};
        struct dagi_quota_reservation *r = NULL;
        int64_t t0 = dagi_clock_mono_ns();
        if (dagi_quota_reserve(store, b, &s, 1024, dagi_clock_now_ms(), &r, NULL, &err) ||
            dagi_quota_settle(store, r, &sp, dagi_clock_now_ms(), &err))
            die("request %zu: %s", i, err.message);
        ns[i] = dagi_clock_mono_ns() - t0;
        dagi_quota_reservation_free(r);
    }
    dagi_quota_store_free(store);
}

int main(int argc, char **argv)
{
    size_t requests = argc > 1 ? strtoul(argv[1], NULL, 10) : 5000;
    size_t runs = argc > 2 ? strtoul(argv[2], NULL, 10) : 3;
    if (requests < 2 || runs < 1 || runs > MAX_RUNS)
        die("usage: quota_bench [requests >= 2 [runs 1..%d]]", MAX_RUNS);
    dagi_log_setup(DAGI_LOG_WARN, 2);
    struct dagi_cfg_errors errs;
    dagi_cfg_errors_init(&errs);
    struct dagi_quota_budgets *b = NULL;
    if (dagi_quota_budgets_load(budgets_yaml, strlen(budgets_yaml), "bench.yml", &b, &errs))
        die("budgets: %s", dagi_buf_str(&errs.text));
    dagi_cfg_errors_release(&errs);

    int64_t *ns = calloc(requests, sizeof(*ns));
    double base50[MAX_RUNS], base99[MAX_RUNS], q50[MAX_RUNS], q99[MAX_RUNS];
    size_t base_slow, q_slow;
    for (size_t r = 0; r < runs; r++) {
        char dir[64];
        struct dagi_db *db = fresh_db(dir, sizeof(dir));
        run_baseline(db, ns, requests);
        qsort(ns, requests, sizeof(*ns), cmp_i64);
        base50[r] = pct_us(ns, requests, 0.50);
        base99[r] = pct_us(ns, requests, 0.99);
        base_slow = slow(ns, requests);
        run_quota(db, b, ns, requests);
        qsort(ns, requests, sizeof(*ns), cmp_i64);
        q50[r] = pct_us(ns, requests, 0.50);
        q99[r] = pct_us(ns, requests, 0.99);
        q_slow = slow(ns, requests);
        printf("run %zu: reserve+settle p50 %.1f us, p99 %.1f us, %zu over 5 ms; one INSERT "
               "transaction (baseline) p50 %.1f us, p99 %.1f us, %zu over 5 ms\n",
               r + 1, q50[r], q99[r], q_slow, base50[r], base99[r], base_slow);
        drop_db(db, dir);
    }
    double m50 = median(q50, runs), m99 = median(q99, runs);
    double b50 = median(base50, runs), b99 = median(base99, runs);
    printf("median of %zu runs x %zu requests (SQLite, 3 budgets per request):\n"
           "  reserve+settle p50 %.1f us, p99 %.1f us\n"
           "  baseline       p50 %.1f us, p99 %.1f us\n"
           "  ratio          p50 %.2fx, p99 %.2fx\n",
           runs, requests, m50, m99, b50, b99, m50 / b50, m99 / b99);
    free(ns);
    dagi_quota_budgets_unref(b);
    return 0;
}
