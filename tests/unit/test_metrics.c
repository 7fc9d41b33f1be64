/* Unit tests for src/core/metrics.c: registry and Prometheus text rendering. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/metrics.h"

#define DROPPED_HEAD                                                                              \
    "# HELP dagi_metrics_series_dropped_total Samples folded into the overflow series because "  \
    "a family hit its cardinality cap\n"                                                          \
    "# TYPE dagi_metrics_series_dropped_total counter\n"

/* Renders m and compares with want exactly. */
static void renders(struct dagi_metrics *m, const char *want)
{
    struct dagi_buf out;
    dagi_buf_init(&out, 1 << 20);
    assert_int_equal(dagi_metrics_render(m, &out), DAGI_OK);
    if (strcmp(dagi_buf_str(&out), want) != 0)
        fail_msg("render mismatch\n--- got ---\n%s--- want ---\n%s", dagi_buf_str(&out), want);
    dagi_buf_release(&out);
}

/* Renders m; the caller frees the text. */
static char *render_text(struct dagi_metrics *m)
{
    struct dagi_buf out;
    dagi_buf_init(&out, 16 << 20);
    assert_int_equal(dagi_metrics_render(m, &out), DAGI_OK);
    return dagi_buf_detach(&out, NULL);
}

static void test_empty_registry(void **state)
{
    (void)state;
    struct dagi_metrics *m = dagi_metrics_new(0);
    renders(m, DROPPED_HEAD);
    dagi_metrics_free(m);
    dagi_metrics_free(NULL);
}

static void test_counter_render(void **state)
{
    (void)state;
    struct dagi_metrics *m = dagi_metrics_new(0);
    static const char *const labels[] = {"method", "code", NULL};
    struct dagi_metric *c = dagi_metrics_counter(m, "http_requests_total", "Requests served.", labels);
    assert_non_null(c);
    dagi_metric_inc(c, (const char *const[]){"GET", "200"});
    dagi_metric_inc(c, (const char *const[]){"GET", "200"});
    dagi_metric_add(c, (const char *const[]){"POST", "500"}, 2.5);
    dagi_metric_add(c, (const char *const[]){"GET", "200"}, 0);
    /* An unlabelled counter shows up at 0 before its first increment. */
    struct dagi_metric *u = dagi_metrics_counter(m, "boots_total", "Boots.", NULL);
    assert_non_null(u);
    renders(m, "# HELP boots_total Boots.\n"
               "# TYPE boots_total counter\n"
               "boots_total 0\n" DROPPED_HEAD
               "# HELP http_requests_total Requests served.\n"
               "# TYPE http_requests_total counter\n"
               "http_requests_total{method=\"GET\",code=\"200\"} 2\n"
               "http_requests_total{method=\"POST\",code=\"500\"} 2.5\n");
    dagi_metric_inc(u, NULL);
    dagi_metric_add(u, NULL, 1e6);
    char *text = render_text(m);
    assert_non_null(strstr(text, "\nboots_total 1000001\n"));
    free(text);
    dagi_metrics_free(m);
}

static void test_counter_ignores_negative(void **state)
{
    (void)state;
    struct dagi_metrics *m = dagi_metrics_new(0);
    struct dagi_metric *c = dagi_metrics_counter(m, "c_total", "C.", NULL);
    dagi_metric_add(c, NULL, 5);
    dagi_metric_add(c, NULL, -3);
    dagi_metric_add(c, NULL, -INFINITY);
    dagi_metric_add(c, NULL, NAN); /* would poison the counter for ever */
    renders(m, "# HELP c_total C.\n# TYPE c_total counter\nc_total 5\n" DROPPED_HEAD);
    dagi_metrics_free(m);
}

