/* The config registry's admin API (docs/CONFIG_REGISTRY.md):
 *
 *   GET    /v1/config                              the current set, without texts
 *   GET    /v1/config/{kind}/{name}[?version=N]    one text; ETag = its checksum
 *   PUT    /v1/config/{kind}/{name}[?comment=..]   a new version (body = the text)
 *   DELETE /v1/config/prompts/{name}               a deletion version
 *   GET    /v1/config/{kind}/{name}/history        versions, newest first
 *   GET    /v1/config/{kind}/{name}/diff?from=A&to=B   unified diff
 *   POST   /v1/config/{kind}/{name}/rollback[?to=N]    version N's text as a new version
 *
 * Requests are checked on the loop; the store's calls run on the worker
 * pool, where a change is validated as the whole would-be set inside its
 * write transaction (registry_store.h).  A client that leaves meanwhile is
 * noticed (on_close) and its answer dropped - a change made is still
 * published and audited. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auditlog/audit.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/http_server.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "node/gate.h"
#include "registry/registry_diff.h"
#include "registry/registry_internal.h"
#include "store/db.h"

#define HISTORY_LIMIT_DEFAULT 100
#define HISTORY_LIMIT_MAX 1000
#define COMMENT_MAX 1024
#define DIFF_CAP (8u << 20)
#define DIFF_CONTEXT 3

enum op { OP_LIST, OP_GET, OP_PUT, OP_DELETE, OP_HISTORY, OP_DIFF, OP_ROLLBACK };

struct job {
    struct dagi_registry_state *rs;
    struct dagi_http_req *req; /* NULL once the client has gone */
    enum op op;
    struct dagi_config_snapshot *cfg; /* what a change is validated against */
    enum dagi_doc_kind kind;
    char name[DAGI_DOC_MAX_NAME + 1];
    char *text;
    size_t len;
    char *comment;
    char author[DAGI_CALLER_ID_MAX + 1];
    char actor[DAGI_CALLER_ID_MAX + 8];
    char trace_id[64];
    int64_t version, from, to;
    size_t limit;

    struct dagi_cfg_errors errs;
    struct dagi_regstore_result result;
    struct dagi_regstore_outcome outcome;
    struct dagi_regstore_version ver;
    struct dagi_regstore_version *versions;
    size_t nversions;
    struct dagi_docset current;
    struct dagi_buf diff;
};

static void job_free(struct job *job)
{
    dagi_registry_state_unref(job->rs);
    dagi_config_snapshot_unref(job->cfg);
    free(job->text);
    free(job->comment);
    dagi_cfg_errors_release(&job->errs);
    dagi_regstore_result_release(&job->result);
    dagi_regstore_version_release(&job->ver);
    dagi_regstore_versions_free(job->versions, job->nversions);
    dagi_docset_release(&job->current);
    dagi_buf_release(&job->diff);
    free(job);
}

/* Who may read and change documents: the one place that decides, so the
 * policy decision (config.read / config.write) replaces it here.  Today:
 * the admin key (or the "admin" role), checked by the gate. */
static unsigned access_flags(bool write)
{
    (void)write;
    return DAGI_ROUTE_ADMIN;
}

/* --- audit and metrics --- */

void dagi_registry_audit(struct dagi_registry_state *rs, const char *action, const char *actor,
                         const char *trace_id, enum dagi_doc_kind kind, const char *name,
                         int64_t version, const char *checksum, int64_t revision)
{
    if (rs->stopped)
        return;
    char subject[DAGI_DOC_MAX_NAME + 32];
    snprintf(subject, sizeof(subject), "config:%s/%s", dagi_doc_kind_name(kind), name);
    /* ids and figures only: never the text */
    json_t *meta = json_pack("{s:s,s:s,s:I,s:s,s:I}", "kind", dagi_doc_kind_name(kind), "name",
                             name, "version", (json_int_t)version, "checksum", checksum, "revision",
                             (json_int_t)revision);
    struct dagi_audit_event ev = {.service = "registry",
                                  .action = action,
                                  .actor = actor,
                                  .subject = subject,
                                  .decision = "ok",
                                  .trace_id = trace_id && *trace_id ? trace_id : NULL,
                                  .metadata = meta};
    dagi_audit_emit(rs->node, &ev);
    json_decref(meta);
}

