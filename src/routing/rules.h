/* Routing rules (config/routing.yml, and each agent's `routing` overrides in
 * the registry): which model answers a request, decided from facts about the
 * request before any model is called.
 *
 *     rules:
 *       - name: images_to_vision
 *         priority: 100              # higher first; ties keep file order
 *         when:                      # absent = matches every request
 *           has_image: true
 *         use: {model: qwen3-vl-8b, fallbacks: [qwen3-8b, builtin]}
 *
 * A condition node is exactly one of
 *     all: [cond, ...]      every one holds
 *     any: [cond, ...]      at least one holds
 *     not: cond             does not hold (cond itself holds no `not`:
 *                           double negation is refused, not simplified)
 *     a leaf                every key given holds:
 *         agent, channel, task_type: [a, b]   the fact equals one of them
 *         has_image, has_audio: true|false    (`any`, the default: either)
 *         message_length: {min, max}          bytes, inclusive
 *         metadata: {equals: [{key, value}], has: [key]}
 * Unknown keys, two kinds in one node, an empty node inside all/any and
 * nesting deeper than DAGI_RULES_MAX_DEPTH are errors.
 *
 * Two shapes differ from the prose of the issue because the schema engine
 * (core/config.h) has no "string or list" and no "map of free keys" type:
 * alternatives are always a list (`agent: [helion]`), and metadata.equals
 * is a list of {key, value} records.  Both are errors with file:line when
 * written the other way, never silently ignored.
 *
 * Memory: a load allocates everything from the caller's arena; the result is
 * immutable and may be shared between threads once loaded.  Matching is
 * pure: no allocation, no I/O. */
#ifndef DAGI_ROUTING_RULES_H
#define DAGI_ROUTING_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

struct json_t;

/* all/any/not nesting levels below `when` (when itself is level 1). */
#define DAGI_RULES_MAX_DEPTH 16

/* Values of has_image / has_audio. */
enum dagi_rule_tri { DAGI_RULE_FALSE, DAGI_RULE_TRUE, DAGI_RULE_EITHER };

struct dagi_rule_kv {
    char *key;
    char *value; /* compared with a string, true/false or an integer fact */
};

/* What a node tests when it is a leaf, plus all/any; `not` holds one of
 * these (so the C structs do not embed themselves). */
struct dagi_rule_test {
    struct dagi_cfg_strings agent, channel, task_type;
    int has_image, has_audio; /* enum dagi_rule_tri */
    struct {
        int64_t min, max;
    } message_length;
    struct {
        struct dagi_cfg_list equals; /* struct dagi_rule_kv */
        struct dagi_cfg_strings has;
    } metadata;
    struct dagi_cfg_list all, any; /* struct dagi_rule_cond */
};

struct dagi_rule_cond {
    struct dagi_rule_test test;    /* must stay first: the schemas share rows */
    struct dagi_rule_test negated; /* `not`; empty when absent */
};

struct dagi_rule {
    char *name;
    int64_t priority;
    struct dagi_rule_cond when;
    struct {
        char *model;
        struct dagi_cfg_strings fallbacks; /* empty = the agent's profile fallbacks */
    } use;
};

/* A rule set ready to match: the rules in file order and sorted. */
struct dagi_rules {
    const struct dagi_rule *rules; /* file order */
    size_t count;
    const struct dagi_rule **order; /* by priority, higher first, stable */
};

/* What the matcher looks at.  NULL strings match no alternative list. */
struct dagi_route_facts {
    const char *agent;
    const char *channel;   /* telegram, http, discord, ... */
    const char *task_type; /* set by the caller or the gateway */
    bool has_image;
    bool has_audio;
    size_t message_length;         /* bytes of the user's message */
    const struct json_t *metadata; /* a JSON object, or NULL */
};

/* The schema of one rule record, for files that embed rule lists (the
 * registry's per-agent overrides). */
extern const struct dagi_cfg_schema dagi_rules_rule_schema;
/* The schema of config/routing.yml: version, rules. */
extern const struct dagi_cfg_schema dagi_rules_file_schema;

/* Load a rule set.  Return 0 and set *out (in `arena`), or DAGI_EINVAL /
 * DAGI_EPARSE / DAGI_EIO / DAGI_ETOOBIG with errs filled: file:line for
 * YAML, field paths for JSON. */
int dagi_rules_load_file(const char *path, struct dagi_arena *arena, const struct dagi_rules **out,
                         struct dagi_cfg_errors *errs);
int dagi_rules_load_yaml(const char *name, const char *text, size_t len, struct dagi_arena *arena,
                         const struct dagi_rules **out, struct dagi_cfg_errors *errs);
int dagi_rules_load_json(const struct json_t *doc, struct dagi_arena *arena,
                         const struct dagi_rules **out, struct dagi_cfg_errors *errs);

/* Orders a list of rules bound with dagi_rules_rule_schema into `rules`
 * (the order array comes from `arena`).  Returns 0 or DAGI_ETOOBIG. */
int dagi_rules_init(struct dagi_rules *rules, const struct dagi_cfg_list *list,
                    struct dagi_arena *arena);

/* The first rule whose condition holds, by priority (higher first, file
 * order on ties), or NULL.  rules may be NULL (no rules). */
const struct dagi_rule *dagi_rules_match(const struct dagi_rules *rules,
                                         const struct dagi_route_facts *facts);

/* Whether a model id is `builtin` or one of known[0..n). */
bool dagi_rules_model_known(const char *id, const char *const *known, size_t n);

/* Between these two calls, loads on the calling thread report a model id
 * that is not builtin nor in known[0..n) at its line (rules' use.model and
 * use.fallbacks, and the registry's profiles), instead of after the load
 * without one.  known is borrowed until _done. */
struct dagi_cfg_ctx;
void dagi_rules_check_models_during(const char *const *known, size_t n);
void dagi_rules_check_models_done(void);
/* For schema checks of files that embed model ids (the agent registry). */
void dagi_rules_report_unknown_model(struct dagi_cfg_ctx *ctx, const char *key, const char *id);

/* Reports every model a rule names that is neither builtin nor in known
 * (the swapper's model ids) as "<where>[i].use.model: unknown model ...",
 * `where` naming the list ("config/routing.yml: rules").  The rule files do
 * not know the node's models, so this runs after a load, and again when the
 * swapper's models change.  Returns 0 or DAGI_EINVAL. */
int dagi_rules_check_models(const struct dagi_rules *rules, const char *where,
                            const char *const *known, size_t n, struct dagi_cfg_errors *errs);

#endif
