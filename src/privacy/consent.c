/* Consent records in the relational store (consent.h).
 *
 * A change is one write transaction: read the current state, and when it
 * differs, upsert the state and append the history row.  SQLite writers
 * queue on the in-process writer token; PostgreSQL runs SERIALIZABLE, so
 * two changes racing for one record retry (DAGI_EAGAIN) rather than both
 * appending a "change" against the same old state. */
#include "privacy/consent.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/mem.h"
#include "store/db.h"

#define WRITE_TRIES 5

static const char *const source_names[] = {"api", "telegram", "admin"};

const char *dagi_consent_source_name(enum dagi_consent_source source)
{
    return (unsigned)source < DAGI_ARRAY_LEN(source_names) ? source_names[source] : "api";
}

int dagi_consent_source_parse(const char *name, enum dagi_consent_source *out)
{
    for (size_t k = 0; name && k < DAGI_ARRAY_LEN(source_names); k++)
        if (strcmp(name, source_names[k]) == 0) {
            *out = (enum dagi_consent_source)k;
            return DAGI_OK;
        }
    return DAGI_EINVAL;
}

bool dagi_consent_principal_valid(const char *p)
{
    size_t n = p ? strlen(p) : 0;
    if (n == 0 || n > DAGI_CONSENT_PRINCIPAL_MAX)
        return false;
    for (size_t k = 0; k < n; k++)
        if ((unsigned char)p[k] <= ' ' || (unsigned char)p[k] >= 0x7f)
            return false;
    const char *colon = strchr(p, ':');
    return strcmp(p, "admin") == 0 || (colon && colon > p && colon[1]);
}

