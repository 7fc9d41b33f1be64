/* The redactor's main loop (redact_pii.h has the overview).
 *
 * A position is offered to the detectors when it can start a finding:
 *   a word start  - the byte before is no ASCII letter or digit (a letter
 *                   of another script may be glued to a number or a key:
 *                   "тел0671234567" is still found), for every detector
 *                   but the last;
 *   a run start   - the byte before is not of [A-Za-z0-9+/_-], for the
 *                   random-token rule, which looks at the whole run ('='
 *                   splits "key=value" in two, and pads a run's end).
 * Right after a finding both hold, as if the placeholder's "]" stood
 * there: what follows a finding is checked afresh, so a detector that
 * stops early (a phone number glued to a token) leaves nothing unchecked. */
#include "privacy/redact_internal.h"

#include <string.h>

#include "core/err.h"

#define RUN_MIN 16

static const char *const type_names[DAGI_PII_TYPE_COUNT] = {
    "email", "phone", "card", "iban", "ip", "url", "bot_token", "api_key", "secret",
};
static const char *const placeholders[DAGI_PII_TYPE_COUNT] = {
    "[email]", "[phone]",     "[card]",    "[iban]",   "[ip]",
    "[url]",   "[bot_token]", "[api_key]", "[secret]",
};

const char *dagi_pii_type_name(enum dagi_pii_type type)
{
    return (unsigned)type < DAGI_PII_TYPE_COUNT ? type_names[type] : "unknown";
}

const char *dagi_pii_placeholder(enum dagi_pii_type type)
{
    return (unsigned)type < DAGI_PII_TYPE_COUNT ? placeholders[type] : "[redacted]";
}

uint32_t dagi_pii_counts_total(const struct dagi_pii_counts *c)
{
    uint32_t n = 0;
    for (size_t t = 0; t < DAGI_PII_TYPE_COUNT; t++)
        n += c->n[t];
    return n;
}

void dagi_pii_counts_add(struct dagi_pii_counts *a, const struct dagi_pii_counts *b)
{
    for (size_t t = 0; t < DAGI_PII_TYPE_COUNT; t++)
        a->n[t] += b->n[t];
}

