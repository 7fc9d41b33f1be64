/* JWT verification: RFC 7519 tokens in the RFC 7515 compact JWS form,
 * signed HS256 (HMAC-SHA256) or RS256 (RSASSA-PKCS1-v1_5 with SHA-256).
 *
 * Verification only: dagi never issues these tokens, an identity provider
 * does.  The rules, all strict:
 *
 *   - The key pins the algorithm.  The header's "alg" must equal the chosen
 *     key's algorithm exactly; it never picks how to verify.  So an RS256 key
 *     can never be used as an HMAC secret (the key-confusion attack), and
 *     "none" - in any case - is always refused.
 *   - Key choice.  A token with "kid" is verified with the key of exactly that
 *     kid, or refused.  A token without "kid" is tried against the keys
 *     configured without a kid; after dagi_jwt_keys_set_missing_kid_alg(),
 *     against every key of that one algorithm instead.  Several candidates
 *     allow rotation; any one verifying is enough.
 *   - Header: "crit" is refused (we understand no extension), "cty" is refused
 *     (no nested JWTs), "typ" must be absent or "JWT" in any case.  Other
 *     header fields (jku, jwk, x5u, x5c...) are ignored: keys come from the
 *     configuration only, never from the token.
 *   - base64url without padding, canonical (see b64url.h); JSON objects with
 *     duplicate member names are refused (RFC 7515 section 5.2).
 *   - Claims: exp (required unless opts.require_exp is false), nbf and iat
 *     must hold at opts.now_s within opts.leeway_s; iss and aud must match
 *     when the options name them ("aud" may be a string or an array); "sub"
 *     is required.  exp/nbf/iat may be JSON integers or reals (RFC 7519
 *     NumericDate); reals round toward refusal.
 *   - dagi's principal: besides the registered claims dagi reads two claims of
 *     its own, "team" (a string) and "roles" (an array of strings).  They are
 *     dagi's claim names, not registered ones; identity providers must be
 *     configured to emit them.
 *   - Every string claim is non-empty, free of control characters and capped;
 *     over a cap is DAGI_ETOOBIG, the wrong JSON type DAGI_EPARSE.
 *
 * Errors: DAGI_EPERM when the token is well formed but not acceptable (bad
 * signature, alg, kid, expired, audience...), DAGI_EPARSE when malformed,
 * DAGI_ETOOBIG over a cap, DAGI_EINVAL for bad options; the dagi_error names
 * the reason ("token expired at 1700000000", "alg none refused").
 *
 * Threads: build a key set once, then verify from any number of threads. */
#ifndef DAGI_AUTH_JWT_H
#define DAGI_AUTH_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/err.h"

#define DAGI_JWT_MAX_KEYS 16
#define DAGI_JWT_MAX_KID_LEN 128
#define DAGI_JWT_MIN_HS256_SECRET 32 /* RFC 7518 3.2: a key as long as the hash */
#define DAGI_JWT_MAX_HS256_SECRET 1024
#define DAGI_JWT_MIN_RSA_BITS 2048
#define DAGI_JWT_MAX_RSA_BITS 8192
#define DAGI_JWT_MAX_TOKEN_LEN 8192 /* the hard cap; opts.max_len may lower it */
#define DAGI_JWT_DEFAULT_LEEWAY_S 30
#define DAGI_JWT_MAX_LEEWAY_S 3600
#define DAGI_JWT_MAX_STRING 256 /* sub, iss, jti, team, each aud entry */
#define DAGI_JWT_MAX_AUD 16
#define DAGI_JWT_MAX_ROLES 32
#define DAGI_JWT_MAX_ROLE_LEN 64
/* NumericDates (and opts.now_s) beyond 9999-12-31 are refused, so that adding
 * a leeway can never overflow. */
#define DAGI_JWT_MAX_NUMERIC_DATE INT64_C(253402300799)

enum dagi_jwt_alg {
    DAGI_JWT_HS256 = 1,
    DAGI_JWT_RS256 = 2,
};

/* "HS256", "RS256", or "?" */
const char *dagi_jwt_alg_name(enum dagi_jwt_alg alg);

/* --- the key set (heap object: new/free) --- */

struct dagi_jwt_keys;

struct dagi_jwt_keys *dagi_jwt_keys_new(void);
/* Wipes the secrets and frees everything; NULL is fine. */
void dagi_jwt_keys_free(struct dagi_jwt_keys *keys);

