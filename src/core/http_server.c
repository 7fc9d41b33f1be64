/* The server: options, listener, route table, drain, and the small shared
 * services (Date cache, trace ids, metrics).  Connections live in
 * http_conn.c, responses in http_resp.c. */
#include "http_internal.h"

#include "arena.h"
#include "http_tls.h"
#include "mem.h"
#include "metrics.h"

#include <errno.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

/* --- shared services --- */

static char status_labels[600][4];
static pthread_once_t status_once = PTHREAD_ONCE_INIT;

static void init_status_labels(void)
{
    for (int i = 0; i < 600; i++)
        snprintf(status_labels[i], sizeof(status_labels[i]), "%03d", i);
}

/* Metric labels must be stable strings; a static table avoids formatting
 * the status per request. */
const char *http_status_label(int status)
{
    if (status < 100 || status > 599)
        return "000";
    return status_labels[status];
}

const char *http_server_date(struct dagi_http_server *srv)
{
    struct timeval tv;
    event_base_gettimeofday_cached(srv->base, &tv); /* no syscall inside the loop */
    if (tv.tv_sec != srv->date_sec) {
        struct tm tm;
        time_t t = tv.tv_sec;
        gmtime_r(&t, &tm);
        strftime(srv->date, sizeof(srv->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        srv->date_sec = tv.tv_sec;
    }
    return srv->date;
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256**: trace ids need to be unique, not secret, so one getrandom
 * at start and a fast generator afterwards. */
static uint64_t next_random(struct dagi_http_server *srv)
{
    uint64_t *s = srv->rng;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

void http_server_trace_id(struct dagi_http_server *srv, char out[33])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t a = next_random(srv), b = next_random(srv);
    for (int i = 0; i < 16; i++) {
        out[i] = hex[(a >> (i * 4)) & 15];
        out[16 + i] = hex[(b >> (i * 4)) & 15];
    }
    out[32] = '\0';
}

/* --- routes --- */

static bool valid_param_name(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

static int parse_pattern(struct route_entry *e)
{
    const char *p = e->pattern;
    if (p[0] != '/')
        return DAGI_EINVAL;
    size_t len = strlen(p);
    e->names = dagi_xstrdup(p);
    e->segs = dagi_xcalloc(len + 1, sizeof(*e->segs));
    if (len == 1)
        return DAGI_OK; /* "/" has no segments */
    char *s = e->names + 1;
    for (;;) {
        char *slash = strchr(s, '/');
        size_t n = slash ? (size_t)(slash - s) : strlen(s);
        struct route_seg *seg = &e->segs[e->nseg++];
        if (e->nseg > HTTP_MAX_SEGMENTS)
            return DAGI_EINVAL;
        if (n >= 2 && s[0] == '{' && s[n - 1] == '}') {
            bool rest = n >= 3 && s[n - 2] == '*';
            seg->kind = rest ? SEG_REST : SEG_PARAM;
            seg->text = s + 1;
            seg->len = n - 2 - (rest ? 1 : 0);
            if (!valid_param_name(seg->text, seg->len) || (rest && slash))
                return DAGI_EINVAL;
            e->nparams++;
        } else {
            if (memchr(s, '{', n) || memchr(s, '}', n))
                return DAGI_EINVAL;
            seg->kind = SEG_LITERAL;
            seg->text = s;
            seg->len = n;
        }
        if (!slash)
            break;
        *slash = '\0';
        s = slash + 1;
    }
    return DAGI_OK;
}

static bool same_shape(const struct route_entry *a, const struct route_entry *b)
{
    if (a->nseg != b->nseg)
        return false;
    for (size_t i = 0; i < a->nseg; i++) {
        if (a->segs[i].kind != b->segs[i].kind)
            return false;
        if (a->segs[i].kind == SEG_LITERAL &&
            (a->segs[i].len != b->segs[i].len ||
             memcmp(a->segs[i].text, b->segs[i].text, a->segs[i].len) != 0))
            return false;
    }
    return true;
}

static void route_free(struct route_entry *e)
{
    free(e->method);
    free(e->pattern);
    free(e->segs);
    free(e->names);
    free(e);
}

int dagi_http_server_add_route(struct dagi_http_server *srv, const struct dagi_http_route *route)
{
    if (!route->method || !route->pattern || !route->handler || !route->method[0])
        return DAGI_EINVAL;
    struct route_entry *e = dagi_xcalloc(1, sizeof(*e));
    e->route = *route;
    e->method = dagi_xstrdup(route->method);
    e->pattern = dagi_xstrdup(route->pattern);
    e->route.method = e->method;
    e->route.pattern = e->pattern;
    int rc = parse_pattern(e);
    for (size_t i = 0; rc == DAGI_OK && i < srv->nroutes; i++)
        if (strcmp(srv->routes[i]->method, e->method) == 0 && same_shape(srv->routes[i], e))
            rc = DAGI_EEXIST;
    if (rc) {
        route_free(e);
        return rc;
    }
    if (srv->nroutes == srv->route_alloc) {
        srv->route_alloc = srv->route_alloc ? srv->route_alloc * 2 : 16;
        srv->routes = dagi_xrealloc(srv->routes, srv->route_alloc * sizeof(*srv->routes));
    }
    srv->routes[srv->nroutes++] = e;
    return DAGI_OK;
}

void dagi_http_server_each_route(struct dagi_http_server *srv,
                                 void (*fn)(const struct dagi_http_route *route, void *ud),
                                 void *ud)
{
    for (size_t i = 0; i < srv->nroutes; i++)
        fn(&srv->routes[i]->route, ud);
}

void dagi_http_server_set_body_gate(struct dagi_http_server *srv, dagi_http_body_gate_fn gate,
                                    void *ud)
{
    srv->body_gate = gate;
    srv->body_gate_ud = ud;
}

void dagi_http_server_set_gate(struct dagi_http_server *srv, dagi_http_gate_fn gate, void *ud)
{
    srv->gate = gate;
    srv->gate_ud = ud;
}

struct path_seg {
    const char *raw; /* into the request target */
    size_t raw_len;
    const char *dec; /* percent-decoded, in the arena */
    size_t dec_len;
};

/* Route e matches when every segment matches; literals compare against the
 * decoded segment, so %2F inside a parameter never splits it. */
static bool match(const struct route_entry *e, const struct path_seg *segs, size_t n)
{
    if (e->nseg == 0)
        return n == 0;
    bool rest = e->segs[e->nseg - 1].kind == SEG_REST;
    if (rest ? n < e->nseg : n != e->nseg)
        return false;
    for (size_t i = 0; i < e->nseg; i++) {
        const struct route_seg *s = &e->segs[i];
        if (s->kind == SEG_LITERAL &&
            (s->len != segs[i].dec_len || memcmp(s->text, segs[i].dec, s->len) != 0))
            return false;
    }
    return true;
}

/* Negative when a is more specific: at the first position where the kinds
 * differ, literal beats parameter beats rest. */
static int specificity(const struct route_entry *a, const struct route_entry *b)
{
    size_t n = a->nseg < b->nseg ? a->nseg : b->nseg;
    for (size_t i = 0; i < n; i++)
        if (a->segs[i].kind != b->segs[i].kind)
            return (int)a->segs[i].kind - (int)b->segs[i].kind;
    return 0;
}

static void add_allow(char *allow, size_t cap, const char *method)
{
    size_t ml = strlen(method);
    for (const char *p = allow; (p = strstr(p, method)); p += ml)
        if ((p == allow || p[-1] == ' ') && (p[ml] == ',' || p[ml] == '\0'))
            return;
    if (strlen(allow) + ml + 3 >= cap)
        return;
    if (allow[0])
        strcat(allow, ", ");
    strcat(allow, method);
}

bool http_server_route(struct dagi_http_server *srv, struct dagi_http_req *req,
                       const char *raw_path, size_t raw_len)
{
    struct dagi_arena *a = req->arena;
    char *path = dagi_arena_alloc(a, raw_len + 1);
    size_t path_len;
    if (!path || dagi_http_percent_decode(raw_path, raw_len, path, &path_len) != DAGI_OK) {
        http_conn_fail(req->conn, 400, true, "bad_request", "invalid percent-encoding in the path");
        return false;
    }
    req->path = path;

    struct path_seg segs[HTTP_MAX_SEGMENTS + 1];
    size_t n = 0;
    const char *p = raw_path + 1, *end = raw_path + raw_len;
    bool too_deep = false;
    if (raw_len > 1) {
        for (;;) {
            const char *slash = memchr(p, '/', (size_t)(end - p));
            const char *se = slash ? slash : end;
            if (n == HTTP_MAX_SEGMENTS) {
                too_deep = true;
                break;
            }
            struct path_seg *s = &segs[n++];
            s->raw = p;
            s->raw_len = (size_t)(se - p);
            char *dec = dagi_arena_alloc(a, s->raw_len + 1);
            if (!dec)
                break;
            dagi_http_percent_decode(p, s->raw_len, dec, &s->dec_len); /* checked above */
            s->dec = dec;
            /* Dot segments would let "/v1/x/../admin" dodge prefix rules. */
            if ((s->dec_len == 1 && dec[0] == '.') ||
                (s->dec_len == 2 && dec[0] == '.' && dec[1] == '.')) {
                http_conn_fail(req->conn, 400, true, "bad_request", "dot segments are not allowed");
                return false;
            }
            if (!slash)
                break;
            p = slash + 1;
        }
    }

    const struct route_entry *best = NULL, *best_get = NULL;
    char allow[256] = "";
    for (size_t i = 0; !too_deep && i < srv->nroutes; i++) {
        const struct route_entry *e = srv->routes[i];
        if (!match(e, segs, n))
            continue;
        add_allow(allow, sizeof(allow), e->method);
        if (strcmp(e->method, req->method) == 0) {
            if (!best || specificity(e, best) < 0)
                best = e;
        } else if (strcmp(e->method, "GET") == 0 && strcmp(req->method, "HEAD") == 0) {
            if (!best_get || specificity(e, best_get) < 0)
                best_get = e;
        }
    }
    if (!best && best_get) {
        best = best_get; /* HEAD is GET without the body */
        req->head_only = true;
    }
    if (!best) {
        if (allow[0]) {
            if (strstr(allow, "GET"))
                add_allow(allow, sizeof(allow), "HEAD");
            dagi_http_set_header(req, "Allow", allow);
            http_conn_fail(req->conn, 405, false, "method_not_allowed", "method not allowed");
        } else {
            http_conn_fail(req->conn, 404, false, "not_found", "no route for this path");
        }
        return false;
    }
    req->entry = best;
    req->param_values = dagi_arena_zalloc(a, (best->nparams + 1) * sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < best->nseg; i++) {
        if (best->segs[i].kind == SEG_PARAM) {
            req->param_values[k++] = segs[i].dec;
        } else if (best->segs[i].kind == SEG_REST) {
            size_t rlen = (size_t)(end - segs[i].raw), dlen;
            char *rest = dagi_arena_alloc(a, rlen + 1);
            if (rest)
                dagi_http_percent_decode(segs[i].raw, rlen, rest, &dlen);
            req->param_values[k++] = rest;
        }
    }
    return true;
}

/* The operator's word wins: a configured prefix limit over the route's own
 * cap, and the route's cap over the server default. */
uint64_t http_server_body_limit(struct dagi_http_server *srv, const struct route_entry *e,
                                const char *path)
{
    size_t best = 0;
    bool matched = false;
    uint64_t limit = 0;
    for (size_t i = 0; i < srv->opts.limit_count; i++) {
        const struct dagi_http_limit *l = &srv->opts.limits[i];
        size_t n = strlen(l->prefix);
        if (n >= best && strncmp(path, l->prefix, n) == 0) {
            best = n;
            limit = l->max_body;
            matched = true;
        }
    }
    if (matched)
        return limit;
    if (e && e->route.max_body)
        return e->route.max_body;
    return srv->opts.max_body;
}

/* --- options --- */

static void opts_release(struct dagi_http_server_opts *o)
{
    free((char *)o->listen);
    free((char *)o->tls_cert_file);
    free((char *)o->tls_key_file);
    for (size_t i = 0; i < o->limit_count; i++)
        free((char *)o->limits[i].prefix);
    free((struct dagi_http_limit *)o->limits);
    memset(o, 0, sizeof(*o));
}

static int opts_copy(struct dagi_http_server_opts *dst, const struct dagi_http_server_opts *src,
                     struct dagi_error *err)
{
    if (!src->listen || !*src->listen)
        return dagi_error_set(err, DAGI_EINVAL, "http: listen address is required");
    if (!src->tls_cert_file != !src->tls_key_file)
        return dagi_error_set(err, DAGI_EINVAL, "http: TLS needs both a certificate and a key");
    *dst = *src;
    dst->listen = dagi_xstrdup(src->listen);
    dst->tls_cert_file = src->tls_cert_file ? dagi_xstrdup(src->tls_cert_file) : NULL;
    dst->tls_key_file = src->tls_key_file ? dagi_xstrdup(src->tls_key_file) : NULL;
    struct dagi_http_limit *limits = dagi_xcalloc(src->limit_count + 1, sizeof(*limits));
    for (size_t i = 0; i < src->limit_count; i++) {
        limits[i].prefix = dagi_xstrdup(src->limits[i].prefix ? src->limits[i].prefix : "");
        limits[i].max_body = src->limits[i].max_body;
    }
    dst->limits = limits;
    /* Zero means "the default" for every knob. */
    if (!dst->max_body)
        dst->max_body = 1 << 20;
    if (!dst->max_header_bytes)
        dst->max_header_bytes = 16 * 1024;
    if (!dst->read_timeout_ms)
        dst->read_timeout_ms = 30000;
    if (!dst->write_timeout_ms)
        dst->write_timeout_ms = 30000;
    if (!dst->idle_timeout_ms)
        dst->idle_timeout_ms = 60000;
    if (!dst->drain_timeout_ms)
        dst->drain_timeout_ms = 10000;
    return DAGI_OK;
}

static const char *const requests_labels[] = {"method", "route", "status", NULL};
static const char *const route_labels[] = {"route", NULL};

int dagi_http_server_new(struct event_base *base, const struct dagi_http_server_opts *opts,
                         struct dagi_http_server **out, struct dagi_error *err)
{
    pthread_once(&status_once, init_status_labels);
    struct dagi_http_server *srv = dagi_xcalloc(1, sizeof(*srv));
    srv->base = base;
    int rc = opts_copy(&srv->opts, opts, err);
    if (rc)
        goto out;
    if (srv->opts.tls_cert_file) {
        rc = dagi_http_tls_ctx_new(srv->opts.tls_cert_file, srv->opts.tls_key_file, &srv->tls_ctx,
                                   err);
        if (rc)
            goto out;
    }
    if (getrandom(srv->rng, sizeof(srv->rng), 0) != (ssize_t)sizeof(srv->rng)) {
        rc = dagi_error_set(err, DAGI_EIO, "http: getrandom failed: %s", strerror(errno));
        goto out;
    }
    srv->rng[0] |= 1; /* xoshiro must not start all-zero */
    struct dagi_metrics *m = opts->metrics ? opts->metrics : dagi_metrics_default();
    srv->m_requests = dagi_metrics_counter(m, "dagi_http_requests_total",
                                           "HTTP requests answered.", requests_labels);
    srv->m_duration = dagi_metrics_histogram(
        m, "dagi_http_request_duration_seconds", "Time from request head to response.",
        route_labels, dagi_metrics_latency_buckets, dagi_metrics_latency_buckets_n);
    srv->m_conns = dagi_metrics_gauge(m, "dagi_http_connections", "Open HTTP connections.", NULL);
    srv->m_rx = dagi_metrics_counter(m, "dagi_http_bytes_received_total",
                                     "Request bytes read (heads and bodies).", NULL);
    srv->m_tx = dagi_metrics_counter(m, "dagi_http_bytes_sent_total",
                                     "Response bytes queued for sending.", NULL);
    if (!srv->m_requests || !srv->m_duration || !srv->m_conns || !srv->m_rx || !srv->m_tx) {
        rc = dagi_error_set(err, DAGI_EEXIST, "http: metric families clash with existing ones");
        goto out;
    }
    srv->drained_ev = event_new(base, -1, 0, NULL, NULL);
    rc = DAGI_OK;
out:
    if (rc) {
        if (srv->tls_ctx)
            dagi_http_tls_ctx_free(srv->tls_ctx);
        opts_release(&srv->opts);
        free(srv);
        return rc;
    }
    *out = srv;
    return DAGI_OK;
}

int dagi_http_server_update(struct dagi_http_server *srv, const struct dagi_http_server_opts *opts,
                            struct dagi_error *err)
{
    struct dagi_http_server_opts next;
    int rc = opts_copy(&next, opts, err);
    if (rc)
        return rc;
    /* The listener and TLS identity stay as they were bound. */
    free((char *)next.listen);
    free((char *)next.tls_cert_file);
    free((char *)next.tls_key_file);
    next.listen = srv->opts.listen;
    next.tls_cert_file = srv->opts.tls_cert_file;
    next.tls_key_file = srv->opts.tls_key_file;
    next.metrics = srv->opts.metrics;
    srv->opts.listen = srv->opts.tls_cert_file = srv->opts.tls_key_file = NULL;
    opts_release(&srv->opts);
    srv->opts = next;
    return DAGI_OK;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr,
                      int socklen, void *arg)
{
    struct dagi_http_server *srv = arg;
    if (srv->draining) {
        evutil_closesocket(fd);
        return;
    }
    http_conn_accept(srv, fd, addr, socklen);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    /* EMFILE and friends: keep listening; the loop retries on the next event. */
    (void)l, (void)arg;
}

int dagi_http_server_listen(struct dagi_http_server *srv, struct dagi_error *err)
{
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);
    /* libevent's parser refuses port 0, which we allow (pick a free port):
     * parse with port 1, then clear it. */
    const char *listen = srv->opts.listen;
    size_t llen = strlen(listen);
    bool any_port = llen >= 2 && strcmp(listen + llen - 2, ":0") == 0;
    char tmp[300];
    if (any_port && llen < sizeof(tmp)) {
        snprintf(tmp, sizeof(tmp), "%.*s:1", (int)(llen - 2), listen);
        listen = tmp;
    }
    if (evutil_parse_sockaddr_port(listen, (struct sockaddr *)&ss, &sslen) != 0)
        return dagi_error_set(err, DAGI_EINVAL, "http: cannot parse listen address '%s'",
                              srv->opts.listen);
    if (any_port) {
        if (ss.ss_family == AF_INET6)
            ((struct sockaddr_in6 *)&ss)->sin6_port = 0;
        else
            ((struct sockaddr_in *)&ss)->sin_port = 0;
    }
    srv->listener = evconnlistener_new_bind(
        srv->base, on_accept, srv, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
        1024, (struct sockaddr *)&ss, sslen);
    if (!srv->listener)
        return dagi_error_set(err, DAGI_EIO, "http: cannot listen on %s: %s", srv->opts.listen,
                              strerror(errno));
    evconnlistener_set_error_cb(srv->listener, on_accept_error);
    socklen_t len = sizeof(ss);
    getsockname(evconnlistener_get_fd(srv->listener), (struct sockaddr *)&ss, &len);
    char ip[64] = "?";
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        evutil_inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
        snprintf(srv->address, sizeof(srv->address), "[%s]:%d", ip, ntohs(s6->sin6_port));
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        evutil_inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
        snprintf(srv->address, sizeof(srv->address), "%s:%d", ip, ntohs(s4->sin_port));
    }
    return DAGI_OK;
}

const char *dagi_http_server_address(struct dagi_http_server *srv)
{
    return srv->address;
}

/* --- drain --- */

static void on_drained_ev(evutil_socket_t fd, short what, void *arg)
{
    struct dagi_http_server *srv = arg;
    if (srv->drained_called || srv->nall > 0)
        return;
    srv->drained_called = true;
    if (srv->drain_timer)
        event_del(srv->drain_timer);
    if (srv->on_drained)
        srv->on_drained(srv->drained_ud);
}

void http_server_conn_gone(struct dagi_http_server *srv)
{
    if (srv->draining && srv->nall == 0 && !srv->drained_called)
        event_active(srv->drained_ev, EV_WRITE, 0);
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct dagi_http_server *srv = arg;
    struct conn *c = srv->conns;
    while (c) {
        struct conn *next = c->next;
        http_conn_destroy_now(c);
        c = next;
    }
    http_server_conn_gone(srv);
}

void dagi_http_server_drain(struct dagi_http_server *srv, void (*on_drained)(void *ud), void *ud)
{
    if (srv->draining)
        return;
    srv->draining = true;
    srv->on_drained = on_drained;
    srv->drained_ud = ud;
    if (srv->listener) {
        evconnlistener_free(srv->listener);
        srv->listener = NULL;
    }
    event_assign(srv->drained_ev, srv->base, -1, 0, on_drained_ev, srv);
    /* Idle connections (no request in flight, nothing left to send) go now;
     * the rest close after their current response (it says Connection: close). */
    struct conn *c = srv->conns;
    while (c) {
        struct conn *next = c->next;
        if (!c->req && c->state == CS_HEAD &&
            evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
            http_conn_destroy_now(c);
        c = next;
    }
    srv->drain_timer = evtimer_new(srv->base, on_drain_timeout, srv);
    struct timeval tv = {srv->opts.drain_timeout_ms / 1000, (srv->opts.drain_timeout_ms % 1000) * 1000};
    evtimer_add(srv->drain_timer, &tv);
    http_server_conn_gone(srv);
}

bool dagi_http_server_draining(struct dagi_http_server *srv)
{
    return srv->draining;
}

void dagi_http_server_free(struct dagi_http_server *srv)
{
    if (!srv)
        return;
    if (srv->listener)
        evconnlistener_free(srv->listener);
    srv->draining = true;
    srv->drained_called = true; /* freeing is not draining: no callback */
    /* Not from inside one of this server's callbacks: a connection in use
     * would only be marked dead and then outlive the server. */
    for (struct conn *c = srv->conns, *next; c; c = next) {
        next = c->next;
        http_conn_destroy_now(c);
    }
    if (srv->drain_timer)
        event_free(srv->drain_timer);
    event_free(srv->drained_ev);
    for (size_t i = 0; i < srv->nroutes; i++)
        route_free(srv->routes[i]);
    free(srv->routes);
    if (srv->tls_ctx)
        dagi_http_tls_ctx_free(srv->tls_ctx);
    opts_release(&srv->opts);
    free(srv);
}
