/* The OpenAI-compatible routes: POST /v1/chat/completions, GET /v1/models
 * and POST /v1/embeddings.
 *
 * For chat completions "model" is a dagi agent id: an OpenAI client pointed
 * at dagi talks to the agents, with their prompts and routing, not to raw
 * models.  An embedding has no agent to go through (no prompt, no policy
 * on a vector), so for /v1/embeddings "model" is a swapper model id and the
 * request goes to `dagi.swapper.embed`.  The shapes
 * follow OpenAI's chat completions API closely enough for its SDKs: the
 * chat.completion object, chat.completion.chunk SSE lines ending in
 * `data: [DONE]`, the usage chunk with empty choices when
 * stream_options.include_usage, and {"error":{message,type,param,code}}. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "gateway_internal.h"

#define MAX_MESSAGE (64u * 1024)

static json_t *oai_error_body(const char *type, const char *code, const char *param,
                              const char *message)
{
    return json_pack("{s:{s:s,s:s,s:o,s:o}}", "error", "message", message, "type", type, "param",
                     param ? json_string(param) : json_null(), "code",
                     code ? json_string(code) : json_null());
}

static void oai_error(struct dagi_http_req *req, int status, const char *type, const char *code,
                      const char *param, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void oai_error(struct dagi_http_req *req, int status, const char *type, const char *code,
                      const char *param, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    dagi_http_respond_json(req, status, oai_error_body(type, code, param, msg));
}

static void invalid(struct dagi_http_req *req, const char *param, const char *message)
{
    oai_error(req, 400, "invalid_request_error", "invalid_value", param, "%s", message);
}

/* The OpenAI error for a router error; status through *status. */
static json_t *oai_error_of(int err, const char *model, const char *message, int *status)
{
    char buf[512];
    *status = gw_status_of(err);
    if (!message)
        message = dagi_strerror(err);
    switch (*status) {
    case 404:
        snprintf(buf, sizeof(buf), "The model `%.128s` does not exist or you do not have access "
                                   "to it.", model ? model : "");
        return oai_error_body("invalid_request_error", "model_not_found", "model", buf);
    case 403:
        return oai_error_body("permission_error", "model_not_available", "model", message);
    case 400:
        return oai_error_body("invalid_request_error", "invalid_value", NULL, message);
    case 413:
        return oai_error_body("invalid_request_error", "request_too_large", NULL, message);
    case 504:
        return oai_error_body("timeout", "timeout", NULL, message);
    case 503:
        return oai_error_body("server_error", "service_unavailable", NULL, message);
    default:
        return oai_error_body("server_error", "upstream_error", NULL, message);
    }
}

/* --- streaming --- */

static json_t *chunk_new(struct gw_call *c, json_t *delta, const char *finish_reason)
{
    json_t *ch = json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:o,s:n,s:o}]}", "id", c->id, "object",
                           "chat.completion.chunk", "created", (json_int_t)c->created, "model",
                           c->model, "choices", "index", 0, "delta", delta, "logprobs",
                           "finish_reason",
                           finish_reason ? json_string(finish_reason) : json_null());
    if (c->include_usage) /* OpenAI: null on every chunk but the last */
        json_object_set_new(ch, "usage", json_null());
    return ch;
}

static void send_json(struct gw_call *c, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (s)
        dagi_http_sse_send(c->req, NULL, s); /* a closed client shows up as on_close */
    free(s);
}

static void send_role(struct gw_call *c)
{
    if (c->started)
        return;
    c->started = true;
    send_json(c, chunk_new(c, json_pack("{s:s,s:s}", "role", "assistant", "content", ""), NULL));
}

static void chat_chunk(struct gw_call *c, json_t *chunk)
{
    json_t *delta = json_object_get(chunk, "delta");
    if (!c->stream || !json_is_string(delta) || !json_string_length(delta))
        return;
    send_role(c);
    if (c->req)
        send_json(c, chunk_new(c, json_pack("{s:O}", "content", delta), NULL));
}

