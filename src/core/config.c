/* Binds a document tree (config_doc.h) to C structs through the schema
 * tables of config.h, and parses the same values from the environment and
 * the command line.  The scalars themselves (integers, durations, sizes,
 * addresses) are parsed and written out by config_scalar.c.
 *
 * One pass per record: keys in document order (so errors come out in the
 * order a reader meets them), then the fields the document left out get
 * their defaults or a `required` error, then the record's check callback.
 * Every error is collected; nothing stops at the first one. */
#include "config.h"

#include "config_doc.h"
#include "err.h"
#include "mem.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CFG_MAX_STRING (64 * 1024)
#define CFG_MAX_ITEMS 100000
#define CFG_MAX_DEPTH 64
/* Past this many lines the text only says that more followed, so a hostile
 * document cannot turn the error report into the memory hog. */
#define CFG_MAX_ERROR_LINES 200
#define CFG_ERRORS_CAP ((size_t)1 << 20)
#define CFG_PATH_CAP ((size_t)128 << 10)

extern char **environ;

struct dagi_cfg_ctx {
    struct dagi_arena *arena;
    struct dagi_cfg_errors *errs;
    const char *name;   /* YAML: errors start "name:line: " */
    const char *origin; /* set/env: errors start "origin: "; neither: JSON, path only */
    struct dagi_buf path;
    size_t failures;
    bool out_of_memory;
    unsigned depth;
    /* The record a check callback is looking at, for dagi_cfg_report. */
    const struct dagi_cfg_node *record;
    unsigned record_line;
};

union value {
    char *s;
    int64_t i;
    bool b;
    double d;
    int e;
    struct dagi_cfg_strings list;
};

/* ---- errors ---- */

void dagi_cfg_errors_init(struct dagi_cfg_errors *errs)
{
    dagi_buf_init(&errs->text, CFG_ERRORS_CAP);
    errs->count = 0;
}

void dagi_cfg_errors_release(struct dagi_cfg_errors *errs)
{
    dagi_buf_release(&errs->text);
    errs->count = 0;
}

void dagi_cfg_errors_add(struct dagi_cfg_errors *errs, const char *fmt, ...)
{
    if (errs->count < CFG_MAX_ERROR_LINES) {
        va_list ap;
        va_start(ap, fmt);
        dagi_buf_vappendf(&errs->text, fmt, ap);
        va_end(ap);
        dagi_buf_append_char(&errs->text, '\n');
    } else if (errs->count == CFG_MAX_ERROR_LINES) {
        dagi_buf_append_str(&errs->text, "(further errors omitted)\n");
    }
    errs->count++;
}

static void verror(struct dagi_cfg_ctx *ctx, unsigned line, const char *fmt, va_list ap)
{
    struct dagi_buf msg;
    dagi_buf_init(&msg, 16384);
    if (ctx->origin)
        dagi_buf_appendf(&msg, "%s: ", ctx->origin);
    else if (ctx->name)
        dagi_buf_appendf(&msg, "%s:%u: ", ctx->name, line);
    if (ctx->path.len)
        dagi_buf_appendf(&msg, "%s: ", dagi_buf_str(&ctx->path));
    dagi_buf_vappendf(&msg, fmt, ap);
    dagi_cfg_errors_add(ctx->errs, "%s", dagi_buf_str(&msg));
    dagi_buf_release(&msg);
    ctx->failures++;
}

