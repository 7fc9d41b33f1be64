/* SSE parser: line endings, feeds split anywhere, fields, caps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/sse_parse.h"

#define MAX_EVENTS 64

struct got_event {
    char event[64];
    char data[512];
    size_t data_len;
    char id[64];
};

struct collector {
    struct got_event ev[MAX_EVENTS];
    int n;
    int stop_after; /* return 1 from the callback once n reaches this; 0 = never */
};

static int on_event(const struct dagi_sse_event *ev, void *ud)
{
    struct collector *c = ud;
    assert_true(c->n < MAX_EVENTS);
    struct got_event *g = &c->ev[c->n++];
    assert_true(ev->data_len < sizeof(g->data));
    assert_int_equal(ev->data[ev->data_len], '\0');
    snprintf(g->event, sizeof(g->event), "%s", ev->event);
    memcpy(g->data, ev->data, ev->data_len + 1);
    g->data_len = ev->data_len;
    snprintf(g->id, sizeof(g->id), "%s", ev->id);
    return c->stop_after && c->n >= c->stop_after;
}

/* Parses `text` fed in one piece, then again byte by byte, and checks both
 * produce the same events; returns the count. */
static int parse_both_ways(const char *text, size_t len, struct collector *out)
{
    struct dagi_sse_parser p;
    struct collector bytewise = {0};
    memset(out, 0, sizeof(*out));

    dagi_sse_parser_init(&p, 1024);
    assert_int_equal(dagi_sse_feed(&p, text, len, on_event, out), 0);
    dagi_sse_parser_release(&p);

    dagi_sse_parser_init(&p, 1024);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(dagi_sse_feed(&p, text + i, 1, on_event, &bytewise), 0);
    dagi_sse_parser_release(&p);

    assert_int_equal(bytewise.n, out->n);
    for (int i = 0; i < out->n; i++) {
        assert_string_equal(bytewise.ev[i].event, out->ev[i].event);
        assert_int_equal(bytewise.ev[i].data_len, out->ev[i].data_len);
        assert_memory_equal(bytewise.ev[i].data, out->ev[i].data, out->ev[i].data_len);
        assert_string_equal(bytewise.ev[i].id, out->ev[i].id);
    }
    return out->n;
}

#define PARSE(lit, c) parse_both_ways(lit, sizeof(lit) - 1, c)

static void test_line_endings(void **state)
{
    (void)state;
    static const char *const streams[] = {
        "data: a\n\ndata: b\n\n",         "data: a\r\rdata: b\r\r",
        "data: a\r\n\r\ndata: b\r\n\r\n", "data: a\r\n\ndata: b\n\r\n", /* mixed */
        "data: a\r\rdata: b\r\n\r\n",                                   /* mixed */
    };
    for (size_t i = 0; i < sizeof(streams) / sizeof(streams[0]); i++) {
        struct collector c;
        assert_int_equal(parse_both_ways(streams[i], strlen(streams[i]), &c), 2);
        assert_string_equal(c.ev[0].data, "a");
        assert_string_equal(c.ev[1].data, "b");
        assert_string_equal(c.ev[0].event, "message");
        assert_string_equal(c.ev[0].id, "");
    }
}

static void test_crlf_split_across_feeds(void **state)
{
    (void)state;
    struct dagi_sse_parser p;
    struct collector c = {0};
    dagi_sse_parser_init(&p, 1024);
    /* CR ends one feed, LF opens the next: one line end, not a blank line */
    assert_int_equal(dagi_sse_feed(&p, "data: a\r", 8, on_event, &c), 0);
    assert_int_equal(dagi_sse_feed(&p, "\ndata: b\r", 9, on_event, &c), 0);
    assert_int_equal(c.n, 0);
    assert_int_equal(dagi_sse_feed(&p, "\n", 1, on_event, &c), 0);
    assert_int_equal(c.n, 0);
    assert_int_equal(dagi_sse_feed(&p, "\r", 1, on_event, &c), 0);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.ev[0].data, "a\nb");
    /* the LF after that CR belongs to it */
    assert_int_equal(dagi_sse_feed(&p, "\n", 1, on_event, &c), 0);
    assert_int_equal(c.n, 1);
    assert_int_equal(dagi_sse_feed(&p, "data: c\n\n", 9, on_event, &c), 0);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.ev[1].data, "c");
    dagi_sse_parser_release(&p);
}

