/* The principal cache (identity_cache.h).
 *
 * The store is a fixed array of slots used as a ring: each insert takes the
 * slot under the hand and moves it on, so the slot replaced is always the
 * one filled longest ago.  Slots are chained by index into a hash of the
 * principal.  Everything runs on the loop thread, so there is no lock: the
 * pool thread only reads the graph into its job, and the job's completion
 * (on the loop) stores it.
 *
 * Every invalidation bumps one generation; a lookup remembers the
 * generation it started in and stores its answer only if none happened
 * since.  One counter for all principals is coarse - a change to alice
 * keeps bob's lookup in flight from being stored - but changes are rare
 * and the price is one more query, never a stale answer. */
#include "identity/identity_cache.h"

#include "core/clock.h"
#include "core/mem.h"
#include "core/pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_ENTRIES 4096
#define DEFAULT_TTL_MS 5000
#define MAX_TTL_MS 3600000

struct slot {
    int32_t next; /* chain; -1 ends it */
    bool used;
    int64_t stored_ms;
    char principal[DAGI_GRAPH_REF_MAX + 1];
    struct dagi_identity_teams *teams;
};

struct dagi_identity_cache {
    int refs; /* loop thread only */
    struct dagi_graph *graph;
    struct dagi_pool *pool;
    struct slot *slots;
    size_t cap, hand, used;
    int32_t *heads;
    size_t mask;
    int64_t ttl_ms; /* < 0: keep nothing */
    int64_t (*now_ms)(void *ud);
    void *now_ud;
    uint64_t generation;
    struct dagi_identity_cache_stats stats;
};

struct dagi_identity_fetch {
    struct dagi_identity_cache *cache; /* a reference */
    char principal[DAGI_GRAPH_REF_MAX + 1];
    char user[DAGI_GRAPH_ID_MAX + 1];
    uint64_t generation;
    dagi_identity_done_fn done; /* NULL once cancelled */
    void *ud;
    struct dagi_identity_teams *teams; /* the answer (pool thread), until stored */
    int rc;
    struct dagi_error err;
};

static int64_t mono_ms(void *ud)
{
    (void)ud;
    return dagi_clock_mono_ns() / 1000000;
}

/* --- the table --- */

static size_t bucket(const struct dagi_identity_cache *c, const char *principal)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)principal; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return (size_t)h & c->mask;
}

static int32_t find(const struct dagi_identity_cache *c, const char *principal)
{
    for (int32_t i = c->heads[bucket(c, principal)]; i >= 0; i = c->slots[i].next)
        if (strcmp(c->slots[i].principal, principal) == 0)
            return i;
    return -1;
}

static void unlink_slot(struct dagi_identity_cache *c, int32_t victim)
{
    int32_t *link = &c->heads[bucket(c, c->slots[victim].principal)];
    while (*link != victim)
        link = &c->slots[*link].next;
    *link = c->slots[victim].next;
    c->slots[victim].used = false;
    free(c->slots[victim].teams);
    c->slots[victim].teams = NULL;
    c->used--;
}

/* Takes ownership of teams. */
static void put(struct dagi_identity_cache *c, const char *principal,
                struct dagi_identity_teams *teams)
{
    int32_t old = find(c, principal);
    if (old >= 0)
        unlink_slot(c, old);
    int32_t at = (int32_t)c->hand;
    c->hand = (c->hand + 1) % c->cap;
    if (c->slots[at].used)
        unlink_slot(c, at);
    struct slot *s = &c->slots[at];
    snprintf(s->principal, sizeof(s->principal), "%s", principal);
    s->teams = teams;
    s->stored_ms = c->now_ms(c->now_ud);
    s->used = true;
    size_t b = bucket(c, principal);
    s->next = c->heads[b];
    c->heads[b] = at;
    c->used++;
}

