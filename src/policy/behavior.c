/* The behaviour policy (behavior.h): the decision table, quiet hours,
 * domain keywords, and the duplicate memory. */
#include "policy/behavior.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "policy/textnorm.h"
#include "policy/tz.h"

#define NO_ENTRY UINT32_MAX

_Static_assert(DAGI_BEHAVIOR_KEY_BYTES == crypto_generichash_KEYBYTES, "libsodium key size");
_Static_assert(DAGI_BEHAVIOR_HASH_BYTES >= crypto_generichash_BYTES_MIN &&
                   DAGI_BEHAVIOR_HASH_BYTES >= sizeof(uint64_t),
               "hash size: libsodium's minimum, and room for the bucket index");

/* --- the duplicate memory ---
 *
 * A ring of `capacity` entries in the order they were written, which is
 * also their age order because an entry is never refreshed in place: the
 * slot at `head` is the oldest once the ring is full, and writing there
 * evicts it.  A chained hash index (bucket heads + `next`) finds an entry by
 * its hash; the hash is keyed and uniform, so its first bytes pick the
 * bucket.  An entry found stale is unlinked and a fresh one written, so the
 * window always counts from the last message let through. */
struct seen_entry {
    struct dagi_behavior_seen seen;
    uint32_t next; /* next in the bucket chain */
    bool linked;   /* in the index (false: never written, evicted or stale) */
};

struct dagi_behavior {
    pthread_mutex_t lock;
    uint8_t key[DAGI_BEHAVIOR_KEY_BYTES];
    int64_t window_ms;
    size_t capacity, written, head;
    struct seen_entry *ring;
    uint32_t *buckets;
    size_t bucket_mask;
};

struct dagi_behavior *dagi_behavior_new(const struct dagi_behavior_options *options)
{
    struct dagi_behavior_options o = options ? *options : (struct dagi_behavior_options){0};
    if (o.capacity == 0)
        o.capacity = DAGI_BEHAVIOR_DEFAULT_CAPACITY;
    if (o.window_ms == 0)
        o.window_ms = DAGI_BEHAVIOR_DEFAULT_WINDOW_MS;
    if (o.capacity > DAGI_BEHAVIOR_MAX_CAPACITY || o.window_ms < 0)
        return NULL;
    if (sodium_init() < 0)
        abort(); /* no randomness: nothing safe to do (err.h's policy) */

    struct dagi_behavior *b = dagi_xcalloc(1, sizeof(*b));
    pthread_mutex_init(&b->lock, NULL);
    if (o.key)
        memcpy(b->key, o.key, sizeof(b->key));
    else
        randombytes_buf(b->key, sizeof(b->key));
    b->window_ms = o.window_ms;
    b->capacity = o.capacity;
    b->ring = dagi_xcalloc(o.capacity, sizeof(*b->ring));
    size_t nbuckets = 1;
    while (nbuckets < o.capacity)
        nbuckets <<= 1;
    b->buckets = dagi_xmalloc(nbuckets * sizeof(*b->buckets));
    for (size_t i = 0; i < nbuckets; i++)
        b->buckets[i] = NO_ENTRY;
    b->bucket_mask = nbuckets - 1;
    return b;
}

void dagi_behavior_free(struct dagi_behavior *b)
{
    if (!b)
        return;
    pthread_mutex_destroy(&b->lock);
    sodium_memzero(b->key, sizeof(b->key));
    free(b->ring);
    free(b->buckets);
    free(b);
}

static uint32_t *bucket_of(struct dagi_behavior *b, const uint8_t *hash)
{
    uint64_t h;
    memcpy(&h, hash, sizeof(h));
    return &b->buckets[h & b->bucket_mask];
}

static void unlink_entry(struct dagi_behavior *b, uint32_t i)
{
    uint32_t *link = bucket_of(b, b->ring[i].seen.hash);
    while (*link != i)
        link = &b->ring[*link].next;
    *link = b->ring[i].next;
    b->ring[i].linked = false;
}

/* Under the lock: true when the hash was let through less than window_ms
 * before now_ms; otherwise remembers it and returns false. */
