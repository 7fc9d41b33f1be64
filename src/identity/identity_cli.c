/* `dagi users|teams|members`: the identity graph through the admin API of
 * a running node (identity_routes.c serves it), so every change is
 * authenticated and audited like one made over HTTP.  Lists follow the
 * API's cursors to the end. */
#include "identity/identity_cli.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/mem.h"
#include "node/admin_client.h"
#include "node/dagi_config.h"

enum { EXIT_USAGE = 2 };
/* Pages a list follows at most (of 1000 items each). */
#define MAX_PAGES 1000

struct verb {
    const char *name;
    int args;           /* positional arguments after the verb */
    const char *usage;  /* one line */
    const char *detail; /* what it does */
    const char *flags;  /* the verb's own options: "n" --name, "p" --plan, "a" --agent,
                           "r" --role */
};

static const struct verb user_verbs[] = {
    {"list", 0, "dagi users list", "every user: id, principal, name, when created (UTC)", ""},
    {"create", 1, "dagi users create ID [--name N]",
     "make a user; ID is a user id (alice) or tg:<telegram user id>", "n"},
    {"show", 1, "dagi users show ID", "one user with its attributes and teams", ""},
    {"delete", 1, "dagi users delete ID", "delete a user with its memberships and ACL edges", ""},
};

static const struct verb team_verbs[] = {
    {"list", 0, "dagi teams list", "every team: id, name, plan, when created (UTC)", ""},
    {"create", 1, "dagi teams create ID [--name N] [--plan P]",
     "make a team; ID is a slug ([a-z0-9_-], up to 64); the plan defaults to free", "np"},
    {"show", 1, "dagi teams show ID", "one team with its attributes, members and projects", ""},
    {"delete", 1, "dagi teams delete ID",
     "delete a team with its memberships, chats, projects and ACL edges", ""},
    {"chats", 1, "dagi teams chats ID", "the Telegram chats mapped to the team", ""},
    {"map-chat", 2, "dagi teams map-chat ID CHAT [--agent A]",
     "map Telegram chat CHAT to the team (for agent A only, or every agent)", "a"},
    {"unmap-chat", 2, "dagi teams unmap-chat ID CHAT", "remove the team's mapping of CHAT", ""},
};

static const struct verb member_verbs[] = {
    {"list", 1, "dagi members list TEAM", "the team's members and their roles", ""},
    {"add", 2, "dagi members add TEAM USER [--role R]",
     "add USER to TEAM as owner, admin or member (the default)", "r"},
    {"remove", 2, "dagi members remove TEAM USER", "take USER out of TEAM", ""},
};

struct command {
    const char *name;
    const struct verb *verbs;
    size_t count;
};

static const struct command commands[] = {
    {"users", user_verbs, DAGI_ARRAY_LEN(user_verbs)},
    {"teams", team_verbs, DAGI_ARRAY_LEN(team_verbs)},
    {"members", member_verbs, DAGI_ARRAY_LEN(member_verbs)},
};

static void usage(FILE *out, const struct command *cmd, const struct verb *only)
{
    for (size_t i = 0; i < cmd->count; i++) {
        const struct verb *v = &cmd->verbs[i];
        if (only && only != v)
            continue;
        fprintf(out, "%s %s\n       %s\n", i == 0 || only ? "usage:" : "      ", v->usage,
                v->detail);
    }
    fprintf(out, "options: -d, --data-dir DIR (default: node.data_dir of --config, or ./data)\n"
                 "         -c, --config FILE\n"
                 "The node must be running: the command uses its admin API with\n"
                 "<data_dir>/admin.key.\n");
}

/* --- talking to the node --- */

struct session {
    const char *what; /* "dagi users create", for messages */
    const char *data_dir, *config;
};

/* Percent-encodes a path segment or query value. */
static char *escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = dagi_xmalloc(strlen(s) * 3 + 1), *o = out;
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

/* Returns 0 with the parsed 2xx answer in *doc (caller decrefs), or the
 * exit code after printing why. */
