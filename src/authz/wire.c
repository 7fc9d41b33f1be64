/* The JSON form of a decision request and its answer (dagi.pdp.decide and
 * POST /v1/pdp/decide), and the bounded metric label of an action. */
#include "authz/authz.h"

#include "core/err.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static const char *const known_fields[] = {"principal", "subjects", "team",
                                           "action",    "resource", NULL};

static int refuse(const char **field, const char *name, char *why, size_t why_len, const char *text)
{
    *field = name;
    snprintf(why, why_len, "%s", text);
    return DAGI_EINVAL;
}

/* A member that must be a string without NUL of 1..max bytes; absent (or
 * null) leaves *out NULL unless required. */
static int member(const json_t *doc, const char *name, size_t max, bool required, const char **out,
                  const char **field, char *why, size_t why_len)
{
    const json_t *v = json_object_get(doc, name);
    *out = NULL;
    if (!v || json_is_null(v)) {
        if (!required)
            return DAGI_OK;
        *field = name;
        snprintf(why, why_len, "%s is required", name);
        return DAGI_EINVAL;
    }
    size_t len = json_string_length(v);
    if (!json_is_string(v) || len > max || strlen(json_string_value(v)) != len ||
        (required && len == 0)) {
        *field = name;
        snprintf(why, why_len, "%s must be a string of %s%zu bytes", name,
                 required ? "1 to " : "at most ", max);
        return DAGI_EINVAL;
    }
    *out = json_string_value(v);
    return DAGI_OK;
}

int dagi_authz_request_from_json(const json_t *doc, struct dagi_authz_request *out,
                                 const char **subjects, const char **field, char *why,
                                 size_t why_len)
{
    struct dagi_authz_request r = {0};
    if (!json_is_object(doc))
        return refuse(field, "body", why, why_len, "the body must be a JSON object");
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)doc, key, value)
    {
        bool known = false;
        for (size_t i = 0; known_fields[i] && !known; i++)
            known = strcmp(key, known_fields[i]) == 0;
        if (!known) {
            *field = "body";
            snprintf(why, why_len, "unknown member \"%.64s\"", key);
            return DAGI_EINVAL;
        }
    }
    int rc =
        member(doc, "principal", DAGI_AUTHZ_SUBJECT_MAX, true, &r.principal, field, why, why_len);
    if (!rc)
        rc = member(doc, "action", DAGI_AUTHZ_ACTION_MAX, true, &r.action, field, why, why_len);
    if (!rc)
        rc = member(doc, "team", DAGI_AUTHZ_ID_MAX, false, &r.team, field, why, why_len);
    if (!rc)
        rc = member(doc, "resource", DAGI_AUTHZ_ID_MAX, false, &r.resource, field, why, why_len);
    if (rc)
        return rc;
    const json_t *list = json_object_get(doc, "subjects");
    if (list && !json_is_null(list)) {
        if (!json_is_array(list) || json_array_size(list) > DAGI_AUTHZ_REQUEST_SUBJECTS_MAX) {
            *field = "subjects";
            snprintf(why, why_len, "subjects must be an array of at most %d strings",
                     DAGI_AUTHZ_REQUEST_SUBJECTS_MAX);
            return DAGI_EINVAL;
        }
        for (size_t i = 0; i < json_array_size(list); i++) {
            const json_t *s = json_array_get(list, i);
            size_t len = json_string_length(s);
            if (!json_is_string(s) || len == 0 || len > DAGI_AUTHZ_SUBJECT_MAX ||
                strlen(json_string_value(s)) != len) {
                *field = "subjects";
                snprintf(why, why_len, "subjects[%zu] must be a string of 1 to %d bytes", i,
                         DAGI_AUTHZ_SUBJECT_MAX);
                return DAGI_EINVAL;
            }
            subjects[i] = json_string_value(s);
        }
        r.subjects = subjects;
        r.n_subjects = json_array_size(list);
    }
    *out = r;
    return DAGI_OK;
}

json_t *dagi_authz_decision_to_json(const struct dagi_authz_decision *d)
{
    return json_pack("{s:b,s:s,s:o}", "allow", d->allow, "reason", d->reason ? d->reason : "",
                     "rule", d->rule ? json_string(d->rule) : json_null());
}

const char *dagi_authz_action_prefix(const char *action)
{
    static const char *const families[] = {"agent", "memory", "mode",   "model", "config",
                                           "audit", "pdp",    "budget", "tool",  NULL};
    if (!action)
        return "other";
    size_t len = strcspn(action, ".");
    for (size_t i = 0; families[i]; i++)
        if (strlen(families[i]) == len && strncmp(action, families[i], len) == 0)
            return families[i];
    return "other";
}
