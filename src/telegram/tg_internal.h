/* Private to the telegram role (tg_role.c has the overview): the bots, the
 * role's state, and what one file calls in another.  Everything here runs on
 * the loop thread unless it says otherwise. */
#ifndef DAGI_TELEGRAM_TG_INTERNAL_H
#define DAGI_TELEGRAM_TG_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "agents/registry.h"
#include "telegram/tg_client.h"

struct dagi_node;
struct dagi_cplane;
struct dagi_js_consumer;
struct dagi_metric;

#define TG_WORK_SUBJECT "dagi.work.telegram"
#define TG_TOKEN_MAX 256
/* A work item's seal is bound to its subject and agent: an update cannot be
 * replayed under another kind of work or handed to another bot by editing
 * the envelope's clear metadata.  aad: TG_WORK_SUBJECT "/" agent_id. */
#define TG_AAD_MAX 128
#define TG_SECRET_MAX 256

/* One agent's bot, as the registry and the environment describe it. */
struct tg_bot {
    const struct dagi_agent *agent; /* in the snapshot's registry */
    char token[TG_TOKEN_MAX + 1];   /* "" = the variable is not set: no bot */
    char secret[TG_SECRET_MAX + 1]; /* "" = no webhook secret: every webhook is refused */
    int64_t id;                     /* from getMe; 0 until known */
    char username[64];              /* the registry's, or getMe's */
};

/* The bots of one registry: replaced whole on reload, shared by count. */
struct tg_snap {
    atomic_int refs;
    struct dagi_registry *reg;
    struct tg_bot *bots;
    size_t count;
};

struct tg_state {
    struct dagi_node *node;
    struct dagi_cplane *cp; /* the control plane's snapshot: the agents */
    struct tg_snap *snap;   /* the bots of cp's agents; replaced on the loop */
    struct dagi_tg_client *api;
    struct dagi_js_consumer *consumer;
    struct tg_job *jobs; /* in flight, for stop */
    bool draining;
    struct dagi_metric *updates;  /* dagi_telegram_updates_total{agent_id,result} */
    struct dagi_metric *messages; /* dagi_telegram_messages_sent_total{agent_id} */
};

struct tg_snap *tg_snap_ref(struct tg_snap *s);
void tg_snap_unref(struct tg_snap *s);
/* The bot of agent `id` (with or without a token), or NULL. */
struct tg_bot *tg_snap_find(struct tg_snap *s, const char *id);

/* tg_webhook.c: the webhook routes. */
int tg_webhook_register(struct tg_state *tg, struct dagi_error *err);

/* tg_worker.c: the consumer of dagi.work.telegram. */
int tg_worker_start(struct tg_state *tg, struct dagi_error *err);
void tg_worker_stop(struct tg_state *tg);

/* tg_store.c: which updates were answered (survives restarts). */
enum tg_seen { TG_NEW, TG_IN_PROGRESS, TG_DONE };
/* On the pool: marks (agent, update_id) in progress unless it is done;
 * *seen says what it was before. */
struct dagi_db_conn;
int tg_store_claim(struct dagi_db_conn *conn, const char *agent_id, int64_t update_id,
                   int64_t now_ms, enum tg_seen *seen, struct dagi_error *err);
int tg_store_done(struct dagi_db_conn *conn, const char *agent_id, int64_t update_id,
                  int64_t now_ms, struct dagi_error *err);
int tg_store_purge(struct dagi_db_conn *conn, int64_t older_than_ms, struct dagi_error *err);

#endif
