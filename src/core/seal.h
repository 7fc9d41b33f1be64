/* Sealing: authenticated encryption for content that must travel through a
 * stream (a Telegram update waiting to be processed, a job's input).
 *
 * XChaCha20-Poly1305 (libsodium) with a deployment-wide data key.  A sealed
 * payload is self-describing:
 *
 *   "dgs1" | key id (8 bytes) | nonce (24 bytes) | ciphertext + tag (16 bytes)
 *
 * The key id is the first 8 bytes of BLAKE2b(key), so a reader holding
 * several keys (during rotation) picks the right one, and a payload sealed
 * with an unknown key fails clearly.  `aad` binds the payload to its context
 * (e.g. the subject), so a sealed blob cannot be replayed elsewhere. */
#ifndef DAGI_SEAL_H
#define DAGI_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

#define DAGI_SEAL_KEY_BYTES 32
#define DAGI_SEAL_KEY_ID_BYTES 8
#define DAGI_SEAL_OVERHEAD (4 + DAGI_SEAL_KEY_ID_BYTES + 24 + 16)
#define DAGI_SEAL_MAX_KEYS 8

struct dagi_seal_key {
    unsigned char key[DAGI_SEAL_KEY_BYTES];
    unsigned char id[DAGI_SEAL_KEY_ID_BYTES];
};

/* A keyring: keys[0] seals, every key opens. */
struct dagi_seal_keyring {
    struct dagi_seal_key keys[DAGI_SEAL_MAX_KEYS];
    size_t count;
};

/* Fills key->id from key->key. */
void dagi_seal_key_init(struct dagi_seal_key *key, const unsigned char raw[DAGI_SEAL_KEY_BYTES]);
/* Loads <dir>/data.key (32 raw bytes, mode 0600), creating it on first use,
 * as the keyring's sealing key.  The memory service later derives this key
 * from the master key and rotates it. */
int dagi_seal_keyring_load(struct dagi_seal_keyring *ring, const char *dir,
                           struct dagi_error *err);
void dagi_seal_keyring_wipe(struct dagi_seal_keyring *ring);

int dagi_seal(const struct dagi_seal_keyring *ring, const void *plain, size_t len,
              const void *aad, size_t aad_len, struct dagi_buf *out);
/* DAGI_EPARSE for a malformed payload, DAGI_ENOENT for an unknown key id,
 * DAGI_EPERM when authentication fails (tampered, or the wrong aad). */
int dagi_seal_open(const struct dagi_seal_keyring *ring, const void *sealed, size_t len,
                   const void *aad, size_t aad_len, struct dagi_buf *out);

#endif