static void error_at(struct dagi_cfg_ctx *ctx, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void error_at(struct dagi_cfg_ctx *ctx, unsigned line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(ctx, line, fmt, ap);
    va_end(ap);
}

static void out_of_memory(struct dagi_cfg_ctx *ctx, unsigned line)
{
    if (!ctx->out_of_memory)
        error_at(ctx, line, "configuration exceeds the memory cap of its arena");
    ctx->out_of_memory = true;
}

void dagi_cfg_report(struct dagi_cfg_ctx *ctx, const char *key, const char *fmt, ...)
{
    unsigned line = ctx->record_line;
    size_t mark = ctx->path.len;
    if (key) {
        const struct dagi_cfg_node *n = dagi_cfg_node_get(ctx->record, key);
        if (n)
            line = n->key_line;
        dagi_buf_appendf(&ctx->path, "%s%s", mark ? "." : "", key);
    }
    va_list ap;
    va_start(ap, fmt);
    verror(ctx, line, fmt, ap);
    va_end(ap);
    ctx->path.len = mark;
    if (ctx->path.data)
        ctx->path.data[mark] = '\0';
}

/* ---- key paths ---- */

static size_t path_push(struct dagi_cfg_ctx *ctx, const char *key, size_t len)
{
    size_t mark = ctx->path.len;
    dagi_buf_appendf(&ctx->path, "%s%.*s", mark ? "." : "", (int)len, key);
    return mark;
}

static size_t path_push_index(struct dagi_cfg_ctx *ctx, size_t i)
{
    size_t mark = ctx->path.len;
    dagi_buf_appendf(&ctx->path, "[%zu]", i);
    return mark;
}

static void path_pop(struct dagi_cfg_ctx *ctx, size_t mark)
{
    ctx->path.len = mark;
    if (ctx->path.data)
        ctx->path.data[mark] = '\0';
}

/* ---- scalar parsers ---- */

static void enum_error(struct dagi_cfg_ctx *ctx, const struct dagi_cfg_field *f, unsigned line)
{
    struct dagi_buf values;
    dagi_buf_init(&values, 4096);
    dagi_cfg_enum_list(f, &values);
    error_at(ctx, line, "must be one of %s", dagi_buf_str(&values));
    dagi_buf_release(&values);
}

static char *arena_copy(struct dagi_cfg_ctx *ctx, const char *s, size_t len, unsigned line)
{
    char *p = dagi_arena_strndup(ctx->arena, s, len);
    if (!p)
        out_of_memory(ctx, line);
    return p;
}

/* Parses one scalar's text for field f into v, or reports why not.  A quoted
 * scalar is a string: it may be a duration, size, enum or address (all
 * written as words) but never an integer, bool or number. */
static bool parse_scalar(struct dagi_cfg_ctx *ctx, const struct dagi_cfg_field *f, const char *text,
                         size_t len, bool quoted, unsigned line, union value *v)
{
    char q[100];
    const char *qmark = quoted ? " (quoted)" : "";
    bool overflow = false;
    if (len > CFG_MAX_STRING) {
        error_at(ctx, line, "longer than %d bytes", CFG_MAX_STRING);
        return false;
    }
    switch (f->type) {
    case DAGI_CFG_STRING:
        return (v->s = arena_copy(ctx, text, len, line)) != NULL;
    case DAGI_CFG_ADDRESS:
        if (!dagi_cfg_valid_address(text)) {
            error_at(ctx, line, "expected host:port, got %s", dagi_cfg_quote(q, text, len));
            return false;
        }
        return (v->s = arena_copy(ctx, text, len, line)) != NULL;
    case DAGI_CFG_INT:
        if (!quoted && dagi_cfg_parse_int(text, &v->i, &overflow))
            return true;
        if (overflow)
            error_at(ctx, line, "integer out of range, got %s", dagi_cfg_quote(q, text, len));
        else
            error_at(ctx, line, "expected an integer, got %s%s", dagi_cfg_quote(q, text, len),
                     qmark);
        return false;
    case DAGI_CFG_BOOL:
        if (!quoted && (strcmp(text, "true") == 0 || strcmp(text, "false") == 0)) {
            v->b = text[0] == 't';
            return true;
        }
        error_at(ctx, line, "expected true or false, got %s%s", dagi_cfg_quote(q, text, len),
                 qmark);
        return false;
    case DAGI_CFG_DOUBLE: {
        /* The charset check keeps strtod's nan, inf and hex forms out. */
        char *end = NULL;
        if (!quoted && len > 0 && strspn(text, "+-0123456789.eE") == len) {
            errno = 0;
            v->d = strtod(text, &end);
            if (end == text + len && errno == 0 && isfinite(v->d))
                return true;
        }
        error_at(ctx, line, "expected a number, got %s%s", dagi_cfg_quote(q, text, len), qmark);
        return false;
    }
    case DAGI_CFG_DURATION:
        if (dagi_cfg_parse_duration(text, &v->i) == 0)
            return true;
        error_at(ctx, line, "expected a duration, got %s", dagi_cfg_quote(q, text, len));
        return false;
    case DAGI_CFG_SIZE:
        if (dagi_cfg_parse_size(text, &v->i) == 0)
            return true;
        error_at(ctx, line, "expected a size, got %s", dagi_cfg_quote(q, text, len));
        return false;
    case DAGI_CFG_ENUM:
        for (int i = 0; f->enum_values && f->enum_values[i]; i++) {
            if (strcmp(text, f->enum_values[i]) == 0) {
                v->e = i;
                return true;
            }
        }
        enum_error(ctx, f, line);
        return false;
    case DAGI_CFG_STRING_LIST:
    case DAGI_CFG_SECTION:
    case DAGI_CFG_LIST:
        break;
    }
    error_at(ctx, line, "cannot be set from a single value");
    return false;
}

/* Comma-separated text (environment, command line, schema defaults, where
 * a default may also be written as a YAML flow list "[a, b]"). */
static bool parse_comma_list(struct dagi_cfg_ctx *ctx, const char *text, bool brackets,
                             unsigned line, union value *v)
{
    size_t len = strlen(text);
    if (brackets && len >= 2 && text[0] == '[' && text[len - 1] == ']') {
        text++;
        len -= 2;
    }
    while (len && text[0] == ' ')
        text++, len--;
    while (len && text[len - 1] == ' ')
        len--;
    size_t count = len ? 1 : 0;
    for (size_t i = 0; i < len; i++)
        count += text[i] == ',';
    if (count > CFG_MAX_ITEMS) {
        error_at(ctx, line, "more than %d items", CFG_MAX_ITEMS);
        return false;
    }
    char **items = dagi_arena_alloc(ctx->arena, (count ? count : 1) * sizeof(*items));
    if (!items) {
        out_of_memory(ctx, line);
        return false;
    }
    const char *p = text, *end = text + len;
    for (size_t i = 0; i < count; i++) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end, *a = p, *b = stop;
        while (a < b && *a == ' ')
            a++;
        while (b > a && b[-1] == ' ')
            b--;
        if (a == b) {
            error_at(ctx, line, "empty item in a comma-separated list");
            return false;
        }
        if ((size_t)(b - a) > CFG_MAX_STRING) {
            error_at(ctx, line, "item longer than %d bytes", CFG_MAX_STRING);
            return false;
        }
        if (!(items[i] = arena_copy(ctx, a, (size_t)(b - a), line)))
            return false;
        p = stop + 1;
    }
    v->list.items = items;
    v->list.count = count;
    return true;
}

