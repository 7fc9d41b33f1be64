/* The admin API of user API keys (`/v1/admin/keys...`, docs/HTTP.md "API
 * keys"): create, list and revoke keys in the node's keystore.  Every route
 * needs the admin key or the "admin" role.  Internal to the node. */
#ifndef DAGI_KEYS_ROUTES_H
#define DAGI_KEYS_ROUTES_H

struct dagi_node;

void dagi_keys_routes_register(struct dagi_node *node);

#endif
