/* HTTP client: libcurl's multi-socket API on a libevent loop.
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
 * stack (client->in_curl > 0) cancel only marks the call and the header and
 * write callbacks refuse its bytes, and request() leaves the new call
 * unadded; settle() does the real work once curl has returned.  A cancelled
 * call never runs a user callback again, whatever curl still does with it.
 */
#include "http_client.h"

#include "buf.h"
#include "dagi_build.h"
#include "err.h"
#include "mem.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define DEFAULT_PER_HOST 1024
#define DEFAULT_TOTAL 4096
#define DEFAULT_CONNECT_TIMEOUT_MS 10000
#define DEFAULT_MAX_RESPONSE (16u << 20)
#define MAX_HEADER_BYTES (256u << 10) /* all response headers of one call */
#define MAX_SPARE_EASY 16

/* One watched socket; curl keeps the pointer for us (curl_multi_assign). */
struct sock_watch {
    struct sock_watch *prev, *next;
    struct dagi_http_client *client;
    struct event *ev;
};

struct dagi_http_call {
    struct dagi_http_call *prev, *next;
    struct dagi_http_client *client;
    CURL *easy;
    struct curl_slist *req_headers;
    struct dagi_buf body;     /* buffered response (unused with on_data) */
    struct dagi_buf headers;  /* response headers as "name\0value\0" pairs */
    struct event *idle_timer; /* NULL without an idle timeout */
    struct timeval idle;
    int (*on_headers)(struct dagi_http_call *, long, void *);
    int (*on_data)(struct dagi_http_call *, const char *, size_t, void *);
    void (*on_done)(struct dagi_http_call *, const struct dagi_http_response *, void *);
    void *ud;
    int abort_err;      /* why our callback failed the transfer, or 0 */
    char abort_msg[96]; /* its text: curl overwrites errbuf when the transfer fails */
    bool added;         /* easy is in the multi */
    bool cancelled;     /* no user callback may run; free once curl lets go */
    bool headers_done;  /* on_headers delivered (later header lines are trailers) */
    bool finishing;     /* inside on_done: cancel is a no-op */
    char errbuf[CURL_ERROR_SIZE];
};

