/* API-key records and the lookup cache (keystore.h).
 *
 * Statements are single-row and written once for both engines.  Writes run
 * in write transactions (SQLite: the in-process writer token, so writers
 * queue fairly; PostgreSQL: SERIALIZABLE) retried on DAGI_EAGAIN.  Reads
 * are autocommit statements: one row, nothing to keep consistent.
 *
 * The cache is a fixed array used as a ring: each insert takes the slot
 * under the hand and moves it on, so the slot replaced is always the one
 * filled longest ago - with one TTL for all, the first to go stale anyway.
 * Slots are chained by index into a hash of the key id.  One mutex guards
 * it; what it protects is a probe and a copy of one record. */
#include "access/keystore.h"

#include "core/clock.h"
#include "core/mem.h"
#include "store/db.h"

#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_CACHE_ENTRIES 4096
#define DEFAULT_CACHE_TTL_MS 5000
#define MAX_CACHE_TTL_MS 3600000
#define DEFAULT_LIST_LIMIT 1000
#define MAX_LIST_LIMIT 10000
#define WRITE_TRIES 5
#define CREATE_TRIES 3 /* fresh ids on the (2^-60-ish) chance of a collision */
/* last_used_at_ms is written at most this often per key and process, and
 * only on a cache miss: the column says "in use lately", not "last request". */
#define TOUCH_EVERY_MS 60000

/* A key's record as the store has it, minus the name. */
struct record {
    unsigned char hash[DAGI_APIKEY_HASH_BYTES];
    int64_t expires_at_ms, revoked_at_ms, last_used_at_ms; /* 0: unset */
    struct dagi_principal who;
};

struct slot {
    int32_t next; /* chain, -1 ends it */
    bool used;
    int64_t fetched_ns; /* monotonic */
    struct record rec;
};

struct dagi_keystore {
    struct dagi_db *db;
    struct dagi_apikey_secret secret;
    pthread_mutex_t lock; /* the cache below */
    struct slot *slots;
    size_t cap, hand;
    int32_t *heads;
    size_t mask;
    int64_t ttl_ns;
    uint64_t generation; /* bumped by every revoke through this keystore */
};

/* --- the cache --- */

static size_t id_bucket(const struct dagi_keystore *ks, const char *id)
{
    /* ids in the cache come from the store, where they are random */
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < DAGI_APIKEY_ID_LEN; i++)
        h = (h ^ (unsigned char)id[i]) * 1099511628211ULL;
    return (size_t)h & ks->mask;
}

static int32_t cache_find(const struct dagi_keystore *ks, const char *id)
{
    for (int32_t i = ks->heads[id_bucket(ks, id)]; i >= 0; i = ks->slots[i].next)
        if (strcmp(ks->slots[i].rec.who.key_id, id) == 0)
            return i;
    return -1;
}

static void cache_unlink(struct dagi_keystore *ks, int32_t victim)
{
    int32_t *link = &ks->heads[id_bucket(ks, ks->slots[victim].rec.who.key_id)];
    while (*link != victim)
        link = &ks->slots[*link].next;
    *link = ks->slots[victim].next;
    ks->slots[victim].used = false;
    sodium_memzero(ks->slots[victim].rec.hash, DAGI_APIKEY_HASH_BYTES);
}

/* 1 with a fresh record copied to *out, 0 on a miss. */
static int cache_get(struct dagi_keystore *ks, const char *id, struct record *out)
{
    int hit = 0;
    if (!ks->cap)
        return 0;
    pthread_mutex_lock(&ks->lock);
    int32_t i = cache_find(ks, id);
    if (i >= 0 && dagi_clock_mono_ns() - ks->slots[i].fetched_ns < ks->ttl_ns) {
        *out = ks->slots[i].rec;
        hit = 1;
    }
    pthread_mutex_unlock(&ks->lock);
    return hit;
}

static uint64_t cache_generation(struct dagi_keystore *ks)
{
    pthread_mutex_lock(&ks->lock);
    uint64_t g = ks->generation;
    pthread_mutex_unlock(&ks->lock);
    return g;
}

/* Stores a record read while the generation was `seen`; dropped when a
 * revoke happened since, as the record may predate it. */
