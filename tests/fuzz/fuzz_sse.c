/* SSE parser fuzz driver: the first byte picks where the rest is split in
 * two feeds, so CR/LF pairs and BOMs straddling a feed boundary get tested. */
#include <stddef.h>
#include <stdint.h>

#include "core/sse_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_event(const struct dagi_sse_event *ev, void *ud)
{
    (void)ud;
    return ev->data_len > 0 && ev->data[ev->data_len] != '\0'; /* never true */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t split = data[0] % size; /* 0..size-1 bytes of the rest */
    const char *rest = (const char *)data + 1;
    struct dagi_sse_parser p;
    dagi_sse_parser_init(&p, 256);
    if (dagi_sse_feed(&p, rest, split, on_event, NULL) == 0)
        dagi_sse_feed(&p, rest + split, size - 1 - split, on_event, NULL);
    dagi_sse_parser_release(&p);
    return 0;
}