/* ---- bounds and storage ---- */

/* ctx NULL: only answers (used to assert on schema defaults). */
static bool check_bounds(struct dagi_cfg_ctx *ctx, const struct dagi_cfg_field *f,
                         const union value *v, unsigned line)
{
    if (!(f->min < f->max))
        return true;
    char lo[64], hi[64], got[64];
    dagi_cfg_format_number(f->min, lo, sizeof(lo));
    dagi_cfg_format_number(f->max, hi, sizeof(hi));
    double x;
    switch (f->type) {
    case DAGI_CFG_STRING:
    case DAGI_CFG_ADDRESS:
        x = (double)(v->s ? strlen(v->s) : 0);
        if (x >= f->min && x <= f->max)
            return true;
        if (ctx)
            error_at(ctx, line, "length must be between %s and %s, got %.0f", lo, hi, x);
        return false;
    case DAGI_CFG_STRING_LIST:
        x = (double)v->list.count;
        if (x >= f->min && x <= f->max)
            return true;
        if (ctx)
            error_at(ctx, line, "must have between %s and %s items, got %.0f", lo, hi, x);
        return false;
    case DAGI_CFG_INT:
    case DAGI_CFG_DOUBLE:
        x = f->type == DAGI_CFG_INT ? (double)v->i : v->d;
        if (x >= f->min && x <= f->max)
            return true;
        dagi_cfg_format_number(x, got, sizeof(got));
        if (f->type == DAGI_CFG_INT)
            snprintf(got, sizeof(got), "%" PRId64, v->i);
        if (ctx)
            error_at(ctx, line, "must be between %s and %s, got %s", lo, hi, got);
        return false;
    case DAGI_CFG_DURATION:
    case DAGI_CFG_SIZE: {
        void (*fmt)(int64_t, char *, size_t) =
            f->type == DAGI_CFG_SIZE ? dagi_cfg_format_size : dagi_cfg_format_duration;
        bool low = (double)v->i < f->min;
        if (!low && (double)v->i <= f->max)
            return true;
        fmt(v->i, got, sizeof(got));
        fmt((int64_t)(low ? f->min : f->max), lo, sizeof(lo));
        if (ctx)
            error_at(ctx, line, "%s is %s %s", got, low ? "below the minimum" : "above the maximum",
                     lo);
        return false;
    }
    default:
        return true;
    }
}

