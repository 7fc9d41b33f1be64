/* The budgets document (quota.h): its schema, the checks the schema table
 * cannot express, compiling into a shared immutable set, and which budgets
 * apply to a request.
 *
 * Limits are "absent = unlimited": the schema binds an absent integer as 0,
 * and the bounds start at 1, so a written 0 is an error rather than a
 * budget that silently refuses everything (block a user with the lists,
 * not with a quota). */
#include "quota/quota.h"

#include "core/err.h"
#include "core/mem.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* 10^15 tokens or requests is far beyond any real budget and exact in a
 * double (the schema's bounds type). */
#define LIMIT_MAX 1e15

struct dagi_quota_budgets {
    atomic_int refs;
    struct dagi_arena *arena; /* the bound document; NULL for the empty set */
    const struct dagi_quota_budget *items;
    size_t count;
};

struct quota_file {
    struct dagi_cfg_list budgets; /* struct dagi_quota_budget */
};

static const char *const per_values[] = {"user", "team", "agent", NULL};
static const char *const window_values[] = {"minute", "day", "month", NULL};

const char *dagi_quota_per_name(int per)
{
    return per >= 0 && per < 3 ? per_values[per] : "?";
}

const char *dagi_quota_window_name(int window)
{
    return window >= 0 && window < 3 ? window_values[window] : "?";
}

/* ---- checks ---- */

static bool is_slug(const char *s)
{
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") == strlen(s);
}

/* An id as users, teams and agents have them: printable, no spaces. */
static bool is_name(const char *s)
{
    if (!*s)
        return false;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c <= ' ' || *c == 0x7f)
            return false;
    return true;
}

static void check_budget(void *record, struct dagi_cfg_ctx *ctx)
{
    struct dagi_quota_budget *b = record;
    if (!is_slug(b->id))
        dagi_cfg_report(ctx, "id",
                        "must start with a-z or 0-9 and hold only a-z, 0-9, '_' and '-'");
    if (strcmp(b->match, "*") != 0 && !is_name(b->match))
        dagi_cfg_report(ctx, "match",
                        "must be \"*\" or one id without spaces or control "
                        "characters");
    for (size_t i = 0; i < b->agents.count; i++) {
        if (!is_name(b->agents.items[i]))
            dagi_cfg_report(ctx, "agents", "\"%s\" is not an agent id", b->agents.items[i]);
        for (size_t j = 0; j < i; j++)
            if (strcmp(b->agents.items[i], b->agents.items[j]) == 0)
                dagi_cfg_report(ctx, "agents", "\"%s\" is listed twice", b->agents.items[i]);
    }
    if (!b->requests && !b->tokens)
        dagi_cfg_report(ctx, NULL, "a budget needs a limit: requests, tokens or both");
}

static void check_file(void *record, struct dagi_cfg_ctx *ctx)
{
    struct quota_file *f = record;
    const struct dagi_quota_budget *b = f->budgets.items;
    for (size_t i = 0; i < f->budgets.count; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(b[i].id, b[j].id) == 0) {
                dagi_cfg_report(ctx, "budgets",
                                "budget id \"%s\" is used twice (budgets[%zu], [%zu]): 429 "
                                "answers and events name budgets by id",
                                b[i].id, j, i);
                break;
            }
}

/* ---- schema ---- */

static const struct dagi_cfg_field budget_fields[] = {
    {"id", DAGI_CFG_STRING, offsetof(struct dagi_quota_budget, id), NULL, 1, DAGI_QUOTA_ID_MAX,
     NULL, NULL, DAGI_CFG_REQUIRED, "Unique slug; named in 429 answers, events and the admin API."},
    {"per", DAGI_CFG_ENUM, offsetof(struct dagi_quota_budget, per), NULL, 0, 0, per_values, NULL,
     DAGI_CFG_REQUIRED, "Whose counter: each user's, each team's or each agent's."},
    {"match", DAGI_CFG_STRING, offsetof(struct dagi_quota_budget, match), "*", 1,
     DAGI_QUOTA_NAME_MAX, NULL, NULL, 0, "\"*\" for every user/team/agent, or one id."},
    {"agents", DAGI_CFG_STRING_LIST, offsetof(struct dagi_quota_budget, agents), NULL, 1,
     DAGI_QUOTA_MAX_AGENTS, NULL, NULL, 0,
     "Only requests to these agents count; absent = every agent."},
    {"window", DAGI_CFG_ENUM, offsetof(struct dagi_quota_budget, window), NULL, 0, 0, window_values,
     NULL, DAGI_CFG_REQUIRED, "The UTC calendar window the counter covers (it resets at its end)."},
    {"requests", DAGI_CFG_INT, offsetof(struct dagi_quota_budget, requests), NULL, 1, LIMIT_MAX,
     NULL, NULL, 0, "Requests allowed per window; absent = no request limit."},
    {"tokens", DAGI_CFG_INT, offsetof(struct dagi_quota_budget, tokens), NULL, 1, LIMIT_MAX, NULL,
     NULL, 0, "Tokens (prompt + completion) allowed per window; absent = no token limit."},
};
static const struct dagi_cfg_schema budget_schema = {"budgets[]",
                                                     "One budget.",
                                                     sizeof(struct dagi_quota_budget),
                                                     budget_fields,
                                                     DAGI_ARRAY_LEN(budget_fields),
                                                     check_budget};

