/* Shared by the audit role's files; not an API. */
#ifndef DAGI_AUDIT_INTERNAL_H
#define DAGI_AUDIT_INTERNAL_H

#include <stdbool.h>

#include "auditlog/audit.h"
#include "core/err.h"

struct dagi_node;
struct dagi_js_consumer;
struct dagi_metric;

struct appender;

struct audit_state {
    struct dagi_node *node;
    unsigned char key[DAGI_AUDIT_KEY_BYTES]; /* pseudonymises actor filters */
    struct dagi_js_consumer *consumer;
    struct dagi_metric *appended; /* audit_records_total{result} */
    struct appender *appender;    /* appends one at a time, in delivery order */
};

/* GET /v1/audit and /v1/audit/verify (audit_routes.c). */
int audit_routes_register(struct audit_state *st, struct dagi_error *err);

#endif
