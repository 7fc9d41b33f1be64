/* `dagi.swapper.embed` (swapper.h): embeddings on the bus.
 *
 * The same path as a chat, without the stream: find the model, make sure
 * it may embed (capability `embeddings` and a provider with embed()), load
 * it lazily through the model table - so a local embedding model counts
 * against swapper.vram_budget_mb and shares first loads like any other -
 * then one provider call, retried on `unavailable` as chats are (an
 * embedding is idempotent, so a retry can never repeat anything the caller
 * saw).  The whole reply is one JSON document, handed over by reference to
 * an in-process caller. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "node/node.h"
#include "swapper_internal.h"

#define EMBED_SUBJECT "dagi.swapper.embed"

/* One dagi.swapper.embed request. */
struct dagi_swapper_embed {
    struct dagi_swapper_embed *prev, *next;
    struct dagi_swapper_state *sw;
    struct dagi_bus_req *req;
    struct dagi_swapper_model *model; /* referenced */
    struct dagi_swapper_waiter waiter;
    bool waiting, active;
    json_t *input; /* array of strings */
    int64_t dimensions;
    struct dagi_provider_call *call;
    struct event *load_timer, *retry_timer;
    unsigned attempt;
    int64_t start_ns, deadline_ms;
    char trace_id[64];
};

/* --- the input --- */

int dagi_swapper_embed_input(const json_t *input, size_t max_total, json_t **out,
                             struct dagi_error *err)
{
    if (!json_is_string(input) && !json_is_array(input))
        return dagi_error_set(err, DAGI_EINVAL, "input must be a string or an array of strings");
    json_t *list =
        json_is_string(input) ? json_pack("[O]", (json_t *)input) : json_incref((json_t *)input);
    size_t n = json_array_size(list), total = 0, i;
    int rc = 0;
    json_t *item;
    if (!n) {
        rc = dagi_error_set(err, DAGI_EINVAL, "input must not be empty");
        goto out;
    }
    if (n > DAGI_EMBED_MAX_INPUTS) {
        rc = dagi_error_set(err, DAGI_EINVAL, "input has %zu items; at most %d per request", n,
                            DAGI_EMBED_MAX_INPUTS);
        goto out;
    }
    json_array_foreach(list, i, item)
    {
        size_t len = json_string_length(item);
        if (!json_is_string(item)) {
            rc = dagi_error_set(err, DAGI_EINVAL, "input[%zu] must be a string", i);
            goto out;
        }
        /* Ollama reads an empty input as "load only" and OpenAI refuses
         * it: neither gives an embedding. */
        if (!len) {
            rc = dagi_error_set(err, DAGI_EINVAL, "input[%zu] is empty", i);
            goto out;
        }
        if (len > DAGI_EMBED_MAX_INPUT_BYTES) {
            rc = dagi_error_set(err, DAGI_ETOOBIG, "input[%zu] is %zu bytes; at most %u", i, len,
                                DAGI_EMBED_MAX_INPUT_BYTES);
            goto out;
        }
        total += len;
    }
    if (max_total && total > max_total) {
        rc = dagi_error_set(err, DAGI_ETOOBIG,
                            "input is %zu bytes in all; the bus carries at most %zu", total,
                            max_total);
        goto out;
    }
    *out = json_incref(list);
out:
    json_decref(list);
    return rc;
}

/* --- a request in flight --- */

static unsigned ms_of(int64_t v)
{
    return v <= 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (unsigned)v;
}

static unsigned elapsed_ms(const struct dagi_swapper_embed *e)
{
    return (unsigned)((dagi_clock_mono_ns() - e->start_ns) / 1000000);
}

/* What is left of a budget counted from the request (0 = none; 1 at
 * least, so a spent budget times out at once). */
static unsigned left_of(unsigned budget_ms, unsigned used_ms)
{
    if (!budget_ms)
        return 0;
    return used_ms < budget_ms ? budget_ms - used_ms : 1;
}

static const char *result_of(int err)
{
    return err == 0 ? "ok" : err == DAGI_ETIMEDOUT ? "timeout" : "error";
}

/* Unlinks and frees; the bus request must already be answered or gone. */
static void embed_free(struct dagi_swapper_embed *e)
{
    struct dagi_swapper_state *sw = e->sw;
    if (e->prev)
        e->prev->next = e->next;
    else
        sw->embeds = e->next;
    if (e->next)
        e->next->prev = e->prev;
    if (e->waiting)
        dagi_swapper_model_forget(e->model, &e->waiter);
    if (e->call)
        e->model->ops->cancel(e->call);
    if (e->active)
        e->model->active--;
    if (e->load_timer)
        event_free(e->load_timer);
    if (e->retry_timer)
        event_free(e->retry_timer);
    json_decref(e->input);
    dagi_swapper_model_unref(e->model);
    free(e);
}

