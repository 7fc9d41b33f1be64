/* dagi.router.infer (router.h): choose the models for a request, build the
 * prompt, and stream the swapper's answer back, falling back to the next
 * model while no token has reached the caller. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "auditlog/audit.h"
#include "privacy/privacy.h"
#include "quota/quota_store.h"
#include "router/router_internal.h"

#define SWAPPER_SUBJECT "dagi.swapper.infer"
#define MAX_ANSWER (16u << 20)
/* Profile + rule + fallbacks + builtin; longer lists are cut (builtin kept). */
#define MAX_MODELS 16

struct dagi_router_infer {
    struct dagi_router_infer *prev, *next;
    struct dagi_router_state *rt;
    struct dagi_cplane_snap *snap; /* referenced: the model ids below point into it */
    struct dagi_bus_req *req;
    struct dagi_bus_call *call; /* the swapper call in flight */
    const struct dagi_agent *agent;
    const char *models[MAX_MODELS];
    size_t n_models, cur;
    json_t *call_body; /* the swapper request; "model" is set per attempt */
    struct dagi_buf text;
    bool stream, started;
    const char *reason; /* the policy's (static) */
    bool caller_tools;                /* the caller's own tools: calls go back to it */
    struct dagi_router_tools *tools;  /* a round of server-side calls in flight */
    int64_t rounds;                   /* tool rounds done */
    size_t round_start;               /* where this round's text starts in `text` */
    json_int_t tokens_in, tokens_out; /* over every round */
    int last_err;
    char last_message[256];
    int64_t start_ns, deadline_ms;
    char trace_id[64];
    struct dagi_router_admit admit; /* the caller, its grants, its reservation */
    char quota_user[160];           /* whose budget: the caller's user */
    bool admitting;                 /* the budget check is on the worker pool */
    bool detached;                  /* answered and unlinked while admitting */
    bool rt_gone;                   /* ... and the role stopped meanwhile */
    bool content_free;              /* confidential: nothing of the text in logs */
};

static unsigned ms_of(int64_t v)
{
    return v <= 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (unsigned)v;
}

static void infer_unlink(struct dagi_router_infer *in)
{
    struct dagi_router_state *rt = in->rt;
    if (!in->prev && rt->infers != in)
        return; /* not linked (detached) */
    if (in->prev)
        in->prev->next = in->next;
    else
        rt->infers = in->next;
    if (in->next)
        in->next->prev = in->prev;
    in->prev = in->next = NULL;
}

/* The request's own memory; nothing of the role's. */
static void infer_release(struct dagi_router_infer *in)
{
    if (in->call)
        dagi_bus_call_cancel(in->call);
    dagi_router_tools_cancel(in->tools);
    json_decref(in->call_body);
    dagi_buf_release(&in->text);
    dagi_cplane_snap_unref(in->snap);
    free(in);
}

static void infer_free(struct dagi_router_infer *in)
{
    infer_unlink(in);
    if (in->admitting) {
        /* The budget's answer is still on its way to `in`: it is freed
         * when that arrives (on_admitted). */
        in->detached = true;
        return;
    }
    dagi_router_admit_clear(in->rt, &in->admit);
    infer_release(in);
}

static void infer_fail(struct dagi_router_infer *in, int err, const char *message)
{
    dagi_metric_inc(in->rt->errors, (const char *[]){in->agent->id, dagi_bus_err_name(err)});
    dagi_bus_reply_error(in->req, err, "agent %s: %s", in->agent->id, message);
    infer_free(in);
}

/* --- model choice --- */

static void add_model(struct dagi_router_infer *in, const char *id)
{
    if (!id)
        return;
    for (size_t i = 0; i < in->n_models; i++)
        if (!strcmp(in->models[i], id))
            return;
    /* The last slot is kept for builtin so the list always ends with it. */
    if (in->n_models < MAX_MODELS - 1 || !strcmp(id, "builtin"))
        in->models[in->n_models++] = id;
}

