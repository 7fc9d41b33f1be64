/* The real server on an event loop in a second thread, driven through raw
 * sockets (and an OpenSSL client for TLS) from the test thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/http_server.h"

static struct event_base *base;
static struct dagi_http_server *srv;
static pthread_t loop_thread;
static int port;
static _Atomic int flag_drain, flag_close, flag_drained, paused_count;
static _Atomic size_t max_pending;

/* --- loop plumbing --- */

static void *run_loop(void *arg)
{
    event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
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
    struct call *c = arg;
    c->fn(c->arg);
    pthread_mutex_lock(&c->lock);
    c->done = 1;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

/* Runs fn on the loop thread and waits for it. */
static void on_loop(void (*fn)(void *), void *arg)
{
    struct call c = {fn, arg, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    struct timeval zero = {0, 0};
    event_base_once(base, -1, EV_TIMEOUT, on_call, &c, &zero);
    pthread_mutex_lock(&c.lock);
    while (!c.done)
        pthread_cond_wait(&c.cond, &c.lock);
    pthread_mutex_unlock(&c.lock);
}

static void msleep(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* --- handlers --- */

static void h_text(struct dagi_http_req *req, void *ud)
{
    char body[256];
    const char *id = dagi_http_req_param(req, "id");
    const char *rest = dagi_http_req_param(req, "rest");
    const char *q = dagi_http_req_query_param(req, "q");
    snprintf(body, sizeof(body), "%s id=%s rest=%s q=%s", (const char *)ud, id ? id : "-",
             rest ? rest : "-", q ? q : "-");
    dagi_http_respond(req, 200, "text/plain", body, strlen(body));
}

static void h_json(struct dagi_http_req *req, void *ud)
{
    json_t *doc;
    if (dagi_http_req_json(req, &doc))
        return;
    dagi_http_respond_json(req, 200, doc);
}

static void h_echo(struct dagi_http_req *req, void *ud)
{
    size_t len;
    const char *body = dagi_http_req_body(req, &len);
    dagi_http_respond(req, 200, "application/octet-stream", body, len);
}

struct upload {
    struct dagi_http_req *req;
    size_t total;
    int chunks;
    struct event *resume;
};

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct upload *u = arg;
    dagi_http_req_resume_body(u->req);
}

static int on_upload_data(struct dagi_http_req *req, const char *data, size_t len, void *ud)
{
    struct upload *u = ud;
    u->total += len;
    /* Pause every few chunks; a timer resumes reading. */
    if (++u->chunks % 50 == 0) {
        atomic_fetch_add(&paused_count, 1);
        struct timeval tv = {0, 10000};
        evtimer_add(u->resume, &tv);
        return DAGI_EAGAIN;
    }
    return 0;
}

static void on_upload_end(struct dagi_http_req *req, void *ud)
{
    struct upload *u = ud;
    char body[64];
    snprintf(body, sizeof(body), "got %zu", u->total);
    event_free(u->resume);
    free(u);
    dagi_http_respond(req, 200, "text/plain", body, strlen(body));
}

static void on_upload_close(struct dagi_http_req *req, void *ud)
{
    struct upload *u = ud;
    event_free(u->resume);
    free(u);
}

static void h_upload(struct dagi_http_req *req, void *ud)
{
    struct upload *u = calloc(1, sizeof(*u));
    u->req = req;
    u->resume = evtimer_new(base, on_resume, u);
    dagi_http_req_on_close(req, on_upload_close, u);
    dagi_http_req_read_body(req, on_upload_data, on_upload_end, u);
}

static void on_sse_drain(struct dagi_http_req *req, void *ud)
{
    atomic_store(&flag_drain, 1);
    dagi_http_sse_send(req, "done", "bye");
    dagi_http_stream_end(req);
}

/* Writes ~8 MiB at once; the client reads nothing for a while. */
static void h_flood(struct dagi_http_req *req, void *ud)
{
    static char line[64 * 1024];
    memset(line, 'x', sizeof(line) - 1);
    for (int i = 0; i < 128; i++)
        dagi_http_sse_send(req, "tok", line);
    atomic_store(&max_pending, dagi_http_stream_pending(req));
    dagi_http_stream_on_drain(req, on_sse_drain, NULL);
}

static void on_hold_close(struct dagi_http_req *req, void *ud)
{
    atomic_store(&flag_close, 1);
}

/* Sends one event and holds the stream open. */
static void h_hold(struct dagi_http_req *req, void *ud)
{
    dagi_http_req_on_close(req, on_hold_close, NULL);
    dagi_http_sse_send(req, NULL, "first\nline two");
}

struct ticker {
    struct dagi_http_req *req;
    struct event *ev;
    int n;
};

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct ticker *t = arg;
    char buf[32];
    snprintf(buf, sizeof(buf), "tick %d", t->n);
    dagi_http_sse_send(t->req, NULL, buf);
    if (++t->n == 5) {
        dagi_http_stream_end(t->req);
        event_free(t->ev);
        free(t);
        return;
    }
    struct timeval tv = {0, 60000};
    evtimer_add(t->ev, &tv);
}

static void on_ticker_close(struct dagi_http_req *req, void *ud)
{
    struct ticker *t = ud;
    event_free(t->ev);
    free(t);
}

static void h_ticker(struct dagi_http_req *req, void *ud)
{
    struct ticker *t = calloc(1, sizeof(*t));
    t->req = req;
    t->ev = evtimer_new(base, on_tick, t);
    dagi_http_req_on_close(req, on_ticker_close, t);
    on_tick(-1, 0, t);
}

/* A gate that decides later, as when a key is looked up off the loop:
 * /later lets the request through after 20 ms, /later-refused answers 401
 * then. */
static void on_gate_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct dagi_http_req *req = arg;
    if (strcmp(dagi_http_req_path(req), "/later-refused") == 0)
        dagi_http_respond_error(req, 401, "unauthorized", NULL, "decided later: no");
    dagi_http_req_gate_resume(req);
}

