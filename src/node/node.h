/* One lifecycle for every role.
 *
 * A process runs one or more roles (`dagi node` runs them all, `dagi gateway`
 * just one) inside a `struct dagi_node`, which owns what every role shares:
 * the event loop, the worker pool, the loop queue, the HTTP server (one public
 * listener per process), the HTTP client, metrics and the configuration
 * snapshot.  Each role is a const ops table; the node calls, in order:
 *
 *   init    every role, in table order: register routes, allocate state.
 *   start   every role, after the listener is bound: begin background work.
 *   reload  on SIGHUP, with a new configuration snapshot that has already
 *           been validated and swapped in; a role that refuses logs why.
 *   drain   on SIGTERM/SIGINT, in reverse order: stop taking new work.
 *   stop    in reverse order, after the HTTP server drained: free state.
 *
 * A second SIGTERM/SIGINT during drain stops at once.
 */
#ifndef DAGI_NODE_H
#define DAGI_NODE_H

#include <stdatomic.h>
#include <stdbool.h>

#include "adminkey.h"
#include "dagi_config.h"
#include "core/err.h"

struct event_base;
struct dagi_node;
struct dagi_http_server;
struct dagi_http_client;
struct dagi_pool;
struct dagi_loopq;
struct dagi_metrics;
struct dagi_bus;
struct dagi_js;
struct dagi_seal_keyring;
struct dagi_db;

struct dagi_role {
    const char *name; /* the subcommand: "gateway", "router", ... */
    const char *help; /* one line for `dagi --help` */
    int (*init)(struct dagi_node *node, void **state, struct dagi_error *err);
    int (*start)(struct dagi_node *node, void *state, struct dagi_error *err); /* optional */
    int (*reload)(struct dagi_node *node, void *state, struct dagi_error *err); /* optional */
    void (*drain)(struct dagi_node *node, void *state);                         /* optional */
    void (*stop)(struct dagi_node *node, void *state);                          /* optional */
};

/* A readiness check for /readyz; returns true when ready, else sets *why. */
typedef bool (*dagi_ready_fn)(void *ud, const char **why);

struct dagi_node_opts {
    const char *process_name;         /* "node" or the role name, for logs */
    const struct dagi_role *const *roles;
    size_t role_count;
    const char *config_path;          /* NULL = defaults */
    struct dagi_config_overrides overrides;
};

/* Runs until stopped by a signal.  Returns the process exit code: 0 after a
 * clean stop, 1 when start-up failed, 2 for a configuration error. */
int dagi_node_run(const struct dagi_node_opts *opts);

/* --- for roles --- */
struct event_base *dagi_node_base(struct dagi_node *node);
struct dagi_http_server *dagi_node_http(struct dagi_node *node);
/* The shared outbound HTTP client, created on first use (loop thread only). */
struct dagi_http_client *dagi_node_http_client(struct dagi_node *node);
struct dagi_pool *dagi_node_pool(struct dagi_node *node);
struct dagi_loopq *dagi_node_loopq(struct dagi_node *node);
struct dagi_metrics *dagi_node_metrics(struct dagi_node *node);
const struct dagi_admin_key *dagi_node_admin_key(struct dagi_node *node);
/* The bus (never NULL once started) and JetStream (NULL when bus.url is
 * "none"); the sealing keyring for content that travels through streams. */
struct dagi_bus *dagi_node_bus(struct dagi_node *node);
struct dagi_js *dagi_node_js(struct dagi_node *node);
const struct dagi_seal_keyring *dagi_node_seal(struct dagi_node *node);
/* The relational store, migrated to the code's schema (store.url). */
struct dagi_db *dagi_node_db(struct dagi_node *node);
/* User API keys (access/keystore.h); the gate resolves keys through it. */
struct dagi_keystore *dagi_node_keystore(struct dagi_node *node);
/* The gate (gate.h): signed webhooks ask it for their secrets. */
struct dagi_gate *dagi_node_gate(struct dagi_node *node);
/* Runs fn on the loop once the JetStream streams exist (at once if they
 * already do; never without JetStream).  Consumers start from here. */
void dagi_node_on_streams_ready(struct dagi_node *node, void (*fn)(void *ud), void *ud);
/* The current configuration: a new reference the caller releases with
 * dagi_config_snapshot_unref().  Safe from any thread. */
struct dagi_config_snapshot *dagi_node_config(struct dagi_node *node);
/* Borrowed view for code on the loop thread that does not keep it past the
 * current callback (the snapshot is only replaced on the loop thread). */
const struct dagi_config *dagi_node_cfg(struct dagi_node *node);
void dagi_node_add_ready_check(struct dagi_node *node, const char *name, dagi_ready_fn fn,
                               void *ud);
/* Registers blocking clean-up (stopping consumers and KV watches) that must
 * run while the loop still turns: on shutdown, after the HTTP drain, the
 * hooks run on the worker pool in reverse order of registration. */
void dagi_node_on_shutdown(struct dagi_node *node, void (*fn)(void *ud), void *ud);
/* True on the thread that runs the loop (and the roles' init). */
bool dagi_node_on_loop_thread(struct dagi_node *node);
/* A process-wide object that the libraries of several roles share (the
 * control-plane client, the audit emitter): the first caller creates it
 * with create(node, ud); later callers get the same one.  destroy runs at
 * teardown after every role's stop, in reverse order of creation.  name is
 * a static string.  Loop thread only; NULL when create fails. */
void *dagi_node_shared(struct dagi_node *node, const char *name,
                       void *(*create)(struct dagi_node *node, void *ud), void (*destroy)(void *obj),
                       void *ud);
/* Asks the node to reload / stop, as SIGHUP / SIGTERM would. */
void dagi_node_request_reload(struct dagi_node *node);
void dagi_node_request_stop(struct dagi_node *node);

#endif
