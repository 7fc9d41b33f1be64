/* Private to the request/reply files of src/bus (rpc.c has the overview and
 * says which file holds what): the serve, call and request records, the
 * in-process queue item, the wire's header names, and the functions one
 * file calls in another.  bus_internal.h has the bus itself and who may
 * touch it from which thread.
 *
 * Everything declared here runs on the loop thread. */
#ifndef DAGI_BUS_RPC_INTERNAL_H
#define DAGI_BUS_RPC_INTERNAL_H

#include "bus_internal.h"

#include <event2/event.h>
#include <event2/event_struct.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAX_ERROR_MESSAGE 1024

#define H_TRACE "Dagi-Trace-Id"
#define H_DEADLINE "Dagi-Deadline"
#define H_STREAM "Dagi-Stream"
#define H_KIND "Dagi-Kind"
#define H_SEQ "Dagi-Seq"
#define H_ERROR "Dagi-Error"

static const char KIND_CHUNK[] = "chunk", KIND_FINAL[] = "final", KIND_ERROR[] = "error";

enum path { PATH_INPROC, PATH_NATS };

enum local_kind { L_DISPATCH, L_REQ_CANCEL, L_CHUNK, L_FINAL, L_ERROR };

/* One in-process delivery: to a request (by req id) or to a call (by call
 * id).  data holds the payload, or the NUL-terminated error message. */
struct bus_local_item {
    struct bus_local_item *next;
    uint64_t id, seq;
    int code;
    enum local_kind kind;
    json_t *doc; /* L_FINAL: a reply handed over by reference (owned) */
    size_t len;
    char data[];
};

struct bus_serve {
    char *subject;
    dagi_bus_handler_fn handler;
    void *ud;
    natsSubscription *sub;
};

struct dagi_bus_call {
    struct bus_hnode node; /* bus->calls, key = id */
    struct dagi_bus *bus;
    uint64_t id;
    uint64_t req_id; /* in-process: the responder's request */
    enum path path;
    void (*on_chunk)(struct dagi_bus_call *, uint64_t, const void *, size_t, void *);
    void (*on_done)(struct dagi_bus_call *, int, const void *, size_t, const char *, void *);
    void *ud;
    unsigned timeout_ms, idle_ms;
    uint64_t next_seq; /* chunks received so far */
    int64_t start_ns, last_ns;
    bool streaming;   /* a chunk arrived: the idle timeout applies */
    bool in_callback; /* inside on_chunk: a cancel defers the free */
    bool ended;       /* cancelled or finished: no callback runs again */
    json_t *reply_doc; /* during on_done: an in-process reply document (borrowed) */
    struct event timer;
    char subject[];
};

struct dagi_bus_req {
    struct bus_hnode by_id;    /* bus->reqs */
    struct bus_hnode by_reply; /* bus->reqs_by_reply while cancel_sub is set */
    struct dagi_bus *bus;
    uint64_t id;
    uint64_t call_id; /* in-process: the caller */
    struct bus_serve *serve;
    natsSubscription *cancel_sub;
    uint64_t next_seq;
    int64_t deadline_ms;
    void (*on_cancel)(void *);
    void *on_cancel_ud;
    bool nats, stream;
    bool dispatched;        /* in-process: the handler has been called */
    bool in_handler;        /* answering inside the handler defers the free */
    bool in_cancel;         /* inside on_cancel: calls return ECANCELED */
    bool done;              /* answered; freed when the handler returns */
    bool cancelled;         /* the caller is gone: calls return ECANCELED */
    bool cancel_seen;       /* the cancel has been processed */
    bool cancel_registered; /* dagi_bus_req_on_cancel was called */
    bool sent;              /* something went to the caller */
    bool timer_armed;
    struct event timer;
    const char *trace_id;
    const void *data; /* in-process: the copied request (inline below) */
    json_t *doc;      /* in-process: the request document, owned (then data is NULL) */
    size_t len;
    char *reply; /* NATS: the caller's inbox (inline below) */
    char inline_data[];
};

