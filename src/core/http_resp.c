/* The request as handlers see it: accessors, buffered and streamed bodies,
 * and responses (fixed-length, chunked streams, SSE, JSON errors). */
#include "http_internal.h"

#include "arena.h"
#include "mem.h"
#include "redact.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *dagi_http_req_method(struct dagi_http_req *req)
{
    return req->method;
}

const char *dagi_http_req_path(struct dagi_http_req *req)
{
    return req->path;
}

const char *dagi_http_req_query(struct dagi_http_req *req)
{
    return req->query;
}

const char *dagi_http_req_query_param(struct dagi_http_req *req, const char *name)
{
    size_t qlen = strlen(req->query), n;
    char *out = dagi_arena_alloc(req->arena, qlen + 1);
    if (!out || dagi_http_query_get(req->query, qlen, name, out, qlen + 1, &n) != DAGI_OK)
        return NULL;
    return out;
}

const char *dagi_http_req_header(struct dagi_http_req *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

const char *dagi_http_req_param(struct dagi_http_req *req, const char *name)
{
    const struct route_entry *e = req->entry;
    if (!e)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < e->nseg; i++) {
        if (e->segs[i].kind == SEG_LITERAL)
            continue;
        if (strlen(name) == e->segs[i].len && memcmp(name, e->segs[i].text, e->segs[i].len) == 0)
            return req->param_values[k];
        k++;
    }
    return NULL;
}

const struct dagi_http_route *dagi_http_req_route(struct dagi_http_req *req)
{
    return req->entry ? &req->entry->route : NULL;
}

const char *dagi_http_req_trace_id(struct dagi_http_req *req)
{
    return req->trace_id;
}

const char *dagi_http_req_peer(struct dagi_http_req *req)
{
    return req->conn->peer;
}

struct dagi_arena *dagi_http_req_arena(struct dagi_http_req *req)
{
    return req->arena;
}

struct dagi_http_server *dagi_http_req_server(struct dagi_http_req *req)
{
    return req->conn->srv;
}

void dagi_http_req_set_principal(struct dagi_http_req *req, void *principal)
{
    req->principal = principal;
}

void *dagi_http_req_principal(struct dagi_http_req *req)
{
    return req->principal;
}

const char *dagi_http_req_body(struct dagi_http_req *req, size_t *len)
{
    struct dagi_buf *b = &req->conn->body;
    if (len)
        *len = b->len;
    return dagi_buf_str(b);
}

/* application/json, or any application/<x>+json, parameters allowed. */
static bool is_json_type(const char *ct)
{
    size_t n = strcspn(ct, ";");
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    if (n == 16 && strncasecmp(ct, "application/json", 16) == 0)
        return true;
    return n > 17 && strncasecmp(ct, "application/", 12) == 0 &&
           strncasecmp(ct + n - 5, "+json", 5) == 0;
}

int dagi_http_req_json(struct dagi_http_req *req, struct json_t **out)
{
    if (req->json) {
        *out = json_incref(req->json); /* the gate parsed it already */
        return DAGI_OK;
    }
    const char *ct = dagi_http_req_header(req, "content-type");
    if (ct && !is_json_type(ct)) {
        dagi_http_respond_error(req, 415, "unsupported_media_type", NULL,
                                "expected Content-Type application/json");
        return DAGI_EINVAL;
    }
    size_t len;
    const char *body = dagi_http_req_body(req, &len);
    json_error_t jerr;
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        dagi_http_respond_error(req, 400, "invalid_json", NULL, "invalid JSON at offset %d: %s",
                                jerr.position, jerr.text);
        return DAGI_EPARSE;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        dagi_http_respond_error(req, 400, "invalid_json", NULL, "expected a JSON object");
        return DAGI_EPARSE;
    }
    req->json = json_incref(doc);
    *out = doc;
    return DAGI_OK;
}

void dagi_http_req_read_body(struct dagi_http_req *req, dagi_http_body_data_fn on_data,
                             dagi_http_body_end_fn on_end, void *ud)
{
    if (req->done || req->closed || req->reading)
        return;
    req->on_data = on_data;
    req->on_end = on_end;
    req->body_ud = ud;
    req->reading = true;
    http_conn_read_body_started(req->conn);
}

void dagi_http_req_resume_body(struct dagi_http_req *req)
{
    if (!req->paused || req->done)
        return;
    req->paused = false;
    bufferevent_enable(req->conn->bev, EV_READ);
    http_conn_kick(req->conn);
}

void dagi_http_req_on_close(struct dagi_http_req *req,
                            void (*on_close)(struct dagi_http_req *req, void *ud), void *ud)
{
    req->on_close = on_close;
    req->close_ud = ud;
}

