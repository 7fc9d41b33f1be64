#include "loopq.h"

#include "mem.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>

struct item {
    struct item *next;
    dagi_loopq_fn fn;
    void *ud;
};

struct dagi_loopq {
    pthread_mutex_t lock;
    struct item *head, *tail;
    struct event *wake; /* activated by push, runs drain() on the loop */
};

/* Takes the whole list under the lock and runs it outside, so a callback may
 * push again without deadlock and producers never wait on a callback. */
static void drain(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct dagi_loopq *q = arg;
    pthread_mutex_lock(&q->lock);
    struct item *it = q->head;
    q->head = q->tail = NULL;
    pthread_mutex_unlock(&q->lock);
    while (it) {
        struct item *next = it->next;
        it->fn(it->ud, false);
        free(it);
        it = next;
    }
}

struct dagi_loopq *dagi_loopq_new(struct event_base *base)
{
    struct dagi_loopq *q = dagi_xcalloc(1, sizeof(*q));
    pthread_mutex_init(&q->lock, NULL);
    q->wake = event_new(base, -1, 0, drain, q);
    if (!q->wake)
        abort();
    return q;
}

void dagi_loopq_free(struct dagi_loopq *q)
{
    if (!q)
        return;
    event_free(q->wake);
    struct item *it = q->head;
    while (it) {
        struct item *next = it->next;
        it->fn(it->ud, true);
        free(it);
        it = next;
    }
    pthread_mutex_destroy(&q->lock);
    free(q);
}

void dagi_loopq_push(struct dagi_loopq *q, dagi_loopq_fn fn, void *ud)
{
    struct item *it = dagi_xmalloc(sizeof(*it));
    it->next = NULL;
    it->fn = fn;
    it->ud = ud;
    pthread_mutex_lock(&q->lock);
    bool was_empty = q->head == NULL;
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    /* event_active from another thread needs evthread_use_pthreads() (done
     * once at start, see node.c); one activation drains everything queued. */
    if (was_empty)
        event_active(q->wake, EV_READ, 0);
    pthread_mutex_unlock(&q->lock);
}
