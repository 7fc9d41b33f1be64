/* Telegram Update parsing, on the shapes the Bot API documents: a private
 * text message, a group mention, a reply to the bot, a photo with caption
 * entities, "/cmd@bot", edited_message, callback_query (ignored kind), a
 * channel post without `from`, emoji before a mention (UTF-16 offsets),
 * Cyrillic text; then addressing, mention stripping, dropped entities,
 * forum-topic pseudo replies, and every error path. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/err.h"
#include "core/mem.h"
#include "telegram/tg_update.h"

#define BOT_NAME "helion_bot"
#define BOT_ID 7000000001LL

/* The same sender and chats appear in most samples. */
#define USER_OLENA                                                                                 \
    "{\"id\":222333444,\"is_bot\":false,\"first_name\":\"Олена\",\"username\":\"olena\","     \
    "\"language_code\":\"uk\"}"
#define GROUP "{\"id\":-1001234567890,\"title\":\"Helion lab\",\"type\":\"supergroup\"}"
#define BOT_USER                                                                                   \
    "{\"id\":7000000001,\"is_bot\":true,\"first_name\":\"Helion\",\"username\":\"helion_bot\"}"

static int setup(void **state)
{
    *state = dagi_arena_new(0);
    return 0;
}

static int teardown(void **state)
{
    dagi_arena_free(*state);
    return 0;
}

static const struct dagi_tg_update *parse(struct dagi_arena *a, const char *json)
{
    const struct dagi_tg_update *u = NULL;
    struct dagi_error err = {0};
    int rc = dagi_tg_update_parse(json, strlen(json), a, &u, &err);
    if (rc)
        fprintf(stderr, "unexpected error: %s\n", err.message);
    assert_int_equal(rc, 0);
    assert_non_null(u);
    return u;
}

static void expect_error(struct dagi_arena *a, const char *json, size_t len, int code,
                         const char *message_part)
{
    const struct dagi_tg_update *u = NULL;
    struct dagi_error err = {0};
    assert_int_equal(dagi_tg_update_parse(json, len, a, &u, &err), code);
    assert_null(u);
    if (!strstr(err.message, message_part))
        fail_msg("error \"%s\" does not mention \"%s\"", err.message, message_part);
}

/* The entity's text, as a NUL-terminated copy in a static buffer. */
static const char *entity_text(const struct dagi_tg_update *u, size_t i)
{
    static char buf[256];
    assert_true(i < u->entity_count);
    const struct dagi_tg_entity *e = &u->entities[i];
    assert_true(e->offset + e->length <= u->text_len);
    snprintf(buf, sizeof(buf), "%.*s", (int)e->length, u->text + e->offset);
    return buf;
}

static void test_private_text(void **state)
{
    /* The Bot API's own sample update. */
    const struct dagi_tg_update *u = parse(
        *state, "{\"update_id\":10000,\"message\":{\"date\":1441645532,"
                "\"chat\":{\"last_name\":\"Test Lastname\",\"id\":1111111,\"type\":\"private\","
                "\"first_name\":\"Test Firstname\",\"username\":\"Testusername\"},"
                "\"message_id\":1365,\"from\":{\"last_name\":\"Test Lastname\",\"id\":1111111,"
                "\"is_bot\":false,\"first_name\":\"Test Firstname\",\"username\":\"Testusername\","
                "\"language_code\":\"en\"},\"text\":\"/start\","
                "\"entities\":[{\"offset\":0,\"length\":6,\"type\":\"bot_command\"}]}}");
    assert_int_equal(u->update_id, 10000);
    assert_int_equal(u->kind, DAGI_TG_UPDATE_MESSAGE);
    assert_int_equal(u->message_id, 1365);
    assert_int_equal(u->date, 1441645532);
    assert_int_equal(u->chat.id, 1111111);
    assert_int_equal(u->chat.type, DAGI_TG_CHAT_PRIVATE);
    assert_string_equal(u->chat.username, "Testusername");
    assert_null(u->chat.title);
    assert_non_null(u->from);
    assert_int_equal(u->from->id, 1111111);
    assert_false(u->from->is_bot);
    assert_string_equal(u->from->first_name, "Test Firstname");
    assert_string_equal(u->from->language_code, "en");
    assert_null(u->sender_chat);
    assert_string_equal(u->text, "/start");
    assert_false(u->text_is_caption);
    assert_string_equal(u->command, "start");
    assert_null(u->command_target);
    assert_string_equal(u->command_args, "");
    assert_null(u->photo);
    assert_null(u->reply_to);
    /* A bare command in a private chat names no bot: the caller decides. */
    assert_false(dagi_tg_addressed_to(u, BOT_NAME, BOT_ID));
}

