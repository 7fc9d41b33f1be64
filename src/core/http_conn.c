/* One HTTP/1.1 connection: read a head, route it, feed the body, hand the
 * request to its handler, and after the response either go on with the next
 * (pipelined) request, idle, or close.  Requests on a connection are handled
 * strictly one at a time, so responses can never be reordered. */
#include "http_internal.h"

#include "arena.h"
#include "clock.h"
#include "http_tls.h"
#include "log.h"
#include "mem.h"
#include "metrics.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { TIMER_NONE, TIMER_HEAD, TIMER_IDLE, TIMER_LINGER };

/* Stop parsing pipelined requests while this much output is unsent: a
 * client that pipelines without reading must not grow our memory. */
#define PIPELINE_OUTPUT_MAX (256 * 1024)
#define LINGER_MS 2000

static void conn_process(struct conn *c);

static void set_timer(struct conn *c, int kind, unsigned ms)
{
    if (kind == TIMER_NONE || ms == 0) {
        if (c->timer_kind != TIMER_NONE)
            event_del(c->timer);
        c->timer_kind = TIMER_NONE;
        return;
    }
    if (c->timer_kind == kind && kind == TIMER_HEAD)
        return; /* the head deadline runs from the first byte; no resets */
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(c->timer, &tv);
    c->timer_kind = kind;
}

static void set_read_timeout(struct conn *c, bool on)
{
    struct timeval rt = {c->read_timeout_ms / 1000, (c->read_timeout_ms % 1000) * 1000};
    struct timeval wt = {c->write_timeout_ms / 1000, (c->write_timeout_ms % 1000) * 1000};
    bufferevent_set_timeouts(c->bev, on && c->read_timeout_ms ? &rt : NULL,
                             c->write_timeout_ms ? &wt : NULL);
}

void http_conn_enter(struct conn *c)
{
    c->depth++;
}

void http_conn_kick(struct conn *c)
{
    event_active(c->kick, EV_WRITE, 0);
}

static void call_on_close(struct dagi_http_req *req)
{
    if (req->closed)
        return;
    req->closed = true;
    if (req->on_close) {
        void (*fn)(struct dagi_http_req *, void *) = req->on_close;
        req->on_close = NULL;
        fn(req, req->close_ud);
    }
}

static void conn_free(struct conn *c)
{
    struct dagi_http_server *srv = c->srv;
    if (c->req && !c->req->done) {
        c->depth++; /* on_close may call back into the request; keep c alive */
        call_on_close(c->req);
        c->depth--;
    }
    if (c->req) {
        json_decref(c->req->json);
        c->req->json = NULL;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->counted) {
        srv->nconns--;
        dagi_metric_add(srv->m_conns, NULL, -1);
    }
    srv->nall--;
    event_free(c->timer);
    event_free(c->kick);
    bufferevent_free(c->bev);
    dagi_arena_free(c->arena);
    dagi_buf_release(&c->body);
    free(c);
    http_server_conn_gone(srv);
}

void http_conn_destroy_now(struct conn *c)
{
    if (c->depth > 0) {
        c->dead = true;
        return;
    }
    conn_free(c);
}