bool dagi_consent_agent_valid(const char *a)
{
    size_t n = a ? strlen(a) : 0;
    if (n == 0 || n > DAGI_CONSENT_AGENT_MAX || a[0] < 'a' || a[0] > 'z')
        return false;
    return strspn(a, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

static int check_ids(const char *user, const char *agent_id, struct dagi_error *err)
{
    if (!dagi_consent_principal_valid(user))
        return dagi_error_set(err, DAGI_EINVAL,
                              "consent: the user must be a principal such as user:<id> or tg:<id>");
    if (!dagi_consent_agent_valid(agent_id))
        return dagi_error_set(err, DAGI_EINVAL,
                              "consent: the agent id must be [a-z][a-z0-9_-]*, at most %d bytes",
                              DAGI_CONSENT_AGENT_MAX);
    return DAGI_OK;
}

/* 1 with *granted when a record exists, 0 when none, negative on error. */
static int read_state(struct dagi_db_conn *conn, const char *user, const char *agent_id,
                      bool *granted, struct dagi_error *err)
{
    struct dagi_db_value p[] = {dagi_db_text(user), dagi_db_text(agent_id)};
    struct dagi_db_rows *rows = NULL;
    int rc = dagi_db_query(conn,
                           "SELECT granted FROM privacy_consent"
                           " WHERE user_principal = $1 AND agent_id = $2",
                           p, 2, &rows, err);
    if (rc)
        return rc;
    rc = dagi_db_rows_next(rows, err);
    if (rc == 1)
        *granted = dagi_db_col_int(rows, 0) != 0;
    dagi_db_rows_free(rows);
    return rc;
}

struct change {
    const char *user, *agent_id, *changed_by;
    bool granted;
    enum dagi_consent_source source;
    int64_t now_ms;
    bool changed;
};

static int on_change(struct dagi_db_conn *conn, struct change *c, struct dagi_error *err)
{
    bool granted = false;
    int rc = read_state(conn, c->user, c->agent_id, &granted, err);
    c->changed = false;
    if (rc < 0)
        return rc;
    if (rc == 1 && granted == c->granted)
        return DAGI_OK;
    struct dagi_db_value p[] = {
        dagi_db_text(c->user),       dagi_db_text(c->agent_id),
        dagi_db_int(c->granted),     dagi_db_text(dagi_consent_source_name(c->source)),
        dagi_db_text(c->changed_by), dagi_db_int(c->now_ms)};
    rc = dagi_db_exec(conn,
                      "INSERT INTO privacy_consent (user_principal, agent_id, granted, source,"
                      " changed_by, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6)"
                      " ON CONFLICT (user_principal, agent_id) DO UPDATE SET"
                      " granted = excluded.granted, source = excluded.source,"
                      " changed_by = excluded.changed_by, updated_at_ms = excluded.updated_at_ms",
                      p, 6, NULL, err);
    if (!rc)
        rc = dagi_db_exec(conn,
                          "INSERT INTO privacy_consent_history (user_principal, agent_id, granted,"
                          " source, changed_by, changed_at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
                          p, 6, NULL, err);
    if (!rc)
        c->changed = true;
    return rc;
}

static void pause_before_retry(int attempt)
{
    long pause_us = (long)(1000u << attempt) + (long)randombytes_uniform(1000);
    struct timespec ts = {0, pause_us * 1000L};
    nanosleep(&ts, NULL);
}

int dagi_consent_set(struct dagi_db *db, const char *user, const char *agent_id, bool granted,
                     enum dagi_consent_source source, const char *changed_by, int64_t now_ms,
                     bool *changed, struct dagi_error *err)
{
    int rc = check_ids(user, agent_id, err);
    if (rc)
        return rc;
    if (!dagi_consent_principal_valid(changed_by))
        return dagi_error_set(err, DAGI_EINVAL, "consent: changed_by must be a principal");
    struct change c = {user, agent_id, changed_by, granted, source, now_ms, false};
    struct dagi_db_conn *conn = NULL;
    rc = dagi_db_acquire(db, &conn, err);
    if (rc)
        return rc;
    for (int attempt = 1;; attempt++) {
        rc = dagi_db_begin(conn, true, err);
        if (rc == DAGI_OK)
            rc = on_change(conn, &c, err);
        if (rc == DAGI_OK)
            rc = dagi_db_commit(conn, err); /* a failed commit ends the transaction */
        else
            dagi_db_rollback(conn);
        if (rc != DAGI_EAGAIN || attempt >= WRITE_TRIES)
            break;
        pause_before_retry(attempt);
    }
    dagi_db_release(conn);
    if (rc)
        return rc;
    if (changed)
        *changed = c.changed;
    return DAGI_OK;
}

int dagi_consent_get(struct dagi_db *db, const char *user, const char *agent_id, bool *granted,
                     struct dagi_error *err)
{
    int rc = check_ids(user, agent_id, err);
    if (rc)
        return rc;
    struct dagi_db_conn *conn = NULL;
    rc = dagi_db_acquire(db, &conn, err);
    if (rc)
        return rc;
    bool g = false;
    rc = read_state(conn, user, agent_id, &g, err);
    dagi_db_release(conn);
    if (rc < 0)
        return rc;
    *granted = rc == 1 && g;
    return DAGI_OK;
}

static void copy_text(struct dagi_db_rows *rows, size_t col, char *dst, size_t cap)
{
    size_t n = 0;
    const char *s = dagi_db_col_text(rows, col, &n);
    if (!s || n >= cap)
        n = 0; /* the columns are written through check_ids: never longer */
    if (n)
        memcpy(dst, s, n);
    dst[n] = '\0';
}

int dagi_consent_list(struct dagi_db *db, const char *user, size_t limit,
                      struct dagi_consent_list *out, struct dagi_error *err)
{
    if (!dagi_consent_principal_valid(user))
        return dagi_error_set(err, DAGI_EINVAL, "consent: the user must be a principal");
    if (limit == 0 || limit > DAGI_CONSENT_LIST_MAX)
        limit = DAGI_CONSENT_LIST_MAX;
    struct dagi_consent_list list = {0};
    size_t cap = 0;
    struct dagi_db_conn *conn = NULL;
    struct dagi_db_rows *rows = NULL;
    /* one row past the limit tells whether there were more */
    struct dagi_db_value p[] = {dagi_db_text(user), dagi_db_int((int64_t)limit + 1)};
    int rc = dagi_db_acquire(db, &conn, err);
    if (rc)
        return rc;
    rc = dagi_db_query(conn,
                       "SELECT agent_id, granted, source, changed_by, updated_at_ms"
                       " FROM privacy_consent WHERE user_principal = $1"
                       " ORDER BY agent_id LIMIT $2",
                       p, 2, &rows, err);
    if (rc)
        goto out;
    while ((rc = dagi_db_rows_next(rows, err)) == 1) {
        if (list.count == limit) {
            list.truncated = true;
            continue;
        }
        if (list.count == cap) {
            cap = cap ? cap * 2 : 16;
            list.records = dagi_xrealloc(list.records, cap * sizeof(*list.records));
        }
        struct dagi_consent_record *r = &list.records[list.count++];
        memset(r, 0, sizeof(*r));
        snprintf(r->user, sizeof(r->user), "%s", user);
        copy_text(rows, 0, r->agent_id, sizeof(r->agent_id));
        r->granted = dagi_db_col_int(rows, 1) != 0;
        size_t n = 0;
        const char *source = dagi_db_col_text(rows, 2, &n);
        char name[16] = "";
        if (source && n < sizeof(name))
            memcpy(name, source, n);
        if (dagi_consent_source_parse(name, &r->source))
            r->source = DAGI_CONSENT_SOURCE_API;
        copy_text(rows, 3, r->changed_by, sizeof(r->changed_by));
        r->updated_at_ms = dagi_db_col_int(rows, 4);
    }
    dagi_db_rows_free(rows);
out:
    dagi_db_release(conn);
    if (rc < 0) {
        dagi_consent_list_release(&list);
        return rc;
    }
    *out = list;
    return DAGI_OK;
}

void dagi_consent_list_release(struct dagi_consent_list *list)
{
    free(list->records);
    memset(list, 0, sizeof(*list));
}