static void test_gauge_render(void **state)
{
    (void)state;
    struct dagi_metrics *m = dagi_metrics_new(0);
    struct dagi_metric *g = dagi_metrics_gauge(m, "queue_depth", "Queue depth.", NULL);
    static const char *const labels[] = {"pool", NULL};
    struct dagi_metric *gl = dagi_metrics_gauge(m, "temperature", "Temperature.", labels);
    assert_non_null(g);
    assert_non_null(gl);
    dagi_metric_set(g, NULL, 5);
    dagi_metric_add(g, NULL, -7.5); /* gauges go down */
    dagi_metric_set(gl, (const char *const[]){"a"}, 0.1);
    dagi_metric_set(gl, (const char *const[]){"b"}, 1e20);
    dagi_metric_set(gl, (const char *const[]){"c"}, -0.0);
    dagi_metric_set(gl, (const char *const[]){"d"}, 1234567);
    dagi_metric_set(gl, (const char *const[]){"e"}, INFINITY);
    dagi_metric_set(gl, (const char *const[]){"f"}, NAN);
    dagi_metric_set(gl, (const char *const[]){"g"}, -1.0 / 3.0);
    dagi_metric_inc(gl, (const char *const[]){"h"});
    dagi_metric_inc(gl, (const char *const[]){"h"});
    renders(m, DROPPED_HEAD "# HELP queue_depth Queue depth.\n"
                            "# TYPE queue_depth gauge\n"
                            "queue_depth -2.5\n"
                            "# HELP temperature Temperature.\n"
                            "# TYPE temperature gauge\n"
                            "temperature{pool=\"a\"} 0.1\n"
                            "temperature{pool=\"b\"} 1e+20\n"
                            "temperature{pool=\"c\"} 0\n"
                            "temperature{pool=\"d\"} 1234567\n"
                            "temperature{pool=\"e\"} +Inf\n"
                            "temperature{pool=\"f\"} NaN\n"
                            "temperature{pool=\"g\"} -0.3333333333333333\n"
                            "temperature{pool=\"h\"} 2\n");
    dagi_metrics_free(m);
}

static void test_histogram_render(void **state)
{
    (void)state;
    struct dagi_metrics *m = dagi_metrics_new(0);
    static const double buckets[] = {0.25, 0.5, 1};
    struct dagi_metric *h = dagi_metrics_histogram(m, "latency_seconds", "Latency.", NULL, buckets, 3);
    assert_non_null(h);
    dagi_metric_observe(h, NULL, 0.125);
    dagi_metric_observe(h, NULL, 0.25); /* le is inclusive */
    dagi_metric_observe(h, NULL, 0.5);
    dagi_metric_observe(h, NULL, 2);
    static const char *const labels[] = {"route", NULL};
    struct dagi_metric *hl = dagi_metrics_histogram(m, "req_seconds", "Req.", labels, buckets, 3);
    dagi_metric_observe(hl, (const char *const[]){"/x"}, 0.75);
    /* Not a histogram operation: ignored. */
    struct dagi_metric *c = dagi_metrics_counter(m, "zz_total", "Z.", NULL);
    dagi_metric_observe(c, NULL, 1);
    renders(m, DROPPED_HEAD "# HELP latency_seconds Latency.\n"
                            "# TYPE latency_seconds histogram\n"
                            "latency_seconds_bucket{le=\"0.25\"} 2\n"
                            "latency_seconds_bucket{le=\"0.5\"} 3\n"
                            "latency_seconds_bucket{le=\"1\"} 3\n"
                            "latency_seconds_bucket{le=\"+Inf\"} 4\n"
                            "latency_seconds_sum 2.875\n"
                            "latency_seconds_count 4\n"
                            "# HELP req_seconds Req.\n"
                            "# TYPE req_seconds histogram\n"
                            "req_seconds_bucket{route=\"/x\",le=\"0.25\"} 0\n"
                            "req_seconds_bucket{route=\"/x\",le=\"0.5\"} 0\n"
                            "req_seconds_bucket{route=\"/x\",le=\"1\"} 1\n"
                            "req_seconds_bucket{route=\"/x\",le=\"+Inf\"} 1\n"
                            "req_seconds_sum{route=\"/x\"} 0.75\n"
                            "req_seconds_count{route=\"/x\"} 1\n"
                            "# HELP zz_total Z.\n"
                            "# TYPE zz_total counter\n"
                            "zz_total 0\n");
    dagi_metrics_free(m);
}

