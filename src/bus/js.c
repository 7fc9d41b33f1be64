/* JetStream context, stream provisioning and publishing (js.h).
 *
 * Units: jsStreamConfig/jsConsumerConfig durations are NANOSECONDS, while
 * jsOptions.Wait, jsPubOptions.MaxWait, Fetch timeouts and NakWithDelay take
 * MILLISECONDS.  Every conversion is spelled out with MS_TO_NS.
 *
 * Async publishing.  libnats reports each async publish on its own thread
 * through jsOptions.PublishAsync.AckHandler, passing back the natsMsg we
 * handed it (the same pointer, headers and all, also for its MaxWait
 * timeouts).  So the pointer is the correlation key: before publishing, a
 * `struct pub` keyed by the message is put in the table; the handler takes it
 * out and hands the result to the loop through the loopq.  The message stays
 * alive (owned by libnats, then by the handler, which destroys it) until the
 * entry has left the table, so a key is never reused while it is in there.
 *
 * Lifetime.  libnats may still be inside the handler when dagi_js_free runs
 * (it drops its own lock before calling us), and offers no way to wait for
 * that.  So the handler's closure is a number, not a pointer: it looks the
 * context up in a process-wide list under one lock, and a context that was
 * freed is simply not found.  The same lock guards every pub table; there is
 * normally one context per process, so it is never contended by more than
 * the loop and the ack thread.
 *
 * Never silent.  Each accepted publish gets exactly one callback: the ack,
 * the server's refusal, libnats' MaxWait timeout, or - should libnats lose
 * track of it (a connection closed for good drops the timeout it would have
 * delivered) - the sweeper thread's timeout a few seconds later.  A publish
 * that cannot even be queued fails at once and gets no callback. */
#include "js_internal.h"

#include "bus/bus.h"
#include "core/clock.h"
#include "core/loopq.h"
#include "core/mem.h"
#include "core/metrics.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MS_TO_NS(ms) ((int64_t)(ms)*1000000LL)
#define DAY_MS (24LL * 3600 * 1000)
/* the sweeper gives libnats' own MaxWait timeout this much head start */
#define SWEEP_GRACE_MS 5000

struct pub {
    struct pub *hnext;       /* hash chain */
    struct pub *prev, *next; /* publish order, oldest first (the sweeper's list) */
    const void *key;         /* the natsMsg: identity only, never dereferenced */
    int64_t deadline_ns;     /* monotonic; the sweeper's */
    const char *stream;      /* static metrics label */
    void (*acked)(void *ud, int err, uint64_t seq, bool duplicate);
    void *ud;
    int err;
    uint64_t seq;
    bool duplicate;
};

struct pub_table {
    struct pub **buckets;
    size_t mask; /* buckets - 1, a power of two minus one */
    size_t count;
    struct pub *oldest, *newest;
};

static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dagi_js *live_head;
static uintptr_t live_next_id = 1;

/* --- the pub table (caller holds live_lock) --- */

static size_t key_hash(const void *key, size_t mask)
{
    uint64_t v = (uint64_t)(uintptr_t)key;
    v ^= v >> 33;
    v *= 0xff51afd7ed558ccdULL;
    v ^= v >> 33;
    return (size_t)v & mask;
}

