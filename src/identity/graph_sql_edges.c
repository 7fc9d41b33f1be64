/* The relational graph backend: memberships, Telegram chats and ACL
 * edges (graph_sql.c says how transactions, paging and cascades work). */
#include "identity/graph_sql_internal.h"

#include "core/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- membership --- */

#define MEMBER_COLUMNS "team_id, user_id, role, created_at_ms"

static void member_row(struct dagi_db_rows *r, size_t i, void *ud)
{
    struct dagi_graph_member *m = (struct dagi_graph_member *)ud + i;
    char role[16];
    sql_col_copy(r, 0, m->team, sizeof(m->team));
    sql_col_copy(r, 1, m->user, sizeof(m->user));
    sql_col_copy(r, 2, role, sizeof(role));
    if (dagi_graph_role_parse(role, &m->role))
        m->role = DAGI_GRAPH_MEMBER; /* the column's CHECK allows no other */
    m->created_at_ms = dagi_db_col_int(r, 3);
}

static int member_add_tx(struct dagi_db_conn *c, void *ud, struct dagi_error *err)
{
    const struct dagi_graph_member *m = ud;
    int rc = sql_need(c, TEAM_EXISTS, "team", "team", m->team, err);
    if (!rc)
        rc = sql_need(c, USER_EXISTS, "user", "user", m->user, err);
    if (rc)
        return rc;
    struct dagi_db_value p[] = {dagi_db_text(m->team), dagi_db_text(m->user),
                                dagi_db_text(dagi_graph_role_name(m->role)),
                                dagi_db_int(m->created_at_ms)};
    rc = dagi_db_exec(c,
                      "INSERT INTO graph_members (team_id, user_id, role, created_at_ms) VALUES "
                      "($1, $2, $3, $4)",
                      p, 4, NULL, err);
    if (rc == DAGI_EEXIST)
        rc = dagi_error_set(err, DAGI_EEXIST, "user: '%s' is already a member of team '%s'",
                            m->user, m->team);
    return rc;
}

int sql_member_add(void *b, const struct dagi_graph_member *in, struct dagi_error *err)
{
    return sql_in_tx(b, true, member_add_tx, (void *)in, err);
}

struct pair_job {
    const char *team, *user;
};

static int member_remove_tx(struct dagi_db_conn *c, void *ud, struct dagi_error *err)
{
    struct pair_job *j = ud;
    int rc = sql_need(c, TEAM_EXISTS, "team", "team", j->team, err);
    if (rc)
        return rc;
    struct dagi_db_value p[] = {dagi_db_text(j->team), dagi_db_text(j->user)};
    int64_t n = 0;
    rc = dagi_db_exec(c, "DELETE FROM graph_members WHERE team_id = $1 AND user_id = $2", p, 2, &n,
                      err);
    if (!rc && n == 0)
        rc = dagi_error_set(err, DAGI_ENOENT, "user: '%s' is not a member of team '%s'", j->user,
                            j->team);
    return rc;
}

int sql_member_remove(void *b, const char *team, const char *user, struct dagi_error *err)
{
    struct pair_job j = {team, user};
    return sql_in_tx(b, true, member_remove_tx, &j, err);
}

static int member_list_tx(struct dagi_db_conn *c, void *ud, struct dagi_error *err)
{
    struct list_job *j = ud;
    dagi_graph_list_release(j->out); /* a retried transaction reads again */
    int rc = sql_need(c, TEAM_EXISTS, "team", "team", j->scope, err);
    if (rc)
        return rc;
    struct dagi_db_value p[] = {dagi_db_text(j->scope), sql_after_text(j->page),
                                dagi_db_int((int64_t)j->page->fetch)};
    j->out->members = dagi_xcalloc(j->page->fetch, sizeof(*j->out->members));
    return sql_query_each(c,
                          "SELECT " MEMBER_COLUMNS " FROM graph_members WHERE team_id = $1 AND "
                          "user_id > $2 ORDER BY user_id LIMIT $3",
                          p, 3, j->page->fetch, member_row, j->out->members, &j->out->count, err);
}

int sql_member_list(void *b, const char *team, const struct dagi_graph_page *page,
                    struct dagi_graph_list *out, struct dagi_error *err)
{
    struct list_job j = {.scope = team, .page = page, .out = out};
    return sql_in_tx(b, false, member_list_tx, &j, err);
}

