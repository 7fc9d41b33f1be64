/* The gateway role: dagi's public HTTP API in front of the router.
 *
 * Every route here is a thin translation: validate the caller's JSON with
 * field-level errors, shape a `dagi.router.infer` request, and turn the
 * router's chunks and final (or error) into the route's response.  The
 * gateway keeps no state beyond the requests in flight, so any number of
 * gateways can front the same routers.
 *
 * Overhead metric: gateway_overhead_seconds{route} is the time spent in the
 * gateway itself - from the handler's start to the bus request being sent,
 * plus relaying each chunk, plus from the router's final to the response
 * being written - so the wait on the router (the model) is excluded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "gateway.h"
#include "gateway_internal.h"

#define MAX_MESSAGE (64u * 1024)
#define MAX_IMAGES (8u * 1024 * 1024)

/* --- a call in flight --- */

static void call_unlink(struct gw_call *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (c->gw->calls == c)
        c->gw->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void call_free(struct gw_call *c)
{
    call_unlink(c);
    free(c->model);
    free(c);
}

static void call_on_close(struct dagi_http_req *req, void *ud)
{
    (void)req;
    struct gw_call *c = ud;
    c->req = NULL;
    /* The point of noticing: cancelling the bus call cancels the model call
     * upstream, so an abandoned answer stops costing tokens. */
    if (c->call) {
        dagi_bus_call_cancel(c->call);
        c->call = NULL;
    }
    if (c->in_callback)
        c->dead = true;
    else
        call_free(c);
}

static void bus_on_chunk(struct dagi_bus_call *call, uint64_t seq, const void *data, size_t len,
                         void *ud)
{
    (void)call;
    (void)seq;
    struct gw_call *c = ud;
    int64_t t = dagi_clock_mono_ns();
    json_t *j = json_loadb(data, len, 0, NULL);
    c->in_callback = true;
    if (j && c->req)
        c->ops->on_chunk(c, j);
    c->in_callback = false;
    json_decref(j);
    c->overhead_ns += dagi_clock_mono_ns() - t;
    if (c->dead)
        call_free(c);
}

static void bus_on_done(struct dagi_bus_call *call, int err, const void *data, size_t len,
                        const char *error_message, void *ud)
{
    struct gw_call *c = ud;
    int64_t t = dagi_clock_mono_ns();
    c->call = NULL; /* finished: nothing left to cancel */
    if (!c->req) {
        call_free(c);
        return;
    }
    json_t *result = err ? NULL : dagi_bus_call_json(call, data, len);
    /* The response below completes the request: no close callback after it. */
    dagi_http_req_on_close(c->req, NULL, NULL);
    c->ops->on_done(c, err, result, error_message);
    json_decref(result);
    c->overhead_ns += dagi_clock_mono_ns() - t;
    dagi_metric_observe(c->gw->overhead_seconds, (const char *[]){c->ops->route},
                        (double)c->overhead_ns / 1e9);
    call_free(c);
}

void gw_call_start(struct gw_state *gw, struct dagi_http_req *req, const struct gw_call_ops *ops,
                   json_t *body, bool stream, int64_t t0, struct gw_call *proto)
{
    struct gw_call *c = dagi_xcalloc(1, sizeof(*c));
    if (proto)
        *c = *proto;
    c->prev = NULL;
    c->gw = gw;
    c->ops = ops;
    c->req = req;
    c->stream = stream;
    struct dagi_bus_call_opts o = {
        .subject = ops->subject,
        .doc = body,
        .trace_id = dagi_http_req_trace_id(req),
        .timeout_ms = GW_FIRST_REPLY_MS,
        .idle_timeout_ms = GW_IDLE_MS,
        /* A non-streamed answer is asked for whole, all the way down: the
         * final carries the whole text. */
        .on_chunk = stream ? bus_on_chunk : NULL,
        .on_done = bus_on_done,
        .ud = c,
    };
    c->next = gw->calls;
    if (c->next)
        c->next->prev = c;
    gw->calls = c;
    /* Everything is in place before the request goes out, so even a bus
     * that answered synchronously would find a consistent call. */
    dagi_http_req_on_close(req, call_on_close, c);
    c->overhead_ns = dagi_clock_mono_ns() - t0;
    int rc = dagi_bus_request(dagi_node_bus(gw->node), &o, &c->call);
    json_decref(body);
    if (rc) {
        c->call = NULL;
        dagi_http_req_on_close(req, NULL, NULL);
        c->ops->on_done(c, rc, NULL, "the router cannot be asked");
        call_free(c);
    }
}

int gw_status_of(int err)
{
    switch (err) {
    case DAGI_ENOENT:
        return 404;
    case DAGI_EPERM:
        return 403;
    case DAGI_EUNAVAIL:
        return 503;
    case DAGI_ETIMEDOUT:
        return 504;
    case DAGI_EINVAL:
    case DAGI_EPARSE:
        return 400;
    case DAGI_ETOOBIG:
        return 413;
    case DAGI_EQUOTA:
        return 429;
    default:
        return 502;
    }
}

bool gw_respond_quota(struct dagi_http_req *req, int err, const char *message)
{
    if (err != DAGI_EQUOTA)
        return false;
    /* The router's message is the 429 body (quota/quota_reply.h), naming
     * the budget and when it resets. */
    json_t *body = message ? json_loads(message, 0, NULL) : NULL;
    json_t *e = json_object_get(body, "error");
    if (!json_is_object(e)) {
        json_decref(body);
        return false;
    }
    json_int_t reset_ms = json_integer_value(json_object_get(e, "reset_at_ms"));
    int64_t wait_s = (reset_ms - dagi_clock_now_ms() + 999) / 1000;
    char retry[32];
    snprintf(retry, sizeof(retry), "%lld", (long long)(wait_s < 1 ? 1 : wait_s));
    dagi_http_set_header(req, "Retry-After", retry);
    dagi_http_respond_json(req, 429, body);
    return true;
}

static const char *code_of(int err)
{
    const char *name = dagi_bus_err_name(err);
    return name ? name : "upstream_error";
}

/* --- validation helpers: each answers 400 with the field and returns false --- */

static bool opt_string(struct dagi_http_req *req, json_t *o, const char *key, const char **out)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v)) {
        dagi_http_respond_error(req, 400, "invalid_field", key, "%s must be a string", key);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

/* Ids arrive as numbers from Telegram-minded callers: accepted, sent as text. */
static bool opt_id(struct dagi_http_req *req, json_t *o, const char *key, const char *field,
                   json_t **out)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) <= 256) {
        *out = json_string(json_string_value(v));
        return true;
    }
    if (json_is_integer(v)) {
        char buf[32];
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
        *out = json_string(buf);
        return true;
    }
    dagi_http_respond_error(req, 400, "invalid_field", field, "%s must be a string or an integer",
                            field);
    return false;
}

