/* The identity graph's conformance suite (STYLE.md: one suite per
 * interface), written against graph.h alone and run on every backend: the
 * relational one on SQLite (a fresh temp file per test) and on PostgreSQL
 * (one throwaway server for the program, a fresh schema per test; skipped
 * only when PostgreSQL 15 is not installed).  A new backend (Neo4j) adds
 * one GRAPH_SUITE line with its own setup.
 *
 * Covered: every operation, bad input naming its field, duplicates,
 * paging (order, cursors, caps), the cascades of deletes, chat mapping,
 * ACL edges with the team step, teams_of, attributes in canonical form,
 * the business clock, concurrent writers.  Then the principal cache on
 * top of a counting wrapper backend: a hit does not touch the store, the
 * TTL, invalidation (and a lookup in flight that must not store), cancel,
 * and release while a lookup is in flight. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/pool.h"
#include "identity/graph.h"
#include "identity/identity_cache.h"
#include "store/db.h"
#include "store/migrate.h"

#include "db_fixture.h"

struct env {
    struct db_fixture fx;
    struct dagi_db *db;
    struct dagi_graph *g;
};

#define NEED_GRAPH(e)                                                                              \
    do {                                                                                           \
        if (!(e)->g)                                                                               \
            skip();                                                                                \
    } while (0)

static void names_field(const char *what, const char *message, const char *field)
{
    if (field && strncmp(message, field, strlen(field)) != 0)
        fail_msg("%s: message '%s' does not start with '%s'", what, message, field);
}

/* Asserts rc, and that the message names `field` first when given. */
#define EXPECT(call, code, field)                                                                  \
    do {                                                                                           \
        struct dagi_error err_ = {0};                                                              \
        int rc_ = (call);                                                                          \
        if (rc_ != (code))                                                                         \
            fail_msg("%s: %d, want %d (%s)", #call, rc_, (code), err_.message);                    \
        names_field(#call, err_.message, (field));                                                 \
    } while (0)
#define E (&err_)
#define OK(call) EXPECT(call, DAGI_OK, (const char *)NULL)

/* --- setups --- */

static int open_env(struct env *e)
{
    struct dagi_error err = {0};
    struct dagi_migrate_status st;
    if (dagi_db_open(e->fx.url, NULL, &e->db, &err) || dagi_migrate(e->db, NULL, 0, &st, &err) ||
        dagi_graph_open("sql", e->db, &e->g, &err)) {
        fprintf(stderr, "open %s: %s\n", e->fx.url, err.message);
        return -1;
    }
    dagi_clock_set_offset_ms(0);
    return 0;
}

static void close_env(struct env *e)
{
    dagi_graph_close(e->g);
    if (e->db)
        dagi_db_close(e->db);
}

static int setup_sqlite(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    *state = e;
    if (db_fixture_sqlite(&e->fx, "graph") < 0)
        return -1;
    return open_env(e);
}

static int setup_pg(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    *state = e;
    int rc = db_fixture_postgres(&e->fx, "g");
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

static void mk_user(struct env *e, const char *id)
{
    struct dagi_graph_user_spec s = {.id = id};
    OK(dagi_graph_user_create(e->g, &s, NULL, E));
}

static void mk_team(struct env *e, const char *id)
{
    struct dagi_graph_team_spec s = {.id = id};
    OK(dagi_graph_team_create(e->g, &s, NULL, E));
}

static void mk_member(struct env *e, const char *team, const char *user, enum dagi_graph_role r)
{
    OK(dagi_graph_member_add(e->g, team, user, r, NULL, E));
}

static bool allowed(struct env *e, const char *s, const char *r, const char *o)
{
    bool yes = true;
    OK(dagi_graph_acl_check(e->g, s, r, o, &yes, E));
    return yes;
}

static size_t count_teams_of(struct env *e, const char *user)
{
    struct dagi_graph_list l = {0};
    OK(dagi_graph_teams_of(e->g, user, NULL, &l, E));
    size_t n = l.count;
    dagi_graph_list_release(&l);
    return n;
}

static size_t count_edges(struct env *e, const char *subject, const char *object)
{
    struct dagi_graph_edge_filter f = {subject, object};
    struct dagi_graph_list l = {0};
    OK(dagi_graph_acl_list(e->g, &f, NULL, &l, E));
    size_t n = l.count;
    dagi_graph_list_release(&l);
    return n;
}

static void assert_json_eq(const char *got, const char *want)
{
    json_t *a = json_loads(got, 0, NULL), *b = json_loads(want, 0, NULL);
    if (!a || !b || !json_equal(a, b))
        fail_msg("JSON %s, want %s", got, want);
    json_decref(a);
    json_decref(b);
}

/* --- nodes --- */

static void test_users_crud(void **state)
{
    struct env *e = *state;
    NEED_GRAPH(e);
    int64_t before = dagi_clock_now_ms();
    struct dagi_graph_user u = {0};
    struct dagi_graph_user_spec s = {
        .id = "alice", .name = "Алиса «A»", .attrs = "{\"b\":[1,2],\"a\":\"x\"}"};
    OK(dagi_graph_user_create(e->g, &s, &u, E));
    assert_string_equal(u.id, "alice");
    assert_string_equal(u.name, "Алиса «A»");
    assert_string_equal(u.attrs, "{\"a\":\"x\",\"b\":[1,2]}"); /* canonical */
    assert_true(u.created_at_ms >= before && u.updated_at_ms == u.created_at_ms);
    dagi_graph_user_release(&u);

    EXPECT(dagi_graph_user_create(e->g, &s, NULL, E), DAGI_EEXIST, "id");
    struct dagi_graph_user_spec same_by_principal = {.id = "user:alice"};
    EXPECT(dagi_graph_user_create(e->g, &same_by_principal, NULL, E), DAGI_EEXIST, "id");

    OK(dagi_graph_user_get(e->g, "alice", &u, E));
    assert_string_equal(u.name, "Алиса «A»");
    assert_string_equal(u.attrs, "{\"a\":\"x\",\"b\":[1,2]}");
    dagi_graph_user_release(&u);
    OK(dagi_graph_user_get(e->g, "user:alice", &u, E)); /* the principal names it too */
    assert_string_equal(u.id, "alice");
    dagi_graph_user_release(&u);
    EXPECT(dagi_graph_user_get(e->g, "bob", &u, E), DAGI_ENOENT, "id");

    /* update: what is given changes, the rest stays; the clock moves on */
    dagi_clock_set_offset_ms(60000);
    struct dagi_graph_patch p = {.name = "Alice"};
    OK(dagi_graph_user_update(e->g, "alice", &p, &u, E));
    assert_string_equal(u.name, "Alice");
    assert_string_equal(u.attrs, "{\"a\":\"x\",\"b\":[1,2]}");
    assert_true(u.updated_at_ms >= u.created_at_ms + 60000);
    dagi_graph_user_release(&u);
    p = (struct dagi_graph_patch){.attrs = "{\"lang\":\"uk\"}"};
    OK(dagi_graph_user_update(e->g, "alice", &p, &u, E));
    assert_string_equal(u.name, "Alice");
    assert_string_equal(u.attrs, "{\"lang\":\"uk\"}"); /* replaced as a whole */
    dagi_graph_user_release(&u);
    p = (struct dagi_graph_patch){.plan = "pro"};
    EXPECT(dagi_graph_user_update(e->g, "alice", &p, NULL, E), DAGI_EINVAL, "plan");
    p = (struct dagi_graph_patch){.name = "x"};
    EXPECT(dagi_graph_user_update(e->g, "bob", &p, NULL, E), DAGI_ENOENT, "id");

    OK(dagi_graph_user_delete(e->g, "alice", E));
    EXPECT(dagi_graph_user_get(e->g, "alice", &u, E), DAGI_ENOENT, "id");
    EXPECT(dagi_graph_user_delete(e->g, "alice", E), DAGI_ENOENT, "id");
    dagi_clock_set_offset_ms(0);
}

static void test_user_ids(void **state)
{
    struct env *e = *state;
    NEED_GRAPH(e);
    /* a Telegram user is a user, created on first sight */
    struct dagi_graph_user u = {0};
    struct dagi_graph_user_spec tg = {.id = "tg:42", .name = NULL, .attrs = NULL};
    OK(dagi_graph_user_create(e->g, &tg, &u, E));
    assert_string_equal(u.id, "tg:42");
    assert_string_equal(u.name, "");
    assert_string_equal(u.attrs, "{}");
    dagi_graph_user_release(&u);
    OK(dagi_graph_user_get(e->g, "tg:42", &u, E));
    dagi_graph_user_release(&u);
    mk_user(e, "olena@example.org");
    mk_user(e, "A.b_c-9");

    const char *bad[] = {
        "",           "tg:",       "tg:x",     "tg:0", "tg:-1", "tg:99999999999999999999",
        "user:tg:42", "has space", "colon:in", ".dot", "-dash", "ünï",
        "a/b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct dagi_graph_user_spec s = {.id = bad[i]};
        EXPECT(dagi_graph_user_create(e->g, &s, NULL, E), DAGI_EINVAL, "id");
        EXPECT(dagi_graph_user_get(e->g, bad[i], &u, E), DAGI_EINVAL, "id");
    }
    char long_id[DAGI_GRAPH_ID_MAX + 2];
    memset(long_id, 'a', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    struct dagi_graph_user_spec s = {.id = long_id};
    EXPECT(dagi_graph_user_create(e->g, &s, NULL, E), DAGI_EINVAL, "id");
    long_id[DAGI_GRAPH_ID_MAX] = '\0'; /* exactly the cap */
    OK(dagi_graph_user_create(e->g, &s, NULL, E));

    /* principals */
    char id[DAGI_GRAPH_ID_MAX + 1], principal[DAGI_GRAPH_REF_MAX + 1];
    assert_int_equal(dagi_graph_user_id_from("user:alice", id), 0);
    assert_string_equal(id, "alice");
    assert_int_equal(dagi_graph_user_id_from("tg:42", id), 0);
    assert_string_equal(id, "tg:42");
    assert_int_equal(dagi_graph_user_id_from("user:tg:42", id), DAGI_EINVAL);
    dagi_graph_user_principal("alice", principal);
    assert_string_equal(principal, "user:alice");
    dagi_graph_user_principal("tg:42", principal);
    assert_string_equal(principal, "tg:42");

    /* names and attributes */
    struct dagi_graph_user_spec ctl = {.id = "ctl", .name = "bell\a"};
    EXPECT(dagi_graph_user_create(e->g, &ctl, NULL, E), DAGI_EINVAL, "name");
    struct dagi_graph_user_spec bad_utf8 = {.id = "utf", .name = "\xc3\x28"};
    EXPECT(dagi_graph_user_create(e->g, &bad_utf8, NULL, E), DAGI_EINVAL, "name");
    struct dagi_graph_user_spec overlong = {.id = "utf", .name = "\xc0\xaf"};
    EXPECT(dagi_graph_user_create(e->g, &overlong, NULL, E), DAGI_EINVAL, "name");
    char name[DAGI_GRAPH_NAME_MAX + 2];
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    struct dagi_graph_user_spec long_name = {.id = "ln", .name = name};
    EXPECT(dagi_graph_user_create(e->g, &long_name, NULL, E), DAGI_EINVAL, "name");
    const char *bad_attrs[] = {"[]", "1", "\"s\"", "{", "{\"a\":1,\"a\":2}", "null"};
    for (size_t i = 0; i < sizeof(bad_attrs) / sizeof(bad_attrs[0]); i++) {
        struct dagi_graph_user_spec a = {.id = "attrs", .name = NULL, .attrs = bad_attrs[i]};
        EXPECT(dagi_graph_user_create(e->g, &a, NULL, E), DAGI_EINVAL, "attributes");
    }
    char *big = malloc(DAGI_GRAPH_ATTRS_MAX + 16);
    snprintf(big, DAGI_GRAPH_ATTRS_MAX + 16, "{\"k\":\"%0*d\"}", DAGI_GRAPH_ATTRS_MAX, 0);
    struct dagi_graph_user_spec a = {.id = "attrs", .name = NULL, .attrs = big};
    EXPECT(dagi_graph_user_create(e->g, &a, NULL, E), DAGI_EINVAL, "attributes");
    free(big);
    EXPECT(dagi_graph_user_get(e->g, "attrs", &u, E), DAGI_ENOENT, "id"); /* nothing made */
}

static void test_teams_crud(void **state)
{
    struct env *e = *state;
    NEED_GRAPH(e);
    struct dagi_graph_team t = {0};
    struct dagi_graph_team_spec s = {
        .id = "energy-union", .name = "Energy Union", .attrs = "{\"tz\":\"Europe/Kyiv\"}"};
    OK(dagi_graph_team_create(e->g, &s, &t, E));
    assert_string_equal(t.plan, "free");
    dagi_graph_team_release(&t);
    EXPECT(dagi_graph_team_create(e->g, &s, NULL, E), DAGI_EEXIST, "id");
    struct dagi_graph_team_spec pro = {.id = "core", .name = NULL, .plan = "pro", .attrs = NULL};
    OK(dagi_graph_team_create(e->g, &pro, &t, E));
    assert_string_equal(t.plan, "pro");
    assert_string_equal(t.name, "");
    dagi_graph_team_release(&t);

    const char *bad[] = {"", "Upper", "-lead", "sp ace", "dot.ted", "ünï"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct dagi_graph_team_spec b = {.id = bad[i]};
        EXPECT(dagi_graph_team_create(e->g, &b, NULL, E), DAGI_EINVAL, "id");
    }
    struct dagi_graph_team_spec bad_plan = {.id = "x", .name = NULL, .plan = "Pro Plan"};
    EXPECT(dagi_graph_team_create(e->g, &bad_plan, NULL, E), DAGI_EINVAL, "plan");

    OK(dagi_graph_team_get(e->g, "energy-union", &t, E));
    assert_string_equal(t.name, "Energy Union");
    assert_json_eq(t.attrs, "{\"tz\":\"Europe/Kyiv\"}");
    dagi_graph_team_release(&t);
    struct dagi_graph_patch p = {.plan = "enterprise"};
    OK(dagi_graph_team_update(e->g, "energy-union", &p, &t, E));
    assert_string_equal(t.plan, "enterprise");
    assert_string_equal(t.name, "Energy Union");
    dagi_graph_team_release(&t);
    EXPECT(dagi_graph_team_update(e->g, "nope", &p, NULL, E), DAGI_ENOENT, "id");
    EXPECT(dagi_graph_team_get(e->g, "nope", &t, E), DAGI_ENOENT, "id");
    OK(dagi_graph_team_delete(e->g, "core", E));
    EXPECT(dagi_graph_team_delete(e->g, "core", E), DAGI_ENOENT, "id");
}

static void test_projects(void **state)
{
    struct env *e = *state;
    NEED_GRAPH(e);
    mk_team(e, "a");
    mk_team(e, "b");
    struct dagi_graph_project p = {0};
    struct dagi_graph_project_spec s = {.id = "p1", .team = "a", .name = "Pilot", .attrs = NULL};
    OK(dagi_graph_project_create(e->g, &s, &p, E));
    assert_string_equal(p.team, "a");
    dagi_graph_project_release(&p);
    EXPECT(dagi_graph_project_create(e->g, &s, NULL, E), DAGI_EEXIST, "id");
    /* ids are unique across teams */
    struct dagi_graph_project_spec other_team = {.id = "p1", .team = "b"};
    EXPECT(dagi_graph_project_create(e->g, &other_team, NULL, E), DAGI_EEXIST, "id");
    struct dagi_graph_project_spec no_team = {.id = "p9", .team = "zzz"};
    EXPECT(dagi_graph_project_create(e->g, &no_team, NULL, E), DAGI_ENOENT, "team");
    struct dagi_graph_project_spec bad = {.id = "P 1", .team = "a"};
    EXPECT(dagi_graph_project_create(e->g, &bad, NULL, E), DAGI_EINVAL, "id");
    struct dagi_graph_project_spec p2 = {.id = "p2", .team = "b"}, p3 = {.id = "p0", .team = "a"};
    OK(dagi_graph_project_create(e->g, &p2, NULL, E));
    OK(dagi_graph_project_create(e->g, &p3, NULL, E));

    struct dagi_graph_list l = {0};
    OK(dagi_graph_project_list(e->g, "a", NULL, &l, E));
    assert_int_equal(l.count, 2);
    assert_string_equal(l.projects[0].id, "p0");
    assert_string_equal(l.projects[1].id, "p1");
    dagi_graph_list_release(&l);
    OK(dagi_graph_project_list(e->g, NULL, NULL, &l, E));
    assert_int_equal(l.count, 3);
    dagi_graph_list_release(&l);
    EXPECT(dagi_graph_project_list(e->g, "zzz", NULL, &l, E), DAGI_ENOENT, "team");

    struct dagi_graph_patch patch = {.name = "Renamed", .attrs = "{\"x\":1}"};
    OK(dagi_graph_project_update(e->g, "p1", &patch, &p, E));
    assert_string_equal(p.name, "Renamed");
    assert_string_equal(p.attrs, "{\"x\":1}");
    dagi_graph_project_release(&p);
    OK(dagi_graph_project_get(e->g, "p1", &p, E));
    assert_string_equal(p.name, "Renamed");
    dagi_graph_project_release(&p);

    OK(dagi_graph_acl_add(e->g, "project:p1", "part_of", "agent:helion", E));
    OK(dagi_graph_acl_add(e->g, "team:b", "can_read", "project:p1", E));
    OK(dagi_graph_project_delete(e->g, "p1", E));
    EXPECT(dagi_graph_project_get(e->g, "p1", &p, E), DAGI_ENOENT, "id");
    EXPECT(dagi_graph_project_delete(e->g, "p1", E), DAGI_ENOENT, "id");
    assert_int_equal(count_edges(e, NULL, NULL), 0); /* both of its edges went with it */
}

/* --- paging --- */

static void test_pagination(void **state)
{
    struct env *e = *state;
    NEED_GRAPH(e);
    /* made out of order; listed in byte order (upper case before lower) */
    char id[16];
    for (int i = 24; i >= 0; i--) {
        snprintf(id, sizeof(id), "%s%02d", i % 2 ? "u" : "U", i);
        mk_user(e, id);
    }
    char prev[DAGI_GRAPH_ID_MAX + 1] = "";
    char cursor[DAGI_GRAPH_CURSOR_MAX + 1] = "";
    size_t seen = 0, pages = 0;
    do {
        struct dagi_graph_page_req req = {10, cursor};
        struct dagi_graph_list l = {0};
        OK(dagi_graph_user_list(e->g, &req, &l, E));
        pages++;
        assert_true(l.count == 10 || (l.count == 5 && !l.next_cursor[0]));
        for (size_t i = 0; i < l.count; i++) {
            assert_true(strcmp(prev, l.users[i].id) < 0);
            snprintf(prev, sizeof(prev), "%s", l.users[i].id);
            seen++;
        }
        if (l.next_cursor[0])
            assert_string_equal(l.next_cursor, l.users[l.count - 1].id);
        snprintf(cursor, sizeof(cursor), "%s", l.next_cursor);
        dagi_graph_list_release(&l);
    } while (cursor[0]);
    assert_int_equal(seen, 25);
    assert_int_equal(pages, 3);

    /* a page that ends exactly at the end says so */
    struct dagi_graph_page_req exact = {25, NULL};
    struct dagi_graph_list l = {0};
    OK(dagi_graph_user_list(e->g, &exact, &l, E));
    assert_int_equal(l.count, 25);
    assert_string_equal(l.next_cursor, "");
    assert_string_equal(l.users[0].id, "U00");
    dagi_graph_list_release(&l);

    /* default and caps */
    OK(dagi_graph_user_list(e->g, NULL, &l, E));
    assert_int_equal(l.count, 25);
    dagi_graph_list_release(&l);
    struct dagi_graph_page_req too_many = {DAGI_GRAPH_LIST_MAX + 1, NULL};
    EXPECT(dagi_graph_user_list(e->g, &too_many, &l, E), DAGI_EINVAL, "limit");
    struct dagi_graph_page_req max = {DAGI_GRAPH_LIST_MAX, NULL};
    OK(dagi_graph_user_list(e->g, &max, &l, E));
    dagi_graph_list_release(&l);
    const char *bad_cursors[] = {"not a cursor", "user:", ",,,", "a,b"};
    for (size_t i = 0; i < sizeof(bad_cursors) / sizeof(bad_cursors[0]); i++) {
        struct dagi_graph_page_req bad = {10, bad_cursors[i]};
        EXPECT(dagi_graph_user_list(e->g, &bad, &l, E), DAGI_EINVAL, "cursor");
        EXPECT(dagi_graph_acl_list(e->g, NULL, &bad, &l, E), DAGI_EINVAL, "cursor");
    }
    struct dagi_graph_page_req bad_chat = {10, "12x"};
    EXPECT(dagi_graph_chat_list(e->g, NULL, &bad_chat, &l, E), DAGI_EINVAL, "cursor");

    /* a cursor past the end: an empty last page */
    struct dagi_graph_page_req past = {10, "zzz"};
    OK(dagi_graph_user_list(e->g, &past, &l, E));
    assert_int_equal(l.count, 0);
    assert_string_equal(l.next_cursor, "");
    dagi_graph_list_release(&l);

    /* teams, by pages of one */
    mk_team(e, "b");
    mk_team(e, "a");
    mk_team(e, "c");
    struct dagi_graph_page_req one = {1, NULL};
    OK(dagi_graph_team_list(e->g, &one, &l, E));
    assert_string_equal(l.teams[0].id, "a");
    assert_string_equal(l.next_cursor, "a");
    dagi_graph_list_release(&l);
    one.cursor = "a";
    OK(dagi_graph_team_list(e->g, &one, &l, E));
    assert_string_equal(l.teams[0].id, "b");
    dagi_graph_list_release(&l);
    one.cursor = "b";
    OK(dagi_graph_team_list(e->g, &one, &l, E));
    assert_string_equal(l.teams[0].id, "c");
    assert_string_equal(l.next_cursor, "");
    dagi_graph_list_release(&l);
}

/* --- membership --- */

static void test_members(void **state)
{
    struct env *e = *state;
    NEED_GRAPH(e);
    mk_team(e, "core");
    mk_team(e, "art");
    mk_user(e, "alice");
    mk_user(e, "bob");
    mk_user(e, "tg:7");
    struct dagi_graph_member m = {0};
    OK(dagi_graph_member_add(e->g, "core", "user:alice", DAGI_GRAPH_OWNER, &m, E));
    assert_string_equal(m.user, "alice");
    assert_string_equal(m.team, "core");
    assert_int_equal(m.role, DAGI_GRAPH_OWNER);
    mk_member(e, "core", "bob", DAGI_GRAPH_MEMBER);
    mk_member(e, "core", "tg:7", DAGI_GRAPH_ADMIN);
    mk_member(e, "art", "alice", DAGI_GRAPH_MEMBER);

    EXPECT(dagi_graph_member_add(e->g, "core", "bob", DAGI_GRAPH_ADMIN, NULL, E), DAGI_EEXIST,
           "user");
    EXPECT(dagi_graph_member_add(e->g, "core", "carol", DAGI_GRAPH_MEMBER, NULL, E), DAGI_ENOENT,
           "user");
    EXPECT(dagi_graph_member_add(e->g, "nope", "bob", DAGI_GRAPH_MEMBER, NULL, E), DAGI_ENOENT,
           "team");
    EXPECT(dagi_graph_member_add(e->g, "core", "bad id", DAGI_GRAPH_MEMBER, NULL, E), DAGI_EINVAL,
           "user");
    EXPECT(dagi_graph_member_add(e->g, "Bad", "bob", DAGI_GRAPH_MEMBER, NULL, E), DAGI_EINVAL,
           "team");
    EXPECT(dagi_graph_member_add(e->g, "core", "bob", (enum dagi_graph_role)7, NULL, E),
           DAGI_EINVAL, "role");

    enum dagi_graph_role r;
    assert_int_equal(dagi_graph_role_parse("admin", &r), 0);
    assert_int_equal(r, DAGI_GRAPH_ADMIN);
    assert_int_equal(dagi_graph_role_parse("root", &r), DAGI_EINVAL);

    struct dagi_graph_list l = {0};
    OK(dagi_graph_member_list(e->g, "core", NULL, &l, E));
    assert_int_equal(l.count, 3);
    assert_string_equal(l.members[0].user, "alice");
    assert_int_equal(l.members[0].role, DAGI_GRAPH_OWNER);
    assert_string_equal(l.members[1].user, "bob");
    assert_string_equal(l.members[2].user, "tg:7");
    assert_int_equal(l.members[2].role, DAGI_GRAPH_ADMIN);
    dagi_graph_list_release(&l);
    struct dagi_graph_page_req two = {2, NULL};
    OK(dagi_graph_member_list(e->g, "core", &two, &l, E));
    assert_string_equal(l.next_cursor, "bob");
    dagi_graph_list_release(&l);
    two.cursor = "bob";
    OK(dagi_graph_member_list(e->g, "core", &two, &l, E));
    assert_int_equal(l.count, 1);
    assert_string_equal(l.members[0].user, "tg:7");
    dagi_graph_list_release(&l);
    EXPECT(dagi_graph_member_list(e->g, "nope", NULL, &l, E), DAGI_ENOENT, "team");

    /* teams_of: by team, with the role in each */
    OK(dagi_graph_teams_of(e->g, "alice", NULL, &l, E));
    assert_int_equal(l.count, 2);
    assert_string_equal(l.members[0].team, "art");
    assert_int_equal(l.members[0].role, DAGI_GRAPH_MEMBER);
    assert_string_equal(l.members[1].team, "core");
    assert_int_equal(l.members[1].role, DAGI_GRAPH_OWNER);
    dagi_graph_list_release(&l);
    struct dagi_graph_page_req one = {1, NULL};
    OK(dagi_graph_teams_of(e->g, "alice", &one, &l, E));
    assert_string_equal(l.next_cursor, "art"); /* a team id, not a user id */
    dagi_graph_list_release(&l);
    one.cursor = "art";
    OK(dagi_graph_teams_of(e->g, "alice", &one, &l, E));
    assert_string_equal(l.members[0].team, "core");
    assert_string_equal(l.next_cursor, "");
    dagi_graph_list_release(&l);
    EXPECT(dagi_graph_teams_of(e->g, "carol", NULL, &l, E), DAGI_ENOENT, "user");
    assert_int_equal(count_teams_of(e, "tg:7"), 1);

    OK(dagi_graph_member_remove(e->g, "core", "bob", E));
    EXPECT(dagi_graph_member_remove(e->g, "core", "bob", E), DAGI_ENOENT, "user");
    EXPECT(dagi_graph_member_remove(e->g, "nope", "bob", E), DAGI_ENOENT, "team");
    assert_int_equal(count_teams_of(e, "bob"), 0);
    /* the user stays */
    struct dagi_graph_user u = {0};
    OK(dagi_graph_user_get(e->g, "bob", &u, E));
    dagi_graph_user_release(&u);
}

/* --- cascades --- */

static void test_delete_user_cascades(void **state)
{
    struct env *e = *state;
    NEED_GRAPH(e);
    mk_team(e, "core");
    mk_user(e, "alice");
    mk_user(e, "bob");
    mk_member(e, "core", "alice", DAGI_GRAPH_OWNER);
    mk_member(e, "core", "bob", DAGI_GRAPH_MEMBER);
    OK(dagi_graph_acl_add(e->g, "user:alice", "can_use", "agent:helion", E));
    OK(dagi_graph_acl_add(e->g, "user:bob", "manages", "user:alice", E));
    OK(dagi_graph_acl_add(e->g, "user:bob", "can_use", "agent:helion", E));

    OK(dagi_graph_user_delete(e->g, "alice", E));
    struct dagi_graph_list l = {0};
    OK(dagi_graph_member_list(e->g, "core", NULL, &l, E));
    assert_int_equal(l.count, 1);
    assert_string_equal(l.members[0].user, "bob");
    dagi_graph_list_release(&l);
    /* edges from and to alice went; bob's own stays */
    assert_int_equal(count_edges(e, "user:alice", NULL), 0);
    assert_int_equal(count_edges(e, NULL, "user:alice"), 0);
    assert_int_equal(count_edges(e, NULL, NULL), 1);
    assert_true(allowed(e, "user:bob", "can_use", "agent:helion"));

    /* made again, alice starts with nothing */
    mk_user(e, "alice");
    assert_int_equal(count_teams_of(e, "alice"), 0);
    assert_false(allowed(e, "user:alice", "can_use", "agent:helion"));

    /* a Telegram user's principal is tg:<id>: its edges go too */
    mk_user(e, "tg:5");
    OK(dagi_graph_acl_add(e->g, "tg:5", "can_use", "agent:helion", E));
    OK(dagi_graph_user_delete(e->g, "tg:5", E));
    assert_int_equal(count_edges(e, "tg:5", NULL), 0);
}

static void test_delete_team_cascades(void **state)
{
    struct env *e = *state;
    NEED_GRAPH(e);
    mk_team(e, "core");
    mk_team(e, "other");
    mk_user(e, "alice");
    mk_member(e, "core", "alice", DAGI_GRAPH_OWNER);
    mk_member(e, "other", "alice", DAGI_GRAPH_MEMBER);
    struct dagi_graph_project_spec p = {.id = "p1", .team = "core"};
    struct dagi_graph_project_spec q = {.id = "q1", .team = "other"};
    OK(dagi_graph_project_create(e->g, &p, NULL, E));
    OK(dagi_graph_project_create(e->g, &q, NULL, E));
    OK(dagi_graph_chat_set(e->g, -1001, "core", NULL, NULL, NULL, E));
    OK(dagi_graph_chat_set(e->g, -1002, "other", NULL, NULL, NULL, E));
    OK(dagi_graph_acl_add(e->g, "team:core", "can_use", "agent:helion", E));
    OK(dagi_graph_acl_add(e->g, "user:alice", "can_read", "project:p1", E));
    OK(dagi_graph_acl_add(e->g, "project:p1", "feeds", "project:q1", E));
    OK(dagi_graph_acl_add(e->g, "team:other", "can_read", "team:core", E));
    OK(dagi_graph_acl_add(e->g, "team:other", "can_read", "project:q1", E));

    OK(dagi_graph_team_delete(e->g, "core", E));
    struct dagi_graph_team t = {0};
    EXPECT(dagi_graph_team_get(e->g, "core", &t, E), DAGI_ENOENT, "id");
    struct dagi_graph_project pr = {0};
    EXPECT(dagi_graph_project_get(e->g, "p1", &pr, E), DAGI_ENOENT, "id");
    OK(dagi_graph_project_get(e->g, "q1", &pr, E));
    dagi_graph_project_release(&pr);
    struct dagi_graph_chat c = {0};
    EXPECT(dagi_graph_chat_get(e->g, -1001, &c, E), DAGI_ENOENT, "chat_id");
    OK(dagi_graph_chat_get(e->g, -1002, &c, E));
    /* alice stays, in the other team only */
    struct dagi_graph_list l = {0};
    OK(dagi_graph_teams_of(e->g, "alice", NULL, &l, E));
    assert_int_equal(l.count, 1);
    assert_string_equal(l.members[0].team, "other");
    dagi_graph_list_release(&l);
    /* only the edge that names neither the team nor its project is left */
    OK(dagi_graph_acl_list(e->g, NULL, NULL, &l, E));
    assert_int_equal(l.count, 1);
    assert_string_equal(l.edges[0].subject, "team:other");
    assert_string_equal(l.edges[0].object, "project:q1");
    dagi_graph_list_release(&l);
    /* a team of that name again starts empty */
    mk_team(e, "core");
    OK(dagi_graph_member_list(e->g, "core", NULL, &l, E));
    assert_int_equal(l.count, 0);
    dagi_graph_list_release(&l);
}

/* --- chats --- */

static void test_chats(void **state)
{
    struct env *e = *state;
    NEED_GRAPH(e);
    mk_team(e, "core");
    mk_team(e, "art");
    struct dagi_graph_chat c = {0};
    bool created = false;
    OK(dagi_graph_chat_set(e->g, -1001234567890, "core", NULL, &c, &created, E));
    assert_true(created);
    assert_int_equal(c.chat_id, -1001234567890);
    assert_string_equal(c.team, "core");
    assert_string_equal(c.agent, "");
    OK(dagi_graph_chat_get(e->g, -1001234567890, &c, E));
    assert_string_equal(c.team, "core");
    assert_string_equal(c.agent, "");

    /* again to the same team: the agent changes, nothing else */
    int64_t made = c.created_at_ms;
    dagi_clock_set_offset_ms(5000);
    OK(dagi_graph_chat_set(e->g, -1001234567890, "core", "helion", &c, &created, E));
    assert_false(created);
    assert_string_equal(c.agent, "helion");
    assert_int_equal(c.created_at_ms, made);
    assert_true(c.updated_at_ms >= made + 5000);
    OK(dagi_graph_chat_get(e->g, -1001234567890, &c, E));
    assert_string_equal(c.agent, "helion");
    dagi_clock_set_offset_ms(0);
    /* to another team: refused, the mapping stays */
    EXPECT(dagi_graph_chat_set(e->g, -1001234567890, "art", NULL, NULL, NULL, E), DAGI_EEXIST,
           "chat_id");
    OK(dagi_graph_chat_get(e->g, -1001234567890, &c, E));
    assert_string_equal(c.team, "core");

    EXPECT(dagi_graph_chat_set(e->g, 5, "nope", NULL, NULL, NULL, E), DAGI_ENOENT, "team");
    EXPECT(dagi_graph_chat_set(e->g, 0, "core", NULL, NULL, NULL, E), DAGI_EINVAL, "chat_id");
    EXPECT(dagi_graph_chat_set(e->g, INT64_MAX, "core", NULL, NULL, NULL, E), DAGI_EINVAL,
           "chat_id");
    EXPECT(dagi_graph_chat_set(e->g, 5, "core", "bad agent", NULL, NULL, E), DAGI_EINVAL, "agent");
    EXPECT(dagi_graph_chat_get(e->g, 5, &c, E), DAGI_ENOENT, "chat_id");

    OK(dagi_graph_chat_set(e->g, 42, "core", NULL, NULL, NULL, E));
    OK(dagi_graph_chat_set(e->g, -7, "core", NULL, NULL, NULL, E));
    OK(dagi_graph_chat_set(e->g, 9, "art", "druid", NULL, NULL, E));
    struct dagi_graph_list l = {0};
    OK(dagi_graph_chat_list(e->g, "core", NULL, &l, E));
    assert_int_equal(l.count, 3);
    assert_int_equal(l.chats[0].chat_id, -1001234567890); /* by chat id, negatives first */
    assert_int_equal(l.chats[1].chat_id, -7);
    assert_int_equal(l.chats[2].chat_id, 42);
    dagi_graph_list_release(&l);
    struct dagi_graph_page_req two = {2, NULL};
    OK(dagi_graph_chat_list(e->g, "core", &two, &l, E));
    assert_string_equal(l.next_cursor, "-7");
    dagi_graph_list_release(&l);
    two.cursor = "-7";
    OK(dagi_graph_chat_list(e->g, "core", &two, &l, E));
    assert_int_equal(l.count, 1);
    assert_int_equal(l.chats[0].chat_id, 42);
    dagi_graph_list_release(&l);
    OK(dagi_graph_chat_list(e->g, NULL, NULL, &l, E));
    assert_int_equal(l.count, 4);
    dagi_graph_list_release(&l);
    EXPECT(dagi_graph_chat_list(e->g, "nope", NULL, &l, E), DAGI_ENOENT, "team");

    /* unset: only by the team that has it, when one is named */
    EXPECT(dagi_graph_chat_unset(e->g, 9, "core", E), DAGI_ENOENT, "chat_id");
    OK(dagi_graph_chat_unset(e->g, 9, "art", E));
    EXPECT(dagi_graph_chat_unset(e->g, 9, NULL, E), DAGI_ENOENT, "chat_id");
    OK(dagi_graph_chat_unset(e->g, 42, NULL, E));
    /* unset, it may go to another team */
    OK(dagi_graph_chat_set(e->g, 42, "art", NULL, &c, &created, E));
    assert_true(created);
}

/* --- ACL edges --- */

static void test_acl(void **state)
{
    struct env *e = *state;
    NEED_GRAPH(e);
    mk_team(e, "core");
    mk_user(e, "alice");
    mk_user(e, "bob");
    struct dagi_graph_project_spec p = {.id = "p1", .team = "core"};
    OK(dagi_graph_project_create(e->g, &p, NULL, E));

    OK(dagi_graph_acl_add(e->g, "user:alice", "can_read", "project:p1", E));
    EXPECT(dagi_graph_acl_add(e->g, "user:alice", "can_read", "project:p1", E), DAGI_EEXIST,
           "edge");
    assert_true(allowed(e, "user:alice", "can_read", "project:p1"));
    assert_false(allowed(e, "user:alice", "can_write", "project:p1"));
    assert_false(allowed(e, "user:bob", "can_read", "project:p1"));

    /* the team step: bob reads what his team reads, while he is in it */
    OK(dagi_graph_acl_add(e->g, "team:core", "can_use", "agent:helion", E));
    assert_false(allowed(e, "user:bob", "can_use", "agent:helion"));
    mk_member(e, "core", "bob", DAGI_GRAPH_MEMBER);
    assert_true(allowed(e, "user:bob", "can_use", "agent:helion"));
    assert_true(allowed(e, "team:core", "can_use", "agent:helion"));
    assert_false(allowed(e, "project:p1", "can_use", "agent:helion")); /* not a user */
    OK(dagi_graph_member_remove(e->g, "core", "bob", E));
    assert_false(allowed(e, "user:bob", "can_use", "agent:helion"));

    /* ends that name nodes of the graph must exist; others are taken as given */
    EXPECT(dagi_graph_acl_add(e->g, "user:carol", "can_read", "project:p1", E), DAGI_ENOENT,
           "subject");
    EXPECT(dagi_graph_acl_add(e->g, "tg:1", "can_read", "project:p1", E), DAGI_ENOENT, "subject");
    EXPECT(dagi_graph_acl_add(e->g, "user:alice", "can_read", "project:p9", E), DAGI_ENOENT,
           "object");
    EXPECT(dagi_graph_acl_add(e->g, "user:alice", "can_read", "team:nope", E), DAGI_ENOENT,
           "object");
    OK(dagi_graph_acl_add(e->g, "user:alice", "can_use", "tool:web_search", E));
    OK(dagi_graph_acl_add(e->g, "user:alice", "reads", "config:agents/registry.yml", E));

    /* malformed */
    const char *bad_refs[] = {"alice",      ":x",     "user:",     "User:alice", "user:bad id",
                              "team:Upper", "tg:abc", "agent:a,b", "user:tg:4"};
    for (size_t i = 0; i < sizeof(bad_refs) / sizeof(bad_refs[0]); i++) {
        EXPECT(dagi_graph_acl_add(e->g, bad_refs[i], "can_read", "project:p1", E), DAGI_EINVAL,
               "subject");
        EXPECT(dagi_graph_acl_add(e->g, "user:alice", "can_read", bad_refs[i], E), DAGI_EINVAL,
               "object");
    }
    EXPECT(dagi_graph_acl_add(e->g, "user:alice", "Can-Read", "project:p1", E), DAGI_EINVAL,
           "relation");
    EXPECT(dagi_graph_acl_add(e->g, "user:alice", "", "project:p1", E), DAGI_EINVAL, "relation");
    bool yes;
    EXPECT(dagi_graph_acl_check(e->g, "alice", "can_read", "project:p1", &yes, E), DAGI_EINVAL,
           "subject");

    /* lists: by subject, by object, both, all; in key order */
    struct dagi_graph_edge_filter by_alice = {"user:alice", NULL};
    struct dagi_graph_list l = {0};
    OK(dagi_graph_acl_list(e->g, &by_alice, NULL, &l, E));
    assert_int_equal(l.count, 3);
    assert_string_equal(l.edges[0].relation, "can_read");
    assert_string_equal(l.edges[1].relation, "can_use");
    assert_string_equal(l.edges[2].relation, "reads");
    dagi_graph_list_release(&l);
    assert_int_equal(count_edges(e, NULL, "project:p1"), 1);
    assert_int_equal(count_edges(e, "user:alice", "tool:web_search"), 1);
    assert_int_equal(count_edges(e, "user:bob", "tool:web_search"), 0);
    assert_int_equal(count_edges(e, NULL, NULL), 4);
    char cursor[DAGI_GRAPH_CURSOR_MAX + 1] = "";
    size_t seen = 0;
    do {
        struct dagi_graph_page_req one = {1, cursor};
        OK(dagi_graph_acl_list(e->g, NULL, &one, &l, E));
        seen += l.count;
        snprintf(cursor, sizeof(cursor), "%s", l.next_cursor);
        dagi_graph_list_release(&l);
    } while (cursor[0]);
    assert_int_equal(seen, 4);
    struct dagi_graph_page_req two = {2, NULL};
    OK(dagi_graph_acl_list(e->g, &by_alice, &two, &l, E));
    assert_string_equal(l.next_cursor, "user:alice,can_use,tool:web_search");
    dagi_graph_list_release(&l);
    two.cursor = "user:alice,can_use,tool:web_search";
    OK(dagi_graph_acl_list(e->g, &by_alice, &two, &l, E));
    assert_int_equal(l.count, 1);
    assert_string_equal(l.edges[0].relation, "reads");
    dagi_graph_list_release(&l);

    OK(dagi_graph_acl_remove(e->g, "user:alice", "can_read", "project:p1", E));
    assert_false(allowed(e, "user:alice", "can_read", "project:p1"));
    EXPECT(dagi_graph_acl_remove(e->g, "user:alice", "can_read", "project:p1", E), DAGI_ENOENT,
           "edge");
}

/* --- opening --- */

static void test_open(void **state)
{
    struct env *e = *state;
    NEED_GRAPH(e);
    struct dagi_graph *g = NULL;
    EXPECT(dagi_graph_open("neo4j://localhost:7474", e->db, &g, E), DAGI_EINVAL, "url");
    EXPECT(dagi_graph_open("", e->db, &g, E), DAGI_EINVAL, "url");
    EXPECT(dagi_graph_open("sql", NULL, &g, E), DAGI_EINVAL, "url");
    EXPECT(dagi_graph_open("sql:extra", e->db, &g, E), DAGI_EINVAL, "url");
    EXPECT(dagi_graph_open("sqlite:x", e->db, &g, E), DAGI_EINVAL, "url");
    assert_null(g);
    /* two handles over one store see the same graph; references keep one open */
    OK(dagi_graph_open("sql", e->db, &g, E));
    assert_string_equal(g->ops->name, "sql");
    assert_true(g->ops->caps & DAGI_GRAPH_CAP_ATOMIC_CASCADE);
    mk_user(e, "alice");
    struct dagi_graph *again = dagi_graph_ref(g);
    dagi_graph_close(g);
    struct dagi_graph_user u = {0};
    OK(dagi_graph_user_get(again, "alice", &u, E));
    dagi_graph_user_release(&u);
    dagi_graph_close(again);
}

/* --- concurrent writers --- */

struct racer {
    struct dagi_graph *g;
    int index;
    int same_rc; /* adding the one shared member */
    int own_rc;  /* creating its own user */
};

static void *race(void *arg)
{
    struct racer *r = arg;
    struct dagi_error err = {0};
    char id[16];
    snprintf(id, sizeof(id), "racer%d", r->index);
    struct dagi_graph_user_spec s = {.id = id};
    r->own_rc = dagi_graph_user_create(r->g, &s, NULL, &err);
    r->same_rc = dagi_graph_member_add(r->g, "core", "alice", DAGI_GRAPH_MEMBER, NULL, &err);
    return NULL;
}

static void test_concurrent_writers(void **state)
{
    struct env *e = *state;
    NEED_GRAPH(e);
    mk_team(e, "core");
    mk_user(e, "alice");
    enum { N = 6 };
    struct racer r[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        r[i] = (struct racer){e->g, i, 1, 1};
        pthread_create(&t[i], NULL, race, &r[i]);
    }
    int added = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(r[i].own_rc, 0); /* no writer lost to another */
        if (r[i].same_rc == 0)
            added++;
        else
            assert_int_equal(r[i].same_rc, DAGI_EEXIST);
    }
    assert_int_equal(added, 1);
    assert_int_equal(count_teams_of(e, "alice"), 1);
}

/* --- the principal cache, over a counting wrapper --- */

static atomic_int teams_of_calls;
static struct dagi_graph_ops counting_ops;

static int counting_teams_of(void *b, const char *user, const struct dagi_graph_page *page,
                             struct dagi_graph_list *out, struct dagi_error *err)
{
    atomic_fetch_add(&teams_of_calls, 1);
    return dagi_graph_sql_ops.teams_of(b, user, page, out, err);
}

struct fake_clock {
    int64_t ms;
};

static int64_t fake_now(void *ud)
{
    return ((struct fake_clock *)ud)->ms;
}

struct cache_env {
    struct event_base *base;
    struct dagi_pool *pool;
    struct dagi_graph *counting;
    struct dagi_identity_cache *cache;
    struct fake_clock clock;
};

struct answer {
    bool done;
    int rc;
    bool known;
    size_t count;
    char first_team[DAGI_GRAPH_ID_MAX + 1];
};

static void on_answer(void *ud, int rc, const struct dagi_identity_teams *t,
                      const struct dagi_error *err)
{
    (void)err;
    struct answer *a = ud;
    a->done = true;
    a->rc = rc;
    if (t) {
        a->known = t->known;
        a->count = t->count;
        snprintf(a->first_team, sizeof(a->first_team), "%s", t->count ? t->teams[0].team : "");
    }
}

static void cache_open(struct env *e, struct cache_env *c, int64_t ttl_ms)
{
    counting_ops = dagi_graph_sql_ops;
    counting_ops.name = "counting";
    counting_ops.teams_of = counting_teams_of;
    counting_ops.close = NULL; /* the backend state is e->g's */
    atomic_store(&teams_of_calls, 0);
    c->base = event_base_new();
    c->pool = dagi_pool_new(c->base, 2, 64);
    c->counting = dagi_graph_wrap(&counting_ops, e->g->backend);
    c->clock.ms = 1000000;
    struct dagi_identity_cache_opts o = {.ttl_ms = ttl_ms, .now_ms = fake_now, .now_ud = &c->clock};
    OK(dagi_identity_cache_new(c->counting, c->pool, &o, &c->cache, E));
    dagi_graph_close(c->counting); /* the cache holds its own reference */
}

static void cache_close(struct cache_env *c)
{
    dagi_identity_cache_unref(c->cache);
    dagi_pool_free(c->pool);
    event_base_free(c->base);
}

/* Turns the loop until pred() (polls with a generous deadline). */
static void spin_until(struct cache_env *c, bool (*pred)(void *), void *ud)
{
    for (int i = 0; i < 3000 && !pred(ud); i++) {
        struct timeval tick = {0, 10000};
        event_base_loopexit(c->base, &tick);
        event_base_dispatch(c->base);
    }
    assert_true(pred(ud));
}

static bool answered(void *ud)
{
    return ((struct answer *)ud)->done;
}

static bool pool_idle(void *ud)
{
    return dagi_pool_pending(ud) == 0;
}

/* Resolves through the loop; the answer of the fetch, or of the hit. */
static int resolve(struct cache_env *c, const char *principal, struct answer *a)
{
    *a = (struct answer){0};
    const struct dagi_identity_teams *t = NULL;
    struct dagi_error err = {0};
    int rc = dagi_identity_resolve(c->cache, principal, &t, on_answer, a, NULL, &err);
    if (rc == DAGI_OK) {
        on_answer(a, 0, t, NULL);
    } else if (rc == DAGI_IDENTITY_PENDING) {
        spin_until(c, answered, a);
    }
    return rc;
}

static void test_cache_hit_skips_store(void **state)
{
    struct env *e = *state;
    NEED_GRAPH(e);
    mk_team(e, "core");
    mk_team(e, "art");
    mk_user(e, "alice");
    mk_member(e, "core", "alice", DAGI_GRAPH_ADMIN);
    mk_member(e, "art", "alice", DAGI_GRAPH_MEMBER);
    struct cache_env c;
    cache_open(e, &c, 5000);
    struct answer a;
    assert_int_equal(resolve(&c, "user:alice", &a), DAGI_IDENTITY_PENDING);
    assert_int_equal(a.rc, 0);
    assert_true(a.known);
    assert_int_equal(a.count, 2);
    assert_string_equal(a.first_team, "art");
    assert_int_equal(atomic_load(&teams_of_calls), 1);

    /* a hit: answered at once, the store untouched */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(resolve(&c, "user:alice", &a), DAGI_OK);
        assert_int_equal(a.count, 2);
    }
    assert_int_equal(atomic_load(&teams_of_calls), 1);
    const struct dagi_identity_teams *t = NULL;
    assert_int_equal(dagi_identity_cache_get(c.cache, "user:alice", &t), 0);
    enum dagi_graph_role role;
    assert_true(dagi_identity_teams_role(t, "core", &role));
    assert_int_equal(role, DAGI_GRAPH_ADMIN);
    assert_false(dagi_identity_teams_role(t, "nope", &role));
    struct dagi_identity_cache_stats st;
    dagi_identity_cache_stats(c.cache, &st);
    assert_int_equal(st.hits, 5);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.entries, 1);

    /* a principal the graph does not know is an answer too, and cached */
    assert_int_equal(resolve(&c, "tg:99", &a), DAGI_IDENTITY_PENDING);
    assert_int_equal(a.rc, 0);
    assert_false(a.known);
    assert_int_equal(a.count, 0);
    assert_int_equal(resolve(&c, "tg:99", &a), DAGI_OK);
    assert_int_equal(atomic_load(&teams_of_calls), 2);

    /* not a user principal: refused without a lookup */
    struct dagi_error err = {0};
    const char *bad[] = {"alice", "team:core", "user:", "tg:x", "", "user:tg:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(dagi_identity_resolve(c.cache, bad[i], &t, on_answer, &a, NULL, &err),
                         DAGI_EINVAL);
    assert_int_equal(atomic_load(&teams_of_calls), 2);
    cache_close(&c);
}

static void test_cache_ttl(void **state)
{
    struct env *e = *state;
    NEED_GRAPH(e);
    mk_user(e, "alice");
    struct cache_env c;
    cache_open(e, &c, 5000);
    struct answer a;
    assert_int_equal(resolve(&c, "user:alice", &a), DAGI_IDENTITY_PENDING);
    c.clock.ms += 4999;
    assert_int_equal(resolve(&c, "user:alice", &a), DAGI_OK);
    assert_int_equal(atomic_load(&teams_of_calls), 1);
    c.clock.ms += 1; /* stale now */
    const struct dagi_identity_teams *t = NULL;
    assert_int_equal(dagi_identity_cache_get(c.cache, "user:alice", &t), DAGI_ENOENT);
    assert_int_equal(resolve(&c, "user:alice", &a), DAGI_IDENTITY_PENDING);
    assert_int_equal(atomic_load(&teams_of_calls), 2);
    assert_int_equal(resolve(&c, "user:alice", &a), DAGI_OK);
    cache_close(&c);

    /* a negative TTL keeps nothing: every lookup asks */
    cache_open(e, &c, -1);
    assert_int_equal(resolve(&c, "user:alice", &a), DAGI_IDENTITY_PENDING);
    assert_int_equal(resolve(&c, "user:alice", &a), DAGI_IDENTITY_PENDING);
    assert_int_equal(atomic_load(&teams_of_calls), 2);
    cache_close(&c);
}

static void test_cache_invalidate(void **state)
{
    struct env *e = *state;
    NEED_GRAPH(e);
    mk_team(e, "core");
    mk_user(e, "alice");
    struct cache_env c;
    cache_open(e, &c, 5000);
    struct answer a;
    assert_int_equal(resolve(&c, "user:alice", &a), DAGI_IDENTITY_PENDING);
    assert_int_equal(a.count, 0);
    mk_member(e, "core", "alice", DAGI_GRAPH_MEMBER);
    assert_int_equal(resolve(&c, "user:alice", &a), DAGI_OK);
    assert_int_equal(a.count, 0); /* stale until told */
    dagi_identity_cache_invalidate(c.cache, "user:alice");
    assert_int_equal(resolve(&c, "user:alice", &a), DAGI_IDENTITY_PENDING);
    assert_int_equal(a.count, 1);

    /* a lookup that read before a change does not store what it read */
    dagi_identity_cache_invalidate(c.cache, NULL);
    const struct dagi_identity_teams *t = NULL;
    struct dagi_error err = {0};
    a = (struct answer){0};
    assert_int_equal(dagi_identity_resolve(c.cache, "user:alice", &t, on_answer, &a, NULL, &err),
                     DAGI_IDENTITY_PENDING);
    dagi_identity_cache_invalidate(c.cache, "user:bob"); /* any change */
    spin_until(&c, answered, &a);
    assert_int_equal(a.rc, 0);
    assert_int_equal(dagi_identity_cache_get(c.cache, "user:alice", &t), DAGI_ENOENT);
    cache_close(&c);
}

static void test_cache_cancel_and_release(void **state)
{
    struct env *e = *state;
    NEED_GRAPH(e);
    mk_user(e, "alice");
    struct cache_env c;
    cache_open(e, &c, 5000);
    const struct dagi_identity_teams *t = NULL;
    struct dagi_identity_fetch *f = NULL;
    struct dagi_error err = {0};
    struct answer a = {0};
    assert_int_equal(dagi_identity_resolve(c.cache, "user:alice", &t, on_answer, &a, &f, &err),
                     DAGI_IDENTITY_PENDING);
    assert_non_null(f);
    dagi_identity_fetch_cancel(f);
    spin_until(&c, pool_idle, c.pool);
    assert_false(a.done); /* not called back... */
    assert_int_equal(dagi_identity_cache_get(c.cache, "user:alice", &t), 0); /* ...but stored */

    /* the owner lets go while a lookup is in flight: it completes safely */
    struct answer b = {0};
    assert_int_equal(dagi_identity_resolve(c.cache, "tg:5", &t, on_answer, &b, NULL, &err),
                     DAGI_IDENTITY_PENDING);
    dagi_identity_cache_unref(c.cache);
    spin_until(&c, answered, &b);
    assert_int_equal(b.rc, 0);
    dagi_pool_free(c.pool);
    event_base_free(c.base);
}

/* One cmocka group (meson reads one TAP plan per program); each test is
 * named after its backend. */
#define T(backend, fn, setup, teardown)                                                            \
    {                                                                                              \
        backend ": " #fn, fn, setup, teardown, NULL                                                \
    }
#define GRAPH_SUITE(backend, setup, teardown)                                                      \
    T(backend, test_users_crud, setup, teardown), T(backend, test_user_ids, setup, teardown),      \
        T(backend, test_teams_crud, setup, teardown), T(backend, test_projects, setup, teardown),  \
        T(backend, test_pagination, setup, teardown), T(backend, test_members, setup, teardown),   \
        T(backend, test_delete_user_cascades, setup, teardown),                                    \
        T(backend, test_delete_team_cascades, setup, teardown),                                    \
        T(backend, test_chats, setup, teardown), T(backend, test_acl, setup, teardown),            \
        T(backend, test_open, setup, teardown),                                                    \
        T(backend, test_concurrent_writers, setup, teardown),                                      \
        T(backend, test_cache_hit_skips_store, setup, teardown),                                   \
        T(backend, test_cache_ttl, setup, teardown),                                               \
        T(backend, test_cache_invalidate, setup, teardown),                                        \
        T(backend, test_cache_cancel_and_release, setup, teardown)

int main(void)
{
    evthread_use_pthreads(); /* the pool's loopq wakes the loop from workers */
    const struct CMUnitTest tests[] = {
        GRAPH_SUITE("sql/sqlite", setup_sqlite, teardown_env),
        GRAPH_SUITE("sql/postgres", setup_pg, teardown_env),
    };
    return cmocka_run_group_tests_name("graph", tests, NULL, db_fixture_teardown_group);
}
