/* The random-looking token rule (docs/PRIVACY_GATE.md, "Random-looking
 * tokens").  A maximal run of [A-Za-z0-9+/=_-] of 16 or more bytes is a
 * secret when it looks random, which takes three tests:
 *
 *   1. It mixes at least two of lower case, upper case and digits (a run
 *      of one class is tested only from 20 bytes, and only by 3).
 *   2. Its Shannon entropy per character is at least 70% of what a
 *      uniformly random string of the same length over the same classes
 *      has on average (the expectation is computed, not guessed: see
 *      expected_entropy).  Repetitive runs ("aaaa1111aaaa1111") stop here.
 *   3. It is not shaped like words.  Natural tokens - identifiers, model
 *      names, paths, hyphenated compounds ("ISO-8601-formatted",
 *      "getElementsByTagName", "qwen3-vl-8b-instruct") - split at
 *      separators and case humps into pieces that read as words: few digit
 *      groups, few pieces, camel case with one capital per word, and
 *      letter pairs that are common in English.  Random strings fail at
 *      least one of these almost always.
 *
 * Letter pairs are scored by a log-likelihood ratio, English against
 * uniform, in quarter bits (pair_llr): the pair frequencies of the English
 * documentation in Debian's /usr/share/doc (323 MB), with add-one smoothing,
 * plus the pairs of Ukrainian romanisation (zh, kh, ts, yi, ia ...).
 *
 * Measured on 200 000 random strings per alphabet (scripts in the docs):
 * of 32-character strings over [A-Za-z0-9], [0-9a-f] or base64url none
 * passed; of 16-character ones up to 1% pass, as they must sometimes look
 * like words. */
#include "privacy/redact_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#define MIN_RUN 16
#define MIN_RUN_ONE_CLASS 20
#define ENTROPY_SHARE 0.7
#define TABLE_MAX_N 128 /* past this the expectation is flat enough to reuse */
#define ACRONYM_MAX 4   /* an all-capitals piece this short is an acronym */

enum { CLASS_LOWER = 1, CLASS_UPPER = 2, CLASS_DIGIT = 4, CLASS_SYMBOL = 8, CLASS_HEX = 16 };

/* pair_llr[a][b]: log2(P_english(b | a) / (1/26)) in quarter bits, clamped
 * to [-24, 24]. */
