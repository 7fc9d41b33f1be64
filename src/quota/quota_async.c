/* Pool jobs for the quota store (quota_async.h).  One job struct for the
 * three calls; it owns copies of everything the worker reads, so the
 * caller's strings may go away as soon as submit returns. */
#include "quota/quota_async.h"

#include "core/clock.h"
#include "core/mem.h"
#include "core/pool.h"

#include <stdlib.h>
#include <string.h>

enum job_op { OP_RESERVE, OP_SETTLE, OP_RELEASE };

struct quota_job {
    enum job_op op;
    struct dagi_quota_store *store;
    int64_t now_ms;
    /* reserve */
    struct dagi_quota_budgets *budgets;
    char *user, *team, *agent, *trace_id;
    int64_t max_tokens;
    struct dagi_quota_block block;
    dagi_quota_reserved_fn reserved;
    /* settle, release; and reserve's result */
    struct dagi_quota_reservation *r;
    struct dagi_quota_spend spend;
    char *model;
    dagi_quota_done_fn done;
    void *ud;
    int rc;
    struct dagi_error err;
};

static char *dup_or_null(const char *s)
{
    return s ? dagi_xstrdup(s) : NULL;
}

static void job_free(struct quota_job *job)
{
    dagi_quota_store_free(job->store); /* the job's reference */
    dagi_quota_budgets_unref(job->budgets);
    free(job->user);
    free(job->team);
    free(job->agent);
    free(job->trace_id);
    free(job->model);
    dagi_quota_reservation_free(job->r);
    free(job);
}

static void on_work(void *ud)
{
    struct quota_job *job = ud;
    switch (job->op) {
    case OP_RESERVE: {
        struct dagi_quota_subject s = {job->user, job->team, job->agent, job->trace_id};
        job->rc = dagi_quota_reserve(job->store, job->budgets, &s, job->max_tokens, job->now_ms,
                                     &job->r, &job->block, &job->err);
        break;
    }
    case OP_SETTLE:
        job->rc = dagi_quota_settle(job->store, job->r, &job->spend, job->now_ms, &job->err);
        break;
    case OP_RELEASE:
        job->rc = dagi_quota_release(job->store, job->r, job->now_ms, &job->err);
        break;
    }
}

static void on_done(void *ud, bool cancelled)
{
    struct quota_job *job = ud;
    if (cancelled) {
        job->rc = dagi_error_set(&job->err, DAGI_ECANCELED, "the worker pool is stopping");
        dagi_quota_reservation_free(job->r);
        job->r = NULL;
    }
    if (job->op == OP_RESERVE) {
        struct dagi_quota_reservation *r = job->rc == DAGI_OK ? job->r : NULL;
        job->r = NULL; /* the callee's now */
        job->reserved(job->ud, job->rc, r, job->rc == DAGI_EPERM ? &job->block : NULL, &job->err);
    } else if (job->done) {
        job->done(job->ud, job->rc, &job->err);
    }
    job_free(job);
}

static int submit(struct dagi_pool *pool, struct quota_job *job)
{
    int rc = dagi_pool_submit(pool, on_work, on_done, job);
    if (rc) {
        job->r = NULL; /* still the caller's */
        job_free(job);
    }
    return rc;
}

int dagi_quota_reserve_async(struct dagi_pool *pool, struct dagi_quota_store *store,
                             struct dagi_quota_budgets *budgets, const struct dagi_quota_subject *s,
                             int64_t max_tokens, dagi_quota_reserved_fn done, void *ud)
{
    struct quota_job *job = dagi_xcalloc(1, sizeof(*job));
    job->op = OP_RESERVE;
    job->store = dagi_quota_store_ref(store);
    job->now_ms = dagi_clock_now_ms();
    job->budgets = dagi_quota_budgets_ref(budgets);
    job->user = dup_or_null(s->user);
    job->team = dup_or_null(s->team);
    job->agent = dup_or_null(s->agent);
    job->trace_id = dup_or_null(s->trace_id);
    job->max_tokens = max_tokens;
    job->reserved = done;
    job->ud = ud;
    return submit(pool, job);
}

static int finish_async(struct dagi_pool *pool, struct dagi_quota_store *store, enum job_op op,
                        struct dagi_quota_reservation *r, const struct dagi_quota_spend *spend,
                        dagi_quota_done_fn done, void *ud)
{
    struct quota_job *job = dagi_xcalloc(1, sizeof(*job));
    job->op = op;
    job->store = dagi_quota_store_ref(store);
    job->now_ms = dagi_clock_now_ms();
    job->r = r;
    if (spend) {
        job->spend = *spend;
        job->model = dup_or_null(spend->model);
        job->spend.model = job->model;
    }
    job->done = done;
    job->ud = ud;
    return submit(pool, job);
}

int dagi_quota_settle_async(struct dagi_pool *pool, struct dagi_quota_store *store,
                            struct dagi_quota_reservation *r, const struct dagi_quota_spend *spend,
                            dagi_quota_done_fn done, void *ud)
{
    return finish_async(pool, store, OP_SETTLE, r, spend, done, ud);
}

int dagi_quota_release_async(struct dagi_pool *pool, struct dagi_quota_store *store,
                             struct dagi_quota_reservation *r, dagi_quota_done_fn done, void *ud)
{
    return finish_async(pool, store, OP_RELEASE, r, NULL, done, ud);
}
