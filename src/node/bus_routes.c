/* Operator routes of the bus: the dead-letter stream (`/v1/bus/dlq...`).
 * JetStream calls block, so each request runs them on the worker pool and
 * answers on the loop; a client that leaves meanwhile is noticed (on_close)
 * and the answer is dropped. */
#include "bus_routes.h"

#include "bus/js.h"
#include "core/http_server.h"
#include "core/mem.h"
#include "core/pool.h"
#include "node.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

enum dlq_op { DLQ_LIST, DLQ_SHOW, DLQ_REPLAY };

struct dlq_job {
    struct dagi_http_req *req; /* NULL once the client has gone */
    struct dagi_js *js;
    enum dlq_op op;
    uint64_t seq, new_seq;
    size_t limit;
    char *out;
    int rc;
    struct dagi_error err;
};

static void on_job_work(void *ud)
{
    struct dlq_job *job = ud;
    switch (job->op) {
    case DLQ_LIST: job->rc = dagi_js_dlq_list(job->js, job->limit, &job->out, &job->err); break;
    case DLQ_SHOW: job->rc = dagi_js_dlq_show(job->js, job->seq, &job->out, &job->err); break;
    case DLQ_REPLAY:
        job->rc = dagi_js_dlq_replay(job->js, job->seq, &job->new_seq, &job->err);
        break;
    }
}

static void on_req_close(struct dagi_http_req *req, void *ud)
{
    (void)req;
    struct dlq_job *job = ud;
    job->req = NULL;
}

static void on_job_done(void *ud, bool cancelled)
{
    struct dlq_job *job = ud;
    struct dagi_http_req *req = job->req;
    if (!req)
        goto out;
    dagi_http_req_on_close(req, NULL, NULL);
    if (cancelled) {
        dagi_http_respond_error(req, 503, "unavailable", NULL, "the node is stopping");
    } else if (job->rc == DAGI_ENOENT) {
        dagi_http_respond_error(req, 404, "not_found", NULL, "%s", job->err.message);
    } else if (job->rc) {
        dagi_http_respond_error(req, 502, "bus_error", NULL, "%s",
                                job->err.message[0] ? job->err.message : dagi_strerror(job->rc));
    } else if (job->op == DLQ_REPLAY) {
        dagi_http_respond_json(req, 200,
                               json_pack("{s:I,s:I}", "replayed", (json_int_t)job->seq, "new_seq",
                                         (json_int_t)job->new_seq));
    } else {
        dagi_http_respond(req, 200, "application/json", job->out, strlen(job->out));
    }
out:
    free(job->out);
    free(job);
}

static void start_job(struct dagi_http_req *req, struct dagi_node *n, enum dlq_op op)
{
    struct dagi_js *js = dagi_node_js(n);
    if (!js) {
        dagi_http_respond_error(req, 409, "no_jetstream", NULL,
                                "this node has no JetStream (bus.url is none)");
        return;
    }
    struct dlq_job *job = dagi_xcalloc(1, sizeof(*job));
    job->req = req;
    job->js = js;
    job->op = op;
    job->limit = 100;
    const char *limit = dagi_http_req_query_param(req, "limit");
    if (limit) {
        char *end;
        unsigned long v = strtoul(limit, &end, 10);
        if (*end || v == 0 || v > 10000) {
            free(job);
            dagi_http_respond_error(req, 400, "invalid_query", "limit",
                                    "limit must be between 1 and 10000");
            return;
        }
        job->limit = v;
    }
    const char *seq = dagi_http_req_param(req, "seq");
    if (seq) {
        char *end;
        job->seq = strtoull(seq, &end, 10);
        if (*end || job->seq == 0) {
            free(job);
            dagi_http_respond_error(req, 400, "invalid_path", "seq",
                                    "seq must be a positive stream sequence number");
            return;
        }
    }
    dagi_http_req_on_close(req, on_req_close, job);
    if (dagi_pool_submit(dagi_node_pool(n), on_job_work, on_job_done, job)) {
        dagi_http_req_on_close(req, NULL, NULL);
        free(job);
        dagi_http_respond_error(req, 503, "busy", NULL, "the worker pool is full; retry later");
    }
}

static void on_dlq_list(struct dagi_http_req *req, void *ud)
{
    start_job(req, ud, DLQ_LIST);
}

static void on_dlq_show(struct dagi_http_req *req, void *ud)
{
    start_job(req, ud, DLQ_SHOW);
}

static void on_dlq_replay(struct dagi_http_req *req, void *ud)
{
    start_job(req, ud, DLQ_REPLAY);
}

void dagi_bus_routes_register(struct dagi_node *n)
{
    const struct dagi_http_route routes[] = {
        {"GET", "/v1/bus/dlq", on_dlq_list, n, DAGI_ROUTE_ADMIN, 0, "admin", NULL},
        {"GET", "/v1/bus/dlq/{seq}", on_dlq_show, n, DAGI_ROUTE_ADMIN, 0, "admin", NULL},
        {"POST", "/v1/bus/dlq/{seq}/replay", on_dlq_replay, n, DAGI_ROUTE_ADMIN, 0, "admin", NULL},
    };
    for (size_t i = 0; i < DAGI_ARRAY_LEN(routes); i++)
        if (dagi_http_server_add_route(dagi_node_http(n), &routes[i]))
            abort();
}
