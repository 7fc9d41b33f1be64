/* Test-only store fixtures (builds with -Dtest_hooks=true only):
 *   POST /v1/test/outbox         {"count":N,"per_tx":M,"subject":S,"writer":W}
 *                                writes N outbox events, M per transaction
 *   GET  /v1/test/outbox/status  pending/published rows, relay leadership */
#include "node_routes.h"

#include "dagi_build.h"

#if DAGI_TEST_HOOKS

#include "core/http_server.h"
#include "core/mem.h"
#include "core/pool.h"
#include "node.h"
#include "store/db.h"
#include "store/outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct outbox_job {
    struct dagi_http_req *req;
    int count, per_tx, written;
    char *subject, *writer;
    char last_id[37];
    int64_t pending, published;
    struct dagi_error err;
};

static int write_tx(struct dagi_db_conn *conn, struct outbox_job *job, struct dagi_error *err);

/* Write transactions may be asked to retry (DAGI_EAGAIN: SQLite busy, a
 * PostgreSQL serialization failure); every writer must. */
static int write_events(struct dagi_db_conn *conn, void *ud, struct dagi_error *err)
{
    struct outbox_job *job = ud;
    int tries = 0;
    while (job->written < job->count) {
        int rc = write_tx(conn, job, err);
        if (rc == DAGI_EAGAIN && ++tries < 20)
            continue;
        if (rc)
            return rc;
        tries = 0;
    }
    return DAGI_OK;
}

static int write_tx(struct dagi_db_conn *conn, struct outbox_job *job, struct dagi_error *err)
{
    {
        int rc = dagi_db_begin(conn, true, err);
        if (rc)
            return rc;
        /* On PostgreSQL each event records its transaction id, so a test can
         * ask PostgreSQL for the real commit order (track_commit_timestamp). */
        char xid[32] = "";
        if (dagi_db_conn_dialect(conn) == DAGI_DB_POSTGRES) {
            struct dagi_db_rows *rows;
            rc = dagi_db_query(conn, "SELECT (txid_current() % 4294967296)::text", NULL, 0, &rows,
                               err);
            if (!rc && dagi_db_rows_next(rows, err) == 1)
                snprintf(xid, sizeof(xid), "%s", dagi_db_col_text(rows, 0, NULL));
            if (!rc)
                dagi_db_rows_free(rows);
            if (rc) {
                dagi_db_rollback(conn);
                return rc;
            }
        }
        int n = 0;
        for (; n < job->per_tx && job->written + n < job->count; n++) {
            struct dagi_outbox_event ev = {
                .subject = job->subject,
                .type = "ops.health",
                .source = "test",
                .aggregate_type = "test",
                .aggregate_id = job->writer,
                .data = json_pack("{s:s,s:i,s:s}", "writer", job->writer, "n", job->written + n,
                                  "xid", xid),
            };
            rc = dagi_outbox_add(conn, &ev, job->last_id, err);
            if (rc) {
                dagi_db_rollback(conn);
                return rc;
            }
        }
        rc = dagi_db_commit(conn, err);
        if (rc)
            return rc;
        job->written += n;
    }
    return DAGI_OK;
}

static int read_status(struct dagi_db_conn *conn, void *ud, struct dagi_error *err)
{
    struct outbox_job *job = ud;
    struct dagi_db_rows *rows;
    int rc = dagi_db_query(conn,
                           "SELECT status, COUNT(*) FROM outbox GROUP BY status", NULL, 0, &rows,
                           err);
    if (rc)
        return rc;
    while ((rc = dagi_db_rows_next(rows, err)) == 1) {
        const char *status = dagi_db_col_text(rows, 0, NULL);
        if (strcmp(status, "pending") == 0)
            job->pending = dagi_db_col_int(rows, 1);
        else if (strcmp(status, "published") == 0)
            job->published = dagi_db_col_int(rows, 1);
    }
    dagi_db_rows_free(rows);
    return rc < 0 ? rc : DAGI_OK;
}

