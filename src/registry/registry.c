/* The registry role's lifecycle (registry.h): state, metrics, readiness,
 * and the import at start and on SIGHUP.  The import is
 * registry_import.c, publishing registry_publish.c, the admin API
 * registry_routes.c. */
#include "registry/registry.h"

#include <event2/event.h>
#include <stdlib.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "registry/registry_internal.h"

struct dagi_registry_state *dagi_registry_state_ref(struct dagi_registry_state *rs)
{
    rs->refs++;
    return rs;
}

void dagi_registry_state_unref(struct dagi_registry_state *rs)
{
    if (!rs || --rs->refs > 0)
        return;
    dagi_registry_import_release(rs);
    dagi_registry_publish_release(rs);
    free(rs);
}

int dagi_registry_validate(void *ud, const struct dagi_docset *would_be,
                           struct dagi_cfg_errors *errs)
{
    return dagi_docset_validate(would_be, ud, errs);
}

/* Ready once the first import has run (whatever came of it: an invalid or
 * unreadable file is logged and the stored set stays), so that /readyz
 * means "the registry serves what the files say, or says why not". */
static bool on_ready(void *ud, const char **why)
{
    struct dagi_registry_state *rs = ud;
    if (rs->first_import_done)
        return true;
    *why = "importing the configuration files";
    return false;
}

static int registry_init(struct dagi_node *node, void **state, struct dagi_error *err)
{
    if (!dagi_node_db(node))
        return dagi_error_set(err, DAGI_EUNAVAIL, "registry: the node has no database");
    struct dagi_registry_state *rs = dagi_xcalloc(1, sizeof(*rs));
    rs->refs = 1;
    rs->node = node;
    struct dagi_metrics *mx = dagi_node_metrics(node);
    rs->revision_gauge =
        dagi_metrics_gauge(mx, "config_revision", "The config registry's current revision.", NULL);
    rs->pushes = dagi_metrics_counter(
        mx, "config_pushes_total",
        "Changes asked of the config registry (push, rollback, delete), by document kind and "
        "result: ok, unchanged, invalid, not_found, error.",
        (const char *[]){"kind", "result", NULL});
    dagi_registry_routes_register(rs);
    dagi_node_add_ready_check(node, "registry", on_ready, rs);
    *state = rs;
    return DAGI_OK;
}

static int registry_start(struct dagi_node *node, void *state, struct dagi_error *err)
{
    (void)node, (void)err;
    dagi_registry_import(state);
    return DAGI_OK;
}

/* SIGHUP: the files may have changed; the new configuration is already in
 * place (dagi_node_config). */
static int registry_reload(struct dagi_node *node, void *state, struct dagi_error *err)
{
    (void)node, (void)err;
    dagi_registry_import(state);
    return DAGI_OK;
}

static void registry_stop(struct dagi_node *node, void *state)
{
    (void)node;
    struct dagi_registry_state *rs = state;
    rs->stopped = true;
    if (rs->import_retry)
        event_del(rs->import_retry);
    if (rs->publish_retry)
        event_del(rs->publish_retry);
    dagi_registry_state_unref(rs);
}

const struct dagi_role dagi_role_registry = {
    .name = "registry",
    .help = "the config registry: versioned agents, prompts, rules, policies (/v1/config)",
    .init = registry_init,
    .start = registry_start,
    .reload = registry_reload,
    .drain = NULL,
    .stop = registry_stop,
};
