/* Splitting answers for sendMessage: paragraph, line, sentence and space
 * boundaries in that order, hard cuts at code-point boundaries, UTF-16
 * counting (emoji 2, Cyrillic 1), trimming, the part cap, and a brute-force
 * check of the invariants on generated text. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "telegram/tg_split.h"

#define MAX_PARTS 64

static struct dagi_tg_slice parts[MAX_PARTS];

static size_t split(const char *text, size_t len, size_t max_units)
{
    size_t n = 0;
    assert_int_equal(dagi_tg_split(text, len, max_units, parts, MAX_PARTS, &n), 0);
    return n;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Every part: non-empty, within the limit, trimmed, starting and ending on a
 * code-point boundary; parts in order and only whitespace between them. */
static void check_cuts(const char *text, size_t len, size_t max_units, size_t n, bool valid_utf8)
{
    size_t prev_end = 0;
    for (size_t i = 0; i < n; i++) {
        const struct dagi_tg_slice *p = &parts[i];
        assert_true(p->length > 0);
        assert_true(p->offset >= prev_end);
        assert_true(p->offset + p->length <= len);
        for (size_t b = prev_end; b < p->offset; b++)
            assert_true(is_space(text[b]));
        assert_false(is_space(text[p->offset]));
        assert_false(is_space(text[p->offset + p->length - 1]));
        assert_true(dagi_tg_utf16_units(text + p->offset, p->length) <= max_units);
        /* In valid UTF-8 a continuation byte never starts a part or follows
         * its end (broken UTF-8 may have stray ones anywhere). */
        if (valid_utf8) {
            assert_true(((unsigned char)text[p->offset] & 0xC0) != 0x80);
            if (p->offset + p->length < len)
                assert_true(((unsigned char)text[p->offset + p->length] & 0xC0) != 0x80);
        }
        prev_end = p->offset + p->length;
    }
    for (size_t b = prev_end; b < len; b++)
        assert_true(is_space(text[b]));
}

static void check_invariants(const char *text, size_t len, size_t max_units, size_t n)
{
    check_cuts(text, len, max_units, n, true);
}

static void test_units(void **state)
{
    assert_int_equal(dagi_tg_utf16_units("", 0), 0);
    assert_int_equal(dagi_tg_utf16_units("abc", 3), 3);
    assert_int_equal(dagi_tg_utf16_units("Привіт", strlen("Привіт")), 6); /* 12 bytes */
    assert_int_equal(dagi_tg_utf16_units("😀", 4), 2);
    assert_int_equal(dagi_tg_utf16_units("中文", 6), 2);
    /* Broken UTF-8: each stray byte counts once; a truncated sequence too. */
    assert_int_equal(dagi_tg_utf16_units("\xff\x80", 2), 2);
    assert_int_equal(dagi_tg_utf16_units("\xf0\x9f", 2), 2);
}

static void test_paragraphs(void **state)
{
    /* 30 paragraphs of exactly 298 characters, separated by blank lines:
     * 30 * 298 + 29 * 2 = 8998 characters.  Each part takes the most whole
     * paragraphs that fit: 13 * 298 + 12 * 2 = 3898 <= 4096 < 4198, so
     * 13 + 13 + 4 paragraphs = 3 parts. */
    struct dagi_buf b;
    dagi_buf_init(&b, 1 << 20);
    for (int p = 0; p < 30; p++) {
        if (p)
            dagi_buf_append_str(&b, "\n\n");
        for (int w = 0; w < 49; w++) /* 49 * 6 = 294 characters, sentences included */
            dagi_buf_append_str(&b, w % 7 == 6 ? "done. " : "words ");
        dagi_buf_append_str(&b, "end."); /* 298 */
    }
    assert_int_equal(b.len, 8998);
    size_t n = split(b.data, b.len, DAGI_TG_MESSAGE_MAX_UNITS);
    assert_int_equal(n, 3);
    check_invariants(b.data, b.len, DAGI_TG_MESSAGE_MAX_UNITS, n);
    for (size_t i = 0; i < n; i++) {
        assert_true(parts[i].length <= DAGI_TG_MESSAGE_MAX_UNITS);
        /* Each part ends a paragraph: a blank line or the text's end follows. */
        size_t end = parts[i].offset + parts[i].length;
        assert_true(end == b.len || strncmp(b.data + end, "\n\n", 2) == 0);
    }
    assert_int_equal(parts[0].length, 13 * 298 + 12 * 2);
    assert_int_equal(parts[1].length, 13 * 298 + 12 * 2);
    assert_int_equal(parts[2].length, 4 * 298 + 3 * 2);
    dagi_buf_release(&b);
}

