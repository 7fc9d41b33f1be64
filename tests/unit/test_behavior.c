/* The behaviour policy: every row of the table with its reason, quiet hours
 * across midnight in Europe/Kyiv, the duplicate window and its scope, that
 * silenced messages are not remembered, that only hashes are kept, capacity
 * eviction, keyword matching (Cyrillic, Latin-1, word starts), parameter
 * validation, and threads deciding at once.
 *
 * Needs the tzdata package (/usr/share/zoneinfo). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/mem.h"
#include "policy/behavior.h"

#define H 3600
/* 2024-07-01 00:00 UTC (Kyiv is UTC+3) and 2024-01-15 00:00 UTC (UTC+2). */
#define SUMMER_DAY 1719792000LL
#define WINTER_DAY 1705276800LL
/* 12:00 in Kyiv on the summer day. */
#define NOON_MS ((SUMMER_DAY + 9 * H) * 1000)

static const char *kyiv_zone(void)
{
    return access("/usr/share/zoneinfo/Europe/Kyiv", R_OK) == 0 ? "Europe/Kyiv" : "Europe/Kiev";
}

/* Unix ms of local hh:mm in a zone `off` hours east of UTC, on `day`. */
static int64_t local_ms(int64_t day, int hh, int mm, int off)
{
    return (day + (int64_t)(hh - off) * H + mm * 60) * 1000;
}

static const char *const keywords[] = {"енерг", "energy", "#dao"};

static struct dagi_behavior_params params(void)
{
    return (struct dagi_behavior_params){
        .ack_text = "Прийняв, відповім зранку.",
        .quiet_from = "23:00",
        .quiet_to = "07:00",
        .quiet_tz = kyiv_zone(),
        .domain_keywords = keywords,
        .domain_keyword_count = DAGI_ARRAY_LEN(keywords),
        .silent_in_groups = true,
    };
}

static struct dagi_behavior_request request(enum dagi_chat_type type, const char *text)
{
    return (struct dagi_behavior_request){
        .agent_id = "helion",
        .has_chat = true,
        .chat_id = type == DAGI_CHAT_PRIVATE ? "100" : "-1001234567890",
        .chat_type = type,
        .user_id = "42",
        .text = text,
        .text_len = text ? strlen(text) : 0,
        .now_ms = NOON_MS,
    };
}

static struct dagi_behavior_decision decide(struct dagi_behavior *b,
                                            const struct dagi_behavior_params *p,
                                            const struct dagi_behavior_request *r)
{
    struct dagi_behavior_decision d = {0};
    struct dagi_error err = {0};
    int rc = dagi_behavior_decide(b, p, r, &d, &err);
    if (rc)
        fprintf(stderr, "decide: %s\n", err.message);
    assert_int_equal(rc, 0);
    return d;
}

#define EXPECT(b, p, r, lvl, why)                                                                  \
    do {                                                                                           \
        struct dagi_behavior_decision d_ = decide((b), (p), (r));                                  \
        assert_string_equal(dagi_behavior_level_name(d_.level), (lvl));                            \
        assert_string_equal(d_.reason, (why));                                                     \
        if (d_.level != DAGI_BEHAVIOR_ACK)                                                         \
            assert_null(d_.ack_text);                                                              \
    } while (0)

