/* Private to the router role: its state, the refcounted snapshot of the
 * registry and routing rules, and the infer handler (router_infer.c). */
#ifndef DAGI_ROUTER_INTERNAL_H
#define DAGI_ROUTER_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>

#include "policy/behavior.h"
#include "agents/registry.h"
#include "router/router.h"

struct dagi_bus_req;
struct dagi_bus_msg;
struct dagi_metric;
struct dagi_router_infer;

/* What a request routes with: the registry and the global rules, swapped as
 * one on reload.  A request holds a reference until it is answered, so every
 * string it borrows from them (model ids, prompts) stays valid. */
struct dagi_router_snap {
    atomic_int refs;
    struct dagi_registry *reg;
    struct dagi_arena *arena;       /* the rules' memory; NULL without a routing file */
    const struct dagi_rules *rules; /* NULL = no global rules */
};

struct dagi_router_state {
    struct dagi_node *node;
    struct dagi_router_snap *snap;    /* replaced on the loop thread only */
    struct dagi_router_infer *infers; /* in flight, for stop */
    bool draining;
    struct dagi_metric *latency, *tokens_in, *tokens_out, *errors, *fallbacks;
    struct dagi_metric *tool_calls; /* agent_tool_calls_total; made on first use */
    struct dagi_behavior *behavior; /* the policy's duplicate memory */
    struct dagi_metric *decisions;  /* agent_behavior_decisions_total */
};

struct dagi_router_snap *dagi_router_snap_ref(struct dagi_router_snap *s);
void dagi_router_snap_unref(struct dagi_router_snap *s);

/* dagi.router.infer (router_infer.c). */
void dagi_router_on_infer(struct dagi_bus_req *req, const struct dagi_bus_msg *msg, void *ud);
/* Ends every request in flight with an error (the role is stopping). */
void dagi_router_infers_stop(struct dagi_router_state *rt);

/* The behaviour policy (router_policy.c).  decide: FULL "no_chat" without a
 * chat; DAGI_EINVAL for a malformed chat or sender.  answer: the immediate
 * answer of ACK (the ACK text) or SILENT (nothing), ending the request. */
struct dagi_behavior_decision;
int dagi_router_policy_decide(struct dagi_router_state *rt, const struct dagi_agent *agent,
                              const struct json_t *body, struct dagi_behavior_decision *out,
                              struct dagi_error *err);
void dagi_router_policy_answer(struct dagi_bus_req *req, bool stream,
                               const struct dagi_agent *agent,
                               const struct dagi_behavior_decision *d, const char *trace_id);

/* Server-side tools (router_tools.c). */
struct json_t;
struct dagi_router_tools;
/* Called once with the `tool` messages of the round (borrowed: incref to keep). */
typedef void (*dagi_router_tools_done)(void *ud, struct json_t *tool_messages);
/* The agent's declared tools in the OpenAI function shape, or NULL for none. */
struct json_t *dagi_router_tools_spec(const struct dagi_agent *agent);
/* Runs one round of the model's tool_calls: an allowed, declared tool is
 * called over HTTP, any other call is refused.  *out holds the round until
 * done runs (it is cleared first; done may run before this returns and may
 * free whatever holds *out). */
void dagi_router_tools_run(struct dagi_router_state *rt, const struct dagi_agent *agent,
                           struct json_t *calls, const char *trace_id, dagi_router_tools_done done,
                           void *ud, struct dagi_router_tools **out);
/* Cancels the calls in flight; done never runs.  NULL is allowed. */
void dagi_router_tools_cancel(struct dagi_router_tools *tools);

#endif
