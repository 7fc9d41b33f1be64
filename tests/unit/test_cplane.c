/* The control plane's client side without a node: feature flags (kill
 * switch, users, teams, a stable percentage rollout), allow/block lists,
 * and a snapshot built from a document set - the same build the registry
 * validates pushes with. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/registry.h"
#include "core/arena.h"
#include "core/config.h"
#include "cplane/cplane.h"
#include "cplane/flags.h"
#include "cplane/lists.h"
#include "node/dagi_config.h"

static void load_flags(struct dagi_arena *a, const char *text, struct dagi_flags *f)
{
    struct dagi_cfg_errors errs;
    dagi_cfg_errors_init(&errs);
    int rc = dagi_flags_load("flags.yml", text, strlen(text), a, f, &errs);
    if (rc)
        fprintf(stderr, "%s", dagi_buf_str(&errs.text));
    assert_int_equal(rc, 0);
    dagi_cfg_errors_release(&errs);
}

static void test_flags(void **state)
{
    (void)state;
    struct dagi_arena *a = dagi_arena_new(0);
    struct dagi_flags f;
    load_flags(a,
               "flags:\n"
               "  - {id: beta, users: [\"tg:42\"], teams: [core]}\n"
               "  - {id: killed, enabled: false, default: true, users: [\"tg:42\"]}\n"
               "  - {id: everyone, default: true}\n"
               "  - {id: half, percent: 50}\n",
               &f);
    assert_true(dagi_flags_on(&f, "beta", "tg:42", NULL));
    assert_true(dagi_flags_on(&f, "beta", "user:x", "core"));
    assert_false(dagi_flags_on(&f, "beta", "user:x", "other"));
    assert_false(dagi_flags_on(&f, "killed", "tg:42", NULL)); /* the kill switch wins */
    assert_true(dagi_flags_on(&f, "everyone", "anyone", NULL));
    assert_false(dagi_flags_on(&f, "unknown", "tg:42", NULL));
    /* stable: the same answer every time; about half of 2000 principals */
    size_t on = 0;
    for (int i = 0; i < 2000; i++) {
        char p[32];
        snprintf(p, sizeof(p), "user:%d", i);
        bool v = dagi_flags_on(&f, "half", p, NULL);
        assert_int_equal(v, dagi_flags_on(&f, "half", p, NULL));
        on += v;
    }
    assert_true(on > 850 && on < 1150);
    /* two flags at the same share do not pick the same principals */
    size_t same = 0;
    for (int i = 0; i < 2000; i++) {
        char p[32];
        snprintf(p, sizeof(p), "user:%d", i);
        same += (dagi_flags_bucket("a", p) < 50) == (dagi_flags_bucket("b", p) < 50);
    }
    assert_true(same < 1150);
    dagi_arena_free(a);
}

static void test_flag_errors(void **state)
{
    (void)state;
    struct dagi_arena *a = dagi_arena_new(0);
    struct dagi_flags f;
    struct dagi_cfg_errors errs;
    dagi_cfg_errors_init(&errs);
    const char *text = "flags:\n  - {id: x, percent: 120}\n  - {id: x}\n  - {id: Bad}\n";
    assert_int_not_equal(dagi_flags_load("flags.yml", text, strlen(text), a, &f, &errs), 0);
    const char *e = dagi_buf_str(&errs.text);
    assert_non_null(strstr(e, "flags.yml:2: flags[0].percent"));
    assert_non_null(strstr(e, "flags.yml:4: flags[2].id"));
    dagi_cfg_errors_release(&errs);
    dagi_cfg_errors_init(&errs);
    text = "flags:\n  - {id: x}\n  - {id: x}\n";
    assert_int_not_equal(dagi_flags_load("flags.yml", text, strlen(text), a, &f, &errs), 0);
    assert_non_null(strstr(dagi_buf_str(&errs.text), "flag \"x\" is defined twice"));
    dagi_cfg_errors_release(&errs);
    dagi_arena_free(a);
}

