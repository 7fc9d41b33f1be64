/* The identity graph's rules for every input (graph.h): ids, principals,
 * references, names, plans, attributes and cursors, and the paging the
 * public functions do around a backend.  Pure: no backend, no clock. */
#include "identity/graph_internal.h"

#include "core/mem.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Attributes are parsed only below this size: a document of whitespace
 * should not cost a parse of megabytes before it is refused. */
#define ATTRS_INPUT_MAX (8 * DAGI_GRAPH_ATTRS_MAX)

/* --- ids and text --- */

static bool all_of(const char *s, size_t n, const char *set)
{
    return strspn(s, set) == n;
}

#define LOWER_DIGITS "abcdefghijklmnopqrstuvwxyz0123456789"
#define ALNUM LOWER_DIGITS "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

static bool tg_digits_valid(const char *d)
{
    size_t n = strlen(d);
    if (n == 0 || n > 19 || !all_of(d, n, "0123456789") || d[0] == '0')
        return false;
    errno = 0;
    long long v = strtoll(d, NULL, 10);
    return errno == 0 && v > 0;
}

static bool plain_user_id_valid(const char *id)
{
    size_t n = strlen(id);
    return n >= 1 && n <= DAGI_GRAPH_ID_MAX && strchr(ALNUM, id[0]) && all_of(id, n, ALNUM "._@-");
}

bool dagi_graph_user_id_valid(const char *id)
{
    if (!id)
        return false;
    if (strncmp(id, "tg:", 3) == 0)
        return tg_digits_valid(id + 3);
    return plain_user_id_valid(id);
}

bool dagi_graph_slug_valid(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    return n >= 1 && n <= DAGI_GRAPH_SLUG_MAX && strchr(LOWER_DIGITS, id[0]) &&
           all_of(id, n, LOWER_DIGITS "_-");
}

bool dagi_graph_agent_valid(const char *agent)
{
    size_t n = agent ? strlen(agent) : 0;
    return n >= 1 && n <= DAGI_GRAPH_AGENT_MAX && all_of(agent, n, ALNUM "_.-");
}

static bool relation_valid(const char *r)
{
    size_t n = r ? strlen(r) : 0;
    return n >= 1 && n <= DAGI_GRAPH_RELATION_MAX && r[0] >= 'a' && r[0] <= 'z' &&
           all_of(r, n, LOWER_DIGITS "_");
}

static bool plan_valid(const char *p)
{
    size_t n = strlen(p);
    return n >= 1 && n <= DAGI_GRAPH_PLAN_MAX && all_of(p, n, LOWER_DIGITS "_-");
}

int dagi_graph_user_id_from(const char *s, char out[DAGI_GRAPH_ID_MAX + 1])
{
    if (!s)
        return DAGI_EINVAL;
    const char *id = strncmp(s, "user:", 5) == 0 ? s + 5 : s;
    /* "user:tg:42" is nobody: a Telegram user's principal is tg:42 */
    if (id != s ? !plain_user_id_valid(id) : !dagi_graph_user_id_valid(id))
        return DAGI_EINVAL;
    snprintf(out, DAGI_GRAPH_ID_MAX + 1, "%s", id);
    return DAGI_OK;
}

void dagi_graph_user_principal(const char *user_id, char out[DAGI_GRAPH_REF_MAX + 1])
{
    snprintf(out, DAGI_GRAPH_REF_MAX + 1, "%s%s",
             strncmp(user_id, "tg:", 3) == 0 ? "" : "user:", user_id);
}

