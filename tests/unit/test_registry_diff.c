/* The registry's unified diff (registry/registry_diff.h): exact output for
 * small cases (as GNU diff -u writes them), and for many random pairs that
 * applying the diff to the old text gives the new one and that the number
 * of changed lines is the shortest (checked against an LCS table); past
 * the caps the diff is still correct. */
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
#include "core/mem.h"
#include "registry/registry_diff.h"

static char *diff(const char *a, const char *b, unsigned context)
{
    struct dagi_buf out;
    dagi_buf_init(&out, 1u << 24);
    assert_int_equal(dagi_diff_unified(a, strlen(a), b, strlen(b), "a", "b", context, &out), 0);
    return dagi_buf_detach(&out, NULL);
}

static void expect(const char *a, const char *b, unsigned context, const char *want)
{
    char *got = diff(a, b, context);
    if (strcmp(got, want) != 0)
        fail_msg("diff of\n%s---\n%s---\ngot:\n%s\nwanted:\n%s", a, b, got, want);
    free(got);
}

static void test_equal_is_empty(void **state)
{
    (void)state;
    expect("", "", 3, "");
    expect("a\nb\n", "a\nb\n", 3, "");
}

static void test_small_cases(void **state)
{
    (void)state;
    expect("a\nb\nc\n", "a\nB\nc\n", 3, "--- a\n+++ b\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n");
    expect("", "x\n", 3, "--- a\n+++ b\n@@ -0,0 +1 @@\n+x\n");
    expect("x\n", "", 3, "--- a\n+++ b\n@@ -1 +0,0 @@\n-x\n");
    /* the last line loses its newline */
    expect("a\nb\n", "a\nb", 3,
           "--- a\n+++ b\n@@ -1,2 +1,2 @@\n a\n-b\n+b\n\\ No newline at end of file\n");
    /* context 1: two changes far apart are two hunks, near ones one */
    expect("1\n2\n3\n4\n5\n6\n7\n8\n", "1\nX\n3\n4\n5\n6\nY\n8\n", 1,
           "--- a\n+++ b\n@@ -1,3 +1,3 @@\n 1\n-2\n+X\n 3\n@@ -6,3 +6,3 @@\n 6\n-7\n+Y\n 8\n");
    expect("1\n2\n3\n4\n5\n", "1\nX\n3\nY\n5\n", 1,
           "--- a\n+++ b\n@@ -1,5 +1,5 @@\n 1\n-2\n+X\n 3\n-4\n+Y\n 5\n");
    /* an insertion in the middle */
    expect("a\nb\nd\ne\n", "a\nb\nc\nd\ne\n", 3,
           "--- a\n+++ b\n@@ -1,4 +1,5 @@\n a\n b\n+c\n d\n e\n");
}

/* Applies a unified diff to a (the hunks, in order); the result, or NULL
 * when the diff does not fit a. */
static char *apply(const char *a, const char *patch)
{
    struct dagi_buf out;
    dagi_buf_init(&out, 1u << 24);
    const char *p = patch, *ap = a;
    size_t aline = 0; /* lines of a consumed */
    if (*p) {
        p = strchr(p, '\n') + 1; /* --- */
        p = strchr(p, '\n') + 1; /* +++ */
    }
    while (*p) {
        size_t start, count = 1;
        if (sscanf(p, "@@ -%zu", &start) != 1)
            goto bad;
        const char *comma = p + 4 + strspn(p + 4, "0123456789");
        if (*comma == ',')
            count = strtoul(comma + 1, NULL, 10);
        size_t first = count ? start - 1 : start;
        while (aline < first) { /* copy the lines before the hunk */
            const char *nl = strchr(ap, '\n');
            size_t l = nl ? (size_t)(nl - ap) + 1 : strlen(ap);
            dagi_buf_append(&out, ap, l);
            ap += l, aline++;
        }
        p = strchr(p, '\n') + 1;
        while (*p && *p != '@') {
            const char *nl = strchr(p, '\n');
            size_t l = (size_t)(nl - p);
            bool no_nl = strncmp(nl + 1, "\\ No newline", 12) == 0;
            if (*p == ' ' || *p == '-') {
                const char *anl = strchr(ap, '\n');
                size_t al = anl ? (size_t)(anl - ap) : strlen(ap);
                if (al != l - 1 || memcmp(ap, p + 1, al) != 0 || (bool)anl == no_nl)
                    goto bad;
                if (*p == ' ')
                    dagi_buf_append(&out, ap, al + (anl ? 1 : 0));
                ap += al + (anl ? 1 : 0), aline++;
            } else if (*p == '+') {
                dagi_buf_append(&out, p + 1, l - 1);
                if (!no_nl)
                    dagi_buf_append_char(&out, '\n');
            } else {
                goto bad;
            }
            p = nl + 1;
            if (no_nl)
                p = strchr(p, '\n') + 1;
        }
    }
    dagi_buf_append_str(&out, ap);
    return dagi_buf_detach(&out, NULL);
bad:
    dagi_buf_release(&out);
    return NULL;
}

