/* The pure HTTP parser and chunked decoder: whole, partial and byte-by-byte
 * input, every rejection rule, smuggling shapes and caps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/http_parse.h"

static int parse(const char *s, struct dagi_http_request_head *h, size_t *used)
{
    return dagi_http_parse_request(s, strlen(s), h, used);
}

static void test_simple_request(void **state)
{
    struct dagi_http_request_head h;
    size_t used = 0;
    const char *req = "GET /a/b?x=1 HTTP/1.1\r\nHost: example\r\nX-Thing:  v  a \r\n\r\nBODY";
    assert_int_equal(parse(req, &h, &used), DAGI_OK);
    assert_int_equal(used, strlen(req) - 4);
    assert_int_equal(h.method_len, 3);
    assert_memory_equal(h.method, "GET", 3);
    assert_int_equal(h.target_len, 8);
    assert_memory_equal(h.target, "/a/b?x=1", 8);
    assert_int_equal(h.minor_version, 1);
    assert_int_equal(h.header_count, 2);
    assert_int_equal(h.headers[1].value_len, 4);
    assert_memory_equal(h.headers[1].value, "v  a", 4);
    const struct dagi_http_header *x = dagi_http_head_find(&h, "x-THING");
    assert_non_null(x);
    assert_null(dagi_http_head_find(&h, "missing"));
}

static void test_lf_only_and_leading_crlf(void **state)
{
    struct dagi_http_request_head h;
    size_t used;
    assert_int_equal(parse("\r\n\nGET / HTTP/1.0\nHost: a\n\n", &h, &used), DAGI_OK);
    assert_int_equal(h.minor_version, 0);
    assert_int_equal(h.header_count, 1);
    assert_int_equal(used, strlen("\r\n\nGET / HTTP/1.0\nHost: a\n\n"));
}

static void test_every_prefix_needs_more(void **state)
{
    const char *req = "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nA:\r\n\r\n";
    size_t len = strlen(req);
    struct dagi_http_request_head h;
    size_t used;
    for (size_t i = 0; i < len; i++) {
        char *copy = malloc(i + 1);
        memcpy(copy, req, i);
        assert_int_equal(dagi_http_parse_request(copy, i, &h, &used), DAGI_ENEEDMORE);
        free(copy);
    }
    assert_int_equal(dagi_http_parse_request(req, len, &h, &used), DAGI_OK);
    assert_int_equal(used, len);
    assert_int_equal(h.headers[2].value_len, 0);
}

static void test_rejections(void **state)
{
    static const char *const bad[] = {
        "GET  / HTTP/1.1\r\n\r\n",               /* double space */
        "GET / HTTP/1.1 \r\n\r\n",               /* trailing space */
        "GE(T / HTTP/1.1\r\n\r\n",               /* method not a token */
        "GET / HTTP/2.0\r\n\r\n",                /* not HTTP/1.x */
        "GET / http/1.1\r\n\r\n",                /* case */
        "GET / HTTP/1.x\r\n\r\n",
        "GET /\x01 HTTP/1.1\r\n\r\n",            /* control in target */
        "GET / HTTP/1.1\r\nHost : a\r\n\r\n",    /* space before colon */
        "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n",   /* obs-fold */
        "GET / HTTP/1.1\r\n Host: a\r\n\r\n",    /* whitespace before first header */
        "GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",     /* bare CR in value */
        "GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n",    /* DEL */
        "GET / HTTP/1.1\r\n: b\r\n\r\n",         /* empty name */
        "GET / HTTP/1.1\r\nA(b: c\r\n\r\n",      /* name not a token */
        "GET / HTTP/1.1\r\r\n\r\n",              /* CR CR LF */
        "\rGET / HTTP/1.1\r\n\r\n",
        " GET / HTTP/1.1\r\n\r\n",
    };
    struct dagi_http_request_head h;
    size_t used;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse(bad[i], &h, &used);
        if (rc != DAGI_EPARSE)
            fail_msg("case %zu accepted: %d", i, rc);
    }
    /* NUL in a value (strlen would stop at it, so pass the length). */
    static const char nul[] = "GET / HTTP/1.1\r\nA: b\0c\r\n\r\n";
    assert_int_equal(dagi_http_parse_request(nul, sizeof(nul) - 1, &h, &used), DAGI_EPARSE);
    /* Errors are reported before the head completes. */
    assert_int_equal(parse("GET / HTTP/1.1\r\nBad Header", &h, &used), DAGI_EPARSE);
}

