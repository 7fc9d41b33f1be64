/* JWT verification: the RFC 7515 A.1 vector, RS256 with keys made here, and
 * every refusal - alg none, key confusion, time, iss/aud, kid rotation,
 * tampering, base64url strictness, caps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "auth/b64url.h"
#include "auth/jwt.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/mem.h"

#define NOW INT64_C(1700000000)

static const uint8_t hs_secret[] = "0123456789abcdef0123456789abcdef";  /* 32 bytes + NUL */
static const uint8_t hs_secret2[] = "fedcba9876543210fedcba9876543210"; /* rotation */

static struct dagi_arena *arena;
static EVP_PKEY *rsa_a, *rsa_b; /* two RSA-2048 key pairs, made once */
static char *rsa_a_pem;         /* rsa_a's public key, PEM */

/* --- token making (the test's own signer, independent of jwt.c) --- */

struct signer {
    enum dagi_jwt_alg alg;
    const uint8_t *secret;
    size_t secret_len;
    EVP_PKEY *pkey;
};

static char *b64(const void *data, size_t n)
{
    size_t cap = DAGI_B64URL_ENCODED_LEN(n) + 1;
    char *out = dagi_xmalloc(cap);
    assert_int_equal(dagi_b64url_encode(data, n, out, cap), 0);
    return out;
}

/* input + "." + base64url(signature over input) */
static char *sign_input(const struct signer *s, const char *input)
{
    unsigned char sig[1024];
    size_t sig_len = sizeof(sig);
    if (s->alg == DAGI_JWT_HS256) {
        unsigned int n = 0;
        assert_non_null(HMAC(EVP_sha256(), s->secret, (int)s->secret_len,
                             (const unsigned char *)input, strlen(input), sig, &n));
        sig_len = n;
    } else {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, s->pkey), 1);
        assert_int_equal(
            EVP_DigestSign(ctx, sig, &sig_len, (const unsigned char *)input, strlen(input)), 1);
        EVP_MD_CTX_free(ctx);
    }
    char *sig64 = b64(sig, sig_len);
    char *token = dagi_xasprintf("%s.%s", input, sig64);
    free(sig64);
    return token;
}

static char *make_token(const struct signer *s, const char *header, const char *payload)
{
    char *h = b64(header, strlen(header)), *p = b64(payload, strlen(payload));
    char *input = dagi_xasprintf("%s.%s", h, p);
    char *token = sign_input(s, input);
    free(h);
    free(p);
    free(input);
    return token;
}

static const struct signer hs = {DAGI_JWT_HS256, hs_secret, 32, NULL};
static const struct signer hs2 = {DAGI_JWT_HS256, hs_secret2, 32, NULL};

static char *claims_json(const char *extra)
{
    return dagi_xasprintf("{\"sub\":\"alice\",\"exp\":%lld%s%s}", (long long)(NOW + 600),
                          extra ? "," : "", extra ? extra : "");
}

static struct dagi_jwt_keys *hs_keys(const char *kid)
{
    struct dagi_jwt_keys *keys = dagi_jwt_keys_new();
    assert_int_equal(dagi_jwt_keys_add_hs256(keys, kid, hs_secret, 32, NULL), 0);
    return keys;
}

static int verify(const struct dagi_jwt_keys *keys, const char *token,
                  const struct dagi_jwt_opts *opts, struct dagi_jwt_claims *cl,
                  struct dagi_error *err)
{
    memset(err, 0, sizeof(*err));
    return dagi_jwt_verify(keys, token, strlen(token), opts, arena, cl, err);
}

/* rc is `code` and the message says `text`. */
static void expect(int rc, int code, const struct dagi_error *err, const char *text)
{
    if (rc != code)
        fail_msg("rc %d (want %d): %s", rc, code, err->message);
    if (text && !strstr(err->message, text))
        fail_msg("message \"%s\" lacks \"%s\"", err->message, text);
}

/* Signs {header, payload} with `s`, verifies with `keys` at NOW, expects. */
static void check(const struct dagi_jwt_keys *keys, const struct signer *s, const char *header,
                  const char *payload, int code, const char *text)
{
    struct dagi_jwt_opts opts;
    dagi_jwt_opts_init(&opts, NOW);
    struct dagi_jwt_claims cl;
    struct dagi_error err;
    char *token = make_token(s, header, payload);
    expect(verify(keys, token, &opts, &cl, &err), code, &err, text);
    free(token);
}

/* --- RFC 7515 Appendix A.1 --- */

static const char a1_token[] = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
                               ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt"
                               "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
                               ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
static const char a1_k[] =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
static const char a1_payload[] =
    "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}";

