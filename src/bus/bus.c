/* The bus connection: NATS options, the libevent adapter, reconnects, and
 * the one place where messages cross from libnats threads to the loop.
 * Request/reply itself lives in rpc*.c. */
#include "bus_internal.h"

#include "core/log.h"
#include "core/loopq.h"
#include "core/mem.h"
#include "core/metrics.h"

/* Defines non-static functions: this is the one file that includes it. */
#include <nats/adapters/libevent.h>

#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_PAYLOAD (8u << 20)
#define DEFAULT_RECONNECT_WAIT_MS 100u
#define MAX_RECONNECT_WAIT_MS 5000
#define DEFAULT_RECONNECT_BUFFER (8u << 20)
/* Messages parked for the loop.  Past this the loop is hopelessly behind;
 * dropping makes the affected calls fail (a gap in a stream, a timeout)
 * instead of letting memory grow without bound.  libnats' own per
 * subscription limit no longer applies once a message is handed over. */
#define RING_CAP 65536
#define DRAIN_BATCH 64

static pthread_once_t adapter_once = PTHREAD_ONCE_INIT;

static void adapter_init(void)
{
    natsLibevent_Init();
}

/* --- the shared half (libnats threads) --- */

static void shared_release(struct bus_shared *sh)
{
    if (atomic_fetch_sub(&sh->refs, 1) != 1)
        return;
    for (size_t i = 0; i < sh->ring_count; i++)
        natsMsg_Destroy(sh->ring[(sh->ring_head + i) % sh->ring_alloc].msg);
    free(sh->ring);
    pthread_mutex_destroy(&sh->lock);
    free(sh);
}

static void on_drain(void *ud, bool cancelled);

/* Called with sh->lock held.  The loopq is pushed under the lock so that
 * dagi_bus_free (which sets dead under the same lock) cannot return, and the
 * node free the loopq, between our decision and the push. */
static void schedule_locked(struct bus_shared *sh)
{
    sh->scheduled = true;
    atomic_fetch_add(&sh->refs, 1);
    dagi_loopq_push(sh->loopq, on_drain, sh);
}

static void enqueue(struct bus_shared *sh, enum bus_msg_kind kind, natsMsg *msg)
{
    pthread_mutex_lock(&sh->lock);
    if (sh->dead || sh->ring_count >= RING_CAP) {
        bool report = !sh->dead && (sh->dropped++ & 1023) == 0;
        pthread_mutex_unlock(&sh->lock);
        natsMsg_Destroy(msg);
        if (report)
            dagi_log_warn(NULL, "bus: loop too far behind, dropping NATS messages");
        return;
    }
    if (sh->ring_count == sh->ring_alloc) {
        size_t n = sh->ring_alloc ? sh->ring_alloc * 2 : 64;
        struct bus_inmsg *r = dagi_xmalloc(n * sizeof(*r));
        for (size_t i = 0; i < sh->ring_count; i++)
            r[i] = sh->ring[(sh->ring_head + i) % sh->ring_alloc];
        free(sh->ring);
        sh->ring = r;
        sh->ring_alloc = n;
        sh->ring_head = 0;
    }
    sh->ring[(sh->ring_head + sh->ring_count) % sh->ring_alloc] =
        (struct bus_inmsg){.msg = msg, .kind = kind};
    sh->ring_count++;
    if (!sh->scheduled)
        schedule_locked(sh);
    pthread_mutex_unlock(&sh->lock);
}

/* On the loop.  Runs a bounded batch, then yields to the loop (timers, I/O)
 * by queueing itself again if more is waiting. */
static void on_drain(void *ud, bool cancelled)
{
    struct bus_shared *sh = ud;
    for (int n = 0;; n++) {
        pthread_mutex_lock(&sh->lock);
        if (sh->dead || cancelled || sh->ring_count == 0) {
            sh->scheduled = false;
            pthread_mutex_unlock(&sh->lock);
            break;
        }
        if (n == DRAIN_BATCH) {
            dagi_loopq_push(sh->loopq, on_drain, sh); /* keeps our reference */
            pthread_mutex_unlock(&sh->lock);
            return;
        }
        struct bus_inmsg m = sh->ring[sh->ring_head];
        sh->ring_head = (sh->ring_head + 1) % sh->ring_alloc;
        sh->ring_count--;
        struct dagi_bus *bus = sh->bus;
        pthread_mutex_unlock(&sh->lock);
        /* May free the bus; dead is then set and the next turn stops. */
        dagi_bus_rpc_deliver(bus, m.kind, m.msg);
    }
    shared_release(sh);
}

