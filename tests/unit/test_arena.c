/* Unit tests for src/core/arena.c: the capped per-request arena. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "core/arena.h"

#define ALIGNED16(p) ((((uintptr_t)(p)) & 15u) == 0)

static void test_alloc_alignment(void **state)
{
    (void)state;
    struct dagi_arena *a = dagi_arena_new(0);
    static const size_t sizes[] = {1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 100, 1000, 1025, 5000, 1, 9};
    for (size_t round = 0; round < 20; round++)
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            unsigned char *p = dagi_arena_alloc(a, sizes[i]);
            assert_non_null(p);
            assert_true(ALIGNED16(p));
            memset(p, 0xa5, sizes[i]); /* ASan: the whole size is ours */
        }
    /* Strings are aligned too. */
    assert_true(ALIGNED16(dagi_arena_strdup(a, "x")));
    assert_true(ALIGNED16(dagi_arena_sprintf(a, "%d", 5)));
    dagi_arena_free(a);
}

static void test_many_small_allocations(void **state)
{
    (void)state;
    struct dagi_arena *a = dagi_arena_new(0);
    enum { N = 2000, SZ = 24 };
    static unsigned char *ptrs[N];
    for (int i = 0; i < N; i++) {
        ptrs[i] = dagi_arena_alloc(a, SZ);
        assert_non_null(ptrs[i]);
        assert_true(ALIGNED16(ptrs[i]));
        memset(ptrs[i], i & 0xff, SZ);
    }
    /* 2000 * 32 bytes spans many 4 KiB blocks; nothing overlapped. */
    assert_int_equal(dagi_arena_used(a), (size_t)N * 32);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < SZ; j++)
            assert_int_equal(ptrs[i][j], i & 0xff);
    dagi_arena_free(a);
}

static void test_large_keeps_head_space(void **state)
{
    (void)state;
    struct dagi_arena *a = dagi_arena_new(0);
    char *small1 = dagi_arena_alloc(a, 100); /* 112 bytes of the first block */
    assert_non_null(small1);
    /* Does not fit in the rest of the first block: gets a block of its own. */
    char *big = dagi_arena_alloc(a, 4000);
    assert_non_null(big);
    assert_true(ALIGNED16(big));
    memset(big, 'B', 4000);
    /* Small allocations continue right where the first one ended. */
    char *small2 = dagi_arena_alloc(a, 16);
    assert_ptr_equal(small2, small1 + 112);
    char *small3 = dagi_arena_alloc(a, 1);
    assert_ptr_equal(small3, small2 + 16);

    /* A huge one (bigger than a block) behaves the same. */
    char *huge = dagi_arena_alloc(a, 100000);
    assert_non_null(huge);
    memset(huge, 'H', 100000);
    char *small4 = dagi_arena_alloc(a, 32);
    assert_ptr_equal(small4, small3 + 16);
    for (int i = 0; i < 4000; i++)
        assert_int_equal(big[i], 'B');
    assert_int_equal(dagi_arena_used(a), 112 + 4000 + 16 + 16 + 100000 + 32);
    dagi_arena_free(a);
}

static void test_large_that_fits_uses_head(void **state)
{
    (void)state;
    struct dagi_arena *a = dagi_arena_new(0);
    char *p1 = dagi_arena_alloc(a, 16);
    char *p2 = dagi_arena_alloc(a, 2000); /* > 1 KiB but fits the head */
    assert_ptr_equal(p2, p1 + 16);
    char *p3 = dagi_arena_alloc(a, 16);
    assert_ptr_equal(p3, p2 + 2000);
    dagi_arena_free(a);
}

