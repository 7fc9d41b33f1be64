/* KV buckets (js.h): blocking get/put/delete, and watches whose changes
 * reach the loop.
 *
 * A watch is a thread looping over kvWatcher_Next with a 1 s timeout (ms);
 * dagi_kv_watch_stop also calls kvWatcher_Stop, which makes a pending Next
 * return at once (NATS_ILLEGAL_STATE), so stopping does not wait for the
 * timeout.  libnats posts a NULL entry once the current values have been
 * delivered; on_change has no use for it, so it is skipped.
 *
 * Entries travel to the loop as kvEntry objects (each holds its own
 * reference on the kvStore, so they may outlive dagi_kv_close).  A watch is
 * reference counted like a consumer: one reference for the owner, one per
 * entry in the loopq; entries still queued when the watch is stopped are
 * dropped without calling on_change. */
#include "js_internal.h"

#include "core/log.h"
#include "core/loopq.h"
#include "core/mem.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* short: stopping a watch waits for a pending Next (it holds the watcher's
 * lock), and a local Next costs nothing on the wire */
#define WATCH_NEXT_TIMEOUT_MS 250

struct dagi_kv {
    struct dagi_js *js;
    kvStore *store;
};

struct dagi_kv_watch {
    kvWatcher *watcher;
    struct dagi_loopq *loopq;
    void (*on_change)(void *ud, const char *key, const void *data, size_t len, uint64_t revision,
                      bool deleted);
    void *ud;
    pthread_t thread;
    pthread_mutex_t lock;
    int refs;
    atomic_bool stopped;
};

struct kv_change {
    struct dagi_kv_watch *w;
    kvEntry *entry;
};

static int kv_fail(struct dagi_error *err, natsStatus s, const char *what, const char *name)
{
    return dagi_error_set(err, dagi_js_err_from_nats(s), "%s %s: %s (%s)", what, name,
                          natsStatus_GetText(s), nats_GetLastError(NULL));
}

int dagi_kv_open(struct dagi_js *js, const char *bucket, int history, struct dagi_kv **out,
                 struct dagi_error *err)
{
    kvStore *store = NULL;
    if (!js || !bucket || !*bucket)
        return dagi_error_set(err, DAGI_EINVAL, "KV needs a JetStream context and a bucket");
    natsStatus s = js_KeyValue(&store, js->ctx, bucket);
    if (s == NATS_NOT_FOUND) {
        kvConfig cfg;
        kvConfig_Init(&cfg);
        cfg.Bucket = bucket;
        cfg.History = (uint8_t)(history < 1 ? 1 : history > 64 ? 64 : history);
        cfg.StorageType = js_FileStorage;
        cfg.Replicas = js->opts.replicas;
        s = js_CreateKeyValue(&store, js->ctx, &cfg);
        if (s != NATS_OK) /* another process may have created it meanwhile */
            s = js_KeyValue(&store, js->ctx, bucket);
    }
    if (s != NATS_OK)
        return kv_fail(err, s, "open KV bucket", bucket);
    struct dagi_kv *kv = dagi_xcalloc(1, sizeof(*kv));
    kv->js = js;
    kv->store = store;
    *out = kv;
    return DAGI_OK;
}

void dagi_kv_close(struct dagi_kv *kv)
{
    if (!kv)
        return;
    kvStore_Destroy(kv->store);
    free(kv);
}

int dagi_kv_put(struct dagi_kv *kv, const char *key, const void *data, size_t len,
                uint64_t *revision_out, struct dagi_error *err)
{
    uint64_t rev = 0;
    if (!kv || !key || (!data && len))
        return dagi_error_set(err, DAGI_EINVAL, "KV put needs a key");
    if (len > DAGI_JS_MAX_MSG_SIZE)
        return dagi_error_set(err, DAGI_ETOOBIG, "KV value for %s is too large", key);
    natsStatus s = kvStore_Put(&rev, kv->store, key, data, (int)len);
    if (s != NATS_OK)
        return kv_fail(err, s, "KV put", key);
    if (revision_out)
        *revision_out = rev;
    return DAGI_OK;
}

