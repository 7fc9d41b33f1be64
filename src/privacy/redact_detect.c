/* The detectors of personal data and keys (redact_pii.h has the order and
 * docs/PRIVACY_GATE.md every rule).  Each starts at a word start the main
 * loop found, reads a bounded distance ahead and checks what it read in
 * place: check digits (Luhn, mod-97) are computed streaming over the
 * caller's bytes, so no copy of a number or key is ever made. */
#include "privacy/redact_internal.h"

#include <string.h>
#include <strings.h>

#define EMAIL_LOCAL_MAX 64
#define EMAIL_DOMAIN_MAX 253
#define EMAIL_LABEL_MAX 63
#define PASSWORD_VALUE_MAX 256

size_t pii_token_run_end(const char *s, size_t len, size_t i)
{
    while (i < len && (pii_byte_class[(unsigned char)s[i]] & PII_RUN))
        i++;
    /* '=' is base64's padding at the end of a token; inside a run it is an
     * assignment ("key=sk-..."), and each side is a token of its own */
    size_t pad = i;
    while (pad < len && pad - i < 2 && s[pad] == '=')
        pad++;
    if (pad > i && (pad >= len || !pii_is_token_char((unsigned char)s[pad])))
        return pad;
    return i;
}

static size_t key_run_end(const char *s, size_t len, size_t i)
{
    while (i < len && pii_is_key_char((unsigned char)s[i]))
        i++;
    return i;
}

/* True when nothing of a word continues at s[i] (the end of a finding). */
static bool word_ends(const char *s, size_t len, size_t i)
{
    return i >= len || !pii_is_alnum((unsigned char)s[i]);
}

static bool found(struct pii_match *m, size_t keep, size_t n, enum dagi_pii_type type)
{
    *m = (struct pii_match){.keep = keep, .len = n, .type = type};
    return true;
}

/* --- e-mail --- */

static bool email_local_char(unsigned char c)
{
    return pii_is_alnum(c) || c >= 0x80 || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}

static bool domain_char(unsigned char c)
{
    return pii_is_alnum(c) || c >= 0x80 || c == '-';
}

bool pii_match_email(const char *s, size_t len, size_t i, size_t at, struct pii_match *m)
{
    if (at >= len || at <= i || at - i > EMAIL_LOCAL_MAX)
        return false;
    for (size_t k = i; k < at; k++)
        if (!email_local_char((unsigned char)s[k]))
            return false;
    /* Labels separated by single dots; the last one (the top-level domain)
     * at least two characters and not a number; a trailing dot is the
     * sentence's, not the address's. */
    size_t j = at + 1, end = 0, labels = 0, last_start = 0;
    while (j < len && j - at <= EMAIL_DOMAIN_MAX) {
        size_t start = j;
        while (j < len && domain_char((unsigned char)s[j]) && j - start <= EMAIL_LABEL_MAX)
            j++;
        if (j == start || j - start > EMAIL_LABEL_MAX)
            break;
        labels++;
        end = j;
        last_start = start;
        if (j + 1 < len && s[j] == '.' && domain_char((unsigned char)s[j + 1]))
            j++;
        else
            break;
    }
    if (labels < 2 || end - last_start < 2)
        return false;
    bool letter = false;
    for (size_t k = last_start; k < end; k++)
        if (!pii_is_digit((unsigned char)s[k]) && s[k] != '-')
            letter = true;
    return letter && found(m, 0, end - i, DAGI_PII_EMAIL);
}

/* --- API keys and bot tokens --- */

struct key_kind {
    const char *prefix;
    unsigned min_body; /* key characters after the prefix */
};

/* Case-sensitive prefixes of the keys people paste: OpenAI and Anthropic
 * (sk-, sk-proj-, sk-ant-), Stripe, dagi's own, AWS access key ids,
 * GitHub, Slack, Google, GitLab.  A match takes the whole run of key
 * characters, so no tail of the key is left behind. */
static const struct key_kind key_kinds[] = {
    {"sk-", 16},        {"sk_live_", 16}, {"sk_test_", 16}, {"rk_live_", 16}, {"dagi_sk_", 8},
    {"dagi_admin_", 8}, {"dagi_svc_", 8}, {"AKIA", 16},     {"ASIA", 16},     {"ghp_", 30},
    {"gho_", 30},       {"ghu_", 30},     {"ghs_", 30},     {"ghr_", 30},     {"github_pat_", 20},
    {"xoxa-", 10},      {"xoxb-", 10},    {"xoxp-", 10},    {"xoxr-", 10},    {"xoxs-", 10},
    {"AIza", 30},       {"glpat-", 20},
};

