/* Bus micro-benchmark: what the wrapper costs over plain libnats.
 *
 *   bus_bench [round_trips] [runs]      (defaults 20000 and 5)
 *
 * Uses $NATS_URL, or starts its own nats-server (tests/unit/nats_fixture.h).
 * Each figure is the median of `runs` runs, with a 512-byte payload:
 *   - sequential round trips: raw natsConnection_Request (the thread-safe
 *     sync API, own connection, no event loop) against the dagi responder
 *     and against a raw responder; dagi_bus_request over NATS; and
 *     dagi_bus_request in-process;
 *   - a streamed reply of 1,000 chunks: dagi (stream_chunk x 1000 +
 *     stream_end, received through on_chunk) against a raw responder doing
 *     1,000 publishes + a final to a raw synchronous inbox subscription.
 * The dagi responder runs on its own thread and event loop, as another role
 * in the process would; the dagi caller runs on the main thread's loop. */
#include <event2/event.h>
#include <event2/thread.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/loopq.h"
#include "core/metrics.h"
#include "nats_fixture.h"

#define PAYLOAD 512
#define CHUNKS 1000
#define STREAMS_PER_RUN 50

static char payload[PAYLOAD];

/* --- the dagi responder, on its own thread --- */

static void on_echo(struct dagi_bus_req *req, const struct dagi_bus_msg *msg, void *ud)
{
    (void)ud;
    dagi_bus_reply(req, msg->data, msg->len);
}

static void on_stream(struct dagi_bus_req *req, const struct dagi_bus_msg *msg, void *ud)
{
    (void)msg, (void)ud;
    for (int i = 0; i < CHUNKS; i++)
        dagi_bus_stream_chunk(req, payload, PAYLOAD);
    dagi_bus_stream_end(req, "{}", 2);
}

struct side {
    struct event_base *base;
    struct dagi_loopq *loopq;
    struct dagi_bus *bus;
    pthread_t thread;
};

static void side_open(struct side *s, const char *url, bool inprocess)
{
    s->base = event_base_new();
    s->loopq = dagi_loopq_new(s->base);
    struct dagi_bus_opts o = {
        .url = url, .name = "bench", .inprocess = inprocess, .loopq = s->loopq};
    struct dagi_error err;
    if (dagi_bus_new(s->base, &o, &s->bus, &err)) {
        fprintf(stderr, "bus: %s\n", err.message);
        exit(1);
    }
}

static void side_close(struct side *s)
{
    dagi_bus_free(s->bus);
    dagi_loopq_free(s->loopq);
    event_base_free(s->base);
}

static void *run_loop(void *arg)
{
    struct side *s = arg;
    event_base_dispatch(s->base);
    return NULL;
}

/* --- raw libnats responders (library threads) --- */

static void on_raw_echo(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *ud)
{
    (void)sub, (void)ud;
    natsConnection_Publish(nc, natsMsg_GetReply(msg), natsMsg_GetData(msg),
                           natsMsg_GetDataLength(msg));
    natsMsg_Destroy(msg);
}

static void on_raw_stream(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *ud)
{
    (void)sub, (void)ud;
    const char *reply = natsMsg_GetReply(msg);
    for (int i = 0; i < CHUNKS; i++)
        natsConnection_Publish(nc, reply, payload, PAYLOAD);
    natsConnection_Publish(nc, reply, "{}", 2);
    natsMsg_Destroy(msg);
}

/* --- measurements --- */

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

/* us per raw round trip */
static double raw_requests(natsConnection *nc, const char *subject, int n)
{
    int64_t start = dagi_clock_mono_ns();
    for (int i = 0; i < n; i++) {
        natsMsg *reply = NULL;
        natsStatus s = natsConnection_Request(&reply, nc, subject, payload, PAYLOAD, 5000);
        if (s != NATS_OK) {
            fprintf(stderr, "raw request: %s\n", natsStatus_GetText(s));
            exit(1);
        }
        natsMsg_Destroy(reply);
    }
    return (double)(dagi_clock_mono_ns() - start) / 1e3 / n;
}

struct seq {
    struct dagi_bus *bus;
    struct event_base *base;
    const char *subject;
    int left;
    uint64_t chunks;
};

