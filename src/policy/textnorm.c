#include "policy/textnorm.h"

#include <string.h>

/* An escaped invalid byte (see textnorm.h). */
static size_t bad_byte(const char *s, uint32_t *cp)
{
    *cp = 0xDC00u + (unsigned char)s[0];
    return 1;
}

size_t dagi_utf8_decode(const char *s, size_t len, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    uint32_t c = u[0], min;
    size_t n;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        n = 2, c &= 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3, c &= 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4, c &= 0x07, min = 0x10000;
    } else {
        return bad_byte(s, cp);
    }
    if (len < n)
        return bad_byte(s, cp);
    for (size_t i = 1; i < n; i++) {
        if ((u[i] & 0xC0) != 0x80)
            return bad_byte(s, cp);
        c = (c << 6) | (u[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return bad_byte(s, cp);
    *cp = c;
    return n;
}

size_t dagi_utf8_encode(uint32_t cp, char out[4])
{
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    if (cp > 0x10FFFF)
        return dagi_utf8_encode(0xFFFD, out);
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The Cyrillic block's capitals come in three layouts: two runs with a
 * fixed distance (Ѐ-Џ, А-Я), then historic and national letters in pairs,
 * capital first (even code point) except U+04C1-U+04CE where the pairs start
 * on an odd one, and the lone Ӏ (U+04C0) whose small form is U+04CF. */
static uint32_t fold_cyrillic(uint32_t cp)
{
    if (cp <= 0x040F)
        return cp + 0x50;
    if (cp <= 0x042F)
        return cp + 0x20;
    if ((cp >= 0x0460 && cp <= 0x0481) || (cp >= 0x048A && cp <= 0x04BF) ||
        (cp >= 0x04D0 && cp <= 0x04FF))
        return cp | 1u;
    if (cp == 0x04C0)
        return 0x04CF;
    if (cp >= 0x04C1 && cp <= 0x04CE && (cp & 1u))
        return cp + 1;
    return cp;
}

uint32_t dagi_text_fold(uint32_t cp)
{
    if (cp < 0x80)
        return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7)
        return cp + 32;
    if (cp >= 0x0400 && cp <= 0x04FF)
        return fold_cyrillic(cp);
    return cp;
}

bool dagi_text_is_word(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= '0' && cp <= '9') || ((cp | 32u) >= 'a' && (cp | 32u) <= 'z');
    if (cp <= 0xFF)
        return cp == 0xAA || cp == 0xB5 || cp == 0xBA || (cp >= 0xC0 && cp != 0xD7 && cp != 0xF7);
    /* U+0482 is the thousands sign; the combining marks after it belong to
     * the letter they sit on, so they count as word characters. */
    return cp >= 0x0400 && cp <= 0x04FF && cp != 0x0482;
}

bool dagi_text_is_space(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

bool dagi_text_is_apostrophe(uint32_t cp)
{
    return cp == '\'' || cp == 0x2019 || cp == 0x02BC;
}

void dagi_textnorm_init(struct dagi_textnorm *it, const char *s, size_t len)
{
    memset(it, 0, sizeof(*it));
    it->s = s ? s : "";
    it->len = s ? len : 0;
}

bool dagi_textnorm_next(struct dagi_textnorm *it, uint32_t *cp)
{
    if (it->has_held) {
        it->has_held = false;
        *cp = it->held;
        return true;
    }
    while (it->pos < it->len) {
        uint32_t c;
        it->pos += dagi_utf8_decode(it->s + it->pos, it->len - it->pos, &c);
        if (dagi_text_is_space(c)) {
            /* Leading space is dropped; trailing space stays pending and is
             * never returned. */
            it->space_pending = it->emitted;
            continue;
        }
        it->emitted = true;
        if (it->space_pending) {
            it->space_pending = false;
            it->held = dagi_text_fold(c);
            it->has_held = true;
            *cp = ' ';
            return true;
        }
        *cp = dagi_text_fold(c);
        return true;
    }
    return false;
}

size_t dagi_text_normalize(const char *s, size_t len, char *out, size_t cap)
{
    struct dagi_textnorm it;
    size_t n = 0, written = 0;
    bool full = cap == 0;
    dagi_textnorm_init(&it, s, len);
    for (uint32_t cp; dagi_textnorm_next(&it, &cp);) {
        char b[4];
        size_t k = dagi_utf8_encode(cp, b);
        /* Only whole characters go into out, so a cut never splits one. */
        if (!full && written + k < cap) {
            memcpy(out + written, b, k);
            written += k;
        } else {
            full = true;
        }
        n += k;
    }
    if (cap > 0)
        out[written] = '\0';
    return n;
}
