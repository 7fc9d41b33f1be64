/* The node: shared machinery plus the one lifecycle every role follows
 * (see node.h).  Everything here runs on the loop thread except
 * dagi_node_config(), which other threads may call. */
#include "node.h"

#include "dagi_build.h"
#include "gate.h"
#include "core/http_client.h"
#include "core/http_server.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/loopq.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "node_bus.h"
#include "node_store.h"
#include "node_routes.h"
#include "core/pool.h"
#include "bus/bus.h"
#include "bus/natsd.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_READY_CHECKS 32

struct ready_check {
    const char *name;
    dagi_ready_fn fn;
    void *ud;
};

struct dagi_node {
    const struct dagi_node_opts *opts;
    struct event_base *base;
    struct dagi_loopq *loopq;
    struct dagi_pool *pool;
    struct dagi_http_server *http;
    struct dagi_http_client *client;
    struct dagi_metrics *metrics;
    struct dagi_admin_key admin_key;
    struct dagi_node_bus bus;
    struct dagi_node_store store;
    struct dagi_gate *gate;

    pthread_mutex_t config_lock; /* guards the pointer swap for other threads */
    struct dagi_config_snapshot *config;

    void **role_state;
    size_t roles_started;
    struct ready_check checks[MAX_READY_CHECKS];
    size_t check_count;

    struct event *sig_term, *sig_int, *sig_hup;
    struct event *deferred_stop, *deferred_reload;
    struct event *drain_timer; /* hard stop if roles do not let go */
    struct {
        void (*fn)(void *ud);
        void *ud;
    } shutdown_hooks[16];
    size_t shutdown_hook_count;
    struct {
        const char *name;
        void *obj;
        void (*destroy)(void *obj);
    } shared[8];
    size_t shared_count;
    pthread_t loop_thread;
    bool tearing_down; /* no new shared objects: nothing would free them */
    bool started, draining, stopping;
    int exit_code;
    int lock_fd;
    char *addr_file;
    int64_t start_ms;
    struct dagi_metric *reloads;
};

struct event_base *dagi_node_base(struct dagi_node *n)
{
    return n->base;
}
struct dagi_http_server *dagi_node_http(struct dagi_node *n)
{
    return n->http;
}
/* Made on first use: initialising libcurl and its TLS stack costs a few MB
 * of resident memory that a node which never calls out should not pay. */
struct dagi_http_client *dagi_node_http_client(struct dagi_node *n)
{
    if (!n->client) {
        const struct dagi_config *c = n->config->cfg;
        n->client = dagi_http_client_new(
            n->base, &(struct dagi_http_client_opts){
                         .max_connections_per_host = (unsigned)c->http_client.max_per_host,
                         .max_total_connections = (unsigned)c->http_client.max_per_host * 4,
                         .ca_file = c->http_client.ca_file});
    }
    return n->client;
}
struct dagi_pool *dagi_node_pool(struct dagi_node *n)
{
    return n->pool;
}
struct dagi_loopq *dagi_node_loopq(struct dagi_node *n)
{
    return n->loopq;
}
struct dagi_metrics *dagi_node_metrics(struct dagi_node *n)
{
    return n->metrics;
}
struct dagi_bus *dagi_node_bus(struct dagi_node *n)
{
    return n->bus.bus;
}
struct dagi_js *dagi_node_js(struct dagi_node *n)
{
    return n->bus.js;
}
struct dagi_gate *dagi_node_gate(struct dagi_node *n)
{
    return n->gate;
}

struct dagi_keystore *dagi_node_keystore(struct dagi_node *n)
{
    return n->store.keys;
}

struct dagi_db *dagi_node_db(struct dagi_node *n)
{
    return n->store.db;
}

const struct dagi_seal_keyring *dagi_node_seal(struct dagi_node *n)
{
    return &n->bus.seal;
}

json_t *dagi_node_bus_json(struct dagi_node *n)
{
    struct dagi_node_bus *nb = &n->bus;
    const struct dagi_config *c = n->config->cfg;
    return json_pack("{s:s,s:b,s:b,s:b,s:I}", "url", c->bus.url, "connected",
                     nb->bus && dagi_bus_connected(nb->bus), "jetstream", nb->js != NULL,
                     "streams_ready", nb->provisioned, "nats_pid",
                     (json_int_t)(nb->natsd ? dagi_natsd_pid(nb->natsd) : 0));
}

