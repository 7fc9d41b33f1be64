/* Request/reply on the bus: serving, calling, streamed replies, cancellation
 * and deadlines, over NATS or in-process (bus.h has the wire protocol).
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
 *
 * Responder side, the cancel subscription and the deadline timer are set up
 * lazily, when the handler returns without having answered: most handlers
 * answer at once and then neither costs anything.  The deadline covers the
 * wait for the first response, as the caller's timeout_ms does; once a
 * responder streams, the caller's idle timeout takes over and reaches the
 * responder as a cancel.
 *
 * A request whose handler registered on_cancel (even NULL) is freed after a
 * cancel; one that never did is only marked, so a responder unaware of
 * cancellation gets DAGI_ECANCELED from its next call instead of a dangling
 * pointer, and its final call frees the request.
 */
#include "bus_internal.h"

#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"

#include <event2/event.h>
#include <event2/event_struct.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TIMEOUT_MS 30000u
#define MAX_ERROR_MESSAGE 1024

#define H_TRACE "Dagi-Trace-Id"
#define H_DEADLINE "Dagi-Deadline"
#define H_STREAM "Dagi-Stream"
#define H_KIND "Dagi-Kind"
#define H_SEQ "Dagi-Seq"
#define H_ERROR "Dagi-Error"

static const char KIND_CHUNK[] = "chunk", KIND_FINAL[] = "final", KIND_ERROR[] = "error";

enum path { PATH_INPROC, PATH_NATS };
static const char *const path_names[] = {"inproc", "nats"};

enum local_kind { L_DISPATCH, L_REQ_CANCEL, L_CHUNK, L_FINAL, L_ERROR };

/* One in-process delivery: to a request (by req id) or to a call (by call
 * id).  data holds the payload, or the NUL-terminated error message. */
struct bus_local_item {
    struct bus_local_item *next;
    uint64_t id, seq;
    int code;
    enum local_kind kind;
    size_t len;
    char data[];
};

struct bus_serve {
    char *subject;
    dagi_bus_handler_fn handler;
    void *ud;
    natsSubscription *sub;
};

struct dagi_bus_call {
    struct bus_hnode node; /* bus->calls, key = id */
    struct dagi_bus *bus;
    uint64_t id;
    uint64_t req_id; /* in-process: the responder's request */
    enum path path;
    void (*on_chunk)(struct dagi_bus_call *, uint64_t, const void *, size_t, void *);
    void (*on_done)(struct dagi_bus_call *, int, const void *, size_t, const char *, void *);
    void *ud;
    unsigned timeout_ms, idle_ms;
    uint64_t next_seq; /* chunks received so far */
    int64_t start_ns, last_ns;
    bool streaming;   /* a chunk arrived: the idle timeout applies */
    bool in_callback; /* inside on_chunk: a cancel defers the free */
    bool ended;       /* cancelled or finished: no callback runs again */
    struct event timer;
    char subject[];
};

struct dagi_bus_req {
    struct bus_hnode by_id;    /* bus->reqs */
    struct bus_hnode by_reply; /* bus->reqs_by_reply while cancel_sub is set */
    struct dagi_bus *bus;
    uint64_t id;
    uint64_t call_id; /* in-process: the caller */
    struct bus_serve *serve;
    natsSubscription *cancel_sub;
    uint64_t next_seq;
    int64_t deadline_ms;
    void (*on_cancel)(void *);
    void *on_cancel_ud;
    bool nats, stream;
    bool dispatched;        /* in-process: the handler has been called */
    bool in_handler;        /* answering inside the handler defers the free */
    bool in_cancel;         /* inside on_cancel: calls return ECANCELED */
    bool done;              /* answered; freed when the handler returns */
    bool cancelled;         /* the caller is gone: calls return ECANCELED */
    bool cancel_seen;       /* the cancel has been processed */
    bool cancel_registered; /* dagi_bus_req_on_cancel was called */
    bool sent;              /* something went to the caller */
    bool timer_armed;
    struct event timer;
    const char *trace_id;
    const void *data; /* in-process: the copied request (inline below) */
    size_t len;
    char *reply; /* NATS: the caller's inbox (inline below) */
    char inline_data[];
};

