#include "dagi_config.h"

#include "core/err.h"
#include "core/mem.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define KB 1024.0
#define MB (1024.0 * 1024.0)
#define GB (1024.0 * 1024.0 * 1024.0)
#define SECOND 1000.0
#define HOUR (3600.0 * 1000.0)

/* Each section is its own struct type so the schema can point into it. */
#define SECTION_OF(member) __typeof__(((struct dagi_config *)0)->member)

static const struct dagi_cfg_field node_fields[] = {
    {"name", DAGI_CFG_STRING, offsetof(SECTION_OF(node), name), "node1", 1, 64, NULL, NULL,
     DAGI_CFG_RESTART, "Name of this node in logs, metrics and (later) the cluster."},
    {"data_dir", DAGI_CFG_STRING, offsetof(SECTION_OF(node), data_dir), "./data", 1, 4096, NULL,
     NULL, DAGI_CFG_RESTART,
     "Directory for the node's state: admin.key, the embedded stores, the bus's files."},
};
static const struct dagi_cfg_schema node_schema = {
    "node", "This node.", sizeof(SECTION_OF(node)), node_fields, DAGI_ARRAY_LEN(node_fields), NULL};

static const struct dagi_cfg_field tls_fields[] = {
    {"cert", DAGI_CFG_STRING, offsetof(SECTION_OF(http.tls), cert), NULL, 0, 0, NULL, NULL,
     DAGI_CFG_RESTART, "PEM certificate chain; with `key`, the listener speaks HTTPS only."},
    {"key", DAGI_CFG_STRING, offsetof(SECTION_OF(http.tls), key), NULL, 0, 0, NULL, NULL,
     DAGI_CFG_RESTART | DAGI_CFG_SECRET, "PEM private key file for `cert`."},
};

static void check_tls(void *record, struct dagi_cfg_ctx *ctx)
{
    SECTION_OF(http.tls) *tls = record;
    if ((tls->cert == NULL) != (tls->key == NULL))
        dagi_cfg_report(ctx, tls->cert ? "key" : "cert", "cert and key must be set together");
}

static const struct dagi_cfg_schema tls_schema = {"http.tls", "TLS termination.",
                                                  sizeof(SECTION_OF(http.tls)), tls_fields,
                                                  DAGI_ARRAY_LEN(tls_fields), check_tls};

static const struct dagi_cfg_field limit_fields[] = {
    {"prefix", DAGI_CFG_STRING, offsetof(struct dagi_http_limit_config, prefix), NULL, 1, 1024,
     NULL, NULL, DAGI_CFG_REQUIRED, "Path prefix the cap applies to, starting with `/`."},
    {"max_body", DAGI_CFG_SIZE, offsetof(struct dagi_http_limit_config, max_body), NULL, 0, 64 * GB,
     NULL, NULL, DAGI_CFG_REQUIRED, "Largest request body accepted under the prefix."},
};

static void check_limit(void *record, struct dagi_cfg_ctx *ctx)
{
    struct dagi_http_limit_config *l = record;
    if (l->prefix && l->prefix[0] != '/')
        dagi_cfg_report(ctx, "prefix", "must start with /");
}

static const struct dagi_cfg_schema limit_schema = {
    "http.limits[]", "A body cap for one path prefix; the longest matching prefix wins.",
    sizeof(struct dagi_http_limit_config), limit_fields, DAGI_ARRAY_LEN(limit_fields),
    check_limit};

static const struct dagi_cfg_field http_fields[] = {
    {"listen", DAGI_CFG_ADDRESS, offsetof(SECTION_OF(http), listen), "127.0.0.1:8080", 0, 0, NULL,
     NULL, DAGI_CFG_RESTART, "Address of the public listener (`host:port`; port 0 picks one)."},
    {"max_body", DAGI_CFG_SIZE, offsetof(SECTION_OF(http), max_body), "1MB", 1, 64 * GB, NULL,
     NULL, 0, "Largest request body accepted where no route or limit says otherwise."},
    {"max_header", DAGI_CFG_SIZE, offsetof(SECTION_OF(http), max_header), "16KB", 1 * KB, 1 * MB,
     NULL, NULL, 0, "Largest request line plus headers."},
    {"read_timeout", DAGI_CFG_DURATION, offsetof(SECTION_OF(http), read_timeout), "30s", 10,
     HOUR, NULL, NULL, 0,
     "Headers must arrive, and a request body must make progress, within this."},
    {"write_timeout", DAGI_CFG_DURATION, offsetof(SECTION_OF(http), write_timeout), "30s", 10,
     HOUR, NULL, NULL, 0, "A response must make progress within this, or the client is cut."},
    {"idle_timeout", DAGI_CFG_DURATION, offsetof(SECTION_OF(http), idle_timeout), "60s", 10, HOUR,
     NULL, NULL, 0, "How long a kept-alive connection may sit idle."},
    {"drain_timeout", DAGI_CFG_DURATION, offsetof(SECTION_OF(http), drain_timeout), "10s", 0,
     HOUR, NULL, NULL, 0, "On shutdown, how long requests in flight (streams too) may finish."},
    {"max_connections", DAGI_CFG_INT, offsetof(SECTION_OF(http), max_connections), "10000", 1,
     1000000, NULL, NULL, 0, "Open connections beyond this are answered 503 and closed."},
    {"tls", DAGI_CFG_SECTION, offsetof(SECTION_OF(http), tls), NULL, 0, 0, NULL, &tls_schema, 0,
     "TLS termination."},
    {"limits", DAGI_CFG_LIST, offsetof(SECTION_OF(http), limits), NULL, 0, 1000, NULL,
     &limit_schema, DAGI_CFG_NO_ENV, "Body caps per path prefix (uploads need more than JSON)."},
};
static const struct dagi_cfg_schema http_schema = {"http", "The public HTTP listener.",
                                                   sizeof(SECTION_OF(http)), http_fields,
                                                   DAGI_ARRAY_LEN(http_fields), NULL};

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const struct dagi_cfg_field log_fields[] = {
    {"level", DAGI_CFG_ENUM, offsetof(SECTION_OF(log), level), "info", 0, 0, log_levels, NULL, 0,
     "Lowest level written to the JSON log on stderr."},
};
static const struct dagi_cfg_schema log_schema = {"log", "Structured JSON logs.",
                                                  sizeof(SECTION_OF(log)), log_fields,
                                                  DAGI_ARRAY_LEN(log_fields), NULL};

