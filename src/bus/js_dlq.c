/* Dead letters: list, show and replay DAGI_DLQ (js.h).
 *
 * All blocking (STREAM.MSG.GET requests), for the admin API's worker pool and
 * the `dagi dlq` command.  Messages are read one by one by sequence, from the
 * newest back: the stream keeps limits retention, so gaps are rare (only
 * max-age expiry at the old end), and reading newest-first means `limit`
 * bounds the work however big the stream grows.
 *
 * A replay publishes the stored payload untouched (so the envelope's own id,
 * and with it the consumer's idempotency key, stays the same) to the original
 * subject, with a fresh Nats-Msg-Id: the original id may still be inside the
 * de-duplication window, and the server would then swallow the replay. */
#include "js_internal.h"

#include "bus/event.h"
#include "core/log.h"
#include "core/mem.h"

#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* at most this many missing sequences are skipped looking for `limit` letters */
#define MAX_GAP_SCAN 10000
#define DEFAULT_LIMIT 100

static void format_time_ns(int64_t ns, char out[32])
{
    time_t secs = (time_t)(ns / 1000000000LL);
    int64_t ms = (ns / 1000000LL) % 1000;
    struct tm tm;
    gmtime_r(&secs, &tm);
    char stamp[24];
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%.19s.%03uZ", stamp, (unsigned)ms % 1000u);
}

static const char *header_or(natsMsg *msg, const char *name, const char *fallback)
{
    const char *v = NULL;
    if (natsMsgHeader_Get(msg, name, &v) != NATS_OK || !v)
        return fallback;
    return v;
}

static int get_letter(struct dagi_js *js, uint64_t seq, natsMsg **out, struct dagi_error *err)
{
    jsErrCode jerr = 0;
    natsStatus s = js_GetMsg(out, js->ctx, DAGI_JS_DLQ, seq, NULL, &jerr);
    if (s == NATS_OK)
        return DAGI_OK;
    int rc = s == NATS_NOT_FOUND ? DAGI_ENOENT : dagi_js_err_from_nats(s);
    return dagi_error_set(err, rc, "dead letter %" PRIu64 ": %s", seq,
                          rc == DAGI_ENOENT ? "no such message" : natsStatus_GetText(s));
}

static json_t *letter_summary(natsMsg *m, uint64_t seq)
{
    char when[32];
    format_time_ns(natsMsg_GetTime(m), when);
    const char *deliveries = header_or(m, DAGI_JS_HDR_DLQ_DELIVERIES, "0");
    json_t *o = json_object();
    json_object_set_new(o, "seq", json_integer((json_int_t)seq));
    json_object_set_new(o, "subject", json_string(natsMsg_GetSubject(m)));
    json_object_set_new(o, "original_subject",
                        json_string(header_or(m, DAGI_JS_HDR_DLQ_SUBJECT, "")));
    json_object_set_new(o, "stream", json_string(header_or(m, DAGI_JS_HDR_DLQ_STREAM, "")));
    json_object_set_new(o, "deliveries", json_integer(strtoll(deliveries, NULL, 10)));
    json_object_set_new(o, "error", json_string(header_or(m, DAGI_JS_HDR_DLQ_ERROR, "")));
    json_object_set_new(o, "time", json_string(when));
    return o;
}

int dagi_js_dlq_list(struct dagi_js *js, size_t limit, char **out, struct dagi_error *err)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    if (!js || !out)
        return dagi_error_set(err, DAGI_EINVAL, "no JetStream context");
    if (!limit)
        limit = DEFAULT_LIMIT;
    natsStatus s = js_GetStreamInfo(&si, js->ctx, DAGI_JS_DLQ, NULL, &jerr);
    if (s != NATS_OK)
        return dagi_error_set(err, dagi_js_err_from_nats(s), "stream %s: %s", DAGI_JS_DLQ,
                              natsStatus_GetText(s));
    uint64_t first = si->State.FirstSeq, last = si->State.LastSeq;
    bool empty = si->State.Msgs == 0;
    jsStreamInfo_Destroy(si);

    int rc = DAGI_OK;
    json_t *arr = json_array();
    size_t skipped = 0;
    for (uint64_t seq = last; !empty && seq >= first && seq > 0; seq--) {
        if (json_array_size(arr) >= limit || skipped > MAX_GAP_SCAN)
            break;
        natsMsg *m = NULL;
        rc = get_letter(js, seq, &m, err);
        if (rc == DAGI_ENOENT) { /* expired or deleted meanwhile */
            skipped++;
            rc = DAGI_OK;
            continue;
        }
        if (rc)
            goto out;
        json_array_insert_new(arr, 0, letter_summary(m, seq)); /* newest last */
        natsMsg_Destroy(m);
    }
    *out = json_dumps(arr, JSON_COMPACT);
out:
    json_decref(arr);
    return rc;
}

