/* The quota store from an event loop (the router runs on one): each call
 * runs the blocking store function as a job on the node's worker pool and
 * delivers the result to the loop thread that owns the pool's base.
 *
 * The time of a call is read from the business clock (dagi_clock_now_ms())
 * when it is submitted, so a queue wait does not move a request into the
 * next window.  Subject strings are copied at submit; `budgets` is held by
 * reference until the callback has run, and so is the store.
 *
 * Submitting returns 0, or DAGI_EAGAIN (the pool's queue is full: shed the
 * request with a 503) / DAGI_ECLOSED (stopping); the callback is then never
 * called and ownership stays with the caller.  Once submitted, the callback
 * runs exactly once, on the loop; rc DAGI_ECANCELED means the pool stopped
 * before the job ran.  A reservation whose settle is cancelled keeps its
 * hold until it expires (quota_store.h). */
#ifndef DAGI_QUOTA_ASYNC_H
#define DAGI_QUOTA_ASYNC_H

#include "quota/quota_store.h"

struct dagi_pool;

/* rc 0: `r` is the reservation, now owned by the callee (settle or release
 * it, then free it).  rc DAGI_EPERM: `block` says why (valid during the
 * call).  Otherwise err says what failed. */
typedef void (*dagi_quota_reserved_fn)(void *ud, int rc, struct dagi_quota_reservation *r,
                                       const struct dagi_quota_block *block,
                                       const struct dagi_error *err);
/* For settle and release. */
typedef void (*dagi_quota_done_fn)(void *ud, int rc, const struct dagi_error *err);

int dagi_quota_reserve_async(struct dagi_pool *pool, struct dagi_quota_store *store,
                             struct dagi_quota_budgets *budgets, const struct dagi_quota_subject *s,
                             int64_t max_tokens, dagi_quota_reserved_fn done, void *ud);
/* Takes `r` (freed after the settle, whatever its outcome); `done` may be
 * NULL.  spend->model is copied. */
int dagi_quota_settle_async(struct dagi_pool *pool, struct dagi_quota_store *store,
                            struct dagi_quota_reservation *r, const struct dagi_quota_spend *spend,
                            dagi_quota_done_fn done, void *ud);
/* Takes `r` like settle; `done` may be NULL. */
int dagi_quota_release_async(struct dagi_pool *pool, struct dagi_quota_store *store,
                             struct dagi_quota_reservation *r, dagi_quota_done_fn done, void *ud);

#endif
