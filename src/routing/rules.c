/* Routing rules: the schema tables that bind routing.yml (and the registry's
 * overrides) through core/config, the checks the tables cannot express, and
 * the matcher.
 *
 * The recursion all/any -> condition goes through lists (pointers), so the C
 * structs stay finite; `not` is a section holding a dagi_rule_test, which has
 * all/any but no `not` of its own.  A section the document leaves out is still
 * bound (with defaults) and checked, so "absent" and "empty" look alike: the
 * checks treat an empty `not` as no `not`, and an empty `when` as "always". */
#include "routing/rules.h"

#include "core/err.h"
#include "core/mem.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LENGTH_MAX 1000000000.0
#define MAX_ALTERNATIVES 64
#define MAX_RULES 10000
/* Mirrors the engine's cap so a hostile document cannot grow the report. */

struct rules_file {
    int64_t version;
    struct dagi_cfg_list rules; /* struct dagi_rule */
};

static const char *const tri_values[] = {"false", "true", "any", NULL};

/* ---- schema ---- */

#define LEN_OF(member) __typeof__(((struct dagi_rule_test *)0)->member)

static void check_length(void *record, struct dagi_cfg_ctx *ctx)
{
    LEN_OF(message_length) *l = record;
    if (l->min > l->max)
        dagi_cfg_report(ctx, "min", "is above max (%lld > %lld)", (long long)l->min,
                        (long long)l->max);
}

static const struct dagi_cfg_field length_fields[] = {
    {"min", DAGI_CFG_INT, offsetof(LEN_OF(message_length), min), "0", 0, LENGTH_MAX, NULL, NULL, 0,
     "Shortest message, in bytes."},
    {"max", DAGI_CFG_INT, offsetof(LEN_OF(message_length), max), "1000000000", 0, LENGTH_MAX, NULL,
     NULL, 0, "Longest message, in bytes."},
};
static const struct dagi_cfg_schema length_schema = {"message_length",
                                                     "Bounds on the message length (inclusive).",
                                                     sizeof(LEN_OF(message_length)),
                                                     length_fields,
                                                     DAGI_ARRAY_LEN(length_fields),
                                                     check_length};

static const struct dagi_cfg_field kv_fields[] = {
    {"key", DAGI_CFG_STRING, offsetof(struct dagi_rule_kv, key), NULL, 1, 256, NULL, NULL,
     DAGI_CFG_REQUIRED, "Metadata key."},
    {"value", DAGI_CFG_STRING, offsetof(struct dagi_rule_kv, value), NULL, 0, 4096, NULL, NULL,
     DAGI_CFG_REQUIRED, "Value it must equal (strings, true/false and integers compare)."},
};
static const struct dagi_cfg_schema kv_schema = {"metadata.equals[]",         "One key/value test.",
                                                 sizeof(struct dagi_rule_kv), kv_fields,
                                                 DAGI_ARRAY_LEN(kv_fields),   NULL};

static const struct dagi_cfg_field meta_fields[] = {
    {"equals", DAGI_CFG_LIST, offsetof(LEN_OF(metadata), equals), NULL, 1, MAX_ALTERNATIVES, NULL,
     &kv_schema, 0, "Every listed key must be present with that value."},
    {"has", DAGI_CFG_STRING_LIST, offsetof(LEN_OF(metadata), has), NULL, 1, MAX_ALTERNATIVES, NULL,
     NULL, 0, "Every listed key must be present and not null."},
};
static const struct dagi_cfg_schema meta_schema = {"metadata",
                                                   "Tests on the request's metadata object.",
                                                   sizeof(LEN_OF(metadata)),
                                                   meta_fields,
                                                   DAGI_ARRAY_LEN(meta_fields),
                                                   NULL};

static const struct dagi_cfg_schema cond_schema;

/* The rows a dagi_rule_test binds; a dagi_rule_cond starts with one, so the
 * same offsets serve both (asserted below). */
