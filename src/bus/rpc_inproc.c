/* Request/reply in-process (rpc.c has the overview): when the responder is
 * served by this same bus, or there is no NATS, the request, its replies,
 * chunks and errors and a cancel travel through the bus's local queue
 * instead of NATS.
 *
 * The queue is drained by one libevent event, never from inside the call
 * that queued, so a caller and a responder on one loop never run inside
 * each other's callbacks.  Items name their request or call by id: one for
 * a request or call that is gone is dropped.
 */
#include "rpc_internal.h"

#include "core/mem.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

/* --- local (in-process) queue --- */

struct bus_local_item *rpc_local_push(struct dagi_bus *bus, enum local_kind kind, uint64_t id,
                                      uint64_t seq, int code, const void *data, size_t len)
{
    struct bus_local_item *it = dagi_xmalloc(sizeof(*it) + len + 1);
    it->next = NULL;
    it->doc = NULL;
    it->id = id;
    it->seq = seq;
    it->code = code;
    it->kind = kind;
    it->len = len;
    if (len)
        memcpy(it->data, data, len);
    it->data[len] = '\0';
    if (bus->local_tail) {
        bus->local_tail->next = it;
    } else {
        bus->local_head = it;
        event_active(bus->local_ev, EV_TIMEOUT, 0);
    }
    bus->local_tail = it;
    return it;
}

/* --- cancel of an in-process request --- */

void rpc_req_cancel_inproc(struct dagi_bus *bus, uint64_t req_id)
{
    struct dagi_bus_req *req = rpc_req_lookup(bus, req_id);
    if (!req || req->done)
        return;
    if (!req->dispatched) {
        rpc_req_free(req); /* the handler never saw it */
        return;
    }
    /* Stop the responder's calls at once; on_cancel runs from the queue,
     * never inside the caller's own callback. */
    req->cancelled = true;
    rpc_local_push(bus, L_REQ_CANCEL, req_id, 0, 0, NULL, 0);
}

/* --- the drain --- */

static void deliver_local(struct dagi_bus *bus, struct bus_local_item *it)
{
    if (it->kind == L_DISPATCH || it->kind == L_REQ_CANCEL) {
        struct dagi_bus_req *req = rpc_req_lookup(bus, it->id);
        if (!req)
            return;
        if (it->kind == L_REQ_CANCEL) {
            req->cancel_seen = false;
            rpc_req_cancel(req);
            return;
        }
        struct dagi_bus_msg msg = {
            .subject = req->serve->subject,
            .data = req->data,
            .len = req->len,
            .trace_id = req->trace_id,
            .deadline_ms = req->deadline_ms,
            .stream = req->stream,
            .doc = req->doc,
        };
        rpc_req_run_handler(req, &msg);
        return;
    }
    struct dagi_bus_call *call = rpc_call_lookup(bus, it->id);
    if (!call)
        return;
    if (it->kind == L_CHUNK)
        rpc_call_chunk(call, it->seq, it->data, it->len);
    else if (it->kind == L_FINAL)
        rpc_call_final(call, it->seq, it->doc ? NULL : it->data, it->doc ? 0 : it->len, it->doc);
    else
        rpc_call_finish(call, it->code, NULL, 0, it->data);
}

/* Takes what is queued now; what the callbacks queue meanwhile waits for
 * the next activation, so a ping-pong cannot starve the loop. */
void rpc_on_local(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct dagi_bus *bus = arg;
    struct bus_local_item *it = bus->local_head;
    bus->local_head = bus->local_tail = NULL;
    while (it) {
        struct bus_local_item *next = it->next;
        deliver_local(bus, it);
        json_decref(it->doc);
        free(it);
        it = next;
    }
}
