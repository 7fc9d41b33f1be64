/* Private to src/swapper: the streamed-HTTP call machinery the network
 * providers share (provider.c), and the model table with lazy loading and
 * LRU eviction (swapper_models.c).
 *
 * Provider calls
 * --------------
 * openai and ollama differ only in how they build a request and how they
 * read the body; timeouts and the callback order are the same, so they live
 * once in provider.c.  A provider call is one attempt: retries are the
 * swapper's (dagi_swapper_chat below).  A provider fills `struct dagi_provider_call`
 * (url, headers, body, a `feed` function for the body bytes) and starts it;
 * its feed reports through dagi_provider_call_delta / _mark_first_token /
 * _end and the result fields.  Providers never keep the model config pointer
 * past chat()/load()/unload(): the table may replace it on reload.
 *
 * Re-entrancy: every callback the call makes to its user may cancel the call
 * (dagi_provider_call_cancel); the struct is then freed only after the
 * outermost entry point (an HTTP or timer callback) returns. */
#ifndef DAGI_SWAPPER_INTERNAL_H
#define DAGI_SWAPPER_INTERNAL_H

#include <event2/event.h>

#include "core/buf.h"
#include "core/sse_parse.h"
#include "node/dagi_config.h"
#include "provider.h"

struct dagi_node;

struct dagi_http_call;
struct dagi_metrics;
struct dagi_metric;

/* Caps on what an upstream may make us hold. */
#define DAGI_PROVIDER_MAX_EVENT (1u << 20) /* one SSE event / NDJSON line */
#define DAGI_PROVIDER_MAX_ERROR_BODY (64u << 10)
/* A whole embeddings answer: 256 inputs of 3072 numbers in JSON text. */
#define DAGI_PROVIDER_MAX_EMBED_ANSWER (64u << 20)
#define DAGI_SWAPPER_RETRY_BASE_MS 100

struct dagi_provider_call {
    struct dagi_provider_env env;
    struct dagi_chat_callbacks cb;
    /* An embedding call (dagi_provider_call_new_embed) reports here instead
     * of cb; `complete` fills `embeddings`. */
    struct dagi_embed_callbacks embed_cb;
    json_t *embeddings;
    size_t embed_inputs;      /* how many the request had */
    int64_t embed_dimensions; /* asked for; 0 = any */
    /* the request */
    char *url;
    char **headers; /* NULL-terminated, owned */
    char *body;
    size_t body_len;
    /* the body reader: returns 0, or a dagi_err after setting fail_* */
    int (*feed)(struct dagi_provider_call *c, const char *data, size_t len);
    /* A whole (non-streamed) answer: feed collects it in `line`, and this
     * reads it when the response is complete; NULL for streams. */
    int (*complete)(struct dagi_provider_call *c);
    struct dagi_http_call *http;
    long status;
    struct dagi_buf error_body; /* a non-2xx body, for its error message */
    struct dagi_sse_parser sse; /* openai */
    struct dagi_buf line;       /* ollama: the unfinished NDJSON line */
    int abort_err;
    char abort_msg[256];
    int64_t start_ns;
    struct event *first_token_timer, *total_timer;
    bool started;     /* a delta was delivered: no retry, no fallback */
    bool first_token; /* a delta or a tool call arrived */
    bool ended;       /* the stream's own end marker ([DONE], done:true) */
    bool dead;        /* done delivered or cancelled: free when not busy */
    int busy;
    /* the result */
    struct dagi_usage usage;
    char finish_reason[32];
    json_t *tool_calls;    /* array, OpenAI shape; NULL = none */
    json_t *partial_tools; /* openai: fragments by index */
    /* builtin */
    struct event *tick;
    char *text;
    size_t pos;
};

/* Allocates a call with the env and callbacks copied. */
struct dagi_provider_call *dagi_provider_call_new(const struct dagi_provider_env *env,
                                                  const struct dagi_chat_callbacks *cb);
/* The same for an embedding call: the whole answer is read (up to
 * DAGI_PROVIDER_MAX_EMBED_ANSWER) and handed to `complete`. */
struct dagi_provider_call *dagi_provider_call_new_embed(const struct dagi_provider_env *env,
                                                        const struct dagi_embed_callbacks *cb,
                                                        const struct dagi_embed_request *req);
/* For embedding answers: takes `list` (an array with one array of numbers
 * per input, in input order) as the result after checking its shape;
 * otherwise fails the call with what is wrong.  Adds a reference. */
int dagi_provider_call_set_embeddings(struct dagi_provider_call *c, json_t *list);
/* Starts the HTTP request and the first-token and total timers; on error
 * nothing was called back and the caller frees the call. */
