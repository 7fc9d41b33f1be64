/* Internal to src/authz: the document as the schema binds it, the compiled
 * bundle and its hash tables. */
#ifndef DAGI_AUTHZ_INTERNAL_H
#define DAGI_AUTHZ_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "authz/authz.h"
#include "core/arena.h"
#include "core/config.h"

/* ---- the document (schema.c) ---- */

struct authz_doc_grant {
    char *action;
    struct dagi_cfg_strings resources;
};

struct authz_doc_role {
    char *id;
    struct dagi_cfg_strings allow, deny;    /* action patterns, any resource */
    struct dagi_cfg_list allow_on, deny_on; /* struct authz_doc_grant */
};

struct authz_doc_binding {
    char *subject;
    struct dagi_cfg_strings roles;
};

struct authz_doc_plan {
    char *id;
    struct dagi_cfg_strings agents, models;
    int max_mode; /* enum dagi_authz_mode */
};

/* A team's lists override its plan's when given: the engine leaves
 * `items` NULL for an absent list and non-NULL for one written, even `[]`,
 * which is how "not given" and "given empty" are told apart. */
struct authz_doc_team {
    char *id; /* or "*" */
    char *plan;
    struct dagi_cfg_strings agents, models;
    char *max_mode; /* NULL = the plan's */
};

struct authz_doc {
    int64_t version;
    struct dagi_cfg_list roles;    /* struct authz_doc_role */
    struct dagi_cfg_list bindings; /* struct authz_doc_binding */
    struct dagi_cfg_list plans;    /* struct authz_doc_plan */
    struct dagi_cfg_list teams;    /* struct authz_doc_team */
};

extern const struct dagi_cfg_schema authz_doc_schema;

/* Binds and checks text into `arena`; the errors of dagi_authz_check_text. */
int authz_doc_load(const char *text, size_t len, const char *source, struct dagi_arena *arena,
                   struct authz_doc **out, struct dagi_cfg_errors *errs);

/* Syntax shared by the schema checks and the decision path. */
bool authz_action_valid(const char *a, bool pattern);
bool authz_subject_valid(const char *s);

/* ---- hashing (FNV-1a, 64 bits: short keys, built from the bundle) ---- */

#define AUTHZ_FNV_OFFSET 0xcbf29ce484222325ull
#define AUTHZ_FNV_PRIME 0x100000001b3ull
#define AUTHZ_NONE UINT32_MAX

static inline uint64_t authz_hash_step(uint64_t h, unsigned char c)
{
    return (h ^ c) * AUTHZ_FNV_PRIME;
}

static inline uint64_t authz_hash(const char *s, size_t len)
{
    uint64_t h = AUTHZ_FNV_OFFSET;
    for (size_t i = 0; i < len; i++)
        h = authz_hash_step(h, (unsigned char)s[i]);
    return h;
}

/* Open addressing, linear probing, sized at build time (at least twice the
 * keys, a power of two), never resized: lookups touch one or two slots. */
struct authz_strslot {
    uint64_t hash;
    const char *key; /* NULL = empty */
    uint32_t len;
    uint32_t value;
};

struct authz_strmap {
    struct authz_strslot *slots;
    uint32_t mask;
    uint32_t count;
};

/* 0, or DAGI_ETOOBIG when the arena is full. */
int authz_strmap_init(struct authz_strmap *m, struct dagi_arena *arena, size_t max_keys);
/* Inserts key -> value (the key is borrowed: it must outlive the map), or
 * finds it: returns the existing value, or AUTHZ_NONE after inserting. */
uint32_t authz_strmap_put(struct authz_strmap *m, const char *key, uint32_t len, uint64_t hash,
                          uint32_t value);

static inline uint32_t authz_strmap_get(const struct authz_strmap *m, const char *key, uint32_t len,
                                        uint64_t hash)
{
    if (!m->slots)
        return AUTHZ_NONE;
    for (uint32_t i = (uint32_t)hash & m->mask;; i = (i + 1) & m->mask) {
        const struct authz_strslot *s = &m->slots[i];
        if (!s->key)
            return AUTHZ_NONE;
        if (s->hash == hash && s->len == len && __builtin_memcmp(s->key, key, len) == 0)
            return s->value;
    }
}