static size_t count_changes(const char *patch)
{
    size_t n = 0;
    for (const char *p = patch; *p; p = strchr(p, '\n') + 1)
        if ((*p == '+' && strncmp(p, "+++ ", 4)) || (*p == '-' && strncmp(p, "--- ", 4)))
            n++;
    return n;
}

/* Lines of the shortest edit script: n + m - 2 * LCS. */
static size_t shortest(const char *const *a, size_t n, const char *const *b, size_t m)
{
    size_t *t = dagi_xcalloc((n + 1) * (m + 1), sizeof(*t));
    for (size_t i = n; i-- > 0;)
        for (size_t j = m; j-- > 0;)
            t[i * (m + 1) + j] =
                strcmp(a[i], b[j]) == 0
                    ? t[(i + 1) * (m + 1) + j + 1] + 1
                    : (t[(i + 1) * (m + 1) + j] > t[i * (m + 1) + j + 1] ? t[(i + 1) * (m + 1) + j]
                                                                         : t[i * (m + 1) + j + 1]);
    size_t lcs = t[0];
    free(t);
    return n + m - 2 * lcs;
}

static const char *const words[] = {"alpha", "beta", "gamma", "delta", ""};

static void random_text(unsigned *seed, size_t n, const char **lines, struct dagi_buf *text)
{
    for (size_t i = 0; i < n; i++) {
        lines[i] = words[rand_r(seed) % 5];
        dagi_buf_appendf(text, "%s\n", lines[i]);
    }
}

static void test_random_pairs(void **state)
{
    (void)state;
    unsigned seed = 12345;
    for (int round = 0; round < 2000; round++) {
        size_t n = (size_t)rand_r(&seed) % 14, m = (size_t)rand_r(&seed) % 14;
        const char *la[16], *lb[16];
        struct dagi_buf a, b;
        dagi_buf_init(&a, 4096);
        dagi_buf_init(&b, 4096);
        random_text(&seed, n, la, &a);
        random_text(&seed, m, lb, &b);
        unsigned context = (unsigned)rand_r(&seed) % 4;
        char *d = diff(dagi_buf_str(&a), dagi_buf_str(&b), context);
        char *back = apply(dagi_buf_str(&a), d);
        if (!back || strcmp(back, dagi_buf_str(&b)) != 0)
            fail_msg("round %d: the diff does not turn a into b\n%s", round, d);
        assert_int_equal(count_changes(d), shortest(la, n, lb, m));
        free(back);
        free(d);
        dagi_buf_release(&a);
        dagi_buf_release(&b);
    }
}

/* Past DAGI_DIFF_MAX_EDITS the middle is removed and added whole. */
static void test_over_the_cap(void **state)
{
    (void)state;
    struct dagi_buf a, b;
    dagi_buf_init(&a, 1u << 22);
    dagi_buf_init(&b, 1u << 22);
    dagi_buf_append_str(&a, "head\n");
    dagi_buf_append_str(&b, "head\n");
    for (int i = 0; i < 3 * DAGI_DIFF_MAX_EDITS; i++) {
        dagi_buf_appendf(&a, "a%d\n", i);
        dagi_buf_appendf(&b, "%s%d\n", i % 2 ? "a" : "b", i);
    }
    dagi_buf_append_str(&a, "tail\n");
    dagi_buf_append_str(&b, "tail\n");
    char *d = diff(dagi_buf_str(&a), dagi_buf_str(&b), 3);
    char *back = apply(dagi_buf_str(&a), d);
    assert_non_null(back);
    assert_string_equal(back, dagi_buf_str(&b));
    /* the shortest would be 2998 lines; the whole middle is 2 x 2999 */
    assert_int_equal(count_changes(d), 2 * (3 * DAGI_DIFF_MAX_EDITS - 1));
    free(back);
    free(d);
    /* an output cap is an error, not a crash */
    struct dagi_buf small;
    dagi_buf_init(&small, 100);
    assert_int_equal(dagi_diff_unified(a.data, a.len, b.data, b.len, "a", "b", 3, &small),
                     DAGI_ETOOBIG);
    dagi_buf_release(&small);
    dagi_buf_release(&a);
    dagi_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equal_is_empty),
        cmocka_unit_test(test_small_cases),
        cmocka_unit_test(test_random_pairs),
        cmocka_unit_test(test_over_the_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
