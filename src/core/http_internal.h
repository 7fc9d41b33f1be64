/* Private to the HTTP server: the structures shared by http_server.c (server,
 * listener, routing, drain), http_conn.c (the connection state machine) and
 * http_resp.c (request accessors and responses).  Nothing outside those three
 * files includes this.
 *
 * Re-entrancy: user callbacks (gate, handler, on_data, on_end, on_close,
 * on_drain) may answer, close or resume the request they are given.  Every
 * entry into a connection - a libevent callback or a public function called
 * from user code - is bracketed by http_conn_enter/http_conn_leave; the
 * connection is only freed, and a finished request only torn down, when the
 * outermost leave runs, so no frame below a callback ever sees freed memory. */
#ifndef DAGI_HTTP_INTERNAL_H
#define DAGI_HTTP_INTERNAL_H

#include <event2/bufferevent.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"
#include "http_parse.h"
#include "http_server.h"

#define HTTP_DRAIN_MARK (64 * 1024) /* on_drain fires below this many pending bytes */
#define HTTP_MAX_SEGMENTS 64

enum seg_kind { SEG_LITERAL, SEG_PARAM, SEG_REST };

struct route_seg {
    enum seg_kind kind;
    const char *text; /* the literal, or the parameter name */
    size_t len;
};

struct route_entry {
    struct dagi_http_route route; /* method and pattern point at owned copies */
    char *method, *pattern;
    struct route_seg *segs;
    size_t nseg, nparams;
    char *names; /* storage for segment texts */
};

struct conn;

struct dagi_http_server {
    struct event_base *base;
    struct dagi_http_server_opts opts; /* strings and limits deep-copied */
    struct evconnlistener *listener;
    void *tls_ctx; /* SSL_CTX *, NULL for plain HTTP */
    char address[80];
    struct route_entry **routes;
    size_t nroutes, route_alloc;
    dagi_http_gate_fn gate;
    void *gate_ud;
    dagi_http_body_gate_fn body_gate;
    void *body_gate_ud;
    struct conn *conns; /* every connection, including ones being refused */
    unsigned nconns;    /* counted against max_connections */
    unsigned nall;
    bool draining, drained_called;
    void (*on_drained)(void *ud);
    void *drained_ud;
    struct event *drain_timer, *drained_ev;
    struct dagi_metric *m_requests, *m_duration, *m_conns, *m_rx, *m_tx;
    time_t date_sec;
    char date[40];
    uint64_t rng[4];
};

enum conn_state {
    CS_HEAD,    /* waiting for (the rest of) a request head */
    CS_GATE,    /* the gate decides off the loop; nothing is read meanwhile */
    CS_BODY,    /* buffering a body before the handler runs */
    CS_HANDLER, /* the handler has the request (maybe reading a streamed body) */
    CS_CLOSING, /* flushing the last response, then lingering */
};

struct req_header {
    const char *name, *value;
};

struct resp_header {
    struct resp_header *next;
    const char *name, *value;
};

struct dagi_http_req {
    struct conn *conn;
    struct dagi_arena *arena;
    const struct route_entry *entry; /* NULL: unmatched */
    const char *method, *path, *query, *method_label;
    struct req_header *headers;
    size_t nheaders;
    const char **param_values; /* parallel to the entry's parameters */
    char trace_id[65];
    int minor;
    bool keep_alive, head_only, expect_continue, continue_sent;
    struct dagi_http_framing framing;
    uint64_t body_limit, length_left, body_decoded;
    bool body_done; /* all body bytes taken off the wire */
    struct dagi_http_chunked chunked;
    /* streaming body */
    dagi_http_body_data_fn on_data;
    dagi_http_body_end_fn on_end;
    void *body_ud;
    bool reading, paused, end_called, handler_called;
    /* response */
    struct resp_header *resp_headers;
    int status;
    bool started, streaming, raw_stream, done, closed;
    void (*on_close)(struct dagi_http_req *req, void *ud);
    void *close_ud;
    void (*on_drain)(struct dagi_http_req *req, void *ud);
    void *drain_ud;
    void *principal;
    struct json_t *json; /* the body parsed once (dagi_http_req_json), owned */
    int64_t start_ns;
};

struct conn {
    struct dagi_http_server *srv;
    struct conn *prev, *next;
    struct bufferevent *bev;
    evutil_socket_t fd;
    bool tls, counted, dead, eof, saw_bytes, lingering;
    enum conn_state state;
    int depth;
    unsigned requests;
    struct dagi_http_req *req;
    struct dagi_arena *arena; /* reset per request; its first block is reused */
    struct dagi_buf body;
    struct event *timer; /* header, idle or linger deadline */
    struct event *kick;  /* deferred work: next pipelined request, resume, on_drain */
    int timer_kind;
    unsigned read_timeout_ms, write_timeout_ms, idle_timeout_ms;
    size_t max_header_bytes;
    uint64_t rx, tx; /* bytes of the current request, for metrics */
    char peer[64];
};

/* http_conn.c */
void http_conn_accept(struct dagi_http_server *srv, evutil_socket_t fd, struct sockaddr *addr,
                      int socklen);
void http_conn_enter(struct conn *c);
bool http_conn_leave(struct conn *c);
void http_conn_destroy_now(struct conn *c); /* server free and forced drain */
void http_conn_kick(struct conn *c);
void http_conn_read_body_started(struct conn *c);
/* Server-side error for the current request: tells a handler that already
 * has the request through on_close, answers if nothing was sent, closes. */
void http_conn_fail(struct conn *c, int status, bool close, const char *code,
                    const char *message);

/* http_server.c */
const char *http_server_date(struct dagi_http_server *srv);
void http_server_trace_id(struct dagi_http_server *srv, char out[33]);
void http_server_conn_gone(struct dagi_http_server *srv);
/* Finds the route for method + raw path; fills req->entry and params, or
 * answers 404/405/400 itself and returns false. */
bool http_server_route(struct dagi_http_server *srv, struct dagi_http_req *req,
                       const char *raw_path, size_t raw_len);
uint64_t http_server_body_limit(struct dagi_http_server *srv, const struct route_entry *e,
                                const char *path);
const char *http_status_label(int status);

/* http_resp.c */
void http_resp_error(struct dagi_http_req *req, int status, const char *code,
                     const char *field, const char *message);
const char *http_reason(int status);

#endif