static void add_models(struct dagi_router_infer *in, const struct dagi_cfg_strings *ids)
{
    for (size_t i = 0; i < ids->count; i++)
        add_model(in, ids->items[i]);
}

/* A reasoning model that needs an API key is only worth trying when the key
 * is there; otherwise every request would pay for a failed attempt. */
static bool model_usable(const struct dagi_config *c, const char *id)
{
    if (!strcmp(id, "builtin"))
        return true;
    const struct dagi_model_config *m = c->swapper.models.items;
    for (size_t i = 0; i < c->swapper.models.count; i++) {
        if (strcmp(m[i].id, id))
            continue;
        if (!m[i].api_key_env)
            return true;
        const char *key = getenv(m[i].api_key_env);
        return key && *key;
    }
    return false;
}

static void choose_models(struct dagi_router_infer *in, const struct dagi_config *c,
                          const struct dagi_route_facts *facts)
{
    const struct dagi_agent *a = in->agent;
    const struct dagi_rule *rule = dagi_registry_route(a, in->snap->rules, facts);
    if (rule) {
        add_model(in, rule->use.model);
        add_models(in, &rule->use.fallbacks);
    } else if (facts->has_image && a->model.vision) {
        add_model(in, a->model.vision);
    } else if (a->model.reasoning && model_usable(c, a->model.reasoning)) {
        add_model(in, a->model.reasoning);
    } else {
        add_model(in, a->model.default_model);
    }
    add_models(in, &a->model.fallbacks);
    add_model(in, "builtin");
}

/* --- the prompt --- */

static bool is_image_part(const json_t *part)
{
    const char *type = json_string_value(json_object_get(part, "type"));
    return type && strstr(type, "image");
}

static bool messages_have_image(const json_t *messages)
{
    size_t i, j;
    json_t *m, *part;
    json_array_foreach(messages, i, m)
    {
        json_array_foreach(json_object_get(m, "content"), j, part)
        {
            if (is_image_part(part))
                return true;
        }
    }
    return false;
}

/* Bytes of the last user message's text, for the message_length fact. */
static size_t last_user_length(const json_t *messages)
{
    for (size_t i = json_array_size(messages); i-- > 0;) {
        const json_t *m = json_array_get(messages, i);
        const char *role = json_string_value(json_object_get(m, "role"));
        if (!role || strcmp(role, "user"))
            continue;
        const json_t *content = json_object_get(m, "content");
        if (json_is_string(content))
            return json_string_length(content);
        size_t n = 0, j;
        json_t *part;
        json_array_foreach(content, j, part)
        {
            n += json_string_length(json_object_get(part, "text"));
        }
        return n;
    }
    return 0;
}

static void add_system(json_t *messages, const char *text, size_t len)
{
    if (text && len)
        json_array_append_new(messages, json_pack("{s:s,s:s%}", "role", "system", "content", text,
                                                  len));
}

/* The messages for the swapper: the registry's prompt always comes first, so
 * a caller cannot replace the agent's identity, only add to it. */
static json_t *build_messages(const struct dagi_router_infer *in, const json_t *body,
                              int64_t history_max)
{
    json_t *out = json_array();
    add_system(out, in->agent->prompt, in->agent->prompt_len);
    const json_t *given = json_object_get(body, "messages");
    if (json_is_array(given)) {
        json_array_extend(out, (json_t *)given);
        return out;
    }
    const json_t *sys = json_object_get(body, "system_prompt");
    add_system(out, json_string_value(sys), json_string_length(sys));
    const json_t *history = json_object_get(body, "history");
    size_t n = json_array_size(history);
    size_t from = (int64_t)n > history_max ? n - (size_t)history_max : 0;
    for (size_t i = from; i < n; i++) {
        json_t *h = json_array_get(history, i);
        const char *role = json_string_value(json_object_get(h, "role"));
        json_t *content = json_object_get(h, "content");
        if (role && content)
            json_array_append_new(out, json_pack("{s:s,s:O}", "role", role, "content", content));
    }
    json_t *msg = json_object_get(body, "message");
    const json_t *images = json_object_get(body, "images");
    if (!json_array_size(images)) {
        json_array_append_new(out, json_pack("{s:s,s:O}", "role", "user", "content", msg));
        return out;
    }
    json_t *parts = json_array();
    if (json_string_length(msg))
        json_array_append_new(parts, json_pack("{s:s,s:O}", "type", "text", "text", msg));
    size_t i;
    json_t *url;
    json_array_foreach(images, i, url)
    {
        if (json_is_string(url))
            json_array_append_new(parts, json_pack("{s:s,s:{s:O}}", "type", "image_url",
                                                   "image_url", "url", url));
    }
    json_array_append_new(out, json_pack("{s:s,s:o}", "role", "user", "content", parts));
    return out;
}

