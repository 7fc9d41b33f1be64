/* Counting, logging and auditing decisions (report.h). */
#include "authz/report.h"

#include "auditlog/audit.h"
#include "core/log.h"
#include "core/metrics.h"

#include <jansson.h>
#include <stdio.h>

struct dagi_metric *dagi_authz_decisions_metric(struct dagi_metrics *m)
{
    return dagi_metrics_counter(m, "pdp_decisions_total",
                                "Policy decisions, by the action's family and the answer.",
                                (const char *[]){"action_prefix", "decision", NULL});
}

void dagi_authz_report(struct dagi_node *node, struct dagi_metric *decisions, const char *service,
                       const char *trace_id, const struct dagi_authz_request *req,
                       const struct dagi_authz_decision *d)
{
    const char *decision = d->allow ? "allow" : "deny";
    if (decisions)
        dagi_metric_inc(decisions,
                        (const char *[]){dagi_authz_action_prefix(req->action), decision});
    if (d->allow)
        return;
    dagi_log_info(trace_id, "policy denied", "service", service, "action", req->action, "resource",
                  req->resource, "team", req->team && *req->team ? req->team : NULL, "reason",
                  d->reason, "rule", d->rule);
    char subject[160];
    snprintf(subject, sizeof(subject), "action:%.128s", req->action ? req->action : "");
    json_t *meta = json_pack("{s:s,s:s?,s:s?,s:s?}", "reason", d->reason ? d->reason : "",
                             "resource", req->resource, "team",
                             req->team && *req->team ? req->team : NULL, "rule", d->rule);
    struct dagi_audit_event ev = {.service = service,
                                  .action = "deny",
                                  .actor = req->principal,
                                  .subject = subject,
                                  .decision = "deny",
                                  .trace_id = trace_id,
                                  .metadata = meta};
    dagi_audit_emit(node, &ev);
    json_decref(meta);
}
