/* Private to the gateway role: the state shared by gateway.c (dagi's own
 * routes) and gateway_openai.c (the OpenAI-compatible routes). */
#ifndef DAGI_GATEWAY_INTERNAL_H
#define DAGI_GATEWAY_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "bus/bus.h"
#include "core/http_server.h"
#include "core/mem.h"
#include "node/gate.h"
#include "node/node.h"

#define GW_INFER_SUBJECT "dagi.router.infer"
#define GW_AGENTS_SUBJECT "dagi.router.agents"
/* Embeddings name a model, not an agent: no routing, no prompt, so the
 * gateway asks the swapper itself. */
#define GW_EMBED_SUBJECT "dagi.swapper.embed"
/* A model may think for a while before its first token; between tokens the
 * router's own idle limits apply, ours only catches a vanished router. */
#define GW_FIRST_REPLY_MS 120000u
#define GW_IDLE_MS 120000u
/* Bodies carry images as data URLs: room for the 8 MiB image cap so that the
 * gateway, not the server's 1 MB default, answers an oversized one. */
#define GW_MAX_BODY (16u * 1024 * 1024)

struct dagi_metric;
struct gw_call;

struct gw_state {
    struct dagi_node *node;
    struct dagi_metric *overhead_seconds; /* label: route */
    struct gw_call *calls;                /* in flight, for stop */
    int64_t started_s;                    /* "created" of /v1/models entries */
};

/* How a finished or streaming router call is turned into HTTP. */
struct gw_call_ops {
    const char *route;   /* metric label */
    const char *subject; /* GW_INFER_SUBJECT, GW_AGENTS_SUBJECT or GW_EMBED_SUBJECT */
    void (*on_chunk)(struct gw_call *c, json_t *chunk);
    /* err 0: result is the router's final object (may be NULL if unparsable). */
    void (*on_done)(struct gw_call *c, int err, json_t *result, const char *message);
};

/* One HTTP request waiting on the router. */
struct gw_call {
    struct gw_call *prev, *next;
    struct gw_state *gw;
    const struct gw_call_ops *ops;
    struct dagi_http_req *req;   /* NULL once the client left */
    struct dagi_bus_call *call;  /* NULL once done or cancelled */
    int64_t overhead_ns;         /* gateway time so far (excludes the router wait) */
    bool in_callback;            /* a close during a callback defers the free */
    bool dead;
    /* per-route */
    bool stream;
    bool started;       /* the SSE stream has begun */
    bool include_usage; /* OpenAI stream_options.include_usage */
    char *model;        /* OpenAI: the agent (or, for embeddings, model) id echoed back */
    char id[48];        /* OpenAI: chatcmpl-... */
    int64_t created;
};

/* Sends `body` (a reference is stolen) to the router; t0 is the monotonic
 * time the handler started (for the overhead metric).  On failure answers
 * 503 itself. */
/* {"principal", "subjects", "team"} of the request's caller (gateway_caller.c),
 * with the teams the identity graph knows for it. */
/* A quota refusal (DAGI_EQUOTA) answered as 429 with the router's JSON body
 * and Retry-After; false (nothing sent) for any other error. */
bool gw_respond_quota(struct dagi_http_req *req, int err, const char *message);
json_t *gw_caller_json(struct dagi_http_req *req, const char *const *teams, size_t n_teams);
/* Resolves the caller's teams (the identity graph's cache; a miss waits on
 * the pool, never on the loop), sets the body's "caller" and starts the
 * router call; takes body.  Every route that asks the router goes here. */
void gw_ask_router(struct gw_state *gw, struct dagi_http_req *req, const struct gw_call_ops *ops,
                   json_t *body, bool stream, int64_t t0, const struct gw_call *proto);
void gw_call_start(struct gw_state *gw, struct dagi_http_req *req, const struct gw_call_ops *ops,
                   json_t *body, bool stream, int64_t t0, struct gw_call *proto);

/* HTTP status for a router error. */
int gw_status_of(int err);

/* Adds the OpenAI-compatible routes. */
int gw_openai_register(struct gw_state *gw, struct dagi_error *err);
/* POST /v1/hooks/{agent_id} (gateway_hooks.c). */
int gw_hooks_register(struct gw_state *gw, struct dagi_error *err);
/* /v1/agents/{id}/infer's answer (JSON or SSE), for routes that answer the same. */
extern const struct gw_call_ops gw_infer_ops;
/* Sets out.user_id: the caller's own user for a user key or JWT (another
 * one is refused with 403), any the admin names.  false: answered. */
bool gw_user_id(struct dagi_http_req *req, json_t *in, json_t *out);

#endif
