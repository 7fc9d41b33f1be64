/* Rate limiting with token buckets, behind a backend ops table.
 *
 * A bucket is named by a string the caller builds ("user:u1:chat",
 * "ip:203.0.113.7").  Its capacity is `burst` tokens and it refills
 * continuously at `rate_per_s`; each allowed request takes one token, and
 * the first request under a new name finds the bucket full.  Rate and
 * burst are passed on every call, so one limiter serves every rule; a
 * bucket follows the values of its latest call.
 *
 * Time is the caller's now_ms (the business clock, dagi_clock_now_ms(), in
 * production), so tests and test hooks move it without sleeping.  A clock
 * that steps back refills nothing until it has caught up.
 *
 * Backends:
 *   "local"  in-process, sharded, bounded (ratelimit_local.c).  Each node
 *            limits on its own: N nodes allow up to N times the rate.
 *   "redis"  (later) shared by all nodes.
 * take() is synchronous.  The local backend never blocks beyond a shard
 * mutex and may run on an event-loop thread; a network backend would have
 * to be called from the worker pool, or gain a completion-callback slot.
 *
 * Thread safe.  The limiter owns its buckets; dagi_ratelimit_free() drops
 * them. */
#ifndef DAGI_ACCESS_RATELIMIT_H
#define DAGI_ACCESS_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* Bucket names longer than this are refused as a caller bug. */
#define DAGI_RATELIMIT_KEY_MAX 256

struct dagi_ratelimit_opts {
    size_t max_buckets; /* 0 = 100000; the local backend's memory bound */
};

struct dagi_ratelimit_stats {
    uint64_t allowed, refused;
    uint64_t failed_open; /* allowed only because no bucket could be made */
    uint64_t evicted;     /* buckets dropped to make room */
    uint64_t invalid;     /* calls refused for bad arguments */
    size_t buckets;       /* live now */
};

/* The backend ops table. */
struct dagi_ratelimit_ops {
    const char *name;
    int (*open)(const struct dagi_ratelimit_opts *opts, void **state, struct dagi_error *err);
    void (*close)(void *state);
    /* As dagi_ratelimit_take; arguments are already checked (a key of 1 to
     * DAGI_RATELIMIT_KEY_MAX bytes, finite rate > 0, finite burst >= 1). */
    bool (*take)(void *state, const char *key, size_t key_len, double rate_per_s, double burst,
                 int64_t now_ms, int64_t *retry_after_ms);
    /* Optional (NULL): counters for /metrics. */
    void (*stats)(void *state, struct dagi_ratelimit_stats *out);
};

extern const struct dagi_ratelimit_ops dagi_ratelimit_local_ops;
/* Every compiled-in backend, NULL-terminated (the conformance suite runs
 * against each). */
extern const struct dagi_ratelimit_ops *const dagi_ratelimit_backends[];

struct dagi_ratelimit;

/* backend: a name from dagi_ratelimit_backends ("local").  opts may be
 * NULL.  DAGI_EINVAL for an unknown backend. */
int dagi_ratelimit_new(const char *backend, const struct dagi_ratelimit_opts *opts,
                       struct dagi_ratelimit **out, struct dagi_error *err);
/* The same with an ops table (tests, wrappers). */
int dagi_ratelimit_new_with(const struct dagi_ratelimit_ops *ops,
                            const struct dagi_ratelimit_opts *opts, struct dagi_ratelimit **out,
                            struct dagi_error *err);
void dagi_ratelimit_free(struct dagi_ratelimit *rl);
const struct dagi_ratelimit_ops *dagi_ratelimit_backend(const struct dagi_ratelimit *rl);

/* Takes one token from bucket `bucket_key` at now_ms.  True: allowed.
 * False: refused, and *retry_after_ms (may be NULL) is the time until one
 * token is back, rounded up to a whole ms (>= 1).  Bad arguments (a NULL,
 * empty or over-long key, rate <= 0, burst < 1, NaN or infinity) refuse
 * with *retry_after_ms = -1: a bug to fix, not a limit to wait out. */
bool dagi_ratelimit_take(struct dagi_ratelimit *rl, const char *bucket_key, double rate_per_s,
                         double burst, int64_t now_ms, int64_t *retry_after_ms);

/* Zeroes *out when the backend keeps no counters. */
void dagi_ratelimit_stats(struct dagi_ratelimit *rl, struct dagi_ratelimit_stats *out);

/* "count per period": rate = count / period, burst = count; e.g.
 * dagi_ratelimit_per(10, 60000) is 10 a minute, all 10 at once if unused. */
struct dagi_ratelimit_rule {
    double rate_per_s, burst;
};
struct dagi_ratelimit_rule dagi_ratelimit_per(double count, int64_t period_ms);

#endif