static int call(const struct session *s, const char *method, const char *path, json_t *body,
                json_t **doc)
{
    struct dagi_config_snapshot *snap = NULL;
    const char *data_dir = dagi_admin_data_dir(s->data_dir, s->config, &snap);
    if (!data_dir)
        return EXIT_USAGE;
    char *json_body = body ? json_dumps(body, JSON_COMPACT) : NULL;
    long status = 0;
    char *text = NULL;
    struct dagi_error err = {0};
    int rc = dagi_admin_call(data_dir, method, path, json_body, &status, &text, &err);
    dagi_config_snapshot_unref(snap);
    free(json_body);
    if (rc) {
        fprintf(stderr, "%s: %s\n", s->what, err.message);
        return 1;
    }
    json_t *answer = json_loads(text, 0, NULL);
    if (status / 100 != 2 || !json_is_object(answer)) {
        const char *message =
            json_string_value(json_object_get(json_object_get(answer, "error"), "message"));
        fprintf(stderr, "%s: the node answered %ld: %s\n", s->what, status,
                message ? message : text);
        json_decref(answer);
        free(text);
        return 1;
    }
    free(text);
    *doc = answer;
    return 0;
}

/* Every item of a list, following its cursors: an array in *items. */
static int call_list(const struct session *s, const char *path, const char *member, json_t **items)
{
    json_t *all = json_array();
    char *cursor = NULL;
    for (int page = 0; page < MAX_PAGES; page++) {
        char *q = cursor ? escape(cursor) : NULL;
        char *url = dagi_xasprintf("%s?limit=1000%s%s", path, q ? "&cursor=" : "", q ? q : "");
        free(q);
        json_t *doc = NULL;
        int rc = call(s, "GET", url, NULL, &doc);
        free(url);
        free(cursor);
        cursor = NULL;
        if (rc) {
            json_decref(all);
            return rc;
        }
        json_array_extend(all, json_object_get(doc, member));
        const char *next = json_string_value(json_object_get(doc, "next_cursor"));
        cursor = next ? dagi_xstrdup(next) : NULL;
        json_decref(doc);
        if (!cursor)
            break;
    }
    if (cursor)
        fprintf(stderr, "%s: more than %d pages; showing the first\n", s->what, MAX_PAGES);
    free(cursor);
    *items = all;
    return 0;
}

/* --- printing --- */

/* A copy with control characters shown as '?'; `none` for empty. */
static char *cell(const char *s, const char *none)
{
    char *out = dagi_xstrdup(s && *s ? s : none);
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return out;
}

static char *time_cell(json_t *ms)
{
    if (!json_is_integer(ms))
        return cell(NULL, "?");
    time_t t = (time_t)(json_integer_value(ms) / 1000);
    struct tm tm;
    char text[32];
    if (!gmtime_r(&t, &tm) || !strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(text, sizeof(text), "%lld", (long long)json_integer_value(ms));
    return cell(text, "?");
}

static char *value_cell(json_t *item, const char *member, const char *none)
{
    json_t *v = json_object_get(item, member);
    if (json_is_integer(v)) {
        char text[32];
        snprintf(text, sizeof(text), "%lld", (long long)json_integer_value(v));
        return cell(text, none);
    }
    return cell(json_string_value(v), none);
}

enum { MAX_COLUMNS = 6 };

struct column {
    const char *head, *member, *none;
    bool time;
};

static void print_table(json_t *items, const struct column *cols, size_t ncols, const char *empty)
{
    size_t n = json_array_size(items);
    if (n == 0) {
        printf("%s\n", empty);
        return;
    }
    char **cells = dagi_xcalloc(n * ncols, sizeof(*cells));
    size_t width[MAX_COLUMNS];
    for (size_t c = 0; c < ncols; c++)
        width[c] = strlen(cols[c].head);
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_array_get(items, i);
        for (size_t c = 0; c < ncols; c++) {
            char *v = cols[c].time ? time_cell(json_object_get(item, cols[c].member))
                                   : value_cell(item, cols[c].member, cols[c].none);
            cells[i * ncols + c] = v;
            if (strlen(v) > width[c])
                width[c] = strlen(v);
        }
    }
    for (size_t c = 0; c < ncols; c++)
        printf("%-*s%s", c + 1 < ncols ? (int)width[c] : 0, cols[c].head,
               c + 1 < ncols ? "  " : "\n");
    for (size_t i = 0; i < n; i++)
        for (size_t c = 0; c < ncols; c++)
            printf("%-*s%s", c + 1 < ncols ? (int)width[c] : 0, cells[i * ncols + c],
                   c + 1 < ncols ? "  " : "\n");
    for (size_t i = 0; i < n * ncols; i++)
        free(cells[i]);
    free(cells);
}

