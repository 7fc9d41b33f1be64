/* Reading the chain with filters (chain.h): one SELECT whose WHERE holds
 * only the filters given, every value a bound parameter.  The SQL text is
 * one of at most 2^8 shapes, so each engine's statement cache keeps them. */
#include "auditlog/chain.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auditlog/chain_internal.h"
#include "core/buf.h"
#include "store/db.h"

#define MAX_PARAMS 10

struct where {
    struct dagi_buf sql;
    struct dagi_db_value p[MAX_PARAMS];
    size_t n;
};

static void cond(struct where *w, const char *column_op, struct dagi_db_value v)
{
    w->p[w->n++] = v;
    dagi_buf_appendf(&w->sql, "%s %s $%zu", w->n == 1 ? " WHERE" : " AND", column_op, w->n);
}

static void cond_text(struct where *w, const char *column, const char *value)
{
    if (value)
        cond(w, column, dagi_db_text(value));
}

int dagi_audit_chain_query(struct dagi_db_conn *conn, const struct dagi_audit_filter *f,
                           json_t **out, struct dagi_error *err)
{
    size_t limit = f->limit ? f->limit : DAGI_AUDIT_QUERY_DEFAULT;
    if (limit > DAGI_AUDIT_QUERY_MAX)
        limit = DAGI_AUDIT_QUERY_MAX;
    struct where w = {.n = 0};
    dagi_buf_init(&w.sql, 1024);
    dagi_buf_append_str(&w.sql, AUDIT_SELECT_COLUMNS);
    cond_text(&w, "service =", f->service);
    cond_text(&w, "action =", f->action);
    cond_text(&w, "actor =", f->actor);
    cond_text(&w, "subject =", f->subject);
    cond_text(&w, "decision =", f->decision);
    if (f->since_ms)
        cond(&w, "time_ms >=", dagi_db_int(f->since_ms));
    if (f->until_ms)
        cond(&w, "time_ms <", dagi_db_int(f->until_ms));
    if (f->after_seq > 0)
        cond(&w, "seq >", dagi_db_int(f->after_seq));
    /* one more than asked: whether a next page exists */
    w.p[w.n++] = dagi_db_int((int64_t)limit + 1);
    dagi_buf_appendf(&w.sql, " ORDER BY seq LIMIT $%zu", w.n);

    struct dagi_db_rows *rows = NULL;
    struct dagi_audit_record *r = calloc(1, sizeof(*r));
    json_t *records = json_array();
    int64_t last_seq = 0;
    bool more = false;
    int rc = r ? dagi_db_query(conn, dagi_buf_str(&w.sql), w.p, w.n, &rows, err)
               : dagi_error_set(err, DAGI_ENOMEM, "out of memory");
    while (!rc) {
        int got = dagi_db_rows_next(rows, err);
        if (got <= 0) {
            rc = got;
            break;
        }
        if (json_array_size(records) == limit) {
            more = true;
            break;
        }
        json_t *one = NULL;
        if (audit_row_to_record(rows, r) == DAGI_OK)
            one = dagi_audit_record_json(r);
        if (!one) {
            rc = dagi_error_set(err, DAGI_EPARSE,
                                "audit record %lld does not fit the format (changed by hand?); "
                                "run dagi audit verify",
                                (long long)dagi_db_col_int(rows, 0));
            break;
        }
        json_array_append_new(records, one);
        last_seq = r->seq;
    }
    dagi_db_rows_free(rows);
    free(r);
    dagi_buf_release(&w.sql);
    if (rc) {
        json_decref(records);
        return rc;
    }
    *out = json_pack("{s:o,s:o}", "records", records, "next_after_seq",
                     more ? json_integer((json_int_t)last_seq) : json_null());
    return DAGI_OK;
}
