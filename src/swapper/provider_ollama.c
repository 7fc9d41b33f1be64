/* Ollama's native API (docs/api.md of ollama/ollama):
 *   POST /api/chat {model, messages, stream: true, tools?, options} answers
 *   with newline-delimited JSON objects: {"message": {"role", "content",
 *   "tool_calls"?}, "done": false} ... then {"done": true, "done_reason",
 *   "prompt_eval_count", "eval_count"}.
 * Differences from the neutral (OpenAI) shape that we map:
 *   - content is a string; images travel beside it as `images: [base64]`,
 *     so image_url parts must be data URLs and lose their prefix;
 *   - tool call arguments are JSON objects, not JSON-encoded strings, and
 *     calls have no ids (we number them);
 *   - an empty chat with keep_alive loads ("30m") or unloads (0) a model.
 * Embeddings: POST /api/embed {model, input: [strings], keep_alive,
 * dimensions?} answers {model, embeddings: [[numbers]], prompt_eval_count}
 * in input order.  Ollama loads a model for /api/chat only if it can chat,
 * so a model configured with embeddings and without chat is loaded with an
 * embed of an empty input instead, which loads it and embeds nothing.  An
 * unload is a chat with keep_alive 0 for every model: Ollama expires the
 * model before it looks at what the model can do. */
#include "swapper_internal.h"

#include <stdlib.h>
#include <string.h>

#include "core/http_client.h"
#include "core/mem.h"

#define OLLAMA_DEFAULT_BASE "http://127.0.0.1:11434"
#define OLLAMA_KEEP_ALIVE "30m"

/* OpenAI content parts -> Ollama's content string and images array. */
static int map_content(json_t *out, json_t *content, struct dagi_error *err)
{
    if (!json_is_array(content)) {
        json_object_set_new(out, "content",
                            json_string(json_is_string(content) ? json_string_value(content) : ""));
        return 0;
    }
    struct dagi_buf text;
    dagi_buf_init(&text, 64u << 20);
    json_t *images = json_array();
    int rc = 0;
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part)
    {
        const char *type = json_string_value(json_object_get(part, "type"));
        if (type && strcmp(type, "text") == 0) {
            const char *t = json_string_value(json_object_get(part, "text"));
            if (t && ((text.len && dagi_buf_append_char(&text, '\n')) ||
                      dagi_buf_append_str(&text, t))) {
                rc = dagi_error_set(err, DAGI_ETOOBIG, "message text is too large");
                goto out;
            }
        } else if (type && strcmp(type, "image_url") == 0) {
            const char *url =
                json_string_value(json_object_get(json_object_get(part, "image_url"), "url"));
            const char *comma = url ? strstr(url, ";base64,") : NULL;
            if (!url || strncmp(url, "data:", 5) != 0 || !comma) {
                rc = dagi_error_set(err, DAGI_EINVAL,
                                    "ollama takes images only inline, as base64 data URLs");
                goto out;
            }
            json_array_append_new(images, json_string(comma + strlen(";base64,")));
        }
    }
    json_object_set_new(out, "content", json_string(dagi_buf_str(&text)));
    if (json_array_size(images))
        json_object_set(out, "images", images);
out:
    json_decref(images);
    dagi_buf_release(&text);
    return rc;
}

/* OpenAI tool_calls (arguments a JSON string) -> Ollama's (an object). */
static json_t *map_tool_calls(json_t *calls)
{
    json_t *out = json_array();
    size_t i;
    json_t *call;
    json_array_foreach(calls, i, call)
    {
        json_t *fn = json_object_get(call, "function");
        const char *args = json_string_value(json_object_get(fn, "arguments"));
        json_t *obj = args ? json_loads(args, 0, NULL) : NULL;
        if (!json_is_object(obj)) {
            json_decref(obj);
            obj = json_object();
        }
        const char *name = json_string_value(json_object_get(fn, "name"));
        json_array_append_new(out, json_pack("{s:{s:s,s:o}}", "function", "name", name ? name : "",
                                             "arguments", obj));
    }
    return out;
}

