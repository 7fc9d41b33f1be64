/* The identity graph (ARCHITECTURE.md, Identity): who is who and who may
 * do what, behind one interface with pluggable backends.
 *
 * Nodes
 *   user      id, display name, attributes; a Telegram user is a user too
 *   team      id (a slug: a team or DAO), name, plan, attributes
 *   project   id (a slug, unique across teams), its team, name, attributes
 * Edges
 *   membership  user -> team with a role: owner | admin | member
 *   ACL edge    subject -relation-> object, e.g. user:alice -can_read->
 *               project:p1 (see "ACL edges" below)
 *   chat        a Telegram chat -> the team it belongs to (and, optionally,
 *               the one agent the mapping is for)
 *
 * Ids and principals.  A user id is either a plain id, 1-128 of
 * [A-Za-z0-9._@-] ("alice", "olena@example.org"), or a Telegram id,
 * "tg:<digits>" ("tg:42").  A user's principal - the string the gateway
 * resolves for every request, and the subject of its ACL edges - is
 * "user:<id>" for a plain id and the id itself for a Telegram one
 * ("user:alice", "tg:42").  Team and project ids are slugs:
 * [a-z0-9][a-z0-9_-]{0,63}.  Telegram users are created by the caller on
 * first sight (dagi_graph_user_create with id "tg:<id>").
 *
 * ACL edges.  Subjects and objects are references "<kind>:<id>": the kinds
 * user, tg, team and project name nodes of this graph, and an edge to or
 * from one that does not exist is refused (DAGI_ENOENT); any other kind
 * (agent:helion, tool:web_search, scope:public) names something that lives
 * elsewhere and is taken as it is.  Relations are [a-z][a-z0-9_]{0,63}.
 * dagi_graph_acl_check() is true when the edge exists, or when the subject
 * is a user and the edge exists from one of that user's teams ("team:<id>"):
 * one level of indirection, no more, so that a check is one indexed lookup
 * on every backend.
 *
 * Deleting cascades: a user takes its memberships and every ACL edge to or
 * from its principal; a team takes its memberships, chat mappings, projects
 * and the ACL edges to or from the team and its projects; a project takes
 * its ACL edges.  Other nodes stay.
 *
 * Lists are pages in key order (ids in byte order; chats by chat id; edges
 * by subject, relation, object).  A page holds at most `limit` items (0 =
 * DAGI_GRAPH_LIST_DEFAULT, at most DAGI_GRAPH_LIST_MAX) and, when more
 * follow, a next_cursor to pass back for the next page.  Cursors are
 * opaque to callers; a page never repeats or skips an item that existed
 * through the whole walk.
 *
 * Errors: DAGI_EINVAL for bad input, DAGI_ENOENT for a missing node or
 * edge, DAGI_EEXIST for a duplicate, DAGI_EAGAIN when the store is busy
 * (worth a retry), DAGI_EUNAVAIL when it is unreachable.  The messages of
 * EINVAL, ENOENT and EEXIST begin with the field they concern and a colon
 * ("team: no such team 'core'"), which the admin API turns into the
 * "field" of its 400/404/409 answers.
 *
 * Threads: every call blocks on its backend (a database, a server): call
 * it on the worker pool, never on an event loop.  A handle may be used by
 * many threads at once.
 *
 * Ownership: the records a call fills in belong to the caller: release a
 * user, team or project with its _release function (the attributes are on
 * the heap) and a list with dagi_graph_list_release.  Input strings are
 * borrowed for the call.  A handle is reference counted so that work still
 * in flight on the pool can keep it alive: dagi_graph_ref() adds a
 * reference, dagi_graph_close() drops one and closes the backend with the
 * last. */
#ifndef DAGI_IDENTITY_GRAPH_H
#define DAGI_IDENTITY_GRAPH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct dagi_db;

