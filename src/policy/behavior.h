/* The SOWA behaviour policy: for a message that arrived in a chat (a
 * Telegram update, or an /infer request carrying `chat`), decide before any
 * model call whether the agent answers in full, sends its short
 * acknowledgement, or stays silent.  docs/BEHAVIOR_POLICY.md is the table.
 *
 *   FULL    call the model and answer
 *   ACK     send the agent's ack_text, no model call
 *   SILENT  send nothing, no model call
 *
 * First row that applies (reasons are stable, for logs and the metric
 * agent_behavior_decisions_total{agent_id,level,reason}):
 *
 *   1 no chat                                FULL    no_chat
 *   2 sender is a bot / another agent        SILENT  sender_is_bot / sender_is_agent
 *   3 same text, user, chat and agent
 *     within the window, when 4-6 would
 *     answer (FULL or ACK)                   SILENT  duplicate
 *   4 private chat, in quiet hours           ACK     private_quiet_hours
 *     private chat                           FULL    private
 *   5 group/supergroup, addressed to the bot
 *     and in the agent's domain              FULL    group_addressed_in_domain
 *     addressed, out of the domain           ACK     group_addressed_out_of_domain
 *     not addressed, silent_in_groups false,
 *     in the domain                          FULL    group_unaddressed_in_domain
 *   6 any other group message                SILENT  group_not_addressed
 *     a channel post                         SILENT  channel
 *
 * The duplicate memory (row 3) keeps, per message it let through, only a
 * keyed BLAKE2b hash of agent, chat, user and normalised text plus the time
 * - never the text - in a table of fixed capacity, the oldest entry evicted
 * first.  Messages rows 4-6 silence anyway are never remembered, so a text
 * first said to the group and then to the bot is answered.  A text that is
 * empty after normalisation (media without caption) is never a duplicate.
 *
 * Thread safety: dagi_behavior_decide may be called from any thread; the
 * duplicate table is behind one mutex.  Every other function is pure. */
#ifndef DAGI_POLICY_BEHAVIOR_H
#define DAGI_POLICY_BEHAVIOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

enum dagi_behavior_level {
    DAGI_BEHAVIOR_FULL,
    DAGI_BEHAVIOR_ACK,
    DAGI_BEHAVIOR_SILENT,
};

enum dagi_chat_type {
    DAGI_CHAT_PRIVATE,
    DAGI_CHAT_GROUP,
    DAGI_CHAT_SUPERGROUP,
    DAGI_CHAT_CHANNEL,
};

/* ACK text when the agent has none. */
#define DAGI_BEHAVIOR_DEFAULT_ACK "\xF0\x9F\x91\x8D" /* U+1F44D thumbs up */
#define DAGI_BEHAVIOR_DEFAULT_WINDOW_MS 15000
#define DAGI_BEHAVIOR_DEFAULT_CAPACITY 4096
#define DAGI_BEHAVIOR_MAX_CAPACITY (1u << 24)
#define DAGI_BEHAVIOR_KEY_BYTES 32  /* crypto_generichash_KEYBYTES */
#define DAGI_BEHAVIOR_HASH_BYTES 16 /* crypto_generichash_BYTES_MIN */

/* An agent's behaviour parameters (the registry's `behaviour` section).
 * Borrowed: the caller keeps them alive for the call. */
struct dagi_behavior_params {
    const char *ack_text;               /* NULL = DAGI_BEHAVIOR_DEFAULT_ACK */
    const char *quiet_from;             /* "HH:MM"; NULL = no quiet hours */
    const char *quiet_to;               /* "HH:MM"; before quiet_from = wraps midnight */
    const char *quiet_tz;               /* tz.h name; NULL = "UTC" */
    const char *const *domain_keywords; /* UTF-8; none = every text is in the domain */
    size_t domain_keyword_count;
    bool silent_in_groups; /* the registry's default is true */
};

/* One incoming message.  Borrowed, like the parameters.
 *
 * chat_id is a string: Telegram's int64 chat id printed in decimal (as
 * "%" PRId64), any other channel's id as it comes; /infer callers may send a
 * number or a string and the gateway passes its decimal/string form. */
