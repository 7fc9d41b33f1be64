/* Any OpenAI-compatible API: POST <base_url>/chat/completions.  A caller
 * that reads the answer only when it is complete gets it whole
 * (`stream: false`, one chat.completion object: choices[0].message with its
 * content and complete tool_calls, and usage); one JSON parse instead of one
 * per token.  Otherwise `stream: true`, read as Server-Sent Events.  Each event is a
 * chat.completion.chunk; `data: [DONE]` ends the stream.  With
 * stream_options.include_usage the last chunk before [DONE] has empty
 * `choices` and the `usage` object.  Tool calls arrive as fragments under
 * choices[0].delta.tool_calls[], keyed by `index`: the first fragment of a
 * call carries its id and function.name, later ones pieces of
 * function.arguments, which we concatenate.
 *
 * Embeddings: POST <base_url>/embeddings {model, input: [strings],
 * encoding_format: "float", dimensions?} answers {object: "list", data:
 * [{object: "embedding", index, embedding: [numbers]}], model, usage:
 * {prompt_tokens, total_tokens}}.  The reference does not promise that data
 * comes in input order, so each vector goes where its `index` says. */
#include "swapper_internal.h"

#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

#define OPENAI_DEFAULT_BASE "https://api.openai.com/v1"
#define MAX_TOOL_ARGUMENTS (1u << 20)

static int append_string(json_t *obj, const char *key, const char *piece)
{
    const char *old = json_string_value(json_object_get(obj, key));
    size_t old_len = old ? strlen(old) : 0, len = strlen(piece);
    if (old_len + len > MAX_TOOL_ARGUMENTS)
        return DAGI_ETOOBIG;
    char *joined = dagi_xmalloc(old_len + len + 1);
    memcpy(joined, old ? old : "", old_len);
    memcpy(joined + old_len, piece, len + 1);
    json_object_set_new(obj, key, json_string(joined));
    free(joined);
    return 0;
}

static int add_tool_fragment(struct dagi_provider_call *c, json_t *frag, size_t position)
{
    if (!c->partial_tools)
        c->partial_tools = json_array();
    json_t *index = json_object_get(frag, "index");
    size_t i = json_is_integer(index) && json_integer_value(index) >= 0
                   ? (size_t)json_integer_value(index)
                   : position;
    if (i > 127)
        return dagi_provider_call_fail(c, DAGI_ETOOBIG, "tool call index %zu is too large", i);
    while (json_array_size(c->partial_tools) <= i)
        json_array_append_new(c->partial_tools,
                              json_pack("{s:s,s:s,s:{s:s,s:s}}", "id", "", "type", "function",
                                        "function", "name", "", "arguments", ""));
    json_t *call = json_array_get(c->partial_tools, i);
    json_t *fn = json_object_get(call, "function");
    const char *id = json_string_value(json_object_get(frag, "id"));
    if (id && *id)
        json_object_set_new(call, "id", json_string(id));
    json_t *ffn = json_object_get(frag, "function");
    const char *name = json_string_value(json_object_get(ffn, "name"));
    const char *args = json_string_value(json_object_get(ffn, "arguments"));
    if ((name && append_string(fn, "name", name)) || (args && append_string(fn, "arguments", args)))
        return dagi_provider_call_fail(c, DAGI_ETOOBIG, "tool call arguments over %u bytes",
                                       MAX_TOOL_ARGUMENTS);
    dagi_provider_call_mark_first_token(c);
    return 0;
}

static int on_chunk(struct dagi_provider_call *c, json_t *chunk)
{
    json_t *error = json_object_get(chunk, "error");
    if (error) {
        const char *m = json_string_value(json_object_get(error, "message"));
        return dagi_provider_call_fail(c, DAGI_EUNAVAIL, "upstream error in the stream: %s",
                                       m ? m : "(no message)");
    }
    json_t *usage = json_object_get(chunk, "usage");
    if (json_is_object(usage)) {
        c->usage.prompt_tokens = json_integer_value(json_object_get(usage, "prompt_tokens"));
        c->usage.completion_tokens =
            json_integer_value(json_object_get(usage, "completion_tokens"));
    }
    json_t *choice = json_array_get(json_object_get(chunk, "choices"), 0);
    if (!choice)
        return 0;
    const char *finish = json_string_value(json_object_get(choice, "finish_reason"));
    if (finish)
        snprintf(c->finish_reason, sizeof(c->finish_reason), "%s", finish);
    json_t *delta = json_object_get(choice, "delta");
    json_t *tools = json_object_get(delta, "tool_calls");
    size_t i;
    json_t *frag;
    json_array_foreach(tools, i, frag)
    {
        int rc = add_tool_fragment(c, frag, i);
        if (rc)
            return rc;
    }
    json_t *content = json_object_get(delta, "content");
    if (json_is_string(content))
        dagi_provider_call_delta(c, json_string_value(content), json_string_length(content));
    return 0;
}

