/* The node's quota service (quota_node.h): one store and one current set
 * of budgets per process, and the hourly purge. */
#include "quota/quota_node.h"

#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/pool.h"
#include "node/node.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define PURGE_EVERY_S 3600

struct dagi_quota {
    struct dagi_quota_store *store;
    pthread_mutex_t lock; /* guards budgets: the pointer swap and its ref */
    struct dagi_quota_budgets *budgets;
    struct event *purge_timer;
    struct dagi_pool *pool;
};

/* --- the purge, on the pool --- */

/* The job holds only a store reference, never the service: a queued purge
 * may complete (cancelled) after the service is gone. */
struct purge_job {
    struct dagi_quota_store *store;
    size_t removed;
    int rc;
    struct dagi_error err;
};

static void on_purge_work(void *ud)
{
    struct purge_job *job = ud;
    job->rc = dagi_quota_purge(job->store, dagi_clock_now_ms(), &job->removed, &job->err);
}

static void on_purge_done(void *ud, bool cancelled)
{
    struct purge_job *job = ud;
    if (!cancelled && job->rc)
        dagi_log_warn(NULL, "quota purge failed", "error", job->err.message);
    else if (!cancelled && job->removed) {
        char n[32];
        snprintf(n, sizeof(n), "%zu", job->removed);
        dagi_log_info(NULL, "quota: expired reservations purged", "rows", n);
    }
    dagi_quota_store_free(job->store);
    free(job);
}

static void on_purge_timer(evutil_socket_t fd, short what, void *ud)
{
    (void)fd, (void)what;
    struct dagi_quota *q = ud;
    struct purge_job *job = dagi_xcalloc(1, sizeof(*job));
    job->store = dagi_quota_store_ref(q->store);
    if (dagi_pool_submit(q->pool, on_purge_work, on_purge_done, job)) {
        dagi_quota_store_free(job->store); /* busy: the next hour will do */
        free(job);
    }
}

/* --- the service --- */

static struct dagi_quota_budgets *initial_budgets(const struct dagi_config *c)
{
    const char *path = c->registry.quotas;
    struct dagi_quota_budgets *b = NULL;
    if (!path)
        return dagi_quota_budgets_empty();
    struct dagi_cfg_errors errs;
    dagi_cfg_errors_init(&errs);
    if (dagi_quota_budgets_load_file(path, &b, &errs)) {
        dagi_log_error(NULL, "quota: budgets refused, none apply until a valid document arrives",
                       "file", path, "errors", dagi_buf_str(&errs.text));
        b = dagi_quota_budgets_empty();
    }
    dagi_cfg_errors_release(&errs);
    return b;
}

static void *create(struct dagi_node *node, void *ud)
{
    (void)ud;
    struct dagi_db *db = dagi_node_db(node);
    if (!db)
        return NULL;
    const struct dagi_config *c = dagi_node_cfg(node);
    char source[96];
    snprintf(source, sizeof(source), "quota@%s", c->node.name ? c->node.name : "node");
    struct dagi_quota_store_opts opts = {
        .db = db, .source = source, .metrics = dagi_node_metrics(node)};
    struct dagi_quota_store *store = NULL;
    struct dagi_error err = {0};
    if (dagi_quota_store_new("db", &opts, &store, &err)) {
        dagi_log_error(NULL, "quota: cannot open the store", "error", err.message);
        return NULL;
    }
    struct dagi_quota *q = dagi_xcalloc(1, sizeof(*q));
    q->store = store;
    pthread_mutex_init(&q->lock, NULL);
    q->budgets = initial_budgets(c);
    q->pool = dagi_node_pool(node);
    q->purge_timer = event_new(dagi_node_base(node), -1, EV_PERSIST, on_purge_timer, q);
    struct timeval every = {PURGE_EVERY_S, 0};
    event_add(q->purge_timer, &every);
    return q;
}

static void destroy(void *obj)
{
    struct dagi_quota *q = obj;
    event_free(q->purge_timer);
    dagi_quota_store_free(q->store); /* jobs still running hold their own */
    dagi_quota_budgets_unref(q->budgets);
    pthread_mutex_destroy(&q->lock);
    free(q);
}

struct dagi_quota *dagi_quota_of_node(struct dagi_node *node)
{
    return dagi_node_shared(node, "quota", create, destroy, NULL);
}

struct dagi_quota_store *dagi_quota_store_of(struct dagi_quota *q)
{
    return q->store;
}

struct dagi_quota_budgets *dagi_quota_current(struct dagi_quota *q)
{
    pthread_mutex_lock(&q->lock);
    struct dagi_quota_budgets *b = dagi_quota_budgets_ref(q->budgets);
    pthread_mutex_unlock(&q->lock);
    return b;
}

void dagi_quota_replace(struct dagi_quota *q, struct dagi_quota_budgets *budgets)
{
    if (!budgets)
        budgets = dagi_quota_budgets_empty();
    pthread_mutex_lock(&q->lock);
    struct dagi_quota_budgets *old = q->budgets;
    q->budgets = budgets;
    pthread_mutex_unlock(&q->lock);
    dagi_quota_budgets_unref(old);
}