static void table_grow(struct pub_table *t)
{
    size_t n = (t->mask + 1) * 2;
    struct pub **b = dagi_xcalloc(n, sizeof(*b));
    for (size_t i = 0; i <= t->mask; i++) {
        struct pub *p = t->buckets[i];
        while (p) {
            struct pub *next = p->hnext;
            size_t h = key_hash(p->key, n - 1);
            p->hnext = b[h];
            b[h] = p;
            p = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->mask = n - 1;
}

static void table_insert(struct pub_table *t, struct pub *p)
{
    if (t->count >= t->mask + 1)
        table_grow(t);
    size_t h = key_hash(p->key, t->mask);
    p->hnext = t->buckets[h];
    t->buckets[h] = p;
    p->prev = t->newest;
    p->next = NULL;
    if (t->newest)
        t->newest->next = p;
    else
        t->oldest = p;
    t->newest = p;
    t->count++;
}

static struct pub *table_remove(struct pub_table *t, const void *key)
{
    struct pub **pp = &t->buckets[key_hash(key, t->mask)];
    while (*pp && (*pp)->key != key)
        pp = &(*pp)->hnext;
    struct pub *p = *pp;
    if (!p)
        return NULL;
    *pp = p->hnext;
    if (p->prev)
        p->prev->next = p->next;
    else
        t->oldest = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        t->newest = p->prev;
    t->count--;
    return p;
}

static struct dagi_js *live_find(uintptr_t id)
{
    for (struct dagi_js *js = live_head; js; js = js->next_live)
        if (js->id == id)
            return js;
    return NULL;
}

/* --- shared helpers (js_internal.h) --- */

int dagi_js_err_from_nats(natsStatus s)
{
    switch (s) {
    case NATS_OK:
        return DAGI_OK;
    case NATS_TIMEOUT:
        return DAGI_ETIMEDOUT;
    case NATS_NOT_FOUND:
        return DAGI_ENOENT;
    case NATS_NO_RESPONDERS:
        return DAGI_EUNAVAIL; /* JetStream off, or no stream */
    case NATS_INSUFFICIENT_BUFFER:
        return DAGI_EAGAIN; /* reconnect buffer full */
    case NATS_MAX_PAYLOAD:
        return DAGI_ETOOBIG;
    case NATS_CONNECTION_CLOSED:
        return DAGI_ECLOSED;
    case NATS_INVALID_ARG:
    case NATS_INVALID_SUBJECT:
        return DAGI_EINVAL;
    case NATS_NOT_PERMITTED:
        return DAGI_EPERM;
    case NATS_NO_MEMORY:
        return DAGI_ENOMEM;
    default:
        return DAGI_EIO;
    }
}

const char *dagi_js_stream_for_subject(const char *subject)
{
    static const struct {
        const char *prefix, *stream;
    } map[] = {
        {"message.", DAGI_JS_EVENTS}, {"attachment.", DAGI_JS_EVENTS}, {"agent.", DAGI_JS_EVENTS},
        {"quota.", DAGI_JS_EVENTS},   {"ops.", DAGI_JS_EVENTS},        {"content.", DAGI_JS_EVENTS},
        {"audit.", DAGI_JS_AUDIT},    {"dagi.work.", DAGI_JS_WORK},    {"dagi.dlq.", DAGI_JS_DLQ},
    };
    for (size_t i = 0; subject && i < DAGI_ARRAY_LEN(map); i++)
        if (strncmp(subject, map[i].prefix, strlen(map[i].prefix)) == 0)
            return map[i].stream;
    return "none";
}

struct off_loop {
    dagi_pool_work_fn work;
    dagi_pool_done_fn done;
    void *ud;
    struct dagi_loopq *loopq;
};

/* The work did run, so done() gets cancelled = false even when the loopq is
 * being freed (as pool.c does). */
static void on_off_loop_done(void *arg, bool cancelled)
{
    (void)cancelled;
    struct off_loop *o = arg;
    if (o->done)
        o->done(o->ud, false);
    free(o);
}

static void *off_loop_main(void *arg)
{
    struct off_loop *o = arg;
    o->work(o->ud);
    dagi_loopq_push(o->loopq, on_off_loop_done, o);
    return NULL;
}

int dagi_js_run_off_loop(struct dagi_js *js, dagi_pool_work_fn work, dagi_pool_done_fn done,
                         void *ud)
{
    if (!js->opts.loopq)
        return DAGI_EINVAL;
    if (js->opts.pool) {
        int rc = dagi_pool_submit(js->opts.pool, work, done, ud);
        if (rc != DAGI_EAGAIN)
            return rc;
        /* a full pool must not lose a dead letter: fall through to a thread */
    }
    struct off_loop *o = dagi_xmalloc(sizeof(*o));
    *o = (struct off_loop){work, done, ud, js->opts.loopq};
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int ok = pthread_create(&t, &attr, off_loop_main, o);
    pthread_attr_destroy(&attr);
    if (ok != 0) {
        free(o);
        return DAGI_EAGAIN;
    }
    return DAGI_OK;
}

int dagi_js_msg_new(natsMsg **out, const char *subject, const void *data, size_t len,
                    const struct dagi_js_header *headers, size_t header_count)
{
    natsMsg *msg = NULL;
    if (!subject || !*subject || (!data && len))
        return DAGI_EINVAL;
    if (len > DAGI_JS_MAX_MSG_SIZE)
        return DAGI_ETOOBIG;
    natsStatus s = natsMsg_Create(&msg, subject, NULL, data, (int)len);
    for (size_t i = 0; s == NATS_OK && i < header_count; i++)
        s = natsMsgHeader_Add(msg, headers[i].name, headers[i].value);
    if (s != NATS_OK) {
        natsMsg_Destroy(msg);
        return dagi_js_err_from_nats(s);
    }
    *out = msg;
    return DAGI_OK;
}

static void count_published(struct dagi_js *js, const char *stream, const char *result)
{
    const char *labels[] = {stream, result};
    dagi_metric_inc(js->published_total, labels);
}

/* --- async publishing --- */

static void on_pub_done(void *arg, bool cancelled)
{
    (void)cancelled; /* the publish happened: report what we know */
    struct pub *p = arg;
    p->acked(p->ud, p->err, p->seq, p->duplicate);
    free(p);
}

/* libnats' thread.  Owns msg (see jsPubAckHandler). */
static void on_pub_ack(jsCtx *ctx, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)ctx;
    pthread_mutex_lock(&live_lock);
    struct dagi_js *js = live_find((uintptr_t)closure);
    struct pub *p = js ? table_remove(js->pubs, msg) : NULL;
    if (p) {
        const char *result = "ok";
        if (pa) {
            p->seq = pa->Sequence;
            p->duplicate = pa->Duplicate;
            if (pa->Duplicate)
                result = "duplicate";
        } else {
            natsStatus s = pae ? pae->Err : NATS_ERR;
            if (s == NATS_ERR && pae && pae->ErrCode == JSStreamMessageExceedsMaximumErr)
                p->err = DAGI_ETOOBIG;
            else
                p->err = s == NATS_OK ? DAGI_EIO : dagi_js_err_from_nats(s);
            result = p->err == DAGI_ETIMEDOUT ? "timeout" : "error";
        }
        count_published(js, p->stream, result);
        dagi_loopq_push(js->opts.loopq, on_pub_done, p);
    }
    pthread_mutex_unlock(&live_lock);
    natsMsg_Destroy(msg);
}

static void *sweeper_main(void *arg)
{
    struct dagi_js *js = arg;
    pthread_mutex_lock(&live_lock);
    while (!js->sweeper_stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&js->sweeper_wake, &live_lock, &until);
        int64_t now = dagi_clock_mono_ns();
        struct pub *p;
        while ((p = js->pubs->oldest) && p->deadline_ns <= now) {
            table_remove(js->pubs, p->key);
            p->err = DAGI_ETIMEDOUT;
            count_published(js, p->stream, "timeout");
            dagi_loopq_push(js->opts.loopq, on_pub_done, p);
        }
    }
    pthread_mutex_unlock(&live_lock);
    return NULL;
}

