/* Unit tests for src/core/redact.c and its use by the JSON logger (log.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/redact.h"

/* ---- dagi_redact_is_secret_key ---- */

static void test_secret_keys(void **state)
{
    (void)state;
    static const char *const secret[] = {
        "authorization", "Authorization", "AUTHORIZATION", "proxy-authorization",
        "x-api-key", "X-Api-Key", "api_key", "apikey", "admin.key", "key",
        "bot_token", "X-Auth-Token", "access_token", "tokens",
        "webhook_secret", "client_secret_id", "password", "Password", "db_password_file",
        "passwd", "cookie", "Set-Cookie", "aws_credentials",
        /* Ends in "key": redacted.  Over-redaction is the safe side. */
        "monkey",
    };
    for (size_t i = 0; i < sizeof(secret) / sizeof(secret[0]); i++)
        if (!dagi_redact_is_secret_key(secret[i]))
            fail_msg("\"%s\" should be a secret key", secret[i]);
}

static void test_non_secret_keys(void **state)
{
    (void)state;
    static const char *const plain[] = {
        "name", "model", "url", "message", "trace_id", "user", "addr", "status",
        /* "keyboard" contains "key" but does not end in it. */
        "keyboard", "key_id", "ke", "",
    };
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
        if (dagi_redact_is_secret_key(plain[i]))
            fail_msg("\"%s\" should not be a secret key", plain[i]);
    assert_false(dagi_redact_is_secret_key(NULL));
}

/* ---- dagi_redact_append ---- */

static void redacts_to(const char *in, const char *want)
{
    struct dagi_buf b;
    dagi_buf_init(&b, 4096);
    assert_int_equal(dagi_redact_append(&b, in, strlen(in)), DAGI_OK);
    if (strcmp(dagi_buf_str(&b), want) != 0)
        fail_msg("redact(\"%s\")\n  got  \"%s\"\n  want \"%s\"", in, dagi_buf_str(&b), want);
    assert_int_equal(b.len, strlen(want));
    dagi_buf_release(&b);
}

static void test_bearer(void **state)
{
    (void)state;
    redacts_to("Bearer abc123", "Bearer [redacted]");
    redacts_to("Authorization: Bearer abc.def-ghi_jkl", "Authorization: Bearer [redacted]");
    redacts_to("bearer xyz", "bearer [redacted]");
    redacts_to("BEARER xyz", "BEARER [redacted]");
    redacts_to("BeArEr xyz", "BeArEr [redacted]");
    /* A JWT and base64 with + / = are one token. */
    redacts_to("Bearer eyJhbGciOi.eyJzdWIiOi.c2ln+/=_-~ next",
               "Bearer [redacted] next");
    /* The token ends at a character that cannot be in one. */
    redacts_to("header \"Bearer abc\", done", "header \"Bearer [redacted]\", done");
    /* Extra spaces or a tab (dagi_bearer_token accepts them) still mask. */
    redacts_to("Bearer   spaced", "Bearer   [redacted]");
    redacts_to("Bearer\ttabbed", "Bearer\t[redacted]");
    redacts_to("Bearer a Bearer b", "Bearer [redacted] Bearer [redacted]");
}

static void test_bearer_no_false_positive(void **state)
{
    (void)state;
    redacts_to("Bearer", "Bearer");
    redacts_to("Bearer ", "Bearer ");
    redacts_to("Bearer   ", "Bearer   ");
    redacts_to("the token type is Bearer", "the token type is Bearer");
    redacts_to("Bearer, ok", "Bearer, ok");
    redacts_to("Bearers are fine", "Bearers are fine");
    redacts_to("Bearer \"quoted\"", "Bearer \"quoted\"");
}

static void test_telegram_url(void **state)
{
    (void)state;
    redacts_to("https://api.telegram.org/bot123456:AAH-abc_def/sendMessage",
               "https://api.telegram.org/bot123456:[redacted]/sendMessage");
    redacts_to("https://api.telegram.org/bot123456:AAH-abc_def/getUpdates?offset=5",
               "https://api.telegram.org/bot123456:[redacted]/getUpdates?offset=5");
    redacts_to("POST /bot9:x", "POST /bot9:[redacted]");
    redacts_to("bot123456:AAH-abc_def", "bot123456:[redacted]");
}

