/* The agent registry: schema tables for agent_registry.yml, the checks the
 * tables cannot say, and the load that turns a file into a snapshot (prompt
 * texts read, tool schemas parsed, override rules ordered, model ids checked
 * against the node's swapper).
 *
 * The file is bound by core/config, so unknown keys, wrong types and bounds
 * are errors with file:line.  What needs the disk or the node's model list
 * (prompt files, model ids) is checked after binding and reported by path. */
#include "agents/registry.h"

#include "core/err.h"
#include "core/mem.h"
#include "policy/tz.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>


struct registry_file {
    int64_t version;
    struct dagi_cfg_list agents; /* struct dagi_agent */
};

#define AGENT_OF(member) __typeof__(((struct dagi_agent *)0)->member)

/* ---- small validators ---- */

static bool is_slug(const char *s)
{
    if (!islower((unsigned char)s[0]))
        return false;
    for (; *s; s++)
        if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '_' && *s != '-')
            return false;
    return true;
}

static bool is_env_name(const char *s)
{
    if (!isupper((unsigned char)s[0]) && s[0] != '_')
        return false;
    for (; *s; s++)
        if (!isupper((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '_')
            return false;
    return true;
}

static bool is_clock(const char *s)
{
    return strlen(s) == 5 && isdigit((unsigned char)s[0]) && isdigit((unsigned char)s[1]) &&
           s[2] == ':' && isdigit((unsigned char)s[3]) && isdigit((unsigned char)s[4]) &&
           (s[0] - '0') * 10 + (s[1] - '0') < 24 && s[3] < '6';
}

static bool is_http_url(const char *s)
{
    return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0;
}

/* Index of the first earlier duplicate of items[i], or -1. */
static long duplicate_of(char *const *items, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (strcmp(items[i], items[j]) == 0)
            return (long)j;
    return -1;
}

static void check_unique(struct dagi_cfg_ctx *ctx, const char *key,
                         const struct dagi_cfg_strings *list)
{
    for (size_t i = 0; i < list->count; i++)
        if (duplicate_of(list->items, i) >= 0)
            dagi_cfg_report(ctx, key, "\"%s\" is listed twice", list->items[i]);
}

/* ---- schema ---- */

static void check_prompt(void *record, struct dagi_cfg_ctx *ctx)
{
    AGENT_OF(system_prompt) *p = record;
    /* The registry may arrive from the control plane later: a prompt path
     * must not reach outside prompts_dir. */
    const char *f = p->file;
    if (f[0] == '/' || strcmp(f, "..") == 0 || strncmp(f, "../", 3) == 0 || strstr(f, "/../") ||
        (strlen(f) >= 3 && strcmp(f + strlen(f) - 3, "/..") == 0))
        dagi_cfg_report(ctx, "file", "must be a relative path inside prompts_dir");
}

static const struct dagi_cfg_field prompt_fields[] = {
    {"file", DAGI_CFG_STRING, offsetof(AGENT_OF(system_prompt), file), NULL, 1, 255, NULL, NULL,
     DAGI_CFG_REQUIRED, "Prompt file, relative to router.prompts_dir."},
    {"version", DAGI_CFG_STRING, offsetof(AGENT_OF(system_prompt), version), "1", 1, 64, NULL, NULL,
     0, "Version of the prompt, logged with every answer."},
};
static const struct dagi_cfg_schema prompt_schema = {
    "system_prompt", "The agent's system prompt.",  sizeof(AGENT_OF(system_prompt)),
    prompt_fields,   DAGI_ARRAY_LEN(prompt_fields), check_prompt};

static void check_telegram(void *record, struct dagi_cfg_ctx *ctx)
{
    AGENT_OF(telegram) *t = record;
    if (!t->username && !t->token_env && !t->webhook_secret_env)
        return; /* no bot */
    if (!t->token_env)
        dagi_cfg_report(ctx, "token_env", "required when the agent has a Telegram bot");
    if (t->username) {
        size_t n = strlen(t->username);
        bool ok = n >= 5 && strcasecmp(t->username + n - 3, "bot") == 0;
        for (const char *c = t->username; *c; c++)
            ok = ok && (isalnum((unsigned char)*c) || *c == '_');
        if (!ok)
            dagi_cfg_report(ctx, "username",
                            "a bot username is 5-32 letters, digits or _ and ends with \"bot\"");
    }
    if (t->token_env && !is_env_name(t->token_env))
        dagi_cfg_report(ctx, "token_env", "must be an environment variable name (A-Z, 0-9, _)");
    if (t->webhook_secret_env && !is_env_name(t->webhook_secret_env))
        dagi_cfg_report(ctx, "webhook_secret_env",
                        "must be an environment variable name (A-Z, 0-9, _)");
}

static const struct dagi_cfg_field telegram_fields[] = {
    {"username", DAGI_CFG_STRING, offsetof(AGENT_OF(telegram), username), NULL, 5, 32, NULL, NULL,
     0, "The bot's username (without @), checked against getMe; absent = learned from getMe."},
    {"token_env", DAGI_CFG_STRING, offsetof(AGENT_OF(telegram), token_env), NULL, 1, 128, NULL,
     NULL, 0, "Environment variable holding the bot token (never the token itself)."},
    {"webhook_secret_env", DAGI_CFG_STRING, offsetof(AGENT_OF(telegram), webhook_secret_env), NULL,
     1, 128, NULL, NULL, 0,
     "Environment variable holding the webhook secret Telegram echoes back."},
    {"start_text", DAGI_CFG_STRING, offsetof(AGENT_OF(telegram), start_text), NULL, 1, 4096, NULL,
     NULL, 0, "The answer to /start, sent without a model call; absent = \"<name> - <role>\"."},
    {"help_text", DAGI_CFG_STRING, offsetof(AGENT_OF(telegram), help_text), NULL, 1, 4096, NULL,
     NULL, 0, "The answer to /help, sent without a model call; absent = the /start text."},
};
static const struct dagi_cfg_schema telegram_schema = {"telegram",
                                                       "The agent's Telegram bot; absent = none.",
                                                       sizeof(AGENT_OF(telegram)),
                                                       telegram_fields,
                                                       DAGI_ARRAY_LEN(telegram_fields),
                                                       check_telegram};

static void check_model(void *record, struct dagi_cfg_ctx *ctx)
{
    AGENT_OF(model) *m = record;
    dagi_rules_report_unknown_model(ctx, "default", m->default_model);
    dagi_rules_report_unknown_model(ctx, "vision", m->vision);
    dagi_rules_report_unknown_model(ctx, "reasoning", m->reasoning);
    for (size_t i = 0; i < m->fallbacks.count; i++)
        dagi_rules_report_unknown_model(ctx, "fallbacks", m->fallbacks.items[i]);
    size_t n = m->fallbacks.count;
    /* builtin answers offline, so ending the chain with it means a fresh
     * node with no provider configured still answers (labelled as such). */
    if (!n || strcmp(m->fallbacks.items[n - 1], "builtin") != 0)
        dagi_cfg_report(ctx, "fallbacks", "must end with builtin");
    check_unique(ctx, "fallbacks", &m->fallbacks);
}

static const struct dagi_cfg_field model_fields[] = {
    {"default", DAGI_CFG_STRING, offsetof(AGENT_OF(model), default_model), NULL, 1, 128, NULL, NULL,
     DAGI_CFG_REQUIRED, "Model for ordinary messages (swapper.models[].id or builtin)."},
    {"vision", DAGI_CFG_STRING, offsetof(AGENT_OF(model), vision), NULL, 1, 128, NULL, NULL, 0,
     "Model for messages with images; absent = the agent does not read images."},
    {"reasoning", DAGI_CFG_STRING, offsetof(AGENT_OF(model), reasoning), NULL, 1, 128, NULL, NULL,
     0, "Model for long or complex requests; absent = default."},
    {"fallbacks", DAGI_CFG_STRING_LIST, offsetof(AGENT_OF(model), fallbacks), "[builtin]", 1, 16,
     NULL, NULL, 0, "Tried in order when the chosen model fails; ends with builtin."},
};
static const struct dagi_cfg_schema model_schema = {
    "model",      "The agent's model profile.", sizeof(AGENT_OF(model)),
    model_fields, DAGI_ARRAY_LEN(model_fields), check_model};

static const char *const tool_methods[] = {"POST", "GET", NULL};

static void check_tool(void *record, struct dagi_cfg_ctx *ctx)
{
    struct dagi_agent_tool *t = record;
    for (const char *c = t->name; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '_' && *c != '-') {
            dagi_cfg_report(ctx, "name", "letters, digits, _ and - only (a function name)");
            break;
        }
    if (!is_http_url(t->url))
        dagi_cfg_report(ctx, "url", "must start with http:// or https://");
    json_error_t jerr;
    json_t *j = json_loads(t->parameters_json, JSON_REJECT_DUPLICATES, &jerr);
    if (!j)
        dagi_cfg_report(ctx, "parameters_json", "not JSON: %s (line %d)", jerr.text, jerr.line);
    else if (!json_is_object(j))
        dagi_cfg_report(ctx, "parameters_json", "must be a JSON object (a JSON Schema)");
    json_decref(j);
}

static const struct dagi_cfg_field tool_fields[] = {
    {"name", DAGI_CFG_STRING, offsetof(struct dagi_agent_tool, name), NULL, 1, 64, NULL, NULL,
     DAGI_CFG_REQUIRED, "The function name the model calls."},
    {"description", DAGI_CFG_STRING, offsetof(struct dagi_agent_tool, description), NULL, 1, 1024,
     NULL, NULL, DAGI_CFG_REQUIRED, "What the tool does, for the model."},
    {"url", DAGI_CFG_STRING, offsetof(struct dagi_agent_tool, url), NULL, 1, 2048, NULL, NULL,
     DAGI_CFG_REQUIRED, "Endpoint the router calls with the arguments as a JSON body."},
    {"method", DAGI_CFG_ENUM, offsetof(struct dagi_agent_tool, method), "POST", 0, 0, tool_methods,
     NULL, 0, "HTTP method (GET sends the arguments as a query string)."},
    {"parameters_json", DAGI_CFG_STRING, offsetof(struct dagi_agent_tool, parameters_json),
     "{\"type\": \"object\", \"properties\": {}}", 2, 65536, NULL, NULL, 0,
     "JSON Schema of the arguments, as JSON text (a JSON object)."},
    {"timeout", DAGI_CFG_DURATION, offsetof(struct dagi_agent_tool, timeout), "10s", 100,
     5 * 60 * 1000, NULL, NULL, 0, "A call slower than this fails."},
};
static const struct dagi_cfg_schema tool_schema = {
    "tools[]",   "A server-side HTTP tool.",  sizeof(struct dagi_agent_tool),
    tool_fields, DAGI_ARRAY_LEN(tool_fields), check_tool};

#define QUIET_OF __typeof__(((struct dagi_agent *)0)->behaviour.quiet_hours)

static void check_quiet(void *record, struct dagi_cfg_ctx *ctx)
{
    QUIET_OF *q = record;
    if ((q->from == NULL) != (q->to == NULL))
        dagi_cfg_report(ctx, q->from ? "to" : "from", "from and to must be set together");
    if (q->from && !is_clock(q->from))
        dagi_cfg_report(ctx, "from", "expected HH:MM (00:00-23:59)");
    if (q->to && !is_clock(q->to))
        dagi_cfg_report(ctx, "to", "expected HH:MM (00:00-23:59)");
    if (q->from && q->to && strcmp(q->from, q->to) == 0)
        dagi_cfg_report(ctx, "to", "equals from: an empty range; leave quiet_hours out");
    /* The zone must exist here (tzdata), or be a fixed offset: a typo would
     * otherwise only show at the first message in quiet hours. */
    int32_t offset;
    struct dagi_error err = {0};
    if (q->tz && dagi_tz_offset(q->tz, 0, &offset, &err))
        dagi_cfg_report(ctx, "tz", "%s (an IANA name such as Europe/Kyiv, or +03:00)",
                        err.message);
}

static const struct dagi_cfg_field quiet_fields[] = {
    {"from", DAGI_CFG_STRING, offsetof(QUIET_OF, from), NULL, 0, 0, NULL, NULL, 0,
     "Start of quiet hours, HH:MM."},
    {"to", DAGI_CFG_STRING, offsetof(QUIET_OF, to), NULL, 0, 0, NULL, NULL, 0,
     "End of quiet hours, HH:MM; before `from` wraps midnight."},
    {"tz", DAGI_CFG_STRING, offsetof(QUIET_OF, tz), "UTC", 1, 64, NULL, NULL, 0,
     "Time zone the hours are in (IANA name)."},
};
static const struct dagi_cfg_schema quiet_schema = {
    "quiet_hours",
    "When the agent answers only what is important.",
    sizeof(QUIET_OF),
    quiet_fields,
    DAGI_ARRAY_LEN(quiet_fields),
    check_quiet};

static const struct dagi_cfg_field behaviour_fields[] = {
    {"ack_text", DAGI_CFG_STRING, offsetof(AGENT_OF(behaviour), ack_text), NULL, 1, 1024, NULL,
     NULL, 0, "Short acknowledgement sent instead of a full answer; absent = the default."},
    {"quiet_hours", DAGI_CFG_SECTION, offsetof(AGENT_OF(behaviour), quiet_hours), NULL, 0, 0, NULL,
     &quiet_schema, 0, "Quiet hours."},
    {"domain_keywords", DAGI_CFG_STRING_LIST, offsetof(AGENT_OF(behaviour), domain_keywords), NULL,
     0, 512, NULL, NULL, 0, "Words that mark a message as within the agent's domain."},
    {"silent_in_groups", DAGI_CFG_BOOL, offsetof(AGENT_OF(behaviour), silent_in_groups), "true", 0,
     0, NULL, NULL, 0, "In groups, answer only when mentioned or replied to."},
};
static const struct dagi_cfg_schema behaviour_schema = {
    "behaviour",      "Parameters of the reply policy.", sizeof(AGENT_OF(behaviour)),
    behaviour_fields, DAGI_ARRAY_LEN(behaviour_fields),  NULL};

static const char *const memory_scopes[] = {"personal", "team", "public"};

static void check_agent(void *record, struct dagi_cfg_ctx *ctx)
{
    struct dagi_agent *a = record;
    if (!is_slug(a->id))
        dagi_cfg_report(ctx, "id", "must be a slug: a-z first, then a-z, 0-9, _ or -");
    for (size_t i = 0; i < a->memory_scopes.count; i++) {
        bool known = false;
        for (size_t j = 0; j < DAGI_ARRAY_LEN(memory_scopes); j++)
            known = known || strcmp(a->memory_scopes.items[i], memory_scopes[j]) == 0;
        if (!known)
            dagi_cfg_report(ctx, "memory_scopes", "unknown scope \"%s\" (personal, team, public)",
                            a->memory_scopes.items[i]);
    }
    check_unique(ctx, "memory_scopes", &a->memory_scopes);
    check_unique(ctx, "allowed_tools", &a->allowed_tools);
    check_unique(ctx, "crews", &a->crews);
    check_unique(ctx, "node_affinity", &a->node_affinity);
    const struct dagi_agent_tool *tools = a->tools.items;
    for (size_t i = 0; i < a->tools.count; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(tools[i].name, tools[j].name) == 0)
                dagi_cfg_report(ctx, "tools", "tool \"%s\" is defined twice", tools[i].name);
    const struct dagi_rule *rules = a->routing.items;
    for (size_t i = 0; i < a->routing.count; i++) {
        for (size_t j = 0; j < i; j++)
            if (strcmp(rules[i].name, rules[j].name) == 0)
                dagi_cfg_report(ctx, "routing", "rule name \"%s\" is used twice", rules[i].name);
        /* Overrides only ever see this agent's requests; naming agents in
         * them reads as if they could reach others. */
        if (rules[i].when.test.agent.count)
            dagi_cfg_report(ctx, "routing",
                            "rule \"%s\": overrides are scoped to the agent; "
                            "drop `agent`",
                            rules[i].name);
    }
}

static const struct dagi_cfg_field agent_fields[] = {
    {"id", DAGI_CFG_STRING, offsetof(struct dagi_agent, id), NULL, 1, 64, NULL, NULL,
     DAGI_CFG_REQUIRED, "Unique slug: URLs, logs, routing rules and the API name the agent by it."},
    {"name", DAGI_CFG_STRING, offsetof(struct dagi_agent, name), NULL, 1, 128, NULL, NULL,
     DAGI_CFG_REQUIRED, "Display name."},
    {"role", DAGI_CFG_STRING, offsetof(struct dagi_agent, role), NULL, 1, 1024, NULL, NULL,
     DAGI_CFG_REQUIRED, "What the agent is for, in a sentence."},
    {"enabled", DAGI_CFG_BOOL, offsetof(struct dagi_agent, enabled), "true", 0, 0, NULL, NULL, 0,
     "A disabled agent is loaded and checked but answers nothing."},
    {"system_prompt", DAGI_CFG_SECTION, offsetof(struct dagi_agent, system_prompt), NULL, 0, 0,
     NULL, &prompt_schema, DAGI_CFG_REQUIRED, "The system prompt."},
    {"telegram", DAGI_CFG_SECTION, offsetof(struct dagi_agent, telegram), NULL, 0, 0, NULL,
     &telegram_schema, 0, "The Telegram bot."},
    {"model", DAGI_CFG_SECTION, offsetof(struct dagi_agent, model), NULL, 0, 0, NULL, &model_schema,
     DAGI_CFG_REQUIRED, "The model profile."},
    {"routing", DAGI_CFG_LIST, offsetof(struct dagi_agent, routing), NULL, 0, 1000, NULL,
     &dagi_rules_rule_schema, 0,
     "Routing rules for this agent only, tried before the global ones."},
    {"tools", DAGI_CFG_LIST, offsetof(struct dagi_agent, tools), NULL, 0, 64, NULL, &tool_schema, 0,
     "Server-side HTTP tools."},
    {"allowed_tools", DAGI_CFG_STRING_LIST, offsetof(struct dagi_agent, allowed_tools), NULL, 0,
     256, NULL, NULL, 0, "Names of tools the agent may call."},
    {"behaviour", DAGI_CFG_SECTION, offsetof(struct dagi_agent, behaviour), NULL, 0, 0, NULL,
     &behaviour_schema, 0, "Reply policy parameters."},
    {"memory_scopes", DAGI_CFG_STRING_LIST, offsetof(struct dagi_agent, memory_scopes),
     "[personal]", 0, 3, NULL, NULL, 0,
     "Memory the agent reads and writes: personal, team, public."},
    {"crews", DAGI_CFG_STRING_LIST, offsetof(struct dagi_agent, crews), NULL, 0, 64, NULL, NULL, 0,
     "Crews the agent belongs to."},
    {"node_affinity", DAGI_CFG_STRING_LIST, offsetof(struct dagi_agent, node_affinity), NULL, 0, 64,
     NULL, NULL, 0, "Nodes that should serve the agent; empty = any."},
};
static const struct dagi_cfg_schema agent_schema = {
    "agents[]", "An agent.", sizeof(struct dagi_agent), agent_fields, DAGI_ARRAY_LEN(agent_fields),
    check_agent};

static void check_registry(void *record, struct dagi_cfg_ctx *ctx)
{
    struct registry_file *f = record;
    const struct dagi_agent *a = f->agents.items;
    if (f->version != 1)
        dagi_cfg_report(ctx, "version", "unsupported version %lld (this build reads 1)",
                        (long long)f->version);
    for (size_t i = 0; i < f->agents.count; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(a[i].id, a[j].id) == 0)
                dagi_cfg_report(ctx, "agents", "agent id \"%s\" is used twice (agents[%zu], [%zu])",
                                a[i].id, j, i);
}

static const struct dagi_cfg_field registry_fields[] = {
    {"version", DAGI_CFG_INT, offsetof(struct registry_file, version), "1", 0, 0, NULL, NULL, 0,
     "Format version of the file (1)."},
    {"agents", DAGI_CFG_LIST, offsetof(struct registry_file, agents), NULL, 1, 10000, NULL,
     &agent_schema, DAGI_CFG_REQUIRED, "The agents."},
};
const struct dagi_cfg_schema dagi_registry_schema = {
    "agent_registry.yml", "The agent registry.",           sizeof(struct registry_file),
    registry_fields,      DAGI_ARRAY_LEN(registry_fields), check_registry};

/* ---- load ---- */

/* A prompt file under a directory, read whole into buf (at most the cap + 1
 * bytes, so "too big" is told from "exactly the cap"). */
struct dir_source {
    const char *dir;
    char *buf;
};

static int dir_prompt(void *ud, const char *file, const char **text, size_t *len, char *why,
                      size_t why_len)
{
    struct dir_source *src = ud;
    char *path = dagi_xasprintf("%s/%s", src->dir, file);
    int rc = DAGI_OK;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, why_len, "cannot read %s: %s", path, strerror(errno));
        rc = DAGI_EIO;
        goto out;
    }
    if (!src->buf)
        src->buf = dagi_xmalloc(DAGI_REGISTRY_MAX_PROMPT + 2);
    size_t n = fread(src->buf, 1, DAGI_REGISTRY_MAX_PROMPT + 1, f);
    if (ferror(f)) {
        snprintf(why, why_len, "cannot read %s: %s", path, strerror(errno));
        rc = DAGI_EIO;
        goto out;
    }
    *text = src->buf;
    *len = n;
out:
    if (f)
        fclose(f);
    free(path);
    return rc;
}

