/* The outbox (seed 5.2): an event is written into the `outbox` table in the
 * same transaction as the change it announces, and a relay publishes pending
 * rows to JetStream, so an event is never lost and never announces a change
 * that did not commit.
 *
 * Order.  Events are published in commit order.  SQLite serialises writers,
 * so rowid order is commit order.  PostgreSQL assigns sequence numbers at
 * insert, not at commit, so dagi_outbox_add() first takes a
 * transaction-scoped advisory lock: a second writer waits at its outbox
 * insert until the first commits, and seq order is commit order.  (The
 * alternative - publishing only rows older than the oldest open transaction
 * - keeps writers concurrent but orders by seq, not by commit.)
 *
 * Delivery.  The relay publishes with Nats-Msg-Id = the row id, pipelined,
 * and marks rows published only after their acks; a row whose ack is lost is
 * published again and JetStream's de-duplication drops the copy.  One relay
 * per database at a time holds a lease row; lease time plus the publishes in
 * flight stay well inside the de-duplication window (bus.dedup_window), so a
 * relay that takes over after a crash cannot slip a duplicate past it.
 * Published rows are purged after store.outbox.retention. */
#ifndef DAGI_STORE_OUTBOX_H
#define DAGI_STORE_OUTBOX_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"

struct event_base;
struct dagi_db;
struct dagi_db_conn;
struct dagi_js;
struct dagi_pool;
struct dagi_metrics;
struct dagi_outbox_relay;

struct dagi_outbox_event {
    const char *subject;        /* exactly as docs/NATS_SUBJECTS.md names it */
    const char *type;           /* envelope type, e.g. "message.created" */
    const char *source;         /* "memory@node1" */
    const char *trace_id;       /* NULL = none */
    const char *aggregate_type; /* "message" */
    const char *aggregate_id;
    json_t *data;               /* stolen; ids and metadata only, never content */
};

/* Must run inside the caller's write transaction on `conn`.  Builds the
 * envelope (bus/event.h) and inserts it; id_out (may be NULL) receives the
 * event id, which is also the row id and the Nats-Msg-Id. */
int dagi_outbox_add(struct dagi_db_conn *conn, const struct dagi_outbox_event *ev,
                    char id_out[37], struct dagi_error *err);

struct dagi_outbox_relay_opts {
    struct dagi_db *db;
    struct dagi_js *js;
    struct dagi_pool *pool;
    const char *holder;       /* who holds the lease, e.g. "node1/1234" */
    unsigned batch;           /* rows per fetch (0 = 500) */
    unsigned poll_ms;         /* wait when nothing is pending (0 = 10) */
    unsigned lease_ms;        /* (0 = 10 s) */
    int64_t retention_ms;     /* purge published rows older than this (0 = 1 day) */
    struct dagi_metrics *metrics;
};

/* Starts the relay on the loop of `base`; database work runs on the pool. */
int dagi_outbox_relay_start(struct event_base *base, const struct dagi_outbox_relay_opts *opts,
                            struct dagi_outbox_relay **out, struct dagi_error *err);
/* Stops: no new fetches; waits for nothing (rows in flight stay pending and
 * are published again by the next relay, de-duplicated). */
void dagi_outbox_relay_stop(struct dagi_outbox_relay *relay);
bool dagi_outbox_relay_is_leader(struct dagi_outbox_relay *relay);

#endif