static int teams_of_tx(struct dagi_db_conn *c, void *ud, struct dagi_error *err)
{
    struct list_job *j = ud;
    dagi_graph_list_release(j->out); /* a retried transaction reads again */
    int rc = sql_need(c, USER_EXISTS, "user", "user", j->scope, err);
    if (rc)
        return rc;
    struct dagi_db_value p[] = {dagi_db_text(j->scope), sql_after_text(j->page),
                                dagi_db_int((int64_t)j->page->fetch)};
    j->out->members = dagi_xcalloc(j->page->fetch, sizeof(*j->out->members));
    return sql_query_each(c,
                          "SELECT " MEMBER_COLUMNS " FROM graph_members WHERE user_id = $1 AND "
                          "team_id > $2 ORDER BY team_id LIMIT $3",
                          p, 3, j->page->fetch, member_row, j->out->members, &j->out->count, err);
}

int sql_teams_of(void *b, const char *user, const struct dagi_graph_page *page,
                 struct dagi_graph_list *out, struct dagi_error *err)
{
    struct list_job j = {.scope = user, .page = page, .out = out};
    return sql_in_tx(b, false, teams_of_tx, &j, err);
}

/* --- chats --- */

#define CHAT_COLUMNS "chat_id, team_id, agent, created_at_ms, updated_at_ms"

static void chat_row(struct dagi_db_rows *r, size_t i, void *ud)
{
    struct dagi_graph_chat *ch = (struct dagi_graph_chat *)ud + i;
    ch->chat_id = dagi_db_col_int(r, 0);
    sql_col_copy(r, 1, ch->team, sizeof(ch->team));
    sql_col_copy(r, 2, ch->agent, sizeof(ch->agent));
    ch->created_at_ms = dagi_db_col_int(r, 3);
    ch->updated_at_ms = dagi_db_col_int(r, 4);
}

static int chat_read(struct dagi_db_conn *c, int64_t chat_id, struct dagi_graph_chat *out,
                     bool *found, struct dagi_error *err)
{
    struct dagi_db_value p[] = {dagi_db_int(chat_id)};
    size_t n = 0;
    int rc = sql_query_each(c, "SELECT " CHAT_COLUMNS " FROM graph_chats WHERE chat_id = $1", p, 1,
                            1, chat_row, out, &n, err);
    if (!rc)
        *found = n == 1;
    return rc;
}

struct chat_set_job {
    const struct dagi_graph_chat *in;
    struct dagi_graph_chat *out;
    bool created;
};

static int chat_set_tx(struct dagi_db_conn *c, void *ud, struct dagi_error *err)
{
    struct chat_set_job *j = ud;
    const struct dagi_graph_chat *in = j->in;
    struct dagi_graph_chat old = {0};
    bool found = false;
    int rc = sql_need(c, TEAM_EXISTS, "team", "team", in->team, err);
    if (rc || (rc = chat_read(c, in->chat_id, &old, &found, err)))
        return rc;
    if (found && strcmp(old.team, in->team) != 0)
        return dagi_error_set(err, DAGI_EEXIST, "chat_id: chat %lld is mapped to team '%s'",
                              (long long)in->chat_id, old.team);
    struct dagi_db_value agent = in->agent[0] ? dagi_db_text(in->agent) : dagi_db_null();
    if (found) {
        struct dagi_db_value p[] = {dagi_db_int(in->chat_id), agent,
                                    dagi_db_int(in->updated_at_ms)};
        rc = dagi_db_exec(
            c, "UPDATE graph_chats SET agent = $2, updated_at_ms = $3 WHERE chat_id = $1", p, 3,
            NULL, err);
        *j->out = old;
        snprintf(j->out->agent, sizeof(j->out->agent), "%s", in->agent);
        j->out->updated_at_ms = in->updated_at_ms;
        return rc;
    }
    struct dagi_db_value p[] = {dagi_db_int(in->chat_id), dagi_db_text(in->team), agent,
                                dagi_db_int(in->created_at_ms)};
    rc = dagi_db_exec(c,
                      "INSERT INTO graph_chats (chat_id, team_id, agent, created_at_ms, "
                      "updated_at_ms) VALUES ($1, $2, $3, $4, $4)",
                      p, 4, NULL, err);
    if (rc == DAGI_EEXIST)
        rc = dagi_error_set(err, DAGI_EEXIST, "chat_id: chat %lld is mapped already",
                            (long long)in->chat_id);
    *j->out = *in;
    j->created = true;
    return rc;
}

