/* The document tree the configuration engine binds from (internal to
 * config*.c; nothing outside src/core/config*.c should include this).
 *
 * A YAML text or a jansson value becomes a small tree of map / sequence /
 * scalar / null nodes that remembers the line of every key and value and
 * whether a scalar was quoted, so the binder can say `dagi.yml:12: http.port:
 * ...` and can tell the string "8080" from the integer 8080.
 *
 * The builders refuse what a configuration never needs and an attacker would
 * love: anchors and aliases (billion laughs), more than one document,
 * duplicate keys, nesting deeper than DAGI_CFG_DOC_MAX_DEPTH, texts over
 * DAGI_CFG_DOC_MAX_BYTES, more than DAGI_CFG_DOC_MAX_NODES values, keys that
 * are not strings and NUL bytes inside scalars.
 *
 * Ownership: a doc owns its own arena (not the caller's), so the tree is
 * thrown away in one go by dagi_cfg_doc_free() once the values are bound. */
#ifndef DAGI_CONFIG_DOC_H
#define DAGI_CONFIG_DOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define DAGI_CFG_DOC_MAX_BYTES ((size_t)4 << 20)
#define DAGI_CFG_DOC_MAX_DEPTH 64
#define DAGI_CFG_DOC_MAX_NODES 262144
#define DAGI_CFG_DOC_MAX_KEY 1024

enum dagi_cfg_node_kind {
    DAGI_CFG_NODE_NULL, /* `~`, `null`, an empty value, JSON null */
    DAGI_CFG_NODE_SCALAR,
    DAGI_CFG_NODE_MAP,
    DAGI_CFG_NODE_SEQ,
};

struct dagi_cfg_node {
    enum dagi_cfg_node_kind kind;
    unsigned line;     /* 1-based; 0 for JSON, which has no lines */
    bool quoted;       /* SCALAR: written quoted (or a JSON string), so always a string */
    const char *text;  /* SCALAR: NUL-terminated, no NUL inside */
    size_t len;        /* SCALAR: strlen(text) */
    const char *key;   /* when this node is a mapping value: its key */
    unsigned key_line; /* ... and the key's line */
    size_t index;      /* when this node is a sequence item: its position */
    /* MAP and SEQ: children in document order; MAP children carry `key`. */
    struct dagi_cfg_node *first, *last, *next;
    size_t count;
};

struct dagi_cfg_doc {
    struct dagi_arena *arena;
    struct dagi_cfg_node *root; /* NULL for an empty document */
};

/* Builds a tree from YAML.  `name` prefixes errors (`name:line: reason`).
 * Returns 0 and sets *out, or DAGI_EPARSE with the reasons in errs. */
int dagi_cfg_doc_from_yaml(const char *name, const char *text, size_t len,
                           struct dagi_cfg_doc **out, struct dagi_cfg_errors *errs);
/* Builds a tree from a jansson value; errors carry no file or line. */
int dagi_cfg_doc_from_json(const struct json_t *json, struct dagi_cfg_doc **out,
                           struct dagi_cfg_errors *errs);
void dagi_cfg_doc_free(struct dagi_cfg_doc *doc);

/* The first child of a map with that key, or NULL. */
const struct dagi_cfg_node *dagi_cfg_node_get(const struct dagi_cfg_node *map, const char *key);

/* --- shared by config.c and config_docs.c (in config_scalar.c) --- */

/* "string", "integer", "duration", ... for docs and help. */
const char *dagi_cfg_type_name(enum dagi_cfg_type type);
/* Human forms used in messages and docs: "20 GB", "1536 bytes", "5m", "250ms". */
void dagi_cfg_format_size(int64_t bytes, char *out, size_t out_len);
void dagi_cfg_format_duration(int64_t ms, char *out, size_t out_len);
/* A bound written for a human: integral values without a fraction. */
void dagi_cfg_format_number(double v, char *out, size_t out_len);

/* --- config_scalar.c, for config.c --- */

/* A value as shown in a message: quoted, escaped and cut short (out holds
 * the result, which is returned), so one error stays one line. */
const char *dagi_cfg_quote(char out[static 100], const char *s, size_t len);
/* Decimal int64 with an optional sign; *overflow tells "too big" from
 * "not a number". */
bool dagi_cfg_parse_int(const char *t, int64_t *out, bool *overflow);
/* host:port, or [host]:port for IPv6; a decimal port up to 65535. */
bool dagi_cfg_valid_address(const char *s);
/* Appends f's enum values as "a, b, c". */
void dagi_cfg_enum_list(const struct dagi_cfg_field *f, struct dagi_buf *out);
/* Levenshtein distance; SIZE_MAX when either string is over 64 bytes. */
size_t dagi_cfg_edit_distance(const char *a, const char *b);

#endif
