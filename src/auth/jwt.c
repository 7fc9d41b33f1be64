/* JWT verification; the rules are in jwt.h.  Layout: the key set, the JWS
 * layer (split, header, key choice, signature), the claims layer. */
#include "auth/jwt.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "auth/b64url.h"
#include "core/mem.h"

#define HS256_MAC_LEN 32
#define MAX_SIG_LEN (DAGI_JWT_MAX_RSA_BITS / 8)

struct jwt_key {
    char *kid; /* NULL: a key without kid */
    enum dagi_jwt_alg alg;
    uint8_t *secret; /* HS256 */
    size_t secret_len;
    EVP_PKEY *pkey; /* RS256 */
    size_t sig_len; /* the only signature length this key can verify */
};

struct dagi_jwt_keys {
    struct jwt_key keys[DAGI_JWT_MAX_KEYS];
    size_t count;
    enum dagi_jwt_alg missing_kid_alg; /* 0: kid-less tokens use kid-less keys */
};

const char *dagi_jwt_alg_name(enum dagi_jwt_alg alg)
{
    switch (alg) {
    case DAGI_JWT_HS256:
        return "HS256";
    case DAGI_JWT_RS256:
        return "RS256";
    }
    return "?";
}

/* Token text (alg, kid, typ) goes into error messages and from there into
 * logs: show a bounded, printable copy. */