static void count(struct job *job, const char *result)
{
    dagi_metric_inc(job->rs->pushes, (const char *[]){dagi_doc_kind_name(job->kind), result});
}

/* --- answers --- */

/* One error line of the validation, "<kind>/<name>:<line>: message" (or
 * without the line, or free text), as {"document", "line"?, "message"}. */
static json_t *error_json(const char *line, size_t len)
{
    const char *colon = memchr(line, ':', len);
    if (!colon || colon == line || memchr(line, ' ', (size_t)(colon - line)))
        return json_pack("{s:n,s:s%}", "document", "message", line, len);
    json_t *e = json_pack("{s:s%}", "document", line, (size_t)(colon - line));
    const char *rest = colon + 1, *end = line + len;
    size_t digits = 0;
    while (rest + digits < end && rest[digits] >= '0' && rest[digits] <= '9')
        digits++;
    if (digits && digits < 10 && rest + digits < end && rest[digits] == ':') {
        json_object_set_new(e, "line", json_integer(strtol(rest, NULL, 10)));
        rest += digits + 1;
    }
    while (rest < end && *rest == ' ')
        rest++;
    json_object_set_new(e, "message", json_stringn(rest, (size_t)(end - rest)));
    return e;
}

static void respond_invalid(struct dagi_http_req *req, const struct job *job,
                            const struct dagi_error *err)
{
    json_t *errors = json_array();
    const char *text = dagi_buf_str(&job->errs.text);
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        json_t *e = len ? error_json(p, len) : NULL;
        if (e)
            json_array_append_new(errors, e);
        p += len + (nl ? 1 : 0);
    }
    char message[600];
    if (job->errs.count)
        snprintf(message, sizeof(message),
                 "%s/%s: the change was refused: %zu error%s in the "
                 "would-be documents; nothing was stored",
                 dagi_doc_kind_name(job->kind), job->name, job->errs.count,
                 job->errs.count == 1 ? "" : "s");
    else
        snprintf(message, sizeof(message), "%s", err->message);
    dagi_http_respond_json(req, 422,
                           json_pack("{s:{s:s,s:s,s:s,s:o}}", "error", "type", "invalid_document",
                                     "code", "invalid_document", "message", message, "errors",
                                     errors));
}

static void respond_failure(struct dagi_http_req *req, struct job *job, int rc,
                            const struct dagi_error *err)
{
    const char *message = err && err->message[0] ? err->message : dagi_strerror(rc);
    switch (rc) {
    case DAGI_EINVAL:
        respond_invalid(req, job, err);
        break;
    case DAGI_ETOOBIG:
        dagi_http_respond_error(req, 413, "too_big", NULL, "%s", message);
        break;
    case DAGI_ENOENT:
        dagi_http_respond_error(req, 404, "not_found", NULL, "%s", message);
        break;
    case DAGI_ECANCELED:
        dagi_http_respond_error(req, 503, "unavailable", NULL, "the node is stopping");
        break;
    case DAGI_EAGAIN:
    case DAGI_EUNAVAIL:
        dagi_http_set_header(req, "Retry-After", "1");
        dagi_http_respond_error(req, 503, "store_unavailable", NULL, "%s", message);
        break;
    default:
        dagi_log_error(dagi_http_req_trace_id(req), "registry: the store failed", "error", message);
        dagi_http_respond_error(req, 500, "store_error", NULL, "the config store failed: %s",
                                message);
        break;
    }
}

static void respond_list(struct dagi_http_req *req, const struct dagi_docset *s)
{
    json_t *docs = json_array();
    for (size_t i = 0; i < s->count; i++) {
        const struct dagi_doc *d = &s->docs[i];
        json_array_append_new(docs,
                              json_pack("{s:s,s:s,s:I,s:s,s:s?,s:I}", "kind",
                                        dagi_doc_kind_name(d->kind), "name", d->name, "version",
                                        (json_int_t)d->version, "checksum", d->checksum, "author",
                                        d->author, "created_at_ms", (json_int_t)d->created_at_ms));
    }
    dagi_http_respond_json(
        req, 200, json_pack("{s:I,s:o}", "revision", (json_int_t)s->revision, "docs", docs));
}

