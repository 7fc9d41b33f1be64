#include "node_store.h"

#include "access/apikey.h"
#include "access/keystore.h"

#include "core/log.h"
#include "core/mem.h"
#include "node.h"
#include "store/db.h"
#include "store/migrate.h"
#include "store/outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

char *dagi_node_store_url(const struct dagi_node *node, const char *configured,
                          const char *data_dir)
{
    (void)node;
    if (configured && *configured)
        return dagi_xstrdup(configured);
    return dagi_xasprintf("sqlite:%s/dagi.db", data_dir);
}

static void on_streams_ready(void *ud)
{
    struct dagi_node *node = ((void **)ud)[0];
    struct dagi_node_store *ns = ((void **)ud)[1];
    free(ud);
    const struct dagi_config *c = dagi_node_cfg(node);
    char *holder = dagi_xasprintf("%s/%ld", c->node.name, (long)getpid());
    struct dagi_outbox_relay_opts o = {
        .db = ns->db,
        .js = dagi_node_js(node),
        .pool = dagi_node_pool(node),
        .holder = holder,
        .batch = (unsigned)c->store.outbox.batch,
        .poll_ms = (unsigned)c->store.outbox.poll_interval,
        .lease_ms = (unsigned)c->store.outbox.lease,
        .retention_ms = c->store.outbox.retention,
        .metrics = dagi_node_metrics(node),
    };
    struct dagi_error err = {0};
    if (dagi_outbox_relay_start(dagi_node_base(node), &o, &ns->relay, &err))
        dagi_log_error(NULL, "outbox relay did not start", "error", err.message);
    free(holder);
}

int dagi_node_store_start(struct dagi_node *node, struct dagi_node_store *ns,
                          struct dagi_error *err)
{
    const struct dagi_config *c = dagi_node_cfg(node);
    ns->url = dagi_node_store_url(node, c->store.url, c->node.data_dir);
    struct dagi_db_opts o = {.pool_size = (unsigned)c->store.pool_size,
                             .busy_timeout_ms = (unsigned)c->store.busy_timeout};
    int rc = dagi_db_open(ns->url, &o, &ns->db, err);
    if (rc)
        return rc;
    /* Before the loop runs, so blocking here is allowed: a node never serves
     * on a schema older than its code. */
    struct dagi_migrate_status st;
    rc = dagi_migrate(ns->db, NULL, 0, &st, err);
    if (rc)
        return rc;
    char version[32];
    snprintf(version, sizeof(version), "%lld", (long long)st.current);
    dagi_log_info(NULL, "store ready", "backend", dagi_db_backend(ns->db)->name,
                  "schema_version", version);
    /* User API keys: stored as keyed hashes; the key is <data_dir>/keys.secret. */
    struct dagi_apikey_secret secret;
    bool created = false;
    rc = dagi_apikey_secret_load_or_create(c->node.data_dir, &secret, &created, err);
    if (rc)
        return rc;
    rc = dagi_keystore_new(ns->db, &secret,
                           &(struct dagi_keystore_opts){.cache_ttl_ms = c->auth.key_cache_ttl},
                           &ns->keys, err);
    dagi_apikey_secret_wipe(&secret);
    if (rc)
        return rc;
    if (c->store.outbox.relay && dagi_node_js(node)) {
        void **ud = dagi_xcalloc(2, sizeof(void *));
        ud[0] = node;
        ud[1] = ns;
        dagi_node_on_streams_ready(node, on_streams_ready, ud);
    }
    return DAGI_OK;
}

void dagi_node_store_drain(struct dagi_node_store *ns)
{
    if (ns->relay)
        dagi_outbox_relay_stop(ns->relay);
    ns->relay = NULL;
}

void dagi_node_store_close(struct dagi_node_store *ns)
{
    dagi_keystore_free(ns->keys);
    ns->keys = NULL;
    if (ns->db)
        dagi_db_close(ns->db);
    free(ns->url);
    ns->db = NULL;
    ns->url = NULL;
}
