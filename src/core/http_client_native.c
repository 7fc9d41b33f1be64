/* HTTP client backend: HTTP/1.1 over plain TCP, straight on the event loop,
 * for http:// URLs to numeric addresses and localhost (the front sends
 * everything else to curl).  A reused connection costs one send() and one
 * recv() per request and no epoll_ctl: each connection's read event stays
 * registered for its whole life, which is also how a server closing an idle
 * connection is noticed.
 *
 * Pieces:
 *   host   one per host:port: its idle connections (most recently used
 *          first) and the calls waiting for a connection, in order
 *   conn   one TCP connection: connecting, carrying one call, or idle
 *   call   one request; waits in its host's queue until pump() gives it a
 *          connection, then writes the request and reads the response
 *          (what the bytes mean is http_client_wire.c's business)
 *
 * Scheduling is deferred: start() only queues the call and activates the
 * backend's `kick` event, which runs pump() later in the same loop
 * iteration.  So no user callback ever runs inside
 * dagi_http_client_request(), a call started from inside another call's
 * callback waits until that callback has returned, and pump() is the one
 * place where connections are handed out against the limits.
 *
 * Re-entrancy: user callbacks (on_headers, on_data) run from on_readable()
 * with call->in_handler set.  A cancel from there only marks the call (the
 * front sets base.cancelled); on_readable() tears it down once the callback
 * has returned.  A cancel from anywhere else tears down at once.  Either
 * way a call cancelled mid-response takes its connection with it: its
 * unread rest would be the next response's head otherwise.
 *
 * Retry: a kept-alive connection the server closed just as we reused it
 * fails on the first write or read with nothing received.  Then the call
 * goes back to the front of its queue once, marked to get a fresh
 * connection (as curl does; never when any byte of a response arrived). */
#include "http_client_wire.h"

#include "clock.h"
#include "err.h"
#include "mem.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* Servers close idle connections on their own clock (uvicorn's default is
 * 5 s) and the read event notices at once; this bounds the rest. */
#define IDLE_CONN_SECONDS 60
#define READ_BYTES (64u << 10)

struct ncall;

struct host {
    struct host *next;
    char name[64]; /* as in struct http_url */
    uint16_t port;
    int naddrs;
    struct sockaddr_storage addrs[2];
    socklen_t addr_lens[2];
    struct conn *idle; /* idle connections, most recently used first */
    unsigned nconns;   /* open, connecting or idle */
    struct ncall *wait_head, *wait_tail;
};

struct conn {
    struct conn *prev, *next;           /* every connection of the backend */
    struct conn *idle_prev, *idle_next; /* in host->idle while idle */
    struct native *nat;
    struct host *host;
    int fd;
    int addr_index; /* which of host->addrs this is (or is trying) */
    struct event *rd, *wr, *idle_timer;
    struct ncall *call; /* NULL while idle */
    unsigned served;    /* responses completed on it: >0 means kept alive */
    int64_t idle_since_ns;
    bool connecting;
    bool writing; /* wr is added */
    bool idle;
};

struct ncall {
    struct dagi_http_call base;
    struct ncall *prev, *next; /* in host's wait queue */
    struct host *host;
    struct conn *conn;
    char *req; /* the whole request, head and body */
    size_t req_len, req_sent;
    unsigned connect_timeout_ms, timeout_ms;
    int64_t start_ns, deadline_ns, connect_deadline_ns; /* 0 = none */
    struct event *timer;                                /* for the deadlines; made when needed */
    bool waiting;                                       /* in the queue */
    bool retried;    /* the one retry on a fresh connection is spent */
    bool fresh_only; /* must not take an idle connection */
    bool in_handler; /* user code of this call is on the stack */
    size_t received; /* bytes of this attempt's response */
    struct http_reader reader;
};

struct native {
    struct dagi_http_client *client;
    struct event_base *base;
    struct host *hosts; /* never freed before the backend: few, and small */
    struct conn *conns;
    unsigned nconns;
    unsigned waiting;   /* calls in all hosts' queues */
    struct event *kick; /* runs pump() */
};

static void pump(struct native *nat);
static void write_request(struct ncall *c);

static void kick(struct native *nat)
{
    event_active(nat->kick, EV_TIMEOUT, 1);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    pump(arg);
}

/* --- the wait queue ------------------------------------------------------- */

