/* The principal of a request, resolved once here at the edge
 * (ARCHITECTURE.md, Identity) and handed to the router as "caller":
 *
 *   {"principal": "user:alice", "team": "core",
 *    "subjects": ["user:alice", "key:k1", "role:dev", "team:core", ...]}
 *
 * The router decides with it (authz/authz.h) and never takes a caller from
 * the outside: the gateway builds the router's request itself, so a client
 * cannot put one there. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "gateway/gateway_internal.h"
#include "identity/identity.h"

static void add_subject(json_t *subjects, const char *kind, const char *id)
{
    if (!id || !*id)
        return;
    char s[DAGI_CALLER_ID_MAX + 16];
    snprintf(s, sizeof(s), "%s:%s", kind, id);
    size_t i;
    json_t *v;
    json_array_foreach(subjects, i, v)
    {
        if (!strcmp(json_string_value(v), s))
            return;
    }
    json_array_append_new(subjects, json_string(s));
}

json_t *gw_caller_json(struct dagi_http_req *req, const char *const *teams, size_t n_teams)
{
    const struct dagi_caller *c = dagi_gate_caller(req);
    json_t *subjects = json_array();
    char principal[DAGI_CALLER_ID_MAX + 16] = "";
    if (c && c->kind == DAGI_CALLER_ADMIN) {
        snprintf(principal, sizeof(principal), "admin");
    } else if (c && (c->kind == DAGI_CALLER_KEY || c->kind == DAGI_CALLER_JWT) && c->user_id[0]) {
        snprintf(principal, sizeof(principal), "user:%s", c->user_id);
    } else if (c && c->kind == DAGI_CALLER_ROUTE) {
        /* A signed webhook speaks for the outside system that signed it,
         * and only to the agent of its route. */
        const char *agent = dagi_http_req_param(req, "agent_id");
        snprintf(principal, sizeof(principal), "hook:%s", agent ? agent : "");
    }
    if (principal[0])
        json_array_append_new(subjects, json_string(principal));
    if (c) {
        add_subject(subjects, "key", c->key_id);
        for (size_t i = 0; i < c->role_count; i++)
            add_subject(subjects, "role", c->roles[i]);
        add_subject(subjects, "team", c->team);
    }
    for (size_t i = 0; i < n_teams; i++)
        add_subject(subjects, "team", teams[i]);
    /* The team a request acts in: the key's own, else the only one the
     * caller belongs to; several and none named = none (the default
     * entitlements). */
    const char *team = c && c->team[0] ? c->team : n_teams == 1 ? teams[0] : NULL;
    json_t *out = json_pack("{s:o,s:o}", "principal",
                            principal[0] ? json_string(principal) : json_null(), "subjects",
                            subjects);
    if (team)
        json_object_set_new(out, "team", json_string(team));
    return out;
}

/* --- resolving the teams, then asking the router --- */

struct pending {
    struct gw_state *gw;
    struct dagi_http_req *req;
    const struct gw_call_ops *ops;
    json_t *body;
    bool stream;
    int64_t t0;
    struct gw_call proto;
    bool has_proto;
    struct dagi_identity_fetch *fetch;
};

static void start_with(struct pending *p, const struct dagi_identity_teams *teams)
{
    const char *ids[DAGI_IDENTITY_TEAMS_MAX];
    size_t n = 0;
    for (size_t i = 0; teams && i < teams->count && n < DAGI_IDENTITY_TEAMS_MAX; i++)
        ids[n++] = teams->teams[i].team;
    json_object_set_new(p->body, "caller", gw_caller_json(p->req, ids, n));
    gw_call_start(p->gw, p->req, p->ops, p->body, p->stream, p->t0,
                  p->has_proto ? &p->proto : NULL);
}

static void on_teams(void *ud, int rc, const struct dagi_identity_teams *teams,
                     const struct dagi_error *err)
{
    struct pending *p = ud;
    dagi_http_req_on_close(p->req, NULL, NULL);
    if (rc) {
        /* The graph cannot answer: the caller goes on with what its
         * credential says (its key's team), never with more. */
        dagi_log_warn(dagi_http_req_trace_id(p->req), "gateway: teams unknown for this request",
                      "error", err ? err->message : dagi_strerror(rc));
        teams = NULL;
    }
    start_with(p, teams);
    free(p);
}

static void on_pending_close(struct dagi_http_req *req, void *ud)
{
    (void)req;
    struct pending *p = ud;
    dagi_identity_fetch_cancel(p->fetch);
    json_decref(p->body);
    free(p);
}

void gw_ask_router(struct gw_state *gw, struct dagi_http_req *req, const struct gw_call_ops *ops,
                   json_t *body, bool stream, int64_t t0, const struct gw_call *proto)
{
    struct pending stack = {gw, req, ops, body, stream, t0, {0}, proto != NULL, NULL};
    if (proto)
        stack.proto = *proto;
    const struct dagi_caller *c = dagi_gate_caller(req);
    struct dagi_identity *id = dagi_identity_of(gw->node);
    char principal[DAGI_CALLER_ID_MAX + 16];
    /* Only users have teams in the graph; the admin key and webhooks act
     * as themselves. */
    if (!id || !c || (c->kind != DAGI_CALLER_KEY && c->kind != DAGI_CALLER_JWT) ||
        !c->user_id[0]) {
        start_with(&stack, NULL);
        return;
    }
    snprintf(principal, sizeof(principal), "user:%s", c->user_id);
    struct pending *p = dagi_xcalloc(1, sizeof(*p));
    *p = stack;
    const struct dagi_identity_teams *teams = NULL;
    struct dagi_error err = {0};
    int rc = dagi_identity_resolve(id->cache, principal, &teams, on_teams, p, &p->fetch, &err);
    if (rc == DAGI_IDENTITY_PENDING) {
        dagi_http_req_on_close(req, on_pending_close, p);
        return;
    }
    if (rc == DAGI_EAGAIN || rc == DAGI_ECLOSED) {
        json_decref(body);
        free(p);
        dagi_http_respond_error(req, 503, "unavailable", NULL, "the node is busy; try again");
        return;
    }
    /* 0: a fresh entry; DAGI_EINVAL: a user id the graph cannot hold (it
     * has no teams there). */
    start_with(p, rc ? NULL : teams);
    free(p);
}
