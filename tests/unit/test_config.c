/* The configuration engine: every type, defaults, bounds, errors with their
 * exact `file:line: key.path: reason` text, lists of records, a recursive
 * rule tree, JSON, environment overrides, dagi_cfg_set, the refusals of the
 * YAML reader, docs and the duration/size parsers. */
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
#include <unistd.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"
#include "core/mem.h"

/* ---- the schema under test ---- */

struct tls {
    bool enabled;
    char *cert;
};

struct limit {
    char *path;
    int64_t max_body;
    int64_t rate;
};

struct http {
    char *listen;
    int64_t read_timeout;
    int64_t max_body;
    struct dagi_cfg_list limits;
    struct dagi_cfg_strings cors;
    struct tls tls;
};

struct rule {
    char *match;
    struct dagi_cfg_list all, any, negate;
};

struct app {
    char *name;
    int64_t workers;
    bool debug;
    double ratio;
    int log_level;
    char *api_key;
    char *label;
    struct dagi_cfg_strings tags;
    struct http http;
    struct dagi_cfg_list rules;
};

static const char *const levels[] = {"debug", "info", "warn", "error", NULL};

static const struct dagi_cfg_field tls_fields[] = {
    {.name = "enabled",
     .type = DAGI_CFG_BOOL,
     .offset = offsetof(struct tls, enabled),
     .help = "Serve HTTPS."},
    {.name = "cert",
     .type = DAGI_CFG_STRING,
     .offset = offsetof(struct tls, cert),
     .help = "Certificate file."},
};
static const struct dagi_cfg_schema tls_schema = {
    "tls", "TLS.", sizeof(struct tls), tls_fields, DAGI_ARRAY_LEN(tls_fields), NULL};

static const struct dagi_cfg_field limit_fields[] = {
    {.name = "path",
     .type = DAGI_CFG_STRING,
     .offset = offsetof(struct limit, path),
     .flags = DAGI_CFG_REQUIRED,
     .help = "Path prefix."},
    {.name = "max_body",
     .type = DAGI_CFG_SIZE,
     .offset = offsetof(struct limit, max_body),
     .def = "1MB",
     .min = 1,
     .max = 1 << 30,
     .help = "Largest body."},
    {.name = "rate",
     .type = DAGI_CFG_INT,
     .offset = offsetof(struct limit, rate),
     .def = "10",
     .help = "Requests per second."},
};
static const struct dagi_cfg_schema limit_schema = {
    "limit",      "A per-path limit.",          sizeof(struct limit),
    limit_fields, DAGI_ARRAY_LEN(limit_fields), NULL};

static const struct dagi_cfg_field http_fields[] = {
    {.name = "listen",
     .type = DAGI_CFG_ADDRESS,
     .offset = offsetof(struct http, listen),
     .def = "0.0.0.0:8080",
     .help = "Address to listen on."},
    {.name = "read_timeout",
     .type = DAGI_CFG_DURATION,
     .offset = offsetof(struct http, read_timeout),
     .def = "30s",
     .min = 1000,
     .max = 3600000,
     .help = "Time to read a request."},
    {.name = "max_body",
     .type = DAGI_CFG_SIZE,
     .offset = offsetof(struct http, max_body),
     .def = "1MB",
     .min = 1024,
     .max = 1 << 30,
     .help = "Largest body | any path."},
    {.name = "limits",
     .type = DAGI_CFG_LIST,
     .offset = offsetof(struct http, limits),
     .sub = &limit_schema,
     .min = 0,
     .max = 10,
     .help = "Per-path limits."},
    {.name = "cors",
     .type = DAGI_CFG_STRING_LIST,
     .offset = offsetof(struct http, cors),
     .def = "[a.example, b.example]",
     .help = "Allowed origins."},
    {.name = "tls",
     .type = DAGI_CFG_SECTION,
     .offset = offsetof(struct http, tls),
     .sub = &tls_schema,
     .help = "TLS settings."},
};
static const struct dagi_cfg_schema http_schema = {
    "http",      "The HTTP server.",          sizeof(struct http),
    http_fields, DAGI_ARRAY_LEN(http_fields), NULL};

static void rule_check(void *record, struct dagi_cfg_ctx *ctx);

static const struct dagi_cfg_schema rule_schema;
static const struct dagi_cfg_field rule_fields[] = {
    {.name = "match",
     .type = DAGI_CFG_STRING,
     .offset = offsetof(struct rule, match),
     .help = "A pattern."},
    {.name = "all",
     .type = DAGI_CFG_LIST,
     .offset = offsetof(struct rule, all),
     .sub = &rule_schema,
     .help = "All must hold."},
    {.name = "any",
     .type = DAGI_CFG_LIST,
     .offset = offsetof(struct rule, any),
     .sub = &rule_schema,
     .help = "One must hold."},
    {.name = "not",
     .type = DAGI_CFG_LIST,
     .offset = offsetof(struct rule, negate),
     .sub = &rule_schema,
     .min = 0,
     .max = 1,
     .help = "Must not hold."},
};
static const struct dagi_cfg_schema rule_schema = {
    "rule",      "A routing rule.",           sizeof(struct rule),
    rule_fields, DAGI_ARRAY_LEN(rule_fields), rule_check};

