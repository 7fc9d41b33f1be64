/* The control plane's document set (cplane/docset.h): kinds and names, the
 * checksum, put/find/remove/copy, the JSON form in the KV bucket (round
 * trip, a checksum that does not match, the caps, malformed values) and
 * reading the documents the node configuration names from disk. */
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
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/mem.h"
#include "cplane/docset.h"
#include "node/dagi_config.h"

static void test_kinds(void **state)
{
    (void)state;
    static const char *const names[] = {"agents", "prompts", "routing", "policies",
                                        "quotas", "flags",   "lists"};
    for (unsigned k = 0; k < DAGI_DOC_KIND_COUNT; k++) {
        enum dagi_doc_kind got;
        assert_string_equal(dagi_doc_kind_name(k), names[k]);
        assert_int_equal(dagi_doc_kind_parse(names[k], &got), 0);
        assert_int_equal(got, k);
    }
    enum dagi_doc_kind got = DAGI_DOC_FLAGS;
    assert_int_equal(dagi_doc_kind_parse("agent", &got), DAGI_EINVAL);
    assert_int_equal(dagi_doc_kind_parse("", &got), DAGI_EINVAL);
    assert_int_equal(dagi_doc_kind_parse(NULL, &got), DAGI_EINVAL);
    assert_int_equal(got, DAGI_DOC_FLAGS); /* untouched on failure */
    assert_null(dagi_doc_kind_name(DAGI_DOC_KIND_COUNT));
    assert_string_equal(dagi_doc_fixed_name(DAGI_DOC_AGENTS), "agent_registry.yml");
    assert_string_equal(dagi_doc_fixed_name(DAGI_DOC_POLICIES), "policy.yml");
    assert_null(dagi_doc_fixed_name(DAGI_DOC_PROMPTS));
}

