/* Bot API URLs, request bodies and the response envelope; see tg_api.h. */
#include "telegram/tg_api.h"

#include <stdio.h>
#include <string.h>

#include "telegram/tg_split.h"

/* --- URLs --- */

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* "<bot id>:<secret>" as BotFather issues it.  Checked so a token read from
 * a config file cannot inject "/", "?" or "#" into a request URL. */
static bool token_ok(const char *t)
{
    size_t i = 0, n = t ? strlen(t) : 0;
    if (n == 0 || n > 256)
        return false;
    while (i < n && t[i] >= '0' && t[i] <= '9')
        i++;
    if (i == 0 || i >= n || t[i] != ':' || i + 1 == n)
        return false;
    for (i++; i < n; i++)
        if (!is_alnum(t[i]) && t[i] != '_' && t[i] != '-')
            return false;
    return true;
}

static bool method_ok(const char *m)
{
    if (!m || !*m || strlen(m) > 64)
        return false;
    for (; *m; m++)
        if (!((*m >= 'a' && *m <= 'z') || (*m >= 'A' && *m <= 'Z')))
            return false;
    return true;
}

/* Relative, no "."/".."/empty segments, URL-safe characters only: the path
 * comes from Telegram, but it is spliced into a URL carrying our token. */
static bool file_path_ok(const char *p)
{
    if (!p || !*p || *p == '/')
        return false;
    const char *seg = p;
    for (const char *c = p;; c++) {
        if (*c == '/' || *c == '\0') {
            size_t n = (size_t)(c - seg);
            if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
                return false;
            if (*c == '\0')
                return true;
            seg = c + 1;
        } else if (!is_alnum(*c) && !strchr("._~-", *c)) {
            return false;
        }
    }
}

/* Formats only when the whole URL fits, so out is untouched on failure. */
static int write_url(char *out, size_t cap, const char *base, const char *mid, const char *token,
                     const char *tail)
{
    if (!base)
        base = DAGI_TG_API_BASE;
    size_t blen = strlen(base);
    if (blen == 0)
        return DAGI_EINVAL;
    if (base[blen - 1] == '/')
        blen--;
    int n = snprintf(NULL, 0, "%.*s%s%s/%s", (int)blen, base, mid, token, tail);
    if (n < 0 || (size_t)n >= cap)
        return DAGI_ETOOBIG;
    snprintf(out, cap, "%.*s%s%s/%s", (int)blen, base, mid, token, tail);
    return 0;
}

int dagi_tg_method_url(char *out, size_t cap, const char *base, const char *token,
                       const char *method)
{
    if (!token_ok(token) || !method_ok(method))
        return DAGI_EINVAL;
    return write_url(out, cap, base, "/bot", token, method);
}

int dagi_tg_file_url(char *out, size_t cap, const char *base, const char *token,
                     const char *file_path)
{
    if (!token_ok(token) || !file_path_ok(file_path))
        return DAGI_EINVAL;
    return write_url(out, cap, base, "/file/bot", token, file_path);
}

struct clipped {
    char *out;
    size_t cap, len;
    bool overflow;
};

static void put(struct clipped *c, const char *s, size_t n)
{
    size_t room = c->cap - 1 - c->len; /* cap >= 1 here: one byte for the NUL */
    if (n > room)
        n = room, c->overflow = true;
    memcpy(c->out + c->len, s, n);
    c->len += n;
}

int dagi_tg_redact_url(const char *url, char *out, size_t cap)
{
    if (cap == 0)
        return DAGI_ETOOBIG;
    struct clipped c = {out, cap, 0, false};
    static const char marker[] = "/bot<redacted>";
    for (const char *p = url; *p;) {
        if (strncmp(p, "/bot", 4) == 0) {
            size_t seg = 4 + strcspn(p + 4, "/?#");
            /* A token always holds ':'; "/bottles" in a path does not. */
            if (memchr(p + 4, ':', seg - 4)) {
                put(&c, marker, sizeof(marker) - 1);
                p += seg;
                continue;
            }
        }
        put(&c, p, 1);
        p++;
    }
    out[c.len] = '\0';
    return c.overflow ? DAGI_ETOOBIG : 0;
}

/* --- request bodies --- */

static int finish(json_t *body, bool ok, json_t **out)
{
    if (!ok) {
        json_decref(body);
        return DAGI_EINVAL;
    }
    *out = body;
    return 0;
}