static void close_after_flush(struct conn *c)
{
    c->state = CS_CLOSING;
    set_timer(c, TIMER_NONE, 0);
    if (!c->eof)
        bufferevent_enable(c->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        http_conn_kick(c);
}

/* Records the finished request and decides what the connection does next. */
static void finish_request(struct conn *c)
{
    struct dagi_http_server *srv = c->srv;
    struct dagi_http_req *req = c->req;
    const char *route = req->entry ? req->entry->route.pattern : "unmatched";
    const char *status = http_status_label(req->status);
    const char *labels[] = {req->method_label, route, status};
    dagi_metric_inc(srv->m_requests, labels);
    double secs = (double)(dagi_clock_mono_ns() - req->start_ns) / 1e9;
    dagi_metric_observe(srv->m_duration, &route, secs);
    dagi_metric_add(srv->m_rx, NULL, (double)c->rx);
    dagi_metric_add(srv->m_tx, NULL, (double)c->tx);
    c->rx = c->tx = 0;
    if (dagi_log_enabled(DAGI_LOG_DEBUG)) {
        char dur[32];
        snprintf(dur, sizeof(dur), "%.6f", secs);
        dagi_log_debug(req->trace_id, "http request", "method", req->method, "path",
                       req->path ? req->path : "", "status", status, "duration_s", dur, "peer",
                       c->peer);
    }
    bool has_body = req->framing.kind != DAGI_HTTP_BODY_NONE;
    /* A body we did not read would be parsed as the next request: close. */
    bool keep = req->keep_alive && (!has_body || req->body_done) && !srv->draining;
    json_decref(req->json);
    c->req = NULL;
    c->requests++;
    if (c->body.alloc > 64 * 1024)
        dagi_buf_release(&c->body);
    else
        dagi_buf_reset(&c->body);
    dagi_arena_reset(c->arena);
    set_read_timeout(c, false);
    if (!keep || c->eof) {
        close_after_flush(c);
        return;
    }
    c->state = CS_HEAD;
    c->saw_bytes = false;
    bufferevent_enable(c->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        http_conn_kick(c); /* pipelined: run it from the loop, not from here */
    else
        set_timer(c, TIMER_IDLE, c->idle_timeout_ms);
}

bool http_conn_leave(struct conn *c)
{
    if (--c->depth > 0)
        return true;
    if (!c->dead && c->req && c->req->done)
        finish_request(c);
    if (c->dead) {
        conn_free(c);
        return false;
    }
    return true;
}

/* A request that the server itself rejects (no handler involved yet, or the
 * handler is told through on_close first). */
void http_conn_fail(struct conn *c, int status, bool close, const char *code,
                    const char *message)
{
    struct dagi_http_req *req = c->req;
    if (!req || req->done)
        return;
    /* A gate still deciding is told too: the request is about to go. */
    if (req->handler_called || c->state == CS_GATE)
        call_on_close(req);
    if (close)
        req->keep_alive = false;
    if (req->started) {
        c->dead = true; /* mid-stream: all we can do is cut it */
        return;
    }
    req->closed = false; /* the server answers in the handler's place */
    http_resp_error(req, status, code, NULL, message);
    req->closed = true;
}

/* A bare request for answering something that never became one (bad head,
 * 503 at accept, 408 before the head completed). */
static void fail_early(struct conn *c, int status, const char *code, const char *message)
{
    dagi_arena_reset(c->arena);
    struct dagi_http_req *req = dagi_arena_zalloc(c->arena, sizeof(*req));
    req->conn = c;
    req->arena = c->arena;
    req->method = "-";
    req->method_label = "OTHER";
    req->minor = 1;
    req->start_ns = dagi_clock_mono_ns();
    http_server_trace_id(c->srv, req->trace_id);
    c->req = req;
    c->state = CS_HANDLER;
    http_resp_error(req, status, code, NULL, message);
}

static const char *method_label(const char *m)
{
    static const char *const known[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    for (size_t i = 0; i < DAGI_ARRAY_LEN(known); i++)
        if (strcmp(m, known[i]) == 0)
            return known[i];
    return "OTHER";
}

static bool lower_hex(const char *s, size_t n, bool need_nonzero)
{
    bool nonzero = false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return false;
        nonzero |= ch != '0';
    }
    return nonzero || !need_nonzero;
}

/* W3C traceparent: "<2 hex version>-<32 hex trace-id>-<16 hex parent-id>-<2
 * hex flags>"; version ff is invalid, all-zero ids are invalid, and versions
 * after 00 may append fields after another '-'. */
static bool valid_traceparent(const char *v, size_t n)
{
    if (n < 55 || !lower_hex(v, 2, false) || strncmp(v, "ff", 2) == 0)
        return false;
    if (v[2] != '-' || v[35] != '-' || v[52] != '-')
        return false;
    if (n > 55 && (strncmp(v, "00", 2) == 0 || v[55] != '-'))
        return false;
    return lower_hex(v + 3, 32, true) && lower_hex(v + 36, 16, true) && lower_hex(v + 53, 2, false);
}

/* The trace id: from traceparent, else X-Request-Id reduced to
 * [A-Za-z0-9_-] and 64 chars (it is echoed into logs and headers), else a
 * fresh random one. */
static void pick_trace_id(struct dagi_http_req *req, const struct dagi_http_request_head *h)
{
    const struct dagi_http_header *tp = dagi_http_head_find(h, "traceparent");
    if (tp && valid_traceparent(tp->value, tp->value_len)) {
        memcpy(req->trace_id, tp->value + 3, 32);
        req->trace_id[32] = '\0';
        return;
    }
    const struct dagi_http_header *rid = dagi_http_head_find(h, "x-request-id");
    if (rid) {
        size_t n = 0;
        for (size_t i = 0; i < rid->value_len && n < 64; i++) {
            char ch = rid->value[i];
            if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                ch == '-' || ch == '_')
                req->trace_id[n++] = ch;
        }
        req->trace_id[n] = '\0';
        if (n > 0)
            return;
    }
    http_server_trace_id(req->conn->srv, req->trace_id);
}

static void after_gate(struct conn *c);

static void run_handler(struct conn *c)
{
    struct dagi_http_req *req = c->req;
    struct dagi_http_server *srv = c->srv;
    c->state = CS_HANDLER;
    if (srv->body_gate && !(req->entry->route.flags & DAGI_ROUTE_STREAM_BODY)) {
        if (srv->body_gate(req, &req->entry->route, srv->body_gate_ud) || req->done || c->dead)
            return;
    }
    req->handler_called = true;
    req->entry->route.handler(req, req->entry->route.ud);
}

static void send_continue(struct conn *c)
{
    struct dagi_http_req *req = c->req;
    if (!req->expect_continue || req->continue_sent || req->started || req->body_done)
        return;
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    evbuffer_add(bufferevent_get_output(c->bev), cont, sizeof(cont) - 1);
    c->tx += sizeof(cont) - 1;
    req->continue_sent = true;
}

/* Builds the request from a parsed head (copied into the arena) and takes
 * it as far as it goes without body bytes. */
static void start_request(struct conn *c, const struct dagi_http_request_head *h)
{
    struct dagi_http_server *srv = c->srv;
    struct dagi_arena *a = c->arena;
    struct dagi_http_req *req = dagi_arena_zalloc(a, sizeof(*req));
    req->conn = c;
    req->arena = a;
    req->start_ns = dagi_clock_mono_ns();
    req->method = dagi_arena_strndup(a, h->method, h->method_len);
    req->method_label = method_label(req->method);
    req->minor = h->minor_version;
    req->path = "";
    req->query = "";
    req->headers = dagi_arena_alloc(a, (h->header_count + 1) * sizeof(*req->headers));
    size_t hosts = 0;
    bool conn_close = false, conn_keep = false;
    for (size_t i = 0; i < h->header_count; i++) {
        const struct dagi_http_header *hd = &h->headers[i];
        req->headers[i].name = dagi_arena_strndup(a, hd->name, hd->name_len);
        req->headers[i].value = dagi_arena_strndup(a, hd->value, hd->value_len);
        if (hd->name_len == 4 && strncasecmp(hd->name, "host", 4) == 0)
            hosts++;
        else if (hd->name_len == 10 && strncasecmp(hd->name, "connection", 10) == 0) {
            conn_close |= dagi_http_list_has_token(hd->value, hd->value_len, "close");
            conn_keep |= dagi_http_list_has_token(hd->value, hd->value_len, "keep-alive");
        } else if (hd->name_len == 6 && strncasecmp(hd->name, "expect", 6) == 0 &&
                   hd->value_len == 12 && strncasecmp(hd->value, "100-continue", 12) == 0)
            req->expect_continue = h->minor_version >= 1;
    }
    req->nheaders = h->header_count;
    req->keep_alive = h->minor_version >= 1 ? !conn_close : conn_keep && !conn_close;
    c->req = req;
    c->state = CS_HANDLER;
    pick_trace_id(req, h);

    int rc = dagi_http_body_framing(h, &req->framing);
    if (rc == DAGI_EUNAVAIL) {
        http_conn_fail(c, 501, true, "not_implemented", "unsupported transfer coding");
        return;
    }
    if (rc) {
        http_conn_fail(c, 400, true, "bad_request", "invalid message framing");
        return;
    }
    req->length_left = req->framing.length;
    req->body_done = req->framing.kind == DAGI_HTTP_BODY_NONE;
    if (req->framing.kind == DAGI_HTTP_BODY_CHUNKED)
        dagi_http_chunked_init(&req->chunked);
    /* RFC 9112 §3.2: exactly one Host in HTTP/1.1, at most one in 1.0. */
    if (hosts > 1 || (hosts == 0 && h->minor_version >= 1)) {
        http_conn_fail(c, 400, true, "bad_request", "a request needs exactly one Host header");
        return;
    }

    const char *target = h->target;
    size_t tlen = h->target_len;
    if (tlen > 7 && (strncasecmp(target, "http://", 7) == 0 || strncasecmp(target, "https://", 8) == 0)) {
        /* absolute-form (RFC 9112 §3.2.2): route on the path part. */
        const char *p = memchr(target + 8, '/', tlen - 8);
        tlen = p ? tlen - (size_t)(p - target) : 0;
        target = p ? p : "/";
        if (!p)
            tlen = 1;
    }
    if (tlen == 0 || target[0] != '/') {
        http_conn_fail(c, 400, true, "bad_request", "request target must be an absolute path");
        return;
    }
    const char *q = memchr(target, '?', tlen);
    size_t plen = q ? (size_t)(q - target) : tlen;
    if (q)
        req->query = dagi_arena_strndup(a, q + 1, tlen - plen - 1);
    if (!http_server_route(srv, req, target, plen))
        return;

    req->body_limit = http_server_body_limit(srv, req->entry, req->path);
    /* A declared length over the cap is refused before a byte of it is read. */
    if (req->framing.kind == DAGI_HTTP_BODY_LENGTH && req->framing.length > req->body_limit) {
        http_conn_fail(c, 413, true, "payload_too_large", "request body exceeds the limit");
        return;
    }
    if (srv->gate) {
        int grc = srv->gate(req, &req->entry->route, srv->gate_ud);
        if (req->done || c->dead)
            return;
        if (grc == DAGI_HTTP_GATE_PENDING) {
            c->state = CS_GATE;
            return;
        }
    }
    after_gate(c);
}

/* The gate let the request through: on to its body and handler. */
static void after_gate(struct conn *c)
{
    struct dagi_http_req *req = c->req;
    if (req->entry->route.flags & DAGI_ROUTE_STREAM_BODY || req->body_done) {
        run_handler(c);
        return;
    }
    c->state = CS_BODY;
    c->body.cap = req->body_limit;
    send_continue(c);
    set_read_timeout(c, true);
}

/* Moves body bytes from the socket buffer to the buffered body or to
 * on_data.  Returns true once the whole body has been taken. */
static bool pump_body(struct conn *c, bool streaming)
{
    struct dagi_http_req *req = c->req;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (!req->body_done && !req->done && !c->dead && !(streaming && req->paused)) {
        struct evbuffer_iovec vec[8];
        int nv = evbuffer_peek(in, -1, NULL, vec, 8);
        if (nv <= 0)
            break;
        if (nv > 8)
            nv = 8;
        size_t drained = 0;
        bool stop = false;
        int fail = 0;
        for (int i = 0; i < nv && !stop; i++) {
            const char *p = vec[i].iov_base;
            size_t n = vec[i].iov_len;
            while (n > 0 && !stop) {
                const char *data = p;
                size_t dlen, used;
                if (req->framing.kind == DAGI_HTTP_BODY_LENGTH) {
                    dlen = used = n < req->length_left ? n : (size_t)req->length_left;
                    req->length_left -= dlen;
                    req->body_done = req->length_left == 0;
                } else {
                    int rc = dagi_http_chunked_feed(&req->chunked, p, n, &used, &data, &dlen);
                    if (rc == DAGI_EPARSE) {
                        fail = 400;
                        stop = true;
                    }
                    req->body_done = rc == DAGI_OK;
                }
                p += used;
                n -= used;
                drained += used;
                if (dlen) {
                    req->body_decoded += dlen;
                    if (req->body_decoded > req->body_limit) {
                        fail = 413;
                        break;
                    }
                    if (!streaming) {
                        /* cannot fail: the buffer's cap is body_limit, checked above */
                        dagi_buf_append(&c->body, data, dlen);
                    } else {
                        int rc = req->on_data(req, data, dlen, req->body_ud);
                        if (rc == DAGI_EAGAIN) {
                            req->paused = true;
                            stop = true;
                        } else if (rc) {
                            fail = req->done ? 0 : 400;
                            stop = true;
                        }
                        if (req->done || c->dead)
                            stop = true;
                    }
                }
                if (req->body_done)
                    stop = true;
            }
            if (fail == 413)
                break;
        }
        evbuffer_drain(in, drained);
        c->rx += drained;
        if (fail == 413) {
            http_conn_fail(c, 413, true, "payload_too_large", "request body exceeds the limit");
            return false;
        }
        if (fail) {
            http_conn_fail(c, 400, true, "bad_request", "malformed request body");
            return false;
        }
    }
    if (streaming && req->paused)
        bufferevent_disable(c->bev, EV_READ);
    if (req->body_done)
        set_read_timeout(c, false);
    return req->body_done && !req->done && !c->dead;
}

static void read_head(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    size_t avail = evbuffer_get_length(in);
    if (evbuffer_get_length(out) > PIPELINE_OUTPUT_MAX)
        return; /* on_write resumes us */
    if (avail == 0) {
        if (c->eof)
            close_after_flush(c);
        else
            set_timer(c, c->requests ? TIMER_IDLE : TIMER_HEAD,
                      c->requests ? c->idle_timeout_ms : c->read_timeout_ms);
        return;
    }
    c->saw_bytes = true;
    size_t n = avail < c->max_header_bytes ? avail : c->max_header_bytes;
    const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
    struct dagi_http_request_head head;
    size_t used = 0;
    int rc = dagi_http_parse_request(p, n, &head, &used);
    if (rc == DAGI_ENEEDMORE && n < c->max_header_bytes) {
        if (c->eof)
            close_after_flush(c);
        else
            set_timer(c, TIMER_HEAD, c->read_timeout_ms);
        return;
    }
    set_timer(c, TIMER_NONE, 0);
    if (rc == DAGI_ENEEDMORE || rc == DAGI_ETOOBIG) {
        fail_early(c, 431, "headers_too_large", "request header fields too large");
        return;
    }
    if (rc) {
        fail_early(c, 400, "bad_request", "malformed request head");
        return;
    }
    dagi_arena_reset(c->arena);
    start_request(c, &head); /* copies what it needs out of p */
    evbuffer_drain(in, used);
    c->rx += used;
    if (c->req && !c->req->done && !c->dead && c->state == CS_BODY && pump_body(c, false))
        run_handler(c);
}

void dagi_http_req_gate_resume(struct dagi_http_req *req)
{
    struct conn *c = req->conn;
    if (c->req != req || c->state != CS_GATE)
        return;
    http_conn_enter(c);
    c->state = CS_HEAD; /* the state after_gate starts from, as in start_request */
    if (!req->done && !c->dead) {
        after_gate(c);
        if (c->req == req && !req->done && !c->dead && c->state == CS_BODY &&
            pump_body(c, false))
            run_handler(c);
    }
    http_conn_leave(c);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    http_conn_enter(c);
    struct dagi_http_req *req = c->req;
    if (req && req->on_drain && !req->done &&
        evbuffer_get_length(bufferevent_get_output(c->bev)) < HTTP_DRAIN_MARK) {
        void (*fn)(struct dagi_http_req *, void *) = req->on_drain;
        req->on_drain = NULL;
        fn(req, req->drain_ud);
    }
    conn_process(c);
    http_conn_leave(c);
}

/* Streaming body: deliver what is buffered, then on_end once. */
static void stream_body(struct conn *c)
{
    struct dagi_http_req *req = c->req;
    if (!req->reading || req->paused || req->done)
        return;
    if (!req->body_done)
        pump_body(c, true);
    if (req->body_done && !req->end_called && !req->done && !c->dead) {
        req->end_called = true;
        if (req->on_end)
            req->on_end(req, req->body_ud);
    }
}

static void conn_process(struct conn *c)
{
    if (c->dead)
        return;
    switch (c->state) {
    case CS_HEAD:
        read_head(c);
        break;
    case CS_GATE:
        break; /* the bytes wait in the socket buffer */
    case CS_BODY:
        if (pump_body(c, false))
            run_handler(c);
        break;
    case CS_HANDLER:
        if (c->req)
            stream_body(c);
        break;
    case CS_CLOSING: {
        struct evbuffer *in = bufferevent_get_input(c->bev);
        evbuffer_drain(in, evbuffer_get_length(in));
        if (!c->lingering && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
            /* Lingering close: half-close and read what the client still
             * sends for a moment, so that unread request bytes do not make
             * the kernel answer with a RST that destroys our response. */
            c->lingering = true;
            if (c->tls || c->eof || shutdown(c->fd, SHUT_WR) != 0)
                c->dead = true;
            else
                set_timer(c, TIMER_LINGER, LINGER_MS);
        }
        break;
    }
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    http_conn_enter(c);
    conn_process(c);
    http_conn_leave(c);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    http_conn_enter(c);
    struct dagi_http_req *req = c->req;
    if (req && req->on_drain && !req->done &&
        evbuffer_get_length(bufferevent_get_output(bev)) < HTTP_DRAIN_MARK) {
        void (*fn)(struct dagi_http_req *, void *) = req->on_drain;
        req->on_drain = NULL;
        fn(req, req->drain_ud);
    }
    if (c->state == CS_CLOSING ||
        (c->state == CS_HEAD && evbuffer_get_length(bufferevent_get_input(bev)) > 0))
        conn_process(c);
    http_conn_leave(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    http_conn_enter(c);
    if (what & BEV_EVENT_TIMEOUT) {
        if ((what & BEV_EVENT_READING) && c->req && !c->req->done) {
            /* The body stopped making progress. */
            http_conn_fail(c, 408, true, "request_timeout", "request body timed out");
        } else {
            c->dead = true; /* no write progress: the client is gone */
        }
    } else if (what & BEV_EVENT_EOF) {
        c->eof = true;
        if (c->state == CS_CLOSING && c->lingering)
            c->dead = true;
        else if (c->req && !c->req->done)
            c->dead = true; /* the client went away mid-request: on_close */
        else if (evbuffer_get_length(bufferevent_get_output(bev)) == 0 &&
                 evbuffer_get_length(bufferevent_get_input(bev)) == 0)
            c->dead = true;
        else if (c->state == CS_HEAD)
            conn_process(c); /* the client half-closed after its requests */
    } else if (what & BEV_EVENT_ERROR) {
        c->dead = true;
    }
    http_conn_leave(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    int kind = c->timer_kind;
    c->timer_kind = TIMER_NONE;
    http_conn_enter(c);
    if (kind == TIMER_HEAD && c->saw_bytes && !c->req)
        fail_early(c, 408, "request_timeout", "request headers timed out");
    else
        c->dead = true;
    http_conn_leave(c);
}

void http_conn_read_body_started(struct conn *c)
{
    struct dagi_http_req *req = c->req;
    send_continue(c);
    if (!req->body_done)
        set_read_timeout(c, true);
    http_conn_kick(c);
}

void http_conn_accept(struct dagi_http_server *srv, evutil_socket_t fd, struct sockaddr *addr,
                      int socklen)
{
    struct bufferevent *bev;
    bool tls = srv->tls_ctx != NULL;
    if (tls)
        bev = dagi_http_tls_wrap(srv->base, srv->tls_ctx, fd);
    else
        bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        evutil_closesocket(fd);
        return;
    }
    /* Small writes (SSE tokens) must leave at once, not wait for an ACK. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    struct conn *c = dagi_xcalloc(1, sizeof(*c));
    c->srv = srv;
    c->bev = bev;
    c->fd = fd;
    c->tls = tls;
    c->arena = dagi_arena_new(0);
    c->read_timeout_ms = srv->opts.read_timeout_ms;
    c->write_timeout_ms = srv->opts.write_timeout_ms;
    c->idle_timeout_ms = srv->opts.idle_timeout_ms;
    c->max_header_bytes = srv->opts.max_header_bytes;
    dagi_buf_init(&c->body, 0);
    c->timer = evtimer_new(srv->base, on_timer, c);
    c->kick = event_new(srv->base, -1, 0, on_kick, c);
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (addr->sa_family == AF_INET && (size_t)socklen >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in *sin = (struct sockaddr_in *)addr;
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        port = ntohs(sin->sin_port);
        snprintf(c->peer, sizeof(c->peer), "%s:%d", ip, port);
    } else if (addr->sa_family == AF_INET6 && (size_t)socklen >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)addr;
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
        port = ntohs(sin6->sin6_port);
        snprintf(c->peer, sizeof(c->peer), "[%s]:%d", ip, port);
    } else {
        snprintf(c->peer, sizeof(c->peer), "unknown");
    }
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nall++;

    /* The input high-water mark bounds what a connection buffers while a
     * handler is busy or a streamed body is paused; it must exceed the head
     * cap or a large head could never complete. */
    size_t high = c->max_header_bytes + 16 * 1024;
    if (high < 64 * 1024)
        high = 64 * 1024;
    bufferevent_setwatermark(bev, EV_READ, 0, high);
    bufferevent_setwatermark(bev, EV_WRITE, HTTP_DRAIN_MARK - 1, 0);
    bufferevent_setcb(bev, on_read, on_write, on_event, c);
    set_read_timeout(c, false);
    bufferevent_enable(bev, EV_READ | EV_WRITE);

    http_conn_enter(c);
    if (srv->opts.max_connections && srv->nconns >= srv->opts.max_connections) {
        fail_early(c, 503, "overloaded", "too many connections");
    } else {
        c->counted = true;
        srv->nconns++;
        dagi_metric_add(srv->m_conns, NULL, 1);
        set_timer(c, TIMER_HEAD, c->read_timeout_ms);
    }
    http_conn_leave(c);
}
