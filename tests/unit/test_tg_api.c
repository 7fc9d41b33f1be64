/* Bot API helpers: method and file URLs (and what they refuse), redaction,
 * the request bodies field by field, the response envelope for success,
 * flood control, chat migration and garbage, retry classification, and
 * getMe / getFile results as the Bot API documents them. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "telegram/tg_api.h"

#define TOKEN "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"

/* Serializes with sorted keys so bodies compare as exact strings. */
static void assert_body(json_t *body, const char *want)
{
    char *got = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    assert_non_null(got);
    if (strcmp(got, want) != 0)
        fail_msg("body\n  got  %s\n  want %s", got, want);
    free(got);
    json_decref(body);
}

static void test_method_url(void **state)
{
    char url[256];
    assert_int_equal(dagi_tg_method_url(url, sizeof(url), NULL, TOKEN, "getMe"), 0);
    assert_string_equal(url, "https://api.telegram.org/bot" TOKEN "/getMe");
    /* A local Bot API server, with a trailing slash. */
    assert_int_equal(
        dagi_tg_method_url(url, sizeof(url), "http://127.0.0.1:8081/", TOKEN, "sendMessage"), 0);
    assert_string_equal(url, "http://127.0.0.1:8081/bot" TOKEN "/sendMessage");

    /* Exactly fitting, and one byte short (out untouched). */
    size_t need = strlen("https://api.telegram.org/bot" TOKEN "/getMe") + 1;
    assert_int_equal(dagi_tg_method_url(url, need, NULL, TOKEN, "getMe"), 0);
    strcpy(url, "untouched");
    assert_int_equal(dagi_tg_method_url(url, need - 1, NULL, TOKEN, "getMe"), DAGI_ETOOBIG);
    assert_string_equal(url, "untouched");

    /* Tokens and methods that would bend the URL are refused. */
    static const char *const bad_tokens[] = {"",           "123456789", ":abc",
                                             "123456789:", "abc:def",   "123:ab/c",
                                             "123:ab?c",   "123:ab c",  "123:ab#c"};
    for (size_t i = 0; i < sizeof(bad_tokens) / sizeof(bad_tokens[0]); i++)
        assert_int_equal(dagi_tg_method_url(url, sizeof(url), NULL, bad_tokens[i], "getMe"),
                         DAGI_EINVAL);
    assert_int_equal(dagi_tg_method_url(url, sizeof(url), NULL, NULL, "getMe"), DAGI_EINVAL);
    assert_int_equal(dagi_tg_method_url(url, sizeof(url), NULL, TOKEN, ""), DAGI_EINVAL);
    assert_int_equal(dagi_tg_method_url(url, sizeof(url), NULL, TOKEN, "getMe?x=1"), DAGI_EINVAL);
    assert_int_equal(dagi_tg_method_url(url, sizeof(url), NULL, TOKEN, "../getMe"), DAGI_EINVAL);
    assert_int_equal(dagi_tg_method_url(url, sizeof(url), "", TOKEN, "getMe"), DAGI_EINVAL);
}

static void test_file_url(void **state)
{
    char url[256];
    assert_int_equal(dagi_tg_file_url(url, sizeof(url), NULL, TOKEN, "photos/file_0.jpg"), 0);
    assert_string_equal(url, "https://api.telegram.org/file/bot" TOKEN "/photos/file_0.jpg");
    static const char *const bad_paths[] = {"",        "/etc/passwd", "photos/../../x",
                                            "..",      "photos/./x",  "photos//x",
                                            "photos/", "a?b",         "a#b",
                                            "a b",     "a%2e",        "фото.jpg"};
    for (size_t i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++)
        assert_int_equal(dagi_tg_file_url(url, sizeof(url), NULL, TOKEN, bad_paths[i]),
                         DAGI_EINVAL);
    assert_int_equal(dagi_tg_file_url(url, sizeof(url), NULL, TOKEN, NULL), DAGI_EINVAL);
    assert_int_equal(dagi_tg_file_url(url, 20, NULL, TOKEN, "photos/a.jpg"), DAGI_ETOOBIG);
}

