/* Pure HTTP/1.1 parsing (RFC 9112): request and response heads, chunked
 * bodies, body framing, percent-decoding and query lookup.
 *
 * Every function here takes bytes and returns DAGI_OK / DAGI_ENEEDMORE /
 * DAGI_EPARSE (or DAGI_ETOOBIG over a cap); none touches a socket or
 * allocates.  Results are slices pointing into the caller's buffer, valid as
 * long as that buffer is.  The server (http_server.c), the native HTTP client
 * (http_client_native.c) and the fuzz drivers (tests/fuzz/fuzz_http_parse.c,
 * fuzz_http_response.c) are the callers.
 *
 * Strictness is deliberate: anything two parsers could read differently
 * (bare CR, whitespace before a colon, obs-fold, CL with TE, conflicting CLs,
 * sloppy chunk lines) is an error, because those are the request-smuggling
 * vectors when dagi sits behind a proxy. */
#ifndef DAGI_HTTP_PARSE_H
#define DAGI_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define DAGI_HTTP_MAX_HEADERS 100

struct dagi_http_header {
    const char *name; /* a token; not NUL-terminated */
    size_t name_len;
    const char *value; /* leading and trailing whitespace trimmed */
    size_t value_len;
};

struct dagi_http_request_head {
    const char *method; /* a token */
    size_t method_len;
    const char *target; /* raw request-target, as sent */
    size_t target_len;
    int minor_version; /* HTTP/1.<minor>; 0 or 1 */
    size_t header_count;
    struct dagi_http_header headers[DAGI_HTTP_MAX_HEADERS];
};

/* Parses a request line and header section from the start of buf.
 *   DAGI_OK        complete; *consumed = bytes up to and including the blank line
 *   DAGI_ENEEDMORE the bytes so far are a valid prefix
 *   DAGI_EPARSE    malformed (answer 400)
 *   DAGI_ETOOBIG   more than DAGI_HTTP_MAX_HEADERS headers (answer 431)
 * Lines may end in CRLF or LF; empty lines before the request line are
 * skipped (RFC 9112 §2.2).  Invalid bytes are reported as soon as they are
 * seen, before the head is complete.  *out and *consumed are set only on OK. */
int dagi_http_parse_request(const char *buf, size_t len, struct dagi_http_request_head *out,
                            size_t *consumed);

/* Case-insensitive lookup of the first header named `name`; NULL if none. */
const struct dagi_http_header *dagi_http_head_find(const struct dagi_http_request_head *h,
                                                   const char *name);

struct dagi_http_response_head {
    int minor_version;  /* HTTP/1.<minor> */
    int status;         /* three digits, 100-999 */
    const char *reason; /* may be empty; clients should not act on it */
    size_t reason_len;
    size_t header_count;
    struct dagi_http_header headers[DAGI_HTTP_MAX_HEADERS];
};

/* Parses a status line and header section from the start of buf, with the
 * returns, caps and header rules of dagi_http_parse_request (DAGI_EPARSE
 * for a malformed head, DAGI_ETOOBIG over DAGI_HTTP_MAX_HEADERS).  Unlike a
 * request, no empty lines may precede the status line; the reason phrase may
 * be empty and its SP left out ("HTTP/1.1 204\r\n").  A 1xx head is parsed
 * like any other: skipping interim responses is the caller's business. */
int dagi_http_parse_response(const char *buf, size_t len, struct dagi_http_response_head *out,
                             size_t *consumed);

const struct dagi_http_header *dagi_http_response_find(const struct dagi_http_response_head *h,
                                                       const char *name);

/* True when the comma-separated header list `value` contains `token`
 * (case-insensitive), as in "Connection: keep-alive, Upgrade". */
bool dagi_http_list_has_token(const char *value, size_t len, const char *token);

/* --- body framing (RFC 9112 §6) --- */
enum dagi_http_body_kind {
    DAGI_HTTP_BODY_NONE,        /* no body */
    DAGI_HTTP_BODY_LENGTH,      /* Content-Length bytes */
    DAGI_HTTP_BODY_CHUNKED,     /* Transfer-Encoding: chunked */
    DAGI_HTTP_BODY_UNTIL_CLOSE, /* responses only: the body ends when the connection does */
};

