/* JetStream against a real nats-server: provisioning, de-duplication, async
 * publishing, consumers with back-off and dead letters, replay, KV, and a
 * frozen server.
 *
 * The tests share one server and one context (group setup) and run in
 * order; each uses its own subjects and durable names.  The main thread is
 * the loop thread: it runs the event_base between steps, and since these
 * connections do not use the libevent adapter, it may also call the
 * blocking functions (dlq list/show/replay, KV) directly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>
#include <nats/nats.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/event.h"
#include "bus/js.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/loopq.h"
#include "core/metrics.h"
#include "core/pool.h"
#include "nats_fixture.h"

struct world {
    struct nats_fixture nats;
    natsConnection *nc, *nc2;
    jsCtx *raw; /* plain libnats context, to look behind our back */
    struct event_base *base;
    struct dagi_loopq *loopq;
    struct dagi_pool *pool;
    struct dagi_metrics *metrics;
    struct dagi_js *js;
    pthread_t loop_thread;
};

static struct world W;

/* --- helpers --- */

static int64_t now_ms(void)
{
    return dagi_clock_mono_ns() / 1000000;
}

/* Runs the loop until done() or timeout_ms; false on timeout. */
static bool run_until(bool (*done)(void *), void *arg, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    struct timeval tick = {0, 5000};
    while (!done(arg)) {
        if (now_ms() > end)
            return false;
        event_base_loopexit(W.base, &tick);
        event_base_dispatch(W.base);
    }
    return true;
}

static bool never(void *arg)
{
    (void)arg;
    return false;
}

static void run_for(int ms)
{
    run_until(never, NULL, ms);
}

static bool int_reached(void *arg)
{
    int *p = arg;
    return p[0] >= p[1];
}

/* waits until *count >= want */
static bool wait_count(int *count, int want, int timeout_ms)
{
    int pair[2];
    int64_t end = now_ms() + timeout_ms;
    struct timeval tick = {0, 5000};
    for (;;) {
        pair[0] = *count;
        pair[1] = want;
        if (int_reached(pair))
            return true;
        if (now_ms() > end)
            return false;
        event_base_loopexit(W.base, &tick);
        event_base_dispatch(W.base);
    }
}

static natsConnection *connect_to(const char *url)
{
    natsOptions *o = NULL;
    natsConnection *nc = NULL;
    assert_int_equal(natsOptions_Create(&o), NATS_OK);
    natsOptions_SetURL(o, url);
    natsOptions_SetMaxReconnect(o, -1);
    natsOptions_SetReconnectWait(o, 100);
    natsOptions_SetReconnectBufSize(o, 64 * 1024 * 1024);
    assert_int_equal(natsConnection_Connect(&nc, o), NATS_OK);
    natsOptions_Destroy(o);
    return nc;
}

static char *metrics_text(void)
{
    struct dagi_buf b;
    dagi_buf_init(&b, 1 << 20);
    assert_int_equal(dagi_metrics_render(W.metrics, &b), 0);
    return dagi_buf_detach(&b, NULL);
}

static jsStreamInfo *stream_info(const char *name)
{
    jsStreamInfo *si = NULL;
    assert_int_equal(js_GetStreamInfo(&si, W.raw, name, NULL, NULL), NATS_OK);
    return si;
}

static void stream_purge(const char *name)
{
    assert_int_equal(js_PurgeStream(W.raw, name, NULL, NULL), NATS_OK);
}

/* --- group setup --- */

