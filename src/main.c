/* The `dagi` command: parses the command line and starts roles.  Nothing
 * else lives here; see src/core/node.h for the lifecycle. */
#include "dagi_allocator.h"
#include "dagi_build.h"

#include "core/config.h"
#include "node/dagi_config.h"
#include "node/admin_client.h"
#include "cplane/docset.h"
#include "node/keys_cli.h"
#include "identity/identity_cli.h"
#include "node/node_store.h"
#include "store/db.h"
#include "store/migrate.h"
#include "node/node.h"
#include "gateway/gateway.h"
#include "router/router.h"
#include "swapper/swapper.h"
#include "telegram/telegram.h"
#include "audit/audit_cli.h"
#include "audit/audit_role.h"
#include "pdp/pdp.h"
#include "registry/registry.h"
#include "registry/registry_cli.h"

#include <jansson.h>

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern char **environ;

/* Roles join this table as they become real (ARCHITECTURE.md).  The
 * registry first: its routes and its import come before the data plane
 * starts. */
static const struct dagi_role *const all_roles[] = {&dagi_role_registry, &dagi_role_swapper,
                                                     &dagi_role_router,
                                                     &dagi_role_gateway, &dagi_role_telegram,
                                                     &dagi_role_audit, &dagi_role_pdp};
static const size_t all_role_count = sizeof(all_roles) / sizeof(all_roles[0]);

enum { EXIT_USAGE = 2 };

static void usage_main(FILE *out)
{
    fprintf(out, "usage: dagi <command> [options]\n\n"
                 "commands:\n"
                 "  node              run every role in one process (the single-machine default)\n");
    for (size_t i = 0; i < all_role_count; i++)
        fprintf(out, "  %-17s %s\n", all_roles[i]->name, all_roles[i]->help);
    fprintf(out, "  config check FILE validate a configuration file (exit 2 when invalid)\n"
                 "  config docs       print the configuration reference (Markdown)\n"
                 "  config keys       list every configuration key and its DAGI_* variable\n"
                 "  config list|get|push|history|diff|rollback|delete KIND/NAME ...\n"
                 "                    versioned documents of a running node (config registry)\n"
                 "  db status|migrate  the relational store's schema version; apply migrations\n"
                 "  telegram set-webhook AGENT URL | info AGENT\n"
                 "                    point an agent's bot at a webhook; show the bot\n"
                 "  dlq list|show SEQ|replay SEQ\n"
                 "                    dead letters of a running node (through its admin API)\n"
                 "  keys create|list|revoke ID\n"
                 "                    user API keys of a running node (through its admin API)\n"
                 "  users|teams|members list|create|show|delete|add|remove|map-chat ...\n"
                 "                    the identity graph of a running node (admin API)\n"
                 "  audit verify|list check the audit chain in the store; list records (admin API)\n"
                 "  version           print the version\n"
                 "  help [COMMAND]    show help for a command\n\n"
                 "Run 'dagi COMMAND --help' for a command's options.\n");
}

static void usage_run(FILE *out, const char *cmd)
{
    fprintf(out,
            "usage: dagi %s [options]\n\n"
            "options:\n"
            "  -c, --config FILE      configuration file (YAML; env DAGI_CONFIG); without one,\n"
            "                         the built-in defaults apply\n"
            "  -d, --data-dir DIR     state directory (config node.data_dir, default ./data)\n"
            "  -l, --listen HOST:PORT public listener (config http.listen, default "
            "127.0.0.1:8080)\n"
            "      --log-level LEVEL  debug, info, warn or error (config log.level)\n"
            "      --roles A,B,...    (node) run only these roles, e.g. a data-plane node:\n"
            "                         --roles gateway,router,swapper\n"
            "  -h, --help             this help\n\n"
            "Every configuration key can also be set through the environment, e.g.\n"
            "DAGI_HTTP_READ_TIMEOUT=5s; 'dagi config keys' lists them.  Precedence: flags,\n"
            "then environment, then the file, then defaults.\n\n"
            "Signals: SIGHUP reloads the configuration, SIGTERM or SIGINT drains and stops\n"
            "(a second one stops at once).\n",
            cmd);
}

/* --roles a,b: the named roles, in the table's order (the registry before
 * the data plane, as in a whole node). */