static void test_telegram_no_false_positive(void **state)
{
    (void)state;
    redacts_to("robot 123", "robot 123");
    redacts_to("bot 123:abc", "bot 123:abc");
    redacts_to("bot123 is up", "bot123 is up");
    redacts_to("bot123:", "bot123:");
    redacts_to("bot123: ready", "bot123: ready");
    redacts_to("botany:class", "botany:class");
}

static void test_dagi_keys(void **state)
{
    (void)state;
    redacts_to("dagi_admin_abcdef", "dagi_admin_[redacted]");
    redacts_to("key=dagi_admin_Ab-c_D9 rest", "key=dagi_admin_[redacted] rest");
    redacts_to("\"dagi_sk_xyz\"", "\"dagi_sk_[redacted]\"");
    redacts_to("two: dagi_sk_1, dagi_svc_2.", "two: dagi_sk_[redacted], dagi_svc_[redacted].");
    /* user API keys: the 12-character id stays readable, the secret goes */
    redacts_to("key dagi_abcdefgh2345_Zm9vYmFyLWJhei1xdXV4LXNlY3JldC10b2tlbi0xMjM0 used",
               "key dagi_abcdefgh2345_[redacted] used");
    redacts_to("dagi_http_client_new", "dagi_http_client_new");
    /* Our own identifiers are not keys. */
    redacts_to("dagi_metrics_series_dropped_total", "dagi_metrics_series_dropped_total");
    /* Not keys. */
    redacts_to("dagi_", "dagi_");
    redacts_to("dagi_admin", "dagi_admin");
    redacts_to("dagi_admin_", "dagi_admin_");
    redacts_to("dagi__x", "dagi__x");
    redacts_to("mydagi_admin_abc", "mydagi_admin_abc");
}

static void test_sk_keys(void **state)
{
    (void)state;
    redacts_to("sk-proj-abc", "sk-[redacted]");
    redacts_to("key sk-abc123, then", "key sk-[redacted], then");
    redacts_to("OPENAI_API_KEY=sk-abc", "OPENAI_API_KEY=sk-[redacted]");
    /* Not keys. */
    redacts_to("desk-lamp", "desk-lamp");
    redacts_to("risk-free task-sk", "risk-free task-sk");
    redacts_to("sk-", "sk-");
    redacts_to("sk- nothing", "sk- nothing");
}

static void test_prose_unchanged(void **state)
{
    (void)state;
    const char *prose = "The robot 123 put the desk-lamp on a skiff; a bot said \"ok\" and "
                        "the token type is Bearer";
    redacts_to(prose, prose);
    redacts_to("", "");
    const char *utf8 = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
    redacts_to(utf8, utf8);
}

static void test_mixed_and_len(void **state)
{
    (void)state;
    redacts_to("{\"auth\":\"Bearer t1\",\"url\":\"/bot1:t2/x\",\"k\":\"sk-t3\",\"a\":\"dagi_admin_t4\"}",
               "{\"auth\":\"Bearer [redacted]\",\"url\":\"/bot1:[redacted]/x\",\"k\":\"sk-[redacted]\","
               "\"a\":\"dagi_admin_[redacted]\"}");
    /* Only `len` bytes are read; a secret cut by len is still masked. */
    struct dagi_buf b;
    dagi_buf_init(&b, 256);
    assert_int_equal(dagi_redact_append(&b, "Bearer abcdef", 9), DAGI_OK);
    assert_string_equal(dagi_buf_str(&b), "Bearer [redacted]");
    dagi_buf_reset(&b);
    assert_int_equal(dagi_redact_append(&b, "Bearer abcdef", 7), DAGI_OK);
    assert_string_equal(dagi_buf_str(&b), "Bearer ");
    /* Appends after existing contents. */
    dagi_buf_reset(&b);
    assert_int_equal(dagi_buf_append_str(&b, "pre "), DAGI_OK);
    assert_int_equal(dagi_redact_append(&b, "sk-x post", 9), DAGI_OK);
    assert_string_equal(dagi_buf_str(&b), "pre sk-[redacted] post");
    dagi_buf_release(&b);
}