static void respond_text(struct dagi_http_req *req, const struct dagi_regstore_version *v)
{
    if (v->deleted) {
        dagi_http_respond_error(req, 404, "not_found", NULL, "%s/%s was deleted in version %lld",
                                dagi_doc_kind_name(v->kind), v->name, (long long)v->version);
        return;
    }
    char etag[70], version[24];
    snprintf(etag, sizeof(etag), "\"%s\"", v->checksum);
    snprintf(version, sizeof(version), "%lld", (long long)v->version);
    dagi_http_set_header(req, "ETag", etag);
    dagi_http_set_header(req, "X-Dagi-Version", version);
    dagi_http_respond(req, 200,
                      v->kind == DAGI_DOC_PROMPTS ? "text/markdown; charset=utf-8"
                                                  : "text/plain; charset=utf-8",
                      v->text, v->len);
}

static void respond_history(struct dagi_http_req *req, const struct job *job)
{
    json_t *list = json_array();
    for (size_t i = 0; i < job->nversions; i++) {
        const struct dagi_regstore_version *v = &job->versions[i];
        json_t *o = json_pack("{s:I,s:s,s:s,s:s,s:I,s:I,s:s,s:b}", "version",
                              (json_int_t)v->version, "checksum", v->checksum, "author", v->author,
                              "comment", v->comment, "created_at_ms", (json_int_t)v->created_at_ms,
                              "revision", (json_int_t)v->revision, "action",
                              dagi_regstore_action_name(v->action), "deleted", (int)v->deleted);
        if (v->rolled_back_from)
            json_object_set_new(o, "restored", json_integer((json_int_t)v->rolled_back_from));
        json_array_append_new(list, o);
    }
    dagi_http_respond_json(req, 200,
                           json_pack("{s:s,s:s,s:o}", "kind", dagi_doc_kind_name(job->kind), "name",
                                     job->name, "versions", list));
}

static void respond_changed(struct dagi_http_req *req, const struct job *job)
{
    const struct dagi_regstore_outcome *o = &job->outcome;
    json_t *doc = json_pack("{s:s,s:s,s:I,s:s,s:I}", "kind", dagi_doc_kind_name(job->kind), "name",
                            job->name, "version", (json_int_t)o->version, "checksum", o->checksum,
                            "revision", (json_int_t)job->result.revision);
    if (!o->changed)
        json_object_set_new(doc, "unchanged", json_true());
    if (o->deleted)
        json_object_set_new(doc, "deleted", json_true());
    if (o->restored)
        json_object_set_new(doc, "restored", json_integer((json_int_t)o->restored));
    dagi_http_respond_json(req, 200, doc);
}

/* --- the pool side --- */

static int do_diff(struct dagi_db_conn *conn, struct job *job, struct dagi_error *err)
{
    struct dagi_regstore_version a = {0}, b = {0};
    int rc = dagi_regstore_get(conn, job->kind, job->name, job->to, &b, err);
    if (rc)
        return rc;
    job->to = b.version;
    if (job->from < 0) /* not given: the version before */
        job->from = b.version - 1;
    if (job->from > 0)
        rc = dagi_regstore_get(conn, job->kind, job->name, job->from, &a, err);
    if (!rc) {
        /* version 0 is the empty text before the first version */
        char la[DAGI_DOC_MAX_NAME + 64], lb[DAGI_DOC_MAX_NAME + 64];
        snprintf(la, sizeof(la), "%s/%s@%lld", dagi_doc_kind_name(job->kind), job->name,
                 (long long)job->from);
        snprintf(lb, sizeof(lb), "%s/%s@%lld", dagi_doc_kind_name(job->kind), job->name,
                 (long long)job->to);
        rc = dagi_diff_unified(a.text ? a.text : "", a.len, b.text ? b.text : "", b.len, la, lb,
                               DIFF_CONTEXT, &job->diff);
        if (rc)
            rc = dagi_error_set(err, rc, "the diff is over %u bytes", DIFF_CAP);
    }
    dagi_regstore_version_release(&a);
    dagi_regstore_version_release(&b);
    return rc;
}

