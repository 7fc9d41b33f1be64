/* The config registry's versioned store (registry/registry_store.h): every
 * test runs against SQLite (a temp file) and PostgreSQL (one throwaway
 * server, a schema per test), both migrated with the compiled-in
 * migrations.  Versions and revisions, the current set, unchanged pushes,
 * rollbacks as new versions, deletions, a validation that refuses (nothing
 * written), the import rule (an unchanged file keeps a push), malformed
 * changes, and concurrent writers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "cplane/docset.h"
#include "registry/registry_store.h"
#include "store/db.h"
#include "store/migrate.h"

#include "db_fixture.h"

struct env {
    struct db_fixture fx;
    struct dagi_db *db;
    struct dagi_db_conn *conn;
};

#define NEED_DB(e)                                                                                 \
    do {                                                                                           \
        if (!(e)->db)                                                                              \
            skip();                                                                                \
    } while (0)

static int open_env(struct env *e)
{
    struct dagi_error err = {0};
    struct dagi_migrate_status st;
    if (dagi_db_open(e->fx.url, &(struct dagi_db_opts){.pool_size = 4}, &e->db, &err) < 0 ||
        dagi_migrate(e->db, NULL, 0, &st, &err) < 0 || dagi_db_acquire(e->db, &e->conn, &err) < 0) {
        fprintf(stderr, "open %s: %s\n", e->fx.url, err.message);
        return -1;
    }
    return 0;
}

static void close_env(struct env *e)
{
    if (e->conn)
        dagi_db_release(e->conn);
    dagi_db_close(e->db);
}

static int setup_sqlite(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    *state = e;
    if (db_fixture_sqlite(&e->fx, "regstore") < 0)
        return -1;
    return open_env(e);
}

static int setup_pg(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    *state = e;
    int rc = db_fixture_postgres(&e->fx, "r");
    if (rc != 0)
        return rc == DB_FIXTURE_SKIP ? 0 : -1; /* PostgreSQL 15 not installed: the test skips */
    return open_env(e);
}

static int teardown_env(void **state)
{
    struct env *e = *state;
    close_env(e);
    db_fixture_release(&e->fx);
    free(e);
    return 0;
}

/* --- helpers --- */

struct applied {
    int rc;
    struct dagi_regstore_outcome out[4];
    struct dagi_regstore_result res;
    struct dagi_cfg_errors errs;
    struct dagi_error err;
};

static void applied_release(struct applied *a)
{
    dagi_regstore_result_release(&a->res);
    dagi_cfg_errors_release(&a->errs);
}

static void run(struct dagi_db_conn *conn, enum dagi_regstore_action action, const char *author,
                int64_t now, const struct dagi_regstore_change *c, size_t n,
                dagi_regstore_validate_fn validate, void *ud, struct applied *a)
{
    memset(a, 0, sizeof(*a));
    dagi_cfg_errors_init(&a->errs);
    struct dagi_regstore_meta meta = {action, author, "a comment", now};
    a->rc =
        dagi_regstore_apply(conn, &meta, c, n, validate, ud, a->out, &a->errs, &a->res, &a->err);
}

static struct dagi_regstore_change text_change(enum dagi_doc_kind k, const char *name,
                                               const char *text)
{
    return (struct dagi_regstore_change){
        .kind = k, .name = name, .text = text, .len = strlen(text)};
}

/* A push of one document that must succeed; returns its outcome. */
static struct dagi_regstore_outcome push(struct env *e, enum dagi_doc_kind k, const char *name,
                                         const char *text, int64_t now)
{
    struct dagi_regstore_change c = text_change(k, name, text);
    struct applied a;
    run(e->conn, DAGI_REGSTORE_PUSH, "alice", now, &c, 1, NULL, NULL, &a);
    if (a.rc)
        fail_msg("push %s: %s", name, a.err.message);
    struct dagi_regstore_outcome o = a.out[0];
    applied_release(&a);
    return o;
}

static void current(struct env *e, struct dagi_docset *s)
{
    struct dagi_error err = {0};
    if (dagi_regstore_current(e->conn, s, &err))
        fail_msg("current: %s", err.message);
}

static size_t history_count(struct env *e, enum dagi_doc_kind k, const char *name)
{
    struct dagi_regstore_version *v = NULL;
    size_t n = 0;
    struct dagi_error err = {0};
    int rc = dagi_regstore_history(e->conn, k, name, 1000, &v, &n, &err);
    dagi_regstore_versions_free(v, n);
    return rc == DAGI_ENOENT ? 0 : n;
}

