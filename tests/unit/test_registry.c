/* The agent registry: the shipped config/agent_registry.yml with its 13
 * agents and prompts, and the refusals - duplicate ids, a missing prompt,
 * fallbacks not ending in builtin, unknown model ids, unknown keys (with
 * file:line), bad tools, Telegram, quiet hours and scopes - plus overrides
 * and reference counting. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/err.h"
#include "core/mem.h"
#include "agents/registry.h"

static const char *const known[] = {"qwen3-8b",         "qwen3-vl-8b", "qwen2.5-3b",
                                    "qwen2.5-coder-7b", "mistral-7b",  "deepseek-chat"};

struct fx {
    char dir[64];
    char *file;
    struct dagi_cfg_errors errs;
};

static void write_file(const char *dir, const char *name, const char *text)
{
    char *path = dagi_xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    free(path);
}

static int setup(void **state)
{
    struct fx *fx = dagi_xcalloc(1, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/dagi-registry-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    write_file(fx->dir, "a.md", "You are A.\n");
    write_file(fx->dir, "b.md", "You are B.\n");
    fx->file = dagi_xasprintf("%s/reg.yml", fx->dir);
    dagi_cfg_errors_init(&fx->errs);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    const char *names[] = {"a.md", "b.md", "empty.md", "reg.yml"};
    for (size_t i = 0; i < DAGI_ARRAY_LEN(names); i++) {
        char *p = dagi_xasprintf("%s/%s", fx->dir, names[i]);
        unlink(p);
        free(p);
    }
    rmdir(fx->dir);
    dagi_cfg_errors_release(&fx->errs);
    free(fx->file);
    free(fx);
    return 0;
}

#define ERRS(fx) dagi_buf_str(&(fx)->errs.text)

static int load(struct fx *fx, const char *yaml, struct dagi_registry **out)
{
    dagi_cfg_errors_release(&fx->errs);
    dagi_cfg_errors_init(&fx->errs);
    write_file(fx->dir, "reg.yml", yaml);
    return dagi_registry_load(fx->file, fx->dir, known, DAGI_ARRAY_LEN(known), out, &fx->errs);
}

/* Expects the load to fail with `rc` and the errors, with the file's path
 * written as FILE in `want`. */
static void expect_errors(struct fx *fx, const char *yaml, int rc, const char *want)
{
    struct dagi_registry *reg = NULL;
    assert_int_equal(load(fx, yaml, &reg), rc);
    assert_null(reg);
    struct dagi_buf w;
    dagi_buf_init(&w, 1 << 20);
    for (const char *p = want; *p;) {
        const char *hit = strstr(p, "FILE");
        size_t n = hit ? (size_t)(hit - p) : strlen(p);
        dagi_buf_append(&w, p, n);
        if (!hit)
            break;
        dagi_buf_append_str(&w, fx->file);
        p = hit + 4;
    }
    assert_string_equal(ERRS(fx), dagi_buf_str(&w));
    dagi_buf_release(&w);
}

static char *source_path(const char *rel)
{
    const char *dir = getenv("DAGI_SOURCE_DIR");
    if (dir)
        return dagi_xasprintf("%s/%s", dir, rel);
    /* meson compiles with a path to this file relative to the build dir,
     * where tests run; its prefix is the way to the source tree. */
    const char *me = __FILE__, *tail = "tests/unit/test_registry.c";
    size_t n = strlen(me) - strlen(tail);
    return dagi_xasprintf("%.*s%s", (int)n, me, rel);
}

