/* The node's identity object (identity.h): made on first use through the
 * node's shared-object slot, so the admin API and the gateway find the
 * same graph and the same cache. */
#include "identity/identity.h"

#include "core/log.h"
#include "core/mem.h"
#include "node/node.h"

#include <stdlib.h>

static void *on_create(struct dagi_node *node, void *ud)
{
    (void)ud;
    struct dagi_db *db = dagi_node_db(node);
    struct dagi_error err = {0};
    struct dagi_identity *id = dagi_xcalloc(1, sizeof(*id));
    const struct dagi_config *c = dagi_node_cfg(node);
    struct dagi_identity_cache_opts o = {.ttl_ms = c->auth.key_cache_ttl};
    int rc = db ? dagi_graph_open("sql", db, &id->graph, &err)
                : dagi_error_set(&err, DAGI_EUNAVAIL, "the node has no store");
    if (!rc)
        rc = dagi_identity_cache_new(id->graph, dagi_node_pool(node), &o, &id->cache, &err);
    if (rc) {
        dagi_log_error(NULL, "identity graph unavailable", "error", err.message);
        dagi_graph_close(id->graph);
        free(id);
        return NULL;
    }
    return id;
}

static void on_destroy(void *obj)
{
    struct dagi_identity *id = obj;
    /* lookups and admin jobs still on the pool hold their own references */
    dagi_identity_cache_unref(id->cache);
    dagi_graph_close(id->graph);
    free(id);
}

struct dagi_identity *dagi_identity_of(struct dagi_node *node)
{
    return dagi_node_shared(node, "identity", on_create, on_destroy, NULL);
}