static void test_table_rows(void **state)
{
    struct dagi_behavior *b = dagi_behavior_new(NULL);
    struct dagi_behavior_params p = params();
    struct dagi_behavior_request r = request(DAGI_CHAT_PRIVATE, "hello");

    /* 1: no chat wins over everything, bots included. */
    r.has_chat = false;
    r.sender_is_bot = true;
    EXPECT(b, &p, &r, "FULL", "no_chat");
    /* 2: the loop guard. */
    r = request(DAGI_CHAT_PRIVATE, "bot text");
    r.sender_is_bot = true;
    EXPECT(b, &p, &r, "SILENT", "sender_is_bot");
    r.sender_is_bot = false, r.sender_is_agent = true;
    EXPECT(b, &p, &r, "SILENT", "sender_is_agent");
    r = request(DAGI_CHAT_GROUP, "енергія");
    r.addressed_to_bot = true, r.sender_is_agent = true;
    EXPECT(b, &p, &r, "SILENT", "sender_is_agent");
    /* 3: a repeat. */
    r = request(DAGI_CHAT_PRIVATE, "once");
    EXPECT(b, &p, &r, "FULL", "private");
    EXPECT(b, &p, &r, "SILENT", "duplicate");
    /* 4: private, by day and at night. */
    r = request(DAGI_CHAT_PRIVATE, "day");
    EXPECT(b, &p, &r, "FULL", "private");
    r = request(DAGI_CHAT_PRIVATE, "night");
    r.now_ms = local_ms(SUMMER_DAY, 23, 30, 3);
    struct dagi_behavior_decision d = decide(b, &p, &r);
    assert_int_equal(d.level, DAGI_BEHAVIOR_ACK);
    assert_string_equal(d.reason, "private_quiet_hours");
    assert_ptr_equal(d.ack_text, p.ack_text);
    struct dagi_behavior_params no_ack = p;
    no_ack.ack_text = NULL;
    r = request(DAGI_CHAT_PRIVATE, "night 2");
    r.now_ms = local_ms(SUMMER_DAY, 2, 0, 3);
    d = decide(b, &no_ack, &r);
    assert_string_equal(d.reason, "private_quiet_hours");
    assert_string_equal(d.ack_text, DAGI_BEHAVIOR_DEFAULT_ACK);
    assert_string_equal(d.ack_text, "👍");
    /* 5: groups, addressed. */
    r = request(DAGI_CHAT_GROUP, "Що з енергетикою?");
    r.addressed_to_bot = true;
    EXPECT(b, &p, &r, "FULL", "group_addressed_in_domain");
    r = request(DAGI_CHAT_SUPERGROUP, "ENERGY prices");
    r.addressed_to_bot = true;
    EXPECT(b, &p, &r, "FULL", "group_addressed_in_domain");
    r = request(DAGI_CHAT_SUPERGROUP, "Яка погода?");
    r.addressed_to_bot = true;
    d = decide(b, &p, &r);
    assert_int_equal(d.level, DAGI_BEHAVIOR_ACK);
    assert_string_equal(d.reason, "group_addressed_out_of_domain");
    assert_ptr_equal(d.ack_text, p.ack_text);
    /* Quiet hours are for private chats only. */
    r = request(DAGI_CHAT_GROUP, "енергія вночі");
    r.addressed_to_bot = true, r.now_ms = local_ms(SUMMER_DAY, 23, 30, 3);
    EXPECT(b, &p, &r, "FULL", "group_addressed_in_domain");
    /* No keywords: everything is in the domain. */
    struct dagi_behavior_params open = p;
    open.domain_keyword_count = 0;
    r = request(DAGI_CHAT_GROUP, "Яка погода завтра?");
    r.addressed_to_bot = true;
    EXPECT(b, &open, &r, "FULL", "group_addressed_in_domain");
    /* 6: groups, not addressed, and channels. */
    r = request(DAGI_CHAT_GROUP, "енергія для всіх");
    EXPECT(b, &p, &r, "SILENT", "group_not_addressed");
    r = request(DAGI_CHAT_SUPERGROUP, "просто балачки");
    EXPECT(b, &p, &r, "SILENT", "group_not_addressed");
    r = request(DAGI_CHAT_CHANNEL, "енергія");
    r.addressed_to_bot = true;
    EXPECT(b, &p, &r, "SILENT", "channel");
    /* silent_in_groups: false answers unaddressed in-domain messages only. */
    struct dagi_behavior_params chatty = p;
    chatty.silent_in_groups = false;
    r = request(DAGI_CHAT_GROUP, "енергія для всіх");
    EXPECT(b, &chatty, &r, "FULL", "group_unaddressed_in_domain");
    r = request(DAGI_CHAT_GROUP, "просто балачки");
    EXPECT(b, &chatty, &r, "SILENT", "group_not_addressed");

    /* An unknown chat type is the caller's bug. */
    r = request(DAGI_CHAT_PRIVATE, "x");
    r.chat_type = (enum dagi_chat_type)42;
    struct dagi_error err = {0};
    assert_int_equal(dagi_behavior_decide(b, &p, &r, &d, &err), DAGI_EINVAL);
    dagi_behavior_free(b);
}

