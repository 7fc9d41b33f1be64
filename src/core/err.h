/* One status type for the whole project.
 *
 * Functions that can fail return 0 (DAGI_OK) or a negative dagi_err.  Where a
 * caller needs to know *what* failed (a config key, a JSON offset, an HTTP
 * field), the function also takes a `struct dagi_error *` and fills it in with
 * dagi_error_set(), which returns the code so that `return dagi_error_set(..)`
 * reads naturally.  Out-parameters are set only on success.
 *
 * Out-of-memory policy: small internal allocations abort the process through
 * dagi_xmalloc() and friends (mem.h) - as redis and git do - because a daemon
 * that limps on after malloc failed corrupts state in ways nobody tests.
 * Everything sized by *untrusted input* is capped instead, and going over a
 * cap is an ordinary error (DAGI_ETOOBIG), never an allocation attempt.
 */
#ifndef DAGI_ERR_H
#define DAGI_ERR_H

#include <stddef.h>

enum dagi_err {
    DAGI_OK = 0,
    DAGI_EINVAL = -1,     /* bad argument or input */
    DAGI_ENOMEM = -2,     /* allocation refused (only where an allocation may fail) */
    DAGI_EIO = -3,        /* operating system or socket error */
    DAGI_ENOENT = -4,     /* no such thing */
    DAGI_ETIMEDOUT = -5,  /* deadline passed */
    DAGI_ETOOBIG = -6,    /* over a configured cap */
    DAGI_EPARSE = -7,     /* malformed input */
    DAGI_ECANCELED = -8,  /* caller cancelled */
    DAGI_EAGAIN = -9,     /* try again later (queue full, not ready) */
    DAGI_EEXIST = -10,    /* already exists */
    DAGI_EPERM = -11,     /* not allowed */
    DAGI_ECLOSED = -12,   /* peer or object closed */
    DAGI_EUNAVAIL = -13,  /* dependency unavailable */
    DAGI_EINTERNAL = -14, /* a bug: an invariant did not hold */
    DAGI_ENEEDMORE = -15, /* incremental parser: feed more bytes */
    DAGI_EQUOTA = -16,    /* over a budget (quotas); HTTP 429 */
};

/* A static, human readable name for an error code ("invalid argument"). */
const char *dagi_strerror(int err);

/* Context for an error, carried up to the log line or the HTTP response. */
struct dagi_error {
    int code;          /* a dagi_err */
    char message[512]; /* what went wrong, for a human */
};

/* Sets code and a printf-style message; returns `code`.  `e` may be NULL. */
int dagi_error_set(struct dagi_error *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