static void cache_put(struct dagi_keystore *ks, const struct record *rec, int64_t fetched_ns,
                      uint64_t seen)
{
    if (!ks->cap)
        return;
    pthread_mutex_lock(&ks->lock);
    if (ks->generation == seen) {
        int32_t old = cache_find(ks, rec->who.key_id);
        if (old >= 0)
            cache_unlink(ks, old);
        int32_t at = (int32_t)ks->hand;
        ks->hand = (ks->hand + 1) % ks->cap;
        if (ks->slots[at].used)
            cache_unlink(ks, at);
        struct slot *s = &ks->slots[at];
        s->rec = *rec;
        s->fetched_ns = fetched_ns;
        s->used = true;
        size_t b = id_bucket(ks, rec->who.key_id);
        s->next = ks->heads[b];
        ks->heads[b] = at;
    }
    pthread_mutex_unlock(&ks->lock);
}

static void cache_invalidate(struct dagi_keystore *ks, const char *id)
{
    pthread_mutex_lock(&ks->lock);
    ks->generation++;
    if (ks->cap) {
        int32_t i = cache_find(ks, id);
        if (i >= 0)
            cache_unlink(ks, i);
    }
    pthread_mutex_unlock(&ks->lock);
}

/* --- lifecycle --- */

int dagi_keystore_new(struct dagi_db *db, const struct dagi_apikey_secret *secret,
                      const struct dagi_keystore_opts *opts, struct dagi_keystore **out,
                      struct dagi_error *err)
{
    if (!db || !secret)
        return dagi_error_set(err, DAGI_EINVAL, "keystore: db and secret are required");
    struct dagi_keystore_opts o = opts ? *opts : (struct dagi_keystore_opts){0};
    if (o.cache_entries == 0)
        o.cache_entries = DEFAULT_CACHE_ENTRIES;
    if (o.cache_entries > INT32_MAX / 2)
        return dagi_error_set(err, DAGI_EINVAL, "keystore: cache_entries too large");
    if (o.cache_ttl_ms == 0)
        o.cache_ttl_ms = DEFAULT_CACHE_TTL_MS;
    if (o.cache_ttl_ms > MAX_CACHE_TTL_MS)
        return dagi_error_set(err, DAGI_EINVAL, "keystore: a cache TTL over %d ms defeats revoking",
                              MAX_CACHE_TTL_MS);
    struct dagi_keystore *ks = dagi_xcalloc(1, sizeof(*ks));
    ks->db = db;
    ks->secret = *secret;
    pthread_mutex_init(&ks->lock, NULL);
    if (o.cache_ttl_ms > 0) {
        size_t nb = 1;
        while (nb < o.cache_entries)
            nb <<= 1;
        ks->cap = o.cache_entries;
        ks->slots = dagi_xcalloc(ks->cap, sizeof(*ks->slots));
        ks->heads = dagi_xmalloc(nb * sizeof(*ks->heads));
        memset(ks->heads, 0xff, nb * sizeof(*ks->heads)); /* all -1 */
        ks->mask = nb - 1;
        ks->ttl_ns = o.cache_ttl_ms * 1000000;
    }
    *out = ks;
    return DAGI_OK;
}

void dagi_keystore_free(struct dagi_keystore *ks)
{
    if (!ks)
        return;
    if (ks->slots)
        sodium_memzero(ks->slots, ks->cap * sizeof(*ks->slots));
    free(ks->slots);
    free(ks->heads);
    pthread_mutex_destroy(&ks->lock);
    dagi_apikey_secret_wipe(&ks->secret);
    free(ks);
}

/* --- helpers --- */

static bool role_valid(const char *r)
{
    size_t n = r ? strlen(r) : 0;
    if (n == 0 || n > DAGI_KEYSTORE_ROLE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = r[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ':' || c == '-'))
            return false;
    }
    return true;
}

/* Copies a text cell into a capped field; false when it does not fit. */
static bool copy_cell(struct dagi_db_rows *rows, size_t col, char *dst, size_t cap)
{
    size_t len = 0;
    const char *s = dagi_db_col_text(rows, col, &len);
    if (!s)
        len = 0;
    if (len >= cap || (len && memchr(s, '\0', len)))
        return false;
    if (len)
        memcpy(dst, s, len);
    dst[len] = '\0';
    return true;
}

static int64_t int_cell(struct dagi_db_rows *rows, size_t col)
{
    return dagi_db_col_null(rows, col) ? 0 : dagi_db_col_int(rows, col);
}

