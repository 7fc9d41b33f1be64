/* The Privacy Gate: every detector of the redactor with positives and
 * look-alike negatives (Luhn-invalid numbers, an IBAN with a wrong check,
 * long ordinary words, dates, versions, times), the random-token rule, the
 * extractive summary (sentences, informative picks, the budget, order,
 * near-duplicates, the cut, the question first), the gate over a messages
 * array in each mode, and the canary: random 32-character secrets never
 * survive, in any shape, through the redactor or the gate. */
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

#include "core/buf.h"
#include "core/err.h"
#include "privacy/consent_command.h"
#include "privacy/privacy.h"
#include "privacy/redact_pii.h"
#include "privacy/summary.h"

/* --- helpers --- */

static struct dagi_pii_counts last_counts;

/* The redacted text (a static buffer, valid until the next call). */
static const char *redact(const char *text)
{
    static struct dagi_buf out;
    dagi_buf_release(&out);
    dagi_buf_init(&out, 1 << 20);
    memset(&last_counts, 0, sizeof(last_counts));
    assert_int_equal(dagi_pii_redact(text, strlen(text), &out, &last_counts), 0);
    return dagi_buf_str(&out);
}

#define EXPECT(text, want)                                                                         \
    do {                                                                                           \
        const char *got_ = redact(text);                                                           \
        if (strcmp(got_, want) != 0)                                                               \
            fail_msg("redact(\"%s\")\n   got: \"%s\"\n  want: \"%s\"", text, got_, want);          \
    } while (0)

/* The text must come out as it went in. */
#define STAYS(text) EXPECT(text, text)

/* A small deterministic generator: the canary runs are reproducible. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

static void random_token(char *out, size_t n, const char *alphabet)
{
    size_t k = strlen(alphabet);
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[rng() % k];
    out[n] = '\0';
}

/* No 8-byte piece of secret appears in text. */
static void assert_no_piece(const char *text, const char *secret)
{
    size_t n = strlen(secret);
    for (size_t i = 0; i + 8 <= n; i++)
        if (memmem(text, strlen(text), secret + i, 8))
            fail_msg("a piece of \"%s\" survived in \"%s\"", secret, text);
}

/* --- the detectors --- */

static void test_email(void **state)
{
    (void)state;
    EXPECT("write to olena.k@example.com today", "write to [email] today");
    EXPECT("ivan+test@mail.ukr.net, please", "[email], please");
    EXPECT("пошта: іван@приклад.укр.", "пошта: [email].");
    EXPECT("<a.b-c_d@sub.domain.org>", "<[email]>");
    assert_int_equal(last_counts.n[DAGI_PII_EMAIL], 1);
    STAYS("ask @helion_bot or @olena");
    STAYS("user@localhost is not an address here");
    STAYS("a@b.c has a one-letter domain");
    STAYS("version@1.2 and x@10.20");
}

static void test_phone(void **state)
{
    (void)state;
    EXPECT("call +380 67 123 45 67 now", "call [phone] now");
    EXPECT("+380671234567", "[phone]");
    EXPECT("(067) 123-45-67 or 067 123 45 67 or 0671234567", "[phone] or [phone] or [phone]");
    EXPECT("US 555-123-4567, UK +44 20 7946 0958, 380671234567.",
           "US [phone], UK [phone], [phone].");
    EXPECT("тел0671234567", "тел[phone]");
    assert_int_equal(last_counts.n[DAGI_PII_PHONE], 1);
    STAYS("on 2024-01-15 at 10:30:00, or 15.01.2024");
    STAYS("05.01.2024 10:30 and 12345 and 100-200-300 and 1,234,567.89");
    STAYS("ISBN 978-3-16-148410-0 and room 204");
}

static void test_card(void **state)
{
    (void)state;
    EXPECT("card 4111 1111 1111 1111, exp 12/27", "card [card], exp 12/27");
    EXPECT("4111-1111-1111-1111", "[card]");
    EXPECT("5500000000000004 and 378282246310005", "[card] and [card]");
    assert_int_equal(last_counts.n[DAGI_PII_CARD], 2);
    /* Luhn-invalid: not a card, and no phone either */
    STAYS("4111 1111 1111 1112");
    STAYS("order 1234567890123456 is shipped");
    STAYS("4111111111111111999"); /* 19 digits, not Luhn-valid as a whole */
}

