/* HTTP client backend: libcurl's multi-socket API on a libevent loop, for
 * every URL the native backend does not take (https://, host names, URLs
 * only curl's parser should judge).
 *
 * curl tells us which sockets to watch (on_curl_socket) and when to wake it
 * (on_curl_timer); we call curl_multi_socket_action() when either fires and
 * then settle(): collect finished transfers, reap cancelled calls, add calls
 * that were started while curl was busy.  The multi handle owns the
 * connection cache, so a finished transfer leaves its connection there for
 * the next call to the same host; easy handles are recycled only to save
 * their allocation.
 *
 * The one rule curl imposes that shapes this file: no curl_multi_* call may
 * be made from inside a curl callback.  User code runs inside curl callbacks
 * (on_headers and on_data come from the header and write callbacks), and
 * user code may cancel a call or start a new one.  So while curl is on the
 * stack (in_curl > 0) cancel only marks the call and the header and write
 * callbacks refuse its bytes, and start() leaves the new call unadded;
 * settle() does the real work once curl has returned.  A cancelled call
 * never runs a user callback again, whatever curl still does with it.
 */
#include "http_client_internal.h"

#include "err.h"
#include "mem.h"

#include <curl/curl.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SPARE_EASY 16

/* One watched socket; curl keeps the pointer for us (curl_multi_assign). */
struct sock_watch {
    struct sock_watch *prev, *next;
    struct curl_backend *cb;
    struct event *ev;
};

struct curl_call {
    struct dagi_http_call base;
    struct curl_call *prev, *next;
    CURL *easy;
    struct curl_slist *req_headers;
    bool added; /* easy is in the multi */
    char errbuf[CURL_ERROR_SIZE];
};

struct curl_backend {
    struct dagi_http_client *client;
    CURLM *multi;
    struct event *timer;
    struct curl_call *calls; /* every live call, added or not */
    struct sock_watch *watches;
    CURL *spare[MAX_SPARE_EASY];
    unsigned nspare;
    int in_curl; /* >0 while curl may be calling back into us */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    /* not thread safe in curl < 7.84, hence once; never cleaned up here
     * because other threads may still use curl (tests call cleanup) */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        abort();
}

/* --- sockets and timer: curl drives, libevent waits ------------------- */

static void settle(struct curl_backend *cb);

static void on_socket_ready(evutil_socket_t fd, short what, void *arg)
{
    struct sock_watch *watch = arg;
    struct curl_backend *cb = watch->cb;
    int action =
        ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    int running;
    /* `watch` may be freed inside this call (CURL_POLL_REMOVE) */
    cb->in_curl++;
    curl_multi_socket_action(cb->multi, fd, action, &running);
    cb->in_curl--;
    settle(cb);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct curl_backend *cb = arg;
    int running;
    cb->in_curl++;
    curl_multi_socket_action(cb->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    cb->in_curl--;
    settle(cb);
}

static void unwatch(struct curl_backend *cb, struct sock_watch *watch)
{
    if (watch->prev)
        watch->prev->next = watch->next;
    else
        cb->watches = watch->next;
    if (watch->next)
        watch->next->prev = watch->prev;
    event_free(watch->ev);
    free(watch);
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *clientp, void *socketp)
{
    (void)easy;
    struct curl_backend *cb = clientp;
    struct sock_watch *watch = socketp;
    struct event_base *base = cb->client->base;
    if (what == CURL_POLL_REMOVE) {
        if (watch)
            unwatch(cb, watch);
        return 0;
    }
    short events = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
                   ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
    if (!watch) {
        watch = dagi_xcalloc(1, sizeof(*watch));
        watch->cb = cb;
        watch->ev = event_new(base, fd, events, on_socket_ready, watch);
        if (!watch->ev)
            abort();
        watch->next = cb->watches;
        if (watch->next)
            watch->next->prev = watch;
        cb->watches = watch;
        curl_multi_assign(cb->multi, fd, watch);
    } else {
        /* the interest changed: one event per socket, reassigned in place
         * (legal once it is deleted) rather than freed and made again */
        event_del(watch->ev);
        event_assign(watch->ev, base, fd, events, on_socket_ready, watch);
    }
    event_add(watch->ev, NULL);
    return 0;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *clientp)
{
    (void)multi;
    struct curl_backend *cb = clientp;
    if (timeout_ms < 0) {
        evtimer_del(cb->timer);
        return 0;
    }
    /* curl forbids calling socket_action from here; timeout 0 means "as soon
     * as possible", which a zero timer on the loop is */
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evtimer_add(cb->timer, &tv);
    return 0;
}

/* Counts sockets rather than transfers, so a reused connection is visible
 * as the absence of a new socket.  SOCK_CLOEXEC keeps provider connections
 * out of the child processes the node forks (curl 7.88 does not set it). */
static curl_socket_t on_open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
    struct dagi_http_client *client = clientp;
    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKET_BAD;
    int fd = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
    if (fd < 0)
        return CURL_SOCKET_BAD;
    client->connections_opened++;
    return fd;
}