#define DAGI_GRAPH_ID_MAX 128      /* bytes of a user, team or project id */
#define DAGI_GRAPH_SLUG_MAX 64     /* bytes of a team or project id */
#define DAGI_GRAPH_NAME_MAX 256    /* bytes of a display name (UTF-8, no control characters) */
#define DAGI_GRAPH_PLAN_MAX 64     /* bytes of a plan: [a-z0-9_-] */
#define DAGI_GRAPH_ATTRS_MAX 8192  /* bytes of the attributes, a JSON object, compact */
#define DAGI_GRAPH_REF_MAX 161     /* bytes of "<kind>:<id>": kind 1-32, id 1-128 */
#define DAGI_GRAPH_RELATION_MAX 64 /* bytes of an ACL relation */
#define DAGI_GRAPH_AGENT_MAX 64    /* bytes of an agent id: [A-Za-z0-9_.-] */
/* Telegram chat ids fit in 52 bits; more than 53 would not survive JSON. */
#define DAGI_GRAPH_CHAT_ID_MAX ((INT64_C(1) << 53) - 1)
#define DAGI_GRAPH_LIST_DEFAULT 100
#define DAGI_GRAPH_LIST_MAX 1000
/* An edge cursor is the three parts of the last edge and two commas. */
#define DAGI_GRAPH_CURSOR_MAX (2 * DAGI_GRAPH_REF_MAX + DAGI_GRAPH_RELATION_MAX + 2)

enum dagi_graph_role { DAGI_GRAPH_OWNER, DAGI_GRAPH_ADMIN, DAGI_GRAPH_MEMBER };

/* --- records --- */

struct dagi_graph_user {
    char id[DAGI_GRAPH_ID_MAX + 1];
    char name[DAGI_GRAPH_NAME_MAX + 1]; /* "" = none */
    char *attrs;                        /* a JSON object as text; never NULL once filled */
    int64_t created_at_ms, updated_at_ms;
};

struct dagi_graph_team {
    char id[DAGI_GRAPH_ID_MAX + 1];
    char name[DAGI_GRAPH_NAME_MAX + 1];
    char plan[DAGI_GRAPH_PLAN_MAX + 1]; /* "free" unless set */
    char *attrs;
    int64_t created_at_ms, updated_at_ms;
};

struct dagi_graph_project {
    char id[DAGI_GRAPH_ID_MAX + 1];
    char team[DAGI_GRAPH_ID_MAX + 1];
    char name[DAGI_GRAPH_NAME_MAX + 1];
    char *attrs;
    int64_t created_at_ms, updated_at_ms;
};

struct dagi_graph_member {
    char team[DAGI_GRAPH_ID_MAX + 1];
    char user[DAGI_GRAPH_ID_MAX + 1];
    enum dagi_graph_role role;
    int64_t created_at_ms;
};

struct dagi_graph_chat {
    int64_t chat_id; /* Telegram's: negative for groups */
    char team[DAGI_GRAPH_ID_MAX + 1];
    char agent[DAGI_GRAPH_AGENT_MAX + 1]; /* "" = every agent in that chat */
    int64_t created_at_ms, updated_at_ms;
};

struct dagi_graph_edge {
    char subject[DAGI_GRAPH_REF_MAX + 1];
    char relation[DAGI_GRAPH_RELATION_MAX + 1];
    char object[DAGI_GRAPH_REF_MAX + 1];
    int64_t created_at_ms;
};

/* One page of a list: the array the call names is filled, the others stay
 * NULL.  teams_of() fills `members` (the user's memberships). */
struct dagi_graph_list {
    size_t count;
    struct dagi_graph_user *users;
    struct dagi_graph_team *teams;
    struct dagi_graph_project *projects;
    struct dagi_graph_member *members;
    struct dagi_graph_chat *chats;
    struct dagi_graph_edge *edges;
    char next_cursor[DAGI_GRAPH_CURSOR_MAX + 1]; /* "" on the last page */
};

/* --- inputs --- */

struct dagi_graph_user_spec {
    const char *id;    /* required; "user:<id>" is taken for <id> */
    const char *name;  /* NULL = "" */
    const char *attrs; /* a JSON object; NULL = {} */
};

struct dagi_graph_team_spec {
    const char *id;
    const char *name;
    const char *plan; /* NULL = "free" */
    const char *attrs;
};

struct dagi_graph_project_spec {
    const char *id;
    const char *team; /* required, must exist */
    const char *name;
    const char *attrs;
};

/* An update: NULL members stay as they are; attrs replaces the attributes
 * as a whole.  plan is for teams only. */
struct dagi_graph_patch {
    const char *name;
    const char *plan;
    const char *attrs;
};

struct dagi_graph_page_req {
    size_t limit;       /* 0 = DAGI_GRAPH_LIST_DEFAULT; over DAGI_GRAPH_LIST_MAX is EINVAL */
    const char *cursor; /* NULL or "" = from the start */
};

/* ACL lists: either or both may be NULL (every edge). */
struct dagi_graph_edge_filter {
    const char *subject;
    const char *object;
};