static void enqueue(struct ncall *c, bool front)
{
    struct host *h = c->host;
    struct native *nat = c->base.backend;
    c->waiting = true;
    nat->waiting++;
    if (front) {
        c->prev = NULL;
        c->next = h->wait_head;
        if (h->wait_head)
            h->wait_head->prev = c;
        else
            h->wait_tail = c;
        h->wait_head = c;
    } else {
        c->next = NULL;
        c->prev = h->wait_tail;
        if (h->wait_tail)
            h->wait_tail->next = c;
        else
            h->wait_head = c;
        h->wait_tail = c;
    }
    kick(nat);
}

static void dequeue(struct ncall *c)
{
    struct host *h = c->host;
    if (!c->waiting)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        h->wait_head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        h->wait_tail = c->prev;
    c->prev = c->next = NULL;
    c->waiting = false;
    ((struct native *)c->base.backend)->waiting--;
}

/* --- connections ---------------------------------------------------------- */

static void on_readable(evutil_socket_t fd, short what, void *arg);
static void on_writable(evutil_socket_t fd, short what, void *arg);
static void on_conn_idle_timeout(evutil_socket_t fd, short what, void *arg);

static void idle_unlink(struct conn *conn)
{
    struct host *h = conn->host;
    if (!conn->idle)
        return;
    if (conn->idle_prev)
        conn->idle_prev->idle_next = conn->idle_next;
    else
        h->idle = conn->idle_next;
    if (conn->idle_next)
        conn->idle_next->idle_prev = conn->idle_prev;
    conn->idle_prev = conn->idle_next = NULL;
    conn->idle = false;
    evtimer_del(conn->idle_timer);
}

/* Closes and frees; the freed slot may let a waiting call of any host go. */
static void conn_close(struct conn *conn)
{
    struct native *nat = conn->nat;
    idle_unlink(conn);
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        nat->conns = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    event_free(conn->rd);
    event_free(conn->wr);
    event_free(conn->idle_timer);
    if (conn->fd >= 0)
        close(conn->fd);
    conn->host->nconns--;
    nat->nconns--;
    free(conn);
    if (nat->waiting)
        kick(nat);
}

static void want_write(struct conn *conn, bool on)
{
    if (on && !conn->writing)
        event_add(conn->wr, NULL);
    else if (!on && conn->writing)
        event_del(conn->wr);
    conn->writing = on;
}

/* Opens a socket to host->addrs[addr_index] onward and starts connecting.
 * 0 when connected or in progress (conn->connecting), else -errno of the
 * last address tried.  Every socket counts as a connection opened. */
static int conn_connect(struct conn *conn)
{
    struct host *h = conn->host;
    int err = ECONNREFUSED;
    for (; conn->addr_index < h->naddrs; conn->addr_index++) {
        const struct sockaddr_storage *sa = &h->addrs[conn->addr_index];
        int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -errno; /* out of descriptors: another address will not help */
        conn->nat->client->connections_opened++;
        int one = 1;
        /* requests go out in one send; Nagle would only hold back a body
         * that did not fit the socket buffer */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        int rc = connect(fd, (const struct sockaddr *)sa, h->addr_lens[conn->addr_index]);
        if (rc == 0 || errno == EINPROGRESS) {
            if (conn->fd >= 0) { /* a retry with the next address */
                event_del(conn->rd);
                want_write(conn, false);
                close(conn->fd);
            }
            conn->fd = fd;
            event_assign(conn->rd, conn->nat->base, fd, EV_READ | EV_PERSIST, on_readable, conn);
            event_assign(conn->wr, conn->nat->base, fd, EV_WRITE | EV_PERSIST, on_writable, conn);
            event_add(conn->rd, NULL);
            conn->connecting = rc != 0;
            if (conn->connecting)
                want_write(conn, true);
            return 0;
        }
        err = errno;
        close(fd);
    }
    return -err;
}

static struct conn *conn_new(struct native *nat, struct host *h)
{
    struct conn *conn = dagi_xcalloc(1, sizeof(*conn));
    conn->nat = nat;
    conn->host = h;
    conn->fd = -1;
    /* assigned their descriptor in conn_connect */
    conn->rd = event_new(nat->base, -1, 0, on_readable, conn);
    conn->wr = event_new(nat->base, -1, 0, on_writable, conn);
    conn->idle_timer = evtimer_new(nat->base, on_conn_idle_timeout, conn);
    if (!conn->rd || !conn->wr || !conn->idle_timer)
        abort();
    conn->next = nat->conns;
    if (conn->next)
        conn->next->prev = conn;
    nat->conns = conn;
    h->nconns++;
    nat->nconns++;
    return conn;
}

