/* Private to src/bus: the bus object shared by bus.c (the NATS connection and
 * the hand-off of libnats messages to the loop) and request/reply in rpc.c,
 * rpc_call.c, rpc_serve.c and rpc_inproc.c (serving, calling, streams,
 * cancellation, in-process delivery; their own records are in
 * rpc_internal.h).
 *
 * Lifetimes, because three kinds of threads touch a bus:
 *   - struct dagi_bus and everything in it belong to the loop thread.
 *   - struct bus_shared is what libnats threads see (the closure of every
 *     subscription and connection callback).  It is reference counted: one
 *     reference for the bus, one per live subscription (dropped by libnats'
 *     on-complete callback, which runs after the last message callback of
 *     that subscription returned), one for the connection (dropped by its
 *     closed callback) and one while a drain is queued on the loopq.  So no
 *     libnats thread ever sees freed memory, and the bus can be freed at any
 *     time on the loop thread.
 *   - Calls and requests are looked up by id (or by reply subject) whenever
 *     something queued refers to them, never through a stored pointer, so a
 *     message still in a queue for a call that was cancelled or finished is
 *     simply dropped.
 *   - dagi_bus_free() runs on the loop thread, but not from inside one of
 *     the bus's own callbacks (a handler, on_chunk, on_done, on_cancel).
 */
#ifndef DAGI_BUS_INTERNAL_H
#define DAGI_BUS_INTERNAL_H

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "core/buf.h"

struct event;
struct dagi_metric;

/* What a libnats message is for; decides the handler on the loop. */
enum bus_msg_kind {
    BUS_MSG_REQUEST, /* on a served subject (queue subscription) */
    BUS_MSG_REPLY,   /* on this bus's reply inbox <prefix>.<call id> */
    BUS_MSG_CANCEL,  /* on <reply>.cancel of a request this bus is answering */
};

struct bus_inmsg {
    natsMsg *msg;
    enum bus_msg_kind kind;
};

/* The part of a bus that libnats threads touch.  All fields under lock
 * except the atomics. */
struct bus_shared {
    pthread_mutex_t lock;
    atomic_int refs;
    bool dead;      /* the bus is gone: drop whatever arrives */
    bool scheduled; /* a drain is queued on the loopq (holds a reference) */
    /* Messages waiting for the loop: a ring that grows up to a cap, so one
     * loopq push carries a whole burst and no message needs a malloc. */
    struct bus_inmsg *ring;
    size_t ring_alloc, ring_head, ring_count;
    uint64_t dropped;
    struct dagi_loopq *loopq;
    struct dagi_bus *bus; /* valid while !dead */
    atomic_bool connected;
    /* Touched only under lock and while !dead: the registry may be freed
     * right after dagi_bus_free returns. */
    struct dagi_metric *m_connected, *m_reconnects;
};

/* Intrusive chained hash table keyed by a 64-bit value (an id, or a string
 * hash that the caller confirms with strcmp). */
struct bus_hnode {
    struct bus_hnode *next;
    uint64_t key;
};

struct bus_htable {
    struct bus_hnode **buckets;
    size_t mask; /* buckets - 1 (a power of two minus one) */
    size_t count;
};

struct bus_serve; /* rpc_internal.h */
struct bus_local_item;

struct dagi_bus {
    struct event_base *base;
    struct bus_shared *shared;
    natsConnection *nc; /* NULL without NATS */
    bool inprocess;
    size_t max_payload;
    struct dagi_loopq *loopq;
    bool own_loopq; /* made by the bus when opts->loopq was NULL */
    struct dagi_metrics *metrics;

    /* Replies to this bus's calls arrive on one wildcard subscription,
     * <prefix>.*, with the call id as the last token (as libnats' own
     * request multiplexer does): no subscription per call. */
    natsSubscription *reply_sub;
    char reply_prefix[64];
    size_t reply_prefix_len;

    /* request/reply state (rpc*.c) */
    struct bus_serve **serves; /* sorted by subject */
    size_t serve_count, serve_alloc;
    struct bus_htable calls;         /* dagi_bus_call by id */
    struct bus_htable reqs;          /* dagi_bus_req by id */
    struct bus_htable reqs_by_reply; /* NATS reqs with a cancel subscription */
    uint64_t next_call_id, next_req_id;
    struct bus_local_item *local_head, *local_tail; /* in-process deliveries */
    struct event *local_ev;
    struct dagi_buf scratch; /* error bodies; reused */
    struct dagi_metric *m_requests, *m_duration, *m_chunks;
};

/* bus.c: subscriptions whose messages reach dagi_bus_rpc_deliver() on the
 * loop.  queue may be NULL. */
int dagi_bus_nats_subscribe(struct dagi_bus *bus, const char *subject, const char *queue,
                            enum bus_msg_kind kind, natsSubscription **out);
void dagi_bus_nats_unsubscribe(natsSubscription *sub);
/* Writes what is buffered on the connection now (loop thread only). */
void dagi_bus_nats_flush_now(struct dagi_bus *bus);
/* A libnats status as a dagi_err. */
int dagi_bus_nats_err(natsStatus s);

/* rpc.c, called by bus.c. */
void dagi_bus_rpc_init(struct dagi_bus *bus);
void dagi_bus_rpc_release(struct dagi_bus *bus);
/* Takes ownership of msg. */
void dagi_bus_rpc_deliver(struct dagi_bus *bus, enum bus_msg_kind kind, natsMsg *msg);

#endif