struct dagi_http_client {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    struct dagi_http_call *calls; /* every live call, added or not */
    struct sock_watch *watches;
    CURL *spare[MAX_SPARE_EASY];
    unsigned nspare;
    int in_curl; /* >0 while curl may be calling back into us */
    uint64_t connections_opened;
    char *user_agent;
    char *ca_file;
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

static void settle(struct dagi_http_client *client);

static void on_socket_ready(evutil_socket_t fd, short what, void *arg)
{
    struct sock_watch *watch = arg;
    struct dagi_http_client *client = watch->client;
    int action =
        ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    int running;
    /* `watch` may be freed inside this call (CURL_POLL_REMOVE) */
    client->in_curl++;
    curl_multi_socket_action(client->multi, fd, action, &running);
    client->in_curl--;
    settle(client);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct dagi_http_client *client = arg;
    int running;
    client->in_curl++;
    curl_multi_socket_action(client->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    client->in_curl--;
    settle(client);
}

static void unwatch(struct dagi_http_client *client, struct sock_watch *watch)
{
    if (watch->prev)
        watch->prev->next = watch->next;
    else
        client->watches = watch->next;
    if (watch->next)
        watch->next->prev = watch->prev;
    event_free(watch->ev);
    free(watch);
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *clientp, void *socketp)
{
    (void)easy;
    struct dagi_http_client *client = clientp;
    struct sock_watch *watch = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (watch)
            unwatch(client, watch);
        return 0;
    }
    short events = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
                   ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
    if (!watch) {
        watch = dagi_xcalloc(1, sizeof(*watch));
        watch->client = client;
        watch->ev = event_new(client->base, fd, events, on_socket_ready, watch);
        if (!watch->ev)
            abort();
        watch->next = client->watches;
        if (watch->next)
            watch->next->prev = watch;
        client->watches = watch;
        curl_multi_assign(client->multi, fd, watch);
    } else {
        /* the interest changed: one event per socket, reassigned in place
         * (legal once it is deleted) rather than freed and made again */
        event_del(watch->ev);
        event_assign(watch->ev, client->base, fd, events, on_socket_ready, watch);
    }
    event_add(watch->ev, NULL);
    return 0;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *clientp)
{
    (void)multi;
    struct dagi_http_client *client = clientp;
    if (timeout_ms < 0) {
        evtimer_del(client->timer);
        return 0;
    }
    /* curl forbids calling socket_action from here; timeout 0 means "as soon
     * as possible", which a zero timer on the loop is */
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evtimer_add(client->timer, &tv);
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

static void touch_idle_timer(struct dagi_http_call *call)
{
    if (call->idle_timer)
        evtimer_add(call->idle_timer, &call->idle); /* re-adding reschedules */
}

static size_t on_header_line(char *line, size_t size, size_t n, void *arg)
{
    struct dagi_http_call *call = arg;
    size_t len = size * n;
    /* returning less than len fails the transfer with CURLE_WRITE_ERROR */
    if (call->cancelled || call->abort_err)
        return 0;
    touch_idle_timer(call);
    if (call->headers_done)
        return len; /* trailers of a chunked body */
    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        /* a status line opens a new header block: after "100 Continue" the
         * real response follows and only its headers count */
        dagi_buf_reset(&call->headers);
        return len;
    }
    size_t end = len;
    while (end > 0 && (line[end - 1] == '\n' || line[end - 1] == '\r'))
        end--;
    if (end == 0) {
        long status = 0;
        curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status < 200)
            return len; /* end of an interim 1xx block */
        call->headers_done = true;
        if (call->on_headers) {
            int rc = call->on_headers(call, status, call->ud);
            if (call->cancelled)
                return 0;
            if (rc) {
                call->abort_err = DAGI_ECANCELED;
                snprintf(call->abort_msg, sizeof(call->abort_msg), "aborted by on_headers");
                return 0;
            }
        }
        return len;
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
    if (dagi_buf_append(&call->headers, line, (size_t)(colon - line)) ||
        dagi_buf_append_char(&call->headers, '\0') ||
        dagi_buf_append(&call->headers, value, end - (size_t)(value - line)) ||
        dagi_buf_append_char(&call->headers, '\0')) {
        snprintf(call->abort_msg, sizeof(call->abort_msg), "response headers over %u bytes",
                 MAX_HEADER_BYTES);
        call->abort_err = DAGI_ETOOBIG;
        return 0;
    }
    return len;
}

static size_t on_body_bytes(char *data, size_t size, size_t n, void *arg)
{
    struct dagi_http_call *call = arg;
    size_t len = size * n;
    if (call->cancelled || call->abort_err)
        return 0;
    touch_idle_timer(call);
    if (call->on_data) {
        int rc = call->on_data(call, data, len, call->ud);
        if (call->cancelled)
            return 0;
        if (rc) {
            call->abort_err = DAGI_ECANCELED;
            snprintf(call->abort_msg, sizeof(call->abort_msg), "aborted by on_data");
            return 0;
        }
        return len;
    }
    if (dagi_buf_append(&call->body, data, len)) {
        snprintf(call->abort_msg, sizeof(call->abort_msg), "response body over %zu bytes",
                 call->body.cap);
        call->abort_err = DAGI_ETOOBIG;
        return 0;
    }
    return len;
}

/* --- call lifetime -------------------------------------------------------- */

static void release_call(struct dagi_http_call *call)
{
    struct dagi_http_client *client = call->client;
    if (call->prev)
        call->prev->next = call->next;
    else
        client->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    if (call->added)
        curl_multi_remove_handle(client->multi, call->easy);
    if (call->idle_timer)
        event_free(call->idle_timer);
    /* reset drops our options and pointers; the connection stays in the
     * multi's cache either way */
    curl_easy_reset(call->easy);
    if (client->nspare < MAX_SPARE_EASY)
        client->spare[client->nspare++] = call->easy;
    else
        curl_easy_cleanup(call->easy);
    curl_slist_free_all(call->req_headers);
    dagi_buf_release(&call->body);
    dagi_buf_release(&call->headers);
    free(call);
}

/* Ends a call that is not cancelled: on_done, then free.  Never called while
 * curl is on the stack. */
static void finish_call(struct dagi_http_call *call, int err, const char *message)
{
    struct dagi_http_response resp = {.err = err, .error_message = err ? message : ""};
    curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &resp.status);
    curl_easy_getinfo(call->easy, CURLINFO_TOTAL_TIME, &resp.total_seconds);
    if (!call->on_data) {
        resp.body = dagi_buf_str(&call->body);
        resp.body_len = call->body.len;
    }
    if (call->added) {
        curl_multi_remove_handle(call->client->multi, call->easy);
        call->added = false;
    }
    if (call->idle_timer)
        evtimer_del(call->idle_timer);
    if (!call->cancelled && call->on_done) {
        call->finishing = true;
        call->on_done(call, &resp, call->ud);
    }
    release_call(call);
}