static void test_histogram_bucket_labels(void **state)
{
    (void)state;
    struct dagi_metrics *m = dagi_metrics_new(0);
    /* Bounds that %g would print alike must stay distinct. */
    static const double buckets[] = {0.0005, 1000000, 1000001, 123456789.5, 1e20, 1.0000000000000002e20};
    struct dagi_metric *h = dagi_metrics_histogram(m, "b", "B.", NULL, buckets, 6);
    assert_non_null(h);
    /* No buckets at all: just +Inf (and no memcpy from NULL). */
    struct dagi_metric *h0 = dagi_metrics_histogram(m, "c", "C.", NULL, NULL, 0);
    assert_non_null(h0);
    dagi_metric_observe(h0, NULL, 3);
    renders(m, "# HELP b B.\n# TYPE b histogram\n"
               "b_bucket{le=\"0.0005\"} 0\n"
               "b_bucket{le=\"1000000\"} 0\n"
               "b_bucket{le=\"1000001\"} 0\n"
               "b_bucket{le=\"123456789.5\"} 0\n"
               "b_bucket{le=\"1e+20\"} 0\n"
               "b_bucket{le=\"1.0000000000000002e+20\"} 0\n"
               "b_bucket{le=\"+Inf\"} 0\n"
               "b_sum 0\n"
               "b_count 0\n"
               "# HELP c C.\n# TYPE c histogram\n"
               "c_bucket{le=\"+Inf\"} 1\n"
               "c_sum 3\n"
               "c_count 1\n" DROPPED_HEAD);
    dagi_metrics_free(m);
}

static void test_latency_buckets(void **state)
{
    (void)state;
    struct dagi_metrics *m = dagi_metrics_new(0);
    assert_int_equal(dagi_metrics_latency_buckets_n, 16);
    struct dagi_metric *h = dagi_metrics_histogram(m, "lat", "L.", NULL, dagi_metrics_latency_buckets,
                                                   dagi_metrics_latency_buckets_n);
    assert_non_null(h);
    dagi_metric_observe(h, NULL, 0.003);
    char *text = render_text(m);
    assert_non_null(strstr(text, "lat_bucket{le=\"0.0025\"} 0\nlat_bucket{le=\"0.005\"} 1\n"));
    assert_non_null(strstr(text, "lat_bucket{le=\"5\"} 1\nlat_bucket{le=\"10\"} 1\n"));
    assert_non_null(strstr(text, "lat_bucket{le=\"60\"} 1\nlat_bucket{le=\"+Inf\"} 1\n"));
    assert_non_null(strstr(text, "lat_sum 0.003\nlat_count 1\n"));
    free(text);
    dagi_metrics_free(m);
}

static void test_label_and_help_escaping(void **state)
{
    (void)state;
    struct dagi_metrics *m = dagi_metrics_new(0);
    static const char *const labels[] = {"path", "empty", NULL};
    struct dagi_metric *c = dagi_metrics_counter(m, "esc_total", "Help with \\ and\nnewline \"q\".",
                                                 labels);
    dagi_metric_inc(c, (const char *const[]){"a\\b\"c\nd", NULL});
    dagi_metric_inc(c, (const char *const[]){"caf\xc3\xa9", ""}); /* UTF-8 as is */
    /* NULL values for a labelled family: every label value "". */
    dagi_metric_inc(c, NULL);
    dagi_metric_inc(c, (const char *const[]){"", ""}); /* the same series */
    renders(m, DROPPED_HEAD "# HELP esc_total Help with \\\\ and\\nnewline \"q\".\n"
                            "# TYPE esc_total counter\n"
                            "esc_total{path=\"a\\\\b\\\"c\\nd\",empty=\"\"} 1\n"
                            "esc_total{path=\"caf\xc3\xa9\",empty=\"\"} 1\n"
                            "esc_total{path=\"\",empty=\"\"} 2\n");
    dagi_metrics_free(m);
}

