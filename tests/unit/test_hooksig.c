/* Signed webhooks: round trip, an independently computed vector, tampering,
 * the time window, rotation, and the header grammar's edges. */
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

#include "auth/hooksig.h"
#include "core/err.h"
#include "core/mem.h"

#define NOW INT64_C(1700000000)

static const uint8_t key_new[] = "whsec-new-0123456789abcdef";
static const uint8_t key_old[] = "whsec-old-0123456789abcdef";
static const uint8_t key_other[] = "whsec-someone-else-0123456";
static const char body[] = "{\"event\":\"job.done\",\"id\":42}";

static const struct dagi_hooksig_secret one[] = {{key_new, sizeof(key_new) - 1}};
static const struct dagi_hooksig_secret rotating[] = {{key_new, sizeof(key_new) - 1},
                                                      {key_old, sizeof(key_old) - 1}};

static void sign(const uint8_t *key, int64_t t, const char *text, char *out)
{
    assert_int_equal(dagi_hooksig_sign(key, strlen((const char *)key), t, (const uint8_t *)text,
                                       strlen(text), out, DAGI_HOOKSIG_SIGN_CAP),
                     0);
}

static int verify_with(const char *header, const char *text,
                       const struct dagi_hooksig_secret *secrets, size_t n, int64_t now,
                       struct dagi_error *err)
{
    memset(err, 0, sizeof(*err));
    return dagi_hooksig_verify(header, (const uint8_t *)text, strlen(text), secrets, n, now, 0,
                               err);
}

static void expect(int rc, int code, const struct dagi_error *err, const char *text)
{
    if (rc != code)
        fail_msg("rc %d (want %d): %s", rc, code, err->message);
    if (text && !strstr(err->message, text))
        fail_msg("message \"%s\" lacks \"%s\"", err->message, text);
}

/* The v1 hex of a header made by dagi_hooksig_sign. */
static const char *v1_of(const char *header)
{
    const char *v = strstr(header, ",v1=");
    assert_non_null(v);
    return v + 4;
}

static void test_round_trip(void **state)
{
    (void)state;
    char h[DAGI_HOOKSIG_SIGN_CAP];
    struct dagi_error err;
    sign(key_new, NOW, body, h);
    assert_int_equal(strlen(h), strlen("t=1700000000,v1=") + 64);
    assert_memory_equal(h, "t=1700000000,v1=", 16);
    expect(verify_with(h, body, one, 1, NOW, &err), 0, &err, NULL);
    /* an empty body signs and verifies too */
    assert_int_equal(dagi_hooksig_sign(key_new, 26, NOW, NULL, 0, h, sizeof(h)), 0);
    assert_int_equal(dagi_hooksig_verify(h, NULL, 0, one, 1, NOW, 0, &err), 0);
    /* t = 0 is canonical "0" */
    assert_int_equal(dagi_hooksig_sign(key_new, 26, 0, NULL, 0, h, sizeof(h)), 0);
    assert_memory_equal(h, "t=0,v1=", 7);
}

/* HMAC-SHA256 over "<t>.<body>" with OpenSSL's one-shot HMAC(), hex by
 * printf: nothing shared with hooksig.c (which streams libsodium's HMAC). */
static void test_known_vector(void **state)
{
    (void)state;
    char input[256];
    int n = snprintf(input, sizeof(input), "%lld.%s", (long long)NOW, body);
    unsigned char mac[32];
    unsigned int mac_len = 0;
    assert_non_null(HMAC(EVP_sha256(), key_new, (int)strlen((const char *)key_new),
                         (const unsigned char *)input, (size_t)n, mac, &mac_len));
    assert_int_equal(mac_len, 32);
    char expected[DAGI_HOOKSIG_SIGN_CAP];
    int at = snprintf(expected, sizeof(expected), "t=%lld,v1=", (long long)NOW);
    for (int i = 0; i < 32; i++)
        at += snprintf(expected + at, sizeof(expected) - (size_t)at, "%02x", mac[i]);

    char h[DAGI_HOOKSIG_SIGN_CAP];
    sign(key_new, NOW, body, h);
    assert_string_equal(h, expected);
    struct dagi_error err;
    expect(verify_with(expected, body, one, 1, NOW, &err), 0, &err, NULL);

    /* RFC 4231 test case 2 (key "Jefe"), through the same one-shot, pins the
     * oracle itself: "what do ya want for nothing?" */
    assert_non_null(HMAC(EVP_sha256(), "Jefe", 4,
                         (const unsigned char *)"what do ya want for nothing?", 28, mac, &mac_len));
    static const unsigned char rfc4231[4] = {0x5b, 0xdc, 0xc1, 0x46};
    assert_memory_equal(mac, rfc4231, 4);
}

