/* The behaviour policy (docs/BEHAVIOR_POLICY.md) at the router: every
 * request that carries a chat is decided here, before any model is asked.
 * FULL goes on to the models; ACK answers the agent's ACK text and SILENT
 * answers nothing, both at once.  The decision and its reason are in the
 * answer (`policy`, `reason`), in a log line and in
 * agent_behavior_decisions_total{agent_id,level,reason}.  Never the text:
 * the duplicate check keeps keyed hashes only (policy/behavior.h). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "router/router_internal.h"

/* The text the duplicate check and the keyword match look at: the message,
 * or the last user message's text. */
static const char *text_of(const json_t *body, size_t *len)
{
    const json_t *m = json_object_get(body, "message");
    if (!json_is_string(m))
        m = json_object_get(body, "prompt");
    if (json_is_string(m)) {
        *len = json_string_length(m);
        return json_string_value(m);
    }
    const json_t *messages = json_object_get(body, "messages");
    for (size_t i = json_array_size(messages); i-- > 0;) {
        const json_t *msg = json_array_get(messages, i);
        const char *role = json_string_value(json_object_get(msg, "role"));
        const json_t *content = json_object_get(msg, "content");
        if (role && strcmp(role, "user") == 0 && json_is_string(content)) {
            *len = json_string_length(content);
            return json_string_value(content);
        }
    }
    *len = 0;
    return "";
}

/* A chat or user id may come as a number (Telegram's) or a string. */
static const char *id_of(const json_t *v, char *buf, size_t cap)
{
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
        return buf;
    }
    return "";
}

int dagi_router_policy_decide(struct dagi_router_state *rt, const struct dagi_agent *agent,
                              const json_t *body, struct dagi_behavior_decision *out,
                              struct dagi_error *err)
{
    const json_t *chat = json_object_get(body, "chat");
    if (!chat || json_is_null(chat)) {
        *out = (struct dagi_behavior_decision){DAGI_BEHAVIOR_FULL, "no_chat", NULL};
        goto count;
    }
    if (!json_is_object(chat))
        return dagi_error_set(err, DAGI_EINVAL, "chat must be an object {id, type, addressed?}");
    const char *type = json_string_value(json_object_get(chat, "type"));
    struct dagi_behavior_request r = {.agent_id = agent->id, .has_chat = true};
    if (!type || dagi_behavior_chat_type_parse(type, &r.chat_type))
        return dagi_error_set(err, DAGI_EINVAL,
                              "chat.type must be private, group, supergroup or channel");
    const json_t *addressed = json_object_get(chat, "addressed");
    if (addressed && !json_is_boolean(addressed))
        return dagi_error_set(err, DAGI_EINVAL, "chat.addressed must be a boolean");
    const json_t *sender = json_object_get(body, "sender");
    if (sender && !json_is_null(sender) && !json_is_object(sender))
        return dagi_error_set(err, DAGI_EINVAL, "sender must be an object {is_bot?, is_agent?}");
    char chat_buf[32], user_buf[32];
    r.chat_id = id_of(json_object_get(chat, "id"), chat_buf, sizeof(chat_buf));
    r.user_id = id_of(json_object_get(body, "user_id"), user_buf, sizeof(user_buf));
    r.addressed_to_bot = json_is_true(addressed);
    r.sender_is_bot = json_is_true(json_object_get(sender, "is_bot"));
    r.sender_is_agent = json_is_true(json_object_get(sender, "is_agent"));
    r.text = text_of(body, &r.text_len);
    r.now_ms = dagi_clock_now_ms();
    const struct dagi_cfg_strings *kw = &agent->behaviour.domain_keywords;
    struct dagi_behavior_params p = {
        .ack_text = agent->behaviour.ack_text,
        .quiet_from = agent->behaviour.quiet_hours.from,
        .quiet_to = agent->behaviour.quiet_hours.to,
        .quiet_tz = agent->behaviour.quiet_hours.tz,
        .domain_keywords = (const char *const *)kw->items,
        .domain_keyword_count = kw->count,
        .silent_in_groups = agent->behaviour.silent_in_groups,
    };
    int rc = dagi_behavior_decide(rt->behavior, &p, &r, out, err);
    if (rc)
        return rc;
count:
    dagi_metric_inc(rt->decisions, (const char *[]){agent->id,
                                                    dagi_behavior_level_name(out->level),
                                                    out->reason});
    return DAGI_OK;
}

void dagi_router_policy_answer(struct dagi_bus_req *req, bool stream,
                               const struct dagi_agent *agent,
                               const struct dagi_behavior_decision *d, const char *trace_id)
{
    const char *text = d->level == DAGI_BEHAVIOR_ACK && d->ack_text ? d->ack_text : "";
    dagi_log_info(trace_id, "router: answered by the behaviour policy", "agent", agent->id,
                  "policy", dagi_behavior_level_name(d->level), "reason", d->reason);
    if (stream && *text) {
        json_t *chunk = json_pack("{s:s}", "delta", text);
        char *data = json_dumps(chunk, JSON_COMPACT);
        dagi_bus_stream_chunk(req, data, strlen(data));
        free(data);
        json_decref(chunk);
    }
    json_t *final = json_pack("{s:s,s:n,s:s,s:i,s:{s:i,s:i},s:s,s:s,s:s}", "response", text,
                              "model", "backend", "", "tokens_used", 0, "usage", "prompt_tokens",
                              0, "completion_tokens", 0, "finish_reason", "stop", "policy",
                              dagi_behavior_level_name(d->level), "reason", d->reason);
    dagi_bus_reply_json(req, final);
    json_decref(final);
}