static int64_t count_rows(struct env *e, const char *sql, int64_t arg)
{
    struct dagi_db_rows *rows = NULL;
    struct dagi_error err = {0};
    struct dagi_db_value p[] = {dagi_db_int(arg)};
    if (dagi_db_query(e->conn, sql, p, 1, &rows, &err) < 0)
        fail_msg("%s: %s", sql, err.message);
    assert_int_equal(dagi_db_rows_next(rows, &err), 1);
    int64_t n = dagi_db_col_int(rows, 0);
    dagi_db_rows_free(rows);
    return n;
}

/* --- the suite --- */

static void test_empty(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_docset s;
    current(e, &s);
    assert_int_equal(s.revision, 0);
    assert_int_equal(s.count, 0);
    dagi_docset_release(&s);
    struct dagi_regstore_version v;
    struct dagi_error err = {0};
    assert_int_equal(dagi_regstore_get(e->conn, DAGI_DOC_PROMPTS, "a.md", 0, &v, &err),
                     DAGI_ENOENT);
    assert_int_equal(history_count(e, DAGI_DOC_PROMPTS, "a.md"), 0);
}

static void test_versions_and_revisions(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_regstore_change two[] = {
        text_change(DAGI_DOC_AGENTS, "agent_registry.yml", "agents: []\n"),
        text_change(DAGI_DOC_PROMPTS, "helion.md", "You are Helion.\n"),
    };
    struct applied a;
    run(e->conn, DAGI_REGSTORE_IMPORT, "config-import", 1000, two, 2, NULL, NULL, &a);
    assert_int_equal(a.rc, 0);
    assert_int_equal(a.res.revision, 1);
    assert_int_equal(a.res.changed, 2);
    assert_true(a.out[0].changed && a.out[1].changed);
    assert_int_equal(a.out[0].version, 1);
    assert_int_equal(a.out[1].version, 1);
    /* the result's set is the new current set */
    assert_int_equal(a.res.set.revision, 1);
    assert_int_equal(a.res.set.count, 2);
    applied_release(&a);
    /* one revision made both current */
    assert_int_equal(
        count_rows(e, "SELECT COUNT(*) FROM config_doc_versions WHERE revision = $1", 1), 2);

    struct dagi_regstore_outcome o =
        push(e, DAGI_DOC_PROMPTS, "helion.md", "You are Helion 2.\n", 2000);
    assert_true(o.changed);
    assert_int_equal(o.version, 2);
    char sum[65];
    dagi_doc_checksum("You are Helion 2.\n", 18, sum);
    assert_string_equal(o.checksum, sum);

    struct dagi_docset s;
    current(e, &s);
    assert_int_equal(s.revision, 2);
    assert_int_equal(s.count, 2);
    const struct dagi_doc *d = dagi_docset_find(&s, DAGI_DOC_PROMPTS, "helion.md");
    assert_string_equal(d->text, "You are Helion 2.\n");
    assert_int_equal(d->version, 2);
    assert_string_equal(d->author, "alice");
    assert_int_equal(d->created_at_ms, 2000);
    assert_string_equal(d->checksum, sum);
    d = dagi_docset_find(&s, DAGI_DOC_AGENTS, "agent_registry.yml");
    assert_int_equal(d->version, 1);
    assert_string_equal(d->author, "config-import");
    dagi_docset_release(&s);

    /* history: newest first, with who, when, why and which revision */
    struct dagi_regstore_version *v = NULL;
    size_t n = 0;
    struct dagi_error err = {0};
    assert_int_equal(
        dagi_regstore_history(e->conn, DAGI_DOC_PROMPTS, "helion.md", 10, &v, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(v[0].version, 2);
    assert_int_equal(v[0].revision, 2);
    assert_int_equal(v[0].action, DAGI_REGSTORE_PUSH);
    assert_string_equal(v[0].author, "alice");
    assert_string_equal(v[0].comment, "a comment");
    assert_null(v[0].text);
    assert_int_equal(v[1].version, 1);
    assert_int_equal(v[1].action, DAGI_REGSTORE_IMPORT);
    assert_int_equal(v[1].created_at_ms, 1000);
    dagi_regstore_versions_free(v, n);
    /* the limit */
    assert_int_equal(dagi_regstore_history(e->conn, DAGI_DOC_PROMPTS, "helion.md", 1, &v, &n, &err),
                     0);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].version, 2);
    dagi_regstore_versions_free(v, n);

    /* an old version keeps its text */
    struct dagi_regstore_version one;
    assert_int_equal(dagi_regstore_get(e->conn, DAGI_DOC_PROMPTS, "helion.md", 1, &one, &err), 0);
    assert_string_equal(one.text, "You are Helion.\n");
    assert_false(one.deleted);
    dagi_regstore_version_release(&one);
    assert_int_equal(dagi_regstore_get(e->conn, DAGI_DOC_PROMPTS, "helion.md", 3, &one, &err),
                     DAGI_ENOENT);
}