static void test_names(void **state)
{
    (void)state;
    char longest[DAGI_DOC_MAX_NAME + 2];
    memset(longest, 'a', sizeof(longest));
    longest[DAGI_DOC_MAX_NAME] = '\0';
    assert_true(dagi_doc_name_valid(DAGI_DOC_PROMPTS, "helion.md"));
    assert_true(dagi_doc_name_valid(DAGI_DOC_PROMPTS, "A-b_c.1"));
    assert_true(dagi_doc_name_valid(DAGI_DOC_PROMPTS, longest));
    longest[DAGI_DOC_MAX_NAME] = 'a';
    longest[DAGI_DOC_MAX_NAME + 1] = '\0';
    assert_false(dagi_doc_name_valid(DAGI_DOC_PROMPTS, longest));
    static const char *const bad[] = {"",       ".",   "..",   "a/b", "../x.md",
                                      "x y.md", "x\n", "é.md", "a:b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(dagi_doc_name_valid(DAGI_DOC_PROMPTS, bad[i]));
    assert_false(dagi_doc_name_valid(DAGI_DOC_PROMPTS, NULL));
    /* single-document kinds have their one fixed name */
    assert_true(dagi_doc_name_valid(DAGI_DOC_AGENTS, "agent_registry.yml"));
    assert_false(dagi_doc_name_valid(DAGI_DOC_AGENTS, "agents.yml"));
    assert_true(dagi_doc_name_valid(DAGI_DOC_ROUTING, "routing.yml"));
    assert_false(dagi_doc_name_valid(DAGI_DOC_ROUTING, "helion.md"));
    assert_false(dagi_doc_name_valid(DAGI_DOC_KIND_COUNT, "x"));
}

static void test_checksum(void **state)
{
    (void)state;
    char sum[65];
    /* BLAKE2b-256 test vectors */
    dagi_doc_checksum("", 0, sum);
    assert_string_equal(sum, "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
    dagi_doc_checksum("abc", 3, sum);
    assert_string_equal(sum, "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
}

static void put_ok(struct dagi_docset *s, enum dagi_doc_kind k, const char *name, const char *text)
{
    struct dagi_error err = {0};
    int rc = dagi_docset_put(s, k, name, text, strlen(text), 1, "tester", 1000, &err);
    if (rc)
        fail_msg("put %s: %s", name, err.message);
}

static void test_put_find_remove_copy(void **state)
{
    (void)state;
    struct dagi_docset s, c;
    dagi_docset_init(&s);
    put_ok(&s, DAGI_DOC_ROUTING, "routing.yml", "rules: []\n");
    put_ok(&s, DAGI_DOC_PROMPTS, "zeta.md", "z");
    put_ok(&s, DAGI_DOC_PROMPTS, "alpha.md", "a");
    put_ok(&s, DAGI_DOC_AGENTS, "agent_registry.yml", "agents: []\n");
    assert_int_equal(s.count, 4);
    /* kept in (kind, name) order whatever the order of puts */
    assert_int_equal(s.docs[0].kind, DAGI_DOC_AGENTS);
    assert_string_equal(s.docs[1].name, "alpha.md");
    assert_string_equal(s.docs[2].name, "zeta.md");
    assert_int_equal(s.docs[3].kind, DAGI_DOC_ROUTING);

    const struct dagi_doc *d = dagi_docset_find(&s, DAGI_DOC_PROMPTS, "alpha.md");
    assert_non_null(d);
    assert_string_equal(d->text, "a");
    assert_int_equal(d->len, 1);
    assert_int_equal(d->version, 1);
    assert_string_equal(d->author, "tester");
    assert_int_equal(d->created_at_ms, 1000);
    char sum[65];
    dagi_doc_checksum("a", 1, sum);
    assert_string_equal(d->checksum, sum);
    assert_null(dagi_docset_find(&s, DAGI_DOC_PROMPTS, "beta.md"));
    assert_null(dagi_docset_find(&s, DAGI_DOC_FLAGS, "flags.yml"));

    /* replacing keeps one document, with the new text and checksum */
    struct dagi_error err = {0};
    assert_int_equal(dagi_docset_put(&s, DAGI_DOC_PROMPTS, "alpha.md", "A2", 2, 2, NULL, 5, &err),
                     0);
    assert_int_equal(s.count, 4);
    d = dagi_docset_find(&s, DAGI_DOC_PROMPTS, "alpha.md");
    assert_string_equal(d->text, "A2");
    assert_int_equal(d->version, 2);
    assert_null(d->author);
    assert_string_not_equal(d->checksum, sum);

    dagi_docset_copy(&c, &s);
    assert_true(dagi_docset_remove(&s, DAGI_DOC_PROMPTS, "alpha.md"));
    assert_false(dagi_docset_remove(&s, DAGI_DOC_PROMPTS, "alpha.md"));
    assert_int_equal(s.count, 3);
    put_ok(&s, DAGI_DOC_PROMPTS, "zeta.md", "changed");
    /* the copy is deep: untouched by the changes above */
    assert_int_equal(c.count, 4);
    assert_string_equal(dagi_docset_find(&c, DAGI_DOC_PROMPTS, "alpha.md")->text, "A2");
    assert_string_equal(dagi_docset_find(&c, DAGI_DOC_PROMPTS, "zeta.md")->text, "z");
    assert_string_equal(dagi_docset_find(&c, DAGI_DOC_AGENTS, "agent_registry.yml")->author,
                        "tester");
    dagi_docset_release(&c);
    dagi_docset_release(&s);
    assert_int_equal(s.count, 0);
}

static void test_put_refuses(void **state)
{
    (void)state;
    struct dagi_docset s;
    dagi_docset_init(&s);
    struct dagi_error err = {0};
    assert_int_equal(dagi_docset_put(&s, DAGI_DOC_AGENTS, "agents.yml", "x", 1, 0, NULL, 0, &err),
                     DAGI_EINVAL);
    assert_int_equal(dagi_docset_put(&s, DAGI_DOC_PROMPTS, "a.md", "a\0b", 3, 0, NULL, 0, &err),
                     DAGI_EINVAL);
    static const char *const bad_utf8[] = {"\xc3", "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                           "\xff"};
    for (size_t i = 0; i < sizeof(bad_utf8) / sizeof(bad_utf8[0]); i++)
        assert_int_equal(dagi_docset_put(&s, DAGI_DOC_PROMPTS, "a.md", bad_utf8[i],
                                         strlen(bad_utf8[i]), 0, NULL, 0, &err),
                         DAGI_EINVAL);
    const char ok[] = "Привет 🙂 \xe2\x82\xac";
    assert_int_equal(
        dagi_docset_put(&s, DAGI_DOC_PROMPTS, "a.md", ok, strlen(ok), 0, NULL, 0, &err), 0);
    /* the text cap: at it is fine, one over is not */
    char *big = dagi_xmalloc(DAGI_DOC_MAX_TEXT + 1);
    memset(big, 'x', DAGI_DOC_MAX_TEXT + 1);
    assert_int_equal(
        dagi_docset_put(&s, DAGI_DOC_PROMPTS, "big.md", big, DAGI_DOC_MAX_TEXT, 0, NULL, 0, &err),
        0);
    assert_int_equal(dagi_docset_put(&s, DAGI_DOC_PROMPTS, "big.md", big, DAGI_DOC_MAX_TEXT + 1, 0,
                                     NULL, 0, &err),
                     DAGI_ETOOBIG);
    free(big);
    /* the document cap */
    dagi_docset_release(&s);
    for (int i = 0; i < DAGI_DOCSET_MAX_DOCS; i++) {
        char name[32];
        snprintf(name, sizeof(name), "p%04d.md", i);
        put_ok(&s, DAGI_DOC_PROMPTS, name, "x");
    }
    assert_int_equal(dagi_docset_put(&s, DAGI_DOC_PROMPTS, "one-more.md", "x", 1, 0, NULL, 0, &err),
                     DAGI_ETOOBIG);
    put_ok(&s, DAGI_DOC_PROMPTS, "p0000.md", "replacing is still fine");
    dagi_docset_release(&s);
}

static void test_json_round_trip(void **state)
{
    (void)state;
    struct dagi_docset s, back;
    dagi_docset_init(&s);
    s.revision = 7;
    s.published_at_ms = 1765170000000;
    const char tricky[] = "line 1\n\"quoted\" \\ back\\slash \t tab Привет 🙂\n";
    put_ok(&s, DAGI_DOC_PROMPTS, "helion.md", tricky);
    put_ok(&s, DAGI_DOC_AGENTS, "agent_registry.yml", "agents:\n  - id: helion\n");
    put_ok(&s, DAGI_DOC_LISTS, "lists.yml", "");
    struct dagi_error err = {0};
    assert_int_equal(
        dagi_docset_put(&s, DAGI_DOC_FLAGS, "flags.yml", "a: 1\n", 5, 3, NULL, 42, &err), 0);
    size_t len;
    char *json = dagi_docset_to_json(&s, &len);
    assert_int_equal(strlen(json), len);
    assert_int_equal(dagi_docset_from_json(json, len, &back, &err), 0);
    assert_int_equal(back.revision, 7);
    assert_int_equal(back.published_at_ms, 1765170000000);
    assert_int_equal(back.count, s.count);
    for (size_t i = 0; i < s.count; i++) {
        const struct dagi_doc *a = &s.docs[i], *b = &back.docs[i];
        assert_int_equal(a->kind, b->kind);
        assert_string_equal(a->name, b->name);
        assert_int_equal(a->len, b->len);
        assert_memory_equal(a->text, b->text, a->len);
        assert_string_equal(a->checksum, b->checksum);
        assert_int_equal(a->version, b->version);
        assert_int_equal(a->created_at_ms, b->created_at_ms);
        if (a->author)
            assert_string_equal(a->author, b->author);
        else
            assert_null(b->author);
    }
    /* the same set serializes to the same bytes */
    char *again = dagi_docset_to_json(&back, NULL);
    assert_string_equal(json, again);
    free(again);
    free(json);
    dagi_docset_release(&back);
    dagi_docset_release(&s);
}

/* Parses `json`, expecting `rc` and a message containing `want`. */
static void expect_refused(const char *json, int rc, const char *want)
{
    struct dagi_docset out;
    dagi_docset_init(&out);
    out.revision = 99;
    struct dagi_error err = {0};
    int got = dagi_docset_from_json(json, strlen(json), &out, &err);
    if (got != rc || !strstr(err.message, want))
        fail_msg("%s: got %d '%s', wanted %d '%s'", json, got, err.message, rc, want);
    assert_int_equal(out.revision, 99); /* untouched */
}

static void test_json_checksum_mismatch(void **state)
{
    (void)state;
    struct dagi_docset s;
    dagi_docset_init(&s);
    s.revision = 1;
    put_ok(&s, DAGI_DOC_PROMPTS, "helion.md", "You are Helion.");
    char *json = dagi_docset_to_json(&s, NULL);
    /* the text changed on the way, the checksum did not */
    char *p = strstr(json, "You are Helion.");
    assert_non_null(p);
    p[8] = 'X';
    expect_refused(json, DAGI_EINVAL, "checksum does not match");
    free(json);
    dagi_docset_release(&s);
    char sum[65];
    dagi_doc_checksum("x", 1, sum);
    char doc[512];
    snprintf(doc, sizeof(doc),
             "{\"revision\":1,\"docs\":[{\"kind\":\"prompts\",\"name\":\"a.md\",\"text\":\"y\","
             "\"checksum\":\"%s\"}]}",
             sum);
    expect_refused(doc, DAGI_EINVAL, "checksum does not match");
    snprintf(doc, sizeof(doc),
             "{\"revision\":1,\"docs\":[{\"kind\":\"prompts\",\"name\":\"a.md\",\"text\":\"x\","
             "\"checksum\":\"%s\"}]}",
             sum);
    struct dagi_docset ok;
    struct dagi_error err = {0};
    assert_int_equal(dagi_docset_from_json(doc, strlen(doc), &ok, &err), 0);
    assert_int_equal(ok.count, 1);
    assert_int_equal(ok.docs[0].version, 0); /* absent = 0 */
    dagi_docset_release(&ok);
}

static void test_json_malformed(void **state)
{
    (void)state;
    char sum[65], doc[600];
    dagi_doc_checksum("x", 1, sum);
    expect_refused("", DAGI_EPARSE, "offset");
    expect_refused("{\"revision\":1,", DAGI_EPARSE, "offset");
    expect_refused("[]", DAGI_EINVAL, "revision");
    expect_refused("{\"docs\":[]}", DAGI_EINVAL, "revision");
    expect_refused("{\"revision\":-1,\"docs\":[]}", DAGI_EINVAL, "revision");
    expect_refused("{\"revision\":1,\"docs\":{}}", DAGI_EINVAL, "docs");
    expect_refused("{\"revision\":1,\"revision\":2,\"docs\":[]}", DAGI_EPARSE, "duplicate");
    expect_refused("{\"revision\":1,\"docs\":[1]}", DAGI_EINVAL, "docs[0]: not an object");
    const struct {
        const char *member, *want;
    } cases[] = {
        {"\"kind\":\"agent\",\"name\":\"a.md\"", "kind"},
        {"\"kind\":\"prompts\",\"name\":\"../a.md\"", "name"},
        {"\"kind\":\"agents\",\"name\":\"a.md\"", "name"},
        {"\"kind\":\"prompts\",\"name\":\"a.md\",\"version\":-1", "version"},
        {"\"kind\":\"prompts\",\"name\":\"a.md\",\"version\":\"1\"", "version"},
        {"\"kind\":\"prompts\",\"name\":\"a.md\",\"author\":7", "author"},
        {"\"kind\":\"prompts\",\"name\":\"a.md\",\"created_at_ms\":1.5", "created_at_ms"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(doc, sizeof(doc),
                 "{\"revision\":1,\"docs\":[{%s,\"text\":\"x\",\"checksum\":\"%s\"}]}",
                 cases[i].member, sum);
        expect_refused(doc, DAGI_EINVAL, cases[i].want);
    }
    snprintf(doc, sizeof(doc),
             "{\"revision\":1,\"docs\":[{\"kind\":\"prompts\",\"name\":\"a.md\",\"text\":1,"
             "\"checksum\":\"%s\"}]}",
             sum);
    expect_refused(doc, DAGI_EINVAL, "text");
    expect_refused("{\"revision\":1,\"docs\":[{\"kind\":\"prompts\",\"name\":\"a.md\","
                   "\"text\":\"x\",\"checksum\":\"abc\"}]}",
                   DAGI_EINVAL, "checksum");
    /* a NUL inside a text is refused by the parser already */
    char nul_sum[65];
    dagi_doc_checksum("a\0b", 3, nul_sum);
    snprintf(doc, sizeof(doc),
             "{\"revision\":1,\"docs\":[{\"kind\":\"prompts\",\"name\":\"a.md\","
             "\"text\":\"a\\u0000b\",\"checksum\":\"%s\"}]}",
             nul_sum);
    expect_refused(doc, DAGI_EPARSE, "u0000");
    /* the same document twice */
    snprintf(doc, sizeof(doc),
             "{\"revision\":1,\"docs\":[{\"kind\":\"prompts\",\"name\":\"a.md\",\"text\":\"x\","
             "\"checksum\":\"%s\"},{\"kind\":\"prompts\",\"name\":\"a.md\",\"text\":\"x\","
             "\"checksum\":\"%s\"}]}",
             sum, sum);
    expect_refused(doc, DAGI_EINVAL, "docs[1]: a second document");
}

static void test_json_caps(void **state)
{
    (void)state;
    char sum[65];
    dagi_doc_checksum("x", 1, sum);
    /* one document more than the cap */
    json_t *docs = json_array();
    for (int i = 0; i <= DAGI_DOCSET_MAX_DOCS; i++) {
        char name[32];
        snprintf(name, sizeof(name), "p%04d.md", i);
        json_array_append_new(docs, json_pack("{s:s,s:s,s:s,s:s}", "kind", "prompts", "name", name,
                                              "text", "x", "checksum", sum));
    }
    json_t *root = json_pack("{s:i,s:o}", "revision", 1, "docs", docs);
    char *json = json_dumps(root, JSON_COMPACT);
    expect_refused(json, DAGI_ETOOBIG, "more than");
    free(json);
    /* at the cap it loads */
    json_array_remove(docs, 0);
    json = json_dumps(root, JSON_COMPACT);
    struct dagi_docset s;
    struct dagi_error err = {0};
    assert_int_equal(dagi_docset_from_json(json, strlen(json), &s, &err), 0);
    assert_int_equal(s.count, DAGI_DOCSET_MAX_DOCS);
    dagi_docset_release(&s);
    free(json);
    json_decref(root);
    /* a text over the cap */
    char *big = dagi_xmalloc(DAGI_DOC_MAX_TEXT + 2);
    memset(big, 'y', DAGI_DOC_MAX_TEXT + 1);
    big[DAGI_DOC_MAX_TEXT + 1] = '\0';
    dagi_doc_checksum(big, DAGI_DOC_MAX_TEXT + 1, sum);
    root = json_pack("{s:i,s:[{s:s,s:s,s:s,s:s}]}", "revision", 1, "docs", "kind", "prompts",
                     "name", "big.md", "text", big, "checksum", sum);
    json = json_dumps(root, JSON_COMPACT);
    expect_refused(json, DAGI_ETOOBIG, "over the cap");
    free(json);
    json_decref(root);
    free(big);
}

/* --- from the configuration's files --- */

struct files {
    char dir[64];
};

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void rm_rf(const char *dir)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_from_config(void **state)
{
    (void)state;
    char dir[] = "/tmp/dagi-docset-XXXXXX", prompts[128], path[6][160];
    assert_non_null(mkdtemp(dir));
    snprintf(prompts, sizeof(prompts), "%s/prompts", dir);
    assert_int_equal(mkdir(prompts, 0755), 0);
    write_file(dir, "my_agents.yaml", "agents: []\n");
    write_file(dir, "rules.yml", "rules: []\n");
    write_file(dir, "pol.yml", "roles: []\n");
    write_file(dir, "flags.yml", "flags: {}\n");
    write_file(prompts, "zeta.md", "Z");
    write_file(prompts, "alpha.md", "A");
    write_file(prompts, "notes.txt", "not a prompt");
    write_file(prompts, "bad name.md", "skipped: not a document name");
    char sub[160];
    snprintf(sub, sizeof(sub), "%s/dir.md", prompts);
    assert_int_equal(mkdir(sub, 0755), 0); /* not a regular file */
    snprintf(path[0], sizeof(path[0]), "%s/my_agents.yaml", dir);
    snprintf(path[1], sizeof(path[1]), "%s/rules.yml", dir);
    snprintf(path[2], sizeof(path[2]), "%s/pol.yml", dir);
    snprintf(path[3], sizeof(path[3]), "%s/flags.yml", dir);

    struct dagi_config c;
    memset(&c, 0, sizeof(c));
    c.router.registry = path[0];
    c.router.routing = path[1];
    c.router.prompts_dir = prompts;
    c.registry.policies = path[2];
    c.registry.flags = path[3];
    struct dagi_docset s;
    struct dagi_error err = {0};
    int rc = dagi_docset_from_config(&c, &s, &err);
    if (rc)
        fail_msg("from_config: %s", err.message);
    assert_int_equal(s.count, 6);
    /* the fixed name, whatever the file is called */
    const struct dagi_doc *d = dagi_docset_find(&s, DAGI_DOC_AGENTS, "agent_registry.yml");
    assert_non_null(d);
    assert_string_equal(d->text, "agents: []\n");
    assert_int_equal(d->version, 0);
    assert_non_null(dagi_docset_find(&s, DAGI_DOC_ROUTING, "routing.yml"));
    assert_string_equal(dagi_docset_find(&s, DAGI_DOC_POLICIES, "policy.yml")->text, "roles: []\n");
    assert_non_null(dagi_docset_find(&s, DAGI_DOC_FLAGS, "flags.yml"));
    assert_null(dagi_docset_find(&s, DAGI_DOC_QUOTAS, "quotas.yml")); /* unset = absent */
    assert_string_equal(dagi_docset_find(&s, DAGI_DOC_PROMPTS, "alpha.md")->text, "A");
    assert_string_equal(dagi_docset_find(&s, DAGI_DOC_PROMPTS, "zeta.md")->text, "Z");
    assert_null(dagi_docset_find(&s, DAGI_DOC_PROMPTS, "notes.txt"));
    assert_null(dagi_docset_find(&s, DAGI_DOC_PROMPTS, "dir.md"));
    dagi_docset_release(&s);

    /* no prompts directory: no prompts, not an error */
    c.router.prompts_dir = "/nonexistent/dagi/prompts";
    assert_int_equal(dagi_docset_from_config(&c, &s, &err), 0);
    assert_int_equal(s.count, 4);
    dagi_docset_release(&s);

    /* a configured file that is missing is an error naming it */
    snprintf(path[4], sizeof(path[4]), "%s/missing.yml", dir);
    c.registry.quotas = path[4];
    s.count = 12345;
    assert_int_equal(dagi_docset_from_config(&c, &s, &err), DAGI_ENOENT);
    assert_non_null(strstr(err.message, "missing.yml"));
    assert_int_equal(s.count, 12345); /* untouched */
    c.registry.quotas = NULL;

    /* a file over the cap */
    snprintf(path[5], sizeof(path[5]), "%s/big.yml", dir);
    FILE *f = fopen(path[5], "w");
    for (int i = 0; i <= DAGI_DOC_MAX_TEXT / 1024; i++)
        fprintf(f, "%01023d\n", 0);
    fclose(f);
    c.registry.lists = path[5];
    assert_int_equal(dagi_docset_from_config(&c, &s, &err), DAGI_ETOOBIG);
    assert_non_null(strstr(err.message, "big.yml"));
    rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kinds),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_checksum),
        cmocka_unit_test(test_put_find_remove_copy),
        cmocka_unit_test(test_put_refuses),
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_json_checksum_mismatch),
        cmocka_unit_test(test_json_malformed),
        cmocka_unit_test(test_json_caps),
        cmocka_unit_test(test_from_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
