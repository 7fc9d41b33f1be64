/* fake_upstream: a fake model provider for dagi's tests and benchmarks.
 *
 * It speaks the OpenAI-compatible API (/v1/chat/completions, /v1/embeddings,
 * /v1/models) and Ollama's native API (/api/chat, /api/embed, /api/tags,
 * /api/ps), answers deterministically ("echo: <last user message>"), and
 * misbehaves on demand: latency, slow tokens, error statuses, connections
 * that die mid-stream, tool calls.  Tests steer it per request with
 * X-Fake-* headers or per model with the /_fake/ control API, and read what
 * it saw from GET /_fake/stats.  tests/fake/README.md is the user's guide.
 *
 * Why libevent's evhttp and not dagi's own HTTP server: this program is the
 * *other side* of dagi's HTTP client.  A fake that parsed and framed HTTP
 * with dagi's own parser would share its bugs, and a symmetric framing bug
 * would pass every test.  evhttp also lets us do what dagi's server rightly
 * refuses to offer: drop a connection in the middle of a chunked response.
 * Its weakness (whole bodies in memory) is irrelevant here: bodies are
 * capped at --max-body and every answer is small.
 *
 * One thread, one event loop.  Per-request work is a JSON parse, a scan of
 * the messages and one JSON dump; nothing is logged unless --verbose.
 *
 * Memory: small bookkeeping goes through dagi_x* (abort on OOM, as in all of
 * dagi); everything sized by input is bounded by the body cap.
 *
 * evhttp ownership rules this file relies on (libevent 2.1 http.c):
 *  - A request whose reply has started but not ended (userdone == 0) is
 *    *detached* from its connection when the client goes away: the
 *    connection is freed, its close callback runs, and the request becomes
 *    ours to free (evhttp_request_get_connection() then returns NULL).
 *  - evhttp_connection_free() on a connection frees the requests still
 *    attached to it; we use it to die abruptly, never from inside an evhttp
 *    callback (always from our own timer).
 *  - A connection has one close callback; an exchange sets it while it owns
 *    the connection's current request and clears it when done.
 */

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "core/mem.h"

#define DEFAULT_MAX_BODY (16u << 20)
#define MAX_HEADER_BYTES (64u << 10)
/* evhttp's read/write timeout.  It also bounds how long a stream may go
 * without the client sending anything, so it is generous. */
#define IO_TIMEOUT_S 600
/* Tool-call arguments are streamed in pieces of about this many bytes, as
 * OpenAI streams them in several deltas. */
#define ARG_PIECE_BYTES 8
#define MAX_DELAY_MS 3600000
#define DEFAULT_KEEP_ALIVE_NS (300 * INT64_C(1000000000))
/* Applies to every JSON we write: embeddings print as float32-ish numbers. */
#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(9))

enum api { API_OPENAI, API_OLLAMA };

struct exchange;

struct fake {
    struct event_base *base;
    struct evhttp *http;
    const char *api_key; /* NULL = no authentication */
    json_t *models;      /* array of names listed by /v1/models and /api/tags */
    int embed_dims;      /* default embedding size */
    bool verbose;
    uint64_t next_id;
    struct exchange *exchanges; /* deferred and streaming requests, for shutdown */

    json_t *behaviours; /* model (or "*") -> behaviour object, as validated */

    /* Observation (GET /_fake/stats; reset by POST /_fake/reset). */
    json_int_t requests;
    json_t *by_path;
    json_t *by_model;
    json_t *loads;
    json_t *unloads;
    json_t *loaded; /* model -> expiry (ns since the epoch, 0 = never) */
    json_t *last_request;
    long active_streams;
    long client_disconnects;
};

/* The effective behaviour for one request: "*" entry, then the model's
 * entry, then the request's headers; -1 = not set. */
struct behaviour {
    int latency_ms;
    int token_delay_ms;
    int status;
    int die_after_tokens;
    json_t *tool_call; /* owned reference or NULL */
    json_t *reply;     /* owned: the answer's text instead of the echo, or NULL */
};

/* What a chat answers.  Text answers are split into word tokens (leading
 * whitespace + a word, so the pieces concatenate to the text); a tool call's
 * arguments are split into pieces of ARG_PIECE_BYTES. */
struct answer {
    char *text;      /* the reply, or the tool call's arguments (tool_name set) */
    size_t text_len; /* bytes covered by `tokens` pieces (< strlen after max_tokens) */
    size_t tokens;
    bool truncated; /* max_tokens cut it: finish_reason "length" */
    char *tool_name;
    bool args_are_json; /* text is valid JSON (else raw text from CALL_TOOL) */
    char call_id[40];
    size_t prompt_tokens;
};

enum exchange_kind { EX_REPLY, EX_STREAM };
enum exchange_phase { PH_WAIT, PH_TOKENS, PH_DIE };

/* A request answered later than in its handler: after a delay, as a stream,
 * or by dying.  Lives from the handler until the reply is complete, the
 * connection is cut by us, or the client goes away (on_conn_close). */
struct exchange {
    struct fake *fake;
    struct exchange *prev, *next;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    struct event *timer;
    enum exchange_kind kind;
    enum exchange_phase phase;
    bool die; /* EX_REPLY: close instead of answering */
    /* EX_REPLY: the prepared answer */
    int status;
    const char *content_type;
    struct evbuffer *body;
    /* EX_STREAM */
    enum api api;
    struct answer ans;
    char *model;
    char id[48];
    int64_t created; /* seconds */
    int64_t start_ns;
    bool include_usage;
    int token_delay_ms;
    int die_after;
    size_t cursor;
    size_t tokens_sent;
};

/* ------------------------------------------------------------------ */
/* small helpers                                                       */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* RFC 3339 with nanoseconds in UTC, as Go prints time.Time. */
static void format_time(int64_t ns, char out[40])
{
    time_t secs = (time_t)(ns / 1000000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char date[24];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 40, "%s.%09" PRId64 "Z", date, ns % 1000000000);
}

struct sbuf {
    char *p;
    size_t len, cap;
};

static void sbuf_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = dagi_xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sbuf_adds(struct sbuf *b, const char *s)
{
    sbuf_add(b, s, strlen(s));
}

static size_t count_words(const char *s)
{
    size_t n = 0;
    bool in_word = false;
    for (; *s; s++) {
        bool space = isspace((unsigned char)*s);
        if (!space && !in_word)
            n++;
        in_word = !space;
    }
    return n;
}

static int dump_to_evbuffer(const char *data, size_t size, void *ud)
{
    return evbuffer_add(ud, data, size);
}

static void put_json(struct evbuffer *out, const json_t *v)
{
    json_dump_callback(v, dump_to_evbuffer, out, DUMP_FLAGS | JSON_ENCODE_ANY);
}

/* A JSON string literal; `s` is valid UTF-8 (it came out of jansson). */
static void put_json_string(struct evbuffer *out, const char *s, size_t n)
{
    size_t run = 0;
    evbuffer_add(out, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        evbuffer_add(out, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"':
            evbuffer_add(out, "\\\"", 2);
            break;
        case '\\':
            evbuffer_add(out, "\\\\", 2);
            break;
        case '\n':
            evbuffer_add(out, "\\n", 2);
            break;
        case '\r':
            evbuffer_add(out, "\\r", 2);
            break;
        case '\t':
            evbuffer_add(out, "\\t", 2);
            break;
        default:
            evbuffer_add_printf(out, "\\u%04x", c);
            break;
        }
    }
    evbuffer_add(out, s + run, n - run);
    evbuffer_add(out, "\"", 1);
}

static void counter_add(json_t *obj, const char *key, json_int_t by)
{
    json_t *v = json_object_get(obj, key);
    if (v)
        json_integer_set(v, json_integer_value(v) + by);
    else
        json_object_set_new(obj, key, json_integer(by));
}

static uint64_t fnv1a(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3u;
    return h;
}

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* ------------------------------------------------------------------ */
/* responses                                                           */

static void send_reply(struct evhttp_request *req, int status, const char *content_type,
                       struct evbuffer *body)
{
    struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
    evhttp_add_header(headers, "Content-Type", content_type);
    if (status == 429)
        evhttp_add_header(headers, "Retry-After", "1");
    /* evhttp's own table calls 429 "Client Error" */
    evhttp_send_reply(req, status, status == 429 ? "Too Many Requests" : NULL, body);
}

static void send_json(struct evhttp_request *req, int status, json_t *body)
{
    put_json(evhttp_request_get_output_buffer(req), body);
    json_decref(body);
    send_reply(req, status, "application/json", NULL);
}

