/* The swapper role (swapper.h): `dagi.swapper.infer` on the bus, the model
 * table from the configuration, and the lifecycle.  The operator routes are
 * in swapper_routes.c, the table in swapper_models.c, retries in
 * swapper_chat.c, `dagi.swapper.embed` in swapper_embed.c. */
#include "swapper.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "swapper_internal.h"

#define INFER_SUBJECT "dagi.swapper.infer"
#define MAX_NONSTREAM_ANSWER (16u << 20)

/* One dagi.swapper.infer request. */
struct dagi_swapper_infer {
    struct dagi_swapper_infer *prev, *next;
    struct dagi_swapper_state *sw;
    struct dagi_bus_req *req;
    struct dagi_swapper_model *model; /* referenced */
    struct dagi_swapper_waiter waiter;
    bool waiting, active, started, stream;
    struct dagi_swapper_chat *chat;
    struct event *load_timer; /* the first-token budget while a load runs */
    json_t *body;
    struct dagi_buf text; /* the answer, for callers that take no chunks */
    int64_t start_ns, deadline_ms;
    char trace_id[64];
};

static unsigned ms_of(int64_t v)
{
    return v <= 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (unsigned)v;
}

static void env_from(struct dagi_swapper_state *sw, const struct dagi_config *c)
{
    sw->env.base = dagi_node_base(sw->node);
    sw->env.http = dagi_node_http_client(sw->node);
    sw->env.connect_timeout_ms = ms_of(c->swapper.connect_timeout);
    sw->env.first_token_timeout_ms = ms_of(c->swapper.first_token_timeout);
    sw->env.total_timeout_ms = ms_of(c->swapper.total_timeout);
    sw->retries = (unsigned)c->swapper.retries;
    sw->max_payload = (size_t)c->bus.max_payload;
}

static const char *result_of(int err)
{
    switch (err) {
    case 0:
        return "ok";
    case DAGI_ETIMEDOUT:
        return "timeout";
    case DAGI_ECANCELED:
        return "cancelled";
    default:
        return "error";
    }
}

/* Unlinks and frees; the bus request must already be answered or gone. */
static void infer_free(struct dagi_swapper_infer *in)
{
    struct dagi_swapper_state *sw = in->sw;
    if (in->prev)
        in->prev->next = in->next;
    else
        sw->infers = in->next;
    if (in->next)
        in->next->prev = in->prev;
    if (in->waiting)
        dagi_swapper_model_forget(in->model, &in->waiter);
    if (in->chat)
        dagi_swapper_chat_cancel(in->chat);
    if (in->active)
        in->model->active--;
    if (in->load_timer)
        event_free(in->load_timer);
    json_decref(in->body);
    dagi_buf_release(&in->text);
    dagi_swapper_model_unref(in->model);
    free(in);
}

static void infer_fail(struct dagi_swapper_infer *in, int err, const char *message)
{
    const char *id = in->model ? in->model->cfg.id : "unknown";
    dagi_metric_inc(in->sw->requests_total, (const char *[]){id, result_of(err)});
    /* The router falls back only when no token was sent; it reads that here. */
    dagi_bus_reply_error(in->req, err, "model %s: %s%s", id, message ? message : dagi_strerror(err),
                         in->started ? " (failed after the first token)" : "");
    infer_free(in);
}

static void on_chat_delta(void *ud, const char *text, size_t len)
{
    struct dagi_swapper_infer *in = ud;
    if (!in->started) {
        in->started = true;
        double secs = (double)(dagi_clock_mono_ns() - in->start_ns) / 1e9;
        dagi_metric_observe(in->sw->first_token_seconds, (const char *[]){in->model->cfg.id}, secs);
    }
    if (!in->stream) {
        dagi_buf_append(&in->text, text, len);
        return;
    }
    struct dagi_buf chunk;
    dagi_buf_init(&chunk, len * 6 + 32);
    dagi_buf_append_str(&chunk, "{\"delta\":\"");
    dagi_buf_append_json_escaped(&chunk, text, len);
    dagi_buf_append_str(&chunk, "\"}");
    dagi_bus_stream_chunk(in->req, chunk.data, chunk.len);
    dagi_buf_release(&chunk);
}