static void test_openai_stream_bytewise(void **state)
{
    (void)state;
    static const char stream[] =
        ": keep-alive\n\n"
        "data: "
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
        "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n"
        "data: "
        "{\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n"
        "data: "
        "{\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n"
        "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{},"
        "\"finish_reason\":\"stop\"}]}\n\n"
        "data: [DONE]\n\n";
    struct collector c;
    assert_int_equal(PARSE(stream, &c), 5);
    assert_non_null(strstr(c.ev[1].data, "\"Hel\""));
    assert_non_null(strstr(c.ev[2].data, "\"lo\""));
    assert_string_equal(c.ev[4].data, "[DONE]");
    for (int i = 0; i < c.n; i++)
        assert_string_equal(c.ev[i].event, "message");
}

static void test_multiline_data(void **state)
{
    (void)state;
    struct collector c;
    assert_int_equal(PARSE("data: one\ndata:two\ndata:  three\ndata\n\n", &c), 1);
    /* one optional space is stripped, a second one is data; "data" alone
     * is an empty line of data */
    assert_string_equal(c.ev[0].data, "one\ntwo\n three\n");
    assert_int_equal(c.ev[0].data_len, strlen("one\ntwo\n three\n"));
}

static void test_empty_data_and_no_data(void **state)
{
    (void)state;
    struct collector c;
    /* "data:" alone dispatches an empty event; a block without data does not */
    assert_int_equal(PARSE("data:\n\nevent: x\n\nid: 7\n\n\n\ndata: y\n\n", &c), 2);
    assert_int_equal(c.ev[0].data_len, 0);
    assert_string_equal(c.ev[0].data, "");
    /* the event name of a block without data does not leak into the next */
    assert_string_equal(c.ev[1].event, "message");
    /* ... but the id does: it is sticky */
    assert_string_equal(c.ev[1].id, "7");
    assert_string_equal(c.ev[1].data, "y");
}

static void test_comments_and_unknown_fields(void **state)
{
    (void)state;
    struct collector c;
    assert_int_equal(PARSE(":comment\n: another\ndata: a\n:mid\nfoo: bar\nretry: 1000\n"
                           "Data: not-a-field\ndata : not-data\ndata: b\n\n",
                           &c),
                     1);
    assert_string_equal(c.ev[0].data, "a\nb");
}

static void test_event_names(void **state)
{
    (void)state;
    struct collector c;
    assert_int_equal(PARSE("event: message_start\ndata: {}\n\n"
                           "event: content_block_delta\nevent: ping\ndata: p\n\n"
                           "data: plain\n\n"
                           "event\ndata: unnamed\n\n",
                           &c),
                     4);
    assert_string_equal(c.ev[0].event, "message_start");
    assert_string_equal(c.ev[1].event, "ping"); /* the last one wins */
    assert_string_equal(c.ev[2].event, "message");
    assert_string_equal(c.ev[3].event, "message"); /* empty name = default */
}

static void test_ids(void **state)
{
    (void)state;
    struct collector c;
    static const char stream[] = "id: 1\ndata: a\n\n"
                                 "data: b\n\n"
                                 "id: 2\0x\ndata: c\n\n" /* NUL: ignored */
                                 "id\ndata: d\n\n";      /* empty id resets */
    assert_int_equal(PARSE(stream, &c), 4);
    assert_string_equal(c.ev[0].id, "1");
    assert_string_equal(c.ev[1].id, "1");
    assert_string_equal(c.ev[2].id, "1");
    assert_string_equal(c.ev[3].id, "");
}

