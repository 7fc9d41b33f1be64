/* The config registry's versioned store (registry_store.h).
 *
 * Version and revision numbers are MAX + 1 read inside the write
 * transaction.  SQLite's single writer makes that safe by itself; on
 * PostgreSQL two writers may read the same MAX, and the second then fails
 * on the primary key (or with a serialization failure): both are retried
 * from the start, reading the set again, so the validation always sees the
 * set that the change is really applied to. */
#include "registry/registry_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "store/db.h"

#define APPLY_ATTEMPTS 8

static const char *const action_names[] = {"import", "push", "rollback", "delete"};

const char *dagi_regstore_action_name(enum dagi_regstore_action a)
{
    return (unsigned)a < DAGI_ARRAY_LEN(action_names) ? action_names[a] : "push";
}

static enum dagi_regstore_action action_parse(const char *s)
{
    for (unsigned i = 0; s && i < DAGI_ARRAY_LEN(action_names); i++)
        if (strcmp(s, action_names[i]) == 0)
            return (enum dagi_regstore_action)i;
    return DAGI_REGSTORE_PUSH;
}

void dagi_regstore_result_release(struct dagi_regstore_result *r)
{
    dagi_docset_release(&r->set);
    memset(r, 0, sizeof(*r));
}

void dagi_regstore_version_release(struct dagi_regstore_version *v)
{
    free(v->author);
    free(v->comment);
    free(v->text);
    memset(v, 0, sizeof(*v));
}

void dagi_regstore_versions_free(struct dagi_regstore_version *v, size_t count)
{
    for (size_t i = 0; v && i < count; i++)
        dagi_regstore_version_release(&v[i]);
    free(v);
}

static char *col_strdup(struct dagi_db_rows *rows, size_t col)
{
    size_t len = 0;
    const char *s = dagi_db_col_text(rows, col, &len);
    return dagi_xstrndup(s ? s : "", s ? len : 0);
}

/* --- the current set --- */

static const char current_sql[] =
    "SELECT v.kind, v.name, v.version, v.text, v.author, v.created_at_ms "
    "FROM config_doc_versions v "
    "JOIN (SELECT kind, name, MAX(version) AS version FROM config_doc_versions "
    "      GROUP BY kind, name) c "
    "ON c.kind = v.kind AND c.name = v.name AND c.version = v.version "
    "WHERE v.deleted = 0 ORDER BY v.kind, v.name";

static int query_int(struct dagi_db_conn *conn, const char *sql, const struct dagi_db_value *p,
                     size_t n, int64_t *out, struct dagi_error *err)
{
    struct dagi_db_rows *rows = NULL;
    int rc = dagi_db_query(conn, sql, p, n, &rows, err);
    if (rc < 0)
        return rc;
    rc = dagi_db_rows_next(rows, err);
    *out = rc == 1 && !dagi_db_col_null(rows, 0) ? dagi_db_col_int(rows, 0) : 0;
    dagi_db_rows_free(rows);
    return rc < 0 ? rc : DAGI_OK;
}

/* The current set, inside the caller's transaction. */
static int read_current(struct dagi_db_conn *conn, struct dagi_docset *out, struct dagi_error *err)
{
    struct dagi_docset set;
    dagi_docset_init(&set);
    int rc =
        query_int(conn, "SELECT MAX(revision) FROM config_revisions", NULL, 0, &set.revision, err);
    struct dagi_db_rows *rows = NULL;
    if (!rc)
        rc = dagi_db_query(conn, current_sql, NULL, 0, &rows, err);
    while (!rc && (rc = dagi_db_rows_next(rows, err)) == 1) {
        enum dagi_doc_kind k;
        size_t len = 0;
        const char *kind = dagi_db_col_text(rows, 0, NULL), *name = dagi_db_col_text(rows, 1, NULL);
        const char *text = dagi_db_col_text(rows, 3, &len);
        if (dagi_doc_kind_parse(kind, &k)) {
            rc = dagi_error_set(err, DAGI_EINTERNAL, "config_doc_versions: unknown kind %s",
                                kind ? kind : "NULL");
            break;
        }
        rc = dagi_docset_put(&set, k, name, text ? text : "", text ? len : 0,
                             dagi_db_col_int(rows, 2), dagi_db_col_text(rows, 4, NULL),
                             dagi_db_col_int(rows, 5), err);
    }
    if (rows)
        dagi_db_rows_free(rows);
    if (rc < 0) {
        dagi_docset_release(&set);
        return rc;
    }
    *out = set;
    return DAGI_OK;
}

