/* The pdp role (pdp.h): the lifecycle, where the bundle comes from, and
 * `dagi.pdp.decide`.  The HTTP routes are in pdp_routes.c. */
#include "pdp/pdp.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authz/report.h"
#include "bus/bus.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "cplane/cplane.h"
#include "core/mem.h"
#include "pdp/pdp_internal.h"

#define DECIDE_SUBJECT "dagi.pdp.decide"

static void log_bundle(const struct pdp_state *p, const char *message)
{
    struct dagi_authz_summary s;
    const struct dagi_authz_bundle *bundle = pdp_bundle(p);
    dagi_authz_bundle_summary(bundle, &s);
    if (!bundle) {
        dagi_log_warn(NULL, "pdp: no policy bundle (registry.policies); only the admin may act");
        return;
    }
    char roles[32];
    snprintf(roles, sizeof(roles), "%zu", s.roles);
    dagi_log_info(NULL, message, "source", s.source, "checksum", s.checksum, "roles", roles);
}

void pdp_decide(struct pdp_state *p, const char *trace_id, const struct dagi_authz_request *req,
                struct dagi_authz_decision *out)
{
    dagi_authz_decide(pdp_bundle(p), req, out);
    dagi_authz_report(p->node, p->decisions, "pdp", trace_id, req, out);
}

static void on_decide(struct dagi_bus_req *breq, const struct dagi_bus_msg *msg, void *ud)
{
    struct pdp_state *p = ud;
    json_t *doc = dagi_bus_msg_json(msg);
    const char *subjects[DAGI_AUTHZ_REQUEST_SUBJECTS_MAX];
    const char *field = "body";
    char why[256] = "the body is not JSON";
    struct dagi_authz_request req;
    if (!doc || dagi_authz_request_from_json(doc, &req, subjects, &field, why, sizeof(why))) {
        dagi_bus_reply_error(breq, DAGI_EINVAL, "%s: %s", field, why);
        json_decref(doc);
        return;
    }
    struct dagi_authz_decision d;
    pdp_decide(p, msg->trace_id && *msg->trace_id ? msg->trace_id : NULL, &req, &d);
    json_decref(doc); /* after the decision: its strings borrowed from doc */
    json_t *answer = dagi_authz_decision_to_json(&d);
    dagi_bus_reply_json(breq, answer); /* takes its own reference */
    json_decref(answer);
}

struct dagi_authz_bundle *pdp_bundle(const struct pdp_state *p)
{
    return dagi_cplane_current(p->cp)->policy;
}

/* The registry published a new set (or a reload rebuilt it). */
static void on_config_changed(void *ud, struct dagi_cplane_snap *snap)
{
    struct pdp_state *p = ud;
    if (snap->policy == p->seen)
        return;
    p->seen = snap->policy;
    p->loaded_at_ms = dagi_clock_now_ms();
    log_bundle(p, "pdp: policy bundle replaced");
}

static int pdp_init(struct dagi_node *node, void **state, struct dagi_error *err)
{
    struct pdp_state *p = dagi_xcalloc(1, sizeof(*p));
    p->node = node;
    /* The bundle is the control plane's "policies" document, the same one
     * the router decides with. */
    p->cp = dagi_cplane_get(node, err);
    if (!p->cp) {
        free(p);
        return err->code ? err->code : DAGI_EINVAL;
    }
    p->seen = pdp_bundle(p);
    p->loaded_at_ms = dagi_clock_now_ms();
    p->decisions = dagi_authz_decisions_metric(dagi_node_metrics(node));
    int rc = dagi_bus_serve(dagi_node_bus(node), DECIDE_SUBJECT, on_decide, p);
    if (rc) {
        dagi_error_set(err, rc, "pdp: cannot serve %s", DECIDE_SUBJECT);
        free(p);
        return rc;
    }
    pdp_routes_register(p);
    dagi_cplane_on_change(p->cp, on_config_changed, p);
    log_bundle(p, "pdp: policy bundle loaded");
    *state = p;
    return DAGI_OK;
}

static int pdp_reload(struct dagi_node *node, void *state, struct dagi_error *err)
{
    (void)node;
    struct pdp_state *p = state;
    /* The documents come from the registry (a reload re-imports the files
     * there); here only the checks against the node configuration rerun. */
    int rc = dagi_cplane_rebuild(p->cp, err);
    if (rc)
        dagi_log_error(NULL, "pdp: reload refused, keeping the previous policy bundle", "error",
                       err->message);
    return rc;
}

static void pdp_stop(struct dagi_node *node, void *state)
{
    (void)node;
    struct pdp_state *p = state;
    dagi_cplane_off_change(p->cp, on_config_changed, p);
    free(p);
}

const struct dagi_role dagi_role_pdp = {
    .name = "pdp",
    .help = "policy decisions: the policy bundle, dagi.pdp.decide, /v1/pdp/*",
    .init = pdp_init,
    .start = NULL,
    .reload = pdp_reload,
    .drain = NULL,
    .stop = pdp_stop,
};
