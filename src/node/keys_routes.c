/* The admin API of user API keys (`/v1/admin/keys...`).
 *
 * Requests are validated on the loop, so a 400 names its field without a
 * trip to the database; the keystore calls block, so each then runs on the
 * worker pool and the answer is written back on the loop.  A client that
 * leaves meanwhile is noticed (on_close) and the answer is dropped - but the
 * work itself is not undone: a key created for a client that hung up exists
 * and can be revoked by listing it.
 *
 * The plaintext key exists in this process only between the keystore's
 * create and the response: in the job (wiped when the job ends), in the
 * response body we build by hand (wiped once the server has copied it) and
 * in the server's output buffer until it is written - never in a jansson
 * value or a log line. */
#include "keys_routes.h"

#include "access/keystore.h"
#include "auditlog/audit.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/http_server.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/pool.h"
#include "gate.h"
#include "node.h"

#include <jansson.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* How many keys a list answers at most when the client names no limit (the
 * keystore's own cap is the same). */
#define LIST_LIMIT_MAX 1000

enum keys_op { KEYS_CREATE, KEYS_LIST, KEYS_REVOKE };

struct keys_job {
    struct dagi_http_req *req; /* NULL once the client has gone */
    struct dagi_node *node;
    struct dagi_keystore *ks;
    /* who asked, for the audit event (the request may be gone by then) */
    char actor[DAGI_CALLER_ID_MAX + 1];
    char trace_id[64];
    enum keys_op op;
    int64_t now_ms; /* the business clock when the request came: one reading for
                     * created_at_ms, expires_in and revoked_at_ms */

    /* create: the spec's strings point into body, which the job owns */
    json_t *body;
    struct dagi_keystore_key_spec spec;
    const char *roles[DAGI_KEYSTORE_ROLES_MAX];
    char key[DAGI_KEYSTORE_KEY_BUF]; /* the plaintext, wiped in job_free */

    /* create (out) and revoke (in) */
    char id[DAGI_APIKEY_ID_LEN + 1];

    /* list */
    char *user_id; /* NULL: every user */
    size_t limit;
    struct dagi_keystore_list list;

    int rc;
    struct dagi_error err;
};

static void job_free(struct keys_job *job)
{
    sodium_memzero(job->key, sizeof(job->key));
    json_decref(job->body);
    free(job->user_id);
    dagi_keystore_list_release(&job->list);
    free(job);
}

/* --- answers --- */

static json_t *or_null_string(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

static json_t *or_null_time(int64_t ms)
{
    return ms ? json_integer((json_int_t)ms) : json_null();
}

/* One key as the API shows it: never a secret or a hash (the entry has
 * neither).  Unset values are null: no team, no name, never expires, not
 * revoked, never used. */
static json_t *entry_json(const struct dagi_keystore_entry *e)
{
    json_t *roles = json_array();
    for (size_t i = 0; i < e->who.role_count; i++)
        json_array_append_new(roles, json_string(e->who.roles[i]));
    return json_pack("{s:s,s:s,s:o,s:o,s:o,s:I,s:o,s:o,s:o}", "id", e->who.key_id, "user_id",
                     e->who.user_id, "team", or_null_string(e->who.team), "roles", roles, "name",
                     or_null_string(e->name), "created_at_ms", (json_int_t)e->created_at_ms,
                     "expires_at_ms", or_null_time(e->expires_at_ms), "revoked_at_ms",
                     or_null_time(e->revoked_at_ms), "last_used_at_ms",
                     or_null_time(e->last_used_at_ms));
}

/* 201 with the new key in front of its entry.  The body is spliced by hand
 * so the plaintext never enters a jansson string we cannot wipe; the key
 * needs no JSON escaping (it is made of [a-z0-9_-]). */
static void respond_created(struct dagi_http_req *req, const struct keys_job *job)
{
    struct dagi_keystore_entry e = {.created_at_ms = job->now_ms,
                                    .expires_at_ms = job->spec.expires_at_ms};
    snprintf(e.who.key_id, sizeof(e.who.key_id), "%s", job->id);
    snprintf(e.who.user_id, sizeof(e.who.user_id), "%s", job->spec.user_id);
    snprintf(e.who.team, sizeof(e.who.team), "%s", job->spec.team ? job->spec.team : "");
    snprintf(e.name, sizeof(e.name), "%s", job->spec.name ? job->spec.name : "");
    for (size_t i = 0; i < job->spec.role_count; i++)
        snprintf(e.who.roles[i], sizeof(e.who.roles[i]), "%s", job->roles[i]);
    e.who.role_count = job->spec.role_count;

    json_t *doc = entry_json(&e);
    json_object_del(doc, "revoked_at_ms");
    json_object_del(doc, "last_used_at_ms");
    char *rest = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!rest || rest[0] != '{') {
        free(rest);
        dagi_http_respond_error(req, 500, "internal", NULL, "could not serialize the key");
        return;
    }
    char *body = dagi_xasprintf("{\"key\":\"%s\",%s", job->key, rest + 1);
    size_t len = strlen(body);
    dagi_http_respond(req, 201, "application/json", body, len);
    sodium_memzero(body, len);
    free(body);
    free(rest);
}

