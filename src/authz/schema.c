/* The bundle document: the schema tables that bind policy.yml through
 * core/config (so every error names file:line), and the checks the tables
 * cannot express - the syntax of actions and subjects, unique ids, and the
 * references from bindings to roles and from teams to plans. */
#include "authz/authz_internal.h"

#include "core/err.h"
#include "core/mem.h"

#include <stdlib.h>
#include <string.h>

#define MAX_ROLES 100000
#define MAX_GRANTS 100000 /* per list of one role */
#define MAX_RESOURCES 10000
#define MAX_BINDINGS 1000000
#define MAX_PLANS 10000
#define MAX_TEAMS 1000000
#define MAX_SEGMENTS 16

static const char *const mode_values[] = {"public", "team", "confidential", NULL};

/* ---- syntax ---- */

static bool word_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* Dotted words; a pattern may also be "*" or end in ".*".  At most
 * MAX_SEGMENTS words, so the decision path's table of wildcard forms has a
 * fixed size. */
bool authz_action_valid(const char *a, bool pattern)
{
    size_t len = strlen(a), segments = 1, word = 0;
    if (len == 0 || len > DAGI_AUTHZ_ACTION_MAX)
        return false;
    if (pattern && strcmp(a, "*") == 0)
        return true;
    if (pattern && len >= 2 && a[len - 1] == '*' && a[len - 2] == '.')
        len -= 2;
    for (size_t i = 0; i < len; i++) {
        if (a[i] == '.') {
            if (!word || ++segments > MAX_SEGMENTS)
                return false;
            word = 0;
        } else if (!word_char((unsigned char)a[i])) {
            return false;
        } else {
            word++;
        }
    }
    return word > 0;
}

static bool id_valid(const char *s, size_t max)
{
    size_t len = strlen(s);
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!word_char((unsigned char)s[i]) && s[i] != '.' && s[i] != ':' && s[i] != '@')
            return false;
    return true;
}

/* The kinds a subject may have; a typo ("usr:alice") would otherwise bind
 * nobody and fail silently. */
static const char *const subject_kinds[] = {"user", "team", "key", "tg", "role", "hook", NULL};

bool authz_subject_valid(const char *s)
{
    if (strcmp(s, "*") == 0 || strcmp(s, "admin") == 0)
        return true;
    const char *colon = strchr(s, ':');
    if (!colon)
        return false;
    size_t kind = (size_t)(colon - s);
    bool known = false;
    for (size_t i = 0; subject_kinds[i] && !known; i++)
        known = strlen(subject_kinds[i]) == kind && strncmp(s, subject_kinds[i], kind) == 0;
    if (!known)
        return false;
    return strcmp(colon + 1, "*") == 0 || id_valid(colon + 1, DAGI_AUTHZ_SUBJECT_MAX);
}

/* ---- checks of one record ---- */

static void check_patterns(struct dagi_cfg_ctx *ctx, const char *key,
                           const struct dagi_cfg_strings *list)
{
    for (size_t i = 0; i < list->count; i++)
        if (!authz_action_valid(list->items[i], true))
            dagi_cfg_report(ctx, key,
                            "[%zu] \"%.*s\" is not an action (dotted words of [A-Za-z0-9_-], at "
                            "most %d, optionally ending in .*; or *)",
                            i, 64, list->items[i], MAX_SEGMENTS);
}

static void check_ids(struct dagi_cfg_ctx *ctx, const char *key,
                      const struct dagi_cfg_strings *list, bool star)
{
    for (size_t i = 0; i < list->count; i++) {
        const char *s = list->items[i];
        if (!(star && strcmp(s, "*") == 0) && !id_valid(s, DAGI_AUTHZ_ID_MAX))
            dagi_cfg_report(ctx, key,
                            "[%zu] \"%.*s\" is not an id (1-%d characters of [A-Za-z0-9_.:@-]%s)",
                            i, 64, s, DAGI_AUTHZ_ID_MAX, star ? ", or *" : "");
    }
}

static void check_grant(void *record, struct dagi_cfg_ctx *ctx)
{
    struct authz_doc_grant *g = record;
    if (!authz_action_valid(g->action, true))
        dagi_cfg_report(ctx, "action",
                        "\"%.*s\" is not an action (dotted words of [A-Za-z0-9_-], optionally "
                        "ending in .*; or *)",
                        64, g->action);
    check_ids(ctx, "resources", &g->resources, false);
}

