/* The one gate every HTTP route passes before its handler runs (and before
 * its body is read): authentication now; rate limits and validation join it
 * in later issues.  Route flags decide what a route needs:
 *   DAGI_ROUTE_PUBLIC  nothing (health, readiness, metrics);
 *   DAGI_ROUTE_ADMIN   the admin key;
 *   neither            an authenticated principal - until user keys exist
 *                      that is the admin key too, so nothing is open by
 *                      default.
 * Missing or wrong credentials get 401 with a JSON body; the key is compared
 * in constant time (adminkey.h). */
#ifndef DAGI_GATE_H
#define DAGI_GATE_H

#include "core/http_server.h"

struct dagi_node;

/* The principal the gate attaches to a request (dagi_http_req_principal). */
struct dagi_principal {
    const char *id;   /* "admin" */
    const char *kind; /* "admin" */
    bool is_admin;
};

/* ud is the struct dagi_node. */
int dagi_gate_check(struct dagi_http_req *req, const struct dagi_http_route *route, void *ud);

#endif