int dagi_regstore_current(struct dagi_db_conn *conn, struct dagi_docset *out,
                          struct dagi_error *err)
{
    int rc = dagi_db_begin(conn, false, err);
    if (rc)
        return rc;
    rc = read_current(conn, out, err);
    dagi_db_rollback(conn); /* read only: nothing to commit */
    return rc;
}

/* --- one version --- */

#define VERSION_COLUMNS                                                                            \
    "kind, name, version, deleted, checksum, author, comment, created_at_ms, revision, action, "   \
    "rolled_back_from"

static void version_from_row(struct dagi_db_rows *rows, struct dagi_regstore_version *v)
{
    memset(v, 0, sizeof(*v));
    enum dagi_doc_kind k = DAGI_DOC_AGENTS;
    dagi_doc_kind_parse(dagi_db_col_text(rows, 0, NULL), &k);
    v->kind = k;
    const char *name = dagi_db_col_text(rows, 1, NULL);
    snprintf(v->name, sizeof(v->name), "%s", name ? name : "");
    v->version = dagi_db_col_int(rows, 2);
    v->deleted = dagi_db_col_int(rows, 3) != 0;
    const char *sum = dagi_db_col_text(rows, 4, NULL);
    snprintf(v->checksum, sizeof(v->checksum), "%s", sum ? sum : "");
    v->author = col_strdup(rows, 5);
    v->comment = col_strdup(rows, 6);
    v->created_at_ms = dagi_db_col_int(rows, 7);
    v->revision = dagi_db_col_int(rows, 8);
    v->action = action_parse(dagi_db_col_text(rows, 9, NULL));
    v->rolled_back_from = dagi_db_col_null(rows, 10) ? 0 : dagi_db_col_int(rows, 10);
}

int dagi_regstore_get(struct dagi_db_conn *conn, enum dagi_doc_kind kind, const char *name,
                      int64_t version, struct dagi_regstore_version *out, struct dagi_error *err)
{
    const char *k = dagi_doc_kind_name(kind);
    if (!k || !dagi_doc_name_valid(kind, name))
        return dagi_error_set(err, DAGI_EINVAL, "not a document name");
    struct dagi_db_value p[] = {dagi_db_text(k), dagi_db_text(name), dagi_db_int(version)};
    struct dagi_db_rows *rows = NULL;
    int rc = version > 0
                 ? dagi_db_query(conn,
                                 "SELECT " VERSION_COLUMNS ", text FROM config_doc_versions "
                                 "WHERE kind = $1 AND name = $2 AND version = $3",
                                 p, 3, &rows, err)
                 : dagi_db_query(conn,
                                 "SELECT " VERSION_COLUMNS ", text FROM config_doc_versions "
                                 "WHERE kind = $1 AND name = $2 ORDER BY version DESC LIMIT 1",
                                 p, 2, &rows, err);
    if (rc < 0)
        return rc;
    rc = dagi_db_rows_next(rows, err);
    if (rc == 1) {
        version_from_row(rows, out);
        size_t len = 0;
        const char *text = dagi_db_col_text(rows, 11, &len);
        out->text = dagi_xstrndup(text ? text : "", text ? len : 0);
        out->len = text ? len : 0;
        rc = DAGI_OK;
    } else if (rc == 0) {
        rc = version > 0 ? dagi_error_set(err, DAGI_ENOENT, "%s/%s has no version %lld", k, name,
                                          (long long)version)
                         : dagi_error_set(err, DAGI_ENOENT, "%s/%s does not exist", k, name);
    }
    dagi_db_rows_free(rows);
    return rc;
}