static json_t *usage_of(json_t *result)
{
    json_t *u = json_object_get(result, "usage");
    json_int_t p = json_integer_value(json_object_get(u, "prompt_tokens"));
    json_int_t k = json_integer_value(json_object_get(u, "completion_tokens"));
    return json_pack("{s:I,s:I,s:I}", "prompt_tokens", p, "completion_tokens", k, "total_tokens",
                     p + k);
}

static const char *finish_of(json_t *result, bool tools)
{
    const char *f = json_string_value(json_object_get(result, "finish_reason"));
    if (tools)
        return "tool_calls";
    return f && *f ? f : "stop";
}

/* Tool calls in OpenAI's shape; in a stream each carries its index. */
static json_t *tool_calls_of(json_t *result, bool indexed)
{
    json_t *tc = json_object_get(result, "tool_calls");
    if (!json_is_array(tc) || !json_array_size(tc))
        return NULL;
    json_t *out = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(tc, i, e) {
        json_t *x = json_deep_copy(e);
        if (!json_object_get(x, "type"))
            json_object_set_new(x, "type", json_string("function"));
        if (indexed)
            json_object_set_new(x, "index", json_integer((json_int_t)i));
        json_array_append_new(out, x);
    }
    return out;
}

/* The common answer - text, no tool calls - written straight into the
 * response: the same JSON json_pack and json_dumps would give, without
 * building it as values first (this is on every non-streamed request). */
static void respond_text_completion(struct gw_call *c, json_t *result, const char *text)
{
    json_t *resp = json_object_get(result, "response");
    size_t len = json_is_string(resp) ? json_string_length(resp) : 0;
    json_t *u = json_object_get(result, "usage");
    long long p = (long long)json_integer_value(json_object_get(u, "prompt_tokens"));
    long long k = (long long)json_integer_value(json_object_get(u, "completion_tokens"));
    const char *finish = finish_of(result, false);
    struct dagi_buf b;
    dagi_buf_init(&b, len * 6 + strlen(c->model) * 6 + strlen(finish) * 6 + 512);
    dagi_buf_appendf(&b, "{\"id\":\"%s\",\"object\":\"chat.completion\",\"created\":%lld,"
                         "\"model\":\"",
                     c->id, (long long)c->created);
    dagi_buf_append_json_escaped(&b, c->model, strlen(c->model));
    dagi_buf_append_str(&b, "\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                            "\"content\":\"");
    dagi_buf_append_json_escaped(&b, text ? text : "", len);
    dagi_buf_append_str(&b, "\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"");
    dagi_buf_append_json_escaped(&b, finish, strlen(finish));
    dagi_buf_appendf(&b,
                     "\"}],\"usage\":{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,"
                     "\"total_tokens\":%lld}}",
                     p, k, p + k);
    dagi_http_respond(c->req, 200, "application/json", b.data, b.len);
    dagi_buf_release(&b);
}

static void chat_done(struct gw_call *c, int err, json_t *result, const char *message)
{
    if (!err && !json_is_object(result)) {
        err = DAGI_EPARSE;
        message = "the router's answer is not JSON";
    }
    if (err) {
        if (!c->started && gw_respond_quota(c->req, err, message))
            return;
        int status;
        json_t *e = oai_error_of(err, c->model, message, &status);
        if (c->started) { /* mid-stream: OpenAI sends the error as a data line */
            send_json(c, e);
            dagi_http_stream_end(c->req);
        } else {
            dagi_http_respond_json(c->req, status, e);
        }
        return;
    }
    if (c->stream) {
        send_role(c);
        json_t *tc = tool_calls_of(result, true);
        if (tc)
            send_json(c, chunk_new(c, json_pack("{s:o}", "tool_calls", tc), NULL));
        send_json(c, chunk_new(c, json_object(), finish_of(result, tc != NULL)));
        if (c->include_usage)
            send_json(c, json_pack("{s:s,s:s,s:I,s:s,s:[],s:o}", "id", c->id, "object",
                                   "chat.completion.chunk", "created", (json_int_t)c->created,
                                   "model", c->model, "choices", "usage", usage_of(result)));
        dagi_http_sse_send(c->req, NULL, "[DONE]");
        dagi_http_stream_end(c->req);
        return;
    }
    json_t *tc = tool_calls_of(result, false);
    const char *text = json_string_value(json_object_get(result, "response"));
    if (!tc) {
        respond_text_completion(c, result, text);
        return;
    }
    json_t *msg = json_pack("{s:s,s:o,s:n}", "role", "assistant", "content",
                            text && (*text || !tc) ? json_string(text)
                            : tc                    ? json_null()
                                                    : json_string(""),
                            "refusal");
    if (tc)
        json_object_set_new(msg, "tool_calls", tc);
    dagi_http_respond_json(
        c->req, 200,
        json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:o,s:n,s:s}],s:o}", "id", c->id, "object",
                  "chat.completion", "created", (json_int_t)c->created, "model", c->model,
                  "choices", "index", 0, "message", msg, "logprobs", "finish_reason",
                  finish_of(result, tc != NULL), "usage", usage_of(result)));
}

