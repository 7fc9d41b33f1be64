/* The relational graph backend: users, teams and projects (graph_sql.c
 * says how transactions, paging and cascades work). */
#include "identity/graph_sql_internal.h"

#include "core/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- users --- */

#define USER_COLUMNS "id, name, attrs, created_at_ms, updated_at_ms"

static void user_row(struct dagi_db_rows *r, size_t i, void *ud)
{
    struct dagi_graph_user *u = (struct dagi_graph_user *)ud + i;
    sql_col_copy(r, 0, u->id, sizeof(u->id));
    sql_col_copy(r, 1, u->name, sizeof(u->name));
    u->attrs = sql_col_dup(r, 2, "{}");
    u->created_at_ms = dagi_db_col_int(r, 3);
    u->updated_at_ms = dagi_db_col_int(r, 4);
}

static int user_create_tx(struct dagi_db_conn *c, void *ud, struct dagi_error *err)
{
    const struct dagi_graph_user *u = ud;
    struct dagi_db_value p[] = {dagi_db_text(u->id), dagi_db_text(u->name), dagi_db_text(u->attrs),
                                dagi_db_int(u->created_at_ms)};
    int rc = dagi_db_exec(c,
                          "INSERT INTO graph_users (id, name, attrs, created_at_ms, "
                          "updated_at_ms) VALUES ($1, $2, $3, $4, $4)",
                          p, 4, NULL, err);
    if (rc == DAGI_EEXIST)
        rc = dagi_error_set(err, DAGI_EEXIST, "id: user '%s' exists", u->id);
    return rc;
}

int sql_user_create(void *b, const struct dagi_graph_user *in, struct dagi_error *err)
{
    return sql_in_tx(b, true, user_create_tx, (void *)in, err);
}

static int user_get_tx(struct dagi_db_conn *c, void *ud, struct dagi_error *err)
{
    struct get_job *j = ud;
    struct dagi_db_value p[] = {dagi_db_text(j->id)};
    size_t n = 0;
    dagi_graph_user_release(j->out); /* a retried transaction reads again */
    int rc = sql_query_each(c, "SELECT " USER_COLUMNS " FROM graph_users WHERE id = $1", p, 1, 1,
                            user_row, j->out, &n, err);
    if (!rc && n == 0)
        rc = dagi_error_set(err, DAGI_ENOENT, "id: no such user '%s'", j->id);
    return rc;
}

int sql_user_get(void *b, const char *id, struct dagi_graph_user *out, struct dagi_error *err)
{
    struct dagi_graph_user u = {0};
    struct get_job j = {id, &u};
    int rc = sql_in_tx(b, false, user_get_tx, &j, err);
    if (rc)
        dagi_graph_user_release(&u);
    else
        *out = u;
    return rc;
}

static int user_update_tx(struct dagi_db_conn *c, void *ud, struct dagi_error *err)
{
    struct update_job *j = ud;
    struct dagi_db_value p[] = {dagi_db_text(j->id), sql_text_or_null(j->p->name),
                                sql_text_or_null(j->p->attrs), dagi_db_int(j->now_ms)};
    int64_t n = 0;
    int rc = dagi_db_exec(c,
                          "UPDATE graph_users SET name = COALESCE($2, name), attrs = "
                          "COALESCE($3, attrs), updated_at_ms = $4 WHERE id = $1",
                          p, 4, &n, err);
    if (!rc && n == 0)
        return dagi_error_set(err, DAGI_ENOENT, "id: no such user '%s'", j->id);
    struct get_job g = {j->id, j->out};
    return rc ? rc : user_get_tx(c, &g, err);
}

int sql_user_update(void *b, const char *id, const struct dagi_graph_patch *p, int64_t now_ms,
                    struct dagi_graph_user *out, struct dagi_error *err)
{
    struct dagi_graph_user u = {0};
    struct update_job j = {id, p, now_ms, &u};
    int rc = sql_in_tx(b, true, user_update_tx, &j, err);
    if (rc)
        dagi_graph_user_release(&u);
    else
        *out = u;
    return rc;
}