static void test_quiet_hours_wrap(void **state)
{
    const char *tz = kyiv_zone();
    struct {
        int64_t day;
        int off, hh, mm;
        bool quiet;
    } cases[] = {
        {SUMMER_DAY, 3, 22, 59, false}, {SUMMER_DAY, 3, 23, 0, true},
        {SUMMER_DAY, 3, 23, 59, true},  {SUMMER_DAY, 3, 0, 0, true},
        {SUMMER_DAY, 3, 3, 0, true},    {SUMMER_DAY, 3, 6, 59, true},
        {SUMMER_DAY, 3, 7, 0, false},   {SUMMER_DAY, 3, 12, 0, false},
        {WINTER_DAY, 2, 22, 59, false}, {WINTER_DAY, 2, 23, 0, true},
        {WINTER_DAY, 2, 1, 0, true},    {WINTER_DAY, 2, 6, 59, true},
        {WINTER_DAY, 2, 7, 0, false},
    };
    for (size_t i = 0; i < DAGI_ARRAY_LEN(cases); i++) {
        bool in = !cases[i].quiet;
        int64_t ms = local_ms(cases[i].day, cases[i].hh, cases[i].mm, cases[i].off);
        assert_int_equal(dagi_behavior_in_quiet_hours("23:00", "07:00", tz, ms, &in, NULL), 0);
        if (in != cases[i].quiet)
            fprintf(stderr, "case %zu: %02d:%02d\n", i, cases[i].hh, cases[i].mm);
        assert_int_equal(in, cases[i].quiet);
    }
    /* 21:30 UTC in summer is 00:30 in Kyiv (quiet) and 17:30 in New York. */
    int64_t ms = (SUMMER_DAY + 21 * H + 1800) * 1000;
    bool in;
    assert_int_equal(dagi_behavior_in_quiet_hours("23:00", "07:00", tz, ms, &in, NULL), 0);
    assert_true(in);
    assert_int_equal(
        dagi_behavior_in_quiet_hours("23:00", "07:00", "America/New_York", ms, &in, NULL), 0);
    assert_false(in);
    assert_int_equal(dagi_behavior_in_quiet_hours("23:00", "07:00", NULL, ms, &in, NULL), 0);
    assert_false(in); /* NULL = UTC: 21:30 */
    assert_int_equal(dagi_behavior_in_quiet_hours("23:00", "07:00", "+03:00", ms, &in, NULL), 0);
    assert_true(in);
    /* A range inside one day; an empty one; none. */
    assert_int_equal(dagi_behavior_in_quiet_hours("09:00", "17:00", "UTC", NOON_MS, &in, NULL), 0);
    assert_true(in);
    assert_int_equal(dagi_behavior_in_quiet_hours("13:00", "17:00", "UTC", NOON_MS, &in, NULL), 0);
    assert_false(in);
    assert_int_equal(dagi_behavior_in_quiet_hours("09:00", "09:00", "UTC", NOON_MS, &in, NULL), 0);
    assert_false(in);
    in = true;
    assert_int_equal(dagi_behavior_in_quiet_hours(NULL, NULL, "UTC", NOON_MS, &in, NULL), 0);
    assert_false(in);
    /* Before 1970 the floor division still lands in the right minute. */
    assert_int_equal(dagi_behavior_in_quiet_hours("23:00", "07:00", "UTC", -1, &in, NULL), 0);
    assert_true(in);
    /* Errors. */
    struct dagi_error err = {0};
    static const char *const bad[] = {"24:00", "7:00", "07:60", "07-00", "0700", "ab:cd", ""};
    for (size_t i = 0; i < DAGI_ARRAY_LEN(bad); i++)
        assert_int_equal(dagi_behavior_in_quiet_hours(bad[i], "07:00", "UTC", 0, &in, &err),
                         DAGI_EINVAL);
    assert_int_equal(dagi_behavior_in_quiet_hours("23:00", "07:00", "Mars/Base", 0, &in, &err),
                     DAGI_ENOENT);
    assert_int_equal(dagi_behavior_in_quiet_hours("23:00", "07:00", "../etc", 0, &in, &err),
                     DAGI_EINVAL);

    /* A bad zone in decide is an error, and nothing is remembered. */
    struct dagi_behavior *b = dagi_behavior_new(NULL);
    struct dagi_behavior_params p = params();
    p.quiet_tz = "Mars/Base";
    struct dagi_behavior_request r = request(DAGI_CHAT_PRIVATE, "hi");
    struct dagi_behavior_decision d;
    assert_int_equal(dagi_behavior_decide(b, &p, &r, &d, &err), DAGI_ENOENT);
    assert_int_equal(dagi_behavior_seen_list(b, NULL, NULL), 0);
    dagi_behavior_free(b);
}