static const struct gw_call_ops chat_ops = {"openai", GW_INFER_SUBJECT, chat_chunk, chat_done};

/* The text of the last user message: the router's rules and policy look at
 * `message`; the model gets the whole `messages`. */
static const char *last_user_text(json_t *messages, json_t **owned)
{
    *owned = NULL;
    for (size_t i = json_array_size(messages); i-- > 0;) {
        json_t *m = json_array_get(messages, i);
        if (strcmp(json_string_value(json_object_get(m, "role")), "user"))
            continue;
        json_t *content = json_object_get(m, "content");
        if (json_is_string(content))
            return json_string_value(content);
        if (!json_is_array(content))
            return NULL;
        /* Parts: join the text ones. */
        char *buf = NULL;
        size_t len = 0, k;
        FILE *f = open_memstream(&buf, &len);
        json_t *p;
        json_array_foreach(content, k, p) {
            const char *t = json_string_value(json_object_get(p, "text"));
            if (t)
                fprintf(f, "%s%s", len || ftell(f) ? "\n" : "", t);
        }
        fclose(f);
        *owned = json_string(buf ? buf : "");
        free(buf);
        return json_string_value(*owned);
    }
    return NULL;
}

static bool valid_messages(struct dagi_http_req *req, json_t *messages)
{
    if (!json_is_array(messages) || !json_array_size(messages)) {
        invalid(req, "messages", "messages must be a non-empty array");
        return false;
    }
    size_t i;
    json_t *m;
    json_array_foreach(messages, i, m) {
        const char *role = json_string_value(json_object_get(m, "role"));
        json_t *content = json_object_get(m, "content");
        char param[64];
        snprintf(param, sizeof(param), "messages[%zu]", i);
        if (!json_is_object(m) || !role ||
            (strcmp(role, "system") && strcmp(role, "developer") && strcmp(role, "user") &&
             strcmp(role, "assistant") && strcmp(role, "tool"))) {
            oai_error(req, 400, "invalid_request_error", "invalid_value", param,
                      "%s.role must be system, developer, user, assistant or tool", param);
            return false;
        }
        if (content && !json_is_null(content) && !json_is_string(content) &&
            !json_is_array(content)) {
            oai_error(req, 400, "invalid_request_error", "invalid_type", param,
                      "%s.content must be a string or an array of parts", param);
            return false;
        }
    }
    return true;
}