int dagi_js_publish(struct dagi_js *js, const char *subject, const void *data, size_t len,
                    const char *msg_id, const struct dagi_js_header *headers, size_t header_count,
                    void (*acked)(void *ud, int err, uint64_t seq, bool duplicate), void *ud)
{
    natsMsg *msg = NULL;
    struct pub *p = NULL;
    if (!js || !acked || !js->opts.loopq)
        return DAGI_EINVAL;
    const char *stream = dagi_js_stream_for_subject(subject);
    int rc = dagi_js_msg_new(&msg, subject, data, len, headers, header_count);
    if (rc)
        goto out;

    p = dagi_xcalloc(1, sizeof(*p));
    p->key = msg;
    p->stream = stream;
    p->acked = acked;
    p->ud = ud;
    p->deadline_ns = dagi_clock_mono_ns() + MS_TO_NS(DAGI_JS_ACK_TIMEOUT_MS + SWEEP_GRACE_MS);
    pthread_mutex_lock(&live_lock);
    if (js->pubs->count >= DAGI_JS_MAX_INFLIGHT) {
        pthread_mutex_unlock(&live_lock);
        rc = DAGI_EAGAIN;
        goto out;
    }
    /* in the table before libnats sees it: the ack may beat our return */
    table_insert(js->pubs, p);
    pthread_mutex_unlock(&live_lock);

    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = msg_id;
    po.MaxWait = DAGI_JS_ACK_TIMEOUT_MS; /* ms */
    natsStatus s = js_PublishMsgAsync(js->ctx, &msg, &po);
    if (s == NATS_OK) {
        p = NULL; /* the table's now */
        goto out;
    }
    pthread_mutex_lock(&live_lock);
    struct pub *mine = table_remove(js->pubs, p->key);
    pthread_mutex_unlock(&live_lock);
    if (!mine) { /* already reported (cannot really happen): the callback will come */
        p = NULL;
        goto out;
    }
    rc = dagi_js_err_from_nats(s);
    if (rc == DAGI_ETIMEDOUT) /* stalled on libnats' own pending limit */
        rc = DAGI_EAGAIN;
out:
    if (rc)
        count_published(js, stream, "error");
    free(p);
    natsMsg_Destroy(msg); /* NULL once libnats owns it */
    return rc;
}

