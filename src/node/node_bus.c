#include "node_bus.h"

#include "bus/bus.h"
#include "bus/js.h"
#include "bus/natsd.h"
#include "core/log.h"
#include "core/mem.h"
#include "node.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool bus_ready(void *ud, const char **why)
{
    struct dagi_node_bus *nb = ud;
    if (!dagi_bus_connected(nb->bus)) {
        *why = "NATS is not connected";
        return false;
    }
    return true;
}

static bool streams_ready(void *ud, const char **why)
{
    struct dagi_node_bus *nb = ud;
    if (!nb->provisioned) {
        *why = nb->provision_error[0] ? nb->provision_error : "provisioning JetStream streams";
        return false;
    }
    return true;
}

static void on_provisioned(void *ud, int err, const char *message);

static void on_retry(evutil_socket_t fd, short what, void *ud)
{
    (void)fd, (void)what;
    struct dagi_node_bus *nb = ud;
    dagi_js_provision(nb->js, on_provisioned, nb);
}

/* A failure (NATS not there yet, a stream config the server refuses) is
 * retried with back-off; /readyz says why meanwhile. */
static void on_provisioned(void *ud, int err, const char *message)
{
    struct dagi_node_bus *nb = ud;
    if (err) {
        snprintf(nb->provision_error, sizeof(nb->provision_error), "JetStream: %s",
                 message ? message : dagi_strerror(err));
        dagi_log_error(NULL, "JetStream provisioning failed; retrying", "error",
                       nb->provision_error);
        nb->retry_delay_ms = nb->retry_delay_ms ? nb->retry_delay_ms * 2 : 500;
        if (nb->retry_delay_ms > 30000)
            nb->retry_delay_ms = 30000;
        struct timeval tv = {(time_t)(nb->retry_delay_ms / 1000),
                             (suseconds_t)(nb->retry_delay_ms % 1000) * 1000};
        evtimer_add(nb->retry, &tv);
        return;
    }
    nb->provisioned = true;
    dagi_log_info(NULL, "JetStream streams ready");
    for (size_t i = 0; i < nb->on_ready_count; i++)
        nb->on_ready[i].fn(nb->on_ready[i].ud);
}

int dagi_node_bus_start(struct dagi_node *node, struct dagi_node_bus *nb, struct dagi_error *err)
{
    const struct dagi_config *c = dagi_node_cfg(node);
    const char *url = NULL, *user = NULL, *password = NULL;
    int rc = dagi_seal_keyring_load(&nb->seal, c->node.data_dir, err);
    if (rc)
        return rc;

    if (strcmp(c->bus.url, "embedded") == 0) {
        struct dagi_natsd_opts o = {.data_dir = c->node.data_dir,
                                    .binary = c->bus.nats_server,
                                    .max_payload = (size_t)c->bus.max_payload};
        rc = dagi_natsd_start(dagi_node_base(node), &o, &nb->natsd, err);
        if (rc)
            return rc;
        url = dagi_natsd_url(nb->natsd);
        user = dagi_natsd_user(nb->natsd);
        password = dagi_natsd_password(nb->natsd);
    } else if (strcmp(c->bus.url, "none") != 0) {
        url = c->bus.url;
        user = c->bus.user;
        password = getenv(c->bus.password_env);
        if (user && !password)
            return dagi_error_set(err, DAGI_EINVAL, "bus.user is set but $%s is empty",
                                  c->bus.password_env);
    }

    char *name = dagi_xasprintf("dagi-%s", c->node.name);
    struct dagi_bus_opts bo = {
        .url = url,
        .user = user,
        .password = password,
        .name = name,
        .inprocess = c->bus.inprocess,
        .max_payload = (size_t)c->bus.max_payload,
        .reconnect_wait_ms = (unsigned)c->bus.reconnect_wait,
        .reconnect_buffer = (size_t)c->bus.reconnect_buffer,
        .loopq = dagi_node_loopq(node),
        .metrics = dagi_node_metrics(node),
    };
    rc = dagi_bus_new(dagi_node_base(node), &bo, &nb->bus, err);
    free(name);
    if (rc)
        return rc;
    dagi_node_add_ready_check(node, "bus", bus_ready, nb);
    if (!url) {
        nb->provisioned = true; /* no NATS, no streams: in-process requests only */
        return DAGI_OK;
    }

    struct dagi_js_opts jo = {
        .dedup_window_ms = c->bus.dedup_window,
        .event_max_age_ms = c->bus.event_max_age,
        .work_max_age_ms = c->bus.work_max_age,
        .dlq_max_age_ms = c->bus.dlq_max_age,
        .pool = dagi_node_pool(node),
        .loopq = dagi_node_loopq(node),
        .metrics = dagi_node_metrics(node),
    };
    rc = dagi_js_new(nb->bus, &jo, &nb->js, err);
    if (rc)
        return rc;
    dagi_node_add_ready_check(node, "jetstream", streams_ready, nb);
    nb->retry = evtimer_new(dagi_node_base(node), on_retry, nb);
    dagi_js_provision(nb->js, on_provisioned, nb);
    return DAGI_OK;
}

void dagi_node_bus_stop(struct dagi_node_bus *nb)
{
    if (nb->retry)
        event_free(nb->retry);
    if (nb->js)
        dagi_js_free(nb->js);
    if (nb->bus)
        dagi_bus_free(nb->bus);
    if (nb->natsd)
        dagi_natsd_stop(nb->natsd);
    dagi_seal_keyring_wipe(&nb->seal);
    memset(nb, 0, sizeof(*nb));
}
