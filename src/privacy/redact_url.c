/* URLs that carry a credential are replaced whole (docs/PRIVACY_GATE.md,
 * "URLs"): user info in the authority, a query or fragment parameter with
 * a credential's name (token=, key=, sig=, password=, X-Amz-Signature=
 * ...), or any path segment or parameter value that is itself a key, a bot
 * token or a random-looking token.  A URL without one is left to the other
 * detectors, which still see its parts (an address in it, an e-mail in its
 * query).
 *
 * A piece is checked percent-decoded (a token written "%2B..." is the same
 * token) in a stack buffer that is wiped before the function returns. */
#include "privacy/redact_internal.h"

#include <sodium.h>
#include <string.h>
#include <strings.h>

#define URL_MAX 4096
#define PIECE_MAX 512
#define NAME_MAX_LEN 64

static bool url_ends_at(const char *s, size_t len, size_t j)
{
    unsigned char c = (unsigned char)s[j];
    if (c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == '"' || c == '`' || c == '{' ||
        c == '}' || c == '|' || c == '\\' || c == '^')
        return true;
    /* NBSP, the General Punctuation block (typographic spaces, quotes,
     * the ellipsis) and the ideographic space end a URL in prose. */
    unsigned char c1 = j + 1 < len ? (unsigned char)s[j + 1] : 0;
    unsigned char c2 = j + 2 < len ? (unsigned char)s[j + 2] : 0;
    return (c == 0xc2 && c1 == 0xa0) || (c == 0xe2 && (c1 == 0x80 || c1 == 0x81)) ||
           (c == 0xe3 && c1 == 0x80 && c2 == 0x80);
}

static size_t count_char(const char *s, size_t from, size_t to, char c)
{
    size_t n = 0;
    for (size_t k = from; k < to; k++)
        n += s[k] == c;
    return n;
}

