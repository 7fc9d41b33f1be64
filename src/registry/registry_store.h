/* The config registry's versioned store (migration 0008_config_docs): every
 * version of every document, and the revisions that made them current.
 *
 * History is never rewritten.  A change of the set - an import, a push, a
 * rollback, a deletion - is one revision; each document it changes gets the
 * next version of that (kind, name), a rollback included (a new version
 * with an old text).  The current set is the newest version of each
 * document that is not a deletion.
 *
 * Every function blocks: call it on the worker pool (dagi_db_run), with a
 * connection of the node's database. */
#ifndef DAGI_REGISTRY_STORE_H
#define DAGI_REGISTRY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/err.h"
#include "cplane/docset.h"

struct dagi_db_conn;

enum dagi_regstore_action {
    DAGI_REGSTORE_IMPORT,   /* files under config/ at start or on SIGHUP */
    DAGI_REGSTORE_PUSH,     /* a new text through the API */
    DAGI_REGSTORE_ROLLBACK, /* an old version's text as a new version */
    DAGI_REGSTORE_DELETE,   /* a deletion version (prompts) */
};

/* "import", "push", "rollback", "delete". */
const char *dagi_regstore_action_name(enum dagi_regstore_action a);

/* rollback_to: the version before the current one. */
#define DAGI_REGSTORE_PREVIOUS (-1)

/* One document to change.  The meaning follows the revision's action:
 *   IMPORT    text; skipped when it equals the current text, or when the
 *             file has not changed since it was last imported (so a push
 *             through the API survives a restart with the same files)
 *   PUSH      text; skipped when it equals the current text
 *   ROLLBACK  rollback_to (a version, or DAGI_REGSTORE_PREVIOUS): that
 *             version's text (or its deletion); skipped when it equals
 *             the current one
 *   DELETE    nothing; DAGI_ENOENT when the document is absent or deleted */
struct dagi_regstore_change {
    enum dagi_doc_kind kind;
    const char *name;
    const char *text;
    size_t len;
    int64_t rollback_to;
    const char *comment; /* this version's comment; NULL = the revision's */
};

struct dagi_regstore_meta {
    enum dagi_regstore_action action;
    const char *author;
    const char *comment; /* "" or NULL = none */
    int64_t now_ms;
};

/* What became of one change. */
struct dagi_regstore_outcome {
    bool changed;      /* false: skipped, the current version stays */
    int64_t version;   /* the new version, or the current one (0 = none) */
    int64_t restored;  /* ROLLBACK: the version whose text was restored */
    bool deleted;      /* the version is a deletion */
    char checksum[65]; /* of the version's text ("" for a deletion) */
};

/* Checks the would-be set before anything is written (dagi_docset_validate
 * with the node configuration); nonzero refuses with errs filled. */
typedef int (*dagi_regstore_validate_fn)(void *ud, const struct dagi_docset *would_be,
                                         struct dagi_cfg_errors *errs);

struct dagi_regstore_result {
    int64_t revision; /* the new revision; the current one when nothing changed */
    size_t changed;   /* versions written */
    /* the current set after the change (its revision set): what to publish */
    struct dagi_docset set;
};

void dagi_regstore_result_release(struct dagi_regstore_result *r);

/* Applies changes[0..n) as one revision in one write transaction (retried
 * on serialization failures): reads the current set, applies the changes,
 * validates the would-be set (validate may be NULL), writes the versions
 * and the revision.  outcomes[i] (may be NULL) tells what became of
 * changes[i].  When no change is left after skipping, nothing is written
 * and result->changed is 0.  Returns 0; DAGI_EINVAL when validation refused
 * (errs filled, nothing written) or a change is malformed (err set);
 * DAGI_ENOENT for a deletion or rollback of what does not exist; a store
 * error otherwise. */
int dagi_regstore_apply(struct dagi_db_conn *conn, const struct dagi_regstore_meta *meta,
                        const struct dagi_regstore_change *changes, size_t n,
                        dagi_regstore_validate_fn validate, void *ud,
                        struct dagi_regstore_outcome *outcomes, struct dagi_cfg_errors *errs,
                        struct dagi_regstore_result *result, struct dagi_error *err);

/* The current set (versions, authors, times, its revision; 0 when empty). */
int dagi_regstore_current(struct dagi_db_conn *conn, struct dagi_docset *out,
                          struct dagi_error *err);

/* One stored version.  text is NULL unless asked for. */
struct dagi_regstore_version {
    enum dagi_doc_kind kind;
    char name[DAGI_DOC_MAX_NAME + 1];
    int64_t version;
    bool deleted;
    char checksum[65];
    char *author;
    char *comment;
    int64_t created_at_ms;
    int64_t revision;
    enum dagi_regstore_action action;
    int64_t rolled_back_from; /* 0 = not a rollback */
    char *text;
    size_t len;
};

void dagi_regstore_version_release(struct dagi_regstore_version *v);

/* Version `version` of (kind, name), 0 = the newest (a deletion too), with
 * its text.  DAGI_ENOENT when there is no such version. */
int dagi_regstore_get(struct dagi_db_conn *conn, enum dagi_doc_kind kind, const char *name,
                      int64_t version, struct dagi_regstore_version *out, struct dagi_error *err);

/* Up to `limit` versions of (kind, name), newest first, without texts;
 * *out is an array the caller frees with dagi_regstore_versions_free.
 * DAGI_ENOENT when the document never existed. */
int dagi_regstore_history(struct dagi_db_conn *conn, enum dagi_doc_kind kind, const char *name,
                          size_t limit, struct dagi_regstore_version **out, size_t *count,
                          struct dagi_error *err);
void dagi_regstore_versions_free(struct dagi_regstore_version *v, size_t count);

#endif