/* OpenAI's error shape for `status`; `type`/`code` NULL pick the usual ones. */
static void error_body(struct evbuffer *out, enum api api, int status, const char *type,
                       const char *code, const char *param, const char *message)
{
    if (api == API_OLLAMA) {
        json_t *e = json_pack("{s:s}", "error", message);
        put_json(out, e);
        json_decref(e);
        return;
    }
    if (!type) {
        switch (status) {
        case 429:
            type = "requests";
            break;
        case 403:
            type = "permission_error";
            break;
        default:
            type = status >= 500 ? "server_error" : "invalid_request_error";
            break;
        }
    }
    if (!code) {
        switch (status) {
        case 401:
            code = "invalid_api_key";
            break;
        case 404:
            code = "model_not_found";
            break;
        case 429:
            code = "rate_limit_exceeded";
            break;
        default:
            break;
        }
    } else if (!*code) {
        code = NULL; /* "" = an explicit null */
    }
    json_t *e = json_pack("{s:{s:s,s:s,s:s?,s:s?}}", "error", "message", message, "type", type,
                          "param", param, "code", code);
    put_json(out, e);
    json_decref(e);
}

static void send_error(struct evhttp_request *req, enum api api, int status, const char *code,
                       const char *param, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void send_error(struct evhttp_request *req, enum api api, int status, const char *code,
                       const char *param, const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    error_body(evhttp_request_get_output_buffer(req), api, status, NULL, code, param, message);
    send_reply(req, status, "application/json", NULL);
}

static const char *injected_message(int status)
{
    switch (status) {
    case 401:
        return "Incorrect API key provided (fake upstream: injected status).";
    case 404:
        return "The model does not exist or you do not have access to it (fake upstream: "
               "injected status).";
    case 429:
        return "Rate limit reached for requests (fake upstream: injected status).";
    case 500:
        return "The server had an error while processing your request (fake upstream: "
               "injected status).";
    case 502:
    case 503:
    case 504:
        return "The server is overloaded or not ready yet (fake upstream: injected status).";
    default:
        return "Injected error (fake upstream).";
    }
}

/* ------------------------------------------------------------------ */
/* behaviour                                                           */

static int parse_int(const char *v, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < lo || n > hi)
        return -1;
    *out = (int)n;
    return 0;
}

static void apply_entry(struct behaviour *b, json_t *entry)
{
    json_t *v;
    if ((v = json_object_get(entry, "latency_ms")))
        b->latency_ms = (int)json_integer_value(v);
    if ((v = json_object_get(entry, "token_delay_ms")))
        b->token_delay_ms = (int)json_integer_value(v);
    if ((v = json_object_get(entry, "status")))
        b->status = (int)json_integer_value(v);
    if ((v = json_object_get(entry, "die_after_tokens")))
        b->die_after_tokens = (int)json_integer_value(v);
    if ((v = json_object_get(entry, "tool_call"))) {
        json_decref(b->tool_call);
        b->tool_call = json_incref(v);
    }
    if ((v = json_object_get(entry, "reply"))) {
        json_decref(b->reply);
        b->reply = json_incref(v);
    }
}

/* Applies and consumes one control entry ("times": N entries expire). */
static void use_entry(struct fake *f, const char *key, struct behaviour *b)
{
    json_t *entry = json_object_get(f->behaviours, key);
    if (!entry)
        return;
    apply_entry(b, entry);
    json_t *times = json_object_get(entry, "times");
    if (times && json_integer_value(times) > 0) {
        if (json_integer_value(times) == 1)
            json_object_del(f->behaviours, key);
        else
            json_integer_set(times, json_integer_value(times) - 1);
    }
}

/* Resolves the request's behaviour; -1 and a 400 sent on a bad header.
 * The caller releases b->tool_call. */
static int resolve_behaviour(struct fake *f, struct evhttp_request *req, enum api api,
                             const char *model, struct behaviour *b)
{
    *b = (struct behaviour){-1, -1, -1, -1, NULL, NULL};
    if (model && json_object_size(f->behaviours)) {
        use_entry(f, "*", b);
        if (strcmp(model, "*") != 0)
            use_entry(f, model, b);
    }
    static const struct {
        const char *name; /* after "X-Fake-" */
        size_t offset;
        int lo, hi;
    } known[] = {
        {"Latency-Ms", offsetof(struct behaviour, latency_ms), 0, MAX_DELAY_MS},
        {"Token-Delay-Ms", offsetof(struct behaviour, token_delay_ms), 0, MAX_DELAY_MS},
        {"Status", offsetof(struct behaviour, status), 400, 599},
        {"Die-After-Tokens", offsetof(struct behaviour, die_after_tokens), 0, INT_MAX},
    };
    /* One pass over the headers: evhttp_find_header per name showed in profiles. */
    struct evkeyval *h;
    TAILQ_FOREACH(h, evhttp_request_get_input_headers(req), next)
    {
        if ((h->key[0] != 'x' && h->key[0] != 'X') || strncasecmp(h->key, "X-Fake-", 7) != 0)
            continue;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
            if (strcasecmp(h->key + 7, known[i].name) != 0)
                continue;
            int *slot = (int *)((char *)b + known[i].offset);
            if (parse_int(h->value, known[i].lo, known[i].hi, slot) < 0) {
                json_decref(b->tool_call);
                b->tool_call = NULL;
                json_decref(b->reply);
                b->reply = NULL;
                send_error(req, api, 400, NULL, NULL,
                           "invalid X-Fake-%s header (an integer in %d..%d)", known[i].name,
                           known[i].lo, known[i].hi);
                return -1;
            }
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* exchanges: deferred replies and streams                             */

static void on_timer(evutil_socket_t fd, short what, void *arg);
static void on_conn_close(struct evhttp_connection *evcon, void *arg);

static struct exchange *exchange_new(struct fake *f, struct evhttp_request *req,
                                     enum exchange_kind kind)
{
    struct exchange *ex = dagi_xcalloc(1, sizeof *ex);
    ex->fake = f;
    ex->req = req;
    ex->evcon = evhttp_request_get_connection(req);
    ex->kind = kind;
    ex->timer = evtimer_new(f->base, on_timer, ex);
    if (!ex->timer)
        abort();
    ex->die_after = -1;
    ex->next = f->exchanges;
    if (f->exchanges)
        f->exchanges->prev = ex;
    f->exchanges = ex;
    evhttp_connection_set_closecb(ex->evcon, on_conn_close, ex);
    if (kind == EX_STREAM)
        f->active_streams++;
    return ex;
}

static void answer_release(struct answer *a)
{
    free(a->text);
    free(a->tool_name);
    memset(a, 0, sizeof *a);
}

/* Frees the exchange; the request is the caller's business. */
static void exchange_free(struct exchange *ex)
{
    struct fake *f = ex->fake;
    if (ex->kind == EX_STREAM)
        f->active_streams--;
    if (ex->prev)
        ex->prev->next = ex->next;
    else
        f->exchanges = ex->next;
    if (ex->next)
        ex->next->prev = ex->prev;
    event_free(ex->timer);
    if (ex->body)
        evbuffer_free(ex->body);
    answer_release(&ex->ans);
    free(ex->model);
    free(ex);
}

static void exchange_arm(struct exchange *ex, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    /* libevent measures from the time cached at the top of the loop
     * iteration; a delay must be at least what was asked for. */
    event_base_update_cache_time(ex->fake->base);
    evtimer_add(ex->timer, &tv);
}

/* The client went away (or the server is shutting down) before we were done. */
static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    struct exchange *ex = arg;
    (void)evcon;
    if (ex->kind == EX_STREAM)
        ex->fake->client_disconnects++;
    /* Detached: ours to free.  Still attached: evhttp frees it next. */
    if (evhttp_request_get_connection(ex->req) == NULL)
        evhttp_request_free(ex->req);
    exchange_free(ex);
}

/* We are done with the request: evhttp owns it again (or it is gone). */
static void exchange_finish(struct exchange *ex)
{
    evhttp_connection_set_closecb(ex->evcon, NULL, NULL);
    exchange_free(ex);
}

/* Dies abruptly once what we already wrote has left: a truncated response
 * followed by FIN, as when the provider's process crashes. */
static void exchange_die(struct exchange *ex)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(ex->evcon);
    if (bev && evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
        exchange_arm(ex, 1);
        return;
    }
    struct evhttp_connection *evcon = ex->evcon;
    exchange_finish(ex);
    evhttp_connection_free(evcon); /* frees the request too */
}

/* Defers a prepared reply by `wait_ms` (or dies instead); takes `body`. */
static void reply_later(struct fake *f, struct evhttp_request *req, int status,
                        struct evbuffer *body, int wait_ms, bool die)
{
    struct exchange *ex = exchange_new(f, req, EX_REPLY);
    ex->status = status;
    ex->content_type = "application/json";
    ex->body = body;
    ex->die = die;
    exchange_arm(ex, wait_ms);
}

