/* User API keys (apikey.h): format, strict parsing, keyed hashing, and the
 * server secret file. */
#include "access/apikey.h"

#include "core/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(DAGI_APIKEY_HASH_BYTES >= crypto_generichash_BYTES_MIN &&
                   DAGI_APIKEY_HASH_BYTES <= crypto_generichash_BYTES_MAX,
               "hash size");
_Static_assert(DAGI_APIKEY_SERVER_SECRET_BYTES >= crypto_generichash_KEYBYTES_MIN &&
                   DAGI_APIKEY_SERVER_SECRET_BYTES <= crypto_generichash_KEYBYTES_MAX,
               "server secret size");
_Static_assert(DAGI_APIKEY_SECRET_LEN + 1 ==
                   sodium_base64_ENCODED_LEN(DAGI_APIKEY_SECRET_BYTES,
                                             sodium_base64_VARIANT_URLSAFE_NO_PADDING),
               "secret length");
_Static_assert(DAGI_APIKEY_LEN <= DAGI_APIKEY_MAX_PRESENTED, "cap below the key length");

#define ID_AT DAGI_APIKEY_PREFIX_LEN
#define SEP_AT (ID_AT + DAGI_APIKEY_ID_LEN)
#define SECRET_AT (SEP_AT + 1)

/* RFC 4648 base32, lowercase: case-insensitive systems and humans reading
 * ids aloud cannot confuse two of them, and no character is '_'. */
static const char id_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;

static void on_sodium_once(void)
{
    /* fails only without usable randomness: no key could be made */
    if (sodium_init() < 0)
        abort();
}

static void ensure_sodium(void)
{
    pthread_once(&sodium_once, on_sodium_once);
}

static void hash_key(const struct dagi_apikey_secret *secret, const char *text, size_t len,
                     unsigned char out[DAGI_APIKEY_HASH_BYTES])
{
    crypto_generichash(out, DAGI_APIKEY_HASH_BYTES, (const unsigned char *)text, len, secret->bytes,
                       sizeof(secret->bytes));
}

bool dagi_apikey_id_valid(const char *id)
{
    if (!id)
        return false;
    for (size_t i = 0; i < DAGI_APIKEY_ID_LEN; i++)
        if (id[i] == '\0' || !memchr(id_alphabet, id[i], sizeof(id_alphabet) - 1))
            return false;
    return id[DAGI_APIKEY_ID_LEN] == '\0';
}