static void test_label_tuples_distinct(void **state)
{
    (void)state;
    struct dagi_metrics *m = dagi_metrics_new(0);
    static const char *const labels[] = {"a", "b", NULL};
    struct dagi_metric *c = dagi_metrics_counter(m, "t_total", "T.", labels);
    dagi_metric_inc(c, (const char *const[]){"a", "bc"});
    dagi_metric_inc(c, (const char *const[]){"ab", "c"});
    dagi_metric_inc(c, (const char *const[]){"ab", "c"});
    renders(m, DROPPED_HEAD "# HELP t_total T.\n# TYPE t_total counter\n"
                            "t_total{a=\"a\",b=\"bc\"} 1\n"
                            "t_total{a=\"ab\",b=\"c\"} 2\n");
    dagi_metrics_free(m);
}

static void test_sorted_by_name(void **state)
{
    (void)state;
    struct dagi_metrics *m = dagi_metrics_new(0);
    assert_non_null(dagi_metrics_gauge(m, "zeta", "Z.", NULL));
    assert_non_null(dagi_metrics_counter(m, "alpha_total", "A.", NULL));
    assert_non_null(dagi_metrics_gauge(m, "mid", "M.", NULL));
    assert_non_null(dagi_metrics_gauge(m, "Mid_upper", "U.", NULL));
    renders(m, "# HELP Mid_upper U.\n# TYPE Mid_upper gauge\nMid_upper 0\n"
               "# HELP alpha_total A.\n# TYPE alpha_total counter\nalpha_total 0\n" DROPPED_HEAD
               "# HELP mid M.\n# TYPE mid gauge\nmid 0\n"
               "# HELP zeta Z.\n# TYPE zeta gauge\nzeta 0\n");
    dagi_metrics_free(m);
}

static void test_reregister(void **state)
{
    (void)state;
    struct dagi_metrics *m = dagi_metrics_new(0);
    static const char *const ab[] = {"a", "b", NULL};
    static const char *const ba[] = {"b", "a", NULL};
    static const char *const a[] = {"a", NULL};
    struct dagi_metric *c = dagi_metrics_counter(m, "x_total", "X.", ab);
    assert_non_null(c);
    assert_ptr_equal(dagi_metrics_counter(m, "x_total", "Other help is fine.", ab), c);
    assert_null(dagi_metrics_gauge(m, "x_total", "X.", ab));
    assert_null(dagi_metrics_counter(m, "x_total", "X.", ba));
    assert_null(dagi_metrics_counter(m, "x_total", "X.", a));
    assert_null(dagi_metrics_counter(m, "x_total", "X.", NULL));
    assert_null(dagi_metrics_histogram(m, "x_total", "X.", ab, (const double[]){1}, 1));

    struct dagi_metric *u = dagi_metrics_gauge(m, "g", "G.", NULL);
    static const char *const none[] = {NULL};
    assert_ptr_equal(dagi_metrics_gauge(m, "g", "G.", none), u); /* {} is no labels */
    assert_null(dagi_metrics_gauge(m, "g", "G.", a));

    static const double b1[] = {1, 2}, b2[] = {1, 3};
    struct dagi_metric *h = dagi_metrics_histogram(m, "h", "H.", NULL, b1, 2);
    assert_non_null(h);
    assert_ptr_equal(dagi_metrics_histogram(m, "h", "H.", NULL, (const double[]){1, 2}, 2), h);
    assert_null(dagi_metrics_histogram(m, "h", "H.", NULL, b2, 2)); /* other buckets */
    assert_null(dagi_metrics_histogram(m, "h", "H.", NULL, b1, 1));
    /* The built-in family can be looked up like any other. */
    static const char *const metric[] = {"metric", NULL};
    assert_non_null(dagi_metrics_counter(m, "dagi_metrics_series_dropped_total", "D.", metric));
    assert_null(dagi_metrics_gauge(m, "dagi_metrics_series_dropped_total", "D.", metric));

    /* One family each, whatever was asked. */
    dagi_metric_inc(c, (const char *const[]){"1", "2"});
    char *text = render_text(m);
    const char *p = text;
    int n = 0;
    while ((p = strstr(p, "# TYPE x_total ")) != NULL)
        n++, p++;
    assert_int_equal(n, 1);
    free(text);
    dagi_metrics_free(m);
}