struct dagi_http_framing {
    enum dagi_http_body_kind kind;
    uint64_t length; /* for DAGI_HTTP_BODY_LENGTH */
};

/* Decides how the request body is delimited.
 *   DAGI_OK      *out set
 *   DAGI_EPARSE  answer 400 and close: a Content-Length that is not all
 *                digits or overflows, two different Content-Lengths,
 *                Content-Length together with Transfer-Encoding, a
 *                Transfer-Encoding whose last coding is not chunked, chunked
 *                twice, or any Transfer-Encoding on an HTTP/1.0 request
 *   DAGI_EUNAVAIL answer 501: chunked is last but another (unknown) coding
 *                precedes it (we implement no content codings) */
int dagi_http_body_framing(const struct dagi_http_request_head *h, struct dagi_http_framing *out);

/* Decides how a response body is delimited (RFC 9112 §6.3), given whether
 * it answers a HEAD request.  The header rules and errors are those of
 * dagi_http_body_framing; then HEAD, 1xx, 204 and 304 have no body
 * (DAGI_HTTP_BODY_NONE), and a response with neither Content-Length nor
 * Transfer-Encoding runs until the connection closes
 * (DAGI_HTTP_BODY_UNTIL_CLOSE). */
int dagi_http_response_framing(const struct dagi_http_response_head *h, bool head_request,
                               struct dagi_http_framing *out);

/* --- chunked transfer decoding --- */
struct dagi_http_chunked {
    int state;
    uint64_t remaining;  /* data bytes left in the current chunk */
    size_t line_len;     /* bytes in the current size/extension/trailer line */
    size_t trailer_len;  /* bytes in the trailer section so far */
    unsigned digits;     /* hex digits of the current chunk size */
};

/* Caps on the framing around the data (not on the data itself: the caller
 * counts decoded bytes against its body cap). */
#define DAGI_HTTP_CHUNK_LINE_MAX 4096
#define DAGI_HTTP_TRAILER_MAX 8192

void dagi_http_chunked_init(struct dagi_http_chunked *c);

/* Feeds bytes.  Processes input until it has a span of decoded data to hand
 * back, needs more input, or the body ends:
 *   *consumed  bytes of `in` used (always set)
 *   *data, *data_len  a span of decoded body inside `in` (len 0 if none)
 * Returns DAGI_OK once the last chunk and the trailers are complete (bytes
 * after *consumed belong to the next request), DAGI_ENEEDMORE otherwise (call
 * again with the unconsumed rest, or with more bytes when all was used), or
 * DAGI_EPARSE.  Chunk lines must end in CRLF exactly; chunk extensions are
 * checked for stray control bytes and skipped; trailers are validated like
 * headers and dropped. */
int dagi_http_chunked_feed(struct dagi_http_chunked *c, const char *in, size_t len,
                           size_t *consumed, const char **data, size_t *data_len);
bool dagi_http_chunked_done(const struct dagi_http_chunked *c);

/* --- helpers --- */

/* Percent-decodes a path (or a path segment) into out, which must hold
 * len + 1 bytes; the result is NUL-terminated.  '+' stays '+'.  Rejects bad
 * escapes and %00 with DAGI_EPARSE (a NUL would cut the C string short and
 * let "/admin%00.json" look like two different paths). */
int dagi_http_percent_decode(const char *in, size_t len, char *out, size_t *out_len);

/* Like dagi_http_percent_decode, and '+' becomes a space
 * (application/x-www-form-urlencoded query components). */
int dagi_http_form_decode(const char *in, size_t len, char *out, size_t *out_len);

/* Finds parameter `name` in a raw query string ("a=1&b=x%20y", no '?') and
 * decodes its value into out (out_cap bytes including the NUL).  A
 * parameter without '=' has the value "".  DAGI_OK, DAGI_ENOENT,
 * DAGI_EPARSE (bad escape in the value) or DAGI_ETOOBIG (out too small). */
int dagi_http_query_get(const char *query, size_t len, const char *name, char *out,
                        size_t out_cap, size_t *out_len);

/* Content-Length value check: 1*DIGIT, no sign, no spaces, fits in 63 bits. */
int dagi_http_parse_content_length(const char *value, size_t len, uint64_t *out);

#endif
