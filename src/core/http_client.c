/* The HTTP client's front: the public API, the choice of backend, and what
 * every call has whichever backend carries it (http_client_internal.h).
 *
 * Why two backends: a local model server (Ollama, vLLM, llama.cpp) is
 * plain http:// on loopback or the LAN, and on that path libcurl cost ~15%
 * of the agents path's CPU plus syscalls of its own per request (signal
 * handlers, a poll for connection liveness, epoll_ctl churn).  The native
 * backend speaks HTTP/1.1 straight on the loop for the URLs it can serve
 * without a resolver or TLS; curl keeps everything else. */
#include "http_client_internal.h"

#include "dagi_build.h"
#include "err.h"
#include "mem.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* --- URLs ------------------------------------------------------------------ */

static void set_port(struct http_url *u)
{
    for (int i = 0; i < u->naddrs; i++) {
        if (u->addrs[i].ss_family == AF_INET)
            ((struct sockaddr_in *)&u->addrs[i])->sin_port = htons(u->port);
        else
            ((struct sockaddr_in6 *)&u->addrs[i])->sin6_port = htons(u->port);
    }
}

/* Splits "http://host[:port][/path][?query][#fragment]".  Anything this
 * does not fully understand is left to curl (HTTP_NEEDS_ANY_URL), so the
 * native backend never guesses at a URL two parsers could read
 * differently.  "localhost" is resolved here, as curl does, to both
 * loopback addresses: no resolver round trip, no blocking lookup. */
