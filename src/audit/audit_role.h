/* The audit role (seed 1.3; docs/AUDIT.md): consumes audit.> from the
 * DAGI_AUDIT stream and appends every event to the tamper-evident chain
 * (src/auditlog/chain.h) in the node's database.
 *
 * JetStream: the durable pull consumer "audit" (filter audit.>); an event is
 * acked after its append committed, so a crash in between redelivers it
 * and the append of an event id already stored is a no-op.  A malformed
 * event is failed with its reason until the consumer dead-letters it:
 * never dropped without a trace.
 *
 * HTTP:
 *   GET /v1/audit          records, filtered by the query parameters
 *                          service, action, actor (a pseudonym or a
 *                          principal, which is pseudonymised), subject,
 *                          decision, since / until (Unix ms), after_seq,
 *                          limit (1-1000, default 100).  The admin key or a
 *                          caller with the role "auditor".
 *   GET /v1/audit/verify   the chain checked from seq 1 (admin). */
#ifndef DAGI_AUDIT_ROLE_H
#define DAGI_AUDIT_ROLE_H

#include "node/node.h"

extern const struct dagi_role dagi_role_audit;

#endif