static bool opt_bool(struct dagi_http_req *req, json_t *o, const char *key, bool *out)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return true;
    if (!json_is_boolean(v)) {
        dagi_http_respond_error(req, 400, "invalid_field", key, "%s must be true or false", key);
        return false;
    }
    *out = json_is_true(v);
    return true;
}

/* max_tokens and temperature, shared with the OpenAI route through the
 * router request: copied when valid. */
static bool sampling(struct dagi_http_req *req, json_t *in, json_t *out)
{
    json_t *v = json_object_get(in, "max_tokens");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000000) {
            dagi_http_respond_error(req, 400, "invalid_field", "max_tokens",
                                    "max_tokens must be an integer from 1 to 1000000");
            return false;
        }
        json_object_set(out, "max_tokens", v);
    }
    v = json_object_get(in, "temperature");
    if (v && !json_is_null(v)) {
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 2) {
            dagi_http_respond_error(req, 400, "invalid_field", "temperature",
                                    "temperature must be a number from 0 to 2");
            return false;
        }
        json_object_set(out, "temperature", v);
    }
    return true;
}

/* images: data URLs only (the bus carries them inline until blob references
 * exist), 8 MiB in total because that is the bus's message limit. */
static bool images(struct dagi_http_req *req, json_t *in, json_t *out)
{
    json_t *v = json_object_get(in, "images");
    if (!v || json_is_null(v))
        return true;
    if (!json_is_array(v)) {
        dagi_http_respond_error(req, 400, "invalid_field", "images",
                                "images must be an array of data URLs");
        return false;
    }
    size_t total = 0, i;
    json_t *e;
    json_array_foreach(v, i, e) {
        if (!json_is_string(e) || strncmp(json_string_value(e), "data:image/", 11) != 0) {
            dagi_http_respond_error(req, 400, "invalid_field", "images",
                                    "images[%zu] must be a data:image/... URL", i);
            return false;
        }
        total += json_string_length(e);
    }
    if (total > MAX_IMAGES) {
        dagi_http_respond_error(req, 413, "too_large", "images", "images over the 8 MB bus limit");
        return false;
    }
    if (json_array_size(v))
        json_object_set(out, "images", v);
    return true;
}