static void respond_list(struct dagi_http_req *req, const struct dagi_keystore_list *list)
{
    json_t *keys = json_array();
    for (size_t i = 0; i < list->count; i++)
        json_array_append_new(keys, entry_json(&list->entries[i]));
    dagi_http_respond_json(req, 200,
                           json_pack("{s:o,s:b}", "keys", keys, "truncated", (int)list->truncated));
}

static void respond_failure(struct dagi_http_req *req, int rc, const struct dagi_error *err)
{
    const char *message = err->message[0] ? err->message : dagi_strerror(rc);
    switch (rc) {
    case DAGI_EINVAL:
        dagi_http_respond_error(req, 400, "invalid_field", NULL, "%s", message);
        break;
    case DAGI_ENOENT:
        dagi_http_respond_error(req, 404, "not_found", NULL, "%s", message);
        break;
    case DAGI_EAGAIN:
    case DAGI_EUNAVAIL:
        dagi_http_set_header(req, "Retry-After", "1");
        dagi_http_respond_error(req, 503, "store_unavailable", NULL, "%s", message);
        break;
    default:
        dagi_log_error(dagi_http_req_trace_id(req), "API key store failed", "error", message);
        dagi_http_respond_error(req, 500, "store_error", NULL, "the key store failed: %s", message);
        break;
    }
}

/* keys/key_created and keys/key_revoked: ids and figures only (the key's
 * owner is in api_keys, which erasure may empty; the chain keeps the id). */
static void audit_change(struct keys_job *job)
{
    json_t *meta;
    if (job->op == KEYS_CREATE) {
        json_t *roles = json_array();
        for (size_t i = 0; i < job->spec.role_count; i++)
            json_array_append_new(roles, json_string(job->roles[i]));
        meta = json_pack("{s:s,s:o,s:o}", "key_id", job->id, "roles", roles, "expires_at_ms",
                         or_null_time(job->spec.expires_at_ms));
    } else {
        meta = json_pack("{s:s}", "key_id", job->id);
    }
    char subject[DAGI_APIKEY_ID_LEN + 8];
    snprintf(subject, sizeof(subject), "key:%s", job->id);
    dagi_audit_emit(job->node, &(struct dagi_audit_event){
                                   .service = "keys",
                                   .action = job->op == KEYS_CREATE ? "key_created" : "key_revoked",
                                   .actor = job->actor[0] ? job->actor : NULL,
                                   .subject = subject,
                                   .decision = "ok",
                                   .trace_id = job->trace_id,
                                   .metadata = meta,
                               });
    json_decref(meta);
}

/* --- the pool side --- */

