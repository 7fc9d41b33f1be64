/* API keys: the format and its parser, the server secret file, and the
 * keystore.  The keystore tests are one suite run twice, as in
 * test_store.c: against SQLite (a fresh temp dir per test) and against
 * PostgreSQL (one throwaway server for the program, a fresh schema per
 * test); the PostgreSQL runs skip only when PostgreSQL 15 is not
 * installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "access/apikey.h"
#include "access/keystore.h"
#include "core/err.h"
#include "core/mem.h"
#include "store/db.h"
#include "store/migrate.h"

#include "pg_fixture.h"

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_secret(struct dagi_apikey_secret *s, unsigned char fill)
{
    memset(s->bytes, fill, sizeof(s->bytes));
}

static void rm_rf(const char *dir)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* --- the format --- */

static void test_generate_and_parse(void **state)
{
    (void)state;
    struct dagi_apikey_secret s;
    struct dagi_apikey k, k2;
    test_secret(&s, 1);
    dagi_apikey_generate(&s, &k);
    assert_int_equal(strlen(k.text), DAGI_APIKEY_LEN);
    assert_int_equal(DAGI_APIKEY_LEN, 61);
    assert_memory_equal(k.text, "dagi_", 5);
    assert_memory_equal(k.text + 5, k.id, DAGI_APIKEY_ID_LEN);
    assert_int_equal(k.text[17], '_');
    assert_true(dagi_apikey_id_valid(k.id));
    for (size_t i = 18; i < DAGI_APIKEY_LEN; i++)
        assert_non_null(strchr(b64url, k.text[i]));

    char id[DAGI_APIKEY_ID_LEN + 1];
    unsigned char hash[DAGI_APIKEY_HASH_BYTES];
    struct dagi_error err = {0};
    assert_int_equal(dagi_apikey_parse(&s, k.text, strlen(k.text), id, hash, &err), DAGI_OK);
    assert_string_equal(id, k.id);
    assert_true(dagi_apikey_hash_equal(hash, k.hash));

    /* the hash is BLAKE2b-256 of the whole string keyed with the secret */
    unsigned char want[32];
    crypto_generichash(want, 32, (const unsigned char *)k.text, DAGI_APIKEY_LEN, s.bytes, 32);
    assert_memory_equal(want, hash, 32);

    /* another server secret, another hash: the database alone is not enough */
    struct dagi_apikey_secret other;
    test_secret(&other, 2);
    assert_int_equal(dagi_apikey_parse(&other, k.text, strlen(k.text), id, hash, &err), DAGI_OK);
    assert_false(dagi_apikey_hash_equal(hash, k.hash));

    dagi_apikey_generate(&s, &k2);
    assert_string_not_equal(k.id, k2.id);
    assert_string_not_equal(k.text, k2.text);
    dagi_apikey_wipe(&k);
    assert_int_equal(k.text[0], 0);
}

static void test_id_valid(void **state)
{
    (void)state;
    assert_true(dagi_apikey_id_valid("abcdefgh2345"));
    assert_true(dagi_apikey_id_valid("777777777777"));
    assert_false(dagi_apikey_id_valid(NULL));
    assert_false(dagi_apikey_id_valid(""));
    assert_false(dagi_apikey_id_valid("abcdefgh234"));   /* 11 */
    assert_false(dagi_apikey_id_valid("abcdefgh23456")); /* 13 */
    assert_false(dagi_apikey_id_valid("Abcdefgh2345"));  /* upper case */
    assert_false(dagi_apikey_id_valid("abcdefgh2340"));  /* 0 is not base32 */
    assert_false(dagi_apikey_id_valid("abcdefgh1345"));  /* nor is 1 */
    assert_false(dagi_apikey_id_valid("abcdef_h2345"));
}

