/* POST /v1/hooks/{agent_id}: an outside system's JSON event becomes a
 * message to the agent.  The credential is the signature
 *
 *   X-Dagi-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
 *
 * with the agent's secret (auth.hooks; two during a rotation), checked by
 * the gate over the raw body in constant time, within auth.hook_tolerance
 * of now.  The same format signs dagi's own outbound callbacks.  The answer
 * is the agent's, as /v1/agents/{id}/infer gives it. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "auth/hooksig.h"
#include "core/clock.h"
#include "gateway_internal.h"

#define SIGNATURE_HEADER "X-Dagi-Signature"
#define MAX_EVENT_TEXT (48 * 1024)

static int verify_signature(struct dagi_http_req *req, void *ud, struct dagi_error *err)
{
    struct gw_state *gw = ud;
    const char *agent = dagi_http_req_param(req, "agent_id");
    struct dagi_hooksig_secret secrets[2];
    size_t n = 0;
    int64_t tolerance_ms = 0;
    if (dagi_gate_hook_secrets(dagi_node_gate(gw->node), agent, secrets, &n, &tolerance_ms))
        return dagi_error_set(err, DAGI_EPERM, "no signed webhook for this agent (auth.hooks)");
    const char *header = dagi_http_req_header(req, SIGNATURE_HEADER);
    if (!header)
        return dagi_error_set(err, DAGI_EPERM, "missing " SIGNATURE_HEADER);
    size_t len;
    const char *body = dagi_http_req_body(req, &len);
    return dagi_hooksig_verify(header, (const uint8_t *)body, len, secrets, n,
                               dagi_clock_now_ms() / 1000, tolerance_ms / 1000, err);
}

static const struct dagi_body_field event_fields[] = {
    {"type", DAGI_BODY_STRING, false, 128},
    {"text", DAGI_BODY_STRING, false, MAX_EVENT_TEXT},
};
/* Events are the outside system's own JSON: anything else is the event. */
static const struct dagi_body_rules event_body = {event_fields, DAGI_ARRAY_LEN(event_fields),
                                                  false};
static const struct dagi_gate_rules hook_rules = {
    .verify = verify_signature, .verify_needs_body = true, .body = &event_body};

static void on_hook(struct dagi_http_req *req, void *ud)
{
    struct gw_state *gw = ud;
    int64_t t0 = dagi_clock_mono_ns();
    json_t *in = NULL;
    if (dagi_http_req_json(req, &in) < 0)
        return;
    const char *agent = dagi_http_req_param(req, "agent_id");
    /* The message: the event's own text when it has one, else the event as
     * JSON, introduced so the agent knows what it is reading. */
    const char *type = json_string_value(json_object_get(in, "type"));
    const char *text = json_string_value(json_object_get(in, "text"));
    char *dump = text ? NULL : json_dumps(in, JSON_COMPACT | JSON_SORT_KEYS);
    size_t dlen = dump ? strlen(dump) : 0;
    if (dlen > MAX_EVENT_TEXT) {
        free(dump);
        json_decref(in);
        dagi_http_respond_error(req, 413, "too_large", NULL, "event over %d bytes as text",
                                MAX_EVENT_TEXT);
        return;
    }
    json_t *out = json_pack("{s:s,s:s,s:s,s:{s:s,s:s}}", "agent_id", agent, "channel", "webhook",
                            "user_id", "", "metadata", "source", "webhook", "event_type",
                            type ? type : "");
    char user[96];
    snprintf(user, sizeof(user), "hook:%s", agent);
    json_object_set_new(out, "user_id", json_string(user));
    char *message = dagi_xasprintf("Event%s%s: %s", type ? " " : "", type ? type : "",
                                   text ? text : dump);
    json_object_set_new(out, "message", json_string(message));
    free(message);
    free(dump);
    json_decref(in);
    gw_ask_router(gw, req, &gw_infer_ops, out, false, t0, NULL);
}

int gw_hooks_register(struct gw_state *gw, struct dagi_error *err)
{
    const struct dagi_http_route route = {"POST", "/v1/hooks/{agent_id}", on_hook, gw, 0,
                                          GW_MAX_BODY, "hooks", &hook_rules};
    int rc = dagi_http_server_add_route(dagi_node_http(gw->node), &route);
    if (rc)
        return dagi_error_set(err, rc, "gateway: cannot add route POST /v1/hooks/{agent_id}");
    return DAGI_OK;
}
