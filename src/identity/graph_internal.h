/* What graph.c (the front door: opening, the public functions) and
 * graph_check.c (the rules of every input, and paging) share.  Nothing
 * else includes it. */
#ifndef DAGI_IDENTITY_GRAPH_INTERNAL_H
#define DAGI_IDENTITY_GRAPH_INTERNAL_H

#include "identity/graph.h"

/* Each returns 0 or DAGI_EINVAL with a message naming the field. */
int graph_check_name(const char *name, struct dagi_error *err);
int graph_check_plan(const char *plan, struct dagi_error *err);
/* The canonical text of an attributes object (NULL: {}); caller frees. */
int graph_normalize_attrs(const char *attrs, char **out, struct dagi_error *err);
/* A user id or principal to the user id. */
int graph_check_user_id(const char *field, const char *in, char out[DAGI_GRAPH_ID_MAX + 1],
                        struct dagi_error *err);
int graph_check_slug(const char *field, const char *id, struct dagi_error *err);
int graph_check_ref(const char *field, const char *ref, struct dagi_error *err);
int graph_check_relation(const char *relation, struct dagi_error *err);

/* A checked patch; attrs is the canonical copy the patch points at. */
struct patch_buf {
    struct dagi_graph_patch p;
    char *attrs;
};

int graph_patch_check(const struct dagi_graph_patch *in, bool plan_allowed, struct patch_buf *out,
                      struct dagi_error *err);

/* What a list's cursor is the key of. */
enum cursor_kind { CURSOR_USER, CURSOR_SLUG, CURSOR_CHAT, CURSOR_EDGE };

/* The backend's page for a request: one more item than the limit. */
int graph_page_from(const struct dagi_graph_page_req *req, enum cursor_kind kind,
                    struct dagi_graph_page *page, size_t *limit, struct dagi_error *err);
/* Cuts what a backend returned (rc) to the page and sets the cursor; *out
 * only on success. */
int graph_list_done(int rc, struct dagi_graph_list *tmp, size_t limit, struct dagi_graph_list *out);

#endif
