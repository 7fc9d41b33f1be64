/* Metrics registry.  Families are few and long-lived; series are found by a
 * hash of their label values under the family's mutex, which keeps the hot
 * path (an increment) to one hash, one short compare and one add. */
#include "metrics.h"

#include "err.h"
#include "mem.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LABELS 8
#define DEFAULT_MAX_SERIES 1000
#define OVERFLOW_VALUE "__overflow__"

enum family_type { COUNTER, GAUGE, HISTOGRAM };

struct series {
    struct series *next_in_bucket;
    struct series *next_in_order; /* insertion order, for stable output */
    uint64_t hash;
    char **values;
    double value;        /* counter, gauge */
    uint64_t *counts;    /* histogram: per bucket (not cumulative), +Inf last */
    double sum;
    uint64_t count;
};

struct dagi_metric {
    struct dagi_metrics *registry;
    enum family_type type;
    char *name, *help;
    char *labels[MAX_LABELS];
    size_t label_count;
    double *buckets;
    size_t bucket_count;
    pthread_mutex_t lock;
    struct series **table;
    size_t table_size, series_count;
    struct series *first, *last;
    struct series *overflow;
};

struct dagi_metrics {
    pthread_mutex_t lock;
    struct dagi_metric **families;
    size_t family_count, family_alloc;
    size_t max_series;
    struct dagi_metric *dropped; /* dagi_metrics_series_dropped_total */
};

const double dagi_metrics_latency_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                               0.1,    0.25,  0.5,    1,     2.5,  5,     10,
                                               30,     60};
const size_t dagi_metrics_latency_buckets_n = DAGI_ARRAY_LEN(dagi_metrics_latency_buckets);

static struct dagi_metric *family_new(struct dagi_metrics *m, enum family_type type,
                                      const char *name, const char *help,
                                      const char *const *label_names, const double *buckets,
                                      size_t n);

struct dagi_metrics *dagi_metrics_new(size_t max_series_per_family)
{
    struct dagi_metrics *m = dagi_xcalloc(1, sizeof(*m));
    pthread_mutex_init(&m->lock, NULL);
    __atomic_store_n(&m->max_series,
                     max_series_per_family ? max_series_per_family : DEFAULT_MAX_SERIES,
                     __ATOMIC_RELAXED);
    static const char *const labels[] = {"metric", NULL};
    m->dropped = family_new(m, COUNTER, "dagi_metrics_series_dropped_total",
                            "Samples folded into the overflow series because a family hit its "
                            "cardinality cap",
                            labels, NULL, 0);
    return m;
}

static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static struct dagi_metrics *default_registry;

static void make_default(void)
{
    default_registry = dagi_metrics_new(0);
}

struct dagi_metrics *dagi_metrics_default(void)
{
    pthread_once(&default_once, make_default);
    return default_registry;
}

static void series_free(struct series *s, size_t label_count)
{
    for (size_t i = 0; i < label_count; i++)
        free(s->values[i]);
    free(s->values);
    free(s->counts);
    free(s);
}

void dagi_metrics_free(struct dagi_metrics *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->family_count; i++) {
        struct dagi_metric *f = m->families[i];
        struct series *s = f->first;
        while (s) {
            struct series *next = s->next_in_order;
            series_free(s, f->label_count);
            s = next;
        }
        if (f->overflow)
            series_free(f->overflow, f->label_count);
        for (size_t j = 0; j < f->label_count; j++)
            free(f->labels[j]);
        free(f->name);
        free(f->help);
        free(f->buckets);
        free(f->table);
        pthread_mutex_destroy(&f->lock);
        free(f);
    }
    free(m->families);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

void dagi_metrics_set_max_series(struct dagi_metrics *m, size_t max_series_per_family)
{
    /* Read by lookup() under a family's lock, not the registry's. */
    __atomic_store_n(&m->max_series,
                     max_series_per_family ? max_series_per_family : DEFAULT_MAX_SERIES,
                     __ATOMIC_RELAXED);
}