static bool seen_check_and_add(struct dagi_behavior *b, const uint8_t *hash, int64_t now_ms)
{
    for (uint32_t i = *bucket_of(b, hash); i != NO_ENTRY; i = b->ring[i].next) {
        struct seen_entry *e = &b->ring[i];
        if (sodium_memcmp(e->seen.hash, hash, DAGI_BEHAVIOR_HASH_BYTES) != 0)
            continue;
        /* A slightly negative age is normal: two threads read the clock,
         * the later reading took the lock first.  An entry from further in
         * the "future" means the clock went back; it is stale rather than a
         * reason to silence the user until the clock catches up. */
        int64_t age = now_ms - e->seen.seen_ms;
        if (age > -b->window_ms && age < b->window_ms)
            return true;
        unlink_entry(b, i);
        break;
    }
    uint32_t slot = (uint32_t)b->head;
    if (b->ring[slot].linked)
        unlink_entry(b, slot); /* evicts the oldest */
    struct seen_entry *e = &b->ring[slot];
    memcpy(e->seen.hash, hash, DAGI_BEHAVIOR_HASH_BYTES);
    e->seen.seen_ms = now_ms;
    uint32_t *bucket = bucket_of(b, hash);
    e->next = *bucket;
    e->linked = true;
    *bucket = slot;
    b->head = (b->head + 1) % b->capacity;
    if (b->written < b->capacity)
        b->written++;
    return false;
}

size_t dagi_behavior_seen_list(struct dagi_behavior *b,
                               void (*each)(const struct dagi_behavior_seen *seen, void *ctx),
                               void *ctx)
{
    size_t n = 0;
    pthread_mutex_lock(&b->lock);
    size_t start = b->written < b->capacity ? 0 : b->head;
    for (size_t k = 0; k < b->written; k++) {
        const struct seen_entry *e = &b->ring[(start + k) % b->capacity];
        if (!e->linked)
            continue;
        n++;
        if (each)
            each(&e->seen, ctx);
    }
    pthread_mutex_unlock(&b->lock);
    return n;
}

static void hash_field(crypto_generichash_state *st, const char *s)
{
    /* Length first, so that ("ab", "c") and ("a", "bc") differ. */
    uint64_t n = s ? strlen(s) : 0;
    uint8_t len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)(n >> (8 * i));
    crypto_generichash_update(st, len, sizeof(len));
    if (n)
        crypto_generichash_update(st, (const uint8_t *)s, n);
}

/* The message's key; false when its text is empty after normalisation. */
static bool message_hash(const struct dagi_behavior *b, const struct dagi_behavior_request *r,
                         uint8_t hash[DAGI_BEHAVIOR_HASH_BYTES])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, b->key, sizeof(b->key), DAGI_BEHAVIOR_HASH_BYTES);
    hash_field(&st, r->agent_id);
    hash_field(&st, r->chat_id);
    hash_field(&st, r->user_id);
    /* The normalised text streams through a small buffer: no copy of the
     * whole text is made, and none is kept. */
    struct dagi_textnorm it;
    uint8_t buf[256];
    size_t used = 0, total = 0;
    dagi_textnorm_init(&it, r->text, r->text_len);
    for (uint32_t cp; dagi_textnorm_next(&it, &cp);) {
        if (used + 4 > sizeof(buf)) {
            crypto_generichash_update(&st, buf, used);
            used = 0;
        }
        used += dagi_utf8_encode(cp, (char *)buf + used);
        total++;
    }
    crypto_generichash_update(&st, buf, used);
    crypto_generichash_final(&st, hash, DAGI_BEHAVIOR_HASH_BYTES);
    sodium_memzero(buf, sizeof(buf));
    return total > 0;
}

/* --- quiet hours --- */

/* "HH:MM" (00:00-23:59) to minutes after midnight, or -1. */
static int parse_clock(const char *s)
{
    if (!s || strlen(s) != 5 || s[2] != ':')
        return -1;
    for (int i = 0; i < 5; i++)
        if (i != 2 && (s[i] < '0' || s[i] > '9'))
            return -1;
    int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    return h < 24 && m < 60 ? h * 60 + m : -1;
}

int dagi_behavior_in_quiet_hours(const char *from, const char *to, const char *tz, int64_t now_ms,
                                 bool *in, struct dagi_error *err)
{
    if (!from || !to) {
        *in = false;
        return 0;
    }
    int f = parse_clock(from), t = parse_clock(to);
    if (f < 0 || t < 0)
        return dagi_error_set(err, DAGI_EINVAL, "quiet hours \"%.16s\"-\"%.16s\": expected HH:MM",
                              from, to);
    int64_t now_s = now_ms / 1000 - (now_ms % 1000 < 0); /* floor */
    int32_t off;
    int rc = dagi_tz_offset(tz ? tz : "UTC", now_s, &off, err);
    if (rc)
        return rc;
    int64_t local = (now_s + off) % 86400;
    int minute = (int)((local < 0 ? local + 86400 : local) / 60);
    *in = f < t ? minute >= f && minute < t : f > t && (minute >= f || minute < t);
    return 0;
}

