/* The swapper's providers, retries and model table against a fake upstream
 * in the same process: libevent's evhttp on 127.0.0.1, on its own
 * event_base in a second thread, speaking OpenAI's SSE chat completions and
 * /v1/embeddings, and Ollama's NDJSON /api/chat (with load/unload through
 * keep_alive) and /api/embed.  The request body's "model" picks the fake's
 * behaviour. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "core/http_client.h"
#include "core/mem.h"
#include "swapper/swapper_internal.h"

#define TICK_MS 5
#define KEEP_ALIVE_DELAY_MS 50

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- the fake upstream ---------------------------------------------------- */

enum ending { END_CLEAN, END_STALL };

struct stream {
    struct stream *next;
    struct evhttp_request *req;
    struct evhttp_connection *conn;
    struct event *timer;
    const char *const *script; /* pieces sent one per tick */
    size_t sent;
    enum ending ending;
    bool closed;
    bool is_reply; /* a delayed plain reply (keep_alive) */
};

static struct {
    pthread_t thread;
    struct event_base *base;
    struct evhttp *http;
    struct event *stop;
    int port;
    struct stream *streams;
    pthread_mutex_t lock;
    int requests; /* chat requests, every kind */
    int loads, unloads;
    char log[1024]; /* "load:a unload:a ..." */
    char last_body[4096];
    atomic_int closes;
} fake;

static const char *const sse_ok[] = {
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" world\"}}]}\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3}}\n\n",
    "data: [DONE]\n\n",
    NULL};

static const char *const sse_tools[] = {
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\","
    "\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]}}]}\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
    "{\"arguments\":\"{\\\"city\\\":\"}}]}}]}\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
    "{\"arguments\":\"\\\"Paris\\\"}\"}}]}}]}\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_2\","
    "\"type\":\"function\",\"function\":{\"name\":\"now\",\"arguments\":\"{}\"}}]}}]}\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
    "data: [DONE]\n\n",
    NULL};

static const char *const sse_dies[] = {
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"partial\"}}]}\n\n", NULL};

static const char *const nothing[] = {NULL};

static const char *const ndjson_ok[] = {
    "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"done\":false}\n",
    "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\" there\"},\"done\":false}\n"
    "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,",
    "\"done_reason\":\"stop\",\"prompt_eval_count\":7,\"eval_count\":2}\n", NULL};

static void on_conn_close(struct evhttp_connection *conn, void *arg)
{
    (void)arg;
    for (struct stream *s = fake.streams; s; s = s->next)
        if (s->conn == conn)
            s->closed = true;
    atomic_fetch_add(&fake.closes, 1);
}

static void stream_finish(struct stream *s)
{
    if (s->is_reply) {
        struct evbuffer *b = evbuffer_new();
        evbuffer_add_printf(b, "{\"done\":true}");
        evhttp_send_reply(s->req, 200, "OK", b);
        evbuffer_free(b);
    } else {
        evhttp_send_reply_end(s->req);
    }
    for (struct stream **p = &fake.streams; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            break;
        }
    event_free(s->timer);
    free(s);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct stream *s = arg;
    if (s->closed || s->is_reply) {
        stream_finish(s);
        return;
    }
    if (s->script[s->sent]) {
        struct evbuffer *b = evbuffer_new();
        evbuffer_add(b, s->script[s->sent], strlen(s->script[s->sent]));
        evhttp_send_reply_chunk(s->req, b);
        evbuffer_free(b);
        s->sent++;
    } else if (s->ending == END_CLEAN) {
        stream_finish(s);
        return;
    }
    struct timeval tv = {0, TICK_MS * 1000};
    evtimer_add(s->timer, &tv);
}

static void start_stream(struct evhttp_request *req, const char *type, const char *const *script,
                         enum ending ending, bool is_reply, unsigned delay_ms)
{
    struct stream *s = calloc(1, sizeof(*s));
    s->req = req;
    s->conn = evhttp_request_get_connection(req);
    s->script = script;
    s->ending = ending;
    s->is_reply = is_reply;
    s->timer = evtimer_new(fake.base, on_tick, s);
    s->next = fake.streams;
    fake.streams = s;
    evhttp_connection_set_closecb(s->conn, on_conn_close, NULL);
    if (!is_reply) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
        evhttp_send_reply_start(req, 200, "OK");
    }
    struct timeval tv = {0, (delay_ms ? delay_ms : TICK_MS) * 1000};
    evtimer_add(s->timer, &tv);
}

static void reply(struct evhttp_request *req, int status, const char *body)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "%s", body);
    evhttp_send_reply(req, status, "X", b);
    evbuffer_free(b);
}

static json_t *read_body(struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    char *text = calloc(1, len + 1);
    evbuffer_copyout(in, text, len);
    pthread_mutex_lock(&fake.lock);
    snprintf(fake.last_body, sizeof(fake.last_body), "%s", text);
    pthread_mutex_unlock(&fake.lock);
    json_t *body = json_loads(text, 0, NULL);
    free(text);
    return body;
}

