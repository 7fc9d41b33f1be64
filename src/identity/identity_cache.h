/* The principal cache: the teams (and team roles) of a principal, for the
 * request path, where the gateway resolves every request's principal once.
 *
 * A lookup on the event loop that finds a fresh entry answers at once and
 * touches no store.  One that misses asks the graph on the worker pool
 * (dagi_graph_teams_of) and calls back on the loop; the answer is kept for
 * `ttl_ms` (the node uses auth.key_cache_ttl, as the API-key cache does).
 * A principal the graph does not know is cached too (known = false, no
 * teams): the gateway only asks about principals it has authenticated, so
 * such entries cannot be made up by strangers, and a Telegram user nobody
 * has created yet must not cost a query per message.
 *
 * Staleness: a change made through *this* process's admin API invalidates
 * what it touches at once (dagi_identity_cache_invalidate), and a lookup
 * that read the graph before that change cannot put the old answer back (a
 * generation is checked before every insert).  A change made by another
 * process shows here within the TTL.
 *
 * At most `entries` principals are kept; when full, the one stored longest
 * ago goes (with one TTL for all, the first to go stale anyway).  Each
 * keeps at most DAGI_IDENTITY_TEAMS_MAX memberships (`truncated` says there
 * were more).
 *
 * Threads: every function runs on the loop thread that owns the pool's
 * event base (the graph work itself runs on the pool).
 *
 * Ownership: the cache holds a reference to the graph (dagi_graph_ref) and
 * is itself reference counted, because a lookup in flight on the pool must
 * find it alive when it completes - even after the owner let go, during
 * shutdown.  dagi_identity_cache_unref() drops the owner's reference.  The
 * teams a lookup answers are borrowed: valid until control returns to the
 * event loop (or the next invalidate), so copy what must live longer. */
#ifndef DAGI_IDENTITY_CACHE_H
#define DAGI_IDENTITY_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "identity/graph.h"

struct dagi_pool;
struct dagi_identity_cache;
struct dagi_identity_fetch;

#define DAGI_IDENTITY_TEAMS_MAX 64

struct dagi_identity_membership {
    char team[DAGI_GRAPH_ID_MAX + 1];
    enum dagi_graph_role role;
};

struct dagi_identity_teams {
    bool known;     /* the principal is a user of the graph */
    bool truncated; /* a member of more than DAGI_IDENTITY_TEAMS_MAX teams */
    size_t count;
    struct dagi_identity_membership teams[]; /* by team id */
};

struct dagi_identity_cache_opts {
    size_t entries; /* 0 = 4096 */
    int64_t ttl_ms; /* 0 = 5000; negative = keep nothing (every lookup asks the graph) */
    /* The clock the TTL runs on, in ms; NULL = monotonic time.  Tests set it. */
    int64_t (*now_ms)(void *ud);
    void *now_ud;
};

int dagi_identity_cache_new(struct dagi_graph *graph, struct dagi_pool *pool,
                            const struct dagi_identity_cache_opts *opts,
                            struct dagi_identity_cache **out, struct dagi_error *err);
struct dagi_identity_cache *dagi_identity_cache_ref(struct dagi_identity_cache *c);
void dagi_identity_cache_unref(struct dagi_identity_cache *c);

/* Called once on the loop with the answer: rc 0 and the teams, or an error
 * (the graph's, DAGI_ECANCELED when the pool stopped first). */
typedef void (*dagi_identity_done_fn)(void *ud, int rc, const struct dagi_identity_teams *teams,
                                      const struct dagi_error *err);

#define DAGI_IDENTITY_PENDING 1

/* The teams of `principal` ("user:alice", "tg:42"):
 *   0                      a fresh entry: *out is set, done is not called;
 *   DAGI_IDENTITY_PENDING  asked on the pool: done(ud, ...) follows, unless
 *                          cancelled; *fetch (if not NULL) is its handle;
 *   DAGI_EINVAL            not a user principal (err says why);
 *   DAGI_EAGAIN            the pool's queue is full: shed the request;
 *   DAGI_ECLOSED           the pool is stopping. */
int dagi_identity_resolve(struct dagi_identity_cache *c, const char *principal,
                          const struct dagi_identity_teams **out, dagi_identity_done_fn done,
                          void *ud, struct dagi_identity_fetch **fetch, struct dagi_error *err);
/* done will not be called (the lookup still completes and fills the
 * cache).  Only before done ran. */
void dagi_identity_fetch_cancel(struct dagi_identity_fetch *fetch);

/* The cache alone, never the graph: 0 with *out, or DAGI_ENOENT. */
int dagi_identity_cache_get(struct dagi_identity_cache *c, const char *principal,
                            const struct dagi_identity_teams **out);

/* Forgets one principal (NULL: every one), and makes lookups in flight
 * not store what they read. */
void dagi_identity_cache_invalidate(struct dagi_identity_cache *c, const char *principal);

/* The role the teams give in `team`; false when not a member. */
bool dagi_identity_teams_role(const struct dagi_identity_teams *t, const char *team,
                              enum dagi_graph_role *role);

struct dagi_identity_cache_stats {
    uint64_t hits, misses, fetches_failed;
    size_t entries;
};
void dagi_identity_cache_stats(struct dagi_identity_cache *c,
                               struct dagi_identity_cache_stats *out);

#endif
