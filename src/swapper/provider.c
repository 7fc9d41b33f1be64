/* The provider table and the streamed-HTTP call the network providers share:
 * one attempt with its first-token and total timers, and the mapping of
 * upstream failures to dagi_err (swapper_internal.h).  Retries are the
 * swapper's (swapper_chat.c): it alone knows swapper.retries and whether a
 * token already reached the caller. */
#include "swapper_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/http_client.h"
#include "core/mem.h"

const struct dagi_provider_ops *dagi_provider_for(const struct dagi_model_config *model)
{
    static const struct dagi_provider_ops *const by_index[] = {
        &dagi_provider_openai, &dagi_provider_ollama, &dagi_provider_builtin};
    if (!model || model->provider < 0 || (size_t)model->provider >= DAGI_ARRAY_LEN(by_index))
        return NULL;
    return by_index[model->provider];
}

bool dagi_provider_model_can(const struct dagi_model_config *model, const char *name)
{
    if (!model->capabilities.count)
        return strcmp(name, "chat") == 0;
    for (size_t i = 0; i < model->capabilities.count; i++)
        if (strcmp(model->capabilities.items[i], name) == 0)
            return true;
    return false;
}

/* --- helpers for the providers --- */

char *dagi_provider_auth_header(const struct dagi_model_config *model)
{
    if (!model->api_key_env || !*model->api_key_env)
        return NULL;
    const char *key = getenv(model->api_key_env);
    if (!key || !*key)
        return NULL;
    return dagi_xasprintf("Authorization: Bearer %s", key);
}

char *dagi_provider_url(const struct dagi_model_config *model, const char *default_base,
                        const char *path)
{
    const char *base = model->base_url && *model->base_url ? model->base_url : default_base;
    size_t n = strlen(base);
    while (n && base[n - 1] == '/')
        n--;
    return dagi_xasprintf("%.*s%s", (int)n, base, path);
}

const char *dagi_provider_model_name(const struct dagi_model_config *model)
{
    return model->model && *model->model ? model->model : model->id;
}

void dagi_provider_error_message(const char *body, size_t len, long status, char *out,
                                 size_t out_len)
{
    json_t *root = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    const char *msg = NULL;
    if (json_is_object(root)) {
        json_t *e = json_object_get(root, "error");
        if (json_is_string(e))
            msg = json_string_value(e); /* Ollama: {"error": "..."} */
        else if (json_is_object(e))
            msg = json_string_value(json_object_get(e, "message")); /* OpenAI */
        if (!msg)
            msg = json_string_value(json_object_get(root, "message"));
    }
    if (msg)
        snprintf(out, out_len, "upstream HTTP %ld: %s", status, msg);
    else if (body && len)
        snprintf(out, out_len, "upstream HTTP %ld: %.200s", status, body);
    else
        snprintf(out, out_len, "upstream HTTP %ld", status);
    json_decref(root);
}

/* --- the call --- */

struct dagi_provider_call *dagi_provider_call_new(const struct dagi_provider_env *env,
                                                  const struct dagi_chat_callbacks *cb)
{
    struct dagi_provider_call *c = dagi_xcalloc(1, sizeof(*c));
    c->env = *env;
    c->cb = *cb;
    dagi_buf_init(&c->error_body, DAGI_PROVIDER_MAX_ERROR_BODY);
    dagi_buf_init(&c->line, DAGI_PROVIDER_MAX_EVENT);
    dagi_sse_parser_init(&c->sse, DAGI_PROVIDER_MAX_EVENT);
    snprintf(c->finish_reason, sizeof(c->finish_reason), "stop");
    return c;
}

