/* The identity graph's front door (graph.h): opening by URL, and the
 * public functions, which check and normalise every input (graph_check.c),
 * read the business clock and do the paging before and after a backend.
 *
 * Doing this once, here, is what lets a backend be only storage - and what
 * makes the conformance suite's checks of bad input mean the same for
 * every backend.  Attributes are stored in one canonical form (compact,
 * keys sorted), so two backends answer the same text for the same data. */
#include "identity/graph_internal.h"

#include "core/clock.h"
#include "core/mem.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct dagi_graph_ops *const backends[] = {&dagi_graph_sql_ops};

/* --- opening --- */

static bool scheme_matches(const char *url, const char *scheme)
{
    size_t n = strlen(scheme);
    return strncmp(url, scheme, n) == 0 && (url[n] == '\0' || url[n] == ':');
}

struct dagi_graph *dagi_graph_wrap(const struct dagi_graph_ops *ops, void *backend)
{
    struct dagi_graph *g = dagi_xcalloc(1, sizeof(*g));
    g->ops = ops;
    g->backend = backend;
    atomic_init(&g->refs, 1);
    return g;
}

int dagi_graph_open(const char *url, struct dagi_db *db, struct dagi_graph **out,
                    struct dagi_error *err)
{
    if (!url || !*url)
        return dagi_error_set(err, DAGI_EINVAL, "url: the graph URL is empty");
    for (size_t i = 0; i < DAGI_ARRAY_LEN(backends); i++) {
        if (!scheme_matches(url, backends[i]->scheme))
            continue;
        void *backend = NULL;
        int rc = backends[i]->open(url, db, &backend, err);
        if (rc)
            return rc;
        *out = dagi_graph_wrap(backends[i], backend);
        return DAGI_OK;
    }
    return dagi_error_set(err, DAGI_EINVAL, "url: no graph backend serves '%.64s' (known: sql)",
                          url);
}

struct dagi_graph *dagi_graph_ref(struct dagi_graph *g)
{
    atomic_fetch_add(&g->refs, 1);
    return g;
}

void dagi_graph_close(struct dagi_graph *g)
{
    if (!g || atomic_fetch_sub(&g->refs, 1) != 1)
        return;
    if (g->ops->close)
        g->ops->close(g->backend);
    free(g);
}

/* --- users --- */

int dagi_graph_user_create(struct dagi_graph *g, const struct dagi_graph_user_spec *spec,
                           struct dagi_graph_user *out, struct dagi_error *err)
{
    struct dagi_graph_user u = {0};
    int rc = graph_check_user_id("id", spec->id, u.id, err);
    if (!rc && spec->name && !(rc = graph_check_name(spec->name, err)))
        snprintf(u.name, sizeof(u.name), "%s", spec->name);
    if (!rc)
        rc = graph_normalize_attrs(spec->attrs, &u.attrs, err);
    if (rc)
        goto out;
    u.created_at_ms = u.updated_at_ms = dagi_clock_now_ms();
    rc = g->ops->user_create(g->backend, &u, err);
    if (!rc && out) {
        *out = u;
        u.attrs = NULL;
    }
out:
    free(u.attrs);
    return rc;
}

int dagi_graph_user_get(struct dagi_graph *g, const char *id, struct dagi_graph_user *out,
                        struct dagi_error *err)
{
    char uid[DAGI_GRAPH_ID_MAX + 1];
    int rc = graph_check_user_id("id", id, uid, err);
    return rc ? rc : g->ops->user_get(g->backend, uid, out, err);
}

int dagi_graph_user_update(struct dagi_graph *g, const char *id, const struct dagi_graph_patch *p,
                           struct dagi_graph_user *out, struct dagi_error *err)
{
    char uid[DAGI_GRAPH_ID_MAX + 1];
    struct patch_buf pb;
    int rc = graph_check_user_id("id", id, uid, err);
    if (rc || (rc = graph_patch_check(p, false, &pb, err)))
        return rc;
    struct dagi_graph_user u = {0};
    rc = g->ops->user_update(g->backend, uid, &pb.p, dagi_clock_now_ms(), &u, err);
    free(pb.attrs);
    if (!rc && out)
        *out = u;
    else
        dagi_graph_user_release(&u);
    return rc;
}

int dagi_graph_user_delete(struct dagi_graph *g, const char *id, struct dagi_error *err)
{
    char uid[DAGI_GRAPH_ID_MAX + 1];
    int rc = graph_check_user_id("id", id, uid, err);
    return rc ? rc : g->ops->user_delete(g->backend, uid, err);
}