static int on_event(const struct dagi_sse_event *ev, void *ud)
{
    struct dagi_provider_call *c = ud;
    if (c->ended)
        return 0;
    if (strcmp(ev->data, "[DONE]") == 0) {
        c->ended = true;
        if (json_array_size(c->partial_tools)) {
            c->tool_calls = c->partial_tools;
            c->partial_tools = NULL;
        }
        return 0;
    }
    if (!ev->data_len)
        return 0;
    json_error_t jerr;
    json_t *chunk = json_loadb(ev->data, ev->data_len, 0, &jerr);
    if (!json_is_object(chunk)) {
        json_decref(chunk);
        return dagi_provider_call_fail(c, DAGI_EUNAVAIL, "upstream sent a malformed chunk: %s",
                                       jerr.text);
    }
    int rc = on_chunk(c, chunk);
    json_decref(chunk);
    return rc ? rc : c->dead ? 1 : 0;
}

/* The whole answer, collected by dagi_provider_feed_whole. */
static int complete_whole(struct dagi_provider_call *c)
{
    json_error_t jerr;
    json_t *doc = json_loadb(c->line.data ? c->line.data : "", c->line.len, 0, &jerr);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return dagi_provider_call_fail(c, DAGI_EUNAVAIL, "upstream sent a malformed answer: %s",
                                       jerr.text);
    }
    json_t *error = json_object_get(doc, "error");
    json_t *usage = json_object_get(doc, "usage");
    json_t *choice = json_array_get(json_object_get(doc, "choices"), 0);
    json_t *message = json_object_get(choice, "message");
    int rc = 0;
    if (error || !json_is_object(message)) {
        const char *m = json_string_value(json_object_get(error, "message"));
        rc = dagi_provider_call_fail(c, DAGI_EUNAVAIL, "upstream answer without a message: %s",
                                     m ? m : "(no choices)");
        goto out;
    }
    if (json_is_object(usage)) {
        c->usage.prompt_tokens = json_integer_value(json_object_get(usage, "prompt_tokens"));
        c->usage.completion_tokens =
            json_integer_value(json_object_get(usage, "completion_tokens"));
    }
    const char *finish = json_string_value(json_object_get(choice, "finish_reason"));
    if (finish)
        snprintf(c->finish_reason, sizeof(c->finish_reason), "%s", finish);
    json_t *tools = json_object_get(message, "tool_calls");
    if (json_array_size(tools))
        c->tool_calls = json_incref(tools);
    json_t *content = json_object_get(message, "content");
    if (json_is_string(content))
        dagi_provider_call_delta(c, json_string_value(content), json_string_length(content));
    c->ended = true;
out:
    json_decref(doc);
    return rc;
}

static int feed(struct dagi_provider_call *c, const char *data, size_t len)
{
    int rc = dagi_sse_feed(&c->sse, data, len, on_event, c);
    if (rc == DAGI_ETOOBIG && !c->abort_err)
        return dagi_provider_call_fail(c, DAGI_ETOOBIG, "upstream event over %u bytes",
                                       DAGI_PROVIDER_MAX_EVENT);
    return rc < 0 ? rc : 0;
}

static json_t *build_body(const struct dagi_model_config *model,
                          const struct dagi_chat_request *req)
{
    json_t *body = req->stream ? json_pack("{s:s,s:b,s:{s:b}}", "model",
                                           dagi_provider_model_name(model), "stream", 1,
                                           "stream_options", "include_usage", 1)
                               : json_pack("{s:s,s:b}", "model", dagi_provider_model_name(model),
                                           "stream", 0);
    /* The neutral shape is OpenAI's: messages (image parts included) pass
     * through untouched. */
    json_object_set(body, "messages", (json_t *)req->messages);
    if (json_array_size(req->tools))
        json_object_set(body, "tools", (json_t *)req->tools);
    if (req->max_tokens > 0)
        json_object_set_new(body, "max_tokens", json_integer(req->max_tokens));
    if (req->temperature >= 0)
        json_object_set_new(body, "temperature", json_real(req->temperature));
    return body;
}

