/* Quota counters in the relational store (quota_store.h), tables
 * quota_counters and quota_holds (migration 0006_quota), on SQLite and
 * PostgreSQL alike.
 *
 * A reserve reads every counter that applies and the tokens its live holds
 * hold, decides, and then - only if every budget admits the request -
 * writes each counter and one hold row per counter; a refusal writes only
 * its quota.blocked event.  All of it is one write transaction, so it is
 * atomic, and two reserves on one counter are serialised:
 *
 *   SQLite      BEGIN IMMEDIATE: one writer per database at a time.
 *   PostgreSQL  SERIALIZABLE would also be correct on its own, but every
 *               concurrent writer of a hot counter (a team's, an agent's)
 *               would fail with a serialization error and retry, and under
 *               fifty of them the retries never settle.  So a writer first
 *               takes a session advisory lock per counter (keys sorted, so
 *               two writers never wait on each other crosswise) and only
 *               then begins: its snapshot then already sees the previous
 *               writer's commit, and a hot counter becomes a queue.  The
 *               locks are dropped with pg_advisory_unlock_all() after the
 *               transaction, before the connection goes back to the pool.
 *               Session locks die with their connection, so a crash cannot
 *               leave one behind.
 *
 * A settle or release knows its counters from the reservation handle (and
 * takes the same locks); it deletes the reservation's holds first, and a
 * delete that finds none means the reservation is gone (DAGI_ENOENT).
 *
 * Rows the database returns belong to the connection until the next call,
 * so every value read is copied out before the next statement. */
#include "quota/quota_store.h"

#include "bus/event.h"
#include "core/mem.h"
#include "store/db.h"
#include "store/outbox.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WRITE_TRIES 8

struct db_store {
    struct dagi_db *db;
    char *source;
    int64_t hold_ttl_ms;
};

/* One budget that applies to a request, as a reserve works on it. */
struct applied {
    const struct dagi_quota_budget *budget;
    const char *subject_id;
    int64_t ws, we; /* the current window */
    /* read inside the transaction */
    bool had_row, same_window;
    int64_t row_ws;
    int64_t requests, used, held;
};

/* ---- opening ---- */

static int db_open(const struct dagi_quota_store_opts *opts, void **state, struct dagi_error *err)
{
    if (!opts || !opts->db)
        return dagi_error_set(err, DAGI_EINVAL, "the quota store needs a database");
    if (opts->hold_ttl_ms < 0)
        return dagi_error_set(err, DAGI_EINVAL, "hold_ttl_ms must not be negative");
    struct db_store *st = dagi_xcalloc(1, sizeof(*st));
    st->db = opts->db;
    st->source = dagi_xstrdup(opts->source && *opts->source ? opts->source : "quota");
    st->hold_ttl_ms = opts->hold_ttl_ms ? opts->hold_ttl_ms : DAGI_QUOTA_HOLD_TTL_MS;
    *state = st;
    return DAGI_OK;
}

static void db_close(void *state)
{
    struct db_store *st = state;
    if (!st)
        return;
    free(st->source);
    free(st);
}

/* ---- transactions and locks ---- */

static int64_t lock_key(const char *budget_id, int per, const char *subject_id)
{
    unsigned char h[crypto_generichash_BYTES_MIN];
    unsigned char p = (unsigned char)per;
    crypto_generichash_state s;
    crypto_generichash_init(&s, NULL, 0, sizeof(h));
    crypto_generichash_update(&s, (const unsigned char *)"dagi-quota", 11);
    crypto_generichash_update(&s, (const unsigned char *)budget_id, strlen(budget_id) + 1);
    crypto_generichash_update(&s, &p, 1);
    crypto_generichash_update(&s, (const unsigned char *)subject_id, strlen(subject_id));
    crypto_generichash_final(&s, h, sizeof(h));
    int64_t k;
    memcpy(&k, h, sizeof(k));
    return k;
}

