/* Sealing with XChaCha20-Poly1305 (see seal.h for the payload layout).
 *
 * Decisions beyond the header:
 *  - The key id is the first 8 bytes of the default-length (32-byte) BLAKE2b
 *    of the key.  BLAKE2b's output length is a parameter of the hash, so
 *    "BLAKE2b-64" would be a different value: readers in other languages
 *    must hash to 32 bytes and truncate.
 *  - The magic and key id are not part of the AEAD's associated data: a
 *    changed key id selects another (or no) key and fails authentication or
 *    lookup anyway, and a changed magic is rejected before any crypto.
 *  - dagi_seal_keyring_load() resets the ring to exactly the one key in the
 *    file; rings with older keys for rotation are built with
 *    dagi_seal_key_init().
 *  - Plaintext and keys held in temporaries are wiped with sodium_memzero. */
#include "seal.h"

#include "mem.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "dgs1"
#define MAGIC_LEN 4
#define NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_BYTES crypto_aead_xchacha20poly1305_ietf_ABYTES
#define HEADER_LEN (MAGIC_LEN + DAGI_SEAL_KEY_ID_BYTES + NONCE_BYTES)

_Static_assert(DAGI_SEAL_OVERHEAD == HEADER_LEN + TAG_BYTES, "seal.h overhead out of date");
_Static_assert(DAGI_SEAL_KEY_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "key size");

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;

static void on_sodium_once(void)
{
    /* sodium_init only fails when the system has no usable randomness:
     * nothing here could work without it */
    if (sodium_init() < 0)
        abort();
}

static void ensure_sodium(void)
{
    pthread_once(&sodium_once, on_sodium_once);
}

void dagi_seal_key_init(struct dagi_seal_key *key, const unsigned char raw[DAGI_SEAL_KEY_BYTES])
{
    unsigned char hash[crypto_generichash_BYTES];
    ensure_sodium();
    memmove(key->key, raw, DAGI_SEAL_KEY_BYTES);
    crypto_generichash(hash, sizeof(hash), key->key, DAGI_SEAL_KEY_BYTES, NULL, 0);
    memcpy(key->id, hash, DAGI_SEAL_KEY_ID_BYTES);
}

void dagi_seal_keyring_wipe(struct dagi_seal_keyring *ring)
{
    if (ring)
        sodium_memzero(ring, sizeof(*ring));
}

static int read_key(int fd, const char *path, unsigned char raw[DAGI_SEAL_KEY_BYTES],
                    struct dagi_error *err)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return dagi_error_set(err, DAGI_EIO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return dagi_error_set(err, DAGI_EPERM, "%s: not a regular file", path);
    if (st.st_mode & 077)
        return dagi_error_set(err, DAGI_EPERM,
                              "%s: mode %03o lets group or others read the data key; "
                              "chmod 600 it",
                              path, (unsigned)(st.st_mode & 0777));
    if (st.st_size != DAGI_SEAL_KEY_BYTES)
        return dagi_error_set(err, DAGI_EPARSE, "%s: %lld bytes, want %d", path,
                              (long long)st.st_size, DAGI_SEAL_KEY_BYTES);
    size_t got = 0;
    while (got < DAGI_SEAL_KEY_BYTES) {
        ssize_t n = read(fd, raw + got, DAGI_SEAL_KEY_BYTES - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return dagi_error_set(err, DAGI_EIO, "%s: short read", path);
        got += (size_t)n;
    }
    return DAGI_OK;
}

/* O_EXCL so two processes starting at once cannot both write a key: the
 * loser sees EEXIST and reads the winner's file. */
static int create_key(const char *path, unsigned char raw[DAGI_SEAL_KEY_BYTES],
                      struct dagi_error *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno == EEXIST ? DAGI_EEXIST
                               : dagi_error_set(err, DAGI_EIO, "%s: %s", path, strerror(errno));
    int rc = DAGI_OK;
    randombytes_buf(raw, DAGI_SEAL_KEY_BYTES);
    size_t put = 0;
    while (put < DAGI_SEAL_KEY_BYTES) {
        ssize_t n = write(fd, raw + put, DAGI_SEAL_KEY_BYTES - put);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = dagi_error_set(err, DAGI_EIO, "%s: %s", path, strerror(errno));
            goto out;
        }
        put += (size_t)n;
    }
    if (fsync(fd) != 0)
        rc = dagi_error_set(err, DAGI_EIO, "%s: fsync: %s", path, strerror(errno));
out:
    close(fd);
    if (rc) {
        unlink(path); /* a half-written key must not be found next time */
        sodium_memzero(raw, DAGI_SEAL_KEY_BYTES);
    }
    return rc;
}

