/* Sentences, words and stop words for the summary (summary.h): one pass
 * over the text finds the sentences, their content words (as hashes) and
 * their token estimates. */
#include "privacy/summary_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/err.h"
#include "policy/textnorm.h"

#define FNV_OFFSET 1469598103934665603ULL
#define FNV_PRIME 1099511628211ULL
#define ABBREV_MAX 10 /* bytes: the longest abbreviation, "просп" */

/* --- words --- */

/* ASCII letters and digits, folded; 0 for every other byte (the NUL and
 * the non-ASCII ones included). */
#define L(c) [c] = c, [c - 32] = c
static const unsigned char ascii_fold[256] = {
    ['0'] = '0', ['1'] = '1', ['2'] = '2', ['3'] = '3', ['4'] = '4', ['5'] = '5', ['6'] = '6',
    ['7'] = '7', ['8'] = '8', ['9'] = '9', L('a'),     L('b'),     L('c'),     L('d'),
    L('e'),      L('f'),      L('g'),      L('h'),      L('i'),      L('j'),     L('k'),
    L('l'),      L('m'),      L('n'),      L('o'),      L('p'),      L('q'),     L('r'),
    L('s'),      L('t'),      L('u'),      L('v'),      L('w'),      L('x'),     L('y'),
    L('z'),
};
#undef L

static const unsigned char space[256] = {
    [' '] = 1, ['\t'] = 1, ['\r'] = 1, ['\n'] = 1, ['\f'] = 1, ['\v'] = 1,
};

static bool is_space(unsigned char c)
{
    return space[c];
}

/* The code point at t[i] (i < end) and its length. */
static size_t cp_at(const char *t, size_t end, size_t i, uint32_t *cp)
{
    unsigned char c = (unsigned char)t[i];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    return dagi_utf8_decode(t + i, end - i, cp);
}

static bool word_cp(uint32_t cp)
{
    return cp < 0x80 ? ascii_fold[cp] != 0 : dagi_text_is_word(cp);
}

/* The word starting at t[i], a word character: its end, folded hash and
 * length in characters.  Apostrophes count inside a word when a word
 * character follows ("об'єднання", "don't").  t[end] must be readable and
 * no word character: the NUL a dagi_buf or a string literal ends with. */
static size_t word_at(const char *t, size_t end, size_t i, uint64_t *hash_out, unsigned *chars_out)
{
    uint64_t hash = FNV_OFFSET;
    unsigned chars = 0;
    while (i < end) {
        unsigned char f;
        while ((f = ascii_fold[(unsigned char)t[i]]) != 0) { /* the common case */
            hash = (hash ^ f) * FNV_PRIME;
            chars++;
            i++;
        }
        if (i >= end)
            break;
        unsigned char c = (unsigned char)t[i];
        if ((c == 0xd0 || c == 0xd1) && i + 1 < end && ((unsigned char)t[i + 1] & 0xc0) == 0x80) {
            /* Cyrillic U+0400-U+047F, folded as dagi_text_fold does */
            uint32_t u = ((uint32_t)(c & 0x1f) << 6) | ((unsigned char)t[i + 1] & 0x3f);
            if (u >= 0x410 && u <= 0x42f)
                u += 0x20;
            else if (u < 0x410)
                u += 0x50;
            else if (u >= 0x460)
                u = dagi_text_fold(u);
            hash = (hash ^ u) * FNV_PRIME;
            chars++;
            i += 2;
            continue;
        }
        if (c < 0x80 && c != '\'')
            break; /* the usual end of a word: a space or a punctuation mark */
        uint32_t cp, next;
        size_t used = cp_at(t, end, i, &cp);
        bool apostrophe = dagi_text_is_apostrophe(cp);
        if (!word_cp(cp) && !(chars && apostrophe && i + used < end &&
                              (cp_at(t, end, i + used, &next), word_cp(next))))
            break;
        hash = (hash ^ dagi_text_fold(apostrophe ? '\'' : cp)) * FNV_PRIME;
        chars++;
        i += used;
    }
    *hash_out = hash;
    *chars_out = chars;
    return i;
}

/* --- stop words --- */