static int hex_value(unsigned char c)
{
    if (pii_is_digit(c))
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Whether a decoded piece holds a key, a bot token or a random token. */
static bool decoded_secret(const char *p, size_t n)
{
    struct pii_match m;
    for (size_t k = 0; k < n; k++) {
        bool word_start = k == 0 || !pii_is_alnum((unsigned char)p[k - 1]);
        if (word_start && (pii_match_api_key(p, n, k, &m) || pii_match_bot_token(p, n, k, &m)))
            return true;
        bool run_start = k == 0 || !pii_is_run_char((unsigned char)p[k - 1]);
        if (run_start && pii_is_run_char((unsigned char)p[k])) {
            size_t end = pii_token_run_end(p, n, k);
            if (dagi_pii_looks_random(p + k, end - k))
                return true;
            k = end - 1;
        }
    }
    return false;
}

static bool piece_secret(const char *s, size_t from, size_t to)
{
    if (to - from > PIECE_MAX)
        return true; /* a path segment this long is no word */
    char buf[PIECE_MAX];
    size_t n = 0;
    for (size_t k = from; k < to; k++) {
        int hi, lo;
        if (s[k] == '%' && k + 2 < to && (hi = hex_value((unsigned char)s[k + 1])) >= 0 &&
            (lo = hex_value((unsigned char)s[k + 2])) >= 0) {
            buf[n++] = (char)(hi * 16 + lo);
            k += 2;
        } else {
            buf[n++] = s[k];
        }
    }
    bool secret = decoded_secret(buf, n);
    sodium_memzero(buf, sizeof(buf));
    return secret;
}

/* Parameter names that say their value is a credential. */
static bool name_sensitive(const char *s, size_t from, size_t to)
{
    static const char *const exact[] = {"auth", "key",     "sig", "code", "pass",
                                        "pwd",  "session", "sid", "jwt",  "otp"};
    static const char *const parts[] = {"token",     "secret",     "password",    "passwd",
                                        "signature", "credential", "apikey",      "api_key",
                                        "api-key",   "access_key", "private_key", "sessionid"};
    char name[NAME_MAX_LEN + 1];
    size_t n = to - from;
    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    for (size_t k = 0; k < n; k++) {
        unsigned char c = (unsigned char)s[from + k];
        name[k] = (char)(pii_is_upper(c) ? c - 'A' + 'a' : c);
    }
    name[n] = '\0';
    for (size_t k = 0; k < sizeof(exact) / sizeof(exact[0]); k++)
        if (strcmp(name, exact[k]) == 0)
            return true;
    for (size_t k = 0; k < sizeof(parts) / sizeof(parts[0]); k++)
        if (strstr(name, parts[k]))
            return true;
    /* api_key-like suffixes: x-api-key, client_key, hmac_sig */
    return (n > 4 && (strcmp(name + n - 4, "_key") == 0 || strcmp(name + n - 4, "-key") == 0 ||
                      strcmp(name + n - 4, "_sig") == 0 || strcmp(name + n - 4, "-sig") == 0));
}

/* name=value pairs split by '&' or ';' (a query or a fragment). */
static bool params_secret(const char *s, size_t from, size_t to)
{
    for (size_t k = from; k < to;) {
        size_t end = k;
        while (end < to && s[end] != '&' && s[end] != ';')
            end++;
        const char *eq = memchr(s + k, '=', end - k);
        if (eq) {
            size_t at = (size_t)(eq - s);
            if (at + 1 < end && name_sensitive(s, k, at))
                return true;
            if (piece_secret(s, at + 1, end))
                return true;
        } else if (end > k && piece_secret(s, k, end)) {
            return true;
        }
        k = end + 1;
    }
    return false;
}

static bool carries_token(const char *s, size_t host, size_t end)
{
    size_t auth_end = host;
    while (auth_end < end && s[auth_end] != '/' && s[auth_end] != '?' && s[auth_end] != '#')
        auth_end++;
    if (memchr(s + host, '@', auth_end - host))
        return true; /* user info: a name, and often a password */
    size_t q = auth_end;
    while (q < end && s[q] != '?' && s[q] != '#')
        q++;
    for (size_t k = auth_end; k < q;) {
        if (s[k] == '/') {
            k++;
            continue;
        }
        size_t seg_end = k;
        while (seg_end < q && s[seg_end] != '/')
            seg_end++;
        if (piece_secret(s, k, seg_end))
            return true;
        k = seg_end;
    }
    size_t f = q;
    if (q < end && s[q] == '?') {
        f = q + 1;
        while (f < end && s[f] != '#')
            f++;
        if (params_secret(s, q + 1, f))
            return true;
    }
    return f < end && s[f] == '#' && params_secret(s, f + 1, end);
}

bool pii_match_url(const char *s, size_t len, size_t i, struct pii_match *m, size_t *url_end)
{
    *url_end = i;
    size_t prefix = 0;
    if (len - i > 8 && strncasecmp(s + i, "https://", 8) == 0)
        prefix = 8;
    else if (len - i > 7 && strncasecmp(s + i, "http://", 7) == 0)
        prefix = 7;
    else if (len - i > 4 && strncasecmp(s + i, "www.", 4) == 0)
        prefix = 4;
    if (!prefix)
        return false;
    size_t j = i + prefix;
    while (j < len && j - i < URL_MAX && !url_ends_at(s, len, j))
        j++;
    /* Punctuation that ends the sentence is not the URL's; a closing
     * bracket is, when the URL opened one ("/wiki/Kyiv_(city)"). */
    while (j > i + prefix) {
        char c = s[j - 1];
        if (strchr(".,;:!?'*", c) ||
            (c == ')' && count_char(s, i, j, '(') < count_char(s, i, j, ')')) ||
            (c == ']' && count_char(s, i, j, '[') < count_char(s, i, j, ']')))
            j--;
        else
            break;
    }
    *url_end = j;
    if (j == i + prefix || !carries_token(s, i + prefix, j))
        return false;
    *m = (struct pii_match){.keep = 0, .len = j - i, .type = DAGI_PII_URL};
    return true;
}
