/* Quota counters behind an ops table (STYLE.md's pattern): the relational
 * store in the embedded default (quota_store_db.c, SQLite or PostgreSQL
 * through store/db.h), Redis later.
 *
 * Reservation semantics (docs/QUOTAS.md):
 *
 *   reserve  before the model call.  Atomic across every budget that
 *            applies (one transaction): either each counter counts the
 *            request and holds `max_tokens`, or nothing changes.  A budget
 *            refuses when requests + 1 > its request limit, or when
 *            used + held + max_tokens > its token limit, where `held` is
 *            what the reservations in flight on that counter still hold.
 *            So parallel requests can never spend beyond the limit by more
 *            than what settles above its reservation.
 *   settle   after the answer: the reservation's hold is dropped and the
 *            real figure (prompt + completion, more or less than held) is
 *            added to `used` of every counter it held.
 *   release  the request never reached a model: the holds are dropped and
 *            nothing is added.  The request itself still counts - it was
 *            admitted, and a client must not be able to retry for free
 *            against a failing upstream.
 *
 * Windows.  A counter covers the window that contains `now` at reserve.  A
 * reserve that finds its counter in an older window starts the new one at
 * zero (and emits quota.reset).  Tokens are charged to the window that was
 * current at reserve: a settle whose window has since rolled over adds
 * nothing to the new window.
 *
 * Expiry.  A hold stops counting DAGI_QUOTA_HOLD_TTL_MS (10 minutes, or
 * opts.hold_ttl_ms) after its reserve, so the reservations of a process that
 * crashed between reserve and settle cannot block a budget for long.  A
 * settle that comes later still charges its tokens; rows of reservations
 * that never settle are removed by purge() a day after they expired.
 *
 * Events, in the same transaction, through the outbox (store/outbox.h):
 *   quota.consumed.{user}  on settle;
 *   quota.blocked.{user}   on a refusal (the transaction then changes no
 *                          counter, only writes the event);
 *   quota.reset.{subject}  when a reserve is the first in a new window of a
 *                          counter that had an older one (by: "schedule"),
 *                          and on an admin reset (by: "admin").
 * {user} is the requesting principal's token (dagi_quota_subject_token);
 * {subject} is the token of the counter's subject id (a user, team or
 * agent id; data.per says which).  Payloads: docs/NATS_SUBJECTS.md.
 *
 * Every call blocks on the store: run it on the worker pool (or use
 * quota_async.h from the loop), never on a loop thread.  Writes retry
 * DAGI_EAGAIN (a busy SQLite, a PostgreSQL serialization failure) a few
 * times before failing with it.  Thread safe.
 *
 * Time is the caller's now_ms (the business clock, dagi_clock_now_ms()), so
 * tests move it without sleeping. */
#ifndef DAGI_QUOTA_STORE_H
#define DAGI_QUOTA_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "quota/quota.h"

struct dagi_db;
struct dagi_metrics;

#define DAGI_QUOTA_HOLD_TTL_MS (10LL * 60 * 1000)
#define DAGI_QUOTA_PURGE_AFTER_MS (24LL * 60 * 60 * 1000)
#define DAGI_QUOTA_RESERVATION_ID_LEN 36 /* a UUID v7 */

/* One counter a reservation holds. */
struct dagi_quota_counter {
    char budget_id[DAGI_QUOTA_ID_MAX + 1];
    int per;    /* enum dagi_quota_per */
    int window; /* enum dagi_quota_window */
    char subject_id[DAGI_QUOTA_NAME_MAX + 1];
    int64_t window_start_ms, window_end_ms;
    int64_t requests_limit, tokens_limit; /* 0 = none */
};

/* A granted reservation: what settle and release need.  Made by reserve,
 * owned by the caller, freed with dagi_quota_reservation_free(). */