void dagi_node_on_streams_ready(struct dagi_node *n, void (*fn)(void *ud), void *ud)
{
    struct dagi_node_bus *nb = &n->bus;
    if (nb->js && nb->provisioned) {
        fn(ud);
        return;
    }
    if (!nb->js)
        return; /* no JetStream: never */
    if (nb->on_ready_count == DAGI_ARRAY_LEN(nb->on_ready))
        abort(); /* a programming error: raise the table size */
    nb->on_ready[nb->on_ready_count].fn = fn;
    nb->on_ready[nb->on_ready_count++].ud = ud;
}
const struct dagi_admin_key *dagi_node_admin_key(struct dagi_node *n)
{
    return &n->admin_key;
}
const struct dagi_config *dagi_node_cfg(struct dagi_node *n)
{
    return n->config->cfg;
}

struct dagi_config_snapshot *dagi_node_config(struct dagi_node *n)
{
    pthread_mutex_lock(&n->config_lock);
    struct dagi_config_snapshot *s = dagi_config_snapshot_ref(n->config);
    pthread_mutex_unlock(&n->config_lock);
    return s;
}

void dagi_node_add_ready_check(struct dagi_node *n, const char *name, dagi_ready_fn fn, void *ud)
{
    if (n->check_count == MAX_READY_CHECKS)
        abort(); /* a programming error: raise MAX_READY_CHECKS */
    n->checks[n->check_count++] = (struct ready_check){name, fn, ud};
}

bool dagi_node_ready(struct dagi_node *n, json_t *checks_out);

/* Readiness: started, not draining, and every registered check passes. */
bool dagi_node_ready(struct dagi_node *n, json_t *checks)
{
    bool ok = n->started && !n->draining;
    for (size_t i = 0; i < n->check_count; i++) {
        const char *why = "not ready";
        bool pass = n->checks[i].fn(n->checks[i].ud, &why);
        if (checks)
            json_object_set_new(checks, n->checks[i].name, json_string(pass ? "ok" : why));
        ok = ok && pass;
    }
    return ok;
}

bool dagi_node_draining(struct dagi_node *n)
{
    return n->draining;
}

int64_t dagi_node_start_ms(struct dagi_node *n)
{
    return n->start_ms;
}

const struct dagi_node_opts *dagi_node_options(struct dagi_node *n)
{
    return n->opts;
}

/* --- configuration --- */

static void server_opts_from(const struct dagi_config *c, struct dagi_http_limit *limits,
                             struct dagi_http_server_opts *o, struct dagi_metrics *metrics)
{
    const struct dagi_http_limit_config *items = c->http.limits.items;
    for (size_t i = 0; i < c->http.limits.count; i++)
        limits[i] = (struct dagi_http_limit){items[i].prefix, (size_t)items[i].max_body};
    *o = (struct dagi_http_server_opts){
        .listen = c->http.listen,
        .max_body = (size_t)c->http.max_body,
        .max_header_bytes = (size_t)c->http.max_header,
        .read_timeout_ms = (unsigned)c->http.read_timeout,
        .write_timeout_ms = (unsigned)c->http.write_timeout,
        .idle_timeout_ms = (unsigned)c->http.idle_timeout,
        .drain_timeout_ms = (unsigned)c->http.drain_timeout,
        .max_connections = (unsigned)c->http.max_connections,
        .tls_cert_file = c->http.tls.cert,
        .tls_key_file = c->http.tls.key,
        .limits = limits,
        .limit_count = c->http.limits.count,
        .metrics = metrics,
    };
}

static void print_config_errors(const struct dagi_cfg_errors *errs)
{
    fprintf(stderr, "%s", dagi_buf_str(&errs->text));
    fprintf(stderr, "dagi: %zu configuration error%s\n", errs->count, errs->count == 1 ? "" : "s");
}