static void test_duplicate_window(void **state)
{
    struct dagi_behavior *b = dagi_behavior_new(NULL);
    struct dagi_behavior_params p = params();
    struct dagi_behavior_request r = request(DAGI_CHAT_PRIVATE, "Коли зустріч?");
    int64_t t0 = NOON_MS;
    EXPECT(b, &p, &r, "FULL", "private");
    r.now_ms = t0 + 14999;
    EXPECT(b, &p, &r, "SILENT", "duplicate");
    /* The window counts from the message let through, not from repeats. */
    r.now_ms = t0 + 15000;
    EXPECT(b, &p, &r, "FULL", "private");
    r.now_ms = t0 + 20000;
    EXPECT(b, &p, &r, "SILENT", "duplicate");
    r.now_ms = t0 + 31000;
    EXPECT(b, &p, &r, "FULL", "private");

    /* Normalised: case, white space at the ends and inside. */
    static const char *const same[] = {"  коли   ЗУСТРІЧ? ", "КОЛИ\tзустріч?\n",
                                       "Коли\u00A0зустріч?"};
    for (size_t i = 0; i < DAGI_ARRAY_LEN(same); i++) {
        r = request(DAGI_CHAT_PRIVATE, same[i]);
        r.now_ms = t0 + 32000;
        EXPECT(b, &p, &r, "SILENT", "duplicate");
    }
    r = request(DAGI_CHAT_PRIVATE, "Коли зустріч?!");
    r.now_ms = t0 + 32000;
    EXPECT(b, &p, &r, "FULL", "private");
    /* No text (a photo without caption) is never a duplicate. */
    r = request(DAGI_CHAT_PRIVATE, NULL);
    EXPECT(b, &p, &r, "FULL", "private");
    EXPECT(b, &p, &r, "FULL", "private");
    r = request(DAGI_CHAT_PRIVATE, " \n ");
    EXPECT(b, &p, &r, "FULL", "private");
    /* ACKs are remembered too: a repeat at night gets nothing. */
    r = request(DAGI_CHAT_PRIVATE, "ти тут?");
    r.now_ms = local_ms(SUMMER_DAY, 23, 30, 3);
    EXPECT(b, &p, &r, "ACK", "private_quiet_hours");
    EXPECT(b, &p, &r, "SILENT", "duplicate");
    /* Readings a little out of order (two threads) still see the repeat;
     * a clock that went back further does not silence. */
    r = request(DAGI_CHAT_PRIVATE, "clock");
    EXPECT(b, &p, &r, "FULL", "private");
    r.now_ms -= 5;
    EXPECT(b, &p, &r, "SILENT", "duplicate");
    r.now_ms -= 60000;
    EXPECT(b, &p, &r, "FULL", "private");
    dagi_behavior_free(b);

    /* Another window. */
    b = dagi_behavior_new(&(struct dagi_behavior_options){.window_ms = 1000});
    r = request(DAGI_CHAT_PRIVATE, "short");
    EXPECT(b, &p, &r, "FULL", "private");
    r.now_ms += 999;
    EXPECT(b, &p, &r, "SILENT", "duplicate");
    r.now_ms += 1;
    EXPECT(b, &p, &r, "FULL", "private");
    dagi_behavior_free(b);
    assert_null(dagi_behavior_new(&(struct dagi_behavior_options){.window_ms = -1}));
    assert_null(dagi_behavior_new(
        &(struct dagi_behavior_options){.capacity = DAGI_BEHAVIOR_MAX_CAPACITY + 1}));
}

static void test_duplicate_scope(void **state)
{
    struct dagi_behavior *b = dagi_behavior_new(NULL);
    struct dagi_behavior_params p = params();
    struct dagi_behavior_request r = request(DAGI_CHAT_GROUP, "енергія: що нового?");
    r.addressed_to_bot = true;
    EXPECT(b, &p, &r, "FULL", "group_addressed_in_domain");
    r.user_id = "43";
    EXPECT(b, &p, &r, "FULL", "group_addressed_in_domain");
    r.chat_id = "-100999";
    EXPECT(b, &p, &r, "FULL", "group_addressed_in_domain");
    r.agent_id = "druid";
    EXPECT(b, &p, &r, "FULL", "group_addressed_in_domain");
    EXPECT(b, &p, &r, "SILENT", "duplicate");
    /* Fields cannot run into each other. */
    r = request(DAGI_CHAT_PRIVATE, "join");
    r.agent_id = "ab", r.chat_id = "c";
    EXPECT(b, &p, &r, "FULL", "private");
    r.agent_id = "a", r.chat_id = "bc";
    EXPECT(b, &p, &r, "FULL", "private");
    r.agent_id = NULL, r.chat_id = NULL, r.user_id = NULL;
    EXPECT(b, &p, &r, "FULL", "private");
    EXPECT(b, &p, &r, "SILENT", "duplicate");
    dagi_behavior_free(b);
}

/* Said to the group first, then to the bot: the second is answered, because
 * silenced messages never enter the memory. */