static void test_parse_malformed(void **state)
{
    (void)state;
    struct dagi_apikey_secret s;
    struct dagi_apikey k;
    test_secret(&s, 3);
    dagi_apikey_generate(&s, &k);
    char id[DAGI_APIKEY_ID_LEN + 1] = "unchanged";
    unsigned char hash[DAGI_APIKEY_HASH_BYTES] = {0};
    struct dagi_error err = {0};

    /* variants of a good key, each broken one way */
    struct {
        size_t at;
        char c;
    } edits[] = {
        {0, 'D'},  {4, '-'},  {5, 'A'},  {9, '0'},  {16, '1'},  {16, '_'}, {17, '-'},
        {18, '+'}, {30, '/'}, {40, '='}, {60, '='}, {25, '\0'}, {8, '\0'}, {40, ' '},
    };
    for (size_t i = 0; i < DAGI_ARRAY_LEN(edits); i++) {
        char bad[DAGI_APIKEY_LEN + 1];
        memcpy(bad, k.text, sizeof(bad));
        bad[edits[i].at] = edits[i].c;
        int rc = dagi_apikey_parse(&s, bad, DAGI_APIKEY_LEN, id, hash, &err);
        if (rc != DAGI_EPARSE)
            fail_msg("edit %zu (%zu -> 0x%02x) gave %d", i, edits[i].at, edits[i].c, rc);
        assert_null(strstr(err.message, k.text + 18)); /* never quoted */
    }

    /* the last secret character carries 4 bits; the other 2 must be zero,
     * so each secret has one spelling */
    char bad[DAGI_APIKEY_LEN + 1];
    memcpy(bad, k.text, sizeof(bad));
    size_t v = (size_t)(strchr(b64url, bad[60]) - b64url);
    bad[60] = b64url[v | 1];
    assert_int_equal(dagi_apikey_parse(&s, bad, DAGI_APIKEY_LEN, id, hash, &err), DAGI_EPARSE);

    /* lengths: short, long, empty, NULL, over the cap */
    assert_int_equal(dagi_apikey_parse(&s, k.text, DAGI_APIKEY_LEN - 1, id, hash, &err),
                     DAGI_EPARSE);
    char longer[DAGI_APIKEY_LEN + 2];
    snprintf(longer, sizeof(longer), "%sA", k.text);
    assert_int_equal(dagi_apikey_parse(&s, longer, strlen(longer), id, hash, &err), DAGI_EPARSE);
    assert_int_equal(dagi_apikey_parse(&s, "", 0, id, hash, &err), DAGI_EPARSE);
    assert_int_equal(dagi_apikey_parse(&s, NULL, 0, id, hash, &err), DAGI_EPARSE);
    assert_int_equal(dagi_apikey_parse(&s, "dagi_", 5, id, hash, &err), DAGI_EPARSE);
    char huge[300];
    memset(huge, 'a', sizeof(huge));
    assert_int_equal(dagi_apikey_parse(&s, huge, sizeof(huge), id, hash, &err), DAGI_EPARSE);
    assert_non_null(strstr(err.message, "128"));
    assert_int_equal(dagi_apikey_parse(&s, "dagi_admin_xyz", 14, id, hash, &err), DAGI_EPARSE);
    assert_string_equal(id, "unchanged"); /* out-parameters only on success */
}

/* --- the server secret file --- */

static void make_dir(char *dir, size_t n)
{
    snprintf(dir, n, "/tmp/dagi-apikey-XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static void test_secret_file(void **state)
{
    (void)state;
    char dir[64], path[128];
    make_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/keys.secret", dir);
    struct dagi_apikey_secret a, b;
    struct dagi_error err = {0};
    bool created = false;
    assert_int_equal(dagi_apikey_secret_load_or_create(dir, &a, &created, &err), DAGI_OK);
    assert_true(created);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 32);
    assert_int_equal(dagi_apikey_secret_load_or_create(dir, &b, &created, &err), DAGI_OK);
    assert_false(created);
    assert_memory_equal(a.bytes, b.bytes, 32);
    /* no temp file left behind */
    DIR *d = opendir(dir);
    struct dirent *de;
    int files = 0;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            files++;
    closedir(d);
    assert_int_equal(files, 1);

    /* wider than 0600 is refused, narrower is fine */
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(dagi_apikey_secret_load_or_create(dir, &b, NULL, &err), DAGI_EPERM);
    assert_non_null(strstr(err.message, "chmod 600"));
    assert_int_equal(chmod(path, 0700), 0);
    assert_int_equal(dagi_apikey_secret_load_or_create(dir, &b, NULL, &err), DAGI_EPERM);
    assert_int_equal(chmod(path, 0604), 0);
    assert_int_equal(dagi_apikey_secret_load_or_create(dir, &b, NULL, &err), DAGI_EPERM);
    assert_int_equal(chmod(path, 0400), 0);
    assert_int_equal(dagi_apikey_secret_load_or_create(dir, &b, NULL, &err), DAGI_OK);
    assert_memory_equal(a.bytes, b.bytes, 32);

    /* the wrong size */
    assert_int_equal(unlink(path), 0);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_int_equal(write(fd, a.bytes, 31), 31);
    close(fd);
    assert_int_equal(dagi_apikey_secret_load_or_create(dir, &b, NULL, &err), DAGI_EPARSE);
    assert_non_null(strstr(err.message, "31 bytes"));

    /* a symlink is not followed */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(symlink("/etc/hostname", path), 0);
    assert_true(dagi_apikey_secret_load_or_create(dir, &b, NULL, &err) < 0);
    unlink(path);
    rm_rf(dir);

    assert_int_equal(dagi_apikey_secret_load_or_create("/nonexistent-dagi-dir", &b, NULL, &err),
                     DAGI_EIO);
}

struct racer {
    const char *dir;
    struct dagi_apikey_secret s;
    bool created;
    int rc;
};

static void *on_race(void *ud)
{
    struct racer *r = ud;
    struct dagi_error err = {0};
    r->rc = dagi_apikey_secret_load_or_create(r->dir, &r->s, &r->created, &err);
    return NULL;
}

/* Processes starting at once agree on one secret, and none sees it half
 * written. */
static void test_secret_race(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++) {
        char dir[64];
        make_dir(dir, sizeof(dir));
        struct racer r[8];
        pthread_t t[8];
        for (int i = 0; i < 8; i++) {
            r[i] = (struct racer){.dir = dir};
            assert_int_equal(pthread_create(&t[i], NULL, on_race, &r[i]), 0);
        }
        int made = 0;
        for (int i = 0; i < 8; i++) {
            pthread_join(t[i], NULL);
            assert_int_equal(r[i].rc, DAGI_OK);
            made += r[i].created;
            assert_memory_equal(r[i].s.bytes, r[0].s.bytes, 32);
        }
        assert_int_equal(made, 1);
        rm_rf(dir);
    }
}