static void embed_fail(struct dagi_swapper_embed *e, int err, const char *message)
{
    dagi_metric_inc(e->sw->requests_total, (const char *[]){e->model->cfg.id, result_of(err)});
    dagi_bus_reply_error(e->req, err, "model %s: %s", e->model->cfg.id,
                         message ? message : dagi_strerror(err));
    embed_free(e);
}

static void start_call(struct dagi_swapper_embed *e);

static void on_retry_timer(evutil_socket_t fd, short what, void *ud)
{
    (void)fd, (void)what;
    start_call(ud);
}

/* Whether another attempt fits in the budgets; schedules it if so. */
static bool schedule_retry(struct dagi_swapper_embed *e)
{
    const struct dagi_provider_env *env = &e->sw->env;
    if (e->attempt > e->sw->retries)
        return false;
    unsigned delay = dagi_swapper_retry_delay_ms(e->attempt), used = elapsed_ms(e);
    if ((env->first_token_timeout_ms && used + delay >= env->first_token_timeout_ms) ||
        (env->total_timeout_ms && used + delay >= env->total_timeout_ms))
        return false;
    if (e->deadline_ms && dagi_clock_now_ms() + delay >= e->deadline_ms)
        return false;
    if (!e->retry_timer)
        e->retry_timer = evtimer_new(env->base, on_retry_timer, e);
    struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
    evtimer_add(e->retry_timer, &tv);
    return true;
}

static void on_embedded(void *ud, int err, const char *message, const json_t *embeddings,
                        const struct dagi_usage *usage)
{
    struct dagi_swapper_embed *e = ud;
    e->call = NULL; /* the provider frees it after we return */
    dagi_swapper_model_touch(e->model);
    if (err == DAGI_EUNAVAIL && schedule_retry(e)) {
        dagi_log_info(e->trace_id, "retrying the embedding", "model", e->model->cfg.id, "error",
                      message);
        return;
    }
    if (!err && !json_is_array(embeddings)) {
        err = DAGI_EUNAVAIL;
        message = "the provider answered without embeddings";
    }
    if (err) {
        embed_fail(e, err, message);
        return;
    }
    json_t *reply = json_pack("{s:s,s:s,s:O,s:{s:I}}", "model", e->model->cfg.id, "backend",
                              e->model->ops->name, "embeddings", (json_t *)embeddings, "usage",
                              "prompt_tokens", (json_int_t)usage->prompt_tokens);
    dagi_bus_reply_json(e->req, reply);
    json_decref(reply);
    dagi_metric_inc(e->sw->requests_total, (const char *[]){e->model->cfg.id, "ok"});
    embed_free(e);
}

static void start_call(struct dagi_swapper_embed *e)
{
    struct dagi_swapper_state *sw = e->sw;
    unsigned used = elapsed_ms(e);
    /* Timeouts count from the request: a lazy load and earlier attempts
     * spend the same budget. */
    struct dagi_provider_env env = sw->env;
    env.first_token_timeout_ms = left_of(env.first_token_timeout_ms, used);
    env.total_timeout_ms = left_of(env.total_timeout_ms, used);
    if (e->deadline_ms) {
        int64_t left = e->deadline_ms - dagi_clock_now_ms();
        unsigned cap = left > 0 ? ms_of(left) : 1;
        if (!env.total_timeout_ms || cap < env.total_timeout_ms)
            env.total_timeout_ms = cap;
    }
    struct dagi_embed_request req = {
        .input = e->input, .dimensions = e->dimensions, .trace_id = e->trace_id};
    struct dagi_embed_callbacks cb = {on_embedded, e};
    struct dagi_error err = {0};
    if (!e->active) { /* never evicted while it embeds, retries included */
        e->model->active++;
        e->active = true;
    }
    dagi_swapper_model_touch(e->model);
    e->attempt++;
    if (e->model->ops->embed(&env, &e->model->cfg, &req, &cb, &e->call, &err))
        embed_fail(e, err.code, err.message);
}

static void on_model_ready(struct dagi_swapper_waiter *w, int err, const char *message)
{
    struct dagi_swapper_embed *e =
        (struct dagi_swapper_embed *)((char *)w - offsetof(struct dagi_swapper_embed, waiter));
    e->waiting = false;
    evtimer_del(e->load_timer);
    if (err)
        embed_fail(e, err, message);
    else
        start_call(e);
}

static void on_load_timeout(evutil_socket_t fd, short what, void *ud)
{
    (void)fd, (void)what;
    embed_fail(ud, DAGI_ETIMEDOUT, "the model did not load within the first-token timeout");
}