/* A record as "label: value" lines, labelled by the columns' heads. */
static void print_record(json_t *doc, const struct column *cols, size_t ncols)
{
    for (size_t c = 0; c < ncols; c++) {
        char label[32];
        size_t i = 0;
        for (; cols[c].head[i] && i + 2 < sizeof(label); i++)
            label[i] = (char)(cols[c].head[i] | 0x20); /* the heads are A-Z */
        label[i++] = ':';
        label[i] = '\0';
        char *v = cols[c].time ? time_cell(json_object_get(doc, cols[c].member))
                               : value_cell(doc, cols[c].member, cols[c].none);
        printf("%-11s %s\n", label, v);
        free(v);
    }
    char *attrs = json_dumps(json_object_get(doc, "attributes"), JSON_COMPACT | JSON_SORT_KEYS);
    char *shown = cell(attrs, "{}");
    printf("%-11s %s\n", "attributes:", shown);
    free(shown);
    free(attrs);
}

/* --- the commands --- */

static const struct column user_columns[] = {{"ID", "id", "?", false},
                                             {"PRINCIPAL", "principal", "?", false},
                                             {"NAME", "name", "-", false},
                                             {"CREATED", "created_at_ms", "?", true}};
static const struct column team_columns[] = {{"ID", "id", "?", false},
                                             {"NAME", "name", "-", false},
                                             {"PLAN", "plan", "-", false},
                                             {"CREATED", "created_at_ms", "?", true}};
static const struct column member_columns[] = {{"USER", "user", "?", false},
                                               {"ROLE", "role", "?", false},
                                               {"SINCE", "created_at_ms", "?", true}};
static const struct column membership_columns[] = {{"TEAM", "team", "?", false},
                                                   {"ROLE", "role", "?", false},
                                                   {"SINCE", "created_at_ms", "?", true}};
static const struct column chat_columns[] = {{"CHAT", "chat_id", "?", false},
                                             {"AGENT", "agent", "(every agent)", false},
                                             {"MAPPED", "created_at_ms", "?", true}};
static const struct column project_columns[] = {{"PROJECT", "id", "?", false},
                                                {"NAME", "name", "-", false},
                                                {"CREATED", "created_at_ms", "?", true}};

/* Lists path's `member` as a table. */
static int list_table(const struct session *s, const char *path, const char *member,
                      const struct column *cols, size_t ncols, const char *empty)
{
    json_t *items = NULL;
    int rc = call_list(s, path, member, &items);
    if (!rc)
        print_table(items, cols, ncols, empty);
    json_decref(items);
    return rc;
}

struct args {
    const char *pos[2];
    const char *name, *plan, *agent, *role;
};

static int run_users(const struct session *s, const char *verb, const struct args *a)
{
    char *id = a->pos[0] ? escape(a->pos[0]) : NULL;
    char *path = id ? dagi_xasprintf("/v1/users/%s", id) : NULL;
    json_t *doc = NULL;
    int rc;
    if (strcmp(verb, "list") == 0) {
        rc = list_table(s, "/v1/users", "users", user_columns, DAGI_ARRAY_LEN(user_columns),
                        "no users");
    } else if (strcmp(verb, "create") == 0) {
        json_t *body = json_pack("{s:s}", "id", a->pos[0]);
        if (a->name)
            json_object_set_new(body, "name", json_string(a->name));
        rc = call(s, "POST", "/v1/users", body, &doc);
        json_decref(body);
        if (!rc)
            printf("created user %s (%s)\n", json_string_value(json_object_get(doc, "id")),
                   json_string_value(json_object_get(doc, "principal")));
    } else if (strcmp(verb, "show") == 0) {
        rc = call(s, "GET", path, NULL, &doc);
        if (!rc) {
            print_record(doc, user_columns, DAGI_ARRAY_LEN(user_columns));
            char *teams_path = dagi_xasprintf("%s/teams", path);
            printf("\n");
            rc = list_table(s, teams_path, "teams", membership_columns,
                            DAGI_ARRAY_LEN(membership_columns), "in no team");
            free(teams_path);
        }
    } else {
        rc = call(s, "DELETE", path, NULL, &doc);
        if (!rc)
            printf("deleted user %s\n", a->pos[0]);
    }
    json_decref(doc);
    free(path);
    free(id);
    return rc;
}