int sql_chat_set(void *b, const struct dagi_graph_chat *in, struct dagi_graph_chat *out,
                 bool *created, struct dagi_error *err)
{
    struct dagi_graph_chat stored = {0};
    struct chat_set_job j = {in, &stored, false};
    int rc = sql_in_tx(b, true, chat_set_tx, &j, err);
    if (!rc) {
        *out = stored;
        *created = j.created;
    }
    return rc;
}

struct chat_job {
    int64_t chat_id;
    const char *team;
    struct dagi_graph_chat *out;
};

static int chat_get_tx(struct dagi_db_conn *c, void *ud, struct dagi_error *err)
{
    struct chat_job *j = ud;
    bool found = false;
    int rc = chat_read(c, j->chat_id, j->out, &found, err);
    if (!rc && !found)
        rc = dagi_error_set(err, DAGI_ENOENT, "chat_id: chat %lld is not mapped",
                            (long long)j->chat_id);
    return rc;
}

int sql_chat_get(void *b, int64_t chat_id, struct dagi_graph_chat *out, struct dagi_error *err)
{
    struct dagi_graph_chat ch = {0};
    struct chat_job j = {chat_id, NULL, &ch};
    int rc = sql_in_tx(b, false, chat_get_tx, &j, err);
    if (!rc)
        *out = ch;
    return rc;
}

static int chat_unset_tx(struct dagi_db_conn *c, void *ud, struct dagi_error *err)
{
    struct chat_job *j = ud;
    int64_t n = 0;
    int rc;
    if (j->team) {
        struct dagi_db_value p[] = {dagi_db_int(j->chat_id), dagi_db_text(j->team)};
        rc = dagi_db_exec(c, "DELETE FROM graph_chats WHERE chat_id = $1 AND team_id = $2", p, 2,
                          &n, err);
    } else {
        struct dagi_db_value p[] = {dagi_db_int(j->chat_id)};
        rc = dagi_db_exec(c, "DELETE FROM graph_chats WHERE chat_id = $1", p, 1, &n, err);
    }
    if (!rc && n == 0)
        rc = dagi_error_set(err, DAGI_ENOENT, "chat_id: chat %lld is not mapped%s%s%s",
                            (long long)j->chat_id, j->team ? " to team '" : "",
                            j->team ? j->team : "", j->team ? "'" : "");
    return rc;
}

int sql_chat_unset(void *b, int64_t chat_id, const char *team, struct dagi_error *err)
{
    struct chat_job j = {chat_id, team, NULL};
    return sql_in_tx(b, true, chat_unset_tx, &j, err);
}

static int chat_list_tx(struct dagi_db_conn *c, void *ud, struct dagi_error *err)
{
    struct list_job *j = ud;
    dagi_graph_list_release(j->out); /* a retried transaction reads again */
    struct dagi_db_value after =
        dagi_db_int(j->page->after_set ? j->page->after_chat_id : INT64_MIN);
    struct dagi_db_value limit = dagi_db_int((int64_t)j->page->fetch);
    j->out->chats = dagi_xcalloc(j->page->fetch, sizeof(*j->out->chats));
    if (!j->scope) {
        struct dagi_db_value p[] = {after, limit};
        return sql_query_each(c,
                              "SELECT " CHAT_COLUMNS
                              " FROM graph_chats WHERE chat_id > $1 ORDER BY "
                              "chat_id LIMIT $2",
                              p, 2, j->page->fetch, chat_row, j->out->chats, &j->out->count, err);
    }
    int rc = sql_need(c, TEAM_EXISTS, "team", "team", j->scope, err);
    if (rc)
        return rc;
    struct dagi_db_value p[] = {dagi_db_text(j->scope), after, limit};
    return sql_query_each(c,
                          "SELECT " CHAT_COLUMNS
                          " FROM graph_chats WHERE team_id = $1 AND chat_id > "
                          "$2 ORDER BY chat_id LIMIT $3",
                          p, 3, j->page->fetch, chat_row, j->out->chats, &j->out->count, err);
}