static int on_job_work(struct dagi_db_conn *conn, void *ud, struct dagi_error *err)
{
    struct job *job = ud;
    switch (job->op) {
    case OP_LIST:
        return dagi_regstore_current(conn, &job->current, err);
    case OP_GET:
        return dagi_regstore_get(conn, job->kind, job->name, job->version, &job->ver, err);
    case OP_HISTORY:
        return dagi_regstore_history(conn, job->kind, job->name, job->limit, &job->versions,
                                     &job->nversions, err);
    case OP_DIFF:
        return do_diff(conn, job, err);
    case OP_PUT:
    case OP_DELETE:
    case OP_ROLLBACK:
        break;
    }
    static const enum dagi_regstore_action actions[] = {[OP_PUT] = DAGI_REGSTORE_PUSH,
                                                        [OP_DELETE] = DAGI_REGSTORE_DELETE,
                                                        [OP_ROLLBACK] = DAGI_REGSTORE_ROLLBACK};
    struct dagi_regstore_meta meta = {actions[job->op], job->author, job->comment,
                                      dagi_clock_now_ms()};
    struct dagi_regstore_change c = {.kind = job->kind,
                                     .name = job->name,
                                     .text = job->text,
                                     .len = job->len,
                                     .rollback_to = job->to};
    return dagi_regstore_apply(conn, &meta, &c, 1, dagi_registry_validate, (void *)job->cfg->cfg,
                               &job->outcome, &job->errs, &job->result, err);
}

static void on_req_close(struct dagi_http_req *req, void *ud)
{
    (void)req;
    struct job *job = ud;
    job->req = NULL;
}

/* The change is made (or refused) whether or not the client is still
 * there: count, audit and publish before answering. */
static void after_change(struct job *job, int rc)
{
    static const char *const audit_actions[] = {
        [OP_PUT] = "config_push", [OP_DELETE] = "config_delete", [OP_ROLLBACK] = "config_rollback"};
    if (rc) {
        count(job, rc == DAGI_EINVAL ? "invalid" : rc == DAGI_ENOENT ? "not_found" : "error");
        return;
    }
    if (!job->outcome.changed) {
        count(job, "unchanged");
        return;
    }
    count(job, "ok");
    char version[24], revision[24];
    snprintf(version, sizeof(version), "%lld", (long long)job->outcome.version);
    snprintf(revision, sizeof(revision), "%lld", (long long)job->result.revision);
    dagi_log_info(job->trace_id, "registry: document changed", "action", audit_actions[job->op],
                  "kind", dagi_doc_kind_name(job->kind), "name", job->name, "version", version,
                  "revision", revision, "author", job->author);
    dagi_registry_audit(job->rs, audit_actions[job->op], job->actor, job->trace_id, job->kind,
                        job->name, job->outcome.version, job->outcome.checksum,
                        job->result.revision);
    dagi_registry_publish(job->rs, &job->result.set);
}

static void on_job_done(void *ud, int rc, const struct dagi_error *err)
{
    struct job *job = ud;
    struct dagi_http_req *req = job->req;
    bool change = job->op == OP_PUT || job->op == OP_DELETE || job->op == OP_ROLLBACK;
    if (change && rc != DAGI_ECANCELED)
        after_change(job, rc);
    if (!req)
        goto out;
    dagi_http_req_on_close(req, NULL, NULL);
    if (rc) {
        respond_failure(req, job, rc, err);
        goto out;
    }
    switch (job->op) {
    case OP_LIST:
        respond_list(req, &job->current);
        break;
    case OP_GET:
        respond_text(req, &job->ver);
        break;
    case OP_HISTORY:
        respond_history(req, job);
        break;
    case OP_DIFF: {
        char from[24], to[24];
        snprintf(from, sizeof(from), "%lld", (long long)job->from);
        snprintf(to, sizeof(to), "%lld", (long long)job->to);
        dagi_http_set_header(req, "X-Dagi-From", from);
        dagi_http_set_header(req, "X-Dagi-To", to);
        dagi_http_respond(req, 200, "text/plain; charset=utf-8", dagi_buf_str(&job->diff),
                          job->diff.len);
        break;
    }
    case OP_PUT:
    case OP_DELETE:
    case OP_ROLLBACK:
        respond_changed(req, job);
        break;
    }
out:
    job_free(job);
}

static void submit(struct dagi_http_req *req, struct job *job)
{
    struct dagi_registry_state *rs = job->rs;
    job->req = req;
    dagi_http_req_on_close(req, on_req_close, job);
    if (dagi_db_run(dagi_node_db(rs->node), dagi_node_pool(rs->node), on_job_work, on_job_done,
                    job)) {
        dagi_http_req_on_close(req, NULL, NULL);
        job_free(job);
        dagi_http_set_header(req, "Retry-After", "1");
        dagi_http_respond_error(req, 503, "busy", NULL, "the worker pool is full; retry later");
    }
}

