/* The gate (gate.h has the order of the checks). */
#include "gate.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/keystore.h"
#include "access/ratelimit.h"
#include "adminkey.h"
#include "auditlog/audit.h"
#include "auditlog/throttle.h"
#include "auth/hooksig.h"
#include "auth/jwt.h"
#include "core/arena.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "core/pool.h"
#include "dagi_config.h"
#include "node.h"

#define MAX_HOOK_SECRET 1024

struct gate_hook {
    char agent[65];
    uint8_t secret[2][MAX_HOOK_SECRET];
    size_t len[2];
    size_t n;
};

/* What a configuration makes of keys, secrets and limits: replaced whole. */
struct gate_conf {
    struct dagi_jwt_keys *jwt; /* NULL = JWTs refused */
    char *issuer, *audience;
    int64_t leeway_s;
    struct gate_hook *hooks;
    size_t hook_count;
    int64_t hook_tolerance_ms;
    struct gate_limits *limits;
};

struct dagi_gate {
    struct dagi_node *node;
    struct gate_conf *conf;
    struct dagi_ratelimit *rl;
    struct dagi_metric *refused; /* dagi_gate_refused_total{class,reason} */
    /* auth failures are audited, at most one per ip per second */
    struct dagi_audit_throttle *audit_throttle;
    struct dagi_metric *audit_suppressed; /* dagi_gate_audit_suppressed_total{class} */
};

/* --- configuration --- */

static void conf_free(struct gate_conf *gc)
{
    if (!gc)
        return;
    dagi_jwt_keys_free(gc->jwt);
    free(gc->issuer);
    free(gc->audience);
    if (gc->hooks)
        sodium_memzero(gc->hooks, gc->hook_count * sizeof(*gc->hooks));
    free(gc->hooks);
    gate_limits_free(gc->limits);
    free(gc);
}

