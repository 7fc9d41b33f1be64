/* Signed webhooks: the X-Dagi-Signature header.
 *
 *   X-Dagi-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
 *
 * The timestamp is inside the MAC so a captured request cannot be replayed
 * outside the tolerance window.  Parsing rules, all strict but one:
 *
 *   - entries are key=value separated by commas; spaces and tabs around the
 *     commas are ignored, nowhere else; an empty entry or one without '=' is
 *     malformed;
 *   - exactly one t: decimal digits, no sign, no leading zero ("0" aside), 1..15
 *     digits.  The MAC covers t's text as sent, and one spelling per number
 *     keeps that text canonical;
 *   - any number of v1 entries (a sender rotating secrets sends one per
 *     secret); any one matching any configured secret passes.  Each must be
 *     exactly 64 LOWERCASE hex digits: uppercase, odd length or other
 *     characters make the whole header malformed (the sender, dagi_hooksig_sign,
 *     writes lowercase; one spelling per MAC);
 *   - unknown keys (v0, v2...) are ignored - the one lenient rule, so that a
 *     sender can add a newer scheme beside v1;
 *   - the value is capped at DAGI_HOOKSIG_MAX_HEADER bytes.
 *
 * MACs are compared in constant time; the body is MACed as raw bytes, exactly
 * as received (verify before parsing or re-encoding it). */
#ifndef DAGI_AUTH_HOOKSIG_H
#define DAGI_AUTH_HOOKSIG_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define DAGI_HOOKSIG_HEADER "X-Dagi-Signature"
#define DAGI_HOOKSIG_MAX_HEADER 1024
#define DAGI_HOOKSIG_DEFAULT_TOLERANCE_S 300
#define DAGI_HOOKSIG_MAX_SECRETS 8
#define DAGI_HOOKSIG_MIN_SECRET 16
/* The largest t: 15 digits. */
#define DAGI_HOOKSIG_MAX_T INT64_C(999999999999999)
/* "t=" + 15 digits + ",v1=" + 64 hex + NUL */
#define DAGI_HOOKSIG_SIGN_CAP (2 + 15 + 4 + 64 + 1)

/* A secret, borrowed from the caller (raw bytes, at least 16). */
struct dagi_hooksig_secret {
    const uint8_t *key;
    size_t len;
};

/* Writes the header value for `body` signed at `t` into out_header
 * (NUL-terminated; DAGI_HOOKSIG_SIGN_CAP is always enough).  Returns 0,
 * DAGI_EINVAL for a short secret or t outside 0..DAGI_HOOKSIG_MAX_T,
 * DAGI_ETOOBIG when out_cap is too small (DAGI_EUNAVAIL if libsodium cannot
 * initialise, as for verify). */
int dagi_hooksig_sign(const uint8_t *secret, size_t secret_len, int64_t t, const uint8_t *body,
                      size_t body_len, char *out_header, size_t out_cap);

/* Verifies `header` (the value, NUL-terminated) for `body` against 1..8
 * secrets (two during a rotation) at `now_s`, allowing |now_s - t| up to
 * tolerance_s (0 means DAGI_HOOKSIG_DEFAULT_TOLERANCE_S).  Returns 0,
 * DAGI_EPERM for a timestamp too old or in the future (checked first, so a
 * stale forgery costs no MAC) or for no matching signature, DAGI_EPARSE for a
 * malformed header, DAGI_ETOOBIG for a header over the cap, DAGI_EINVAL for
 * bad arguments, DAGI_EUNAVAIL if libsodium cannot initialise; `err` says
 * which.  Thread safe; nothing is allocated. */
int dagi_hooksig_verify(const char *header, const uint8_t *body, size_t len,
                        const struct dagi_hooksig_secret *secrets, size_t n_secrets, int64_t now_s,
                        int64_t tolerance_s, struct dagi_error *err);

#endif