struct dagi_quota_reservation {
    char id[DAGI_QUOTA_RESERVATION_ID_LEN + 1];
    char user[DAGI_QUOTA_NAME_MAX + 1];
    char team[DAGI_QUOTA_NAME_MAX + 1];  /* "" = none */
    char agent[DAGI_QUOTA_NAME_MAX + 1]; /* "" = none */
    char trace_id[64];                   /* "" = none */
    int64_t max_tokens;
    int64_t reserved_at_ms, expires_at_ms;
    size_t count; /* 0: no budget applied, settle and release do nothing */
    struct dagi_quota_counter counters[];
};

void dagi_quota_reservation_free(struct dagi_quota_reservation *r);

/* Why a reserve was refused: the first budget (in document order) that
 * would go over its limit. */
struct dagi_quota_block {
    char budget_id[DAGI_QUOTA_ID_MAX + 1];
    int per, window;
    char subject_id[DAGI_QUOTA_NAME_MAX + 1];
    bool tokens;       /* false: the request limit; true: the token limit */
    int64_t limit;     /* of that kind */
    int64_t used;      /* requests made, or tokens used, in this window */
    int64_t held;      /* tokens held by reservations in flight */
    int64_t requested; /* the max_tokens asked for */
    int64_t window_start_ms;
    int64_t reset_at_ms; /* the window's end */
};

/* What settle charges. */
struct dagi_quota_spend {
    int64_t prompt_tokens, completion_tokens; /* >= 0 */
    bool estimated;                           /* not the upstream's own count (no include_usage) */
    const char *model;                        /* for the event; NULL = not said */
};

/* One counter as the admin API shows it. */
struct dagi_quota_usage_entry {
    char budget_id[DAGI_QUOTA_ID_MAX + 1];
    int per, window;
    char subject_id[DAGI_QUOTA_NAME_MAX + 1];
    int64_t window_start_ms, reset_at_ms;
    int64_t requests, requests_limit;               /* limit 0 = none */
    int64_t tokens_used, tokens_held, tokens_limit; /* limit 0 = none */
};

struct dagi_quota_usage {
    struct dagi_quota_usage_entry *items;
    size_t count;
};

void dagi_quota_usage_release(struct dagi_quota_usage *u);

struct dagi_quota_store_opts {
    struct dagi_db *db;           /* the relational backend's database (borrowed) */
    const char *source;           /* envelope source, "router@node1" (NULL = "quota") */
    int64_t hold_ttl_ms;          /* 0 = DAGI_QUOTA_HOLD_TTL_MS */
    struct dagi_metrics *metrics; /* NULL = dagi_metrics_default() */
};

struct dagi_quota_store;

/* The backend ops table.  The wrappers below check arguments first, so a
 * backend sees a valid subject, max_tokens >= 0 and a non-empty spend. */
struct dagi_quota_store_ops {
    const char *name; /* "db" */
    int (*open)(const struct dagi_quota_store_opts *opts, void **state, struct dagi_error *err);
    void (*close)(void *state);
    /* 0 and *out; DAGI_EPERM with *block; or an error. */
    int (*reserve)(void *state, const struct dagi_quota_budgets *budgets,
                   const struct dagi_quota_subject *s, int64_t max_tokens, int64_t now_ms,
                   struct dagi_quota_reservation **out, struct dagi_quota_block *block,
                   struct dagi_error *err);
    int (*settle)(void *state, const struct dagi_quota_reservation *r,
                  const struct dagi_quota_spend *spend, int64_t now_ms, struct dagi_error *err);
    int (*release)(void *state, const struct dagi_quota_reservation *r, int64_t now_ms,
                   struct dagi_error *err);
    int (*usage)(void *state, const struct dagi_quota_budgets *budgets,
                 const struct dagi_quota_subject *s, int64_t now_ms, struct dagi_quota_usage *out,
                 struct dagi_error *err);
    int (*reset)(void *state, const struct dagi_quota_budget *budget, const char *subject_id,
                 int64_t now_ms, const char *trace_id, struct dagi_error *err);
    /* Optional (NULL): drops what expired more than DAGI_QUOTA_PURGE_AFTER_MS ago. */
    int (*purge)(void *state, int64_t now_ms, size_t *removed, struct dagi_error *err);
};