static char *read_file(const char *path, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = dagi_xmalloc(cap + 1);
    size_t n = fread(buf, 1, cap, f);
    bool big = !feof(f);
    fclose(f);
    if (big) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static int conf_jwt(struct gate_conf *gc, const struct dagi_config *c, struct dagi_error *err)
{
    const struct dagi_jwt_key_config *k = c->auth.jwt.keys.items;
    size_t n = c->auth.jwt.keys.count;
    if (!n)
        return DAGI_OK;
    gc->jwt = dagi_jwt_keys_new();
    for (size_t i = 0; i < n; i++) {
        int rc;
        if (k[i].alg == 0) {
            const char *secret = getenv(k[i].secret_env);
            if (!secret || !*secret)
                return dagi_error_set(err, DAGI_EINVAL, "auth.jwt.keys[%zu]: %s is not set", i,
                                      k[i].secret_env);
            rc = dagi_jwt_keys_add_hs256(gc->jwt, k[i].kid, (const uint8_t *)secret,
                                         strlen(secret), err);
        } else {
            char *pem = read_file(k[i].public_key_file, 64 * 1024);
            if (!pem)
                return dagi_error_set(err, DAGI_EINVAL, "auth.jwt.keys[%zu]: cannot read %s", i,
                                      k[i].public_key_file);
            rc = dagi_jwt_keys_add_rs256_pem(gc->jwt, k[i].kid, pem, err);
            free(pem);
        }
        if (rc) {
            char why[sizeof(err->message)];
            snprintf(why, sizeof(why), "%s", err->message);
            return dagi_error_set(err, rc, "auth.jwt.keys[%zu]: %s", i, why);
        }
    }
    return DAGI_OK;
}

static int conf_hooks(struct gate_conf *gc, const struct dagi_config *c, struct dagi_error *err)
{
    const struct dagi_hook_config *h = c->auth.hooks.items;
    gc->hook_count = c->auth.hooks.count;
    gc->hooks = dagi_xcalloc(gc->hook_count ? gc->hook_count : 1, sizeof(*gc->hooks));
    for (size_t i = 0; i < gc->hook_count; i++) {
        struct gate_hook *g = &gc->hooks[i];
        snprintf(g->agent, sizeof(g->agent), "%s", h[i].agent);
        const char *envs[] = {h[i].secret_env, h[i].previous_secret_env};
        for (size_t j = 0; j < 2; j++) {
            const char *v = envs[j] ? getenv(envs[j]) : NULL;
            if (!v || !*v) {
                if (j == 0)
                    return dagi_error_set(err, DAGI_EINVAL, "auth.hooks[%zu]: %s is not set", i,
                                          envs[j]);
                continue;
            }
            size_t len = strlen(v);
            if (len < 16 || len > MAX_HOOK_SECRET)
                return dagi_error_set(err, DAGI_EINVAL,
                                      "auth.hooks[%zu]: %s must hold 16 to %d bytes", i, envs[j],
                                      MAX_HOOK_SECRET);
            memcpy(g->secret[g->n], v, len);
            g->len[g->n++] = len;
        }
    }
    gc->hook_tolerance_ms = c->auth.hook_tolerance;
    return DAGI_OK;
}

static int conf_build(const struct dagi_config *c, struct gate_conf **out, struct dagi_error *err)
{
    struct gate_conf *gc = dagi_xcalloc(1, sizeof(*gc));
    gc->issuer = c->auth.jwt.issuer ? dagi_xstrdup(c->auth.jwt.issuer) : NULL;
    gc->audience = c->auth.jwt.audience ? dagi_xstrdup(c->auth.jwt.audience) : NULL;
    gc->leeway_s = c->auth.jwt.leeway / 1000;
    int rc = conf_jwt(gc, c, err);
    if (!rc)
        rc = conf_hooks(gc, c, err);
    if (!rc)
        rc = gate_limits_build(c, &gc->limits, err);
    if (rc) {
        conf_free(gc);
        return rc;
    }
    *out = gc;
    return DAGI_OK;
}

int dagi_gate_new(struct dagi_node *node, const struct dagi_config *c, struct dagi_gate **out,
                  struct dagi_error *err)
{
    struct dagi_gate *g = dagi_xcalloc(1, sizeof(*g));
    g->node = node;
    int rc = conf_build(c, &g->conf, err);
    if (!rc)
        rc = dagi_ratelimit_new("local", NULL, &g->rl, err);
    if (rc) {
        dagi_gate_free(g);
        return rc;
    }
    g->refused = dagi_metrics_counter(dagi_node_metrics(node), "dagi_gate_refused_total",
                                      "Requests the gate refused, by route class and reason.",
                                      (const char *[]){"class", "reason", NULL});
    g->audit_throttle = dagi_audit_throttle_new(0);
    g->audit_suppressed = dagi_metrics_counter(
        dagi_node_metrics(node), "dagi_gate_audit_suppressed_total",
        "Auth failures not audited: over one per ip per second, or over the total per second.",
        (const char *[]){"class", NULL});
    *out = g;
    return DAGI_OK;
}

int dagi_gate_reload(struct dagi_gate *g, const struct dagi_config *c, struct dagi_error *err)
{
    struct gate_conf *gc = NULL;
    int rc = conf_build(c, &gc, err);
    if (rc)
        return rc;
    conf_free(g->conf);
    g->conf = gc;
    return DAGI_OK;
}

void dagi_gate_free(struct dagi_gate *g)
{
    if (!g)
        return;
    conf_free(g->conf);
    dagi_ratelimit_free(g->rl);
    dagi_audit_throttle_free(g->audit_throttle);
    free(g);
}

int dagi_gate_hook_secrets(struct dagi_gate *g, const char *agent_id,
                           struct dagi_hooksig_secret *out, size_t *n, int64_t *tolerance_ms)
{
    for (size_t i = 0; i < g->conf->hook_count; i++) {
        struct gate_hook *h = &g->conf->hooks[i];
        if (strcmp(h->agent, agent_id) != 0)
            continue;
        for (size_t j = 0; j < h->n; j++)
            out[j] = (struct dagi_hooksig_secret){h->secret[j], h->len[j]};
        *n = h->n;
        *tolerance_ms = g->conf->hook_tolerance_ms;
        return DAGI_OK;
    }
    return DAGI_ENOENT;
}

/* --- answers --- */

static const char *class_of(const struct dagi_http_route *route)
{
    return route->class ? route->class : "ops";
}

static bool openai_shape(const struct dagi_http_route *route)
{
    return route->class && strcmp(route->class, "openai") == 0;
}

/* gateway/auth_failed for a 401 or 403: the route, the reason and the ip,
 * never the credential. */
static void audit_refusal(struct dagi_gate *g, struct dagi_http_req *req,
                          const struct dagi_http_route *route, const char *reason)
{
    const struct dagi_caller *c = dagi_gate_caller(req);
    const char *ip = c ? c->ip : "";
    if (!dagi_audit_throttle_allow(g->audit_throttle, ip, dagi_clock_now_ms())) {
        dagi_metric_inc(g->audit_suppressed, (const char *[]){class_of(route)});
        return;
    }
    char subject[300];
    snprintf(subject, sizeof(subject), "route:%s %s", route->method, route->pattern);
    json_t *meta = json_pack("{s:s,s:s,s:s}", "class", class_of(route), "reason", reason, "ip", ip);
    dagi_audit_emit(g->node, &(struct dagi_audit_event){
                                 .service = "gateway",
                                 .action = "auth_failed",
                                 .actor = c && c->user_id[0] ? c->user_id : "anonymous",
                                 .subject = subject,
                                 .decision = "deny",
                                 .trace_id = dagi_http_req_trace_id(req),
                                 .metadata = meta,
                             });
    json_decref(meta);
}

static int refuse(struct dagi_gate *g, struct dagi_http_req *req,
                  const struct dagi_http_route *route, int status, const char *reason,
                  const char *message)
{
    dagi_metric_inc(g->refused, (const char *[]){class_of(route), reason});
    if (status == 401 || status == 403)
        audit_refusal(g, req, route, reason);
    if (status == 401)
        dagi_http_set_header(req, "WWW-Authenticate", "Bearer");
    if (openai_shape(route)) {
        const char *type = status == 429 ? "requests" : "invalid_request_error";
        const char *code = status == 429   ? "rate_limit_exceeded"
                           : status == 401 ? "invalid_api_key"
                                           : reason;
        dagi_http_respond_json(req, status,
                               json_pack("{s:{s:s,s:s,s:n,s:s}}", "error", "message", message,
                                         "type", type, "param", "code", code));
    } else {
        const char *code = status == 429   ? "rate_limited"
                           : status == 401 ? "unauthorized"
                           : status == 403 ? "forbidden"
                                           : reason;
        dagi_http_respond_error(req, status, code, NULL, "%s", message);
    }
    return -1;
}

static int too_many(struct dagi_gate *g, struct dagi_http_req *req,
                    const struct dagi_http_route *route, int64_t wait_ms)
{
    char after[32];
    snprintf(after, sizeof(after), "%lld", (long long)((wait_ms + 999) / 1000));
    dagi_http_set_header(req, "Retry-After", after);
    char message[128];
    snprintf(message, sizeof(message), "rate limit reached; retry in %s s", after);
    return refuse(g, req, route, 429, "rate_limited", message);
}

/* --- the caller --- */

const struct dagi_caller *dagi_gate_caller(struct dagi_http_req *req)
{
    return dagi_http_req_principal(req);
}

static struct dagi_caller *caller_new(struct dagi_http_req *req)
{
    struct dagi_caller *c = dagi_arena_zalloc(dagi_http_req_arena(req), sizeof(*c));
    const char *peer = dagi_http_req_peer(req);
    const char *colon = peer ? strrchr(peer, ':') : NULL;
    size_t n = colon ? (size_t)(colon - peer) : peer ? strlen(peer) : 0;
    if (n >= sizeof(c->ip))
        n = sizeof(c->ip) - 1;
    if (n)
        memcpy(c->ip, peer, n);
    dagi_http_req_set_principal(req, c);
    return c;
}

static void copy_roles(struct dagi_caller *c, const char *const *roles, size_t n)
{
    for (size_t i = 0; i < n && c->role_count < DAGI_CALLER_ROLES_MAX; i++) {
        snprintf(c->roles[c->role_count++], DAGI_CALLER_ROLE_MAX + 1, "%s", roles[i]);
        if (strcmp(roles[i], "admin") == 0)
            c->is_admin = true;
    }
}

static void from_key(struct dagi_caller *c, const struct dagi_principal *p)
{
    c->kind = DAGI_CALLER_KEY;
    snprintf(c->user_id, sizeof(c->user_id), "%s", p->user_id);
    snprintf(c->key_id, sizeof(c->key_id), "%s", p->key_id);
    snprintf(c->team, sizeof(c->team), "%s", p->team);
    const char *roles[DAGI_KEYSTORE_ROLES_MAX];
    for (size_t i = 0; i < p->role_count; i++)
        roles[i] = p->roles[i];
    copy_roles(c, roles, p->role_count);
}

static int from_jwt(struct dagi_gate *g, struct dagi_http_req *req, struct dagi_caller *c,
                    const char *token, size_t len, struct dagi_error *err)
{
    if (!g->conf->jwt)
        return dagi_error_set(err, DAGI_EPERM, "JWTs are not accepted here (auth.jwt.keys)");
    struct dagi_jwt_opts o;
    dagi_jwt_opts_init(&o, dagi_clock_now_ms() / 1000);
    o.issuer = g->conf->issuer;
    o.audience = g->conf->audience;
    o.leeway_s = g->conf->leeway_s;
    struct dagi_jwt_claims claims;
    int rc = dagi_jwt_verify(g->conf->jwt, token, len, &o, dagi_http_req_arena(req), &claims, err);
    if (rc)
        return rc;
    c->kind = DAGI_CALLER_JWT;
    snprintf(c->user_id, sizeof(c->user_id), "%s", claims.sub);
    snprintf(c->team, sizeof(c->team), "%s", claims.team ? claims.team : "");
    copy_roles(c, claims.roles, claims.role_count);
    return DAGI_OK;
}

/* After the credential: admin routes, then the caller's own buckets. */
static int after_credential(struct dagi_gate *g, struct dagi_http_req *req,
                            const struct dagi_http_route *route, struct dagi_caller *c)
{
    if ((route->flags & DAGI_ROUTE_ADMIN) && !c->is_admin)
        return refuse(g, req, route, 403, "not_admin",
                      "this route needs the admin key or the admin role");
    int64_t wait = gate_limits_take(g->conf->limits, g->rl, class_of(route), -1, c,
                                    dagi_clock_now_ms());
    return wait ? too_many(g, req, route, wait) : 0;
}

/* A key the cache does not hold: looked up on the pool. */
struct lookup {
    struct dagi_gate *g;
    struct dagi_http_req *req; /* NULL once the client left */
    const struct dagi_http_route *route;
    struct dagi_caller *caller;
    char *token;
    size_t len;
    int rc;
    struct dagi_principal p;
    struct dagi_error err;
};

static void lookup_work(void *ud)
{
    struct lookup *l = ud;
    l->rc = dagi_keystore_lookup(dagi_node_keystore(l->g->node), l->token, l->len,
                                 dagi_clock_now_ms(), &l->p, &l->err);
}

static void lookup_gone(struct dagi_http_req *req, void *ud)
{
    (void)req;
    struct lookup *l = ud;
    l->req = NULL;
}

static void lookup_done(void *ud, bool cancelled)
{
    struct lookup *l = ud;
    struct dagi_http_req *req = l->req;
    if (req) {
        dagi_http_req_on_close(req, NULL, NULL);
        if (cancelled) {
            refuse(l->g, req, l->route, 503, "unavailable", "the node is stopping");
        } else if (l->rc) {
            refuse(l->g, req, l->route, l->rc == DAGI_EPERM || l->rc == DAGI_ENOENT ||
                                                l->rc == DAGI_EPARSE
                                            ? 401
                                            : 503,
                   "bad_key", l->err.message[0] ? l->err.message : "the API key is not valid");
        } else {
            from_key(l->caller, &l->p);
            after_credential(l->g, req, l->route, l->caller);
        }
        dagi_http_req_gate_resume(req);
    }
    sodium_memzero(l->token, l->len);
    free(l->token);
    free(l);
}

static int bearer(struct dagi_gate *g, struct dagi_http_req *req,
                  const struct dagi_http_route *route, struct dagi_caller *c)
{
    const char *token;
    size_t len;
    if (!dagi_bearer_token(dagi_http_req_header(req, "authorization"), &token, &len))
        return refuse(g, req, route, 401, "no_credential",
                      "this route needs an API key: Authorization: Bearer <key>");
    if (dagi_admin_key_check(dagi_node_admin_key(g->node), token, len)) {
        c->kind = DAGI_CALLER_ADMIN;
        c->is_admin = true;
        snprintf(c->user_id, sizeof(c->user_id), "admin");
        return after_credential(g, req, route, c);
    }
    struct dagi_error err = {0};
    if (len > 5 && memcmp(token, "dagi_", 5) == 0) {
        struct dagi_keystore *ks = dagi_node_keystore(g->node);
        struct dagi_principal p;
        int rc = ks ? dagi_keystore_lookup_cached(ks, token, len, dagi_clock_now_ms(), &p, &err)
                    : DAGI_EUNAVAIL;
        if (rc == DAGI_EAGAIN) {
            struct lookup *l = dagi_xcalloc(1, sizeof(*l));
            *l = (struct lookup){.g = g, .req = req, .route = route, .caller = c,
                                 .token = dagi_xstrndup(token, len), .len = len};
            if (dagi_pool_submit(dagi_node_pool(g->node), lookup_work, lookup_done, l)) {
                free(l->token);
                free(l);
                return refuse(g, req, route, 503, "unavailable", "the key store is busy");
            }
            dagi_http_req_on_close(req, lookup_gone, l);
            return DAGI_HTTP_GATE_PENDING;
        }
        if (rc)
            return refuse(g, req, route, rc == DAGI_EUNAVAIL ? 503 : 401, "bad_key",
                          err.message[0] ? err.message : "the API key is not valid");
        from_key(c, &p);
        return after_credential(g, req, route, c);
    }
    if (memchr(token, '.', len)) {
        if (from_jwt(g, req, c, token, len, &err))
            return refuse(g, req, route, 401, "bad_token", err.message);
        return after_credential(g, req, route, c);
    }
    return refuse(g, req, route, 401, "bad_key", "the API key is not valid");
}

/* --- the server's callbacks --- */

int dagi_gate_check(struct dagi_http_req *req, const struct dagi_http_route *route, void *ud)
{
    struct dagi_gate *g = ud;
    struct dagi_caller *c = caller_new(req);
    int64_t now = dagi_clock_now_ms();
    int64_t wait = gate_limits_take(g->conf->limits, g->rl, class_of(route), 2 /* ip */, c, now);
    if (wait)
        return too_many(g, req, route, wait);
    const struct dagi_gate_rules *rules = route->gate_data;
    if (route->flags & DAGI_ROUTE_PUBLIC)
        return 0;
    if (rules && rules->verify) {
        c->kind = DAGI_CALLER_ROUTE;
        /* A streamed body gets no second look: such a route could never be
         * verified, so it is refused rather than left open. */
        if (rules->verify_needs_body && (route->flags & DAGI_ROUTE_STREAM_BODY))
            return refuse(g, req, route, 401, "bad_route_credential",
                          "this route's credential cannot be checked");
        if (rules->verify_needs_body)
            return 0; /* dagi_gate_check_body */
        struct dagi_error err = {0};
        if (rules->verify(req, route->ud, &err))
            return refuse(g, req, route, 401, "bad_route_credential", err.message);
        return 0;
    }
    return bearer(g, req, route, c);
}

int dagi_gate_check_body(struct dagi_http_req *req, const struct dagi_http_route *route,
                         void *ud)
{
    struct dagi_gate *g = ud;
    const struct dagi_gate_rules *rules = route->gate_data;
    if (!rules)
        return 0;
    if (rules->verify && rules->verify_needs_body) {
        struct dagi_error err = {0};
        if (rules->verify(req, route->ud, &err))
            return refuse(g, req, route, 401, "bad_route_credential", err.message);
    }
    if (rules->body && gate_body_check(req, rules->body, openai_shape(route))) {
        dagi_metric_inc(g->refused, (const char *[]){class_of(route), "invalid_body"});
        return -1;
    }
    return 0;
}
