/* The worker (tg_role.c has the overview): one job per stored update.
 *
 *   open the seal -> parse -> claim (agent, update_id) in the store
 *     -> /start, /help: the registry's text; /consent: the sender's
 *        consent for this agent (privacy/consent_command.h)
 *     -> otherwise (a photo fetched first) ask the router, which applies
 *        the behaviour policy; "typing..." only when the answer is slow
 *   -> send the answer in parts -> mark it done -> ack.
 *
 * What can be retried later (the router or the Bot API unavailable) is
 * failed back to JetStream, which redelivers with back-off and dead-letters
 * after bus.consumer.max_deliver.  What never will work (a chat that
 * blocked the bot, a malformed update) is logged and acked.  An update is
 * answered at least once: a crash between the answer and the ack answers it
 * again, anything else is caught by the store's "done" mark. */
#include <event2/event.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "bus/event.h"
#include "bus/js.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "core/seal.h"
#include "identity/identity.h"
#include "node/node.h"
#include "privacy/consent_command.h"
#include "privacy/consent_routes.h"
#include "quota/quota_reply.h"
#include "store/db.h"
#include "telegram/tg_internal.h"
#include "telegram/tg_split.h"
#include "telegram/tg_update.h"

#define ROUTER_SUBJECT "dagi.router.infer"
#define MAX_PARTS 16         /* 64K characters of answer; the rest is cut */
#define TYPING_EVERY_MS 4500 /* Telegram shows "typing" for about 5 s */

struct tg_job {
    struct tg_job *prev, *next;
    struct tg_state *tg;
    struct tg_snap *snap; /* referenced: bot points into it */
    struct tg_bot *bot;
    struct dagi_js_delivery *d;
    struct dagi_arena *arena;
    const struct dagi_tg_update *u;
    char agent_id[64];
    char trace_id[48];
    struct dagi_bus_call *router;
    struct dagi_tg_call *api;
    struct event *typing;
    char *image; /* data: URL of the photo */
    json_t *answer; /* the router's final (owned) */
    const char *text; /* the text to send, inside answer, notice or the registry */
    char notice[512]; /* a refusal's short text (over budget) */
    char team[129];   /* the team the chat is mapped to; "" = none */
    size_t text_len;
    struct dagi_tg_slice parts[MAX_PARTS];
    size_t nparts, sent;
    bool db_busy, stopping;
    const char *result; /* what the ack counts once the store says done */
};

/* --- the job's life --- */

static void job_free(struct tg_job *j)
{
    struct tg_state *tg = j->tg;
    if (j->stopping) {
        /* Detached at stop: the role is gone, only the job's own memory is
         * left (its delivery is redelivered after ack_wait). */
    } else if (j->prev) {
        j->prev->next = j->next;
    } else if (tg->jobs == j) {
        tg->jobs = j->next;
    }
    if (!j->stopping && j->next)
        j->next->prev = j->prev;
    if (j->router)
        dagi_bus_call_cancel(j->router);
    dagi_tg_call_cancel(j->api);
    if (j->typing)
        event_free(j->typing);
    json_decref(j->answer);
    free(j->image);
    if (j->arena)
        dagi_arena_free(j->arena);
    tg_snap_unref(j->snap);
    free(j);
}

static void count(struct tg_job *j, const char *result)
{
    dagi_metric_inc(j->tg->updates, (const char *[]){j->agent_id[0] ? j->agent_id : "unknown",
                                                     result});
}

/* The end that needs no retry: ack. */
static void job_ack(struct tg_job *j, const char *result)
{
    count(j, result);
    dagi_js_ack(j->d);
    job_free(j);
}

/* The end that a later delivery may fix: back to JetStream. */
static void job_retry(struct tg_job *j, const char *why)
{
    count(j, "failed");
    dagi_log_warn(j->trace_id, "telegram: update not answered, it will be redelivered", "agent",
                  j->agent_id, "error", why);
    dagi_js_fail(j->d, why);
    job_free(j);
}

/* --- the store: claim and done, on the pool --- */

struct db_step {
    struct tg_job *j;
    int64_t update_id, now_ms;
    enum tg_seen seen;
    bool done; /* mark done instead of claim */
    char agent_id[64];
    struct dagi_graph *graph; /* the identity graph: the chat's team; NULL = none */
    int64_t chat_id;
    char team[129];
};

