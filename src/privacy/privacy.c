/* The gate over a messages array (privacy.h).
 *
 * Only the latest DAGI_SUMMARY_INPUT_MAX bytes of text are read: the
 * messages are walked newest first, and where the cap falls inside a text
 * the cut moves forward to the next white space, so that no tail of a
 * word - a secret cut in two - reaches the redactor as a harmless-looking
 * stub.  Older messages are dropped and counted. */
#include "privacy/privacy.h"

#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/mem.h"
#include "privacy/summary.h"

static const char *const mode_names[] = {"public", "team", "confidential"};

int dagi_privacy_mode_parse(const char *name, enum dagi_privacy_mode *out)
{
    for (size_t k = 0; name && k < DAGI_ARRAY_LEN(mode_names); k++)
        if (strcmp(name, mode_names[k]) == 0) {
            *out = (enum dagi_privacy_mode)k;
            return DAGI_OK;
        }
    return DAGI_EINVAL;
}

const char *dagi_privacy_mode_name(enum dagi_privacy_mode mode)
{
    return (unsigned)mode < DAGI_ARRAY_LEN(mode_names) ? mode_names[mode] : "confidential";
}

bool dagi_privacy_content_free(enum dagi_privacy_mode mode)
{
    /* anything but the two open modes is treated as confidential */
    return mode != DAGI_PRIVACY_PUBLIC && mode != DAGI_PRIVACY_TEAM;
}

/* --- reading messages --- */

static bool system_role(const json_t *msg)
{
    const char *role = json_string_value(json_object_get(msg, "role"));
    return role && (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0);
}

static bool user_role(const json_t *msg)
{
    const char *role = json_string_value(json_object_get(msg, "role"));
    return role && strcmp(role, "user") == 0;
}

static bool text_part(const char *type)
{
    return !type || strcmp(type, "text") == 0 || strcmp(type, "input_text") == 0 ||
           strcmp(type, "output_text") == 0;
}

static bool image_part(const char *type)
{
    return type && (strcmp(type, "image_url") == 0 || strcmp(type, "input_image") == 0 ||
                    strcmp(type, "image") == 0);
}

/* The summary's parts, growing (bounded by the texts of the document). */
struct texts {
    struct dagi_summary_part *v;
    size_t n, cap;
};

static void texts_push(struct texts *t, const char *s, size_t len, bool priority)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->v = dagi_xrealloc(t->v, t->cap * sizeof(*t->v));
    }
    t->v[t->n++] = (struct dagi_summary_part){s, len, priority};
}

/* The texts of one message - the content string, or the text parts of a
 * content array, last first (the walk goes backwards) - counting what is
 * not text (and text parts past max) as dropped. */
static size_t message_texts(const json_t *msg, const json_t **texts, size_t max,
                            struct dagi_privacy_report *r)
{
    size_t n = 0;
    const json_t *content = json_object_get(msg, "content");
    if (json_is_string(content)) {
        texts[n++] = content;
    } else if (json_is_array(content)) {
        size_t count = json_array_size(content);
        for (size_t k = count; k-- > 0;) {
            const json_t *part = json_array_get(content, k);
            const char *type = json_string_value(json_object_get(part, "type"));
            const json_t *text = json_object_get(part, "text");
            if (json_is_object(part) && text_part(type) && json_is_string(text) && n < max) {
                texts[n++] = text;
            } else if (json_is_object(part) && image_part(type)) {
                r->images_dropped++;
            } else {
                r->parts_dropped++;
            }
        }
    }
    const json_t *calls = json_object_get(msg, "tool_calls");
    r->parts_dropped += json_is_array(calls) ? json_array_size(calls) : 0;
    r->parts_dropped += json_is_object(json_object_get(msg, "function_call"));
    return n;
}

static size_t message_bytes(const json_t *msg)
{
    const json_t *content = json_object_get(msg, "content");
    if (json_is_string(content))
        return json_string_length(content);
    size_t n = 0, k;
    const json_t *part;
    json_array_foreach(content, k, part) n += json_string_length(json_object_get(part, "text"));
    return n;
}

/* The tail of s[0..len) that fits `room` bytes, starting after a space. */
static size_t tail_start(const char *s, size_t len, size_t room)
{
    size_t at = len - room;
    while (at < len && s[at] != ' ' && s[at] != '\n' && s[at] != '\t')
        at++;
    return at;
}

/* --- the gate --- */