static void test_unchanged_writes_nothing(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    push(e, DAGI_DOC_ROUTING, "routing.yml", "rules: []\n", 1000);
    struct dagi_regstore_outcome o = push(e, DAGI_DOC_ROUTING, "routing.yml", "rules: []\n", 2000);
    assert_false(o.changed);
    assert_int_equal(o.version, 1);
    assert_int_equal(history_count(e, DAGI_DOC_ROUTING, "routing.yml"), 1);
    assert_int_equal(count_rows(e, "SELECT COUNT(*) FROM config_revisions WHERE revision >= $1", 0),
                     1);
}

static void test_rollback_is_a_new_version(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    push(e, DAGI_DOC_PROMPTS, "p.md", "one\n", 1000);
    push(e, DAGI_DOC_PROMPTS, "p.md", "two\n", 2000);
    struct dagi_regstore_change c = {
        .kind = DAGI_DOC_PROMPTS, .name = "p.md", .rollback_to = DAGI_REGSTORE_PREVIOUS};
    struct applied a;
    run(e->conn, DAGI_REGSTORE_ROLLBACK, "bob", 3000, &c, 1, NULL, NULL, &a);
    assert_int_equal(a.rc, 0);
    assert_true(a.out[0].changed);
    assert_int_equal(a.out[0].version, 3);
    assert_int_equal(a.out[0].restored, 1);
    assert_int_equal(a.res.revision, 3);
    assert_string_equal(dagi_docset_find(&a.res.set, DAGI_DOC_PROMPTS, "p.md")->text, "one\n");
    applied_release(&a);
    /* history is kept: 3 versions, the newest says where it came from */
    struct dagi_regstore_version v;
    struct dagi_error err = {0};
    assert_int_equal(dagi_regstore_get(e->conn, DAGI_DOC_PROMPTS, "p.md", 0, &v, &err), 0);
    assert_int_equal(v.version, 3);
    assert_int_equal(v.action, DAGI_REGSTORE_ROLLBACK);
    assert_int_equal(v.rolled_back_from, 1);
    assert_string_equal(v.text, "one\n");
    assert_string_equal(v.author, "bob");
    dagi_regstore_version_release(&v);
    assert_int_equal(dagi_regstore_get(e->conn, DAGI_DOC_PROMPTS, "p.md", 2, &v, &err), 0);
    assert_string_equal(v.text, "two\n");
    dagi_regstore_version_release(&v);

    /* to the current text: unchanged; to a version that never was: ENOENT */
    c.rollback_to = 3;
    run(e->conn, DAGI_REGSTORE_ROLLBACK, "bob", 4000, &c, 1, NULL, NULL, &a);
    assert_int_equal(a.rc, 0);
    assert_false(a.out[0].changed);
    applied_release(&a);
    c.rollback_to = 1; /* the same text as the current one */
    run(e->conn, DAGI_REGSTORE_ROLLBACK, "bob", 4000, &c, 1, NULL, NULL, &a);
    assert_false(a.out[0].changed);
    applied_release(&a);
    c.rollback_to = 2;
    run(e->conn, DAGI_REGSTORE_ROLLBACK, "bob", 4000, &c, 1, NULL, NULL, &a);
    assert_int_equal(a.rc, 0);
    assert_int_equal(a.out[0].version, 4);
    applied_release(&a);
    c.rollback_to = 99;
    run(e->conn, DAGI_REGSTORE_ROLLBACK, "bob", 4000, &c, 1, NULL, NULL, &a);
    assert_int_equal(a.rc, DAGI_ENOENT);
    applied_release(&a);
    /* nothing before the first version */
    push(e, DAGI_DOC_FLAGS, "flags.yml", "x: 1\n", 5000);
    c = (struct dagi_regstore_change){
        .kind = DAGI_DOC_FLAGS, .name = "flags.yml", .rollback_to = DAGI_REGSTORE_PREVIOUS};
    run(e->conn, DAGI_REGSTORE_ROLLBACK, "bob", 6000, &c, 1, NULL, NULL, &a);
    assert_int_equal(a.rc, DAGI_ENOENT);
    applied_release(&a);
    assert_int_equal(history_count(e, DAGI_DOC_PROMPTS, "p.md"), 4);
}

