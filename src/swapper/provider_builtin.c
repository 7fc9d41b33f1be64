/* The offline provider: always available, no network, no key.  It answers
 * every request with a deterministic text that says so, one word per loop
 * turn (a zero-delay timer), so that callers exercise the same streaming
 * path as with a real model.  Usage is counted in words. */
#include "swapper_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

#define QUOTE_MAX 200 /* bytes of the user's message repeated back */

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

/* The text of a message's content: a string, or its text parts joined. */
static void content_text(const json_t *content, struct dagi_buf *out)
{
    if (json_is_string(content)) {
        dagi_buf_append_str(out, json_string_value(content));
        return;
    }
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part)
    {
        const char *t = json_string_value(json_object_get(part, "text"));
        if (t && (!out->len || dagi_buf_append_char(out, ' ') == 0))
            dagi_buf_append_str(out, t);
    }
}

static char *compose_answer(const struct dagi_chat_request *req, int64_t *prompt_words)
{
    struct dagi_buf last, all;
    dagi_buf_init(&last, 1u << 20);
    dagi_buf_init(&all, 16u << 20);
    size_t i;
    json_t *msg;
    json_array_foreach(req->messages, i, msg)
    {
        json_t *content = json_object_get(msg, "content");
        content_text(content, &all);
        dagi_buf_append_char(&all, ' ');
        const char *role = json_string_value(json_object_get(msg, "role"));
        if (role && strcmp(role, "user") == 0) {
            dagi_buf_reset(&last);
            content_text(content, &last);
        }
    }
    *prompt_words = (int64_t)count_words(dagi_buf_str(&all));
    /* Truncate on a UTF-8 boundary so the quote stays valid text. */
    size_t n = last.len;
    if (n > QUOTE_MAX) {
        n = QUOTE_MAX;
        while (n && ((unsigned char)last.data[n] & 0xC0) == 0x80)
            n--;
    }
    char *answer;
    if (last.len)
        answer = dagi_xasprintf("[offline builtin model] This platform is running without a model "
                                "provider, so this answer comes from the built-in offline model. "
                                "You said: \"%.*s%s\"",
                                (int)n, last.data, n < last.len ? "..." : "");
    else
        answer = dagi_xstrdup("[offline builtin model] This platform is running without a model "
                              "provider, so this answer comes from the built-in offline model.");
    dagi_buf_release(&last);
    dagi_buf_release(&all);
    return answer;
}

static void on_tick(evutil_socket_t fd, short what, void *ud)
{
    (void)fd, (void)what;
    struct dagi_provider_call *c = ud;
    dagi_provider_call_enter(c);
    const char *p = c->text + c->pos;
    if (!*p) {
        dagi_provider_call_finish(c, 0, NULL);
        goto out;
    }
    /* One token: the word and the spaces that follow it. */
    size_t len = 0;
    while (p[len] && !isspace((unsigned char)p[len]))
        len++;
    while (p[len] && isspace((unsigned char)p[len]))
        len++;
    c->pos += len;
    c->usage.completion_tokens++;
    dagi_provider_call_delta(c, p, len);
    if (!c->dead) {
        struct timeval zero = {0, 0};
        evtimer_add(c->tick, &zero);
    }
out:
    dagi_provider_call_leave(c);
}

static int builtin_chat(const struct dagi_provider_env *env, const struct dagi_model_config *model,
                        const struct dagi_chat_request *req, const struct dagi_chat_callbacks *cb,
                        struct dagi_provider_call **out, struct dagi_error *err)
{
    (void)model;
    if (!json_is_array(req->messages))
        return dagi_error_set(err, DAGI_EINVAL, "messages must be an array");
    if (!env->base)
        return dagi_error_set(err, DAGI_EINVAL, "no event loop for the builtin provider");
    struct dagi_provider_call *c = dagi_provider_call_new(env, cb);
    c->text = compose_answer(req, &c->usage.prompt_tokens);
    c->tick = evtimer_new(env->base, on_tick, c);
    struct timeval zero = {0, 0};
    evtimer_add(c->tick, &zero);
    *out = c;
    return DAGI_OK;
}

static void builtin_cancel(struct dagi_provider_call *call)
{
    dagi_provider_call_cancel(call);
}

const struct dagi_provider_ops dagi_provider_builtin = {
    .name = "builtin",
    .caps = DAGI_PROVIDER_CAN_STREAM,
    .chat = builtin_chat,
    .cancel = builtin_cancel,
    .load = NULL,
    .unload = NULL,
};