static void test_header_count_cap(void **state)
{
    char buf[8192];
    size_t n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\n");
    for (int i = 0; i < DAGI_HTTP_MAX_HEADERS; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "H%d: v\r\n", i);
    struct dagi_http_request_head h;
    size_t used;
    char ok[8200];
    snprintf(ok, sizeof(ok), "%s\r\n", buf);
    assert_int_equal(parse(ok, &h, &used), DAGI_OK);
    assert_int_equal(h.header_count, DAGI_HTTP_MAX_HEADERS);
    snprintf(buf + n, sizeof(buf) - n, "Extra: 1\r\n\r\n");
    assert_int_equal(parse(buf, &h, &used), DAGI_ETOOBIG);
}

static int framing(const char *req, struct dagi_http_framing *f)
{
    struct dagi_http_request_head h;
    size_t used;
    assert_int_equal(parse(req, &h, &used), DAGI_OK);
    return dagi_http_body_framing(&h, f);
}

static void test_framing(void **state)
{
    struct dagi_http_framing f;
    assert_int_equal(framing("GET / HTTP/1.1\r\n\r\n", &f), DAGI_OK);
    assert_int_equal(f.kind, DAGI_HTTP_BODY_NONE);
    assert_int_equal(framing("POST / HTTP/1.1\r\nContent-Length: 42\r\n\r\n", &f), DAGI_OK);
    assert_int_equal(f.kind, DAGI_HTTP_BODY_LENGTH);
    assert_int_equal(f.length, 42);
    assert_int_equal(framing("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &f), DAGI_OK);
    assert_int_equal(f.kind, DAGI_HTTP_BODY_NONE);
    assert_int_equal(framing("POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n", &f),
                     DAGI_OK);
    assert_int_equal(framing("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &f), DAGI_OK);
    assert_int_equal(f.kind, DAGI_HTTP_BODY_CHUNKED);
    assert_int_equal(framing("POST / HTTP/1.1\r\nTransfer-Encoding: ChUnKeD \r\n\r\n", &f), DAGI_OK);

    static const char *const bad[] = {
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        /* smuggling: CL and TE together, either order */
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        /* chunked not last, twice, or TE in HTTP/1.0 */
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: \r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (framing(bad[i], &f) != DAGI_EPARSE)
            fail_msg("framing case %zu accepted", i);
    assert_int_equal(framing("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", &f),
                     DAGI_EUNAVAIL);
}

static void test_list_tokens(void **state)
{
    const char *v = "keep-alive , Upgrade;x=1,,close";
    assert_true(dagi_http_list_has_token(v, strlen(v), "close"));
    assert_true(dagi_http_list_has_token(v, strlen(v), "upgrade"));
    assert_true(dagi_http_list_has_token(v, strlen(v), "KEEP-ALIVE"));
    assert_false(dagi_http_list_has_token(v, strlen(v), "keep"));
}

/* Decodes a chunked body fed in pieces of `step` bytes; returns the status
 * and the decoded text in out. */
static int dechunk(const char *in, size_t len, size_t step, char *out, size_t *out_len,
                   size_t *tail)
{
    struct dagi_http_chunked c;
    dagi_http_chunked_init(&c);
    size_t pos = 0, o = 0;
    int rc = DAGI_ENEEDMORE;
    while (pos < len && rc == DAGI_ENEEDMORE) {
        size_t n = len - pos < step ? len - pos : step;
        size_t off = 0;
        while (off < n) {
            size_t used;
            const char *data;
            size_t dlen;
            rc = dagi_http_chunked_feed(&c, in + pos + off, n - off, &used, &data, &dlen);
            memcpy(out + o, data ? data : "", dlen);
            o += dlen;
            off += used;
            if (rc != DAGI_ENEEDMORE)
                break;
        }
        pos += off;
    }
    *out_len = o;
    *tail = len - pos;
    return rc;
}

static void test_chunked_ok(void **state)
{
    const char *body = "5\r\nhello\r\n6;ext=1;q=\"x\"\r\n world\r\nA\r\n0123456789\r\n"
                       "0\r\nTrailer: yes\r\n\r\nNEXT";
    for (size_t step = 1; step <= strlen(body); step++) {
        char out[64];
        size_t olen, tail;
        assert_int_equal(dechunk(body, strlen(body), step, out, &olen, &tail), DAGI_OK);
        assert_int_equal(olen, 21);
        assert_memory_equal(out, "hello world0123456789", 21);
        assert_int_equal(tail, 4);
    }
    char out[8];
    size_t olen, tail;
    assert_int_equal(dechunk("0\r\n\r\n", 5, 5, out, &olen, &tail), DAGI_OK);
    assert_int_equal(olen, 0);
    assert_int_equal(dechunk("3\r\nab", 5, 5, out, &olen, &tail), DAGI_ENEEDMORE);
}

static void test_chunked_bad(void **state)
{
    static const char *const bad[] = {
        "x\r\n",                   /* not hex */
        "\r\n",                    /* empty size */
        "5\nhello\r\n0\r\n\r\n",   /* bare LF after size */
        "5\r\nhelloX\r\n",         /* data longer than the size */
        "5\r\nhello\n0\r\n\r\n",   /* bare LF after data */
        "-1\r\n",
        "1 x\r\n",                 /* junk after BWS */
        "1;a\x01\r\n",             /* control in extension */
        "1;a\nb\r\n",              /* LF in extension */
        "1000000000000000\r\n",    /* 16 hex digits: overflow guard */
        "0\r\nbad header\r\n\r\n", /* trailer not name:value */
        "0\r\n x: y\r\n\r\n",      /* obs-fold in trailer */
        "0\r\nA: b\rc\r\n\r\n",
        "0\r\n\rX",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char out[64];
        size_t olen, tail;
        if (dechunk(bad[i], strlen(bad[i]), 1, out, &olen, &tail) != DAGI_EPARSE)
            fail_msg("chunked case %zu accepted", i);
    }
    /* An endless extension hits the line cap. */
    size_t n = DAGI_HTTP_CHUNK_LINE_MAX + 10;
    char *ext = malloc(n);
    memset(ext, 'a', n);
    memcpy(ext, "1;", 2);
    char out[8];
    size_t olen, tail;
    assert_int_equal(dechunk(ext, n, 4096, out, &olen, &tail), DAGI_EPARSE);
    free(ext);
    /* A huge (but representable) size just waits for data. */
    assert_int_equal(dechunk("fffffffffffffff\r\nab", 19, 19, out, &olen, &tail), DAGI_ENEEDMORE);
}

static void test_percent_decode(void **state)
{
    char out[64];
    size_t n;
    assert_int_equal(dagi_http_percent_decode("/a%20b%2Fc+d", 12, out, &n), DAGI_OK);
    assert_string_equal(out, "/a b/c+d");
    assert_int_equal(n, 8);
    assert_int_equal(dagi_http_percent_decode("/a%00", 5, out, &n), DAGI_EPARSE);
    assert_int_equal(dagi_http_percent_decode("/a%2", 4, out, &n), DAGI_EPARSE);
    assert_int_equal(dagi_http_percent_decode("/a%", 3, out, &n), DAGI_EPARSE);
    assert_int_equal(dagi_http_percent_decode("/a%zz", 5, out, &n), DAGI_EPARSE);
    assert_int_equal(dagi_http_form_decode("a+b%2B", 6, out, &n), DAGI_OK);
    assert_string_equal(out, "a b+");
}

static void test_query(void **state)
{
    const char *q = "a=1&b=x%20y+z&flag&c=&a=2&bad=%G0&long%20name=v";
    char out[64];
    size_t n;
    assert_int_equal(dagi_http_query_get(q, strlen(q), "a", out, sizeof(out), &n), DAGI_OK);
    assert_string_equal(out, "1");
    assert_int_equal(dagi_http_query_get(q, strlen(q), "b", out, sizeof(out), &n), DAGI_OK);
    assert_string_equal(out, "x y z");
    assert_int_equal(dagi_http_query_get(q, strlen(q), "flag", out, sizeof(out), &n), DAGI_OK);
    assert_string_equal(out, "");
    assert_int_equal(dagi_http_query_get(q, strlen(q), "c", out, sizeof(out), &n), DAGI_OK);
    assert_string_equal(out, "");
    assert_int_equal(dagi_http_query_get(q, strlen(q), "long name", out, sizeof(out), &n), DAGI_OK);
    assert_string_equal(out, "v");
    assert_int_equal(dagi_http_query_get(q, strlen(q), "zz", out, sizeof(out), &n), DAGI_ENOENT);
    assert_int_equal(dagi_http_query_get(q, strlen(q), "bad", out, sizeof(out), &n), DAGI_EPARSE);
    assert_int_equal(dagi_http_query_get(q, strlen(q), "b", out, 3, &n), DAGI_ETOOBIG);
}

static void test_content_length(void **state)
{
    uint64_t v;
    assert_int_equal(dagi_http_parse_content_length("0", 1, &v), DAGI_OK);
    assert_int_equal(v, 0);
    assert_int_equal(dagi_http_parse_content_length("123456789012345678", 18, &v), DAGI_OK);
    assert_int_equal(dagi_http_parse_content_length("1234567890123456789", 19, &v), DAGI_EPARSE);
    assert_int_equal(dagi_http_parse_content_length("1 2", 3, &v), DAGI_EPARSE);
    assert_int_equal(dagi_http_parse_content_length("", 0, &v), DAGI_EPARSE);
}

/* --- response heads --- */

static int parse_resp(const char *s, struct dagi_http_response_head *h, size_t *used)
{
    return dagi_http_parse_response(s, strlen(s), h, used);
}

static void test_response_simple(void **state)
{
    struct dagi_http_response_head h;
    size_t used = 0;
    const char *r = "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nX-A:  v \r\n\r\nabc";
    assert_int_equal(parse_resp(r, &h, &used), DAGI_OK);
    assert_int_equal(used, strlen(r) - 3);
    assert_int_equal(h.minor_version, 1);
    assert_int_equal(h.status, 404);
    assert_int_equal(h.reason_len, 9);
    assert_memory_equal(h.reason, "Not Found", 9);
    assert_int_equal(h.header_count, 2);
    const struct dagi_http_header *x = dagi_http_response_find(&h, "x-a");
    assert_non_null(x);
    assert_int_equal(x->value_len, 1);
    assert_null(dagi_http_response_find(&h, "missing"));

    /* no reason, with or without its SP; LF-only lines; HTTP/1.0 */
    assert_int_equal(parse_resp("HTTP/1.1 204\r\n\r\n", &h, &used), DAGI_OK);
    assert_int_equal(h.status, 204);
    assert_int_equal(h.reason_len, 0);
    assert_int_equal(parse_resp("HTTP/1.1 200 \r\n\r\n", &h, &used), DAGI_OK);
    assert_int_equal(parse_resp("HTTP/1.0 200 OK\nA: b\n\n", &h, &used), DAGI_OK);
    assert_int_equal(h.minor_version, 0);
    assert_int_equal(used, strlen("HTTP/1.0 200 OK\nA: b\n\n"));
    assert_int_equal(parse_resp("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", &h, &used),
                     DAGI_OK);
    assert_int_equal(h.status, 100);
    assert_int_equal(used, strlen("HTTP/1.1 100 Continue\r\n\r\n"));

    /* every prefix of a head needs more */
    const char *full = "HTTP/1.1 200 OK\r\nContent-Type: a\r\nB:\r\n\r\n";
    for (size_t i = 0; i < strlen(full); i++)
        assert_int_equal(dagi_http_parse_response(full, i, &h, &used), DAGI_ENEEDMORE);
}

static void test_response_rejections(void **state)
{
    static const char *const bad[] = {
        "\r\nHTTP/1.1 200 OK\r\n\r\n",          /* no empty lines first */
        "HTTP/2 200 OK\r\n\r\n",                /* not HTTP/1.x */
        "HTTP/1.1  200 OK\r\n\r\n",             /* double space */
        "HTTP/1.1 20 OK\r\n\r\n",               /* two digits */
        "HTTP/1.1 2000 OK\r\n\r\n",             /* four */
        "HTTP/1.1 099 Low\r\n\r\n",             /* below 100 */
        "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/1.1 200 O\x01K\r\n\r\n",          /* control in the reason */
        "HTTP/1.1 200 OK\rX\r\n\r\n",           /* bare CR */
        "HTTP/1.1 200 OK\r\nA : b\r\n\r\n",     /* space before colon */
        "HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n", /* obs-fold */
        "HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n",
        "HTTP/1.1 200 OK\r\n: b\r\n\r\n",
        "http/1.1 200 OK\r\n\r\n",
        "SSH-2.0-OpenSSH\r\n\r\n",
    };
    struct dagi_http_response_head h;
    size_t used;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse_resp(bad[i], &h, &used);
        if (rc != DAGI_EPARSE)
            fail_msg("response case %zu accepted: %d", i, rc);
    }
    static const char nul[] = "HTTP/1.1 200 OK\r\nA: b\0c\r\n\r\n";
    assert_int_equal(dagi_http_parse_response(nul, sizeof(nul) - 1, &h, &used), DAGI_EPARSE);
    /* errors show before the head is complete */
    assert_int_equal(parse_resp("HTTP/1.1 200 OK\r\nBad Header", &h, &used), DAGI_EPARSE);

    /* the header count cap */
    char buf[8192];
    size_t n = (size_t)snprintf(buf, sizeof(buf), "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i <= DAGI_HTTP_MAX_HEADERS; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "H%d: v\r\n", i);
    snprintf(buf + n, sizeof(buf) - n, "\r\n");
    assert_int_equal(parse_resp(buf, &h, &used), DAGI_ETOOBIG);
}

static int resp_framing(const char *r, bool head_request, struct dagi_http_framing *f)
{
    struct dagi_http_response_head h;
    size_t used;
    assert_int_equal(parse_resp(r, &h, &used), DAGI_OK);
    return dagi_http_response_framing(&h, head_request, f);
}

static void test_response_framing(void **state)
{
    struct dagi_http_framing f;
    assert_int_equal(resp_framing("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", false, &f),
                     DAGI_OK);
    assert_int_equal(f.kind, DAGI_HTTP_BODY_LENGTH);
    assert_int_equal(f.length, 7);
    assert_int_equal(resp_framing("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, &f),
                     DAGI_OK);
    assert_int_equal(f.kind, DAGI_HTTP_BODY_NONE);
    assert_int_equal(resp_framing("HTTP/1.1 200 OK\r\n\r\n", false, &f), DAGI_OK);
    assert_int_equal(f.kind, DAGI_HTTP_BODY_UNTIL_CLOSE);
    assert_int_equal(resp_framing("HTTP/1.0 200 OK\r\n\r\n", false, &f), DAGI_OK);
    assert_int_equal(f.kind, DAGI_HTTP_BODY_UNTIL_CLOSE);
    assert_int_equal(
        resp_framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, &f), DAGI_OK);
    assert_int_equal(f.kind, DAGI_HTTP_BODY_CHUNKED);
    /* no body, whatever the headers say */
    static const char *const none[] = {
        "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 100 Continue\r\n\r\n",
        "HTTP/1.1 204 No Content\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
        assert_int_equal(resp_framing(none[i], false, &f), DAGI_OK);
        assert_int_equal(f.kind, DAGI_HTTP_BODY_NONE);
    }
    assert_int_equal(resp_framing("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", true, &f),
                     DAGI_OK);
    assert_int_equal(f.kind, DAGI_HTTP_BODY_NONE);
    /* faulty framing is refused as in requests */
    static const char *const bad[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (resp_framing(bad[i], false, &f) != DAGI_EPARSE)
            fail_msg("response framing case %zu accepted", i);
    assert_int_equal(
        resp_framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false, &f),
        DAGI_EUNAVAIL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_request),   cmocka_unit_test(test_lf_only_and_leading_crlf),
        cmocka_unit_test(test_every_prefix_needs_more), cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_header_count_cap), cmocka_unit_test(test_framing),
        cmocka_unit_test(test_list_tokens),      cmocka_unit_test(test_chunked_ok),
        cmocka_unit_test(test_chunked_bad),      cmocka_unit_test(test_percent_decode),
        cmocka_unit_test(test_query),            cmocka_unit_test(test_content_length),
        cmocka_unit_test(test_response_simple),  cmocka_unit_test(test_response_rejections),
        cmocka_unit_test(test_response_framing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
