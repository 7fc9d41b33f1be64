/* Telegram Update parsing.  See tg_update.h for the contract; this file
 * holds the protocol quirks: UTF-16 entity offsets, PhotoSize selection,
 * "/cmd@bot" commands and the forum-topic pseudo reply. */
#include "telegram/tg_update.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"

struct parse {
    struct dagi_arena *arena;
    struct dagi_error *err;
};

/* Field paths in errors are short and fixed ("message.reply_to_message.from"),
 * so a small buffer always holds them. */
#define PATH_MAX_LEN 96

/* Formats a field path; a (theoretical) truncation only shortens an error
 * message. */
__attribute__((format(printf, 2, 3))) static void path_fmt(char *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, PATH_MAX_LEN, fmt, ap);
    va_end(ap);
}

static int out_of_arena(struct parse *p)
{
    return dagi_error_set(p->err, DAGI_ETOOBIG, "telegram update: arena cap reached");
}

/* Looks up an optional member; JSON null counts as absent, which is how
 * some Bot API proxies write omitted optionals. */
static json_t *member(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

static int get_int(struct parse *p, json_t *obj, const char *path, const char *key, bool required,
                   int64_t *out)
{
    json_t *v = member(obj, key);
    *out = 0;
    if (!v) {
        if (required)
            return dagi_error_set(p->err, DAGI_EPARSE, "%s.%s: missing", path, key);
        return 0;
    }
    if (!json_is_integer(v))
        return dagi_error_set(p->err, DAGI_EPARSE, "%s.%s: expected an integer", path, key);
    *out = json_integer_value(v);
    return 0;
}

/* Copies a string member into the arena; *out stays NULL when absent. */
static int get_str(struct parse *p, json_t *obj, const char *path, const char *key, bool required,
                   const char **out, size_t *len_out)
{
    json_t *v = member(obj, key);
    *out = NULL;
    if (len_out)
        *len_out = 0;
    if (!v) {
        if (required)
            return dagi_error_set(p->err, DAGI_EPARSE, "%s.%s: missing", path, key);
        return 0;
    }
    if (!json_is_string(v))
        return dagi_error_set(p->err, DAGI_EPARSE, "%s.%s: expected a string", path, key);
    size_t n = json_string_length(v);
    char *s = dagi_arena_strndup(p->arena, json_string_value(v), n);
    if (!s)
        return out_of_arena(p);
    *out = s;
    if (len_out)
        *len_out = n;
    return 0;
}

static int parse_user(struct parse *p, json_t *v, const char *path, const struct dagi_tg_user **out)
{
    if (!json_is_object(v))
        return dagi_error_set(p->err, DAGI_EPARSE, "%s: expected an object", path);
    struct dagi_tg_user *u = dagi_arena_zalloc(p->arena, sizeof(*u));
    if (!u)
        return out_of_arena(p);
    int rc;
    if ((rc = get_int(p, v, path, "id", true, &u->id)))
        return rc;
    json_t *is_bot = member(v, "is_bot");
    if (!json_is_boolean(is_bot))
        return dagi_error_set(p->err, DAGI_EPARSE, "%s.is_bot: expected true or false", path);
    u->is_bot = json_is_true(is_bot);
    if ((rc = get_str(p, v, path, "first_name", true, &u->first_name, NULL)) ||
        (rc = get_str(p, v, path, "username", false, &u->username, NULL)) ||
        (rc = get_str(p, v, path, "language_code", false, &u->language_code, NULL)))
        return rc;
    *out = u;
    return 0;
}

static enum dagi_tg_chat_type chat_type(const char *s)
{
    static const struct {
        const char *name;
        enum dagi_tg_chat_type type;
    } types[] = {
        {"private", DAGI_TG_CHAT_PRIVATE},
        {"group", DAGI_TG_CHAT_GROUP},
        {"supergroup", DAGI_TG_CHAT_SUPERGROUP},
        {"channel", DAGI_TG_CHAT_CHANNEL},
    };
    for (size_t i = 0; i < DAGI_ARRAY_LEN(types); i++)
        if (strcmp(s, types[i].name) == 0)
            return types[i].type;
    return DAGI_TG_CHAT_UNKNOWN;
}

static int parse_chat(struct parse *p, json_t *v, const char *path, struct dagi_tg_chat *c)
{
    if (!json_is_object(v))
        return dagi_error_set(p->err, DAGI_EPARSE, "%s: expected an object", path);
    const char *type;
    int rc;
    if ((rc = get_int(p, v, path, "id", true, &c->id)) ||
        (rc = get_str(p, v, path, "type", true, &type, NULL)) ||
        (rc = get_str(p, v, path, "title", false, &c->title, NULL)) ||
        (rc = get_str(p, v, path, "username", false, &c->username, NULL)))
        return rc;
    c->type = chat_type(type);
    return 0;
}

/* Picks the largest PhotoSize by area.  Telegram lists sizes smallest first,
 * so on a tie the later one wins (usually the better-compressed original). */
static int parse_photo(struct parse *p, json_t *arr, const char *path,
                       const struct dagi_tg_photo **out)
{
    *out = NULL;
    if (!json_is_array(arr))
        return dagi_error_set(p->err, DAGI_EPARSE, "%s: expected an array", path);
    size_t n = json_array_size(arr);
    if (n > DAGI_TG_UPDATE_MAX_PHOTO_SIZES)
        return dagi_error_set(p->err, DAGI_ETOOBIG, "%s: %zu sizes, more than %d", path, n,
                              DAGI_TG_UPDATE_MAX_PHOTO_SIZES);
    json_t *best = NULL;
    uint64_t best_area = 0;
    struct dagi_tg_photo tmp = {0};
    for (size_t i = 0; i < n; i++) {
        char at[PATH_MAX_LEN];
        path_fmt(at, "%s[%zu]", path, i);
        json_t *ps = json_array_get(arr, i);
        if (!json_is_object(ps))
            return dagi_error_set(p->err, DAGI_EPARSE, "%s: expected an object", at);
        json_t *id = member(ps, "file_id"), *uid = member(ps, "file_unique_id");
        if (!json_is_string(id) || !json_is_string(uid))
            return dagi_error_set(p->err, DAGI_EPARSE,
                                  "%s: file_id and file_unique_id must be strings", at);
        int64_t w, h;
        int rc;
        if ((rc = get_int(p, ps, at, "width", true, &w)) ||
            (rc = get_int(p, ps, at, "height", true, &h)))
            return rc;
        /* Bounded so the area below cannot overflow. */
        if (w < 0 || h < 0 || w > INT32_MAX || h > INT32_MAX)
            return dagi_error_set(p->err, DAGI_EPARSE, "%s: width or height out of range", at);
        uint64_t area = (uint64_t)w * (uint64_t)h;
        if (!best || area >= best_area) {
            best = ps, best_area = area;
            tmp.width = w, tmp.height = h;
        }
    }
    if (!best)
        return 0; /* "photo": [] carries nothing to fetch */
    struct dagi_tg_photo *ph = dagi_arena_alloc(p->arena, sizeof(*ph));
    if (!ph)
        return out_of_arena(p);
    *ph = tmp;
    char at[PATH_MAX_LEN];
    path_fmt(at, "%s[largest]", path);
    int rc;
    if ((rc = get_str(p, best, at, "file_id", true, &ph->file_id, NULL)) ||
        (rc = get_str(p, best, at, "file_unique_id", true, &ph->file_unique_id, NULL)) ||
        (rc = get_int(p, best, at, "file_size", false, &ph->file_size)))
        return rc;
    *out = ph;
    return 0;
}

/* --- UTF-16 offsets to UTF-8 byte offsets ---
 *
 * Each entity gives two UTF-16 positions.  They are resolved together in one
 * walk over the text (sorted), so k entities over n bytes cost n + k log k
 * rather than n * k, which matters for a fuzzer-sized hostile input. */

struct u16_query {
    int64_t unit;
    size_t slot; /* index into the resolved array */
};

static int cmp_query(const void *a, const void *b)
{
    const struct u16_query *x = a, *y = b;
    return (x->unit > y->unit) - (x->unit < y->unit);
}

/* Length in bytes and UTF-16 units of the code point at s[0].  Bytes that do
 * not start a sequence count as one unit each, so a walk always progresses
 * (jansson has already validated the text; this is belt and braces). */
static void step_code_point(const unsigned char *s, size_t left, size_t *bytes, int *units)
{
    unsigned char c = s[0];
    size_t n = 1;
    *units = 1;
    if ((c & 0xE0) == 0xC0)
        n = 2;
    else if ((c & 0xF0) == 0xE0)
        n = 3;
    else if ((c & 0xF8) == 0xF0)
        n = 4, *units = 2; /* outside the BMP: a surrogate pair in UTF-16 */
    *bytes = n <= left ? n : left;
}

/* Resolves every query to a byte offset, or SIZE_MAX when the position falls
 * inside a surrogate pair or beyond the text. */
static void resolve_units(const char *text, size_t len, struct u16_query *q, size_t nq,
                          size_t *resolved)
{
    qsort(q, nq, sizeof(*q), cmp_query);
    size_t b = 0;
    int64_t u = 0;
    for (size_t i = 0; i < nq; i++) {
        while (u < q[i].unit && b < len) {
            size_t nb;
            int nu;
            step_code_point((const unsigned char *)text + b, len - b, &nb, &nu);
            b += nb, u += nu;
        }
        resolved[q[i].slot] = u == q[i].unit ? b : SIZE_MAX;
    }
}

static enum dagi_tg_entity_kind entity_kind(const char *type)
{
    if (strcmp(type, "mention") == 0)
        return DAGI_TG_ENTITY_MENTION;
    if (strcmp(type, "text_mention") == 0)
        return DAGI_TG_ENTITY_TEXT_MENTION;
    if (strcmp(type, "bot_command") == 0)
        return DAGI_TG_ENTITY_BOT_COMMAND;
    return DAGI_TG_ENTITY_OTHER;
}

/* Only the shape is checked here; an entity failing it is skipped. */
static bool entity_shape_ok(json_t *e, int64_t *off, int64_t *len)
{
    json_t *type = member(e, "type"), *o = member(e, "offset"), *l = member(e, "length");
    if (!json_is_string(type) || !json_is_integer(o) || !json_is_integer(l))
        return false;
    *off = json_integer_value(o), *len = json_integer_value(l);
    /* Zero-length entities point at nothing; the INT32 bound keeps off+len
     * from overflowing and is far beyond any real text. */
    return *off >= 0 && *len > 0 && *off <= INT32_MAX && *len <= INT32_MAX;
}

static int parse_entities(struct parse *p, json_t *arr, const char *path, struct dagi_tg_update *u)
{
    if (!json_is_array(arr) || !u->text)
        return 0; /* decoration: a malformed list is ignored like a malformed entity */
    size_t n = json_array_size(arr);
    if (n == 0)
        return 0;
    if (n > DAGI_TG_UPDATE_MAX_ENTITIES)
        return dagi_error_set(p->err, DAGI_ETOOBIG, "%s: %zu entities, more than %d", path, n,
                              DAGI_TG_UPDATE_MAX_ENTITIES);
    struct u16_query *q = dagi_xcalloc(2 * n, sizeof(*q));
    size_t *at = dagi_xcalloc(2 * n, sizeof(*at));
    size_t nq = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t off, len;
        if (!entity_shape_ok(json_array_get(arr, i), &off, &len))
            continue;
        q[nq++] = (struct u16_query){off, 2 * i};
        q[nq++] = (struct u16_query){off + len, 2 * i + 1};
    }
    for (size_t i = 0; i < 2 * n; i++)
        at[i] = SIZE_MAX;
    resolve_units(u->text, u->text_len, q, nq, at);

    int rc = 0;
    struct dagi_tg_entity *ents = dagi_arena_alloc(p->arena, n * sizeof(*ents));
    if (!ents) {
        rc = out_of_arena(p);
        goto out;
    }
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (at[2 * i] == SIZE_MAX || at[2 * i + 1] == SIZE_MAX)
            continue; /* bad shape, past the end, or inside a surrogate pair */
        json_t *e = json_array_get(arr, i);
        const char *type = json_string_value(member(e, "type"));
        struct dagi_tg_entity *d = &ents[kept];
        *d = (struct dagi_tg_entity){
            .kind = entity_kind(type), .offset = at[2 * i], .length = at[2 * i + 1] - at[2 * i]};
        if (d->kind == DAGI_TG_ENTITY_TEXT_MENTION) {
            json_t *id = json_object_get(member(e, "user"), "id");
            if (!json_is_integer(id))
                continue;
            d->user_id = json_integer_value(id);
        }
        if (!(d->type = dagi_arena_strdup(p->arena, type))) {
            rc = out_of_arena(p);
            goto out;
        }
        kept++;
    }
    u->entities = ents;
    u->entity_count = kept;
