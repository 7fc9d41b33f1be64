/* Outbox relay benchmark: throughput draining a pre-filled outbox, and
 * commit -> subscriber latency at a steady rate, on SQLite (temp file) and
 * PostgreSQL 15 (pg_fixture.h; skipped if not installed), against its own
 * nats-server unless DAGI_BENCH_NATS_URL is set.
 *
 *   outbox_bench [events [runs [latency_seconds [rate]]]]   (50000 3 10 1000)
 *
 * Each run: a fresh migrated database, a purged DAGI_EVENTS stream, the relay
 * with batch 500, poll 10 ms, lease 10 s; event data 500 bytes (envelope ~660).
 * 1. `events` rows added in transactions of 1,000, then the relay starts; the
 *    clock stops when a pool job polling COUNT(*) of pending rows every 20 ms
 *    sees 0 (all published, acked, marked; +-20 ms).  The stream's message
 *    count must equal `events`.
 * 2. A writer thread commits one event per transaction at `rate`/s (absolute
 *    schedule), noting the monotonic time right after each commit; a plain
 *    libnats subscription (own connection and thread) notes first arrivals.
 *    Latency = arrival - commit; p50/p99 by nearest rank, and max.
 * Medians over `runs` (max: the worst run).  The loop (main thread) only
 * drives the bus (libevent adapter), the relay and timers: blocking database
 * and libnats calls run on the pool or threads of our own (off_loop, writer). */
#include <event2/event.h>
#include <event2/thread.h>
#include <math.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/bus.h"
#include "bus/js.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/loopq.h"
#include "core/pool.h"
#include "nats_fixture.h"
#include "pg_fixture.h"
#include "store/db.h"
#include "store/migrate.h"
#include "store/outbox.h"

#define SUBJECT "ops.bench.outbox"
#define STREAM "DAGI_EVENTS"
#define PAD 480 /* data = {"i":N,"pad":"xxx..."}: 500 bytes */
#define TX_ROWS 1000
#define MAX_RUNS 16
#define SEC 1000000000LL

/* The servers die with us (PR_SET_PDEATHSIG). */
#define die(...) (fprintf(stderr, __VA_ARGS__), fputc('\n', stderr), exit(1))

enum backend { SQLITE, PG };
static const char *const backend_name[] = {"sqlite", "postgresql"};

static struct {
    struct event_base *base;
    struct dagi_loopq *loopq;
    struct dagi_pool *pool;
    struct dagi_bus *bus;
    struct dagi_js *js;
    struct nats_fixture nats;
    struct pg_fixture pg;
    bool have_pg;
    natsConnection *obs; /* the observer's own connection: purge, info, subscribe */
    jsCtx *ojs;
    char pad[PAD + 1];
} G;

struct run {
    enum backend be;
    int no, events; /* events > 0: a throughput run, pre-filled */
    int n;          /* n > 0: a latency run, n commits one per period_ns */
    int64_t period_ns, *commit_ns, *arrive_ns, writer_end_ns;
    char url[320], name[40], dir[64];
    struct dagi_db *db;
    uint64_t stream_msgs;
    int arrived, writer_done; /* atomics */
    natsSubscription *sub;
    int64_t pending, t0, t_done; /* the throughput poll */
    bool busy;
};

/* Runs fn(arg) on a thread of its own and waits for it: blocking calls. */
static void off_loop(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    if (pthread_create(&t, NULL, fn, arg) != 0)
        die("pthread_create failed");
    pthread_join(t, NULL);
}

/* Turns the loop for `ms` (the bus keeps it busy, so it never ends alone). */
static void spin(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(G.base, &tv);
    event_base_dispatch(G.base);
}

static void pg_admin(const char *sql)
{
    char ci[200];
    snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%d user=postgres dbname=postgres", G.pg.port);
    PGconn *c = PQconnectdb(ci);
    PGresult *res = PQexec(c, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        die("%s: %s", sql, PQerrorMessage(c));
    PQclear(res);
    PQfinish(c);
}

static int add_event(struct dagi_db_conn *conn, int64_t i, struct dagi_error *err)
{
    json_t *data = json_pack("{s:I,s:s}", "i", (json_int_t)i, "pad", G.pad);
    /* subject, type, source, trace_id, aggregate type and id, data */
    struct dagi_outbox_event ev = {SUBJECT, "ops.bench", "bench@node1", NULL, "bench", "1", data};
    return dagi_outbox_add(conn, &ev, NULL, err);
}

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *ud)
{
    (void)nc, (void)sub;
    int64_t now = dagi_clock_mono_ns();
    struct run *r = ud;
    /* parsed: PostgreSQL gives the payload back as jsonb text (keys reordered) */
    json_t *env = json_loadb(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), 0, NULL);
    json_t *i = json_object_get(json_object_get(env, "data"), "i");
    json_int_t k = json_is_integer(i) ? json_integer_value(i) : -1;
    if (k >= 0 && k < r->n && !r->arrive_ns[k]) { /* one delivery thread: no race */
        r->arrive_ns[k] = now;
        __atomic_add_fetch(&r->arrived, 1, __ATOMIC_RELEASE);
    }
    json_decref(env);
    natsMsg_Destroy(msg);
}