static const char *shown(const char *s, char *buf, size_t cap)
{
    size_t n = 0;
    for (; s[n] && n + 4 < cap; n++)
        buf[n] = (s[n] >= 0x20 && s[n] < 0x7f) ? s[n] : '?';
    if (s[n]) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

static void key_label(const struct jwt_key *k, char *buf, size_t cap)
{
    if (k->kid)
        snprintf(buf, cap, "key %s", k->kid);
    else
        snprintf(buf, cap, "the key without kid");
}

/* --- the key set --- */

struct dagi_jwt_keys *dagi_jwt_keys_new(void)
{
    return dagi_xcalloc(1, sizeof(struct dagi_jwt_keys));
}

void dagi_jwt_keys_free(struct dagi_jwt_keys *keys)
{
    if (!keys)
        return;
    for (size_t i = 0; i < keys->count; i++) {
        struct jwt_key *k = &keys->keys[i];
        free(k->kid);
        if (k->secret) {
            OPENSSL_cleanse(k->secret, k->secret_len);
            free(k->secret);
        }
        EVP_PKEY_free(k->pkey);
    }
    OPENSSL_cleanse(keys, sizeof(*keys));
    free(keys);
}

size_t dagi_jwt_keys_count(const struct dagi_jwt_keys *keys)
{
    return keys ? keys->count : 0;
}

int dagi_jwt_keys_set_missing_kid_alg(struct dagi_jwt_keys *keys, enum dagi_jwt_alg alg)
{
    if (!keys || (alg != DAGI_JWT_HS256 && alg != DAGI_JWT_RS256))
        return DAGI_EINVAL;
    keys->missing_kid_alg = alg;
    return 0;
}

/* Checks that `kid` may join the set: well formed, unique, room left. */
static int admit_kid(const struct dagi_jwt_keys *keys, const char *kid, struct dagi_error *err)
{
    if (!keys)
        return dagi_error_set(err, DAGI_EINVAL, "jwt: no key set");
    if (kid) {
        size_t len = strlen(kid);
        if (len == 0 || len > DAGI_JWT_MAX_KID_LEN)
            return dagi_error_set(err, DAGI_EINVAL, "jwt: kid must be 1..%d characters",
                                  DAGI_JWT_MAX_KID_LEN);
        for (size_t i = 0; i < len; i++)
            if (kid[i] < 0x20 || kid[i] >= 0x7f)
                return dagi_error_set(err, DAGI_EINVAL, "jwt: kid must be printable ASCII");
        for (size_t i = 0; i < keys->count; i++)
            if (keys->keys[i].kid && strcmp(keys->keys[i].kid, kid) == 0)
                return dagi_error_set(err, DAGI_EEXIST, "jwt: duplicate kid %s", kid);
    }
    if (keys->count == DAGI_JWT_MAX_KEYS)
        return dagi_error_set(err, DAGI_ETOOBIG, "jwt: more than %d keys", DAGI_JWT_MAX_KEYS);
    return 0;
}

int dagi_jwt_keys_add_hs256(struct dagi_jwt_keys *keys, const char *kid, const uint8_t *secret,
                            size_t len, struct dagi_error *err)
{
    int rc = admit_kid(keys, kid, err);
    if (rc < 0)
        return rc;
    if (!secret || len < DAGI_JWT_MIN_HS256_SECRET || len > DAGI_JWT_MAX_HS256_SECRET)
        return dagi_error_set(err, DAGI_EINVAL, "jwt: %s%s: HS256 secret must be %d..%d bytes",
                              kid ? "key " : "key without kid", kid ? kid : "",
                              DAGI_JWT_MIN_HS256_SECRET, DAGI_JWT_MAX_HS256_SECRET);
    struct jwt_key *k = &keys->keys[keys->count++];
    memset(k, 0, sizeof(*k));
    k->kid = kid ? dagi_xstrdup(kid) : NULL;
    k->alg = DAGI_JWT_HS256;
    k->secret = dagi_xmalloc(len);
    memcpy(k->secret, secret, len);
    k->secret_len = len;
    k->sig_len = HS256_MAC_LEN;
    return 0;
}

int dagi_jwt_keys_add_rs256_pem(struct dagi_jwt_keys *keys, const char *kid, const char *pem,
                                struct dagi_error *err)
{
    int rc = admit_kid(keys, kid, err);
    if (rc < 0)
        return rc;
    const char *name = kid ? kid : "(no kid)";
    if (!pem)
        return dagi_error_set(err, DAGI_EINVAL, "jwt: key %s: no PEM", name);
    EVP_PKEY *pkey = NULL;
    BIO *bio = BIO_new_mem_buf(pem, -1);
    if (!bio) {
        rc = dagi_error_set(err, DAGI_ENOMEM, "jwt: key %s: BIO_new_mem_buf failed", name);
        goto out;
    }
    /* PUBKEY only: a PEM holding a private key or a certificate is a
     * configuration mistake worth hearing about. */
    pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    if (!pkey) {
        rc = dagi_error_set(err, DAGI_EPARSE,
                            "jwt: key %s: not a PEM public key (want BEGIN PUBLIC KEY)", name);
        goto out;
    }
    /* "RSA" and not "RSA-PSS": RS256 is PKCS#1 v1.5. */
    if (!EVP_PKEY_is_a(pkey, "RSA")) {
        rc = dagi_error_set(err, DAGI_EPARSE, "jwt: key %s: not an RSA key", name);
        goto out;
    }
    int bits = EVP_PKEY_get_bits(pkey);
    if (bits < DAGI_JWT_MIN_RSA_BITS || bits > DAGI_JWT_MAX_RSA_BITS) {
        rc = dagi_error_set(err, DAGI_EINVAL, "jwt: key %s: RSA key of %d bits, want %d..%d", name,
                            bits, DAGI_JWT_MIN_RSA_BITS, DAGI_JWT_MAX_RSA_BITS);
        goto out;
    }
    struct jwt_key *k = &keys->keys[keys->count++];
    memset(k, 0, sizeof(*k));
    k->kid = kid ? dagi_xstrdup(kid) : NULL;
    k->alg = DAGI_JWT_RS256;
    k->pkey = pkey;
    k->sig_len = (size_t)EVP_PKEY_get_size(pkey);
    pkey = NULL;
    rc = 0;
out:
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    ERR_clear_error(); /* leave no failure behind in this thread's queue */
    return rc;
}

/* --- the JWS layer --- */

/* Lengths are compared first: they are public (fixed by the key). */
static bool signature_ok(const struct jwt_key *k, const char *input, size_t input_len,
                         const uint8_t *sig, size_t sig_len)
{
    if (sig_len != k->sig_len)
        return false;
    if (k->alg == DAGI_JWT_HS256) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int mac_len = 0;
        bool ok = HMAC(EVP_sha256(), k->secret, (int)k->secret_len, (const unsigned char *)input,
                       input_len, mac, &mac_len) != NULL &&
                  mac_len == HS256_MAC_LEN && CRYPTO_memcmp(mac, sig, HS256_MAC_LEN) == 0;
        OPENSSL_cleanse(mac, sizeof(mac));
        return ok;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    bool ok = ctx && EVP_DigestVerifyInit(ctx, &pctx, EVP_sha256(), NULL, k->pkey) == 1 &&
              EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1 &&
              EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)input, input_len) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