static void test_tampered(void **state)
{
    (void)state;
    char h[DAGI_HOOKSIG_SIGN_CAP];
    struct dagi_error err;
    sign(key_new, NOW, body, h);
    expect(verify_with(h, "{\"event\":\"job.done\",\"id\":43}", one, 1, NOW, &err), DAGI_EPERM,
           &err, "no matching signature");
    expect(verify_with(h, "", one, 1, NOW, &err), DAGI_EPERM, &err, "no matching");
    /* the body with a trailing newline: raw bytes, no normalisation */
    char longer[sizeof(body) + 1];
    snprintf(longer, sizeof(longer), "%s\n", body);
    expect(verify_with(h, longer, one, 1, NOW, &err), DAGI_EPERM, &err, "no matching");
    /* a different t under the same MAC */
    char moved[DAGI_HOOKSIG_SIGN_CAP + 8];
    snprintf(moved, sizeof(moved), "t=%lld,v1=%s", (long long)(NOW + 1), v1_of(h));
    expect(verify_with(moved, body, one, 1, NOW, &err), DAGI_EPERM, &err, "no matching");
    /* one MAC bit flipped */
    char flipped[DAGI_HOOKSIG_SIGN_CAP];
    memcpy(flipped, h, sizeof(flipped));
    char *last = flipped + strlen(flipped) - 1;
    *last = *last == '0' ? '1' : '0';
    expect(verify_with(flipped, body, one, 1, NOW, &err), DAGI_EPERM, &err, "no matching");
    /* another sender's secret */
    sign(key_other, NOW, body, h);
    expect(verify_with(h, body, rotating, 2, NOW, &err), DAGI_EPERM, &err, "no matching");
}

static void test_time_window(void **state)
{
    (void)state;
    char h[DAGI_HOOKSIG_SIGN_CAP];
    struct dagi_error err;
    sign(key_new, NOW - 300, body, h);
    expect(verify_with(h, body, one, 1, NOW, &err), 0, &err, NULL);
    sign(key_new, NOW + 300, body, h);
    expect(verify_with(h, body, one, 1, NOW, &err), 0, &err, NULL);
    sign(key_new, NOW - 301, body, h);
    expect(verify_with(h, body, one, 1, NOW, &err), DAGI_EPERM, &err, "too old");
    sign(key_new, NOW + 301, body, h);
    expect(verify_with(h, body, one, 1, NOW, &err), DAGI_EPERM, &err, "in the future");
    /* a stale forgery is refused for its age, before any MAC is computed */
    char forged[128];
    snprintf(forged, sizeof(forged), "t=%lld,v1=%064d", (long long)(NOW - 3600), 0);
    expect(verify_with(forged, body, one, 1, NOW, &err), DAGI_EPERM, &err, "too old");
    /* a caller's own tolerance */
    sign(key_new, NOW - 61, body, h);
    expect(dagi_hooksig_verify(h, (const uint8_t *)body, strlen(body), one, 1, NOW, 60, &err),
           DAGI_EPERM, &err, "too old");
    expect(dagi_hooksig_verify(h, (const uint8_t *)body, strlen(body), one, 1, NOW, 61, &err), 0,
           &err, NULL);
}

