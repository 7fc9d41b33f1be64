/* Policy decisions: default deny, grants, explicit denies beating grants,
 * wildcard actions, resource-restricted grants, every subject kind,
 * entitlements (agents, models, max mode), the shipped config/policy.yml,
 * schema errors with file:line, the empty bundle (admin only), the wire
 * form, and the compiled tables checked against a plain reference
 * evaluator on generated bundles. */
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

#include "authz/authz.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"
#include "core/mem.h"

#define ERRS(e) dagi_buf_str(&(e)->text)

static struct dagi_authz_bundle *compile(const char *yaml)
{
    struct dagi_cfg_errors errs;
    dagi_cfg_errors_init(&errs);
    struct dagi_authz_bundle *b = NULL;
    int rc = dagi_authz_compile(yaml, strlen(yaml), "p.yml", &b, &errs);
    if (rc)
        fprintf(stderr, "unexpected errors:\n%s", ERRS(&errs));
    assert_int_equal(rc, 0);
    assert_int_equal(dagi_authz_check_text(yaml, strlen(yaml), "p.yml", &errs), 0);
    dagi_cfg_errors_release(&errs);
    return b;
}

/* Compiles yaml expecting `rc` and exactly `want` as the error text, from
 * both the checker and the compiler. */
static void expect_errors(const char *yaml, int rc, const char *want)
{
    struct dagi_cfg_errors errs;
    dagi_cfg_errors_init(&errs);
    assert_int_equal(dagi_authz_check_text(yaml, strlen(yaml), "p.yml", &errs), rc);
    if (!want) { /* a syntax error: libyaml's words, with the file and line */
        assert_true(errs.count > 0);
        assert_non_null(strstr(ERRS(&errs), "p.yml:"));
        dagi_cfg_errors_release(&errs);
        return;
    }
    assert_string_equal(ERRS(&errs), want);
    dagi_cfg_errors_release(&errs);
    dagi_cfg_errors_init(&errs);
    struct dagi_authz_bundle *b = NULL;
    assert_int_equal(dagi_authz_compile(yaml, strlen(yaml), "p.yml", &b, &errs), rc);
    assert_null(b);
    assert_string_equal(ERRS(&errs), want);
    dagi_cfg_errors_release(&errs);
}

struct ask {
    const char *principal;
    const char *subjects[8]; /* NULL-terminated */
    const char *team;
    const char *action;
    const char *resource;
};

static struct dagi_authz_decision decide(const struct dagi_authz_bundle *b, struct ask a)
{
    size_t n = 0;
    while (n < 8 && a.subjects[n])
        n++;
    struct dagi_authz_request req = {a.principal, a.subjects, n, a.team, a.action, a.resource};
    struct dagi_authz_decision d = {true, "unset", "unset"};
    dagi_authz_decide(b, &req, &d);
    return d;
}

/* "allow granted admin", "deny explicit_deny r", "deny no_grant -". */
static char *verdict(const struct dagi_authz_bundle *b, struct ask a)
{
    static char out[256];
    struct dagi_authz_decision d = decide(b, a);
    snprintf(out, sizeof(out), "%s %s %s", d.allow ? "allow" : "deny", d.reason,
             d.rule ? d.rule : "-");
    return out;
}

#define ASK(...) ((struct ask){__VA_ARGS__})

/* ---- the rules ---- */

static void test_default_deny(void **state)
{
    (void)state;
    struct dagi_authz_bundle *b = compile("roles:\n"
                                          "  - id: reader\n"
                                          "    allow: [audit.read]\n"
                                          "bindings:\n"
                                          "  - {subject: \"user:alice\", roles: [reader]}\n");
    /* bound, but not for this action; not bound at all; anonymous */
    assert_string_equal(verdict(b, ASK("user:alice", {NULL}, NULL, "agent.use", "helion")),
                        "deny no_grant -");
    assert_string_equal(verdict(b, ASK("user:bob", {NULL}, NULL, "audit.read", NULL)),
                        "deny no_grant -");
    assert_string_equal(verdict(b, ASK(NULL, {NULL}, NULL, "audit.read", NULL)), "deny no_grant -");
    /* the admin has no bypass once a policy exists */
    assert_string_equal(verdict(b, ASK("admin", {NULL}, NULL, "audit.read", NULL)),
                        "deny no_grant -");
    assert_string_equal(verdict(b, ASK("user:alice", {NULL}, NULL, "audit.read", NULL)),
                        "allow granted reader");
    dagi_authz_bundle_unref(b);
}

static void test_grant_and_explicit_deny(void **state)
{
    (void)state;
    struct dagi_authz_bundle *b =
        compile("roles:\n"
                "  - id: user\n"
                "    allow: [agent.use, config.write]\n"
                "  - id: no_config\n"
                "    deny: [config.write]\n"
                "  - id: self_denied\n"
                "    allow: [audit.read]\n"
                "    deny: [audit.read]\n"
                "  - id: everything\n"
                "    allow: [\"*\"]\n"
                "bindings:\n"
                "  - {subject: \"user:alice\", roles: [user]}\n"
                "  - {subject: \"team:ops\", roles: [no_config]}\n"
                "  - {subject: \"user:carol\", roles: [self_denied, everything]}\n"
                "teams:\n"
                "  - {id: \"*\", plan: all}\n"
                "plans:\n"
                "  - {id: all, agents: [\"*\"], models: [\"*\"]}\n");
    assert_string_equal(verdict(b, ASK("user:alice", {NULL}, NULL, "config.write", NULL)),
                        "allow granted user");
    assert_string_equal(verdict(b, ASK("user:alice", {NULL}, NULL, "agent.use", "helion")),
                        "allow granted user");
    /* the deny comes with a membership: it wins whichever comes first */
    assert_string_equal(
        verdict(b, ASK("user:alice", {"user:alice", "team:ops"}, NULL, "config.write", NULL)),
        "deny explicit_deny no_config");
    assert_string_equal(verdict(b, ASK("team:ops", {"user:alice"}, NULL, "config.write", NULL)),
                        "deny explicit_deny no_config");
    /* the deny is for config.write only */
    assert_string_equal(verdict(b, ASK("user:alice", {"team:ops"}, NULL, "agent.use", "helion")),
                        "allow granted user");
    /* a deny beats "*" and a grant in the same role */
    assert_string_equal(verdict(b, ASK("user:carol", {NULL}, NULL, "audit.read", NULL)),
                        "deny explicit_deny self_denied");
    assert_string_equal(verdict(b, ASK("user:carol", {NULL}, NULL, "config.write", NULL)),
                        "allow granted everything");
    dagi_authz_bundle_unref(b);
}

