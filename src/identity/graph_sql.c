/* The identity graph on the relational store (graph.h, backend "sql"):
 * tables graph_users, graph_teams, graph_projects, graph_members,
 * graph_chats and graph_acl of migration 0007_identity, on SQLite and
 * PostgreSQL alike.
 *
 * Every operation is one transaction: writes run in write transactions
 * (SQLite: the writer token; PostgreSQL: SERIALIZABLE) retried on
 * DAGI_EAGAIN, so an existence check and the insert it guards cannot be
 * split by another writer, and a delete commits with its whole cascade
 * (DAGI_GRAPH_CAP_ATOMIC_CASCADE).  Reads that look twice (does the team
 * exist, then its members) run in a read transaction, one snapshot.
 *
 * The cascades are spelt out as statements rather than left to ON DELETE
 * CASCADE: ACL edges name their ends by reference strings, which a foreign
 * key cannot follow, and spelling out the rest keeps the behaviour the
 * same whatever the connection's foreign-key setting.  The foreign keys
 * stay, as a guard.
 *
 * Keys compare as bytes on both engines (SQLite's BINARY, PostgreSQL's
 * COLLATE "C" on every key column), so pages come in the same order as on
 * any other backend.  Keyset paging: "after" is '' (or INT64_MIN for chat
 * ids) on the first page, which sorts before every key. */
#include "identity/graph_sql_internal.h"

#include "core/mem.h"
#include "store/db.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Tries of a transaction that met a busy database or a serialization
 * failure; between them a short, growing, jittered pause, so that writers
 * that collided do not collide again in lockstep. */
#define WRITE_TRIES 8

int sql_in_tx(void *backend, bool write, tx_fn fn, void *ud, struct dagi_error *err)
{
    struct sql_graph *s = backend;
    for (int attempt = 1;; attempt++) {
        struct dagi_db_conn *c = NULL;
        int rc = dagi_db_acquire(s->db, &c, err);
        if (rc)
            return rc;
        rc = dagi_db_begin(c, write, err);
        if (!rc) {
            rc = fn(c, ud, err);
            if (!rc)
                rc = dagi_db_commit(c, err);
            else
                dagi_db_rollback(c);
        }
        dagi_db_release(c);
        if (rc != DAGI_EAGAIN || attempt == WRITE_TRIES)
            return rc;
        struct timespec pause = {0, (long)(randombytes_uniform(1000000) + 1) * attempt};
        nanosleep(&pause, NULL);
    }
}

/* --- rows --- */

void sql_col_copy(struct dagi_db_rows *r, size_t col, char *out, size_t cap)
{
    size_t len = 0;
    const char *t = dagi_db_col_text(r, col, &len);
    if (!t)
        len = 0;
    if (len >= cap)
        len = cap - 1;
    if (len)
        memcpy(out, t, len);
    out[len] = '\0';
}

char *sql_col_dup(struct dagi_db_rows *r, size_t col, const char *dflt)
{
    size_t len = 0;
    const char *t = dagi_db_col_text(r, col, &len);
    return t ? dagi_xstrndup(t, len) : dagi_xstrdup(dflt);
}

/* Runs a query and calls row(r, item i, ud) for each row, into an array
 * of at most `cap` items.  Returns the count or a negative error. */
int sql_query_each(struct dagi_db_conn *c, const char *sql, const struct dagi_db_value *p, size_t n,
                   size_t cap, void (*row)(struct dagi_db_rows *r, size_t i, void *ud), void *ud,
                   size_t *count, struct dagi_error *err)
{
    struct dagi_db_rows *r = NULL;
    int rc = dagi_db_query(c, sql, p, n, &r, err);
    if (rc)
        return rc;
    size_t i = 0;
    while ((rc = dagi_db_rows_next(r, err)) == 1 && i < cap)
        row(r, i++, ud);
    dagi_db_rows_free(r);
    if (rc < 0)
        return rc;
    *count = i;
    return DAGI_OK;
}

int sql_exists(struct dagi_db_conn *c, const char *sql, const char *id, bool *yes,
               struct dagi_error *err)
{
    struct dagi_db_value p[] = {dagi_db_text(id)};
    struct dagi_db_rows *r = NULL;
    int rc = dagi_db_query(c, sql, p, 1, &r, err);
    if (rc)
        return rc;
    rc = dagi_db_rows_next(r, err);
    dagi_db_rows_free(r);
    if (rc < 0)
        return rc;
    *yes = rc == 1;
    return DAGI_OK;
}

int sql_need(struct dagi_db_conn *c, const char *sql, const char *field, const char *what,
             const char *id, struct dagi_error *err)
{
    bool yes = false;
    int rc = sql_exists(c, sql, id, &yes, err);
    if (!rc && !yes)
        rc = dagi_error_set(err, DAGI_ENOENT, "%s: no such %s '%s'", field, what, id);
    return rc;
}

struct dagi_db_value sql_text_or_null(const char *s)
{
    return s ? dagi_db_text(s) : dagi_db_null();
}

struct dagi_db_value sql_after_text(const struct dagi_graph_page *page)
{
    return dagi_db_text(page->after_set ? page->after_id : "");
}

/* --- lifecycle --- */

static int sql_open(const char *url, struct dagi_db *db, void **backend, struct dagi_error *err)
{
    if (strcmp(url, "sql") != 0)
        return dagi_error_set(err, DAGI_EINVAL,
                              "url: the sql graph takes no options ('sql', not '%.64s')", url);
    if (!db)
        return dagi_error_set(err, DAGI_EINVAL, "url: the sql graph needs the node's store");
    struct sql_graph *s = dagi_xcalloc(1, sizeof(*s));
    s->db = db;
    *backend = s;
    return DAGI_OK;
}

static void sql_close(void *backend)
{
    free(backend);
}

const struct dagi_graph_ops dagi_graph_sql_ops = {
    .name = "sql",
    .scheme = "sql",
    .caps = DAGI_GRAPH_CAP_ATOMIC_CASCADE,
    .open = sql_open,
    .close = sql_close,
    .user_create = sql_user_create,
    .user_get = sql_user_get,
    .user_update = sql_user_update,
    .user_delete = sql_user_delete,
    .user_list = sql_user_list,
    .team_create = sql_team_create,
    .team_get = sql_team_get,
    .team_update = sql_team_update,
    .team_delete = sql_team_delete,
    .team_list = sql_team_list,
    .project_create = sql_project_create,
    .project_get = sql_project_get,
    .project_update = sql_project_update,
    .project_delete = sql_project_delete,
    .project_list = sql_project_list,
    .member_add = sql_member_add,
    .member_remove = sql_member_remove,
    .member_list = sql_member_list,
    .teams_of = sql_teams_of,
    .chat_set = sql_chat_set,
    .chat_get = sql_chat_get,
    .chat_unset = sql_chat_unset,
    .chat_list = sql_chat_list,
    .acl_add = sql_acl_add,
    .acl_remove = sql_acl_remove,
    .acl_check = sql_acl_check,
    .acl_list = sql_acl_list,
};
