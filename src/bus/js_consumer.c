/* Durable pull consumers with back-off and dead letters (js.h).
 *
 * Threads.  libnats 3.4 pulls only with a blocking Fetch, so each consumer
 * has one thread looping over fetches (at most 1 s each, so a stop is
 * noticed within a second; see fetch_some).  Every fetched message goes to
 * the loop through the loopq; the handler runs there and finishes it with
 * dagi_js_ack / dagi_js_fail.  Ack, nak and term are plain publishes (no
 * reply awaited), fine on the loop; the dead-letter copy waits for its
 * stream ack, so it runs on the worker pool and the term follows on the loop.
 *
 * Flow control.  A consumer has at most `batch` deliveries between fetch and
 * finish; the thread fetches only the difference.  So a slow handler slows
 * the fetching instead of letting messages pile up in the loopq past their
 * AckWait (which would make the server redeliver them while still queued).
 *
 * Redelivery.  Back-off is ours, not the server's: dagi_js_fail naks with
 * NakWithDelay(base * 2^(deliveries-1), capped), and the delay is in
 * MILLISECONDS there (the consumer's AckWait is nanoseconds).  The server's
 * MaxDeliver is max_deliver + 1: it must never give up on a message before
 * we have copied it to DAGI_DLQ on the max_deliver-th failure.  If that copy
 * fails, the message is nak'ed once more for the spare delivery.
 *
 * Lifetime.  The consumer is reference counted: one reference for its owner
 * (dropped by dagi_js_consumer_stop) and one per delivery not yet finished,
 * because acking a message needs its subscription alive.  The subscription
 * is destroyed with the last reference.  Deliveries queued but not yet given
 * to the handler when stop is called are nak'ed for immediate redelivery
 * (to another instance) instead of being handled.  The js context must
 * outlive its consumers and their deliveries. */
#include "js_internal.h"

#include "bus/event.h"
#include "core/log.h"
#include "core/loopq.h"
#include "core/mem.h"
#include "core/metrics.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MS_TO_NS(ms) ((int64_t)(ms)*1000000LL)
/* Bounds how long dagi_js_consumer_stop() waits for the fetch thread; an
 * idle consumer asks the server twice a second, which costs next to nothing. */
#define FETCH_TIMEOUT_MS 500

struct dagi_js_consumer {
    struct dagi_js *js;
    char *stream, *durable, *filter;
    int max_deliver, batch;
    int64_t backoff_base_ms, backoff_max_ms, ack_wait_ms;
    natsSubscription *sub; /* set by the fetch thread once bound */
    dagi_js_handler_fn handler;
    void *ud;

    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* a delivery finished, or stop */
    bool stopping;       /* the fetch thread must exit */
    int outstanding;     /* deliveries fetched and not finished */
    int refs;
    atomic_bool stopped; /* read on the loop: queued deliveries are not handled */
};

struct dagi_js_delivery {
    struct dagi_js_delivery_msg {
        struct dagi_js_msg pub; /* what the handler sees; first member */
        natsMsg *msg;
    } m;
    struct dagi_js_consumer *c;
    /* dead-letter job */
    char *reason;
    int rc;
    uint64_t dlq_seq;
    struct dagi_error err;
};

static void consumer_release(struct dagi_js_consumer *c)
{
    pthread_mutex_lock(&c->lock);
    bool last = --c->refs == 0;
    pthread_mutex_unlock(&c->lock);
    if (!last)
        return;
    natsSubscription_Destroy(c->sub); /* keeps the durable consumer on the server */
    pthread_cond_destroy(&c->wake);
    pthread_mutex_destroy(&c->lock);
    free(c->stream);
    free(c->durable);
    free(c->filter);
    free(c);
}

static void delivery_finish(struct dagi_js_delivery *d, const char *result)
{
    struct dagi_js_consumer *c = d->c;
    if (result) {
        const char *labels[] = {c->durable, result};
        dagi_metric_inc(c->js->deliveries_total, labels);
    }
    natsMsg_Destroy(d->m.msg);
    free(d->reason);
    free(d);
    pthread_mutex_lock(&c->lock);
    c->outstanding--;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
    consumer_release(c);
}