static void test_wildcard_actions(void **state)
{
    (void)state;
    struct dagi_authz_bundle *b = compile("roles:\n"
                                          "  - id: tools\n"
                                          "    allow: [\"agent.tool.*\", \"memory.read.*\"]\n"
                                          "    deny: [agent.tool.shell]\n"
                                          "  - id: root\n"
                                          "    allow: [\"*\"]\n"
                                          "    deny: [\"memory.*\"]\n"
                                          "bindings:\n"
                                          "  - {subject: \"user:a\", roles: [tools]}\n"
                                          "  - {subject: \"user:r\", roles: [root]}\n");
    const char *a = "user:a";
    assert_string_equal(verdict(b, ASK(a, {NULL}, NULL, "agent.tool.web_search", "helion")),
                        "allow granted tools");
    assert_string_equal(verdict(b, ASK(a, {NULL}, NULL, "agent.tool.x.y", NULL)),
                        "allow granted tools");
    assert_string_equal(verdict(b, ASK(a, {NULL}, NULL, "memory.read.team", NULL)),
                        "allow granted tools");
    /* a pattern covers what is below its prefix, not the prefix itself or
     * a longer word */
    assert_string_equal(verdict(b, ASK(a, {NULL}, NULL, "agent.tool", NULL)), "deny no_grant -");
    assert_string_equal(verdict(b, ASK(a, {NULL}, NULL, "agent.toolbox.x", NULL)),
                        "deny no_grant -");
    assert_string_equal(verdict(b, ASK(a, {NULL}, NULL, "memory.write.team", NULL)),
                        "deny no_grant -");
    assert_string_equal(verdict(b, ASK(a, {NULL}, NULL, "agent.tool.shell", NULL)),
                        "deny explicit_deny tools");
    /* "*" is everything, and a wildcard deny beats it */
    const char *r = "user:r";
    assert_string_equal(verdict(b, ASK(r, {NULL}, NULL, "config.write", NULL)),
                        "allow granted root");
    assert_string_equal(verdict(b, ASK(r, {NULL}, NULL, "x", NULL)), "allow granted root");
    assert_string_equal(verdict(b, ASK(r, {NULL}, NULL, "memory.read.personal", NULL)),
                        "deny explicit_deny root");
    /* a request names a concrete action: no patterns, no empty words */
    const char *bad[] = {"agent.*", "*",      "",          "agent..use",
                         ".agent",  "agent.", "agent use", "agent.use!"};
    for (size_t i = 0; i < DAGI_ARRAY_LEN(bad); i++)
        assert_string_equal(verdict(b, ASK(r, {NULL}, NULL, bad[i], NULL)),
                            "deny invalid_request -");
    char long_action[200];
    memset(long_action, 'a', sizeof(long_action) - 1);
    long_action[sizeof(long_action) - 1] = '\0';
    assert_string_equal(verdict(b, ASK(r, {NULL}, NULL, long_action, NULL)),
                        "deny invalid_request -");
    assert_string_equal(verdict(b, ASK(r, {NULL}, NULL, "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p", NULL)),
                        "allow granted root");
    assert_string_equal(verdict(b, ASK(r, {NULL}, NULL, "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q", NULL)),
                        "deny invalid_request -");
    assert_string_equal(verdict(b, ASK(r, {NULL}, NULL, NULL, NULL)), "deny invalid_request -");
    dagi_authz_bundle_unref(b);
}

static void test_resource_restricted_grants(void **state)
{
    (void)state;
    struct dagi_authz_bundle *b =
        compile("roles:\n"
                "  - id: some_agents\n"
                "    allow_on:\n"
                "      - {action: agent.use, resources: [helion, druid]}\n"
                "      - {action: agent.use, resources: [nutra]}\n"
                "      - {action: \"agent.tool.*\", resources: [helion]}\n"
                "  - id: all_but_druid\n"
                "    allow: [agent.use]\n"
                "    deny_on: [{action: agent.use, resources: [druid]}]\n"
                "bindings:\n"
                "  - {subject: \"user:s\", roles: [some_agents]}\n"
                "  - {subject: \"user:d\", roles: [all_but_druid]}\n"
                "teams: [{id: \"*\", plan: all}]\n"
                "plans: [{id: all, agents: [\"*\"], models: [\"*\"]}]\n");
    const char *s = "user:s";
    assert_string_equal(verdict(b, ASK(s, {NULL}, NULL, "agent.use", "helion")),
                        "allow granted some_agents");
    assert_string_equal(verdict(b, ASK(s, {NULL}, NULL, "agent.use", "druid")),
                        "allow granted some_agents");
    /* two records for one action merge */
    assert_string_equal(verdict(b, ASK(s, {NULL}, NULL, "agent.use", "nutra")),
                        "allow granted some_agents");
    assert_string_equal(verdict(b, ASK(s, {NULL}, NULL, "agent.use", "devtools")),
                        "deny no_grant -");
    /* a restricted grant needs a resource */
    assert_string_equal(verdict(b, ASK(s, {NULL}, NULL, "agent.use", NULL)), "deny no_grant -");
    assert_string_equal(verdict(b, ASK(s, {NULL}, NULL, "agent.tool.web", "helion")),
                        "allow granted some_agents");
    assert_string_equal(verdict(b, ASK(s, {NULL}, NULL, "agent.tool.web", "druid")),
                        "deny no_grant -");
    const char *d = "user:d";
    assert_string_equal(verdict(b, ASK(d, {NULL}, NULL, "agent.use", "helion")),
                        "allow granted all_but_druid");
    assert_string_equal(verdict(b, ASK(d, {NULL}, NULL, "agent.use", "druid")),
                        "deny explicit_deny all_but_druid");
    /* a restricted deny does not refuse a request without a resource */
    assert_string_equal(verdict(b, ASK(d, {NULL}, NULL, "agent.use", NULL)),
                        "allow granted all_but_druid");
    dagi_authz_bundle_unref(b);
}