static void test_invalid_names(void **state)
{
    (void)state;
    struct dagi_metrics *m = dagi_metrics_new(0);
    static const char *const bad_names[] = {"", "1abc", "a-b", "a b", "a.b", "a\"b", "caf\xc3\xa9"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        assert_null(dagi_metrics_counter(m, bad_names[i], "H.", NULL));
        assert_null(dagi_metrics_gauge(m, bad_names[i], "H.", NULL));
        assert_null(dagi_metrics_histogram(m, bad_names[i], "H.", NULL, NULL, 0));
    }
    assert_null(dagi_metrics_counter(m, NULL, "H.", NULL));
    assert_null(dagi_metrics_counter(m, "ok_total", NULL, NULL)); /* help is required */
    /* Valid metric names: colons, underscores, digits after the first. */
    assert_non_null(dagi_metrics_counter(m, "ns:sub_name_total", "H.", NULL));
    assert_non_null(dagi_metrics_gauge(m, "_g1", "H.", NULL));
    assert_non_null(dagi_metrics_gauge(m, "A9", "H.", NULL));

    /* Label names: no colons, no reserved "__" prefix, no "le" on a histogram. */
    static const char *const bad_label_sets[][2] = {{"1a", NULL}, {"a-b", NULL}, {"", NULL},
                                                   {"a:b", NULL}, {"__name__", NULL}};
    for (size_t i = 0; i < sizeof(bad_label_sets) / sizeof(bad_label_sets[0]); i++)
        assert_null(dagi_metrics_counter(m, "lbl_total", "H.", bad_label_sets[i]));
    static const char *const le[] = {"le", NULL};
    assert_null(dagi_metrics_histogram(m, "hist", "H.", le, (const double[]){1}, 1));
    assert_non_null(dagi_metrics_gauge(m, "le_gauge", "H.", le)); /* fine elsewhere */
    static const char *const eight[] = {"a", "b", "c", "d", "e", "f", "g", "h", NULL};
    static const char *const nine[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", NULL};
    assert_non_null(dagi_metrics_counter(m, "eight_total", "H.", eight));
    assert_null(dagi_metrics_counter(m, "nine_total", "H.", nine));

    /* Buckets must be finite and strictly ascending. */
    assert_null(dagi_metrics_histogram(m, "hb", "H.", NULL, (const double[]){1, 1}, 2));
    assert_null(dagi_metrics_histogram(m, "hb", "H.", NULL, (const double[]){2, 1}, 2));
    assert_null(dagi_metrics_histogram(m, "hb", "H.", NULL, (const double[]){NAN}, 1));
    assert_null(dagi_metrics_histogram(m, "hb", "H.", NULL, (const double[]){1, NAN}, 2));
    assert_null(dagi_metrics_histogram(m, "hb", "H.", NULL, (const double[]){1, INFINITY}, 2));
    assert_null(dagi_metrics_histogram(m, "hb", "H.", NULL, NULL, 2));
    assert_non_null(dagi_metrics_histogram(m, "hb", "H.", NULL, (const double[]){-1, 0, 1}, 3));

    /* Refused names left nothing behind. */
    char *text = render_text(m);
    assert_null(strstr(text, "lbl_total"));
    assert_null(strstr(text, "nine_total"));
    assert_null(strstr(text, "# TYPE hist "));
    free(text);
    /* Updating through a NULL handle (a refused registration) is a no-op. */
    dagi_metric_inc(NULL, NULL);
    dagi_metric_add(NULL, NULL, 1);
    dagi_metric_set(NULL, NULL, 1);
    dagi_metric_observe(NULL, NULL, 1);
    dagi_metrics_free(m);
}

static void test_cardinality_cap(void **state)
{
    (void)state;
    struct dagi_metrics *m = dagi_metrics_new(3);
    static const char *const labels[] = {"user", "kind", NULL};
    struct dagi_metric *c = dagi_metrics_counter(m, "req_total", "R.", labels);
    dagi_metric_inc(c, (const char *const[]){"u1", "k"});
    dagi_metric_inc(c, (const char *const[]){"u2", "k"});
    dagi_metric_inc(c, (const char *const[]){"u3", "k"});
    dagi_metric_inc(c, (const char *const[]){"u4", "k"}); /* the 4th tuple */
    dagi_metric_add(c, (const char *const[]){"u5", "k"}, 3);
    dagi_metric_inc(c, (const char *const[]){"u1", "k"}); /* existing series still count */
    static const double b[] = {1};
    struct dagi_metric *h = dagi_metrics_histogram(m, "h", "H.", (const char *const[]){"x", NULL}, b, 1);
    for (int i = 0; i < 5; i++) {
        char v[16];
        snprintf(v, sizeof(v), "%d", i);
        dagi_metric_observe(h, (const char *const[]){v}, 0.5);
    }
    /* Unlabelled families have one series only and never overflow. */
    struct dagi_metric *u = dagi_metrics_gauge(m, "u", "U.", NULL);
    dagi_metric_set(u, NULL, 1);
    renders(m, "# HELP dagi_metrics_series_dropped_total Samples folded into the overflow series "
               "because a family hit its cardinality cap\n"
               "# TYPE dagi_metrics_series_dropped_total counter\n"
               "dagi_metrics_series_dropped_total{metric=\"req_total\"} 2\n"
               "dagi_metrics_series_dropped_total{metric=\"h\"} 2\n"
               "# HELP h H.\n# TYPE h histogram\n"
               "h_bucket{x=\"0\",le=\"1\"} 1\nh_bucket{x=\"0\",le=\"+Inf\"} 1\nh_sum{x=\"0\"} 0.5\n"
               "h_count{x=\"0\"} 1\n"
               "h_bucket{x=\"1\",le=\"1\"} 1\nh_bucket{x=\"1\",le=\"+Inf\"} 1\nh_sum{x=\"1\"} 0.5\n"
               "h_count{x=\"1\"} 1\n"
               "h_bucket{x=\"2\",le=\"1\"} 1\nh_bucket{x=\"2\",le=\"+Inf\"} 1\nh_sum{x=\"2\"} 0.5\n"
               "h_count{x=\"2\"} 1\n"
               "h_bucket{x=\"__overflow__\",le=\"1\"} 2\nh_bucket{x=\"__overflow__\",le=\"+Inf\"} 2\n"
               "h_sum{x=\"__overflow__\"} 1\nh_count{x=\"__overflow__\"} 2\n"
               "# HELP req_total R.\n# TYPE req_total counter\n"
               "req_total{user=\"u1\",kind=\"k\"} 2\n"
               "req_total{user=\"u2\",kind=\"k\"} 1\n"
               "req_total{user=\"u3\",kind=\"k\"} 1\n"
               "req_total{user=\"__overflow__\",kind=\"__overflow__\"} 4\n"
               "# HELP u U.\n# TYPE u gauge\nu 1\n");
    dagi_metrics_free(m);
}

static void test_set_max_series(void **state)
{
    (void)state;
    struct dagi_metrics *m = dagi_metrics_new(1);
    struct dagi_metric *c = dagi_metrics_counter(m, "c_total", "C.", (const char *const[]){"k", NULL});
    dagi_metric_inc(c, (const char *const[]){"a"});
    dagi_metric_inc(c, (const char *const[]){"b"}); /* overflow */
    dagi_metrics_set_max_series(m, 3);
    dagi_metric_inc(c, (const char *const[]){"c"}); /* fits now */
    char *text = render_text(m);
    assert_non_null(strstr(text, "c_total{k=\"a\"} 1\nc_total{k=\"c\"} 1\n"
                                 "c_total{k=\"__overflow__\"} 1\n"));
    assert_non_null(strstr(text, "dagi_metrics_series_dropped_total{metric=\"c_total\"} 1\n"));
    free(text);
    dagi_metrics_free(m);
}

static void test_many_series(void **state)
{
    (void)state;
    struct dagi_metrics *m = dagi_metrics_new(5000);
    struct dagi_metric *c = dagi_metrics_counter(m, "many_total", "M.", (const char *const[]){"id", NULL});
    enum { N = 3000 };
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < N; i++) {
            char id[32];
            snprintf(id, sizeof(id), "id%d", i);
            dagi_metric_add(c, (const char *const[]){id}, (double)i);
        }
    char *text = render_text(m);
    /* Insertion order, every series found again after the table grew. */
    const char *p = text;
    for (int i = 0; i < N; i++) {
        char line[64];
        snprintf(line, sizeof(line), "many_total{id=\"id%d\"} %d\n", i, 3 * i);
        const char *q = strstr(p, line);
        if (!q)
            fail_msg("missing or out of order: %s", line);
        p = q + strlen(line);
    }
    assert_null(strstr(text, "__overflow__"));
    free(text);
    dagi_metrics_free(m);
}