static void test_group_mention(void **state)
{
    const struct dagi_tg_update *u = parse(
        *state, "{\"update_id\":10001,\"message\":{\"message_id\":77,\"from\":" USER_OLENA
                ",\"chat\":" GROUP ",\"date\":1700000000,\"text\":\"@Helion_Bot what is DNS?\","
                "\"entities\":[{\"offset\":0,\"length\":11,\"type\":\"mention\"}]}}");
    assert_int_equal(u->chat.type, DAGI_TG_CHAT_SUPERGROUP);
    assert_int_equal(u->chat.id, -1001234567890LL);
    assert_string_equal(u->chat.title, "Helion lab");
    assert_string_equal(u->from->first_name, "Олена");
    assert_int_equal(u->entity_count, 1);
    assert_int_equal(u->entities[0].kind, DAGI_TG_ENTITY_MENTION);
    assert_string_equal(u->entities[0].type, "mention");
    assert_string_equal(entity_text(u, 0), "@Helion_Bot");
    assert_true(dagi_tg_addressed_to(u, BOT_NAME, BOT_ID));
    assert_true(dagi_tg_addressed_to(u, "@" BOT_NAME, 0));
    assert_false(dagi_tg_addressed_to(u, "other_bot", 1234));
    assert_false(dagi_tg_addressed_to(u, "helion_bo", 1234)); /* prefix is not a match */
    assert_false(dagi_tg_addressed_to(u, NULL, 0));

    size_t n;
    const char *t = dagi_tg_update_text_without_mention(u, BOT_NAME, &n);
    assert_int_equal(n, strlen("what is DNS?"));
    assert_memory_equal(t, "what is DNS?", n);
    /* Another bot's mention stays. */
    t = dagi_tg_update_text_without_mention(u, "other_bot", &n);
    assert_ptr_equal(t, u->text);
    assert_int_equal(n, u->text_len);
}

static void test_reply_to_bot(void **state)
{
    const struct dagi_tg_update *u = parse(
        *state, "{\"update_id\":10002,\"message\":{\"message_id\":78,\"from\":" USER_OLENA
                ",\"chat\":" GROUP ",\"date\":1700000060,"
                "\"reply_to_message\":{\"message_id\":76,\"from\":" BOT_USER ",\"chat\":" GROUP
                ",\"date\":1700000030,\"text\":\"DNS maps names to addresses.\"},"
                "\"text\":\"and why is it slow?\"}}");
    assert_non_null(u->reply_to);
    assert_int_equal(u->reply_to->message_id, 76);
    assert_non_null(u->reply_to->from);
    assert_int_equal(u->reply_to->from->id, BOT_ID);
    assert_true(u->reply_to->from->is_bot);
    assert_string_equal(u->reply_to->from->username, BOT_NAME);
    assert_int_equal(u->entity_count, 0);
    assert_true(dagi_tg_addressed_to(u, NULL, BOT_ID));       /* by id */
    assert_true(dagi_tg_addressed_to(u, "HELION_BOT", 0));    /* by username */
    assert_false(dagi_tg_addressed_to(u, "other_bot", 1234)); /* someone else's reply */
}