static bool history(struct dagi_http_req *req, json_t *in, json_t *out)
{
    json_t *v = json_object_get(in, "history");
    if (!v || json_is_null(v))
        return true;
    if (!json_is_array(v)) {
        dagi_http_respond_error(req, 400, "invalid_field", "history",
                                "history must be an array of {role, content}");
        return false;
    }
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        const char *role = json_string_value(json_object_get(e, "role"));
        if (!json_is_object(e) || !role || !json_is_string(json_object_get(e, "content")) ||
            (strcmp(role, "user") && strcmp(role, "assistant") && strcmp(role, "system"))) {
            dagi_http_respond_error(req, 400, "invalid_field", "history",
                                    "history[%zu] must be {role: user|assistant|system, content: "
                                    "string}",
                                    i);
            return false;
        }
    }
    json_object_set(out, "history", v);
    return true;
}

static bool chat(struct dagi_http_req *req, json_t *in, json_t *out)
{
    json_t *v = json_object_get(in, "chat");
    if (!v || json_is_null(v))
        return true;
    if (!json_is_object(v)) {
        dagi_http_respond_error(req, 400, "invalid_field", "chat",
                                "chat must be an object {id, type}");
        return false;
    }
    json_t *id;
    const char *type;
    if (!opt_id(req, v, "id", "chat.id", &id))
        return false;
    json_t *t = json_object_get(v, "type");
    type = json_string_value(t);
    if ((t && !json_is_null(t) && !type) ||
        (type && strcmp(type, "private") && strcmp(type, "group") && strcmp(type, "supergroup") &&
         strcmp(type, "channel"))) {
        json_decref(id);
        dagi_http_respond_error(req, 400, "invalid_field", "chat.type",
                                "chat.type must be private, group, supergroup or channel");
        return false;
    }
    json_t *addressed = json_object_get(v, "addressed");
    if (addressed && !json_is_null(addressed) && !json_is_boolean(addressed)) {
        json_decref(id);
        dagi_http_respond_error(req, 400, "invalid_field", "chat.addressed",
                                "chat.addressed must be true or false");
        return false;
    }
    json_t *c = json_object();
    if (id)
        json_object_set_new(c, "id", id);
    json_object_set_new(c, "type", json_string(type ? type : "private"));
    if (json_is_true(addressed))
        json_object_set_new(c, "addressed", json_true());
    json_object_set_new(out, "chat", c);
    /* Who wrote it, for the behaviour policy's loop guard. */
    json_t *sender = json_object_get(in, "sender");
    if (sender && !json_is_null(sender)) {
        json_t *bot = json_object_get(sender, "is_bot"), *agent = json_object_get(sender, "is_agent");
        if (!json_is_object(sender) || (bot && !json_is_boolean(bot)) ||
            (agent && !json_is_boolean(agent))) {
            dagi_http_respond_error(req, 400, "invalid_field", "sender",
                                    "sender must be {is_bot?: bool, is_agent?: bool}");
            return false;
        }
        json_object_set_new(out, "sender", json_pack("{s:b,s:b}", "is_bot", json_is_true(bot),
                                                     "is_agent", json_is_true(agent)));
    }
    return true;
}

