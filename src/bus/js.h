/* JetStream: the event, work, audit and dead-letter streams; publishing with
 * de-duplication; pull consumers with back-off and dead letters; KV buckets.
 *
 * Everything that blocks in libnats (stream admin, synchronous acks, Fetch,
 * KV) runs off the loop thread: provisioning and KV calls on the worker pool,
 * each pull consumer on its own thread.  Results and messages come back to
 * the loop through the node's dagi_loopq, so every callback runs on the loop.
 *
 * Streams (provisioned idempotently by dagi_js_provision; names fixed):
 *   DAGI_EVENTS  message.> attachment.> agent.> quota.> ops.> content.>
 *                limits retention, max age bus.event_max_age
 *   DAGI_AUDIT   audit.>  limits retention, DenyDelete + DenyPurge
 *   DAGI_WORK    dagi.work.>  work-queue retention, max age bus.work_max_age
 *   DAGI_DLQ     dagi.dlq.>   limits retention, max age bus.dlq_max_age
 * All with file storage and the de-duplication window bus.dedup_window.
 */
#ifndef DAGI_JS_H
#define DAGI_JS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct dagi_bus;
struct dagi_pool;
struct dagi_loopq;
struct dagi_metrics;
struct dagi_js;
struct dagi_js_consumer;
struct dagi_js_delivery;
struct dagi_kv;
struct dagi_kv_watch;

struct dagi_js_opts {
    int64_t dedup_window_ms;  /* Nats-Msg-Id window (0 = 2 min) */
    int64_t event_max_age_ms; /* 0 = 7 days */
    int64_t work_max_age_ms;  /* 0 = 1 day */
    int64_t dlq_max_age_ms;   /* 0 = 30 days */
    int64_t audit_max_age_ms; /* 0 = forever */
    int replicas;             /* 0 = 1 */
    struct dagi_pool *pool;
    struct dagi_loopq *loopq;
    struct dagi_metrics *metrics;
};

/* A JetStream context on the bus's connection (DAGI_EUNAVAIL without NATS). */
int dagi_js_new(struct dagi_bus *bus, const struct dagi_js_opts *opts, struct dagi_js **out,
                struct dagi_error *err);
/* The same on a plain libnats connection (tests, tools); dagi_js_new calls
 * it with dagi_bus_nats(bus).  The connection must outlive the context. */
typedef struct __natsConnection natsConnection;
int dagi_js_new_conn(natsConnection *nc, const struct dagi_js_opts *opts, struct dagi_js **out,
                     struct dagi_error *err);
/* Async publishes still awaiting their ack get acked(ud, DAGI_ECANCELED, ..)
 * from inside this call (on the caller's thread, i.e. the loop). */
void dagi_js_free(struct dagi_js *js);

/* Creates or updates the four streams; done(ud, err, message) on the loop. */
void dagi_js_provision(struct dagi_js *js,
                       void (*done)(void *ud, int err, const char *message), void *ud);
/* The same, blocking: for CLI tools and threads that are not the loop. */
int dagi_js_provision_sync(struct dagi_js *js, struct dagi_error *err);

/* --- publishing --- */

struct dagi_js_header {
    const char *name, *value;
};

/* Publishes asynchronously (pipelined) with Nats-Msg-Id = msg_id (may be
 * NULL: no de-duplication).  acked(ud, err, seq, duplicate) runs on the loop
 * once the stream has stored it (or refused, or timed out: DAGI_ETIMEDOUT).
 * While NATS is down the publish is buffered by the connection; if the
 * buffer is full it fails at once with DAGI_EAGAIN - never silently.
 * When it returns an error, acked is not called. */
int dagi_js_publish(struct dagi_js *js, const char *subject, const void *data, size_t len,
                    const char *msg_id, const struct dagi_js_header *headers, size_t header_count,
                    void (*acked)(void *ud, int err, uint64_t seq, bool duplicate), void *ud);
/* Blocking publish for threads that are not the loop (CLI, consumers). */
int dagi_js_publish_sync(struct dagi_js *js, const char *subject, const void *data, size_t len,
                         const char *msg_id, const struct dagi_js_header *headers,
                         size_t header_count, uint64_t *seq_out, struct dagi_error *err);

/* --- pull consumers --- */

