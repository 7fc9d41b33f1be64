/* The webhook routes (tg_role.c has the overview).
 *
 * Telegram retries an update until it gets a 2xx, so 200 means exactly
 * this: the update is sealed and stored in JetStream.  A wrong or missing
 * secret is 401 and nothing else happens; a store that is down is 503
 * (Telegram retries later).  The update is stored with Nats-Msg-Id
 * "tg.<agent>.<update_id>", so a retry Telegram makes while our first 200
 * was in flight is stored once. */
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/event.h"
#include "bus/js.h"
#include "core/buf.h"
#include "core/http_server.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "core/seal.h"
#include "node/gate.h"
#include "node/node.h"
#include "telegram/tg_internal.h"

#define SECRET_HEADER "X-Telegram-Bot-Api-Secret-Token"

/* A webhook waiting for the stream's ack; req is NULL once the client left. */
struct pending {
    struct dagi_http_req *req;
    struct tg_state *tg;
    char agent_id[64];
};

static void count(struct tg_state *tg, const char *agent, const char *result)
{
    dagi_metric_inc(tg->updates, (const char *[]){agent, result});
}

static void on_client_gone(struct dagi_http_req *req, void *ud)
{
    (void)req;
    struct pending *p = ud;
    p->req = NULL;
}

static void on_stored(void *ud, int err, uint64_t seq, bool duplicate)
{
    (void)seq;
    struct pending *p = ud;
    if (p->req) {
        dagi_http_req_on_close(p->req, NULL, NULL);
        if (err) {
            dagi_http_set_header(p->req, "Retry-After", "1");
            dagi_http_respond_error(p->req, 503, "unavailable", NULL,
                                    "the update could not be stored; retry");
        } else {
            dagi_http_respond_json(p->req, 200, json_pack("{s:b}", "ok", 1));
        }
    }
    count(p->tg, p->agent_id, err ? "store_failed" : duplicate ? "duplicate" : "accepted");
    if (err)
        dagi_log_warn(NULL, "telegram: an update could not be stored", "agent", p->agent_id,
                      "error", dagi_strerror(err));
    free(p);
}

static bool secret_ok(const struct tg_bot *bot, const char *given)
{
    size_t n = strlen(bot->secret);
    if (!n || !given || strlen(given) != n)
        return false;
    return sodium_memcmp(bot->secret, given, n) == 0;
}

static const char *agent_of(struct dagi_http_req *req, struct tg_state *tg)
{
    const char *id = dagi_http_req_param(req, "agent_id");
    return id ? id : dagi_node_cfg(tg->node)->telegram.default_agent;
}

/* The gate's check of the route's own credential, before the body is read:
 * the secret Telegram echoes back, compared in constant time. */
static int verify_secret(struct dagi_http_req *req, void *ud, struct dagi_error *err)
{
    struct tg_state *tg = ud;
    struct tg_bot *bot = tg_snap_find(tg->snap, agent_of(req, tg));
    /* No bot here: the same 401, so the route does not tell which agents
     * have bots. */
    if (!bot || !bot->token[0])
        return dagi_error_set(err, DAGI_EPERM, "missing or wrong " SECRET_HEADER);
    if (!secret_ok(bot, dagi_http_req_header(req, SECRET_HEADER))) {
        count(tg, bot->agent->id, "unauthorized");
        return dagi_error_set(err, DAGI_EPERM, "missing or wrong " SECRET_HEADER);
    }
    return 0;
}

static const struct dagi_gate_rules webhook_rules = {.verify = verify_secret};

