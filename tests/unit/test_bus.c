/* The bus: request/reply, streams, cancellation, deadlines and errors,
 * against a real nats-server.  Every request/reply case runs twice:
 *   inproc  one bus (connected to NATS too) with inprocess=true serves and
 *           calls, so the request must never leave the process;
 *   nats    the responder on one bus, the caller on a second bus with
 *           inprocess=false, both on one event loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <nats/nats.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/loopq.h"
#include "core/metrics.h"
#include "nats_fixture.h"

static struct nats_fixture nats;

enum path { INPROC, NATS };

struct env {
    enum path path;
    struct event_base *base;
    struct dagi_loopq *loopq;
    struct dagi_metrics *metrics;
    struct dagi_bus *server, *client, *extra;
};

static struct dagi_bus *bus_open(struct env *e, const char *url, bool inprocess, size_t cap)
{
    struct dagi_bus_opts o = {
        .url = url,
        .name = "test",
        .inprocess = inprocess,
        .max_payload = cap,
        .loopq = e->loopq,
        .metrics = e->metrics,
    };
    struct dagi_error err = {0};
    struct dagi_bus *bus = NULL;
    int rc = dagi_bus_new(e->base, &o, &bus, &err);
    if (rc)
        fail_msg("dagi_bus_new: %s", err.message);
    return bus;
}

static void env_open(struct env *e, enum path path, size_t cap)
{
    memset(e, 0, sizeof(*e));
    e->path = path;
    e->base = event_base_new();
    e->loopq = dagi_loopq_new(e->base);
    e->metrics = dagi_metrics_new(0);
    e->server = bus_open(e, nats.url, true, cap);
    e->client = path == INPROC ? e->server : bus_open(e, nats.url, false, cap);
}

static void env_close(struct env *e)
{
    if (e->client != e->server)
        dagi_bus_free(e->client);
    dagi_bus_free(e->server);
    dagi_bus_free(e->extra);
    dagi_loopq_free(e->loopq);
    event_base_free(e->base);
    dagi_metrics_free(e->metrics);
}

/* Runs the loop until *flag is set or ms pass (then fails). */
static void run_until(struct env *e, const bool *flag, int ms)
{
    int64_t end = dagi_clock_mono_ns() + (int64_t)ms * 1000000;
    struct timeval tick = {0, 5000};
    while (!*flag) {
        event_base_loopexit(e->base, &tick);
        event_base_dispatch(e->base);
        if (dagi_clock_mono_ns() > end)
            fail_msg("timed out after %d ms", ms);
    }
}

/* Runs the loop for ms. */
static void run_for(struct env *e, int ms)
{
    bool never = false;
    int64_t end = dagi_clock_mono_ns() + (int64_t)ms * 1000000;
    struct timeval tick = {0, 5000};
    while (!never && dagi_clock_mono_ns() < end) {
        event_base_loopexit(e->base, &tick);
        event_base_dispatch(e->base);
    }
}

/* --- responders --- */

struct responder {
    struct env *env;
    int requests, produced, cancels;
    int total, batch; /* streams: chunks to send, and per loop turn */
    bool stall;       /* stream: stop after 3 chunks */
    char trace[128];
    int64_t deadline_ms;
    struct dagi_bus_req *req;
    struct event *tick;
    size_t reply_size; /* echo: reply with this many bytes instead */
};

static void on_echo(struct dagi_bus_req *req, const struct dagi_bus_msg *msg, void *ud)
{
    struct responder *r = ud;
    r->requests++;
    snprintf(r->trace, sizeof(r->trace), "%s", msg->trace_id);
    r->deadline_ms = msg->deadline_ms;
    if (msg->len == 5 && memcmp(msg->data, "error", 5) == 0) {
        assert_int_equal(dagi_bus_reply_error(req, DAGI_EPERM, "not for you, %s", "caller"), 0);
    } else if (r->reply_size) {
        char *big = calloc(1, r->reply_size);
        assert_int_equal(dagi_bus_reply(req, big, r->reply_size), DAGI_ETOOBIG);
        free(big);
    } else {
        assert_int_equal(dagi_bus_reply(req, msg->data, msg->len), 0);
    }
}

static void on_responder_cancel(void *ud)
{
    struct responder *r = ud;
    r->cancels++;
    if (r->tick) {
        event_free(r->tick);
        r->tick = NULL;
    }
    r->req = NULL;
}