struct dagi_provider_call *dagi_provider_call_new_embed(const struct dagi_provider_env *env,
                                                        const struct dagi_embed_callbacks *cb,
                                                        const struct dagi_embed_request *req)
{
    static const struct dagi_chat_callbacks none = {0};
    struct dagi_provider_call *c = dagi_provider_call_new(env, &none);
    c->embed_cb = *cb;
    c->embed_inputs = json_array_size(req->input);
    c->embed_dimensions = req->dimensions;
    /* One whole answer, far larger than a stream's event. */
    dagi_buf_release(&c->line);
    dagi_buf_init(&c->line, DAGI_PROVIDER_MAX_EMBED_ANSWER);
    return c;
}

int dagi_provider_call_set_embeddings(struct dagi_provider_call *c, json_t *list)
{
    if (!json_is_array(list))
        return dagi_provider_call_fail(c, DAGI_EUNAVAIL, "upstream answer without embeddings");
    if (json_array_size(list) != c->embed_inputs)
        return dagi_provider_call_fail(c, DAGI_EUNAVAIL,
                                       "upstream returned %zu embeddings for %zu inputs",
                                       json_array_size(list), c->embed_inputs);
    size_t dims = 0, i, k;
    json_t *vec, *x;
    json_array_foreach(list, i, vec)
    {
        size_t n = json_array_size(vec);
        if (!json_is_array(vec) || !n)
            return dagi_provider_call_fail(c, DAGI_EUNAVAIL,
                                           "upstream embedding %zu is not an "
                                           "array of numbers",
                                           i);
        json_array_foreach(vec, k, x)
        {
            if (!json_is_number(x))
                return dagi_provider_call_fail(c, DAGI_EUNAVAIL,
                                               "upstream embedding %zu has a non-number", i);
        }
        if (i && n != dims)
            return dagi_provider_call_fail(
                c, DAGI_EUNAVAIL, "upstream embeddings differ in length (%zu, %zu)", dims, n);
        dims = n;
    }
    /* A server that ignores `dimensions` (an older Ollama, a model without
     * shortening) would otherwise hand out vectors of another size than
     * the caller asked for and stores. */
    if (c->embed_dimensions > 0 && dims != (size_t)c->embed_dimensions)
        return dagi_provider_call_fail(c, DAGI_EINVAL,
                                       "upstream returned %zu dimensions, %lld were asked for",
                                       dims, (long long)c->embed_dimensions);
    json_decref(c->embeddings);
    c->embeddings = json_incref(list);
    return 0;
}

void dagi_provider_call_free(struct dagi_provider_call *c)
{
    if (!c)
        return;
    if (c->http)
        dagi_http_call_cancel(c->http);
    struct event *timers[] = {c->first_token_timer, c->total_timer, c->tick};
    for (size_t i = 0; i < DAGI_ARRAY_LEN(timers); i++)
        if (timers[i])
            event_free(timers[i]);
    free(c->url);
    for (char **h = c->headers; h && *h; h++)
        free(*h);
    free(c->headers);
    free(c->body);
    free(c->text);
    dagi_buf_release(&c->error_body);
    dagi_buf_release(&c->line);
    dagi_sse_parser_release(&c->sse);
    json_decref(c->tool_calls);
    json_decref(c->partial_tools);
    json_decref(c->embeddings);
    free(c);
}

void dagi_provider_call_enter(struct dagi_provider_call *c)
{
    c->busy++;
}

void dagi_provider_call_leave(struct dagi_provider_call *c)
{
    if (--c->busy == 0 && c->dead)
        dagi_provider_call_free(c);
}

/* Stops the upstream request and every timer; the struct stays until the
 * outermost entry point leaves. */
static void call_stop(struct dagi_provider_call *c)
{
    c->dead = true;
    if (c->http) {
        dagi_http_call_cancel(c->http);
        c->http = NULL;
    }
    struct event *timers[] = {c->first_token_timer, c->total_timer, c->tick};
    for (size_t i = 0; i < DAGI_ARRAY_LEN(timers); i++)
        if (timers[i])
            evtimer_del(timers[i]);
}

void dagi_provider_call_cancel(struct dagi_provider_call *c)
{
    if (!c || c->dead)
        return;
    dagi_provider_call_enter(c);
    call_stop(c);
    dagi_provider_call_leave(c);
}

