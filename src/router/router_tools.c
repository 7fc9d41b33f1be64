/* Server-side tools of the router (router_internal.h): the agent's declared
 * tools in the OpenAI function shape, and one round of calls - each allowed
 * call sent to its tool's URL with the HTTP client, each other one refused -
 * answered as `tool` messages. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/http_client.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "router/router_internal.h"

/* Cap on a tool's response body. */
#define TOOL_MAX_RESPONSE (256u * 1024)
#define TOOL_DEFAULT_TIMEOUT_MS 10000u

struct tool_call {
    struct dagi_router_tools *batch;
    struct dagi_http_call *http; /* in flight, or NULL */
    const struct dagi_agent_tool *tool;
};

struct dagi_router_tools {
    struct dagi_router_state *rt;
    const struct dagi_agent *agent;
    json_t *calls;    /* the model's tool_calls, referenced */
    json_t **content; /* per call: the tool message's content (a JSON string) */
    struct tool_call *slots;
    size_t n, pending;
    dagi_router_tools_done done;
    void *ud;
    struct dagi_router_tools **owner; /* cleared before done runs */
};

json_t *dagi_router_tools_spec(const struct dagi_agent *agent)
{
    const struct dagi_agent_tool *tools = agent->tools.items;
    if (!agent->tools.count)
        return NULL;
    json_t *out = json_array();
    for (size_t i = 0; i < agent->tools.count; i++) {
        json_t *params = tools[i].parameters
                             ? json_incref(tools[i].parameters)
                             : json_pack("{s:s,s:{}}", "type", "object", "properties");
        json_array_append_new(out, json_pack("{s:s,s:{s:s,s:s,s:o}}", "type", "function",
                                             "function", "name", tools[i].name, "description",
                                             tools[i].description ? tools[i].description : "",
                                             "parameters", params));
    }
    return out;
}

static const struct dagi_agent_tool *find_tool(const struct dagi_agent *a, const char *name)
{
    const struct dagi_agent_tool *tools = a->tools.items;
    for (size_t i = 0; name && i < a->tools.count; i++)
        if (!strcmp(tools[i].name, name))
            return &tools[i];
    return NULL;
}

static bool allowed(const struct dagi_agent *a, const char *name)
{
    for (size_t i = 0; name && i < a->allowed_tools.count; i++)
        if (!strcmp(a->allowed_tools.items[i], name))
            return true;
    return false;
}

static void count(struct dagi_router_tools *b, const struct dagi_agent_tool *tool,
                  const char *result)
{
    struct dagi_router_state *rt = b->rt;
    if (!rt->tool_calls)
        rt->tool_calls = dagi_metrics_counter(
            dagi_node_metrics(rt->node), "agent_tool_calls_total",
            "Server-side tool calls the models made, by tool and result (ok, error, refused).",
            (const char *[]){"agent_id", "tool", "result", NULL});
    dagi_metric_inc(rt->tool_calls,
                    (const char *[]){b->agent->id, tool ? tool->name : "undeclared", result});
}

/* {"error": "..."} as the tool message's content. */
static json_t *error_content(const char *name, const char *what, const char *detail)
{
    char text[512];
    snprintf(text, sizeof(text), "tool %s %s%s", name, what, detail ? detail : "");
    json_t *e = json_pack("{s:s}", "error", text);
    char *s = json_dumps(e, JSON_COMPACT);
    json_t *out = json_string(s ? s : "{\"error\":\"tool failed\"}");
    free(s);
    json_decref(e);
    return out;
}

static void finish(struct dagi_router_tools *b)
{
    json_t *msgs = json_array();
    for (size_t i = 0; i < b->n; i++) {
        json_t *call = json_array_get(b->calls, i);
        const char *id = json_string_value(json_object_get(call, "id"));
        json_array_append_new(msgs, json_pack("{s:s,s:s,s:O}", "role", "tool", "tool_call_id",
                                              id ? id : "", "content", b->content[i]));
    }
    dagi_router_tools_done done = b->done;
    void *ud = b->ud;
    *b->owner = NULL;
    dagi_router_tools_cancel(b);
    done(ud, msgs);
    json_decref(msgs);
}

static void on_tool_done(struct dagi_http_call *call, const struct dagi_http_response *resp,
                         void *ud)
{
    (void)call;
    struct tool_call *slot = ud;
    struct dagi_router_tools *b = slot->batch;
    size_t i = (size_t)(slot - b->slots);
    slot->http = NULL;
    const char *name = slot->tool->name;
    json_t *content = NULL;
    bool ok = false;
    if (!resp->err && resp->status >= 200 && resp->status < 300) {
        content = json_stringn(resp->body ? resp->body : "", resp->body_len);
        ok = content != NULL;
        if (!content)
            content = error_content(name, "failed: ", "the response is not UTF-8 text");
    } else if (!resp->err) {
        char detail[32];
        snprintf(detail, sizeof(detail), "HTTP %ld", resp->status);
        content = error_content(name, "failed: ", detail);
    } else {
        content = error_content(name, "failed: ",
                                resp->err == DAGI_ETOOBIG ? "the response is over 256 KiB"
                                : resp->error_message     ? resp->error_message
                                                          : dagi_strerror(resp->err));
    }
    count(b, slot->tool, ok ? "ok" : "error");
    json_decref(b->content[i]);
    b->content[i] = content;
    if (--b->pending == 0)
        finish(b);
}