static void test_iban(void **state)
{
    (void)state;
    EXPECT("IBAN UA21 3223 1300 0002 6007 2335 6600 1 please", "IBAN [iban] please");
    EXPECT("DE89370400440532013000", "[iban]");
    EXPECT("GB29 NWBK 6016 1331 9268 19.", "[iban].");
    assert_int_equal(last_counts.n[DAGI_PII_IBAN], 1);
    /* a wrong check digit: the same shape stays */
    STAYS("DE89370400440532013001");
    STAYS("GB29 NWBK 6016 1331 9268 18");
    STAYS("UA21 3223 1300 0002 6007 2335 6600 2");
}

static void test_ip(void **state)
{
    (void)state;
    EXPECT("server 192.168.1.10 and 10.0.0.1:8080", "server [ip] and [ip]");
    EXPECT("v6 2001:db8::8a2e:370:7334, ::1 and fe80::1.", "v6 [ip], [ip] and [ip].");
    EXPECT("[2001:db8::1]:443", "[[ip]]:443");
    EXPECT("1:2:3:4:5:6:7:8", "[ip]");
    STAYS("version 1.2.3 and v1.2.3.4 and 1.2.3.4.5");
    STAYS("at 12:30:45 and 999.1.1.1 and std::vector and dead::beef");
    STAYS("00:1a:2b:3c:4d:5e");
}

static void test_url(void **state)
{
    (void)state;
    STAYS("see https://example.com/docs/page?lang=uk#intro for more");
    STAYS("https://github.com/org/repo/releases/tag/v2.4.1");
    EXPECT("https://api.example.com/v1?token=abc123 ok", "[url] ok");
    EXPECT("(https://x.com/reset?code=99&lang=en).", "([url]).");
    EXPECT("https://admin:pw@db.example.com/", "[url]");
    EXPECT("https://s3.amazonaws.com/b/k?X-Amz-Signature=abcd1234&X-Amz-Date=1", "[url]");
    EXPECT("https://example.com/#access_token=xyz&state=1", "[url]");
    EXPECT("www.example.com/files/Xk9fQ2mZp7LwR4tYb8NcV3sH/report.pdf", "[url]");
    EXPECT("https://x.io/u?data=Xk9fQ2mZp7%2BLwR4tYb8NcV3s", "[url]");
    EXPECT("https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/getMe",
           "[url]");
    assert_int_equal(last_counts.n[DAGI_PII_URL], 1);
    /* a URL without a credential is left, but its parts are still read */
    EXPECT("http://192.168.1.1/admin", "http://[ip]/admin");
}

static void test_bot_token_and_keys(void **state)
{
    (void)state;
    EXPECT("token 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw here", "token [bot_token] here");
    EXPECT("bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", "[bot_token]");
    STAYS("ratio 123456789:12 and 10:30");
    static const char *const keys[] = {
        "sk-abcdefghijklmnop1234",
        "sk-proj-abcdefghijklmnopqrstu12345",
        "sk-ant-api03-abcdefghijklmnop",
        "sk_live_abcdefghijklmnop1234",
        "dagi_sk_abcdefgh12345",
        "dagi_admin_abcdefgh12345",
        "dagi_svc_abcdefgh12345",
        "dagi_abcdefghijkl_secretsecret12",
        "AKIAIOSFODNN7EXAMPLE",
        "ASIAIOSFODNN7EXAMPLE",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "gho_abcdefghijklmnopqrstuvwxyz0123456789",
        "github_pat_11ABCDEFG0abcdefghijkl",
        "xoxb-1234567890-abcdef",
        "xoxp-1234567890-abcdef",
        "AIzaSyA1234567890abcdefghijklmnopqrstu",
        "glpat-abcdefghij1234567890",
    };
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        char text[256], want[64];
        snprintf(text, sizeof(text), "key=%s, done", keys[k]);
        snprintf(want, sizeof(want), "key=[api_key], done");
        EXPECT(text, want);
        assert_int_equal(last_counts.n[DAGI_PII_API_KEY], 1);
    }
    STAYS("sk-learn and dagi_http_server and AKIA and ghp_ short");
    EXPECT("JWT eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9P"
           " done",
           "JWT [secret] done");
}

