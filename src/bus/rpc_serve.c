/* Request/reply, the responder's side (rpc.c has the overview): serving a
 * subject, the request a handler is answering, replies, streamed chunks
 * and errors, and noticing that the caller went away.
 *
 * The cancel subscription and the deadline timer are set up lazily, when
 * the handler returns without having answered: most handlers answer at
 * once and then neither costs anything.  The deadline covers the wait for
 * the first response, as the caller's timeout_ms does; once a responder
 * streams, the caller's idle timeout takes over and reaches the responder
 * as a cancel.
 *
 * A request whose handler registered on_cancel (even NULL) is freed after a
 * cancel; one that never did is only marked, so a responder unaware of
 * cancellation gets DAGI_ECANCELED from its next call instead of a dangling
 * pointer, and its final call frees the request.
 */
#include "rpc_internal.h"

#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"

#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- requests (responder side) --- */

struct bus_serve *rpc_serve_find(struct dagi_bus *bus, const char *subject, size_t *pos)
{
    size_t lo = 0, hi = bus->serve_count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(bus->serves[mid]->subject, subject);
        if (c == 0) {
            if (pos)
                *pos = mid;
            return bus->serves[mid];
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (pos)
        *pos = lo;
    return NULL;
}

struct dagi_bus_req *rpc_req_new(struct dagi_bus *bus, size_t extra)
{
    struct dagi_bus_req *req = dagi_xcalloc(1, sizeof(*req) + extra);
    req->bus = bus;
    req->id = ++bus->next_req_id;
    rpc_ht_insert(&bus->reqs, &req->by_id, req->id);
    return req;
}

void rpc_req_free(struct dagi_bus_req *req)
{
    struct dagi_bus *bus = req->bus;
    rpc_ht_remove(&bus->reqs, &req->by_id);
    if (req->cancel_sub) {
        rpc_ht_remove(&bus->reqs_by_reply, &req->by_reply);
        dagi_bus_nats_unsubscribe(req->cancel_sub);
    }
    if (req->timer_armed)
        event_del(&req->timer);
    json_decref(req->doc);
    free(req);
}

/* The request is answered: free it now, or when the handler returns. */
static void req_finish(struct dagi_bus_req *req)
{
    req->done = true;
    if (!req->in_handler && !req->in_cancel)
        rpc_req_free(req);
}

static void req_drop_watch(struct dagi_bus_req *req)
{
    if (req->timer_armed) {
        event_del(&req->timer);
        req->timer_armed = false;
    }
    if (req->cancel_sub) {
        rpc_ht_remove(&req->bus->reqs_by_reply, &req->by_reply);
        dagi_bus_nats_unsubscribe(req->cancel_sub);
        req->cancel_sub = NULL;
    }
}

/* The caller is gone (cancel message, in-process cancel, or deadline). */
void rpc_req_cancel(struct dagi_bus_req *req)
{
    if (req->done || req->in_cancel || req->cancel_seen)
        return;
    req->cancelled = true;
    req->cancel_seen = true;
    req_drop_watch(req);
    if (req->in_handler || !req->cancel_registered)
        return; /* see the top of the file */
    if (req->on_cancel) {
        req->in_cancel = true;
        req->on_cancel(req->on_cancel_ud);
    }
    rpc_req_free(req);
}

struct dagi_bus_req *rpc_req_lookup(struct dagi_bus *bus, uint64_t id)
{
    struct bus_hnode *n = rpc_ht_find(&bus->reqs, id, NULL);
    return n ? container_of(n, struct dagi_bus_req, by_id) : NULL;
}

static void on_req_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct dagi_bus_req *req = arg;
    req->timer_armed = false;
    rpc_req_cancel(req);
}

/* After the handler returned without answering: watch for the caller
 * going away. */
