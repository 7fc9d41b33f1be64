/* Time zones: real TZif files around their DST changes (table and footer),
 * POSIX TZ strings (M, J and n rules, southern hemisphere), UTC and fixed
 * offsets, names that try to leave the root, truncated and corrupt files,
 * the size cap, the cache past its bound, and concurrent lookups.
 *
 * Needs the tzdata package (/usr/share/zoneinfo). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/mem.h"
#include "policy/tz.h"

#define H 3600

static int32_t offset_of(const char *name, int64_t t)
{
    int32_t off = INT32_MIN;
    struct dagi_error err = {0};
    int rc = dagi_tz_offset(name, t, &off, &err);
    if (rc)
        fprintf(stderr, "%s: %s\n", name, err.message);
    assert_int_equal(rc, 0);
    return off;
}

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t *data = dagi_xmalloc(DAGI_TZ_MAX_FILE);
    *len = fread(data, 1, DAGI_TZ_MAX_FILE, f);
    fclose(f);
    return data;
}

static void test_kyiv(void **state)
{
    /* Kyiv goes to EEST at 01:00 UTC on the last Sunday of March and back at
     * 01:00 UTC on the last Sunday of October. */
    const char *kyiv =
        access(DAGI_TZ_DEFAULT_ROOT "/Europe/Kyiv", R_OK) == 0 ? "Europe/Kyiv" : "Europe/Kiev";
    assert_int_equal(offset_of(kyiv, 1711846800 - 1), 2 * H); /* 2024-03-31 00:59:59Z */
    assert_int_equal(offset_of(kyiv, 1711846800), 3 * H);
    assert_int_equal(offset_of(kyiv, 1729990800 - 1), 3 * H); /* 2024-10-27 00:59:59Z */
    assert_int_equal(offset_of(kyiv, 1729990800), 2 * H);
    assert_int_equal(offset_of(kyiv, 1704067200), 2 * H); /* 2024-01-01 */
    assert_int_equal(offset_of(kyiv, 1719792000), 3 * H); /* 2024-07-01 */
    /* Beyond any table: the footer's rule.  In 2100 the last Sundays are
     * March 28 and October 31. */
    assert_int_equal(offset_of(kyiv, 4103654400), 2 * H); /* 2100-01-15 */
    assert_int_equal(offset_of(kyiv, 4118083200), 3 * H); /* 2100-07-01 */
    assert_int_equal(offset_of(kyiv, 4109878800 - 1), 2 * H);
    assert_int_equal(offset_of(kyiv, 4109878800), 3 * H);
    assert_int_equal(offset_of(kyiv, 4128627600 - 1), 3 * H);
    assert_int_equal(offset_of(kyiv, 4128627600), 2 * H);
}

static void test_new_york(void **state)
{
    assert_int_equal(offset_of("America/New_York", 1710054000 - 1), -5 * H); /* 2024-03-10 */
    assert_int_equal(offset_of("America/New_York", 1710054000), -4 * H);
    assert_int_equal(offset_of("America/New_York", 1730613600 - 1), -4 * H); /* 2024-11-03 */
    assert_int_equal(offset_of("America/New_York", 1730613600), -5 * H);
    assert_int_equal(offset_of("America/New_York", 7274534400), -4 * H); /* 2200-07-10 */
    assert_int_equal(offset_of("America/New_York", 7258982400), -5 * H); /* 2200-01-11 */
}

static void test_utc_and_fixed(void **state)
{
    assert_int_equal(offset_of("UTC", 1719792000), 0);
    assert_int_equal(offset_of("Z", -5), 0);
    assert_int_equal(offset_of("Etc/UTC", 1719792000), 0); /* through the file */
    assert_int_equal(offset_of("+03:00", 0), 3 * H);
    assert_int_equal(offset_of("+03", 0), 3 * H);
    assert_int_equal(offset_of("+0300", 0), 3 * H);
    assert_int_equal(offset_of("-0530", 0), -(5 * H + 30 * 60));
    assert_int_equal(offset_of("-05:30", 0), -(5 * H + 30 * 60));
    assert_int_equal(offset_of("+18:00", 0), 18 * H);
    assert_int_equal(offset_of("Asia/Kolkata", 1719792000), 5 * H + 30 * 60);

    int32_t off = 7;
    assert_int_equal(dagi_tz_offset("+03:0", 0, &off, NULL), DAGI_EINVAL);
    assert_int_equal(dagi_tz_offset("+03:00x", 0, &off, NULL), DAGI_EINVAL);
    assert_int_equal(dagi_tz_offset("+18:01", 0, &off, NULL), DAGI_EINVAL);
    assert_int_equal(dagi_tz_offset("+19", 0, &off, NULL), DAGI_ENOENT); /* a name, no file */
    assert_int_equal(off, 7);
}