static void test_photo_with_caption(void **state)
{
    /* Sizes out of order on purpose: the largest by area wins, not the last. */
    const struct dagi_tg_update *u =
        parse(*state,
              "{\"update_id\":10003,\"message\":{\"message_id\":79,\"from\":" USER_OLENA
              ",\"chat\":" GROUP ",\"date\":1700000100,\"photo\":["
              "{\"file_id\":\"AgACAgIAAxkBAAIBS\",\"file_unique_id\":\"AQADs\",\"file_size\":1523,"
              "\"width\":90,\"height\":67},"
              "{\"file_id\":\"AgACAgIAAxkBAAIBX\",\"file_unique_id\":\"AQADx\",\"file_size\":94520,"
              "\"width\":1280,\"height\":960},"
              "{\"file_id\":\"AgACAgIAAxkBAAIBM\",\"file_unique_id\":\"AQADm\",\"file_size\":21347,"
              "\"width\":320,\"height\":240}],"
              "\"caption\":\"@helion_bot what is on this photo?\","
              "\"caption_entities\":[{\"offset\":0,\"length\":11,\"type\":\"mention\"}]}}");
    assert_non_null(u->photo);
    assert_string_equal(u->photo->file_id, "AgACAgIAAxkBAAIBX");
    assert_string_equal(u->photo->file_unique_id, "AQADx");
    assert_int_equal(u->photo->width, 1280);
    assert_int_equal(u->photo->height, 960);
    assert_int_equal(u->photo->file_size, 94520);
    assert_true(u->text_is_caption);
    assert_string_equal(u->text, "@helion_bot what is on this photo?");
    assert_int_equal(u->entity_count, 1);
    assert_true(dagi_tg_addressed_to(u, BOT_NAME, BOT_ID));
    size_t n;
    const char *t = dagi_tg_update_text_without_mention(u, BOT_NAME, &n);
    assert_memory_equal(t, "what is on this photo?", n);

    /* A photo without caption: no text, no file_size. */
    u = parse(*state, "{\"update_id\":10004,\"message\":{\"message_id\":80,\"chat\":" GROUP
                      ",\"date\":1,\"photo\":[{\"file_id\":\"A\",\"file_unique_id\":\"B\","
                      "\"width\":10,\"height\":10}]}}");
    assert_null(u->text);
    assert_false(u->text_is_caption);
    assert_int_equal(u->photo->file_size, 0);
    t = dagi_tg_update_text_without_mention(u, BOT_NAME, &n);
    assert_null(t);
    assert_int_equal(n, 0);
}

static void test_command_with_target(void **state)
{
    const struct dagi_tg_update *u =
        parse(*state, "{\"update_id\":10005,\"message\":{\"message_id\":81,\"from\":" USER_OLENA
                      ",\"chat\":" GROUP ",\"date\":1700000200,"
                      "\"text\":\"/help@helion_bot how do I start?\","
                      "\"entities\":[{\"offset\":0,\"length\":16,\"type\":\"bot_command\"}]}}");
    assert_string_equal(u->command, "help");
    assert_string_equal(u->command_target, BOT_NAME);
    assert_string_equal(u->command_args, "how do I start?");
    assert_int_equal(u->entities[0].kind, DAGI_TG_ENTITY_BOT_COMMAND);
    assert_true(dagi_tg_addressed_to(u, BOT_NAME, BOT_ID));
    assert_false(dagi_tg_addressed_to(u, "other_bot", 1234));

    /* A command later in the text is an entity, not the message's command. */
    u = parse(*state, "{\"update_id\":10006,\"message\":{\"message_id\":82,\"chat\":" GROUP
                      ",\"date\":1,\"text\":\"try /help@other_bot\","
                      "\"entities\":[{\"offset\":4,\"length\":15,\"type\":\"bot_command\"}]}}");
    assert_null(u->command);
    assert_null(u->command_target);
    assert_string_equal(entity_text(u, 0), "/help@other_bot");
    assert_false(dagi_tg_addressed_to(u, BOT_NAME, BOT_ID));
    assert_true(dagi_tg_addressed_to(u, "other_bot", 0));
}

