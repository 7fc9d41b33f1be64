/* A per-request (or per-document) arena: many small allocations, freed in one
 * go.  Each arena has a cap on the total bytes it hands out; over the cap an
 * allocation returns NULL, which callers turn into DAGI_ETOOBIG.
 *
 * Not thread safe: an arena belongs to one request on one thread at a time. */
#ifndef DAGI_ARENA_H
#define DAGI_ARENA_H

#include <stdarg.h>
#include <stddef.h>

struct dagi_arena;

/* cap = 0 means 64 MiB.  Aborts on out of memory like dagi_xmalloc. */
struct dagi_arena *dagi_arena_new(size_t cap);
void dagi_arena_free(struct dagi_arena *a);
/* Frees every allocation but keeps the first block for reuse. */
void dagi_arena_reset(struct dagi_arena *a);
/* 16-byte aligned; NULL when the cap would be passed. */
void *dagi_arena_alloc(struct dagi_arena *a, size_t n);
void *dagi_arena_zalloc(struct dagi_arena *a, size_t n);
char *dagi_arena_strdup(struct dagi_arena *a, const char *s);
char *dagi_arena_strndup(struct dagi_arena *a, const char *s, size_t n);
char *dagi_arena_sprintf(struct dagi_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Bytes handed out so far. */
size_t dagi_arena_used(const struct dagi_arena *a);

#endif
