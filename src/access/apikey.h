/* User API keys: the format, parsing and hashing (the records live in
 * keystore.h).
 *
 *   dagi_<id>_<secret>
 *     id      12 lowercase base32 characters (a-z, 2-7; 60 random bits):
 *             public, the lookup key, safe to log
 *     secret  32 random bytes, base64url without padding (43 characters)
 *
 * A key is stored only as a keyed BLAKE2b-256 of the whole key string,
 * keyed with a 32-byte server secret.  Deliberately a fast hash, not a
 * password hash (Argon2, bcrypt): a password hash slows down guessing of
 * low-entropy secrets, but a key carries 256 random bits, so guessing is
 * hopeless at any speed and a slow hash would only cost every request a few
 * milliseconds.  The server secret means a stolen database alone does not
 * even let an attacker test candidate keys offline.
 *
 * Thread safe; no state besides the server secret the caller holds. */
#ifndef DAGI_ACCESS_APIKEY_H
#define DAGI_ACCESS_APIKEY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

#define DAGI_APIKEY_PREFIX "dagi_"
#define DAGI_APIKEY_PREFIX_LEN 5
#define DAGI_APIKEY_ID_LEN 12
#define DAGI_APIKEY_SECRET_BYTES 32
#define DAGI_APIKEY_SECRET_LEN 43 /* base64url, no padding, of 32 bytes */
/* "dagi_" + id + "_" + secret */
#define DAGI_APIKEY_LEN (DAGI_APIKEY_PREFIX_LEN + DAGI_APIKEY_ID_LEN + 1 + DAGI_APIKEY_SECRET_LEN)
/* A presented key longer than this is refused before anything else. */
#define DAGI_APIKEY_MAX_PRESENTED 128
#define DAGI_APIKEY_HASH_BYTES 32
#define DAGI_APIKEY_SERVER_SECRET_BYTES 32
#define DAGI_APIKEY_SECRET_FILE "keys.secret"

/* The server secret that keys the hash.  Wipe it with
 * dagi_apikey_secret_wipe() when done. */
struct dagi_apikey_secret {
    unsigned char bytes[DAGI_APIKEY_SERVER_SECRET_BYTES];
};

/* A freshly generated key.  `text` is the plaintext shown to the user once;
 * wipe the struct with dagi_apikey_wipe() after handing it over. */
struct dagi_apikey {
    char id[DAGI_APIKEY_ID_LEN + 1];
    char text[DAGI_APIKEY_LEN + 1];
    unsigned char hash[DAGI_APIKEY_HASH_BYTES];
};

/* Loads <data_dir>/keys.secret (32 raw bytes), creating it on first use
 * with mode 0600.  Creation writes a temp file and links it into place, so
 * two processes starting at once agree on one secret and neither ever reads
 * a half-written file.  *created (may be NULL) tells whether this call made
 * it.  Errors: DAGI_EPERM when the file's mode is wider than 0600 (it
 * guards every key: chmod 600 it), DAGI_EPARSE for a wrong size or a file
 * that is not a regular file, DAGI_EIO otherwise.  *out is set only on
 * success. */
int dagi_apikey_secret_load_or_create(const char *data_dir, struct dagi_apikey_secret *out,
                                      bool *created, struct dagi_error *err);
void dagi_apikey_secret_wipe(struct dagi_apikey_secret *secret);

/* A new random key with its id and hash. */
void dagi_apikey_generate(const struct dagi_apikey_secret *secret, struct dagi_apikey *out);
void dagi_apikey_wipe(struct dagi_apikey *key);

/* Parses a presented key strictly: the prefix, the exact lengths, the id's
 * alphabet and a canonical base64url secret.  Fills id_out (NUL-terminated)
 * and hash_out.  DAGI_EPARSE for anything else (including over
 * DAGI_APIKEY_MAX_PRESENTED bytes); the message never quotes the key. */
int dagi_apikey_parse(const struct dagi_apikey_secret *secret, const char *presented, size_t len,
                      char id_out[DAGI_APIKEY_ID_LEN + 1],
                      unsigned char hash_out[DAGI_APIKEY_HASH_BYTES], struct dagi_error *err);

/* True for a well-formed key id (12 characters of a-z, 2-7). */
bool dagi_apikey_id_valid(const char *id);

/* Constant-time hash comparison (sodium_memcmp). */
bool dagi_apikey_hash_equal(const unsigned char a[DAGI_APIKEY_HASH_BYTES],
                            const unsigned char b[DAGI_APIKEY_HASH_BYTES]);

#endif