static void test_bad_names(void **state)
{
    static const char *const bad[] = {
        "",
        "../etc/passwd",
        "/etc/passwd",
        "Europe/../../etc/passwd",
        "Europe//Kyiv",
        "Europe/Kyiv/",
        ".hidden",
        "Europe/.Kyiv",
        "Europe Kyiv",
        "Europe/Kyiv\n",
        "Europe\\Kyiv",
        "Європа/Київ",
        "a:b",
    };
    struct dagi_error err = {0};
    int32_t off = 7;
    for (size_t i = 0; i < DAGI_ARRAY_LEN(bad); i++) {
        assert_int_equal(dagi_tz_offset(bad[i], 0, &off, &err), DAGI_EINVAL);
        assert_int_equal(dagi_tz_check_name(bad[i], NULL), DAGI_EINVAL);
        assert_int_equal(err.code, DAGI_EINVAL);
    }
    assert_int_equal(dagi_tz_offset(NULL, 0, &off, NULL), DAGI_EINVAL);
    char longname[DAGI_TZ_MAX_NAME + 2];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(dagi_tz_check_name(longname, NULL), DAGI_EINVAL);
    assert_int_equal(dagi_tz_offset("Nowhere/Zone", 0, &off, &err), DAGI_ENOENT);
    assert_non_null(strstr(err.message, "Nowhere/Zone"));
    assert_int_equal(dagi_tz_offset("Europe", 0, &off, NULL), DAGI_ENOENT); /* a directory */
    assert_int_equal(off, 7);
    assert_int_equal(dagi_tz_check_name("America/Argentina/Buenos_Aires", NULL), 0);
    assert_int_equal(dagi_tz_check_name("Etc/GMT+3", NULL), 0);
}

static void write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void remove_file(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    unlink(path);
}

static void test_truncated_files(void **state)
{
    size_t len;
    uint8_t *kyiv = read_all(DAGI_TZ_DEFAULT_ROOT "/America/New_York", &len);
    char dir[] = "/tmp/dagi_tz_XXXXXX";
    assert_non_null(mkdtemp(dir));
    /* Every cut is an error, never a crash or a half-read zone. */
    static const char *const names[] = {"cut0",     "cut10",      "cut44", "cut100",
                                        "cut_half", "cut_footer", "cut_nl"};
    size_t cuts[] = {0, 10, 44, 100, len / 2, len - 10, len - 1};
    for (size_t i = 0; i < DAGI_ARRAY_LEN(names); i++)
        write_file(dir, names[i], kyiv, cuts[i]);
    write_file(dir, "whole", kyiv, len);
    uint8_t *big = dagi_xcalloc(1, DAGI_TZ_MAX_FILE + 1);
    memcpy(big, kyiv, len);
    write_file(dir, "big", big, DAGI_TZ_MAX_FILE + 1);

    dagi_tz_set_root(dir);
    int32_t off = 7;
    struct dagi_error err = {0};
    for (size_t i = 0; i < DAGI_ARRAY_LEN(names); i++) {
        assert_int_equal(dagi_tz_offset(names[i], 0, &off, &err), DAGI_EPARSE);
        assert_non_null(strstr(err.message, names[i]));
    }
    assert_int_equal(dagi_tz_offset("big", 0, &off, NULL), DAGI_ETOOBIG);
    assert_int_equal(off, 7);
    assert_int_equal(offset_of("whole", 1710054000), -4 * H);
    assert_int_equal(dagi_tz_offset("America/New_York", 0, &off, NULL), DAGI_ENOENT);
    dagi_tz_set_root(NULL);
    assert_int_equal(offset_of("America/New_York", 1710054000), -4 * H);

    for (size_t i = 0; i < DAGI_ARRAY_LEN(names); i++)
        remove_file(dir, names[i]);
    remove_file(dir, "whole");
    remove_file(dir, "big");
    rmdir(dir);
    free(big);
    free(kyiv);
}

