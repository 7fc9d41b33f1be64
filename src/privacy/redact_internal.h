/* Private to the redactor's files (redact_pii.h has the overview): the
 * detectors the main loop offers each candidate position to. */
#ifndef DAGI_PRIVACY_REDACT_INTERNAL_H
#define DAGI_PRIVACY_REDACT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "privacy/redact_pii.h"

/* A finding at position i: bytes [i, i + keep) stay (a label such as
 * "password: "), bytes [i + keep, i + len) become the placeholder. */
struct pii_match {
    size_t keep;
    size_t len;
    enum dagi_pii_type type;
};

static inline bool pii_is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}
static inline bool pii_is_upper(unsigned char c)
{
    return c >= 'A' && c <= 'Z';
}
static inline bool pii_is_lower(unsigned char c)
{
    return c >= 'a' && c <= 'z';
}
static inline bool pii_is_alpha(unsigned char c)
{
    return pii_is_upper(c) || pii_is_lower(c);
}
static inline bool pii_is_alnum(unsigned char c)
{
    return pii_is_alpha(c) || pii_is_digit(c);
}
/* The alphabet of random-looking tokens: base64 (both flavours) and '='. */
static inline bool pii_is_token_char(unsigned char c)
{
    return pii_is_alnum(c) || c == '+' || c == '/' || c == '=' || c == '_' || c == '-';
}
/* What a token run is made of: the token alphabet but '=', which only
 * pads a run's end (pii_token_run_end) and otherwise separates two. */
static inline bool pii_is_run_char(unsigned char c)
{
    return pii_is_token_char(c) && c != '=';
}
/* What API keys and bot tokens are made of. */
static inline bool pii_is_key_char(unsigned char c)
{
    return pii_is_alnum(c) || c == '_' || c == '-';
}

/* Byte classes (redact_pii.c): a letter or digit, a run character
 * (pii_is_run_char), a byte a finding may start with (a run character,
 * '(', ':', a UTF-8 lead byte). */
enum { PII_ALNUM = 1, PII_RUN = 2, PII_START = 4 };
extern const unsigned char pii_byte_class[256];

/* End of the token run starting at i: run characters, then up to two
 * '=' of padding when no run character follows them. */
size_t pii_token_run_end(const char *s, size_t len, size_t i);

/* Whether a key (or a JWT) may start at s[i]: the first two bytes of one
 * of the prefixes, checked before the table is walked. */
static inline bool pii_key_ahead(const char *s, size_t len, size_t i)
{
    if (len - i < 12)
        return false; /* the shortest key: a 3-byte prefix and 8 more */
    unsigned char c = (unsigned char)s[i], c1 = (unsigned char)s[i + 1];
    return ((c == 's' || c == 'r') && c1 == 'k') || (c == 'd' && c1 == 'a') ||
           (c == 'A' && (c1 == 'K' || c1 == 'S' || c1 == 'I')) ||
           (c == 'g' && (c1 == 'h' || c1 == 'i' || c1 == 'l')) || (c == 'x' && c1 == 'o') ||
           (c == 'e' && c1 == 'y' && s[i + 2] == 'J');
}

/* Detectors: each is called only where its finding may start (the main
 * loop's word starts), returns true with *m filled when one does.  They
 * read at most a bounded distance past i, except over a token run they
 * then consume whole. */
/* *url_end: where the URL read ends, found or not (the caller does not
 * read a URL inside it again: "http://http://..." stays linear). */
bool pii_match_url(const char *s, size_t len, size_t i, struct pii_match *m, size_t *url_end);
/* at: the first '@' at or after i (len when none). */
bool pii_match_email(const char *s, size_t len, size_t i, size_t at, struct pii_match *m);
bool pii_match_api_key(const char *s, size_t len, size_t i, struct pii_match *m);
bool pii_match_bot_token(const char *s, size_t len, size_t i, struct pii_match *m);
bool pii_match_iban(const char *s, size_t len, size_t i, struct pii_match *m);
bool pii_match_card(const char *s, size_t len, size_t i, struct pii_match *m);
bool pii_match_phone(const char *s, size_t len, size_t i, struct pii_match *m);
bool pii_match_ip(const char *s, size_t len, size_t i, struct pii_match *m);
bool pii_match_password(const char *s, size_t len, size_t i, struct pii_match *m);

#endif