/* Adds an HS256 key; the secret (raw bytes, 32..1024) is copied.  `kid` may
 * be NULL (a key without kid); otherwise 1..128 printable ASCII characters,
 * unique in the set.  DAGI_EINVAL for a bad kid or secret, DAGI_EEXIST for a
 * duplicate kid, DAGI_ETOOBIG when the set holds DAGI_JWT_MAX_KEYS. */
int dagi_jwt_keys_add_hs256(struct dagi_jwt_keys *keys, const char *kid, const uint8_t *secret,
                            size_t len, struct dagi_error *err);
/* Adds an RS256 key from PEM text ("-----BEGIN PUBLIC KEY-----", an RSA
 * SubjectPublicKeyInfo of 2048..8192 bits).  Errors as above, plus
 * DAGI_EPARSE for PEM that is not an RSA public key. */
int dagi_jwt_keys_add_rs256_pem(struct dagi_jwt_keys *keys, const char *kid, const char *pem,
                                struct dagi_error *err);
/* Tokens without "kid" are then tried against every key of `alg` (with or
 * without a kid) instead of only the keys without a kid.  For identity
 * providers that rotate keys but do not send kid.  DAGI_EINVAL for an
 * unknown alg. */
int dagi_jwt_keys_set_missing_kid_alg(struct dagi_jwt_keys *keys, enum dagi_jwt_alg alg);
size_t dagi_jwt_keys_count(const struct dagi_jwt_keys *keys);

/* --- verification --- */

struct dagi_jwt_opts {
    const char *issuer;   /* expected "iss"; NULL: not checked */
    const char *audience; /* expected in "aud"; NULL: not checked */
    int64_t now_s;        /* the caller's clock, unix seconds */
    int64_t leeway_s;     /* clock skew allowed on exp/nbf/iat, 0..3600 */
    bool require_exp;     /* refuse tokens without "exp" */
    size_t max_len;       /* token length cap, 1..DAGI_JWT_MAX_TOKEN_LEN */
};

/* Defaults: no iss/aud check, leeway 30 s, exp required, 8 KiB. */
void dagi_jwt_opts_init(struct dagi_jwt_opts *opts, int64_t now_s);

/* A verified token's claims.  Strings and arrays live in the arena passed to
 * the verifier; optional claims absent are NULL / 0 with has_* false. */
struct dagi_jwt_claims {
    const char *sub; /* always set */
    const char *iss;
    const char *jti;
    const char *const *aud; /* aud_count entries; a string aud is one entry */
    size_t aud_count;
    int64_t exp, nbf, iat;
    bool has_exp, has_nbf, has_iat;
    const char *team;         /* dagi's claim */
    const char *const *roles; /* dagi's claim, role_count entries */
    size_t role_count;
    enum dagi_jwt_alg alg; /* how it was verified (0 from dagi_jwt_check_claims) */
    const char *kid;       /* the verifying key's kid; NULL for a key without one */
};

/* Verifies `token` (`len` bytes, no NUL needed) completely: signature, header
 * and claims.  This is the one to authenticate with.  On success fills *out
 * with strings allocated in `arena`; on failure *out is untouched (the arena
 * may hold partial allocations, freed with it). */
int dagi_jwt_verify(const struct dagi_jwt_keys *keys, const char *token, size_t len,
                    const struct dagi_jwt_opts *opts, struct dagi_arena *arena,
                    struct dagi_jwt_claims *out, struct dagi_error *err);

/* The two halves of dagi_jwt_verify, public for test vectors that are not
 * dagi principals (RFC 7515 A.1 has no "sub") and for the fuzz driver.
 *
 * dagi_jwt_verify_signature() checks the JWS layer only - length, header,
 * key choice, signature - and hands back the decoded payload (NUL-terminated,
 * in `arena`).  It checks NO claims: never authenticate with it alone. */
struct dagi_jwt_verified {
    const char *payload;
    size_t payload_len;
    enum dagi_jwt_alg alg;
    const char *kid; /* the verifying key's kid (in `arena`), NULL for a key without */
};
int dagi_jwt_verify_signature(const struct dagi_jwt_keys *keys, const char *token, size_t len,
                              size_t max_len, struct dagi_arena *arena,
                              struct dagi_jwt_verified *out, struct dagi_error *err);
/* Checks a claims set (JSON text) against `opts` and extracts it; out->alg and
 * out->kid are left 0/NULL. */
int dagi_jwt_check_claims(const char *json, size_t len, const struct dagi_jwt_opts *opts,
                          struct dagi_arena *arena, struct dagi_jwt_claims *out,
                          struct dagi_error *err);

#endif