static void test_password_values(void **state)
{
    (void)state;
    EXPECT("password: hunter2hunter, ok", "password: [secret], ok");
    EXPECT("PASSWORD=\"correct horse\"", "PASSWORD=\"[secret] horse\"");
    EXPECT("пароль = СекретнийПароль1 ok", "пароль = [secret] ok");
    STAYS("the password is long and passwords: no");
}

static void test_random_tokens(void **state)
{
    (void)state;
    EXPECT("random: Xk9fQ2mZp7LwR4tYb8NcV3sH6dJ1gU5e end", "random: [secret] end");
    EXPECT("hex 3f9a1c7e5b2d4f6a8c0e1b3d5f7a9c2e0b4d6f8a.", "hex [secret].");
    EXPECT("aws wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY ok", "aws [secret] ok");
    EXPECT("glued Ключ3f9a1c7e5b2d4f6a8c0e1b3d5f7a9c2e", "glued Ключ[secret]");
    /* natural long tokens stay */
    static const char *const words[] = {
        "internationalization",
        "getElementsByTagName",
        "ISO-8601-formatted",
        "qwen3-vl-8b-instruct",
        "x86_64-linux-gnu",
        "gpt-4o-mini-2024-07-18",
        "PostgreSQLConnectionPool",
        "XMLHttpRequestFactory",
        "claude-3-5-sonnet-20241022",
        "HELION_TELEGRAM_BOT_TOKEN",
        "dagi_http_server_add_route",
        "well-known/openid-configuration",
        "Windows-10-Enterprise",
        "application/x-www-form-urlencoded",
        "INV-2024-000123",
        "ORDER20240115001",
    };
    for (size_t k = 0; k < sizeof(words) / sizeof(words[0]); k++) {
        if (dagi_pii_looks_random(words[k], strlen(words[k])))
            fail_msg("\"%s\" looks random", words[k]);
        STAYS(words[k]);
    }
    /* repetitive or short runs are no secret */
    STAYS("aaaaaaaaaaaaaaaaaaaa1111 and Xk9fQ2mZp7LwR4t");
    STAYS("2024-01-15T10:30:00Z and 3.14159265358979323846");
    STAYS("================ and ----------------");
}

/* What follows a finding is checked afresh: nothing glued to it leaks. */
static void test_after_a_finding(void **state)
{
    (void)state;
    EXPECT("+380671234567-Xk9fQ2mZp7LwR4tYb8NcV3sH", "[phone]-[secret]");
    EXPECT("olena@example.com/Xk9fQ2mZp7LwR4tYb8NcV3sH", "[email]/[secret]");
}

static void test_counts_and_cap(void **state)
{
    (void)state;
    const char *text = "a@b.cd x@y.org +380671234567 4111111111111111 192.168.0.1";
    struct dagi_buf out;
    dagi_buf_init(&out, 16);
    dagi_buf_append_str(&out, "keep");
    struct dagi_pii_counts c = {0};
    assert_int_equal(dagi_pii_redact(text, strlen(text), &out, &c), DAGI_ETOOBIG);
    assert_string_equal(dagi_buf_str(&out), "keep"); /* all or nothing */
    assert_int_equal(dagi_pii_counts_total(&c), 0);
    dagi_buf_release(&out);
    dagi_buf_init(&out, DAGI_PII_REDACTED_MAX(strlen(text)));
    assert_int_equal(dagi_pii_redact(text, strlen(text), &out, &c), 0);
    assert_string_equal(dagi_buf_str(&out), "[email] [email] [phone] [card] [ip]");
    assert_int_equal(c.n[DAGI_PII_EMAIL], 2);
    assert_int_equal(c.n[DAGI_PII_PHONE], 1);
    assert_int_equal(c.n[DAGI_PII_CARD], 1);
    assert_int_equal(c.n[DAGI_PII_IP], 1);
    assert_int_equal(dagi_pii_counts_total(&c), 5);
    dagi_buf_release(&out);
    /* placeholders that outgrow what they replace still fit the bound */
    static const char *const tiny[][2] = {
        {"a@b.cd", "[email]"},
        {"::1 ::1 ::1 ::1", "[ip] [ip] [ip] [ip]"},
        {"pwd:abc pwd:abc pwd:abc", "pwd:[secret] pwd:[secret] pwd:[secret]"},
    };
    for (size_t k = 0; k < sizeof(tiny) / sizeof(tiny[0]); k++) {
        size_t n = strlen(tiny[k][0]);
        dagi_buf_init(&out, DAGI_PII_REDACTED_MAX(n));
        assert_int_equal(dagi_pii_redact(tiny[k][0], n, &out, NULL), 0);
        assert_string_equal(dagi_buf_str(&out), tiny[k][1]);
        dagi_buf_release(&out);
    }
    assert_string_equal(dagi_pii_type_name(DAGI_PII_BOT_TOKEN), "bot_token");
    assert_string_equal(dagi_pii_placeholder(DAGI_PII_API_KEY), "[api_key]");
}

