/* The routes every dagi process serves, whatever roles it runs: /healthz,
 * /readyz, /metrics and the node's admin routes.  Internal to core. */
#ifndef DAGI_NODE_ROUTES_H
#define DAGI_NODE_ROUTES_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"

struct dagi_node;
struct dagi_node_opts;

void dagi_node_routes_register(struct dagi_node *node);

/* Node internals the routes read (node.c). */
bool dagi_node_ready(struct dagi_node *node, json_t *checks_out);
bool dagi_node_draining(struct dagi_node *node);
int64_t dagi_node_start_ms(struct dagi_node *node);
const struct dagi_node_opts *dagi_node_options(struct dagi_node *node);
int dagi_node_reload_now(struct dagi_node *node, struct dagi_buf *errors_out);
json_t *dagi_node_bus_json(struct dagi_node *node);

/* Test-only routes (testhooks.c); a no-op unless built with test_hooks. */
void dagi_testhooks_register(struct dagi_node *node);
/* Test-only bus responders, routes and consumer (testhooks_bus.c). */
void dagi_testhooks_bus_register(struct dagi_node *node);
void dagi_testhooks_bus_free(void);
/* Test-only outbox routes (testhooks_store.c). */
void dagi_testhooks_store_register(struct dagi_node *node);

#endif