static void store(const struct dagi_cfg_field *f, void *rec, const union value *v)
{
    void *dst = (char *)rec + f->offset;
    switch (f->type) {
    case DAGI_CFG_STRING:
    case DAGI_CFG_ADDRESS:
        *(char **)dst = v->s;
        break;
    case DAGI_CFG_INT:
    case DAGI_CFG_DURATION:
    case DAGI_CFG_SIZE:
        *(int64_t *)dst = v->i;
        break;
    case DAGI_CFG_BOOL:
        *(bool *)dst = v->b;
        break;
    case DAGI_CFG_DOUBLE:
        *(double *)dst = v->d;
        break;
    case DAGI_CFG_ENUM:
        *(int *)dst = v->e;
        break;
    case DAGI_CFG_STRING_LIST:
        *(struct dagi_cfg_strings *)dst = v->list;
        break;
    case DAGI_CFG_SECTION:
    case DAGI_CFG_LIST:
        break;
    }
}

/* Text from the environment or the command line, or a schema default. */
static bool set_from_text(struct dagi_cfg_ctx *ctx, const struct dagi_cfg_field *f, void *rec,
                          const char *text, bool is_default, unsigned line)
{
    union value v;
    bool ok = f->type == DAGI_CFG_STRING_LIST
                  ? parse_comma_list(ctx, text, is_default, line, &v)
                  : parse_scalar(ctx, f, text, strlen(text), false, line, &v);
    assert((ok || !is_default) && "a schema default does not parse");
    if (!ok)
        return false;
    if (is_default)
        assert(check_bounds(NULL, f, &v, line) && "a schema default is out of bounds");
    else if (!check_bounds(ctx, f, &v, line))
        return false;
    store(f, rec, &v);
    return true;
}

/* ---- binding a document ---- */

static const struct dagi_cfg_field *find_field(const struct dagi_cfg_schema *s, const char *key,
                                               size_t len)
{
    for (size_t i = 0; i < s->field_count; i++)
        if (strncmp(s->fields[i].name, key, len) == 0 && s->fields[i].name[len] == '\0')
            return &s->fields[i];
    return NULL;
}

static void unknown_key(struct dagi_cfg_ctx *ctx, const struct dagi_cfg_schema *s, const char *key,
                        unsigned line)
{
    const char *best = NULL;
    size_t best_d = 3, len = strlen(key);
    /* Past the error cap nobody reads the hint; skip the work. */
    for (size_t i = 0; i < s->field_count && ctx->errs->count < CFG_MAX_ERROR_LINES; i++) {
        size_t name_len = strlen(s->fields[i].name);
        if (len > name_len + 2 || name_len > len + 2)
            continue;
        size_t d = dagi_cfg_edit_distance(key, s->fields[i].name);
        /* d < strlen: "x" is not a typo of "ip", however close. */
        if (d < best_d && d < name_len) {
            best = s->fields[i].name;
            best_d = d;
        }
    }
    if (best)
        error_at(ctx, line, "unknown key (did you mean \"%s\"?)", best);
    else
        error_at(ctx, line, "unknown key");
}