/* clang-format off */
static const signed char pair_llr[26][26] = {
    /* a */ {-13,  -1,   2,   3, -11,  -9,  -2, -16,  -1, -24,  -2,   5,   1,
               8, -20,  -3, -24,   6,   5,   8,  -3,  -1, -13, -13,  -6, -20},
    /* b */ {  5,  -7,  -5,  -5,   7,  -8,   3, -17,   5,  -2, -16,   7,  -9,
             -18,   4,  -3, -21,   1,  -1,  -9,   7, -21, -24, -10,   3, -16},
    /* c */ {  4, -12,   0, -10,   4, -11, -19,   9,  -3, -19,   2,   2,  -9,
             -18,  11,  -8, -24,  -1,  -7,   5,  -3, -15, -24, -18,  -6, -20},
    /* d */ {  6,   0,  -8,   4,  13,  -9, -13,  -5,   7, -12, -13,  -3, -11,
             -13,   4, -12, -24,  -2,   0, -10,   0, -15, -15, -24, -10, -24},
    /* e */ {  1,  -6,   2,   6,  -4,   0,  -6, -13, -10,  -9, -15,   1,  -1,
               6, -14,  -4, -10,   8,   7,   3, -16,  -4,   0,   0,  -7, -24},
    /* f */ {  3,  -9,  -3,  -6,   3,   3, -17, -24,  12, -24, -24,  -1, -15,
             -12,   9, -12, -24,   4,  -3,  -1,   2, -24, -22, -24,  -5, -24},
    /* g */ { -2, -17,  -2,   0,  11, -11,  -7,  -1,   6, -19, -24,  -2,  -4,
               6,   4,  -3, -24,   2,   1,  -4,   4, -18, -13, -24, -16, -16},
    /* h */ { 10,  -8, -19,  -8,  13, -18, -22, -14,   5, -24, -16,  -6, -10,
             -10,   7, -11, -24,   1, -11,   4,   1, -24, -13, -24, -15, -24},
    /* i */ {  3,   1,   1,  -3,   2,  -3,   0, -24, -23, -23,  -3,   3,  -2,
              10,   4,  -6, -17,  -4,   4,   6,   0,  -6, -24,  -4, -24,  -7},
    /* j */ { 13, -18, -12,  -5,   7, -19, -20, -19,  -4, -19, -17, -12,   5,
             -14,   3, -11, -21, -18,  10, -11,   5, -15,  -7, -24, -24, -24},
    /* k */ {  2, -12, -11, -13,  13, -15,  -6,  12,   2, -24, -19,  -6, -16,
              -8,   1,  -8, -24,  -3,   1,  -8,  -2, -23, -13, -24, -15, -24},
    /* l */ {  6, -13, -13,   0,  10, -10, -14, -24,  11, -10, -16,   6, -16,
             -18,   5, -11, -24, -16,   1,   0,  -1, -10, -15, -24,  -1, -22},
    /* m */ { 10,  -3, -12,  -6,   9, -23, -21, -19,   6, -21, -16,  -4,   4,
             -12,   7,   9, -24, -22,  -3, -12,  -4, -19, -24, -17,  -9, -24},
    /* n */ {  3, -17,   3,   6,   6,   0,   7, -15,   2, -20,  -8,  -8, -10,
              -5,   5, -11, -24, -18,   6,   7,   0,  -7, -22, -24, -10, -19},
    /* o */ { -7,  -5,   0,   4, -13,   1,  -6, -18,  -8, -13, -10,   0,   7,
              10,  -2,   1, -24,   8,  -1,  -1,   1,  -1,  -2, -17, -20, -19},
    /* p */ {  8, -22,  -7,  -3,   7, -12,  -6,  -5,   0, -24, -10,   4, -15,
              -9,   6,   1, -24,   7,   1,   4,   0, -19, -19, -20,   2,  -6},
    /* q */ {-15, -19,  -8, -15, -12, -17, -15, -21,  -5, -22, -23,   1, -14,
             -11, -17, -15, -16,  -2,  -9,  -9,  18, -14, -19, -16, -22, -22},
    /* r */ {  5, -14,  -1,  -4,  12, -10,   1, -24,   6, -24,  -6,  -8,  -2,
              -2,   5, -11, -24,  -1,   2,   3,  -2,  -9, -15, -24,  -1, -24},
    /* s */ {  0, -19,  -1, -16,  10, -12, -17,   5,   4, -24,  -8,  -7,  -9,
             -12,   1,   0, -18,  -5,   5,  10,   3, -17, -13, -24,  -4, -23},
    /* t */ {  4, -22,  -5,  -7,   9,  -9, -21,   9,   7,  -8, -16,  -6,  -3,
             -18,   5,  -4, -24,   3,   5,  -1,  -4, -24, -11, -14,  -2, -21},
    /* u */ { -5,   2,  -1,  -4,   2,  -6,  -2, -22,   3, -24, -16,   5,   1,
               7, -15,   3, -24,   6,   7,   7, -24, -23, -24,  -7, -24, -15},
    /* v */ { 12, -20, -13, -18,  14, -16, -14, -23,   7, -24, -20, -14,  -6,
             -14,  -1,  -7, -24,  -2, -10, -14, -17, -21, -24, -13, -24, -24},
    /* w */ {  8, -18, -12, -12,   6, -19, -16,   7,  13, -24,  -8,  -9, -16,
              -2,   4, -18, -24,   2,  -2, -15, -17, -20,  -7, -24, -24, -24},
    /* x */ {  2, -16,   2, -12,   7,  -7, -14, -14,   4, -24, -16,  -7,   0,
             -18, -10,  11, -24, -12,   2,  10, -11, -15, -13,  -3, -10, -14},
    /* y */ { 10, -11, -12, -14,  -7, -20,  -6, -21,  10, -24, -24,  -5,  -5,
              -2,  -4,   5, -24,  -5,   2,   3,  10, -24, -10, -24, -24, -16},
    /* z */ {  2, -15, -21, -16,   9, -22, -22,  16,   1, -13, -19,  -7, -10,
             -13,  -4, -24, -24, -22, -15, -18, -10, -24, -24, -24, -13,  -6},
};
/* clang-format on */

/* --- 2: entropy against its expectation --- */

static float expected[32][TABLE_MAX_N + 1];
static pthread_once_t expected_once = PTHREAD_ONCE_INIT;

