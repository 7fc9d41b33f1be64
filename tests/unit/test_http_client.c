/* HTTP client against real HTTP servers in the same process, each on its
 * own thread: libevent's evhttp on 127.0.0.1 for well-behaved answers, and a
 * scripted raw-socket server for what evhttp will not do (interim 1xx,
 * bodies delimited by close, oversized heads, dropping a kept-alive
 * connection as it is reused).  The client runs on the test thread's loop,
 * as it does in the node.
 *
 * The conformance cases run once per backend (the table in main(), as
 * test_store.c runs every case on both databases): "native" is the default
 * ("auto", which serves http://127.0.0.1 natively), "curl" forces libcurl.
 * The native-only cases after them test its connection pool and framing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/http_client.h"
#include "core/http_client_internal.h"
#include "core/sse_parse.h"

#define SSE_EVENTS 20
#define SSE_INTERVAL_MS 10
#define SLOW_DELAY_MS 1000
#define BIG_BYTES (1u << 20)

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- the test server (runs on its own thread and event_base) ------------ */

enum stream_kind { STREAM_SSE, STREAM_STALL, STREAM_SLOW };

/* A reply that is not sent at once; lives until it is finished. */
struct stream {
    struct stream *prev, *next;
    struct evhttp_request *req;
    struct evhttp_connection *conn; /* kept: evhttp detaches req on close */
    struct event *timer;
    enum stream_kind kind;
    int sent;
    bool closed;
};

static struct {
    pthread_t thread;
    struct event_base *base;
    struct evhttp *http;
    struct event *stop;
    int port;
    atomic_int closes; /* connections the server saw close */
    struct stream *streams;
} srv;

static void on_server_conn_close(struct evhttp_connection *conn, void *arg)
{
    (void)arg;
    for (struct stream *s = srv.streams; s; s = s->next)
        if (s->conn == conn)
            s->closed = true;
    atomic_fetch_add(&srv.closes, 1);
}

static void watch_close(struct evhttp_request *req)
{
    evhttp_connection_set_closecb(evhttp_request_get_connection(req), on_server_conn_close, NULL);
}

/* Ends the reply (or frees the request evhttp detached on close). */
static void stream_finish(struct stream *s)
{
    if (s->kind == STREAM_SLOW) {
        struct evbuffer *body = evbuffer_new();
        evbuffer_add_printf(body, "slow");
        evhttp_send_reply(s->req, 200, "OK", body);
        evbuffer_free(body);
    } else {
        evhttp_send_reply_end(s->req);
    }
    if (s->prev)
        s->prev->next = s->next;
    else
        srv.streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    event_free(s->timer);
    free(s);
}

static void on_stream_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct stream *s = arg;
    if (s->closed || s->kind == STREAM_SLOW) {
        stream_finish(s);
        return;
    }
    if (s->kind != STREAM_SSE)
        return; /* a stall only waits for the client to go away */
    struct evbuffer *chunk = evbuffer_new();
    if (s->sent == SSE_EVENTS - 1)
        evbuffer_add_printf(chunk, "data: [DONE]\n\n");
    else
        evbuffer_add_printf(chunk, "id: %d\ndata: {\"n\":%d}\n\n", s->sent, s->sent);
    evhttp_send_reply_chunk(s->req, chunk);
    evbuffer_free(chunk);
    if (++s->sent == SSE_EVENTS)
        stream_finish(s);
}

static void start_stream(struct evhttp_request *req, enum stream_kind kind)
{
    struct stream *s = calloc(1, sizeof(*s));
    s->req = req;
    s->conn = evhttp_request_get_connection(req);
    s->kind = kind;
    s->timer = event_new(srv.base, -1, kind == STREAM_SLOW ? 0 : EV_PERSIST, on_stream_tick, s);
    s->next = srv.streams;
    if (s->next)
        s->next->prev = s;
    srv.streams = s;
    watch_close(req);
    struct timeval tv = {0, SSE_INTERVAL_MS * 1000};
    if (kind == STREAM_SLOW)
        tv = (struct timeval){SLOW_DELAY_MS / 1000, (SLOW_DELAY_MS % 1000) * 1000};
    event_add(s->timer, &tv);
    if (kind != STREAM_SLOW) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "text/event-stream");
        evhttp_send_reply_start(req, 200, "OK");
    }
    if (kind == STREAM_STALL) {
        struct evbuffer *chunk = evbuffer_new();
        evbuffer_add_printf(chunk, "data: first\n\n");
        evhttp_send_reply_chunk(req, chunk);
        evbuffer_free(chunk);
    }
}

static void on_hello(struct evhttp_request *req, void *arg)
{
    (void)arg;
    watch_close(req);
    struct evbuffer *body = evbuffer_new();
    evbuffer_add_printf(body, "hello world");
    evhttp_send_reply(req, 200, "OK", body);
    evbuffer_free(body);
}

static void on_echo(struct evhttp_request *req, void *arg)
{
    (void)arg;
    static const struct {
        enum evhttp_cmd_type cmd;
        const char *name;
    } methods[] = {{EVHTTP_REQ_GET, "GET"},
                   {EVHTTP_REQ_POST, "POST"},
                   {EVHTTP_REQ_PUT, "PUT"},
                   {EVHTTP_REQ_DELETE, "DELETE"},
                   {EVHTTP_REQ_PATCH, "PATCH"}};
    const char *method = "OTHER";
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (methods[i].cmd == evhttp_request_get_command(req))
            method = methods[i].name;
    watch_close(req);
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    evhttp_add_header(out, "X-Method", method);
    const char *ua = evhttp_find_header(evhttp_request_get_input_headers(req), "User-Agent");
    evhttp_add_header(out, "X-Seen-User-Agent", ua ? ua : "");
    const char *custom = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Custom");
    evhttp_add_header(out, "X-Seen-Custom", custom ? custom : "");
    evhttp_send_reply(req, 200, "OK", evhttp_request_get_input_buffer(req));
}

static void on_big(struct evhttp_request *req, void *arg)
{
    (void)arg;
    watch_close(req);
    char *data = malloc(BIG_BYTES);
    for (size_t i = 0; i < BIG_BYTES; i++)
        data[i] = (char)('a' + i % 26);
    struct evbuffer *body = evbuffer_new();
    evbuffer_add(body, data, BIG_BYTES);
    free(data);
    evhttp_send_reply(req, 200, "OK", body);
    evbuffer_free(body);
}

static void on_sse(struct evhttp_request *req, void *arg)
{
    (void)arg;
    start_stream(req, STREAM_SSE);
}

static void on_stall(struct evhttp_request *req, void *arg)
{
    (void)arg;
    start_stream(req, STREAM_STALL);
}

static void on_slow(struct evhttp_request *req, void *arg)
{
    (void)arg;
    start_stream(req, STREAM_SLOW);
}

/* Runs on the server thread: finishes what is pending so nothing leaks. */
static void on_server_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    while (srv.streams)
        stream_finish(srv.streams);
    evhttp_free(srv.http);
    event_base_loopbreak(srv.base);
}

static void *server_main(void *arg)
{
    (void)arg;
    event_base_dispatch(srv.base);
    return NULL;
}

