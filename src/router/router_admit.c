/* What a request must pass before a model is asked (seed 1.1, 1.2): the
 * allow/block lists, the policy decision for the agent and the mode, the
 * budget - and, while it runs, the decision for each tool call.  All of it
 * from the request's one control-plane snapshot, so a change mid-request
 * cannot mix two policies.
 *
 * The caller is the request's "caller" member, set by the edge that took
 * the request (the gateway, the telegram role); the router never invents
 * one, so a request without it is anonymous and the policy refuses it.
 * Every deny is logged (ids only), counted and audited. */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auditlog/audit.h"
#include "authz/authz.h"
#include "authz/report.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "node/node.h"
#include "core/pool.h"
#include "privacy/consent.h"
#include "quota/quota_async.h"
#include "quota/quota_node.h"
#include "quota/quota_reply.h"
#include "router/router_internal.h"

int dagi_router_admit_caller(struct dagi_router_admit *a, const json_t *body,
                             struct dagi_error *err)
{
    memset(a, 0, sizeof(*a));
    a->mode = -1;
    json_t *caller = json_object_get(body, "caller");
    if (!caller)
        return DAGI_OK; /* anonymous: the policy decides */
    json_t *principal = json_object_get(caller, "principal");
    json_t *subjects = json_object_get(caller, "subjects");
    json_t *team = json_object_get(caller, "team");
    if (!json_is_object(caller) || (principal && !json_is_string(principal) &&
                                    !json_is_null(principal)) ||
        (subjects && !json_is_array(subjects)) || (team && !json_is_string(team)) ||
        json_array_size(subjects) > DAGI_AUTHZ_REQUEST_SUBJECTS_MAX)
        return dagi_error_set(err, DAGI_EINVAL,
                              "caller must be {principal: string, subjects: [string] (at most "
                              "%d), team: string}",
                              DAGI_AUTHZ_REQUEST_SUBJECTS_MAX);
    a->caller = json_incref(caller);
    a->authz.principal = json_string_value(principal);
    size_t i;
    json_t *s;
    json_array_foreach(subjects, i, s)
    {
        if (json_is_string(s))
            a->subjects[a->authz.n_subjects++] = json_string_value(s);
    }
    a->authz.subjects = a->subjects;
    a->authz.team = json_string_value(team);
    return DAGI_OK;
}

void dagi_router_admit_clear(struct dagi_router_state *rt, struct dagi_router_admit *a)
{
    if (a->quota) {
        /* Never reached a model (or the answer failed before usage was
         * known): the hold goes back, the request still counts. */
        if (dagi_quota_release_async(dagi_node_pool(rt->node), rt->quota_store, a->quota, NULL,
                                     NULL))
            dagi_quota_reservation_free(a->quota); /* the hold expires by itself */
        a->quota = NULL;
    }
    json_decref(a->caller);
    a->caller = NULL;
}

static const char *principal_of(const struct dagi_router_admit *a)
{
    return a->authz.principal ? a->authz.principal : "anonymous";
}

/* A list's refusal: logged, counted, audited - ids and reasons, never
 * content. */
static void deny(struct dagi_router_state *rt, const struct dagi_router_admit *a,
                 const struct dagi_agent *agent, const char *action, const char *reason,
                 const char *rule, const char *trace_id)
{
    dagi_metric_inc(rt->denies, (const char *[]){agent->id, dagi_authz_action_prefix(action),
                                                 reason});
    dagi_log_warn(trace_id, "router: denied", "agent", agent->id, "action", action, "reason",
                  reason, "rule", rule ? rule : "");
    json_t *meta = json_pack("{s:s,s:s,s:s?,s:s?}", "action", action, "reason", reason, "rule",
                             rule, "team", a->authz.team);
    char subject[160];
    snprintf(subject, sizeof(subject), "agent:%s", agent->id);
    dagi_audit_emit(rt->node, &(struct dagi_audit_event){.service = "router",
                                                         .action = "deny",
                                                         .actor = principal_of(a),
                                                         .subject = subject,
                                                         .decision = "deny",
                                                         .trace_id = trace_id,
                                                         .metadata = meta});
    json_decref(meta);
}