/* The user a request speaks for: a user key or JWT speaks for its own user
 * only (a different user_id is refused); the admin key for anyone it names. */
bool gw_user_id(struct dagi_http_req *req, json_t *in, json_t *out)
{
    json_t *uid;
    if (!opt_id(req, in, "user_id", "user_id", &uid))
        return false;
    const struct dagi_caller *c = dagi_gate_caller(req);
    if (c && !c->is_admin && c->user_id[0]) {
        if (uid && strcmp(json_string_value(uid), c->user_id) != 0) {
            json_decref(uid);
            dagi_http_respond_error(req, 403, "forbidden", "user_id",
                                    "a user key speaks for its own user only");
            return false;
        }
        json_decref(uid);
        uid = json_string(c->user_id);
    }
    if (uid)
        json_object_set_new(out, "user_id", uid);
    return true;
}

/* --- POST /v1/agents/{id}/infer --- */

static void infer_chunk(struct gw_call *c, json_t *chunk)
{
    json_t *delta = json_object_get(chunk, "delta");
    if (!c->stream || !json_is_string(delta) || !json_string_length(delta))
        return;
    json_t *ev = json_pack("{s:O}", "delta", delta);
    char *s = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    if (s)
        dagi_http_sse_send(c->req, "token", s); /* a closed client shows up as on_close */
    c->started = true;
    free(s);
}

static json_t *usage_of(json_t *result)
{
    json_t *u = json_object_get(result, "usage");
    json_int_t p = json_integer_value(json_object_get(u, "prompt_tokens"));
    json_int_t k = json_integer_value(json_object_get(u, "completion_tokens"));
    return json_pack("{s:I,s:I}", "prompt_tokens", p, "completion_tokens", k);
}

static json_t *str_or_null(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_incref(v) : json_null();
}

static void infer_done(struct gw_call *c, int err, json_t *result, const char *message)
{
    if (!err && !json_is_object(result)) {
        err = DAGI_EPARSE;
        message = "the router's answer is not JSON";
    }
    if (err) {
        if (c->started) {
            json_t *ev = json_pack("{s:s,s:s}", "code", code_of(err), "message",
                                   message ? message : dagi_strerror(err));
            char *s = json_dumps(ev, JSON_COMPACT);
            json_decref(ev);
            dagi_http_sse_send(c->req, "error", s ? s : "{}");
            free(s);
            dagi_http_stream_end(c->req);
        } else if (!gw_respond_quota(c->req, err, message)) {
            /* Before the first token an error is still an HTTP status: a
             * client learns 404/503 without parsing a stream. */
            dagi_http_respond_error(c->req, gw_status_of(err), code_of(err), NULL, "%s",
                                    message ? message : dagi_strerror(err));
        }
        return;
    }
    if (c->stream) {
        json_t *ev = json_pack("{s:o,s:o,s:o,s:o}", "usage", usage_of(result), "model",
                               str_or_null(result, "model"), "policy",
                               str_or_null(result, "policy"), "finish_reason",
                               str_or_null(result, "finish_reason"));
        char *s = json_dumps(ev, JSON_COMPACT);
        json_decref(ev);
        dagi_http_sse_send(c->req, "done", s ? s : "{}");
        free(s);
        dagi_http_stream_end(c->req);
        return;
    }
    json_t *tokens = json_object_get(result, "tokens_used");
    json_t *out = json_pack(
        "{s:o,s:o,s:o,s:I,s:o,s:o,s:o}", "response", str_or_null(result, "response"), "model",
        str_or_null(result, "model"), "backend", str_or_null(result, "backend"), "tokens_used",
        json_integer_value(tokens), "usage", usage_of(result), "policy",
        str_or_null(result, "policy"), "reason", str_or_null(result, "reason"));
    json_t *tc = json_object_get(result, "tool_calls");
    if (json_is_array(tc))
        json_object_set(out, "tool_calls", tc);
    dagi_http_respond_json(c->req, 200, out);
}

