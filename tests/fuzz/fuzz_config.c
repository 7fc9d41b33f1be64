/* libFuzzer driver: YAML bytes against a schema with a section, a list of
 * records and a recursive rule tree; everything is freed every run. */
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/mem.h"

struct rule {
    char *match;
    struct dagi_cfg_list any, not_;
};
struct route {
    char *path;
    int64_t max_body, timeout;
};
struct http {
    char *listen;
    struct dagi_cfg_strings cors;
    bool tls;
    double ratio;
};
struct conf {
    char *name;
    int64_t workers;
    int level;
    struct http http;
    struct dagi_cfg_list routes, rules;
};

/* name, type, struct, member, default, min, max, sub */
/* clang-format off */
#define F(n, t, st, m, d, lo, hi, sub) {n, t, offsetof(struct st, m), d, lo, hi, NULL, sub, 0, NULL}
#define SCHEMA(st, f) {#st, NULL, sizeof(struct st), f, DAGI_ARRAY_LEN(f), NULL}
/* clang-format on */

static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
static const struct dagi_cfg_schema rule_schema;
static const struct dagi_cfg_field rule_f[] = {
    F("match", DAGI_CFG_STRING, rule, match, NULL, 1, 64, NULL),
    F("any", DAGI_CFG_LIST, rule, any, NULL, 0, 0, &rule_schema),
    F("not", DAGI_CFG_LIST, rule, not_, NULL, 0, 1, &rule_schema),
};
static const struct dagi_cfg_schema rule_schema = SCHEMA(rule, rule_f);
static const struct dagi_cfg_field route_f[] = {
    {"path", DAGI_CFG_STRING, offsetof(struct route, path), .flags = DAGI_CFG_REQUIRED},
    F("max_body", DAGI_CFG_SIZE, route, max_body, "1MB", 1, 1 << 30, NULL),
    F("timeout", DAGI_CFG_DURATION, route, timeout, "30s", 0, 0, NULL),
};
static const struct dagi_cfg_schema route_schema = SCHEMA(route, route_f);
static const struct dagi_cfg_field http_f[] = {
    F("listen", DAGI_CFG_ADDRESS, http, listen, "0.0.0.0:80", 0, 0, NULL),
    F("cors", DAGI_CFG_STRING_LIST, http, cors, NULL, 0, 8, NULL),
    F("tls", DAGI_CFG_BOOL, http, tls, "false", 0, 0, NULL),
    F("ratio", DAGI_CFG_DOUBLE, http, ratio, "0.5", 0, 1, NULL),
};
static const struct dagi_cfg_schema http_schema = SCHEMA(http, http_f);
static const struct dagi_cfg_field conf_f[] = {
    F("name", DAGI_CFG_STRING, conf, name, "x", 1, 32, NULL),
    F("workers", DAGI_CFG_INT, conf, workers, "4", 1, 64, NULL),
    {"log_level", DAGI_CFG_ENUM, offsetof(struct conf, level), "info", .enum_values = levels},
    F("http", DAGI_CFG_SECTION, conf, http, NULL, 0, 0, &http_schema),
    F("routes", DAGI_CFG_LIST, conf, routes, NULL, 0, 0, &route_schema),
    F("rules", DAGI_CFG_LIST, conf, rules, NULL, 0, 0, &rule_schema),
};
static const struct dagi_cfg_schema conf_schema = SCHEMA(conf, conf_f);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dagi_arena *arena = dagi_arena_new(0);
    struct dagi_cfg_errors errs;
    dagi_cfg_errors_init(&errs);
    void *conf = NULL;
    dagi_cfg_load_yaml(&conf_schema, "fuzz.yml", (const char *)data, size, arena, &conf, &errs);
    dagi_cfg_errors_release(&errs);
    dagi_arena_free(arena);
    return 0;
}
