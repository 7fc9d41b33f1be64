/* The one redaction helper.  Logs, error messages echoed to clients and
 * printed configuration all go through it, so a secret is masked in one
 * place: tokens, API keys, passwords and Authorization headers. */
#ifndef DAGI_REDACT_H
#define DAGI_REDACT_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

#define DAGI_REDACTED "[redacted]"

/* True when a field or header named `key` holds a secret: authorization,
 * cookie, *token*, *secret*, *password*, *passwd*, *credential*, and names
 * ending in "key" or "keys" (api_key, admin.key, x-api-key, api_keys).
 * Case-insensitive. */
bool dagi_redact_is_secret_key(const char *key);

/* Appends `value` to out with secret-looking runs masked:
 *   "Bearer <anything>"          -> "Bearer [redacted]"
 *   "bot<digits>:<token>"        -> "bot<digits>:[redacted]" (Telegram URLs)
 *   "dagi_{admin,sk,svc}_<secret>" -> "dagi_admin_[redacted]" ... (our API keys)
 *   "sk-<secret>"                -> "sk-[redacted]" (OpenAI-style keys)
 * Returns dagi_buf_append's status. */
int dagi_redact_append(struct dagi_buf *out, const char *value, size_t len);

#endif