static void test_subject_kinds(void **state)
{
    (void)state;
    struct dagi_authz_bundle *b = compile("roles:\n"
                                          "  - {id: r_user, allow: [a.user]}\n"
                                          "  - {id: r_team, allow: [a.team]}\n"
                                          "  - {id: r_key, allow: [a.key]}\n"
                                          "  - {id: r_tg, allow: [a.tg]}\n"
                                          "  - {id: r_tg42, allow: [a.tg42]}\n"
                                          "  - {id: r_role, allow: [a.role]}\n"
                                          "  - {id: r_any, allow: [a.any]}\n"
                                          "  - {id: r_admin, allow: [a.admin]}\n"
                                          "  - {id: r_users, allow: [a.users]}\n"
                                          "bindings:\n"
                                          "  - {subject: \"user:alice\", roles: [r_user]}\n"
                                          "  - {subject: \"team:energy\", roles: [r_team]}\n"
                                          "  - {subject: \"key:k1\", roles: [r_key]}\n"
                                          "  - {subject: \"tg:*\", roles: [r_tg]}\n"
                                          "  - {subject: \"tg:42\", roles: [r_tg42]}\n"
                                          "  - {subject: \"role:user\", roles: [r_role]}\n"
                                          "  - {subject: \"*\", roles: [r_any]}\n"
                                          "  - {subject: admin, roles: [r_admin]}\n"
                                          "  - {subject: \"user:*\", roles: [r_users]}\n");
    assert_string_equal(verdict(b, ASK("user:alice", {NULL}, NULL, "a.user", NULL)),
                        "allow granted r_user");
    assert_string_equal(verdict(b, ASK("user:bob", {NULL}, NULL, "a.user", NULL)),
                        "deny no_grant -");
    assert_string_equal(verdict(b, ASK("user:bob", {NULL}, NULL, "a.users", NULL)),
                        "allow granted r_users");
    /* team via membership: the caller lists it */
    assert_string_equal(
        verdict(b, ASK("user:bob", {"user:bob", "team:energy"}, NULL, "a.team", NULL)),
        "allow granted r_team");
    assert_string_equal(verdict(b, ASK("user:bob", {"team:other"}, "energy", "a.team", NULL)),
                        "deny no_grant -");
    assert_string_equal(verdict(b, ASK("user:bob", {"key:k1"}, NULL, "a.key", NULL)),
                        "allow granted r_key");
    assert_string_equal(verdict(b, ASK("tg:7", {NULL}, NULL, "a.tg", NULL)), "allow granted r_tg");
    assert_string_equal(verdict(b, ASK("tg:7", {NULL}, NULL, "a.tg42", NULL)), "deny no_grant -");
    assert_string_equal(verdict(b, ASK("tg:42", {NULL}, NULL, "a.tg42", NULL)),
                        "allow granted r_tg42");
    assert_string_equal(verdict(b, ASK("tg:42", {NULL}, NULL, "a.tg", NULL)), "allow granted r_tg");
    /* "<kind>:*" is that kind only */
    assert_string_equal(verdict(b, ASK("tgx:1", {"tg", "tg:"}, NULL, "a.tg", NULL)),
                        "allow granted r_tg");
    assert_string_equal(verdict(b, ASK("tgx:1", {"tg", "username:x"}, NULL, "a.tg", NULL)),
                        "deny no_grant -");
    assert_string_equal(verdict(b, ASK("key:k2", {"role:user"}, NULL, "a.role", NULL)),
                        "allow granted r_role");
    assert_string_equal(verdict(b, ASK("key:k2", {"role:admin"}, NULL, "a.role", NULL)),
                        "deny no_grant -");
    assert_string_equal(verdict(b, ASK("anyone:at_all", {NULL}, NULL, "a.any", NULL)),
                        "allow granted r_any");
    assert_string_equal(verdict(b, ASK(NULL, {NULL}, NULL, "a.any", NULL)), "allow granted r_any");
    assert_string_equal(verdict(b, ASK("admin", {NULL}, NULL, "a.admin", NULL)),
                        "allow granted r_admin");
    assert_string_equal(verdict(b, ASK("user:admin", {NULL}, NULL, "a.admin", NULL)),
                        "deny no_grant -");
    /* A subject longer than any binding may be refuses the request: a deny
     * on "user:*" must not be dodged with a long id. */
    char long_id[400] = "user:";
    memset(long_id + 5, 'x', sizeof(long_id) - 6);
    assert_string_equal(verdict(b, ASK(long_id, {NULL}, NULL, "a.any", NULL)),
                        "deny invalid_request -");
    assert_string_equal(verdict(b, ASK("user:a", {long_id}, NULL, "a.any", NULL)),
                        "deny invalid_request -");
    const char *many[DAGI_AUTHZ_REQUEST_SUBJECTS_MAX + 1];
    for (size_t i = 0; i < DAGI_ARRAY_LEN(many); i++)
        many[i] = "user:alice";
    struct dagi_authz_request req = {"user:alice", many,     DAGI_ARRAY_LEN(many),
                                     NULL,         "a.user", NULL};
    struct dagi_authz_decision d;
    dagi_authz_decide(b, &req, &d);
    assert_false(d.allow);
    assert_string_equal(d.reason, "invalid_request");
    req.n_subjects--;
    dagi_authz_decide(b, &req, &d);
    assert_true(d.allow);
    dagi_authz_bundle_unref(b);
}

/* ---- entitlements ---- */

static const char *const ENTITLED_YAML =
    "roles:\n"
    "  - id: user\n"
    "    allow: [agent.use, model.use, \"mode.*\", \"agent.tool.*\"]\n"
    "bindings:\n"
    "  - {subject: \"*\", roles: [user]}\n"
    "plans:\n"
    "  - {id: basic, agents: [helion, druid], models: [qwen3-8b], max_mode: team}\n"
    "  - {id: wide, agents: [\"*\"], models: [\"*\"], max_mode: confidential}\n"
    "teams:\n"
    "  - {id: \"*\", plan: basic}\n"
    "  - {id: energy, plan: wide}\n"
    "  - {id: narrow, plan: wide, agents: [nutra], max_mode: public}\n"
    "  - {id: nothing, plan: wide, agents: [], models: []}\n";

