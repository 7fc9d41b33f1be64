/* Request/reply, the caller's side (rpc.c has the overview): a request goes
 * to a responder of this bus (in-process), over NATS, or nowhere (no NATS
 * and no local responder: DAGI_EUNAVAIL); then the timeout and idle
 * timers, cancel, and the replies, chunks and errors that come back.  Over
 * NATS they arrive here (rpc_deliver_reply); in-process, rpc_inproc.c hands
 * them to the same rpc_call_chunk / rpc_call_final / rpc_call_finish.
 *
 * Every outcome, even a failure to send, reaches the caller through
 * on_done and never from inside dagi_bus_request.  A call that was
 * cancelled or finished is out of bus->calls, so what still arrives for it
 * is dropped.
 */
#include "rpc_internal.h"

#include "core/clock.h"
#include "core/mem.h"
#include "core/metrics.h"

#include <event2/event.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TIMEOUT_MS 30000u

static const char *const path_names[] = {"inproc", "nats"};

/* --- calls (caller side) --- */

enum result { R_OK, R_ERROR, R_TIMEOUT, R_UNAVAIL, R_CANCELLED };
static const char *const result_names[] = {"ok", "error", "timeout", "unavailable", "cancelled"};

static void count_call(struct dagi_bus *bus, const char *subject, enum path path, enum result r,
                       int64_t start_ns, uint64_t chunks)
{
    const char *labels[] = {subject, path_names[path], result_names[r]};
    const char *subject_label[] = {subject};
    dagi_metric_inc(bus->m_requests, labels);
    /* Chunks are counted once per call, not per chunk: one registry lookup
     * instead of a thousand on a long stream. */
    if (chunks)
        dagi_metric_add(bus->m_chunks, subject_label, (double)chunks);
    if (r != R_CANCELLED && start_ns)
        dagi_metric_observe(bus->m_duration, subject_label,
                            (double)(dagi_clock_mono_ns() - start_ns) / 1e9);
}

void rpc_call_free(struct dagi_bus_call *call)
{
    free(call);
}

/* Takes the call out of reach of everything queued. */
void rpc_call_end(struct dagi_bus_call *call)
{
    call->ended = true;
    rpc_ht_remove(&call->bus->calls, &call->node);
    event_del(&call->timer);
}

/* Tells the responder to stop (the caller cancelled or timed out). */
void rpc_call_send_cancel(struct dagi_bus_call *call)
{
    struct dagi_bus *bus = call->bus;
    if (call->path == PATH_INPROC) {
        rpc_req_cancel_inproc(bus, call->req_id);
        return;
    }
    char subject[sizeof(bus->reply_prefix) + 32], num[24];
    size_t n = bus->reply_prefix_len;
    memcpy(subject, bus->reply_prefix, n);
    subject[n++] = '.';
    const char *d = rpc_u64_dec(call->id, num);
    size_t dl = strlen(d);
    memcpy(subject + n, d, dl);
    memcpy(subject + n + dl, ".cancel", sizeof(".cancel"));
    if (natsConnection_Publish(bus->nc, subject, NULL, 0) == NATS_OK)
        dagi_bus_nats_flush_now(bus);
}

static enum result result_of(int err)
{
    switch (err) {
    case DAGI_OK:
        return R_OK;
    case DAGI_ETIMEDOUT:
        return R_TIMEOUT;
    case DAGI_EUNAVAIL:
        return R_UNAVAIL;
    default:
        return R_ERROR;
    }
}

void rpc_call_finish(struct dagi_bus_call *call, int err, const void *data, size_t len,
                     const char *message)
{
    rpc_call_end(call);
    count_call(call->bus, call->subject, call->path, result_of(err), call->start_ns,
               call->next_seq);
    call->in_callback = true; /* a cancel from on_done is a no-op */
    call->on_done(call, err, data, len, err ? (message ? message : dagi_strerror(err)) : NULL,
                  call->ud);
    rpc_call_free(call);
}