/* --- the canary --- */

static const char *const alphabets[] = {
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    "0123456789abcdef",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
};

static void test_random_secret_never_survives_redaction(void **state)
{
    (void)state;
    /* what comes before and after the secret */
    static const char *const frames[][2] = {
        {"my key is ", ", keep it safe"},
        {"ключ: ", "."},
        {"", ""},
        {"(", ")"},
        {"export TOKEN=", ""},
        {"\"api\": \"", "\""},
        {"Привіт! Ось токен ", " — не кажи нікому."},
        {"https://example.com/cb?state=1&x=", ""},
        {"see https://example.com/", "/page"},
        {"user ", "@example.com"},
    };
    for (int round = 0; round < 4000; round++) {
        char secret[33], text[512];
        random_token(secret, 32, alphabets[round % 4]);
        snprintf(text, sizeof(text), "%s%s%s", frames[round % 10][0], secret,
                 frames[round % 10][1]);
        assert_no_piece(redact(text), secret);
    }
}

/* --- the summary --- */

static const char *summarize(const char *text, unsigned tokens, struct dagi_summary_stats *st)
{
    static struct dagi_buf out;
    dagi_buf_release(&out);
    dagi_buf_init(&out, DAGI_SUMMARY_OUTPUT_MAX(tokens ? tokens : 100));
    struct dagi_summary_part p = {text, strlen(text), false};
    assert_int_equal(dagi_summary_build(&p, 1, tokens, &out, st), 0);
    return dagi_buf_str(&out);
}

static const char story[] =
    "Hi team. Our microDAO energy cooperative in Lviv plans to install 40 kW of solar panels on "
    "the school roof by June. Ok, thanks! The city grant covers 60% of the cost, about 1.2 "
    "million UAH. Dr. Kovalenko will present the solar budget on Friday. Thanks!\n"
    "The inverter supplier offered a 10-year warranty, but delivery of the inverter takes eight "
    "weeks. Ok.\nThe inverter supplier offered a ten-year warranty, but delivery of the inverter "
    "takes eight weeks.\nWrite to olena.k@example.com or call +380 67 123 45 67 with "
    "questions about the solar panels.";

static void test_summary_sentences(void **state)
{
    (void)state;
    struct dagi_summary_stats st;
    /* abbreviations, initials, decimals and lower-case continuations do
     * not end a sentence; "!", "?", "…", line ends and quotes do */
    summarize("Dr. Smith paid 3.14 UAH, e.g. for tea. J. R. Tolkien wrote it! Did he? "
              "Yes… \"Sure.\" Вул. Городоцька, 15.\nНовий рядок",
              1000, &st);
    assert_int_equal(st.sentences, 7);
    summarize("   \n\n...  !!! \n", 100, &st);
    assert_int_equal(st.sentences, 0);
    assert_int_equal(st.kept, 0);
    assert_int_equal(dagi_summary_tokens("one two three", 13), 4); /* "three": 5 bytes, 2 */
    assert_int_equal(dagi_summary_tokens("internationalization", 20), 5);
    assert_int_equal(dagi_summary_tokens("привіт", strlen("привіт")), 3);
}

