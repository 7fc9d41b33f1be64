/* The model table: which models exist, which local ones are loaded, and the
 * lazy loading with LRU eviction under swapper.vram_budget_mb.
 *
 * Invariants:
 *   - a model whose provider has no load() is always "loaded";
 *   - LOADING holds one reference for the load in flight, UNLOADING one for
 *     the unload, so callbacks may arrive after a reload dropped the entry
 *     (m->table == NULL) or after the table was freed;
 *   - every waiter is told on a later loop turn, never from inside acquire,
 *     so callers need no re-entrancy guard around it. */
#include "swapper_internal.h"

#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"

struct dagi_swapper_models {
    struct dagi_swapper_model *head;
    struct dagi_provider_env env;
    int64_t budget_mb;
    uint64_t seq;
    struct dagi_metric *loads_total, *loaded_models;
};

/* An unload in flight: an eviction for `loader`, or an operator's. */
struct unload_job {
    struct dagi_swapper_model *victim, *loader;
    void (*done)(void *ud, int err, const char *message);
    void *ud;
};

static void copy_config(struct dagi_model_config *dst, const struct dagi_model_config *src)
{
    *dst = *src;
    dst->id = dagi_xstrdup(src->id);
    dst->base_url = src->base_url ? dagi_xstrdup(src->base_url) : NULL;
    dst->api_key_env = src->api_key_env ? dagi_xstrdup(src->api_key_env) : NULL;
    dst->model = src->model ? dagi_xstrdup(src->model) : NULL;
    dst->capabilities.items = dagi_xcalloc(src->capabilities.count + 1, sizeof(char *));
    for (size_t i = 0; i < src->capabilities.count; i++)
        dst->capabilities.items[i] = dagi_xstrdup(src->capabilities.items[i]);
}

static void release_config(struct dagi_model_config *c)
{
    free(c->id);
    free(c->base_url);
    free(c->api_key_env);
    free(c->model);
    for (size_t i = 0; i < c->capabilities.count; i++)
        free(c->capabilities.items[i]);
    free(c->capabilities.items);
}

void dagi_swapper_model_ref(struct dagi_swapper_model *m)
{
    m->refs++;
}

void dagi_swapper_model_unref(struct dagi_swapper_model *m)
{
    if (!m || --m->refs > 0)
        return;
    release_config(&m->cfg);
    free(m);
}

bool dagi_swapper_model_loaded(const struct dagi_swapper_model *m)
{
    return !m->ops->load || m->state == DAGI_SWAPPER_LOADED;
}

void dagi_swapper_model_touch(struct dagi_swapper_model *m)
{
    if (m->table)
        m->use_seq = ++m->table->seq;
    m->last_used_ms = dagi_clock_now_ms();
}

static void update_gauge(struct dagi_swapper_models *t)
{
    if (!t)
        return;
    double n = 0;
    for (struct dagi_swapper_model *m = t->head; m; m = m->next)
        n += m->ops->load && m->state == DAGI_SWAPPER_LOADED;
    dagi_metric_set(t->loaded_models, NULL, n);
}

/* Memory held or about to be held (a model being unloaded is on its way out). */
static int64_t committed_mb(struct dagi_swapper_models *t)
{
    int64_t sum = 0;
    for (struct dagi_swapper_model *m = t->head; m; m = m->next)
        if (m->state == DAGI_SWAPPER_LOADED || m->state == DAGI_SWAPPER_LOADING)
            sum += m->cfg.memory_mb;
    return sum;
}

int64_t dagi_swapper_models_used_mb(struct dagi_swapper_models *t)
{
    int64_t sum = 0;
    for (struct dagi_swapper_model *m = t->head; m; m = m->next)
        if (m->state != DAGI_SWAPPER_UNLOADED)
            sum += m->cfg.memory_mb;
    return sum;
}