out:
    free(q);
    free(at);
    return rc;
}

/* "/help@helion_bot rest" at offset 0 -> command, target and arguments. */
static int find_command(struct parse *p, struct dagi_tg_update *u)
{
    for (size_t i = 0; i < u->entity_count; i++) {
        const struct dagi_tg_entity *e = &u->entities[i];
        if (e->kind != DAGI_TG_ENTITY_BOT_COMMAND || e->offset != 0 || u->text[0] != '/')
            continue;
        const char *name = u->text + 1, *end = u->text + e->length;
        const char *atsign = memchr(name, '@', (size_t)(end - name));
        const char *name_end = atsign ? atsign : end;
        if (name_end == name)
            return 0; /* "/" or "/@bot": no command name */
        if (!(u->command = dagi_arena_strndup(p->arena, name, (size_t)(name_end - name))))
            return out_of_arena(p);
        if (atsign && atsign + 1 < end &&
            !(u->command_target =
                  dagi_arena_strndup(p->arena, atsign + 1, (size_t)(end - atsign - 1))))
            return out_of_arena(p);
        const char *args = end;
        while (*args == ' ' || *args == '\n' || *args == '\t' || *args == '\r')
            args++;
        u->command_args = args; /* inside u->text, so NUL-terminated */
        return 0;
    }
    return 0;
}

