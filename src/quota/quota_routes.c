/* The quota admin API (quota_node.h, docs/QUOTAS.md).
 *
 * As in the keys API: requests are validated on the loop, so a 400 names its
 * field without a trip to the database; the store calls block, so each runs
 * as a pool job and the answer is written back on the loop.  A client that
 * leaves meanwhile is noticed (on_close) and its answer dropped, but a reset
 * is made and audited all the same. */
#include "quota/quota_node.h"

#include "auditlog/audit.h"
#include "core/clock.h"
#include "core/http_server.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/pool.h"
#include "node/gate.h"
#include "node/node.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum route_op { OP_USAGE, OP_RESET };

struct route_job {
    struct dagi_http_req *req; /* NULL once the client has gone */
    struct dagi_node *node;
    enum route_op op;
    struct dagi_quota_store *store;     /* a reference */
    struct dagi_quota_budgets *budgets; /* a reference */
    int64_t now_ms;
    char *trace_id;
    /* usage */
    char *user, *team, *agent;
    struct dagi_quota_usage usage;
    /* reset */
    const struct dagi_quota_budget *budget; /* in budgets */
    char *subject;
    char actor[DAGI_CALLER_ID_MAX + 8];

    int rc;
    struct dagi_error err;
};

static void job_free(struct route_job *job)
{
    dagi_quota_store_free(job->store);
    dagi_quota_budgets_unref(job->budgets);
    free(job->trace_id);
    free(job->user);
    free(job->team);
    free(job->agent);
    free(job->subject);
    dagi_quota_usage_release(&job->usage);
    free(job);
}

/* --- answers --- */

static json_t *limit_or_null(int64_t limit)
{
    return limit ? json_integer((json_int_t)limit) : json_null();
}

static json_t *entry_json(const struct dagi_quota_usage_entry *e)
{
    char reset_at[32];
    dagi_quota_format_time(e->reset_at_ms, reset_at);
    return json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:I,s:{s:I,s:o},s:{s:I,s:I,s:o}}", "id",
                     e->budget_id, "per", dagi_quota_per_name(e->per), "subject_id", e->subject_id,
                     "window", dagi_quota_window_name(e->window), "window_start_ms",
                     (json_int_t)e->window_start_ms, "reset_at", reset_at, "reset_at_ms",
                     (json_int_t)e->reset_at_ms, "requests", "used", (json_int_t)e->requests,
                     "limit", limit_or_null(e->requests_limit), "tokens", "used",
                     (json_int_t)e->tokens_used, "held", (json_int_t)e->tokens_held, "limit",
                     limit_or_null(e->tokens_limit));
}

static json_t *or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

static void respond_usage(struct dagi_http_req *req, const struct route_job *job)
{
    json_t *list = json_array();
    for (size_t i = 0; i < job->usage.count; i++)
        json_array_append_new(list, entry_json(&job->usage.items[i]));
    dagi_http_respond_json(req, 200,
                           json_pack("{s:o,s:o,s:o,s:I,s:o}", "user", or_null(job->user), "team",
                                     or_null(job->team), "agent", or_null(job->agent), "now_ms",
                                     (json_int_t)job->now_ms, "budgets", list));
}

static void respond_reset(struct dagi_http_req *req, const struct route_job *job)
{
    int64_t ws, we;
    dagi_quota_window_bounds(job->budget->window, job->now_ms, &ws, &we);
    char reset_at[32];
    dagi_quota_format_time(we, reset_at);
    dagi_http_respond_json(
        req, 200,
        json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:I,s:b}", "budget", job->budget->id, "per",
                  dagi_quota_per_name(job->budget->per), "subject", job->subject, "window",
                  dagi_quota_window_name(job->budget->window), "window_start_ms", (json_int_t)ws,
                  "reset_at", reset_at, "reset_at_ms", (json_int_t)we, "reset", 1));
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
        dagi_log_error(dagi_http_req_trace_id(req), "quota store failed", "error", message);
        dagi_http_respond_error(req, 500, "store_error", NULL, "the quota store failed: %s",
                                message);
        break;
    }
}