static json_t *build_body(const struct dagi_model_config *model,
                          const struct dagi_chat_request *req, struct dagi_error *err)
{
    json_t *messages = json_array();
    json_t *body = NULL;
    size_t i;
    json_t *msg;
    json_array_foreach(req->messages, i, msg)
    {
        const char *role = json_string_value(json_object_get(msg, "role"));
        json_t *m = json_pack("{s:s}", "role", role ? role : "user");
        json_array_append_new(messages, m);
        if (map_content(m, json_object_get(msg, "content"), err))
            goto out;
        json_t *calls = json_object_get(msg, "tool_calls");
        if (json_array_size(calls))
            json_object_set_new(m, "tool_calls", map_tool_calls(calls));
    }
    /* keep_alive as the load's: without it every chat would shorten the
     * model's stay to Ollama's 5-minute default while the swapper still
     * counts it loaded. */
    body = json_pack("{s:s,s:O,s:b,s:s}", "model", dagi_provider_model_name(model), "messages",
                     messages, "stream", 1, "keep_alive", OLLAMA_KEEP_ALIVE);
    if (json_array_size(req->tools))
        json_object_set(body, "tools", (json_t *)req->tools);
    json_t *options = json_object();
    if (req->max_tokens > 0)
        json_object_set_new(options, "num_predict", json_integer(req->max_tokens));
    if (req->temperature >= 0)
        json_object_set_new(options, "temperature", json_real(req->temperature));
    if (json_object_size(options))
        json_object_set(body, "options", options);
    json_decref(options);
out:
    json_decref(messages);
    return body;
}

