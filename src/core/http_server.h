/* HTTP/1.1 server on libevent bufferevents.
 *
 * Why not evhttp: evhttp reads a whole request body into memory before the
 * handler runs and gives the handler no back-pressure on output.  dagi must
 * stream uploads of hundreds of megabytes with flat memory, answer 413
 * without reading an oversized body, and push SSE tokens only as fast as a
 * client reads them.  So the server owns its connections as bufferevents and
 * parses requests with the pure parser in http_parse.h.  See docs/HTTP.md.
 *
 * Threading: one server per event loop; every function here must be called on
 * that loop's thread.  Work done elsewhere comes back through dagi_loopq or
 * dagi_pool before it touches a request.
 *
 * Request lifetime: a `struct dagi_http_req` is valid from the handler call
 * until the response is complete (dagi_http_respond*, or dagi_http_stream_end)
 * or, if the client goes away first, until the on_close callback returns.
 * After either, the handler must not touch it again.  A handler that answers
 * later (async) registers on_close so it learns that the request is gone.
 *
 * Per-request memory comes from dagi_http_req_arena(), freed with the request.
 */
#ifndef DAGI_HTTP_SERVER_H
#define DAGI_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "err.h"

struct event_base;
struct json_t;
struct dagi_metrics;
struct dagi_http_server;
struct dagi_http_req;

typedef void (*dagi_http_handler_fn)(struct dagi_http_req *req, void *ud);

enum dagi_http_route_flags {
    /* Only with the admin key as a Bearer token (checked by the gate). */
    DAGI_ROUTE_ADMIN = 1u << 0,
    /* The handler runs as soon as the headers are parsed and reads the body
     * itself with dagi_http_req_read_body(); without this flag the server
     * buffers the body (up to max_body) before calling the handler. */
    DAGI_ROUTE_STREAM_BODY = 1u << 1,
    /* No authentication at all (health, readiness, metrics scraping). */
    DAGI_ROUTE_PUBLIC = 1u << 2,
};

struct dagi_http_route {
    const char *method;  /* "GET", "POST", ...; exact match */
    /* Literal segments and {name} parameters ("/v1/agents/{id}/infer"); a
     * final {name*} takes the rest of the path.  Literal segments win over
     * parameters at the same position. */
    const char *pattern;
    dagi_http_handler_fn handler;
    void *ud;
    unsigned flags;  /* enum dagi_http_route_flags */
    size_t max_body; /* 0 = the server's default cap; a configured prefix limit overrides it */
    /* For the gate, which the server does not interpret: the route's class
     * (what rate limits are configured for: "agents", "openai", ...) and
     * the gate's own per-route rules (its credential, body validation). */
    const char *class;
    const void *gate_data;
};

/* The gate every request passes after routing and before its handler (and
 * before its body is read): authentication, rate limits, validation.  Return
 * 0 to continue; otherwise the gate has answered (e.g. 401) and the handler
 * is not called. */
typedef int (*dagi_http_gate_fn)(struct dagi_http_req *req, const struct dagi_http_route *route,
                                 void *ud);
/* A gate may also answer later (a credential looked up off the loop):
 * it returns DAGI_HTTP_GATE_PENDING and calls dagi_http_req_gate_resume()
 * once it has decided - after answering the request itself if it refuses.
 * Nothing of the body is read meanwhile. */
#define DAGI_HTTP_GATE_PENDING 1
void dagi_http_req_gate_resume(struct dagi_http_req *req);
/* The gate's second look, for what needs the body (a signature over it,
 * the shape of a JSON body): after a buffered body is complete and before
 * the handler.  Return 0 to continue, or answer and return nonzero.  Routes
 * with DAGI_ROUTE_STREAM_BODY have no second look. */
typedef int (*dagi_http_body_gate_fn)(struct dagi_http_req *req,
                                      const struct dagi_http_route *route, void *ud);

/* One prefix-scoped body cap (config http.limits). */
struct dagi_http_limit {
    const char *prefix;
    size_t max_body;
};

struct dagi_http_server_opts {
    const char *listen;           /* "host:port"; port 0 picks a free one */
    size_t max_body;              /* default body cap for routes that set none */
    size_t max_header_bytes;      /* request line + headers */
    unsigned read_timeout_ms;     /* headers must arrive, and a body must progress, within this */
    unsigned write_timeout_ms;    /* a response must make progress within this */
    unsigned idle_timeout_ms;     /* a kept-alive connection may idle this long */
    unsigned drain_timeout_ms;    /* how long in-flight requests get on shutdown */
    unsigned max_connections;     /* further connections are refused with 503 */
    const char *tls_cert_file;    /* PEM; both set = HTTPS only */
    const char *tls_key_file;
    const struct dagi_http_limit *limits; /* longest prefix wins over route and default caps */
    size_t limit_count;
    struct dagi_metrics *metrics; /* NULL = dagi_metrics_default() */
};

int dagi_http_server_new(struct event_base *base, const struct dagi_http_server_opts *opts,
                         struct dagi_http_server **out, struct dagi_error *err);
/* Closes every connection at once (no drain) and frees the server. */
void dagi_http_server_free(struct dagi_http_server *srv);
/* Routes may be added before or after listen.  DAGI_EEXIST for a duplicate
 * method+pattern, DAGI_EINVAL for a bad pattern.  The route struct is copied. */
int dagi_http_server_add_route(struct dagi_http_server *srv, const struct dagi_http_route *route);
/* Visits every route (for the gate's route-table walk and for docs). */
void dagi_http_server_each_route(struct dagi_http_server *srv,
                                 void (*fn)(const struct dagi_http_route *route, void *ud),
                                 void *ud);
