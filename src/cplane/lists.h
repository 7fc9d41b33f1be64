/* Allow and block lists (seed 1.2), the "lists" document of the config
 * registry:
 *
 *     lists:
 *       - id: banned                # unique
 *         type: block               # block | allow
 *         of: principal             # principal | team
 *         agents: [helion]          # only requests to these agents; empty = all
 *         entries: ["tg:666", "user:mallory"]
 *
 * A request is refused when its principal (or its team) is on a block list
 * that applies to the agent, or when an allow list of that kind applies to
 * the agent and does not hold it.  The admin key is never refused: a list
 * cannot lock the operator out.  Entries ending in "*" match a prefix. */
#ifndef DAGI_CPLANE_LISTS_H
#define DAGI_CPLANE_LISTS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"

enum dagi_list_type { DAGI_LIST_BLOCK, DAGI_LIST_ALLOW };
enum dagi_list_of { DAGI_LIST_OF_PRINCIPAL, DAGI_LIST_OF_TEAM };

struct dagi_list {
    char *id;
    int type; /* enum dagi_list_type */
    int of;   /* enum dagi_list_of */
    struct dagi_cfg_strings agents;
    struct dagi_cfg_strings entries;
};

struct dagi_lists {
    const struct dagi_list *items;
    size_t count;
};

extern const struct dagi_cfg_schema dagi_lists_schema;

int dagi_lists_load(const char *name, const char *text, size_t len, struct dagi_arena *arena,
                    struct dagi_lists *out, struct dagi_cfg_errors *errs);
/* NULL when the request may go on, else the id of the list that refuses it
 * (borrowed from lists). */
const char *dagi_lists_refuse(const struct dagi_lists *lists, const char *principal,
                              const char *team, const char *agent);

#endif