static int sanitize(json_t *messages, unsigned max_tokens, json_t **out,
                    struct dagi_privacy_report *r, struct dagi_error *err)
{
    size_t count = json_array_size(messages), lead = 0, latest_user = count;
    while (lead < count && system_role(json_array_get(messages, lead)))
        lead++;
    for (size_t k = count; k-- > lead;)
        if (user_role(json_array_get(messages, k))) {
            latest_user = k;
            break;
        }
    struct texts t = {0};
    size_t room = DAGI_SUMMARY_INPUT_MAX;
    for (size_t k = count; k-- > lead;) {
        const json_t *msg = json_array_get(messages, k);
        const json_t *texts[256];
        size_t n = message_texts(msg, texts, DAGI_ARRAY_LEN(texts), r);
        if (!room) {
            r->messages_dropped++;
            continue;
        }
        for (size_t i = 0; i < n && room; i++) {
            const char *s = json_string_value(texts[i]);
            size_t len = json_string_length(texts[i]);
            size_t from = len <= room ? 0 : tail_start(s, len, room);
            texts_push(&t, s + from, len - from, k == latest_user);
            room = len <= room ? room - len : 0;
        }
    }
    /* the walk went newest first; the summary reads in order */
    for (size_t i = 0, j = t.n ? t.n - 1 : 0; i < j; i++, j--) {
        struct dagi_summary_part x = t.v[i];
        t.v[i] = t.v[j];
        t.v[j] = x;
    }
    struct dagi_buf text;
    unsigned budget = max_tokens ? max_tokens : DAGI_SUMMARY_DEFAULT_TOKENS;
    dagi_buf_init(&text, sizeof(DAGI_PRIVACY_SUMMARY_HEADER) + DAGI_SUMMARY_OUTPUT_MAX(budget));
    struct dagi_summary_stats st = {0};
    int rc = dagi_buf_append_str(&text, DAGI_PRIVACY_SUMMARY_HEADER);
    if (!rc)
        rc = dagi_summary_build(t.v, t.n, budget, &text, &st);
    free(t.v);
    if (rc) {
        if (text.data)
            sodium_memzero(text.data, text.alloc);
        dagi_buf_release(&text);
        return dagi_error_set(err, rc, "privacy gate: the summary failed (%s)", dagi_strerror(rc));
    }
    /* The redactor and the cut keep UTF-8 whole, so this cannot fail on
     * valid input; if it does, nothing is sent rather than the original. */
    json_t *content = json_stringn(text.data, text.len);
    sodium_memzero(text.data, text.alloc);
    dagi_buf_release(&text);
    if (!content)
        return dagi_error_set(err, DAGI_EINTERNAL, "privacy gate: the summary is not UTF-8");
    json_t *result = json_array();
    for (size_t k = 0; k < lead; k++)
        json_array_append_new(result, json_copy(json_array_get(messages, k)));
    json_array_append_new(result, json_pack("{s:s,s:o}", "role", "user", "content", content));
    r->sanitized = true;
    r->messages_out = lead + 1;
    r->bytes_out = json_string_length(content);
    r->sentences_in = st.sentences;
    r->sentences_kept = st.kept;
    r->tokens_out = st.tokens;
    r->redacted = st.redacted;
    *out = result;
    return DAGI_OK;
}

int dagi_privacy_gate_messages(json_t *messages, enum dagi_privacy_mode mode, bool consent,
                               unsigned max_tokens, json_t **out,
                               struct dagi_privacy_report *report, struct dagi_error *err)
{
    struct dagi_privacy_report r = {0};
    if (!json_is_array(messages))
        return dagi_error_set(err, DAGI_EINVAL, "privacy gate: messages must be an array");
    if (max_tokens > DAGI_SUMMARY_MAX_TOKENS)
        return dagi_error_set(err, DAGI_EINVAL, "privacy gate: max_tokens must be at most %d",
                              DAGI_SUMMARY_MAX_TOKENS);
    size_t k;
    json_t *msg;
    json_array_foreach(messages, k, msg)
    {
        if (!json_is_object(msg) || !json_is_string(json_object_get(msg, "role")))
            return dagi_error_set(err, DAGI_EINVAL,
                                  "privacy gate: messages[%zu] must be an object with a role", k);
        r.bytes_in += message_bytes(msg);
    }
    r.messages_in = json_array_size(messages);
    if (!dagi_privacy_content_free(mode) || consent) {
        r.messages_out = r.messages_in;
        r.bytes_out = r.bytes_in;
        *out = json_incref(messages);
    } else {
        int rc = sanitize(messages, max_tokens, out, &r, err);
        if (rc)
            return rc;
    }
    if (report)
        *report = r;
    return DAGI_OK;
}
