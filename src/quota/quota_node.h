/* Quotas in a running node: one process-wide service (the counters on the
 * node's database and the current budgets), and its admin routes.
 *
 * The service is made on first use through dagi_node_shared("quota"), so
 * the router and the admin routes share one store and one set of budgets.
 * Its budgets come from the file registry.quotas names when it is made
 * (none when unset or invalid: an invalid file is logged, never fatal here -
 * `dagi config check` and the registry refuse it earlier); the data plane
 * replaces them when the registry publishes a new "quotas" document.  It
 * also purges expired reservations once an hour on the worker pool.
 * Events carry the source "quota@<node.name>".
 *
 * Routes (docs/QUOTAS.md), admin only:
 *   GET  /v1/quota/usage?user=&team=&agent=   every counter that applies
 *   POST /v1/quota/reset {"budget": id, "subject": id}
 *        restarts that counter's window from zero; audited (quota/reset). */
#ifndef DAGI_QUOTA_NODE_H
#define DAGI_QUOTA_NODE_H

#include "core/err.h"
#include "quota/quota_store.h"

struct dagi_node;
struct dagi_quota;

/* The node's service; NULL when the node has no database.  Loop thread. */
struct dagi_quota *dagi_quota_of_node(struct dagi_node *node);
/* Borrowed; lives as long as the node. */
struct dagi_quota_store *dagi_quota_store_of(struct dagi_quota *q);
/* The current budgets: a new reference (release with
 * dagi_quota_budgets_unref).  Any thread. */
struct dagi_quota_budgets *dagi_quota_current(struct dagi_quota *q);
/* Swaps in new budgets, taking the caller's reference; requests that hold
 * the old set finish with it.  Any thread. */
void dagi_quota_replace(struct dagi_quota *q, struct dagi_quota_budgets *budgets);

/* Registers the admin routes (and makes the service).  0, or an error when
 * a route cannot be added. */
int dagi_quota_routes_register(struct dagi_node *node, struct dagi_error *err);

#endif