/* --- responses --- */

const char *http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    }
    return "Unknown";
}

void dagi_http_set_header(struct dagi_http_req *req, const char *name, const char *value)
{
    if (req->started || req->done)
        return;
    /* CR/LF in a header we emit would split the response. */
    if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
        return;
    struct resp_header *h = dagi_arena_alloc(req->arena, sizeof(*h));
    if (!h)
        return;
    h->name = dagi_arena_strdup(req->arena, name);
    h->value = dagi_arena_strdup(req->arena, value);
    if (!h->name || !h->value)
        return;
    h->next = NULL;
    struct resp_header **tail = &req->resp_headers;
    while (*tail)
        tail = &(*tail)->next;
    *tail = h;
}

/* Writes the status line and headers.  content_length < 0 means a stream:
 * chunked for HTTP/1.1, raw-until-close for HTTP/1.0. */
static void write_head(struct dagi_http_req *req, int status, const char *content_type,
                       int64_t content_length)
{
    struct conn *c = req->conn;
    struct dagi_http_server *srv = c->srv;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    bool has_body = status >= 200 && status != 204 && status != 304;
    if (srv->draining)
        req->keep_alive = false;
    /* A body still on the wire (a stream route answered early) would be
     * read as the next request: close after this response. */
    if (req->framing.kind != DAGI_HTTP_BODY_NONE && !req->body_done)
        req->keep_alive = false;
    if (content_length < 0 && req->minor == 0)
        req->keep_alive = false;

    char head[1024];
    int n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nDate: %s\r\nX-Trace-Id: %s\r\n",
                     status, http_reason(status), http_server_date(srv), req->trace_id);
    size_t len = (size_t)n;
    if (has_body && content_type)
        len += (size_t)snprintf(head + len, sizeof(head) - len, "Content-Type: %s\r\n",
                                content_type);
    if (has_body && content_length >= 0)
        len += (size_t)snprintf(head + len, sizeof(head) - len, "Content-Length: %lld\r\n",
                                (long long)content_length);
    else if (has_body && req->minor >= 1)
        len += (size_t)snprintf(head + len, sizeof(head) - len,
                                "Transfer-Encoding: chunked\r\n");
    if (!req->keep_alive)
        len += (size_t)snprintf(head + len, sizeof(head) - len, "Connection: close\r\n");
    else if (req->minor == 0)
        len += (size_t)snprintf(head + len, sizeof(head) - len, "Connection: keep-alive\r\n");
    if (len >= sizeof(head))
        len = sizeof(head) - 1; /* only a huge content type gets here */
    size_t before = evbuffer_get_length(out);
    evbuffer_add(out, head, len);
    for (struct resp_header *h = req->resp_headers; h; h = h->next) {
        evbuffer_add(out, h->name, strlen(h->name));
        evbuffer_add(out, ": ", 2);
        evbuffer_add(out, h->value, strlen(h->value));
        evbuffer_add(out, "\r\n", 2);
    }
    evbuffer_add(out, "\r\n", 2);
    c->tx += evbuffer_get_length(out) - before;
    req->status = status;
    req->started = true;
}

static bool can_respond(struct dagi_http_req *req)
{
    return req && !req->done && !req->started && !req->closed && !req->conn->dead;
}

void dagi_http_respond(struct dagi_http_req *req, int status, const char *content_type,
                       const void *body, size_t len)
{
    if (!can_respond(req))
        return;
    struct conn *c = req->conn;
    http_conn_enter(c);
    write_head(req, status, content_type, (int64_t)len);
    bool has_body = status >= 200 && status != 204 && status != 304;
    if (len && has_body && !req->head_only) {
        evbuffer_add(bufferevent_get_output(c->bev), body, len);
        c->tx += len;
    }
    req->done = true;
    http_conn_leave(c);
}

void dagi_http_respond_json(struct dagi_http_req *req, int status, struct json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) {
        http_resp_error(req, 500, "internal", NULL, "could not serialize the response");
        return;
    }
    dagi_http_respond(req, status, "application/json", text, strlen(text));
    free(text);
}

