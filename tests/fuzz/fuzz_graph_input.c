/* libFuzzer driver: the identity graph's input checks (ids, principals,
 * references, names, attributes, cursors), which every backend relies on.
 * The bytes are split at newlines into up to four fields and fed to the
 * pure checks and to the graph over a backend that stores nothing, so the
 * checks run whole and a backend is reached only with what they passed. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "identity/graph.h"

static int ok_create_user(void *b, const struct dagi_graph_user *in, struct dagi_error *err)
{
    (void)b, (void)err;
    /* what reached the backend passed the checks */
    if (!dagi_graph_user_id_valid(in->id) || !in->attrs || in->attrs[0] != '{')
        abort();
    return 0;
}

static int empty_list(void *b, const struct dagi_graph_page *page, struct dagi_graph_list *out,
                      struct dagi_error *err)
{
    (void)b, (void)err;
    if (page->fetch < 2 || page->fetch > DAGI_GRAPH_LIST_MAX + 1)
        abort();
    out->count = 0;
    return 0;
}

static int empty_scoped(void *b, const char *scope, const struct dagi_graph_page *page,
                        struct dagi_graph_list *out, struct dagi_error *err)
{
    (void)scope;
    return empty_list(b, page, out, err);
}

static int empty_edges(void *b, const struct dagi_graph_edge_filter *f,
                       const struct dagi_graph_page *page, struct dagi_graph_list *out,
                       struct dagi_error *err)
{
    (void)f;
    return empty_list(b, page, out, err);
}

static int no_check(void *b, const char *s, const char *r, const char *o, const char *user,
                    bool *allowed, struct dagi_error *err)
{
    (void)b, (void)s, (void)r, (void)o, (void)user, (void)err;
    *allowed = false;
    return 0;
}

static const struct dagi_graph_ops null_ops = {
    .name = "null",
    .scheme = "null",
    .user_create = ok_create_user,
    .user_list = empty_list,
    .project_list = empty_scoped,
    .chat_list = empty_scoped,
    .acl_list = empty_edges,
    .acl_check = no_check,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    char *field[4] = {"", "", "", ""};
    char *p = text;
    for (int i = 0; i < 4 && p; i++) {
        field[i] = p;
        p = strchr(p, '\n');
        if (p)
            *p++ = '\0';
    }
    char id[DAGI_GRAPH_ID_MAX + 1], principal[DAGI_GRAPH_REF_MAX + 1];
    enum dagi_graph_ref_kind kind;
    enum dagi_graph_role role;
    const char *ref_id;
    for (int i = 0; i < 4; i++) {
        if (dagi_graph_user_id_from(field[i], id) == 0)
            dagi_graph_user_principal(id, principal);
        if (dagi_graph_ref_parse(field[i], &kind, &ref_id) == 0 && !strchr(field[i], ':'))
            abort();
        dagi_graph_slug_valid(field[i]);
        dagi_graph_agent_valid(field[i]);
        dagi_graph_role_parse(field[i], &role);
    }
    struct dagi_graph *g = dagi_graph_wrap(&null_ops, NULL);
    struct dagi_error err = {0};
    struct dagi_graph_user u = {0};
    struct dagi_graph_user_spec spec = {.id = field[0], .name = field[1], .attrs = field[2]};
    if (dagi_graph_user_create(g, &spec, &u, &err) == 0)
        dagi_graph_user_release(&u);
    struct dagi_graph_page_req req = {.limit = 10, .cursor = field[3]};
    struct dagi_graph_list l = {0};
    if (dagi_graph_user_list(g, &req, &l, &err) == 0)
        dagi_graph_list_release(&l);
    if (dagi_graph_project_list(g, NULL, &req, &l, &err) == 0)
        dagi_graph_list_release(&l);
    if (dagi_graph_chat_list(g, NULL, &req, &l, &err) == 0)
        dagi_graph_list_release(&l);
    struct dagi_graph_edge_filter f = {field[0][0] ? field[0] : NULL, NULL};
    if (dagi_graph_acl_list(g, &f, &req, &l, &err) == 0)
        dagi_graph_list_release(&l);
    bool yes;
    dagi_graph_acl_check(g, field[0], field[1], field[2], &yes, &err);
    dagi_graph_close(g);
    free(text);
    return 0;
}