static void on_job_work(void *ud)
{
    struct keys_job *job = ud;
    switch (job->op) {
    case KEYS_CREATE:
        job->rc =
            dagi_keystore_create(job->ks, &job->spec, job->now_ms, job->key, job->id, &job->err);
        break;
    case KEYS_LIST:
        job->rc = dagi_keystore_list(job->ks, job->user_id, job->limit, &job->list, &job->err);
        break;
    case KEYS_REVOKE:
        job->rc = dagi_keystore_revoke(job->ks, job->id, job->now_ms, &job->err);
        break;
    }
}

static void on_req_close(struct dagi_http_req *req, void *ud)
{
    (void)req;
    struct keys_job *job = ud;
    job->req = NULL;
}

static void on_job_done(void *ud, bool cancelled)
{
    struct keys_job *job = ud;
    struct dagi_http_req *req = job->req;
    /* Logged whether or not the client is still there: the change is made. */
    if (!cancelled && job->rc == DAGI_OK && job->op == KEYS_CREATE)
        dagi_log_info(req ? dagi_http_req_trace_id(req) : NULL, "API key created", "key_id",
                      job->id, "user_id", job->spec.user_id);
    else if (!cancelled && job->rc == DAGI_OK && job->op == KEYS_REVOKE)
        dagi_log_info(req ? dagi_http_req_trace_id(req) : NULL, "API key revoked", "key_id",
                      job->id);
    if (!cancelled && job->rc == DAGI_OK && job->op != KEYS_LIST)
        audit_change(job);
    if (!req)
        goto out;
    dagi_http_req_on_close(req, NULL, NULL);
    if (cancelled) {
        dagi_http_respond_error(req, 503, "unavailable", NULL, "the node is stopping");
    } else if (job->rc) {
        respond_failure(req, job->rc, &job->err);
    } else if (job->op == KEYS_CREATE) {
        respond_created(req, job);
    } else if (job->op == KEYS_LIST) {
        respond_list(req, &job->list);
    } else {
        dagi_http_respond_json(req, 200, json_pack("{s:s,s:b}", "id", job->id, "revoked", 1));
    }
out:
    job_free(job);
}

static void submit(struct dagi_http_req *req, struct dagi_node *n, struct keys_job *job)
{
    job->req = req;
    job->node = n;
    job->ks = dagi_node_keystore(n);
    const struct dagi_caller *caller = dagi_gate_caller(req);
    snprintf(job->actor, sizeof(job->actor), "%s", caller ? caller->user_id : "");
    snprintf(job->trace_id, sizeof(job->trace_id), "%s", dagi_http_req_trace_id(req));
    if (!job->ks) {
        job_free(job);
        dagi_http_respond_error(req, 503, "unavailable", NULL, "this node has no key store");
        return;
    }
    dagi_http_req_on_close(req, on_req_close, job);
    if (dagi_pool_submit(dagi_node_pool(n), on_job_work, on_job_done, job)) {
        dagi_http_req_on_close(req, NULL, NULL);
        job_free(job);
        dagi_http_set_header(req, "Retry-After", "1");
        dagi_http_respond_error(req, 503, "busy", NULL, "the worker pool is full; retry later");
    }
}

/* --- create: validation on the loop --- */

/* A string member: absent (or null) is NULL in *out; otherwise it must be
 * a string of at most max bytes with no NUL inside (the store would cut it
 * there).  Returns false after answering 400. */
