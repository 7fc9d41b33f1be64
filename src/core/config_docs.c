/* `dagi config docs` and `--help`, generated from the same schema tables
 * that load the configuration, so the reference cannot drift from the code.
 *
 * A schema that refers to itself (a rule tree) is documented once: the list
 * field that closes the loop points back at the table already written. */
#include "config.h"

#include "config_doc.h"
#include "err.h"
#include "mem.h"

#include <stdlib.h>
#include <string.h>

#define DOCS_MAX_DEPTH 64

struct table {
    const struct dagi_cfg_schema *schema;
    const char *name;
};

struct walker {
    struct dagi_buf *out;
    const char *prefix;
    bool markdown;
    int rc;
    struct table stack[DOCS_MAX_DEPTH];
    size_t depth;
};

static void emit(struct walker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void emit(struct walker *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = dagi_buf_vappendf(w->out, fmt, ap);
    va_end(ap);
    if (rc && !w->rc)
        w->rc = rc;
}

/* Markdown cells cannot hold a pipe or a line break. */
static void emit_cell(struct walker *w, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '|')
            emit(w, "\\|");
        else
            emit(w, "%c", *s == '\n' ? ' ' : *s);
    }
}

static void type_text(const struct dagi_cfg_field *f, const char *list_name, struct dagi_buf *b)
{
    if (f->type == DAGI_CFG_ENUM) {
        dagi_buf_append_str(b, "enum (");
        for (const char *const *v = f->enum_values; v && *v; v++)
            dagi_buf_appendf(b, "%s%s", v == f->enum_values ? "" : ", ", *v);
        dagi_buf_append_str(b, ")");
    } else if (f->type == DAGI_CFG_LIST) {
        dagi_buf_appendf(b, "list of %s", list_name);
    } else {
        dagi_buf_append_str(b, dagi_cfg_type_name(f->type));
    }
}

/* The default as the loader applies it: NULL is zero, which for an enum is
 * its first value and for a bool is false.  Empty when there is none. */
static const char *default_text(const struct dagi_cfg_field *f)
{
    if (f->flags & DAGI_CFG_SECRET)
        return "";
    if (f->def)
        return f->def;
    if (f->type == DAGI_CFG_ENUM && f->enum_values && f->enum_values[0])
        return f->enum_values[0];
    if (f->type == DAGI_CFG_BOOL)
        return "false";
    return "";
}

static void bounds_text(const struct dagi_cfg_field *f, struct dagi_buf *b)
{
    if (!(f->min < f->max))
        return;
    char lo[64], hi[64];
    int64_t ilo = (int64_t)f->min, ihi = (int64_t)f->max;
    switch (f->type) {
    case DAGI_CFG_DURATION:
        dagi_cfg_format_duration(ilo, lo, sizeof(lo));
        dagi_cfg_format_duration(ihi, hi, sizeof(hi));
        break;
    case DAGI_CFG_SIZE:
        dagi_cfg_format_size(ilo, lo, sizeof(lo));
        dagi_cfg_format_size(ihi, hi, sizeof(hi));
        break;
    default:
        dagi_cfg_format_number(f->min, lo, sizeof(lo));
        dagi_cfg_format_number(f->max, hi, sizeof(hi));
        break;
    }
    switch (f->type) {
    case DAGI_CFG_STRING:
    case DAGI_CFG_ADDRESS:
        dagi_buf_appendf(b, "length %s..%s", lo, hi);
        break;
    case DAGI_CFG_STRING_LIST:
    case DAGI_CFG_LIST:
        dagi_buf_appendf(b, "%s..%s items", lo, hi);
        break;
    default:
        dagi_buf_appendf(b, "%s..%s", lo, hi);
        break;
    }
}

static const char *table_of(const struct walker *w, const struct dagi_cfg_schema *s)
{
    for (size_t i = 0; i < w->depth; i++)
        if (w->stack[i].schema == s)
            return w->stack[i].name;
    return NULL;
}