/* The protected header's rules; sets *alg and *kid (kid NULL when absent). */
static int check_header(json_t *h, const char **alg, const char **kid, struct dagi_error *err)
{
    char buf[48];
    json_t *v = json_object_get(h, "alg");
    if (!json_is_string(v))
        return dagi_error_set(err, DAGI_EPARSE, "jwt: header: alg missing or not a string");
    *alg = json_string_value(v);
    if (strcasecmp(*alg, "none") == 0)
        return dagi_error_set(err, DAGI_EPERM, "jwt: alg none refused");
    if (json_object_get(h, "crit"))
        return dagi_error_set(err, DAGI_EPERM, "jwt: crit header refused");
    if (json_object_get(h, "cty"))
        return dagi_error_set(err, DAGI_EPERM, "jwt: cty header refused (no nested tokens)");
    v = json_object_get(h, "typ");
    if (v && !json_is_string(v))
        return dagi_error_set(err, DAGI_EPARSE, "jwt: header: typ not a string");
    if (v && strcasecmp(json_string_value(v), "JWT") != 0)
        return dagi_error_set(err, DAGI_EPERM, "jwt: typ %s refused",
                              shown(json_string_value(v), buf, sizeof(buf)));
    v = json_object_get(h, "kid");
    if (v && !json_is_string(v))
        return dagi_error_set(err, DAGI_EPARSE, "jwt: header: kid not a string");
    *kid = v ? json_string_value(v) : NULL;
    return 0;
}

/* Fills cand[] with the keys to try, per the rule in jwt.h. */
static int choose_keys(const struct dagi_jwt_keys *keys, const char *alg, const char *kid,
                       const struct jwt_key **cand, size_t *n_cand, struct dagi_error *err)
{
    char abuf[48], kbuf[48 + DAGI_JWT_MAX_KID_LEN];
    const struct jwt_key *refused = NULL;
    size_t n = 0;
    for (size_t i = 0; i < keys->count; i++) {
        const struct jwt_key *k = &keys->keys[i];
        bool eligible;
        if (kid)
            eligible = k->kid && strcmp(k->kid, kid) == 0;
        else if (keys->missing_kid_alg)
            eligible = k->alg == keys->missing_kid_alg;
        else
            eligible = k->kid == NULL;
        if (!eligible)
            continue;
        if (strcmp(alg, dagi_jwt_alg_name(k->alg)) == 0)
            cand[n++] = k;
        else
            refused = k;
    }
    if (n == 0 && refused) {
        key_label(refused, kbuf, sizeof(kbuf));
        return dagi_error_set(err, DAGI_EPERM, "jwt: alg %s not allowed for %s",
                              shown(alg, abuf, sizeof(abuf)), kbuf);
    }
    if (n == 0 && kid)
        return dagi_error_set(err, DAGI_EPERM, "jwt: unknown kid %s", shown(kid, kbuf, 48));
    if (n == 0)
        return dagi_error_set(err, DAGI_EPERM, "jwt: token has no kid and no key accepts that");
    *n_cand = n;
    return 0;
}