static const struct dagi_cfg_field file_fields[] = {
    {"budgets", DAGI_CFG_LIST, offsetof(struct quota_file, budgets), NULL, 0,
     DAGI_QUOTA_MAX_BUDGETS, NULL, &budget_schema, 0,
     "The budgets, checked in this order (a refusal names the first that refuses)."},
};
const struct dagi_cfg_schema dagi_quota_schema = {
    "quotas.yml",
    "Budgets of requests and tokens per user, team and agent (docs/QUOTAS.md).",
    sizeof(struct quota_file),
    file_fields,
    DAGI_ARRAY_LEN(file_fields),
    check_file};

/* ---- loading ---- */

static struct dagi_quota_budgets *wrap(struct dagi_arena *arena, const struct quota_file *f)
{
    struct dagi_quota_budgets *b = dagi_xcalloc(1, sizeof(*b));
    atomic_init(&b->refs, 1);
    b->arena = arena;
    if (f) {
        b->items = f->budgets.items;
        b->count = f->budgets.count;
    }
    return b;
}

int dagi_quota_budgets_load(const char *text, size_t len, const char *source,
                            struct dagi_quota_budgets **out, struct dagi_cfg_errors *errs)
{
    struct dagi_arena *arena = dagi_arena_new(0);
    void *obj = NULL;
    int rc = dagi_cfg_load_yaml(&dagi_quota_schema, source ? source : "quotas.yml", text, len,
                                arena, &obj, errs);
    if (rc) {
        dagi_arena_free(arena);
        return rc;
    }
    *out = wrap(arena, obj);
    return DAGI_OK;
}

int dagi_quota_budgets_load_file(const char *path, struct dagi_quota_budgets **out,
                                 struct dagi_cfg_errors *errs)
{
    struct dagi_arena *arena = dagi_arena_new(0);
    void *obj = NULL;
    int rc = dagi_cfg_load_file(&dagi_quota_schema, path, arena, &obj, errs);
    if (rc) {
        dagi_arena_free(arena);
        return rc;
    }
    *out = wrap(arena, obj);
    return DAGI_OK;
}

int dagi_quota_check_text(const char *text, size_t len, const char *source,
                          struct dagi_cfg_errors *errs)
{
    struct dagi_quota_budgets *b = NULL;
    int rc = dagi_quota_budgets_load(text, len, source, &b, errs);
    dagi_quota_budgets_unref(b);
    return rc;
}

struct dagi_quota_budgets *dagi_quota_budgets_empty(void)
{
    return wrap(NULL, NULL);
}

struct dagi_quota_budgets *dagi_quota_budgets_ref(struct dagi_quota_budgets *b)
{
    if (b)
        atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

void dagi_quota_budgets_unref(struct dagi_quota_budgets *b)
{
    if (!b || atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (b->arena)
        dagi_arena_free(b->arena);
    free(b);
}

size_t dagi_quota_budgets_count(const struct dagi_quota_budgets *b)
{
    return b ? b->count : 0;
}

const struct dagi_quota_budget *dagi_quota_budgets_at(const struct dagi_quota_budgets *b, size_t i)
{
    return b && i < b->count ? &b->items[i] : NULL;
}

const struct dagi_quota_budget *dagi_quota_budgets_find(const struct dagi_quota_budgets *b,
                                                        const char *id)
{
    for (size_t i = 0; id && i < dagi_quota_budgets_count(b); i++)
        if (strcmp(b->items[i].id, id) == 0)
            return &b->items[i];
    return NULL;
}

/* ---- applying ---- */

static const char *nonempty(const char *s)
{
    return s && *s ? s : NULL;
}

bool dagi_quota_budget_applies(const struct dagi_quota_budget *budget,
                               const struct dagi_quota_subject *s, const char **subject_id)
{
    const char *who = NULL;
    switch (budget->per) {
    case DAGI_QUOTA_PER_USER:
        who = nonempty(s->user);
        break;
    case DAGI_QUOTA_PER_TEAM:
        who = nonempty(s->team);
        break;
    case DAGI_QUOTA_PER_AGENT:
        who = nonempty(s->agent);
        break;
    }
    if (!who || (strcmp(budget->match, "*") != 0 && strcmp(budget->match, who) != 0))
        return false;
    if (budget->agents.count) {
        const char *agent = nonempty(s->agent);
        size_t i = 0;
        while (agent && i < budget->agents.count && strcmp(budget->agents.items[i], agent) != 0)
            i++;
        if (!agent || i == budget->agents.count)
            return false;
    }
    if (subject_id)
        *subject_id = who;
    return true;
}

static int check_name(const char *what, const char *s, bool required, struct dagi_error *err)
{
    if (!s || !*s)
        return required ? dagi_error_set(err, DAGI_EINVAL, "%s is required", what) : DAGI_OK;
    if (strlen(s) > DAGI_QUOTA_NAME_MAX)
        return dagi_error_set(err, DAGI_EINVAL, "%s is longer than %d bytes", what,
                              DAGI_QUOTA_NAME_MAX);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c < ' ' || *c == 0x7f)
            return dagi_error_set(err, DAGI_EINVAL, "%s holds a control character", what);
    return DAGI_OK;
}

int dagi_quota_subject_check(const struct dagi_quota_subject *s, struct dagi_error *err)
{
    int rc = check_name("user", s->user, true, err);
    if (!rc)
        rc = check_name("team", s->team, false, err);
    if (!rc)
        rc = check_name("agent", s->agent, false, err);
    return rc;
}
