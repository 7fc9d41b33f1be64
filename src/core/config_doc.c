#include "config_doc.h"

#include "err.h"
#include "mem.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* The doc arena only has to hold DAGI_CFG_DOC_MAX_NODES nodes and the
 * scalars of a text of at most DAGI_CFG_DOC_MAX_BYTES. */
#define DOC_ARENA_CAP ((size_t)64 << 20)

struct builder {
    const char *name; /* NULL for JSON */
    struct dagi_cfg_doc *doc;
    struct dagi_cfg_errors *errs;
    size_t nodes;
    bool failed;
    /* YAML only: the open containers, root first, and a key read but not
     * yet given its value (one per open mapping at most). */
    struct dagi_cfg_node *stack[DAGI_CFG_DOC_MAX_DEPTH + 1];
    const char *pending_key[DAGI_CFG_DOC_MAX_DEPTH + 1];
    unsigned pending_line[DAGI_CFG_DOC_MAX_DEPTH + 1];
    size_t depth;
};

static void fail(struct builder *b, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct builder *b, unsigned line, const char *fmt, ...)
{
    struct dagi_buf msg;
    dagi_buf_init(&msg, 4096);
    va_list ap;
    va_start(ap, fmt);
    dagi_buf_vappendf(&msg, fmt, ap);
    va_end(ap);
    if (b->name)
        dagi_cfg_errors_add(b->errs, "%s:%u: %s", b->name, line, dagi_buf_str(&msg));
    else
        dagi_cfg_errors_add(b->errs, "%s", dagi_buf_str(&msg));
    dagi_buf_release(&msg);
    b->failed = true;
}

static struct dagi_cfg_node *node_new(struct builder *b, enum dagi_cfg_node_kind kind,
                                      unsigned line)
{
    if (b->nodes >= DAGI_CFG_DOC_MAX_NODES) {
        fail(b, line, "more than %d values in the document", DAGI_CFG_DOC_MAX_NODES);
        return NULL;
    }
    struct dagi_cfg_node *n = dagi_arena_zalloc(b->doc->arena, sizeof(*n));
    if (!n) {
        fail(b, line, "document too large");
        return NULL;
    }
    b->nodes++;
    n->kind = kind;
    n->line = line;
    return n;
}

static bool scalar_set(struct builder *b, struct dagi_cfg_node *n, const char *text, size_t len)
{
    if (memchr(text, '\0', len)) {
        fail(b, n->line, "NUL byte inside a value");
        return false;
    }
    n->text = dagi_arena_strndup(b->doc->arena, text, len);
    if (!n->text) {
        fail(b, n->line, "document too large");
        return false;
    }
    n->len = len;
    return true;
}

static void child_add(struct dagi_cfg_node *parent, struct dagi_cfg_node *child)
{
    if (parent->kind == DAGI_CFG_NODE_SEQ)
        child->index = parent->count;
    if (parent->last)
        parent->last->next = child;
    else
        parent->first = child;
    parent->last = child;
    parent->count++;
}

const struct dagi_cfg_node *dagi_cfg_node_get(const struct dagi_cfg_node *map, const char *key)
{
    if (!map || map->kind != DAGI_CFG_NODE_MAP)
        return NULL;
    for (const struct dagi_cfg_node *c = map->first; c; c = c->next)
        if (strcmp(c->key, key) == 0)
            return c;
    return NULL;
}

/* ---- YAML ---- */

/* The key path of the innermost open container (included), for
 * duplicate-key errors. */
static void stack_path(const struct builder *b, struct dagi_buf *out)
{
    for (size_t i = 1; i < b->depth; i++) {
        const struct dagi_cfg_node *n = b->stack[i];
        if (n->key)
            dagi_buf_appendf(out, "%s%s", out->len ? "." : "", n->key);
        else
            dagi_buf_appendf(out, "[%zu]", n->index);
    }
}

static int cmp_key_line(const void *pa, const void *pb)
{
    const struct dagi_cfg_node *a = *(const struct dagi_cfg_node *const *)pa;
    const struct dagi_cfg_node *b = *(const struct dagi_cfg_node *const *)pb;
    int c = strcmp(a->key, b->key);
    if (c)
        return c;
    return a->key_line < b->key_line ? -1 : a->key_line > b->key_line;
}

/* Sorting keeps a mapping with many keys at O(n log n) where pairwise
 * comparison would let a 4 MiB document burn seconds of CPU. */
static void check_duplicates(struct builder *b, const struct dagi_cfg_node *map)
{
    if (map->count < 2)
        return;
    const struct dagi_cfg_node **v = dagi_xcalloc(map->count, sizeof(*v));
    size_t n = 0;
    for (const struct dagi_cfg_node *c = map->first; c; c = c->next)
        v[n++] = c;
    qsort(v, n, sizeof(*v), cmp_key_line);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(v[i - 1]->key, v[i]->key) != 0)
            continue;
        struct dagi_buf path;
        dagi_buf_init(&path, 8192);
        stack_path(b, &path);
        fail(b, v[i]->key_line, "%s%s%s: duplicate key (first at line %u)", dagi_buf_str(&path),
             path.len ? "." : "", v[i]->key, v[i - 1]->key_line);
        dagi_buf_release(&path);
    }
    free(v);
}

