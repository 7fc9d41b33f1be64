/* The operations of the identity admin API (identity_routes_internal.h):
 * for each, what it asks the graph on the pool, how it answers, and - for
 * a change - what it leaves in the audit trail and which cached principals
 * it invalidates.  Audit events carry ids and roles only: display names
 * and attributes are the users' data and stay out of the trail. */
#include "identity/identity_routes_internal.h"

#include <stdio.h>
#include <string.h>

/* --- records as the API shows them --- */

static json_t *attrs_json(const char *attrs)
{
    json_t *v = attrs ? json_loads(attrs, 0, NULL) : NULL;
    return json_is_object(v) ? v : (json_decref(v), json_object());
}

static json_t *user_json(const struct dagi_graph_user *u)
{
    char principal[DAGI_GRAPH_REF_MAX + 1];
    dagi_graph_user_principal(u->id, principal);
    return json_pack("{s:s,s:s,s:s,s:o,s:I,s:I}", "id", u->id, "principal", principal, "name",
                     u->name, "attributes", attrs_json(u->attrs), "created_at_ms",
                     (json_int_t)u->created_at_ms, "updated_at_ms", (json_int_t)u->updated_at_ms);
}

static json_t *team_json(const struct dagi_graph_team *t)
{
    return json_pack("{s:s,s:s,s:s,s:o,s:I,s:I}", "id", t->id, "name", t->name, "plan", t->plan,
                     "attributes", attrs_json(t->attrs), "created_at_ms",
                     (json_int_t)t->created_at_ms, "updated_at_ms", (json_int_t)t->updated_at_ms);
}

static json_t *project_json(const struct dagi_graph_project *p)
{
    return json_pack("{s:s,s:s,s:s,s:o,s:I,s:I}", "id", p->id, "team", p->team, "name", p->name,
                     "attributes", attrs_json(p->attrs), "created_at_ms",
                     (json_int_t)p->created_at_ms, "updated_at_ms", (json_int_t)p->updated_at_ms);
}

static json_t *member_json(const struct dagi_graph_member *m)
{
    char principal[DAGI_GRAPH_REF_MAX + 1];
    dagi_graph_user_principal(m->user, principal);
    return json_pack("{s:s,s:s,s:s,s:s,s:I}", "team", m->team, "user", m->user, "principal",
                     principal, "role", dagi_graph_role_name(m->role), "created_at_ms",
                     (json_int_t)m->created_at_ms);
}

static json_t *chat_json(const struct dagi_graph_chat *c)
{
    return json_pack("{s:I,s:s,s:o,s:I,s:I}", "chat_id", (json_int_t)c->chat_id, "team", c->team,
                     "agent", c->agent[0] ? json_string(c->agent) : json_null(), "created_at_ms",
                     (json_int_t)c->created_at_ms, "updated_at_ms", (json_int_t)c->updated_at_ms);
}

static json_t *page_json(const char *member, json_t *items, const struct dagi_graph_list *l)
{
    return json_pack("{s:o,s:o}", member, items, "next_cursor",
                     l->next_cursor[0] ? json_string(l->next_cursor) : json_null());
}

/* --- the operations --- */

static int work_user_list(struct id_job *j)
{
    return dagi_graph_user_list(j->graph, &j->page, &j->list, &j->err);
}
static json_t *answer_user_list(struct id_job *j, int *status)
{
    (void)status;
    json_t *a = json_array();
    for (size_t i = 0; i < j->list.count; i++)
        json_array_append_new(a, user_json(&j->list.users[i]));
    return page_json("users", a, &j->list);
}

static int work_user_create(struct id_job *j)
{
    struct dagi_graph_user_spec s = {j->new_id, j->name, j->attrs};
    return dagi_graph_user_create(j->graph, &s, &j->u, &j->err);
}
static json_t *answer_user(struct id_job *j, int *status)
{
    (void)status;
    return user_json(&j->u);
}
static json_t *answer_user_created(struct id_job *j, int *status)
{
    *status = 201;
    return user_json(&j->u);
}
static void audit_user(struct id_job *j, struct dagi_audit_event *ev, json_t *meta, char *subject)
{
    (void)ev, (void)meta;
    const char *id = j->u.id[0] ? j->u.id : j->id;
    dagi_graph_user_principal(id, subject);
    dagi_identity_cache_invalidate(j->cache, subject);
}

static int work_user_get(struct id_job *j)
{
    return dagi_graph_user_get(j->graph, j->id, &j->u, &j->err);
}

static int work_user_update(struct id_job *j)
{
    struct dagi_graph_patch p = {.name = j->name, .attrs = j->attrs};
    return dagi_graph_user_update(j->graph, j->id, &p, &j->u, &j->err);
}