int dagi_graph_ref_parse(const char *ref, enum dagi_graph_ref_kind *kind, const char **id)
{
    const char *colon = ref ? strchr(ref, ':') : NULL;
    if (!colon || strlen(ref) > DAGI_GRAPH_REF_MAX)
        return DAGI_EINVAL;
    size_t kn = (size_t)(colon - ref);
    const char *rest = colon + 1;
    if (kn < 1 || kn > 32 || ref[0] < 'a' || ref[0] > 'z' || strspn(ref, LOWER_DIGITS "_") != kn)
        return DAGI_EINVAL;
    if (kn == 4 && strncmp(ref, "user", 4) == 0) {
        if (!plain_user_id_valid(rest))
            return DAGI_EINVAL;
        *kind = DAGI_GRAPH_REF_USER;
        *id = rest;
    } else if (kn == 2 && strncmp(ref, "tg", 2) == 0) {
        if (!tg_digits_valid(rest))
            return DAGI_EINVAL;
        *kind = DAGI_GRAPH_REF_USER;
        *id = ref;
    } else if ((kn == 4 && strncmp(ref, "team", 4) == 0) ||
               (kn == 7 && strncmp(ref, "project", 7) == 0)) {
        if (!dagi_graph_slug_valid(rest))
            return DAGI_EINVAL;
        *kind = kn == 4 ? DAGI_GRAPH_REF_TEAM : DAGI_GRAPH_REF_PROJECT;
        *id = rest;
    } else {
        size_t n = strlen(rest);
        if (n < 1 || n > DAGI_GRAPH_ID_MAX || !all_of(rest, n, ALNUM "._@:/-"))
            return DAGI_EINVAL;
        *kind = DAGI_GRAPH_REF_FOREIGN;
        *id = rest;
    }
    return DAGI_OK;
}

const char *dagi_graph_role_name(enum dagi_graph_role role)
{
    switch (role) {
    case DAGI_GRAPH_OWNER:
        return "owner";
    case DAGI_GRAPH_ADMIN:
        return "admin";
    case DAGI_GRAPH_MEMBER:
        return "member";
    }
    return "member";
}

int dagi_graph_role_parse(const char *name, enum dagi_graph_role *out)
{
    static const enum dagi_graph_role roles[] = {DAGI_GRAPH_OWNER, DAGI_GRAPH_ADMIN,
                                                 DAGI_GRAPH_MEMBER};
    for (size_t i = 0; name && i < DAGI_ARRAY_LEN(roles); i++)
        if (strcmp(name, dagi_graph_role_name(roles[i])) == 0) {
            *out = roles[i];
            return DAGI_OK;
        }
    return DAGI_EINVAL;
}

/* Well-formed UTF-8 (no overlongs, surrogates or code points past
 * U+10FFFF) without control characters: what a name may hold. */
static bool text_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        size_t n;
        unsigned cp;
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return false;
            p++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 1, cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2, cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3, cp = c & 0x07;
        } else {
            return false;
        }
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0x80 && cp <= 0x9f))
            return false;
        p += n + 1;
    }
    return true;
}

int graph_check_name(const char *name, struct dagi_error *err)
{
    if (strlen(name) > DAGI_GRAPH_NAME_MAX || !text_valid(name))
        return dagi_error_set(err, DAGI_EINVAL,
                              "name: at most %d bytes of UTF-8 text without control characters",
                              DAGI_GRAPH_NAME_MAX);
    return DAGI_OK;
}

int graph_check_plan(const char *plan, struct dagi_error *err)
{
    if (!plan_valid(plan))
        return dagi_error_set(err, DAGI_EINVAL, "plan: 1-%d characters of [a-z0-9_-]",
                              DAGI_GRAPH_PLAN_MAX);
    return DAGI_OK;
}

/* The canonical text of an attributes object (caller frees). */
int graph_normalize_attrs(const char *attrs, char **out, struct dagi_error *err)
{
    if (!attrs) {
        *out = dagi_xstrdup("{}");
        return DAGI_OK;
    }
    if (strlen(attrs) > ATTRS_INPUT_MAX)
        return dagi_error_set(err, DAGI_EINVAL, "attributes: over the cap of %d bytes",
                              DAGI_GRAPH_ATTRS_MAX);
    json_error_t jerr;
    json_t *doc = json_loads(attrs, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return dagi_error_set(err, DAGI_EINVAL, "attributes: must be a JSON object");
    }
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    if (!text)
        return dagi_error_set(err, DAGI_EINVAL, "attributes: cannot be serialized");
    if (strlen(text) > DAGI_GRAPH_ATTRS_MAX) {
        free(text);
        return dagi_error_set(err, DAGI_EINVAL, "attributes: over the cap of %d bytes",
                              DAGI_GRAPH_ATTRS_MAX);
    }
    *out = text;
    return DAGI_OK;
}