/* Copies the prompt of agents[i] into the arena; reports and returns false
 * on failure. */
static bool read_prompt(struct dagi_registry *reg, struct dagi_agent *a, size_t i,
                        dagi_prompt_source_fn source, void *ud, const char *dir,
                        struct dagi_cfg_errors *errs)
{
    /* Errors name the file as the operator finds it: under its directory. */
    char file[4200];
    snprintf(file, sizeof(file), "%s%s%s", dir ? dir : "", dir ? "/" : "", a->system_prompt.file);
    const char *text = NULL;
    size_t n = 0;
    char why[512] = "";
    if (source(ud, a->system_prompt.file, &text, &n, why, sizeof(why))) {
        dagi_cfg_errors_add(errs, "%s: agents[%zu].system_prompt.file: %s", reg->path, i,
                            why[0] ? why : "no such prompt");
        return false;
    }
    if (n > DAGI_REGISTRY_MAX_PROMPT) {
        dagi_cfg_errors_add(errs, "%s: agents[%zu].system_prompt.file: %s is larger than %d bytes",
                            reg->path, i, file, DAGI_REGISTRY_MAX_PROMPT);
        return false;
    }
    if (n == 0) {
        dagi_cfg_errors_add(errs, "%s: agents[%zu].system_prompt.file: %s is empty", reg->path, i,
                            file);
        return false;
    }
    if (memchr(text, '\0', n)) {
        dagi_cfg_errors_add(errs, "%s: agents[%zu].system_prompt.file: %s holds a NUL byte",
                            reg->path, i, file);
        return false;
    }
    char *copy = dagi_arena_alloc(reg->arena, n + 1);
    if (!copy) {
        dagi_cfg_errors_add(errs, "%s: prompts exceed the memory cap of the registry", reg->path);
        return false;
    }
    memcpy(copy, text, n);
    copy[n] = '\0';
    a->prompt = copy;
    a->prompt_len = n;
    return true;
}

