/* Test-only bus fixtures (builds with -Dtest_hooks=true only):
 *   responders  dagi.test.<node>.echo | .stream | .slow
 *   routes      POST /v1/test/bus/request   make a bus request, report the outcome
 *               GET  /v1/test/bus/stats     what the responders saw
 *               POST /v1/test/bus/publish   publish N events, report acks/errors
 *               POST /v1/test/work          put a job on dagi.work.test
 *               GET  /v1/test/work/attempts deliveries seen per envelope id
 *               POST /v1/test/kv/{key}      put into the dagi_test KV bucket
 *               GET  /v1/test/kv            what this node's watcher has seen
 * so e2e tests can drive the bus across processes through HTTP. */
#include "node_routes.h"

#include "dagi_build.h"

#if DAGI_TEST_HOOKS

#include "bus/bus.h"
#include "bus/event.h"
#include "bus/js.h"
#include "core/clock.h"
#include "core/http_server.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/pool.h"
#include "node.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hooks {
    struct dagi_node *node;
    uint64_t produced, cancelled, requests;
    json_t *attempts; /* envelope id -> deliveries seen */
    json_t *kv_seen;  /* key -> last value */
    struct dagi_js_consumer *consumer;
    struct dagi_kv *kv;
    struct dagi_kv_watch *watch;
    /* Set-up and shutdown both run on the pool, possibly at once when a node
     * is stopped right after it started: the lock orders them, and set-up
     * creates nothing once shutdown has begun. */
    pthread_mutex_t setup_lock;
    bool closing;
};

static struct hooks hooks; /* test builds only: one node per process */

/* --- responders --- */

static void on_echo(struct dagi_bus_req *req, const struct dagi_bus_msg *msg, void *ud)
{
    (void)ud;
    hooks.requests++;
    json_t *doc = dagi_bus_msg_json(msg);
    const char *code = doc ? json_string_value(json_object_get(doc, "error")) : NULL;
    if (code)
        dagi_bus_reply_error(req, dagi_bus_err_from_name(code), "test responder failed: %s",
                             code);
    else if (doc && json_is_true(json_object_get(doc, "trace")))
        dagi_bus_reply(req, msg->trace_id, strlen(msg->trace_id));
    else
        dagi_bus_reply(req, msg->data, msg->len);
    json_decref(doc);
}

struct stream_job {
    struct dagi_bus_req *req;
    struct event *timer;
    int next, total, interval_ms;
};

static void stream_job_free(struct stream_job *job)
{
    event_free(job->timer);
    free(job);
}

static void on_stream_cancel(void *ud)
{
    hooks.cancelled++;
    stream_job_free(ud);
}

static void on_stream_tick(evutil_socket_t fd, short what, void *ud)
{
    (void)fd, (void)what;
    struct stream_job *job = ud;
    /* Without a delay, produce in batches so a cancel can arrive between them. */
    int batch = job->interval_ms ? 1 : 50;
    for (int i = 0; i < batch && job->next < job->total; i++) {
        char chunk[48];
        int n = snprintf(chunk, sizeof(chunk), "{\"seq\":%d}", job->next++);
        hooks.produced++;
        if (dagi_bus_stream_chunk(job->req, chunk, (size_t)n))
            return; /* cancelled: on_cancel frees the job */
    }
    if (job->next >= job->total) {
        char result[48];
        int n = snprintf(result, sizeof(result), "{\"chunks\":%d}", job->total);
        dagi_bus_stream_end(job->req, result, (size_t)n);
        stream_job_free(job);
        return;
    }
    struct timeval tv = {job->interval_ms / 1000, (job->interval_ms % 1000) * 1000};
    evtimer_add(job->timer, &tv);
}

static void on_stream(struct dagi_bus_req *req, const struct dagi_bus_msg *msg, void *ud)
{
    (void)ud;
    hooks.requests++;
    json_t *doc = dagi_bus_msg_json(msg);
    struct stream_job *job = dagi_xcalloc(1, sizeof(*job));
    job->req = req;
    job->total = (int)json_integer_value(json_object_get(doc, "n"));
    job->interval_ms = (int)json_integer_value(json_object_get(doc, "interval_ms"));
    json_decref(doc);
    job->timer = evtimer_new(dagi_node_base(hooks.node), on_stream_tick, job);
    dagi_bus_req_on_cancel(req, on_stream_cancel, job);
    struct timeval tv = {0, 0};
    evtimer_add(job->timer, &tv);
}

