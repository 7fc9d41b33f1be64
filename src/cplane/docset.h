/* The control plane's documents (seed 1.2): what the config registry keeps
 * versioned and publishes, and what every data-plane role runs on.
 *
 * A document is (kind, name, text).  Kinds and their names:
 *   agents    "agent_registry.yml"   the agent registry (agents/registry.h)
 *   prompts   "<file>.md"            one per system prompt file
 *   routing   "routing.yml"          global routing rules (routing/rules.h)
 *   policies  "policy.yml"           the policy bundle (authz/authz.h)
 *   quotas    "quotas.yml"           budgets (quota/quota.h)
 *   flags     "flags.yml"            feature flags (cplane/flags.h)
 *   lists     "lists.yml"            allow/block lists (cplane/lists.h)
 *
 * A docset is the current version of every document.  The registry
 * publishes it whole, as one JSON value under one key of the KV bucket, so
 * a change that touches two documents (an agent and its prompt) reaches a
 * reader as one step:
 *
 *   bucket dagi_config, key "current":
 *   {"revision": 7, "published_at_ms": 1765170000000,
 *    "docs": [{"kind": "agents", "name": "agent_registry.yml", "version": 3,
 *              "checksum": "<64 hex: BLAKE2b-256 of text>", "author": "admin",
 *              "created_at_ms": ..., "text": "..."}, ...]}
 *
 * Validation is the same code `dagi config check` runs: a set is valid when
 * every document parses under its kind's schema and the cross-references
 * hold (an agent's prompt file is a prompts document; model ids are the
 * node's swapper models or builtin). */
#ifndef DAGI_CPLANE_DOCSET_H
#define DAGI_CPLANE_DOCSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/err.h"

struct dagi_config;
struct json_t;

#define DAGI_CPLANE_BUCKET "dagi_config"
#define DAGI_CPLANE_KEY "current"
#define DAGI_DOC_MAX_TEXT (1024 * 1024)
#define DAGI_DOC_MAX_NAME 128
#define DAGI_DOCSET_MAX_DOCS 1024

enum dagi_doc_kind {
    DAGI_DOC_AGENTS,
    DAGI_DOC_PROMPTS,
    DAGI_DOC_ROUTING,
    DAGI_DOC_POLICIES,
    DAGI_DOC_QUOTAS,
    DAGI_DOC_FLAGS,
    DAGI_DOC_LISTS,
    DAGI_DOC_KIND_COUNT
};

/* "agents", ...; NULL for an out-of-range kind. */
const char *dagi_doc_kind_name(enum dagi_doc_kind k);
/* 0 and *out, or DAGI_EINVAL for an unknown name. */
int dagi_doc_kind_parse(const char *name, enum dagi_doc_kind *out);
/* A document name is [A-Za-z0-9_.-]{1,128} and not "." or ".."; kinds other
 * than prompts have the one fixed name above. */
bool dagi_doc_name_valid(enum dagi_doc_kind k, const char *name);
/* The fixed name of a single-document kind; NULL for prompts. */
const char *dagi_doc_fixed_name(enum dagi_doc_kind k);

struct dagi_doc {
    enum dagi_doc_kind kind;
    char *name;
    char *text;
    size_t len;
    int64_t version; /* 0 = not yet stored */
    char checksum[65];
    char *author;
    int64_t created_at_ms;
};

struct dagi_docset {
    int64_t revision;
    int64_t published_at_ms;
    struct dagi_doc *docs;
    size_t count, cap;
};

void dagi_docset_init(struct dagi_docset *s);
void dagi_docset_release(struct dagi_docset *s);
/* A deep copy. */
void dagi_docset_copy(struct dagi_docset *dst, const struct dagi_docset *src);
/* The document, or NULL. */
const struct dagi_doc *dagi_docset_find(const struct dagi_docset *s, enum dagi_doc_kind k,
                                        const char *name);
/* Adds or replaces (kind, name) with a copy of text; the checksum is
 * computed, version/author/time copied from the arguments. */
int dagi_docset_put(struct dagi_docset *s, enum dagi_doc_kind k, const char *name,
                    const char *text, size_t len, int64_t version, const char *author,
                    int64_t created_at_ms, struct dagi_error *err);
/* Removes (kind, name); false if absent. */
bool dagi_docset_remove(struct dagi_docset *s, enum dagi_doc_kind k, const char *name);

/* BLAKE2b-256 of the text, 64 hex + NUL. */
void dagi_doc_checksum(const char *text, size_t len, char out[65]);

/* The KV value above; the caller frees with free(). */
char *dagi_docset_to_json(const struct dagi_docset *s, size_t *len_out);
/* Parses a KV value; DAGI_EPARSE / DAGI_EINVAL / DAGI_ETOOBIG with err set.
 * A checksum that does not match its text is refused. */
int dagi_docset_from_json(const char *data, size_t len, struct dagi_docset *out,
                          struct dagi_error *err);

/* The documents the node configuration names, read from disk: router.registry,
 * router.routing, every *.md under router.prompts_dir, registry.policies,
 * quotas, flags, lists (unset = absent).  Versions are 0. */
int dagi_docset_from_config(const struct dagi_config *c, struct dagi_docset *out,
                            struct dagi_error *err);

/* Validates the whole set against the node configuration (model ids) with
 * every error in errs: names are "<kind>/<name>:<line>: ...". */
int dagi_docset_validate(const struct dagi_docset *s, const struct dagi_config *c,
                         struct dagi_cfg_errors *errs);

#endif
