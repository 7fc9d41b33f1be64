/* libFuzzer driver: bytes through the redactor and the summary.  Neither
 * may crash, the redactor's output stays within DAGI_PII_REDACTED_MAX and
 * the summary's within its budget and DAGI_SUMMARY_OUTPUT_MAX.  The first
 * byte picks the budget; the rest is split in two parts, the second the
 * priority one. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/buf.h"
#include "privacy/redact_pii.h"
#include "privacy/summary.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > DAGI_SUMMARY_INPUT_MAX)
        return 0;
    unsigned budget = 1 + data[0] % 200;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;

    struct dagi_buf out;
    dagi_buf_init(&out, DAGI_PII_REDACTED_MAX(len));
    struct dagi_pii_counts counts = {0};
    if (dagi_pii_redact(text, len, &out, &counts) || out.len > DAGI_PII_REDACTED_MAX(len))
        abort();
    dagi_buf_release(&out);

    struct dagi_summary_part parts[2] = {{text, len / 2, false},
                                         {text + len / 2, len - len / 2, true}};
    struct dagi_summary_stats st;
    dagi_buf_init(&out, DAGI_SUMMARY_OUTPUT_MAX(budget));
    if (dagi_summary_build(parts, 2, budget, &out, &st) || st.tokens > budget ||
        out.len > DAGI_SUMMARY_OUTPUT_MAX(budget) ||
        dagi_summary_tokens(dagi_buf_str(&out), out.len) > budget)
        abort();
    dagi_buf_release(&out);
    return 0;
}
