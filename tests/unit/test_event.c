/* Event ids (UUID v7) and the envelope. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/event.h"
#include "core/clock.h"

#define N_IDS 20000

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c - 'a' + 10;
}

static uint64_t id_ms(const char *id)
{
    uint64_t ms = 0;
    for (int i = 0; i < 13; i++) {
        if (id[i] == '-')
            continue;
        ms = ms << 4 | (uint64_t)hexval(id[i]);
    }
    return ms;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_ids(void **state)
{
    (void)state;
    char(*ids)[37] = calloc(N_IDS, 37);
    char **sorted = calloc(N_IDS, sizeof(char *));
    int64_t before = dagi_clock_now_ms();
    for (int i = 0; i < N_IDS; i++) {
        dagi_event_id(ids[i]);
        sorted[i] = ids[i];
    }
    int64_t after = dagi_clock_now_ms();
    for (int i = 0; i < N_IDS; i++) {
        const char *id = ids[i];
        assert_int_equal(strlen(id), 36);
        assert_true(id[8] == '-' && id[13] == '-' && id[18] == '-' && id[23] == '-');
        for (int j = 0; j < 36; j++)
            if (j != 8 && j != 13 && j != 18 && j != 23)
                assert_non_null(strchr("0123456789abcdef", id[j]));
        assert_int_equal(id[14], '7');           /* version nibble */
        assert_non_null(strchr("89ab", id[19])); /* variant 10xx */
        uint64_t ms = id_ms(id);
        /* the embedded time is the business clock (a counter overflow may
         * carry it a few ms ahead) */
        assert_true(ms >= (uint64_t)before && ms <= (uint64_t)after + 10);
    }
    /* made in order = sorted in order, and no duplicates */
    qsort(sorted, N_IDS, sizeof(char *), cmp_str);
    for (int i = 0; i < N_IDS; i++)
        assert_ptr_equal(sorted[i], ids[i]);
    for (int i = 1; i < N_IDS; i++)
        assert_true(strcmp(ids[i - 1], ids[i]) < 0);
    free(sorted);
    free(ids);
}

static void test_ids_follow_clock(void **state)
{
    (void)state;
    char a[37], b[37];
    dagi_clock_set_offset_ms(0);
    dagi_event_id(a);
    dagi_clock_set_offset_ms(24LL * 3600 * 1000); /* a day ahead */
    dagi_event_id(b);
    assert_true(strcmp(a, b) < 0);
    assert_true(id_ms(b) - id_ms(a) >= 24ULL * 3600 * 1000);
    /* the clock stepping back does not make ids go backwards */
    dagi_clock_set_offset_ms(0);
    char c[37];
    dagi_event_id(c);
    assert_true(strcmp(b, c) < 0);
}

static void test_envelope(void **state)
{
    (void)state;
    json_t *data = json_pack("{s:s, s:i}", "channel_id", "tg-42", "message_id", 7);
    char id[37];
    char *text = dagi_event_build("message.created", "gateway@node1", "trace-1", data, id);
    assert_non_null(text);
    /* compact, keys in the documented order */
    assert_non_null(strstr(text, "{\"id\":\""));
    const char *order[] = {"\"id\"",       "\"type\"",           "\"time\"", "\"source\"",
                           "\"trace_id\"", "\"schema_version\"", "\"data\""};
    const char *prev = text;
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        const char *at = strstr(text, order[i]);
        assert_non_null(at);
        assert_true(at >= prev);
        prev = at;
    }
    assert_null(strchr(text, ' '));
    assert_null(strchr(text, '\n'));

    const char *why = NULL;
    json_t *env = dagi_event_parse(text, strlen(text), &why);
    assert_non_null(env);
    assert_string_equal(json_string_value(json_object_get(env, "id")), id);
    assert_string_equal(json_string_value(json_object_get(env, "type")), "message.created");
    assert_string_equal(json_string_value(json_object_get(env, "source")), "gateway@node1");
    assert_string_equal(json_string_value(json_object_get(env, "trace_id")), "trace-1");
    assert_int_equal(json_integer_value(json_object_get(env, "schema_version")),
                     DAGI_EVENT_SCHEMA_VERSION);
    json_t *d = json_object_get(env, "data");
    assert_string_equal(json_string_value(json_object_get(d, "channel_id")), "tg-42");
    /* 2026-11-28T20:05:07.123Z */
    const char *t = json_string_value(json_object_get(env, "time"));
    assert_int_equal(strlen(t), 24);
    assert_true(t[4] == '-' && t[7] == '-' && t[10] == 'T' && t[13] == ':' && t[16] == ':' &&
                t[19] == '.' && t[23] == 'Z');
    json_decref(env);
    free(text);

    /* defaults: no data, no trace id, no id_out */
    text = dagi_event_build("ops.health", NULL, NULL, NULL, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"trace_id\":\"\""));
    assert_non_null(strstr(text, "\"data\":{}"));
    env = dagi_event_parse(text, strlen(text), &why);
    assert_non_null(env);
    json_decref(env);
    free(text);

    /* no type, or data that is not an object: refused (and data freed) */
    assert_null(dagi_event_build(NULL, "x", NULL, json_object(), NULL));
    assert_null(dagi_event_build("a.b", "x", NULL, json_array(), NULL));
}

