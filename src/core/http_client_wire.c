/* The HTTP/1.1 bytes of one exchange for the native backend: the request
 * writer and the response reader (http_client_wire.h).
 *
 * The reader parses a head only once its end is in: each read just looks
 * for the empty line, so a server dribbling a big head byte by byte costs
 * linear time, not a reparse per byte.  A head that arrives whole in one
 * read (the usual case) is parsed where it lies; only a split one is
 * copied. */
#include "http_client_wire.h"

#include "err.h"
#include "mem.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* --- the request -------------------------------------------------------------- */

/* A request being written into a buffer sized for it in advance. */
struct wire {
    char *p;
    size_t len, cap;
};

static void put(struct wire *w, const char *data, size_t len)
{
    if (len > w->cap - w->len)
        abort(); /* the size worked out in http_wire_request is wrong: a bug */
    memcpy(w->p + w->len, data, len);
    w->len += len;
}

static void put_str(struct wire *w, const char *s)
{
    put(w, s, strlen(s));
}

static void put_line(struct wire *w, const char *name, size_t name_len, const char *value,
                     size_t value_len)
{
    put(w, name, name_len);
    put(w, ": ", 2);
    put(w, value, value_len);
    put(w, "\r\n", 2);
}

static bool name_is(const char *header, size_t len, const char *name)
{
    return strlen(name) == len && strncasecmp(header, name, len) == 0;
}

/* One allocation of a size worked out first, and no printf: this runs once
 * per request on the hot path, and formatting showed in profiles. */
char *http_wire_request(const struct dagi_http_request_opts *opts, const struct http_url *url,
                        const char *method, const char *user_agent, size_t *len_out)
{
    bool own_host = true, own_agent = true, own_accept = true;
    /* 128 covers the fixed text: request line, our headers' names,
     * Content-Length with 20 digits, the empty line */
    size_t cap = strlen(method) + url->target_len + strlen(url->authority) + strlen(user_agent) +
                 opts->body_len + 128;
    for (const char *const *hp = opts->headers; hp && *hp; hp++) {
        size_t n = (size_t)(strchr(*hp, ':') - *hp);
        own_host &= !name_is(*hp, n, "host");
        own_agent &= !name_is(*hp, n, "user-agent");
        own_accept &= !name_is(*hp, n, "accept");
        cap += strlen(*hp) + 4;
    }
    bool length = opts->body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
                  strcmp(method, "PATCH") == 0;
    struct wire w = {.p = dagi_xmalloc(cap), .cap = cap};
    put_str(&w, method);
    put(&w, " ", 1);
    if (url->target_len)
        put(&w, url->target, url->target_len);
    else
        put(&w, "/", 1);
    put_str(&w, " HTTP/1.1\r\n");
    if (own_host)
        put_line(&w, "Host", 4, url->authority, strlen(url->authority));
    if (own_agent)
        put_line(&w, "User-Agent", 10, user_agent, strlen(user_agent));
    if (own_accept)
        put_str(&w, "Accept: */*\r\n");
    for (const char *const *hp = opts->headers; hp && *hp; hp++) {
        const char *colon = strchr(*hp, ':');
        size_t n = (size_t)(colon - *hp);
        const char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t vlen = strlen(v);
        while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            vlen--;
        /* framing is ours: a caller's Content-Length could contradict the
         * body, and we never wait for 100 Continue */
        if (!vlen || name_is(*hp, n, "content-length") || name_is(*hp, n, "transfer-encoding") ||
            name_is(*hp, n, "expect"))
            continue;
        put_line(&w, *hp, n, v, vlen);
    }
    if (length) {
        char digits[24];
        size_t i = sizeof(digits);
        size_t v = opts->body_len;
        do
            digits[--i] = (char)('0' + v % 10);
        while ((v /= 10));
        put_line(&w, "Content-Length", 14, digits + i, sizeof(digits) - i);
    }
    put(&w, "\r\n", 2);
    if (opts->body_len)
        put(&w, opts->body, opts->body_len);
    *len_out = w.len;
    return w.p;
}

/* --- the response ------------------------------------------------------------- */

void http_reader_init(struct http_reader *r, struct dagi_http_call *call, bool head_request,
                      const char *peer_host, unsigned peer_port)
{
    memset(r, 0, sizeof(*r));
    r->call = call;
    r->head_request = head_request;
    r->peer_host = peer_host;
    r->peer_port = peer_port;
    dagi_buf_init(&r->head, HTTP_MAX_HEADER_BYTES);
}