/* The canonical principal of a user principal ("user:alice", "tg:42"). */
static int canonical(const char *principal, char user[DAGI_GRAPH_ID_MAX + 1],
                     char out[DAGI_GRAPH_REF_MAX + 1])
{
    if (!principal || (strncmp(principal, "user:", 5) != 0 && strncmp(principal, "tg:", 3) != 0))
        return DAGI_EINVAL;
    if (dagi_graph_user_id_from(principal, user))
        return DAGI_EINVAL;
    dagi_graph_user_principal(user, out);
    return DAGI_OK;
}

/* --- lifecycle --- */

int dagi_identity_cache_new(struct dagi_graph *graph, struct dagi_pool *pool,
                            const struct dagi_identity_cache_opts *opts,
                            struct dagi_identity_cache **out, struct dagi_error *err)
{
    struct dagi_identity_cache_opts o = opts ? *opts : (struct dagi_identity_cache_opts){0};
    if (!graph || !pool)
        return dagi_error_set(err, DAGI_EINVAL, "identity cache: a graph and a pool are needed");
    if (o.entries == 0)
        o.entries = DEFAULT_ENTRIES;
    if (o.entries > INT32_MAX / 2)
        return dagi_error_set(err, DAGI_EINVAL, "identity cache: too many entries");
    if (o.ttl_ms == 0)
        o.ttl_ms = DEFAULT_TTL_MS;
    if (o.ttl_ms > MAX_TTL_MS)
        return dagi_error_set(err, DAGI_EINVAL,
                              "identity cache: a TTL over %d ms keeps removed members in",
                              MAX_TTL_MS);
    struct dagi_identity_cache *c = dagi_xcalloc(1, sizeof(*c));
    c->refs = 1;
    c->graph = dagi_graph_ref(graph);
    c->pool = pool;
    c->ttl_ms = o.ttl_ms;
    c->now_ms = o.now_ms ? o.now_ms : mono_ms;
    c->now_ud = o.now_ud;
    size_t nb = 1;
    while (nb < o.entries)
        nb <<= 1;
    c->cap = o.entries;
    c->slots = dagi_xcalloc(c->cap, sizeof(*c->slots));
    c->heads = dagi_xmalloc(nb * sizeof(*c->heads));
    memset(c->heads, 0xff, nb * sizeof(*c->heads)); /* all -1 */
    c->mask = nb - 1;
    *out = c;
    return DAGI_OK;
}

struct dagi_identity_cache *dagi_identity_cache_ref(struct dagi_identity_cache *c)
{
    c->refs++;
    return c;
}

void dagi_identity_cache_unref(struct dagi_identity_cache *c)
{
    if (!c || --c->refs > 0)
        return;
    for (size_t i = 0; i < c->cap; i++)
        free(c->slots[i].teams);
    free(c->slots);
    free(c->heads);
    dagi_graph_close(c->graph);
    free(c);
}

/* --- lookups --- */

int dagi_identity_cache_get(struct dagi_identity_cache *c, const char *principal,
                            const struct dagi_identity_teams **out)
{
    char user[DAGI_GRAPH_ID_MAX + 1], key[DAGI_GRAPH_REF_MAX + 1];
    if (c->ttl_ms < 0 || canonical(principal, user, key))
        return DAGI_ENOENT;
    int32_t i = find(c, key);
    if (i < 0)
        return DAGI_ENOENT;
    if (c->now_ms(c->now_ud) - c->slots[i].stored_ms >= c->ttl_ms) {
        unlink_slot(c, i);
        return DAGI_ENOENT;
    }
    *out = c->slots[i].teams;
    return DAGI_OK;
}

static void on_fetch_work(void *ud)
{
    struct dagi_identity_fetch *f = ud;
    struct dagi_graph_list list = {0};
    struct dagi_graph_page_req page = {.limit = DAGI_IDENTITY_TEAMS_MAX};
    int rc = dagi_graph_teams_of(f->cache->graph, f->user, &page, &list, &f->err);
    if (rc && rc != DAGI_ENOENT) {
        f->rc = rc;
        return;
    }
    /* ENOENT: the graph holds no such user - an answer, not a failure */
    struct dagi_identity_teams *t = dagi_xcalloc(1, sizeof(*t) + list.count * sizeof(t->teams[0]));
    t->known = rc == DAGI_OK;
    t->truncated = list.next_cursor[0] != '\0';
    t->count = list.count;
    for (size_t i = 0; i < list.count; i++) {
        snprintf(t->teams[i].team, sizeof(t->teams[i].team), "%s", list.members[i].team);
        t->teams[i].role = list.members[i].role;
    }
    dagi_graph_list_release(&list);
    f->teams = t;
    f->rc = DAGI_OK;
}