static void test_shipped_registry(void **state)
{
    struct fx *fx = *state;
    char *path = source_path("config/agent_registry.yml");
    char *prompts = source_path("config/prompts");
    struct dagi_registry *reg = NULL;
    int rc = dagi_registry_load(path, prompts, known, DAGI_ARRAY_LEN(known), &reg, &fx->errs);
    if (rc)
        fprintf(stderr, "%s", ERRS(fx));
    assert_int_equal(rc, 0);

    const char *ids[] = {"daarwizz", "microdao_orchestrator",
                         "devtools", "greenfood",
                         "clan",     "soul",
                         "druid",    "nutra",
                         "eonarch",  "helion",
                         "yaromir",  "monitor",
                         "parser"};
    assert_int_equal(dagi_registry_count(reg), DAGI_ARRAY_LEN(ids));
    for (size_t i = 0; i < DAGI_ARRAY_LEN(ids); i++) {
        const struct dagi_agent *a = dagi_registry_find(reg, ids[i]);
        assert_non_null(a);
        assert_ptr_equal(a, dagi_registry_agent(reg, i)); /* file order */
        assert_true(a->enabled);
        assert_true(a->prompt_len > 200);
        assert_int_equal(strlen(a->prompt), a->prompt_len);
        assert_non_null(strstr(a->prompt, "language the user writes in"));
        size_t n = a->model.fallbacks.count;
        assert_true(n >= 1);
        assert_string_equal(a->model.fallbacks.items[n - 1], "builtin");
    }
    assert_null(dagi_registry_find(reg, "nobody"));
    assert_null(dagi_registry_agent(reg, DAGI_ARRAY_LEN(ids)));

    const struct dagi_agent *helion = dagi_registry_find(reg, "helion");
    assert_string_equal(helion->telegram.token_env, "HELION_TELEGRAM_BOT_TOKEN");
    assert_string_equal(helion->model.vision, "qwen3-vl-8b");
    assert_string_equal(helion->behaviour.quiet_hours.tz, "Europe/Kyiv");
    assert_null(dagi_registry_find(reg, "monitor")->telegram.token_env);

    /* devtools' override beats a global rule; others fall through to it. */
    const struct dagi_agent *dev = dagi_registry_find(reg, "devtools");
    struct dagi_arena *arena = dagi_arena_new(0);
    const struct dagi_rules *global = NULL;
    const char *g = "rules: [{name: everything, use: {model: qwen3-8b}}]\n";
    assert_int_equal(dagi_rules_load_yaml("g.yml", g, strlen(g), arena, &global, &fx->errs), 0);
    struct dagi_route_facts f = {.agent = "devtools", .task_type = "security_audit"};
    assert_string_equal(dagi_registry_route(dev, global, &f)->name, "devtools_heavy_tasks");
    f.task_type = "chat";
    assert_string_equal(dagi_registry_route(dev, global, &f)->name, "everything");
    assert_string_equal(dagi_registry_route(helion, global, &f)->name, "everything");
    assert_null(dagi_registry_route(helion, NULL, &f));
    dagi_arena_free(arena);

    /* Another node without the cloud model: the re-check names each use. */
    assert_int_equal(dagi_registry_check_models(reg, known, 5, &fx->errs), DAGI_EINVAL);
    assert_non_null(strstr(ERRS(fx), "agents[0].model.reasoning: unknown model \"deepseek-chat\""));
    assert_non_null(strstr(ERRS(fx), "agents[2].routing[0].use.model: unknown model"));

    struct dagi_registry *again = dagi_registry_ref(reg);
    dagi_registry_unref(reg);
    assert_string_equal(dagi_registry_find(again, "parser")->name, "Parser");
    dagi_registry_unref(again);
    dagi_registry_unref(NULL);
    free(path);
    free(prompts);
}

