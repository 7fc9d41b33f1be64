/* HTTP client against a real HTTP server in the same process: libevent's
 * evhttp on 127.0.0.1, on its own event_base in a second thread.  The client
 * runs on the test thread's loop, as it does in the node. */
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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/http_client.h"
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

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->base = event_base_new();
    f->client = dagi_http_client_new(f->base, NULL);
    *state = f;
    return 0;
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

static int group_setup(void **state)
{
    (void)state;
    evthread_use_pthreads();
    return server_start();
}

static int group_teardown(void **state)
{
    (void)state;
    server_stop();
    curl_global_cleanup();
    libevent_global_shutdown();
    return 0;
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_get_buffered),      T(test_post_echo),        T(test_sse_streaming),
        T(test_cancel_mid_stream), T(test_connection_reuse), T(test_total_timeout),
        T(test_idle_timeout),      T(test_response_cap),     T(test_connection_refused),
        T(test_concurrent),        T(test_free_in_flight),   T(test_callback_abort),
        T(test_reentrancy),        T(test_bad_options),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
