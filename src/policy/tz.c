/* TZif reading (RFC 8536), POSIX TZ strings, and the zone cache.
 *
 * The files come from a package, not from users, but the parser still treats
 * them as untrusted bytes: every count is checked against the length before
 * anything is read or allocated, so a corrupt or hostile file is an error and
 * never a crash (tests/fuzz/fuzz_tzif.c drives dagi_tzif_parse). */
#include "policy/tz.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/mem.h"

#define HEADER_LEN 44
#define SECS_PER_DAY 86400
/* RFC 8536 3.2: an offset outside this range is not a real zone. */
#define MIN_UTOFF (-89999)
#define MAX_UTOFF 93599
/* The footer's rule arithmetic is done in years near t; far outside any
 * calendar of interest t is clamped so that nothing can overflow. */
#define RULE_T_LIMIT ((int64_t)1 << 40)

struct tz_type {
    int32_t utoff;
    bool isdst;
};

/* One end of daylight time in a POSIX rule: Mm.w.d, Jn or n, at `secs`
 * after local midnight (RFC 8536 allows -167..167 hours). */
struct tz_date {
    char kind; /* 'M', 'J' or 'N' */
    int month, week, wday, day;
    int32_t secs;
};

struct tz_rule {
    int32_t std_off, dst_off; /* seconds east of UTC */
    bool has_dst;
    struct tz_date start, end;
};

struct dagi_tz {
    size_t timecnt, typecnt;
    int64_t *times; /* ascending */
    uint8_t *idx;   /* type of each transition */
    struct tz_type *types;
    bool has_rule; /* footer: applies after the last transition */
    struct tz_rule rule;
};

/* --- calendar arithmetic (proleptic Gregorian, days since 1970-01-01) --- */

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* H. Hinnant's days_from_civil. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int64_t year_of_days(int64_t z)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    return yoe + era * 400 + (mp >= 10);
}

static int month_days(int64_t y, int m)
{
    static const int len[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return len[m - 1] + (m == 2 && is_leap(y));
}

/* Local seconds since the epoch of a rule date in year y. */
static int64_t date_secs(const struct tz_date *d, int64_t y)
{
    int64_t days;
    if (d->kind == 'J') { /* 1-365, February 29 never counted */
        days = days_from_civil(y, 1, 1) + d->day - 1 + (is_leap(y) && d->day >= 60);
    } else if (d->kind == 'N') { /* 0-365, February 29 counted */
        days = days_from_civil(y, 1, 1) + d->day;
    } else { /* the w-th (5 = last) weekday d of month m */
        int64_t first = days_from_civil(y, d->month, 1);
        int dow = (int)((first + 4) % 7 + 7) % 7; /* 1970-01-01 was a Thursday */
        int mday = 1 + (d->wday - dow + 7) % 7 + 7 * (d->week - 1);
        while (mday > month_days(y, d->month))
            mday -= 7;
        days = first + mday - 1;
    }
    return days * SECS_PER_DAY + d->secs;
}

static int32_t rule_offset(const struct tz_rule *r, int64_t t)
{
    if (!r->has_dst)
        return r->std_off;
    if (t > RULE_T_LIMIT)
        t = RULE_T_LIMIT;
    if (t < -RULE_T_LIMIT)
        t = -RULE_T_LIMIT;
    int64_t y = year_of_days(floor_div(t + r->std_off, SECS_PER_DAY));
    /* The start is written in standard time, the end in daylight time. */
    int64_t start = date_secs(&r->start, y) - r->std_off;
    int64_t end = date_secs(&r->end, y) - r->dst_off;
    bool dst = start < end ? t >= start && t < end : !(t >= end && t < start);
    return dst ? r->dst_off : r->std_off;
}

int32_t dagi_tz_lookup(const struct dagi_tz *tz, int64_t unix_s)
{
    if (tz->timecnt == 0)
        return tz->has_rule ? rule_offset(&tz->rule, unix_s) : tz->types[0].utoff;
    if (unix_s < tz->times[0])
        return tz->types[0].utoff; /* RFC 8536 3.2: type 0 before the first */
    if (unix_s >= tz->times[tz->timecnt - 1] && tz->has_rule)
        return rule_offset(&tz->rule, unix_s);
    size_t lo = 0, hi = tz->timecnt; /* the last transition <= unix_s */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->times[mid] <= unix_s)
            lo = mid;
        else
            hi = mid;
    }
    return tz->types[tz->idx[lo]].utoff;
}

