/* Splitting text for sendMessage; the contract is in tg_split.h.
 *
 * One forward scan per part: from the part's start, walk code points while
 * they fit in max_units, remembering the last cut of each class seen.  The
 * scan stops at the first code point that does not fit (the hard limit),
 * and the last cut of the best class seen wins.  Invariant: the part start is never
 * whitespace, so every cut lies strictly after it and no part is empty. */
#include "telegram/tg_split.h"

#include <stdbool.h>

#include "core/err.h"

enum cut_class { CUT_PARAGRAPH, CUT_LINE, CUT_SENTENCE, CUT_SPACE, CUT_CLASSES };

struct cut {
    size_t at; /* byte where the part ends (exclusive) */
    bool set;
};

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Bytes and UTF-16 units of the code point at s[0].  A malformed sequence
 * (bad lead byte, missing continuation, truncated) counts as one byte and
 * one unit, so the walk never swallows the bytes after it. */
static size_t code_point(const unsigned char *s, size_t left, size_t *units)
{
    unsigned char c = s[0];
    size_t n;
    *units = 1;
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0)
        n = 2;
    else if ((c & 0xF0) == 0xE0)
        n = 3;
    else if ((c & 0xF8) == 0xF0)
        n = 4;
    else
        return 1;
    if (n > left)
        return 1;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 1;
    if (n == 4)
        *units = 2; /* outside the BMP: a surrogate pair in UTF-16 */
    return n;
}

size_t dagi_tg_utf16_units(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t b = 0, total = 0;
    while (b < len) {
        size_t u;
        b += code_point(s + b, len - b, &u);
        total += u;
    }
    return total;
}

static void remember(struct cut *c, size_t at)
{
    c->at = at, c->set = true;
}

/* Scans from `pos` (not whitespace) and returns where this part ends. */
static size_t find_cut(const unsigned char *s, size_t len, size_t pos, size_t max_units)
{
    struct cut cuts[CUT_CLASSES] = {0};
    bool line_blank = false; /* the current line holds only whitespace so far */
    size_t b = pos, u = 0;
    while (b < len) {
        /* A cut at b leaves u units in the part, which fits by the loop
         * invariant; a cut after a 1-unit punctuation mark leaves u + 1. */
        unsigned char c = s[b];
        if (c == '\n') {
            remember(&cuts[line_blank ? CUT_PARAGRAPH : CUT_LINE], b);
            line_blank = true;
        } else if (c == ' ' || c == '\t') {
            remember(&cuts[CUT_SPACE], b);
        } else if (!is_space(c)) {
            line_blank = false;
        }
        if (u + 1 <= max_units) {
            if ((c == '.' || c == '!' || c == '?') && b + 1 < len &&
                (s[b + 1] == ' ' || s[b + 1] == '\t'))
                remember(&cuts[CUT_SENTENCE], b + 1);
            /* U+2026 "…" followed by a space, and U+3002 "。" which CJK
             * text follows without one. */
            if (b + 3 < len && s[b] == 0xE2 && s[b + 1] == 0x80 && s[b + 2] == 0xA6 &&
                s[b + 3] == ' ')
                remember(&cuts[CUT_SENTENCE], b + 3);
            if (b + 3 <= len && s[b] == 0xE3 && s[b + 1] == 0x80 && s[b + 2] == 0x82)
                remember(&cuts[CUT_SENTENCE], b + 3);
        }
        size_t nu, nb = code_point(s + b, len - b, &nu);
        if (u + nu > max_units)
            break;
        b += nb, u += nu;
    }
    if (b >= len)
        return len;
    /* The best class seen, else the hard limit (a code-point boundary). */
    for (int k = 0; k < CUT_CLASSES; k++)
        if (cuts[k].set)
            return cuts[k].at;
    return b;
}

int dagi_tg_split(const char *text, size_t len, size_t max_units, struct dagi_tg_slice *parts,
                  size_t max_parts, size_t *count)
{
    if (max_units < 2)
        return DAGI_EINVAL;
    const unsigned char *s = (const unsigned char *)text;
    size_t n = 0, pos = 0;
    for (;;) {
        while (pos < len && is_space(s[pos]))
            pos++;
        if (pos >= len)
            break;
        size_t cut = find_cut(s, len, pos, max_units);
        size_t end = cut;
        while (end > pos && is_space(s[end - 1]))
            end--;
        if (n == max_parts)
            return DAGI_ETOOBIG;
        parts[n++] = (struct dagi_tg_slice){pos, end - pos};
        pos = cut;
    }
    *count = n;
    return 0;
}
