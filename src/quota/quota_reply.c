/* The 429 body and the Telegram text of a quota block (quota_reply.h). */
#include "quota/quota_reply.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

json_t *dagi_quota_block_body(const struct dagi_quota_block *b)
{
    char reset_at[32], message[512];
    dagi_quota_format_time(b->reset_at_ms, reset_at);
    const char *window = dagi_quota_window_name(b->window);
    if (b->tokens)
        snprintf(message, sizeof(message),
                 "budget %s allows %lld tokens per %s: %lld used, %lld held by requests in "
                 "flight, %lld asked for; it resets at %s",
                 b->budget_id, (long long)b->limit, window, (long long)b->used, (long long)b->held,
                 (long long)b->requested, reset_at);
    else
        snprintf(message, sizeof(message),
                 "budget %s allows %lld requests per %s and all are used; it resets at %s",
                 b->budget_id, (long long)b->limit, window, reset_at);
    json_t *error =
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:s,s:s,s:I}", "type", "quota_exceeded", "code",
                  "quota_exceeded", "message", message, "budget", b->budget_id, "kind",
                  b->tokens ? "tokens" : "requests", "limit", (json_int_t)b->limit, "window",
                  window, "reset_at", reset_at, "reset_at_ms", (json_int_t)b->reset_at_ms);
    return json_pack("{s:o}", "error", error);
}

int64_t dagi_quota_block_retry_after_s(const struct dagi_quota_block *b, int64_t now_ms)
{
    int64_t ms = b->reset_at_ms - now_ms;
    int64_t s = ms > 0 ? (ms + 999) / 1000 : 1;
    return s < 1 ? 1 : s;
}

size_t dagi_quota_block_text(const struct dagi_quota_block *b, char *out, size_t out_len)
{
    static const char *const uk_window[] = {"на хвилину", "на добу", "на місяць"};
    char iso[32];
    dagi_quota_format_time(b->reset_at_ms, iso);
    /* iso = YYYY-MM-DDTHH:MM:SS.mmmZ */
    char date[16], dmy[16], hm[8];
    snprintf(date, sizeof(date), "%.10s", iso);
    snprintf(dmy, sizeof(dmy), "%.2s.%.2s.%.4s", iso + 8, iso + 5, iso);
    snprintf(hm, sizeof(hm), "%.5s", iso + 11);
    int w = b->window >= 0 && b->window < 3 ? b->window : DAGI_QUOTA_DAY;
    int n = snprintf(out, out_len,
                     "Вичерпано ліміт %s: %lld %s. Оновиться %s о %s UTC.\n"
                     "%s limit reached: %lld per %s. It resets on %s at %s UTC.",
                     b->tokens ? "токенів" : "запитів", (long long)b->limit, uk_window[w], dmy, hm,
                     b->tokens ? "Token" : "Request", (long long)b->limit,
                     dagi_quota_window_name(w), date, hm);
    if (n < 0 || out_len == 0)
        return 0;
    if ((size_t)n >= out_len) {
        /* Never leave half a UTF-8 character at the cut. */
        size_t len = out_len - 1, lead = len;
        while (lead && ((unsigned char)out[lead - 1] & 0xC0) == 0x80)
            lead--;
        if (lead) {
            unsigned char c = (unsigned char)out[lead - 1];
            size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
            if (lead - 1 + need > len)
                len = lead - 1;
        }
        out[len] = '\0';
        return len;
    }
    return (size_t)n;
}