static void audit_reset(const struct route_job *job)
{
    char subject[DAGI_QUOTA_ID_MAX + DAGI_QUOTA_NAME_MAX + 32];
    snprintf(subject, sizeof(subject), "budget:%s/%s:%s", job->budget->id,
             dagi_quota_per_name(job->budget->per), job->subject);
    json_t *meta = json_pack("{s:s,s:s,s:s,s:s}", "budget", job->budget->id, "per",
                             dagi_quota_per_name(job->budget->per), "subject_id", job->subject,
                             "window", dagi_quota_window_name(job->budget->window));
    struct dagi_audit_event ev = {
        .service = "quota",
        .action = "reset",
        .actor = job->actor,
        .subject = subject,
        .decision = job->rc == DAGI_OK ? "ok" : "error",
        .trace_id = job->trace_id,
        .metadata = meta,
    };
    dagi_audit_emit(job->node, &ev);
    json_decref(meta);
}

/* --- the pool side --- */

static void on_job_work(void *ud)
{
    struct route_job *job = ud;
    if (job->op == OP_USAGE) {
        struct dagi_quota_subject s = {job->user, job->team, job->agent, job->trace_id};
        job->rc =
            dagi_quota_usage(job->store, job->budgets, &s, job->now_ms, &job->usage, &job->err);
    } else {
        job->rc = dagi_quota_reset(job->store, job->budget, job->subject, job->now_ms,
                                   job->trace_id, &job->err);
    }
}

static void on_req_close(struct dagi_http_req *req, void *ud)
{
    (void)req;
    struct route_job *job = ud;
    job->req = NULL;
}

static void on_job_done(void *ud, bool cancelled)
{
    struct route_job *job = ud;
    struct dagi_http_req *req = job->req;
    if (!cancelled && job->op == OP_RESET) {
        audit_reset(job);
        if (job->rc == DAGI_OK)
            dagi_log_info(job->trace_id, "quota counter reset", "budget", job->budget->id, "per",
                          dagi_quota_per_name(job->budget->per));
    }
    if (!req)
        goto out;
    dagi_http_req_on_close(req, NULL, NULL);
    if (cancelled)
        dagi_http_respond_error(req, 503, "unavailable", NULL, "the node is stopping");
    else if (job->rc)
        respond_failure(req, job->rc, &job->err);
    else if (job->op == OP_USAGE)
        respond_usage(req, job);
    else
        respond_reset(req, job);
out:
    job_free(job);
}

static struct route_job *job_new(struct dagi_http_req *req, struct dagi_node *node,
                                 enum route_op op)
{
    struct dagi_quota *q = dagi_quota_of_node(node);
    if (!q) {
        dagi_http_respond_error(req, 503, "unavailable", NULL, "this node keeps no quotas");
        return NULL;
    }
    struct route_job *job = dagi_xcalloc(1, sizeof(*job));
    job->node = node;
    job->op = op;
    job->store = dagi_quota_store_ref(dagi_quota_store_of(q));
    job->budgets = dagi_quota_current(q);
    job->now_ms = dagi_clock_now_ms();
    job->trace_id = dagi_xstrdup(dagi_http_req_trace_id(req));
    return job;
}

static void submit(struct dagi_http_req *req, struct route_job *job)
{
    job->req = req;
    dagi_http_req_on_close(req, on_req_close, job);
    if (dagi_pool_submit(dagi_node_pool(job->node), on_job_work, on_job_done, job)) {
        dagi_http_req_on_close(req, NULL, NULL);
        job_free(job);
        dagi_http_set_header(req, "Retry-After", "1");
        dagi_http_respond_error(req, 503, "busy", NULL, "the worker pool is full; retry later");
    }
}

/* --- validation on the loop --- */

/* An id as the store keeps it: 1..DAGI_QUOTA_NAME_MAX bytes, no control
 * characters. */
static bool id_valid(const char *s, size_t len)
{
    if (len == 0 || len > DAGI_QUOTA_NAME_MAX || strlen(s) != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < ' ' || s[i] == 0x7f)
            return false;
    return true;
}

