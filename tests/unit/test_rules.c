/* Routing rules: every leaf kind, all/any/not nesting, priority order, no
 * match, the shipped config/routing.yml, model id checks, and the errors:
 * unknown keys with file:line, JSON documents with field paths, bad shapes
 * (two kinds in one node, empty nodes, double negation, depth). */
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

#include "core/arena.h"
#include "core/config.h"
#include "core/err.h"
#include "core/mem.h"
#include "routing/rules.h"

struct fx {
    struct dagi_arena *arena;
    struct dagi_cfg_errors errs;
};

static int setup(void **state)
{
    struct fx *fx = dagi_xcalloc(1, sizeof(*fx));
    fx->arena = dagi_arena_new(0);
    dagi_cfg_errors_init(&fx->errs);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    dagi_cfg_errors_release(&fx->errs);
    dagi_arena_free(fx->arena);
    free(fx);
    return 0;
}

#define ERRS(fx) dagi_buf_str(&(fx)->errs.text)

static const struct dagi_rules *load(struct fx *fx, const char *yaml)
{
    const struct dagi_rules *r = NULL;
    int rc = dagi_rules_load_yaml("r.yml", yaml, strlen(yaml), fx->arena, &r, &fx->errs);
    if (rc)
        fprintf(stderr, "unexpected errors:\n%s", ERRS(fx));
    assert_int_equal(rc, 0);
    return r;
}

/* Loads yaml, expects DAGI_EINVAL and exactly `want` as the error text. */
static void expect_errors(struct fx *fx, const char *yaml, const char *want)
{
    const struct dagi_rules *r = NULL;
    dagi_cfg_errors_release(&fx->errs);
    dagi_cfg_errors_init(&fx->errs);
    assert_int_equal(dagi_rules_load_yaml("r.yml", yaml, strlen(yaml), fx->arena, &r, &fx->errs),
                     DAGI_EINVAL);
    assert_null(r);
    assert_string_equal(ERRS(fx), want);
}

static const char *route(const struct dagi_rules *r, const struct dagi_route_facts *f)
{
    const struct dagi_rule *m = dagi_rules_match(r, f);
    return m ? m->name : "(none)";
}

static void test_leaves(void **state)
{
    struct fx *fx = *state;
    const struct dagi_rules *r =
        load(fx, "rules:\n"
                 "  - {name: image, when: {has_image: true}, use: {model: v}}\n"
                 "  - {name: audio, when: {has_audio: true}, use: {model: a}}\n"
                 "  - {name: agent, when: {agent: [helion, druid]}, use: {model: s}}\n"
                 "  - {name: chan, when: {channel: [discord]}, use: {model: c}}\n"
                 "  - {name: task, when: {task_type: [code]}, use: {model: k}}\n"
                 "  - name: long\n"
                 "    when: {message_length: {min: 1000}}\n"
                 "    use: {model: l}\n"
                 "  - name: short\n"
                 "    when: {message_length: {max: 3}}\n"
                 "    use: {model: t}\n"
                 "  - name: meta\n"
                 "    when:\n"
                 "      metadata:\n"
                 "        equals: [{key: source, value: web}, {key: n, value: \"5\"},\n"
                 "                 {key: vip, value: \"true\"}]\n"
                 "        has: [user_id]\n"
                 "    use: {model: m}\n"
                 "  - {name: no_image, when: {has_image: false}, use: {model: d}}\n");
    assert_int_equal(r->count, 9);
    struct dagi_route_facts f = {.agent = "daarwizz", .channel = "telegram", .message_length = 50};
    assert_string_equal(route(r, &f), "no_image");
    f.has_image = true;
    assert_string_equal(route(r, &f), "image");
    f.has_image = false, f.has_audio = true;
    assert_string_equal(route(r, &f), "audio");
    f.has_audio = false, f.agent = "druid";
    assert_string_equal(route(r, &f), "agent");
    f.agent = NULL, f.channel = "discord";
    assert_string_equal(route(r, &f), "chan");
    f.channel = NULL, f.task_type = "code";
    assert_string_equal(route(r, &f), "task");
    f.task_type = "chat", f.message_length = 1000;
    assert_string_equal(route(r, &f), "long");
    f.message_length = 3;
    assert_string_equal(route(r, &f), "short");
    f.message_length = 50;

    json_t *meta =
        json_pack("{s:s, s:i, s:b, s:s}", "source", "web", "n", 5, "vip", 1, "user_id", "tg:1");
    f.metadata = meta;
    assert_string_equal(route(r, &f), "meta");
    json_object_set_new(meta, "user_id", json_null()); /* null counts as absent */
    assert_string_equal(route(r, &f), "no_image");
    json_object_set_new(meta, "user_id", json_string("tg:1"));
    json_object_set_new(meta, "n", json_real(5.0)); /* reals never equal text */
    assert_string_equal(route(r, &f), "no_image");
    json_object_set_new(meta, "n", json_string("5"));
    assert_string_equal(route(r, &f), "meta");
    json_object_set_new(meta, "vip", json_false());
    assert_string_equal(route(r, &f), "no_image");
    json_decref(meta);
}