static void reply_fire(struct exchange *ex)
{
    if (ex->die) {
        exchange_die(ex);
        return;
    }
    struct evhttp_request *req = ex->req;
    struct evbuffer *body = ex->body;
    int status = ex->status;
    const char *content_type = ex->content_type;
    ex->body = NULL;
    exchange_finish(ex);
    send_reply(req, status, content_type, body);
    evbuffer_free(body);
}

/* Sends `body` now, or later / never as the behaviour says.  Takes `body`. */
static void reply_with_behaviour(struct fake *f, struct evhttp_request *req, int status,
                                 struct evbuffer *body, const struct behaviour *b, size_t tokens)
{
    int64_t wait = b->latency_ms > 0 ? b->latency_ms : 0;
    if (b->token_delay_ms > 0 && tokens > 1)
        wait += (int64_t)b->token_delay_ms * (int64_t)(tokens - 1);
    if (wait > MAX_DELAY_MS)
        wait = MAX_DELAY_MS;
    bool die = b->die_after_tokens >= 0 && (size_t)b->die_after_tokens < (tokens ? tokens : 1);
    if (wait == 0 && !die) {
        send_reply(req, status, "application/json", body);
        evbuffer_free(body);
        return;
    }
    reply_later(f, req, status, body, (int)wait, die);
}

/* An error status asked for by the behaviour, after its latency. */
static void reply_injected_error(struct fake *f, struct evhttp_request *req, enum api api,
                                 const struct behaviour *b)
{
    struct evbuffer *body = evbuffer_new();
    error_body(body, api, b->status, NULL, NULL, NULL, injected_message(b->status));
    struct behaviour only_latency = {b->latency_ms, -1, -1, -1, NULL, NULL};
    reply_with_behaviour(f, req, b->status, body, &only_latency, 0);
}

/* ------------------------------------------------------------------ */
/* the answer                                                          */

static size_t piece_end(const struct answer *a, size_t at, size_t len)
{
    const char *s = a->text;
    if (a->tool_name) {
        size_t end = at + ARG_PIECE_BYTES < len ? at + ARG_PIECE_BYTES : len;
        while (end < len && ((unsigned char)s[end] & 0xc0) == 0x80)
            end++; /* never split a UTF-8 sequence */
        return end;
    }
    size_t i = at;
    while (i < len && isspace((unsigned char)s[i]))
        i++;
    while (i < len && !isspace((unsigned char)s[i]))
        i++;
    return i;
}

/* Counts the pieces, stopping at max_tokens (0 = no limit). */
static void answer_split(struct answer *a, size_t max_tokens)
{
    size_t len = strlen(a->text), at = 0;
    a->tokens = 0;
    while (at < len) {
        if (max_tokens && a->tokens == max_tokens) {
            a->truncated = true;
            break;
        }
        at = piece_end(a, at, len);
        a->tokens++;
    }
    a->text_len = at;
}

/* Appends a message content's text (a string, or the text parts of an
 * array) to `out`; notes image parts. */
static void content_text(json_t *content, struct sbuf *out, bool *image)
{
    if (json_is_string(content)) {
        sbuf_add(out, json_string_value(content), json_string_length(content));
        return;
    }
    if (!json_is_array(content))
        return;
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part)
    {
        const char *type = json_string_value(json_object_get(part, "type"));
        json_t *text = json_object_get(part, "text");
        if (json_is_string(text) &&
            (!type || strcmp(type, "text") == 0 || strcmp(type, "input_text") == 0)) {
            if (out->len)
                sbuf_add(out, " ", 1);
            sbuf_add(out, json_string_value(text), json_string_length(text));
        } else if (type && strstr(type, "image")) {
            *image = true;
        }
    }
}

/* "CALL_TOOL <name> <json-args>" anywhere in the text. */
static bool parse_call_tool(const char *text, struct answer *a)
{
    const char *p = strstr(text, "CALL_TOOL");
    if (!p || (p[9] && !isspace((unsigned char)p[9])))
        return false;
    p += 9;
    while (isspace((unsigned char)*p))
        p++;
    const char *name = p;
    while (*p && !isspace((unsigned char)*p))
        p++;
    if (p == name)
        return false;
    a->tool_name = dagi_xstrndup(name, (size_t)(p - name));
    while (isspace((unsigned char)*p))
        p++;
    size_t n = strlen(p);
    while (n && isspace((unsigned char)p[n - 1]))
        n--;
    if (n == 0) {
        a->text = dagi_xstrdup("{}");
        a->args_are_json = true;
        return true;
    }
    json_t *args = json_loadb(p, n, JSON_DECODE_ANY, NULL);
    if (args) {
        a->text = json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY);
        a->args_are_json = true;
        json_decref(args);
    } else {
        a->text = dagi_xstrndup(p, n); /* passed on as is: tests of bad model output */
    }
    return true;
}

static void tool_call_from_control(json_t *tool_call, struct answer *a)
{
    a->tool_name = dagi_xstrdup(json_string_value(json_object_get(tool_call, "name")));
    json_t *args = json_object_get(tool_call, "arguments");
    if (json_is_string(args)) {
        json_t *parsed = json_loads(json_string_value(args), JSON_DECODE_ANY, NULL);
        a->args_are_json = parsed != NULL;
        json_decref(parsed);
        a->text = dagi_xstrdup(json_string_value(args));
    } else {
        a->text = args ? json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY) : dagi_xstrdup("{}");
        a->args_are_json = true;
    }
}

/* Builds the answer to a chat request.  -1 with *err set on a malformed
 * request. */
static int answer_build(struct fake *f, json_t *body, enum api api, const struct behaviour *b,
                        struct answer *a, const char **err)
{
    memset(a, 0, sizeof *a);
    json_t *messages = json_object_get(body, "messages");
    if (!json_is_array(messages)) {
        *err = "'messages' must be an array";
        return -1;
    }
    size_t i, last_user = SIZE_MAX, last_tool = SIZE_MAX;
    json_t *m;
    json_array_foreach(messages, i, m)
    {
        const char *role = json_string_value(json_object_get(m, "role"));
        if (!json_is_object(m) || !role) {
            *err = "each message must be an object with a 'role'";
            return -1;
        }
        struct sbuf text = {0};
        bool image = false;
        content_text(json_object_get(m, "content"), &text, &image);
        if (text.p)
            a->prompt_tokens += count_words(text.p);
        free(text.p);
        if (strcmp(role, "user") == 0)
            last_user = i;
        else if (strcmp(role, "tool") == 0)
            last_tool = i;
    }
    if (a->prompt_tokens == 0)
        a->prompt_tokens = 1;

    struct sbuf out = {0};
    if (last_tool != SIZE_MAX && (last_user == SIZE_MAX || last_tool > last_user)) {
        /* The tool results of the current turn came back. */
        sbuf_adds(&out, "TOOL_RESULT_SEEN:");
        bool first = true;
        for (i = last_user == SIZE_MAX ? 0 : last_user + 1; i < json_array_size(messages); i++) {
            m = json_array_get(messages, i);
            if (strcmp(json_string_value(json_object_get(m, "role")), "tool") != 0)
                continue;
            struct sbuf text = {0};
            bool image = false;
            content_text(json_object_get(m, "content"), &text, &image);
            sbuf_adds(&out, first ? " " : "; ");
            if (text.p)
                sbuf_add(&out, text.p, text.len);
            free(text.p);
            first = false;
        }
        a->text = out.p;
    } else {
        struct sbuf text = {0};
        bool image = false;
        if (last_user != SIZE_MAX) {
            m = json_array_get(messages, last_user);
            content_text(json_object_get(m, "content"), &text, &image);
            json_t *images = json_object_get(m, "images"); /* Ollama */
            if (json_array_size(images) > 0)
                image = true;
        }
        bool has_tools = json_array_size(json_object_get(body, "tools")) > 0;
        if (has_tools && text.p && parse_call_tool(text.p, a)) {
            free(out.p);
        } else if (has_tools && b->tool_call) {
            tool_call_from_control(b->tool_call, a);
            free(out.p);
        } else if (b->reply) {
            sbuf_add(&out, json_string_value(b->reply), json_string_length(b->reply));
            a->text = out.p;
        } else {
            sbuf_adds(&out, "echo:");
            if (text.len) {
                sbuf_add(&out, " ", 1);
                sbuf_add(&out, text.p, text.len);
            }
            if (image)
                sbuf_adds(&out, " [image]");
            a->text = out.p;
        }
        free(text.p);
    }
    if (a->tool_name)
        snprintf(a->call_id, sizeof a->call_id, "call_fake%016" PRIx64, ++f->next_id);