/* A version 1 file: header then transitions, indices and types. */
static size_t build_v1(uint8_t *out, const int32_t *times, const uint8_t *idx, size_t timecnt,
                       const int32_t *utoffs, size_t typecnt)
{
    size_t n = 0;
    memcpy(out, "TZif", 4);
    memset(out + 4, 0, 40);
    uint32_t counts[6] = {0, 0, 0, (uint32_t)timecnt, (uint32_t)typecnt, 4};
    for (int i = 0; i < 6; i++)
        for (int b = 0; b < 4; b++)
            out[20 + i * 4 + b] = (uint8_t)(counts[i] >> (24 - 8 * b));
    n = 44;
    for (size_t i = 0; i < timecnt; i++, n += 4)
        for (int b = 0; b < 4; b++)
            out[n + b] = (uint8_t)((uint32_t)times[i] >> (24 - 8 * b));
    memcpy(out + n, idx, timecnt);
    n += timecnt;
    for (size_t i = 0; i < typecnt; i++, n += 6) {
        for (int b = 0; b < 4; b++)
            out[n + b] = (uint8_t)((uint32_t)utoffs[i] >> (24 - 8 * b));
        out[n + 4] = i > 0;
        out[n + 5] = 0;
    }
    memcpy(out + n, "AB\0\0", 4);
    return n + 4;
}

static void test_parse_v1_and_checks(void **state)
{
    uint8_t buf[256];
    struct dagi_tz *tz = NULL;
    struct dagi_error err = {0};
    const int32_t times[] = {-1000, 0, 1000};
    const uint8_t idx[] = {1, 0, 1};
    const int32_t utoffs[] = {3600, 7200};
    size_t len = build_v1(buf, times, idx, 3, utoffs, 2);
    assert_int_equal(dagi_tzif_parse(buf, len, &tz, &err), 0);
    assert_int_equal(dagi_tz_lookup(tz, -5000), 3600); /* type 0 before the first */
    assert_int_equal(dagi_tz_lookup(tz, -1000), 7200);
    assert_int_equal(dagi_tz_lookup(tz, -1), 7200);
    assert_int_equal(dagi_tz_lookup(tz, 0), 3600);
    assert_int_equal(dagi_tz_lookup(tz, 999), 3600);
    assert_int_equal(dagi_tz_lookup(tz, INT64_MAX), 7200); /* v1: the last type goes on */
    assert_int_equal(dagi_tz_lookup(tz, INT64_MIN), 3600);
    dagi_tz_free(tz);

    const int32_t unsorted[] = {0, 0, 1000};
    len = build_v1(buf, unsorted, idx, 3, utoffs, 2);
    assert_int_equal(dagi_tzif_parse(buf, len, &tz, &err), DAGI_EPARSE);
    assert_non_null(strstr(err.message, "not after"));
    const uint8_t bad_idx[] = {1, 2, 1};
    len = build_v1(buf, times, bad_idx, 3, utoffs, 2);
    assert_int_equal(dagi_tzif_parse(buf, len, &tz, &err), DAGI_EPARSE);
    const int32_t bad_off[] = {3600, INT32_MIN};
    len = build_v1(buf, times, idx, 3, bad_off, 2);
    assert_int_equal(dagi_tzif_parse(buf, len, &tz, &err), DAGI_EPARSE);
    len = build_v1(buf, times, idx, 0, utoffs, 0);
    assert_int_equal(dagi_tzif_parse(buf, len, &tz, &err), DAGI_EPARSE); /* no types */
    len = build_v1(buf, times, idx, 3, utoffs, 2);
    buf[0] = 'X';
    assert_int_equal(dagi_tzif_parse(buf, len, &tz, &err), DAGI_EPARSE);
    assert_int_equal(dagi_tzif_parse(buf, 0, &tz, &err), DAGI_EPARSE);
}

/* The 64-bit block of a real file and its 32-bit block read alone agree. */
static void test_v1_block_of_real_file(void **state)
{
    size_t len;
    uint8_t *data = read_all(DAGI_TZ_DEFAULT_ROOT "/America/New_York", &len);
    struct dagi_tz *v2 = NULL, *v1 = NULL;
    assert_int_equal(dagi_tzif_parse(data, len, &v2, NULL), 0);
    data[4] = 0; /* relabel as version 1: the reader stops after the first block */
    assert_int_equal(dagi_tzif_parse(data, len, &v1, NULL), 0);
    for (int64_t t = 0; t < 2000000000; t += 86400 * 7 + 3600)
        assert_int_equal(dagi_tz_lookup(v1, t), dagi_tz_lookup(v2, t));
    dagi_tz_free(v1);
    dagi_tz_free(v2);
    free(data);
}

