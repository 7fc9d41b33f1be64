/* Telegram's /consent (docs/PRIVACY_GATE.md, "/consent"): the sender's
 * consent for this bot's agent, answered without a model call.
 *
 *   /consent        shows the state
 *   /consent on     grants   (also: yes, grant, так, увімкнути)
 *   /consent off    revokes  (also: no, revoke, ні, вимкнути)
 *
 * A change is stored with source "telegram" and audited like one made
 * through the API. */
#ifndef DAGI_PRIVACY_CONSENT_COMMAND_H
#define DAGI_PRIVACY_CONSENT_COMMAND_H

#include "core/err.h"

struct dagi_consent_api;

enum dagi_consent_verb {
    DAGI_CONSENT_SHOW,
    DAGI_CONSENT_GRANT,
    DAGI_CONSENT_REVOKE,
    DAGI_CONSENT_USAGE, /* not understood: the state and how to change it */
};

/* What the command's arguments ask (pure). */
enum dagi_consent_verb dagi_consent_command_parse(const char *args);

struct dagi_consent_command {
    const char *agent_id;
    const char *user;     /* the sender: "tg:<telegram user id>" */
    const char *args;     /* after "/consent", "" for none */
    const char *trace_id; /* may be NULL */
};

/* Called on the loop thread: rc 0 with the answer (valid during the
 * call), or the store's error with text NULL (worth a retry when
 * DAGI_EAGAIN / DAGI_EUNAVAIL / DAGI_ECANCELED). */
typedef void (*dagi_consent_reply_fn)(void *ud, int rc, const char *text);

/* Runs the command on the worker pool of api (consent_routes.h; a node's:
 * {.node = node}), loop thread; api and cmd are copied.  0: reply is
 * called exactly once, later; otherwise reply is never called (the pool
 * is full, there is no store, or cmd names no valid user or agent). */
int dagi_consent_command_run(const struct dagi_consent_api *api,
                             const struct dagi_consent_command *cmd, dagi_consent_reply_fn reply,
                             void *ud);

#endif
