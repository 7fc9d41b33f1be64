/* What every decision leaves behind (seed 1.1: "every deny is logged,
 * counted and audited"), one helper for every role that decides - the pdp
 * role for outside callers, the router for its own in-process decisions.
 *
 *   counted  pdp_decisions_total{action_prefix, decision}: both answers,
 *            with bounded labels only (the action's family, allow|deny;
 *            never a user id, an agent or a resource);
 *   logged   a deny, at info: action, resource, reason, rule, team - ids,
 *            never content, and not the principal (the audit record holds
 *            it, pseudonymised);
 *   audited  a deny, through dagi_audit_emit(): service as given, action
 *            "deny", the principal as actor, "action:<action>" as subject.
 *
 * Loop thread (dagi_audit_emit's rule). */
#ifndef DAGI_AUTHZ_REPORT_H
#define DAGI_AUTHZ_REPORT_H

#include "authz/authz.h"

struct dagi_node;
struct dagi_metric;
struct dagi_metrics;

/* The pdp_decisions_total family (registered once; later calls return it). */
struct dagi_metric *dagi_authz_decisions_metric(struct dagi_metrics *m);

/* service: [a-z_]+ for the audit subject ("pdp", "router"). */
void dagi_authz_report(struct dagi_node *node, struct dagi_metric *decisions, const char *service,
                       const char *trace_id, const struct dagi_authz_request *req,
                       const struct dagi_authz_decision *d);

#endif