/* Applies what can change without a restart and warns about the rest. */
static void apply_config(struct dagi_node *n, const struct dagi_config *old,
                         const struct dagi_config *c)
{
    dagi_log_set_level((enum dagi_log_level)c->log.level);
    dagi_metrics_set_max_series(n->metrics, (size_t)c->metrics.max_series);
    if (old && n->http) {
        struct dagi_http_limit *limits =
            dagi_xcalloc(c->http.limits.count ? c->http.limits.count : 1, sizeof(*limits));
        struct dagi_http_server_opts o;
        struct dagi_error err = {0};
        server_opts_from(c, limits, &o, n->metrics);
        if (dagi_http_server_update(n->http, &o, &err))
            dagi_log_error(NULL, "http settings not applied", "error", err.message);
        free(limits);
        if (strcmp(old->http.listen, c->http.listen) != 0)
            dagi_log_warn(NULL, "http.listen changes take effect after a restart");
    }
}

int dagi_node_reload_now(struct dagi_node *n, struct dagi_buf *errors_out);

/* Builds a new snapshot; on success swaps it in and tells the roles.
 * errors_out (may be NULL) receives the validation errors. */
int dagi_node_reload_now(struct dagi_node *n, struct dagi_buf *errors_out)
{
    struct dagi_cfg_errors errs;
    dagi_cfg_errors_init(&errs);
    struct dagi_config_snapshot *fresh = NULL;
    int rc = dagi_config_snapshot_load(n->opts->config_path, &n->opts->overrides, &fresh, &errs);
    if (rc) {
        dagi_log_error(NULL, "reload refused: configuration is invalid; keeping the old one",
                       "errors", dagi_buf_str(&errs.text));
        if (errors_out)
            dagi_buf_append(errors_out, dagi_buf_str(&errs.text), errs.text.len);
        dagi_cfg_errors_release(&errs);
        dagi_metric_inc(n->reloads, (const char *[]){"error"});
        return rc;
    }
    dagi_cfg_errors_release(&errs);
    struct dagi_config_snapshot *old = n->config;
    apply_config(n, old->cfg, fresh->cfg);
    pthread_mutex_lock(&n->config_lock);
    n->config = fresh;
    pthread_mutex_unlock(&n->config_lock);
    struct dagi_error gerr = {0};
    if (n->gate && dagi_gate_reload(n->gate, fresh->cfg, &gerr))
        dagi_log_error(NULL, "the gate refused the new configuration; keeping its old keys",
                       "error", gerr.message);
    for (size_t i = 0; i < n->roles_started; i++) {
        const struct dagi_role *r = n->opts->roles[i];
        struct dagi_error err = {0};
        if (r->reload && r->reload(n, n->role_state[i], &err))
            dagi_log_error(NULL, "role refused the new configuration", "role", r->name, "error",
                           err.message);
    }
    dagi_config_snapshot_unref(old);
    dagi_metric_inc(n->reloads, (const char *[]){"ok"});
    dagi_log_info(NULL, "configuration reloaded", "path", n->opts->config_path);
    return DAGI_OK;
}

/* --- stopping --- */

bool dagi_node_on_loop_thread(struct dagi_node *n)
{
    return pthread_equal(n->loop_thread, pthread_self());
}

void *dagi_node_shared(struct dagi_node *n, const char *name,
                       void *(*create)(struct dagi_node *node, void *ud), void (*destroy)(void *obj),
                       void *ud)
{
    for (size_t i = 0; i < n->shared_count; i++)
        if (!strcmp(n->shared[i].name, name))
            return n->shared[i].obj;
    if (!create || n->tearing_down || n->shared_count == DAGI_ARRAY_LEN(n->shared))
        return NULL;
    void *obj = create(n, ud);
    if (!obj)
        return NULL;
    n->shared[n->shared_count].name = name;
    n->shared[n->shared_count].obj = obj;
    n->shared[n->shared_count++].destroy = destroy;
    return obj;
}

void dagi_node_on_shutdown(struct dagi_node *n, void (*fn)(void *ud), void *ud)
{
    if (n->shutdown_hook_count == DAGI_ARRAY_LEN(n->shutdown_hooks))
        abort(); /* a programming error: raise the table size */
    n->shutdown_hooks[n->shutdown_hook_count].fn = fn;
    n->shutdown_hooks[n->shutdown_hook_count++].ud = ud;
}

