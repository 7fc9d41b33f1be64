/* The emitter every role calls (audit.h): one per process, made on first
 * use through dagi_node_shared() and holding the pseudonym key.
 *
 *   with JetStream     publish audit.{service}.{action} to DAGI_AUDIT with
 *                      Nats-Msg-Id = the event id; the audit role appends.
 *                      A publish that fails (no stream yet, NATS away, a
 *                      timeout) falls back to a direct append: the event id
 *                      makes the role's later append of the same event a
 *                      no-op if the publish did land after all.
 *   without (bus.url none)  append to the node's database on the pool.
 *
 * Counted: audit_emit_failures_total{service,reason} for events recorded
 * nowhere (reason invalid, key, store), audit_emit_fallbacks_total{service}
 * for publishes that fell back.  Nothing is ever returned to the caller.
 *
 * Lifetime.  Publishes and appends may finish after teardown destroyed the
 * emitter (their acks come from dagi_js_free or the loopq's free, after the
 * pool is gone): each holds a reference, and a closed emitter falls back to
 * nothing - it only counts the loss.  Loop thread only, so plain counts. */
#include "auditlog/audit.h"
#include "auditlog/chain.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/js.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "node/node.h"
#include "store/db.h"

#define SHARED_NAME "auditlog.emitter"

struct emitter {
    struct dagi_node *node;
    unsigned char key[DAGI_AUDIT_KEY_BYTES];
    char source_node[128];
    struct dagi_metric *failures, *fallbacks;
    int refs;
    bool closed;
};

/* One event on its way: the record, and whose it is. */
struct pending {
    struct emitter *e;
    struct dagi_audit_record rec;
};

static struct dagi_metric *failures_metric(struct dagi_metrics *m)
{
    return dagi_metrics_counter(m, "audit_emit_failures_total",
                                "Audit events recorded nowhere, by emitting service and reason.",
                                (const char *[]){"service", "reason", NULL});
}

static void *emitter_create(struct dagi_node *node, void *ud)
{
    (void)ud;
    const struct dagi_config *c = dagi_node_cfg(node);
    struct emitter *e = dagi_xcalloc(1, sizeof(*e));
    struct dagi_error err = {0};
    /* A 32-byte file read once, on the loop: the first emit of a process. */
    if (dagi_audit_key_load(c->node.data_dir, e->key, &err)) {
        dagi_log_error(NULL, "audit: the pseudonym key cannot be loaded; events are lost", "error",
                       err.message);
        free(e);
        return NULL;
    }
    snprintf(e->source_node, sizeof(e->source_node), "%s", c->node.name ? c->node.name : "");
    e->node = node;
    e->refs = 1;
    struct dagi_metrics *m = dagi_node_metrics(node);
    e->failures = failures_metric(m);
    e->fallbacks = dagi_metrics_counter(
        m, "audit_emit_fallbacks_total",
        "Audit events appended to the node's database directly because the publish failed.",
        (const char *[]){"service", NULL});
    return e;
}

static void emitter_unref(struct emitter *e)
{
    if (--e->refs)
        return;
    sodium_memzero(e->key, sizeof(e->key));
    free(e);
}

static void emitter_destroy(void *obj)
{
    struct emitter *e = obj;
    e->closed = true;
    emitter_unref(e);
}

static void lost(struct dagi_metric *failures, const struct dagi_audit_record *r,
                 const char *service, const char *reason, const char *why)
{
    dagi_metric_inc(failures, (const char *[]){service, reason});
    dagi_log_error(r ? r->trace_id : NULL, "audit event lost", "service", service, "action",
                   r ? r->action : NULL, "event_id", r ? r->event_id : NULL, "reason", reason,
                   "error", why);
}

static void pending_free(struct pending *p)
{
    emitter_unref(p->e);
    free(p);
}

/* --- the direct append --- */

static int on_append_work(struct dagi_db_conn *conn, void *ud, struct dagi_error *err)
{
    struct pending *p = ud;
    bool duplicate = false;
    return dagi_audit_chain_append(conn, &p->rec, &duplicate, err);
}

static void on_append_done(void *ud, int rc, const struct dagi_error *err)
{
    struct pending *p = ud;
    if (rc)
        lost(p->e->failures, &p->rec, p->rec.service, "store",
             err && err->message[0] ? err->message : dagi_strerror(rc));
    pending_free(p);
}