const struct gw_call_ops gw_infer_ops = {"infer", GW_INFER_SUBJECT, infer_chunk, infer_done};
#define infer_ops gw_infer_ops

/* The gate checks the shape first: unknown fields are refused here (this
 * is dagi's own API, so a typo should not pass silently). */
static const struct dagi_body_field infer_fields[] = {
    {"message", DAGI_BODY_STRING, false, 64 * 1024},
    {"prompt", DAGI_BODY_STRING, false, 64 * 1024},
    {"user_id", DAGI_BODY_ANY, false, 256},
    {"chat", DAGI_BODY_OBJECT, false, 8},
    {"sender", DAGI_BODY_OBJECT, false, 4},
    {"images", DAGI_BODY_ARRAY, false, 8},
    {"history", DAGI_BODY_ARRAY, false, 1000},
    {"mode", DAGI_BODY_STRING, false, 32},
    {"stream", DAGI_BODY_BOOL, false, 0},
    {"max_tokens", DAGI_BODY_INT, false, 0},
    {"temperature", DAGI_BODY_NUMBER, false, 0},
    {"system_prompt", DAGI_BODY_STRING, false, 32 * 1024},
};
const struct dagi_body_rules dagi_gateway_infer_body = {infer_fields,
                                                       DAGI_ARRAY_LEN(infer_fields), true};
static const struct dagi_gate_rules infer_rules = {.body = &dagi_gateway_infer_body};
/* The original's /route: its clients send more than it reads, so unknown
 * fields are ignored, as the original did. */
static const struct dagi_body_field route_fields[] = {
    {"agent", DAGI_BODY_STRING, false, 64},   {"message", DAGI_BODY_STRING, false, 64 * 1024},
    {"mode", DAGI_BODY_STRING, false, 32},    {"metadata", DAGI_BODY_OBJECT, false, 64},
    {"payload", DAGI_BODY_OBJECT, false, 64},
};
static const struct dagi_body_rules route_body = {route_fields, DAGI_ARRAY_LEN(route_fields),
                                                  false};
static const struct dagi_gate_rules route_rules = {.body = &route_body};

static void on_infer(struct dagi_http_req *req, void *ud)
{
    struct gw_state *gw = ud;
    int64_t t0 = dagi_clock_mono_ns();
    json_t *in = NULL, *out = json_object();
    const char *message, *prompt, *s;
    bool stream = false;
    if (dagi_http_req_json(req, &in) < 0)
        goto out;
    if (!opt_string(req, in, "message", &message) || !opt_string(req, in, "prompt", &prompt))
        goto out;
    if (!message)
        message = prompt;
    if (!message || !*message) {
        dagi_http_respond_error(req, 400, "invalid_field", "message",
                                "message (or prompt) is required");
        goto out;
    }
    if (strlen(message) > MAX_MESSAGE) {
        dagi_http_respond_error(req, 413, "too_large", "message", "message over 64 KiB");
        goto out;
    }
    json_object_set_new(out, "agent_id", json_string(dagi_http_req_param(req, "id")));
    json_object_set_new(out, "message", json_string(message));
    json_object_set_new(out, "channel", json_string("http"));
    if (!gw_user_id(req, in, out))
        goto out;
    if (!opt_string(req, in, "mode", &s))
        goto out;
    if (s)
        json_object_set_new(out, "mode", json_string(s));
    if (!opt_string(req, in, "system_prompt", &s))
        goto out;
    if (s)
        json_object_set_new(out, "system_prompt", json_string(s));
    if (!opt_bool(req, in, "stream", &stream) || !chat(req, in, out) || !images(req, in, out) ||
        !history(req, in, out) || !sampling(req, in, out))
        goto out;
    gw_ask_router(gw, req, &infer_ops, out, stream, t0, NULL);
    out = NULL;
out:
    json_decref(out);
    json_decref(in);
}