static int server_start(void)
{
    srv.base = event_base_new();
    srv.http = evhttp_new(srv.base);
    struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(srv.http, "127.0.0.1", 0);
    if (!bound)
        return -1;
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&sin, &len);
    srv.port = ntohs(sin.sin_port);
    evhttp_set_cb(srv.http, "/hello", on_hello, NULL);
    evhttp_set_cb(srv.http, "/echo", on_echo, NULL);
    evhttp_set_cb(srv.http, "/big", on_big, NULL);
    evhttp_set_cb(srv.http, "/sse", on_sse, NULL);
    evhttp_set_cb(srv.http, "/stall", on_stall, NULL);
    evhttp_set_cb(srv.http, "/slow", on_slow, NULL);
    evhttp_set_allowed_methods(srv.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                             EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH);
    srv.stop = event_new(srv.base, -1, 0, on_server_stop, NULL);
    return pthread_create(&srv.thread, NULL, server_main, NULL);
}

static void server_stop(void)
{
    event_active(srv.stop, EV_READ, 0); /* thread safe: evthread_use_pthreads */
    pthread_join(srv.thread, NULL);
    event_free(srv.stop);
    event_base_free(srv.base);
}

/* --- client side helpers ------------------------------------------------- */

struct fixture {
    struct event_base *base;
    struct dagi_http_client *client;
    const char *backend; /* as given to dagi_http_client_opts */
};

struct outcome {
    int done;
    int err;
    long status;
    char message[CURL_ERROR_SIZE];
    char *body;
    size_t body_len;
    int headers_calls;
    long headers_status;
    char header_value[128]; /* a header looked up in on_headers */
    const char *header_name;
    int data_calls;
    size_t data_bytes;
    int abort_in; /* 1: on_headers returns nonzero, 2: on_data does */
    /* streaming SSE */
    struct dagi_sse_parser parser;
    int events;
    int cancel_after_events; /* 0 = never */
    int64_t first_event_ms, done_ms;
    char last_data[64];
    struct dagi_http_call *call;
    struct fixture *f;
};

static void outcome_init(struct outcome *o, struct fixture *f)
{
    memset(o, 0, sizeof(*o));
    o->f = f;
    dagi_sse_parser_init(&o->parser, 4096);
}

static void outcome_release(struct outcome *o)
{
    dagi_sse_parser_release(&o->parser);
    free(o->body);
}

static void on_done(struct dagi_http_call *call, const struct dagi_http_response *resp, void *ud)
{
    (void)call;
    struct outcome *o = ud;
    o->done++;
    o->done_ms = now_ms();
    o->err = resp->err;
    o->status = resp->status;
    assert_non_null(resp->error_message);
    snprintf(o->message, sizeof(o->message), "%s", resp->error_message);
    if (resp->body) {
        assert_int_equal(resp->body[resp->body_len], '\0');
        o->body = malloc(resp->body_len + 1);
        memcpy(o->body, resp->body, resp->body_len + 1);
        o->body_len = resp->body_len;
    }
}

static int on_headers(struct dagi_http_call *call, long status, void *ud)
{
    struct outcome *o = ud;
    o->headers_calls++;
    o->headers_status = status;
    if (o->header_name) {
        const char *v = dagi_http_call_header(call, o->header_name);
        snprintf(o->header_value, sizeof(o->header_value), "%s", v ? v : "(none)");
    }
    return o->abort_in == 1;
}

static int on_sse_event(const struct dagi_sse_event *ev, void *ud)
{
    struct outcome *o = ud;
    if (o->events++ == 0)
        o->first_event_ms = now_ms();
    snprintf(o->last_data, sizeof(o->last_data), "%s", ev->data);
    if (o->cancel_after_events && o->events == o->cancel_after_events) {
        dagi_http_call_cancel(o->call);
        return 1; /* stop parsing: the call is gone */
    }
    return 0;
}

static int on_data(struct dagi_http_call *call, const char *data, size_t len, void *ud)
{
    (void)call;
    struct outcome *o = ud;
    o->data_calls++;
    o->data_bytes += len;
    if (o->abort_in == 2)
        return 1;
    int rc = dagi_sse_feed(&o->parser, data, len, on_sse_event, o);
    assert_true(rc == 0 || rc == 1);
    return 0;
}

static char url_buf[8][128];
static int url_next;

static const char *url(const char *path)
{
    char *u = url_buf[url_next++ % 8];
    snprintf(u, sizeof(url_buf[0]), "http://127.0.0.1:%d%s", srv.port, path);
    return u;
}

static struct dagi_http_request_opts opts_for(const char *path, struct outcome *o)
{
    return (struct dagi_http_request_opts){
        .url = url(path), .on_headers = on_headers, .on_done = on_done, .ud = o};
}

/* Runs the loop until *counter >= want; false after timeout_ms. */
static bool run_until(struct event_base *base, const int *counter, int want, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    while (*counter < want) {
        if (now_ms() > deadline)
            return false;
        struct timeval tick = {0, 5000};
        event_base_loopexit(base, &tick);
        event_base_dispatch(base);
    }
    return true;
}

static void run_for(struct event_base *base, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

static int setup_with(void **state, const char *backend)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->base = event_base_new();
    f->backend = backend;
    f->client = dagi_http_client_new(f->base, &(struct dagi_http_client_opts){.backend = backend});
    *state = f;
    return f->client ? 0 : -1;
}

static int setup_native(void **state)
{
    return setup_with(state, "auto");
}

static int setup_curl(void **state)
{
    return setup_with(state, "curl");
}

/* Replaces the fixture's client with one made with other options. */
static void reopen(struct fixture *f, struct dagi_http_client_opts opts)
{
    dagi_http_client_free(f->client);
    opts.backend = f->backend;
    f->client = dagi_http_client_new(f->base, &opts);
    assert_non_null(f->client);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    dagi_http_client_free(f->client);
    event_base_free(f->base);
    free(f);
    return 0;
}

/* --- tests ------------------------------------------------------------- */

static void test_get_buffered(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    outcome_init(&o, f);
    o.header_name = "content-LENGTH";
    struct dagi_http_request_opts req = opts_for("/hello", &o);
    assert_int_equal(dagi_http_client_request(f->client, &req, NULL), 0);
    assert_true(run_until(f->base, &o.done, 1, 5000));
    assert_int_equal(o.err, 0);
    assert_string_equal(o.message, "");
    assert_int_equal(o.status, 200);
    assert_int_equal(o.headers_calls, 1);
    assert_int_equal(o.headers_status, 200);
    assert_string_equal(o.header_value, "11");
    assert_int_equal(o.body_len, 11);
    assert_string_equal(o.body, "hello world");
    outcome_release(&o);
}

static void test_post_echo(void **state)
{
    struct fixture *f = *state;
    static const char body[] = "binary\0body {\"x\":1}";
    static const char *const headers[] = {"X-Custom: yes", "Content-Type: application/json", NULL};
    static const char *const methods[] = {NULL, "PUT", "PATCH"};
    for (size_t i = 0; i < 3; i++) {
        struct outcome o;
        outcome_init(&o, f);
        o.header_name = "x-method";
        struct dagi_http_request_opts req = opts_for("/echo", &o);
        req.method = methods[i];
        req.headers = headers;
        req.body = body;
        req.body_len = sizeof(body) - 1;
        assert_int_equal(dagi_http_client_request(f->client, &req, NULL), 0);
        assert_true(run_until(f->base, &o.done, 1, 5000));
        assert_int_equal(o.err, 0);
        assert_int_equal(o.status, 200);
        assert_string_equal(o.header_value, methods[i] ? methods[i] : "POST");
        assert_int_equal(o.body_len, sizeof(body) - 1);
        assert_memory_equal(o.body, body, sizeof(body) - 1);
        outcome_release(&o);
    }

    /* user agent and custom headers reach the server */
    struct outcome o;
    outcome_init(&o, f);
    o.header_name = "X-Seen-User-Agent";
    struct dagi_http_request_opts req = opts_for("/echo", &o);
    req.headers = headers;
    assert_int_equal(dagi_http_client_request(f->client, &req, NULL), 0);
    assert_true(run_until(f->base, &o.done, 1, 5000));
    assert_int_equal(strncmp(o.header_value, "dagi/", 5), 0);
    assert_int_equal(o.body_len, 0);
    outcome_release(&o);
}

