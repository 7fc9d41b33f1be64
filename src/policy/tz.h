/* Time zones for calendar rules (quiet hours): a small, safe reader of the
 * system's TZif files (RFC 8536, versions 1-4) and of the POSIX TZ string in
 * their footer, which gives the offset for times after the last transition.
 *
 * Names:
 *   "UTC", "Z"                   offset 0, no file
 *   "+03:00", "-0530", "+03"     fixed offsets up to 18:00, no file
 *   "Europe/Kyiv", ...           <root>/<name>, root = /usr/share/zoneinfo
 *                                (the tzdata package) unless dagi_tz_set_root()
 * A name must be 1-255 bytes of A-Z a-z 0-9 _ + - /, with no empty, "." or
 * ".." component and no leading "/": it never leaves the root.
 *
 * Parsed zones are cached by name (at most DAGI_TZ_CACHE_MAX, the least
 * recently used one goes first); the cache is shared and thread safe.  Files
 * over DAGI_TZ_MAX_FILE bytes are refused. */
#ifndef DAGI_POLICY_TZ_H
#define DAGI_POLICY_TZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define DAGI_TZ_DEFAULT_ROOT "/usr/share/zoneinfo"
#define DAGI_TZ_MAX_FILE (256 * 1024)
#define DAGI_TZ_MAX_NAME 255
#define DAGI_TZ_CACHE_MAX 64

/* A parsed zone: immutable, owned by whoever parsed it (or the cache). */
struct dagi_tz;

/* Parses a TZif file held in data[0..len).  Uses the 64-bit data of a
 * version 2+ file (the 32-bit block is only skipped) and its footer; checks
 * every count against the length, the indices, that transitions ascend and
 * that offsets are sane.  Returns 0 and a new zone (free with dagi_tz_free),
 * or DAGI_EPARSE with err saying what is wrong.  Pure: no I/O. */
int dagi_tzif_parse(const uint8_t *data, size_t len, struct dagi_tz **out, struct dagi_error *err);
void dagi_tz_free(struct dagi_tz *tz);

/* UTC offset in seconds (local = UTC + offset) at unix_s.  Before the first
 * transition the first time type applies, after the last one the footer's
 * TZ string (when it has one).  Never fails. */
int32_t dagi_tz_lookup(const struct dagi_tz *tz, int64_t unix_s);

/* Parses a POSIX TZ string ("EET-2EEST,M3.5.0/3,M10.5.0/4", "UTC0",
 * "<+0330>-3:30", rules Mm.w.d, Jn and n, RFC 8536's hours up to 167) into a
 * zone of its own: a TZ variable's value without a TZif file.  Returns 0 or
 * DAGI_EPARSE. */
int dagi_tz_posix_parse(const char *s, size_t len, struct dagi_tz **out, struct dagi_error *err);

/* Checks the name's syntax (no file access): 0 or DAGI_EINVAL. */
int dagi_tz_check_name(const char *name, struct dagi_error *err);

/* The offset of zone `name` at unix_s (see the names above), loading and
 * caching the zone on first use.  Returns 0, DAGI_EINVAL (bad name),
 * DAGI_ENOENT (no such zone file), DAGI_ETOOBIG, DAGI_EPARSE or DAGI_EIO;
 * *offset_s is set only on success. */
int dagi_tz_offset(const char *name, int64_t unix_s, int32_t *offset_s, struct dagi_error *err);

/* Moves the zone files' root (NULL = the default) and empties the cache.
 * For tests; thread safe, the string is copied. */
void dagi_tz_set_root(const char *root);

#endif
