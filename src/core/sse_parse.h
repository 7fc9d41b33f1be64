/* A pure, incremental parser of Server-Sent Events (text/event-stream), as
 * the WHATWG HTML standard defines them: lines end in LF, CR or CRLF; "data"
 * lines join with LF; a blank line dispatches; comments start with ':'.
 * Used by the HTTP client to read model providers' token streams. */
#ifndef DAGI_SSE_PARSE_H
#define DAGI_SSE_PARSE_H

#include <stddef.h>

#include "buf.h"

struct dagi_sse_event {
    const char *event; /* "message" when the stream named none */
    const char *data;  /* joined data lines, NUL-terminated */
    size_t data_len;
    const char *id; /* last event id seen, "" if none */
};

/* Return nonzero to stop parsing; dagi_sse_feed then returns that value. */
typedef int (*dagi_sse_event_fn)(const struct dagi_sse_event *ev, void *ud);

struct dagi_sse_parser {
    struct dagi_buf line, data, event, id;
    int state; /* private */
};

/* max_event caps one line and one event's data (DAGI_ETOOBIG past it). */
void dagi_sse_parser_init(struct dagi_sse_parser *p, size_t max_event);
void dagi_sse_parser_release(struct dagi_sse_parser *p);
/* Feeds bytes; calls on_event for each complete event.  Returns 0, the
 * callback's nonzero value, or DAGI_ETOOBIG. */
int dagi_sse_feed(struct dagi_sse_parser *p, const char *data, size_t len, dagi_sse_event_fn on_event,
                  void *ud);

#endif
