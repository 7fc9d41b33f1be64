#include "gate.h"

#include "adminkey.h"
#include "node.h"

static const struct dagi_principal admin_principal = {"admin", "admin", true};

int dagi_gate_check(struct dagi_http_req *req, const struct dagi_http_route *route, void *ud)
{
    struct dagi_node *node = ud;
    if (route->flags & DAGI_ROUTE_PUBLIC)
        return 0;
    const char *token;
    size_t len;
    if (!dagi_bearer_token(dagi_http_req_header(req, "authorization"), &token, &len)) {
        dagi_http_set_header(req, "WWW-Authenticate", "Bearer");
        dagi_http_respond_error(req, 401, "unauthorized", NULL,
                                "this route needs an API key: Authorization: Bearer <key>");
        return -1;
    }
    if (!dagi_admin_key_check(dagi_node_admin_key(node), token, len)) {
        dagi_http_set_header(req, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
        dagi_http_respond_error(req, 401, "unauthorized", NULL, "the API key is not valid");
        return -1;
    }
    dagi_http_req_set_principal(req, (void *)&admin_principal);
    return 0;
}