/* --- the swapper call --- */

static void try_model(struct dagi_router_infer *in);

static void on_chunk(struct dagi_bus_call *call, uint64_t seq, const void *data, size_t len,
                     void *ud)
{
    (void)call, (void)seq;
    struct dagi_router_infer *in = ud;
    json_t *doc = json_loadb(data, len, 0, NULL);
    json_t *delta = json_object_get(doc, "delta");
    if (json_is_string(delta) && json_string_length(delta)) {
        in->started = true;
        dagi_buf_append(&in->text, json_string_value(delta), json_string_length(delta));
        /* Same shape both ways: pass the swapper's chunk on untouched. */
        if (in->stream)
            dagi_bus_stream_chunk(in->req, data, len);
    }
    json_decref(doc);
}

static void send_final(struct dagi_router_infer *in, json_t *res, const char *finish,
                       const json_t *tool_calls)
{
    json_int_t pin = in->tokens_in, pout = in->tokens_out;
    const char *model = json_string_value(json_object_get(res, "model"));
    const char *backend = json_string_value(json_object_get(res, "backend"));
    json_t *final = json_pack(
        "{s:s%,s:s,s:s,s:I,s:{s:I,s:I},s:s,s:s,s:s}", "response",
        in->text.data ? in->text.data : "", in->text.len, "model",
        model ? model : in->models[in->cur], "backend", backend ? backend : "", "tokens_used",
        pin + pout, "usage", "prompt_tokens", pin, "completion_tokens", pout, "finish_reason",
        finish ? finish : "stop", "policy", "FULL", "reason", in->reason);
    /* The caller's own tools are the caller's to run: hand the calls back. */
    if (json_array_size(tool_calls))
        json_object_set(final, "tool_calls", (json_t *)tool_calls);
    dagi_bus_reply_json(in->req, final);
    json_decref(final);
    /* No usage from the upstream: charge an estimate (4 bytes a token),
     * flagged as such. */
    bool estimated = pin + pout == 0 && in->text.len > 0;
    dagi_router_admit_settle(in->rt, &in->admit, pin, estimated ? (json_int_t)(in->text.len + 3) / 4 : pout,
                             estimated, model ? model : in->models[in->cur]);

    const char *labels[] = {in->agent->id};
    dagi_metric_add(in->rt->tokens_in, labels, (double)pin);
    dagi_metric_add(in->rt->tokens_out, labels, (double)pout);
    dagi_metric_observe(in->rt->latency, labels,
                        (double)(dagi_clock_mono_ns() - in->start_ns) / 1e9);
    infer_free(in);
}

/* A round of server-side tool calls is answered: ask the same model again
 * with the results. */
static void on_tools_done(void *ud, json_t *tool_messages)
{
    struct dagi_router_infer *in = ud;
    json_array_extend(json_object_get(in->call_body, "messages"), tool_messages);
    in->round_start = in->text.len;
    try_model(in);
}

static bool permit_tool(void *ud, const char *tool)
{
    struct dagi_router_infer *in = ud;
    return dagi_router_admit_tool(in->rt, in->snap, &in->admit, in->agent, tool, in->trace_id);
}

