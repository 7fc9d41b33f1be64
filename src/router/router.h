/* The router role (seed 2.3; stateless): answers a message to an agent.
 *
 * Bus: `dagi.router.infer`, a streamed reply.
 *   request  {"agent_id": "helion", "message": "text", "images": ["data:image/..."]?,
 *             "system_prompt": "caller's system text"?, "history": [{role, content}]?,
 *             "messages": [...]? (OpenAI callers: used instead of message/history/system),
 *             "tools": [...]? (a caller's own tools: returned to the caller, never run;
 *             without them the agent's declared tools are offered to the model and
 *             the router runs the allowed ones itself, up to router.max_tool_rounds),
 *             "user_id"?, "chat": {"id", "type": private|group|supergroup|channel,
 *             "addressed"?}?, "sender": {"is_bot"?, "is_agent"?}?,
 *             "channel": "http"|"openai"|"telegram"|"webhook"?, "task_type"?, "metadata": {}?,
 *             "mode"?, "max_tokens"?, "temperature"?}
 *   chunks   {"delta": "<text>"}
 *   final    {"response": "<whole answer>", "model": id, "backend": provider,
 *             "tokens_used": N, "usage": {"prompt_tokens", "completion_tokens"},
 *             "finish_reason", "tool_calls": [...]? (the caller's tools),
 *             "policy": "FULL" | "ACK" | "SILENT", "reason": "..."} - a request
 *            with a chat is decided by the behaviour policy first
 *            (docs/BEHAVIOR_POLICY.md): ACK answers the agent's ACK text and
 *            SILENT an empty response, both without a model call
 *   errors   not_found (unknown agent), forbidden (disabled agent), unavailable /
 *            timed_out (every model failed before the first token); a failure
 *            after the first token ends the stream with an error, never a final.
 *
 * `dagi.router.agents`: {} -> {"agents": [{"id", "name", "role", "enabled"}]}. */
#ifndef DAGI_ROUTER_H
#define DAGI_ROUTER_H

#include "node/node.h"

extern const struct dagi_role dagi_role_router;

#endif
