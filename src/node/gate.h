/* The one gate every HTTP route passes (docs/HTTP.md, "The gate"):
 * authentication, rate limits and body validation, in one place, so that
 * no route can forget them.
 *
 * Before the body is read (dagi_gate_check):
 *   1. the route's class's per-IP buckets (auth.rate_limits, per: ip) -
 *      they hold whatever key a client presents;
 *   2. the credential, by the route's flags:
 *        DAGI_ROUTE_PUBLIC   none (health, readiness, metrics);
 *        gate_data->verify   the route's own (Telegram's secret header, a
 *                            webhook signature - that one after the body);
 *        otherwise           Authorization: Bearer <admin key | API key |
 *                            JWT>; DAGI_ROUTE_ADMIN also needs the admin
 *                            key or the "admin" role;
 *   3. the caller's buckets (per key, user, team).
 * After a buffered body is read (dagi_gate_check_body): a route's own
 * credential that needs the body, then the body's shape (gate_data->body).
 *
 * 401 / 403 / 429 / 400 answers are JSON naming the problem - in OpenAI's
 * error shape on the "openai" route class - with WWW-Authenticate or
 * Retry-After where they belong.  An API key the cache does not hold is
 * looked up on the worker pool: the request waits, the loop does not. */
#ifndef DAGI_GATE_H
#define DAGI_GATE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "core/http_server.h"

struct dagi_node;
struct dagi_config;
struct dagi_gate;
struct dagi_ratelimit;

#define DAGI_CALLER_ID_MAX 128
#define DAGI_CALLER_ROLES_MAX 16
#define DAGI_CALLER_ROLE_MAX 64

enum dagi_caller_kind {
    DAGI_CALLER_ANONYMOUS, /* a public route */
    DAGI_CALLER_ADMIN,     /* the node's admin key */
    DAGI_CALLER_KEY,       /* a user API key */
    DAGI_CALLER_JWT,       /* a verified JWT */
    DAGI_CALLER_ROUTE,     /* the route's own credential (a webhook) */
};

/* Who is calling: resolved once, here (ARCHITECTURE.md, Identity). */
struct dagi_caller {
    enum dagi_caller_kind kind;
    char user_id[DAGI_CALLER_ID_MAX + 1]; /* "admin", the key's user, the JWT's sub */
    char key_id[DAGI_CALLER_ID_MAX + 1];  /* the API key's id; "" otherwise */
    char team[DAGI_CALLER_ID_MAX + 1];    /* "" = none */
    char roles[DAGI_CALLER_ROLES_MAX][DAGI_CALLER_ROLE_MAX + 1];
    size_t role_count;
    bool is_admin;
    char ip[64]; /* the peer, without the port */
};

/* --- per-route rules (struct dagi_http_route.gate_data) --- */

enum dagi_body_type {
    DAGI_BODY_ANY,
    DAGI_BODY_STRING,
    DAGI_BODY_INT,
    DAGI_BODY_NUMBER,
    DAGI_BODY_BOOL,
    DAGI_BODY_OBJECT,
    DAGI_BODY_ARRAY,
    DAGI_BODY_STRING_OR_ARRAY,
};

struct dagi_body_field {
    const char *name;
    enum dagi_body_type type;
    bool required;
    /* strings: bytes; arrays: items; objects: members; 0 = no cap (the
     * body cap still holds). */
    size_t max;
};

/* A JSON body's shape: an object with these members.  Unknown members are
 * refused (400 naming them) or ignored, as the route states; `null` counts
 * as absent. */
struct dagi_body_rules {
    const struct dagi_body_field *fields;
    size_t count;
    bool refuse_unknown;
};

/* What is wrong with a body, for the 400 / 413 (field borrows from the
 * rules or the document). */
struct dagi_body_problem {
    int status; /* 400 or 413 */
    const char *field;
    const char *what;
    char detail[128];
};
/* 0, or -1 with *p filled.  Pure: the gate's check without the HTTP. */
struct json_t;
int dagi_body_validate(const struct json_t *doc, const struct dagi_body_rules *rules,
                       struct dagi_body_problem *p);

struct dagi_gate_rules {
    /* The route's own credential instead of a key or token; called with
     * the route's ud.  Return 0, or an error code with err set (401). */
    int (*verify)(struct dagi_http_req *req, void *ud, struct dagi_error *err);
    bool verify_needs_body; /* false: checked before the body is read */
    const struct dagi_body_rules *body;
};

/* --- the gate --- */

int dagi_gate_new(struct dagi_node *node, const struct dagi_config *c, struct dagi_gate **out,
                  struct dagi_error *err);
/* New keys, secrets and limits from a reloaded configuration (buckets are
 * kept); on error the old ones stay. */
int dagi_gate_reload(struct dagi_gate *g, const struct dagi_config *c, struct dagi_error *err);
void dagi_gate_free(struct dagi_gate *g);

/* The server's gate callbacks (ud: the struct dagi_gate). */
int dagi_gate_check(struct dagi_http_req *req, const struct dagi_http_route *route, void *ud);
int dagi_gate_check_body(struct dagi_http_req *req, const struct dagi_http_route *route,
                         void *ud);

/* The caller of a request that passed the gate. */
const struct dagi_caller *dagi_gate_caller(struct dagi_http_req *req);

/* A signed webhook's secrets for an agent (auth.hooks): 0 and up to two
 * secrets, or DAGI_ENOENT.  For the hooks route's verify. */
struct dagi_hooksig_secret;
int dagi_gate_hook_secrets(struct dagi_gate *g, const char *agent_id,
                           struct dagi_hooksig_secret *out /* [2] */, size_t *n,
                           int64_t *tolerance_ms);

/* --- internal to the gate's files --- */

struct gate_limits;
int gate_limits_build(const struct dagi_config *c, struct gate_limits **out,
                      struct dagi_error *err);
void gate_limits_free(struct gate_limits *l);
/* Takes a token from every bucket of `class` for `per` (a
 * dagi_rate_limit_per index, or -1 for all but ip).  Returns 0, or the ms
 * to wait when a bucket is empty. */
int64_t gate_limits_take(struct gate_limits *l, struct dagi_ratelimit *rl, const char *class,
                         int per, const struct dagi_caller *caller, int64_t now_ms);
/* 0, or 400 answered with the member named. */
int gate_body_check(struct dagi_http_req *req, const struct dagi_body_rules *rules,
                    bool openai_shape);

#endif