static bool base32_lower(unsigned char c)
{
    return pii_is_lower(c) || (c >= '2' && c <= '7');
}

/* A JSON Web Token: three base64url parts, the first two JSON objects
 * ("eyJ" is base64 of '{"'). */
static bool match_jwt(const char *s, size_t len, size_t i, struct pii_match *m)
{
    if (len - i < 20)
        return false;
    size_t j = i;
    for (int part = 0; part < 3; part++) {
        size_t start = j;
        while (j < len && (pii_is_alnum((unsigned char)s[j]) || s[j] == '_' || s[j] == '-'))
            j++;
        if (part < 2 && (j - start < 4 || j >= len || s[j] != '.'))
            return false;
        if (part < 2)
            j++;
    }
    return found(m, 0, j - i, DAGI_PII_SECRET);
}

bool pii_match_api_key(const char *s, size_t len, size_t i, struct pii_match *m)
{
    if (!pii_key_ahead(s, len, i))
        return false;
    if (s[i] == 'e')
        return match_jwt(s, len, i, m);
    for (size_t k = 0; k < sizeof(key_kinds) / sizeof(key_kinds[0]); k++) {
        const struct key_kind *kk = &key_kinds[k];
        if (kk->prefix[0] != s[i] || kk->prefix[1] != s[i + 1])
            continue;
        size_t plen = strlen(kk->prefix);
        if (len - i <= plen || strncmp(s + i, kk->prefix, plen) != 0)
            continue;
        size_t end = key_run_end(s, len, i + plen);
        if (end - (i + plen) >= kk->min_body)
            return found(m, 0, end - i, DAGI_PII_API_KEY);
    }
    /* dagi user keys: dagi_<12 x [a-z2-7]>_<secret> */
    if (s[i] == 'd' && len - i > 26 && strncmp(s + i, "dagi_", 5) == 0) {
        size_t k = 5;
        while (k < 17 && base32_lower((unsigned char)s[i + k]))
            k++;
        if (k == 17 && s[i + 17] == '_') {
            size_t end = key_run_end(s, len, i + 18);
            if (end - (i + 18) >= 8)
                return found(m, 0, end - i, DAGI_PII_API_KEY);
        }
    }
    return false;
}

/* Telegram bot tokens: <6-12 digits>:<30+ of [A-Za-z0-9_-]>, also inside
 * "bot<token>" as the Bot API's URLs write them. */
bool pii_match_bot_token(const char *s, size_t len, size_t i, struct pii_match *m)
{
    size_t j = i;
    if (len - i > 3 && strncmp(s + i, "bot", 3) == 0)
        j += 3;
    size_t digits = j;
    while (j < len && pii_is_digit((unsigned char)s[j]) && j - digits <= 12)
        j++;
    if (j - digits < 6 || j - digits > 12 || j >= len || s[j] != ':')
        return false;
    size_t end = key_run_end(s, len, j + 1);
    if (end - (j + 1) < 30)
        return false;
    return found(m, 0, end - i, DAGI_PII_BOT_TOKEN);
}

/* --- IBAN --- */

struct iban_length {
    char cc[3];
    unsigned char len;
};

/* The registry's lengths for the countries most likely in this platform's
 * chats; another country's IBAN is accepted at any length 15-34 that its
 * check digits confirm. */
static const struct iban_length iban_lengths[] = {
    {"AT", 20}, {"BE", 16}, {"BG", 22}, {"CH", 21}, {"CY", 28}, {"CZ", 24}, {"DE", 22},
    {"DK", 18}, {"EE", 20}, {"ES", 24}, {"FI", 18}, {"FR", 27}, {"GB", 22}, {"GE", 22},
    {"GR", 27}, {"HR", 21}, {"HU", 28}, {"IE", 22}, {"IT", 27}, {"LT", 20}, {"LU", 20},
    {"LV", 21}, {"MD", 24}, {"MT", 31}, {"NL", 18}, {"NO", 15}, {"PL", 28}, {"PT", 25},
    {"RO", 24}, {"SE", 24}, {"SI", 19}, {"SK", 24}, {"TR", 26}, {"UA", 29},
};

static unsigned iban_country_length(const char *cc)
{
    for (size_t k = 0; k < sizeof(iban_lengths) / sizeof(iban_lengths[0]); k++)
        if (iban_lengths[k].cc[0] == cc[0] && iban_lengths[k].cc[1] == cc[1])
            return iban_lengths[k].len;
    return 0;
}