static void test_entitlements(void **state)
{
    (void)state;
    struct dagi_authz_bundle *b = compile(ENTITLED_YAML);
    /* a user outside the team's entitlements cannot use an agent */
    assert_string_equal(verdict(b, ASK("tg:1", {NULL}, "daarion", "agent.use", "devtools")),
                        "deny not_entitled *");
    assert_string_equal(verdict(b, ASK("tg:1", {NULL}, "daarion", "agent.use", "helion")),
                        "allow granted user");
    assert_string_equal(verdict(b, ASK("tg:1", {NULL}, "energy", "agent.use", "devtools")),
                        "allow granted user");
    /* no team: the "*" record */
    assert_string_equal(verdict(b, ASK("tg:1", {NULL}, NULL, "agent.use", "devtools")),
                        "deny not_entitled *");
    assert_string_equal(verdict(b, ASK("tg:1", {NULL}, "", "agent.use", "druid")),
                        "allow granted user");
    /* overrides replace the plan's lists; [] is "none", not "the plan's" */
    assert_string_equal(verdict(b, ASK("tg:1", {NULL}, "narrow", "agent.use", "helion")),
                        "deny not_entitled narrow");
    assert_string_equal(verdict(b, ASK("tg:1", {NULL}, "narrow", "agent.use", "nutra")),
                        "allow granted user");
    assert_string_equal(verdict(b, ASK("tg:1", {NULL}, "nothing", "agent.use", "helion")),
                        "deny not_entitled nothing");
    /* models */
    assert_string_equal(verdict(b, ASK("tg:1", {NULL}, "daarion", "model.use", "deepseek-chat")),
                        "deny not_entitled *");
    assert_string_equal(verdict(b, ASK("tg:1", {NULL}, "daarion", "model.use", "qwen3-8b")),
                        "allow granted user");
    assert_string_equal(verdict(b, ASK("tg:1", {NULL}, "narrow", "model.use", "deepseek-chat")),
                        "allow granted user");
    /* modes: the grant mode.* is capped by max_mode */
    assert_string_equal(verdict(b, ASK("tg:1", {NULL}, "daarion", "mode.team", NULL)),
                        "allow granted user");
    assert_string_equal(verdict(b, ASK("tg:1", {NULL}, "daarion", "mode.confidential", NULL)),
                        "deny not_entitled *");
    assert_string_equal(verdict(b, ASK("tg:1", {NULL}, "energy", "mode.confidential", NULL)),
                        "allow granted user");
    assert_string_equal(verdict(b, ASK("tg:1", {NULL}, "narrow", "mode.team", NULL)),
                        "deny not_entitled narrow");
    assert_string_equal(verdict(b, ASK("tg:1", {NULL}, "narrow", "mode.public", NULL)),
                        "allow granted user");
    /* tools are not entitlements: only the grant decides */
    assert_string_equal(verdict(b, ASK("tg:1", {NULL}, "nothing", "agent.tool.web", "helion")),
                        "allow granted user");

    /* the queries the router makes */
    assert_true(dagi_authz_agent_entitled(b, "daarion", "helion"));
    assert_false(dagi_authz_agent_entitled(b, "daarion", "devtools"));
    assert_true(dagi_authz_agent_entitled(b, "energy", "devtools"));
    assert_false(dagi_authz_model_entitled(b, NULL, "mistral-7b"));
    assert_true(dagi_authz_model_entitled(b, "energy", "mistral-7b"));
    assert_int_equal(dagi_authz_max_mode(b, "daarion"), DAGI_AUTHZ_MODE_TEAM);
    assert_int_equal(dagi_authz_max_mode(b, "energy"), DAGI_AUTHZ_MODE_CONFIDENTIAL);
    assert_int_equal(dagi_authz_max_mode(b, "narrow"), DAGI_AUTHZ_MODE_PUBLIC);
    assert_int_equal(dagi_authz_cap_mode(b, "daarion", DAGI_AUTHZ_MODE_CONFIDENTIAL),
                     DAGI_AUTHZ_MODE_TEAM);
    assert_int_equal(dagi_authz_cap_mode(b, "daarion", DAGI_AUTHZ_MODE_PUBLIC),
                     DAGI_AUTHZ_MODE_PUBLIC);
    assert_int_equal(dagi_authz_cap_mode(b, "energy", DAGI_AUTHZ_MODE_CONFIDENTIAL),
                     DAGI_AUTHZ_MODE_CONFIDENTIAL);
    dagi_authz_bundle_unref(b);

    /* with no "*" record an unlisted team (or none) is entitled to nothing */
    b = compile("roles: [{id: user, allow: [agent.use, mode.team]}]\n"
                "bindings: [{subject: \"*\", roles: [user]}]\n"
                "plans: [{id: p, agents: [\"*\"], models: [\"*\"], max_mode: team}]\n"
                "teams: [{id: energy, plan: p}]\n");
    assert_string_equal(verdict(b, ASK("tg:1", {NULL}, "energy", "agent.use", "helion")),
                        "allow granted user");
    assert_string_equal(verdict(b, ASK("tg:1", {NULL}, "other", "agent.use", "helion")),
                        "deny not_entitled -");
    assert_string_equal(verdict(b, ASK("tg:1", {NULL}, NULL, "agent.use", NULL)),
                        "deny not_entitled -");
    assert_string_equal(verdict(b, ASK("tg:1", {NULL}, "other", "mode.team", NULL)),
                        "deny not_entitled -");
    assert_int_equal(dagi_authz_max_mode(b, "other"), DAGI_AUTHZ_MODE_PUBLIC);
    dagi_authz_bundle_unref(b);

    enum dagi_authz_mode m;
    assert_int_equal(dagi_authz_mode_parse("confidential", &m), 0);
    assert_int_equal(m, DAGI_AUTHZ_MODE_CONFIDENTIAL);
    assert_int_equal(dagi_authz_mode_parse("secret", &m), DAGI_EINVAL);
    assert_string_equal(dagi_authz_mode_name(DAGI_AUTHZ_MODE_TEAM), "team");
}

/* ---- no policy ---- */

static void test_empty_bundle_is_admin_only(void **state)
{
    (void)state;
    struct dagi_authz_bundle *empty = compile("# nothing yet\n");
    struct dagi_authz_bundle *no_roles = compile("plans: [{id: p, agents: [], models: []}]\n"
                                                 "teams: [{id: \"*\", plan: p}]\n");
    const struct dagi_authz_bundle *bundles[] = {NULL, empty, no_roles};
    for (size_t i = 0; i < DAGI_ARRAY_LEN(bundles); i++) {
        const struct dagi_authz_bundle *b = bundles[i];
        assert_string_equal(verdict(b, ASK("admin", {NULL}, NULL, "config.write", NULL)),
                            "allow builtin_admin -");
        assert_string_equal(verdict(b, ASK("admin", {NULL}, "energy", "agent.use", "helion")),
                            "allow builtin_admin -");
        assert_string_equal(
            verdict(b, ASK("user:alice", {"role:admin"}, NULL, "agent.use", "helion")),
            "deny no_policy -");
        assert_string_equal(verdict(b, ASK(NULL, {NULL}, NULL, "agent.use", NULL)),
                            "deny no_policy -");
        assert_string_equal(verdict(b, ASK("admin", {NULL}, NULL, NULL, NULL)),
                            "deny invalid_request -");
        /* the admin's requests are not capped */
        assert_true(dagi_authz_agent_entitled(b, "energy", "helion"));
        assert_true(dagi_authz_model_entitled(b, NULL, "qwen3-8b"));
        assert_int_equal(dagi_authz_cap_mode(b, NULL, DAGI_AUTHZ_MODE_CONFIDENTIAL),
                         DAGI_AUTHZ_MODE_CONFIDENTIAL);
    }
    dagi_authz_bundle_unref(empty);
    dagi_authz_bundle_unref(no_roles);
}