static void on_chat(struct dagi_http_req *req, void *ud)
{
    struct gw_state *gw = ud;
    int64_t t0 = dagi_clock_mono_ns();
    size_t len;
    const char *body = dagi_http_req_body(req, &len);
    json_error_t jerr;
    json_t *in = json_loadb(body ? body : "", body ? len : 0, 0, &jerr), *out = NULL, *owned = NULL;
    struct gw_call proto = {0};
    if (!json_is_object(in)) {
        invalid(req, NULL, "We could not parse the JSON body of your request: expected an "
                           "object.");
        goto out;
    }
    const char *model = json_string_value(json_object_get(in, "model"));
    if (!model || !*model) {
        oai_error(req, 400, "invalid_request_error", "missing_required_parameter", "model",
                  "you must provide a model parameter");
        goto out;
    }
    json_t *messages = json_object_get(in, "messages");
    if (!valid_messages(req, messages))
        goto out;
    json_t *v = json_object_get(in, "stream");
    if (v && !json_is_null(v) && !json_is_boolean(v)) {
        invalid(req, "stream", "stream must be a boolean");
        goto out;
    }
    proto.stream = json_is_true(v);
    v = json_object_get(in, "stream_options");
    if (v && !json_is_null(v)) {
        json_t *iu = json_object_get(v, "include_usage");
        if (!json_is_object(v) || (iu && !json_is_boolean(iu))) {
            invalid(req, "stream_options", "stream_options must be {include_usage: boolean}");
            goto out;
        }
        proto.include_usage = json_is_true(iu);
    }
    out = json_object();
    json_t *mt = json_object_get(in, "max_completion_tokens");
    if (!mt || json_is_null(mt))
        mt = json_object_get(in, "max_tokens");
    if (mt && !json_is_null(mt)) {
        if (!json_is_integer(mt) || json_integer_value(mt) < 1) {
            invalid(req, "max_tokens", "max_tokens must be a positive integer");
            goto out;
        }
        json_object_set(out, "max_tokens", mt);
    }
    v = json_object_get(in, "temperature");
    if (v && !json_is_null(v)) {
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 2) {
            invalid(req, "temperature", "temperature must be a number from 0 to 2");
            goto out;
        }
        json_object_set(out, "temperature", v);
    }
    v = json_object_get(in, "tools");
    if (v && !json_is_null(v)) {
        if (!json_is_array(v)) {
            invalid(req, "tools", "tools must be an array");
            goto out;
        }
        if (json_array_size(v))
            json_object_set(out, "tools", v);
    }
    if (json_object_get(in, "tool_choice"))
        json_object_set(out, "tool_choice", json_object_get(in, "tool_choice"));
    const char *user = json_string_value(json_object_get(in, "user"));
    if (user)
        json_object_set_new(out, "user_id", json_string(user));
    const char *text = last_user_text(messages, &owned);
    if (text && strlen(text) > MAX_MESSAGE) {
        oai_error(req, 413, "invalid_request_error", "request_too_large", "messages",
                  "the last user message is over 64 KiB");
        goto out;
    }
    json_object_set_new(out, "agent_id", json_string(model));
    json_object_set(out, "messages", messages);
    if (text)
        json_object_set_new(out, "message", json_string(text));
    json_object_set_new(out, "channel", json_string("openai"));
    proto.model = strdup(model);
    proto.created = dagi_clock_now_ms() / 1000;
    snprintf(proto.id, sizeof(proto.id), "chatcmpl-%.32s", dagi_http_req_trace_id(req));
    gw_ask_router(gw, req, &chat_ops, out, proto.stream, t0, &proto);
    out = NULL;
out:
    json_decref(owned);
    json_decref(out);
    json_decref(in);
}

/* --- GET /v1/models --- */

static void models_chunk(struct gw_call *c, json_t *chunk)
{
    (void)c;
    (void)chunk;
}

static void models_done(struct gw_call *c, int err, json_t *result, const char *message)
{
    json_t *agents = json_object_get(result, "agents");
    if (!err && !json_is_array(agents)) {
        err = DAGI_EPARSE;
        message = "the router's agent list is not JSON";
    }
    if (err) {
        int status;
        json_t *e = oai_error_of(err, NULL, message, &status);
        dagi_http_respond_json(c->req, status, e);
        return;
    }
    json_t *data = json_array();
    size_t i;
    json_t *a;
    json_array_foreach(agents, i, a) {
        const char *id = json_string_value(json_object_get(a, "id"));
        if (!id || json_is_false(json_object_get(a, "enabled")))
            continue;
        json_array_append_new(data, json_pack("{s:s,s:s,s:I,s:s}", "id", id, "object", "model",
                                              "created", (json_int_t)c->gw->started_s,
                                              "owned_by", "dagi"));
    }
    dagi_http_respond_json(c->req, 200, json_pack("{s:s,s:o}", "object", "list", "data", data));
}