#define container_of(p, type, member) ((type *)(void *)((char *)(p)-offsetof(type, member)))

/* --- rpc.c: helpers every side uses --- */

uint64_t rpc_hash_str(const char *s, size_t n);
/* The id tables (struct bus_htable, bus_internal.h).  rpc_ht_find returns
 * the first node with `key`, or the one after `from` when from is set. */
void rpc_ht_insert(struct bus_htable *t, struct bus_hnode *e, uint64_t key);
struct bus_hnode *rpc_ht_find(const struct bus_htable *t, uint64_t key, struct bus_hnode *from);
void rpc_ht_remove(struct bus_htable *t, struct bus_hnode *e);
/* Decimal without printf; returns a pointer into buf. */
char *rpc_u64_dec(uint64_t v, char buf[24]);
bool rpc_parse_u64(const char *s, uint64_t *out);
/* A header's value, or NULL. */
const char *rpc_header(natsMsg *m, const char *key);
void rpc_arm_timer(struct event *ev, int64_t ms);
/* A subject one can serve or call: no wildcards, spaces or empty tokens. */
bool rpc_valid_subject(const char *s);

/* --- rpc_call.c: the caller's side --- */

void rpc_call_free(struct dagi_bus_call *call);
/* Takes the call out of reach of everything queued. */
void rpc_call_end(struct dagi_bus_call *call);
/* Tells the responder to stop (the caller cancelled or timed out). */
void rpc_call_send_cancel(struct dagi_bus_call *call);
/* What the responder sent: a chunk (to on_chunk), the final reply, or an
 * end with err (to on_done, after which the call is freed). */
void rpc_call_finish(struct dagi_bus_call *call, int err, const void *data, size_t len,
                     const char *message);
void rpc_call_chunk(struct dagi_bus_call *call, uint64_t seq, const void *data, size_t len);
void rpc_call_final(struct dagi_bus_call *call, uint64_t seq, const void *data, size_t len,
                    json_t *doc);
struct dagi_bus_call *rpc_call_lookup(struct dagi_bus *bus, uint64_t id);
/* A message on the reply inbox; does not take ownership of m. */
void rpc_deliver_reply(struct dagi_bus *bus, natsMsg *m);

/* --- rpc_serve.c: the responder's side --- */

/* The serve for subject, or NULL; *pos (when set) is where it is or would
 * go in bus->serves. */
struct bus_serve *rpc_serve_find(struct dagi_bus *bus, const char *subject, size_t *pos);
/* A zeroed request with `extra` bytes of inline_data, in bus->reqs. */
struct dagi_bus_req *rpc_req_new(struct dagi_bus *bus, size_t extra);
void rpc_req_free(struct dagi_bus_req *req);
/* The caller is gone (cancel message, in-process cancel, or deadline). */
void rpc_req_cancel(struct dagi_bus_req *req);
struct dagi_bus_req *rpc_req_lookup(struct dagi_bus *bus, uint64_t id);
void rpc_req_run_handler(struct dagi_bus_req *req, const struct dagi_bus_msg *msg);
/* A request on a served subject, a cancel on <reply>.cancel; neither takes
 * ownership of m. */
void rpc_deliver_request(struct dagi_bus *bus, natsMsg *m);
void rpc_deliver_cancel(struct dagi_bus *bus, natsMsg *m);

/* --- rpc_inproc.c: in-process delivery --- */

/* Queues an item (data is copied) and wakes the drain if it was idle. */
struct bus_local_item *rpc_local_push(struct dagi_bus *bus, enum local_kind kind, uint64_t id,
                                      uint64_t seq, int code, const void *data, size_t len);
/* The caller cancelled an in-process request. */
void rpc_req_cancel_inproc(struct dagi_bus *bus, uint64_t req_id);
/* The drain: bus->local_ev's callback. */
void rpc_on_local(evutil_socket_t fd, short what, void *arg);

#endif