static void on_slow(struct dagi_bus_req *req, const struct dagi_bus_msg *msg, void *ud)
{
    (void)msg, (void)ud;
    hooks.requests++;
    /* Never answers; the deadline or the caller ends it. */
    dagi_bus_req_on_cancel(req, NULL, NULL);
}

/* --- POST /v1/test/bus/request --- */

struct call {
    struct dagi_http_req *req;
    uint64_t chunks, cancel_after;
    bool in_order;
    int64_t started_ns;
    struct dagi_bus_call *handle;
};

static void on_call_close(struct dagi_http_req *req, void *ud)
{
    (void)req;
    struct call *c = ud;
    c->req = NULL;
    if (c->handle)
        dagi_bus_call_cancel(c->handle);
    free(c);
}

static void finish_call(struct call *c, json_t *result)
{
    json_object_set_new(result, "chunks", json_integer((json_int_t)c->chunks));
    json_object_set_new(result, "in_order", json_boolean(c->in_order));
    json_object_set_new(result, "elapsed_ms",
                        json_real((double)(dagi_clock_mono_ns() - c->started_ns) / 1e6));
    dagi_http_req_on_close(c->req, NULL, NULL);
    dagi_http_respond_json(c->req, 200, result);
    free(c);
}

static void on_call_chunk(struct dagi_bus_call *call, uint64_t seq, const void *data, size_t len,
                          void *ud)
{
    (void)data, (void)len;
    struct call *c = ud;
    if (seq != c->chunks)
        c->in_order = false;
    c->chunks++;
    if (c->cancel_after && c->chunks == c->cancel_after) {
        dagi_bus_call_cancel(call);
        c->handle = NULL;
        finish_call(c, json_pack("{s:b,s:s}", "ok", 0, "error", "cancelled_by_test"));
    }
}

static void on_call_done(struct dagi_bus_call *call, int err, const void *data, size_t len,
                         const char *message, void *ud)
{
    struct call *c = ud;
    c->handle = NULL;
    json_t *result;
    json_t *doc = err || data ? NULL : dagi_bus_call_json(call, data, len);
    if (err) {
        result = json_pack("{s:b,s:s,s:s}", "ok", 0, "error", dagi_bus_err_name(err), "message",
                           message ? message : "");
    } else if (doc) {
        /* An in-process responder handed over a document: the same text as
         * it would have sent over NATS. */
        char *text = json_dumps(doc, JSON_COMPACT);
        result = json_pack("{s:b,s:s}", "ok", 1, "result", text ? text : "");
        free(text);
    } else {
        result = json_pack("{s:b,s:s%}", "ok", 1, "result", (const char *)data, len);
    }
    json_decref(doc);
    finish_call(c, result);
}

static void on_bus_request(struct dagi_http_req *req, void *ud)
{
    (void)ud;
    json_t *body;
    if (dagi_http_req_json(req, &body))
        return;
    const char *subject = json_string_value(json_object_get(body, "subject"));
    if (!subject) {
        json_decref(body);
        dagi_http_respond_error(req, 400, "invalid_field", "subject", "subject is required");
        return;
    }
    json_t *data = json_object_get(body, "data");
    /* The route is the admin's: a router request it makes without a caller
     * of its own is the admin's (what the gateway would say for the key). */
    if (json_is_object(data) && !strcmp(subject, "dagi.router.infer") &&
        !json_object_get(data, "caller"))
        json_object_set_new(data, "caller", json_pack("{s:s,s:[s]}", "principal", "admin",
                                                      "subjects", "admin"));
    char *text = data ? json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY) : dagi_xstrdup("{}");
    struct call *c = dagi_xcalloc(1, sizeof(*c));
    c->req = req;
    c->in_order = true;
    c->cancel_after = (uint64_t)json_integer_value(json_object_get(body, "cancel_after"));
    c->started_ns = dagi_clock_mono_ns();
    struct dagi_bus_call_opts o = {
        .subject = subject,
        .data = text,
        .len = strlen(text),
        .trace_id = dagi_http_req_trace_id(req),
        .timeout_ms = (unsigned)json_integer_value(json_object_get(body, "timeout_ms")),
        .idle_timeout_ms = (unsigned)json_integer_value(json_object_get(body, "idle_timeout_ms")),
        .on_chunk = json_is_true(json_object_get(body, "stream")) ? on_call_chunk : NULL,
        .on_done = on_call_done,
        .ud = c,
    };
    dagi_http_req_on_close(req, on_call_close, c);
    int rc = dagi_bus_request(dagi_node_bus(hooks.node), &o, &c->handle);
    free(text);
    json_decref(body);
    if (rc) {
        c->handle = NULL;
        finish_call(c, json_pack("{s:b,s:s}", "ok", 0, "error", dagi_bus_err_name(rc)));
    }
}