static void test_append_cap(void **state)
{
    (void)state;
    struct dagi_buf b;
    dagi_buf_init(&b, 16);
    assert_int_equal(dagi_buf_append_str(&b, "x:"), DAGI_OK);
    /* "Bearer [redacted]" is 17 bytes: refused as a whole, buffer as it was,
     * and never a partial value with the secret. */
    assert_int_equal(dagi_redact_append(&b, "Bearer secretvalue", 18), DAGI_ETOOBIG);
    assert_string_equal(dagi_buf_str(&b), "x:");
    assert_int_equal(b.len, 2);
    assert_int_equal(dagi_redact_append(&b, "0123456789abcdef", 16), DAGI_ETOOBIG);
    assert_string_equal(dagi_buf_str(&b), "x:");
    assert_int_equal(dagi_redact_append(&b, "sk-abc", 6), DAGI_OK); /* 13 bytes */
    assert_string_equal(dagi_buf_str(&b), "x:sk-[redacted]");
    dagi_buf_release(&b);
}

/* ---- the logger ---- */

static int log_fd = -1;

static int log_setup(void **state)
{
    (void)state;
    char path[] = "/tmp/dagi-test-redact-XXXXXX";
    log_fd = mkstemp(path);
    if (log_fd < 0)
        return -1;
    unlink(path);
    return 0;
}

static int log_teardown(void **state)
{
    (void)state;
    dagi_log_setup(DAGI_LOG_INFO, 2);
    dagi_log_set_thread_role(NULL);
    close(log_fd);
    return 0;
}

/* Empties the capture file and points the logger at it. */
static void capture_start(enum dagi_log_level level)
{
    assert_int_equal(ftruncate(log_fd, 0), 0);
    assert_int_equal(lseek(log_fd, 0, SEEK_SET), 0);
    dagi_log_setup(level, log_fd);
}

/* Everything written since capture_start, NUL-terminated; free() it. */
static char *capture_read(size_t *len_out)
{
    off_t end = lseek(log_fd, 0, SEEK_END);
    assert_true(end >= 0);
    char *p = malloc((size_t)end + 1);
    assert_non_null(p);
    assert_int_equal(pread(log_fd, p, (size_t)end, 0), end);
    p[end] = '\0';
    if (len_out)
        *len_out = (size_t)end;
    return p;
}

/* Parses the capture as JSON lines: exactly `want_lines` lines, each one JSON
 * object with the standard fields.  Returns a JSON array of them. */
static json_t *capture_parse(size_t want_lines)
{
    size_t len;
    char *text = capture_read(&len);
    json_t *lines = json_array();
    size_t count = 0;
    char *p = text;
    while (*p) {
        char *nl = strchr(p, '\n');
        if (!nl)
            fail_msg("log output does not end in a newline: %s", p);
        *nl = '\0';
        json_error_t jerr;
        json_t *obj = json_loads(p, 0, &jerr);
        if (!obj || !json_is_object(obj))
            fail_msg("not one JSON object per line (%s): %.200s", jerr.text, p);
        const char *time = json_string_value(json_object_get(obj, "time"));
        assert_non_null(time);
        /* 2026-11-28T20:05:07.123Z */
        assert_int_equal(strlen(time), 24);
        assert_int_equal(time[4], '-');
        assert_int_equal(time[10], 'T');
        assert_int_equal(time[19], '.');
        assert_int_equal(time[23], 'Z');
        assert_non_null(json_string_value(json_object_get(obj, "level")));
        assert_non_null(json_string_value(json_object_get(obj, "role")));
        assert_non_null(json_object_get(obj, "message"));
        json_array_append_new(lines, obj);
        count++;
        p = nl + 1;
    }
    free(text);
    assert_int_equal(count, want_lines);
    return lines;
}

static const char *str_field(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v))
        fail_msg("field %s is missing or not a string", key);
    return json_string_value(v);
}

