/* The pdp role (seed 1.1, RBAC/PDP): keeps the policy bundle and answers
 * policy decisions for callers that do not link src/authz themselves.
 *
 * The bundle: compiled at init and on every reload; a bundle that does not
 * compile is refused with its file:line errors (at init the node does not
 * start; on reload the previous bundle stays).  For now it is the file
 * named by registry.policies; the control plane's KV watch replaces that
 * source (pdp.c, load_policy_text).  No file named: no bundle, and only
 * the admin may act (authz.h, the one built-in rule).
 *
 * Bus: `dagi.pdp.decide`
 *   request  {"principal": "tg:42", "subjects": ["tg:42", "team:energy"]?,
 *             "team": "energy"?, "action": "agent.use", "resource": "helion"?}
 *   reply    {"allow": true|false, "reason": "granted"|"explicit_deny"|...,
 *             "rule": "<role id>"|null}
 *   errors   invalid (a member missing or of the wrong type; the message
 *            names it)
 *
 * HTTP:
 *   POST /v1/pdp/decide   the same body and answer; for the admin key and
 *                         callers the bundle grants pdp.decide (403 else);
 *                         400 {"error": {"code": "invalid_field", "field"}}
 *   GET  /v1/pdp/bundle   admin: {"loaded", "source", "checksum", "roles",
 *                         "grants", "denies", "bindings", "plans", "teams",
 *                         "loaded_at_ms"}
 *
 * Every deny is logged (ids only), counted (pdp_decisions_total) and
 * audited (service "pdp", action "deny"): authz/report.h. */
#ifndef DAGI_PDP_H
#define DAGI_PDP_H

#include "node/node.h"

extern const struct dagi_role dagi_role_pdp;

#endif