static void req_watch(struct dagi_bus_req *req)
{
    struct dagi_bus *bus = req->bus;
    if (req->nats && !req->cancel_sub) {
        size_t n = strlen(req->reply);
        char subject[512];
        if (n + sizeof(".cancel") <= sizeof(subject)) {
            memcpy(subject, req->reply, n);
            memcpy(subject + n, ".cancel", sizeof(".cancel"));
            if (dagi_bus_nats_subscribe(bus, subject, NULL, BUS_MSG_CANCEL, &req->cancel_sub) ==
                DAGI_OK)
                rpc_ht_insert(&bus->reqs_by_reply, &req->by_reply, rpc_hash_str(req->reply, n));
        }
    }
    if (req->deadline_ms && !req->sent && !req->timer_armed) {
        evtimer_assign(&req->timer, bus->base, on_req_deadline, req);
        rpc_arm_timer(&req->timer, req->deadline_ms - dagi_clock_now_ms());
        req->timer_armed = true;
    }
}

void rpc_req_run_handler(struct dagi_bus_req *req, const struct dagi_bus_msg *msg)
{
    req->dispatched = true;
    req->in_handler = true;
    req->serve->handler(req, msg, req->serve->ud);
    req->in_handler = false;
    if (req->done) {
        rpc_req_free(req);
    } else if (req->cancel_seen) {
        req->cancel_seen = false; /* arrived during the handler: deliver now */
        rpc_req_cancel(req);
    } else {
        req_watch(req);
    }
}

void dagi_bus_req_on_cancel(struct dagi_bus_req *req, void (*on_cancel)(void *ud), void *ud)
{
    req->on_cancel = on_cancel;
    req->on_cancel_ud = ud;
    bool was = req->cancel_registered;
    req->cancel_registered = true;
    /* Cancelled before anyone listened: tell the new listener, later. */
    if (!was && req->cancel_seen && !req->in_handler && !req->done) {
        req->cancel_seen = false;
        rpc_local_push(req->bus, L_REQ_CANCEL, req->id, 0, 0, NULL, 0);
    }
}

static int nats_send(struct dagi_bus *bus, const char *subject, const char *kind, uint64_t seq,
                     const char *err_name, const void *data, size_t len)
{
    char num[24];
    natsMsg *m = NULL;
    natsStatus s = natsMsg_Create(&m, subject, NULL, data, (int)len);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, H_KIND, kind);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, H_SEQ, rpc_u64_dec(seq, num));
    if (s == NATS_OK && err_name)
        s = natsMsgHeader_Set(m, H_ERROR, err_name);
    if (s == NATS_OK)
        s = natsConnection_PublishMsg(bus->nc, m);
    natsMsg_Destroy(m);
    /* Chunks batch up until the loop turn ends; the end of an exchange goes
     * out at once. */
    if (s == NATS_OK && kind != KIND_CHUNK)
        dagi_bus_nats_flush_now(bus);
    return dagi_bus_nats_err(s);
}

static int send_error(struct dagi_bus *bus, struct dagi_bus_req *req, const char *reply, int code,
                      const char *message)
{
    if (code >= 0)
        code = DAGI_EINTERNAL;
    if (req && !req->nats) {
        rpc_local_push(bus, L_ERROR, req->call_id, 0, code, message, strlen(message));
        return DAGI_OK;
    }
    struct dagi_buf *b = &bus->scratch;
    dagi_buf_reset(b);
    dagi_buf_append_str(b, "{\"error\":{\"code\":\"");
    dagi_buf_append_str(b, dagi_bus_err_name(code));
    dagi_buf_append_str(b, "\",\"message\":\"");
    dagi_buf_append_json_escaped(b, message, strlen(message));
    dagi_buf_append_str(b, "\"}}");
    return nats_send(bus, reply, KIND_ERROR, req ? req->next_seq : 0, dagi_bus_err_name(code),
                     b->data, b->len);
}

/* Common checks and the send of chunk / final (bytes, or a document handed
 * over by reference in-process). */