static unsigned alphabet_size(unsigned classes)
{
    unsigned a = (classes & CLASS_HEX)
                     ? 16
                     : ((classes & CLASS_LOWER) ? 26 : 0) + ((classes & CLASS_UPPER) ? 26 : 0) +
                           ((classes & CLASS_DIGIT) ? 10 : 0);
    return a + ((classes & CLASS_SYMBOL) ? 5 : 0);
}

/* E[H] of n characters drawn uniformly from a alphabet of size a: each
 * symbol's count is Binomial(n, 1/a), and H sums -(k/n) log2(k/n) over
 * the symbols. */
static double expected_entropy(unsigned n, unsigned a)
{
    double p = 1.0 / a, q = 1.0 - p;
    double pmf = pow(q, n), e = 0.0;
    for (unsigned k = 1; k <= n; k++) {
        pmf *= (double)(n - k + 1) / k * (p / q);
        double f = (double)k / n;
        e -= pmf * f * log2(f);
    }
    return a * e;
}

static void expected_init(void)
{
    for (unsigned classes = 0; classes < 32; classes++) {
        unsigned a = alphabet_size(classes);
        for (unsigned n = MIN_RUN; n <= TABLE_MAX_N && a > 1; n++)
            expected[classes][n] = (float)expected_entropy(n, a);
    }
}

static double entropy(const char *s, size_t n)
{
    unsigned counts[128] = {0};
    for (size_t i = 0; i < n; i++)
        counts[(unsigned char)s[i] & 127]++;
    double sum = 0.0;
    for (size_t c = 0; c < 128; c++)
        if (counts[c] > 1)
            sum += counts[c] * log2((double)counts[c]);
    return log2((double)n) - sum / (double)n;
}

/* --- 3: the shape of words --- */

struct shape {
    bool wordlike; /* no segment broke a rule */
    unsigned pieces;
    unsigned pairs;
    int llr; /* quarter bits over `pairs` letter pairs */
};

static int lower_of(unsigned char c)
{
    return pii_is_upper(c) ? c - 'A' : c - 'a';
}

static void score_pairs(const char *p, size_t n, struct shape *sh)
{
    for (size_t k = 1; k < n; k++) {
        sh->llr += pair_llr[lower_of((unsigned char)p[k - 1])][lower_of((unsigned char)p[k])];
        sh->pairs++;
    }
}

/* One segment (between separators): pieces are digit runs, capital runs
 * (an acronym; the last capital of a run that a lower-case letter follows
 * starts the next word) and words (a capital or none, then lower case). */
static void shape_segment(const char *s, size_t n, bool hex, struct shape *sh)
{
    struct piece {
        size_t at, len;
        char kind; /* 'd' digits, 'A' capitals, 'w' word */
    } pieces[64];
    size_t np = 0, letters = 0, uppers = 0, humps = 0;
    size_t digit_groups = 0, longest_digits = 0, acronyms = 0;
    bool overflow = false;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        char kind;
        if (pii_is_digit((unsigned char)s[i])) {
            while (j < n && pii_is_digit((unsigned char)s[j]))
                j++;
            kind = 'd';
        } else if (pii_is_upper((unsigned char)s[i])) {
            while (j < n && pii_is_upper((unsigned char)s[j]))
                j++;
            if (j < n && pii_is_lower((unsigned char)s[j]) && j - i > 1) {
                j--; /* "XMLHttp": XML, then Http */
                kind = 'A';
            } else if (j < n && pii_is_lower((unsigned char)s[j])) {
                while (j < n && pii_is_lower((unsigned char)s[j]))
                    j++;
                kind = 'w';
            } else {
                kind = 'A';
            }
        } else {
            while (j < n && pii_is_lower((unsigned char)s[j]))
                j++;
            kind = 'w';
        }
        if (np < (sizeof(pieces) / sizeof(pieces[0])))
            pieces[np] = (struct piece){i, j - i, kind};
        else
            overflow = true;
        np++;
        i = j;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (pii_is_alpha(c))
            letters++;
        if (pii_is_upper(c))
            uppers++;
        if (pii_is_lower(c) && i > 0 && i + 1 < n && pii_is_upper((unsigned char)s[i - 1]) &&
            pii_is_upper((unsigned char)s[i + 1]))
            humps++;
    }
    for (size_t k = 0; k < np && k < (sizeof(pieces) / sizeof(pieces[0])); k++) {
        if (pieces[k].kind == 'd') {
            digit_groups++;
            if (pieces[k].len > longest_digits)
                longest_digits = pieces[k].len;
        } else if (pieces[k].kind == 'A' && pieces[k].len >= 2 && pieces[k].len <= ACRONYM_MAX) {
            acronyms++;
        }
    }
    sh->pieces += (unsigned)np;
    if (overflow)
        sh->wordlike = false;
    if (n > 4) {
        /* "x86", "iPhone15", "DE89370400...": a word and a number or two;
         * hex letters sit anywhere in long runs of digits, not only in
         * front of one ("DE8937...", "ABC123456" are identifiers) */
        bool prefix_and_number = np == 2 && pieces[0].kind != 'd' && pieces[1].kind == 'd';
        if (letters && (digit_groups > 2 || (hex && longest_digits > 4 && !prefix_and_number)))
            sh->wordlike = false;
        if (np * 3 > n + 3)
            sh->wordlike = false;
    }
    if (letters >= 12 && uppers && uppers < letters && (uppers * 5 > letters * 2 || humps >= 2))
        sh->wordlike = false;
    /* A couple of acronyms are words we cannot score ("SQL", "GPT"); many
     * capital runs are what random mixed case looks like. */
    bool skip_acronyms = acronyms <= 2;
    for (size_t k = 0; k < np && k < (sizeof(pieces) / sizeof(pieces[0])); k++) {
        if (pieces[k].kind == 'd')
            continue;
        if (skip_acronyms && pieces[k].kind == 'A' && pieces[k].len >= 2 &&
            pieces[k].len <= ACRONYM_MAX)
            continue;
        score_pairs(s + pieces[k].at, pieces[k].len, sh);
    }
}