/* ---- the shipped sample ---- */

static char *source_path(const char *rel)
{
    const char *dir = getenv("DAGI_SOURCE_DIR");
    if (dir)
        return dagi_xasprintf("%s/%s", dir, rel);
    const char *me = __FILE__, *tail = "tests/unit/test_authz.c";
    size_t n = strlen(me) - strlen(tail);
    return dagi_xasprintf("%.*s%s", (int)n, me, rel);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    struct dagi_buf buf;
    dagi_buf_init(&buf, 1 << 20);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        assert_int_equal(dagi_buf_append(&buf, chunk, n), 0);
    fclose(f);
    *len = buf.len;
    char *text = dagi_xstrndup(dagi_buf_str(&buf), buf.len);
    dagi_buf_release(&buf);
    return text;
}

static void test_shipped_policy(void **state)
{
    (void)state;
    char *path = source_path("config/policy.yml");
    size_t len;
    char *text = read_file(path, &len);
    struct dagi_cfg_errors errs;
    dagi_cfg_errors_init(&errs);
    struct dagi_authz_bundle *b = NULL;
    int rc = dagi_authz_compile(text, len, "config/policy.yml", &b, &errs);
    if (rc)
        fprintf(stderr, "%s", ERRS(&errs));
    assert_int_equal(rc, 0);
    /* the agents of config/agent_registry.yml */
    static const char *const agents[] = {"daarwizz", "microdao_orchestrator",
                                         "devtools", "greenfood",
                                         "clan",     "soul",
                                         "druid",    "nutra",
                                         "eonarch",  "helion",
                                         "yaromir",  "monitor",
                                         "parser"};
    assert_int_equal(dagi_authz_check_agents(b, agents, DAGI_ARRAY_LEN(agents), &errs), 0);

    /* admin does everything, through its binding */
    assert_string_equal(verdict(b, ASK("admin", {NULL}, NULL, "config.write", NULL)),
                        "allow granted admin");
    assert_string_equal(verdict(b, ASK("admin", {NULL}, NULL, "mode.confidential", NULL)),
                        "deny not_entitled *");
    assert_string_equal(verdict(b, ASK("admin", {NULL}, "energy", "mode.confidential", NULL)),
                        "allow granted admin");
    /* Telegram users use agents, their memory, not the config */
    assert_string_equal(verdict(b, ASK("tg:42", {"tg:42"}, NULL, "agent.use", "helion")),
                        "allow granted user");
    assert_string_equal(verdict(b, ASK("tg:42", {NULL}, NULL, "memory.write.personal", NULL)),
                        "allow granted user");
    assert_string_equal(verdict(b, ASK("tg:42", {NULL}, NULL, "memory.read.team", NULL)),
                        "deny no_grant -");
    assert_string_equal(verdict(b, ASK("tg:42", {NULL}, NULL, "config.write", NULL)),
                        "deny explicit_deny user");
    assert_string_equal(verdict(b, ASK("tg:42", {NULL}, NULL, "audit.read", NULL)),
                        "deny no_grant -");
    assert_string_equal(verdict(b, ASK("tg:42", {NULL}, NULL, "mode.confidential", NULL)),
                        "deny no_grant -");
    /* a team member of energy: team memory and confidential mode */
    assert_string_equal(
        verdict(b, ASK("tg:42", {"team:energy"}, "energy", "memory.read.team", NULL)),
        "allow granted team_member");
    assert_string_equal(
        verdict(b, ASK("tg:42", {"team:energy"}, "energy", "mode.confidential", NULL)),
        "allow granted confidential_user");
    /* API keys with the role user; the auditor; the pdp client */
    assert_string_equal(verdict(b, ASK("user:olena", {"user:olena", "key:k1", "role:user"}, NULL,
                                       "agent.tool.web_search", "helion")),
                        "allow granted user");
    /* every user with a key or a JWT may use the agents (user:*) */
    assert_string_equal(verdict(b, ASK("user:olena", {"key:k1"}, NULL, "agent.use", "helion")),
                        "allow granted user");
    assert_string_equal(verdict(b, ASK("hook:helion", {NULL}, NULL, "agent.use", "helion")),
                        "allow granted webhook");
    assert_string_equal(
        verdict(b, ASK("hook:helion", {NULL}, NULL, "agent.tool.web_search", "helion")),
        "deny no_grant -");
    assert_string_equal(verdict(b, ASK("user:a", {"role:auditor"}, NULL, "audit.read", NULL)),
                        "allow granted auditor");
    assert_string_equal(verdict(b, ASK("user:a", {"role:auditor"}, NULL, "config.write", NULL)),
                        "deny explicit_deny user");
    assert_string_equal(verdict(b, ASK("user:s", {"role:pdp"}, NULL, "pdp.decide", NULL)),
                        "allow granted pdp_client");

    struct dagi_authz_summary s;
    dagi_authz_bundle_summary(b, &s);
    assert_string_equal(s.source, "config/policy.yml");
    assert_int_equal(strlen(s.checksum), 64);
    assert_int_equal(s.roles, 7);
    assert_int_equal(s.plans, 2);
    assert_int_equal(s.teams, 2);
    assert_int_equal(s.bindings, 10);
    assert_int_equal(s.denies, 1);
    dagi_authz_bundle_unref(b);
    dagi_cfg_errors_release(&errs);
    free(text);
    free(path);
}

