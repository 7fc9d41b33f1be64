/* Routes that only tests use.  Compiled to nothing unless the build has
 * -Dtest_hooks=true (both test builds do, a release never does), so no
 * test-only behaviour ships.  They sit behind the gate like any route. */
#include "node_routes.h"

#include "dagi_build.h"

#if DAGI_TEST_HOOKS

#include "core/clock.h"
#include "core/http_server.h"
#include "core/mem.h"
#include "core/proc.h"
#include "node.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long resident_kb(void)
{
    return dagi_proc_resident_bytes() / 1024;
}

/* POST /v1/test/sink: reads a streamed body of any size and reports its
 * length and the peak RSS seen while reading it. */
struct sink {
    uint64_t bytes;
    long start_rss_kb, peak_rss_kb;
    uint32_t checksum; /* so the bytes are really looked at */
};

static int on_sink_data(struct dagi_http_req *req, const char *data, size_t len, void *ud)
{
    struct sink *s = ud;
    for (size_t i = 0; i < len; i += 4096)
        s->checksum = s->checksum * 31 + (unsigned char)data[i];
    uint64_t before = s->bytes;
    s->bytes += len;
    if (before >> 24 != s->bytes >> 24) { /* every 16 MiB */
        long kb = resident_kb();
        if (kb > s->peak_rss_kb)
            s->peak_rss_kb = kb;
    }
    return 0;
}

static void on_sink_end(struct dagi_http_req *req, void *ud)
{
    struct sink *s = ud;
    long kb = resident_kb();
    if (kb > s->peak_rss_kb)
        s->peak_rss_kb = kb;
    dagi_http_respond_json(req, 200,
                           json_pack("{s:I,s:I,s:I,s:I}", "bytes", (json_int_t)s->bytes,
                                     "start_rss_kb", (json_int_t)s->start_rss_kb, "peak_rss_kb",
                                     (json_int_t)s->peak_rss_kb, "checksum",
                                     (json_int_t)s->checksum));
}

static void on_sink(struct dagi_http_req *req, void *ud)
{
    (void)ud;
    struct sink *s = dagi_arena_zalloc(dagi_http_req_arena(req), sizeof(*s));
    s->start_rss_kb = s->peak_rss_kb = resident_kb();
    dagi_http_req_read_body(req, on_sink_data, on_sink_end, s);
}

/* POST /v1/test/echo: the JSON body back. */
static void on_echo(struct dagi_http_req *req, void *ud)
{
    (void)ud;
    json_t *body;
    if (dagi_http_req_json(req, &body))
        return;
    dagi_http_respond_json(req, 200, json_pack("{s:o}", "echo", body));
}

/* GET /v1/test/sse?n=N&interval_ms=M: N events, one every M ms. */
struct sse_job {
    struct dagi_http_req *req;
    struct event *timer;
    int sent, total, interval_ms;
};

static void sse_job_free(struct sse_job *job)
{
    event_free(job->timer);
    free(job);
}

static void on_sse_close(struct dagi_http_req *req, void *ud)
{
    (void)req;
    sse_job_free(ud);
}

static void on_sse_tick(evutil_socket_t fd, short what, void *ud)
{
    (void)fd, (void)what;
    struct sse_job *job = ud;
    char data[64];
    snprintf(data, sizeof(data), "{\"seq\":%d}", job->sent);
    dagi_http_sse_send(job->req, "tick", data);
    if (++job->sent >= job->total) {
        dagi_http_sse_send(job->req, "done", "{}");
        dagi_http_stream_end(job->req);
        sse_job_free(job);
        return;
    }
    struct timeval tv = {job->interval_ms / 1000, (job->interval_ms % 1000) * 1000};
    evtimer_add(job->timer, &tv);
}

static int query_int(struct dagi_http_req *req, const char *name, int def, int min, int max)
{
    const char *v = dagi_http_req_query_param(req, name);
    if (!v)
        return def;
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < min || n > max)
        return def;
    return (int)n;
}

static void on_sse(struct dagi_http_req *req, void *ud)
{
    struct dagi_node *n = ud;
    struct sse_job *job = dagi_xcalloc(1, sizeof(*job));
    job->req = req;
    job->total = query_int(req, "n", 10, 1, 1000000);
    job->interval_ms = query_int(req, "interval_ms", 10, 0, 600000);
    job->timer = evtimer_new(dagi_node_base(n), on_sse_tick, job);
    dagi_http_req_on_close(req, on_sse_close, job);
    dagi_http_stream_start(req, 200, "text/event-stream");
    struct timeval tv = {0, 0};
    evtimer_add(job->timer, &tv);
}

/* GET/POST /v1/test/clock: read or move the business clock. */
static void on_clock(struct dagi_http_req *req, void *ud)
{
    (void)ud;
    if (strcmp(dagi_http_req_method(req), "POST") == 0) {
        json_t *body;
        if (dagi_http_req_json(req, &body))
            return;
        json_t *offset = json_object_get(body, "offset_ms");
        if (!json_is_integer(offset)) {
            json_decref(body);
            dagi_http_respond_error(req, 400, "invalid_field", "offset_ms",
                                    "offset_ms must be an integer");
            return;
        }
        dagi_clock_set_offset_ms(json_integer_value(offset));
        json_decref(body);
    }
    dagi_http_respond_json(req, 200,
                           json_pack("{s:I,s:I}", "now_ms", (json_int_t)dagi_clock_now_ms(),
                                     "offset_ms", (json_int_t)dagi_clock_offset_ms()));
}

void dagi_testhooks_register(struct dagi_node *n)
{
    /* A process that must start at a chosen business time (a restart in the
     * middle of a test) reads it from the environment. */
    const char *offset = getenv("DAGI_TEST_CLOCK_OFFSET_MS");
    if (offset && *offset)
        dagi_clock_set_offset_ms(strtoll(offset, NULL, 10));
    const struct dagi_http_route routes[] = {
        /* Uploads of any size: the route's cap is 1 TiB. */
        {"POST", "/v1/test/sink", on_sink, n, DAGI_ROUTE_STREAM_BODY, (size_t)1 << 40, "admin", NULL},
        {"POST", "/v1/test/echo", on_echo, n, 0, 0, "admin", NULL},
        {"GET", "/v1/test/sse", on_sse, n, 0, 0, "admin", NULL},
        {"GET", "/v1/test/clock", on_clock, n, 0, 0, "admin", NULL},
        {"POST", "/v1/test/clock", on_clock, n, 0, 0, "admin", NULL},
    };
    for (size_t i = 0; i < DAGI_ARRAY_LEN(routes); i++)
        if (dagi_http_server_add_route(dagi_node_http(n), &routes[i]))
            abort();
    dagi_testhooks_bus_register(n);
    dagi_testhooks_store_register(n);
}

#else

void dagi_testhooks_register(struct dagi_node *n)
{
    (void)n;
}

#endif