    json_int_t max_tokens = 0;
    if (api == API_OPENAI) {
        json_t *v = json_object_get(body, "max_completion_tokens");
        if (!json_is_integer(v))
            v = json_object_get(body, "max_tokens");
        max_tokens = json_integer_value(v);
    } else {
        max_tokens =
            json_integer_value(json_object_get(json_object_get(body, "options"), "num_predict"));
    }
    answer_split(a, a->tool_name || max_tokens <= 0 ? 0 : (size_t)max_tokens);
    if (api == API_OLLAMA && a->tool_name)
        a->tokens = 1; /* Ollama sends a tool call whole */
    return 0;
}

/* ------------------------------------------------------------------ */
/* OpenAI chat                                                         */

static const char *finish_reason(const struct answer *a)
{
    return a->tool_name ? "tool_calls" : a->truncated ? "length" : "stop";
}

static json_t *openai_usage(const struct answer *a)
{
    return json_pack("{s:I,s:I,s:I}", "prompt_tokens", (json_int_t)a->prompt_tokens,
                     "completion_tokens", (json_int_t)a->tokens, "total_tokens",
                     (json_int_t)(a->prompt_tokens + a->tokens));
}

/* The non-streamed completion, written directly: the hot path of the
 * benchmarks, where building and dumping a jansson tree showed. */
static void openai_completion(struct evbuffer *out, const char *id, const char *model,
                              const struct answer *a)
{
    evbuffer_add_printf(
        out, "{\"id\":\"%s\",\"object\":\"chat.completion\",\"created\":%" PRId64 ",\"model\":", id,
        (int64_t)time(NULL));
    put_json_string(out, model, strlen(model));
    static const char choice[] = ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",";
    evbuffer_add(out, choice, sizeof choice - 1);
    if (a->tool_name) {
        evbuffer_add_printf(out,
                            "\"content\":null,\"tool_calls\":[{\"id\":\"%s\",\"type\":\"function\","
                            "\"function\":{\"name\":",
                            a->call_id);
        put_json_string(out, a->tool_name, strlen(a->tool_name));
        evbuffer_add(out, ",\"arguments\":", 13);
        put_json_string(out, a->text, strlen(a->text));
        evbuffer_add(out, "}}]", 3);
    } else {
        evbuffer_add(out, "\"content\":", 10);
        put_json_string(out, a->text, a->text_len);
    }
    evbuffer_add_printf(out,
                        ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"%s\"}],\"usage\":"
                        "{\"prompt_tokens\":%zu,\"completion_tokens\":%zu,\"total_tokens\":%zu},"
                        "\"system_fingerprint\":\"fp_fake\"}",
                        finish_reason(a), a->prompt_tokens, a->tokens,
                        a->prompt_tokens + a->tokens);
}

/* A chunk is `data: {"id":..,"object":"chat.completion.chunk",..,"choices":
 * [{"index":0,"delta":<delta>,"logprobs":null,"finish_reason":<fr>}]}`; the
 * caller writes <delta> between open and close. */
static void openai_chunk_open(struct exchange *ex, struct evbuffer *out, bool with_choice)
{
    evbuffer_add_printf(
        out,
        "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":%" PRId64
        ",\"model\":",
        ex->id, ex->created);
    put_json_string(out, ex->model, strlen(ex->model));
    evbuffer_add_printf(out, ",\"system_fingerprint\":\"fp_fake\",\"choices\":[%s",
                        with_choice ? "{\"index\":0,\"delta\":" : "");
}

static void openai_chunk_close(struct exchange *ex, struct evbuffer *out, const char *finish)
{
    evbuffer_add_printf(out, ",\"logprobs\":null,\"finish_reason\":");
    if (finish)
        evbuffer_add_printf(out, "\"%s\"", finish);
    else
        evbuffer_add(out, "null", 4);
    evbuffer_add_printf(out, "}]%s}\n\n", ex->include_usage ? ",\"usage\":null" : "");
}

/* ------------------------------------------------------------------ */
/* Ollama chat                                                         */

static json_t *ollama_final(const char *model, const struct answer *a, int64_t start_ns,
                            const char *reason, const char *content, size_t content_len)
{
    char created_at[40];
    format_time(now_ns(), created_at);
    int64_t total = mono_ns() - start_ns;
    json_t *msg = json_pack("{s:s,s:s%}", "role", "assistant", "content", content, content_len);
    json_t *o = json_pack("{s:s,s:s,s:o,s:s,s:b}", "model", model, "created_at", created_at,
                          "message", msg, "done_reason", reason, "done", 1);
    if (a) {
        json_object_set_new(o, "total_duration", json_integer(total));
        json_object_set_new(o, "load_duration", json_integer(0));
        json_object_set_new(o, "prompt_eval_count", json_integer((json_int_t)a->prompt_tokens));
        json_object_set_new(o, "prompt_eval_duration", json_integer(total / 2));
        json_object_set_new(o, "eval_count", json_integer((json_int_t)a->tokens));
        json_object_set_new(o, "eval_duration", json_integer(total - total / 2));
    }
    return o;
}

static json_t *ollama_tool_calls(const struct answer *a)
{
    json_t *args = a->args_are_json ? json_loads(a->text, JSON_DECODE_ANY, NULL) : NULL;
    if (!args)
        args = json_string(a->text);
    return json_pack("[{s:{s:s,s:o}}]", "function", "name", a->tool_name, "arguments", args);
}

static void ollama_line_start(struct exchange *ex, struct evbuffer *out)
{
    char created_at[40];
    format_time(now_ns(), created_at);
    evbuffer_add(out, "{\"model\":", 9);
    put_json_string(out, ex->model, strlen(ex->model));
    evbuffer_add_printf(
        out, ",\"created_at\":\"%s\",\"message\":{\"role\":\"assistant\",\"content\":", created_at);
}

/* ------------------------------------------------------------------ */
/* streaming                                                           */

static void stream_send(struct exchange *ex, struct evbuffer *chunk)
{
    evhttp_send_reply_chunk(ex->req, chunk);
    evbuffer_free(chunk);
}

static void stream_headers(struct exchange *ex)
{
    struct evkeyvalq *headers = evhttp_request_get_output_headers(ex->req);
    struct bufferevent *bev = evhttp_connection_get_bufferevent(ex->evcon);
    int one = 1;
    /* Tokens are small writes spaced in time: Nagle would batch them. */
    if (bev)
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (ex->api == API_OPENAI) {
        evhttp_add_header(headers, "Content-Type", "text/event-stream");
        evhttp_add_header(headers, "Cache-Control", "no-cache");
    } else {
        evhttp_add_header(headers, "Content-Type", "application/x-ndjson");
    }
    evhttp_send_reply_start(ex->req, 200, NULL);

    if (ex->api != API_OPENAI)
        return;
    struct evbuffer *chunk = evbuffer_new();
    const struct answer *a = &ex->ans;
    openai_chunk_open(ex, chunk, true);
    if (a->tool_name) {
        evbuffer_add_printf(chunk,
                            "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,"
                            "\"id\":\"%s\",\"type\":\"function\",\"function\":{\"name\":",
                            a->call_id);
        put_json_string(chunk, a->tool_name, strlen(a->tool_name));
        evbuffer_add_printf(chunk, ",\"arguments\":\"\"}}],\"refusal\":null}");
    } else {
        evbuffer_add_printf(chunk, "{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}");
    }
    openai_chunk_close(ex, chunk, NULL);
    stream_send(ex, chunk);
}

