/* The tamper-evident audit chain (docs/AUDIT.md): the record, its
 * encoding and hash, and the table audit_log that holds it.
 *
 * Every record carries prev_hash (the previous record's hash; 32 zero bytes
 * for seq 1) and
 *
 *   hash = BLAKE2b-256(prev_hash || encode(record))
 *
 * where encode() writes the fields below in this fixed order, each as a
 * 4-byte big-endian length followed by that many bytes (integers as 8-byte
 * big-endian two's complement, so their length is always 8):
 *
 *   "dagi.audit.v1", seq, event_id, time_ms, service, action, actor,
 *   subject, decision, trace_id, metadata
 *
 * The length prefixes make the encoding injective: no two different records
 * encode to the same bytes, however their fields shift bytes between each
 * other.  metadata is hashed as the exact text stored (compact JSON with
 * sorted keys, made once by the emitter or the role), never re-serialised,
 * so verification does not depend on a JSON library's formatting.
 *
 * Append, verify and query block: run them on the worker pool (dagi_db_run)
 * or in a command, never on a loop thread. */
#ifndef DAGI_AUDITLOG_CHAIN_H
#define DAGI_AUDITLOG_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auditlog/audit.h"
#include "core/err.h"

struct dagi_db_conn;
struct dagi_buf;

#define DAGI_AUDIT_HASH_BYTES 32
#define DAGI_AUDIT_PSEUDONYM_LEN 34 /* "p_" + 32 hex */

/* Caps (bytes, without the NUL); an event over one is malformed. */
#define DAGI_AUDIT_NAME_MAX 64 /* service, action */
#define DAGI_AUDIT_ACTOR_MAX 256
#define DAGI_AUDIT_SUBJECT_MAX 512
#define DAGI_AUDIT_DECISION_MAX 32
#define DAGI_AUDIT_TRACE_MAX 128
#define DAGI_AUDIT_METADATA_MAX 8192 /* the compact JSON text */
/* The most encode() ever writes: every field at its cap plus the prefixes. */
#define DAGI_AUDIT_ENCODED_MAX 10240

/* One record; owns its text (fixed arrays, so a record is one allocation
 * that can travel between threads). */
struct dagi_audit_record {
    int64_t seq; /* set by append */
    char event_id[37];
    int64_t time_ms;
    char service[DAGI_AUDIT_NAME_MAX + 1];
    char action[DAGI_AUDIT_NAME_MAX + 1];
    char actor[DAGI_AUDIT_ACTOR_MAX + 1]; /* a pseudonym, "system" or "anonymous" */
    char subject[DAGI_AUDIT_SUBJECT_MAX + 1];
    char decision[DAGI_AUDIT_DECISION_MAX + 1];
    char trace_id[DAGI_AUDIT_TRACE_MAX + 1];
    char metadata[DAGI_AUDIT_METADATA_MAX + 1];     /* a JSON object, "{}" when none */
    unsigned char prev_hash[DAGI_AUDIT_HASH_BYTES]; /* set by append */
    unsigned char hash[DAGI_AUDIT_HASH_BYTES];      /* set by append */
};

/* --- the record --- */

/* Fills a record from an event as the emitter sees it: the actor
 * pseudonymised with key, metadata made canonical, a new event id and the
 * business clock's time.  DAGI_EINVAL (err says which field) when a field
 * is out of shape or over its cap. */
int dagi_audit_record_from_event(struct dagi_audit_record *rec, const unsigned char *key,
                                 const struct dagi_audit_event *ev, struct dagi_error *err);
/* Checks the shape of every field (the append does too). */
int dagi_audit_record_check(const struct dagi_audit_record *rec, struct dagi_error *err);
/* encode() as above, appended to out (cap it at DAGI_AUDIT_ENCODED_MAX or more). */
int dagi_audit_record_encode(const struct dagi_audit_record *rec, struct dagi_buf *out);
/* BLAKE2b-256(prev || encode(rec)). */
void dagi_audit_record_hash(const unsigned char prev[DAGI_AUDIT_HASH_BYTES],
                            const struct dagi_audit_record *rec,
                            unsigned char out[DAGI_AUDIT_HASH_BYTES]);
