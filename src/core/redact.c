#include "redact.h"

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
    return n >= 3 && strcasecmp(key + n - 3, "key") == 0;
}

/* A token character: what API keys and bearer tokens are made of. */
static bool is_token_char(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '+' || c == '/' ||
           c == '=';
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
    if (len - i > 7 && strncasecmp(s + i, "bearer ", 7) == 0 && word_start(s, i)) {
        keep = 7;
    } else if (len - i > 5 && strncmp(s + i, "dagi_", 5) == 0 && word_start(s, i)) {
        size_t j = i + 5;
        while (j < len && isalnum((unsigned char)s[j]))
            j++;
        if (j < len && s[j] == '_' && j > i + 5)
            keep = j + 1 - i;
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
    while (j < len && is_token_char((unsigned char)s[j]))
        j++;
    if (j == i + keep)
        return 0;
    *secret_len = j - (i + keep);
    return keep;
}

int dagi_redact_append(struct dagi_buf *out, const char *value, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        size_t secret_len = 0;
        size_t keep = match_secret(value, len, i, &secret_len);
        if (!keep)
            continue;
        int rc = dagi_buf_append(out, value + start, i + keep - start);
        if (!rc)
            rc = dagi_buf_append_str(out, DAGI_REDACTED);
        if (rc)
            return rc;
        i += keep + secret_len - 1;
        start = i + 1;
    }
    return dagi_buf_append(out, value + start, len - start);
}