static void stream_token(struct exchange *ex, const char *piece, size_t len)
{
    struct evbuffer *chunk = evbuffer_new();
    if (ex->api == API_OPENAI) {
        openai_chunk_open(ex, chunk, true);
        if (ex->ans.tool_name) {
            evbuffer_add_printf(chunk,
                                "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":");
            put_json_string(chunk, piece, len);
            evbuffer_add_printf(chunk, "}}]}");
        } else {
            evbuffer_add_printf(chunk, "{\"content\":");
            put_json_string(chunk, piece, len);
            evbuffer_add(chunk, "}", 1);
        }
        openai_chunk_close(ex, chunk, NULL);
    } else {
        ollama_line_start(ex, chunk);
        put_json_string(chunk, piece, len);
        evbuffer_add(chunk, "},\"done\":false}\n", 16);
    }
    stream_send(ex, chunk);
}

/* Ollama sends a tool call whole, in one message. */
static void stream_ollama_tool_call(struct exchange *ex)
{
    struct evbuffer *chunk = evbuffer_new();
    ollama_line_start(ex, chunk);
    evbuffer_add(chunk, "\"\",\"tool_calls\":", 16);
    json_t *calls = ollama_tool_calls(&ex->ans);
    put_json(chunk, calls);
    json_decref(calls);
    evbuffer_add(chunk, "},\"done\":false}\n", 16);
    stream_send(ex, chunk);
}

static void stream_end(struct exchange *ex)
{
    struct evbuffer *chunk = evbuffer_new();
    if (ex->api == API_OPENAI) {
        openai_chunk_open(ex, chunk, true);
        evbuffer_add(chunk, "{}", 2);
        openai_chunk_close(ex, chunk, finish_reason(&ex->ans));
        if (ex->include_usage) {
            /* the usage chunk: no choices */
            openai_chunk_open(ex, chunk, false);
            evbuffer_add_printf(chunk, "],\"usage\":");
            json_t *usage = openai_usage(&ex->ans);
            put_json(chunk, usage);
            json_decref(usage);
            evbuffer_add(chunk, "}\n\n", 3);
        }
        evbuffer_add(chunk, "data: [DONE]\n\n", 14);
    } else {
        json_t *o = ollama_final(ex->model, &ex->ans, ex->start_ns,
                                 ex->ans.truncated ? "length" : "stop", "", 0);
        put_json(chunk, o);
        json_decref(o);
        evbuffer_add(chunk, "\n", 1);
    }
    stream_send(ex, chunk);
    struct evhttp_request *req = ex->req;
    exchange_finish(ex);
    evhttp_send_reply_end(req);
}

/* Runs at the end of the latency and after each token delay. */
static void stream_step(struct exchange *ex)
{
    if (ex->phase == PH_DIE) {
        exchange_die(ex);
        return;
    }
    if (ex->phase == PH_WAIT) {
        stream_headers(ex);
        ex->phase = PH_TOKENS;
    }
    struct answer *a = &ex->ans;
    for (;;) {
        if (ex->die_after >= 0 && ex->tokens_sent >= (size_t)ex->die_after) {
            ex->phase = PH_DIE;
            exchange_arm(ex, 0);
            return;
        }
        if (ex->tokens_sent >= a->tokens) {
            stream_end(ex);
            return;
        }
        if (ex->api == API_OLLAMA && a->tool_name) {
            stream_ollama_tool_call(ex);
            ex->tokens_sent = a->tokens;
        } else {
            size_t end = piece_end(a, ex->cursor, a->text_len);
            stream_token(ex, a->text + ex->cursor, end - ex->cursor);
            ex->cursor = end;
            ex->tokens_sent++;
        }
        if (ex->token_delay_ms > 0 && ex->tokens_sent < a->tokens) {
            exchange_arm(ex, ex->token_delay_ms);
            return;
        }
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct exchange *ex = arg;
    (void)fd;
    (void)what;
    if (ex->kind == EX_REPLY)
        reply_fire(ex);
    else
        stream_step(ex);
}

/* Takes the answer. */
static void stream_start(struct fake *f, struct evhttp_request *req, enum api api,
                         const char *model, struct answer *a, const struct behaviour *b,
                         bool include_usage, int64_t start_ns)
{
    struct exchange *ex = exchange_new(f, req, EX_STREAM);
    ex->api = api;
    ex->ans = *a;
    memset(a, 0, sizeof *a);
    ex->model = dagi_xstrdup(model);
    snprintf(ex->id, sizeof ex->id, "chatcmpl-fake%016" PRIx64, ++f->next_id);
    ex->created = (int64_t)time(NULL);
    ex->start_ns = start_ns;
    ex->include_usage = include_usage;
    ex->token_delay_ms = b->token_delay_ms > 0 ? b->token_delay_ms : 0;
    ex->die_after = b->die_after_tokens;
    exchange_arm(ex, b->latency_ms > 0 ? b->latency_ms : 0);
}

/* ------------------------------------------------------------------ */
/* Ollama model state                                                  */

/* keep_alive: a number of seconds, or a Go duration ("5m", "1h30m", "0"). */
static int parse_keep_alive(json_t *v, int64_t *out_ns)
{
    if (!v || json_is_null(v)) {
        *out_ns = DEFAULT_KEEP_ALIVE_NS;
        return 0;
    }
    if (json_is_number(v)) {
        double s = json_number_value(v);
        *out_ns = s < 0 ? -1 : (int64_t)(s * 1e9);
        return 0;
    }
    if (!json_is_string(v))
        return -1;
    const char *p = json_string_value(v);
    char *end;
    double whole = strtod(p, &end);
    if (end != p && *end == '\0') {
        *out_ns = whole < 0 ? -1 : (int64_t)(whole * 1e9);
        return 0;
    }
    bool negative = *p == '-';
    if (negative)
        p++;
    double total = 0;
    if (!*p)
        return -1;
    while (*p) {
        double n = strtod(p, &end);
        if (end == p || n < 0)
            return -1;
        p = end;
        static const struct {
            const char *unit;
            double ns;
        } units[] = {{"ns", 1},  {"us", 1e3},     {"µs", 1e3},      {"ms", 1e6},
                     {"s", 1e9}, {"m", 60 * 1e9}, {"h", 3600 * 1e9}};
        size_t u;
        for (u = 0; u < sizeof units / sizeof units[0]; u++) {
            size_t len = strlen(units[u].unit);
            /* "m" must not take the "m" of "ms" */
            if (strncmp(p, units[u].unit, len) == 0 && !(len == 1 && p[0] == 'm' && p[1] == 's'))
                break;
        }
        if (u == sizeof units / sizeof units[0])
            return -1;
        total += n * units[u].ns;
        p += strlen(units[u].unit);
    }
    *out_ns = negative && total > 0 ? -1 : (int64_t)total;
    return 0;
}

/* Drops models whose keep_alive ran out (as Ollama's scheduler would). */
static void loaded_expire(struct fake *f)
{
    int64_t now = now_ns();
    const char *key;
    json_t *v, *tmp;
    json_object_foreach_safe(f->loaded, tmp, key, v)
    {
        json_int_t expires = json_integer_value(v);
        if (expires != 0 && expires <= now)
            json_object_del(f->loaded, key);
    }
}

static void loaded_touch(struct fake *f, const char *model, int64_t keep_alive_ns)
{
    if (keep_alive_ns == 0) {
        json_object_del(f->loaded, model);
        return;
    }
    json_int_t expires = keep_alive_ns < 0 ? 0 : now_ns() + keep_alive_ns;
    json_object_set_new(f->loaded, model, json_integer(expires));
}

static json_t *model_details(void)
{
    return json_pack("{s:s,s:s,s:s,s:[s],s:s,s:s}", "parent_model", "", "format", "gguf", "family",
                     "fake", "families", "fake", "parameter_size", "1B", "quantization_level",
                     "Q4_0");
}

static void model_digest(const char *name, char out[65])
{
    uint64_t state = fnv1a(name, strlen(name));
    for (int i = 0; i < 4; i++)
        snprintf(out + 16 * i, 17, "%016" PRIx64, splitmix64(&state));
}

/* ------------------------------------------------------------------ */
/* handlers                                                            */

struct route;
typedef void (*handler_fn)(struct fake *f, struct evhttp_request *req, const struct route *r);

struct route {
    enum evhttp_cmd_type method;
    const char *path;
    enum api api;
    handler_fn handler;
};

/* Parses the body as a JSON object; answers 400 and returns NULL otherwise. */
static json_t *parse_body(struct evhttp_request *req, enum api api)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *data = len ? (const char *)evbuffer_pullup(in, -1) : "";
    json_error_t jerr;
    json_t *body = json_loadb(data, len, 0, &jerr);
    if (!body) {
        send_error(req, api, 400, NULL, NULL,
                   "We could not parse the JSON body of your request: %s at offset %d", jerr.text,
                   jerr.position);
        return NULL;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        send_error(req, api, 400, NULL, NULL, "the request body must be a JSON object");
        return NULL;
    }
    return body;
}

/* Parses the body as a JSON object with a string "model"; answers 400 and
 * returns NULL otherwise. */
static json_t *request_json(struct fake *f, struct evhttp_request *req, enum api api,
                            const char **model)
{
    json_t *body = parse_body(req, api);
    if (!body)
        return NULL;
    *model = json_string_value(json_object_get(body, "model"));
    if (!*model || !**model) {
        json_decref(body);
        send_error(req, api, 400, NULL, "model",
                   api == API_OLLAMA ? "model is required" : "you must provide a model parameter");
        return NULL;
    }
    counter_add(f->by_model, *model, 1);
    return body;
}

static void on_openai_chat(struct fake *f, struct evhttp_request *req, const struct route *r)
{
    int64_t start_ns = mono_ns();
    const char *model, *err = NULL;
    json_t *body = request_json(f, req, r->api, &model);
    if (!body)
        return;
    json_decref(f->last_request);
    f->last_request = json_incref(body);
    struct behaviour b;
    struct answer a;
    memset(&a, 0, sizeof a);
    if (resolve_behaviour(f, req, r->api, model, &b) < 0)
        goto out;
    if (b.status > 0) {
        reply_injected_error(f, req, r->api, &b);
        goto out;
    }
    if (answer_build(f, body, r->api, &b, &a, &err) < 0) {
        send_error(req, r->api, 400, NULL, "messages", "%s", err);
        goto out;
    }
    if (json_is_true(json_object_get(body, "stream"))) {
        json_t *options = json_object_get(body, "stream_options");
        stream_start(f, req, r->api, model, &a, &b,
                     json_is_true(json_object_get(options, "include_usage")), start_ns);
        goto out;
    }
    char id[48];
    snprintf(id, sizeof id, "chatcmpl-fake%016" PRIx64, ++f->next_id);
    struct evbuffer *out = evbuffer_new();
    openai_completion(out, id, model, &a);
    reply_with_behaviour(f, req, 200, out, &b, a.tokens);
out:
    answer_release(&a);
    json_decref(b.tool_call);
    json_decref(b.reply);
    json_decref(body);
}

/* input: a string, an array of strings, or token arrays; -1 if empty/bad. */
static int embedding_inputs(json_t *input, json_t **out_list)
{
    json_t *list = json_array();
    if (json_is_string(input)) {
        json_array_append(list, input);
    } else if (json_is_array(input) && json_array_size(input) > 0) {
        if (json_is_integer(json_array_get(input, 0))) {
            json_array_append(list, input); /* one token array */
        } else {
            size_t i;
            json_t *v;
            json_array_foreach(input, i, v)
            {
                if (!json_is_string(v) && !json_is_array(v))
                    goto bad;
                json_array_append(list, v);
            }
        }
    } else {
        goto bad;
    }
    *out_list = list;
    return 0;
bad:
    json_decref(list);
    return -1;
}

/* A deterministic unit vector derived from the input's text. */
static void embed(json_t *input, int dims, float *out, size_t *words)
{
    char *owned = NULL;
    const char *s;
    size_t n;
    if (json_is_string(input)) {
        s = json_string_value(input);
        n = json_string_length(input);
        *words += count_words(s);
    } else {
        owned = json_dumps(input, JSON_COMPACT);
        s = owned ? owned : "";
        n = strlen(s);
        *words += json_array_size(input);
    }
    uint64_t state = fnv1a(s, n);
    double norm = 0;
    for (int i = 0; i < dims; i++) {
        double v = (double)(splitmix64(&state) >> 11) * 0x1.0p-53 * 2.0 - 1.0;
        out[i] = (float)v;
        norm += v * v;
    }
    norm = sqrt(norm);
    for (int i = 0; i < dims; i++)
        out[i] = (float)(out[i] / norm);
    free(owned);
}

static char *base64_floats(const float *v, int dims)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = (size_t)dims * 4;
    unsigned char *bytes = dagi_xmalloc(n);
    for (int i = 0; i < dims; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        for (int k = 0; k < 4; k++)
            bytes[4 * i + k] = (unsigned char)(u >> (8 * k)); /* little endian */
    }
    char *out = dagi_xmalloc((n + 2) / 3 * 4 + 1), *o = out;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t t = (uint32_t)bytes[i] << 16;
        if (i + 1 < n)
            t |= (uint32_t)bytes[i + 1] << 8;
        if (i + 2 < n)
            t |= bytes[i + 2];
        *o++ = tbl[(t >> 18) & 63];
        *o++ = tbl[(t >> 12) & 63];
        *o++ = i + 1 < n ? tbl[(t >> 6) & 63] : '=';
        *o++ = i + 2 < n ? tbl[t & 63] : '=';
    }
    *o = '\0';
    free(bytes);
    return out;
}