static bool is_separator(unsigned char c)
{
    return c == '+' || c == '/' || c == '=' || c == '_' || c == '-';
}

static void shape_of(const char *s, size_t n, bool hex, struct shape *sh)
{
    *sh = (struct shape){.wordlike = true};
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && !is_separator((unsigned char)s[j]))
            j++;
        if (j > i)
            shape_segment(s + i, j - i, hex, sh);
        i = j + 1;
    }
    /* Words are pieces of three or more characters on average; random
     * strings break into a piece every two or so. */
    if (sh->pieces * 5 > n * 2)
        sh->wordlike = false;
}

bool dagi_pii_looks_random(const char *tok, size_t n)
{
    if (n < MIN_RUN)
        return false;
    unsigned classes = 0;
    bool hex_lower = true, hex_upper = true;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)tok[i];
        if (pii_is_lower(c)) {
            classes |= CLASS_LOWER;
            hex_upper = false;
            if (c > 'f')
                hex_lower = false;
        } else if (pii_is_upper(c)) {
            classes |= CLASS_UPPER;
            hex_lower = false;
            if (c > 'F')
                hex_upper = false;
        } else if (pii_is_digit(c)) {
            classes |= CLASS_DIGIT;
        } else if (pii_is_token_char(c)) {
            classes |= CLASS_SYMBOL;
        } else {
            return false; /* not a token run at all */
        }
    }
    int mixed = !!(classes & CLASS_LOWER) + !!(classes & CLASS_UPPER) + !!(classes & CLASS_DIGIT);
    if ((classes & CLASS_DIGIT) && (classes & (CLASS_LOWER | CLASS_UPPER)) &&
        (hex_lower || hex_upper))
        classes |= CLASS_HEX;
    pthread_once(&expected_once, expected_init);
    double want = ENTROPY_SHARE * expected[classes][n < TABLE_MAX_N ? n : TABLE_MAX_N];
    struct shape sh;
    shape_of(tok, n, (classes & CLASS_HEX) != 0, &sh);
    if (mixed < 2) {
        /* One class: only long gibberish (a word of one case has pairs that
         * read as English; a number is the card and phone rules' job). */
        if (n < MIN_RUN_ONE_CLASS || sh.pairs == 0)
            return false;
        return entropy(tok, n) >= want && sh.llr < -2 * (int)sh.pairs;
    }
    if (entropy(tok, n) < want)
        return false;
    /* More pairs are more evidence: a longer token must read better. */
    bool words =
        sh.wordlike &&
        (sh.pairs == 0 || (sh.pairs >= 12 ? sh.llr * 10 >= 16 * (int)sh.pairs : sh.llr >= 0));
    return !words;
}