static void test_rfc7515_a1(void **state)
{
    (void)state;
    uint8_t k[64];
    size_t k_len = 0;
    assert_int_equal(dagi_b64url_decode(a1_k, strlen(a1_k), k, sizeof(k), &k_len), 0);
    assert_int_equal(k_len, 64);
    struct dagi_jwt_keys *keys = dagi_jwt_keys_new();
    struct dagi_error err = {0};
    assert_int_equal(dagi_jwt_keys_add_hs256(keys, NULL, k, k_len, &err), 0);

    /* The JWS layer: the RFC's signature verifies, the payload is the RFC's. */
    struct dagi_jwt_verified v;
    assert_int_equal(dagi_jwt_verify_signature(keys, a1_token, strlen(a1_token),
                                               DAGI_JWT_MAX_TOKEN_LEN, arena, &v, &err),
                     0);
    assert_int_equal(v.payload_len, strlen(a1_payload));
    assert_memory_equal(v.payload, a1_payload, v.payload_len);
    assert_int_equal(v.alg, DAGI_JWT_HS256);
    assert_null(v.kid);

    /* The claims layer, at a time before the 2011 expiry: exp and iss "joe"
     * pass; the vector is no dagi principal (no sub), so the last rule refuses. */
    struct dagi_jwt_opts opts;
    dagi_jwt_opts_init(&opts, 1300819000);
    opts.issuer = "joe";
    struct dagi_jwt_claims cl;
    expect(verify(keys, a1_token, &opts, &cl, &err), DAGI_EPERM, &err, "token has no sub");
    opts.issuer = "bob";
    expect(verify(keys, a1_token, &opts, &cl, &err), DAGI_EPERM, &err, "issuer mismatch");
    opts.issuer = "joe";
    opts.now_s = 1300819380 + 30;
    expect(verify(keys, a1_token, &opts, &cl, &err), DAGI_EPERM, &err,
           "token expired at 1300819380");

    /* With a sub added, the rest of the payload checks out. */
    static const char with_sub[] = "{\"iss\":\"joe\",\"exp\":1300819380,\"sub\":\"joe\"}";
    opts.now_s = 1300819000;
    assert_int_equal(dagi_jwt_check_claims(with_sub, strlen(with_sub), &opts, arena, &cl, &err), 0);
    assert_string_equal(cl.iss, "joe");
    assert_int_equal(cl.exp, 1300819380);

    /* One signature character changed (not the last, whose low bits are
     * unused and must stay zero): refused. */
    char bad[sizeof(a1_token)];
    memcpy(bad, a1_token, sizeof(bad));
    bad[sizeof(bad) - 10] = bad[sizeof(bad) - 10] == 'k' ? 'l' : 'k';
    expect(
        dagi_jwt_verify_signature(keys, bad, strlen(bad), DAGI_JWT_MAX_TOKEN_LEN, arena, &v, &err),
        DAGI_EPERM, &err, "bad signature");
    dagi_jwt_keys_free(keys);
}

/* --- happy paths --- */

static void test_hs256_claims(void **state)
{
    (void)state;
    struct dagi_jwt_keys *keys = hs_keys("hs-1");
    char *payload = dagi_xasprintf(
        "{\"sub\":\"alice\",\"iss\":\"https://id.example\",\"aud\":[\"other\",\"dagi\"],"
        "\"exp\":%lld,\"nbf\":%lld,\"iat\":%lld,\"jti\":\"t-1\",\"team\":\"ops\","
        "\"roles\":[\"admin\",\"reader\"],\"extra\":{\"ignored\":true}}",
        (long long)(NOW + 600), (long long)(NOW - 10), (long long)(NOW - 10));
    char *token = make_token(&hs, "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"hs-1\"}", payload);
    struct dagi_jwt_opts opts;
    dagi_jwt_opts_init(&opts, NOW);
    opts.issuer = "https://id.example";
    opts.audience = "dagi";
    struct dagi_jwt_claims cl;
    struct dagi_error err;
    expect(verify(keys, token, &opts, &cl, &err), 0, &err, NULL);
    assert_string_equal(cl.sub, "alice");
    assert_string_equal(cl.iss, "https://id.example");
    assert_int_equal(cl.aud_count, 2);
    assert_string_equal(cl.aud[1], "dagi");
    assert_true(cl.has_exp && cl.has_nbf && cl.has_iat);
    assert_int_equal(cl.exp, NOW + 600);
    assert_int_equal(cl.nbf, NOW - 10);
    assert_string_equal(cl.jti, "t-1");
    assert_string_equal(cl.team, "ops");
    assert_int_equal(cl.role_count, 2);
    assert_string_equal(cl.roles[0], "admin");
    assert_string_equal(cl.roles[1], "reader");
    assert_int_equal(cl.alg, DAGI_JWT_HS256);
    assert_string_equal(cl.kid, "hs-1");
    free(token);
    free(payload);

    /* minimal: sub and exp only; typ in another case */
    payload = claims_json(NULL);
    token = make_token(&hs, "{\"typ\":\"jwt\",\"kid\":\"hs-1\",\"alg\":\"HS256\"}", payload);
    dagi_jwt_opts_init(&opts, NOW);
    expect(verify(keys, token, &opts, &cl, &err), 0, &err, NULL);
    assert_null(cl.iss);
    assert_null(cl.team);
    assert_int_equal(cl.aud_count, 0);
    assert_int_equal(cl.role_count, 0);
    assert_false(cl.has_nbf);
    free(token);
    free(payload);
    dagi_jwt_keys_free(keys);
}

static void test_rs256(void **state)
{
    (void)state;
    struct dagi_jwt_keys *keys = dagi_jwt_keys_new();
    struct dagi_error err = {0};
    assert_int_equal(dagi_jwt_keys_add_rs256_pem(keys, "rs-1", rsa_a_pem, &err), 0);
    const struct signer ra = {DAGI_JWT_RS256, NULL, 0, rsa_a};
    const struct signer rb = {DAGI_JWT_RS256, NULL, 0, rsa_b};
    char *payload = claims_json("\"roles\":[\"reader\"]");
    const char *header = "{\"alg\":\"RS256\",\"kid\":\"rs-1\"}";
    check(keys, &ra, header, payload, 0, NULL);
    /* signed by another RSA key */
    check(keys, &rb, header, payload, DAGI_EPERM, "bad signature");

    /* tampered payload under a valid signature */
    char *token = make_token(&ra, header, payload);
    char *other = claims_json("\"roles\":[\"admin\"]");
    char *h64 = b64(header, strlen(header)), *p64 = b64(other, strlen(other));
    const char *sig = strrchr(token, '.') + 1;
    char *forged = dagi_xasprintf("%s.%s.%s", h64, p64, sig);
    struct dagi_jwt_opts opts;
    dagi_jwt_opts_init(&opts, NOW);
    struct dagi_jwt_claims cl;
    expect(verify(keys, forged, &opts, &cl, &err), DAGI_EPERM, &err, "bad signature");
    /* a signature one byte short */
    uint8_t raw[512];
    size_t raw_len = 0;
    assert_int_equal(dagi_b64url_decode(sig, strlen(sig), raw, sizeof(raw), &raw_len), 0);
    assert_int_equal(raw_len, 256);
    char *short64 = b64(raw, raw_len - 1);
    char *cut = dagi_xasprintf("%.*s%s", (int)(sig - token), token, short64);
    free(short64);
    expect(verify(keys, cut, &opts, &cl, &err), DAGI_EPERM, &err, "bad signature");
    expect(verify(keys, token, &opts, &cl, &err), 0, &err, NULL);
    assert_string_equal(cl.kid, "rs-1");
    assert_int_equal(cl.alg, DAGI_JWT_RS256);
    free(cut);
    free(forged);
    free(h64);
    free(p64);
    free(other);
    free(token);
    free(payload);
    dagi_jwt_keys_free(keys);
}

