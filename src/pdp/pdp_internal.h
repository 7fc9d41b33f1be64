/* Internal to src/pdp. */
#ifndef DAGI_PDP_INTERNAL_H
#define DAGI_PDP_INTERNAL_H

#include <stdint.h>

#include "authz/authz.h"
#include "node/node.h"

struct dagi_metric;

struct pdp_state {
    struct dagi_node *node;
    /* The control plane's snapshot: its policy is the bundle (NULL = no
     * policy).  Replaced on the loop thread only; a decision is made
     * within one callback, so it needs no reference of its own. */
    struct dagi_cplane *cp;
    const struct dagi_authz_bundle *seen; /* the last one logged */
    int64_t loaded_at_ms;
    struct dagi_metric *decisions;
};

struct dagi_cplane;
/* The bundle in use (borrowed for the current callback). */
struct dagi_authz_bundle *pdp_bundle(const struct pdp_state *p);
/* Decides and reports (log, count, audit) one request. */
void pdp_decide(struct pdp_state *p, const char *trace_id, const struct dagi_authz_request *req,
                struct dagi_authz_decision *out);

void pdp_routes_register(struct pdp_state *p);

#endif
