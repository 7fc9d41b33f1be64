/* The pdp's HTTP routes (pdp.h): POST /v1/pdp/decide and GET /v1/pdp/bundle.
 *
 * Who may ask for a decision is itself a decision: the admin key may;
 * anyone else needs pdp.decide from the bundle, asked with the caller's
 * own subjects (its user, key, team and key roles) - and a refusal is
 * reported like any other deny. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/http_server.h"
#include "core/mem.h"
#include "cplane/cplane.h"
#include "node/gate.h"
#include "pdp/pdp_internal.h"

/* "user:<id>", "key:<id>", "team:<id>", "role:<r>" per role. */
#define CALLER_SUBJECTS (3 + DAGI_CALLER_ROLES_MAX)
#define SUBJECT_BYTES (DAGI_CALLER_ID_MAX + 8)

struct caller_subjects {
    char principal[SUBJECT_BYTES];
    char names[CALLER_SUBJECTS][SUBJECT_BYTES];
    const char *list[CALLER_SUBJECTS];
    size_t n;
};

static void add(struct caller_subjects *s, const char *kind, const char *id)
{
    if (!id || !*id || s->n >= CALLER_SUBJECTS)
        return;
    snprintf(s->names[s->n], SUBJECT_BYTES, "%s:%s", kind, id);
    s->list[s->n] = s->names[s->n];
    s->n++;
}

static void subjects_of(const struct dagi_caller *c, struct caller_subjects *s)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->principal, sizeof(s->principal), "user:%s", c->user_id);
    add(s, "user", c->user_id);
    add(s, "key", c->key_id);
    add(s, "team", c->team);
    for (size_t i = 0; i < c->role_count; i++)
        add(s, "role", c->roles[i]);
}

/* True when the caller may ask; otherwise answers 403. */
static bool may_decide(struct pdp_state *p, struct dagi_http_req *req)
{
    const struct dagi_caller *c = dagi_gate_caller(req);
    if (c && c->kind == DAGI_CALLER_ADMIN)
        return true;
    struct dagi_authz_decision d = {false, "no_grant", NULL};
    if (c) {
        struct caller_subjects s;
        subjects_of(c, &s);
        struct dagi_authz_request ask = {s.principal, s.list, s.n, c->team, "pdp.decide", NULL};
        pdp_decide(p, dagi_http_req_trace_id(req), &ask, &d);
    }
    if (d.allow)
        return true;
    dagi_http_respond_error(req, 403, "forbidden", NULL,
                            "asking for policy decisions needs pdp.decide (%s)", d.reason);
    return false;
}

static void on_decide(struct dagi_http_req *req, void *ud)
{
    struct pdp_state *p = ud;
    if (!may_decide(p, req))
        return;
    json_t *doc;
    if (dagi_http_req_json(req, &doc) != 0)
        return; /* answered 400 / 415 */
    const char *subjects[DAGI_AUTHZ_REQUEST_SUBJECTS_MAX];
    const char *field = NULL;
    char why[256];
    struct dagi_authz_request ask;
    if (dagi_authz_request_from_json(doc, &ask, subjects, &field, why, sizeof(why)) != 0) {
        dagi_http_respond_error(req, 400, "invalid_field", field, "%s", why);
        json_decref(doc);
        return;
    }
    struct dagi_authz_decision d;
    pdp_decide(p, dagi_http_req_trace_id(req), &ask, &d);
    json_decref(doc);
    dagi_http_respond_json(req, 200, dagi_authz_decision_to_json(&d));
}

static void on_bundle(struct dagi_http_req *req, void *ud)
{
    struct pdp_state *p = ud;
    struct dagi_authz_summary s;
    dagi_authz_bundle_summary(pdp_bundle(p), &s);
    json_t *doc = json_pack("{s:b,s:I}", "loaded", pdp_bundle(p) != NULL, "loaded_at_ms",
                            (json_int_t)p->loaded_at_ms);
    if (pdp_bundle(p)) {
        json_object_set_new(doc, "source", json_string(s.source));
        json_object_set_new(doc, "checksum", json_string(s.checksum));
        const struct {
            const char *name;
            size_t n;
        } counts[] = {{"roles", s.roles},       {"grants", s.grants}, {"denies", s.denies},
                      {"bindings", s.bindings}, {"plans", s.plans},   {"teams", s.teams}};
        for (size_t i = 0; i < DAGI_ARRAY_LEN(counts); i++)
            json_object_set_new(doc, counts[i].name, json_integer((json_int_t)counts[i].n));
    }
    dagi_http_respond_json(req, 200, doc);
}

/* GET /v1/pdp/flags/{id}?principal=&team=: a feature flag's answer for a
 * principal (cplane/flags.h), for systems outside the node. */
static void on_flag(struct dagi_http_req *req, void *ud)
{
    struct pdp_state *p = ud;
    const char *id = dagi_http_req_param(req, "id");
    const char *principal = dagi_http_req_query_param(req, "principal");
    const char *team = dagi_http_req_query_param(req, "team");
    const struct dagi_flags *flags = &dagi_cplane_current(p->cp)->flags;
    bool known = false;
    for (size_t i = 0; i < flags->count; i++)
        known |= !strcmp(flags->items[i].id, id);
    if (!known) {
        dagi_http_respond_error(req, 404, "not_found", "id", "no flag \"%.64s\"", id);
        return;
    }
    bool on = dagi_flags_on(flags, id, principal, team);
    dagi_http_respond_json(req, 200, json_pack("{s:s,s:b,s:o,s:o}", "flag", id, "on", on,
                                               "principal",
                                               principal ? json_string(principal) : json_null(),
                                               "team", team ? json_string(team) : json_null()));
}

void pdp_routes_register(struct pdp_state *p)
{
    const struct dagi_http_route routes[] = {
        {"POST", "/v1/pdp/decide", on_decide, p, 0, 64 * 1024, "ops", NULL},
        {"GET", "/v1/pdp/bundle", on_bundle, p, DAGI_ROUTE_ADMIN, 0, "admin", NULL},
        {"GET", "/v1/pdp/flags/{id}", on_flag, p, DAGI_ROUTE_ADMIN, 0, "admin", NULL},
    };
    struct dagi_http_server *srv = dagi_node_http(p->node);
    for (size_t i = 0; i < DAGI_ARRAY_LEN(routes); i++)
        dagi_http_server_add_route(srv, &routes[i]);
}