static bool member_string(struct dagi_http_req *req, json_t *body, const char *field, size_t max,
                          const char **out)
{
    json_t *v = json_object_get(body, field);
    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
        json_string_length(v) > max) {
        dagi_http_respond_error(req, 400, "invalid_field", field,
                                "%s must be a string of at most %zu bytes", field, max);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

static bool role_valid(const char *r, size_t len)
{
    if (len == 0 || len > DAGI_KEYSTORE_ROLE_MAX || strlen(r) != len)
        return false;
    return strspn(r, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-") == len;
}

static bool member_roles(struct dagi_http_req *req, json_t *body, struct keys_job *job)
{
    json_t *roles = json_object_get(body, "roles");
    if (!roles || json_is_null(roles))
        return true;
    if (!json_is_array(roles) || json_array_size(roles) > DAGI_KEYSTORE_ROLES_MAX) {
        dagi_http_respond_error(req, 400, "invalid_field", "roles",
                                "roles must be an array of at most %d strings",
                                DAGI_KEYSTORE_ROLES_MAX);
        return false;
    }
    size_t i;
    json_t *r;
    json_array_foreach(roles, i, r)
    {
        if (!json_is_string(r) || !role_valid(json_string_value(r), json_string_length(r))) {
            dagi_http_respond_error(req, 400, "invalid_field", "roles",
                                    "roles[%zu] must be 1-%d characters of [A-Za-z0-9_.:-]", i,
                                    DAGI_KEYSTORE_ROLE_MAX);
            return false;
        }
        job->roles[i] = json_string_value(r);
    }
    job->spec.roles = job->roles;
    job->spec.role_count = json_array_size(roles);
    return true;
}

/* expires_in: a whole number of seconds, or a duration string ("90s",
 * "1h", "30d"; a string of digits alone is seconds too, like the integer). */
static int parse_expires_in(json_t *v, int64_t *ms_out)
{
    int64_t ms = 0;
    if (json_is_integer(v)) {
        json_int_t s = json_integer_value(v);
        if (s <= 0 || s > INT64_MAX / 1000)
            return DAGI_EINVAL;
        ms = (int64_t)s * 1000;
    } else if (json_is_string(v)) {
        const char *t = json_string_value(v);
        size_t n = strlen(t);
        if (n == 0 || n != json_string_length(v) || dagi_cfg_parse_duration(t, &ms))
            return DAGI_EINVAL;
        if (strspn(t, "0123456789") == n) {
            if (ms > INT64_MAX / 1000)
                return DAGI_EINVAL;
            ms *= 1000;
        }
    } else {
        return DAGI_EINVAL;
    }
    if (ms <= 0)
        return DAGI_EINVAL;
    *ms_out = ms;
    return DAGI_OK;
}

static bool member_expiry(struct dagi_http_req *req, json_t *body, int64_t now_ms,
                          int64_t *expires_at_ms)
{
    json_t *in = json_object_get(body, "expires_in");
    json_t *at = json_object_get(body, "expires_at_ms");
    if (in && json_is_null(in))
        in = NULL;
    if (at && json_is_null(at))
        at = NULL;
    *expires_at_ms = 0;
    if (in && at) {
        dagi_http_respond_error(req, 400, "invalid_field", "expires_in",
                                "give expires_in or expires_at_ms, not both");
        return false;
    }
    if (in) {
        int64_t ms;
        if (parse_expires_in(in, &ms) || ms > INT64_MAX - now_ms) {
            dagi_http_respond_error(req, 400, "invalid_field", "expires_in",
                                    "expires_in must be a positive number of seconds or a "
                                    "duration such as \"90s\", \"1h\", \"30d\"");
            return false;
        }
        *expires_at_ms = now_ms + ms;
    } else if (at) {
        if (!json_is_integer(at) || json_integer_value(at) <= now_ms) {
            dagi_http_respond_error(req, 400, "invalid_field", "expires_at_ms",
                                    "expires_at_ms must be a Unix time in milliseconds in the "
                                    "future");
            return false;
        }
        *expires_at_ms = (int64_t)json_integer_value(at);
    }
    return true;
}

static void on_keys_create(struct dagi_http_req *req, void *ud)
{
    static const char *const known[] = {"user_id", "team",       "roles",
                                        "name",    "expires_in", "expires_at_ms"};
    json_t *body;
    if (dagi_http_req_json(req, &body))
        return;
    struct keys_job *job = dagi_xcalloc(1, sizeof(*job));
    job->op = KEYS_CREATE;
    job->now_ms = dagi_clock_now_ms();
    job->body = body;
    /* A misspelt member ("role", "expires") must not quietly make a key
     * with more power or a longer life than asked for. */
    const char *member;
    json_t *value;
    json_object_foreach(body, member, value)
    {
        size_t k = 0;
        while (k < DAGI_ARRAY_LEN(known) && strcmp(member, known[k]) != 0)
            k++;
        if (k == DAGI_ARRAY_LEN(known)) {
            dagi_http_respond_error(req, 400, "invalid_field", member,
                                    "%s is not a field of this request", member);
            goto fail;
        }
    }
    const char *user_id;
    if (!member_string(req, body, "user_id", DAGI_KEYSTORE_USER_MAX, &user_id))
        goto fail;
    if (!user_id || !*user_id) {
        dagi_http_respond_error(req, 400, "invalid_field", "user_id",
                                "user_id is required: a string of 1-%d bytes",
                                DAGI_KEYSTORE_USER_MAX);
        goto fail;
    }
    job->spec.user_id = user_id;
    if (!member_string(req, body, "team", DAGI_KEYSTORE_TEAM_MAX, &job->spec.team) ||
        !member_string(req, body, "name", DAGI_KEYSTORE_NAME_MAX, &job->spec.name) ||
        !member_roles(req, body, job) ||
        !member_expiry(req, body, job->now_ms, &job->spec.expires_at_ms))
        goto fail;
    submit(req, ud, job);
    return;
fail:
    job_free(job);
}

/* --- list and revoke --- */

static void on_keys_list(struct dagi_http_req *req, void *ud)
{
    const char *user_id = dagi_http_req_query_param(req, "user_id");
    const char *limit = dagi_http_req_query_param(req, "limit");
    size_t n = LIST_LIMIT_MAX;
    if (user_id && (!*user_id || strlen(user_id) > DAGI_KEYSTORE_USER_MAX)) {
        dagi_http_respond_error(req, 400, "invalid_query", "user_id", "user_id must be 1-%d bytes",
                                DAGI_KEYSTORE_USER_MAX);
        return;
    }
    if (limit) {
        char *end;
        unsigned long v = strtoul(limit, &end, 10);
        if (!*limit || *end || v == 0 || v > LIST_LIMIT_MAX) {
            dagi_http_respond_error(req, 400, "invalid_query", "limit",
                                    "limit must be between 1 and %d", LIST_LIMIT_MAX);
            return;
        }
        n = v;
    }
    struct keys_job *job = dagi_xcalloc(1, sizeof(*job));
    job->op = KEYS_LIST;
    job->user_id = user_id ? dagi_xstrdup(user_id) : NULL;
    job->limit = n;
    submit(req, ud, job);
}

static void on_keys_revoke(struct dagi_http_req *req, void *ud)
{
    const char *id = dagi_http_req_param(req, "id");
    /* Not an id at all: the same answer as an id nobody issued. */
    if (!id || !dagi_apikey_id_valid(id)) {
        dagi_http_respond_error(req, 404, "not_found", "id", "unknown key id");
        return;
    }
    struct keys_job *job = dagi_xcalloc(1, sizeof(*job));
    job->op = KEYS_REVOKE;
    job->now_ms = dagi_clock_now_ms();
    snprintf(job->id, sizeof(job->id), "%s", id);
    submit(req, ud, job);
}

void dagi_keys_routes_register(struct dagi_node *n)
{
    const struct dagi_http_route routes[] = {
        {"POST", "/v1/admin/keys", on_keys_create, n, DAGI_ROUTE_ADMIN, 0, "admin", NULL},
        {"GET", "/v1/admin/keys", on_keys_list, n, DAGI_ROUTE_ADMIN, 0, "admin", NULL},
        {"DELETE", "/v1/admin/keys/{id}", on_keys_revoke, n, DAGI_ROUTE_ADMIN, 0, "admin", NULL},
    };
    for (size_t i = 0; i < DAGI_ARRAY_LEN(routes); i++)
        if (dagi_http_server_add_route(dagi_node_http(n), &routes[i]))
            abort(); /* a duplicate route is a programming error */
}