void dagi_provider_call_finish(struct dagi_provider_call *c, int err, const char *message)
{
    if (c->dead)
        return;
    dagi_provider_call_enter(c);
    call_stop(c);
    if (c->embed_cb.on_done)
        c->embed_cb.on_done(c->embed_cb.ud, err, err ? message : NULL, err ? NULL : c->embeddings,
                            &c->usage);
    else if (err)
        c->cb.on_done(c->cb.ud, err, message, &c->usage, NULL, NULL, c->started);
    else
        c->cb.on_done(c->cb.ud, 0, NULL, &c->usage, c->finish_reason, c->tool_calls, c->started);
    dagi_provider_call_leave(c);
}

int dagi_provider_call_fail(struct dagi_provider_call *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->abort_msg, sizeof(c->abort_msg), fmt, ap);
    va_end(ap);
    c->abort_err = code;
    return code;
}

void dagi_provider_call_mark_first_token(struct dagi_provider_call *c)
{
    if (c->first_token)
        return;
    c->first_token = true;
    if (c->first_token_timer)
        evtimer_del(c->first_token_timer);
}

void dagi_provider_call_delta(struct dagi_provider_call *c, const char *text, size_t len)
{
    if (c->dead || !len)
        return;
    dagi_provider_call_mark_first_token(c);
    c->started = true;
    c->cb.on_delta(c->cb.ud, text, len);
}

static int on_http_headers(struct dagi_http_call *http, long status, void *ud)
{
    (void)http;
    struct dagi_provider_call *c = ud;
    c->status = status;
    /* A whole answer's headers come when it is ready: the upstream has
     * answered, and only the total budget is left to watch. */
    if (c->complete && status >= 200 && status <= 299)
        dagi_provider_call_mark_first_token(c);
    return 0;
}

static int on_http_data(struct dagi_http_call *http, const char *data, size_t len, void *ud)
{
    (void)http;
    struct dagi_provider_call *c = ud;
    if (c->status < 200 || c->status > 299) {
        /* Keep what fits of an error body: only its message matters. */
        size_t room = c->error_body.cap - c->error_body.len;
        dagi_buf_append(&c->error_body, data, len < room ? len : room);
        return 0;
    }
    dagi_provider_call_enter(c);
    int rc = c->feed(c, data, len);
    /* The user may have cancelled from a delta: then the HTTP call is gone
     * already and returning nonzero is harmless. */
    int stop = rc || c->dead;
    dagi_provider_call_leave(c);
    return stop;
}

static void on_http_done(struct dagi_http_call *http, const struct dagi_http_response *resp,
                         void *ud)
{
    (void)http;
    struct dagi_provider_call *c = ud;
    char msg[512];
    int err = 0;
    c->http = NULL;
    dagi_provider_call_enter(c);
    if (c->dead)
        goto out;
    if (c->abort_err) {
        err = c->abort_err;
        snprintf(msg, sizeof(msg), "%s", c->abort_msg);
    } else if (c->ended) {
        err = 0; /* the stream said it was complete; how the socket ended is moot */
    } else if (resp->err) {
        err = resp->err == DAGI_EIO ? DAGI_EUNAVAIL : resp->err;
        snprintf(msg, sizeof(msg), "upstream %s: %s", c->url, resp->error_message);
    } else if (c->complete && resp->status >= 200 && resp->status <= 299) {
        err = c->complete(c);
        if (err)
            snprintf(msg, sizeof(msg), "%s", c->abort_msg);
    } else if (resp->status < 200 || resp->status > 299) {
        dagi_provider_error_message(c->error_body.data, c->error_body.len, resp->status, msg,
                                    sizeof(msg));
        bool transient = resp->status >= 500 || resp->status == 429;
        err = transient ? DAGI_EUNAVAIL : resp->status == 413 ? DAGI_ETOOBIG : DAGI_EINVAL;
    } else {
        err = DAGI_EUNAVAIL; /* a 2xx that stopped without its end marker */
        snprintf(msg, sizeof(msg), "upstream stream ended before it was complete");
    }
    dagi_provider_call_finish(c, err, err ? msg : NULL);
out:
    dagi_provider_call_leave(c);
}