static bool valid_name(const char *s)
{
    if (!s || !*s)
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool ok = c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (p != s && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

/* Label names have no ':' and those starting with "__" are reserved. */
static bool valid_label_name(const char *s)
{
    return valid_name(s) && !strchr(s, ':') && strncmp(s, "__", 2) != 0;
}

static bool same_labels(const struct dagi_metric *f, const char *const *label_names)
{
    size_t n = 0;
    while (label_names && label_names[n])
        n++;
    if (n != f->label_count)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(f->labels[i], label_names[i]) != 0)
            return false;
    return true;
}

static struct dagi_metric *family_new(struct dagi_metrics *m, enum family_type type,
                                      const char *name, const char *help,
                                      const char *const *label_names, const double *buckets,
                                      size_t n)
{
    if (!valid_name(name) || !help)
        return NULL;
    size_t label_count = 0;
    while (label_names && label_names[label_count]) {
        if (label_count == MAX_LABELS || !valid_label_name(label_names[label_count]) ||
            (type == HISTOGRAM && strcmp(label_names[label_count], "le") == 0))
            return NULL;
        label_count++;
    }
    struct dagi_metric *found = NULL;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->family_count; i++) {
        if (strcmp(m->families[i]->name, name) == 0) {
            found = m->families[i];
            if (found->type != type || !same_labels(found, label_names) ||
                (type == HISTOGRAM &&
                 (found->bucket_count != n ||
                  (n && memcmp(found->buckets, buckets, n * sizeof(double)) != 0))))
                found = NULL;
            pthread_mutex_unlock(&m->lock);
            return found;
        }
    }
    struct dagi_metric *f = dagi_xcalloc(1, sizeof(*f));
    f->registry = m;
    f->type = type;
    f->name = dagi_xstrdup(name);
    f->help = dagi_xstrdup(help);
    f->label_count = label_count;
    for (size_t i = 0; i < label_count; i++)
        f->labels[i] = dagi_xstrdup(label_names[i]);
    if (type == HISTOGRAM) {
        f->buckets = dagi_xmalloc((n ? n : 1) * sizeof(double));
        if (n)
            memcpy(f->buckets, buckets, n * sizeof(double));
        f->bucket_count = n;
    }
    pthread_mutex_init(&f->lock, NULL);
    f->table_size = 16;
    f->table = dagi_xcalloc(f->table_size, sizeof(*f->table));
    if (m->family_count == m->family_alloc) {
        m->family_alloc = m->family_alloc ? m->family_alloc * 2 : 32;
        m->families = dagi_xrealloc(m->families, m->family_alloc * sizeof(*m->families));
    }
    m->families[m->family_count++] = f;
    pthread_mutex_unlock(&m->lock);
    return f;
}

struct dagi_metric *dagi_metrics_counter(struct dagi_metrics *m, const char *name,
                                         const char *help, const char *const *label_names)
{
    return family_new(m, COUNTER, name, help, label_names, NULL, 0);
}

struct dagi_metric *dagi_metrics_gauge(struct dagi_metrics *m, const char *name, const char *help,
                                       const char *const *label_names)
{
    return family_new(m, GAUGE, name, help, label_names, NULL, 0);
}

struct dagi_metric *dagi_metrics_histogram(struct dagi_metrics *m, const char *name,
                                           const char *help, const char *const *label_names,
                                           const double *buckets, size_t n)
{
    if (n && !buckets)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1])))
            return NULL; /* +Inf is implicit; NaN never compares */
    return family_new(m, HISTOGRAM, name, help, label_names, buckets, n);
}

static uint64_t hash_values(const struct dagi_metric *f, const char *const *values)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < f->label_count; i++) {
        for (const char *p = values[i] ? values[i] : ""; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ull;
        h = (h ^ 0xff) * 1099511628211ull; /* separator: ("a","bc") != ("ab","c") */
    }
    return h;
}

static bool values_equal(const struct dagi_metric *f, const struct series *s,
                         const char *const *values)
{
    for (size_t i = 0; i < f->label_count; i++)
        if (strcmp(s->values[i], values[i] ? values[i] : "") != 0)
            return false;
    return true;
}

static struct series *series_new(const struct dagi_metric *f, const char *const *values,
                                 uint64_t hash)
{
    struct series *s = dagi_xcalloc(1, sizeof(*s));
    s->hash = hash;
    s->values = dagi_xcalloc(f->label_count ? f->label_count : 1, sizeof(char *));
    for (size_t i = 0; i < f->label_count; i++)
        s->values[i] = dagi_xstrdup(values ? (values[i] ? values[i] : "") : OVERFLOW_VALUE);
    if (f->type == HISTOGRAM)
        s->counts = dagi_xcalloc(f->bucket_count + 1, sizeof(uint64_t));
    return s;
}