/* Shutdown hooks block on NATS (stopping a KV watch deletes its consumer),
 * and with the libevent adapter the loop reads the replies: so they run on
 * the pool while the loop still turns, and the loop exits after them. */
static void on_shutdown_work(void *ud)
{
    struct dagi_node *n = ud;
    for (size_t i = n->shutdown_hook_count; i-- > 0;)
        n->shutdown_hooks[i].fn(n->shutdown_hooks[i].ud);
}

static void on_shutdown_done(void *ud, bool cancelled)
{
    (void)cancelled;
    struct dagi_node *n = ud;
    event_base_loopexit(n->base, NULL);
}

static void on_drained(void *ud)
{
    struct dagi_node *n = ud;
    if (n->shutdown_hook_count &&
        dagi_pool_submit(n->pool, on_shutdown_work, on_shutdown_done, n) == DAGI_OK)
        return;
    event_base_loopexit(n->base, NULL);
}

static void on_drain_timer(evutil_socket_t fd, short what, void *ud)
{
    (void)fd, (void)what;
    struct dagi_node *n = ud;
    dagi_log_warn(NULL, "drain did not finish in time; stopping");
    event_base_loopexit(n->base, NULL);
}

static void begin_stop(struct dagi_node *n)
{
    if (n->draining) {
        dagi_log_warn(NULL, "second stop signal: stopping now");
        event_base_loopexit(n->base, NULL);
        return;
    }
    n->draining = true;
    dagi_log_info(NULL, "draining", "timeout_ms",
                  dagi_arena_sprintf(n->config->arena, "%lld",
                                     (long long)n->config->cfg->http.drain_timeout));
    for (size_t i = n->roles_started; i-- > 0;) {
        const struct dagi_role *r = n->opts->roles[i];
        if (r->drain)
            r->drain(n, n->role_state[i]);
    }
    /* The server enforces drain_timeout on its requests; this timer is the
     * backstop for roles, with a little slack past it. */
    int64_t ms = n->config->cfg->http.drain_timeout + 2000;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    n->drain_timer = evtimer_new(n->base, on_drain_timer, n);
    evtimer_add(n->drain_timer, &tv);
    dagi_http_server_drain(n->http, on_drained, n);
}

static void on_signal(evutil_socket_t sig, short what, void *ud)
{
    (void)what;
    struct dagi_node *n = ud;
    if (sig == SIGHUP) {
        dagi_log_info(NULL, "SIGHUP: reloading configuration");
        dagi_node_reload_now(n, NULL);
        return;
    }
    dagi_log_info(NULL, sig == SIGINT ? "SIGINT: stopping" : "SIGTERM: stopping");
    begin_stop(n);
}

static void on_deferred(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    struct dagi_node *n = ud;
    if (what & EV_READ)
        begin_stop(n);
    else
        dagi_node_reload_now(n, NULL);
}

void dagi_node_request_reload(struct dagi_node *n)
{
    event_active(n->deferred_reload, EV_WRITE, 0);
}

void dagi_node_request_stop(struct dagi_node *n)
{
    event_active(n->deferred_stop, EV_READ, 0);
}

/* --- the data dir --- */

static int prepare_data_dir(struct dagi_node *n, const char *dir, struct dagi_error *err)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return dagi_error_set(err, DAGI_EIO, "data dir %s: %s", dir, strerror(errno));
    char *lock_path = dagi_xasprintf("%s/node.lock", dir);
    n->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    free(lock_path);
    if (n->lock_fd < 0)
        return dagi_error_set(err, DAGI_EIO, "data dir %s: %s", dir, strerror(errno));
    /* One node per data dir: two would fight over the stores and the key. */
    if (flock(n->lock_fd, LOCK_EX | LOCK_NB) != 0)
        return dagi_error_set(err, DAGI_EEXIST,
                              "data dir %s is in use by another dagi process", dir);
    return DAGI_OK;
}