static int req_send_bytes(struct dagi_bus_req *req, bool final, const void *data, size_t len,
                          json_t *doc)
{
    struct dagi_bus *bus = req->bus;
    if (req->done)
        return DAGI_EINVAL;
    if (req->cancelled || req->in_cancel) {
        if (final)
            req_finish(req);
        return DAGI_ECANCELED;
    }
    if (!final && !req->stream)
        return DAGI_EINVAL;
    int rc = DAGI_OK;
    if (len > bus->max_payload) {
        rc = DAGI_ETOOBIG;
        if (final) /* the caller still hears how it ended */
            send_error(bus, req, req->reply, DAGI_ETOOBIG, "reply over the payload cap");
        goto out;
    }
    if (!req->sent && req->timer_armed) {
        event_del(&req->timer); /* the first response met the deadline */
        req->timer_armed = false;
    }
    req->sent = true;
    uint64_t seq = final ? req->next_seq : req->next_seq++;
    if (req->nats)
        rc = nats_send(bus, req->reply, final ? KIND_FINAL : KIND_CHUNK, seq, NULL, data, len);
    else if (doc)
        rpc_local_push(bus, L_FINAL, req->call_id, seq, 0, NULL, 0)->doc = json_incref(doc);
    else
        rpc_local_push(bus, final ? L_FINAL : L_CHUNK, req->call_id, seq, 0, data, len);
out:
    if (final)
        req_finish(req);
    return rc;
}

/* A document for NATS is serialised here. */
static int req_send(struct dagi_bus_req *req, bool final, const void *data, size_t len,
                    json_t *doc)
{
    char *text = NULL;
    if (doc && req->nats && !req->done && !req->cancelled && !req->in_cancel) {
        text = json_dumps(doc, JSON_COMPACT);
        if (!text)
            return DAGI_EINVAL;
        data = text, len = strlen(text), doc = NULL;
    }
    int rc = req_send_bytes(req, final, data, len, doc);
    free(text);
    return rc;
}

int dagi_bus_reply(struct dagi_bus_req *req, const void *data, size_t len)
{
    return req_send_bytes(req, true, data, len, NULL);
}

int dagi_bus_stream_chunk(struct dagi_bus_req *req, const void *data, size_t len)
{
    return req_send_bytes(req, false, data, len, NULL);
}

int dagi_bus_stream_end(struct dagi_bus_req *req, const void *data, size_t len)
{
    return req_send_bytes(req, true, data, len, NULL);
}

int dagi_bus_reply_json(struct dagi_bus_req *req, json_t *doc)
{
    if (!doc)
        return DAGI_EINVAL;
    return req_send(req, true, NULL, 0, doc);
}

json_t *dagi_bus_msg_json(const struct dagi_bus_msg *msg)
{
    if (msg->doc)
        return json_incref(msg->doc);
    return msg->len ? json_loadb(msg->data, msg->len, 0, NULL) : NULL;
}