/* The record as the API shows it (hashes in hex, metadata as an object). */
struct json_t *dagi_audit_record_json(const struct dagi_audit_record *rec);

/* --- the wire: audit.{service}.{action} on DAGI_AUDIT --- */

/* The envelope's data for a record: {service, action, actor, subject,
 * decision, metadata}; the envelope carries id, time and trace_id. */
struct json_t *dagi_audit_event_data(const struct dagi_audit_record *rec);
/* The whole envelope for rec (its event_id, time and trace_id), compact
 * JSON text; the caller frees.  source: "{service}@{node}". */
char *dagi_audit_event_build(const struct dagi_audit_record *rec, const char *source);
/* Parses an audit envelope (event.h) into rec (seq and hashes zero).
 * subject, when not NULL, must be audit.{service}.{action} of the event.
 * DAGI_EPARSE with *why (static text, never the event's content) when it
 * is malformed. */
int dagi_audit_event_decode(const char *text, size_t len, const char *subject,
                            struct dagi_audit_record *rec, const char **why);

/* --- the table audit_log --- */

/* Appends rec in one write transaction: reads the last record, links to its
 * hash, takes the next seq, inserts.  Concurrent appenders are serialised
 * (SQLite: the write lock; PostgreSQL: LOCK TABLE ... EXCLUSIVE before the
 * transaction's snapshot), so two appenders never fork the chain; a
 * serialization failure is retried.  An event id already stored is a no-op
 * success: *duplicate = true and rec gets the stored seq and hashes. */
int dagi_audit_chain_append(struct dagi_db_conn *conn, struct dagi_audit_record *rec,
                            bool *duplicate, struct dagi_error *err);

struct dagi_audit_verify {
    bool ok;
    int64_t records;                           /* records checked */
    int64_t last_seq;                          /* of the last good record */
    unsigned char head[DAGI_AUDIT_HASH_BYTES]; /* its hash (zero for an empty chain) */
    int64_t broken_seq; /* the first bad record (or the first missing seq); 0 when ok */
    char reason[200];   /* why, when !ok */
};

/* Walks the chain from seq 1 in one read transaction, recomputing every
 * hash; stops at the first record whose hash or prev_hash is wrong, or at
 * the first seq missing.  Returns 0 whenever the walk could be made (ok or
 * not: see out->ok); an error only when the database failed. */
int dagi_audit_chain_verify(struct dagi_db_conn *conn, struct dagi_audit_verify *out,
                            struct dagi_error *err);

#define DAGI_AUDIT_QUERY_DEFAULT 100
#define DAGI_AUDIT_QUERY_MAX 1000

struct dagi_audit_filter {
    const char *service, *action, *actor, *subject, *decision; /* NULL = any; exact */
    int64_t since_ms;  /* time_ms >= since_ms; 0 = no bound */
    int64_t until_ms;  /* time_ms < until_ms; 0 = no bound */
    int64_t after_seq; /* seq > after_seq */
    size_t limit;      /* 0 = DAGI_AUDIT_QUERY_DEFAULT; capped at DAGI_AUDIT_QUERY_MAX */
};

/* Records matching every filter, ascending by seq: *out is
 * {"records": [...], "next_after_seq": N | null} (null when no more may
 * match; a new reference). */
int dagi_audit_chain_query(struct dagi_db_conn *conn, const struct dagi_audit_filter *f,
                           struct json_t **out, struct dagi_error *err);

/* The actor column value a filter names: a pseudonym ("p_" + 32 hex),
 * "system" and "anonymous" as given, a principal pseudonymised with key. */
void dagi_audit_actor_filter(const unsigned char key[DAGI_AUDIT_KEY_BYTES], const char *actor,
                             char out[DAGI_AUDIT_ACTOR_MAX + 1]);

#endif