static void on_openai(struct evhttp_request *req, void *arg)
{
    (void)arg;
    json_t *body = read_body(req);
    const char *model = json_string_value(json_object_get(body, "model"));
    model = model ? model : "";
    pthread_mutex_lock(&fake.lock);
    fake.requests++;
    pthread_mutex_unlock(&fake.lock);
    const char *sse = "text/event-stream";
    bool whole = json_is_false(json_object_get(body, "stream"));
    /* A whole answer, shaped as the API reference's chat.completion. */
    if (whole && strcmp(model, "ok") == 0)
        reply(req, 200,
              "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1,"
              "\"model\":\"ok\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
              "\"assistant\",\"content\":\"Hello world\"},\"finish_reason\":\"stop\"}],"
              "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}");
    else if (whole && strcmp(model, "tools") == 0)
        reply(req, 200,
              "{\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":"
              "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\","
              "\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":"
              "\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},\"finish_reason\":\"tool_calls\"}]}");
    else if (whole && strcmp(model, "dies") == 0)
        reply(req, 200, "{\"object\":\"chat.completion\",\"choi");
    else if (strcmp(model, "ok") == 0)
        start_stream(req, sse, sse_ok, END_CLEAN, false, 0);
    else if (strcmp(model, "tools") == 0)
        start_stream(req, sse, sse_tools, END_CLEAN, false, 0);
    else if (strcmp(model, "dies") == 0)
        start_stream(req, sse, sse_dies, END_CLEAN, false, 0);
    else if (strcmp(model, "stall") == 0)
        start_stream(req, sse, nothing, END_STALL, false, 0);
    else if (strcmp(model, "fail500") == 0)
        reply(req, 500, "{\"error\":{\"message\":\"the upstream is overloaded\"}}");
    else
        reply(req, 400, "{\"error\":{\"message\":\"unknown model\"}}");
    json_decref(body);
}

static void on_ollama(struct evhttp_request *req, void *arg)
{
    (void)arg;
    json_t *body = read_body(req);
    const char *model = json_string_value(json_object_get(body, "model"));
    json_t *keep = json_object_get(body, "keep_alive");
    if (keep && json_array_size(json_object_get(body, "messages")) == 0) {
        bool unload = json_is_integer(keep) && json_integer_value(keep) == 0;
        pthread_mutex_lock(&fake.lock);
        if (unload)
            fake.unloads++;
        else
            fake.loads++;
        size_t n = strlen(fake.log);
        snprintf(fake.log + n, sizeof(fake.log) - n, "%s:%s ", unload ? "unload" : "load",
                 model ? model : "?");
        pthread_mutex_unlock(&fake.lock);
        start_stream(req, NULL, nothing, END_CLEAN, true, KEEP_ALIVE_DELAY_MS);
    } else {
        pthread_mutex_lock(&fake.lock);
        fake.requests++;
        pthread_mutex_unlock(&fake.lock);
        start_stream(req, "application/x-ndjson", ndjson_ok, END_CLEAN, false, 0);
    }
    json_decref(body);
}

/* Embedding k of input i is i + 0.5 + k, so a test sees which input a
 * vector belongs to; `dimensions` numbers each (3 without it). */
static json_t *fake_vector(size_t i, json_int_t dims)
{
    json_t *v = json_array();
    for (json_int_t k = 0; k < dims; k++)
        json_array_append_new(v, json_real((double)i + 0.5 + (double)k));
    return v;
}

static void reply_json(struct evhttp_request *req, json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    reply(req, 200, text);
    free(text);
    json_decref(doc);
}

/* OpenAI: data in reverse order (the reference promises nothing about the
 * order, only `index`); "emb-short" drops one, "emb-fixed" ignores
 * dimensions. */
static void on_openai_embed(struct evhttp_request *req, void *arg)
{
    (void)arg;
    json_t *body = read_body(req);
    const char *model = json_string_value(json_object_get(body, "model"));
    json_t *input = json_object_get(body, "input");
    json_t *d = json_object_get(body, "dimensions");
    json_int_t dims = json_is_integer(d) && strcmp(model, "emb-fixed") ? json_integer_value(d) : 3;
    size_t n = json_array_size(input);
    if (strcmp(model, "emb-short") == 0 && n)
        n--;
    pthread_mutex_lock(&fake.lock);
    fake.requests++;
    pthread_mutex_unlock(&fake.lock);
    json_t *data = json_array();
    for (size_t i = n; i-- > 0;)
        json_array_append_new(data, json_pack("{s:s,s:I,s:o}", "object", "embedding", "index",
                                              (json_int_t)i, "embedding", fake_vector(i, dims)));
    reply_json(req, json_pack("{s:s,s:o,s:s,s:{s:I,s:I}}", "object", "list", "data", data, "model",
                              model, "usage", "prompt_tokens", (json_int_t)(n * 3), "total_tokens",
                              (json_int_t)(n * 3)));
    json_decref(body);
}

/* Ollama: an empty input loads the model (logged "embed-load:"), as the
 * real /api/embed does; otherwise one vector per input, in order. */
static void on_ollama_embed(struct evhttp_request *req, void *arg)
{
    (void)arg;
    json_t *body = read_body(req);
    const char *model = json_string_value(json_object_get(body, "model"));
    json_t *input = json_object_get(body, "input");
    if (json_is_string(input) && !json_string_length(input)) {
        pthread_mutex_lock(&fake.lock);
        fake.loads++;
        size_t n = strlen(fake.log);
        snprintf(fake.log + n, sizeof(fake.log) - n, "embed-load:%s ", model ? model : "?");
        pthread_mutex_unlock(&fake.lock);
        reply_json(req, json_pack("{s:s,s:[]}", "model", model ? model : "", "embeddings"));
        json_decref(body);
        return;
    }
    pthread_mutex_lock(&fake.lock);
    fake.requests++;
    pthread_mutex_unlock(&fake.lock);
    json_t *vectors = json_array();
    for (size_t i = 0; i < json_array_size(input); i++)
        json_array_append_new(vectors, fake_vector(i, 4));
    reply_json(req, json_pack("{s:s,s:o,s:I}", "model", model ? model : "", "embeddings", vectors,
                              "prompt_eval_count", (json_int_t)json_array_size(input) * 2));
    json_decref(body);
}

static void on_ps(struct evhttp_request *req, void *arg)
{
    (void)arg;
    reply(req, 200, "{\"models\":[]}");
}

