/* What a refused request is told (docs/QUOTAS.md): the gateway's 429 body
 * and Retry-After, and the short text a Telegram user gets instead.  Pure
 * functions of the block; no I/O. */
#ifndef DAGI_QUOTA_REPLY_H
#define DAGI_QUOTA_REPLY_H

#include <stddef.h>
#include <stdint.h>

#include "quota/quota_store.h"

struct json_t;

/* The 429 body, a new reference:
 *   {"error": {"type": "quota_exceeded", "code": "quota_exceeded",
 *              "message": "...", "budget": "free-user-daily",
 *              "kind": "requests" | "tokens", "limit": 5, "window": "day",
 *              "reset_at": "2026-11-29T00:00:00.000Z",
 *              "reset_at_ms": 1795910400000}}
 * `type` is OpenAI's field, `code` dagi's (the other error bodies carry
 * one); both say the same. */
struct json_t *dagi_quota_block_body(const struct dagi_quota_block *b);

/* Whole seconds until the window resets, at least 1 (Retry-After). */
int64_t dagi_quota_block_retry_after_s(const struct dagi_quota_block *b, int64_t now_ms);

/* The Telegram answer: two short lines, Ukrainian then English, naming the
 * limit and when it resets (UTC), e.g.
 *   Вичерпано ліміт запитів: 5 на добу. Оновиться 29.11.2026 о 00:00 UTC.
 *   Request limit reached: 5 per day. It resets on 2026-11-29 at 00:00 UTC.
 * Returns the length written (always NUL-terminated; cut at out_len - 1). */
size_t dagi_quota_block_text(const struct dagi_quota_block *b, char *out, size_t out_len);

#endif