int dagi_js_dlq_show(struct dagi_js *js, uint64_t seq, char **out, struct dagi_error *err)
{
    natsMsg *m = NULL;
    const char **keys = NULL;
    int nkeys = 0;
    if (!js || !out)
        return dagi_error_set(err, DAGI_EINVAL, "no JetStream context");
    int rc = get_letter(js, seq, &m, err);
    if (rc)
        return rc;
    json_t *o = letter_summary(m, seq);
    json_t *headers = json_object();
    if (natsMsgHeader_Keys(m, &keys, &nkeys) == NATS_OK) {
        for (int i = 0; i < nkeys; i++) {
            const char **values = NULL;
            int n = 0;
            if (natsMsgHeader_Values(m, keys[i], &values, &n) != NATS_OK)
                continue;
            if (n == 1) {
                json_object_set_new(headers, keys[i], json_string(values[0]));
            } else {
                json_t *list = json_array();
                for (int j = 0; j < n; j++)
                    json_array_append_new(list, json_string(values[j]));
                json_object_set_new(headers, keys[i], list);
            }
            free((void *)values);
        }
        free((void *)keys);
    }
    json_object_set_new(o, "headers", headers);

    size_t len = (size_t)natsMsg_GetDataLength(m);
    size_t b64_len = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = dagi_xmalloc(b64_len);
    sodium_bin2base64(b64, b64_len, (const unsigned char *)natsMsg_GetData(m), len,
                      sodium_base64_VARIANT_ORIGINAL);
    json_object_set_new(o, "data_len", json_integer((json_int_t)len));
    json_object_set_new(o, "data", json_string(b64));
    free(b64);
    *out = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    natsMsg_Destroy(m);
    return DAGI_OK;
}

/* The audit trail of a dead letter (docs/AUDIT.md): the envelope and data
 * that src/auditlog's emitter makes, written here because the bus sits
 * below the node.  Nats-Msg-Id audit-dlq-{stream}-{seq}, as idempotent as
 * the copy.  A dead-lettered audit.bus.dead_letter is not audited again:
 * that loop would only end when the store came back. */
void dagi_js_dlq_audit(struct dagi_js *js, const char *stream, const char *consumer,
                       const char *subject, uint64_t seq, uint64_t deliveries, uint64_t dlq_seq,
                       const char *trace_id)
{
    static const char self[] = "audit.bus.dead_letter";
    if (strcmp(subject, self) == 0)
        return;
    char target[160], msg_id[160];
    snprintf(target, sizeof(target), "stream:%s/%" PRIu64, stream, seq);
    snprintf(msg_id, sizeof(msg_id), "audit-dlq-%s-%" PRIu64, stream, seq);
    json_t *data = json_pack("{s:s,s:s,s:s,s:s,s:s,s:{s:s,s:s,s:s,s:I,s:I,s:I}}", "service", "bus",
                             "action", "dead_letter", "actor", "system", "subject", target,
                             "decision", "error", "metadata", "stream", stream, "consumer",
                             consumer, "subject", subject, "seq", (json_int_t)seq, "deliveries",
                             (json_int_t)deliveries, "dlq_seq", (json_int_t)dlq_seq);
    char *event = data ? dagi_event_build("audit", js->source, trace_id, data, NULL) : NULL;
    struct dagi_error err = {0};
    if (!event || dagi_js_publish_sync(js, self, event, strlen(event), msg_id, NULL, 0, NULL,
                                       &err) != DAGI_OK)
        dagi_log_warn(trace_id, "dead-letter audit event not published", "stream", stream,
                      "error", event ? err.message : "envelope");
    free(event);
}

int dagi_js_dlq_replay(struct dagi_js *js, uint64_t seq, uint64_t *new_seq, struct dagi_error *err)
{
    natsMsg *m = NULL, *again = NULL;
    const char **keys = NULL;
    int nkeys = 0;
    if (!js)
        return dagi_error_set(err, DAGI_EINVAL, "no JetStream context");
    int rc = get_letter(js, seq, &m, err);
    if (rc)
        return rc;
    const char *subject = header_or(m, DAGI_JS_HDR_DLQ_SUBJECT, NULL);
    if (!subject) {
        rc = dagi_error_set(err, DAGI_EPARSE, "dead letter %" PRIu64 " has no %s header", seq,
                            DAGI_JS_HDR_DLQ_SUBJECT);
        goto out;
    }
    rc = dagi_js_msg_new(&again, subject, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m),
                         NULL, 0);
    if (rc) {
        dagi_error_set(err, rc, "replay to %s: %s", subject, dagi_strerror(rc));
        goto out;
    }
    /* the original headers, without what the dead-lettering added */
    if (natsMsgHeader_Keys(m, &keys, &nkeys) == NATS_OK) {
        for (int i = 0; i < nkeys; i++) {
            const char **values = NULL;
            int n = 0;
            if (strncasecmp(keys[i], "Dagi-Dlq-", 9) == 0 || strncasecmp(keys[i], "Nats-", 5) == 0)
                continue;
            if (natsMsgHeader_Values(m, keys[i], &values, &n) != NATS_OK)
                continue;
            for (int j = 0; j < n; j++)
                natsMsgHeader_Add(again, keys[i], values[j]);
            free((void *)values);
        }
        free((void *)keys);
    }
    char seqs[24], msg_id[64];
    snprintf(seqs, sizeof(seqs), "%" PRIu64, seq);
    natsMsgHeader_Set(again, DAGI_JS_HDR_REPLAY_OF, seqs);
    unsigned char rnd[8];
    char rnd_hex[17];
    if (sodium_init() < 0)
        abort();
    randombytes_buf(rnd, sizeof(rnd));
    sodium_bin2hex(rnd_hex, sizeof(rnd_hex), rnd, sizeof(rnd));
    snprintf(msg_id, sizeof(msg_id), "replay-%" PRIu64 "-%s", seq, rnd_hex);
    rc = dagi_js_publish_msg_sync(js, again, msg_id, new_seq, err);
out:
    natsMsg_Destroy(again);
    natsMsg_Destroy(m);
    return rc;
}