static void on_server_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    while (fake.streams)
        stream_finish(fake.streams);
    evhttp_free(fake.http);
    event_base_loopbreak(fake.base);
}

static void *server_main(void *arg)
{
    (void)arg;
    event_base_dispatch(fake.base);
    return NULL;
}

static int server_start(void)
{
    evthread_use_pthreads();
    pthread_mutex_init(&fake.lock, NULL);
    fake.base = event_base_new();
    fake.http = evhttp_new(fake.base);
    struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(fake.http, "127.0.0.1", 0);
    if (!bound)
        return -1;
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&sin, &len);
    fake.port = ntohs(sin.sin_port);
    evhttp_set_cb(fake.http, "/v1/chat/completions", on_openai, NULL);
    evhttp_set_cb(fake.http, "/api/chat", on_ollama, NULL);
    evhttp_set_cb(fake.http, "/api/ps", on_ps, NULL);
    evhttp_set_cb(fake.http, "/v1/embeddings", on_openai_embed, NULL);
    evhttp_set_cb(fake.http, "/api/embed", on_ollama_embed, NULL);
    fake.stop = event_new(fake.base, -1, 0, on_server_stop, NULL);
    return pthread_create(&fake.thread, NULL, server_main, NULL);
}

static void server_stop(void)
{
    event_active(fake.stop, EV_READ, 0);
    pthread_join(fake.thread, NULL);
    event_free(fake.stop);
    event_base_free(fake.base);
    pthread_mutex_destroy(&fake.lock);
}

static void fake_reset(void)
{
    pthread_mutex_lock(&fake.lock);
    fake.requests = fake.loads = fake.unloads = 0;
    fake.log[0] = fake.last_body[0] = '\0';
    pthread_mutex_unlock(&fake.lock);
    atomic_store(&fake.closes, 0);
}

static int fake_count(const int *field)
{
    pthread_mutex_lock(&fake.lock);
    int v = *field;
    pthread_mutex_unlock(&fake.lock);
    return v;
}

/* --- the client side ------------------------------------------------------ */

struct fixture {
    struct event_base *base;
    struct dagi_http_client *http;
    struct dagi_provider_env env;
    struct dagi_swapper_models *models;
    char openai_url[64], ollama_url[64];
};

struct result {
    int done;
    int err;
    char message[512];
    bool started;
    char text[512]; /* deltas joined with '|' */
    char raw[1024]; /* deltas joined as they are */
    int deltas;
    struct dagi_usage usage;
    char finish_reason[32];
    json_t *tool_calls;
};

static void on_delta(void *ud, const char *text, size_t len)
{
    struct result *r = ud;
    size_t n = strlen(r->text);
    snprintf(r->text + n, sizeof(r->text) - n, "%s%.*s", r->deltas ? "|" : "", (int)len, text);
    n = strlen(r->raw);
    snprintf(r->raw + n, sizeof(r->raw) - n, "%.*s", (int)len, text);
    r->deltas++;
}

static void on_done(void *ud, int err, const char *message, const struct dagi_usage *usage,
                    const char *finish_reason, const json_t *tool_calls, bool started)
{
    struct result *r = ud;
    r->done++;
    r->err = err;
    r->started = started;
    snprintf(r->message, sizeof(r->message), "%s", message ? message : "");
    r->usage = *usage;
    snprintf(r->finish_reason, sizeof(r->finish_reason), "%s", finish_reason ? finish_reason : "");
    if (tool_calls)
        r->tool_calls = json_deep_copy(tool_calls);
}

static void result_release(struct result *r)
{
    json_decref(r->tool_calls);
}

static bool run_until(struct event_base *base, const int *counter, int want, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    while (*counter < want) {
        if (now_ms() > deadline)
            return false;
        struct timeval tick = {0, 5000};
        event_base_loopexit(base, &tick);
        event_base_dispatch(base);
    }
    return true;
}

static bool run_until_fake(struct event_base *base, const int *field, int want, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    while (fake_count(field) < want) {
        if (now_ms() > deadline)
            return false;
        struct timeval tick = {0, 5000};
        event_base_loopexit(base, &tick);
        event_base_dispatch(base);
    }
    return true;
}

static bool run_until_closes(struct event_base *base, int want, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    while (atomic_load(&fake.closes) < want) {
        if (now_ms() > deadline)
            return false;
        struct timeval tick = {0, 5000};
        event_base_loopexit(base, &tick);
        event_base_dispatch(base);
    }
    return true;
}