/* Takes the reference to res. */
static void on_final(struct dagi_router_infer *in, json_t *res)
{
    json_t *usage = json_object_get(res, "usage");
    in->tokens_in += json_integer_value(json_object_get(usage, "prompt_tokens"));
    in->tokens_out += json_integer_value(json_object_get(usage, "completion_tokens"));
    const char *finish = json_string_value(json_object_get(res, "finish_reason"));
    /* A caller that takes no chunks gets the text in "content". */
    const char *content = json_string_value(json_object_get(res, "content"));
    if (content && in->text.len == in->round_start)
        dagi_buf_append_str(&in->text, content);
    json_t *tool_calls = json_object_get(res, "tool_calls");
    if (in->caller_tools || !finish || strcmp(finish, "tool_calls") ||
        !json_array_size(tool_calls)) {
        send_final(in, res, finish, in->caller_tools ? tool_calls : NULL);
        json_decref(res);
        return;
    }
    /* The agent's own tools: run them here. */
    const struct dagi_config *c = dagi_node_cfg(in->rt->node);
    if (in->rounds >= c->router.max_tool_rounds) {
        if (!in->text.len) {
            json_decref(res);
            char detail[128];
            snprintf(detail, sizeof(detail),
                     "the model still called tools after %lld rounds and gave no text",
                     (long long)in->rounds);
            infer_fail(in, DAGI_EUNAVAIL, detail);
            return;
        }
        send_final(in, res, "stop", NULL);
        json_decref(res);
        return;
    }
    in->rounds++;
    json_t *said = in->text.len > in->round_start ? json_stringn(in->text.data + in->round_start,
                                                                 in->text.len - in->round_start)
                                                  : NULL;
    json_array_append_new(json_object_get(in->call_body, "messages"),
                          json_pack("{s:s,s:o,s:O}", "role", "assistant", "content",
                                    said ? said : json_null(), "tool_calls", tool_calls));
    json_incref(tool_calls);
    json_decref(res);
    dagi_router_tools_run(in->rt, in->agent, tool_calls, in->trace_id, permit_tool,
                          on_tools_done, in, &in->tools);
    json_decref(tool_calls);
}

static void on_done(struct dagi_bus_call *call, int err, const void *data, size_t len,
                    const char *error_message, void *ud)
{
    struct dagi_router_infer *in = ud;
    in->call = NULL; /* the bus frees it after this callback */
    if (!err) {
        on_final(in, dagi_bus_call_json(call, data, len));
        return;
    }
    const char *model = in->models[in->cur];
    if (in->started || in->rounds) {
        /* Half an answer is out: another model would start over mid-text.
         * After a tool round the same model answers (its calls are in the
         * messages), so there is no fallback either. */
        char detail[512];
        snprintf(detail, sizeof(detail), "the stream failed %s (model %s: %s)",
                 in->started ? "after the first token" : "after a tool round", model,
                 error_message ? error_message : dagi_strerror(err));
        infer_fail(in, err, detail);
        return;
    }
    in->last_err = err;
    snprintf(in->last_message, sizeof(in->last_message), "%s: %s", model,
             error_message ? error_message : dagi_strerror(err));
    /* A provider's message may quote the prompt: not logged in
     * confidential mode, only the error's kind. */
    dagi_log_warn(in->trace_id, "router: model failed before the first token, falling back",
                  "agent", in->agent->id, "model", model, "error",
                  in->content_free ? dagi_bus_err_name(err) : in->last_message);
    in->cur++;
    if (in->cur < in->n_models)
        dagi_metric_inc(in->rt->fallbacks, (const char *[]){in->agent->id});
    try_model(in);
}

