/* Policy decisions (seed 1.1): may this principal do this action on this
 * resource?  A library the data plane links (the router decides in-process
 * from its cached bundle); the pdp role manages the bundle and answers the
 * same question for outside callers.  docs/POLICY.md is the operator's
 * guide; this header is the API.
 *
 * The bundle document (the registry keeps it as kind "policies", name
 * "policy.yml"; config/policy.yml is the sample):
 *
 *     version: 1
 *     roles:
 *       - id: member
 *         allow: [agent.use, "memory.read.personal"]     # any resource
 *         allow_on:                                      # these resources only
 *           - {action: "agent.tool.*", resources: [helion, druid]}
 *         deny: [config.write]
 *         deny_on: [{action: agent.use, resources: [devtools]}]
 *     bindings:
 *       - {subject: "tg:*", roles: [member]}
 *     plans:
 *       - {id: basic, agents: [helion], models: ["*"], max_mode: team}
 *     teams:
 *       - {id: "*", plan: basic}
 *       - {id: energy, plan: basic, max_mode: confidential}  # overrides
 *
 * The issue sketches `allow: [action | {action, resources}]`; the schema
 * engine (core/config.h) has no "string or mapping" item, so the two forms
 * are two keys: `allow` / `deny` (strings) and `allow_on` / `deny_on`
 * (records).  Written the other way, either is an error with file:line.
 *
 * Actions are dotted words ([A-Za-z0-9_-] per segment): agent.use,
 * agent.tool.<tool>, memory.read.<scope>, memory.write.<scope>,
 * mode.<public|team|confidential>, model.use, config.write, audit.read,
 * pdp.decide, ...  A pattern may end in ".*" (every action below that
 * prefix, at any depth: agent.tool.* matches agent.tool.web_search) or be
 * "*" (every action).
 *
 * Subjects a binding names: "user:<id>", "team:<id>", "key:<id>",
 * "tg:<telegram user id>", "role:<role carried by an API key or JWT>",
 * "<kind>:*" (every subject of that kind), "admin" (the node's admin key)
 * and "*" (every principal).
 *
 * Evaluation (dagi_authz_decide):
 *   1. no bundle, or one with no roles: only the principal "admin" may act
 *      (reason builtin_admin / no_policy) - the one built-in rule, so that
 *      a node without a policy stays operable.  Every other grant to the
 *      admin, including "everything", comes from the bundle's bindings.
 *   2. the roles of the request: every binding whose subject matches the
 *      principal or one of the request's subjects;
 *   3. a deny of those roles matching the action (and the resource, for
 *      deny_on) wins: explicit_deny;
 *   4. otherwise an allow matching the action (allow_on: and the resource)
 *      grants, unless the team's entitlements refuse it: agent.use on an
 *      agent, model.use on a model the team's plan leaves out, or a mode
 *      above the team's max_mode (mode.<m>) -> not_entitled;
 *   5. otherwise no_grant (deny by default).
 * A restricted grant (allow_on/deny_on) never matches a request without a
 * resource.
 *
 * Entitlements are per team: the record with the request's team id, else
 * the "*" record; a request with no team uses "*".  No record at all: not
 * entitled to anything (and max mode public).
 *
 * Memory and threads: a bundle is compiled once into one arena (hash tables
 * sized at compile time), immutable and reference counted; any number of
 * threads may decide on it at once.  dagi_authz_decide allocates nothing,
 * takes no lock and does no I/O. */
#ifndef DAGI_AUTHZ_H
#define DAGI_AUTHZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

struct json_t;
struct dagi_authz_bundle;

/* Caps, checked by the schema: an action or pattern, an id, a subject. */
#define DAGI_AUTHZ_ACTION_MAX 128
#define DAGI_AUTHZ_ID_MAX 128
#define DAGI_AUTHZ_SUBJECT_MAX 256
/* Of a request: how many subjects it may carry (more is invalid_request). */
#define DAGI_AUTHZ_REQUEST_SUBJECTS_MAX 64

/* --- the document --- */

/* Validates a bundle text: 0, or DAGI_EINVAL / DAGI_EPARSE / DAGI_ETOOBIG
 * with every problem in errs as "source:line: key.path: reason".  The
 * registry's validator; the same checks dagi_authz_compile makes. */
int dagi_authz_check_text(const char *text, size_t len, const char *source,
                          struct dagi_cfg_errors *errs);

/* Compiles a bundle text.  0 and *out (a new reference), or the errors of
 * dagi_authz_check_text.  source names the text in errors and summaries
 * ("config/policy.yml"); NULL = "policy.yml". */
int dagi_authz_compile(const char *text, size_t len, const char *source,
                       struct dagi_authz_bundle **out, struct dagi_cfg_errors *errs);

