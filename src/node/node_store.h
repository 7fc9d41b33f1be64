/* The node's relational store: opened and migrated at start, with the
 * outbox relay running once the JetStream streams exist.  Internal. */
#ifndef DAGI_NODE_STORE_H
#define DAGI_NODE_STORE_H

#include "core/err.h"

struct dagi_node;
struct dagi_db;
struct dagi_outbox_relay;

struct dagi_keystore;

struct dagi_node_store {
    char *url;
    struct dagi_db *db;
    struct dagi_outbox_relay *relay;
    struct dagi_keystore *keys; /* user API keys (access/keystore.h) */
};

/* The URL store.url names, or sqlite:<data_dir>/dagi.db; caller frees. */
char *dagi_node_store_url(const struct dagi_node *node_or_null, const char *configured,
                          const char *data_dir);
int dagi_node_store_start(struct dagi_node *node, struct dagi_node_store *ns,
                          struct dagi_error *err);
/* Stops the relay (before the pool stops). */
void dagi_node_store_drain(struct dagi_node_store *ns);
/* Closes the database (after the pool stopped). */
void dagi_node_store_close(struct dagi_node_store *ns);

#endif
