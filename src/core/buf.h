/* A growable byte buffer with a cap fixed when it is made (curl's dynbuf).
 *
 * Appending past the cap fails with DAGI_ETOOBIG and leaves the buffer as it
 * was, so a parser fed by the network can never be talked into unbounded
 * growth.  The contents are always NUL-terminated (the NUL is not counted in
 * len), so a buffer of text can be handed to C string functions.
 *
 * Ownership: dagi_buf_init/dagi_buf_release for an embedded buffer;
 * dagi_buf_detach hands the bytes to the caller (free() them). */
#ifndef DAGI_BUF_H
#define DAGI_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct dagi_buf {
    char *data; /* NULL until the first append */
    size_t len;
    size_t alloc;
    size_t cap; /* maximum len */
};

void dagi_buf_init(struct dagi_buf *b, size_t cap);
void dagi_buf_release(struct dagi_buf *b);
void dagi_buf_reset(struct dagi_buf *b); /* len = 0, memory kept */
int dagi_buf_append(struct dagi_buf *b, const void *data, size_t len);
int dagi_buf_append_str(struct dagi_buf *b, const char *s);
int dagi_buf_append_char(struct dagi_buf *b, char c);
int dagi_buf_appendf(struct dagi_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int dagi_buf_vappendf(struct dagi_buf *b, const char *fmt, va_list ap);
/* Appends s as the inside of a JSON string (no quotes), escaping as needed. */
int dagi_buf_append_json_escaped(struct dagi_buf *b, const char *s, size_t len);
/* Drops the first n bytes. */
void dagi_buf_consume(struct dagi_buf *b, size_t n);
/* Returns the bytes (never NULL; "" when empty) and leaves b empty. */
char *dagi_buf_detach(struct dagi_buf *b, size_t *len_out);
/* The contents as a C string ("" when empty). */
static inline const char *dagi_buf_str(const struct dagi_buf *b)
{
    return b->data ? b->data : "";
}

#endif