static void on_embeddings(struct fake *f, struct evhttp_request *req, const struct route *r)
{
    int64_t start_ns = mono_ns();
    const char *model;
    json_t *body = request_json(f, req, r->api, &model), *inputs = NULL;
    if (!body)
        return;
    struct behaviour b;
    if (resolve_behaviour(f, req, r->api, model, &b) < 0)
        goto out;
    if (b.status > 0) {
        reply_injected_error(f, req, r->api, &b);
        goto out;
    }
    if (embedding_inputs(json_object_get(body, "input"), &inputs) < 0) {
        send_error(req, r->api, 400, NULL, "input",
                   "'input' must be a non-empty string, array of strings or token arrays");
        goto out;
    }
    json_t *dims_v = json_object_get(body, "dimensions");
    json_int_t dims = dims_v ? json_integer_value(dims_v) : f->embed_dims;
    if (dims < 1 || dims > 65536) {
        send_error(req, r->api, 400, NULL, "dimensions", "'dimensions' must be in 1..65536");
        goto out;
    }
    const char *format = json_string_value(json_object_get(body, "encoding_format"));
    bool b64 = r->api == API_OPENAI && format && strcmp(format, "base64") == 0;
    if (r->api == API_OLLAMA) {
        int64_t keep_alive;
        if (parse_keep_alive(json_object_get(body, "keep_alive"), &keep_alive) == 0)
            loaded_touch(f, model, keep_alive);
    }

    float *vec = dagi_xmalloc((size_t)dims * sizeof *vec);
    size_t words = 0, i;
    json_t *input, *data = json_array();
    json_array_foreach(inputs, i, input)
    {
        embed(input, (int)dims, vec, &words);
        json_t *e;
        if (b64) {
            char *s = base64_floats(vec, (int)dims);
            e = json_string(s);
            free(s);
        } else {
            e = json_array();
            for (json_int_t k = 0; k < dims; k++)
                json_array_append_new(e, json_real(vec[k]));
        }
        if (r->api == API_OPENAI)
            json_array_append_new(data, json_pack("{s:s,s:o,s:I}", "object", "embedding",
                                                  "embedding", e, "index", (json_int_t)i));
        else
            json_array_append_new(data, e);
    }
    free(vec);
    if (words == 0)
        words = 1;
    json_t *resp;
    if (r->api == API_OPENAI)
        resp = json_pack("{s:s,s:o,s:s,s:{s:I,s:I}}", "object", "list", "data", data, "model",
                         model, "usage", "prompt_tokens", (json_int_t)words, "total_tokens",
                         (json_int_t)words);
    else
        resp = json_pack("{s:s,s:o,s:I,s:i,s:I}", "model", model, "embeddings", data,
                         "total_duration", (json_int_t)(mono_ns() - start_ns), "load_duration", 0,
                         "prompt_eval_count", (json_int_t)words);
    struct evbuffer *out = evbuffer_new();
    put_json(out, resp);
    json_decref(resp);
    reply_with_behaviour(f, req, 200, out, &b, 1);
out:
    json_decref(inputs);
    json_decref(b.tool_call);
    json_decref(b.reply);
    json_decref(body);
}

/* Applies only the header behaviour to a request without a model. */
static bool listing_misbehaves(struct fake *f, struct evhttp_request *req, const struct route *r,
                               struct behaviour *b)
{
    if (resolve_behaviour(f, req, r->api, NULL, b) < 0)
        return true;
    if (b->status > 0) {
        reply_injected_error(f, req, r->api, b);
        return true;
    }
    return false;
}

static void on_openai_models(struct fake *f, struct evhttp_request *req, const struct route *r)
{
    struct behaviour b;
    if (listing_misbehaves(f, req, r, &b))
        return;
    json_t *data = json_array(), *name;
    size_t i;
    json_array_foreach(f->models, i, name)
    {
        json_array_append_new(data, json_pack("{s:O,s:s,s:i,s:s}", "id", name, "object", "model",
                                              "created", 1700000000, "owned_by", "fake-upstream"));
    }
    json_t *resp = json_pack("{s:s,s:o}", "object", "list", "data", data);
    struct evbuffer *out = evbuffer_new();
    put_json(out, resp);
    json_decref(resp);
    reply_with_behaviour(f, req, 200, out, &b, 1);
}