/* --- small helpers --- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static uint64_t hash_str(const char *s, size_t n)
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

static void ht_insert(struct bus_htable *t, struct bus_hnode *e, uint64_t key)
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
static struct bus_hnode *ht_find(const struct bus_htable *t, uint64_t key, struct bus_hnode *from)
{
    struct bus_hnode *x = from ? from->next : t->buckets[mix64(key) & t->mask];
    for (; x; x = x->next)
        if (x->key == key)
            return x;
    return NULL;
}

static void ht_remove(struct bus_htable *t, struct bus_hnode *e)
{
    for (struct bus_hnode **p = &t->buckets[mix64(e->key) & t->mask]; *p; p = &(*p)->next) {
        if (*p == e) {
            *p = e->next;
            t->count--;
            return;
        }
    }
}

#define container_of(p, type, member) ((type *)(void *)((char *)(p)-offsetof(type, member)))

/* Decimal without printf: this is on every message. */
static char *u64_dec(uint64_t v, char buf[24])
{
    char *p = buf + 23;
    *p = '\0';
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return p;
}

static bool parse_u64(const char *s, uint64_t *out)
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

static const char *header(natsMsg *m, const char *key)
{
    const char *v = NULL;
    return natsMsgHeader_Get(m, key, &v) == NATS_OK && v ? v : NULL;
}