static int user_delete_tx(struct dagi_db_conn *c, void *ud, struct dagi_error *err)
{
    const char *id = ud;
    char principal[DAGI_GRAPH_REF_MAX + 1];
    dagi_graph_user_principal(id, principal);
    struct dagi_db_value pp[] = {dagi_db_text(principal)};
    struct dagi_db_value pi[] = {dagi_db_text(id)};
    int64_t n = 0;
    int rc = dagi_db_exec(c, "DELETE FROM graph_acl WHERE subject = $1 OR object = $1", pp, 1, NULL,
                          err);
    if (!rc)
        rc = dagi_db_exec(c, "DELETE FROM graph_members WHERE user_id = $1", pi, 1, NULL, err);
    if (!rc)
        rc = dagi_db_exec(c, "DELETE FROM graph_users WHERE id = $1", pi, 1, &n, err);
    if (!rc && n == 0)
        rc = dagi_error_set(err, DAGI_ENOENT, "id: no such user '%s'", id);
    return rc;
}

int sql_user_delete(void *b, const char *id, struct dagi_error *err)
{
    return sql_in_tx(b, true, user_delete_tx, (void *)id, err);
}

static int user_list_tx(struct dagi_db_conn *c, void *ud, struct dagi_error *err)
{
    struct list_job *j = ud;
    dagi_graph_list_release(j->out); /* a retried transaction reads again */
    struct dagi_db_value p[] = {sql_after_text(j->page), dagi_db_int((int64_t)j->page->fetch)};
    j->out->users = dagi_xcalloc(j->page->fetch, sizeof(*j->out->users));
    return sql_query_each(c,
                          "SELECT " USER_COLUMNS " FROM graph_users WHERE id > $1 ORDER BY id "
                          "LIMIT $2",
                          p, 2, j->page->fetch, user_row, j->out->users, &j->out->count, err);
}

int sql_user_list(void *b, const struct dagi_graph_page *page, struct dagi_graph_list *out,
                  struct dagi_error *err)
{
    struct list_job j = {.page = page, .out = out};
    return sql_in_tx(b, false, user_list_tx, &j, err);
}

/* --- teams --- */

#define TEAM_COLUMNS "id, name, plan, attrs, created_at_ms, updated_at_ms"

static void team_row(struct dagi_db_rows *r, size_t i, void *ud)
{
    struct dagi_graph_team *t = (struct dagi_graph_team *)ud + i;
    sql_col_copy(r, 0, t->id, sizeof(t->id));
    sql_col_copy(r, 1, t->name, sizeof(t->name));
    sql_col_copy(r, 2, t->plan, sizeof(t->plan));
    t->attrs = sql_col_dup(r, 3, "{}");
    t->created_at_ms = dagi_db_col_int(r, 4);
    t->updated_at_ms = dagi_db_col_int(r, 5);
}

static int team_create_tx(struct dagi_db_conn *c, void *ud, struct dagi_error *err)
{
    const struct dagi_graph_team *t = ud;
    struct dagi_db_value p[] = {dagi_db_text(t->id), dagi_db_text(t->name), dagi_db_text(t->plan),
                                dagi_db_text(t->attrs), dagi_db_int(t->created_at_ms)};
    int rc = dagi_db_exec(c,
                          "INSERT INTO graph_teams (id, name, plan, attrs, created_at_ms, "
                          "updated_at_ms) VALUES ($1, $2, $3, $4, $5, $5)",
                          p, 5, NULL, err);
    if (rc == DAGI_EEXIST)
        rc = dagi_error_set(err, DAGI_EEXIST, "id: team '%s' exists", t->id);
    return rc;
}

int sql_team_create(void *b, const struct dagi_graph_team *in, struct dagi_error *err)
{
    return sql_in_tx(b, true, team_create_tx, (void *)in, err);
}