/* Where to point at a node: a mapping or sequence value starts on the line
 * after its key, but the reader looks for the key. */
static unsigned line_of(const struct dagi_cfg_node *n)
{
    if ((n->kind == DAGI_CFG_NODE_MAP || n->kind == DAGI_CFG_NODE_SEQ) && n->key)
        return n->key_line;
    return n->line;
}

static const char *kind_name(const struct dagi_cfg_node *n)
{
    switch (n->kind) {
    case DAGI_CFG_NODE_MAP:
        return "a mapping";
    case DAGI_CFG_NODE_SEQ:
        return "a sequence";
    case DAGI_CFG_NODE_NULL:
        return "null";
    default:
        return "a scalar";
    }
}

/* For a container where a scalar was expected: "expected <this>, got a mapping". */
static const char *expected_name(enum dagi_cfg_type type)
{
    static const char *const names[] = {
        [DAGI_CFG_STRING] = "a string",     [DAGI_CFG_INT] = "an integer",
        [DAGI_CFG_BOOL] = "true or false",  [DAGI_CFG_DOUBLE] = "a number",
        [DAGI_CFG_DURATION] = "a duration", [DAGI_CFG_SIZE] = "a size",
        [DAGI_CFG_ADDRESS] = "host:port",
    };
    return (unsigned)type < DAGI_ARRAY_LEN(names) && names[type] ? names[type] : "a value";
}

static void bind_record(struct dagi_cfg_ctx *ctx, const struct dagi_cfg_schema *s, void *rec,
                        const struct dagi_cfg_node *map, unsigned line);

static void bind_strings(struct dagi_cfg_ctx *ctx, const struct dagi_cfg_field *f, void *rec,
                         const struct dagi_cfg_node *n)
{
    if (n->kind != DAGI_CFG_NODE_SEQ) {
        error_at(ctx, line_of(n), "expected a sequence");
        return;
    }
    if (n->count > CFG_MAX_ITEMS) {
        error_at(ctx, line_of(n), "more than %d items", CFG_MAX_ITEMS);
        return;
    }
    union value v = {.list = {NULL, n->count}};
    v.list.items = dagi_arena_alloc(ctx->arena, (n->count ? n->count : 1) * sizeof(char *));
    if (!v.list.items) {
        out_of_memory(ctx, line_of(n));
        return;
    }
    bool ok = true;
    for (const struct dagi_cfg_node *c = n->first; c; c = c->next) {
        size_t mark = path_push_index(ctx, c->index);
        if (c->kind != DAGI_CFG_NODE_SCALAR) {
            error_at(ctx, line_of(c), "expected a string, got %s", kind_name(c));
            ok = false;
        } else if (c->len > CFG_MAX_STRING) {
            error_at(ctx, c->line, "longer than %d bytes", CFG_MAX_STRING);
            ok = false;
        } else if (!(v.list.items[c->index] = arena_copy(ctx, c->text, c->len, c->line))) {
            ok = false;
        }
        path_pop(ctx, mark);
    }
    if (ok && check_bounds(ctx, f, &v, line_of(n)))
        store(f, rec, &v);
}

