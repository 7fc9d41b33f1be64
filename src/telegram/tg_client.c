/* The Bot API client (tg_client.h): one call = a chain of tries, each an
 * HTTP request, with a timer in between when Telegram or the network asks
 * for patience. */
#include "telegram/tg_client.h"

#include <event2/event.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/http_client.h"
#include "core/log.h"
#include "core/mem.h"

#define DEFAULT_ATTEMPTS 5
#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_BACKOFF_MS 500
#define MAX_BACKOFF_MS 30000
#define URL_CAP 2048

struct dagi_tg_client {
    struct event_base *base;
    struct dagi_http_client *http;
    char *api_base;
    unsigned attempts, timeout_ms, backoff_ms;
    struct dagi_tg_call *calls; /* in flight, for free */
};

struct dagi_tg_call {
    struct dagi_tg_client *client;
    struct dagi_tg_call *prev, *next;
    char url[URL_CAP]; /* holds the token: wiped on free, never logged */
    char method[64];
    char *body; /* NULL for a download */
    size_t body_len, max_bytes;
    unsigned attempt;
    struct dagi_http_call *http;
    struct event *timer;
    dagi_tg_done_fn done;
    dagi_tg_file_fn file_done;
    void *ud;
};

struct dagi_tg_client *dagi_tg_client_new(struct event_base *base, struct dagi_http_client *http,
                                          const struct dagi_tg_client_opts *opts)
{
    struct dagi_tg_client *c = dagi_xcalloc(1, sizeof(*c));
    c->base = base;
    c->http = http;
    c->api_base = dagi_xstrdup(opts && opts->api_base ? opts->api_base : DAGI_TG_API_BASE);
    c->attempts = opts && opts->attempts ? opts->attempts : DEFAULT_ATTEMPTS;
    c->timeout_ms = opts && opts->timeout_ms ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
    c->backoff_ms = opts && opts->backoff_ms ? opts->backoff_ms : DEFAULT_BACKOFF_MS;
    return c;
}

static void call_free(struct dagi_tg_call *call)
{
    struct dagi_tg_client *c = call->client;
    if (call->prev)
        call->prev->next = call->next;
    else
        c->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    if (call->http)
        dagi_http_call_cancel(call->http);
    if (call->timer)
        event_free(call->timer);
    free(call->body);
    sodium_memzero(call->url, sizeof(call->url));
    free(call);
}

void dagi_tg_call_cancel(struct dagi_tg_call *call)
{
    if (call)
        call_free(call);
}

void dagi_tg_client_free(struct dagi_tg_client *c)
{
    if (!c)
        return;
    while (c->calls)
        call_free(c->calls);
    free(c->api_base);
    free(c);
}

static void finish(struct dagi_tg_call *call, int err, const json_t *result,
                   const struct dagi_tg_api_error *api_err, const void *data, size_t len,
                   const char *message)
{
    call->http = NULL;
    if (call->file_done)
        call->file_done(call->ud, err, data, len, message);
    else
        call->done(call->ud, err, result, api_err, message);
    call_free(call);
}

static int start_try(struct dagi_tg_call *call);

static void on_retry_timer(evutil_socket_t fd, short what, void *ud)
{
    (void)fd, (void)what;
    struct dagi_tg_call *call = ud;
    if (start_try(call))
        finish(call, DAGI_EUNAVAIL, NULL, NULL, NULL, 0, "the HTTP client refused the call");
}

/* Another try after delay_ms, or the end when the tries are used up. */
static void retry_or_finish(struct dagi_tg_call *call, unsigned delay_ms, int err,
                            const struct dagi_tg_api_error *api_err, const char *message)
{
    if (call->attempt >= call->client->attempts) {
        finish(call, err, NULL, api_err, NULL, 0, message);
        return;
    }
    dagi_log_warn(NULL, "telegram: Bot API call failed, retrying", "method", call->method,
                  "error", message);
    if (!call->timer)
        call->timer = evtimer_new(call->client->base, on_retry_timer, call);
    struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};
    evtimer_add(call->timer, &tv);
}

static unsigned backoff_of(const struct dagi_tg_call *call)
{
    unsigned ms = call->client->backoff_ms;
    for (unsigned i = 1; i < call->attempt && ms < MAX_BACKOFF_MS; i++)
        ms *= 2;
    ms = ms < MAX_BACKOFF_MS ? ms : MAX_BACKOFF_MS;
    return ms / 2 + randombytes_uniform(ms / 2 + 1); /* jitter: calls spread out */
}

