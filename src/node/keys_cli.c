/* `dagi keys create|list|revoke`: user API keys through the admin API of a
 * running node (node/keys_routes.c serves it); the key is printed once. */
#include "node/keys_cli.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "node/admin_client.h"
#include "node/dagi_config.h"

enum { EXIT_USAGE = 2 };

static void usage_keys(FILE *out, const char *verb)
{
    static const struct {
        const char *verb, *text;
    } verbs[] = {
        {"create", "usage: dagi keys create --user U [--team T] [--role R]... [--name N]\n"
                   "                        [--expires DURATION]\n"
                   "       make a key for user U; the key is printed once, on its own line,\n"
                   "       followed by its id.  --role may be repeated; --expires takes seconds\n"
                   "       or a duration (90s, 1h, 30d; default: never).\n"},
        {"list", "usage: dagi keys list [--user U]\n"
                 "       the keys (of one user), oldest first: id, user, team, roles, name and\n"
                 "       when each was created, expires and was revoked (UTC).  Never a secret.\n"},
        {"revoke", "usage: dagi keys revoke ID\n"
                   "       revoke the key with that id; it stops working at once.\n"},
    };
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (!verb || strcmp(verb, verbs[i].verb) == 0)
            fputs(verbs[i].text, out);
    fprintf(out, "options: -d, --data-dir DIR (default: node.data_dir of --config, or ./data)\n"
                 "         -c, --config FILE\n"
                 "The node must be running: the command uses its admin API with\n"
                 "<data_dir>/admin.key.\n");
}

/* Percent-encodes a query value (RFC 3986 unreserved characters stay). */
static char *keys_query_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(strlen(s) * 3 + 1), *o = out;
    if (!out)
        abort();
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p)) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

/* A table cell: a copy with control characters shown as '?', or `none`
 * for an empty or absent value. */
static char *keys_cell(const char *s, const char *none)
{
    char *out = strdup(s && *s ? s : none);
    if (!out)
        abort();
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return out;
}