static int32_t posix_at(const char *rule, int64_t t)
{
    struct dagi_tz *tz = NULL;
    struct dagi_error err = {0};
    int rc = dagi_tz_posix_parse(rule, strlen(rule), &tz, &err);
    if (rc)
        fprintf(stderr, "%s\n", err.message);
    assert_int_equal(rc, 0);
    int32_t off = dagi_tz_lookup(tz, t);
    dagi_tz_free(tz);
    return off;
}

static void test_posix_strings(void **state)
{
    const char *eet = "EET-2EEST,M3.5.0/3,M10.5.0/4";
    assert_int_equal(posix_at(eet, 1711846800 - 1), 2 * H);
    assert_int_equal(posix_at(eet, 1711846800), 3 * H);
    assert_int_equal(posix_at(eet, 1729990800 - 1), 3 * H);
    assert_int_equal(posix_at(eet, 1729990800), 2 * H);
    /* US rules, written out and by default. */
    assert_int_equal(posix_at("EST5EDT,M3.2.0,M11.1.0", 1710054000), -4 * H);
    assert_int_equal(posix_at("EST5EDT", 1710054000 - 1), -5 * H);
    assert_int_equal(posix_at("EST5EDT", 1710054000), -4 * H);
    /* Southern hemisphere: DST spans the new year. */
    const char *syd = "AEST-10AEDT,M10.1.0,M4.1.0/3";
    assert_int_equal(posix_at(syd, 1705276800), 11 * H); /* 2024-01-15 */
    assert_int_equal(posix_at(syd, 1719792000), 10 * H); /* 2024-07-01 */
    assert_int_equal(posix_at(syd, 1735603200), 11 * H); /* 2024-12-31 */
    /* Quoted names, minutes, Julian and zero-based days, hours past 24. */
    assert_int_equal(posix_at("<+0330>-3:30", 0), 3 * H + 30 * 60);
    const char *iran = "<+0330>-3:30<+0430>,J80/0,J264/0";         /* Iran until 2022 */
    assert_int_equal(posix_at(iran, 1593561600), 4 * H + 30 * 60); /* 2020-07-01 */
    assert_int_equal(posix_at(iran, 1577836800), 3 * H + 30 * 60); /* 2020-01-01 */
    /* J60 is March 1 in any year; n=59 is Feb 29 in a leap year. */
    assert_int_equal(posix_at("AAA0BBB,J60/0,J300", 1583020800 - 1), 0); /* 2020-02-29 23:59:59 */
    assert_int_equal(posix_at("AAA0BBB,J60/0,J300", 1583020800), H);
    assert_int_equal(posix_at("AAA0BBB,59/0,300", 1582934400 - 1), 0); /* 2020-02-28 23:59:59 */
    assert_int_equal(posix_at("AAA0BBB,59/0,300", 1582934400), H);
    /* DST all year (RFC 8536 3.3.1). */
    assert_int_equal(posix_at("EST5EDT,0/0,J365/25", 1719792000), -4 * H);
    assert_int_equal(posix_at("EST5EDT,0/0,J365/25", 1704067200 + 5 * H), -4 * H);
    assert_int_equal(posix_at("UTC0", INT64_MAX), 0);
    assert_int_equal(posix_at("EET-2EEST,M3.5.0/3,M10.5.0/4", INT64_MIN), 2 * H);

    static const char *const bad[] = {"",
                                      "E-2",
                                      "EET",
                                      "EET-25",
                                      "EET-2EEST,M13.5.0,M10.5.0",
                                      "EET-2EEST,M3.6.0,M10.5.0",
                                      "EET-2EEST,M3.5.7,M10.5.0",
                                      "EET-2EEST,J0,J365",
                                      "EET-2EEST,366,0",
                                      "EET-2EEST,M3.5.0/168,M10.5.0",
                                      "EET-2EEST,M3.5.0",
                                      "EET-2EEST,M3.5.0,M10.5.0x",
                                      "<+03-3",
                                      "EET-2:60"};
    struct dagi_tz *tz;
    for (size_t i = 0; i < DAGI_ARRAY_LEN(bad); i++)
        assert_int_equal(dagi_tz_posix_parse(bad[i], strlen(bad[i]), &tz, NULL), DAGI_EPARSE);
}