static void on_bus_stats(struct dagi_http_req *req, void *ud)
{
    (void)ud;
    dagi_http_respond_json(req, 200,
                           json_pack("{s:I,s:I,s:I,s:b}", "requests", (json_int_t)hooks.requests,
                                     "produced", (json_int_t)hooks.produced, "cancelled",
                                     (json_int_t)hooks.cancelled, "connected",
                                     dagi_bus_connected(dagi_node_bus(hooks.node))));
}

/* --- POST /v1/test/bus/publish --- */

struct publish {
    struct dagi_http_req *req;
    int pending, acked, failed;
    json_t *errors;
};

static void publish_maybe_done(struct publish *p)
{
    if (p->pending > 0)
        return;
    if (p->req) {
        dagi_http_req_on_close(p->req, NULL, NULL);
        dagi_http_respond_json(p->req, 200,
                               json_pack("{s:i,s:i,s:O}", "acked", p->acked, "failed", p->failed,
                                         "errors", p->errors));
    }
    json_decref(p->errors);
    free(p);
}

static void on_published(void *ud, int err, uint64_t seq, bool duplicate)
{
    (void)seq, (void)duplicate;
    struct publish *p = ud;
    p->pending--;
    if (err) {
        p->failed++;
        const char *name = dagi_bus_err_name(err);
        json_object_set_new(p->errors, name,
                            json_integer(json_integer_value(json_object_get(p->errors, name)) + 1));
    } else {
        p->acked++;
    }
    publish_maybe_done(p);
}

static void on_publish_close(struct dagi_http_req *req, void *ud)
{
    (void)req;
    struct publish *p = ud;
    p->req = NULL; /* the acks still arrive and free it */
}

static void on_bus_publish(struct dagi_http_req *req, void *ud)
{
    (void)ud;
    struct dagi_js *js = dagi_node_js(hooks.node);
    json_t *body;
    if (dagi_http_req_json(req, &body))
        return;
    int count = (int)json_integer_value(json_object_get(body, "count"));
    json_decref(body);
    if (!js || count <= 0 || count > 1000000) {
        dagi_http_respond_error(req, 400, "invalid_field", "count",
                                "count must be 1..1000000 and JetStream present");
        return;
    }
    struct publish *p = dagi_xcalloc(1, sizeof(*p));
    p->req = req;
    p->errors = json_object();
    p->pending = 1; /* held until the loop below is done */
    dagi_http_req_on_close(req, on_publish_close, p);
    for (int i = 0; i < count; i++) {
        char id[37];
        char *event = dagi_event_build("ops.health", "test", dagi_http_req_trace_id(req),
                                       json_pack("{s:i}", "i", i), id);
        p->pending++;
        int rc = dagi_js_publish(js, "ops.health.test", event, strlen(event), id, NULL, 0,
                                 on_published, p);
        free(event);
        if (rc) /* refused at once (buffer full): counted like a failed ack */
            on_published(p, rc, 0, false);
    }
    p->pending--;
    publish_maybe_done(p);
}

/* --- the work consumer --- */

static void on_work(struct dagi_js_delivery *d, const struct dagi_js_msg *msg, void *ud)
{
    (void)ud;
    const char *why = NULL;
    json_t *env = dagi_event_parse(msg->data, msg->len, &why);
    if (!env) {
        dagi_js_fail(d, why);
        return;
    }
    const char *id = json_string_value(json_object_get(env, "id"));
    json_object_set_new(hooks.attempts, id,
                        json_integer(json_integer_value(json_object_get(hooks.attempts, id)) + 1));
    if (json_is_true(json_object_get(json_object_get(env, "data"), "fail")))
        dagi_js_fail(d, "the test asked this job to fail");
    else
        dagi_js_ack(d);
    json_decref(env);
}