int dagi_graph_user_list(struct dagi_graph *g, const struct dagi_graph_page_req *req,
                         struct dagi_graph_list *out, struct dagi_error *err)
{
    struct dagi_graph_page page;
    struct dagi_graph_list tmp = {0};
    size_t limit;
    int rc = graph_page_from(req, CURSOR_USER, &page, &limit, err);
    if (rc)
        return rc;
    return graph_list_done(g->ops->user_list(g->backend, &page, &tmp, err), &tmp, limit, out);
}

/* --- teams --- */

int dagi_graph_team_create(struct dagi_graph *g, const struct dagi_graph_team_spec *spec,
                           struct dagi_graph_team *out, struct dagi_error *err)
{
    struct dagi_graph_team t = {0};
    int rc = graph_check_slug("id", spec->id, err);
    if (!rc && spec->name && !(rc = graph_check_name(spec->name, err)))
        snprintf(t.name, sizeof(t.name), "%s", spec->name);
    if (!rc && spec->plan)
        rc = graph_check_plan(spec->plan, err);
    if (!rc)
        rc = graph_normalize_attrs(spec->attrs, &t.attrs, err);
    if (rc)
        goto out;
    snprintf(t.id, sizeof(t.id), "%s", spec->id);
    snprintf(t.plan, sizeof(t.plan), "%s", spec->plan ? spec->plan : "free");
    t.created_at_ms = t.updated_at_ms = dagi_clock_now_ms();
    rc = g->ops->team_create(g->backend, &t, err);
    if (!rc && out) {
        *out = t;
        t.attrs = NULL;
    }
out:
    free(t.attrs);
    return rc;
}

int dagi_graph_team_get(struct dagi_graph *g, const char *id, struct dagi_graph_team *out,
                        struct dagi_error *err)
{
    int rc = graph_check_slug("id", id, err);
    return rc ? rc : g->ops->team_get(g->backend, id, out, err);
}

int dagi_graph_team_update(struct dagi_graph *g, const char *id, const struct dagi_graph_patch *p,
                           struct dagi_graph_team *out, struct dagi_error *err)
{
    struct patch_buf pb;
    int rc = graph_check_slug("id", id, err);
    if (rc || (rc = graph_patch_check(p, true, &pb, err)))
        return rc;
    struct dagi_graph_team t = {0};
    rc = g->ops->team_update(g->backend, id, &pb.p, dagi_clock_now_ms(), &t, err);
    free(pb.attrs);
    if (!rc && out)
        *out = t;
    else
        dagi_graph_team_release(&t);
    return rc;
}

int dagi_graph_team_delete(struct dagi_graph *g, const char *id, struct dagi_error *err)
{
    int rc = graph_check_slug("id", id, err);
    return rc ? rc : g->ops->team_delete(g->backend, id, err);
}

int dagi_graph_team_list(struct dagi_graph *g, const struct dagi_graph_page_req *req,
                         struct dagi_graph_list *out, struct dagi_error *err)
{
    struct dagi_graph_page page;
    struct dagi_graph_list tmp = {0};
    size_t limit;
    int rc = graph_page_from(req, CURSOR_SLUG, &page, &limit, err);
    if (rc)
        return rc;
    return graph_list_done(g->ops->team_list(g->backend, &page, &tmp, err), &tmp, limit, out);
}

/* --- projects --- */

int dagi_graph_project_create(struct dagi_graph *g, const struct dagi_graph_project_spec *spec,
                              struct dagi_graph_project *out, struct dagi_error *err)
{
    struct dagi_graph_project p = {0};
    int rc = graph_check_slug("id", spec->id, err);
    if (!rc)
        rc = graph_check_slug("team", spec->team, err);
    if (!rc && spec->name && !(rc = graph_check_name(spec->name, err)))
        snprintf(p.name, sizeof(p.name), "%s", spec->name);
    if (!rc)
        rc = graph_normalize_attrs(spec->attrs, &p.attrs, err);
    if (rc)
        goto out;
    snprintf(p.id, sizeof(p.id), "%s", spec->id);
    snprintf(p.team, sizeof(p.team), "%s", spec->team);
    p.created_at_ms = p.updated_at_ms = dagi_clock_now_ms();
    rc = g->ops->project_create(g->backend, &p, err);
    if (!rc && out) {
        *out = p;
        p.attrs = NULL;
    }
out:
    free(p.attrs);
    return rc;
}

int dagi_graph_project_get(struct dagi_graph *g, const char *id, struct dagi_graph_project *out,
                           struct dagi_error *err)
{
    int rc = graph_check_slug("id", id, err);
    return rc ? rc : g->ops->project_get(g->backend, id, out, err);
}

