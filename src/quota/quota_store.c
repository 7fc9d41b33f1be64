/* The counters' front (quota_store.h): argument checks, the metrics, and
 * the call through the backend's ops table. */
#include "quota/quota_store.h"

#include "core/mem.h"
#include "core/metrics.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Far above any model's output, and small enough that sums of many stay
 * far inside int64. */
#define MAX_TOKENS_PER_REQUEST 1000000000000LL

const struct dagi_quota_store_ops *const dagi_quota_store_backends[] = {
    &dagi_quota_store_db_ops,
    NULL,
};

struct dagi_quota_store {
    atomic_int refs;
    const struct dagi_quota_store_ops *ops;
    void *state;
    struct dagi_metric *consumed; /* agent_budget_consumed{agent_id} */
    struct dagi_metric *blocked;  /* quota_blocked_total{budget_id} */
};

static const char *const agent_label[] = {"agent_id", NULL};
static const char *const budget_label[] = {"budget_id", NULL};

int dagi_quota_store_new_with(const struct dagi_quota_store_ops *ops,
                              const struct dagi_quota_store_opts *opts,
                              struct dagi_quota_store **out, struct dagi_error *err)
{
    void *state = NULL;
    int rc = ops->open(opts, &state, err);
    if (rc)
        return rc;
    struct dagi_quota_store *s = dagi_xcalloc(1, sizeof(*s));
    atomic_init(&s->refs, 1);
    s->ops = ops;
    s->state = state;
    struct dagi_metrics *m = opts->metrics ? opts->metrics : dagi_metrics_default();
    /* No user label (seed 6 names one): a label per user would grow
     * without bound; quota.consumed events carry the user instead. */
    s->consumed = dagi_metrics_counter(m, "agent_budget_consumed",
                                       "Tokens settled against budgets, by agent.", agent_label);
    s->blocked = dagi_metrics_counter(m, "quota_blocked_total",
                                      "Requests refused by a budget, by the budget that refused.",
                                      budget_label);
    *out = s;
    return DAGI_OK;
}

int dagi_quota_store_new(const char *backend, const struct dagi_quota_store_opts *opts,
                         struct dagi_quota_store **out, struct dagi_error *err)
{
    for (size_t i = 0; dagi_quota_store_backends[i]; i++)
        if (backend && strcmp(dagi_quota_store_backends[i]->name, backend) == 0)
            return dagi_quota_store_new_with(dagi_quota_store_backends[i], opts, out, err);
    return dagi_error_set(err, DAGI_EINVAL, "unknown quota store backend \"%s\"",
                          backend ? backend : "(null)");
}

struct dagi_quota_store *dagi_quota_store_ref(struct dagi_quota_store *store)
{
    if (store)
        atomic_fetch_add_explicit(&store->refs, 1, memory_order_relaxed);
    return store;
}

void dagi_quota_store_free(struct dagi_quota_store *store)
{
    if (!store || atomic_fetch_sub_explicit(&store->refs, 1, memory_order_acq_rel) != 1)
        return;
    store->ops->close(store->state);
    free(store);
}

const struct dagi_quota_store_ops *dagi_quota_store_backend(const struct dagi_quota_store *store)
{
    return store->ops;
}

void dagi_quota_reservation_free(struct dagi_quota_reservation *r)
{
    free(r);
}

void dagi_quota_usage_release(struct dagi_quota_usage *u)
{
    free(u->items);
    u->items = NULL;
    u->count = 0;
}

int dagi_quota_reserve(struct dagi_quota_store *store, const struct dagi_quota_budgets *budgets,
                       const struct dagi_quota_subject *s, int64_t max_tokens, int64_t now_ms,
                       struct dagi_quota_reservation **out, struct dagi_quota_block *block,
                       struct dagi_error *err)
{
    struct dagi_quota_block local;
    int rc = dagi_quota_subject_check(s, err);
    if (rc)
        return rc;
    if (max_tokens < 0 || max_tokens > MAX_TOKENS_PER_REQUEST)
        return dagi_error_set(err, DAGI_EINVAL, "max_tokens must be 0..%lld",
                              (long long)MAX_TOKENS_PER_REQUEST);
    if (!block)
        block = &local;
    rc = store->ops->reserve(store->state, budgets, s, max_tokens, now_ms, out, block, err);
    if (rc == DAGI_EPERM) {
        const char *label[] = {block->budget_id};
        dagi_metric_inc(store->blocked, label);
    }
    return rc;
}

int dagi_quota_settle(struct dagi_quota_store *store, const struct dagi_quota_reservation *r,
                      const struct dagi_quota_spend *spend, int64_t now_ms, struct dagi_error *err)
{
    if (spend->prompt_tokens < 0 || spend->completion_tokens < 0 ||
        spend->prompt_tokens > MAX_TOKENS_PER_REQUEST ||
        spend->completion_tokens > MAX_TOKENS_PER_REQUEST)
        return dagi_error_set(err, DAGI_EINVAL, "token counts must be 0..%lld",
                              (long long)MAX_TOKENS_PER_REQUEST);
    int rc = r->count ? store->ops->settle(store->state, r, spend, now_ms, err) : DAGI_OK;
    if (rc == DAGI_OK) {
        const char *label[] = {r->agent[0] ? r->agent : "none"};
        dagi_metric_add(store->consumed, label,
                        (double)(spend->prompt_tokens + spend->completion_tokens));
    }
    return rc;
}

int dagi_quota_release(struct dagi_quota_store *store, const struct dagi_quota_reservation *r,
                       int64_t now_ms, struct dagi_error *err)
{
    return r->count ? store->ops->release(store->state, r, now_ms, err) : DAGI_OK;
}

int dagi_quota_usage(struct dagi_quota_store *store, const struct dagi_quota_budgets *budgets,
                     const struct dagi_quota_subject *s, int64_t now_ms,
                     struct dagi_quota_usage *out, struct dagi_error *err)
{
    /* Any one of user, team and agent is enough to ask about. */
    struct dagi_quota_subject probe = *s;
    if (!probe.user || !*probe.user)
        probe.user = "-";
    int rc = dagi_quota_subject_check(&probe, err);
    if (rc)
        return rc;
    if ((!s->user || !*s->user) && (!s->team || !*s->team) && (!s->agent || !*s->agent))
        return dagi_error_set(err, DAGI_EINVAL, "give a user, a team or an agent");
    return store->ops->usage(store->state, budgets, s, now_ms, out, err);
}

int dagi_quota_reset(struct dagi_quota_store *store, const struct dagi_quota_budget *budget,
                     const char *subject_id, int64_t now_ms, const char *trace_id,
                     struct dagi_error *err)
{
    struct dagi_quota_subject probe = {.user = subject_id};
    if (dagi_quota_subject_check(&probe, NULL))
        return dagi_error_set(err, DAGI_EINVAL,
                              "the subject must be an id of 1-%d bytes without control characters",
                              DAGI_QUOTA_NAME_MAX);
    return store->ops->reset(store->state, budget, subject_id, now_ms, trace_id, err);
}

int dagi_quota_purge(struct dagi_quota_store *store, int64_t now_ms, size_t *removed,
                     struct dagi_error *err)
{
    if (removed)
        *removed = 0;
    return store->ops->purge ? store->ops->purge(store->state, now_ms, removed, err) : DAGI_OK;
}