static void on_kv_change(void *ud, const char *key, const void *data, size_t len,
                         uint64_t revision, bool deleted)
{
    (void)ud, (void)revision;
    if (deleted)
        json_object_del(hooks.kv_seen, key);
    else
        json_object_set_new(hooks.kv_seen, key, json_stringn(data, len));
}

/* Consumer and KV set-up block on JetStream: done on the pool. */
static void on_setup_work(void *ud)
{
    (void)ud;
    pthread_mutex_lock(&hooks.setup_lock);
    if (hooks.closing) {
        pthread_mutex_unlock(&hooks.setup_lock);
        return;
    }
    struct dagi_js *js = dagi_node_js(hooks.node);
    const struct dagi_config *c = dagi_node_cfg(hooks.node);
    struct dagi_error err = {0};
    struct dagi_js_consumer_opts o = {
        .stream = "DAGI_WORK",
        .durable = "test-work",
        .filter = "dagi.work.test",
        .max_deliver = (int)c->bus.consumer.max_deliver,
        .backoff_base_ms = c->bus.consumer.backoff_base,
        .backoff_max_ms = c->bus.consumer.backoff_max,
        .ack_wait_ms = c->bus.consumer.ack_wait,
    };
    if (dagi_js_consume(js, &o, on_work, NULL, &hooks.consumer, &err))
        dagi_log_error(NULL, "test consumer failed", "error", err.message);
    if (dagi_kv_open(js, "dagi_test", 5, &hooks.kv, &err) ||
        dagi_kv_watch(hooks.kv, ">", on_kv_change, NULL, &hooks.watch, &err))
        dagi_log_error(NULL, "test KV failed", "error", err.message);
    pthread_mutex_unlock(&hooks.setup_lock);
}

static void on_setup_done(void *ud, bool cancelled)
{
    (void)ud, (void)cancelled;
}

static void on_streams_ready(void *ud)
{
    (void)ud;
    dagi_pool_submit(dagi_node_pool(hooks.node), on_setup_work, on_setup_done, NULL);
}

static void on_work_acked(void *ud, int err, uint64_t seq, bool duplicate)
{
    (void)ud, (void)seq, (void)duplicate;
    if (err)
        dagi_log_error(NULL, "test job not stored", "error", dagi_strerror(err));
}

static void on_work_put(struct dagi_http_req *req, void *ud)
{
    (void)ud;
    json_t *body;
    if (dagi_http_req_json(req, &body))
        return;
    char id[37];
    char *event = dagi_event_build("dagi.work.test", "test", dagi_http_req_trace_id(req), body, id);
    /* A blocking publish would stall the loop that reads its ack. */
    int rc = dagi_js_publish(dagi_node_js(hooks.node), "dagi.work.test", event, strlen(event), id,
                             NULL, 0, on_work_acked, NULL);
    free(event);
    if (rc)
        dagi_http_respond_error(req, 503, "bus_error", NULL, "%s", dagi_strerror(rc));
    else
        dagi_http_respond_json(req, 200, json_pack("{s:s}", "id", id));
}

static void on_work_attempts(struct dagi_http_req *req, void *ud)
{
    (void)ud;
    dagi_http_respond_json(req, 200, json_deep_copy(hooks.attempts));
}

struct kv_put {
    struct dagi_http_req *req;
    char *key;
    json_t *value;
    int rc;
    struct dagi_error err;
};

static void on_kv_put_work(void *ud)
{
    struct kv_put *p = ud;
    const char *v = json_string_value(p->value);
    p->rc = hooks.kv ? dagi_kv_put(hooks.kv, p->key, v, strlen(v), NULL, &p->err) : DAGI_EAGAIN;
}

static void on_kv_put_close(struct dagi_http_req *req, void *ud)
{
    (void)req;
    ((struct kv_put *)ud)->req = NULL;
}

static void on_kv_put_done(void *ud, bool cancelled)
{
    struct kv_put *p = ud;
    if (p->req) {
        dagi_http_req_on_close(p->req, NULL, NULL);
        if (p->rc || cancelled)
            dagi_http_respond_error(p->req, 503, "bus_error", NULL, "%s", p->err.message);
        else
            dagi_http_respond_json(p->req, 200, json_pack("{s:b}", "stored", 1));
    }
    free(p->key);
    json_decref(p->value);
    free(p);
}