static void run_for(struct event_base *base, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

enum { P_OPENAI, P_OLLAMA, P_BUILTIN };

/* Models the tests name; "model" is what the fake sees. */
static void set_models(struct fixture *f, int64_t budget)
{
    static char *no_caps[] = {NULL};
    static char embeddings[] = "embeddings";
    static char *embed_caps[] = {embeddings};
    struct dagi_model_config models[] = {
        {.id = "ok", .provider = P_OPENAI, .base_url = f->openai_url},
        {.id = "tools", .provider = P_OPENAI, .base_url = f->openai_url},
        {.id = "dies", .provider = P_OPENAI, .base_url = f->openai_url},
        {.id = "stall", .provider = P_OPENAI, .base_url = f->openai_url},
        {.id = "fail500", .provider = P_OPENAI, .base_url = f->openai_url},
        {.id = "bad", .provider = P_OPENAI, .base_url = f->openai_url},
        {.id = "llava", .provider = P_OLLAMA, .base_url = f->ollama_url, .memory_mb = 1000},
        {.id = "a", .provider = P_OLLAMA, .base_url = f->ollama_url, .memory_mb = 1000},
        {.id = "b", .provider = P_OLLAMA, .base_url = f->ollama_url, .memory_mb = 1000},
        {.id = "c",
         .provider = P_OLLAMA,
         .base_url = f->ollama_url,
         .memory_mb = 1000,
         .model = "c-upstream"},
        {.id = "emb", .provider = P_OPENAI, .base_url = f->openai_url},
        {.id = "emb-short", .provider = P_OPENAI, .base_url = f->openai_url},
        {.id = "emb-fixed", .provider = P_OPENAI, .base_url = f->openai_url},
        /* an embedding-only local model: loads through /api/embed */
        {.id = "nomic",
         .provider = P_OLLAMA,
         .base_url = f->ollama_url,
         .memory_mb = 1000,
         .capabilities = {embed_caps, 1}},
    };
    for (size_t i = 0; i < DAGI_ARRAY_LEN(models); i++)
        if (!models[i].capabilities.items)
            models[i].capabilities.items = no_caps;
    dagi_swapper_models_set_budget(f->models, budget, &f->env);
    dagi_swapper_models_set(f->models, models, DAGI_ARRAY_LEN(models));
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->base = event_base_new();
    f->http = dagi_http_client_new(f->base, NULL);
    f->env = (struct dagi_provider_env){.base = f->base,
                                        .http = f->http,
                                        .connect_timeout_ms = 2000,
                                        .first_token_timeout_ms = 5000,
                                        .total_timeout_ms = 10000};
    snprintf(f->openai_url, sizeof(f->openai_url), "http://127.0.0.1:%d/v1/", fake.port);
    snprintf(f->ollama_url, sizeof(f->ollama_url), "http://127.0.0.1:%d", fake.port);
    struct dagi_swapper_models_opts mo = {.env = f->env};
    f->models = dagi_swapper_models_new(&mo);
    set_models(f, 0);
    fake_reset();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    run_for(f->base, 20); /* let finished calls release their connections */
    dagi_swapper_models_free(f->models);
    dagi_http_client_free(f->http);
    event_base_free(f->base);
    free(f);
    return 0;
}

static json_t *user_messages(const char *text)
{
    return json_pack("[{s:s,s:s}]", "role", "user", "content", text);
}

/* Starts a chat with retries on model `id` and runs it to its end;
 * chat_whole asks for the answer whole instead of streamed. */
static void chat_mode(struct fixture *f, const char *id, json_t *messages, unsigned retries,
                      struct result *r, bool stream)
{
    struct dagi_swapper_model *m = dagi_swapper_models_find(f->models, id);
    assert_non_null(m);
    struct dagi_chat_request req = {.messages = messages, .temperature = -1, .stream = stream};
    struct dagi_chat_callbacks cb = {on_delta, on_done, r};
    struct dagi_swapper_chat *ch = NULL;
    struct dagi_error err = {0};
    assert_int_equal(dagi_swapper_chat_start(m, &f->env, retries, &req, &cb, &ch, &err), 0);
    assert_true(run_until(f->base, &r->done, 1, 10000));
    assert_int_equal(r->done, 1);
}

static void chat(struct fixture *f, const char *id, json_t *messages, unsigned retries,
                 struct result *r)
{
    chat_mode(f, id, messages, retries, r, true);
}

static void chat_whole(struct fixture *f, const char *id, json_t *messages, unsigned retries,
                       struct result *r)
{
    chat_mode(f, id, messages, retries, r, false);
}

/* --- tests ---------------------------------------------------------------- */

static void test_openai_streams_deltas_and_usage(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    json_t *msgs = user_messages("hello");
    chat(f, "ok", msgs, 2, &r);
    assert_int_equal(r.err, 0);
    assert_string_equal(r.text, "Hel|lo| world");
    assert_true(r.started);
    assert_int_equal(r.usage.prompt_tokens, 5);
    assert_int_equal(r.usage.completion_tokens, 3);
    assert_string_equal(r.finish_reason, "stop");
    assert_null(r.tool_calls);
    /* the wire: stream with usage, messages passed through */
    json_t *sent = json_loads(fake.last_body, 0, NULL);
    assert_true(json_is_true(json_object_get(sent, "stream")));
    assert_true(
        json_is_true(json_object_get(json_object_get(sent, "stream_options"), "include_usage")));
    assert_true(json_equal(json_object_get(sent, "messages"), msgs));
    json_decref(sent);
    json_decref(msgs);
    result_release(&r);
}

static void test_openai_accumulates_tool_calls(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    json_t *msgs = user_messages("weather?");
    chat(f, "tools", msgs, 0, &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.deltas, 0);
    assert_false(r.started);
    assert_string_equal(r.finish_reason, "tool_calls");
    assert_int_equal(json_array_size(r.tool_calls), 2);
    json_t *first = json_array_get(r.tool_calls, 0);
    assert_string_equal(json_string_value(json_object_get(first, "id")), "call_1");
    json_t *fn = json_object_get(first, "function");
    assert_string_equal(json_string_value(json_object_get(fn, "name")), "get_weather");
    assert_string_equal(json_string_value(json_object_get(fn, "arguments")),
                        "{\"city\":\"Paris\"}");
    fn = json_object_get(json_array_get(r.tool_calls, 1), "function");
    assert_string_equal(json_string_value(json_object_get(fn, "name")), "now");
    json_decref(msgs);
    result_release(&r);
}

/* Nobody reads a whole answer before it is complete: one request with
 * stream false, one delta with the text, the usage, no SSE. */
static void test_openai_whole_answer(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    json_t *msgs = user_messages("hello");
    chat_whole(f, "ok", msgs, 0, &r);
    assert_int_equal(r.err, 0);
    assert_string_equal(r.text, "Hello world");
    assert_int_equal(r.deltas, 1);
    assert_int_equal(r.usage.prompt_tokens, 5);
    assert_int_equal(r.usage.completion_tokens, 2);
    json_t *sent = json_loads(fake.last_body, 0, NULL);
    assert_true(json_is_false(json_object_get(sent, "stream")));
    assert_null(json_object_get(sent, "stream_options"));
    json_decref(sent);
    result_release(&r);

    struct result t = {0};
    chat_whole(f, "tools", msgs, 0, &t);
    assert_int_equal(t.err, 0);
    assert_string_equal(t.finish_reason, "tool_calls");
    assert_int_equal(json_array_size(t.tool_calls), 1);
    json_t *fn = json_object_get(json_array_get(t.tool_calls, 0), "function");
    assert_string_equal(json_string_value(json_object_get(fn, "arguments")),
                        "{\"city\":\"Paris\"}");
    result_release(&t);

    /* A whole answer cut short is not a clean end and was never started. */
    struct result d = {0};
    chat_whole(f, "dies", msgs, 0, &d);
    assert_int_equal(d.err, DAGI_EUNAVAIL);
    assert_false(d.started);
    result_release(&d);
    json_decref(msgs);
}

static void test_openai_500_is_retried_then_fails_unstarted(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    json_t *msgs = user_messages("hi");
    chat(f, "fail500", msgs, 2, &r);
    assert_int_equal(r.err, DAGI_EUNAVAIL);
    assert_false(r.started);
    assert_non_null(strstr(r.message, "the upstream is overloaded"));
    assert_int_equal(fake_count(&fake.requests), 3); /* one try + two retries */
    json_decref(msgs);
    result_release(&r);
}

static void test_openai_400_is_not_retried(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    json_t *msgs = user_messages("hi");
    chat(f, "bad", msgs, 2, &r);
    assert_int_equal(r.err, DAGI_EINVAL);
    assert_non_null(strstr(r.message, "unknown model"));
    assert_int_equal(fake_count(&fake.requests), 1);
    json_decref(msgs);
    result_release(&r);
}

static void test_openai_dying_mid_stream_is_started_and_not_retried(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    json_t *msgs = user_messages("hi");
    chat(f, "dies", msgs, 2, &r);
    assert_int_equal(r.err, DAGI_EUNAVAIL);
    assert_true(r.started);
    assert_string_equal(r.text, "partial");
    assert_int_equal(fake_count(&fake.requests), 1);
    json_decref(msgs);
    result_release(&r);
}

static void test_first_token_timeout(void **state)
{
    struct fixture *f = *state;
    f->env.first_token_timeout_ms = 300;
    struct result r = {0};
    json_t *msgs = user_messages("hi");
    int64_t t0 = now_ms();
    chat(f, "stall", msgs, 2, &r);
    int64_t took = now_ms() - t0;
    assert_int_equal(r.err, DAGI_ETIMEDOUT);
    assert_false(r.started);
    assert_true(took >= 250 && took < 3000);
    assert_int_equal(fake_count(&fake.requests), 1); /* a timeout is not retried */
    assert_true(run_until_closes(f->base, 1, 3000));
    json_decref(msgs);
    result_release(&r);
}

static void test_cancel_aborts_the_upstream(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    json_t *msgs = user_messages("hi");
    struct dagi_swapper_model *m = dagi_swapper_models_find(f->models, "stall");
    struct dagi_chat_request req = {.messages = msgs, .temperature = -1, .stream = true};
    struct dagi_chat_callbacks cb = {on_delta, on_done, &r};
    struct dagi_swapper_chat *ch = NULL;
    assert_int_equal(dagi_swapper_chat_start(m, &f->env, 0, &req, &cb, &ch, NULL), 0);
    assert_true(run_until_fake(f->base, &fake.requests, 1, 3000));
    run_for(f->base, 30);
    assert_int_equal(atomic_load(&fake.closes), 0);
    dagi_swapper_chat_cancel(ch);
    assert_true(run_until_closes(f->base, 1, 3000));
    run_for(f->base, 30);
    assert_int_equal(r.done, 0); /* no callback after a cancel */
    json_decref(msgs);
    result_release(&r);
}

static void test_ollama_ndjson_usage_and_images(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    json_t *msgs =
        json_pack("[{s:s,s:s},{s:s,s:[{s:s,s:s},{s:s,s:{s:s}}]}]", "role", "system", "content",
                  "be brief", "role", "user", "content", "type", "text", "text", "what is this?",
                  "type", "image_url", "image_url", "url", "data:image/png;base64,iVBORw0KGgo=");
    chat(f, "llava", msgs, 0, &r);
    assert_int_equal(r.err, 0);
    assert_string_equal(r.text, "Hi| there");
    assert_int_equal(r.usage.prompt_tokens, 7);
    assert_int_equal(r.usage.completion_tokens, 2);
    assert_string_equal(r.finish_reason, "stop");
    json_t *sent = json_loads(fake.last_body, 0, NULL);
    assert_non_null(sent);
    assert_true(json_is_true(json_object_get(sent, "stream")));
    /* the load's keep_alive: a chat must not shorten the model's stay */
    assert_string_equal(json_string_value(json_object_get(sent, "keep_alive")), "30m");
    json_t *user = json_array_get(json_object_get(sent, "messages"), 1);
    assert_string_equal(json_string_value(json_object_get(user, "content")), "what is this?");
    assert_string_equal(json_string_value(json_array_get(json_object_get(user, "images"), 0)),
                        "iVBORw0KGgo=");
    json_decref(sent);
    json_decref(msgs);
    result_release(&r);
}

static void test_builtin_streams_and_says_offline(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    json_t *msgs = user_messages("are you there?");
    chat(f, "builtin", msgs, 0, &r);
    assert_int_equal(r.err, 0);
    assert_true(r.deltas >= 2);
    assert_true(r.started);
    assert_int_equal(strncmp(r.raw, "[offline builtin model] ", 24), 0);
    assert_non_null(strstr(r.raw, "\"are you there?\""));
    assert_non_null(strstr(r.raw, "without a model provider"));
    assert_int_equal(r.usage.completion_tokens, r.deltas);
    assert_int_equal(r.usage.prompt_tokens, 3);
    assert_int_equal(fake_count(&fake.requests), 0);
    json_decref(msgs);
    result_release(&r);
}

/* --- the model table --- */

struct wait {
    struct dagi_swapper_waiter w;
    int *ready;
    int err;
};

static void on_ready(struct dagi_swapper_waiter *w, int err, const char *message)
{
    (void)message;
    struct wait *wt = (struct wait *)w;
    wt->err = err;
    (*wt->ready)++;
}

/* Acquires like a request would: waits for the load, then marks it used. */
static void use(struct fixture *f, const char *id)
{
    struct dagi_swapper_model *m = dagi_swapper_models_find(f->models, id);
    int ready = 0;
    struct wait wt = {.w.on_ready = on_ready, .ready = &ready};
    int rc = dagi_swapper_model_acquire(m, &wt.w);
    if (rc == DAGI_EAGAIN) {
        assert_true(run_until(f->base, &ready, 1, 5000));
        assert_int_equal(wt.err, 0);
    } else {
        assert_int_equal(rc, 0);
    }
    assert_true(dagi_swapper_model_loaded(m));
    dagi_swapper_model_touch(m);
}

static void test_lru_unloads_least_recently_used(void **state)
{
    struct fixture *f = *state;
    set_models(f, 2000); /* room for two of a, b, c */
    use(f, "a");
    use(f, "b");
    use(f, "a"); /* a is now more recent than b */
    assert_int_equal(fake_count(&fake.loads), 2);
    use(f, "c");
    assert_true(run_until_fake(f->base, &fake.loads, 3, 3000));
    assert_string_equal(fake.log, "load:a load:b unload:b load:c-upstream ");
    assert_true(dagi_swapper_model_loaded(dagi_swapper_models_find(f->models, "a")));
    assert_false(dagi_swapper_model_loaded(dagi_swapper_models_find(f->models, "b")));
    assert_int_equal(dagi_swapper_models_used_mb(f->models), 2000);
    /* a reload keeps the load state of models that still exist */
    set_models(f, 2000);
    assert_true(dagi_swapper_model_loaded(dagi_swapper_models_find(f->models, "a")));
    assert_true(dagi_swapper_model_loaded(dagi_swapper_models_find(f->models, "c")));
    assert_non_null(dagi_swapper_models_find(f->models, "builtin"));
}

static void test_concurrent_first_requests_share_one_load(void **state)
{
    struct fixture *f = *state;
    struct dagi_swapper_model *m = dagi_swapper_models_find(f->models, "a");
    int ready = 0;
    struct wait waits[10];
    for (int i = 0; i < 10; i++) {
        waits[i] = (struct wait){.w.on_ready = on_ready, .ready = &ready, .err = 99};
        assert_int_equal(dagi_swapper_model_acquire(m, &waits[i].w), DAGI_EAGAIN);
    }
    assert_true(run_until(f->base, &ready, 10, 5000));
    for (int i = 0; i < 10; i++)
        assert_int_equal(waits[i].err, 0);
    assert_int_equal(fake_count(&fake.loads), 1);
    assert_int_equal(dagi_swapper_model_acquire(m, &waits[0].w), 0); /* loaded now */
}

static void test_operator_unload(void **state)
{
    struct fixture *f = *state;
    use(f, "b");
    struct dagi_swapper_model *m = dagi_swapper_models_find(f->models, "b");
    int done = 0;
    assert_int_equal(
        dagi_swapper_model_unload(dagi_swapper_models_find(f->models, "ok"), NULL, NULL),
        DAGI_EINVAL);
    struct wait wt = {.ready = &done};
    (void)wt;
    assert_int_equal(dagi_swapper_model_unload(m, NULL, NULL), 0);
    assert_true(run_until_fake(f->base, &fake.unloads, 1, 3000));
    run_for(f->base, KEEP_ALIVE_DELAY_MS * 3);
    assert_false(dagi_swapper_model_loaded(m));
    assert_int_equal(dagi_swapper_models_used_mb(f->models), 0);
}

/* --- embeddings --- */

struct embedded {
    int done;
    int err;
    char message[512];
    json_t *embeddings;
    struct dagi_usage usage;
};

static void on_embedded(void *ud, int err, const char *message, const json_t *embeddings,
                        const struct dagi_usage *usage)
{
    struct embedded *r = ud;
    r->done++;
    r->err = err;
    snprintf(r->message, sizeof(r->message), "%s", message ? message : "");
    r->embeddings = embeddings ? json_deep_copy(embeddings) : NULL;
    r->usage = *usage;
}

/* Runs model `id`'s embed on `input` (a JSON array) to its end. */
static void embed(struct fixture *f, const char *id, json_t *input, int64_t dimensions,
                  struct embedded *r)
{
    struct dagi_swapper_model *m = dagi_swapper_models_find(f->models, id);
    assert_non_null(m);
    assert_non_null(m->ops->embed);
    assert_true(m->ops->caps & DAGI_PROVIDER_CAN_EMBED);
    struct dagi_embed_request req = {.input = input, .dimensions = dimensions};
    struct dagi_embed_callbacks cb = {on_embedded, r};
    struct dagi_provider_call *call = NULL;
    struct dagi_error err = {0};
    assert_int_equal(m->ops->embed(&f->env, &m->cfg, &req, &cb, &call, &err), 0);
    assert_int_equal(r->done, 0); /* never before embed() returned */
    assert_true(run_until(f->base, &r->done, 1, 10000));
    assert_int_equal(r->done, 1);
}

static double number_at(const json_t *vectors, size_t i, size_t k)
{
    return json_number_value(json_array_get(json_array_get(vectors, i), k));
}

static json_t *texts(const char *a, const char *b, const char *c)
{
    json_t *list = json_array();
    const char *all[] = {a, b, c};
    for (size_t i = 0; i < 3; i++)
        if (all[i])
            json_array_append_new(list, json_string(all[i]));
    return list;
}

static void test_embed_openai_orders_by_index(void **state)
{
    struct fixture *f = *state;
    struct embedded r = {0};
    json_t *input = texts("zero", "one", "two");
    embed(f, "emb", input, 0, &r);
    assert_int_equal(r.err, 0);
    /* the fake answers in reverse: each vector lands where its index says */
    assert_int_equal(json_array_size(r.embeddings), 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(json_array_size(json_array_get(r.embeddings, i)), 3);
        assert_true(number_at(r.embeddings, i, 0) == (double)i + 0.5);
    }
    assert_int_equal(r.usage.prompt_tokens, 9);
    json_t *sent = json_loads(fake.last_body, 0, NULL);
    assert_true(json_equal(json_object_get(sent, "input"), input));
    assert_string_equal(json_string_value(json_object_get(sent, "encoding_format")), "float");
    assert_string_equal(json_string_value(json_object_get(sent, "model")), "emb");
    assert_null(json_object_get(sent, "dimensions"));
    json_decref(sent);
    json_decref(r.embeddings);

    /* dimensions go upstream, and the answer must have them */
    struct embedded d = {0};
    embed(f, "emb", input, 2, &d);
    assert_int_equal(d.err, 0);
    assert_int_equal(json_array_size(json_array_get(d.embeddings, 0)), 2);
    sent = json_loads(fake.last_body, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(sent, "dimensions")), 2);
    json_decref(sent);
    json_decref(d.embeddings);
    json_decref(input);
}