static void try_model(struct dagi_router_infer *in)
{
    while (in->cur < in->n_models) {
        unsigned timeout = 0;
        if (in->deadline_ms) {
            int64_t left = in->deadline_ms - dagi_clock_now_ms();
            if (left <= 0) {
                in->last_err = DAGI_ETIMEDOUT;
                snprintf(in->last_message, sizeof(in->last_message), "the deadline passed");
                break;
            }
            timeout = ms_of(left);
        }
        json_object_set_new(in->call_body, "model", json_string(in->models[in->cur]));
        /* A document handed to the bus must not change: the next attempt
         * sets another model, so this one goes as a shallow copy. */
        json_t *doc = json_copy(in->call_body);
        const struct dagi_config *c = dagi_node_cfg(in->rt->node);
        /* The swapper enforces its own first-token and total budgets and
         * answers with an error when they pass; ours only catches a swapper
         * that went away, so give it a little more. */
        unsigned first = ms_of(c->swapper.first_token_timeout + 5000);
        unsigned idle = ms_of(c->swapper.total_timeout + 5000);
        struct dagi_bus_call_opts opts = {
            .subject = SWAPPER_SUBJECT,
            .doc = doc,
            .trace_id = in->trace_id,
            .timeout_ms = timeout && timeout < first ? timeout : first,
            .idle_timeout_ms = timeout && timeout < idle ? timeout : idle,
            /* A caller that takes the answer whole gets it whole from the
             * swapper too (and the swapper from the model, where it can). */
            .on_chunk = in->stream ? on_chunk : NULL,
            .on_done = on_done,
            .ud = in,
        };
        int rc = dagi_bus_request(dagi_node_bus(in->rt->node), &opts, &in->call);
        json_decref(doc);
        if (!rc)
            return;
        in->call = NULL;
        in->last_err = rc;
        snprintf(in->last_message, sizeof(in->last_message), "%s: %s", in->models[in->cur],
                 dagi_strerror(rc));
        if (in->rounds)
            break; /* after a tool round only the same model can go on */
        in->cur++;
    }
    int err = in->last_err == DAGI_ETIMEDOUT ? DAGI_ETIMEDOUT : DAGI_EUNAVAIL;
    char detail[512];
    snprintf(detail, sizeof(detail), "%s (last: %s)",
             in->rounds ? "the model could not be asked again after a tool round"
                        : "every model failed before the first token",
             in->last_message);
    infer_fail(in, err, detail);
}

static void on_admitted(void *ud, int rc, const char *message, const char *short_text);

/* Confidential mode: the Privacy Gate over the messages, then the model. */
static void on_consent(void *ud, int rc, bool granted)
{
    struct dagi_router_infer *in = ud;
    in->admitting = false;
    if (in->detached) {
        on_admitted(in, DAGI_ECANCELED, NULL, NULL); /* frees it */
        return;
    }
    (void)rc; /* an unanswered lookup is no consent */
    json_t *msgs = json_object_get(in->call_body, "messages");
    /* The gate keeps the leading system messages whole: only the agent's
     * own prompt may be one.  A caller's system messages are the caller's
     * content and are summarised with the rest. */
    size_t first = in->agent->prompt_len ? 1 : 0, i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        if (i >= first && !strcmp(json_string_value(json_object_get(m, "role")) ?: "", "system"))
            json_object_set_new(m, "role", json_string("user"));
    }
    json_t *seen = NULL;
    struct dagi_privacy_report rep;
    struct dagi_error err = {0};
    if (dagi_privacy_gate_messages(msgs, DAGI_PRIVACY_CONFIDENTIAL, granted, 0, &seen, &rep,
                                   &err)) {
        infer_fail(in, DAGI_EINVAL, err.message);
        return;
    }
    json_object_set_new(in->call_body, "messages", seen);
    in->content_free = true;
    dagi_metric_inc(in->rt->privacy, (const char *[]){in->agent->id,
                                                      rep.sanitized ? "sanitized" : "consented"});
    /* Recorded with figures only: the mode keeps content out of audit. */
    json_t *meta = json_pack("{s:b,s:b,s:I,s:I}", "consent", granted, "sanitized", rep.sanitized,
                             "redacted", (json_int_t)dagi_pii_counts_total(&rep.redacted), "tokens_out",
                             (json_int_t)rep.tokens_out);
    char subject[160];
    snprintf(subject, sizeof(subject), "agent:%s", in->agent->id);
    dagi_audit_emit(in->rt->node,
                    &(struct dagi_audit_event){.service = "router",
                                               .action = "confidential_use",
                                               .actor = in->admit.authz.principal,
                                               .subject = subject,
                                               .decision = "allow",
                                               .trace_id = in->trace_id[0] ? in->trace_id : NULL,
                                               .metadata = meta});
    json_decref(meta);
    try_model(in);
}

