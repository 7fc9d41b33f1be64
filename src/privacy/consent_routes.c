/* The consent API (consent_routes.h).
 *
 * As the key routes do (node/keys_routes.c): requests are validated on the
 * loop, the store call runs on the worker pool, the answer is written back
 * on the loop; a client that leaves meanwhile is noticed (on_close) and
 * only the answer is dropped - a change made is made, and audited. */
#include "privacy/consent_routes.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auditlog/audit.h"
#include "core/clock.h"
#include "core/http_server.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/pool.h"
#include "node/gate.h"
#include "node/node.h"
#include "privacy/consent_internal.h"

enum consent_op { OP_LIST, OP_SET };

struct consent_job {
    struct dagi_http_req *req; /* NULL once the client has gone */
    const struct dagi_consent_api *api;
    enum consent_op op;
    char user[DAGI_CONSENT_PRINCIPAL_MAX + 1];       /* the record's */
    char changed_by[DAGI_CONSENT_PRINCIPAL_MAX + 1]; /* the caller's */
    char agent_id[DAGI_CONSENT_AGENT_MAX + 1];
    char trace_id[64];
    bool granted, changed;
    enum dagi_consent_source source;
    int64_t now_ms;
    struct dagi_consent_list list;
    int rc;
    struct dagi_error err;
};

/* --- the node's or the caller's services --- */

struct dagi_db *consent_api_db(const struct dagi_consent_api *api)
{
    return api->node ? dagi_node_db(api->node) : api->db;
}

struct dagi_pool *consent_api_pool(const struct dagi_consent_api *api)
{
    return api->node ? dagi_node_pool(api->node) : api->pool;
}

void consent_audit_change(const struct dagi_consent_api *api, const char *actor, const char *user,
                          const char *agent_id, bool granted, enum dagi_consent_source source,
                          const char *trace_id)
{
    char subject[DAGI_CONSENT_AGENT_MAX + 8];
    snprintf(subject, sizeof(subject), "agent:%s", agent_id);
    /* The record's user is the actor, pseudonymised by the emitter like
     * every actor: a principal in the metadata would be in clear, and
     * erasing the user could not leave the chain alone.  Who made the
     * change on the user's behalf is said without naming anyone. */
    const char *by = !actor || !strcmp(actor, user) ? "self"
                     : !strcmp(actor, "admin")      ? "admin"
                                                    : "other";
    json_t *meta = json_pack("{s:s,s:s}", "by", by, "source", dagi_consent_source_name(source));
    struct dagi_audit_event ev = {
        .service = "privacy",
        .action = granted ? "consent_granted" : "consent_revoked",
        .actor = user,
        .subject = subject,
        .decision = "ok",
        .trace_id = trace_id,
        .metadata = meta,
    };
    if (api->node)
        dagi_audit_emit(api->node, &ev);
    else if (api->audit)
        api->audit(api->audit_ud, &ev);
    json_decref(meta);
}

/* --- answers --- */

static json_t *record_json(const struct dagi_consent_record *r)
{
    return json_pack("{s:s,s:b,s:s,s:s,s:I}", "agent_id", r->agent_id, "granted", r->granted,
                     "source", dagi_consent_source_name(r->source), "changed_by", r->changed_by,
                     "updated_at_ms", (json_int_t)r->updated_at_ms);
}

static void respond_failure(struct dagi_http_req *req, int rc, const struct dagi_error *err)
{
    const char *message = err->message[0] ? err->message : dagi_strerror(rc);
    switch (rc) {
    case DAGI_EINVAL:
        dagi_http_respond_error(req, 400, "invalid_field", NULL, "%s", message);
        break;
    case DAGI_EAGAIN:
    case DAGI_EUNAVAIL:
        dagi_http_set_header(req, "Retry-After", "1");
        dagi_http_respond_error(req, 503, "store_unavailable", NULL, "%s", message);
        break;
    default:
        dagi_log_error(dagi_http_req_trace_id(req), "consent store failed", "error", message);
        dagi_http_respond_error(req, 500, "store_error", NULL, "the consent store failed: %s",
                                message);
        break;
    }
}

static void respond(struct dagi_http_req *req, const struct consent_job *job)
{
    if (job->op == OP_LIST) {
        json_t *records = json_array();
        for (size_t i = 0; i < job->list.count; i++)
            json_array_append_new(records, record_json(&job->list.records[i]));
        dagi_http_respond_json(req, 200,
                               json_pack("{s:s,s:o,s:b}", "user", job->user, "consents", records,
                                         "truncated", (int)job->list.truncated));
        return;
    }
    dagi_http_respond_json(req, 200,
                           json_pack("{s:s,s:s,s:b,s:s,s:b,s:I}", "user", job->user, "agent_id",
                                     job->agent_id, "granted", job->granted, "source",
                                     dagi_consent_source_name(job->source), "changed", job->changed,
                                     "updated_at_ms", (json_int_t)job->now_ms));
}