/* Writes the listener's base URL to <data_dir>/http.addr (atomically), so
 * scripts, tests that asked for port 0, and the CLI find the node. */
static void write_addr_file(struct dagi_node *n, const char *dir)
{
    n->addr_file = dagi_xasprintf("%s/http.addr", dir);
    char *tmp = dagi_xasprintf("%s.tmp", n->addr_file);
    FILE *f = fopen(tmp, "w");
    if (f) {
        const struct dagi_config *c = n->config->cfg;
        fprintf(f, "%s://%s\n", c->http.tls.cert ? "https" : "http",
                dagi_http_server_address(n->http));
        if (fclose(f) == 0)
            rename(tmp, n->addr_file);
    }
    free(tmp);
}

static void show_new_admin_key(const char *key, const char *dir, const char *listen)
{
    /* Printed once, to stdout, for the operator who started the node; never
     * logged (the log line below names only the file). */
    printf("\nAdmin API key (shown once; stored in %s/admin.key, mode 0600):\n\n    %s\n\n"
           "Use it as a Bearer token, e.g.\n"
           "    curl -H \"Authorization: Bearer $(cat %s/admin.key)\" http://%s/v1/admin/status\n\n",
           dir, key, dir, listen);
    fflush(stdout);
}

/* --- run --- */

static int start(struct dagi_node *n, struct dagi_error *err)
{
    const struct dagi_config *c = n->config->cfg;
    int rc = prepare_data_dir(n, c->node.data_dir, err);
    if (rc)
        return rc;
    char *new_key = NULL;
    rc = dagi_admin_key_load_or_create(c->node.data_dir, &n->admin_key, &new_key, err);
    if (rc)
        return rc;
    if (new_key) {
        show_new_admin_key(new_key, c->node.data_dir, c->http.listen);
        sodium_memzero(new_key, strlen(new_key));
        free(new_key);
        dagi_log_info(NULL, "admin key created", "file", "admin.key");
    }

    n->loop_thread = pthread_self();
    n->base = event_base_new();
    if (!n->base)
        return dagi_error_set(err, DAGI_EIO, "cannot create the event loop");
    n->loopq = dagi_loopq_new(n->base);
    n->pool = dagi_pool_new(n->base, (unsigned)c->workers.threads, (size_t)c->workers.queue);
    rc = dagi_node_bus_start(n, &n->bus, err);
    if (rc)
        return rc;
    rc = dagi_node_store_start(n, &n->store, err);
    if (rc)
        return rc;

    struct dagi_http_limit *limits =
        dagi_xcalloc(c->http.limits.count ? c->http.limits.count : 1, sizeof(*limits));
    struct dagi_http_server_opts o;
    server_opts_from(c, limits, &o, n->metrics);
    rc = dagi_http_server_new(n->base, &o, &n->http, err);
    free(limits);
    if (rc)
        return rc;
    rc = dagi_gate_new(n, c, &n->gate, err);
    if (rc)
        return rc;
    dagi_http_server_set_gate(n->http, dagi_gate_check, n->gate);
    dagi_http_server_set_body_gate(n->http, dagi_gate_check_body, n->gate);
    dagi_node_routes_register(n);

    size_t count = n->opts->role_count;
    n->role_state = dagi_xcalloc(count ? count : 1, sizeof(void *));
    for (size_t i = 0; i < count; i++) {
        const struct dagi_role *r = n->opts->roles[i];
        dagi_log_set_thread_role(r->name);
        rc = r->init(n, &n->role_state[i], err);
        dagi_log_set_thread_role(n->opts->process_name);
        if (rc)
            return rc;
        n->roles_started = i + 1; /* stop() runs for every role init'ed */
    }

    rc = dagi_http_server_listen(n->http, err);
    if (rc)
        return rc;
    write_addr_file(n, c->node.data_dir);
    for (size_t i = 0; i < count; i++) {
        const struct dagi_role *r = n->opts->roles[i];
        if (r->start && (rc = r->start(n, n->role_state[i], err)))
            return rc;
    }

    n->sig_term = evsignal_new(n->base, SIGTERM, on_signal, n);
    n->sig_int = evsignal_new(n->base, SIGINT, on_signal, n);
    n->sig_hup = evsignal_new(n->base, SIGHUP, on_signal, n);
    n->deferred_stop = event_new(n->base, -1, 0, on_deferred, n);
    n->deferred_reload = event_new(n->base, -1, 0, on_deferred, n);
    event_add(n->sig_term, NULL);
    event_add(n->sig_int, NULL);
    event_add(n->sig_hup, NULL);
    n->started = true;
    dagi_log_info(NULL, "listening", "addr", dagi_http_server_address(n->http), "version",
                  DAGI_VERSION, "data_dir", c->node.data_dir);
    return DAGI_OK;
}