static void test_edited_message(void **state)
{
    const struct dagi_tg_update *u = parse(
        *state, "{\"update_id\":10007,\"edited_message\":{\"date\":1441645532,"
                "\"chat\":{\"id\":1111111,\"type\":\"private\",\"first_name\":\"Test\"},"
                "\"message_id\":1365,\"from\":{\"id\":1111111,\"is_bot\":false,"
                "\"first_name\":\"Test\"},\"text\":\"Edited text\",\"edit_date\":1441646600}}");
    assert_int_equal(u->kind, DAGI_TG_UPDATE_EDITED_MESSAGE);
    assert_int_equal(u->message_id, 1365);
    assert_int_equal(u->edit_date, 1441646600);
    assert_string_equal(u->text, "Edited text");
    assert_null(u->from->username);
    assert_null(u->from->language_code);
}

static void test_callback_query_is_other(void **state)
{
    const struct dagi_tg_update *u =
        parse(*state, "{\"update_id\":10008,\"callback_query\":{\"id\":\"4382bfdwdsb323b2d9\","
                      "\"from\":{\"last_name\":\"Test Lastname\",\"id\":1111111,\"is_bot\":false,"
                      "\"first_name\":\"Test Firstname\",\"username\":\"Testusername\"},"
                      "\"data\":\"Data from button callback\","
                      "\"inline_message_id\":\"1234csdbsk4839\"}}");
    assert_int_equal(u->update_id, 10008);
    assert_int_equal(u->kind, DAGI_TG_UPDATE_OTHER);
    assert_null(u->text);
    assert_null(u->from);
    assert_int_equal(u->message_id, 0);
    assert_false(dagi_tg_addressed_to(u, BOT_NAME, BOT_ID));
}

static void test_channel_post(void **state)
{
    const struct dagi_tg_update *u = parse(
        *state,
        "{\"update_id\":10009,\"channel_post\":{\"message_id\":12,"
        "\"sender_chat\":{\"id\":-1009876543210,\"title\":\"Helion news\","
        "\"username\":\"helion_news\",\"type\":\"channel\"},"
        "\"chat\":{\"id\":-1009876543210,\"title\":\"Helion news\",\"username\":\"helion_news\","
        "\"type\":\"channel\"},\"date\":1700000300,\"text\":\"New release today\"}}");
    assert_int_equal(u->kind, DAGI_TG_UPDATE_CHANNEL_POST);
    assert_null(u->from);
    assert_non_null(u->sender_chat);
    assert_int_equal(u->sender_chat->id, -1009876543210LL);
    assert_int_equal(u->sender_chat->type, DAGI_TG_CHAT_CHANNEL);
    assert_string_equal(u->sender_chat->username, "helion_news");
    assert_int_equal(u->chat.type, DAGI_TG_CHAT_CHANNEL);

    u = parse(*state, "{\"update_id\":10010,\"edited_channel_post\":{\"message_id\":12,"
                      "\"chat\":{\"id\":-1009876543210,\"type\":\"channel\"},\"date\":1,"
                      "\"edit_date\":2,\"text\":\"New release today!\"}}");
    assert_int_equal(u->kind, DAGI_TG_UPDATE_EDITED_CHANNEL_POST);
}

static void test_emoji_before_mention(void **state)
{
    /* "👋🏽" is two code points outside the BMP: 8 bytes of UTF-8 but 4 UTF-16
     * units, so the mention sits at unit 8 but byte 12, and "ready" at unit
     * 21, byte 25.  Reading offsets as bytes would land mid-emoji. */
    const struct dagi_tg_update *u =
        parse(*state, "{\"update_id\":10011,\"message\":{\"message_id\":83,\"from\":" USER_OLENA
                      ",\"chat\":" GROUP ",\"date\":1,\"text\":\"👋🏽 hi @helion_bot, ready?\","
                      "\"entities\":[{\"offset\":8,\"length\":11,\"type\":\"mention\"},"
                      "{\"offset\":21,\"length\":5,\"type\":\"bold\"}]}}");
    assert_int_equal(u->entity_count, 2);
    assert_int_equal(u->entities[0].offset, 12);
    assert_string_equal(entity_text(u, 0), "@helion_bot");
    assert_int_equal(u->entities[1].kind, DAGI_TG_ENTITY_OTHER);
    assert_string_equal(u->entities[1].type, "bold");
    assert_string_equal(entity_text(u, 1), "ready");
    assert_true(dagi_tg_addressed_to(u, BOT_NAME, BOT_ID));
    /* Not leading, so kept. */
    size_t n;
    assert_ptr_equal(dagi_tg_update_text_without_mention(u, BOT_NAME, &n), u->text);
}