static void arm_timer(struct event *ev, int64_t ms)
{
    if (ms < 0)
        ms = 0;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(ev, &tv);
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

/* --- local (in-process) queue --- */

static void local_push(struct dagi_bus *bus, enum local_kind kind, uint64_t id, uint64_t seq,
                       int code, const void *data, size_t len)
{
    struct bus_local_item *it = dagi_xmalloc(sizeof(*it) + len + 1);
    it->next = NULL;
    it->id = id;
    it->seq = seq;
    it->code = code;
    it->kind = kind;
    it->len = len;
    if (len)
        memcpy(it->data, data, len);
    it->data[len] = '\0';
    if (bus->local_tail) {
        bus->local_tail->next = it;
    } else {
        bus->local_head = it;
        event_active(bus->local_ev, EV_TIMEOUT, 0);
    }
    bus->local_tail = it;
}

/* --- calls (caller side) --- */

enum result { R_OK, R_ERROR, R_TIMEOUT, R_UNAVAIL, R_CANCELLED };
static const char *const result_names[] = {"ok", "error", "timeout", "unavailable", "cancelled"};

static void count_call(struct dagi_bus *bus, const char *subject, enum path path, enum result r,
                       int64_t start_ns, uint64_t chunks)
{
    const char *labels[] = {subject, path_names[path], result_names[r]};
    const char *subject_label[] = {subject};
    dagi_metric_inc(bus->m_requests, labels);
    /* Chunks are counted once per call, not per chunk: one registry lookup
     * instead of a thousand on a long stream. */
    if (chunks)
        dagi_metric_add(bus->m_chunks, subject_label, (double)chunks);
    if (r != R_CANCELLED && start_ns)
        dagi_metric_observe(bus->m_duration, subject_label,
                            (double)(dagi_clock_mono_ns() - start_ns) / 1e9);
}

static void call_free(struct dagi_bus_call *call)
{
    free(call);
}

/* Takes the call out of reach of everything queued. */
static void call_end(struct dagi_bus_call *call)
{
    call->ended = true;
    ht_remove(&call->bus->calls, &call->node);
    event_del(&call->timer);
}

static void req_cancel_inproc(struct dagi_bus *bus, uint64_t req_id);

/* Tells the responder to stop (the caller cancelled or timed out). */
static void call_send_cancel(struct dagi_bus_call *call)
{
    struct dagi_bus *bus = call->bus;
    if (call->path == PATH_INPROC) {
        req_cancel_inproc(bus, call->req_id);
        return;
    }
    char subject[sizeof(bus->reply_prefix) + 32], num[24];
    size_t n = bus->reply_prefix_len;
    memcpy(subject, bus->reply_prefix, n);
    subject[n++] = '.';
    const char *d = u64_dec(call->id, num);
    size_t dl = strlen(d);
    memcpy(subject + n, d, dl);
    memcpy(subject + n + dl, ".cancel", sizeof(".cancel"));
    if (natsConnection_Publish(bus->nc, subject, NULL, 0) == NATS_OK)
        dagi_bus_nats_flush_now(bus);
}

static enum result result_of(int err)
{
    switch (err) {
    case DAGI_OK:
        return R_OK;
    case DAGI_ETIMEDOUT:
        return R_TIMEOUT;
    case DAGI_EUNAVAIL:
        return R_UNAVAIL;
    default:
        return R_ERROR;
    }
}

static void call_finish(struct dagi_bus_call *call, int err, const void *data, size_t len,
                        const char *message)
{
    call_end(call);
    count_call(call->bus, call->subject, call->path, result_of(err), call->start_ns,
               call->next_seq);
    call->in_callback = true; /* a cancel from on_done is a no-op */
    call->on_done(call, err, data, len, err ? (message ? message : dagi_strerror(err)) : NULL,
                  call->ud);
    call_free(call);
}

static void call_fail(struct dagi_bus_call *call, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void call_fail(struct dagi_bus_call *call, int err, const char *fmt, ...)
{
    char message[MAX_ERROR_MESSAGE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    call_finish(call, err, NULL, 0, message);
}

static void on_call_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct dagi_bus_call *call = arg;
    if (call->streaming) {
        /* Chunks only stamp last_ns; the timer is moved here, lazily. */
        int64_t idle_ns = (int64_t)call->idle_ms * 1000000;
        int64_t quiet_ns = dagi_clock_mono_ns() - call->last_ns;
        if (quiet_ns < idle_ns) {
            arm_timer(&call->timer, (idle_ns - quiet_ns + 999999) / 1000000);
            return;
        }
    }
    call_send_cancel(call);
    if (call->streaming)
        call_fail(call, DAGI_ETIMEDOUT, "stream from %s idle for %u ms", call->subject,
                  call->idle_ms);
    else
        call_fail(call, DAGI_ETIMEDOUT, "no reply from %s within %u ms", call->subject,
                  call->timeout_ms);
}

static void call_chunk(struct dagi_bus_call *call, uint64_t seq, const void *data, size_t len)
{
    if (!call->on_chunk) {
        call_send_cancel(call);
        call_fail(call, DAGI_EPARSE, "%s streamed a reply that was not asked for", call->subject);
        return;
    }
    if (seq != call->next_seq) {
        call_send_cancel(call);
        call_fail(call, DAGI_EPARSE, "chunk out of order from %s: got %llu, expected %llu",
                  call->subject, (unsigned long long)seq, (unsigned long long)call->next_seq);
        return;
    }
    call->next_seq++;
    call->last_ns = dagi_clock_mono_ns();
    if (!call->streaming) {
        call->streaming = true;
        arm_timer(&call->timer, call->idle_ms);
    }
    call->in_callback = true;
    call->on_chunk(call, seq, data, len, call->ud);
    call->in_callback = false;
    if (call->ended)
        call_free(call); /* cancelled from on_chunk */
}

static void call_final(struct dagi_bus_call *call, uint64_t seq, const void *data, size_t len)
{
    if (seq != call->next_seq)
        call_fail(call, DAGI_EPARSE, "chunk out of order from %s: final after %llu of %llu chunks",
                  call->subject, (unsigned long long)call->next_seq, (unsigned long long)seq);
    else
        call_finish(call, DAGI_OK, data, len, NULL);
}

static struct dagi_bus_call *call_lookup(struct dagi_bus *bus, uint64_t id)
{
    struct bus_hnode *n = ht_find(&bus->calls, id, NULL);
    return n ? container_of(n, struct dagi_bus_call, node) : NULL;
}

static struct bus_serve *serve_find(struct dagi_bus *bus, const char *subject, size_t *pos)
{
    size_t lo = 0, hi = bus->serve_count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(bus->serves[mid]->subject, subject);
        if (c == 0) {
            if (pos)
                *pos = mid;
            return bus->serves[mid];
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (pos)
        *pos = lo;
    return NULL;
}

static bool valid_subject(const char *s)
{
    if (!s || !*s || *s == '.')
        return false;
    for (const char *p = s; *p; p++)
        if (*p == '*' || *p == '>' || *p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' ||
            (*p == '.' && (p[1] == '.' || p[1] == '\0')))
            return false;
    return true;
}

static struct dagi_bus_req *req_new(struct dagi_bus *bus, size_t extra)
{
    struct dagi_bus_req *req = dagi_xcalloc(1, sizeof(*req) + extra);
    req->bus = bus;
    req->id = ++bus->next_req_id;
    ht_insert(&bus->reqs, &req->by_id, req->id);
    return req;
}

static int request_nats(struct dagi_bus *bus, struct dagi_bus_call *call,
                        const struct dagi_bus_call_opts *opts)
{
    char reply[sizeof(bus->reply_prefix) + 24], num[24], dl[24];
    size_t n = bus->reply_prefix_len;
    memcpy(reply, bus->reply_prefix, n);
    reply[n++] = '.';
    strcpy(reply + n, u64_dec(call->id, num));
    natsMsg *m = NULL;
    natsStatus s = natsMsg_Create(&m, opts->subject, reply, opts->data, (int)opts->len);
    if (s == NATS_OK && opts->trace_id && *opts->trace_id)
        s = natsMsgHeader_Set(m, H_TRACE, opts->trace_id);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, H_DEADLINE,
                              u64_dec((uint64_t)(dagi_clock_now_ms() + call->timeout_ms), dl));
    if (s == NATS_OK && opts->on_chunk)
        s = natsMsgHeader_Set(m, H_STREAM, "1");
    if (s == NATS_OK)
        s = natsConnection_PublishMsg(bus->nc, m);
    natsMsg_Destroy(m);
    if (s == NATS_OK)
        dagi_bus_nats_flush_now(bus);
    return dagi_bus_nats_err(s);
}

int dagi_bus_request(struct dagi_bus *bus, const struct dagi_bus_call_opts *opts,
                     struct dagi_bus_call **out)
{
    if (!valid_subject(opts->subject) || !opts->on_done || (opts->len && !opts->data))
        return DAGI_EINVAL;
    struct bus_serve *local = bus->inprocess ? serve_find(bus, opts->subject, NULL) : NULL;
    enum path path = local || !bus->nc ? PATH_INPROC : PATH_NATS;
    if (opts->len > bus->max_payload) {
        count_call(bus, opts->subject, path, R_ERROR, 0, 0);
        return DAGI_ETOOBIG;
    }

    size_t slen = strlen(opts->subject);
    struct dagi_bus_call *call = dagi_xmalloc(sizeof(*call) + slen + 1);
    memset(call, 0, sizeof(*call));
    memcpy(call->subject, opts->subject, slen + 1);
    call->bus = bus;
    call->id = ++bus->next_call_id;
    call->path = path;
    call->on_chunk = opts->on_chunk;
    call->on_done = opts->on_done;
    call->ud = opts->ud;
    call->timeout_ms = opts->timeout_ms ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
    call->idle_ms = opts->idle_timeout_ms ? opts->idle_timeout_ms : call->timeout_ms;
    call->start_ns = dagi_clock_mono_ns();
    evtimer_assign(&call->timer, bus->base, on_call_timer, call);
    ht_insert(&bus->calls, &call->node, call->id);
    arm_timer(&call->timer, call->timeout_ms);

    if (local) {
        /* The one copy of the request: the caller's buffer is valid only
         * during this call. */
        const char *trace = opts->trace_id ? opts->trace_id : "";
        size_t tlen = strlen(trace);
        struct dagi_bus_req *req = req_new(bus, opts->len + tlen + 1);
        memcpy(req->inline_data, trace, tlen + 1);
        req->trace_id = req->inline_data;
        if (opts->len)
            memcpy(req->inline_data + tlen + 1, opts->data, opts->len);
        req->data = req->inline_data + tlen + 1;
        req->len = opts->len;
        req->call_id = call->id;
        req->serve = local;
        req->stream = opts->on_chunk != NULL;
        req->deadline_ms = dagi_clock_now_ms() + call->timeout_ms;
        call->req_id = req->id;
        local_push(bus, L_DISPATCH, req->id, 0, 0, NULL, 0);
    } else if (!bus->nc) {
        char message[300];
        int n = snprintf(message, sizeof(message), "no responder for %s", opts->subject);
        local_push(bus, L_ERROR, call->id, 0, DAGI_EUNAVAIL, message, (size_t)n);
    } else {
        int rc = request_nats(bus, call, opts);
        if (rc) {
            /* Reported like any other outcome: through on_done, later. */
            const char *message = rc == DAGI_ETOOBIG ? "request over the server's payload limit"
                                                     : "NATS is not available";
            local_push(bus, L_ERROR, call->id, 0, rc, message, strlen(message));
        }
    }
    *out = call;
    return DAGI_OK;
}

void dagi_bus_call_cancel(struct dagi_bus_call *call)
{
    if (!call || call->ended)
        return;
    call_end(call);
    count_call(call->bus, call->subject, call->path, R_CANCELLED, 0, call->next_seq);
    call_send_cancel(call);
    if (!call->in_callback)
        call_free(call);
}

/* --- requests (responder side) --- */

static void req_free(struct dagi_bus_req *req)
{
    struct dagi_bus *bus = req->bus;
    ht_remove(&bus->reqs, &req->by_id);
    if (req->cancel_sub) {
        ht_remove(&bus->reqs_by_reply, &req->by_reply);
        dagi_bus_nats_unsubscribe(req->cancel_sub);
    }
    if (req->timer_armed)
        event_del(&req->timer);
    free(req);
}

/* The request is answered: free it now, or when the handler returns. */
static void req_finish(struct dagi_bus_req *req)
{
    req->done = true;
    if (!req->in_handler && !req->in_cancel)
        req_free(req);
}

static void req_drop_watch(struct dagi_bus_req *req)
{
    if (req->timer_armed) {
        event_del(&req->timer);
        req->timer_armed = false;
    }
    if (req->cancel_sub) {
        ht_remove(&req->bus->reqs_by_reply, &req->by_reply);
        dagi_bus_nats_unsubscribe(req->cancel_sub);
        req->cancel_sub = NULL;
    }
}

/* The caller is gone (cancel message, in-process cancel, or deadline). */
static void req_cancel(struct dagi_bus_req *req)
{
    if (req->done || req->in_cancel || req->cancel_seen)
        return;
    req->cancelled = true;
    req->cancel_seen = true;
    req_drop_watch(req);
    if (req->in_handler || !req->cancel_registered)
        return; /* see the top of the file */
    if (req->on_cancel) {
        req->in_cancel = true;
        req->on_cancel(req->on_cancel_ud);
    }
    req_free(req);
}

static struct dagi_bus_req *req_lookup(struct dagi_bus *bus, uint64_t id)
{
    struct bus_hnode *n = ht_find(&bus->reqs, id, NULL);
    return n ? container_of(n, struct dagi_bus_req, by_id) : NULL;
}

static void req_cancel_inproc(struct dagi_bus *bus, uint64_t req_id)
{
    struct dagi_bus_req *req = req_lookup(bus, req_id);
    if (!req || req->done)
        return;
    if (!req->dispatched) {
        req_free(req); /* the handler never saw it */
        return;
    }
    /* Stop the responder's calls at once; on_cancel runs from the queue,
     * never inside the caller's own callback. */
    req->cancelled = true;
    local_push(bus, L_REQ_CANCEL, req_id, 0, 0, NULL, 0);
}

static void on_req_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct dagi_bus_req *req = arg;
    req->timer_armed = false;
    req_cancel(req);
}

/* After the handler returned without answering: watch for the caller
 * going away. */
static void req_watch(struct dagi_bus_req *req)
{
    struct dagi_bus *bus = req->bus;
    if (req->nats && !req->cancel_sub) {
        size_t n = strlen(req->reply);
        char subject[512];
        if (n + sizeof(".cancel") <= sizeof(subject)) {
            memcpy(subject, req->reply, n);
            memcpy(subject + n, ".cancel", sizeof(".cancel"));
            if (dagi_bus_nats_subscribe(bus, subject, NULL, BUS_MSG_CANCEL, &req->cancel_sub) ==
                DAGI_OK)
                ht_insert(&bus->reqs_by_reply, &req->by_reply, hash_str(req->reply, n));
        }
    }
    if (req->deadline_ms && !req->sent && !req->timer_armed) {
        evtimer_assign(&req->timer, bus->base, on_req_deadline, req);
        arm_timer(&req->timer, req->deadline_ms - dagi_clock_now_ms());
        req->timer_armed = true;
    }
}

static void req_run_handler(struct dagi_bus_req *req, const struct dagi_bus_msg *msg)
{
    req->dispatched = true;
    req->in_handler = true;
    req->serve->handler(req, msg, req->serve->ud);
    req->in_handler = false;
    if (req->done) {
        req_free(req);
    } else if (req->cancel_seen) {
        req->cancel_seen = false; /* arrived during the handler: deliver now */
        req_cancel(req);
    } else {
        req_watch(req);
    }
}

void dagi_bus_req_on_cancel(struct dagi_bus_req *req, void (*on_cancel)(void *ud), void *ud)
{
    req->on_cancel = on_cancel;
    req->on_cancel_ud = ud;
    bool was = req->cancel_registered;
    req->cancel_registered = true;
    /* Cancelled before anyone listened: tell the new listener, later. */
    if (!was && req->cancel_seen && !req->in_handler && !req->done) {
        req->cancel_seen = false;
        local_push(req->bus, L_REQ_CANCEL, req->id, 0, 0, NULL, 0);
    }
}

static int nats_send(struct dagi_bus *bus, const char *subject, const char *kind, uint64_t seq,
                     const char *err_name, const void *data, size_t len)
{
    char num[24];
    natsMsg *m = NULL;
    natsStatus s = natsMsg_Create(&m, subject, NULL, data, (int)len);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, H_KIND, kind);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, H_SEQ, u64_dec(seq, num));
    if (s == NATS_OK && err_name)
        s = natsMsgHeader_Set(m, H_ERROR, err_name);
    if (s == NATS_OK)
        s = natsConnection_PublishMsg(bus->nc, m);
    natsMsg_Destroy(m);
    /* Chunks batch up until the loop turn ends; the end of an exchange goes
     * out at once. */
    if (s == NATS_OK && kind != KIND_CHUNK)
        dagi_bus_nats_flush_now(bus);
    return dagi_bus_nats_err(s);
}

