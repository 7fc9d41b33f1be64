/* Test fixture: a fresh, empty database for each test of a store suite
 * that runs on both backends (STYLE.md: one conformance suite per
 * interface).  SQLite gets a temp dir of its own; PostgreSQL gets a schema
 * of its own on one throwaway server (pg_fixture.h) that the program starts
 * at its first PostgreSQL test and stops in the group teardown, so a test
 * binary pays for initdb once.  Header-only, like pg_fixture.h; the test
 * opens and closes its own store on f.url, the fixture only makes the place
 * and takes it away.
 *
 *   struct db_fixture f;
 *   db_fixture_sqlite(&f, "graph");     // f.url = sqlite:/tmp/dagi-graph-XXXXXX/test.db
 *   rc = db_fixture_postgres(&f, "g");  // f.url = postgres://...?options=-csearch_path%3Dg_N
 *   if (rc == DB_FIXTURE_SKIP) ...      // PostgreSQL 15 not installed: leave the store
 *                                       // unopened, the test skips
 *   ... open the store on f.url, test, close it ...
 *   db_fixture_release(&f);             // rm -rf the dir, or DROP SCHEMA ... CASCADE
 *   cmocka_run_group_tests_name(name, tests, NULL, db_fixture_teardown_group);
 *
 * Only a missing installation skips: a server that is installed but does
 * not start fails every PostgreSQL test (it is tried once, not per test). */
#ifndef DAGI_TEST_DB_FIXTURE_H
#define DAGI_TEST_DB_FIXTURE_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pg_fixture.h"

#define DB_FIXTURE_SKIP 1 /* db_fixture_postgres: not installed, nothing to test on */

struct db_fixture {
    char url[512];   /* what the test opens its store on */
    char dir[256];   /* SQLite: the temp dir, removed by release */
    char schema[32]; /* PostgreSQL: this test's schema, dropped by release */
};

static struct pg_fixture db_fixture_pg;
static bool db_fixture_pg_up;
static int db_fixture_schema_seq;

/* 0 when the server is up or PostgreSQL is not installed (db_fixture_pg_up
 * tells which), -1 when it failed to start, now or at an earlier test. */
static int db_fixture_start_pg_once(void)
{
    static int state; /* 0 not tried, 1 up or not installed, -1 failed */
    if (state == 0) {
        state = 1;
        if (pg_fixture_available()) {
            if (pg_fixture_start(&db_fixture_pg) == 0) {
                db_fixture_pg_up = true;
            } else {
                fprintf(stderr, "could not start PostgreSQL\n");
                pg_fixture_stop(&db_fixture_pg);
                state = -1;
            }
        }
    }
    return state > 0 ? 0 : -1;
}

/* DROP SCHEMA ... CASCADE reports each dropped object as a NOTICE, which
 * libpq would print to stderr: the test logs stay readable without it. */
static void db_fixture_on_notice(void *arg, const char *message)
{
    (void)arg, (void)message;
}

/* One statement on its own superuser connection to the test database. */
static int db_fixture_pg_admin(const char *sql)
{
    PGconn *c = PQconnectdb(db_fixture_pg.conninfo);
    PQsetNoticeProcessor(c, db_fixture_on_notice, NULL);
    PGresult *res = PQexec(c, sql);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc < 0)
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
    PQclear(res);
    PQfinish(c);
    return rc;
}

/* A new temp dir /tmp/dagi-<tag>-XXXXXX and the url of a file in it;
 * 0 or -1. */
static int db_fixture_sqlite(struct db_fixture *f, const char *tag)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/dagi-%s-XXXXXX", tag);
    if (!mkdtemp(f->dir)) {
        fprintf(stderr, "mkdtemp %s failed\n", f->dir);
        f->dir[0] = '\0';
        return -1;
    }
    snprintf(f->url, sizeof(f->url), "sqlite:%s/test.db", f->dir);
    return 0;
}

/* A new schema <prefix>_N and a url whose connections all use it (the
 * store's migrations then create their tables there); 0, DB_FIXTURE_SKIP
 * when PostgreSQL 15 is not installed, or -1.  `prefix` is a constant of
 * the test: it goes into SQL unquoted. */
static int db_fixture_postgres(struct db_fixture *f, const char *prefix)
{
    memset(f, 0, sizeof(*f));
    if (db_fixture_start_pg_once() < 0)
        return -1;
    if (!db_fixture_pg_up)
        return DB_FIXTURE_SKIP;
    char schema[sizeof(f->schema)], sql[64];
    snprintf(schema, sizeof(schema), "%s_%d", prefix, ++db_fixture_schema_seq);
    snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", schema);
    if (db_fixture_pg_admin(sql) < 0)
        return -1;
    memcpy(f->schema, schema, sizeof(schema)); /* only a created schema is dropped */
    snprintf(f->url, sizeof(f->url), "%s?options=-csearch_path%%3D%s", db_fixture_pg.url,
             f->schema);
    return 0;
}

/* Takes away what db_fixture_sqlite or db_fixture_postgres made, after the
 * test closed its store; a fixture that made nothing is left as it is. */
static void db_fixture_release(struct db_fixture *f)
{
    if (f->dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", f->dir);
        f->dir[0] = '\0';
    }
    if (f->schema[0]) {
        char sql[64];
        snprintf(sql, sizeof(sql), "DROP SCHEMA %s CASCADE", f->schema);
        db_fixture_pg_admin(sql);
        f->schema[0] = '\0';
    }
}

/* The cmocka group teardown: stops the server if a test started it. */
static int db_fixture_teardown_group(void **state)
{
    (void)state;
    if (db_fixture_pg_up)
        pg_fixture_stop(&db_fixture_pg);
    db_fixture_pg_up = false;
    return 0;
}

#endif