static void test_every_field(void **state)
{
    struct fx *fx = *state;
    struct dagi_registry *reg = NULL;
    int rc =
        load(fx,
             "version: 1\n"
             "agents:\n"
             "  - id: a-1\n"
             "    name: A\n"
             "    role: Tests.\n"
             "    enabled: false\n"
             "    system_prompt: {file: a.md, version: \"7\"}\n"
             "    telegram: {username: A_test_bot, token_env: A_TOKEN,\n"
             "               webhook_secret_env: A_SECRET}\n"
             "    model: {default: qwen3-8b, vision: qwen3-vl-8b, reasoning: builtin}\n"
             "    routing:\n"
             "      - {name: pics, when: {has_image: true}, use: {model: qwen3-vl-8b}}\n"
             "    tools:\n"
             "      - name: web_search\n"
             "        description: Searches the web.\n"
             "        url: http://127.0.0.1:8897/api/search\n"
             "        method: GET\n"
             "        timeout: 5s\n"
             "        parameters_json: |\n"
             "          {\"type\": \"object\", \"properties\": {\"q\": {\"type\": \"string\"}},\n"
             "           \"required\": [\"q\"]}\n"
             "      - {name: noop, description: Nothing., url: \"https://x.test/noop\"}\n"
             "    allowed_tools: [web_search, noop]\n"
             "    behaviour:\n"
             "      ack_text: Got it.\n"
             "      quiet_hours: {from: \"22:30\", to: \"06:00\", tz: Europe/Kyiv}\n"
             "      domain_keywords: [energy, енергія]\n"
             "      silent_in_groups: false\n"
             "    memory_scopes: [personal, team, public]\n"
             "    crews: [energy]\n"
             "    node_affinity: [node1, node2]\n"
             "  - {id: b, name: B, role: Defaults., system_prompt: {file: b.md},\n"
             "     model: {default: builtin}}\n",
             &reg);
    if (rc)
        fprintf(stderr, "%s", ERRS(fx));
    assert_int_equal(rc, 0);
    const struct dagi_agent *a = dagi_registry_find(reg, "a-1");
    assert_false(a->enabled);
    assert_string_equal(a->system_prompt.version, "7");
    assert_string_equal(a->prompt, "You are A.\n");
    assert_string_equal(a->telegram.username, "A_test_bot");
    assert_string_equal(a->telegram.webhook_secret_env, "A_SECRET");
    assert_string_equal(a->model.reasoning, "builtin");
    assert_string_equal(a->model.fallbacks.items[0], "builtin"); /* the default */
    assert_int_equal(a->overrides.count, 1);
    const struct dagi_agent_tool *t = a->tools.items;
    assert_int_equal(a->tools.count, 2);
    assert_int_equal(t[0].method, DAGI_TOOL_GET);
    assert_int_equal(t[0].timeout, 5000);
    assert_string_equal(json_string_value(json_object_get(t[0].parameters, "type")), "object");
    assert_int_equal(t[1].method, DAGI_TOOL_POST);
    assert_true(json_is_object(json_object_get(t[1].parameters, "properties")));
    assert_string_equal(a->behaviour.quiet_hours.from, "22:30");
    assert_false(a->behaviour.silent_in_groups);
    assert_int_equal(a->memory_scopes.count, 3);
    assert_string_equal(a->node_affinity.items[1], "node2");

    const struct dagi_agent *b = dagi_registry_find(reg, "b");
    assert_true(b->enabled);
    assert_string_equal(b->system_prompt.version, "1");
    assert_null(b->telegram.token_env);
    assert_null(b->behaviour.quiet_hours.from);
    assert_string_equal(b->behaviour.quiet_hours.tz, "UTC");
    assert_true(b->behaviour.silent_in_groups);
    assert_int_equal(b->memory_scopes.count, 1);
    assert_string_equal(b->memory_scopes.items[0], "personal");
    assert_int_equal(b->overrides.count, 0);
    dagi_registry_unref(reg);
}