extern const struct dagi_quota_store_ops dagi_quota_store_db_ops;
/* Every compiled-in backend, NULL-terminated (the suite runs against each). */
extern const struct dagi_quota_store_ops *const dagi_quota_store_backends[];

/* Opens a store on a backend ("db").  The store borrows opts->db, which
 * must outlive it.  DAGI_EINVAL for an unknown backend or a missing db. */
int dagi_quota_store_new(const char *backend, const struct dagi_quota_store_opts *opts,
                         struct dagi_quota_store **out, struct dagi_error *err);
int dagi_quota_store_new_with(const struct dagi_quota_store_ops *ops,
                              const struct dagi_quota_store_opts *opts,
                              struct dagi_quota_store **out, struct dagi_error *err);
/* The store is reference counted so that a job still running on the pool
 * when its owner lets go (a node stopping) keeps it alive: new and new_with
 * return one reference, ref adds one, free drops one and closes the backend
 * with the last.  NULL is ignored. */
struct dagi_quota_store *dagi_quota_store_ref(struct dagi_quota_store *store);
void dagi_quota_store_free(struct dagi_quota_store *store);
const struct dagi_quota_store_ops *dagi_quota_store_backend(const struct dagi_quota_store *store);

/* Reserves for one request (see above).  Returns 0 and *out (the caller
 * owns it; a reservation with count 0 when no budget applies, which costs
 * no store access); DAGI_EPERM with *block filled (block may be NULL);
 * DAGI_EINVAL for a bad subject or max_tokens < 0; or a store error. */
int dagi_quota_reserve(struct dagi_quota_store *store, const struct dagi_quota_budgets *budgets,
                       const struct dagi_quota_subject *s, int64_t max_tokens, int64_t now_ms,
                       struct dagi_quota_reservation **out, struct dagi_quota_block *block,
                       struct dagi_error *err);
/* Settles r with the real figures; DAGI_ENOENT when r was already settled,
 * released or purged.  The caller still frees r.  Counts
 * agent_budget_consumed{agent_id} (the tokens of every settle, whether or
 * not a budget applied). */
int dagi_quota_settle(struct dagi_quota_store *store, const struct dagi_quota_reservation *r,
                      const struct dagi_quota_spend *spend, int64_t now_ms, struct dagi_error *err);
/* Drops r's holds; DAGI_ENOENT as for settle.  The caller still frees r. */
int dagi_quota_release(struct dagi_quota_store *store, const struct dagi_quota_reservation *r,
                       int64_t now_ms, struct dagi_error *err);
/* The counters of every budget that applies to s, in document order, as of
 * now_ms (a counter from an older window shows zeros).  When s->agent is
 * empty, budgets restricted to agents are shown too (their counters are
 * the user's, team's or agent's all the same).  s->user may be empty here
 * (a team's or an agent's usage alone). */
int dagi_quota_usage(struct dagi_quota_store *store, const struct dagi_quota_budgets *budgets,
                     const struct dagi_quota_subject *s, int64_t now_ms,
                     struct dagi_quota_usage *out, struct dagi_error *err);
/* Admin reset of one counter: the current window starts again from zero,
 * and the holds in flight on it stop counting (their settles still charge
 * what they spend).  Emits quota.reset (by: "admin") even when the counter
 * had never been used.  DAGI_EINVAL for a bad subject id. */
int dagi_quota_reset(struct dagi_quota_store *store, const struct dagi_quota_budget *budget,
                     const char *subject_id, int64_t now_ms, const char *trace_id,
                     struct dagi_error *err);
/* Removes the holds of reservations that expired more than a day ago
 * (DAGI_QUOTA_PURGE_AFTER_MS) and never settled; *removed (may be NULL)
 * counts the rows.  0 when the backend keeps nothing to purge.  Counters
 * are never purged: one row per budget and subject. */
int dagi_quota_purge(struct dagi_quota_store *store, int64_t now_ms, size_t *removed,
                     struct dagi_error *err);

#endif