static int team_get_tx(struct dagi_db_conn *c, void *ud, struct dagi_error *err)
{
    struct get_job *j = ud;
    struct dagi_db_value p[] = {dagi_db_text(j->id)};
    size_t n = 0;
    dagi_graph_team_release(j->out);
    int rc = sql_query_each(c, "SELECT " TEAM_COLUMNS " FROM graph_teams WHERE id = $1", p, 1, 1,
                            team_row, j->out, &n, err);
    if (!rc && n == 0)
        rc = dagi_error_set(err, DAGI_ENOENT, "id: no such team '%s'", j->id);
    return rc;
}

int sql_team_get(void *b, const char *id, struct dagi_graph_team *out, struct dagi_error *err)
{
    struct dagi_graph_team t = {0};
    struct get_job j = {id, &t};
    int rc = sql_in_tx(b, false, team_get_tx, &j, err);
    if (rc)
        dagi_graph_team_release(&t);
    else
        *out = t;
    return rc;
}

static int team_update_tx(struct dagi_db_conn *c, void *ud, struct dagi_error *err)
{
    struct update_job *j = ud;
    struct dagi_db_value p[] = {dagi_db_text(j->id), sql_text_or_null(j->p->name),
                                sql_text_or_null(j->p->plan), sql_text_or_null(j->p->attrs),
                                dagi_db_int(j->now_ms)};
    int64_t n = 0;
    int rc = dagi_db_exec(c,
                          "UPDATE graph_teams SET name = COALESCE($2, name), plan = COALESCE($3, "
                          "plan), attrs = COALESCE($4, attrs), updated_at_ms = $5 WHERE id = $1",
                          p, 5, &n, err);
    if (!rc && n == 0)
        return dagi_error_set(err, DAGI_ENOENT, "id: no such team '%s'", j->id);
    struct get_job g = {j->id, j->out};
    return rc ? rc : team_get_tx(c, &g, err);
}

int sql_team_update(void *b, const char *id, const struct dagi_graph_patch *p, int64_t now_ms,
                    struct dagi_graph_team *out, struct dagi_error *err)
{
    struct dagi_graph_team t = {0};
    struct update_job j = {id, p, now_ms, &t};
    int rc = sql_in_tx(b, true, team_update_tx, &j, err);
    if (rc)
        dagi_graph_team_release(&t);
    else
        *out = t;
    return rc;
}

/* A team goes with its projects, memberships, chats and every ACL edge to
 * or from it or one of its projects. */
static int team_delete_tx(struct dagi_db_conn *c, void *ud, struct dagi_error *err)
{
    const char *id = ud;
    char ref[DAGI_GRAPH_REF_MAX + 1];
    snprintf(ref, sizeof(ref), "team:%s", id);
    struct dagi_db_value pi[] = {dagi_db_text(id)};
    struct dagi_db_value pr[] = {dagi_db_text(ref)};
    static const char *const by_team[] = {
        "DELETE FROM graph_acl WHERE subject IN (SELECT 'project:' || id FROM graph_projects "
        "WHERE team_id = $1) OR object IN (SELECT 'project:' || id FROM graph_projects WHERE "
        "team_id = $1)",
        "DELETE FROM graph_chats WHERE team_id = $1",
        "DELETE FROM graph_members WHERE team_id = $1",
        "DELETE FROM graph_projects WHERE team_id = $1",
    };
    int rc = dagi_db_exec(c, "DELETE FROM graph_acl WHERE subject = $1 OR object = $1", pr, 1, NULL,
                          err);
    for (size_t i = 0; !rc && i < DAGI_ARRAY_LEN(by_team); i++)
        rc = dagi_db_exec(c, by_team[i], pi, 1, NULL, err);
    int64_t n = 0;
    if (!rc)
        rc = dagi_db_exec(c, "DELETE FROM graph_teams WHERE id = $1", pi, 1, &n, err);
    if (!rc && n == 0)
        rc = dagi_error_set(err, DAGI_ENOENT, "id: no such team '%s'", id);
    return rc;
}