/* GET: the arguments' top-level members as a query string. */
static void append_escaped(struct dagi_buf *q, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            dagi_buf_append_char(q, (char)c);
        } else {
            char enc[3] = {'%', hex[c >> 4], hex[c & 15]};
            dagi_buf_append(q, enc, 3);
        }
    }
}

static char *query_url(const char *url, const json_t *args)
{
    struct dagi_buf q;
    dagi_buf_init(&q, 1u << 20);
    dagi_buf_append_str(&q, url);
    char sep = strchr(url, '?') ? '&' : '?';
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)args, key, v)
    {
        if (json_is_null(v))
            continue;
        dagi_buf_append_char(&q, sep);
        sep = '&';
        append_escaped(&q, key, strlen(key));
        dagi_buf_append_char(&q, '=');
        if (json_is_string(v)) {
            append_escaped(&q, json_string_value(v), json_string_length(v));
        } else {
            char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            if (s)
                append_escaped(&q, s, strlen(s));
            free(s);
        }
    }
    return dagi_buf_detach(&q, NULL);
}

/* Starts the HTTP call of slot i; returns the content when it cannot start. */
static json_t *start_call(struct dagi_router_tools *b, size_t i, const char *trace_id)
{
    struct tool_call *slot = &b->slots[i];
    const struct dagi_agent_tool *t = slot->tool;
    json_t *fn = json_object_get(json_array_get(b->calls, i), "function");
    const json_t *jargs = json_object_get(fn, "arguments");
    json_t *args = NULL;
    if (json_is_string(jargs))
        args = json_string_length(jargs)
                   ? json_loadb(json_string_value(jargs), json_string_length(jargs), 0, NULL)
                   : json_object();
    else if (json_is_object(jargs))
        args = json_incref((json_t *)jargs);
    if (!json_is_object(args)) {
        json_decref(args);
        return error_content(t->name, "was not called: ", "its arguments are not a JSON object");
    }
    char trace[128];
    snprintf(trace, sizeof(trace), "X-Trace-Id: %s", trace_id ? trace_id : "");
    const char *headers[] = {"Content-Type: application/json", "Accept: application/json",
                             trace_id && *trace_id ? trace : NULL, NULL};
    char *body = NULL, *url = NULL;
    struct dagi_http_request_opts opts = {
        .headers = headers,
        .timeout_ms = t->timeout > 0 ? (unsigned)t->timeout : TOOL_DEFAULT_TIMEOUT_MS,
        .max_response_bytes = TOOL_MAX_RESPONSE,
        .on_done = on_tool_done,
        .ud = slot,
    };
    if (t->method == DAGI_TOOL_GET) {
        url = query_url(t->url, args);
        opts.method = "GET";
        opts.url = url;
    } else {
        body = json_dumps(args, JSON_COMPACT);
        opts.method = "POST";
        opts.url = t->url;
        opts.body = body;
        opts.body_len = body ? strlen(body) : 0;
    }
    json_decref(args);
    b->pending++;
    int rc = dagi_http_client_request(dagi_node_http_client(b->rt->node), &opts, &slot->http);
    free(body);
    free(url);
    if (!rc)
        return NULL;
    b->pending--;
    slot->http = NULL;
    return error_content(t->name, "failed: ", dagi_strerror(rc));
}

void dagi_router_tools_run(struct dagi_router_state *rt, const struct dagi_agent *agent,
                           json_t *calls, const char *trace_id, dagi_router_tools_permit permit,
                           dagi_router_tools_done done, void *ud, struct dagi_router_tools **out)
{
    struct dagi_router_tools *b = dagi_xcalloc(1, sizeof(*b));
    b->rt = rt;
    b->agent = agent;
    b->calls = json_incref(calls);
    b->n = json_array_size(calls);
    b->content = dagi_xcalloc(b->n ? b->n : 1, sizeof(*b->content));
    b->slots = dagi_xcalloc(b->n ? b->n : 1, sizeof(*b->slots));
    b->done = done;
    b->ud = ud;
    b->owner = out;
    *out = b;
    b->pending = 1; /* held while starting: no call finishes the batch early */
    for (size_t i = 0; i < b->n; i++) {
        json_t *fn = json_object_get(json_array_get(calls, i), "function");
        const char *name = json_string_value(json_object_get(fn, "name"));
        const struct dagi_agent_tool *tool = find_tool(agent, name);
        b->slots[i].batch = b;
        b->slots[i].tool = tool;
        if (!tool || !allowed(agent, name)) {
            b->content[i] =
                error_content(name ? name : "(unnamed)", "is not allowed for this agent", NULL);
            count(b, tool, "refused");
            dagi_log_warn(trace_id, "router: tool call refused", "agent", agent->id, "tool",
                          tool ? tool->name : "undeclared");
            continue;
        }
        /* Declared and allowed for the agent; now the caller's own right. */
        if (permit && !permit(ud, name)) {
            b->content[i] = error_content(name, "is not allowed for this caller", NULL);
            count(b, tool, "refused");
            continue;
        }
        json_t *content = start_call(b, i, trace_id);
        if (content) {
            b->content[i] = content;
            count(b, tool, "error");
        }
    }
    if (--b->pending == 0)
        finish(b);
}

void dagi_router_tools_cancel(struct dagi_router_tools *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++) {
        if (b->slots[i].http)
            dagi_http_call_cancel(b->slots[i].http);
        json_decref(b->content[i]);
    }
    if (b->owner && *b->owner == b)
        *b->owner = NULL;
    json_decref(b->calls);
    free(b->content);
    free(b->slots);
    free(b);
}