static void test_sse_streaming(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    outcome_init(&o, f);
    o.header_name = "Content-Type";
    struct dagi_http_request_opts req = opts_for("/sse", &o);
    req.on_data = on_data;
    req.idle_timeout_ms = 2000;
    assert_int_equal(dagi_http_client_request(f->client, &req, &o.call), 0);
    assert_true(run_until(f->base, &o.done, 1, 5000));
    assert_int_equal(o.err, 0);
    assert_int_equal(o.status, 200);
    assert_string_equal(o.header_value, "text/event-stream");
    assert_int_equal(o.events, SSE_EVENTS);
    assert_string_equal(o.last_data, "[DONE]");
    assert_null(o.body); /* streamed, not buffered */
    /* the events came one by one as the server sent them, not at the end */
    assert_true(o.data_calls > SSE_EVENTS / 2);
    assert_true(o.done_ms - o.first_event_ms >= (SSE_EVENTS - 2) * SSE_INTERVAL_MS / 2);
    outcome_release(&o);
}

static void test_cancel_mid_stream(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    outcome_init(&o, f);
    o.cancel_after_events = 3;
    int closes_before = atomic_load(&srv.closes);
    struct dagi_http_request_opts req = opts_for("/sse", &o);
    req.on_data = on_data;
    assert_int_equal(dagi_http_client_request(f->client, &req, &o.call), 0);
    assert_true(run_until(f->base, &o.events, 3, 5000));
    int data_calls = o.data_calls;
    run_for(f->base, 100); /* the server keeps sending for another 170 ms */
    assert_int_equal(o.events, 3);
    assert_int_equal(o.data_calls, data_calls);
    assert_int_equal(o.done, 0);
    /* the connection could not be reused mid-response, so it was closed */
    int64_t deadline = now_ms() + 2000;
    while (atomic_load(&srv.closes) == closes_before && now_ms() < deadline)
        run_for(f->base, 10);
    assert_true(atomic_load(&srv.closes) > closes_before);
    outcome_release(&o);
}

struct chain {
    struct fixture *f;
    int done;
    int failures;
};

static void on_chain_done(struct dagi_http_call *call, const struct dagi_http_response *resp,
                          void *ud)
{
    (void)call;
    struct chain *c = ud;
    if (resp->err || resp->status != 200 || strcmp(resp->body, "hello world") != 0)
        c->failures++;
    if (++c->done < 100) {
        /* the next request starts from inside on_done */
        struct dagi_http_request_opts req = {
            .url = url("/hello"), .on_done = on_chain_done, .ud = c};
        assert_int_equal(dagi_http_client_request(c->f->client, &req, NULL), 0);
    }
}

static void test_connection_reuse(void **state)
{
    struct fixture *f = *state;
    struct chain c = {.f = f};
    struct dagi_http_request_opts req = {.url = url("/hello"), .on_done = on_chain_done, .ud = &c};
    assert_int_equal(dagi_http_client_request(f->client, &req, NULL), 0);
    assert_true(run_until(f->base, &c.done, 100, 10000));
    assert_int_equal(c.failures, 0);
    assert_int_equal(dagi_http_client_connections_opened(f->client), 1);
}

static void test_total_timeout(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    outcome_init(&o, f);
    struct dagi_http_request_opts req = opts_for("/slow", &o);
    req.timeout_ms = 200;
    int64_t start = now_ms();
    assert_int_equal(dagi_http_client_request(f->client, &req, NULL), 0);
    assert_true(run_until(f->base, &o.done, 1, 5000));
    assert_int_equal(o.err, DAGI_ETIMEDOUT);
    assert_true(strlen(o.message) > 0);
    assert_int_equal(o.headers_calls, 0);
    int64_t took = now_ms() - start;
    assert_true(took >= 150 && took < SLOW_DELAY_MS - 100);
    outcome_release(&o);
}

static void test_idle_timeout(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    outcome_init(&o, f);
    struct dagi_http_request_opts req = opts_for("/stall", &o);
    req.on_data = on_data;
    req.idle_timeout_ms = 200;
    int64_t start = now_ms();
    assert_int_equal(dagi_http_client_request(f->client, &req, &o.call), 0);
    assert_true(run_until(f->base, &o.done, 1, 5000));
    assert_int_equal(o.err, DAGI_ETIMEDOUT);
    assert_non_null(strstr(o.message, "200 ms"));
    assert_int_equal(o.headers_calls, 1);
    assert_int_equal(o.status, 200);
    assert_int_equal(o.events, 1);
    assert_string_equal(o.last_data, "first");
    int64_t took = now_ms() - start;
    assert_true(took >= 180 && took < 1500);
    outcome_release(&o);
}

static void test_response_cap(void **state)
{
    struct fixture *f = *state;
    /* the whole big body fits the default cap */
    struct outcome o;
    outcome_init(&o, f);
    struct dagi_http_request_opts req = opts_for("/big", &o);
    assert_int_equal(dagi_http_client_request(f->client, &req, NULL), 0);
    assert_true(run_until(f->base, &o.done, 1, 5000));
    assert_int_equal(o.err, 0);
    assert_int_equal(o.body_len, BIG_BYTES);
    for (size_t i = 0; i < BIG_BYTES; i += 4099)
        assert_int_equal(o.body[i], 'a' + i % 26);
    outcome_release(&o);

    /* Content-Length over the cap */
    outcome_init(&o, f);
    req = opts_for("/big", &o);
    req.max_response_bytes = 64 * 1024;
    assert_int_equal(dagi_http_client_request(f->client, &req, NULL), 0);
    assert_true(run_until(f->base, &o.done, 1, 5000));
    assert_int_equal(o.err, DAGI_ETOOBIG);
    assert_true(strlen(o.message) > 0);
    outcome_release(&o);

    /* a chunked body that grows past the cap */
    outcome_init(&o, f);
    req = opts_for("/sse", &o);
    req.max_response_bytes = 100;
    assert_int_equal(dagi_http_client_request(f->client, &req, NULL), 0);
    assert_true(run_until(f->base, &o.done, 1, 5000));
    assert_int_equal(o.err, DAGI_ETOOBIG);
    assert_non_null(strstr(o.message, "100 bytes"));
    outcome_release(&o);
}

static void test_connection_refused(void **state)
{
    struct fixture *f = *state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    getsockname(fd, (struct sockaddr *)&sin, &len);
    close(fd); /* nobody listens there now */

    struct outcome o;
    outcome_init(&o, f);
    char u[64];
    snprintf(u, sizeof(u), "http://127.0.0.1:%d/", ntohs(sin.sin_port));
    struct dagi_http_request_opts req = {
        .url = u, .on_headers = on_headers, .on_done = on_done, .ud = &o};
    assert_int_equal(dagi_http_client_request(f->client, &req, NULL), 0);
    assert_true(run_until(f->base, &o.done, 1, 5000));
    assert_int_equal(o.err, DAGI_EIO);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.headers_calls, 0);
    assert_non_null(strstr(o.message, "onnect"));
    outcome_release(&o);
}