static const struct dagi_cfg_field metrics_fields[] = {
    {"max_series", DAGI_CFG_INT, offsetof(SECTION_OF(metrics), max_series), "1000", 10, 1000000,
     NULL, NULL, 0, "Cardinality cap per metric family; extra label sets fold into __overflow__."},
};
static const struct dagi_cfg_schema metrics_schema = {"metrics", "Prometheus metrics at /metrics.",
                                                      sizeof(SECTION_OF(metrics)), metrics_fields,
                                                      DAGI_ARRAY_LEN(metrics_fields), NULL};

static const struct dagi_cfg_field workers_fields[] = {
    {"threads", DAGI_CFG_INT, offsetof(SECTION_OF(workers), threads), "4", 1, 256, NULL, NULL,
     DAGI_CFG_RESTART, "Threads for blocking work (database, parsing)."},
    {"queue", DAGI_CFG_INT, offsetof(SECTION_OF(workers), queue), "1024", 1, 1000000, NULL, NULL,
     DAGI_CFG_RESTART, "Jobs that may wait for a thread before new work is refused."},
};
static const struct dagi_cfg_schema workers_schema = {
    "workers", "The bounded worker pool.", sizeof(SECTION_OF(workers)), workers_fields,
    DAGI_ARRAY_LEN(workers_fields), NULL};

static const struct dagi_cfg_field client_fields[] = {
    {"connect_timeout", DAGI_CFG_DURATION, offsetof(SECTION_OF(http_client), connect_timeout),
     "10s", 10, 5 * 60 * SECOND, NULL, NULL, 0, "Default connect timeout for outbound HTTP."},
    {"max_per_host", DAGI_CFG_INT, offsetof(SECTION_OF(http_client), max_per_host), "1024", 1,
     65536, NULL, NULL, DAGI_CFG_RESTART,
     "Connections open at once to one upstream host; a streamed answer holds one for its whole "
     "length, so this bounds concurrent streams per provider. Further requests wait."},
    {"ca_file", DAGI_CFG_STRING, offsetof(SECTION_OF(http_client), ca_file), NULL, 0, 4096, NULL,
     NULL, DAGI_CFG_RESTART, "Extra trust anchors (PEM) for outbound HTTPS."},
};
static const struct dagi_cfg_schema client_schema = {
    "http_client", "Outbound HTTP (model providers, Telegram, webhooks).",
    sizeof(SECTION_OF(http_client)), client_fields, DAGI_ARRAY_LEN(client_fields), NULL};

static const struct dagi_cfg_field consumer_fields[] = {
    {"max_deliver", DAGI_CFG_INT, offsetof(SECTION_OF(bus.consumer), max_deliver), "5", 1, 1000,
     NULL, NULL, 0, "Deliveries of a failing message before it goes to the dead-letter stream."},
    {"backoff_base", DAGI_CFG_DURATION, offsetof(SECTION_OF(bus.consumer), backoff_base), "1s",
     10, HOUR, NULL, NULL, 0, "First retry delay; doubled for every further delivery."},
    {"backoff_max", DAGI_CFG_DURATION, offsetof(SECTION_OF(bus.consumer), backoff_max), "5m", 10,
     24 * HOUR, NULL, NULL, 0, "Longest retry delay."},
    {"ack_wait", DAGI_CFG_DURATION, offsetof(SECTION_OF(bus.consumer), ack_wait), "30s", 100,
     HOUR, NULL, NULL, 0, "A message whose handler never answers is redelivered after this."},
};
static const struct dagi_cfg_schema consumer_schema = {
    "bus.consumer", "Defaults for JetStream pull consumers (jobs, Telegram updates).",
    sizeof(SECTION_OF(bus.consumer)), consumer_fields, DAGI_ARRAY_LEN(consumer_fields), NULL};