/* After a clean response: back to the host's idle list, for the next call. */
static void conn_release(struct conn *conn)
{
    struct host *h = conn->host;
    conn->call = NULL;
    conn->served++;
    conn->idle = true;
    conn->idle_since_ns = dagi_clock_mono_ns();
    conn->idle_prev = NULL;
    conn->idle_next = h->idle;
    if (h->idle)
        h->idle->idle_prev = conn;
    h->idle = conn;
    struct timeval tv = {IDLE_CONN_SECONDS, 0};
    evtimer_add(conn->idle_timer, &tv);
    /* any host's waiter may take it: its own, or one held back by the
     * total limit that can close it */
    if (conn->nat->waiting)
        kick(conn->nat);
}

static void on_conn_idle_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    conn_close(arg);
}

/* The least recently used idle connection of any host but `except`. */
static struct conn *oldest_idle(struct native *nat, struct host *except)
{
    struct conn *found = NULL;
    for (struct host *h = nat->hosts; h; h = h->next) {
        if (h == except || !h->idle)
            continue;
        struct conn *last = h->idle;
        while (last->idle_next)
            last = last->idle_next;
        if (!found || last->idle_since_ns < found->idle_since_ns)
            found = last;
    }
    return found;
}

/* --- calls ------------------------------------------------------------------ */

static void arm_timer(struct ncall *c);

static void free_call(struct ncall *c)
{
    if (c->timer)
        event_free(c->timer);
    free(c->req);
    http_reader_release(&c->reader);
    http_call_release(&c->base);
}

/* Ends a call that was not cancelled: on_done, then free.  Its connection
 * (if any) must be detached already. */
static void end_call(struct ncall *c, int err, const char *message)
{
    dequeue(c);
    if (c->timer)
        evtimer_del(c->timer);
    double seconds = (double)(dagi_clock_mono_ns() - c->start_ns) / 1e9;
    http_call_complete(&c->base, err, message, c->reader.status, seconds);
    free_call(c);
}

static struct conn *detach(struct ncall *c)
{
    struct conn *conn = c->conn;
    if (conn)
        conn->call = NULL;
    c->conn = NULL;
    return conn;
}

/* Fails the call; its connection goes too (mid-exchange, it is unusable). */
static void fail_call(struct ncall *c, int err, const char *message)
{
    struct conn *conn = detach(c);
    if (conn)
        conn_close(conn);
    end_call(c, err, message);
}

static void fail_callf(struct ncall *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail_callf(struct ncall *c, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->base.abort_msg, sizeof(c->base.abort_msg), fmt, ap);
    va_end(ap);
    fail_call(c, err, c->base.abort_msg);
}

/* A cancelled call: no callback, and the connection is closed. */
static void drop_call(struct ncall *c)
{
    struct conn *conn = detach(c);
    if (conn)
        conn_close(conn);
    dequeue(c);
    free_call(c);
}

static void finish_ok(struct ncall *c)
{
    struct conn *conn = detach(c);
    if (c->reader.keep_alive && !c->reader.leftover && c->req_sent == c->req_len)
        conn_release(conn);
    else
        conn_close(conn);
    end_call(c, DAGI_OK, NULL);
}

/* The first write or read of an attempt failed, or the server closed. */
static void attempt_failed(struct ncall *c, int errnum, const char *what)
{
    struct conn *conn = c->conn;
    struct host *h = c->host;
    if (conn->connecting) {
        int rc = -(errnum ? errnum : ECONNREFUSED);
        conn->addr_index++;
        if (conn->addr_index < h->naddrs && (rc = conn_connect(conn)) == 0)
            return; /* localhost: ::1 after 127.0.0.1 */
        fail_callf(c, DAGI_EIO, "Failed to connect to %s port %u: %s", h->name, h->port,
                   strerror(-rc));
        return;
    }
    if (conn->served > 0 && c->received == 0 && !c->retried) {
        /* the server closed the kept-alive connection as we reused it */
        conn_close(detach(c));
        c->retried = true;
        c->fresh_only = true;
        c->req_sent = 0;
        c->received = 0;
        http_reader_reset(&c->reader);
        enqueue(c, true);
        return;
    }
    if (errnum)
        fail_callf(c, DAGI_EIO, "%s failure from %s port %u: %s", what, h->name, h->port,
                   strerror(errnum));
    else if (http_reader_eof(&c->reader, c->received) == HTTP_READ_DONE)
        finish_ok(c); /* the body ran until close */
    else
        fail_call(c, c->base.abort_err, c->base.abort_msg);
}