/* --- the backend interface ---
 *
 * The public functions below validate and normalise their input, take the
 * time from the business clock and do the paging; a backend gets only
 * valid input and implements the storage.  Every slot is required.
 *
 * Lists: a backend returns at most page->fetch items in key order,
 * strictly after the page's start key when after_set (the common code asks
 * for one more item than the page holds, to know whether more follow).
 * Arrays it returns are dagi_xcalloc'd; attribute strings malloc'd. */
struct dagi_graph_page {
    size_t fetch;
    bool after_set;
    char after_id[DAGI_GRAPH_ID_MAX + 1]; /* id lists */
    int64_t after_chat_id;                /* chat lists */
    char after_subject[DAGI_GRAPH_REF_MAX + 1], after_relation[DAGI_GRAPH_RELATION_MAX + 1],
        after_object[DAGI_GRAPH_REF_MAX + 1]; /* edge lists */
};

/* Capability bits. */
enum {
    /* A delete and its cascade commit at once or not at all; without it a
     * failure midway may leave the edges gone and the node still there
     * (never the other way round). */
    DAGI_GRAPH_CAP_ATOMIC_CASCADE = 1u << 0,
};

struct dagi_graph_ops {
    const char *name;   /* "sql" */
    const char *scheme; /* the URLs it opens: "<scheme>" or "<scheme>:..." */
    unsigned caps;
    /* db: the node's relational store (a backend that keeps its data
     * elsewhere ignores it).  *backend is passed to every other slot. */
    int (*open)(const char *url, struct dagi_db *db, void **backend, struct dagi_error *err);
    void (*close)(void *backend);

    /* Creates fill nothing back: the common code built the record. */
    int (*user_create)(void *b, const struct dagi_graph_user *in, struct dagi_error *err);
    int (*user_get)(void *b, const char *id, struct dagi_graph_user *out, struct dagi_error *err);
    int (*user_update)(void *b, const char *id, const struct dagi_graph_patch *p, int64_t now_ms,
                       struct dagi_graph_user *out, struct dagi_error *err);
    int (*user_delete)(void *b, const char *id, struct dagi_error *err);
    int (*user_list)(void *b, const struct dagi_graph_page *page, struct dagi_graph_list *out,
                     struct dagi_error *err);

    int (*team_create)(void *b, const struct dagi_graph_team *in, struct dagi_error *err);
    int (*team_get)(void *b, const char *id, struct dagi_graph_team *out, struct dagi_error *err);
    int (*team_update)(void *b, const char *id, const struct dagi_graph_patch *p, int64_t now_ms,
                       struct dagi_graph_team *out, struct dagi_error *err);
    int (*team_delete)(void *b, const char *id, struct dagi_error *err);
    int (*team_list)(void *b, const struct dagi_graph_page *page, struct dagi_graph_list *out,
                     struct dagi_error *err);

    int (*project_create)(void *b, const struct dagi_graph_project *in, struct dagi_error *err);
    int (*project_get)(void *b, const char *id, struct dagi_graph_project *out,
                       struct dagi_error *err);
    int (*project_update)(void *b, const char *id, const struct dagi_graph_patch *p, int64_t now_ms,
                          struct dagi_graph_project *out, struct dagi_error *err);
    int (*project_delete)(void *b, const char *id, struct dagi_error *err);
    /* team NULL: every project; otherwise ENOENT for a missing team. */
    int (*project_list)(void *b, const char *team, const struct dagi_graph_page *page,
                        struct dagi_graph_list *out, struct dagi_error *err);

    int (*member_add)(void *b, const struct dagi_graph_member *in, struct dagi_error *err);
    int (*member_remove)(void *b, const char *team, const char *user, struct dagi_error *err);
    /* Paged by user id; ENOENT for a missing team. */
    int (*member_list)(void *b, const char *team, const struct dagi_graph_page *page,
                       struct dagi_graph_list *out, struct dagi_error *err);
    /* Paged by team id; ENOENT for a missing user. */
    int (*teams_of)(void *b, const char *user, const struct dagi_graph_page *page,
                    struct dagi_graph_list *out, struct dagi_error *err);