int sql_chat_list(void *b, const char *team, const struct dagi_graph_page *page,
                  struct dagi_graph_list *out, struct dagi_error *err)
{
    struct list_job j = {.scope = team, .page = page, .out = out};
    return sql_in_tx(b, false, chat_list_tx, &j, err);
}

/* --- ACL edges --- */

#define EDGE_COLUMNS "subject, relation, object, created_at_ms"

static void edge_row(struct dagi_db_rows *r, size_t i, void *ud)
{
    struct dagi_graph_edge *e = (struct dagi_graph_edge *)ud + i;
    sql_col_copy(r, 0, e->subject, sizeof(e->subject));
    sql_col_copy(r, 1, e->relation, sizeof(e->relation));
    sql_col_copy(r, 2, e->object, sizeof(e->object));
    e->created_at_ms = dagi_db_col_int(r, 3);
}

/* An end of an edge that names a node of this graph must exist. */
static int ref_must_exist(struct dagi_db_conn *c, const char *field, const char *ref,
                          struct dagi_error *err)
{
    enum dagi_graph_ref_kind kind;
    const char *id;
    if (dagi_graph_ref_parse(ref, &kind, &id))
        return dagi_error_set(err, DAGI_EINVAL, "%s: not a reference", field);
    switch (kind) {
    case DAGI_GRAPH_REF_USER:
        return sql_need(c, USER_EXISTS, field, "user", id, err);
    case DAGI_GRAPH_REF_TEAM:
        return sql_need(c, TEAM_EXISTS, field, "team", id, err);
    case DAGI_GRAPH_REF_PROJECT:
        return sql_need(c, PROJECT_EXISTS, field, "project", id, err);
    case DAGI_GRAPH_REF_FOREIGN:
        break;
    }
    return DAGI_OK;
}

static int acl_add_tx(struct dagi_db_conn *c, void *ud, struct dagi_error *err)
{
    const struct dagi_graph_edge *e = ud;
    int rc = ref_must_exist(c, "subject", e->subject, err);
    if (!rc)
        rc = ref_must_exist(c, "object", e->object, err);
    if (rc)
        return rc;
    struct dagi_db_value p[] = {dagi_db_text(e->subject), dagi_db_text(e->relation),
                                dagi_db_text(e->object), dagi_db_int(e->created_at_ms)};
    rc = dagi_db_exec(c,
                      "INSERT INTO graph_acl (subject, relation, object, created_at_ms) VALUES "
                      "($1, $2, $3, $4)",
                      p, 4, NULL, err);
    if (rc == DAGI_EEXIST)
        rc = dagi_error_set(err, DAGI_EEXIST, "edge: %s -%s-> %s exists", e->subject, e->relation,
                            e->object);
    return rc;
}

int sql_acl_add(void *b, const struct dagi_graph_edge *in, struct dagi_error *err)
{
    return sql_in_tx(b, true, acl_add_tx, (void *)in, err);
}

static int acl_remove_tx(struct dagi_db_conn *c, void *ud, struct dagi_error *err)
{
    const struct dagi_graph_edge *e = ud;
    struct dagi_db_value p[] = {dagi_db_text(e->subject), dagi_db_text(e->relation),
                                dagi_db_text(e->object)};
    int64_t n = 0;
    int rc = dagi_db_exec(c,
                          "DELETE FROM graph_acl WHERE subject = $1 AND relation = $2 AND object "
                          "= $3",
                          p, 3, &n, err);
    if (!rc && n == 0)
        rc = dagi_error_set(err, DAGI_ENOENT, "edge: no edge %s -%s-> %s", e->subject, e->relation,
                            e->object);
    return rc;
}

int sql_acl_remove(void *b, const char *subject, const char *relation, const char *object,
                   struct dagi_error *err)
{
    struct dagi_graph_edge e = {0};
    snprintf(e.subject, sizeof(e.subject), "%s", subject);
    snprintf(e.relation, sizeof(e.relation), "%s", relation);
    snprintf(e.object, sizeof(e.object), "%s", object);
    return sql_in_tx(b, true, acl_remove_tx, &e, err);
}