static int db_work(struct dagi_db_conn *conn, void *ud, struct dagi_error *err)
{
    struct db_step *s = ud;
    if (s->done)
        return tg_store_done(conn, s->agent_id, s->update_id, s->now_ms, err);
    int rc = tg_store_claim(conn, s->agent_id, s->update_id, s->now_ms, &s->seen, err);
    /* The team the chat belongs to (ARCHITECTURE.md: an agent's chats map
     * to a team) - for the policy and the budgets.  A chat mapped for
     * another agent, or not at all, has none. */
    struct dagi_graph_chat chat;
    struct dagi_error gerr = {0};
    if (!rc && s->seen != TG_DONE && s->graph &&
        !dagi_graph_chat_get(s->graph, s->chat_id, &chat, &gerr) &&
        (!chat.agent[0] || !strcmp(chat.agent, s->agent_id)))
        snprintf(s->team, sizeof(s->team), "%s", chat.team);
    return rc;
}

static void start_answer(struct tg_job *j);

static void db_done(void *ud, int rc, const struct dagi_error *err)
{
    struct db_step *s = ud;
    struct tg_job *j = s->j;
    j->db_busy = false;
    bool done = s->done;
    enum tg_seen seen = s->seen;
    if (!done)
        memcpy(j->team, s->team, sizeof(j->team));
    if (s->graph)
        dagi_graph_close(s->graph);
    free(s);
    if (j->stopping) {
        job_free(j);
        return;
    }
    if (rc) {
        job_retry(j, err && err->message[0] ? err->message : dagi_strerror(rc));
        return;
    }
    if (done)
        job_ack(j, j->result ? j->result : "answered");
    else if (seen == TG_DONE)
        job_ack(j, "duplicate");
    else
        start_answer(j);
}

static void db_step(struct tg_job *j, bool done)
{
    struct db_step *s = dagi_xcalloc(1, sizeof(*s));
    s->j = j;
    s->done = done;
    s->update_id = j->u->update_id;
    s->now_ms = dagi_clock_now_ms();
    snprintf(s->agent_id, sizeof(s->agent_id), "%s", j->agent_id);
    struct dagi_identity *id = done ? NULL : dagi_identity_of(j->tg->node);
    s->graph = id && id->graph ? dagi_graph_ref(id->graph) : NULL; /* the job may outlive the role */
    s->chat_id = j->u->chat.id;
    j->db_busy = true;
    int rc = dagi_db_run(dagi_node_db(j->tg->node), dagi_node_pool(j->tg->node), db_work, db_done,
                         s);
    if (rc) {
        j->db_busy = false;
        if (s->graph)
            dagi_graph_close(s->graph);
        free(s);
        job_retry(j, "the store is not available");
    }
}

/* --- sending --- */

static void send_next(struct tg_job *j);

static void on_sent(void *ud, int err, const json_t *result,
                    const struct dagi_tg_api_error *api_err, const char *message)
{
    (void)result;
    struct tg_job *j = ud;
    j->api = NULL;
    if (err == DAGI_EUNAVAIL) {
        job_retry(j, message);
        return;
    }
    if (err) {
        /* 400/403: the chat is gone or blocked the bot; asking again will
         * not change that. */
        dagi_log_warn(j->trace_id, "telegram: the Bot API refused the answer", "agent",
                      j->agent_id, "error", message, "code",
                      api_err ? (api_err->error_code == 403 ? "403" : "4xx") : "-");
        j->result = "send_refused";
        db_step(j, true);
        return;
    }
    dagi_metric_inc(j->tg->messages, (const char *[]){j->agent_id});
    j->sent++;
    send_next(j);
}

static void send_next(struct tg_job *j)
{
    if (j->sent >= j->nparts) {
        db_step(j, true);
        return;
    }
    const struct dagi_tg_slice *p = &j->parts[j->sent];
    bool group = j->u->chat.type != DAGI_TG_CHAT_PRIVATE;
    struct dagi_tg_send_message m = {
        .chat_id = j->u->chat.id,
        .text = j->text + p->offset,
        .text_len = p->length,
        /* In a group the answer hangs under the question it answers. */
        .reply_to_message_id = group && j->sent == 0 ? j->u->message_id : 0,
        .message_thread_id = j->u->message_thread_id,
    };
    json_t *body = NULL;
    if (dagi_tg_body_send_message(&m, &body)) {
        job_ack(j, "malformed");
        return;
    }
    if (dagi_tg_call(j->tg->api, j->bot->token, "sendMessage", body, on_sent, j, &j->api)) {
        job_retry(j, "the Bot API client refused the call");
        return;
    }
}