int graph_check_user_id(const char *field, const char *in, char out[DAGI_GRAPH_ID_MAX + 1],
                        struct dagi_error *err)
{
    if (dagi_graph_user_id_from(in, out))
        return dagi_error_set(err, DAGI_EINVAL,
                              "%s: a user id is 1-%d of [A-Za-z0-9._@-] starting with a letter "
                              "or digit, or tg:<telegram user id>",
                              field, DAGI_GRAPH_ID_MAX);
    return DAGI_OK;
}

int graph_check_slug(const char *field, const char *id, struct dagi_error *err)
{
    if (!dagi_graph_slug_valid(id))
        return dagi_error_set(err, DAGI_EINVAL,
                              "%s: a slug of 1-%d of [a-z0-9_-] starting with a letter or digit",
                              field, DAGI_GRAPH_SLUG_MAX);
    return DAGI_OK;
}

int graph_check_ref(const char *field, const char *ref, struct dagi_error *err)
{
    enum dagi_graph_ref_kind kind;
    const char *id;
    if (dagi_graph_ref_parse(ref, &kind, &id))
        return dagi_error_set(err, DAGI_EINVAL,
                              "%s: a reference is <kind>:<id> (user:alice, tg:42, team:core, "
                              "project:p1, agent:helion)",
                              field);
    return DAGI_OK;
}

int graph_check_relation(const char *relation, struct dagi_error *err)
{
    if (!relation_valid(relation))
        return dagi_error_set(err, DAGI_EINVAL,
                              "relation: 1-%d of [a-z0-9_] starting with a letter",
                              DAGI_GRAPH_RELATION_MAX);
    return DAGI_OK;
}

/* --- patches --- */

int graph_patch_check(const struct dagi_graph_patch *in, bool plan_allowed, struct patch_buf *out,
                      struct dagi_error *err)
{
    *out = (struct patch_buf){0};
    if (!in)
        return DAGI_OK;
    int rc;
    if (in->name && (rc = graph_check_name(in->name, err)))
        return rc;
    if (in->plan && !plan_allowed)
        return dagi_error_set(err, DAGI_EINVAL, "plan: only teams have a plan");
    if (in->plan && (rc = graph_check_plan(in->plan, err)))
        return rc;
    if (in->attrs && (rc = graph_normalize_attrs(in->attrs, &out->attrs, err)))
        return rc;
    out->p = (struct dagi_graph_patch){.name = in->name, .plan = in->plan, .attrs = out->attrs};
    return DAGI_OK;
}

/* --- paging --- */

static int parse_chat_id(const char *s, int64_t *out)
{
    if (!s || !*s || strlen(s) > 20)
        return DAGI_EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || !strchr("-0123456789", s[0]))
        return DAGI_EINVAL;
    *out = (int64_t)v;
    return DAGI_OK;
}

static int edge_cursor_parse(const char *c, struct dagi_graph_page *page)
{
    const char *a = strchr(c, ','), *b = a ? strchr(a + 1, ',') : NULL;
    if (!a || !b || strchr(b + 1, ','))
        return DAGI_EINVAL;
    size_t sn = (size_t)(a - c), rn = (size_t)(b - a - 1);
    if (sn > DAGI_GRAPH_REF_MAX || rn > DAGI_GRAPH_RELATION_MAX)
        return DAGI_EINVAL;
    memcpy(page->after_subject, c, sn);
    page->after_subject[sn] = '\0';
    memcpy(page->after_relation, a + 1, rn);
    page->after_relation[rn] = '\0';
    snprintf(page->after_object, sizeof(page->after_object), "%s", b + 1);
    enum dagi_graph_ref_kind kind;
    const char *id;
    if (dagi_graph_ref_parse(page->after_subject, &kind, &id) ||
        !relation_valid(page->after_relation) || dagi_graph_ref_parse(b + 1, &kind, &id))
        return DAGI_EINVAL;
    return DAGI_OK;
}

