/* The Bot API client: one method call (or one file download) on the node's
 * loop through the shared HTTP client, retried where Telegram says a retry
 * helps - 429 after its `retry_after`, 5xx and network errors with a growing
 * back-off - up to `attempts` tries.  Bodies and results are tg_api.h's.
 *
 * The token is part of every URL (Telegram's design), so URLs are never
 * logged or put in an error message: only the method name is. */
#ifndef DAGI_TELEGRAM_TG_CLIENT_H
#define DAGI_TELEGRAM_TG_CLIENT_H

#include <jansson.h>
#include <stddef.h>

#include "telegram/tg_api.h"

struct event_base;
struct dagi_http_client;
struct dagi_tg_client;
struct dagi_tg_call;

struct dagi_tg_client_opts {
    const char *api_base;  /* NULL = https://api.telegram.org */
    unsigned attempts;     /* tries per call (0 = 5) */
    unsigned timeout_ms;   /* per try (0 = 30 s) */
    unsigned backoff_ms;   /* first back-off for 5xx / network errors (0 = 500 ms) */
};

struct dagi_tg_client *dagi_tg_client_new(struct event_base *base, struct dagi_http_client *http,
                                          const struct dagi_tg_client_opts *opts);
/* Cancels every call in flight (no callbacks) and frees. */
void dagi_tg_client_free(struct dagi_tg_client *c);

/* err 0: result is the method's result (borrowed for the callback).
 * err != 0: api_err (when Telegram answered with an error, else NULL) and a
 * message naming the method, never the token. */
typedef void (*dagi_tg_done_fn)(void *ud, int err, const json_t *result,
                                const struct dagi_tg_api_error *api_err, const char *message);

/* Calls `method` with the JSON body (the reference is taken).  done runs
 * exactly once, on the loop, never from inside this call - unless the call
 * is cancelled first. */
int dagi_tg_call(struct dagi_tg_client *c, const char *token, const char *method, json_t *body,
                 dagi_tg_done_fn done, void *ud, struct dagi_tg_call **out);

/* Downloads a file (getFile's file_path), at most max_bytes. */
typedef void (*dagi_tg_file_fn)(void *ud, int err, const void *data, size_t len,
                                const char *message);
int dagi_tg_download(struct dagi_tg_client *c, const char *token, const char *file_path,
                     size_t max_bytes, dagi_tg_file_fn done, void *ud, struct dagi_tg_call **out);

void dagi_tg_call_cancel(struct dagi_tg_call *call);

#endif
