/* TLS for the HTTP server (private to it): an SSL_CTX from PEM files and
 * bufferevents that accept TLS on a fresh socket.  When a server has both a
 * certificate and a key it speaks HTTPS only; there is no plaintext fallback
 * on the same port. */
#ifndef DAGI_HTTP_TLS_H
#define DAGI_HTTP_TLS_H

#include <event2/util.h>

#include "err.h"

struct event_base;
struct bufferevent;

/* TLS 1.2 and later.  Errors name the file and carry OpenSSL's reason.
 * *ctx_out is an SSL_CTX * (void * keeps OpenSSL out of the includer). */
int dagi_http_tls_ctx_new(const char *cert_file, const char *key_file, void **ctx_out,
                          struct dagi_error *err);
void dagi_http_tls_ctx_free(void *ctx);
/* A server-side TLS bufferevent owning fd (closed when it is freed), or NULL
 * (fd is then still the caller's). */
struct bufferevent *dagi_http_tls_wrap(struct event_base *base, void *ctx, evutil_socket_t fd);

#endif
