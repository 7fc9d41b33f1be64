#include "redact.h"

#include "err.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static bool contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return true;
    return false;
}

bool dagi_redact_is_secret_key(const char *key)
{
    static const char *const words[] = {"authorization", "cookie", "token", "secret",
                                        "password", "passwd", "credential"};
    if (!key)
        return false;
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (contains_ci(key, words[i]))
            return true;
    size_t n = strlen(key);
    return (n >= 3 && strcasecmp(key + n - 3, "key") == 0) ||
           (n >= 4 && strcasecmp(key + n - 4, "keys") == 0);
}

/* A bearer token character: base64 (standard and URL-safe), JWT dots, and the
 * rest of RFC 6750's b64token alphabet. */
static bool is_bearer_char(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '+' || c == '/' ||
           c == '=';
}

/* A key character: bot tokens, dagi keys (URL-safe base64) and sk- keys are
 * made of these.  No '/', so a bot token inside a URL path ends at the next
 * path segment and the URL keeps its shape. */
static bool is_key_char(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '_';
}

static bool word_start(const char *s, size_t i)
{
    return i == 0 || !isalnum((unsigned char)s[i - 1]);
}

/* If a secret starts at s[i], returns the length of the visible prefix to keep
 * and sets *secret_len to the length of the secret that follows it. */
static size_t match_secret(const char *s, size_t len, size_t i, size_t *secret_len)
{
    size_t keep = 0;
    bool bearer = false;
    if (len - i > 7 && strncasecmp(s + i, "bearer", 6) == 0 && (s[i + 6] == ' ' || s[i + 6] == '\t') &&
        word_start(s, i)) {
        /* dagi_bearer_token() accepts any number of spaces before the token. */
        keep = 6;
        while (i + keep < len && (s[i + keep] == ' ' || s[i + keep] == '\t'))
            keep++;
        bearer = true;
    } else if (len - i > 5 && strncmp(s + i, "dagi_", 5) == 0 && word_start(s, i)) {
        /* Only the kinds of key dagi issues, so names like dagi_http_... in
         * messages stay readable. */
        static const char *const kinds[] = {"dagi_admin_", "dagi_sk_", "dagi_svc_"};
        for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
            size_t n = strlen(kinds[k]);
            if (len - i > n && strncmp(s + i, kinds[k], n) == 0)
                keep = n;
        }
        /* User API keys, dagi_<12 x [a-z2-7]>_<secret>: the id may show. */
        size_t id = 0;
        while (!keep && id < 12 && i + 5 + id < len &&
               ((s[i + 5 + id] >= 'a' && s[i + 5 + id] <= 'z') ||
                (s[i + 5 + id] >= '2' && s[i + 5 + id] <= '7')))
            id++;
        if (!keep && id == 12 && i + 17 < len && s[i + 17] == '_')
            keep = 18;
    } else if (len - i > 3 && strncmp(s + i, "sk-", 3) == 0 && word_start(s, i)) {
        keep = 3;
    } else if (len - i > 4 && strncmp(s + i, "bot", 3) == 0 && isdigit((unsigned char)s[i + 3])) {
        size_t j = i + 3;
        while (j < len && isdigit((unsigned char)s[j]))
            j++;
        if (j < len && s[j] == ':')
            keep = j + 1 - i;
    }
    if (!keep)
        return 0;
    size_t j = i + keep;
    while (j < len && (bearer ? is_bearer_char((unsigned char)s[j]) : is_key_char((unsigned char)s[j])))
        j++;
    if (j == i + keep)
        return 0;
    *secret_len = j - (i + keep);
    return keep;
}

int dagi_redact_append(struct dagi_buf *out, const char *value, size_t len)
{
    size_t start = 0, old_len = out->len;
    int rc = DAGI_OK;
    for (size_t i = 0; i < len && rc == DAGI_OK; i++) {
        size_t secret_len = 0;
        size_t keep = match_secret(value, len, i, &secret_len);
        if (!keep)
            continue;
        rc = dagi_buf_append(out, value + start, i + keep - start);
        if (!rc)
            rc = dagi_buf_append_str(out, DAGI_REDACTED);
        i += keep + secret_len - 1;
        start = i + 1;
    }
    if (!rc)
        rc = dagi_buf_append(out, value + start, len - start);
    if (rc) {
        /* All or nothing, like dagi_buf_append: never a half-masked value. */
        out->len = old_len;
        if (out->data)
            out->data[old_len] = '\0';
    }
    return rc;
}