/* clang-format off */
static const char *const stopwords[] = {
    /* English */
    "a", "about", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as", "at",
    "be", "because", "been", "before", "being", "but", "by", "can", "could", "did", "do",
    "does", "doing", "don't", "for", "from", "had", "has", "have", "having", "he", "her",
    "here", "hers", "him", "his", "how", "i", "i'm", "if", "in", "into", "is", "it", "it's",
    "its", "just", "let", "me", "more", "most", "my", "no", "not", "now", "of", "off", "ok",
    "okay", "on", "once", "only", "or", "other", "our", "ours", "out", "over", "please", "so",
    "some", "such", "than", "thank", "thanks", "that", "the", "their", "them", "then", "there",
    "these", "they", "this", "those", "to", "too", "up", "us", "very", "was", "we", "were",
    "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would",
    "yes", "you", "your", "yours",
    /* Ukrainian */
    "а", "але", "б", "би", "бо", "був", "була", "були", "було", "бути", "в", "вам", "вас", "ви",
    "від", "він", "вона", "вони", "воно", "все", "всі", "де", "для", "до", "дякую", "є", "же",
    "з", "за", "зі", "і", "із", "й", "його", "їх", "її", "коли", "який", "яка", "яке", "які",
    "як", "ми", "мене", "мені", "мій", "моя", "моє", "мої", "на", "нам", "нас", "не", "ні",
    "но", "ну", "о", "об", "от", "по", "при", "про", "с", "та", "так", "також", "там", "те",
    "тем", "ти", "то", "тобі", "тому", "треба", "тут", "у", "уже", "це", "цей", "ця", "ці",
    "через", "чи", "що", "щоб", "я", "як", "якщо", "вже", "ще", "можна", "будь", "ласка",
    "привіт", "вітаю", "добрий", "день", "будь", "ласка",
    /* greetings carry nothing to summarise */
    "hi", "hello", "hey", "dear", "bye", "cheers", "regards",
};
/* clang-format on */

/* An open-addressing set of the stop words' hashes (0 marks a free slot:
 * FNV-1a of a word is never 0 in practice, and a miss costs one probe). */
#define STOP_SLOTS 1024
static uint64_t stop_set[STOP_SLOTS];
static unsigned stop_longest; /* in characters: longer words need no probe */
static pthread_once_t stop_once = PTHREAD_ONCE_INIT;

static void stop_init(void)
{
    for (size_t k = 0; k < sizeof(stopwords) / sizeof(stopwords[0]); k++) {
        uint64_t hash;
        unsigned chars;
        word_at(stopwords[k], strlen(stopwords[k]), 0, &hash, &chars);
        size_t slot = (size_t)hash & (STOP_SLOTS - 1);
        while (stop_set[slot] && stop_set[slot] != hash)
            slot = (slot + 1) & (STOP_SLOTS - 1);
        stop_set[slot] = hash;
        if (chars > stop_longest)
            stop_longest = chars;
    }
}

static bool is_stopword(uint64_t hash, unsigned chars)
{
    if (chars > stop_longest)
        return false;
    for (size_t slot = (size_t)hash & (STOP_SLOTS - 1); stop_set[slot];
         slot = (slot + 1) & (STOP_SLOTS - 1))
        if (stop_set[slot] == hash)
            return true;
    return false;
}

/* --- sentences --- */

/* Abbreviations that a name or a number follows ("Dr. Kovalenko",
 * "вул. Городоцька", "ім. Шевченка"): their full stop never ends a
 * sentence.  Others ("etc.", "грн.", "т.д.") may end one, and are caught
 * by the lower-case rule when they do not ("e.g. this"). */
/* clang-format off */
static const char *const abbreviations[] = {
    "mr",     "mrs", "ms",    "dr",   "prof", "st",  "vs",   "no",  "fig", "vol", "cf",
    "approx", "ca",  "ім",    "вул",  "проф", "д-р", "др",   "пп",  "ст",  "м",   "с",
    "обл",    "р-н", "просп", "пров", "пл",   "див", "напр", "тел", "ч",   "п",   "гр",
};
/* clang-format on */

/* The word (letters, dots, hyphens) that ends just before t[dot]: an
 * abbreviation from the list, or a single letter (an initial). */