static bool decide(struct dagi_router_state *rt, const struct dagi_cplane_snap *snap,
                   struct dagi_router_admit *a, const struct dagi_agent *agent,
                   const char *action, const char *resource, const char *trace_id,
                   struct dagi_authz_decision *d)
{
    a->authz.action = action;
    a->authz.resource = resource;
    dagi_authz_decide(snap->policy, &a->authz, d);
    /* Counted in pdp_decisions_total like the pdp role's own; a deny is
     * logged and audited there too. */
    dagi_authz_report(rt->node, rt->decisions_total, "router", trace_id, &a->authz, d);
    if (!d->allow)
        dagi_metric_inc(rt->denies, (const char *[]){agent->id, dagi_authz_action_prefix(action),
                                                     d->reason});
    return d->allow;
}

/* The request's privacy mode: "mode" when it names one (the original API
 * also used the field for task types, which are not modes); -1 = not said. */
static int mode_of(const json_t *body)
{
    enum dagi_authz_mode m;
    const char *s = json_string_value(json_object_get(body, "mode"));
    return s && !dagi_authz_mode_parse(s, &m) ? (int)m : -1;
}

int dagi_router_admit_check(struct dagi_router_state *rt, const struct dagi_cplane_snap *snap,
                            const struct dagi_agent *agent, const json_t *body,
                            const char *trace_id, struct dagi_router_admit *a,
                            struct dagi_error *err)
{
    const char *list = dagi_lists_refuse(&snap->lists, a->authz.principal, a->authz.team,
                                         agent->id);
    if (list) {
        deny(rt, a, agent, "agent.use", "listed", list, trace_id);
        return dagi_error_set(err, DAGI_EPERM, "agent %s: refused by the list \"%s\"", agent->id,
                              list);
    }
    struct dagi_authz_decision d;
    if (!decide(rt, snap, a, agent, "agent.use", agent->id, trace_id, &d))
        return dagi_error_set(err, DAGI_EPERM, "agent %s: not allowed for %s (%s)", agent->id,
                              principal_of(a), d.reason);
    a->mode = mode_of(body);
    /* A mode the caller may not use is refused, not quietly lowered: a
     * confidential request answered as a team one would be a leak. */
    if (a->mode >= 0) {
        char action[32];
        snprintf(action, sizeof(action), "mode.%s", dagi_authz_mode_name(a->mode));
        if (!decide(rt, snap, a, agent, action, NULL, trace_id, &d))
            return dagi_error_set(err, DAGI_EPERM, "mode %s is not allowed for %s here (%s)",
                                  dagi_authz_mode_name(a->mode), principal_of(a), d.reason);
    }
    return DAGI_OK;
}

bool dagi_router_admit_tool(struct dagi_router_state *rt, const struct dagi_cplane_snap *snap,
                            struct dagi_router_admit *a, const struct dagi_agent *agent,
                            const char *tool, const char *trace_id)
{
    char action[160];
    snprintf(action, sizeof(action), "agent.tool.%s", tool);
    struct dagi_authz_decision d;
    return decide(rt, snap, a, agent, action, agent->id, trace_id, &d);
}

/* --- the budget --- */

struct reserve_ctx {
    struct dagi_router_state *rt;
    struct dagi_router_admit *a;
    dagi_router_admit_done done;
    void *ud;
};

static void on_reserved(void *ud, int rc, struct dagi_quota_reservation *r,
                        const struct dagi_quota_block *block, const struct dagi_error *err)
{
    struct reserve_ctx *x = ud;
    struct dagi_router_admit *a = x->a;
    dagi_router_admit_done done = x->done;
    void *done_ud = x->ud;
    free(x);
    if (rc == DAGI_EPERM && block) {
        /* The gateway turns this message into the 429 body as it is. */
        json_t *body = dagi_quota_block_body(block);
        char *text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        char tg[512];
        dagi_quota_block_text(block, tg, sizeof(tg));
        done(done_ud, DAGI_EQUOTA, text ? text : "over budget", tg);
        free(text);
        return;
    }
    if (rc) {
        done(done_ud, rc == DAGI_EAGAIN ? DAGI_EUNAVAIL : rc, err ? err->message : "quota", NULL);
        return;
    }
    a->quota = r;
    done(done_ud, DAGI_OK, NULL, NULL);
}