static void grow(struct dagi_metric *f)
{
    size_t size = f->table_size * 2;
    struct series **table = dagi_xcalloc(size, sizeof(*table));
    for (struct series *s = f->first; s; s = s->next_in_order) {
        size_t b = s->hash & (size - 1);
        s->next_in_bucket = table[b];
        table[b] = s;
    }
    free(f->table);
    f->table = table;
    f->table_size = size;
}

/* Finds or creates the series; called with f->lock held.  Returns the
 * overflow series past the cap and counts the drop. */
static struct series *lookup(struct dagi_metric *f, const char *const *values, bool *dropped)
{
    uint64_t h = hash_values(f, values);
    for (struct series *s = f->table[h & (f->table_size - 1)]; s; s = s->next_in_bucket)
        if (s->hash == h && values_equal(f, s, values))
            return s;
    if (f->series_count >= __atomic_load_n(&f->registry->max_series, __ATOMIC_RELAXED) &&
        f->label_count > 0) {
        *dropped = true;
        if (!f->overflow)
            f->overflow = series_new(f, NULL, 0);
        return f->overflow;
    }
    struct series *s = series_new(f, values, h);
    if (f->last)
        f->last->next_in_order = s;
    else
        f->first = s;
    f->last = s;
    f->series_count++;
    if (f->series_count > f->table_size * 3 / 4)
        grow(f);
    else {
        size_t b = h & (f->table_size - 1);
        s->next_in_bucket = f->table[b];
        f->table[b] = s;
    }
    return s;
}

static void update(struct dagi_metric *f, const char *const *label_values, double v, int op)
{
    if (!f)
        return;
    static const char *const none[MAX_LABELS]; /* NULL values read as "" */
    bool dropped = false;
    pthread_mutex_lock(&f->lock);
    struct series *s = lookup(f, label_values ? label_values : none, &dropped);
    if (op == 0) {
        s->value += v;
    } else if (op == 1) {
        s->value = v;
    } else {
        size_t i = 0;
        while (i < f->bucket_count && v > f->buckets[i])
            i++;
        s->counts[i]++;
        s->sum += v;
        s->count++;
    }
    pthread_mutex_unlock(&f->lock);
    if (dropped && f != f->registry->dropped) {
        const char *name[] = {f->name};
        update(f->registry->dropped, name, 1, 0);
    }
}

void dagi_metric_add(struct dagi_metric *f, const char *const *label_values, double v)
{
    if (f && f->type == COUNTER && !(v >= 0))
        return; /* counters only go up (and NaN would stick for ever) */
    update(f, label_values, v, 0);
}

void dagi_metric_inc(struct dagi_metric *f, const char *const *label_values)
{
    update(f, label_values, 1, 0);
}

void dagi_metric_set(struct dagi_metric *f, const char *const *label_values, double v)
{
    update(f, label_values, v, 1);
}

void dagi_metric_observe(struct dagi_metric *f, const char *const *label_values, double v)
{
    if (f && f->type == HISTOGRAM)
        update(f, label_values, v, 2);
}

/* Rendering appends piece by piece; the first failure (the buffer's cap) is
 * kept in *rc and later pieces are skipped. */
static void put_str(struct dagi_buf *out, int *rc, const char *str)
{
    if (!*rc)
        *rc = dagi_buf_append_str(out, str);
}

static void put_char(struct dagi_buf *out, int *rc, char c)
{
    if (!*rc)
        *rc = dagi_buf_append_char(out, c);
}

static void put_u64(struct dagi_buf *out, int *rc, uint64_t v)
{
    if (!*rc)
        *rc = dagi_buf_appendf(out, "%llu", (unsigned long long)v);
}

/* A sample value or bucket bound: integers in full ("10", "1000000"), other
 * values as the shortest "%g" text that reads back as the same double ("0.1",
 * "1e+20"), so distinct bounds never print alike. */
