/* A chat with retries (swapper_internal.h): one provider call per attempt,
 * retried only while nothing has reached the caller.  A failure after a
 * delta is final: a second attempt would repeat text the caller has already
 * shown, and the router must not fall back either. */
#include "swapper_internal.h"

#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"

struct dagi_swapper_chat {
    struct dagi_swapper_model *model; /* referenced */
    struct dagi_provider_env env;
    struct dagi_chat_callbacks cb;
    json_t *messages, *tools; /* referenced */
    int64_t max_tokens;
    double temperature;
    bool stream;
    char *trace_id;
    struct dagi_provider_call *call;
    struct event *retry_timer;
    unsigned attempt, retries;
    int64_t start_ns;
    bool started;
    bool finishing; /* inside on_done: a cancel now is a no-op */
};

static void chat_free(struct dagi_swapper_chat *ch)
{
    if (ch->retry_timer)
        event_free(ch->retry_timer);
    json_decref(ch->messages);
    json_decref(ch->tools);
    free(ch->trace_id);
    dagi_swapper_model_unref(ch->model);
    free(ch);
}

static unsigned elapsed_ms(const struct dagi_swapper_chat *ch)
{
    return (unsigned)((dagi_clock_mono_ns() - ch->start_ns) / 1000000);
}

/* What is left of a timeout that spans every attempt (0 = none; 1 at least,
 * so a spent budget times out at once instead of meaning "no timeout"). */
static unsigned remaining(unsigned budget_ms, unsigned used_ms)
{
    if (!budget_ms)
        return 0;
    return used_ms < budget_ms ? budget_ms - used_ms : 1;
}

static void on_attempt_delta(void *ud, const char *text, size_t len)
{
    struct dagi_swapper_chat *ch = ud;
    ch->started = true;
    ch->cb.on_delta(ch->cb.ud, text, len);
}

static int start_attempt(struct dagi_swapper_chat *ch, struct dagi_error *err);

static void on_retry_timer(evutil_socket_t fd, short what, void *ud)
{
    (void)fd, (void)what;
    struct dagi_swapper_chat *ch = ud;
    struct dagi_error err = {0};
    if (start_attempt(ch, &err) == 0)
        return;
    struct dagi_usage none = {0};
    ch->finishing = true;
    ch->cb.on_done(ch->cb.ud, err.code, err.message, &none, NULL, NULL, false);
    chat_free(ch);
}

unsigned dagi_swapper_retry_delay_ms(unsigned attempt)
{
    unsigned shift = attempt - 1 < 6 ? attempt - 1 : 6;
    unsigned delay = DAGI_SWAPPER_RETRY_BASE_MS << shift;
    /* +-50% jitter, so callers that failed together do not retry together. */
    return delay / 2 + arc4random_uniform(delay + 1);
}

static bool schedule_retry(struct dagi_swapper_chat *ch)
{
    if (ch->attempt > ch->retries)
        return false;
    unsigned delay = dagi_swapper_retry_delay_ms(ch->attempt);
    unsigned used = elapsed_ms(ch);
    if ((ch->env.first_token_timeout_ms && used + delay >= ch->env.first_token_timeout_ms) ||
        (ch->env.total_timeout_ms && used + delay >= ch->env.total_timeout_ms))
        return false;
    if (!ch->retry_timer)
        ch->retry_timer = evtimer_new(ch->env.base, on_retry_timer, ch);
    struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
    evtimer_add(ch->retry_timer, &tv);
    return true;
}

static void on_attempt_done(void *ud, int err, const char *message, const struct dagi_usage *usage,
                            const char *finish_reason, const json_t *tool_calls, bool started)
{
    struct dagi_swapper_chat *ch = ud;
    ch->call = NULL; /* the provider frees it after we return */
    if (err == DAGI_EUNAVAIL && !started && !ch->started && schedule_retry(ch)) {
        dagi_log_info(ch->trace_id, "retrying the model call", "model", ch->model->cfg.id, "error",
                      message);
        return;
    }
    ch->finishing = true;
    ch->cb.on_done(ch->cb.ud, err, message, usage, finish_reason, tool_calls,
                   started || ch->started);
    chat_free(ch);
}

static int start_attempt(struct dagi_swapper_chat *ch, struct dagi_error *err)
{
    unsigned used = elapsed_ms(ch);
    struct dagi_provider_env env = ch->env;
    env.first_token_timeout_ms = remaining(ch->env.first_token_timeout_ms, used);
    env.total_timeout_ms = remaining(ch->env.total_timeout_ms, used);
    struct dagi_chat_request req = {.messages = ch->messages,
                                    .tools = ch->tools,
                                    .max_tokens = ch->max_tokens,
                                    .temperature = ch->temperature,
                                    .trace_id = ch->trace_id,
                                    .stream = ch->stream};
    struct dagi_chat_callbacks cb = {on_attempt_delta, on_attempt_done, ch};
    ch->attempt++;
    return ch->model->ops->chat(&env, &ch->model->cfg, &req, &cb, &ch->call, err);
}

int dagi_swapper_chat_start(struct dagi_swapper_model *m, const struct dagi_provider_env *env,
                            unsigned retries, const struct dagi_chat_request *req,
                            const struct dagi_chat_callbacks *cb, struct dagi_swapper_chat **out,
                            struct dagi_error *err)
{
    struct dagi_swapper_chat *ch = dagi_xcalloc(1, sizeof(*ch));
    dagi_swapper_model_ref(m);
    ch->model = m;
    ch->env = *env;
    ch->cb = *cb;
    ch->retries = retries;
    ch->messages = json_incref((json_t *)req->messages);
    ch->tools = req->tools ? json_incref((json_t *)req->tools) : NULL;
    ch->max_tokens = req->max_tokens;
    ch->temperature = req->temperature;
    ch->trace_id = req->trace_id ? dagi_xstrdup(req->trace_id) : NULL;
    ch->stream = req->stream;
    ch->start_ns = dagi_clock_mono_ns();
    int rc = start_attempt(ch, err);
    if (rc) {
        chat_free(ch);
        return rc;
    }
    *out = ch;
    return DAGI_OK;
}

void dagi_swapper_chat_cancel(struct dagi_swapper_chat *ch)
{
    if (!ch || ch->finishing)
        return;
    if (ch->call)
        ch->model->ops->cancel(ch->call);
    chat_free(ch);
}