/* The pattern "<prefix>*" where prefix is key[0..plen) (ending in '.' or
 * ':') and hash is the hash of that prefix followed by '*'. */
static inline uint32_t authz_strmap_get_wild(const struct authz_strmap *m, const char *prefix,
                                             uint32_t plen, uint64_t hash)
{
    if (!m->slots)
        return AUTHZ_NONE;
    for (uint32_t i = (uint32_t)hash & m->mask;; i = (i + 1) & m->mask) {
        const struct authz_strslot *s = &m->slots[i];
        if (!s->key)
            return AUTHZ_NONE;
        if (s->hash == hash && s->len == plen + 1 && s->key[plen] == '*' &&
            __builtin_memcmp(s->key, prefix, plen) == 0)
            return s->value;
    }
}

/* ---- the compiled bundle (compile.c) ---- */

/* A set of resource, agent or model ids: any, or these (sorted, for
 * bsearch). */
struct authz_set {
    bool any;
    uint32_t count;
    const char **items;
};

bool authz_set_has(const struct authz_set *s, const char *id);

/* Everything one role says about one action pattern. */
struct authz_entry {
    struct authz_set allow, deny; /* allow.any: granted on every resource */
    bool allows, denies;          /* has an allow / a deny at all */
};

struct authz_grantslot {
    uint64_t key;   /* role << 32 | action */
    uint32_t entry; /* AUTHZ_NONE = empty */
};

struct authz_grantmap {
    struct authz_grantslot *slots;
    uint32_t mask;
};

static inline uint64_t authz_grant_key(uint32_t role, uint32_t action)
{
    return (uint64_t)role << 32 | action;
}

static inline uint32_t authz_grant_slot(uint64_t key, uint32_t mask)
{
    return (uint32_t)((key * 0x9e3779b97f4a7c15ull) >> 32) & mask;
}

struct authz_binding {
    const uint32_t *roles;
    uint32_t count;
};

struct authz_team {
    const char *id;
    struct authz_set agents, models;
    enum dagi_authz_mode max_mode;
};

struct dagi_authz_bundle {
    atomic_int refs;
    struct dagi_arena *arena;
    const struct authz_doc *doc;
    const char *source;
    char checksum[65];
    size_t grants, denies;

    const char **role_ids; /* role index -> id */
    uint32_t role_count;

    struct authz_strmap actions; /* pattern -> action index */
    const bool *action_has_deny; /* action index -> some role denies it */
    uint32_t star_action;        /* the index of "*", or AUTHZ_NONE */
    struct authz_entry *entries;
    struct authz_grantmap grants_by_role;

    struct authz_strmap subjects; /* subject or "<kind>:*" -> binding index */
    struct authz_binding *bindings;
    uint32_t star_binding; /* the binding of "*", or AUTHZ_NONE */

    struct authz_strmap teams; /* team id -> team index */
    struct authz_team *team_list;
    uint32_t star_team; /* the "*" record, or AUTHZ_NONE */
};

static inline const struct authz_entry *authz_entry_get(const struct dagi_authz_bundle *b,
                                                        uint32_t role, uint32_t action)
{
    uint64_t key = authz_grant_key(role, action);
    const struct authz_grantmap *m = &b->grants_by_role;
    for (uint32_t i = authz_grant_slot(key, m->mask);; i = (i + 1) & m->mask) {
        const struct authz_grantslot *s = &m->slots[i];
        if (s->entry == AUTHZ_NONE)
            return NULL;
        if (s->key == key)
            return &b->entries[s->entry];
    }
}

/* The entitlement record for a team (NULL/"" = none): its own, else "*",
 * else NULL. */
const struct authz_team *authz_team_find(const struct dagi_authz_bundle *b, const char *team);

#endif
