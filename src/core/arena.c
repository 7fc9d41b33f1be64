#include "arena.h"

#include "mem.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_BLOCK 4096u
#define ARENA_ALIGN 16u

struct block {
    struct block *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

struct dagi_arena {
    struct block *head;  /* where small allocations are carved from */
    struct block *first; /* the block made with the arena, kept by reset */
    size_t cap, used;
};

static struct block *block_new(size_t size)
{
    struct block *b = dagi_xmalloc(sizeof(*b) + size);
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

struct dagi_arena *dagi_arena_new(size_t cap)
{
    struct dagi_arena *a = dagi_xcalloc(1, sizeof(*a));
    a->cap = cap ? cap : (size_t)64 << 20;
    a->head = a->first = block_new(ARENA_BLOCK);
    return a;
}

void dagi_arena_reset(struct dagi_arena *a)
{
    struct block *b = a->head;
    while (b) {
        struct block *next = b->next;
        if (b != a->first)
            free(b);
        b = next;
    }
    a->first->used = 0;
    a->first->next = NULL;
    a->head = a->first;
    a->used = 0;
}

void dagi_arena_free(struct dagi_arena *a)
{
    if (!a)
        return;
    struct block *b = a->head;
    while (b) {
        struct block *next = b->next;
        free(b);
        b = next;
    }
    free(a);
}

void *dagi_arena_alloc(struct dagi_arena *a, size_t n)
{
    size_t rounded = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (rounded < n || rounded > a->cap - a->used)
        return NULL;
    struct block *b = a->head;
    if (b->size - b->used < rounded) {
        size_t size = rounded > ARENA_BLOCK / 4 ? rounded : ARENA_BLOCK;
        if (size == rounded) {
            /* A large allocation gets its own block behind the head, so the
             * head's free space is not thrown away. */
            struct block *big = block_new(size);
            big->used = size;
            big->next = b->next;
            b->next = big;
            a->used += rounded;
            return big->data;
        }
        struct block *nb = block_new(size);
        nb->next = b;
        a->head = nb;
        b = nb;
    }
    void *p = b->data + b->used;
    b->used += rounded;
    a->used += rounded;
    return p;
}

void *dagi_arena_zalloc(struct dagi_arena *a, size_t n)
{
    void *p = dagi_arena_alloc(a, n);
    if (p)
        memset(p, 0, n);
    return p;
}

char *dagi_arena_strndup(struct dagi_arena *a, const char *s, size_t n)
{
    if (n == SIZE_MAX)
        return NULL; /* n + 1 would wrap to a 0-byte allocation */
    char *p = dagi_arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *dagi_arena_strdup(struct dagi_arena *a, const char *s)
{
    return dagi_arena_strndup(a, s, strlen(s));
}

char *dagi_arena_sprintf(struct dagi_arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *p = dagi_arena_alloc(a, (size_t)n + 1);
    if (!p)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

size_t dagi_arena_used(const struct dagi_arena *a)
{
    return a->used;
}