/* roles: a JSON array of role strings, the same rules as at create. */
static bool parse_roles(const char *text, size_t len, struct dagi_principal *who)
{
    json_t *a = text ? json_loadb(text, len, 0, NULL) : NULL;
    bool ok = json_is_array(a) && json_array_size(a) <= DAGI_KEYSTORE_ROLES_MAX;
    size_t i;
    json_t *v;
    who->role_count = 0;
    if (ok) {
        json_array_foreach(a, i, v)
        {
            if (!json_is_string(v) || !role_valid(json_string_value(v))) {
                ok = false;
                break;
            }
            snprintf(who->roles[i], sizeof(who->roles[i]), "%s", json_string_value(v));
            who->role_count = i + 1;
        }
    }
    json_decref(a);
    return ok;
}

/* Reads the principal from columns key_id, user_id, team, roles at `col`. */
static int row_principal(struct dagi_db_rows *rows, size_t col, struct dagi_principal *who,
                         struct dagi_error *err)
{
    size_t roles_len = 0;
    const char *roles = dagi_db_col_text(rows, col + 3, &roles_len);
    memset(who, 0, sizeof(*who));
    if (!copy_cell(rows, col, who->key_id, sizeof(who->key_id)) ||
        !copy_cell(rows, col + 1, who->user_id, sizeof(who->user_id)) ||
        !copy_cell(rows, col + 2, who->team, sizeof(who->team)) ||
        !parse_roles(roles, roles_len, who))
        return dagi_error_set(err, DAGI_EIO, "api_keys row %s does not fit the record limits",
                              who->key_id[0] ? who->key_id : "?");
    return DAGI_OK;
}

/* Runs fn in a write transaction, again on DAGI_EAGAIN (busy SQLite, a
 * PostgreSQL serialization failure) after a short randomised pause, so
 * writers that collided do not collide again in step. */
static int write_tx(struct dagi_db_conn *conn, int tries,
                    int (*fn)(struct dagi_db_conn *conn, void *ud, struct dagi_error *err),
                    void *ud, struct dagi_error *err)
{
    for (int attempt = 1;; attempt++) {
        int rc = dagi_db_begin(conn, true, err);
        if (rc == DAGI_OK)
            rc = fn(conn, ud, err);
        if (rc == DAGI_OK)
            rc = dagi_db_commit(conn, err); /* a failed commit ends the transaction */
        else
            dagi_db_rollback(conn);
        if (rc != DAGI_EAGAIN || attempt >= tries)
            return rc;
        long pause_us = (long)(1000u << attempt) + (long)randombytes_uniform(1000);
        struct timespec ts = {0, pause_us * 1000L};
        nanosleep(&ts, NULL);
    }
}

/* --- create --- */

struct insert_job {
    const struct dagi_keystore_key_spec *spec;
    const struct dagi_apikey *key;
    const char *roles_json;
    int64_t now_ms;
};

