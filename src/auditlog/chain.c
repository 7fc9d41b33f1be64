/* The table audit_log (migration 0005_audit): append and verify (chain.h).
 *
 * Appending reads the last record and inserts the next one in a single
 * write transaction, so two appenders must be serialised or both would link
 * to the same predecessor and fork the chain.  SQLite's BEGIN IMMEDIATE does
 * that.  On PostgreSQL the write transaction is SERIALIZABLE, whose snapshot
 * is taken by the first statement that reads: so the first statement is
 * LOCK TABLE audit_log IN EXCLUSIVE MODE (a lock statement takes no
 * snapshot), and the reads that follow see the previous appender's commit.
 * EXCLUSIVE leaves plain reads (verify, query) free to run meanwhile. */
#include "auditlog/chain.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auditlog/chain_internal.h"
#include "store/db.h"

#define TX_TRIES 8
#define VERIFY_PAGE 500

static const unsigned char zero_hash[DAGI_AUDIT_HASH_BYTES];

/* --- rows --- */

static bool col_into(struct dagi_db_rows *rows, size_t col, char *dst, size_t cap)
{
    size_t n = 0;
    const char *v = dagi_db_col_text(rows, col, &n);
    if (!v) {
        v = "";
        n = 0;
    }
    if (n >= cap || memchr(v, '\0', n))
        return false;
    memcpy(dst, v, n);
    dst[n] = '\0';
    return true;
}

static bool blob_into(struct dagi_db_rows *rows, size_t col, unsigned char *dst)
{
    size_t n = 0;
    const void *v = dagi_db_col_blob(rows, col, &n);
    if (!v || n != DAGI_AUDIT_HASH_BYTES) {
        memset(dst, 0, DAGI_AUDIT_HASH_BYTES);
        return false;
    }
    memcpy(dst, v, n);
    return true;
}

int audit_row_to_record(struct dagi_db_rows *rows, struct dagi_audit_record *r)
{
    memset(r, 0, sizeof(*r));
    r->seq = dagi_db_col_int(rows, 0);
    r->time_ms = dagi_db_col_int(rows, 2);
    bool ok = col_into(rows, 1, r->event_id, sizeof(r->event_id));
    ok = col_into(rows, 3, r->service, sizeof(r->service)) && ok;
    ok = col_into(rows, 4, r->action, sizeof(r->action)) && ok;
    ok = col_into(rows, 5, r->actor, sizeof(r->actor)) && ok;
    ok = col_into(rows, 6, r->subject, sizeof(r->subject)) && ok;
    ok = col_into(rows, 7, r->decision, sizeof(r->decision)) && ok;
    ok = col_into(rows, 8, r->trace_id, sizeof(r->trace_id)) && ok;
    ok = col_into(rows, 9, r->metadata, sizeof(r->metadata)) && ok;
    ok = blob_into(rows, 10, r->prev_hash) && ok;
    ok = blob_into(rows, 11, r->hash) && ok;
    return ok ? DAGI_OK : DAGI_EPARSE;
}

/* --- append --- */

static int find_event(struct dagi_db_conn *conn, struct dagi_audit_record *r, bool *found,
                      struct dagi_error *err)
{
    struct dagi_db_rows *rows = NULL;
    struct dagi_db_value p[] = {dagi_db_text(r->event_id)};
    int rc = dagi_db_query(conn, "SELECT seq, prev_hash, hash FROM audit_log WHERE event_id = $1",
                           p, 1, &rows, err);
    if (rc)
        return rc;
    rc = dagi_db_rows_next(rows, err);
    if (rc == 1) {
        r->seq = dagi_db_col_int(rows, 0);
        blob_into(rows, 1, r->prev_hash);
        blob_into(rows, 2, r->hash);
        *found = true;
        rc = DAGI_OK;
    } else if (rc == 0) {
        *found = false;
    }
    dagi_db_rows_free(rows);
    return rc;
}

static int last_record(struct dagi_db_conn *conn, int64_t *seq, unsigned char hash[32],
                       struct dagi_error *err)
{
    struct dagi_db_rows *rows = NULL;
    int rc = dagi_db_query(conn, "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", NULL,
                           0, &rows, err);
    if (rc)
        return rc;
    rc = dagi_db_rows_next(rows, err);
    if (rc == 1) {
        *seq = dagi_db_col_int(rows, 0);
        /* a head whose hash was damaged still links: verify names it */
        blob_into(rows, 1, hash);
        rc = DAGI_OK;
    } else if (rc == 0) {
        *seq = 0;
        memcpy(hash, zero_hash, DAGI_AUDIT_HASH_BYTES);
    }
    dagi_db_rows_free(rows);
    return rc;
}

