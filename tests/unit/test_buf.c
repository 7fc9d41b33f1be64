/* Unit tests for src/core/buf.c: the capped, always NUL-terminated buffer. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"

static void assert_contents(const struct dagi_buf *b, const char *want)
{
    assert_int_equal(b->len, strlen(want));
    assert_string_equal(dagi_buf_str(b), want);
    if (b->data)
        assert_int_equal(b->data[b->len], '\0');
}

static void test_init_empty(void **state)
{
    (void)state;
    struct dagi_buf b;
    dagi_buf_init(&b, 100);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 100);
    assert_string_equal(dagi_buf_str(&b), "");
    dagi_buf_release(&b);
    assert_null(b.data);
    assert_int_equal(b.cap, 100);
}

static void test_append_variants(void **state)
{
    (void)state;
    struct dagi_buf b;
    dagi_buf_init(&b, 1024);
    assert_int_equal(dagi_buf_append(&b, "abc", 3), DAGI_OK);
    assert_contents(&b, "abc");
    assert_int_equal(dagi_buf_append_str(&b, "def"), DAGI_OK);
    assert_int_equal(dagi_buf_append_char(&b, '!'), DAGI_OK);
    assert_int_equal(dagi_buf_appendf(&b, " %d-%s-%c", 42, "x", 'y'), DAGI_OK);
    assert_contents(&b, "abcdef! 42-x-y");
    /* Empty appends are fine and change nothing. */
    assert_int_equal(dagi_buf_append(&b, NULL, 0), DAGI_OK);
    assert_int_equal(dagi_buf_append_str(&b, ""), DAGI_OK);
    assert_int_equal(dagi_buf_appendf(&b, "%s", ""), DAGI_OK);
    assert_contents(&b, "abcdef! 42-x-y");
    dagi_buf_release(&b);
}

static void test_append_binary_with_nul(void **state)
{
    (void)state;
    struct dagi_buf b;
    dagi_buf_init(&b, 64);
    assert_int_equal(dagi_buf_append(&b, "a\0b", 3), DAGI_OK);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "a\0b", 4); /* plus the terminating NUL */
    dagi_buf_release(&b);
}

static void test_empty_append_gives_nul_terminated_data(void **state)
{
    (void)state;
    struct dagi_buf b;
    dagi_buf_init(&b, 10);
    assert_int_equal(dagi_buf_append(&b, "", 0), DAGI_OK);
    assert_non_null(b.data);
    assert_contents(&b, "");
    dagi_buf_release(&b);
}

static void test_growth_keeps_contents(void **state)
{
    (void)state;
    struct dagi_buf b;
    dagi_buf_init(&b, 1 << 20);
    char expect[10001];
    for (int i = 0; i < 10000; i++) {
        char c = (char)('a' + i % 26);
        expect[i] = c;
        assert_int_equal(dagi_buf_append_char(&b, c), DAGI_OK);
        assert_int_equal(b.data[b.len], '\0');
    }
    expect[10000] = '\0';
    assert_contents(&b, expect);
    assert_true(b.alloc >= b.len + 1);
    dagi_buf_release(&b);
}

static void test_cap_append_refused_unchanged(void **state)
{
    (void)state;
    struct dagi_buf b;
    dagi_buf_init(&b, 8);
    assert_int_equal(dagi_buf_append_str(&b, "12345"), DAGI_OK);
    assert_int_equal(dagi_buf_append_str(&b, "6789"), DAGI_ETOOBIG);
    assert_contents(&b, "12345");
    assert_int_equal(dagi_buf_append(&b, "xyzw", 4), DAGI_ETOOBIG);
    assert_contents(&b, "12345");
    /* A length that would overflow len + extra is refused, not wrapped. */
    assert_int_equal(dagi_buf_append(&b, "x", SIZE_MAX), DAGI_ETOOBIG);
    assert_int_equal(dagi_buf_append(&b, "x", SIZE_MAX - 2), DAGI_ETOOBIG);
    assert_contents(&b, "12345");
    dagi_buf_release(&b);
}