static void test_redact_url(void **state)
{
    char out[256];
    assert_int_equal(
        dagi_tg_redact_url("https://api.telegram.org/bot" TOKEN "/sendMessage", out, sizeof(out)),
        0);
    assert_string_equal(out, "https://api.telegram.org/bot<redacted>/sendMessage");
    assert_int_equal(dagi_tg_redact_url("https://api.telegram.org/file/bot" TOKEN
                                        "/photos/file_0.jpg",
                                        out, sizeof(out)),
                     0);
    assert_string_equal(out, "https://api.telegram.org/file/bot<redacted>/photos/file_0.jpg");
    /* Token at the very end, or before a query. */
    assert_int_equal(dagi_tg_redact_url("http://x/bot1:abc", out, sizeof(out)), 0);
    assert_string_equal(out, "http://x/bot<redacted>");
    assert_int_equal(dagi_tg_redact_url("http://x/bot1:abc?offset=5", out, sizeof(out)), 0);
    assert_string_equal(out, "http://x/bot<redacted>?offset=5");
    /* "/bottles" is not a token; nothing changes. */
    assert_int_equal(dagi_tg_redact_url("https://shop/bottles/12", out, sizeof(out)), 0);
    assert_string_equal(out, "https://shop/bottles/12");

    /* Too small: truncated, terminated, and still no token. */
    char small[34];
    assert_int_equal(
        dagi_tg_redact_url("https://api.telegram.org/bot" TOKEN "/getMe", small, sizeof(small)),
        DAGI_ETOOBIG);
    assert_string_equal(small, "https://api.telegram.org/bot<reda");
    assert_null(strstr(small, "AAHdq"));
    assert_int_equal(dagi_tg_redact_url("x", small, 0), DAGI_ETOOBIG);
}

static void test_body_send_message(void **state)
{
    json_t *body = NULL;
    struct dagi_tg_send_message m = {.chat_id = -1001234567890LL, .text = "Привіт 👋"};
    m.text_len = strlen(m.text);
    assert_int_equal(dagi_tg_body_send_message(&m, &body), 0);
    assert_body(body, "{\"chat_id\":-1001234567890,\"text\":\"Привіт 👋\"}");

    /* A reply inside a forum topic; the text is a slice, not a C string. */
    m = (struct dagi_tg_send_message){.chat_id = 42,
                                      .text = "answer, then more",
                                      .text_len = 6,
                                      .reply_to_message_id = 1365,
                                      .message_thread_id = 7};
    assert_int_equal(dagi_tg_body_send_message(&m, &body), 0);
    assert_body(body, "{\"chat_id\":42,\"message_thread_id\":7,\"reply_parameters\":"
                      "{\"allow_sending_without_reply\":true,\"message_id\":1365},"
                      "\"text\":\"answer\"}");

    /* Refusals: no chat, empty or blank text, NUL, invalid UTF-8, too long. */
    body = NULL;
    m = (struct dagi_tg_send_message){.chat_id = 0, .text = "x", .text_len = 1};
    assert_int_equal(dagi_tg_body_send_message(&m, &body), DAGI_EINVAL);
    m = (struct dagi_tg_send_message){.chat_id = 1, .text = "", .text_len = 0};
    assert_int_equal(dagi_tg_body_send_message(&m, &body), DAGI_EINVAL);
    m.text = " \n\t", m.text_len = 3;
    assert_int_equal(dagi_tg_body_send_message(&m, &body), DAGI_EINVAL);
    m.text = "a\0b", m.text_len = 3;
    assert_int_equal(dagi_tg_body_send_message(&m, &body), DAGI_EINVAL);
    m.text = "a\xff", m.text_len = 2;
    assert_int_equal(dagi_tg_body_send_message(&m, &body), DAGI_EINVAL);
    m.text = NULL, m.text_len = 0;
    assert_int_equal(dagi_tg_body_send_message(&m, &body), DAGI_EINVAL);
    assert_null(body);

    /* 2048 emoji are 4096 UTF-16 units (fits); 2049 are 4098 (does not). */
    static char emoji[2049 * 4];
    for (size_t i = 0; i < sizeof(emoji); i += 4)
        memcpy(emoji + i, "😀", 4);
    m = (struct dagi_tg_send_message){.chat_id = 1, .text = emoji, .text_len = 2048 * 4};
    assert_int_equal(dagi_tg_body_send_message(&m, &body), 0);
    json_decref(body);
    body = NULL;
    m.text_len = sizeof(emoji);
    assert_int_equal(dagi_tg_body_send_message(&m, &body), DAGI_ETOOBIG);
    assert_null(body);
}