static void notify_waiters(struct dagi_swapper_model *m, int err, const char *message)
{
    /* Pop one at a time: a waiter's callback may forget another one. */
    struct dagi_swapper_waiter *w;
    while ((w = m->waiters)) {
        m->waiters = w->next;
        w->next = NULL;
        w->on_ready(w, err, message);
    }
}

static void load_finished(struct dagi_swapper_model *m, int err, const char *message)
{
    m->state = err ? DAGI_SWAPPER_UNLOADED : DAGI_SWAPPER_LOADED;
    if (err)
        dagi_log_warn(NULL, "model load failed", "model", m->cfg.id, "error", message);
    else if (m->table)
        dagi_metric_inc(m->table->loads_total, (const char *[]){m->cfg.id});
    update_gauge(m->table);
    notify_waiters(m, err, message);
    dagi_swapper_model_unref(m);
}

static void on_load_done(void *ud, int err, const char *message)
{
    load_finished(ud, err, message);
}

struct deferred_failure {
    struct dagi_swapper_model *m;
    int err;
};

static void on_deferred_failure(evutil_socket_t fd, short what, void *ud)
{
    (void)fd, (void)what;
    struct deferred_failure *f = ud;
    load_finished(f->m, f->err, "the provider refused to start the load");
    free(f);
}

static void issue_load(struct dagi_swapper_model *m, const struct dagi_provider_env *env)
{
    int rc = m->ops->load(env, &m->cfg, on_load_done, m);
    if (!rc)
        return;
    struct deferred_failure *f = dagi_xcalloc(1, sizeof(*f));
    f->m = m;
    f->err = rc;
    struct timeval zero = {0, 0};
    event_base_once(env->base, -1, EV_TIMEOUT, on_deferred_failure, f, &zero);
}

static void unload_finished(struct unload_job *job, int err, const char *message)
{
    struct dagi_swapper_model *v = job->victim, *loader = job->loader;
    /* Even a failed unload counts as done: the provider evicts on its own
     * under pressure, and a model stuck "unloading" would block the budget. */
    if (err)
        dagi_log_warn(NULL, "model unload failed", "model", v->cfg.id, "error", message);
    v->state = DAGI_SWAPPER_UNLOADED;
    update_gauge(v->table);
    if (job->done)
        job->done(job->ud, err, message);
    if (v->waiters && v->table) { /* asked for again while it was going */
        v->state = DAGI_SWAPPER_LOADING;
        dagi_swapper_model_ref(v);
        issue_load(v, &v->table->env);
    } else if (v->waiters) {
        notify_waiters(v, DAGI_EUNAVAIL, "the model was removed by a reload");
    }
    if (loader && --loader->pending_unloads == 0 && loader->state == DAGI_SWAPPER_LOADING) {
        if (loader->table)
            issue_load(loader, &loader->table->env);
        else
            load_finished(loader, DAGI_EUNAVAIL, "the model was removed by a reload");
    }
    dagi_swapper_model_unref(v);
    dagi_swapper_model_unref(loader);
    free(job);
}

static void on_unload_done(void *ud, int err, const char *message)
{
    unload_finished(ud, err, message);
}

static int start_unload(struct dagi_swapper_model *v, struct dagi_swapper_model *loader,
                        const struct dagi_provider_env *env,
                        void (*done)(void *ud, int err, const char *message), void *ud)
{
    struct unload_job *job = dagi_xcalloc(1, sizeof(*job));
    job->victim = v;
    job->loader = loader;
    job->done = done;
    job->ud = ud;
    v->state = DAGI_SWAPPER_UNLOADING;
    dagi_swapper_model_ref(v);
    if (loader) {
        dagi_swapper_model_ref(loader);
        loader->pending_unloads++;
    }
    int rc = v->ops->unload(env, &v->cfg, on_unload_done, job);
    if (rc) {
        v->state = DAGI_SWAPPER_LOADED;
        if (loader) {
            loader->pending_unloads--;
            dagi_swapper_model_unref(loader);
        }
        dagi_swapper_model_unref(v);
        free(job);
    }
    return rc;
}

