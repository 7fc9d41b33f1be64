/* The control plane's client: what a data-plane role runs on.
 *
 * One per process (dagi_node_shared "cplane"), shared by every role in it.
 * It holds the current snapshot: the document set (docset.h) and what was
 * built from it - the agent registry with its prompts, the routing rules,
 * the policy bundle, the budgets, the flags and the lists - as one
 * immutable, reference-counted value.  A request takes a reference once and
 * routes, decides and counts with that one snapshot, so no request sees half
 * a change; a new snapshot replaces the pointer on the loop thread.
 *
 * Where snapshots come from, in order:
 *   1. at creation: the last known copy on disk (<data_dir>/cplane/current.json,
 *      written after every change), else the files the node configuration
 *      names (what `dagi config check` reads); a set that does not build is
 *      an error only when there is no other;
 *   2. dagi_cplane_offer(): the registry role of this process hands over its
 *      current set (at start, and after every change - the only path when
 *      the node runs without JetStream);
 *   3. the KV bucket dagi_config, key "current", watched once the streams
 *      exist: the registry of any node publishes there.
 * A set that fails to build is refused with a log line and the snapshot in
 * use stays; an older set (lower revision, earlier publication) is ignored. */
#ifndef DAGI_CPLANE_CPLANE_H
#define DAGI_CPLANE_CPLANE_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/config.h"
#include "core/err.h"
#include "cplane/docset.h"
#include "cplane/flags.h"
#include "cplane/lists.h"

struct dagi_node;
struct dagi_config;
struct dagi_registry;
struct dagi_rules;
struct dagi_arena;
struct dagi_authz_bundle;
struct dagi_quota_budgets;

struct dagi_cplane_snap {
    atomic_int refs;
    struct dagi_docset docs;
    const char *source;              /* "disk", "files", "registry", "kv" (static) */
    struct dagi_registry *agents;    /* NULL = no agents document */
    struct dagi_arena *arena;        /* rules, flags, lists */
    const struct dagi_rules *rules;  /* NULL = no global rules */
    struct dagi_authz_bundle *policy; /* NULL = no policy: only the admin key may act */
    struct dagi_quota_budgets *quotas; /* NULL = no budgets */
    struct dagi_flags flags;
    struct dagi_lists lists;
};

struct dagi_cplane_snap *dagi_cplane_snap_ref(struct dagi_cplane_snap *s);
void dagi_cplane_snap_unref(struct dagi_cplane_snap *s);

/* Builds a snapshot from a set, checking model ids against the node
 * configuration.  The same code validates pushed documents and `dagi config
 * check`.  Errors: "<kind>/<name>:<line>: ..." lines in errs. */
int dagi_cplane_build(const struct dagi_docset *set, const struct dagi_config *c,
                      struct dagi_cplane_snap **out, struct dagi_cfg_errors *errs);

struct dagi_cplane;

/* The process's client, created on first use (loop thread; at role init).
 * NULL with err set when no snapshot can be built at all. */
struct dagi_cplane *dagi_cplane_get(struct dagi_node *node, struct dagi_error *err);
/* The snapshot in use, borrowed: valid until the current loop callback
 * returns.  Take a reference to keep it longer. */
struct dagi_cplane_snap *dagi_cplane_current(struct dagi_cplane *cp);
/* Called on the loop after every swap with the new snapshot (borrowed). */
void dagi_cplane_on_change(struct dagi_cplane *cp,
                           void (*fn)(void *ud, struct dagi_cplane_snap *snap), void *ud);
/* Removes a listener (a role that stops). */
void dagi_cplane_off_change(struct dagi_cplane *cp,
                            void (*fn)(void *ud, struct dagi_cplane_snap *snap), void *ud);
/* Hands a set over (any thread): built at once; on the loop thread it is
 * swapped in before this returns, elsewhere the swap is queued to the loop.
 * Returns the build's error (errs filled) or 0. */
int dagi_cplane_offer(struct dagi_cplane *cp, const struct dagi_docset *set,
                      struct dagi_cfg_errors *errs);
/* Rebuilds the snapshot in use against the node's current configuration
 * (SIGHUP: the swapper's models may have changed).  Loop thread. */
int dagi_cplane_rebuild(struct dagi_cplane *cp, struct dagi_error *err);

/* The last known copy (tests and `dagi config` tools read it too). */
char *dagi_cplane_disk_path(const char *data_dir);

#endif
