/* The telegram role: the agents' Telegram bots.
 *
 *   webhook (tg_webhook.c)  POST /telegram/{agent_id}/webhook (and the
 *                           original's two paths): the secret header is
 *                           checked, the update sealed and stored in
 *                           JetStream (dagi.work.telegram), then 200 - so a
 *                           crash never loses an update Telegram was told
 *                           we have.
 *   worker (tg_worker.c)    consumes dagi.work.telegram: once per bot and
 *                           update_id (tg_store.c), asks the router (which
 *                           applies the behaviour policy) and sends the
 *                           answer through the Bot API (tg_client.c),
 *                           split at Telegram's limit (tg_split.c).
 *
 * Bots come from the agent registry: an agent with telegram.token_env whose
 * variable is set.  The tokens live in memory only and never reach a log. */
#include "telegram/telegram.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/log.h"
#include "cplane/cplane.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "node/node.h"
#include "telegram/tg_internal.h"

struct tg_snap *tg_snap_ref(struct tg_snap *s)
{
    atomic_fetch_add(&s->refs, 1);
    return s;
}

void tg_snap_unref(struct tg_snap *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    if (s->bots)
        sodium_memzero(s->bots, s->count * sizeof(*s->bots));
    free(s->bots);
    dagi_registry_unref(s->reg);
    free(s);
}

struct tg_bot *tg_snap_find(struct tg_snap *s, const char *id)
{
    for (size_t i = 0; s && i < s->count; i++)
        if (strcmp(s->bots[i].agent->id, id) == 0)
            return &s->bots[i];
    return NULL;
}

static void copy_env(char *out, size_t cap, const char *name)
{
    const char *v = name ? getenv(name) : NULL;
    out[0] = '\0';
    if (v && strlen(v) < cap)
        memcpy(out, v, strlen(v) + 1);
}

/* The bots of a registry (NULL = none). */
static struct tg_snap *snap_from(struct dagi_registry *reg)
{
    struct tg_snap *s = dagi_xcalloc(1, sizeof(*s));
    atomic_init(&s->refs, 1);
    s->reg = reg ? dagi_registry_ref(reg) : NULL;
    size_t n = s->reg ? dagi_registry_count(s->reg) : 0;
    s->bots = dagi_xcalloc(n ? n : 1, sizeof(*s->bots));
    for (size_t i = 0; i < n; i++) {
        const struct dagi_agent *a = dagi_registry_agent(s->reg, i);
        if (!a->telegram.token_env)
            continue;
        struct tg_bot *b = &s->bots[s->count++];
        b->agent = a;
        copy_env(b->token, sizeof(b->token), a->telegram.token_env);
        copy_env(b->secret, sizeof(b->secret), a->telegram.webhook_secret_env);
        snprintf(b->username, sizeof(b->username), "%s",
                 a->telegram.username ? a->telegram.username : "");
        if (!b->token[0])
            dagi_log_info(NULL, "telegram: bot token not set; the agent has no bot here", "agent",
                          a->id, "variable", a->telegram.token_env);
        else if (!b->secret[0])
            dagi_log_warn(NULL,
                          "telegram: no webhook secret set; its webhook refuses every update",
                          "agent", a->id, "variable",
                          a->telegram.webhook_secret_env ? a->telegram.webhook_secret_env
                                                         : "(telegram.webhook_secret_env unset)");
    }
    return s;
}

/* --- getMe: the bot's id and username, for "addressed to the bot" --- */

struct me_req {
    struct tg_state *tg;
    struct tg_snap *snap;
    struct tg_bot *bot;
};

static void on_me(void *ud, int err, const json_t *result, const struct dagi_tg_api_error *api_err,
                  const char *message)
{
    (void)api_err;
    struct me_req *m = ud;
    struct dagi_tg_me me;
    struct dagi_error perr = {0};
    if (err || dagi_tg_parse_me(result, &me, &perr)) {
        dagi_log_warn(NULL, "telegram: getMe failed; mentions are matched by username only",
                      "agent", m->bot->agent->id, "error", err ? message : perr.message);
    } else {
        m->bot->id = me.id;
        if (m->bot->username[0] && strcasecmp(m->bot->username, me.username) != 0)
            dagi_log_warn(NULL, "telegram: the registry's username differs from getMe's", "agent",
                          m->bot->agent->id, "registry", m->bot->username, "telegram",
                          me.username);
        snprintf(m->bot->username, sizeof(m->bot->username), "%s", me.username);
    }
    tg_snap_unref(m->snap);
    free(m);
}