static void registry_free(struct dagi_registry *reg)
{
    for (size_t i = 0; i < reg->count; i++) {
        const struct dagi_agent *a = &reg->agents[i];
        const struct dagi_agent_tool *tools = a->tools.items;
        for (size_t t = 0; t < a->tools.count; t++)
            json_decref(tools[t].parameters);
    }
    dagi_arena_free(reg->arena);
    free(reg);
}

static void check_model_id(const struct dagi_registry *reg, size_t i, const char *key,
                           const char *id, const char *const *known, size_t n,
                           struct dagi_cfg_errors *errs)
{
    if (id && !dagi_rules_model_known(id, known, n))
        dagi_cfg_errors_add(errs,
                  "%s: agents[%zu].model.%s: unknown model \"%s\" (not builtin nor in "
                  "swapper.models)",
                  reg->path, i, key, id);
}

int dagi_registry_check_models(const struct dagi_registry *reg, const char *const *known, size_t n,
                               struct dagi_cfg_errors *errs)
{
    size_t before = errs->count;
    for (size_t i = 0; i < reg->count; i++) {
        const struct dagi_agent *a = &reg->agents[i];
        check_model_id(reg, i, "default", a->model.default_model, known, n, errs);
        check_model_id(reg, i, "vision", a->model.vision, known, n, errs);
        check_model_id(reg, i, "reasoning", a->model.reasoning, known, n, errs);
        for (size_t k = 0; k < a->model.fallbacks.count; k++) {
            char key[32];
            snprintf(key, sizeof(key), "fallbacks[%zu]", k);
            check_model_id(reg, i, key, a->model.fallbacks.items[k], known, n, errs);
        }
        char *where = dagi_xasprintf("%s: agents[%zu].routing", reg->path, i);
        dagi_rules_check_models(&a->overrides, where, known, n, errs);
        free(where);
    }
    return errs->count == before ? DAGI_OK : DAGI_EINVAL;
}