/* Maps curl's verdict on a finished transfer to a dagi_err and ends it. */
static void finish_transfer(struct dagi_http_call *call, CURLcode result)
{
    int err = DAGI_OK;
    const char *message = NULL;
    if (result == CURLE_OK) {
        /* fall through with err 0 */
    } else if (call->abort_err) {
        /* one of our callbacks refused bytes; curl only saw a write error */
        err = call->abort_err;
        message = call->abort_msg;
    } else {
        /* the error buffer has the specific text ("Failed to connect to
         * 127.0.0.1 port 80 after 0 ms: Connection refused") */
        if (!call->errbuf[0])
            snprintf(call->errbuf, sizeof(call->errbuf), "%s", curl_easy_strerror(result));
        message = call->errbuf;
        if (result == CURLE_OPERATION_TIMEDOUT)
            err = DAGI_ETIMEDOUT;
        else if (result == CURLE_FILESIZE_EXCEEDED)
            err = DAGI_ETOOBIG;
        else
            err = DAGI_EIO;
    }
    finish_call(call, err, message);
}

static void on_idle_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct dagi_http_call *call = arg;
    struct dagi_http_client *client = call->client;
    snprintf(call->abort_msg, sizeof(call->abort_msg), "no data received for %ld ms",
             (long)(call->idle.tv_sec * 1000 + call->idle.tv_usec / 1000));
    /* a timer callback: curl is not on the stack, so the handle can go now */
    finish_call(call, DAGI_ETIMEDOUT, call->abort_msg);
    settle(client);
}

/* Runs after every curl_multi_socket_action, with curl off the stack.  Each
 * step may run user code (on_done) that cancels or starts calls, so the scan
 * restarts after anything that called out. */
static void settle(struct dagi_http_client *client)
{
    if (client->in_curl)
        return;
again:;
    CURLMsg *msg;
    int left;
    /* curl_multi_remove_handle drops a handle's pending DONE message, so a
     * call that an earlier on_done cancelled never comes out of this loop */
    while ((msg = curl_multi_info_read(client->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        char *priv = NULL;
        CURLcode result = msg->data.result; /* msg dies with remove_handle */
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        struct dagi_http_call *call = (struct dagi_http_call *)priv;
        if (call->cancelled)
            release_call(call);
        else
            finish_transfer(call, result);
    }
    for (struct dagi_http_call *call = client->calls, *next; call; call = next) {
        next = call->next;
        if (call->cancelled) {
            release_call(call);
        } else if (!call->added) {
            CURLMcode mc = curl_multi_add_handle(client->multi, call->easy);
            if (mc == CURLM_OK) {
                call->added = true;
                continue;
            }
            snprintf(call->abort_msg, sizeof(call->abort_msg), "curl_multi_add_handle: %s",
                     curl_multi_strerror(mc));
            finish_call(call, DAGI_EIO, call->abort_msg);
            goto again;
        }
    }
}

/* --- public API ----------------------------------------------------------- */

struct dagi_http_client *dagi_http_client_new(struct event_base *base,
                                              const struct dagi_http_client_opts *opts)
{
    pthread_once(&curl_once, curl_init_once);
    struct dagi_http_client_opts defaults = {0};
    if (!opts)
        opts = &defaults;
    struct dagi_http_client *client = dagi_xcalloc(1, sizeof(*client));
    client->base = base;
    client->user_agent =
        opts->user_agent ? dagi_xstrdup(opts->user_agent) : dagi_xstrdup("dagi/" DAGI_VERSION);
    client->ca_file = opts->ca_file ? dagi_xstrdup(opts->ca_file) : NULL;
    client->timer = evtimer_new(base, on_timer, client);
    client->multi = curl_multi_init();
    if (!client->timer || !client->multi)
        abort(); /* allocation failure, per the policy in err.h */

    long per_host =
        opts->max_connections_per_host ? (long)opts->max_connections_per_host : DEFAULT_PER_HOST;
    long total = opts->max_total_connections ? (long)opts->max_total_connections : DEFAULT_TOTAL;
    curl_multi_setopt(client->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(client->multi, CURLMOPT_SOCKETDATA, client);
    curl_multi_setopt(client->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(client->multi, CURLMOPT_TIMERDATA, client);
    curl_multi_setopt(client->multi, CURLMOPT_MAX_HOST_CONNECTIONS, per_host);
    curl_multi_setopt(client->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, total);
    /* the idle-connection cache; curl's default (4 x handles added) would
     * drop keep-alive connections when few calls are in flight */
    curl_multi_setopt(client->multi, CURLMOPT_MAXCONNECTS, total);
    return client;
}

void dagi_http_client_free(struct dagi_http_client *client)
{
    if (!client)
        return;
    while (client->calls) {
        client->calls->cancelled = true;
        release_call(client->calls);
    }
    for (unsigned i = 0; i < client->nspare; i++)
        curl_easy_cleanup(client->spare[i]);
    curl_multi_cleanup(client->multi);
    /* curl closes cached connections in cleanup but does not promise a
     * CURL_POLL_REMOVE for each */
    while (client->watches)
        unwatch(client, client->watches);
    event_free(client->timer);
    free(client->user_agent);
    free(client->ca_file);
    free(client);
}

static bool header_is_safe(const char *h)
{
    /* a CR or LF would let a caller's value smuggle in another header */
    return !strpbrk(h, "\r\n") && strchr(h, ':');
}

static void configure_easy(struct dagi_http_client *client, struct dagi_http_call *call,
                           const struct dagi_http_request_opts *opts)
{
    CURL *e = call->easy;
    curl_easy_setopt(e, CURLOPT_URL, opts->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, call);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, call->errbuf);
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
    curl_easy_setopt(e, CURLOPT_HEADERDATA, call);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body_bytes);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, call);
    curl_easy_setopt(
        e, CURLOPT_CONNECTTIMEOUT_MS,
        (long)(opts->connect_timeout_ms ? opts->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)opts->timeout_ms);
    if (client->ca_file) {
        curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
        curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, client);
    }
    if (!opts->on_data) {
        /* lets curl refuse early when Content-Length is already over the cap */
        curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)call->body.cap);
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
    call->req_headers = curl_slist_append(NULL, "Expect:");
    for (const char *const *h = opts->headers; h && *h; h++)
        call->req_headers = curl_slist_append(call->req_headers, *h);
    if (!call->req_headers)
        abort();
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, call->req_headers);
}

