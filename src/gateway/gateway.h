/* The gateway role (seed 2.1): the public HTTP API in front of the router.
 *
 *   POST /v1/agents/{id}/infer   dagi's own API (JSON, or SSE with "stream")
 *   POST /v1/chat/completions    OpenAI-compatible (model = agent id)
 *   GET  /v1/models              OpenAI-compatible list of agents
 *   POST /v1/embeddings          OpenAI-compatible (model = swapper model id;
 *                                asks dagi.swapper.embed, not the router)
 *   POST /v1/hooks/{agent_id}    signed webhooks: an outside event as a message
 *   POST /route, GET /health     the original router's contract
 *
 * Every route passes the node's gate (node/gate.h: API key, JWT or the
 * route's own signature; rate limits; the body's shape); the gateway shapes
 * requests, asks `dagi.router.infer` over the bus and streams the answer
 * back; a client that disconnects cancels the bus call, which cancels the
 * model call upstream. */
#ifndef DAGI_GATEWAY_H
#define DAGI_GATEWAY_H

#include "node/node.h"

extern const struct dagi_role dagi_role_gateway;

/* The shape the gate checks for /v1/agents/{id}/infer (bench/gate_bench.c
 * measures the gate with it). */
struct dagi_body_rules;
extern const struct dagi_body_rules dagi_gateway_infer_body;

#endif
