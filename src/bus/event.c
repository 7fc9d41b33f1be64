/* Event ids and the envelope (event.h).
 *
 * Ids are UUID version 7 (RFC 9562 section 5.7):
 *
 *   unix_ts_ms (48) | ver 0111 (4) | rand_a (12) | var 10 (2) | rand_b (62)
 *
 * rand_a is a counter (RFC 9562 section 6.2, method 1): it starts at a random
 * value below 2048 in each new millisecond and counts up for ids made in the
 * same millisecond, so ids from one process sort in the order they were made.
 * If it would overflow, or the business clock steps back (tests move it), the
 * timestamp is carried forward from the last id instead: ids never go
 * backwards within a process.  rand_b is 62 fresh random bits from libsodium.
 *
 * The timestamp is the business clock (clock.h), the same one that stamps the
 * envelope's `time`, so an id's embedded time equals its event's time. */
#include "event.h"

#include "core/clock.h"

#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t id_last_ms = -1;
static uint32_t id_counter;

static void on_sodium_once(void)
{
    if (sodium_init() < 0)
        abort(); /* no randomness: ids would not be unique */
}

void dagi_event_id(char out[37])
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, on_sodium_once);

    unsigned char rnd[10];
    randombytes_buf(rnd, sizeof(rnd));
    int64_t now = dagi_clock_now_ms();
    if (now < 0)
        now = 0;

    pthread_mutex_lock(&id_lock);
    if (now > id_last_ms) {
        id_last_ms = now;
        id_counter = ((uint32_t)rnd[8] << 8 | rnd[9]) & 0x7ff;
    } else if (++id_counter > 0xfff) {
        id_last_ms++;
        id_counter = ((uint32_t)rnd[8] << 8 | rnd[9]) & 0x7ff;
    }
    uint64_t ms = (uint64_t)id_last_ms & 0xffffffffffffULL;
    uint32_t counter = id_counter;
    pthread_mutex_unlock(&id_lock);

    unsigned char u[16];
    for (int i = 0; i < 6; i++)
        u[i] = (unsigned char)(ms >> (40 - 8 * i));
    u[6] = (unsigned char)(0x70 | (counter >> 8));
    u[7] = (unsigned char)(counter & 0xff);
    memcpy(u + 8, rnd, 8);
    u[8] = (unsigned char)(0x80 | (u[8] & 0x3f));

    static const char hex[] = "0123456789abcdef";
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[u[i] >> 4];
        *p++ = hex[u[i] & 15];
    }
    *p = '\0';
}

/* RFC 3339, UTC, milliseconds: 2026-11-28T20:05:07.123Z */
static void format_time(int64_t ms, char out[32])
{
    time_t secs = (time_t)(ms / 1000);
    int frac = (int)(ms % 1000);
    if (frac < 0) {
        frac += 1000;
        secs--;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    char stamp[24];
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%.19s.%03uZ", stamp, (unsigned)frac % 1000u);
}

char *dagi_event_build(const char *type, const char *source, const char *trace_id, json_t *data,
                       char id_out[37])
{
    char *text = NULL;
    if (!type || !*type || (data && !json_is_object(data))) {
        json_decref(data);
        return NULL;
    }
    char id[37], when[32];
    dagi_event_id(id);
    format_time(dagi_clock_now_ms(), when);

    /* jansson keeps insertion order, so the keys come out in this order */
    json_t *env = json_object();
    json_object_set_new(env, "id", json_string(id));
    json_object_set_new(env, "type", json_string(type));
    json_object_set_new(env, "time", json_string(when));
    json_object_set_new(env, "source", json_string(source ? source : ""));
    json_object_set_new(env, "trace_id", json_string(trace_id ? trace_id : ""));
    json_object_set_new(env, "schema_version", json_integer(DAGI_EVENT_SCHEMA_VERSION));
    json_object_set_new(env, "data", data ? data : json_object());
    text = json_dumps(env, JSON_COMPACT);
    json_decref(env);
    if (text && id_out)
        memcpy(id_out, id, sizeof(id));
    return text;
}

static bool is_uuid(const char *s)
{
    if (strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return true;
}

json_t *dagi_event_parse(const char *text, size_t len, const char **why)
{
    static const char *const strings[] = {"id", "type", "time", "source", "trace_id"};
    const char *reason = NULL;
    json_error_t jerr;
    json_t *env = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!env) {
        reason = "not JSON";
        goto out;
    }
    if (!json_is_object(env)) {
        reason = "not an object";
        goto out;
    }
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        if (!json_is_string(json_object_get(env, strings[i]))) {
            reason = "a required string field (id, type, time, source, trace_id) is missing";
            goto out;
        }
    }
    if (!is_uuid(json_string_value(json_object_get(env, "id")))) {
        reason = "id is not a UUID";
        goto out;
    }
    if (!*json_string_value(json_object_get(env, "type"))) {
        reason = "type is empty";
        goto out;
    }
    if (!json_is_integer(json_object_get(env, "schema_version"))) {
        reason = "schema_version is missing or not an integer";
        goto out;
    }
    if (!json_is_object(json_object_get(env, "data"))) {
        reason = "data is missing or not an object";
        goto out;
    }
out:
    if (reason) {
        json_decref(env);
        env = NULL;
        if (why)
            *why = reason;
    }
    return env;
}
