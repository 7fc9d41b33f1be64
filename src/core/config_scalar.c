/* The configuration's scalars on their own, with no document, schema walk
 * or error context: parsing integers, durations ("250ms", "5m"), sizes
 * ("1536", "20 GB") and addresses (host:port); writing sizes, durations
 * and bounds back in a human form; type names; a value quoted for an error
 * message; the list of an enum's values; and the edit distance behind
 * "did you mean".
 *
 * They live apart from config.c so that the binder reads as the walk it
 * is.  config.c and config_docs.c reach them through config_doc.h;
 * dagi_cfg_parse_duration and dagi_cfg_parse_size are public (config.h). */
#include "config.h"

#include "config_doc.h"
#include "err.h"
#include "mem.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- shared helpers (config_doc.h) ---- */

const char *dagi_cfg_type_name(enum dagi_cfg_type type)
{
    static const char *const names[] = {
        [DAGI_CFG_STRING] = "string",
        [DAGI_CFG_INT] = "integer",
        [DAGI_CFG_BOOL] = "bool",
        [DAGI_CFG_DOUBLE] = "number",
        [DAGI_CFG_DURATION] = "duration",
        [DAGI_CFG_SIZE] = "size",
        [DAGI_CFG_ENUM] = "enum",
        [DAGI_CFG_ADDRESS] = "address",
        [DAGI_CFG_STRING_LIST] = "list of strings",
        [DAGI_CFG_SECTION] = "section",
        [DAGI_CFG_LIST] = "list",
    };
    return (unsigned)type < DAGI_ARRAY_LEN(names) ? names[type] : "?";
}

void dagi_cfg_format_size(int64_t bytes, char *out, size_t out_len)
{
    static const struct {
        const char *name;
        int64_t mult;
    } units[] = {{"TB", (int64_t)1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}};
    for (size_t i = 0; i < DAGI_ARRAY_LEN(units); i++) {
        if (bytes != 0 && bytes % units[i].mult == 0) {
            snprintf(out, out_len, "%" PRId64 " %s", bytes / units[i].mult, units[i].name);
            return;
        }
    }
    snprintf(out, out_len, "%" PRId64 " %s", bytes, bytes == 1 ? "byte" : "bytes");
}

void dagi_cfg_format_duration(int64_t ms, char *out, size_t out_len)
{
    static const struct {
        const char *name;
        int64_t mult;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};
    for (size_t i = 0; i < DAGI_ARRAY_LEN(units); i++) {
        if (ms != 0 && ms % units[i].mult == 0) {
            snprintf(out, out_len, "%" PRId64 "%s", ms / units[i].mult, units[i].name);
            return;
        }
    }
    snprintf(out, out_len, "%" PRId64 "ms", ms);
}

void dagi_cfg_format_number(double v, char *out, size_t out_len)
{
    if ((v < 0 ? -v : v) < 1e15 && (double)(int64_t)v == v)
        snprintf(out, out_len, "%" PRId64, (int64_t)v);
    else
        snprintf(out, out_len, "%g", v);
}

/* ---- scalar parsers ---- */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Decimal int64 with an optional sign; *overflow tells "too big" from
 * "not a number". */
bool dagi_cfg_parse_int(const char *t, int64_t *out, bool *overflow)
{
    bool neg = *t == '-';
    if (*t == '-' || *t == '+')
        t++;
    if (!is_digit(*t))
        return false;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;
    for (; is_digit(*t); t++) {
        unsigned d = (unsigned)(*t - '0');
        if (v > (limit - d) / 10) {
            *overflow = true;
            return false;
        }
        v = v * 10 + d;
    }
    if (*t)
        return false;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

struct unit {
    const char *name;
    int64_t mult;
};

static const struct unit duration_units[] = {
    {"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}, {NULL, 0},
};

static const struct unit size_units[] = {
    {"", 1},
    {"b", 1},
    {"k", (int64_t)1 << 10},
    {"kb", (int64_t)1 << 10},
    {"kib", (int64_t)1 << 10},
    {"m", (int64_t)1 << 20},
    {"mb", (int64_t)1 << 20},
    {"mib", (int64_t)1 << 20},
    {"g", (int64_t)1 << 30},
    {"gb", (int64_t)1 << 30},
    {"gib", (int64_t)1 << 30},
    {"t", (int64_t)1 << 40},
    {"tb", (int64_t)1 << 40},
    {"tib", (int64_t)1 << 40},
    {NULL, 0},
};

/* A non-negative integer, optional spaces, then a unit from the table. */
static int parse_with_unit(const char *t, const struct unit *units, bool fold_case, int64_t *out)
{
    if (!t || !is_digit(*t))
        return DAGI_EINVAL;
    uint64_t v = 0;
    for (; is_digit(*t); t++) {
        unsigned d = (unsigned)(*t - '0');
        if (v > ((uint64_t)INT64_MAX - d) / 10)
            return DAGI_EINVAL;
        v = v * 10 + d;
    }
    const char *spaces = t;
    while (*t == ' ')
        t++;
    if (t != spaces && !*t)
        return DAGI_EINVAL;
    const struct unit *u = units;
    for (; u->name; u++)
        if ((fold_case ? strcasecmp(t, u->name) : strcmp(t, u->name)) == 0)
            break;
    if (!u->name || v > (uint64_t)(INT64_MAX / u->mult))
        return DAGI_EINVAL;
    *out = (int64_t)v * u->mult;
    return 0;
}

int dagi_cfg_parse_duration(const char *text, int64_t *ms_out)
{
    /* Case matters: "5M" could be read as months. */
    return parse_with_unit(text, duration_units, false, ms_out);
}

int dagi_cfg_parse_size(const char *text, int64_t *bytes_out)
{
    return parse_with_unit(text, size_units, true, bytes_out);
}

bool dagi_cfg_valid_address(const char *s)
{
    const char *colon;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close == s + 1 || close[1] != ':')
            return false;
        colon = close + 1;
    } else {
        /* An unbracketed IPv6 address would make the port ambiguous. */
        colon = strchr(s, ':');
        if (!colon || colon == s || strchr(colon + 1, ':'))
            return false;
    }
    for (const char *p = s; p < colon; p++)
        if ((unsigned char)*p <= ' ')
            return false;
    const char *port = colon + 1;
    size_t n = strlen(port);
    if (n == 0 || n > 5 || strspn(port, "0123456789") != n)
        return false;
    return atoi(port) <= 65535;
}

void dagi_cfg_enum_list(const struct dagi_cfg_field *f, struct dagi_buf *out)
{
    for (const char *const *v = f->enum_values; v && *v; v++)
        dagi_buf_appendf(out, "%s%s", v == f->enum_values ? "" : ", ", *v);
}

/* ---- values in messages ---- */

/* A value as shown in a message: quoted, escaped and cut short, so one
 * error stays one line however hostile the value. */
const char *dagi_cfg_quote(char out[static 100], const char *s, size_t len)
{
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        if (o > 80) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(out + o, 5, "\\x%02x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

/* ---- "did you mean" ---- */

size_t dagi_cfg_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[65];
    if (la > 64 || lb > 64)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}