int dagi_kv_get(struct dagi_kv *kv, const char *key, void **data_out, size_t *len_out,
                uint64_t *revision_out, struct dagi_error *err)
{
    kvEntry *e = NULL;
    if (!kv || !key || !data_out)
        return dagi_error_set(err, DAGI_EINVAL, "KV get needs a key");
    /* a deleted key is NATS_NOT_FOUND too */
    natsStatus s = kvStore_Get(&e, kv->store, key);
    if (s == NATS_NOT_FOUND)
        return dagi_error_set(err, DAGI_ENOENT, "KV key %s: not found", key);
    if (s != NATS_OK)
        return kv_fail(err, s, "KV get", key);
    size_t len = (size_t)kvEntry_ValueLen(e);
    char *copy = dagi_xmalloc(len + 1); /* NUL-terminated for text values */
    if (len)
        memcpy(copy, kvEntry_Value(e), len);
    copy[len] = '\0';
    *data_out = copy;
    if (len_out)
        *len_out = len;
    if (revision_out)
        *revision_out = kvEntry_Revision(e);
    kvEntry_Destroy(e);
    return DAGI_OK;
}

int dagi_kv_delete(struct dagi_kv *kv, const char *key, struct dagi_error *err)
{
    if (!kv || !key)
        return dagi_error_set(err, DAGI_EINVAL, "KV delete needs a key");
    natsStatus s = kvStore_Delete(kv->store, key);
    if (s != NATS_OK)
        return kv_fail(err, s, "KV delete", key);
    return DAGI_OK;
}

/* --- watching --- */

static void watch_release(struct dagi_kv_watch *w)
{
    pthread_mutex_lock(&w->lock);
    bool last = --w->refs == 0;
    pthread_mutex_unlock(&w->lock);
    if (!last)
        return;
    kvWatcher_Destroy(w->watcher);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

static void on_kv_change(void *arg, bool cancelled)
{
    struct kv_change *ch = arg;
    struct dagi_kv_watch *w = ch->w;
    kvEntry *e = ch->entry;
    if (!cancelled && !atomic_load(&w->stopped)) {
        kvOperation op = kvEntry_Operation(e);
        int len = kvEntry_ValueLen(e);
        w->on_change(w->ud, kvEntry_Key(e), kvEntry_Value(e), len > 0 ? (size_t)len : 0,
                     kvEntry_Revision(e), op == kvOp_Delete || op == kvOp_Purge);
    }
    kvEntry_Destroy(e);
    free(ch);
    watch_release(w);
}

static void *watch_main(void *arg)
{
    struct dagi_kv_watch *w = arg;
    natsStatus last_logged = NATS_OK;
    while (!atomic_load(&w->stopped)) {
        kvEntry *e = NULL;
        natsStatus s = kvWatcher_Next(&e, w->watcher, WATCH_NEXT_TIMEOUT_MS);
        if (s == NATS_TIMEOUT)
            continue;
        if (s != NATS_OK) {
            if (atomic_load(&w->stopped))
                break;
            if (s != last_logged)
                dagi_log_warn(NULL, "KV watch failed; retrying", "error", natsStatus_GetText(s));
            last_logged = s;
            if (s == NATS_ILLEGAL_STATE)
                break; /* the watcher is stopped for good */
            struct timespec ts = {0, 200 * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        if (!e) /* "initial values done" marker */
            continue;
        struct kv_change *ch = dagi_xmalloc(sizeof(*ch));
        ch->w = w;
        ch->entry = e;
        pthread_mutex_lock(&w->lock);
        w->refs++;
        pthread_mutex_unlock(&w->lock);
        dagi_loopq_push(w->loopq, on_kv_change, ch);
    }
    return NULL;
}

int dagi_kv_watch(struct dagi_kv *kv, const char *pattern,
                  void (*on_change)(void *ud, const char *key, const void *data, size_t len,
                                    uint64_t revision, bool deleted),
                  void *ud, struct dagi_kv_watch **out, struct dagi_error *err)
{
    kvWatcher *watcher = NULL;
    if (!kv || !on_change || !kv->js->opts.loopq)
        return dagi_error_set(err, DAGI_EINVAL, "a KV watch needs a callback and a loopq");
    natsStatus s = kvStore_Watch(&watcher, kv->store, pattern ? pattern : ">", NULL);
    if (s != NATS_OK)
        return kv_fail(err, s, "KV watch", pattern ? pattern : ">");
    struct dagi_kv_watch *w = dagi_xcalloc(1, sizeof(*w));
    w->watcher = watcher;
    w->loopq = kv->js->opts.loopq;
    w->on_change = on_change;
    w->ud = ud;
    w->refs = 1;
    pthread_mutex_init(&w->lock, NULL);
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0)
        abort(); /* like an allocation failure (err.h) */
    *out = w;
    return DAGI_OK;
}

void dagi_kv_watch_stop(struct dagi_kv_watch *w)
{
    if (!w)
        return;
    atomic_store(&w->stopped, true);
    kvWatcher_Stop(w->watcher); /* wakes a pending Next */
    pthread_join(w->thread, NULL);
    watch_release(w);
}