int dagi_jwt_verify_signature(const struct dagi_jwt_keys *keys, const char *token, size_t len,
                              size_t max_len, struct dagi_arena *arena,
                              struct dagi_jwt_verified *out, struct dagi_error *err)
{
    if (!keys || !token || !arena || !out || max_len == 0 || max_len > DAGI_JWT_MAX_TOKEN_LEN)
        return dagi_error_set(err, DAGI_EINVAL, "jwt: bad arguments");
    if (len > max_len)
        return dagi_error_set(err, DAGI_ETOOBIG, "jwt: token of %zu bytes, over the %zu-byte cap",
                              len, max_len);
    /* Exactly three parts: five would be a JWE, which we do not decrypt. */
    const char *end = token + len;
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1)) : NULL;
    if (!dot2 || memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1)))
        return dagi_error_set(err, DAGI_EPARSE, "jwt: want three dot-separated parts");
    if (dot1 == token)
        return dagi_error_set(err, DAGI_EPARSE, "jwt: empty header");

    json_t *h = NULL;
    int rc;
    uint8_t hdr[DAGI_B64URL_DECODED_MAX(DAGI_JWT_MAX_TOKEN_LEN)];
    size_t hdr_len = 0;
    if (dagi_b64url_decode(token, (size_t)(dot1 - token), hdr, sizeof(hdr), &hdr_len) != 0) {
        rc = dagi_error_set(err, DAGI_EPARSE, "jwt: header is not base64url");
        goto out;
    }
    json_error_t jerr;
    h = json_loadb((const char *)hdr, hdr_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(h)) {
        rc = dagi_error_set(err, DAGI_EPARSE, "jwt: header is not a JSON object");
        goto out;
    }
    const char *alg = NULL, *kid = NULL;
    if ((rc = check_header(h, &alg, &kid, err)) < 0)
        goto out;
    const struct jwt_key *cand[DAGI_JWT_MAX_KEYS];
    size_t n_cand = 0;
    if ((rc = choose_keys(keys, alg, kid, cand, &n_cand, err)) < 0)
        goto out;

    uint8_t sig[MAX_SIG_LEN];
    size_t sig_len = 0;
    rc = dagi_b64url_decode(dot2 + 1, (size_t)(end - dot2 - 1), sig, sizeof(sig), &sig_len);
    if (rc == DAGI_EPARSE) {
        rc = dagi_error_set(err, DAGI_EPARSE, "jwt: signature is not base64url");
        goto out;
    }
    /* A signature too long for any key (DAGI_ETOOBIG) tries no key at all. */
    const struct jwt_key *by = NULL;
    for (size_t i = 0; rc == 0 && i < n_cand && !by; i++)
        if (signature_ok(cand[i], token, (size_t)(dot2 - token), sig, sig_len))
            by = cand[i];
    if (!by) {
        rc = dagi_error_set(err, DAGI_EPERM, "jwt: bad signature");
        goto out;
    }

    /* Only now, signed by a key we hold, is the payload worth decoding. */
    size_t plen_b64 = (size_t)(dot2 - dot1 - 1), payload_len = 0;
    uint8_t *payload = dagi_arena_alloc(arena, DAGI_B64URL_DECODED_MAX(plen_b64) + 1);
    const char *by_kid = by->kid ? dagi_arena_strdup(arena, by->kid) : NULL;
    if (!payload || (by->kid && !by_kid)) {
        rc = dagi_error_set(err, DAGI_ETOOBIG, "jwt: arena cap reached");
        goto out;
    }
    if (dagi_b64url_decode(dot1 + 1, plen_b64, payload, DAGI_B64URL_DECODED_MAX(plen_b64),
                           &payload_len) != 0) {
        rc = dagi_error_set(err, DAGI_EPARSE, "jwt: payload is not base64url");
        goto out;
    }
    payload[payload_len] = '\0';
    out->payload = (const char *)payload;
    out->payload_len = payload_len;
    out->alg = by->alg;
    out->kid = by_kid;
    rc = 0;
out:
    json_decref(h);
    return rc;
}

/* --- the claims layer --- */

static int check_opts(const struct dagi_jwt_opts *o, struct dagi_error *err)
{
    if (!o || o->now_s < 0 || o->now_s > DAGI_JWT_MAX_NUMERIC_DATE || o->leeway_s < 0 ||
        o->leeway_s > DAGI_JWT_MAX_LEEWAY_S || o->max_len == 0 ||
        o->max_len > DAGI_JWT_MAX_TOKEN_LEN || (o->issuer && !*o->issuer) ||
        (o->audience && !*o->audience))
        return dagi_error_set(err, DAGI_EINVAL, "jwt: bad verification options");
    return 0;
}

void dagi_jwt_opts_init(struct dagi_jwt_opts *opts, int64_t now_s)
{
    memset(opts, 0, sizeof(*opts));
    opts->now_s = now_s;
    opts->leeway_s = DAGI_JWT_DEFAULT_LEEWAY_S;
    opts->require_exp = true;
    opts->max_len = DAGI_JWT_MAX_TOKEN_LEN;
}

/* A claim string into the arena: non-empty, capped, no control characters
 * (these strings name principals in logs and access decisions). */
static int take_text(json_t *v, const char *what, size_t max, struct dagi_arena *arena,
                     const char **out, struct dagi_error *err)
{
    if (!json_is_string(v))
        return dagi_error_set(err, DAGI_EPARSE, "jwt: claim %s: not a string", what);
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len == 0)
        return dagi_error_set(err, DAGI_EPARSE, "jwt: claim %s: empty", what);
    if (len > max)
        return dagi_error_set(err, DAGI_ETOOBIG, "jwt: claim %s: longer than %zu bytes", what, max);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return dagi_error_set(err, DAGI_EPARSE, "jwt: claim %s: control character", what);
    if (!(*out = dagi_arena_strndup(arena, s, len)))
        return dagi_error_set(err, DAGI_ETOOBIG, "jwt: arena cap reached");
    return 0;
}

