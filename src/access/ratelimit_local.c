/* The in-process rate limit backend ("local").
 *
 * Buckets live in SHARDS hash tables, each with its own mutex, picked by a
 * keyed SipHash of the bucket name (the key is random per limiter, so
 * names chosen by clients - IP addresses - cannot be aimed at one chain).
 * Each shard holds at most max_buckets / SHARDS buckets.
 *
 * Memory.  A bucket is allocated the first time its name is seen and never
 * on later requests.  When a shard is full, a new name triggers a sweep
 * that evicts every bucket that has refilled to its burst: dropping a full
 * bucket loses nothing, since a new one starts full.  Evicted buckets go to
 * a free list and are reused, so churning names do not churn malloc.
 *
 * Failing open.  When a shard is full and no bucket in it is full again,
 * the request is ALLOWED and counted in failed_open.  The alternatives are
 * worse: refusing would let a flood of new names (spoofed clients) lock
 * out every newcomer, and evicting a partly drained bucket would hand its
 * owner a fresh burst anyway.  The sweep that found nothing also notes how
 * long until the first bucket can be full, and no sweep runs before then,
 * so a flood costs O(1) per request, not a walk of the shard.
 *
 * Arithmetic is in double tokens with a tolerance of 1e-9 token, so that a
 * rate like 10/60 per second, summed over exactly one token's time, gives
 * a whole token despite rounding. */
#include "access/ratelimit.h"

#include "core/mem.h"

#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS 64
#define EPSILON 1e-9
#define KEY_CAP_STEP 32 /* key storage is rounded up, so freed buckets fit more names */

struct bucket {
    struct bucket *next;
    uint64_t hash;
    double tokens;
    double rate, burst; /* of the latest call: what the sweep judges by */
    int64_t last_ms;
    uint16_t key_len, key_cap;
    char key[];
};

struct shard {
    _Alignas(64) pthread_mutex_t lock; /* one cache line per shard's hot part */
    struct bucket **heads;
    size_t mask, count, cap;
    struct bucket *free_list;
    /* after a sweep that evicted nothing: none before failed_at + wait */
    int64_t sweep_failed_at_ms, sweep_wait_ms;
    uint64_t allowed, refused, failed_open, evicted;
};

struct local {
    struct shard shards[SHARDS];
    unsigned char hash_key[crypto_shorthash_KEYBYTES];
};

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;

static void on_sodium_once(void)
{
    if (sodium_init() < 0)
        abort(); /* no randomness: nothing can be keyed */
}

/* Tokens at now_ms, not above burst.  A clock behind last_ms adds none. */
static double tokens_at(const struct bucket *b, int64_t now_ms)
{
    double t = b->tokens;
    if (now_ms > b->last_ms)
        t += (double)(now_ms - b->last_ms) * b->rate / 1000.0;
    return t > b->burst ? b->burst : t;
}

static bool is_full(const struct bucket *b, int64_t now_ms)
{
    return tokens_at(b, now_ms) + EPSILON >= b->burst;
}

/* Evicts every full bucket; 0 evicted also sets when to try again. */
static size_t sweep(struct shard *s, int64_t now_ms)
{
    size_t evicted = 0;
    double wait_ms = INFINITY;
    for (size_t i = 0; i <= s->mask; i++) {
        struct bucket **link = &s->heads[i];
        while (*link) {
            struct bucket *b = *link;
            if (is_full(b, now_ms)) {
                *link = b->next;
                b->next = s->free_list;
                s->free_list = b;
                evicted++;
                continue;
            }
            double w = (b->burst - tokens_at(b, now_ms)) * 1000.0 / b->rate;
            if (w < wait_ms)
                wait_ms = w;
            link = &b->next;
        }
    }
    s->count -= evicted;
    s->evicted += evicted;
    if (evicted == 0) {
        s->sweep_failed_at_ms = now_ms;
        s->sweep_wait_ms = wait_ms > 1e12 ? (int64_t)1e12 : (int64_t)ceil(wait_ms);
        if (s->sweep_wait_ms < 1)
            s->sweep_wait_ms = 1;
    }
    return evicted;
}

static bool may_sweep(const struct shard *s, int64_t now_ms)
{
    return s->sweep_wait_ms == 0 || now_ms < s->sweep_failed_at_ms ||
           now_ms - s->sweep_failed_at_ms >= s->sweep_wait_ms;
}

/* A new, full bucket linked into the shard; NULL when the shard is full
 * and nothing can be evicted. */