static void check_role(void *record, struct dagi_cfg_ctx *ctx)
{
    struct authz_doc_role *r = record;
    if (!id_valid(r->id, DAGI_AUTHZ_ID_MAX))
        dagi_cfg_report(ctx, "id", "must be 1-%d characters of [A-Za-z0-9_.:@-]",
                        DAGI_AUTHZ_ID_MAX);
    check_patterns(ctx, "allow", &r->allow);
    check_patterns(ctx, "deny", &r->deny);
}

static void check_binding(void *record, struct dagi_cfg_ctx *ctx)
{
    struct authz_doc_binding *b = record;
    if (!authz_subject_valid(b->subject))
        dagi_cfg_report(ctx, "subject",
                        "\"%.*s\" is not a subject (user:<id>, team:<id>, key:<id>, tg:<id>, "
                        "role:<role>, <kind>:*, admin or *)",
                        64, b->subject);
}

static void check_plan(void *record, struct dagi_cfg_ctx *ctx)
{
    struct authz_doc_plan *p = record;
    if (!id_valid(p->id, DAGI_AUTHZ_ID_MAX))
        dagi_cfg_report(ctx, "id", "must be 1-%d characters of [A-Za-z0-9_.:@-]",
                        DAGI_AUTHZ_ID_MAX);
    check_ids(ctx, "agents", &p->agents, true);
    check_ids(ctx, "models", &p->models, true);
}

static void check_team(void *record, struct dagi_cfg_ctx *ctx)
{
    struct authz_doc_team *t = record;
    enum dagi_authz_mode m;
    if (strcmp(t->id, "*") != 0 && !id_valid(t->id, DAGI_AUTHZ_ID_MAX))
        dagi_cfg_report(ctx, "id", "must be * or 1-%d characters of [A-Za-z0-9_.:@-]",
                        DAGI_AUTHZ_ID_MAX);
    check_ids(ctx, "agents", &t->agents, true);
    check_ids(ctx, "models", &t->models, true);
    if (t->max_mode && dagi_authz_mode_parse(t->max_mode, &m) != 0)
        dagi_cfg_report(ctx, "max_mode", "must be one of public, team, confidential");
}

/* ---- the tables ---- */

static const struct dagi_cfg_field grant_fields[] = {
    {"action", DAGI_CFG_STRING, offsetof(struct authz_doc_grant, action), NULL, 1,
     DAGI_AUTHZ_ACTION_MAX, NULL, NULL, DAGI_CFG_REQUIRED,
     "The action or pattern (agent.use, agent.tool.*, *)."},
    {"resources", DAGI_CFG_STRING_LIST, offsetof(struct authz_doc_grant, resources), NULL, 1,
     MAX_RESOURCES, NULL, NULL, DAGI_CFG_REQUIRED,
     "The resources (agent ids, models, scopes) it applies to."},
};
static const struct dagi_cfg_schema grant_schema = {"grant",
                                                    "An action restricted to some resources.",
                                                    sizeof(struct authz_doc_grant),
                                                    grant_fields,
                                                    DAGI_ARRAY_LEN(grant_fields),
                                                    check_grant};

static const struct dagi_cfg_field role_fields[] = {
    {"id", DAGI_CFG_STRING, offsetof(struct authz_doc_role, id), NULL, 1, DAGI_AUTHZ_ID_MAX, NULL,
     NULL, DAGI_CFG_REQUIRED, "The role's name, unique; bindings and decisions name it."},
    {"allow", DAGI_CFG_STRING_LIST, offsetof(struct authz_doc_role, allow), NULL, 0, MAX_GRANTS,
     NULL, NULL, 0, "Actions granted on every resource."},
    {"allow_on", DAGI_CFG_LIST, offsetof(struct authz_doc_role, allow_on), NULL, 0, MAX_GRANTS,
     NULL, &grant_schema, 0, "Actions granted on the listed resources only."},
    {"deny", DAGI_CFG_STRING_LIST, offsetof(struct authz_doc_role, deny), NULL, 0, MAX_GRANTS, NULL,
     NULL, 0, "Actions refused on every resource; a deny beats any grant."},
    {"deny_on", DAGI_CFG_LIST, offsetof(struct authz_doc_role, deny_on), NULL, 0, MAX_GRANTS, NULL,
     &grant_schema, 0, "Actions refused on the listed resources."},
};
static const struct dagi_cfg_schema role_schema = {
    "roles[]",   "A role: what it grants and denies.", sizeof(struct authz_doc_role),
    role_fields, DAGI_ARRAY_LEN(role_fields),          check_role};