static void on_request_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc, (void)sub;
    enqueue(closure, BUS_MSG_REQUEST, msg);
}

static void on_reply_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc, (void)sub;
    enqueue(closure, BUS_MSG_REPLY, msg);
}

static void on_cancel_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc, (void)sub;
    enqueue(closure, BUS_MSG_CANCEL, msg);
}

static void on_sub_complete(void *closure)
{
    shared_release(closure);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    struct bus_shared *sh = closure;
    atomic_store(&sh->connected, false);
    pthread_mutex_lock(&sh->lock);
    if (!sh->dead) {
        dagi_metric_set(sh->m_connected, NULL, 0);
        dagi_log_warn(NULL, "bus: NATS disconnected; reconnecting");
    }
    pthread_mutex_unlock(&sh->lock);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    struct bus_shared *sh = closure;
    char url[256] = "";
    natsConnection_GetConnectedUrl(nc, url, sizeof(url));
    atomic_store(&sh->connected, true);
    pthread_mutex_lock(&sh->lock);
    if (!sh->dead) {
        dagi_metric_inc(sh->m_reconnects, NULL);
        dagi_metric_set(sh->m_connected, NULL, 1);
        dagi_log_info(NULL, "bus: NATS reconnected", "url", url);
    }
    pthread_mutex_unlock(&sh->lock);
}

/* The last connection callback libnats makes (they run in order on its
 * callback thread). */
static void on_closed(natsConnection *nc, void *closure)
{
    (void)nc;
    shared_release(closure);
}

static void on_async_error(natsConnection *nc, natsSubscription *sub, natsStatus s, void *closure)
{
    (void)nc, (void)sub, (void)closure;
    dagi_log_warn(NULL, "bus: NATS asynchronous error", "error", natsStatus_GetText(s));
}

/* Doubles from reconnect_wait_ms (passed as the closure, so this needs no
 * object that could be gone) up to 5 s.  attempts counts passes over the
 * server list, from 1. */
static int64_t on_reconnect_delay(natsConnection *nc, int attempts, void *closure)
{
    (void)nc;
    int64_t delay = (int64_t)(uintptr_t)closure;
    for (int i = 1; i < attempts && delay < MAX_RECONNECT_WAIT_MS; i++)
        delay *= 2;
    return delay < MAX_RECONNECT_WAIT_MS ? delay : MAX_RECONNECT_WAIT_MS;
}

/* --- subscriptions --- */

int dagi_bus_nats_err(natsStatus s)
{
    switch (s) {
    case NATS_OK:
        return DAGI_OK;
    case NATS_MAX_PAYLOAD:
        return DAGI_ETOOBIG;
    case NATS_INVALID_ARG:
    case NATS_INVALID_SUBJECT:
        return DAGI_EINVAL;
    case NATS_NO_MEMORY:
        return DAGI_ENOMEM;
    case NATS_TIMEOUT:
        return DAGI_ETIMEDOUT;
    default: /* closed, not connected, reconnect buffer full, I/O */
        return DAGI_EUNAVAIL;
    }
}

int dagi_bus_nats_subscribe(struct dagi_bus *bus, const char *subject, const char *queue,
                            enum bus_msg_kind kind, natsSubscription **out)
{
    static const natsMsgHandler handlers[] = {
        [BUS_MSG_REQUEST] = on_request_msg,
        [BUS_MSG_REPLY] = on_reply_msg,
        [BUS_MSG_CANCEL] = on_cancel_msg,
    };
    natsSubscription *sub = NULL;
    natsStatus s;
    if (queue)
        s = natsConnection_QueueSubscribe(&sub, bus->nc, subject, queue, handlers[kind],
                                          bus->shared);
    else
        s = natsConnection_Subscribe(&sub, bus->nc, subject, handlers[kind], bus->shared);
    if (s != NATS_OK)
        return dagi_bus_nats_err(s);
    atomic_fetch_add(&bus->shared->refs, 1);
    /* Fails only if the subscription is already closed (the connection
     * closed under us); a message callback may still be running, so the
     * reference is kept - leaked rather than freed too early. */
    natsSubscription_SetOnCompleteCB(sub, on_sub_complete, bus->shared);
    *out = sub;
    return DAGI_OK;
}

