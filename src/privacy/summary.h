/* The Privacy Gate's extractive summary (docs/PRIVACY_GATE.md, "The
 * summary"): what the model sees of a confidential context without the
 * user's consent.
 *
 *   1. Every part is redacted first (redact_pii.h), so no piece of a
 *      secret can survive the selection below.
 *   2. The text is split into sentences: ".", "!", "?", "…" followed by a
 *      space, and line ends; a full stop after an abbreviation ("e.g.",
 *      "Dr.", "т.д.", "грн."), an initial or before a lower-case word does
 *      not end one, nor does one inside a number ("3.14").
 *   3. Sentences are scored by their terms (folded words, stop words of
 *      English and Ukrainian left out): a term weighs (1 + ln tf) *
 *      ln(1 + S / df) over the S sentences - rarer in the text is more
 *      telling - and a sentence scores the sum over its distinct terms
 *      divided by the square root of their number.
 *   4. The best sentences are taken while they fit the token budget -
 *      sentences of priority parts (the latest question) first - skipping
 *      near-duplicates of one already taken (Jaccard >= 0.7 over terms),
 *      and written out in their original order, white space collapsed.
 *      When not even one sentence fits, the best one is cut at a word
 *      and ends with "…".
 *
 * Tokens are estimated per word (a run between spaces): ceil(UTF-8 bytes
 * / 4), at least one - about right for English with GPT-style tokenizers
 * and a little over for Cyrillic, so the budget errs short.
 *
 * Pure and thread safe. */
#ifndef DAGI_PRIVACY_SUMMARY_H
#define DAGI_PRIVACY_SUMMARY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "privacy/redact_pii.h"

#define DAGI_SUMMARY_DEFAULT_TOKENS 100
#define DAGI_SUMMARY_MAX_TOKENS 8192
/* The most text one summary reads (the gate keeps the latest this much). */
#define DAGI_SUMMARY_INPUT_MAX (256u * 1024u)
/* What a summary of `tokens` can take in bytes: four per token, the
 * spaces between words and the ellipsis of a cut sentence. */
#define DAGI_SUMMARY_OUTPUT_MAX(tokens) (5u * (size_t)(tokens) + 8u)

struct dagi_summary_part {
    const char *text; /* UTF-8, need not be NUL-terminated */
    size_t len;
    bool priority; /* the latest question: its sentences are taken first */
};

struct dagi_summary_stats {
    size_t sentences; /* found in the (redacted) text */
    size_t kept;
    unsigned tokens; /* the estimate of the output */
    bool cut;        /* the one sentence kept was cut to fit */
    struct dagi_pii_counts redacted;
};

/* Appends the summary of parts[0..n) within max_tokens (0: the default
 * 100) to out.  DAGI_ETOOBIG when the parts add up to more than
 * DAGI_SUMMARY_INPUT_MAX or out's cap is passed (out as it was);
 * DAGI_EINVAL for max_tokens over DAGI_SUMMARY_MAX_TOKENS.  Working
 * buffers are wiped before they are freed. */
int dagi_summary_build(const struct dagi_summary_part *parts, size_t n, unsigned max_tokens,
                       struct dagi_buf *out, struct dagi_summary_stats *stats);

/* The token estimate of text[0..len). */
unsigned dagi_summary_tokens(const char *text, size_t len);

#endif