static void test_cyrillic(void **state)
{
    /* Cyrillic letters are 2 bytes of UTF-8 and 1 UTF-16 unit each. */
    const struct dagi_tg_update *u =
        parse(*state, "{\"update_id\":10012,\"message\":{\"message_id\":84,\"from\":" USER_OLENA
                      ",\"chat\":" GROUP ",\"date\":1,\"text\":\"Привіт, @helion_bot! Як справи?\","
                      "\"entities\":[{\"offset\":8,\"length\":11,\"type\":\"mention\"},"
                      "{\"offset\":21,\"length\":2,\"type\":\"italic\"}]}}");
    assert_int_equal(u->entities[0].offset, 14);
    assert_string_equal(entity_text(u, 0), "@helion_bot");
    assert_string_equal(entity_text(u, 1), "Як");
    assert_true(dagi_tg_addressed_to(u, BOT_NAME, BOT_ID));

    u = parse(*state, "{\"update_id\":10013,\"message\":{\"message_id\":85,\"chat\":" GROUP
                      ",\"date\":1,\"text\":\"  @HELION_BOT: як справи?\"}}");
    size_t n;
    const char *t = dagi_tg_update_text_without_mention(u, "@helion_bot", &n);
    assert_int_equal(n, strlen("як справи?"));
    assert_memory_equal(t, "як справи?", n);
    /* "@helion_botanist" is someone else. */
    u = parse(*state, "{\"update_id\":10014,\"message\":{\"message_id\":86,\"chat\":" GROUP
                      ",\"date\":1,\"text\":\"@helion_botanist привіт\"}}");
    assert_ptr_equal(dagi_tg_update_text_without_mention(u, BOT_NAME, &n), u->text);
}

static void test_text_mention_by_id(void **state)
{
    const struct dagi_tg_update *u =
        parse(*state, "{\"update_id\":10015,\"message\":{\"message_id\":87,\"chat\":" GROUP
                      ",\"date\":1,\"text\":\"Helion, summarise\","
                      "\"entities\":[{\"offset\":0,\"length\":6,\"type\":\"text_mention\","
                      "\"user\":" BOT_USER "}]}}");
    assert_int_equal(u->entities[0].kind, DAGI_TG_ENTITY_TEXT_MENTION);
    assert_int_equal(u->entities[0].user_id, BOT_ID);
    assert_true(dagi_tg_addressed_to(u, NULL, BOT_ID));
    assert_false(dagi_tg_addressed_to(u, BOT_NAME, 0));
}

static void test_malformed_entities_dropped(void **state)
{
    /* Inside the surrogate pair, past the end, negative, zero length, no
     * type, not an object, text_mention without user: all dropped; the one
     * good entity and the message survive. */
    const struct dagi_tg_update *u =
        parse(*state, "{\"update_id\":10016,\"message\":{\"message_id\":88,\"chat\":" GROUP
                      ",\"date\":1,\"text\":\"🙂 @helion_bot\",\"entities\":["
                      "{\"offset\":1,\"length\":2,\"type\":\"bold\"},"
                      "{\"offset\":3,\"length\":50,\"type\":\"bold\"},"
                      "{\"offset\":-1,\"length\":2,\"type\":\"bold\"},"
                      "{\"offset\":0,\"length\":0,\"type\":\"bold\"},"
                      "{\"offset\":0,\"length\":2},"
                      "\"mention\","
                      "{\"offset\":0,\"length\":2,\"type\":\"text_mention\"},"
                      "{\"offset\":3,\"length\":11,\"type\":\"mention\"},"
                      "{\"offset\":9223372036854775807,\"length\":9223372036854775807,"
                      "\"type\":\"bold\"}]}}");
    assert_int_equal(u->entity_count, 1);
    assert_string_equal(entity_text(u, 0), "@helion_bot");

    /* An entities value that is not an array is ignored altogether. */
    u = parse(*state, "{\"update_id\":10017,\"message\":{\"message_id\":89,\"chat\":" GROUP
                      ",\"date\":1,\"text\":\"hi\",\"entities\":{\"offset\":0}}}");
    assert_int_equal(u->entity_count, 0);
}