static void on_http_done(struct dagi_http_call *http, const struct dagi_http_response *resp,
                         void *ud)
{
    (void)http;
    struct dagi_tg_call *call = ud;
    call->http = NULL;
    char message[512];
    if (resp->err) {
        snprintf(message, sizeof(message), "%s: %s", call->method,
                 resp->err == DAGI_ETOOBIG ? "the response is too large"
                                           : dagi_strerror(resp->err));
        if (resp->err == DAGI_ETOOBIG)
            finish(call, DAGI_ETOOBIG, NULL, NULL, NULL, 0, message);
        else
            retry_or_finish(call, backoff_of(call), DAGI_EUNAVAIL, NULL, message);
        return;
    }
    if (call->file_done) {
        if (resp->status == 200) {
            finish(call, 0, NULL, NULL, resp->body, resp->body_len, NULL);
            return;
        }
        snprintf(message, sizeof(message), "file download: HTTP %ld", resp->status);
        if (resp->status >= 500 || resp->status == 429)
            retry_or_finish(call, backoff_of(call), DAGI_EUNAVAIL, NULL, message);
        else
            finish(call, resp->status == 404 ? DAGI_ENOENT : DAGI_EUNAVAIL, NULL, NULL, NULL, 0,
                   message);
        return;
    }
    json_t *result = NULL;
    struct dagi_tg_api_error api_err = {0};
    struct dagi_error perr = {0};
    int rc = dagi_tg_api_parse_response(resp->body, resp->body_len, &result, &api_err, &perr);
    if (rc == 0) {
        finish(call, 0, result, NULL, NULL, 0, NULL);
        json_decref(result);
        return;
    }
    if (rc != DAGI_EUNAVAIL) {
        /* Not the Bot API's JSON: a proxy's error page, or a 5xx body. */
        snprintf(message, sizeof(message), "%s: HTTP %ld: %.400s", call->method, resp->status,
                 perr.message);
        if (resp->status >= 500)
            retry_or_finish(call, backoff_of(call), DAGI_EUNAVAIL, NULL, message);
        else
            finish(call, rc, NULL, NULL, NULL, 0, message);
        return;
    }
    snprintf(message, sizeof(message), "%s: %.400s", call->method, perr.message);
    if (!dagi_tg_error_retryable(&api_err)) {
        int err = api_err.error_code == 401 || api_err.error_code == 403 ? DAGI_EPERM
                  : api_err.error_code == 404                          ? DAGI_ENOENT
                                                                       : DAGI_EINVAL;
        finish(call, err, NULL, &api_err, NULL, 0, message);
        return;
    }
    /* Flood control says exactly how long to wait: waiting less is refused
     * again, waiting more is slow for nothing. */
    unsigned delay = api_err.retry_after_s > 0 ? (unsigned)api_err.retry_after_s * 1000
                                               : backoff_of(call);
    retry_or_finish(call, delay, DAGI_EUNAVAIL, &api_err, message);
}

static int start_try(struct dagi_tg_call *call)
{
    call->attempt++;
    static const char *const json_headers[] = {"Content-Type: application/json", NULL};
    struct dagi_http_request_opts o = {
        .method = call->body ? "POST" : "GET",
        .url = call->url,
        .headers = call->body ? json_headers : NULL,
        .body = call->body,
        .body_len = call->body_len,
        .timeout_ms = call->client->timeout_ms,
        .max_response_bytes = call->max_bytes,
        .on_done = on_http_done,
        .ud = call,
    };
    return dagi_http_client_request(call->client->http, &o, &call->http);
}

static struct dagi_tg_call *call_new(struct dagi_tg_client *c, const char *method, void *ud)
{
    struct dagi_tg_call *call = dagi_xcalloc(1, sizeof(*call));
    call->client = c;
    call->ud = ud;
    snprintf(call->method, sizeof(call->method), "%s", method);
    call->next = c->calls;
    if (call->next)
        call->next->prev = call;
    c->calls = call;
    return call;
}

/* The URL is built (url_rc): start the first try, or drop the call. */
static int launch(struct dagi_tg_call *call, int url_rc, struct dagi_tg_call **out)
{
    int rc = url_rc ? url_rc : start_try(call);
    if (rc) {
        call_free(call);
        return rc;
    }
    if (out)
        *out = call;
    return DAGI_OK;
}

int dagi_tg_call(struct dagi_tg_client *c, const char *token, const char *method, json_t *body,
                 dagi_tg_done_fn done, void *ud, struct dagi_tg_call **out)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : dagi_xstrdup("{}");
    json_decref(body);
    if (!text || !token || !*token)
        return free(text), DAGI_EINVAL;
    struct dagi_tg_call *call = call_new(c, method, ud);
    call->done = done;
    call->body = text;
    call->body_len = strlen(text);
    call->max_bytes = DAGI_TG_API_MAX_RESPONSE_BYTES;
    return launch(call,
                  dagi_tg_method_url(call->url, sizeof(call->url), c->api_base, token, method),
                  out);
}

int dagi_tg_download(struct dagi_tg_client *c, const char *token, const char *file_path,
                     size_t max_bytes, dagi_tg_file_fn done, void *ud, struct dagi_tg_call **out)
{
    if (!token || !*token)
        return DAGI_EINVAL;
    struct dagi_tg_call *call = call_new(c, "file download", ud);
    call->file_done = done;
    call->max_bytes = max_bytes;
    return launch(call,
                  dagi_tg_file_url(call->url, sizeof(call->url), c->api_base, token, file_path),
                  out);
}
