/* libFuzzer driver: the response-head parser and response framing, as the
 * native HTTP client uses them.  Byte 0 picks a split point and whether the
 * request was HEAD; the rest is the response.  Checks the parser's
 * promises: a complete head's every prefix needs more, slices stay inside
 * the input, and the status is three digits. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool head_request = data[0] & 0x80;
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    size_t split = len ? (data[0] & 0x7f) % len : 0;

    struct dagi_http_response_head h;
    size_t used = 0;
    int rc = dagi_http_parse_response(in, len, &h, &used);
    if (rc != DAGI_OK)
        return 0;
    if (used > len || h.status < 100 || h.status > 999 || h.header_count > DAGI_HTTP_MAX_HEADERS)
        __builtin_trap();
    /* a complete head is never complete earlier */
    if (split < used && dagi_http_parse_response(in, split, &h, &used) != DAGI_ENEEDMORE)
        __builtin_trap();
    rc = dagi_http_parse_response(in, len, &h, &used);
    for (size_t i = 0; i < h.header_count; i++) {
        const struct dagi_http_header *f = &h.headers[i];
        if (f->name < in || f->value < in || f->name + f->name_len > in + used ||
            f->value + f->value_len > in + used)
            __builtin_trap();
        dagi_http_list_has_token(f->value, f->value_len, "close");
    }
    dagi_http_response_find(&h, "content-length");
    struct dagi_http_framing framing;
    if (dagi_http_response_framing(&h, head_request, &framing) == DAGI_OK &&
        (head_request || h.status < 200) && framing.kind != DAGI_HTTP_BODY_NONE)
        __builtin_trap();

    /* what follows as a chunked body, in one go */
    struct dagi_http_chunked c;
    dagi_http_chunked_init(&c);
    const char *q = in + used;
    size_t left = len - used;
    while (left > 0) {
        const char *d;
        size_t dl, n;
        rc = dagi_http_chunked_feed(&c, q, left, &n, &d, &dl);
        q += n;
        left -= n;
        if (rc != DAGI_ENEEDMORE || n == 0)
            break;
    }
    return 0;
}