static int send_error(struct dagi_bus *bus, struct dagi_bus_req *req, const char *reply, int code,
                      const char *message)
{
    if (code >= 0)
        code = DAGI_EINTERNAL;
    if (req && !req->nats) {
        local_push(bus, L_ERROR, req->call_id, 0, code, message, strlen(message));
        return DAGI_OK;
    }
    struct dagi_buf *b = &bus->scratch;
    dagi_buf_reset(b);
    dagi_buf_append_str(b, "{\"error\":{\"code\":\"");
    dagi_buf_append_str(b, dagi_bus_err_name(code));
    dagi_buf_append_str(b, "\",\"message\":\"");
    dagi_buf_append_json_escaped(b, message, strlen(message));
    dagi_buf_append_str(b, "\"}}");
    return nats_send(bus, reply, KIND_ERROR, req ? req->next_seq : 0, dagi_bus_err_name(code),
                     b->data, b->len);
}

/* Common checks and the send of chunk / final. */
static int req_send(struct dagi_bus_req *req, bool final, const void *data, size_t len)
{
    struct dagi_bus *bus = req->bus;
    if (req->done)
        return DAGI_EINVAL;
    if (req->cancelled || req->in_cancel) {
        if (final)
            req_finish(req);
        return DAGI_ECANCELED;
    }
    if (!final && !req->stream)
        return DAGI_EINVAL;
    int rc = DAGI_OK;
    if (len > bus->max_payload) {
        rc = DAGI_ETOOBIG;
        if (final) /* the caller still hears how it ended */
            send_error(bus, req, req->reply, DAGI_ETOOBIG, "reply over the payload cap");
        goto out;
    }
    if (!req->sent && req->timer_armed) {
        event_del(&req->timer); /* the first response met the deadline */
        req->timer_armed = false;
    }
    req->sent = true;
    uint64_t seq = final ? req->next_seq : req->next_seq++;
    if (req->nats)
        rc = nats_send(bus, req->reply, final ? KIND_FINAL : KIND_CHUNK, seq, NULL, data, len);
    else
        local_push(bus, final ? L_FINAL : L_CHUNK, req->call_id, seq, 0, data, len);
out:
    if (final)
        req_finish(req);
    return rc;
}

