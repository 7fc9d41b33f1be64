/* The audit role (audit_role.h): the lifecycle and the consumer of audit.>.
 * Each delivery is decoded on the loop and appended on the worker pool,
 * one at a time in delivery order - the chain keeps the order the stream
 * has, which parallel pool jobs would not - and the delivery is finished
 * when the store answers.  The queue is its own reference-counted object,
 * so a store answer that comes after the role stopped (the pool finishes
 * its jobs at teardown) still acks or fails its delivery and touches
 * nothing of the role. */
#include "audit/audit_role.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit_internal.h"
#include "auditlog/chain.h"
#include "bus/js.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "store/db.h"

struct append_job {
    struct append_job *next;
    struct appender *q;
    struct dagi_js_delivery *d;
    bool duplicate;
    struct dagi_audit_record rec;
};

/* Deliveries waiting for the one append in flight. */
struct appender {
    int refs; /* the role's, and the job in flight's */
    struct dagi_node *node;
    struct dagi_metric *appended;
    struct append_job *head, *tail;
    bool busy, stopped;
};

static void appender_unref(struct appender *q)
{
    if (--q->refs == 0)
        free(q);
}

static void count(struct dagi_metric *m, const char *result)
{
    dagi_metric_inc(m, (const char *[]){result});
}

static int on_append_work(struct dagi_db_conn *conn, void *ud, struct dagi_error *err)
{
    struct append_job *j = ud;
    return dagi_audit_chain_append(conn, &j->rec, &j->duplicate, err);
}

static void start_next(struct appender *q);

static void on_append_done(void *ud, int rc, const struct dagi_error *err)
{
    struct append_job *j = ud;
    struct appender *q = j->q;
    if (rc) {
        const char *why = err && err->message[0] ? err->message : dagi_strerror(rc);
        dagi_log_warn(j->rec.trace_id, "audit: append failed; the event will be redelivered",
                      "event_id", j->rec.event_id, "error", why);
        count(q->appended, "error");
        dagi_js_fail(j->d, rc == DAGI_ECANCELED ? "the node is stopping" : why);
    } else {
        count(q->appended, j->duplicate ? "duplicate" : "appended");
        dagi_js_ack(j->d);
    }
    free(j);
    q->busy = false;
    start_next(q);
    appender_unref(q);
}

static void start_next(struct appender *q)
{
    while (!q->busy && q->head) {
        struct append_job *j = q->head;
        q->head = j->next;
        if (!q->head)
            q->tail = NULL;
        if (q->stopped) {
            dagi_js_fail(j->d, "the node is stopping");
            free(j);
            continue;
        }
        q->busy = true;
        q->refs++;
        if (dagi_db_run(dagi_node_db(q->node), dagi_node_pool(q->node), on_append_work,
                        on_append_done, j)) {
            q->busy = false;
            q->refs--;
            count(q->appended, "error");
            dagi_js_fail(j->d, "the worker pool is full");
            free(j);
        }
    }
}

static void on_delivery(struct dagi_js_delivery *d, const struct dagi_js_msg *msg, void *ud)
{
    /* Draining or not: events that other roles emit while they stop are
     * the last ones worth keeping; the consumer stops in a shutdown hook. */
    struct audit_state *st = ud;
    struct appender *q = st->appender;
    struct append_job *j = dagi_xcalloc(1, sizeof(*j));
    j->d = d;
    j->q = q;
    const char *why = "malformed";
    if (dagi_audit_event_decode(msg->data, msg->len, msg->subject, &j->rec, &why)) {
        /* Failed, not acked: after bus.consumer.max_deliver tries it is in
         * DAGI_DLQ, where `dagi dlq` shows it. */
        char reason[256];
        snprintf(reason, sizeof(reason), "malformed audit event: %s", why);
        dagi_log_error(NULL, "audit: malformed event", "subject", msg->subject, "msg_id",
                       msg->msg_id, "error", why);
        count(st->appended, "malformed");
        dagi_js_fail(d, reason);
        free(j);
        return;
    }
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    start_next(q);
}

static void on_streams_ready(void *ud)
{
    struct audit_state *st = ud;
    const struct dagi_config *c = dagi_node_cfg(st->node);
    struct dagi_js_consumer_opts o = {
        .stream = "DAGI_AUDIT",
        .durable = "audit",
        .filter = "audit.>",
        .max_deliver = (int)c->bus.consumer.max_deliver,
        .backoff_base_ms = c->bus.consumer.backoff_base,
        .backoff_max_ms = c->bus.consumer.backoff_max,
        .ack_wait_ms = c->bus.consumer.ack_wait,
    };
    struct dagi_error err = {0};
    if (dagi_js_consume(dagi_node_js(st->node), &o, on_delivery, st, &st->consumer, &err))
        dagi_log_error(NULL, "audit: cannot consume audit events", "error", err.message);
}

static void on_shutdown(void *ud)
{
    struct audit_state *st = ud;
    if (st->consumer)
        dagi_js_consumer_stop(st->consumer);
    st->consumer = NULL;
}

/* --- lifecycle --- */

static int audit_init(struct dagi_node *node, void **state, struct dagi_error *err)
{
    struct audit_state *st = dagi_xcalloc(1, sizeof(*st));
    st->node = node;
    int rc = dagi_audit_key_load(dagi_node_cfg(node)->node.data_dir, st->key, err);
    if (!rc)
        rc = audit_routes_register(st, err);
    if (rc) {
        sodium_memzero(st->key, sizeof(st->key));
        free(st);
        return rc;
    }
    st->appended = dagi_metrics_counter(
        dagi_node_metrics(node), "audit_records_total",
        "Audit events the audit role consumed, by result (appended, duplicate, malformed, "
        "error).",
        (const char *[]){"result", NULL});
    st->appender = dagi_xcalloc(1, sizeof(*st->appender));
    st->appender->refs = 1;
    st->appender->node = node;
    st->appender->appended = st->appended;
    *state = st;
    return DAGI_OK;
}

static int audit_start(struct dagi_node *node, void *state, struct dagi_error *err)
{
    (void)err;
    struct audit_state *st = state;
    if (!dagi_node_js(node)) {
        dagi_log_info(NULL, "audit: no JetStream (bus.url none); emitters append to the "
                            "node's database directly");
        return DAGI_OK;
    }
    dagi_node_on_shutdown(node, on_shutdown, st);
    dagi_node_on_streams_ready(node, on_streams_ready, st);
    return DAGI_OK;
}

static void audit_stop(struct dagi_node *node, void *state)
{
    (void)node;
    struct audit_state *st = state;
    /* What still waits goes back to the stream for redelivery. */
    st->appender->stopped = true;
    start_next(st->appender);
    appender_unref(st->appender);
    sodium_memzero(st->key, sizeof(st->key));
    free(st);
}

const struct dagi_role dagi_role_audit = {
    .name = "audit",
    .help = "the tamper-evident audit log: consumes audit.>, GET /v1/audit",
    .init = audit_init,
    .start = audit_start,
    .reload = NULL,
    .drain = NULL,
    .stop = audit_stop,
};
