/* How often one source may leave the same kind of audit record: the gate
 * records auth failures, and an attacker must not be able to flood the
 * chain with them.  At most one record per key (an IP) per second, and at
 * most `total_per_second` records altogether; the caller counts the rest.
 *
 * A small fixed table (memory does not grow with the number of sources):
 * keys are hashed with a random key into slots, and two keys that share a
 * slot within one second can each pass once - the total cap still holds.
 * Loop thread only. */
#ifndef DAGI_AUDITLOG_THROTTLE_H
#define DAGI_AUDITLOG_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

struct dagi_audit_throttle;

/* total_per_second 0 = 50. */
struct dagi_audit_throttle *dagi_audit_throttle_new(unsigned total_per_second);
void dagi_audit_throttle_free(struct dagi_audit_throttle *t);
/* true: record it (and it is counted against key's second). */
bool dagi_audit_throttle_allow(struct dagi_audit_throttle *t, const char *key, int64_t now_ms);

#endif