static void on_slow(struct dagi_bus_req *req, const struct dagi_bus_msg *msg, void *ud)
{
    (void)msg;
    struct responder *r = ud;
    r->requests++;
    dagi_bus_req_on_cancel(req, on_responder_cancel, r);
}

static void produce(struct responder *r, int n)
{
    char chunk[32];
    for (int i = 0; i < n && r->produced < r->total; i++) {
        int len = snprintf(chunk, sizeof(chunk), "c%d", r->produced);
        if (dagi_bus_stream_chunk(r->req, chunk, (size_t)len) != 0)
            return;
        r->produced++;
    }
}

static void on_stream_tick(evutil_socket_t fd, short what, void *ud)
{
    (void)fd, (void)what;
    struct responder *r = ud;
    produce(r, r->batch);
    if (r->produced < r->total) {
        struct timeval tv = {0, 1000};
        evtimer_add(r->tick, &tv);
        return;
    }
    event_free(r->tick);
    r->tick = NULL;
    assert_int_equal(dagi_bus_stream_end(r->req, "done", 4), 0);
    r->req = NULL;
}

static void on_stream(struct dagi_bus_req *req, const struct dagi_bus_msg *msg, void *ud)
{
    struct responder *r = ud;
    r->requests++;
    assert_true(msg->stream);
    r->req = req;
    dagi_bus_req_on_cancel(req, on_responder_cancel, r);
    if (r->stall) {
        produce(r, 3); /* and never more */
        return;
    }
    if (!r->batch) {
        /* All at once from inside the handler: must not recurse into the
         * caller (in-process) and must arrive in order. */
        produce(r, r->total);
        assert_int_equal(dagi_bus_stream_end(req, "done", 4), 0);
        r->req = NULL;
        return;
    }
    r->tick = evtimer_new(r->env->base, on_stream_tick, r);
    struct timeval tv = {0, 0};
    evtimer_add(r->tick, &tv);
}

/* --- callers --- */

struct caller {
    bool done;
    int err;
    char message[256];
    char data[256];
    size_t len;
    uint64_t chunks;
    bool in_order;
    uint64_t cancel_after;
    bool cancelled;
    int64_t done_ns;
    struct dagi_bus_call *call;
};

static void on_chunk(struct dagi_bus_call *call, uint64_t seq, const void *data, size_t len,
                     void *ud)
{
    struct caller *c = ud;
    char want[32];
    int n = snprintf(want, sizeof(want), "c%llu", (unsigned long long)c->chunks);
    if (seq != c->chunks || len != (size_t)n || memcmp(data, want, len) != 0)
        c->in_order = false;
    c->chunks++;
    if (c->cancel_after && c->chunks == c->cancel_after) {
        dagi_bus_call_cancel(call);
        c->cancelled = true;
        c->done = true;
    }
}

static void on_done(struct dagi_bus_call *call, int err, const void *data, size_t len,
                    const char *message, void *ud)
{
    (void)call;
    struct caller *c = ud;
    assert_false(c->done);
    c->done = true;
    c->done_ns = dagi_clock_mono_ns();
    c->err = err;
    if (message)
        snprintf(c->message, sizeof(c->message), "%s", message);
    c->len = len < sizeof(c->data) ? len : sizeof(c->data) - 1;
    if (len)
        memcpy(c->data, data, c->len);
}

static void call(struct env *e, struct dagi_bus *bus, struct caller *c, const char *subject,
                 const void *data, size_t len, unsigned timeout_ms, bool stream)
{
    memset(c, 0, sizeof(*c));
    c->in_order = true;
    struct dagi_bus_call_opts o = {
        .subject = subject,
        .data = data,
        .len = len,
        .trace_id = "trace-abc",
        .timeout_ms = timeout_ms,
        .on_chunk = stream ? on_chunk : NULL,
        .on_done = on_done,
        .ud = c,
    };
    assert_int_equal(dagi_bus_request(bus, &o, &c->call), 0);
    (void)e;
}

/* The request went the way the case says (the path label of the metric). */
static void assert_path(struct env *e, const char *subject, const char *path, const char *result)
{
    struct dagi_buf out;
    dagi_buf_init(&out, 1 << 20);
    assert_int_equal(dagi_metrics_render(e->metrics, &out), 0);
    char want[256];
    snprintf(want, sizeof(want),
             "dagi_bus_requests_total{subject=\"%s\",path=\"%s\",result=\"%s\"} 1", subject,
             path ? path : e->path == INPROC ? "inproc" : "nats", result);
    if (!strstr(dagi_buf_str(&out), want))
        fail_msg("missing %s in\n%s", want, dagi_buf_str(&out));
    dagi_buf_release(&out);
}

