/* `dagi config push|get|history|diff|rollback|delete|list`: the config
 * registry through the admin API of a running node (registry_routes.c), so
 * every change is validated, versioned and audited by the node. */
#include "registry/registry_cli.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/mem.h"
#include "cplane/docset.h"
#include "node/admin_client.h"
#include "node/dagi_config.h"

enum { EXIT_REFUSED = 1, EXIT_USAGE = 2 };

static const struct {
    const char *verb, *text;
} verbs[] = {
    {"list", "  config list                          the current documents and revision\n"},
    {"get", "  config get KIND/NAME [--version N]   a document's text (default: current)\n"},
    {"push", "  config push KIND/NAME FILE [-m TEXT] a new version from FILE (- = stdin)\n"},
    {"history", "  config history KIND/NAME             its versions, newest first\n"},
    {"diff", "  config diff KIND/NAME [FROM [TO]]    unified diff (default: previous..current)\n"},
    {"rollback", "  config rollback KIND/NAME [--to N] [-m TEXT]\n"
                 "                                       version N's text as a new version\n"
                 "                                       (default: the one before the current)\n"},
    {"delete", "  config delete prompts/NAME [-m TEXT] a deletion version of a prompt\n"},
};

bool dagi_config_cli_handles(const char *verb)
{
    for (size_t i = 0; verb && i < DAGI_ARRAY_LEN(verbs); i++)
        if (strcmp(verb, verbs[i].verb) == 0)
            return true;
    return false;
}

void dagi_config_cli_usage(FILE *out)
{
    for (size_t i = 0; i < DAGI_ARRAY_LEN(verbs); i++)
        fprintf(out, "%s", verbs[i].text);
    fprintf(out, "  KIND is agents, prompts, routing, policies, quotas, flags or lists; NAME may\n"
                 "  be left out for all but prompts (agents = agents/agent_registry.yml).\n"
                 "  These act on a running node (its admin API, <data_dir>/admin.key):\n"
                 "  -d, --data-dir DIR, -c, --config FILE.  Exit 1 when the node refuses\n"
                 "  (an invalid document: one \"document:line: message\" per line).\n");
}

static void usage_verb(FILE *out, const char *verb)
{
    fprintf(out, "usage:\n");
    for (size_t i = 0; i < DAGI_ARRAY_LEN(verbs); i++)
        if (!verb || strcmp(verb, verbs[i].verb) == 0)
            fprintf(out, "  dagi%s", verbs[i].text + 1);
    fprintf(out, "options: -d, --data-dir DIR   -c, --config FILE\n");
}

/* "KIND/NAME" or "KIND" (a kind with one document). */
static bool parse_doc(const char *arg, char *kind, size_t kind_len, char *name, size_t name_len)
{
    const char *slash = strchr(arg, '/');
    size_t klen = slash ? (size_t)(slash - arg) : strlen(arg);
    if (klen == 0 || klen >= kind_len)
        return false;
    memcpy(kind, arg, klen);
    kind[klen] = '\0';
    enum dagi_doc_kind k;
    if (dagi_doc_kind_parse(kind, &k))
        return false;
    const char *n = slash ? slash + 1 : dagi_doc_fixed_name(k);
    if (!n || strlen(n) >= name_len || !dagi_doc_name_valid(k, n))
        return false;
    snprintf(name, name_len, "%s", n);
    return true;
}

/* Percent-encodes a query value (RFC 3986 unreserved characters stay). */
static char *query_escape(const char *s)
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

static bool parse_version(const char *s, long long min, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < min || strspn(s, "0123456789") != strlen(s))
        return false;
    *out = v;
    return true;
}

/* FILE (or stdin for "-"), at most DAGI_DOC_MAX_TEXT bytes, no NUL. */
static char *read_input(const char *verb, const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "dagi config %s: cannot read %s: %s\n", verb, path, strerror(errno));
        return NULL;
    }
    struct dagi_buf b;
    dagi_buf_init(&b, DAGI_DOC_MAX_TEXT);
    char chunk[65536];
    size_t n;
    int rc = 0;
    while (!rc && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = dagi_buf_append(&b, chunk, n);
    bool failed = ferror(f);
    if (f != stdin)
        fclose(f);
    if (rc || failed || memchr(dagi_buf_str(&b), '\0', b.len)) {
        fprintf(stderr, "dagi config %s: %s: %s\n", verb, path,
                rc       ? "over the cap of 1 MiB"
                : failed ? "read error"
                         : "holds a NUL byte");
        dagi_buf_release(&b);
        return NULL;
    }
    return dagi_buf_detach(&b, NULL);
}

