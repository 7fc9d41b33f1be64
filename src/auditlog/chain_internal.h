/* Shared by chain.c and query.c; not an API. */
#ifndef DAGI_AUDITLOG_CHAIN_INTERNAL_H
#define DAGI_AUDITLOG_CHAIN_INTERNAL_H

#include "auditlog/chain.h"

struct dagi_db_rows;

/* Every column of a record, in the order audit_row_to_record reads them. */
#define AUDIT_SELECT_COLUMNS                                                                       \
    "SELECT seq, event_id, time_ms, service, action, actor, subject, decision, trace_id, "         \
    "metadata, prev_hash, hash FROM audit_log"

/* The current row as a record; DAGI_EPARSE when a field does not fit the
 * format (a row changed by hand): rec holds what fitted. */
int audit_row_to_record(struct dagi_db_rows *rows, struct dagi_audit_record *rec);

#endif
