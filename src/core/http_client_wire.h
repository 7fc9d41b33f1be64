/* The HTTP/1.1 bytes of one exchange, for the native backend
 * (http_client_native.c): the request as it goes on the wire, and a reader
 * that turns response bytes into the call's callbacks.  Nothing here
 * touches a socket; the native backend moves the bytes and owns the
 * connection, these decide what they mean. */
#ifndef DAGI_HTTP_CLIENT_WIRE_H
#define DAGI_HTTP_CLIENT_WIRE_H

#include "http_client_internal.h"
#include "http_parse.h"

/* The whole request, head and body, in one malloc'd buffer (the caller
 * frees it).  Host, User-Agent and Accept (any type) are ours unless the
 * caller gives them; a caller header with an empty value is dropped (as
 * curl does); Content-Length is always ours, sent with a body and for
 * POST, PUT and PATCH; no Expect: 100-continue. */
char *http_wire_request(const struct dagi_http_request_opts *opts, const struct http_url *url,
                        const char *method, const char *user_agent, size_t *len_out);

enum http_read_result {
    HTTP_READ_MORE, /* all bytes used; the response goes on */
    HTTP_READ_DONE, /* the response is complete (see leftover) */
    HTTP_READ_STOP, /* the call was cancelled from a callback (call->cancelled), or
                     * failed: call->abort_err and abort_msg say why */
};

/* One response being read for a call; embedded in the native call. */
struct http_reader {
    struct dagi_http_call *call;
    const char *peer_host; /* for messages; must outlive the reader */
    unsigned peer_port;
    bool head_request;
    bool in_body;                     /* the final head is in */
    long status;                      /* of the final head, 0 before */
    bool keep_alive;                  /* the response lets the connection carry another */
    bool leftover;                    /* bytes followed the response: the connection is unusable */
    struct dagi_http_framing framing; /* .length counts down for LENGTH */
    struct dagi_http_chunked chunked;
    struct dagi_buf head; /* a head that came in pieces, capped at HTTP_MAX_HEADER_BYTES */
    size_t head_scanned;  /* how far head was searched for its end */
};

void http_reader_init(struct http_reader *r, struct dagi_http_call *call, bool head_request,
                      const char *peer_host, unsigned peer_port);
/* Back to the start, for another attempt of the same request. */
void http_reader_reset(struct http_reader *r);
void http_reader_release(struct http_reader *r);

/* Feeds the bytes of one read.  Interim 1xx responses are skipped; on the
 * final head the headers are stored and on_headers runs; body bytes go to
 * on_data or the capped buffer.  User callbacks run from here. */
enum http_read_result http_reader_feed(struct http_reader *r, const char *data, size_t len);

/* The server closed the connection: DONE when the body runs until close,
 * else STOP with the reason set (EIO: empty reply, cut head or body). */
enum http_read_result http_reader_eof(struct http_reader *r, size_t received);

#endif