struct dagi_behavior_request {
    const char *agent_id;
    bool has_chat;
    const char *chat_id; /* NULL = "" */
    enum dagi_chat_type chat_type;
    const char *user_id; /* NULL = "" */
    bool sender_is_bot;
    bool sender_is_agent;
    bool addressed_to_bot; /* mention or reply to the bot, computed by the channel */
    const char *text;      /* text_len bytes of UTF-8 (need not be valid); NULL = "" */
    size_t text_len;
    int64_t now_ms; /* dagi_clock_now_ms() */
};

struct dagi_behavior_decision {
    enum dagi_behavior_level level;
    const char *reason;   /* static snake_case string */
    const char *ack_text; /* for ACK: the params' ack_text or the default; else NULL */
};

/* One remembered message: all the duplicate table holds per entry. */
struct dagi_behavior_seen {
    uint8_t hash[DAGI_BEHAVIOR_HASH_BYTES]; /* keyed BLAKE2b of agent, chat, user, text */
    int64_t seen_ms;
};

struct dagi_behavior_options {
    size_t capacity;   /* remembered messages; 0 = DAGI_BEHAVIOR_DEFAULT_CAPACITY */
    int64_t window_ms; /* 0 = DAGI_BEHAVIOR_DEFAULT_WINDOW_MS */
    /* DAGI_BEHAVIOR_KEY_BYTES bytes, copied; NULL = random for the process
     * life (hashes then mean nothing outside it). */
    const uint8_t *key;
};

/* The policy with its duplicate memory.  new/free; options may be NULL.
 * Returns NULL only when capacity is over DAGI_BEHAVIOR_MAX_CAPACITY or
 * window_ms is negative; aborts when libsodium cannot start. */
struct dagi_behavior *dagi_behavior_new(const struct dagi_behavior_options *options);
void dagi_behavior_free(struct dagi_behavior *b);

/* Decides for one message and, when the message is let through (FULL or
 * ACK), remembers it for the duplicate check.  Returns 0 and fills *out, or
 * DAGI_EINVAL (unknown chat type, malformed quiet hours) or a tz.h error for
 * the quiet hours' zone, with nothing remembered. */
int dagi_behavior_decide(struct dagi_behavior *b, const struct dagi_behavior_params *params,
                         const struct dagi_behavior_request *req,
                         struct dagi_behavior_decision *out, struct dagi_error *err);

/* Whether now_ms falls in [from, to) local time in zone tz (NULL = UTC);
 * to before from wraps midnight; from == to is an empty range; either NULL
 * means no quiet hours.  Returns 0 with *in set, DAGI_EINVAL for a
 * malformed HH:MM, or the tz.h error. */
int dagi_behavior_in_quiet_hours(const char *from, const char *to, const char *tz, int64_t now_ms,
                                 bool *in, struct dagi_error *err);

/* Whether the text mentions a keyword: case-insensitive (textnorm.h), white
 * space collapsed, matching a prefix of a word - "енерг" matches
 * "ЕНЕРГІЯ" and "енергетика", not "синергія".  A keyword that starts with a
 * non-letter ("#dao") may match anywhere.  Keywords empty after
 * normalisation never match; n == 0 means every text is in the domain. */
bool dagi_behavior_keyword_match(const char *text, size_t text_len, const char *const *keywords,
                                 size_t n);

/* Checks parameters once, at registry load: quiet_from/to both set or both
 * NULL, HH:MM (00:00-23:59), not equal, the zone exists (this reads the
 * zone file, so a missing tzdata fails here and not per message),
 * keywords and ack_text not empty after normalisation.  Returns 0, or
 * DAGI_EINVAL for a malformed value and the tz.h error (DAGI_ENOENT, ...)
 * for a zone that does not load, with err naming the field
 * ("quiet_hours.tz: ..."). */
int dagi_behavior_validate_params(const struct dagi_behavior_params *params,
                                  struct dagi_error *err);

/* "FULL", "ACK", "SILENT" ("?" for anything else). */
const char *dagi_behavior_level_name(enum dagi_behavior_level level);

/* "private", "group", "supergroup", "channel" to the enum: 0 or DAGI_EINVAL. */
int dagi_behavior_chat_type_parse(const char *s, enum dagi_chat_type *out);

/* For tests and debugging: the entries remembered now, oldest first, each
 * given to `each`; returns how many there are. */
size_t dagi_behavior_seen_list(struct dagi_behavior *b,
                               void (*each)(const struct dagi_behavior_seen *seen, void *ctx),
                               void *ctx);

#endif