/* json_object_set_new() fails on a NULL value (invalid UTF-8 in a string),
 * which is how bad text surfaces here. */
static bool set(json_t *obj, const char *key, json_t *value)
{
    return value && json_object_set_new(obj, key, value) == 0;
}

static bool only_whitespace(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\r\n\v\f", s[i]))
            return false;
    return true;
}

int dagi_tg_body_send_message(const struct dagi_tg_send_message *m, json_t **out)
{
    /* Telegram trims text and refuses it when nothing is left; NUL bytes
     * have no business in a message either. */
    if (m->chat_id == 0 || !m->text || only_whitespace(m->text, m->text_len) ||
        memchr(m->text, '\0', m->text_len))
        return DAGI_EINVAL;
    if (dagi_tg_utf16_units(m->text, m->text_len) > DAGI_TG_MESSAGE_MAX_UNITS)
        return DAGI_ETOOBIG;
    json_t *body = json_object();
    bool ok = set(body, "chat_id", json_integer(m->chat_id)) &&
              set(body, "text", json_stringn(m->text, m->text_len));
    if (ok && m->message_thread_id)
        ok = set(body, "message_thread_id", json_integer(m->message_thread_id));
    if (ok && m->reply_to_message_id)
        ok = set(body, "reply_parameters",
                 json_pack("{s:I, s:b}", "message_id", (json_int_t)m->reply_to_message_id,
                           "allow_sending_without_reply", 1));
    return finish(body, ok, out);
}

int dagi_tg_body_send_chat_action(int64_t chat_id, int64_t message_thread_id, const char *action,
                                  json_t **out)
{
    if (!action)
        action = "typing";
    if (chat_id == 0 || !*action || strspn(action, "abcdefghijklmnopqrstuvwxyz_") != strlen(action))
        return DAGI_EINVAL;
    json_t *body = json_object();
    bool ok =
        set(body, "chat_id", json_integer(chat_id)) && set(body, "action", json_string(action));
    if (ok && message_thread_id)
        ok = set(body, "message_thread_id", json_integer(message_thread_id));
    return finish(body, ok, out);
}

int dagi_tg_body_get_file(const char *file_id, json_t **out)
{
    if (!file_id || !*file_id)
        return DAGI_EINVAL;
    json_t *body = json_object();
    return finish(body, set(body, "file_id", json_string(file_id)), out);
}

static bool secret_token_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 256)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_alnum(s[i]) && s[i] != '_' && s[i] != '-')
            return false;
    return true;
}

int dagi_tg_body_set_webhook(const struct dagi_tg_set_webhook *w, json_t **out)
{
    if (!w->url || (w->secret_token && !secret_token_ok(w->secret_token)))
        return DAGI_EINVAL;
    json_t *body = json_object();
    bool ok = set(body, "url", json_string(w->url)) &&
              set(body, "allowed_updates",
                  json_pack("[s, s, s]", "message", "edited_message", "channel_post"));
    if (ok && w->secret_token)
        ok = set(body, "secret_token", json_string(w->secret_token));
    if (ok && w->drop_pending_updates)
        ok = set(body, "drop_pending_updates", json_true());
    return finish(body, ok, out);
}

static int empty_body(json_t **out)
{
    json_t *body = json_object();
    if (!body)
        return DAGI_ENOMEM; /* jansson reports, rather than aborts on, a failed malloc */
    *out = body;
    return 0;
}

int dagi_tg_body_get_webhook_info(json_t **out)
{
    return empty_body(out);
}

int dagi_tg_body_get_me(json_t **out)
{
    return empty_body(out);
}

/* --- responses --- */

static void fill_api_error(json_t *root, int code, struct dagi_tg_api_error *e)
{
    *e = (struct dagi_tg_api_error){.error_code = code};
    const char *desc = json_string_value(json_object_get(root, "description"));
    snprintf(e->description, sizeof(e->description), "%s", desc ? desc : "");
    json_t *params = json_object_get(root, "parameters");
    json_t *retry = json_object_get(params, "retry_after");
    if (json_is_integer(retry)) {
        json_int_t r = json_integer_value(retry);
        e->retry_after_s = r < 0                               ? 0
                           : r > DAGI_TG_API_MAX_RETRY_AFTER_S ? DAGI_TG_API_MAX_RETRY_AFTER_S
                                                               : (int)r;
    }
    json_t *migrate = json_object_get(params, "migrate_to_chat_id");
    if (json_is_integer(migrate))
        e->migrate_to_chat_id = json_integer_value(migrate);
}