/* --- the keystore, on both backends --- */

static struct pg_fixture pg;
static bool pg_up;
static int schema_seq;

struct env {
    enum dagi_db_dialect dialect;
    char url[512];
    char dir[256];
    char schema[32];
    struct dagi_db *db;
    struct dagi_apikey_secret secret;
    struct dagi_keystore *ks;
};

#define NEED_DB(e)                                                                                 \
    do {                                                                                           \
        if (!(e)->db)                                                                              \
            skip();                                                                                \
    } while (0)

static int open_env(struct env *e)
{
    struct dagi_error err = {0};
    randombytes_buf(e->secret.bytes, sizeof(e->secret.bytes));
    if (dagi_db_open(e->url, NULL, &e->db, &err) < 0 ||
        dagi_migrate(e->db, NULL, 0, NULL, &err) < 0 ||
        dagi_keystore_new(e->db, &e->secret, NULL, &e->ks, &err) < 0) {
        fprintf(stderr, "open %s: %s\n", e->url, err.message);
        return -1;
    }
    return 0;
}

static int setup_sqlite(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    e->dialect = DAGI_DB_SQLITE;
    snprintf(e->dir, sizeof(e->dir), "/tmp/dagi-keystore-XXXXXX");
    if (!mkdtemp(e->dir))
        return -1;
    snprintf(e->url, sizeof(e->url), "sqlite:%s/test.db", e->dir);
    *state = e;
    return open_env(e);
}

static int teardown_sqlite(void **state)
{
    struct env *e = *state;
    dagi_keystore_free(e->ks);
    dagi_db_close(e->db);
    rm_rf(e->dir);
    free(e);
    return 0;
}

/* The server starts with the first PostgreSQL test and stops at the end. */
static int start_pg_once(void)
{
    static int started; /* 0 not tried, 1 up or not installed, -1 failed */
    if (started == 0) {
        started = 1;
        if (pg_fixture_available()) {
            if (pg_fixture_start(&pg) == 0) {
                pg_up = true;
            } else {
                fprintf(stderr, "could not start PostgreSQL\n");
                pg_fixture_stop(&pg);
                started = -1;
            }
        }
    }
    return started > 0 ? 0 : -1;
}

static int teardown_all(void **state)
{
    (void)state;
    if (pg_up)
        pg_fixture_stop(&pg);
    pg_up = false;
    return 0;
}

static void on_admin_notice(void *arg, const char *message)
{
    (void)arg, (void)message; /* "drop cascades to ..." */
}

static int pg_admin(const char *sql)
{
    PGconn *c = PQconnectdb(pg.conninfo);
    PQsetNoticeProcessor(c, on_admin_notice, NULL);
    PGresult *res = PQexec(c, sql);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc < 0)
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
    PQclear(res);
    PQfinish(c);
    return rc;
}

static int setup_pg(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    e->dialect = DAGI_DB_POSTGRES;
    *state = e;
    if (start_pg_once() < 0)
        return -1;
    if (!pg_up)
        return 0; /* PostgreSQL 15 not installed: the test skips */
    snprintf(e->schema, sizeof(e->schema), "k_%d", ++schema_seq);
    char sql[64];
    snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", e->schema);
    if (pg_admin(sql) < 0)
        return -1;
    snprintf(e->url, sizeof(e->url), "%s?options=-csearch_path%%3D%s", pg.url, e->schema);
    return open_env(e);
}

static int teardown_pg(void **state)
{
    struct env *e = *state;
    dagi_keystore_free(e->ks);
    dagi_db_close(e->db);
    if (e->schema[0]) {
        char sql[64];
        snprintf(sql, sizeof(sql), "DROP SCHEMA %s CASCADE", e->schema);
        pg_admin(sql);
    }
    free(e);
    return 0;
}

/* helpers */