static void call_fail(struct dagi_bus_call *call, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void call_fail(struct dagi_bus_call *call, int err, const char *fmt, ...)
{
    char message[MAX_ERROR_MESSAGE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    rpc_call_finish(call, err, NULL, 0, message);
}

static void on_call_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct dagi_bus_call *call = arg;
    if (call->streaming) {
        /* Chunks only stamp last_ns; the timer is moved here, lazily. */
        int64_t idle_ns = (int64_t)call->idle_ms * 1000000;
        int64_t quiet_ns = dagi_clock_mono_ns() - call->last_ns;
        if (quiet_ns < idle_ns) {
            rpc_arm_timer(&call->timer, (idle_ns - quiet_ns + 999999) / 1000000);
            return;
        }
    }
    rpc_call_send_cancel(call);
    if (call->streaming)
        call_fail(call, DAGI_ETIMEDOUT, "stream from %s idle for %u ms", call->subject,
                  call->idle_ms);
    else
        call_fail(call, DAGI_ETIMEDOUT, "no reply from %s within %u ms", call->subject,
                  call->timeout_ms);
}

void rpc_call_chunk(struct dagi_bus_call *call, uint64_t seq, const void *data, size_t len)
{
    if (!call->on_chunk) {
        rpc_call_send_cancel(call);
        call_fail(call, DAGI_EPARSE, "%s streamed a reply that was not asked for", call->subject);
        return;
    }
    if (seq != call->next_seq) {
        rpc_call_send_cancel(call);
        call_fail(call, DAGI_EPARSE, "chunk out of order from %s: got %llu, expected %llu",
                  call->subject, (unsigned long long)seq, (unsigned long long)call->next_seq);
        return;
    }
    call->next_seq++;
    call->last_ns = dagi_clock_mono_ns();
    if (!call->streaming) {
        call->streaming = true;
        rpc_arm_timer(&call->timer, call->idle_ms);
    }
    call->in_callback = true;
    call->on_chunk(call, seq, data, len, call->ud);
    call->in_callback = false;
    if (call->ended)
        rpc_call_free(call); /* cancelled from on_chunk */
}

void rpc_call_final(struct dagi_bus_call *call, uint64_t seq, const void *data, size_t len,
                    json_t *doc)
{
    if (seq != call->next_seq) {
        call_fail(call, DAGI_EPARSE, "chunk out of order from %s: final after %llu of %llu chunks",
                  call->subject, (unsigned long long)call->next_seq, (unsigned long long)seq);
        return;
    }
    call->reply_doc = doc;
    rpc_call_finish(call, DAGI_OK, data, len, NULL);
}

json_t *dagi_bus_call_json(struct dagi_bus_call *call, const void *data, size_t len)
{
    if (call && call->reply_doc)
        return json_incref(call->reply_doc);
    return len ? json_loadb(data, len, 0, NULL) : NULL;
}

struct dagi_bus_call *rpc_call_lookup(struct dagi_bus *bus, uint64_t id)
{
    struct bus_hnode *n = rpc_ht_find(&bus->calls, id, NULL);
    return n ? container_of(n, struct dagi_bus_call, node) : NULL;
}

static int request_nats(struct dagi_bus *bus, struct dagi_bus_call *call,
                        const struct dagi_bus_call_opts *opts)
{
    char reply[sizeof(bus->reply_prefix) + 24], num[24], dl[24];
    size_t n = bus->reply_prefix_len;
    memcpy(reply, bus->reply_prefix, n);
    reply[n++] = '.';
    strcpy(reply + n, rpc_u64_dec(call->id, num));
    natsMsg *m = NULL;
    natsStatus s = natsMsg_Create(&m, opts->subject, reply, opts->data, (int)opts->len);
    if (s == NATS_OK && opts->trace_id && *opts->trace_id)
        s = natsMsgHeader_Set(m, H_TRACE, opts->trace_id);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, H_DEADLINE,
                              rpc_u64_dec((uint64_t)(dagi_clock_now_ms() + call->timeout_ms), dl));
    if (s == NATS_OK && opts->on_chunk)
        s = natsMsgHeader_Set(m, H_STREAM, "1");
    if (s == NATS_OK)
        s = natsConnection_PublishMsg(bus->nc, m);
    natsMsg_Destroy(m);
    if (s == NATS_OK)
        dagi_bus_nats_flush_now(bus);
    return dagi_bus_nats_err(s);
}

int dagi_bus_request(struct dagi_bus *bus, const struct dagi_bus_call_opts *opts,
                     struct dagi_bus_call **out)
{
    if (!rpc_valid_subject(opts->subject) || !opts->on_done || (opts->len && !opts->data))
        return DAGI_EINVAL;
    struct bus_serve *local = bus->inprocess ? rpc_serve_find(bus, opts->subject, NULL) : NULL;
    enum path path = local || !bus->nc ? PATH_INPROC : PATH_NATS;
    if (opts->doc && !local) {
        /* Leaving the process: the document goes as bytes. */
        char *text = json_dumps(opts->doc, JSON_COMPACT);
        if (!text)
            return DAGI_EINVAL;
        struct dagi_bus_call_opts o = *opts;
        o.doc = NULL, o.data = text, o.len = strlen(text);
        int rc = dagi_bus_request(bus, &o, out);
        free(text);
        return rc;
    }
    if (opts->len > bus->max_payload) {
        count_call(bus, opts->subject, path, R_ERROR, 0, 0);
        return DAGI_ETOOBIG;
    }