static void add_zones(const char *dir, char ***names, size_t *n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", DAGI_TZ_DEFAULT_ROOT, dir);
    DIR *d = opendir(path);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d)) && *n < 1000;) {
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s/%s", DAGI_TZ_DEFAULT_ROOT, dir, e->d_name);
        if (e->d_name[0] == '.' || stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        *names = dagi_xrealloc(*names, (*n + 1) * sizeof(**names));
        (*names)[(*n)++] = dagi_xasprintf("%s/%s", dir, e->d_name);
    }
    closedir(d);
}

/* Hundreds of zones - far more than the cache holds, so it evicts - each
 * checked against glibc's own reading of the same file, from 1901 to 2200
 * (past every table, into the footers). */
static void test_against_libc(void **state)
{
    char **names = NULL;
    size_t n = 0;
    static const char *const dirs[] = {"Europe", "America", "Asia",   "Australia",
                                       "Africa", "Etc",     "Pacific"};
    for (size_t i = 0; i < DAGI_ARRAY_LEN(dirs); i++)
        add_zones(dirs[i], &names, &n);
    assert_true(n > DAGI_TZ_CACHE_MAX);
    char *saved = getenv("TZ") ? dagi_xstrdup(getenv("TZ")) : NULL;
    size_t checked = 0;
    for (size_t i = 0; i < n; i++) {
        char tzenv[600];
        snprintf(tzenv, sizeof(tzenv), ":%s/%s", DAGI_TZ_DEFAULT_ROOT, names[i]);
        setenv("TZ", tzenv, 1);
        tzset();
        for (int64_t t = -2100000000LL; t < 7300000000LL; t += 86400LL * 29 + 3607) {
            time_t tt = (time_t)t;
            struct tm tm;
            if (!localtime_r(&tt, &tm))
                continue;
            int32_t off = offset_of(names[i], t);
            if (off != tm.tm_gmtoff)
                fprintf(stderr, "%s at %lld: %d, libc %ld\n", names[i], (long long)t, off,
                        tm.tm_gmtoff);
            assert_int_equal(off, tm.tm_gmtoff);
            checked++;
        }
    }
    if (saved)
        setenv("TZ", saved, 1);
    else
        unsetenv("TZ");
    tzset();
    free(saved);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    assert_true(checked > 1000);
    /* Etc/GMT+3 is UTC-3: POSIX's sign. */
    assert_int_equal(offset_of("Etc/GMT+3", 0), -3 * H);
}

static void *lookup_thread(void *arg)
{
    static const char *const zones[] = {"Europe/Kyiv", "America/New_York", "Asia/Kolkata", "UTC",
                                        "+02:00"};
    static const int32_t want[] = {3 * H, -4 * H, 5 * H + 1800, 0, 2 * H};
    (void)arg;
    for (int i = 0; i < 2000; i++) {
        size_t z = (size_t)i % DAGI_ARRAY_LEN(zones);
        int32_t off;
        if (dagi_tz_offset(zones[z], 1719792000, &off, NULL) != 0 || off != want[z])
            return (void *)1;
        if (i % 500 == 0)
            dagi_tz_set_root(NULL); /* empties the cache under the others' feet */
    }
    return NULL;
}

static void test_threads(void **state)
{
    if (access(DAGI_TZ_DEFAULT_ROOT "/Europe/Kyiv", R_OK) != 0)
        skip();
    pthread_t th[6];
    for (size_t i = 0; i < DAGI_ARRAY_LEN(th); i++)
        assert_int_equal(pthread_create(&th[i], NULL, lookup_thread, NULL), 0);
    for (size_t i = 0; i < DAGI_ARRAY_LEN(th); i++) {
        void *ret;
        pthread_join(th[i], &ret);
        assert_null(ret);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kyiv),
        cmocka_unit_test(test_new_york),
        cmocka_unit_test(test_utc_and_fixed),
        cmocka_unit_test(test_bad_names),
        cmocka_unit_test(test_truncated_files),
        cmocka_unit_test(test_parse_v1_and_checks),
        cmocka_unit_test(test_v1_block_of_real_file),
        cmocka_unit_test(test_posix_strings),
        cmocka_unit_test(test_against_libc),
        cmocka_unit_test(test_threads),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    dagi_tz_set_root(NULL); /* frees the cache for the leak checker */
    return rc;
}