/* Takes p. */
static void append_direct(struct pending *p)
{
    struct emitter *e = p->e;
    if (e->closed) {
        lost(e->failures, &p->rec, p->rec.service, "store", "the node is stopping");
        pending_free(p);
        return;
    }
    int rc = dagi_db_run(dagi_node_db(e->node), dagi_node_pool(e->node), on_append_work,
                         on_append_done, p);
    if (rc) {
        lost(e->failures, &p->rec, p->rec.service, "store", dagi_strerror(rc));
        pending_free(p);
    }
}

/* --- the publish --- */

static void on_acked(void *ud, int err, uint64_t seq, bool duplicate)
{
    (void)seq, (void)duplicate;
    struct pending *p = ud;
    if (!err) {
        pending_free(p);
        return;
    }
    dagi_log_warn(p->rec.trace_id, "audit: publish failed; appending to the node's database",
                  "service", p->rec.service, "action", p->rec.action, "error", dagi_strerror(err));
    dagi_metric_inc(p->e->fallbacks, (const char *[]){p->rec.service});
    append_direct(p);
}

/* Takes p. */
static void publish(struct dagi_js *js, struct pending *p)
{
    struct emitter *e = p->e;
    char source[DAGI_AUDIT_NAME_MAX + 130];
    snprintf(source, sizeof(source), "%s@%s", p->rec.service, e->source_node);
    char *text = dagi_audit_event_build(&p->rec, source);
    if (!text) {
        lost(e->failures, &p->rec, p->rec.service, "invalid", "the envelope does not serialise");
        pending_free(p);
        return;
    }
    char subject[2 * DAGI_AUDIT_NAME_MAX + 8];
    snprintf(subject, sizeof(subject), "audit.%s.%s", p->rec.service, p->rec.action);
    struct dagi_js_header h[] = {{"Dagi-Trace-Id", p->rec.trace_id}};
    int rc = dagi_js_publish(js, subject, text, strlen(text), p->rec.event_id, h,
                             p->rec.trace_id[0] ? 1 : 0, on_acked, p);
    free(text);
    if (rc)
        on_acked(p, rc, 0, false);
}

/* The service as a metric label, if it is one (a bad name would make the
 * label set unbounded). */
static const char *service_label(const char *service)
{
    size_t n = strlen(service);
    return n && n <= DAGI_AUDIT_NAME_MAX &&
                   strspn(service, "abcdefghijklmnopqrstuvwxyz0123456789_") == n
               ? service
               : "invalid";
}

void dagi_audit_emit(struct dagi_node *node, const struct dagi_audit_event *ev)
{
    const char *service = ev && ev->service ? ev->service : "unknown";
    if (!node || !ev)
        return;
    struct emitter *e = dagi_node_shared(node, SHARED_NAME, emitter_create, emitter_destroy, NULL);
    if (!e) {
        lost(failures_metric(dagi_node_metrics(node)), NULL, service_label(service), "key",
             "no audit emitter (see the earlier error)");
        return;
    }
    struct pending *p = dagi_xcalloc(1, sizeof(*p));
    p->e = e;
    e->refs++;
    struct dagi_error err = {0};
    if (dagi_audit_record_from_event(&p->rec, e->key, ev, &err)) {
        lost(e->failures, NULL, service_label(service), "invalid", err.message);
        pending_free(p);
        return;
    }
    struct dagi_js *js = dagi_node_js(node);
    if (js)
        publish(js, p);
    else
        append_direct(p);
}

int dagi_audit_append_direct(struct dagi_db *db, const unsigned char *pseudonym_key,
                             const struct dagi_audit_event *ev, struct dagi_error *err)
{
    struct dagi_audit_record *r = dagi_xcalloc(1, sizeof(*r));
    struct dagi_db_conn *conn = NULL;
    bool duplicate = false;
    int rc = dagi_audit_record_from_event(r, pseudonym_key, ev, err);
    if (!rc)
        rc = dagi_db_acquire(db, &conn, err);
    if (!rc) {
        rc = dagi_audit_chain_append(conn, r, &duplicate, err);
        dagi_db_release(conn);
    }
    free(r);
    return rc;
}