void http_reader_reset(struct http_reader *r)
{
    r->in_body = false;
    r->status = 0;
    r->keep_alive = false;
    r->leftover = false;
    dagi_buf_reset(&r->head);
    r->head_scanned = 0;
}

void http_reader_release(struct http_reader *r)
{
    dagi_buf_release(&r->head);
}

static enum http_read_result fail(struct http_reader *r, int err, const char *what)
{
    http_call_abort(r->call, err, "%s from %s port %u", what, r->peer_host, r->peer_port);
    return HTTP_READ_STOP;
}

/* The end of a head (just past its empty line) in buf, searching from
 * *scanned, or 0 when it is not there yet; *scanned is where to resume. */
static size_t head_end(const char *buf, size_t len, size_t *scanned)
{
    size_t i = *scanned;
    while (i < len) {
        const char *nl = memchr(buf + i, '\n', len - i);
        if (!nl)
            break;
        size_t j = (size_t)(nl - buf);
        if (j + 1 < len && buf[j + 1] == '\n')
            return j + 2;
        if (j + 2 < len && buf[j + 1] == '\r' && buf[j + 2] == '\n')
            return j + 3;
        if (j + 1 == len || (j + 2 == len && buf[j + 1] == '\r')) {
            *scanned = j; /* the empty line may be on its way */
            return 0;
        }
        i = j + 1;
    }
    *scanned = len;
    return 0;
}

/* Garbage is refused at once rather than after 256 KiB of it. */
static bool starts_like_status(const char *buf, size_t len)
{
    static const char prefix[] = "HTTP/1.";
    return memcmp(buf, prefix, len < sizeof(prefix) - 1 ? len : sizeof(prefix) - 1) == 0;
}

/* A complete head: checks it, stores the headers, delivers the status.
 * MORE for an interim 1xx (another head follows) and for a body to come. */
static enum http_read_result handle_head(struct http_reader *r, const char *buf, size_t len)
{
    struct dagi_http_call *call = r->call;
    struct dagi_http_response_head head;
    size_t used;
    int rc = dagi_http_parse_response(buf, len, &head, &used);
    if (rc == DAGI_ETOOBIG) {
        http_call_abort(call, DAGI_ETOOBIG, "response head with over %d header fields",
                        DAGI_HTTP_MAX_HEADERS);
        return HTTP_READ_STOP;
    }
    if (rc || used != len)
        return fail(r, DAGI_EIO, "malformed response head");
    if (head.status < 200) {
        if (head.status == 101)
            return fail(r, DAGI_EIO, "unexpected 101 Switching Protocols");
        return HTTP_READ_MORE; /* 100 Continue, 103 Early Hints: the answer follows */
    }
    struct dagi_http_framing framing;
    rc = dagi_http_response_framing(&head, r->head_request, &framing);
    if (rc)
        return fail(r, DAGI_EIO,
                    rc == DAGI_EUNAVAIL ? "unsupported transfer coding"
                                        : "bad Content-Length/Transfer-Encoding");
    /* HTTP/1.0 keep-alive is opt-in and rare among model servers: such a
     * connection is simply not reused */
    r->keep_alive = head.minor_version >= 1 && framing.kind != DAGI_HTTP_BODY_UNTIL_CLOSE;
    http_call_clear_headers(call);
    for (size_t i = 0; i < head.header_count; i++) {
        const struct dagi_http_header *f = &head.headers[i];
        if (name_is(f->name, f->name_len, "connection") &&
            dagi_http_list_has_token(f->value, f->value_len, "close"))
            r->keep_alive = false;
        if (http_call_add_header(call, f->name, f->name_len, f->value, f->value_len))
            return HTTP_READ_STOP;
    }
    r->status = head.status;
    /* refused before on_headers, as curl's max-filesize check does: the
     * body could not be handed over anyway */
    if (!call->on_data && framing.kind == DAGI_HTTP_BODY_LENGTH &&
        framing.length > call->body.cap) {
        http_call_abort(call, DAGI_ETOOBIG, "response body over %zu bytes", call->body.cap);
        return HTTP_READ_STOP;
    }
    r->framing = framing;
    if (framing.kind == DAGI_HTTP_BODY_CHUNKED)
        dagi_http_chunked_init(&r->chunked);
    r->in_body = true;
    if (http_call_deliver_headers(call, r->status))
        return HTTP_READ_STOP;
    return framing.kind == DAGI_HTTP_BODY_NONE ? HTTP_READ_DONE : HTTP_READ_MORE;
}

