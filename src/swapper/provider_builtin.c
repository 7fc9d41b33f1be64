/* The offline provider: always available, no network, no key.  It answers
 * every request with a deterministic text that says so, one word per loop
 * turn (a zero-delay timer), so that callers exercise the same streaming
 * path as with a real model.  Usage is counted in words.
 *
 * Its embeddings are for tests and demos only, not for search quality: a
 * hashed bag of words (the "hashing trick").  Each word - a run of ASCII
 * letters and digits, lower-cased, or of non-ASCII bytes - adds +1 or -1
 * (by a bit of its FNV-1a hash) at the position its hash picks, and the
 * vector is scaled to length 1.  The same text gives the same vector on
 * every machine, texts sharing words point the same way, and nothing is
 * downloaded.  Text without words is hashed whole as one word. */
#include "swapper_internal.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

#define QUOTE_MAX 200             /* bytes of the user's message repeated back */
#define EMBED_DIMENSIONS 256      /* without `dimensions` */
#define EMBED_MAX_DIMENSIONS 4096 /* 256 inputs of it are already a 20 MB answer */

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

/* --- embeddings --- */

static uint64_t fnv1a(const unsigned char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3u;
    }
    return h;
}

static bool word_byte(unsigned char b)
{
    return b >= 0x80 || isalnum(b);
}

static void add_word(double *v, size_t dims, const unsigned char *w, size_t n)
{
    uint64_t h = fnv1a(w, n);
    v[h % dims] += (h >> 63) ? -1.0 : 1.0;
}

/* One text's vector; returns its word count. */
static int64_t embed_text(const char *text, size_t len, double *v, size_t dims)
{
    const unsigned char *s = (const unsigned char *)text;
    unsigned char word[256]; /* longer words are hashed by their first 256 bytes */
    int64_t words = 0;
    memset(v, 0, dims * sizeof(*v));
    for (size_t i = 0; i < len;) {
        if (!word_byte(s[i])) {
            i++;
            continue;
        }
        size_t n = 0;
        for (; i < len && word_byte(s[i]); i++)
            if (n < sizeof(word))
                word[n++] = (unsigned char)tolower(s[i]);
        add_word(v, dims, word, n);
        words++;
    }
    double norm = 0;
    for (size_t i = 0; i < dims; i++)
        norm += v[i] * v[i];
    if (norm == 0) { /* no words, or words that cancelled out */
        add_word(v, dims, s, len);
        norm = 1;
    }
    norm = sqrt(norm);
    for (size_t i = 0; i < dims; i++)
        v[i] /= norm;
    return words;
}

static void on_embed_tick(evutil_socket_t fd, short what, void *ud)
{
    (void)fd, (void)what;
    struct dagi_provider_call *c = ud;
    dagi_provider_call_enter(c);
    dagi_provider_call_finish(c, 0, NULL);
    dagi_provider_call_leave(c);
}

static int builtin_embed(const struct dagi_provider_env *env, const struct dagi_model_config *model,
                         const struct dagi_embed_request *req,
                         const struct dagi_embed_callbacks *cb, struct dagi_provider_call **out,
                         struct dagi_error *err)
{
    (void)model;
    if (!json_array_size(req->input))
        return dagi_error_set(err, DAGI_EINVAL, "input must be a non-empty array of strings");
    if (req->dimensions > EMBED_MAX_DIMENSIONS)
        return dagi_error_set(err, DAGI_EINVAL,
                              "the builtin provider embeds in at most %d dimensions",
                              EMBED_MAX_DIMENSIONS);
    if (!env->base)
        return dagi_error_set(err, DAGI_EINVAL, "no event loop for the builtin provider");
    size_t dims = req->dimensions > 0 ? (size_t)req->dimensions : EMBED_DIMENSIONS;
    double *v = dagi_xcalloc(dims, sizeof(*v));
    json_t *list = json_array();
    int64_t words = 0;
    size_t i;
    json_t *text;
    json_array_foreach(req->input, i, text)
    {
        words += embed_text(json_string_value(text), json_string_length(text), v, dims);
        json_t *vec = json_array();
        for (size_t k = 0; k < dims; k++)
            json_array_append_new(vec, json_real(v[k]));
        json_array_append_new(list, vec);
    }
    free(v);
    struct dagi_provider_call *c = dagi_provider_call_new_embed(env, cb, req);
    c->embeddings = list;
    c->usage.prompt_tokens = words;
    /* Computed now, reported on the next loop turn: no callback may run
     * before embed() has returned the handle. */
    c->tick = evtimer_new(env->base, on_embed_tick, c);
    struct timeval zero = {0, 0};
    evtimer_add(c->tick, &zero);
    *out = c;
    return DAGI_OK;
}

const struct dagi_provider_ops dagi_provider_builtin = {
    .name = "builtin",
    .caps = DAGI_PROVIDER_CAN_STREAM | DAGI_PROVIDER_CAN_EMBED,
    .chat = builtin_chat,
    .cancel = builtin_cancel,
    .load = NULL,
    .unload = NULL,
    .embed = builtin_embed,
};
