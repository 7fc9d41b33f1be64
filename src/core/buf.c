#include "buf.h"

#include "err.h"
#include "mem.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dagi_buf_init(struct dagi_buf *b, size_t cap)
{
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    b->cap = cap;
}

void dagi_buf_release(struct dagi_buf *b)
{
    free(b->data);
    dagi_buf_init(b, b->cap);
}

void dagi_buf_reset(struct dagi_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static int ensure(struct dagi_buf *b, size_t extra)
{
    if (extra > b->cap || b->len > b->cap - extra)
        return DAGI_ETOOBIG;
    size_t need = b->len + extra + 1;
    if (need <= b->alloc)
        return DAGI_OK;
    size_t n = b->alloc ? b->alloc : 64;
    while (n < need)
        n = n > (SIZE_MAX / 2) ? need : n * 2;
    if (n > b->cap + 1)
        n = b->cap + 1;
    b->data = dagi_xrealloc(b->data, n);
    b->alloc = n;
    return DAGI_OK;
}

int dagi_buf_append(struct dagi_buf *b, const void *data, size_t len)
{
    int rc = ensure(b, len);
    if (rc)
        return rc;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return DAGI_OK;
}

int dagi_buf_append_str(struct dagi_buf *b, const char *s)
{
    return dagi_buf_append(b, s, strlen(s));
}

int dagi_buf_append_char(struct dagi_buf *b, char c)
{
    return dagi_buf_append(b, &c, 1);
}

__attribute__((format(printf, 2, 0))) int dagi_buf_vappendf(struct dagi_buf *b, const char *fmt,
                                                             va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return DAGI_EINVAL;
    int rc = ensure(b, (size_t)n);
    if (rc)
        return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return DAGI_OK;
}

int dagi_buf_appendf(struct dagi_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = dagi_buf_vappendf(b, fmt, ap);
    va_end(ap);
    return rc;
}

/* Puts the buffer back to `len` bytes: a composite append that fails part way
 * leaves the buffer as it was, like a single append does. */
static int undo(struct dagi_buf *b, size_t len, int rc)
{
    b->len = len;
    if (b->data)
        b->data[len] = '\0';
    return rc;
}

int dagi_buf_append_json_escaped(struct dagi_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = 0, old_len = b->len;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[7];
        if (c == '"')
            esc = "\\\"";
        else if (c == '\\')
            esc = "\\\\";
        else if (c == '\n')
            esc = "\\n";
        else if (c == '\r')
            esc = "\\r";
        else if (c == '\t')
            esc = "\\t";
        else if (c < 0x20 || c == 0x7f) {
            u[0] = '\\', u[1] = 'u', u[2] = '0', u[3] = '0';
            u[4] = hex[c >> 4], u[5] = hex[c & 15], u[6] = '\0';
            esc = u;
        }
        if (!esc)
            continue;
        int rc = dagi_buf_append(b, s + start, i - start);
        if (!rc)
            rc = dagi_buf_append_str(b, esc);
        if (rc)
            return undo(b, old_len, rc);
        start = i + 1;
    }
    int rc = dagi_buf_append(b, s + start, len - start);
    return rc ? undo(b, old_len, rc) : DAGI_OK;
}

void dagi_buf_consume(struct dagi_buf *b, size_t n)
{
    if (n >= b->len) {
        dagi_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

char *dagi_buf_detach(struct dagi_buf *b, size_t *len_out)
{
    char *p = b->data ? b->data : dagi_xstrdup("");
    if (len_out)
        *len_out = b->len;
    dagi_buf_init(b, b->cap);
    return p;
}