static void test_nesting(void **state)
{
    struct fx *fx = *state;
    const struct dagi_rules *r = load(fx, "rules:\n"
                                          "  - name: nested\n"
                                          "    when:\n"
                                          "      all:\n"
                                          "        - channel: [telegram]\n"
                                          "        - any:\n"
                                          "            - agent: [helion]\n"
                                          "            - all:\n"
                                          "                - agent: [druid]\n"
                                          "                - not: {has_image: true}\n"
                                          "        - not:\n"
                                          "            any:\n"
                                          "              - task_type: [doc_parse]\n"
                                          "              - has_audio: true\n"
                                          "    use: {model: x}\n"
                                          "  - name: top_not\n"
                                          "    when: {not: {agent: [monitor]}}\n"
                                          "    use: {model: y}\n");
    struct dagi_route_facts f = {.agent = "helion", .channel = "telegram"};
    assert_string_equal(route(r, &f), "nested");
    f.agent = "druid";
    assert_string_equal(route(r, &f), "nested");
    f.has_image = true; /* the inner not fails, so the any fails */
    assert_string_equal(route(r, &f), "top_not");
    f.has_image = false, f.task_type = "doc_parse"; /* the outer not fails */
    assert_string_equal(route(r, &f), "top_not");
    f.task_type = NULL, f.has_audio = true;
    assert_string_equal(route(r, &f), "top_not");
    f.has_audio = false, f.channel = "http";
    assert_string_equal(route(r, &f), "top_not");
    f.agent = "monitor";
    assert_string_equal(route(r, &f), "(none)");
}

static void test_priority_and_no_match(void **state)
{
    struct fx *fx = *state;
    const struct dagi_rules *r =
        load(fx, "rules:\n"
                 "  - {name: low, priority: -5, use: {model: a}}\n"
                 "  - {name: first_tie, priority: 10, when: {agent: [x]}, use: {model: b}}\n"
                 "  - {name: high, priority: 20, when: {agent: [y]}, use: {model: c}}\n"
                 "  - {name: second_tie, priority: 10, when: {agent: [x, z]}, use: {model: d}}\n"
                 "  - {name: default_prio, when: {channel: [http]}, use: {model: e}}\n");
    assert_string_equal(r->order[0]->name, "high");
    assert_string_equal(r->order[1]->name, "first_tie");
    assert_string_equal(r->order[2]->name, "second_tie");
    assert_string_equal(r->order[3]->name, "default_prio");
    assert_string_equal(r->order[4]->name, "low");
    assert_string_equal(r->rules[0].name, "low"); /* file order kept beside */

    struct dagi_route_facts f = {.agent = "x"};
    assert_string_equal(route(r, &f), "first_tie");
    f.agent = "z";
    assert_string_equal(route(r, &f), "second_tie");
    f.agent = "y", f.channel = "http";
    assert_string_equal(route(r, &f), "high");
    f.agent = "q";
    assert_string_equal(route(r, &f), "default_prio");
    f.channel = NULL;
    assert_string_equal(route(r, &f), "low"); /* no `when`: every request */

    const struct dagi_rules *none =
        load(fx, "rules:\n"
                 "  - {name: only, when: {agent: [a]}, use: {model: m}}\n");
    assert_null(dagi_rules_match(none, &f));
    assert_null(dagi_rules_match(NULL, &f));
    const struct dagi_rules *empty = load(fx, "# nothing\n");
    assert_int_equal(empty->count, 0);
    assert_null(dagi_rules_match(empty, &f));
}

static void test_unknown_keys(void **state)
{
    struct fx *fx = *state;
    expect_errors(fx,
                  "rules:\n"
                  "  - name: a\n"
                  "    when:\n"
                  "      metadata_equals: {a: b}\n"
                  "      agent: [x]\n"
                  "    use: {model: m, fallback: [builtin]}\n"
                  "  - name: b\n"
                  "    when: {not: {not: {agent: [x]}}}\n"
                  "    use: {model: m}\n"
                  "    priorty: 3\n",
                  "r.yml:4: rules[0].when.metadata_equals: unknown key\n"
                  "r.yml:6: rules[0].use.fallback: unknown key (did you mean \"fallbacks\"?)\n"
                  "r.yml:8: rules[1].when.not.not: unknown key\n"
                  "r.yml:10: rules[1].priorty: unknown key (did you mean \"priority\"?)\n");
}