struct worker_arg {
    struct dagi_metric *labelled, *plain, *hist;
    int id;
};

enum { THREADS = 4, PER_THREAD = 100000 };

static void *worker(void *p)
{
    struct worker_arg *w = p;
    char own[32];
    snprintf(own, sizeof(own), "t%d", w->id);
    for (int i = 0; i < PER_THREAD; i++) {
        dagi_metric_inc(w->labelled, (const char *const[]){"shared"});
        dagi_metric_inc(w->plain, NULL);
        if (i % 10 == 0) {
            dagi_metric_inc(w->labelled, (const char *const[]){own});
            dagi_metric_observe(w->hist, NULL, (i % 20 == 0) ? 0.5 : 2);
        }
    }
    return NULL;
}

static void test_concurrent_increments(void **state)
{
    (void)state;
    struct dagi_metrics *m = dagi_metrics_new(0);
    struct worker_arg args[THREADS];
    pthread_t th[THREADS];
    struct dagi_metric *labelled =
        dagi_metrics_counter(m, "hits_total", "H.", (const char *const[]){"who", NULL});
    struct dagi_metric *plain = dagi_metrics_counter(m, "plain_total", "P.", NULL);
    struct dagi_metric *hist = dagi_metrics_histogram(m, "obs", "O.", NULL, (const double[]){1}, 1);
    for (int i = 0; i < THREADS; i++) {
        args[i] = (struct worker_arg){labelled, plain, hist, i};
        assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    }
    /* Rendering while the workers run must be safe too. */
    for (int i = 0; i < 5; i++)
        free(render_text(m));
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    char *text = render_text(m);
    assert_non_null(strstr(text, "hits_total{who=\"shared\"} 400000\n"));
    for (int i = 0; i < THREADS; i++) {
        char line[64];
        snprintf(line, sizeof(line), "hits_total{who=\"t%d\"} 10000\n", i);
        assert_non_null(strstr(text, line));
    }
    assert_non_null(strstr(text, "\nplain_total 400000\n"));
    assert_non_null(strstr(text, "obs_bucket{le=\"1\"} 20000\nobs_bucket{le=\"+Inf\"} 40000\n"
                                 "obs_sum 50000\nobs_count 40000\n"));
    free(text);
    dagi_metrics_free(m);
}