/* CURLOPT_CAINFO would replace the system trust store; ca_file adds to it.
 * curl has loaded the default store into the SSL_CTX before this runs. */
static CURLcode on_ssl_ctx(CURL *easy, void *ssl_ctx, void *clientp)
{
    (void)easy;
    struct dagi_http_client *client = clientp;
    if (SSL_CTX_load_verify_locations(ssl_ctx, client->ca_file, NULL) != 1)
        return CURLE_SSL_CACERT_BADFILE;
    return CURLE_OK;
}

/* --- per-call callbacks ------------------------------------------------- */

static size_t on_header_line(char *line, size_t size, size_t n, void *arg)
{
    struct curl_call *cc = arg;
    struct dagi_http_call *call = &cc->base;
    size_t len = size * n;
    /* returning less than len fails the transfer with CURLE_WRITE_ERROR */
    if (call->cancelled || call->abort_err)
        return 0;
    http_call_touch(call);
    if (call->headers_done)
        return len; /* trailers of a chunked body */
    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        /* a status line opens a new header block: after "100 Continue" the
         * real response follows and only its headers count */
        http_call_clear_headers(call);
        return len;
    }
    size_t end = len;
    while (end > 0 && (line[end - 1] == '\n' || line[end - 1] == '\r'))
        end--;
    if (end == 0) {
        long status = 0;
        curl_easy_getinfo(cc->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status < 200)
            return len; /* end of an interim 1xx block */
        return http_call_deliver_headers(call, status) ? 0 : len;
    }
    const char *colon = memchr(line, ':', end);
    /* obsolete line folding, garbage, or a NUL that would break the
     * "name\0value\0" layout: not worth keeping */
    if (!colon || line[0] == ' ' || line[0] == '\t' || memchr(line, '\0', end))
        return len;
    const char *value = colon + 1;
    while (value < line + end && (*value == ' ' || *value == '\t'))
        value++;
    while (end > (size_t)(value - line) && (line[end - 1] == ' ' || line[end - 1] == '\t'))
        end--;
    if (http_call_add_header(call, line, (size_t)(colon - line), value,
                             end - (size_t)(value - line)))
        return 0;
    return len;
}

static size_t on_body_bytes(char *data, size_t size, size_t n, void *arg)
{
    struct curl_call *cc = arg;
    struct dagi_http_call *call = &cc->base;
    size_t len = size * n;
    if (call->cancelled || call->abort_err)
        return 0;
    http_call_touch(call);
    return http_call_deliver_body(call, data, len) ? 0 : len;
}

/* --- call lifetime -------------------------------------------------------- */

static void release_call(struct curl_call *cc)
{
    struct curl_backend *cb = cc->base.backend;
    if (cc->prev)
        cc->prev->next = cc->next;
    else
        cb->calls = cc->next;
    if (cc->next)
        cc->next->prev = cc->prev;
    if (cc->added)
        curl_multi_remove_handle(cb->multi, cc->easy);
    /* reset drops our options and pointers; the connection stays in the
     * multi's cache either way */
    curl_easy_reset(cc->easy);
    if (cb->nspare < MAX_SPARE_EASY)
        cb->spare[cb->nspare++] = cc->easy;
    else
        curl_easy_cleanup(cc->easy);
    curl_slist_free_all(cc->req_headers);
    http_call_release(&cc->base);
}

/* Ends a call that is not cancelled: on_done, then free.  Never called while
 * curl is on the stack. */
