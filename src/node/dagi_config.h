/* The node's configuration file (config/dagi.yml): its C struct, its schema,
 * and immutable snapshots for reload.
 *
 * A snapshot is built once (file, then DAGI_* environment, then command-line
 * flags), never changed afterwards, and shared by reference count; reload
 * builds a new one and swaps the node's pointer atomically, so a request that
 * holds the old snapshot finishes with a consistent view.
 *
 * Adding a setting: add the member here, one row to the schema table in
 * dagi_config.c, and regenerate docs/CONFIGURATION.md (`make docs`); a test
 * fails when the docs and the schema disagree. */
#ifndef DAGI_DAGI_CONFIG_H
#define DAGI_DAGI_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"

struct dagi_http_limit_config {
    char *prefix;
    int64_t max_body;
};

/* One model the swapper can serve (swapper.models[]). */
struct dagi_model_config {
    char *id;       /* what profiles and routing rules name */
    int provider;   /* enum: openai, ollama, builtin (index into dagi_model_providers) */
    char *base_url; /* e.g. https://api.deepseek.com/v1, http://127.0.0.1:11434 */
    char *api_key_env; /* variable holding the key; NULL = none */
    char *model;    /* the upstream's model name; NULL = id */
    int64_t context_length;
    struct dagi_cfg_strings capabilities; /* chat, vision, tools, embeddings, reasoning */
    int64_t memory_mb; /* local models: what a load costs against vram_budget_mb */
};

extern const char *const dagi_model_providers[];

/* auth.jwt.keys[]: one verification key; the algorithm is pinned here. */
struct dagi_jwt_key_config {
    char *kid;             /* NULL = used for tokens without a kid */
    int alg;               /* enum: HS256, RS256 */
    char *secret_env;      /* HS256: the variable holding the secret */
    char *public_key_file; /* RS256: PEM file of the RSA public key */
};

/* auth.hooks[]: the secrets of one agent's signed webhook. */
struct dagi_hook_config {
    char *agent;
    char *secret_env;          /* the current secret */
    char *previous_secret_env; /* also accepted while a rotation is under way */
};

/* auth.rate_limits[]: one token bucket per caller of a route class. */
struct dagi_rate_limit_config {
    int routes; /* enum: dagi_route_classes */
    int per;    /* enum: key, user, ip, team */
    int64_t limit;
    int64_t window; /* ms */
    int64_t burst;  /* 0 = limit */
};

extern const char *const dagi_route_classes[];
extern const char *const dagi_rate_limit_per[];
extern const char *const dagi_jwt_algs[];

