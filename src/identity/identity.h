/* The node's identity: one graph and one principal cache per process,
 * shared by the admin API (identity_routes.c), the gateway (which resolves
 * every request's principal through the cache) and whoever else asks.
 *
 * The graph lives in the node's relational store (graph URL "sql"); the
 * cache keeps a principal's teams for auth.key_cache_ttl.  Both are made
 * on first use and go when the node stops; work still in flight on the
 * pool then holds its own references (graph.h, identity_cache.h).
 *
 * Loop thread only. */
#ifndef DAGI_IDENTITY_IDENTITY_H
#define DAGI_IDENTITY_IDENTITY_H

#include "core/err.h"
#include "identity/graph.h"
#include "identity/identity_cache.h"

struct dagi_node;

struct dagi_identity {
    struct dagi_graph *graph;
    struct dagi_identity_cache *cache;
};

/* NULL (and logged) when the node has no store or the graph cannot open. */
struct dagi_identity *dagi_identity_of(struct dagi_node *node);

/* The admin API (docs/IDENTITY.md): /v1/users..., /v1/teams... - every
 * route needs the admin key or the "admin" role.  Changes are audited
 * (service "identity") and invalidate the cache. */
int dagi_identity_routes_register(struct dagi_node *node, struct dagi_error *err);

#endif