static int work_user_delete(struct id_job *j)
{
    return dagi_graph_user_delete(j->graph, j->id, &j->err);
}
static json_t *answer_deleted(struct id_job *j, int *status)
{
    (void)status;
    return json_pack("{s:s,s:b}", "id", j->id, "deleted", 1);
}

static int work_user_teams(struct id_job *j)
{
    return dagi_graph_teams_of(j->graph, j->id, &j->page, &j->list, &j->err);
}
static json_t *answer_user_teams(struct id_job *j, int *status)
{
    (void)status;
    json_t *a = json_array();
    for (size_t i = 0; i < j->list.count; i++)
        json_array_append_new(a, member_json(&j->list.members[i]));
    json_t *doc = page_json("teams", a, &j->list);
    json_object_set_new(doc, "user", json_string(j->id));
    return doc;
}

static int work_team_list(struct id_job *j)
{
    return dagi_graph_team_list(j->graph, &j->page, &j->list, &j->err);
}
static json_t *answer_team_list(struct id_job *j, int *status)
{
    (void)status;
    json_t *a = json_array();
    for (size_t i = 0; i < j->list.count; i++)
        json_array_append_new(a, team_json(&j->list.teams[i]));
    return page_json("teams", a, &j->list);
}

static int work_team_create(struct id_job *j)
{
    struct dagi_graph_team_spec s = {j->new_id, j->name, j->plan, j->attrs};
    return dagi_graph_team_create(j->graph, &s, &j->t, &j->err);
}
static json_t *answer_team(struct id_job *j, int *status)
{
    (void)status;
    return team_json(&j->t);
}
static json_t *answer_team_created(struct id_job *j, int *status)
{
    *status = 201;
    return team_json(&j->t);
}
static void audit_team(struct id_job *j, struct dagi_audit_event *ev, json_t *meta, char *subject)
{
    (void)ev;
    snprintf(subject, DAGI_GRAPH_REF_MAX + 1, "team:%s", j->t.id[0] ? j->t.id : j->id);
    if (j->t.plan[0])
        json_object_set_new(meta, "plan", json_string(j->t.plan));
}
static void audit_team_deleted(struct id_job *j, struct dagi_audit_event *ev, json_t *meta,
                               char *subject)
{
    audit_team(j, ev, meta, subject);
    dagi_identity_cache_invalidate(j->cache, NULL); /* every member's teams changed */
}

static int work_team_get(struct id_job *j)
{
    return dagi_graph_team_get(j->graph, j->id, &j->t, &j->err);
}

static int work_team_update(struct id_job *j)
{
    struct dagi_graph_patch p = {.name = j->name, .plan = j->plan, .attrs = j->attrs};
    return dagi_graph_team_update(j->graph, j->id, &p, &j->t, &j->err);
}

static int work_team_delete(struct id_job *j)
{
    return dagi_graph_team_delete(j->graph, j->id, &j->err);
}

static int work_member_list(struct id_job *j)
{
    return dagi_graph_member_list(j->graph, j->id, &j->page, &j->list, &j->err);
}
static json_t *answer_member_list(struct id_job *j, int *status)
{
    (void)status;
    json_t *a = json_array();
    for (size_t i = 0; i < j->list.count; i++)
        json_array_append_new(a, member_json(&j->list.members[i]));
    json_t *doc = page_json("members", a, &j->list);
    json_object_set_new(doc, "team", json_string(j->id));
    return doc;
}

static int work_member_add(struct id_job *j)
{
    return dagi_graph_member_add(j->graph, j->id, j->user, j->role, &j->m, &j->err);
}
static json_t *answer_member_added(struct id_job *j, int *status)
{
    *status = 201;
    return member_json(&j->m);
}
static void audit_member(struct id_job *j, struct dagi_audit_event *ev, json_t *meta, char *subject)
{
    (void)ev;
    char principal[DAGI_GRAPH_REF_MAX + 1];
    char user[DAGI_GRAPH_ID_MAX + 1];
    snprintf(subject, DAGI_GRAPH_REF_MAX + 1, "team:%s", j->id);
    if (dagi_graph_user_id_from(j->user, user))
        return;
    dagi_graph_user_principal(user, principal);
    json_object_set_new(meta, "user", json_string(principal));
    if (j->op->answer == answer_member_added)
        json_object_set_new(meta, "role", json_string(dagi_graph_role_name(j->role)));
    dagi_identity_cache_invalidate(j->cache, principal);
}

static int work_member_remove(struct id_job *j)
{
    return dagi_graph_member_remove(j->graph, j->id, j->user, &j->err);
}
static json_t *answer_member_removed(struct id_job *j, int *status)
{
    (void)status;
    /* path_user made it a user id */
    return json_pack("{s:s,s:s,s:b}", "team", j->id, "user", j->user, "removed", 1);
}

