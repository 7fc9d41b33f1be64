/* Configuration as a table.
 *
 * Each setting is declared once, in a `struct dagi_cfg_field`: name, type,
 * where it is stored (offsetof into a C struct), default, bounds and help.
 * The same tables drive loading and validation of YAML files and of JSON
 * documents pushed at run time, environment overrides (DAGI_*), `--help`,
 * `dagi config docs` (docs/CONFIGURATION.md) and reload.
 *
 * Nested mappings are DAGI_CFG_SECTION fields (an embedded struct), lists of
 * records are DAGI_CFG_LIST fields (an array of structs); a schema may refer
 * to itself through `sub`, so recursive trees (routing rules with all/any/not)
 * use the same mechanism.
 *
 * Strict: an unknown key, a wrong type, a value out of bounds, a missing
 * required field or a failed cross-field check is an error.  Errors are all
 * collected, each rendered as
 *     file:line: key.path: reason        (YAML file or buffer)
 *     key.path: reason                    (JSON document, a field path)
 * where the key path uses dots for sections and [i] for list items, e.g.
 * `http.limits[1].max_body`.
 *
 * Memory: everything a load produces (the struct, strings, lists) is
 * allocated from the caller's arena and lives as long as it. */
#ifndef DAGI_CONFIG_H
#define DAGI_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "buf.h"

struct json_t;

enum dagi_cfg_type {
    DAGI_CFG_STRING,      /* char *  (NULL when absent and no default) */
    DAGI_CFG_INT,         /* int64_t */
    DAGI_CFG_BOOL,        /* bool: true/false only (not yes/no/on/off) */
    DAGI_CFG_DOUBLE,      /* double */
    DAGI_CFG_DURATION,    /* int64_t milliseconds: "250ms" "30s" "5m" "2h" "1d", or a bare integer = ms */
    DAGI_CFG_SIZE,        /* int64_t bytes: "512" "64KB" "8MB" "1GB" (KB=1024; KiB/MiB/GiB accepted) */
    DAGI_CFG_ENUM,        /* int: index into enum_values */
    DAGI_CFG_ADDRESS,     /* char *: "host:port" or "[v6]:port", port 0..65535 */
    DAGI_CFG_STRING_LIST, /* struct dagi_cfg_strings */
    DAGI_CFG_SECTION,     /* embedded struct described by `sub` */
    DAGI_CFG_LIST,        /* struct dagi_cfg_list of records described by `sub` */
};

enum dagi_cfg_flags {
    DAGI_CFG_REQUIRED = 1u << 0, /* must be present (no default applies) */
    DAGI_CFG_SECRET = 1u << 1,   /* never printed: docs show no default, dumps redact it */
    DAGI_CFG_RESTART = 1u << 2,  /* a change takes effect only after a restart */
    DAGI_CFG_NO_ENV = 1u << 3,   /* no DAGI_* environment override */
};

struct dagi_cfg_strings {
    char **items;
    size_t count;
};

struct dagi_cfg_list {
    void *items; /* count records of sub->size bytes each */
    size_t count;
};

struct dagi_cfg_schema;
struct dagi_cfg_ctx;

struct dagi_cfg_field {
    const char *name;
    enum dagi_cfg_type type;
    size_t offset;   /* offsetof(struct, member) */
    const char *def; /* default written as it would be in YAML; NULL = zero/NULL/empty */
    /* Bounds: value range for INT/DOUBLE/DURATION/SIZE, length range for
     * STRING/ADDRESS and item-count range for STRING_LIST/LIST.  Checked only
     * when min < max; use 0,0 for "no bounds". */
    double min, max;
    const char *const *enum_values; /* DAGI_CFG_ENUM: NULL-terminated */
    const struct dagi_cfg_schema *sub; /* SECTION and LIST */
    unsigned flags;
    const char *help; /* one sentence for --help and the docs */
};

