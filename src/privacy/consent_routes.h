/* The consent API (docs/PRIVACY_GATE.md, "Consent"; docs/HTTP.md):
 *
 *   GET    /v1/consent                the caller's records (an admin may
 *                                     add ?user=<principal>)
 *   PUT    /v1/consent/{agent_id}     {"granted": true|false} (an admin
 *                                     may add "user": "<principal>")
 *   DELETE /v1/consent/{agent_id}     revokes (an admin may add ?user=)
 *
 * The caller is the gate's (node/gate.h): "user:<id>" for API keys and
 * JWTs, "admin" for the admin key.  Every change is an audit event
 * privacy/consent_granted or privacy/consent_revoked: actor the caller,
 * subject "agent:<id>", metadata the record's user and the source -
 * never content.  Store calls run on the worker pool. */
#ifndef DAGI_PRIVACY_CONSENT_ROUTES_H
#define DAGI_PRIVACY_CONSENT_ROUTES_H

#include "core/err.h"

struct dagi_node;
struct dagi_http_server;
struct dagi_db;
struct dagi_pool;
struct dagi_audit_event;

/* On the node's HTTP server, with its store, pool and audit emitter.
 * Loop thread, once (a second call is DAGI_EEXIST). */
int dagi_consent_routes_register(struct dagi_node *node, struct dagi_error *err);

/* The same routes on any server.  The api is borrowed and must outlive the
 * server; audit is called on the loop thread for every change.  With node
 * set, the store, the pool and dagi_audit_emit() are the node's (read at
 * each request) and the other members are ignored. */
struct dagi_consent_api {
    struct dagi_node *node;
    struct dagi_db *db;
    struct dagi_pool *pool;
    void (*audit)(void *ud, const struct dagi_audit_event *ev);
    void *audit_ud;
};
int dagi_consent_routes_add(struct dagi_http_server *srv, const struct dagi_consent_api *api,
                            struct dagi_error *err);

#endif