static const int64_t T0 = 1700000000000LL;

static void create_ok(struct env *e, struct dagi_keystore *ks, const char *user, const char *team,
                      const char *const *roles, size_t nroles, const char *name,
                      int64_t expires_at_ms, char key[DAGI_KEYSTORE_KEY_BUF],
                      char id[DAGI_APIKEY_ID_LEN + 1])
{
    (void)e;
    struct dagi_keystore_key_spec spec = {user, team, roles, nroles, name, expires_at_ms};
    struct dagi_error err = {0};
    int rc = dagi_keystore_create(ks, &spec, T0, key, id, &err);
    if (rc)
        fail_msg("create: %s (%d)", err.message, rc);
}

static int lookup(struct dagi_keystore *ks, const char *key, int64_t now, struct dagi_principal *p,
                  struct dagi_error *err)
{
    return dagi_keystore_lookup(ks, key, strlen(key), now, p, err);
}

static void exec_ok(struct env *e, const char *sql, const struct dagi_db_value *p, size_t n)
{
    struct dagi_db_conn *conn = NULL;
    struct dagi_error err = {0};
    assert_int_equal(dagi_db_acquire(e->db, &conn, &err), 0);
    if (dagi_db_exec(conn, sql, p, n, NULL, &err) < 0)
        fail_msg("%s: %s", sql, err.message);
    dagi_db_release(conn);
}

/* tests */

static void test_ks_create_lookup(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    const char *roles[] = {"admin", "chat.user", "team:ops"};
    char key[DAGI_KEYSTORE_KEY_BUF], id[DAGI_APIKEY_ID_LEN + 1];
    create_ok(e, e->ks, "u-1", "ops", roles, 3, "laptop", 0, key, id);
    assert_int_equal(strlen(key), DAGI_APIKEY_LEN);
    assert_memory_equal(key + 5, id, DAGI_APIKEY_ID_LEN);

    struct dagi_principal p;
    struct dagi_error err = {0};
    /* not cached yet: the loop-safe probe says go to the pool */
    assert_int_equal(dagi_keystore_lookup_cached(e->ks, key, strlen(key), T0, &p, &err),
                     DAGI_EAGAIN);
    assert_int_equal(lookup(e->ks, key, T0, &p, &err), DAGI_OK);
    assert_string_equal(p.key_id, id);
    assert_string_equal(p.user_id, "u-1");
    assert_string_equal(p.team, "ops");
    assert_int_equal(p.role_count, 3);
    assert_string_equal(p.roles[0], "admin");
    assert_string_equal(p.roles[1], "chat.user");
    assert_string_equal(p.roles[2], "team:ops");
    memset(&p, 0, sizeof(p));
    assert_int_equal(dagi_keystore_lookup_cached(e->ks, key, strlen(key), T0, &p, &err), DAGI_OK);
    assert_string_equal(p.user_id, "u-1");

    /* no team, no roles, no name */
    create_ok(e, e->ks, "u-2", NULL, NULL, 0, NULL, 0, key, id);
    assert_int_equal(lookup(e->ks, key, T0, &p, &err), DAGI_OK);
    assert_string_equal(p.team, "");
    assert_int_equal(p.role_count, 0);
    assert_string_equal(p.user_id, "u-2");
}

static void test_ks_unknown_and_malformed(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    char key[DAGI_KEYSTORE_KEY_BUF], id[DAGI_APIKEY_ID_LEN + 1];
    create_ok(e, e->ks, "u-1", NULL, NULL, 0, NULL, 0, key, id);
    struct dagi_principal p;
    struct dagi_error err = {0};

    /* a well-formed key nobody made */
    struct dagi_apikey stranger;
    dagi_apikey_generate(&e->secret, &stranger);
    assert_int_equal(lookup(e->ks, stranger.text, T0, &p, &err), DAGI_ENOENT);
    assert_string_equal(err.message, "unknown key");

    /* the right id with another secret: the same answer, twice (the second
     * from the cache) */
    char forged[DAGI_KEYSTORE_KEY_BUF];
    memcpy(forged, stranger.text, sizeof(forged));
    memcpy(forged + 5, id, DAGI_APIKEY_ID_LEN);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(lookup(e->ks, forged, T0, &p, &err), DAGI_ENOENT);
        assert_string_equal(err.message, "unknown key");
    }
    assert_int_equal(dagi_keystore_lookup_cached(e->ks, forged, strlen(forged), T0, &p, &err),
                     DAGI_ENOENT);
    /* and the real one still works after the forgeries */
    assert_int_equal(lookup(e->ks, key, T0, &p, &err), DAGI_OK);

    assert_int_equal(lookup(e->ks, "dagi_nope", T0, &p, &err), DAGI_EPARSE);
    assert_int_equal(lookup(e->ks, "", T0, &p, &err), DAGI_EPARSE);
    key[20] = '!';
    assert_int_equal(lookup(e->ks, key, T0, &p, &err), DAGI_EPARSE);
    assert_int_equal(dagi_keystore_lookup_cached(e->ks, key, strlen(key), T0, &p, &err),
                     DAGI_EPARSE);
}