static int insert(struct dagi_db_conn *conn, const struct dagi_audit_record *r,
                  struct dagi_error *err)
{
    struct dagi_db_value p[] = {
        dagi_db_int(r->seq),
        dagi_db_text(r->event_id),
        dagi_db_int(r->time_ms),
        dagi_db_text(r->service),
        dagi_db_text(r->action),
        dagi_db_text(r->actor),
        dagi_db_text(r->subject),
        dagi_db_text(r->decision),
        dagi_db_text(r->trace_id),
        dagi_db_text(r->metadata),
        dagi_db_blob(r->prev_hash, DAGI_AUDIT_HASH_BYTES),
        dagi_db_blob(r->hash, DAGI_AUDIT_HASH_BYTES),
    };
    return dagi_db_exec(conn,
                        "INSERT INTO audit_log (seq, event_id, time_ms, service, action, actor, "
                        "subject, decision, trace_id, metadata, prev_hash, hash) VALUES ($1, $2, "
                        "$3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                        p, sizeof(p) / sizeof(p[0]), NULL, err);
}

static int append_once(struct dagi_db_conn *conn, struct dagi_audit_record *r, bool *duplicate,
                       struct dagi_error *err)
{
    int rc = dagi_db_begin(conn, true, err);
    if (rc)
        return rc;
    if (dagi_db_conn_dialect(conn) == DAGI_DB_POSTGRES)
        rc = dagi_db_exec_script(conn, "LOCK TABLE audit_log IN EXCLUSIVE MODE", err);
    bool found = false;
    if (!rc)
        rc = find_event(conn, r, &found, err);
    if (!rc && !found) {
        int64_t last = 0;
        rc = last_record(conn, &last, r->prev_hash, err);
        if (!rc) {
            r->seq = last + 1;
            dagi_audit_record_hash(r->prev_hash, r, r->hash);
            rc = insert(conn, r, err);
        }
    }
    if (!rc)
        rc = dagi_db_commit(conn, err);
    if (rc)
        dagi_db_rollback(conn);
    else
        *duplicate = found;
    return rc;
}

int dagi_audit_chain_append(struct dagi_db_conn *conn, struct dagi_audit_record *r, bool *duplicate,
                            struct dagi_error *err)
{
    int rc = dagi_audit_record_check(r, err);
    if (rc)
        return rc;
    bool dup = false;
    rc = DAGI_EAGAIN;
    for (int i = 0; i < TX_TRIES && rc == DAGI_EAGAIN; i++)
        rc = append_once(conn, r, &dup, err);
    if (!rc && duplicate)
        *duplicate = dup;
    return rc;
}

/* --- verify --- */

static void broken(struct dagi_audit_verify *v, int64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void broken(struct dagi_audit_verify *v, int64_t seq, const char *fmt, ...)
{
    v->ok = false;
    v->broken_seq = seq;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->reason, sizeof(v->reason), fmt, ap);
    va_end(ap);
}

/* Checks one record against the chain so far; false when it breaks it. */
static bool check_one(struct dagi_audit_verify *v, const struct dagi_audit_record *r, bool decoded)
{
    int64_t want = v->last_seq + 1;
    if (r->seq != want) {
        if (r->seq > want)
            broken(v, want, "record missing (the next record is seq %" PRId64 ")", r->seq);
        else
            broken(v, want, "seq out of order (found seq %" PRId64 ")", r->seq);
        return false;
    }
    if (!decoded) {
        broken(v, r->seq, "a field is longer than the format allows, or a hash is not 32 bytes");
        return false;
    }
    if (sodium_memcmp(r->prev_hash, v->head, DAGI_AUDIT_HASH_BYTES) != 0) {
        broken(v, r->seq, "prev_hash is not the hash of seq %" PRId64, v->last_seq);
        return false;
    }
    unsigned char h[DAGI_AUDIT_HASH_BYTES];
    dagi_audit_record_hash(r->prev_hash, r, h);
    if (sodium_memcmp(h, r->hash, DAGI_AUDIT_HASH_BYTES) != 0) {
        broken(v, r->seq, "the record does not match its hash: changed after it was written");
        return false;
    }
    v->records++;
    v->last_seq = r->seq;
    memcpy(v->head, r->hash, DAGI_AUDIT_HASH_BYTES);
    return true;
}

static int verify_walk(struct dagi_db_conn *conn, struct dagi_audit_verify *v,
                       struct dagi_audit_record *r, struct dagi_error *err)
{
    for (;;) {
        struct dagi_db_rows *rows = NULL;
        struct dagi_db_value p[] = {dagi_db_int(v->last_seq), dagi_db_int(VERIFY_PAGE)};
        int rc = dagi_db_query(conn, AUDIT_SELECT_COLUMNS " WHERE seq > $1 ORDER BY seq LIMIT $2",
                               p, 2, &rows, err);
        if (rc)
            return rc;
        int got = 0, n;
        while ((n = dagi_db_rows_next(rows, err)) == 1) {
            got++;
            bool decoded = audit_row_to_record(rows, r) == DAGI_OK;
            if (!check_one(v, r, decoded)) {
                dagi_db_rows_free(rows);
                return DAGI_OK;
            }
        }
        dagi_db_rows_free(rows);
        if (n < 0)
            return n;
        if (got < VERIFY_PAGE)
            return DAGI_OK;
    }
}

int dagi_audit_chain_verify(struct dagi_db_conn *conn, struct dagi_audit_verify *out,
                            struct dagi_error *err)
{
    struct dagi_audit_verify v = {.ok = true};
    struct dagi_audit_record *r = calloc(1, sizeof(*r));
    if (!r)
        return dagi_error_set(err, DAGI_ENOMEM, "out of memory");
    /* one snapshot: appends meanwhile only add past its end */
    int rc = dagi_db_begin(conn, false, err);
    if (!rc)
        rc = verify_walk(conn, &v, r, err);
    dagi_db_rollback(conn);
    free(r);
    if (!rc)
        *out = v;
    return rc;
}
