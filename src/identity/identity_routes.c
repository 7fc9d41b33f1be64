/* The identity admin API (identity.h, docs/IDENTITY.md): users, teams,
 * members, Telegram chats and projects.
 *
 * The shape of a body (types, unknown members) is the gate's to check
 * (struct dagi_body_rules below), and path ids are checked here on the
 * loop; everything else - ids, names, attributes, the graph's own rules -
 * is the graph library's, which names the field in its error message
 * ("team: no such team 'x'"): that field becomes the "field" of the
 * 400/404/409.  The graph blocks, so each request runs as a job on the
 * worker pool and is answered back on the loop.  A client that leaves
 * meanwhile is noticed (on_close) and its answer dropped - the change itself
 * stands, is audited and invalidates the principal cache all the same.
 * What each operation does is in identity_ops.c. */
#include "identity/identity.h"
#include "identity/identity_routes_internal.h"

#include "auditlog/audit.h"
#include "core/http_server.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/pool.h"
#include "node/gate.h"
#include "node/node.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUTE_MAX_BODY (64 * 1024)

/* --- the job --- */

static void job_free(struct id_job *j)
{
    json_decref(j->body);
    free(j->attrs);
    dagi_graph_user_release(&j->u);
    dagi_graph_team_release(&j->t);
    dagi_graph_project_release(&j->p);
    dagi_graph_list_release(&j->list);
    dagi_graph_close(j->graph);
    dagi_identity_cache_unref(j->cache);
    free(j);
}

/* --- answering --- */

/* The field an error message of the graph begins with ("team: ..."). */
static const char *error_field(const char *message, char *buf, size_t cap)
{
    size_t n = strspn(message, "abcdefghijklmnopqrstuvwxyz_");
    if (n == 0 || n >= cap || message[n] != ':' || message[n + 1] != ' ')
        return NULL;
    memcpy(buf, message, n);
    buf[n] = '\0';
    return buf;
}

static void respond_failure(struct dagi_http_req *req, int rc, const struct dagi_error *err)
{
    const char *message = err->message[0] ? err->message : dagi_strerror(rc);
    char buf[32];
    const char *field = error_field(message, buf, sizeof(buf));
    switch (rc) {
    case DAGI_EINVAL:
        dagi_http_respond_error(req, 400, "invalid_field", field, "%s", message);
        break;
    case DAGI_ENOENT:
        dagi_http_respond_error(req, 404, "not_found", field, "%s", message);
        break;
    case DAGI_EEXIST:
        dagi_http_respond_error(req, 409, "conflict", field, "%s", message);
        break;
    case DAGI_EAGAIN:
    case DAGI_EUNAVAIL:
    case DAGI_ECANCELED:
        dagi_http_set_header(req, "Retry-After", "1");
        dagi_http_respond_error(req, 503, "store_unavailable", NULL, "%s", message);
        break;
    default:
        dagi_log_error(dagi_http_req_trace_id(req), "identity graph failed", "error", message);
        dagi_http_respond_error(req, 500, "store_error", NULL, "the identity graph failed: %s",
                                message);
        break;
    }
}

static void audit(struct id_job *j)
{
    char subject[DAGI_GRAPH_REF_MAX + 1] = "";
    json_t *meta = json_object();
    struct dagi_audit_event ev = {.service = "identity",
                                  .action = j->op->audit_action,
                                  .actor = j->actor,
                                  .trace_id = j->trace_id[0] ? j->trace_id : NULL};
    j->op->audit(j, &ev, meta, subject);
    ev.subject = subject[0] ? subject : NULL;
    ev.metadata = json_object_size(meta) ? meta : NULL;
    dagi_audit_emit(j->node, &ev);
    json_decref(meta);
}

/* --- the pool side --- */

static void on_job_work(void *ud)
{
    struct id_job *j = ud;
    j->rc = j->op->work(j);
}

static void on_req_close(struct dagi_http_req *req, void *ud)
{
    (void)req;
    struct id_job *j = ud;
    j->req = NULL;
}