static void test_silent_not_remembered(void **state)
{
    struct dagi_behavior *b = dagi_behavior_new(NULL);
    struct dagi_behavior_params p = params();
    struct dagi_behavior_request r = request(DAGI_CHAT_GROUP, "енергія: хто знає?");
    EXPECT(b, &p, &r, "SILENT", "group_not_addressed");
    EXPECT(b, &p, &r, "SILENT", "group_not_addressed");
    r.sender_is_bot = true;
    EXPECT(b, &p, &r, "SILENT", "sender_is_bot");
    r = request(DAGI_CHAT_CHANNEL, "енергія: хто знає?");
    EXPECT(b, &p, &r, "SILENT", "channel");
    r = request(DAGI_CHAT_PRIVATE, "no chat");
    r.has_chat = false;
    EXPECT(b, &p, &r, "FULL", "no_chat");
    EXPECT(b, &p, &r, "FULL", "no_chat");
    assert_int_equal(dagi_behavior_seen_list(b, NULL, NULL), 0);
    r = request(DAGI_CHAT_GROUP, "енергія: хто знає?");
    r.addressed_to_bot = true;
    EXPECT(b, &p, &r, "FULL", "group_addressed_in_domain");
    assert_int_equal(dagi_behavior_seen_list(b, NULL, NULL), 1);
    dagi_behavior_free(b);
}

struct collected {
    struct dagi_behavior_seen items[16];
    size_t n;
};

static void collect(const struct dagi_behavior_seen *seen, void *ctx)
{
    struct collected *c = ctx;
    if (c->n < DAGI_ARRAY_LEN(c->items))
        c->items[c->n++] = *seen;
}

static void test_only_hashes_kept(void **state)
{
    /* The record is a hash and a time, nothing else. */
    assert_int_equal(sizeof(struct dagi_behavior_seen), DAGI_BEHAVIOR_HASH_BYTES + sizeof(int64_t));
    uint8_t key[DAGI_BEHAVIOR_KEY_BYTES];
    memset(key, 7, sizeof(key));
    struct dagi_behavior *b1 = dagi_behavior_new(&(struct dagi_behavior_options){.key = key});
    struct dagi_behavior *b2 = dagi_behavior_new(&(struct dagi_behavior_options){.key = key});
    key[0] = 8;
    struct dagi_behavior *b3 = dagi_behavior_new(&(struct dagi_behavior_options){.key = key});
    struct dagi_behavior *b4 = dagi_behavior_new(NULL); /* a random key */
    struct dagi_behavior_params p = params();
    const char *secret = "my card number is 4111111111111111";
    struct dagi_behavior_request r = request(DAGI_CHAT_PRIVATE, secret);
    EXPECT(b1, &p, &r, "FULL", "private");
    r = request(DAGI_CHAT_PRIVATE, "  MY CARD number is 4111111111111111");
    EXPECT(b2, &p, &r, "FULL", "private");
    EXPECT(b3, &p, &r, "FULL", "private");
    EXPECT(b4, &p, &r, "FULL", "private");

    struct collected c1 = {0}, c2 = {0}, c3 = {0}, c4 = {0};
    assert_int_equal(dagi_behavior_seen_list(b1, collect, &c1), 1);
    assert_int_equal(dagi_behavior_seen_list(b2, collect, &c2), 1);
    assert_int_equal(dagi_behavior_seen_list(b3, collect, &c3), 1);
    assert_int_equal(dagi_behavior_seen_list(b4, collect, &c4), 1);
    assert_int_equal(c1.items[0].seen_ms, NOON_MS);
    /* Same key, same normalised text: same hash; another key: another. */
    assert_memory_equal(c1.items[0].hash, c2.items[0].hash, DAGI_BEHAVIOR_HASH_BYTES);
    assert_memory_not_equal(c1.items[0].hash, c3.items[0].hash, DAGI_BEHAVIOR_HASH_BYTES);
    assert_memory_not_equal(c1.items[0].hash, c4.items[0].hash, DAGI_BEHAVIOR_HASH_BYTES);
    /* Not the text, nor a piece of it. */
    assert_null(memmem(c1.items[0].hash, DAGI_BEHAVIOR_HASH_BYTES, "4111", 4));
    assert_null(memmem(c1.items[0].hash, DAGI_BEHAVIOR_HASH_BYTES, "card", 4));
    dagi_behavior_free(b1);
    dagi_behavior_free(b2);
    dagi_behavior_free(b3);
    dagi_behavior_free(b4);
}

