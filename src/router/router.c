/* The router role (router.h): the lifecycle and `dagi.router.agents`.  The
 * agents, rules, policy and budgets are the control plane's snapshot
 * (cplane/cplane.h).  Answering a message is in
 * router_infer.c. */
#include "router/router.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "core/arena.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "authz/report.h"
#include "privacy/consent_routes.h"
#include "quota/quota_node.h"
#include "router/router_internal.h"

#define INFER_SUBJECT "dagi.router.infer"
#define AGENTS_SUBJECT "dagi.router.agents"

static void on_agents(struct dagi_bus_req *req, const struct dagi_bus_msg *msg, void *ud)
{
    (void)msg;
    struct dagi_router_state *rt = ud;
    const struct dagi_registry *reg = dagi_cplane_current(rt->cp)->agents;
    json_t *list = json_array();
    for (size_t i = 0; reg && i < dagi_registry_count(reg); i++) {
        const struct dagi_agent *a = dagi_registry_agent(reg, i);
        json_array_append_new(list, json_pack("{s:s,s:s?,s:s?,s:b}", "id", a->id, "name", a->name,
                                              "role", a->role, "enabled", a->enabled));
    }
    json_t *doc = json_pack("{s:o}", "agents", list);
    char *data = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    dagi_bus_reply(req, data, strlen(data));
    free(data);
}

static void on_config_changed(void *ud, struct dagi_cplane_snap *snap)
{
    dagi_quota_replace(ud, snap->quotas ? dagi_quota_budgets_ref(snap->quotas)
                                        : dagi_quota_budgets_empty());
}

static int router_init(struct dagi_node *node, void **state, struct dagi_error *err)
{
    struct dagi_router_state *rt = dagi_xcalloc(1, sizeof(*rt));
    rt->node = node;
    int rc = DAGI_OK;
    rt->cp = dagi_cplane_get(node, err);
    if (!rt->cp) {
        char why[sizeof(err->message)];
        snprintf(why, sizeof(why), "%s", err->message);
        rc = dagi_error_set(err, err->code ? err->code : DAGI_EINVAL, "router: %s", why);
        goto out;
    }
    /* Labelled by agent only: user ids would make the series unbounded
     * (and are personal data). */
    struct dagi_metrics *mx = dagi_node_metrics(node);
    const char *by_agent[] = {"agent_id", NULL};
    rt->latency = dagi_metrics_histogram(mx, "agent_latency_seconds",
                                         "From the request to the router's final answer.",
                                         by_agent, dagi_metrics_latency_buckets,
                                         dagi_metrics_latency_buckets_n);
    rt->tokens_in = dagi_metrics_counter(mx, "agent_tokens_in_total",
                                         "Prompt tokens of answered requests.", by_agent);
    rt->tokens_out = dagi_metrics_counter(mx, "agent_tokens_out_total",
                                          "Completion tokens of answered requests.", by_agent);
    rt->errors = dagi_metrics_counter(mx, "agent_errors_total",
                                      "Requests that ended with an error, by error code.",
                                      (const char *[]){"agent_id", "type", NULL});
    rt->fallbacks = dagi_metrics_counter(
        mx, "agent_fallbacks_total", "Models tried after the first one failed before a token.",
        by_agent);
    rt->decisions = dagi_metrics_counter(
        mx, "agent_behavior_decisions_total",
        "Behaviour policy decisions for requests (FULL, ACK, SILENT), by reason.",
        (const char *[]){"agent_id", "level", "reason", NULL});
    rt->denies = dagi_metrics_counter(
        mx, "agent_denies_total",
        "Requests and tool calls the policy refused, by action family and reason.",
        (const char *[]){"agent_id", "action", "reason", NULL});
    rt->decisions_total = dagi_authz_decisions_metric(mx);
    rt->privacy = dagi_metrics_counter(
        mx, "agent_privacy_gate_total",
        "Confidential requests by what the model saw: a sanitized summary or, with consent, all.",
        (const char *[]){"agent_id", "result", NULL});
    rc = dagi_quota_routes_register(node, err);
    if (!rc)
        rc = dagi_consent_routes_register(node, err);
    if (rc)
        goto out;
    struct dagi_quota *quota = dagi_quota_of_node(node);
    if (quota) {
        rt->quota_store = dagi_quota_store_of(quota);
        /* The admin routes show the budgets the requests are held to. */
        dagi_quota_replace(quota, dagi_cplane_current(rt->cp)->quotas
                                      ? dagi_quota_budgets_ref(dagi_cplane_current(rt->cp)->quotas)
                                      : dagi_quota_budgets_empty());
        dagi_cplane_on_change(rt->cp, on_config_changed, quota);
    }
    rt->behavior = dagi_behavior_new(NULL);
    struct dagi_bus *bus = dagi_node_bus(node);
    rc = dagi_bus_serve(bus, INFER_SUBJECT, dagi_router_on_infer, rt);
    if (!rc)
        rc = dagi_bus_serve(bus, AGENTS_SUBJECT, on_agents, rt);
    if (rc) {
        dagi_error_set(err, rc, "router: cannot serve %s", INFER_SUBJECT);
        goto out;
    }
    const struct dagi_cplane_snap *snap = dagi_cplane_current(rt->cp);
    if (snap->agents)
        dagi_log_info(NULL, "router: agents loaded", "path", snap->agents->path, "source",
                      snap->source);
    else
        dagi_log_warn(NULL, "router: no agent registry configured (router.registry); no agents");
    *state = rt;
    rt = NULL;
out:
    if (rt) {
        dagi_behavior_free(rt->behavior);
        free(rt);
    }
    return rc;
}

static int router_reload(struct dagi_node *node, void *state, struct dagi_error *err)
{
    (void)node;
    struct dagi_router_state *rt = state;
    /* The documents come from the registry; what a reload changes here is
     * the node configuration they are checked against (the models). */
    int rc = dagi_cplane_rebuild(rt->cp, err);
    if (rc)
        /* A bad edit must not take the agents down: keep serving the old
         * snapshot until it is fixed. */
        dagi_log_error(NULL, "router: reload refused, keeping the previous agents", "error",
                       err->message);
    return rc;
}

static void router_drain(struct dagi_node *node, void *state)
{
    (void)node;
    struct dagi_router_state *rt = state;
    rt->draining = true;
}

static void router_stop(struct dagi_node *node, void *state)
{
    struct dagi_router_state *rt = state;
    dagi_router_infers_stop(rt);
    struct dagi_quota *quota = dagi_quota_of_node(node);
    if (quota)
        dagi_cplane_off_change(rt->cp, on_config_changed, quota);
    dagi_behavior_free(rt->behavior);
    free(rt);
}

const struct dagi_role dagi_role_router = {
    .name = "router",
    .help = "answer messages to agents: registry, routing rules, fallbacks (dagi.router.infer)",
    .init = router_init,
    .start = NULL,
    .reload = router_reload,
    .drain = router_drain,
    .stop = router_stop,
};