static void test_boundary_preference(void **state)
{
    /* Limit 40.  A line break beats the later sentence end and spaces. */
    const char *t = "First line here\nSecond. Third sentence goes on and on";
    size_t n = split(t, strlen(t), 40);
    assert_int_equal(parts[0].length, strlen("First line here"));
    check_invariants(t, strlen(t), 40, n);

    /* No line break: the sentence end wins over later spaces. */
    t = "One two three four five six. Seven eight nine ten eleven twelve";
    n = split(t, strlen(t), 40);
    assert_int_equal(parts[0].length, strlen("One two three four five six."));
    assert_memory_equal(t + parts[1].offset, "Seven", 5);

    /* "?", "!" and "…" end sentences too; "。" needs no space after it. */
    t = "Is this the question you asked? I think so";
    n = split(t, strlen(t), 40);
    assert_int_equal(parts[0].length, strlen("Is this the question you asked?"));
    t = "Ellipsis trails off here… and then more";
    n = split(t, strlen(t), 30);
    assert_int_equal(parts[0].length, strlen("Ellipsis trails off here…"));
    t = "这是第一句话。这是第二句话。这是第三句话";
    n = split(t, strlen(t), 10);
    assert_int_equal(n, 3);
    assert_int_equal(parts[0].length, strlen("这是第一句话。"));
    check_invariants(t, strlen(t), 10, n);

    /* Only spaces: cut at the last one that fits. */
    t = "alpha beta gamma delta epsilon";
    n = split(t, strlen(t), 16);
    assert_int_equal(parts[0].length, strlen("alpha beta gamma"));
    check_invariants(t, strlen(t), 16, n);

    /* The order is strict: an early paragraph break beats a later line
     * break, keeping the next paragraph whole. */
    t = "Hi\n\nthis is a long line of text\nand more"; /* 40 units */
    n = split(t, strlen(t), 36);
    assert_int_equal(n, 2);
    assert_int_equal(parts[0].length, 2);
    assert_int_equal(parts[1].offset, 4);
    assert_int_equal(parts[1].length, 36);
    check_invariants(t, strlen(t), 36, n);

    /* A separator right at the limit is used. */
    t = "0123456789 abc";
    n = split(t, strlen(t), 10);
    assert_int_equal(n, 2);
    assert_int_equal(parts[0].length, 10);
    assert_int_equal(parts[1].offset, 11);
}

static void test_hard_cuts(void **state)
{
    /* One 10,000-letter word: hard cuts at 4096, 4096, 1808. */
    static char word[10000];
    memset(word, 'x', sizeof(word));
    size_t n = split(word, sizeof(word), DAGI_TG_MESSAGE_MAX_UNITS);
    assert_int_equal(n, 3);
    assert_int_equal(parts[0].length, 4096);
    assert_int_equal(parts[1].offset, 4096);
    assert_int_equal(parts[2].length, 10000 - 2 * 4096);

    /* 10,000 Cyrillic letters (2 bytes, 1 unit each): cuts every 4096
     * letters, i.e. 8192 bytes, never inside a letter. */
    static char cyr[20000];
    for (size_t i = 0; i < sizeof(cyr); i += 2)
        memcpy(cyr + i, "ж", 2);
    n = split(cyr, sizeof(cyr), DAGI_TG_MESSAGE_MAX_UNITS);
    assert_int_equal(n, 3);
    assert_int_equal(parts[0].length, 8192);
    assert_int_equal(parts[1].length, 8192);
    assert_int_equal(parts[2].length, 20000 - 2 * 8192);
    check_invariants(cyr, sizeof(cyr), DAGI_TG_MESSAGE_MAX_UNITS, n);

    /* 5,000 emoji (4 bytes, 2 units each): 2048 emoji per part; an odd
     * limit cannot take half an emoji, so 4095 also gives 2047 per part. */
    static char emoji[20000];
    for (size_t i = 0; i < sizeof(emoji); i += 4)
        memcpy(emoji + i, "😀", 4);
    n = split(emoji, sizeof(emoji), DAGI_TG_MESSAGE_MAX_UNITS);
    assert_int_equal(n, 3);
    assert_int_equal(parts[0].length, 2048 * 4);
    assert_int_equal(parts[2].length, (5000 - 2 * 2048) * 4);
    check_invariants(emoji, sizeof(emoji), DAGI_TG_MESSAGE_MAX_UNITS, n);
    n = split(emoji, sizeof(emoji), 4095);
    assert_int_equal(parts[0].length, 2047 * 4);
    check_invariants(emoji, sizeof(emoji), 4095, n);
}