static const struct gw_call_ops models_ops = {"models", GW_AGENTS_SUBJECT, models_chunk,
                                              models_done};

static void on_models(struct dagi_http_req *req, void *ud)
{
    gw_call_start(ud, req, &models_ops, json_object(), false, dagi_clock_mono_ns(), NULL);
}

/* --- POST /v1/embeddings --- */

static void embeddings_chunk(struct gw_call *c, json_t *chunk)
{
    (void)c;
    (void)chunk; /* one reply, never streamed */
}

static void embeddings_done(struct gw_call *c, int err, json_t *result, const char *message)
{
    json_t *vectors = json_object_get(result, "embeddings");
    if (!err && !json_is_array(vectors)) {
        err = DAGI_EPARSE;
        message = "the swapper's answer has no embeddings";
    }
    if (err) {
        int status;
        json_t *e = oai_error_of(err, c->model, message, &status);
        dagi_http_respond_json(c->req, status, e);
        return;
    }
    json_t *data = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(vectors, i, v) {
        json_array_append_new(data, json_pack("{s:s,s:I,s:O}", "object", "embedding", "index",
                                              (json_int_t)i, "embedding", v));
    }
    json_int_t p =
        json_integer_value(json_object_get(json_object_get(result, "usage"), "prompt_tokens"));
    json_t *doc = json_pack("{s:s,s:o,s:s,s:{s:I,s:I}}", "object", "list", "data", data, "model",
                            c->model, "usage", "prompt_tokens", p, "total_tokens", p);
    /* Embeddings are float32 at every provider, and 9 significant digits
     * give a float32 back exactly; jansson's default 17 would double the
     * size of the biggest answers this gateway sends. */
    char *text = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(doc);
    if (text)
        dagi_http_respond(c->req, 200, "application/json", text, strlen(text));
    else
        oai_error(c->req, 500, "server_error", NULL, NULL, "could not serialize the embeddings");
    free(text);
}

static const struct gw_call_ops embeddings_ops = {"embeddings", GW_EMBED_SUBJECT, embeddings_chunk,
                                                  embeddings_done};

/* input: a string or an array of strings.  OpenAI also takes token arrays;
 * the swapper's providers take text, so those are refused here.  The
 * counts and sizes are the swapper's to judge, except the bus's own cap,
 * which the request could not pass to reach it.  *bytes: the text's size. */
static bool valid_input(struct dagi_http_req *req, json_t *input, size_t *bytes)
{
    const char *shape = "input must be a non-empty string or a non-empty array of non-empty "
                        "strings (token arrays are not supported)";
    *bytes = 0;
    if (json_is_string(input)) {
        *bytes = json_string_length(input);
    } else if (json_is_array(input) && json_array_size(input)) {
        size_t i;
        json_t *s;
        json_array_foreach(input, i, s) {
            if (!json_is_string(s) || !json_string_length(s)) {
                oai_error(req, 400, "invalid_request_error", "invalid_type", "input",
                          "input[%zu] must be a non-empty string", i);
                return false;
            }
            *bytes += json_string_length(s);
        }
    }
    if (!*bytes) {
        invalid(req, "input", shape);
        return false;
    }
    return true;
}

