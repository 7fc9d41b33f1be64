/* Operator routes of the swapper (admin key):
 *   GET  /v1/swapper/models              the table, with load state
 *   POST /v1/swapper/models/{id}/load    waits for the load
 *   POST /v1/swapper/models/{id}/unload  waits for the unload
 *   GET  /v1/swapper/status              budget and what is loaded
 * A load or unload answers when the provider does; a client that leaves
 * meanwhile is noticed (on_close) and the answer dropped, the load itself
 * goes on (another request will want the model). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/http_server.h"
#include "core/mem.h"
#include "node/node.h"
#include "swapper_internal.h"

static const char *const state_names[] = {"unloaded", "loading", "loaded", "unloading"};

/* An operator request waiting for a load or an unload. */
struct dagi_swapper_op {
    struct dagi_swapper_op *prev, *next;
    struct dagi_swapper_state *sw;    /* NULL once the role stopped */
    struct dagi_http_req *req;        /* NULL once the client left */
    struct dagi_swapper_model *model; /* referenced */
    struct dagi_swapper_waiter waiter;
    bool waiting; /* a load: queued on the model */
};

static void op_unlink(struct dagi_swapper_op *op)
{
    struct dagi_swapper_state *sw = op->sw;
    if (!sw)
        return;
    if (op->prev)
        op->prev->next = op->next;
    else
        sw->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
    op->sw = NULL;
}

static void op_free(struct dagi_swapper_op *op)
{
    op_unlink(op);
    if (op->waiting)
        dagi_swapper_model_forget(op->model, &op->waiter);
    if (op->req)
        dagi_http_req_on_close(op->req, NULL, NULL);
    dagi_swapper_model_unref(op->model);
    free(op);
}

static struct dagi_swapper_op *op_new(struct dagi_swapper_state *sw, struct dagi_http_req *req,
                                      struct dagi_swapper_model *m)
{
    struct dagi_swapper_op *op = dagi_xcalloc(1, sizeof(*op));
    op->sw = sw;
    op->req = req;
    dagi_swapper_model_ref(m);
    op->model = m;
    op->next = sw->ops;
    if (op->next)
        op->next->prev = op;
    sw->ops = op;
    return op;
}

static void respond_state(struct dagi_http_req *req, const struct dagi_swapper_model *m)
{
    dagi_http_respond_json(req, 200,
                           json_pack("{s:s,s:b,s:s}", "id", m->cfg.id, "loaded",
                                     dagi_swapper_model_loaded(m), "state",
                                     m->ops->load ? state_names[m->state] : "loaded"));
}

static void respond_failure(struct dagi_http_req *req, int err, const char *message)
{
    int status = err == DAGI_ETIMEDOUT ? 504 : err == DAGI_ENOENT ? 404 : 502;
    dagi_http_respond_error(req, status, "provider_error", NULL, "%s",
                            message ? message : dagi_strerror(err));
}

static void on_op_close(struct dagi_http_req *req, void *ud)
{
    (void)req;
    struct dagi_swapper_op *op = ud;
    op->req = NULL;
    if (op->waiting) { /* the load goes on without us */
        dagi_swapper_model_forget(op->model, &op->waiter);
        op->waiting = false;
        op_free(op);
    }
}

static struct dagi_swapper_model *model_of(struct dagi_swapper_state *sw, struct dagi_http_req *req)
{
    const char *id = dagi_http_req_param(req, "id");
    struct dagi_swapper_model *m = id ? dagi_swapper_models_find(sw->models, id) : NULL;
    if (!m)
        dagi_http_respond_error(req, 404, "not_found", "id", "no model \"%.128s\"", id ? id : "");
    return m;
}

static void on_models(struct dagi_http_req *req, void *ud)
{
    struct dagi_swapper_state *sw = ud;
    json_t *list = json_array();
    for (struct dagi_swapper_model *m = dagi_swapper_models_first(sw->models); m; m = m->next) {
        json_t *caps = json_array();
        for (size_t i = 0; i < m->cfg.capabilities.count; i++)
            json_array_append_new(caps, json_string(m->cfg.capabilities.items[i]));
        if (!m->cfg.capabilities.count)
            json_array_append_new(caps, json_string("chat"));
        json_t *entry =
            json_pack("{s:s,s:s,s:o,s:b,s:s,s:I}", "id", m->cfg.id, "provider", m->ops->name,
                      "capabilities", caps, "loaded", dagi_swapper_model_loaded(m), "state",
                      m->ops->load ? state_names[m->state] : "loaded", "memory_mb",
                      (json_int_t)m->cfg.memory_mb);
        json_object_set_new(entry, "last_used",
                            m->last_used_ms ? json_integer(m->last_used_ms) : json_null());
        json_array_append_new(list, entry);
    }
    dagi_http_respond_json(req, 200, json_pack("{s:o}", "models", list));
}