static void test_rotation(void **state)
{
    (void)state;
    char h_new[DAGI_HOOKSIG_SIGN_CAP], h_old[DAGI_HOOKSIG_SIGN_CAP], h_other[DAGI_HOOKSIG_SIGN_CAP];
    struct dagi_error err;
    sign(key_new, NOW, body, h_new);
    sign(key_old, NOW, body, h_old);
    sign(key_other, NOW, body, h_other);
    /* the receiver holds both secrets: either sender passes */
    expect(verify_with(h_new, body, rotating, 2, NOW, &err), 0, &err, NULL);
    expect(verify_with(h_old, body, rotating, 2, NOW, &err), 0, &err, NULL);
    expect(verify_with(h_old, body, one, 1, NOW, &err), DAGI_EPERM, &err, "no matching");

    /* the sender signs with both: two v1 entries, the second one valid */
    char two[256];
    snprintf(two, sizeof(two), "t=%lld,v1=%s,v1=%s", (long long)NOW, v1_of(h_other), v1_of(h_new));
    expect(verify_with(two, body, one, 1, NOW, &err), 0, &err, NULL);
    snprintf(two, sizeof(two), "t=%lld,v1=%s,v1=%s", (long long)NOW, v1_of(h_other),
             v1_of(h_other));
    expect(verify_with(two, body, rotating, 2, NOW, &err), DAGI_EPERM, &err, "no matching");
}

/* tpl with each '$' replaced by v1 (printf would need literal formats). */
static void fill(char *out, size_t cap, const char *tpl, const char *v1)
{
    size_t n = 0;
    for (const char *c = tpl; *c; c++) {
        const char *piece = *c == '$' ? v1 : c;
        size_t len = *c == '$' ? strlen(v1) : 1;
        assert_true(n + len < cap);
        memcpy(out + n, piece, len);
        n += len;
    }
    out[n] = '\0';
}

static void test_header_grammar(void **state)
{
    (void)state;
    char h[DAGI_HOOKSIG_SIGN_CAP], hdr[2048];
    struct dagi_error err;
    sign(key_new, NOW, body, h);
    const char *v1 = v1_of(h);
    char upper[65];
    for (int i = 0; i < 64; i++)
        upper[i] = (char)(v1[i] >= 'a' && v1[i] <= 'f' ? v1[i] - 'a' + 'A' : v1[i]);
    upper[64] = '\0';

    char v1_63[64], v1_g[65];
    memcpy(v1_63, v1, 63);
    v1_63[63] = '\0';
    memcpy(v1_g, v1, 62);
    memcpy(v1_g + 62, "g0", 3);

    /* accepted: whitespace around commas, unknown keys, any order ('$' is v1) */
    const char *const good[] = {
        "t=1700000000,v1=$",
        "  t=1700000000 ,\tv1=$\t ",
        "v1=$,t=1700000000",
        "v0=legacy,t=1700000000,v2=zzz,v1=$,scheme=x",
    };
    for (size_t i = 0; i < DAGI_ARRAY_LEN(good); i++) {
        fill(hdr, sizeof(hdr), good[i], v1);
        expect(verify_with(hdr, body, one, 1, NOW, &err), 0, &err, NULL);
    }

    /* malformed */
    const struct {
        const char *tpl;
        const char *v1;
        const char *why;
    } bad[] = {
        {"v1=$", v1, "no t"},
        {"t=,v1=$", v1, "t is empty"},
        {"t=17000000x0,v1=$", v1, "not a decimal"},
        {"t=+1700000000,v1=$", v1, "not a decimal"},
        {"t=-1700000000,v1=$", v1, "not a decimal"},
        {"t=01700000000,v1=$", v1, "leading zero"},
        {"t=00,v1=$", v1, "leading zero"},
        {"t=1700000000000000,v1=$", v1, "more than 15 digits"},
        {"t=1700000000,t=1700000000,v1=$", v1, "more than one t"},
        {"t =1700000000,v1=$", v1, "no t"}, /* spaces only around commas */
        {"t=1700000000,v1= $", v1, "64 hex digits"},
        {"t=1700000000", v1, "no v1"},
        {"t=1700000000,v1=$", v1_63, "64 hex digits"}, /* odd length */
        {"t=1700000000,v1=$0", v1, "64 hex digits"},
        {"t=1700000000,v1=$", v1_g, "not lowercase hex"},
        {"t=1700000000,,v1=$", v1, "empty entry"},
        {"t=1700000000,v1=$,", v1, "empty entry"},
        {",t=1700000000,v1=$", v1, "empty entry"},
        {"t=1700000000;v1=$", v1, "not a decimal"},
        {"t=1700000000,v1$", v1, "key=value"},
        {"t=1700000000,=$", v1, "key=value"},
        {"", v1, "empty entry"},
    };
    for (size_t i = 0; i < DAGI_ARRAY_LEN(bad); i++) {
        fill(hdr, sizeof(hdr), bad[i].tpl, bad[i].v1);
        expect(verify_with(hdr, body, one, 1, NOW, &err), DAGI_EPARSE, &err, bad[i].why);
    }
    /* uppercase hex: refused as malformed, by rule (hooksig.h) */
    snprintf(hdr, sizeof(hdr), "t=1700000000,v1=%s", upper);
    expect(verify_with(hdr, body, one, 1, NOW, &err), DAGI_EPARSE, &err, "not lowercase hex");

    /* the cap: 1024 bytes pass, 1025 do not */
    int n = snprintf(hdr, sizeof(hdr), "t=1700000000,v1=%s,x=", v1);
    memset(hdr + n, 'p', 1024 - (size_t)n);
    hdr[1024] = '\0';
    expect(verify_with(hdr, body, one, 1, NOW, &err), 0, &err, NULL);
    hdr[1024] = 'p';
    hdr[1025] = '\0';
    expect(verify_with(hdr, body, one, 1, NOW, &err), DAGI_ETOOBIG, &err, "1024");
}