static void test_log_masks_secrets(void **state)
{
    (void)state;
    capture_start(DAGI_LOG_DEBUG);
    dagi_log_set_thread_role("gateway");
    dagi_log_info("trace-42", "admin key dagi_admin_SeKrEt0001 accepted",
                  "authorization", "Bearer xyzSeKrEt0002",
                  "url", "https://api.telegram.org/bot123456:AAHSeKrEt0003-_x/sendMessage",
                  "password", "SeKrEt0004",
                  "upstream", "called with Bearer SeKrEt0005 and sk-SeKrEt0006",
                  "note", "quote \" backslash \\ newline \n tab \t ctl \x01 caf\xc3\xa9",
                  "absent", (const char *)NULL);
    dagi_log_debug(NULL, "debug line sk-proj-SeKrEt0007", "X-Api-Key", "SeKrEt0008");

    size_t len;
    char *raw = capture_read(&len);
    assert_null(strstr(raw, "SeKrEt"));
    assert_null(strstr(raw, "xyz"));
    assert_null(strstr(raw, "AAH"));
    free(raw);

    json_t *lines = capture_parse(2);
    json_t *l = json_array_get(lines, 0);
    assert_string_equal(str_field(l, "level"), "info");
    assert_string_equal(str_field(l, "role"), "gateway");
    assert_string_equal(str_field(l, "trace_id"), "trace-42");
    assert_string_equal(str_field(l, "message"), "admin key dagi_admin_[redacted] accepted");
    assert_string_equal(str_field(l, "authorization"), "[redacted]");
    assert_string_equal(str_field(l, "url"),
                        "https://api.telegram.org/bot123456:[redacted]/sendMessage");
    assert_string_equal(str_field(l, "password"), "[redacted]");
    assert_string_equal(str_field(l, "upstream"),
                        "called with Bearer [redacted] and sk-[redacted]");
    assert_string_equal(str_field(l, "note"),
                        "quote \" backslash \\ newline \n tab \t ctl \x01 caf\xc3\xa9");
    assert_true(json_is_null(json_object_get(l, "absent")));

    l = json_array_get(lines, 1);
    assert_string_equal(str_field(l, "level"), "debug");
    assert_null(json_object_get(l, "trace_id"));
    assert_string_equal(str_field(l, "message"), "debug line sk-[redacted]");
    assert_string_equal(str_field(l, "X-Api-Key"), "[redacted]");
    json_decref(lines);
}

static void test_log_fields_and_role(void **state)
{
    (void)state;
    capture_start(DAGI_LOG_DEBUG);
    dagi_log_set_thread_role(NULL);
    dagi_log_warn("", "no trace");
    dagi_log_set_thread_role("worker");
    dagi_log_error(NULL, NULL);
    json_t *lines = capture_parse(2);
    json_t *l = json_array_get(lines, 0);
    assert_string_equal(str_field(l, "role"), "node");
    assert_string_equal(str_field(l, "level"), "warn");
    assert_null(json_object_get(l, "trace_id")); /* empty trace id is left out */
    assert_string_equal(str_field(l, "message"), "no trace");
    l = json_array_get(lines, 1);
    assert_string_equal(str_field(l, "role"), "worker");
    assert_string_equal(str_field(l, "level"), "error");
    assert_true(json_is_null(json_object_get(l, "message")));
    json_decref(lines);
}

static void test_log_level_filter(void **state)
{
    (void)state;
    capture_start(DAGI_LOG_WARN);
    assert_false(dagi_log_enabled(DAGI_LOG_DEBUG));
    assert_false(dagi_log_enabled(DAGI_LOG_INFO));
    assert_true(dagi_log_enabled(DAGI_LOG_WARN));
    assert_true(dagi_log_enabled(DAGI_LOG_ERROR));
    dagi_log_debug(NULL, "d");
    dagi_log_info(NULL, "i");
    dagi_log_warn(NULL, "w");
    dagi_log_error(NULL, "e");
    json_t *lines = capture_parse(2);
    assert_string_equal(str_field(json_array_get(lines, 0), "message"), "w");
    assert_string_equal(str_field(json_array_get(lines, 1), "message"), "e");
    json_decref(lines);

    capture_start(DAGI_LOG_ERROR);
    dagi_log_warn(NULL, "w");
    dagi_log_set_level(DAGI_LOG_DEBUG);
    assert_true(dagi_log_enabled(DAGI_LOG_DEBUG));
    dagi_log_debug(NULL, "d");
    lines = capture_parse(1);
    assert_string_equal(str_field(json_array_get(lines, 0), "message"), "d");
    json_decref(lines);
}