int dagi_regstore_history(struct dagi_db_conn *conn, enum dagi_doc_kind kind, const char *name,
                          size_t limit, struct dagi_regstore_version **out, size_t *count,
                          struct dagi_error *err)
{
    const char *k = dagi_doc_kind_name(kind);
    if (!k || !dagi_doc_name_valid(kind, name) || limit == 0)
        return dagi_error_set(err, DAGI_EINVAL, "not a document name");
    struct dagi_db_value p[] = {dagi_db_text(k), dagi_db_text(name), dagi_db_int((int64_t)limit)};
    struct dagi_db_rows *rows = NULL;
    int rc = dagi_db_query(conn,
                           "SELECT " VERSION_COLUMNS " FROM config_doc_versions "
                           "WHERE kind = $1 AND name = $2 ORDER BY version DESC LIMIT $3",
                           p, 3, &rows, err);
    if (rc < 0)
        return rc;
    struct dagi_regstore_version *v = NULL;
    size_t n = 0, cap = 0;
    while ((rc = dagi_db_rows_next(rows, err)) == 1) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            v = dagi_xrealloc(v, cap * sizeof(*v));
        }
        version_from_row(rows, &v[n++]);
    }
    dagi_db_rows_free(rows);
    if (rc == 0 && n == 0)
        rc = dagi_error_set(err, DAGI_ENOENT, "%s/%s does not exist", k, name);
    if (rc < 0) {
        dagi_regstore_versions_free(v, n);
        return rc;
    }
    *out = v;
    *count = n;
    return DAGI_OK;
}

/* --- applying a change --- */

/* What one change will write, decided inside the transaction. */
struct planned {
    bool write;
    bool deleted;
    int64_t version;
    int64_t restored;
    const char *text; /* borrowed: the change's or `old`'s */
    size_t len;
    char checksum[65];
    struct dagi_regstore_version old; /* a rollback's source */
};

/* The newest version number of (kind, name), deletions included, and the
 * checksum of the newest imported version ("" if never imported). */
static int doc_state(struct dagi_db_conn *conn, const char *kind, const char *name, int64_t *newest,
                     char imported[65], struct dagi_error *err)
{
    struct dagi_db_value p[] = {dagi_db_text(kind), dagi_db_text(name)};
    struct dagi_db_rows *rows = NULL;
    int rc = dagi_db_query(conn,
                           "SELECT MAX(version), (SELECT checksum FROM config_doc_versions "
                           "WHERE kind = $1 AND name = $2 AND action = 'import' "
                           "ORDER BY version DESC LIMIT 1) "
                           "FROM config_doc_versions WHERE kind = $1 AND name = $2",
                           p, 2, &rows, err);
    if (rc < 0)
        return rc;
    *newest = 0;
    imported[0] = '\0';
    rc = dagi_db_rows_next(rows, err);
    if (rc == 1) {
        *newest = dagi_db_col_null(rows, 0) ? 0 : dagi_db_col_int(rows, 0);
        const char *sum = dagi_db_col_text(rows, 1, NULL);
        snprintf(imported, 65, "%s", sum ? sum : "");
        rc = DAGI_OK;
    }
    dagi_db_rows_free(rows);
    return rc < 0 ? rc : DAGI_OK;
}

/* Decides what changes[i] writes and applies it to `set` (the would-be
 * set).  Returns 0 (p->write false when skipped) or an error. */