struct dagi_config {
    struct {
        char *name;
        char *data_dir;
    } node;
    struct {
        char *listen;
        int64_t max_body;
        int64_t max_header;
        int64_t read_timeout; /* ms, like every duration */
        int64_t write_timeout;
        int64_t idle_timeout;
        int64_t drain_timeout;
        int64_t max_connections;
        struct {
            char *cert;
            char *key;
        } tls;
        struct dagi_cfg_list limits; /* struct dagi_http_limit_config */
    } http;
    struct {
        int level; /* enum dagi_log_level */
    } log;
    struct {
        int64_t max_series;
    } metrics;
    struct {
        int64_t threads;
        int64_t queue;
    } workers;
    struct {
        int64_t connect_timeout;
        int64_t max_per_host;
        char *ca_file;
    } http_client;
    struct {
        char *url; /* "embedded", "none" or nats://... */
        char *user;
        char *password_env;
        bool inprocess;
        char *nats_server;
        int64_t max_payload;
        int64_t request_timeout;
        int64_t reconnect_wait;
        int64_t reconnect_buffer;
        int64_t dedup_window;
        int64_t event_max_age;
        int64_t work_max_age;
        int64_t dlq_max_age;
        struct {
            int64_t max_deliver;
            int64_t backoff_base;
            int64_t backoff_max;
            int64_t ack_wait;
        } consumer;
    } bus;
    struct {
        char *url; /* NULL = sqlite:<data_dir>/dagi.db */
        int64_t pool_size;
        int64_t busy_timeout;
        struct {
            bool relay;
            int64_t batch;
            int64_t poll_interval;
            int64_t lease;
            int64_t retention;
        } outbox;
    } store;
    struct {
        int64_t vram_budget_mb; /* 0 = no budget */
        int64_t connect_timeout;
        int64_t first_token_timeout;
        int64_t total_timeout;
        int64_t retries;
        struct dagi_cfg_list models; /* struct dagi_model_config */
    } swapper;
    struct {
        char *registry;    /* the agent registry file */
        char *routing;     /* routing rules file; NULL = none */
        char *prompts_dir; /* where registry prompt files are looked up */
        int64_t max_tool_rounds;
        int64_t history_max;
        int64_t reserve_tokens; /* what a request without max_tokens holds of a budget */
    } router;
    struct {
        /* The control plane's documents that are not the router's: imported
         * by the registry role at start as new versions when they changed
         * (the agent registry, routing rules and prompts are router.*). */
        char *policies; /* the policy bundle (src/authz); NULL = deny all but admin */
        char *quotas;   /* budgets (src/quota); NULL = none */
        char *flags;    /* feature flags (src/cplane/flags.h); NULL = none */
        char *lists;    /* allow/block lists; NULL = none */
    } registry;
    struct {
        char *api_base;        /* the Bot API, https://api.telegram.org */
        char *default_agent;   /* whose bot POST /telegram/webhook is */
        int64_t max_update;    /* webhook body cap */
        int64_t typing_after;  /* ms before "typing..." is shown for a slow answer */
        int64_t send_attempts; /* Bot API calls: tries for 429 / 5xx / network errors */
        int64_t answer_timeout; /* ms for the router's answer to one update */
        int64_t max_photo;     /* bytes of a photo fetched for the vision model */
        int64_t processed_retention; /* ms an update id is remembered as answered */
    } telegram;
    struct {
        int64_t key_cache_ttl; /* ms a looked-up API key is trusted before the store is asked */
        struct {
            char *issuer;   /* NULL = not checked */
            char *audience; /* NULL = not checked */
            int64_t leeway; /* ms */
            struct dagi_cfg_list keys; /* struct dagi_jwt_key_config */
        } jwt;
        int64_t hook_tolerance;        /* ms either side of a signature's timestamp */
        struct dagi_cfg_list hooks;    /* struct dagi_hook_config */
        struct dagi_cfg_list rate_limits; /* struct dagi_rate_limit_config */
    } auth;
};

extern const struct dagi_cfg_schema dagi_config_schema;

/* Where a setting may come from besides the file, in increasing precedence. */
struct dagi_config_overrides {
    char *const *envp;    /* DAGI_* variables; NULL = none */
    const char *listen;   /* --listen */
    const char *data_dir; /* --data-dir */
    const char *log_level; /* --log-level */
};

struct dagi_config_snapshot {
    atomic_int refs;
    struct dagi_arena *arena;
    const struct dagi_config *cfg;
    char *path; /* the file it came from, or NULL for defaults */
};

/* Builds a snapshot from `path` (NULL = defaults only) and the overrides.
 * Returns 0, or DAGI_EINVAL / DAGI_EPARSE / DAGI_EIO with errs filled. */
int dagi_config_snapshot_load(const char *path, const struct dagi_config_overrides *ov,
                              struct dagi_config_snapshot **out, struct dagi_cfg_errors *errs);
/* The model ids a registry or routing rule may name: swapper.models[].id
 * and builtin.  Returns a NULL-terminated array (count in *n) the caller
 * frees; the strings are borrowed from c. */
const char **dagi_config_model_ids(const struct dagi_config *c, size_t *n);

struct dagi_config_snapshot *dagi_config_snapshot_ref(struct dagi_config_snapshot *s);
void dagi_config_snapshot_unref(struct dagi_config_snapshot *s);

#endif