unsigned http_url_split(const char *url, struct http_url *u)
{
    memset(u, 0, sizeof(*u));
    if (strncasecmp(url, "https://", 8) == 0)
        return HTTP_NEEDS_TLS;
    if (strncasecmp(url, "http://", 7) != 0)
        return HTTP_NEEDS_ANY_URL;
    const char *auth = url + 7;
    size_t auth_len = strcspn(auth, "/?#");
    const char *host = auth, *host_end;
    if (auth_len == 0 || auth_len >= sizeof(u->authority) || memchr(auth, '@', auth_len))
        return HTTP_NEEDS_ANY_URL;
    if (*host == '[') {
        host_end = memchr(auth, ']', auth_len);
        if (!host_end)
            return HTTP_NEEDS_ANY_URL;
        host++;
    } else {
        host_end = memchr(auth, ':', auth_len);
        if (!host_end)
            host_end = auth + auth_len;
    }
    size_t host_len = (size_t)(host_end - host);
    if (host_len == 0 || host_len >= sizeof(u->host))
        return HTTP_NEEDS_ANY_URL;
    for (size_t i = 0; i < host_len; i++)
        u->host[i] = (char)tolower((unsigned char)host[i]);
    const char *after = host_end + (*auth == '[');
    u->port = 80;
    if (after < auth + auth_len) {
        if (*after != ':' || after + 1 == auth + auth_len)
            return HTTP_NEEDS_ANY_URL;
        unsigned port = 0;
        for (const char *p = after + 1; p < auth + auth_len; p++) {
            if (*p < '0' || *p > '9' || (port = port * 10 + (unsigned)(*p - '0')) > 65535)
                return HTTP_NEEDS_ANY_URL;
        }
        if (port == 0)
            return HTTP_NEEDS_ANY_URL;
        u->port = (uint16_t)port;
    }
    memcpy(u->authority, auth, auth_len);

    /* The request-target goes on the wire as written, so it must be bytes
     * a server cannot split differently: visible ASCII only. */
    u->target = auth + auth_len;
    u->target_len = strcspn(u->target, "#");
    for (size_t i = 0; i < u->target_len; i++) {
        unsigned char c = (unsigned char)u->target[i];
        if (c <= 0x20 || c >= 0x7f)
            return HTTP_NEEDS_ANY_URL;
    }
    if (u->target_len && u->target[0] == '?')
        return HTTP_NEEDS_ANY_URL; /* "http://h?q": curl inserts the "/" */

    bool bracketed = *auth == '[';
    struct sockaddr_in *v4 = (struct sockaddr_in *)&u->addrs[0];
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&u->addrs[bracketed ? 0 : 1];
    if (bracketed) {
        /* IPv6 only, and no zone ids ("%25eth0"): curl's business */
        if (inet_pton(AF_INET6, u->host, &v6->sin6_addr) != 1)
            return HTTP_NEEDS_ANY_URL;
        v6->sin6_family = AF_INET6;
        u->addr_lens[0] = sizeof(*v6);
        u->naddrs = 1;
    } else if (inet_pton(AF_INET, u->host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        u->addr_lens[0] = sizeof(*v4);
        u->naddrs = 1;
    } else if (strcmp(u->host, "localhost") == 0) {
        v4->sin_family = AF_INET;
        v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        u->addr_lens[0] = sizeof(*v4);
        v6->sin6_family = AF_INET6;
        v6->sin6_addr = in6addr_loopback;
        u->addr_lens[1] = sizeof(*v6);
        u->naddrs = 2;
    } else {
        return HTTP_NEEDS_RESOLVER;
    }
    set_port(u);
    return 0;
}

/* --- what every call has --------------------------------------------------- */

void http_call_touch(struct dagi_http_call *call)
{
    if (call->idle_timer)
        evtimer_add(call->idle_timer, &call->idle); /* re-adding reschedules */
}

void http_call_clear_headers(struct dagi_http_call *call)
{
    dagi_buf_reset(&call->headers);
}

int http_call_abort(struct dagi_http_call *call, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(call->abort_msg, sizeof(call->abort_msg), fmt, ap);
    va_end(ap);
    call->abort_err = err;
    return err;
}

int http_call_add_header(struct dagi_http_call *call, const char *name, size_t name_len,
                         const char *value, size_t value_len)
{
    struct dagi_buf *b = &call->headers;
    if (dagi_buf_append(b, name, name_len) || dagi_buf_append_char(b, '\0') ||
        dagi_buf_append(b, value, value_len) || dagi_buf_append_char(b, '\0'))
        return http_call_abort(call, DAGI_ETOOBIG, "response headers over %u bytes",
                               HTTP_MAX_HEADER_BYTES);
    return DAGI_OK;
}

int http_call_deliver_headers(struct dagi_http_call *call, long status)
{
    if (call->cancelled)
        return 1;
    if (call->headers_done)
        return 0;
    call->headers_done = true;
    if (!call->on_headers)
        return 0;
    int rc = call->on_headers(call, status, call->ud);
    if (call->cancelled)
        return 1;
    if (rc)
        return http_call_abort(call, DAGI_ECANCELED, "aborted by on_headers");
    return 0;
}

int http_call_deliver_body(struct dagi_http_call *call, const char *data, size_t len)
{
    if (call->cancelled)
        return 1;
    if (call->on_data) {
        int rc = call->on_data(call, data, len, call->ud);
        if (call->cancelled)
            return 1;
        if (rc)
            return http_call_abort(call, DAGI_ECANCELED, "aborted by on_data");
        return 0;
    }
    if (dagi_buf_append(&call->body, data, len))
        return http_call_abort(call, DAGI_ETOOBIG, "response body over %zu bytes", call->body.cap);
    return 0;
}

void http_call_complete(struct dagi_http_call *call, int err, const char *message, long status,
                        double total_seconds)
{
    struct dagi_http_response resp = {
        .err = err,
        .error_message = err ? (message ? message : dagi_strerror(err)) : "",
        .status = status,
        .total_seconds = total_seconds,
    };
    if (!call->on_data) {
        resp.body = dagi_buf_str(&call->body);
        resp.body_len = call->body.len;
    }
    if (call->idle_timer)
        evtimer_del(call->idle_timer);
    if (!call->cancelled && call->on_done) {
        call->finishing = true;
        call->on_done(call, &resp, call->ud);
    }
}

void http_call_release(struct dagi_http_call *call)
{
    if (call->idle_timer)
        event_free(call->idle_timer);
    dagi_buf_release(&call->body);
    dagi_buf_release(&call->headers);
    free(call);
}

static void on_idle_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct dagi_http_call *call = arg;
    http_call_abort(call, DAGI_ETIMEDOUT, "no data received for %ld ms",
                    (long)(call->idle.tv_sec * 1000 + call->idle.tv_usec / 1000));
    call->ops->expire(call, DAGI_ETIMEDOUT);
}

/* --- public API ------------------------------------------------------------ */

struct dagi_http_client *dagi_http_client_new(struct event_base *base,
                                              const struct dagi_http_client_opts *opts)
{
    struct dagi_http_client_opts defaults = {0};
    if (!opts)
        opts = &defaults;
    bool curl_only = false;
    if (opts->backend && strcmp(opts->backend, "curl") == 0)
        curl_only = true;
    else if (opts->backend && strcmp(opts->backend, "auto") != 0)
        return NULL;
    struct dagi_http_client *client = dagi_xcalloc(1, sizeof(*client));
    client->base = base;
    client->native.ops = &http_backend_native;
    client->curl.ops = &http_backend_curl;
    client->curl_only = curl_only;
    client->max_per_host =
        opts->max_connections_per_host ? opts->max_connections_per_host : HTTP_DEFAULT_PER_HOST;
    client->max_total =
        opts->max_total_connections ? opts->max_total_connections : HTTP_DEFAULT_TOTAL;
    client->user_agent =
        opts->user_agent ? dagi_xstrdup(opts->user_agent) : dagi_xstrdup("dagi/" DAGI_VERSION);
    client->ca_file = opts->ca_file ? dagi_xstrdup(opts->ca_file) : NULL;
    return client;
}