static void on_call_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct ncall *c = arg;
    int64_t now = dagi_clock_mono_ns();
    if (c->deadline_ns && now >= c->deadline_ns)
        fail_callf(c, DAGI_ETIMEDOUT,
                   "Operation timed out after %u milliseconds with %zu bytes received",
                   c->timeout_ms, c->received);
    else if (c->connect_deadline_ns && now >= c->connect_deadline_ns)
        fail_callf(c, DAGI_ETIMEDOUT,
                   "Failed to connect to %s port %u after %u ms: Connection timed out",
                   c->host->name, c->host->port, c->connect_timeout_ms);
    else
        arm_timer(c); /* woke early */
}

static void arm_timer(struct ncall *c)
{
    int64_t next = c->deadline_ns;
    if (c->connect_deadline_ns && (!next || c->connect_deadline_ns < next))
        next = c->connect_deadline_ns;
    if (!next) {
        if (c->timer)
            evtimer_del(c->timer);
        return;
    }
    if (!c->timer) {
        c->timer = evtimer_new(c->base.client->base, on_call_timer, c);
        if (!c->timer)
            abort();
    }
    int64_t left_us = (next - dagi_clock_mono_ns() + 999) / 1000;
    if (left_us < 0)
        left_us = 0;
    struct timeval tv = {(time_t)(left_us / 1000000), (suseconds_t)(left_us % 1000000)};
    evtimer_add(c->timer, &tv);
}

/* Gives a dequeued call its connection and starts the exchange. */
static void attach(struct ncall *c, struct conn *conn)
{
    c->conn = conn;
    conn->call = c;
    idle_unlink(conn);
    if (conn->connecting) {
        c->connect_deadline_ns = dagi_clock_mono_ns() + (int64_t)c->connect_timeout_ms * 1000000;
        arm_timer(c);
        return; /* on_writable sends once connected */
    }
    write_request(c);
}

/* --- the exchange ------------------------------------------------------------ */

static void write_request(struct ncall *c)
{
    struct conn *conn = c->conn;
    while (c->req_sent < c->req_len) {
        ssize_t n = send(conn->fd, c->req + c->req_sent, c->req_len - c->req_sent, MSG_NOSIGNAL);
        if (n > 0) {
            if (conn->connecting) {
                /* a byte went out, so the connection is up */
                conn->connecting = false;
                c->connect_deadline_ns = 0;
                arm_timer(c);
            }
            c->req_sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            want_write(conn, true);
            return;
        }
        attempt_failed(c, n < 0 ? errno : EPIPE, "Send");
        return;
    }
    want_write(conn, false);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct conn *conn = arg;
    if (conn->call)
        write_request(conn->call);
    else
        want_write(conn, false);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct conn *conn = arg;
    struct ncall *c = conn->call;
    char buf[READ_BYTES];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (!c) {
        /* idle: the server closed it (or sent what nobody asked for) */
        conn_close(conn);
        return;
    }
    if (n <= 0) {
        attempt_failed(c, n < 0 ? errno : 0, "Recv");
        return;
    }
    c->received += (size_t)n;
    http_call_touch(&c->base);
    c->in_handler = true;
    enum http_read_result r = http_reader_feed(&c->reader, buf, (size_t)n);
    c->in_handler = false;
    if (c->base.cancelled)
        drop_call(c);
    else if (r == HTTP_READ_STOP)
        fail_call(c, c->base.abort_err, c->base.abort_msg);
    else if (r == HTTP_READ_DONE)
        finish_ok(c);
}

/* --- scheduling --------------------------------------------------------------- */

/* Makes room for one more connection to h, closing an idle one if that is
 * what stands in the way.  False when the call has to wait. */
static bool make_room(struct native *nat, struct host *h)
{
    struct dagi_http_client *client = nat->client;
    if (h->nconns >= client->max_per_host) {
        if (!h->idle)
            return false;
        struct conn *last = h->idle;
        while (last->idle_next)
            last = last->idle_next;
        conn_close(last); /* a retry that must not reuse: trade an idle one */
        return true;
    }
    if (nat->nconns < client->max_total)
        return true;
    struct conn *victim = oldest_idle(nat, h);
    if (!victim)
        return false;
    conn_close(victim);
    return true;
}