/* --- checks on the loop --- */

/* The job for {kind}/{name}, or NULL after answering 404 / 400. */
static struct job *job_for(struct dagi_http_req *req, struct dagi_registry_state *rs, enum op op)
{
    const char *kind = dagi_http_req_param(req, "kind"), *name = dagi_http_req_param(req, "name");
    enum dagi_doc_kind k = DAGI_DOC_AGENTS;
    if (op != OP_LIST) {
        if (dagi_doc_kind_parse(kind, &k)) {
            dagi_http_respond_error(req, 404, "not_found", "kind",
                                    "unknown document kind; the kinds are agents, prompts, "
                                    "routing, policies, quotas, flags, lists");
            return NULL;
        }
        if (!dagi_doc_name_valid(k, name)) {
            if (dagi_doc_fixed_name(k))
                dagi_http_respond_error(req, 400, "invalid_name", "name",
                                        "the %s document is named %s", kind,
                                        dagi_doc_fixed_name(k));
            else
                dagi_http_respond_error(req, 400, "invalid_name", "name",
                                        "a %s name is 1-%d characters of [A-Za-z0-9_.-], not . "
                                        "or ..",
                                        kind, DAGI_DOC_MAX_NAME);
            return NULL;
        }
    }
    struct job *job = dagi_xcalloc(1, sizeof(*job));
    job->rs = dagi_registry_state_ref(rs);
    job->op = op;
    job->kind = k;
    if (op != OP_LIST)
        snprintf(job->name, sizeof(job->name), "%s", name);
    dagi_cfg_errors_init(&job->errs);
    dagi_docset_init(&job->current);
    dagi_buf_init(&job->diff, DIFF_CAP);
    snprintf(job->trace_id, sizeof(job->trace_id), "%s", dagi_http_req_trace_id(req));
    return job;
}

/* A whole number query parameter in [min, INT64_MAX], or def when absent;
 * false after answering 400. */
static bool query_int(struct dagi_http_req *req, const char *key, int64_t min, int64_t def,
                      int64_t *out)
{
    const char *v = dagi_http_req_query_param(req, key);
    if (!v) {
        *out = def;
        return true;
    }
    char *end;
    long long n = strtoll(v, &end, 10);
    if (!*v || *end || n < min || strspn(v, "0123456789") != strlen(v)) {
        dagi_http_respond_error(req, 400, "invalid_query", key,
                                "%s must be a whole number of at "
                                "least %lld",
                                key, (long long)min);
        return false;
    }
    *out = n;
    return true;
}

/* Who changes: the version's author and the audit's actor. */
static void set_author(struct dagi_http_req *req, struct job *job)
{
    const struct dagi_caller *c = dagi_gate_caller(req);
    if (!c || c->kind == DAGI_CALLER_ADMIN || !c->user_id[0]) {
        snprintf(job->author, sizeof(job->author), "admin");
        snprintf(job->actor, sizeof(job->actor), "admin");
    } else {
        snprintf(job->author, sizeof(job->author), "%s", c->user_id);
        snprintf(job->actor, sizeof(job->actor), "user:%s", c->user_id);
    }
}

/* ?comment= or X-Dagi-Comment: UTF-8 without control characters, capped;
 * false after answering 400. */
static bool set_comment(struct dagi_http_req *req, struct job *job)
{
    const char *c = dagi_http_req_query_param(req, "comment");
    if (!c)
        c = dagi_http_req_header(req, "X-Dagi-Comment");
    if (!c)
        c = "";
    size_t n = strlen(c);
    bool ok = n <= COMMENT_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = (unsigned char)c[i] >= 0x20 && c[i] != 0x7f;
    json_t *probe = ok ? json_stringn(c, n) : NULL; /* jansson checks the UTF-8 */
    if (!probe) {
        dagi_http_respond_error(req, 400, "invalid_query", "comment",
                                "the comment must be UTF-8 text of at most %d bytes without "
                                "control characters",
                                COMMENT_MAX);
        return false;
    }
    json_decref(probe);
    job->comment = dagi_xstrdup(c);
    return true;
}

static void prepare_change(struct dagi_http_req *req, struct job *job)
{
    set_author(req, job);
    job->cfg = dagi_node_config(job->rs->node);
}