struct dagi_js_consumer_opts {
    const char *stream;        /* "DAGI_WORK" */
    const char *durable;       /* durable consumer name */
    const char *filter;        /* subject filter, e.g. "dagi.work.telegram" */
    int max_deliver;           /* deliveries before the dead-letter stream (0 = 5) */
    int64_t backoff_base_ms;   /* first retry delay, doubled per delivery (0 = 1 s) */
    int64_t backoff_max_ms;    /* (0 = 5 min) */
    int64_t ack_wait_ms;       /* redelivery when a handler never answers (0 = 30 s) */
    int batch;                 /* messages per fetch (0 = 16) */
};

struct dagi_js_msg {
    const char *subject;
    const void *data;
    size_t len;
    uint64_t stream_seq;
    uint64_t deliveries; /* 1 on the first delivery */
    const char *msg_id;  /* Nats-Msg-Id, "" if none */
    const char *(*header)(const struct dagi_js_msg *msg, const char *name); /* NULL if absent */
};

/* Called on the loop for each message; the handler finishes it, now or
 * later, with dagi_js_ack() or dagi_js_fail(). */
typedef void (*dagi_js_handler_fn)(struct dagi_js_delivery *d, const struct dagi_js_msg *msg,
                                   void *ud);

/* Starts the consumer's fetch thread, which creates (or updates) the durable
 * consumer and binds to it - retrying every second, with a log line, while
 * the stream or NATS is not there - then fetches.  Fails at once only for
 * bad arguments. */
int dagi_js_consume(struct dagi_js *js, const struct dagi_js_consumer_opts *opts,
                    dagi_js_handler_fn handler, void *ud, struct dagi_js_consumer **out,
                    struct dagi_error *err);
/* Stops fetching (joins the thread: up to a second).  Deliveries already
 * given to the handler may still be finished; those still queued for the
 * loop are nak'ed for immediate redelivery instead.  The js context must
 * outlive every consumer and delivery. */
void dagi_js_consumer_stop(struct dagi_js_consumer *c);
/* Done: the message is acknowledged. */
void dagi_js_ack(struct dagi_js_delivery *d);
/* Failed: redelivered after backoff_base * 2^(deliveries-1) (capped); on the
 * max_deliver-th failure it is copied to DAGI_DLQ as dagi.dlq.<stream>.<subject>
 * with its headers plus Dagi-Dlq-Stream, Dagi-Dlq-Subject, Dagi-Dlq-Seq,
 * Dagi-Dlq-Deliveries and Dagi-Dlq-Error, terminated in its own stream, and
 * an ops.alert.warning event is published. */
void dagi_js_fail(struct dagi_js_delivery *d, const char *reason);

/* --- dead letters (for the admin API and `dagi dlq`) --- */

/* Blocking; not on the loop thread. *out is a JSON array text (caller frees)
 * of {seq, subject, original_subject, stream, deliveries, error, time}. */
int dagi_js_dlq_list(struct dagi_js *js, size_t limit, char **out, struct dagi_error *err);
/* One dead letter with headers and base64 data, as JSON text. */
int dagi_js_dlq_show(struct dagi_js *js, uint64_t seq, char **out, struct dagi_error *err);
/* Publishes the dead letter again to its original subject with a new
 * Nats-Msg-Id (so de-duplication cannot swallow it) and the envelope's own
 * id unchanged; returns the new stream sequence. */
int dagi_js_dlq_replay(struct dagi_js *js, uint64_t seq, uint64_t *new_seq,
                       struct dagi_error *err);

/* --- KV buckets (blocking calls: not on the loop thread) --- */

int dagi_kv_open(struct dagi_js *js, const char *bucket, int history, struct dagi_kv **out,
                 struct dagi_error *err);
void dagi_kv_close(struct dagi_kv *kv);
int dagi_kv_put(struct dagi_kv *kv, const char *key, const void *data, size_t len,
                uint64_t *revision_out, struct dagi_error *err);
/* *data_out is malloc'ed (caller frees); DAGI_ENOENT when absent. */
int dagi_kv_get(struct dagi_kv *kv, const char *key, void **data_out, size_t *len_out,
                uint64_t *revision_out, struct dagi_error *err);
int dagi_kv_delete(struct dagi_kv *kv, const char *key, struct dagi_error *err);
/* Watches keys matching `pattern` ("agent.*", ">") from a dedicated thread;
 * on_change runs on the loop for the current values first, then every
 * change (deleted = true for deletes). */
int dagi_kv_watch(struct dagi_kv *kv, const char *pattern,
                  void (*on_change)(void *ud, const char *key, const void *data, size_t len,
                                    uint64_t revision, bool deleted),
                  void *ud, struct dagi_kv_watch **out, struct dagi_error *err);
void dagi_kv_watch_stop(struct dagi_kv_watch *w);

#endif
