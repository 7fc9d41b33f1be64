/* UTC calendar windows and the subject tokens of quota events (quota.h).
 *
 * Months are computed with Howard Hinnant's days-from-civil algorithms
 * (proleptic Gregorian, exact for every int64 day count we meet), not with
 * gmtime/timegm: no time zone state, no locale, and the same answer for
 * times before 1970 that a test clock may produce. */
#include "quota/quota.h"

#include "core/clock.h"
#include "core/err.h"

#include <stdio.h>
#include <string.h>

#define MINUTE_MS 60000LL
#define DAY_MS 86400000LL

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    *m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

void dagi_quota_window_bounds(int window, int64_t t_ms, int64_t *start_ms, int64_t *end_ms)
{
    switch (window) {
    case DAGI_QUOTA_MINUTE:
        *start_ms = floor_div(t_ms, MINUTE_MS) * MINUTE_MS;
        *end_ms = *start_ms + MINUTE_MS;
        return;
    case DAGI_QUOTA_MONTH: {
        int64_t y;
        unsigned m, d;
        civil_from_days(floor_div(t_ms, DAY_MS), &y, &m, &d);
        *start_ms = days_from_civil(y, m, 1) * DAY_MS;
        *end_ms = (m == 12 ? days_from_civil(y + 1, 1, 1) : days_from_civil(y, m + 1, 1)) * DAY_MS;
        return;
    }
    case DAGI_QUOTA_DAY:
    default:
        *start_ms = floor_div(t_ms, DAY_MS) * DAY_MS;
        *end_ms = *start_ms + DAY_MS;
        return;
    }
}

void dagi_quota_window_now(int window, int64_t *start_ms, int64_t *end_ms)
{
    dagi_quota_window_bounds(window, dagi_clock_now_ms(), start_ms, end_ms);
}

void dagi_quota_format_time(int64_t t_ms, char out[32])
{
    int64_t days = floor_div(t_ms, DAY_MS);
    int64_t in_day = t_ms - days * DAY_MS;
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(out, 32, "%04lld-%02u-%02uT%02u:%02u:%02u.%03uZ", (long long)y, m, d,
             (unsigned)(in_day / 3600000), (unsigned)(in_day / 60000 % 60),
             (unsigned)(in_day / 1000 % 60), (unsigned)(in_day % 1000));
}

int dagi_quota_subject_token(const char *id, char *out, size_t out_len)
{
    static const char hex[] = "0123456789ABCDEF";
    if (!id || !*id)
        return DAGI_EINVAL;
    size_t n = 0;
    for (const unsigned char *c = (const unsigned char *)id; *c; c++) {
        bool keep = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                    (*c >= '0' && *c <= '9') || *c == '_' || *c == '-';
        size_t need = keep || *c == ':' ? 1 : 3;
        if (n + need >= out_len)
            return DAGI_ETOOBIG;
        if (keep) {
            out[n++] = (char)*c;
        } else if (*c == ':') {
            out[n++] = '_';
        } else {
            out[n++] = '%';
            out[n++] = hex[*c >> 4];
            out[n++] = hex[*c & 15];
        }
    }
    out[n] = '\0';
    return (int)n;
}