static bool contains(const void *hay, size_t n, const void *needle, size_t m)
{
    return hay && memmem(hay, n, needle, m) != NULL;
}

static void test_ks_list(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    const char *roles[] = {"reader"};
    char keys[3][DAGI_KEYSTORE_KEY_BUF], ids[3][DAGI_APIKEY_ID_LEN + 1];
    create_ok(e, e->ks, "alice", "red", roles, 1, "one", 0, keys[0], ids[0]);
    create_ok(e, e->ks, "bob", NULL, NULL, 0, NULL, T0 + 1000, keys[1], ids[1]);
    create_ok(e, e->ks, "alice", NULL, NULL, 0, "two", 0, keys[2], ids[2]);

    struct dagi_keystore_list all, alice, one;
    struct dagi_error err = {0};
    assert_int_equal(dagi_keystore_list(e->ks, NULL, 0, &all, &err), DAGI_OK);
    assert_int_equal(all.count, 3);
    assert_false(all.truncated);
    assert_int_equal(dagi_keystore_list(e->ks, "alice", 0, &alice, &err), DAGI_OK);
    assert_int_equal(alice.count, 2);
    for (size_t i = 0; i < alice.count; i++)
        assert_string_equal(alice.entries[i].who.user_id, "alice");
    assert_int_equal(dagi_keystore_list(e->ks, NULL, 2, &one, &err), DAGI_OK);
    assert_int_equal(one.count, 2);
    assert_true(one.truncated);

    for (size_t i = 0; i < all.count; i++) {
        struct dagi_keystore_entry *en = &all.entries[i];
        size_t k = 0;
        while (k < 3 && strcmp(ids[k], en->who.key_id) != 0)
            k++;
        assert_true(k < 3);
        assert_int_equal(en->created_at_ms, T0);
        assert_int_equal(en->revoked_at_ms, 0);
        if (k == 0) {
            assert_string_equal(en->who.team, "red");
            assert_string_equal(en->name, "one");
            assert_int_equal(en->who.role_count, 1);
            assert_string_equal(en->who.roles[0], "reader");
            assert_int_equal(en->expires_at_ms, 0);
        } else if (k == 1) {
            assert_string_equal(en->name, "");
            assert_int_equal(en->expires_at_ms, T0 + 1000);
        }
        /* nothing of any key's secret nor of its hash, anywhere */
        for (size_t j = 0; j < 3; j++) {
            char id[DAGI_APIKEY_ID_LEN + 1];
            unsigned char hash[DAGI_APIKEY_HASH_BYTES];
            assert_int_equal(
                dagi_apikey_parse(&e->secret, keys[j], strlen(keys[j]), id, hash, &err), DAGI_OK);
            assert_false(contains(en, sizeof(*en), keys[j] + 18, DAGI_APIKEY_SECRET_LEN));
            assert_false(contains(en, sizeof(*en), keys[j] + 18, 8));
            assert_false(contains(en, sizeof(*en), hash, 8));
        }
    }
    dagi_keystore_list_release(&all);
    dagi_keystore_list_release(&alice);
    dagi_keystore_list_release(&one);
    assert_null(all.entries);

    /* nor in the table: the stored hash is the keyed hash, the key is
     * nowhere */
    struct dagi_db_conn *conn = NULL;
    struct dagi_db_rows *rows = NULL;
    assert_int_equal(dagi_db_acquire(e->db, &conn, &err), 0);
    assert_int_equal(dagi_db_query(conn,
                                   "SELECT id, hash, user_id, team, roles, name FROM api_keys",
                                   NULL, 0, &rows, &err),
                     0);
    int n = 0;
    while (dagi_db_rows_next(rows, &err) == 1) {
        n++;
        size_t hlen = 0;
        const void *h = dagi_db_col_blob(rows, 1, &hlen);
        assert_int_equal(hlen, DAGI_APIKEY_HASH_BYTES);
        for (size_t c = 0; c < 6; c++) {
            size_t len = 0;
            const char *t = c == 1 ? h : dagi_db_col_text(rows, c, &len);
            if (c == 1)
                len = hlen;
            for (size_t j = 0; t && j < 3; j++)
                assert_false(contains(t, len, keys[j] + 18, 8));
        }
    }
    assert_int_equal(n, 3);
    dagi_db_rows_free(rows);
    dagi_db_release(conn);
}

