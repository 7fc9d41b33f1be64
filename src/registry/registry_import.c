/* Importing the configuration's files (registry_internal.h): at start and
 * on SIGHUP, every document the node configuration names is read
 * (dagi_docset_from_config) and those that changed become one revision,
 * author "config-import", each version commented "imported from <path>".
 *
 * The would-be set is validated as a whole first: an invalid file is
 * logged with its errors and the stored set stays (the node still starts,
 * on the last good set).  A file that is unchanged since it was last
 * imported is skipped even when the API changed its document since
 * (registry_store.h), so a restart does not undo a push.
 *
 * The store failing (PostgreSQL not up yet) is retried with backoff; the
 * files being wrong is not - the next SIGHUP reads them again. */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "node/dagi_config.h"
#include "registry/registry_internal.h"
#include "store/db.h"

#define IMPORT_AUTHOR "config-import"
#define RETRY_FIRST_MS 500
#define RETRY_MAX_MS 30000

struct import_job {
    struct dagi_registry_state *rs;
    struct dagi_config_snapshot *cfg;
    struct dagi_docset files;
    struct dagi_regstore_change *changes;
    struct dagi_regstore_outcome *outcomes;
    char **comments;
    size_t n;
    int files_rc;
    struct dagi_error files_err;
    bool invalid;
    struct dagi_cfg_errors errs;
    struct dagi_regstore_result result;
};

static void job_free(struct import_job *job)
{
    dagi_registry_state_unref(job->rs);
    dagi_config_snapshot_unref(job->cfg);
    for (size_t i = 0; i < job->n; i++)
        free(job->comments[i]);
    free(job->comments);
    free(job->changes);
    free(job->outcomes);
    dagi_docset_release(&job->files);
    dagi_cfg_errors_release(&job->errs);
    dagi_regstore_result_release(&job->result);
    free(job);
}

/* The file a document came from, for its version's comment. */
static char *source_path(const struct dagi_config *c, const struct dagi_doc *d)
{
    switch (d->kind) {
    case DAGI_DOC_AGENTS:
        return dagi_xstrdup(c->router.registry);
    case DAGI_DOC_ROUTING:
        return dagi_xstrdup(c->router.routing);
    case DAGI_DOC_PROMPTS:
        return dagi_xasprintf("%s/%s", c->router.prompts_dir, d->name);
    case DAGI_DOC_POLICIES:
        return dagi_xstrdup(c->registry.policies);
    case DAGI_DOC_QUOTAS:
        return dagi_xstrdup(c->registry.quotas);
    case DAGI_DOC_FLAGS:
        return dagi_xstrdup(c->registry.flags);
    case DAGI_DOC_LISTS:
        return dagi_xstrdup(c->registry.lists);
    case DAGI_DOC_KIND_COUNT:
        break;
    }
    return dagi_xstrdup("?");
}

static int on_import_work(struct dagi_db_conn *conn, void *ud, struct dagi_error *err)
{
    struct import_job *job = ud;
    const struct dagi_config *c = job->cfg->cfg;
    job->files_rc = dagi_docset_from_config(c, &job->files, &job->files_err);
    if (job->files_rc) /* keep the stored set; publish it all the same */
        return dagi_regstore_current(conn, &job->result.set, err);
    job->n = job->files.count;
    job->changes = dagi_xcalloc(job->n ? job->n : 1, sizeof(*job->changes));
    job->outcomes = dagi_xcalloc(job->n ? job->n : 1, sizeof(*job->outcomes));
    job->comments = dagi_xcalloc(job->n ? job->n : 1, sizeof(*job->comments));
    for (size_t i = 0; i < job->n; i++) {
        const struct dagi_doc *d = &job->files.docs[i];
        char *path = source_path(c, d);
        job->comments[i] = dagi_xasprintf("imported from %s", path);
        free(path);
        job->changes[i] = (struct dagi_regstore_change){.kind = d->kind,
                                                        .name = d->name,
                                                        .text = d->text,
                                                        .len = d->len,
                                                        .comment = job->comments[i]};
    }
    const char *config_path = job->cfg->path ? job->cfg->path : "the built-in defaults";
    char *comment = dagi_xasprintf("imported from the files %s names", config_path);
    struct dagi_regstore_meta meta = {DAGI_REGSTORE_IMPORT, IMPORT_AUTHOR, comment,
                                      dagi_clock_now_ms()};
    int rc = dagi_regstore_apply(conn, &meta, job->changes, job->n, dagi_registry_validate,
                                 (void *)c, job->outcomes, &job->errs, &job->result, err);
    free(comment);
    if (rc == DAGI_EINVAL && job->errs.count) {
        job->invalid = true;
        dagi_regstore_result_release(&job->result);
        return dagi_regstore_current(conn, &job->result.set, err);
    }
    return rc;
}