static const struct dagi_cfg_field app_fields[] = {
    {.name = "name",
     .type = DAGI_CFG_STRING,
     .offset = offsetof(struct app, name),
     .min = 1,
     .max = 16,
     .flags = DAGI_CFG_REQUIRED,
     .help = "Instance name."},
    {.name = "workers",
     .type = DAGI_CFG_INT,
     .offset = offsetof(struct app, workers),
     .def = "4",
     .min = 1,
     .max = 64,
     .help = "Worker threads."},
    {.name = "debug",
     .type = DAGI_CFG_BOOL,
     .offset = offsetof(struct app, debug),
     .help = "Debug mode."},
    {.name = "ratio",
     .type = DAGI_CFG_DOUBLE,
     .offset = offsetof(struct app, ratio),
     .def = "0.5",
     .min = 0,
     .max = 1,
     .help = "Sampling ratio."},
    {.name = "log_level",
     .type = DAGI_CFG_ENUM,
     .offset = offsetof(struct app, log_level),
     .def = "info",
     .enum_values = levels,
     .help = "Log level."},
    {.name = "api_key",
     .type = DAGI_CFG_STRING,
     .offset = offsetof(struct app, api_key),
     .def = "hunter2",
     .flags = DAGI_CFG_SECRET,
     .help = "Admin key."},
    {.name = "label",
     .type = DAGI_CFG_STRING,
     .offset = offsetof(struct app, label),
     .flags = DAGI_CFG_NO_ENV,
     .help = "A label."},
    {.name = "tags",
     .type = DAGI_CFG_STRING_LIST,
     .offset = offsetof(struct app, tags),
     .min = 0,
     .max = 3,
     .help = "Tags."},
    {.name = "http",
     .type = DAGI_CFG_SECTION,
     .offset = offsetof(struct app, http),
     .sub = &http_schema,
     .help = "HTTP."},
    {.name = "rules",
     .type = DAGI_CFG_LIST,
     .offset = offsetof(struct app, rules),
     .sub = &rule_schema,
     .help = "Routing rules."},
};
static const struct dagi_cfg_schema app_schema = {
    "dagi.yml", "Test configuration.",      sizeof(struct app),
    app_fields, DAGI_ARRAY_LEN(app_fields), NULL};

static void rule_check(void *record, struct dagi_cfg_ctx *ctx)
{
    const struct rule *r = record;
    int n = (r->match != NULL) + (r->all.count > 0) + (r->any.count > 0) + (r->negate.count > 0);
    if (n != 1)
        dagi_cfg_report(ctx, NULL, "needs exactly one of all, any, not, match");
    else if (r->match && strcmp(r->match, "*") == 0)
        dagi_cfg_report(ctx, "match", "\"*\" matches everything; leave the rule out");
}

/* ---- fixtures and helpers ---- */

struct fx {
    struct dagi_arena *arena;
    struct dagi_cfg_errors errs;
};

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
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

static int load(struct fx *fx, const char *yaml, struct app **out)
{
    void *p = NULL;
    int rc = dagi_cfg_load_yaml(&app_schema, "t.yml", yaml, strlen(yaml), fx->arena, &p, &fx->errs);
    if (out)
        *out = p;
    if (rc == 0)
        assert_non_null(p);
    else
        assert_null(p);
    return rc;
}

static int load_json_text(struct fx *fx, const char *text, struct app **out)
{
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    assert_non_null(j);
    void *p = NULL;
    int rc = dagi_cfg_load_json(&app_schema, j, fx->arena, &p, &fx->errs);
    json_decref(j);
    *out = p;
    return rc;
}

#define ERRS(fx) dagi_buf_str(&(fx)->errs.text)

/* Loads and expects exactly one error line. */
static void expect_one(void **state, const char *yaml, int code, const char *line)
{
    struct fx *fx = *state;
    dagi_cfg_errors_release(&fx->errs);
    dagi_cfg_errors_init(&fx->errs);
    assert_int_equal(load(fx, yaml, NULL), code);
    char want[512];
    snprintf(want, sizeof(want), "%s\n", line);
    assert_string_equal(ERRS(fx), want);
    assert_int_equal(fx->errs.count, 1);
}

/* ---- tests ---- */

static void test_defaults(void **state)
{
    struct fx *fx = *state;
    struct app *a;
    assert_int_equal(load(fx, "name: x\n", &a), 0);
    assert_string_equal(a->name, "x");
    assert_int_equal(a->workers, 4);
    assert_false(a->debug);
    assert_true(a->ratio == 0.5);
    assert_int_equal(a->log_level, 1);
    assert_string_equal(a->api_key, "hunter2");
    assert_null(a->label);
    assert_int_equal(a->tags.count, 0);
    assert_string_equal(a->http.listen, "0.0.0.0:8080");
    assert_int_equal(a->http.read_timeout, 30000);
    assert_int_equal(a->http.max_body, 1 << 20);
    assert_int_equal(a->http.limits.count, 0);
    assert_null(a->http.limits.items);
    assert_int_equal(a->http.cors.count, 2);
    assert_string_equal(a->http.cors.items[1], "b.example");
    assert_false(a->http.tls.enabled);
    assert_int_equal(a->rules.count, 0);
    assert_int_equal(fx->errs.count, 0);
}