static void field_row(struct walker *w, const struct dagi_cfg_field *f, const char *path,
                      bool env_ok)
{
    char *key = path[0] ? dagi_xasprintf("%s.%s", path, f->name) : dagi_xstrdup(f->name);
    char *list_name = dagi_xasprintf("%s[]", key);
    const char *ancestor = f->type == DAGI_CFG_LIST ? table_of(w, f->sub) : NULL;
    struct dagi_buf type, bounds;
    dagi_buf_init(&type, 4096);
    dagi_buf_init(&bounds, 256);
    type_text(f, ancestor ? ancestor : list_name, &type);
    bounds_text(f, &bounds);
    char env[512] = "";
    if (env_ok && !(f->flags & DAGI_CFG_NO_ENV) && f->type != DAGI_CFG_LIST)
        dagi_cfg_env_name(w->prefix, key, env, sizeof(env));
    const char *def = default_text(f);
    bool required = f->flags & DAGI_CFG_REQUIRED;

    if (w->markdown) {
        emit(w, "| `%s` | ", key);
        emit_cell(w, dagi_buf_str(&type));
        emit(w, " | ");
        if (required)
            emit(w, "required");
        else if (*def)
            emit(w, "`%s`", def);
        emit(w, " | ");
        emit_cell(w, dagi_buf_str(&bounds));
        emit(w, " | ");
        if (*env)
            emit(w, "`%s`", env);
        emit(w, " | ");
        emit_cell(w, f->help);
        emit(w, " |\n");
    } else {
        emit(w, "  %s  %s", key, dagi_buf_str(&type));
        if (required)
            emit(w, "  (required)");
        else if (*def)
            emit(w, "  (default %s)", def);
        if (bounds.len)
            emit(w, "  [%s]", dagi_buf_str(&bounds));
        if (*env)
            emit(w, "  env %s", env);
        if (f->help)
            emit(w, "  %s", f->help);
        emit(w, "\n");
    }
    dagi_buf_release(&type);
    dagi_buf_release(&bounds);
    free(list_name);
    free(key);
}

/* path: "" for the root, "http" for a section, "http.limits[]" for the
 * records of a list.  env_ok: reachable through sections only. */
static void walk(struct walker *w, const struct dagi_cfg_schema *s, const char *path, bool env_ok)
{
    if (w->depth >= DOCS_MAX_DEPTH)
        return;
    w->stack[w->depth++] = (struct table){s, path[0] ? path : s->name};

    size_t rows = 0;
    for (size_t i = 0; i < s->field_count; i++)
        rows += s->fields[i].type != DAGI_CFG_SECTION;
    if (w->markdown && rows) {
        emit(w, "\n## `%s`\n\n", path[0] ? path : (s->name ? s->name : "top level"));
        if (path[0] && s->help)
            emit(w, "%s\n\n", s->help);
        emit(w, "| key | type | default | bounds | env | help |\n");
        emit(w, "|-----|------|---------|--------|-----|------|\n");
    }
    for (size_t i = 0; i < s->field_count; i++)
        if (s->fields[i].type != DAGI_CFG_SECTION)
            field_row(w, &s->fields[i], path, env_ok);

    for (size_t i = 0; i < s->field_count; i++) {
        const struct dagi_cfg_field *f = &s->fields[i];
        if (f->type != DAGI_CFG_SECTION && f->type != DAGI_CFG_LIST)
            continue;
        if (!f->sub || (f->type == DAGI_CFG_LIST && table_of(w, f->sub)))
            continue;
        char *child = dagi_xasprintf("%s%s%s%s", path, path[0] ? "." : "", f->name,
                                     f->type == DAGI_CFG_LIST ? "[]" : "");
        walk(w, f->sub, child,
             env_ok && f->type == DAGI_CFG_SECTION && !(f->flags & DAGI_CFG_NO_ENV));
        free(child);
    }
    w->depth--;
}

static int generate(const struct dagi_cfg_schema *schema, const char *prefix, bool markdown,
                    struct dagi_buf *out)
{
    struct walker w = {.out = out, .prefix = prefix, .markdown = markdown};
    if (markdown) {
        emit(&w, "# Configuration reference: `%s`\n", schema->name ? schema->name : "dagi");
        if (schema->help)
            emit(&w, "\n%s\n", schema->help);
        emit(&w, "\nGenerated from the schema tables.  A key with an environment variable can also "
                 "be set "
                 "through it (lists of strings comma-separated).\n");
    }
    walk(&w, schema, "", true);
    return w.rc;
}

int dagi_cfg_docs_markdown(const struct dagi_cfg_schema *schema, const char *prefix,
                           struct dagi_buf *out)
{
    return generate(schema, prefix, true, out);
}

int dagi_cfg_help_text(const struct dagi_cfg_schema *schema, const char *prefix,
                       struct dagi_buf *out)
{
    return generate(schema, prefix, false, out);
}
