/* The outbox relay (outbox.h).  It lives on the loop; every database step is
 * a job on the worker pool (dagi_db_run) and every publish is an async
 * JetStream publish whose ack comes back to the loop.
 *
 *   fetch  (pool)  renew the lease; read pending rows after the last one sent
 *   publish(loop)  publish each row in order, Nats-Msg-Id = row id
 *   mark   (pool)  when a batch's acks are all in: mark the acked prefix
 *
 * Up to MAX_BATCHES batches are in flight, so the next fetch overlaps the
 * previous batch's acks and JetStream's pipeline stays full.  A failed ack
 * stops publishing; once everything in flight has answered, the relay marks
 * what is contiguous, backs off and fetches again from the first unmarked row
 * (its copies of later rows are dropped by de-duplication). */
#include "outbox.h"

#include "bus/event.h"
#include "bus/js.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "store/db.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BATCHES 2
#define PURGE_EVERY_MS 60000
#define PG_OUTBOX_LOCK_KEY 0x6461676f75746278LL /* "dagoutbx" */

/* --- writing --- */

int dagi_outbox_add(struct dagi_db_conn *conn, const struct dagi_outbox_event *ev,
                    char id_out[37], struct dagi_error *err)
{
    char id[37];
    char *envelope = dagi_event_build(ev->type, ev->source, ev->trace_id, ev->data, id);
    char *headers = NULL;
    int rc;
    if (ev->trace_id && *ev->trace_id) {
        json_t *h = json_pack("{s:s}", "Dagi-Trace-Id", ev->trace_id);
        headers = json_dumps(h, JSON_COMPACT);
        json_decref(h);
    }
    if (dagi_db_conn_dialect(conn) == DAGI_DB_POSTGRES) {
        /* Serialise outbox inserts until commit: seq order = commit order. */
        struct dagi_db_value key = dagi_db_int(PG_OUTBOX_LOCK_KEY);
        rc = dagi_db_exec(conn, "SELECT pg_advisory_xact_lock($1)", &key, 1, NULL, err);
        if (rc)
            goto out;
    }
    struct dagi_db_value params[] = {
        dagi_db_text(id),
        dagi_db_text(ev->aggregate_type),
        dagi_db_text(ev->aggregate_id),
        dagi_db_text(ev->type),
        dagi_db_text(ev->subject),
        headers ? dagi_db_text(headers) : dagi_db_null(),
        dagi_db_text(envelope),
        dagi_db_int(dagi_clock_now_ms()),
    };
    rc = dagi_db_exec(conn,
                      "INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, subject,"
                      " headers, payload, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                      params, DAGI_ARRAY_LEN(params), NULL, err);
    if (!rc && id_out)
        memcpy(id_out, id, sizeof(id));
out:
    free(envelope);
    free(headers);
    return rc;
}

/* --- the relay --- */

struct batch;

struct row {
    struct batch *batch;
    int64_t seq;
    char *id, *subject, *payload;
    int err; /* the ack's result */
    bool acked;
};

struct batch {
    struct dagi_outbox_relay *relay;
    struct row *rows;
    size_t count, answered;
    bool full; /* as many rows as asked for: more may be waiting */
};

struct dagi_outbox_relay {
    struct dagi_outbox_relay_opts o;
    char *holder;
    struct event *timer;
    struct batch *inflight[MAX_BATCHES]; /* publish order */
    size_t inflight_count;
    bool fetching, marking, stopping, leader, failed;
    int64_t last_sent; /* highest seq handed to JetStream */
    int64_t last_marked;
    int64_t next_purge_ms;
    int64_t backoff_ms;
    struct dagi_metric *published, *lag, *leader_gauge;
};

static void schedule(struct dagi_outbox_relay *r, int64_t ms);
static void maybe_fetch(struct dagi_outbox_relay *r);
static void maybe_release(struct dagi_outbox_relay *r);
static void retire_batches(struct dagi_outbox_relay *r);

static void batch_free(struct batch *b)
{
    for (size_t i = 0; i < b->count; i++) {
        free(b->rows[i].id);
        free(b->rows[i].subject);
        free(b->rows[i].payload);
    }
    free(b->rows);
    free(b);
}

/* Job: take or renew the lease, then read the next rows. */
struct fetch_job {
    struct dagi_outbox_relay *relay;
    struct batch *batch;
    int64_t after;
    bool leader;
    bool purge;
};

static int on_fetch_work(struct dagi_db_conn *conn, void *ud, struct dagi_error *err)
{
    struct fetch_job *job = ud;
    struct dagi_outbox_relay *r = job->relay;
    int64_t now = dagi_clock_now_ms(), affected = 0;
    struct dagi_db_value lease[] = {dagi_db_text(r->holder), dagi_db_int(now + r->o.lease_ms),
                                    dagi_db_int(now)};
    /* One statement: insert the lease, or take it over if it is ours or has
     * expired.  Zero rows affected = someone else holds it. */
    int rc = dagi_db_exec(conn,
                          "INSERT INTO outbox_lease (name, holder, expires_at)"
                          " VALUES ('relay', $1, $2)"
                          " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
                          " expires_at = excluded.expires_at"
                          " WHERE outbox_lease.holder = $1 OR outbox_lease.expires_at < $3",
                          lease, 3, &affected, err);
    if (rc)
        return rc;
    job->leader = affected > 0;
    if (!job->leader)
        return DAGI_OK;
    if (job->purge) {
        struct dagi_db_value cutoff = dagi_db_int(now - r->o.retention_ms);
        rc = dagi_db_exec(conn,
                          "DELETE FROM outbox WHERE status = 'published' AND published_at < $1",
                          &cutoff, 1, NULL, err);
        if (rc)
            return rc;
    }
    struct dagi_db_value params[] = {dagi_db_int(job->after), dagi_db_int(r->o.batch)};
    struct dagi_db_rows *rows;
    rc = dagi_db_query(conn,
                       "SELECT seq, id, subject, payload FROM outbox"
                       " WHERE status = 'pending' AND seq > $1 ORDER BY seq LIMIT $2",
                       params, 2, &rows, err);
    if (rc)
        return rc;
    struct batch *b = dagi_xcalloc(1, sizeof(*b));
    b->relay = r;
    b->rows = dagi_xcalloc(r->o.batch, sizeof(struct row));
    while ((rc = dagi_db_rows_next(rows, err)) == 1) {
        struct row *row = &b->rows[b->count++];
        row->batch = b;
        row->seq = dagi_db_col_int(rows, 0);
        row->id = dagi_xstrdup(dagi_db_col_text(rows, 1, NULL));
        row->subject = dagi_xstrdup(dagi_db_col_text(rows, 2, NULL));
        row->payload = dagi_xstrdup(dagi_db_col_text(rows, 3, NULL));
    }
    dagi_db_rows_free(rows);
    if (rc < 0) {
        batch_free(b);
        return rc;
    }
    b->full = b->count == r->o.batch;
    job->batch = b;
    return DAGI_OK;
}

static void on_acked(void *ud, int err, uint64_t seq, bool duplicate);

static void publish_batch(struct dagi_outbox_relay *r, struct batch *b)
{
    r->inflight[r->inflight_count++] = b;
    for (size_t i = 0; i < b->count; i++) {
        struct row *row = &b->rows[i];
        int rc = dagi_js_publish(r->o.js, row->subject, row->payload, strlen(row->payload),
                                 row->id, NULL, 0, on_acked, row);
        if (rc) {
            /* Never queued: this row and the rest of the batch count as failed. */
            for (size_t j = i; j < b->count; j++)
                b->rows[j].err = rc;
            b->answered += b->count - i;
            r->failed = true;
            break;
        }
        r->last_sent = row->seq;
    }
}

static void on_fetch_done(void *ud, int rc, const struct dagi_error *err)
{
    struct fetch_job *job = ud;
    struct dagi_outbox_relay *r = job->relay;
    r->fetching = false;
    if (r->stopping) {
        if (job->batch)
            batch_free(job->batch);
        free(job);
        maybe_release(r);
        return;
    }
    bool was_leader = r->leader;
    if (rc) {
        dagi_log_warn(NULL, "outbox fetch failed", "error", err ? err->message : dagi_strerror(rc));
        free(job);
        schedule(r, 500);
        return;
    }
    r->leader = job->leader;
    dagi_metric_set(r->leader_gauge, NULL, r->leader ? 1 : 0);
    if (r->leader != was_leader)
        dagi_log_info(NULL, r->leader ? "outbox relay: leader" : "outbox relay: standing by",
                      "holder", r->holder);
    struct batch *b = job->batch;
    free(job);
    if (r->stopping || !r->leader) {
        if (b)
            batch_free(b);
        if (!r->stopping)
            schedule(r, r->o.lease_ms / 3);
        return;
    }
    if (r->failed) { /* a publish failed meanwhile: these rows are fetched again */
        batch_free(b);
        retire_batches(r);
        return;
    }
    if (b->count == 0) {
        batch_free(b);
        if (r->inflight_count == 0)
            schedule(r, r->o.poll_ms);
        return;
    }
    bool full = b->full;
    publish_batch(r, b);
    retire_batches(r); /* a batch that could not be queued at all is complete already */
    if (full)
        maybe_fetch(r);
}

/* Job: mark the acked prefix published. */
struct mark_job {
    struct dagi_outbox_relay *relay;
    int64_t upto;
    size_t rows;
};

static int on_mark_work(struct dagi_db_conn *conn, void *ud, struct dagi_error *err)
{
    struct mark_job *job = ud;
    struct dagi_db_value params[] = {dagi_db_int(dagi_clock_now_ms()), dagi_db_int(job->upto)};
    return dagi_db_exec(conn,
                        "UPDATE outbox SET status = 'published', published_at = $1"
                        " WHERE seq <= $2 AND status = 'pending'",
                        params, 2, NULL, err);
}

static void on_mark_done(void *ud, int rc, const struct dagi_error *err)
{
    struct mark_job *job = ud;
    struct dagi_outbox_relay *r = job->relay;
    r->marking = false;
    if (rc) {
        /* Harmless: the rows stay pending and are published again (deduplicated). */
        dagi_log_warn(NULL, "outbox mark failed", "error", err ? err->message : "");
    } else {
        r->last_marked = job->upto;
        dagi_metric_add(r->published, NULL, (double)job->rows);
    }
    free(job);
    retire_batches(r);
    if (r->stopping)
        maybe_release(r);
    else
        maybe_fetch(r);
}

/* The oldest batch is complete: mark its acked prefix, and on a failure
 * rewind to the first row that was not acked. */
static void retire_batches(struct dagi_outbox_relay *r)
{
    while (r->inflight_count && !r->marking) {
        struct batch *b = r->inflight[0];
        if (b->answered < b->count)
            return;
        if (r->stopping) { /* the rows stay pending for the next relay */
            memmove(r->inflight, r->inflight + 1, (--r->inflight_count) * sizeof(r->inflight[0]));
            batch_free(b);
            continue;
        }
        size_t ok = 0;
        while (ok < b->count && b->rows[ok].acked)
            ok++;
        if (ok < b->count)
            r->failed = true;
        int64_t upto = ok ? b->rows[ok - 1].seq : 0;
        memmove(r->inflight, r->inflight + 1, (--r->inflight_count) * sizeof(r->inflight[0]));
        if (ok < b->count) {
            dagi_log_warn(NULL, "outbox publish failed; will retry", "error",
                          dagi_strerror(b->rows[ok].err));
        }
        batch_free(b);
        if (upto) {
            struct mark_job *job = dagi_xcalloc(1, sizeof(*job));
            job->relay = r;
            job->upto = upto;
            job->rows = ok;
            r->marking = true;
            if (dagi_db_run(r->o.db, r->o.pool, on_mark_work, on_mark_done, job)) {
                r->marking = false;
                free(job);
            }
        }
    }
    if (r->inflight_count == 0 && r->failed && !r->marking) {
        /* Everything has answered: start again after the last marked row. */
        r->failed = false;
        r->last_sent = r->last_marked;
        r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : 100;
        if (r->backoff_ms > 5000)
            r->backoff_ms = 5000;
        schedule(r, r->backoff_ms);
    }
}

static void on_acked(void *ud, int err, uint64_t seq, bool duplicate)
{
    (void)seq, (void)duplicate;
    struct row *row = ud;
    struct batch *b = row->batch;
    struct dagi_outbox_relay *r = b->relay;
    row->err = err;
    row->acked = err == 0;
    b->answered++;
    if (err)
        r->failed = true;
    else
        r->backoff_ms = 0;
    retire_batches(r);
    maybe_release(r);
}

static void schedule(struct dagi_outbox_relay *r, int64_t ms)
{
    if (r->stopping)
        return;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(r->timer, &tv);
}

static void maybe_fetch(struct dagi_outbox_relay *r)
{
    if (r->stopping || r->fetching || r->failed || r->inflight_count >= MAX_BATCHES)
        return;
    struct fetch_job *job = dagi_xcalloc(1, sizeof(*job));
    job->relay = r;
    job->after = r->last_sent;
    int64_t now = dagi_clock_now_ms();
    if (now >= r->next_purge_ms) {
        job->purge = true;
        r->next_purge_ms = now + PURGE_EVERY_MS;
    }
    r->fetching = true;
    if (dagi_db_run(r->o.db, r->o.pool, on_fetch_work, on_fetch_done, job)) {
        r->fetching = false;
        free(job);
        schedule(r, 100); /* pool full: try again shortly */
    }
}

static void on_timer(evutil_socket_t fd, short what, void *ud)
{
    (void)fd, (void)what;
    maybe_fetch(ud);
}

int dagi_outbox_relay_start(struct event_base *base, const struct dagi_outbox_relay_opts *opts,
                            struct dagi_outbox_relay **out, struct dagi_error *err)
{
    if (!opts->db || !opts->js || !opts->pool || !opts->holder)
        return dagi_error_set(err, DAGI_EINVAL, "outbox relay: db, js, pool and holder are required");
    struct dagi_outbox_relay *r = dagi_xcalloc(1, sizeof(*r));
    r->o = *opts;
    if (!r->o.batch)
        r->o.batch = 500;
    if (!r->o.poll_ms)
        r->o.poll_ms = 10;
    if (!r->o.lease_ms)
        r->o.lease_ms = 10000;
    if (!r->o.retention_ms)
        r->o.retention_ms = 24LL * 3600 * 1000;
    r->holder = dagi_xstrdup(opts->holder);
    r->o.holder = r->holder;
    r->timer = evtimer_new(base, on_timer, r);
    struct dagi_metrics *m = opts->metrics ? opts->metrics : dagi_metrics_default();
    r->published = dagi_metrics_counter(m, "dagi_outbox_published_total",
                                        "Outbox rows published to JetStream and marked", NULL);
    r->leader_gauge = dagi_metrics_gauge(m, "dagi_outbox_relay_leader",
                                         "1 while this process holds the outbox relay lease", NULL);
    schedule(r, 0);
    *out = r;
    return DAGI_OK;
}

/* Frees the relay once nothing of it is in flight any more: every pool job
 * and every publish answers exactly once (cancelled ones too). */
static void maybe_release(struct dagi_outbox_relay *r)
{
    if (!r->stopping || r->fetching || r->marking || r->inflight_count)
        return;
    event_free(r->timer);
    free(r->holder);
    free(r);
}

void dagi_outbox_relay_stop(struct dagi_outbox_relay *r)
{
    if (!r)
        return;
    r->stopping = true;
    evtimer_del(r->timer);
    /* Batches whose acks are all in but not yet retired go now. */
    for (size_t i = 0; i < r->inflight_count;) {
        if (r->inflight[i]->answered == r->inflight[i]->count) {
            batch_free(r->inflight[i]);
            memmove(r->inflight + i, r->inflight + i + 1,
                    (--r->inflight_count - i) * sizeof(r->inflight[0]));
        } else {
            i++;
        }
    }
    maybe_release(r);
}

bool dagi_outbox_relay_is_leader(struct dagi_outbox_relay *r)
{
    return r->leader;
}
