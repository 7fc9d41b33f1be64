/* Allow and block lists (lists.h). */
#include "cplane/lists.h"

#include <stddef.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"

static const char *const type_names[] = {"block", "allow", NULL};
static const char *const of_names[] = {"principal", "team", NULL};

static const struct dagi_cfg_field list_fields[] = {
    {"id", DAGI_CFG_STRING, offsetof(struct dagi_list, id), NULL, 1, 64, NULL, NULL,
     DAGI_CFG_REQUIRED, "The list's name (named in refusals)."},
    {"type", DAGI_CFG_ENUM, offsetof(struct dagi_list, type), NULL, 0, 0, type_names, NULL,
     DAGI_CFG_REQUIRED, "block: entries are refused; allow: only entries may go on."},
    {"of", DAGI_CFG_ENUM, offsetof(struct dagi_list, of), "principal", 0, 0, of_names, NULL, 0,
     "What the entries are: principals (user:<id>, tg:<id>) or teams."},
    {"agents", DAGI_CFG_STRING_LIST, offsetof(struct dagi_list, agents), NULL, 0, 10000, NULL,
     NULL, 0, "The agents it applies to; empty = every agent."},
    {"entries", DAGI_CFG_STRING_LIST, offsetof(struct dagi_list, entries), NULL, 0, 1000000,
     NULL, NULL, 0, "Principals or teams; a trailing * matches a prefix."},
};
static const struct dagi_cfg_schema list_schema = {
    "list", "An allow or block list.", sizeof(struct dagi_list), list_fields,
    DAGI_ARRAY_LEN(list_fields), NULL};

struct lists_file {
    int64_t version;
    struct dagi_cfg_list lists;
};

static void check_file(void *record, struct dagi_cfg_ctx *ctx)
{
    const struct lists_file *file = record;
    const struct dagi_list *l = file->lists.items;
    for (size_t i = 0; i < file->lists.count; i++)
        for (size_t j = 0; j < i; j++)
            if (!strcmp(l[i].id, l[j].id))
                dagi_cfg_report(ctx, "lists", "list \"%s\" is defined twice (lists[%zu], [%zu])",
                                l[i].id, j, i);
}

static const struct dagi_cfg_field file_fields[] = {
    {"version", DAGI_CFG_INT, offsetof(struct lists_file, version), "1", 0, 0, NULL, NULL, 0,
     "Format version (1)."},
    {"lists", DAGI_CFG_LIST, offsetof(struct lists_file, lists), NULL, 0, 1000, NULL,
     &list_schema, 0, "The lists."},
};
const struct dagi_cfg_schema dagi_lists_schema = {
    "lists.yml", "Allow and block lists.", sizeof(struct lists_file), file_fields,
    DAGI_ARRAY_LEN(file_fields), check_file};

int dagi_lists_load(const char *name, const char *text, size_t len, struct dagi_arena *arena,
                    struct dagi_lists *out, struct dagi_cfg_errors *errs)
{
    void *obj = NULL;
    int rc = dagi_cfg_load_yaml(&dagi_lists_schema, name, text, len, arena, &obj, errs);
    if (rc)
        return rc;
    const struct lists_file *file = obj;
    out->items = file->lists.items;
    out->count = file->lists.count;
    return DAGI_OK;
}

static bool entry_match(const char *entry, const char *s)
{
    size_t n = strlen(entry);
    if (n && entry[n - 1] == '*')
        return !strncmp(entry, s, n - 1);
    return !strcmp(entry, s);
}

static bool holds(const struct dagi_cfg_strings *l, const char *s)
{
    for (size_t i = 0; s && i < l->count; i++)
        if (entry_match(l->items[i], s))
            return true;
    return false;
}

static bool applies(const struct dagi_list *l, const char *agent)
{
    if (!l->agents.count)
        return true;
    for (size_t i = 0; agent && i < l->agents.count; i++)
        if (!strcmp(l->agents.items[i], agent))
            return true;
    return false;
}

const char *dagi_lists_refuse(const struct dagi_lists *lists, const char *principal,
                              const char *team, const char *agent)
{
    if (!lists || (principal && !strcmp(principal, "admin")))
        return NULL;
    for (size_t i = 0; i < lists->count; i++) {
        const struct dagi_list *l = &lists->items[i];
        if (!applies(l, agent))
            continue;
        const char *who = l->of == DAGI_LIST_OF_TEAM ? (team && *team ? team : NULL) : principal;
        bool in = holds(&l->entries, who);
        if (l->type == DAGI_LIST_BLOCK ? in : !in)
            return l->id;
    }
    return NULL;
}