static void test_summary_keeps_informative_sentences(void **state)
{
    (void)state;
    struct dagi_summary_stats st;
    const char *s = summarize(story, 60, &st);
    /* the budget holds */
    assert_true(st.tokens <= 60);
    assert_true(dagi_summary_tokens(s, strlen(s)) <= 60);
    /* informative sentences in, pleasantries out */
    assert_non_null(strstr(s, "solar panels on the school roof"));
    assert_null(strstr(s, "Ok, thanks!"));
    assert_null(strstr(s, "Thanks!"));
    /* one of the two near-identical sentences */
    const char *first = strstr(s, "The inverter supplier");
    if (first)
        assert_null(strstr(first + 1, "The inverter supplier"));
    /* redacted before it was scored */
    assert_null(strstr(s, "olena.k@example.com"));
    assert_null(strstr(s, "123 45 67"));
    assert_true(st.redacted.n[DAGI_PII_EMAIL] == 1 && st.redacted.n[DAGI_PII_PHONE] == 1);
    /* in the original order */
    const char *roof = strstr(s, "school roof"), *budget = strstr(s, "Kovalenko");
    if (roof && budget)
        assert_true(roof < budget);
}

static void test_summary_budget(void **state)
{
    (void)state;
    struct dagi_summary_stats st;
    unsigned budgets[] = {1, 3, 8, 20, 50, 100, 400};
    for (size_t k = 0; k < sizeof(budgets) / sizeof(budgets[0]); k++) {
        const char *s = summarize(story, budgets[k], &st);
        assert_true(st.tokens <= budgets[k]);
        assert_true(dagi_summary_tokens(s, strlen(s)) <= budgets[k]);
        assert_true(strlen(s) <= DAGI_SUMMARY_OUTPUT_MAX(budgets[k]));
    }
    /* everything fits a large budget: all but the duplicate and the three
     * sentences of stop words */
    const char *all = summarize(story, 400, &st);
    assert_int_equal(st.sentences, 10);
    assert_int_equal(st.kept, st.sentences - 4);
    assert_non_null(strstr(all, "Kovalenko"));
    /* the default budget is 100 */
    summarize(story, 0, &st);
    assert_true(st.tokens <= 100 && st.tokens > 50);
    struct dagi_buf out;
    dagi_buf_init(&out, 100);
    struct dagi_summary_part p = {story, strlen(story), false};
    assert_int_equal(dagi_summary_build(&p, 1, DAGI_SUMMARY_MAX_TOKENS + 1, &out, NULL),
                     DAGI_EINVAL);
    dagi_buf_release(&out);
}

static void test_summary_cut(void **state)
{
    (void)state;
    struct dagi_summary_stats st;
    const char *long_one = "The cooperative discussed panels inverters batteries grants budgets "
                           "schedules warranties suppliers roofs schools and the city council";
    const char *s = summarize(long_one, 6, &st);
    assert_true(st.cut);
    assert_int_equal(st.kept, 1);
    assert_true(st.tokens <= 6);
    assert_non_null(strstr(s, "The cooperative"));
    assert_non_null(strstr(s, "\xe2\x80\xa6"));
    /* one word longer than the budget: its first bytes, whole characters */
    s = summarize("Нерозбірливийдужедовгийрядокбезпробілів", 3, &st);
    assert_true(st.cut && strlen(s) <= DAGI_SUMMARY_OUTPUT_MAX(3));
    assert_string_equal(s, "Неро \xe2\x80\xa6"); /* 8 bytes for 2 tokens, then the ellipsis */
}

static void test_summary_question_first(void **state)
{
    (void)state;
    struct dagi_buf out;
    dagi_buf_init(&out, DAGI_SUMMARY_OUTPUT_MAX(30));
    struct dagi_summary_part parts[] = {
        {story, strlen(story), false},
        {"Why?", 4, true},
    };
    struct dagi_summary_stats st;
    assert_int_equal(dagi_summary_build(parts, 2, 30, &out, &st), 0);
    /* a question of stop words alone, still in, and last */
    const char *s = dagi_buf_str(&out);
    assert_true(out.len >= 4 && strcmp(s + out.len - 4, "Why?") == 0);
    dagi_buf_release(&out);
}

static void test_summary_input_cap(void **state)
{
    (void)state;
    size_t n = DAGI_SUMMARY_INPUT_MAX + 1;
    char *big = malloc(n);
    memset(big, 'a', n);
    struct dagi_summary_part p = {big, n, false};
    struct dagi_buf out;
    dagi_buf_init(&out, 1000);
    assert_int_equal(dagi_summary_build(&p, 1, 100, &out, NULL), DAGI_ETOOBIG);
    dagi_buf_release(&out);
    free(big);
}

/* --- the gate --- */