struct dagi_cfg_schema {
    const char *name; /* e.g. "dagi.yml", for docs */
    const char *help;
    size_t size; /* sizeof the struct the fields point into */
    const struct dagi_cfg_field *fields;
    size_t field_count;
    /* Optional cross-field check, run after the fields of one record are
     * bound (and after its subsections); reports with dagi_cfg_report(). */
    void (*check)(void *record, struct dagi_cfg_ctx *ctx);
};

/* Collected errors.  Init with dagi_cfg_errors_init, free with _release. */
struct dagi_cfg_errors {
    struct dagi_buf text; /* one error per line, already formatted */
    size_t count;
};

void dagi_cfg_errors_init(struct dagi_cfg_errors *errs);
void dagi_cfg_errors_release(struct dagi_cfg_errors *errs);
/* Appends one error line (no newline in fmt) and counts it; past 200 lines
 * only the count grows.  For checks made after a document is bound (files
 * it names, ids it refers to). */
void dagi_cfg_errors_add(struct dagi_cfg_errors *errs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* For check callbacks: reports an error on `key` (a field name of the record
 * being checked, or NULL for the record itself) at that key's location. */
void dagi_cfg_report(struct dagi_cfg_ctx *ctx, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Loads a YAML file.  On success *out points to a struct of schema->size
 * bytes in `arena` with defaults applied; returns 0.  On failure returns
 * DAGI_EINVAL (validation; errs filled), DAGI_EPARSE (YAML syntax; errs
 * filled with file:line) or DAGI_EIO (cannot read; errs filled). */
int dagi_cfg_load_file(const struct dagi_cfg_schema *schema, const char *path,
                       struct dagi_arena *arena, void **out, struct dagi_cfg_errors *errs);
/* The same from memory; `name` stands for the file name in errors. */
int dagi_cfg_load_yaml(const struct dagi_cfg_schema *schema, const char *name, const char *text,
                       size_t len, struct dagi_arena *arena, void **out,
                       struct dagi_cfg_errors *errs);
/* A document pushed at run time (JSON); errors carry field paths. */
int dagi_cfg_load_json(const struct dagi_cfg_schema *schema, const struct json_t *doc,
                       struct dagi_arena *arena, void **out, struct dagi_cfg_errors *errs);
/* A struct holding only the defaults (as if an empty document was loaded). */
int dagi_cfg_load_defaults(const struct dagi_cfg_schema *schema, struct dagi_arena *arena,
                           void **out, struct dagi_cfg_errors *errs);

/* Sets one scalar by its dotted path ("http.listen") from text, parsed and
 * bounds-checked like YAML.  `origin` names the source in errors
 * ("--listen", "DAGI_HTTP_LISTEN").  Lists of records cannot be set. */
int dagi_cfg_set(const struct dagi_cfg_schema *schema, void *obj, const char *path,
                 const char *value, const char *origin, struct dagi_arena *arena,
                 struct dagi_cfg_errors *errs);
/* Applies environment overrides: for every scalar or string-list field
 * reachable through sections (not inside lists) and without
 * DAGI_CFG_NO_ENV, <prefix>_<PATH> with dots as underscores, upper case
 * (DAGI_HTTP_READ_TIMEOUT).  String lists are comma-separated. */
int dagi_cfg_apply_env(const struct dagi_cfg_schema *schema, void *obj, const char *prefix,
                       char *const *envp, struct dagi_arena *arena, struct dagi_cfg_errors *errs);
/* The environment variable name for a dotted path, into out. */
void dagi_cfg_env_name(const char *prefix, const char *path, char *out, size_t out_len);

/* Markdown reference of the schema: one table per section, with key, type,
 * default, bounds, environment variable and help. */
int dagi_cfg_docs_markdown(const struct dagi_cfg_schema *schema, const char *prefix,
                           struct dagi_buf *out);
/* Plain-text key list for --help. */
int dagi_cfg_help_text(const struct dagi_cfg_schema *schema, const char *prefix,
                       struct dagi_buf *out);

/* Parses a duration or a size the way config values are parsed. */
int dagi_cfg_parse_duration(const char *text, int64_t *ms_out);
int dagi_cfg_parse_size(const char *text, int64_t *bytes_out);

#endif