static bool abbreviation_before(const char *t, size_t start, size_t dot)
{
    size_t i = dot;
    while (i > start && dot - i <= ABBREV_MAX &&
           (t[i - 1] == '.' || t[i - 1] == '-' || (unsigned char)t[i - 1] >= 0x80 ||
            ((t[i - 1] | 32) >= 'a' && (t[i - 1] | 32) <= 'z')))
        i--;
    size_t n = dot - i;
    if (n == 0 || n > ABBREV_MAX)
        return false;
    char word[ABBREV_MAX * 3 + 1]; /* an invalid byte folds to 3 */
    size_t w = 0, letters = 0;
    for (size_t k = i; k < dot;) {
        uint32_t cp;
        size_t used = dagi_utf8_decode(t + k, dot - k, &cp);
        char enc[4];
        size_t m = dagi_utf8_encode(dagi_text_fold(cp), enc);
        memcpy(word + w, enc, m);
        w += m;
        letters += dagi_text_is_word(cp);
        k += used;
    }
    word[w] = '\0';
    if (letters == 1 && w <= 2)
        return true; /* "J. Smith", "Т. Шевченко" */
    for (size_t k = 0; k < sizeof(abbreviations) / sizeof(abbreviations[0]); k++)
        if (abbreviations[k][0] == word[0] && strcmp(word, abbreviations[k]) == 0)
            return true;
    return false;
}

/* The first letter after t[i..] is lower case: "... e.g. this", "див. нижче". */
static bool lowercase_follows(const char *t, size_t n, size_t i)
{
    while (i < n && is_space((unsigned char)t[i]))
        i++;
    if (i >= n)
        return false;
    uint32_t cp;
    dagi_utf8_decode(t + i, n - i, &cp);
    return dagi_text_is_word(cp) && dagi_text_fold(cp) == cp && !(cp >= '0' && cp <= '9');
}

/* Closing quotes and brackets after the terminator: '"', '\'', ')', ']',
 * '»' (C2 BB), '’' and '”' (E2 80 99 / 9D).  Returns their length. */
static size_t closers(const char *t, size_t n, size_t i)
{
    size_t j = i;
    for (;;) {
        if (j < n && t[j] && strchr("\"')]", t[j]))
            j++;
        else if (j + 1 < n && (unsigned char)t[j] == 0xc2 && (unsigned char)t[j + 1] == 0xbb)
            j += 2;
        else if (j + 2 < n && (unsigned char)t[j] == 0xe2 && (unsigned char)t[j + 1] == 0x80 &&
                 ((unsigned char)t[j + 2] == 0x99 || (unsigned char)t[j + 2] == 0x9d))
            j += 3;
        else
            return j - i;
    }
}

static bool ellipsis_at(const char *t, size_t n, size_t i)
{
    return i + 2 < n && (unsigned char)t[i] == 0xe2 && (unsigned char)t[i + 1] == 0x80 &&
           (unsigned char)t[i + 2] == 0xa6;
}

/* --- the scan --- */

struct scan {
    const char *t;
    size_t n;
    struct dagi_arena *arena;
    struct sum_scan *out;
    size_t scap, hcap;
    /* the sentence being read */
    size_t start, hash_at, words;
    unsigned tokens;
    size_t run; /* start of the current run of non-space bytes, or SIZE_MAX */
};

static int grow(struct dagi_arena *a, void **v, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return DAGI_OK;
    size_t cap2 = *cap ? *cap * 2 : 64;
    void *w = dagi_arena_alloc(a, cap2 * size);
    if (!w)
        return DAGI_ETOOBIG;
    if (n)
        memcpy(w, *v, n * size);
    *v = w;
    *cap = cap2;
    return DAGI_OK;
}

static void close_run(struct scan *sc, size_t at)
{
    if (sc->run != SIZE_MAX)
        sc->tokens += (unsigned)((at - sc->run + 3) / 4);
    sc->run = SIZE_MAX;
}