static int plan_one(struct dagi_db_conn *conn, const struct dagi_regstore_meta *meta,
                    const struct dagi_regstore_change *c, struct dagi_docset *set,
                    struct planned *p, struct dagi_error *err)
{
    const char *kind = dagi_doc_kind_name(c->kind);
    if (!kind || !dagi_doc_name_valid(c->kind, c->name))
        return dagi_error_set(err, DAGI_EINVAL, "%s/%.*s: not a document name", kind ? kind : "?",
                              DAGI_DOC_MAX_NAME, c->name ? c->name : "");
    int64_t newest;
    char imported[65];
    int rc = doc_state(conn, kind, c->name, &newest, imported, err);
    if (rc)
        return rc;
    const struct dagi_doc *cur = dagi_docset_find(set, c->kind, c->name);
    p->version = newest + 1;
    switch (meta->action) {
    case DAGI_REGSTORE_IMPORT:
    case DAGI_REGSTORE_PUSH:
        if (!c->text && c->len)
            return dagi_error_set(err, DAGI_EINVAL, "%s/%s: no text", kind, c->name);
        p->text = c->text ? c->text : "";
        p->len = c->len;
        break;
    case DAGI_REGSTORE_ROLLBACK: {
        int64_t to = c->rollback_to == DAGI_REGSTORE_PREVIOUS ? newest - 1 : c->rollback_to;
        if (to < 1 || to > newest)
            return to < 1 && newest > 0
                       ? dagi_error_set(err, DAGI_ENOENT, "%s/%s has no version before %lld", kind,
                                        c->name, (long long)newest)
                       : dagi_error_set(err, DAGI_ENOENT, "%s/%s has no version %lld", kind,
                                        c->name, (long long)to);
        if ((rc = dagi_regstore_get(conn, c->kind, c->name, to, &p->old, err)))
            return rc;
        p->restored = to;
        p->deleted = p->old.deleted;
        p->text = p->old.text;
        p->len = p->old.len;
        break;
    }
    case DAGI_REGSTORE_DELETE:
        if (!cur)
            return dagi_error_set(err, DAGI_ENOENT, "%s/%s does not exist", kind, c->name);
        p->deleted = true;
        break;
    }
    if (p->deleted) {
        p->text = "";
        p->len = 0;
        p->checksum[0] = '\0';
        p->write = cur != NULL; /* a rollback to a deletion of what is gone: nothing to do */
        if (p->write)
            dagi_docset_remove(set, c->kind, c->name);
    } else {
        dagi_doc_checksum(p->text, p->len, p->checksum);
        p->write = !(cur && strcmp(cur->checksum, p->checksum) == 0);
        /* An unchanged file keeps what the API made of its document since. */
        if (meta->action == DAGI_REGSTORE_IMPORT && strcmp(imported, p->checksum) == 0)
            p->write = false;
        if (p->write && (rc = dagi_docset_put(set, c->kind, c->name, p->text, p->len, p->version,
                                              meta->author, meta->now_ms, err)))
            return rc;
    }
    if (!p->write)
        p->version = cur ? cur->version : 0;
    return DAGI_OK;
}

static int insert_version(struct dagi_db_conn *conn, const struct dagi_regstore_meta *meta,
                          const struct dagi_regstore_change *c, const struct planned *p,
                          int64_t revision, struct dagi_error *err)
{
    const char *comment = c->comment ? c->comment : meta->comment ? meta->comment : "";
    struct dagi_db_value v[] = {
        dagi_db_text(dagi_doc_kind_name(c->kind)),
        dagi_db_text(c->name),
        dagi_db_int(p->version),
        dagi_db_int(p->deleted ? 1 : 0),
        dagi_db_textn(p->text, p->len),
        dagi_db_text(p->checksum),
        dagi_db_text(meta->author),
        dagi_db_text(comment),
        dagi_db_int(meta->now_ms),
        dagi_db_int(revision),
        dagi_db_text(dagi_regstore_action_name(meta->action)),
        p->restored ? dagi_db_int(p->restored) : dagi_db_null(),
    };
    return dagi_db_exec(conn,
                        "INSERT INTO config_doc_versions (kind, name, version, deleted, text, "
                        "checksum, author, comment, created_at_ms, revision, action, "
                        "rolled_back_from) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
                        "$12)",
                        v, DAGI_ARRAY_LEN(v), NULL, err);
}