static void test_body_others(void **state)
{
    json_t *body = NULL;
    assert_int_equal(dagi_tg_body_send_chat_action(42, 0, NULL, &body), 0);
    assert_body(body, "{\"action\":\"typing\",\"chat_id\":42}");
    assert_int_equal(dagi_tg_body_send_chat_action(42, 7, "upload_photo", &body), 0);
    assert_body(body, "{\"action\":\"upload_photo\",\"chat_id\":42,\"message_thread_id\":7}");
    assert_int_equal(dagi_tg_body_send_chat_action(0, 0, NULL, &body), DAGI_EINVAL);
    assert_int_equal(dagi_tg_body_send_chat_action(1, 0, "Typing!", &body), DAGI_EINVAL);
    assert_int_equal(dagi_tg_body_send_chat_action(1, 0, "", &body), DAGI_EINVAL);

    assert_int_equal(dagi_tg_body_get_file("AgACAgIAAxkBAAIBX", &body), 0);
    assert_body(body, "{\"file_id\":\"AgACAgIAAxkBAAIBX\"}");
    assert_int_equal(dagi_tg_body_get_file("", &body), DAGI_EINVAL);
    assert_int_equal(dagi_tg_body_get_file(NULL, &body), DAGI_EINVAL);

    struct dagi_tg_set_webhook w = {.url = "https://helion.example/tg/webhook",
                                    .secret_token = "s3cr3t_Token-1"};
    assert_int_equal(dagi_tg_body_set_webhook(&w, &body), 0);
    assert_body(body, "{\"allowed_updates\":[\"message\",\"edited_message\",\"channel_post\"],"
                      "\"secret_token\":\"s3cr3t_Token-1\","
                      "\"url\":\"https://helion.example/tg/webhook\"}");
    w = (struct dagi_tg_set_webhook){.url = "https://h.example/w", .drop_pending_updates = true};
    assert_int_equal(dagi_tg_body_set_webhook(&w, &body), 0);
    assert_body(body, "{\"allowed_updates\":[\"message\",\"edited_message\",\"channel_post\"],"
                      "\"drop_pending_updates\":true,\"url\":\"https://h.example/w\"}");
    /* Telegram allows only [A-Za-z0-9_-], 1-256 of them. */
    w.secret_token = "has space";
    assert_int_equal(dagi_tg_body_set_webhook(&w, &body), DAGI_EINVAL);
    w.secret_token = "";
    assert_int_equal(dagi_tg_body_set_webhook(&w, &body), DAGI_EINVAL);
    char long_secret[258];
    memset(long_secret, 'a', 257);
    long_secret[257] = '\0';
    w.secret_token = long_secret;
    assert_int_equal(dagi_tg_body_set_webhook(&w, &body), DAGI_EINVAL);
    long_secret[256] = '\0';
    assert_int_equal(dagi_tg_body_set_webhook(&w, &body), 0);
    json_decref(body);
    w = (struct dagi_tg_set_webhook){.url = NULL};
    assert_int_equal(dagi_tg_body_set_webhook(&w, &body), DAGI_EINVAL);

    assert_int_equal(dagi_tg_body_get_me(&body), 0);
    assert_body(body, "{}");
    assert_int_equal(dagi_tg_body_get_webhook_info(&body), 0);
    assert_body(body, "{}");
}

static json_t *parse_ok(const char *text)
{
    json_t *result = NULL;
    struct dagi_error err = {0};
    int rc = dagi_tg_api_parse_response(text, strlen(text), &result, NULL, &err);
    if (rc)
        fail_msg("unexpected error %d: %s", rc, err.message);
    assert_non_null(result);
    return result;
}