static struct bucket *new_bucket(struct shard *s, uint64_t hash, const char *key, size_t len,
                                 double burst, int64_t now_ms)
{
    if (s->count >= s->cap && (!may_sweep(s, now_ms) || sweep(s, now_ms) == 0))
        return NULL;
    struct bucket *b = s->free_list;
    if (b && b->key_cap >= len) {
        s->free_list = b->next;
    } else {
        if (b) { /* too small for this name: give it back to malloc */
            s->free_list = b->next;
            free(b);
        }
        size_t cap = (len + KEY_CAP_STEP - 1) / KEY_CAP_STEP * KEY_CAP_STEP;
        b = dagi_xmalloc(sizeof(*b) + cap);
        b->key_cap = (uint16_t)cap;
    }
    b->hash = hash;
    b->key_len = (uint16_t)len;
    memcpy(b->key, key, len);
    b->tokens = burst;
    b->last_ms = now_ms;
    size_t at = (size_t)(hash >> 6) & s->mask; /* the low bits chose the shard */
    b->next = s->heads[at];
    s->heads[at] = b;
    s->count++;
    return b;
}

static struct bucket *find(struct shard *s, uint64_t hash, const char *key, size_t len)
{
    for (struct bucket *b = s->heads[(size_t)(hash >> 6) & s->mask]; b; b = b->next)
        if (b->hash == hash && b->key_len == len && memcmp(b->key, key, len) == 0)
            return b;
    return NULL;
}

static bool local_take(void *state, const char *key, size_t len, double rate, double burst,
                       int64_t now_ms, int64_t *retry_after_ms)
{
    struct local *l = state;
    uint64_t hash;
    crypto_shorthash((unsigned char *)&hash, (const unsigned char *)key, len, l->hash_key);
    struct shard *s = &l->shards[hash % SHARDS];
    bool allowed = true;
    pthread_mutex_lock(&s->lock);
    struct bucket *b = find(s, hash, key, len);
    if (!b)
        b = new_bucket(s, hash, key, len, burst, now_ms);
    if (!b) {
        s->failed_open++;
        *retry_after_ms = 0;
        goto out;
    }
    b->rate = rate;
    b->burst = burst;
    b->tokens = tokens_at(b, now_ms);
    if (now_ms > b->last_ms)
        b->last_ms = now_ms;
    if (b->tokens + EPSILON >= 1.0) {
        b->tokens = b->tokens > 1.0 ? b->tokens - 1.0 : 0.0;
        s->allowed++;
        *retry_after_ms = 0;
    } else {
        /* the tolerance again: 6000.0000001 ms is 6000 ms */
        double ms = ceil((1.0 - b->tokens) * 1000.0 / rate - 1e-6);
        *retry_after_ms = ms < 1 ? 1 : ms > 9e15 ? (int64_t)9e15 : (int64_t)ms;
        allowed = false;
        s->refused++;
    }
out:
    pthread_mutex_unlock(&s->lock);
    return allowed;
}

static int local_open(const struct dagi_ratelimit_opts *opts, void **state, struct dagi_error *err)
{
    (void)err;
    pthread_once(&sodium_once, on_sodium_once);
    size_t per_shard = opts->max_buckets / SHARDS;
    if (per_shard == 0)
        per_shard = 1;
    size_t heads = 1;
    while (heads < per_shard)
        heads <<= 1;
    /* aligned so that shards do not share cache lines */
    size_t size = (sizeof(struct local) + 63) / 64 * 64;
    struct local *l = aligned_alloc(64, size);
    if (!l)
        abort();
    memset(l, 0, size);
    randombytes_buf(l->hash_key, sizeof(l->hash_key));
    for (size_t i = 0; i < SHARDS; i++) {
        struct shard *s = &l->shards[i];
        pthread_mutex_init(&s->lock, NULL);
        s->heads = dagi_xcalloc(heads, sizeof(*s->heads));
        s->mask = heads - 1;
        s->cap = per_shard;
    }
    *state = l;
    return DAGI_OK;
}

static void free_chain(struct bucket *b)
{
    while (b) {
        struct bucket *next = b->next;
        free(b);
        b = next;
    }
}

static void local_close(void *state)
{
    struct local *l = state;
    for (size_t i = 0; i < SHARDS; i++) {
        struct shard *s = &l->shards[i];
        for (size_t h = 0; h <= s->mask; h++)
            free_chain(s->heads[h]);
        free_chain(s->free_list);
        free(s->heads);
        pthread_mutex_destroy(&s->lock);
    }
    free(l);
}

static void local_stats(void *state, struct dagi_ratelimit_stats *out)
{
    struct local *l = state;
    for (size_t i = 0; i < SHARDS; i++) {
        struct shard *s = &l->shards[i];
        pthread_mutex_lock(&s->lock);
        out->allowed += s->allowed;
        out->refused += s->refused;
        out->failed_open += s->failed_open;
        out->evicted += s->evicted;
        out->buckets += s->count;
        pthread_mutex_unlock(&s->lock);
    }
}

const struct dagi_ratelimit_ops dagi_ratelimit_local_ops = {
    .name = "local",
    .open = local_open,
    .close = local_close,
    .take = local_take,
    .stats = local_stats,
};
