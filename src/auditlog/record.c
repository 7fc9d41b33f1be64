/* The audit record: shape checks, the fixed-order length-prefixed encoding
 * and the chain hash (chain.h has the format). */
#include "auditlog/chain.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "bus/event.h"
#include "core/buf.h"
#include "core/clock.h"

#define FORMAT_TAG "dagi.audit.v1"

/* --- shapes --- */

/* [a-z0-9_]+: a NATS subject token that needs no escaping. */
static bool is_name(const char *s, size_t max)
{
    size_t n = strlen(s);
    return n > 0 && n <= max && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

/* Printable UTF-8 within the cap: no control characters, since a log or
 * a terminal shows the field as it is. */
static bool is_text(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    json_t *probe = json_stringn(s, n); /* NULL for invalid UTF-8 */
    bool ok = probe != NULL;
    json_decref(probe);
    return ok;
}

int dagi_audit_record_check(const struct dagi_audit_record *r, struct dagi_error *err)
{
    const char *bad = NULL;
    if (!is_name(r->service, DAGI_AUDIT_NAME_MAX))
        bad = "service must be 1-64 of [a-z0-9_]";
    else if (!is_name(r->action, DAGI_AUDIT_NAME_MAX))
        bad = "action must be 1-64 of [a-z0-9_]";
    else if (!r->actor[0] || !is_text(r->actor, DAGI_AUDIT_ACTOR_MAX))
        bad = "actor must be 1-256 bytes of text";
    else if (!is_text(r->subject, DAGI_AUDIT_SUBJECT_MAX))
        bad = "subject must be at most 512 bytes of text";
    else if (!is_name(r->decision, DAGI_AUDIT_DECISION_MAX))
        bad = "decision must be 1-32 of [a-z0-9_]";
    else if (!is_text(r->trace_id, DAGI_AUDIT_TRACE_MAX))
        bad = "trace_id must be at most 128 bytes of text";
    else if (strlen(r->event_id) != 36)
        bad = "event_id must be a UUID";
    else if (r->time_ms < 0)
        bad = "time_ms must not be negative";
    else if (r->metadata[0] != '{')
        bad = "metadata must be a JSON object";
    if (bad)
        return dagi_error_set(err, DAGI_EINVAL, "audit record: %s", bad);
    return DAGI_OK;
}

static int copy_field(char *dst, size_t cap, const char *src, const char *what,
                      struct dagi_error *err)
{
    size_t n = strlen(src);
    if (n >= cap)
        return dagi_error_set(err, DAGI_EINVAL, "audit event: %s is over %zu bytes", what, cap - 1);
    memcpy(dst, src, n + 1);
    return DAGI_OK;
}

/* Compact, sorted keys: one text for one object, whoever makes it. */
static int canonical_metadata(char *dst, const json_t *meta, struct dagi_error *err)
{
    if (!meta) {
        memcpy(dst, "{}", 3);
        return DAGI_OK;
    }
    if (!json_is_object(meta))
        return dagi_error_set(err, DAGI_EINVAL, "audit event: metadata must be a JSON object");
    char *text = json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS);
    int rc = text ? copy_field(dst, DAGI_AUDIT_METADATA_MAX + 1, text, "metadata", err)
                  : dagi_error_set(err, DAGI_EINVAL, "audit event: metadata does not serialise");
    free(text);
    return rc;
}

int dagi_audit_record_from_event(struct dagi_audit_record *r, const unsigned char *key,
                                 const struct dagi_audit_event *ev, struct dagi_error *err)
{
    memset(r, 0, sizeof(*r));
    int rc =
        copy_field(r->service, sizeof(r->service), ev->service ? ev->service : "", "service", err);
    if (!rc)
        rc = copy_field(r->action, sizeof(r->action), ev->action ? ev->action : "", "action", err);
    if (!rc && (!ev->actor || !strcmp(ev->actor, "system") || !strcmp(ev->actor, "anonymous")))
        rc = copy_field(r->actor, sizeof(r->actor), ev->actor ? ev->actor : "system", "actor", err);
    else if (!rc)
        dagi_audit_pseudonym(key, ev->actor, r->actor);
    if (!rc)
        rc = copy_field(r->subject, sizeof(r->subject), ev->subject ? ev->subject : "", "subject",
                        err);
    if (!rc)
        rc = copy_field(r->decision, sizeof(r->decision), ev->decision ? ev->decision : "ok",
                        "decision", err);
    if (!rc)
        rc = copy_field(r->trace_id, sizeof(r->trace_id), ev->trace_id ? ev->trace_id : "",
                        "trace_id", err);
    if (!rc)
        rc = canonical_metadata(r->metadata, ev->metadata, err);
    if (rc)
        return rc;
    dagi_event_id(r->event_id);
    r->time_ms = dagi_clock_now_ms();
    return dagi_audit_record_check(r, err);
}