static void on_chat_done(void *ud, int err, const char *message, const struct dagi_usage *usage,
                         const char *finish_reason, const json_t *tool_calls, bool started)
{
    struct dagi_swapper_infer *in = ud;
    in->chat = NULL; /* it frees itself after this callback */
    in->started = in->started || started;
    dagi_swapper_model_touch(in->model);
    if (err) {
        infer_fail(in, err, message);
        return;
    }
    json_t *final =
        json_pack("{s:s,s:s,s:{s:I,s:I},s:s}", "model", in->model->cfg.id, "backend",
                  in->model->ops->name, "usage", "prompt_tokens", (json_int_t)usage->prompt_tokens,
                  "completion_tokens", (json_int_t)usage->completion_tokens, "finish_reason",
                  finish_reason ? finish_reason : "stop");
    if (json_array_size(tool_calls))
        json_object_set(final, "tool_calls", (json_t *)tool_calls);
    if (!in->stream)
        json_object_set_new(final, "content", json_string(dagi_buf_str(&in->text)));
    dagi_bus_reply_json(in->req, final);
    json_decref(final);
    dagi_metric_inc(in->sw->requests_total, (const char *[]){in->model->cfg.id, "ok"});
    infer_free(in);
}

static unsigned left_of(unsigned budget_ms, unsigned used_ms)
{
    if (!budget_ms)
        return 0;
    return used_ms < budget_ms ? budget_ms - used_ms : 1;
}

static void start_chat(struct dagi_swapper_infer *in)
{
    struct dagi_swapper_state *sw = in->sw;
    unsigned used = (unsigned)((dagi_clock_mono_ns() - in->start_ns) / 1000000);
    /* Timeouts count from the request: a lazy load spends the same budget. */
    struct dagi_provider_env env = sw->env;
    env.first_token_timeout_ms = left_of(env.first_token_timeout_ms, used);
    env.total_timeout_ms = left_of(env.total_timeout_ms, used);
    if (in->deadline_ms) {
        int64_t left = in->deadline_ms - dagi_clock_now_ms();
        unsigned cap = left > 0 ? ms_of(left) : 1;
        if (!env.total_timeout_ms || cap < env.total_timeout_ms)
            env.total_timeout_ms = cap;
    }
    json_t *max_tokens = json_object_get(in->body, "max_tokens");
    json_t *temperature = json_object_get(in->body, "temperature");
    struct dagi_chat_request req = {
        .messages = json_object_get(in->body, "messages"),
        .tools = json_object_get(in->body, "tools"),
        .max_tokens = json_is_integer(max_tokens) ? json_integer_value(max_tokens) : 0,
        .temperature = json_is_number(temperature) ? json_number_value(temperature) : -1,
        .trace_id = in->trace_id,
        .stream = in->stream,
    };
    struct dagi_chat_callbacks cb = {on_chat_delta, on_chat_done, in};
    struct dagi_error err = {0};
    in->model->active++;
    in->active = true;
    dagi_swapper_model_touch(in->model);
    if (dagi_swapper_chat_start(in->model, &env, sw->retries, &req, &cb, &in->chat, &err))
        infer_fail(in, err.code, err.message);
}

static void on_model_ready(struct dagi_swapper_waiter *w, int err, const char *message)
{
    struct dagi_swapper_infer *in =
        (struct dagi_swapper_infer *)((char *)w - offsetof(struct dagi_swapper_infer, waiter));
    in->waiting = false;
    evtimer_del(in->load_timer);
    if (err)
        infer_fail(in, err, message);
    else
        start_chat(in);
}

static void on_load_timeout(evutil_socket_t fd, short what, void *ud)
{
    (void)fd, (void)what;
    struct dagi_swapper_infer *in = ud;
    infer_fail(in, DAGI_ETIMEDOUT, "the model did not load within the first-token timeout");
}

static void on_caller_cancel(void *ud)
{
    struct dagi_swapper_infer *in = ud;
    const char *id = in->model->cfg.id;
    dagi_metric_inc(in->sw->requests_total, (const char *[]){id, "cancelled"});
    infer_free(in); /* cancels the chat: the upstream request is aborted */
}

