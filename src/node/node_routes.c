#include "node_routes.h"

#include "bus_routes.h"
#include "keys_routes.h"
#include "dagi_build.h"
#include "core/clock.h"
#include "core/http_server.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "gate.h"
#include "node.h"
#include "core/pool.h"
#include "core/proc.h"
#include "core/log.h"
#include "identity/identity.h"

#include <stdio.h>
#include <unistd.h>

#define METRICS_CAP (32u << 20)

static void on_healthz(struct dagi_http_req *req, void *ud)
{
    (void)ud;
    /* Liveness: answering at all proves the loop runs. */
    static const char body[] = "{\"status\":\"ok\"}";
    dagi_http_respond(req, 200, "application/json", body, sizeof(body) - 1);
}

static void on_readyz(struct dagi_http_req *req, void *ud)
{
    struct dagi_node *n = ud;
    json_t *checks = json_object();
    bool ready = dagi_node_ready(n, checks);
    const char *status = ready ? "ready" : dagi_node_draining(n) ? "draining" : "not_ready";
    dagi_http_respond_json(req, ready ? 200 : 503,
                           json_pack("{s:s,s:o}", "status", status, "checks", checks));
}

static void on_metrics(struct dagi_http_req *req, void *ud)
{
    struct dagi_node *n = ud;
    struct dagi_metrics *m = dagi_node_metrics(n);
    /* Process figures are sampled at scrape time rather than kept current. */
    dagi_metric_set(dagi_metrics_gauge(m, "dagi_process_resident_memory_bytes",
                                       "Resident memory of this process", NULL),
                    NULL, (double)dagi_proc_resident_bytes());
    dagi_metric_set(dagi_metrics_gauge(m, "dagi_uptime_seconds", "Seconds since start", NULL),
                    NULL, (double)(dagi_clock_now_ms() - dagi_node_start_ms(n)) / 1000.0);
    dagi_metric_set(dagi_metrics_gauge(m, "dagi_worker_queue_depth",
                                       "Jobs queued or running in the worker pool", NULL),
                    NULL, (double)dagi_pool_pending(dagi_node_pool(n)));
    struct dagi_buf out;
    dagi_buf_init(&out, METRICS_CAP);
    if (dagi_metrics_render(m, &out)) {
        dagi_buf_release(&out);
        dagi_http_respond_error(req, 500, "internal", NULL, "metrics output over its cap");
        return;
    }
    dagi_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", out.data, out.len);
    dagi_buf_release(&out);
}

static void on_admin_status(struct dagi_http_req *req, void *ud)
{
    struct dagi_node *n = ud;
    const struct dagi_node_opts *o = dagi_node_options(n);
    const struct dagi_config *c = dagi_node_cfg(n);
    json_t *roles = json_array();
    for (size_t i = 0; i < o->role_count; i++)
        json_array_append_new(roles, json_string(o->roles[i]->name));
    json_t *body = json_pack("{s:s,s:s,s:s,s:i,s:f,s:o,s:s?,s:s,s:b,s:o}", "node", c->node.name,
                             "version", DAGI_VERSION, "process", o->process_name, "pid",
                             (json_int_t)getpid(), "uptime_seconds",
                             (double)(dagi_clock_now_ms() - dagi_node_start_ms(n)) / 1000.0,
                             "roles", roles, "config", o->config_path, "data_dir",
                             c->node.data_dir, "test_hooks", (int)DAGI_TEST_HOOKS, "bus",
                             dagi_node_bus_json(n));
    dagi_http_respond_json(req, 200, body);
}

static void on_admin_reload(struct dagi_http_req *req, void *ud)
{
    struct dagi_node *n = ud;
    struct dagi_buf errors;
    dagi_buf_init(&errors, 64 * 1024);
    if (dagi_node_reload_now(n, &errors)) {
        dagi_http_respond_error(req, 400, "invalid_config", NULL, "%s", dagi_buf_str(&errors));
    } else {
        dagi_http_respond_json(req, 200, json_pack("{s:b}", "reloaded", 1));
    }
    dagi_buf_release(&errors);
}

/* GET /v1/admin/routes: the route table as the gate sees it, so an
 * operator (and the route-walk test) can check that nothing skips it. */
static void add_route_entry(const struct dagi_http_route *r, void *ud)
{
    const struct dagi_gate_rules *rules = r->gate_data;
    const char *auth = r->flags & DAGI_ROUTE_PUBLIC    ? "public"
                       : rules && rules->verify       ? "route"
                       : r->flags & DAGI_ROUTE_ADMIN   ? "admin"
                                                       : "key";
    json_array_append_new(ud, json_pack("{s:s,s:s,s:s?,s:s,s:b}", "method", r->method,
                                        "pattern", r->pattern, "class", r->class, "auth", auth,
                                        "validated", rules && rules->body));
}

static void on_admin_routes(struct dagi_http_req *req, void *ud)
{
    struct dagi_node *n = ud;
    json_t *list = json_array();
    dagi_http_server_each_route(dagi_node_http(n), add_route_entry, list);
    dagi_http_respond_json(req, 200, json_pack("{s:o}", "routes", list));
}

void dagi_node_routes_register(struct dagi_node *n)
{
    const struct dagi_http_route routes[] = {
        {"GET", "/healthz", on_healthz, n, DAGI_ROUTE_PUBLIC, 0, "ops", NULL},
        {"GET", "/readyz", on_readyz, n, DAGI_ROUTE_PUBLIC, 0, "ops", NULL},
        {"GET", "/metrics", on_metrics, n, DAGI_ROUTE_PUBLIC, 0, "ops", NULL},
        {"GET", "/v1/admin/status", on_admin_status, n, DAGI_ROUTE_ADMIN, 0, "admin", NULL},
        {"POST", "/v1/admin/reload", on_admin_reload, n, DAGI_ROUTE_ADMIN, 0, "admin", NULL},
        {"GET", "/v1/admin/routes", on_admin_routes, n, DAGI_ROUTE_ADMIN, 0, "admin", NULL},
    };
    for (size_t i = 0; i < DAGI_ARRAY_LEN(routes); i++)
        if (dagi_http_server_add_route(dagi_node_http(n), &routes[i]))
            abort(); /* a duplicate core route is a programming error */
    dagi_bus_routes_register(n);
    dagi_keys_routes_register(n);
    dagi_testhooks_register(n);
    struct dagi_error err = {0};
    if (dagi_identity_routes_register(n, &err))
        dagi_log_error(NULL, "identity routes not served", "error", err.message);
}