/* clang-format off */
#define TEST_ROWS                                                                                  \
    {"agent", DAGI_CFG_STRING_LIST, offsetof(struct dagi_rule_test, agent), NULL, 1,               \
     MAX_ALTERNATIVES, NULL, NULL, 0, "The agent id is one of these."},                            \
    {"channel", DAGI_CFG_STRING_LIST, offsetof(struct dagi_rule_test, channel), NULL, 1,           \
     MAX_ALTERNATIVES, NULL, NULL, 0, "The channel (telegram, http, ...) is one of these."},       \
    {"task_type", DAGI_CFG_STRING_LIST, offsetof(struct dagi_rule_test, task_type), NULL, 1,       \
     MAX_ALTERNATIVES, NULL, NULL, 0, "The task type is one of these."},                           \
    {"has_image", DAGI_CFG_ENUM, offsetof(struct dagi_rule_test, has_image), "any", 0, 0,          \
     tri_values, NULL, 0, "The request carries an image (true), none (false), or either."},       \
    {"has_audio", DAGI_CFG_ENUM, offsetof(struct dagi_rule_test, has_audio), "any", 0, 0,          \
     tri_values, NULL, 0, "The request carries audio (true), none (false), or either."},          \
    {"message_length", DAGI_CFG_SECTION, offsetof(struct dagi_rule_test, message_length), NULL,    \
     0, 0, NULL, &length_schema, 0, "Bounds on the message length."},                             \
    {"metadata", DAGI_CFG_SECTION, offsetof(struct dagi_rule_test, metadata), NULL, 0, 0, NULL,    \
     &meta_schema, 0, "Tests on the metadata."},                                                  \
    {"all", DAGI_CFG_LIST, offsetof(struct dagi_rule_test, all), NULL, 1, MAX_ALTERNATIVES, NULL,  \
     &cond_schema, 0, "Every condition holds."},                                                  \
    {"any", DAGI_CFG_LIST, offsetof(struct dagi_rule_test, any), NULL, 1, MAX_ALTERNATIVES, NULL,  \
     &cond_schema, 0, "At least one condition holds."}
/* clang-format on */

_Static_assert(offsetof(struct dagi_rule_cond, test) == 0, "cond rows reuse test offsets");

static bool leaf_empty(const struct dagi_rule_test *t)
{
    return !t->agent.count && !t->channel.count && !t->task_type.count &&
           t->has_image == DAGI_RULE_EITHER && t->has_audio == DAGI_RULE_EITHER &&
           t->message_length.min == 0 && t->message_length.max == (int64_t)LENGTH_MAX &&
           !t->metadata.equals.count && !t->metadata.has.count;
}

static bool test_empty(const struct dagi_rule_test *t)
{
    return leaf_empty(t) && !t->all.count && !t->any.count;
}

/* How many of leaf / all / any / not a node uses. */
static int kinds(const struct dagi_rule_test *t, const struct dagi_rule_test *negated)
{
    return !leaf_empty(t) + (t->all.count > 0) + (t->any.count > 0) +
           (negated && !test_empty(negated));
}

static void report_mixed(struct dagi_cfg_ctx *ctx)
{
    dagi_cfg_report(ctx, NULL,
                    "a condition is exactly one of all, any, not or a leaf; wrap the parts "
                    "in all: [...]");
}

static void check_negated(void *record, struct dagi_cfg_ctx *ctx)
{
    if (kinds(record, NULL) > 1)
        report_mixed(ctx);
}

static void check_when(void *record, struct dagi_cfg_ctx *ctx)
{
    struct dagi_rule_cond *c = record;
    if (kinds(&c->test, &c->negated) > 1)
        report_mixed(ctx);
}

static void check_nested(void *record, struct dagi_cfg_ctx *ctx)
{
    struct dagi_rule_cond *c = record;
    int k = kinds(&c->test, &c->negated);
    if (k > 1)
        report_mixed(ctx);
    else if (k == 0)
        dagi_cfg_report(ctx, NULL,
                        "empty condition (give all, any, not, or a leaf key such as "
                        "agent or has_image)");
}

static const struct dagi_cfg_field test_fields[] = {TEST_ROWS};
static const struct dagi_cfg_schema negated_schema = {
    "not",
    "A condition that must not hold (it holds no `not` itself).",
    sizeof(struct dagi_rule_test),
    test_fields,
    DAGI_ARRAY_LEN(test_fields),
    check_negated};

static const struct dagi_cfg_field cond_fields[] = {
    TEST_ROWS,
    {"not", DAGI_CFG_SECTION, offsetof(struct dagi_rule_cond, negated), NULL, 0, 0, NULL,
     &negated_schema, 0, "The condition does not hold."},
};
static const struct dagi_cfg_schema cond_schema = {
    "condition", "A node of all/any lists.",  sizeof(struct dagi_rule_cond),
    cond_fields, DAGI_ARRAY_LEN(cond_fields), check_nested};
static const struct dagi_cfg_schema when_schema = {"when",
                                                   "When the rule applies; absent = always.",
                                                   sizeof(struct dagi_rule_cond),
                                                   cond_fields,
                                                   DAGI_ARRAY_LEN(cond_fields),
                                                   check_when};

#define USE_OF(member) __typeof__(((struct dagi_rule *)0)->member)