static void test_arguments(void **state)
{
    (void)state;
    char h[DAGI_HOOKSIG_SIGN_CAP];
    struct dagi_error err;
    const uint8_t *b = (const uint8_t *)body;
    assert_int_equal(dagi_hooksig_sign(key_new, 15, NOW, b, 3, h, sizeof(h)), DAGI_EINVAL);
    assert_int_equal(dagi_hooksig_sign(key_new, 26, -1, b, 3, h, sizeof(h)), DAGI_EINVAL);
    assert_int_equal(dagi_hooksig_sign(key_new, 26, DAGI_HOOKSIG_MAX_T + 1, b, 3, h, sizeof(h)),
                     DAGI_EINVAL);
    assert_int_equal(dagi_hooksig_sign(key_new, 26, NOW, b, 3, h, 80), DAGI_ETOOBIG);
    assert_int_equal(dagi_hooksig_sign(key_new, 26, NOW, b, 3, h, 81), 0);
    assert_int_equal(dagi_hooksig_sign(key_new, 26, DAGI_HOOKSIG_MAX_T, b, 3, h, sizeof(h)), 0);

    sign(key_new, NOW, body, h);
    const struct dagi_hooksig_secret short_key[] = {{key_new, 15}};
    expect(dagi_hooksig_verify(h, b, 3, short_key, 1, NOW, 0, &err), DAGI_EINVAL, &err, "shorter");
    expect(dagi_hooksig_verify(h, b, 3, one, 0, NOW, 0, &err), DAGI_EINVAL, &err, NULL);
    struct dagi_hooksig_secret many[DAGI_HOOKSIG_MAX_SECRETS + 1];
    for (size_t i = 0; i < DAGI_ARRAY_LEN(many); i++)
        many[i] = one[0];
    expect(dagi_hooksig_verify(h, b, 3, many, DAGI_ARRAY_LEN(many), NOW, 0, &err), DAGI_EINVAL,
           &err, NULL);
    expect(dagi_hooksig_verify(h, b, strlen(body), many, DAGI_HOOKSIG_MAX_SECRETS, NOW, 0, &err), 0,
           &err, NULL);
    expect(dagi_hooksig_verify(NULL, b, 3, one, 1, NOW, 0, &err), DAGI_EINVAL, &err, NULL);
    expect(dagi_hooksig_verify(h, b, 3, one, 1, -1, 0, &err), DAGI_EINVAL, &err, NULL);
    expect(dagi_hooksig_verify(h, b, 3, one, 1, NOW, -5, &err), DAGI_EINVAL, &err, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip), cmocka_unit_test(test_known_vector),
        cmocka_unit_test(test_tampered),   cmocka_unit_test(test_time_window),
        cmocka_unit_test(test_rotation),   cmocka_unit_test(test_header_grammar),
        cmocka_unit_test(test_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