static void test_forum_topic_pseudo_reply(void **state)
{
    /* Messages in a forum topic carry the topic's creation as
     * reply_to_message; that is not a reply to the bot that opened it. */
    const struct dagi_tg_update *u =
        parse(*state, "{\"update_id\":10018,\"message\":{\"message_id\":90,\"message_thread_id\":5,"
                      "\"is_topic_message\":true,\"from\":" USER_OLENA ",\"chat\":" GROUP
                      ",\"date\":1,\"reply_to_message\":{\"message_id\":5,\"from\":" BOT_USER
                      ",\"chat\":" GROUP ",\"date\":1,\"forum_topic_created\":{\"name\":\"Ops\","
                      "\"icon_color\":7322096}},\"text\":\"hello topic\"}}");
    assert_int_equal(u->message_thread_id, 5);
    assert_null(u->reply_to);
    assert_false(dagi_tg_addressed_to(u, BOT_NAME, BOT_ID));
}

static void test_unknown_chat_type_and_nulls(void **state)
{
    const struct dagi_tg_update *u =
        parse(*state, "{\"update_id\":10019,\"message\":{\"message_id\":91,\"chat\":{\"id\":5,"
                      "\"type\":\"hyperchat\",\"title\":null},\"from\":null,\"date\":1,"
                      "\"text\":\"x\",\"business_connection_id\":\"b\"}}");
    assert_int_equal(u->chat.type, DAGI_TG_CHAT_UNKNOWN);
    assert_null(u->chat.title);
    assert_null(u->from);
}

static void test_errors(void **state)
{
    struct dagi_arena *a = *state;
    const char *s;
    s = "not json";
    expect_error(a, s, strlen(s), DAGI_EPARSE, "telegram update");
    s = "[1,2]";
    expect_error(a, s, strlen(s), DAGI_EPARSE, "update: expected an object");
    s = "{\"message\":{}}";
    expect_error(a, s, strlen(s), DAGI_EPARSE, "update.update_id: missing");
    s = "{\"update_id\":\"1\"}";
    expect_error(a, s, strlen(s), DAGI_EPARSE, "update.update_id: expected an integer");
    s = "{\"update_id\":1,\"message\":[]}";
    expect_error(a, s, strlen(s), DAGI_EPARSE, "message: expected an object");
    s = "{\"update_id\":1,\"message\":{\"message_id\":1,\"date\":1}}";
    expect_error(a, s, strlen(s), DAGI_EPARSE, "message.chat: missing");
    s = "{\"update_id\":1,\"edited_message\":{\"message_id\":1,\"date\":1,"
        "\"chat\":{\"id\":\"x\",\"type\":\"group\"}}}";
    expect_error(a, s, strlen(s), DAGI_EPARSE, "edited_message.chat.id: expected an integer");
    s = "{\"update_id\":1,\"message\":{\"message_id\":1,\"date\":1,\"chat\":{\"id\":1,"
        "\"type\":\"group\"},\"from\":{\"id\":2,\"first_name\":\"A\"}}}";
    expect_error(a, s, strlen(s), DAGI_EPARSE, "message.from.is_bot");
    s = "{\"update_id\":1,\"message\":{\"message_id\":1,\"date\":1,\"chat\":{\"id\":1,"
        "\"type\":\"group\"},\"text\":5}}";
    expect_error(a, s, strlen(s), DAGI_EPARSE, "message.text: expected a string");
    s = "{\"update_id\":1,\"message\":{\"message_id\":1,\"date\":1,\"chat\":{\"id\":1,"
        "\"type\":\"group\"},\"reply_to_message\":{\"from\":{}}}}";
    expect_error(a, s, strlen(s), DAGI_EPARSE, "message.reply_to_message.message_id: missing");
    s = "{\"update_id\":1,\"message\":{\"message_id\":1,\"date\":1,\"chat\":{\"id\":1,"
        "\"type\":\"group\"},\"photo\":[{\"file_id\":\"a\",\"file_unique_id\":\"b\","
        "\"width\":-1,\"height\":1}]}}";
    expect_error(a, s, strlen(s), DAGI_EPARSE, "message.photo[0]");
    s = "{\"update_id\":1,\"update_id\":2}";
    expect_error(a, s, strlen(s), DAGI_EPARSE, "duplicate");
    /* A NUL inside a string would silently cut C strings short. */
    s = "{\"update_id\":1,\"message\":{\"message_id\":1,\"date\":1,\"chat\":{\"id\":1,"
        "\"type\":\"group\"},\"text\":\"a\\u0000b\"}}";
    expect_error(a, s, strlen(s), DAGI_EPARSE, "telegram update");
}