/* --- domain keywords --- */

/* Whether the keyword's normalised form follows at text[pos..len). */
static bool match_at(const char *text, size_t len, size_t pos, const char *kw, size_t kw_len)
{
    struct dagi_textnorm t, k;
    uint32_t a, c;
    dagi_textnorm_init(&t, text + pos, len - pos);
    dagi_textnorm_init(&k, kw, kw_len);
    while (dagi_textnorm_next(&k, &c))
        if (!dagi_textnorm_next(&t, &a) || a != c)
            return false;
    return true;
}

static bool keyword_in(const char *text, size_t len, const char *kw)
{
    size_t kw_len = kw ? strlen(kw) : 0;
    struct dagi_textnorm k;
    uint32_t first;
    dagi_textnorm_init(&k, kw, kw_len);
    if (!dagi_textnorm_next(&k, &first))
        return false; /* empty keywords never match */
    bool anywhere = !dagi_text_is_word(first);
    /* in_word: the previous character is a letter or digit, or an apostrophe
     * right after one ("об'єднання" is one word). */
    bool in_word = false, last_word = false;
    for (size_t pos = 0; pos < len;) {
        uint32_t cp;
        size_t n = dagi_utf8_decode(text + pos, len - pos, &cp);
        bool word = dagi_text_is_word(cp);
        bool start = anywhere ? !dagi_text_is_space(cp) : word && !in_word;
        if (start && match_at(text, len, pos, kw, kw_len))
            return true;
        in_word = word || (dagi_text_is_apostrophe(cp) && last_word);
        last_word = word;
        pos += n;
    }
    return false;
}

bool dagi_behavior_keyword_match(const char *text, size_t text_len, const char *const *keywords,
                                 size_t n)
{
    if (n == 0)
        return true;
    if (!text)
        text_len = 0;
    for (size_t i = 0; i < n; i++)
        if (keyword_in(text ? text : "", text_len, keywords[i]))
            return true;
    return false;
}

/* --- the decision --- */

static int decide(const struct dagi_behavior_params *p, const struct dagi_behavior_request *r,
                  struct dagi_behavior_decision *d, struct dagi_error *err)
{
    bool in_domain;
    switch (r->chat_type) {
    case DAGI_CHAT_PRIVATE: {
        bool quiet;
        int rc = dagi_behavior_in_quiet_hours(p->quiet_from, p->quiet_to, p->quiet_tz, r->now_ms,
                                              &quiet, err);
        if (rc)
            return rc;
        *d = quiet ? (struct dagi_behavior_decision){DAGI_BEHAVIOR_ACK, "private_quiet_hours", NULL}
                   : (struct dagi_behavior_decision){DAGI_BEHAVIOR_FULL, "private", NULL};
        return 0;
    }
    case DAGI_CHAT_GROUP:
    case DAGI_CHAT_SUPERGROUP:
        if (!r->addressed_to_bot && p->silent_in_groups) {
            *d = (struct dagi_behavior_decision){DAGI_BEHAVIOR_SILENT, "group_not_addressed", NULL};
            return 0;
        }
        in_domain = dagi_behavior_keyword_match(r->text, r->text_len, p->domain_keywords,
                                                p->domain_keyword_count);
        if (r->addressed_to_bot && in_domain)
            *d = (struct dagi_behavior_decision){DAGI_BEHAVIOR_FULL, "group_addressed_in_domain",
                                                 NULL};
        else if (r->addressed_to_bot)
            *d = (struct dagi_behavior_decision){DAGI_BEHAVIOR_ACK, "group_addressed_out_of_domain",
                                                 NULL};
        else if (in_domain)
            *d = (struct dagi_behavior_decision){DAGI_BEHAVIOR_FULL, "group_unaddressed_in_domain",
                                                 NULL};
        else
            *d = (struct dagi_behavior_decision){DAGI_BEHAVIOR_SILENT, "group_not_addressed", NULL};
        return 0;
    case DAGI_CHAT_CHANNEL:
        *d = (struct dagi_behavior_decision){DAGI_BEHAVIOR_SILENT, "channel", NULL};
        return 0;
    }
    return dagi_error_set(err, DAGI_EINVAL, "unknown chat type %d", (int)r->chat_type);
}