static void on_caller_cancel(void *ud)
{
    struct dagi_swapper_embed *e = ud;
    dagi_metric_inc(e->sw->requests_total, (const char *[]){e->model->cfg.id, "cancelled"});
    embed_free(e); /* cancels the provider call: the upstream request is aborted */
}

/* --- the verb --- */

/* The model for a request, or NULL after answering why not. */
static struct dagi_swapper_model *embedding_model(struct dagi_swapper_state *sw,
                                                  struct dagi_bus_req *req, const char *id)
{
    struct dagi_swapper_model *m = dagi_swapper_models_find(sw->models, id);
    if (!m) {
        dagi_metric_inc(sw->requests_total, (const char *[]){"unknown", "not_found"});
        dagi_bus_reply_error(req, DAGI_ENOENT, "no model \"%.128s\" on this swapper", id);
        return NULL;
    }
    /* The capability is the operator's word that the model embeds; the
     * provider must also be able to. */
    if (!dagi_provider_model_can(&m->cfg, "embeddings") || !m->ops->embed) {
        dagi_metric_inc(sw->requests_total, (const char *[]){m->cfg.id, "invalid"});
        dagi_bus_reply_error(req, DAGI_EINVAL,
                             "model %s does not do embeddings (%s); use a model with the "
                             "\"embeddings\" capability",
                             m->cfg.id,
                             m->ops->embed ? "its capabilities do not list \"embeddings\""
                                           : "its provider has none");
        return NULL;
    }
    return m;
}

static void on_embed(struct dagi_bus_req *req, const struct dagi_bus_msg *msg, void *ud)
{
    struct dagi_swapper_state *sw = ud;
    struct dagi_error err = {0};
    json_t *input = NULL;
    if (sw->draining) {
        dagi_bus_reply_error(req, DAGI_EUNAVAIL, "the swapper is draining");
        return;
    }
    json_t *body = dagi_bus_msg_json(msg);
    const char *id = json_string_value(json_object_get(body, "model"));
    json_t *dims = json_object_get(body, "dimensions");
    if (!json_is_object(body) || !id) {
        dagi_bus_reply_error(req, DAGI_EINVAL,
                             "the request must be a JSON object with model and input");
        goto out;
    }
    struct dagi_swapper_model *m = embedding_model(sw, req, id);
    if (!m)
        goto out;
    if (dims && !json_is_null(dims) &&
        (!json_is_integer(dims) || json_integer_value(dims) < 1 ||
         json_integer_value(dims) > DAGI_EMBED_MAX_DIMENSIONS)) {
        dagi_bus_reply_error(req, DAGI_EINVAL, "dimensions must be an integer from 1 to %d",
                             DAGI_EMBED_MAX_DIMENSIONS);
        goto out;
    }
    if (dagi_swapper_embed_input(json_object_get(body, "input"), sw->max_payload, &input, &err)) {
        dagi_bus_reply_error(req, err.code, "%s", err.message);
        goto out;
    }

    struct dagi_swapper_embed *e = dagi_xcalloc(1, sizeof(*e));
    e->sw = sw;
    e->req = req;
    e->input = input;
    input = NULL;
    e->dimensions = json_is_integer(dims) ? json_integer_value(dims) : 0;
    e->deadline_ms = msg->deadline_ms;
    e->start_ns = dagi_clock_mono_ns();
    snprintf(e->trace_id, sizeof(e->trace_id), "%s", msg->trace_id ? msg->trace_id : "");
    dagi_swapper_model_ref(m);
    e->model = m;
    e->next = sw->embeds;
    if (e->next)
        e->next->prev = e;
    sw->embeds = e;
    dagi_bus_req_on_cancel(req, on_caller_cancel, e);

    e->waiter.on_ready = on_model_ready;
    int rc = dagi_swapper_model_acquire(m, &e->waiter);
    if (rc == DAGI_EAGAIN) {
        e->waiting = true;
        e->load_timer = evtimer_new(sw->env.base, on_load_timeout, e);
        unsigned ms = sw->env.first_token_timeout_ms;
        if (ms) {
            struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
            evtimer_add(e->load_timer, &tv);
        }
    } else if (rc) {
        embed_fail(e, rc, "the model cannot be loaded");
    } else {
        start_call(e);
    }
out:
    json_decref(input);
    json_decref(body);
}

int dagi_swapper_embed_serve(struct dagi_swapper_state *sw, struct dagi_error *err)
{
    int rc = dagi_bus_serve(dagi_node_bus(sw->node), EMBED_SUBJECT, on_embed, sw);
    if (rc)
        return dagi_error_set(err, rc, "swapper: cannot serve %s", EMBED_SUBJECT);
    return DAGI_OK;
}

void dagi_swapper_embed_stop(struct dagi_swapper_state *sw)
{
    while (sw->embeds)
        embed_fail(sw->embeds, DAGI_EUNAVAIL, "the swapper is stopping");
}