/* --- the algorithm --- */

static void test_alg_none(void **state)
{
    (void)state;
    struct dagi_jwt_keys *keys = hs_keys(NULL);
    char *payload = claims_json(NULL);
    char *p64 = b64(payload, strlen(payload));
    static const char *const nones[] = {"{\"alg\":\"none\"}", "{\"alg\":\"NONE\"}",
                                        "{\"alg\":\"nOnE\",\"typ\":\"JWT\"}"};
    struct dagi_jwt_opts opts;
    dagi_jwt_opts_init(&opts, NOW);
    struct dagi_jwt_claims cl;
    struct dagi_error err;
    for (size_t i = 0; i < DAGI_ARRAY_LEN(nones); i++) {
        char *h64 = b64(nones[i], strlen(nones[i]));
        char *unsigned_token = dagi_xasprintf("%s.%s.", h64, p64);
        expect(verify(keys, unsigned_token, &opts, &cl, &err), DAGI_EPERM, &err,
               "alg none refused");
        free(unsigned_token);
        free(h64);
        /* and with an HMAC signature attached, still refused */
        check(keys, &hs, nones[i], payload, DAGI_EPERM, "alg none refused");
    }
    /* an algorithm we do not know, and one differing only in case */
    check(keys, &hs, "{\"alg\":\"HS512\"}", payload, DAGI_EPERM, "alg HS512 not allowed");
    check(keys, &hs, "{\"alg\":\"hs256\"}", payload, DAGI_EPERM, "alg hs256 not allowed");
    free(p64);
    free(payload);
    dagi_jwt_keys_free(keys);
}

/* The classic attack: the RS256 public key is public, so an attacker MACs a
 * token with the PEM text as HMAC secret and says alg HS256. */
static void test_key_confusion(void **state)
{
    (void)state;
    const struct signer pem_as_secret = {DAGI_JWT_HS256, (const uint8_t *)rsa_a_pem,
                                         strlen(rsa_a_pem), NULL};
    char *payload = claims_json(NULL);
    struct dagi_jwt_keys *keys = dagi_jwt_keys_new();
    assert_int_equal(dagi_jwt_keys_add_rs256_pem(keys, "rs-1", rsa_a_pem, NULL), 0);
    check(keys, &pem_as_secret, "{\"alg\":\"HS256\",\"kid\":\"rs-1\"}", payload, DAGI_EPERM,
          "alg HS256 not allowed for key rs-1");
    dagi_jwt_keys_free(keys);

    keys = dagi_jwt_keys_new();
    assert_int_equal(dagi_jwt_keys_add_rs256_pem(keys, NULL, rsa_a_pem, NULL), 0);
    check(keys, &pem_as_secret, "{\"alg\":\"HS256\"}", payload, DAGI_EPERM,
          "alg HS256 not allowed for the key without kid");
    dagi_jwt_keys_free(keys);

    /* and the other way round: an HS256 key never verifies RS256 */
    keys = hs_keys("hs-1");
    const struct signer ra = {DAGI_JWT_RS256, NULL, 0, rsa_a};
    check(keys, &ra, "{\"alg\":\"RS256\",\"kid\":\"hs-1\"}", payload, DAGI_EPERM,
          "alg RS256 not allowed for key hs-1");
    dagi_jwt_keys_free(keys);
    free(payload);
}

/* --- time --- */

static void test_exp_leeway(void **state)
{
    (void)state;
    struct dagi_jwt_keys *keys = hs_keys(NULL);
    const char *header = "{\"alg\":\"HS256\"}";
    char *p;
    /* expired 29 s ago: inside the 30 s leeway */
    p = dagi_xasprintf("{\"sub\":\"a\",\"exp\":%lld}", (long long)(NOW - 29));
    check(keys, &hs, header, p, 0, NULL);
    free(p);
    /* exactly at the leeway's end: RFC 7519 wants now strictly before exp */
    p = dagi_xasprintf("{\"sub\":\"a\",\"exp\":%lld}", (long long)(NOW - 30));
    check(keys, &hs, header, p, DAGI_EPERM, "token expired at 1699999970");
    free(p);
    p = dagi_xasprintf("{\"sub\":\"a\",\"exp\":%lld}", (long long)(NOW - 31));
    check(keys, &hs, header, p, DAGI_EPERM, "token expired at 1699999969");
    free(p);
    /* a real NumericDate rounds toward refusal: 1699999970.9 is 1699999970 */
    p = dagi_xasprintf("{\"sub\":\"a\",\"exp\":%lld.9}", (long long)(NOW - 30));
    check(keys, &hs, header, p, DAGI_EPERM, "token expired at 1699999970");
    free(p);

    /* no exp: refused unless the caller says so */
    check(keys, &hs, header, "{\"sub\":\"a\"}", DAGI_EPERM, "token has no exp");
    char *token = make_token(&hs, header, "{\"sub\":\"a\"}");
    struct dagi_jwt_opts opts;
    dagi_jwt_opts_init(&opts, NOW);
    opts.require_exp = false;
    struct dagi_jwt_claims cl;
    struct dagi_error err;
    expect(verify(keys, token, &opts, &cl, &err), 0, &err, NULL);
    assert_false(cl.has_exp);
    free(token);

    /* leeway 0 */
    p = dagi_xasprintf("{\"sub\":\"a\",\"exp\":%lld}", (long long)NOW);
    token = make_token(&hs, header, p);
    opts.leeway_s = 0;
    expect(verify(keys, token, &opts, &cl, &err), DAGI_EPERM, &err, "expired");
    opts.now_s = NOW - 1;
    expect(verify(keys, token, &opts, &cl, &err), 0, &err, NULL);
    /* options out of range */
    opts.leeway_s = -1;
    expect(verify(keys, token, &opts, &cl, &err), DAGI_EINVAL, &err, NULL);
    opts.leeway_s = 30;
    opts.now_s = -5;
    expect(verify(keys, token, &opts, &cl, &err), DAGI_EINVAL, &err, NULL);
    free(token);
    free(p);
    dagi_jwt_keys_free(keys);
}