static void on_job_close(struct dagi_http_req *req, void *ud)
{
    (void)req;
    ((struct outbox_job *)ud)->req = NULL;
}

static void job_free(struct outbox_job *job)
{
    free(job->subject);
    free(job->writer);
    free(job);
}

static void on_write_done(void *ud, int rc, const struct dagi_error *err)
{
    struct outbox_job *job = ud;
    if (job->req) {
        dagi_http_req_on_close(job->req, NULL, NULL);
        if (rc)
            dagi_http_respond_error(job->req, 500, "store_error", NULL, "%s",
                                    err && err->message[0] ? err->message : dagi_strerror(rc));
        else
            dagi_http_respond_json(job->req, 200,
                                   json_pack("{s:i,s:s}", "written", job->written, "last_id",
                                             job->last_id));
    }
    job_free(job);
}

static struct dagi_node *hook_node;

static void on_status_done(void *ud, int rc, const struct dagi_error *err)
{
    struct outbox_job *job = ud;
    if (job->req) {
        dagi_http_req_on_close(job->req, NULL, NULL);
        if (rc)
            dagi_http_respond_error(job->req, 500, "store_error", NULL, "%s",
                                    err ? err->message : "");
        else
            dagi_http_respond_json(job->req, 200,
                                   json_pack("{s:I,s:I}", "pending", (json_int_t)job->pending,
                                             "published", (json_int_t)job->published));
    }
    job_free(job);
}

static void start(struct dagi_http_req *req, struct outbox_job *job,
                  int (*fn)(struct dagi_db_conn *, void *, struct dagi_error *),
                  void (*done)(void *, int, const struct dagi_error *))
{
    job->req = req;
    dagi_http_req_on_close(req, on_job_close, job);
    if (dagi_db_run(dagi_node_db(hook_node), dagi_node_pool(hook_node), fn, done, job)) {
        dagi_http_req_on_close(req, NULL, NULL);
        job_free(job);
        dagi_http_respond_error(req, 503, "busy", NULL, "worker pool full");
    }
}

static void on_outbox_write(struct dagi_http_req *req, void *ud)
{
    (void)ud;
    json_t *body;
    if (dagi_http_req_json(req, &body))
        return;
    struct outbox_job *job = dagi_xcalloc(1, sizeof(*job));
    job->count = (int)json_integer_value(json_object_get(body, "count"));
    job->per_tx = (int)json_integer_value(json_object_get(body, "per_tx"));
    const char *subject = json_string_value(json_object_get(body, "subject"));
    const char *writer = json_string_value(json_object_get(body, "writer"));
    job->subject = dagi_xstrdup(subject ? subject : "ops.health.outboxtest");
    job->writer = dagi_xstrdup(writer ? writer : "w");
    json_decref(body);
    if (job->count <= 0 || job->count > 1000000) {
        job_free(job);
        dagi_http_respond_error(req, 400, "invalid_field", "count", "count must be 1..1000000");
        return;
    }
    if (job->per_tx <= 0)
        job->per_tx = 1;
    start(req, job, write_events, on_write_done);
}

static void on_outbox_status(struct dagi_http_req *req, void *ud)
{
    (void)ud;
    start(req, dagi_xcalloc(1, sizeof(struct outbox_job)), read_status, on_status_done);
}

void dagi_testhooks_store_register(struct dagi_node *n)
{
    hook_node = n;
    const struct dagi_http_route routes[] = {
        {"POST", "/v1/test/outbox", on_outbox_write, n, 0, 0, "admin", NULL},
        {"GET", "/v1/test/outbox/status", on_outbox_status, n, 0, 0, "admin", NULL},
    };
    for (size_t i = 0; i < DAGI_ARRAY_LEN(routes); i++)
        if (dagi_http_server_add_route(dagi_node_http(n), &routes[i]))
            abort();
}

#else

void dagi_testhooks_store_register(struct dagi_node *n)
{
    (void)n;
}

#endif
