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

#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>
#include <nats/nats.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "bus/bus.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
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
    if (!path)
        path = e->path == INPROC ? "inproc" : "nats";
    snprintf(want, sizeof(want),
             "dagi_bus_requests_total{subject=\"%s\",path=\"%s\",result=\"%s\"} 1", subject, path,
             result);
    if (!strstr(dagi_buf_str(&out), want))
        fail_msg("missing %s in\n%s", want, dagi_buf_str(&out));
    dagi_buf_release(&out);
}

/* Serves, and over NATS lets the loop write the subscription out before
 * anyone calls: the caller's connection is another TCP stream, so its
 * request could otherwise reach the server first. */
static void serve(struct env *e, struct dagi_bus *bus, const char *subject, dagi_bus_handler_fn fn,
                  void *ud)
{
    assert_int_equal(dagi_bus_serve(bus, subject, fn, ud), 0);
    if (e->path == NATS)
        run_for(e, 30);
}

/* --- cases --- */

static void test_unary(enum path path)
{
    struct env e;
    env_open(&e, path, 0);
    struct responder r = {.env = &e};
    serve(&e, e.server, "dagi.test.echo", on_echo, &r);
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
    const char *want =
        e.path == INPROC ? "path=\"inproc\",result=\"ok\"} 4" : "path=\"nats\",result=\"ok\"} 4";
    assert_non_null(strstr(dagi_buf_str(&out), want));
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
    serve(&e, e.server, "dagi.test.slow", on_slow, &r);
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
    serve(&e, e.server, "dagi.test.echo", on_echo, &r);
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
    serve(&e, e.server, "dagi.test.stream", on_stream, &r);
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
    assert_non_null(strstr(dagi_buf_str(&out),
                           "dagi_bus_stream_chunks_total{subject=\"dagi.test.stream\"} 2000"));
    dagi_buf_release(&out);
    env_close(&e);
}