static json_t *conversation(const char *secret)
{
    json_t *m = json_pack(
        "[{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:[{s:s,s:s},{s:s,s:{s:s}}]},{s:s,s:n,s:[{s:s}]},"
        "{s:s,s:s}]",
        "role", "system", "content", "You are Helion, the energy union's guide.",        /* */
        "role", "user", "content", "Our school plans solar panels on the roof by June.", /* */
        "role", "assistant", "content", "Solar panels on a school roof need a structural survey.",
        "role", "user", "content", "type", "text", "text", "The survey costs 20000 UAH.", "type",
        "image_url", "image_url", "url", "data:image/png;base64,AAAA", /* */
        "role", "assistant", "content", "tool_calls", "id", "call_1",  /* */
        "role", "user", "content", "");
    char question[256];
    snprintf(question, sizeof(question),
             "My key is %s and my mail olena@example.com - who pays for the survey?", secret);
    json_object_set_new(json_array_get(m, 5), "content", json_string(question));
    return m;
}

static void test_gate_open_modes(void **state)
{
    (void)state;
    json_t *m = conversation("Xk9fQ2mZp7LwR4tYb8NcV3sH6dJ1gU5e");
    struct dagi_privacy_report r;
    json_t *out = NULL;
    struct dagi_error err = {0};
    enum dagi_privacy_mode modes[] = {DAGI_PRIVACY_PUBLIC, DAGI_PRIVACY_TEAM,
                                      DAGI_PRIVACY_CONFIDENTIAL};
    for (size_t k = 0; k < 3; k++) {
        bool consent = modes[k] == DAGI_PRIVACY_CONFIDENTIAL;
        assert_int_equal(dagi_privacy_gate_messages(m, modes[k], consent, 0, &out, &r, &err), 0);
        assert_ptr_equal(out, m); /* unchanged: the same array */
        assert_false(r.sanitized);
        assert_int_equal(r.messages_in, 6);
        assert_int_equal(r.messages_out, 6);
        assert_int_equal(r.bytes_in, r.bytes_out);
        json_decref(out);
    }
    /* consent does not matter outside confidential mode */
    assert_int_equal(dagi_privacy_gate_messages(m, DAGI_PRIVACY_TEAM, false, 0, &out, &r, &err), 0);
    assert_ptr_equal(out, m);
    json_decref(out);
    json_decref(m);
}

static void test_gate_confidential_without_consent(void **state)
{
    (void)state;
    const char *secret = "Xk9fQ2mZp7LwR4tYb8NcV3sH6dJ1gU5e";
    json_t *m = conversation(secret);
    char *before = json_dumps(m, JSON_SORT_KEYS);
    struct dagi_privacy_report r;
    json_t *out = NULL;
    struct dagi_error err = {0};
    assert_int_equal(
        dagi_privacy_gate_messages(m, DAGI_PRIVACY_CONFIDENTIAL, false, 100, &out, &r, &err), 0);
    /* the input is untouched */
    char *after = json_dumps(m, JSON_SORT_KEYS);
    assert_string_equal(before, after);
    free(before);
    free(after);
    /* the agent's prompt, then one user message */
    assert_int_equal(json_array_size(out), 2);
    assert_true(json_equal(json_array_get(out, 0), json_array_get(m, 0)));
    json_t *user = json_array_get(out, 1);
    assert_string_equal(json_string_value(json_object_get(user, "role")), "user");
    const char *text = json_string_value(json_object_get(user, "content"));
    assert_int_equal(
        strncmp(text, DAGI_PRIVACY_SUMMARY_HEADER, strlen(DAGI_PRIVACY_SUMMARY_HEADER)), 0);
    /* the latest question is in, redacted; the image is not */
    assert_non_null(strstr(text, "who pays for the survey?"));
    assert_non_null(strstr(text, "[secret]"));
    assert_non_null(strstr(text, "[email]"));
    assert_no_piece(text, secret);
    assert_null(strstr(text, "olena@example.com"));
    assert_null(strstr(text, "base64"));
    char *dump = json_dumps(out, 0);
    assert_null(strstr(dump, "image_url"));
    assert_null(strstr(dump, "tool_calls"));
    assert_no_piece(dump, secret);
    free(dump);
    /* and the report is figures only */
    assert_true(r.sanitized);
    assert_int_equal(r.messages_in, 6);
    assert_int_equal(r.messages_out, 2);
    assert_int_equal(r.images_dropped, 1);
    assert_int_equal(r.parts_dropped, 1);
    assert_int_equal(r.redacted.n[DAGI_PII_SECRET], 1);
    assert_int_equal(r.redacted.n[DAGI_PII_EMAIL], 1);
    assert_true(r.tokens_out <= 100);
    assert_true(r.sentences_kept >= 1 && r.sentences_kept <= r.sentences_in);
    assert_int_equal(r.bytes_out, strlen(text));
    json_decref(out);
    json_decref(m);
}

