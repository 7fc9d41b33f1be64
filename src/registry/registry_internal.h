/* What the files of the registry role share (registry.c, registry_import.c,
 * registry_publish.c, registry_routes.c).  Internal.
 *
 * The state is reference counted: the role holds one reference from init
 * to stop, and every job on the worker pool holds one until its completion
 * has run on the loop - completions may run after stop (the pool is freed
 * after the roles), and they then only release what they hold. */
#ifndef DAGI_REGISTRY_INTERNAL_H
#define DAGI_REGISTRY_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "cplane/docset.h"
#include "node/node.h"
#include "registry/registry_store.h"

struct event;
struct dagi_kv;
struct dagi_metric;

struct dagi_registry_state {
    int refs; /* loop thread only */
    struct dagi_node *node;
    bool stopped;

    struct dagi_metric *revision_gauge; /* config_revision */
    struct dagi_metric *pushes;         /* config_pushes_total{kind,result} */

    /* import (registry_import.c) */
    bool import_running, import_again, first_import_done;
    struct event *import_retry;
    int64_t import_backoff_ms;

    /* publishing (registry_publish.c): one put in flight at a time */
    struct dagi_kv *kv; /* used only by the publish job in flight */
    bool publish_running, warned_no_js;
    struct dagi_docset *publish_next; /* the newest set not yet published; NULL = none */
    int64_t newest_revision;          /* the newest set handed over: older ones are dropped */
    struct event *publish_retry;
    int64_t publish_backoff_ms;
};

struct dagi_registry_state *dagi_registry_state_ref(struct dagi_registry_state *rs);
void dagi_registry_state_unref(struct dagi_registry_state *rs);

/* The would-be set against the node configuration `ud` (a const struct
 * dagi_config *): the dagi_regstore_validate_fn of every change. */
int dagi_registry_validate(void *ud, const struct dagi_docset *would_be,
                           struct dagi_cfg_errors *errs);

/* After every change (and at start): the current set goes to the KV bucket
 * and the gauge.  Loop thread; set is copied. */
void dagi_registry_publish(struct dagi_registry_state *rs, const struct dagi_docset *set);
/* Frees what publishing holds (at the last unref). */
void dagi_registry_publish_release(struct dagi_registry_state *rs);

/* Imports the configuration's files as one revision when they changed
 * (start, SIGHUP).  Loop thread; a run already in flight runs again after. */
void dagi_registry_import(struct dagi_registry_state *rs);
void dagi_registry_import_release(struct dagi_registry_state *rs);

/* The admin API under /v1/config. */
void dagi_registry_routes_register(struct dagi_registry_state *rs);

/* One audit record for a changed document (registry_routes.c). */
void dagi_registry_audit(struct dagi_registry_state *rs, const char *action, const char *actor,
                         const char *trace_id, enum dagi_doc_kind kind, const char *name,
                         int64_t version, const char *checksum, int64_t revision);

#endif