/* A 422's errors, one "document:line: message" per line. */
static void print_refusal(const char *verb, json_t *error)
{
    json_t *errors = json_object_get(error, "errors"), *e;
    size_t i;
    fprintf(stderr, "dagi config %s: refused: %s\n", verb,
            json_string_value(json_object_get(error, "message"))
                ? json_string_value(json_object_get(error, "message"))
                : "invalid document");
    json_array_foreach(errors, i, e)
    {
        const char *doc = json_string_value(json_object_get(e, "document"));
        const char *msg = json_string_value(json_object_get(e, "message"));
        json_t *line = json_object_get(e, "line");
        if (doc && json_is_integer(line))
            fprintf(stderr, "%s:%lld: %s\n", doc, (long long)json_integer_value(line),
                    msg ? msg : "");
        else if (doc)
            fprintf(stderr, "%s: %s\n", doc, msg ? msg : "");
        else
            fprintf(stderr, "%s\n", msg ? msg : "");
    }
}

/* Calls the node; 0 with a 2xx body in *body (caller frees), or the exit
 * code after printing why. */
static int call(const char *verb, const char *data_dir, const char *config, const char *method,
                const char *path, const char *text, char **body)
{
    struct dagi_config_snapshot *snap = NULL;
    data_dir = dagi_admin_data_dir(data_dir, config, &snap);
    if (!data_dir)
        return EXIT_USAGE;
    long status = 0;
    struct dagi_error err = {0};
    int rc = dagi_admin_call(data_dir, method, path, text, &status, body, &err);
    dagi_config_snapshot_unref(snap);
    if (rc) {
        fprintf(stderr, "dagi config %s: %s\n", verb, err.message);
        return EXIT_REFUSED;
    }
    if (status / 100 == 2)
        return 0;
    json_t *doc = json_loads(*body, 0, NULL);
    json_t *error = json_object_get(doc, "error");
    if (status == 422 && json_is_object(error)) {
        print_refusal(verb, error);
    } else {
        const char *message = json_string_value(json_object_get(error, "message"));
        fprintf(stderr, "dagi config %s: the node answered %ld: %s\n", verb, status,
                message ? message : *body);
    }
    json_decref(doc);
    free(*body);
    *body = NULL;
    return EXIT_REFUSED;
}

static void time_text(json_t *ms, char *out, size_t n)
{
    time_t t = (time_t)(json_integer_value(ms) / 1000);
    struct tm tm;
    if (!json_is_integer(ms) || !gmtime_r(&t, &tm) || !strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, n, "?");
}

/* A table cell: control characters shown as '?'. */
static void cell(char *out, size_t n, const char *s)
{
    snprintf(out, n, "%s", s && *s ? s : "-");
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
}

static int print_list(const char *body)
{
    json_t *doc = json_loads(body, 0, NULL), *docs = json_object_get(doc, "docs"), *d;
    if (!json_is_array(docs)) {
        fprintf(stderr, "dagi config list: the node answered something else than a list\n");
        json_decref(doc);
        return EXIT_REFUSED;
    }
    printf("revision %lld\n", (long long)json_integer_value(json_object_get(doc, "revision")));
    size_t i;
    json_array_foreach(docs, i, d)
    {
        char name[300], author[200], when[32];
        snprintf(name, sizeof(name), "%s/%s", json_string_value(json_object_get(d, "kind")),
                 json_string_value(json_object_get(d, "name")));
        cell(author, sizeof(author), json_string_value(json_object_get(d, "author")));
        time_text(json_object_get(d, "created_at_ms"), when, sizeof(when));
        const char *sum = json_string_value(json_object_get(d, "checksum"));
        printf("%-40s v%-4lld %.12s  %s  %s\n", name,
               (long long)json_integer_value(json_object_get(d, "version")), sum ? sum : "?", when,
               author);
    }
    json_decref(doc);
    return 0;
}

