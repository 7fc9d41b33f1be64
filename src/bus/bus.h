/* The bus: request/reply between roles over NATS, with streamed replies and
 * in-process delivery.
 *
 * Subjects are `dagi.<role>.<verb>` (dagi.swapper.infer).  A role serves a
 * subject with dagi_bus_serve(): over NATS that is a queue subscription (group
 * = the subject), so any number of processes may serve it and each request
 * reaches one of them.  A caller asks with dagi_bus_request() and gets either
 * one reply or a stream: numbered chunks, then a final message that carries a
 * result (e.g. token usage) or an error.
 *
 * In-process delivery: when the responder lives in the same process, the
 * request never touches nats-server.  The caller cannot tell the difference:
 * same subjects, deadlines, idle timeouts, errors, cancellation and metrics
 * (only the `path` label of dagi_bus_requests_total says which way it went).
 * `bus.inprocess: false` forces every request through NATS (tests run both).
 *
 * Wire protocol over NATS (docs/NATS_SUBJECTS.md):
 *   request  -> <subject>, reply-to a fresh inbox, headers
 *               Dagi-Trace-Id, Dagi-Deadline (unix ms), Dagi-Stream: 1 (caller
 *               accepts chunks)
 *   chunk    -> inbox, headers Dagi-Kind: chunk, Dagi-Seq: 0,1,2...
 *   final    -> inbox, Dagi-Kind: final, Dagi-Seq: n (body = the result)
 *   error    -> inbox, Dagi-Kind: error, Dagi-Error: <dagi_err name>, body =
 *               {"error":{"code":..,"message":..}}
 *   cancel   -> <inbox>.cancel (the responder subscribes to it while working)
 * A NATS "no responders" status (503) becomes DAGI_EUNAVAIL at once.
 *
 * Threading: a bus belongs to one event loop.  libnats does its socket I/O
 * on that loop through its libevent adapter but delivers messages on its own
 * threads; the bus hands every message to the loop through the node's
 * dagi_loopq, so every callback below runs on the loop thread.  Never call a
 * blocking libnats function (Request, Flush, JetStream admin, Fetch, KV) on
 * the loop thread: the loop does that connection's reads, so it would wait
 * for itself.  Use the worker pool or a dedicated thread (js.h does).
 */
#ifndef DAGI_BUS_H
#define DAGI_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct json_t;

struct event_base;
struct dagi_loopq;
struct dagi_metrics;
struct dagi_bus;
struct dagi_bus_req;
struct dagi_bus_call;
typedef struct __natsConnection natsConnection;

struct dagi_bus_opts {
    const char *url;      /* nats://host:port[,nats://...]; NULL = no NATS (in-process only) */
    const char *user;     /* NULL = no credentials */
    const char *password;
    const char *name;     /* connection name shown by the server, e.g. "dagi-node1" */
    bool inprocess;       /* deliver to local responders without NATS */
    size_t max_payload;   /* refuse requests/replies larger than this (0 = 8 MiB) */
    unsigned reconnect_wait_ms;   /* first reconnect delay, doubled up to 5 s (0 = 100 ms) */
    size_t reconnect_buffer;      /* bytes of publishes kept while disconnected (0 = 8 MiB) */
    struct dagi_loopq *loopq;     /* where libnats threads hand messages to the loop */
    struct dagi_metrics *metrics; /* NULL = dagi_metrics_default() */
};

/* Connects (blocking, before the loop runs) when opts->url is set.  With a
 * url it fails if the server cannot be reached at start; reconnects later are
 * automatic, with back-off, and publishes are buffered meanwhile. */
int dagi_bus_new(struct event_base *base, const struct dagi_bus_opts *opts, struct dagi_bus **out,
                 struct dagi_error *err);
/* Drops every subscription and call (no callbacks run) and closes. */
void dagi_bus_free(struct dagi_bus *bus);
/* True when NATS is connected (or when the bus has no NATS at all). */
bool dagi_bus_connected(struct dagi_bus *bus);
/* The connection for JetStream and KV (js.h); NULL without NATS. */
natsConnection *dagi_bus_nats(struct dagi_bus *bus);

/* --- serving --- */