static int gate(struct dagi_http_req *req, const struct dagi_http_route *route, void *ud)
{
    if (strcmp(route->pattern, "/private") == 0) {
        dagi_http_respond_error(req, 401, "unauthorized", NULL, "no key");
        return -1;
    }
    if (strncmp(route->pattern, "/later", 6) == 0) {
        struct timeval tv = {0, 20000};
        event_base_once(base, -1, EV_TIMEOUT, on_gate_timer, req, &tv);
        return DAGI_HTTP_GATE_PENDING;
    }
    return 0;
}

/* The second look, with the body: "/checked" refuses a body saying "bad". */
static int body_gate(struct dagi_http_req *req, const struct dagi_http_route *route, void *ud)
{
    size_t len;
    const char *body = dagi_http_req_body(req, &len);
    if (strcmp(route->pattern, "/checked") == 0 && len == 3 && memcmp(body, "bad", 3) == 0) {
        dagi_http_respond_error(req, 400, "invalid_field", "body", "bad body");
        return -1;
    }
    return 0;
}

/* --- fixture --- */

static void start(struct dagi_http_server_opts *o)
{
    base = event_base_new();
    struct dagi_error err;
    o->listen = "127.0.0.1:0";
    if (!o->max_body)
        o->max_body = 1 << 20;
    assert_int_equal(dagi_http_server_new(base, o, &srv, &err), 0);
    const struct dagi_http_route routes[] = {
        {"GET", "/items/{id}", h_text, "param", 0, 0, NULL, NULL},
        {"GET", "/items/special", h_text, "literal", 0, 0, NULL, NULL},
        {"GET", "/files/{rest*}", h_text, "rest", 0, 0, NULL, NULL},
        {"DELETE", "/items/{id}", h_text, "delete", 0, 0, NULL, NULL},
        {"GET", "/healthz", h_text, "ok", DAGI_ROUTE_PUBLIC, 0, NULL, NULL},
        {"GET", "/private", h_text, "secret", 0, 0, NULL, NULL},
        {"POST", "/json", h_json, NULL, 0, 0, NULL, NULL},
        {"POST", "/echo", h_echo, NULL, 0, 100, NULL, NULL},
        {"POST", "/upload", h_upload, NULL, DAGI_ROUTE_STREAM_BODY, 10 << 20, NULL, NULL},
        {"GET", "/flood", h_flood, NULL, 0, 0, NULL, NULL},
        {"GET", "/hold", h_hold, NULL, 0, 0, NULL, NULL},
        {"GET", "/ticker", h_ticker, NULL, 0, 0, NULL, NULL},
        {"POST", "/later", h_echo, NULL, 0, 100, NULL, NULL},
        {"POST", "/later-refused", h_echo, NULL, 0, 100, NULL, NULL},
        {"POST", "/checked", h_echo, NULL, 0, 100, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        assert_int_equal(dagi_http_server_add_route(srv, &routes[i]), 0);
    assert_int_equal(dagi_http_server_add_route(srv, &routes[0]), DAGI_EEXIST);
    struct dagi_http_route bad = {"GET", "/x/{a*}/y", h_text, NULL, 0, 0, NULL, NULL};
    assert_int_equal(dagi_http_server_add_route(srv, &bad), DAGI_EINVAL);
    dagi_http_server_set_gate(srv, gate, NULL);
    dagi_http_server_set_body_gate(srv, body_gate, NULL);
    int rc = dagi_http_server_listen(srv, &err);
    if (rc)
        fail_msg("%s", err.message);
    port = atoi(strrchr(dagi_http_server_address(srv), ':') + 1);
    atomic_store(&flag_drain, 0);
    atomic_store(&flag_close, 0);
    atomic_store(&flag_drained, 0);
    pthread_create(&loop_thread, NULL, run_loop, NULL);
}

static void free_server(void *arg)
{
    dagi_http_server_free(srv);
    event_base_loopbreak(base);
}

static void stop(void)
{
    on_loop(free_server, NULL);
    pthread_join(loop_thread, NULL);
    /* Let libevent run the finalizers of the freed bufferevents. */
    event_base_loop(base, EVLOOP_NONBLOCK);
    event_base_free(base);
}

static int client_rcvbuf(int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    return fd;
}

static int client(void)
{
    return client_rcvbuf(0);
}

static void send_str(int fd, const char *s)
{
    size_t len = strlen(s), off = 0;
    while (off < len) {
        ssize_t n = send(fd, s + off, len - off, MSG_NOSIGNAL);
        assert_true(n > 0);
        off += (size_t)n;
    }
}

/* Bytes read past the end of the last response (pipelining). */
static char carry[1 << 16];
static size_t ncarry;
static int carry_fd = -1;

/* Reads one response (Content-Length or chunked) into buf; returns its
 * length, 0 on EOF before anything. */
static size_t read_response(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    if (carry_fd == fd && ncarry < cap) {
        memcpy(buf, carry, ncarry);
        len = ncarry;
    }
    ncarry = 0;
    size_t done = 0;
    for (;;) {
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end) {
            size_t head = (size_t)(end - buf) + 4;
            const char *cl = strcasestr(buf, "Content-Length:");
            if (strncmp(buf, "HTTP/1.1 100", 12) == 0) {
                done = head;
            } else if (cl && cl < end) {
                size_t want = head + strtoul(cl + 15, NULL, 10);
                if (len >= want)
                    done = want;
            } else if (strcasestr(buf, "Transfer-Encoding: chunked")) {
                char *term = strstr(end + 2, "\r\n0\r\n\r\n");
                if (term)
                    done = (size_t)(term - buf) + 7;
            }
        }
        if (done)
            break;
        if (len + 1 >= cap)
            return len;
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n <= 0)
            return len;
        len += (size_t)n;
    }
    if (len > done && len - done < sizeof(carry)) {
        memcpy(carry, buf + done, len - done);
        ncarry = len - done;
        carry_fd = fd;
    }
    buf[done] = '\0';
    return done;
}

