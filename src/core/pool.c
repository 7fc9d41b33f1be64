/* Bounded worker pool: N threads take jobs from one FIFO and hand each
 * finished job back to the loop through a dagi_loopq.
 *
 * Counting: `queued` is the jobs waiting for a thread (this is what
 * max_queue bounds; running jobs do not use a slot).  `pending` counts a job
 * from submit until its done() has been called, so it covers queued, running
 * and finished-but-not-yet-delivered jobs: the number /metrics wants and the
 * one a test can wait to reach zero.
 *
 * Shutdown (dagi_pool_free, on the loop thread or after the loop stopped):
 *   1. mark the pool stopping and take the queue, so no worker starts more;
 *   2. join the workers, which finish the job they are running;
 *   3. free the loopq: the jobs that ran but whose done() had not been
 *      delivered get done(ud, false) right there - their work did happen;
 *   4. call done(ud, true) for each job taken in step 1, in FIFO order.
 * Steps 3 and 4 run on the caller's thread, inside dagi_pool_free, because
 * the loop may never run again.  So `cancelled` always means exactly "work()
 * did not run". */
#include "pool.h"

#include "err.h"
#include "loopq.h"
#include "mem.h"

#include <pthread.h>
#include <stdlib.h>

#define DEFAULT_MAX_QUEUE 1024

struct job {
    struct job *next;
    struct dagi_pool *pool;
    dagi_pool_work_fn work;
    dagi_pool_done_fn done;
    void *ud;
};

struct dagi_pool {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* signalled when a job is queued or the pool stops */
    struct job *head, *tail;
    size_t queued, max_queue;
    size_t pending;
    bool stopping;
    unsigned nthreads;
    pthread_t *threads;
    struct dagi_loopq *loopq;
};

/* Runs on the loop thread (or inside dagi_pool_free, see above).  The
 * loopq's own `cancelled` flag is ignored: it is set when the queue is freed
 * with this item still in it, but by then work() has already run. */
static void on_job_done(void *arg, bool loopq_cancelled)
{
    (void)loopq_cancelled;
    struct job *job = arg;
    struct dagi_pool *pool = job->pool;
    if (job->done)
        job->done(job->ud, false);
    pthread_mutex_lock(&pool->lock);
    pool->pending--;
    pthread_mutex_unlock(&pool->lock);
    free(job);
}

static void *worker_main(void *arg)
{
    struct dagi_pool *pool = arg;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (!pool->stopping && !pool->head)
            pthread_cond_wait(&pool->wake, &pool->lock);
        if (pool->stopping)
            break;
        struct job *job = pool->head;
        pool->head = job->next;
        if (!pool->head)
            pool->tail = NULL;
        pool->queued--;
        pthread_mutex_unlock(&pool->lock);

        job->work(job->ud);
        /* the pool (and its loopq) outlives every worker: free joins first */
        dagi_loopq_push(pool->loopq, on_job_done, job);

        pthread_mutex_lock(&pool->lock);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

struct dagi_pool *dagi_pool_new(struct event_base *base, unsigned threads, size_t max_queue)
{
    struct dagi_pool *pool = dagi_xcalloc(1, sizeof(*pool));
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pool->max_queue = max_queue ? max_queue : DEFAULT_MAX_QUEUE;
    pool->nthreads = threads ? threads : 1;
    pool->threads = dagi_xcalloc(pool->nthreads, sizeof(*pool->threads));
    pool->loopq = dagi_loopq_new(base);
    for (unsigned i = 0; i < pool->nthreads; i++) {
        /* like an allocation failure: a pool without its threads is useless
         * and there is no sane way to limp on (see err.h) */
        if (pthread_create(&pool->threads[i], NULL, worker_main, pool) != 0)
            abort();
    }
    return pool;
}

void dagi_pool_free(struct dagi_pool *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    struct job *never_started = pool->head;
    pool->head = pool->tail = NULL;
    pool->queued = 0;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);

    for (unsigned i = 0; i < pool->nthreads; i++)
        pthread_join(pool->threads[i], NULL);

    /* delivers done(ud, false) for finished jobs not yet seen by the loop */
    dagi_loopq_free(pool->loopq);

    while (never_started) {
        struct job *next = never_started->next;
        if (never_started->done)
            never_started->done(never_started->ud, true);
        free(never_started);
        never_started = next;
    }

    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    free(pool->threads);
    free(pool);
}

int dagi_pool_submit(struct dagi_pool *pool, dagi_pool_work_fn work, dagi_pool_done_fn done,
                     void *ud)
{
    if (!work)
        return DAGI_EINVAL;
    int rc = DAGI_OK;
    struct job *job = dagi_xmalloc(sizeof(*job));
    *job = (struct job){.pool = pool, .work = work, .done = done, .ud = ud};

    pthread_mutex_lock(&pool->lock);
    if (pool->stopping) {
        rc = DAGI_ECLOSED;
        goto out;
    }
    if (pool->queued >= pool->max_queue) {
        rc = DAGI_EAGAIN;
        goto out;
    }
    if (pool->tail)
        pool->tail->next = job;
    else
        pool->head = job;
    pool->tail = job;
    pool->queued++;
    pool->pending++;
    pthread_cond_signal(&pool->wake);
    job = NULL;
out:
    pthread_mutex_unlock(&pool->lock);
    free(job);
    return rc;
}

size_t dagi_pool_pending(struct dagi_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    size_t n = pool->pending;
    pthread_mutex_unlock(&pool->lock);
    return n;
}