/* --- the encoding --- */

/* encode() writes through a sink, so the hash streams the same bytes the
 * documented encoding has without building them first. */
struct sink {
    void (*put)(struct sink *s, const void *p, size_t n);
};

struct buf_sink {
    struct sink base;
    struct dagi_buf *buf;
    int rc;
};

struct hash_sink {
    struct sink base;
    crypto_generichash_state st;
};

static void put_buf(struct sink *s, const void *p, size_t n)
{
    struct buf_sink *b = (struct buf_sink *)s;
    if (!b->rc)
        b->rc = dagi_buf_append(b->buf, p, n);
}

static void put_hash(struct sink *s, const void *p, size_t n)
{
    struct hash_sink *h = (struct hash_sink *)s;
    crypto_generichash_update(&h->st, p, n);
}

static void field(struct sink *s, const void *p, size_t n)
{
    unsigned char len[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                            (unsigned char)(n >> 8), (unsigned char)n};
    s->put(s, len, sizeof(len));
    if (n)
        s->put(s, p, n);
}

static void field_str(struct sink *s, const char *text)
{
    field(s, text, strlen(text));
}

static void field_int(struct sink *s, int64_t v)
{
    uint64_t u = (uint64_t)v;
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(u >> (56 - 8 * i));
    field(s, b, sizeof(b));
}

static void encode(const struct dagi_audit_record *r, struct sink *s)
{
    field_str(s, FORMAT_TAG);
    field_int(s, r->seq);
    field_str(s, r->event_id);
    field_int(s, r->time_ms);
    field_str(s, r->service);
    field_str(s, r->action);
    field_str(s, r->actor);
    field_str(s, r->subject);
    field_str(s, r->decision);
    field_str(s, r->trace_id);
    field_str(s, r->metadata);
}

int dagi_audit_record_encode(const struct dagi_audit_record *r, struct dagi_buf *out)
{
    struct buf_sink b = {{put_buf}, out, DAGI_OK};
    encode(r, &b.base);
    return b.rc;
}

void dagi_audit_record_hash(const unsigned char prev[DAGI_AUDIT_HASH_BYTES],
                            const struct dagi_audit_record *r,
                            unsigned char out[DAGI_AUDIT_HASH_BYTES])
{
    struct hash_sink h = {{put_hash}, {{0}}};
    crypto_generichash_init(&h.st, NULL, 0, DAGI_AUDIT_HASH_BYTES);
    crypto_generichash_update(&h.st, prev, DAGI_AUDIT_HASH_BYTES);
    encode(r, &h.base);
    crypto_generichash_final(&h.st, out, DAGI_AUDIT_HASH_BYTES);
}

/* --- JSON --- */

json_t *dagi_audit_record_json(const struct dagi_audit_record *r)
{
    char prev[DAGI_AUDIT_HASH_BYTES * 2 + 1], hash[DAGI_AUDIT_HASH_BYTES * 2 + 1];
    sodium_bin2hex(prev, sizeof(prev), r->prev_hash, sizeof(r->prev_hash));
    sodium_bin2hex(hash, sizeof(hash), r->hash, sizeof(r->hash));
    json_t *meta = json_loads(r->metadata, JSON_DECODE_ANY, NULL);
    return json_pack("{s:I,s:s,s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:s,s:s}", "seq", (json_int_t)r->seq,
                     "event_id", r->event_id, "time_ms", (json_int_t)r->time_ms, "service",
                     r->service, "action", r->action, "actor", r->actor, "subject", r->subject,
                     "decision", r->decision, "trace_id", r->trace_id, "metadata",
                     meta ? meta : json_object(), "prev_hash", prev, "hash", hash);
}