static void handle(struct dagi_http_req *req, struct tg_state *tg, const char *agent_id)
{
    struct tg_bot *bot = tg_snap_find(tg->snap, agent_id);
    if (!bot || !bot->token[0]) {
        dagi_http_respond_error(req, 404, "not_found", "agent_id",
                                "no Telegram bot for this agent on this node");
        return;
    }
    if (tg->draining) {
        dagi_http_set_header(req, "Retry-After", "1");
        dagi_http_respond_error(req, 503, "unavailable", NULL, "this node is stopping");
        return;
    }
    size_t len;
    const char *body = dagi_http_req_body(req, &len);
    json_error_t jerr;
    json_t *update = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *uid = json_object_get(update, "update_id");
    if (!json_is_object(update) || !json_is_integer(uid)) {
        json_decref(update);
        count(tg, bot->agent->id, "malformed");
        dagi_http_respond_error(req, 400, "invalid", "update_id",
                                "the body must be a Telegram Update with an update_id");
        return;
    }
    struct dagi_js *js = dagi_node_js(tg->node);
    if (!js) {
        json_decref(update);
        dagi_http_set_header(req, "Retry-After", "5");
        dagi_http_respond_error(req, 503, "unavailable", NULL,
                                "updates need JetStream (bus.url) and it is not configured");
        return;
    }
    long long update_id = (long long)json_integer_value(uid);
    json_decref(update);
    /* The work item (docs/NATS_SUBJECTS.md, "Work"): the envelope with the
     * routing metadata in clear and the update, as Telegram sent it, sealed. */
    char aad[TG_AAD_MAX];
    int aad_len = snprintf(aad, sizeof(aad), "%s/%s", TG_WORK_SUBJECT, bot->agent->id);
    struct dagi_buf sealed;
    dagi_buf_init(&sealed, len + DAGI_SEAL_OVERHEAD + 64);
    int rc = dagi_seal(dagi_node_seal(tg->node), body, len, aad, (size_t)aad_len, &sealed);
    char *event = NULL;
    if (!rc) {
        size_t b64 = sodium_base64_ENCODED_LEN(sealed.len, sodium_base64_VARIANT_ORIGINAL);
        char *text = dagi_xmalloc(b64);
        sodium_bin2base64(text, b64, (const unsigned char *)sealed.data, sealed.len,
                          sodium_base64_VARIANT_ORIGINAL);
        json_t *data = json_pack("{s:s,s:s,s:I,s:s}", "kind", "telegram", "agent_id",
                                 bot->agent->id, "update_id", (json_int_t)update_id, "sealed",
                                 text);
        free(text);
        event = dagi_event_build("dagi.work", "telegram", dagi_http_req_trace_id(req), data,
                                 NULL);
    }
    struct pending *p = NULL;
    if (!rc) {
        p = dagi_xcalloc(1, sizeof(*p));
        p->req = req;
        p->tg = tg;
        snprintf(p->agent_id, sizeof(p->agent_id), "%s", bot->agent->id);
        char msg_id[128];
        snprintf(msg_id, sizeof(msg_id), "tg.%s.%lld", bot->agent->id, update_id);
        rc = dagi_js_publish(js, TG_WORK_SUBJECT, event, strlen(event), msg_id, NULL, 0,
                             on_stored, p);
    }
    dagi_buf_release(&sealed);
    free(event);
    if (rc) {
        free(p);
        count(tg, bot->agent->id, "store_failed");
        dagi_http_set_header(req, "Retry-After", "1");
        dagi_http_respond_error(req, 503, "unavailable", NULL,
                                "the update could not be stored; retry");
        return;
    }
    dagi_http_req_on_close(req, on_client_gone, p);
}

/* Also the original's POST /telegram/webhook: telegram.default_agent's bot. */
static void on_webhook(struct dagi_http_req *req, void *ud)
{
    handle(req, ud, agent_of(req, ud));
}

int tg_webhook_register(struct tg_state *tg, struct dagi_error *err)
{
    const struct dagi_config *c = dagi_node_cfg(tg->node);
    size_t cap = (size_t)c->telegram.max_update;
    /* Telegram cannot send an API key: the secret header is the route's own
     * credential, which the gate checks before the body is read. */
    const struct dagi_http_route routes[] = {
        {"POST", "/telegram/{agent_id}/webhook", on_webhook, tg, 0, cap, "telegram",
         &webhook_rules},
        {"POST", "/{agent_id}/telegram/webhook", on_webhook, tg, 0, cap, "telegram",
         &webhook_rules},
        {"POST", "/telegram/webhook", on_webhook, tg, 0, cap, "telegram", &webhook_rules},
    };
    struct dagi_http_server *srv = dagi_node_http(tg->node);
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        int rc = dagi_http_server_add_route(srv, &routes[i]);
        if (rc)
            return dagi_error_set(err, rc, "telegram: cannot add route %s %s", routes[i].method,
                                  routes[i].pattern);
    }
    return DAGI_OK;
}