static void test_capacity_eviction(void **state)
{
    struct dagi_behavior *b = dagi_behavior_new(&(struct dagi_behavior_options){.capacity = 4});
    struct dagi_behavior_params p = params();
    char text[32];
    struct dagi_behavior_request r;
    for (int i = 0; i < 6; i++) {
        snprintf(text, sizeof(text), "message %d", i);
        r = request(DAGI_CHAT_PRIVATE, text);
        r.now_ms = NOON_MS + i;
        EXPECT(b, &p, &r, "FULL", "private");
    }
    /* 0 and 1 are gone; 2-5 remain, oldest first. */
    struct collected c = {0};
    assert_int_equal(dagi_behavior_seen_list(b, collect, &c), 4);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(c.items[i].seen_ms, NOON_MS + 2 + (int64_t)i);
    r = request(DAGI_CHAT_PRIVATE, "message 5");
    r.now_ms = NOON_MS + 10;
    EXPECT(b, &p, &r, "SILENT", "duplicate");
    r = request(DAGI_CHAT_PRIVATE, "message 2");
    r.now_ms = NOON_MS + 10;
    EXPECT(b, &p, &r, "SILENT", "duplicate");
    r = request(DAGI_CHAT_PRIVATE, "message 0"); /* evicted: answered again, evicts 2 */
    r.now_ms = NOON_MS + 10;
    EXPECT(b, &p, &r, "FULL", "private");
    r = request(DAGI_CHAT_PRIVATE, "message 2");
    r.now_ms = NOON_MS + 11;
    EXPECT(b, &p, &r, "FULL", "private");
    assert_int_equal(dagi_behavior_seen_list(b, NULL, NULL), 4);
    /* A stale entry is dropped and a new one written at the ring's head
     * (evicting the oldest, "message 4"), never kept beside it. */
    r = request(DAGI_CHAT_PRIVATE, "message 5");
    r.now_ms = NOON_MS + 60000;
    EXPECT(b, &p, &r, "FULL", "private");
    c.n = 0;
    assert_int_equal(dagi_behavior_seen_list(b, collect, &c), 3);
    assert_int_equal(c.items[2].seen_ms, NOON_MS + 60000);
    r.now_ms += 1;
    EXPECT(b, &p, &r, "SILENT", "duplicate");
    for (int i = 0; i < 1000; i++) { /* wrap the ring many times */
        snprintf(text, sizeof(text), "flood %d", i % 7);
        r = request(DAGI_CHAT_PRIVATE, text);
        r.now_ms = NOON_MS + 100000 + i * 3000;
        decide(b, &p, &r);
    }
    assert_true(dagi_behavior_seen_list(b, NULL, NULL) <= 4);
    dagi_behavior_free(b);

    b = dagi_behavior_new(&(struct dagi_behavior_options){.capacity = 1});
    r = request(DAGI_CHAT_PRIVATE, "a");
    EXPECT(b, &p, &r, "FULL", "private");
    EXPECT(b, &p, &r, "SILENT", "duplicate");
    r = request(DAGI_CHAT_PRIVATE, "b");
    EXPECT(b, &p, &r, "FULL", "private");
    r = request(DAGI_CHAT_PRIVATE, "a");
    EXPECT(b, &p, &r, "FULL", "private");
    dagi_behavior_free(b);
}

static bool kw(const char *text, const char *keyword)
{
    const char *k[] = {keyword};
    return dagi_behavior_keyword_match(text, text ? strlen(text) : 0, k, 1);
}