int dagi_behavior_decide(struct dagi_behavior *b, const struct dagi_behavior_params *params,
                         const struct dagi_behavior_request *req,
                         struct dagi_behavior_decision *out, struct dagi_error *err)
{
    struct dagi_behavior_decision d;
    if (!req->has_chat) {
        d = (struct dagi_behavior_decision){DAGI_BEHAVIOR_FULL, "no_chat", NULL};
        goto out;
    }
    /* Loop guard: two bots answering each other never stop on their own. */
    if (req->sender_is_bot || req->sender_is_agent) {
        d = (struct dagi_behavior_decision){
            DAGI_BEHAVIOR_SILENT, req->sender_is_bot ? "sender_is_bot" : "sender_is_agent", NULL};
        goto out;
    }
    /* Rows 4-6 first, without side effects: only a message that would be
     * answered is checked against, and written into, the duplicate memory. */
    int rc = decide(params, req, &d, err);
    if (rc)
        return rc;
    if (d.level != DAGI_BEHAVIOR_SILENT) {
        uint8_t hash[DAGI_BEHAVIOR_HASH_BYTES];
        if (message_hash(b, req, hash)) {
            pthread_mutex_lock(&b->lock);
            bool dup = seen_check_and_add(b, hash, req->now_ms);
            pthread_mutex_unlock(&b->lock);
            if (dup)
                d = (struct dagi_behavior_decision){DAGI_BEHAVIOR_SILENT, "duplicate", NULL};
        }
    }
    if (d.level == DAGI_BEHAVIOR_ACK)
        d.ack_text = params->ack_text ? params->ack_text : DAGI_BEHAVIOR_DEFAULT_ACK;
out:
    *out = d;
    return 0;
}

/* --- validation and names --- */

static bool empty_text(const char *s)
{
    struct dagi_textnorm it;
    uint32_t cp;
    dagi_textnorm_init(&it, s, s ? strlen(s) : 0);
    return !dagi_textnorm_next(&it, &cp);
}

int dagi_behavior_validate_params(const struct dagi_behavior_params *p, struct dagi_error *err)
{
    const char *from = p->quiet_from, *to = p->quiet_to;
    if ((from == NULL) != (to == NULL))
        return dagi_error_set(err, DAGI_EINVAL, "quiet_hours.%s: from and to must be set together",
                              from ? "to" : "from");
    if (from && parse_clock(from) < 0)
        return dagi_error_set(err, DAGI_EINVAL, "quiet_hours.from: expected HH:MM (00:00-23:59)");
    if (to && parse_clock(to) < 0)
        return dagi_error_set(err, DAGI_EINVAL, "quiet_hours.to: expected HH:MM (00:00-23:59)");
    if (from && !strcmp(from, to))
        return dagi_error_set(err, DAGI_EINVAL, "quiet_hours.to: equals from, an empty range");
    if (from || p->quiet_tz) {
        struct dagi_error tz_err = {0};
        int32_t off;
        int rc = dagi_tz_offset(p->quiet_tz ? p->quiet_tz : "UTC", 0, &off, &tz_err);
        if (rc)
            return dagi_error_set(err, rc, "quiet_hours.tz: %s", tz_err.message);
    }
    if (p->ack_text && empty_text(p->ack_text))
        return dagi_error_set(err, DAGI_EINVAL, "ack_text: empty");
    for (size_t i = 0; i < p->domain_keyword_count; i++)
        if (empty_text(p->domain_keywords[i]))
            return dagi_error_set(err, DAGI_EINVAL, "domain_keywords[%zu]: empty", i);
    return 0;
}

const char *dagi_behavior_level_name(enum dagi_behavior_level level)
{
    switch (level) {
    case DAGI_BEHAVIOR_FULL:
        return "FULL";
    case DAGI_BEHAVIOR_ACK:
        return "ACK";
    case DAGI_BEHAVIOR_SILENT:
        return "SILENT";
    }
    return "?";
}

int dagi_behavior_chat_type_parse(const char *s, enum dagi_chat_type *out)
{
    static const char *const names[] = {"private", "group", "supergroup", "channel"};
    for (size_t i = 0; s && i < DAGI_ARRAY_LEN(names); i++)
        if (!strcmp(s, names[i])) {
            *out = (enum dagi_chat_type)i;
            return 0;
        }
    return DAGI_EINVAL;
}