static bool is_null_scalar(const yaml_event_t *ev)
{
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *t = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    return len == 0 || strcmp(t, "~") == 0 || strcmp(t, "null") == 0 || strcmp(t, "Null") == 0 ||
           strcmp(t, "NULL") == 0;
}

/* Attaches a finished value to the innermost open container; returns false
 * when the builder should stop. */
static bool attach(struct builder *b, struct dagi_cfg_node *n)
{
    if (b->depth == 0) {
        b->doc->root = n;
        return true;
    }
    struct dagi_cfg_node *parent = b->stack[b->depth - 1];
    if (parent->kind == DAGI_CFG_NODE_MAP) {
        n->key = b->pending_key[b->depth - 1];
        n->key_line = b->pending_line[b->depth - 1];
        b->pending_key[b->depth - 1] = NULL;
    }
    child_add(parent, n);
    return true;
}

/* True when the next event in the innermost mapping is a key. */
static bool expecting_key(const struct builder *b)
{
    return b->depth > 0 && b->stack[b->depth - 1]->kind == DAGI_CFG_NODE_MAP &&
           !b->pending_key[b->depth - 1];
}

static bool on_scalar(struct builder *b, const yaml_event_t *ev, unsigned line)
{
    const char *text = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    if (expecting_key(b)) {
        if (is_null_scalar(ev)) {
            fail(b, line, "keys must be strings");
            return false;
        }
        if (len > DAGI_CFG_DOC_MAX_KEY) {
            fail(b, line, "key longer than %d bytes", DAGI_CFG_DOC_MAX_KEY);
            return false;
        }
        if (memchr(text, '\0', len)) {
            fail(b, line, "NUL byte inside a key");
            return false;
        }
        char *key = dagi_arena_strndup(b->doc->arena, text, len);
        if (!key) {
            fail(b, line, "document too large");
            return false;
        }
        b->pending_key[b->depth - 1] = key;
        b->pending_line[b->depth - 1] = line;
        return true;
    }
    bool null = is_null_scalar(ev);
    struct dagi_cfg_node *n = node_new(b, null ? DAGI_CFG_NODE_NULL : DAGI_CFG_NODE_SCALAR, line);
    if (!n)
        return false;
    if (!null) {
        const char *tag = (const char *)ev->data.scalar.tag;
        /* `!!str 80` and `! 80` are strings the same way "80" is. */
        n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
                    (tag && (strcmp(tag, YAML_STR_TAG) == 0 || strcmp(tag, "!") == 0));
        if (!scalar_set(b, n, text, len))
            return false;
    }
    return attach(b, n);
}

static bool on_start(struct builder *b, enum dagi_cfg_node_kind kind, unsigned line)
{
    if (expecting_key(b)) {
        fail(b, line, "keys must be strings");
        return false;
    }
    if (b->depth >= DAGI_CFG_DOC_MAX_DEPTH) {
        fail(b, line, "nesting deeper than %d levels", DAGI_CFG_DOC_MAX_DEPTH);
        return false;
    }
    struct dagi_cfg_node *n = node_new(b, kind, line);
    if (!n || !attach(b, n))
        return false;
    b->stack[b->depth] = n;
    b->pending_key[b->depth] = NULL;
    b->depth++;
    return true;
}

static const char *anchor_of(const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        return (const char *)ev->data.scalar.anchor;
    case YAML_SEQUENCE_START_EVENT:
        return (const char *)ev->data.sequence_start.anchor;
    case YAML_MAPPING_START_EVENT:
        return (const char *)ev->data.mapping_start.anchor;
    default:
        return NULL;
    }
}

/* Handles one event; false stops the parse (the reason is already in errs). */
static bool on_event(struct builder *b, const yaml_event_t *ev, int *documents)
{
    unsigned line = (unsigned)ev->start_mark.line + 1;
    if (ev->type == YAML_ALIAS_EVENT || anchor_of(ev)) {
        fail(b, line, "anchors and aliases are not allowed");
        return false;
    }
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++*documents > 1) {
            fail(b, line, "more than one document");
            return false;
        }
        return true;
    case YAML_SCALAR_EVENT:
        return on_scalar(b, ev, line);
    case YAML_SEQUENCE_START_EVENT:
        return on_start(b, DAGI_CFG_NODE_SEQ, line);
    case YAML_MAPPING_START_EVENT:
        return on_start(b, DAGI_CFG_NODE_MAP, line);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        if (b->depth == 0)
            return false;
        if (ev->type == YAML_MAPPING_END_EVENT)
            check_duplicates(b, b->stack[b->depth - 1]);
        b->depth--;
        return true;
    default:
        return true;
    }
}