int dagi_http_client_request(struct dagi_http_client *client,
                             const struct dagi_http_request_opts *opts, struct dagi_http_call **out)
{
    if (!client || !opts || !opts->url || !opts->url[0] || (opts->body_len && !opts->body))
        return DAGI_EINVAL;
    if (opts->method && (!opts->method[0] || strpbrk(opts->method, " \r\n")))
        return DAGI_EINVAL;
    for (const char *const *h = opts->headers; h && *h; h++)
        if (!header_is_safe(*h))
            return DAGI_EINVAL;

    struct dagi_http_call *call = dagi_xcalloc(1, sizeof(*call));
    call->client = client;
    call->on_headers = opts->on_headers;
    call->on_data = opts->on_data;
    call->on_done = opts->on_done;
    call->ud = opts->ud;
    dagi_buf_init(&call->body,
                  opts->max_response_bytes ? opts->max_response_bytes : DEFAULT_MAX_RESPONSE);
    dagi_buf_init(&call->headers, MAX_HEADER_BYTES);
    call->easy = client->nspare ? client->spare[--client->nspare] : curl_easy_init();
    if (!call->easy)
        abort();
    configure_easy(client, call, opts);

    if (opts->idle_timeout_ms) {
        /* CURLOPT_LOW_SPEED_TIME counts whole seconds, too coarse for a
         * token stream; our own timer is pushed back by every header line
         * and body chunk.  It starts now, so it also bounds connecting and
         * the wait for the first byte. */
        call->idle.tv_sec = opts->idle_timeout_ms / 1000;
        call->idle.tv_usec = (opts->idle_timeout_ms % 1000) * 1000;
        call->idle_timer = evtimer_new(client->base, on_idle_timeout, call);
        if (!call->idle_timer)
            abort();
        evtimer_add(call->idle_timer, &call->idle);
    }

    call->next = client->calls;
    if (call->next)
        call->next->prev = call;
    client->calls = call;
    /* inside a curl callback the add waits for settle(); otherwise add now
     * (curl then asks for a zero timeout and the transfer starts on the
     * next loop iteration, never inside this function) */
    if (!client->in_curl) {
        CURLMcode mc = curl_multi_add_handle(client->multi, call->easy);
        if (mc != CURLM_OK) {
            release_call(call);
            return DAGI_EINTERNAL;
        }
        call->added = true;
    }
    if (out)
        *out = call;
    return DAGI_OK;
}

void dagi_http_call_cancel(struct dagi_http_call *call)
{
    if (!call || call->cancelled || call->finishing)
        return;
    call->cancelled = true;
    if (call->idle_timer)
        evtimer_del(call->idle_timer);
    if (!call->client->in_curl)
        release_call(call);
    /* else settle() frees it once curl has returned */
}

const char *dagi_http_call_header(struct dagi_http_call *call, const char *name)
{
    const char *p = call->headers.data;
    const char *end = p + call->headers.len;
    /* header lines with a NUL are never stored, so names and values pair up */
    while (p && p < end) {
        const char *value = p + strlen(p) + 1;
        if (value >= end)
            break;
        if (strcasecmp(p, name) == 0)
            return value;
        p = value + strlen(value) + 1;
    }
    return NULL;
}

uint64_t dagi_http_client_connections_opened(struct dagi_http_client *client)
{
    return client->connections_opened;
}