static char *keys_time_cell(json_t *ms, const char *none)
{
    if (!json_is_integer(ms))
        return keys_cell(NULL, none);
    time_t t = (time_t)(json_integer_value(ms) / 1000);
    struct tm tm;
    char text[32];
    if (!gmtime_r(&t, &tm) || !strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(text, sizeof(text), "%lld", (long long)json_integer_value(ms));
    return keys_cell(text, none);
}

enum { KEYS_COLUMNS = 8 };

static int keys_print_table(const char *body)
{
    static const char *const head[KEYS_COLUMNS] = {"ID",   "USER",    "TEAM",    "ROLES",
                                                   "NAME", "CREATED", "EXPIRES", "REVOKED"};
    json_t *doc = json_loads(body, 0, NULL);
    json_t *keys = json_object_get(doc, "keys");
    if (!json_is_array(keys)) {
        fprintf(stderr, "dagi keys: the node answered something else than a key list\n");
        json_decref(doc);
        return 1;
    }
    size_t n = json_array_size(keys);
    if (n == 0) {
        printf("no keys\n");
        json_decref(doc);
        return 0;
    }
    char **cells = calloc(n * KEYS_COLUMNS, sizeof(*cells));
    size_t width[KEYS_COLUMNS];
    if (!cells)
        abort();
    for (size_t c = 0; c < KEYS_COLUMNS; c++)
        width[c] = strlen(head[c]);
    for (size_t i = 0; i < n; i++) {
        json_t *k = json_array_get(keys, i), *role;
        char roles[1200] = "";
        size_t r;
        json_array_foreach(json_object_get(k, "roles"), r, role) {
            size_t used = strlen(roles);
            snprintf(roles + used, sizeof(roles) - used, "%s%s", r ? "," : "",
                     json_is_string(role) ? json_string_value(role) : "?");
        }
        char **row = &cells[i * KEYS_COLUMNS];
        row[0] = keys_cell(json_string_value(json_object_get(k, "id")), "?");
        row[1] = keys_cell(json_string_value(json_object_get(k, "user_id")), "?");
        row[2] = keys_cell(json_string_value(json_object_get(k, "team")), "-");
        row[3] = keys_cell(roles, "-");
        row[4] = keys_cell(json_string_value(json_object_get(k, "name")), "-");
        row[5] = keys_time_cell(json_object_get(k, "created_at_ms"), "?");
        row[6] = keys_time_cell(json_object_get(k, "expires_at_ms"), "never");
        row[7] = keys_time_cell(json_object_get(k, "revoked_at_ms"), "-");
        for (size_t c = 0; c < KEYS_COLUMNS; c++)
            if (strlen(row[c]) > width[c])
                width[c] = strlen(row[c]);
    }
    for (size_t c = 0; c < KEYS_COLUMNS; c++)
        printf("%-*s%s", c + 1 < KEYS_COLUMNS ? (int)width[c] : 0, head[c],
               c + 1 < KEYS_COLUMNS ? "  " : "\n");
    for (size_t i = 0; i < n; i++)
        for (size_t c = 0; c < KEYS_COLUMNS; c++)
            printf("%-*s%s", c + 1 < KEYS_COLUMNS ? (int)width[c] : 0, cells[i * KEYS_COLUMNS + c],
                   c + 1 < KEYS_COLUMNS ? "  " : "\n");
    if (json_is_true(json_object_get(doc, "truncated")))
        fprintf(stderr, "dagi keys: more keys exist than shown; narrow the list with --user\n");
    for (size_t i = 0; i < n * KEYS_COLUMNS; i++)
        free(cells[i]);
    free(cells);
    json_decref(doc);
    return 0;
}

/* The key of a create answer, printed once: the key alone on a line, then
 * its id.  The answer is wiped afterwards. */
static int keys_print_created(char *body)
{
    json_t *doc = json_loads(body, 0, NULL);
    const char *key = json_string_value(json_object_get(doc, "key"));
    const char *id = json_string_value(json_object_get(doc, "id"));
    int rc = 0;
    if (key && id) {
        printf("%s\nid: %s\n", key, id);
        fprintf(stderr, "dagi keys: store the key now; it cannot be shown again\n");
    } else {
        fprintf(stderr, "dagi keys: the node answered without a key\n");
        rc = 1;
    }
    json_decref(doc);
    explicit_bzero(body, strlen(body));
    return rc;
}

/* Calls the admin API of the node on data_dir (or the one --config names);
 * returns 0 with the 2xx answer in *body (caller frees), or the exit code
 * after printing why. */
static int keys_call(const char *verb, const char *data_dir, const char *config,
                     const char *method, const char *path, const char *json_body, char **body)
{
    struct dagi_config_snapshot *snap = NULL;
    data_dir = dagi_admin_data_dir(data_dir, config, &snap);
    if (!data_dir)
        return EXIT_USAGE;
    long status = 0;
    struct dagi_error err = {0};
    int rc = dagi_admin_call(data_dir, method, path, json_body, &status, body, &err);
    dagi_config_snapshot_unref(snap);
    if (rc) {
        fprintf(stderr, "dagi keys %s: %s\n", verb, err.message);
        return 1;
    }
    if (status / 100 != 2) {
        json_t *doc = json_loads(*body, 0, NULL);
        const char *message =
            json_string_value(json_object_get(json_object_get(doc, "error"), "message"));
        fprintf(stderr, "dagi keys %s: the node answered %ld: %s\n", verb, status,
                message ? message : *body);
        json_decref(doc);
        free(*body);
        *body = NULL;
        return 1;
    }
    return 0;
}

int dagi_keys_cli(int argc, char **argv)
{
    static const struct option create_options[] = {
        {"user", required_argument, NULL, 'u'},    {"team", required_argument, NULL, 't'},
        {"role", required_argument, NULL, 'r'},    {"name", required_argument, NULL, 'n'},
        {"expires", required_argument, NULL, 'e'}, {"data-dir", required_argument, NULL, 'd'},
        {"config", required_argument, NULL, 'c'},  {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    static const struct option list_options[] = {
        {"user", required_argument, NULL, 'u'},   {"data-dir", required_argument, NULL, 'd'},
        {"config", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    static const struct option revoke_options[] = {{"data-dir", required_argument, NULL, 'd'},
                                                   {"config", required_argument, NULL, 'c'},
                                                   {"help", no_argument, NULL, 'h'},
                                                   {NULL, 0, NULL, 0}};
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage_keys(argc < 2 ? stderr : stdout, NULL);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    const char *verb = argv[1];
    bool create = strcmp(verb, "create") == 0, list = strcmp(verb, "list") == 0,
         revoke = strcmp(verb, "revoke") == 0;
    if (!create && !list && !revoke) {
        fprintf(stderr, "dagi keys: unknown subcommand '%s'\n", verb);
        usage_keys(stderr, NULL);
        return EXIT_USAGE;
    }
    const char *data_dir = NULL, *config = getenv("DAGI_CONFIG"), *user = NULL, *id = NULL;
    json_t *req = json_object(), *roles = json_array();
    char *path = NULL, *json_body = NULL, *body = NULL;
    int c, rc = EXIT_USAGE;
    optind = 1;
    while ((c = getopt_long(argc - 1, argv + 1, "d:c:h",
                            create ? create_options : list ? list_options : revoke_options,
                            NULL)) != -1) {
        json_t *value = NULL;
        switch (c) {
        case 'd': data_dir = optarg; break;
        case 'c': config = optarg; break;
        case 'u': user = optarg; break;
        case 't':
        case 'n':
        case 'e':
        case 'r':
            /* json_string() takes UTF-8 only: refuse rather than drop a
             * role or an expiry without a word. */
            if (!(value = json_string(optarg))) {
                fprintf(stderr, "dagi keys %s: '%s' is not UTF-8 text\n", verb, optarg);
                goto out;
            }
            if (c == 'r')
                json_array_append_new(roles, value);
            else
                json_object_set_new(req, c == 't' ? "team" : c == 'n' ? "name" : "expires_in",
                                    value);
            break;
        case 'h':
            usage_keys(stdout, verb);
            rc = 0;
            goto out;
        default: usage_keys(stderr, verb); goto out;
        }
    }
    int rest = argc - 1 - optind;
    if (rest != (revoke ? 1 : 0) || (create && !user)) {
        if (create && !user)
            fprintf(stderr, "dagi keys create: --user is required\n");
        usage_keys(stderr, verb);
        goto out;
    }
    if (revoke) {
        id = argv[1 + optind];
        if (strlen(id) != 12 || strspn(id, "abcdefghijklmnopqrstuvwxyz234567") != 12) {
            fprintf(stderr, "dagi keys revoke: '%s' is not a key id (12 of a-z, 2-7)\n", id);
            goto out;
        }
        if (asprintf(&path, "/v1/admin/keys/%s", id) < 0)
            abort(); /* out of memory */
        rc = keys_call(verb, data_dir, config, "DELETE", path, NULL, &body);
        if (rc == 0)
            printf("revoked %s\n", id);
    } else if (list) {
        char *q = user ? keys_query_escape(user) : NULL;
        if (asprintf(&path, "/v1/admin/keys%s%s", q ? "?user_id=" : "", q ? q : "") < 0)
            abort(); /* out of memory */
        free(q);
        rc = keys_call(verb, data_dir, config, "GET", path, NULL, &body);
        if (rc == 0)
            rc = keys_print_table(body);
    } else {
        json_t *u = json_string(user);
        if (!u) {
            fprintf(stderr, "dagi keys create: '%s' is not UTF-8 text\n", user);
            goto out;
        }
        json_object_set_new(req, "user_id", u);
        if (json_array_size(roles))
            json_object_set(req, "roles", roles);
        json_body = json_dumps(req, JSON_COMPACT);
        rc = keys_call(verb, data_dir, config, "POST", "/v1/admin/keys", json_body, &body);
        if (rc == 0)
            rc = keys_print_created(body);
    }
out:
    free(body);
    free(json_body);
    free(path);
    json_decref(req);
    json_decref(roles);
    return rc;
}

