/* What the HTTP client's front (http_client.c) shares with its backends:
 * the native HTTP/1.1 client for plain http:// (http_client_native.c) and
 * libcurl for everything else (http_client_curl.c).
 *
 * The front validates a request, picks a backend by what the URL needs
 * against what each backend can do (capability bits, never names), makes
 * the call (each backend's call struct starts with struct dagi_http_call)
 * and owns what every call has whatever carries it: the callbacks, the
 * buffered body and its cap, the stored response headers, the idle timer.
 * Backends move bytes and report through the http_call_* helpers below,
 * which enforce the caps and the cancel rules the same way for both. */
#ifndef DAGI_HTTP_CLIENT_INTERNAL_H
#define DAGI_HTTP_CLIENT_INTERNAL_H

#include "buf.h"
#include "http_client.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define HTTP_DEFAULT_PER_HOST 1024
#define HTTP_DEFAULT_TOTAL 4096
#define HTTP_DEFAULT_CONNECT_TIMEOUT_MS 10000
#define HTTP_DEFAULT_MAX_RESPONSE (16u << 20)
#define HTTP_MAX_HEADER_BYTES (256u << 10) /* a response's head; stored headers of one call */

/* What a URL needs of a backend; a backend's caps must cover all of it. */
enum {
    HTTP_NEEDS_TLS = 1 << 0,      /* https:// */
    HTTP_NEEDS_RESOLVER = 1 << 1, /* a host name other than localhost */
    HTTP_NEEDS_ANY_URL =
        1 << 2, /* another scheme, userinfo, odd bytes: curl's URL parser decides */
};

/* A URL split for the native backend; filled by http_url_split.  Only
 * meaningful when it reports no needs beyond plain http. */
struct http_url {
    char host[64];      /* lower case, IPv6 without brackets */
    char authority[72]; /* as written in the URL, for the Host header */
    uint16_t port;
    const char *target; /* path and query, pointing into the URL; "" means "/" */
    size_t target_len;
    int naddrs; /* 1, or 2 for localhost (127.0.0.1 first, then ::1) */
    struct sockaddr_storage addrs[2];
    socklen_t addr_lens[2];
};

unsigned http_url_split(const char *url, struct http_url *out);

struct http_backend_ops {
    const char *name;
    unsigned caps;    /* HTTP_NEEDS_* it can serve */
    size_t call_size; /* of its call struct, which starts with struct dagi_http_call */
    /* Made on first use; never fails (allocation failure aborts). */
    void *(*open)(struct dagi_http_client *client);
    /* Drops every call without calling back, closes connections, frees. */
    void (*close)(void *backend);
    /* Takes over a call the front has filled in.  No user callback may run
     * before this returns.  0, or a dagi_err and the front frees the call. */
    int (*start)(void *backend, struct dagi_http_call *call,
                 const struct dagi_http_request_opts *opts, const struct http_url *url);
    /* call->cancelled is set: drop it without calling back.  May come from
     * inside one of the call's own callbacks. */
    void (*cancel)(struct dagi_http_call *call);
    /* Ends the call now with err and call->abort_msg (the idle timer fired;
     * no backend code is on the stack). */
    void (*expire)(struct dagi_http_call *call, int err);
};

extern const struct http_backend_ops http_backend_native;
extern const struct http_backend_ops http_backend_curl;

struct http_backend {
    const struct http_backend_ops *ops;
    void *state; /* NULL until first used */
};

struct dagi_http_client {
    struct event_base *base;
    struct http_backend native, curl;
    bool curl_only; /* opts.backend = "curl" */
    unsigned max_per_host, max_total;
    uint64_t connections_opened; /* both backends count their sockets here */
    char *user_agent;
    char *ca_file;
};

struct dagi_http_call {
    const struct http_backend_ops *ops;
    struct dagi_http_client *client;
    void *backend; /* the backend's state */
    int (*on_headers)(struct dagi_http_call *, long, void *);
    int (*on_data)(struct dagi_http_call *, const char *, size_t, void *);
    void (*on_done)(struct dagi_http_call *, const struct dagi_http_response *, void *);
    void *ud;
    struct dagi_buf body;    /* buffered response (unused with on_data); cap = max_response_bytes */
    struct dagi_buf headers; /* response headers as "name\0value\0" pairs */
    struct event *idle_timer; /* NULL without an idle timeout */
    struct timeval idle;
    int abort_err;       /* why the call is being failed by our side, or 0 */
    char abort_msg[128]; /* its text */
    bool cancelled;      /* no user callback may run again */
    bool finishing;      /* inside on_done: cancel is a no-op */
    bool headers_done;   /* on_headers delivered */
};

/* Pushes the idle timer back: a byte arrived. */
void http_call_touch(struct dagi_http_call *call);
/* Forgets the stored headers (a new header block began). */
void http_call_clear_headers(struct dagi_http_call *call);
/* Stores one response header for dagi_http_call_header.  Over
 * HTTP_MAX_HEADER_BYTES: sets abort_err = DAGI_ETOOBIG and returns it. */
int http_call_add_header(struct dagi_http_call *call, const char *name, size_t name_len,
                         const char *value, size_t value_len);
/* Fails the call from our side: sets abort_err and abort_msg; returns err. */
int http_call_abort(struct dagi_http_call *call, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Deliver the status (once) and body bytes.  0 = go on; nonzero = stop:
 * either the call was cancelled from the callback (call->cancelled: tear
 * down silently) or it failed (abort_err/abort_msg say why: the callback
 * returned nonzero, or the buffered body went over its cap). */
int http_call_deliver_headers(struct dagi_http_call *call, long status);
int http_call_deliver_body(struct dagi_http_call *call, const char *data, size_t len);
/* Runs on_done unless the call was cancelled; fills in the buffered body
 * and the error message.  The backend frees the call afterwards. */
void http_call_complete(struct dagi_http_call *call, int err, const char *message, long status,
                        double total_seconds);
/* Frees what the front made (buffers, idle timer) and the call itself. */
void http_call_release(struct dagi_http_call *call);

#endif
