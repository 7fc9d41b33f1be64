#include "err.h"

#include <stdarg.h>
#include <stdio.h>

const char *dagi_strerror(int err)
{
    switch (err) {
    case DAGI_OK: return "ok";
    case DAGI_EINVAL: return "invalid argument";
    case DAGI_ENOMEM: return "out of memory";
    case DAGI_EIO: return "input/output error";
    case DAGI_ENOENT: return "not found";
    case DAGI_ETIMEDOUT: return "timed out";
    case DAGI_ETOOBIG: return "too large";
    case DAGI_EPARSE: return "malformed input";
    case DAGI_ECANCELED: return "cancelled";
    case DAGI_EAGAIN: return "try again";
    case DAGI_EEXIST: return "already exists";
    case DAGI_EPERM: return "not permitted";
    case DAGI_ECLOSED: return "closed";
    case DAGI_EUNAVAIL: return "unavailable";
    case DAGI_EINTERNAL: return "internal error";
    case DAGI_ENEEDMORE: return "incomplete input";
    case DAGI_EQUOTA: return "over budget";
    }
    return "unknown error";
}

int dagi_error_set(struct dagi_error *e, int code, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        e->code = code;
        vsnprintf(e->message, sizeof(e->message), fmt, ap);
        va_end(ap);
    }
    return code;
}