static void test_render_cap(void **state)
{
    (void)state;
    struct dagi_metrics *m = dagi_metrics_new(0);
    struct dagi_metric *c = dagi_metrics_counter(m, "c_total", "C.", (const char *const[]){"k", NULL});
    for (int i = 0; i < 50; i++) {
        char v[32];
        snprintf(v, sizeof(v), "value%d", i);
        dagi_metric_inc(c, (const char *const[]){v});
    }
    dagi_metric_observe(dagi_metrics_histogram(m, "h", "H.", NULL, (const double[]){1, 2}, 2), NULL, 1);
    char *full = render_text(m);
    size_t len = strlen(full);

    /* A small cap: refused, and the buffer is left as it was. */
    struct dagi_buf out;
    dagi_buf_init(&out, 100);
    assert_int_equal(dagi_buf_append_str(&out, "keep"), DAGI_OK);
    assert_int_equal(dagi_metrics_render(m, &out), DAGI_ETOOBIG);
    assert_string_equal(dagi_buf_str(&out), "keep");
    dagi_buf_release(&out);

    /* Every cap below the full size fails; exactly the full size works. */
    for (size_t cap = 0; cap < len; cap += (cap < 64 || len - cap < 64) ? 1 : 37) {
        dagi_buf_init(&out, cap);
        if (dagi_metrics_render(m, &out) != DAGI_ETOOBIG)
            fail_msg("cap %zu of %zu: render did not report DAGI_ETOOBIG", cap, len);
        assert_int_equal(out.len, 0);
        dagi_buf_release(&out);
    }
    dagi_buf_init(&out, len);
    assert_int_equal(dagi_metrics_render(m, &out), DAGI_OK);
    assert_string_equal(dagi_buf_str(&out), full);
    dagi_buf_release(&out);

    /* Rendering appends after what is there. */
    dagi_buf_init(&out, len + 3);
    assert_int_equal(dagi_buf_append_str(&out, "pre"), DAGI_OK);
    assert_int_equal(dagi_metrics_render(m, &out), DAGI_OK);
    assert_int_equal(strncmp(dagi_buf_str(&out), "pre", 3), 0);
    assert_string_equal(dagi_buf_str(&out) + 3, full);
    dagi_buf_release(&out);
    free(full);
    dagi_metrics_free(m);
}