int dagi_seal_keyring_load(struct dagi_seal_keyring *ring, const char *dir, struct dagi_error *err)
{
    unsigned char raw[DAGI_SEAL_KEY_BYTES];
    char *path = dagi_xasprintf("%s/data.key", dir);
    int rc;
    ensure_sodium();
    for (int attempt = 0;; attempt++) {
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0) {
            rc = read_key(fd, path, raw, err);
            close(fd);
            break;
        }
        if (errno != ENOENT || attempt > 0) {
            rc = dagi_error_set(err, DAGI_EIO, "%s: %s", path, strerror(errno));
            break;
        }
        rc = create_key(path, raw, err);
        if (rc != DAGI_EEXIST)
            break;
    }
    if (rc == DAGI_OK) {
        dagi_seal_keyring_wipe(ring);
        dagi_seal_key_init(&ring->keys[0], raw);
        ring->count = 1;
    }
    sodium_memzero(raw, sizeof(raw));
    free(path);
    return rc;
}

int dagi_seal(const struct dagi_seal_keyring *ring, const void *plain, size_t len, const void *aad,
              size_t aad_len, struct dagi_buf *out)
{
    if (!ring || ring->count == 0 || (!plain && len))
        return DAGI_EINVAL;
    if (len > SIZE_MAX - DAGI_SEAL_OVERHEAD)
        return DAGI_ETOOBIG;
    ensure_sodium();
    const struct dagi_seal_key *key = &ring->keys[0];
    size_t total = DAGI_SEAL_OVERHEAD + len;
    unsigned char *sealed = dagi_xmalloc(total);
    memcpy(sealed, MAGIC, MAGIC_LEN);
    memcpy(sealed + MAGIC_LEN, key->id, DAGI_SEAL_KEY_ID_BYTES);
    unsigned char *nonce = sealed + MAGIC_LEN + DAGI_SEAL_KEY_ID_BYTES;
    randombytes_buf(nonce, NONCE_BYTES);
    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(sealed + HEADER_LEN, &clen, plain, len, aad, aad_len,
                                               NULL, nonce, key->key);
    int rc = dagi_buf_append(out, sealed, HEADER_LEN + (size_t)clen);
    free(sealed);
    return rc;
}

int dagi_seal_open(const struct dagi_seal_keyring *ring, const void *sealed, size_t len,
                   const void *aad, size_t aad_len, struct dagi_buf *out)
{
    const unsigned char *in = sealed;
    if (!ring || (!sealed && len))
        return DAGI_EINVAL;
    if (len < DAGI_SEAL_OVERHEAD || memcmp(in, MAGIC, MAGIC_LEN) != 0)
        return DAGI_EPARSE;
    ensure_sodium();
    const struct dagi_seal_key *key = NULL;
    for (size_t i = 0; i < ring->count && i < DAGI_SEAL_MAX_KEYS; i++) {
        if (memcmp(ring->keys[i].id, in + MAGIC_LEN, DAGI_SEAL_KEY_ID_BYTES) == 0) {
            key = &ring->keys[i];
            break;
        }
    }
    if (!key)
        return DAGI_ENOENT;
    size_t plain_len = len - DAGI_SEAL_OVERHEAD;
    unsigned char *plain = dagi_xmalloc(plain_len + 1);
    unsigned long long mlen = 0;
    int rc;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            plain, &mlen, NULL, in + HEADER_LEN, len - HEADER_LEN, aad, aad_len,
            in + MAGIC_LEN + DAGI_SEAL_KEY_ID_BYTES, key->key) != 0) {
        rc = DAGI_EPERM;
        goto out;
    }
    rc = dagi_buf_append(out, plain, (size_t)mlen);
out:
    sodium_memzero(plain, plain_len + 1);
    free(plain);
    return rc;
}