struct dagi_bus_msg {
    const char *subject;
    const void *data;
    size_t len;
    const char *trace_id; /* "" when the caller sent none */
    int64_t deadline_ms;  /* unix ms by the business clock; 0 = none */
    bool stream;          /* the caller accepts chunks */
    /* In-process, a caller that sent a JSON document (opts.doc) hands it
     * over by reference: then doc is set and data is NULL.  Read the body
     * with dagi_bus_msg_json(), which works either way. */
    struct json_t *doc;
};

/* The request's JSON body as a new reference: the document handed over
 * in-process, or the bytes parsed (NULL when they are not JSON). */
struct json_t *dagi_bus_msg_json(const struct dagi_bus_msg *msg);

typedef void (*dagi_bus_handler_fn)(struct dagi_bus_req *req, const struct dagi_bus_msg *msg,
                                    void *ud);

/* Serves `subject` (exact, no wildcards) until the bus is freed.  The msg and
 * its data are valid during the handler call only; copy what you keep. */
int dagi_bus_serve(struct dagi_bus *bus, const char *subject, dagi_bus_handler_fn handler,
                   void *ud);

/* A request being answered is valid until one of reply / stream_end /
 * reply_error has been called, or until its on_cancel callback returns. */
int dagi_bus_reply(struct dagi_bus_req *req, const void *data, size_t len);
int dagi_bus_reply_error(struct dagi_bus_req *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Streams a chunk (only when msg->stream); numbered by the bus. */
int dagi_bus_stream_chunk(struct dagi_bus_req *req, const void *data, size_t len);
/* The final message of a stream (its result; may be empty). */
int dagi_bus_stream_end(struct dagi_bus_req *req, const void *data, size_t len);
/* The final reply (or a stream's end) as a JSON document: handed over by
 * reference to an in-process caller, serialised for NATS.  The document
 * must not change afterwards; the bus takes its own reference. */
int dagi_bus_reply_json(struct dagi_bus_req *req, struct json_t *doc);
/* Called once if the caller cancels, times out or goes away first.  After
 * it returns, the request is gone. */
void dagi_bus_req_on_cancel(struct dagi_bus_req *req, void (*on_cancel)(void *ud), void *ud);

/* --- calling --- */

struct dagi_bus_call_opts {
    const char *subject;
    const void *data;
    size_t len;
    /* Instead of data/len: a JSON document, handed to an in-process
     * responder by reference (no serialising and parsing in between) and
     * serialised for NATS.  It must not change afterwards; the bus takes
     * its own reference. */
    struct json_t *doc;
    const char *trace_id;     /* propagated; NULL = none */
    unsigned timeout_ms;      /* until the first reply or chunk (0 = 30 s) */
    unsigned idle_timeout_ms; /* streamed: the longest gap between chunks (0 = timeout_ms) */
    /* Chunks in order (seq from 0).  Set to accept a streamed reply. */
    void (*on_chunk)(struct dagi_bus_call *call, uint64_t seq, const void *data, size_t len,
                     void *ud);
    /* Exactly once, unless cancelled first: err 0 with the reply (or the
     * stream's final result), or a negative dagi_err with a message:
     * DAGI_EUNAVAIL (no responder), DAGI_ETIMEDOUT, or the responder's code. */
    void (*on_done)(struct dagi_bus_call *call, int err, const void *data, size_t len,
                    const char *error_message, void *ud);
    void *ud;
};

int dagi_bus_request(struct dagi_bus *bus, const struct dagi_bus_call_opts *opts,
                     struct dagi_bus_call **out);
/* Inside on_done: the reply's JSON body as a new reference - the document
 * an in-process responder handed over (then data is NULL), or data parsed
 * (NULL when it is not JSON). */
struct json_t *dagi_bus_call_json(struct dagi_bus_call *call, const void *data, size_t len);
/* Cancels a call: the responder is told (its on_cancel runs), and no
 * callback of this call runs again.  Safe from inside on_chunk. */
void dagi_bus_call_cancel(struct dagi_bus_call *call);

/* dagi_err <-> the name on the wire ("unavailable", "timed_out", ...). */
const char *dagi_bus_err_name(int err);
int dagi_bus_err_from_name(const char *name);

#endif