static void on_admitted(void *ud, int rc, const char *message, const char *short_text)
{
    (void)short_text;
    struct dagi_router_infer *in = ud;
    in->admitting = false;
    if (in->detached) {
        /* Answered while the budget was asked (the caller left, or the
         * role stopped): only the request's own memory is left. */
        if (in->rt_gone) {
            dagi_quota_reservation_free(in->admit.quota); /* its hold expires */
            json_decref(in->admit.caller);
        } else {
            dagi_router_admit_clear(in->rt, &in->admit);
        }
        infer_release(in);
        return;
    }
    if (rc == DAGI_EQUOTA) {
        dagi_metric_inc(in->rt->errors, (const char *[]){in->agent->id, "quota_exceeded"});
        dagi_bus_reply_error(in->req, DAGI_EQUOTA, "%s", message);
        infer_free(in);
        return;
    }
    if (rc) {
        infer_fail(in, rc, message ? message : dagi_strerror(rc));
        return;
    }
    if (in->admit.mode == DAGI_AUTHZ_MODE_CONFIDENTIAL) {
        /* Consent decides what the model sees: ask the store. */
        in->admitting = true;
        dagi_router_admit_consent(in->rt, in->quota_user[0] ? in->quota_user
                                                            : in->admit.authz.principal,
                                  in->agent, on_consent, in);
        return;
    }
    try_model(in);
}

static void on_caller_cancel(void *ud)
{
    struct dagi_router_infer *in = ud;
    dagi_metric_inc(in->rt->errors, (const char *[]){in->agent->id, "cancelled"});
    infer_free(in); /* cancels the swapper call: the model stops generating */
}

/* --- the handler --- */