static void test_keywords(void **state)
{
    /* The brief's examples. */
    assert_true(kw("Енергія", "енерг"));
    assert_true(kw("енергетика", "енерг"));
    assert_true(kw("ЕНЕРГІЯ", "енерг"));
    assert_true(kw("Питання про ЕнЕрГеТиКу", "ЕНЕРГ"));
    assert_false(kw("синергія", "енерг"));
    assert_false(kw("synergy", "energy"));
    assert_true(kw("Energy union", "ENERGY"));
    /* Ukrainian letters and their capitals, Russian Ё, Latin-1. */
    assert_true(kw("ҐРУНТ", "ґрунт"));
    assert_true(kw("ЇЖА", "їжа"));
    assert_true(kw("ЄДНІСТЬ", "єдн"));
    assert_true(kw("ІНША справа", "інш"));
    assert_true(kw("ЁЛКА", "ёлка"));
    assert_true(kw("CAFÉ ÜBER", "über"));
    assert_true(kw("crème brûlée", "CRÈME BRÛ"));
    assert_false(kw("енергія", "енергії")); /* a longer keyword is no prefix */
    /* Word starts. */
    assert_true(kw("(енергія)", "енерг"));
    assert_true(kw("#енергія", "енерг"));
    assert_true(kw("мікро-енергія", "енерг"));
    assert_true(kw("🔥енергія", "енерг"));
    assert_true(kw("«Енергія»", "енерг"));
    assert_true(kw("x,energy", "energy"));
    assert_false(kw("5енергія", "енерг")); /* a digit is part of the word */
    assert_false(kw("éenergy", "energy"));
    assert_false(kw("об'єднання", "єдн"));      /* an apostrophe inside a word */
    assert_false(kw("об\u2019єднання", "єдн")); /* ’ */
    assert_false(kw("об\u02BCєднання", "єдн")); /* ʼ */
    assert_true(kw("'єднання'", "єдн"));        /* a quote before a word */
    assert_true(kw("об'єднання", "об'єдн"));
    /* Several words; white space collapsed on both sides. */
    assert_true(kw("about Energy    Union plans", "energy union"));
    assert_true(kw("about energy\nunion", "  Energy   Union "));
    assert_false(kw("about energy unit", "energy union"));
    /* A keyword starting with a non-letter matches anywhere. */
    assert_true(kw("join #DAO now", "#dao"));
    assert_true(kw("join#dao", "#dao"));
    assert_false(kw("join dao", "#dao"));
    /* Empty keywords never match; no keywords match everything. */
    assert_false(kw("anything", ""));
    assert_false(kw("anything", " \t"));
    assert_false(kw("anything", NULL));
    assert_true(dagi_behavior_keyword_match("anything", 8, NULL, 0));
    /* Odd texts. */
    assert_false(kw(NULL, "енерг"));
    assert_false(kw("", "енерг"));
    assert_true(kw("\xff\xfe енергія", "енерг"));
    assert_true(kw("\xd0 енергія", "енерг"));       /* a cut sequence */
    assert_false(kw("\xd0\xb5нергія", "\xb5нерг")); /* a keyword of a stray byte */
    const char *text = "energy union";
    const char *k1[] = {"union"};
    assert_false(dagi_behavior_keyword_match(text, 6, k1, 1)); /* text_len is the end */
    assert_true(dagi_behavior_keyword_match(text, strlen(text), k1, 1));
    const char *k3[] = {"", "погода", "union"};
    assert_true(dagi_behavior_keyword_match(text, strlen(text), k3, 3));
}

static void test_validate_params(void **state)
{
    struct dagi_behavior_params p = params();
    struct dagi_error err = {0};
    assert_int_equal(dagi_behavior_validate_params(&p, &err), 0);
    struct dagi_behavior_params none = {0};
    assert_int_equal(dagi_behavior_validate_params(&none, &err), 0);

    struct dagi_behavior_params q = p;
    q.quiet_to = NULL;
    assert_int_equal(dagi_behavior_validate_params(&q, &err), DAGI_EINVAL);
    assert_string_equal(err.message, "quiet_hours.to: from and to must be set together");
    q = p, q.quiet_from = "7:00";
    assert_int_equal(dagi_behavior_validate_params(&q, &err), DAGI_EINVAL);
    assert_non_null(strstr(err.message, "quiet_hours.from"));
    q = p, q.quiet_to = "24:00";
    assert_int_equal(dagi_behavior_validate_params(&q, &err), DAGI_EINVAL);
    assert_non_null(strstr(err.message, "quiet_hours.to"));
    q = p, q.quiet_to = "23:00";
    assert_int_equal(dagi_behavior_validate_params(&q, &err), DAGI_EINVAL);
    assert_non_null(strstr(err.message, "empty range"));
    q = p, q.quiet_tz = "Mars/Olympus_Mons";
    assert_int_equal(dagi_behavior_validate_params(&q, &err), DAGI_ENOENT);
    assert_non_null(strstr(err.message, "quiet_hours.tz"));
    q = p, q.quiet_tz = "../../etc/passwd";
    assert_int_equal(dagi_behavior_validate_params(&q, &err), DAGI_EINVAL);
    assert_non_null(strstr(err.message, "quiet_hours.tz"));
    q = p, q.quiet_tz = "-05:30";
    assert_int_equal(dagi_behavior_validate_params(&q, &err), 0);
    q = p, q.quiet_tz = NULL;
    assert_int_equal(dagi_behavior_validate_params(&q, &err), 0);
    q = p, q.ack_text = " \n";
    assert_int_equal(dagi_behavior_validate_params(&q, &err), DAGI_EINVAL);
    assert_string_equal(err.message, "ack_text: empty");
    const char *bad_kw[] = {"енерг", "  ", "dao"};
    q = p, q.domain_keywords = bad_kw, q.domain_keyword_count = 3;
    assert_int_equal(dagi_behavior_validate_params(&q, &err), DAGI_EINVAL);
    assert_string_equal(err.message, "domain_keywords[1]: empty");
}