static void check_bus(void *record, struct dagi_cfg_ctx *ctx)
{
    SECTION_OF(bus) *bus = record;
    const char *u = bus->url;
    if (strcmp(u, "embedded") != 0 && strcmp(u, "none") != 0 && strncmp(u, "nats://", 7) != 0 &&
        strncmp(u, "tls://", 6) != 0)
        dagi_cfg_report(ctx, "url", "must be embedded, none, or nats://host:port[,...]");
}

static const struct dagi_cfg_field bus_fields[] = {
    {"url", DAGI_CFG_STRING, offsetof(SECTION_OF(bus), url), "embedded", 1, 4096, NULL, NULL,
     DAGI_CFG_RESTART,
     "`embedded` runs nats-server as a child; `nats://host:port[,...]` joins a server or "
     "cluster; `none` keeps requests in-process and has no JetStream."},
    {"user", DAGI_CFG_STRING, offsetof(SECTION_OF(bus), user), NULL, 0, 256, NULL, NULL,
     DAGI_CFG_RESTART, "NATS user for a nats:// url (deploy/nats/ has one per role)."},
    {"password_env", DAGI_CFG_STRING, offsetof(SECTION_OF(bus), password_env),
     "DAGI_NATS_PASSWORD", 1, 256, NULL, NULL, DAGI_CFG_RESTART,
     "Name of the environment variable holding that user's password."},
    {"inprocess", DAGI_CFG_BOOL, offsetof(SECTION_OF(bus), inprocess), "true", 0, 0, NULL, NULL,
     DAGI_CFG_RESTART, "Deliver requests to roles in this process without a trip through NATS."},
    {"nats_server", DAGI_CFG_STRING, offsetof(SECTION_OF(bus), nats_server), "nats-server", 1,
     4096, NULL, NULL, DAGI_CFG_RESTART, "The nats-server binary for the embedded bus."},
    {"max_payload", DAGI_CFG_SIZE, offsetof(SECTION_OF(bus), max_payload), "8MB", 1 * KB, 64 * MB,
     NULL, NULL, DAGI_CFG_RESTART, "Largest message; bigger inputs travel as blob references."},
    {"request_timeout", DAGI_CFG_DURATION, offsetof(SECTION_OF(bus), request_timeout), "30s", 10,
     HOUR, NULL, NULL, 0, "Default deadline of a request between roles."},
    {"reconnect_wait", DAGI_CFG_DURATION, offsetof(SECTION_OF(bus), reconnect_wait), "100ms", 10,
     60 * SECOND, NULL, NULL, DAGI_CFG_RESTART, "First reconnect delay, doubled up to 5 s."},
    {"reconnect_buffer", DAGI_CFG_SIZE, offsetof(SECTION_OF(bus), reconnect_buffer), "8MB", 0,
     1 * GB, NULL, NULL, DAGI_CFG_RESTART,
     "Publishes kept while NATS is unreachable; past it publishing fails with an error."},
    {"dedup_window", DAGI_CFG_DURATION, offsetof(SECTION_OF(bus), dedup_window), "2m", 1000,
     24 * HOUR, NULL, NULL, DAGI_CFG_RESTART, "JetStream de-duplication window (Nats-Msg-Id)."},
    {"event_max_age", DAGI_CFG_DURATION, offsetof(SECTION_OF(bus), event_max_age), "7d",
     60 * SECOND, 3650 * 24 * HOUR, NULL, NULL, DAGI_CFG_RESTART, "Age limit of the event stream."},
    {"work_max_age", DAGI_CFG_DURATION, offsetof(SECTION_OF(bus), work_max_age), "1d",
     60 * SECOND, 365 * 24 * HOUR, NULL, NULL, DAGI_CFG_RESTART,
     "Age limit of sealed inputs waiting in the work stream."},
    {"dlq_max_age", DAGI_CFG_DURATION, offsetof(SECTION_OF(bus), dlq_max_age), "30d", 60 * SECOND,
     3650 * 24 * HOUR, NULL, NULL, DAGI_CFG_RESTART, "Age limit of the dead-letter stream."},
    {"consumer", DAGI_CFG_SECTION, offsetof(SECTION_OF(bus), consumer), NULL, 0, 0, NULL,
     &consumer_schema, 0, "Pull consumer defaults."},
};
static const struct dagi_cfg_schema bus_schema = {"bus", "The bus: NATS and JetStream.",
                                                  sizeof(SECTION_OF(bus)), bus_fields,
                                                  DAGI_ARRAY_LEN(bus_fields), check_bus};

static const struct dagi_cfg_field outbox_fields[] = {
    {"relay", DAGI_CFG_BOOL, offsetof(SECTION_OF(store.outbox), relay), "true", 0, 0, NULL, NULL,
     DAGI_CFG_RESTART, "Run an outbox relay in this process (one per database holds the lease)."},
    {"batch", DAGI_CFG_INT, offsetof(SECTION_OF(store.outbox), batch), "500", 1, 10000, NULL,
     NULL, DAGI_CFG_RESTART, "Rows read and published per round."},
    {"poll_interval", DAGI_CFG_DURATION, offsetof(SECTION_OF(store.outbox), poll_interval), "10ms",
     1, 60 * SECOND, NULL, NULL, DAGI_CFG_RESTART, "Wait between rounds when nothing is pending."},
    {"lease", DAGI_CFG_DURATION, offsetof(SECTION_OF(store.outbox), lease), "10s", 100,
     60 * SECOND, NULL, NULL, DAGI_CFG_RESTART,
     "How long the relay's lease lasts; a standby takes over after it expires."},
    {"retention", DAGI_CFG_DURATION, offsetof(SECTION_OF(store.outbox), retention), "1d",
     60 * SECOND, 365 * 24 * HOUR, NULL, NULL, 0, "Published rows are purged after this."},
};
static const struct dagi_cfg_schema outbox_schema = {
    "store.outbox", "The outbox relay (seed 5.2).", sizeof(SECTION_OF(store.outbox)),
    outbox_fields, DAGI_ARRAY_LEN(outbox_fields), NULL};

