/* The decision path (authz.h "Evaluation") and the entitlement queries.
 *
 * Cost: one pass over the action finds every pattern that could match it
 * (the action itself, each "<prefix>.*" and "*"), hashing as it goes, so
 * the wildcard forms cost one table probe each and no copies.  Then for
 * every subject one or two probes find its bound roles, and for every
 * (role, pattern) pair one probe of the grants table.  Nothing is
 * allocated: the forms live in a fixed array (patterns have at most 16
 * segments, so an action has at most 17 forms plus "*"). */
#include "authz/authz_internal.h"

#include "core/err.h"

#include <string.h>

#define MAX_FORMS 20

static const char *const R_GRANTED = "granted";
static const char *const R_BUILTIN_ADMIN = "builtin_admin";
static const char *const R_EXPLICIT_DENY = "explicit_deny";
static const char *const R_NO_GRANT = "no_grant";
static const char *const R_NOT_ENTITLED = "not_entitled";
static const char *const R_NO_POLICY = "no_policy";
static const char *const R_INVALID = "invalid_request";

static void set(struct dagi_authz_decision *out, bool allow, const char *reason, const char *rule)
{
    out->allow = allow;
    out->reason = reason;
    out->rule = rule;
}

static bool is_empty(const struct dagi_authz_bundle *b)
{
    return !b || b->role_count == 0;
}

struct forms {
    uint32_t action[MAX_FORMS];
    size_t n;
    bool any_deny;
};

static void form_add(struct forms *f, const struct dagi_authz_bundle *b, uint32_t a)
{
    if (a == AUTHZ_NONE)
        return;
    f->action[f->n++] = a;
    f->any_deny |= b->action_has_deny[a];
}

/* The bundle's patterns that match `action`, or false when the action is
 * not a concrete action (words of [A-Za-z0-9_-] joined by dots). */