int dagi_bus_reply(struct dagi_bus_req *req, const void *data, size_t len)
{
    return req_send(req, true, data, len);
}

int dagi_bus_stream_chunk(struct dagi_bus_req *req, const void *data, size_t len)
{
    return req_send(req, false, data, len);
}

int dagi_bus_stream_end(struct dagi_bus_req *req, const void *data, size_t len)
{
    return req_send(req, true, data, len);
}

int dagi_bus_reply_error(struct dagi_bus_req *req, int code, const char *fmt, ...)
{
    if (req->done)
        return DAGI_EINVAL;
    if (req->cancelled || req->in_cancel) {
        req_finish(req);
        return DAGI_ECANCELED;
    }
    char message[MAX_ERROR_MESSAGE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    req->sent = true;
    int rc = send_error(req->bus, req, req->reply, code, message);
    req_finish(req);
    return rc;
}

/* --- serving --- */

int dagi_bus_serve(struct dagi_bus *bus, const char *subject, dagi_bus_handler_fn handler, void *ud)
{
    size_t pos;
    if (!valid_subject(subject) || !handler)
        return DAGI_EINVAL;
    if (serve_find(bus, subject, &pos))
        return DAGI_EEXIST;
    struct bus_serve *sv = dagi_xcalloc(1, sizeof(*sv));
    sv->subject = dagi_xstrdup(subject);
    sv->handler = handler;
    sv->ud = ud;
    if (bus->nc) {
        /* Queue group = the subject: each request reaches one server. */
        int rc = dagi_bus_nats_subscribe(bus, subject, subject, BUS_MSG_REQUEST, &sv->sub);
        if (rc) {
            free(sv->subject);
            free(sv);
            return rc;
        }
    }
    if (bus->serve_count == bus->serve_alloc) {
        bus->serve_alloc = bus->serve_alloc ? bus->serve_alloc * 2 : 8;
        bus->serves = dagi_xrealloc(bus->serves, bus->serve_alloc * sizeof(*bus->serves));
    }
    memmove(bus->serves + pos + 1, bus->serves + pos,
            (bus->serve_count - pos) * sizeof(*bus->serves));
    bus->serves[pos] = sv;
    bus->serve_count++;
    return DAGI_OK;
}

/* --- deliveries --- */

static void deliver_request(struct dagi_bus *bus, natsMsg *m)
{
    const char *subject = natsMsg_GetSubject(m);
    const char *reply = natsMsg_GetReply(m);
    struct bus_serve *sv = serve_find(bus, subject, NULL);
    if (!sv)
        return;
    if (!reply || !*reply) {
        dagi_log_debug(header(m, H_TRACE), "bus: request without a reply subject; not answered",
                       "subject", subject);
        return;
    }
    size_t len = (size_t)natsMsg_GetDataLength(m);
    if (len > bus->max_payload) {
        send_error(bus, NULL, reply, DAGI_ETOOBIG, "request over the payload cap");
        return;
    }
    uint64_t deadline = 0;
    parse_u64(header(m, H_DEADLINE), &deadline);
    int64_t now = dagi_clock_now_ms();
    if (deadline && (int64_t)deadline <= now) {
        /* Stale work is shed.  The answer is for a caller whose clock runs
         * ahead of ours (a live caller would have timed out already and
         * drops it): it learns why at once instead of at its timeout. */
        char message[160];
        snprintf(message, sizeof(message), "request expired on arrival (%lld ms late)",
                 (long long)(now - (int64_t)deadline));
        send_error(bus, NULL, reply, DAGI_ETIMEDOUT, message);
        return;
    }
    const char *trace = header(m, H_TRACE);
    const char *stream = header(m, H_STREAM);
    size_t rlen = strlen(reply);
    struct dagi_bus_req *req = req_new(bus, rlen + 1);
    memcpy(req->inline_data, reply, rlen + 1);
    req->reply = req->inline_data;
    req->nats = true;
    req->serve = sv;
    req->stream = stream && strcmp(stream, "1") == 0;
    req->deadline_ms = (int64_t)deadline;
    struct dagi_bus_msg msg = {
        .subject = sv->subject,
        .data = natsMsg_GetData(m),
        .len = len,
        .trace_id = trace ? trace : "",
        .deadline_ms = req->deadline_ms,
        .stream = req->stream,
    };
    req_run_handler(req, &msg);
}

static void deliver_reply(struct dagi_bus *bus, natsMsg *m)
{
    const char *subject = natsMsg_GetSubject(m);
    uint64_t id, seq = 0;
    size_t n = bus->reply_prefix_len;
    if (strncmp(subject, bus->reply_prefix, n) != 0 || subject[n] != '.' ||
        !parse_u64(subject + n + 1, &id))
        return;
    struct dagi_bus_call *call = call_lookup(bus, id);
    if (!call)
        return; /* cancelled or finished: a late message */
    if (natsMsg_IsNoResponders(m)) {
        call_fail(call, DAGI_EUNAVAIL, "no responder for %s", call->subject);
        return;
    }
    const void *data = natsMsg_GetData(m);
    size_t len = (size_t)natsMsg_GetDataLength(m);
    if (len > bus->max_payload) {
        call_send_cancel(call);
        call_fail(call, DAGI_ETOOBIG, "reply from %s over the payload cap", call->subject);
        return;
    }
    const char *kind = header(m, H_KIND);
    const char *seq_text = header(m, H_SEQ);
    if (seq_text && !parse_u64(seq_text, &seq)) {
        call_fail(call, DAGI_EPARSE, "bad %s from %s", H_SEQ, call->subject);
        return;
    }
    if (!kind || strcmp(kind, KIND_FINAL) == 0) {
        /* No Dagi-Kind: a plain NATS responder's answer. */
        call_final(call, seq_text ? seq : call->next_seq, data, len);
    } else if (strcmp(kind, KIND_CHUNK) == 0) {
        call_chunk(call, seq, data, len);
    } else if (strcmp(kind, KIND_ERROR) == 0) {
        int code = dagi_bus_err_from_name(header(m, H_ERROR));
        json_t *doc = json_loadb(data, len, 0, NULL);
        const char *message =
            json_string_value(json_object_get(json_object_get(doc, "error"), "message"));
        if (code == DAGI_OK)
            code = DAGI_EINTERNAL;
        call_finish(call, code, NULL, 0, message ? message : dagi_strerror(code));
        json_decref(doc);
    } else {
        call_fail(call, DAGI_EPARSE, "unknown %s '%s' from %s", H_KIND, kind, call->subject);
    }
}

static void deliver_cancel(struct dagi_bus *bus, natsMsg *m)
{
    const char *subject = natsMsg_GetSubject(m);
    size_t n = strlen(subject), suffix = sizeof(".cancel") - 1;
    if (n <= suffix)
        return;
    n -= suffix;
    uint64_t key = hash_str(subject, n);
    for (struct bus_hnode *x = ht_find(&bus->reqs_by_reply, key, NULL); x;
         x = ht_find(&bus->reqs_by_reply, key, x)) {
        struct dagi_bus_req *req = container_of(x, struct dagi_bus_req, by_reply);
        if (strncmp(req->reply, subject, n) == 0 && req->reply[n] == '\0') {
            req_cancel(req);
            return;
        }
    }
}

void dagi_bus_rpc_deliver(struct dagi_bus *bus, enum bus_msg_kind kind, natsMsg *msg)
{
    switch (kind) {
    case BUS_MSG_REQUEST:
        deliver_request(bus, msg);
        break;
    case BUS_MSG_REPLY:
        deliver_reply(bus, msg);
        break;
    case BUS_MSG_CANCEL:
        deliver_cancel(bus, msg);
        break;
    }
    natsMsg_Destroy(msg);
}

static void deliver_local(struct dagi_bus *bus, struct bus_local_item *it)
{
    if (it->kind == L_DISPATCH || it->kind == L_REQ_CANCEL) {
        struct dagi_bus_req *req = req_lookup(bus, it->id);
        if (!req)
            return;
        if (it->kind == L_REQ_CANCEL) {
            req->cancel_seen = false;
            req_cancel(req);
            return;
        }
        struct dagi_bus_msg msg = {
            .subject = req->serve->subject,
            .data = req->data,
            .len = req->len,
            .trace_id = req->trace_id,
            .deadline_ms = req->deadline_ms,
            .stream = req->stream,
        };
        req_run_handler(req, &msg);
        return;
    }
    struct dagi_bus_call *call = call_lookup(bus, it->id);
    if (!call)
        return;
    if (it->kind == L_CHUNK)
        call_chunk(call, it->seq, it->data, it->len);
    else if (it->kind == L_FINAL)
        call_final(call, it->seq, it->data, it->len);
    else
        call_finish(call, it->code, NULL, 0, it->data);
}

/* Takes what is queued now; what the callbacks queue meanwhile waits for
 * the next activation, so a ping-pong cannot starve the loop. */
static void on_local(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct dagi_bus *bus = arg;
    struct bus_local_item *it = bus->local_head;
    bus->local_head = bus->local_tail = NULL;
    while (it) {
        struct bus_local_item *next = it->next;
        deliver_local(bus, it);
        free(it);
        it = next;
    }
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
    bus->local_ev = event_new(bus->base, -1, 0, on_local, bus);
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
            call_end(call);
            if (call->path == PATH_NATS)
                call_send_cancel(call);
            call_free(call);
        }
    }
    for (size_t i = 0; bus->reqs.buckets && i <= bus->reqs.mask; i++)
        while (bus->reqs.buckets[i])
            req_free(container_of(bus->reqs.buckets[i], struct dagi_bus_req, by_id));
    for (size_t i = 0; i < bus->serve_count; i++) {
        dagi_bus_nats_unsubscribe(bus->serves[i]->sub);
        free(bus->serves[i]->subject);
        free(bus->serves[i]);
    }
    free(bus->serves);
    for (struct bus_local_item *it = bus->local_head, *next; it; it = next) {
        next = it->next;
        free(it);
    }
    if (bus->local_ev)
        event_free(bus->local_ev);
    free(bus->calls.buckets);
    free(bus->reqs.buckets);
    free(bus->reqs_by_reply.buckets);
    dagi_buf_release(&bus->scratch);
}