static const struct dagi_cfg_field binding_fields[] = {
    {"subject", DAGI_CFG_STRING, offsetof(struct authz_doc_binding, subject), NULL, 1,
     DAGI_AUTHZ_SUBJECT_MAX, NULL, NULL, DAGI_CFG_REQUIRED,
     "Who: user:<id>, team:<id>, key:<id>, tg:<id>, role:<role>, <kind>:*, admin or *."},
    {"roles", DAGI_CFG_STRING_LIST, offsetof(struct authz_doc_binding, roles), NULL, 1, MAX_ROLES,
     NULL, NULL, DAGI_CFG_REQUIRED, "The roles the subject holds."},
};
static const struct dagi_cfg_schema binding_schema = {
    "bindings[]",   "A subject bound to roles.",    sizeof(struct authz_doc_binding),
    binding_fields, DAGI_ARRAY_LEN(binding_fields), check_binding};

static const struct dagi_cfg_field plan_fields[] = {
    {"id", DAGI_CFG_STRING, offsetof(struct authz_doc_plan, id), NULL, 1, DAGI_AUTHZ_ID_MAX, NULL,
     NULL, DAGI_CFG_REQUIRED, "The plan's name, unique."},
    {"agents", DAGI_CFG_STRING_LIST, offsetof(struct authz_doc_plan, agents), NULL, 0,
     MAX_RESOURCES, NULL, NULL, DAGI_CFG_REQUIRED, "The agents a team on it may use (* = all)."},
    {"models", DAGI_CFG_STRING_LIST, offsetof(struct authz_doc_plan, models), NULL, 0,
     MAX_RESOURCES, NULL, NULL, DAGI_CFG_REQUIRED, "The models it may use (* = all)."},
    {"max_mode", DAGI_CFG_ENUM, offsetof(struct authz_doc_plan, max_mode), "public", 0, 0,
     mode_values, NULL, 0, "The highest mode: public < team < confidential."},
};
static const struct dagi_cfg_schema plan_schema = {
    "plans[]",   "Entitlements a team gets.", sizeof(struct authz_doc_plan),
    plan_fields, DAGI_ARRAY_LEN(plan_fields), check_plan};

static const struct dagi_cfg_field team_fields[] = {
    {"id", DAGI_CFG_STRING, offsetof(struct authz_doc_team, id), NULL, 1, DAGI_AUTHZ_ID_MAX, NULL,
     NULL, DAGI_CFG_REQUIRED, "The team, or * for every team not listed (and for no team)."},
    {"plan", DAGI_CFG_STRING, offsetof(struct authz_doc_team, plan), NULL, 1, DAGI_AUTHZ_ID_MAX,
     NULL, NULL, DAGI_CFG_REQUIRED, "Its plan."},
    {"agents", DAGI_CFG_STRING_LIST, offsetof(struct authz_doc_team, agents), NULL, 0,
     MAX_RESOURCES, NULL, NULL, 0, "Instead of the plan's agents."},
    {"models", DAGI_CFG_STRING_LIST, offsetof(struct authz_doc_team, models), NULL, 0,
     MAX_RESOURCES, NULL, NULL, 0, "Instead of the plan's models."},
    {"max_mode", DAGI_CFG_STRING, offsetof(struct authz_doc_team, max_mode), NULL, 0, 0, NULL, NULL,
     0, "Instead of the plan's max_mode."},
};
static const struct dagi_cfg_schema team_schema = {
    "teams[]",   "A team's plan and overrides.", sizeof(struct authz_doc_team),
    team_fields, DAGI_ARRAY_LEN(team_fields),    check_team};

/* ---- the file's cross-references ---- */

/* Finds ids used twice and names declared nowhere, through a hash map in
 * a scratch arena: a document may list a million bindings, so nothing here
 * is quadratic. */
struct id_index {
    struct dagi_arena *arena;
    struct authz_strmap map;
};

static bool index_build(struct id_index *ix, const struct dagi_cfg_list *list, size_t stride,
                        size_t id_offset, struct dagi_cfg_ctx *ctx, const char *key,
                        const char *what)
{
    ix->arena = dagi_arena_new(0);
    if (authz_strmap_init(&ix->map, ix->arena, list->count) != 0) {
        dagi_cfg_report(ctx, key, "too many %ss", what);
        return false;
    }
    for (size_t i = 0; i < list->count; i++) {
        const char *id = *(char *const *)((const char *)list->items + i * stride + id_offset);
        uint32_t len = (uint32_t)strlen(id);
        uint32_t was = authz_strmap_put(&ix->map, id, len, authz_hash(id, len), (uint32_t)i);
        if (was != AUTHZ_NONE)
            dagi_cfg_report(ctx, key, "%s id \"%.*s\" is used twice ([%u] and [%zu])", what, 64, id,
                            was, i);
    }
    return true;
}