/* --- cases --- */

static void test_unary(enum path path)
{
    struct env e;
    env_open(&e, path, 0);
    struct responder r = {.env = &e};
    assert_int_equal(dagi_bus_serve(e.server, "dagi.test.echo", on_echo, &r), 0);
    assert_int_equal(dagi_bus_serve(e.server, "dagi.test.echo", on_echo, &r), DAGI_EEXIST);
    struct caller c;
    for (int i = 0; i < 3; i++) {
        call(&e, e.client, &c, "dagi.test.echo", "hello", 5, 2000, false);
        assert_false(c.done); /* never from inside dagi_bus_request */
        run_until(&e, &c.done, 3000);
        assert_int_equal(c.err, 0);
        assert_int_equal(c.len, 5);
        assert_memory_equal(c.data, "hello", 5);
    }
    assert_int_equal(r.requests, 3);
    assert_true(r.deadline_ms > dagi_clock_now_ms());
    /* An empty request and reply. */
    call(&e, e.client, &c, "dagi.test.echo", NULL, 0, 2000, false);
    run_until(&e, &c.done, 3000);
    assert_int_equal(c.err, 0);
    assert_int_equal(c.len, 0);
    struct dagi_buf out;
    dagi_buf_init(&out, 1 << 20);
    dagi_metrics_render(e.metrics, &out);
    assert_non_null(strstr(dagi_buf_str(&out), e.path == INPROC ? "path=\"inproc\",result=\"ok\"} 4"
                                                                : "path=\"nats\",result=\"ok\"} 4"));
    assert_non_null(strstr(dagi_buf_str(&out), "dagi_bus_connected 1"));
    dagi_buf_release(&out);
    assert_true(dagi_bus_connected(e.client));
    assert_non_null(dagi_bus_nats(e.client));
    env_close(&e);
}

static void test_no_responder(enum path path)
{
    struct env e;
    env_open(&e, path, 0);
    struct caller c;
    /* inproc: no local responder, so the bus asks NATS, which has none. */
    call(&e, e.client, &c, "dagi.test.nobody", "x", 1, 5000, false);
    int64_t start = dagi_clock_mono_ns();
    run_until(&e, &c.done, 3000);
    assert_int_equal(c.err, DAGI_EUNAVAIL);
    assert_true(c.done_ns - start < 1000LL * 1000000);
    assert_non_null(strstr(c.message, "dagi.test.nobody"));
    assert_path(&e, "dagi.test.nobody", "nats", "unavailable");

    /* No NATS at all and nobody local: unavailable on the next loop turn. */
    e.extra = bus_open(&e, NULL, true, 0);
    assert_true(dagi_bus_connected(e.extra));
    assert_null(dagi_bus_nats(e.extra));
    call(&e, e.extra, &c, "dagi.test.nobody", "x", 1, 5000, false);
    assert_false(c.done);
    start = dagi_clock_mono_ns();
    run_until(&e, &c.done, 1000);
    assert_int_equal(c.err, DAGI_EUNAVAIL);
    assert_true(c.done_ns - start < 100LL * 1000000);
    env_close(&e);
}

static void test_deadline(enum path path)
{
    struct env e;
    env_open(&e, path, 0);
    struct responder r = {.env = &e};
    assert_int_equal(dagi_bus_serve(e.server, "dagi.test.slow", on_slow, &r), 0);
    struct caller c;
    int64_t start = dagi_clock_mono_ns();
    call(&e, e.client, &c, "dagi.test.slow", "x", 1, 200, false);
    run_until(&e, &c.done, 3000);
    int64_t elapsed_ms = (c.done_ns - start) / 1000000;
    assert_int_equal(c.err, DAGI_ETIMEDOUT);
    assert_true(elapsed_ms >= 195 && elapsed_ms < 1000);
    assert_non_null(strstr(c.message, "dagi.test.slow"));
    /* The responder hears of it (the caller's cancel or its own deadline). */
    bool heard = false;
    for (int i = 0; i < 100 && !heard; i++) {
        run_for(&e, 10);
        heard = r.cancels == 1;
    }
    assert_int_equal(r.cancels, 1);
    assert_path(&e, "dagi.test.slow", NULL, "timeout");
    env_close(&e);
}