static void bind_list(struct dagi_cfg_ctx *ctx, const struct dagi_cfg_field *f, void *rec,
                      const struct dagi_cfg_node *n)
{
    if (n->kind != DAGI_CFG_NODE_SEQ) {
        error_at(ctx, line_of(n), "expected a sequence");
        return;
    }
    if (n->count > CFG_MAX_ITEMS) {
        error_at(ctx, line_of(n), "more than %d items", CFG_MAX_ITEMS);
        return;
    }
    union value counted = {.list = {NULL, n->count}};
    struct dagi_cfg_field as_strings = *f;
    as_strings.type = DAGI_CFG_STRING_LIST;
    check_bounds(ctx, &as_strings, &counted, line_of(n)); /* reported; items still bound */
    size_t size = f->sub->size ? f->sub->size : 1;
    char *items = NULL;
    if (n->count) {
        items = n->count <= SIZE_MAX / size ? dagi_arena_zalloc(ctx->arena, n->count * size) : NULL;
        if (!items) {
            out_of_memory(ctx, line_of(n));
            return;
        }
    }
    for (const struct dagi_cfg_node *c = n->first; c; c = c->next) {
        size_t mark = path_push_index(ctx, c->index);
        if (c->kind != DAGI_CFG_NODE_MAP)
            error_at(ctx, c->line, "expected a mapping");
        else
            bind_record(ctx, f->sub, items + c->index * size, c, c->line);
        path_pop(ctx, mark);
    }
    struct dagi_cfg_list *dst = (struct dagi_cfg_list *)((char *)rec + f->offset);
    dst->items = items;
    dst->count = n->count;
}

static void bind_field(struct dagi_cfg_ctx *ctx, const struct dagi_cfg_field *f, void *rec,
                       const struct dagi_cfg_node *n)
{
    union value v;
    switch (f->type) {
    case DAGI_CFG_SECTION:
        if (n->kind != DAGI_CFG_NODE_MAP)
            error_at(ctx, line_of(n), "expected a mapping");
        else
            bind_record(ctx, f->sub, (char *)rec + f->offset, n, n->key_line);
        return;
    case DAGI_CFG_LIST:
        bind_list(ctx, f, rec, n);
        return;
    case DAGI_CFG_STRING_LIST:
        bind_strings(ctx, f, rec, n);
        return;
    default:
        break;
    }
    if (n->kind != DAGI_CFG_NODE_SCALAR) {
        if (f->type == DAGI_CFG_ENUM)
            enum_error(ctx, f, line_of(n));
        else
            error_at(ctx, line_of(n), "expected %s, got %s", expected_name(f->type), kind_name(n));
        return;
    }
    if (parse_scalar(ctx, f, n->text, n->len, n->quoted, n->line, &v) &&
        check_bounds(ctx, f, &v, n->line))
        store(f, rec, &v);
}

static void bind_record(struct dagi_cfg_ctx *ctx, const struct dagi_cfg_schema *s, void *rec,
                        const struct dagi_cfg_node *map, unsigned line)
{
    /* Only a schema that nests itself through a section (instead of a list)
     * gets here; the document depth is capped before binding. */
    if (ctx->depth >= CFG_MAX_DEPTH) {
        error_at(ctx, line, "nesting deeper than %d levels", CFG_MAX_DEPTH);
        return;
    }
    ctx->depth++;
    size_t before = ctx->failures;
    for (const struct dagi_cfg_node *c = map ? map->first : NULL; c; c = c->next) {
        const struct dagi_cfg_field *f = find_field(s, c->key, strlen(c->key));
        size_t mark = path_push(ctx, c->key, strlen(c->key));
        if (!f)
            unknown_key(ctx, s, c->key, c->key_line);
        else if (c->kind != DAGI_CFG_NODE_NULL)
            bind_field(ctx, f, rec, c);
        path_pop(ctx, mark);
    }
    for (size_t i = 0; i < s->field_count; i++) {
        const struct dagi_cfg_field *f = &s->fields[i];
        const struct dagi_cfg_node *n = dagi_cfg_node_get(map, f->name);
        if (n && n->kind != DAGI_CFG_NODE_NULL)
            continue;
        unsigned at = n ? n->key_line : line;
        size_t mark = path_push(ctx, f->name, strlen(f->name));
        if (f->flags & DAGI_CFG_REQUIRED)
            error_at(ctx, at, "required");
        else if (f->type == DAGI_CFG_SECTION)
            bind_record(ctx, f->sub, (char *)rec + f->offset, NULL, at);
        else if (f->def && f->type != DAGI_CFG_LIST)
            set_from_text(ctx, f, rec, f->def, true, at);
        path_pop(ctx, mark);
    }
    /* A check sees a record whose own fields all bound; otherwise it would
     * report the fallout of errors already given. */
    if (s->check && ctx->failures == before) {
        const struct dagi_cfg_node *saved = ctx->record;
        unsigned saved_line = ctx->record_line;
        ctx->record = map;
        ctx->record_line = line;
        s->check(rec, ctx);
        ctx->record = saved;
        ctx->record_line = saved_line;
    }
    ctx->depth--;
}