/* --- sync publishing --- */

int dagi_js_publish_msg_sync(struct dagi_js *js, natsMsg *msg, const char *msg_id,
                             uint64_t *seq_out, struct dagi_error *err)
{
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = msg_id;
    const char *subject = natsMsg_GetSubject(msg);
    const char *stream = dagi_js_stream_for_subject(subject);
    natsStatus s = js_PublishMsg(&pa, js->ctx, msg, &po, &jerr);
    if (s != NATS_OK) {
        int rc = jerr == JSStreamMessageExceedsMaximumErr ? DAGI_ETOOBIG : dagi_js_err_from_nats(s);
        count_published(js, stream, rc == DAGI_ETIMEDOUT ? "timeout" : "error");
        return dagi_error_set(err, rc, "publish to %s: %s (%s)", subject, natsStatus_GetText(s),
                              nats_GetLastError(NULL));
    }
    count_published(js, stream, pa->Duplicate ? "duplicate" : "ok");
    if (seq_out)
        *seq_out = pa->Sequence;
    jsPubAck_Destroy(pa);
    return DAGI_OK;
}

int dagi_js_publish_sync(struct dagi_js *js, const char *subject, const void *data, size_t len,
                         const char *msg_id, const struct dagi_js_header *headers,
                         size_t header_count, uint64_t *seq_out, struct dagi_error *err)
{
    natsMsg *msg = NULL;
    if (!js)
        return dagi_error_set(err, DAGI_EINVAL, "no JetStream context");
    int rc = dagi_js_msg_new(&msg, subject, data, len, headers, header_count);
    if (rc)
        return dagi_error_set(err, rc, "publish to %s: %s", subject ? subject : "(null)",
                              dagi_strerror(rc));
    rc = dagi_js_publish_msg_sync(js, msg, msg_id, seq_out, err);
    natsMsg_Destroy(msg);
    return rc;
}

/* --- context --- */

int dagi_js_new(struct dagi_bus *bus, const struct dagi_js_opts *opts, struct dagi_js **out,
                struct dagi_error *err)
{
    natsConnection *nc = bus ? dagi_bus_nats(bus) : NULL;
    if (!nc)
        return dagi_error_set(err, DAGI_EUNAVAIL, "JetStream needs NATS (bus.url is not set)");
    return dagi_js_new_conn(nc, opts, out, err);
}

int dagi_js_new_conn(natsConnection *nc, const struct dagi_js_opts *opts, struct dagi_js **out,
                     struct dagi_error *err)
{
    if (!nc || !opts)
        return dagi_error_set(err, DAGI_EINVAL, "JetStream needs a connection and options");
    struct dagi_js *js = dagi_xcalloc(1, sizeof(*js));
    js->nc = nc;
    js->opts = *opts;
    if (!js->opts.dedup_window_ms)
        js->opts.dedup_window_ms = 2 * 60 * 1000;
    if (!js->opts.event_max_age_ms)
        js->opts.event_max_age_ms = 7 * DAY_MS;
    if (!js->opts.work_max_age_ms)
        js->opts.work_max_age_ms = DAY_MS;
    if (!js->opts.dlq_max_age_ms)
        js->opts.dlq_max_age_ms = 30 * DAY_MS;
    if (js->opts.replicas <= 0)
        js->opts.replicas = 1;
    if (!js->opts.metrics)
        js->opts.metrics = dagi_metrics_default();
    static const char *const pub_labels[] = {"stream", "result", NULL};
    static const char *const del_labels[] = {"consumer", "result", NULL};
    js->published_total = dagi_metrics_counter(
        js->opts.metrics, "dagi_js_published_total",
        "JetStream publishes by stream and result (ok|duplicate|timeout|error)", pub_labels);
    js->deliveries_total = dagi_metrics_counter(
        js->opts.metrics, "dagi_js_deliveries_total",
        "JetStream deliveries handled by consumer and result (ack|retry|dead_letter)", del_labels);
    char host[64] = "localhost";
    gethostname(host, sizeof(host) - 1);
    snprintf(js->source, sizeof(js->source), "bus@%s", host);