/* Loads from a file (text NULL) or from text; prompts from source. */
static int registry_load(const char *name, const char *text, size_t len,
                         dagi_prompt_source_fn source, void *ud, const char *dir,
                         const char *const *known_model_ids,
                         size_t n, struct dagi_registry **out, struct dagi_cfg_errors *errs)
{
    void *obj = NULL;
    struct dagi_registry *reg = dagi_xcalloc(1, sizeof(*reg));
    atomic_init(&reg->refs, 1);
    reg->arena = dagi_arena_new(0);
    dagi_rules_check_models_during(known_model_ids, n);
    int rc = text ? dagi_cfg_load_yaml(&dagi_registry_schema, name, text, len, reg->arena, &obj,
                                       errs)
                  : dagi_cfg_load_file(&dagi_registry_schema, name, reg->arena, &obj, errs);
    dagi_rules_check_models_done();
    if (rc)
        goto out;
    struct registry_file *file = obj;
    struct dagi_agent *agents = file->agents.items;
    reg->path = dagi_arena_strdup(reg->arena, name);
    reg->version = file->version;
    reg->agents = agents;
    reg->count = file->agents.count;
    if (!reg->path) {
        rc = DAGI_ETOOBIG;
        goto out;
    }

    size_t before = errs->count;
    for (size_t i = 0; i < reg->count; i++) {
        struct dagi_agent *a = &agents[i];
        read_prompt(reg, a, i, source, ud, dir, errs);
        if (dagi_rules_init(&a->overrides, &a->routing, reg->arena) != 0) {
            rc = DAGI_ETOOBIG;
            goto out;
        }
        /* Validated by check_tool; parsed again here because a check cannot
         * keep heap objects: a failed load would leak them. */
        struct dagi_agent_tool *tools = a->tools.items;
        for (size_t t = 0; t < a->tools.count; t++)
            tools[t].parameters = json_loads(tools[t].parameters_json, 0, NULL);
    }
    /* Model ids were checked at their lines, during the load. */
    if (errs->count != before) {
        rc = DAGI_EINVAL;
        goto out;
    }
    *out = reg;
    return DAGI_OK;
out:
    registry_free(reg);
    return rc;
}