void dagi_tz_free(struct dagi_tz *tz)
{
    free(tz);
}

/* One allocation holds the zone and its arrays. */
static struct dagi_tz *tz_alloc(size_t timecnt, size_t typecnt)
{
    size_t size = sizeof(struct dagi_tz) + timecnt * sizeof(int64_t) +
                  typecnt * sizeof(struct tz_type) + timecnt;
    struct dagi_tz *tz = dagi_xcalloc(1, size);
    tz->timecnt = timecnt;
    tz->typecnt = typecnt;
    tz->times = (int64_t *)(tz + 1);
    tz->types = (struct tz_type *)(tz->times + timecnt);
    tz->idx = (uint8_t *)(tz->types + typecnt);
    return tz;
}

/* --- POSIX TZ strings --- */

struct scan {
    const char *s;
    size_t len, pos;
};

static int peek(const struct scan *sc)
{
    return sc->pos < sc->len ? (unsigned char)sc->s[sc->pos] : -1;
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Up to `max_digits` digits into *v; false when there is none. */
static bool scan_num(struct scan *sc, int max_digits, int *v)
{
    int n = 0, digits = 0;
    while (digits < max_digits && is_digit(peek(sc))) {
        n = n * 10 + (peek(sc) - '0');
        sc->pos++, digits++;
    }
    *v = n;
    return digits > 0;
}

/* "EET" or "<+0330>": at least three characters, as POSIX asks. */
static bool scan_name(struct scan *sc)
{
    size_t start = sc->pos;
    if (peek(sc) == '<') {
        sc->pos++;
        while (is_alpha(peek(sc)) || is_digit(peek(sc)) || peek(sc) == '+' || peek(sc) == '-')
            sc->pos++;
        if (peek(sc) != '>' || sc->pos - start - 1 < 3)
            return false;
        sc->pos++;
        return true;
    }
    while (is_alpha(peek(sc)))
        sc->pos++;
    return sc->pos - start >= 3;
}

/* [+-]hh[:mm[:ss]] with hours up to max_hours, in seconds. */
static bool scan_hms(struct scan *sc, int max_hours, int32_t *secs)
{
    int sign = 1, h, m = 0, s = 0;
    if (peek(sc) == '+' || peek(sc) == '-')
        sign = sc->s[sc->pos++] == '-' ? -1 : 1;
    if (!scan_num(sc, 3, &h) || h > max_hours)
        return false;
    if (peek(sc) == ':') {
        sc->pos++;
        if (!scan_num(sc, 2, &m) || m > 59)
            return false;
        if (peek(sc) == ':') {
            sc->pos++;
            if (!scan_num(sc, 2, &s) || s > 59)
                return false;
        }
    }
    *secs = sign * (h * 3600 + m * 60 + s);
    return true;
}

static bool scan_date(struct scan *sc, struct tz_date *d)
{
    memset(d, 0, sizeof(*d));
    if (peek(sc) == 'M') {
        sc->pos++;
        d->kind = 'M';
        if (!scan_num(sc, 2, &d->month) || d->month < 1 || d->month > 12 || peek(sc) != '.')
            return false;
        sc->pos++;
        if (!scan_num(sc, 1, &d->week) || d->week < 1 || d->week > 5 || peek(sc) != '.')
            return false;
        sc->pos++;
        if (!scan_num(sc, 1, &d->wday) || d->wday > 6)
            return false;
    } else if (peek(sc) == 'J') {
        sc->pos++;
        d->kind = 'J';
        if (!scan_num(sc, 3, &d->day) || d->day < 1 || d->day > 365)
            return false;
    } else {
        d->kind = 'N';
        if (!scan_num(sc, 3, &d->day) || d->day > 365)
            return false;
    }
    d->secs = 2 * 3600; /* POSIX: 02:00 unless given */
    if (peek(sc) == '/') {
        sc->pos++;
        return scan_hms(sc, 167, &d->secs);
    }
    return true;
}

static bool parse_rule(const char *s, size_t len, struct tz_rule *r)
{
    struct scan sc = {s, len, 0};
    int32_t off;
    memset(r, 0, sizeof(*r));
    /* POSIX offsets count hours *west* of Greenwich: "EET-2" is UTC+2. */
    if (!scan_name(&sc) || !scan_hms(&sc, 24, &off))
        return false;
    r->std_off = -off;
    if (sc.pos == len)
        return true;
    if (!scan_name(&sc))
        return false;
    r->has_dst = true;
    r->dst_off = r->std_off + 3600;
    if (sc.pos < len && peek(&sc) != ',') {
        if (!scan_hms(&sc, 24, &off))
            return false;
        r->dst_off = -off;
    }
    if (sc.pos == len) {
        /* No rule given: tzcode's default, the US rules since 2007. */
        r->start = (struct tz_date){'M', 3, 2, 0, 0, 2 * 3600};
        r->end = (struct tz_date){'M', 11, 1, 0, 0, 2 * 3600};
        return true;
    }
    if (peek(&sc) != ',')
        return false;
    sc.pos++;
    if (!scan_date(&sc, &r->start) || peek(&sc) != ',')
        return false;
    sc.pos++;
    return scan_date(&sc, &r->end) && sc.pos == len;
}

int dagi_tz_posix_parse(const char *s, size_t len, struct dagi_tz **out, struct dagi_error *err)
{
    struct tz_rule rule;
    if (!parse_rule(s, len, &rule))
        return dagi_error_set(err, DAGI_EPARSE, "malformed POSIX TZ string \"%.*s\"",
                              (int)(len > 64 ? 64 : len), s);
    struct dagi_tz *tz = tz_alloc(0, 1);
    tz->types[0].utoff = rule.std_off;
    tz->has_rule = true;
    tz->rule = rule;
    *out = tz;
    return 0;
}

/* --- TZif --- */

struct tzif_counts {
    uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
};

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const uint8_t *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

/* Reads the header at p[0..len); *version is 1 or 2 (2 = 2 and later). */
static int read_header(const uint8_t *p, size_t len, int *version, struct tzif_counts *c,
                       struct dagi_error *err)
{
    if (len < HEADER_LEN)
        return dagi_error_set(err, DAGI_EPARSE, "TZif header cut short");
    if (memcmp(p, "TZif", 4) != 0)
        return dagi_error_set(err, DAGI_EPARSE, "not a TZif file (bad magic)");
    if (p[4] != 0 && (p[4] < '2' || p[4] > '9'))
        return dagi_error_set(err, DAGI_EPARSE, "unknown TZif version 0x%02x", p[4]);
    *version = p[4] == 0 ? 1 : 2;
    c->isutcnt = be32(p + 20);
    c->isstdcnt = be32(p + 24);
    c->leapcnt = be32(p + 28);
    c->timecnt = be32(p + 32);
    c->typecnt = be32(p + 36);
    c->charcnt = be32(p + 40);
    return 0;
}

/* Size of a data block; 64-bit arithmetic, so 32-bit counts cannot wrap. */
static uint64_t block_size(const struct tzif_counts *c, unsigned time_size)
{
    return (uint64_t)c->timecnt * (time_size + 1) + (uint64_t)c->typecnt * 6 + c->charcnt +
           (uint64_t)c->leapcnt * (time_size + 4) + c->isstdcnt + c->isutcnt;
}

/* Fills a zone from the data block at p (its size already checked). */
static int read_block(const uint8_t *p, const struct tzif_counts *c, unsigned time_size,
                      struct dagi_tz **out, struct dagi_error *err)
{
    if (c->typecnt == 0 || c->typecnt > 256)
        return dagi_error_set(err, DAGI_EPARSE, "TZif typecnt %u out of 1-256", c->typecnt);
    if ((c->isstdcnt != 0 && c->isstdcnt != c->typecnt) ||
        (c->isutcnt != 0 && c->isutcnt != c->typecnt))
        return dagi_error_set(err, DAGI_EPARSE, "TZif isstdcnt/isutcnt differ from typecnt");
    struct dagi_tz *tz = tz_alloc(c->timecnt, c->typecnt);
    const uint8_t *idx = p + (size_t)c->timecnt * time_size;
    const uint8_t *types = idx + c->timecnt;
    int rc = 0;
    for (size_t i = 0; i < c->timecnt; i++) {
        const uint8_t *t = p + i * time_size;
        tz->times[i] = time_size == 8 ? be64(t) : (int32_t)be32(t);
        if (i > 0 && tz->times[i] <= tz->times[i - 1]) {
            rc = dagi_error_set(err, DAGI_EPARSE, "TZif transition %zu is not after the last", i);
            goto out;
        }
        if (idx[i] >= c->typecnt) {
            rc = dagi_error_set(err, DAGI_EPARSE, "TZif transition %zu names type %u of %u", i,
                                idx[i], c->typecnt);
            goto out;
        }
        tz->idx[i] = idx[i];
    }
    for (size_t i = 0; i < c->typecnt; i++) {
        int32_t utoff = (int32_t)be32(types + i * 6);
        if (utoff < MIN_UTOFF || utoff > MAX_UTOFF || types[i * 6 + 4] > 1) {
            rc = dagi_error_set(err, DAGI_EPARSE, "TZif time type %zu is malformed", i);
            goto out;
        }
        tz->types[i].utoff = utoff;
        tz->types[i].isdst = types[i * 6 + 4];
    }
out:
    if (rc) {
        dagi_tz_free(tz);
        return rc;
    }
    *out = tz;
    return 0;
}

/* The footer of a version 2+ file: "\n" TZ-string "\n".  An empty string
 * means the last type goes on for ever. */
static int read_footer(const uint8_t *p, size_t len, struct dagi_tz *tz, struct dagi_error *err)
{
    if (len < 2 || p[0] != '\n')
        return dagi_error_set(err, DAGI_EPARSE, "TZif footer missing");
    const uint8_t *nl = memchr(p + 1, '\n', len - 1);
    if (!nl)
        return dagi_error_set(err, DAGI_EPARSE, "TZif footer is not terminated");
    size_t n = (size_t)(nl - p - 1);
    if (n == 0)
        return 0;
    if (!parse_rule((const char *)p + 1, n, &tz->rule))
        return dagi_error_set(err, DAGI_EPARSE, "TZif footer \"%.*s\" is not a POSIX TZ string",
                              (int)(n > 64 ? 64 : n), (const char *)p + 1);
    tz->has_rule = true;
    return 0;
}

int dagi_tzif_parse(const uint8_t *data, size_t len, struct dagi_tz **out, struct dagi_error *err)
{
    struct tzif_counts c = {0};
    int version = 0, rc;
    if ((rc = read_header(data, len, &version, &c, err)))
        return rc;
    uint64_t size = block_size(&c, 4);
    if (size > len - HEADER_LEN)
        return dagi_error_set(err, DAGI_EPARSE, "TZif data cut short");
    if (version == 1)
        return read_block(data + HEADER_LEN, &c, 4, out, err);

    /* Version 2+: readers skip the 32-bit block and use the 64-bit one. */
    size_t pos = HEADER_LEN + (size_t)size;
    int version2 = 0;
    if ((rc = read_header(data + pos, len - pos, &version2, &c, err)))
        return rc;
    pos += HEADER_LEN;
    size = block_size(&c, 8);
    if (version2 != 2 || size > len - pos)
        return dagi_error_set(err, DAGI_EPARSE, "TZif 64-bit data cut short or mislabelled");
    struct dagi_tz *tz = NULL;
    if ((rc = read_block(data + pos, &c, 8, &tz, err)))
        return rc;
    pos += (size_t)size;
    if ((rc = read_footer(data + pos, len - pos, tz, err))) {
        dagi_tz_free(tz);
        return rc;
    }
    *out = tz;
    return 0;
}

/* --- names --- */

/* "UTC", "Z", "+03", "+0300", "+03:00" (hours <= 18). */
static bool fixed_offset(const char *name, int32_t *off)
{
    if (!strcmp(name, "UTC") || !strcmp(name, "Z")) {
        *off = 0;
        return true;
    }
    if ((name[0] != '+' && name[0] != '-') || !is_digit(name[1]) || !is_digit(name[2]))
        return false;
    int h = (name[1] - '0') * 10 + (name[2] - '0'), m = 0;
    const char *p = name + 3;
    if (*p == ':' && p[1])
        p++;
    if (*p) {
        if (!is_digit(p[0]) || !is_digit(p[1]) || p[2])
            return false;
        m = (p[0] - '0') * 10 + (p[1] - '0');
    }
    if (h > 18 || m > 59 || (h == 18 && m > 0))
        return false;
    *off = (name[0] == '-' ? -1 : 1) * (h * 3600 + m * 60);
    return true;
}

int dagi_tz_check_name(const char *name, struct dagi_error *err)
{
    int32_t off;
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > DAGI_TZ_MAX_NAME)
        return dagi_error_set(err, DAGI_EINVAL, "a time zone name has 1-%d bytes",
                              DAGI_TZ_MAX_NAME);
    if (fixed_offset(name, &off))
        return 0;
    /* Component by component, so the name cannot climb out of the root. */
    const char *comp = name;
    for (const char *p = name;; p++) {
        if (*p == '/' || *p == '\0') {
            size_t n = (size_t)(p - comp);
            if (n == 0 || comp[0] == '.')
                return dagi_error_set(err, DAGI_EINVAL,
                                      "time zone \"%.64s\": empty or dot path component", name);
            if (*p == '\0')
                return 0;
            comp = p + 1;
        } else if (!is_alpha(*p) && !is_digit(*p) && !strchr("_+-", *p)) {
            return dagi_error_set(err, DAGI_EINVAL,
                                  "time zone \"%.64s\": only A-Z a-z 0-9 _ + - / are allowed",
                                  name);
        }
    }
}