static void test_exact_limit(void **state)
{
    /* Exactly 4096 units in each script is one part. */
    static char ascii[4096];
    memset(ascii, 'a', sizeof(ascii));
    assert_int_equal(split(ascii, sizeof(ascii), 4096), 1);
    assert_int_equal(parts[0].length, 4096);

    static char cyr[8192]; /* 4096 letters */
    for (size_t i = 0; i < sizeof(cyr); i += 2)
        memcpy(cyr + i, "я", 2);
    assert_int_equal(split(cyr, sizeof(cyr), 4096), 1);

    static char emoji[8192]; /* 2048 emoji = 4096 units */
    for (size_t i = 0; i < sizeof(emoji); i += 4)
        memcpy(emoji + i, "🎉", 4);
    assert_int_equal(split(emoji, sizeof(emoji), 4096), 1);
    /* One more emoji is 4098 units: two parts. */
    static char emoji2[8196];
    for (size_t i = 0; i < sizeof(emoji2); i += 4)
        memcpy(emoji2 + i, "🎉", 4);
    assert_int_equal(split(emoji2, sizeof(emoji2), 4096), 2);
    assert_int_equal(parts[1].length, 4);
}

static void test_trimming_and_empty(void **state)
{
    size_t n = 99;
    assert_int_equal(dagi_tg_split("", 0, 4096, parts, MAX_PARTS, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(dagi_tg_split(" \n\t\r\n ", 6, 4096, parts, MAX_PARTS, &n), 0);
    assert_int_equal(n, 0);
    const char *t = "\n\n  hello world  \n\n";
    n = split(t, strlen(t), 4096);
    assert_int_equal(n, 1);
    assert_int_equal(parts[0].offset, 4);
    assert_int_equal(parts[0].length, strlen("hello world"));
    /* Runs of blank lines between parts never become parts. */
    t = "aaaa\n\n\n\n\n\n\n\nbbbb";
    n = split(t, strlen(t), 6);
    assert_int_equal(n, 2);
    assert_int_equal(parts[1].offset, strlen(t) - 4);
}

static void test_errors(void **state)
{
    size_t n = 99;
    assert_int_equal(dagi_tg_split("ab", 2, 1, parts, MAX_PARTS, &n), DAGI_EINVAL);
    assert_int_equal(dagi_tg_split("a b c", 5, 2, parts, 2, &n), DAGI_ETOOBIG);
    assert_int_equal(n, 99);
    assert_int_equal(dagi_tg_split("a b", 3, 2, parts, 2, &n), 0);
    assert_int_equal(n, 2);
}

static void test_invariants_generated(void **state)
{
    /* Pseudo-random mixes of ASCII, Cyrillic, emoji, CJK, punctuation and
     * whitespace, including broken UTF-8, under several limits. */
    static const char *const atoms[] = {"a", "word", " ",  "\n", "\n\n", ". ", "! ",   "ж",
                                        "😀", "中",   "。", "…",  "… ",   "\t", "\xff", "\xe2\x80"};
    unsigned seed = 12345;
    static char text[6000];
    for (int round = 0; round < 300; round++) {
        size_t len = 0;
        size_t target = 1 + (seed % sizeof(text));
        while (len + 8 < target) {
            seed = seed * 1103515245u + 12345u;
            /* Even rounds stay valid UTF-8; odd ones add the broken atoms. */
            size_t natoms = sizeof(atoms) / sizeof(atoms[0]) - (round % 2 ? 0 : 2);
            const char *a = atoms[(seed >> 16) % natoms];
            memcpy(text + len, a, strlen(a));
            len += strlen(a);
        }
        static const size_t limits[] = {2, 3, 7, 64, 4096};
        size_t max_units = limits[round % 5];
        size_t n = 0;
        int rc = dagi_tg_split(text, len, max_units, parts, MAX_PARTS, &n);
        if (rc == DAGI_ETOOBIG)
            continue; /* tiny limits on long text: more than MAX_PARTS */
        assert_int_equal(rc, 0);
        check_cuts(text, len, max_units, n, round % 2 == 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_units),
        cmocka_unit_test(test_paragraphs),
        cmocka_unit_test(test_boundary_preference),
        cmocka_unit_test(test_hard_cuts),
        cmocka_unit_test(test_exact_limit),
        cmocka_unit_test(test_trimming_and_empty),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_invariants_generated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