static bool at_eof(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

static size_t roundtrip(const char *request, char *buf, size_t cap)
{
    int fd = client();
    send_str(fd, request);
    size_t n = read_response(fd, buf, cap);
    close(fd);
    return n;
}

/* --- tests --- */

static void test_routing(void **state)
{
    struct dagi_http_server_opts o = {0};
    start(&o);
    char buf[4096];
    roundtrip("GET /items/a%20b?q=x+y HTTP/1.1\r\nHost: t\r\n\r\n", buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 200"));
    assert_non_null(strstr(buf, "param id=a b rest=- q=x y"));
    assert_non_null(strstr(buf, "X-Trace-Id: "));
    assert_non_null(strstr(buf, "Date: "));
    roundtrip("GET /items/special HTTP/1.1\r\nHost: t\r\n\r\n", buf, sizeof(buf));
    assert_non_null(strstr(buf, "literal id=-"));
    roundtrip("GET /files/a/b%2Fc/d HTTP/1.1\r\nHost: t\r\n\r\n", buf, sizeof(buf));
    assert_non_null(strstr(buf, "rest=a/b/c/d"));
    roundtrip("GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n", buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 404"));
    char *body = strstr(buf, "\r\n\r\n") + 4;
    json_error_t jerr;
    json_t *doc = json_loads(body, 0, &jerr);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "error"), "code")),
                        "not_found");
    json_decref(doc);
    roundtrip("POST /items/1 HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 405"));
    assert_non_null(strstr(buf, "Allow: GET, DELETE, HEAD"));
    roundtrip("HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n", buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 200"));
    roundtrip("GET /private HTTP/1.1\r\nHost: t\r\n\r\n", buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 401"));
    /* A gate that decides later: the body waits, then reaches the handler. */
    roundtrip("POST /later HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello", buf,
              sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 200"));
    assert_non_null(strstr(buf, "\r\n\r\nhello"));
    roundtrip("POST /later-refused HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
              buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 401"));
    assert_non_null(strstr(buf, "decided later"));
    /* The body gate sees the whole body before the handler does. */
    roundtrip("POST /checked HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nbad", buf,
              sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 400"));
    roundtrip("POST /checked HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\ngood", buf,
              sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 200"));
    roundtrip("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Request-Id: abc$%def-1\r\n\r\n", buf, sizeof(buf));
    assert_non_null(strstr(buf, "X-Trace-Id: abcdef-1\r\n"));
    roundtrip("GET /healthz HTTP/1.1\r\nHost: t\r\ntraceparent: "
              "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n",
              buf, sizeof(buf));
    assert_non_null(strstr(buf, "X-Trace-Id: 4bf92f3577b34da6a3ce929d0e0e4736\r\n"));
    roundtrip("GET /healthz HTTP/1.1\r\n\r\n", buf, sizeof(buf)); /* no Host */
    assert_non_null(strstr(buf, "HTTP/1.1 400"));
    roundtrip("GET /a/../healthz HTTP/1.1\r\nHost: t\r\n\r\n", buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 400"));
    roundtrip("GET /a%00 HTTP/1.1\r\nHost: t\r\n\r\n", buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 400"));
    roundtrip("POST /json HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: "
              "chunked\r\n\r\n0\r\n\r\n",
              buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 400"));
    roundtrip("POST /json HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
              buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 501"));
    stop();
}

static void test_json(void **state)
{
    struct dagi_http_server_opts o = {0};
    start(&o);
    char buf[4096];
    roundtrip("POST /json HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
              "Content-Length: 21\r\n\r\n{\"a\": 1, \"b\": [1, 2,}",
              buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 400"));
    assert_non_null(strstr(buf, "\"code\":\"invalid_json\""));
    assert_non_null(strstr(buf, "invalid JSON at offset 21"));
    roundtrip("POST /json HTTP/1.1\r\nHost: t\r\nContent-Length: 15\r\n\r\n{\"a\":1,\"a\":2}  ",
              buf, sizeof(buf));
    assert_non_null(strstr(buf, "duplicate"));
    roundtrip("POST /json HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
              "Content-Length: 2\r\n\r\n{}",
              buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 415"));
    roundtrip("POST /json HTTP/1.1\r\nHost: t\r\nContent-Type: application/json; charset=utf-8\r\n"
              "Content-Length: 7\r\n\r\n{\"a\":1}",
              buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 200"));
    assert_non_null(strstr(buf, "{\"a\":1}"));
    stop();
}

static void test_keepalive_pipelining_chunked(void **state)
{
    struct dagi_http_server_opts o = {0};
    start(&o);
    char buf[8192];
    int fd = client();
    for (int i = 0; i < 3; i++) {
        send_str(fd, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
        size_t n = read_response(fd, buf, sizeof(buf));
        assert_true(n > 0);
        assert_non_null(strstr(buf, "HTTP/1.1 200"));
        assert_null(strstr(buf, "Connection: close"));
    }
    /* Pipelined: three requests in one write, answered in order. */
    send_str(fd, "GET /items/1 HTTP/1.1\r\nHost: t\r\n\r\n"
                 "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\nT: 1\r\n\r\n"
                 "GET /items/3 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    size_t n = read_response(fd, buf, sizeof(buf));
    buf[n] = '\0';
    assert_non_null(strstr(buf, "id=1"));
    n = read_response(fd, buf, sizeof(buf));
    if (!strstr(buf, "\r\n\r\nabcdefg"))
        fail_msg("%s", buf);
    n = read_response(fd, buf, sizeof(buf));
    assert_non_null(strstr(buf, "id=3"));
    assert_non_null(strstr(buf, "Connection: close"));
    assert_true(at_eof(fd));
    close(fd);
    /* HTTP/1.0 keep-alive */
    fd = client();
    send_str(fd, "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    read_response(fd, buf, sizeof(buf));
    assert_non_null(strstr(buf, "Connection: keep-alive"));
    send_str(fd, "GET /healthz HTTP/1.0\r\n\r\n");
    read_response(fd, buf, sizeof(buf));
    assert_non_null(strstr(buf, "Connection: close"));
    assert_true(at_eof(fd));
    close(fd);
    stop();
}

static void test_limits(void **state)
{
    struct dagi_http_server_opts o = {.max_header_bytes = 1024};
    start(&o);
    char buf[8192];
    /* 413 before any body byte is sent, and no 100 Continue. */
    int fd = client();
    send_str(fd, "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                 "Content-Length: 100000000\r\n\r\n");
    read_response(fd, buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 413"));
    assert_non_null(strstr(buf, "payload_too_large"));
    assert_true(at_eof(fd));
    close(fd);
    /* Chunked over the cap: 413 when it is crossed. */
    fd = client();
    send_str(fd, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 3; i++)
        send_str(fd, "32\r\n01234567890123456789012345678901234567890123456789\r\n");
    read_response(fd, buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 413"));
    close(fd);
    /* 100 Continue when the body will be read. */
    fd = client();
    send_str(fd, "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    read_response(fd, buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 100 Continue"));
    send_str(fd, "hello");
    read_response(fd, buf, sizeof(buf));
    assert_non_null(strstr(buf, "\r\n\r\nhello"));
    close(fd);
    /* 431 */
    char big[2048];
    snprintf(big, sizeof(big), "GET /healthz HTTP/1.1\r\nHost: t\r\nX: %01500d\r\n\r\n", 0);
    roundtrip(big, buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 431"));
    stop();
}

static void test_stream_body(void **state)
{
    struct dagi_http_server_opts o = {0};
    start(&o);
    atomic_store(&paused_count, 0);
    size_t total = 3 << 20;
    char *body = malloc(total);
    memset(body, 'u', total);
    int fd = client();
    char head[256], buf[4096];
    snprintf(head, sizeof(head), "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n",
             total);
    send_str(fd, head);
    size_t off = 0;
    while (off < total) {
        ssize_t n = send(fd, body + off, total - off, MSG_NOSIGNAL);
        assert_true(n > 0);
        off += (size_t)n;
    }
    read_response(fd, buf, sizeof(buf));
    char want[64];
    snprintf(want, sizeof(want), "got %zu", total);
    if (!strstr(buf, want))
        fail_msg("%s", buf);
    assert_true(atomic_load(&paused_count) > 0);
    close(fd);
    free(body);
    stop();
}

static void test_sse_backpressure(void **state)
{
    struct dagi_http_server_opts o = {0};
    start(&o);
    atomic_store(&max_pending, 0);
    int fd = client_rcvbuf(4096);
    send_str(fd, "GET /flood HTTP/1.1\r\nHost: t\r\n\r\n");
    msleep(300);
    assert_true(atomic_load(&max_pending) > 4 << 20);
    assert_int_equal(atomic_load(&flag_drain), 0); /* the client has not read */
    /* Read everything: on_drain fires, and the stream ends. */
    static char buf[16 << 20];
    size_t n = read_response(fd, buf, sizeof(buf));
    assert_true(n > 8 << 20);
    assert_int_equal(atomic_load(&flag_drain), 1);
    assert_non_null(strstr(buf + n - 64, "data: bye"));
    assert_non_null(strstr(buf, "Content-Type: text/event-stream"));
    close(fd);
    stop();
}

static void test_on_close(void **state)
{
    struct dagi_http_server_opts o = {0};
    start(&o);
    int fd = client();
    send_str(fd, "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
    char buf[1024];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "data: first\ndata: line two\n\n"));
    close(fd);
    for (int i = 0; i < 100 && !atomic_load(&flag_close); i++)
        msleep(10);
    assert_int_equal(atomic_load(&flag_close), 1);
    stop();
}

static void test_read_timeout(void **state)
{
    struct dagi_http_server_opts o = {.read_timeout_ms = 200, .idle_timeout_ms = 200};
    start(&o);
    int fd = client();
    send_str(fd, "GET /healthz HTTP/1.1\r\nHo");
    char buf[1024];
    read_response(fd, buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 408"));
    assert_true(at_eof(fd));
    close(fd);
    /* A trickling body times out too. */
    fd = client();
    send_str(fd, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab");
    read_response(fd, buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 408"));
    close(fd);
    /* An idle kept-alive connection is closed quietly. */
    fd = client();
    send_str(fd, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    read_response(fd, buf, sizeof(buf));
    assert_true(at_eof(fd));
    close(fd);
    stop();
}

static void test_max_connections(void **state)
{
    struct dagi_http_server_opts o = {.max_connections = 2};
    start(&o);
    int a = client(), b = client();
    msleep(50);
    int c = client();
    char buf[1024];
    read_response(c, buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 503"));
    assert_non_null(strstr(buf, "\"code\":\"overloaded\""));
    close(c);
    send_str(a, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    read_response(a, buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 200"));
    close(a);
    close(b);
    stop();
}

static void on_drained(void *ud)
{
    atomic_store(&flag_drained, 1);
}

static void start_drain(void *arg)
{
    dagi_http_server_drain(srv, on_drained, NULL);
}

static void test_drain(void **state)
{
    struct dagi_http_server_opts o = {.drain_timeout_ms = 5000};
    start(&o);
    int idle = client();
    send_str(idle, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    char buf[8192];
    read_response(idle, buf, sizeof(buf));
    int fd = client();
    send_str(fd, "GET /ticker HTTP/1.1\r\nHost: t\r\n\r\n");
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
    assert_true(n > 0);
    on_loop(start_drain, NULL);
    assert_true(at_eof(idle)); /* idle connections go at once */
    close(idle);
    size_t len = (size_t)n + read_response(fd, buf + n, sizeof(buf) - (size_t)n);
    buf[len] = '\0';
    assert_non_null(strstr(buf, "data: tick 4"));
    assert_non_null(strstr(buf, "\r\n0\r\n\r\n"));
    assert_true(at_eof(fd)); /* a drained connection closes after its response */
    close(fd);
    for (int i = 0; i < 100 && !atomic_load(&flag_drained); i++)
        msleep(10);
    assert_int_equal(atomic_load(&flag_drained), 1);
    stop();
}

static void test_tls(void **state)
{
    char dir[] = "/tmp/dagi_tls_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cmd[1024], cert[256], key[256];
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -days 1 "
             "-subj /CN=localhost >/dev/null 2>&1",
             key, cert);
    assert_int_equal(system(cmd), 0);

    struct dagi_http_server_opts bad = {.listen = "127.0.0.1:0", .tls_cert_file = "/nonexistent.pem",
                                        .tls_key_file = key};
    struct dagi_http_server *s;
    struct dagi_error err;
    struct event_base *b = event_base_new();
    assert_int_equal(dagi_http_server_new(b, &bad, &s, &err), DAGI_EINVAL);
    assert_non_null(strstr(err.message, "/nonexistent.pem"));
    event_base_free(b);

    struct dagi_http_server_opts o = {.tls_cert_file = cert, .tls_key_file = key};
    start(&o);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = SSL_new(ctx);
    int fd = client();
    SSL_set_fd(ssl, fd);
    assert_int_equal(SSL_connect(ssl), 1);
    const char *req = "GET /items/7 HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_int_equal(SSL_write(ssl, req, (int)strlen(req)), (int)strlen(req));
    char buf[4096];
    int len = 0, n;
    while ((n = SSL_read(ssl, buf + len, (int)sizeof(buf) - 1 - len)) > 0) {
        len += n;
        buf[len] = '\0';
        if (strstr(buf, "id=7"))
            break;
    }
    assert_non_null(strstr(buf, "HTTP/1.1 200"));
    assert_non_null(strstr(buf, "param id=7"));
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    stop();
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    evthread_use_pthreads();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routing),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_keepalive_pipelining_chunked),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_stream_body),
        cmocka_unit_test(test_sse_backpressure),
        cmocka_unit_test(test_on_close),
        cmocka_unit_test(test_read_timeout),
        cmocka_unit_test(test_max_connections),
        cmocka_unit_test(test_drain),
        cmocka_unit_test(test_tls),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    libevent_global_shutdown();
    return rc;
}