struct check_job {
    const char *subject, *relation, *object, *user;
    bool allowed;
};

static int acl_check_tx(struct dagi_db_conn *c, void *ud, struct dagi_error *err)
{
    struct check_job *j = ud;
    struct dagi_db_rows *r = NULL;
    int rc;
    if (j->user) {
        struct dagi_db_value p[] = {dagi_db_text(j->subject), dagi_db_text(j->relation),
                                    dagi_db_text(j->object), dagi_db_text(j->user)};
        rc = dagi_db_query(c,
                           "SELECT 1 FROM graph_acl WHERE relation = $2 AND object = $3 AND "
                           "(subject = $1 OR subject IN (SELECT 'team:' || team_id FROM "
                           "graph_members WHERE user_id = $4)) LIMIT 1",
                           p, 4, &r, err);
    } else {
        struct dagi_db_value p[] = {dagi_db_text(j->subject), dagi_db_text(j->relation),
                                    dagi_db_text(j->object)};
        rc = dagi_db_query(c,
                           "SELECT 1 FROM graph_acl WHERE subject = $1 AND relation = $2 AND "
                           "object = $3",
                           p, 3, &r, err);
    }
    if (rc)
        return rc;
    rc = dagi_db_rows_next(r, err);
    dagi_db_rows_free(r);
    if (rc < 0)
        return rc;
    j->allowed = rc == 1;
    return DAGI_OK;
}

int sql_acl_check(void *b, const char *subject, const char *relation, const char *object,
                  const char *user, bool *allowed, struct dagi_error *err)
{
    struct check_job j = {subject, relation, object, user, false};
    int rc = sql_in_tx(b, false, acl_check_tx, &j, err);
    if (!rc)
        *allowed = j.allowed;
    return rc;
}

static int acl_list_tx(struct dagi_db_conn *c, void *ud, struct dagi_error *err)
{
    struct list_job *j = ud;
    dagi_graph_list_release(j->out); /* a retried transaction reads again */
    const struct dagi_graph_page *pg = j->page;
    const char *s = j->filter->subject, *o = j->filter->object;
    /* one statement per filter, each served by an index */
    static const char *const sql[] = {
        "SELECT " EDGE_COLUMNS " FROM graph_acl WHERE (subject, relation, object) > ($1, $2, $3) "
        "ORDER BY subject, relation, object LIMIT $4",
        "SELECT " EDGE_COLUMNS " FROM graph_acl WHERE subject = $5 AND (subject, relation, "
        "object) > ($1, $2, $3) ORDER BY subject, relation, object LIMIT $4",
        "SELECT " EDGE_COLUMNS " FROM graph_acl WHERE object = $5 AND (subject, relation, object) "
        "> ($1, $2, $3) ORDER BY subject, relation, object LIMIT $4",
        "SELECT " EDGE_COLUMNS " FROM graph_acl WHERE subject = $5 AND object = $6 AND (subject, "
        "relation, object) > ($1, $2, $3) ORDER BY subject, relation, object LIMIT $4",
    };
    struct dagi_db_value p[6] = {
        dagi_db_text(pg->after_set ? pg->after_subject : ""),
        dagi_db_text(pg->after_set ? pg->after_relation : ""),
        dagi_db_text(pg->after_set ? pg->after_object : ""),
        dagi_db_int((int64_t)pg->fetch),
    };
    size_t n = 4, which = 0;
    if (s) {
        p[n++] = dagi_db_text(s);
        which = 1;
    }
    if (o) {
        p[n++] = dagi_db_text(o);
        which = s ? 3 : 2;
    }
    j->out->edges = dagi_xcalloc(pg->fetch, sizeof(*j->out->edges));
    return sql_query_each(c, sql[which], p, n, pg->fetch, edge_row, j->out->edges, &j->out->count,
                          err);
}

int sql_acl_list(void *b, const struct dagi_graph_edge_filter *f,
                 const struct dagi_graph_page *page, struct dagi_graph_list *out,
                 struct dagi_error *err)
{
    struct list_job j = {.filter = f, .page = page, .out = out};
    return sql_in_tx(b, false, acl_list_tx, &j, err);
}
