/* The node's bus: the embedded nats-server (when bus.url is "embedded"), the
 * NATS connection with in-process delivery, JetStream and its streams, and
 * the sealing keyring.  Internal to the node. */
#ifndef DAGI_NODE_BUS_H
#define DAGI_NODE_BUS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "core/seal.h"

struct dagi_node;
struct dagi_bus;
struct dagi_js;
struct dagi_natsd;
struct event;

struct dagi_node_bus {
    struct dagi_natsd *natsd; /* NULL unless embedded */
    struct dagi_bus *bus;
    struct dagi_js *js;       /* NULL without NATS */
    struct dagi_seal_keyring seal;
    bool provisioned;
    char provision_error[256];
    struct event *retry;     /* provisioning again after a failure */
    int64_t retry_delay_ms;
    struct {
        void (*fn)(void *ud);
        void *ud;
    } on_ready[16];
    size_t on_ready_count;
};

/* Starts what bus.url asks for (blocking, before the loop runs) and begins
 * provisioning the streams in the background; readiness waits for both. */
int dagi_node_bus_start(struct dagi_node *node, struct dagi_node_bus *nb, struct dagi_error *err);
void dagi_node_bus_stop(struct dagi_node_bus *nb);

#endif