void dagi_router_on_infer(struct dagi_bus_req *req, const struct dagi_bus_msg *msg, void *ud)
{
    struct dagi_router_state *rt = ud;
    if (rt->draining) {
        dagi_bus_reply_error(req, DAGI_EUNAVAIL, "the router is draining");
        return;
    }
    json_t *body = dagi_bus_msg_json(msg);
    const char *agent_id = json_string_value(json_object_get(body, "agent_id"));
    const json_t *messages = json_object_get(body, "messages");
    const json_t *message = json_object_get(body, "message");
    if (!json_is_object(body) || !agent_id ||
        !(json_is_array(messages) || json_is_string(message))) {
        dagi_bus_reply_error(req, DAGI_EINVAL,
                             "the request must be a JSON object with agent_id and message or "
                             "messages");
        json_decref(body);
        return;
    }
    /* One snapshot for the whole request: agent, rules, policy, budgets. */
    struct dagi_cplane_snap *snap = dagi_cplane_current(rt->cp);
    const struct dagi_agent *agent = snap->agents ? dagi_registry_find(snap->agents, agent_id) : NULL;
    if (!agent || !agent->enabled) {
        dagi_bus_reply_error(req, agent ? DAGI_EPERM : DAGI_ENOENT, "agent \"%.128s\" %s",
                             agent_id, agent ? "is disabled" : "does not exist");
        json_decref(body);
        return;
    }

    /* May this caller use this agent, in this mode?  Before anything is
     * said, even an ACK. */
    struct dagi_router_admit admit;
    struct dagi_error perr = {0};
    if (dagi_router_admit_caller(&admit, body, &perr) ||
        dagi_router_admit_check(rt, snap, agent, body, msg->trace_id, &admit, &perr)) {
        dagi_metric_inc(rt->errors, (const char *[]){agent->id, dagi_bus_err_name(perr.code)});
        dagi_bus_reply_error(req, perr.code, "%s", perr.message);
        dagi_router_admit_clear(rt, &admit);
        json_decref(body);
        return;
    }

    /* Before any model is asked: answer at once, or not at all? */
    struct dagi_behavior_decision decision;
    if (dagi_router_policy_decide(rt, agent, body, &decision, &perr)) {
        dagi_bus_reply_error(req, perr.code, "%s", perr.message);
        dagi_router_admit_clear(rt, &admit);
        json_decref(body);
        return;
    }
    if (decision.level != DAGI_BEHAVIOR_FULL) {
        dagi_router_policy_answer(req, msg->stream, agent, &decision, msg->trace_id);
        dagi_router_admit_clear(rt, &admit);
        json_decref(body);
        return;
    }

    struct dagi_router_infer *in = dagi_xcalloc(1, sizeof(*in));
    in->rt = rt;
    in->reason = decision.reason;
    in->snap = dagi_cplane_snap_ref(snap);
    in->req = req;
    in->agent = agent;
    in->stream = msg->stream;
    in->deadline_ms = msg->deadline_ms;
    in->start_ns = dagi_clock_mono_ns();
    snprintf(in->trace_id, sizeof(in->trace_id), "%s", msg->trace_id ? msg->trace_id : "");
    in->admit = admit;
    in->admit.authz.subjects = in->admit.subjects; /* it pointed into the copy */
    /* Whose budget: the user the request speaks for (the admin may speak
     * for anyone), else the caller. */
    const char *uid = json_string_value(json_object_get(body, "user_id"));
    if (uid && *uid)
        snprintf(in->quota_user, sizeof(in->quota_user), "%s%s", strchr(uid, ':') ? "" : "user:",
                 uid);
    dagi_buf_init(&in->text, MAX_ANSWER);
    in->next = rt->infers;
    if (in->next)
        in->next->prev = in;
    rt->infers = in;

    const struct dagi_config *c = dagi_node_cfg(rt->node);
    json_t *msgs = build_messages(in, body, c->router.history_max);
    const char *channel = json_string_value(json_object_get(body, "channel"));
    const json_t *metadata = json_object_get(body, "metadata");
    struct dagi_route_facts facts = {
        .agent = agent->id,
        .channel = channel ? channel : "http",
        .task_type = json_string_value(json_object_get(body, "task_type")),
        .has_image = json_array_size(json_object_get(body, "images")) > 0 ||
                     messages_have_image(messages),
        .has_audio = false,
        .message_length = json_is_string(message) ? json_string_length(message)
                                                  : last_user_length(messages),
        .metadata = json_is_object(metadata) ? metadata : NULL,
    };
    choose_models(in, c, &facts);

    in->call_body = json_pack("{s:o}", "messages", msgs);
    const char *pass[] = {"tools", "max_tokens", "temperature"};
    for (size_t i = 0; i < sizeof(pass) / sizeof(pass[0]); i++) {
        json_t *v = json_object_get(body, pass[i]);
        if (v && !json_is_null(v))
            json_object_set(in->call_body, pass[i], v);
    }
    /* The caller's tools are the caller's; without them the model gets the
     * agent's own, which the router runs. */
    in->caller_tools = json_array_size(json_object_get(body, "tools")) > 0;
    if (!in->caller_tools) {
        json_t *spec = dagi_router_tools_spec(agent);
        if (spec)
            json_object_set_new(in->call_body, "tools", spec);
    }
    /* The budget holds what the answer may cost: max_tokens, else the
     * router's default; settled to the real usage afterwards. */
    json_int_t max_tokens = json_integer_value(json_object_get(body, "max_tokens"));
    if (max_tokens <= 0)
        max_tokens = c->router.reserve_tokens;
    json_decref(body);
    dagi_bus_req_on_cancel(req, on_caller_cancel, in);
    in->admitting = true;
    dagi_router_admit_reserve(rt, in->snap, &in->admit, agent, in->quota_user, max_tokens,
                              in->trace_id, on_admitted, in);
}

void dagi_router_infers_stop(struct dagi_router_state *rt)
{
    while (rt->infers) {
        struct dagi_router_infer *in = rt->infers;
        in->rt_gone = in->admitting; /* its budget answer finds no role */
        infer_fail(in, DAGI_EUNAVAIL, "the router is stopping");
    }
}
