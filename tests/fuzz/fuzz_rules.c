/* libFuzzer driver: bytes as a routing.yml; when they load, match a few fixed
 * facts, so the matcher walks whatever tree the loader accepted. */
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/arena.h"
#include "core/config.h"
#include "routing/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dagi_arena *arena = dagi_arena_new(0);
    struct dagi_cfg_errors errs;
    dagi_cfg_errors_init(&errs);
    const struct dagi_rules *rules = NULL;
    if (dagi_rules_load_yaml("fuzz.yml", (const char *)data, size, arena, &rules, &errs) == 0) {
        json_t *meta = json_pack("{s:s, s:b, s:i}", "source", "telegram", "vip", 1, "n", 5);
        const struct dagi_route_facts facts[] = {
            {0},
            {"helion", "telegram", "chat", false, false, 120, meta},
            {"devtools", "http", "code", false, false, 5000, NULL},
            {"eonarch", "discord", NULL, true, true, 0, meta},
        };
        for (size_t i = 0; i < sizeof(facts) / sizeof(facts[0]); i++)
            dagi_rules_match(rules, &facts[i]);
        static const char *const known[] = {"qwen3-8b", "qwen3-vl-8b"};
        dagi_rules_check_models(rules, "fuzz.yml: rules", known, 2, &errs);
        json_decref(meta);
    }
    dagi_cfg_errors_release(&errs);
    dagi_arena_free(arena);
    return 0;
}