static void check_store(void *record, struct dagi_cfg_ctx *ctx)
{
    SECTION_OF(store) *st = record;
    if (st->url && strncmp(st->url, "sqlite:", 7) != 0 && strncmp(st->url, "postgres://", 11) != 0 &&
        strncmp(st->url, "postgresql://", 13) != 0)
        dagi_cfg_report(ctx, "url", "must be sqlite:PATH or postgres://...");
}

static const struct dagi_cfg_field store_fields[] = {
    {"url", DAGI_CFG_STRING, offsetof(SECTION_OF(store), url), NULL, 0, 4096, NULL, NULL,
     DAGI_CFG_RESTART | DAGI_CFG_SECRET,
     "`sqlite:PATH` or `postgres://user:pass@host/db`; unset = sqlite:<data_dir>/dagi.db."},
    {"pool_size", DAGI_CFG_INT, offsetof(SECTION_OF(store), pool_size), "4", 1, 256, NULL, NULL,
     DAGI_CFG_RESTART, "Database connections."},
    {"busy_timeout", DAGI_CFG_DURATION, offsetof(SECTION_OF(store), busy_timeout), "5s", 10,
     60 * SECOND, NULL, NULL, DAGI_CFG_RESTART, "How long a statement waits for a lock."},
    {"outbox", DAGI_CFG_SECTION, offsetof(SECTION_OF(store), outbox), NULL, 0, 0, NULL,
     &outbox_schema, 0, "The outbox relay."},
};
static const struct dagi_cfg_schema store_schema = {"store", "The relational store.",
                                                    sizeof(SECTION_OF(store)), store_fields,
                                                    DAGI_ARRAY_LEN(store_fields), check_store};

const char *const dagi_model_providers[] = {"openai", "ollama", "builtin", NULL};

static const char *const model_capabilities[] = {"chat", "vision", "tools", "embeddings",
                                                 "reasoning", NULL};

static const struct dagi_cfg_field model_fields[] = {
    {"id", DAGI_CFG_STRING, offsetof(struct dagi_model_config, id), NULL, 1, 128, NULL, NULL,
     DAGI_CFG_REQUIRED, "The name agent profiles and routing rules use."},
    {"provider", DAGI_CFG_ENUM, offsetof(struct dagi_model_config, provider), NULL, 0, 0,
     dagi_model_providers, NULL, DAGI_CFG_REQUIRED,
     "`openai` (any OpenAI-compatible API: OpenAI, DeepSeek, vLLM, llama.cpp, Ollama's /v1), "
     "`ollama` (native API, loads and unloads), `builtin` (offline, labelled as such)."},
    {"base_url", DAGI_CFG_STRING, offsetof(struct dagi_model_config, base_url), NULL, 0, 2048,
     NULL, NULL, 0, "The provider's base URL (not for builtin)."},
    {"api_key_env", DAGI_CFG_STRING, offsetof(struct dagi_model_config, api_key_env), NULL, 0,
     256, NULL, NULL, 0, "Environment variable holding the API key; unset = no key."},
    {"model", DAGI_CFG_STRING, offsetof(struct dagi_model_config, model), NULL, 0, 256, NULL,
     NULL, 0, "The upstream's name for the model; defaults to id."},
    {"context_length", DAGI_CFG_INT, offsetof(struct dagi_model_config, context_length), "8192",
     256, 10000000, NULL, NULL, 0, "Tokens of context the model accepts."},
    {"capabilities", DAGI_CFG_STRING_LIST, offsetof(struct dagi_model_config, capabilities),
     "chat", 1, 5, NULL, NULL, 0, "Any of chat, vision, tools, embeddings, reasoning."},
    {"memory_mb", DAGI_CFG_INT, offsetof(struct dagi_model_config, memory_mb), "0", 0, 10000000,
     NULL, NULL, 0, "Local models: memory a load takes from swapper.vram_budget_mb."},
};

static void check_model(void *record, struct dagi_cfg_ctx *ctx)
{
    struct dagi_model_config *m = record;
    for (size_t i = 0; i < m->capabilities.count; i++) {
        bool known = false;
        for (size_t j = 0; model_capabilities[j]; j++)
            known = known || strcmp(m->capabilities.items[i], model_capabilities[j]) == 0;
        if (!known)
            dagi_cfg_report(ctx, "capabilities",
                            "unknown capability \"%s\" (chat, vision, tools, embeddings, reasoning)",
                            m->capabilities.items[i]);
    }
    bool builtin = strcmp(dagi_model_providers[m->provider], "builtin") == 0;
    if (!builtin && !m->base_url)
        dagi_cfg_report(ctx, "base_url", "required for provider %s",
                        dagi_model_providers[m->provider]);
    if (m->base_url && strncmp(m->base_url, "http://", 7) != 0 &&
        strncmp(m->base_url, "https://", 8) != 0)
        dagi_cfg_report(ctx, "base_url", "must start with http:// or https://");
}