static unsigned mod97_step(unsigned rem, unsigned char c)
{
    return pii_is_digit(c) ? (rem * 10 + (unsigned)(c - '0')) % 97
                           : (rem * 100 + (unsigned)(c - 'A' + 10)) % 97;
}

/* ISO 13616: the country code and check digits moved to the end, letters
 * as 10..35, the number mod 97 must be 1.  Spaces are skipped. */
static bool iban_checks(const char *s, size_t i, size_t end)
{
    unsigned rem = 0;
    for (size_t k = i + 4; k < end; k++)
        if (s[k] != ' ')
            rem = mod97_step(rem, (unsigned char)s[k]);
    for (size_t k = i; k < i + 4; k++)
        rem = mod97_step(rem, (unsigned char)s[k]);
    return rem == 1;
}

static bool iban_char(unsigned char c)
{
    return pii_is_upper(c) || pii_is_digit(c);
}

bool pii_match_iban(const char *s, size_t len, size_t i, struct pii_match *m)
{
    if (len - i < 15 || !pii_is_upper((unsigned char)s[i]) ||
        !pii_is_upper((unsigned char)s[i + 1]) || !pii_is_digit((unsigned char)s[i + 2]) ||
        !pii_is_digit((unsigned char)s[i + 3]))
        return false;
    /* Where a group ends and what has been read by then: the IBAN may be
     * followed by more capitals or digits after a space, so every group end
     * is a candidate, longest first. */
    size_t ends[40], counts[40], n = 0, count = 0, j = i;
    while (j < len && count < 34) {
        if (iban_char((unsigned char)s[j])) {
            j++;
            count++;
        } else if (s[j] == ' ' && j + 1 < len && iban_char((unsigned char)s[j + 1])) {
            ends[n] = j;
            counts[n++] = count;
            j++;
        } else {
            break;
        }
    }
    if (word_ends(s, len, j) && n < 40) {
        ends[n] = j;
        counts[n++] = count;
    }
    unsigned want = iban_country_length(s + i);
    while (n--) {
        if (counts[n] < 15 || counts[n] > 34 || (want && counts[n] != want))
            continue;
        if (iban_checks(s, i, ends[n]))
            return found(m, 0, ends[n] - i, DAGI_PII_IBAN);
    }
    return false;
}

/* --- payment cards --- */

static bool luhn_valid(const char *s, size_t i, size_t end)
{
    unsigned sum = 0, pos = 0;
    for (size_t k = end; k-- > i;) {
        if (!pii_is_digit((unsigned char)s[k]))
            continue;
        unsigned d = (unsigned)(s[k] - '0');
        if (pos++ & 1) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
    }
    return sum % 10 == 0;
}

/* 13-19 digits, groups split by single spaces or dashes, Luhn-valid.  A
 * digit run that fails Luhn is left to the phone rule, and stays if that
 * does not take it either. */
bool pii_match_card(const char *s, size_t len, size_t i, struct pii_match *m)
{
    size_t ends[20], counts[20], n = 0, count = 0, j = i;
    while (j < len && count < 19) {
        if (pii_is_digit((unsigned char)s[j])) {
            j++;
            count++;
            if (j >= len || !pii_is_digit((unsigned char)s[j])) {
                ends[n] = j;
                counts[n++] = count;
            }
        } else if ((s[j] == ' ' || s[j] == '-') && j + 1 < len &&
                   pii_is_digit((unsigned char)s[j + 1]) && j > i) {
            j++;
        } else {
            break;
        }
    }
    while (n--) {
        if (counts[n] < 13 || !word_ends(s, len, ends[n]))
            continue;
        if (luhn_valid(s, i, ends[n]))
            return found(m, 0, ends[n] - i, DAGI_PII_CARD);
    }
    return false;
}

/* --- phone numbers --- */

#define PHONE_GROUPS_MAX 16

struct phone_read {
    size_t end[PHONE_GROUPS_MAX];      /* just after each group (and its ')') */
    unsigned digits[PHONE_GROUPS_MAX]; /* digits up to that group */
    unsigned glen[PHONE_GROUPS_MAX];
    char sep[PHONE_GROUPS_MAX]; /* the separator before the group, 0 for none */
    size_t n;
};

/* Digit groups with at most one of ' ', '-', '.' between them and an
 * optional "(" before / ")" after a group: "+380 (67) 123-45-67". */