static const char *msg_header(const struct dagi_js_msg *pub, const char *name)
{
    const struct dagi_js_delivery_msg *m = (const struct dagi_js_delivery_msg *)pub;
    const char *value = NULL;
    if (natsMsgHeader_Get(m->msg, name, &value) != NATS_OK)
        return NULL;
    return value;
}

/* --- the loop side --- */

static void on_delivery(void *arg, bool cancelled)
{
    struct dagi_js_delivery *d = arg;
    struct dagi_js_consumer *c = d->c;
    if (cancelled) { /* the loop is going away: AckWait redelivers it */
        delivery_finish(d, NULL);
        return;
    }
    if (atomic_load(&c->stopped)) {
        natsMsg_Nak(d->m.msg, NULL);
        delivery_finish(d, NULL);
        return;
    }
    c->handler(d, &d->m.pub, c->ud);
}

void dagi_js_ack(struct dagi_js_delivery *d)
{
    natsMsg_Ack(d->m.msg, NULL);
    delivery_finish(d, "ack");
}

static int64_t backoff_ms(const struct dagi_js_consumer *c, uint64_t deliveries)
{
    int64_t delay = c->backoff_base_ms;
    for (uint64_t i = 1; i < deliveries && delay < c->backoff_max_ms; i++)
        delay *= 2;
    return delay < c->backoff_max_ms ? delay : c->backoff_max_ms;
}

static void add_header(natsMsg *msg, const char *name, const char *value)
{
    natsMsgHeader_Set(msg, name, value);
}

/* Worker thread: the dead-letter copy and the alert, both waiting for
 * their stream acks.  Nats-Msg-Ids derived from the original stream and
 * sequence make both idempotent if we crash before the term. */
static void on_dead_letter_work(void *arg)
{
    struct dagi_js_delivery *d = arg;
    struct dagi_js_consumer *c = d->c;
    struct dagi_js *js = c->js;
    natsMsg *src = d->m.msg, *dlq = NULL;
    const char **keys = NULL;
    int nkeys = 0;
    char *subject = dagi_xasprintf(DAGI_JS_DLQ_PREFIX "%s.%s", c->stream, d->m.pub.subject);
    char seq[24], deliveries[24], msg_id[160], alert_id[170];
    snprintf(seq, sizeof(seq), "%" PRIu64, d->m.pub.stream_seq);
    snprintf(deliveries, sizeof(deliveries), "%" PRIu64, d->m.pub.deliveries);
    snprintf(msg_id, sizeof(msg_id), "dlq-%s-%s", c->stream, seq);
    snprintf(alert_id, sizeof(alert_id), "alert-%s", msg_id);

    d->rc = dagi_js_msg_new(&dlq, subject, d->m.pub.data, d->m.pub.len, NULL, 0);
    if (d->rc) {
        dagi_error_set(&d->err, d->rc, "dead letter %s: %s", subject, dagi_strerror(d->rc));
        goto out;
    }
    /* original headers, except the server's own (Nats-Msg-Id, Nats-Expected-*) */
    if (natsMsgHeader_Keys(src, &keys, &nkeys) == NATS_OK) {
        for (int i = 0; i < nkeys; i++) {
            const char **values = NULL;
            int nvalues = 0;
            if (strncasecmp(keys[i], "Nats-", 5) == 0)
                continue;
            if (natsMsgHeader_Values(src, keys[i], &values, &nvalues) != NATS_OK)
                continue;
            for (int j = 0; j < nvalues; j++)
                natsMsgHeader_Add(dlq, keys[i], values[j]);
            free((void *)values);
        }
        free((void *)keys);
    }
    add_header(dlq, DAGI_JS_HDR_DLQ_STREAM, c->stream);
    add_header(dlq, DAGI_JS_HDR_DLQ_SUBJECT, d->m.pub.subject);
    add_header(dlq, DAGI_JS_HDR_DLQ_SEQ, seq);
    add_header(dlq, DAGI_JS_HDR_DLQ_DELIVERIES, deliveries);
    add_header(dlq, DAGI_JS_HDR_DLQ_ERROR, d->reason);
    add_header(dlq, DAGI_JS_HDR_DLQ_CONSUMER, c->durable);
    if (*d->m.pub.msg_id)
        add_header(dlq, DAGI_JS_HDR_DLQ_MSG_ID, d->m.pub.msg_id);
    d->rc = dagi_js_publish_msg_sync(js, dlq, msg_id, &d->dlq_seq, &d->err);
    if (d->rc)
        goto out;

    json_t *data = json_object();
    json_object_set_new(data, "alert", json_string("dead_letter"));
    json_object_set_new(data, "stream", json_string(c->stream));
    json_object_set_new(data, "consumer", json_string(c->durable));
    json_object_set_new(data, "subject", json_string(d->m.pub.subject));
    json_object_set_new(data, "seq", json_integer((json_int_t)d->m.pub.stream_seq));
    json_object_set_new(data, "deliveries", json_integer((json_int_t)d->m.pub.deliveries));
    json_object_set_new(data, "error", json_string(d->reason));
    json_object_set_new(data, "dlq_seq", json_integer((json_int_t)d->dlq_seq));
    const char *trace = NULL;
    natsMsgHeader_Get(src, DAGI_JS_HDR_TRACE, &trace);
    char *event = dagi_event_build("ops.alert", js->source, trace, data, NULL);
    struct dagi_error aerr;
    if (!event || dagi_js_publish_sync(js, "ops.alert.warning", event, strlen(event), alert_id,
                                       NULL, 0, NULL, &aerr) != DAGI_OK)
        dagi_log_warn(trace, "dead-letter alert not published", "stream", c->stream, "seq", seq,
                      "error", event ? aerr.message : "envelope");
    free(event);
    dagi_js_dlq_audit(js, c->stream, c->durable, d->m.pub.subject, d->m.pub.stream_seq,
                      d->m.pub.deliveries, d->dlq_seq, trace);
out:
    natsMsg_Destroy(dlq);
    free(subject);
}

