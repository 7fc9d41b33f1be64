/* What the identity admin API's files share: identity_routes.c (the
 * HTTP side: input, jobs, answers, registration) and identity_ops.c (each
 * operation: its work on the pool, its answer, its audit event).  Nothing
 * else includes it. */
#ifndef DAGI_IDENTITY_ROUTES_INTERNAL_H
#define DAGI_IDENTITY_ROUTES_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "auditlog/audit.h"
#include "identity/graph.h"
#include "identity/identity_cache.h"

struct dagi_http_req;
struct dagi_node;

struct id_job {
    struct dagi_http_req *req; /* NULL once the client has gone */
    struct dagi_node *node;
    struct dagi_graph *graph;          /* a reference */
    struct dagi_identity_cache *cache; /* a reference */
    const struct identity_op *op;
    char actor[DAGI_GRAPH_REF_MAX + 8];
    char trace_id[64];

    /* input: strings point into body, which the job owns */
    json_t *body;
    char id[DAGI_GRAPH_ID_MAX + 1];    /* the path's user or team */
    char user[DAGI_GRAPH_REF_MAX + 1]; /* a member: a user id or principal */
    int64_t chat_id;
    const char *new_id, *name, *plan, *agent;
    char *attrs; /* the body's attributes, serialized */
    enum dagi_graph_role role;
    struct dagi_graph_page_req page;
    char cursor[DAGI_GRAPH_CURSOR_MAX + 1];

    /* output */
    struct dagi_graph_user u;
    struct dagi_graph_team t;
    struct dagi_graph_project p;
    struct dagi_graph_member m;
    struct dagi_graph_chat chat;
    bool created;
    struct dagi_graph_list list;
    int rc;
    struct dagi_error err;
};

/* One operation: what it does on the pool, how it answers, and - for a
 * change - what it is called in the audit trail. */
struct identity_op {
    int (*work)(struct id_job *j);
    json_t *(*answer)(struct id_job *j, int *status);
    const char *audit_action; /* NULL: a read */
    void (*audit)(struct id_job *j, struct dagi_audit_event *ev, json_t *meta, char *subject);
};

extern const struct identity_op op_user_list, op_user_create, op_user_get, op_user_update,
    op_user_delete, op_user_teams, op_team_list, op_team_create, op_team_get, op_team_update,
    op_team_delete, op_member_list, op_member_add, op_member_remove, op_chat_list, op_chat_set,
    op_chat_unset, op_project_list, op_project_create;

#endif