    pthread_mutex_lock(&live_lock);
    js->id = live_next_id++;
    pthread_mutex_unlock(&live_lock);

    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 5000; /* ms, for admin requests and sync publishes */
    jo.PublishAsync.AckHandler = on_pub_ack;
    jo.PublishAsync.AckHandlerClosure = (void *)js->id;
    /* No libnats MaxPending: over it, PublishAsync would block the caller
     * (the loop) in a condition wait.  DAGI_JS_MAX_INFLIGHT is ours instead. */
    jo.PublishAsync.MaxPending = 0;
    natsStatus s = natsConnection_JetStream(&js->ctx, nc, &jo);
    if (s != NATS_OK) {
        free(js);
        return dagi_error_set(err, dagi_js_err_from_nats(s), "JetStream context: %s",
                              natsStatus_GetText(s));
    }
    js->pubs = dagi_xcalloc(1, sizeof(*js->pubs));
    js->pubs->mask = 1023;
    js->pubs->buckets = dagi_xcalloc(js->pubs->mask + 1, sizeof(*js->pubs->buckets));
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&js->sweeper_wake, &ca);
    pthread_condattr_destroy(&ca);
    if (js->opts.loopq && pthread_create(&js->sweeper, NULL, sweeper_main, js) != 0)
        abort(); /* like an allocation failure (err.h) */

    pthread_mutex_lock(&live_lock);
    js->next_live = live_head;
    live_head = js;
    pthread_mutex_unlock(&live_lock);
    *out = js;
    return DAGI_OK;
}

void dagi_js_free(struct dagi_js *js)
{
    if (!js)
        return;
    pthread_mutex_lock(&live_lock);
    js->sweeper_stop = true;
    pthread_cond_signal(&js->sweeper_wake);
    pthread_mutex_unlock(&live_lock);
    if (js->opts.loopq)
        pthread_join(js->sweeper, NULL);

    /* once unlisted, a late ack handler finds nothing and just frees its msg */
    pthread_mutex_lock(&live_lock);
    for (struct dagi_js **pp = &live_head; *pp; pp = &(*pp)->next_live) {
        if (*pp == js) {
            *pp = js->next_live;
            break;
        }
    }
    struct pub *pending = js->pubs->oldest;
    pthread_mutex_unlock(&live_lock);

    while (pending) {
        struct pub *next = pending->next;
        pending->acked(pending->ud, DAGI_ECANCELED, 0, false);
        free(pending);
        pending = next;
    }
    jsCtx_Destroy(js->ctx);
    pthread_cond_destroy(&js->sweeper_wake);
    free(js->pubs->buckets);
    free(js->pubs);
    free(js);
}

/* --- provisioning --- */

struct stream_def {
    const char *name;
    const char *subjects[6];
    int nsubjects;
    jsRetentionPolicy retention;
    int64_t max_age_ms; /* 0 = forever */
    bool deny_delete_purge;
};

static void stream_config(const struct dagi_js *js, const struct stream_def *d, jsStreamConfig *c)
{
    jsStreamConfig_Init(c);
    c->Name = d->name;
    c->Subjects = (const char **)d->subjects;
    c->SubjectsLen = d->nsubjects;
    c->Retention = d->retention;
    c->Storage = js_FileStorage;
    /* the server refuses a de-duplication window longer than the max age */
    int64_t dedup_ms = js->opts.dedup_window_ms;
    if (d->max_age_ms > 0 && dedup_ms > d->max_age_ms)
        dedup_ms = d->max_age_ms;
    c->MaxAge = MS_TO_NS(d->max_age_ms); /* NANOSECONDS */
    c->Duplicates = MS_TO_NS(dedup_ms);  /* NANOSECONDS */
    c->MaxMsgSize = DAGI_JS_MAX_MSG_SIZE;
    c->Replicas = js->opts.replicas;
    c->DenyDelete = d->deny_delete_purge;
    c->DenyPurge = d->deny_delete_purge;
}

