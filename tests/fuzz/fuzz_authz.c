/* libFuzzer driver: bytes as a policy bundle; when they compile, decide a
 * few fixed requests and ask the entitlement queries, so the decision path
 * walks whatever tables the compiler built. */
#include <stddef.h>
#include <stdint.h>

#include "authz/authz.h"
#include "core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dagi_cfg_errors errs;
    dagi_cfg_errors_init(&errs);
    dagi_authz_check_text((const char *)data, size, "fuzz.yml", &errs);
    struct dagi_authz_bundle *b = NULL;
    if (dagi_authz_compile((const char *)data, size, "fuzz.yml", &b, &errs) == 0) {
        static const char *const subjects[] = {"user:alice", "team:energy", "role:user", "key:k1",
                                               "tg:42"};
        static const char *const actions[] = {"agent.use",
                                              "agent.tool.web_search",
                                              "memory.read.personal",
                                              "mode.confidential",
                                              "model.use",
                                              "config.write",
                                              "a.b.c.d.e.f.g.h",
                                              "*",
                                              "agent.*",
                                              ""};
        static const char *const teams[] = {NULL, "", "energy", "daarion"};
        static const char *const resources[] = {NULL, "helion", "qwen3-8b"};
        for (size_t a = 0; a < sizeof(actions) / sizeof(actions[0]); a++)
            for (size_t t = 0; t < 4; t++)
                for (size_t r = 0; r < 3; r++) {
                    struct dagi_authz_request req = {"tg:42",  subjects,   5,
                                                     teams[t], actions[a], resources[r]};
                    struct dagi_authz_decision d;
                    dagi_authz_decide(b, &req, &d);
                    req.principal = "admin";
                    req.n_subjects = 0;
                    dagi_authz_decide(b, &req, &d);
                }
        for (size_t t = 0; t < 4; t++) {
            dagi_authz_agent_entitled(b, teams[t], "helion");
            dagi_authz_model_entitled(b, teams[t], "qwen3-8b");
            dagi_authz_cap_mode(b, teams[t], DAGI_AUTHZ_MODE_CONFIDENTIAL);
        }
        static const char *const known[] = {"helion", "druid"};
        dagi_authz_check_agents(b, known, 2, &errs);
        struct dagi_authz_summary s;
        dagi_authz_bundle_summary(b, &s);
        dagi_authz_bundle_unref(b);
    }
    dagi_cfg_errors_release(&errs);
    return 0;
}
