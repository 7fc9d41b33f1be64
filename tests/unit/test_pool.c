/* Worker pool: completion on the loop thread, bounded queue, shutdown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/pool.h"

struct fixture {
    struct event_base *base;
    pthread_t loop_thread;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->base = event_base_new();
    f->loop_thread = pthread_self();
    *state = f;
    return f->base ? 0 : -1;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    event_base_free(f->base);
    free(f);
    return 0;
}

/* Runs the loop until *flag reaches want or 5 s pass. */
static void run_until(struct event_base *base, atomic_int *flag, int want)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    struct timeval tick = {0, 10000};
    while (atomic_load(flag) < want) {
        /* wake every 10 ms even when nothing is ready, to check the clock */
        event_base_loopexit(base, &tick);
        event_base_dispatch(base);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec > 5)
            fail_msg("timed out waiting: %d of %d", atomic_load(flag), want);
    }
}

struct job {
    struct fixture *f;
    int index;
    pthread_t worker;
    bool worked;
    atomic_int *done_count;
    atomic_int *cancelled_count;
    int *order;  /* done order, by index */
    sem_t *gate; /* when set, work() waits on it */
    atomic_int *started;
};

static void work(void *ud)
{
    struct job *j = ud;
    if (j->started)
        atomic_fetch_add(j->started, 1);
    if (j->gate)
        sem_wait(j->gate);
    j->worker = pthread_self();
    j->worked = true;
}

static void done(void *ud, bool cancelled)
{
    struct job *j = ud;
    if (cancelled) {
        assert_false(j->worked);
        atomic_fetch_add(j->cancelled_count, 1);
    } else {
        assert_true(j->worked);
        assert_true(pthread_equal(pthread_self(), j->f->loop_thread));
        assert_false(pthread_equal(j->worker, j->f->loop_thread));
        int n = atomic_fetch_add(j->done_count, 1);
        if (j->order)
            j->order[n] = j->index;
    }
}

static void test_done_on_loop_thread(void **state)
{
    struct fixture *f = *state;
    atomic_int done_count = 0, cancelled = 0;
    struct dagi_pool *pool = dagi_pool_new(f->base, 2, 16);
    struct job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (struct job){
            .f = f, .index = i, .done_count = &done_count, .cancelled_count = &cancelled};
        assert_int_equal(dagi_pool_submit(pool, work, done, &jobs[i]), 0);
    }
    run_until(f->base, &done_count, 4);
    assert_int_equal(cancelled, 0);
    assert_int_equal(dagi_pool_pending(pool), 0);
    dagi_pool_free(pool);
}

static void test_thousand_jobs(void **state)
{
    struct fixture *f = *state;
    enum { N = 1000 };
    atomic_int done_count = 0, cancelled = 0;
    struct dagi_pool *pool = dagi_pool_new(f->base, 4, N);
    struct job *jobs = calloc(N, sizeof(*jobs));
    int *order = calloc(N, sizeof(*order));
    for (int i = 0; i < N; i++) {
        jobs[i] = (struct job){.f = f,
                               .index = i,
                               .done_count = &done_count,
                               .cancelled_count = &cancelled,
                               .order = order};
        assert_int_equal(dagi_pool_submit(pool, work, done, &jobs[i]), 0);
    }
    assert_true(dagi_pool_pending(pool) > 0);
    run_until(f->base, &done_count, N);
    assert_int_equal(dagi_pool_pending(pool), 0);
    /* every job completed exactly once, in whatever order the threads chose */
    bool *seen = calloc(N, sizeof(*seen));
    for (int i = 0; i < N; i++) {
        assert_false(seen[order[i]]);
        seen[order[i]] = true;
    }
    dagi_pool_free(pool);
    assert_int_equal(cancelled, 0);
    free(seen);
    free(order);
    free(jobs);
}

/* Blocks the only worker, then fills the queue. */
static void test_queue_full(void **state)
{
    struct fixture *f = *state;
    atomic_int done_count = 0, cancelled = 0, started = 0;
    sem_t gate;
    sem_init(&gate, 0, 0);
    struct dagi_pool *pool = dagi_pool_new(f->base, 1, 2);
    struct job jobs[4];
    for (int i = 0; i < 4; i++)
        jobs[i] = (struct job){.f = f,
                               .index = i,
                               .done_count = &done_count,
                               .cancelled_count = &cancelled,
                               .gate = &gate,
                               .started = &started};

    assert_int_equal(dagi_pool_submit(pool, work, done, &jobs[0]), 0);
    while (atomic_load(&started) < 1)
        usleep(1000);
    /* the running job does not take a queue slot */
    assert_int_equal(dagi_pool_submit(pool, work, done, &jobs[1]), 0);
    assert_int_equal(dagi_pool_submit(pool, work, done, &jobs[2]), 0);
    assert_int_equal(dagi_pool_submit(pool, work, done, &jobs[3]), DAGI_EAGAIN);
    assert_int_equal(dagi_pool_pending(pool), 3);

    for (int i = 0; i < 3; i++)
        sem_post(&gate);
    run_until(f->base, &done_count, 3);
    assert_int_equal(dagi_pool_pending(pool), 0);
    /* room again */
    jobs[3].gate = NULL;
    assert_int_equal(dagi_pool_submit(pool, work, done, &jobs[3]), 0);
    run_until(f->base, &done_count, 4);
    dagi_pool_free(pool);
    sem_destroy(&gate);
    assert_int_equal(cancelled, 0);
}

static void *post_later(void *arg)
{
    usleep(100 * 1000);
    sem_post(arg);
    return NULL;
}

/* Frees the pool while one job runs and five wait: the running one finishes
 * (done with cancelled false, inside dagi_pool_free), the waiting ones get
 * done(cancelled true), and nothing leaks. */
static void test_free_with_queued_work(void **state)
{
    struct fixture *f = *state;
    atomic_int done_count = 0, cancelled = 0, started = 0;
    sem_t gate;
    sem_init(&gate, 0, 0);
    struct dagi_pool *pool = dagi_pool_new(f->base, 1, 8);
    struct job jobs[6];
    for (int i = 0; i < 6; i++) {
        jobs[i] = (struct job){.f = f,
                               .index = i,
                               .done_count = &done_count,
                               .cancelled_count = &cancelled,
                               .gate = &gate,
                               .started = &started};
        assert_int_equal(dagi_pool_submit(pool, work, done, &jobs[i]), 0);
    }
    while (atomic_load(&started) < 1)
        usleep(1000);
    /* the running job is let go only once free has taken the queue, so the
     * worker cannot start a second one */
    pthread_t poster;
    pthread_create(&poster, NULL, post_later, &gate);
    dagi_pool_free(pool);
    pthread_join(poster, NULL);
    assert_int_equal(done_count, 1);
    assert_int_equal(cancelled, 5);
    sem_destroy(&gate);
}

static void test_free_idle_and_null(void **state)
{
    struct fixture *f = *state;
    dagi_pool_free(NULL);
    struct dagi_pool *pool = dagi_pool_new(f->base, 0, 0); /* defaults */
    assert_int_equal(dagi_pool_pending(pool), 0);
    assert_int_equal(dagi_pool_submit(pool, NULL, NULL, NULL), DAGI_EINVAL);
    dagi_pool_free(pool);
}

int main(void)
{
    /* loopq wakes the loop from worker threads (see loopq.c) */
    evthread_use_pthreads();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_done_on_loop_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thousand_jobs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_queued_work, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_idle_and_null, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    libevent_global_shutdown();
    return rc;
}