static void on_ollama_chat(struct fake *f, struct evhttp_request *req, const struct route *r)
{
    int64_t start_ns = mono_ns();
    const char *model, *err = NULL;
    json_t *body = request_json(f, req, r->api, &model);
    if (!body)
        return;
    struct behaviour b;
    struct answer a;
    memset(&a, 0, sizeof a);
    int64_t keep_alive;
    json_t *messages = json_object_get(body, "messages");
    bool load_only = !messages || (json_is_array(messages) && json_array_size(messages) == 0);
    if (!load_only) {
        json_decref(f->last_request);
        f->last_request = json_incref(body);
    }
    if (resolve_behaviour(f, req, r->api, model, &b) < 0)
        goto out;
    if (b.status > 0) {
        reply_injected_error(f, req, r->api, &b);
        goto out;
    }
    if (parse_keep_alive(json_object_get(body, "keep_alive"), &keep_alive) < 0) {
        send_error(req, r->api, 400, NULL, "keep_alive", "time: invalid duration for keep_alive");
        goto out;
    }
    if (load_only) {
        /* Ollama: empty messages load the model; keep_alive 0 unloads it. */
        bool unload = keep_alive == 0;
        counter_add(unload ? f->unloads : f->loads, model, 1);
        loaded_touch(f, model, keep_alive);
        json_t *o = ollama_final(model, NULL, start_ns, unload ? "unload" : "load", "", 0);
        struct evbuffer *out = evbuffer_new();
        put_json(out, o);
        json_decref(o);
        reply_with_behaviour(f, req, 200, out, &b, 1);
        goto out;
    }
    if (answer_build(f, body, r->api, &b, &a, &err) < 0) {
        send_error(req, r->api, 400, NULL, "messages", "%s", err);
        goto out;
    }
    loaded_touch(f, model, keep_alive);
    json_t *stream = json_object_get(body, "stream");
    if (!json_is_false(stream)) { /* Ollama streams unless told not to */
        stream_start(f, req, r->api, model, &a, &b, false, start_ns);
        goto out;
    }
    json_t *o;
    if (a.tool_name) {
        o = ollama_final(model, &a, start_ns, "stop", "", 0);
        json_object_set_new(json_object_get(o, "message"), "tool_calls", ollama_tool_calls(&a));
    } else {
        o = ollama_final(model, &a, start_ns, a.truncated ? "length" : "stop", a.text, a.text_len);
    }
    struct evbuffer *out = evbuffer_new();
    put_json(out, o);
    json_decref(o);
    reply_with_behaviour(f, req, 200, out, &b, a.tokens);
out:
    answer_release(&a);
    json_decref(b.tool_call);
    json_decref(b.reply);
    json_decref(body);
}

static json_t *ollama_model_entry(const char *name, bool with_expiry, json_int_t expires)
{
    char digest[65], when[40];
    model_digest(name, digest);
    json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:o}", "name", name, "model", name, "size",
                          (json_int_t)1 << 30, "digest", digest, "details", model_details());
    if (with_expiry) {
        /* keep_alive < 0: Ollama shows a date centuries away */
        format_time(expires ? expires : INT64_C(9000000000) * 1000000000, when);
        json_object_set_new(o, "expires_at", json_string(when));
        json_object_set_new(o, "size_vram", json_integer((json_int_t)1 << 30));
        json_object_set_new(o, "context_length", json_integer(4096));
    } else {
        format_time(INT64_C(1700000000) * 1000000000, when);
        json_object_set_new(o, "modified_at", json_string(when));
    }
    return o;
}

static void on_ollama_tags(struct fake *f, struct evhttp_request *req, const struct route *r)
{
    struct behaviour b;
    if (listing_misbehaves(f, req, r, &b))
        return;
    json_t *list = json_array(), *name;
    size_t i;
    json_array_foreach(f->models, i, name)
    {
        json_array_append_new(list, ollama_model_entry(json_string_value(name), false, 0));
    }
    json_t *resp = json_pack("{s:o}", "models", list);
    struct evbuffer *out = evbuffer_new();
    put_json(out, resp);
    json_decref(resp);
    reply_with_behaviour(f, req, 200, out, &b, 1);
}

static void on_ollama_ps(struct fake *f, struct evhttp_request *req, const struct route *r)
{
    struct behaviour b;
    if (listing_misbehaves(f, req, r, &b))
        return;
    loaded_expire(f);
    json_t *list = json_array(), *v;
    const char *name;
    json_object_foreach(f->loaded, name, v)
    {
        json_array_append_new(list, ollama_model_entry(name, true, json_integer_value(v)));
    }
    json_t *resp = json_pack("{s:o}", "models", list);
    struct evbuffer *out = evbuffer_new();
    put_json(out, resp);
    json_decref(resp);
    reply_with_behaviour(f, req, 200, out, &b, 1);
}

static void on_ollama_version(struct fake *f, struct evhttp_request *req, const struct route *r)
{
    (void)f;
    (void)r;
    send_json(req, 200, json_pack("{s:s}", "version", "0.6.0"));
}

static void on_root(struct fake *f, struct evhttp_request *req, const struct route *r)
{
    (void)f;
    (void)r;
    evbuffer_add(evhttp_request_get_output_buffer(req), "Ollama is running", 17);
    send_reply(req, 200, "text/plain; charset=utf-8", NULL);
}

static const struct route routes[] = {
    {EVHTTP_REQ_POST, "/v1/chat/completions", API_OPENAI, on_openai_chat},
    {EVHTTP_REQ_POST, "/v1/embeddings", API_OPENAI, on_embeddings},
    {EVHTTP_REQ_GET, "/v1/models", API_OPENAI, on_openai_models},
    {EVHTTP_REQ_POST, "/api/chat", API_OLLAMA, on_ollama_chat},
    {EVHTTP_REQ_POST, "/api/embed", API_OLLAMA, on_embeddings},
    {EVHTTP_REQ_GET, "/api/tags", API_OLLAMA, on_ollama_tags},
    {EVHTTP_REQ_GET, "/api/ps", API_OLLAMA, on_ollama_ps},
    {EVHTTP_REQ_GET, "/api/version", API_OLLAMA, on_ollama_version},
    {EVHTTP_REQ_GET, "/", API_OLLAMA, on_root},
};

/* ------------------------------------------------------------------ */
/* the control API (/_fake/...): never authenticated, never counted     */

static void stats_reset(struct fake *f)
{
    f->requests = 0;
    f->client_disconnects = 0;
    json_object_clear(f->by_path);
    json_object_clear(f->by_model);
    json_object_clear(f->loads);
    json_object_clear(f->unloads);
    json_object_clear(f->loaded);
    json_decref(f->last_request);
    f->last_request = json_null();
}

static const char *validate_behaviour(json_t *body)
{
    static const struct {
        const char *key;
        json_int_t lo, hi;
    } ints[] = {
        {"latency_ms", 0, MAX_DELAY_MS},
        {"token_delay_ms", 0, MAX_DELAY_MS},
        {"status", 400, 599},
        {"die_after_tokens", 0, INT_MAX},
        {"times", 0, INT_MAX},
    };
    const char *key;
    json_t *v;
    if (!json_is_string(json_object_get(body, "model")))
        return "'model' (a name, or \"*\" for all) is required";
    json_object_foreach(body, key, v)
    {
        if (strcmp(key, "model") == 0)
            continue;
        if (strcmp(key, "reply") == 0) {
            if (!json_is_string(v) || !json_string_length(v))
                return "'reply' must be a non-empty string";
            continue;
        }
        if (strcmp(key, "tool_call") == 0) {
            if (!json_is_object(v) || !json_is_string(json_object_get(v, "name")))
                return "'tool_call' must be {\"name\": ..., \"arguments\": {...}}";
            continue;
        }
        size_t i;
        for (i = 0; i < sizeof ints / sizeof ints[0]; i++)
            if (strcmp(key, ints[i].key) == 0)
                break;
        if (i == sizeof ints / sizeof ints[0])
            return "unknown key (latency_ms, token_delay_ms, status, die_after_tokens, "
                   "tool_call, times)";
        if (!json_is_integer(v) || json_integer_value(v) < ints[i].lo ||
            json_integer_value(v) > ints[i].hi)
            return "latency_ms/token_delay_ms in 0..3600000, status in 400..599, "
                   "die_after_tokens and times >= 0";
    }
    return NULL;
}