static bool index_has(const struct id_index *ix, const char *id)
{
    uint32_t len = (uint32_t)strlen(id);
    return authz_strmap_get(&ix->map, id, len, authz_hash(id, len)) != AUTHZ_NONE;
}

static void check_file(void *record, struct dagi_cfg_ctx *ctx)
{
    struct authz_doc *d = record;
    struct id_index roles = {0}, plans = {0}, teams = {0};
    if (d->version != 1)
        dagi_cfg_report(ctx, "version", "unsupported version %lld (this build reads 1)",
                        (long long)d->version);
    if (index_build(&roles, &d->roles, sizeof(struct authz_doc_role),
                    offsetof(struct authz_doc_role, id), ctx, "roles", "role")) {
        const struct authz_doc_binding *b = d->bindings.items;
        for (size_t i = 0; i < d->bindings.count; i++)
            for (size_t k = 0; k < b[i].roles.count; k++)
                if (!index_has(&roles, b[i].roles.items[k]))
                    dagi_cfg_report(ctx, "bindings", "[%zu].roles[%zu]: no role \"%.*s\"", i, k, 64,
                                    b[i].roles.items[k]);
    }
    if (index_build(&plans, &d->plans, sizeof(struct authz_doc_plan),
                    offsetof(struct authz_doc_plan, id), ctx, "plans", "plan")) {
        const struct authz_doc_team *t = d->teams.items;
        for (size_t i = 0; i < d->teams.count; i++)
            if (!index_has(&plans, t[i].plan))
                dagi_cfg_report(ctx, "teams", "[%zu].plan: no plan \"%.*s\"", i, 64, t[i].plan);
    }
    index_build(&teams, &d->teams, sizeof(struct authz_doc_team),
                offsetof(struct authz_doc_team, id), ctx, "teams", "team");
    dagi_arena_free(roles.arena);
    dagi_arena_free(plans.arena);
    dagi_arena_free(teams.arena);
}

static const struct dagi_cfg_field file_fields[] = {
    {"version", DAGI_CFG_INT, offsetof(struct authz_doc, version), "1", 0, 0, NULL, NULL, 0,
     "Format version of the file (1)."},
    {"roles", DAGI_CFG_LIST, offsetof(struct authz_doc, roles), NULL, 0, MAX_ROLES, NULL,
     &role_schema, 0, "The roles."},
    {"bindings", DAGI_CFG_LIST, offsetof(struct authz_doc, bindings), NULL, 0, MAX_BINDINGS, NULL,
     &binding_schema, 0, "Who holds which roles."},
    {"plans", DAGI_CFG_LIST, offsetof(struct authz_doc, plans), NULL, 0, MAX_PLANS, NULL,
     &plan_schema, 0, "Entitlement plans."},
    {"teams", DAGI_CFG_LIST, offsetof(struct authz_doc, teams), NULL, 0, MAX_TEAMS, NULL,
     &team_schema, 0, "Teams and their plans."},
};
const struct dagi_cfg_schema authz_doc_schema = {
    "policy.yml",
    "The policy bundle: roles, bindings, plans and teams (docs/POLICY.md).",
    sizeof(struct authz_doc),
    file_fields,
    DAGI_ARRAY_LEN(file_fields),
    check_file};

int authz_doc_load(const char *text, size_t len, const char *source, struct dagi_arena *arena,
                   struct authz_doc **out, struct dagi_cfg_errors *errs)
{
    void *obj = NULL;
    int rc = dagi_cfg_load_yaml(&authz_doc_schema, source ? source : "policy.yml", text, len, arena,
                                &obj, errs);
    if (rc == 0)
        *out = obj;
    return rc;
}

int dagi_authz_check_text(const char *text, size_t len, const char *source,
                          struct dagi_cfg_errors *errs)
{
    struct dagi_arena *arena = dagi_arena_new(0);
    struct authz_doc *doc;
    int rc = authz_doc_load(text, len, source, arena, &doc, errs);
    dagi_arena_free(arena);
    return rc;
}

int dagi_authz_mode_parse(const char *name, enum dagi_authz_mode *out)
{
    for (int i = 0; name && mode_values[i]; i++) {
        if (strcmp(name, mode_values[i]) == 0) {
            *out = (enum dagi_authz_mode)i;
            return DAGI_OK;
        }
    }
    return DAGI_EINVAL;
}

const char *dagi_authz_mode_name(enum dagi_authz_mode m)
{
    return (unsigned)m < 3 ? mode_values[m] : "public";
}