static void test_every_type(void **state)
{
    struct fx *fx = *state;
    struct app *a;
    const char *yaml = "name: edge-1\n"
                       "workers: 12\n"
                       "debug: true\n"
                       "ratio: 0.25\n"
                       "log_level: warn\n"
                       "api_key: \"k\"\n"
                       "label: 80\n"
                       "tags: [a, 'b', \"c\"]\n"
                       "http:\n"
                       "  listen: \"[::1]:9000\"\n"
                       "  read_timeout: 2500ms\n"
                       "  max_body: 64KB\n"
                       "  cors: []\n"
                       "  tls:\n"
                       "    enabled: true\n"
                       "    cert: /etc/c.pem\n"
                       "  limits:\n"
                       "    - path: /upload\n"
                       "      max_body: 1GiB\n"
                       "    - path: /api\n";
    assert_int_equal(load(fx, yaml, &a), 0);
    assert_string_equal(a->name, "edge-1");
    assert_int_equal(a->workers, 12);
    assert_true(a->debug);
    assert_true(a->ratio == 0.25);
    assert_int_equal(a->log_level, 2);
    assert_string_equal(a->api_key, "k");
    assert_string_equal(a->label, "80"); /* any plain scalar is a string */
    assert_int_equal(a->tags.count, 3);
    assert_string_equal(a->tags.items[0], "a");
    assert_string_equal(a->tags.items[2], "c");
    assert_string_equal(a->http.listen, "[::1]:9000");
    assert_int_equal(a->http.read_timeout, 2500);
    assert_int_equal(a->http.max_body, 65536);
    assert_int_equal(a->http.cors.count, 0);
    assert_true(a->http.tls.enabled);
    assert_string_equal(a->http.tls.cert, "/etc/c.pem");
    assert_int_equal(a->http.limits.count, 2);
    struct limit *l = a->http.limits.items;
    assert_string_equal(l[0].path, "/upload");
    assert_int_equal(l[0].max_body, (int64_t)1 << 30);
    assert_int_equal(l[0].rate, 10);
    assert_string_equal(l[1].path, "/api");
    assert_int_equal(l[1].max_body, 1 << 20);
}

static void test_null_is_absent(void **state)
{
    struct fx *fx = *state;
    struct app *a;
    assert_int_equal(load(fx, "name: x\nworkers: ~\nhttp:\nlog_level: null\n", &a), 0);
    assert_int_equal(a->workers, 4);
    assert_int_equal(a->log_level, 1);
    assert_int_equal(a->http.read_timeout, 30000);
    /* A quoted "null" is a string, not an absent value. */
    assert_int_equal(load(fx, "name: \"null\"\n", &a), 0);
    assert_string_equal(a->name, "null");
    expect_one(state, "name: x\nworkers: 'null'\n", DAGI_EINVAL,
               "t.yml:2: workers: expected an integer, got \"null\" (quoted)");
}

static void test_bounds(void **state)
{
    expect_one(state, "name: x\nworkers: 0\n", DAGI_EINVAL,
               "t.yml:2: workers: must be between 1 and 64, got 0");
    expect_one(state, "name: x\nworkers: 65\n", DAGI_EINVAL,
               "t.yml:2: workers: must be between 1 and 64, got 65");
    expect_one(state, "name: x\nratio: 1.5\n", DAGI_EINVAL,
               "t.yml:2: ratio: must be between 0 and 1, got 1.5");
    expect_one(state, "name: abcdefghijklmnopq\n", DAGI_EINVAL,
               "t.yml:1: name: length must be between 1 and 16, got 17");
    expect_one(state, "name: ''\n", DAGI_EINVAL,
               "t.yml:1: name: length must be between 1 and 16, got 0");
    expect_one(state, "name: x\ntags: [a, b, c, d]\n", DAGI_EINVAL,
               "t.yml:2: tags: must have between 0 and 3 items, got 4");
    expect_one(state, "name: x\nhttp:\n  read_timeout: 100ms\n", DAGI_EINVAL,
               "t.yml:3: http.read_timeout: 100ms is below the minimum 1s");
    expect_one(state, "name: x\nhttp:\n  read_timeout: 2h\n", DAGI_EINVAL,
               "t.yml:3: http.read_timeout: 2h is above the maximum 1h");
    expect_one(state, "name: x\nhttp:\n  max_body: 20GB\n", DAGI_EINVAL,
               "t.yml:3: http.max_body: 20 GB is above the maximum 1 GB");
    expect_one(state, "name: x\nworkers: 99999999999999999999\n", DAGI_EINVAL,
               "t.yml:2: workers: integer out of range, got \"99999999999999999999\"");
}