static void test_cap_boundary(void **state)
{
    (void)state;
    struct dagi_arena *a = dagi_arena_new(1024);
    void *p = dagi_arena_alloc(a, 1024); /* exactly the cap */
    assert_non_null(p);
    memset(p, 0, 1024);
    assert_int_equal(dagi_arena_used(a), 1024);
    assert_null(dagi_arena_alloc(a, 1));
    assert_null(dagi_arena_zalloc(a, 1));
    assert_null(dagi_arena_strdup(a, ""));
    assert_null(dagi_arena_strndup(a, "abc", 2));
    assert_null(dagi_arena_sprintf(a, "%s", ""));
    assert_int_equal(dagi_arena_used(a), 1024);
    dagi_arena_free(a);

    a = dagi_arena_new(1024);
    assert_null(dagi_arena_alloc(a, 1025)); /* one past the cap */
    assert_int_equal(dagi_arena_used(a), 0);
    assert_non_null(dagi_arena_alloc(a, 1000)); /* counts as 1008 */
    assert_non_null(dagi_arena_alloc(a, 16));   /* 1024: still fits */
    assert_null(dagi_arena_alloc(a, 1));
    assert_int_equal(dagi_arena_used(a), 1024);
    dagi_arena_free(a);

    a = dagi_arena_new(4096);
    for (int i = 0; i < 256; i++)
        assert_non_null(dagi_arena_alloc(a, 16));
    assert_null(dagi_arena_alloc(a, 16));
    assert_int_equal(dagi_arena_used(a), 4096);
    dagi_arena_free(a);
}

static void test_cap_huge_requests(void **state)
{
    (void)state;
    struct dagi_arena *a = dagi_arena_new(0);
    /* Sizes whose rounding would wrap are refused, not wrapped to 0. */
    assert_null(dagi_arena_alloc(a, SIZE_MAX));
    assert_null(dagi_arena_alloc(a, SIZE_MAX - 14));
    assert_null(dagi_arena_alloc(a, ((size_t)64 << 20) + 1)); /* default cap 64 MiB */
    assert_null(dagi_arena_strndup(a, "x", SIZE_MAX));
    assert_int_equal(dagi_arena_used(a), 0);
    assert_non_null(dagi_arena_alloc(a, 1));
    dagi_arena_free(a);
}

static void test_zalloc_zeroes(void **state)
{
    (void)state;
    struct dagi_arena *a = dagi_arena_new(0);
    unsigned char *dirty = dagi_arena_alloc(a, 200);
    memset(dirty, 0xff, 200);
    dagi_arena_reset(a);
    unsigned char *z = dagi_arena_zalloc(a, 200);
    assert_ptr_equal(z, dirty); /* the same, dirtied memory */
    for (int i = 0; i < 200; i++)
        assert_int_equal(z[i], 0);
    unsigned char *big = dagi_arena_zalloc(a, 10000);
    assert_non_null(big);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(big[i], 0);
    dagi_arena_free(a);
}

static void test_strings(void **state)
{
    (void)state;
    struct dagi_arena *a = dagi_arena_new(0);
    char *s = dagi_arena_strdup(a, "hello world");
    assert_string_equal(s, "hello world");
    assert_string_equal(dagi_arena_strdup(a, ""), "");
    assert_string_equal(dagi_arena_strndup(a, "hello world", 5), "hello");
    assert_string_equal(dagi_arena_strndup(a, "hello", 0), "");
    /* strndup copies from a buffer that is not NUL-terminated. */
    const char raw[4] = {'a', 'b', 'c', 'd'};
    assert_string_equal(dagi_arena_strndup(a, raw, 4), "abcd");
    assert_string_equal(dagi_arena_sprintf(a, "%s-%d-%05.1f", "x", 42, 3.14159), "x-42-003.1");
    assert_string_equal(dagi_arena_sprintf(a, "%s", ""), "");
    /* 'used' counts the NUL and the rounding: "hello world" = 12 -> 16. */
    struct dagi_arena *b = dagi_arena_new(0);
    dagi_arena_strdup(b, "hello world");
    assert_int_equal(dagi_arena_used(b), 16);
    dagi_arena_strdup(b, "0123456789abcdef"); /* 17 -> 32 */
    assert_int_equal(dagi_arena_used(b), 48);
    dagi_arena_free(b);
    /* A string bigger than a block. */
    char big[3000];
    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    char *p = dagi_arena_sprintf(a, "<%s>", big);
    assert_non_null(p);
    assert_int_equal(strlen(p), sizeof(big) + 1);
    assert_int_equal(p[0], '<');
    assert_int_equal(p[sizeof(big)], '>');
    assert_string_equal(dagi_arena_strdup(a, big), big);
    /* The original string is still intact after all that. */
    assert_string_equal(s, "hello world");
    dagi_arena_free(a);
}