int dagi_cfg_doc_from_yaml(const char *name, const char *text, size_t len,
                           struct dagi_cfg_doc **out, struct dagi_cfg_errors *errs)
{
    int rc = DAGI_EPARSE;
    struct builder *b = dagi_xcalloc(1, sizeof(*b));
    b->name = name ? name : "<config>";
    b->errs = errs;
    b->doc = dagi_xcalloc(1, sizeof(*b->doc));
    b->doc->arena = dagi_arena_new(DOC_ARENA_CAP);
    yaml_parser_t parser;
    bool parser_ready = false;

    if (len > DAGI_CFG_DOC_MAX_BYTES) {
        dagi_cfg_errors_add(errs, "%s: document is larger than %zu bytes", b->name,
                            DAGI_CFG_DOC_MAX_BYTES);
        goto out;
    }
    if (!yaml_parser_initialize(&parser))
        goto out;
    parser_ready = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int documents = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            const char *ctx = parser.context ? parser.context : "";
            fail(b, (unsigned)parser.problem_mark.line + 1, "%s%s%s",
                 parser.problem ? parser.problem : "YAML syntax error", *ctx ? " " : "", ctx);
            goto out;
        }
        bool go_on = on_event(b, &ev, &documents);
        bool end = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
        if (!go_on || end)
            break;
    }
    if (b->failed)
        goto out;
    *out = b->doc;
    b->doc = NULL;
    rc = 0;
out:
    if (parser_ready)
        yaml_parser_delete(&parser);
    dagi_cfg_doc_free(b->doc);
    free(b);
    return rc;
}

/* ---- JSON ---- */

static struct dagi_cfg_node *from_json(struct builder *b, const json_t *j, int depth)
{
    if ((json_is_object(j) || json_is_array(j)) && depth > DAGI_CFG_DOC_MAX_DEPTH) {
        fail(b, 0, "nesting deeper than %d levels", DAGI_CFG_DOC_MAX_DEPTH);
        return NULL;
    }
    char num[64];
    struct dagi_cfg_node *n;
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        if (!(n = node_new(b, DAGI_CFG_NODE_MAP, 0)))
            return NULL;
        const char *key;
        json_t *v;
        /* json_object_foreach wants a non-const object; it does not modify it. */
        json_object_foreach((json_t *)j, key, v)
        {
            if (strlen(key) > DAGI_CFG_DOC_MAX_KEY) {
                fail(b, 0, "key longer than %d bytes", DAGI_CFG_DOC_MAX_KEY);
                return NULL;
            }
            struct dagi_cfg_node *c = from_json(b, v, depth + 1);
            if (!c || !(c->key = dagi_arena_strdup(b->doc->arena, key)))
                return NULL;
            child_add(n, c);
        }
        return n;
    }
    case JSON_ARRAY: {
        if (!(n = node_new(b, DAGI_CFG_NODE_SEQ, 0)))
            return NULL;
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
        {
            struct dagi_cfg_node *c = from_json(b, v, depth + 1);
            if (!c)
                return NULL;
            child_add(n, c);
        }
        return n;
    }
    case JSON_NULL:
        return node_new(b, DAGI_CFG_NODE_NULL, 0);
    case JSON_STRING:
        if (!(n = node_new(b, DAGI_CFG_NODE_SCALAR, 0)))
            return NULL;
        n->quoted = true;
        return scalar_set(b, n, json_string_value(j), json_string_length(j)) ? n : NULL;
    case JSON_INTEGER:
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(j));
        break;
    case JSON_REAL:
        snprintf(num, sizeof(num), "%.17g", json_real_value(j));
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        snprintf(num, sizeof(num), "%s", json_is_true(j) ? "true" : "false");
        break;
    }
    if (!(n = node_new(b, DAGI_CFG_NODE_SCALAR, 0)))
        return NULL;
    return scalar_set(b, n, num, strlen(num)) ? n : NULL;
}

int dagi_cfg_doc_from_json(const struct json_t *json, struct dagi_cfg_doc **out,
                           struct dagi_cfg_errors *errs)
{
    int rc = DAGI_EPARSE;
    struct builder *b = dagi_xcalloc(1, sizeof(*b));
    b->errs = errs;
    b->doc = dagi_xcalloc(1, sizeof(*b->doc));
    b->doc->arena = dagi_arena_new(DOC_ARENA_CAP);
    if (json) {
        b->doc->root = from_json(b, json, 1);
        if (!b->doc->root)
            goto out;
    }
    *out = b->doc;
    b->doc = NULL;
    rc = 0;
out:
    dagi_cfg_doc_free(b->doc);
    free(b);
    return rc;
}

void dagi_cfg_doc_free(struct dagi_cfg_doc *doc)
{
    if (!doc)
        return;
    dagi_arena_free(doc->arena);
    free(doc);
}