static const struct dagi_cfg_schema model_schema = {
    "swapper.models[]", "A model the swapper can serve.", sizeof(struct dagi_model_config),
    model_fields, DAGI_ARRAY_LEN(model_fields), check_model};

static void check_swapper(void *record, struct dagi_cfg_ctx *ctx)
{
    SECTION_OF(swapper) *sw = record;
    const struct dagi_model_config *models = sw->models.items;
    for (size_t i = 0; i < sw->models.count; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(models[i].id, models[j].id) == 0)
                dagi_cfg_report(ctx, "models", "model id \"%s\" is defined twice", models[i].id);
}

static const struct dagi_cfg_field swapper_fields[] = {
    {"vram_budget_mb", DAGI_CFG_INT, offsetof(SECTION_OF(swapper), vram_budget_mb), "0", 0,
     10000000, NULL, NULL, 0,
     "Memory local models may hold at once; past it the least recently used is unloaded "
     "(0 = no budget)."},
    {"connect_timeout", DAGI_CFG_DURATION, offsetof(SECTION_OF(swapper), connect_timeout), "5s",
     10, 5 * 60 * SECOND, NULL, NULL, 0, "Connecting to a provider."},
    {"first_token_timeout", DAGI_CFG_DURATION,
     offsetof(SECTION_OF(swapper), first_token_timeout), "60s", 10, HOUR, NULL, NULL, 0,
     "From the request to the first token (model loads included)."},
    {"total_timeout", DAGI_CFG_DURATION, offsetof(SECTION_OF(swapper), total_timeout), "300s",
     10, 4 * HOUR, NULL, NULL, 0, "A whole answer."},
    {"retries", DAGI_CFG_INT, offsetof(SECTION_OF(swapper), retries), "2", 0, 10, NULL, NULL, 0,
     "Retries with jitter, only before the first token."},
    {"models", DAGI_CFG_LIST, offsetof(SECTION_OF(swapper), models), NULL, 0, 1000, NULL,
     &model_schema, DAGI_CFG_NO_ENV,
     "The models; a `builtin` model is always available even when not listed."},
};
static const struct dagi_cfg_schema swapper_schema = {
    "swapper", "Model providers (seed 2.4).", sizeof(SECTION_OF(swapper)), swapper_fields,
    DAGI_ARRAY_LEN(swapper_fields), check_swapper};

static const struct dagi_cfg_field router_fields[] = {
    {"registry", DAGI_CFG_STRING, offsetof(SECTION_OF(router), registry), NULL, 0, 4096, NULL,
     NULL, 0,
     "The agent registry, the single source of truth for agents (config/agent_registry.yml); "
     "unset = no agents."},
    {"routing", DAGI_CFG_STRING, offsetof(SECTION_OF(router), routing), NULL, 0, 4096, NULL, NULL,
     0, "Routing rules (config/routing.yml); unset = none."},
    {"prompts_dir", DAGI_CFG_STRING, offsetof(SECTION_OF(router), prompts_dir), "config/prompts",
     1, 4096, NULL, NULL, 0, "Where the registry's system prompt files are."},
    {"max_tool_rounds", DAGI_CFG_INT, offsetof(SECTION_OF(router), max_tool_rounds), "3", 0, 20,
     NULL, NULL, 0, "Server-side tool call rounds per request."},
    {"history_max", DAGI_CFG_INT, offsetof(SECTION_OF(router), history_max), "20", 0, 1000, NULL,
     NULL, 0, "Messages of the caller's history passed to the model."},
    {"reserve_tokens", DAGI_CFG_INT, offsetof(SECTION_OF(router), reserve_tokens), "1024", 1,
     1000000, NULL, NULL, 0,
     "Tokens a request without max_tokens holds of its budgets until its real usage is known."},
};
static const struct dagi_cfg_schema router_schema = {
    "router", "The router: agents, routing rules, tools (seed 2.3).", sizeof(SECTION_OF(router)),
    router_fields, DAGI_ARRAY_LEN(router_fields), NULL};

static const struct dagi_cfg_field registry_fields[] = {
    {"policies", DAGI_CFG_STRING, offsetof(SECTION_OF(registry), policies), NULL, 0, 4096, NULL,
     NULL, 0,
     "The policy bundle: roles, bindings, entitlements (config/policy.yml); unset = only the "
     "admin key may act."},
    {"quotas", DAGI_CFG_STRING, offsetof(SECTION_OF(registry), quotas), NULL, 0, 4096, NULL, NULL,
     0, "Budgets of requests and tokens (config/quotas.yml); unset = none."},
    {"flags", DAGI_CFG_STRING, offsetof(SECTION_OF(registry), flags), NULL, 0, 4096, NULL, NULL, 0,
     "Feature flags (config/flags.yml); unset = none."},
    {"lists", DAGI_CFG_STRING, offsetof(SECTION_OF(registry), lists), NULL, 0, 4096, NULL, NULL, 0,
     "Allow and block lists (config/lists.yml); unset = none."},
};
static const struct dagi_cfg_schema registry_schema = {
    "registry", "The config registry's documents besides the router's (seed 1.2).",
    sizeof(SECTION_OF(registry)), registry_fields, DAGI_ARRAY_LEN(registry_fields), NULL};

