/* One Telegram Bot API Update (https://core.telegram.org/bots/api#update),
 * as a webhook POST body or one element of getUpdates' result, parsed into
 * the few facts an agent needs: who wrote, in which chat, what text, which
 * photo, which command, and whether the bot was addressed.
 *
 * Only message-like updates are read (message, edited_message, channel_post,
 * edited_channel_post).  Every other kind (callback_query, my_chat_member,
 * business_message, ...) parses to DAGI_TG_UPDATE_OTHER with just update_id:
 * valid, to be acknowledged and ignored.
 *
 * Strictness: identity fields decide routing, so a present but malformed
 * update_id, message_id, date, chat, from, sender_chat or photo is an error
 * (DAGI_EPARSE naming the field, e.g. "message.chat.id: expected an
 * integer").  Entities are decoration: a malformed or out-of-range entity is
 * dropped and the message still parses.
 *
 * Text offsets: Telegram gives entity offsets and lengths in UTF-16 code
 * units; here they are converted to byte ranges into the UTF-8 `text`.  An
 * entity whose ends fall inside a surrogate pair or past the text is dropped.
 *
 * Memory: everything the parse returns, strings included, lives in the
 * caller's arena and stays valid until the arena is reset or freed; the
 * input bytes may be released right after the call.  The parse is pure: no
 * I/O, no global state, safe on any thread with its own arena. */
#ifndef DAGI_TELEGRAM_TG_UPDATE_H
#define DAGI_TELEGRAM_TG_UPDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/err.h"

/* Bodies over this are refused with DAGI_ETOOBIG before parsing.  A real
 * update is a few KiB (text is at most 4096 UTF-16 units); the cap bounds
 * what an unauthenticated webhook POST can make us allocate. */
#define DAGI_TG_UPDATE_MAX_BYTES (1024 * 1024)
/* More entities than this is DAGI_ETOOBIG: 4096 units of text cannot carry
 * that many meaningful ones, so it is abuse, not a message. */
#define DAGI_TG_UPDATE_MAX_ENTITIES 512
/* More PhotoSize elements than this is DAGI_ETOOBIG (Telegram sends 1-5). */
#define DAGI_TG_UPDATE_MAX_PHOTO_SIZES 32

enum dagi_tg_update_kind {
    DAGI_TG_UPDATE_MESSAGE,
    DAGI_TG_UPDATE_EDITED_MESSAGE,
    DAGI_TG_UPDATE_CHANNEL_POST,
    DAGI_TG_UPDATE_EDITED_CHANNEL_POST,
    DAGI_TG_UPDATE_OTHER, /* valid, but nothing below is set */
};

enum dagi_tg_chat_type {
    DAGI_TG_CHAT_PRIVATE,
    DAGI_TG_CHAT_GROUP,
    DAGI_TG_CHAT_SUPERGROUP,
    DAGI_TG_CHAT_CHANNEL,
    DAGI_TG_CHAT_UNKNOWN, /* a type newer than this code; not an error */
};

struct dagi_tg_chat {
    int64_t id;
    enum dagi_tg_chat_type type;
    const char *title;    /* groups and channels; NULL when absent */
    const char *username; /* without '@'; NULL when absent */
};

struct dagi_tg_user {
    int64_t id;
    bool is_bot;
    const char *username;      /* without '@'; NULL when absent */
    const char *first_name;    /* required by the Bot API, so never NULL */
    const char *language_code; /* IETF tag ("en", "uk"); NULL when absent */
};

enum dagi_tg_entity_kind {
    DAGI_TG_ENTITY_MENTION,      /* "@username" */
    DAGI_TG_ENTITY_TEXT_MENTION, /* a user without a username; user_id set */
    DAGI_TG_ENTITY_BOT_COMMAND,  /* "/start" or "/start@some_bot" */
    DAGI_TG_ENTITY_OTHER,        /* bold, url, hashtag, ...: see `type` */
};