static void test_unknown_key(void **state)
{
    expect_one(state, "name: x\nhttp:\n  lisen: 1.2.3.4:80\n", DAGI_EINVAL,
               "t.yml:3: http.lisen: unknown key (did you mean \"listen\"?)");
    expect_one(state, "name: x\ncompletely_unrelated: 1\n", DAGI_EINVAL,
               "t.yml:2: completely_unrelated: unknown key");
    expect_one(state, "name: x\nworker: 3\n", DAGI_EINVAL,
               "t.yml:2: worker: unknown key (did you mean \"workers\"?)");
}

static void test_wrong_types(void **state)
{
    expect_one(state, "name: x\nworkers:\n  a: 1\n", DAGI_EINVAL,
               "t.yml:2: workers: expected an integer, got a mapping");
    expect_one(state, "name: x\nworkers: abc\n", DAGI_EINVAL,
               "t.yml:2: workers: expected an integer, got \"abc\"");
    expect_one(state, "name: x\nworkers: 1.5\n", DAGI_EINVAL,
               "t.yml:2: workers: expected an integer, got \"1.5\"");
    expect_one(state, "name: x\nworkers: \"8\"\n", DAGI_EINVAL,
               "t.yml:2: workers: expected an integer, got \"8\" (quoted)");
    expect_one(state, "name: x\ndebug: yes\n", DAGI_EINVAL,
               "t.yml:2: debug: expected true or false, got \"yes\"");
    expect_one(state, "name: x\nratio: nan\n", DAGI_EINVAL,
               "t.yml:2: ratio: expected a number, got \"nan\"");
    expect_one(state, "name: [x]\n", DAGI_EINVAL,
               "t.yml:1: name: expected a string, got a sequence");
    expect_one(state, "name: x\nhttp: 5\n", DAGI_EINVAL, "t.yml:2: http: expected a mapping");
    expect_one(state, "name: x\ntags: a\n", DAGI_EINVAL, "t.yml:2: tags: expected a sequence");
    expect_one(state, "name: x\ntags: [a, {b: 1}]\n", DAGI_EINVAL,
               "t.yml:2: tags[1]: expected a string, got a mapping");
    expect_one(state, "name: x\nhttp:\n  listen: localhost\n", DAGI_EINVAL,
               "t.yml:3: http.listen: expected host:port, got \"localhost\"");
    expect_one(state, "name: x\nhttp:\n  listen: \"a:70000\"\n", DAGI_EINVAL,
               "t.yml:3: http.listen: expected host:port, got \"a:70000\"");
    expect_one(state, "name: x\nhttp:\n  listen: \"::1:80\"\n", DAGI_EINVAL,
               "t.yml:3: http.listen: expected host:port, got \"::1:80\"");
    expect_one(state, "name: x\nhttp:\n  read_timeout: 5 parsecs\n", DAGI_EINVAL,
               "t.yml:3: http.read_timeout: expected a duration, got \"5 parsecs\"");
    expect_one(state, "- a\n", DAGI_EINVAL, "t.yml:1: expected a mapping at the top level");
    expect_one(state, "name: \"a\\nb\\u0001\"\nworkers: \"x\\ty\"\n", DAGI_EINVAL,
               "t.yml:2: workers: expected an integer, got \"x\\x09y\" (quoted)");
}

static void test_enum(void **state)
{
    expect_one(state, "name: x\nlog_level: verbose\n", DAGI_EINVAL,
               "t.yml:2: log_level: must be one of debug, info, warn, error");
    expect_one(state, "name: x\nlog_level: INFO\n", DAGI_EINVAL,
               "t.yml:2: log_level: must be one of debug, info, warn, error");
}

static void test_required(void **state)
{
    expect_one(state, "workers: 2\n", DAGI_EINVAL, "t.yml:1: name: required");
    expect_one(state, "", DAGI_EINVAL, "t.yml:1: name: required");
    expect_one(state, "workers: 2\nname: ~\n", DAGI_EINVAL, "t.yml:2: name: required");
    struct fx *fx = *state;
    void *p = NULL;
    dagi_cfg_errors_release(&fx->errs);
    dagi_cfg_errors_init(&fx->errs);
    assert_int_equal(dagi_cfg_load_defaults(&app_schema, fx->arena, &p, &fx->errs), DAGI_EINVAL);
    assert_string_equal(ERRS(fx), "name: required\n");
    assert_null(p);
    assert_int_equal(dagi_cfg_load_defaults(&http_schema, fx->arena, &p, &fx->errs), 0);
    assert_int_equal(((struct http *)p)->read_timeout, 30000);
}

static void test_bad_record_in_list(void **state)
{
    struct fx *fx = *state;
    const char *yaml = "name: x\n"
                       "http:\n"
                       "  limits:\n"
                       "    - path: /a\n"
                       "    - path: /b\n"
                       "      max_body: 20GB\n"
                       "    - max_body: 1KB\n"
                       "    - 7\n"
                       "    - path: /c\n"
                       "      rat: 5\n";
    assert_int_equal(load(fx, yaml, NULL), DAGI_EINVAL);
    assert_string_equal(ERRS(fx),
                        "t.yml:6: http.limits[1].max_body: 20 GB is above the maximum 1 GB\n"
                        "t.yml:7: http.limits[2].path: required\n"
                        "t.yml:8: http.limits[3]: expected a mapping\n"
                        "t.yml:10: http.limits[4].rat: unknown key (did you mean \"rate\"?)\n");
    assert_int_equal(fx->errs.count, 4);
    expect_one(state, "name: x\nhttp:\n  limits: {path: /a}\n", DAGI_EINVAL,
               "t.yml:3: http.limits: expected a sequence");
}