static void test_error(enum path path)
{
    struct env e;
    env_open(&e, path, 0);
    struct responder r = {.env = &e};
    assert_int_equal(dagi_bus_serve(e.server, "dagi.test.echo", on_echo, &r), 0);
    struct caller c;
    call(&e, e.client, &c, "dagi.test.echo", "error", 5, 2000, false);
    run_until(&e, &c.done, 3000);
    assert_int_equal(c.err, DAGI_EPERM);
    assert_string_equal(c.message, "not for you, caller");
    assert_path(&e, "dagi.test.echo", NULL, "error");
    env_close(&e);
}

static void test_stream(enum path path)
{
    struct env e;
    env_open(&e, path, 0);
    struct responder r = {.env = &e, .total = 1000};
    assert_int_equal(dagi_bus_serve(e.server, "dagi.test.stream", on_stream, &r), 0);
    struct caller c;
    call(&e, e.client, &c, "dagi.test.stream", "go", 2, 2000, true);
    run_until(&e, &c.done, 5000);
    assert_int_equal(c.err, 0);
    assert_int_equal(c.chunks, 1000);
    assert_true(c.in_order);
    assert_int_equal(c.len, 4);
    assert_memory_equal(c.data, "done", 4);
    assert_int_equal(r.cancels, 0);

    /* The same, produced over many loop turns. */
    r.produced = 0;
    r.batch = 50;
    call(&e, e.client, &c, "dagi.test.stream", "go", 2, 2000, true);
    run_until(&e, &c.done, 5000);
    assert_int_equal(c.err, 0);
    assert_int_equal(c.chunks, 1000);
    assert_true(c.in_order);
    struct dagi_buf out;
    dagi_buf_init(&out, 1 << 20);
    dagi_metrics_render(e.metrics, &out);
    assert_non_null(
        strstr(dagi_buf_str(&out), "dagi_bus_stream_chunks_total{subject=\"dagi.test.stream\"} 2000"));
    dagi_buf_release(&out);
    env_close(&e);
}

static void test_cancel_mid_stream(enum path path)
{
    struct env e;
    env_open(&e, path, 0);
    struct responder r = {.env = &e, .total = 1000, .batch = 5};
    assert_int_equal(dagi_bus_serve(e.server, "dagi.test.stream", on_stream, &r), 0);
    struct caller c;
    call(&e, e.client, &c, "dagi.test.stream", "go", 2, 2000, true);
    c.cancel_after = 10;
    run_until(&e, &c.done, 5000);
    assert_true(c.cancelled);
    assert_int_equal(c.chunks, 10);
    bool heard = false;
    for (int i = 0; i < 100 && !heard; i++) {
        run_for(&e, 10);
        heard = r.cancels == 1;
    }
    assert_int_equal(r.cancels, 1);
    assert_true(r.produced < 1000);
    int produced = r.produced;
    run_for(&e, 50);
    assert_int_equal(r.produced, produced); /* it stopped */
    assert_int_equal(c.chunks, 10);         /* and nothing more reached the caller */
    assert_path(&e, "dagi.test.stream", NULL, "cancelled");
    env_close(&e);
}

static void test_cancel_before_dispatch(enum path path)
{
    struct env e;
    env_open(&e, path, 0);
    struct responder r = {.env = &e};
    assert_int_equal(dagi_bus_serve(e.server, "dagi.test.slow", on_slow, &r), 0);
    struct caller c;
    call(&e, e.client, &c, "dagi.test.slow", "x", 1, 300, false);
    dagi_bus_call_cancel(c.call);
    run_for(&e, 100);
    assert_false(c.done);
    if (e.path == INPROC) {
        assert_int_equal(r.requests, 0); /* the handler never saw it */
    } else {
        /* The request is out; the cancel most likely reached the server
         * before the responder subscribed to <inbox>.cancel, so its
         * deadline ends the request. */
        bool heard = false;
        for (int i = 0; i < 100 && !heard; i++) {
            run_for(&e, 10);
            heard = r.cancels == 1;
        }
        assert_int_equal(r.requests, 1);
        assert_int_equal(r.cancels, 1);
    }
    assert_false(c.done);
    env_close(&e);
}