static int parse_reply(struct parse *p, json_t *msg, const char *root, struct dagi_tg_update *u)
{
    json_t *r = member(msg, "reply_to_message");
    if (!r)
        return 0;
    char path[PATH_MAX_LEN];
    path_fmt(path, "%s.reply_to_message", root);
    if (!json_is_object(r))
        return dagi_error_set(p->err, DAGI_EPARSE, "%s: expected an object", path);
    /* In a forum topic every message "replies" to the topic's creation
     * service message; treating that as a reply would make whoever opened
     * the topic the addressee of everything in it. */
    if (json_is_true(member(msg, "is_topic_message")) && member(r, "forum_topic_created"))
        return 0;
    struct dagi_tg_reply *rep = dagi_arena_zalloc(p->arena, sizeof(*rep));
    if (!rep)
        return out_of_arena(p);
    int rc = get_int(p, r, path, "message_id", true, &rep->message_id);
    if (rc)
        return rc;
    json_t *from = member(r, "from");
    if (from) {
        char fpath[PATH_MAX_LEN];
        path_fmt(fpath, "%s.from", path);
        if ((rc = parse_user(p, from, fpath, &rep->from)))
            return rc;
    }
    u->reply_to = rep;
    return 0;
}

static int parse_message(struct parse *p, json_t *msg, const char *root, struct dagi_tg_update *u)
{
    if (!json_is_object(msg))
        return dagi_error_set(p->err, DAGI_EPARSE, "%s: expected an object", root);
    char path[PATH_MAX_LEN];
    int rc;
    if ((rc = get_int(p, msg, root, "message_id", true, &u->message_id)) ||
        (rc = get_int(p, msg, root, "date", true, &u->date)) ||
        (rc = get_int(p, msg, root, "edit_date", false, &u->edit_date)) ||
        (rc = get_int(p, msg, root, "message_thread_id", false, &u->message_thread_id)))
        return rc;
    path_fmt(path, "%s.chat", root);
    json_t *chat = member(msg, "chat");
    if (!chat)
        return dagi_error_set(p->err, DAGI_EPARSE, "%s: missing", path);
    if ((rc = parse_chat(p, chat, path, &u->chat)))
        return rc;
    json_t *from = member(msg, "from");
    path_fmt(path, "%s.from", root);
    if (from && (rc = parse_user(p, from, path, &u->from)))
        return rc;
    json_t *sender = member(msg, "sender_chat");
    if (sender) {
        struct dagi_tg_chat *sc = dagi_arena_zalloc(p->arena, sizeof(*sc));
        if (!sc)
            return out_of_arena(p);
        path_fmt(path, "%s.sender_chat", root);
        if ((rc = parse_chat(p, sender, path, sc)))
            return rc;
        u->sender_chat = sc;
    }

    const char *ents_key = "entities";
    if ((rc = get_str(p, msg, root, "text", false, &u->text, &u->text_len)))
        return rc;
    if (!u->text) {
        if ((rc = get_str(p, msg, root, "caption", false, &u->text, &u->text_len)))
            return rc;
        u->text_is_caption = u->text != NULL;
        ents_key = "caption_entities";
    }
    path_fmt(path, "%s.%s", root, ents_key);
    if ((rc = parse_entities(p, member(msg, ents_key), path, u)) || (rc = find_command(p, u)))
        return rc;

    json_t *photo = member(msg, "photo");
    path_fmt(path, "%s.photo", root);
    if (photo && (rc = parse_photo(p, photo, path, &u->photo)))
        return rc;
    return parse_reply(p, msg, root, u);
}