static bool is_hex_letter(unsigned char c)
{
    return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Cheap looks at the next bytes before a detector is called: most words
 * start with a letter that begins some finding's shape, and the second or
 * third byte tells them apart. */
static bool url_ahead(const char *s, size_t len, size_t i)
{
    unsigned char c = (unsigned char)s[i] | 32;
    return len - i > 8 && ((c == 'h' && (s[i + 1] | 32) == 't' && (s[i + 3] | 32) == 'p') ||
                           (c == 'w' && (s[i + 1] | 32) == 'w' && s[i + 3] == '.'));
}

/* IPv6 has a ':' within its first five characters. */
static bool colon_ahead(const char *s, size_t len, size_t i)
{
    for (size_t k = i; k < len && k - i < 5; k++)
        if (s[k] == ':')
            return true;
    return false;
}

/* The word-start detectors, in priority order; at is the next '@',
 * *url_until the end of the last URL read. */
static bool detect_at_word(const char *s, size_t len, size_t i, size_t at, size_t *url_until,
                           struct pii_match *m)
{
    unsigned char c = (unsigned char)s[i];
    unsigned char c1 = i + 1 < len ? (unsigned char)s[i + 1] : 0;
    bool digit = pii_is_digit(c), alpha = pii_is_alpha(c);
    if (alpha && i >= *url_until && url_ahead(s, len, i) && pii_match_url(s, len, i, m, url_until))
        return true;
    if ((digit || alpha || c >= 0xc0) && at < len && at > i && at - i <= 64 &&
        pii_match_email(s, len, i, at, m))
        return true;
    if (alpha && pii_key_ahead(s, len, i) && pii_match_api_key(s, len, i, m))
        return true;
    if ((digit || (c == 'b' && c1 == 'o')) && pii_match_bot_token(s, len, i, m))
        return true;
    if (pii_is_upper(c) && pii_is_upper(c1) && pii_match_iban(s, len, i, m))
        return true;
    if (digit && pii_match_card(s, len, i, m))
        return true;
    if ((digit || c == '+' || c == '(') && pii_match_phone(s, len, i, m))
        return true;
    if ((digit || ((is_hex_letter(c) || c == ':') && colon_ahead(s, len, i))) &&
        pii_match_ip(s, len, i, m))
        return true;
    unsigned char c2 = i + 2 < len ? (unsigned char)s[i + 2] | 32 : 0;
    if (((c | 32) == 'p' && (((c1 | 32) == 'a' && c2 == 's') || ((c1 | 32) == 'w' && c2 == 'd'))) ||
        (c == 0xd0 && (c1 == 0xbf || c1 == 0x9f)))
        return pii_match_password(s, len, i, m);
    return false;
}

static bool is_separator(unsigned char c)
{
    return c == '+' || c == '/' || c == '_' || c == '-';
}

const unsigned char pii_byte_class[256] = {
    ['0' ... '9'] = PII_ALNUM | PII_RUN | PII_START,
    ['A' ... 'Z'] = PII_ALNUM | PII_RUN | PII_START,
    ['a' ... 'z'] = PII_ALNUM | PII_RUN | PII_START,
    ['+'] = PII_RUN | PII_START,
    ['/'] = PII_RUN | PII_START,
    ['_'] = PII_RUN | PII_START,
    ['-'] = PII_RUN | PII_START,
    ['('] = PII_START,
    [':'] = PII_START,
    [0xc0 ... 0xff] = PII_START,
};

/* Past s[i], which started nothing, and past what follows it inside the
 * same run of letters and digits, or of non-ASCII bytes: there nothing
 * can start (the byte before is a letter, or non-ASCII too). */
static size_t skip_inside(const char *s, size_t len, size_t i)
{
    unsigned char c = (unsigned char)s[i++];
    if (pii_byte_class[c] & PII_ALNUM)
        while (i < len && (pii_byte_class[(unsigned char)s[i]] & PII_ALNUM))
            i++;
    else if (c >= 0x80)
        while (i < len && (unsigned char)s[i] >= 0x80)
            i++;
    return i;
}

int dagi_pii_redact(const char *s, size_t len, struct dagi_buf *out, struct dagi_pii_counts *counts)
{
    struct dagi_pii_counts found = {0};
    size_t old_len = out->len, flushed = 0, fresh = 0; /* fresh: right after a finding */
    const char *at_p = len ? memchr(s, '@', len) : NULL;
    size_t at = at_p ? (size_t)(at_p - s) : len, url_until = 0;
    int rc = DAGI_OK;
    for (size_t i = 0; i < len && rc == DAGI_OK;) {
        unsigned char c = (unsigned char)s[i];
        unsigned char k = pii_byte_class[c];
        if (!(k & PII_START)) {
            do
                i++;
            while (i < len && !(pii_byte_class[(unsigned char)s[i]] & PII_START));
            continue;
        }
        unsigned char prev = i == fresh ? ' ' : (unsigned char)s[i - 1];
        unsigned char pk = pii_byte_class[prev];
        bool word = !(pk & PII_ALNUM) && !(c >= 0x80 && prev >= 0x80);
        bool run = !(pk & PII_RUN) && (k & PII_RUN);
        if (!word && !run) {
            i = skip_inside(s, len, i);
            continue;
        }
        if (at < i) {
            at_p = memchr(s + i, '@', len - i);
            at = at_p ? (size_t)(at_p - s) : len;
        }
        struct pii_match m;
        bool hit = word && detect_at_word(s, len, i, at, &url_until, &m);
        if (!hit && run) {
            /* separators around the token stay: "[phone]-[secret]" */
            size_t alnum_end = i;
            while (alnum_end < len && (pii_byte_class[(unsigned char)s[alnum_end]] & PII_ALNUM))
                alnum_end++;
            size_t end = pii_token_run_end(s, len, alnum_end), lead = 0;
            if (end - i >= RUN_MIN) {
                while (i + lead < end && is_separator((unsigned char)s[i + lead]))
                    lead++;
                while (end > i + lead && is_separator((unsigned char)s[end - 1]))
                    end--;
            }
            if (end - i - lead >= RUN_MIN && dagi_pii_looks_random(s + i + lead, end - i - lead)) {
                m = (struct pii_match){.keep = lead, .len = end - i, .type = DAGI_PII_SECRET};
                hit = true;
            } else if (alnum_end > i) {
                i = alnum_end; /* nothing starts inside the letters and digits */
                continue;
            }
        }
        if (!hit) {
            i = skip_inside(s, len, i);
            continue;
        }
        rc = dagi_buf_append(out, s + flushed, i + m.keep - flushed);
        if (!rc)
            rc = dagi_buf_append_str(out, placeholders[m.type]);
        found.n[m.type]++;
        i += m.len;
        flushed = fresh = i;
    }
    if (!rc)
        rc = dagi_buf_append(out, s + flushed, len - flushed);
    if (rc) {
        out->len = old_len;
        if (out->data)
            out->data[old_len] = '\0';
        return rc;
    }
    if (counts)
        dagi_pii_counts_add(counts, &found);
    return DAGI_OK;
}
