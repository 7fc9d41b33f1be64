/* Structured JSON logs: one object per line on stderr (or a chosen fd):
 *   {"time":"2026-11-28T20:05:07.123Z","level":"info","role":"gateway",
 *    "trace_id":"...","message":"listening","addr":"127.0.0.1:8080"}
 *
 * Fields are key/value string pairs ended by NULL.  Every value passes through
 * the one redaction helper (redact.h): a field whose key names a secret is
 * printed as "[redacted]", and secret-looking substrings of other values and
 * of the message (Bearer tokens, bot tokens, dagi keys) are masked.  Thread
 * safe: each line is written with a single write(2). */
#ifndef DAGI_LOG_H
#define DAGI_LOG_H

enum dagi_log_level {
    DAGI_LOG_DEBUG,
    DAGI_LOG_INFO,
    DAGI_LOG_WARN,
    DAGI_LOG_ERROR,
};

/* min level and output fd (2 by default).  Call before threads start. */
void dagi_log_setup(enum dagi_log_level min_level, int fd);
void dagi_log_set_level(enum dagi_log_level min_level);
/* "debug" | "info" | "warn" | "error"; returns 0 or DAGI_EINVAL. */
int dagi_log_level_parse(const char *name, enum dagi_log_level *out);
const char *dagi_log_level_name(enum dagi_log_level level);
/* The role name printed on this thread's lines ("node" until set). */
void dagi_log_set_thread_role(const char *role);
int dagi_log_enabled(enum dagi_log_level level);

/* trace_id may be NULL.  The variadic part is (const char *key, const char
 * *value) pairs terminated by a NULL key; a NULL value prints as null. */
void dagi_log(enum dagi_log_level level, const char *trace_id, const char *message, ...);

#define dagi_log_debug(trace, ...) dagi_log(DAGI_LOG_DEBUG, trace, __VA_ARGS__, (const char *)0)
#define dagi_log_info(trace, ...) dagi_log(DAGI_LOG_INFO, trace, __VA_ARGS__, (const char *)0)
#define dagi_log_warn(trace, ...) dagi_log(DAGI_LOG_WARN, trace, __VA_ARGS__, (const char *)0)
#define dagi_log_error(trace, ...) dagi_log(DAGI_LOG_ERROR, trace, __VA_ARGS__, (const char *)0)

#endif