static void test_default_registry(void **state)
{
    (void)state;
    struct dagi_metrics *d = dagi_metrics_default();
    assert_non_null(d);
    assert_ptr_equal(dagi_metrics_default(), d);
    struct dagi_metric *c = dagi_metrics_counter(d, "test_default_total", "T.", NULL);
    assert_ptr_equal(dagi_metrics_counter(d, "test_default_total", "T.", NULL), c);
    dagi_metric_inc(c, NULL);
    char *text = render_text(d);
    assert_non_null(strstr(text, "\ntest_default_total 1\n"));
    free(text);
    /* A fresh registry does not see it. */
    struct dagi_metrics *m = dagi_metrics_new(0);
    renders(m, DROPPED_HEAD);
    dagi_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_registry),
        cmocka_unit_test(test_counter_render),
        cmocka_unit_test(test_counter_ignores_negative),
        cmocka_unit_test(test_gauge_render),
        cmocka_unit_test(test_histogram_render),
        cmocka_unit_test(test_histogram_bucket_labels),
        cmocka_unit_test(test_latency_buckets),
        cmocka_unit_test(test_label_and_help_escaping),
        cmocka_unit_test(test_label_tuples_distinct),
        cmocka_unit_test(test_sorted_by_name),
        cmocka_unit_test(test_reregister),
        cmocka_unit_test(test_invalid_names),
        cmocka_unit_test(test_cardinality_cap),
        cmocka_unit_test(test_set_max_series),
        cmocka_unit_test(test_many_series),
        cmocka_unit_test(test_concurrent_increments),
        cmocka_unit_test(test_render_cap),
        cmocka_unit_test(test_default_registry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