static void on_fetch_done(void *ud, bool cancelled)
{
    struct dagi_identity_fetch *f = ud;
    struct dagi_identity_cache *c = f->cache;
    if (cancelled)
        f->rc = dagi_error_set(&f->err, DAGI_ECANCELED, "the worker pool stopped");
    if (f->rc)
        c->stats.fetches_failed++;
    const struct dagi_identity_teams *answer = f->teams;
    if (!f->rc && c->ttl_ms >= 0 && f->generation == c->generation) {
        put(c, f->principal, f->teams);
        f->teams = NULL; /* the cache's now; `answer` stays valid through done */
    }
    if (f->done)
        f->done(f->ud, f->rc, f->rc ? NULL : answer, &f->err);
    free(f->teams);
    free(f);
    dagi_identity_cache_unref(c);
}

int dagi_identity_resolve(struct dagi_identity_cache *c, const char *principal,
                          const struct dagi_identity_teams **out, dagi_identity_done_fn done,
                          void *ud, struct dagi_identity_fetch **fetch, struct dagi_error *err)
{
    char user[DAGI_GRAPH_ID_MAX + 1], key[DAGI_GRAPH_REF_MAX + 1];
    if (canonical(principal, user, key))
        return dagi_error_set(err, DAGI_EINVAL,
                              "principal: a user principal is user:<id> or tg:<telegram id>");
    if (dagi_identity_cache_get(c, key, out) == DAGI_OK) {
        c->stats.hits++;
        return DAGI_OK;
    }
    c->stats.misses++;
    struct dagi_identity_fetch *f = dagi_xcalloc(1, sizeof(*f));
    f->cache = dagi_identity_cache_ref(c);
    snprintf(f->principal, sizeof(f->principal), "%s", key);
    snprintf(f->user, sizeof(f->user), "%s", user);
    f->generation = c->generation;
    f->done = done;
    f->ud = ud;
    int rc = dagi_pool_submit(c->pool, on_fetch_work, on_fetch_done, f);
    if (rc) {
        c->refs--; /* never the last: the caller holds one */
        free(f);
        return dagi_error_set(err, rc, "the worker pool is %s",
                              rc == DAGI_ECLOSED ? "stopping" : "full");
    }
    if (fetch)
        *fetch = f;
    return DAGI_IDENTITY_PENDING;
}

void dagi_identity_fetch_cancel(struct dagi_identity_fetch *fetch)
{
    if (fetch)
        fetch->done = NULL;
}

void dagi_identity_cache_invalidate(struct dagi_identity_cache *c, const char *principal)
{
    c->generation++;
    if (!principal) {
        for (size_t i = 0; i < c->cap; i++)
            if (c->slots[i].used)
                unlink_slot(c, (int32_t)i);
        return;
    }
    char user[DAGI_GRAPH_ID_MAX + 1], key[DAGI_GRAPH_REF_MAX + 1];
    if (canonical(principal, user, key))
        return;
    int32_t i = find(c, key);
    if (i >= 0)
        unlink_slot(c, i);
}

bool dagi_identity_teams_role(const struct dagi_identity_teams *t, const char *team,
                              enum dagi_graph_role *role)
{
    for (size_t i = 0; t && team && i < t->count; i++)
        if (strcmp(t->teams[i].team, team) == 0) {
            if (role)
                *role = t->teams[i].role;
            return true;
        }
    return false;
}

void dagi_identity_cache_stats(struct dagi_identity_cache *c, struct dagi_identity_cache_stats *out)
{
    *out = c->stats;
    out->entries = c->used;
}