static int print_history(const char *body)
{
    json_t *doc = json_loads(body, 0, NULL), *list = json_object_get(doc, "versions"), *v;
    if (!json_is_array(list)) {
        fprintf(stderr, "dagi config history: the node answered something else than versions\n");
        json_decref(doc);
        return EXIT_REFUSED;
    }
    printf("%-7s %-20s %-8s %-12s %-16s %s\n", "VERSION", "CREATED", "ACTION", "CHECKSUM", "AUTHOR",
           "COMMENT");
    size_t i;
    json_array_foreach(list, i, v)
    {
        char author[200], comment[1100], when[32];
        cell(author, sizeof(author), json_string_value(json_object_get(v, "author")));
        cell(comment, sizeof(comment), json_string_value(json_object_get(v, "comment")));
        time_text(json_object_get(v, "created_at_ms"), when, sizeof(when));
        const char *sum = json_string_value(json_object_get(v, "checksum"));
        printf("%-7lld %-20s %-8s %-12.12s %-16s %s\n",
               (long long)json_integer_value(json_object_get(v, "version")), when,
               json_is_true(json_object_get(v, "deleted"))
                   ? "deleted"
                   : json_string_value(json_object_get(v, "action")),
               sum && *sum ? sum : "-", author, comment);
    }
    json_decref(doc);
    return 0;
}

static int print_change(const char *body)
{
    json_t *doc = json_loads(body, 0, NULL);
    if (!json_is_object(doc)) {
        fprintf(stderr, "dagi config: the node answered something else than a version\n");
        json_decref(doc);
        return EXIT_REFUSED;
    }
    long long version = (long long)json_integer_value(json_object_get(doc, "version")),
              revision = (long long)json_integer_value(json_object_get(doc, "revision"));
    printf("%s/%s: ", json_string_value(json_object_get(doc, "kind")),
           json_string_value(json_object_get(doc, "name")));
    if (json_is_true(json_object_get(doc, "unchanged")))
        printf("unchanged, version %lld (revision %lld)\n", version, revision);
    else if (json_is_true(json_object_get(doc, "deleted")))
        printf("deleted in version %lld (revision %lld)\n", version, revision);
    else if (json_is_integer(json_object_get(doc, "restored")))
        printf("version %lld (revision %lld), the text of version %lld\n", version, revision,
               (long long)json_integer_value(json_object_get(doc, "restored")));
    else
        printf("version %lld (revision %lld)\n", version, revision);
    json_decref(doc);
    return 0;
}