/* Reports every agent id the bundle names (plans' and teams' agents,
 * resources of agent.* grants) that is neither "*" nor in known, as
 * "<source>: plans[i].agents[k]: unknown agent \"x\"".  The bundle does not
 * know the registry, so this runs after a compile (the registry's set
 * validation, when agents change).  0 or DAGI_EINVAL. */
int dagi_authz_check_agents(const struct dagi_authz_bundle *b, const char *const *known, size_t n,
                            struct dagi_cfg_errors *errs);

struct dagi_authz_bundle *dagi_authz_bundle_ref(struct dagi_authz_bundle *b);
/* Frees the bundle with its last reference; NULL is fine. */
void dagi_authz_bundle_unref(struct dagi_authz_bundle *b);

struct dagi_authz_summary {
    const char *source; /* borrowed from the bundle */
    char checksum[65];  /* BLAKE2b-256 of the text, hex (the registry's checksum) */
    size_t roles, grants, denies, bindings, plans, teams;
};
void dagi_authz_bundle_summary(const struct dagi_authz_bundle *b, struct dagi_authz_summary *out);

/* --- decisions --- */

struct dagi_authz_request {
    const char *principal; /* "user:alice", "tg:42", "key:k1", "admin"; NULL = anonymous */
    /* Everything the principal stands for: itself, "team:<t>" per membership
     * (from the identity graph, given by the caller), "role:<r>" per key or
     * JWT role, "key:<id>".  The principal is matched whether or not it is
     * repeated here. */
    const char *const *subjects;
    size_t n_subjects;
    const char *team;     /* the team the request acts in; NULL or "" = none */
    const char *action;   /* required */
    const char *resource; /* the agent, model, scope...; NULL = none */
};

struct dagi_authz_decision {
    bool allow;
    /* Static text: granted, builtin_admin (allowed); explicit_deny, no_grant,
     * not_entitled, no_policy, invalid_request (denied). */
    const char *reason;
    /* What decided, borrowed from the bundle (valid while it is): the role id
     * for granted and explicit_deny, the team record's id ("*" or a team)
     * for not_entitled; NULL otherwise. */
    const char *rule;
};

/* b may be NULL (no policy).  Pure: no allocation, no lock, no I/O. */
void dagi_authz_decide(const struct dagi_authz_bundle *b, const struct dagi_authz_request *req,
                       struct dagi_authz_decision *out);

/* --- entitlements (also applied by decide, see above) --- */

enum dagi_authz_mode {
    DAGI_AUTHZ_MODE_PUBLIC,
    DAGI_AUTHZ_MODE_TEAM,
    DAGI_AUTHZ_MODE_CONFIDENTIAL,
};
/* "public" | "team" | "confidential"; 0 or DAGI_EINVAL. */
int dagi_authz_mode_parse(const char *name, enum dagi_authz_mode *out);
const char *dagi_authz_mode_name(enum dagi_authz_mode m);

/* With no bundle (or one with no roles) only the admin gets past decide, so
 * these answer "entitled" / confidential there: the admin's requests are
 * not capped.  team NULL or "" = none (the "*" record). */
bool dagi_authz_agent_entitled(const struct dagi_authz_bundle *b, const char *team,
                               const char *agent);
bool dagi_authz_model_entitled(const struct dagi_authz_bundle *b, const char *team,
                               const char *model);
enum dagi_authz_mode dagi_authz_max_mode(const struct dagi_authz_bundle *b, const char *team);
/* The request's mode capped by the team's max mode. */
enum dagi_authz_mode dagi_authz_cap_mode(const struct dagi_authz_bundle *b, const char *team,
                                         enum dagi_authz_mode requested);

/* --- the wire form (dagi.pdp.decide, POST /v1/pdp/decide) --- */

/* {"principal": str, "subjects": [str]?, "team": str?, "action": str,
 *  "resource": str?}: parsed into *out, whose strings borrow from doc (keep
 * it alive while using *out; subjects point into `subjects`, which must
 * hold DAGI_AUTHZ_REQUEST_SUBJECTS_MAX).  Unknown members are refused.
 * 0, or DAGI_EINVAL with *field naming the member (static text) and why
 * filled. */
int dagi_authz_request_from_json(const struct json_t *doc, struct dagi_authz_request *out,
                                 const char **subjects, const char **field, char *why,
                                 size_t why_len);
/* {"allow": bool, "reason": str, "rule": str|null}; a new reference. */
struct json_t *dagi_authz_decision_to_json(const struct dagi_authz_decision *d);

/* The first segment of an action when it is a known family (agent, memory,
 * mode, model, config, audit, pdp, budget, tool), else "other": a bounded
 * metric label (pdp_decisions_total{action_prefix}). */
const char *dagi_authz_action_prefix(const char *action);

#endif