static void test_concurrent(void **state)
{
    struct fixture *f = *state;
    enum { N = 10 };
    struct outcome o[N];
    int64_t start = now_ms();
    for (int i = 0; i < N; i++) {
        outcome_init(&o[i], f);
        struct dagi_http_request_opts req = opts_for("/sse", &o[i]);
        assert_int_equal(dagi_http_client_request(f->client, &req, NULL), 0);
    }
    for (int i = 0; i < N; i++)
        assert_true(run_until(f->base, &o[i].done, 1, 5000));
    /* in parallel: ten 200 ms streams take far less than 2 s */
    assert_true(now_ms() - start < 1500);
    for (int i = 0; i < N; i++) {
        assert_int_equal(o[i].err, 0);
        assert_int_equal(o[i].status, 200);
        assert_int_equal(o[i].body_len, o[0].body_len);
        assert_memory_equal(o[i].body, o[0].body, o[0].body_len);
    }
    assert_non_null(strstr(o[0].body, "data: [DONE]"));
    for (int i = 0; i < N; i++)
        outcome_release(&o[i]);
    assert_int_equal(dagi_http_client_connections_opened(f->client), N);
}

static void test_free_in_flight(void **state)
{
    struct fixture *f = *state;
    struct outcome o[7];
    static const char *const paths[] = {"/sse",  "/sse", "/sse",  "/stall",
                                        "/slow", "/big", "/hello"};
    for (int i = 0; i < 7; i++) {
        outcome_init(&o[i], f);
        struct dagi_http_request_opts req = opts_for(paths[i], &o[i]);
        if (i < 3)
            req.on_data = on_data;
        req.idle_timeout_ms = 5000;
        assert_int_equal(dagi_http_client_request(f->client, &req, NULL), 0);
    }
    run_for(f->base, 50);
    int done_before = 0;
    for (int i = 0; i < 7; i++)
        done_before += o[i].done;
    dagi_http_client_free(f->client);
    f->client = NULL;
    run_for(f->base, 50); /* nothing may fire for the freed calls */
    int done_after = 0;
    for (int i = 0; i < 7; i++) {
        done_after += o[i].done;
        outcome_release(&o[i]);
    }
    assert_int_equal(done_after, done_before);
}

static void test_callback_abort(void **state)
{
    struct fixture *f = *state;
    for (int where = 1; where <= 2; where++) {
        struct outcome o;
        outcome_init(&o, f);
        o.abort_in = where;
        struct dagi_http_request_opts req = opts_for("/sse", &o);
        req.on_data = on_data;
        assert_int_equal(dagi_http_client_request(f->client, &req, NULL), 0);
        assert_true(run_until(f->base, &o.done, 1, 5000));
        assert_int_equal(o.err, DAGI_ECANCELED);
        assert_int_equal(o.headers_calls, 1);
        assert_int_equal(o.data_calls, where == 1 ? 0 : 1);
        outcome_release(&o);
    }
}

static int cancel_in_headers(struct dagi_http_call *call, long status, void *ud)
{
    struct outcome *o = ud;
    o->headers_calls++;
    dagi_http_call_cancel(call);
    dagi_http_call_cancel(call); /* twice is harmless */
    return 0;
}

struct nested {
    struct outcome outer, inner;
    struct fixture *f;
};

static int start_inner_on_data(struct dagi_http_call *call, const char *data, size_t len, void *ud)
{
    struct nested *n = ud;
    if (n->outer.data_calls++ == 0) {
        /* curl is on the stack here: the new call must wait for it */
        struct dagi_http_request_opts req = opts_for("/hello", &n->inner);
        assert_int_equal(dagi_http_client_request(n->f->client, &req, NULL), 0);
    }
    return 0;
}

static void on_nested_outer_done(struct dagi_http_call *call, const struct dagi_http_response *resp,
                                 void *ud)
{
    struct nested *n = ud;
    on_done(call, resp, &n->outer);
}

static void test_reentrancy(void **state)
{
    struct fixture *f = *state;
    /* cancel from inside on_headers: nothing else runs, not even on_done */
    struct outcome o;
    outcome_init(&o, f);
    struct dagi_http_request_opts req = opts_for("/sse", &o);
    req.on_headers = cancel_in_headers;
    req.on_data = on_data;
    assert_int_equal(dagi_http_client_request(f->client, &req, NULL), 0);
    assert_true(run_until(f->base, &o.headers_calls, 1, 5000));
    run_for(f->base, 100);
    assert_int_equal(o.data_calls, 0);
    assert_int_equal(o.done, 0);
    outcome_release(&o);

    /* cancel before the loop ever ran */
    outcome_init(&o, f);
    req = opts_for("/hello", &o);
    struct dagi_http_call *call;
    assert_int_equal(dagi_http_client_request(f->client, &req, &call), 0);
    dagi_http_call_cancel(call);
    run_for(f->base, 50);
    assert_int_equal(o.done + o.headers_calls, 0);
    outcome_release(&o);

    /* a request started from inside on_data */
    struct nested n = {.f = f};
    outcome_init(&n.outer, f);
    outcome_init(&n.inner, f);
    req = (struct dagi_http_request_opts){.url = url("/sse"),
                                          .on_data = start_inner_on_data,
                                          .on_done = on_nested_outer_done,
                                          .ud = &n};
    assert_int_equal(dagi_http_client_request(f->client, &req, NULL), 0);
    assert_true(run_until(f->base, &n.outer.done, 1, 5000));
    assert_true(run_until(f->base, &n.inner.done, 1, 5000));
    assert_int_equal(n.outer.err, 0);
    assert_int_equal(n.inner.err, 0);
    assert_string_equal(n.inner.body, "hello world");
    outcome_release(&n.outer);
    outcome_release(&n.inner);
}

static void test_bad_options(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    outcome_init(&o, f);
    struct dagi_http_request_opts req = opts_for("/hello", &o);
    req.url = NULL;
    assert_int_equal(dagi_http_client_request(f->client, &req, NULL), DAGI_EINVAL);
    req = opts_for("/hello", &o);
    static const char *const smuggle[] = {"X-A: b\r\nX-Injected: 1", NULL};
    req.headers = smuggle;
    assert_int_equal(dagi_http_client_request(f->client, &req, NULL), DAGI_EINVAL);
    req = opts_for("/hello", &o);
    req.body_len = 5;
    assert_int_equal(dagi_http_client_request(f->client, &req, NULL), DAGI_EINVAL);
    req = opts_for("/hello", &o);
    req.method = "GET /x HTTP/1.1\r\n";
    assert_int_equal(dagi_http_client_request(f->client, &req, NULL), DAGI_EINVAL);
    /* not a scheme this client speaks */
    req = opts_for("/hello", &o);
    req.url = "file:///etc/passwd";
    assert_int_equal(dagi_http_client_request(f->client, &req, NULL), 0);
    assert_true(run_until(f->base, &o.done, 1, 5000));
    assert_int_equal(o.err, DAGI_EIO);
    assert_null(strstr(o.body ? o.body : "", "root:"));
    outcome_release(&o);
}

/* --- the scripted server (raw sockets, its own thread) ------------------- */

/* Answers by path; a script may send its answer in pieces (to split the
 * head and the body over several reads) and may close the connection. */
