/* `dagi telegram set-webhook AGENT URL` and `dagi telegram info AGENT`:
 * talk to the Bot API directly (blocking), with the token and secret read
 * from the variables the registry names.  The token never reaches the
 * terminal: errors name the method only. */
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/config.h"
#include "node/dagi_config.h"
#include "agents/registry.h"
#include "telegram/telegram.h"
#include "telegram/tg_api.h"

extern char **environ;

enum { EXIT_USAGE = 2 };

static void usage(FILE *out)
{
    fprintf(out,
            "usage: dagi telegram set-webhook AGENT URL [--drop-pending] [-c FILE]\n"
            "       dagi telegram info AGENT [-c FILE]\n"
            "       dagi telegram              (no subcommand: run the telegram role)\n\n"
            "set-webhook  points the agent's bot at URL (https://<host>/telegram/AGENT/webhook)\n"
            "             with the secret from the agent's telegram.webhook_secret_env, so\n"
            "             Telegram sends it in X-Telegram-Bot-Api-Secret-Token\n"
            "info         the bot (getMe) and its webhook (getWebhookInfo)\n\n"
            "The bot token comes from the variable telegram.token_env names in the registry\n"
            "(router.registry in the configuration); telegram.api_base picks the Bot API.\n");
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    struct dagi_buf *b = ud;
    return dagi_buf_append(b, data, size * n) ? 0 : size * n;
}

/* One blocking Bot API call; *result is a new reference on success. */
static int call(const char *base, const char *token, const char *method, json_t *body,
                json_t **result, struct dagi_error *err)
{
    char url[2048];
    int rc = dagi_tg_method_url(url, sizeof(url), base, token, method);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (rc || !text) {
        free(text);
        return dagi_error_set(err, DAGI_EINVAL, "%s: the token or base URL is malformed", method);
    }
    struct dagi_buf resp;
    dagi_buf_init(&resp, DAGI_TG_API_MAX_RESPONSE_BYTES);
    CURL *curl = curl_easy_init();
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, text);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    CURLcode cc = curl_easy_perform(curl);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    free(text);
    if (cc != CURLE_OK) {
        dagi_buf_release(&resp);
        /* curl's message can quote the URL, which holds the token. */
        return dagi_error_set(err, DAGI_EUNAVAIL, "%s: the Bot API cannot be reached (curl %d)",
                              method, (int)cc);
    }
    struct dagi_tg_api_error api = {0};
    rc = dagi_tg_api_parse_response(resp.data, resp.len, result, &api, err);
    dagi_buf_release(&resp);
    return rc;
}

struct bot {
    const char *token, *secret;
    struct dagi_registry *reg;
    struct dagi_config_snapshot *cfg;
};

static int find_bot(const char *config, const char *agent_id, struct bot *b)
{
    struct dagi_cfg_errors errs;
    dagi_cfg_errors_init(&errs);
    struct dagi_config_overrides ov = {.envp = environ};
    int rc = dagi_config_snapshot_load(config, &ov, &b->cfg, &errs);
    if (rc) {
        fputs(dagi_buf_str(&errs.text), stderr);
        dagi_cfg_errors_release(&errs);
        return EXIT_USAGE;
    }
    const struct dagi_config *c = b->cfg->cfg;
    if (!c->router.registry) {
        fprintf(stderr, "dagi telegram: no agent registry configured (router.registry)\n");
        dagi_cfg_errors_release(&errs);
        return EXIT_USAGE;
    }
    struct dagi_error err = {0};
    rc = dagi_registry_load_config(c, &b->reg, &err);
    if (rc) {
        fprintf(stderr, "dagi telegram: %s\n", err.message);
        dagi_cfg_errors_release(&errs);
        return EXIT_USAGE;
    }
    dagi_cfg_errors_release(&errs);
    const struct dagi_agent *a = dagi_registry_find(b->reg, agent_id);
    if (!a || !a->telegram.token_env) {
        fprintf(stderr, "dagi telegram: agent '%s' %s\n", agent_id,
                a ? "has no Telegram bot (telegram.token_env)" : "is not in the registry");
        return EXIT_USAGE;
    }
    b->token = getenv(a->telegram.token_env);
    if (!b->token || !*b->token) {
        fprintf(stderr, "dagi telegram: %s is not set (the bot token of '%s')\n",
                a->telegram.token_env, agent_id);
        return EXIT_USAGE;
    }
    b->secret = a->telegram.webhook_secret_env ? getenv(a->telegram.webhook_secret_env) : NULL;
    return 0;
}

static void bot_release(struct bot *b)
{
    dagi_registry_unref(b->reg);
    if (b->cfg)
        dagi_config_snapshot_unref(b->cfg);
}

static int print_result(const char *label, json_t *result)
{
    char *text = json_dumps(result, JSON_INDENT(2) | JSON_SORT_KEYS);
    printf("%s: %s\n", label, text ? text : "null");
    free(text);
    json_decref(result);
    return 0;
}

int dagi_telegram_cli(int argc, char **argv)
{
    static const struct option options[] = {{"config", required_argument, NULL, 'c'},
                                            {"drop-pending", no_argument, NULL, 'D'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    const char *config = getenv("DAGI_CONFIG");
    bool drop = false;
    int c;
    optind = 2; /* past "telegram" and the subcommand */
    while ((c = getopt_long(argc, argv, "c:h", options, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'D': drop = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    const char *sub = argv[1];
    bool set = strcmp(sub, "set-webhook") == 0;
    if ((set && argc - optind != 2) || (!set && argc - optind != 1)) {
        usage(stderr);
        return EXIT_USAGE;
    }
    struct bot b = {0};
    int rc = find_bot(config && *config ? config : NULL, argv[optind], &b);
    if (rc) {
        bot_release(&b);
        return rc;
    }
    const char *base = b.cfg->cfg->telegram.api_base;
    struct dagi_error err = {0};
    json_t *body = NULL, *result = NULL;
    if (set) {
        if (!b.secret || !*b.secret)
            fprintf(stderr, "dagi telegram: warning: no webhook secret is set for '%s'; dagi "
                            "refuses every update without one\n",
                    argv[optind]);
        struct dagi_tg_set_webhook w = {
            .url = argv[optind + 1], .secret_token = b.secret, .drop_pending_updates = drop};
        rc = dagi_tg_body_set_webhook(&w, &body);
        if (rc)
            dagi_error_set(&err, rc, "setWebhook: the URL or the secret is not acceptable");
        else
            rc = call(base, b.token, "setWebhook", body, &result, &err);
        if (!rc)
            print_result("setWebhook", result);
    } else {
        dagi_tg_body_get_me(&body);
        rc = call(base, b.token, "getMe", body, &result, &err);
        if (!rc) {
            print_result("getMe", result);
            dagi_tg_body_get_webhook_info(&body);
            rc = call(base, b.token, "getWebhookInfo", body, &result, &err);
            if (!rc)
                print_result("getWebhookInfo", result);
        }
    }
    bot_release(&b);
    if (rc) {
        fprintf(stderr, "dagi telegram: %s\n", err.message);
        return 1;
    }
    return 0;
}