static void on_kv_put(struct dagi_http_req *req, void *ud)
{
    (void)ud;
    json_t *body;
    if (dagi_http_req_json(req, &body))
        return;
    struct kv_put *p = dagi_xcalloc(1, sizeof(*p));
    p->req = req;
    p->key = dagi_xstrdup(dagi_http_req_param(req, "key"));
    p->value = json_incref(json_object_get(body, "value"));
    json_decref(body);
    if (!json_is_string(p->value)) {
        on_kv_put_done(p, true);
        return;
    }
    dagi_http_req_on_close(req, on_kv_put_close, p);
    dagi_pool_submit(dagi_node_pool(hooks.node), on_kv_put_work, on_kv_put_done, p);
}

static void on_kv_get(struct dagi_http_req *req, void *ud)
{
    (void)ud;
    dagi_http_respond_json(req, 200, json_deep_copy(hooks.kv_seen));
}

static void *stop_consumer(void *arg)
{
    dagi_js_consumer_stop(arg);
    return NULL;
}

static void on_shutdown(void *ud)
{
    (void)ud;
    pthread_mutex_lock(&hooks.setup_lock);
    hooks.closing = true;
    pthread_mutex_unlock(&hooks.setup_lock);
    /* Each stop waits out its thread's poll; do them side by side. */
    pthread_t t;
    bool threaded = hooks.consumer && pthread_create(&t, NULL, stop_consumer, hooks.consumer) == 0;
    if (hooks.consumer && !threaded)
        dagi_js_consumer_stop(hooks.consumer);
    if (hooks.watch)
        dagi_kv_watch_stop(hooks.watch);
    if (hooks.kv)
        dagi_kv_close(hooks.kv);
    if (threaded)
        pthread_join(t, NULL);
    hooks.watch = NULL;
    hooks.kv = NULL;
    hooks.consumer = NULL;
}

/* After the loop has stopped: nothing else touches the maps any more. */
void dagi_testhooks_bus_free(void)
{
    if (!hooks.node)
        return;
    json_decref(hooks.attempts);
    json_decref(hooks.kv_seen);
    pthread_mutex_destroy(&hooks.setup_lock);
    memset(&hooks, 0, sizeof(hooks));
}



void dagi_testhooks_bus_register(struct dagi_node *n)
{
    hooks.node = n;
    pthread_mutex_init(&hooks.setup_lock, NULL);
    hooks.attempts = json_object();
    hooks.kv_seen = json_object();
    const char *name = dagi_node_cfg(n)->node.name;
    static const struct {
        const char *verb;
        dagi_bus_handler_fn fn;
    } responders[] = {{"echo", on_echo}, {"stream", on_stream}, {"slow", on_slow}};
    for (size_t i = 0; i < DAGI_ARRAY_LEN(responders); i++) {
        char subject[160];
        snprintf(subject, sizeof(subject), "dagi.test.%s.%s", name, responders[i].verb);
        if (dagi_bus_serve(dagi_node_bus(n), subject, responders[i].fn, NULL))
            abort();
    }
    const struct dagi_http_route routes[] = {
        {"POST", "/v1/test/bus/request", on_bus_request, n, 0, 0, "admin", NULL},
        {"GET", "/v1/test/bus/stats", on_bus_stats, n, 0, 0, "admin", NULL},
        {"POST", "/v1/test/bus/publish", on_bus_publish, n, 0, 0, "admin", NULL},
        {"POST", "/v1/test/work", on_work_put, n, 0, 0, "admin", NULL},
        {"GET", "/v1/test/work/attempts", on_work_attempts, n, 0, 0, "admin", NULL},
        {"POST", "/v1/test/kv/{key}", on_kv_put, n, 0, 0, "admin", NULL},
        {"GET", "/v1/test/kv", on_kv_get, n, 0, 0, "admin", NULL},
    };
    for (size_t i = 0; i < DAGI_ARRAY_LEN(routes); i++)
        if (dagi_http_server_add_route(dagi_node_http(n), &routes[i]))
            abort();
    dagi_node_on_streams_ready(n, on_streams_ready, NULL);
    dagi_node_on_shutdown(n, on_shutdown, NULL);
}

#else

void dagi_testhooks_bus_register(struct dagi_node *n)
{
    (void)n;
}

void dagi_testhooks_bus_free(void)
{
}

#endif