static void test_check_agents(void **state)
{
    (void)state;
    struct dagi_authz_bundle *b =
        compile("roles:\n"
                "  - id: r\n"
                "    allow_on:\n"
                "      - {action: agent.use, resources: [helion, ghost]}\n"
                "      - {action: memory.read.x, resources: [not_an_agent]}\n"
                "    deny_on: [{action: \"agent.tool.*\", resources: [phantom]}]\n"
                "plans: [{id: p, agents: [helion, \"*\", nobody], models: [\"*\"]}]\n"
                "teams: [{id: t, plan: p, agents: [druid, gone]}]\n");
    static const char *const known[] = {"helion", "druid"};
    struct dagi_cfg_errors errs;
    dagi_cfg_errors_init(&errs);
    assert_int_equal(dagi_authz_check_agents(b, known, 2, &errs), DAGI_EINVAL);
    assert_string_equal(ERRS(&errs),
                        "p.yml: plans[0].agents[2]: unknown agent \"nobody\"\n"
                        "p.yml: teams[0].agents[1]: unknown agent \"gone\"\n"
                        "p.yml: roles[0].allow_on[0].resources[1]: unknown agent \"ghost\"\n"
                        "p.yml: roles[0].deny_on[0].resources[0]: unknown agent \"phantom\"\n");
    dagi_cfg_errors_release(&errs);
    dagi_authz_bundle_unref(b);
}

/* ---- errors ---- */

static void test_schema_errors(void **state)
{
    (void)state;
    expect_errors("roles:\n"
                  "  - id: r\n"
                  "    alow: [agent.use]\n"
                  "    allow: [\"agent..use\", \"*.x\", \"a.*.b\", agent.tool.*]\n"
                  "    allow_on: [agent.use]\n"
                  "    deny_on:\n"
                  "      - {action: agent.use}\n"
                  "bindings:\n"
                  "  - {subject: \"usr:alice\", roles: [r]}\n"
                  "  - {subject: \"user:\", roles: []}\n"
                  "plans:\n"
                  "  - {id: p, agents: x, models: [\"*\"], max_mode: secret}\n"
                  "teams:\n"
                  "  - {id: t, plan: p, max_mode: top}\n"
                  "colour: red\n",
                  DAGI_EINVAL,
                  "p.yml:3: roles[0].alow: unknown key (did you mean \"allow\"?)\n"
                  "p.yml:5: roles[0].allow_on[0]: expected a mapping\n"
                  "p.yml:7: roles[0].deny_on[0].resources: required\n"
                  "p.yml:9: bindings[0].subject: \"usr:alice\" is not a subject (user:<id>, "
                  "team:<id>, key:<id>, tg:<id>, role:<role>, <kind>:*, admin or *)\n"
                  "p.yml:10: bindings[1].roles: must have between 1 and 100000 items, got 0\n"
                  "p.yml:12: plans[0].agents: expected a sequence\n"
                  "p.yml:12: plans[0].max_mode: must be one of public, team, confidential\n"
                  "p.yml:14: teams[0].max_mode: must be one of public, team, confidential\n"
                  "p.yml:15: colour: unknown key\n");
    /* the checks that run once the shapes are right */
    expect_errors(
        "roles:\n"
        "  - id: r\n"
        "    allow: [\"agent..use\", \"*.x\", \"a.*.b\", \"agent.tool.*\", \"*\"]\n"
        "  - id: \"bad id\"\n"
        "  - id: s\n"
        "    deny_on:\n"
        "      - {action: \"agent use\", resources: [\"\", ok]}\n"
        "bindings:\n"
        "  - {subject: \"usr:alice\", roles: [r]}\n"
        "  - {subject: \"user:*\", roles: [r]}\n",
        DAGI_EINVAL,
        "p.yml:3: roles[0].allow: [0] \"agent..use\" is not an action (dotted words of "
        "[A-Za-z0-9_-], at most 16, optionally ending in .*; or *)\n"
        "p.yml:3: roles[0].allow: [1] \"*.x\" is not an action (dotted words of [A-Za-z0-9_-], "
        "at most 16, optionally ending in .*; or *)\n"
        "p.yml:3: roles[0].allow: [2] \"a.*.b\" is not an action (dotted words of "
        "[A-Za-z0-9_-], at most 16, optionally ending in .*; or *)\n"
        "p.yml:4: roles[1].id: must be 1-128 characters of [A-Za-z0-9_.:@-]\n"
        "p.yml:7: roles[2].deny_on[0].action: \"agent use\" is not an action (dotted words of "
        "[A-Za-z0-9_-], optionally ending in .*; or *)\n"
        "p.yml:7: roles[2].deny_on[0].resources: [0] \"\" is not an id (1-128 characters of "
        "[A-Za-z0-9_.:@-])\n"
        "p.yml:9: bindings[0].subject: \"usr:alice\" is not a subject (user:<id>, team:<id>, "
        "key:<id>, tg:<id>, role:<role>, <kind>:*, admin or *)\n");
    /* cross-references: unknown roles and plans, ids used twice, version */
    expect_errors("version: 2\n"
                  "roles:\n"
                  "  - {id: a}\n"
                  "  - {id: a}\n"
                  "bindings:\n"
                  "  - {subject: admin, roles: [a, ghost]}\n"
                  "plans:\n"
                  "  - {id: p, agents: [], models: []}\n"
                  "  - {id: p, agents: [], models: []}\n"
                  "teams:\n"
                  "  - {id: \"*\", plan: p}\n"
                  "  - {id: \"*\", plan: missing}\n",
                  DAGI_EINVAL,
                  "p.yml:1: version: unsupported version 2 (this build reads 1)\n"
                  "p.yml:2: roles: role id \"a\" is used twice ([0] and [1])\n"
                  "p.yml:5: bindings: [0].roles[1]: no role \"ghost\"\n"
                  "p.yml:7: plans: plan id \"p\" is used twice ([0] and [1])\n"
                  "p.yml:10: teams: [1].plan: no plan \"missing\"\n"
                  "p.yml:10: teams: team id \"*\" is used twice ([0] and [1])\n");
    expect_errors("roles: [\n", DAGI_EPARSE, NULL);
}

/* ---- the wire form ---- */