static void send_text(struct tg_job *j, const char *text, size_t len)
{
    j->text = text;
    j->text_len = len;
    j->sent = 0;
    if (dagi_tg_split(text, len, DAGI_TG_MESSAGE_MAX_UNITS, j->parts, MAX_PARTS, &j->nparts) ==
        DAGI_ETOOBIG) {
        /* Longer than MAX_PARTS messages: send what fits, say so in the log. */
        dagi_log_warn(j->trace_id, "telegram: answer cut to the first parts", "agent",
                      j->agent_id);
        size_t cut = len;
        while (cut && dagi_tg_split(text, cut, DAGI_TG_MESSAGE_MAX_UNITS, j->parts, MAX_PARTS,
                                    &j->nparts) == DAGI_ETOOBIG)
            cut = cut * 3 / 4;
    }
    send_next(j);
}

/* --- "typing..." --- */

static void on_typing_sent(void *ud, int err, const json_t *result,
                           const struct dagi_tg_api_error *api_err, const char *message)
{
    (void)ud, (void)err, (void)result, (void)api_err, (void)message; /* best effort */
}

static void on_typing(evutil_socket_t fd, short what, void *ud)
{
    (void)fd, (void)what;
    struct tg_job *j = ud;
    json_t *body = NULL;
    if (!dagi_tg_body_send_chat_action(j->u->chat.id, j->u->message_thread_id, "typing", &body))
        dagi_tg_call(j->tg->api, j->bot->token, "sendChatAction", body, on_typing_sent, NULL,
                     NULL);
    struct timeval tv = {TYPING_EVERY_MS / 1000, (TYPING_EVERY_MS % 1000) * 1000};
    evtimer_add(j->typing, &tv);
}

/* --- the router --- */

/* The short text of a quota refusal from the router's 429 body; 0 when the
 * body is not one. */
static size_t quota_notice(const char *message, char *out, size_t cap)
{
    json_t *doc = message ? json_loads(message, 0, NULL) : NULL;
    json_t *e = json_object_get(doc, "error");
    const char *window = json_string_value(json_object_get(e, "window"));
    size_t n = 0;
    if (json_is_object(e) && window) {
        struct dagi_quota_block b = {0};
        snprintf(b.budget_id, sizeof(b.budget_id), "%s",
                 json_string_value(json_object_get(e, "budget")) ?: "");
        b.tokens = !strcmp(json_string_value(json_object_get(e, "kind")) ?: "", "tokens");
        b.limit = json_integer_value(json_object_get(e, "limit"));
        b.reset_at_ms = json_integer_value(json_object_get(e, "reset_at_ms"));
        for (int w = DAGI_QUOTA_MINUTE; w <= DAGI_QUOTA_MONTH; w++)
            if (!strcmp(dagi_quota_window_name(w), window))
                b.window = w;
        n = dagi_quota_block_text(&b, out, cap);
    }
    json_decref(doc);
    return n;
}

static void on_answer(struct dagi_bus_call *call, int err, const void *data, size_t len,
                      const char *message, void *ud)
{
    struct tg_job *j = ud;
    j->router = NULL;
    evtimer_del(j->typing);
    if (err) {
        size_t n = err == DAGI_EQUOTA ? quota_notice(message, j->notice, sizeof(j->notice)) : 0;
        if (n) {
            /* Over budget: the user is told, in a short message, when it
             * resets; the update is answered. */
            j->result = "quota";
            send_text(j, j->notice, n);
        } else if (err == DAGI_EUNAVAIL || err == DAGI_ETIMEDOUT)
            job_retry(j, message);
        else {
            dagi_log_warn(j->trace_id, "telegram: the router refused the update", "agent",
                          j->agent_id, "error", message);
            job_ack(j, "refused");
        }
        return;
    }
    j->answer = dagi_bus_call_json(call, data, len);
    const char *policy = json_string_value(json_object_get(j->answer, "policy"));
    json_t *response = json_object_get(j->answer, "response");
    if ((policy && strcmp(policy, "SILENT") == 0) || !json_string_length(response)) {
        j->result = "silent";
        db_step(j, true);
        return;
    }
    send_text(j, json_string_value(response), json_string_length(response));
}

