/* A bounded pool of worker threads for blocking work (SQLite, file parsing,
 * key derivation), with completion delivered back to the event loop.
 *
 *   work(ud)  runs on a worker thread; it must not touch loop-owned state.
 *   done(ud)  runs afterwards on the loop thread that owns `base`; it owns ud.
 *
 * The queue is bounded: submitting to a full queue fails with DAGI_EAGAIN so
 * the caller can shed load (HTTP 503) instead of queueing without limit.
 * dagi_pool_free() waits for running jobs, runs no more queued work, and
 * calls done() for queued jobs with `cancelled` true so they can free ud. */
#ifndef DAGI_POOL_H
#define DAGI_POOL_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct dagi_pool;

typedef void (*dagi_pool_work_fn)(void *ud);
typedef void (*dagi_pool_done_fn)(void *ud, bool cancelled);

struct dagi_pool *dagi_pool_new(struct event_base *base, unsigned threads, size_t max_queue);
void dagi_pool_free(struct dagi_pool *pool);
/* Returns 0 or DAGI_EAGAIN (queue full) / DAGI_ECLOSED (pool stopping). */
int dagi_pool_submit(struct dagi_pool *pool, dagi_pool_work_fn work, dagi_pool_done_fn done,
                     void *ud);
/* Jobs queued or running, for /metrics. */
size_t dagi_pool_pending(struct dagi_pool *pool);

#endif