static void teardown(struct dagi_node *n)
{
    n->tearing_down = true;
    for (size_t i = n->roles_started; i-- > 0;) {
        const struct dagi_role *r = n->opts->roles[i];
        if (r->stop)
            r->stop(n, n->role_state[i]);
    }
    /* After the roles, which may still use them while stopping. */
    for (size_t i = n->shared_count; i-- > 0;)
        if (n->shared[i].destroy)
            n->shared[i].destroy(n->shared[i].obj);
    n->shared_count = 0;
    free(n->role_state);
    if (n->http)
        dagi_http_server_free(n->http);
    dagi_gate_free(n->gate);
    if (n->client)
        dagi_http_client_free(n->client);
    dagi_testhooks_bus_free();
    dagi_node_store_drain(&n->store);
    /* Pool first: its jobs may use JetStream and the database, and their
     * completions run now. */
    if (n->pool)
        dagi_pool_free(n->pool);
    dagi_node_bus_stop(&n->bus);
    dagi_node_store_close(&n->store);
    if (n->loopq)
        dagi_loopq_free(n->loopq);
    struct event *events[] = {n->sig_term, n->sig_int,         n->sig_hup,
                              n->deferred_stop, n->deferred_reload, n->drain_timer};
    for (size_t i = 0; i < DAGI_ARRAY_LEN(events); i++)
        if (events[i])
            event_free(events[i]);
    if (n->base)
        event_base_free(n->base);
    if (n->addr_file) {
        unlink(n->addr_file);
        free(n->addr_file);
    }
    if (n->lock_fd > 0)
        close(n->lock_fd);
    dagi_config_snapshot_unref(n->config);
    pthread_mutex_destroy(&n->config_lock);
}

/* Every client connection, stream and upstream call is a descriptor; the
 * soft limit is often 1024, far under what the server is configured for.
 * Raise it to the hard limit, as nginx's worker_rlimit_nofile would. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int dagi_node_run(const struct dagi_node_opts *opts)
{
    struct dagi_node node = {.opts = opts, .lock_fd = -1};
    struct dagi_node *n = &node;
    struct dagi_error err = {0};
    struct dagi_cfg_errors errs;

    evthread_use_pthreads();
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    if (sodium_init() < 0) {
        fprintf(stderr, "dagi: libsodium failed to initialise\n");
        return 1;
    }
    dagi_log_set_thread_role(opts->process_name);
    pthread_mutex_init(&n->config_lock, NULL);

    dagi_cfg_errors_init(&errs);
    if (dagi_config_snapshot_load(opts->config_path, &opts->overrides, &n->config, &errs)) {
        print_config_errors(&errs);
        dagi_cfg_errors_release(&errs);
        pthread_mutex_destroy(&n->config_lock);
        return 2;
    }
    dagi_cfg_errors_release(&errs);

    n->start_ms = dagi_clock_now_ms();
    n->metrics = dagi_metrics_default();
    n->reloads = dagi_metrics_counter(n->metrics, "dagi_config_reloads_total",
                                      "Configuration reloads by result",
                                      (const char *const[]){"result", NULL});
    apply_config(n, NULL, n->config->cfg);

    if (start(n, &err)) {
        dagi_log_error(NULL, "start-up failed", "error", err.message);
        fprintf(stderr, "dagi: %s\n", err.message);
        n->exit_code = 1;
    } else {
        event_base_dispatch(n->base);
        dagi_log_info(NULL, "stopped");
    }
    teardown(n);
    return n->exit_code;
}