static void test_nbf_iat(void **state)
{
    (void)state;
    struct dagi_jwt_keys *keys = hs_keys(NULL);
    const char *header = "{\"alg\":\"HS256\"}";
    char *p;
    p = claims_json("\"nbf\":1700000031");
    check(keys, &hs, header, p, DAGI_EPERM, "token not valid before 1700000031");
    free(p);
    p = claims_json("\"nbf\":1700000030");
    check(keys, &hs, header, p, 0, NULL);
    free(p);
    p = claims_json("\"nbf\":1700000030.5"); /* rounds up, to 31 */
    check(keys, &hs, header, p, DAGI_EPERM, "not valid before 1700000031");
    free(p);
    p = claims_json("\"iat\":1700003600");
    check(keys, &hs, header, p, DAGI_EPERM, "issued in the future");
    free(p);
    p = claims_json("\"iat\":1699990000");
    check(keys, &hs, header, p, 0, NULL);
    free(p);
    dagi_jwt_keys_free(keys);
}

/* --- issuer and audience --- */

static void check_iss_aud(const struct dagi_jwt_keys *keys, const char *extra, const char *iss,
                          const char *aud, int code, const char *text)
{
    char *p = claims_json(extra);
    char *token = make_token(&hs, "{\"alg\":\"HS256\"}", p);
    struct dagi_jwt_opts opts;
    dagi_jwt_opts_init(&opts, NOW);
    opts.issuer = iss;
    opts.audience = aud;
    struct dagi_jwt_claims cl;
    struct dagi_error err;
    expect(verify(keys, token, &opts, &cl, &err), code, &err, text);
    free(token);
    free(p);
}

static void test_iss_aud(void **state)
{
    (void)state;
    struct dagi_jwt_keys *keys = hs_keys(NULL);
    check_iss_aud(keys, "\"iss\":\"good\"", "good", NULL, 0, NULL);
    check_iss_aud(keys, "\"iss\":\"evil\"", "good", NULL, DAGI_EPERM, "issuer mismatch");
    check_iss_aud(keys, "\"iss\":\"goodx\"", "good", NULL, DAGI_EPERM, "issuer mismatch");
    check_iss_aud(keys, NULL, "good", NULL, DAGI_EPERM, "token has no iss");
    check_iss_aud(keys, "\"iss\":\"anyone\"", NULL, NULL, 0, NULL);

    check_iss_aud(keys, "\"aud\":\"dagi\"", NULL, "dagi", 0, NULL);
    check_iss_aud(keys, "\"aud\":\"other\"", NULL, "dagi", DAGI_EPERM, "audience mismatch");
    check_iss_aud(keys, "\"aud\":[\"a\",\"dagi\",\"b\"]", NULL, "dagi", 0, NULL);
    check_iss_aud(keys, "\"aud\":[\"a\",\"b\"]", NULL, "dagi", DAGI_EPERM, "audience mismatch");
    check_iss_aud(keys, NULL, NULL, "dagi", DAGI_EPERM, "token has no aud");
    check_iss_aud(keys, "\"aud\":[]", NULL, "dagi", DAGI_EPARSE, "aud: empty array");
    check_iss_aud(keys, "\"aud\":[\"dagi\",7]", NULL, "dagi", DAGI_EPARSE, "not a string");
    check_iss_aud(keys, "\"aud\":7", NULL, "dagi", DAGI_EPARSE, "not a string");
    check_iss_aud(keys, "\"iss\":\"good\",\"aud\":\"dagi\"", "good", "dagi", 0, NULL);
    dagi_jwt_keys_free(keys);
}

/* --- keys --- */