static void on_dead_letter_done(void *arg, bool cancelled)
{
    struct dagi_js_delivery *d = arg;
    struct dagi_js_consumer *c = d->c;
    char seq[24];
    snprintf(seq, sizeof(seq), "%" PRIu64, d->m.pub.stream_seq);
    if (cancelled || d->rc) {
        /* not copied: keep it in its stream for the spare delivery */
        dagi_log_error(NULL, "dead letter not stored; will retry once", "stream", c->stream, "seq",
                       seq, "error", cancelled ? "cancelled" : d->err.message);
        if (!cancelled)
            natsMsg_NakWithDelay(d->m.msg, c->backoff_max_ms, NULL); /* ms */
        delivery_finish(d, "retry");
        return;
    }
    dagi_log_warn(NULL, "message dead-lettered", "stream", c->stream, "seq", seq, "consumer",
                  c->durable, "error", d->reason);
    natsMsg_Term(d->m.msg, NULL);
    delivery_finish(d, "dead_letter");
}

void dagi_js_fail(struct dagi_js_delivery *d, const char *reason)
{
    struct dagi_js_consumer *c = d->c;
    uint64_t n = d->m.pub.deliveries;
    if (n < (uint64_t)c->max_deliver) {
        natsMsg_NakWithDelay(d->m.msg, backoff_ms(c, n), NULL); /* MILLISECONDS */
        delivery_finish(d, "retry");
        return;
    }
    d->reason = dagi_xstrdup(reason && *reason ? reason : "failed");
    if (dagi_js_run_off_loop(c->js, on_dead_letter_work, on_dead_letter_done, d) != DAGI_OK) {
        d->rc = DAGI_EAGAIN;
        dagi_error_set(&d->err, DAGI_EAGAIN, "no thread for the dead-letter copy");
        on_dead_letter_done(d, false);
    }
}

/* --- the fetch thread --- */

static struct dagi_js_delivery *delivery_new(struct dagi_js_consumer *c, natsMsg *msg)
{
    struct dagi_js_delivery *d = dagi_xcalloc(1, sizeof(*d));
    jsMsgMetaData *meta = NULL;
    d->c = c;
    d->m.msg = msg;
    d->m.pub.subject = natsMsg_GetSubject(msg);
    d->m.pub.data = natsMsg_GetData(msg);
    d->m.pub.len = (size_t)natsMsg_GetDataLength(msg);
    d->m.pub.header = msg_header;
    if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
        d->m.pub.stream_seq = meta->Sequence.Stream;
        d->m.pub.deliveries = meta->NumDelivered;
        jsMsgMetaData_Destroy(meta);
    }
    if (d->m.pub.deliveries == 0)
        d->m.pub.deliveries = 1;
    const char *id = NULL;
    d->m.pub.msg_id = natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) == NATS_OK && id ? id : "";
    return d;
}