static void on_list(struct dagi_http_req *req, void *ud)
{
    struct job *job = job_for(req, ud, OP_LIST);
    if (job)
        submit(req, job);
}

static void on_get(struct dagi_http_req *req, void *ud)
{
    struct job *job = job_for(req, ud, OP_GET);
    if (!job)
        return;
    if (!query_int(req, "version", 1, 0, &job->version)) {
        job_free(job);
        return;
    }
    submit(req, job);
}

static void on_put(struct dagi_http_req *req, void *ud)
{
    struct job *job = job_for(req, ud, OP_PUT);
    if (!job)
        return;
    if (!set_comment(req, job)) {
        job_free(job);
        return;
    }
    size_t len;
    const char *body = dagi_http_req_body(req, &len);
    job->text = dagi_xmalloc(len + 1);
    memcpy(job->text, body ? body : "", len);
    job->text[len] = '\0';
    job->len = len;
    prepare_change(req, job);
    submit(req, job);
}

static void on_delete(struct dagi_http_req *req, void *ud)
{
    struct job *job = job_for(req, ud, OP_DELETE);
    if (!job)
        return;
    if (job->kind != DAGI_DOC_PROMPTS) {
        dagi_http_respond_error(req, 400, "invalid_kind", "kind",
                                "only prompts can be deleted; push a new %s instead",
                                dagi_doc_kind_name(job->kind));
        job_free(job);
        return;
    }
    if (!set_comment(req, job)) {
        job_free(job);
        return;
    }
    prepare_change(req, job);
    submit(req, job);
}

static void on_history(struct dagi_http_req *req, void *ud)
{
    struct job *job = job_for(req, ud, OP_HISTORY);
    if (!job)
        return;
    int64_t limit;
    if (!query_int(req, "limit", 1, HISTORY_LIMIT_DEFAULT, &limit)) {
        job_free(job);
        return;
    }
    job->limit = limit > HISTORY_LIMIT_MAX ? HISTORY_LIMIT_MAX : (size_t)limit;
    submit(req, job);
}

static void on_diff(struct dagi_http_req *req, void *ud)
{
    struct job *job = job_for(req, ud, OP_DIFF);
    if (!job)
        return;
    if (!query_int(req, "from", 0, -1, &job->from) || !query_int(req, "to", 1, 0, &job->to)) {
        job_free(job);
        return;
    }
    submit(req, job);
}

static void on_rollback(struct dagi_http_req *req, void *ud)
{
    struct job *job = job_for(req, ud, OP_ROLLBACK);
    if (!job)
        return;
    if (!query_int(req, "to", 1, DAGI_REGSTORE_PREVIOUS, &job->to) || !set_comment(req, job)) {
        job_free(job);
        return;
    }
    if (!job->comment[0]) {
        free(job->comment);
        job->comment = job->to == DAGI_REGSTORE_PREVIOUS
                           ? dagi_xstrdup("rollback to the previous version")
                           : dagi_xasprintf("rollback to version %lld", (long long)job->to);
    }
    prepare_change(req, job);
    submit(req, job);
}

void dagi_registry_routes_register(struct dagi_registry_state *rs)
{
    const unsigned r = access_flags(false), w = access_flags(true);
    const struct dagi_http_route routes[] = {
        {"GET", "/v1/config", on_list, rs, r, 0, "admin", NULL},
        {"GET", "/v1/config/{kind}/{name}", on_get, rs, r, 0, "admin", NULL},
        {"PUT", "/v1/config/{kind}/{name}", on_put, rs, w, DAGI_DOC_MAX_TEXT, "admin", NULL},
        {"DELETE", "/v1/config/{kind}/{name}", on_delete, rs, w, 0, "admin", NULL},
        {"GET", "/v1/config/{kind}/{name}/history", on_history, rs, r, 0, "admin", NULL},
        {"GET", "/v1/config/{kind}/{name}/diff", on_diff, rs, r, 0, "admin", NULL},
        {"POST", "/v1/config/{kind}/{name}/rollback", on_rollback, rs, w, 0, "admin", NULL},
    };
    for (size_t i = 0; i < DAGI_ARRAY_LEN(routes); i++)
        if (dagi_http_server_add_route(dagi_node_http(rs->node), &routes[i]))
            abort(); /* a duplicate route is a programming error */
}