static void test_sprintf_over_cap(void **state)
{
    (void)state;
    struct dagi_arena *a = dagi_arena_new(64);
    assert_null(dagi_arena_sprintf(a, "%0100d", 1));
    assert_int_equal(dagi_arena_used(a), 0);
    char *p = dagi_arena_sprintf(a, "%063d", 1); /* 64 bytes with the NUL */
    assert_non_null(p);
    assert_int_equal(strlen(p), 63);
    assert_int_equal(dagi_arena_used(a), 64);
    dagi_arena_free(a);
}

static void test_used_accounting(void **state)
{
    (void)state;
    struct dagi_arena *a = dagi_arena_new(0);
    assert_int_equal(dagi_arena_used(a), 0);
    dagi_arena_alloc(a, 1);
    assert_int_equal(dagi_arena_used(a), 16);
    dagi_arena_alloc(a, 16);
    assert_int_equal(dagi_arena_used(a), 32);
    dagi_arena_alloc(a, 17);
    assert_int_equal(dagi_arena_used(a), 64);
    dagi_arena_alloc(a, 0);
    assert_int_equal(dagi_arena_used(a), 64);
    dagi_arena_alloc(a, 5000); /* own block */
    assert_int_equal(dagi_arena_used(a), 64 + 5008);
    for (int i = 0; i < 500; i++) /* across new blocks */
        dagi_arena_alloc(a, 48);
    assert_int_equal(dagi_arena_used(a), 64 + 5008 + 500 * 48);
    dagi_arena_reset(a);
    assert_int_equal(dagi_arena_used(a), 0);
    dagi_arena_free(a);
}

static void test_reset_reuses(void **state)
{
    (void)state;
    struct dagi_arena *a = dagi_arena_new(8u << 20);
    char *first = dagi_arena_alloc(a, 16);
    for (int round = 0; round < 5; round++) {
        /* Large blocks, many small blocks, and large blocks behind new heads. */
        for (int i = 0; i < 8; i++) {
            char *big = dagi_arena_alloc(a, 100000 + (size_t)i * 1000);
            assert_non_null(big);
            memset(big, 'L', 100000);
        }
        for (int i = 0; i < 1000; i++) {
            char *p = dagi_arena_alloc(a, 40);
            assert_non_null(p);
            memset(p, 's', 40);
            if (i % 100 == 0)
                memset(dagi_arena_alloc(a, 3000), 'M', 3000);
        }
        assert_true(dagi_arena_used(a) > 800000);
        dagi_arena_reset(a);
        assert_int_equal(dagi_arena_used(a), 0);
        /* The first block is kept and handed out from its start again. */
        char *again = dagi_arena_alloc(a, 16);
        assert_ptr_equal(again, first);
        memset(again, 'x', 16);
    }
    /* The cap applies afresh after a reset. */
    dagi_arena_reset(a);
    char *all = dagi_arena_alloc(a, 8u << 20);
    assert_non_null(all);
    memset(all, 0, 8u << 20);
    assert_null(dagi_arena_alloc(a, 1));
    dagi_arena_reset(a);
    assert_non_null(dagi_arena_alloc(a, 1));
    dagi_arena_free(a);
}

static void test_reset_fresh_and_twice(void **state)
{
    (void)state;
    struct dagi_arena *a = dagi_arena_new(0);
    dagi_arena_reset(a);
    dagi_arena_reset(a);
    assert_string_equal(dagi_arena_strdup(a, "still works"), "still works");
    dagi_arena_free(a);
    dagi_arena_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_alignment),
        cmocka_unit_test(test_many_small_allocations),
        cmocka_unit_test(test_large_keeps_head_space),
        cmocka_unit_test(test_large_that_fits_uses_head),
        cmocka_unit_test(test_cap_boundary),
        cmocka_unit_test(test_cap_huge_requests),
        cmocka_unit_test(test_zalloc_zeroes),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_sprintf_over_cap),
        cmocka_unit_test(test_used_accounting),
        cmocka_unit_test(test_reset_reuses),
        cmocka_unit_test(test_reset_fresh_and_twice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
