/* Small UTF-8 text normalisation for the behaviour policy: case folding,
 * word starts and whitespace collapsing for ASCII, Latin-1 and Cyrillic
 * (U+0400-U+04FF, Ukrainian included), from tables in textnorm.c - no ICU.
 *
 * Scope, on purpose: these are the scripts the agents' users write in.  Code
 * points outside them are neither folded nor letters, so an emoji or a Greek
 * letter right before a word still lets that word start.
 *
 * Invalid UTF-8 never fails: each bad byte b comes out as the code point
 * 0xDC00 + b (a lone surrogate, as Python's "surrogateescape" does), so two
 * different broken texts still normalise differently.
 *
 * Nothing here allocates; every function is pure and thread safe. */
#ifndef DAGI_POLICY_TEXTNORM_H
#define DAGI_POLICY_TEXTNORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Decodes one code point from s[0..len) (len > 0) into *cp and returns the
 * bytes it used (1-4).  Overlong forms, surrogates and values past U+10FFFF
 * are invalid: one byte is used and *cp is 0xDC00 + that byte. */
size_t dagi_utf8_decode(const char *s, size_t len, uint32_t *cp);

/* Writes cp as UTF-8 into out (room for 4 bytes) and returns the length.
 * Surrogates are written in the generic 3-byte form so that escaped bytes
 * survive a round trip into a hash. */
size_t dagi_utf8_encode(uint32_t cp, char out[4]);

/* Simple lower-case folding: A-Z, Latin-1 capitals (not U+00D7), and the
 * Cyrillic capitals of U+0400-U+04FF (Ё Є І Ї Ґ ...).  Others unchanged. */
uint32_t dagi_text_fold(uint32_t cp);

/* A letter or digit of the covered scripts. */
bool dagi_text_is_word(uint32_t cp);

/* Unicode white space (ASCII, NBSP, U+2000-U+200A, U+2028/9, U+3000, ...). */
bool dagi_text_is_space(uint32_t cp);

/* An apostrophe that may sit inside a word (', U+2019, U+02BC): Ukrainian
 * writes "об'єднання" as one word. */
bool dagi_text_is_apostrophe(uint32_t cp);

/* Iterates over the normalised text: case folded, leading and trailing
 * white space dropped, every inner run of white space as one U+0020.
 *
 *     struct dagi_textnorm it;
 *     dagi_textnorm_init(&it, s, len);
 *     for (uint32_t cp; dagi_textnorm_next(&it, &cp);) ...
 */
struct dagi_textnorm {
    const char *s;
    size_t len, pos;
    bool emitted;       /* a non-space has been returned */
    bool space_pending; /* white space seen since the last non-space */
    uint32_t held;      /* the non-space to return after the pending space */
    bool has_held;
};
void dagi_textnorm_init(struct dagi_textnorm *it, const char *s, size_t len);
bool dagi_textnorm_next(struct dagi_textnorm *it, uint32_t *cp);

/* Normalises s[0..len) into out (cap bytes, NUL-terminated when cap > 0) and
 * returns the full normalised length in bytes, like snprintf: a result >= cap
 * means out was cut. */
size_t dagi_text_normalize(const char *s, size_t len, char *out, size_t cap);

#endif
