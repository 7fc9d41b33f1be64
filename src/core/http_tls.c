#include "http_tls.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>

/* OpenSSL's most recent error as text (and the queue emptied, so the next
 * failure does not report this one). */
static const char *ssl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    if (!e) {
        snprintf(buf, len, "unknown error");
    } else {
        const char *reason = ERR_reason_error_string(e);
        snprintf(buf, len, "%s", reason ? reason : "unknown error");
    }
    ERR_clear_error();
    return buf;
}

int dagi_http_tls_ctx_new(const char *cert_file, const char *key_file, void **ctx_out,
                          struct dagi_error *err)
{
    char why[256];
    int rc = DAGI_OK;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return dagi_error_set(err, DAGI_EIO, "tls: cannot create a context: %s",
                              ssl_reason(why, sizeof(why)));
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* No renegotiation and no compression (CRIME); prefer our cipher order. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        rc = dagi_error_set(err, DAGI_EINVAL, "tls: cannot load certificate %s: %s", cert_file,
                            ssl_reason(why, sizeof(why)));
        goto out;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        rc = dagi_error_set(err, DAGI_EINVAL, "tls: cannot load private key %s: %s", key_file,
                            ssl_reason(why, sizeof(why)));
        goto out;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        rc = dagi_error_set(err, DAGI_EINVAL, "tls: private key %s does not match %s: %s",
                            key_file, cert_file, ssl_reason(why, sizeof(why)));
        goto out;
    }
out:
    if (rc) {
        SSL_CTX_free(ctx);
        return rc;
    }
    *ctx_out = ctx;
    return DAGI_OK;
}

void dagi_http_tls_ctx_free(void *ctx)
{
    SSL_CTX_free(ctx);
}

struct bufferevent *dagi_http_tls_wrap(struct event_base *base, void *ctx, evutil_socket_t fd)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        return NULL;
    struct bufferevent *bev = bufferevent_openssl_socket_new(base, fd, ssl,
                                                             BUFFEREVENT_SSL_ACCEPTING,
                                                             BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    /* Clients that drop the TCP connection without close_notify are common;
     * treat it as EOF rather than an error. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}
