/* The router role (router.h): the lifecycle, the registry and routing-rules
 * snapshot, and `dagi.router.agents`.  Answering a message is in
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
#include "router/router_internal.h"

#define INFER_SUBJECT "dagi.router.infer"
#define AGENTS_SUBJECT "dagi.router.agents"

struct dagi_router_snap *dagi_router_snap_ref(struct dagi_router_snap *s)
{
    atomic_fetch_add(&s->refs, 1);
    return s;
}

void dagi_router_snap_unref(struct dagi_router_snap *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    dagi_registry_unref(s->reg);
    if (s->arena)
        dagi_arena_free(s->arena);
    free(s);
}

/* Loads the registry and the routing rules named by the configuration,
 * checking every model id against swapper.models (+ builtin).  On failure
 * err carries the loaders' messages, which name file:line.  No registry
 * configured: a router with no agents (every agent is not_found);
 * config/dagi.yml names the shipped one. */
static int snap_load(const struct dagi_config *c, struct dagi_router_snap **out,
                     struct dagi_error *err)
{
    struct dagi_router_snap *s = dagi_xcalloc(1, sizeof(*s));
    atomic_init(&s->refs, 1);
    int rc = dagi_registry_load_config(c, &s->reg, err);
    if (rc) {
        char why[sizeof(err->message)];
        snprintf(why, sizeof(why), "%s", err->message);
        dagi_error_set(err, rc, "router: %s", why);
        dagi_router_snap_unref(s);
        return rc;
    }
    if (c->router.routing) {
        size_t n;
        const char **known = dagi_config_model_ids(c, &n);
        struct dagi_cfg_errors errs;
        dagi_cfg_errors_init(&errs);
        s->arena = dagi_arena_new(0);
        rc = dagi_rules_load_file(c->router.routing, s->arena, &s->rules, &errs);
        if (!rc) {
            char where[4200];
            snprintf(where, sizeof(where), "%s: rules", c->router.routing);
            rc = dagi_rules_check_models(s->rules, where, known, n, &errs);
        }
        if (rc)
            dagi_error_set(err, rc, "router: cannot load the routing rules %s: %s",
                           c->router.routing, dagi_buf_str(&errs.text));
        dagi_cfg_errors_release(&errs);
        free(known);
        if (rc) {
            dagi_router_snap_unref(s);
            return rc;
        }
    }
    *out = s;
    return DAGI_OK;
}

static void on_agents(struct dagi_bus_req *req, const struct dagi_bus_msg *msg, void *ud)
{
    (void)msg;
    struct dagi_router_state *rt = ud;
    const struct dagi_registry *reg = rt->snap->reg;
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

static int router_init(struct dagi_node *node, void **state, struct dagi_error *err)
{
    struct dagi_router_state *rt = dagi_xcalloc(1, sizeof(*rt));
    rt->node = node;
    int rc = snap_load(dagi_node_cfg(node), &rt->snap, err);
    if (rc)
        goto out;
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
    rt->behavior = dagi_behavior_new(NULL);
    struct dagi_bus *bus = dagi_node_bus(node);
    rc = dagi_bus_serve(bus, INFER_SUBJECT, dagi_router_on_infer, rt);
    if (!rc)
        rc = dagi_bus_serve(bus, AGENTS_SUBJECT, on_agents, rt);
    if (rc) {
        dagi_error_set(err, rc, "router: cannot serve %s", INFER_SUBJECT);
        goto out;
    }
    if (rt->snap->reg)
        dagi_log_info(NULL, "router: agents loaded", "path", rt->snap->reg->path);
    else
        dagi_log_warn(NULL, "router: no agent registry configured (router.registry); no agents");
    *state = rt;
    rt = NULL;
out:
    if (rt) {
        dagi_router_snap_unref(rt->snap);
        dagi_behavior_free(rt->behavior);
        free(rt);
    }
    return rc;
}

static int router_reload(struct dagi_node *node, void *state, struct dagi_error *err)
{
    struct dagi_router_state *rt = state;
    struct dagi_router_snap *s = NULL;
    int rc = snap_load(dagi_node_cfg(node), &s, err);
    if (rc) {
        /* A bad edit must not take the agents down: keep serving the old
         * snapshot until the files are fixed. */
        dagi_log_error(NULL, "router: reload refused, keeping the previous agents", "error",
                       err->message);
        return rc;
    }
    dagi_router_snap_unref(rt->snap); /* requests in flight hold their own reference */
    rt->snap = s;
    return DAGI_OK;
}

static void router_drain(struct dagi_node *node, void *state)
{
    (void)node;
    struct dagi_router_state *rt = state;
    rt->draining = true;
}

static void router_stop(struct dagi_node *node, void *state)
{
    (void)node;
    struct dagi_router_state *rt = state;
    dagi_router_infers_stop(rt);
    dagi_router_snap_unref(rt->snap);
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