static void finish_call(struct curl_call *cc, int err, const char *message)
{
    struct curl_backend *cb = cc->base.backend;
    long status = 0;
    double total = 0;
    curl_easy_getinfo(cc->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(cc->easy, CURLINFO_TOTAL_TIME, &total);
    if (cc->added) {
        curl_multi_remove_handle(cb->multi, cc->easy);
        cc->added = false;
    }
    http_call_complete(&cc->base, err, message, status, total);
    release_call(cc);
}

/* Maps curl's verdict on a finished transfer to a dagi_err and ends it. */
static void finish_transfer(struct curl_call *cc, CURLcode result)
{
    int err = DAGI_OK;
    const char *message = NULL;
    if (result == CURLE_OK) {
        /* fall through with err 0 */
    } else if (cc->base.abort_err) {
        /* one of our callbacks refused bytes; curl only saw a write error */
        err = cc->base.abort_err;
        message = cc->base.abort_msg;
    } else {
        /* the error buffer has the specific text ("Failed to connect to
         * 127.0.0.1 port 80 after 0 ms: Connection refused") */
        if (!cc->errbuf[0])
            snprintf(cc->errbuf, sizeof(cc->errbuf), "%s", curl_easy_strerror(result));
        message = cc->errbuf;
        if (result == CURLE_OPERATION_TIMEDOUT)
            err = DAGI_ETIMEDOUT;
        else if (result == CURLE_FILESIZE_EXCEEDED)
            err = DAGI_ETOOBIG;
        else
            err = DAGI_EIO;
    }
    finish_call(cc, err, message);
}

/* Runs after every curl_multi_socket_action, with curl off the stack.  Each
 * step may run user code (on_done) that cancels or starts calls, so the scan
 * restarts after anything that called out. */
static void settle(struct curl_backend *cb)
{
    if (cb->in_curl)
        return;
again:;
    CURLMsg *msg;
    int left;
    /* curl_multi_remove_handle drops a handle's pending DONE message, so a
     * call that an earlier on_done cancelled never comes out of this loop */
    while ((msg = curl_multi_info_read(cb->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        char *priv = NULL;
        CURLcode result = msg->data.result; /* msg dies with remove_handle */
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        struct curl_call *cc = (struct curl_call *)priv;
        if (cc->base.cancelled)
            release_call(cc);
        else
            finish_transfer(cc, result);
    }
    for (struct curl_call *cc = cb->calls, *next; cc; cc = next) {
        next = cc->next;
        if (cc->base.cancelled) {
            release_call(cc);
        } else if (!cc->added) {
            CURLMcode mc = curl_multi_add_handle(cb->multi, cc->easy);
            if (mc == CURLM_OK) {
                cc->added = true;
                continue;
            }
            http_call_abort(&cc->base, DAGI_EIO, "curl_multi_add_handle: %s",
                            curl_multi_strerror(mc));
            finish_call(cc, DAGI_EIO, cc->base.abort_msg);
            goto again;
        }
    }
}

/* --- the backend ---------------------------------------------------------- */

static void *curl_open(struct dagi_http_client *client)
{
    pthread_once(&curl_once, curl_init_once);
    struct curl_backend *cb = dagi_xcalloc(1, sizeof(*cb));
    cb->client = client;
    cb->timer = evtimer_new(client->base, on_timer, cb);
    cb->multi = curl_multi_init();
    if (!cb->timer || !cb->multi)
        abort(); /* allocation failure, per the policy in err.h */
    long per_host = (long)client->max_per_host, total = (long)client->max_total;
    curl_multi_setopt(cb->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(cb->multi, CURLMOPT_SOCKETDATA, cb);
    curl_multi_setopt(cb->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(cb->multi, CURLMOPT_TIMERDATA, cb);
    curl_multi_setopt(cb->multi, CURLMOPT_MAX_HOST_CONNECTIONS, per_host);
    curl_multi_setopt(cb->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, total);
    /* the idle-connection cache; curl's default (4 x handles added) would
     * drop keep-alive connections when few calls are in flight */
    curl_multi_setopt(cb->multi, CURLMOPT_MAXCONNECTS, total);
    return cb;
}

static void curl_close(void *backend)
{
    struct curl_backend *cb = backend;
    while (cb->calls) {
        cb->calls->base.cancelled = true;
        release_call(cb->calls);
    }
    for (unsigned i = 0; i < cb->nspare; i++)
        curl_easy_cleanup(cb->spare[i]);
    curl_multi_cleanup(cb->multi);
    /* curl closes cached connections in cleanup but does not promise a
     * CURL_POLL_REMOVE for each */
    while (cb->watches)
        unwatch(cb, cb->watches);
    event_free(cb->timer);
    free(cb);
}

static void configure_easy(struct curl_backend *cb, struct curl_call *cc,
                           const struct dagi_http_request_opts *opts)
{
    struct dagi_http_client *client = cb->client;
    CURL *e = cc->easy;
    curl_easy_setopt(e, CURLOPT_URL, opts->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, cc);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, cc->errbuf);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L); /* no SIGALRM for DNS timeouts */
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    /* "" overrides http_proxy/https_proxy from the environment: a node's
     * outbound traffic goes where its config says, and tests talk to
     * 127.0.0.1 */
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, client->user_agent);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, client);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header_line);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, cc);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body_bytes);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, cc);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(opts->connect_timeout_ms ? opts->connect_timeout_ms
                                                     : HTTP_DEFAULT_CONNECT_TIMEOUT_MS));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)opts->timeout_ms);
    if (client->ca_file) {
        curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
        curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, client);
    }
    if (!opts->on_data) {
        /* lets curl refuse early when Content-Length is already over the cap */
        curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)cc->base.body.cap);
    }

    const char *method = opts->method ? opts->method : (opts->body ? "POST" : "GET");
    if (opts->body || strcmp(method, "POST") == 0) {
        /* size first: COPYPOSTFIELDS copies that many bytes (binary safe) */
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)opts->body_len);
        curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, opts->body ? opts->body : "");
    }
    /* POSTFIELDS makes curl send POST; any other verb with a body, and any
     * verb but GET without one, is named explicitly */
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "POST") != 0 && (opts->body || strcmp(method, "GET") != 0))
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);

    /* curl sends "Expect: 100-continue" before large POST bodies and then
     * waits up to a second for the interim reply; providers never need it */
    cc->req_headers = curl_slist_append(NULL, "Expect:");
    for (const char *const *h = opts->headers; h && *h; h++)
        cc->req_headers = curl_slist_append(cc->req_headers, *h);
    if (!cc->req_headers)
        abort();
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, cc->req_headers);
}