/* Off the loop: a fresh database, a purged stream, the pre-fill, the subscription. */
static void *prepare_main(void *arg)
{
    struct run *r = arg;
    struct dagi_error err = {0};
    struct dagi_migrate_status st;
    struct dagi_db_conn *conn;
    snprintf(r->name, sizeof(r->name), "bench_%s_%d", r->events ? "tput" : "lat", r->no);
    if (r->be == SQLITE) {
        snprintf(r->dir, sizeof(r->dir), "/tmp/dagi-obench-XXXXXX");
        if (!mkdtemp(r->dir))
            die("mkdtemp failed");
        snprintf(r->url, sizeof(r->url), "sqlite:%s/outbox.db", r->dir);
    } else {
        char sql[80];
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s", r->name);
        pg_admin(sql);
        snprintf(r->url, sizeof(r->url), "postgres://postgres@127.0.0.1:%d/%s", G.pg.port, r->name);
    }
    if (dagi_db_open(r->url, NULL, &r->db, &err) || dagi_migrate(r->db, NULL, 0, &st, &err) < 0 ||
        dagi_db_acquire(r->db, &conn, &err))
        die("%s: %s", r->url, err.message);
    if (js_PurgeStream(G.ojs, STREAM, NULL, NULL) != NATS_OK)
        die("purge: %s", nats_GetLastError(NULL));
    for (int i = 0; i < r->events; i += TX_ROWS) {
        int rc = dagi_db_begin(conn, true, &err);
        for (int k = i; !rc && k < i + TX_ROWS && k < r->events; k++)
            rc = add_event(conn, k, &err);
        if (rc || dagi_db_commit(conn, &err))
            die("prefill: %s", err.message);
    }
    dagi_db_release(conn);
    if (r->n && (natsConnection_Subscribe(&r->sub, G.obs, SUBJECT, on_msg, r) != NATS_OK ||
                 natsSubscription_SetPendingLimits(r->sub, -1, -1) != NATS_OK ||
                 natsConnection_Flush(G.obs) != NATS_OK))
        die("subscribe: %s", nats_GetLastError(NULL));
    return NULL;
}

static void *finish_main(void *arg)
{
    struct run *r = arg;
    if (r->sub) { /* drained: no callback is running or will run */
        natsSubscription_Drain(r->sub);
        natsSubscription_WaitForDrainCompletion(r->sub, 5000);
        natsSubscription_Destroy(r->sub);
    }
    jsStreamInfo *si = NULL;
    if (js_GetStreamInfo(&si, G.ojs, STREAM, NULL, NULL) == NATS_OK) {
        r->stream_msgs = si->State.Msgs;
        jsStreamInfo_Destroy(si);
    }
    dagi_db_close(r->db);
    char cmd[160];
    if (r->be == SQLITE) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", r->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", r->dir);
    } else {
        snprintf(cmd, sizeof(cmd), "DROP DATABASE %s WITH (FORCE)", r->name);
        pg_admin(cmd);
    }
    return NULL;
}

static int count_work(struct dagi_db_conn *conn, void *ud, struct dagi_error *err)
{
    struct run *r = ud;
    struct dagi_db_rows *rows;
    int rc = dagi_db_query(conn, "SELECT COUNT(*) FROM outbox WHERE status = 'pending'", NULL, 0,
                           &rows, err);
    if (rc)
        return rc;
    if ((rc = dagi_db_rows_next(rows, err)) == 1)
        r->pending = dagi_db_col_int(rows, 0);
    dagi_db_rows_free(rows);
    return rc < 0 ? rc : 0;
}

static void count_done(void *ud, int rc, const struct dagi_error *err)
{
    struct run *r = ud;
    r->busy = false;
    if (rc)
        fprintf(stderr, "count: %s\n", err ? err->message : dagi_strerror(rc));
    else if (r->pending == 0 && !r->t_done) {
        r->t_done = dagi_clock_mono_ns();
        event_base_loopbreak(G.base);
    }
}