static bool find_forms(const struct dagi_authz_bundle *b, const char *action, struct forms *f)
{
    uint64_t h = AUTHZ_FNV_OFFSET;
    size_t i = 0, word = 0, segments = 1;
    f->n = 0;
    f->any_deny = false;
    for (; action[i]; i++) {
        unsigned char c = (unsigned char)action[i];
        if (i >= DAGI_AUTHZ_ACTION_MAX)
            return false;
        if (c == '.') {
            if (!word || ++segments > 16)
                return false;
            word = 0;
            h = authz_hash_step(h, c);
            form_add(f, b,
                     authz_strmap_get_wild(&b->actions, action, (uint32_t)i + 1,
                                           authz_hash_step(h, '*')));
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
        word++;
        h = authz_hash_step(h, c);
    }
    if (!word)
        return false;
    form_add(f, b, authz_strmap_get(&b->actions, action, (uint32_t)i, h));
    form_add(f, b, b->star_action);
    return true;
}

struct verdict {
    const char *allowed_by; /* the first role that grants, or NULL */
    const char *denied_by;  /* a role that denies: the answer */
};

/* Looks at every role of one binding; true when the scan may stop. */
static bool scan_binding(const struct dagi_authz_bundle *b, uint32_t binding, const struct forms *f,
                         const char *resource, struct verdict *v)
{
    if (binding == AUTHZ_NONE)
        return false;
    const struct authz_binding *bd = &b->bindings[binding];
    for (uint32_t k = 0; k < bd->count; k++) {
        uint32_t role = bd->roles[k];
        for (size_t j = 0; j < f->n; j++) {
            const struct authz_entry *e = authz_entry_get(b, role, f->action[j]);
            if (!e)
                continue;
            if (e->denies && (e->deny.any || (resource && authz_set_has(&e->deny, resource)))) {
                v->denied_by = b->role_ids[role];
                return true;
            }
            if (!v->allowed_by && e->allows &&
                (e->allow.any || (resource && authz_set_has(&e->allow, resource)))) {
                v->allowed_by = b->role_ids[role];
                /* With no deny anywhere for these patterns the first grant
                 * is the answer. */
                if (!f->any_deny)
                    return true;
            }
        }
    }
    return false;
}

/* A subject's exact binding and its "<kind>:*" binding; false when the
 * subject is longer than any binding may be (then the request is
 * refused, so a deny bound to "user:*" cannot be dodged by a long id). */
static bool scan_subject(const struct dagi_authz_bundle *b, const char *s, const struct forms *f,
                         const char *resource, struct verdict *v, bool *stop)
{
    uint64_t h = AUTHZ_FNV_OFFSET, wild = 0;
    size_t i = 0, colon = 0;
    for (; s[i]; i++) {
        if (i >= DAGI_AUTHZ_SUBJECT_MAX)
            return false;
        h = authz_hash_step(h, (unsigned char)s[i]);
        if (s[i] == ':' && !colon) {
            colon = i + 1;
            wild = authz_hash_step(h, '*');
        }
    }
    if (scan_binding(b, authz_strmap_get(&b->subjects, s, (uint32_t)i, h), f, resource, v) ||
        (colon && scan_binding(b, authz_strmap_get_wild(&b->subjects, s, (uint32_t)colon, wild), f,
                               resource, v)))
        *stop = true;
    return true;
}

static bool mode_entitled(const struct dagi_authz_bundle *b, const char *team, const char *action)
{
    enum dagi_authz_mode want;
    if (dagi_authz_mode_parse(action + 5, &want) != 0)
        return true; /* not a mode this build knows: the grant alone decides */
    return want <= dagi_authz_max_mode(b, team);
}

void dagi_authz_decide(const struct dagi_authz_bundle *b, const struct dagi_authz_request *req,
                       struct dagi_authz_decision *out)
{
    const char *action = req->action;
    if (!action || req->n_subjects > DAGI_AUTHZ_REQUEST_SUBJECTS_MAX ||
        (req->n_subjects && !req->subjects)) {
        set(out, false, R_INVALID, NULL);
        return;
    }
    if (is_empty(b)) {
        /* The one built-in rule (authz.h): a node without a policy stays
         * operable by its admin and by nobody else. */
        if (req->principal && strcmp(req->principal, "admin") == 0)
            set(out, true, R_BUILTIN_ADMIN, NULL);
        else
            set(out, false, R_NO_POLICY, NULL);
        return;
    }
    struct forms f;
    if (!find_forms(b, action, &f)) {
        set(out, false, R_INVALID, NULL);
        return;
    }
    struct verdict v = {0};
    bool stop = false;
    if (req->principal && !scan_subject(b, req->principal, &f, req->resource, &v, &stop))
        goto invalid;
    for (size_t i = 0; i < req->n_subjects && !stop; i++)
        if (!req->subjects[i] || !scan_subject(b, req->subjects[i], &f, req->resource, &v, &stop))
            goto invalid;
    if (!stop)
        scan_binding(b, b->star_binding, &f, req->resource, &v);
    if (v.denied_by) {
        set(out, false, R_EXPLICIT_DENY, v.denied_by);
        return;
    }
    if (!v.allowed_by) {
        set(out, false, R_NO_GRANT, NULL);
        return;
    }
    /* Entitlements, so the router asks once for agent use, a model or a
     * mode. */
    bool entitled = true;
    if (strcmp(action, "agent.use") == 0)
        entitled = dagi_authz_agent_entitled(b, req->team, req->resource);
    else if (strcmp(action, "model.use") == 0)
        entitled = dagi_authz_model_entitled(b, req->team, req->resource);
    else if (strncmp(action, "mode.", 5) == 0)
        entitled = mode_entitled(b, req->team, action);
    if (!entitled) {
        const struct authz_team *t = authz_team_find(b, req->team);
        set(out, false, R_NOT_ENTITLED, t ? t->id : NULL);
        return;
    }
    set(out, true, R_GRANTED, v.allowed_by);
    return;
invalid:
    set(out, false, R_INVALID, NULL);
}

/* ---- entitlements ---- */

/* id NULL: "some" - the team has a record (a request that names no agent
 * is not refused for one). */
static bool entitled(const struct dagi_authz_bundle *b, const char *team, const char *id,
                     bool models)
{
    if (is_empty(b))
        return true;
    const struct authz_team *t = authz_team_find(b, team);
    if (!t)
        return false;
    return !id || authz_set_has(models ? &t->models : &t->agents, id);
}

bool dagi_authz_agent_entitled(const struct dagi_authz_bundle *b, const char *team,
                               const char *agent)
{
    return entitled(b, team, agent, false);
}

bool dagi_authz_model_entitled(const struct dagi_authz_bundle *b, const char *team,
                               const char *model)
{
    return entitled(b, team, model, true);
}

enum dagi_authz_mode dagi_authz_max_mode(const struct dagi_authz_bundle *b, const char *team)
{
    if (is_empty(b))
        return DAGI_AUTHZ_MODE_CONFIDENTIAL;
    const struct authz_team *t = authz_team_find(b, team);
    return t ? t->max_mode : DAGI_AUTHZ_MODE_PUBLIC;
}

enum dagi_authz_mode dagi_authz_cap_mode(const struct dagi_authz_bundle *b, const char *team,
                                         enum dagi_authz_mode requested)
{
    enum dagi_authz_mode max = dagi_authz_max_mode(b, team);
    return requested > max ? max : requested;
}