static void test_kid_rotation(void **state)
{
    (void)state;
    struct dagi_jwt_keys *keys = dagi_jwt_keys_new();
    assert_int_equal(dagi_jwt_keys_add_hs256(keys, "2023", hs_secret, 32, NULL), 0);
    assert_int_equal(dagi_jwt_keys_add_hs256(keys, "2024", hs_secret2, 32, NULL), 0);
    assert_int_equal(dagi_jwt_keys_add_rs256_pem(keys, "rsa", rsa_a_pem, NULL), 0);
    assert_int_equal(dagi_jwt_keys_count(keys), 3);
    char *p = claims_json(NULL);
    struct dagi_jwt_opts opts;
    dagi_jwt_opts_init(&opts, NOW);
    struct dagi_jwt_claims cl;
    struct dagi_error err;

    char *old = make_token(&hs, "{\"alg\":\"HS256\",\"kid\":\"2023\"}", p);
    char *cur = make_token(&hs2, "{\"alg\":\"HS256\",\"kid\":\"2024\"}", p);
    expect(verify(keys, old, &opts, &cl, &err), 0, &err, NULL);
    assert_string_equal(cl.kid, "2023");
    expect(verify(keys, cur, &opts, &cl, &err), 0, &err, NULL);
    assert_string_equal(cl.kid, "2024");
    free(old);
    free(cur);
    /* the kid picks one key: the old key's MAC under the new kid fails */
    check(keys, &hs, "{\"alg\":\"HS256\",\"kid\":\"2024\"}", p, DAGI_EPERM, "bad signature");
    check(keys, &hs, "{\"alg\":\"HS256\",\"kid\":\"2025\"}", p, DAGI_EPERM, "unknown kid 2025");
    check(keys, &hs, "{\"alg\":\"HS256\",\"kid\":\"\\u00e9\\n\"}", p, DAGI_EPERM, "unknown kid ??");
    check(keys, &hs, "{\"alg\":\"HS256\",\"kid\":7}", p, DAGI_EPARSE, "kid not a string");
    /* no kid, and no key without one: refused */
    check(keys, &hs, "{\"alg\":\"HS256\"}", p, DAGI_EPERM, "no kid");
    /* unless kid-less tokens are pinned to HS256: each HS256 key is tried */
    assert_int_equal(dagi_jwt_keys_set_missing_kid_alg(keys, DAGI_JWT_HS256), 0);
    check(keys, &hs, "{\"alg\":\"HS256\"}", p, 0, NULL);
    check(keys, &hs2, "{\"alg\":\"HS256\"}", p, 0, NULL);
    const struct signer ra = {DAGI_JWT_RS256, NULL, 0, rsa_a};
    check(keys, &ra, "{\"alg\":\"RS256\"}", p, DAGI_EPERM, "alg RS256 not allowed");
    dagi_jwt_keys_free(keys);

    /* several keys without kid: each is tried, kid'd tokens find none */
    keys = dagi_jwt_keys_new();
    assert_int_equal(dagi_jwt_keys_add_hs256(keys, NULL, hs_secret, 32, NULL), 0);
    assert_int_equal(dagi_jwt_keys_add_hs256(keys, NULL, hs_secret2, 32, NULL), 0);
    check(keys, &hs, "{\"alg\":\"HS256\"}", p, 0, NULL);
    check(keys, &hs2, "{\"alg\":\"HS256\"}", p, 0, NULL);
    check(keys, &hs, "{\"alg\":\"HS256\",\"kid\":\"2023\"}", p, DAGI_EPERM, "unknown kid 2023");
    dagi_jwt_keys_free(keys);
    free(p);
}

static char *pem_of(EVP_PKEY *pkey, bool private_key)
{
    BIO *bio = BIO_new(BIO_s_mem());
    if (private_key)
        assert_int_equal(PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL), 1);
    else
        assert_int_equal(PEM_write_bio_PUBKEY(bio, pkey), 1);
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    char *pem = dagi_xstrndup(data, (size_t)n);
    BIO_free(bio);
    return pem;
}

static void test_key_config(void **state)
{
    (void)state;
    struct dagi_jwt_keys *keys = dagi_jwt_keys_new();
    struct dagi_error err;
    expect(dagi_jwt_keys_add_hs256(keys, "short", hs_secret, 31, &err), DAGI_EINVAL, &err,
           "32..1024 bytes");
    expect(dagi_jwt_keys_add_hs256(keys, "", hs_secret, 32, &err), DAGI_EINVAL, &err, "kid");
    expect(dagi_jwt_keys_add_hs256(keys, "tab\there", hs_secret, 32, &err), DAGI_EINVAL, &err,
           "printable");
    expect(dagi_jwt_keys_add_hs256(keys, "a", hs_secret, 32, &err), 0, &err, NULL);
    expect(dagi_jwt_keys_add_hs256(keys, "a", hs_secret2, 32, &err), DAGI_EEXIST, &err, "a");
    expect(dagi_jwt_keys_add_rs256_pem(keys, "a", rsa_a_pem, &err), DAGI_EEXIST, &err, NULL);
    expect(dagi_jwt_keys_add_rs256_pem(keys, "junk", "not a pem", &err), DAGI_EPARSE, &err,
           "not a PEM public key");
    /* a private key where a public one belongs */
    char *priv = pem_of(rsa_a, true);
    expect(dagi_jwt_keys_add_rs256_pem(keys, "priv", priv, &err), DAGI_EPARSE, &err,
           "not a PEM public key");
    free(priv);
    /* too small, and not RSA */
    EVP_PKEY *small = EVP_RSA_gen(1024), *ec = EVP_EC_gen("P-256");
    assert_non_null(small);
    assert_non_null(ec);
    char *small_pem = pem_of(small, false), *ec_pem = pem_of(ec, false);
    expect(dagi_jwt_keys_add_rs256_pem(keys, "small", small_pem, &err), DAGI_EINVAL, &err,
           "1024 bits");
    expect(dagi_jwt_keys_add_rs256_pem(keys, "ec", ec_pem, &err), DAGI_EPARSE, &err,
           "not an RSA key");
    free(small_pem);
    free(ec_pem);
    EVP_PKEY_free(small);
    EVP_PKEY_free(ec);
    assert_int_equal(dagi_jwt_keys_count(keys), 1);
    /* the cap */
    for (int i = 1; i < DAGI_JWT_MAX_KEYS; i++) {
        char kid[16];
        snprintf(kid, sizeof(kid), "k%d", i);
        assert_int_equal(dagi_jwt_keys_add_hs256(keys, kid, hs_secret, 32, NULL), 0);
    }
    expect(dagi_jwt_keys_add_hs256(keys, "one-more", hs_secret, 32, &err), DAGI_ETOOBIG, &err,
           NULL);
    assert_int_equal(dagi_jwt_keys_set_missing_kid_alg(keys, (enum dagi_jwt_alg)7), DAGI_EINVAL);
    dagi_jwt_keys_free(keys);
    dagi_jwt_keys_free(NULL);
}