int sql_team_delete(void *b, const char *id, struct dagi_error *err)
{
    return sql_in_tx(b, true, team_delete_tx, (void *)id, err);
}

static int team_list_tx(struct dagi_db_conn *c, void *ud, struct dagi_error *err)
{
    struct list_job *j = ud;
    dagi_graph_list_release(j->out); /* a retried transaction reads again */
    struct dagi_db_value p[] = {sql_after_text(j->page), dagi_db_int((int64_t)j->page->fetch)};
    j->out->teams = dagi_xcalloc(j->page->fetch, sizeof(*j->out->teams));
    return sql_query_each(c,
                          "SELECT " TEAM_COLUMNS " FROM graph_teams WHERE id > $1 ORDER BY id "
                          "LIMIT $2",
                          p, 2, j->page->fetch, team_row, j->out->teams, &j->out->count, err);
}

int sql_team_list(void *b, const struct dagi_graph_page *page, struct dagi_graph_list *out,
                  struct dagi_error *err)
{
    struct list_job j = {.page = page, .out = out};
    return sql_in_tx(b, false, team_list_tx, &j, err);
}

/* --- projects --- */

#define PROJECT_COLUMNS "id, team_id, name, attrs, created_at_ms, updated_at_ms"

static void project_row(struct dagi_db_rows *r, size_t i, void *ud)
{
    struct dagi_graph_project *p = (struct dagi_graph_project *)ud + i;
    sql_col_copy(r, 0, p->id, sizeof(p->id));
    sql_col_copy(r, 1, p->team, sizeof(p->team));
    sql_col_copy(r, 2, p->name, sizeof(p->name));
    p->attrs = sql_col_dup(r, 3, "{}");
    p->created_at_ms = dagi_db_col_int(r, 4);
    p->updated_at_ms = dagi_db_col_int(r, 5);
}

static int project_create_tx(struct dagi_db_conn *c, void *ud, struct dagi_error *err)
{
    const struct dagi_graph_project *pr = ud;
    int rc = sql_need(c, TEAM_EXISTS, "team", "team", pr->team, err);
    if (rc)
        return rc;
    struct dagi_db_value p[] = {dagi_db_text(pr->id), dagi_db_text(pr->team),
                                dagi_db_text(pr->name), dagi_db_text(pr->attrs),
                                dagi_db_int(pr->created_at_ms)};
    rc = dagi_db_exec(c,
                      "INSERT INTO graph_projects (id, team_id, name, attrs, created_at_ms, "
                      "updated_at_ms) VALUES ($1, $2, $3, $4, $5, $5)",
                      p, 5, NULL, err);
    if (rc == DAGI_EEXIST)
        rc = dagi_error_set(err, DAGI_EEXIST, "id: project '%s' exists", pr->id);
    return rc;
}

int sql_project_create(void *b, const struct dagi_graph_project *in, struct dagi_error *err)
{
    return sql_in_tx(b, true, project_create_tx, (void *)in, err);
}

static int project_get_tx(struct dagi_db_conn *c, void *ud, struct dagi_error *err)
{
    struct get_job *j = ud;
    struct dagi_db_value p[] = {dagi_db_text(j->id)};
    size_t n = 0;
    dagi_graph_project_release(j->out);
    int rc = sql_query_each(c, "SELECT " PROJECT_COLUMNS " FROM graph_projects WHERE id = $1", p, 1,
                            1, project_row, j->out, &n, err);
    if (!rc && n == 0)
        rc = dagi_error_set(err, DAGI_ENOENT, "id: no such project '%s'", j->id);
    return rc;
}

int sql_project_get(void *b, const char *id, struct dagi_graph_project *out, struct dagi_error *err)
{
    struct dagi_graph_project p = {0};
    struct get_job j = {id, &p};
    int rc = sql_in_tx(b, false, project_get_tx, &j, err);
    if (rc)
        dagi_graph_project_release(&p);
    else
        *out = p;
    return rc;
}