static void phone_read(const char *s, size_t len, size_t i, struct phone_read *r)
{
    size_t j = i;
    unsigned digits = 0;
    char sep = 0;
    r->n = 0;
    if (s[j] == '+')
        j++;
    while (j < len && r->n < PHONE_GROUPS_MAX) {
        bool paren = false;
        if (s[j] == '(') {
            paren = true;
            j++;
        }
        size_t start = j;
        while (j < len && pii_is_digit((unsigned char)s[j]) && digits + (j - start) < 16)
            j++;
        if (j == start || (j < len && pii_is_digit((unsigned char)s[j])))
            return; /* a group must have digits; past 15 digits it is no phone */
        if (paren) {
            if (j >= len || s[j] != ')')
                return;
            j++;
        }
        digits += (unsigned)(j - start - paren);
        r->end[r->n] = j;
        r->digits[r->n] = digits;
        r->glen[r->n] = (unsigned)(j - start - paren);
        r->sep[r->n] = sep;
        r->n++;
        sep = 0;
        if (j < len && (s[j] == ' ' || s[j] == '-' || s[j] == '.'))
            sep = s[j];
        size_t next = j + (sep ? 1 : 0);
        if (next < len && (pii_is_digit((unsigned char)s[next]) || s[next] == '('))
            j = next;
        else
            return;
    }
}

/* Whether the first k + 1 groups read are a phone number (see
 * docs/PRIVACY_GATE.md for the formats). */
static bool phone_shape(const char *s, size_t i, const struct phone_read *r, size_t k)
{
    unsigned d = r->digits[k];
    if (s[i] == '+')
        return d >= 8 && d <= 15;
    if (s[i] == '(')
        return d >= 10 && d <= 12;
    if (s[i] == '0')
        return (d == 10 || d == 11) && r->glen[0] >= 3;
    if (k == 0 && d == 12 && strncmp(s + i, "380", 3) == 0)
        return true;
    /* North American 3-3-4 with one separator throughout */
    return k == 2 && r->glen[0] == 3 && r->glen[1] == 3 && r->glen[2] == 4 && r->sep[1] &&
           r->sep[1] == r->sep[2];
}

bool pii_match_phone(const char *s, size_t len, size_t i, struct pii_match *m)
{
    unsigned char c = (unsigned char)s[i];
    if (!(pii_is_digit(c) || ((c == '+' || c == '(') && i + 1 < len &&
                              (pii_is_digit((unsigned char)s[i + 1]) || s[i + 1] == '('))))
        return false;
    struct phone_read r;
    phone_read(s, len, i, &r);
    for (size_t k = r.n; k-- > 0;) {
        if (!word_ends(s, len, r.end[k]))
            continue;
        if (phone_shape(s, i, &r, k))
            return found(m, 0, r.end[k] - i, DAGI_PII_PHONE);
    }
    return false;
}

/* --- IP addresses --- */

/* An IPv4 dotted quad at s[i]: its length, or 0. */
static size_t ipv4_at(const char *s, size_t len, size_t i)
{
    size_t j = i;
    for (int part = 0; part < 4; part++) {
        size_t start = j;
        unsigned v = 0;
        while (j < len && pii_is_digit((unsigned char)s[j]) && j - start < 3)
            v = v * 10 + (unsigned)(s[j++] - '0');
        if (j == start || v > 255 || (j < len && pii_is_digit((unsigned char)s[j])))
            return 0;
        if (part < 3) {
            if (j >= len || s[j] != '.')
                return 0;
            j++;
        }
    }
    return j - i;
}