static int on_insert(struct dagi_db_conn *conn, void *ud, struct dagi_error *err)
{
    struct insert_job *job = ud;
    const struct dagi_keystore_key_spec *s = job->spec;
    struct dagi_db_value params[] = {
        dagi_db_text(job->key->id),
        dagi_db_blob(job->key->hash, DAGI_APIKEY_HASH_BYTES),
        dagi_db_text(s->user_id),
        s->team && *s->team ? dagi_db_text(s->team) : dagi_db_null(),
        dagi_db_text(job->roles_json),
        s->name ? dagi_db_text(s->name) : dagi_db_null(),
        dagi_db_int(job->now_ms),
        s->expires_at_ms ? dagi_db_int(s->expires_at_ms) : dagi_db_null(),
    };
    return dagi_db_exec(conn,
                        "INSERT INTO api_keys (id, hash, user_id, team, roles, name,"
                        " created_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                        params, DAGI_ARRAY_LEN(params), NULL, err);
}

static int check_spec(const struct dagi_keystore_key_spec *s, struct dagi_error *err)
{
    if (!s || !s->user_id || !*s->user_id || strlen(s->user_id) > DAGI_KEYSTORE_USER_MAX)
        return dagi_error_set(err, DAGI_EINVAL, "API key: user_id must be 1-%d bytes",
                              DAGI_KEYSTORE_USER_MAX);
    if (s->team && strlen(s->team) > DAGI_KEYSTORE_TEAM_MAX)
        return dagi_error_set(err, DAGI_EINVAL, "API key: team over %d bytes",
                              DAGI_KEYSTORE_TEAM_MAX);
    if (s->name && strlen(s->name) > DAGI_KEYSTORE_NAME_MAX)
        return dagi_error_set(err, DAGI_EINVAL, "API key: name over %d bytes",
                              DAGI_KEYSTORE_NAME_MAX);
    if (s->role_count > DAGI_KEYSTORE_ROLES_MAX || (s->role_count && !s->roles))
        return dagi_error_set(err, DAGI_EINVAL, "API key: at most %d roles",
                              DAGI_KEYSTORE_ROLES_MAX);
    for (size_t i = 0; i < s->role_count; i++)
        if (!role_valid(s->roles[i]))
            return dagi_error_set(err, DAGI_EINVAL,
                                  "API key: role %zu must be 1-%d of [A-Za-z0-9_.:-]", i,
                                  DAGI_KEYSTORE_ROLE_MAX);
    if (s->expires_at_ms < 0)
        return dagi_error_set(err, DAGI_EINVAL, "API key: negative expiry");
    return DAGI_OK;
}

int dagi_keystore_create(struct dagi_keystore *ks, const struct dagi_keystore_key_spec *spec,
                         int64_t now_ms, char key_out[DAGI_KEYSTORE_KEY_BUF],
                         char id_out[DAGI_APIKEY_ID_LEN + 1], struct dagi_error *err)
{
    int rc = check_spec(spec, err);
    if (rc)
        return rc;
    json_t *roles = json_array();
    for (size_t i = 0; i < spec->role_count; i++)
        json_array_append_new(roles, json_string(spec->roles[i]));
    char *roles_json = json_dumps(roles, JSON_COMPACT);
    json_decref(roles);
    if (!roles_json)
        abort(); /* out of memory: the policy in err.h */

    struct dagi_db_conn *conn = NULL;
    struct dagi_apikey key;
    rc = dagi_db_acquire(ks->db, &conn, err);
    if (rc)
        goto out;
    for (int attempt = 1;; attempt++) {
        dagi_apikey_generate(&ks->secret, &key);
        struct insert_job job = {spec, &key, roles_json, now_ms};
        rc = write_tx(conn, WRITE_TRIES, on_insert, &job, err);
        if (rc != DAGI_EEXIST || attempt >= CREATE_TRIES)
            break;
    }
    if (rc == DAGI_OK) {
        memcpy(key_out, key.text, DAGI_KEYSTORE_KEY_BUF);
        if (id_out)
            memcpy(id_out, key.id, sizeof(key.id));
    }
    dagi_apikey_wipe(&key);
    dagi_db_release(conn);
out:
    free(roles_json);
    return rc;
}

/* --- list --- */

int dagi_keystore_list(struct dagi_keystore *ks, const char *user_id, size_t limit,
                       struct dagi_keystore_list *out, struct dagi_error *err)
{
    if (limit == 0)
        limit = DEFAULT_LIST_LIMIT;
    if (limit > MAX_LIST_LIMIT)
        limit = MAX_LIST_LIMIT;
    struct dagi_db_conn *conn = NULL;
    struct dagi_db_rows *rows = NULL;
    struct dagi_keystore_list list = {0};
    size_t cap = 0;
    /* one row past the limit tells whether there were more */
    struct dagi_db_value params[] = {dagi_db_int((int64_t)limit + 1),
                                     user_id ? dagi_db_text(user_id) : dagi_db_null()};
    int rc = dagi_db_acquire(ks->db, &conn, err);
    if (rc)
        return rc;
    /* the hash column is never read here, so it can never leak from here */
    rc = dagi_db_query(conn,
                       user_id ? "SELECT id, user_id, team, roles, name, created_at_ms,"
                                 " expires_at_ms, revoked_at_ms, last_used_at_ms FROM api_keys"
                                 " WHERE user_id = $2 ORDER BY created_at_ms, id LIMIT $1"
                               : "SELECT id, user_id, team, roles, name, created_at_ms,"
                                 " expires_at_ms, revoked_at_ms, last_used_at_ms FROM api_keys"
                                 " ORDER BY created_at_ms, id LIMIT $1",
                       params, user_id ? 2 : 1, &rows, err);
    if (rc)
        goto out;
    while ((rc = dagi_db_rows_next(rows, err)) == 1) {
        if (list.count == limit) {
            list.truncated = true;
            continue;
        }
        if (list.count == cap) {
            cap = cap ? cap * 2 : 16;
            list.entries = dagi_xrealloc(list.entries, cap * sizeof(*list.entries));
        }
        struct dagi_keystore_entry *e = &list.entries[list.count];
        memset(e, 0, sizeof(*e));
        rc = row_principal(rows, 0, &e->who, err);
        if (rc)
            break;
        if (!copy_cell(rows, 4, e->name, sizeof(e->name))) {
            rc = dagi_error_set(err, DAGI_EIO, "api_keys row %s: name too long", e->who.key_id);
            break;
        }
        e->created_at_ms = int_cell(rows, 5);
        e->expires_at_ms = int_cell(rows, 6);
        e->revoked_at_ms = int_cell(rows, 7);
        e->last_used_at_ms = int_cell(rows, 8);
        list.count++;
    }
    dagi_db_rows_free(rows);
out:
    dagi_db_release(conn);
    if (rc < 0) {
        dagi_keystore_list_release(&list);
        return rc;
    }
    *out = list;
    return DAGI_OK;
}

void dagi_keystore_list_release(struct dagi_keystore_list *list)
{
    free(list->entries);
    memset(list, 0, sizeof(*list));
}

/* --- revoke --- */

/* A key id and a time: what revoke and touch write. */
struct id_at {
    const char *id;
    int64_t now_ms;
};

static int on_revoke(struct dagi_db_conn *conn, void *ud, struct dagi_error *err)
{
    struct id_at *job = ud;
    struct dagi_db_value params[] = {dagi_db_text(job->id), dagi_db_int(job->now_ms)};
    struct dagi_db_rows *rows = NULL;
    int64_t affected = 0;
    int rc = dagi_db_exec(conn,
                          "UPDATE api_keys SET revoked_at_ms = $2"
                          " WHERE id = $1 AND revoked_at_ms IS NULL",
                          params, 2, &affected, err);
    if (rc || affected > 0)
        return rc;
    /* nothing changed: already revoked (fine) or no such key */
    rc = dagi_db_query(conn, "SELECT 1 FROM api_keys WHERE id = $1", params, 1, &rows, err);
    if (rc)
        return rc;
    rc = dagi_db_rows_next(rows, err);
    dagi_db_rows_free(rows);
    if (rc == 0)
        return dagi_error_set(err, DAGI_ENOENT, "unknown key id %s", job->id);
    return rc < 0 ? rc : DAGI_OK;
}

int dagi_keystore_revoke(struct dagi_keystore *ks, const char *key_id, int64_t now_ms,
                         struct dagi_error *err)
{
    if (!dagi_apikey_id_valid(key_id))
        return dagi_error_set(err, DAGI_ENOENT, "unknown key id");
    struct dagi_db_conn *conn = NULL;
    struct id_at job = {key_id, now_ms};
    int rc = dagi_db_acquire(ks->db, &conn, err);
    if (rc)
        return rc;
    rc = write_tx(conn, WRITE_TRIES, on_revoke, &job, err);
    dagi_db_release(conn);
    /* after the commit: a lookup that read the row before it cannot cache
     * it any more (see cache_put) */
    if (rc == DAGI_OK)
        cache_invalidate(ks, key_id);
    return rc;
}

/* --- lookup --- */

/* The verdict on a record for a presented hash.  The secret is checked
 * first, so revoked and expired are only ever told to a holder of the key. */
static int judge(const struct record *rec, const unsigned char hash[DAGI_APIKEY_HASH_BYTES],
                 int64_t now_ms, struct dagi_principal *out, struct dagi_error *err)
{
    if (!dagi_apikey_hash_equal(rec->hash, hash))
        return dagi_error_set(err, DAGI_ENOENT, "unknown key");
    if (rec->revoked_at_ms)
        return dagi_error_set(err, DAGI_EPERM, "key revoked");
    if (rec->expires_at_ms && now_ms >= rec->expires_at_ms)
        return dagi_error_set(err, DAGI_EPERM, "key expired");
    *out = rec->who;
    return DAGI_OK;
}

static int fetch_record(struct dagi_db_conn *conn, const char *id, struct record *rec,
                        struct dagi_error *err)
{
    struct dagi_db_value param = dagi_db_text(id);
    struct dagi_db_rows *rows = NULL;
    int rc = dagi_db_query(conn,
                           "SELECT id, user_id, team, roles, hash, expires_at_ms, revoked_at_ms,"
                           " last_used_at_ms FROM api_keys WHERE id = $1",
                           &param, 1, &rows, err);
    if (rc)
        return rc;
    rc = dagi_db_rows_next(rows, err);
    if (rc == 0)
        rc = dagi_error_set(err, DAGI_ENOENT, "unknown key");
    if (rc == 1) {
        size_t hlen = 0;
        const void *h = dagi_db_col_blob(rows, 4, &hlen);
        memset(rec, 0, sizeof(*rec));
        rc = row_principal(rows, 0, &rec->who, err);
        if (rc == DAGI_OK && (!h || hlen != DAGI_APIKEY_HASH_BYTES))
            rc = dagi_error_set(err, DAGI_EIO, "api_keys row %s: bad hash", id);
        if (rc == DAGI_OK) {
            memcpy(rec->hash, h, DAGI_APIKEY_HASH_BYTES);
            rec->expires_at_ms = int_cell(rows, 5);
            rec->revoked_at_ms = int_cell(rows, 6);
            rec->last_used_at_ms = int_cell(rows, 7);
        }
    }
    dagi_db_rows_free(rows);
    return rc;
}

static int on_touch(struct dagi_db_conn *conn, void *ud, struct dagi_error *err)
{
    const struct id_at *job = ud;
    struct dagi_db_value params[] = {dagi_db_text(job->id), dagi_db_int(job->now_ms),
                                     dagi_db_int(job->now_ms - TOUCH_EVERY_MS)};
    return dagi_db_exec(conn,
                        "UPDATE api_keys SET last_used_at_ms = $2 WHERE id = $1"
                        " AND (last_used_at_ms IS NULL OR last_used_at_ms < $3)",
                        params, 3, NULL, err);
}

/* The cache missed: read the record, cache it, and note the key's use. */
static int fetch_and_cache(struct dagi_keystore *ks, const char *id,
                           const unsigned char hash[DAGI_APIKEY_HASH_BYTES], int64_t now_ms,
                           struct record *rec, struct dagi_error *err)
{
    /* the generation and the time are taken before the read: the record
     * is no newer than either */
    uint64_t seen = cache_generation(ks);
    int64_t fetched_ns = dagi_clock_mono_ns();
    struct dagi_db_conn *conn = NULL;
    int rc = dagi_db_acquire(ks->db, &conn, err);
    if (rc)
        return rc;
    rc = fetch_record(conn, id, rec, err);
    if (rc == DAGI_OK) {
        cache_put(ks, rec, fetched_ns, seen);
        bool usable = dagi_apikey_hash_equal(rec->hash, hash) && !rec->revoked_at_ms &&
                      !(rec->expires_at_ms && now_ms >= rec->expires_at_ms);
        if (usable && rec->last_used_at_ms < now_ms - TOUCH_EVERY_MS) {
            /* best effort and one try: it must not fail or stall the request */
            struct id_at touch = {id, now_ms};
            struct dagi_error ignored = {0};
            (void)write_tx(conn, 1, on_touch, &touch, &ignored);
        }
    }
    dagi_db_release(conn);
    return rc;
}

int dagi_keystore_lookup_cached(struct dagi_keystore *ks, const char *presented, size_t len,
                                int64_t now_ms, struct dagi_principal *out, struct dagi_error *err)
{
    char id[DAGI_APIKEY_ID_LEN + 1];
    unsigned char hash[DAGI_APIKEY_HASH_BYTES];
    struct record rec;
    int rc = dagi_apikey_parse(&ks->secret, presented, len, id, hash, err);
    if (rc)
        return rc;
    if (!cache_get(ks, id, &rec))
        return dagi_error_set(err, DAGI_EAGAIN, "key %s not cached", id);
    rc = judge(&rec, hash, now_ms, out, err);
    sodium_memzero(&rec, sizeof(rec));
    return rc;
}

int dagi_keystore_lookup(struct dagi_keystore *ks, const char *presented, size_t len,
                         int64_t now_ms, struct dagi_principal *out, struct dagi_error *err)
{
    char id[DAGI_APIKEY_ID_LEN + 1];
    unsigned char hash[DAGI_APIKEY_HASH_BYTES];
    struct record rec;
    int rc = dagi_apikey_parse(&ks->secret, presented, len, id, hash, err);
    if (rc)
        return rc;
    if (!cache_get(ks, id, &rec)) {
        rc = fetch_and_cache(ks, id, hash, now_ms, &rec, err);
        if (rc)
            return rc;
    }
    rc = judge(&rec, hash, now_ms, out, err);
    sodium_memzero(&rec, sizeof(rec));
    return rc;
}