static void test_response_ok(void **state)
{
    /* getMe, as documented; the result outlives the document. */
    json_t *r = parse_ok("{\"ok\":true,\"result\":{\"id\":7000000001,\"is_bot\":true,"
                         "\"first_name\":\"Helion\",\"username\":\"helion_bot\","
                         "\"can_join_groups\":true,\"can_read_all_group_messages\":false,"
                         "\"supports_inline_queries\":false}}");
    assert_int_equal(r->refcount, 1);
    struct dagi_tg_me me;
    struct dagi_error err = {0};
    assert_int_equal(dagi_tg_parse_me(r, &me, &err), 0);
    assert_int_equal(me.id, 7000000001LL);
    assert_string_equal(me.username, "helion_bot");
    json_decref(r);

    /* setWebhook answers a bare true. */
    r = parse_ok("{\"ok\":true,\"result\":true,\"description\":\"Webhook was set\"}");
    assert_true(json_is_true(r));
    json_decref(r);

    /* getFile. */
    r = parse_ok("{\"ok\":true,\"result\":{\"file_id\":\"AgACAgIAAxkBAAIBX\","
                 "\"file_unique_id\":\"AQADx\",\"file_size\":94520,"
                 "\"file_path\":\"photos/file_0.jpg\"}}");
    struct dagi_tg_file f;
    assert_int_equal(dagi_tg_parse_file(r, &f, &err), 0);
    assert_string_equal(f.file_path, "photos/file_0.jpg");
    assert_int_equal(f.file_size, 94520);
    json_decref(r);
}

static void test_response_errors(void **state)
{
    json_t *result = NULL;
    struct dagi_tg_api_error e;
    struct dagi_error err = {0};
    const char *s = "{\"ok\":false,\"error_code\":429,\"description\":\"Too Many Requests: retry "
                    "after 5\",\"parameters\":{\"retry_after\":5}}";
    assert_int_equal(dagi_tg_api_parse_response(s, strlen(s), &result, &e, &err), DAGI_EUNAVAIL);
    assert_null(result);
    assert_int_equal(e.error_code, 429);
    assert_string_equal(e.description, "Too Many Requests: retry after 5");
    assert_int_equal(e.retry_after_s, 5);
    assert_int_equal(e.migrate_to_chat_id, 0);
    assert_true(dagi_tg_error_retryable(&e));
    assert_string_equal(err.message, "Bot API error 429: Too Many Requests: retry after 5");

    s = "{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: group chat was "
        "upgraded to a supergroup chat\",\"parameters\":{\"migrate_to_chat_id\":-1001234567890}}";
    assert_int_equal(dagi_tg_api_parse_response(s, strlen(s), &result, &e, &err), DAGI_EUNAVAIL);
    assert_int_equal(e.error_code, 400);
    assert_int_equal(e.migrate_to_chat_id, -1001234567890LL);
    assert_int_equal(e.retry_after_s, 0);
    assert_false(dagi_tg_error_retryable(&e));

    s = "{\"ok\":false,\"error_code\":403,\"description\":\"Forbidden: bot was blocked by the "
        "user\"}";
    assert_int_equal(dagi_tg_api_parse_response(s, strlen(s), &result, NULL, &err), DAGI_EUNAVAIL);
    assert_int_equal(dagi_tg_api_parse_response(s, strlen(s), &result, &e, NULL), DAGI_EUNAVAIL);
    assert_false(dagi_tg_error_retryable(&e));

    /* No description; an absurd retry_after is clamped, a negative one is 0. */
    s = "{\"ok\":false,\"error_code\":429,\"parameters\":{\"retry_after\":99999999}}";
    assert_int_equal(dagi_tg_api_parse_response(s, strlen(s), &result, &e, &err), DAGI_EUNAVAIL);
    assert_string_equal(e.description, "");
    assert_int_equal(e.retry_after_s, DAGI_TG_API_MAX_RETRY_AFTER_S);
    s = "{\"ok\":false,\"error_code\":429,\"parameters\":{\"retry_after\":-3}}";
    assert_int_equal(dagi_tg_api_parse_response(s, strlen(s), &result, &e, &err), DAGI_EUNAVAIL);
    assert_int_equal(e.retry_after_s, 0);

    /* A description longer than the struct holds is cut, not overflowed. */
    char big[1024];
    int n = snprintf(big, sizeof(big), "{\"ok\":false,\"error_code\":500,\"description\":\"");
    memset(big + n, 'd', 600);
    strcpy(big + n + 600, "\"}");
    assert_int_equal(dagi_tg_api_parse_response(big, strlen(big), &result, &e, &err),
                     DAGI_EUNAVAIL);
    assert_int_equal(strlen(e.description), sizeof(e.description) - 1);
    assert_true(dagi_tg_error_retryable(&e));
}

