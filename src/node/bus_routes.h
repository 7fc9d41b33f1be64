/* Operator routes of the bus (dead letters).  Internal to the node. */
#ifndef DAGI_BUS_ROUTES_H
#define DAGI_BUS_ROUTES_H

struct dagi_node;

void dagi_bus_routes_register(struct dagi_node *node);

#endif