static void on_embeddings(struct dagi_http_req *req, void *ud)
{
    struct gw_state *gw = ud;
    int64_t t0 = dagi_clock_mono_ns();
    size_t len, bytes;
    const char *body = dagi_http_req_body(req, &len);
    json_t *in = json_loadb(body ? body : "", body ? len : 0, 0, NULL), *out = NULL;
    struct gw_call proto = {0};
    if (!json_is_object(in)) {
        invalid(req, NULL, "We could not parse the JSON body of your request: expected an "
                           "object.");
        goto out;
    }
    const char *model = json_string_value(json_object_get(in, "model"));
    if (!model || !*model) {
        oai_error(req, 400, "invalid_request_error", "missing_required_parameter", "model",
                  "you must provide a model parameter");
        goto out;
    }
    json_t *input = json_object_get(in, "input");
    if (!valid_input(req, input, &bytes))
        goto out;
    size_t cap = (size_t)dagi_node_cfg(gw->node)->bus.max_payload;
    if (bytes > cap) {
        oai_error(req, 413, "invalid_request_error", "request_too_large", "input",
                  "input is %zu bytes; the bus carries at most %zu", bytes, cap);
        goto out;
    }
    json_t *v = json_object_get(in, "encoding_format");
    if (v && !json_is_null(v) && (!json_is_string(v) || strcmp(json_string_value(v), "float"))) {
        invalid(req, "encoding_format", "encoding_format must be \"float\" (base64 is not "
                                        "supported)");
        goto out;
    }
    out = json_pack("{s:s,s:O}", "model", model, "input", input);
    v = json_object_get(in, "dimensions");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1) {
            invalid(req, "dimensions", "dimensions must be a positive integer");
            goto out;
        }
        json_object_set(out, "dimensions", v);
    }
    proto.model = strdup(model);
    gw_call_start(gw, req, &embeddings_ops, out, false, t0, &proto);
    out = NULL;
out:
    json_decref(out);
    json_decref(in);
}

/* The gate checks the shape first.  OpenAI's clients send many fields dagi
 * does not use (logprobs, seed, user, ...): unknown fields are ignored, as
 * OpenAI-compatible servers do; the known ones are typed and capped. */
static const struct dagi_body_field chat_fields[] = {
    {"model", DAGI_BODY_STRING, true, 128},
    {"messages", DAGI_BODY_ARRAY, true, 1000},
    {"stream", DAGI_BODY_BOOL, false, 0},
    {"stream_options", DAGI_BODY_OBJECT, false, 8},
    {"tools", DAGI_BODY_ARRAY, false, 128},
    {"max_tokens", DAGI_BODY_INT, false, 0},
    {"max_completion_tokens", DAGI_BODY_INT, false, 0},
    {"temperature", DAGI_BODY_NUMBER, false, 0},
    {"user", DAGI_BODY_STRING, false, 256},
};
static const struct dagi_body_rules chat_body = {chat_fields, DAGI_ARRAY_LEN(chat_fields), false};
static const struct dagi_gate_rules chat_rules = {.body = &chat_body};
static const struct dagi_body_field embed_fields[] = {
    {"model", DAGI_BODY_STRING, true, 128},
    {"input", DAGI_BODY_STRING_OR_ARRAY, true, 0},
    {"dimensions", DAGI_BODY_INT, false, 0},
    {"encoding_format", DAGI_BODY_STRING, false, 16},
};
static const struct dagi_body_rules embed_body = {embed_fields, DAGI_ARRAY_LEN(embed_fields),
                                                  false};
static const struct dagi_gate_rules embed_rules = {.body = &embed_body};

int gw_openai_register(struct gw_state *gw, struct dagi_error *err)
{
    struct dagi_http_server *srv = dagi_node_http(gw->node);
    const struct dagi_http_route routes[] = {
        {"POST", "/v1/chat/completions", on_chat, gw, 0, GW_MAX_BODY, "openai", &chat_rules},
        {"GET", "/v1/models", on_models, gw, 0, 0, "openai", NULL},
        {"POST", "/v1/embeddings", on_embeddings, gw, 0, GW_MAX_BODY, "openai", &embed_rules},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        int rc = dagi_http_server_add_route(srv, &routes[i]);
        if (rc)
            return dagi_error_set(err, rc, "gateway: cannot add route %s %s", routes[i].method,
                                  routes[i].pattern);
    }
    return DAGI_OK;
}