static void on_status(struct dagi_http_req *req, void *ud)
{
    struct dagi_swapper_state *sw = ud;
    json_t *loaded = json_array();
    size_t count = 0;
    for (struct dagi_swapper_model *m = dagi_swapper_models_first(sw->models); m; m = m->next) {
        count++;
        if (m->ops->load && m->state == DAGI_SWAPPER_LOADED)
            json_array_append_new(loaded, json_string(m->cfg.id));
    }
    dagi_http_respond_json(req, 200,
                           json_pack("{s:I,s:I,s:o,s:I,s:b}", "budget_mb",
                                     (json_int_t)dagi_swapper_models_budget_mb(sw->models),
                                     "used_mb", (json_int_t)dagi_swapper_models_used_mb(sw->models),
                                     "loaded", loaded, "models", (json_int_t)count, "draining",
                                     sw->draining));
}

static void on_loaded(struct dagi_swapper_waiter *w, int err, const char *message)
{
    struct dagi_swapper_op *op =
        (struct dagi_swapper_op *)((char *)w - offsetof(struct dagi_swapper_op, waiter));
    op->waiting = false;
    if (op->req) {
        dagi_http_req_on_close(op->req, NULL, NULL);
        if (err) {
            respond_failure(op->req, err, message);
        } else {
            dagi_swapper_model_touch(op->model);
            respond_state(op->req, op->model);
        }
        op->req = NULL;
    }
    op_free(op);
}

static void on_load(struct dagi_http_req *req, void *ud)
{
    struct dagi_swapper_state *sw = ud;
    struct dagi_swapper_model *m = model_of(sw, req);
    if (!m)
        return;
    struct dagi_swapper_op *op = op_new(sw, req, m);
    op->waiter.on_ready = on_loaded;
    int rc = dagi_swapper_model_acquire(m, &op->waiter);
    if (rc == DAGI_EAGAIN) {
        op->waiting = true;
        dagi_http_req_on_close(req, on_op_close, op);
        return;
    }
    op->req = NULL;
    if (rc) {
        respond_failure(req, rc, "the model cannot be loaded");
    } else {
        dagi_swapper_model_touch(m);
        respond_state(req, m);
    }
    op_free(op);
}

static void on_unloaded(void *ud, int err, const char *message)
{
    struct dagi_swapper_op *op = ud;
    if (op->req) {
        dagi_http_req_on_close(op->req, NULL, NULL);
        if (err)
            respond_failure(op->req, err, message);
        else
            respond_state(op->req, op->model);
        op->req = NULL;
    }
    op_free(op);
}

static void on_unload(struct dagi_http_req *req, void *ud)
{
    struct dagi_swapper_state *sw = ud;
    struct dagi_swapper_model *m = model_of(sw, req);
    if (!m)
        return;
    struct dagi_swapper_op *op = op_new(sw, req, m);
    int rc = dagi_swapper_model_unload(m, on_unloaded, op);
    if (!rc) {
        dagi_http_req_on_close(req, on_op_close, op);
        return;
    }
    op->req = NULL;
    op_free(op);
    if (rc == DAGI_EINVAL)
        dagi_http_respond_error(req, 409, "not_local", "id",
                                "model %s is not a local model: it has nothing to unload",
                                m->cfg.id);
    else if (rc == DAGI_EAGAIN)
        dagi_http_respond_error(req, 409, "busy", "id",
                                "model %s is loading, unloading or serving requests; retry later",
                                m->cfg.id);
    else
        respond_failure(req, rc, "the provider refused the unload");
}

void dagi_swapper_routes_register(struct dagi_swapper_state *sw)
{
    const struct dagi_http_route routes[] = {
        {"GET", "/v1/swapper/models", on_models, sw, DAGI_ROUTE_ADMIN, 0, "admin", NULL},
        {"POST", "/v1/swapper/models/{id}/load", on_load, sw, DAGI_ROUTE_ADMIN, 0, "admin", NULL},
        {"POST", "/v1/swapper/models/{id}/unload", on_unload, sw, DAGI_ROUTE_ADMIN, 0, "admin", NULL},
        {"GET", "/v1/swapper/status", on_status, sw, DAGI_ROUTE_ADMIN, 0, "admin", NULL},
    };
    struct dagi_http_server *srv = dagi_node_http(sw->node);
    for (size_t i = 0; i < DAGI_ARRAY_LEN(routes); i++)
        dagi_http_server_add_route(srv, &routes[i]);
}

void dagi_swapper_routes_stop(struct dagi_swapper_state *sw)
{
    while (sw->ops) {
        struct dagi_swapper_op *op = sw->ops;
        if (op->req) {
            dagi_http_req_on_close(op->req, NULL, NULL);
            dagi_http_respond_error(op->req, 503, "unavailable", NULL, "the swapper is stopping");
            op->req = NULL;
        }
        if (op->waiting) {
            op_free(op);
        } else {
            /* An unload in flight still calls on_unloaded: keep the op, just
             * detach it from the role that is going away. */
            op_unlink(op);
        }
    }
}