static int openai_chat(const struct dagi_provider_env *env, const struct dagi_model_config *model,
                       const struct dagi_chat_request *req, const struct dagi_chat_callbacks *cb,
                       struct dagi_provider_call **out, struct dagi_error *err)
{
    if (!json_is_array(req->messages))
        return dagi_error_set(err, DAGI_EINVAL, "messages must be an array");
    struct dagi_provider_call *c = dagi_provider_call_new(env, cb);
    c->feed = req->stream ? feed : dagi_provider_feed_whole;
    c->complete = req->stream ? NULL : complete_whole;
    return dagi_provider_call_post(c, model, OPENAI_DEFAULT_BASE, "/chat/completions",
                                   build_body(model, req),
                                   req->stream ? "text/event-stream" : "application/json", out,
                                   err);
}

/* --- embeddings --- */

static int complete_embeddings(struct dagi_provider_call *c)
{
    json_error_t jerr;
    json_t *doc = json_loadb(c->line.data ? c->line.data : "", c->line.len, 0, &jerr);
    json_t *data = json_object_get(doc, "data"), *ordered = NULL;
    int rc;
    if (!json_is_object(doc) || !json_is_array(data)) {
        rc = dagi_provider_call_fail(c, DAGI_EUNAVAIL, "upstream sent a malformed answer: %s",
                                     json_is_object(doc) ? "no data array" : jerr.text);
        goto out;
    }
    size_t n = json_array_size(data), i;
    if (n != c->embed_inputs) {
        rc = dagi_provider_call_fail(c, DAGI_EUNAVAIL,
                                     "upstream returned %zu embeddings for %zu inputs", n,
                                     c->embed_inputs);
        goto out;
    }
    ordered = json_array();
    for (i = 0; i < n; i++)
        json_array_append_new(ordered, json_null());
    json_t *item;
    json_array_foreach(data, i, item)
    {
        json_t *index = json_object_get(item, "index");
        json_int_t at = json_is_integer(index) ? json_integer_value(index) : -1;
        if (at < 0 || (size_t)at >= n || !json_is_null(json_array_get(ordered, (size_t)at))) {
            rc = dagi_provider_call_fail(c, DAGI_EUNAVAIL,
                                         "upstream data[%zu] has a missing, repeated or "
                                         "out-of-range index",
                                         i);
            goto out;
        }
        json_array_set(ordered, (size_t)at, json_object_get(item, "embedding"));
    }
    rc = dagi_provider_call_set_embeddings(c, ordered);
    if (rc)
        goto out;
    json_t *usage = json_object_get(doc, "usage");
    c->usage.prompt_tokens = json_integer_value(json_object_get(usage, "prompt_tokens"));
out:
    json_decref(ordered);
    json_decref(doc);
    return rc;
}

static int openai_embed(const struct dagi_provider_env *env, const struct dagi_model_config *model,
                        const struct dagi_embed_request *req, const struct dagi_embed_callbacks *cb,
                        struct dagi_provider_call **out, struct dagi_error *err)
{
    if (!json_array_size(req->input))
        return dagi_error_set(err, DAGI_EINVAL, "input must be a non-empty array of strings");
    json_t *body = json_pack("{s:s,s:O,s:s}", "model", dagi_provider_model_name(model), "input",
                             (json_t *)req->input, "encoding_format", "float");
    if (req->dimensions > 0)
        json_object_set_new(body, "dimensions", json_integer(req->dimensions));
    struct dagi_provider_call *c = dagi_provider_call_new_embed(env, cb, req);
    c->feed = dagi_provider_feed_whole;
    c->complete = complete_embeddings;
    return dagi_provider_call_post(c, model, OPENAI_DEFAULT_BASE, "/embeddings", body,
                                   "application/json", out, err);
}

static void openai_cancel(struct dagi_provider_call *call)
{
    dagi_provider_call_cancel(call);
}

const struct dagi_provider_ops dagi_provider_openai = {
    .name = "openai",
    .caps = DAGI_PROVIDER_CAN_STREAM | DAGI_PROVIDER_CAN_TOOLS | DAGI_PROVIDER_CAN_VISION |
            DAGI_PROVIDER_CAN_EMBED,
    .chat = openai_chat,
    .cancel = openai_cancel,
    .load = NULL,
    .unload = NULL,
    .embed = openai_embed,
};
