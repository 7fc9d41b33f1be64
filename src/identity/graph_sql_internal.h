/* What the relational graph backend's files share (graph_sql.c: the
 * helpers and the ops table; graph_sql_nodes.c: users, teams, projects;
 * graph_sql_edges.c: memberships, chats, ACL edges).  Nothing else
 * includes it. */
#ifndef DAGI_IDENTITY_GRAPH_SQL_INTERNAL_H
#define DAGI_IDENTITY_GRAPH_SQL_INTERNAL_H

#include "identity/graph.h"
#include "store/db.h"

struct sql_graph {
    struct dagi_db *db;
};

typedef int (*tx_fn)(struct dagi_db_conn *c, void *ud, struct dagi_error *err);

/* Runs fn in one transaction on a connection of the backend's store,
 * retrying it whole on DAGI_EAGAIN. */
int sql_in_tx(void *backend, bool write, tx_fn fn, void *ud, struct dagi_error *err);

/* A text column into a buffer of cap bytes (cut to fit), or a copy. */
void sql_col_copy(struct dagi_db_rows *r, size_t col, char *out, size_t cap);
char *sql_col_dup(struct dagi_db_rows *r, size_t col, const char *dflt);
/* Runs a query and calls row(r, i, ud) for each of at most cap rows. */
int sql_query_each(struct dagi_db_conn *c, const char *sql, const struct dagi_db_value *p, size_t n,
                   size_t cap, void (*row)(struct dagi_db_rows *r, size_t i, void *ud), void *ud,
                   size_t *count, struct dagi_error *err);
int sql_exists(struct dagi_db_conn *c, const char *sql, const char *id, bool *yes,
               struct dagi_error *err);
/* DAGI_ENOENT "<field>: no such <what> '<id>'" unless the row exists. */
int sql_need(struct dagi_db_conn *c, const char *sql, const char *field, const char *what,
             const char *id, struct dagi_error *err);
struct dagi_db_value sql_text_or_null(const char *s);
/* The start key of an id list: '' on the first page, before every id. */
struct dagi_db_value sql_after_text(const struct dagi_graph_page *page);

#define USER_EXISTS "SELECT 1 FROM graph_users WHERE id = $1"
#define TEAM_EXISTS "SELECT 1 FROM graph_teams WHERE id = $1"
#define PROJECT_EXISTS "SELECT 1 FROM graph_projects WHERE id = $1"

/* Jobs of the transactions. */
struct get_job {
    const char *id;
    void *out;
};

struct update_job {
    const char *id;
    const struct dagi_graph_patch *p;
    int64_t now_ms;
    void *out;
};

struct list_job {
    const char *scope; /* the team, or NULL */
    const struct dagi_graph_edge_filter *filter;
    const struct dagi_graph_page *page;
    struct dagi_graph_list *out;
};

/* The ops (dagi_graph_sql_ops). */
int sql_user_create(void *b, const struct dagi_graph_user *in, struct dagi_error *err);
int sql_user_get(void *b, const char *id, struct dagi_graph_user *out, struct dagi_error *err);
int sql_user_update(void *b, const char *id, const struct dagi_graph_patch *p, int64_t now_ms,
                    struct dagi_graph_user *out, struct dagi_error *err);
int sql_user_delete(void *b, const char *id, struct dagi_error *err);
int sql_user_list(void *b, const struct dagi_graph_page *page, struct dagi_graph_list *out,
                  struct dagi_error *err);
int sql_team_create(void *b, const struct dagi_graph_team *in, struct dagi_error *err);
int sql_team_get(void *b, const char *id, struct dagi_graph_team *out, struct dagi_error *err);
int sql_team_update(void *b, const char *id, const struct dagi_graph_patch *p, int64_t now_ms,
                    struct dagi_graph_team *out, struct dagi_error *err);
int sql_team_delete(void *b, const char *id, struct dagi_error *err);
int sql_team_list(void *b, const struct dagi_graph_page *page, struct dagi_graph_list *out,
                  struct dagi_error *err);
int sql_project_create(void *b, const struct dagi_graph_project *in, struct dagi_error *err);
int sql_project_get(void *b, const char *id, struct dagi_graph_project *out,
                    struct dagi_error *err);
int sql_project_update(void *b, const char *id, const struct dagi_graph_patch *p, int64_t now_ms,
                       struct dagi_graph_project *out, struct dagi_error *err);
int sql_project_delete(void *b, const char *id, struct dagi_error *err);
int sql_project_list(void *b, const char *team, const struct dagi_graph_page *page,
                     struct dagi_graph_list *out, struct dagi_error *err);
int sql_member_add(void *b, const struct dagi_graph_member *in, struct dagi_error *err);
int sql_member_remove(void *b, const char *team, const char *user, struct dagi_error *err);
int sql_member_list(void *b, const char *team, const struct dagi_graph_page *page,
                    struct dagi_graph_list *out, struct dagi_error *err);
int sql_teams_of(void *b, const char *user, const struct dagi_graph_page *page,
                 struct dagi_graph_list *out, struct dagi_error *err);
int sql_chat_set(void *b, const struct dagi_graph_chat *in, struct dagi_graph_chat *out,
                 bool *created, struct dagi_error *err);
int sql_chat_get(void *b, int64_t chat_id, struct dagi_graph_chat *out, struct dagi_error *err);
int sql_chat_unset(void *b, int64_t chat_id, const char *team, struct dagi_error *err);
int sql_chat_list(void *b, const char *team, const struct dagi_graph_page *page,
                  struct dagi_graph_list *out, struct dagi_error *err);
int sql_acl_add(void *b, const struct dagi_graph_edge *in, struct dagi_error *err);
int sql_acl_remove(void *b, const char *subject, const char *relation, const char *object,
                   struct dagi_error *err);
int sql_acl_check(void *b, const char *subject, const char *relation, const char *object,
                  const char *user, bool *allowed, struct dagi_error *err);
int sql_acl_list(void *b, const struct dagi_graph_edge_filter *f,
                 const struct dagi_graph_page *page, struct dagi_graph_list *out,
                 struct dagi_error *err);

#endif
