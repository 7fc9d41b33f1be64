/* libFuzzer driver: bytes as a quotas.yml; when they load, apply every
 * budget to a few fixed subjects and render a block of each, so the
 * matcher and the answer builders see whatever the loader accepted. */
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <stdio.h>

#include "core/config.h"
#include "quota/quota.h"
#include "quota/quota_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dagi_cfg_errors errs;
    dagi_cfg_errors_init(&errs);
    struct dagi_quota_budgets *b = NULL;
    if (dagi_quota_budgets_load((const char *)data, size, "fuzz.yml", &b, &errs) == 0) {
        const struct dagi_quota_subject subjects[] = {
            {.user = "tg:42"},
            {.user = "olena", .team = "energy", .agent = "helion"},
            {.user = "u", .agent = "druid"},
        };
        for (size_t i = 0; i < dagi_quota_budgets_count(b); i++) {
            const struct dagi_quota_budget *x = dagi_quota_budgets_at(b, i);
            for (size_t j = 0; j < sizeof(subjects) / sizeof(subjects[0]); j++)
                dagi_quota_budget_applies(x, &subjects[j], NULL);
            struct dagi_quota_block block = {.per = x->per,
                                             .window = x->window,
                                             .limit = x->tokens ? x->tokens : x->requests,
                                             .tokens = x->tokens != 0};
            snprintf(block.budget_id, sizeof(block.budget_id), "%s", x->id);
            dagi_quota_window_bounds(x->window, 1773482400000LL, &block.window_start_ms,
                                     &block.reset_at_ms);
            json_decref(dagi_quota_block_body(&block));
            char text[256];
            dagi_quota_block_text(&block, text, sizeof(text));
            char token[DAGI_QUOTA_TOKEN_MAX];
            dagi_quota_subject_token(x->match, token, sizeof(token));
        }
        dagi_quota_budgets_unref(b);
    }
    dagi_cfg_errors_release(&errs);
    return 0;
}