void dagi_apikey_generate(const struct dagi_apikey_secret *secret, struct dagi_apikey *out)
{
    unsigned char raw[DAGI_APIKEY_SECRET_BYTES];
    uint64_t idbits;
    ensure_sodium();
    randombytes_buf(&idbits, sizeof(idbits));
    for (size_t i = 0; i < DAGI_APIKEY_ID_LEN; i++, idbits >>= 5)
        out->id[i] = id_alphabet[idbits & 31];
    out->id[DAGI_APIKEY_ID_LEN] = '\0';

    randombytes_buf(raw, sizeof(raw));
    memcpy(out->text, DAGI_APIKEY_PREFIX, DAGI_APIKEY_PREFIX_LEN);
    memcpy(out->text + ID_AT, out->id, DAGI_APIKEY_ID_LEN);
    out->text[SEP_AT] = '_';
    sodium_bin2base64(out->text + SECRET_AT, DAGI_APIKEY_SECRET_LEN + 1, raw, sizeof(raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof(raw));
    hash_key(secret, out->text, DAGI_APIKEY_LEN, out->hash);
}

void dagi_apikey_wipe(struct dagi_apikey *key)
{
    sodium_memzero(key, sizeof(*key));
}

int dagi_apikey_parse(const struct dagi_apikey_secret *secret, const char *presented, size_t len,
                      char id_out[DAGI_APIKEY_ID_LEN + 1],
                      unsigned char hash_out[DAGI_APIKEY_HASH_BYTES], struct dagi_error *err)
{
    unsigned char raw[DAGI_APIKEY_SECRET_BYTES];
    size_t raw_len = 0;
    const char *end = NULL;
    if (!presented || len > DAGI_APIKEY_MAX_PRESENTED)
        return dagi_error_set(err, DAGI_EPARSE, "malformed API key: over %d bytes",
                              DAGI_APIKEY_MAX_PRESENTED);
    if (len != DAGI_APIKEY_LEN || memcmp(presented, DAGI_APIKEY_PREFIX, ID_AT) != 0 ||
        presented[SEP_AT] != '_')
        return dagi_error_set(err, DAGI_EPARSE, "malformed API key: want dagi_<id>_<secret>");
    for (size_t i = ID_AT; i < SEP_AT; i++)
        if (!memchr(id_alphabet, presented[i], sizeof(id_alphabet) - 1))
            return dagi_error_set(err, DAGI_EPARSE, "malformed API key: bad id");
    /* libsodium refuses characters outside base64url and non-zero trailing
     * bits, so each secret has exactly one accepted spelling. */
    ensure_sodium();
    int bad = sodium_base642bin(raw, sizeof(raw), presented + SECRET_AT, DAGI_APIKEY_SECRET_LEN,
                                NULL, &raw_len, &end, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof(raw));
    if (bad || raw_len != DAGI_APIKEY_SECRET_BYTES || end != presented + len)
        return dagi_error_set(err, DAGI_EPARSE, "malformed API key: bad secret");
    memcpy(id_out, presented + ID_AT, DAGI_APIKEY_ID_LEN);
    id_out[DAGI_APIKEY_ID_LEN] = '\0';
    hash_key(secret, presented, len, hash_out);
    return DAGI_OK;
}

bool dagi_apikey_hash_equal(const unsigned char a[DAGI_APIKEY_HASH_BYTES],
                            const unsigned char b[DAGI_APIKEY_HASH_BYTES])
{
    return sodium_memcmp(a, b, DAGI_APIKEY_HASH_BYTES) == 0;
}

/* --- the server secret file --- */

static int read_secret(int fd, const char *path, struct dagi_apikey_secret *out,
                       struct dagi_error *err)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return dagi_error_set(err, DAGI_EIO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return dagi_error_set(err, DAGI_EPARSE, "%s: not a regular file", path);
    if (st.st_mode & 0177)
        return dagi_error_set(err, DAGI_EPERM,
                              "%s: mode %03o is wider than 0600; the file keys every API key "
                              "hash: chmod 600 it",
                              path, (unsigned)(st.st_mode & 0777));
    if (st.st_size != DAGI_APIKEY_SERVER_SECRET_BYTES)
        return dagi_error_set(err, DAGI_EPARSE, "%s: %lld bytes, want %d", path,
                              (long long)st.st_size, DAGI_APIKEY_SERVER_SECRET_BYTES);
    size_t got = 0;
    while (got < sizeof(out->bytes)) {
        ssize_t n = read(fd, out->bytes + got, sizeof(out->bytes) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            sodium_memzero(out, sizeof(*out));
            return dagi_error_set(err, DAGI_EIO, "%s: short read", path);
        }
        got += (size_t)n;
    }
    return DAGI_OK;
}

static int write_all(int fd, const unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Writes a fresh secret to a temp file (mkostemp: O_EXCL, mode 0600) and
 * link()s it to `path`, which fails with EEXIST when another process got
 * there first.  Unlike writing `path` itself with O_EXCL, a racing reader
 * can never see the file before its 32 bytes are in.  DAGI_EEXIST: lost
 * the race, read the winner's file. */
static int create_secret(const char *dir, const char *path, struct dagi_apikey_secret *out,
                         struct dagi_error *err)
{
    char *tmp = dagi_xasprintf("%s/.%s.XXXXXX", dir, DAGI_APIKEY_SECRET_FILE);
    int rc = DAGI_OK;
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        rc = dagi_error_set(err, DAGI_EIO, "%s: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    randombytes_buf(out->bytes, sizeof(out->bytes));
    if (fchmod(fd, 0600) != 0 || write_all(fd, out->bytes, sizeof(out->bytes)) != 0 ||
        fsync(fd) != 0) {
        rc = dagi_error_set(err, DAGI_EIO, "%s: %s", tmp, strerror(errno));
    } else if (link(tmp, path) != 0) {
        rc = errno == EEXIST ? DAGI_EEXIST
                             : dagi_error_set(err, DAGI_EIO, "%s: %s", path, strerror(errno));
    }
    close(fd);
    unlink(tmp);
    free(tmp);
    if (rc) {
        sodium_memzero(out, sizeof(*out));
        return rc;
    }
    /* make the new name durable; the secret is useless if it vanishes */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return DAGI_OK;
}

int dagi_apikey_secret_load_or_create(const char *data_dir, struct dagi_apikey_secret *out,
                                      bool *created, struct dagi_error *err)
{
    struct dagi_apikey_secret s;
    char *path = dagi_xasprintf("%s/%s", data_dir, DAGI_APIKEY_SECRET_FILE);
    bool made = false;
    int rc;
    ensure_sodium();
    for (int attempt = 0;; attempt++) {
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0) {
            rc = read_secret(fd, path, &s, err);
            close(fd);
            break;
        }
        if (errno != ENOENT || attempt > 0) {
            rc = dagi_error_set(err, DAGI_EIO, "%s: %s", path, strerror(errno));
            break;
        }
        rc = create_secret(data_dir, path, &s, err);
        if (rc != DAGI_EEXIST) {
            made = rc == DAGI_OK;
            break;
        }
    }
    if (rc == DAGI_OK) {
        *out = s;
        if (created)
            *created = made;
    }
    sodium_memzero(&s, sizeof(s));
    free(path);
    return rc;
}

void dagi_apikey_secret_wipe(struct dagi_apikey_secret *secret)
{
    sodium_memzero(secret, sizeof(*secret));
}
