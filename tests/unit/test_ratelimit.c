/* Rate limiting: one conformance table run against every backend in
 * dagi_ratelimit_backends (a new backend is a new row there, nothing
 * here), then the local backend's own machinery: eviction under the cap
 * and failing open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/ratelimit.h"
#include "core/clock.h"
#include "core/mem.h"

struct fixture {
    const struct dagi_ratelimit_ops *ops;
    struct dagi_ratelimit *rl;
};

static int open_with(void **state, size_t max_buckets)
{
    const struct dagi_ratelimit_ops *ops = *state; /* the row's backend */
    struct fixture *f = dagi_xcalloc(1, sizeof(*f));
    struct dagi_ratelimit_opts opts = {.max_buckets = max_buckets};
    struct dagi_error err = {0};
    f->ops = ops;
    if (dagi_ratelimit_new(ops->name, &opts, &f->rl, &err) != DAGI_OK) {
        fprintf(stderr, "open %s: %s\n", ops->name, err.message);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return open_with(state, 0);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    dagi_ratelimit_free(f->rl);
    free(f);
    return 0;
}

/* A test's own bucket names: a shared backend (Redis) keeps buckets
 * between runs, so names carry something unique. */
static void key_name(char *out, size_t n, const char *base)
{
    static atomic_int seq;
    snprintf(out, n, "t%lld.%d:%s", (long long)dagi_clock_mono_ns(), atomic_fetch_add(&seq, 1),
             base);
}

/* --- conformance --- */

static void test_ten_per_minute(void **state)
{
    struct fixture *f = *state;
    struct dagi_ratelimit_rule r = dagi_ratelimit_per(10, 60000);
    assert_true(fabs(r.rate_per_s - 10.0 / 60.0) < 1e-12);
    assert_true(r.burst == 10);
    char k[64];
    key_name(k, sizeof(k), "user:u1:chat");
    int64_t t0 = 1700000000000, retry = 123;
    for (int i = 0; i < 10; i++) {
        assert_true(dagi_ratelimit_take(f->rl, k, r.rate_per_s, r.burst, t0, &retry));
        assert_int_equal(retry, 0);
    }
    assert_false(dagi_ratelimit_take(f->rl, k, r.rate_per_s, r.burst, t0, &retry));
    assert_int_equal(retry, 6000); /* one token of 10 a minute */
    /* a refused request costs nothing: asking again changes no answer */
    assert_false(dagi_ratelimit_take(f->rl, k, r.rate_per_s, r.burst, t0 + 3000, &retry));
    assert_int_equal(retry, 3000);
    assert_false(dagi_ratelimit_take(f->rl, k, r.rate_per_s, r.burst, t0 + 5999, &retry));
    assert_int_equal(retry, 1);
    assert_true(dagi_ratelimit_take(f->rl, k, r.rate_per_s, r.burst, t0 + 6000, &retry));
    assert_false(dagi_ratelimit_take(f->rl, k, r.rate_per_s, r.burst, t0 + 6000, &retry));
    assert_int_equal(retry, 6000);
    /* retry_after may be NULL */
    assert_false(dagi_ratelimit_take(f->rl, k, r.rate_per_s, r.burst, t0 + 6000, NULL));
}

static void test_separate_keys(void **state)
{
    struct fixture *f = *state;
    char a[64], b[64];
    key_name(a, sizeof(a), "a");
    key_name(b, sizeof(b), "b");
    int64_t t = 1000000;
    for (int i = 0; i < 3; i++)
        assert_true(dagi_ratelimit_take(f->rl, a, 1, 3, t, NULL));
    assert_false(dagi_ratelimit_take(f->rl, a, 1, 3, t, NULL));
    for (int i = 0; i < 3; i++)
        assert_true(dagi_ratelimit_take(f->rl, b, 1, 3, t, NULL));
    assert_false(dagi_ratelimit_take(f->rl, b, 1, 3, t, NULL));
}

static void test_refill_capped_at_burst(void **state)
{
    struct fixture *f = *state;
    char k[64];
    key_name(k, sizeof(k), "idle");
    int64_t t = 5000000, retry;
    assert_true(dagi_ratelimit_take(f->rl, k, 2, 4, t, NULL));
    /* an hour idle refills to the burst, not to 7200 tokens */
    t += 3600 * 1000;
    for (int i = 0; i < 4; i++)
        assert_true(dagi_ratelimit_take(f->rl, k, 2, 4, t, NULL));
    assert_false(dagi_ratelimit_take(f->rl, k, 2, 4, t, &retry));
    assert_int_equal(retry, 500);
    /* continuous refill: half a token after 250 ms, one after 500 */
    assert_false(dagi_ratelimit_take(f->rl, k, 2, 4, t + 250, &retry));
    assert_int_equal(retry, 250);
    assert_true(dagi_ratelimit_take(f->rl, k, 2, 4, t + 500, NULL));
}