    /* Sets the mapping; *created tells a new one from a changed agent. */
    int (*chat_set)(void *b, const struct dagi_graph_chat *in, struct dagi_graph_chat *out,
                    bool *created, struct dagi_error *err);
    int (*chat_get)(void *b, int64_t chat_id, struct dagi_graph_chat *out, struct dagi_error *err);
    /* team NULL: whichever team; otherwise only that team's mapping. */
    int (*chat_unset)(void *b, int64_t chat_id, const char *team, struct dagi_error *err);
    int (*chat_list)(void *b, const char *team, const struct dagi_graph_page *page,
                     struct dagi_graph_list *out, struct dagi_error *err);

    int (*acl_add)(void *b, const struct dagi_graph_edge *in, struct dagi_error *err);
    int (*acl_remove)(void *b, const char *subject, const char *relation, const char *object,
                      struct dagi_error *err);
    /* user: the subject's user id when it is a user (for the team step),
     * else NULL. */
    int (*acl_check)(void *b, const char *subject, const char *relation, const char *object,
                     const char *user, bool *allowed, struct dagi_error *err);
    int (*acl_list)(void *b, const struct dagi_graph_edge_filter *f,
                    const struct dagi_graph_page *page, struct dagi_graph_list *out,
                    struct dagi_error *err);
};

extern const struct dagi_graph_ops dagi_graph_sql_ops;

/* The handle: a backend and its state. */
struct dagi_graph {
    const struct dagi_graph_ops *ops;
    void *backend;
    atomic_int refs;
};

/* --- opening --- */

/* By URL: "sql" keeps the graph in tables of `db` (the node's store,
 * migration 0007_identity; it must outlive the handle).  DAGI_EINVAL for a
 * URL no backend serves. */
int dagi_graph_open(const char *url, struct dagi_db *db, struct dagi_graph **out,
                    struct dagi_error *err);
/* A handle over any ops table (a wrapper backend, a test double); `backend`
 * is what ops->close gets. */
struct dagi_graph *dagi_graph_wrap(const struct dagi_graph_ops *ops, void *backend);
struct dagi_graph *dagi_graph_ref(struct dagi_graph *g);
void dagi_graph_close(struct dagi_graph *g);

/* --- nodes --- */

int dagi_graph_user_create(struct dagi_graph *g, const struct dagi_graph_user_spec *spec,
                           struct dagi_graph_user *out, struct dagi_error *err);
/* id: a user id or a user principal ("user:alice", "tg:42"). */
int dagi_graph_user_get(struct dagi_graph *g, const char *id, struct dagi_graph_user *out,
                        struct dagi_error *err);
int dagi_graph_user_update(struct dagi_graph *g, const char *id, const struct dagi_graph_patch *p,
                           struct dagi_graph_user *out, struct dagi_error *err);
int dagi_graph_user_delete(struct dagi_graph *g, const char *id, struct dagi_error *err);
int dagi_graph_user_list(struct dagi_graph *g, const struct dagi_graph_page_req *req,
                         struct dagi_graph_list *out, struct dagi_error *err);
void dagi_graph_user_release(struct dagi_graph_user *u);

int dagi_graph_team_create(struct dagi_graph *g, const struct dagi_graph_team_spec *spec,
                           struct dagi_graph_team *out, struct dagi_error *err);
int dagi_graph_team_get(struct dagi_graph *g, const char *id, struct dagi_graph_team *out,
                        struct dagi_error *err);
int dagi_graph_team_update(struct dagi_graph *g, const char *id, const struct dagi_graph_patch *p,
                           struct dagi_graph_team *out, struct dagi_error *err);
int dagi_graph_team_delete(struct dagi_graph *g, const char *id, struct dagi_error *err);
int dagi_graph_team_list(struct dagi_graph *g, const struct dagi_graph_page_req *req,
                         struct dagi_graph_list *out, struct dagi_error *err);
void dagi_graph_team_release(struct dagi_graph_team *t);

int dagi_graph_project_create(struct dagi_graph *g, const struct dagi_graph_project_spec *spec,
                              struct dagi_graph_project *out, struct dagi_error *err);
int dagi_graph_project_get(struct dagi_graph *g, const char *id, struct dagi_graph_project *out,
                           struct dagi_error *err);
int dagi_graph_project_update(struct dagi_graph *g, const char *id,
                              const struct dagi_graph_patch *p, struct dagi_graph_project *out,
                              struct dagi_error *err);
int dagi_graph_project_delete(struct dagi_graph *g, const char *id, struct dagi_error *err);
/* team NULL: every team's projects. */
int dagi_graph_project_list(struct dagi_graph *g, const char *team,
                            const struct dagi_graph_page_req *req, struct dagi_graph_list *out,
                            struct dagi_error *err);