static void test_response_garbage(void **state)
{
    static const struct {
        const char *body;
        const char *message_part;
    } cases[] = {
        {"<html>502 Bad Gateway</html>", "Bot API response"},
        {"", "Bot API response"},
        {"[true]", "ok: missing"},
        {"{\"result\":{}}", "ok: missing"},
        {"{\"ok\":\"true\",\"result\":{}}", "ok: missing"},
        {"{\"ok\":true}", "result: missing"},
        {"{\"ok\":false,\"description\":\"x\"}", "error_code"},
        {"{\"ok\":false,\"error_code\":\"429\"}", "error_code"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *result = NULL;
        struct dagi_error err = {0};
        assert_int_equal(
            dagi_tg_api_parse_response(cases[i].body, strlen(cases[i].body), &result, NULL, &err),
            DAGI_EPARSE);
        assert_null(result);
        if (!strstr(err.message, cases[i].message_part))
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err.message, cases[i].message_part);
    }
    json_t *result = NULL;
    assert_int_equal(dagi_tg_api_parse_response(NULL, 0, &result, NULL, NULL), DAGI_EPARSE);
    assert_int_equal(
        dagi_tg_api_parse_response("{}", DAGI_TG_API_MAX_RESPONSE_BYTES + 1, &result, NULL, NULL),
        DAGI_ETOOBIG);
}

static void test_retryable(void **state)
{
    static const struct {
        int code;
        bool retry;
    } cases[] = {{429, true},  {500, true},  {502, true},  {599, true},  {400, false},
                 {401, false}, {403, false}, {404, false}, {409, false}, {0, false}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct dagi_tg_api_error e = {.error_code = cases[i].code};
        assert_int_equal(dagi_tg_error_retryable(&e), cases[i].retry);
    }
}

static void test_parse_me_and_file_errors(void **state)
{
    struct dagi_tg_me me;
    struct dagi_tg_file f;
    struct dagi_error err = {0};
    json_t *j = json_loads("{\"id\":\"1\",\"username\":\"b\"}", 0, NULL);
    assert_int_equal(dagi_tg_parse_me(j, &me, &err), DAGI_EPARSE);
    json_decref(j);
    j = json_loads("{\"id\":1,\"first_name\":\"no username\"}", 0, NULL);
    assert_int_equal(dagi_tg_parse_me(j, &me, &err), DAGI_EPARSE);
    assert_non_null(strstr(err.message, "username"));
    json_decref(j);
    assert_int_equal(dagi_tg_parse_me(NULL, &me, &err), DAGI_EPARSE);

    /* A File without file_path cannot be downloaded. */
    j = json_loads("{\"file_id\":\"a\",\"file_unique_id\":\"b\",\"file_size\":5}", 0, NULL);
    assert_int_equal(dagi_tg_parse_file(j, &f, &err), DAGI_ENOENT);
    json_decref(j);
    j = json_loads("{\"file_id\":\"a\",\"file_path\":\"documents/file_1.pdf\"}", 0, NULL);
    assert_int_equal(dagi_tg_parse_file(j, &f, &err), 0);
    assert_int_equal(f.file_size, 0);
    json_decref(j);
    j = json_loads("{\"file_path\":7}", 0, NULL);
    assert_int_equal(dagi_tg_parse_file(j, &f, &err), DAGI_EPARSE);
    json_decref(j);
    j = json_loads("{\"file_path\":\"a\",\"file_size\":\"5\"}", 0, NULL);
    assert_int_equal(dagi_tg_parse_file(j, &f, &err), DAGI_EPARSE);
    json_decref(j);
    char long_path[257];
    memset(long_path, 'p', 256);
    long_path[256] = '\0';
    j = json_pack("{s:s}", "file_path", long_path);
    assert_non_null(j);
    assert_int_equal(dagi_tg_parse_file(j, &f, &err), DAGI_ETOOBIG);
    json_decref(j);
    assert_int_equal(dagi_tg_parse_file(NULL, &f, &err), DAGI_EPARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_method_url),      cmocka_unit_test(test_file_url),
        cmocka_unit_test(test_redact_url),      cmocka_unit_test(test_body_send_message),
        cmocka_unit_test(test_body_others),     cmocka_unit_test(test_response_ok),
        cmocka_unit_test(test_response_errors), cmocka_unit_test(test_response_garbage),
        cmocka_unit_test(test_retryable),       cmocka_unit_test(test_parse_me_and_file_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