static int pick_roles(const char *list, const struct dagi_role **out, size_t *count)
{
    bool want[sizeof(all_roles) / sizeof(all_roles[0])] = {0};
    char *copy = strdup(list), *save = NULL;
    int rc = 0;
    for (char *name = strtok_r(copy, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        size_t i = 0;
        while (i < all_role_count && strcmp(all_roles[i]->name, name))
            i++;
        if (i == all_role_count) {
            fprintf(stderr, "dagi node: --roles: unknown role '%s'\n", name);
            rc = -1;
        } else {
            want[i] = true;
        }
    }
    free(copy);
    *count = 0;
    for (size_t i = 0; i < all_role_count; i++)
        if (want[i])
            out[(*count)++] = all_roles[i];
    if (!rc && !*count) {
        fprintf(stderr, "dagi node: --roles: no role named\n");
        rc = -1;
    }
    return rc;
}

static int run_roles(const char *cmd, const struct dagi_role *const *roles, size_t count, int argc,
                     char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},   {"data-dir", required_argument, NULL, 'd'},
        {"listen", required_argument, NULL, 'l'},   {"log-level", required_argument, NULL, 'L'},
        {"roles", required_argument, NULL, 'R'},    {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    struct dagi_node_opts opts = {.process_name = cmd, .roles = roles, .role_count = count};
    const struct dagi_role *picked[sizeof(all_roles) / sizeof(all_roles[0])];
    opts.config_path = getenv("DAGI_CONFIG");
    opts.overrides.envp = environ;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:d:l:h", options, NULL)) != -1) {
        switch (c) {
        case 'c': opts.config_path = optarg; break;
        case 'd': opts.overrides.data_dir = optarg; break;
        case 'l': opts.overrides.listen = optarg; break;
        case 'L': opts.overrides.log_level = optarg; break;
        case 'R':
            if (strcmp(cmd, "node") || pick_roles(optarg, picked, &opts.role_count))
                return EXIT_USAGE;
            opts.roles = picked;
            break;
        case 'h': usage_run(stdout, cmd); return 0;
        default: usage_run(stderr, cmd); return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "dagi %s: unexpected argument '%s'\n", cmd, argv[optind]);
        usage_run(stderr, cmd);
        return EXIT_USAGE;
    }
    if (opts.config_path && !*opts.config_path)
        opts.config_path = NULL;
    return dagi_node_run(&opts);
}

/* The node configuration and every document it names (the agent registry,
 * prompts, routing rules, policy, budgets, flags, lists), checked by the
 * code the config registry accepts pushes with (cplane/cplane.h). */
static int config_check(const char *path)
{
    struct dagi_cfg_errors errs;
    dagi_cfg_errors_init(&errs);
    struct dagi_config_snapshot *snap = NULL;
    struct dagi_config_overrides none = {0};
    int rc = dagi_config_snapshot_load(path, &none, &snap, &errs);
    size_t docs = 0;
    if (rc == 0) {
        struct dagi_docset set;
        dagi_docset_init(&set);
        struct dagi_error err = {0};
        rc = dagi_docset_from_config(snap->cfg, &set, &err);
        if (rc)
            dagi_cfg_errors_add(&errs, "%s", err.message);
        else
            rc = dagi_docset_validate(&set, snap->cfg, &errs);
        docs = set.count;
        dagi_docset_release(&set);
    }
    if (rc == 0) {
        printf("%s: ok (%zu documents)\n", path, docs);
    } else {
        fputs(dagi_buf_str(&errs.text), stderr);
        fprintf(stderr, "%s: %zu error%s\n", path, errs.count, errs.count == 1 ? "" : "s");
    }
    dagi_cfg_errors_release(&errs);
    dagi_config_snapshot_unref(snap);
    return rc == 0 ? 0 : EXIT_USAGE;
}

static int config_print(bool markdown)
{
    struct dagi_buf out;
    dagi_buf_init(&out, 1u << 20);
    int rc = markdown ? dagi_cfg_docs_markdown(&dagi_config_schema, "DAGI", &out)
                      : dagi_cfg_help_text(&dagi_config_schema, "DAGI", &out);
    fputs(dagi_buf_str(&out), stdout);
    dagi_buf_release(&out);
    return rc ? 1 : 0;
}

static void usage_config(FILE *out)
{
    fprintf(out, "usage: dagi config check FILE   validate FILE; errors as file:line: key: reason, "
                 "exit 2\n"
                 "       dagi config docs         the configuration reference in Markdown\n"
                 "       dagi config keys         every key with its type, default and DAGI_* "
                 "variable\n"
                 "The config registry of a running node (versioned documents):\n");
    dagi_config_cli_usage(out);
}