/* --- loading and the cache --- */

struct cache_entry {
    char *name;
    struct dagi_tz *tz;
    uint64_t used; /* cache_tick at the last lookup */
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cache_entry cache[DAGI_TZ_CACHE_MAX];
static size_t cache_count;
static uint64_t cache_tick;
/* Bumped by dagi_tz_set_root: a zone loaded from the old root is dropped. */
static uint64_t cache_generation;
static char *cache_root; /* NULL = DAGI_TZ_DEFAULT_ROOT */

static int load_file(const char *root, const char *name, struct dagi_tz **out,
                     struct dagi_error *err)
{
    char path[4096];
    uint8_t *data = NULL;
    struct stat st;
    int rc = 0;
    int plen = snprintf(path, sizeof(path), "%s/%s", root, name);
    if (plen < 0 || (size_t)plen >= sizeof(path))
        return dagi_error_set(err, DAGI_EINVAL, "time zone root %.64s...: path too long", root);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return dagi_error_set(err, DAGI_ENOENT, "no time zone \"%s\" under %s", name, root);
        return dagi_error_set(err, DAGI_EIO, "%s: %s", path, strerror(errno));
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = dagi_error_set(err, DAGI_ENOENT, "time zone \"%s\": %s is not a file", name, path);
        goto out;
    }
    if (st.st_size > DAGI_TZ_MAX_FILE) {
        rc = dagi_error_set(err, DAGI_ETOOBIG, "time zone file %s is over %d bytes", path,
                            DAGI_TZ_MAX_FILE);
        goto out;
    }
    /* Read to the cap + 1, not to st_size: the file may change under us. */
    data = dagi_xmalloc(DAGI_TZ_MAX_FILE + 1);
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, data + len, DAGI_TZ_MAX_FILE + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = dagi_error_set(err, DAGI_EIO, "%s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > DAGI_TZ_MAX_FILE) {
            rc = dagi_error_set(err, DAGI_ETOOBIG, "time zone file %s is over %d bytes", path,
                                DAGI_TZ_MAX_FILE);
            goto out;
        }
    }
    struct dagi_error perr = {0};
    if ((rc = dagi_tzif_parse(data, len, out, &perr)))
        dagi_error_set(err, rc, "%s: %s", path, perr.message);