static void test_list_count(void **state)
{
    struct fx *fx = *state;
    struct dagi_buf y;
    dagi_buf_init(&y, 1 << 16);
    dagi_buf_append_str(&y, "name: x\nhttp:\n  limits:\n");
    for (int i = 0; i < 11; i++)
        dagi_buf_appendf(&y, "    - path: /p%d\n", i);
    assert_int_equal(load(fx, dagi_buf_str(&y), NULL), DAGI_EINVAL);
    assert_string_equal(ERRS(fx),
                        "t.yml:3: http.limits: must have between 0 and 10 items, got 11\n");
    dagi_buf_release(&y);
}

static void test_nested_sections(void **state)
{
    struct fx *fx = *state;
    struct app *a;
    assert_int_equal(load(fx, "name: x\nhttp:\n  tls:\n    enabled: true\n", &a), 0);
    assert_true(a->http.tls.enabled);
    assert_null(a->http.tls.cert);
    expect_one(state, "name: x\nhttp:\n  tls:\n    enabled: 1\n", DAGI_EINVAL,
               "t.yml:4: http.tls.enabled: expected true or false, got \"1\"");
    expect_one(state, "name: x\nhttp:\n  tls:\n    key: k\n", DAGI_EINVAL,
               "t.yml:4: http.tls.key: unknown key");
    expect_one(state, "name: x\nhttp:\n  tls: [1]\n", DAGI_EINVAL,
               "t.yml:3: http.tls: expected a mapping");
}

static void test_recursive_rules(void **state)
{
    struct fx *fx = *state;
    struct app *a;
    const char *yaml = "name: x\n"
                       "rules:\n"
                       "  - match: /a\n"
                       "  - any:\n"
                       "      - match: /b\n"
                       "      - all:\n"
                       "          - match: /c\n"
                       "          - not:\n"
                       "              - match: /d\n";
    assert_int_equal(load(fx, yaml, &a), 0);
    assert_int_equal(a->rules.count, 2);
    struct rule *r = a->rules.items;
    assert_string_equal(r[0].match, "/a");
    assert_int_equal(r[1].any.count, 2);
    struct rule *any = r[1].any.items;
    assert_string_equal(any[0].match, "/b");
    struct rule *all = any[1].all.items;
    assert_int_equal(any[1].all.count, 2);
    struct rule *neg = all[1].negate.items;
    assert_int_equal(all[1].negate.count, 1);
    assert_string_equal(neg[0].match, "/d");

    dagi_cfg_errors_release(&fx->errs);
    dagi_cfg_errors_init(&fx->errs);
    yaml = "name: x\n"
           "rules:\n"
           "  - match: /a\n"
           "    any:\n"
           "      - match: /b\n"
           "  - any:\n"
           "      - {}\n"
           "      - not:\n"
           "          - match: /c\n"
           "          - match: /d\n"
           "  - match: \"*\"\n";
    assert_int_equal(load(fx, yaml, NULL), DAGI_EINVAL);
    assert_string_equal(ERRS(fx),
                        "t.yml:3: rules[0]: needs exactly one of all, any, not, match\n"
                        "t.yml:7: rules[1].any[0]: needs exactly one of all, any, not, match\n"
                        "t.yml:8: rules[1].any[1].not: must have between 0 and 1 items, got 2\n"
                        "t.yml:11: rules[2].match: \"*\" matches everything; leave the rule out\n");
    assert_int_equal(fx->errs.count, 4);
}

static void test_json(void **state)
{
    struct fx *fx = *state;
    struct app *a;
    assert_int_equal(
        load_json_text(fx,
                       "{\"name\": \"j\", \"workers\": 8, \"debug\": true, \"ratio\": 1,"
                       " \"http\": {\"read_timeout\": \"5m\", \"max_body\": 4096,"
                       " \"limits\": [{\"path\": \"/x\"}]}, \"tags\": [\"t\"],"
                       " \"label\": null}",
                       &a),
        0);
    assert_string_equal(a->name, "j");
    assert_int_equal(a->workers, 8);
    assert_true(a->debug);
    assert_true(a->ratio == 1.0);
    assert_int_equal(a->http.read_timeout, 300000);
    assert_int_equal(a->http.max_body, 4096);
    assert_int_equal(a->http.limits.count, 1);
    assert_null(a->label);
    assert_int_equal(a->tags.count, 1);

    assert_int_equal(load_json_text(fx,
                                    "{\"workers\": \"8\", \"debug\": 1, \"ratio\": 0.5,"
                                    " \"http\": {\"limits\": [{\"path\": \"/x\"},"
                                    " {\"path\": \"/y\", \"max_body\": \"2GB\"}]},"
                                    " \"log_level\": \"loud\", \"bogus\": []}",
                                    &a),
                     DAGI_EINVAL);
    assert_null(a);
    assert_string_equal(ERRS(fx), "workers: expected an integer, got \"8\" (quoted)\n"
                                  "debug: expected true or false, got \"1\"\n"
                                  "http.limits[1].max_body: 2 GB is above the maximum 1 GB\n"
                                  "log_level: must be one of debug, info, warn, error\n"
                                  "bogus: unknown key\n"
                                  "name: required\n");
    assert_int_equal(fx->errs.count, 6);
}

