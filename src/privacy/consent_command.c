/* Telegram's /consent (consent_command.h): parse, one store call on the
 * pool, the answer in Ukrainian and English. */
#include "privacy/consent_command.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/mem.h"
#include "core/pool.h"
#include "policy/textnorm.h"
#include "privacy/consent_internal.h"

#define ANSWER_MAX 1024

enum dagi_consent_verb dagi_consent_command_parse(const char *args)
{
    static const char *const grant[] = {"on", "yes", "grant", "так", "увімкнути", "надати"};
    static const char *const revoke[] = {"off", "no", "revoke", "ні", "вимкнути", "відкликати"};
    char word[64];
    size_t n = 0;
    const char *s = args ? args : "";
    while (*s == ' ' || *s == '\t' || *s == '\n')
        s++;
    while (s[n] && s[n] != ' ' && s[n] != '\t' && s[n] != '\n' && n < sizeof(word) - 1) {
        word[n] = s[n];
        n++;
    }
    word[n] = '\0';
    const char *rest = s + n;
    while (*rest == ' ' || *rest == '\t' || *rest == '\n')
        rest++;
    if (n == 0)
        return DAGI_CONSENT_SHOW;
    if (*rest)
        return DAGI_CONSENT_USAGE; /* "/consent on please" is not a clear yes */
    char folded[sizeof(word) * 2]; /* "ON", "Так" */
    if (dagi_text_normalize(word, n, folded, sizeof(folded)) >= sizeof(folded))
        return DAGI_CONSENT_USAGE;
    for (size_t k = 0; k < DAGI_ARRAY_LEN(grant); k++)
        if (strcmp(folded, grant[k]) == 0)
            return DAGI_CONSENT_GRANT;
    for (size_t k = 0; k < DAGI_ARRAY_LEN(revoke); k++)
        if (strcmp(folded, revoke[k]) == 0)
            return DAGI_CONSENT_REVOKE;
    return DAGI_CONSENT_USAGE;
}

struct command_job {
    struct dagi_consent_api api; /* the node's */
    enum dagi_consent_verb verb;
    char user[DAGI_CONSENT_PRINCIPAL_MAX + 1];
    char agent_id[DAGI_CONSENT_AGENT_MAX + 1];
    char trace_id[64];
    bool granted, changed;
    int rc;
    struct dagi_error err;
    dagi_consent_reply_fn reply;
    void *ud;
};

static void on_work(void *ud)
{
    struct command_job *job = ud;
    struct dagi_db *db = consent_api_db(&job->api);
    if (!db) {
        job->rc = dagi_error_set(&job->err, DAGI_EUNAVAIL, "no store");
        return;
    }
    if (job->verb == DAGI_CONSENT_GRANT || job->verb == DAGI_CONSENT_REVOKE) {
        job->granted = job->verb == DAGI_CONSENT_GRANT;
        job->rc = dagi_consent_set(db, job->user, job->agent_id, job->granted,
                                   DAGI_CONSENT_SOURCE_TELEGRAM, job->user, dagi_clock_now_ms(),
                                   &job->changed, &job->err);
    } else {
        job->rc = dagi_consent_get(db, job->user, job->agent_id, &job->granted, &job->err);
    }
}

static void answer(const struct command_job *job, char *out, size_t cap)
{
    const char *a = job->agent_id;
    const char *usage = job->verb == DAGI_CONSENT_USAGE
                            ? "Використання: /consent, /consent on, /consent off.\n"
                              "Usage: /consent, /consent on, /consent off.\n"
                            : "";
    if (job->verb == DAGI_CONSENT_GRANT)
        snprintf(out, cap,
                 "Згоду надано: %s бачитиме ваші конфіденційні розмови повністю. "
                 "/consent off - відкликати.\n"
                 "Consent granted: %s will see your confidential conversations in full. "
                 "/consent off revokes it.",
                 a, a);
    else if (job->verb == DAGI_CONSENT_REVOKE)
        snprintf(out, cap,
                 "Згоду відкликано: у конфіденційному режимі %s бачитиме лише знеособлений "
                 "стислий виклад. /consent on - надати.\n"
                 "Consent revoked: in confidential mode %s sees only a sanitized summary. "
                 "/consent on grants it.",
                 a, a);
    else if (job->granted)
        snprintf(out, cap,
                 "%sЗгода для %s: надана. /consent off - відкликати.\n"
                 "Consent for %s: granted. /consent off revokes it.",
                 usage, a, a);
    else
        snprintf(out, cap,
                 "%sЗгода для %s: не надана - у конфіденційному режимі агент бачить лише "
                 "знеособлений стислий виклад. /consent on - надати.\n"
                 "Consent for %s: not granted - in confidential mode it sees only a sanitized "
                 "summary. /consent on grants it.",
                 usage, a, a);
}

static void on_done(void *ud, bool cancelled)
{
    struct command_job *job = ud;
    if (cancelled) {
        job->reply(job->ud, DAGI_ECANCELED, NULL);
    } else if (job->rc) {
        job->reply(job->ud, job->rc, NULL);
    } else {
        if (job->changed)
            consent_audit_change(&job->api, job->user, job->user, job->agent_id, job->granted,
                                 DAGI_CONSENT_SOURCE_TELEGRAM,
                                 job->trace_id[0] ? job->trace_id : NULL);
        char text[ANSWER_MAX];
        answer(job, text, sizeof(text));
        job->reply(job->ud, DAGI_OK, text);
    }
    free(job);
}

int dagi_consent_command_run(const struct dagi_consent_api *api,
                             const struct dagi_consent_command *cmd, dagi_consent_reply_fn reply,
                             void *ud)
{
    if (!dagi_consent_principal_valid(cmd->user) || !dagi_consent_agent_valid(cmd->agent_id))
        return DAGI_EINVAL;
    struct dagi_pool *pool = consent_api_pool(api);
    if (!consent_api_db(api) || !pool)
        return DAGI_EUNAVAIL;
    struct command_job *job = dagi_xcalloc(1, sizeof(*job));
    job->api = *api;
    job->verb = dagi_consent_command_parse(cmd->args);
    snprintf(job->user, sizeof(job->user), "%s", cmd->user);
    snprintf(job->agent_id, sizeof(job->agent_id), "%s", cmd->agent_id);
    snprintf(job->trace_id, sizeof(job->trace_id), "%s", cmd->trace_id ? cmd->trace_id : "");
    job->reply = reply;
    job->ud = ud;
    int rc = dagi_pool_submit(pool, on_work, on_done, job);
    if (rc)
        free(job);
    return rc;
}