static int take_string(json_t *c, const char *name, struct dagi_arena *arena, const char **out,
                       struct dagi_error *err)
{
    json_t *v = json_object_get(c, name);
    return v ? take_text(v, name, DAGI_JWT_MAX_STRING, arena, out, err) : 0;
}

/* A NumericDate.  Reals round toward refusal: exp down, nbf and iat up. */
static int take_date(json_t *c, const char *name, bool round_up, int64_t *out, bool *has,
                     struct dagi_error *err)
{
    json_t *v = json_object_get(c, name);
    if (!v)
        return 0;
    int64_t t;
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0 || i > DAGI_JWT_MAX_NUMERIC_DATE)
            return dagi_error_set(err, DAGI_EPARSE, "jwt: claim %s: out of range", name);
        t = (int64_t)i;
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!isfinite(d) || d < 0 || d > (double)DAGI_JWT_MAX_NUMERIC_DATE)
            return dagi_error_set(err, DAGI_EPARSE, "jwt: claim %s: out of range", name);
        t = (int64_t)(round_up ? ceil(d) : floor(d));
    } else {
        return dagi_error_set(err, DAGI_EPARSE, "jwt: claim %s: not a NumericDate", name);
    }
    *out = t;
    *has = true;
    return 0;
}

/* An array of strings (aud, roles) into the arena. */
static int take_list(json_t *arr, const char *name, size_t max_count, size_t max_len,
                     struct dagi_arena *arena, const char *const **out, size_t *count,
                     struct dagi_error *err)
{
    size_t n = json_array_size(arr);
    if (n > max_count)
        return dagi_error_set(err, DAGI_ETOOBIG, "jwt: claim %s: more than %zu entries", name,
                              max_count);
    if (n == 0)
        return 0;
    const char **list = dagi_arena_alloc(arena, n * sizeof(*list));
    if (!list)
        return dagi_error_set(err, DAGI_ETOOBIG, "jwt: arena cap reached");
    for (size_t i = 0; i < n; i++) {
        int rc = take_text(json_array_get(arr, i), name, max_len, arena, &list[i], err);
        if (rc < 0)
            return rc;
    }
    *out = list;
    *count = n;
    return 0;
}

static int take_aud(json_t *c, struct dagi_arena *arena, struct dagi_jwt_claims *cl,
                    struct dagi_error *err)
{
    json_t *v = json_object_get(c, "aud");
    if (!v)
        return 0;
    if (json_is_array(v)) {
        if (json_array_size(v) == 0)
            return dagi_error_set(err, DAGI_EPARSE, "jwt: claim aud: empty array");
        return take_list(v, "aud", DAGI_JWT_MAX_AUD, DAGI_JWT_MAX_STRING, arena, &cl->aud,
                         &cl->aud_count, err);
    }
    const char **one = dagi_arena_alloc(arena, sizeof(*one));
    if (!one)
        return dagi_error_set(err, DAGI_ETOOBIG, "jwt: arena cap reached");
    int rc = take_text(v, "aud", DAGI_JWT_MAX_STRING, arena, &one[0], err);
    if (rc < 0)
        return rc;
    cl->aud = one;
    cl->aud_count = 1;
    return 0;
}

/* Every claim's shape, before any policy: a malformed token reads as such. */
static int extract(json_t *c, struct dagi_arena *arena, struct dagi_jwt_claims *cl,
                   struct dagi_error *err)
{
    int rc;
    if ((rc = take_string(c, "sub", arena, &cl->sub, err)) < 0 ||
        (rc = take_string(c, "iss", arena, &cl->iss, err)) < 0 ||
        (rc = take_string(c, "jti", arena, &cl->jti, err)) < 0 ||
        (rc = take_string(c, "team", arena, &cl->team, err)) < 0 ||
        (rc = take_date(c, "exp", false, &cl->exp, &cl->has_exp, err)) < 0 ||
        (rc = take_date(c, "nbf", true, &cl->nbf, &cl->has_nbf, err)) < 0 ||
        (rc = take_date(c, "iat", true, &cl->iat, &cl->has_iat, err)) < 0 ||
        (rc = take_aud(c, arena, cl, err)) < 0)
        return rc;
    json_t *roles = json_object_get(c, "roles");
    if (roles && !json_is_array(roles))
        return dagi_error_set(err, DAGI_EPARSE, "jwt: claim roles: not an array");
    if (roles)
        return take_list(roles, "roles", DAGI_JWT_MAX_ROLES, DAGI_JWT_MAX_ROLE_LEN, arena,
                         &cl->roles, &cl->role_count, err);
    return 0;
}

