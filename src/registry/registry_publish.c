/* Publishing the current set (registry_internal.h): the whole set as one
 * JSON value (dagi_docset_to_json) under DAGI_CPLANE_KEY of the KV bucket
 * DAGI_CPLANE_BUCKET, so a change of two documents reaches a reader as one
 * step.
 *
 * One put is in flight at a time, and only the newest set waits behind it:
 * changes that land meanwhile coalesce, and the bucket never goes back to
 * an older revision because two puts overtook each other on the pool.  A
 * failed put is retried with backoff unless a newer set replaced it.  The
 * bucket keeps one entry per key: the database keeps the history.  The
 * node's own control-plane client is handed the set directly too. */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "bus/js.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "core/pool.h"
#include "cplane/cplane.h"
#include "registry/registry_internal.h"

#define RETRY_FIRST_MS 250
#define RETRY_MAX_MS 10000

struct publish_job {
    struct dagi_registry_state *rs;
    struct dagi_js *js;
    struct dagi_kv *kv; /* the state's, lent to the job while it runs */
    struct dagi_docset *set;
    int rc;
    struct dagi_error err;
};

static void start_next(struct dagi_registry_state *rs);

static void on_publish_work(void *ud)
{
    struct publish_job *job = ud;
    if (!job->kv)
        job->rc = dagi_kv_open(job->js, DAGI_CPLANE_BUCKET, 1, &job->kv, &job->err);
    if (job->rc)
        return;
    job->set->published_at_ms = dagi_clock_now_ms();
    size_t len;
    char *json = dagi_docset_to_json(job->set, &len);
    job->rc = dagi_kv_put(job->kv, DAGI_CPLANE_KEY, json, len, NULL, &job->err);
    free(json);
}

static void set_free(struct dagi_docset *s)
{
    if (!s)
        return;
    dagi_docset_release(s);
    free(s);
}

static void on_retry(evutil_socket_t fd, short what, void *ud)
{
    (void)fd, (void)what;
    start_next(ud);
}

static void on_publish_done(void *ud, bool cancelled)
{
    struct publish_job *job = ud;
    struct dagi_registry_state *rs = job->rs;
    rs->publish_running = false;
    rs->kv = job->kv;
    if (cancelled || rs->stopped)
        goto out;
    char revision[24];
    snprintf(revision, sizeof(revision), "%lld", (long long)job->set->revision);
    if (job->rc) {
        dagi_log_error(NULL, "registry: cannot publish the config set; retrying", "revision",
                       revision, "error", job->err.message);
        if (!rs->publish_next) { /* nothing newer: put this one again later */
            rs->publish_next = job->set;
            job->set = NULL;
        }
        if (!rs->publish_retry)
            rs->publish_retry = evtimer_new(dagi_node_base(rs->node), on_retry, rs);
        rs->publish_backoff_ms =
            rs->publish_backoff_ms ? rs->publish_backoff_ms * 2 : RETRY_FIRST_MS;
        if (rs->publish_backoff_ms > RETRY_MAX_MS)
            rs->publish_backoff_ms = RETRY_MAX_MS;
        struct timeval tv = {rs->publish_backoff_ms / 1000, (rs->publish_backoff_ms % 1000) * 1000};
        evtimer_add(rs->publish_retry, &tv);
        goto out;
    }
    rs->publish_backoff_ms = 0;
    dagi_log_info(NULL, "registry: config set published", "revision", revision, "bucket",
                  DAGI_CPLANE_BUCKET);
    start_next(rs);
out:
    set_free(job->set);
    dagi_registry_state_unref(rs);
    free(job);
}

static void start_next(struct dagi_registry_state *rs)
{
    if (rs->stopped || rs->publish_running || !rs->publish_next)
        return;
    if (rs->publish_retry && evtimer_pending(rs->publish_retry, NULL))
        return; /* backing off: the timer starts it */
    struct publish_job *job = dagi_xcalloc(1, sizeof(*job));
    job->rs = dagi_registry_state_ref(rs);
    job->js = dagi_node_js(rs->node);
    job->kv = rs->kv;
    job->set = rs->publish_next;
    rs->publish_next = NULL;
    rs->kv = NULL;
    if (dagi_pool_submit(dagi_node_pool(rs->node), on_publish_work, on_publish_done, job)) {
        /* the queue is full: back off as after a failed put */
        job->rc = DAGI_EAGAIN;
        snprintf(job->err.message, sizeof(job->err.message), "the worker pool is full");
        rs->publish_running = true;
        on_publish_done(job, false);
        return;
    }
    rs->publish_running = true;
}

/* The data-plane roles of this process, if it runs any, get the set at once
 * rather than through the bucket - and without JetStream this is the only
 * way.  Looked up, not created: a process running the registry alone has
 * no control-plane client and needs none.  The set is built here, on the
 * loop: changes are rare, and a few milliseconds then are the price of
 * swapping before the change is answered. */
static void offer_here(struct dagi_registry_state *rs, const struct dagi_docset *set)
{
    struct dagi_cplane *cp = dagi_node_shared(rs->node, "cplane", NULL, NULL, NULL);
    if (!cp)
        return;
    struct dagi_docset stamped = *set; /* shallow: the offer copies what it keeps */
    stamped.published_at_ms = dagi_clock_now_ms();
    struct dagi_cfg_errors errs;
    dagi_cfg_errors_init(&errs);
    if (dagi_cplane_offer(cp, &stamped, &errs))
        dagi_log_error(NULL, "registry: this node's control-plane client refused the set", "errors",
                       dagi_buf_str(&errs.text));
    dagi_cfg_errors_release(&errs);
}

void dagi_registry_publish(struct dagi_registry_state *rs, const struct dagi_docset *set)
{
    if (rs->stopped)
        return;
    /* Completions come back in any order: an import that read revision 5
     * may finish after a push that made 6. */
    if (set->revision < rs->newest_revision)
        return;
    rs->newest_revision = set->revision;
    dagi_metric_set(rs->revision_gauge, NULL, (double)set->revision);
    offer_here(rs, set);
    if (!dagi_node_js(rs->node)) {
        if (!rs->warned_no_js)
            dagi_log_warn(NULL, "registry: no JetStream (bus.url none); the config set is not "
                                "published");
        rs->warned_no_js = true;
        return;
    }
    set_free(rs->publish_next);
    rs->publish_next = dagi_xmalloc(sizeof(*rs->publish_next));
    dagi_docset_copy(rs->publish_next, set);
    start_next(rs);
}

void dagi_registry_publish_release(struct dagi_registry_state *rs)
{
    set_free(rs->publish_next);
    rs->publish_next = NULL;
    if (rs->publish_retry)
        event_free(rs->publish_retry);
    rs->publish_retry = NULL;
    dagi_kv_close(rs->kv);
    rs->kv = NULL;
}