static void on_retry(evutil_socket_t fd, short what, void *ud)
{
    (void)fd, (void)what;
    dagi_registry_import(ud);
}

static void schedule_retry(struct dagi_registry_state *rs)
{
    if (!rs->import_retry)
        rs->import_retry = evtimer_new(dagi_node_base(rs->node), on_retry, rs);
    rs->import_backoff_ms = rs->import_backoff_ms ? rs->import_backoff_ms * 2 : RETRY_FIRST_MS;
    if (rs->import_backoff_ms > RETRY_MAX_MS)
        rs->import_backoff_ms = RETRY_MAX_MS;
    struct timeval tv = {rs->import_backoff_ms / 1000, (rs->import_backoff_ms % 1000) * 1000};
    evtimer_add(rs->import_retry, &tv);
}

static void report(struct import_job *job)
{
    struct dagi_registry_state *rs = job->rs;
    char revision[24], count[24];
    snprintf(revision, sizeof(revision), "%lld", (long long)job->result.set.revision);
    snprintf(count, sizeof(count), "%zu", job->result.changed);
    if (job->files_rc) {
        dagi_log_error(NULL,
                       "registry: cannot read the configuration's documents; the stored "
                       "set stays",
                       "error", job->files_err.message, "revision", revision);
    } else if (job->invalid) {
        dagi_log_error(NULL,
                       "registry: the configuration's documents are invalid; not "
                       "imported, the stored set stays",
                       "errors", dagi_buf_str(&job->errs.text), "revision", revision);
    } else if (job->result.changed) {
        dagi_log_info(NULL, "registry: imported the configuration's documents", "revision",
                      revision, "documents", count);
        for (size_t i = 0; i < job->n; i++)
            if (job->outcomes[i].changed)
                dagi_registry_audit(rs, "config_import", NULL, NULL, job->changes[i].kind,
                                    job->changes[i].name, job->outcomes[i].version,
                                    job->outcomes[i].checksum, job->result.revision);
    } else {
        dagi_log_info(NULL, "registry: the configuration's documents are unchanged", "revision",
                      revision);
    }
}

static void on_import_done(void *ud, int rc, const struct dagi_error *err)
{
    struct import_job *job = ud;
    struct dagi_registry_state *rs = job->rs;
    rs->import_running = false;
    if (rs->stopped || rc == DAGI_ECANCELED)
        goto out;
    if (rc) {
        /* The store, not the files: try again, the node runs meanwhile on
         * what the data plane has. */
        dagi_log_error(NULL, "registry: import failed; retrying", "error",
                       err && err->message[0] ? err->message : dagi_strerror(rc));
        rs->first_import_done = true;
        schedule_retry(rs);
        goto out;
    }
    rs->import_backoff_ms = 0;
    report(job);
    rs->first_import_done = true;
    if (job->result.set.revision > 0)
        dagi_registry_publish(rs, &job->result.set);
    else
        dagi_log_info(NULL, "registry: no documents stored yet; nothing to publish");
out:
    if (!rs->stopped && rs->import_again) {
        rs->import_again = false;
        dagi_registry_import(rs);
    }
    job_free(job);
}

void dagi_registry_import(struct dagi_registry_state *rs)
{
    if (rs->stopped)
        return;
    if (rs->import_running) { /* a SIGHUP during an import: read the files again after it */
        rs->import_again = true;
        return;
    }
    struct import_job *job = dagi_xcalloc(1, sizeof(*job));
    job->rs = dagi_registry_state_ref(rs);
    job->cfg = dagi_node_config(rs->node);
    dagi_cfg_errors_init(&job->errs);
    dagi_docset_init(&job->files);
    if (dagi_db_run(dagi_node_db(rs->node), dagi_node_pool(rs->node), on_import_work,
                    on_import_done, job)) {
        job_free(job);
        schedule_retry(rs); /* the pool's queue is full */
        return;
    }
    rs->import_running = true;
}

void dagi_registry_import_release(struct dagi_registry_state *rs)
{
    if (rs->import_retry)
        event_free(rs->import_retry);
    rs->import_retry = NULL;
}