static void test_ks_revoke(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    char key[DAGI_KEYSTORE_KEY_BUF], id[DAGI_APIKEY_ID_LEN + 1];
    create_ok(e, e->ks, "u-1", NULL, NULL, 0, NULL, 0, key, id);
    struct dagi_principal p;
    struct dagi_error err = {0};
    assert_int_equal(lookup(e->ks, key, T0, &p, &err), DAGI_OK); /* now cached */
    assert_int_equal(dagi_keystore_revoke(e->ks, id, T0 + 5, &err), DAGI_OK);
    /* seen at once by this process, cache or not */
    assert_int_equal(lookup(e->ks, key, T0 + 6, &p, &err), DAGI_EPERM);
    assert_string_equal(err.message, "key revoked");
    assert_int_equal(dagi_keystore_lookup_cached(e->ks, key, strlen(key), T0 + 6, &p, &err),
                     DAGI_EPERM);
    assert_string_equal(err.message, "key revoked");
    /* idempotent, keeping the first time */
    assert_int_equal(dagi_keystore_revoke(e->ks, id, T0 + 99, &err), DAGI_OK);
    struct dagi_keystore_list l;
    assert_int_equal(dagi_keystore_list(e->ks, NULL, 0, &l, &err), DAGI_OK);
    assert_int_equal(l.count, 1);
    assert_int_equal(l.entries[0].revoked_at_ms, T0 + 5);
    dagi_keystore_list_release(&l);
    /* unknown and malformed ids */
    assert_int_equal(dagi_keystore_revoke(e->ks, "aaaaaaaaaaaa", T0, &err), DAGI_ENOENT);
    assert_int_equal(dagi_keystore_revoke(e->ks, "nope", T0, &err), DAGI_ENOENT);
    assert_int_equal(dagi_keystore_revoke(e->ks, NULL, T0, &err), DAGI_ENOENT);
    /* a revoked key with the wrong secret is still just unknown */
    struct dagi_apikey other;
    dagi_apikey_generate(&e->secret, &other);
    memcpy(other.text + 5, id, DAGI_APIKEY_ID_LEN);
    assert_int_equal(lookup(e->ks, other.text, T0, &p, &err), DAGI_ENOENT);
}

static void test_ks_expiry(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    char key[DAGI_KEYSTORE_KEY_BUF], id[DAGI_APIKEY_ID_LEN + 1];
    create_ok(e, e->ks, "u-1", NULL, NULL, 0, NULL, T0 + 60000, key, id);
    struct dagi_principal p;
    struct dagi_error err = {0};
    /* judged against the now_ms passed in, cached or not */
    assert_int_equal(lookup(e->ks, key, T0 + 59999, &p, &err), DAGI_OK);
    assert_int_equal(lookup(e->ks, key, T0 + 60000, &p, &err), DAGI_EPERM);
    assert_string_equal(err.message, "key expired");
    assert_int_equal(dagi_keystore_lookup_cached(e->ks, key, strlen(key), T0 + 60001, &p, &err),
                     DAGI_EPERM);
    assert_int_equal(lookup(e->ks, key, T0, &p, &err), DAGI_OK); /* a clock set back */
    /* a fresh keystore (no cache) agrees */
    struct dagi_keystore *cold = NULL;
    assert_int_equal(dagi_keystore_new(e->db, &e->secret, NULL, &cold, &err), DAGI_OK);
    assert_int_equal(lookup(cold, key, T0 + 70000, &p, &err), DAGI_EPERM);
    assert_string_equal(err.message, "key expired");
    dagi_keystore_free(cold);
    /* revoked wins over expired */
    assert_int_equal(dagi_keystore_revoke(e->ks, id, T0, &err), DAGI_OK);
    assert_int_equal(lookup(e->ks, key, T0 + 70000, &p, &err), DAGI_EPERM);
    assert_string_equal(err.message, "key revoked");
}

/* Another process (a second keystore on the same database) revokes: this
 * one keeps its cached answer for at most the TTL, and in the meantime
 * does not ask the database at all. */