static int apply_once(struct dagi_db_conn *conn, const struct dagi_regstore_meta *meta,
                      const struct dagi_regstore_change *changes, size_t n,
                      dagi_regstore_validate_fn validate, void *ud,
                      struct dagi_regstore_outcome *outcomes, struct dagi_cfg_errors *errs,
                      struct dagi_regstore_result *result, struct dagi_error *err)
{
    struct dagi_docset set;
    dagi_docset_init(&set);
    struct planned *plan = dagi_xcalloc(n ? n : 1, sizeof(*plan));
    size_t writes = 0;
    int rc = dagi_db_begin(conn, true, err);
    if (rc)
        goto out;
    /* One writer at a time, as SQLite's BEGIN IMMEDIATE gives: on
     * PostgreSQL a SERIALIZABLE transaction takes its snapshot at its first
     * read, so the lock comes first and concurrent pushes wait for each
     * other instead of failing into retries (a lock takes no snapshot). */
    if (dagi_db_conn_dialect(conn) == DAGI_DB_POSTGRES &&
        (rc = dagi_db_exec_script(conn, "LOCK TABLE config_revisions IN EXCLUSIVE MODE", err)))
        goto out;
    if ((rc = read_current(conn, &set, err)))
        goto out;
    for (size_t i = 0; i < n && !rc; i++) {
        for (size_t j = 0; j < i; j++)
            if (changes[j].kind == changes[i].kind && changes[i].name && changes[j].name &&
                strcmp(changes[j].name, changes[i].name) == 0) {
                rc = dagi_error_set(err, DAGI_EINVAL, "%s/%s: changed twice in one revision",
                                    dagi_doc_kind_name(changes[i].kind), changes[i].name);
                goto out;
            }
        rc = plan_one(conn, meta, &changes[i], &set, &plan[i], err);
        writes += !rc && plan[i].write;
    }
    if (rc)
        goto out;
    int64_t revision = set.revision;
    if (writes) {
        if (validate && validate(ud, &set, errs)) {
            rc = dagi_error_set(err, DAGI_EINVAL, "the documents are invalid");
            goto out;
        }
        revision++;
        struct dagi_db_value r[] = {
            dagi_db_int(revision), dagi_db_text(dagi_regstore_action_name(meta->action)),
            dagi_db_text(meta->author), dagi_db_text(meta->comment ? meta->comment : ""),
            dagi_db_int(meta->now_ms)};
        rc = dagi_db_exec(conn,
                          "INSERT INTO config_revisions (revision, action, author, comment, "
                          "created_at_ms) VALUES ($1, $2, $3, $4, $5)",
                          r, DAGI_ARRAY_LEN(r), NULL, err);
        for (size_t i = 0; i < n && !rc; i++)
            if (plan[i].write)
                rc = insert_version(conn, meta, &changes[i], &plan[i], revision, err);
        if (!rc)
            rc = dagi_db_commit(conn, err);
        if (rc)
            goto out;
    }
    set.revision = revision;
    for (size_t i = 0; outcomes && i < n; i++) {
        struct dagi_regstore_outcome *o = &outcomes[i];
        memset(o, 0, sizeof(*o));
        o->changed = plan[i].write;
        o->version = plan[i].version;
        o->restored = plan[i].restored;
        o->deleted = plan[i].deleted && plan[i].write;
        snprintf(o->checksum, sizeof(o->checksum), "%s", plan[i].checksum);
    }
    result->revision = revision;
    result->changed = writes;
    result->set = set;
    dagi_docset_init(&set);
out:
    dagi_db_rollback(conn); /* a no-op after the commit */
    for (size_t i = 0; i < n; i++)
        dagi_regstore_version_release(&plan[i].old);
    free(plan);
    dagi_docset_release(&set);
    return rc;
}

int dagi_regstore_apply(struct dagi_db_conn *conn, const struct dagi_regstore_meta *meta,
                        const struct dagi_regstore_change *changes, size_t n,
                        dagi_regstore_validate_fn validate, void *ud,
                        struct dagi_regstore_outcome *outcomes, struct dagi_cfg_errors *errs,
                        struct dagi_regstore_result *result, struct dagi_error *err)
{
    if (!meta || !meta->author || (n && !changes))
        return dagi_error_set(err, DAGI_EINVAL, "a change needs an author");
    memset(result, 0, sizeof(*result));
    int rc = DAGI_EAGAIN;
    for (int attempt = 0; attempt < APPLY_ATTEMPTS; attempt++) {
        rc = apply_once(conn, meta, changes, n, validate, ud, outcomes, errs, result, err);
        /* EEXIST: another writer took the same version or revision number */
        if (rc != DAGI_EAGAIN && rc != DAGI_EEXIST)
            break;
    }
    return rc;
}