static void test_duplicate_ids_and_unknown_keys(void **state)
{
    struct fx *fx = *state;
    expect_errors(
        fx,
        "agents:\n"
        "  - {id: a, name: A, role: R, system_prompt: {file: a.md}, model: {default: builtin}}\n"
        "  - id: a\n"
        "    name: A again\n"
        "    role: R\n"
        "    system_prompt: {file: a.md}\n"
        "    model: {default: builtin}\n"
        "    descripton: typo\n",
        DAGI_EINVAL, "FILE:8: agents[1].descripton: unknown key\n");
    expect_errors(
        fx,
        "agents:\n"
        "  - {id: a, name: A, role: R, system_prompt: {file: a.md}, model: {default: builtin}}\n"
        "  - {id: a, name: B, role: R, system_prompt: {file: b.md}, model: {default: builtin}}\n"
        "  - {id: c, name: C, role: R, system_prompt: {file: b.md},\n"
        "     model: {default: builtin}, telegram: {token_env: X}}\n"
        "  - {id: c, name: C, role: R, system_prompt: {file: b.md},\n"
        "     model: {default: builtin}}\n",
        DAGI_EINVAL,
        "FILE:1: agents: agent id \"a\" is used twice (agents[0], [1])\n"
        "FILE:1: agents: agent id \"c\" is used twice (agents[2], [3])\n");
    /* A checker sees only records that bound cleanly, so the unknown key
     * hides the duplicate until it is fixed. */
    expect_errors(
        fx,
        "agents:\n"
        "  - {id: a, name: A, role: R, system_prompt: {file: a.md}, model: {default: builtin}}\n"
        "  - {id: a, name: B, role: R, system_prompt: {file: b.md}, model: {default: builtin},\n"
        "     behavior: {}}\n",
        DAGI_EINVAL, "FILE:4: agents[1].behavior: unknown key (did you mean \"behaviour\"?)\n");
    expect_errors(fx,
                  "agents:\n"
                  "  - {id: Bad Id, name: C, role: R, system_prompt: {file: b.md},\n"
                  "     model: {default: builtin}}\n",
                  DAGI_EINVAL,
                  "FILE:2: agents[0].id: must be a slug: a-z first, then a-z, 0-9, _ or -\n");
    expect_errors(fx, "version: 1\n", DAGI_EINVAL, "FILE:1: agents: required\n");
}

static void test_prompts(void **state)
{
    struct fx *fx = *state;
    write_file(fx->dir, "empty.md", "");
    struct dagi_registry *reg = NULL;
    assert_int_equal(load(fx,
                          "agents:\n"
                          "  - {id: a, name: A, role: R, system_prompt: {file: gone.md},\n"
                          "     model: {default: builtin}}\n"
                          "  - {id: b, name: B, role: R, system_prompt: {file: empty.md},\n"
                          "     model: {default: builtin}}\n",
                          &reg),
                     DAGI_EINVAL);
    assert_null(reg);
    char *want = dagi_xasprintf("%s: agents[0].system_prompt.file: cannot read %s/gone.md: No "
                                "such file or directory\n%s: agents[1].system_prompt.file: "
                                "%s/empty.md is empty\n",
                                fx->file, fx->dir, fx->file, fx->dir);
    assert_string_equal(ERRS(fx), want);
    free(want);
}

static void test_models(void **state)
{
    struct fx *fx = *state;
    expect_errors(fx,
                  "agents:\n"
                  "  - id: a\n"
                  "    name: A\n"
                  "    role: R\n"
                  "    system_prompt: {file: a.md}\n"
                  "    model: {default: qwen3-8b, fallbacks: [builtin, qwen2.5-3b]}\n"
                  "  - id: b\n"
                  "    name: B\n"
                  "    role: R\n"
                  "    system_prompt: {file: b.md}\n"
                  "    model: {default: qwen3-8b, fallbacks: [builtin, builtin]}\n"
                  "    routing: [{name: r, use: {model: m, fallbacks: [x]}}]\n",
                  DAGI_EINVAL,
                  "FILE:6: agents[0].model.fallbacks: must end with builtin\n"
                  "FILE:11: agents[1].model.fallbacks: \"builtin\" is listed twice\n"
                  "FILE:12: agents[1].routing[0].use.model: unknown model \"m\" (not builtin nor "
                  "in swapper.models)\n"
                  "FILE:12: agents[1].routing[0].use.fallbacks: unknown model \"x\" (not builtin "
                  "nor in swapper.models)\n"
                  "FILE:12: agents[1].routing[0].use.fallbacks: must end with builtin\n");
    expect_errors(fx,
                  "agents:\n"
                  "  - id: a\n"
                  "    name: A\n"
                  "    role: R\n"
                  "    system_prompt: {file: a.md}\n"
                  "    model: {default: gpt-5, vision: qwen3-vl-8b, fallbacks: [llama, builtin]}\n"
                  "    routing: [{name: r, use: {model: m, fallbacks: [qwen3-8b, builtin]}}]\n",
                  DAGI_EINVAL,
                  "FILE:6: agents[0].model.default: unknown model \"gpt-5\" (not builtin nor in "
                  "swapper.models)\n"
                  "FILE:6: agents[0].model.fallbacks: unknown model \"llama\" (not builtin nor in "
                  "swapper.models)\n"
                  "FILE:7: agents[0].routing[0].use.model: unknown model \"m\" (not builtin nor in "
                  "swapper.models)\n");
}