    size_t slen = strlen(opts->subject);
    struct dagi_bus_call *call = dagi_xmalloc(sizeof(*call) + slen + 1);
    memset(call, 0, sizeof(*call));
    memcpy(call->subject, opts->subject, slen + 1);
    call->bus = bus;
    call->id = ++bus->next_call_id;
    call->path = path;
    call->on_chunk = opts->on_chunk;
    call->on_done = opts->on_done;
    call->ud = opts->ud;
    call->timeout_ms = opts->timeout_ms ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
    call->idle_ms = opts->idle_timeout_ms ? opts->idle_timeout_ms : call->timeout_ms;
    call->start_ns = dagi_clock_mono_ns();
    evtimer_assign(&call->timer, bus->base, on_call_timer, call);
    rpc_ht_insert(&bus->calls, &call->node, call->id);
    rpc_arm_timer(&call->timer, call->timeout_ms);

    if (local) {
        /* The one copy of the request: the caller's buffer is valid only
         * during this call. */
        const char *trace = opts->trace_id ? opts->trace_id : "";
        size_t tlen = strlen(trace);
        struct dagi_bus_req *req = rpc_req_new(bus, opts->len + tlen + 1);
        memcpy(req->inline_data, trace, tlen + 1);
        req->trace_id = req->inline_data;
        if (opts->len)
            memcpy(req->inline_data + tlen + 1, opts->data, opts->len);
        req->data = opts->doc ? NULL : req->inline_data + tlen + 1;
        req->len = opts->doc ? 0 : opts->len;
        req->doc = opts->doc ? json_incref(opts->doc) : NULL;
        req->call_id = call->id;
        req->serve = local;
        req->stream = opts->on_chunk != NULL;
        req->deadline_ms = dagi_clock_now_ms() + call->timeout_ms;
        call->req_id = req->id;
        rpc_local_push(bus, L_DISPATCH, req->id, 0, 0, NULL, 0);
    } else if (!bus->nc) {
        char message[300];
        int n = snprintf(message, sizeof(message), "no responder for %s", opts->subject);
        rpc_local_push(bus, L_ERROR, call->id, 0, DAGI_EUNAVAIL, message, (size_t)n);
    } else {
        int rc = request_nats(bus, call, opts);
        if (rc) {
            /* Reported like any other outcome: through on_done, later. */
            const char *message = rc == DAGI_ETOOBIG ? "request over the server's payload limit"
                                                     : "NATS is not available";
            rpc_local_push(bus, L_ERROR, call->id, 0, rc, message, strlen(message));
        }
    }
    *out = call;
    return DAGI_OK;
}

void dagi_bus_call_cancel(struct dagi_bus_call *call)
{
    if (!call || call->ended)
        return;
    rpc_call_end(call);
    count_call(call->bus, call->subject, call->path, R_CANCELLED, 0, call->next_seq);
    rpc_call_send_cancel(call);
    if (!call->in_callback)
        rpc_call_free(call);
}

/* --- replies over NATS --- */

void rpc_deliver_reply(struct dagi_bus *bus, natsMsg *m)
{
    const char *subject = natsMsg_GetSubject(m);
    uint64_t id, seq = 0;
    size_t n = bus->reply_prefix_len;
    if (strncmp(subject, bus->reply_prefix, n) != 0 || subject[n] != '.' ||
        !rpc_parse_u64(subject + n + 1, &id))
        return;
    struct dagi_bus_call *call = rpc_call_lookup(bus, id);
    if (!call)
        return; /* cancelled or finished: a late message */
    if (natsMsg_IsNoResponders(m)) {
        call_fail(call, DAGI_EUNAVAIL, "no responder for %s", call->subject);
        return;
    }
    const void *data = natsMsg_GetData(m);
    size_t len = (size_t)natsMsg_GetDataLength(m);
    if (len > bus->max_payload) {
        rpc_call_send_cancel(call);
        call_fail(call, DAGI_ETOOBIG, "reply from %s over the payload cap", call->subject);
        return;
    }
    const char *kind = rpc_header(m, H_KIND);
    const char *seq_text = rpc_header(m, H_SEQ);
    if (seq_text && !rpc_parse_u64(seq_text, &seq)) {
        call_fail(call, DAGI_EPARSE, "bad %s from %s", H_SEQ, call->subject);
        return;
    }
    if (!kind || strcmp(kind, KIND_FINAL) == 0) {
        /* No Dagi-Kind: a plain NATS responder's answer. */
        rpc_call_final(call, seq_text ? seq : call->next_seq, data, len, NULL);
    } else if (strcmp(kind, KIND_CHUNK) == 0) {
        rpc_call_chunk(call, seq, data, len);
    } else if (strcmp(kind, KIND_ERROR) == 0) {
        int code = dagi_bus_err_from_name(rpc_header(m, H_ERROR));
        json_t *doc = json_loadb(data, len, 0, NULL);
        const char *message =
            json_string_value(json_object_get(json_object_get(doc, "error"), "message"));
        if (code == DAGI_OK)
            code = DAGI_EINTERNAL;
        rpc_call_finish(call, code, NULL, 0, message ? message : dagi_strerror(code));
        json_decref(doc);
    } else {
        call_fail(call, DAGI_EPARSE, "unknown %s '%s' from %s", H_KIND, kind, call->subject);
    }
}