static void test_wire(void **state)
{
    (void)state;
    const char *subjects[DAGI_AUTHZ_REQUEST_SUBJECTS_MAX];
    const char *field = NULL;
    char why[256];
    struct dagi_authz_request req;
    json_t *doc =
        json_loads("{\"principal\":\"tg:42\",\"subjects\":[\"tg:42\",\"team:energy\"],"
                   "\"team\":\"energy\",\"action\":\"agent.use\",\"resource\":\"helion\"}",
                   0, NULL);
    assert_int_equal(dagi_authz_request_from_json(doc, &req, subjects, &field, why, sizeof(why)),
                     0);
    assert_string_equal(req.principal, "tg:42");
    assert_int_equal(req.n_subjects, 2);
    assert_string_equal(req.subjects[1], "team:energy");
    assert_string_equal(req.team, "energy");
    assert_string_equal(req.action, "agent.use");
    assert_string_equal(req.resource, "helion");
    json_decref(doc);

    doc = json_loads("{\"principal\":\"admin\",\"action\":\"x\",\"team\":null}", 0, NULL);
    assert_int_equal(dagi_authz_request_from_json(doc, &req, subjects, &field, why, sizeof(why)),
                     0);
    assert_null(req.team);
    assert_null(req.resource);
    assert_int_equal(req.n_subjects, 0);
    json_decref(doc);

    static const struct {
        const char *body, *field;
    } bad[] = {
        {"[]", "body"},
        {"{\"action\":\"x\"}", "principal"},
        {"{\"principal\":\"\",\"action\":\"x\"}", "principal"},
        {"{\"principal\":7,\"action\":\"x\"}", "principal"},
        {"{\"principal\":\"a\"}", "action"},
        {"{\"principal\":\"a\",\"action\":[\"x\"]}", "action"},
        {"{\"principal\":\"a\",\"action\":\"x\",\"team\":5}", "team"},
        {"{\"principal\":\"a\",\"action\":\"x\",\"resource\":{}}", "resource"},
        {"{\"principal\":\"a\",\"action\":\"x\",\"subjects\":\"tg:1\"}", "subjects"},
        {"{\"principal\":\"a\",\"action\":\"x\",\"subjects\":[\"\"]}", "subjects"},
        {"{\"principal\":\"a\",\"action\":\"x\",\"subjects\":[1]}", "subjects"},
        {"{\"principal\":\"a\",\"action\":\"x\",\"extra\":1}", "body"},
        {"{\"principal\":\"a\\u0000b\",\"action\":\"x\"}", "principal"},
    };
    for (size_t i = 0; i < DAGI_ARRAY_LEN(bad); i++) {
        doc = json_loads(bad[i].body, JSON_ALLOW_NUL | JSON_DECODE_ANY, NULL);
        assert_non_null(doc);
        field = NULL;
        assert_int_equal(
            dagi_authz_request_from_json(doc, &req, subjects, &field, why, sizeof(why)),
            DAGI_EINVAL);
        assert_non_null(field);
        assert_string_equal(field, bad[i].field);
        json_decref(doc);
    }

    struct dagi_authz_decision d = {false, "explicit_deny", "ops"};
    json_t *j = dagi_authz_decision_to_json(&d);
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"allow\":false,\"reason\":\"explicit_deny\",\"rule\":\"ops\"}");
    free(s);
    json_decref(j);
    d = (struct dagi_authz_decision){true, "builtin_admin", NULL};
    j = dagi_authz_decision_to_json(&d);
    s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"allow\":true,\"reason\":\"builtin_admin\",\"rule\":null}");
    free(s);
    json_decref(j);

    assert_string_equal(dagi_authz_action_prefix("agent.tool.x"), "agent");
    assert_string_equal(dagi_authz_action_prefix("memory.read.personal"), "memory");
    assert_string_equal(dagi_authz_action_prefix("mode.confidential"), "mode");
    assert_string_equal(dagi_authz_action_prefix("agentx.use"), "other");
    assert_string_equal(dagi_authz_action_prefix("user:alice"), "other");
    assert_string_equal(dagi_authz_action_prefix(NULL), "other");
}

static void test_refcount_and_summary(void **state)
{
    (void)state;
    const char *yaml =
        "roles:\n"
        "  - {id: a, allow: [x, y], allow_on: [{action: z, resources: [r]}],"
        " deny: [w]}\n"
        "  - {id: b, deny_on: [{action: z, resources: [q]}]}\n"
        "bindings: [{subject: admin, roles: [a]}, {subject: admin, roles: [b, a]}]\n";
    struct dagi_authz_bundle *b = compile(yaml);
    struct dagi_authz_summary s;
    dagi_authz_bundle_summary(b, &s);
    assert_int_equal(s.roles, 2);
    assert_int_equal(s.grants, 3);
    assert_int_equal(s.denies, 2);
    assert_int_equal(s.bindings, 2);
    /* the registry's checksum: BLAKE2b-256 of the text */
    struct dagi_authz_bundle *again = compile(yaml);
    struct dagi_authz_summary s2;
    dagi_authz_bundle_summary(again, &s2);
    assert_string_equal(s.checksum, s2.checksum);
    dagi_authz_bundle_unref(again);
    again = compile("roles: [{id: a}]\n");
    dagi_authz_bundle_summary(again, &s2);
    assert_string_not_equal(s.checksum, s2.checksum);
    dagi_authz_bundle_unref(again);
    /* one subject in two bindings: both bindings' roles */
    assert_string_equal(verdict(b, ASK("admin", {NULL}, NULL, "z", "q")), "deny explicit_deny b");
    assert_string_equal(verdict(b, ASK("admin", {NULL}, NULL, "z", "r")), "allow granted a");
    /* a reference outlives the first owner */
    assert_ptr_equal(dagi_authz_bundle_ref(b), b);
    dagi_authz_bundle_unref(b);
    assert_string_equal(verdict(b, ASK("admin", {NULL}, NULL, "x", NULL)), "allow granted a");
    dagi_authz_bundle_unref(b);
    dagi_authz_bundle_unref(NULL);
    dagi_authz_bundle_summary(NULL, &s);
    assert_int_equal(s.roles, 0);
}

/* ---- generated bundles against a reference evaluator ---- */

/* A small model: R roles over A action names, each role allowing or
 * denying some actions (plain, on resources, or through a wildcard), S
 * subjects bound to roles.  The reference decides by brute force from the
 * model; the compiled bundle must agree on every request. */
#define G_ROLES 40
#define G_ACTIONS 6
#define G_SUBJECTS 12
#define G_RES 4

static const char *const g_actions[G_ACTIONS] = {"agent.use",     "agent.tool.a",  "agent.tool.b",
                                                 "memory.read.p", "memory.read.t", "audit.read"};
static const char *const g_patterns[] = {"agent.tool.*", "memory.*", "*"};
static const char *const g_res[G_RES] = {"r0", "r1", "r2", "r3"};

struct g_grant {
    int action;   /* index into g_actions, or -1 - k for g_patterns[k] */
    unsigned res; /* bit mask of resources; 0 = every resource */
    bool deny;
};

