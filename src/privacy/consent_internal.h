/* Private to the consent files: what the HTTP routes and the Telegram
 * command share. */
#ifndef DAGI_PRIVACY_CONSENT_INTERNAL_H
#define DAGI_PRIVACY_CONSENT_INTERNAL_H

#include <stdbool.h>

#include "privacy/consent.h"
#include "privacy/consent_routes.h"

struct dagi_db *consent_api_db(const struct dagi_consent_api *api);
struct dagi_pool *consent_api_pool(const struct dagi_consent_api *api);

/* privacy/consent_granted or privacy/consent_revoked for one change, on
 * the loop thread: actor who made it, subject the agent, metadata the
 * record's user and the source. */
void consent_audit_change(const struct dagi_consent_api *api, const char *actor, const char *user,
                          const char *agent_id, bool granted, enum dagi_consent_source source,
                          const char *trace_id);

#endif
