/* The control plane's client (cplane.h): the snapshot in use, the KV watch,
 * the last known copy on disk. */
#include "cplane/cplane.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus/js.h"
#include "core/log.h"
#include "core/loopq.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "core/pool.h"
#include "node/node.h"

#define MAX_LISTENERS 8
#define MAX_DISK_COPY (64u << 20)

struct dagi_cplane {
    struct dagi_node *node;
    struct dagi_cplane_snap *snap; /* replaced on the loop thread only */
    int64_t revision, published_at_ms;
    struct {
        void (*fn)(void *ud, struct dagi_cplane_snap *snap);
        void *ud;
    } listeners[MAX_LISTENERS];
    size_t listener_count;
    const struct dagi_config *built_for; /* the node configuration the snapshot was checked against */
    struct dagi_kv *kv;
    struct dagi_kv_watch *watch;
    bool stopping;
    struct dagi_metric *applied, *refused, *revision_gauge;
};

char *dagi_cplane_disk_path(const char *data_dir)
{
    return dagi_xasprintf("%s/cplane/current.json", data_dir);
}

/* --- the disk copy --- */

static int write_disk_copy(const char *data_dir, const struct dagi_docset *set,
                           struct dagi_error *err)
{
    char *dir = dagi_xasprintf("%s/cplane", data_dir);
    char *path = dagi_cplane_disk_path(data_dir);
    char *tmp = dagi_xasprintf("%s.tmp", path);
    size_t len = 0;
    char *json = dagi_docset_to_json(set, &len);
    int rc = DAGI_OK, fd = -1;
    if (mkdir(dir, 0700) && errno != EEXIST) {
        rc = dagi_error_set(err, DAGI_EIO, "cannot create %s: %s", dir, strerror(errno));
        goto out;
    }
    /* The copy holds prompts and policies, not secrets, but it is the
     * operator's configuration: not for other users of the machine. */
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = dagi_error_set(err, DAGI_EIO, "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, json + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = dagi_error_set(err, DAGI_EIO, "cannot write %s: %s", tmp, strerror(errno));
            goto out;
        }
        off += (size_t)w;
    }
    /* Renamed only once it is on the disk: a crash leaves the old copy or
     * the new one, never half of one. */
    if (fsync(fd) || close(fd)) {
        fd = -1;
        rc = dagi_error_set(err, DAGI_EIO, "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path))
        rc = dagi_error_set(err, DAGI_EIO, "cannot rename %s: %s", tmp, strerror(errno));
out:
    if (fd >= 0)
        close(fd);
    if (rc)
        unlink(tmp);
    free(json);
    free(tmp);
    free(path);
    free(dir);
    return rc;
}

static int read_disk_copy(const char *data_dir, struct dagi_docset *out, struct dagi_error *err)
{
    char *path = dagi_cplane_disk_path(data_dir);
    int rc = DAGI_OK;
    char *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        rc = errno == ENOENT ? DAGI_ENOENT : DAGI_EIO;
        dagi_error_set(err, rc, "cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    data = dagi_xmalloc(MAX_DISK_COPY + 1);
    size_t n = fread(data, 1, MAX_DISK_COPY + 1, f);
    if (n > MAX_DISK_COPY) {
        rc = dagi_error_set(err, DAGI_ETOOBIG, "%s is larger than %u bytes", path, MAX_DISK_COPY);
        goto out;
    }
    rc = dagi_docset_from_json(data, n, out, err);
out:
    if (f)
        fclose(f);
    free(data);
    free(path);
    return rc;
}

/* --- swapping --- */

static bool is_newer(const struct dagi_cplane *cp, const struct dagi_docset *set)
{
    /* A registry always publishes with a higher revision; a lower one is a
     * late delivery.  A registry that started over (a new database) has
     * lower revisions but later times, so time decides when they disagree. */
    if (set->revision > cp->revision && set->published_at_ms >= cp->published_at_ms)
        return true;
    return set->published_at_ms > cp->published_at_ms && set->revision != cp->revision;
}

static void swap_in(struct dagi_cplane *cp, struct dagi_cplane_snap *s)
{
    cp->built_for = dagi_node_cfg(cp->node);
    struct dagi_cplane_snap *old = cp->snap;
    cp->snap = s;
    cp->revision = s->docs.revision;
    cp->published_at_ms = s->docs.published_at_ms;
    dagi_metric_set(cp->revision_gauge, NULL, (double)cp->revision);
    dagi_metric_inc(cp->applied, (const char *[]){s->source});
    for (size_t i = 0; i < cp->listener_count; i++)
        cp->listeners[i].fn(cp->listeners[i].ud, s);
    dagi_cplane_snap_unref(old); /* requests in flight hold their own reference */
}

struct disk_job {
    struct dagi_cplane *cp;
    struct dagi_docset set;
    char *data_dir;
};

static void disk_work(void *ud)
{
    struct disk_job *j = ud;
    struct dagi_error err = {0};
    if (write_disk_copy(j->data_dir, &j->set, &err))
        dagi_log_warn(NULL, "cplane: cannot keep the last known copy", "error", err.message);
}

static void disk_done(void *ud, bool cancelled)
{
    (void)cancelled;
    struct disk_job *j = ud;
    dagi_docset_release(&j->set);
    free(j->data_dir);
    free(j);
}

static void keep_on_disk(struct dagi_cplane *cp, const struct dagi_docset *set)
{
    struct disk_job *j = dagi_xcalloc(1, sizeof(*j));
    j->cp = cp;
    dagi_docset_copy(&j->set, set);
    j->data_dir = dagi_xstrdup(dagi_node_cfg(cp->node)->node.data_dir);
    if (dagi_pool_submit(dagi_node_pool(cp->node), disk_work, disk_done, j)) {
        dagi_log_warn(NULL, "cplane: the worker pool is full; the last known copy is not updated");
        disk_done(j, true);
    }
}

/* On the loop: a built snapshot arrives (from a pool job or another
 * thread's offer). */
static void apply(struct dagi_cplane *cp, struct dagi_cplane_snap *s)
{
    if (cp->stopping || !is_newer(cp, &s->docs)) {
        dagi_cplane_snap_unref(s);
        return;
    }
    char rev[32];
    snprintf(rev, sizeof(rev), "%lld", (long long)s->docs.revision);
    dagi_log_info(NULL, "cplane: configuration applied", "revision", rev, "source", s->source);
    keep_on_disk(cp, &s->docs);
    swap_in(cp, s);
}

struct build_job {
    struct dagi_cplane *cp;
    struct dagi_docset set;
    struct dagi_config_snapshot *cfg;
    const char *source;
    struct dagi_cplane_snap *snap;
    struct dagi_cfg_errors errs;
    int rc;
};

static void build_work(void *ud)
{
    struct build_job *j = ud;
    j->rc = dagi_cplane_build(&j->set, j->cfg->cfg, &j->snap, &j->errs);
    if (!j->rc)
        j->snap->source = j->source;
}

static void build_done(void *ud, bool cancelled)
{
    struct build_job *j = ud;
    if (!cancelled && j->rc) {
        dagi_metric_inc(j->cp->refused, NULL);
        dagi_log_error(NULL, "cplane: configuration refused, keeping the one in use", "source",
                       j->source, "errors", dagi_buf_str(&j->errs.text));
    } else if (!cancelled) {
        apply(j->cp, j->snap);
        j->snap = NULL;
    }
    dagi_cplane_snap_unref(j->snap);
    dagi_cfg_errors_release(&j->errs);
    dagi_config_snapshot_unref(j->cfg);
    dagi_docset_release(&j->set);
    free(j);
}

/* Takes the set. */
static void build_later(struct dagi_cplane *cp, struct dagi_docset *set, const char *source)
{
    struct build_job *j = dagi_xcalloc(1, sizeof(*j));
    j->cp = cp;
    j->set = *set;
    dagi_docset_init(set);
    j->cfg = dagi_node_config(cp->node);
    j->source = source;
    dagi_cfg_errors_init(&j->errs);
    if (dagi_pool_submit(dagi_node_pool(cp->node), build_work, build_done, j)) {
        /* Rare (the pool's queue is full); the next publication retries. */
        dagi_log_warn(NULL, "cplane: the worker pool is full; a configuration change waits");
        build_done(j, true);
    }
}

/* --- the KV watch --- */

static void on_kv(void *ud, const char *key, const void *data, size_t len, uint64_t revision,
                  bool deleted)
{
    (void)revision;
    struct dagi_cplane *cp = ud;
    if (deleted || strcmp(key, DAGI_CPLANE_KEY))
        return;
    struct dagi_docset set;
    dagi_docset_init(&set);
    struct dagi_error err = {0};
    if (dagi_docset_from_json(data, len, &set, &err)) {
        dagi_metric_inc(cp->refused, NULL);
        dagi_log_error(NULL, "cplane: the published configuration does not parse", "error",
                       err.message);
        dagi_docset_release(&set);
        return;
    }
    if (!is_newer(cp, &set)) {
        dagi_docset_release(&set);
        return;
    }
    build_later(cp, &set, "kv");
}

struct watch_job {
    struct dagi_cplane *cp;
    const struct dagi_config *built_for; /* the node configuration the snapshot was checked against */
    struct dagi_kv *kv;
    struct dagi_kv_watch *watch;
    struct dagi_error err;
    int rc;
};

static void watch_work(void *ud)
{
    struct watch_job *j = ud;
    struct dagi_js *js = dagi_node_js(j->cp->node);
    j->rc = dagi_kv_open(js, DAGI_CPLANE_BUCKET, 1, &j->kv, &j->err);
    if (!j->rc)
        j->rc = dagi_kv_watch(j->kv, DAGI_CPLANE_KEY, on_kv, j->cp, &j->watch, &j->err);
}

static void watch_done(void *ud, bool cancelled)
{
    struct watch_job *j = ud;
    struct dagi_cplane *cp = j->cp;
    if (!cancelled && !j->rc && !cp->stopping) {
        cp->kv = j->kv;
        cp->watch = j->watch;
    } else {
        if (!cancelled && j->rc)
            dagi_log_error(NULL, "cplane: cannot watch the configuration bucket; running on "
                                 "the configuration in use",
                           "error", j->err.message);
        if (j->watch)
            dagi_kv_watch_stop(j->watch);
        dagi_kv_close(j->kv);
    }
    free(j);
}

static void start_watch(void *ud)
{
    struct dagi_cplane *cp = ud;
    struct watch_job *j = dagi_xcalloc(1, sizeof(*j));
    j->cp = cp;
    if (dagi_pool_submit(dagi_node_pool(cp->node), watch_work, watch_done, j))
        watch_done(j, true);
}

/* Blocking: runs on the pool at shutdown, while the loop still turns. */
static void stop_watch(void *ud)
{
    struct dagi_cplane *cp = ud;
    cp->stopping = true;
    if (cp->watch)
        dagi_kv_watch_stop(cp->watch);
    cp->watch = NULL;
    dagi_kv_close(cp->kv);
    cp->kv = NULL;
}

/* --- the client --- */

static int first_snapshot(struct dagi_node *node, struct dagi_cplane_snap **out,
                          struct dagi_error *err)
{
    const struct dagi_config *c = dagi_node_cfg(node);
    struct dagi_docset set;
    dagi_docset_init(&set);
    struct dagi_error derr = {0};
    struct dagi_cfg_errors errs;
    dagi_cfg_errors_init(&errs);
    int rc = read_disk_copy(c->node.data_dir, &set, &derr);
    if (!rc) {
        rc = dagi_cplane_build(&set, c, out, &errs);
        if (!rc)
            (*out)->source = "disk";
        else
            dagi_log_warn(NULL, "cplane: the last known copy does not build; using the files",
                          "errors", dagi_buf_str(&errs.text));
    } else if (rc != DAGI_ENOENT) {
        dagi_log_warn(NULL, "cplane: the last known copy is unreadable; using the files", "error",
                      derr.message);
    }
    if (rc) {
        dagi_docset_release(&set);
        dagi_docset_init(&set);
        dagi_cfg_errors_release(&errs);
        dagi_cfg_errors_init(&errs);
        rc = dagi_docset_from_config(c, &set, err);
        if (!rc && (rc = dagi_cplane_build(&set, c, out, &errs)))
            dagi_error_set(err, rc, "%s", dagi_buf_str(&errs.text));
    }
    dagi_cfg_errors_release(&errs);
    dagi_docset_release(&set);
    return rc;
}

struct create_args {
    struct dagi_error *err;
};

static void *cplane_create(struct dagi_node *node, void *ud)
{
    struct create_args *a = ud;
    struct dagi_cplane_snap *s = NULL;
    if (first_snapshot(node, &s, a->err))
        return NULL;
    struct dagi_cplane *cp = dagi_xcalloc(1, sizeof(*cp));
    cp->node = node;
    cp->snap = s;
    cp->built_for = dagi_node_cfg(node);
    cp->revision = s->docs.revision;
    cp->published_at_ms = s->docs.published_at_ms;
    struct dagi_metrics *mx = dagi_node_metrics(node);
    cp->applied = dagi_metrics_counter(mx, "config_applied_total",
                                       "Configuration snapshots swapped in, by where they came from.",
                                       (const char *[]){"source", NULL});
    cp->refused = dagi_metrics_counter(
        mx, "config_refused_total",
        "Published configurations that did not build (the one in use stayed).", NULL);
    cp->revision_gauge = dagi_metrics_gauge(mx, "config_applied_revision",
                                            "The registry revision this process runs on.", NULL);
    dagi_metric_set(cp->revision_gauge, NULL, (double)cp->revision);
    if (dagi_node_js(node)) {
        dagi_node_on_streams_ready(node, start_watch, cp);
        dagi_node_on_shutdown(node, stop_watch, cp);
    }
    return cp;
}

static void cplane_destroy(void *obj)
{
    struct dagi_cplane *cp = obj;
    dagi_cplane_snap_unref(cp->snap);
    free(cp);
}

struct dagi_cplane *dagi_cplane_get(struct dagi_node *node, struct dagi_error *err)
{
    struct create_args a = {.err = err};
    struct dagi_cplane *cp = dagi_node_shared(node, "cplane", cplane_create, cplane_destroy, &a);
    if (!cp && !err->code)
        dagi_error_set(err, DAGI_EINVAL, "cannot load the control plane's documents");
    return cp;
}

struct dagi_cplane_snap *dagi_cplane_current(struct dagi_cplane *cp)
{
    return cp->snap;
}

void dagi_cplane_on_change(struct dagi_cplane *cp,
                           void (*fn)(void *ud, struct dagi_cplane_snap *snap), void *ud)
{
    if (cp->listener_count < MAX_LISTENERS) {
        cp->listeners[cp->listener_count].fn = fn;
        cp->listeners[cp->listener_count++].ud = ud;
    }
}

void dagi_cplane_off_change(struct dagi_cplane *cp,
                            void (*fn)(void *ud, struct dagi_cplane_snap *snap), void *ud)
{
    for (size_t i = 0; i < cp->listener_count; i++)
        if (cp->listeners[i].fn == fn && cp->listeners[i].ud == ud) {
            memmove(&cp->listeners[i], &cp->listeners[i + 1],
                    (cp->listener_count - i - 1) * sizeof(cp->listeners[0]));
            cp->listener_count--;
            return;
        }
}

struct offer_msg {
    struct dagi_cplane *cp;
    struct dagi_cplane_snap *snap;
};

static void on_offer(void *ud, bool cancelled)
{
    struct offer_msg *m = ud;
    if (cancelled)
        dagi_cplane_snap_unref(m->snap);
    else
        apply(m->cp, m->snap);
    free(m);
}

int dagi_cplane_offer(struct dagi_cplane *cp, const struct dagi_docset *set,
                      struct dagi_cfg_errors *errs)
{
    struct dagi_config_snapshot *cfg = dagi_node_config(cp->node);
    struct dagi_cplane_snap *s = NULL;
    int rc = dagi_cplane_build(set, cfg->cfg, &s, errs);
    dagi_config_snapshot_unref(cfg);
    if (rc)
        return rc;
    s->source = "registry";
    if (dagi_node_on_loop_thread(cp->node)) {
        apply(cp, s);
        return DAGI_OK;
    }
    struct offer_msg *m = dagi_xcalloc(1, sizeof(*m));
    m->cp = cp;
    m->snap = s;
    dagi_loopq_push(dagi_node_loopq(cp->node), on_offer, m);
    return DAGI_OK;
}

int dagi_cplane_rebuild(struct dagi_cplane *cp, struct dagi_error *err)
{
    /* Every role's reload asks; the first one does it. */
    const struct dagi_config *c = dagi_node_cfg(cp->node);
    if (c == cp->built_for)
        return DAGI_OK;
    struct dagi_cfg_errors errs;
    dagi_cfg_errors_init(&errs);
    struct dagi_cplane_snap *s = NULL;
    int rc = dagi_cplane_build(&cp->snap->docs, c, &s, &errs);
    if (rc) {
        dagi_error_set(err, rc, "%s", dagi_buf_str(&errs.text));
    } else {
        s->source = cp->snap->source;
        cp->built_for = c;
        swap_in(cp, s);
    }
    dagi_cfg_errors_release(&errs);
    return rc;
}