struct g_model {
    struct g_grant grants[G_ROLES][4];
    int n_grants[G_ROLES];
    bool bound[G_SUBJECTS][G_ROLES];
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static unsigned rnd(unsigned n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (unsigned)(rng_state % n);
}

static bool g_pattern_matches(int action, int concrete)
{
    if (action >= 0)
        return action == concrete;
    const char *p = g_patterns[-1 - action];
    if (strcmp(p, "*") == 0)
        return true;
    size_t n = strlen(p) - 1; /* "x.*" -> "x." */
    return strncmp(g_actions[concrete], p, n) == 0;
}

static void g_subject_name(int s, char *out, size_t len)
{
    snprintf(out, len, "user:u%d", s);
}

static char *g_yaml(const struct g_model *m)
{
    struct dagi_buf y;
    dagi_buf_init(&y, 1 << 20);
    dagi_buf_append_str(&y, "roles:\n");
    for (int r = 0; r < G_ROLES; r++) {
        dagi_buf_appendf(&y, "  - id: role%d\n", r);
        /* each key once: allow, allow_on, deny, deny_on */
        for (int kind = 0; kind < 4; kind++) {
            bool deny = kind >= 2, on = kind % 2;
            bool opened = false;
            for (int k = 0; k < m->n_grants[r]; k++) {
                const struct g_grant *g = &m->grants[r][k];
                if (g->deny != deny || (g->res != 0) != on)
                    continue;
                const char *a = g->action >= 0 ? g_actions[g->action] : g_patterns[-1 - g->action];
                if (!opened)
                    dagi_buf_appendf(&y, "    %s%s:\n", deny ? "deny" : "allow", on ? "_on" : "");
                opened = true;
                if (!on) {
                    dagi_buf_appendf(&y, "      - \"%s\"\n", a);
                    continue;
                }
                dagi_buf_appendf(&y, "      - action: \"%s\"\n        resources: [", a);
                for (int i = 0, first = 1; i < G_RES; i++)
                    if (g->res & (1u << i)) {
                        dagi_buf_appendf(&y, "%s%s", first ? "" : ", ", g_res[i]);
                        first = 0;
                    }
                dagi_buf_append_str(&y, "]\n");
            }
        }
    }
    dagi_buf_append_str(&y, "bindings:\n");
    for (int s = 0; s < G_SUBJECTS; s++)
        for (int r = 0; r < G_ROLES; r++)
            if (m->bound[s][r]) {
                char name[32];
                g_subject_name(s, name, sizeof(name));
                dagi_buf_appendf(&y, "  - {subject: \"%s\", roles: [role%d]}\n", name, r);
            }
    /* every agent for everyone: entitlements are tested on their own */
    dagi_buf_append_str(&y, "plans: [{id: all, agents: [\"*\"], models: [\"*\"]}]\n"
                            "teams: [{id: \"*\", plan: all}]\n");
    char *text = dagi_xstrdup(dagi_buf_str(&y));
    dagi_buf_release(&y);
    return text;
}

/* The plain rule: a deny of a held role matching action (and resource)
 * wins; else an allow; else no. */
static int g_reference(const struct g_model *m, const bool *held, int action, int res)
{
    bool allowed = false;
    for (int r = 0; r < G_ROLES; r++) {
        if (!held[r])
            continue;
        for (int k = 0; k < m->n_grants[r]; k++) {
            const struct g_grant *g = &m->grants[r][k];
            if (!g_pattern_matches(g->action, action))
                continue;
            bool on = !g->res || (res >= 0 && (g->res & (1u << res)));
            if (!on)
                continue;
            if (g->deny)
                return -1;
            allowed = true;
        }
    }
    return allowed ? 1 : 0;
}

static void test_generated_bundles_match_reference(void **state)
{
    (void)state;
    size_t seen[3] = {0}; /* deny, no grant, grant: the mix must hold all three */
    for (int round = 0; round < 30; round++) {
        struct g_model m;
        memset(&m, 0, sizeof(m));
        for (int r = 0; r < G_ROLES; r++) {
            m.n_grants[r] = (int)rnd(5);
            for (int k = 0; k < m.n_grants[r]; k++) {
                struct g_grant *g = &m.grants[r][k];
                g->action = rnd(5) == 0 ? -1 - (int)rnd(3) : (int)rnd(G_ACTIONS);
                g->res = rnd(2) ? 0 : rnd(1u << G_RES);
                g->deny = rnd(5) == 0;
            }
        }
        for (int s = 0; s < G_SUBJECTS; s++)
            for (int r = 0; r < G_ROLES; r++)
                m.bound[s][r] = rnd(8) == 0;
        char *yaml = g_yaml(&m);
        struct dagi_authz_bundle *b = compile(yaml);
        for (int q = 0; q < 300; q++) {
            /* a principal and up to 3 more subjects */
            int subj[4], n = 1 + (int)rnd(4);
            char names[4][32];
            const char *list[4];
            bool held[G_ROLES] = {0};
            for (int i = 0; i < n; i++) {
                subj[i] = (int)rnd(G_SUBJECTS + 2); /* some bound to nothing */
                g_subject_name(subj[i], names[i], sizeof(names[i]));
                list[i] = names[i];
                for (int r = 0; subj[i] < G_SUBJECTS && r < G_ROLES; r++)
                    held[r] |= m.bound[subj[i]][r];
            }
            int action = (int)rnd(G_ACTIONS), res = (int)rnd(G_RES + 1) - 1;
            struct dagi_authz_request req = {list[0],           list + 1,
                                             (size_t)(n - 1),   NULL,
                                             g_actions[action], res >= 0 ? g_res[res] : NULL};
            struct dagi_authz_decision d;
            dagi_authz_decide(b, &req, &d);
            int want = g_reference(&m, held, action, res);
            const char *reason = want < 0 ? "explicit_deny" : want ? "granted" : "no_grant";
            if (strcmp(d.reason, reason) != 0)
                fail_msg("round %d query %d: %s on %s: got %s, want %s\n%s", round, q, req.action,
                         req.resource ? req.resource : "-", d.reason, reason, yaml);
            assert_int_equal(d.allow, want > 0);
            seen[want + 1]++;
        }
        dagi_authz_bundle_unref(b);
        free(yaml);
    }
    for (int k = 0; k < 3; k++)
        assert_true(seen[k] > 500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_deny),
        cmocka_unit_test(test_grant_and_explicit_deny),
        cmocka_unit_test(test_wildcard_actions),
        cmocka_unit_test(test_resource_restricted_grants),
        cmocka_unit_test(test_subject_kinds),
        cmocka_unit_test(test_entitlements),
        cmocka_unit_test(test_empty_bundle_is_admin_only),
        cmocka_unit_test(test_shipped_policy),
        cmocka_unit_test(test_check_agents),
        cmocka_unit_test(test_schema_errors),
        cmocka_unit_test(test_wire),
        cmocka_unit_test(test_refcount_and_summary),
        cmocka_unit_test(test_generated_bundles_match_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