static void test_ks_cache_ttl(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_keystore_opts opts = {.cache_entries = 8, .cache_ttl_ms = 1500};
    struct dagi_keystore *ks = NULL, *other = NULL;
    struct dagi_error err = {0};
    assert_int_equal(dagi_keystore_new(e->db, &e->secret, &opts, &ks, &err), DAGI_OK);
    assert_int_equal(dagi_keystore_new(e->db, &e->secret, &opts, &other, &err), DAGI_OK);
    char key[DAGI_KEYSTORE_KEY_BUF], id[DAGI_APIKEY_ID_LEN + 1];
    create_ok(e, ks, "u-1", NULL, NULL, 0, NULL, 0, key, id);
    struct dagi_principal p;
    assert_int_equal(lookup(ks, key, T0, &p, &err), DAGI_OK);
    assert_int_equal(dagi_keystore_revoke(other, id, T0, &err), DAGI_OK);
    /* the row is gone too: only the cache can answer now */
    struct dagi_db_value pid = dagi_db_text(id);
    exec_ok(e, "DELETE FROM api_keys WHERE id = $1", &pid, 1);
    assert_int_equal(lookup(ks, key, T0, &p, &err), DAGI_OK);
    assert_int_equal(lookup(other, key, T0, &p, &err), DAGI_ENOENT);
    sleep_ms(1600);
    assert_int_equal(dagi_keystore_lookup_cached(ks, key, strlen(key), T0, &p, &err), DAGI_EAGAIN);
    assert_int_equal(lookup(ks, key, T0, &p, &err), DAGI_ENOENT);

    /* a full cache replaces its oldest entries and stays correct */
    char keys[20][DAGI_KEYSTORE_KEY_BUF];
    for (int i = 0; i < 20; i++) {
        char kid[DAGI_APIKEY_ID_LEN + 1], user[16];
        snprintf(user, sizeof(user), "user-%d", i);
        create_ok(e, ks, user, NULL, NULL, 0, NULL, 0, keys[i], kid);
        assert_int_equal(lookup(ks, keys[i], T0, &p, &err), DAGI_OK);
    }
    for (int i = 0; i < 20; i++) {
        char user[16];
        snprintf(user, sizeof(user), "user-%d", i);
        assert_int_equal(lookup(ks, keys[i], T0, &p, &err), DAGI_OK);
        assert_string_equal(p.user_id, user);
    }
    dagi_keystore_free(ks);
    dagi_keystore_free(other);

    /* no cache at all: every lookup reads the store */
    opts.cache_ttl_ms = -1;
    assert_int_equal(dagi_keystore_new(e->db, &e->secret, &opts, &ks, &err), DAGI_OK);
    assert_int_equal(lookup(ks, keys[0], T0, &p, &err), DAGI_OK);
    assert_int_equal(dagi_keystore_lookup_cached(ks, keys[0], strlen(keys[0]), T0, &p, &err),
                     DAGI_EAGAIN);
    dagi_keystore_free(ks);
}

static void test_ks_last_used(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct dagi_keystore_opts opts = {.cache_ttl_ms = -1}; /* every lookup a miss */
    struct dagi_keystore *ks = NULL;
    struct dagi_error err = {0};
    assert_int_equal(dagi_keystore_new(e->db, &e->secret, &opts, &ks, &err), DAGI_OK);
    char key[DAGI_KEYSTORE_KEY_BUF], id[DAGI_APIKEY_ID_LEN + 1];
    create_ok(e, ks, "u-1", NULL, NULL, 0, NULL, 0, key, id);
    struct dagi_principal p;
    struct dagi_keystore_list l;
    int64_t want[] = {T0 + 10, T0 + 10, T0 + 70010};
    int64_t at[] = {T0 + 10, T0 + 20, T0 + 70010}; /* written at most once a minute */
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(lookup(ks, key, at[i], &p, &err), DAGI_OK);
        assert_int_equal(dagi_keystore_list(ks, NULL, 0, &l, &err), DAGI_OK);
        assert_int_equal(l.entries[0].last_used_at_ms, want[i]);
        dagi_keystore_list_release(&l);
    }
    dagi_keystore_free(ks);
}

static void test_ks_bad_spec(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    char key[DAGI_KEYSTORE_KEY_BUF] = "", id[DAGI_APIKEY_ID_LEN + 1];
    struct dagi_error err = {0};
    char big[200];
    memset(big, 'x', sizeof(big));
    big[sizeof(big) - 1] = '\0';
    const char *bad_role[] = {"has space"};
    const char *empty_role[] = {""};
    const char *long_role[] = {big};
    const char *many[17];
    for (int i = 0; i < 17; i++)
        many[i] = "r";
    struct dagi_keystore_key_spec specs[] = {
        {NULL, NULL, NULL, 0, NULL, 0},      {"", NULL, NULL, 0, NULL, 0},
        {big, NULL, NULL, 0, NULL, 0},       {"u", big, NULL, 0, NULL, 0},
        {"u", NULL, NULL, 0, big, 0},        {"u", NULL, bad_role, 1, NULL, 0},
        {"u", NULL, empty_role, 1, NULL, 0}, {"u", NULL, long_role, 1, NULL, 0},
        {"u", NULL, many, 17, NULL, 0},      {"u", NULL, NULL, 0, NULL, -5},
        {"u", NULL, NULL, 3, NULL, 0},
    };
    for (size_t i = 0; i < DAGI_ARRAY_LEN(specs); i++) {
        int rc = dagi_keystore_create(e->ks, &specs[i], T0, key, id, &err);
        if (rc != DAGI_EINVAL)
            fail_msg("spec %zu: %d", i, rc);
    }
    assert_int_equal(dagi_keystore_create(e->ks, NULL, T0, key, id, &err), DAGI_EINVAL);
    assert_string_equal(key, ""); /* nothing written on failure */
    struct dagi_keystore_list l;
    assert_int_equal(dagi_keystore_list(e->ks, NULL, 0, &l, &err), DAGI_OK);
    assert_int_equal(l.count, 0);
    dagi_keystore_list_release(&l);
}