static int start_attempt(struct dagi_provider_call *c)
{
    unsigned timeout = c->env.total_timeout_ms;
    struct dagi_http_request_opts o = {
        .method = "POST",
        .url = c->url,
        .headers = (const char *const *)c->headers,
        .body = c->body,
        .body_len = c->body_len,
        .connect_timeout_ms = c->env.connect_timeout_ms,
        .timeout_ms = timeout,
        .on_headers = on_http_headers,
        .on_data = on_http_data,
        .on_done = on_http_done,
        .ud = c,
    };
    return dagi_http_client_request(c->env.http, &o, &c->http);
}

static void on_first_token_timer(evutil_socket_t fd, short what, void *ud)
{
    (void)fd, (void)what;
    struct dagi_provider_call *c = ud;
    char msg[128];
    snprintf(msg, sizeof(msg), "no first token within %u ms", c->env.first_token_timeout_ms);
    dagi_provider_call_enter(c);
    dagi_provider_call_finish(c, DAGI_ETIMEDOUT, msg);
    dagi_provider_call_leave(c);
}

static void on_total_timer(evutil_socket_t fd, short what, void *ud)
{
    (void)fd, (void)what;
    struct dagi_provider_call *c = ud;
    char msg[128];
    snprintf(msg, sizeof(msg), "the answer took longer than %u ms", c->env.total_timeout_ms);
    dagi_provider_call_enter(c);
    dagi_provider_call_finish(c, DAGI_ETIMEDOUT, msg);
    dagi_provider_call_leave(c);
}

static void arm(struct dagi_provider_call *c, struct event **ev, unsigned ms, event_callback_fn fn)
{
    if (!ms)
        return;
    *ev = evtimer_new(c->env.base, fn, c);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(*ev, &tv);
}

int dagi_provider_feed_whole(struct dagi_provider_call *c, const char *data, size_t len)
{
    if (dagi_buf_append(&c->line, data, len))
        return dagi_provider_call_fail(c, DAGI_ETOOBIG, "upstream answer over %zu bytes",
                                       c->line.cap);
    return 0;
}

int dagi_provider_call_post(struct dagi_provider_call *c, const struct dagi_model_config *model,
                            const char *default_base, const char *path, json_t *body,
                            const char *accept, struct dagi_provider_call **out,
                            struct dagi_error *err)
{
    c->body = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    c->body_len = strlen(c->body);
    c->url = dagi_provider_url(model, default_base, path);
    c->headers = dagi_xcalloc(4, sizeof(char *));
    size_t h = 0;
    c->headers[h++] = dagi_xstrdup("Content-Type: application/json");
    if (accept)
        c->headers[h++] = dagi_xasprintf("Accept: %s", accept);
    c->headers[h] = dagi_provider_auth_header(model); /* NULL ends the list when none */
    int rc = dagi_provider_call_start(c, err);
    if (rc) {
        dagi_provider_call_free(c);
        return rc;
    }
    *out = c;
    return DAGI_OK;
}

int dagi_provider_call_start(struct dagi_provider_call *c, struct dagi_error *err)
{
    if (!c->env.http)
        return dagi_error_set(err, DAGI_EINVAL, "no HTTP client for the provider");
    c->start_ns = dagi_clock_mono_ns();
    /* No callback may run before chat() has returned the handle, so a
     * request the client refuses outright is an error here, not an on_done. */
    int rc = start_attempt(c);
    if (rc)
        return dagi_error_set(err, rc, "the HTTP client refused %s", c->url);
    arm(c, &c->first_token_timer, c->env.first_token_timeout_ms, on_first_token_timer);
    arm(c, &c->total_timer, c->env.total_timeout_ms, on_total_timer);
    return DAGI_OK;
}