static int run_teams(const struct session *s, const char *verb, const struct args *a)
{
    char *id = a->pos[0] ? escape(a->pos[0]) : NULL;
    char *path = id ? dagi_xasprintf("/v1/teams/%s", id) : NULL;
    json_t *doc = NULL;
    int rc;
    if (strcmp(verb, "list") == 0) {
        rc = list_table(s, "/v1/teams", "teams", team_columns, DAGI_ARRAY_LEN(team_columns),
                        "no teams");
    } else if (strcmp(verb, "create") == 0) {
        json_t *body = json_pack("{s:s}", "id", a->pos[0]);
        if (a->name)
            json_object_set_new(body, "name", json_string(a->name));
        if (a->plan)
            json_object_set_new(body, "plan", json_string(a->plan));
        rc = call(s, "POST", "/v1/teams", body, &doc);
        json_decref(body);
        if (!rc)
            printf("created team %s (plan %s)\n", json_string_value(json_object_get(doc, "id")),
                   json_string_value(json_object_get(doc, "plan")));
    } else if (strcmp(verb, "show") == 0) {
        rc = call(s, "GET", path, NULL, &doc);
        if (!rc) {
            print_record(doc, team_columns, DAGI_ARRAY_LEN(team_columns));
            char *sub = dagi_xasprintf("%s/members", path);
            printf("\n");
            rc = list_table(s, sub, "members", member_columns, DAGI_ARRAY_LEN(member_columns),
                            "no members");
            free(sub);
            sub = dagi_xasprintf("%s/projects", path);
            printf("\n");
            if (!rc)
                rc = list_table(s, sub, "projects", project_columns,
                                DAGI_ARRAY_LEN(project_columns), "no projects");
            free(sub);
        }
    } else if (strcmp(verb, "delete") == 0) {
        rc = call(s, "DELETE", path, NULL, &doc);
        if (!rc)
            printf("deleted team %s\n", a->pos[0]);
    } else if (strcmp(verb, "chats") == 0) {
        char *sub = dagi_xasprintf("%s/chats", path);
        rc = list_table(s, sub, "chats", chat_columns, DAGI_ARRAY_LEN(chat_columns),
                        "no chats mapped");
        free(sub);
    } else if (strcmp(verb, "map-chat") == 0) {
        char *sub = dagi_xasprintf("%s/chats", path);
        json_t *body = json_pack("{s:s}", "chat_id", a->pos[1]);
        if (a->agent)
            json_object_set_new(body, "agent", json_string(a->agent));
        rc = call(s, "POST", sub, body, &doc);
        json_decref(body);
        free(sub);
        if (!rc)
            printf("mapped chat %s to team %s (%s%s)\n", a->pos[1], a->pos[0],
                   a->agent ? "agent " : "every agent", a->agent ? a->agent : "");
    } else {
        char *chat = escape(a->pos[1]);
        char *sub = dagi_xasprintf("%s/chats/%s", path, chat);
        rc = call(s, "DELETE", sub, NULL, &doc);
        free(sub);
        free(chat);
        if (!rc)
            printf("unmapped chat %s from team %s\n", a->pos[1], a->pos[0]);
    }
    json_decref(doc);
    free(path);
    free(id);
    return rc;
}

static int run_members(const struct session *s, const char *verb, const struct args *a)
{
    char *team = escape(a->pos[0]);
    char *path = dagi_xasprintf("/v1/teams/%s/members", team);
    json_t *doc = NULL;
    int rc;
    if (strcmp(verb, "list") == 0) {
        rc = list_table(s, path, "members", member_columns, DAGI_ARRAY_LEN(member_columns),
                        "no members");
    } else if (strcmp(verb, "add") == 0) {
        json_t *body =
            json_pack("{s:s,s:s}", "user", a->pos[1], "role", a->role ? a->role : "member");
        rc = call(s, "POST", path, body, &doc);
        json_decref(body);
        if (!rc)
            printf("added %s to team %s as %s\n", json_string_value(json_object_get(doc, "user")),
                   a->pos[0], json_string_value(json_object_get(doc, "role")));
    } else {
        char *user = escape(a->pos[1]);
        char *sub = dagi_xasprintf("%s/%s", path, user);
        rc = call(s, "DELETE", sub, NULL, &doc);
        free(sub);
        free(user);
        if (!rc)
            printf("removed %s from team %s\n", a->pos[1], a->pos[0]);
    }
    json_decref(doc);
    free(path);
    free(team);
    return rc;
}

/* --- the command line --- */

static bool utf8_args(const struct session *s, const struct args *a)
{
    const char *all[] = {a->pos[0], a->pos[1], a->name, a->plan, a->agent, a->role};
    for (size_t i = 0; i < DAGI_ARRAY_LEN(all); i++) {
        json_t *v = all[i] ? json_string(all[i]) : NULL;
        if (all[i] && !v) {
            fprintf(stderr, "%s: '%s' is not UTF-8 text\n", s->what, all[i]);
            return false;
        }
        json_decref(v);
    }
    return true;
}