static void test_caps(void **state)
{
    struct dagi_arena *a = *state;
    /* Over 1 MiB: refused before jansson sees it. */
    size_t big = DAGI_TG_UPDATE_MAX_BYTES + 1;
    char *s = dagi_xmalloc(big);
    memset(s, ' ', big);
    expect_error(a, s, big, DAGI_ETOOBIG, "more than");
    free(s);

    /* Nesting past jansson's depth limit is a parse error, not a crash. */
    size_t depth = 5000;
    s = dagi_xmalloc(2 * depth + 1);
    memset(s, '[', depth);
    memset(s + depth, ']', depth);
    expect_error(a, s, 2 * depth, DAGI_EPARSE, "telegram update");
    free(s);

    /* Too many photo sizes or entities. */
    struct dagi_arena *tmp = dagi_arena_new(0);
    size_t cap = 256 + (DAGI_TG_UPDATE_MAX_PHOTO_SIZES + 1) * 80;
    char *doc = dagi_arena_alloc(tmp, cap);
    strcpy(doc, "{\"update_id\":1,\"message\":{\"message_id\":1,\"date\":1,"
                "\"chat\":{\"id\":1,\"type\":\"group\"},\"photo\":[");
    for (int i = 0; i <= DAGI_TG_UPDATE_MAX_PHOTO_SIZES; i++)
        strcat(doc, "{\"file_id\":\"a\",\"file_unique_id\":\"b\",\"width\":1,\"height\":1},");
    strcpy(doc + strlen(doc) - 1, "]}}");
    expect_error(a, doc, strlen(doc), DAGI_ETOOBIG, "message.photo");

    cap = 256 + (DAGI_TG_UPDATE_MAX_ENTITIES + 1) * 48;
    doc = dagi_arena_alloc(tmp, cap);
    strcpy(doc, "{\"update_id\":1,\"message\":{\"message_id\":1,\"date\":1,"
                "\"chat\":{\"id\":1,\"type\":\"group\"},\"text\":\"hello\",\"entities\":[");
    for (int i = 0; i <= DAGI_TG_UPDATE_MAX_ENTITIES; i++)
        strcat(doc, "{\"offset\":0,\"length\":1,\"type\":\"bold\"},");
    strcpy(doc + strlen(doc) - 1, "]}}");
    expect_error(a, doc, strlen(doc), DAGI_ETOOBIG, "message.entities");
    dagi_arena_free(tmp);

    /* The arena's cap is honoured: a long text does not fit in 4 KiB. */
    struct dagi_arena *small = dagi_arena_new(4096);
    char *json = dagi_xasprintf("{\"update_id\":1,\"message\":{\"message_id\":1,\"date\":1,"
                                "\"chat\":{\"id\":1,\"type\":\"group\"},\"text\":\"%08000d\"}}",
                                0);
    expect_error(small, json, strlen(json), DAGI_ETOOBIG, "arena");
    free(json);
    dagi_arena_free(small);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_private_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_mention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reply_to_bot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_photo_with_caption, setup, teardown),
        cmocka_unit_test_setup_teardown(test_command_with_target, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edited_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_callback_query_is_other, setup, teardown),
        cmocka_unit_test_setup_teardown(test_channel_post, setup, teardown),
        cmocka_unit_test_setup_teardown(test_emoji_before_mention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cyrillic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_mention_by_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_entities_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forum_topic_pseudo_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_chat_type_and_nulls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_caps, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
