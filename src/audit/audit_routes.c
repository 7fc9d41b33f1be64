/* GET /v1/audit and GET /v1/audit/verify (audit_role.h).  The query is
 * checked on the loop (a 400 names its parameter), the read runs on the
 * pool, the answer is written back on the loop unless the client left. */
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit_internal.h"
#include "auditlog/chain.h"
#include "authz/authz.h"
#include "core/http_server.h"
#include "core/log.h"
#include "core/mem.h"
#include "cplane/cplane.h"
#include "node/gate.h"
#include "node/node.h"
#include "store/db.h"

struct read_job {
    struct dagi_http_req *req; /* NULL once the client left */
    bool verify;
    /* the filter's strings point into these */
    char service[DAGI_AUDIT_NAME_MAX + 1], action[DAGI_AUDIT_NAME_MAX + 1];
    char decision[DAGI_AUDIT_DECISION_MAX + 1], subject[DAGI_AUDIT_SUBJECT_MAX + 1];
    char actor[DAGI_AUDIT_ACTOR_MAX + 1];
    struct dagi_audit_filter filter;
    json_t *result;
    struct dagi_audit_verify v;
};

/* Who may read the log.  The one place to ask: the policy decision
 * audit.read replaces it. */
/* audit.read, decided by the policy in force (the control plane's bundle)
 * for the caller as its credential describes it. */
static bool may_read_audit(struct audit_state *st, const struct dagi_caller *c)
{
    if (!c)
        return false;
    struct dagi_error err = {0};
    struct dagi_cplane *cp = dagi_cplane_get(st->node, &err);
    char principal[DAGI_CALLER_ID_MAX + 8], key[DAGI_CALLER_ID_MAX + 8],
        team[DAGI_CALLER_ID_MAX + 8], roles[DAGI_CALLER_ROLES_MAX][DAGI_CALLER_ROLE_MAX + 8];
    const char *subjects[DAGI_CALLER_ROLES_MAX + 3];
    size_t n = 0;
    if (c->is_admin && c->kind == DAGI_CALLER_ADMIN)
        snprintf(principal, sizeof(principal), "admin");
    else
        snprintf(principal, sizeof(principal), "user:%s", c->user_id);
    if (c->key_id[0]) {
        snprintf(key, sizeof(key), "key:%s", c->key_id);
        subjects[n++] = key;
    }
    if (c->team[0]) {
        snprintf(team, sizeof(team), "team:%s", c->team);
        subjects[n++] = team;
    }
    for (size_t i = 0; i < c->role_count && i < DAGI_CALLER_ROLES_MAX; i++) {
        snprintf(roles[i], sizeof(roles[i]), "role:%s", c->roles[i]);
        subjects[n++] = roles[i];
    }
    struct dagi_authz_request q = {.principal = principal,
                                   .subjects = subjects,
                                   .n_subjects = n,
                                   .team = c->team,
                                   .action = "audit.read"};
    struct dagi_authz_decision d;
    dagi_authz_decide(cp ? dagi_cplane_current(cp)->policy : NULL, &q, &d);
    return d.allow;
}

static json_t *verify_json(const struct dagi_audit_verify *v)
{
    char head[DAGI_AUDIT_HASH_BYTES * 2 + 1];
    sodium_bin2hex(head, sizeof(head), v->head, sizeof(v->head));
    return json_pack("{s:b,s:I,s:I,s:s,s:o,s:o}", "ok", v->ok, "records", (json_int_t)v->records,
                     "last_seq", (json_int_t)v->last_seq, "head", head, "broken_at",
                     v->ok ? json_null() : json_integer((json_int_t)v->broken_seq), "reason",
                     v->ok ? json_null() : json_string(v->reason));
}

/* --- the pool side --- */

static int on_read_work(struct dagi_db_conn *conn, void *ud, struct dagi_error *err)
{
    struct read_job *j = ud;
    if (j->verify)
        return dagi_audit_chain_verify(conn, &j->v, err);
    return dagi_audit_chain_query(conn, &j->filter, &j->result, err);
}

static void on_req_close(struct dagi_http_req *req, void *ud)
{
    (void)req;
    struct read_job *j = ud;
    j->req = NULL;
}

static void on_read_done(void *ud, int rc, const struct dagi_error *err)
{
    struct read_job *j = ud;
    struct dagi_http_req *req = j->req;
    if (req) {
        dagi_http_req_on_close(req, NULL, NULL);
        if (rc == DAGI_ECANCELED) {
            dagi_http_respond_error(req, 503, "unavailable", NULL, "the node is stopping");
        } else if (rc) {
            const char *why = err && err->message[0] ? err->message : dagi_strerror(rc);
            dagi_log_error(dagi_http_req_trace_id(req), "audit: reading the log failed", "error",
                           why);
            dagi_http_respond_error(req, rc == DAGI_EAGAIN || rc == DAGI_EUNAVAIL ? 503 : 500,
                                    "store_error", NULL, "reading the audit log failed: %s", why);
        } else if (j->verify) {
            dagi_http_respond_json(req, 200, verify_json(&j->v));
        } else {
            dagi_http_respond_json(req, 200, j->result);
            j->result = NULL;
        }
    }
    json_decref(j->result);
    free(j);
}