/* The adapter writes when the loop next sees the socket writable, which
 * batches everything published in one loop turn.  For the last message of
 * an exchange that turn is pure latency (an epoll round and two epoll_ctl),
 * so write now; libnats' event-loop write entry point does exactly what the
 * adapter's write event would, on this same thread. */
void dagi_bus_nats_flush_now(struct dagi_bus *bus)
{
    natsConnection_ProcessWriteEvent(bus->nc);
}

void dagi_bus_nats_unsubscribe(natsSubscription *sub)
{
    if (!sub)
        return;
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
}

/* --- connection --- */

/* opts->url may list servers separated by commas. */
static natsStatus set_servers(natsOptions *no, const char *url)
{
    char *copy = dagi_xstrdup(url);
    const char *servers[32];
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ", ", &save); tok && n < (int)DAGI_ARRAY_LEN(servers);
         tok = strtok_r(NULL, ", ", &save))
        servers[n++] = tok;
    natsStatus s = n ? natsOptions_SetServers(no, servers, n) : NATS_INVALID_ARG;
    free(copy);
    return s;
}

/* The url list without any user:password@ parts: error messages reach logs
 * and HTTP responses. */
static void url_for_humans(const char *url, char *out, size_t size)
{
    struct dagi_buf b;
    dagi_buf_init(&b, size - 1);
    while (*url) {
        size_t n = strcspn(url, ",");
        const char *scheme_end = strstr(url, "://");
        const char *at = memchr(url, '@', n);
        if (scheme_end && at && scheme_end < at) {
            dagi_buf_append(&b, url, (size_t)(scheme_end + 3 - url));
            dagi_buf_append_str(&b, "***");
            dagi_buf_append(&b, at, n - (size_t)(at - url));
        } else {
            dagi_buf_append(&b, url, n);
        }
        url += n;
        if (*url)
            dagi_buf_append_char(&b, *url++);
    }
    snprintf(out, size, "%s", dagi_buf_str(&b));
    dagi_buf_release(&b);
}

static int connect_nats(struct dagi_bus *bus, const struct dagi_bus_opts *opts,
                        struct dagi_error *err)
{
    natsOptions *no = NULL;
    natsInbox *inbox = NULL;
    const char *what = "options";
    unsigned wait_ms =
        opts->reconnect_wait_ms ? opts->reconnect_wait_ms : DEFAULT_RECONNECT_WAIT_MS;
    size_t rbuf = opts->reconnect_buffer ? opts->reconnect_buffer : DEFAULT_RECONNECT_BUFFER;
    if (rbuf > INT32_MAX)
        rbuf = INT32_MAX;
    int rc = DAGI_OK;

    pthread_once(&adapter_once, adapter_init);
    natsStatus s = natsOptions_Create(&no);
    if (s == NATS_OK)
        s = set_servers(no, opts->url);
    if (s == NATS_OK && opts->user)
        s = natsOptions_SetUserInfo(no, opts->user, opts->password ? opts->password : "");
    if (s == NATS_OK && opts->name)
        s = natsOptions_SetName(no, opts->name);
    if (s == NATS_OK)
        s = natsOptions_SetEventLoop(no, bus->base, natsLibevent_Attach, natsLibevent_Read,
                                     natsLibevent_Write, natsLibevent_Detach);
    /* One delivery thread pool instead of a thread per subscription: a
     * responder subscribes to <reply>.cancel per long request.  Callbacks on
     * this connection must therefore never block (ours only enqueue). */
    if (s == NATS_OK)
        s = natsOptions_UseGlobalMessageDelivery(no, true);
    /* With the event loop this only arms the loop's write event from the
     * publishing thread, instead of waking libnats' flusher thread to do
     * it: one thread hop less per message. */
    if (s == NATS_OK)
        s = natsOptions_SetSendAsap(no, true);
    if (s == NATS_OK)
        s = natsOptions_SetAllowReconnect(no, true);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(no, -1);
    if (s == NATS_OK)
        s = natsOptions_SetCustomReconnectDelay(no, on_reconnect_delay, (void *)(uintptr_t)wait_ms);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectBufSize(no, (int)rbuf);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(no, on_disconnected, bus->shared);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(no, on_reconnected, bus->shared);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(no, on_closed, bus->shared);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(no, on_async_error, bus->shared);
    if (s != NATS_OK)
        goto out;

    what = "connect";
    s = natsConnection_Connect(&bus->nc, no);
    if (s != NATS_OK)
        goto out;
    atomic_fetch_add(&bus->shared->refs, 1); /* the connection's, until on_closed */
    atomic_store(&bus->shared->connected, true);

