/* Request/reply on the bus: serving, calling, streamed replies, cancellation
 * and deadlines, over NATS or in-process (bus.h has the wire protocol).
 *
 * One file per side, sharing rpc_internal.h:
 *   rpc.c         what every side uses: the id tables, the wire helpers,
 *                 the error names, the hand-off of NATS messages to the
 *                 side they are for, and setup and teardown;
 *   rpc_call.c    the caller: requests, the timeout and idle timers,
 *                 cancel, and the replies that come back over NATS;
 *   rpc_serve.c   the responder: serving, replies, streams, errors, the
 *                 cancel subscription and the deadline;
 *   rpc_inproc.c  in-process delivery through the bus's local queue.
 *
 * Everything here runs on the loop thread.  Messages from NATS arrive
 * through dagi_bus_rpc_deliver() (bus.c hands them over); in-process
 * deliveries go through the bus's local queue, drained by one libevent
 * event, so neither side is ever called from inside the other's call: a
 * responder streaming 1,000 chunks in a loop only queues them.
 *
 * A call or request that something queued refers to is found again by id
 * (or reply subject); what is no longer there is dropped.  That is how a
 * cancelled call ignores replies still in flight.
 */
#include "rpc_internal.h"

#include "core/mem.h"
#include "core/metrics.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

/* --- small helpers --- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

uint64_t rpc_hash_str(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h;
}

static void ht_init(struct bus_htable *t)
{
    t->mask = 63;
    t->count = 0;
    t->buckets = dagi_xcalloc(t->mask + 1, sizeof(*t->buckets));
}

void rpc_ht_insert(struct bus_htable *t, struct bus_hnode *e, uint64_t key)
{
    if (t->count > t->mask) {
        size_t n = (t->mask + 1) * 2;
        struct bus_hnode **b = dagi_xcalloc(n, sizeof(*b));
        for (size_t i = 0; i <= t->mask; i++) {
            for (struct bus_hnode *x = t->buckets[i], *next; x; x = next) {
                next = x->next;
                size_t j = mix64(x->key) & (n - 1);
                x->next = b[j];
                b[j] = x;
            }
        }
        free(t->buckets);
        t->buckets = b;
        t->mask = n - 1;
    }
    size_t i = mix64(key) & t->mask;
    e->key = key;
    e->next = t->buckets[i];
    t->buckets[i] = e;
    t->count++;
}

/* The first node with `key`, or the one after `from` when from is set. */
struct bus_hnode *rpc_ht_find(const struct bus_htable *t, uint64_t key, struct bus_hnode *from)
{
    struct bus_hnode *x = from ? from->next : t->buckets[mix64(key) & t->mask];
    for (; x; x = x->next)
        if (x->key == key)
            return x;
    return NULL;
}

void rpc_ht_remove(struct bus_htable *t, struct bus_hnode *e)
{
    for (struct bus_hnode **p = &t->buckets[mix64(e->key) & t->mask]; *p; p = &(*p)->next) {
        if (*p == e) {
            *p = e->next;
            t->count--;
            return;
        }
    }
}

/* Decimal without printf: this is on every message. */
char *rpc_u64_dec(uint64_t v, char buf[24])
{
    char *p = buf + 23;
    *p = '\0';
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return p;
}

bool rpc_parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!s || !*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return true;
}

const char *rpc_header(natsMsg *m, const char *key)
{
    const char *v = NULL;
    return natsMsgHeader_Get(m, key, &v) == NATS_OK && v ? v : NULL;
}

void rpc_arm_timer(struct event *ev, int64_t ms)
{
    if (ms < 0)
        ms = 0;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(ev, &tv);
}

bool rpc_valid_subject(const char *s)
{
    if (!s || !*s || *s == '.')
        return false;
    for (const char *p = s; *p; p++)
        if (*p == '*' || *p == '>' || *p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' ||
            (*p == '.' && (p[1] == '.' || p[1] == '\0')))
            return false;
    return true;
}

/* --- error names --- */