/* --- POST /route: the original router v1 contract --- */

static void route_chunk(struct gw_call *c, json_t *chunk)
{
    (void)c;
    (void)chunk; /* /route never streamed: the final has the whole text */
}

static void respond_detail(struct dagi_http_req *req, int status, const char *detail)
{
    dagi_http_respond_json(req, status, json_pack("{s:s}", "detail", detail));
}

static void route_done(struct gw_call *c, int err, json_t *result, const char *message)
{
    if (!err && !json_is_object(result)) {
        err = DAGI_EPARSE;
        message = "the router's answer is not JSON";
    }
    if (err) {
        /* v1 answered every provider failure with 502 {detail}; unknown and
         * forbidden agents and bad input keep their own statuses. */
        if (gw_respond_quota(c->req, err, message))
            return;
        int status = gw_status_of(err);
        if (status == 503)
            status = 502;
        respond_detail(c->req, status, message ? message : dagi_strerror(err));
        return;
    }
    json_t *u = json_object_get(result, "usage");
    json_int_t p = json_integer_value(json_object_get(u, "prompt_tokens"));
    json_int_t k = json_integer_value(json_object_get(u, "completion_tokens"));
    json_t *data = json_pack("{s:o,s:o,s:{s:I,s:I,s:I}}", "text", str_or_null(result, "response"),
                             "model", str_or_null(result, "model"), "usage", "prompt_tokens", p,
                             "completion_tokens", k, "total_tokens", p + k);
    json_t *meta = json_pack("{s:s,s:o,s:o,s:o}", "provider_type", "llm", "model",
                             str_or_null(result, "model"), "policy",
                             str_or_null(result, "policy"), "reason",
                             str_or_null(result, "reason"));
    dagi_http_respond_json(c->req, 200,
                           json_pack("{s:b,s:o,s:o,s:n,s:o}", "ok", 1, "provider",
                                     str_or_null(result, "backend"), "data", data, "error",
                                     "metadata", meta));
}

static const struct gw_call_ops route_ops = {"route", GW_INFER_SUBJECT, route_chunk, route_done};