void dagi_http_client_free(struct dagi_http_client *client)
{
    if (!client)
        return;
    if (client->native.state)
        client->native.ops->close(client->native.state);
    if (client->curl.state)
        client->curl.ops->close(client->curl.state);
    free(client->user_agent);
    free(client->ca_file);
    free(client);
}

static bool header_is_safe(const char *h)
{
    /* a CR or LF would let a caller's value smuggle in another header */
    return !strpbrk(h, "\r\n") && strchr(h, ':');
}

/* The first backend, in order of preference, that can serve the URL.  Both
 * are made on first use: curl and its TLS stack cost megabytes of resident
 * memory that a node talking only to local models should not pay. */
static struct http_backend *backend_for(struct dagi_http_client *client, unsigned needs)
{
    struct http_backend *order[] = {&client->native, &client->curl};
    for (size_t i = client->curl_only ? 1 : 0; i < sizeof(order) / sizeof(order[0]); i++) {
        struct http_backend *b = order[i];
        if ((b->ops->caps & needs) != needs)
            continue;
        if (!b->state)
            b->state = b->ops->open(client);
        return b;
    }
    return NULL;
}

int dagi_http_client_request(struct dagi_http_client *client,
                             const struct dagi_http_request_opts *opts, struct dagi_http_call **out)
{
    if (!client || !opts || !opts->url || !opts->url[0] || (opts->body_len && !opts->body))
        return DAGI_EINVAL;
    if (opts->method && (!opts->method[0] || strpbrk(opts->method, " \r\n")))
        return DAGI_EINVAL;
    for (const char *const *h = opts->headers; h && *h; h++)
        if (!header_is_safe(*h))
            return DAGI_EINVAL;

    struct http_url url;
    struct http_backend *b = backend_for(client, http_url_split(opts->url, &url));
    if (!b)
        return DAGI_EINTERNAL; /* curl serves every need */
    struct dagi_http_call *call = dagi_xcalloc(1, b->ops->call_size);
    call->ops = b->ops;
    call->client = client;
    call->backend = b->state;
    call->on_headers = opts->on_headers;
    call->on_data = opts->on_data;
    call->on_done = opts->on_done;
    call->ud = opts->ud;
    dagi_buf_init(&call->body,
                  opts->max_response_bytes ? opts->max_response_bytes : HTTP_DEFAULT_MAX_RESPONSE);
    dagi_buf_init(&call->headers, HTTP_MAX_HEADER_BYTES);
    if (opts->idle_timeout_ms) {
        /* Ours, not the backend's: curl's low-speed limit counts whole
         * seconds, too coarse for a token stream.  Pushed back by every
         * byte; it starts now, so it also bounds connecting and the wait
         * for the first byte. */
        call->idle.tv_sec = opts->idle_timeout_ms / 1000;
        call->idle.tv_usec = (opts->idle_timeout_ms % 1000) * 1000;
        call->idle_timer = evtimer_new(client->base, on_idle_timeout, call);
        if (!call->idle_timer)
            abort();
        evtimer_add(call->idle_timer, &call->idle);
    }
    int rc = b->ops->start(b->state, call, opts, &url);
    if (rc) {
        http_call_release(call);
        return rc;
    }
    if (out)
        *out = call;
    return DAGI_OK;
}

void dagi_http_call_cancel(struct dagi_http_call *call)
{
    if (!call || call->cancelled || call->finishing)
        return;
    call->cancelled = true;
    if (call->idle_timer)
        evtimer_del(call->idle_timer);
    call->ops->cancel(call);
}

const char *dagi_http_call_header(struct dagi_http_call *call, const char *name)
{
    const char *p = call->headers.data;
    const char *end = p + call->headers.len;
    /* names and values never hold a NUL (both backends refuse such lines),
     * so they pair up */
    while (p && p < end) {
        const char *value = p + strlen(p) + 1;
        if (value >= end)
            break;
        if (strcasecmp(p, name) == 0)
            return value;
        p = value + strlen(value) + 1;
    }
    return NULL;
}

uint64_t dagi_http_client_connections_opened(struct dagi_http_client *client)
{
    return client->connections_opened;
}