static void test_retry_rounds_up(void **state)
{
    struct fixture *f = *state;
    char k[64];
    key_name(k, sizeof(k), "thirds");
    int64_t retry;
    assert_true(dagi_ratelimit_take(f->rl, k, 3, 1, 0, NULL));
    assert_false(dagi_ratelimit_take(f->rl, k, 3, 1, 0, &retry));
    assert_int_equal(retry, 334); /* 333.33... */
    assert_false(dagi_ratelimit_take(f->rl, k, 3, 1, 333, &retry));
    assert_int_equal(retry, 1);
    assert_true(dagi_ratelimit_take(f->rl, k, 3, 1, 334, NULL));
}

static void test_clock_steps_back(void **state)
{
    struct fixture *f = *state;
    char k[64];
    key_name(k, sizeof(k), "back");
    int64_t t = 2000000, retry;
    assert_true(dagi_ratelimit_take(f->rl, k, 1, 1, t, NULL));
    /* ten seconds back, then forward to where we were: no tokens made */
    assert_false(dagi_ratelimit_take(f->rl, k, 1, 1, t - 10000, &retry));
    assert_true(retry >= 1);
    assert_false(dagi_ratelimit_take(f->rl, k, 1, 1, t, &retry));
    assert_int_equal(retry, 1000);
    assert_true(dagi_ratelimit_take(f->rl, k, 1, 1, t + 1000, NULL));
}

static void test_invalid_arguments(void **state)
{
    struct fixture *f = *state;
    char long_key[DAGI_RATELIMIT_KEY_MAX + 2];
    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0'; /* 257 bytes */
    int64_t retry = 0;
    struct {
        const char *key;
        double rate, burst;
    } bad[] = {
        {NULL, 1, 1},  {"", 1, 1},    {long_key, 1, 1},   {"k", 0, 1},
        {"k", -1, 1},  {"k", NAN, 1}, {"k", INFINITY, 1}, {"k", 1, 0.5},
        {"k", 1, NAN}, {"k", 1, -3},  {"k", 1, INFINITY},
    };
    for (size_t i = 0; i < DAGI_ARRAY_LEN(bad); i++) {
        retry = 0;
        assert_false(dagi_ratelimit_take(f->rl, bad[i].key, bad[i].rate, bad[i].burst, 0, &retry));
        assert_int_equal(retry, -1);
    }
    long_key[DAGI_RATELIMIT_KEY_MAX] = '\0'; /* exactly the cap: fine */
    assert_true(dagi_ratelimit_take(f->rl, long_key, 1, 1, 0, &retry));
    struct dagi_ratelimit_stats st;
    dagi_ratelimit_stats(f->rl, &st);
    assert_int_equal(st.invalid, DAGI_ARRAY_LEN(bad));
}

/* 4 threads on 2 keys against the real clock: whatever the interleaving,
 * no key allows more than burst + rate * elapsed. */
struct hammer {
    struct dagi_ratelimit *rl;
    const char *keys[2];
    int64_t start_ms, end_ms;
    atomic_long allowed[2];
};

static void *on_hammer(void *ud)
{
    struct hammer *h = ud;
    for (unsigned i = 0;; i++) {
        int64_t now = dagi_clock_mono_ns() / 1000000;
        if (now >= h->end_ms)
            break;
        if (dagi_ratelimit_take(h->rl, h->keys[i & 1], 200, 20, now, NULL))
            atomic_fetch_add(&h->allowed[i & 1], 1);
    }
    return NULL;
}

static void test_threads(void **state)
{
    struct fixture *f = *state;
    char a[64], b[64];
    key_name(a, sizeof(a), "hot-a");
    key_name(b, sizeof(b), "hot-b");
    struct hammer h = {.rl = f->rl, .keys = {a, b}};
    atomic_init(&h.allowed[0], 0);
    atomic_init(&h.allowed[1], 0);
    h.start_ms = dagi_clock_mono_ns() / 1000000;
    h.end_ms = h.start_ms + 300;
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, on_hammer, &h), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    double elapsed_s = (double)(h.end_ms - h.start_ms) / 1000.0;
    for (int k = 0; k < 2; k++) {
        long got = atomic_load(&h.allowed[k]);
        /* the first instant already allows the burst; +1 for a token
         * completed in the last ms */
        assert_true(got >= 20);
        assert_true(got <= (long)(20 + 200 * elapsed_s) + 1);
    }
}

/* --- the local backend --- */

static int setup_small(void **state)
{
    *state = (void *)&dagi_ratelimit_local_ops;
    return open_with(state, 256); /* 64 shards of 4 */
}