static void test_embed_openai_checks_the_answer(void **state)
{
    struct fixture *f = *state;
    json_t *input = texts("zero", "one", "two");
    struct embedded r = {0};
    embed(f, "emb-short", input, 0, &r);
    assert_int_equal(r.err, DAGI_EUNAVAIL);
    assert_null(r.embeddings);
    assert_non_null(strstr(r.message, "2 embeddings for 3 inputs"));
    /* a server that ignores dimensions: refused, not passed on */
    struct embedded d = {0};
    embed(f, "emb-fixed", input, 8, &d);
    assert_int_equal(d.err, DAGI_EINVAL);
    assert_non_null(strstr(d.message, "3 dimensions, 8 were asked for"));
    json_decref(input);
}

static void test_embed_ollama_native(void **state)
{
    struct fixture *f = *state;
    struct embedded r = {0};
    json_t *input = texts("a", "b", NULL);
    embed(f, "nomic", input, 0, &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(json_array_size(r.embeddings), 2);
    assert_int_equal(json_array_size(json_array_get(r.embeddings, 1)), 4);
    assert_true(number_at(r.embeddings, 1, 0) == 1.5);
    assert_int_equal(r.usage.prompt_tokens, 4);
    json_t *sent = json_loads(fake.last_body, 0, NULL);
    assert_true(json_equal(json_object_get(sent, "input"), input));
    /* the load's keep_alive, so the model stays as long as the swapper thinks */
    assert_string_equal(json_string_value(json_object_get(sent, "keep_alive")), "30m");
    json_decref(sent);
    json_decref(r.embeddings);
    json_decref(input);
}

/* An embedding-only local model loads through /api/embed (Ollama refuses a
 * chat-load of a model that cannot chat) and takes its share of the
 * budget: loading it evicts the least recently used chat model. */
static void test_embed_only_model_loads_under_the_budget(void **state)
{
    struct fixture *f = *state;
    set_models(f, 2000);
    use(f, "a");
    use(f, "b");
    use(f, "nomic");
    assert_string_equal(fake.log, "load:a load:b unload:a embed-load:nomic ");
    assert_int_equal(dagi_swapper_models_used_mb(f->models), 2000);
    /* a second user finds it loaded: no load at all */
    int ready = 0;
    struct wait wt = {.w.on_ready = on_ready, .ready = &ready};
    assert_int_equal(
        dagi_swapper_model_acquire(dagi_swapper_models_find(f->models, "nomic"), &wt.w), 0);
    assert_int_equal(fake_count(&fake.loads), 3);
}

static double dot(const json_t *vectors, size_t a, size_t b)
{
    double sum = 0;
    for (size_t k = 0; k < json_array_size(json_array_get(vectors, a)); k++)
        sum += number_at(vectors, a, k) * number_at(vectors, b, k);
    return sum;
}

static void test_embed_builtin_deterministic_and_normalised(void **state)
{
    struct fixture *f = *state;
    struct embedded r = {0};
    json_t *input = json_pack("[s,s,s,s,s]", "the cat sat", "The CAT sat!",
                              "the cat sat on the mat", "dogs bark loudly", "?!");
    embed(f, "builtin", input, 0, &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(json_array_size(r.embeddings), 5);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(json_array_size(json_array_get(r.embeddings, i)), 256);
        assert_true(fabs(dot(r.embeddings, i, i) - 1.0) < 1e-9); /* unit length */
    }
    /* words, not bytes: case and punctuation do not matter */
    assert_true(fabs(dot(r.embeddings, 0, 1) - 1.0) < 1e-9);
    /* shared words point the same way, other words elsewhere */
    assert_true(dot(r.embeddings, 0, 2) > 0.5);
    assert_true(dot(r.embeddings, 0, 2) > dot(r.embeddings, 0, 3) + 0.3);
    assert_int_equal(r.usage.prompt_tokens, 3 + 3 + 6 + 3 + 0);
    assert_int_equal(fake_count(&fake.requests), 0); /* offline */

    /* the same again, and in another size */
    struct embedded again = {0}, small = {0}, huge = {0};
    embed(f, "builtin", input, 0, &again);
    assert_true(json_equal(again.embeddings, r.embeddings));
    embed(f, "builtin", input, 16, &small);
    assert_int_equal(json_array_size(json_array_get(small.embeddings, 4)), 16);
    assert_true(fabs(dot(small.embeddings, 4, 4) - 1.0) < 1e-9);
    struct dagi_swapper_model *m = dagi_swapper_models_find(f->models, "builtin");
    struct dagi_embed_request req = {.input = input, .dimensions = 5000};
    struct dagi_embed_callbacks cb = {on_embedded, &huge};
    struct dagi_provider_call *call = NULL;
    struct dagi_error err = {0};
    assert_int_equal(m->ops->embed(&f->env, &m->cfg, &req, &cb, &call, &err), DAGI_EINVAL);
    assert_non_null(strstr(err.message, "4096"));
    /* the implicit builtin model says it embeds */
    assert_true(dagi_provider_model_can(&m->cfg, "embeddings"));
    assert_false(
        dagi_provider_model_can(&dagi_swapper_models_find(f->models, "ok")->cfg, "embeddings"));
    json_decref(r.embeddings);
    json_decref(again.embeddings);
    json_decref(small.embeddings);
    json_decref(input);
}

static void test_embed_cancel_reports_nothing(void **state)
{
    struct fixture *f = *state;
    struct embedded r = {0};
    json_t *input = texts("x", NULL, NULL);
    struct dagi_swapper_model *m = dagi_swapper_models_find(f->models, "builtin");
    struct dagi_embed_request req = {.input = input};
    struct dagi_embed_callbacks cb = {on_embedded, &r};
    struct dagi_provider_call *call = NULL;
    assert_int_equal(m->ops->embed(&f->env, &m->cfg, &req, &cb, &call, NULL), 0);
    m->ops->cancel(call);
    run_for(f->base, 30);
    assert_int_equal(r.done, 0);
    json_decref(input);
}

static void expect_input(const json_t *input, size_t max_total, int code, const char *words)
{
    json_t *out = NULL;
    struct dagi_error err = {0};
    int rc = dagi_swapper_embed_input(input, max_total, &out, &err);
    assert_int_equal(rc, code);
    if (code) {
        assert_null(out);
        assert_non_null(strstr(err.message, words));
    } else {
        assert_true(json_is_array(out));
        json_decref(out);
    }
}

static void test_embed_input_caps(void **state)
{
    (void)state;
    json_t *one = json_string("hello");
    json_t *out = NULL;
    assert_int_equal(dagi_swapper_embed_input(one, 0, &out, NULL), 0);
    assert_int_equal(json_array_size(out), 1); /* a string is a list of one */
    assert_string_equal(json_string_value(json_array_get(out, 0)), "hello");
    json_decref(out);

    json_t *list = json_array();
    for (int i = 0; i < DAGI_EMBED_MAX_INPUTS; i++)
        json_array_append_new(list, json_string("w"));
    expect_input(list, 0, 0, NULL);
    json_array_append_new(list, json_string("w"));
    expect_input(list, 0, DAGI_EINVAL, "at most 256");
    json_decref(list);

    char *big = malloc(DAGI_EMBED_MAX_INPUT_BYTES + 2);
    memset(big, 'a', DAGI_EMBED_MAX_INPUT_BYTES + 1);
    big[DAGI_EMBED_MAX_INPUT_BYTES + 1] = '\0';
    json_t *huge = json_pack("[s,s]", "fine", big);
    expect_input(huge, 0, DAGI_ETOOBIG, "input[1] is 65537 bytes");
    big[DAGI_EMBED_MAX_INPUT_BYTES] = '\0'; /* exactly the cap: fine */
    json_decref(huge);
    huge = json_pack("[s,s]", "fine", big);
    expect_input(huge, 0, 0, NULL);
    /* the total against the bus cap */
    expect_input(huge, 1000, DAGI_ETOOBIG, "the bus carries at most 1000");
    json_decref(huge);
    free(big);

    json_t *bad[] = {json_pack("[]"), json_pack("[s,i]", "a", 1), json_pack("[s,s]", "a", ""),
                     json_integer(3), json_pack("[[i,i]]", 1, 2), NULL};
    const char *why[] = {"must not be empty", "input[1] must be a string", "input[1] is empty",
                         "a string or an array of strings", "input[0] must be a string"};
    for (size_t i = 0; bad[i]; i++) {
        expect_input(bad[i], 0, DAGI_EINVAL, why[i]);
        json_decref(bad[i]);
    }
    expect_input(NULL, 0, DAGI_EINVAL, "a string or an array");
    json_decref(one);
}

int main(void)
{
    if (server_start())
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_openai_streams_deltas_and_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_openai_accumulates_tool_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_openai_whole_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_openai_500_is_retried_then_fails_unstarted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_openai_400_is_not_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_openai_dying_mid_stream_is_started_and_not_retried,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_token_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_aborts_the_upstream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ollama_ndjson_usage_and_images, setup, teardown),
        cmocka_unit_test_setup_teardown(test_builtin_streams_and_says_offline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lru_unloads_least_recently_used, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_first_requests_share_one_load, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_operator_unload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_embed_openai_orders_by_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_embed_openai_checks_the_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_embed_ollama_native, setup, teardown),
        cmocka_unit_test_setup_teardown(test_embed_only_model_loads_under_the_budget, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_embed_builtin_deterministic_and_normalised, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_embed_cancel_reports_nothing, setup, teardown),
        cmocka_unit_test(test_embed_input_caps),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    server_stop();
    return rc;
}