void dagi_http_server_set_gate(struct dagi_http_server *srv, dagi_http_gate_fn gate, void *ud);
void dagi_http_server_set_body_gate(struct dagi_http_server *srv, dagi_http_body_gate_fn gate,
                                    void *ud);
/* Replaces the timeouts and caps (on reload); open connections keep theirs. */
int dagi_http_server_update(struct dagi_http_server *srv, const struct dagi_http_server_opts *opts,
                            struct dagi_error *err);
/* Binds and starts accepting. */
int dagi_http_server_listen(struct dagi_http_server *srv, struct dagi_error *err);
/* The bound address, "127.0.0.1:34567" (valid after listen). */
const char *dagi_http_server_address(struct dagi_http_server *srv);
/* Graceful drain: stop accepting, close idle connections, let in-flight
 * requests (including streams) finish within drain_timeout_ms, then close
 * whatever is left and call on_drained once. */
void dagi_http_server_drain(struct dagi_http_server *srv, void (*on_drained)(void *ud), void *ud);
bool dagi_http_server_draining(struct dagi_http_server *srv);

/* --- the request --- */
const char *dagi_http_req_method(struct dagi_http_req *req);
const char *dagi_http_req_path(struct dagi_http_req *req);  /* percent-decoded, no query */
const char *dagi_http_req_query(struct dagi_http_req *req); /* raw, without '?'; "" if none */
/* A decoded query parameter, or NULL. */
const char *dagi_http_req_query_param(struct dagi_http_req *req, const char *name);
/* First header with that name (case-insensitive), or NULL. */
const char *dagi_http_req_header(struct dagi_http_req *req, const char *name);
/* A path parameter of the matched route, or NULL. */
const char *dagi_http_req_param(struct dagi_http_req *req, const char *name);
const struct dagi_http_route *dagi_http_req_route(struct dagi_http_req *req);
/* From a valid W3C traceparent or X-Request-Id header, else generated (32 hex). */
const char *dagi_http_req_trace_id(struct dagi_http_req *req);
const char *dagi_http_req_peer(struct dagi_http_req *req); /* "ip:port" */
struct dagi_arena *dagi_http_req_arena(struct dagi_http_req *req);
struct dagi_http_server *dagi_http_req_server(struct dagi_http_req *req);
/* A slot for the gate's principal; owned by the arena or the caller. */
void dagi_http_req_set_principal(struct dagi_http_req *req, void *principal);
void *dagi_http_req_principal(struct dagi_http_req *req);

/* The buffered body (routes without DAGI_ROUTE_STREAM_BODY); NUL-terminated. */
const char *dagi_http_req_body(struct dagi_http_req *req, size_t *len);
/* Parses the buffered body as a JSON object.  On failure answers 400
 * (`{"error":{"code":"invalid_json","message":"... at offset N"}}`) or 415
 * for a non-JSON content type, and returns a negative dagi_err; the caller
 * then just returns.  On success *out is a new reference. */
int dagi_http_req_json(struct dagi_http_req *req, struct json_t **out);

/* Streaming body (DAGI_ROUTE_STREAM_BODY routes).  on_data gets the body
 * de-chunked, as it arrives; it returns 0 to go on, DAGI_EAGAIN to pause
 * reading until dagi_http_req_resume_body(), or another negative code to
 * stop (the server then answers 400 unless the handler already answered).
 * on_end runs once after the last byte.  A body over the cap is answered
 * with 413 by the server, and on_end is not called.  The callbacks may
 * answer the request. */
typedef int (*dagi_http_body_data_fn)(struct dagi_http_req *req, const char *data, size_t len,
                                      void *ud);
typedef void (*dagi_http_body_end_fn)(struct dagi_http_req *req, void *ud);
void dagi_http_req_read_body(struct dagi_http_req *req, dagi_http_body_data_fn on_data,
                             dagi_http_body_end_fn on_end, void *ud);
void dagi_http_req_resume_body(struct dagi_http_req *req);

/* Called if the connection closes before the response is complete. */
void dagi_http_req_on_close(struct dagi_http_req *req,
                            void (*on_close)(struct dagi_http_req *req, void *ud), void *ud);

/* --- responses --- */
/* Adds a response header (before the response starts).  Copied. */
void dagi_http_set_header(struct dagi_http_req *req, const char *name, const char *value);
void dagi_http_respond(struct dagi_http_req *req, int status, const char *content_type,
                       const void *body, size_t len);
/* Serializes `body` (a reference is stolen). */
void dagi_http_respond_json(struct dagi_http_req *req, int status, struct json_t *body);
/* {"error":{"code":code,"message":message[,"field":field]}} */
void dagi_http_respond_error(struct dagi_http_req *req, int status, const char *code,
                             const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Chunked streaming.  stream_write queues bytes and returns 0, or
 * DAGI_ECLOSED once the client is gone.  Back-pressure: pending() says how
 * many bytes are queued and not yet written; on_drain registers a one-shot
 * callback for when that falls below 64 KiB. */
int dagi_http_stream_start(struct dagi_http_req *req, int status, const char *content_type);
int dagi_http_stream_write(struct dagi_http_req *req, const void *data, size_t len);
/* One Server-Sent Event: "event: <event>\n" (when event != NULL), one
 * "data: " line per line of data, then a blank line.  Starts the stream with
 * text/event-stream if it has not started. */
int dagi_http_sse_send(struct dagi_http_req *req, const char *event, const char *data);
size_t dagi_http_stream_pending(struct dagi_http_req *req);
void dagi_http_stream_on_drain(struct dagi_http_req *req,
                               void (*on_drain)(struct dagi_http_req *req, void *ud), void *ud);
/* Ends the stream (the terminating chunk); the request is then done. */
void dagi_http_stream_end(struct dagi_http_req *req);

#endif
