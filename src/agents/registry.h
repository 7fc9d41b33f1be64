/* The agent registry (config/agent_registry.yml): the single source of truth
 * for agents - who they are, their prompt, Telegram bot, models, routing
 * overrides, tools and behaviour parameters.  Adding an agent is one record
 * here plus one prompt file; nothing in the code names an agent or counts
 * them.
 *
 *     version: 1
 *     agents:
 *       - id: helion                      # [a-z][a-z0-9_-]*, unique
 *         name: Helion
 *         role: Energy Union guide
 *         system_prompt: {file: helion.md, version: "1"}   # under prompts_dir
 *         telegram: {token_env: HELION_TELEGRAM_BOT_TOKEN}   # optional
 *         model: {default: qwen3-8b, vision: qwen3-vl-8b, reasoning: deepseek-chat,
 *                 fallbacks: [qwen2.5-3b, builtin]}        # ends with builtin
 *         routing: [<rule>, ...]          # rules.h, scoped to this agent
 *         tools: [{name, description, url, method, parameters_json, timeout}]
 *         allowed_tools: [web_search]
 *         behaviour: {ack_text, quiet_hours: {from: "23:00", to: "07:00", tz},
 *                     domain_keywords: [...], silent_in_groups: true}
 *         memory_scopes: [personal, team]
 *         crews: [...]
 *         node_affinity: [node1]
 *
 * A tool's argument schema is written as JSON text (`parameters_json`): the
 * schema engine has no "any JSON value" type.  The load checks that it parses
 * to a JSON object and keeps the parsed value in `parameters`.
 *
 * Ownership: a registry is an immutable snapshot in its own arena, shared by
 * reference count; a reload builds a new one and swaps the pointer, and a
 * request holding the old one finishes with it.  Everything reachable from a
 * registry (agents, strings, prompt texts, parsed tool schemas) lives until
 * the last unref. */
#ifndef DAGI_AGENTS_REGISTRY_H
#define DAGI_AGENTS_REGISTRY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "routing/rules.h"

struct json_t;

enum dagi_tool_method { DAGI_TOOL_POST, DAGI_TOOL_GET };

struct dagi_agent_tool {
    char *name;
    char *description;
    char *url;
    int method; /* enum dagi_tool_method */
    char *parameters_json;
    int64_t timeout;           /* ms */
    struct json_t *parameters; /* parsed parameters_json; owned by the registry */
};

struct dagi_agent {
    char *id;
    char *name;
    char *role;
    bool enabled;
    struct {
        char *file; /* relative to prompts_dir */
        char *version;
    } system_prompt;
    struct {
        char *username;  /* NULL = learned from getMe */
        char *token_env; /* NULL = no Telegram bot */
        char *webhook_secret_env;
        char *start_text; /* the answer to /start; NULL = "<name> - <role>" */
        char *help_text;  /* the answer to /help; NULL = the same as /start */
    } telegram;
    struct {
        char *default_model;
        char *vision;                      /* NULL = no vision model: images are refused */
        char *reasoning;                   /* NULL = default_model */
        struct dagi_cfg_strings fallbacks; /* ends with builtin */
    } model;
    struct dagi_cfg_list routing; /* struct dagi_rule; see `overrides` */
    struct dagi_cfg_list tools;   /* struct dagi_agent_tool */
    struct dagi_cfg_strings allowed_tools;
    struct {
        char *ack_text;
        struct {
            char *from; /* "HH:MM"; NULL = no quiet hours */
            char *to;   /* may be before `from`: the range wraps midnight */
            char *tz;
        } quiet_hours;
        struct dagi_cfg_strings domain_keywords;
        bool silent_in_groups;
    } behaviour;
    struct dagi_cfg_strings memory_scopes; /* personal, team, public */
    struct dagi_cfg_strings crews;
    struct dagi_cfg_strings node_affinity;

    /* Filled by the load, not by the file: */
    const char *prompt; /* the prompt file's text, NUL-terminated */
    size_t prompt_len;
    struct dagi_rules overrides; /* `routing`, ordered for dagi_rules_match */
};

struct dagi_registry {
    atomic_int refs;
    struct dagi_arena *arena;
    const char *path; /* the file it came from */
    int64_t version;
    const struct dagi_agent *agents; /* file order */
    size_t count;
};

extern const struct dagi_cfg_schema dagi_registry_schema;

/* Largest prompt file accepted. */
#define DAGI_REGISTRY_MAX_PROMPT (256 * 1024)

/* Loads `path`, reads every agent's prompt from prompts_dir, and checks that
 * every model id an agent names is builtin or one of known_model_ids[0..n)
 * (swapper.models[].id).  Returns 0 and a snapshot holding one reference, or
 * DAGI_EINVAL / DAGI_EPARSE / DAGI_EIO / DAGI_ETOOBIG with every error in errs
 * (file:line where the YAML gives one; the prompt and model errors name the
 * agent's path and the file). */
int dagi_registry_load(const char *path, const char *prompts_dir,
                       const char *const *known_model_ids, size_t n, struct dagi_registry **out,
                       struct dagi_cfg_errors *errs);

/* Where prompt texts come from when the registry is loaded from text (the
 * config registry's prompts documents): 0 with the text of `file`, borrowed
 * until the load returns, or an error code with a reason in why. */
typedef int (*dagi_prompt_source_fn)(void *ud, const char *file, const char **text, size_t *len,
                                     char *why, size_t why_len);
/* The same as dagi_registry_load from a document's text; `name` is what
 * errors and reg->path say ("agents/agent_registry.yml"). */
int dagi_registry_load_text(const char *name, const char *text, size_t len,
                            dagi_prompt_source_fn source, void *ud,
                            const char *const *known_model_ids, size_t n,
                            struct dagi_registry **out, struct dagi_cfg_errors *errs);

/* Re-checks the model ids against another list (the swapper's models were
 * reloaded).  Returns 0 or DAGI_EINVAL with errs filled. */
int dagi_registry_check_models(const struct dagi_registry *reg, const char *const *known, size_t n,
                               struct dagi_cfg_errors *errs);

struct dagi_config;
struct dagi_error;
/* The registry the node configuration names (router.registry, prompts_dir),
 * its model ids checked against swapper.models and builtin.  *out is NULL
 * (and 0 returned) when no registry is configured; on failure err carries
 * the loader's messages (file:line). */
int dagi_registry_load_config(const struct dagi_config *c, struct dagi_registry **out,
                              struct dagi_error *err);

/* The agent with that id (enabled or not), or NULL. */
const struct dagi_agent *dagi_registry_find(const struct dagi_registry *reg, const char *id);

/* Iteration in file order: for (i = 0; i < dagi_registry_count(r); i++) ... */
size_t dagi_registry_count(const struct dagi_registry *reg);
const struct dagi_agent *dagi_registry_agent(const struct dagi_registry *reg, size_t i);

/* The rule that routes a request for `agent`: its own overrides first (they
 * are scoped to it), then the global rules; NULL = use the agent's profile. */
const struct dagi_rule *dagi_registry_route(const struct dagi_agent *agent,
                                            const struct dagi_rules *global,
                                            const struct dagi_route_facts *facts);

struct dagi_registry *dagi_registry_ref(struct dagi_registry *reg);
void dagi_registry_unref(struct dagi_registry *reg);

#endif