static int curl_start(void *backend, struct dagi_http_call *call,
                      const struct dagi_http_request_opts *opts, const struct http_url *url)
{
    (void)url; /* curl parses the URL itself */
    struct curl_backend *cb = backend;
    struct curl_call *cc = (struct curl_call *)call;
    cc->easy = cb->nspare ? cb->spare[--cb->nspare] : curl_easy_init();
    if (!cc->easy)
        abort();
    configure_easy(cb, cc, opts);
    /* inside a curl callback the add waits for settle(); otherwise add now
     * (curl then asks for a zero timeout and the transfer starts on the
     * next loop iteration, never inside this function) */
    if (!cb->in_curl) {
        if (curl_multi_add_handle(cb->multi, cc->easy) != CURLM_OK) {
            curl_easy_cleanup(cc->easy);
            curl_slist_free_all(cc->req_headers);
            return DAGI_EINTERNAL;
        }
        cc->added = true;
    }
    cc->next = cb->calls;
    if (cc->next)
        cc->next->prev = cc;
    cb->calls = cc;
    return DAGI_OK;
}

static void curl_cancel(struct dagi_http_call *call)
{
    struct curl_backend *cb = call->backend;
    if (!cb->in_curl)
        release_call((struct curl_call *)call);
    /* else settle() frees it once curl has returned */
}

static void curl_expire(struct dagi_http_call *call, int err)
{
    struct curl_backend *cb = call->backend;
    /* a timer callback: curl is not on the stack, so the handle can go now */
    finish_call((struct curl_call *)call, err, call->abort_msg);
    settle(cb);
}

const struct http_backend_ops http_backend_curl = {
    .name = "curl",
    .caps = HTTP_NEEDS_TLS | HTTP_NEEDS_RESOLVER | HTTP_NEEDS_ANY_URL,
    .call_size = sizeof(struct curl_call),
    .open = curl_open,
    .close = curl_close,
    .start = curl_start,
    .cancel = curl_cancel,
    .expire = curl_expire,
};
