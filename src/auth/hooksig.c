/* Signed webhooks; the format and its rules are in hooksig.h. */
#include "auth/hooksig.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#define MAC_LEN crypto_auth_hmacsha256_BYTES
#define HEX_LEN (2 * MAC_LEN)
/* Bounded by the header cap anyway ("v1=" + 64 hex + ","); a fixed array
 * keeps the parser allocation-free. */
#define MAX_V1 (DAGI_HOOKSIG_MAX_HEADER / (3 + HEX_LEN + 1) + 1)

struct parsed {
    const char *t_text; /* the digits as sent: the MAC covers them */
    size_t t_len;
    int64_t t;
    uint8_t v1[MAX_V1][MAC_LEN];
    size_t n_v1;
};

/* HMAC-SHA256(secret, "<t>.<body>"), streamed so the body is never copied.
 * libsodium's HMAC takes keys of any length, as RFC 2104 does. */
static void mac_of(const uint8_t *key, size_t key_len, const char *t, size_t t_len,
                   const uint8_t *body, size_t body_len, uint8_t out[MAC_LEN])
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, key_len);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)t, t_len);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
    crypto_auth_hmacsha256_update(&st, body, body_len);
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof(st));
}

int dagi_hooksig_sign(const uint8_t *secret, size_t secret_len, int64_t t, const uint8_t *body,
                      size_t body_len, char *out_header, size_t out_cap)
{
    if (!secret || secret_len < DAGI_HOOKSIG_MIN_SECRET || t < 0 || t > DAGI_HOOKSIG_MAX_T ||
        (!body && body_len) || !out_header)
        return DAGI_EINVAL;
    if (sodium_init() < 0)
        return DAGI_EUNAVAIL;
    char t_text[24];
    int t_len = snprintf(t_text, sizeof(t_text), "%lld", (long long)t);
    if ((size_t)t_len + 2 + 4 + HEX_LEN + 1 > out_cap)
        return DAGI_ETOOBIG;
    uint8_t mac[MAC_LEN];
    mac_of(secret, secret_len, t_text, (size_t)t_len, body, body_len, mac);
    char hex[HEX_LEN + 1];
    sodium_bin2hex(hex, sizeof(hex), mac, sizeof(mac)); /* lowercase */
    snprintf(out_header, out_cap, "t=%s,v1=%s", t_text, hex);
    sodium_memzero(mac, sizeof(mac));
    return 0;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* uppercase included: see hooksig.h */
}

static int parse_t(struct parsed *p, const char *v, size_t len, struct dagi_error *err)
{
    if (p->t_text)
        return dagi_error_set(err, DAGI_EPARSE, "hooksig: more than one t");
    if (len == 0)
        return dagi_error_set(err, DAGI_EPARSE, "hooksig: t is empty");
    for (size_t i = 0; i < len; i++)
        if (v[i] < '0' || v[i] > '9')
            return dagi_error_set(err, DAGI_EPARSE, "hooksig: t is not a decimal number");
    if (len > 15)
        return dagi_error_set(err, DAGI_EPARSE, "hooksig: t has more than 15 digits");
    if (v[0] == '0' && len > 1)
        return dagi_error_set(err, DAGI_EPARSE, "hooksig: t has a leading zero");
    int64_t t = 0;
    for (size_t i = 0; i < len; i++)
        t = t * 10 + (v[i] - '0');
    p->t_text = v;
    p->t_len = len;
    p->t = t;
    return 0;
}