static enum http_read_result take_head(struct http_reader *r, const char *data, size_t len,
                                       size_t *used)
{
    size_t old = r->head.len, end;
    const char *buf;
    if (old == 0) {
        end = head_end(data, len, &r->head_scanned);
        buf = data;
    } else {
        size_t room = r->head.cap - old;
        dagi_buf_append(&r->head, data, len < room ? len : room);
        end = head_end(r->head.data, r->head.len, &r->head_scanned);
        buf = r->head.data;
    }
    if (!end) {
        if (!starts_like_status(buf, old ? r->head.len : len))
            return fail(r, DAGI_EIO, "not an HTTP/1.x response");
        /* all of data is head so far: keep it (head_scanned carries over,
         * the bytes keep their offsets) */
        bool kept = old ? r->head.len < r->head.cap : dagi_buf_append(&r->head, data, len) == 0;
        if (!kept) {
            http_call_abort(r->call, DAGI_ETOOBIG, "response head over %u bytes",
                            HTTP_MAX_HEADER_BYTES);
            return HTTP_READ_STOP;
        }
        *used = len;
        return HTTP_READ_MORE;
    }
    *used = end - old; /* > 0: the searched part held no end */
    enum http_read_result res = handle_head(r, buf, end);
    dagi_buf_reset(&r->head);
    r->head_scanned = 0;
    return res;
}

static enum http_read_result take_body(struct http_reader *r, const char *data, size_t len,
                                       size_t *used)
{
    struct dagi_http_call *call = r->call;
    switch (r->framing.kind) {
    case DAGI_HTTP_BODY_LENGTH: {
        size_t n = (uint64_t)len < r->framing.length ? len : (size_t)r->framing.length;
        *used = n;
        if (n && http_call_deliver_body(call, data, n))
            return HTTP_READ_STOP;
        r->framing.length -= n;
        return r->framing.length ? HTTP_READ_MORE : HTTP_READ_DONE;
    }
    case DAGI_HTTP_BODY_CHUNKED: {
        const char *span;
        size_t span_len;
        int rc = dagi_http_chunked_feed(&r->chunked, data, len, used, &span, &span_len);
        if (rc == DAGI_EPARSE)
            return fail(r, DAGI_EIO, "malformed chunked body");
        if (span_len && http_call_deliver_body(call, span, span_len))
            return HTTP_READ_STOP;
        return rc == DAGI_OK ? HTTP_READ_DONE : HTTP_READ_MORE;
    }
    case DAGI_HTTP_BODY_UNTIL_CLOSE:
        *used = len;
        return http_call_deliver_body(call, data, len) ? HTTP_READ_STOP : HTTP_READ_MORE;
    case DAGI_HTTP_BODY_NONE:
        break;
    }
    *used = 0;
    return HTTP_READ_DONE;
}

enum http_read_result http_reader_feed(struct http_reader *r, const char *data, size_t len)
{
    while (len > 0) {
        size_t used = 0;
        enum http_read_result res =
            r->in_body ? take_body(r, data, len, &used) : take_head(r, data, len, &used);
        data += used;
        len -= used;
        if (res == HTTP_READ_DONE)
            r->leftover = len > 0;
        if (res != HTTP_READ_MORE)
            return res;
        if (used == 0)
            break; /* cannot happen with bytes left, but never spin */
    }
    return HTTP_READ_MORE;
}

enum http_read_result http_reader_eof(struct http_reader *r, size_t received)
{
    if (r->in_body && r->framing.kind == DAGI_HTTP_BODY_UNTIL_CLOSE) {
        r->keep_alive = false;
        return HTTP_READ_DONE;
    }
    if (r->in_body && r->framing.kind == DAGI_HTTP_BODY_LENGTH)
        http_call_abort(r->call, DAGI_EIO, "transfer closed with %llu bytes remaining to read",
                        (unsigned long long)r->framing.length);
    else if (r->in_body)
        http_call_abort(r->call, DAGI_EIO, "transfer closed with outstanding read data remaining");
    else if (received)
        return fail(r, DAGI_EIO, "connection closed inside the response head");
    else
        return fail(r, DAGI_EIO, "Empty reply");
    return HTTP_READ_STOP;
}