static void format_double(char *dst, size_t size, double v)
{
    if (isinf(v)) {
        snprintf(dst, size, "%s", v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (isnan(v)) {
        snprintf(dst, size, "NaN");
        return;
    }
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(dst, size, "%.0f", v == 0 ? 0.0 : v); /* no "-0" */
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(dst, size, "%.*g", prec, v);
        if (strtod(dst, NULL) == v)
            return;
    }
}

static void append_number(struct dagi_buf *out, int *rc, double v)
{
    char text[40];
    format_double(text, sizeof(text), v);
    put_str(out, rc, text);
}

static void append_label_value(struct dagi_buf *out, int *rc, const char *v)
{
    for (; *v && !*rc; v++) {
        if (*v == '\\')
            put_str(out, rc, "\\\\");
        else if (*v == '"')
            put_str(out, rc, "\\\"");
        else if (*v == '\n')
            put_str(out, rc, "\\n");
        else
            put_char(out, rc, *v);
    }
}

/* name{a="x",b="y"[,le="0.5"]} */
static void append_series_name(struct dagi_buf *out, int *rc, const struct dagi_metric *f,
                               const struct series *s, const char *suffix, const char *le)
{
    put_str(out, rc, f->name);
    put_str(out, rc, suffix);
    if (f->label_count == 0 && !le)
        return;
    put_char(out, rc, '{');
    for (size_t i = 0; i < f->label_count; i++) {
        if (i)
            put_char(out, rc, ',');
        put_str(out, rc, f->labels[i]);
        put_str(out, rc, "=\"");
        append_label_value(out, rc, s->values[i]);
        put_char(out, rc, '"');
    }
    if (le) {
        put_str(out, rc, f->label_count ? ",le=\"" : "le=\"");
        put_str(out, rc, le);
        put_char(out, rc, '"');
    }
    put_char(out, rc, '}');
}

static void render_series(struct dagi_buf *out, int *rc, const struct dagi_metric *f,
                          const struct series *s)
{
    if (f->type != HISTOGRAM) {
        append_series_name(out, rc, f, s, "", NULL);
        put_char(out, rc, ' ');
        append_number(out, rc, s->value);
        put_char(out, rc, '\n');
        return;
    }
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= f->bucket_count; i++) {
        char le[40];
        cumulative += s->counts[i];
        format_double(le, sizeof(le), i == f->bucket_count ? INFINITY : f->buckets[i]);
        append_series_name(out, rc, f, s, "_bucket", le);
        put_char(out, rc, ' ');
        put_u64(out, rc, cumulative);
        put_char(out, rc, '\n');
    }
    append_series_name(out, rc, f, s, "_sum", NULL);
    put_char(out, rc, ' ');
    append_number(out, rc, s->sum);
    put_char(out, rc, '\n');
    append_series_name(out, rc, f, s, "_count", NULL);
    put_char(out, rc, ' ');
    put_u64(out, rc, s->count);
    put_char(out, rc, '\n');
}

static int by_name(const void *a, const void *b)
{
    const struct dagi_metric *fa = *(struct dagi_metric *const *)a;
    const struct dagi_metric *fb = *(struct dagi_metric *const *)b;
    return strcmp(fa->name, fb->name);
}

int dagi_metrics_render(struct dagi_metrics *m, struct dagi_buf *out)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    pthread_mutex_lock(&m->lock);
    size_t n = m->family_count;
    struct dagi_metric **sorted = dagi_xmalloc((n ? n : 1) * sizeof(*sorted));
    if (n)
        memcpy(sorted, m->families, n * sizeof(*sorted));
    pthread_mutex_unlock(&m->lock);
    qsort(sorted, n, sizeof(*sorted), by_name);
    size_t start = out->len;
    int rc = DAGI_OK;
    for (size_t i = 0; i < n && rc == DAGI_OK; i++) {
        struct dagi_metric *f = sorted[i];
        put_str(out, &rc, "# HELP ");
        put_str(out, &rc, f->name);
        put_char(out, &rc, ' ');
        for (const char *p = f->help; *p && !rc; p++) {
            if (*p == '\n')
                put_str(out, &rc, "\\n");
            else if (*p == '\\')
                put_str(out, &rc, "\\\\");
            else
                put_char(out, &rc, *p);
        }
        put_str(out, &rc, "\n# TYPE ");
        put_str(out, &rc, f->name);
        put_char(out, &rc, ' ');
        put_str(out, &rc, type_names[f->type]);
        put_char(out, &rc, '\n');
        pthread_mutex_lock(&f->lock);
        if (f->label_count == 0 && !f->first) {
            /* An unlabelled family always has its one series, even at zero. */
            static const char *const none[1] = {""};
            bool dropped = false;
            lookup(f, none, &dropped);
        }
        for (struct series *s = f->first; s && !rc; s = s->next_in_order)
            render_series(out, &rc, f, s);
        if (f->overflow && !rc)
            render_series(out, &rc, f, f->overflow);
        pthread_mutex_unlock(&f->lock);
    }
    free(sorted);
    if (rc) {
        /* The buffer's cap is the only way rendering fails: no half output. */
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
    }
    return rc;
}