static const struct dagi_cfg_field telegram_fields[] = {
    {"api_base", DAGI_CFG_STRING, offsetof(SECTION_OF(telegram), api_base),
     "https://api.telegram.org", 1, 1024, NULL, NULL, 0,
     "The Bot API base URL (a local Bot API server, or a test fake)."},
    {"default_agent", DAGI_CFG_STRING, offsetof(SECTION_OF(telegram), default_agent), "daarwizz",
     1, 64, NULL, NULL, 0,
     "The agent whose bot the original's path POST /telegram/webhook serves."},
    {"max_update", DAGI_CFG_SIZE, offsetof(SECTION_OF(telegram), max_update), "1MB", 1024,
     16 << 20, NULL, NULL, 0, "Largest webhook body accepted (413 above)."},
    {"typing_after", DAGI_CFG_DURATION, offsetof(SECTION_OF(telegram), typing_after), "1s", 0,
     60 * SECOND, NULL, NULL, 0,
     "Show \"typing...\" when the answer takes longer than this (never for ACK or SILENT)."},
    {"send_attempts", DAGI_CFG_INT, offsetof(SECTION_OF(telegram), send_attempts), "5", 1, 20,
     NULL, NULL, 0, "Tries per Bot API call; 429 waits its retry_after, 5xx back off."},
    {"answer_timeout", DAGI_CFG_DURATION, offsetof(SECTION_OF(telegram), answer_timeout), "120s",
     SECOND, 30 * 60 * SECOND, NULL, NULL, 0, "How long one update may wait for its answer."},
    {"max_photo", DAGI_CFG_SIZE, offsetof(SECTION_OF(telegram), max_photo), "5MB", 1024,
     6 << 20, NULL, NULL, 0,
     "Largest photo passed to the vision model (it travels base64-encoded on the bus)."},
    {"processed_retention", DAGI_CFG_DURATION,
     offsetof(SECTION_OF(telegram), processed_retention), "7d", 60 * SECOND,
     365.0 * 24 * 3600 * SECOND, NULL, NULL, 0,
     "How long an answered update id is remembered, so a redelivery is not answered twice."},
};
static const struct dagi_cfg_schema telegram_schema = {
    "telegram", "Telegram bots: webhooks, replies through the Bot API.",
    sizeof(SECTION_OF(telegram)), telegram_fields, DAGI_ARRAY_LEN(telegram_fields), NULL};

/* --- auth --- */

const char *const dagi_jwt_algs[] = {"HS256", "RS256", NULL};
/* Route classes (what rate limits are set for); every route has one. */
const char *const dagi_route_classes[] = {"agents", "openai", "hooks", "telegram", "admin",
                                          "ops", "*", NULL};
const char *const dagi_rate_limit_per[] = {"key", "user", "ip", "team", NULL};

#define JWT_KEY_OF struct dagi_jwt_key_config
static void check_jwt_key(void *record, struct dagi_cfg_ctx *ctx)
{
    JWT_KEY_OF *k = record;
    bool hs = k->alg == 0;
    if (hs && !k->secret_env)
        dagi_cfg_report(ctx, "secret_env", "HS256 needs the variable holding its secret");
    if (!hs && !k->public_key_file)
        dagi_cfg_report(ctx, "public_key_file", "RS256 needs the PEM file of its public key");
    if (hs && k->public_key_file)
        dagi_cfg_report(ctx, "public_key_file", "only for RS256");
    if (!hs && k->secret_env)
        dagi_cfg_report(ctx, "secret_env", "only for HS256");
}
static const struct dagi_cfg_field jwt_key_fields[] = {
    {"kid", DAGI_CFG_STRING, offsetof(JWT_KEY_OF, kid), NULL, 1, 128, NULL, NULL, 0,
     "Key id; a token naming it uses this key only. Absent = for tokens without a kid."},
    {"alg", DAGI_CFG_ENUM, offsetof(JWT_KEY_OF, alg), NULL, 0, 0, dagi_jwt_algs, NULL,
     DAGI_CFG_REQUIRED, "The one algorithm this key verifies; a token's own alg never chooses."},
    {"secret_env", DAGI_CFG_STRING, offsetof(JWT_KEY_OF, secret_env), NULL, 1, 128, NULL, NULL,
     0, "HS256: the variable holding the secret (at least 32 bytes)."},
    {"public_key_file", DAGI_CFG_STRING, offsetof(JWT_KEY_OF, public_key_file), NULL, 1, 4096,
     NULL, NULL, 0, "RS256: PEM file of the RSA public key (2048 bits or more)."},
};
static const struct dagi_cfg_schema jwt_key_schema = {
    "keys[]", "A JWT verification key.", sizeof(JWT_KEY_OF), jwt_key_fields,
    DAGI_ARRAY_LEN(jwt_key_fields), check_jwt_key};