static void test_json_refusals(void **state)
{
    struct fx *fx = *state;
    json_t *j = json_object();
    json_t *inner = j;
    for (int i = 0; i < 70; i++) {
        json_t *next = json_object();
        json_object_set_new(inner, "http", next);
        inner = next;
    }
    void *p = NULL;
    assert_int_equal(dagi_cfg_load_json(&app_schema, j, fx->arena, &p, &fx->errs), DAGI_EPARSE);
    assert_string_equal(ERRS(fx), "nesting deeper than 64 levels\n");
    json_decref(j);
    assert_null(p);
}

static void test_env(void **state)
{
    struct fx *fx = *state;
    struct app *a;
    assert_int_equal(load(fx, "name: x\n", &a), 0);
    char *env[] = {"PATH=/bin",
                   "DAGI_HTTP_LISTEN=127.0.0.1:9999",
                   "DAGI_HTTP_READ_TIMEOUT=2m",
                   "DAGI_TAGS=a, b,c",
                   "DAGI_DEBUG=true",
                   "DAGI_LABEL=ignored",
                   "DAGI_HTTP_TLS_ENABLED=true",
                   "DAGI_HTTP_LIMITS=ignored",
                   NULL};
    assert_int_equal(dagi_cfg_apply_env(&app_schema, a, "DAGI", env, fx->arena, &fx->errs), 0);
    assert_string_equal(a->http.listen, "127.0.0.1:9999");
    assert_int_equal(a->http.read_timeout, 120000);
    assert_int_equal(a->tags.count, 3);
    assert_string_equal(a->tags.items[1], "b");
    assert_true(a->debug);
    assert_null(a->label);
    assert_true(a->http.tls.enabled);

    char *bad[] = {"DAGI_HTTP_READ_TIMEOUT=x", "DAGI_WORKERS=100", "DAGI_TAGS=a,,b", NULL};
    assert_int_equal(dagi_cfg_apply_env(&app_schema, a, "DAGI", bad, fx->arena, &fx->errs),
                     DAGI_EINVAL);
    assert_string_equal(
        ERRS(fx), "DAGI_WORKERS: workers: must be between 1 and 64, got 100\n"
                  "DAGI_TAGS: tags: empty item in a comma-separated list\n"
                  "DAGI_HTTP_READ_TIMEOUT: http.read_timeout: expected a duration, got \"x\"\n");
    assert_int_equal(a->http.read_timeout, 120000); /* unchanged on error */
    assert_int_equal(a->workers, 4);

    char name[64];
    dagi_cfg_env_name("DAGI", "http.read_timeout", name, sizeof(name));
    assert_string_equal(name, "DAGI_HTTP_READ_TIMEOUT");
    dagi_cfg_env_name("APP", "a-b.c", name, sizeof(name));
    assert_string_equal(name, "APP_A_B_C");
    dagi_cfg_env_name("DAGI", "http.read_timeout", name, 8);
    assert_string_equal(name, "DAGI_HT");
}

static void test_set(void **state)
{
    struct fx *fx = *state;
    struct app *a;
    assert_int_equal(load(fx, "name: x\n", &a), 0);
    struct dagi_cfg_errors *e = &fx->errs;
    assert_int_equal(
        dagi_cfg_set(&app_schema, a, "http.listen", "[::]:80", "--listen", fx->arena, e), 0);
    assert_string_equal(a->http.listen, "[::]:80");
    assert_int_equal(dagi_cfg_set(&app_schema, a, "workers", "7", "--workers", fx->arena, e), 0);
    assert_int_equal(a->workers, 7);
    assert_int_equal(dagi_cfg_set(&app_schema, a, "http.cors", "x,y", "--cors", fx->arena, e), 0);
    assert_int_equal(a->http.cors.count, 2);
    assert_int_equal(dagi_cfg_set(&app_schema, a, "log_level", "debug", NULL, fx->arena, e), 0);
    assert_int_equal(a->log_level, 0);
    assert_int_equal(e->count, 0);

    assert_int_equal(dagi_cfg_set(&app_schema, a, "http.listen", "nope", "--listen", fx->arena, e),
                     DAGI_EINVAL);
    assert_int_equal(dagi_cfg_set(&app_schema, a, "http.lisen", "a:1", "--x", fx->arena, e),
                     DAGI_EINVAL);
    assert_int_equal(dagi_cfg_set(&app_schema, a, "http.limits", "a", "--x", fx->arena, e),
                     DAGI_EINVAL);
    assert_int_equal(dagi_cfg_set(&app_schema, a, "workers.x", "1", "--x", fx->arena, e),
                     DAGI_EINVAL);
    assert_int_equal(dagi_cfg_set(&app_schema, a, "http", "1", "--x", fx->arena, e), DAGI_EINVAL);
    assert_string_equal(ERRS(fx), "--listen: http.listen: expected host:port, got \"nope\"\n"
                                  "--x: http.lisen: unknown key (did you mean \"listen\"?)\n"
                                  "--x: http.limits: cannot be set from a single value\n"
                                  "--x: workers: not a section\n"
                                  "--x: http: cannot be set from a single value\n");
    assert_string_equal(a->http.listen, "[::]:80");
}