static int group_setup(void **state)
{
    (void)state;
    struct dagi_error err = {0};
    if (nats_fixture_start(&W.nats, NULL, NULL) != 0)
        return -1;
    W.nc = connect_to(W.nats.url);
    W.nc2 = connect_to(W.nats.url);
    if (natsConnection_JetStream(&W.raw, W.nc, NULL) != NATS_OK)
        return -1;
    W.base = event_base_new();
    W.loop_thread = pthread_self();
    W.loopq = dagi_loopq_new(W.base);
    W.pool = dagi_pool_new(W.base, 2, 64);
    W.metrics = dagi_metrics_new(1000);
    struct dagi_js_opts opts = {.loopq = W.loopq, .pool = W.pool, .metrics = W.metrics};
    if (dagi_js_new_conn(W.nc, &opts, &W.js, &err) != 0) {
        fprintf(stderr, "js: %s\n", err.message);
        return -1;
    }
    if (dagi_js_provision_sync(W.js, &err) != 0) {
        fprintf(stderr, "provision: %s\n", err.message);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    dagi_js_free(W.js);
    dagi_pool_free(W.pool);
    dagi_loopq_free(W.loopq);
    jsCtx_Destroy(W.raw);
    natsConnection_Destroy(W.nc);
    natsConnection_Destroy(W.nc2);
    nats_fixture_stop(&W.nats);
    dagi_metrics_free(W.metrics);
    event_base_free(W.base);
    return 0;
}

/* --- provisioning --- */

struct provision_result {
    bool called;
    int err;
    bool on_loop;
};

static void on_provisioned(void *ud, int err, const char *message)
{
    struct provision_result *r = ud;
    r->called = true;
    r->err = err;
    r->on_loop = pthread_equal(pthread_self(), W.loop_thread);
    if (err)
        fprintf(stderr, "provision: %s\n", message);
}

static bool provision_called(void *arg)
{
    return ((struct provision_result *)arg)->called;
}

static void test_provision(void **state)
{
    (void)state;
    struct dagi_error err = {0};
    /* again: nothing to do */
    assert_int_equal(dagi_js_provision_sync(W.js, &err), 0);
    struct provision_result r = {0};
    dagi_js_provision(W.js, on_provisioned, &r);
    assert_true(run_until(provision_called, &r, 10000));
    assert_int_equal(r.err, 0);
    assert_true(r.on_loop);

    jsStreamInfo *si = stream_info("DAGI_EVENTS");
    assert_int_equal(si->Config->SubjectsLen, 6);
    assert_int_equal(si->Config->Storage, js_FileStorage);
    assert_int_equal(si->Config->Retention, js_LimitsPolicy);
    assert_true(si->Config->Duplicates == 120LL * 1000000000LL); /* ns */
    assert_true(si->Config->MaxAge == 7LL * 24 * 3600 * 1000000000LL);
    assert_int_equal(si->Config->MaxMsgSize, 8 * 1024 * 1024);
    jsStreamInfo_Destroy(si);
    si = stream_info("DAGI_WORK");
    assert_int_equal(si->Config->Retention, js_WorkQueuePolicy);
    jsStreamInfo_Destroy(si);
    si = stream_info("DAGI_AUDIT");
    assert_true(si->Config->DenyDelete);
    assert_true(si->Config->DenyPurge);
    assert_true(si->Config->MaxAge == 0);
    jsStreamInfo_Destroy(si);
    si = stream_info("DAGI_DLQ");
    assert_true(si->Config->MaxAge == 30LL * 24 * 3600 * 1000000000LL);
    jsStreamInfo_Destroy(si);

    /* another dedup window: the existing streams are updated ... */
    struct dagi_js *other = NULL;
    struct dagi_js_opts opts = {.dedup_window_ms = 60000, .metrics = W.metrics};
    assert_int_equal(dagi_js_new_conn(W.nc, &opts, &other, &err), 0);
    assert_int_equal(dagi_js_provision_sync(other, &err), 0);
    si = stream_info("DAGI_WORK");
    assert_true(si->Config->Duplicates == 60LL * 1000000000LL);
    jsStreamInfo_Destroy(si);
    dagi_js_free(other);
    /* ... and back */
    assert_int_equal(dagi_js_provision_sync(W.js, &err), 0);
    si = stream_info("DAGI_WORK");
    assert_true(si->Config->Duplicates == 120LL * 1000000000LL);
    jsStreamInfo_Destroy(si);

    /* the audit stream refuses delete and purge */
    uint64_t seq = 0;
    const char *rec = "{\"action\":\"login\"}";
    assert_int_equal(dagi_js_publish_sync(W.js, "audit.gateway.login", rec, strlen(rec), NULL, NULL,
                                          0, &seq, &err),
                     0);
    assert_true(seq > 0);
    assert_int_not_equal(js_DeleteMsg(W.raw, "DAGI_AUDIT", seq, NULL, NULL), NATS_OK);
    assert_int_not_equal(js_PurgeStream(W.raw, "DAGI_AUDIT", NULL, NULL), NATS_OK);
    si = stream_info("DAGI_AUDIT");
    assert_int_equal(si->State.Msgs, 1);
    jsStreamInfo_Destroy(si);

    /* a subject no stream takes */
    assert_int_not_equal(
        dagi_js_publish_sync(W.js, "nowhere.at.all", "x", 1, NULL, NULL, 0, NULL, &err), 0);
}

/* --- de-duplication --- */

struct ack {
    int count;
    int err;
    uint64_t seq;
    bool duplicate;
};

static void on_one_ack(void *ud, int err, uint64_t seq, bool duplicate)
{
    struct ack *a = ud;
    a->count++;
    a->err = err;
    a->seq = seq;
    a->duplicate = duplicate;
}

static void test_dedup(void **state)
{
    (void)state;
    struct dagi_error err = {0};
    uint64_t s1 = 0, s2 = 0;
    const char *body = "{\"id\":\"x\"}";
    struct dagi_js_header h[] = {{"Dagi-Trace-Id", "t-1"}};
    assert_int_equal(dagi_js_publish_sync(W.js, "message.created.c1", body, strlen(body), "dedup-1",
                                          h, 1, &s1, &err),
                     0);
    assert_int_equal(dagi_js_publish_sync(W.js, "message.created.c1", body, strlen(body), "dedup-1",
                                          h, 1, &s2, &err),
                     0);
    assert_true(s1 == s2);

    struct ack a = {0}, b = {0};
    assert_int_equal(dagi_js_publish(W.js, "message.created.c1", body, strlen(body), "dedup-2",
                                     NULL, 0, on_one_ack, &a),
                     0);
    assert_true(wait_count(&a.count, 1, 5000));
    assert_int_equal(dagi_js_publish(W.js, "message.created.c1", body, strlen(body), "dedup-2",
                                     NULL, 0, on_one_ack, &b),
                     0);
    assert_true(wait_count(&b.count, 1, 5000));
    assert_int_equal(a.err, 0);
    assert_int_equal(b.err, 0);
    assert_false(a.duplicate);
    assert_true(b.duplicate);
    assert_true(a.seq == b.seq);

    /* exactly two messages on that subject */
    jsOptions o;
    jsOptions_Init(&o);
    o.Stream.Info.SubjectsFilter = "message.created.c1";
    jsStreamInfo *si = NULL;
    assert_int_equal(js_GetStreamInfo(&si, W.raw, "DAGI_EVENTS", &o, NULL), NATS_OK);
    assert_non_null(si->State.Subjects);
    assert_int_equal(si->State.Subjects->Count, 1);
    assert_int_equal(si->State.Subjects->List[0].Msgs, 2);
    jsStreamInfo_Destroy(si);

    char *m = metrics_text();
    assert_non_null(
        strstr(m, "dagi_js_published_total{stream=\"DAGI_EVENTS\",result=\"duplicate\"} 2"));
    free(m);
}

/* --- async publishing --- */

#define N_ASYNC 10000

struct many {
    int acked, failed;
    uint64_t last_seq;
    bool in_order, on_loop;
};

static void on_many_ack(void *ud, int err, uint64_t seq, bool duplicate)
{
    struct many *m = ud;
    (void)duplicate;
    if (err) {
        m->failed++;
    } else {
        if (seq <= m->last_seq)
            m->in_order = false;
        m->last_seq = seq;
    }
    if (!pthread_equal(pthread_self(), W.loop_thread))
        m->on_loop = false;
    m->acked++;
}

static void test_async_10k(void **state)
{
    (void)state;
    struct many m = {.in_order = true, .on_loop = true};
    char body[128];
    for (int i = 0; i < N_ASYNC; i++) {
        int n = snprintf(body, sizeof(body), "{\"n\":%d}", i);
        assert_int_equal(dagi_js_publish(W.js, "agent.run.started.a1", body, (size_t)n, NULL, NULL,
                                         0, on_many_ack, &m),
                         0);
    }
    assert_true(wait_count(&m.acked, N_ASYNC, 30000));
    assert_int_equal(m.failed, 0);
    assert_true(m.in_order);
    assert_true(m.on_loop);
    /* nothing more arrives */
    run_for(100);
    assert_int_equal(m.acked, N_ASYNC);

    /* too big: refused at once, no callback */
    struct ack a = {0};
    size_t big = 9 * 1024 * 1024;
    char *blob = calloc(1, big);
    assert_int_equal(
        dagi_js_publish(W.js, "agent.run.started.a1", blob, big, NULL, NULL, 0, on_one_ack, &a),
        DAGI_ETOOBIG);
    free(blob);
    run_for(50);
    assert_int_equal(a.count, 0);
}

/* --- consumers --- */

struct seen {
    int count;
    int dup_deliveries; /* deliveries > 1 */
    char ids[64][37];
    int64_t at_ms[16];
    uint64_t deliveries[16];
    bool fail;
    char trace[64];
    char replay_of[32];
    char msg_id[80];
};

static void record(struct seen *s, const struct dagi_js_msg *msg)
{
    const char *why = NULL;
    json_t *env = dagi_event_parse(msg->data, msg->len, &why);
    assert_non_null(env);
    if (s->count < 64)
        snprintf(s->ids[s->count], 37, "%s", json_string_value(json_object_get(env, "id")));
    json_decref(env);
    if (s->count < 16) {
        s->at_ms[s->count] = now_ms();
        s->deliveries[s->count] = msg->deliveries;
    }
    if (msg->deliveries > 1)
        s->dup_deliveries++;
    const char *t = msg->header(msg, "Dagi-Trace-Id");
    snprintf(s->trace, sizeof(s->trace), "%s", t ? t : "");
    const char *r = msg->header(msg, "Dagi-Replay-Of");
    snprintf(s->replay_of, sizeof(s->replay_of), "%s", r ? r : "");
    snprintf(s->msg_id, sizeof(s->msg_id), "%s", msg->msg_id);
    assert_null(msg->header(msg, "No-Such-Header"));
    s->count++;
}

static void on_work(struct dagi_js_delivery *d, const struct dagi_js_msg *msg, void *ud)
{
    struct seen *s = ud;
    assert_true(pthread_equal(pthread_self(), W.loop_thread));
    record(s, msg);
    if (s->fail)
        dagi_js_fail(d, "boom: handler refused");
    else
        dagi_js_ack(d);
}

static void on_any(struct dagi_js_delivery *d, const struct dagi_js_msg *msg, void *ud)
{
    struct seen *s = ud;
    assert_true(msg->stream_seq > 0);
    s->count++;
    dagi_js_ack(d);
}

static void publish_work(const char *subject, const char *trace, char id_out[37])
{
    struct dagi_error err = {0};
    json_t *data = json_pack("{s:s}", "job", "parse");
    char *env = dagi_event_build("dagi.work", "test@here", trace, data, id_out);
    struct dagi_js_header h[] = {{"Dagi-Trace-Id", trace}};
    char msg_id[48];
    snprintf(msg_id, sizeof(msg_id), "work-%s", id_out);
    assert_int_equal(
        dagi_js_publish_sync(W.js, subject, env, strlen(env), msg_id, h, 1, NULL, &err), 0);
    free(env);
}

static void test_consumer_acks_once(void **state)
{
    (void)state;
    struct dagi_error err = {0};
    char ids[20][37];
    for (int i = 0; i < 20; i++)
        publish_work("dagi.work.ok", "trace-ok", ids[i]);
    struct seen s = {0};
    struct dagi_js_consumer_opts co = {.stream = "DAGI_WORK",
                                       .durable = "ok-worker",
                                       .filter = "dagi.work.ok",
                                       .ack_wait_ms = 2000,
                                       .batch = 4};
    struct dagi_js_consumer *c = NULL;
    assert_int_equal(dagi_js_consume(W.js, &co, on_work, &s, &c, &err), 0);
    assert_true(wait_count(&s.count, 20, 10000));
    /* each exactly once, in order, even past the ack wait */
    run_for(2500);
    assert_int_equal(s.count, 20);
    assert_int_equal(s.dup_deliveries, 0);
    for (int i = 0; i < 20; i++)
        assert_string_equal(s.ids[i], ids[i]);
    assert_string_equal(s.trace, "trace-ok");
    assert_int_equal(strncmp(s.msg_id, "work-", 5), 0);

    /* a message published while it runs arrives promptly (no fetch stall) */
    char late[37];
    int64_t t0 = now_ms();
    publish_work("dagi.work.ok", "trace-late", late);
    assert_true(wait_count(&s.count, 21, 5000));
    assert_true(now_ms() - t0 < 500);
    dagi_js_consumer_stop(c);

    /* acked work is gone from the work queue */
    jsStreamInfo *si = stream_info("DAGI_WORK");
    assert_int_equal(si->State.Msgs, 0);
    jsStreamInfo_Destroy(si);

    /* the same durable again: nothing left to deliver */
    struct seen again = {0};
    assert_int_equal(dagi_js_consume(W.js, &co, on_work, &again, &c, &err), 0);
    run_for(500);
    assert_int_equal(again.count, 0);
    dagi_js_consumer_stop(c);

    char *m = metrics_text();
    assert_non_null(
        strstr(m, "dagi_js_deliveries_total{consumer=\"ok-worker\",result=\"ack\"} 21"));
    free(m);
}

static char failed_id[37];
static uint64_t dlq_seq;

static bool dlq_has_one(void *arg)
{
    (void)arg;
    jsStreamInfo *si = stream_info("DAGI_DLQ");
    bool yes = si->State.Msgs >= 1;
    jsStreamInfo_Destroy(si);
    return yes;
}

static void test_consumer_backoff_dead_letter(void **state)
{
    (void)state;
    struct dagi_error err = {0};
    stream_purge("DAGI_DLQ");
    publish_work("dagi.work.fail", "trace-fail", failed_id);
    struct seen s = {.fail = true};
    struct dagi_js_consumer_opts co = {.stream = "DAGI_WORK",
                                       .durable = "fail-worker",
                                       .filter = "dagi.work.fail",
                                       .max_deliver = 4,
                                       .backoff_base_ms = 100,
                                       .backoff_max_ms = 10000};
    struct dagi_js_consumer *c = NULL;
    assert_int_equal(dagi_js_consume(W.js, &co, on_work, &s, &c, &err), 0);
    assert_true(wait_count(&s.count, 4, 15000));
    assert_true(run_until(dlq_has_one, NULL, 10000));
    /* and no fifth delivery: it was terminated */
    run_for(1500);
    assert_int_equal(s.count, 4);
    dagi_js_consumer_stop(c);

    for (int i = 0; i < 4; i++)
        assert_int_equal(s.deliveries[i], (uint64_t)i + 1);
    int64_t gap[3];
    for (int i = 0; i < 3; i++)
        gap[i] = s.at_ms[i + 1] - s.at_ms[i];
    fprintf(stderr, "# redelivery gaps: %lld %lld %lld ms\n", (long long)gap[0], (long long)gap[1],
            (long long)gap[2]);
    /* 100, 200, 400 ms give or take the loop and fetch latency */
    assert_true(gap[0] >= 90 && gap[0] < 400);
    assert_true(gap[1] >= 190 && gap[1] > gap[0]);
    assert_true(gap[2] >= 390 && gap[2] > gap[1]);

    /* the dead letter */
    char *text = NULL;
    assert_int_equal(dagi_js_dlq_list(W.js, 10, &text, &err), 0);
    json_t *list = json_loads(text, 0, NULL);
    free(text);
    assert_true(json_is_array(list));
    assert_int_equal(json_array_size(list), 1);
    json_t *e = json_array_get(list, 0);
    dlq_seq = (uint64_t)json_integer_value(json_object_get(e, "seq"));
    assert_true(dlq_seq > 0);
    assert_string_equal(json_string_value(json_object_get(e, "subject")),
                        "dagi.dlq.DAGI_WORK.dagi.work.fail");
    assert_string_equal(json_string_value(json_object_get(e, "original_subject")),
                        "dagi.work.fail");
    assert_string_equal(json_string_value(json_object_get(e, "stream")), "DAGI_WORK");
    assert_int_equal(json_integer_value(json_object_get(e, "deliveries")), 4);
    assert_string_equal(json_string_value(json_object_get(e, "error")), "boom: handler refused");
    assert_int_equal(strlen(json_string_value(json_object_get(e, "time"))), 24);
    json_decref(list);

    assert_int_equal(dagi_js_dlq_show(W.js, dlq_seq, &text, &err), 0);
    json_t *one = json_loads(text, 0, NULL);
    free(text);
    json_t *h = json_object_get(one, "headers");
    assert_string_equal(json_string_value(json_object_get(h, "Dagi-Trace-Id")), "trace-fail");
    assert_string_equal(json_string_value(json_object_get(h, "Dagi-Dlq-Stream")), "DAGI_WORK");
    assert_string_equal(json_string_value(json_object_get(h, "Dagi-Dlq-Subject")),
                        "dagi.work.fail");
    assert_string_equal(json_string_value(json_object_get(h, "Dagi-Dlq-Deliveries")), "4");
    assert_string_equal(json_string_value(json_object_get(h, "Dagi-Dlq-Error")),
                        "boom: handler refused");
    const char *orig_seq = json_string_value(json_object_get(h, "Dagi-Dlq-Seq"));
    assert_non_null(orig_seq);
    long long work_seq = strtoll(orig_seq, NULL, 10);
    assert_true(work_seq > 0);
    char want_id[64];
    snprintf(want_id, sizeof(want_id), "dlq-DAGI_WORK-%s", orig_seq);
    assert_string_equal(json_string_value(json_object_get(h, "Nats-Msg-Id")), want_id);
    const char *b64 = json_string_value(json_object_get(one, "data"));
    unsigned char raw[4096];
    size_t raw_len = 0;
    assert_int_equal(sodium_base642bin(raw, sizeof(raw), b64, strlen(b64), NULL, &raw_len, NULL,
                                       sodium_base64_VARIANT_ORIGINAL),
                     0);
    const char *why = NULL;
    json_t *env = dagi_event_parse((const char *)raw, raw_len, &why);
    assert_non_null(env);
    assert_string_equal(json_string_value(json_object_get(env, "id")), failed_id);
    json_decref(env);
    json_decref(one);
    assert_int_equal(dagi_js_dlq_show(W.js, dlq_seq + 100, &text, &err), DAGI_ENOENT);

    /* the alert on DAGI_EVENTS */
    natsMsg *alert = NULL;
    assert_int_equal(js_GetLastMsg(&alert, W.raw, "DAGI_EVENTS", "ops.alert.warning", NULL, NULL),
                     NATS_OK);
    env = dagi_event_parse(natsMsg_GetData(alert), (size_t)natsMsg_GetDataLength(alert), &why);
    assert_non_null(env);
    assert_string_equal(json_string_value(json_object_get(env, "type")), "ops.alert");
    assert_string_equal(json_string_value(json_object_get(env, "trace_id")), "trace-fail");
    json_t *data = json_object_get(env, "data");
    assert_string_equal(json_string_value(json_object_get(data, "stream")), "DAGI_WORK");
    assert_string_equal(json_string_value(json_object_get(data, "subject")), "dagi.work.fail");
    assert_int_equal(json_integer_value(json_object_get(data, "seq")), work_seq);
    assert_int_equal(json_integer_value(json_object_get(data, "deliveries")), 4);
    assert_string_equal(json_string_value(json_object_get(data, "error")), "boom: handler refused");
    json_decref(env);
    natsMsg_Destroy(alert);

    char *m = metrics_text();
    assert_non_null(
        strstr(m, "dagi_js_deliveries_total{consumer=\"fail-worker\",result=\"retry\"} 3"));
    assert_non_null(
        strstr(m, "dagi_js_deliveries_total{consumer=\"fail-worker\",result=\"dead_letter\"} 1"));
    free(m);
}

static void test_dlq_replay(void **state)
{
    (void)state;
    struct dagi_error err = {0};
    assert_true(dlq_seq > 0);
    uint64_t new_seq = 0;
    assert_int_equal(dagi_js_dlq_replay(W.js, dlq_seq, &new_seq, &err), 0);
    assert_true(new_seq > 0);
    /* replaying twice is two deliveries: dedup cannot swallow a replay */
    uint64_t again_seq = 0;
    assert_int_equal(dagi_js_dlq_replay(W.js, dlq_seq, &again_seq, &err), 0);
    assert_true(again_seq > new_seq);
    assert_int_equal(dagi_js_dlq_replay(W.js, dlq_seq + 100, &new_seq, &err), DAGI_ENOENT);

    struct seen s = {0}; /* succeeds now */
    struct dagi_js_consumer_opts co = {.stream = "DAGI_WORK",
                                       .durable = "fail-worker",
                                       .filter = "dagi.work.fail",
                                       .max_deliver = 4,
                                       .backoff_base_ms = 100,
                                       .backoff_max_ms = 10000};
    struct dagi_js_consumer *c = NULL;
    assert_int_equal(dagi_js_consume(W.js, &co, on_work, &s, &c, &err), 0);
    assert_true(wait_count(&s.count, 2, 10000));
    run_for(300);
    dagi_js_consumer_stop(c);
    assert_int_equal(s.count, 2);
    assert_string_equal(s.ids[0], failed_id);
    assert_string_equal(s.ids[1], failed_id);
    assert_string_equal(s.trace, "trace-fail");
    char want[32];
    snprintf(want, sizeof(want), "%llu", (unsigned long long)dlq_seq);
    assert_string_equal(s.replay_of, want);
    assert_int_equal(strncmp(s.msg_id, "replay-", 7), 0);
    /* the dead letter stays where it was */
    assert_true(dlq_has_one(NULL));
}

/* stop while deliveries wait in the loopq: they are handed back, not handled */
static void test_consumer_stop_with_queued(void **state)
{
    (void)state;
    struct dagi_error err = {0};
    char id[37];
    for (int i = 0; i < 5; i++)
        publish_work("dagi.work.stop", "trace-stop", id);
    struct seen s = {0};
    struct dagi_js_consumer_opts co = {
        .stream = "DAGI_WORK", .durable = "stop-worker", .filter = "dagi.work.stop"};
    struct dagi_js_consumer *c = NULL;
    assert_int_equal(dagi_js_consume(W.js, &co, on_work, &s, &c, &err), 0);
    /* let the fetch thread queue them without running the loop */
    nats_fixture_sleep_ms(500);
    dagi_js_consumer_stop(c);
    run_for(200);
    assert_int_equal(s.count, 0);
    /* nak'ed, so a new instance gets them at once */
    assert_int_equal(dagi_js_consume(W.js, &co, on_work, &s, &c, &err), 0);
    assert_true(wait_count(&s.count, 5, 5000));
    dagi_js_consumer_stop(c);

    /* no filter: the whole stream (events, limits retention) */
    struct seen all = {0};
    struct dagi_js_consumer_opts everything = {
        .stream = "DAGI_EVENTS", .durable = "everything", .batch = 4};
    assert_int_equal(dagi_js_consume(W.js, &everything, on_any, &all, &c, &err), 0);
    assert_true(wait_count(&all.count, 10, 5000));
    dagi_js_consumer_stop(c);

    /* a stream that does not exist: set-up keeps retrying, stop still works */
    struct dagi_js_consumer_opts nowhere = {.stream = "NO_SUCH_STREAM", .durable = "nowhere"};
    assert_int_equal(dagi_js_consume(W.js, &nowhere, on_work, &s, &c, &err), 0);
    run_for(300);
    int64_t t0 = now_ms();
    dagi_js_consumer_stop(c);
    assert_true(now_ms() - t0 < 1500);
    /* bad durable names fail at once */
    struct dagi_js_consumer_opts bad = {.stream = "DAGI_WORK", .durable = "a.b"};
    assert_int_equal(dagi_js_consume(W.js, &bad, on_work, &s, &c, &err), DAGI_EINVAL);
}

/* --- KV --- */

struct kv_seen {
    int count;
    char key[64], value[64];
    uint64_t revision;
    bool deleted;
};

static void on_kv(void *ud, const char *key, const void *data, size_t len, uint64_t revision,
                  bool deleted)
{
    struct kv_seen *k = ud;
    assert_true(pthread_equal(pthread_self(), W.loop_thread));
    snprintf(k->key, sizeof(k->key), "%s", key);
    snprintf(k->value, sizeof(k->value), "%.*s", (int)len, len ? (const char *)data : "");
    k->revision = revision;
    k->deleted = deleted;
    k->count++;
}

static void test_kv(void **state)
{
    (void)state;
    struct dagi_error err = {0};
    struct dagi_kv *kv = NULL, *kv2 = NULL;
    struct dagi_js *js2 = NULL;
    assert_int_equal(dagi_kv_open(W.js, "dagi_test", 5, &kv, &err), 0);
    uint64_t rev = 0;
    assert_int_equal(dagi_kv_put(kv, "agent.before", "v0", 2, &rev, &err), 0);
    assert_true(rev > 0);

    /* the watcher lives on a second connection */
    struct dagi_js_opts opts = {.loopq = W.loopq, .pool = W.pool, .metrics = W.metrics};
    assert_int_equal(dagi_js_new_conn(W.nc2, &opts, &js2, &err), 0);
    assert_int_equal(dagi_kv_open(js2, "dagi_test", 5, &kv2, &err), 0);
    struct kv_seen seen = {0};
    struct dagi_kv_watch *w = NULL;
    assert_int_equal(dagi_kv_watch(kv2, "agent.*", on_kv, &seen, &w, &err), 0);
    /* the current value first */
    assert_true(wait_count(&seen.count, 1, 5000));
    assert_string_equal(seen.key, "agent.before");
    assert_string_equal(seen.value, "v0");

    assert_int_equal(dagi_kv_put(kv, "agent.a1", "hello", 5, &rev, &err), 0);
    assert_true(wait_count(&seen.count, 2, 5000));
    assert_string_equal(seen.key, "agent.a1");
    assert_string_equal(seen.value, "hello");
    assert_true(seen.revision == rev);
    assert_false(seen.deleted);

    void *data = NULL;
    size_t len = 0;
    uint64_t got_rev = 0;
    assert_int_equal(dagi_kv_get(kv2, "agent.a1", &data, &len, &got_rev, &err), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(data, "hello", 5);
    assert_true(got_rev == rev);
    free(data);

    assert_int_equal(dagi_kv_delete(kv, "agent.a1", &err), 0);
    assert_true(wait_count(&seen.count, 3, 5000));
    assert_string_equal(seen.key, "agent.a1");
    assert_true(seen.deleted);
    data = NULL;
    assert_int_equal(dagi_kv_get(kv, "agent.a1", &data, &len, NULL, &err), DAGI_ENOENT);
    assert_null(data);
    assert_int_equal(dagi_kv_get(kv, "agent.never", &data, &len, NULL, &err), DAGI_ENOENT);

    /* keys outside the pattern are not seen */
    assert_int_equal(dagi_kv_put(kv, "other.key", "x", 1, NULL, &err), 0);
    run_for(300);
    assert_int_equal(seen.count, 3);

    /* stop is prompt (does not wait out the 1 s Next) and final */
    int64_t t0 = now_ms();
    dagi_kv_watch_stop(w);
    assert_true(now_ms() - t0 < 500);
    assert_int_equal(dagi_kv_put(kv, "agent.after", "x", 1, NULL, &err), 0);
    run_for(300);
    assert_int_equal(seen.count, 3);

    /* opening an existing bucket */
    struct dagi_kv *kv3 = NULL;
    assert_int_equal(dagi_kv_open(W.js, "dagi_test", 5, &kv3, &err), 0);
    dagi_kv_close(kv3);
    dagi_kv_close(kv2);
    dagi_kv_close(kv);
    dagi_js_free(js2);
}

/* --- a frozen server --- */

struct outcomes {
    int accepted, refused, acked, failed, timed_out;
    int done;
};

static void on_outcome(void *ud, int err, uint64_t seq, bool duplicate)
{
    struct outcomes *o = ud;
    (void)seq, (void)duplicate;
    if (err == 0)
        o->acked++;
    else if (err == DAGI_ETIMEDOUT)
        o->timed_out++;
    else
        o->failed++;
    o->done++;
}

static void test_frozen_server(void **state)
{
    (void)state;
    struct dagi_error err = {0};
    struct outcomes o = {0};
    char body[512];
    memset(body, 'x', sizeof(body));
    int64_t start = now_ms();
    bool stopped = false, resumed = false;
    while (now_ms() - start < 4000) {
        int64_t t = now_ms() - start;
        if (!stopped && t >= 500) {
            kill(W.nats.pid, SIGSTOP);
            stopped = true;
        }
        if (!resumed && t >= 2500) {
            kill(W.nats.pid, SIGCONT);
            resumed = true;
        }
        for (int i = 0; i < 20; i++) {
            int rc = dagi_js_publish(W.js, "quota.consumed.u1", body, sizeof(body), NULL, NULL, 0,
                                     on_outcome, &o);
            if (rc == 0)
                o.accepted++;
            else
                o.refused++;
        }
        run_for(2);
    }
    if (!resumed)
        kill(W.nats.pid, SIGCONT);
    /* every accepted publish ends: acked, refused by the server or timed out */
    assert_true(wait_count(&o.done, o.accepted, 30000));
    run_for(200);
    fprintf(stderr,
            "# frozen server: %d accepted (%d acked, %d timed out, %d failed), %d refused at "
            "once\n",
            o.accepted, o.acked, o.timed_out, o.failed, o.refused);
    assert_int_equal(o.done, o.accepted);
    assert_int_equal(o.acked + o.timed_out + o.failed, o.accepted);
    assert_true(o.acked > 0);

    /* and publishing works again */
    struct ack a = {0};
    assert_int_equal(
        dagi_js_publish(W.js, "quota.consumed.u1", "{}", 2, NULL, NULL, 0, on_one_ack, &a), 0);
    assert_true(wait_count(&a.count, 1, 15000));
    assert_int_equal(a.err, 0);
    uint64_t seq = 0;
    assert_int_equal(
        dagi_js_publish_sync(W.js, "quota.consumed.u1", "{}", 2, NULL, NULL, 0, &seq, &err), 0);
    assert_true(seq > a.seq);
}

/* Frozen past the ack timeout (10 s): each publish gets DAGI_ETIMEDOUT,
 * none is left hanging.  (The server stores them once it thaws: a timeout
 * means "unknown", which is why publishers pass a msg_id.) */
static void test_frozen_past_ack_timeout(void **state)
{
    (void)state;
    struct outcomes o = {0};
    kill(W.nats.pid, SIGSTOP);
    int64_t t0 = now_ms();
    for (int i = 0; i < 50; i++) {
        assert_int_equal(
            dagi_js_publish(W.js, "ops.health.test", "{}", 2, NULL, NULL, 0, on_outcome, &o), 0);
        o.accepted++;
    }
    bool all = wait_count(&o.done, o.accepted, 20000);
    int64_t took = now_ms() - t0;
    kill(W.nats.pid, SIGCONT);
    assert_true(all);
    fprintf(stderr, "# frozen 10+ s: %d timed out after %lld ms\n", o.timed_out, (long long)took);
    assert_int_equal(o.timed_out, 50);
    assert_true(took >= 9900);

    struct ack a = {0};
    assert_int_equal(
        dagi_js_publish(W.js, "ops.health.test", "{}", 2, NULL, NULL, 0, on_one_ack, &a), 0);
    assert_true(wait_count(&a.count, 1, 15000));
    assert_int_equal(a.err, 0);
    char *m = metrics_text();
    assert_non_null(
        strstr(m, "dagi_js_published_total{stream=\"DAGI_EVENTS\",result=\"timeout\"} 50"));
    free(m);
}

int main(void)
{
    /* loopq wakes the loop from libnats threads */
    evthread_use_pthreads();
    dagi_log_setup(DAGI_LOG_ERROR, 2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_provision),
        cmocka_unit_test(test_dedup),
        cmocka_unit_test(test_async_10k),
        cmocka_unit_test(test_consumer_acks_once),
        cmocka_unit_test(test_consumer_backoff_dead_letter),
        cmocka_unit_test(test_dlq_replay),
        cmocka_unit_test(test_consumer_stop_with_queued),
        cmocka_unit_test(test_kv),
        cmocka_unit_test(test_frozen_server),
        cmocka_unit_test(test_frozen_past_ack_timeout),
    };
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    nats_CloseAndWait(0);
    libevent_global_shutdown();
    return rc;
}