static void ask_router(struct tg_job *j)
{
    const struct dagi_tg_update *u = j->u;
    size_t len = 0;
    const char *text = dagi_tg_update_text_without_mention(u, j->bot->username, &len);
    bool addressed = dagi_tg_addressed_to(u, j->bot->username, j->bot->id);
    static const char *const types[] = {"private", "group", "supergroup", "channel", "channel"};
    json_t *doc = json_pack(
        "{s:s,s:s%,s:s,s:{s:I,s:s,s:b},s:{s:b},s:s}", "agent_id", j->agent_id, "message",
        text ? text : "", text ? len : 0, "user_id", "", "chat", "id", (json_int_t)u->chat.id,
        "type", types[u->chat.type], "addressed", addressed, "sender", "is_bot",
        u->from && u->from->is_bot, "channel", "telegram");
    char user[32];
    if (u->from) {
        snprintf(user, sizeof(user), "tg:%lld", (long long)u->from->id);
        json_object_set_new(doc, "user_id", json_string(user));
        /* The edge says who is asking (ARCHITECTURE.md, Identity): the
         * Telegram user, in the team its chat belongs to. */
        json_t *caller = json_pack("{s:s,s:[s]}", "principal", user, "subjects", user);
        if (j->team[0]) {
            char t[160];
            snprintf(t, sizeof(t), "team:%s", j->team);
            json_array_append_new(json_object_get(caller, "subjects"), json_string(t));
            json_object_set_new(caller, "team", json_string(j->team));
        }
        json_object_set_new(doc, "caller", caller);
    } else {
        json_object_del(doc, "user_id");
    }
    if (j->image)
        json_object_set_new(doc, "images", json_pack("[s]", j->image));
    const struct dagi_config *c = dagi_node_cfg(j->tg->node);
    struct dagi_bus_call_opts o = {
        .subject = ROUTER_SUBJECT,
        .doc = doc,
        .trace_id = j->trace_id,
        .timeout_ms = (unsigned)c->telegram.answer_timeout,
        .on_done = on_answer,
        .ud = j,
    };
    int rc = dagi_bus_request(dagi_node_bus(j->tg->node), &o, &j->router);
    json_decref(doc);
    if (rc) {
        j->router = NULL;
        job_retry(j, "the router cannot be asked");
        return;
    }
    if (c->telegram.typing_after > 0) {
        int64_t ms = c->telegram.typing_after;
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        evtimer_add(j->typing, &tv);
    }
}

/* --- photos: getFile, then the bytes, then a data: URL --- */

static void on_photo(void *ud, int err, const void *data, size_t len, const char *message)
{
    struct tg_job *j = ud;
    j->api = NULL;
    if (err) {
        if (err == DAGI_EUNAVAIL)
            job_retry(j, message);
        else
            ask_router(j); /* the caption alone, rather than nothing */
        return;
    }
    size_t b64 = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    static const char prefix[] = "data:image/jpeg;base64,"; /* Telegram's photos are JPEG */
    j->image = dagi_xmalloc(sizeof(prefix) + b64);
    memcpy(j->image, prefix, sizeof(prefix) - 1);
    sodium_bin2base64(j->image + sizeof(prefix) - 1, b64, data, len,
                      sodium_base64_VARIANT_ORIGINAL);
    ask_router(j);
}

static void on_file(void *ud, int err, const json_t *result,
                    const struct dagi_tg_api_error *api_err, const char *message)
{
    (void)api_err;
    struct tg_job *j = ud;
    j->api = NULL;
    struct dagi_tg_file f;
    struct dagi_error perr = {0};
    if (err == DAGI_EUNAVAIL) {
        job_retry(j, message);
        return;
    }
    const struct dagi_config *c = dagi_node_cfg(j->tg->node);
    if (err || dagi_tg_parse_file(result, &f, &perr) ||
        (f.file_size && f.file_size > c->telegram.max_photo)) {
        dagi_log_warn(j->trace_id, "telegram: photo not fetched; answering the caption",
                      "agent", j->agent_id, "error",
                      err ? message : perr.message[0] ? perr.message : "over telegram.max_photo");
        ask_router(j);
        return;
    }
    if (dagi_tg_download(j->tg->api, j->bot->token, f.file_path, (size_t)c->telegram.max_photo,
                         on_photo, j, &j->api))
        ask_router(j);
}

/* --- /consent: the sender's consent for this agent, from the store --- */

static void on_consent_reply(void *ud, int rc, const char *text)
{
    struct tg_job *j = ud;
    j->db_busy = false;
    if (j->stopping) {
        job_free(j);
        return;
    }
    char *answer = rc ? NULL : dagi_arena_strdup(j->arena, text);
    if (!answer) {
        job_retry(j, "the consent store is not available");
        return;
    }
    send_text(j, answer, strlen(answer));
}

