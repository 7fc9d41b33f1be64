/* Private to src/store: what db.c shares with the backends (git's
 * refs-internal.h), and what the backends share with each other.  Nothing
 * outside src/store includes this.
 *
 * Each backend embeds the common heads below as the *first* member of its
 * own structs, so db.c can dispatch through ->ops without knowing them:
 *
 *   struct sqlite_db { struct dagi_db base; ... };
 *
 * Rows are not in the public ops table (their calls take only a rows
 * pointer), so they carry their own small ops table. */
#ifndef DAGI_STORE_DB_INTERNAL_H
#define DAGI_STORE_DB_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "store/db.h"

struct dagi_db {
    const struct dagi_db_ops *ops;
};

struct dagi_db_conn {
    struct dagi_db *db;
};

struct dagi_db_rows_ops {
    int (*next)(struct dagi_db_rows *rows, struct dagi_error *err);
    size_t (*columns)(struct dagi_db_rows *rows);
    bool (*col_null)(struct dagi_db_rows *rows, size_t col);
    int64_t (*col_int)(struct dagi_db_rows *rows, size_t col);
    double (*col_double)(struct dagi_db_rows *rows, size_t col);
    const char *(*col_text)(struct dagi_db_rows *rows, size_t col, size_t *len);
    const void *(*col_blob)(struct dagi_db_rows *rows, size_t col, size_t *len);
    void (*free)(struct dagi_db_rows *rows);
};

struct dagi_db_rows {
    const struct dagi_db_rows_ops *ops;
};

/* A fixed set of numbered slots handed out to one taker at a time: the
 * connection pool of both backends (slot i = connection i), and with n = 1
 * the SQLite writer token.  The lowest free slot is handed out first, so
 * lazily opened connections are reused before new ones are opened. */
struct dagi_db_slots {
    pthread_mutex_t lock;
    pthread_cond_t freed; /* CLOCK_MONOTONIC */
    unsigned n;
    bool *busy;
};

void dagi_db_slots_init(struct dagi_db_slots *s, unsigned n);
void dagi_db_slots_release(struct dagi_db_slots *s);
/* Waits up to timeout_ms for a free slot; DAGI_EAGAIN when none came. */
int dagi_db_slots_take(struct dagi_db_slots *s, unsigned timeout_ms, unsigned *index);
void dagi_db_slots_give(struct dagi_db_slots *s, unsigned index);

/* Error mapping shared by the backends: engine code -> dagi_err. */
int dagi_db_code_from_sqlite(int extended_rc);
int dagi_db_code_from_sqlstate(const char *sqlstate);
/* Sets err to "<what>: <engine message>" (trailing newlines, which libpq
 * adds, are trimmed; `what` may be NULL) and returns code. */
int dagi_db_fail(struct dagi_error *err, int code, const char *what, const char *engine_message);

/* An intrusive LRU list, most recently used first: the statement cache of
 * each backend.  An entry embeds a struct dagi_lru_link and is found again
 * from it with container_of.  The list never allocates or frees; a zeroed
 * struct dagi_lru is empty and a zeroed link is unlinked. */
struct dagi_lru_link {
    struct dagi_lru_link *prev, *next;
};

struct dagi_lru {
    struct dagi_lru_link *head, *tail;
};

#define container_of(p, type, member) ((type *)(void *)((char *)(p)-offsetof(type, member)))

/* Takes e out of the list; its links are NULL after. */
static inline void dagi_lru_unlink(struct dagi_lru *l, struct dagi_lru_link *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        l->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        l->tail = e->prev;
    e->prev = e->next = NULL;
}

/* Puts an unlinked e first (the most recently used). */
static inline void dagi_lru_push_front(struct dagi_lru *l, struct dagi_lru_link *e)
{
    e->next = l->head;
    if (l->head)
        l->head->prev = e;
    l->head = e;
    if (!l->tail)
        l->tail = e;
}

#define DAGI_DB_DEFAULT_POOL 4
#define DAGI_DB_DEFAULT_BUSY_MS 5000

#endif