/* --- the pool side --- */

static void on_job_work(void *ud)
{
    struct consent_job *job = ud;
    struct dagi_db *db = consent_api_db(job->api);
    if (!db) {
        job->rc = dagi_error_set(&job->err, DAGI_EUNAVAIL, "this node has no store");
        return;
    }
    if (job->op == OP_LIST)
        job->rc = dagi_consent_list(db, job->user, 0, &job->list, &job->err);
    else
        job->rc = dagi_consent_set(db, job->user, job->agent_id, job->granted, job->source,
                                   job->changed_by, job->now_ms, &job->changed, &job->err);
}

static void on_req_close(struct dagi_http_req *req, void *ud)
{
    (void)req;
    struct consent_job *job = ud;
    job->req = NULL;
}

static void on_job_done(void *ud, bool cancelled)
{
    struct consent_job *job = ud;
    struct dagi_http_req *req = job->req;
    /* Audited whether or not the client is still there: the change is made. */
    if (!cancelled && job->rc == DAGI_OK && job->op == OP_SET && job->changed)
        consent_audit_change(job->api, job->changed_by, job->user, job->agent_id, job->granted,
                             job->source, job->trace_id);
    if (req) {
        dagi_http_req_on_close(req, NULL, NULL);
        if (cancelled)
            dagi_http_respond_error(req, 503, "unavailable", NULL, "the node is stopping");
        else if (job->rc)
            respond_failure(req, job->rc, &job->err);
        else
            respond(req, job);
    }
    dagi_consent_list_release(&job->list);
    free(job);
}

static void submit(struct dagi_http_req *req, struct consent_job *job)
{
    job->req = req;
    snprintf(job->trace_id, sizeof(job->trace_id), "%s", dagi_http_req_trace_id(req));
    struct dagi_pool *pool = consent_api_pool(job->api);
    dagi_http_req_on_close(req, on_req_close, job);
    if (!pool || dagi_pool_submit(pool, on_job_work, on_job_done, job)) {
        dagi_http_req_on_close(req, NULL, NULL);
        free(job);
        dagi_http_set_header(req, "Retry-After", "1");
        dagi_http_respond_error(req, 503, "busy", NULL, "the worker pool is full; retry later");
    }
}

/* --- who is asking, and for whom --- */

/* The caller's principal into out; false after answering 403. */
static bool caller_principal(struct dagi_http_req *req, char *out, size_t cap, bool *is_admin)
{
    const struct dagi_caller *c = dagi_gate_caller(req);
    if (c && c->kind == DAGI_CALLER_ADMIN) {
        snprintf(out, cap, "admin");
    } else if (c && (c->kind == DAGI_CALLER_KEY || c->kind == DAGI_CALLER_JWT) && c->user_id[0]) {
        snprintf(out, cap, "user:%s", c->user_id);
    } else {
        dagi_http_respond_error(req, 403, "forbidden", NULL,
                                "consent is given by a user: use an API key or a token");
        return false;
    }
    *is_admin = c->is_admin;
    if (!dagi_consent_principal_valid(out)) {
        dagi_http_respond_error(req, 403, "forbidden", NULL,
                                "the caller's user id cannot hold consent");
        return false;
    }
    return true;
}

/* The record's user: the caller, or (admin only) the one named. */
static bool target_user(struct dagi_http_req *req, struct consent_job *job, const char *named,
                        bool is_admin, const char *field)
{
    if (!named || strcmp(named, job->changed_by) == 0) {
        snprintf(job->user, sizeof(job->user), "%s", job->changed_by);
        return true;
    }
    if (!is_admin) {
        dagi_http_respond_error(req, 403, "forbidden", field,
                                "only an admin may read or change another user's consent");
        return false;
    }
    if (!dagi_consent_principal_valid(named)) {
        dagi_http_respond_error(req, 400, "invalid_field", field,
                                "%s must be a principal such as user:<id> or tg:<id>", field);
        return false;
    }
    snprintf(job->user, sizeof(job->user), "%s", named);
    return true;
}

static struct consent_job *job_new(void *ud, enum consent_op op)
{
    struct consent_job *job = dagi_xcalloc(1, sizeof(*job));
    job->api = ud;
    job->op = op;
    job->now_ms = dagi_clock_now_ms();
    return job;
}

/* --- the handlers --- */

static void on_list(struct dagi_http_req *req, void *ud)
{
    struct consent_job *job = job_new(ud, OP_LIST);
    bool is_admin = false;
    if (!caller_principal(req, job->changed_by, sizeof(job->changed_by), &is_admin) ||
        !target_user(req, job, dagi_http_req_query_param(req, "user"), is_admin, "user")) {
        free(job);
        return;
    }
    submit(req, job);
}