static void test_cap_exact_fits(void **state)
{
    (void)state;
    struct dagi_buf b;
    dagi_buf_init(&b, 8);
    assert_int_equal(dagi_buf_append_str(&b, "12345678"), DAGI_OK);
    assert_contents(&b, "12345678");
    assert_true(b.alloc >= 9);
    assert_true(b.alloc <= 9); /* never allocates past cap + 1 */
    assert_int_equal(dagi_buf_append_char(&b, 'x'), DAGI_ETOOBIG);
    assert_int_equal(dagi_buf_append(&b, "", 0), DAGI_OK);
    assert_contents(&b, "12345678");
    dagi_buf_release(&b);

    dagi_buf_init(&b, 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(dagi_buf_append_char(&b, (char)('0' + i)), DAGI_OK);
    assert_int_equal(dagi_buf_append_char(&b, '8'), DAGI_ETOOBIG);
    assert_contents(&b, "01234567");
    dagi_buf_release(&b);
}

static void test_cap_zero(void **state)
{
    (void)state;
    struct dagi_buf b;
    dagi_buf_init(&b, 0);
    assert_int_equal(dagi_buf_append_char(&b, 'a'), DAGI_ETOOBIG);
    assert_int_equal(dagi_buf_append(&b, "", 0), DAGI_OK);
    assert_contents(&b, "");
    dagi_buf_release(&b);
}

static void test_cap_appendf(void **state)
{
    (void)state;
    struct dagi_buf b;
    dagi_buf_init(&b, 10);
    assert_int_equal(dagi_buf_appendf(&b, "%d", 12345), DAGI_OK);
    assert_int_equal(dagi_buf_appendf(&b, "%s", "abcdef"), DAGI_ETOOBIG);
    assert_contents(&b, "12345");
    assert_int_equal(dagi_buf_appendf(&b, "%s", "abcde"), DAGI_OK); /* exactly at the cap */
    assert_contents(&b, "12345abcde");
    assert_int_equal(dagi_buf_appendf(&b, "%c", 'z'), DAGI_ETOOBIG);
    assert_contents(&b, "12345abcde");
    dagi_buf_release(&b);

    /* A long format on a fresh buffer that grows more than once. */
    dagi_buf_init(&b, 4096);
    assert_int_equal(dagi_buf_appendf(&b, "%0300d|%s", 7, "end"), DAGI_OK);
    assert_int_equal(b.len, 304);
    assert_int_equal(b.data[299], '7');
    assert_string_equal(b.data + 300, "|end");
    dagi_buf_release(&b);
}

static int vappend_helper(struct dagi_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int vappend_helper(struct dagi_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = dagi_buf_vappendf(b, fmt, ap);
    va_end(ap);
    return rc;
}

static void test_vappendf(void **state)
{
    (void)state;
    struct dagi_buf b;
    dagi_buf_init(&b, 32);
    assert_int_equal(vappend_helper(&b, "%s=%u", "n", 7u), DAGI_OK);
    assert_contents(&b, "n=7");
    assert_int_equal(vappend_helper(&b, "%040d", 1), DAGI_ETOOBIG);
    assert_contents(&b, "n=7");
    dagi_buf_release(&b);
}

static void test_consume(void **state)
{
    (void)state;
    struct dagi_buf b;
    dagi_buf_init(&b, 64);
    dagi_buf_consume(&b, 0); /* on an empty, never allocated buffer */
    dagi_buf_consume(&b, 5);
    assert_contents(&b, "");
    assert_int_equal(dagi_buf_append_str(&b, "hello world"), DAGI_OK);
    dagi_buf_consume(&b, 0);
    assert_contents(&b, "hello world");
    dagi_buf_consume(&b, 6);
    assert_contents(&b, "world");
    dagi_buf_consume(&b, 4);
    assert_contents(&b, "d");
    dagi_buf_consume(&b, 1);
    assert_contents(&b, "");
    assert_int_equal(dagi_buf_append_str(&b, "again"), DAGI_OK);
    dagi_buf_consume(&b, 1000);
    assert_contents(&b, "");
    /* Consuming frees room under the cap. */
    assert_int_equal(dagi_buf_append(&b, "0123456789012345678901234567890123456789012345678901234567890123", 64),
                     DAGI_OK);
    assert_int_equal(dagi_buf_append_char(&b, 'x'), DAGI_ETOOBIG);
    dagi_buf_consume(&b, 60);
    assert_contents(&b, "0123");
    assert_int_equal(dagi_buf_append_char(&b, 'x'), DAGI_OK);
    assert_contents(&b, "0123x");
    dagi_buf_release(&b);
}

static void test_detach(void **state)
{
    (void)state;
    struct dagi_buf b;
    dagi_buf_init(&b, 64);
    size_t len = 99;
    char *p = dagi_buf_detach(&b, &len);
    assert_non_null(p);
    assert_string_equal(p, "");
    assert_int_equal(len, 0);
    free(p);

    assert_int_equal(dagi_buf_append_str(&b, "payload"), DAGI_OK);
    p = dagi_buf_detach(&b, &len);
    assert_string_equal(p, "payload");
    assert_int_equal(len, 7);
    /* The buffer is empty, keeps its cap and is usable again. */
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.alloc, 0);
    assert_int_equal(b.cap, 64);
    assert_int_equal(dagi_buf_append_str(&b, "next"), DAGI_OK);
    assert_contents(&b, "next");
    free(p);

    p = dagi_buf_detach(&b, NULL); /* len_out may be NULL */
    assert_string_equal(p, "next");
    free(p);

    /* After a reset the detached string is "" too. */
    assert_int_equal(dagi_buf_append_str(&b, "gone"), DAGI_OK);
    dagi_buf_reset(&b);
    p = dagi_buf_detach(&b, &len);
    assert_string_equal(p, "");
    assert_int_equal(len, 0);
    free(p);
    dagi_buf_release(&b);
}

static void test_reset(void **state)
{
    (void)state;
    struct dagi_buf b;
    dagi_buf_init(&b, 16);
    dagi_buf_reset(&b); /* never allocated */
    assert_contents(&b, "");
    assert_int_equal(dagi_buf_append_str(&b, "0123456789abcdef"), DAGI_OK);
    char *data = b.data;
    size_t alloc = b.alloc;
    dagi_buf_reset(&b);
    assert_contents(&b, "");
    assert_ptr_equal(b.data, data); /* memory kept */
    assert_int_equal(b.alloc, alloc);
    assert_int_equal(dagi_buf_append_str(&b, "0123456789abcdef"), DAGI_OK); /* cap is per content */
    assert_contents(&b, "0123456789abcdef");
    dagi_buf_release(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
}

static void escape_equal(const char *in, size_t len, const char *want)
{
    struct dagi_buf b;
    dagi_buf_init(&b, 4096);
    assert_int_equal(dagi_buf_append_json_escaped(&b, in, len), DAGI_OK);
    assert_contents(&b, want);
    dagi_buf_release(&b);
}

static void test_json_escape(void **state)
{
    (void)state;
    escape_equal("plain text", 10, "plain text");
    escape_equal("", 0, "");
    escape_equal("say \"hi\"", 8, "say \\\"hi\\\"");
    escape_equal("C:\\dir\\", 7, "C:\\\\dir\\\\");
    escape_equal("a\nb\rc\td", 7, "a\\nb\\rc\\td");
    escape_equal("\x01\x1f\b\f", 4, "\\u0001\\u001f\\u0008\\u000c");
    escape_equal("\x7f", 1, "\\u007f");
    escape_equal("nul\0here", 8, "nul\\u0000here");
    /* '/' needs no escape; UTF-8 passes through byte for byte. */
    escape_equal("a/b", 3, "a/b");
    const char *utf8 = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xd0\xbf\xd1\x80\xd0\xb8";
    escape_equal(utf8, strlen(utf8), utf8);
    /* Only `len` bytes are read. */
    escape_equal("abc\"def", 3, "abc");
}

static void test_json_escape_appends(void **state)
{
    (void)state;
    struct dagi_buf b;
    dagi_buf_init(&b, 64);
    assert_int_equal(dagi_buf_append_str(&b, "{\"k\":\""), DAGI_OK);
    assert_int_equal(dagi_buf_append_json_escaped(&b, "v\"1", 3), DAGI_OK);
    assert_int_equal(dagi_buf_append_str(&b, "\"}"), DAGI_OK);
    assert_contents(&b, "{\"k\":\"v\\\"1\"}");
    dagi_buf_release(&b);
}

static void test_json_escape_cap_unchanged(void **state)
{
    (void)state;
    struct dagi_buf b;
    dagi_buf_init(&b, 12);
    assert_int_equal(dagi_buf_append_str(&b, "pre:"), DAGI_OK);
    /* Fits raw (8 bytes) but not escaped: fails as a whole, nothing half
     * appended. */
    assert_int_equal(dagi_buf_append_json_escaped(&b, "ab\"cd\"ef", 8), DAGI_ETOOBIG);
    assert_contents(&b, "pre:");
    assert_int_equal(dagi_buf_append_json_escaped(&b, "\x01\x02", 2), DAGI_ETOOBIG);
    assert_contents(&b, "pre:");
    assert_int_equal(dagi_buf_append_json_escaped(&b, "0123456789", 10), DAGI_ETOOBIG);
    assert_contents(&b, "pre:");
    /* The exact cap still fits. */
    assert_int_equal(dagi_buf_append_json_escaped(&b, "ab\"cd\"", 6), DAGI_OK);
    assert_contents(&b, "pre:ab\\\"cd\\\"");
    dagi_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_empty),
        cmocka_unit_test(test_append_variants),
        cmocka_unit_test(test_append_binary_with_nul),
        cmocka_unit_test(test_empty_append_gives_nul_terminated_data),
        cmocka_unit_test(test_growth_keeps_contents),
        cmocka_unit_test(test_cap_append_refused_unchanged),
        cmocka_unit_test(test_cap_exact_fits),
        cmocka_unit_test(test_cap_zero),
        cmocka_unit_test(test_cap_appendf),
        cmocka_unit_test(test_vappendf),
        cmocka_unit_test(test_consume),
        cmocka_unit_test(test_detach),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_json_escape),
        cmocka_unit_test(test_json_escape_appends),
        cmocka_unit_test(test_json_escape_cap_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
