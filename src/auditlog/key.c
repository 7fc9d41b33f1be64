/* The pseudonym key (<data_dir>/audit.key) and actor pseudonyms.
 *
 * An actor is stored as "p_" + hex(BLAKE2b-128 keyed with the node's audit
 * key, of the principal).  The chain never holds a principal, so erasing a
 * user needs no change to it; whoever holds the key can still find a
 * principal's records (the query pseudonymises the filter the same way).
 * Destroying the key makes every pseudonym unlinkable. */
#include "auditlog/audit.h"
#include "auditlog/chain.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/mem.h"

#define KEY_FILE "audit.key"
#define PSEUDONYM_BYTES 16

static int read_key(int fd, const char *path, unsigned char key[DAGI_AUDIT_KEY_BYTES],
                    struct dagi_error *err)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return dagi_error_set(err, DAGI_EIO, "%s: %s", path, strerror(errno));
    if (st.st_mode & 0177)
        return dagi_error_set(err, DAGI_EPERM,
                              "%s: mode %03o is wider than 0600; the file keys every actor "
                              "pseudonym of the audit log: chmod 600 it",
                              path, (unsigned)(st.st_mode & 0777));
    if (st.st_size != DAGI_AUDIT_KEY_BYTES)
        return dagi_error_set(err, DAGI_EPARSE, "%s: %lld bytes, want %d", path,
                              (long long)st.st_size, DAGI_AUDIT_KEY_BYTES);
    size_t got = 0;
    while (got < DAGI_AUDIT_KEY_BYTES) {
        ssize_t n = read(fd, key + got, DAGI_AUDIT_KEY_BYTES - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return dagi_error_set(err, DAGI_EIO, "%s: short read", path);
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

/* A temp file (mode 0600) link()ed to the name: a racing reader never sees
 * a half-written key, and of two creators the second reads the first's.
 * DAGI_EEXIST: lost that race. */
static int create_key(const char *dir, const char *path, unsigned char key[DAGI_AUDIT_KEY_BYTES],
                      struct dagi_error *err)
{
    char *tmp = dagi_xasprintf("%s/.%s.XXXXXX", dir, KEY_FILE);
    int rc = DAGI_OK;
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        rc = dagi_error_set(err, DAGI_EIO, "%s: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    randombytes_buf(key, DAGI_AUDIT_KEY_BYTES);
    if (fchmod(fd, 0600) != 0 || write_all(fd, key, DAGI_AUDIT_KEY_BYTES) != 0 || fsync(fd) != 0)
        rc = dagi_error_set(err, DAGI_EIO, "%s: %s", tmp, strerror(errno));
    else if (link(tmp, path) != 0)
        rc = errno == EEXIST ? DAGI_EEXIST
                             : dagi_error_set(err, DAGI_EIO, "%s: %s", path, strerror(errno));
    close(fd);
    unlink(tmp);
    free(tmp);
    if (rc)
        return rc;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return DAGI_OK;
}

int dagi_audit_key_load(const char *data_dir, unsigned char key[DAGI_AUDIT_KEY_BYTES],
                        struct dagi_error *err)
{
    unsigned char k[DAGI_AUDIT_KEY_BYTES];
    char *path = dagi_xasprintf("%s/%s", data_dir, KEY_FILE);
    int rc;
    if (sodium_init() < 0)
        abort(); /* no randomness, no key */
    for (int attempt = 0;; attempt++) {
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0) {
            rc = read_key(fd, path, k, err);
            close(fd);
            break;
        }
        if (errno != ENOENT || attempt > 0) {
            rc = dagi_error_set(err, DAGI_EIO, "%s: %s", path, strerror(errno));
            break;
        }
        rc = create_key(data_dir, path, k, err);
        if (rc != DAGI_EEXIST)
            break;
    }
    if (rc == DAGI_OK)
        memcpy(key, k, sizeof(k));
    sodium_memzero(k, sizeof(k));
    free(path);
    return rc;
}

void dagi_audit_pseudonym(const unsigned char key[DAGI_AUDIT_KEY_BYTES], const char *actor,
                          char out[35])
{
    unsigned char h[PSEUDONYM_BYTES];
    crypto_generichash(h, sizeof(h), (const unsigned char *)actor, strlen(actor), key,
                       DAGI_AUDIT_KEY_BYTES);
    out[0] = 'p';
    out[1] = '_';
    sodium_bin2hex(out + 2, PSEUDONYM_BYTES * 2 + 1, h, sizeof(h));
}

static bool is_pseudonym(const char *s)
{
    if (strlen(s) != DAGI_AUDIT_PSEUDONYM_LEN || s[0] != 'p' || s[1] != '_')
        return false;
    for (size_t i = 2; i < DAGI_AUDIT_PSEUDONYM_LEN; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

void dagi_audit_actor_filter(const unsigned char key[DAGI_AUDIT_KEY_BYTES], const char *actor,
                             char out[DAGI_AUDIT_ACTOR_MAX + 1])
{
    if (is_pseudonym(actor) || !strcmp(actor, "system") || !strcmp(actor, "anonymous"))
        snprintf(out, DAGI_AUDIT_ACTOR_MAX + 1, "%s", actor);
    else
        dagi_audit_pseudonym(key, actor, out);
}