static int ensure_consumer(struct dagi_js_consumer *c, struct dagi_error *err)
{
    jsConsumerConfig cc;
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    jsConsumerConfig_Init(&cc);
    cc.Durable = c->durable;
    cc.AckPolicy = js_AckExplicit;
    cc.DeliverPolicy = js_DeliverAll;
    cc.AckWait = MS_TO_NS(c->ack_wait_ms); /* NANOSECONDS */
    cc.MaxDeliver = c->max_deliver + 1;    /* see the top of this file */
    cc.FilterSubject = c->filter;
    const char *what = "create";
    natsStatus s = js_GetConsumerInfo(&ci, c->js->ctx, c->stream, c->durable, NULL, &jerr);
    if (s == NATS_NOT_FOUND) {
        s = js_AddConsumer(NULL, c->js->ctx, c->stream, &cc, NULL, &jerr);
    } else if (s == NATS_OK) {
        const jsConsumerConfig *have = ci->Config;
        bool same = have->AckWait == cc.AckWait && have->MaxDeliver == cc.MaxDeliver &&
                    have->AckPolicy == cc.AckPolicy &&
                    strcmp(have->FilterSubject ? have->FilterSubject : "",
                           cc.FilterSubject ? cc.FilterSubject : "") == 0;
        if (!same) {
            what = "update";
            s = js_UpdateConsumer(NULL, c->js->ctx, c->stream, &cc, NULL, &jerr);
        }
    } else {
        what = "look up";
    }
    jsConsumerInfo_Destroy(ci);
    if (s != NATS_OK)
        return dagi_error_set(err, dagi_js_err_from_nats(s), "%s consumer %s on %s: %s (%s)", what,
                              c->durable, c->stream, natsStatus_GetText(s),
                              nats_GetLastError(NULL));
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = c->stream;
    so.Consumer = c->durable;
    s = js_PullSubscribe(&c->sub, c->js->ctx, c->filter ? c->filter : ">", c->durable, NULL, &so,
                         &jerr);
    if (s != NATS_OK)
        return dagi_error_set(err, dagi_js_err_from_nats(s), "bind to consumer %s: %s (%s)",
                              c->durable, natsStatus_GetText(s), nats_GetLastError(NULL));
    return DAGI_OK;
}

/* natsSubscription_Fetch(batch > 1) keeps its long poll open until the batch
 * is full or the timeout passes, so one message arriving on an idle consumer
 * would wait up to FETCH_TIMEOUT_MS.  Instead: take what is there without
 * waiting (no_wait: the server answers at once, 404 when empty), and only
 * when nothing is there, long-poll for a single message, which returns as
 * soon as it arrives. */
static natsStatus fetch_some(struct dagi_js_consumer *c, natsMsgList *list, int want)
{
    jsFetchRequest req;
    jsFetchRequest_Init(&req);
    req.Batch = want;
    req.NoWait = true;
    req.Expires = MS_TO_NS(FETCH_TIMEOUT_MS); /* NANOSECONDS here, ms in Fetch */
    natsStatus s = natsSubscription_FetchRequest(list, c->sub, &req);
    if (s != NATS_NOT_FOUND && s != NATS_TIMEOUT)
        return s;
    return natsSubscription_Fetch(list, c->sub, 1, FETCH_TIMEOUT_MS, NULL);
}

/* Waits ms or until stop; true when stopping. */
static bool pause_unless_stopped(struct dagi_js_consumer *c, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->lock);
    if (!c->stopping)
        pthread_cond_timedwait(&c->wake, &c->lock, &until);
    bool stop = c->stopping;
    pthread_mutex_unlock(&c->lock);
    return stop;
}