static void on_route(struct dagi_http_req *req, void *ud)
{
    struct gw_state *gw = ud;
    int64_t t0 = dagi_clock_mono_ns();
    json_t *in = NULL, *out = json_object(), *meta = json_object();
    const char *agent, *message, *mode, *s;
    if (dagi_http_req_json(req, &in) < 0)
        goto out;
    json_t *payload = json_object_get(in, "payload");
    if (payload && !json_is_null(payload) && !json_is_object(payload)) {
        respond_detail(req, 400, "payload must be an object");
        goto out;
    }
    /* v1 merged a top-level context into payload.context. */
    json_t *ctx = json_object();
    if (json_is_object(json_object_get(payload, "context")))
        json_object_update(ctx, json_object_get(payload, "context"));
    if (json_is_object(json_object_get(in, "context")))
        json_object_update(ctx, json_object_get(in, "context"));
    json_object_set_new(out, "metadata", meta);
    meta = NULL;
    if (!opt_string(req, in, "agent", &agent) || !opt_string(req, in, "message", &message) ||
        !opt_string(req, in, "mode", &mode)) {
        json_decref(ctx);
        goto out;
    }
    if (!message)
        message = json_string_value(json_object_get(payload, "message"));
    if (!message)
        message = json_string_value(json_object_get(payload, "text"));
    if (!agent || !*agent || !message || !*message || strlen(message) > MAX_MESSAGE) {
        json_decref(ctx);
        respond_detail(req, 400, !agent || !*agent ? "agent is required"
                                 : !message || !*message ? "message is required"
                                                         : "message over 64 KiB");
        goto out;
    }
    json_object_set_new(out, "agent_id", json_string(agent));
    json_object_set_new(out, "message", json_string(message));
    json_object_set_new(out, "channel", json_string("http"));
    if (mode) {
        json_object_set_new(out, "mode", json_string(mode));
        /* v1's modes were rule selectors; the router knows them as task types. */
        if (!strcmp(mode, "chat") || !strcmp(mode, "devtools") || !strcmp(mode, "crew"))
            json_object_set_new(out, "task_type", json_string(mode));
    }
    if ((s = json_string_value(json_object_get(ctx, "system_prompt"))))
        json_object_set_new(out, "system_prompt", json_string(s));
    if (json_is_array(json_object_get(ctx, "images")))
        json_object_set(out, "images", json_object_get(ctx, "images"));
    json_decref(ctx);
    json_t *uid = json_object_get(in, "user_id");
    if (json_is_string(uid))
        json_object_set(out, "user_id", uid);
    json_t *m = json_object_get(out, "metadata");
    static const char *const passed[] = {"dao_id", "source", "session_id"};
    for (size_t i = 0; i < sizeof(passed) / sizeof(passed[0]); i++)
        if (json_is_string(json_object_get(in, passed[i])))
            json_object_set(m, passed[i], json_object_get(in, passed[i]));
    gw_ask_router(gw, req, &route_ops, out, false, t0, NULL);
    out = NULL;
out:
    json_decref(meta);
    json_decref(out);
    json_decref(in);
}

static void on_health(struct dagi_http_req *req, void *ud)
{
    (void)ud;
    dagi_http_respond_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

/* --- lifecycle --- */

static int gateway_init(struct dagi_node *node, void **state, struct dagi_error *err)
{
    struct gw_state *gw = dagi_xcalloc(1, sizeof(*gw));
    gw->node = node;
    gw->started_s = dagi_clock_now_ms() / 1000;
    gw->overhead_seconds = dagi_metrics_histogram(
        dagi_node_metrics(node), "gateway_overhead_seconds",
        "Time spent in the gateway per request, excluding the wait on the router.",
        (const char *[]){"route", NULL}, dagi_metrics_latency_buckets,
        dagi_metrics_latency_buckets_n);
    struct dagi_http_server *srv = dagi_node_http(node);
    const struct dagi_http_route routes[] = {
        {"POST", "/v1/agents/{id}/infer", on_infer, gw, 0, GW_MAX_BODY, "agents", &infer_rules},
        {"POST", "/route", on_route, gw, 0, GW_MAX_BODY, "agents", &route_rules},
        {"GET", "/health", on_health, gw, DAGI_ROUTE_PUBLIC, 0, "ops", NULL},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        int rc = dagi_http_server_add_route(srv, &routes[i]);
        if (rc) {
            free(gw);
            return dagi_error_set(err, rc, "gateway: cannot add route %s %s", routes[i].method,
                                  routes[i].pattern);
        }
    }
    int rc = gw_openai_register(gw, err);
    if (!rc)
        rc = gw_hooks_register(gw, err);
    if (rc) {
        free(gw);
        return rc;
    }
    *state = gw;
    return DAGI_OK;
}

static void gateway_stop(struct dagi_node *node, void *state)
{
    (void)node;
    struct gw_state *gw = state;
    while (gw->calls) {
        struct gw_call *c = gw->calls;
        if (c->req)
            dagi_http_req_on_close(c->req, NULL, NULL);
        if (c->call)
            dagi_bus_call_cancel(c->call);
        call_free(c);
    }
    free(gw);
}

const struct dagi_role dagi_role_gateway = {
    .name = "gateway",
    .help = "the public HTTP API: agents, OpenAI-compatible chat, /route",
    .init = gateway_init,
    .stop = gateway_stop,
};
