#include "mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void out_of_memory(size_t n)
{
    /* No logging machinery here: it may itself need memory. */
    fprintf(stderr, "dagi: fatal: out of memory allocating %zu bytes\n", n);
    abort();
}

void *dagi_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        out_of_memory(n);
    return p;
}

void *dagi_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        out_of_memory(count * size);
    return p;
}

void *dagi_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        out_of_memory(n);
    return q;
}

char *dagi_xstrdup(const char *s)
{
    return dagi_xstrndup(s, strlen(s));
}

char *dagi_xstrndup(const char *s, size_t n)
{
    char *p = dagi_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *dagi_xasprintf(const char *fmt, ...)
{
    char *p;
    va_list ap;
    va_start(ap, fmt);
    /* vasprintf rather than vsnprintf(NULL, 0, ..): gcc 12 under UBSan
     * mistakes the NULL buffer for a NULL format. */
    int n = vasprintf(&p, fmt, ap);
    va_end(ap);
    if (n < 0)
        out_of_memory(0);
    return p;
}
