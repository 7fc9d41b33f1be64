/* Compiling a bundle document into the tables dagi_authz_decide reads.
 *
 * What the decision path needs, each one hash lookup away:
 *   actions   pattern text -> action index ("agent.use", "agent.tool.*", "*")
 *   grants    (role index, action index) -> what that role allows and denies
 *             for that pattern, resources merged and sorted
 *   subjects  subject text or "<kind>:*" -> the roles bound to it, merged
 *             over every binding that names it and without repeats
 *   teams     team id -> the plan's entitlements with the team's overrides
 * All of it lives in the bundle's one arena, sized before it is filled:
 * nothing grows, so nothing moves once the bundle is shared. */
#include "authz/authz_internal.h"

#include "core/err.h"
#include "core/mem.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- maps ---- */

static uint32_t table_size(size_t keys)
{
    size_t n = 8;
    while (n < keys * 2)
        n <<= 1;
    return (uint32_t)n;
}

int authz_strmap_init(struct authz_strmap *m, struct dagi_arena *arena, size_t max_keys)
{
    if (max_keys > UINT32_MAX / 4)
        return DAGI_ETOOBIG;
    uint32_t n = table_size(max_keys);
    m->slots = dagi_arena_zalloc(arena, (size_t)n * sizeof(*m->slots));
    m->mask = n - 1;
    m->count = 0;
    return m->slots ? DAGI_OK : DAGI_ETOOBIG;
}

uint32_t authz_strmap_put(struct authz_strmap *m, const char *key, uint32_t len, uint64_t hash,
                          uint32_t value)
{
    for (uint32_t i = (uint32_t)hash & m->mask;; i = (i + 1) & m->mask) {
        struct authz_strslot *s = &m->slots[i];
        if (!s->key) {
            *s = (struct authz_strslot){hash, key, len, value};
            m->count++;
            return AUTHZ_NONE;
        }
        if (s->hash == hash && s->len == len && memcmp(s->key, key, len) == 0)
            return s->value;
    }
}

static uint32_t strmap_find(const struct authz_strmap *m, const char *key)
{
    uint32_t len = (uint32_t)strlen(key);
    return authz_strmap_get(m, key, len, authz_hash(key, len));
}

/* ---- sets ---- */