/* The model ids that loads on this thread check against (see
 * dagi_rules_check_models_during); off outside such a load. */
static _Thread_local bool known_on;
static _Thread_local const char *const *known_ids;
static _Thread_local size_t known_n;

void dagi_rules_check_models_during(const char *const *known, size_t n)
{
    known_on = true;
    known_ids = known;
    known_n = n;
}

void dagi_rules_check_models_done(void)
{
    known_on = false;
}

void dagi_rules_report_unknown_model(struct dagi_cfg_ctx *ctx, const char *key, const char *id)
{
    if (known_on && id && !dagi_rules_model_known(id, known_ids, known_n))
        dagi_cfg_report(ctx, key, "unknown model \"%s\" (not builtin nor in swapper.models)", id);
}

static void check_use(void *record, struct dagi_cfg_ctx *ctx)
{
    USE_OF(use) *u = record;
    dagi_rules_report_unknown_model(ctx, "model", u->model);
    for (size_t i = 0; i < u->fallbacks.count; i++)
        dagi_rules_report_unknown_model(ctx, "fallbacks", u->fallbacks.items[i]);
    size_t n = u->fallbacks.count;
    /* The last resort must be the offline model, so a rule can never leave
     * a request without an answer when every provider is down. */
    if (n && strcmp(u->fallbacks.items[n - 1], "builtin") != 0)
        dagi_cfg_report(ctx, "fallbacks", "must end with builtin");
}

static const struct dagi_cfg_field use_fields[] = {
    {"model", DAGI_CFG_STRING, offsetof(USE_OF(use), model), NULL, 1, 128, NULL, NULL,
     DAGI_CFG_REQUIRED, "The model id (swapper.models[].id, or builtin)."},
    {"fallbacks", DAGI_CFG_STRING_LIST, offsetof(USE_OF(use), fallbacks), NULL, 1, 16, NULL, NULL,
     0, "Models tried in order when it fails; ends with builtin. Absent = the agent's."},
};
static const struct dagi_cfg_schema use_schema = {
    "use",      "The model to use.",        sizeof(USE_OF(use)),
    use_fields, DAGI_ARRAY_LEN(use_fields), check_use};

/* Depth of a node (a leaf alone is 1; all/any/not add one level each).  A
 * depth above `budget` may come back as budget + 1, so a tree deeper than the
 * cap costs no more than the cap to measure. */
static int depth_cond(const struct dagi_rule_cond *c, int budget);

static int depth_test(const struct dagi_rule_test *t, int budget)
{
    int deepest = 0;
    const struct dagi_cfg_list *lists[2] = {&t->all, &t->any};
    for (int k = 0; k < 2; k++) {
        const struct dagi_rule_cond *items = lists[k]->items;
        for (size_t i = 0; i < lists[k]->count; i++) {
            if (budget <= 1)
                return budget + 1;
            int d = depth_cond(&items[i], budget - 1);
            deepest = d > deepest ? d : deepest;
        }
    }
    return 1 + deepest;
}

static int depth_cond(const struct dagi_rule_cond *c, int budget)
{
    int d = depth_test(&c->test, budget);
    if (!test_empty(&c->negated)) {
        int n = budget <= 1 ? budget + 1 : 1 + depth_test(&c->negated, budget - 1);
        d = n > d ? n : d;
    }
    return d;
}

static void check_rule(void *record, struct dagi_cfg_ctx *ctx)
{
    struct dagi_rule *r = record;
    if (depth_cond(&r->when, DAGI_RULES_MAX_DEPTH) > DAGI_RULES_MAX_DEPTH)
        dagi_cfg_report(ctx, "when", "conditions nest deeper than %d levels", DAGI_RULES_MAX_DEPTH);
}

static const struct dagi_cfg_field rule_fields[] = {
    {"name", DAGI_CFG_STRING, offsetof(struct dagi_rule, name), NULL, 1, 128, NULL, NULL,
     DAGI_CFG_REQUIRED, "Names the rule in logs, metrics and errors; unique in its list."},
    {"priority", DAGI_CFG_INT, offsetof(struct dagi_rule, priority), "0", -1000000, 1000000, NULL,
     NULL, 0, "Higher is tried first; equal priorities keep file order."},
    {"when", DAGI_CFG_SECTION, offsetof(struct dagi_rule, when), NULL, 0, 0, NULL, &when_schema, 0,
     "The condition; absent = every request."},
    {"use", DAGI_CFG_SECTION, offsetof(struct dagi_rule, use), NULL, 0, 0, NULL, &use_schema,
     DAGI_CFG_REQUIRED, "The model and its fallbacks."},
};
const struct dagi_cfg_schema dagi_rules_rule_schema = {
    "rules[]",   "A routing rule.",           sizeof(struct dagi_rule),
    rule_fields, DAGI_ARRAY_LEN(rule_fields), check_rule};

