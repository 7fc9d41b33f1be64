/* A multi-producer queue into one event loop: any thread pushes a callback,
 * the loop thread runs it.  The worker pool, libnats message callbacks and
 * signal handling all hand work to the loop through this one mechanism.
 * Callbacks run in push order.  dagi_loopq_free() runs nothing still queued;
 * it calls each pending callback with `cancelled` true so it can free ud. */
#ifndef DAGI_LOOPQ_H
#define DAGI_LOOPQ_H

#include <stdbool.h>

struct event_base;
struct dagi_loopq;

typedef void (*dagi_loopq_fn)(void *ud, bool cancelled);

struct dagi_loopq *dagi_loopq_new(struct event_base *base);
void dagi_loopq_free(struct dagi_loopq *q);
/* Thread safe; never blocks on the loop. */
void dagi_loopq_push(struct dagi_loopq *q, dagi_loopq_fn fn, void *ud);

#endif