static const struct {
    int code;
    const char *name;
} err_names[] = {
    {DAGI_OK, "ok"},
    {DAGI_EINVAL, "invalid"},
    {DAGI_ENOMEM, "no_memory"},
    {DAGI_EIO, "io_error"},
    {DAGI_ENOENT, "not_found"},
    {DAGI_ETIMEDOUT, "timed_out"},
    {DAGI_ETOOBIG, "too_large"},
    {DAGI_EPARSE, "parse_error"},
    {DAGI_ECANCELED, "cancelled"},
    {DAGI_EAGAIN, "try_again"},
    {DAGI_EEXIST, "already_exists"},
    {DAGI_EPERM, "forbidden"},
    {DAGI_ECLOSED, "closed"},
    {DAGI_EUNAVAIL, "unavailable"},
    {DAGI_EINTERNAL, "internal"},
    {DAGI_ENEEDMORE, "need_more"},
    {DAGI_EQUOTA, "quota_exceeded"},
};

const char *dagi_bus_err_name(int err)
{
    for (size_t i = 0; i < DAGI_ARRAY_LEN(err_names); i++)
        if (err_names[i].code == err)
            return err_names[i].name;
    return "internal";
}

int dagi_bus_err_from_name(const char *name)
{
    for (size_t i = 0; name && i < DAGI_ARRAY_LEN(err_names); i++)
        if (strcmp(err_names[i].name, name) == 0)
            return err_names[i].code;
    return DAGI_EINTERNAL;
}

/* --- deliveries from NATS --- */

void dagi_bus_rpc_deliver(struct dagi_bus *bus, enum bus_msg_kind kind, natsMsg *msg)
{
    switch (kind) {
    case BUS_MSG_REQUEST:
        rpc_deliver_request(bus, msg);
        break;
    case BUS_MSG_REPLY:
        rpc_deliver_reply(bus, msg);
        break;
    case BUS_MSG_CANCEL:
        rpc_deliver_cancel(bus, msg);
        break;
    }
    natsMsg_Destroy(msg);
}

/* --- setup and teardown --- */

void dagi_bus_rpc_init(struct dagi_bus *bus)
{
    static const char *const call_labels[] = {"subject", "path", "result", NULL};
    static const char *const subject_labels[] = {"subject", NULL};
    ht_init(&bus->calls);
    ht_init(&bus->reqs);
    ht_init(&bus->reqs_by_reply);
    dagi_buf_init(&bus->scratch, 2 * MAX_ERROR_MESSAGE);
    bus->local_ev = event_new(bus->base, -1, 0, rpc_on_local, bus);
    if (!bus->local_ev)
        abort();
    bus->m_requests = dagi_metrics_counter(bus->metrics, "dagi_bus_requests_total",
                                           "Bus requests made, by outcome", call_labels);
    bus->m_duration = dagi_metrics_histogram(
        bus->metrics, "dagi_bus_request_duration_seconds", "Bus request duration, until done",
        subject_labels, dagi_metrics_latency_buckets, dagi_metrics_latency_buckets_n);
    bus->m_chunks = dagi_metrics_counter(bus->metrics, "dagi_bus_stream_chunks_total",
                                         "Streamed reply chunks received", subject_labels);
}

void dagi_bus_rpc_release(struct dagi_bus *bus)
{
    /* Calls: the responders are told, nobody is called back. */
    for (size_t i = 0; bus->calls.buckets && i <= bus->calls.mask; i++) {
        while (bus->calls.buckets[i]) {
            struct dagi_bus_call *call =
                container_of(bus->calls.buckets[i], struct dagi_bus_call, node);
            rpc_call_end(call);
            if (call->path == PATH_NATS)
                rpc_call_send_cancel(call);
            rpc_call_free(call);
        }
    }
    for (size_t i = 0; bus->reqs.buckets && i <= bus->reqs.mask; i++)
        while (bus->reqs.buckets[i])
            rpc_req_free(container_of(bus->reqs.buckets[i], struct dagi_bus_req, by_id));
    for (size_t i = 0; i < bus->serve_count; i++) {
        dagi_bus_nats_unsubscribe(bus->serves[i]->sub);
        free(bus->serves[i]->subject);
        free(bus->serves[i]);
    }
    free(bus->serves);
    for (struct bus_local_item *it = bus->local_head, *next; it; it = next) {
        next = it->next;
        json_decref(it->doc);
        free(it);
    }
    if (bus->local_ev)
        event_free(bus->local_ev);
    free(bus->calls.buckets);
    free(bus->reqs.buckets);
    free(bus->reqs_by_reply.buckets);
    dagi_buf_release(&bus->scratch);
}