void dagi_graph_project_release(struct dagi_graph_project *p);

/* --- membership --- */

/* DAGI_EEXIST when the user already belongs to the team (whatever role);
 * DAGI_ENOENT ("user: ..." / "team: ...") when either is missing.  out may
 * be NULL. */
int dagi_graph_member_add(struct dagi_graph *g, const char *team, const char *user,
                          enum dagi_graph_role role, struct dagi_graph_member *out,
                          struct dagi_error *err);
int dagi_graph_member_remove(struct dagi_graph *g, const char *team, const char *user,
                             struct dagi_error *err);
int dagi_graph_member_list(struct dagi_graph *g, const char *team,
                           const struct dagi_graph_page_req *req, struct dagi_graph_list *out,
                           struct dagi_error *err);
/* The user's memberships (list->members), by team id. */
int dagi_graph_teams_of(struct dagi_graph *g, const char *user,
                        const struct dagi_graph_page_req *req, struct dagi_graph_list *out,
                        struct dagi_error *err);

/* --- Telegram chats --- */

/* Maps chat_id to team (which must exist) for agent (NULL or "" = every
 * agent).  Mapping a chat again to the same team replaces the agent;
 * DAGI_EEXIST when it belongs to another team (unset it first).  out and
 * created may be NULL. */
int dagi_graph_chat_set(struct dagi_graph *g, int64_t chat_id, const char *team, const char *agent,
                        struct dagi_graph_chat *out, bool *created, struct dagi_error *err);
int dagi_graph_chat_get(struct dagi_graph *g, int64_t chat_id, struct dagi_graph_chat *out,
                        struct dagi_error *err);
/* team NULL: whichever; otherwise DAGI_ENOENT unless it is that team's. */
int dagi_graph_chat_unset(struct dagi_graph *g, int64_t chat_id, const char *team,
                          struct dagi_error *err);
/* team NULL: every mapping. */
int dagi_graph_chat_list(struct dagi_graph *g, const char *team,
                         const struct dagi_graph_page_req *req, struct dagi_graph_list *out,
                         struct dagi_error *err);

/* --- ACL edges --- */

int dagi_graph_acl_add(struct dagi_graph *g, const char *subject, const char *relation,
                       const char *object, struct dagi_error *err);
int dagi_graph_acl_remove(struct dagi_graph *g, const char *subject, const char *relation,
                          const char *object, struct dagi_error *err);
int dagi_graph_acl_check(struct dagi_graph *g, const char *subject, const char *relation,
                         const char *object, bool *allowed, struct dagi_error *err);
int dagi_graph_acl_list(struct dagi_graph *g, const struct dagi_graph_edge_filter *f,
                        const struct dagi_graph_page_req *req, struct dagi_graph_list *out,
                        struct dagi_error *err);

void dagi_graph_list_release(struct dagi_graph_list *list);

/* --- ids, principals, references (pure; any thread) --- */

const char *dagi_graph_role_name(enum dagi_graph_role role);
int dagi_graph_role_parse(const char *name, enum dagi_graph_role *out);

bool dagi_graph_user_id_valid(const char *id);
bool dagi_graph_slug_valid(const char *id); /* team and project ids */
bool dagi_graph_agent_valid(const char *agent);
/* "alice", "user:alice" -> "alice"; "tg:42" -> "tg:42".  DAGI_EINVAL for
 * anything else. */
int dagi_graph_user_id_from(const char *id_or_principal, char out[DAGI_GRAPH_ID_MAX + 1]);
/* The principal of a valid user id: "user:alice", "tg:42". */
void dagi_graph_user_principal(const char *user_id, char out[DAGI_GRAPH_REF_MAX + 1]);

enum dagi_graph_ref_kind {
    DAGI_GRAPH_REF_FOREIGN, /* a kind this graph does not hold (agent:, tool:, ...) */
    DAGI_GRAPH_REF_USER,    /* user:<id> and tg:<digits>; *id is the user id */
    DAGI_GRAPH_REF_TEAM,
    DAGI_GRAPH_REF_PROJECT,
};
/* Checks a reference "<kind>:<id>" and says what it names; *id points into
 * ref (for tg:, at the "tg:" itself: that is the user id).  DAGI_EINVAL
 * for a malformed one. */
int dagi_graph_ref_parse(const char *ref, enum dagi_graph_ref_kind *kind, const char **id);

#endif