int dagi_provider_call_start(struct dagi_provider_call *c, struct dagi_error *err);
/* What every network provider does with a prepared call (feed and complete
 * set): POST `body` (taken) as JSON to <base_url or default_base><path>
 * with Accept (NULL = none) and the model's key, and start it.  On success
 * *out is the call; on error the call is freed and nothing was called back. */
int dagi_provider_call_post(struct dagi_provider_call *c, const struct dagi_model_config *model,
                            const char *default_base, const char *path, json_t *body,
                            const char *accept, struct dagi_provider_call **out,
                            struct dagi_error *err);
/* A feed for whole answers: collects the body in `line` for `complete`. */
int dagi_provider_feed_whole(struct dagi_provider_call *c, const char *data, size_t len);
/* Frees a call that was never started (chat() failing before start). */
void dagi_provider_call_free(struct dagi_provider_call *c);
void dagi_provider_call_cancel(struct dagi_provider_call *c);
/* For feeds: a piece of text (marks started), a tool call fragment (marks
 * the first token only), the stream's end marker. */
void dagi_provider_call_delta(struct dagi_provider_call *c, const char *text, size_t len);
void dagi_provider_call_mark_first_token(struct dagi_provider_call *c);
/* Sets abort_err / abort_msg and returns code (for `return ...fail(...)`). */
int dagi_provider_call_fail(struct dagi_provider_call *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Delivers on_done once (for providers that finish without HTTP: builtin). */
void dagi_provider_call_finish(struct dagi_provider_call *c, int err, const char *message);
void dagi_provider_call_enter(struct dagi_provider_call *c);
void dagi_provider_call_leave(struct dagi_provider_call *c);

/* "Authorization: Bearer $<api_key_env>" when the variable is set and not
 * empty, else NULL; the caller frees. */
char *dagi_provider_auth_header(const struct dagi_model_config *model);
/* `<base_url without trailing slash><path>` */
char *dagi_provider_url(const struct dagi_model_config *model, const char *default_base,
                        const char *path);
const char *dagi_provider_model_name(const struct dagi_model_config *model);
/* The message of an upstream error body: error.message, error (a string),
 * message, else the body itself (truncated). Writes into out. */
void dagi_provider_error_message(const char *body, size_t len, long status, char *out,
                                 size_t out_len);

/* Model table
 * -----------
 * One entry per configured model (plus the implicit builtin), reference
 * counted: the table holds one reference, and a request or a load in flight
 * holds another, so an entry dropped by a reload lives until they finish.
 * Everything runs on the loop thread. */

enum dagi_swapper_model_state {
    DAGI_SWAPPER_UNLOADED,
    DAGI_SWAPPER_LOADING, /* waiting for evictions, then the load */
    DAGI_SWAPPER_LOADED,
    DAGI_SWAPPER_UNLOADING,
};

struct dagi_swapper_models;
struct dagi_swapper_model;

/* A wait for a model to be loaded, embedded in the waiter's struct. */
struct dagi_swapper_waiter {
    struct dagi_swapper_waiter *next;
    void (*on_ready)(struct dagi_swapper_waiter *w, int err, const char *message);
};

struct dagi_swapper_model {
    struct dagi_model_config cfg; /* deep copy, owned */
    const struct dagi_provider_ops *ops;
    struct dagi_swapper_models *table; /* NULL once a reload dropped it */
    int refs;
    int active; /* requests using it: never evicted meanwhile */
    enum dagi_swapper_model_state state;
    uint64_t use_seq;     /* LRU order: higher = more recent */
    int64_t last_used_ms; /* wall clock, for operators; 0 = never */
    int pending_unloads;  /* LOADING: evictions still to finish */
    struct dagi_swapper_waiter *waiters;
    struct dagi_swapper_model *next;
};

struct dagi_swapper_models_opts {
    struct dagi_provider_env env; /* base and http for load/unload */
    int64_t vram_budget_mb;       /* 0 = none */
    struct dagi_metrics *metrics; /* NULL = dagi_metrics_default() */
};

struct dagi_swapper_models *dagi_swapper_models_new(const struct dagi_swapper_models_opts *opts);
/* Drops every entry (loads in flight keep theirs alive until they finish).
 * Waiters still queued are forgotten without a call: withdraw them first. */
void dagi_swapper_models_free(struct dagi_swapper_models *t);
/* Rebuilds from a configuration: entries whose id and provider still exist
 * keep their load state; an implicit `builtin` is added unless listed. */
void dagi_swapper_models_set(struct dagi_swapper_models *t, const struct dagi_model_config *models,
                             size_t count);
void dagi_swapper_models_set_budget(struct dagi_swapper_models *t, int64_t vram_budget_mb,
                                    const struct dagi_provider_env *env);
struct dagi_swapper_model *dagi_swapper_models_find(struct dagi_swapper_models *t, const char *id);
struct dagi_swapper_model *dagi_swapper_models_first(struct dagi_swapper_models *t);
int64_t dagi_swapper_models_used_mb(struct dagi_swapper_models *t);
int64_t dagi_swapper_models_budget_mb(struct dagi_swapper_models *t);
const struct dagi_provider_env *dagi_swapper_models_env(struct dagi_swapper_models *t);

void dagi_swapper_model_ref(struct dagi_swapper_model *m);
void dagi_swapper_model_unref(struct dagi_swapper_model *m);
bool dagi_swapper_model_loaded(const struct dagi_swapper_model *m);
/* Marks the model used now (LRU). */
void dagi_swapper_model_touch(struct dagi_swapper_model *m);
/* Makes sure the model is loaded.  Returns 0 when it already is (on_ready
 * is not called), DAGI_EAGAIN when w was queued (on_ready runs later, once),
 * or a negative dagi_err. */
int dagi_swapper_model_acquire(struct dagi_swapper_model *m, struct dagi_swapper_waiter *w);
/* Withdraws a queued waiter (its on_ready will not run). */
void dagi_swapper_model_forget(struct dagi_swapper_model *m, struct dagi_swapper_waiter *w);
/* Operator unload: DAGI_EAGAIN while loading/unloading or in use,
 * DAGI_EINVAL for a provider without load; done(ud, err, msg) later on 0. */
int dagi_swapper_model_unload(struct dagi_swapper_model *m,
                              void (*done)(void *ud, int err, const char *message), void *ud);

/* A chat with retries
 * ------------------
 * Runs ops->chat and, when an attempt fails with DAGI_EUNAVAIL (connection
 * error, 5xx, 429) before any delta reached the caller, tries again after
 * DAGI_SWAPPER_RETRY_BASE_MS * 2^n with +-50% jitter, up to `retries` more
 * times.  The first-token and total timeouts span all attempts (each attempt
 * gets what is left).  Holds a reference to the model and to the request's
 * JSON; callbacks as provider.h's, once; cancel stops everything. */
struct dagi_swapper_chat;

int dagi_swapper_chat_start(struct dagi_swapper_model *m, const struct dagi_provider_env *env,
                            unsigned retries, const struct dagi_chat_request *req,
                            const struct dagi_chat_callbacks *cb, struct dagi_swapper_chat **out,
                            struct dagi_error *err);
/* Not from inside the chat's own on_done (it is freed right after). */
void dagi_swapper_chat_cancel(struct dagi_swapper_chat *chat);
/* The wait before retry number `attempt` (1, 2, ...): the base doubled per
 * attempt, +-50% jitter so callers that failed together do not retry
 * together.  Embeddings retry the same way (swapper_embed.c). */
unsigned dagi_swapper_retry_delay_ms(unsigned attempt);

/* The role's state (swapper.c), shared with its operator routes
 * (swapper_routes.c). */
struct dagi_swapper_infer;
struct dagi_swapper_embed;
struct dagi_swapper_op;

struct dagi_swapper_state {
    struct dagi_node *node;
    struct dagi_swapper_models *models;
    struct dagi_provider_env env;
    unsigned retries;
    bool draining;
    struct dagi_swapper_infer *infers; /* in flight, for stop */
    struct dagi_swapper_embed *embeds; /* in flight, for stop */
    struct dagi_swapper_op *ops;       /* operator loads/unloads waiting */
    size_t max_payload;                /* bus.max_payload: caps an embedding's input */
    struct dagi_metric *requests_total, *first_token_seconds;
};

void dagi_swapper_routes_register(struct dagi_swapper_state *sw);

/* Embeddings (swapper_embed.c): `dagi.swapper.embed`.
 * dagi_swapper_embed_input turns a request's input (a string or an array
 * of strings) into a new array of 1..DAGI_EMBED_MAX_INPUTS non-empty
 * strings: DAGI_EINVAL for the shape, the count or an empty string,
 * DAGI_ETOOBIG for an input over DAGI_EMBED_MAX_INPUT_BYTES or all of them
 * over max_total bytes (0 = no total cap).  A pure function, for the tests
 * too. */
int dagi_swapper_embed_input(const json_t *input, size_t max_total, json_t **out,
                             struct dagi_error *err);
int dagi_swapper_embed_serve(struct dagi_swapper_state *sw, struct dagi_error *err);
/* Fails every embedding still in flight (unavailable). */
void dagi_swapper_embed_stop(struct dagi_swapper_state *sw);
/* Answers every operator request still waiting (503) and forgets them. */
void dagi_swapper_routes_stop(struct dagi_swapper_state *sw);

#endif
