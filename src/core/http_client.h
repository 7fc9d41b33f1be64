/* HTTP client driven by the same event loop as everything else (no
 * threads).  Connections are reused per host; request and response bodies
 * stream; every call has its own timeouts and can be cancelled.  All
 * functions must be called on the loop's thread, and every callback runs
 * there.
 *
 * Two backends behind one API: a native HTTP/1.1 client for plain http://
 * to numeric addresses and localhost (local model servers: no TLS, no
 * resolver, no per-request syscalls beyond send and recv), and libcurl's
 * multi-socket API for everything else (https://, host names, which curl
 * resolves without blocking the loop).  Each backend keeps its own
 * connections and applies the connection limits to them.  Calls beyond
 * max_connections_per_host wait, in order, for a connection to free up.
 *
 * Lifetime: a call lives from dagi_http_client_request() until its on_done
 * callback returns, or until dagi_http_call_cancel(), after which no callback
 * of that call runs again.  Cancelling from inside one of its own callbacks
 * is allowed. */
#ifndef DAGI_HTTP_CLIENT_H
#define DAGI_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct dagi_http_client;
struct dagi_http_call;

struct dagi_http_client_opts {
    unsigned max_connections_per_host; /* 0 = 1024; streams hold one each */
    unsigned max_total_connections;    /* 0 = 4096 */
    const char *ca_file;               /* extra trust anchors (PEM), or NULL for the system store */
    const char *user_agent;            /* NULL = "dagi/<version>" */
    /* NULL or "auto": native for the http:// URLs it serves, curl for the
     * rest; "curl": curl for everything.  Another name makes
     * dagi_http_client_new return NULL. */
    const char *backend;
};

struct dagi_http_response {
    int err; /* 0, or a dagi_err: ETIMEDOUT, EIO (connect/protocol), ETOOBIG, ECANCELED */
    const char *error_message; /* what failed, when err != 0 ("" otherwise) */
    long status;               /* HTTP status, 0 when none arrived */
    const char *body;          /* the buffered body (only when on_data is NULL), NUL-terminated */
    size_t body_len;
    double total_seconds;
};

struct dagi_http_request_opts {
    const char *method; /* NULL = GET, or POST when body is set */
    const char *url;
    const char *const *headers; /* "Name: value" strings, NULL-terminated; copied */
    const void *body;           /* copied; NULL for none */
    size_t body_len;
    unsigned connect_timeout_ms; /* 0 = 10 s */
    unsigned timeout_ms;         /* whole call; 0 = none */
    unsigned idle_timeout_ms;    /* cut when no byte arrives for this long; 0 = none */
    size_t max_response_bytes;   /* cap on the buffered body; 0 = 16 MiB */
    /* Called once when the status line and headers are in; return nonzero to abort. */
    int (*on_headers)(struct dagi_http_call *call, long status, void *ud);
    /* When set, the body is delivered here as it arrives instead of buffered;
     * return nonzero to abort (on_done then gets DAGI_ECANCELED). */
    int (*on_data)(struct dagi_http_call *call, const char *data, size_t len, void *ud);
    void (*on_done)(struct dagi_http_call *call, const struct dagi_http_response *resp, void *ud);
    void *ud;
};

struct dagi_http_client *dagi_http_client_new(struct event_base *base,
                                              const struct dagi_http_client_opts *opts);
/* Cancels every call in flight (their on_done is not called) and frees. */
void dagi_http_client_free(struct dagi_http_client *client);
/* Starts a call; returns 0 and sets *out (may be NULL if the caller does not
 * need a handle), or DAGI_EINVAL for bad options. */
int dagi_http_client_request(struct dagi_http_client *client,
                             const struct dagi_http_request_opts *opts,
                             struct dagi_http_call **out);
void dagi_http_call_cancel(struct dagi_http_call *call);
/* A response header of the call (valid from on_headers to on_done), or NULL. */
const char *dagi_http_call_header(struct dagi_http_call *call, const char *name);
/* Connections the client has opened so far (for tests of reuse and /metrics). */
uint64_t dagi_http_client_connections_opened(struct dagi_http_client *client);

#endif