/* Ends the sentence [start, to) and starts the next at `next`. */
static int end_sentence(struct scan *sc, size_t to, size_t next)
{
    const char *t = sc->t;
    size_t from = sc->start;
    int rc = DAGI_OK;
    while (from < to && is_space((unsigned char)t[from]))
        from++;
    while (to > from && is_space((unsigned char)t[to - 1]))
        to--;
    if (sc->words && to > from) {
        struct sum_scan *o = sc->out;
        rc = grow(sc->arena, (void **)&o->s, &sc->scap, o->ns, sizeof(*o->s));
        if (!rc)
            o->s[o->ns++] = (struct sum_sentence){from, to - from, sc->hash_at, o->nh - sc->hash_at,
                                                  sc->tokens};
    } else {
        sc->out->nh = sc->hash_at; /* no sentence: no words of it either */
    }
    sc->start = next;
    sc->hash_at = sc->out->nh;
    sc->words = 0;
    sc->tokens = 0;
    return rc;
}

static int add_word(struct scan *sc, size_t at, size_t end, uint64_t hash, unsigned chars)
{
    const char *t = sc->t;
    sc->words++;
    bool placeholder = at > 0 && t[at - 1] == '[' && end < sc->n && t[end] == ']';
    bool short_word = chars < 2 && !(t[at] >= '0' && t[at] <= '9');
    if (placeholder || short_word || is_stopword(hash, chars))
        return DAGI_OK;
    struct sum_scan *o = sc->out;
    int rc = grow(sc->arena, (void **)&o->hashes, &sc->hcap, o->nh, sizeof(*o->hashes));
    if (!rc)
        o->hashes[o->nh++] = hash;
    return rc;
}

/* At a terminator t[i]: where the sentence ends (just past the terminators
 * and closing quotes), or 0 when it goes on. */
static size_t sentence_end_at(struct scan *sc, size_t i)
{
    const char *t = sc->t;
    size_t n = sc->n, j = i, stops = 0;
    bool only_dots = true;
    while (j < n && (t[j] == '.' || t[j] == '!' || t[j] == '?' || ellipsis_at(t, n, j))) {
        only_dots = only_dots && t[j] == '.';
        j += ellipsis_at(t, n, j) ? 3 : 1;
        stops++;
    }
    j += closers(t, n, j);
    if (j < n && !is_space((unsigned char)t[j]))
        return 0;
    if (only_dots && stops == 1 &&
        (abbreviation_before(t, sc->start, i) || lowercase_follows(t, n, j)))
        return 0;
    return j;
}

int sum_scan_text(const char *t, size_t n, struct dagi_arena *arena, struct sum_scan *out)
{
    pthread_once(&stop_once, stop_init);
    *out = (struct sum_scan){0};
    struct scan sc = {.t = t, .n = n, .arena = arena, .out = out, .run = SIZE_MAX};
    int rc = DAGI_OK;
    for (size_t i = 0; i < n && rc == DAGI_OK;) {
        unsigned char c = (unsigned char)t[i];
        if (space[c]) {
            close_run(&sc, i);
            if (c == '\n')
                rc = end_sentence(&sc, i, i + 1);
            i++;
            continue;
        }
        if (sc.run == SIZE_MAX)
            sc.run = i;
        uint32_t cp = c;
        size_t used = 1;
        bool word;
        if (c < 0x80) {
            word = ascii_fold[c] != 0;
        } else if ((c == 0xd0 || c == 0xd1) && i + 1 < n &&
                   ((unsigned char)t[i + 1] & 0xc0) == 0x80) {
            word = true; /* U+0400-U+047F: Cyrillic letters */
        } else {
            used = dagi_utf8_decode(t + i, n - i, &cp);
            word = dagi_text_is_word(cp);
        }
        if (word) {
            uint64_t hash;
            unsigned chars;
            size_t end = word_at(t, n, i, &hash, &chars);
            rc = add_word(&sc, i, end, hash, chars);
            i = end;
            continue;
        }
        if (c == '.' || c == '!' || c == '?' || ellipsis_at(t, n, i)) {
            size_t end = sentence_end_at(&sc, i);
            if (end) {
                close_run(&sc, end);
                rc = end_sentence(&sc, end, end);
                i = end;
                continue;
            }
        }
        i += used;
    }
    close_run(&sc, n);
    if (!rc)
        rc = end_sentence(&sc, n, n);
    return rc;
}
