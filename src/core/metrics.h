/* Metrics registry rendered as Prometheus text exposition format 0.0.4.
 *
 * A family (counter, gauge, histogram) is registered once with its label
 * names; series are created on first use of a label-value tuple.  Each family
 * has a cardinality cap: past it, new tuples are folded into one series whose
 * label values are all "__overflow__" and dagi_metrics_series_dropped_total
 * counts them, so a label fed by user input cannot exhaust memory.
 *
 * All operations are thread safe.  Families live as long as the registry;
 * handles returned by the register functions are never freed by callers.
 * Registering the same name twice returns the existing family when the type
 * and label names match, NULL otherwise. */
#ifndef DAGI_METRICS_H
#define DAGI_METRICS_H

#include <stddef.h>

#include "buf.h"

struct dagi_metrics;
struct dagi_metric; /* one family */

/* The process-wide registry (created on first use). */
struct dagi_metrics *dagi_metrics_default(void);
struct dagi_metrics *dagi_metrics_new(size_t max_series_per_family);
void dagi_metrics_free(struct dagi_metrics *m);
void dagi_metrics_set_max_series(struct dagi_metrics *m, size_t max_series_per_family);

/* label_names: NULL-terminated array, or NULL for no labels.  Names must be
 * valid Prometheus names; help is required. */
struct dagi_metric *dagi_metrics_counter(struct dagi_metrics *m, const char *name,
                                         const char *help, const char *const *label_names);
struct dagi_metric *dagi_metrics_gauge(struct dagi_metrics *m, const char *name, const char *help,
                                       const char *const *label_names);
/* buckets: ascending upper bounds, n of them (+Inf is implicit). */
struct dagi_metric *dagi_metrics_histogram(struct dagi_metrics *m, const char *name,
                                           const char *help, const char *const *label_names,
                                           const double *buckets, size_t n);

/* label_values: as many as the family has label names (NULL when none). */
void dagi_metric_add(struct dagi_metric *f, const char *const *label_values, double v);
void dagi_metric_inc(struct dagi_metric *f, const char *const *label_values);
void dagi_metric_set(struct dagi_metric *f, const char *const *label_values, double v);
void dagi_metric_observe(struct dagi_metric *f, const char *const *label_values, double v);

/* Renders every family, sorted by name, into out. */
int dagi_metrics_render(struct dagi_metrics *m, struct dagi_buf *out);

/* Bucket presets (seconds). */
extern const double dagi_metrics_latency_buckets[];
extern const size_t dagi_metrics_latency_buckets_n;

#endif