/* PUT and DELETE: the agent from the path, who from the caller. */
static struct consent_job *change_job(struct dagi_http_req *req, void *ud, const char *named,
                                      const char *field)
{
    struct consent_job *job = job_new(ud, OP_SET);
    bool is_admin = false;
    const char *agent = dagi_http_req_param(req, "agent_id");
    if (!caller_principal(req, job->changed_by, sizeof(job->changed_by), &is_admin))
        goto fail;
    if (!dagi_consent_agent_valid(agent)) {
        dagi_http_respond_error(req, 400, "invalid_field", "agent_id",
                                "agent_id must be [a-z][a-z0-9_-]*, at most %d bytes",
                                DAGI_CONSENT_AGENT_MAX);
        goto fail;
    }
    snprintf(job->agent_id, sizeof(job->agent_id), "%s", agent);
    if (!target_user(req, job, named, is_admin, field))
        goto fail;
    /* an admin acting (for anyone) is the admin source; a user for
     * themselves is the API */
    job->source = is_admin ? DAGI_CONSENT_SOURCE_ADMIN : DAGI_CONSENT_SOURCE_API;
    return job;
fail:
    free(job);
    return NULL;
}

static void on_put(struct dagi_http_req *req, void *ud)
{
    json_t *body;
    if (dagi_http_req_json(req, &body))
        return;
    const char *member;
    json_t *value;
    json_object_foreach(body, member, value)
    {
        if (strcmp(member, "granted") != 0 && strcmp(member, "user") != 0) {
            dagi_http_respond_error(req, 400, "invalid_field", member,
                                    "%s is not a field of this request", member);
            json_decref(body);
            return;
        }
    }
    json_t *granted = json_object_get(body, "granted");
    json_t *user = json_object_get(body, "user");
    if (!json_is_boolean(granted)) {
        dagi_http_respond_error(req, 400, "invalid_field", "granted",
                                "granted is required: true or false");
    } else if (user && !json_is_null(user) &&
               (!json_is_string(user) ||
                strlen(json_string_value(user)) != json_string_length(user))) {
        dagi_http_respond_error(req, 400, "invalid_field", "user",
                                "user must be a principal such as user:<id> or tg:<id>");
    } else {
        struct consent_job *job =
            change_job(req, ud, json_is_string(user) ? json_string_value(user) : NULL, "user");
        if (job) {
            job->granted = json_is_true(granted);
            submit(req, job);
        }
    }
    json_decref(body);
}

static void on_delete(struct dagi_http_req *req, void *ud)
{
    struct consent_job *job = change_job(req, ud, dagi_http_req_query_param(req, "user"), "user");
    if (job) {
        job->granted = false;
        submit(req, job);
    }
}

/* --- registration --- */

static const struct dagi_body_field put_fields[] = {
    {"granted", DAGI_BODY_BOOL, true, 0},
    {"user", DAGI_BODY_STRING, false, DAGI_CONSENT_PRINCIPAL_MAX},
};
static const struct dagi_body_rules put_body = {put_fields, DAGI_ARRAY_LEN(put_fields), true};
static const struct dagi_gate_rules put_rules = {.body = &put_body};

int dagi_consent_routes_add(struct dagi_http_server *srv, const struct dagi_consent_api *api,
                            struct dagi_error *err)
{
    void *ud = (void *)api;
    const struct dagi_http_route routes[] = {
        {"GET", "/v1/consent", on_list, ud, 0, 0, "agents", NULL},
        {"PUT", "/v1/consent/{agent_id}", on_put, ud, 0, 4096, "agents", &put_rules},
        {"DELETE", "/v1/consent/{agent_id}", on_delete, ud, 0, 0, "agents", NULL},
    };
    for (size_t i = 0; i < DAGI_ARRAY_LEN(routes); i++) {
        int rc = dagi_http_server_add_route(srv, &routes[i]);
        if (rc)
            return dagi_error_set(err, rc, "consent routes: %s %s: %s", routes[i].method,
                                  routes[i].pattern, dagi_strerror(rc));
    }
    return DAGI_OK;
}

static void *api_create(struct dagi_node *node, void *ud)
{
    (void)ud;
    struct dagi_consent_api *api = dagi_xcalloc(1, sizeof(*api));
    api->node = node;
    return api;
}

int dagi_consent_routes_register(struct dagi_node *node, struct dagi_error *err)
{
    struct dagi_consent_api *api =
        dagi_node_shared(node, "privacy.consent_api", api_create, free, NULL);
    if (!api)
        return dagi_error_set(err, DAGI_EINTERNAL, "consent routes: no shared state");
    return dagi_consent_routes_add(dagi_node_http(node), api, err);
}