out:
    free(data);
    close(fd);
    return rc;
}

/* Under cache_lock: the entry for name, or NULL. */
static struct cache_entry *cache_find(const char *name)
{
    for (size_t i = 0; i < cache_count; i++)
        if (!strcmp(cache[i].name, name))
            return &cache[i];
    return NULL;
}

/* Under cache_lock: adds the zone (the cache takes it), evicting the least
 * recently used entry when full; returns the entry. */
static struct cache_entry *cache_add(const char *name, struct dagi_tz *tz)
{
    struct cache_entry *e;
    if (cache_count < DAGI_TZ_CACHE_MAX) {
        e = &cache[cache_count++];
    } else {
        e = &cache[0];
        for (size_t i = 1; i < cache_count; i++)
            if (cache[i].used < e->used)
                e = &cache[i];
        free(e->name);
        dagi_tz_free(e->tz);
    }
    e->name = dagi_xstrdup(name);
    e->tz = tz;
    return e;
}

int dagi_tz_offset(const char *name, int64_t unix_s, int32_t *offset_s, struct dagi_error *err)
{
    int32_t off;
    int rc;
    if ((rc = dagi_tz_check_name(name, err)))
        return rc;
    if (fixed_offset(name, &off)) {
        *offset_s = off;
        return 0;
    }

    pthread_mutex_lock(&cache_lock);
    struct cache_entry *e = cache_find(name);
    if (e) {
        e->used = ++cache_tick;
        *offset_s = dagi_tz_lookup(e->tz, unix_s);
        pthread_mutex_unlock(&cache_lock);
        return 0;
    }
    char root[4096];
    snprintf(root, sizeof(root), "%s", cache_root ? cache_root : DAGI_TZ_DEFAULT_ROOT);
    uint64_t generation = cache_generation;
    pthread_mutex_unlock(&cache_lock);

    /* The file is read without the lock; two threads may both load a new
     * zone, and the second one keeps the first one's copy. */
    struct dagi_tz *tz = NULL;
    if ((rc = load_file(root, name, &tz, err)))
        return rc;
    pthread_mutex_lock(&cache_lock);
    if (generation == cache_generation) {
        if ((e = cache_find(name)) == NULL)
            e = cache_add(name, tz);
        else
            dagi_tz_free(tz);
        e->used = ++cache_tick;
        off = dagi_tz_lookup(e->tz, unix_s);
    } else {
        off = dagi_tz_lookup(tz, unix_s);
        dagi_tz_free(tz);
    }
    pthread_mutex_unlock(&cache_lock);
    *offset_s = off;
    return 0;
}

void dagi_tz_set_root(const char *root)
{
    pthread_mutex_lock(&cache_lock);
    for (size_t i = 0; i < cache_count; i++) {
        free(cache[i].name);
        dagi_tz_free(cache[i].tz);
    }
    cache_count = 0;
    cache_generation++;
    free(cache_root);
    cache_root = root ? dagi_xstrdup(root) : NULL;
    pthread_mutex_unlock(&cache_lock);
}