static void serve_host(struct native *nat, struct host *h)
{
    struct ncall *c;
    while ((c = h->wait_head)) {
        struct conn *conn;
        if (!c->fresh_only && h->idle) {
            conn = h->idle;
        } else {
            if (!make_room(nat, h))
                return;
            conn = conn_new(nat, h);
            int rc = conn_connect(conn);
            if (rc) {
                conn_close(conn);
                dequeue(c);
                fail_callf(c, DAGI_EIO, "Failed to connect to %s port %u: %s", h->name, h->port,
                           strerror(-rc));
                continue; /* user code ran: start again from the queue's head */
            }
        }
        dequeue(c);
        c->fresh_only = false;
        attach(c, conn);
    }
}

static void pump(struct native *nat)
{
    /* hosts are never freed while the backend lives, so the walk survives
     * the user code that failures run */
    for (struct host *h = nat->hosts; h; h = h->next)
        if (h->wait_head)
            serve_host(nat, h);
}

/* --- the backend ---------------------------------------------------------------- */

static struct host *host_for(struct native *nat, const struct http_url *url)
{
    for (struct host *h = nat->hosts; h; h = h->next)
        if (h->port == url->port && strcmp(h->name, url->host) == 0)
            return h;
    struct host *h = dagi_xcalloc(1, sizeof(*h));
    memcpy(h->name, url->host, sizeof(h->name));
    h->port = url->port;
    h->naddrs = url->naddrs;
    memcpy(h->addrs, url->addrs, sizeof(h->addrs));
    memcpy(h->addr_lens, url->addr_lens, sizeof(h->addr_lens));
    h->next = nat->hosts;
    nat->hosts = h;
    return h;
}

static int native_start(void *backend, struct dagi_http_call *call,
                        const struct dagi_http_request_opts *opts, const struct http_url *url)
{
    struct native *nat = backend;
    struct ncall *c = (struct ncall *)call;
    const char *method = opts->method ? opts->method : (opts->body ? "POST" : "GET");
    c->host = host_for(nat, url);
    c->req = http_wire_request(opts, url, method, nat->client->user_agent, &c->req_len);
    http_reader_init(&c->reader, call, strcmp(method, "HEAD") == 0, c->host->name, c->host->port);
    c->connect_timeout_ms =
        opts->connect_timeout_ms ? opts->connect_timeout_ms : HTTP_DEFAULT_CONNECT_TIMEOUT_MS;
    c->timeout_ms = opts->timeout_ms;
    c->start_ns = dagi_clock_mono_ns();
    if (opts->timeout_ms) {
        c->deadline_ns = c->start_ns + (int64_t)opts->timeout_ms * 1000000;
        arm_timer(c);
    }
    enqueue(c, false);
    return DAGI_OK;
}

static void native_cancel(struct dagi_http_call *call)
{
    struct ncall *c = (struct ncall *)call;
    if (!c->in_handler)
        drop_call(c);
    /* else on_readable drops it once the callback has returned */
}

static void native_expire(struct dagi_http_call *call, int err)
{
    fail_call((struct ncall *)call, err, call->abort_msg);
}

static void *native_open(struct dagi_http_client *client)
{
    struct native *nat = dagi_xcalloc(1, sizeof(*nat));
    nat->client = client;
    nat->base = client->base;
    nat->kick = event_new(client->base, -1, 0, on_kick, nat);
    if (!nat->kick)
        abort();
    return nat;
}

static void native_close(void *backend)
{
    struct native *nat = backend;
    while (nat->conns) {
        struct conn *conn = nat->conns;
        if (conn->call)
            drop_call(conn->call); /* closes conn */
        else
            conn_close(conn);
    }
    while (nat->hosts) {
        struct host *h = nat->hosts;
        while (h->wait_head)
            drop_call(h->wait_head);
        nat->hosts = h->next;
        free(h);
    }
    event_free(nat->kick);
    free(nat);
}

const struct http_backend_ops http_backend_native = {
    .name = "native",
    .caps = 0, /* plain http:// to an address it knows without asking */
    .call_size = sizeof(struct ncall),
    .open = native_open,
    .close = native_close,
    .start = native_start,
    .cancel = native_cancel,
    .expire = native_expire,
};