static void test_delete(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    push(e, DAGI_DOC_PROMPTS, "gone.md", "bye\n", 1000);
    push(e, DAGI_DOC_PROMPTS, "stays.md", "hi\n", 1000);
    struct dagi_regstore_change c = {.kind = DAGI_DOC_PROMPTS, .name = "gone.md"};
    struct applied a;
    run(e->conn, DAGI_REGSTORE_DELETE, "alice", 2000, &c, 1, NULL, NULL, &a);
    assert_int_equal(a.rc, 0);
    assert_true(a.out[0].changed && a.out[0].deleted);
    assert_int_equal(a.out[0].version, 2);
    assert_null(dagi_docset_find(&a.res.set, DAGI_DOC_PROMPTS, "gone.md"));
    applied_release(&a);
    struct dagi_docset s;
    current(e, &s);
    assert_int_equal(s.count, 1);
    assert_non_null(dagi_docset_find(&s, DAGI_DOC_PROMPTS, "stays.md"));
    dagi_docset_release(&s);
    struct dagi_regstore_version v;
    struct dagi_error err = {0};
    assert_int_equal(dagi_regstore_get(e->conn, DAGI_DOC_PROMPTS, "gone.md", 0, &v, &err), 0);
    assert_true(v.deleted);
    assert_int_equal(v.version, 2);
    dagi_regstore_version_release(&v);
    /* deleting what is gone */
    run(e->conn, DAGI_REGSTORE_DELETE, "alice", 3000, &c, 1, NULL, NULL, &a);
    assert_int_equal(a.rc, DAGI_ENOENT);
    applied_release(&a);
    c.name = "never.md";
    run(e->conn, DAGI_REGSTORE_DELETE, "alice", 3000, &c, 1, NULL, NULL, &a);
    assert_int_equal(a.rc, DAGI_ENOENT);
    applied_release(&a);
    /* a rollback brings it back as version 3 */
    c = (struct dagi_regstore_change){
        .kind = DAGI_DOC_PROMPTS, .name = "gone.md", .rollback_to = DAGI_REGSTORE_PREVIOUS};
    run(e->conn, DAGI_REGSTORE_ROLLBACK, "alice", 4000, &c, 1, NULL, NULL, &a);
    assert_int_equal(a.rc, 0);
    assert_int_equal(a.out[0].version, 3);
    assert_string_equal(dagi_docset_find(&a.res.set, DAGI_DOC_PROMPTS, "gone.md")->text, "bye\n");
    applied_release(&a);
    /* and a rollback to the deletion deletes it again */
    c.rollback_to = 2;
    run(e->conn, DAGI_REGSTORE_ROLLBACK, "alice", 5000, &c, 1, NULL, NULL, &a);
    assert_int_equal(a.rc, 0);
    assert_true(a.out[0].deleted);
    assert_int_equal(a.out[0].version, 4);
    applied_release(&a);
}

/* Refuses any set holding a prompt whose text says INVALID; records what
 * it was shown. */
struct seen {
    size_t calls, count;
    bool had_new;
};

static int refuse_invalid(void *ud, const struct dagi_docset *s, struct dagi_cfg_errors *errs)
{
    struct seen *seen = ud;
    seen->calls++;
    seen->count = s->count;
    seen->had_new = dagi_docset_find(s, DAGI_DOC_PROMPTS, "new.md") != NULL;
    int rc = 0;
    for (size_t i = 0; i < s->count; i++)
        if (strstr(s->docs[i].text, "INVALID")) {
            dagi_cfg_errors_add(errs, "%s/%s:1: says INVALID", dagi_doc_kind_name(s->docs[i].kind),
                                s->docs[i].name);
            rc = DAGI_EINVAL;
        }
    return rc;
}