static bool hex_digit(unsigned char c)
{
    return pii_is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool ipv6_valid(const char *p, size_t n)
{
    size_t groups = 0, colons = 0;
    bool compressed = false, decimal = false;
    for (size_t k = 0; k < n; k++) {
        if (p[k] == ':')
            colons++;
        else if (pii_is_digit((unsigned char)p[k]))
            decimal = true;
    }
    if (colons < 2 || !decimal)
        return false;
    size_t k = 0;
    if (n >= 2 && p[0] == ':' && p[1] == ':') {
        compressed = true;
        k = 2;
    } else if (p[0] == ':') {
        return false;
    }
    while (k < n) {
        size_t start = k;
        while (k < n && hex_digit((unsigned char)p[k]))
            k++;
        if (k < n && p[k] == '.') { /* an IPv4 tail: the last two groups */
            size_t v4 = ipv4_at(p, n, start);
            if (!v4 || start + v4 != n)
                return false;
            groups += 2;
            k = n;
            break;
        }
        if (k == start || k - start > 4)
            return false;
        groups++;
        if (k == n)
            break;
        k++; /* the ':' */
        if (k < n && p[k] == ':') {
            if (compressed)
                return false;
            compressed = true;
            k++;
        } else if (k == n) {
            return false; /* a single trailing ':' */
        }
    }
    return compressed ? groups <= 7 : groups == 8;
}

static bool match_ipv6(const char *s, size_t len, size_t i, struct pii_match *m)
{
    if (i > 0 && s[i - 1] == ':')
        return false;
    size_t j = i;
    while (j < len && j - i < 46 && (hex_digit((unsigned char)s[j]) || s[j] == ':' || s[j] == '.'))
        j++;
    /* A sentence may end right after the address ("fe80::1."). */
    for (int trim = 0; trim < 3 && j > i; trim++) {
        if (word_ends(s, len, j) && ipv6_valid(s + i, j - i))
            return found(m, 0, j - i, DAGI_PII_IP);
        if (s[j - 1] != '.' && s[j - 1] != ':')
            break;
        j--;
    }
    return false;
}

bool pii_match_ip(const char *s, size_t len, size_t i, struct pii_match *m)
{
    if (i > 0 && s[i - 1] == '.')
        return false; /* the middle of a longer dotted number */
    size_t n = pii_is_digit((unsigned char)s[i]) ? ipv4_at(s, len, i) : 0;
    if (n) {
        size_t j = i + n;
        /* "1.2.3.4.5" is a version, not an address */
        if (j + 1 < len && s[j] == '.' && pii_is_digit((unsigned char)s[j + 1]))
            return false;
        if (j + 1 < len && (s[j] == ':' || s[j] == '/') && pii_is_digit((unsigned char)s[j + 1])) {
            size_t k = j + 1;
            while (k < len && pii_is_digit((unsigned char)s[k]) && k - j <= 5)
                k++;
            if (word_ends(s, len, k))
                j = k; /* the port or the prefix length goes with it */
        }
        if (word_ends(s, len, j))
            return found(m, 0, j - i, DAGI_PII_IP);
    }
    /* IPv6 has a ':' within its first five characters */
    size_t k = i;
    while (k < len && k - i < 4 && hex_digit((unsigned char)s[k]))
        k++;
    if (k < len && s[k] == ':')
        return match_ipv6(s, len, i, m);
    return false;
}

/* --- password values --- */

static const char *const password_words[] = {"password", "passwd", "passphrase", "pwd"};
#define PAROL_LOWER "\xd0\xbf\xd0\xb0\xd1\x80\xd0\xbe\xd0\xbb\xd1\x8c" /* пароль */
#define PAROL_UPPER "\xd0\x9f\xd0\xb0\xd1\x80\xd0\xbe\xd0\xbb\xd1\x8c" /* Пароль */

/* "password: hunter2", "пароль = ...", "PASSWORD='x y'"-ish: the label
 * stays, the value (up to the next space or the closing quote) goes. */
bool pii_match_password(const char *s, size_t len, size_t i, struct pii_match *m)
{
    size_t j = 0;
    if ((unsigned char)s[i] == 0xd0) {
        size_t n = sizeof(PAROL_LOWER) - 1;
        if (len - i > n &&
            (memcmp(s + i, PAROL_LOWER, n) == 0 || memcmp(s + i, PAROL_UPPER, n) == 0))
            j = i + n;
    } else {
        /* the whole word, then one comparison of the same length */
        size_t w = i;
        while (w < len && w - i <= 10 && pii_is_alpha((unsigned char)s[w]))
            w++;
        for (size_t k = 0; k < sizeof(password_words) / sizeof(password_words[0]) && !j; k++)
            if (strlen(password_words[k]) == w - i &&
                strncasecmp(s + i, password_words[k], w - i) == 0)
                j = w;
    }
    if (!j || (j < len && pii_is_alnum((unsigned char)s[j])))
        return false;
    for (int sp = 0; sp < 2 && j < len && s[j] == ' '; sp++)
        j++;
    if (j >= len || (s[j] != ':' && s[j] != '='))
        return false;
    j++;
    for (int sp = 0; sp < 2 && j < len && s[j] == ' '; sp++)
        j++;
    char quote = 0;
    if (j < len && (s[j] == '"' || s[j] == '\'' || s[j] == '`'))
        quote = s[j++];
    size_t start = j;
    while (j < len && j - start < PASSWORD_VALUE_MAX && (unsigned char)s[j] > ' ' && s[j] != quote)
        j++;
    /* a sentence's full stop or comma after the value is not part of it */
    while (j > start + 1 && !quote && strchr(".,;!?)", s[j - 1]))
        j--;
    if (j - start < 3)
        return false;
    return found(m, start - i, j - i, DAGI_PII_SECRET);
}
