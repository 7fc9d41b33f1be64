/* The gate's body validation (gate.h): a JSON body's members against the
 * route's rules, with the member named in the 400.  The parsed document is
 * kept on the request, so the handler's dagi_http_req_json() does not parse
 * it again. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "node/gate.h"

static const char *type_name(enum dagi_body_type t)
{
    static const char *const names[] = {"any value", "a string", "an integer", "a number",
                                        "a boolean", "an object", "an array",
                                        "a string or an array"};
    return names[t];
}

static bool type_ok(enum dagi_body_type t, const json_t *v)
{
    switch (t) {
    case DAGI_BODY_ANY: return true;
    case DAGI_BODY_STRING: return json_is_string(v);
    case DAGI_BODY_INT: return json_is_integer(v);
    case DAGI_BODY_NUMBER: return json_is_number(v);
    case DAGI_BODY_BOOL: return json_is_boolean(v);
    case DAGI_BODY_OBJECT: return json_is_object(v);
    case DAGI_BODY_ARRAY: return json_is_array(v);
    case DAGI_BODY_STRING_OR_ARRAY: return json_is_string(v) || json_is_array(v);
    }
    return false;
}

static size_t size_of(const json_t *v)
{
    if (json_is_string(v))
        return json_string_length(v);
    if (json_is_array(v))
        return json_array_size(v);
    if (json_is_object(v))
        return json_object_size(v);
    return 0;
}

int dagi_body_validate(const json_t *doc, const struct dagi_body_rules *rules,
                       struct dagi_body_problem *p)
{
    for (size_t i = 0; i < rules->count; i++) {
        const struct dagi_body_field *f = &rules->fields[i];
        json_t *v = json_object_get(doc, f->name);
        p->field = f->name;
        p->detail[0] = '\0';
        if (!v || json_is_null(v)) {
            if (!f->required)
                continue;
            p->status = 400;
            p->what = "is required";
            return -1;
        }
        if (!type_ok(f->type, v)) {
            p->status = 400;
            p->what = "must be ";
            snprintf(p->detail, sizeof(p->detail), "%s", type_name(f->type));
            return -1;
        }
        if (f->max && size_of(v) > f->max) {
            p->status = 413;
            p->what = "is over the cap of ";
            snprintf(p->detail, sizeof(p->detail), "%zu %s", f->max,
                     json_is_string(v)  ? "bytes"
                     : json_is_array(v) ? "items"
                                        : "members");
            return -1;
        }
    }
    if (rules->refuse_unknown) {
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)doc, key, v)
        {
            bool known = false;
            for (size_t i = 0; i < rules->count && !known; i++)
                known = strcmp(rules->fields[i].name, key) == 0;
            if (!known) {
                p->status = 400;
                p->field = key;
                p->what = "is not a field of this request";
                snprintf(p->detail, sizeof(p->detail),
                         " (this route refuses fields it does not know)");
                return -1;
            }
        }
    }
    return 0;
}

int gate_body_check(struct dagi_http_req *req, const struct dagi_body_rules *rules, bool openai)
{
    json_t *doc = NULL;
    if (dagi_http_req_json(req, &doc))
        return -1; /* answered: 415 or 400 with the JSON error */
    struct dagi_body_problem p;
    int rc = dagi_body_validate(doc, rules, &p);
    if (rc) {
        char message[512];
        snprintf(message, sizeof(message), "%.160s %s%s", p.field, p.what, p.detail);
        if (openai)
            dagi_http_respond_json(
                req, p.status,
                json_pack("{s:{s:s,s:s,s:s,s:s}}", "error", "message", message, "type",
                          "invalid_request_error", "param", p.field, "code",
                          p.status == 413 ? "request_too_large" : "invalid_value"));
        else
            dagi_http_respond_error(req, p.status, p.status == 413 ? "too_large" : "invalid_field",
                                    p.field, "%s", message);
    }
    json_decref(doc);
    return rc;
}