static void learn_bots(struct tg_state *tg)
{
    struct tg_snap *s = tg->snap;
    for (size_t i = 0; i < s->count; i++) {
        struct tg_bot *b = &s->bots[i];
        if (!b->token[0])
            continue;
        struct me_req *m = dagi_xcalloc(1, sizeof(*m));
        m->tg = tg;
        m->snap = tg_snap_ref(s);
        m->bot = b;
        json_t *body = NULL;
        dagi_tg_body_get_me(&body);
        if (dagi_tg_call(tg->api, b->token, "getMe", body, on_me, m, NULL)) {
            tg_snap_unref(m->snap);
            free(m);
        }
    }
}

/* --- lifecycle --- */

/* A new registry from the control plane: new bots, same knowledge. */
static void on_agents_changed(void *ud, struct dagi_cplane_snap *cs)
{
    struct tg_state *tg = ud;
    struct tg_snap *s = snap_from(cs->agents);
    /* What getMe taught us about a bot that is still there stays known. */
    for (size_t i = 0; i < s->count; i++) {
        struct tg_bot *old = tg_snap_find(tg->snap, s->bots[i].agent->id);
        if (old && old->id && strcmp(old->token, s->bots[i].token) == 0) {
            s->bots[i].id = old->id;
            memcpy(s->bots[i].username, old->username, sizeof(old->username));
        }
    }
    tg_snap_unref(tg->snap);
    tg->snap = s;
    if (tg->api)
        learn_bots(tg);
}

static int tg_init(struct dagi_node *node, void **state, struct dagi_error *err)
{
    struct tg_state *tg = dagi_xcalloc(1, sizeof(*tg));
    tg->node = node;
    tg->cp = dagi_cplane_get(node, err);
    if (!tg->cp) {
        free(tg);
        return err->code ? err->code : DAGI_EINVAL;
    }
    tg->snap = snap_from(dagi_cplane_current(tg->cp)->agents);
    int rc;
    struct dagi_metrics *mx = dagi_node_metrics(node);
    tg->updates = dagi_metrics_counter(
        mx, "dagi_telegram_updates_total",
        "Telegram updates by what became of them (accepted at the webhook, refused, answered, "
        "duplicate, silent, failed).",
        (const char *[]){"agent_id", "result", NULL});
    tg->messages = dagi_metrics_counter(mx, "dagi_telegram_messages_sent_total",
                                        "Messages sent through the Bot API.",
                                        (const char *[]){"agent_id", NULL});
    rc = tg_webhook_register(tg, err);
    if (rc) {
        tg_snap_unref(tg->snap);
        free(tg);
        return rc;
    }
    dagi_cplane_on_change(tg->cp, on_agents_changed, tg);
    *state = tg;
    return DAGI_OK;
}

static int tg_start(struct dagi_node *node, void *state, struct dagi_error *err)
{
    struct tg_state *tg = state;
    const struct dagi_config *c = dagi_node_cfg(node);
    tg->api = dagi_tg_client_new(dagi_node_base(node), dagi_node_http_client(node),
                                 &(struct dagi_tg_client_opts){
                                     .api_base = c->telegram.api_base,
                                     .attempts = (unsigned)c->telegram.send_attempts,
                                 });
    learn_bots(tg);
    return tg_worker_start(tg, err);
}

static int tg_reload(struct dagi_node *node, void *state, struct dagi_error *err)
{
    (void)node;
    struct tg_state *tg = state;
    /* A rebuild that succeeds reaches on_agents_changed. */
    int rc = dagi_cplane_rebuild(tg->cp, err);
    if (rc)
        dagi_log_error(NULL, "telegram: reload refused, keeping the previous bots", "error",
                       err->message);
    return rc;
}

static void tg_drain(struct dagi_node *node, void *state)
{
    (void)node;
    struct tg_state *tg = state;
    tg->draining = true;
}

static void tg_stop(struct dagi_node *node, void *state)
{
    (void)node;
    struct tg_state *tg = state;
    dagi_cplane_off_change(tg->cp, on_agents_changed, tg);
    tg_worker_stop(tg);
    dagi_tg_client_free(tg->api);
    tg_snap_unref(tg->snap);
    free(tg);
}

const struct dagi_role dagi_role_telegram = {
    .name = "telegram",
    .help = "the agents' Telegram bots: webhooks, the behaviour policy, replies",
    .init = tg_init,
    .start = tg_start,
    .reload = tg_reload,
    .drain = tg_drain,
    .stop = tg_stop,
};
