#include "adminkey.h"

#include "core/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_RANDOM_BYTES 32
#define KEY_FILE_MAX 256

static void hash_key(const char *text, size_t len, unsigned char out[DAGI_ADMIN_KEY_HASH_BYTES])
{
    /* A fixed context key separates this hash from any other use of BLAKE2b. */
    static const unsigned char context[crypto_generichash_KEYBYTES] = "dagi admin key v1";
    crypto_generichash(out, DAGI_ADMIN_KEY_HASH_BYTES, (const unsigned char *)text, len, context,
                       sizeof(context));
}

static int read_key(const char *path, struct dagi_admin_key *out, struct dagi_error *err)
{
    int rc = DAGI_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return dagi_error_set(err, DAGI_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    char text[KEY_FILE_MAX + 1];
    ssize_t n;
    if (fstat(fd, &st) != 0) {
        rc = dagi_error_set(err, DAGI_EIO, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (st.st_mode & 077) {
        rc = dagi_error_set(err, DAGI_EPERM,
                            "%s: mode %03o lets others read the admin key; chmod 600 it", path,
                            (unsigned)(st.st_mode & 0777));
        goto out;
    }
    n = read(fd, text, KEY_FILE_MAX);
    if (n < 0) {
        rc = dagi_error_set(err, DAGI_EIO, "%s: %s", path, strerror(errno));
        goto out;
    }
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
        n--;
    if (n < 16) {
        rc = dagi_error_set(err, DAGI_EINVAL, "%s: the admin key is too short or empty", path);
        goto out;
    }
    hash_key(text, (size_t)n, out->hash);
    sodium_memzero(text, sizeof(text));
out:
    close(fd);
    return rc;
}

int dagi_admin_key_load_or_create(const char *data_dir, struct dagi_admin_key *out,
                                  char **new_key_out, struct dagi_error *err)
{
    if (sodium_init() < 0)
        return dagi_error_set(err, DAGI_EINTERNAL, "libsodium failed to initialise");
    char *path = dagi_xasprintf("%s/admin.key", data_dir);
    int rc = DAGI_OK;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 && errno == EEXIST) {
        rc = read_key(path, out, err);
        goto out;
    }
    if (fd < 0) {
        rc = dagi_error_set(err, DAGI_EIO, "%s: %s", path, strerror(errno));
        goto out;
    }
    unsigned char random[KEY_RANDOM_BYTES];
    randombytes_buf(random, sizeof(random));
    char encoded[sodium_base64_ENCODED_LEN(KEY_RANDOM_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
    sodium_bin2base64(encoded, sizeof(encoded), random, sizeof(random),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(random, sizeof(random));
    char *key = dagi_xasprintf("%s%s", DAGI_ADMIN_KEY_PREFIX, encoded);
    sodium_memzero(encoded, sizeof(encoded));
    size_t len = strlen(key);
    char *line = dagi_xasprintf("%s\n", key);
    bool written = write(fd, line, len + 1) == (ssize_t)(len + 1) && fsync(fd) == 0;
    sodium_memzero(line, len + 1);
    free(line);
    close(fd);
    if (!written) {
        unlink(path);
        sodium_memzero(key, len);
        free(key);
        rc = dagi_error_set(err, DAGI_EIO, "%s: cannot write the admin key", path);
        goto out;
    }
    hash_key(key, len, out->hash);
    if (new_key_out) {
        *new_key_out = key;
    } else {
        sodium_memzero(key, len);
        free(key);
    }
out:
    free(path);
    return rc;
}

bool dagi_admin_key_check(const struct dagi_admin_key *key, const char *presented, size_t len)
{
    if (!presented || len == 0 || len > KEY_FILE_MAX)
        return false;
    unsigned char h[DAGI_ADMIN_KEY_HASH_BYTES];
    hash_key(presented, len, h);
    return sodium_memcmp(h, key->hash, sizeof(h)) == 0;
}

bool dagi_bearer_token(const char *value, const char **token, size_t *len)
{
    if (!value || strncasecmp(value, "Bearer ", 7) != 0)
        return false;
    const char *t = value + 7;
    while (*t == ' ')
        t++;
    size_t n = strlen(t);
    while (n > 0 && t[n - 1] == ' ')
        n--;
    if (n == 0)
        return false;
    *token = t;
    *len = n;
    return true;
}