int dagi_config_cli(int argc, char **argv)
{
    static const struct option options[] = {{"data-dir", required_argument, NULL, 'd'},
                                            {"config", required_argument, NULL, 'c'},
                                            {"message", required_argument, NULL, 'm'},
                                            {"version", required_argument, NULL, 'V'},
                                            {"to", required_argument, NULL, 't'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    const char *verb = argv[1];
    const char *data_dir = NULL, *config = getenv("DAGI_CONFIG"), *message = NULL;
    long long version = 0, to = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc - 1, argv + 1, "d:c:m:h", options, NULL)) != -1) {
        switch (c) {
        case 'd':
            data_dir = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case 'm':
            message = optarg;
            break;
        case 'V':
        case 't':
            if (!parse_version(optarg, 1, c == 'V' ? &version : &to)) {
                fprintf(stderr, "dagi config %s: '%s' is not a version number\n", verb, optarg);
                return EXIT_USAGE;
            }
            break;
        case 'h':
            usage_verb(stdout, verb);
            return 0;
        default:
            usage_verb(stderr, verb);
            return EXIT_USAGE;
        }
    }
    char **rest = argv + 1 + optind;
    int nrest = argc - 1 - optind;
    bool list = strcmp(verb, "list") == 0, get = strcmp(verb, "get") == 0,
         push = strcmp(verb, "push") == 0, history = strcmp(verb, "history") == 0,
         diff = strcmp(verb, "diff") == 0, rollback = strcmp(verb, "rollback") == 0,
         del = strcmp(verb, "delete") == 0;
    int min = list ? 0 : push ? 2 : 1, max = list ? 0 : push ? 2 : diff ? 3 : 1;
    bool misplaced =
        (version && !get) || (to && !rollback) || (message && !push && !rollback && !del);
    if (nrest < min || nrest > max || misplaced) {
        usage_verb(stderr, verb);
        return EXIT_USAGE;
    }
    char kind[32] = "", name[DAGI_DOC_MAX_NAME + 1] = "";
    if (!list && !parse_doc(rest[0], kind, sizeof(kind), name, sizeof(name))) {
        fprintf(stderr,
                "dagi config %s: '%s' is not KIND/NAME (kinds: agents, prompts, routing, "
                "policies, quotas, flags, lists)\n",
                verb, rest[0]);
        return EXIT_USAGE;
    }
    if (del && strcmp(kind, "prompts") != 0) {
        fprintf(stderr, "dagi config delete: only prompts can be deleted\n");
        return EXIT_USAGE;
    }
    long long from = -1, diff_to = 0;
    if (diff && ((nrest > 1 && !parse_version(rest[1], 0, &from)) ||
                 (nrest > 2 && !parse_version(rest[2], 1, &diff_to)))) {
        fprintf(stderr, "dagi config diff: FROM and TO are version numbers\n");
        return EXIT_USAGE;
    }
    char *text = NULL, *body = NULL, *comment = message ? query_escape(message) : NULL;
    struct dagi_buf path;
    dagi_buf_init(&path, 8192);
    int rc = EXIT_USAGE;
    if (list) {
        dagi_buf_append_str(&path, "/v1/config");
        if (!(rc = call(verb, data_dir, config, "GET", dagi_buf_str(&path), NULL, &body)))
            rc = print_list(body);
        goto out;
    }
    dagi_buf_appendf(&path, "/v1/config/%s/%s", kind, name);
    if (get) {
        if (version)
            dagi_buf_appendf(&path, "?version=%lld", version);
        if (!(rc = call(verb, data_dir, config, "GET", dagi_buf_str(&path), NULL, &body)))
            fputs(body, stdout);
    } else if (push) {
        if (!(text = read_input(verb, rest[1]))) {
            rc = EXIT_REFUSED;
            goto out;
        }
        if (comment)
            dagi_buf_appendf(&path, "?comment=%s", comment);
        if (!(rc = call(verb, data_dir, config, "PUT", dagi_buf_str(&path), text, &body)))
            rc = print_change(body);
    } else if (history) {
        dagi_buf_append_str(&path, "/history");
        if (!(rc = call(verb, data_dir, config, "GET", dagi_buf_str(&path), NULL, &body)))
            rc = print_history(body);
    } else if (diff) {
        dagi_buf_append_str(&path, "/diff");
        char sep = '?';
        if (from >= 0) {
            dagi_buf_appendf(&path, "%cfrom=%lld", sep, from);
            sep = '&';
        }
        if (diff_to)
            dagi_buf_appendf(&path, "%cto=%lld", sep, diff_to);
        if (!(rc = call(verb, data_dir, config, "GET", dagi_buf_str(&path), NULL, &body)))
            fputs(body, stdout);
    } else if (rollback) {
        dagi_buf_append_str(&path, "/rollback");
        char sep = '?';
        if (to) {
            dagi_buf_appendf(&path, "%cto=%lld", sep, to);
            sep = '&';
        }
        if (comment)
            dagi_buf_appendf(&path, "%ccomment=%s", sep, comment);
        if (!(rc = call(verb, data_dir, config, "POST", dagi_buf_str(&path), NULL, &body)))
            rc = print_change(body);
    } else if (del) {
        if (comment)
            dagi_buf_appendf(&path, "?comment=%s", comment);
        if (!(rc = call(verb, data_dir, config, "DELETE", dagi_buf_str(&path), NULL, &body)))
            rc = print_change(body);
    }
out:
    dagi_buf_release(&path);
    free(text);
    free(body);
    free(comment);
    return rc;
}
