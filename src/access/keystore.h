/* API-key records in the relational store (table api_keys, migration
 * 0002_api_keys), on SQLite and PostgreSQL alike.
 *
 * Every function blocks on the database: call it on the worker pool (or a
 * thread that is not an event loop), never on a loop thread - except
 * dagi_keystore_lookup_cached(), which never touches the database and may
 * run anywhere.
 *
 * The lookup cache.  Lookup runs on every request, so found records are
 * cached in memory by key id: at most `cache_entries` (default 4096) of
 * them, each for `cache_ttl_ms` (default 5 s) of monotonic time, oldest
 * replaced first.  In the steady state a request costs one BLAKE2b and a
 * probe, no database round trip.  The price is staleness: a key revoked
 * through *another* process keeps working here for up to the TTL.  A revoke
 * through this keystore drops the entry at once, and a lookup that read
 * the record before that revoke committed cannot put it back (a revocation
 * generation is checked before every insert).  Expiry is not cached: it is
 * judged on every lookup against the now_ms the caller passes.  Unknown ids
 * are not cached (random ids must not push out real keys), so each costs a
 * query: rate-limit failed lookups by client before they get here.
 *
 * Writers retry DAGI_EAGAIN (SQLite busy, a PostgreSQL serialization
 * failure) a few times before giving up with it.
 *
 * Ownership: the keystore keeps pointers to the db and copies the server
 * secret; the db must outlive it.  Principals and list entries are plain
 * values the caller owns. */
#ifndef DAGI_ACCESS_KEYSTORE_H
#define DAGI_ACCESS_KEYSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "access/apikey.h"
#include "core/err.h"

struct dagi_db;
struct dagi_keystore;

/* Field caps, checked at create (DAGI_EINVAL over them). */
#define DAGI_KEYSTORE_USER_MAX 128
#define DAGI_KEYSTORE_TEAM_MAX 128
#define DAGI_KEYSTORE_NAME_MAX 128
#define DAGI_KEYSTORE_ROLE_MAX 64 /* a role: 1-64 of [A-Za-z0-9_.:-] */
#define DAGI_KEYSTORE_ROLES_MAX 16
/* Buffer size for the plaintext key dagi_keystore_create() returns. */
#define DAGI_KEYSTORE_KEY_BUF (DAGI_APIKEY_LEN + 1)

/* Who a key speaks for.  team is "" when the key has none. */
struct dagi_principal {
    char key_id[DAGI_APIKEY_ID_LEN + 1];
    char user_id[DAGI_KEYSTORE_USER_MAX + 1];
    char team[DAGI_KEYSTORE_TEAM_MAX + 1];
    char roles[DAGI_KEYSTORE_ROLES_MAX][DAGI_KEYSTORE_ROLE_MAX + 1];
    size_t role_count;
};

struct dagi_keystore_opts {
    size_t cache_entries; /* 0 = 4096 */
    int64_t cache_ttl_ms; /* 0 = 5000; negative = no cache */
};

struct dagi_keystore_key_spec {
    const char *user_id;      /* required */
    const char *team;         /* NULL or "" for none */
    const char *const *roles; /* role_count strings */
    size_t role_count;
    const char *name;      /* a label for humans; NULL for none */
    int64_t expires_at_ms; /* 0 = never */
};

/* One key as list() shows it: no secret, no hash.  Times are Unix ms; 0
 * where unset (never expires, not revoked, never used). */
struct dagi_keystore_entry {
    struct dagi_principal who;
    char name[DAGI_KEYSTORE_NAME_MAX + 1];
    int64_t created_at_ms, expires_at_ms, revoked_at_ms, last_used_at_ms;
};

struct dagi_keystore_list {
    struct dagi_keystore_entry *entries; /* oldest first */
    size_t count;
    bool truncated; /* more than the limit matched */
};

/* `secret` is copied.  opts may be NULL. */
int dagi_keystore_new(struct dagi_db *db, const struct dagi_apikey_secret *secret,
                      const struct dagi_keystore_opts *opts, struct dagi_keystore **out,
                      struct dagi_error *err);
void dagi_keystore_free(struct dagi_keystore *ks);

/* Makes a key, stores its hash and writes the plaintext key to key_out
 * (DAGI_KEYSTORE_KEY_BUF bytes, NUL-terminated) and its id to id_out (may
 * be NULL).  The plaintext exists nowhere else: show it once and wipe the
 * buffer (sodium_memzero).  now_ms becomes created_at_ms.  DAGI_EINVAL for
 * a spec over the caps. */
int dagi_keystore_create(struct dagi_keystore *ks, const struct dagi_keystore_key_spec *spec,
                         int64_t now_ms, char key_out[DAGI_KEYSTORE_KEY_BUF],
                         char id_out[DAGI_APIKEY_ID_LEN + 1], struct dagi_error *err);

/* Keys of one user (user_id NULL: of everyone), oldest first, at most
 * `limit` (0 = 1000).  Release the result with dagi_keystore_list_release. */
int dagi_keystore_list(struct dagi_keystore *ks, const char *user_id, size_t limit,
                       struct dagi_keystore_list *out, struct dagi_error *err);
void dagi_keystore_list_release(struct dagi_keystore_list *list);

/* Revokes by id as of now_ms.  Idempotent: revoking a revoked key succeeds
 * and keeps the first revocation time.  DAGI_ENOENT for an unknown id. */
int dagi_keystore_revoke(struct dagi_keystore *ks, const char *key_id, int64_t now_ms,
                         struct dagi_error *err);

/* Resolves a presented key to its principal, judged at now_ms:
 *   DAGI_EPARSE  malformed key
 *   DAGI_ENOENT  "unknown key": no such id, or the secret does not match
 *                (one answer for both, so ids cannot be probed)
 *   DAGI_EPERM   "key revoked" / "key expired" (checked only after the
 *                secret matched)
 * and database errors.  *out is set only on success. */
int dagi_keystore_lookup(struct dagi_keystore *ks, const char *presented, size_t len,
                         int64_t now_ms, struct dagi_principal *out, struct dagi_error *err);

/* The same from the cache alone, never blocking on the database: safe on
 * an event-loop thread.  DAGI_EAGAIN when the id is not cached (run
 * dagi_keystore_lookup on the pool); otherwise as lookup. */
int dagi_keystore_lookup_cached(struct dagi_keystore *ks, const char *presented, size_t len,
                                int64_t now_ms, struct dagi_principal *out, struct dagi_error *err);

#endif