int graph_page_from(const struct dagi_graph_page_req *req, enum cursor_kind kind,
                    struct dagi_graph_page *page, size_t *limit, struct dagi_error *err)
{
    *page = (struct dagi_graph_page){0};
    size_t n = req && req->limit ? req->limit : DAGI_GRAPH_LIST_DEFAULT;
    if (n > DAGI_GRAPH_LIST_MAX)
        return dagi_error_set(err, DAGI_EINVAL, "limit: at most %d", DAGI_GRAPH_LIST_MAX);
    *limit = n;
    page->fetch = n + 1;
    const char *c = req ? req->cursor : NULL;
    if (!c || !*c)
        return DAGI_OK;
    int rc = DAGI_EINVAL;
    if (strlen(c) <= DAGI_GRAPH_CURSOR_MAX) {
        switch (kind) {
        case CURSOR_USER:
            rc = dagi_graph_user_id_valid(c) ? DAGI_OK : DAGI_EINVAL;
            snprintf(page->after_id, sizeof(page->after_id), "%s", c);
            break;
        case CURSOR_SLUG:
            rc = dagi_graph_slug_valid(c) ? DAGI_OK : DAGI_EINVAL;
            snprintf(page->after_id, sizeof(page->after_id), "%s", c);
            break;
        case CURSOR_CHAT:
            rc = parse_chat_id(c, &page->after_chat_id);
            break;
        case CURSOR_EDGE:
            rc = edge_cursor_parse(c, page);
            break;
        }
    }
    if (rc)
        return dagi_error_set(err, DAGI_EINVAL, "cursor: not a cursor of this list");
    page->after_set = true;
    return DAGI_OK;
}

/* Cuts a fetched page to `limit` items and, when more followed, points the
 * cursor at the last one kept. */
static void page_finish(struct dagi_graph_list *l, size_t limit)
{
    l->next_cursor[0] = '\0';
    if (l->count <= limit)
        return;
    for (size_t i = limit; i < l->count; i++) {
        if (l->users)
            free(l->users[i].attrs);
        if (l->teams)
            free(l->teams[i].attrs);
        if (l->projects)
            free(l->projects[i].attrs);
    }
    l->count = limit;
    size_t last = limit - 1;
    char *c = l->next_cursor;
    size_t cap = sizeof(l->next_cursor);
    if (l->users)
        snprintf(c, cap, "%s", l->users[last].id);
    else if (l->teams)
        snprintf(c, cap, "%s", l->teams[last].id);
    else if (l->projects)
        snprintf(c, cap, "%s", l->projects[last].id);
    else if (l->chats)
        snprintf(c, cap, "%" PRId64, l->chats[last].chat_id);
    else if (l->edges)
        snprintf(c, cap, "%s,%s,%s", l->edges[last].subject, l->edges[last].relation,
                 l->edges[last].object);
    else if (l->members)
        snprintf(c, cap, "%s", l->members[last].user); /* teams_of overrides this */
}

int graph_list_done(int rc, struct dagi_graph_list *tmp, size_t limit, struct dagi_graph_list *out)
{
    if (rc) {
        dagi_graph_list_release(tmp);
        return rc;
    }
    page_finish(tmp, limit);
    *out = *tmp;
    return DAGI_OK;
}

void dagi_graph_list_release(struct dagi_graph_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++) {
        if (l->users)
            free(l->users[i].attrs);
        if (l->teams)
            free(l->teams[i].attrs);
        if (l->projects)
            free(l->projects[i].attrs);
    }
    free(l->users);
    free(l->teams);
    free(l->projects);
    free(l->members);
    free(l->chats);
    free(l->edges);
    *l = (struct dagi_graph_list){0};
}

void dagi_graph_user_release(struct dagi_graph_user *u)
{
    if (u) {
        free(u->attrs);
        u->attrs = NULL;
    }
}

void dagi_graph_team_release(struct dagi_graph_team *t)
{
    if (t) {
        free(t->attrs);
        t->attrs = NULL;
    }
}

void dagi_graph_project_release(struct dagi_graph_project *p)
{
    if (p) {
        free(p->attrs);
        p->attrs = NULL;
    }
}