static void check_file(void *record, struct dagi_cfg_ctx *ctx)
{
    struct rules_file *f = record;
    const struct dagi_rule *r = f->rules.items;
    if (f->version != 1)
        dagi_cfg_report(ctx, "version", "unsupported version %lld (this build reads 1)",
                        (long long)f->version);
    for (size_t i = 0; i < f->rules.count; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(r[i].name, r[j].name) == 0)
                dagi_cfg_report(ctx, "rules", "rule name \"%s\" is used twice (rules[%zu], [%zu])",
                                r[i].name, j, i);
}

static const struct dagi_cfg_field file_fields[] = {
    {"version", DAGI_CFG_INT, offsetof(struct rules_file, version), "1", 0, 0, NULL, NULL, 0,
     "Format version of the file (1)."},
    {"rules", DAGI_CFG_LIST, offsetof(struct rules_file, rules), NULL, 0, MAX_RULES, NULL,
     &dagi_rules_rule_schema, 0, "The rules."},
};
const struct dagi_cfg_schema dagi_rules_file_schema = {
    "routing.yml",
    "Routing rules: which model answers a request.",
    sizeof(struct rules_file),
    file_fields,
    DAGI_ARRAY_LEN(file_fields),
    check_file};

/* ---- loading ---- */

static int by_priority(const void *a, const void *b)
{
    const struct dagi_rule *x = *(const struct dagi_rule *const *)a;
    const struct dagi_rule *y = *(const struct dagi_rule *const *)b;
    if (x->priority != y->priority)
        return x->priority > y->priority ? -1 : 1;
    /* Same array, so addresses are file order: makes qsort stable. */
    return x < y ? -1 : x > y;
}

int dagi_rules_init(struct dagi_rules *rules, const struct dagi_cfg_list *list,
                    struct dagi_arena *arena)
{
    const struct dagi_rule **order = NULL;
    if (list->count) {
        order = dagi_arena_alloc(arena, list->count * sizeof(*order));
        if (!order)
            return DAGI_ETOOBIG;
        for (size_t i = 0; i < list->count; i++)
            order[i] = (const struct dagi_rule *)list->items + i;
        qsort(order, list->count, sizeof(*order), by_priority);
    }
    rules->rules = list->items;
    rules->count = list->count;
    rules->order = order;
    return DAGI_OK;
}

static int finish(int rc, void *obj, struct dagi_arena *arena, const struct dagi_rules **out,
                  struct dagi_cfg_errors *errs)
{
    if (rc)
        return rc;
    struct dagi_rules *rules = dagi_arena_zalloc(arena, sizeof(*rules));
    if (!rules || dagi_rules_init(rules, &((struct rules_file *)obj)->rules, arena) != 0) {
        dagi_cfg_errors_add(errs, "routing rules exceed the memory cap of their arena");
        return DAGI_ETOOBIG;
    }
    *out = rules;
    return DAGI_OK;
}

int dagi_rules_load_file(const char *path, struct dagi_arena *arena, const struct dagi_rules **out,
                         struct dagi_cfg_errors *errs)
{
    void *obj = NULL;
    int rc = dagi_cfg_load_file(&dagi_rules_file_schema, path, arena, &obj, errs);
    return finish(rc, obj, arena, out, errs);
}

int dagi_rules_load_yaml(const char *name, const char *text, size_t len, struct dagi_arena *arena,
                         const struct dagi_rules **out, struct dagi_cfg_errors *errs)
{
    void *obj = NULL;
    int rc = dagi_cfg_load_yaml(&dagi_rules_file_schema, name, text, len, arena, &obj, errs);
    return finish(rc, obj, arena, out, errs);
}

int dagi_rules_load_json(const struct json_t *doc, struct dagi_arena *arena,
                         const struct dagi_rules **out, struct dagi_cfg_errors *errs)
{
    void *obj = NULL;
    int rc = dagi_cfg_load_json(&dagi_rules_file_schema, doc, arena, &obj, errs);
    return finish(rc, obj, arena, out, errs);
}

/* ---- matching ---- */

static bool match_strings(const struct dagi_cfg_strings *alts, const char *fact)
{
    if (!alts->count)
        return true;
    for (size_t i = 0; fact && i < alts->count; i++)
        if (strcmp(alts->items[i], fact) == 0)
            return true;
    return false;
}