static int parse_v1(struct parsed *p, const char *v, size_t len, struct dagi_error *err)
{
    if (len != HEX_LEN)
        return dagi_error_set(err, DAGI_EPARSE, "hooksig: v1 must be %d hex digits", HEX_LEN);
    if (p->n_v1 == MAX_V1) /* unreachable under the header cap; kept as a guard */
        return dagi_error_set(err, DAGI_EPARSE, "hooksig: too many v1 entries");
    uint8_t *out = p->v1[p->n_v1];
    for (size_t i = 0; i < MAC_LEN; i++) {
        int hi = hex_value(v[2 * i]), lo = hex_value(v[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return dagi_error_set(err, DAGI_EPARSE, "hooksig: v1 is not lowercase hex");
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    p->n_v1++;
    return 0;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

static int parse_header(const char *h, size_t len, struct parsed *p, struct dagi_error *err)
{
    size_t pos = 0;
    for (;;) {
        size_t start = pos, end = pos;
        while (end < len && h[end] != ',')
            end++;
        size_t next = end + 1;
        while (start < end && is_space(h[start]))
            start++;
        while (end > start && is_space(h[end - 1]))
            end--;
        const char *item = h + start;
        size_t item_len = end - start;
        const char *eq = memchr(item, '=', item_len);
        if (item_len == 0)
            return dagi_error_set(err, DAGI_EPARSE, "hooksig: empty entry");
        if (!eq || eq == item)
            return dagi_error_set(err, DAGI_EPARSE, "hooksig: entry without key=value");
        size_t key_len = (size_t)(eq - item), value_len = item_len - key_len - 1;
        int rc = 0;
        if (key_len == 1 && item[0] == 't')
            rc = parse_t(p, eq + 1, value_len, err);
        else if (key_len == 2 && memcmp(item, "v1", 2) == 0)
            rc = parse_v1(p, eq + 1, value_len, err);
        if (rc < 0)
            return rc;
        if (next > len)
            break;
        pos = next;
    }
    if (!p->t_text)
        return dagi_error_set(err, DAGI_EPARSE, "hooksig: no t");
    if (p->n_v1 == 0)
        return dagi_error_set(err, DAGI_EPARSE, "hooksig: no v1 signature");
    return 0;
}

int dagi_hooksig_verify(const char *header, const uint8_t *body, size_t len,
                        const struct dagi_hooksig_secret *secrets, size_t n_secrets, int64_t now_s,
                        int64_t tolerance_s, struct dagi_error *err)
{
    if (tolerance_s == 0)
        tolerance_s = DAGI_HOOKSIG_DEFAULT_TOLERANCE_S;
    if (!header || (!body && len) || !secrets || n_secrets == 0 ||
        n_secrets > DAGI_HOOKSIG_MAX_SECRETS || now_s < 0 || now_s > DAGI_HOOKSIG_MAX_T ||
        tolerance_s < 0 || tolerance_s > DAGI_HOOKSIG_MAX_T)
        return dagi_error_set(err, DAGI_EINVAL, "hooksig: bad arguments");
    for (size_t i = 0; i < n_secrets; i++)
        if (!secrets[i].key || secrets[i].len < DAGI_HOOKSIG_MIN_SECRET)
            return dagi_error_set(err, DAGI_EINVAL, "hooksig: secret %zu shorter than %d bytes", i,
                                  DAGI_HOOKSIG_MIN_SECRET);
    /* libsodium asks for init before use; cheap once done, and it only fails
     * on a system without usable randomness. */
    if (sodium_init() < 0)
        return dagi_error_set(err, DAGI_EUNAVAIL, "hooksig: libsodium failed to initialise");
    size_t header_len = strnlen(header, DAGI_HOOKSIG_MAX_HEADER + 1);
    if (header_len > DAGI_HOOKSIG_MAX_HEADER)
        return dagi_error_set(err, DAGI_ETOOBIG, "hooksig: header over %d bytes",
                              DAGI_HOOKSIG_MAX_HEADER);

    struct parsed p;
    memset(&p, 0, sizeof(p));
    int rc = parse_header(header, header_len, &p, err);
    if (rc < 0)
        return rc;
    /* Both values are at most 15 digits: the difference cannot overflow. */
    if (now_s - p.t > tolerance_s)
        return dagi_error_set(err, DAGI_EPERM, "hooksig: timestamp %lld too old (now %lld)",
                              (long long)p.t, (long long)now_s);
    if (p.t - now_s > tolerance_s)
        return dagi_error_set(err, DAGI_EPERM, "hooksig: timestamp %lld in the future (now %lld)",
                              (long long)p.t, (long long)now_s);

    /* Every secret against every v1, without stopping early: the time taken
     * depends on the counts only, never on which one matched. */
    int matched = 0;
    uint8_t mac[MAC_LEN];
    for (size_t i = 0; i < n_secrets; i++) {
        mac_of(secrets[i].key, secrets[i].len, p.t_text, p.t_len, body, len, mac);
        for (size_t j = 0; j < p.n_v1; j++)
            matched |= sodium_memcmp(mac, p.v1[j], MAC_LEN) == 0;
    }
    sodium_memzero(mac, sizeof(mac));
    if (!matched)
        return dagi_error_set(err, DAGI_EPERM, "hooksig: no matching signature");
    return 0;
}