static void test_idle_timeout(enum path path)
{
    struct env e;
    env_open(&e, path, 0);
    struct responder r = {.env = &e, .total = 1000, .stall = true};
    assert_int_equal(dagi_bus_serve(e.server, "dagi.test.stream", on_stream, &r), 0);
    struct caller c;
    memset(&c, 0, sizeof(c));
    c.in_order = true;
    struct dagi_bus_call_opts o = {
        .subject = "dagi.test.stream",
        .data = "go",
        .len = 2,
        .timeout_ms = 5000,
        .idle_timeout_ms = 150,
        .on_chunk = on_chunk,
        .on_done = on_done,
        .ud = &c,
    };
    int64_t start = dagi_clock_mono_ns();
    assert_int_equal(dagi_bus_request(e.client, &o, &c.call), 0);
    run_until(&e, &c.done, 3000);
    int64_t elapsed_ms = (c.done_ns - start) / 1000000;
    assert_int_equal(c.err, DAGI_ETIMEDOUT);
    assert_int_equal(c.chunks, 3);
    assert_true(elapsed_ms >= 145 && elapsed_ms < 2000);
    assert_non_null(strstr(c.message, "idle"));
    bool heard = false;
    for (int i = 0; i < 100 && !heard; i++) {
        run_for(&e, 10);
        heard = r.cancels == 1;
    }
    assert_int_equal(r.cancels, 1);
    env_close(&e);
}

static void test_payload_cap(enum path path)
{
    struct env e;
    env_open(&e, path, 1024);
    struct responder r = {.env = &e};
    assert_int_equal(dagi_bus_serve(e.server, "dagi.test.echo", on_echo, &r), 0);
    char *big = calloc(1, 2048);
    struct dagi_bus_call *handle = NULL;
    struct caller c = {0};
    struct dagi_bus_call_opts o = {
        .subject = "dagi.test.echo", .data = big, .len = 1025, .on_done = on_done, .ud = &c};
    assert_int_equal(dagi_bus_request(e.client, &o, &handle), DAGI_ETOOBIG);
    assert_null(handle);
    /* Exactly the cap is fine. */
    call(&e, e.client, &c, "dagi.test.echo", big, 1024, 2000, false);
    run_until(&e, &c.done, 3000);
    assert_int_equal(c.err, 0);
    /* A reply over the cap: the responder gets ETOOBIG, the caller too_large. */
    r.reply_size = 1025;
    call(&e, e.client, &c, "dagi.test.echo", "x", 1, 2000, false);
    run_until(&e, &c.done, 3000);
    assert_int_equal(c.err, DAGI_ETOOBIG);
    free(big);
    env_close(&e);
}

static void test_trace_id(enum path path)
{
    struct env e;
    env_open(&e, path, 0);
    struct responder r = {.env = &e};
    assert_int_equal(dagi_bus_serve(e.server, "dagi.test.echo", on_echo, &r), 0);
    struct caller c;
    call(&e, e.client, &c, "dagi.test.echo", "x", 1, 2000, false);
    run_until(&e, &c.done, 3000);
    assert_string_equal(r.trace, "trace-abc");
    /* None sent: the responder sees "". */
    memset(&c, 0, sizeof(c));
    struct dagi_bus_call_opts o = {
        .subject = "dagi.test.echo", .data = "x", .len = 1, .on_done = on_done, .ud = &c};
    assert_int_equal(dagi_bus_request(e.client, &o, &c.call), 0);
    run_until(&e, &c.done, 3000);
    assert_string_equal(r.trace, "");
    env_close(&e);
}

static void test_queue_group(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, NATS, 0);
    e.extra = bus_open(&e, nats.url, true, 0);
    struct responder r1 = {.env = &e}, r2 = {.env = &e};
    assert_int_equal(dagi_bus_serve(e.server, "dagi.test.echo", on_echo, &r1), 0);
    assert_int_equal(dagi_bus_serve(e.extra, "dagi.test.echo", on_echo, &r2), 0);
    run_for(&e, 50); /* let both subscriptions reach the server */
    struct caller c[20];
    for (int i = 0; i < 20; i++)
        call(&e, e.client, &c[i], "dagi.test.echo", "q", 1, 3000, false);
    for (int i = 0; i < 20; i++) {
        run_until(&e, &c[i].done, 3000);
        assert_int_equal(c[i].err, 0);
    }
    assert_int_equal(r1.requests + r2.requests, 20);
    assert_true(r1.requests > 0);
    assert_true(r2.requests > 0);
    env_close(&e);
}