int dagi_graph_project_update(struct dagi_graph *g, const char *id,
                              const struct dagi_graph_patch *p, struct dagi_graph_project *out,
                              struct dagi_error *err)
{
    struct patch_buf pb;
    int rc = graph_check_slug("id", id, err);
    if (rc || (rc = graph_patch_check(p, false, &pb, err)))
        return rc;
    struct dagi_graph_project pr = {0};
    rc = g->ops->project_update(g->backend, id, &pb.p, dagi_clock_now_ms(), &pr, err);
    free(pb.attrs);
    if (!rc && out)
        *out = pr;
    else
        dagi_graph_project_release(&pr);
    return rc;
}

int dagi_graph_project_delete(struct dagi_graph *g, const char *id, struct dagi_error *err)
{
    int rc = graph_check_slug("id", id, err);
    return rc ? rc : g->ops->project_delete(g->backend, id, err);
}

int dagi_graph_project_list(struct dagi_graph *g, const char *team,
                            const struct dagi_graph_page_req *req, struct dagi_graph_list *out,
                            struct dagi_error *err)
{
    struct dagi_graph_page page;
    struct dagi_graph_list tmp = {0};
    size_t limit;
    int rc = team ? graph_check_slug("team", team, err) : DAGI_OK;
    if (rc || (rc = graph_page_from(req, CURSOR_SLUG, &page, &limit, err)))
        return rc;
    return graph_list_done(g->ops->project_list(g->backend, team, &page, &tmp, err), &tmp, limit,
                           out);
}

/* --- membership --- */

int dagi_graph_member_add(struct dagi_graph *g, const char *team, const char *user,
                          enum dagi_graph_role role, struct dagi_graph_member *out,
                          struct dagi_error *err)
{
    struct dagi_graph_member m = {.role = role};
    int rc = graph_check_slug("team", team, err);
    if (rc || (rc = graph_check_user_id("user", user, m.user, err)))
        return rc;
    if (role != DAGI_GRAPH_OWNER && role != DAGI_GRAPH_ADMIN && role != DAGI_GRAPH_MEMBER)
        return dagi_error_set(err, DAGI_EINVAL, "role: owner, admin or member");
    snprintf(m.team, sizeof(m.team), "%s", team);
    m.created_at_ms = dagi_clock_now_ms();
    rc = g->ops->member_add(g->backend, &m, err);
    if (!rc && out)
        *out = m;
    return rc;
}

int dagi_graph_member_remove(struct dagi_graph *g, const char *team, const char *user,
                             struct dagi_error *err)
{
    char uid[DAGI_GRAPH_ID_MAX + 1];
    int rc = graph_check_slug("team", team, err);
    if (rc || (rc = graph_check_user_id("user", user, uid, err)))
        return rc;
    return g->ops->member_remove(g->backend, team, uid, err);
}

int dagi_graph_member_list(struct dagi_graph *g, const char *team,
                           const struct dagi_graph_page_req *req, struct dagi_graph_list *out,
                           struct dagi_error *err)
{
    struct dagi_graph_page page;
    struct dagi_graph_list tmp = {0};
    size_t limit;
    int rc = graph_check_slug("team", team, err);
    if (rc || (rc = graph_page_from(req, CURSOR_USER, &page, &limit, err)))
        return rc;
    return graph_list_done(g->ops->member_list(g->backend, team, &page, &tmp, err), &tmp, limit,
                           out);
}

int dagi_graph_teams_of(struct dagi_graph *g, const char *user,
                        const struct dagi_graph_page_req *req, struct dagi_graph_list *out,
                        struct dagi_error *err)
{
    char uid[DAGI_GRAPH_ID_MAX + 1];
    struct dagi_graph_page page;
    struct dagi_graph_list tmp = {0};
    size_t limit;
    int rc = graph_check_user_id("user", user, uid, err);
    if (rc || (rc = graph_page_from(req, CURSOR_SLUG, &page, &limit, err)))
        return rc;
    rc = graph_list_done(g->ops->teams_of(g->backend, uid, &page, &tmp, err), &tmp, limit, out);
    /* paged by team, not by user as a team's member list is */
    if (!rc && out->next_cursor[0])
        snprintf(out->next_cursor, sizeof(out->next_cursor), "%s", out->members[limit - 1].team);
    return rc;
}

/* --- chats --- */