int dagi_registry_load(const char *path, const char *prompts_dir,
                       const char *const *known_model_ids, size_t n, struct dagi_registry **out,
                       struct dagi_cfg_errors *errs)
{
    struct dir_source src = {.dir = prompts_dir};
    int rc = registry_load(path, NULL, 0, dir_prompt, &src, prompts_dir, known_model_ids, n, out,
                           errs);
    free(src.buf);
    return rc;
}

int dagi_registry_load_text(const char *name, const char *text, size_t len,
                            dagi_prompt_source_fn source, void *ud,
                            const char *const *known_model_ids, size_t n,
                            struct dagi_registry **out, struct dagi_cfg_errors *errs)
{
    return registry_load(name, text, len, source, ud, NULL, known_model_ids, n, out, errs);
}

const struct dagi_agent *dagi_registry_find(const struct dagi_registry *reg, const char *id)
{
    /* A linear scan: registries hold tens of agents, and a lookup happens
     * once per request next to a model call. */
    for (size_t i = 0; id && i < reg->count; i++)
        if (strcmp(reg->agents[i].id, id) == 0)
            return &reg->agents[i];
    return NULL;
}

size_t dagi_registry_count(const struct dagi_registry *reg)
{
    return reg->count;
}

const struct dagi_agent *dagi_registry_agent(const struct dagi_registry *reg, size_t i)
{
    return i < reg->count ? &reg->agents[i] : NULL;
}

const struct dagi_rule *dagi_registry_route(const struct dagi_agent *agent,
                                            const struct dagi_rules *global,
                                            const struct dagi_route_facts *facts)
{
    const struct dagi_rule *r = agent ? dagi_rules_match(&agent->overrides, facts) : NULL;
    return r ? r : dagi_rules_match(global, facts);
}

struct dagi_registry *dagi_registry_ref(struct dagi_registry *reg)
{
    atomic_fetch_add(&reg->refs, 1);
    return reg;
}

void dagi_registry_unref(struct dagi_registry *reg)
{
    if (!reg || atomic_fetch_sub(&reg->refs, 1) != 1)
        return;
    registry_free(reg);
}