static int work_chat_list(struct id_job *j)
{
    return dagi_graph_chat_list(j->graph, j->id, &j->page, &j->list, &j->err);
}
static json_t *answer_chat_list(struct id_job *j, int *status)
{
    (void)status;
    json_t *a = json_array();
    for (size_t i = 0; i < j->list.count; i++)
        json_array_append_new(a, chat_json(&j->list.chats[i]));
    json_t *doc = page_json("chats", a, &j->list);
    json_object_set_new(doc, "team", json_string(j->id));
    return doc;
}

static int work_chat_set(struct id_job *j)
{
    return dagi_graph_chat_set(j->graph, j->chat_id, j->id, j->agent, &j->chat, &j->created,
                               &j->err);
}
static json_t *answer_chat_set(struct id_job *j, int *status)
{
    *status = j->created ? 201 : 200;
    return chat_json(&j->chat);
}
static void audit_chat(struct id_job *j, struct dagi_audit_event *ev, json_t *meta, char *subject)
{
    (void)ev;
    snprintf(subject, DAGI_GRAPH_REF_MAX + 1, "chat:%lld", (long long)j->chat_id);
    json_object_set_new(meta, "team", json_string(j->id));
    if (j->chat.agent[0])
        json_object_set_new(meta, "agent", json_string(j->chat.agent));
}

static int work_chat_unset(struct id_job *j)
{
    return dagi_graph_chat_unset(j->graph, j->chat_id, j->id, &j->err);
}
static json_t *answer_chat_unset(struct id_job *j, int *status)
{
    (void)status;
    return json_pack("{s:I,s:s,s:b}", "chat_id", (json_int_t)j->chat_id, "team", j->id, "unmapped",
                     1);
}

static int work_project_list(struct id_job *j)
{
    return dagi_graph_project_list(j->graph, j->id, &j->page, &j->list, &j->err);
}
static json_t *answer_project_list(struct id_job *j, int *status)
{
    (void)status;
    json_t *a = json_array();
    for (size_t i = 0; i < j->list.count; i++)
        json_array_append_new(a, project_json(&j->list.projects[i]));
    json_t *doc = page_json("projects", a, &j->list);
    json_object_set_new(doc, "team", json_string(j->id));
    return doc;
}

static int work_project_create(struct id_job *j)
{
    struct dagi_graph_project_spec s = {j->new_id, j->id, j->name, j->attrs};
    return dagi_graph_project_create(j->graph, &s, &j->p, &j->err);
}
static json_t *answer_project_created(struct id_job *j, int *status)
{
    *status = 201;
    return project_json(&j->p);
}
static void audit_project(struct id_job *j, struct dagi_audit_event *ev, json_t *meta,
                          char *subject)
{
    (void)ev;
    snprintf(subject, DAGI_GRAPH_REF_MAX + 1, "project:%s", j->p.id);
    json_object_set_new(meta, "team", json_string(j->id));
}

const struct identity_op
    op_user_list = {work_user_list, answer_user_list, NULL, NULL},
    op_user_create = {work_user_create, answer_user_created, "user_created", audit_user},
    op_user_get = {work_user_get, answer_user, NULL, NULL},
    op_user_update = {work_user_update, answer_user, "user_updated", audit_user},
    op_user_delete = {work_user_delete, answer_deleted, "user_deleted", audit_user},
    op_user_teams = {work_user_teams, answer_user_teams, NULL, NULL},
    op_team_list = {work_team_list, answer_team_list, NULL, NULL},
    op_team_create = {work_team_create, answer_team_created, "team_created", audit_team},
    op_team_get = {work_team_get, answer_team, NULL, NULL},
    op_team_update = {work_team_update, answer_team, "team_updated", audit_team},
    op_team_delete = {work_team_delete, answer_deleted, "team_deleted", audit_team_deleted},
    op_member_list = {work_member_list, answer_member_list, NULL, NULL},
    op_member_add = {work_member_add, answer_member_added, "member_added", audit_member},
    op_member_remove = {work_member_remove, answer_member_removed, "member_removed", audit_member},
    op_chat_list = {work_chat_list, answer_chat_list, NULL, NULL},
    op_chat_set = {work_chat_set, answer_chat_set, "chat_mapped", audit_chat},
    op_chat_unset = {work_chat_unset, answer_chat_unset, "chat_unmapped", audit_chat},
    op_project_list = {work_project_list, answer_project_list, NULL, NULL},
    op_project_create = {work_project_create, answer_project_created, "project_created",
                         audit_project};