/* The least recently used loaded model that nobody is using, or NULL. */
static struct dagi_swapper_model *pick_victim(struct dagi_swapper_models *t,
                                              const struct dagi_swapper_model *except)
{
    struct dagi_swapper_model *best = NULL;
    for (struct dagi_swapper_model *m = t->head; m; m = m->next)
        if (m != except && m->ops->unload && m->state == DAGI_SWAPPER_LOADED && !m->active &&
            !m->waiters && (!best || m->use_seq < best->use_seq))
            best = m;
    return best;
}

static void begin_load(struct dagi_swapper_model *m)
{
    struct dagi_swapper_models *t = m->table;
    m->state = DAGI_SWAPPER_LOADING;
    dagi_swapper_model_ref(m); /* the load's */
    m->pending_unloads = 0;
    while (t->budget_mb > 0 && committed_mb(t) > t->budget_mb) {
        struct dagi_swapper_model *v = pick_victim(t, m);
        if (!v) {
            dagi_log_warn(NULL, "loading past swapper.vram_budget_mb: every loaded model is busy",
                          "model", m->cfg.id);
            break;
        }
        dagi_log_info(NULL, "unloading the least recently used model", "model", v->cfg.id, "for",
                      m->cfg.id);
        if (start_unload(v, m, &t->env, NULL, NULL))
            break;
    }
    if (m->pending_unloads == 0)
        issue_load(m, &t->env);
}

int dagi_swapper_model_acquire(struct dagi_swapper_model *m, struct dagi_swapper_waiter *w)
{
    if (dagi_swapper_model_loaded(m))
        return DAGI_OK;
    if (!m->table)
        return DAGI_EUNAVAIL;
    /* Appended, so waiters are served in arrival order. */
    struct dagi_swapper_waiter **p = &m->waiters;
    while (*p)
        p = &(*p)->next;
    w->next = NULL;
    *p = w;
    if (m->state == DAGI_SWAPPER_UNLOADED)
        begin_load(m);
    return DAGI_EAGAIN;
}

void dagi_swapper_model_forget(struct dagi_swapper_model *m, struct dagi_swapper_waiter *w)
{
    for (struct dagi_swapper_waiter **p = &m->waiters; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            w->next = NULL;
            return;
        }
}

int dagi_swapper_model_unload(struct dagi_swapper_model *m,
                              void (*done)(void *ud, int err, const char *message), void *ud)
{
    if (!m->ops->unload)
        return DAGI_EINVAL;
    if (m->state == DAGI_SWAPPER_LOADING || m->state == DAGI_SWAPPER_UNLOADING || m->active ||
        m->waiters || !m->table)
        return DAGI_EAGAIN;
    /* Unloading what is not loaded still asks the provider: it may hold the
     * model from before this process started. */
    return start_unload(m, NULL, &m->table->env, done, ud);
}

/* --- the table --- */

struct dagi_swapper_models *dagi_swapper_models_new(const struct dagi_swapper_models_opts *opts)
{
    struct dagi_swapper_models *t = dagi_xcalloc(1, sizeof(*t));
    t->env = opts->env;
    t->budget_mb = opts->vram_budget_mb;
    struct dagi_metrics *mx = opts->metrics ? opts->metrics : dagi_metrics_default();
    t->loads_total =
        dagi_metrics_counter(mx, "dagi_swapper_loads_total", "Model loads by the swapper.",
                             (const char *[]){"model", NULL});
    t->loaded_models =
        dagi_metrics_gauge(mx, "dagi_swapper_loaded_models", "Local models loaded now.", NULL);
    return t;
}

static void drop(struct dagi_swapper_model *m)
{
    m->table = NULL;
    m->next = NULL;
    dagi_swapper_model_unref(m);
}