int dagi_bus_reply_error(struct dagi_bus_req *req, int code, const char *fmt, ...)
{
    if (req->done)
        return DAGI_EINVAL;
    if (req->cancelled || req->in_cancel) {
        req_finish(req);
        return DAGI_ECANCELED;
    }
    char message[MAX_ERROR_MESSAGE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    req->sent = true;
    int rc = send_error(req->bus, req, req->reply, code, message);
    req_finish(req);
    return rc;
}

/* --- serving --- */

int dagi_bus_serve(struct dagi_bus *bus, const char *subject, dagi_bus_handler_fn handler, void *ud)
{
    size_t pos;
    if (!rpc_valid_subject(subject) || !handler)
        return DAGI_EINVAL;
    if (rpc_serve_find(bus, subject, &pos))
        return DAGI_EEXIST;
    struct bus_serve *sv = dagi_xcalloc(1, sizeof(*sv));
    sv->subject = dagi_xstrdup(subject);
    sv->handler = handler;
    sv->ud = ud;
    if (bus->nc) {
        /* Queue group = the subject: each request reaches one server. */
        int rc = dagi_bus_nats_subscribe(bus, subject, subject, BUS_MSG_REQUEST, &sv->sub);
        if (rc) {
            free(sv->subject);
            free(sv);
            return rc;
        }
    }
    if (bus->serve_count == bus->serve_alloc) {
        bus->serve_alloc = bus->serve_alloc ? bus->serve_alloc * 2 : 8;
        bus->serves = dagi_xrealloc(bus->serves, bus->serve_alloc * sizeof(*bus->serves));
    }
    memmove(bus->serves + pos + 1, bus->serves + pos,
            (bus->serve_count - pos) * sizeof(*bus->serves));
    bus->serves[pos] = sv;
    bus->serve_count++;
    return DAGI_OK;
}

/* --- deliveries from NATS --- */

void rpc_deliver_request(struct dagi_bus *bus, natsMsg *m)
{
    const char *subject = natsMsg_GetSubject(m);
    const char *reply = natsMsg_GetReply(m);
    struct bus_serve *sv = rpc_serve_find(bus, subject, NULL);
    if (!sv)
        return;
    if (!reply || !*reply) {
        dagi_log_debug(rpc_header(m, H_TRACE), "bus: request without a reply subject; not answered",
                       "subject", subject);
        return;
    }
    size_t len = (size_t)natsMsg_GetDataLength(m);
    if (len > bus->max_payload) {
        send_error(bus, NULL, reply, DAGI_ETOOBIG, "request over the payload cap");
        return;
    }
    uint64_t deadline = 0;
    rpc_parse_u64(rpc_header(m, H_DEADLINE), &deadline);
    int64_t now = dagi_clock_now_ms();
    if (deadline && (int64_t)deadline <= now) {
        /* Stale work is shed.  The answer is for a caller whose clock runs
         * ahead of ours (a live caller would have timed out already and
         * drops it): it learns why at once instead of at its timeout. */
        char message[160];
        snprintf(message, sizeof(message), "request expired on arrival (%lld ms late)",
                 (long long)(now - (int64_t)deadline));
        send_error(bus, NULL, reply, DAGI_ETIMEDOUT, message);
        return;
    }
    const char *trace = rpc_header(m, H_TRACE);
    const char *stream = rpc_header(m, H_STREAM);
    size_t rlen = strlen(reply);
    struct dagi_bus_req *req = rpc_req_new(bus, rlen + 1);
    memcpy(req->inline_data, reply, rlen + 1);
    req->reply = req->inline_data;
    req->nats = true;
    req->serve = sv;
    req->stream = stream && strcmp(stream, "1") == 0;
    req->deadline_ms = (int64_t)deadline;
    struct dagi_bus_msg msg = {
        .subject = sv->subject,
        .data = natsMsg_GetData(m),
        .len = len,
        .trace_id = trace ? trace : "",
        .deadline_ms = req->deadline_ms,
        .stream = req->stream,
    };
    rpc_req_run_handler(req, &msg);
}

void rpc_deliver_cancel(struct dagi_bus *bus, natsMsg *m)
{
    const char *subject = natsMsg_GetSubject(m);
    size_t n = strlen(subject), suffix = sizeof(".cancel") - 1;
    if (n <= suffix)
        return;
    n -= suffix;
    uint64_t key = rpc_hash_str(subject, n);
    for (struct bus_hnode *x = rpc_ht_find(&bus->reqs_by_reply, key, NULL); x;
         x = rpc_ht_find(&bus->reqs_by_reply, key, x)) {
        struct dagi_bus_req *req = container_of(x, struct dagi_bus_req, by_reply);
        if (strncmp(req->reply, subject, n) == 0 && req->reply[n] == '\0') {
            rpc_req_cancel(req);
            return;
        }
    }
}