static void test_invalid(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, INPROC, 0);
    struct responder r = {.env = &e};
    assert_int_equal(dagi_bus_serve(e.server, "dagi.test.*", on_echo, &r), DAGI_EINVAL);
    assert_int_equal(dagi_bus_serve(e.server, "", on_echo, &r), DAGI_EINVAL);
    struct dagi_bus_call *handle = NULL;
    struct caller c = {0};
    struct dagi_bus_call_opts o = {.subject = "dagi.>", .on_done = on_done, .ud = &c};
    assert_int_equal(dagi_bus_request(e.client, &o, &handle), DAGI_EINVAL);
    o.subject = "dagi.test.echo";
    o.on_done = NULL;
    assert_int_equal(dagi_bus_request(e.client, &o, &handle), DAGI_EINVAL);
    /* A server that is not there. */
    struct dagi_bus_opts bo = {.url = "nats://127.0.0.1:1", .loopq = e.loopq, .metrics = e.metrics};
    struct dagi_error err = {0};
    struct dagi_bus *bus = NULL;
    assert_int_equal(dagi_bus_new(e.base, &bo, &bus, &err), DAGI_EUNAVAIL);
    assert_null(bus);
    assert_non_null(strstr(err.message, "127.0.0.1:1"));
    env_close(&e);
}

static void test_err_names(void **state)
{
    (void)state;
    assert_string_equal(dagi_bus_err_name(DAGI_ETIMEDOUT), "timed_out");
    assert_string_equal(dagi_bus_err_name(DAGI_EUNAVAIL), "unavailable");
    assert_string_equal(dagi_bus_err_name(DAGI_EINVAL), "invalid");
    assert_string_equal(dagi_bus_err_name(DAGI_ETOOBIG), "too_large");
    assert_string_equal(dagi_bus_err_name(DAGI_ECANCELED), "cancelled");
    assert_string_equal(dagi_bus_err_name(DAGI_EPERM), "forbidden");
    assert_string_equal(dagi_bus_err_name(DAGI_ENOENT), "not_found");
    assert_string_equal(dagi_bus_err_name(DAGI_EINTERNAL), "internal");
    assert_string_equal(dagi_bus_err_name(-999), "internal");
    for (int code = DAGI_ENEEDMORE; code < 0; code++)
        assert_int_equal(dagi_bus_err_from_name(dagi_bus_err_name(code)), code);
    assert_int_equal(dagi_bus_err_from_name("no_such_error"), DAGI_EINTERNAL);
    assert_int_equal(dagi_bus_err_from_name(NULL), DAGI_EINTERNAL);
}

/* Each case once per path, under its own name. */
#define DEFINE_BOTH(fn)                                                                            \
    static void fn##_inproc(void **state)                                                          \
    {                                                                                              \
        (void)state;                                                                               \
        fn(INPROC);                                                                                \
    }                                                                                              \
    static void fn##_nats(void **state)                                                            \
    {                                                                                              \
        (void)state;                                                                               \
        fn(NATS);                                                                                  \
    }
DEFINE_BOTH(test_unary)
DEFINE_BOTH(test_no_responder)
DEFINE_BOTH(test_deadline)
DEFINE_BOTH(test_error)
DEFINE_BOTH(test_stream)
DEFINE_BOTH(test_cancel_mid_stream)
DEFINE_BOTH(test_cancel_before_dispatch)
DEFINE_BOTH(test_idle_timeout)
DEFINE_BOTH(test_payload_cap)
DEFINE_BOTH(test_trace_id)

static int group_setup(void **state)
{
    (void)state;
    evthread_use_pthreads();
    return nats_fixture_start(&nats, NULL, NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    nats_fixture_stop(&nats);
    nats_CloseAndWait(0);
    return 0;
}

#define BOTH(fn) cmocka_unit_test(fn##_inproc), cmocka_unit_test(fn##_nats)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_unary),
        BOTH(test_no_responder),
        BOTH(test_deadline),
        BOTH(test_error),
        BOTH(test_stream),
        BOTH(test_cancel_mid_stream),
        BOTH(test_cancel_before_dispatch),
        BOTH(test_idle_timeout),
        BOTH(test_payload_cap),
        BOTH(test_trace_id),
        cmocka_unit_test(test_queue_group),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_err_names),
    };
    if (getenv("BUS_TEST_FILTER")) /* e.g. "test_stream*" */
        cmocka_set_test_filter(getenv("BUS_TEST_FILTER"));
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