static void test_names(void **state)
{
    assert_string_equal(dagi_behavior_level_name(DAGI_BEHAVIOR_FULL), "FULL");
    assert_string_equal(dagi_behavior_level_name(DAGI_BEHAVIOR_ACK), "ACK");
    assert_string_equal(dagi_behavior_level_name(DAGI_BEHAVIOR_SILENT), "SILENT");
    assert_string_equal(dagi_behavior_level_name((enum dagi_behavior_level)9), "?");
    enum dagi_chat_type t = DAGI_CHAT_CHANNEL;
    assert_int_equal(dagi_behavior_chat_type_parse("private", &t), 0);
    assert_int_equal(t, DAGI_CHAT_PRIVATE);
    assert_int_equal(dagi_behavior_chat_type_parse("group", &t), 0);
    assert_int_equal(t, DAGI_CHAT_GROUP);
    assert_int_equal(dagi_behavior_chat_type_parse("supergroup", &t), 0);
    assert_int_equal(t, DAGI_CHAT_SUPERGROUP);
    assert_int_equal(dagi_behavior_chat_type_parse("channel", &t), 0);
    assert_int_equal(t, DAGI_CHAT_CHANNEL);
    assert_int_equal(dagi_behavior_chat_type_parse("Group", &t), DAGI_EINVAL);
    assert_int_equal(dagi_behavior_chat_type_parse(NULL, &t), DAGI_EINVAL);
    assert_int_equal(t, DAGI_CHAT_CHANNEL);
}

#define THREADS 8
#define SHARED_TEXTS 200

struct race {
    struct dagi_behavior *b;
    atomic_int next_index;
    atomic_int shared_full, own_full, own_dup, errors;
};

static void count(struct race *race, const struct dagi_behavior_request *r, atomic_int *full,
                  atomic_int *dup)
{
    struct dagi_behavior_params p = params();
    struct dagi_behavior_decision d;
    if (dagi_behavior_decide(race->b, &p, r, &d, NULL) != 0)
        atomic_fetch_add(&race->errors, 1);
    else if (d.level == DAGI_BEHAVIOR_FULL)
        atomic_fetch_add(full, 1);
    else if (dup && !strcmp(d.reason, "duplicate"))
        atomic_fetch_add(dup, 1);
}

/* Every thread sends the same SHARED_TEXTS messages from one user - exactly
 * one thread gets each through - and its own messages twice each. */
static void *race_thread(void *arg)
{
    struct race *race = arg;
    char user[16], text[64];
    snprintf(user, sizeof(user), "u%d", atomic_fetch_add(&race->next_index, 1));
    for (int i = 0; i < SHARED_TEXTS; i++) {
        snprintf(text, sizeof(text), "shared %d", i);
        struct dagi_behavior_request r = request(DAGI_CHAT_PRIVATE, text);
        count(race, &r, &race->shared_full, NULL);
        snprintf(text, sizeof(text), "own %d", i);
        r = request(DAGI_CHAT_PRIVATE, text);
        r.user_id = user;
        count(race, &r, &race->own_full, &race->own_dup);
        count(race, &r, &race->own_full, &race->own_dup);
    }
    return NULL;
}

static void test_threads(void **state)
{
    struct race race = {.b = dagi_behavior_new(NULL)};
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, race_thread, &race), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&race.errors), 0);
    assert_int_equal(atomic_load(&race.shared_full), SHARED_TEXTS);
    assert_int_equal(atomic_load(&race.own_full), THREADS * SHARED_TEXTS);
    assert_int_equal(atomic_load(&race.own_dup), THREADS * SHARED_TEXTS);
    assert_int_equal(dagi_behavior_seen_list(race.b, NULL, NULL),
                     SHARED_TEXTS + THREADS * SHARED_TEXTS);
    dagi_behavior_free(race.b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_rows),
        cmocka_unit_test(test_quiet_hours_wrap),
        cmocka_unit_test(test_duplicate_window),
        cmocka_unit_test(test_duplicate_scope),
        cmocka_unit_test(test_silent_not_remembered),
        cmocka_unit_test(test_only_hashes_kept),
        cmocka_unit_test(test_capacity_eviction),
        cmocka_unit_test(test_keywords),
        cmocka_unit_test(test_validate_params),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