static void test_time_format(void **state)
{
    (void)state;
    /* move the business clock to a known instant */
    int64_t want = 1795896307123LL; /* 2026-11-28T20:05:07.123Z */
    dagi_clock_set_offset_ms(0);
    dagi_clock_set_offset_ms(want - dagi_clock_now_ms());
    char *text = dagi_event_build("quota.reset", "pdp@n", "", NULL, NULL);
    dagi_clock_set_offset_ms(0);
    assert_non_null(text);
    /* the clock moves on between the two reads: allow a few ms */
    assert_non_null(strstr(text, "\"time\":\"2026-11-28T20:05:07.1"));
    free(text);
}

static void test_parse_rejects(void **state)
{
    (void)state;
    const char *ok = "{\"id\":\"01890a5d-ac96-774b-bcce-b302099a8057\",\"type\":\"a.b\","
                     "\"time\":\"2026-01-01T00:00:00.000Z\",\"source\":\"s\",\"trace_id\":\"\","
                     "\"schema_version\":1,\"data\":{}}";
    const char *why = NULL;
    json_t *env = dagi_event_parse(ok, strlen(ok), &why);
    assert_non_null(env);
    json_decref(env);

    const char *bad[] = {
        "",
        "[]",
        "{\"type\":\"a.b\",\"time\":\"t\",\"source\":\"s\",\"trace_id\":\"\","
        "\"schema_version\":1,\"data\":{}}",
        "{\"id\":\"01890a5d-ac96-774b-bcce-b302099a8057\",\"time\":\"t\",\"source\":\"s\","
        "\"trace_id\":\"\",\"schema_version\":1,\"data\":{}}",
        "{\"id\":\"01890a5d-ac96-774b-bcce-b302099a8057\",\"type\":\"a.b\",\"source\":\"s\","
        "\"trace_id\":\"\",\"schema_version\":1,\"data\":{}}",
        "{\"id\":\"01890a5d-ac96-774b-bcce-b302099a8057\",\"type\":\"a.b\",\"time\":\"t\","
        "\"trace_id\":\"\",\"schema_version\":1,\"data\":{}}",
        "{\"id\":\"01890a5d-ac96-774b-bcce-b302099a8057\",\"type\":\"a.b\",\"time\":\"t\","
        "\"source\":\"s\",\"schema_version\":1,\"data\":{}}",
        "{\"id\":\"01890a5d-ac96-774b-bcce-b302099a8057\",\"type\":\"a.b\",\"time\":\"t\","
        "\"source\":\"s\",\"trace_id\":\"\",\"data\":{}}",
        "{\"id\":\"01890a5d-ac96-774b-bcce-b302099a8057\",\"type\":\"a.b\",\"time\":\"t\","
        "\"source\":\"s\",\"trace_id\":\"\",\"schema_version\":1}",
        /* wrong types */
        "{\"id\":\"01890a5d-ac96-774b-bcce-b302099a8057\",\"type\":\"a.b\",\"time\":\"t\","
        "\"source\":\"s\",\"trace_id\":\"\",\"schema_version\":\"1\",\"data\":{}}",
        "{\"id\":\"01890a5d-ac96-774b-bcce-b302099a8057\",\"type\":\"a.b\",\"time\":\"t\","
        "\"source\":\"s\",\"trace_id\":\"\",\"schema_version\":1,\"data\":[]}",
        "{\"id\":42,\"type\":\"a.b\",\"time\":\"t\",\"source\":\"s\",\"trace_id\":\"\","
        "\"schema_version\":1,\"data\":{}}",
        "{\"id\":\"not-a-uuid\",\"type\":\"a.b\",\"time\":\"t\",\"source\":\"s\","
        "\"trace_id\":\"\",\"schema_version\":1,\"data\":{}}",
        "{\"id\":\"01890a5d-ac96-774b-bcce-b302099a8057\",\"type\":\"\",\"time\":\"t\","
        "\"source\":\"s\",\"trace_id\":\"\",\"schema_version\":1,\"data\":{}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        assert_null(dagi_event_parse(bad[i], strlen(bad[i]), &why));
        assert_non_null(why);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids),           cmocka_unit_test(test_ids_follow_clock),
        cmocka_unit_test(test_envelope),      cmocka_unit_test(test_time_format),
        cmocka_unit_test(test_parse_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
