/* Consent records (docs/PRIVACY_GATE.md, "Consent"): whether a user lets
 * an agent's model see their confidential conversations in full.  Stored,
 * never taken from a request: the current state per (user principal,
 * agent) in privacy_consent, and every change in the append-only
 * privacy_consent_history - who made it, when, through what.
 *
 * The principal is the caller's: "user:<id>" for API keys and JWTs,
 * "tg:<telegram user id>" for Telegram, "admin" for the admin key.  No
 * record means no consent.
 *
 * Blocking: these run on the worker pool (store/db.h), never on a loop
 * thread.  Each acquires and releases its own connection. */
#ifndef DAGI_PRIVACY_CONSENT_H
#define DAGI_PRIVACY_CONSENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct dagi_db;

#define DAGI_CONSENT_PRINCIPAL_MAX 160
#define DAGI_CONSENT_AGENT_MAX 64
#define DAGI_CONSENT_LIST_MAX 1000

enum dagi_consent_source {
    DAGI_CONSENT_SOURCE_API,
    DAGI_CONSENT_SOURCE_TELEGRAM,
    DAGI_CONSENT_SOURCE_ADMIN,
};

/* "api" | "telegram" | "admin" */
const char *dagi_consent_source_name(enum dagi_consent_source source);
int dagi_consent_source_parse(const char *name, enum dagi_consent_source *out);

/* A principal: 1-160 bytes of printable ASCII without spaces, with a kind
 * ("user:olena", "tg:42") or "admin". */
bool dagi_consent_principal_valid(const char *principal);
/* An agent id as the registry has them: [a-z][a-z0-9_-]*, at most 64. */
bool dagi_consent_agent_valid(const char *agent_id);

struct dagi_consent_record {
    char user[DAGI_CONSENT_PRINCIPAL_MAX + 1];
    char agent_id[DAGI_CONSENT_AGENT_MAX + 1];
    bool granted;
    enum dagi_consent_source source;
    char changed_by[DAGI_CONSENT_PRINCIPAL_MAX + 1];
    int64_t updated_at_ms;
};

/* Grants or revokes, recording the change in the history in the same
 * transaction.  *changed (may be NULL) is false when the record already
 * said so - then nothing is written, so a repeated /consent on makes no
 * history.  A first revoke with no record writes one: the refusal is
 * recorded.  DAGI_EINVAL for an invalid principal or agent id. */
int dagi_consent_set(struct dagi_db *db, const char *user, const char *agent_id, bool granted,
                     enum dagi_consent_source source, const char *changed_by, int64_t now_ms,
                     bool *changed, struct dagi_error *err);

/* *granted: the record's state, false when there is none. */
int dagi_consent_get(struct dagi_db *db, const char *user, const char *agent_id, bool *granted,
                     struct dagi_error *err);

/* A user's records, by agent id. */
struct dagi_consent_list {
    struct dagi_consent_record *records; /* owned; dagi_consent_list_release */
    size_t count;
    bool truncated; /* there were more than the limit */
};
/* limit 0 = DAGI_CONSENT_LIST_MAX (also the most it takes). */
int dagi_consent_list(struct dagi_db *db, const char *user, size_t limit,
                      struct dagi_consent_list *out, struct dagi_error *err);
void dagi_consent_list_release(struct dagi_consent_list *list);

#endif