int dagi_tg_api_parse_response(const char *body, size_t len, json_t **result,
                               struct dagi_tg_api_error *api_err, struct dagi_error *err)
{
    if (len > DAGI_TG_API_MAX_RESPONSE_BYTES)
        return dagi_error_set(err, DAGI_ETOOBIG, "Bot API response: %zu bytes, more than %d", len,
                              DAGI_TG_API_MAX_RESPONSE_BYTES);
    json_error_t jerr;
    json_t *root = json_loadb(body ? body : "", body ? len : 0, 0, &jerr);
    if (!root)
        return dagi_error_set(err, DAGI_EPARSE, "Bot API response: %s at byte %d", jerr.text,
                              jerr.position);
    int rc;
    json_t *ok = json_object_get(root, "ok");
    if (!json_is_boolean(ok)) {
        rc = dagi_error_set(err, DAGI_EPARSE, "Bot API response: ok: missing or not a boolean");
        goto out;
    }
    if (json_is_true(ok)) {
        json_t *r = json_object_get(root, "result");
        if (!r) {
            rc = dagi_error_set(err, DAGI_EPARSE, "Bot API response: result: missing");
            goto out;
        }
        *result = json_incref(r);
        rc = 0;
        goto out;
    }
    /* The docs warn error_code's contents may change, but it is always
     * there; without it retry decisions would be guesses. */
    json_t *code = json_object_get(root, "error_code");
    if (!json_is_integer(code) || json_integer_value(code) < 0 || json_integer_value(code) > 999) {
        rc = dagi_error_set(err, DAGI_EPARSE, "Bot API response: error_code: missing or invalid");
        goto out;
    }
    struct dagi_tg_api_error e;
    fill_api_error(root, (int)json_integer_value(code), &e);
    if (api_err)
        *api_err = e;
    rc = dagi_error_set(err, DAGI_EUNAVAIL, "Bot API error %d: %s", e.error_code, e.description);
out:
    json_decref(root);
    return rc;
}

bool dagi_tg_error_retryable(const struct dagi_tg_api_error *e)
{
    return e->error_code == 429 || (e->error_code >= 500 && e->error_code <= 599);
}

int dagi_tg_parse_me(const json_t *result, struct dagi_tg_me *out, struct dagi_error *err)
{
    json_t *id = json_object_get(result, "id");
    json_t *name = json_object_get(result, "username");
    if (!json_is_integer(id))
        return dagi_error_set(err, DAGI_EPARSE, "getMe: id: missing or not an integer");
    if (!json_is_string(name) || json_string_length(name) == 0 ||
        json_string_length(name) >= sizeof(out->username))
        return dagi_error_set(err, DAGI_EPARSE, "getMe: username: missing, empty or too long");
    out->id = json_integer_value(id);
    snprintf(out->username, sizeof(out->username), "%s", json_string_value(name));
    return 0;
}

int dagi_tg_parse_file(const json_t *result, struct dagi_tg_file *out, struct dagi_error *err)
{
    if (!json_is_object(result))
        return dagi_error_set(err, DAGI_EPARSE, "getFile: result: expected an object");
    json_t *path = json_object_get(result, "file_path");
    json_t *size = json_object_get(result, "file_size");
    if (!path)
        return dagi_error_set(err, DAGI_ENOENT, "getFile: no file_path: nothing to download");
    if (!json_is_string(path))
        return dagi_error_set(err, DAGI_EPARSE, "getFile: file_path: expected a string");
    if (size && !json_is_integer(size))
        return dagi_error_set(err, DAGI_EPARSE, "getFile: file_size: expected an integer");
    if (json_string_length(path) >= sizeof(out->file_path))
        return dagi_error_set(err, DAGI_ETOOBIG, "getFile: file_path: longer than %zu bytes",
                              sizeof(out->file_path) - 1);
    snprintf(out->file_path, sizeof(out->file_path), "%s", json_string_value(path));
    out->file_size = size ? json_integer_value(size) : 0;
    return 0;
}