static int cmp_key(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int lock_counters(struct dagi_db_conn *conn, int64_t *keys, size_t n, struct dagi_error *err)
{
    qsort(keys, n, sizeof(*keys), cmp_key);
    for (size_t i = 0; i < n; i++) {
        if (i && keys[i] == keys[i - 1])
            continue;
        struct dagi_db_value p[] = {dagi_db_int(keys[i])};
        int rc = dagi_db_exec(conn, "SELECT pg_advisory_lock($1)", p, 1, NULL, err);
        if (rc)
            return rc;
    }
    return DAGI_OK;
}

/* Runs fn in a write transaction, again on DAGI_EAGAIN after a short
 * randomised pause; on PostgreSQL under the counters' locks (above). */
static int write_tx(struct dagi_db_conn *conn, int64_t *keys, size_t nkeys,
                    int (*fn)(struct dagi_db_conn *conn, void *ud, struct dagi_error *err),
                    void *ud, struct dagi_error *err)
{
    bool pg = dagi_db_conn_dialect(conn) == DAGI_DB_POSTGRES;
    int rc = pg && nkeys ? lock_counters(conn, keys, nkeys, err) : DAGI_OK;
    for (int attempt = 1; rc == DAGI_OK; attempt++) {
        rc = dagi_db_begin(conn, true, err);
        if (rc == DAGI_OK)
            rc = fn(conn, ud, err);
        if (rc == DAGI_OK)
            rc = dagi_db_commit(conn, err); /* a failed commit ends the transaction */
        else
            dagi_db_rollback(conn);
        if (rc != DAGI_EAGAIN || attempt >= WRITE_TRIES)
            break;
        long pause_us =
            (long)(500u << (attempt < 6 ? attempt : 6)) + (long)randombytes_uniform(1000);
        struct timespec ts = {0, pause_us * 1000L};
        nanosleep(&ts, NULL);
        rc = DAGI_OK;
    }
    if (pg && nkeys)
        dagi_db_exec(conn, "SELECT pg_advisory_unlock_all()", NULL, 0, NULL, NULL);
    return rc;
}

/* ---- events ---- */

static json_t *or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

static json_t *or_null_limit(int64_t limit)
{
    return limit ? json_integer((json_int_t)limit) : json_null();
}

/* Writes one event; `id` is the subject's last token before encoding.
 * data is stolen. */
static int add_event(struct dagi_db_conn *conn, const struct db_store *st, const char *type,
                     const char *id, const char *trace_id, const char *aggregate_id, json_t *data,
                     struct dagi_error *err)
{
    char token[DAGI_QUOTA_TOKEN_MAX];
    char subject[DAGI_QUOTA_TOKEN_MAX + 32];
    if (dagi_quota_subject_token(id, token, sizeof(token)) < 0) {
        json_decref(data);
        return dagi_error_set(err, DAGI_EINVAL, "no subject token for a %s event", type);
    }
    snprintf(subject, sizeof(subject), "%s.%s", type, token);
    struct dagi_outbox_event ev = {
        .subject = subject,
        .type = type,
        .source = st->source,
        .trace_id = trace_id && *trace_id ? trace_id : NULL,
        .aggregate_type = "quota",
        .aggregate_id = aggregate_id,
        .data = data,
    };
    return dagi_outbox_add(conn, &ev, NULL, err);
}

static int add_reset_event(struct dagi_db_conn *conn, const struct db_store *st,
                           const struct dagi_quota_budget *b, const char *subject_id, int64_t ws,
                           int64_t we, int64_t previous_ws, const char *by, const char *user,
                           const char *trace_id, struct dagi_error *err)
{
    char reset_at[32];
    dagi_quota_format_time(we, reset_at);
    json_t *data =
        json_pack("{s:o,s:s,s:s,s:s,s:s,s:I,s:I,s:s,s:o,s:s}", "user_id", or_null(user), "budget",
                  b->id, "per", dagi_quota_per_name(b->per), "subject_id", subject_id, "window",
                  dagi_quota_window_name(b->window), "window_start_ms", (json_int_t)ws,
                  "reset_at_ms", (json_int_t)we, "reset_at", reset_at, "previous_window_start_ms",
                  previous_ws ? json_integer((json_int_t)previous_ws) : json_null(), "by", by);
    return add_event(conn, st, "quota.reset", subject_id, trace_id, b->id, data, err);
}

/* ---- reserve ---- */

struct reserve_job {
    struct db_store *st;
    const struct dagi_quota_subject *s;
    int64_t max_tokens, now_ms;
    struct applied *a;
    size_t n;
    struct dagi_quota_reservation *r;
    struct dagi_quota_block *block;
    bool blocked;
};

/* One statement per counter: its row and what its live holds hold.  No
 * row means no holds either - a hold is only ever written together with
 * its counter, and counters are never deleted. */
static int read_counter(struct dagi_db_conn *conn, struct applied *a, int64_t now_ms,
                        struct dagi_error *err)
{
    const char *per = dagi_quota_per_name(a->budget->per);
    struct dagi_db_value key[] = {dagi_db_text(a->budget->id), dagi_db_text(per),
                                  dagi_db_text(a->subject_id), dagi_db_int(a->ws),
                                  dagi_db_int(now_ms)};
    struct dagi_db_rows *rows = NULL;
    int rc = dagi_db_query(conn,
                           "SELECT c.window_start_ms, c.window_end_ms, c.requests, c.tokens_used,"
                           " (SELECT COALESCE(SUM(h.tokens), 0) FROM quota_holds h"
                           "  WHERE h.budget_id = $1 AND h.per = $2 AND h.subject_id = $3"
                           "  AND h.window_start_ms = $4 AND h.expires_at_ms > $5)"
                           " FROM quota_counters c WHERE c.budget_id = $1 AND c.per = $2"
                           " AND c.subject_id = $3",
                           key, DAGI_ARRAY_LEN(key), &rows, err);
    if (rc)
        return rc;
    a->had_row = a->same_window = false;
    a->row_ws = a->requests = a->used = a->held = 0;
    rc = dagi_db_rows_next(rows, err);
    if (rc == 1) {
        a->had_row = true;
        a->row_ws = dagi_db_col_int(rows, 0);
        /* The end too: a budget whose window kind changed may share a start. */
        a->same_window = a->row_ws == a->ws && dagi_db_col_int(rows, 1) == a->we;
        if (a->same_window) {
            a->requests = dagi_db_col_int(rows, 2);
            a->used = dagi_db_col_int(rows, 3);
        }
        a->held = dagi_db_col_int(rows, 4);
    }
    dagi_db_rows_free(rows);
    return rc < 0 ? rc : DAGI_OK;
}

/* Fills b and returns true when a refuses the request. */
static bool refuses(const struct applied *a, int64_t max_tokens, struct dagi_quota_block *b)
{
    const struct dagi_quota_budget *bud = a->budget;
    bool by_requests = bud->requests && a->requests + 1 > bud->requests;
    bool by_tokens = bud->tokens && a->used + a->held + max_tokens > bud->tokens;
    if (!by_requests && !by_tokens)
        return false;
    memset(b, 0, sizeof(*b));
    snprintf(b->budget_id, sizeof(b->budget_id), "%s", bud->id);
    snprintf(b->subject_id, sizeof(b->subject_id), "%s", a->subject_id);
    b->per = bud->per;
    b->window = bud->window;
    b->tokens = !by_requests;
    b->limit = by_requests ? bud->requests : bud->tokens;
    b->used = by_requests ? a->requests : a->used;
    b->held = a->held;
    b->requested = max_tokens;
    b->window_start_ms = a->ws;
    b->reset_at_ms = a->we;
    return true;
}

static int add_blocked_event(struct dagi_db_conn *conn, const struct reserve_job *job,
                             struct dagi_error *err)
{
    const struct dagi_quota_block *b = job->block;
    char reset_at[32];
    dagi_quota_format_time(b->reset_at_ms, reset_at);
    json_t *data = json_pack(
        "{s:s,s:o,s:o,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:s}", "user_id", job->s->user,
        "team_id", or_null(job->s->team), "agent_id", or_null(job->s->agent), "budget",
        b->budget_id, "per", dagi_quota_per_name(b->per), "subject_id", b->subject_id, "window",
        dagi_quota_window_name(b->window), "kind", b->tokens ? "tokens" : "requests", "limit",
        (json_int_t)b->limit, "used", (json_int_t)b->used, "held", (json_int_t)b->held, "requested",
        (json_int_t)b->requested, "window_start_ms", (json_int_t)b->window_start_ms, "reset_at_ms",
        (json_int_t)b->reset_at_ms, "reset_at", reset_at);
    return add_event(conn, job->st, "quota.blocked", job->s->user, job->s->trace_id, b->budget_id,
                     data, err);
}

static int write_counter(struct dagi_db_conn *conn, const struct dagi_quota_budget *b,
                         const char *subject_id, int64_t ws, int64_t we, int64_t requests,
                         int64_t used, int64_t now_ms, struct dagi_error *err)
{
    struct dagi_db_value p[] = {dagi_db_text(b->id),      dagi_db_text(dagi_quota_per_name(b->per)),
                                dagi_db_text(subject_id), dagi_db_int(ws),
                                dagi_db_int(we),          dagi_db_int(requests),
                                dagi_db_int(used),        dagi_db_int(now_ms)};
    return dagi_db_exec(conn,
                        "INSERT INTO quota_counters (budget_id, per, subject_id, window_start_ms,"
                        " window_end_ms, requests, tokens_used, updated_at_ms)"
                        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                        " ON CONFLICT (budget_id, per, subject_id) DO UPDATE SET"
                        " window_start_ms = excluded.window_start_ms,"
                        " window_end_ms = excluded.window_end_ms, requests = excluded.requests,"
                        " tokens_used = excluded.tokens_used,"
                        " updated_at_ms = excluded.updated_at_ms",
                        p, DAGI_ARRAY_LEN(p), NULL, err);
}

static int reserve_in_tx(struct dagi_db_conn *conn, void *ud, struct dagi_error *err)
{
    struct reserve_job *job = ud;
    struct dagi_quota_reservation *r = job->r;
    int rc;
    job->blocked = false; /* a retry starts over */
    for (size_t i = 0; i < job->n; i++) {
        if ((rc = read_counter(conn, &job->a[i], job->now_ms, err)))
            return rc;
        if (refuses(&job->a[i], job->max_tokens, job->block)) {
            job->blocked = true;
            return add_blocked_event(conn, job, err);
        }
    }
    for (size_t i = 0; i < job->n; i++) {
        struct applied *a = &job->a[i];
        if ((rc = write_counter(conn, a->budget, a->subject_id, a->ws, a->we, a->requests + 1,
                                a->used, job->now_ms, err)))
            return rc;
        struct dagi_db_value h[] = {dagi_db_text(r->id),
                                    dagi_db_text(a->budget->id),
                                    dagi_db_text(dagi_quota_per_name(a->budget->per)),
                                    dagi_db_text(a->subject_id),
                                    dagi_db_int(a->ws),
                                    dagi_db_int(job->max_tokens),
                                    dagi_db_int(job->now_ms),
                                    dagi_db_int(r->expires_at_ms)};
        rc = dagi_db_exec(conn,
                          "INSERT INTO quota_holds (reservation_id, budget_id, per, subject_id,"
                          " window_start_ms, tokens, created_at_ms, expires_at_ms)"
                          " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                          h, DAGI_ARRAY_LEN(h), NULL, err);
        if (rc)
            return rc;
        if (a->had_row && !a->same_window &&
            (rc = add_reset_event(conn, job->st, a->budget, a->subject_id, a->ws, a->we, a->row_ws,
                                  "schedule", job->s->user, job->s->trace_id, err)))
            return rc;
    }
    return DAGI_OK;
}

static void copy_str(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

static int db_reserve(void *state, const struct dagi_quota_budgets *budgets,
                      const struct dagi_quota_subject *s, int64_t max_tokens, int64_t now_ms,
                      struct dagi_quota_reservation **out, struct dagi_quota_block *block,
                      struct dagi_error *err)
{
    struct db_store *st = state;
    size_t total = dagi_quota_budgets_count(budgets);
    struct applied *a = dagi_xcalloc(total ? total : 1, sizeof(*a));
    int64_t *keys = dagi_xcalloc(total ? total : 1, sizeof(*keys));
    size_t n = 0;
    for (size_t i = 0; i < total; i++) {
        const struct dagi_quota_budget *b = dagi_quota_budgets_at(budgets, i);
        if (!dagi_quota_budget_applies(b, s, &a[n].subject_id))
            continue;
        a[n].budget = b;
        dagi_quota_window_bounds(b->window, now_ms, &a[n].ws, &a[n].we);
        keys[n] = lock_key(b->id, b->per, a[n].subject_id);
        n++;
    }

    struct dagi_quota_reservation *r = dagi_xcalloc(1, sizeof(*r) + n * sizeof(r->counters[0]));
    dagi_event_id(r->id);
    copy_str(r->user, sizeof(r->user), s->user);
    copy_str(r->team, sizeof(r->team), s->team);
    copy_str(r->agent, sizeof(r->agent), s->agent);
    copy_str(r->trace_id, sizeof(r->trace_id), s->trace_id);
    r->max_tokens = max_tokens;
    r->reserved_at_ms = now_ms;
    r->expires_at_ms = now_ms + st->hold_ttl_ms;
    r->count = n;
    for (size_t i = 0; i < n; i++) {
        struct dagi_quota_counter *c = &r->counters[i];
        copy_str(c->budget_id, sizeof(c->budget_id), a[i].budget->id);
        copy_str(c->subject_id, sizeof(c->subject_id), a[i].subject_id);
        c->per = a[i].budget->per;
        c->window = a[i].budget->window;
        c->window_start_ms = a[i].ws;
        c->window_end_ms = a[i].we;
        c->requests_limit = a[i].budget->requests;
        c->tokens_limit = a[i].budget->tokens;
    }

    int rc = DAGI_OK;
    if (n) { /* no budget applies: nothing to count, no round trip */
        struct reserve_job job = {.st = st,
                                  .s = s,
                                  .max_tokens = max_tokens,
                                  .now_ms = now_ms,
                                  .a = a,
                                  .n = n,
                                  .r = r,
                                  .block = block};
        struct dagi_db_conn *conn = NULL;
        rc = dagi_db_acquire(st->db, &conn, err);
        if (rc == DAGI_OK) {
            rc = write_tx(conn, keys, n, reserve_in_tx, &job, err);
            dagi_db_release(conn);
        }
        if (rc == DAGI_OK && job.blocked)
            rc = dagi_error_set(err, DAGI_EPERM, "budget %s refuses the request", block->budget_id);
    }
    if (rc == DAGI_OK)
        *out = r;
    else
        free(r);
    free(keys);
    free(a);
    return rc;
}

/* ---- settle and release ---- */

struct finish_job {
    struct db_store *st;
    const struct dagi_quota_reservation *r;
    const struct dagi_quota_spend *spend; /* NULL: release */
    int64_t now_ms;
};

static int delete_holds(struct dagi_db_conn *conn, const struct dagi_quota_reservation *r,
                        struct dagi_error *err)
{
    struct dagi_db_value p[] = {dagi_db_text(r->id)};
    int64_t n = 0;
    int rc = dagi_db_exec(conn, "DELETE FROM quota_holds WHERE reservation_id = $1", p, 1, &n, err);
    if (rc == DAGI_OK && n == 0)
        rc = dagi_error_set(err, DAGI_ENOENT,
                            "reservation %s was already settled, released or purged", r->id);
    return rc;
}

/* Adds the tokens to one counter if it is still in the reservation's
 * window, and describes the counter for the event. */
static int charge(struct dagi_db_conn *conn, const struct dagi_quota_counter *c, int64_t tokens,
                  int64_t now_ms, json_t *budgets, struct dagi_error *err)
{
    struct dagi_db_value p[] = {
        dagi_db_int(tokens),         dagi_db_int(now_ms),
        dagi_db_text(c->budget_id),  dagi_db_text(dagi_quota_per_name(c->per)),
        dagi_db_text(c->subject_id), dagi_db_int(c->window_start_ms)};
    struct dagi_db_rows *rows = NULL;
    int rc = dagi_db_query(conn,
                           "UPDATE quota_counters SET tokens_used = tokens_used + $1,"
                           " updated_at_ms = $2 WHERE budget_id = $3 AND per = $4"
                           " AND subject_id = $5 AND window_start_ms = $6"
                           " RETURNING requests, tokens_used",
                           p, DAGI_ARRAY_LEN(p), &rows, err);
    if (rc)
        return rc;
    json_t *entry =
        json_pack("{s:s,s:s,s:s,s:s,s:I}", "id", c->budget_id, "per", dagi_quota_per_name(c->per),
                  "subject_id", c->subject_id, "window", dagi_quota_window_name(c->window),
                  "window_start_ms", (json_int_t)c->window_start_ms);
    rc = dagi_db_rows_next(rows, err);
    /* No row: the window rolled over since the reserve; the new window is
     * not charged for the old one's request. */
    json_object_set_new(entry, "charged", json_boolean(rc == 1));
    if (rc == 1) {
        json_object_set_new(entry, "requests", json_integer(dagi_db_col_int(rows, 0)));
        json_object_set_new(entry, "tokens_used", json_integer(dagi_db_col_int(rows, 1)));
    }
    json_object_set_new(entry, "requests_limit", or_null_limit(c->requests_limit));
    json_object_set_new(entry, "tokens_limit", or_null_limit(c->tokens_limit));
    json_array_append_new(budgets, entry);
    dagi_db_rows_free(rows);
    return rc < 0 ? rc : DAGI_OK;
}

static int finish_in_tx(struct dagi_db_conn *conn, void *ud, struct dagi_error *err)
{
    struct finish_job *job = ud;
    const struct dagi_quota_reservation *r = job->r;
    int rc = delete_holds(conn, r, err);
    if (rc || !job->spend)
        return rc;
    const struct dagi_quota_spend *sp = job->spend;
    int64_t tokens = sp->prompt_tokens + sp->completion_tokens;
    json_t *budgets = json_array();
    for (size_t i = 0; i < r->count && rc == DAGI_OK; i++)
        rc = charge(conn, &r->counters[i], tokens, job->now_ms, budgets, err);
    if (rc) {
        json_decref(budgets);
        return rc;
    }
    json_t *data =
        json_pack("{s:s,s:o,s:o,s:s,s:o,s:I,s:I,s:I,s:I,s:b,s:o}", "user_id", r->user, "team_id",
                  or_null(r->team), "agent_id", or_null(r->agent), "reservation_id", r->id, "model",
                  or_null(sp->model), "tokens_in", (json_int_t)sp->prompt_tokens, "tokens_out",
                  (json_int_t)sp->completion_tokens, "tokens", (json_int_t)tokens, "reserved",
                  (json_int_t)r->max_tokens, "estimated", (int)sp->estimated, "budgets", budgets);
    return add_event(conn, job->st, "quota.consumed", r->user, r->trace_id, r->id, data, err);
}

static int finish(struct db_store *st, const struct dagi_quota_reservation *r,
                  const struct dagi_quota_spend *spend, int64_t now_ms, struct dagi_error *err)
{
    int64_t *keys = dagi_xcalloc(r->count, sizeof(*keys));
    for (size_t i = 0; i < r->count; i++)
        keys[i] = lock_key(r->counters[i].budget_id, r->counters[i].per, r->counters[i].subject_id);
    struct finish_job job = {.st = st, .r = r, .spend = spend, .now_ms = now_ms};
    struct dagi_db_conn *conn = NULL;
    int rc = dagi_db_acquire(st->db, &conn, err);
    if (rc == DAGI_OK) {
        rc = write_tx(conn, keys, r->count, finish_in_tx, &job, err);
        dagi_db_release(conn);
    }
    free(keys);
    return rc;
}

static int db_settle(void *state, const struct dagi_quota_reservation *r,
                     const struct dagi_quota_spend *spend, int64_t now_ms, struct dagi_error *err)
{
    return finish(state, r, spend, now_ms, err);
}

static int db_release(void *state, const struct dagi_quota_reservation *r, int64_t now_ms,
                      struct dagi_error *err)
{
    return finish(state, r, NULL, now_ms, err);
}

/* ---- usage ---- */

static int db_usage(void *state, const struct dagi_quota_budgets *budgets,
                    const struct dagi_quota_subject *s, int64_t now_ms,
                    struct dagi_quota_usage *out, struct dagi_error *err)
{
    struct db_store *st = state;
    size_t total = dagi_quota_budgets_count(budgets);
    struct dagi_quota_usage u = {.items = dagi_xcalloc(total ? total : 1, sizeof(*u.items))};
    struct dagi_db_conn *conn = NULL;
    int rc = dagi_db_acquire(st->db, &conn, err);
    if (rc)
        goto out;
    /* One snapshot for every counter. */
    rc = dagi_db_begin(conn, false, err);
    for (size_t i = 0; i < total && rc == DAGI_OK; i++) {
        struct dagi_quota_budget loose = *dagi_quota_budgets_at(budgets, i);
        if (!s->agent || !*s->agent)
            loose.agents.count = 0; /* the counter exists whichever agent is asked */
        struct applied a = {.budget = dagi_quota_budgets_at(budgets, i)};
        if (!dagi_quota_budget_applies(&loose, s, &a.subject_id))
            continue;
        dagi_quota_window_bounds(a.budget->window, now_ms, &a.ws, &a.we);
        if ((rc = read_counter(conn, &a, now_ms, err)))
            break;
        struct dagi_quota_usage_entry *e = &u.items[u.count++];
        copy_str(e->budget_id, sizeof(e->budget_id), a.budget->id);
        copy_str(e->subject_id, sizeof(e->subject_id), a.subject_id);
        e->per = a.budget->per;
        e->window = a.budget->window;
        e->window_start_ms = a.ws;
        e->reset_at_ms = a.we;
        e->requests = a.requests;
        e->requests_limit = a.budget->requests;
        e->tokens_used = a.used;
        e->tokens_held = a.held;
        e->tokens_limit = a.budget->tokens;
    }
    dagi_db_rollback(conn); /* read only */
    dagi_db_release(conn);
out:
    if (rc == DAGI_OK)
        *out = u;
    else
        dagi_quota_usage_release(&u);
    return rc;
}

/* ---- reset and purge ---- */

struct reset_job {
    struct db_store *st;
    const struct dagi_quota_budget *b;
    const char *subject_id;
    const char *trace_id;
    int64_t now_ms;
};

static int reset_in_tx(struct dagi_db_conn *conn, void *ud, struct dagi_error *err)
{
    struct reset_job *job = ud;
    int64_t ws, we;
    dagi_quota_window_bounds(job->b->window, job->now_ms, &ws, &we);
    int rc = write_counter(conn, job->b, job->subject_id, ws, we, 0, 0, job->now_ms, err);
    if (rc)
        return rc;
    struct dagi_db_value p[] = {dagi_db_int(job->now_ms), dagi_db_text(job->b->id),
                                dagi_db_text(dagi_quota_per_name(job->b->per)),
                                dagi_db_text(job->subject_id)};
    rc = dagi_db_exec(conn,
                      "UPDATE quota_holds SET expires_at_ms = $1 WHERE budget_id = $2"
                      " AND per = $3 AND subject_id = $4 AND expires_at_ms > $1",
                      p, DAGI_ARRAY_LEN(p), NULL, err);
    if (rc)
        return rc;
    return add_reset_event(conn, job->st, job->b, job->subject_id, ws, we, 0, "admin", NULL,
                           job->trace_id, err);
}

static int db_reset(void *state, const struct dagi_quota_budget *budget, const char *subject_id,
                    int64_t now_ms, const char *trace_id, struct dagi_error *err)
{
    struct db_store *st = state;
    int64_t key = lock_key(budget->id, budget->per, subject_id);
    struct reset_job job = {st, budget, subject_id, trace_id, now_ms};
    struct dagi_db_conn *conn = NULL;
    int rc = dagi_db_acquire(st->db, &conn, err);
    if (rc)
        return rc;
    rc = write_tx(conn, &key, 1, reset_in_tx, &job, err);
    dagi_db_release(conn);
    return rc;
}

static int db_purge(void *state, int64_t now_ms, size_t *removed, struct dagi_error *err)
{
    struct db_store *st = state;
    struct dagi_db_conn *conn = NULL;
    int rc = dagi_db_acquire(st->db, &conn, err);
    if (rc)
        return rc;
    struct dagi_db_value p[] = {dagi_db_int(now_ms - DAGI_QUOTA_PURGE_AFTER_MS)};
    int64_t n = 0;
    rc = dagi_db_exec(conn, "DELETE FROM quota_holds WHERE expires_at_ms <= $1", p, 1, &n, err);
    dagi_db_release(conn);
    if (rc == DAGI_OK && removed)
        *removed = (size_t)n;
    return rc;
}

const struct dagi_quota_store_ops dagi_quota_store_db_ops = {
    .name = "db",
    .open = db_open,
    .close = db_close,
    .reserve = db_reserve,
    .settle = db_settle,
    .release = db_release,
    .usage = db_usage,
    .reset = db_reset,
    .purge = db_purge,
};