static int project_update_tx(struct dagi_db_conn *c, void *ud, struct dagi_error *err)
{
    struct update_job *j = ud;
    struct dagi_db_value p[] = {dagi_db_text(j->id), sql_text_or_null(j->p->name),
                                sql_text_or_null(j->p->attrs), dagi_db_int(j->now_ms)};
    int64_t n = 0;
    int rc = dagi_db_exec(c,
                          "UPDATE graph_projects SET name = COALESCE($2, name), attrs = "
                          "COALESCE($3, attrs), updated_at_ms = $4 WHERE id = $1",
                          p, 4, &n, err);
    if (!rc && n == 0)
        return dagi_error_set(err, DAGI_ENOENT, "id: no such project '%s'", j->id);
    struct get_job g = {j->id, j->out};
    return rc ? rc : project_get_tx(c, &g, err);
}

int sql_project_update(void *b, const char *id, const struct dagi_graph_patch *p, int64_t now_ms,
                       struct dagi_graph_project *out, struct dagi_error *err)
{
    struct dagi_graph_project pr = {0};
    struct update_job j = {id, p, now_ms, &pr};
    int rc = sql_in_tx(b, true, project_update_tx, &j, err);
    if (rc)
        dagi_graph_project_release(&pr);
    else
        *out = pr;
    return rc;
}

static int project_delete_tx(struct dagi_db_conn *c, void *ud, struct dagi_error *err)
{
    const char *id = ud;
    char ref[DAGI_GRAPH_REF_MAX + 1];
    snprintf(ref, sizeof(ref), "project:%s", id);
    struct dagi_db_value pr[] = {dagi_db_text(ref)};
    struct dagi_db_value pi[] = {dagi_db_text(id)};
    int64_t n = 0;
    int rc = dagi_db_exec(c, "DELETE FROM graph_acl WHERE subject = $1 OR object = $1", pr, 1, NULL,
                          err);
    if (!rc)
        rc = dagi_db_exec(c, "DELETE FROM graph_projects WHERE id = $1", pi, 1, &n, err);
    if (!rc && n == 0)
        rc = dagi_error_set(err, DAGI_ENOENT, "id: no such project '%s'", id);
    return rc;
}

int sql_project_delete(void *b, const char *id, struct dagi_error *err)
{
    return sql_in_tx(b, true, project_delete_tx, (void *)id, err);
}

static int project_list_tx(struct dagi_db_conn *c, void *ud, struct dagi_error *err)
{
    struct list_job *j = ud;
    dagi_graph_list_release(j->out); /* a retried transaction reads again */
    j->out->projects = dagi_xcalloc(j->page->fetch, sizeof(*j->out->projects));
    if (!j->scope) {
        struct dagi_db_value p[] = {sql_after_text(j->page), dagi_db_int((int64_t)j->page->fetch)};
        return sql_query_each(c,
                              "SELECT " PROJECT_COLUMNS " FROM graph_projects WHERE id > $1 ORDER "
                              "BY id LIMIT $2",
                              p, 2, j->page->fetch, project_row, j->out->projects, &j->out->count,
                              err);
    }
    int rc = sql_need(c, TEAM_EXISTS, "team", "team", j->scope, err);
    if (rc)
        return rc;
    struct dagi_db_value p[] = {dagi_db_text(j->scope), sql_after_text(j->page),
                                dagi_db_int((int64_t)j->page->fetch)};
    return sql_query_each(c,
                          "SELECT " PROJECT_COLUMNS
                          " FROM graph_projects WHERE team_id = $1 AND id "
                          "> $2 ORDER BY id LIMIT $3",
                          p, 3, j->page->fetch, project_row, j->out->projects, &j->out->count, err);
}

int sql_project_list(void *b, const char *team, const struct dagi_graph_page *page,
                     struct dagi_graph_list *out, struct dagi_error *err)
{
    struct list_job j = {.scope = team, .page = page, .out = out};
    return sql_in_tx(b, false, project_list_tx, &j, err);
}