static void test_cancel_mid_stream(enum path path)
{
    struct env e;
    env_open(&e, path, 0);
    struct responder r = {.env = &e, .total = 1000, .batch = 5};
    serve(&e, e.server, "dagi.test.stream", on_stream, &r);
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
    serve(&e, e.server, "dagi.test.slow", on_slow, &r);
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
    serve(&e, e.server, "dagi.test.stream", on_stream, &r);
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
    serve(&e, e.server, "dagi.test.echo", on_echo, &r);
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
    serve(&e, e.server, "dagi.test.echo", on_echo, &r);
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
    serve(&e, e.server, "dagi.test.echo", on_echo, &r1);
    serve(&e, e.extra, "dagi.test.echo", on_echo, &r2);
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

/* A nats-server of our own on a fixed port, so it can come back there. */
static pid_t start_server_on(int port)
{
    char p[16];
    snprintf(p, sizeof(p), "%d", port);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int devnull = open("/dev/null", 1);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execlp("nats-server", "nats-server", "-a", "127.0.0.1", "-p", p, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &n), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void stop_server(pid_t pid)
{
    int status;
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
}

static bool wait_connected(struct env *e, struct dagi_bus *bus, bool want, int ms)
{
    for (int i = 0; i < ms / 10; i++) {
        if (dagi_bus_connected(bus) == want)
            return true;
        run_for(e, 10);
    }
    return dagi_bus_connected(bus) == want;
}

static void test_reconnect(void **state)
{
    (void)state;
    int port = free_port();
    char url[64];
    snprintf(url, sizeof(url), "nats://127.0.0.1:%d", port);
    pid_t pid = start_server_on(port);
    struct env e;
    memset(&e, 0, sizeof(e));
    e.path = NATS;
    e.base = event_base_new();
    e.loopq = dagi_loopq_new(e.base);
    e.metrics = dagi_metrics_new(0);
    struct dagi_bus_opts o = {
        .url = url, .reconnect_wait_ms = 20, .loopq = e.loopq, .metrics = e.metrics};
    struct dagi_error err;
    int rc = DAGI_EUNAVAIL;
    for (int i = 0; i < 100 && rc; i++) { /* until the server listens */
        rc = dagi_bus_new(e.base, &o, &e.server, &err);
        if (rc)
            nats_fixture_sleep_ms(20);
    }
    assert_int_equal(rc, 0);
    o.inprocess = false;
    assert_int_equal(dagi_bus_new(e.base, &o, &e.client, &err), 0);
    struct responder r = {.env = &e};
    serve(&e, e.server, "dagi.test.echo", on_echo, &r);

    stop_server(pid);
    assert_true(wait_connected(&e, e.client, false, 3000));
    assert_true(wait_connected(&e, e.server, false, 3000));
    pid = start_server_on(port);
    assert_true(wait_connected(&e, e.client, true, 5000));
    assert_true(wait_connected(&e, e.server, true, 5000));
    run_for(&e, 50); /* the resent subscriptions reach the server */

    struct caller c;
    call(&e, e.client, &c, "dagi.test.echo", "again", 5, 3000, false);
    run_until(&e, &c.done, 4000);
    assert_int_equal(c.err, 0);
    assert_memory_equal(c.data, "again", 5);

    struct dagi_buf out;
    dagi_buf_init(&out, 1 << 20);
    dagi_metrics_render(e.metrics, &out);
    assert_non_null(strstr(dagi_buf_str(&out), "dagi_bus_reconnects_total 2"));
    assert_non_null(strstr(dagi_buf_str(&out), "dagi_bus_connected 1"));
    dagi_buf_release(&out);
    env_close(&e);
    stop_server(pid);
}

/* The wire protocol as bus.h writes it down, checked with plain libnats. */
static natsMsg *raw_request(struct env *e, natsConnection *nc, natsSubscription *inbox_sub,
                            const char *inbox, const char *subject, const char *data,
                            int64_t deadline_ms)
{
    natsMsg *m = NULL;
    char dl[32];
    snprintf(dl, sizeof(dl), "%lld", (long long)deadline_ms);
    assert_int_equal(natsMsg_Create(&m, subject, inbox, data, (int)strlen(data)), NATS_OK);
    natsMsgHeader_Set(m, "Dagi-Trace-Id", "wire-1");
    natsMsgHeader_Set(m, "Dagi-Deadline", dl);
    assert_int_equal(natsConnection_PublishMsg(nc, m), NATS_OK);
    natsMsg_Destroy(m);
    natsConnection_Flush(nc);
    for (int i = 0; i < 300; i++) {
        natsMsg *reply = NULL;
        run_for(e, 10);
        if (natsSubscription_NextMsg(&reply, inbox_sub, 1) == NATS_OK)
            return reply;
    }
    fail_msg("no reply to %s", subject);
    return NULL;
}

static const char *raw_header(natsMsg *m, const char *key)
{
    const char *v = NULL;
    return natsMsgHeader_Get(m, key, &v) == NATS_OK ? v : "";
}

static void test_wire(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, NATS, 0);
    struct responder r = {.env = &e};
    serve(&e, e.server, "dagi.test.echo", on_echo, &r);
    natsConnection *nc = NULL;
    natsSubscription *sub = NULL;
    assert_int_equal(natsConnection_ConnectTo(&nc, nats.url), NATS_OK);
    assert_int_equal(natsConnection_SubscribeSync(&sub, nc, "_INBOX.wire"), NATS_OK);
    int64_t deadline = dagi_clock_now_ms() + 5000;

    natsMsg *m = raw_request(&e, nc, sub, "_INBOX.wire", "dagi.test.echo", "hi", deadline);
    assert_string_equal(raw_header(m, "Dagi-Kind"), "final");
    assert_string_equal(raw_header(m, "Dagi-Seq"), "0");
    assert_int_equal(natsMsg_GetDataLength(m), 2);
    assert_string_equal(r.trace, "wire-1");
    assert_int_equal(r.deadline_ms, deadline);
    natsMsg_Destroy(m);

    m = raw_request(&e, nc, sub, "_INBOX.wire", "dagi.test.echo", "error", deadline);
    assert_string_equal(raw_header(m, "Dagi-Kind"), "error");
    assert_string_equal(raw_header(m, "Dagi-Error"), "forbidden");
    assert_string_equal(natsMsg_GetData(m),
                        "{\"error\":{\"code\":\"forbidden\",\"message\":\"not for you, caller\"}}");
    natsMsg_Destroy(m);

    /* Already past its deadline: shed, and said so. */
    int before = r.requests;
    m = raw_request(&e, nc, sub, "_INBOX.wire", "dagi.test.echo", "hi", dagi_clock_now_ms() - 10);
    assert_string_equal(raw_header(m, "Dagi-Kind"), "error");
    assert_string_equal(raw_header(m, "Dagi-Error"), "timed_out");
    assert_int_equal(r.requests, before);
    natsMsg_Destroy(m);

    /* No reply subject: nobody answers, nothing breaks. */
    assert_int_equal(natsConnection_PublishString(nc, "dagi.test.echo", "x"), NATS_OK);
    natsConnection_Flush(nc);
    run_for(&e, 50);
    assert_int_equal(r.requests, before);

    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);
    env_close(&e);
}

/* A (raw) responder that skips chunk 1: the caller must not hand chunk 2
 * over as if nothing happened. */
static void on_raw_gap(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *ud)
{
    (void)sub, (void)ud;
    static const char *const seqs[] = {"0", "2"};
    for (int i = 0; i < 2; i++) {
        natsMsg *m = NULL;
        char data[8];
        snprintf(data, sizeof(data), "c%s", seqs[i]);
        natsMsg_Create(&m, natsMsg_GetReply(msg), NULL, data, (int)strlen(data));
        natsMsgHeader_Set(m, "Dagi-Kind", "chunk");
        natsMsgHeader_Set(m, "Dagi-Seq", seqs[i]);
        natsConnection_PublishMsg(nc, m);
        natsMsg_Destroy(m);
    }
    natsConnection_Flush(nc);
    natsMsg_Destroy(msg);
}