/* ---- entry points ---- */

static void ctx_init(struct dagi_cfg_ctx *ctx, struct dagi_arena *arena,
                     struct dagi_cfg_errors *errs, const char *name, const char *origin)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->arena = arena;
    ctx->errs = errs;
    ctx->name = name;
    ctx->origin = origin;
    dagi_buf_init(&ctx->path, CFG_PATH_CAP);
}

static int ctx_finish(struct dagi_cfg_ctx *ctx)
{
    dagi_buf_release(&ctx->path);
    if (ctx->out_of_memory)
        return DAGI_ETOOBIG;
    return ctx->failures ? DAGI_EINVAL : 0;
}

static int bind_root(const struct dagi_cfg_schema *schema, const char *name,
                     const struct dagi_cfg_node *root, struct dagi_arena *arena, void **out,
                     struct dagi_cfg_errors *errs)
{
    struct dagi_cfg_ctx ctx;
    ctx_init(&ctx, arena, errs, name, NULL);
    unsigned line = root && root->line ? root->line : 1;
    void *obj = dagi_arena_zalloc(arena, schema->size ? schema->size : 1);
    if (!obj)
        out_of_memory(&ctx, line);
    else if (root && root->kind != DAGI_CFG_NODE_MAP && root->kind != DAGI_CFG_NODE_NULL)
        error_at(&ctx, line, "expected a mapping at the top level");
    else
        bind_record(&ctx, schema, obj, root && root->kind == DAGI_CFG_NODE_MAP ? root : NULL, line);
    int rc = ctx_finish(&ctx);
    if (rc == 0)
        *out = obj;
    return rc;
}

int dagi_cfg_load_yaml(const struct dagi_cfg_schema *schema, const char *name, const char *text,
                       size_t len, struct dagi_arena *arena, void **out,
                       struct dagi_cfg_errors *errs)
{
    struct dagi_cfg_doc *doc = NULL;
    if (!name)
        name = "<config>";
    int rc = dagi_cfg_doc_from_yaml(name, text, len, &doc, errs);
    if (rc)
        return rc;
    rc = bind_root(schema, name, doc->root, arena, out, errs);
    dagi_cfg_doc_free(doc);
    return rc;
}

int dagi_cfg_load_file(const struct dagi_cfg_schema *schema, const char *path,
                       struct dagi_arena *arena, void **out, struct dagi_cfg_errors *errs)
{
    int rc = DAGI_EIO;
    struct dagi_buf text;
    dagi_buf_init(&text, DAGI_CFG_DOC_MAX_BYTES);
    FILE *f = fopen(path, "rb");
    if (!f) {
        dagi_cfg_errors_add(errs, "%s: cannot open: %s", path, strerror(errno));
        goto out;
    }
    char chunk[16384];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (dagi_buf_append(&text, chunk, n) != 0) {
            dagi_cfg_errors_add(errs, "%s: document is larger than %zu bytes", path,
                                DAGI_CFG_DOC_MAX_BYTES);
            rc = DAGI_EPARSE;
            goto out;
        }
    }
    if (ferror(f)) {
        dagi_cfg_errors_add(errs, "%s: cannot read: %s", path, strerror(errno));
        goto out;
    }
    rc = dagi_cfg_load_yaml(schema, path, dagi_buf_str(&text), text.len, arena, out, errs);
out:
    if (f)
        fclose(f);
    dagi_buf_release(&text);
    return rc;
}

int dagi_cfg_load_json(const struct dagi_cfg_schema *schema, const struct json_t *json,
                       struct dagi_arena *arena, void **out, struct dagi_cfg_errors *errs)
{
    struct dagi_cfg_doc *doc = NULL;
    int rc = dagi_cfg_doc_from_json(json, &doc, errs);
    if (rc)
        return rc;
    rc = bind_root(schema, NULL, doc->root, arena, out, errs);
    dagi_cfg_doc_free(doc);
    return rc;
}