void dagi_swapper_models_free(struct dagi_swapper_models *t)
{
    if (!t)
        return;
    struct dagi_swapper_model *m = t->head, *next;
    for (; m; m = next) {
        next = m->next;
        m->waiters = NULL; /* the role cancelled its requests first */
        drop(m);
    }
    free(t);
}

static int builtin_index(void)
{
    for (int i = 0; dagi_model_providers[i]; i++)
        if (strcmp(dagi_model_providers[i], "builtin") == 0)
            return i;
    return 0;
}

static struct dagi_swapper_model *take(struct dagi_swapper_model **list, const char *id)
{
    for (struct dagi_swapper_model **p = list; *p; p = &(*p)->next)
        if (strcmp((*p)->cfg.id, id) == 0) {
            struct dagi_swapper_model *m = *p;
            *p = m->next;
            m->next = NULL;
            return m;
        }
    return NULL;
}

static struct dagi_swapper_model *adopt(struct dagi_swapper_models *t,
                                        struct dagi_swapper_model **old,
                                        const struct dagi_model_config *cfg)
{
    struct dagi_swapper_model *m = take(old, cfg->id);
    if (m && m->cfg.provider == cfg->provider) {
        /* Same model: keep its load state; providers never keep the config
         * pointer past a call, so swapping it in place is safe. */
        release_config(&m->cfg);
        copy_config(&m->cfg, cfg);
        return m;
    }
    if (m) {
        m->next = *old; /* a different provider now: the old entry goes */
        *old = m;
    }
    m = dagi_xcalloc(1, sizeof(*m));
    copy_config(&m->cfg, cfg);
    m->ops = dagi_provider_for(cfg);
    m->table = t;
    m->refs = 1;
    return m;
}

void dagi_swapper_models_set(struct dagi_swapper_models *t, const struct dagi_model_config *models,
                             size_t count)
{
    /* The implicit builtin does everything it can offline: chat and its
     * hashed-bag-of-words embeddings. */
    static char chat[] = "chat", embeddings[] = "embeddings";
    static char *builtin_caps[] = {chat, embeddings};
    struct dagi_swapper_model *old = t->head, *head = NULL, **tail = &head;
    bool have_builtin = false;
    for (size_t i = 0; i <= count; i++) {
        struct dagi_model_config implicit = {
            .id = "builtin",
            .provider = builtin_index(),
            .capabilities = {builtin_caps, DAGI_ARRAY_LEN(builtin_caps)}};
        const struct dagi_model_config *cfg = i < count ? &models[i] : &implicit;
        if (i == count && have_builtin)
            break;
        have_builtin = have_builtin || strcmp(cfg->id, "builtin") == 0;
        struct dagi_swapper_model *m = adopt(t, &old, cfg);
        *tail = m;
        tail = &m->next;
    }
    t->head = head;
    for (struct dagi_swapper_model *m = old, *next; m; m = next) {
        next = m->next;
        if (m->ops->unload && m->state == DAGI_SWAPPER_LOADED && !m->active)
            start_unload(m, NULL, &t->env, NULL, NULL); /* best effort: free the memory */
        drop(m);
    }
    update_gauge(t);
}

void dagi_swapper_models_set_budget(struct dagi_swapper_models *t, int64_t vram_budget_mb,
                                    const struct dagi_provider_env *env)
{
    t->budget_mb = vram_budget_mb;
    if (env)
        t->env = *env;
}

struct dagi_swapper_model *dagi_swapper_models_find(struct dagi_swapper_models *t, const char *id)
{
    for (struct dagi_swapper_model *m = t->head; m; m = m->next)
        if (strcmp(m->cfg.id, id) == 0)
            return m;
    return NULL;
}

struct dagi_swapper_model *dagi_swapper_models_first(struct dagi_swapper_models *t)
{
    return t->head;
}

int64_t dagi_swapper_models_budget_mb(struct dagi_swapper_models *t)
{
    return t->budget_mb;
}

const struct dagi_provider_env *dagi_swapper_models_env(struct dagi_swapper_models *t)
{
    return &t->env;
}