static void test_out_of_order(void **state)
{
    (void)state;
    struct env e;
    env_open(&e, NATS, 0);
    natsConnection *nc = NULL;
    natsSubscription *sub = NULL;
    assert_int_equal(natsConnection_ConnectTo(&nc, nats.url), NATS_OK);
    assert_int_equal(natsConnection_Subscribe(&sub, nc, "dagi.test.gap", on_raw_gap, NULL),
                     NATS_OK);
    natsConnection_Flush(nc);
    struct caller c;
    call(&e, e.client, &c, "dagi.test.gap", "x", 1, 2000, true);
    run_until(&e, &c.done, 3000);
    assert_int_equal(c.err, DAGI_EPARSE);
    assert_int_equal(c.chunks, 1);
    assert_non_null(strstr(c.message, "out of order"));
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);
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
    struct dagi_bus_opts bo = {
        .url = "nats://127.0.0.1:1, nats://me:secret@127.0.0.1:2",
        .loopq = e.loopq,
        .metrics = e.metrics,
    };
    struct dagi_error err = {0};
    struct dagi_bus *bus = NULL;
    assert_int_equal(dagi_bus_new(e.base, &bo, &bus, &err), DAGI_EUNAVAIL);
    assert_null(bus);
    assert_non_null(strstr(err.message, "nats://127.0.0.1:1, nats://***@127.0.0.1:2"));
    assert_null(strstr(err.message, "secret"));
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

/* JSON documents: in-process they are handed over by reference (the
 * responder sees the caller's very object and data is NULL); over NATS they
 * go as bytes.  Either way dagi_bus_msg_json / dagi_bus_call_json read the
 * same document. */
struct doc_seen {
    bool same_object, had_bytes, done;
    json_t *reply;
    json_t *sent;
    char got[64];
};

static void on_doc(struct dagi_bus_req *req, const struct dagi_bus_msg *msg, void *ud)
{
    struct doc_seen *d = ud;
    d->same_object = msg->doc == d->sent;
    d->had_bytes = msg->data != NULL && msg->len > 0;
    json_t *body = dagi_bus_msg_json(msg);
    snprintf(d->got, sizeof(d->got), "%s", json_string_value(json_object_get(body, "q")));
    json_decref(body);
    json_t *reply = json_pack("{s:s,s:i}", "a", "answer", "n", 42);
    assert_int_equal(dagi_bus_reply_json(req, reply), 0);
    json_decref(reply); /* the bus holds its own reference */
}

static void on_doc_done(struct dagi_bus_call *call, int err, const void *data, size_t len,
                        const char *message, void *ud)
{
    (void)message;
    struct doc_seen *d = ud;
    assert_int_equal(err, 0);
    d->had_bytes = data != NULL && len > 0;
    d->reply = dagi_bus_call_json(call, data, len);
    d->done = true;
}

static void test_json_docs(enum path path)
{
    struct env e;
    env_open(&e, path, 0);
    struct doc_seen d = {0};
    serve(&e, e.server, "dagi.test.doc", on_doc, &d);
    d.sent = json_pack("{s:s}", "q", "question");
    struct dagi_bus_call_opts o = {
        .subject = "dagi.test.doc", .doc = d.sent, .on_done = on_doc_done, .ud = &d};
    struct dagi_bus_call *c = NULL;
    assert_int_equal(dagi_bus_request(e.client, &o, &c), 0);
    json_decref(d.sent); /* the bus holds its own reference */
    bool reply_bytes = false;
    run_until(&e, &d.done, 3000);
    reply_bytes = d.had_bytes;
    assert_string_equal(d.got, "question");
    assert_int_equal(d.same_object, path == INPROC);
    assert_int_equal(reply_bytes, path == NATS);
    assert_string_equal(json_string_value(json_object_get(d.reply, "a")), "answer");
    assert_int_equal(json_integer_value(json_object_get(d.reply, "n")), 42);
    json_decref(d.reply);
    env_close(&e);
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
DEFINE_BOTH(test_json_docs)

static int group_setup(void **state)
{
    (void)state;
    evthread_use_pthreads();
    dagi_log_setup(DAGI_LOG_ERROR, 2); /* reconnect warnings are expected */
    return nats_fixture_start(&nats, NULL, NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    nats_fixture_stop(&nats);
    /* Bounded: after a failed case its buses are leaked and would keep
     * libnats waiting forever. */
    nats_CloseAndWait(5000);
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
        BOTH(test_json_docs),
        cmocka_unit_test(test_queue_group),
        cmocka_unit_test(test_reconnect),
        cmocka_unit_test(test_wire),
        cmocka_unit_test(test_out_of_order),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_err_names),
    };
    if (getenv("BUS_TEST_FILTER")) /* e.g. "test_stream*" */
        cmocka_set_test_filter(getenv("BUS_TEST_FILTER"));
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
