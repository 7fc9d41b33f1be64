/* Private to the router role: its state and the infer handler
 * (router_infer.c).  What it routes with is the control plane's snapshot
 * (cplane/cplane.h). */
#ifndef DAGI_ROUTER_INTERNAL_H
#define DAGI_ROUTER_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>

#include "policy/behavior.h"
#include "agents/registry.h"
#include "authz/authz.h"
#include "cplane/cplane.h"
#include "router/router.h"

struct dagi_bus_req;
struct dagi_bus_msg;
struct dagi_metric;
struct dagi_router_infer;
struct dagi_quota_store;
struct json_t;

struct dagi_router_state {
    struct dagi_node *node;
    struct dagi_cplane *cp;           /* the agents, rules, policy and budgets in use */
    struct dagi_router_infer *infers; /* in flight, for stop */
    bool draining;
    struct dagi_metric *latency, *tokens_in, *tokens_out, *errors, *fallbacks;
    struct dagi_metric *tool_calls; /* agent_tool_calls_total; made on first use */
    struct dagi_behavior *behavior; /* the policy's duplicate memory */
    struct dagi_metric *decisions;  /* agent_behavior_decisions_total */
    struct dagi_metric *denies;     /* agent_denies_total{agent_id,action,reason} */
    struct dagi_metric *decisions_total; /* pdp_decisions_total (authz/report.h) */
    struct dagi_metric *privacy;    /* agent_privacy_gate_total{agent_id,result} */
    struct dagi_quota_store *quota_store; /* the node's counters; NULL = no database */
};

/* --- admission (router_admit.c) --- */

struct dagi_quota_reservation;
/* A request's caller and what it was granted.  The authz request borrows
 * from `caller` (and points into `subjects`: keep the struct in place). */
struct dagi_router_admit {
    struct json_t *caller; /* the request's "caller", referenced; NULL = anonymous */
    const char *subjects[DAGI_AUTHZ_REQUEST_SUBJECTS_MAX];
    struct dagi_authz_request authz;
    int mode;                              /* enum dagi_authz_mode; -1 = not said */
    struct dagi_quota_reservation *quota;  /* held until settled or released */
};
/* Reads body["caller"] into *a (zeroed first); DAGI_EINVAL for a malformed one. */
int dagi_router_admit_caller(struct dagi_router_admit *a, const struct json_t *body,
                             struct dagi_error *err);
/* Lists, agent.use, the mode: 0 or DAGI_EPERM with err set (already logged,
 * counted and audited). */
int dagi_router_admit_check(struct dagi_router_state *rt, const struct dagi_cplane_snap *snap,
                            const struct dagi_agent *agent, const struct json_t *body,
                            const char *trace_id, struct dagi_router_admit *a,
                            struct dagi_error *err);
/* agent.tool.<tool> for this caller (a deny is logged, counted, audited). */
bool dagi_router_admit_tool(struct dagi_router_state *rt, const struct dagi_cplane_snap *snap,
                            struct dagi_router_admit *a, const struct dagi_agent *agent,
                            const char *tool, const char *trace_id);
/* rc 0: admitted.  DAGI_EQUOTA: message is the 429 body (JSON) and
 * short_text the line a chat user is sent.  Otherwise an error. */
typedef void (*dagi_router_admit_done)(void *ud, int rc, const char *message,
                                       const char *short_text);
/* Reserves max_tokens against every budget that applies (user: the quota
 * subject; NULL = the principal).  done runs once, maybe before this
 * returns. */
void dagi_router_admit_reserve(struct dagi_router_state *rt, struct dagi_cplane_snap *snap,
                               struct dagi_router_admit *a, const struct dagi_agent *agent,
                               const char *user, int64_t max_tokens, const char *trace_id,
                               dagi_router_admit_done done, void *ud);
/* The answer's real usage (estimated: not the upstream's count). */
void dagi_router_admit_settle(struct dagi_router_state *rt, struct dagi_router_admit *a,
                              int64_t prompt_tokens, int64_t completion_tokens, bool estimated,
                              const char *model);
/* The user's stored consent to this agent (confidential mode): done(ud, rc,
 * granted) on the loop; no record, or no answer, is no consent. */
typedef void (*dagi_router_consent_done)(void *ud, int rc, bool granted);
void dagi_router_admit_consent(struct dagi_router_state *rt, const char *user,
                               const struct dagi_agent *agent, dagi_router_consent_done done,
                               void *ud);
/* Releases an unsettled reservation and the caller. */
void dagi_router_admit_clear(struct dagi_router_state *rt, struct dagi_router_admit *a);

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
/* May the caller run this tool?  (the policy's agent.tool.<tool>) */
typedef bool (*dagi_router_tools_permit)(void *ud, const char *tool);
void dagi_router_tools_run(struct dagi_router_state *rt, const struct dagi_agent *agent,
                           struct json_t *calls, const char *trace_id,
                           dagi_router_tools_permit permit, dagi_router_tools_done done,
                           void *ud, struct dagi_router_tools **out);
/* Cancels the calls in flight; done never runs.  NULL is allowed. */
void dagi_router_tools_cancel(struct dagi_router_tools *tools);

#endif