static void submit(struct audit_state *st, struct dagi_http_req *req, struct read_job *j)
{
    j->req = req;
    dagi_http_req_on_close(req, on_req_close, j);
    if (dagi_db_run(dagi_node_db(st->node), dagi_node_pool(st->node), on_read_work, on_read_done,
                    j)) {
        dagi_http_req_on_close(req, NULL, NULL);
        free(j);
        dagi_http_set_header(req, "Retry-After", "1");
        dagi_http_respond_error(req, 503, "busy", NULL, "the worker pool is full; retry later");
    }
}

/* --- the query --- */

static bool bad(struct dagi_http_req *req, const char *name, const char *what)
{
    dagi_http_respond_error(req, 400, "invalid_query", name, "%s must be %s", name, what);
    return false;
}

static bool param_name(struct dagi_http_req *req, const char *name, char *dst, size_t cap,
                       const char **out)
{
    const char *v = dagi_http_req_query_param(req, name);
    if (!v)
        return true;
    size_t n = strlen(v);
    if (!n || n >= cap || strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789_") != n)
        return bad(req, name, "a name of [a-z0-9_]");
    memcpy(dst, v, n + 1);
    *out = dst;
    return true;
}

static bool param_text(struct dagi_http_req *req, const char *name, char *dst, size_t cap,
                       const char **out)
{
    const char *v = dagi_http_req_query_param(req, name);
    if (!v)
        return true;
    size_t n = strlen(v);
    if (!n || n >= cap)
        return bad(req, name, "non-empty text within the record's cap");
    memcpy(dst, v, n + 1);
    *out = dst;
    return true;
}

static bool param_int(struct dagi_http_req *req, const char *name, int64_t lo, int64_t hi,
                      int64_t *out)
{
    const char *v = dagi_http_req_query_param(req, name);
    if (!v)
        return true;
    char *end;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || x < lo || x > hi)
        return bad(req, name, "a whole number in range");
    *out = x;
    return true;
}

static void refuse_reader(struct audit_state *st, struct dagi_http_req *req,
                          const struct dagi_caller *c)
{
    json_t *meta = json_pack("{s:s}", "ip", c ? c->ip : "");
    dagi_audit_emit(st->node, &(struct dagi_audit_event){
                                  .service = "audit",
                                  .action = "read_denied",
                                  .actor = c && c->user_id[0] ? c->user_id : NULL,
                                  .subject = "audit_log",
                                  .decision = "deny",
                                  .trace_id = dagi_http_req_trace_id(req),
                                  .metadata = meta,
                              });
    json_decref(meta);
    dagi_http_respond_error(req, 403, "forbidden", NULL,
                            "reading the audit log needs audit.read (the policy grants it to the auditor role)");
}

static void on_list(struct dagi_http_req *req, void *ud)
{
    struct audit_state *st = ud;
    const struct dagi_caller *c = dagi_gate_caller(req);
    if (!may_read_audit(st, c)) {
        refuse_reader(st, req, c);
        return;
    }
    struct read_job *j = dagi_xcalloc(1, sizeof(*j));
    struct dagi_audit_filter *f = &j->filter;
    const char *actor = NULL;
    int64_t limit = 0;
    if (!param_name(req, "service", j->service, sizeof(j->service), &f->service) ||
        !param_name(req, "action", j->action, sizeof(j->action), &f->action) ||
        !param_name(req, "decision", j->decision, sizeof(j->decision), &f->decision) ||
        !param_text(req, "subject", j->subject, sizeof(j->subject), &f->subject) ||
        !param_text(req, "actor", j->actor, sizeof(j->actor), &actor) ||
        !param_int(req, "since", 0, INT64_MAX, &f->since_ms) ||
        !param_int(req, "until", 0, INT64_MAX, &f->until_ms) ||
        !param_int(req, "after_seq", 0, INT64_MAX, &f->after_seq) ||
        !param_int(req, "limit", 1, DAGI_AUDIT_QUERY_MAX, &limit)) {
        free(j);
        return;
    }
    if (actor) {
        /* a principal never reaches the database: its pseudonym does */
        char pseudonym[DAGI_AUDIT_ACTOR_MAX + 1];
        dagi_audit_actor_filter(st->key, actor, pseudonym);
        memcpy(j->actor, pseudonym, sizeof(pseudonym));
        f->actor = j->actor;
    }
    f->limit = (size_t)limit;
    submit(st, req, j);
}

static void on_verify(struct dagi_http_req *req, void *ud)
{
    struct read_job *j = dagi_xcalloc(1, sizeof(*j));
    j->verify = true;
    submit(ud, req, j);
}

int audit_routes_register(struct audit_state *st, struct dagi_error *err)
{
    const struct dagi_http_route routes[] = {
        {"GET", "/v1/audit", on_list, st, 0, 0, "admin", NULL},
        {"GET", "/v1/audit/verify", on_verify, st, DAGI_ROUTE_ADMIN, 0, "admin", NULL},
    };
    for (size_t i = 0; i < DAGI_ARRAY_LEN(routes); i++) {
        int rc = dagi_http_server_add_route(dagi_node_http(st->node), &routes[i]);
        if (rc)
            return dagi_error_set(err, rc, "audit: cannot add the route %s", routes[i].pattern);
    }
    return DAGI_OK;
}