static void test_log_level_parse(void **state)
{
    (void)state;
    static const char *const names[] = {"debug", "info", "warn", "error"};
    static const enum dagi_log_level levels[] = {DAGI_LOG_DEBUG, DAGI_LOG_INFO, DAGI_LOG_WARN,
                                                 DAGI_LOG_ERROR};
    for (size_t i = 0; i < 4; i++) {
        enum dagi_log_level out = (enum dagi_log_level)99;
        assert_int_equal(dagi_log_level_parse(names[i], &out), DAGI_OK);
        assert_int_equal(out, levels[i]);
        assert_string_equal(dagi_log_level_name(levels[i]), names[i]);
    }
    static const char *const bad[] = {"", "warning", "fatal", "trace", "info ", "debugx"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        enum dagi_log_level out = DAGI_LOG_ERROR;
        assert_int_equal(dagi_log_level_parse(bad[i], &out), DAGI_EINVAL);
        assert_int_equal(out, DAGI_LOG_ERROR); /* untouched on failure */
    }
    enum dagi_log_level out;
    assert_int_equal(dagi_log_level_parse(NULL, &out), DAGI_EINVAL);
    assert_string_equal(dagi_log_level_name((enum dagi_log_level)42), "info");
}

/* A line over the 64 KiB cap is cut but stays one valid JSON object, and
 * the cut never uncovers a secret or splits a UTF-8 character. */
static void test_log_long_lines(void **state)
{
    (void)state;
    enum { BIG = 100000 };
    char *big = malloc(BIG + 1);
    assert_non_null(big);
    /* Repeated secrets, two-byte characters and control characters (which
     * grow sixfold when escaped), so every kind of cut point is exercised. */
    static const char unit[] = "Bearer SECRETTOKEN \xc3\xa9\x01 ";
    size_t ul = strlen(unit);
    for (size_t i = 0; i < BIG; i++)
        big[i] = unit[i % ul];
    big[BIG] = '\0';

    capture_start(DAGI_LOG_DEBUG);
    dagi_log_info(NULL, big);
    dagi_log_info(NULL, "short", "payload", big, "after", "x");
    dagi_log_info(NULL, "short", "a", "1", big, "key is huge");
    memset(big, '\x02', BIG); /* all escapes */
    dagi_log_info(NULL, "ctl", "payload", big);
    dagi_log_info(NULL, "still fine");

    size_t len;
    char *raw = capture_read(&len);
    assert_null(strstr(raw, "SECR"));
    free(raw);
    json_t *lines = capture_parse(5);
    for (size_t i = 0; i < 4; i++) {
        json_t *l = json_array_get(lines, i);
        assert_true(json_is_true(json_object_get(l, "truncated")));
        char *dump = json_dumps(l, JSON_COMPACT);
        assert_true(strlen(dump) <= 64 * 1024);
        free(dump);
    }
    assert_true(strlen(str_field(json_array_get(lines, 0), "message")) > 10000);
    assert_string_equal(str_field(json_array_get(lines, 1), "message"), "short");
    assert_true(strlen(str_field(json_array_get(lines, 1), "payload")) > 10000);
    assert_null(json_object_get(json_array_get(lines, 1), "after"));
    assert_string_equal(str_field(json_array_get(lines, 2), "a"), "1");
    assert_true(strlen(str_field(json_array_get(lines, 3), "payload")) > 5000);
    assert_null(json_object_get(json_array_get(lines, 4), "truncated"));
    json_decref(lines);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secret_keys),
        cmocka_unit_test(test_non_secret_keys),
        cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_bearer_no_false_positive),
        cmocka_unit_test(test_telegram_url),
        cmocka_unit_test(test_telegram_no_false_positive),
        cmocka_unit_test(test_dagi_keys),
        cmocka_unit_test(test_sk_keys),
        cmocka_unit_test(test_prose_unchanged),
        cmocka_unit_test(test_mixed_and_len),
        cmocka_unit_test(test_append_cap),
        cmocka_unit_test(test_log_masks_secrets),
        cmocka_unit_test(test_log_fields_and_role),
        cmocka_unit_test(test_log_level_filter),
        cmocka_unit_test(test_log_level_parse),
        cmocka_unit_test(test_log_long_lines),
    };
    return cmocka_run_group_tests(tests, log_setup, log_teardown);
}
