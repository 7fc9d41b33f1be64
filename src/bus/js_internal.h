/* Shared between js.c, js_consumer.c, js_dlq.c and kv.c; not an API. */
#ifndef DAGI_JS_INTERNAL_H
#define DAGI_JS_INTERNAL_H

#include <nats/nats.h>
#include <pthread.h>
#include <stdbool.h>

#include "bus/js.h"
#include "core/pool.h"

/* Stream and subject names (docs/NATS_SUBJECTS.md). */
#define DAGI_JS_EVENTS "DAGI_EVENTS"
#define DAGI_JS_AUDIT "DAGI_AUDIT"
#define DAGI_JS_WORK "DAGI_WORK"
#define DAGI_JS_DLQ "DAGI_DLQ"
#define DAGI_JS_DLQ_PREFIX "dagi.dlq."

/* Headers a dead letter carries besides the original ones. */
#define DAGI_JS_HDR_DLQ_STREAM "Dagi-Dlq-Stream"
#define DAGI_JS_HDR_DLQ_SUBJECT "Dagi-Dlq-Subject"
#define DAGI_JS_HDR_DLQ_SEQ "Dagi-Dlq-Seq"
#define DAGI_JS_HDR_DLQ_DELIVERIES "Dagi-Dlq-Deliveries"
#define DAGI_JS_HDR_DLQ_ERROR "Dagi-Dlq-Error"
#define DAGI_JS_HDR_DLQ_MSG_ID "Dagi-Dlq-Msg-Id"
#define DAGI_JS_HDR_DLQ_CONSUMER "Dagi-Dlq-Consumer"
#define DAGI_JS_HDR_REPLAY_OF "Dagi-Replay-Of"
#define DAGI_JS_HDR_TRACE "Dagi-Trace-Id"

/* Largest message any dagi stream stores (jsStreamConfig.MaxMsgSize). */
#define DAGI_JS_MAX_MSG_SIZE (8 * 1024 * 1024)
/* How long an async publish waits for its ack before DAGI_ETIMEDOUT. */
#define DAGI_JS_ACK_TIMEOUT_MS 10000
/* Async publishes awaiting an ack; one more fails with DAGI_EAGAIN. */
#define DAGI_JS_MAX_INFLIGHT 65536

struct pub_table; /* js.c */

struct dagi_js {
    natsConnection *nc;
    jsCtx *ctx;
    struct dagi_js_opts opts; /* defaults filled in */
    struct dagi_metric *published_total;
    struct dagi_metric *deliveries_total;
    char source[96]; /* envelope source of the events js publishes itself */

    /* async publishing (js.c): the table is guarded by a process-wide lock,
     * see the comment there */
    uintptr_t id;
    struct dagi_js *next_live;
    struct pub_table *pubs;
    pthread_t sweeper;
    pthread_cond_t sweeper_wake;
    bool sweeper_stop;
};

/* A natsStatus as a dagi_err (NATS_TIMEOUT -> DAGI_ETIMEDOUT, ...). */
int dagi_js_err_from_nats(natsStatus s);
/* The stream a subject is stored in ("DAGI_EVENTS"), or "none". */
const char *dagi_js_stream_for_subject(const char *subject);
/* Runs work() off the loop (the pool if there is one, else a short-lived
 * thread) and done() on the loop through the loopq; cancelled as in pool.h. */
int dagi_js_run_off_loop(struct dagi_js *js, dagi_pool_work_fn work, dagi_pool_done_fn done,
                         void *ud);
/* Builds a message with the given headers (copies everything). */
int dagi_js_msg_new(natsMsg **out, const char *subject, const void *data, size_t len,
                    const struct dagi_js_header *headers, size_t header_count);
/* js_dlq.c: the audit event of a dead letter (blocking, off the loop). */
void dagi_js_dlq_audit(struct dagi_js *js, const char *stream, const char *consumer,
                       const char *subject, uint64_t seq, uint64_t deliveries, uint64_t dlq_seq,
                       const char *trace_id);
/* Publishes and waits for the ack; msg_id may be NULL. */
int dagi_js_publish_msg_sync(struct dagi_js *js, natsMsg *msg, const char *msg_id,
                             uint64_t *seq_out, struct dagi_error *err);

#endif