static void test_bad_shapes(void **state)
{
    struct fx *fx = *state;
    expect_errors(fx,
                  "rules:\n"
                  "  - name: two_kinds\n"
                  "    when:\n"
                  "      all: [{agent: [a]}]\n"
                  "      any: [{agent: [b]}]\n"
                  "    use: {model: m}\n"
                  "  - name: leaf_and_not\n"
                  "    when: {agent: [a], not: {agent: [b]}}\n"
                  "    use: {model: m}\n"
                  "  - name: empty_item\n"
                  "    when:\n"
                  "      any:\n"
                  "        - {}\n"
                  "        - {channel: [x], all: [{agent: [y]}]}\n"
                  "    use: {model: m}\n"
                  "  - name: mixed_not\n"
                  "    when: {not: {agent: [a], any: [{agent: [b]}]}}\n"
                  "    use: {model: m}\n",
                  "r.yml:3: rules[0].when: a condition is exactly one of all, any, not or a leaf; "
                  "wrap the parts in all: [...]\n"
                  "r.yml:8: rules[1].when: a condition is exactly one of all, any, not or a leaf; "
                  "wrap the parts in all: [...]\n"
                  "r.yml:13: rules[2].when.any[0]: empty condition (give all, any, not, or a leaf "
                  "key such as agent or has_image)\n"
                  "r.yml:14: rules[2].when.any[1]: a condition is exactly one of all, any, not or "
                  "a leaf; wrap the parts in all: [...]\n"
                  "r.yml:17: rules[3].when.not: a condition is exactly one of all, any, not or a "
                  "leaf; wrap the parts in all: [...]\n");

    expect_errors(fx,
                  "rules:\n"
                  "  - name: scalar\n"
                  "    when: {agent: helion, has_image: yes, message_length: {min: 9, max: 2}}\n"
                  "    use: {model: m, fallbacks: [other]}\n"
                  "  - {name: scalar, when: {all: []}}\n"
                  "  - {name: x, use: {model: m}, when: {metadata: {equals: {a: b}}}}\n",
                  "r.yml:3: rules[0].when.agent: expected a sequence\n"
                  "r.yml:3: rules[0].when.has_image: must be one of false, true, any\n"
                  "r.yml:3: rules[0].when.message_length.min: is above max (9 > 2)\n"
                  "r.yml:4: rules[0].use.fallbacks: must end with builtin\n"
                  "r.yml:5: rules[1].when.all: must have between 1 and 64 items, got 0\n"
                  "r.yml:5: rules[1].use: required\n"
                  "r.yml:6: rules[2].when.metadata.equals: expected a sequence\n");

    /* Names are unique; the version is known. */
    expect_errors(fx,
                  "version: 2\n"
                  "rules:\n"
                  "  - {name: a, use: {model: m}}\n"
                  "  - {name: a, use: {model: m}}\n",
                  "r.yml:1: version: unsupported version 2 (this build reads 1)\n"
                  "r.yml:2: rules: rule name \"a\" is used twice (rules[0], [1])\n");
}

/* Builds `levels` nested all: lists around a leaf, as flow YAML. */
static char *nested_yaml(int levels)
{
    struct dagi_buf b;
    dagi_buf_init(&b, 1 << 20);
    dagi_buf_append_str(&b, "rules:\n  - name: deep\n    use: {model: m}\n    when: ");
    for (int i = 1; i < levels; i++)
        dagi_buf_append_str(&b, "{all: [");
    dagi_buf_append_str(&b, "{agent: [a]}");
    for (int i = 1; i < levels; i++)
        dagi_buf_append_str(&b, "]}");
    dagi_buf_append_str(&b, "\n");
    return dagi_buf_detach(&b, NULL);
}

static void test_depth(void **state)
{
    struct fx *fx = *state;
    char *ok = nested_yaml(DAGI_RULES_MAX_DEPTH);
    const struct dagi_rules *r = load(fx, ok);
    struct dagi_route_facts f = {.agent = "a"};
    assert_string_equal(route(r, &f), "deep");
    free(ok);

    char *deep = nested_yaml(DAGI_RULES_MAX_DEPTH + 1);
    expect_errors(fx, deep, "r.yml:4: rules[0].when: conditions nest deeper than 16 levels\n");
    free(deep);

    /* `not` counts as a level. */
    expect_errors(
        fx,
        "rules:\n  - name: n\n    use: {model: m}\n    when: "
        "{all: [{all: [{all: [{all: [{all: [{all: [{all: [{all: [{all: [{all: [{all: "
        "[{all: [{all: [{all: [{all: [{not: {agent: [a]}}]}]}]}]}]}]}]}]}]}]}]}]}]}]}]}\n",
        "r.yml:4: rules[0].when: conditions nest deeper than 16 levels\n");
}