    what = "reply subscription";
    s = natsInbox_Create(&inbox);
    if (s != NATS_OK)
        goto out;
    size_t n = strlen(inbox);
    if (n + 3 > sizeof(bus->reply_prefix)) {
        s = NATS_ERR;
        goto out;
    }
    memcpy(bus->reply_prefix, inbox, n + 1);
    bus->reply_prefix_len = n;
    char subject[sizeof(bus->reply_prefix)];
    snprintf(subject, sizeof(subject), "%s.*", inbox);
    rc = dagi_bus_nats_subscribe(bus, subject, NULL, BUS_MSG_REPLY, &bus->reply_sub);

out:
    natsInbox_Destroy(inbox);
    natsOptions_Destroy(no);
    if (s != NATS_OK) {
        char shown[256];
        url_for_humans(opts->url, shown, sizeof(shown));
        rc = dagi_error_set(err, DAGI_EUNAVAIL, "NATS %s (%s): %s", what, shown,
                            nats_GetLastError(NULL) ? nats_GetLastError(NULL)
                                                    : natsStatus_GetText(s));
    } else if (rc)
        dagi_error_set(err, rc, "NATS reply subscription failed");
    return rc;
}

int dagi_bus_new(struct event_base *base, const struct dagi_bus_opts *opts, struct dagi_bus **out,
                 struct dagi_error *err)
{
    struct dagi_bus *bus = dagi_xcalloc(1, sizeof(*bus));
    struct bus_shared *sh = dagi_xcalloc(1, sizeof(*sh));
    pthread_mutex_init(&sh->lock, NULL);
    atomic_init(&sh->refs, 1);
    atomic_init(&sh->connected, false);
    sh->bus = bus;
    bus->shared = sh;
    bus->base = base;
    bus->inprocess = opts->inprocess;
    bus->max_payload = opts->max_payload ? opts->max_payload : DEFAULT_MAX_PAYLOAD;
    bus->metrics = opts->metrics ? opts->metrics : dagi_metrics_default();
    bus->loopq = opts->loopq;
    if (!bus->loopq) {
        bus->loopq = dagi_loopq_new(base);
        bus->own_loopq = true;
    }
    sh->loopq = bus->loopq;
    sh->m_connected = dagi_metrics_gauge(bus->metrics, "dagi_bus_connected",
                                         "1 when the NATS connection is up", NULL);
    sh->m_reconnects =
        dagi_metrics_counter(bus->metrics, "dagi_bus_reconnects_total", "NATS reconnections", NULL);
    dagi_bus_rpc_init(bus);

    int rc = DAGI_OK;
    if (opts->url) {
        rc = connect_nats(bus, opts, err);
        if (rc)
            goto out;
        dagi_metric_set(sh->m_connected, NULL, 1);
        char url[256] = "";
        natsConnection_GetConnectedUrl(bus->nc, url, sizeof(url));
        dagi_log_info(NULL, "bus: NATS connected", "url", url);
    }
    *out = bus;
out:
    if (rc)
        dagi_bus_free(bus);
    return rc;
}

void dagi_bus_free(struct dagi_bus *bus)
{
    if (!bus)
        return;
    struct bus_shared *sh = bus->shared;
    dagi_bus_rpc_release(bus);
    dagi_bus_nats_unsubscribe(bus->reply_sub);
    pthread_mutex_lock(&sh->lock);
    sh->dead = true;
    pthread_mutex_unlock(&sh->lock);
    if (bus->nc) {
        /* Write out what is buffered (unsubscribes, cancels) ourselves:
         * Close would otherwise flush with a PING and wait 500 ms for a PONG
         * that only this very loop could read.  Close runs the adapter's
         * detach on this thread, so the loop's events for the socket are
         * gone when it returns. */
        dagi_bus_nats_flush_now(bus);
        natsConnection_Close(bus->nc);
        natsConnection_Destroy(bus->nc);
        dagi_metric_set(sh->m_connected, NULL, 0);
    }
    if (bus->own_loopq)
        dagi_loopq_free(bus->loopq); /* a queued drain runs as cancelled */
    shared_release(sh);
    free(bus);
}

bool dagi_bus_connected(struct dagi_bus *bus)
{
    return !bus->nc || atomic_load(&bus->shared->connected);
}

natsConnection *dagi_bus_nats(struct dagi_bus *bus)
{
    return bus->nc;
}
