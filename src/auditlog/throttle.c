/* The per-source audit throttle (throttle.h). */
#include "auditlog/throttle.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

#define SLOTS 4096 /* a power of two */

struct slot {
    uint64_t key_hash;
    int64_t second;
};

struct dagi_audit_throttle {
    unsigned char hash_key[crypto_shorthash_KEYBYTES]; /* random: no chosen collisions */
    unsigned total_per_second;
    int64_t second;
    unsigned used; /* records allowed in `second` */
    struct slot slots[SLOTS];
};

struct dagi_audit_throttle *dagi_audit_throttle_new(unsigned total_per_second)
{
    if (sodium_init() < 0)
        abort();
    struct dagi_audit_throttle *t = dagi_xcalloc(1, sizeof(*t));
    crypto_shorthash_keygen(t->hash_key);
    t->total_per_second = total_per_second ? total_per_second : 50;
    for (size_t i = 0; i < SLOTS; i++)
        t->slots[i].second = -1;
    t->second = -1;
    return t;
}

void dagi_audit_throttle_free(struct dagi_audit_throttle *t)
{
    free(t);
}

bool dagi_audit_throttle_allow(struct dagi_audit_throttle *t, const char *key, int64_t now_ms)
{
    int64_t second = now_ms / 1000;
    unsigned char h[crypto_shorthash_BYTES];
    crypto_shorthash(h, (const unsigned char *)key, strlen(key), t->hash_key);
    uint64_t kh;
    memcpy(&kh, h, sizeof(kh));
    struct slot *s = &t->slots[kh & (SLOTS - 1)];
    if (s->key_hash == kh && s->second == second)
        return false;
    if (second != t->second) {
        t->second = second;
        t->used = 0;
    }
    if (t->used >= t->total_per_second)
        return false;
    t->used++;
    s->key_hash = kh;
    s->second = second;
    return true;
}