static void *fetch_main(void *arg)
{
    struct dagi_js_consumer *c = arg;
    natsStatus last_logged = NATS_OK;
    /* Set up here, not in dagi_js_consume: these are JetStream API requests,
     * and on the loop thread (whose loop reads the replies when the bus uses
     * the libevent adapter) they could only time out.  Retried until they
     * work, so a consumer also survives starting before its stream exists or
     * while NATS is down. */
    char last_error[sizeof(((struct dagi_error *)0)->message)] = "";
    while (!c->sub) {
        struct dagi_error err = {0};
        if (ensure_consumer(c, &err) == DAGI_OK)
            break;
        if (strcmp(err.message, last_error) != 0)
            dagi_log_warn(NULL, "JetStream consumer not ready; retrying", "consumer", c->durable,
                          "error", err.message);
        snprintf(last_error, sizeof(last_error), "%s", err.message);
        if (pause_unless_stopped(c, 1000))
            return NULL;
    }
    for (;;) {
        pthread_mutex_lock(&c->lock);
        while (!c->stopping && c->outstanding >= c->batch)
            pthread_cond_wait(&c->wake, &c->lock);
        bool stop = c->stopping;
        int want = c->batch - c->outstanding;
        pthread_mutex_unlock(&c->lock);
        if (stop)
            break;

        natsMsgList list = {0};
        natsStatus s = fetch_some(c, &list, want);
        if (s != NATS_OK && s != NATS_TIMEOUT) {
            if (s != last_logged)
                dagi_log_warn(NULL, "JetStream fetch failed; retrying", "consumer", c->durable,
                              "error", natsStatus_GetText(s));
            last_logged = s;
            /* e.g. disconnected: Fetch fails at once, so wait a bit */
            pause_unless_stopped(c, 1000);
            continue;
        }
        if (s == NATS_OK)
            last_logged = NATS_OK;
        for (int i = 0; i < list.Count; i++) {
            struct dagi_js_delivery *d = delivery_new(c, list.Msgs[i]);
            list.Msgs[i] = NULL; /* the delivery's now */
            pthread_mutex_lock(&c->lock);
            c->outstanding++;
            c->refs++;
            pthread_mutex_unlock(&c->lock);
            dagi_loopq_push(c->js->opts.loopq, on_delivery, d);
        }
        natsMsgList_Destroy(&list);
    }
    return NULL;
}

int dagi_js_consume(struct dagi_js *js, const struct dagi_js_consumer_opts *opts,
                    dagi_js_handler_fn handler, void *ud, struct dagi_js_consumer **out,
                    struct dagi_error *err)
{
    if (!js || !opts || !opts->stream || !opts->durable || !handler || !js->opts.loopq)
        return dagi_error_set(err, DAGI_EINVAL,
                              "a consumer needs a stream, a durable name, a handler and a loopq");
    if (!*opts->durable || strpbrk(opts->durable, ". *>"))
        return dagi_error_set(err, DAGI_EINVAL, "durable name '%s' is empty or has . * > or space",
                              opts->durable);
    struct dagi_js_consumer *c = dagi_xcalloc(1, sizeof(*c));
    c->js = js;
    c->stream = dagi_xstrdup(opts->stream);
    c->durable = dagi_xstrdup(opts->durable);
    c->filter = opts->filter ? dagi_xstrdup(opts->filter) : NULL;
    c->max_deliver = opts->max_deliver > 0 ? opts->max_deliver : 5;
    c->backoff_base_ms = opts->backoff_base_ms > 0 ? opts->backoff_base_ms : 1000;
    c->backoff_max_ms = opts->backoff_max_ms > 0 ? opts->backoff_max_ms : 5 * 60 * 1000;
    c->batch = opts->batch > 0 ? opts->batch : 16;
    c->ack_wait_ms = opts->ack_wait_ms > 0 ? opts->ack_wait_ms : 30000;
    c->handler = handler;
    c->ud = ud;
    c->refs = 1;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->wake, NULL);
    if (pthread_create(&c->thread, NULL, fetch_main, c) != 0)
        abort(); /* like an allocation failure (err.h) */
    *out = c;
    return DAGI_OK;
}

void dagi_js_consumer_stop(struct dagi_js_consumer *c)
{
    if (!c)
        return;
    atomic_store(&c->stopped, true);
    pthread_mutex_lock(&c->lock);
    c->stopping = true;
    pthread_cond_broadcast(&c->wake);
    pthread_mutex_unlock(&c->lock);
    /* Fetch returns within FETCH_TIMEOUT_MS (a setup request within 5 s) */
    pthread_join(c->thread, NULL);
    consumer_release(c);
}