static void on_job_done(void *ud, bool cancelled)
{
    struct id_job *j = ud;
    struct dagi_http_req *req = j->req;
    /* Whether or not the client is still there: the change is made. */
    if (!cancelled && j->rc == DAGI_OK && j->op->audit_action)
        audit(j);
    if (!req)
        goto out;
    dagi_http_req_on_close(req, NULL, NULL);
    if (cancelled) {
        dagi_http_respond_error(req, 503, "unavailable", NULL, "the node is stopping");
    } else if (j->rc) {
        respond_failure(req, j->rc, &j->err);
    } else {
        int status = 200;
        json_t *doc = j->op->answer(j, &status);
        dagi_http_respond_json(req, status, doc);
    }
out:
    job_free(j);
}

static void actor_of(struct dagi_http_req *req, char *out, size_t cap)
{
    const struct dagi_caller *c = dagi_gate_caller(req);
    char user[DAGI_GRAPH_ID_MAX + 1], principal[DAGI_GRAPH_REF_MAX + 1];
    if (!c || c->kind == DAGI_CALLER_ADMIN) {
        snprintf(out, cap, "admin");
    } else if (dagi_graph_user_id_from(c->user_id, user) == DAGI_OK) {
        dagi_graph_user_principal(user, principal);
        snprintf(out, cap, "%s", principal);
    } else {
        snprintf(out, cap, "key:%s", c->key_id[0] ? c->key_id : "unknown");
    }
}

static struct id_job *job_new(struct dagi_http_req *req, const struct identity_op *op)
{
    struct id_job *j = dagi_xcalloc(1, sizeof(*j));
    j->op = op;
    actor_of(req, j->actor, sizeof(j->actor));
    snprintf(j->trace_id, sizeof(j->trace_id), "%s", dagi_http_req_trace_id(req));
    return j;
}

/* Takes the job whatever happens. */
static void submit(struct dagi_http_req *req, struct dagi_node *node, struct id_job *j)
{
    struct dagi_identity *id = dagi_identity_of(node);
    if (!id) {
        job_free(j);
        dagi_http_respond_error(req, 503, "unavailable", NULL, "the identity graph is unavailable");
        return;
    }
    j->req = req;
    j->node = node;
    j->graph = dagi_graph_ref(id->graph);
    j->cache = dagi_identity_cache_ref(id->cache);
    dagi_http_req_on_close(req, on_req_close, j);
    if (dagi_pool_submit(dagi_node_pool(node), on_job_work, on_job_done, j)) {
        dagi_http_req_on_close(req, NULL, NULL);
        job_free(j);
        dagi_http_set_header(req, "Retry-After", "1");
        dagi_http_respond_error(req, 503, "busy", NULL, "the worker pool is full; retry later");
    }
}

/* --- input on the loop --- */

/* limit and cursor of a list; false after answering 400. */
static bool query_page(struct dagi_http_req *req, struct id_job *j)
{
    const char *limit = dagi_http_req_query_param(req, "limit");
    const char *cursor = dagi_http_req_query_param(req, "cursor");
    if (limit) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(limit, &end, 10);
        if (!*limit || *end || errno || v == 0 || v > DAGI_GRAPH_LIST_MAX) {
            dagi_http_respond_error(req, 400, "invalid_query", "limit", "limit: between 1 and %d",
                                    DAGI_GRAPH_LIST_MAX);
            return false;
        }
        j->page.limit = v;
    }
    if (cursor) {
        if (strlen(cursor) > DAGI_GRAPH_CURSOR_MAX) {
            dagi_http_respond_error(req, 400, "invalid_query", "cursor",
                                    "cursor: not a cursor of this list");
            return false;
        }
        snprintf(j->cursor, sizeof(j->cursor), "%s", cursor);
        j->page.cursor = j->cursor;
    }
    return true;
}

/* The path's {name} as a user id; false after answering 404. */
static bool path_user(struct dagi_http_req *req, const char *name, char out[DAGI_GRAPH_ID_MAX + 1])
{
    const char *v = dagi_http_req_param(req, name);
    if (!v || dagi_graph_user_id_from(v, out)) {
        dagi_http_respond_error(req, 404, "not_found", name, "%s: no such user", name);
        return false;
    }
    return true;
}

static bool path_team(struct dagi_http_req *req, char out[DAGI_GRAPH_ID_MAX + 1])
{
    const char *v = dagi_http_req_param(req, "id");
    if (!v || !dagi_graph_slug_valid(v)) {
        dagi_http_respond_error(req, 404, "not_found", "id", "id: no such team");
        return false;
    }
    snprintf(out, DAGI_GRAPH_ID_MAX + 1, "%s", v);
    return true;
}