static int on_line(struct dagi_provider_call *c, const char *line, size_t len)
{
    json_error_t jerr;
    json_t *obj = json_loadb(line, len, 0, &jerr);
    int rc = 0;
    if (!json_is_object(obj)) {
        rc = dagi_provider_call_fail(c, DAGI_EUNAVAIL, "upstream sent a malformed line: %s",
                                     jerr.text);
        goto out;
    }
    const char *error = json_string_value(json_object_get(obj, "error"));
    if (error) {
        rc = dagi_provider_call_fail(c, DAGI_EUNAVAIL, "upstream error in the stream: %s", error);
        goto out;
    }
    json_t *message = json_object_get(obj, "message");
    size_t i;
    json_t *call;
    json_array_foreach(json_object_get(message, "tool_calls"), i, call)
    {
        if (!c->partial_tools)
            c->partial_tools = json_array();
        json_t *fn = json_object_get(call, "function");
        const char *name = json_string_value(json_object_get(fn, "name"));
        json_t *arguments = json_object_get(fn, "arguments");
        char *args = arguments ? json_dumps(arguments, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        char id[32];
        snprintf(id, sizeof(id), "call_%zu", json_array_size(c->partial_tools));
        json_array_append_new(c->partial_tools,
                              json_pack("{s:s,s:s,s:{s:s,s:s}}", "id", id, "type", "function",
                                        "function", "name", name ? name : "", "arguments",
                                        args ? args : "{}"));
        free(args);
        dagi_provider_call_mark_first_token(c);
    }
    json_t *content = json_object_get(message, "content");
    if (json_is_string(content))
        dagi_provider_call_delta(c, json_string_value(content), json_string_length(content));
    if (json_is_true(json_object_get(obj, "done"))) {
        c->ended = true;
        c->usage.prompt_tokens = json_integer_value(json_object_get(obj, "prompt_eval_count"));
        c->usage.completion_tokens = json_integer_value(json_object_get(obj, "eval_count"));
        const char *reason = json_string_value(json_object_get(obj, "done_reason"));
        if (reason && (strcmp(reason, "stop") == 0 || strcmp(reason, "length") == 0))
            snprintf(c->finish_reason, sizeof(c->finish_reason), "%s", reason);
        if (json_array_size(c->partial_tools)) {
            c->tool_calls = c->partial_tools;
            c->partial_tools = NULL;
            snprintf(c->finish_reason, sizeof(c->finish_reason), "tool_calls");
        }
    }
out:
    json_decref(obj);
    return rc;
}

static int feed(struct dagi_provider_call *c, const char *data, size_t len)
{
    while (len && !c->dead && !c->ended) {
        const char *nl = memchr(data, '\n', len);
        size_t take = nl ? (size_t)(nl - data) : len;
        if (dagi_buf_append(&c->line, data, take))
            return dagi_provider_call_fail(c, DAGI_ETOOBIG, "upstream line over %u bytes",
                                           DAGI_PROVIDER_MAX_EVENT);
        if (!nl)
            break;
        data += take + 1;
        len -= take + 1;
        int rc = c->line.len ? on_line(c, c->line.data, c->line.len) : 0;
        dagi_buf_reset(&c->line);
        if (rc)
            return rc;
    }
    return 0;
}

static int ollama_chat(const struct dagi_provider_env *env, const struct dagi_model_config *model,
                       const struct dagi_chat_request *req, const struct dagi_chat_callbacks *cb,
                       struct dagi_provider_call **out, struct dagi_error *err)
{
    if (!json_is_array(req->messages))
        return dagi_error_set(err, DAGI_EINVAL, "messages must be an array");
    json_t *body = build_body(model, req, err);
    if (!body)
        return err ? err->code : DAGI_EINVAL;
    struct dagi_provider_call *c = dagi_provider_call_new(env, cb);
    c->feed = feed;
    /* the model's key too: a proxy in front may want one */
    return dagi_provider_call_post(c, model, OLLAMA_DEFAULT_BASE, "/api/chat", body, NULL, out,
                                   err);
}

static void ollama_cancel(struct dagi_provider_call *call)
{
    dagi_provider_call_cancel(call);
}

/* --- embeddings --- */

static int complete_embeddings(struct dagi_provider_call *c)
{
    json_error_t jerr;
    json_t *doc = json_loadb(c->line.data ? c->line.data : "", c->line.len, 0, &jerr);
    int rc;
    if (!json_is_object(doc)) {
        rc = dagi_provider_call_fail(c, DAGI_EUNAVAIL, "upstream sent a malformed answer: %s",
                                     jerr.text);
        goto out;
    }
    const char *error = json_string_value(json_object_get(doc, "error"));
    if (error) {
        rc = dagi_provider_call_fail(c, DAGI_EUNAVAIL, "upstream error: %s", error);
        goto out;
    }
    rc = dagi_provider_call_set_embeddings(c, json_object_get(doc, "embeddings"));
    if (!rc)
        c->usage.prompt_tokens = json_integer_value(json_object_get(doc, "prompt_eval_count"));
out:
    json_decref(doc);
    return rc;
}

static int ollama_embed(const struct dagi_provider_env *env, const struct dagi_model_config *model,
                        const struct dagi_embed_request *req, const struct dagi_embed_callbacks *cb,
                        struct dagi_provider_call **out, struct dagi_error *err)
{
    /* An empty input would only load the model and answer no embeddings. */
    if (!json_array_size(req->input))
        return dagi_error_set(err, DAGI_EINVAL, "input must be a non-empty array of strings");
    /* keep_alive as the load's: without it Ollama would shorten the stay
     * to its 5 minute default while the swapper counts the model loaded. */
    json_t *body = json_pack("{s:s,s:O,s:s}", "model", dagi_provider_model_name(model), "input",
                             (json_t *)req->input, "keep_alive", OLLAMA_KEEP_ALIVE);
    if (req->dimensions > 0)
        json_object_set_new(body, "dimensions", json_integer(req->dimensions));
    struct dagi_provider_call *c = dagi_provider_call_new_embed(env, cb, req);
    c->feed = dagi_provider_feed_whole;
    c->complete = complete_embeddings;
    return dagi_provider_call_post(c, model, OLLAMA_DEFAULT_BASE, "/api/embed", body, NULL, out,
                                   err);
}

/* --- load and unload: an empty chat (or embed) with keep_alive --- */

struct keep_alive_job {
    void (*done)(void *ud, int err, const char *message);
    void *ud;
};

static void on_keep_alive_done(struct dagi_http_call *http, const struct dagi_http_response *resp,
                               void *ud)
{
    (void)http;
    struct keep_alive_job *job = ud;
    char msg[512] = "";
    int err = 0;
    if (resp->err) {
        err = resp->err == DAGI_EIO ? DAGI_EUNAVAIL : resp->err;
        snprintf(msg, sizeof(msg), "ollama: %s", resp->error_message);
    } else if (resp->status < 200 || resp->status > 299) {
        dagi_provider_error_message(resp->body, resp->body_len, resp->status, msg, sizeof(msg));
        err = resp->status >= 500 ? DAGI_EUNAVAIL : resp->status == 404 ? DAGI_ENOENT : DAGI_EINVAL;
    }
    job->done(job->ud, err, err ? msg : NULL);
    free(job);
}

static int keep_alive(const struct dagi_provider_env *env, const struct dagi_model_config *model,
                      json_t *keep, void (*done)(void *ud, int err, const char *message), void *ud)
{
    bool unload = json_is_integer(keep) && json_integer_value(keep) == 0;
    bool by_embed = !unload && !dagi_provider_model_can(model, "chat") &&
                    dagi_provider_model_can(model, "embeddings");
    json_t *body = by_embed ? json_pack("{s:s,s:s,s:o}", "model", dagi_provider_model_name(model),
                                        "input", "", "keep_alive", keep)
                            : json_pack("{s:s,s:[],s:o}", "model", dagi_provider_model_name(model),
                                        "messages", "keep_alive", keep);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    char *url =
        dagi_provider_url(model, OLLAMA_DEFAULT_BASE, by_embed ? "/api/embed" : "/api/chat");
    char *auth = dagi_provider_auth_header(model);
    const char *headers[] = {"Content-Type: application/json", auth, NULL};
    struct keep_alive_job *job = dagi_xcalloc(1, sizeof(*job));
    job->done = done;
    job->ud = ud;
    struct dagi_http_request_opts o = {
        .method = "POST",
        .url = url,
        .headers = headers,
        .body = text,
        .body_len = strlen(text),
        .connect_timeout_ms = env->connect_timeout_ms,
        .timeout_ms = env->total_timeout_ms, /* a load is slow: allow it a whole answer's time */
        .on_done = on_keep_alive_done,
        .ud = job,
    };
    int rc = env->http ? dagi_http_client_request(env->http, &o, NULL) : DAGI_EINVAL;
    if (rc)
        free(job);
    free(text);
    free(url);
    free(auth);
    return rc;
}

static int ollama_load(const struct dagi_provider_env *env, const struct dagi_model_config *model,
                       void (*done)(void *ud, int err, const char *message), void *ud)
{
    return keep_alive(env, model, json_string(OLLAMA_KEEP_ALIVE), done, ud);
}

static int ollama_unload(const struct dagi_provider_env *env, const struct dagi_model_config *model,
                         void (*done)(void *ud, int err, const char *message), void *ud)
{
    return keep_alive(env, model, json_integer(0), done, ud);
}

const struct dagi_provider_ops dagi_provider_ollama = {
    .name = "ollama",
    .caps = DAGI_PROVIDER_CAN_STREAM | DAGI_PROVIDER_CAN_TOOLS | DAGI_PROVIDER_CAN_VISION |
            DAGI_PROVIDER_CAN_LOAD | DAGI_PROVIDER_CAN_EMBED,
    .chat = ollama_chat,
    .cancel = ollama_cancel,
    .load = ollama_load,
    .unload = ollama_unload,
    .embed = ollama_embed,
};