static void test_json(void **state)
{
    struct fx *fx = *state;
    json_error_t jerr;
    json_t *doc = json_loads("{\"rules\": [{\"name\": \"img\", \"priority\": 5,"
                             " \"when\": {\"any\": [{\"has_image\": true}, {\"not\": {\"channel\":"
                             " [\"telegram\"]}}]}, \"use\": {\"model\": \"v\", \"fallbacks\":"
                             " [\"builtin\"]}}]}",
                             0, &jerr);
    assert_non_null(doc);
    const struct dagi_rules *r = NULL;
    assert_int_equal(dagi_rules_load_json(doc, fx->arena, &r, &fx->errs), 0);
    json_decref(doc);
    struct dagi_route_facts f = {.channel = "telegram"};
    assert_string_equal(route(r, &f), "(none)");
    f.has_image = true;
    assert_string_equal(route(r, &f), "img");
    assert_string_equal(r->rules[0].use.fallbacks.items[0], "builtin");

    doc = json_loads("{\"rules\": [{\"name\": \"a\", \"use\": {\"model\": \"m\"}},"
                     " {\"name\": \"b\", \"when\": {\"any\": [{\"agent\": [\"x\"]},"
                     " {\"agnet\": [\"y\"]}], \"has_audio\": \"maybe\"}, \"use\": {}}]}",
                     0, &jerr);
    assert_non_null(doc);
    r = NULL;
    assert_int_equal(dagi_rules_load_json(doc, fx->arena, &r, &fx->errs), DAGI_EINVAL);
    json_decref(doc);
    assert_null(r);
    assert_string_equal(ERRS(fx),
                        "rules[1].when.any[1].agnet: unknown key (did you mean \"agent\"?)\n"
                        "rules[1].when.has_audio: must be one of false, true, any\n"
                        "rules[1].use.model: required\n");
}

static char *source_path(const char *rel)
{
    const char *dir = getenv("DAGI_SOURCE_DIR");
    if (dir)
        return dagi_xasprintf("%s/%s", dir, rel);
    /* meson compiles with a path to this file relative to the build dir,
     * where tests run; its prefix is the way to the source tree. */
    const char *me = __FILE__, *tail = "tests/unit/test_rules.c";
    size_t n = strlen(me) - strlen(tail);
    return dagi_xasprintf("%.*s%s", (int)n, me, rel);
}

static void test_shipped_file_and_models(void **state)
{
    struct fx *fx = *state;
    char *path = source_path("config/routing.yml");
    const struct dagi_rules *r = NULL;
    int rc = dagi_rules_load_file(path, fx->arena, &r, &fx->errs);
    if (rc)
        fprintf(stderr, "%s", ERRS(fx));
    assert_int_equal(rc, 0);
    assert_true(r->count >= 3);

    const char *known[] = {"qwen3-8b", "qwen3-vl-8b", "qwen2.5-coder-7b", "deepseek-chat"};
    assert_int_equal(dagi_rules_check_models(r, "routing.yml: rules", known, 4, &fx->errs), 0);
    assert_int_equal(dagi_rules_check_models(r, "routing.yml: rules", known, 2, &fx->errs),
                     DAGI_EINVAL);
    assert_string_equal(ERRS(fx),
                        "routing.yml: rules[1].use.model: unknown model \"qwen2.5-coder-7b\" "
                        "(not builtin nor in swapper.models)\n"
                        "routing.yml: rules[2].use.model: unknown model \"deepseek-chat\" "
                        "(not builtin nor in swapper.models)\n");
    assert_true(dagi_rules_model_known("builtin", NULL, 0));
    assert_false(dagi_rules_model_known("qwen3-8b", NULL, 0));

    struct dagi_route_facts f = {
        .agent = "devtools", .channel = "http", .task_type = "code", .message_length = 10};
    assert_string_equal(route(r, &f), "devtools_code");
    f.has_image = true;
    assert_string_equal(route(r, &f), "images_to_vision");
    f.has_image = false, f.agent = "helion", f.message_length = 5000;
    assert_string_equal(route(r, &f), "long_or_complex_to_reasoning");
    f.task_type = "doc_parse";
    assert_string_equal(route(r, &f), "(none)");
    json_t *meta = json_pack("{s:b}", "requires_complex_reasoning", 1);
    f.task_type = NULL, f.message_length = 10, f.metadata = meta;
    assert_string_equal(route(r, &f), "long_or_complex_to_reasoning");
    json_decref(meta);

    free(path);
    path = source_path("config/no-such-routing.yml");
    dagi_cfg_errors_release(&fx->errs);
    dagi_cfg_errors_init(&fx->errs);
    assert_int_equal(dagi_rules_load_file(path, fx->arena, &r, &fx->errs), DAGI_EIO);
    assert_non_null(strstr(ERRS(fx), "no-such-routing.yml: cannot open"));
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_leaves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nesting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_priority_and_no_match, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_shapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_depth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shipped_file_and_models, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