/* --- malformed tokens --- */

static void test_header_rules(void **state)
{
    (void)state;
    struct dagi_jwt_keys *keys = hs_keys(NULL);
    char *p = claims_json(NULL);
    check(keys, &hs, "{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", p, DAGI_EPERM,
          "crit header refused");
    check(keys, &hs, "{\"alg\":\"HS256\",\"cty\":\"JWT\"}", p, DAGI_EPERM, "cty");
    check(keys, &hs, "{\"alg\":\"HS256\",\"typ\":\"JOSE\"}", p, DAGI_EPERM, "typ JOSE refused");
    check(keys, &hs, "{\"alg\":\"HS256\",\"typ\":1}", p, DAGI_EPARSE, "typ");
    check(keys, &hs, "{\"alg\":\"HS256\",\"alg\":\"HS256\"}", p, DAGI_EPARSE, "not a JSON");
    check(keys, &hs, "{\"typ\":\"JWT\"}", p, DAGI_EPARSE, "alg missing");
    check(keys, &hs, "{\"alg\":256}", p, DAGI_EPARSE, "alg missing or not a string");
    check(keys, &hs, "[\"HS256\"]", p, DAGI_EPARSE, "header is not a JSON object");
    check(keys, &hs, "{\"alg\":\"HS256\"", p, DAGI_EPARSE, "header is not a JSON object");
    /* keys offered by the token are ignored, never used */
    check(keys, &hs, "{\"alg\":\"HS256\",\"jku\":\"https://evil/\",\"jwk\":{}}", p, 0, NULL);
    free(p);
    dagi_jwt_keys_free(keys);
}

