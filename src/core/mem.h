/* Allocation wrappers that abort on failure (see the policy in err.h).
 * Use them for internal bookkeeping; size anything driven by input through a
 * capped dagi_buf or a dagi_arena instead. */
#ifndef DAGI_MEM_H
#define DAGI_MEM_H

#include <stddef.h>

void *dagi_xmalloc(size_t n);
void *dagi_xcalloc(size_t count, size_t size);
void *dagi_xrealloc(void *p, size_t n);
char *dagi_xstrdup(const char *s);
char *dagi_xstrndup(const char *s, size_t n);
/* printf into a freshly allocated string; the caller frees it. */
char *dagi_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define DAGI_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
