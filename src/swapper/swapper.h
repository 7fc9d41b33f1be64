/* The swapper role (seed 2.4): serves model calls on the bus and model
 * management to operators.
 *
 * Bus: `dagi.swapper.infer`, a streamed reply.
 *   request  {"model": "<model id>", "messages": [...], "tools": [...]?,
 *             "max_tokens": N?, "temperature": x?}      (provider.h's shape)
 *   chunks   {"delta": "<text>"}                          one per delta
 *   final    {"model": id, "backend": provider name, "usage": {"prompt_tokens",
 *             "completion_tokens"}, "finish_reason": "stop"|"length"|"tool_calls",
 *             "tool_calls": [...]?}
 *   error    the bus error, code "unavailable" / "timed_out" / "not_found"
 *            (unknown model) / "invalid"; its message says whether a token was
 *            already sent ("after the first token" in the message, and the
 *            final's absence) so the router can decide on a fallback.
 *
 * Bus: `dagi.swapper.embed`, one reply.
 *   request  {"model": "<model id>", "input": "<text>" | ["<text>", ...],
 *             "dimensions": N?}   at most 256 inputs, each non-empty and
 *             at most 64 KiB, all of them within bus.max_payload
 *   reply    {"model": id, "backend": provider name, "embeddings": [[x, ...],
 *             ...] (one per input, in input order), "usage": {"prompt_tokens"}}
 *   error    as infer's; "invalid" also for a model without the
 *            `embeddings` capability.  The builtin model embeds offline (a
 *            hashed bag of words: for tests and demos, not for search).
 *
 * Local models load lazily: the first request for an unloaded model loads it
 * (concurrent first requests share one load); a load that would pass
 * swapper.vram_budget_mb first unloads the least recently used models.
 *
 * HTTP (operators, admin key): GET /v1/swapper/models, POST
 * /v1/swapper/models/{id}/load, POST /v1/swapper/models/{id}/unload,
 * GET /v1/swapper/status. */
#ifndef DAGI_SWAPPER_H
#define DAGI_SWAPPER_H

#include "node/node.h"

extern const struct dagi_role dagi_role_swapper;

#endif