static int by_string(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

bool authz_set_has(const struct authz_set *s, const char *id)
{
    if (s->any)
        return true;
    if (!id || !s->count)
        return false;
    return bsearch(&id, s->items, s->count, sizeof(*s->items), by_string) != NULL;
}

/* Sorts and drops repeats; "*" in the list makes the set `any`. */
static void set_finish(struct authz_set *s, bool star_means_any)
{
    if (!s->count)
        return;
    qsort(s->items, s->count, sizeof(*s->items), by_string);
    uint32_t out = 1;
    for (uint32_t i = 1; i < s->count; i++)
        if (strcmp(s->items[i], s->items[out - 1]) != 0)
            s->items[out++] = s->items[i];
    s->count = out;
    if (star_means_any &&
        bsearch(&(const char *){"*"}, s->items, s->count, sizeof(*s->items), by_string))
        s->any = true;
}

static int set_from_list(struct authz_set *s, const struct dagi_cfg_strings *list,
                         struct dagi_arena *arena)
{
    *s = (struct authz_set){0};
    if (!list->count)
        return DAGI_OK;
    s->items = dagi_arena_alloc(arena, list->count * sizeof(*s->items));
    if (!s->items)
        return DAGI_ETOOBIG;
    memcpy(s->items, list->items, list->count * sizeof(*s->items));
    s->count = (uint32_t)list->count;
    set_finish(s, true);
    return DAGI_OK;
}

/* ---- roles and grants ---- */

/* One grant as written: a string of allow/deny or a record of
 * allow_on/deny_on. */
struct grant_ref {
    const char *action;
    const struct dagi_cfg_strings *resources; /* NULL = every resource */
    bool deny;
};

typedef void (*grant_fn)(void *ud, uint32_t role, const struct grant_ref *g);

static void each_grant(const struct authz_doc *d, grant_fn fn, void *ud)
{
    const struct authz_doc_role *roles = d->roles.items;
    for (uint32_t r = 0; r < d->roles.count; r++) {
        const struct authz_doc_role *role = &roles[r];
        for (int deny = 0; deny < 2; deny++) {
            const struct dagi_cfg_strings *plain = deny ? &role->deny : &role->allow;
            const struct dagi_cfg_list *on = deny ? &role->deny_on : &role->allow_on;
            for (size_t i = 0; i < plain->count; i++)
                fn(ud, r, &(struct grant_ref){plain->items[i], NULL, deny});
            const struct authz_doc_grant *g = on->items;
            for (size_t i = 0; i < on->count; i++)
                fn(ud, r, &(struct grant_ref){g[i].action, &g[i].resources, deny});
        }
    }
}

struct builder {
    struct dagi_authz_bundle *b;
    struct dagi_arena *arena;
    size_t written; /* grants as written, an upper bound on entries and actions */
    uint32_t action_count, entry_count;
    bool *has_deny;
    bool fill; /* second pass: copy resources into the sized arrays */
    int rc;
};

static void count_grant(void *ud, uint32_t role, const struct grant_ref *g)
{
    (void)role;
    struct builder *bl = ud;
    bl->written++;
    if (g->deny)
        bl->b->denies++;
    else
        bl->b->grants++;
}

static struct authz_entry *entry_for(struct builder *bl, uint32_t role, const char *action,
                                     bool deny)
{
    struct dagi_authz_bundle *b = bl->b;
    uint32_t len = (uint32_t)strlen(action);
    uint32_t a =
        authz_strmap_put(&b->actions, action, len, authz_hash(action, len), bl->action_count);
    if (a == AUTHZ_NONE)
        a = bl->action_count++;
    if (deny)
        bl->has_deny[a] = true;
    uint64_t key = authz_grant_key(role, a);
    struct authz_grantmap *m = &b->grants_by_role;
    for (uint32_t i = authz_grant_slot(key, m->mask);; i = (i + 1) & m->mask) {
        struct authz_grantslot *s = &m->slots[i];
        if (s->entry == AUTHZ_NONE) {
            s->key = key;
            s->entry = bl->entry_count++;
            return &b->entries[s->entry];
        }
        if (s->key == key)
            return &b->entries[s->entry];
    }
}

/* Pass 1 (!fill): creates the entries and counts each one's resources in
 * set.count; pass 2 (fill): copies them into arrays of that size. */
static void add_grant(void *ud, uint32_t role, const struct grant_ref *g)
{
    struct builder *bl = ud;
    struct authz_entry *e = entry_for(bl, role, g->action, g->deny);
    struct authz_set *set = g->deny ? &e->deny : &e->allow;
    if (g->deny)
        e->denies = true;
    else
        e->allows = true;
    if (!g->resources) {
        set->any = true;
        return;
    }
    if (!bl->fill) {
        set->count += (uint32_t)g->resources->count;
        return;
    }
    memcpy(set->items + set->count, g->resources->items, g->resources->count * sizeof(*set->items));
    set->count += (uint32_t)g->resources->count;
}

static int alloc_sets(struct builder *bl)
{
    for (uint32_t i = 0; i < bl->entry_count; i++) {
        struct authz_set *sets[2] = {&bl->b->entries[i].allow, &bl->b->entries[i].deny};
        for (int k = 0; k < 2; k++) {
            if (sets[k]->count) {
                sets[k]->items = dagi_arena_alloc(bl->arena, sets[k]->count * sizeof(char *));
                if (!sets[k]->items)
                    return DAGI_ETOOBIG;
            }
            sets[k]->count = 0;
        }
    }
    return DAGI_OK;
}

static int compile_grants(struct builder *bl)
{
    struct dagi_authz_bundle *b = bl->b;
    const struct authz_doc *d = b->doc;
    b->role_count = (uint32_t)d->roles.count;
    b->role_ids = dagi_arena_alloc(bl->arena, (d->roles.count + 1) * sizeof(*b->role_ids));
    if (!b->role_ids)
        return DAGI_ETOOBIG;
    const struct authz_doc_role *roles = d->roles.items;
    for (uint32_t r = 0; r < b->role_count; r++)
        b->role_ids[r] = roles[r].id;

    each_grant(d, count_grant, bl);
    uint32_t n = table_size(bl->written);
    b->grants_by_role.slots =
        dagi_arena_alloc(bl->arena, (size_t)n * sizeof(struct authz_grantslot));
    b->grants_by_role.mask = n - 1;
    b->entries = dagi_arena_zalloc(bl->arena, (bl->written + 1) * sizeof(*b->entries));
    bl->has_deny = dagi_arena_zalloc(bl->arena, bl->written + 1);
    if (!b->grants_by_role.slots || !b->entries || !bl->has_deny ||
        authz_strmap_init(&b->actions, bl->arena, bl->written) != 0)
        return DAGI_ETOOBIG;
    for (uint32_t i = 0; i < n; i++)
        b->grants_by_role.slots[i] = (struct authz_grantslot){0, AUTHZ_NONE};

    each_grant(d, add_grant, bl);
    if (alloc_sets(bl) != 0)
        return DAGI_ETOOBIG;
    bl->fill = true;
    each_grant(d, add_grant, bl);
    for (uint32_t i = 0; i < bl->entry_count; i++) {
        set_finish(&b->entries[i].allow, false);
        set_finish(&b->entries[i].deny, false);
    }
    b->action_has_deny = bl->has_deny;
    b->star_action = strmap_find(&b->actions, "*");
    return DAGI_OK;
}

/* ---- bindings ---- */

static int by_index(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int compile_bindings(struct builder *bl)
{
    struct dagi_authz_bundle *b = bl->b;
    const struct authz_doc *d = b->doc;
    const struct authz_doc_binding *list = d->bindings.items;
    struct dagi_arena *scratch = dagi_arena_new(0);
    struct authz_strmap roles;
    int rc = DAGI_ETOOBIG;
    /* role id -> index, for this pass only */
    if (authz_strmap_init(&roles, scratch, b->role_count) != 0)
        goto out;
    for (uint32_t r = 0; r < b->role_count; r++) {
        uint32_t len = (uint32_t)strlen(b->role_ids[r]);
        authz_strmap_put(&roles, b->role_ids[r], len, authz_hash(b->role_ids[r], len), r);
    }
    /* Subjects first (binding index = first appearance), with how many
     * roles each may get; then the role arrays, filled without repeats. */
    uint32_t *slots_of = dagi_arena_zalloc(scratch, (d->bindings.count + 1) * sizeof(uint32_t));
    b->bindings = dagi_arena_zalloc(bl->arena, (d->bindings.count + 1) * sizeof(*b->bindings));
    if (!slots_of || !b->bindings || authz_strmap_init(&b->subjects, bl->arena, d->bindings.count))
        goto out;
    uint32_t count = 0;
    for (size_t i = 0; i < d->bindings.count; i++) {
        const char *s = list[i].subject;
        uint32_t len = (uint32_t)strlen(s);
        uint32_t at = authz_strmap_put(&b->subjects, s, len, authz_hash(s, len), count);
        if (at == AUTHZ_NONE)
            at = count++;
        slots_of[at] += (uint32_t)list[i].roles.count;
    }
    for (uint32_t k = 0; k < count; k++) {
        b->bindings[k].roles = dagi_arena_alloc(bl->arena, (slots_of[k] + 1) * sizeof(uint32_t));
        if (!b->bindings[k].roles)
            goto out;
    }
    for (size_t i = 0; i < d->bindings.count; i++) {
        uint32_t at = strmap_find(&b->subjects, list[i].subject);
        struct authz_binding *bd = &b->bindings[at];
        for (size_t k = 0; k < list[i].roles.count; k++) {
            uint32_t r = strmap_find(&roles, list[i].roles.items[k]);
            if (r != AUTHZ_NONE) /* the schema check makes it so */
                ((uint32_t *)bd->roles)[bd->count++] = r;
        }
    }
    /* A role bound twice to one subject would only be looked at twice. */
    for (uint32_t k = 0; k < count; k++) {
        uint32_t *r = (uint32_t *)b->bindings[k].roles, n = b->bindings[k].count, out = 0;
        qsort(r, n, sizeof(*r), by_index);
        for (uint32_t i = 0; i < n; i++)
            if (!out || r[i] != r[out - 1])
                r[out++] = r[i];
        b->bindings[k].count = out;
    }
    b->star_binding = strmap_find(&b->subjects, "*");
    rc = DAGI_OK;
out:
    dagi_arena_free(scratch);
    return rc;
}

/* ---- teams ---- */

static int compile_teams(struct builder *bl)
{
    struct dagi_authz_bundle *b = bl->b;
    const struct authz_doc *d = b->doc;
    const struct authz_doc_plan *plans = d->plans.items;
    const struct authz_doc_team *teams = d->teams.items;
    b->team_list = dagi_arena_zalloc(bl->arena, (d->teams.count + 1) * sizeof(*b->team_list));
    struct authz_strmap by_id;
    if (!b->team_list || authz_strmap_init(&b->teams, bl->arena, d->teams.count) != 0 ||
        authz_strmap_init(&by_id, bl->arena, d->plans.count) != 0)
        return DAGI_ETOOBIG;
    for (uint32_t k = 0; k < d->plans.count; k++) {
        uint32_t len = (uint32_t)strlen(plans[k].id);
        authz_strmap_put(&by_id, plans[k].id, len, authz_hash(plans[k].id, len), k);
    }
    for (uint32_t i = 0; i < d->teams.count; i++) {
        const struct authz_doc_team *t = &teams[i];
        uint32_t k = strmap_find(&by_id, t->plan);
        if (k == AUTHZ_NONE)
            return DAGI_EINTERNAL; /* the schema check refuses an unknown plan */
        const struct authz_doc_plan *p = &plans[k];
        struct authz_team *out = &b->team_list[i];
        out->id = t->id;
        out->max_mode = (enum dagi_authz_mode)p->max_mode;
        if (t->max_mode)
            dagi_authz_mode_parse(t->max_mode, &out->max_mode);
        if (set_from_list(&out->agents, t->agents.items ? &t->agents : &p->agents, bl->arena) ||
            set_from_list(&out->models, t->models.items ? &t->models : &p->models, bl->arena))
            return DAGI_ETOOBIG;
        uint32_t len = (uint32_t)strlen(t->id);
        authz_strmap_put(&b->teams, t->id, len, authz_hash(t->id, len), i);
    }
    b->star_team = strmap_find(&b->teams, "*");
    return DAGI_OK;
}

const struct authz_team *authz_team_find(const struct dagi_authz_bundle *b, const char *team)
{
    uint32_t i = team && *team ? strmap_find(&b->teams, team) : AUTHZ_NONE;
    if (i == AUTHZ_NONE)
        i = b->star_team;
    return i == AUTHZ_NONE ? NULL : &b->team_list[i];
}

/* ---- the bundle ---- */

int dagi_authz_compile(const char *text, size_t len, const char *source,
                       struct dagi_authz_bundle **out, struct dagi_cfg_errors *errs)
{
    struct dagi_authz_bundle *b = dagi_xcalloc(1, sizeof(*b));
    atomic_init(&b->refs, 1);
    b->arena = dagi_arena_new(0);
    b->source = dagi_arena_strdup(b->arena, source ? source : "policy.yml");
    struct authz_doc *doc = NULL;
    int rc = authz_doc_load(text, len, b->source, b->arena, &doc, errs);
    if (rc)
        goto out;
    b->doc = doc;
    unsigned char sum[crypto_generichash_BYTES];
    crypto_generichash(sum, sizeof(sum), (const unsigned char *)text, len, NULL, 0);
    sodium_bin2hex(b->checksum, sizeof(b->checksum), sum, sizeof(sum));
    struct builder bl = {.b = b, .arena = b->arena};
    rc = compile_grants(&bl);
    if (!rc)
        rc = compile_bindings(&bl);
    if (!rc)
        rc = compile_teams(&bl);
    if (rc)
        dagi_cfg_errors_add(errs, "%s: the policy bundle does not fit its memory cap", b->source);
out:
    if (rc) {
        dagi_authz_bundle_unref(b);
        return rc;
    }
    *out = b;
    return DAGI_OK;
}

struct dagi_authz_bundle *dagi_authz_bundle_ref(struct dagi_authz_bundle *b)
{
    if (b)
        atomic_fetch_add(&b->refs, 1);
    return b;
}

void dagi_authz_bundle_unref(struct dagi_authz_bundle *b)
{
    if (!b || atomic_fetch_sub(&b->refs, 1) != 1)
        return;
    dagi_arena_free(b->arena);
    free(b);
}

void dagi_authz_bundle_summary(const struct dagi_authz_bundle *b, struct dagi_authz_summary *out)
{
    memset(out, 0, sizeof(*out));
    if (!b)
        return;
    out->source = b->source;
    memcpy(out->checksum, b->checksum, sizeof(out->checksum));
    out->roles = b->role_count;
    out->grants = b->grants;
    out->denies = b->denies;
    out->bindings = b->doc->bindings.count;
    out->plans = b->doc->plans.count;
    out->teams = b->doc->teams.count;
}

/* ---- agent ids against the registry ---- */

static bool known_agent(const char *id, const char *const *known, size_t n)
{
    if (strcmp(id, "*") == 0)
        return true;
    for (size_t i = 0; i < n; i++)
        if (strcmp(known[i], id) == 0)
            return true;
    return false;
}

static void check_list(const struct dagi_authz_bundle *b, const char *where, size_t i,
                       const char *what, const struct dagi_cfg_strings *l, const char *const *known,
                       size_t n, struct dagi_cfg_errors *errs)
{
    for (size_t k = 0; k < l->count; k++)
        if (!known_agent(l->items[k], known, n))
            dagi_cfg_errors_add(errs, "%s: %s[%zu].%s[%zu]: unknown agent \"%.64s\"", b->source,
                                where, i, what, k, l->items[k]);
}

int dagi_authz_check_agents(const struct dagi_authz_bundle *b, const char *const *known, size_t n,
                            struct dagi_cfg_errors *errs)
{
    size_t before = errs->count;
    if (!b)
        return DAGI_OK;
    const struct authz_doc *d = b->doc;
    const struct authz_doc_plan *plans = d->plans.items;
    for (size_t i = 0; i < d->plans.count; i++)
        check_list(b, "plans", i, "agents", &plans[i].agents, known, n, errs);
    const struct authz_doc_team *teams = d->teams.items;
    for (size_t i = 0; i < d->teams.count; i++)
        check_list(b, "teams", i, "agents", &teams[i].agents, known, n, errs);
    /* Resources of agent.* grants are agent ids (agent.use, agent.tool.x). */
    const struct authz_doc_role *roles = d->roles.items;
    for (size_t i = 0; i < d->roles.count; i++) {
        for (int deny = 0; deny < 2; deny++) {
            const struct dagi_cfg_list *on = deny ? &roles[i].deny_on : &roles[i].allow_on;
            const struct authz_doc_grant *g = on->items;
            for (size_t j = 0; j < on->count; j++) {
                if (strncmp(g[j].action, "agent.", 6) != 0)
                    continue;
                char what[64];
                snprintf(what, sizeof(what), "%s[%zu].resources", deny ? "deny_on" : "allow_on", j);
                check_list(b, "roles", i, what, &g[j].resources, known, n, errs);
            }
        }
    }
    return errs->count == before ? DAGI_OK : DAGI_EINVAL;
}