static void on_infer(struct dagi_bus_req *req, const struct dagi_bus_msg *msg, void *ud)
{
    struct dagi_swapper_state *sw = ud;
    if (sw->draining) {
        dagi_bus_reply_error(req, DAGI_EUNAVAIL, "the swapper is draining");
        return;
    }
    json_t *body = dagi_bus_msg_json(msg);
    const char *id = json_string_value(json_object_get(body, "model"));
    if (!json_is_object(body) || !id || !json_is_array(json_object_get(body, "messages"))) {
        json_decref(body);
        dagi_bus_reply_error(req, DAGI_EINVAL,
                             "the request must be a JSON object with model and messages");
        return;
    }
    struct dagi_swapper_model *m = dagi_swapper_models_find(sw->models, id);
    if (!m) {
        dagi_metric_inc(sw->requests_total, (const char *[]){"unknown", "not_found"});
        dagi_bus_reply_error(req, DAGI_ENOENT, "no model \"%.128s\" on this swapper", id);
        json_decref(body);
        return;
    }
    /* A model whose capabilities are listed without "chat" (an embedding
     * model) would be loaded for nothing and fail upstream. */
    if (m->cfg.capabilities.count && !dagi_provider_model_can(&m->cfg, "chat")) {
        dagi_metric_inc(sw->requests_total, (const char *[]){m->cfg.id, "invalid"});
        dagi_bus_reply_error(req, DAGI_EINVAL,
                             "model %s does not chat (its capabilities do not list \"chat\")",
                             m->cfg.id);
        json_decref(body);
        return;
    }
    struct dagi_swapper_infer *in = dagi_xcalloc(1, sizeof(*in));
    in->sw = sw;
    in->req = req;
    in->body = body;
    in->stream = msg->stream;
    in->deadline_ms = msg->deadline_ms;
    in->start_ns = dagi_clock_mono_ns();
    snprintf(in->trace_id, sizeof(in->trace_id), "%s", msg->trace_id ? msg->trace_id : "");
    dagi_buf_init(&in->text, MAX_NONSTREAM_ANSWER);
    dagi_swapper_model_ref(m);
    in->model = m;
    in->next = sw->infers;
    if (in->next)
        in->next->prev = in;
    sw->infers = in;
    dagi_bus_req_on_cancel(req, on_caller_cancel, in);

    in->waiter.on_ready = on_model_ready;
    int rc = dagi_swapper_model_acquire(m, &in->waiter);
    if (rc == DAGI_EAGAIN) {
        in->waiting = true;
        in->load_timer = evtimer_new(sw->env.base, on_load_timeout, in);
        unsigned ms = sw->env.first_token_timeout_ms;
        if (ms) {
            struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
            evtimer_add(in->load_timer, &tv);
        }
    } else if (rc) {
        infer_fail(in, rc, "the model cannot be loaded");
    } else {
        start_chat(in);
    }
}

/* --- lifecycle --- */

static void models_from(struct dagi_swapper_state *sw, const struct dagi_config *c)
{
    dagi_swapper_models_set_budget(sw->models, c->swapper.vram_budget_mb, &sw->env);
    dagi_swapper_models_set(sw->models, c->swapper.models.items, c->swapper.models.count);
}

static int swapper_init(struct dagi_node *node, void **state, struct dagi_error *err)
{
    struct dagi_swapper_state *sw = dagi_xcalloc(1, sizeof(*sw));
    sw->node = node;
    const struct dagi_config *c = dagi_node_cfg(node);
    env_from(sw, c);
    struct dagi_metrics *mx = dagi_node_metrics(node);
    sw->requests_total = dagi_metrics_counter(mx, "dagi_swapper_requests_total",
                                              "Model calls served by the swapper, by result.",
                                              (const char *[]){"model", "result", NULL});
    sw->first_token_seconds = dagi_metrics_histogram(
        mx, "dagi_swapper_first_token_seconds", "From the request to the first token.",
        (const char *[]){"model", NULL}, dagi_metrics_latency_buckets,
        dagi_metrics_latency_buckets_n);
    struct dagi_swapper_models_opts mo = {
        .env = sw->env, .vram_budget_mb = c->swapper.vram_budget_mb, .metrics = mx};
    sw->models = dagi_swapper_models_new(&mo);
    models_from(sw, c);
    int rc = dagi_bus_serve(dagi_node_bus(node), INFER_SUBJECT, on_infer, sw);
    if (rc)
        rc = dagi_error_set(err, rc, "swapper: cannot serve %s", INFER_SUBJECT);
    else
        rc = dagi_swapper_embed_serve(sw, err);
    if (rc) {
        dagi_swapper_models_free(sw->models);
        free(sw);
        return rc;
    }
    dagi_swapper_routes_register(sw);
    *state = sw;
    return DAGI_OK;
}

static int swapper_reload(struct dagi_node *node, void *state, struct dagi_error *err)
{
    (void)err;
    struct dagi_swapper_state *sw = state;
    const struct dagi_config *c = dagi_node_cfg(node);
    env_from(sw, c);
    models_from(sw, c); /* entries that still exist keep their load state */
    return DAGI_OK;
}

static void swapper_drain(struct dagi_node *node, void *state)
{
    (void)node;
    struct dagi_swapper_state *sw = state;
    sw->draining = true; /* requests in flight finish; new ones go elsewhere */
}

static void swapper_stop(struct dagi_node *node, void *state)
{
    (void)node;
    struct dagi_swapper_state *sw = state;
    while (sw->infers)
        infer_fail(sw->infers, DAGI_EUNAVAIL, "the swapper is stopping");
    dagi_swapper_embed_stop(sw);
    dagi_swapper_routes_stop(sw);
    dagi_swapper_models_free(sw->models);
    free(sw);
}

const struct dagi_role dagi_role_swapper = {
    .name = "swapper",
    .help = "serve model calls (dagi.swapper.infer) and manage local models",
    .init = swapper_init,
    .start = NULL,
    .reload = swapper_reload,
    .drain = swapper_drain,
    .stop = swapper_stop,
};