static void test_duplicate_keys(void **state)
{
    expect_one(state, "name: x\nhttp:\n  listen: a:1\n  listen: b:2\n", DAGI_EPARSE,
               "t.yml:4: http.listen: duplicate key (first at line 3)");
    expect_one(state, "name: x\nrules:\n  - match: a\n    match: b\n", DAGI_EPARSE,
               "t.yml:4: rules[0].match: duplicate key (first at line 3)");
    expect_one(state, "name: x\nname: y\n", DAGI_EPARSE,
               "t.yml:2: name: duplicate key (first at line 1)");
}

static void test_yaml_refusals(void **state)
{
    expect_one(state, "name: &a x\nlabel: *a\n", DAGI_EPARSE,
               "t.yml:1: anchors and aliases are not allowed");
    expect_one(state, "name: x\n---\nname: y\n", DAGI_EPARSE, "t.yml:2: more than one document");
    expect_one(state, "name: x\n? [a]\n: 1\n", DAGI_EPARSE, "t.yml:2: keys must be strings");
    expect_one(state, "name: x\n~: 1\n", DAGI_EPARSE, "t.yml:2: keys must be strings");
    expect_one(state, "name: \"a\\0b\"\n", DAGI_EPARSE, "t.yml:1: NUL byte inside a value");

    char deep[300];
    size_t n = 0;
    n += (size_t)snprintf(deep + n, sizeof(deep) - n, "name: x\nlabel: ");
    for (int i = 0; i < 65; i++)
        deep[n++] = '[';
    for (int i = 0; i < 65; i++)
        deep[n++] = ']';
    deep[n] = '\0';
    expect_one(state, deep, DAGI_EPARSE, "t.yml:2: nesting deeper than 64 levels");

    struct fx *fx = *state;
    size_t big = ((size_t)4 << 20) + 1;
    char *text = malloc(big + 1);
    memset(text, '#', big);
    text[big] = '\0';
    dagi_cfg_errors_release(&fx->errs);
    dagi_cfg_errors_init(&fx->errs);
    assert_int_equal(load(fx, text, NULL), DAGI_EPARSE);
    assert_string_equal(ERRS(fx), "t.yml: document is larger than 4194304 bytes\n");
    free(text);
}

static void test_syntax_error(void **state)
{
    expect_one(state, "name: x\nhttp:\n  listen: [a\n  other: 1\n", DAGI_EPARSE,
               "t.yml:4: did not find expected ',' or ']' while parsing a flow sequence");
    expect_one(state, "name: x\n  bad: indent\n", DAGI_EPARSE,
               "t.yml:2: mapping values are not allowed in this context");
}

static void test_file(void **state)
{
    struct fx *fx = *state;
    char path[] = "/tmp/dagi-cfg-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "name: f\nworkers: many\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    void *p = NULL;
    assert_int_equal(dagi_cfg_load_file(&app_schema, path, fx->arena, &p, &fx->errs), DAGI_EINVAL);
    char want[128];
    snprintf(want, sizeof(want), "%s:2: workers: expected an integer, got \"many\"\n", path);
    assert_string_equal(ERRS(fx), want);
    unlink(path);
    dagi_cfg_errors_release(&fx->errs);
    dagi_cfg_errors_init(&fx->errs);
    assert_int_equal(dagi_cfg_load_file(&app_schema, path, fx->arena, &p, &fx->errs), DAGI_EIO);
    assert_int_equal(fx->errs.count, 1);
    assert_null(p);
}

static void test_errors_collected(void **state)
{
    struct fx *fx = *state;
    const char *yaml = "workers: 0\n"
                       "debug: maybe\n"
                       "http:\n"
                       "  max_body: lots\n"
                       "  tls:\n"
                       "    enabled: on\n";
    assert_int_equal(load(fx, yaml, NULL), DAGI_EINVAL);
    assert_string_equal(ERRS(fx), "t.yml:1: workers: must be between 1 and 64, got 0\n"
                                  "t.yml:2: debug: expected true or false, got \"maybe\"\n"
                                  "t.yml:4: http.max_body: expected a size, got \"lots\"\n"
                                  "t.yml:6: http.tls.enabled: expected true or false, got \"on\"\n"
                                  "t.yml:1: name: required\n");
    assert_int_equal(fx->errs.count, 5);
}

