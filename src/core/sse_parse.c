/* Incremental text/event-stream parser (WHATWG HTML, "Parsing an event
 * stream").
 *
 * Bytes are split into lines here; a line that arrives whole inside one feed
 * is processed in place, and only the tail of a feed that ends mid-line is
 * copied into p->line.  The private state word holds two things that must
 * survive between feeds:
 *   - how far the optional UTF-8 BOM at the very start has been matched
 *     (the three BOM bytes can arrive in three separate feeds), and
 *   - whether the previous feed ended in CR, so that an LF opening the next
 *     feed is the second half of a CRLF and not an empty line (which would
 *     dispatch an event early).
 * Once a cap is hit the parser stays failed: the stream is out of sync and
 * every later feed returns DAGI_ETOOBIG. */
#include "sse_parse.h"

#include "err.h"

#include <stdbool.h>
#include <string.h>

enum {
    BOM_MATCHED_MASK = 0x3, /* BOM bytes matched so far (0..2) */
    BOM_DONE = 0x4,         /* past the start of the stream */
    AFTER_CR = 0x8,         /* the last byte seen was a CR */
    FAILED = 0x10,          /* a cap was hit; the stream cannot resync */
};

static const unsigned char bom[3] = {0xEF, 0xBB, 0xBF};

void dagi_sse_parser_init(struct dagi_sse_parser *p, size_t max_event)
{
    dagi_buf_init(&p->line, max_event);
    /* data holds the joined lines plus the LF appended after each one */
    dagi_buf_init(&p->data, max_event + 1);
    dagi_buf_init(&p->event, max_event);
    dagi_buf_init(&p->id, max_event);
    p->state = 0;
}

void dagi_sse_parser_release(struct dagi_sse_parser *p)
{
    dagi_buf_release(&p->line);
    dagi_buf_release(&p->data);
    dagi_buf_release(&p->event);
    dagi_buf_release(&p->id);
    p->state = 0;
}

static int dispatch(struct dagi_sse_parser *p, dagi_sse_event_fn on_event, void *ud)
{
    /* No data line since the last dispatch: nothing to deliver, but the event
     * name does not carry over to the next event.  The id does (spec). */
    if (p->data.len == 0) {
        dagi_buf_reset(&p->event);
        return 0;
    }
    /* every data line appended a trailing LF; the last one is not data */
    p->data.len--;
    p->data.data[p->data.len] = '\0';
    struct dagi_sse_event ev = {
        .event = p->event.len ? dagi_buf_str(&p->event) : "message",
        .data = dagi_buf_str(&p->data),
        .data_len = p->data.len,
        .id = dagi_buf_str(&p->id),
    };
    int rc = on_event(&ev, ud);
    dagi_buf_reset(&p->data);
    dagi_buf_reset(&p->event);
    return rc;
}

/* Marks the parser failed; only caps do this, never a callback's value. */
static int capped(struct dagi_sse_parser *p)
{
    p->state |= FAILED;
    return DAGI_ETOOBIG;
}

static bool field_is(const char *name, size_t name_len, const char *want)
{
    return name_len == strlen(want) && memcmp(name, want, name_len) == 0;
}

/* One complete line without its terminator. */
static int process_line(struct dagi_sse_parser *p, const char *line, size_t len,
                        dagi_sse_event_fn on_event, void *ud)
{
    if (len == 0)
        return dispatch(p, on_event, ud);
    if (line[0] == ':')
        return 0; /* comment; servers send these as keep-alives */

    const char *colon = memchr(line, ':', len);
    size_t name_len = colon ? (size_t)(colon - line) : len;
    const char *value = colon ? colon + 1 : line + len;
    size_t value_len = len - (size_t)(value - line);
    if (value_len > 0 && value[0] == ' ') {
        value++;
        value_len--;
    }

    if (field_is(line, name_len, "data")) {
        if (dagi_buf_append(&p->data, value, value_len) || dagi_buf_append_char(&p->data, '\n'))
            return capped(p);
    } else if (field_is(line, name_len, "event")) {
        dagi_buf_reset(&p->event);
        if (dagi_buf_append(&p->event, value, value_len))
            return capped(p);
    } else if (field_is(line, name_len, "id")) {
        /* an id with a NUL is ignored rather than truncated (spec) */
        if (!memchr(value, '\0', value_len)) {
            dagi_buf_reset(&p->id);
            if (dagi_buf_append(&p->id, value, value_len))
                return capped(p);
        }
    }
    /* "retry" is a reconnection hint for browsers; we never reconnect on our
     * own, so it is ignored along with unknown fields. */
    return 0;
}

/* Consumes a leading BOM, possibly spread over several feeds.  Returns the
 * number of input bytes eaten; bytes that looked like a BOM prefix but were
 * not one are pushed back into p->line as ordinary line content. */
static size_t skip_bom(struct dagi_sse_parser *p, const char *data, size_t len, int *rc)
{
    size_t i = 0;
    while (!(p->state & BOM_DONE) && i < len) {
        int matched = p->state & BOM_MATCHED_MASK;
        if ((unsigned char)data[i] == bom[matched]) {
            i++;
            if (matched + 1 == 3)
                p->state = (p->state & ~BOM_MATCHED_MASK) | BOM_DONE;
            else
                p->state = (p->state & ~BOM_MATCHED_MASK) | (matched + 1);
            continue;
        }
        p->state = (p->state & ~BOM_MATCHED_MASK) | BOM_DONE;
        if (matched > 0 && dagi_buf_append(&p->line, bom, (size_t)matched))
            *rc = capped(p);
    }
    return i;
}

int dagi_sse_feed(struct dagi_sse_parser *p, const char *data, size_t len,
                  dagi_sse_event_fn on_event, void *ud)
{
    int rc = 0;
    if (p->state & FAILED)
        return DAGI_ETOOBIG;

    size_t i = skip_bom(p, data, len, &rc);
    if (rc)
        goto out;

    while (i < len) {
        if (p->state & AFTER_CR) {
            p->state &= ~AFTER_CR;
            if (data[i] == '\n') {
                i++;
                continue;
            }
        }
        /* find the end of the line; CR and LF are the only terminators */
        size_t end = i;
        while (end < len && data[end] != '\n' && data[end] != '\r')
            end++;
        if (end == len) {
            if (dagi_buf_append(&p->line, data + i, len - i))
                rc = capped(p);
            goto out;
        }
        if (data[end] == '\r')
            p->state |= AFTER_CR;

        if (p->line.len == 0) {
            if (end - i > p->line.cap) {
                rc = capped(p);
                goto out;
            }
            rc = process_line(p, data + i, end - i, on_event, ud);
        } else {
            if (dagi_buf_append(&p->line, data + i, end - i)) {
                rc = capped(p);
                goto out;
            }
            rc = process_line(p, p->line.data, p->line.len, on_event, ud);
            dagi_buf_reset(&p->line);
        }
        i = end + 1;
        if (rc)
            goto out; /* a callback's stop, or a cap; the rest of this feed is dropped */
    }
out:
    return rc;
}