int dagi_graph_chat_set(struct dagi_graph *g, int64_t chat_id, const char *team, const char *agent,
                        struct dagi_graph_chat *out, bool *created, struct dagi_error *err)
{
    struct dagi_graph_chat c = {.chat_id = chat_id};
    int rc = graph_check_slug("team", team, err);
    if (rc)
        return rc;
    if (agent && *agent && !dagi_graph_agent_valid(agent))
        return dagi_error_set(err, DAGI_EINVAL, "agent: 1-%d of [A-Za-z0-9_.-]",
                              DAGI_GRAPH_AGENT_MAX);
    if (chat_id == 0 || chat_id > DAGI_GRAPH_CHAT_ID_MAX || chat_id < -DAGI_GRAPH_CHAT_ID_MAX)
        return dagi_error_set(err, DAGI_EINVAL,
                              "chat_id: a Telegram chat id, not 0, at most 2^53-1 either way");
    snprintf(c.team, sizeof(c.team), "%s", team);
    snprintf(c.agent, sizeof(c.agent), "%s", agent ? agent : "");
    c.created_at_ms = c.updated_at_ms = dagi_clock_now_ms();
    struct dagi_graph_chat stored = {0};
    bool made = false;
    rc = g->ops->chat_set(g->backend, &c, &stored, &made, err);
    if (rc)
        return rc;
    if (out)
        *out = stored;
    if (created)
        *created = made;
    return DAGI_OK;
}

int dagi_graph_chat_get(struct dagi_graph *g, int64_t chat_id, struct dagi_graph_chat *out,
                        struct dagi_error *err)
{
    return g->ops->chat_get(g->backend, chat_id, out, err);
}

int dagi_graph_chat_unset(struct dagi_graph *g, int64_t chat_id, const char *team,
                          struct dagi_error *err)
{
    int rc = team ? graph_check_slug("team", team, err) : DAGI_OK;
    return rc ? rc : g->ops->chat_unset(g->backend, chat_id, team, err);
}

int dagi_graph_chat_list(struct dagi_graph *g, const char *team,
                         const struct dagi_graph_page_req *req, struct dagi_graph_list *out,
                         struct dagi_error *err)
{
    struct dagi_graph_page page;
    struct dagi_graph_list tmp = {0};
    size_t limit;
    int rc = team ? graph_check_slug("team", team, err) : DAGI_OK;
    if (rc || (rc = graph_page_from(req, CURSOR_CHAT, &page, &limit, err)))
        return rc;
    return graph_list_done(g->ops->chat_list(g->backend, team, &page, &tmp, err), &tmp, limit, out);
}

/* --- ACL edges --- */

static int check_edge(const char *subject, const char *relation, const char *object,
                      struct dagi_error *err)
{
    int rc = graph_check_ref("subject", subject, err);
    if (!rc)
        rc = graph_check_relation(relation, err);
    if (!rc)
        rc = graph_check_ref("object", object, err);
    return rc;
}

int dagi_graph_acl_add(struct dagi_graph *g, const char *subject, const char *relation,
                       const char *object, struct dagi_error *err)
{
    int rc = check_edge(subject, relation, object, err);
    if (rc)
        return rc;
    struct dagi_graph_edge e = {.created_at_ms = dagi_clock_now_ms()};
    snprintf(e.subject, sizeof(e.subject), "%s", subject);
    snprintf(e.relation, sizeof(e.relation), "%s", relation);
    snprintf(e.object, sizeof(e.object), "%s", object);
    return g->ops->acl_add(g->backend, &e, err);
}

int dagi_graph_acl_remove(struct dagi_graph *g, const char *subject, const char *relation,
                          const char *object, struct dagi_error *err)
{
    int rc = check_edge(subject, relation, object, err);
    return rc ? rc : g->ops->acl_remove(g->backend, subject, relation, object, err);
}

int dagi_graph_acl_check(struct dagi_graph *g, const char *subject, const char *relation,
                         const char *object, bool *allowed, struct dagi_error *err)
{
    int rc = check_edge(subject, relation, object, err);
    if (rc)
        return rc;
    enum dagi_graph_ref_kind kind;
    const char *id;
    dagi_graph_ref_parse(subject, &kind, &id);
    bool yes = false;
    rc = g->ops->acl_check(g->backend, subject, relation, object,
                           kind == DAGI_GRAPH_REF_USER ? id : NULL, &yes, err);
    if (!rc)
        *allowed = yes;
    return rc;
}

int dagi_graph_acl_list(struct dagi_graph *g, const struct dagi_graph_edge_filter *f,
                        const struct dagi_graph_page_req *req, struct dagi_graph_list *out,
                        struct dagi_error *err)
{
    struct dagi_graph_edge_filter none = {0};
    struct dagi_graph_page page;
    struct dagi_graph_list tmp = {0};
    size_t limit;
    int rc = DAGI_OK;
    if (!f)
        f = &none;
    if (f->subject)
        rc = graph_check_ref("subject", f->subject, err);
    if (!rc && f->object)
        rc = graph_check_ref("object", f->object, err);
    if (rc || (rc = graph_page_from(req, CURSOR_EDGE, &page, &limit, err)))
        return rc;
    return graph_list_done(g->ops->acl_list(g->backend, f, &page, &tmp, err), &tmp, limit, out);
}
