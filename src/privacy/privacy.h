/* The Privacy Gate (seed section 4; docs/PRIVACY_GATE.md): what of a
 * conversation the model may see, by the request's privacy mode and the
 * user's stored consent.
 *
 *   public, team                 the messages unchanged
 *   confidential + consent       the messages unchanged
 *   confidential, no consent     the leading system messages (the agent's
 *                                own prompt) kept; everything else folded
 *                                into one user message: a sanitized,
 *                                extractive summary (summary.h) of the
 *                                conversation, the latest user question
 *                                first in line for the budget; images and
 *                                other non-text parts dropped
 *
 * In confidential mode nothing derived from content may reach logs,
 * events, audit records or metric labels, whatever the consent:
 * dagi_privacy_content_free() is the one rule callers check.  The gate's
 * report carries counts and sizes only, for metrics.
 *
 * Consent is never a request flag: the caller reads it from the store
 * (consent.h) and passes what it found. */
#ifndef DAGI_PRIVACY_PRIVACY_H
#define DAGI_PRIVACY_PRIVACY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "privacy/redact_pii.h"

struct json_t;

enum dagi_privacy_mode {
    DAGI_PRIVACY_PUBLIC,
    DAGI_PRIVACY_TEAM,
    DAGI_PRIVACY_CONFIDENTIAL,
};

/* "public" | "team" | "confidential" (exactly these); DAGI_EINVAL else. */
int dagi_privacy_mode_parse(const char *name, enum dagi_privacy_mode *out);
const char *dagi_privacy_mode_name(enum dagi_privacy_mode mode);

/* True for confidential: log, label and emit nothing derived from the
 * content (text, lengths of single messages, ids that quote it). */
bool dagi_privacy_content_free(enum dagi_privacy_mode mode);

/* The user message that replaces the conversation starts with this line. */
#define DAGI_PRIVACY_SUMMARY_HEADER                                                                \
    "Sanitized summary of the conversation (confidential mode: the user has not consented to "     \
    "sharing its content; personal data and secrets are redacted):\n"

/* What the gate did, for metrics: figures only, never text. */
struct dagi_privacy_report {
    bool sanitized; /* false: the messages went through unchanged */
    size_t messages_in;
    size_t messages_out;
    size_t messages_dropped; /* older than the DAGI_SUMMARY_INPUT_MAX of text kept */
    size_t images_dropped;
    size_t parts_dropped; /* other non-text parts and tool calls */
    size_t bytes_in;      /* text of the messages */
    size_t bytes_out;
    size_t sentences_in;
    size_t sentences_kept;
    unsigned tokens_out; /* the summary's estimate */
    struct dagi_pii_counts redacted;
};

/* messages: the OpenAI-shaped array the router is about to send (objects
 * with "role" and "content", content a string or an array of parts).
 * *out is a new reference: the same array when nothing changes, else a
 * new one (its kept system messages are shallow copies sharing their
 * members with the input).  max_tokens 0 is the summary's default (100).
 * DAGI_EINVAL for a malformed array or max_tokens out of range; report
 * may be NULL. */
int dagi_privacy_gate_messages(struct json_t *messages, enum dagi_privacy_mode mode, bool consent,
                               unsigned max_tokens, struct json_t **out,
                               struct dagi_privacy_report *report, struct dagi_error *err);

#endif