static bool parse_chat_id_text(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = s && *s ? strtoll(s, &end, 10) : 0;
    if (!s || !*s || errno || *end)
        return false;
    *out = (int64_t)v;
    return true;
}

/* A string member (absent or null: NULL).  The gate checked the type; a
 * NUL inside would be cut by the store, so it is refused. */
static bool body_string(struct dagi_http_req *req, json_t *body, const char *field,
                        const char **out)
{
    json_t *v = json_object_get(body, field);
    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
        dagi_http_respond_error(req, 400, "invalid_field", field, "%s: must be text", field);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

static bool body_attributes(struct dagi_http_req *req, json_t *body, struct id_job *j)
{
    json_t *v = json_object_get(body, "attributes");
    if (!v || json_is_null(v))
        return true;
    if (!json_is_object(v)) {
        dagi_http_respond_error(req, 400, "invalid_field", "attributes",
                                "attributes: must be a JSON object");
        return false;
    }
    j->attrs = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    if (!j->attrs) {
        dagi_http_respond_error(req, 400, "invalid_field", "attributes",
                                "attributes: cannot be serialized");
        return false;
    }
    return true;
}

/* The body of a create or update: the job owns it from here. */
static bool take_body(struct dagi_http_req *req, struct id_job *j)
{
    return dagi_http_req_json(req, &j->body) == 0;
}

static bool need_change(struct dagi_http_req *req, struct id_job *j)
{
    if (j->name || j->plan || j->attrs)
        return true;
    dagi_http_respond_error(req, 400, "invalid_field", NULL,
                            "nothing to change: give name%s or attributes",
                            j->op == &op_team_update ? ", plan" : "");
    return false;
}

/* --- handlers --- */

static void run_or_drop(struct dagi_http_req *req, void *node, struct id_job *j, bool ok)
{
    if (ok)
        submit(req, node, j);
    else
        job_free(j);
}

static void on_user_list(struct dagi_http_req *req, void *ud)
{
    struct id_job *j = job_new(req, &op_user_list);
    run_or_drop(req, ud, j, query_page(req, j));
}

static void on_user_create(struct dagi_http_req *req, void *ud)
{
    struct id_job *j = job_new(req, &op_user_create);
    bool ok = take_body(req, j) && body_string(req, j->body, "id", &j->new_id) &&
              body_string(req, j->body, "name", &j->name) && body_attributes(req, j->body, j);
    run_or_drop(req, ud, j, ok);
}

static void on_user_get(struct dagi_http_req *req, void *ud)
{
    struct id_job *j = job_new(req, &op_user_get);
    run_or_drop(req, ud, j, path_user(req, "id", j->id));
}

static void on_user_update(struct dagi_http_req *req, void *ud)
{
    struct id_job *j = job_new(req, &op_user_update);
    bool ok = path_user(req, "id", j->id) && take_body(req, j) &&
              body_string(req, j->body, "name", &j->name) && body_attributes(req, j->body, j) &&
              need_change(req, j);
    run_or_drop(req, ud, j, ok);
}

static void on_user_delete(struct dagi_http_req *req, void *ud)
{
    struct id_job *j = job_new(req, &op_user_delete);
    run_or_drop(req, ud, j, path_user(req, "id", j->id));
}

static void on_user_teams(struct dagi_http_req *req, void *ud)
{
    struct id_job *j = job_new(req, &op_user_teams);
    run_or_drop(req, ud, j, path_user(req, "id", j->id) && query_page(req, j));
}

static void on_team_list(struct dagi_http_req *req, void *ud)
{
    struct id_job *j = job_new(req, &op_team_list);
    run_or_drop(req, ud, j, query_page(req, j));
}

static void on_team_create(struct dagi_http_req *req, void *ud)
{
    struct id_job *j = job_new(req, &op_team_create);
    bool ok = take_body(req, j) && body_string(req, j->body, "id", &j->new_id) &&
              body_string(req, j->body, "name", &j->name) &&
              body_string(req, j->body, "plan", &j->plan) && body_attributes(req, j->body, j);
    run_or_drop(req, ud, j, ok);
}

static void on_team_get(struct dagi_http_req *req, void *ud)
{
    struct id_job *j = job_new(req, &op_team_get);
    run_or_drop(req, ud, j, path_team(req, j->id));
}

static void on_team_update(struct dagi_http_req *req, void *ud)
{
    struct id_job *j = job_new(req, &op_team_update);
    bool ok = path_team(req, j->id) && take_body(req, j) &&
              body_string(req, j->body, "name", &j->name) &&
              body_string(req, j->body, "plan", &j->plan) && body_attributes(req, j->body, j) &&
              need_change(req, j);
    run_or_drop(req, ud, j, ok);
}

static void on_team_delete(struct dagi_http_req *req, void *ud)
{
    struct id_job *j = job_new(req, &op_team_delete);
    run_or_drop(req, ud, j, path_team(req, j->id));
}

static void on_member_list(struct dagi_http_req *req, void *ud)
{
    struct id_job *j = job_new(req, &op_member_list);
    run_or_drop(req, ud, j, path_team(req, j->id) && query_page(req, j));
}

static void on_member_add(struct dagi_http_req *req, void *ud)
{
    struct id_job *j = job_new(req, &op_member_add);
    const char *user = NULL, *role = NULL;
    bool ok = path_team(req, j->id) && take_body(req, j) &&
              body_string(req, j->body, "user", &user) && body_string(req, j->body, "role", &role);
    j->role = DAGI_GRAPH_MEMBER;
    if (ok && role && dagi_graph_role_parse(role, &j->role)) {
        dagi_http_respond_error(req, 400, "invalid_field", "role", "role: owner, admin or member");
        ok = false;
    }
    /* the library names a bad user id ("user: ..."); an over-long one would
     * not fit the job's buffer, so it is cut to one that is surely bad */
    if (ok)
        snprintf(j->user, sizeof(j->user), "%s",
                 !user || strlen(user) > DAGI_GRAPH_REF_MAX ? "!" : user);
    run_or_drop(req, ud, j, ok);
}

static void on_member_remove(struct dagi_http_req *req, void *ud)
{
    struct id_job *j = job_new(req, &op_member_remove);
    run_or_drop(req, ud, j, path_team(req, j->id) && path_user(req, "user", j->user));
}

static void on_chat_list(struct dagi_http_req *req, void *ud)
{
    struct id_job *j = job_new(req, &op_chat_list);
    run_or_drop(req, ud, j, path_team(req, j->id) && query_page(req, j));
}

static void on_chat_set(struct dagi_http_req *req, void *ud)
{
    struct id_job *j = job_new(req, &op_chat_set);
    bool ok =
        path_team(req, j->id) && take_body(req, j) && body_string(req, j->body, "agent", &j->agent);
    if (ok) {
        /* an integer, or its decimal text (ids of 52 bits and clients that
         * keep them as strings) */
        json_t *v = json_object_get(j->body, "chat_id");
        if (json_is_integer(v))
            j->chat_id = (int64_t)json_integer_value(v);
        else if (!json_is_string(v) || !parse_chat_id_text(json_string_value(v), &j->chat_id))
            ok = false;
        if (!ok)
            dagi_http_respond_error(req, 400, "invalid_field", "chat_id",
                                    "chat_id: a Telegram chat id (an integer)");
    }
    run_or_drop(req, ud, j, ok);
}

static void on_chat_unset(struct dagi_http_req *req, void *ud)
{
    struct id_job *j = job_new(req, &op_chat_unset);
    bool ok = path_team(req, j->id);
    if (ok && !parse_chat_id_text(dagi_http_req_param(req, "chat_id"), &j->chat_id)) {
        dagi_http_respond_error(req, 404, "not_found", "chat_id", "chat_id: no such chat");
        ok = false;
    }
    run_or_drop(req, ud, j, ok);
}

static void on_project_list(struct dagi_http_req *req, void *ud)
{
    struct id_job *j = job_new(req, &op_project_list);
    run_or_drop(req, ud, j, path_team(req, j->id) && query_page(req, j));
}

static void on_project_create(struct dagi_http_req *req, void *ud)
{
    struct id_job *j = job_new(req, &op_project_create);
    bool ok = path_team(req, j->id) && take_body(req, j) &&
              body_string(req, j->body, "id", &j->new_id) &&
              body_string(req, j->body, "name", &j->name) && body_attributes(req, j->body, j);
    run_or_drop(req, ud, j, ok);
}

/* --- bodies the gate checks --- */

/* No caps here (a cap in the rules answers 413): the library's caps answer
 * 400 naming the field, and the route's body cap bounds everything. */
#define RULES(name, ...)                                                                           \
    static const struct dagi_body_field name##_fields[] = {__VA_ARGS__};                           \
    static const struct dagi_body_rules name##_body = {name##_fields,                              \
                                                       DAGI_ARRAY_LEN(name##_fields), true};       \
    static const struct dagi_gate_rules name##_rules = {.body = &name##_body}

RULES(user_create, {"id", DAGI_BODY_STRING, true, 0}, {"name", DAGI_BODY_STRING, false, 0},
      {"attributes", DAGI_BODY_OBJECT, false, 0});
RULES(user_update, {"name", DAGI_BODY_STRING, false, 0},
      {"attributes", DAGI_BODY_OBJECT, false, 0});
RULES(team_create, {"id", DAGI_BODY_STRING, true, 0}, {"name", DAGI_BODY_STRING, false, 0},
      {"plan", DAGI_BODY_STRING, false, 0}, {"attributes", DAGI_BODY_OBJECT, false, 0});
RULES(team_update, {"name", DAGI_BODY_STRING, false, 0}, {"plan", DAGI_BODY_STRING, false, 0},
      {"attributes", DAGI_BODY_OBJECT, false, 0});
RULES(member_add, {"user", DAGI_BODY_STRING, true, 0}, {"role", DAGI_BODY_STRING, false, 0});
RULES(chat_set, {"chat_id", DAGI_BODY_ANY, true, 0}, {"agent", DAGI_BODY_STRING, false, 0});
RULES(project_create, {"id", DAGI_BODY_STRING, true, 0}, {"name", DAGI_BODY_STRING, false, 0},
      {"attributes", DAGI_BODY_OBJECT, false, 0});

int dagi_identity_routes_register(struct dagi_node *n, struct dagi_error *err)
{
    if (!dagi_identity_of(n))
        return dagi_error_set(err, DAGI_EUNAVAIL, "the identity graph is unavailable");
#define R(method, pattern, handler, rules)                                                         \
    {                                                                                              \
        method, pattern, handler, n, DAGI_ROUTE_ADMIN, ROUTE_MAX_BODY, "admin", rules              \
    }
    const struct dagi_http_route routes[] = {
        R("GET", "/v1/users", on_user_list, NULL),
        R("POST", "/v1/users", on_user_create, &user_create_rules),
        R("GET", "/v1/users/{id}", on_user_get, NULL),
        R("PATCH", "/v1/users/{id}", on_user_update, &user_update_rules),
        R("DELETE", "/v1/users/{id}", on_user_delete, NULL),
        R("GET", "/v1/users/{id}/teams", on_user_teams, NULL),
        R("GET", "/v1/teams", on_team_list, NULL),
        R("POST", "/v1/teams", on_team_create, &team_create_rules),
        R("GET", "/v1/teams/{id}", on_team_get, NULL),
        R("PATCH", "/v1/teams/{id}", on_team_update, &team_update_rules),
        R("DELETE", "/v1/teams/{id}", on_team_delete, NULL),
        R("GET", "/v1/teams/{id}/members", on_member_list, NULL),
        R("POST", "/v1/teams/{id}/members", on_member_add, &member_add_rules),
        R("DELETE", "/v1/teams/{id}/members/{user}", on_member_remove, NULL),
        R("GET", "/v1/teams/{id}/chats", on_chat_list, NULL),
        R("POST", "/v1/teams/{id}/chats", on_chat_set, &chat_set_rules),
        R("DELETE", "/v1/teams/{id}/chats/{chat_id}", on_chat_unset, NULL),
        R("GET", "/v1/teams/{id}/projects", on_project_list, NULL),
        R("POST", "/v1/teams/{id}/projects", on_project_create, &project_create_rules),
    };
#undef R
    for (size_t i = 0; i < DAGI_ARRAY_LEN(routes); i++)
        if (dagi_http_server_add_route(dagi_node_http(n), &routes[i]))
            return dagi_error_set(err, DAGI_EINTERNAL, "identity: cannot add route %s %s",
                                  routes[i].method, routes[i].pattern);
    return DAGI_OK;
}