static struct {
    pthread_t thread;
    int fd, fd6; /* listeners; fd6 on [::1] only, -1 without IPv6 */
    int port, port6;
    int stop[2]; /* a byte here ends the thread */
    atomic_int accepted;
    atomic_int requests;
    atomic_int dropped; /* requests the server closed on without answering */
    pthread_mutex_t mu;
    char last_head[4096]; /* the last request's head, for checks */
    size_t last_body_len;
} raw;

#define RAW_MAX_CONNS 32
#define RAW_BIG_HEADER (100u << 10)

struct raw_conn {
    int fd;
    int requests;
    size_t len;
    char buf[256 << 10];
};

static void raw_send(int fd, const char *data, size_t len, size_t piece)
{
    for (size_t off = 0; off < len;) {
        size_t n = len - off < piece ? len - off : piece;
        ssize_t w = send(fd, data + off, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        off += (size_t)w;
        if (off < len && piece < len) {
            struct timespec ts = {0, 2 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
}

static void raw_send_str(int fd, const char *s)
{
    raw_send(fd, s, strlen(s), SIZE_MAX);
}

/* Answers one request; false when the connection is to be closed. */
static bool raw_answer(struct raw_conn *c, const char *method, const char *path)
{
    bool head = strcmp(method, "HEAD") == 0;
    if (strcmp(path, "/keep") == 0) {
        raw_send_str(c->fd, head ? "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
                                 : "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    } else if (strcmp(path, "/close") == 0) {
        raw_send_str(c->fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        return false;
    } else if (strcmp(path, "/http10") == 0) {
        /* stays open: the client must still not reuse it */
        raw_send_str(c->fd, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
    } else if (strcmp(path, "/stale") == 0) {
        if (c->requests > 1) {
            /* as if the server's idle timer had closed it just now */
            atomic_fetch_add(&raw.dropped, 1);
            return false;
        }
        raw_send_str(c->fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
    } else if (strcmp(path, "/chunked") == 0) {
        static const char r[] =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Kind: chunked\r\n"
            "\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n";
        raw_send(c->fd, r, sizeof(r) - 1, 7); /* the head is split too */
    } else if (strcmp(path, "/eof") == 0) {
        raw_send_str(c->fd, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil ");
        raw_send_str(c->fd, "close");
        return false;
    } else if (strcmp(path, "/interim") == 0) {
        raw_send_str(c->fd,
                     "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n"
                     "\r\nHTTP/1.1 200 OK\r\nX-Final: yes\r\nContent-Length: 4\r\n\r\nbody");
    } else if (strcmp(path, "/204") == 0) {
        raw_send_str(c->fd, "HTTP/1.1 204 No Content\r\nX-Kind: none\r\n\r\n");
    } else if (strcmp(path, "/bighead") == 0) {
        /* three 100 KiB headers: over the 256 KiB cap on a head */
        raw_send_str(c->fd, "HTTP/1.1 200 OK\r\n");
        char *line = malloc(RAW_BIG_HEADER + 16);
        memset(line, 'v', RAW_BIG_HEADER + 16);
        for (int i = 0; i < 3; i++) {
            memcpy(line, "X-Big: ", 7);
            memcpy(line + RAW_BIG_HEADER, "\r\n", 2);
            raw_send(c->fd, line, RAW_BIG_HEADER + 2, SIZE_MAX);
        }
        free(line);
        raw_send_str(c->fd, "Content-Length: 0\r\n\r\n");
    } else if (strcmp(path, "/manyheaders") == 0) {
        raw_send_str(c->fd, "HTTP/1.1 200 OK\r\n");
        for (int i = 0; i < 101; i++) {
            char h[32];
            snprintf(h, sizeof(h), "X-H%d: v\r\n", i);
            raw_send_str(c->fd, h);
        }
        raw_send_str(c->fd, "Content-Length: 0\r\n\r\n");
    } else if (strcmp(path, "/partial") == 0) {
        raw_send_str(c->fd, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
        return false;
    } else if (strcmp(path, "/garbage") == 0) {
        raw_send_str(c->fd, "SSH-2.0-OpenSSH\r\n\r\n");
        return false;
    } else if (strcmp(path, "/silent") == 0) {
        atomic_fetch_add(&raw.dropped, 1);
        return false;
    } else if (strcmp(path, "/stream") == 0) {
        /* chunks 20 ms apart; the client cancels after the first */
        raw_send_str(c->fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        for (int i = 0; i < 10; i++) {
            if (send(c->fd, "3\r\nabc\r\n", 8, MSG_NOSIGNAL) != 8)
                return false;
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        raw_send_str(c->fd, "0\r\n\r\n");
    } else {
        raw_send_str(c->fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    }
    return true;
}

/* Takes every complete request out of c->buf; false to close. */
static bool raw_serve(struct raw_conn *c)
{
    for (;;) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (!end)
            return true;
        size_t head_len = (size_t)(end - c->buf) + 4, body = 0;
        for (char *p = c->buf; p < end; p = strstr(p, "\r\n") + 2)
            if (strncasecmp(p, "Content-Length:", 15) == 0)
                body = strtoul(p + 15, NULL, 10);
        if (c->len < head_len + body)
            return true;
        char method[16] = "", path[256] = "";
        sscanf(c->buf, "%15s %255s", method, path);
        pthread_mutex_lock(&raw.mu);
        size_t n = head_len < sizeof(raw.last_head) - 1 ? head_len : sizeof(raw.last_head) - 1;
        memcpy(raw.last_head, c->buf, n);
        raw.last_head[n] = '\0';
        raw.last_body_len = body;
        pthread_mutex_unlock(&raw.mu);
        c->requests++;
        atomic_fetch_add(&raw.requests, 1);
        memmove(c->buf, c->buf + head_len + body, c->len - head_len - body);
        c->len -= head_len + body;
        if (!raw_answer(c, method, path))
            return false;
    }
}

static void *raw_main(void *arg)
{
    (void)arg;
    struct raw_conn *conns[RAW_MAX_CONNS] = {0};
    for (;;) {
        struct pollfd p[RAW_MAX_CONNS + 3];
        int n = 0;
        p[n++] = (struct pollfd){.fd = raw.stop[0], .events = POLLIN};
        p[n++] = (struct pollfd){.fd = raw.fd, .events = POLLIN};
        p[n++] = (struct pollfd){.fd = raw.fd6, .events = POLLIN}; /* -1 is ignored */
        for (int i = 0; i < RAW_MAX_CONNS; i++)
            p[n++] = (struct pollfd){.fd = conns[i] ? conns[i]->fd : -1, .events = POLLIN};
        if (poll(p, (nfds_t)n, -1) < 0)
            continue;
        if (p[0].revents)
            break;
        for (int l = 1; l <= 2; l++) {
            if (!(p[l].revents & POLLIN))
                continue;
            int fd = accept(p[l].fd, NULL, NULL);
            for (int i = 0; fd >= 0 && i < RAW_MAX_CONNS; i++) {
                if (!conns[i]) {
                    conns[i] = calloc(1, sizeof(*conns[i]));
                    conns[i]->fd = fd;
                    fd = -1;
                    atomic_fetch_add(&raw.accepted, 1);
                }
            }
            if (fd >= 0)
                close(fd);
        }
        for (int i = 0; i < RAW_MAX_CONNS; i++) {
            struct raw_conn *c = conns[i];
            if (!c || !p[3 + i].revents)
                continue;
            ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
            if (r > 0)
                c->len += (size_t)r;
            if (r <= 0 || !raw_serve(c)) {
                close(c->fd);
                free(c);
                conns[i] = NULL;
            }
        }
    }
    for (int i = 0; i < RAW_MAX_CONNS; i++) {
        if (conns[i]) {
            close(conns[i]->fd);
            free(conns[i]);
        }
    }
    return NULL;
}

static int raw_listen(int family, int *port)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_storage ss = {0};
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof(*sin);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_addr = in6addr_loopback;
        int one = 1;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        len = sizeof(*sin6);
    }
    if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 64) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    getsockname(fd, (struct sockaddr *)&ss, &len);
    *port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                    : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

static int raw_start(void)
{
    pthread_mutex_init(&raw.mu, NULL);
    raw.fd = raw_listen(AF_INET, &raw.port);
    raw.fd6 = raw_listen(AF_INET6, &raw.port6);
    if (raw.fd < 0 || pipe(raw.stop) != 0)
        return -1;
    return pthread_create(&raw.thread, NULL, raw_main, NULL);
}

static void raw_stop(void)
{
    if (write(raw.stop[1], "x", 1) != 1)
        abort();
    pthread_join(raw.thread, NULL);
    close(raw.stop[0]);
    close(raw.stop[1]);
    close(raw.fd);
    if (raw.fd6 >= 0)
        close(raw.fd6);
    pthread_mutex_destroy(&raw.mu);
}

static const char *raw_url(const char *path)
{
    char *u = url_buf[url_next++ % 8];
    snprintf(u, sizeof(url_buf[0]), "http://127.0.0.1:%d%s", raw.port, path);
    return u;
}

/* One call to the scripted server, run to its end. */
static void raw_call(struct fixture *f, struct outcome *o, const char *path, const char *method)
{
    outcome_init(o, f);
    struct dagi_http_request_opts req = {.url = raw_url(path),
                                         .method = method,
                                         .on_headers = on_headers,
                                         .on_done = on_done,
                                         .ud = o,
                                         .timeout_ms = 5000};
    assert_int_equal(dagi_http_client_request(f->client, &req, NULL), 0);
    assert_true(run_until(f->base, &o->done, 1, 5000));
}

/* --- native-only cases ------------------------------------------------------ */

static void test_native_reuse(void **state)
{
    struct fixture *f = *state;
    int accepted = atomic_load(&raw.accepted), requests = atomic_load(&raw.requests);
    /* one connection carries every kind of clean end: a Content-Length
     * body, a chunked one with trailers, HEAD, 204, interim 1xx */
    static const char *const paths[] = {"/keep", "/chunked", "/keep", "/204", "/interim", "/keep"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        struct outcome o;
        raw_call(f, &o, paths[i], i == 2 ? "HEAD" : NULL);
        if (o.err)
            fail_msg("%s: %s", paths[i], o.message);
        assert_int_equal(o.headers_calls, 1);
        outcome_release(&o);
        run_for(f->base, 5); /* time for a close to show, were there one */
    }
    assert_int_equal(dagi_http_client_connections_opened(f->client), 1);
    assert_int_equal(atomic_load(&raw.accepted) - accepted, 1);
    assert_int_equal(atomic_load(&raw.requests) - requests, 6);
}

static void test_native_no_reuse(void **state)
{
    struct fixture *f = *state;
    int accepted = atomic_load(&raw.accepted), requests = atomic_load(&raw.requests);
    /* Connection: close, HTTP/1.0 (left open by the server), close-delimited */
    static const char *const paths[] = {"/close", "/close", "/http10", "/http10", "/eof", "/keep"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        struct outcome o;
        raw_call(f, &o, paths[i], NULL);
        if (o.err)
            fail_msg("%s: %s", paths[i], o.message);
        assert_int_equal(o.status, 200);
        assert_string_equal(o.body, strcmp(paths[i], "/eof") == 0 ? "until close" : "ok");
        outcome_release(&o);
    }
    assert_int_equal(dagi_http_client_connections_opened(f->client), 6);
    assert_int_equal(atomic_load(&raw.accepted) - accepted, 6);
    /* no request went to a connection that was not to be reused */
    assert_int_equal(atomic_load(&raw.requests) - requests, 6);
}

static void test_native_framing(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    /* chunked, head and body split over many reads, trailer dropped */
    raw_call(f, &o, "/chunked", NULL);
    assert_int_equal(o.err, 0);
    assert_string_equal(o.body, "hello world");
    outcome_release(&o);

    /* interim responses are skipped: one on_headers, the final headers */
    outcome_init(&o, f);
    o.header_name = "x-final";
    struct dagi_http_request_opts req = {
        .url = raw_url("/interim"), .on_headers = on_headers, .on_done = on_done, .ud = &o};
    assert_int_equal(dagi_http_client_request(f->client, &req, NULL), 0);
    assert_true(run_until(f->base, &o.done, 1, 5000));
    assert_int_equal(o.err, 0);
    assert_int_equal(o.headers_calls, 1);
    assert_int_equal(o.headers_status, 200);
    assert_string_equal(o.header_value, "yes");
    assert_string_equal(o.body, "body");
    outcome_release(&o);

    /* HEAD and 204: no body, whatever Content-Length says */
    raw_call(f, &o, "/keep", "HEAD");
    assert_int_equal(o.err, 0);
    assert_int_equal(o.body_len, 0);
    outcome_release(&o);
    raw_call(f, &o, "/204", NULL);
    assert_int_equal(o.err, 0);
    assert_int_equal(o.status, 204);
    outcome_release(&o);

    /* cut short: by Content-Length, or garbage instead of a status line */
    raw_call(f, &o, "/partial", NULL);
    assert_int_equal(o.err, DAGI_EIO);
    assert_non_null(strstr(o.message, "7 bytes remaining"));
    assert_int_equal(o.status, 200);
    outcome_release(&o);
    raw_call(f, &o, "/garbage", NULL);
    assert_int_equal(o.err, DAGI_EIO);
    assert_int_equal(o.headers_calls, 0);
    outcome_release(&o);
    raw_call(f, &o, "/silent", NULL);
    assert_int_equal(o.err, DAGI_EIO);
    assert_non_null(strstr(o.message, "Empty reply"));
    outcome_release(&o);
}

static void test_native_head_cap(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    raw_call(f, &o, "/bighead", NULL);
    assert_int_equal(o.err, DAGI_ETOOBIG);
    assert_non_null(strstr(o.message, "262144"));
    assert_int_equal(o.headers_calls, 0);
    outcome_release(&o);
    raw_call(f, &o, "/manyheaders", NULL);
    assert_int_equal(o.err, DAGI_ETOOBIG);
    assert_int_equal(o.headers_calls, 0);
    outcome_release(&o);
    /* the client is still fine */
    raw_call(f, &o, "/keep", NULL);
    assert_int_equal(o.err, 0);
    outcome_release(&o);
}

static void test_native_stale_retry(void **state)
{
    struct fixture *f = *state;
    int dropped = atomic_load(&raw.dropped);
    /* the second request reuses the kept-alive connection, which the server
     * closes on seeing it: retried once, on a fresh connection */
    struct outcome o;
    raw_call(f, &o, "/stale", NULL);
    assert_int_equal(o.err, 0);
    assert_string_equal(o.body, "first");
    outcome_release(&o);
    raw_call(f, &o, "/stale", NULL);
    if (o.err)
        fail_msg("retry: %s", o.message);
    assert_string_equal(o.body, "first"); /* the fresh connection's first answer */
    outcome_release(&o);
    assert_int_equal(atomic_load(&raw.dropped) - dropped, 1);
    assert_int_equal(dagi_http_client_connections_opened(f->client), 2);

    /* once only: the kept-alive connection is dropped, and so is the
     * fresh one the retry opens; then the call fails */
    raw_call(f, &o, "/silent", NULL);
    assert_int_equal(o.err, DAGI_EIO);
    outcome_release(&o);
    assert_int_equal(dagi_http_client_connections_opened(f->client), 3);
    assert_int_equal(atomic_load(&raw.dropped) - dropped, 3);

    /* never on a connection that was not reused */
    reopen(f, (struct dagi_http_client_opts){0});
    raw_call(f, &o, "/silent", NULL);
    assert_int_equal(o.err, DAGI_EIO);
    outcome_release(&o);
    assert_int_equal(dagi_http_client_connections_opened(f->client), 1);
    assert_int_equal(atomic_load(&raw.dropped) - dropped, 4);
}

static void test_native_queueing(void **state)
{
    struct fixture *f = *state;
    reopen(f, (struct dagi_http_client_opts){.max_connections_per_host = 2});
    enum { N = 5 };
    struct outcome o[N];
    int64_t start = now_ms();
    for (int i = 0; i < N; i++) {
        outcome_init(&o[i], f);
        struct dagi_http_request_opts req = opts_for("/sse", &o[i]);
        assert_int_equal(dagi_http_client_request(f->client, &req, NULL), 0);
    }
    for (int i = 0; i < N; i++)
        assert_true(run_until(f->base, &o[i].done, 1, 5000));
    /* five 200 ms streams over two connections: three rounds */
    assert_true(now_ms() - start >= 3 * SSE_EVENTS * SSE_INTERVAL_MS * 8 / 10);
    for (int i = 0; i < N; i++) {
        assert_int_equal(o[i].err, 0);
        assert_non_null(strstr(o[i].body, "data: [DONE]"));
        outcome_release(&o[i]);
    }
    assert_int_equal(dagi_http_client_connections_opened(f->client), 2);

    /* a queued call cancelled before its turn never reaches the server */
    int requests = atomic_load(&raw.requests);
    reopen(f, (struct dagi_http_client_opts){.max_connections_per_host = 1});
    struct outcome a, b;
    outcome_init(&a, f);
    outcome_init(&b, f);
    struct dagi_http_request_opts req = {
        .url = raw_url("/chunked"), .on_headers = on_headers, .on_done = on_done, .ud = &a};
    assert_int_equal(dagi_http_client_request(f->client, &req, NULL), 0);
    struct dagi_http_call *queued;
    req.ud = &b;
    assert_int_equal(dagi_http_client_request(f->client, &req, &queued), 0);
    run_for(f->base, 5);
    dagi_http_call_cancel(queued);
    assert_true(run_until(f->base, &a.done, 1, 5000));
    run_for(f->base, 20);
    assert_int_equal(a.err, 0);
    assert_int_equal(b.done + b.headers_calls, 0);
    assert_int_equal(atomic_load(&raw.requests) - requests, 1);
    outcome_release(&a);
    outcome_release(&b);
}

static void test_native_total_limit(void **state)
{
    struct fixture *f = *state;
    /* one connection in all: "localhost" is another host than 127.0.0.1
     * (same server), so its call closes the idle one to get its own */
    reopen(f, (struct dagi_http_client_opts){.max_total_connections = 1});
    int closes = atomic_load(&srv.closes);
    struct outcome o;
    outcome_init(&o, f);
    struct dagi_http_request_opts req = opts_for("/hello", &o);
    assert_int_equal(dagi_http_client_request(f->client, &req, NULL), 0);
    assert_true(run_until(f->base, &o.done, 1, 5000));
    assert_int_equal(o.err, 0);
    outcome_release(&o);
    outcome_init(&o, f);
    char u[64];
    snprintf(u, sizeof(u), "http://localhost:%d/hello", srv.port);
    req.url = u;
    assert_int_equal(dagi_http_client_request(f->client, &req, NULL), 0);
    assert_true(run_until(f->base, &o.done, 1, 5000));
    assert_int_equal(o.err, 0);
    assert_string_equal(o.body, "hello world");
    outcome_release(&o);
    assert_int_equal(dagi_http_client_connections_opened(f->client), 2);
    int64_t deadline = now_ms() + 2000;
    while (atomic_load(&srv.closes) == closes && now_ms() < deadline)
        run_for(f->base, 10);
    assert_true(atomic_load(&srv.closes) > closes);

    /* a call waiting on the total limit goes as soon as another host's
     * connection turns idle, not when something else happens to wake it */
    struct outcome busy, waiter;
    outcome_init(&busy, f);
    outcome_init(&waiter, f);
    req = opts_for("/sse", &busy); /* 127.0.0.1, about 200 ms */
    assert_int_equal(dagi_http_client_request(f->client, &req, NULL), 0);
    run_for(f->base, 20);
    req = (struct dagi_http_request_opts){
        .url = raw_url("/keep"), .on_done = on_done, .ud = &waiter, .timeout_ms = 5000};
    snprintf(u, sizeof(u), "http://localhost:%d/keep", raw.port);
    req.url = u;
    assert_int_equal(dagi_http_client_request(f->client, &req, NULL), 0);
    assert_true(run_until(f->base, &busy.done, 1, 5000));
    int64_t freed = now_ms();
    assert_true(run_until(f->base, &waiter.done, 1, 5000));
    assert_int_equal(busy.err, 0);
    assert_int_equal(waiter.err, 0);
    assert_true(now_ms() - freed < 500);
    outcome_release(&busy);
    outcome_release(&waiter);
}

static int cancel_in_on_data(struct dagi_http_call *call, const char *data, size_t len, void *ud)
{
    struct outcome *o = ud;
    o->data_calls++;
    dagi_http_call_cancel(call);
    return 0;
}

static void test_native_cancel(void **state)
{
    struct fixture *f = *state;
    /* before connecting: no socket is ever opened */
    struct outcome o;
    outcome_init(&o, f);
    struct dagi_http_request_opts req = {
        .url = raw_url("/keep"), .on_headers = on_headers, .on_done = on_done, .ud = &o};
    struct dagi_http_call *call;
    assert_int_equal(dagi_http_client_request(f->client, &req, &call), 0);
    dagi_http_call_cancel(call);
    run_for(f->base, 20);
    assert_int_equal(o.done + o.headers_calls, 0);
    assert_int_equal(dagi_http_client_connections_opened(f->client), 0);
    outcome_release(&o);

    /* inside on_headers, then inside on_data: the connection is closed
     * mid-response and the next call opens a new one */
    for (int where = 0; where < 2; where++) {
        outcome_init(&o, f);
        req = (struct dagi_http_request_opts){.url = raw_url("/stream"),
                                              .on_headers = where ? on_headers : cancel_in_headers,
                                              .on_data = cancel_in_on_data,
                                              .on_done = on_done,
                                              .ud = &o};
        assert_int_equal(dagi_http_client_request(f->client, &req, NULL), 0);
        assert_true(run_until(f->base, where ? &o.data_calls : &o.headers_calls, 1, 5000));
        run_for(f->base, 60);
        assert_int_equal(o.done, 0);
        assert_int_equal(o.data_calls, where ? 1 : 0);
        outcome_release(&o);
        int accepted = atomic_load(&raw.accepted);
        raw_call(f, &o, "/keep", NULL);
        assert_int_equal(o.err, 0);
        outcome_release(&o);
        assert_int_equal(atomic_load(&raw.accepted) - accepted, 1);
    }
}

static void test_native_request_wire(void **state)
{
    struct fixture *f = *state;
    /* a body big enough that curl would ask "Expect: 100-continue" */
    size_t n = 200u << 10;
    char *body = malloc(n);
    memset(body, 'b', n);
    static const char *const headers[] = {"X-Custom: yes", "Content-Length: 1", "X-Empty:", NULL};
    struct outcome o;
    outcome_init(&o, f);
    struct dagi_http_request_opts req = {.url = raw_url("/keep?q=1#frag"),
                                         .headers = headers,
                                         .body = body,
                                         .body_len = n,
                                         .on_headers = on_headers,
                                         .on_done = on_done,
                                         .ud = &o};
    assert_int_equal(dagi_http_client_request(f->client, &req, NULL), 0);
    assert_true(run_until(f->base, &o.done, 1, 5000));
    free(body);
    assert_int_equal(o.err, 0);
    outcome_release(&o);
    pthread_mutex_lock(&raw.mu);
    char head[sizeof(raw.last_head)];
    memcpy(head, raw.last_head, sizeof(head));
    size_t body_len = raw.last_body_len;
    pthread_mutex_unlock(&raw.mu);
    char host[64];
    snprintf(host, sizeof(host), "\r\nHost: 127.0.0.1:%d\r\n", raw.port);
    assert_int_equal(strncmp(head, "POST /keep?q=1 HTTP/1.1\r\n", 25), 0);
    assert_non_null(strstr(head, host));
    assert_non_null(strstr(head, "\r\nUser-Agent: dagi/"));
    assert_non_null(strstr(head, "\r\nX-Custom: yes\r\n"));
    assert_non_null(strstr(head, "\r\nContent-Length: 204800\r\n"));
    assert_null(strstr(head, "Content-Length: 1\r\n"));
    assert_null(strstr(head, "X-Empty"));
    assert_null(strcasestr(head, "expect"));
    assert_int_equal(body_len, n);
}

static void test_native_localhost(void **state)
{
    struct fixture *f = *state;
    struct outcome o;
    outcome_init(&o, f);
    char u[64];
    snprintf(u, sizeof(u), "http://LocalHost:%d/keep", raw.port);
    struct dagi_http_request_opts req = {.url = u, .on_done = on_done, .ud = &o};
    assert_int_equal(dagi_http_client_request(f->client, &req, NULL), 0);
    assert_true(run_until(f->base, &o.done, 1, 5000));
    assert_int_equal(o.err, 0);
    assert_string_equal(o.body, "ok");
    outcome_release(&o);
    if (raw.fd6 < 0) {
        fprintf(stderr, "# no IPv6 loopback: the ::1 cases are skipped\n");
        return;
    }
    /* a server on ::1 only: 127.0.0.1 refuses, ::1 answers */
    outcome_init(&o, f);
    snprintf(u, sizeof(u), "http://localhost:%d/keep", raw.port6);
    assert_int_equal(dagi_http_client_request(f->client, &req, NULL), 0);
    assert_true(run_until(f->base, &o.done, 1, 5000));
    if (o.err)
        fail_msg("::1: %s", o.message);
    outcome_release(&o);
    outcome_init(&o, f);
    snprintf(u, sizeof(u), "http://[::1]:%d/keep", raw.port6);
    assert_int_equal(dagi_http_client_request(f->client, &req, NULL), 0);
    assert_true(run_until(f->base, &o.done, 1, 5000));
    assert_int_equal(o.err, 0);
    outcome_release(&o);
}

static void test_url_split(void **state)
{
    (void)state;
    struct http_url u;
    assert_int_equal(http_url_split("http://127.0.0.1:8080/v1/x?y=1#f", &u), 0);
    assert_int_equal(u.port, 8080);
    assert_string_equal(u.authority, "127.0.0.1:8080");
    assert_int_equal(u.target_len, strlen("/v1/x?y=1"));
    assert_int_equal(http_url_split("HTTP://LOCALHOST", &u), 0);
    assert_int_equal(u.port, 80);
    assert_int_equal(u.naddrs, 2);
    assert_int_equal(u.target_len, 0);
    assert_int_equal(http_url_split("http://[::1]:11434/api", &u), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(http_url_split("https://127.0.0.1/", &u), HTTP_NEEDS_TLS);
    assert_int_equal(http_url_split("http://ollama:11434/", &u), HTTP_NEEDS_RESOLVER);
    assert_int_equal(http_url_split("http://localhost.:80/", &u), HTTP_NEEDS_RESOLVER);
    static const char *const curls[] = {
        "file:///etc/passwd",
        "http://u:p@127.0.0.1/",
        "http://127.0.0.1:0/",
        "http://127.0.0.1:65536/",
        "http://127.0.0.1:/",
        "http://127.0.0.1/a b",
        "http://127.0.0.1?q",
        "http://[127.0.0.1]/",
        "http://[fe80::1%25eth0]/",
        "http:///x",
        "http://[::1/",
    };
    for (size_t i = 0; i < sizeof(curls) / sizeof(curls[0]); i++)
        if (http_url_split(curls[i], &u) != HTTP_NEEDS_ANY_URL)
            fail_msg("%s: native", curls[i]);
    struct event_base *base = event_base_new();
    assert_null(dagi_http_client_new(base, &(struct dagi_http_client_opts){.backend = "bogus"}));
    event_base_free(base);
}

static int group_setup(void **state)
{
    (void)state;
    evthread_use_pthreads();
    if (raw_start() != 0)
        return -1;
    return server_start();
}

static int group_teardown(void **state)
{
    (void)state;
    server_stop();
    raw_stop();
    curl_global_cleanup();
    libevent_global_shutdown();
    return 0;
}

/* Each conformance case once per backend, named after it. */
#define T(backend, fn, setup)                                                                      \
    {                                                                                              \
        backend ": " #fn, fn, setup, teardown, NULL                                                \
    }
#define CONFORMANCE(backend, setup)                                                                \
    T(backend, test_get_buffered, setup), T(backend, test_post_echo, setup),                       \
        T(backend, test_sse_streaming, setup), T(backend, test_cancel_mid_stream, setup),          \
        T(backend, test_connection_reuse, setup), T(backend, test_total_timeout, setup),           \
        T(backend, test_idle_timeout, setup), T(backend, test_response_cap, setup),                \
        T(backend, test_connection_refused, setup), T(backend, test_concurrent, setup),            \
        T(backend, test_free_in_flight, setup), T(backend, test_callback_abort, setup),            \
        T(backend, test_reentrancy, setup), T(backend, test_bad_options, setup)

int main(void)
{
    const struct CMUnitTest tests[] = {
        CONFORMANCE("native", setup_native),
        CONFORMANCE("curl", setup_curl),
        T("native", test_native_reuse, setup_native),
        T("native", test_native_no_reuse, setup_native),
        T("native", test_native_framing, setup_native),
        T("native", test_native_head_cap, setup_native),
        T("native", test_native_stale_retry, setup_native),
        T("native", test_native_queueing, setup_native),
        T("native", test_native_total_limit, setup_native),
        T("native", test_native_cancel, setup_native),
        T("native", test_native_request_wire, setup_native),
        T("native", test_native_localhost, setup_native),
        cmocka_unit_test(test_url_split),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