static void test_validation_refuses(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    push(e, DAGI_DOC_PROMPTS, "old.md", "fine\n", 1000);
    struct seen seen = {0};
    struct dagi_regstore_change c[] = {text_change(DAGI_DOC_PROMPTS, "new.md", "fine too\n"),
                                       text_change(DAGI_DOC_PROMPTS, "old.md", "INVALID\n")};
    struct applied a;
    run(e->conn, DAGI_REGSTORE_PUSH, "alice", 2000, c, 2, refuse_invalid, &seen, &a);
    assert_int_equal(a.rc, DAGI_EINVAL);
    assert_int_equal(a.errs.count, 1);
    assert_string_equal(dagi_buf_str(&a.errs.text), "prompts/old.md:1: says INVALID\n");
    /* the validation saw the whole would-be set */
    assert_int_equal(seen.calls, 1);
    assert_int_equal(seen.count, 2);
    assert_true(seen.had_new);
    applied_release(&a);
    /* nothing was written: not the valid one either */
    struct dagi_docset s;
    current(e, &s);
    assert_int_equal(s.revision, 1);
    assert_int_equal(s.count, 1);
    assert_string_equal(s.docs[0].text, "fine\n");
    dagi_docset_release(&s);
    assert_int_equal(history_count(e, DAGI_DOC_PROMPTS, "new.md"), 0);
    /* an unchanged push is not validated at all */
    seen.calls = 0;
    struct dagi_regstore_change same = text_change(DAGI_DOC_PROMPTS, "old.md", "fine\n");
    run(e->conn, DAGI_REGSTORE_PUSH, "alice", 2000, &same, 1, refuse_invalid, &seen, &a);
    assert_int_equal(a.rc, 0);
    assert_int_equal(seen.calls, 0);
    applied_release(&a);
    /* valid: written */
    run(e->conn, DAGI_REGSTORE_PUSH, "alice", 3000, c, 1, refuse_invalid, &seen, &a);
    assert_int_equal(a.rc, 0);
    assert_int_equal(a.res.revision, 2);
    applied_release(&a);
}

static void test_import_keeps_a_push(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_regstore_change file = text_change(DAGI_DOC_PROMPTS, "p.md", "from the file\n");
    struct applied a;
    run(e->conn, DAGI_REGSTORE_IMPORT, "config-import", 1000, &file, 1, NULL, NULL, &a);
    assert_true(a.out[0].changed);
    applied_release(&a);
    /* the same file again: nothing */
    run(e->conn, DAGI_REGSTORE_IMPORT, "config-import", 2000, &file, 1, NULL, NULL, &a);
    assert_int_equal(a.rc, 0);
    assert_false(a.out[0].changed);
    assert_int_equal(a.res.changed, 0);
    applied_release(&a);
    /* a push through the API, then a restart with the unchanged file */
    push(e, DAGI_DOC_PROMPTS, "p.md", "from the API\n", 3000);
    run(e->conn, DAGI_REGSTORE_IMPORT, "config-import", 4000, &file, 1, NULL, NULL, &a);
    assert_false(a.out[0].changed);
    assert_int_equal(a.out[0].version, 2);
    assert_string_equal(dagi_docset_find(&a.res.set, DAGI_DOC_PROMPTS, "p.md")->text,
                        "from the API\n");
    applied_release(&a);
    /* the file changed on disk: imported */
    file = text_change(DAGI_DOC_PROMPTS, "p.md", "a new file\n");
    run(e->conn, DAGI_REGSTORE_IMPORT, "config-import", 5000, &file, 1, NULL, NULL, &a);
    assert_true(a.out[0].changed);
    assert_int_equal(a.out[0].version, 3);
    applied_release(&a);
    /* a per-version comment */
    struct dagi_regstore_version v;
    struct dagi_error err = {0};
    file = text_change(DAGI_DOC_PROMPTS, "q.md", "q\n");
    file.comment = "imported from config/prompts/q.md";
    run(e->conn, DAGI_REGSTORE_IMPORT, "config-import", 6000, &file, 1, NULL, NULL, &a);
    applied_release(&a);
    assert_int_equal(dagi_regstore_get(e->conn, DAGI_DOC_PROMPTS, "q.md", 0, &v, &err), 0);
    assert_string_equal(v.comment, "imported from config/prompts/q.md");
    assert_string_equal(v.author, "config-import");
    dagi_regstore_version_release(&v);
}