static void test_gate_tight_budget_keeps_the_question(void **state)
{
    (void)state;
    json_t *m = conversation("3f9a1c7e5b2d4f6a8c0e1b3d5f7a9c2e");
    json_t *out = NULL;
    struct dagi_privacy_report r;
    assert_int_equal(
        dagi_privacy_gate_messages(m, DAGI_PRIVACY_CONFIDENTIAL, false, 20, &out, &r, NULL), 0);
    const char *text = json_string_value(json_object_get(json_array_get(out, 1), "content"));
    assert_non_null(strstr(text, "who pays for the survey?"));
    assert_null(strstr(text, "structural survey")); /* no room left for the rest */
    assert_true(r.tokens_out <= 20);
    json_decref(out);
    json_decref(m);
}

static void test_gate_no_leading_system_and_bad_input(void **state)
{
    (void)state;
    json_t *m = json_pack("[{s:s,s:s},{s:s,s:s}]", "role", "user", "content",
                          "Plain question about inverters?", "role", "system", "content",
                          "A late system note with 4111 1111 1111 1111.");
    json_t *out = NULL;
    struct dagi_error err = {0};
    assert_int_equal(
        dagi_privacy_gate_messages(m, DAGI_PRIVACY_CONFIDENTIAL, false, 0, &out, NULL, &err), 0);
    /* a system message after the first user one is content like the rest */
    assert_int_equal(json_array_size(out), 1);
    const char *text = json_string_value(json_object_get(json_array_get(out, 0), "content"));
    assert_non_null(strstr(text, "[card]"));
    assert_null(strstr(text, "4111"));
    json_decref(out);
    json_decref(m);

    json_t *bad = json_pack("{s:s}", "role", "user");
    assert_int_equal(
        dagi_privacy_gate_messages(bad, DAGI_PRIVACY_PUBLIC, false, 0, &out, NULL, &err),
        DAGI_EINVAL);
    json_decref(bad);
    bad = json_pack("[{s:s}]", "content", "no role");
    assert_int_equal(
        dagi_privacy_gate_messages(bad, DAGI_PRIVACY_CONFIDENTIAL, false, 0, &out, NULL, &err),
        DAGI_EINVAL);
    assert_non_null(strstr(err.message, "messages[0]"));
    assert_int_equal(dagi_privacy_gate_messages(bad, DAGI_PRIVACY_CONFIDENTIAL, false,
                                                DAGI_SUMMARY_MAX_TOKENS + 1, &out, NULL, &err),
                     DAGI_EINVAL);
    json_decref(bad);
}

static void test_gate_keeps_only_the_latest_text(void **state)
{
    (void)state;
    /* more text than the summary reads: the oldest messages are dropped,
     * and a cut inside a text moves to the next space */
    json_t *m = json_array();
    json_array_append_new(m, json_pack("{s:s,s:s}", "role", "system", "content", "Prompt."));
    size_t each = 64 * 1024;
    char *text = malloc(each + 1);
    for (size_t i = 0; i < each; i++)
        text[i] = (i % 8 == 7) ? ' ' : "Xk9fQ2mZ"[i % 8];
    text[each] = '\0';
    for (int k = 0; k < 6; k++)
        json_array_append_new(m, json_pack("{s:s,s:s}", "role", "user", "content", text));
    free(text);
    json_t *out = NULL;
    struct dagi_privacy_report r;
    assert_int_equal(
        dagi_privacy_gate_messages(m, DAGI_PRIVACY_CONFIDENTIAL, false, 50, &out, &r, NULL), 0);
    assert_int_equal(r.messages_dropped, 2);
    assert_true(r.tokens_out <= 50);
    json_decref(out);
    json_decref(m);
}