/* The fields we set; anything else an operator tuned is left alone. */
static bool stream_config_differs(const jsStreamConfig *want, const jsStreamConfig *have)
{
    if (want->SubjectsLen != have->SubjectsLen)
        return true;
    for (int i = 0; i < want->SubjectsLen; i++)
        if (strcmp(want->Subjects[i], have->Subjects[i]) != 0)
            return true;
    return want->Retention != have->Retention || want->Storage != have->Storage ||
           want->MaxAge != have->MaxAge || want->Duplicates != have->Duplicates ||
           want->MaxMsgSize != have->MaxMsgSize || want->Replicas != have->Replicas ||
           want->DenyDelete != have->DenyDelete || want->DenyPurge != have->DenyPurge;
}

static int provision_stream(struct dagi_js *js, const struct stream_def *d, struct dagi_error *err)
{
    jsStreamConfig want;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    const char *what = "create";
    stream_config(js, d, &want);
    natsStatus s = js_GetStreamInfo(&si, js->ctx, d->name, NULL, &jerr);
    if (s == NATS_NOT_FOUND) {
        s = js_AddStream(NULL, js->ctx, &want, NULL, &jerr);
    } else if (s == NATS_OK && stream_config_differs(&want, si->Config)) {
        what = "update";
        s = js_UpdateStream(NULL, js->ctx, &want, NULL, &jerr);
    } else if (s != NATS_OK) {
        what = "look up";
    }
    jsStreamInfo_Destroy(si);
    if (s != NATS_OK)
        return dagi_error_set(err, dagi_js_err_from_nats(s), "%s stream %s: %s (%s, code %d)", what,
                              d->name, natsStatus_GetText(s), nats_GetLastError(NULL), (int)jerr);
    return DAGI_OK;
}

int dagi_js_provision_sync(struct dagi_js *js, struct dagi_error *err)
{
    if (!js)
        return dagi_error_set(err, DAGI_EINVAL, "no JetStream context");
    const struct stream_def defs[] = {
        {DAGI_JS_EVENTS,
         {"message.>", "attachment.>", "agent.>", "quota.>", "ops.>", "content.>"},
         6,
         js_LimitsPolicy,
         js->opts.event_max_age_ms,
         false},
        {DAGI_JS_AUDIT, {"audit.>"}, 1, js_LimitsPolicy, js->opts.audit_max_age_ms, true},
        {DAGI_JS_WORK, {"dagi.work.>"}, 1, js_WorkQueuePolicy, js->opts.work_max_age_ms, false},
        {DAGI_JS_DLQ, {"dagi.dlq.>"}, 1, js_LimitsPolicy, js->opts.dlq_max_age_ms, false},
    };
    for (size_t i = 0; i < DAGI_ARRAY_LEN(defs); i++) {
        int rc = provision_stream(js, &defs[i], err);
        if (rc)
            return rc;
    }
    return DAGI_OK;
}

struct provision_job {
    struct dagi_js *js;
    void (*done)(void *ud, int err, const char *message);
    void *ud;
    struct dagi_error err;
    int rc;
};

static void on_provision_work(void *arg)
{
    struct provision_job *job = arg;
    job->rc = dagi_js_provision_sync(job->js, &job->err);
}

static void on_provision_done(void *arg, bool cancelled)
{
    struct provision_job *job = arg;
    if (cancelled)
        job->done(job->ud, DAGI_ECANCELED, "provisioning cancelled");
    else
        job->done(job->ud, job->rc, job->rc ? job->err.message : "");
    free(job);
}

void dagi_js_provision(struct dagi_js *js, void (*done)(void *ud, int err, const char *message),
                       void *ud)
{
    struct provision_job *job = dagi_xcalloc(1, sizeof(*job));
    *job = (struct provision_job){.js = js, .done = done, .ud = ud};
    int rc = js ? dagi_js_run_off_loop(js, on_provision_work, on_provision_done, job) : DAGI_EINVAL;
    if (rc) {
        done(ud, rc, "cannot run provisioning off the loop (no loopq, or no threads)");
        free(job);
    }
}