/* Writers and readers at once: on PostgreSQL, SERIALIZABLE writers may be
 * told to retry, which the keystore does on its own. */
struct worker {
    struct env *e;
    int failures;
};

static void *on_work(void *ud)
{
    struct worker *w = ud;
    for (int i = 0; i < 15; i++) {
        char key[DAGI_KEYSTORE_KEY_BUF], id[DAGI_APIKEY_ID_LEN + 1];
        struct dagi_keystore_key_spec spec = {"busy", NULL, NULL, 0, NULL, 0};
        struct dagi_principal p;
        struct dagi_error err = {0};
        if (dagi_keystore_create(w->e->ks, &spec, T0, key, id, &err) ||
            lookup(w->e->ks, key, T0, &p, &err) ||
            dagi_keystore_revoke(w->e->ks, id, T0 + 1, &err) ||
            lookup(w->e->ks, key, T0 + 2, &p, &err) != DAGI_EPERM) {
            fprintf(stderr, "worker: %s\n", err.message);
            w->failures++;
        }
    }
    return NULL;
}

static void test_ks_concurrent(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    struct worker w[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){e, 0};
        assert_int_equal(pthread_create(&t[i], NULL, on_work, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    struct dagi_keystore_list l;
    struct dagi_error err = {0};
    assert_int_equal(dagi_keystore_list(e->ks, "busy", 0, &l, &err), DAGI_OK);
    assert_int_equal(l.count, 60);
    dagi_keystore_list_release(&l);
}

/* Several revokes of one key at once: on PostgreSQL all but one hit a
 * serialization failure, retry, and find the key already revoked. */
struct revoker {
    struct env *e;
    const char *id;
    pthread_barrier_t *start;
    int rc;
};

static void *on_revoke_race(void *ud)
{
    struct revoker *r = ud;
    struct dagi_error err = {0};
    pthread_barrier_wait(r->start);
    r->rc = dagi_keystore_revoke(r->e->ks, r->id, T0 + 7, &err);
    if (r->rc)
        fprintf(stderr, "revoke: %s\n", err.message);
    return NULL;
}

static void test_ks_revoke_race(void **state)
{
    struct env *e = *state;
    NEED_DB(e);
    for (int round = 0; round < 10; round++) {
        char key[DAGI_KEYSTORE_KEY_BUF], id[DAGI_APIKEY_ID_LEN + 1];
        create_ok(e, e->ks, "racer", NULL, NULL, 0, NULL, 0, key, id);
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, 4);
        struct revoker r[4];
        pthread_t t[4];
        for (int i = 0; i < 4; i++) {
            r[i] = (struct revoker){e, id, &start, -99};
            assert_int_equal(pthread_create(&t[i], NULL, on_revoke_race, &r[i]), 0);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(t[i], NULL);
            assert_int_equal(r[i].rc, DAGI_OK);
        }
        pthread_barrier_destroy(&start);
        struct dagi_principal p;
        struct dagi_error err = {0};
        assert_int_equal(lookup(e->ks, key, T0 + 8, &p, &err), DAGI_EPERM);
    }
}

#define T(backend, fn, setup, teardown)                                                            \
    {                                                                                              \
        backend ": " #fn, fn, setup, teardown, NULL                                                \
    }
#define KEYSTORE_SUITE(backend, setup, teardown)                                                   \
    T(backend, test_ks_create_lookup, setup, teardown),                                            \
        T(backend, test_ks_unknown_and_malformed, setup, teardown),                                \
        T(backend, test_ks_list, setup, teardown), T(backend, test_ks_revoke, setup, teardown),    \
        T(backend, test_ks_expiry, setup, teardown),                                               \
        T(backend, test_ks_cache_ttl, setup, teardown),                                            \
        T(backend, test_ks_last_used, setup, teardown),                                            \
        T(backend, test_ks_bad_spec, setup, teardown),                                             \
        T(backend, test_ks_concurrent, setup, teardown),                                           \
        T(backend, test_ks_revoke_race, setup, teardown)

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_and_parse),
        cmocka_unit_test(test_id_valid),
        cmocka_unit_test(test_parse_malformed),
        cmocka_unit_test(test_secret_file),
        cmocka_unit_test(test_secret_race),
        KEYSTORE_SUITE("sqlite", setup_sqlite, teardown_sqlite),
        KEYSTORE_SUITE("postgres", setup_pg, teardown_pg),
    };
    return cmocka_run_group_tests_name("apikey", tests, NULL, teardown_all);
}