static void test_local_eviction(void **state)
{
    struct fixture *f = *state;
    struct dagi_ratelimit_stats st;
    char k[32];
    int64_t retry;
    /* 3000 names at one instant (enough that every shard fills): every
     * bucket is drained by one token, so none can go, and the overflow is
     * allowed and counted */
    for (int i = 0; i < 3000; i++) {
        snprintf(k, sizeof(k), "first:%d", i);
        retry = 7;
        assert_true(dagi_ratelimit_take(f->rl, k, 1, 5, 0, &retry));
        assert_int_equal(retry, 0);
    }
    dagi_ratelimit_stats(f->rl, &st);
    assert_int_equal(st.buckets, 256);
    assert_int_equal(st.allowed, 256);
    assert_int_equal(st.failed_open, 3000 - 256);
    assert_int_equal(st.evicted, 0);
    uint64_t failed_before = st.failed_open;

    /* 10 s later they are all full again: new names take their place */
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof(k), "second:%d", i);
        assert_true(dagi_ratelimit_take(f->rl, k, 1, 5, 10000 + i * 10000LL, NULL));
    }
    dagi_ratelimit_stats(f->rl, &st);
    assert_true(st.buckets <= 256);
    assert_int_equal(st.failed_open, failed_before);
    assert_int_equal(st.evicted, 256 + 1000 - st.buckets); /* made minus live */

    /* a surviving drained bucket still limits */
    int64_t t = 100000000;
    snprintf(k, sizeof(k), "keeper");
    while (dagi_ratelimit_take(f->rl, k, 1, 5, t, NULL))
        ;
    assert_false(dagi_ratelimit_take(f->rl, k, 1, 5, t, &retry));
    assert_int_equal(retry, 1000);
}

static void test_local_fail_open_then_recover(void **state)
{
    struct fixture *f = *state;
    struct dagi_ratelimit_stats st;
    char k[32];
    /* fill everything with drained buckets (burst 1: one take drains it) */
    for (int i = 0; i < 5000; i++) {
        snprintf(k, sizeof(k), "drained:%d", i);
        assert_true(dagi_ratelimit_take(f->rl, k, 1, 1, 0, NULL));
    }
    dagi_ratelimit_stats(f->rl, &st);
    assert_int_equal(st.buckets, 256);
    assert_true(st.failed_open > 0);
    /* one second on, every bucket is full again: a new name gets a real
     * bucket, and is limited by it */
    int64_t retry;
    assert_true(dagi_ratelimit_take(f->rl, "fresh", 1, 1, 1000, NULL));
    assert_false(dagi_ratelimit_take(f->rl, "fresh", 1, 1, 1000, &retry));
    assert_int_equal(retry, 1000);
}

static void test_unknown_backend(void **state)
{
    (void)state;
    struct dagi_ratelimit *rl = NULL;
    struct dagi_error err = {0};
    assert_int_equal(dagi_ratelimit_new("memcached", NULL, &rl, &err), DAGI_EINVAL);
    assert_non_null(strstr(err.message, "memcached"));
    assert_int_equal(dagi_ratelimit_new(NULL, NULL, &rl, &err), DAGI_EINVAL);
    struct dagi_ratelimit_rule r = dagi_ratelimit_per(0, 1000);
    assert_true(r.rate_per_s == 0 && r.burst == 0); /* and take() refuses it as invalid */
}

/* --- the table --- */

struct conformance_case {
    const char *name;
    CMUnitTestFunction fn;
};

static const struct conformance_case conformance[] = {
    {"ten_per_minute", test_ten_per_minute},
    {"separate_keys", test_separate_keys},
    {"refill_capped_at_burst", test_refill_capped_at_burst},
    {"retry_rounds_up", test_retry_rounds_up},
    {"clock_steps_back", test_clock_steps_back},
    {"invalid_arguments", test_invalid_arguments},
    {"threads", test_threads},
};

int main(void)
{
    size_t backends = 0;
    while (dagi_ratelimit_backends[backends])
        backends++;
    size_t n = 0, cap = backends * DAGI_ARRAY_LEN(conformance) + 3;
    struct CMUnitTest *tests = dagi_xcalloc(cap, sizeof(*tests));
    char **names = dagi_xcalloc(cap, sizeof(*names));
    for (size_t b = 0; b < backends; b++) {
        for (size_t c = 0; c < DAGI_ARRAY_LEN(conformance); c++) {
            char *name =
                dagi_xasprintf("%s: %s", dagi_ratelimit_backends[b]->name, conformance[c].name);
            names[n] = name;
            tests[n++] = (struct CMUnitTest){name, conformance[c].fn, setup, teardown,
                                             (void *)dagi_ratelimit_backends[b]};
        }
    }
    tests[n++] =
        (struct CMUnitTest){"local: eviction", test_local_eviction, setup_small, teardown, NULL};
    tests[n++] =
        (struct CMUnitTest){"local: fail_open_then_recover", test_local_fail_open_then_recover,
                            setup_small, teardown, NULL};
    tests[n++] = (struct CMUnitTest){"unknown_backend", test_unknown_backend, NULL, NULL, NULL};
    int rc = _cmocka_run_group_tests("ratelimit", tests, n, NULL, NULL);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(tests);
    return rc;
}