static void test_bom(void **state)
{
    (void)state;
    struct collector c;
    assert_int_equal(PARSE("\xEF\xBB\xBF"
                           "data: a\n\n",
                           &c),
                     1);
    assert_string_equal(c.ev[0].data, "a");
    /* the BOM is only special at the very start */
    assert_int_equal(PARSE("data: a\n\n\xEF\xBB\xBF"
                           "data: b\n\n",
                           &c),
                     1);
    /* a BOM prefix that is not a BOM is kept as line content */
    assert_int_equal(PARSE("\xEF\xBB"
                           "data: x\n\n"
                           "data: y\n\n",
                           &c),
                     1);
    assert_string_equal(c.ev[0].data, "y");
}

static void test_caps(void **state)
{
    (void)state;
    struct dagi_sse_parser p;
    struct collector c = {0};
    char big[100];
    memset(big, 'x', sizeof(big));

    /* one long line, split over feeds */
    dagi_sse_parser_init(&p, 64);
    assert_int_equal(dagi_sse_feed(&p, "data: ", 6, on_event, &c), 0);
    assert_int_equal(dagi_sse_feed(&p, big, 50, on_event, &c), 0);
    assert_int_equal(dagi_sse_feed(&p, big, 50, on_event, &c), DAGI_ETOOBIG);
    /* and it stays failed */
    assert_int_equal(dagi_sse_feed(&p, "\n\n", 2, on_event, &c), DAGI_ETOOBIG);
    assert_int_equal(c.n, 0);
    dagi_sse_parser_release(&p);

    /* a line arriving whole in one feed */
    dagi_sse_parser_init(&p, 64);
    char line[120] = "data: ";
    memcpy(line + 6, big, 80);
    line[86] = '\n';
    assert_int_equal(dagi_sse_feed(&p, line, 87, on_event, &c), DAGI_ETOOBIG);
    dagi_sse_parser_release(&p);

    /* short lines whose joined data passes the cap */
    dagi_sse_parser_init(&p, 64);
    int rc = 0;
    for (int i = 0; i < 20 && rc == 0; i++)
        rc = dagi_sse_feed(&p, "data: 0123456789\n", 17, on_event, &c);
    assert_int_equal(rc, DAGI_ETOOBIG);
    assert_int_equal(c.n, 0);
    dagi_sse_parser_release(&p);

    /* exactly at the cap is fine */
    dagi_sse_parser_init(&p, 16);
    assert_int_equal(dagi_sse_feed(&p, "data:0123456789a\n\n", 18, on_event, &c), 0);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.ev[0].data, "0123456789a");
    dagi_sse_parser_release(&p);
}

static void test_callback_stop(void **state)
{
    (void)state;
    struct dagi_sse_parser p;
    struct collector c = {.stop_after = 2};
    dagi_sse_parser_init(&p, 1024);
    const char *s = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    assert_int_equal(dagi_sse_feed(&p, s, strlen(s), on_event, &c), 1);
    assert_int_equal(c.n, 2);
    dagi_sse_parser_release(&p);
}

static void test_binary_data(void **state)
{
    (void)state;
    struct collector c;
    static const char stream[] = "data: a\0b\n\n";
    assert_int_equal(PARSE(stream, &c), 1);
    assert_int_equal(c.ev[0].data_len, 3);
    assert_memory_equal(c.ev[0].data, "a\0b", 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_endings),
        cmocka_unit_test(test_crlf_split_across_feeds),
        cmocka_unit_test(test_openai_stream_bytewise),
        cmocka_unit_test(test_multiline_data),
        cmocka_unit_test(test_empty_data_and_no_data),
        cmocka_unit_test(test_comments_and_unknown_fields),
        cmocka_unit_test(test_event_names),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_bom),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_callback_stop),
        cmocka_unit_test(test_binary_data),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