static void *writer_main(void *arg)
{
    struct run *r = arg;
    struct dagi_db_conn *conn;
    struct dagi_error err = {0};
    if (dagi_db_acquire(r->db, &conn, &err))
        die("writer: %s", err.message);
    int64_t t0 = dagi_clock_mono_ns();
    for (int i = 0; i < r->n; i++) {
        int64_t at = t0 + i * r->period_ns; /* absolute: a slow commit is caught up */
        struct timespec ts = {at / SEC, at % SEC};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {
        }
        if (dagi_db_begin(conn, true, &err) || add_event(conn, i, &err) ||
            dagi_db_commit(conn, &err))
            die("writer: %s", err.message);
        r->commit_ns[i] = dagi_clock_mono_ns();
    }
    dagi_db_release(conn);
    r->writer_end_ns = dagi_clock_mono_ns();
    __atomic_store_n(&r->writer_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* Every 20 ms: a throughput run polls the pending count; a latency run waits
 * for every arrival (giving up 10 s after the last commit). */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct run *r = arg;
    int64_t now = dagi_clock_mono_ns();
    if (r->n &&
        (__atomic_load_n(&r->arrived, __ATOMIC_ACQUIRE) == r->n ||
         (__atomic_load_n(&r->writer_done, __ATOMIC_ACQUIRE) && now - r->writer_end_ns > 10 * SEC)))
        event_base_loopbreak(G.base);
    if (!r->n && now - r->t0 > 600 * SEC)
        die("outbox not drained after 600 s (%lld pending)", (long long)r->pending);
    if (!r->n && !r->busy && !r->t_done)
        r->busy = dagi_db_run(r->db, G.pool, count_work, count_done, r) == 0;
}

/* One run: prepare off the loop; start the relay (and the writer); turn the
 * loop until on_tick or count_done breaks it; stop; tear down off the loop. */
static void drive(struct run *r)
{
    off_loop(prepare_main, r);
    /* db, js, pool, holder, batch 500, poll 10 ms, lease 10 s, retention, metrics */
    struct dagi_outbox_relay_opts o = {r->db, G.js, G.pool, "bench/1", 500, 10, 10000, 0, NULL};
    struct dagi_outbox_relay *relay;
    struct dagi_error err = {0};
    struct event *tick = event_new(G.base, -1, EV_PERSIST, on_tick, r);
    struct timeval every = {0, 20000};
    pthread_t writer;
    r->t0 = dagi_clock_mono_ns();
    if (dagi_outbox_relay_start(G.base, &o, &relay, &err))
        die("relay: %s", err.message);
    if (r->n) {
        spin(200); /* the relay holds the lease and polls */
        if (pthread_create(&writer, NULL, writer_main, r) != 0)
            die("pthread_create failed");
    }
    event_add(tick, &every);
    event_base_dispatch(G.base);
    event_free(tick);
    if (r->n)
        pthread_join(writer, NULL);
    /* The relay frees itself once its jobs and acks are back: turn the loop
     * until the pool is idle, and a little more for acks on their way. */
    dagi_outbox_relay_stop(relay);
    do
        spin(20);
    while (dagi_pool_pending(G.pool));
    spin(100);
    off_loop(finish_main, r);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double throughput_run(enum backend be, int no, int events)
{
    struct run r = {.be = be, .no = no, .events = events, .pending = -1};
    drive(&r);
    double secs = (double)(r.t_done - r.t0) / SEC, rate = events / secs;
    printf("  %-10s run %d: %d events in %.3f s = %6.0f events/s (stream holds %llu)\n",
           backend_name[be], no, events, secs, rate, (unsigned long long)r.stream_msgs);
    if (r.stream_msgs != (uint64_t)events)
        die("the stream holds %llu messages, not %d", (unsigned long long)r.stream_msgs, events);
    return rate;
}

static void latency_run(enum backend be, int no, int n, int rate, double out[3])
{
    struct run r = {.be = be, .no = no, .n = n, .period_ns = SEC / rate};
    r.commit_ns = calloc((size_t)n, sizeof(int64_t));
    r.arrive_ns = calloc((size_t)n, sizeof(int64_t));
    double *ms = calloc((size_t)n, sizeof(double));
    drive(&r);
    if (r.arrived != n)
        die("latency: %d of %d events never arrived", n - r.arrived, n);
    for (int i = 0; i < n; i++)
        ms[i] = (double)(r.arrive_ns[i] - r.commit_ns[i]) / 1e6;
    qsort(ms, (size_t)n, sizeof(double), cmp_double);
    out[0] = ms[(n + 1) / 2 - 1], out[1] = ms[(int)ceil(0.99 * n) - 1], out[2] = ms[n - 1];
    double achieved = (n - 1) / ((double)(r.commit_ns[n - 1] - r.commit_ns[0]) / SEC);
    printf("  %-10s run %d: %d commits at %.0f/s: p50 %6.2f  p99 %6.2f  max %7.2f ms\n",
           backend_name[be], no, n, achieved, out[0], out[1], out[2]);
    free(ms);
    free(r.commit_ns);
    free(r.arrive_ns);
}

static void on_provisioned(void *ud, int err, const char *message)
{
    if (err)
        die("provision: %s", message);
    *(bool *)ud = true;
    event_base_loopbreak(G.base);
}

int main(int argc, char **argv)
{
    int events = argc > 1 ? atoi(argv[1]) : 50000;
    int runs = argc > 2 ? atoi(argv[2]) : 3;
    int secs = argc > 3 ? atoi(argv[3]) : 10;
    int rate = argc > 4 ? atoi(argv[4]) : 1000;
    if (events <= 0 || runs <= 0 || runs > MAX_RUNS || secs <= 0 || rate <= 0 || rate > 100000)
        return 2;
    evthread_use_pthreads();
    dagi_log_setup(DAGI_LOG_WARN, 2);
    memset(G.pad, 'x', PAD);

    /* Before the loop exists.  The servers start from this thread, as their
     * PR_SET_PDEATHSIG fires when the thread that forked them ends. */
    const char *url = getenv("DAGI_BENCH_NATS_URL");
    if (!url && nats_fixture_start(&G.nats, NULL, NULL) != 0)
        die("cannot start nats-server");
    url = url ? url : G.nats.url;
    G.have_pg = pg_fixture_available();
    if (G.have_pg && pg_fixture_start(&G.pg) != 0)
        die("cannot start PostgreSQL");
    if (natsConnection_ConnectTo(&G.obs, url) != NATS_OK ||
        natsConnection_JetStream(&G.ojs, G.obs, NULL) != NATS_OK)
        die("observer connection: %s", nats_GetLastError(NULL));
    G.base = event_base_new();
    G.loopq = dagi_loopq_new(G.base);
    G.pool = dagi_pool_new(G.base, 4, 256);
    struct dagi_error err = {0};
    struct dagi_bus_opts bo = {.url = url, .name = "outbox-bench", .loopq = G.loopq};
    struct dagi_js_opts jo = {.loopq = G.loopq, .pool = G.pool};
    if (dagi_bus_new(G.base, &bo, &G.bus, &err) || dagi_js_new(G.bus, &jo, &G.js, &err))
        die("bus: %s", err.message);
    bool provisioned = false;
    dagi_js_provision(G.js, on_provisioned, &provisioned);
    while (!provisioned)
        event_base_dispatch(G.base);
    if (!G.have_pg)
        printf("PostgreSQL is not installed: SQLite only\n");

    int nb = G.have_pg ? 2 : 1;
    double tput[2][MAX_RUNS], p50[2][MAX_RUNS], p99[2][MAX_RUNS], pmax[2][MAX_RUNS], o[3];
    printf("1. relay throughput: %d pre-filled events until none is pending\n", events);
    for (int b = 0; b < nb; b++)
        for (int i = 0; i < runs; i++)
            tput[b][i] = throughput_run((enum backend)b, i + 1, events);
    printf("2. commit -> subscriber latency: %d events/s for %d s, one per transaction\n", rate,
           secs);
    for (int b = 0; b < nb; b++)
        for (int i = 0; i < runs; i++) {
            latency_run((enum backend)b, i + 1, rate * secs, rate, o);
            p50[b][i] = o[0], p99[b][i] = o[1], pmax[b][i] = o[2];
        }

    printf("summary over %d runs (medians; max = the worst run's)\n", runs);
    for (int b = 0; b < nb; b++) {
        double t = median(tput[b], runs);
        printf("  throughput %-10s %6.0f events/s   %s\n", backend_name[b], t,
               b == PG      ? "(reported, no target)"
               : t >= 20000 ? "target >= 20000: met"
                            : "target >= 20000: MISSED");
    }
    for (int b = 0; b < nb; b++) {
        double q99 = median(p99[b], runs), worst = 0;
        for (int i = 0; i < runs; i++)
            worst = fmax(worst, pmax[b][i]);
        printf("  latency    %-10s p50 %6.2f  p99 %6.2f  max %7.2f ms   target p99 <= 50 ms: %s\n",
               backend_name[b], median(p50[b], runs), q99, worst, q99 <= 50 ? "met" : "MISSED");
    }

    dagi_js_free(G.js);
    dagi_bus_free(G.bus);
    dagi_pool_free(G.pool);
    dagi_loopq_free(G.loopq);
    event_base_free(G.base);
    jsCtx_Destroy(G.ojs);
    natsConnection_Destroy(G.obs);
    if (G.have_pg)
        pg_fixture_stop(&G.pg);
    if (G.nats.pid)
        nats_fixture_stop(&G.nats);
    nats_CloseAndWait(0);
    return 0;
}