void dagi_router_admit_reserve(struct dagi_router_state *rt, struct dagi_cplane_snap *snap,
                               struct dagi_router_admit *a, const struct dagi_agent *agent,
                               const char *user, int64_t max_tokens, const char *trace_id,
                               dagi_router_admit_done done, void *ud)
{
    if (!snap->quotas || !dagi_quota_budgets_count(snap->quotas) || !rt->quota_store) {
        done(ud, DAGI_OK, NULL, NULL);
        return;
    }
    struct reserve_ctx *x = dagi_xcalloc(1, sizeof(*x));
    *x = (struct reserve_ctx){rt, a, done, ud};
    const struct dagi_quota_subject s = {
        .user = user && *user ? user : principal_of(a),
        .team = a->authz.team,
        .agent = agent->id,
        .trace_id = trace_id,
    };
    int rc = dagi_quota_reserve_async(dagi_node_pool(rt->node), rt->quota_store, snap->quotas, &s,
                                      max_tokens, on_reserved, x);
    if (rc) {
        free(x);
        done(ud, DAGI_EUNAVAIL, "the budget cannot be checked now (the worker pool is full)",
             NULL);
    }
}

void dagi_router_admit_settle(struct dagi_router_state *rt, struct dagi_router_admit *a,
                              int64_t prompt_tokens, int64_t completion_tokens, bool estimated,
                              const char *model)
{
    if (!a->quota)
        return;
    const struct dagi_quota_spend spend = {
        .prompt_tokens = prompt_tokens < 0 ? 0 : prompt_tokens,
        .completion_tokens = completion_tokens < 0 ? 0 : completion_tokens,
        .estimated = estimated,
        .model = model,
    };
    if (dagi_quota_settle_async(dagi_node_pool(rt->node), rt->quota_store, a->quota, &spend, NULL,
                                NULL))
        dagi_quota_reservation_free(a->quota); /* the hold expires; the spend is lost: logged */
    a->quota = NULL;
}

/* --- consent (confidential mode) --- */

struct consent_job {
    struct dagi_db *db;
    char user[DAGI_CONSENT_PRINCIPAL_MAX + 1];
    char agent[DAGI_CONSENT_AGENT_MAX + 1];
    bool granted;
    int rc;
    struct dagi_error err;
    dagi_router_consent_done done;
    void *ud;
};

static void consent_work(void *ud)
{
    struct consent_job *j = ud;
    j->rc = dagi_consent_get(j->db, j->user, j->agent, &j->granted, &j->err);
}

static void consent_done(void *ud, bool cancelled)
{
    struct consent_job *j = ud;
    /* No answer is no consent: the stricter side. */
    j->done(j->ud, cancelled ? DAGI_ECANCELED : j->rc, !cancelled && !j->rc && j->granted);
    free(j);
}

void dagi_router_admit_consent(struct dagi_router_state *rt, const char *user,
                               const struct dagi_agent *agent, dagi_router_consent_done done,
                               void *ud)
{
    struct dagi_db *db = dagi_node_db(rt->node);
    if (!db || !user || !*user) {
        done(ud, DAGI_OK, false);
        return;
    }
    struct consent_job *j = dagi_xcalloc(1, sizeof(*j));
    j->db = db;
    snprintf(j->user, sizeof(j->user), "%s", user);
    snprintf(j->agent, sizeof(j->agent), "%s", agent->id);
    j->done = done;
    j->ud = ud;
    if (dagi_pool_submit(dagi_node_pool(rt->node), consent_work, consent_done, j)) {
        free(j);
        done(ud, DAGI_EUNAVAIL, false);
    }
}