static void on_control(struct fake *f, struct evhttp_request *req, const char *path)
{
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (method == EVHTTP_REQ_GET && strcmp(path, "/_fake/stats") == 0) {
        loaded_expire(f);
        json_t *loaded = json_array(), *v;
        const char *name;
        json_object_foreach(f->loaded, name, v)
        {
            json_array_append_new(loaded, json_string(name));
        }
        send_json(req, 200,
                  json_pack("{s:I,s:O,s:O,s:I,s:I,s:O,s:O,s:o,s:O,s:O}", "requests", f->requests,
                            "by_path", f->by_path, "by_model", f->by_model, "active_streams",
                            (json_int_t)f->active_streams, "client_disconnects",
                            (json_int_t)f->client_disconnects, "loads", f->loads, "unloads",
                            f->unloads, "loaded", loaded, "last_request", f->last_request,
                            "behaviours", f->behaviours));
        return;
    }
    if (method == EVHTTP_REQ_POST && strcmp(path, "/_fake/reset") == 0) {
        stats_reset(f);
        json_object_clear(f->behaviours);
        send_json(req, 200, json_pack("{s:b}", "ok", 1));
        return;
    }
    if (method == EVHTTP_REQ_POST && strcmp(path, "/_fake/behaviour") == 0) {
        json_t *body = parse_body(req, API_OPENAI);
        if (!body)
            return;
        const char *model = json_string_value(json_object_get(body, "model"));
        const char *err = validate_behaviour(body);
        if (err) {
            send_error(req, API_OPENAI, 400, NULL, NULL, "%s", err);
            json_decref(body);
            return;
        }
        json_t *entry = json_deep_copy(body);
        json_object_del(entry, "model");
        json_t *times = json_object_get(entry, "times");
        if (times && json_integer_value(times) == 0)
            json_object_del(entry, "times");
        if (json_object_size(entry) == 0)
            json_object_del(f->behaviours, model);
        else
            json_object_set(f->behaviours, model, entry);
        send_json(req, 200,
                  json_pack("{s:b,s:s,s:o}", "ok", 1, "model", model, "behaviour", entry));
        json_decref(body);
        return;
    }
    send_error(req, API_OPENAI, 404, "unknown_url", NULL, "Invalid URL (%s)", path);
}

/* ------------------------------------------------------------------ */
/* dispatch                                                            */

static const char *method_name(enum evhttp_cmd_type m)
{
    switch (m) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    default:
        return "OTHER";
    }
}

static bool authorized(struct fake *f, struct evhttp_request *req, enum api api)
{
    if (!f->api_key)
        return true;
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (auth && strncmp(auth, "Bearer ", 7) == 0 && strcmp(auth + 7, f->api_key) == 0)
        return true;
    if (!auth)
        send_error(req, api, 401, "", NULL,
                   "You didn't provide an API key. You need to provide your API key in an "
                   "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).");
    else
        send_error(req, api, 401, "invalid_api_key", NULL, "Incorrect API key provided.");
    return false;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct fake *f = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path || !*path)
        path = "/";
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (f->verbose)
        fprintf(stderr, "fake_upstream: %s %s\n", method_name(method), path);
    if (strncmp(path, "/_fake/", 7) == 0) {
        on_control(f, req, path);
        return;
    }
    f->requests++;
    counter_add(f->by_path, path, 1);
    enum api api = strncmp(path, "/api/", 5) == 0 ? API_OLLAMA : API_OPENAI;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const struct route *r = &routes[i];
        if (strcmp(path, r->path) != 0)
            continue;
        if (method != r->method && !(method == EVHTTP_REQ_HEAD && r->method == EVHTTP_REQ_GET))
            break;
        if (r->handler != on_root && !authorized(f, req, r->api))
            return;
        r->handler(f, req, r);
        return;
    }
    send_error(req, api, 404, "unknown_url", NULL, "Invalid URL (%s %s)", method_name(method),
               path);
}

/* ------------------------------------------------------------------ */
/* main                                                                */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopexit(arg, NULL);
}

static void usage(FILE *to)
{
    fprintf(to, "usage: fake_upstream [--listen HOST:PORT] [--api-key KEY] [--models a,b,...]\n"
                "                     [--embed-dims N] [--max-body BYTES] [--verbose]\n"
                "A fake OpenAI-compatible and Ollama model provider for tests; see\n"
                "tests/fake/README.md.  Prints \"listening HOST:PORT\" once it accepts.\n");
}

static int parse_listen(const char *spec, char *host, size_t host_size, unsigned *port)
{
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec)
        return -1;
    const char *h = spec;
    size_t hlen = (size_t)(colon - spec);
    if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= host_size)
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    char *end;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (end == colon + 1 || *end || p > 65535)
        return -1;
    *port = (unsigned)p;
    return 0;
}

/* libevent listens with a backlog of 128: a burst of a thousand new
 * connections (the stream benchmark) would overflow it and wait out the
 * kernel's 1 s SYN retry.  listen() again only resizes the queue. */
static void deepen_backlog(int fd)
{
    listen(fd, 4096);
}

int main(int argc, char **argv)
{
    struct fake f = {0};
    const char *listen = "127.0.0.1:0", *models = "fake-model";
    size_t max_body = DEFAULT_MAX_BODY;
    f.embed_dims = 16;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--verbose") == 0) {
            f.verbose = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (v && strcmp(a, "--listen") == 0) {
            listen = v, i++;
        } else if (v && strcmp(a, "--api-key") == 0) {
            f.api_key = v, i++;
        } else if (v && strcmp(a, "--models") == 0) {
            models = v, i++;
        } else if (v && strcmp(a, "--embed-dims") == 0) {
            f.embed_dims = atoi(v), i++;
            if (f.embed_dims < 1 || f.embed_dims > 65536) {
                fprintf(stderr, "fake_upstream: --embed-dims must be in 1..65536\n");
                return 2;
            }
        } else if (v && strcmp(a, "--max-body") == 0) {
            max_body = strtoull(v, NULL, 10), i++;
        } else {
            usage(stderr);
            return 2;
        }
    }
    char host[256];
    unsigned port;
    if (parse_listen(listen, host, sizeof host, &port) < 0) {
        fprintf(stderr, "fake_upstream: bad --listen %s (want HOST:PORT)\n", listen);
        return 2;
    }

    f.models = json_array();
    for (const char *p = models; *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n)
            json_array_append_new(f.models, json_stringn(p, n));
        p += n + (comma ? 1 : 0);
    }
    f.behaviours = json_object();
    f.by_path = json_object();
    f.by_model = json_object();
    f.loads = json_object();
    f.unloads = json_object();
    f.loaded = json_object();
    f.last_request = json_null();

    signal(SIGPIPE, SIG_IGN);
    int rc = 1;
    struct event *sigint = NULL, *sigterm = NULL;
    /* The changelist folds evhttp's disable-then-enable of the same event
     * into one epoll_ctl (or none); safe here, no fd is ever dup()ed. */
    struct event_config *cfg = event_config_new();
    if (cfg) {
        event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        f.base = event_base_new_with_config(cfg);
        event_config_free(cfg);
    }
    f.http = f.base ? evhttp_new(f.base) : NULL;
    if (!f.http) {
        fprintf(stderr, "fake_upstream: cannot create the event loop\n");
        goto out;
    }
    evhttp_set_max_body_size(f.http, (ev_ssize_t)max_body);
    evhttp_set_max_headers_size(f.http, MAX_HEADER_BYTES);
    evhttp_set_timeout(f.http, IO_TIMEOUT_S);
    evhttp_set_gencb(f.http, on_request, &f);
    struct evhttp_bound_socket *bound =
        evhttp_bind_socket_with_handle(f.http, host, (ev_uint16_t)port);
    if (!bound) {
        fprintf(stderr, "fake_upstream: cannot listen on %s: %s\n", listen, strerror(errno));
        goto out;
    }
    deepen_backlog(evhttp_bound_socket_get_fd(bound));
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof ss;
    if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&ss, &sslen) == 0)
        port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    printf(strchr(host, ':') ? "listening [%s]:%u\n" : "listening %s:%u\n", host, port);
    fflush(stdout);

    sigint = evsignal_new(f.base, SIGINT, on_signal, f.base);
    sigterm = evsignal_new(f.base, SIGTERM, on_signal, f.base);
    if (!sigint || !sigterm)
        goto out;
    evsignal_add(sigint, NULL);
    evsignal_add(sigterm, NULL);
    event_base_dispatch(f.base);
    rc = 0;
out:
    /* Exchanges first, so that freeing the connections runs no callback of
     * ours; evhttp then frees the requests still attached. */
    while (f.exchanges) {
        struct exchange *ex = f.exchanges;
        if (evhttp_request_get_connection(ex->req) == NULL)
            evhttp_request_free(ex->req);
        exchange_finish(ex);
    }
    if (sigint)
        event_free(sigint);
    if (sigterm)
        event_free(sigterm);
    if (f.http)
        evhttp_free(f.http);
    if (f.base)
        event_base_free(f.base);
    json_decref(f.models);
    json_decref(f.behaviours);
    json_decref(f.by_path);
    json_decref(f.by_model);
    json_decref(f.loads);
    json_decref(f.unloads);
    json_decref(f.loaded);
    json_decref(f.last_request);
    return rc;
}