static void test_lists(void **state)
{
    (void)state;
    struct dagi_arena *a = dagi_arena_new(0);
    struct dagi_lists l;
    struct dagi_cfg_errors errs;
    dagi_cfg_errors_init(&errs);
    const char *text = "lists:\n"
                       "  - {id: banned, type: block, entries: [\"tg:666\", \"user:spam*\"]}\n"
                       "  - {id: pilots, type: allow, of: team, agents: [druid], entries: [greens]}\n";
    assert_int_equal(dagi_lists_load("lists.yml", text, strlen(text), a, &l, &errs), 0);
    assert_string_equal(dagi_lists_refuse(&l, "tg:666", NULL, "helion"), "banned");
    assert_string_equal(dagi_lists_refuse(&l, "user:spammer", NULL, "helion"), "banned");
    assert_null(dagi_lists_refuse(&l, "tg:42", NULL, "helion"));
    /* druid is for the pilot team only */
    assert_string_equal(dagi_lists_refuse(&l, "tg:42", "core", "druid"), "pilots");
    assert_string_equal(dagi_lists_refuse(&l, "tg:42", NULL, "druid"), "pilots");
    assert_null(dagi_lists_refuse(&l, "tg:42", "greens", "druid"));
    /* the admin key is never locked out */
    assert_null(dagi_lists_refuse(&l, "admin", NULL, "druid"));
    dagi_cfg_errors_release(&errs);
    dagi_arena_free(a);
}

static void test_build_checks_cross_references(void **state)
{
    (void)state;
    struct dagi_config_snapshot *cfg = NULL;
    struct dagi_cfg_errors errs;
    dagi_cfg_errors_init(&errs);
    struct dagi_config_overrides none = {0};
    assert_int_equal(dagi_config_snapshot_load(NULL, &none, &cfg, &errs), 0);
    struct dagi_docset set;
    dagi_docset_init(&set);
    const char *agents = "agents:\n  - {id: a, name: A, role: R, system_prompt: {file: a.md},\n"
                         "     model: {default: builtin}}\n";
    assert_int_equal(dagi_docset_put(&set, DAGI_DOC_AGENTS, "agent_registry.yml", agents,
                                     strlen(agents), 1, "t", 0, NULL),
                     0);
    /* no prompt document yet: refused, naming the agent's field */
    assert_int_not_equal(dagi_docset_validate(&set, cfg->cfg, &errs), 0);
    assert_non_null(strstr(dagi_buf_str(&errs.text), "agents[0].system_prompt.file"));
    dagi_cfg_errors_release(&errs);
    dagi_cfg_errors_init(&errs);
    assert_int_equal(dagi_docset_put(&set, DAGI_DOC_PROMPTS, "a.md", "You are A.\n", 11, 1, "t",
                                     0, NULL),
                     0);
    struct dagi_cplane_snap *s = NULL;
    assert_int_equal(dagi_cplane_build(&set, cfg->cfg, &s, &errs), 0);
    assert_non_null(s->agents);
    assert_string_equal(dagi_registry_find(s->agents, "a")->prompt, "You are A.\n");
    assert_null(s->policy);
    dagi_cplane_snap_unref(s);
    /* a policy naming an agent the registry lacks */
    const char *policy = "roles: [{id: r, allow_on: [{action: agent.use, resources: [zz]}]}]\n";
    assert_int_equal(dagi_docset_put(&set, DAGI_DOC_POLICIES, "policy.yml", policy,
                                     strlen(policy), 1, "t", 0, NULL),
                     0);
    assert_int_not_equal(dagi_docset_validate(&set, cfg->cfg, &errs), 0);
    assert_non_null(strstr(dagi_buf_str(&errs.text), "zz"));
    dagi_cfg_errors_release(&errs);
    dagi_docset_release(&set);
    dagi_config_snapshot_unref(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_flag_errors),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_build_checks_cross_references),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