static void answer_consent(struct tg_job *j)
{
    char user[32];
    snprintf(user, sizeof(user), "tg:%lld", (long long)j->u->from->id);
    struct dagi_consent_api api = {.node = j->tg->node};
    struct dagi_consent_command cmd = {j->agent_id, user, j->u->command_args, j->trace_id};
    int rc = dagi_consent_command_run(&api, &cmd, on_consent_reply, j);
    j->db_busy = rc == 0; /* stop waits for the store as for db_step */
    if (rc == DAGI_EINVAL)
        job_ack(j, "refused"); /* no agent id a record can hold */
    else if (rc)
        job_retry(j, "the consent store is not available");
}

/* --- the start --- */

static void start_answer(struct tg_job *j)
{
    const struct dagi_tg_update *u = j->u;
    const struct dagi_agent *a = j->bot->agent;
    bool ours = !u->command_target || strcasecmp(u->command_target, j->bot->username) == 0;
    if (u->command && ours && (strcmp(u->command, "start") == 0 || strcmp(u->command, "help") == 0)) {
        const char *text = strcmp(u->command, "help") == 0 && a->telegram.help_text
                               ? a->telegram.help_text
                               : a->telegram.start_text;
        if (!text)
            text = dagi_arena_sprintf(j->arena, "%s - %s", a->name ? a->name : a->id,
                                      a->role ? a->role : "");
        send_text(j, text, strlen(text));
        return;
    }
    if (u->command && ours && strcmp(u->command, "consent") == 0 && u->from) {
        answer_consent(j); /* no model call: the store answers */
        return;
    }
    if (u->photo) {
        json_t *body = NULL;
        if (!dagi_tg_body_get_file(u->photo->file_id, &body) &&
            !dagi_tg_call(j->tg->api, j->bot->token, "getFile", body, on_file, j, &j->api))
            return;
    }
    ask_router(j);
}

static int open_update(struct tg_job *j, const struct dagi_js_msg *msg, const char **why)
{
    /* The envelope (tg_webhook.c): agent_id in clear, the update sealed and
     * bound to the subject and that agent. */
    json_t *env = dagi_event_parse(msg->data, msg->len, why);
    json_t *data = json_object_get(env, "data");
    const char *agent = json_string_value(json_object_get(data, "agent_id"));
    const char *sealed64 = json_string_value(json_object_get(data, "sealed"));
    int rc = DAGI_EPARSE;
    if (!env)
        return rc;
    if (!agent || !sealed64 || strlen(agent) >= sizeof(j->agent_id)) {
        *why = "the work item has no agent_id or sealed update";
        json_decref(env);
        return rc;
    }
    snprintf(j->agent_id, sizeof(j->agent_id), "%s", agent);
    size_t b64_len = strlen(sealed64), bin_len = 0;
    unsigned char *bin = dagi_xmalloc(b64_len / 4 * 3 + 3);
    struct dagi_buf plain;
    dagi_buf_init(&plain, b64_len + 64);
    if (sodium_base642bin(bin, b64_len / 4 * 3 + 3, sealed64, b64_len, NULL, &bin_len, NULL,
                          sodium_base64_VARIANT_ORIGINAL)) {
        *why = "the sealed update is not base64";
        goto out;
    }
    char aad[TG_AAD_MAX];
    int aad_len = snprintf(aad, sizeof(aad), "%s/%s", TG_WORK_SUBJECT, j->agent_id);
    rc = dagi_seal_open(dagi_node_seal(j->tg->node), bin, bin_len, aad, (size_t)aad_len, &plain);
    if (rc) {
        *why = rc == DAGI_ENOENT ? "sealed with an unknown key" : "the seal does not open";
        goto out;
    }
    struct dagi_error err = {0};
    rc = dagi_tg_update_parse(plain.data, plain.len, j->arena, &j->u, &err);
    if (rc)
        *why = "the update does not parse";
out:
    if (plain.data)
        sodium_memzero(plain.data, plain.len);
    dagi_buf_release(&plain);
    free(bin);
    json_decref(env);
    return rc ? rc : 0;
}

