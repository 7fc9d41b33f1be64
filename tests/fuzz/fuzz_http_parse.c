/* libFuzzer driver: the request-head parser, body framing, and the chunked
 * decoder fed in two pieces split at a position taken from the input. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t split = data[0] % (size);
    const char *in = (const char *)data + 1;
    size_t len = size - 1;

    struct dagi_http_request_head h;
    size_t used = 0;
    int rc = dagi_http_parse_request(in, split < len ? split : len, &h, &used);
    rc = dagi_http_parse_request(in, len, &h, &used);
    if (rc == DAGI_OK) {
        struct dagi_http_framing f;
        dagi_http_body_framing(&h, &f);
        for (size_t i = 0; i < h.header_count; i++)
            dagi_http_list_has_token(h.headers[i].value, h.headers[i].value_len, "close");
        char out[4096];
        size_t n;
        if (h.target_len < sizeof(out)) {
            dagi_http_percent_decode(h.target, h.target_len, out, &n);
            dagi_http_query_get(h.target, h.target_len, "a", out, sizeof(out), &n);
        }
    } else {
        used = 0; /* treat the whole input as a chunked body too */
    }

    /* The rest (or everything) as a chunked body, in two pieces. */
    struct dagi_http_chunked c;
    dagi_http_chunked_init(&c);
    const char *body = in + used;
    size_t blen = len - used, cut = split < blen ? split : blen;
    size_t pieces[2][2] = {{0, cut}, {cut, blen - cut}};
    for (int p = 0; p < 2; p++) {
        const char *q = body + pieces[p][0];
        size_t left = pieces[p][1];
        while (left > 0) {
            const char *d;
            size_t dl;
            rc = dagi_http_chunked_feed(&c, q, left, &used, &d, &dl);
            if (dl && (d < q || d + dl > q + used))
                __builtin_trap(); /* a span outside what was consumed */
            q += used;
            left -= used;
            if (rc != DAGI_ENEEDMORE)
                return 0;
        }
    }
    return 0;
}