static void test_docs(void **state)
{
    (void)state;
    struct dagi_buf md;
    dagi_buf_init(&md, 1 << 20);
    assert_int_equal(dagi_cfg_docs_markdown(&app_schema, "DAGI", &md), 0);
    const char *s = dagi_buf_str(&md);
    assert_non_null(strstr(s, "| key | type | default | bounds | env | help |"));
    assert_non_null(
        strstr(s, "| `workers` | integer | `4` | 1..64 | `DAGI_WORKERS` | Worker threads. |"));
    assert_non_null(strstr(s, "## `http`"));
    assert_non_null(strstr(s, "| `http.read_timeout` | duration | `30s` | 1s..1h | "
                              "`DAGI_HTTP_READ_TIMEOUT` |"));
    assert_non_null(strstr(s, "Largest body \\| any path."));
    assert_non_null(strstr(s, "## `http.limits[]`"));
    assert_non_null(strstr(s, "| `http.limits[].max_body` | size | `1MB` | 1 byte..1 GB |  |"));
    assert_non_null(strstr(s, "## `http.tls`"));
    assert_non_null(strstr(s, "| `log_level` | enum (debug, info, warn, error) | `info` |"));
    assert_non_null(strstr(s, "| `name` | string | required | length 1..16 |"));
    assert_non_null(strstr(s, "| `api_key` | string |  |"));
    assert_null(strstr(s, "hunter2"));
    assert_non_null(strstr(s, "| `label` | string |  |  |  |"));
    assert_non_null(strstr(s, "## `rules[]`"));
    assert_non_null(strstr(s, "| `rules[].not` | list of rules[] |  | 0..1 items |  |"));
    assert_null(strstr(s, "rules[].all[]"));
    dagi_buf_release(&md);

    struct dagi_buf help;
    dagi_buf_init(&help, 1 << 20);
    assert_int_equal(dagi_cfg_help_text(&app_schema, "DAGI", &help), 0);
    s = dagi_buf_str(&help);
    assert_non_null(strstr(s, "  http.listen  address  (default 0.0.0.0:8080)  env DAGI_HTTP_LISTEN"
                              "  Address to listen on.\n"));
    assert_non_null(strstr(s, "  name  string  (required)  [length 1..16]  env DAGI_NAME"));
    assert_non_null(strstr(s, "  http.limits[].path  string  (required)  Path prefix.\n"));
    assert_null(strstr(s, "hunter2"));
    dagi_buf_release(&help);
}

static void test_durations(void **state)
{
    (void)state;
    int64_t v = -1;
    struct {
        const char *text;
        int64_t ms;
    } ok[] = {{"250ms", 250},   {"30s", 30000}, {"5m", 300000}, {"2h", 7200000},
              {"1d", 86400000}, {"1500", 1500}, {"0", 0},       {"10 s", 10000}};
    for (size_t i = 0; i < DAGI_ARRAY_LEN(ok); i++) {
        assert_int_equal(dagi_cfg_parse_duration(ok[i].text, &v), 0);
        assert_int_equal(v, ok[i].ms);
    }
    const char *bad[] = {"",
                         "5x",
                         "-5s",
                         "1.5s",
                         "5M",
                         "s",
                         "5 ",
                         "99999999999999999999",
                         "9223372036854775807d",
                         "1h30m",
                         NULL};
    for (size_t i = 0; i < DAGI_ARRAY_LEN(bad); i++) {
        v = -7;
        assert_int_equal(dagi_cfg_parse_duration(bad[i], &v), DAGI_EINVAL);
        assert_int_equal(v, -7);
    }
}

static void test_sizes(void **state)
{
    (void)state;
    int64_t v = -1;
    struct {
        const char *text;
        int64_t bytes;
    } ok[] = {{"512", 512},      {"64KB", 65536},           {"8MB", 8 << 20},
              {"1GiB", 1 << 30}, {"1GB", 1 << 30},          {"2kib", 2048},
              {"3 MB", 3 << 20}, {"1TB", (int64_t)1 << 40}, {"100B", 100}};
    for (size_t i = 0; i < DAGI_ARRAY_LEN(ok); i++) {
        assert_int_equal(dagi_cfg_parse_size(ok[i].text, &v), 0);
        assert_int_equal(v, ok[i].bytes);
    }
    const char *bad[] = {"", "1.5GB", "-1", "12XB", "GB", "9999999999TB", NULL};
    for (size_t i = 0; i < DAGI_ARRAY_LEN(bad); i++)
        assert_int_equal(dagi_cfg_parse_size(bad[i], &v), DAGI_EINVAL);

    expect_one(state, "name: x\nhttp:\n  max_body: 100\n", DAGI_EINVAL,
               "t.yml:3: http.max_body: 100 bytes is below the minimum 1 KB");
}

static void test_error_cap(void **state)
{
    struct fx *fx = *state;
    struct dagi_buf y;
    dagi_buf_init(&y, 1 << 20);
    dagi_buf_append_str(&y, "name: x\n");
    for (int i = 0; i < 300; i++)
        dagi_buf_appendf(&y, "k%d: 1\n", i);
    assert_int_equal(load(fx, dagi_buf_str(&y), NULL), DAGI_EINVAL);
    assert_int_equal(fx->errs.count, 300);
    assert_non_null(strstr(ERRS(fx), "t.yml:201: k199: unknown key\n(further errors omitted)\n"));
    dagi_buf_release(&y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_is_absent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_required, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_record_in_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nested_sections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recursive_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_yaml_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_syntax_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_collected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_docs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_durations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_cap, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