static const struct dagi_cfg_field jwt_fields[] = {
    {"issuer", DAGI_CFG_STRING, offsetof(SECTION_OF(auth.jwt), issuer), NULL, 1, 1024, NULL,
     NULL, 0, "Required iss; unset = not checked."},
    {"audience", DAGI_CFG_STRING, offsetof(SECTION_OF(auth.jwt), audience), NULL, 1, 1024, NULL,
     NULL, 0, "Required aud (a token's aud may be a list holding it); unset = not checked."},
    {"leeway", DAGI_CFG_DURATION, offsetof(SECTION_OF(auth.jwt), leeway), "30s", 0,
     10 * 60 * SECOND, NULL, NULL, 0, "Clock skew allowed for exp, nbf and iat."},
    {"keys", DAGI_CFG_LIST, offsetof(SECTION_OF(auth.jwt), keys), NULL, 0, 16, NULL,
     &jwt_key_schema, DAGI_CFG_NO_ENV, "Verification keys; none = JWTs are refused."},
};
static const struct dagi_cfg_schema jwt_schema = {
    "jwt", "JSON Web Tokens as credentials.", sizeof(SECTION_OF(auth.jwt)), jwt_fields,
    DAGI_ARRAY_LEN(jwt_fields), NULL};

#define HOOK_OF struct dagi_hook_config
static const struct dagi_cfg_field hook_fields[] = {
    {"agent", DAGI_CFG_STRING, offsetof(HOOK_OF, agent), NULL, 1, 64, NULL, NULL,
     DAGI_CFG_REQUIRED, "The agent POST /v1/hooks/{agent} delivers to."},
    {"secret_env", DAGI_CFG_STRING, offsetof(HOOK_OF, secret_env), NULL, 1, 128, NULL, NULL,
     DAGI_CFG_REQUIRED, "The variable holding the signing secret (16 bytes or more)."},
    {"previous_secret_env", DAGI_CFG_STRING, offsetof(HOOK_OF, previous_secret_env), NULL, 1,
     128, NULL, NULL, 0, "The secret being rotated out, accepted too until removed."},
};
static const struct dagi_cfg_schema hook_schema = {
    "hooks[]", "A signed webhook.", sizeof(HOOK_OF), hook_fields, DAGI_ARRAY_LEN(hook_fields),
    NULL};

#define RL_OF struct dagi_rate_limit_config
static const struct dagi_cfg_field rate_limit_fields[] = {
    {"routes", DAGI_CFG_ENUM, offsetof(RL_OF, routes), NULL, 0, 0, dagi_route_classes, NULL,
     DAGI_CFG_REQUIRED, "The route class: agents, openai, hooks, telegram, admin, ops, or *."},
    {"per", DAGI_CFG_ENUM, offsetof(RL_OF, per), NULL, 0, 0, dagi_rate_limit_per, NULL,
     DAGI_CFG_REQUIRED, "One bucket per API key, user, client IP or team."},
    {"limit", DAGI_CFG_INT, offsetof(RL_OF, limit), NULL, 1, 1e9, NULL, NULL, DAGI_CFG_REQUIRED,
     "Requests per window."},
    {"window", DAGI_CFG_DURATION, offsetof(RL_OF, window), "1m", SECOND, 24 * 3600 * SECOND,
     NULL, NULL, 0, "The window the limit is per (the bucket refills evenly over it)."},
    {"burst", DAGI_CFG_INT, offsetof(RL_OF, burst), "0", 0, 1e9, NULL, NULL, 0,
     "Requests allowed at once; 0 = limit."},
};
static const struct dagi_cfg_schema rate_limit_schema = {
    "rate_limits[]", "A token bucket per caller of a route class.", sizeof(RL_OF),
    rate_limit_fields, DAGI_ARRAY_LEN(rate_limit_fields), NULL};

static const struct dagi_cfg_field auth_fields[] = {
    {"key_cache_ttl", DAGI_CFG_DURATION, offsetof(SECTION_OF(auth), key_cache_ttl), "5s", 0,
     5 * 60 * SECOND, NULL, NULL, DAGI_CFG_RESTART,
     "How long a looked-up API key is trusted before the store is asked again (how long a "
     "revoke may take to reach every node)."},
    {"jwt", DAGI_CFG_SECTION, offsetof(SECTION_OF(auth), jwt), NULL, 0, 0, NULL, &jwt_schema, 0,
     "JWT credentials."},
    {"hook_tolerance", DAGI_CFG_DURATION, offsetof(SECTION_OF(auth), hook_tolerance), "300s",
     SECOND, 3600 * SECOND, NULL, NULL, 0,
     "A signed webhook's timestamp may be this far from now."},
    {"hooks", DAGI_CFG_LIST, offsetof(SECTION_OF(auth), hooks), NULL, 0, 1000, NULL,
     &hook_schema, DAGI_CFG_NO_ENV, "Signed webhooks, one per agent."},
    {"rate_limits", DAGI_CFG_LIST, offsetof(SECTION_OF(auth), rate_limits), NULL, 0, 100, NULL,
     &rate_limit_schema, DAGI_CFG_NO_ENV, "Token buckets; none = no limits."},
};
static const struct dagi_cfg_schema auth_schema = {
    "auth", "Who may call: API keys, JWTs, signed webhooks, rate limits.",
    sizeof(SECTION_OF(auth)), auth_fields, DAGI_ARRAY_LEN(auth_fields), NULL};

