#include "log.h"

#include "buf.h"
#include "clock.h"
#include "err.h"
#include "redact.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_CAP (64 * 1024)

static _Atomic int log_min_level = DAGI_LOG_INFO;
static int log_fd = 2;
static _Thread_local const char *thread_role = "node";

void dagi_log_setup(enum dagi_log_level min_level, int fd)
{
    atomic_store(&log_min_level, (int)min_level);
    log_fd = fd;
}

void dagi_log_set_level(enum dagi_log_level min_level)
{
    atomic_store(&log_min_level, (int)min_level);
}

static const char *const level_names[] = {"debug", "info", "warn", "error"};

const char *dagi_log_level_name(enum dagi_log_level level)
{
    return (unsigned)level < 4 ? level_names[level] : "info";
}

int dagi_log_level_parse(const char *name, enum dagi_log_level *out)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum dagi_log_level)i;
            return DAGI_OK;
        }
    return DAGI_EINVAL;
}

void dagi_log_set_thread_role(const char *role)
{
    thread_role = role ? role : "node";
}

int dagi_log_enabled(enum dagi_log_level level)
{
    return (int)level >= atomic_load_explicit(&log_min_level, memory_order_relaxed);
}

/* Appends a JSON string value with secrets masked: redact first into a
 * scratch buffer, then escape. */
static void append_value(struct dagi_buf *line, const char *value, bool secret)
{
    if (!value) {
        dagi_buf_append_str(line, "null");
        return;
    }
    dagi_buf_append_char(line, '"');
    if (secret) {
        dagi_buf_append_str(line, DAGI_REDACTED);
    } else {
        struct dagi_buf clean;
        dagi_buf_init(&clean, LOG_LINE_CAP / 2);
        dagi_redact_append(&clean, value, strlen(value));
        dagi_buf_append_json_escaped(line, dagi_buf_str(&clean), clean.len);
        dagi_buf_release(&clean);
    }
    dagi_buf_append_char(line, '"');
}

void dagi_log(enum dagi_log_level level, const char *trace_id, const char *message, ...)
{
    if (!dagi_log_enabled(level))
        return;
    struct dagi_buf line;
    dagi_buf_init(&line, LOG_LINE_CAP);

    int64_t now = dagi_clock_now_ms();
    time_t secs = (time_t)(now / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char stamp[40];
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    dagi_buf_appendf(&line, "{\"time\":\"%s.%03dZ\",\"level\":\"%s\",\"role\":", stamp,
                     (int)(now % 1000), dagi_log_level_name(level));
    append_value(&line, thread_role, false);
    if (trace_id && *trace_id) {
        dagi_buf_append_str(&line, ",\"trace_id\":");
        append_value(&line, trace_id, false);
    }
    dagi_buf_append_str(&line, ",\"message\":");
    append_value(&line, message, false);

    va_list ap;
    va_start(ap, message);
    for (;;) {
        const char *key = va_arg(ap, const char *);
        if (!key)
            break;
        const char *value = va_arg(ap, const char *);
        dagi_buf_append_char(&line, ',');
        append_value(&line, key, false);
        dagi_buf_append_char(&line, ':');
        append_value(&line, value, dagi_redact_is_secret_key(key));
    }
    va_end(ap);
    /* A line that hit the cap is cut; close it so it stays one JSON object. */
    if (dagi_buf_append_str(&line, "}\n") != DAGI_OK) {
        line.cap += 64;
        dagi_buf_append_str(&line, "\",\"truncated\":true}\n");
    }
    ssize_t ignored = write(log_fd, line.data, line.len);
    (void)ignored;
    dagi_buf_release(&line);
}
