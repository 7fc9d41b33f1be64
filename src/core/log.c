#include "log.h"

#include "buf.h"
#include "clock.h"
#include "err.h"
#include "redact.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
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
    if (!name || !out)
        return DAGI_EINVAL;
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

/* Room kept at the end of a line for the closing quote and
 * ,"truncated":true}\n when a line is cut. */
#define LOG_LINE_RESERVE 64
#define LOG_LINE_BUDGET (LOG_LINE_CAP - LOG_LINE_RESERVE)

/* Bytes in the UTF-8 sequence that starts with c (1 for a stray byte). */
static size_t utf8_len(unsigned char c)
{
    return c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
}

/* Appends s escaped as the inside of a JSON string while the line stays within
 * LOG_LINE_BUDGET.  Stops at a character boundary (never inside an escape or a
 * UTF-8 sequence) and returns false when it had to stop early. */
static bool append_escaped_bounded(struct dagi_buf *line, const char *s, size_t len)
{
    /* An escaped byte takes at most 6 bytes ("\u001f"). */
    if (line->len <= LOG_LINE_BUDGET && len <= (LOG_LINE_BUDGET - line->len) / 6)
        return dagi_buf_append_json_escaped(line, s, len) == DAGI_OK;
    size_t i = 0;
    while (i < len) {
        size_t n = utf8_len((unsigned char)s[i]);
        if (n > len - i)
            n = len - i;
        if (line->len + 6 * n > LOG_LINE_BUDGET ||
            dagi_buf_append_json_escaped(line, s + i, n) != DAGI_OK)
            return false;
        i += n;
    }
    return true;
}

/* Appends a JSON string value (or null) with secrets masked: redact first into
 * a scratch buffer, then escape.  Returns false when the value was cut short
 * because the line is full; the string is closed either way. */
static bool append_value(struct dagi_buf *line, const char *value, bool secret)
{
    if (!value) {
        dagi_buf_append_str(line, "null"); /* fits: LOG_LINE_RESERVE */
        return true;
    }
    bool whole;
    dagi_buf_append_char(line, '"');
    if (secret) {
        whole = append_escaped_bounded(line, DAGI_REDACTED, strlen(DAGI_REDACTED));
    } else {
        /* No more than a line's worth of input; the cut cannot reveal a secret
         * (a cut secret still matches, a cut prefix holds none). */
        size_t len = strnlen(value, LOG_LINE_CAP + 1);
        bool cut = len > LOG_LINE_CAP;
        if (cut) {
            len = LOG_LINE_CAP;
            while (len > 0 && ((unsigned char)value[len] & 0xc0) == 0x80)
                len--;
        }
        /* Masking at most quadruples a text ("sk-x " -> "sk-[redacted] "). */
        struct dagi_buf clean;
        dagi_buf_init(&clean, 4 * len + 64);
        dagi_redact_append(&clean, value, len);
        whole = append_escaped_bounded(line, dagi_buf_str(&clean), clean.len) && !cut;
        dagi_buf_release(&clean);
    }
    dagi_buf_append_char(line, '"'); /* fits: LOG_LINE_RESERVE */
    return whole;
}

/* One write(2) for the line; loops only on EINTR or a short write. */
static void write_line(const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(log_fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        p += n;
        len -= (size_t)n;
    }
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
    bool whole = append_value(&line, thread_role, false);
    if (whole && trace_id && *trace_id) {
        dagi_buf_append_str(&line, ",\"trace_id\":");
        whole = append_value(&line, trace_id, false);
    }
    if (whole) {
        dagi_buf_append_str(&line, ",\"message\":");
        whole = append_value(&line, message, false);
    }

    va_list ap;
    va_start(ap, message);
    while (whole) {
        const char *key = va_arg(ap, const char *);
        if (!key)
            break;
        const char *value = va_arg(ap, const char *);
        size_t mark = line.len;
        dagi_buf_append_char(&line, ',');
        if (!append_value(&line, key, false) || line.len + 1 > LOG_LINE_BUDGET) {
            /* A cut key: drop the whole field. */
            line.len = mark;
            line.data[mark] = '\0';
            whole = false;
            break;
        }
        dagi_buf_append_char(&line, ':');
        whole = append_value(&line, value, dagi_redact_is_secret_key(key));
    }
    va_end(ap);
    /* A line that hit the cap is cut at a field boundary or inside a value
     * that was closed; either way it stays one JSON object. */
    dagi_buf_append_str(&line, whole ? "}\n" : ",\"truncated\":true}\n");
    write_line(line.data, line.len);
    dagi_buf_release(&line);
}