static const struct dagi_cfg_field top_fields[] = {
    {"node", DAGI_CFG_SECTION, offsetof(struct dagi_config, node), NULL, 0, 0, NULL, &node_schema,
     0, "This node."},
    {"http", DAGI_CFG_SECTION, offsetof(struct dagi_config, http), NULL, 0, 0, NULL, &http_schema,
     0, "The public HTTP listener."},
    {"log", DAGI_CFG_SECTION, offsetof(struct dagi_config, log), NULL, 0, 0, NULL, &log_schema, 0,
     "Structured JSON logs."},
    {"metrics", DAGI_CFG_SECTION, offsetof(struct dagi_config, metrics), NULL, 0, 0, NULL,
     &metrics_schema, 0, "Prometheus metrics."},
    {"workers", DAGI_CFG_SECTION, offsetof(struct dagi_config, workers), NULL, 0, 0, NULL,
     &workers_schema, 0, "The bounded worker pool."},
    {"http_client", DAGI_CFG_SECTION, offsetof(struct dagi_config, http_client), NULL, 0, 0, NULL,
     &client_schema, 0, "Outbound HTTP."},
    {"bus", DAGI_CFG_SECTION, offsetof(struct dagi_config, bus), NULL, 0, 0, NULL, &bus_schema, 0,
     "The bus: NATS and JetStream."},
    {"store", DAGI_CFG_SECTION, offsetof(struct dagi_config, store), NULL, 0, 0, NULL,
     &store_schema, 0, "The relational store."},
    {"swapper", DAGI_CFG_SECTION, offsetof(struct dagi_config, swapper), NULL, 0, 0, NULL,
     &swapper_schema, 0, "Model providers."},
    {"router", DAGI_CFG_SECTION, offsetof(struct dagi_config, router), NULL, 0, 0, NULL,
     &router_schema, 0, "The router."},
    {"registry", DAGI_CFG_SECTION, offsetof(struct dagi_config, registry), NULL, 0, 0, NULL,
     &registry_schema, 0, "The control plane's documents."},
    {"telegram", DAGI_CFG_SECTION, offsetof(struct dagi_config, telegram), NULL, 0, 0, NULL,
     &telegram_schema, 0, "Telegram bots."},
    {"auth", DAGI_CFG_SECTION, offsetof(struct dagi_config, auth), NULL, 0, 0, NULL, &auth_schema,
     0, "Who may call."},
};

const struct dagi_cfg_schema dagi_config_schema = {
    "dagi.yml", "The node configuration file.", sizeof(struct dagi_config), top_fields,
    DAGI_ARRAY_LEN(top_fields), NULL};

int dagi_config_snapshot_load(const char *path, const struct dagi_config_overrides *ov,
                              struct dagi_config_snapshot **out, struct dagi_cfg_errors *errs)
{
    struct dagi_arena *arena = dagi_arena_new(0);
    void *obj = NULL;
    int rc;
    if (path)
        rc = dagi_cfg_load_file(&dagi_config_schema, path, arena, &obj, errs);
    else
        rc = dagi_cfg_load_defaults(&dagi_config_schema, arena, &obj, errs);
    if (rc)
        goto out;
    if (ov && ov->envp) {
        rc = dagi_cfg_apply_env(&dagi_config_schema, obj, "DAGI", ov->envp, arena, errs);
        if (rc)
            goto out;
    }
    if (ov && ov->listen)
        rc = dagi_cfg_set(&dagi_config_schema, obj, "http.listen", ov->listen, "--listen", arena,
                          errs);
    if (!rc && ov && ov->data_dir)
        rc = dagi_cfg_set(&dagi_config_schema, obj, "node.data_dir", ov->data_dir, "--data-dir",
                          arena, errs);
    if (!rc && ov && ov->log_level)
        rc = dagi_cfg_set(&dagi_config_schema, obj, "log.level", ov->log_level, "--log-level",
                          arena, errs);
    if (rc)
        goto out;

    struct dagi_config_snapshot *s = dagi_xcalloc(1, sizeof(*s));
    atomic_init(&s->refs, 1);
    s->arena = arena;
    s->cfg = obj;
    s->path = path ? dagi_xstrdup(path) : NULL;
    *out = s;
    return DAGI_OK;
out:
    dagi_arena_free(arena);
    return rc;
}

struct dagi_config_snapshot *dagi_config_snapshot_ref(struct dagi_config_snapshot *s)
{
    atomic_fetch_add(&s->refs, 1);
    return s;
}

void dagi_config_snapshot_unref(struct dagi_config_snapshot *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    dagi_arena_free(s->arena);
    free(s->path);
    free(s);
}

const char **dagi_config_model_ids(const struct dagi_config *c, size_t *n)
{
    size_t count = c->swapper.models.count;
    const char **known = dagi_xcalloc(count + 2, sizeof(*known));
    const struct dagi_model_config *models = c->swapper.models.items;
    for (size_t i = 0; i < count; i++)
        known[i] = models[i].id;
    known[count] = "builtin";
    *n = count + 1;
    return known;
}