static void test_bad_base64url(void **state)
{
    (void)state;
    struct dagi_jwt_keys *keys = hs_keys(NULL);
    char *p = claims_json(NULL);
    char *good = make_token(&hs, "{\"alg\":\"HS256\"}", p);
    struct dagi_jwt_opts opts;
    dagi_jwt_opts_init(&opts, NOW);
    struct dagi_jwt_claims cl;
    struct dagi_error err;
    expect(verify(keys, good, &opts, &cl, &err), 0, &err, NULL);
    const char *dot2 = strrchr(good, '.');
    size_t h_len = (size_t)(strchr(good, '.') - good), hp_len = (size_t)(dot2 - good);
    size_t end = strlen(good);

    /* padding or stray characters, inserted at the end of a part */
    const struct {
        size_t at;
        const char *insert;
    } bad[] = {
        {h_len, "="},  {h_len, "=="}, {end, "="},   {h_len, " "},
        {h_len, "\n"}, {0, " "},      {h_len, "+"}, {end, "/"},
    };
    for (size_t i = 0; i < DAGI_ARRAY_LEN(bad); i++) {
        char *t = dagi_xasprintf("%.*s%s%s", (int)bad[i].at, good, bad[i].insert, good + bad[i].at);
        expect(verify(keys, t, &opts, &cl, &err), DAGI_EPARSE, &err, "not base64url");
        free(t);
    }
    /* the payload padded, and signed as such: still refused */
    char *input = dagi_xasprintf("%.*s=", (int)hp_len, good);
    char *padded = sign_input(&hs, input);
    expect(verify(keys, padded, &opts, &cl, &err), DAGI_EPARSE, &err, "payload is not base64url");
    free(padded);
    free(input);
    /* non-canonical: the last signature character with its unused bits set
     * (43 characters carry 258 bits for 256; 'A' -> 'B' sets one of them) */
    char *nc = dagi_xstrdup(good);
    char *last = nc + strlen(nc) - 1;
    static const char b64chars[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    *last = b64chars[(strchr(b64chars, *last) - b64chars) ^ 1];
    expect(verify(keys, nc, &opts, &cl, &err), DAGI_EPARSE, &err, "signature is not base64url");
    free(nc);

    /* parts */
    static const char *const shapes[] = {"", ".", "..", "...", "a.b", "a.b.c.d", ".e30.", "abc"};
    for (size_t i = 0; i < DAGI_ARRAY_LEN(shapes); i++)
        expect(verify(keys, shapes[i], &opts, &cl, &err), DAGI_EPARSE, &err, NULL);
    /* a JWE (five parts) */
    char *jwe = dagi_xasprintf("%s.x.y", good);
    expect(verify(keys, jwe, &opts, &cl, &err), DAGI_EPARSE, &err, "three");
    free(jwe);
    /* no signature at all */
    char *nosig = dagi_xasprintf("%.*s.", (int)hp_len, good);
    expect(verify(keys, nosig, &opts, &cl, &err), DAGI_EPERM, &err, "bad signature");
    free(nosig);
    /* a NUL inside the given length */
    char *nul = dagi_xstrdup(good);
    nul[3] = '\0';
    expect(dagi_jwt_verify(keys, nul, end, &opts, arena, &cl, &err), DAGI_EPARSE, &err, NULL);
    free(nul);
    free(good);
    free(p);
    dagi_jwt_keys_free(keys);
}

static void test_tampered(void **state)
{
    (void)state;
    struct dagi_jwt_keys *keys = hs_keys(NULL);
    char *p = claims_json(NULL);
    char *good = make_token(&hs, "{\"alg\":\"HS256\"}", p);
    struct dagi_jwt_opts opts;
    dagi_jwt_opts_init(&opts, NOW);
    struct dagi_jwt_claims cl;
    struct dagi_error err;
    /* each character of header and payload changed in turn */
    size_t upto = (size_t)(strrchr(good, '.') - good);
    for (size_t i = 0; i < upto; i++) {
        if (good[i] == '.')
            continue;
        char *t = dagi_xstrdup(good);
        t[i] = t[i] == 'A' ? 'Q' : 'A';
        int rc = verify(keys, t, &opts, &cl, &err);
        if (rc != DAGI_EPERM && rc != DAGI_EPARSE)
            fail_msg("tampered at %zu: rc %d", i, rc);
        free(t);
    }
    /* the payload swapped for another, same header and signature */
    char *other = dagi_xasprintf("{\"sub\":\"mallory\",\"exp\":%lld}", (long long)(NOW + 600));
    char *p64 = b64(other, strlen(other));
    const char *dot1 = strchr(good, '.'), *dot2 = strrchr(good, '.');
    char *forged = dagi_xasprintf("%.*s.%s%s", (int)(dot1 - good), good, p64, dot2);
    expect(verify(keys, forged, &opts, &cl, &err), DAGI_EPERM, &err, "bad signature");
    free(forged);
    free(p64);
    free(other);
    free(good);
    free(p);
    dagi_jwt_keys_free(keys);
}

static void test_over_length(void **state)
{
    (void)state;
    struct dagi_jwt_keys *keys = hs_keys(NULL);
    struct dagi_jwt_opts opts;
    dagi_jwt_opts_init(&opts, NOW);
    struct dagi_jwt_claims cl;
    struct dagi_error err;
    /* a valid token with a large claim: 8193 bytes refused before parsing */
    char filler[6500];
    memset(filler, 'x', sizeof(filler) - 1);
    filler[sizeof(filler) - 1] = '\0';
    char *extra = dagi_xasprintf("\"pad\":\"%s\"", filler);
    char *p = claims_json(extra);
    char *token = make_token(&hs, "{\"alg\":\"HS256\"}", p);
    assert_true(strlen(token) > DAGI_JWT_MAX_TOKEN_LEN);
    expect(verify(keys, token, &opts, &cl, &err), DAGI_ETOOBIG, &err, "8192-byte cap");
    free(token);
    free(p);
    free(extra);
    /* at most the cap: fine; a caller's lower cap holds */
    char *small = claims_json(NULL);
    token = make_token(&hs, "{\"alg\":\"HS256\"}", small);
    expect(verify(keys, token, &opts, &cl, &err), 0, &err, NULL);
    opts.max_len = strlen(token) - 1;
    expect(verify(keys, token, &opts, &cl, &err), DAGI_ETOOBIG, &err, NULL);
    opts.max_len = DAGI_JWT_MAX_TOKEN_LEN + 1;
    expect(verify(keys, token, &opts, &cl, &err), DAGI_EINVAL, &err, NULL);
    free(token);
    free(small);
    dagi_jwt_keys_free(keys);
}

/* --- claim shapes (through the claims layer directly) --- */

static int claims(const char *json, struct dagi_jwt_claims *cl, struct dagi_error *err)
{
    struct dagi_jwt_opts opts;
    dagi_jwt_opts_init(&opts, NOW);
    opts.require_exp = false;
    memset(err, 0, sizeof(*err));
    return dagi_jwt_check_claims(json, strlen(json), &opts, arena, cl, err);
}

static void test_missing_sub_and_shapes(void **state)
{
    (void)state;
    struct dagi_jwt_claims cl;
    struct dagi_error err;
    /* through the whole verifier */
    struct dagi_jwt_keys *keys = hs_keys(NULL);
    check(keys, &hs, "{\"alg\":\"HS256\"}", "{\"exp\":1700000600,\"team\":\"ops\"}", DAGI_EPERM,
          "token has no sub");
    dagi_jwt_keys_free(keys);

    expect(claims("{\"sub\":\"\"}", &cl, &err), DAGI_EPARSE, &err, "sub: empty");
    expect(claims("{\"sub\":42}", &cl, &err), DAGI_EPARSE, &err, "sub: not a string");
    expect(claims("{\"sub\":null}", &cl, &err), DAGI_EPARSE, &err, "sub: not a string");
    expect(claims("{\"sub\":\"a\\u0007b\"}", &cl, &err), DAGI_EPARSE, &err, "control");
    expect(claims("{\"sub\":\"a\",\"sub\":\"b\"}", &cl, &err), DAGI_EPARSE, &err, NULL);
    expect(claims("{\"sub\":\"a\\u0000b\"}", &cl, &err), DAGI_EPARSE, &err, NULL);
    expect(claims("[]", &cl, &err), DAGI_EPARSE, &err, "not a JSON object");
    expect(claims("{\"sub\":\"a\",\"exp\":\"soon\"}", &cl, &err), DAGI_EPARSE, &err,
           "not a NumericDate");
    expect(claims("{\"sub\":\"a\",\"exp\":-1}", &cl, &err), DAGI_EPARSE, &err, "out of range");
    expect(claims("{\"sub\":\"a\",\"exp\":1e300}", &cl, &err), DAGI_EPARSE, &err, "range");
    expect(claims("{\"sub\":\"a\",\"team\":[]}", &cl, &err), DAGI_EPARSE, &err, "team");
    expect(claims("{\"sub\":\"a\",\"roles\":\"admin\"}", &cl, &err), DAGI_EPARSE, &err,
           "roles: not an array");
    expect(claims("{\"sub\":\"a\",\"roles\":[\"x\",1]}", &cl, &err), DAGI_EPARSE, &err,
           "roles: not a string");
    expect(claims("{\"sub\":\"a\",\"roles\":[]}", &cl, &err), 0, &err, NULL);
    assert_int_equal(cl.role_count, 0);
    expect(claims("{\"sub\":\"\xc3\xa9l\xc3\xa8ve\"}", &cl, &err), 0, &err, NULL);
    assert_string_equal(cl.sub, "\xc3\xa9l\xc3\xa8ve");

    /* caps: roles count and length, string length */
    char json[4096];
    size_t n = (size_t)snprintf(json, sizeof(json), "{\"sub\":\"a\",\"roles\":[");
    for (int i = 0; i <= DAGI_JWT_MAX_ROLES; i++)
        n += (size_t)snprintf(json + n, sizeof(json) - n, "%s\"r%d\"", i ? "," : "", i);
    snprintf(json + n, sizeof(json) - n, "]}");
    expect(claims(json, &cl, &err), DAGI_ETOOBIG, &err, "roles: more than 32 entries");
    char role[DAGI_JWT_MAX_ROLE_LEN + 2];
    memset(role, 'r', sizeof(role) - 1);
    role[sizeof(role) - 1] = '\0';
    snprintf(json, sizeof(json), "{\"sub\":\"a\",\"roles\":[\"%s\"]}", role);
    expect(claims(json, &cl, &err), DAGI_ETOOBIG, &err, "longer than 64 bytes");
    role[sizeof(role) - 2] = '\0'; /* exactly 64 */
    snprintf(json, sizeof(json), "{\"sub\":\"a\",\"roles\":[\"%s\"]}", role);
    expect(claims(json, &cl, &err), 0, &err, NULL);
    char sub[DAGI_JWT_MAX_STRING + 2];
    memset(sub, 's', sizeof(sub) - 1);
    sub[sizeof(sub) - 1] = '\0';
    snprintf(json, sizeof(json), "{\"sub\":\"%s\"}", sub);
    expect(claims(json, &cl, &err), DAGI_ETOOBIG, &err, "sub: longer than 256 bytes");

    /* an arena at its cap */
    struct dagi_arena *tiny = dagi_arena_new(64);
    struct dagi_jwt_opts opts;
    dagi_jwt_opts_init(&opts, NOW);
    opts.require_exp = false;
    snprintf(json, sizeof(json), "{\"sub\":\"%.200s\"}", sub);
    expect(dagi_jwt_check_claims(json, strlen(json), &opts, tiny, &cl, &err), DAGI_ETOOBIG, &err,
           "arena");
    dagi_arena_free(tiny);
}

/* --- base64url on its own (RFC 4648 section 10 vectors, url alphabet) --- */

static void test_b64url(void **state)
{
    (void)state;
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const coded[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (size_t i = 0; i < DAGI_ARRAY_LEN(plain); i++) {
        char out[16];
        assert_int_equal(
            dagi_b64url_encode((const uint8_t *)plain[i], strlen(plain[i]), out, sizeof(out)), 0);
        assert_string_equal(out, coded[i]);
        uint8_t back[16];
        size_t n = 99;
        assert_int_equal(dagi_b64url_decode(coded[i], strlen(coded[i]), back, sizeof(back), &n), 0);
        assert_int_equal(n, strlen(plain[i]));
        assert_memory_equal(back, plain[i], n);
    }
    static const uint8_t bytes[] = {0xfb, 0xff, 0xbf};
    char out[8];
    assert_int_equal(dagi_b64url_encode(bytes, 3, out, sizeof(out)), 0);
    assert_string_equal(out, "-_-_");
    assert_int_equal(dagi_b64url_encode(bytes, 3, out, 4), DAGI_ETOOBIG);

    uint8_t buf[16];
    size_t n;
    /* padding, a lone character, unused bits set ("Zh", "Zm9"... vs "Zg"),
     * the other alphabet, whitespace */
    static const char *const bad[] = {
        "Zg==", "Zg=", "Z", "Zm9vY", "Zh", "Zm9=", "Zm+v", "Zm/v", "Zm v", "Zm9v\n", "Zm-"};
    for (size_t i = 0; i < DAGI_ARRAY_LEN(bad); i++)
        if (dagi_b64url_decode(bad[i], strlen(bad[i]), buf, sizeof(buf), &n) != DAGI_EPARSE)
            fail_msg("accepted \"%s\"", bad[i]);
    assert_int_equal(dagi_b64url_decode("Z\0g", 3, buf, sizeof(buf), &n), DAGI_EPARSE);
    assert_int_equal(dagi_b64url_decode("Zm9vYmFy", 8, buf, 5, &n), DAGI_ETOOBIG);
    assert_int_equal(dagi_b64url_decode("Zm9vYmFy", 8, buf, 6, &n), 0);
}

static int group_setup(void **state)
{
    (void)state;
    arena = dagi_arena_new(0);
    rsa_a = EVP_RSA_gen(2048);
    rsa_b = EVP_RSA_gen(2048);
    if (!rsa_a || !rsa_b)
        return -1;
    rsa_a_pem = pem_of(rsa_a, false);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    free(rsa_a_pem);
    EVP_PKEY_free(rsa_a);
    EVP_PKEY_free(rsa_b);
    dagi_arena_free(arena);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc7515_a1),
        cmocka_unit_test(test_hs256_claims),
        cmocka_unit_test(test_rs256),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_key_confusion),
        cmocka_unit_test(test_exp_leeway),
        cmocka_unit_test(test_nbf_iat),
        cmocka_unit_test(test_iss_aud),
        cmocka_unit_test(test_kid_rotation),
        cmocka_unit_test(test_key_config),
        cmocka_unit_test(test_header_rules),
        cmocka_unit_test(test_bad_base64url),
        cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_over_length),
        cmocka_unit_test(test_missing_sub_and_shapes),
        cmocka_unit_test(test_b64url),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
