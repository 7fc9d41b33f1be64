/* JetStream publish throughput: asynchronous, pipelined publishes of 512-byte
 * payloads to a file-storage stream (DAGI_EVENTS), each acknowledged by the
 * server; msgs/s = messages / (first publish .. last ack).  Median of 5 runs
 * of 50,000 by default.
 *
 * Goes through the production path: the bus's connection with the libevent
 * adapter (socket I/O on our loop), dagi_js_publish from the loop, acks back
 * through the loopq.  Starts its own nats-server (JetStream, store in /tmp)
 * unless DAGI_BENCH_NATS_URL is set.
 *
 *   js_bench [messages [runs]]
 */
#include <event2/event.h>
#include <event2/thread.h>
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "bus/js.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/loopq.h"
#include "core/pool.h"
#include "../tests/unit/nats_fixture.h"

#define PAYLOAD 512
#define CHUNK 1000 /* publishes per loop turn, so the loop keeps reading acks */

struct run {
    struct event_base *base;
    struct dagi_js *js;
    struct event *tick;
    int total, queued, acked, failed;
    int64_t t0, t1;
    char payload[PAYLOAD];
};

static void on_acked(void *ud, int err, uint64_t seq, bool duplicate)
{
    struct run *r = ud;
    (void)seq, (void)duplicate;
    if (err)
        r->failed++;
    if (++r->acked == r->total) {
        r->t1 = dagi_clock_mono_ns();
        event_base_loopbreak(r->base);
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct run *r = arg;
    (void)fd, (void)what;
    for (int i = 0; i < CHUNK && r->queued < r->total; i++) {
        int rc = dagi_js_publish(r->js, "ops.bench.js", r->payload, sizeof(r->payload), NULL, NULL,
                                 0, on_acked, r);
        if (rc == DAGI_EAGAIN)
            break; /* too many in flight: next turn */
        if (rc) {
            fprintf(stderr, "publish: %s\n", dagi_strerror(rc));
            exit(1);
        }
        r->queued++;
    }
    if (r->queued < r->total)
        event_active(r->tick, 0, 0);
}

struct provision {
    struct event_base *base;
    int err;
};

static void on_provisioned(void *ud, int err, const char *message)
{
    struct provision *p = ud;
    p->err = err;
    if (err)
        fprintf(stderr, "provision: %s\n", message);
    event_base_loopbreak(p->base);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int total = argc > 1 ? atoi(argv[1]) : 50000;
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    if (total <= 0 || runs <= 0 || runs > 100)
        return 2;
    evthread_use_pthreads();
    dagi_log_setup(DAGI_LOG_WARN, 2);

    struct nats_fixture nats = {0};
    const char *url = getenv("DAGI_BENCH_NATS_URL");
    if (!url) {
        if (nats_fixture_start(&nats, NULL, NULL) != 0) {
            fprintf(stderr, "cannot start nats-server\n");
            return 1;
        }
        url = nats.url;
    }
    struct event_base *base = event_base_new();
    struct dagi_loopq *loopq = dagi_loopq_new(base);
    struct dagi_pool *pool = dagi_pool_new(base, 1, 16);
    struct dagi_error err = {0};
    struct dagi_bus *bus = NULL;
    struct dagi_bus_opts bo = {.url = url, .name = "js-bench", .loopq = loopq};
    if (dagi_bus_new(base, &bo, &bus, &err) != 0) {
        fprintf(stderr, "bus: %s\n", err.message);
        return 1;
    }
    struct dagi_js *js = NULL;
    struct dagi_js_opts jo = {.loopq = loopq, .pool = pool};
    if (dagi_js_new(bus, &jo, &js, &err) != 0) {
        fprintf(stderr, "js: %s\n", err.message);
        return 1;
    }
    /* with the adapter, replies are read by the loop: provision off it */
    struct provision p = {.base = base, .err = -1};
    dagi_js_provision(js, on_provisioned, &p);
    event_base_dispatch(base);
    if (p.err)
        return 1;

    double *rates = calloc((size_t)runs, sizeof(double));
    for (int i = 0; i < runs; i++) {
        struct run r = {.base = base, .js = js, .total = total};
        memset(r.payload, 'x', sizeof(r.payload));
        r.tick = event_new(base, -1, 0, on_tick, &r);
        r.t0 = dagi_clock_mono_ns();
        event_active(r.tick, 0, 0);
        event_base_dispatch(base);
        event_free(r.tick);
        double secs = (double)(r.t1 - r.t0) / 1e9;
        rates[i] = total / secs;
        printf("run %d: %d msgs in %.3f s = %.0f msgs/s (%d failed)\n", i + 1, total, secs,
               rates[i], r.failed);
        if (r.failed)
            return 1;
    }
    qsort(rates, (size_t)runs, sizeof(double), cmp_double);
    printf("median: %.0f msgs/s (%d x %d msgs of %d bytes, file storage, acked)\n", rates[runs / 2],
           runs, total, PAYLOAD);
    free(rates);

    dagi_js_free(js);
    dagi_bus_free(bus);
    dagi_pool_free(pool);
    dagi_loopq_free(loopq);
    event_base_free(base);
    if (nats.pid)
        nats_fixture_stop(&nats);
    nats_CloseAndWait(0);
    return 0;
}