static void on_seq_done(struct dagi_bus_call *call, int err, const void *data, size_t len,
                        const char *message, void *ud);

static void seq_next(struct seq *q, bool stream);

static void on_seq_chunk(struct dagi_bus_call *call, uint64_t seq, const void *data, size_t len,
                         void *ud)
{
    (void)call, (void)seq, (void)data, (void)len;
    ((struct seq *)ud)->chunks++;
}

static void on_seq_done(struct dagi_bus_call *call, int err, const void *data, size_t len,
                        const char *message, void *ud)
{
    (void)call, (void)data, (void)len;
    struct seq *q = ud;
    if (err) {
        fprintf(stderr, "dagi request: %s\n", message);
        exit(1);
    }
    if (--q->left > 0)
        seq_next(q, strstr(q->subject, "stream") != NULL);
    else
        event_base_loopbreak(q->base);
}

static void seq_next(struct seq *q, bool stream)
{
    struct dagi_bus_call_opts o = {
        .subject = q->subject,
        .data = payload,
        .len = PAYLOAD,
        .timeout_ms = 5000,
        .on_chunk = stream ? on_seq_chunk : NULL,
        .on_done = on_seq_done,
        .ud = q,
    };
    struct dagi_bus_call *call;
    if (dagi_bus_request(q->bus, &o, &call)) {
        fprintf(stderr, "dagi_bus_request failed\n");
        exit(1);
    }
}

/* us per dagi round trip (or per stream), sequential on the caller's loop */
static double dagi_requests(struct side *caller, const char *subject, int n)
{
    struct seq q = {.bus = caller->bus, .base = caller->base, .subject = subject, .left = n};
    int64_t start = dagi_clock_mono_ns();
    seq_next(&q, strstr(subject, "stream") != NULL);
    event_base_dispatch(caller->base);
    if (strstr(subject, "stream") && q.chunks != (uint64_t)n * CHUNKS) {
        fprintf(stderr, "stream lost chunks: %llu\n", (unsigned long long)q.chunks);
        exit(1);
    }
    return (double)(dagi_clock_mono_ns() - start) / 1e3 / n;
}