/* One option of the command line: its long name, its short letter (0 for
 * none) and where its value goes.  A small parser of our own rather than
 * getopt: Telegram group ids are negative ("-100500"), and getopt would
 * take them for options. */
struct option_def {
    const char *name;
    char letter;
    char flag; /* the verb's flags letter it needs, 0 for every verb */
};

static const struct option_def option_defs[] = {
    {"data-dir", 'd', 0}, {"config", 'c', 0}, {"name", 0, 'n'},
    {"plan", 0, 'p'},     {"agent", 0, 'a'},  {"role", 0, 'r'},
};

static bool is_number(const char *s)
{
    if (*s == '-')
        s++;
    return *s && strspn(s, "0123456789") == strlen(s);
}

/* Parses argv[2..]: 0, 1 for --help, or EXIT_USAGE after saying why. */
static int parse_args(int argc, char **argv, const struct verb *verb, struct session *s,
                      struct args *a, int *npos)
{
    const char **slots[] = {&s->data_dir, &s->config, &a->name, &a->plan, &a->agent, &a->role};
    bool options_end = false;
    *npos = 0;
    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i];
        if (options_end || arg[0] != '-' || arg[1] == '\0' || is_number(arg)) {
            if (*npos >= (int)DAGI_ARRAY_LEN(a->pos)) {
                (*npos)++;
                continue;
            }
            a->pos[(*npos)++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            options_end = true;
            continue;
        }
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)
            return 1;
        const char *value = NULL;
        size_t k = 0;
        for (; k < DAGI_ARRAY_LEN(option_defs); k++) {
            const struct option_def *o = &option_defs[k];
            size_t n = strlen(o->name);
            if (arg[1] == '-' && strncmp(arg + 2, o->name, n) == 0 &&
                (arg[2 + n] == '\0' || arg[2 + n] == '=')) {
                value = arg[2 + n] == '=' ? arg + 3 + n : NULL;
                break;
            }
            if (o->letter && arg[1] == o->letter && arg[2] == '\0')
                break;
        }
        if (k == DAGI_ARRAY_LEN(option_defs) ||
            (option_defs[k].flag && !strchr(verb->flags, option_defs[k].flag))) {
            fprintf(stderr, "%s: %s is not an option of this command\n", s->what, arg);
            return EXIT_USAGE;
        }
        if (!value) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: %s needs a value\n", s->what, arg);
                return EXIT_USAGE;
            }
            value = argv[++i];
        }
        *slots[k] = value;
    }
    return 0;
}

int dagi_identity_cli(int argc, char **argv)
{
    const struct command *cmd = NULL;
    for (size_t i = 0; i < DAGI_ARRAY_LEN(commands); i++)
        if (strcmp(argv[0], commands[i].name) == 0)
            cmd = &commands[i];
    if (!cmd)
        return EXIT_USAGE;
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout, cmd, NULL);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    const struct verb *verb = NULL;
    for (size_t i = 0; i < cmd->count; i++)
        if (strcmp(argv[1], cmd->verbs[i].name) == 0)
            verb = &cmd->verbs[i];
    if (!verb) {
        fprintf(stderr, "dagi %s: unknown subcommand '%s'\n", cmd->name, argv[1]);
        usage(stderr, cmd, NULL);
        return EXIT_USAGE;
    }
    char what[64];
    snprintf(what, sizeof(what), "dagi %s %s", cmd->name, verb->name);
    struct session s = {.what = what, .config = getenv("DAGI_CONFIG")};
    struct args a = {0};
    int npos = 0;
    int rc = parse_args(argc, argv, verb, &s, &a, &npos);
    if (rc == 1) {
        usage(stdout, cmd, verb);
        return 0;
    }
    if (!rc && npos != verb->args) {
        fprintf(stderr, "%s: expected %d argument%s, got %d\n", what, verb->args,
                verb->args == 1 ? "" : "s", npos);
        rc = EXIT_USAGE;
    }
    if (rc) {
        usage(stderr, cmd, verb);
        return EXIT_USAGE;
    }
    if (!utf8_args(&s, &a))
        return EXIT_USAGE;
    if (s.config && !*s.config)
        s.config = NULL;
    if (cmd == &commands[0])
        return run_users(&s, verb->name, &a);
    if (cmd == &commands[1])
        return run_teams(&s, verb->name, &a);
    return run_members(&s, verb->name, &a);
}
