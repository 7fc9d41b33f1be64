/* Model providers: one const ops table per provider (STYLE.md's backend
 * pattern), all asynchronous on the node's loop through the shared HTTP
 * client (core/http_client.h), never blocking it.
 *
 *   openai   any OpenAI-compatible API: /chat/completions (streaming SSE,
 *            tool calls, image content parts), /embeddings
 *   ollama   Ollama's native API: /api/chat (NDJSON stream), /api/embed, load
 *            and unload through keep_alive, /api/ps
 *   builtin  offline: streams a deterministic answer that says it is the
 *            offline provider, and embeds text as a hashed bag of words;
 *            needs no network and no key
 *
 * A chat request and its stream are provider-neutral; each provider maps
 * them to and from its wire format (written from the providers' public API
 * documentation).
 */
#ifndef DAGI_SWAPPER_PROVIDER_H
#define DAGI_SWAPPER_PROVIDER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct event_base;
struct dagi_http_client;
struct dagi_model_config;
struct dagi_provider_call;

/* The neutral request: OpenAI's chat shape, which every provider maps from.
 *   messages  [{role: system|user|assistant|tool, content: string or
 *              [{type: text, text} | {type: image_url, image_url: {url}}],
 *              tool_calls?, tool_call_id?}]
 *   tools     [{type: function, function: {name, description, parameters}}] or NULL */
struct dagi_chat_request {
    const json_t *messages;
    const json_t *tools;
    int64_t max_tokens;   /* 0 = provider default */
    double temperature;   /* < 0 = provider default */
    const char *trace_id;
    /* false: nobody reads the answer before it is complete, so a provider
     * that can may ask for it whole (one response, not a stream of events);
     * it is still delivered as one delta then done. */
    bool stream;
};

struct dagi_usage {
    int64_t prompt_tokens;
    int64_t completion_tokens;
};

/* What a call reports, on the loop thread, in order: any number of deltas,
 * then exactly one done (unless cancelled first). */
struct dagi_chat_callbacks {
    /* A piece of the answer's text, as it arrives. */
    void (*on_delta)(void *ud, const char *text, size_t len);
    /* err 0: finished; finish_reason "stop" | "length" | "tool_calls";
     * tool_calls is a JSON array in OpenAI's shape (borrowed) or NULL.
     * err != 0: failed; `started` says whether any delta was delivered
     * (the router falls back only when it was not). */
    void (*on_done)(void *ud, int err, const char *message, const struct dagi_usage *usage,
                    const char *finish_reason, const json_t *tool_calls, bool started);
    void *ud;
};

/* An embedding request: input is a JSON array of 1..DAGI_EMBED_MAX_INPUTS
 * non-empty strings, already checked (dagi_swapper_embed_input). */
struct dagi_embed_request {
    const json_t *input;
    int64_t dimensions; /* 0 = the model's own size */
    const char *trace_id;
};

/* Exactly one on_done, on the loop thread, never before embed() returned
 * (unless cancelled first).  err 0: embeddings is a JSON array with one
 * array of numbers per input, in input order, all of one length (borrowed:
 * take a reference to keep it); usage->prompt_tokens as the provider counts
 * them (completion_tokens is 0). */
struct dagi_embed_callbacks {
    void (*on_done)(void *ud, int err, const char *message, const json_t *embeddings,
                    const struct dagi_usage *usage);
    void *ud;
};

/* Caps on an embedding request, the same for every provider. */
#define DAGI_EMBED_MAX_INPUTS 256
#define DAGI_EMBED_MAX_INPUT_BYTES (64u * 1024)
#define DAGI_EMBED_MAX_DIMENSIONS 65536

struct dagi_provider_env {
    struct event_base *base;
    struct dagi_http_client *http;
    unsigned connect_timeout_ms, first_token_timeout_ms, total_timeout_ms;
};

struct dagi_provider_ops {
    const char *name;
    unsigned caps; /* DAGI_PROVIDER_CAN_* */
    int (*chat)(const struct dagi_provider_env *env, const struct dagi_model_config *model,
                const struct dagi_chat_request *req, const struct dagi_chat_callbacks *cb,
                struct dagi_provider_call **out, struct dagi_error *err);
    /* Cancels: no callback runs afterwards; the upstream request is aborted. */
    void (*cancel)(struct dagi_provider_call *call);
    /* Optional (NULL = always loaded): make sure the model is in memory,
     * and release it.  done(ud, err) on the loop. */
    int (*load)(const struct dagi_provider_env *env, const struct dagi_model_config *model,
                void (*done)(void *ud, int err, const char *message), void *ud);
    int (*unload)(const struct dagi_provider_env *env, const struct dagi_model_config *model,
                  void (*done)(void *ud, int err, const char *message), void *ud);
    /* Optional (NULL = no embeddings): one embedding per input, cancelled
     * with cancel() like a chat.  The model must already be loaded. */
    int (*embed)(const struct dagi_provider_env *env, const struct dagi_model_config *model,
                 const struct dagi_embed_request *req, const struct dagi_embed_callbacks *cb,
                 struct dagi_provider_call **out, struct dagi_error *err);
};

enum {
    DAGI_PROVIDER_CAN_STREAM = 1u << 0,
    DAGI_PROVIDER_CAN_TOOLS = 1u << 1,
    DAGI_PROVIDER_CAN_VISION = 1u << 2,
    DAGI_PROVIDER_CAN_LOAD = 1u << 3,  /* local models: load/unload */
    DAGI_PROVIDER_CAN_EMBED = 1u << 4, /* embed is set */
};

extern const struct dagi_provider_ops dagi_provider_openai;
extern const struct dagi_provider_ops dagi_provider_ollama;
extern const struct dagi_provider_ops dagi_provider_builtin;

/* The ops for a model's provider (config enum index). */
const struct dagi_provider_ops *dagi_provider_for(const struct dagi_model_config *model);

/* Whether the model's configured capabilities include `name` (chat,
 * embeddings, ...); a model with none listed is a chat model, as the
 * configuration's default says. */
bool dagi_provider_model_can(const struct dagi_model_config *model, const char *name);

#endif