static bool match_tri(int want, bool fact)
{
    return want == DAGI_RULE_EITHER || (want == DAGI_RULE_TRUE) == fact;
}

/* YAML gives every value as text; a JSON fact compares by its text form
 * where it has an unambiguous one (reals do not: 1.0 vs 1). */
static bool value_equals(const json_t *v, const char *want)
{
    char num[32];
    switch (json_typeof(v)) {
    case JSON_STRING:
        return strcmp(json_string_value(v), want) == 0;
    case JSON_TRUE:
        return strcmp(want, "true") == 0;
    case JSON_FALSE:
        return strcmp(want, "false") == 0;
    case JSON_INTEGER:
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return strcmp(num, want) == 0;
    default:
        return false;
    }
}

static bool match_metadata(const struct dagi_rule_test *t, const json_t *meta)
{
    const struct dagi_rule_kv *kv = t->metadata.equals.items;
    if (!t->metadata.equals.count && !t->metadata.has.count)
        return true;
    if (!json_is_object(meta))
        return false;
    for (size_t i = 0; i < t->metadata.equals.count; i++) {
        const json_t *v = json_object_get(meta, kv[i].key);
        if (!v || !value_equals(v, kv[i].value))
            return false;
    }
    for (size_t i = 0; i < t->metadata.has.count; i++) {
        const json_t *v = json_object_get(meta, t->metadata.has.items[i]);
        if (!v || json_is_null(v))
            return false;
    }
    return true;
}

static bool match_cond(const struct dagi_rule_cond *c, const struct dagi_route_facts *f);

/* Every part given must hold; the load guarantees one kind per node, so this
 * is the leaf test, the all test or the any test. Recursion is bounded by
 * DAGI_RULES_MAX_DEPTH, checked at load. */
static bool match_test(const struct dagi_rule_test *t, const struct dagi_route_facts *f)
{
    if (!match_strings(&t->agent, f->agent) || !match_strings(&t->channel, f->channel) ||
        !match_strings(&t->task_type, f->task_type) || !match_tri(t->has_image, f->has_image) ||
        !match_tri(t->has_audio, f->has_audio))
        return false;
    if ((uint64_t)f->message_length < (uint64_t)t->message_length.min ||
        (uint64_t)f->message_length > (uint64_t)t->message_length.max)
        return false;
    if (!match_metadata(t, f->metadata))
        return false;
    const struct dagi_rule_cond *all = t->all.items, *any = t->any.items;
    for (size_t i = 0; i < t->all.count; i++)
        if (!match_cond(&all[i], f))
            return false;
    for (size_t i = 0; i < t->any.count; i++)
        if (match_cond(&any[i], f))
            return true;
    return t->any.count == 0;
}

static bool match_cond(const struct dagi_rule_cond *c, const struct dagi_route_facts *f)
{
    if (!match_test(&c->test, f))
        return false;
    return test_empty(&c->negated) || !match_test(&c->negated, f);
}

const struct dagi_rule *dagi_rules_match(const struct dagi_rules *rules,
                                         const struct dagi_route_facts *facts)
{
    for (size_t i = 0; rules && i < rules->count; i++)
        if (match_cond(&rules->order[i]->when, facts))
            return rules->order[i];
    return NULL;
}

/* ---- model ids ---- */

bool dagi_rules_model_known(const char *id, const char *const *known, size_t n)
{
    if (strcmp(id, "builtin") == 0)
        return true;
    for (size_t i = 0; i < n; i++)
        if (strcmp(known[i], id) == 0)
            return true;
    return false;
}

int dagi_rules_check_models(const struct dagi_rules *rules, const char *where,
                            const char *const *known, size_t n, struct dagi_cfg_errors *errs)
{
    size_t before = errs->count;
    for (size_t i = 0; rules && i < rules->count; i++) {
        const struct dagi_rule *r = &rules->rules[i];
        if (!dagi_rules_model_known(r->use.model, known, n))
            dagi_cfg_errors_add(errs,
                      "%s[%zu].use.model: unknown model \"%s\" (not builtin nor in "
                      "swapper.models)",
                      where, i, r->use.model);
        for (size_t k = 0; k < r->use.fallbacks.count; k++)
            if (!dagi_rules_model_known(r->use.fallbacks.items[k], known, n))
                dagi_cfg_errors_add(errs,
                          "%s[%zu].use.fallbacks[%zu]: unknown model \"%s\" (not builtin "
                          "nor in swapper.models)",
                          where, i, k, r->use.fallbacks.items[k]);
    }
    return errs->count == before ? DAGI_OK : DAGI_EINVAL;
}