static void test_malformed_changes(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct applied a;
    struct dagi_regstore_change c = text_change(DAGI_DOC_AGENTS, "agents.yml", "x");
    run(e->conn, DAGI_REGSTORE_PUSH, "alice", 1000, &c, 1, NULL, NULL, &a);
    assert_int_equal(a.rc, DAGI_EINVAL);
    applied_release(&a);
    c = text_change(DAGI_DOC_PROMPTS, "../x.md", "x");
    run(e->conn, DAGI_REGSTORE_PUSH, "alice", 1000, &c, 1, NULL, NULL, &a);
    assert_int_equal(a.rc, DAGI_EINVAL);
    applied_release(&a);
    c = text_change(DAGI_DOC_PROMPTS, "x.md", "\xff\xfe");
    run(e->conn, DAGI_REGSTORE_PUSH, "alice", 1000, &c, 1, NULL, NULL, &a);
    assert_int_equal(a.rc, DAGI_EINVAL);
    assert_non_null(strstr(a.err.message, "UTF-8"));
    applied_release(&a);
    struct dagi_regstore_change twice[] = {text_change(DAGI_DOC_PROMPTS, "x.md", "1"),
                                           text_change(DAGI_DOC_PROMPTS, "x.md", "2")};
    run(e->conn, DAGI_REGSTORE_PUSH, "alice", 1000, twice, 2, NULL, NULL, &a);
    assert_int_equal(a.rc, DAGI_EINVAL);
    applied_release(&a);
    struct dagi_docset s;
    current(e, &s);
    assert_int_equal(s.revision, 0);
    assert_int_equal(s.count, 0);
    dagi_docset_release(&s);
}

/* Two writers at once, each with its own connection: every change lands,
 * revisions are 1..N without gaps or repeats, versions count per document. */
#define WRITES 15

struct writer {
    struct env *e;
    const char *name;
    int failures;
};

static void *writer_main(void *ud)
{
    struct writer *w = ud;
    struct dagi_db_conn *conn = NULL;
    struct dagi_error err = {0};
    if (dagi_db_acquire(w->e->db, &conn, &err) < 0) {
        w->failures = WRITES;
        return NULL;
    }
    for (int i = 0; i < WRITES; i++) {
        char text[32];
        snprintf(text, sizeof(text), "%s %d\n", w->name, i);
        struct dagi_regstore_change c = text_change(DAGI_DOC_PROMPTS, w->name, text);
        struct applied a;
        run(conn, DAGI_REGSTORE_PUSH, "w", 1000 + i, &c, 1, NULL, NULL, &a);
        if (a.rc || a.out[0].version != i + 1) {
            fprintf(stderr, "%s %d: %d %s\n", w->name, i, a.rc, a.err.message);
            w->failures++;
        }
        applied_release(&a);
    }
    dagi_db_release(conn);
    return NULL;
}

static void test_concurrent_writers(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct writer w[2] = {{e, "one.md", 0}, {e, "two.md", 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, writer_main, &w[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(w[0].failures + w[1].failures, 0);
    assert_int_equal(count_rows(e,
                                "SELECT COUNT(DISTINCT revision) FROM config_revisions WHERE "
                                "revision >= $1",
                                1),
                     2 * WRITES);
    assert_int_equal(count_rows(e,
                                "SELECT MAX(revision) FROM config_revisions WHERE revision >= "
                                "$1",
                                1),
                     2 * WRITES);
    struct dagi_docset s;
    current(e, &s);
    assert_int_equal(s.revision, 2 * WRITES);
    assert_int_equal(dagi_docset_find(&s, DAGI_DOC_PROMPTS, "one.md")->version, WRITES);
    assert_int_equal(dagi_docset_find(&s, DAGI_DOC_PROMPTS, "two.md")->version, WRITES);
    dagi_docset_release(&s);
}

#define T(backend, fn, setup, teardown)                                                            \
    {                                                                                              \
        backend ": " #fn, fn, setup, teardown, NULL                                                \
    }
#define SUITE(backend, setup, teardown)                                                            \
    T(backend, test_empty, setup, teardown),                                                       \
        T(backend, test_versions_and_revisions, setup, teardown),                                  \
        T(backend, test_unchanged_writes_nothing, setup, teardown),                                \
        T(backend, test_rollback_is_a_new_version, setup, teardown),                               \
        T(backend, test_delete, setup, teardown),                                                  \
        T(backend, test_validation_refuses, setup, teardown),                                      \
        T(backend, test_import_keeps_a_push, setup, teardown),                                     \
        T(backend, test_malformed_changes, setup, teardown),                                       \
        T(backend, test_concurrent_writers, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        SUITE("sqlite", setup_sqlite, teardown_env),
        SUITE("postgres", setup_pg, teardown_env),
    };
    return cmocka_run_group_tests_name("registry_store", tests, NULL, db_fixture_teardown_group);
}