static int cmd_config(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage_config(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    if (strcmp(argv[1], "check") == 0) {
        if (argc == 3 && strcmp(argv[2], "--help") == 0) {
            usage_config(stdout);
            return 0;
        }
        if (argc != 3) {
            usage_config(stderr);
            return EXIT_USAGE;
        }
        return config_check(argv[2]);
    }
    if (strcmp(argv[1], "docs") == 0 && argc == 2)
        return config_print(true);
    if (strcmp(argv[1], "keys") == 0 && argc == 2)
        return config_print(false);
    if (dagi_config_cli_handles(argv[1]))
        return dagi_config_cli(argc, argv);
    fprintf(stderr, "dagi config: unknown subcommand '%s'\n", argv[1]);
    usage_config(stderr);
    return EXIT_USAGE;
}

static void usage_db(FILE *out)
{
    fprintf(out, "usage: dagi db status     schema version of the store and pending migrations\n"
                 "       dagi db migrate    apply pending migrations (a node does this at start)\n"
                 "options: -c, --config FILE   -d, --data-dir DIR\n"
                 "The store is store.url, or sqlite:<data_dir>/dagi.db.\n");
}

static int cmd_db(int argc, char **argv)
{
    static const struct option options[] = {{"data-dir", required_argument, NULL, 'd'},
                                            {"config", required_argument, NULL, 'c'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    const char *data_dir = NULL, *config = getenv("DAGI_CONFIG");
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:c:h", options, NULL)) != -1) {
        switch (c) {
        case 'd': data_dir = optarg; break;
        case 'c': config = optarg; break;
        case 'h': usage_db(stdout); return 0;
        default: usage_db(stderr); return EXIT_USAGE;
        }
    }
    const char *verb = optind < argc ? argv[optind] : NULL;
    if (!verb || optind + 1 != argc || (strcmp(verb, "status") && strcmp(verb, "migrate"))) {
        usage_db(stderr);
        return EXIT_USAGE;
    }
    struct dagi_cfg_errors errs;
    struct dagi_config_snapshot *snap = NULL;
    dagi_cfg_errors_init(&errs);
    struct dagi_config_overrides ov = {.envp = environ, .data_dir = data_dir};
    if (dagi_config_snapshot_load(config && *config ? config : NULL, &ov, &snap, &errs)) {
        fputs(dagi_buf_str(&errs.text), stderr);
        dagi_cfg_errors_release(&errs);
        return EXIT_USAGE;
    }
    dagi_cfg_errors_release(&errs);
    const struct dagi_config *cfg = snap->cfg;
    char *url = dagi_node_store_url(NULL, cfg->store.url, cfg->node.data_dir);
    struct dagi_db *db = NULL;
    struct dagi_error err = {0};
    struct dagi_migrate_status st = {0};
    struct dagi_db_opts o = {.pool_size = 1, .busy_timeout_ms = (unsigned)cfg->store.busy_timeout};
    int rc = dagi_db_open(url, &o, &db, &err);
    if (!rc)
        rc = strcmp(verb, "migrate") == 0 ? dagi_migrate(db, NULL, 0, &st, &err)
                                          : dagi_migrate_status(db, NULL, 0, &st, &err);
    if (rc) {
        fprintf(stderr, "dagi db %s: %s\n", verb, err.message);
    } else {
        printf("backend: %s\nschema version: %lld of %lld\npending migrations: %zu\n",
               dagi_db_backend(db)->name, (long long)st.current, (long long)st.latest,
               st.pending);
    }
    if (db)
        dagi_db_close(db);
    free(url);
    dagi_config_snapshot_unref(snap);
    return rc ? 1 : 0;
}

static void usage_dlq(FILE *out)
{
    fprintf(out, "usage: dagi dlq list [--limit N]      dead letters, oldest first\n"
                 "       dagi dlq show SEQ              one dead letter with headers and data\n"
                 "       dagi dlq replay SEQ            publish it again to its original subject\n"
                 "options: -d, --data-dir DIR (default: node.data_dir of --config, or ./data)\n"
                 "         -c, --config FILE\n"
                 "The node must be running: the command uses its admin API with\n"
                 "<data_dir>/admin.key.\n");
}

/* Prints a JSON body indented, or as it came if it is not JSON. */
static void print_json(const char *body)
{
    json_t *doc = json_loads(body, 0, NULL);
    if (!doc) {
        printf("%s\n", body);
        return;
    }
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("%s\n", text ? text : body);
    free(text);
    json_decref(doc);
}

static int cmd_dlq(int argc, char **argv)
{
    static const struct option options[] = {{"data-dir", required_argument, NULL, 'd'},
                                            {"config", required_argument, NULL, 'c'},
                                            {"limit", required_argument, NULL, 'n'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    const char *data_dir = NULL, *config = getenv("DAGI_CONFIG"), *limit = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:c:n:h", options, NULL)) != -1) {
        switch (c) {
        case 'd': data_dir = optarg; break;
        case 'c': config = optarg; break;
        case 'n': limit = optarg; break;
        case 'h': usage_dlq(stdout); return 0;
        default: usage_dlq(stderr); return EXIT_USAGE;
        }
    }
    int rest = argc - optind;
    const char *verb = rest > 0 ? argv[optind] : NULL;
    bool needs_seq = verb && (strcmp(verb, "show") == 0 || strcmp(verb, "replay") == 0);
    if (!verb || (strcmp(verb, "list") != 0 && !needs_seq) || rest != (needs_seq ? 2 : 1)) {
        usage_dlq(stderr);
        return EXIT_USAGE;
    }
    const char *seq = needs_seq ? argv[optind + 1] : NULL;
    if (seq && strspn(seq, "0123456789") != strlen(seq)) {
        fprintf(stderr, "dagi dlq: SEQ must be a number, got '%s'\n", seq);
        return EXIT_USAGE;
    }

    struct dagi_config_snapshot *snap = NULL;
    data_dir = dagi_admin_data_dir(data_dir, config, &snap);
    if (!data_dir)
        return EXIT_USAGE;
    char path[128];
    const char *method = "GET";
    if (strcmp(verb, "list") == 0)
        snprintf(path, sizeof(path), "/v1/bus/dlq%s%s", limit ? "?limit=" : "", limit ? limit : "");
    else if (strcmp(verb, "show") == 0)
        snprintf(path, sizeof(path), "/v1/bus/dlq/%s", seq);
    else {
        snprintf(path, sizeof(path), "/v1/bus/dlq/%s/replay", seq);
        method = "POST";
    }
    long status = 0;
    char *body = NULL;
    struct dagi_error err = {0};
    int rc = dagi_admin_call(data_dir, method, path, NULL, &status, &body, &err);
    dagi_config_snapshot_unref(snap);
    if (rc) {
        fprintf(stderr, "dagi dlq: %s\n", err.message);
        return 1;
    }
    if (status / 100 != 2) {
        fprintf(stderr, "dagi dlq: the node answered %ld: %s\n", status, body);
        free(body);
        return 1;
    }
    print_json(body);
    free(body);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage_main(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        if (argc > 2 && strcmp(cmd, "help") == 0)
            return main(3, (char *[]){argv[0], argv[2], "--help", NULL});
        usage_main(stdout);
        return 0;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("dagi %s (malloc: %s)%s\n", DAGI_VERSION, DAGI_ALLOCATOR,
               DAGI_TEST_HOOKS ? " (test hooks)" : "");
        return 0;
    }
    if (strcmp(cmd, "node") == 0)
        return run_roles("node", all_roles, all_role_count, argc - 1, argv + 1);
    if (strcmp(cmd, "telegram") == 0 && argc > 2 &&
        (strcmp(argv[2], "set-webhook") == 0 || strcmp(argv[2], "info") == 0))
        return dagi_telegram_cli(argc - 1, argv + 1);
    if (strcmp(cmd, "audit") == 0 && argc > 2 &&
        (strcmp(argv[2], "verify") == 0 || strcmp(argv[2], "list") == 0))
        return dagi_audit_cli(argc - 1, argv + 1);
    for (size_t i = 0; i < all_role_count; i++)
        if (strcmp(cmd, all_roles[i]->name) == 0)
            return run_roles(cmd, &all_roles[i], 1, argc - 1, argv + 1);
    if (strcmp(cmd, "config") == 0)
        return cmd_config(argc - 1, argv + 1);
    if (strcmp(cmd, "dlq") == 0)
        return cmd_dlq(argc - 1, argv + 1);
    if (strcmp(cmd, "keys") == 0)
        return dagi_keys_cli(argc - 1, argv + 1);
    if (strcmp(cmd, "users") == 0 || strcmp(cmd, "teams") == 0 || strcmp(cmd, "members") == 0)
        return dagi_identity_cli(argc - 1, argv + 1);
    if (strcmp(cmd, "db") == 0)
        return cmd_db(argc - 1, argv + 1);
    fprintf(stderr, "dagi: unknown command '%s'\n\n", cmd);
    usage_main(stderr);
    return EXIT_USAGE;
}