struct dagi_tg_entity {
    enum dagi_tg_entity_kind kind;
    const char *type; /* Telegram's name for it ("mention", "bold", ...) */
    size_t offset;    /* byte range into dagi_tg_update.text */
    size_t length;
    int64_t user_id; /* text_mention only, else 0 */
};

struct dagi_tg_photo {
    const char *file_id; /* for getFile */
    const char *file_unique_id;
    int64_t width, height;
    int64_t file_size; /* 0 when Telegram did not say */
};

/* The message this one replies to, reduced to who wrote it. */
struct dagi_tg_reply {
    int64_t message_id;
    const struct dagi_tg_user *from; /* NULL when absent (channel posts) */
};

struct dagi_tg_update {
    int64_t update_id;
    enum dagi_tg_update_kind kind;
    /* Everything below is zero/NULL when kind is DAGI_TG_UPDATE_OTHER. */
    int64_t message_id;
    int64_t date;              /* Unix time */
    int64_t edit_date;         /* edited_* kinds; 0 otherwise */
    int64_t message_thread_id; /* forum topic or reply thread; 0 when absent */
    struct dagi_tg_chat chat;
    const struct dagi_tg_user *from;        /* NULL in channels */
    const struct dagi_tg_chat *sender_chat; /* sent on behalf of a chat; else NULL */
    /* The message text, or the media caption when there is no text.
     * NUL-terminated valid UTF-8 (jansson validates it); NULL when neither. */
    const char *text;
    size_t text_len;
    bool text_is_caption;
    const struct dagi_tg_entity *entities; /* from entities or caption_entities */
    size_t entity_count;
    const struct dagi_tg_photo *photo; /* the largest size; NULL when no photo */
    /* NULL when not a reply.  In forum topics Telegram marks every message
     * as a reply to the topic's creation message; that is not a reply to a
     * person and is left out. */
    const struct dagi_tg_reply *reply_to;
    /* Set when the text starts with a bot_command entity at offset 0:
     * "/help@helion_bot how?" gives command "help", command_target
     * "helion_bot" and command_args "how?"; without "@..." the target is
     * NULL.  command_args is "" when nothing follows. */
    const char *command;
    const char *command_target;
    const char *command_args;
};

/* Parses one Update from `len` bytes of JSON.  On success sets *out and
 * returns 0.  Errors: DAGI_ETOOBIG (over DAGI_TG_UPDATE_MAX_BYTES, an array
 * cap, or the arena's cap), DAGI_EPARSE (not JSON, or a field of the wrong
 * shape; `err` names it).  JSON nesting is bounded by jansson's parser
 * (JSON_PARSER_MAX_DEPTH), duplicate keys are refused, and strings holding
 * NUL are refused so every string here is a plain C string. */
int dagi_tg_update_parse(const char *data, size_t len, struct dagi_arena *arena,
                         const struct dagi_tg_update **out, struct dagi_error *err);

/* True when the message speaks to this bot: a `mention` entity equal to
 * "@bot_username" (case-insensitive), a `text_mention` of bot_id, a
 * bot_command aimed at "@bot_username", or a reply to a message from
 * bot_id or bot_username.  bot_username may carry a leading '@' or be NULL;
 * bot_id <= 0 matches no one.  A private chat needs no addressing: callers
 * decide that from chat.type. */
bool dagi_tg_addressed_to(const struct dagi_tg_update *u, const char *bot_username, int64_t bot_id);

/* The text to hand the model: u->text without a leading "@bot_username"
 * (case-insensitive, only when followed by a non-username character) and
 * the whitespace, ',' or ':' after it.  Points into u->text, sets *len_out;
 * NULL (and *len_out = 0) when the update has no text.  A mention elsewhere
 * in the sentence is kept: it is part of what the user said. */
const char *dagi_tg_update_text_without_mention(const struct dagi_tg_update *u,
                                                const char *bot_username, size_t *len_out);

#endif
