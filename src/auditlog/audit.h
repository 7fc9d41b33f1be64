/* Audit events (seed 1.3): what every role calls to leave a trace, and the
 * tamper-evident chain the audit role appends them to.
 *
 * A role emits an event with dagi_audit_emit(); it travels over JetStream
 * as audit.{service}.{action} (stream DAGI_AUDIT) and the audit role appends
 * it to the append-only log, hash-chained.  An event carries ids and figures,
 * never content: the metadata is the caller's to keep content-free, and in
 * confidential mode callers pass no text at all.
 *
 * The actor is pseudonymised before it leaves the emitter: a keyed
 * BLAKE2b of the principal ("p_" + 32 hex), so that erasing a user (their
 * rows, their key material) never needs a change to the chain. */
#ifndef DAGI_AUDITLOG_AUDIT_H
#define DAGI_AUDITLOG_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct dagi_node;
struct dagi_db;
struct json_t;

struct dagi_audit_event {
    const char *service;  /* [a-z_]+: "gateway", "router", "registry", "pdp", ... */
    const char *action;   /* [a-z_]+: "auth_failed", "deny", "config_push", ... */
    const char *actor;    /* the principal: "user:alice", "tg:42", "key:k1", "admin"; NULL = "system" */
    const char *subject;  /* what was acted on: "agent:helion", "config:agents/agent_registry.yml" */
    const char *decision; /* "allow", "deny", "ok", "error"; NULL = "ok" */
    const char *trace_id; /* NULL = none */
    const struct json_t *metadata; /* borrowed object or NULL: ids and figures, never content */
};

/* Publishes the event (loop thread).  Without JetStream the event is
 * appended to the node's database directly.  Never fails the caller's work:
 * a publish that cannot be made is logged and counted
 * (audit_emit_failures_total). */
void dagi_audit_emit(struct dagi_node *node, const struct dagi_audit_event *ev);

/* Appends the event to the chain in `db` directly, blocking: for commands
 * that act on the data dir with no node running.  pseudonym_key is the
 * node's audit key (dagi_audit_key_load). */
int dagi_audit_append_direct(struct dagi_db *db, const unsigned char *pseudonym_key,
                             const struct dagi_audit_event *ev, struct dagi_error *err);

#define DAGI_AUDIT_KEY_BYTES 32
/* The pseudonym key: <data_dir>/audit.key, created with mode 0600 on first
 * use. */
int dagi_audit_key_load(const char *data_dir, unsigned char key[DAGI_AUDIT_KEY_BYTES],
                        struct dagi_error *err);
/* "p_" + 32 hex characters; out must hold 35 bytes. */
void dagi_audit_pseudonym(const unsigned char key[DAGI_AUDIT_KEY_BYTES], const char *actor,
                          char out[35]);

#endif