static void test_field_checks(void **state)
{
    struct fx *fx = *state;
    expect_errors(
        fx,
        "agents:\n"
        "  - id: a\n"
        "    name: A\n"
        "    role: R\n"
        "    system_prompt: {file: ../etc/passwd}\n"
        "    telegram: {username: someone_x, token_env: lower_case}\n"
        "    model: {default: builtin}\n"
        "    routing: [{name: r, when: {agent: [b]}, use: {model: builtin}}]\n"
        "    tools:\n"
        "      - {name: \"bad name\", description: D, url: ftp://x, parameters_json: \"[1]\"}\n"
        "      - {name: t, description: D, url: http://x, parameters_json: \"{nope\"}\n"
        "      - {name: t, description: D, url: http://x, method: PUT}\n"
        "    allowed_tools: [t, t]\n"
        "    behaviour:\n"
        "      quiet_hours: {from: \"25:00\", tz: \"Europe/Kyiv; rm\"}\n"
        "    memory_scopes: [private]\n",
        DAGI_EINVAL,
        "FILE:5: agents[0].system_prompt.file: must be a relative path inside "
        "prompts_dir\n"
        "FILE:6: agents[0].telegram.username: a bot username is 5-32 letters, digits or "
        "_ and ends with \"bot\"\n"
        "FILE:6: agents[0].telegram.token_env: must be an environment variable name "
        "(A-Z, 0-9, _)\n"
        "FILE:10: agents[0].tools[0].name: letters, digits, _ and - only (a function "
        "name)\n"
        "FILE:10: agents[0].tools[0].url: must start with http:// or https://\n"
        "FILE:10: agents[0].tools[0].parameters_json: must be a JSON object (a JSON "
        "Schema)\n"
        "FILE:11: agents[0].tools[1].parameters_json: not JSON: string or '}' expected "
        "near 'nope' (line 1)\n"
        "FILE:12: agents[0].tools[2].method: must be one of POST, GET\n"
        "FILE:15: agents[0].behaviour.quiet_hours.to: from and to must be set together\n"
        "FILE:15: agents[0].behaviour.quiet_hours.from: expected HH:MM (00:00-23:59)\n"
        "FILE:15: agents[0].behaviour.quiet_hours.tz: time zone \"Europe/Kyiv; rm\": only "
        "A-Z a-z 0-9 _ + - / are allowed (an IANA name such as Europe/Kyiv, or +03:00)\n");
    expect_errors(fx,
                  "agents:\n"
                  "  - id: a\n"
                  "    name: A\n"
                  "    role: R\n"
                  "    system_prompt: {file: a.md}\n"
                  "    model: {default: builtin}\n"
                  "    routing: [{name: r, when: {agent: [b]}, use: {model: builtin}}]\n"
                  "    allowed_tools: [t, t]\n"
                  "    memory_scopes: [private]\n",
                  DAGI_EINVAL,
                  "FILE:9: agents[0].memory_scopes: unknown scope \"private\" (personal, team, "
                  "public)\n"
                  "FILE:8: agents[0].allowed_tools: \"t\" is listed twice\n"
                  "FILE:7: agents[0].routing: rule \"r\": overrides are scoped to the agent; drop "
                  "`agent`\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_shipped_registry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_field, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_ids_and_unknown_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prompts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_models, setup, teardown),
        cmocka_unit_test_setup_teardown(test_field_checks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