static void on_delivery(struct dagi_js_delivery *d, const struct dagi_js_msg *msg, void *ud)
{
    struct tg_state *tg = ud;
    struct tg_job *j = dagi_xcalloc(1, sizeof(*j));
    j->tg = tg;
    j->d = d;
    j->arena = dagi_arena_new(0);
    j->snap = tg_snap_ref(tg->snap);
    j->typing = evtimer_new(dagi_node_base(tg->node), on_typing, j);
    const char *trace = msg->header ? msg->header(msg, "Dagi-Trace-Id") : NULL;
    snprintf(j->trace_id, sizeof(j->trace_id), "%s", trace ? trace : msg->msg_id);
    j->next = tg->jobs;
    if (j->next)
        j->next->prev = j;
    tg->jobs = j;
    if (tg->draining) {
        dagi_js_fail(d, "the node is stopping");
        job_free(j);
        return;
    }
    const char *why = NULL;
    if (open_update(j, msg, &why)) {
        dagi_log_error(j->trace_id, "telegram: dropping a work item", "error", why);
        job_ack(j, "malformed");
        return;
    }
    j->bot = tg_snap_find(j->snap, j->agent_id);
    if (!j->bot || !j->bot->token[0]) {
        dagi_log_warn(j->trace_id, "telegram: the agent has no bot any more; update dropped",
                      "agent", j->agent_id);
        job_ack(j, "no_bot");
        return;
    }
    /* New messages and channel posts (which the policy keeps silent) only:
     * an edit answered again would be a second answer to one question;
     * stickers, joins and callbacks have nothing to answer. */
    bool fresh = j->u->kind == DAGI_TG_UPDATE_MESSAGE || j->u->kind == DAGI_TG_UPDATE_CHANNEL_POST;
    if (!fresh || ((!j->u->text || !j->u->text_len) && !j->u->photo)) {
        job_ack(j, "ignored");
        return;
    }
    db_step(j, false);
}

/* --- start and stop --- */

static void on_streams_ready(void *ud)
{
    struct tg_state *tg = ud;
    const struct dagi_config *c = dagi_node_cfg(tg->node);
    struct dagi_js_consumer_opts o = {
        .stream = "DAGI_WORK",
        .durable = "telegram",
        .filter = TG_WORK_SUBJECT,
        .max_deliver = (int)c->bus.consumer.max_deliver,
        .backoff_base_ms = c->bus.consumer.backoff_base,
        .backoff_max_ms = c->bus.consumer.backoff_max,
        /* An answer may take answer_timeout; a delivery is not handed to
         * someone else meanwhile. */
        .ack_wait_ms = c->telegram.answer_timeout + 10000,
    };
    struct dagi_error err = {0};
    if (dagi_js_consume(dagi_node_js(tg->node), &o, on_delivery, tg, &tg->consumer, &err))
        dagi_log_error(NULL, "telegram: cannot consume updates", "error", err.message);
}

static void on_shutdown(void *ud)
{
    struct tg_state *tg = ud;
    if (tg->consumer)
        dagi_js_consumer_stop(tg->consumer);
    tg->consumer = NULL;
}

/* Update ids older than telegram.processed_retention are forgotten, once
 * at start: Telegram never redelivers anything that old. */
static int purge_work(struct dagi_db_conn *conn, void *ud, struct dagi_error *err)
{
    return tg_store_purge(conn, *(int64_t *)ud, err);
}

static void purge_done(void *ud, int rc, const struct dagi_error *err)
{
    if (rc && rc != DAGI_ECANCELED)
        dagi_log_warn(NULL, "telegram: purging old update ids failed", "error",
                      err ? err->message : dagi_strerror(rc));
    free(ud);
}

int tg_worker_start(struct tg_state *tg, struct dagi_error *err)
{
    (void)err;
    int64_t *before = dagi_xmalloc(sizeof(*before));
    *before = dagi_clock_now_ms() - dagi_node_cfg(tg->node)->telegram.processed_retention;
    if (dagi_db_run(dagi_node_db(tg->node), dagi_node_pool(tg->node), purge_work, purge_done,
                    before))
        free(before);
    if (!dagi_node_js(tg->node)) {
        dagi_log_warn(NULL, "telegram: no JetStream (bus.url none): webhooks answer 503");
        return DAGI_OK;
    }
    dagi_node_on_shutdown(tg->node, on_shutdown, tg);
    dagi_node_on_streams_ready(tg->node, on_streams_ready, tg);
    return DAGI_OK;
}

void tg_worker_stop(struct tg_state *tg)
{
    /* Jobs still running are handed back for redelivery; a job waiting on
     * the store is freed when the store answers. */
    for (struct tg_job *j = tg->jobs, *next; j; j = next) {
        next = j->next;
        if (j->db_busy) {
            j->stopping = true; /* freed, and nothing else, when the store answers */
            continue;
        }
        dagi_js_fail(j->d, "the node stopped");
        job_free(j);
    }
}