static bool query_id(struct dagi_http_req *req, const char *name, char **out)
{
    const char *v = dagi_http_req_query_param(req, name);
    *out = NULL;
    if (!v)
        return true;
    if (!id_valid(v, strlen(v))) {
        dagi_http_respond_error(req, 400, "invalid_query", name,
                                "%s must be 1-%d bytes without control characters", name,
                                DAGI_QUOTA_NAME_MAX);
        return false;
    }
    *out = dagi_xstrdup(v);
    return true;
}

static void on_usage(struct dagi_http_req *req, void *ud)
{
    char *user, *team = NULL, *agent = NULL;
    if (!query_id(req, "user", &user) || !query_id(req, "team", &team) ||
        !query_id(req, "agent", &agent))
        goto fail;
    if (!user && !team && !agent) {
        dagi_http_respond_error(req, 400, "invalid_query", "user",
                                "give user, team or agent (or several)");
        goto fail;
    }
    struct route_job *job = job_new(req, ud, OP_USAGE);
    if (!job)
        goto fail;
    job->user = user;
    job->team = team;
    job->agent = agent;
    submit(req, job);
    return;
fail:
    free(user);
    free(team);
    free(agent);
}

static void caller_actor(struct dagi_http_req *req, char *out, size_t len)
{
    const struct dagi_caller *c = dagi_gate_caller(req);
    if (!c || c->kind == DAGI_CALLER_ADMIN)
        snprintf(out, len, "admin");
    else if (c->kind == DAGI_CALLER_KEY)
        snprintf(out, len, "key:%s", c->key_id);
    else
        snprintf(out, len, "user:%s", c->user_id);
}

static void on_reset(struct dagi_http_req *req, void *ud)
{
    json_t *body;
    if (dagi_http_req_json(req, &body))
        return;
    struct route_job *job = NULL;
    const char *member;
    json_t *value;
    json_object_foreach(body, member, value)
    {
        if (strcmp(member, "budget") != 0 && strcmp(member, "subject") != 0) {
            dagi_http_respond_error(req, 400, "invalid_field", member,
                                    "%s is not a field of this request", member);
            goto out;
        }
    }
    json_t *budget = json_object_get(body, "budget");
    json_t *subject = json_object_get(body, "subject");
    if (!json_is_string(budget) || !json_string_length(budget)) {
        dagi_http_respond_error(req, 400, "invalid_field", "budget",
                                "budget is required: a budget id");
        goto out;
    }
    if (!json_is_string(subject) ||
        !id_valid(json_string_value(subject), json_string_length(subject))) {
        dagi_http_respond_error(req, 400, "invalid_field", "subject",
                                "subject is required: the user, team or agent id of the "
                                "counter (1-%d bytes)",
                                DAGI_QUOTA_NAME_MAX);
        goto out;
    }
    if (!(job = job_new(req, ud, OP_RESET)))
        goto out;
    job->budget = dagi_quota_budgets_find(job->budgets, json_string_value(budget));
    if (!job->budget) {
        dagi_http_respond_error(req, 404, "not_found", "budget", "no budget \"%.64s\"",
                                json_string_value(budget));
        job_free(job);
        goto out;
    }
    job->subject = dagi_xstrdup(json_string_value(subject));
    caller_actor(req, job->actor, sizeof(job->actor));
    submit(req, job);
out:
    json_decref(body);
}

int dagi_quota_routes_register(struct dagi_node *node, struct dagi_error *err)
{
    (void)dagi_quota_of_node(node); /* made now, so its purge runs from the start */
    const struct dagi_http_route routes[] = {
        {"GET", "/v1/quota/usage", on_usage, node, DAGI_ROUTE_ADMIN, 0, "admin", NULL},
        {"POST", "/v1/quota/reset", on_reset, node, DAGI_ROUTE_ADMIN, 4096, "admin", NULL},
    };
    for (size_t i = 0; i < DAGI_ARRAY_LEN(routes); i++) {
        int rc = dagi_http_server_add_route(dagi_node_http(node), &routes[i]);
        if (rc)
            return dagi_error_set(err, rc, "cannot add the route %s %s", routes[i].method,
                                  routes[i].pattern);
    }
    return DAGI_OK;
}