void http_resp_error(struct dagi_http_req *req, int status, const char *code, const char *field,
                     const char *message)
{
    if (!can_respond(req))
        return;
    /* The message may echo client input: mask secrets, then escape. */
    struct dagi_buf clean, body;
    dagi_buf_init(&clean, 4096);
    dagi_buf_init(&body, 8192);
    dagi_redact_append(&clean, message, strlen(message));
    dagi_buf_append_str(&body, "{\"error\":{\"code\":\"");
    dagi_buf_append_json_escaped(&body, code, strlen(code));
    dagi_buf_append_str(&body, "\",\"message\":\"");
    dagi_buf_append_json_escaped(&body, dagi_buf_str(&clean), clean.len);
    dagi_buf_append_char(&body, '"');
    if (field) {
        dagi_buf_append_str(&body, ",\"field\":\"");
        dagi_buf_append_json_escaped(&body, field, strlen(field));
        dagi_buf_append_char(&body, '"');
    }
    dagi_buf_append_str(&body, "}}");
    dagi_http_respond(req, status, "application/json", body.data, body.len);
    dagi_buf_release(&clean);
    dagi_buf_release(&body);
}

void dagi_http_respond_error(struct dagi_http_req *req, int status, const char *code,
                             const char *field, const char *fmt, ...)
{
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    http_resp_error(req, status, code, field, message);
}

/* --- streams --- */

int dagi_http_stream_start(struct dagi_http_req *req, int status, const char *content_type)
{
    if (req->closed || req->conn->dead)
        return DAGI_ECLOSED;
    if (req->started || req->done)
        return DAGI_EINVAL;
    struct conn *c = req->conn;
    http_conn_enter(c);
    write_head(req, status, content_type, -1);
    req->streaming = true;
    req->raw_stream = req->minor == 0;
    http_conn_leave(c);
    return DAGI_OK;
}

int dagi_http_stream_write(struct dagi_http_req *req, const void *data, size_t len)
{
    if (req->closed || req->conn->dead)
        return DAGI_ECLOSED;
    if (!req->streaming || req->done)
        return DAGI_EINVAL;
    if (len == 0 || req->head_only)
        return DAGI_OK; /* an empty chunk would end the stream */
    struct conn *c = req->conn;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (req->raw_stream) {
        evbuffer_add(out, data, len);
        c->tx += len;
        return DAGI_OK;
    }
    char size[24];
    int n = snprintf(size, sizeof(size), "%zx\r\n", len);
    evbuffer_add(out, size, (size_t)n);
    evbuffer_add(out, data, len);
    evbuffer_add(out, "\r\n", 2);
    c->tx += (size_t)n + len + 2;
    return DAGI_OK;
}

int dagi_http_sse_send(struct dagi_http_req *req, const char *event, const char *data)
{
    if (!req->started) {
        dagi_http_set_header(req, "Cache-Control", "no-cache");
        dagi_http_set_header(req, "X-Accel-Buffering", "no");
        int rc = dagi_http_stream_start(req, 200, "text/event-stream");
        if (rc)
            return rc;
    }
    struct dagi_buf ev;
    dagi_buf_init(&ev, (size_t)-1 / 2);
    /* Newlines inside event or data would start new fields: the event name
     * is cut at one, data gets one "data:" line per line (CRLF, LF or CR). */
    if (event) {
        dagi_buf_append_str(&ev, "event: ");
        dagi_buf_append(&ev, event, strcspn(event, "\r\n"));
        dagi_buf_append_char(&ev, '\n');
    }
    const char *p = data ? data : "";
    for (;;) {
        size_t n = strcspn(p, "\r\n");
        dagi_buf_append_str(&ev, "data: ");
        dagi_buf_append(&ev, p, n);
        dagi_buf_append_char(&ev, '\n');
        p += n;
        if (!*p)
            break;
        p += (p[0] == '\r' && p[1] == '\n') ? 2 : 1;
    }
    dagi_buf_append_char(&ev, '\n');
    int rc = dagi_http_stream_write(req, ev.data, ev.len);
    dagi_buf_release(&ev);
    return rc;
}

size_t dagi_http_stream_pending(struct dagi_http_req *req)
{
    return evbuffer_get_length(bufferevent_get_output(req->conn->bev));
}

void dagi_http_stream_on_drain(struct dagi_http_req *req,
                               void (*on_drain)(struct dagi_http_req *req, void *ud), void *ud)
{
    req->on_drain = on_drain;
    req->drain_ud = ud;
    /* Already below the mark: fire from the loop, never from inside this call. */
    if (on_drain && dagi_http_stream_pending(req) < HTTP_DRAIN_MARK)
        http_conn_kick(req->conn);
}

void dagi_http_stream_end(struct dagi_http_req *req)
{
    if (req->done || !req->streaming)
        return;
    struct conn *c = req->conn;
    http_conn_enter(c);
    if (!req->raw_stream && !req->head_only && !req->closed) {
        evbuffer_add(bufferevent_get_output(c->bev), "0\r\n\r\n", 5);
        c->tx += 5;
    }
    req->done = true;
    http_conn_leave(c);
}