static void test_random_secret_never_reaches_the_model(void **state)
{
    (void)state;
    for (int round = 0; round < 1000; round++) {
        char secret[33];
        random_token(secret, 32, alphabets[round % 4]);
        json_t *m = conversation(secret);
        json_t *out = NULL;
        assert_int_equal(dagi_privacy_gate_messages(m, DAGI_PRIVACY_CONFIDENTIAL, false,
                                                    round % 2 ? 100 : 0, &out, NULL, NULL),
                         0);
        char *dump = json_dumps(out, 0);
        assert_no_piece(dump, secret);
        free(dump);
        json_decref(out);
        json_decref(m);
    }
}

static void test_modes(void **state)
{
    (void)state;
    enum dagi_privacy_mode m;
    assert_int_equal(dagi_privacy_mode_parse("public", &m), 0);
    assert_int_equal(m, DAGI_PRIVACY_PUBLIC);
    assert_int_equal(dagi_privacy_mode_parse("team", &m), 0);
    assert_int_equal(m, DAGI_PRIVACY_TEAM);
    assert_int_equal(dagi_privacy_mode_parse("confidential", &m), 0);
    assert_int_equal(m, DAGI_PRIVACY_CONFIDENTIAL);
    assert_int_equal(dagi_privacy_mode_parse("Confidential", &m), DAGI_EINVAL);
    assert_int_equal(dagi_privacy_mode_parse(NULL, &m), DAGI_EINVAL);
    assert_string_equal(dagi_privacy_mode_name(DAGI_PRIVACY_TEAM), "team");
    assert_false(dagi_privacy_content_free(DAGI_PRIVACY_PUBLIC));
    assert_false(dagi_privacy_content_free(DAGI_PRIVACY_TEAM));
    assert_true(dagi_privacy_content_free(DAGI_PRIVACY_CONFIDENTIAL));
    assert_true(dagi_privacy_content_free((enum dagi_privacy_mode)7)); /* unknown: closed */
}

static void test_consent_command_parse(void **state)
{
    (void)state;
    assert_int_equal(dagi_consent_command_parse(""), DAGI_CONSENT_SHOW);
    assert_int_equal(dagi_consent_command_parse("  "), DAGI_CONSENT_SHOW);
    assert_int_equal(dagi_consent_command_parse(NULL), DAGI_CONSENT_SHOW);
    assert_int_equal(dagi_consent_command_parse("on"), DAGI_CONSENT_GRANT);
    assert_int_equal(dagi_consent_command_parse(" ON "), DAGI_CONSENT_GRANT);
    assert_int_equal(dagi_consent_command_parse("Так"), DAGI_CONSENT_GRANT);
    assert_int_equal(dagi_consent_command_parse("off"), DAGI_CONSENT_REVOKE);
    assert_int_equal(dagi_consent_command_parse("ні"), DAGI_CONSENT_REVOKE);
    assert_int_equal(dagi_consent_command_parse("maybe"), DAGI_CONSENT_USAGE);
    assert_int_equal(dagi_consent_command_parse("on please"), DAGI_CONSENT_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_email),
        cmocka_unit_test(test_phone),
        cmocka_unit_test(test_card),
        cmocka_unit_test(test_iban),
        cmocka_unit_test(test_ip),
        cmocka_unit_test(test_url),
        cmocka_unit_test(test_bot_token_and_keys),
        cmocka_unit_test(test_password_values),
        cmocka_unit_test(test_random_tokens),
        cmocka_unit_test(test_after_a_finding),
        cmocka_unit_test(test_counts_and_cap),
        cmocka_unit_test(test_random_secret_never_survives_redaction),
        cmocka_unit_test(test_summary_sentences),
        cmocka_unit_test(test_summary_keeps_informative_sentences),
        cmocka_unit_test(test_summary_budget),
        cmocka_unit_test(test_summary_cut),
        cmocka_unit_test(test_summary_question_first),
        cmocka_unit_test(test_summary_input_cap),
        cmocka_unit_test(test_gate_open_modes),
        cmocka_unit_test(test_gate_confidential_without_consent),
        cmocka_unit_test(test_gate_tight_budget_keeps_the_question),
        cmocka_unit_test(test_gate_no_leading_system_and_bad_input),
        cmocka_unit_test(test_gate_keeps_only_the_latest_text),
        cmocka_unit_test(test_random_secret_never_reaches_the_model),
        cmocka_unit_test(test_modes),
        cmocka_unit_test(test_consent_command_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