int dagi_cfg_load_defaults(const struct dagi_cfg_schema *schema, struct dagi_arena *arena,
                           void **out, struct dagi_cfg_errors *errs)
{
    return bind_root(schema, NULL, NULL, arena, out, errs);
}

int dagi_cfg_set(const struct dagi_cfg_schema *schema, void *obj, const char *path,
                 const char *value, const char *origin, struct dagi_arena *arena,
                 struct dagi_cfg_errors *errs)
{
    struct dagi_cfg_ctx ctx;
    ctx_init(&ctx, arena, errs, NULL, origin);
    const struct dagi_cfg_schema *s = schema;
    char *rec = obj;
    for (const char *p = path;;) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        const struct dagi_cfg_field *f = find_field(s, p, len);
        path_push(&ctx, p, len);
        if (!f) {
            char *key = dagi_xstrndup(p, len);
            unknown_key(&ctx, s, key, 0);
            free(key);
        } else if (dot && f->type != DAGI_CFG_SECTION) {
            error_at(&ctx, 0, "not a section");
        } else if (dot) {
            s = f->sub;
            rec += f->offset;
            p = dot + 1;
            continue;
        } else if (f->type == DAGI_CFG_SECTION || f->type == DAGI_CFG_LIST) {
            error_at(&ctx, 0, "cannot be set from a single value");
        } else if (!value) {
            error_at(&ctx, 0, "no value given");
        } else {
            set_from_text(&ctx, f, rec, value, false, 0);
        }
        break;
    }
    return ctx_finish(&ctx);
}

static const char *env_lookup(char *const *envp, const char *name)
{
    size_t len = strlen(name);
    for (; *envp; envp++)
        if (strncmp(*envp, name, len) == 0 && (*envp)[len] == '=')
            return *envp + len + 1;
    return NULL;
}

static void env_walk(struct dagi_cfg_ctx *ctx, const struct dagi_cfg_schema *s, void *rec,
                     const char *prefix, char *const *envp, unsigned depth)
{
    if (depth >= CFG_MAX_DEPTH)
        return;
    for (size_t i = 0; i < s->field_count; i++) {
        const struct dagi_cfg_field *f = &s->fields[i];
        if ((f->flags & DAGI_CFG_NO_ENV) || f->type == DAGI_CFG_LIST)
            continue;
        size_t mark = path_push(ctx, f->name, strlen(f->name));
        if (f->type == DAGI_CFG_SECTION) {
            env_walk(ctx, f->sub, (char *)rec + f->offset, prefix, envp, depth + 1);
        } else {
            char name[512];
            dagi_cfg_env_name(prefix, dagi_buf_str(&ctx->path), name, sizeof(name));
            const char *value = env_lookup(envp, name);
            if (value) {
                ctx->origin = name;
                set_from_text(ctx, f, rec, value, false, 0);
                ctx->origin = NULL;
            }
        }
        path_pop(ctx, mark);
    }
}

int dagi_cfg_apply_env(const struct dagi_cfg_schema *schema, void *obj, const char *prefix,
                       char *const *envp, struct dagi_arena *arena, struct dagi_cfg_errors *errs)
{
    struct dagi_cfg_ctx ctx;
    ctx_init(&ctx, arena, errs, NULL, NULL);
    env_walk(&ctx, schema, obj, prefix, envp ? envp : environ, 0);
    return ctx_finish(&ctx);
}

void dagi_cfg_env_name(const char *prefix, const char *path, char *out, size_t out_len)
{
    if (!out_len)
        return;
    size_t o = 0;
    if (!prefix)
        prefix = "DAGI";
    const char *parts[2] = {prefix, path ? path : ""};
    for (int k = 0; k < 2; k++) {
        if (k == 1 && *prefix && o + 1 < out_len)
            out[o++] = '_';
        for (const char *p = parts[k]; *p && o + 1 < out_len; p++)
            out[o++] = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
    }
    out[o] = '\0';
}
