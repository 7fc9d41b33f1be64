/* Pure helpers for a Telegram Bot API client (https://core.telegram.org/bots/api):
 * method and file URLs, JSON request bodies, and the response envelope.
 * Nothing here does I/O; the client that sends the requests lives elsewhere.
 *
 * The bot token is a secret and sits in every URL: log URLs only through
 * dagi_tg_redact_url().
 *
 * Request bodies are built as jansson objects so a caller can add optional
 * fields (parse_mode, reply_markup) before sending; serialize with
 * json_dumps(body, JSON_COMPACT) and POST as application/json.  Each
 * dagi_tg_body_*() returns a new reference in *out: the caller
 * json_decref()s it.
 *
 * All functions return 0 or a negative dagi_err and set out-parameters only
 * on success.  Safe on any thread. */
#ifndef DAGI_TELEGRAM_TG_API_H
#define DAGI_TELEGRAM_TG_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define DAGI_TG_API_BASE "https://api.telegram.org"
/* Responses over this are refused (DAGI_ETOOBIG) before parsing. */
#define DAGI_TG_API_MAX_RESPONSE_BYTES (8 * 1024 * 1024)
/* retry_after is clamped to this, so a bogus value cannot park a sender. */
#define DAGI_TG_API_MAX_RETRY_AFTER_S 3600

/* --- URLs --- */

/* Writes "<base>/bot<token>/<method>" into out[0..cap).  base NULL means
 * DAGI_TG_API_BASE; one trailing '/' on base is dropped.  DAGI_EINVAL when
 * the token is not "<digits>:<[A-Za-z0-9_-]+>" or the method is not letters
 * (so nothing can smuggle a path or query into the URL); DAGI_ETOOBIG when
 * out is too small. */
int dagi_tg_method_url(char *out, size_t cap, const char *base, const char *token,
                       const char *method);

/* Writes "<base>/file/bot<token>/<file_path>" (file_path from getFile).
 * DAGI_EINVAL also when file_path is empty, absolute, holds a ".." segment
 * or characters outside [A-Za-z0-9._~/-]. */
int dagi_tg_file_url(char *out, size_t cap, const char *base, const char *token,
                     const char *file_path);

/* Copies url into out with every "/bot<token>" path segment (one holding a
 * ':') written as "/bot<redacted>", for logs.  When out is too small the
 * copy is truncated (still NUL-terminated, still without the token) and
 * DAGI_ETOOBIG is returned. */
int dagi_tg_redact_url(const char *url, char *out, size_t cap);

/* --- request bodies --- */

struct dagi_tg_send_message {
    int64_t chat_id;
    const char *text; /* UTF-8, 1..4096 UTF-16 units (see tg_split.h) */
    size_t text_len;
    int64_t reply_to_message_id; /* 0 = not a reply */
    int64_t message_thread_id;   /* forum topic; 0 = none */
};

/* sendMessage.  A reply is sent as reply_parameters {message_id,
 * allow_sending_without_reply: true} (reply_to_message_id is the
 * pre-7.0 spelling): an answer must still arrive when the question was
 * deleted meanwhile.  DAGI_EINVAL for chat_id 0, empty or invalid UTF-8
 * text; DAGI_ETOOBIG for text over DAGI_TG_MESSAGE_MAX_UNITS. */
int dagi_tg_body_send_message(const struct dagi_tg_send_message *m, json_t **out);

/* sendChatAction.  action NULL means "typing", the one an agent shows
 * while the model thinks; Telegram shows it for 5 s or until the bot's next
 * message, so resend it every ~4 s for long answers.  message_thread_id 0
 * = none.  DAGI_EINVAL for chat_id 0 or an action that is not lowercase
 * letters and '_'. */
int dagi_tg_body_send_chat_action(int64_t chat_id, int64_t message_thread_id, const char *action,
                                  json_t **out);

/* getFile {file_id}. */
int dagi_tg_body_get_file(const char *file_id, json_t **out);

struct dagi_tg_set_webhook {
    const char *url;          /* HTTPS URL; "" removes the webhook */
    const char *secret_token; /* 1-256 of [A-Za-z0-9_-], echoed by Telegram in the
                               * X-Telegram-Bot-Api-Secret-Token header; NULL = none */
    bool drop_pending_updates;
};

/* setWebhook with allowed_updates ["message", "edited_message",
 * "channel_post"]: the kinds the agent answers (tg_update.h).  DAGI_EINVAL
 * for a NULL url or a secret_token Telegram would refuse. */
int dagi_tg_body_set_webhook(const struct dagi_tg_set_webhook *w, json_t **out);

/* getWebhookInfo and getMe take no parameters: an empty object. */
int dagi_tg_body_get_webhook_info(json_t **out);
int dagi_tg_body_get_me(json_t **out);

/* --- responses --- */

/* What an {"ok": false, ...} response says.  retry_after_s and
 * migrate_to_chat_id come from "parameters" (ResponseParameters): after a
 * 429 wait retry_after_s; when a group became a supergroup, resend to
 * migrate_to_chat_id. */
struct dagi_tg_api_error {
    int error_code;             /* 400, 403, 429, ...; as Telegram sent it */
    char description[256];      /* truncated copy, always NUL-terminated */
    int retry_after_s;          /* 0 when absent; clamped to DAGI_TG_API_MAX_RETRY_AFTER_S */
    int64_t migrate_to_chat_id; /* 0 when absent */
};

/* Parses a Bot API response body.
 *   {"ok": true, "result": R}  -> 0, *result = R as a NEW reference (the
 *                                 caller json_decref()s it; the rest of the
 *                                 document is already released).
 *   {"ok": false, ...}         -> DAGI_EUNAVAIL, *api_err filled, and `err`
 *                                 says "Bot API error 429: Too Many Requests...".
 *   anything else              -> DAGI_EPARSE naming the field (or the JSON
 *                                 error); DAGI_ETOOBIG over the size cap.
 * api_err may be NULL when the caller does not care why. */
int dagi_tg_api_parse_response(const char *body, size_t len, json_t **result,
                               struct dagi_tg_api_error *api_err, struct dagi_error *err);

/* True for errors worth retrying the same request later: 429 (flood
 * control, after retry_after_s) and 5xx.  400, 401, 403, 404 and others
 * are final: the request, token or chat is wrong and will stay wrong.  A
 * migrate_to_chat_id error is final too; resend to the new chat instead. */
bool dagi_tg_error_retryable(const struct dagi_tg_api_error *e);

/* getMe's result (a User). */
struct dagi_tg_me {
    int64_t id;
    char username[64]; /* without '@'; Telegram's are 5-32 characters */
};
/* DAGI_EPARSE when id or username is missing, mistyped or too long (a bot
 * always has a username). */
int dagi_tg_parse_me(const json_t *result, struct dagi_tg_me *out, struct dagi_error *err);

/* getFile's result (a File). */
struct dagi_tg_file {
    char file_path[256]; /* for dagi_tg_file_url(); valid for at least 1 hour */
    int64_t file_size;   /* 0 when Telegram did not say */
};
/* DAGI_ENOENT when the File has no file_path (nothing downloadable);
 * DAGI_EPARSE when mistyped; DAGI_ETOOBIG when file_path does not fit. */
int dagi_tg_parse_file(const json_t *result, struct dagi_tg_file *out, struct dagi_error *err);

#endif
