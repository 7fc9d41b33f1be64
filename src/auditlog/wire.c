/* Audit events on the bus (chain.h, docs/AUDIT.md):
 *
 *   subject   audit.{service}.{action}          stream DAGI_AUDIT
 *   envelope  event.h, type "audit"; id = the record's event_id (and the
 *             Nats-Msg-Id), time = its time_ms, trace_id = its trace_id
 *   data      {"service", "action", "actor", "subject", "decision", "metadata"}
 *
 * The actor is already a pseudonym: the principal never travels. */
#include "auditlog/chain.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/event.h"

json_t *dagi_audit_event_data(const struct dagi_audit_record *r)
{
    json_t *meta = json_loads(r->metadata, 0, NULL);
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:o}", "service", r->service, "action", r->action,
                     "actor", r->actor, "subject", r->subject, "decision", r->decision, "metadata",
                     meta ? meta : json_object());
}

/* RFC 3339, UTC, milliseconds, as dagi_event_build writes it. */
static void format_time(int64_t ms, char out[32])
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char stamp[24];
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%.19s.%03dZ", stamp, (int)(ms % 1000));
}

/* The envelope by hand rather than dagi_event_build, which would make its
 * own id and time: here both are the record's. */
char *dagi_audit_event_build(const struct dagi_audit_record *r, const char *source)
{
    char when[32];
    format_time(r->time_ms, when);
    json_t *data = dagi_audit_event_data(r);
    if (!data)
        return NULL;
    json_t *env = json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:o}", "id", r->event_id, "type", "audit",
                            "time", when, "source", source ? source : "", "trace_id", r->trace_id,
                            "schema_version", DAGI_EVENT_SCHEMA_VERSION, "data", data);
    char *text = env ? json_dumps(env, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(env);
    return text;
}

static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* "2026-11-28T20:05:07.123Z" (what dagi_event_build writes) -> Unix ms. */
static int parse_time(const char *s, int64_t *out)
{
    if (strlen(s) != 24 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':' || s[19] != '.' || s[23] != 'Z')
        return -1;
    int year = digits(s, 4), mon = digits(s + 5, 2), day = digits(s + 8, 2),
        hour = digits(s + 11, 2), min = digits(s + 14, 2), sec = digits(s + 17, 2),
        ms = digits(s + 20, 3);
    if (year < 1970 || mon < 1 || mon > 12 || day < 1 || day > 31 || hour < 0 || hour > 23 ||
        min < 0 || min > 59 || sec < 0 || sec > 60 || ms < 0)
        return -1;
    struct tm tm = {.tm_year = year - 1900,
                    .tm_mon = mon - 1,
                    .tm_mday = day,
                    .tm_hour = hour,
                    .tm_min = min,
                    .tm_sec = sec};
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *out = (int64_t)t * 1000 + ms;
    return 0;
}

/* A string member into a fixed field; false when absent, not a string,
 * holding a NUL, or over the field's size. */
static bool member(json_t *obj, const char *name, char *dst, size_t cap, bool required)
{
    json_t *v = json_object_get(obj, name);
    if (!v && !required) {
        dst[0] = '\0';
        return true;
    }
    if (!json_is_string(v))
        return false;
    size_t n = json_string_length(v);
    if (n >= cap || strlen(json_string_value(v)) != n)
        return false;
    memcpy(dst, json_string_value(v), n + 1);
    return true;
}

int dagi_audit_event_decode(const char *text, size_t len, const char *subject,
                            struct dagi_audit_record *r, const char **why)
{
    const char *reason = NULL;
    memset(r, 0, sizeof(*r));
    json_t *env = dagi_event_parse(text, len, &reason);
    json_t *data = json_object_get(env, "data");
    json_t *meta = json_object_get(data, "metadata");
    char *meta_text = NULL;
    if (!env)
        goto out;
    if (strcmp(json_string_value(json_object_get(env, "type")), "audit") != 0) {
        reason = "type is not audit";
        goto out;
    }
    snprintf(r->event_id, sizeof(r->event_id), "%s", json_string_value(json_object_get(env, "id")));
    if (parse_time(json_string_value(json_object_get(env, "time")), &r->time_ms)) {
        reason = "time is not RFC 3339 UTC with milliseconds";
        goto out;
    }
    if (!member(env, "trace_id", r->trace_id, sizeof(r->trace_id), true) ||
        !member(data, "service", r->service, sizeof(r->service), true) ||
        !member(data, "action", r->action, sizeof(r->action), true) ||
        !member(data, "actor", r->actor, sizeof(r->actor), true) ||
        !member(data, "subject", r->subject, sizeof(r->subject), false) ||
        !member(data, "decision", r->decision, sizeof(r->decision), true)) {
        reason = "a data field (service, action, actor, subject, decision) is missing, not a "
                 "string or too long";
        goto out;
    }
    if (meta && !json_is_object(meta)) {
        reason = "metadata is not an object";
        goto out;
    }
    meta_text = meta ? json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    if (meta && (!meta_text || strlen(meta_text) > DAGI_AUDIT_METADATA_MAX)) {
        reason = "metadata is over 8 KiB";
        goto out;
    }
    snprintf(r->metadata, sizeof(r->metadata), "%s", meta_text ? meta_text : "{}");
    struct dagi_error err = {0};
    if (dagi_audit_record_check(r, &err)) {
        reason = "a field is out of shape (names: [a-z0-9_]; text: no control characters)";
        goto out;
    }
    if (subject) {
        char want[2 * DAGI_AUDIT_NAME_MAX + 8];
        snprintf(want, sizeof(want), "audit.%s.%s", r->service, r->action);
        if (strcmp(subject, want) != 0)
            reason = "the subject is not audit.{service}.{action} of the event";
    }
out:
    free(meta_text);
    json_decref(env);
    if (reason) {
        if (why)
            *why = reason;
        memset(r, 0, sizeof(*r));
        return DAGI_EPARSE;
    }
    return DAGI_OK;
}