/* us per raw stream of CHUNKS + final */
static double raw_streams(natsConnection *nc, int n)
{
    int64_t start = dagi_clock_mono_ns();
    for (int i = 0; i < n; i++) {
        natsInbox *inbox = NULL;
        natsSubscription *sub = NULL;
        natsInbox_Create(&inbox);
        natsConnection_SubscribeSync(&sub, nc, inbox);
        natsConnection_PublishRequest(nc, "bench.rawstream", inbox, payload, PAYLOAD);
        for (int c = 0; c <= CHUNKS; c++) {
            natsMsg *m = NULL;
            if (natsSubscription_NextMsg(&m, sub, 5000) != NATS_OK) {
                fprintf(stderr, "raw stream: lost a message\n");
                exit(1);
            }
            natsMsg_Destroy(m);
        }
        natsSubscription_Unsubscribe(sub);
        natsSubscription_Destroy(sub);
        natsInbox_Destroy(inbox);
    }
    return (double)(dagi_clock_mono_ns() - start) / 1e3 / n;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 20000;
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    if (n <= 0 || runs <= 0 || runs > 64)
        return 2;
    evthread_use_pthreads();
    dagi_log_setup(DAGI_LOG_WARN, 2);
    memset(payload, 'x', sizeof(payload));

    struct nats_fixture fx = {0};
    const char *url = getenv("NATS_URL");
    if (!url) {
        if (nats_fixture_start(&fx, NULL, NULL) != 0) {
            fprintf(stderr, "could not start nats-server\n");
            return 1;
        }
        url = fx.url;
    }

    /* Responders: dagi on its own loop thread, raw on libnats threads. */
    struct side responder, caller, local;
    side_open(&responder, url, true);
    dagi_bus_serve(responder.bus, "bench.echo", on_echo, NULL);
    dagi_bus_serve(responder.bus, "bench.stream", on_stream, NULL);
    pthread_create(&responder.thread, NULL, run_loop, &responder);
    /* Raw connections with their own threads; sendAsap so the raw responder
     * answers at once rather than through the flusher thread's batching. */
    natsConnection *raw_server = NULL, *raw_streamer = NULL, *raw_client = NULL;
    natsSubscription *raw_echo = NULL, *raw_stream = NULL;
    natsOptions *ro = NULL;
    natsOptions_Create(&ro);
    natsOptions_SetURL(ro, url);
    natsOptions_SetSendAsap(ro, true);
    /* The raw streamer keeps the default buffering (its flusher thread
     * batches): with sendAsap every chunk would be its own write(2). */
    if (natsConnection_Connect(&raw_server, ro) != NATS_OK ||
        natsConnection_ConnectTo(&raw_streamer, url) != NATS_OK ||
        natsConnection_ConnectTo(&raw_client, url) != NATS_OK) {
        fprintf(stderr, "raw connect failed\n");
        return 1;
    }
    natsConnection_Subscribe(&raw_echo, raw_server, "bench.rawecho", on_raw_echo, NULL);
    natsConnection_Subscribe(&raw_stream, raw_streamer, "bench.rawstream", on_raw_stream, NULL);
    natsConnection_Flush(raw_server);
    natsConnection_Flush(raw_streamer);
    natsOptions_Destroy(ro);
    nats_fixture_sleep_ms(100); /* the dagi subscriptions reach the server */

    side_open(&caller, url, false);
    side_open(&local, NULL, true);
    dagi_bus_serve(local.bus, "bench.echo", on_echo, NULL);

    /* Warm up every path once. */
    raw_requests(raw_client, "bench.echo", 200);
    raw_requests(raw_client, "bench.rawecho", 200);
    dagi_requests(&caller, "bench.echo", 200);
    dagi_requests(&local, "bench.echo", 200);

    double raw_dagi[64], raw_raw[64], dagi_nats[64], dagi_local[64], s_raw[64], s_dagi[64];
    for (int r = 0; r < runs; r++) {
        raw_dagi[r] = raw_requests(raw_client, "bench.echo", n);
        raw_raw[r] = raw_requests(raw_client, "bench.rawecho", n);
        dagi_nats[r] = dagi_requests(&caller, "bench.echo", n);
        dagi_local[r] = dagi_requests(&local, "bench.echo", n);
        s_raw[r] = raw_streams(raw_client, STREAMS_PER_RUN);
        s_dagi[r] = dagi_requests(&caller, "bench.stream", STREAMS_PER_RUN);
    }
    double a = median(raw_dagi, runs), b = median(raw_raw, runs), c = median(dagi_nats, runs),
           d = median(dagi_local, runs), e = median(s_raw, runs), f = median(s_dagi, runs);
    printf("bus_bench: %d-byte payload, %d sequential round trips, median of %d runs\n", PAYLOAD, n,
           runs);
    printf("  raw natsConnection_Request -> dagi responder  %8.2f us/op\n", a);
    printf("  raw natsConnection_Request -> raw responder   %8.2f us/op\n", b);
    printf("  dagi_bus_request over NATS -> dagi responder  %8.2f us/op   speed vs raw: %.2fx\n", c,
           a / c);
    printf("  dagi_bus_request in-process                   %8.2f us/op\n", d);
    printf("stream of %d x %d-byte chunks + final, %d streams per run\n", CHUNKS, PAYLOAD,
           STREAMS_PER_RUN);
    printf("  raw publishes -> sync subscriber              %8.1f us/stream\n", e);
    printf("  dagi stream_chunk -> on_chunk                 %8.1f us/stream   overhead %.2f "
           "us/chunk\n",
           f, (f - e) / CHUNKS);

    event_base_loopexit(responder.base, NULL);
    pthread_join(responder.thread, NULL);
    side_close(&caller);
    side_close(&local);
    side_close(&responder);
    natsSubscription_Destroy(raw_echo);
    natsSubscription_Destroy(raw_stream);
    natsConnection_Destroy(raw_server);
    natsConnection_Destroy(raw_streamer);
    natsConnection_Destroy(raw_client);
    if (fx.pid)
        nats_fixture_stop(&fx);
    nats_CloseAndWait(0);
    return 0;
}
