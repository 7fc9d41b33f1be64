/* The Privacy Gate's redactor (docs/PRIVACY_GATE.md, "What is redacted"):
 * finds personal data and secrets in UTF-8 text (Ukrainian and English)
 * and replaces each finding with a typed placeholder - [email], [phone],
 * [card], [iban], [ip], [url], [bot_token], [api_key], [secret] - counting
 * the findings per type.
 *
 * One pass over the text: each position that can start a finding (a word
 * or token start) is offered to the detectors in a fixed order (URL,
 * e-mail, API key, bot token, IBAN, card, phone, IP, password value,
 * random-looking token); the first that matches wins and the scan goes on
 * after its match.  Every detector looks a bounded distance ahead, so the
 * cost is linear in the text.
 *
 * Secrets are never copied anywhere but the output's untouched spans
 * (which by construction hold none): checks run on the caller's bytes in
 * place, and the two small stack buffers that hold a decoded piece of a URL
 * for checking are wiped before they go out of scope.
 *
 * Pure and thread safe; allocates only through the caller's buffer. */
#ifndef DAGI_PRIVACY_REDACT_PII_H
#define DAGI_PRIVACY_REDACT_PII_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

enum dagi_pii_type {
    DAGI_PII_EMAIL,
    DAGI_PII_PHONE,
    DAGI_PII_CARD,
    DAGI_PII_IBAN,
    DAGI_PII_IP,
    DAGI_PII_URL,
    DAGI_PII_BOT_TOKEN,
    DAGI_PII_API_KEY,
    DAGI_PII_SECRET,
    DAGI_PII_TYPE_COUNT,
};

/* Findings per type (indexed by enum dagi_pii_type). */
struct dagi_pii_counts {
    uint32_t n[DAGI_PII_TYPE_COUNT];
};

/* "email", "phone", ..., "secret" (metric label values). */
const char *dagi_pii_type_name(enum dagi_pii_type type);
/* "[email]", "[phone]", ... */
const char *dagi_pii_placeholder(enum dagi_pii_type type);
/* The sum over every type. */
uint32_t dagi_pii_counts_total(const struct dagi_pii_counts *c);
/* a += b */
void dagi_pii_counts_add(struct dagi_pii_counts *a, const struct dagi_pii_counts *b);

/* Appends text[0..len) to out with every finding replaced, and adds the
 * findings to *counts (may be NULL).  The output is never longer than
 * DAGI_PII_REDACTED_MAX(len).  All or nothing: DAGI_ETOOBIG when out's cap
 * would be passed, out as it was (counts untouched). */
int dagi_pii_redact(const char *text, size_t len, struct dagi_buf *out,
                    struct dagi_pii_counts *counts);

/* A placeholder can be longer than what it replaces ("[ip]" for "::1",
 * "[secret]" for a 3-byte password after "pwd:"), but never more than
 * 5 bytes longer for 7 of input: the bound for sizing an output buffer. */
#define DAGI_PII_REDACTED_MAX(len) (2 * (len) + 16)

/* The random-looking token rule on its own (exposed for tests and for the
 * benchmark's corpus): true when tok[0..n) - a run of [A-Za-z0-9+/=_-] -
 * would be replaced by [secret]. */
bool dagi_pii_looks_random(const char *tok, size_t n);

#endif