/* The acceptance rules.  Times first, then who it is from and for, then who
 * it names.  now_s and every date are at most DAGI_JWT_MAX_NUMERIC_DATE and
 * leeway at most an hour, so the sums below cannot overflow. */
static int judge(const struct dagi_jwt_claims *cl, const struct dagi_jwt_opts *o,
                 struct dagi_error *err)
{
    if (!cl->has_exp && o->require_exp)
        return dagi_error_set(err, DAGI_EPERM, "jwt: token has no exp");
    /* RFC 7519 4.1.4: valid only while now is *before* exp. */
    if (cl->has_exp && o->now_s >= cl->exp + o->leeway_s)
        return dagi_error_set(err, DAGI_EPERM, "jwt: token expired at %lld", (long long)cl->exp);
    if (cl->has_nbf && o->now_s + o->leeway_s < cl->nbf)
        return dagi_error_set(err, DAGI_EPERM, "jwt: token not valid before %lld",
                              (long long)cl->nbf);
    /* Not required by the RFC; a token from the future means a broken issuer
     * clock or a forged timeline. */
    if (cl->has_iat && cl->iat > o->now_s + o->leeway_s)
        return dagi_error_set(err, DAGI_EPERM, "jwt: token issued in the future (iat %lld)",
                              (long long)cl->iat);
    if (o->issuer && !cl->iss)
        return dagi_error_set(err, DAGI_EPERM, "jwt: token has no iss");
    if (o->issuer && strcmp(o->issuer, cl->iss) != 0)
        return dagi_error_set(err, DAGI_EPERM, "jwt: issuer mismatch");
    if (o->audience) {
        bool found = false;
        for (size_t i = 0; i < cl->aud_count && !found; i++)
            found = strcmp(cl->aud[i], o->audience) == 0;
        if (cl->aud_count == 0)
            return dagi_error_set(err, DAGI_EPERM, "jwt: token has no aud");
        if (!found)
            return dagi_error_set(err, DAGI_EPERM, "jwt: audience mismatch");
    }
    if (!cl->sub)
        return dagi_error_set(err, DAGI_EPERM, "jwt: token has no sub");
    return 0;
}

int dagi_jwt_check_claims(const char *json, size_t len, const struct dagi_jwt_opts *opts,
                          struct dagi_arena *arena, struct dagi_jwt_claims *out,
                          struct dagi_error *err)
{
    int rc = check_opts(opts, err);
    if (rc < 0)
        return rc;
    if (!json || !arena || !out)
        return dagi_error_set(err, DAGI_EINVAL, "jwt: bad arguments");
    json_error_t jerr;
    json_t *c = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    struct dagi_jwt_claims cl = {0};
    if (!json_is_object(c)) {
        rc = dagi_error_set(err, DAGI_EPARSE, "jwt: claims are not a JSON object");
        goto out;
    }
    if ((rc = extract(c, arena, &cl, err)) < 0 || (rc = judge(&cl, opts, err)) < 0)
        goto out;
    *out = cl;
out:
    json_decref(c);
    return rc;
}

int dagi_jwt_verify(const struct dagi_jwt_keys *keys, const char *token, size_t len,
                    const struct dagi_jwt_opts *opts, struct dagi_arena *arena,
                    struct dagi_jwt_claims *out, struct dagi_error *err)
{
    int rc = check_opts(opts, err);
    if (rc < 0)
        return rc;
    struct dagi_jwt_verified v;
    struct dagi_jwt_claims cl;
    if ((rc = dagi_jwt_verify_signature(keys, token, len, opts->max_len, arena, &v, err)) < 0 ||
        (rc = dagi_jwt_check_claims(v.payload, v.payload_len, opts, arena, &cl, err)) < 0)
        return rc;
    cl.alg = v.alg;
    cl.kid = v.kid;
    *out = cl;
    return 0;
}