int dagi_tg_update_parse(const char *data, size_t len, struct dagi_arena *arena,
                         const struct dagi_tg_update **out, struct dagi_error *err)
{
    static const struct {
        const char *key;
        enum dagi_tg_update_kind kind;
    } kinds[] = {
        {"message", DAGI_TG_UPDATE_MESSAGE},
        {"edited_message", DAGI_TG_UPDATE_EDITED_MESSAGE},
        {"channel_post", DAGI_TG_UPDATE_CHANNEL_POST},
        {"edited_channel_post", DAGI_TG_UPDATE_EDITED_CHANNEL_POST},
    };
    if (len > DAGI_TG_UPDATE_MAX_BYTES)
        return dagi_error_set(err, DAGI_ETOOBIG, "telegram update: %zu bytes, more than %d", len,
                              DAGI_TG_UPDATE_MAX_BYTES);
    json_error_t jerr;
    /* No JSON_ALLOW_NUL: every string must be a C string.  Duplicate keys
     * are refused so two readers of the same body cannot disagree. */
    json_t *root = json_loadb(data ? data : "", data ? len : 0, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return dagi_error_set(err, DAGI_EPARSE, "telegram update: %s at byte %d", jerr.text,
                              jerr.position);
    struct parse p = {arena, err};
    int rc;
    struct dagi_tg_update *u = dagi_arena_zalloc(arena, sizeof(*u));
    if (!u) {
        rc = out_of_arena(&p);
        goto out;
    }
    if (!json_is_object(root)) {
        rc = dagi_error_set(err, DAGI_EPARSE, "update: expected an object");
        goto out;
    }
    if ((rc = get_int(&p, root, "update", "update_id", true, &u->update_id)))
        goto out;
    u->kind = DAGI_TG_UPDATE_OTHER;
    for (size_t i = 0; i < DAGI_ARRAY_LEN(kinds); i++) {
        json_t *msg = member(root, kinds[i].key);
        if (!msg)
            continue;
        u->kind = kinds[i].kind;
        if ((rc = parse_message(&p, msg, kinds[i].key, u)))
            goto out;
        break; /* the Bot API sends at most one */
    }
    *out = u;
out:
    json_decref(root);
    return rc;
}

/* --- addressing --- */

static const char *bare_username(const char *name)
{
    if (name && name[0] == '@')
        name++;
    return name && *name ? name : NULL;
}

static bool is_username_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* s[0..n) equals name, ignoring ASCII case (usernames are ASCII). */
static bool span_equals_name(const char *s, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(s, name, n) == 0;
}

bool dagi_tg_addressed_to(const struct dagi_tg_update *u, const char *bot_username, int64_t bot_id)
{
    const char *name = bare_username(bot_username);
    for (size_t i = 0; i < u->entity_count; i++) {
        const struct dagi_tg_entity *e = &u->entities[i];
        const char *s = u->text + e->offset;
        switch (e->kind) {
        case DAGI_TG_ENTITY_MENTION:
            if (name && e->length > 1 && s[0] == '@' &&
                span_equals_name(s + 1, e->length - 1, name))
                return true;
            break;
        case DAGI_TG_ENTITY_TEXT_MENTION:
            if (bot_id > 0 && e->user_id == bot_id)
                return true;
            break;
        case DAGI_TG_ENTITY_BOT_COMMAND: {
            const char *at = memchr(s, '@', e->length);
            if (name && at && span_equals_name(at + 1, e->length - (size_t)(at + 1 - s), name))
                return true;
            break;
        }
        case DAGI_TG_ENTITY_OTHER:
            break;
        }
    }
    const struct dagi_tg_user *to = u->reply_to ? u->reply_to->from : NULL;
    if (to && bot_id > 0 && to->id == bot_id)
        return true;
    return to && name && to->username && strcasecmp(to->username, name) == 0;
}

const char *dagi_tg_update_text_without_mention(const struct dagi_tg_update *u,
                                                const char *bot_username, size_t *len_out)
{
    *len_out = 0;
    if (!u->text)
        return NULL;
    const char *name = bare_username(bot_username);
    const char *s = u->text, *end = u->text + u->text_len;
    while (s < end && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
        s++;
    size_t n = name ? strlen(name) : 0;
    if (!name || (size_t)(end - s) < 1 + n || s[0] != '@' || strncasecmp(s + 1, name, n) != 0 ||
        (s + 1 + n < end && is_username_char(s[1 + n]))) {
        *len_out = u->text_len;
        return u->text;
    }
    s += 1 + n;
    while (s < end &&
           (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == ',' || *s == ':'))
        s++;
    *len_out = (size_t)(end - s);
    return s;
}
