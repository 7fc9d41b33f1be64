/* `dagi audit verify|list` (audit_cli.h). */
#include "audit/audit_cli.h"

#include <getopt.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auditlog/chain.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/mem.h"
#include "node/admin_client.h"
#include "node/dagi_config.h"
#include "node/node_store.h"
#include "store/db.h"

extern char **environ;

enum { EXIT_OK = 0, EXIT_BROKEN = 1, EXIT_USAGE = 2 };

static void usage(FILE *out)
{
    fprintf(out, "usage: dagi audit verify [--config FILE] [--data-dir DIR]\n"
                 "       walk the audit chain from seq 1 in the store (store.url, or\n"
                 "       sqlite:<data_dir>/dagi.db), recomputing every hash.  Exit 0 when it\n"
                 "       is intact, 1 with \"broken at seq N: <why>\" for the first bad record.\n"
                 "       dagi audit list [--service S] [--action A] [--actor P] [--subject S]\n"
                 "                       [--decision D] [--since T] [--until T] [--after-seq N]\n"
                 "                       [--limit N] [--json] [--config FILE] [--data-dir DIR]\n"
                 "       records of a running node (its admin API), oldest first.  --actor takes\n"
                 "       a principal or a pseudonym; --since/--until take Unix ms or a duration\n"
                 "       back from now (90s, 1h, 7d).\n");
}

/* --- verify: the database directly --- */

static int verify(const char *config, const char *data_dir)
{
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
    struct dagi_db_conn *conn = NULL;
    struct dagi_error err = {0};
    struct dagi_audit_verify v = {0};
    struct dagi_db_opts o = {.pool_size = 1, .busy_timeout_ms = (unsigned)cfg->store.busy_timeout};
    int rc = dagi_db_open(url, &o, &db, &err);
    if (!rc)
        rc = dagi_db_acquire(db, &conn, &err);
    if (!rc) {
        rc = dagi_audit_chain_verify(conn, &v, &err);
        dagi_db_release(conn);
    }
    int exit_code;
    if (rc) {
        fprintf(stderr, "dagi audit verify: %s\n", err.message);
        exit_code = EXIT_BROKEN;
    } else if (!v.ok) {
        printf("broken at seq %lld: %s\n", (long long)v.broken_seq, v.reason);
        printf("(%lld records before it are intact)\n", (long long)v.records);
        exit_code = EXIT_BROKEN;
    } else {
        char head[DAGI_AUDIT_HASH_BYTES * 2 + 1];
        sodium_bin2hex(head, sizeof(head), v.head, sizeof(v.head));
        printf("ok: %lld records, last seq %lld, head %s\n", (long long)v.records,
               (long long)v.last_seq, head);
        exit_code = EXIT_OK;
    }
    if (db)
        dagi_db_close(db);
    free(url);
    dagi_config_snapshot_unref(snap);
    return exit_code;
}

/* --- list: the admin API --- */

static void query_escape(struct dagi_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p))
            dagi_buf_append_char(b, (char)*p);
        else
            dagi_buf_appendf(b, "%%%c%c", hex[*p >> 4], hex[*p & 15]);
    }
}

/* Unix ms as given, or a duration back from now. */
static int parse_when(const char *text, long long *out)
{
    char *end;
    long long v = strtoll(text, &end, 10);
    if (*text && !*end && v >= 0) {
        *out = v;
        return 0;
    }
    int64_t ago = 0;
    if (dagi_cfg_parse_duration(text, &ago) || ago <= 0)
        return -1;
    int64_t now = dagi_clock_now_ms();
    *out = now > ago ? now - ago : 1;
    return 0;
}

/* A table cell: control characters shown as '?' (the node checks them,
 * but the terminal is ours to protect). */
static void cell(char *dst, size_t cap, const char *s)
{
    snprintf(dst, cap, "%s", s && *s ? s : "-");
    for (char *p = dst; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
}

static int print_table(const char *body)
{
    json_t *doc = json_loads(body, 0, NULL);
    json_t *records = json_object_get(doc, "records");
    if (!json_is_array(records)) {
        fprintf(stderr, "dagi audit list: the node answered something else than records\n");
        json_decref(doc);
        return EXIT_BROKEN;
    }
    printf("%-6s  %-24s  %-10s  %-16s  %-34s  %-8s  %s\n", "SEQ", "TIME", "SERVICE", "ACTION",
           "ACTOR", "DECISION", "SUBJECT");
    size_t i;
    json_t *r;
    json_array_foreach(records, i, r)
    {
        char when[32] = "?", service[80], action[80], actor[300], decision[48], subject[600];
        json_int_t ms = json_integer_value(json_object_get(r, "time_ms"));
        time_t t = (time_t)(ms / 1000);
        struct tm tm;
        if (gmtime_r(&t, &tm)) {
            char stamp[24];
            strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
            snprintf(when, sizeof(when), "%.19s.%03dZ", stamp, (int)(ms % 1000));
        }
        cell(service, sizeof(service), json_string_value(json_object_get(r, "service")));
        cell(action, sizeof(action), json_string_value(json_object_get(r, "action")));
        cell(actor, sizeof(actor), json_string_value(json_object_get(r, "actor")));
        cell(decision, sizeof(decision), json_string_value(json_object_get(r, "decision")));
        cell(subject, sizeof(subject), json_string_value(json_object_get(r, "subject")));
        printf("%-6lld  %-24s  %-10s  %-16s  %-34s  %-8s  %s\n",
               (long long)json_integer_value(json_object_get(r, "seq")), when, service, action,
               actor, decision, subject);
    }
    json_t *next = json_object_get(doc, "next_after_seq");
    if (json_is_integer(next))
        fprintf(stderr, "dagi audit list: more records follow; add --after-seq %lld\n",
                (long long)json_integer_value(next));
    json_decref(doc);
    return EXIT_OK;
}

static int list(int argc, char **argv)
{
    static const struct option options[] = {
        {"service", required_argument, NULL, 's'},  {"action", required_argument, NULL, 'a'},
        {"actor", required_argument, NULL, 'A'},    {"subject", required_argument, NULL, 'S'},
        {"decision", required_argument, NULL, 'D'}, {"since", required_argument, NULL, 'f'},
        {"until", required_argument, NULL, 'u'},    {"after-seq", required_argument, NULL, 'q'},
        {"limit", required_argument, NULL, 'n'},    {"json", no_argument, NULL, 'j'},
        {"data-dir", required_argument, NULL, 'd'}, {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    const char *data_dir = NULL, *config = getenv("DAGI_CONFIG");
    bool as_json = false;
    struct dagi_buf path;
    dagi_buf_init(&path, 16384);
    dagi_buf_append_str(&path, "/v1/audit");
    int c, rc = EXIT_USAGE, params = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:c:h", options, NULL)) != -1) {
        const char *name = NULL;
        char number[32];
        const char *value = optarg;
        switch (c) {
        case 'd':
            data_dir = optarg;
            continue;
        case 'c':
            config = optarg;
            continue;
        case 'j':
            as_json = true;
            continue;
        case 'h':
            usage(stdout);
            rc = EXIT_OK;
            goto out;
        case 's':
            name = "service";
            break;
        case 'a':
            name = "action";
            break;
        case 'A':
            name = "actor";
            break;
        case 'S':
            name = "subject";
            break;
        case 'D':
            name = "decision";
            break;
        case 'q':
            name = "after_seq";
            break;
        case 'n':
            name = "limit";
            break;
        case 'f':
        case 'u': {
            long long ms;
            if (parse_when(optarg, &ms)) {
                fprintf(stderr, "dagi audit list: --%s takes Unix ms or a duration, got '%s'\n",
                        c == 'f' ? "since" : "until", optarg);
                goto out;
            }
            snprintf(number, sizeof(number), "%lld", ms);
            name = c == 'f' ? "since" : "until";
            value = number;
            break;
        }
        default:
            usage(stderr);
            goto out;
        }
        dagi_buf_append_str(&path, params++ ? "&" : "?");
        dagi_buf_append_str(&path, name);
        dagi_buf_append_char(&path, '=');
        query_escape(&path, value);
    }
    if (optind != argc) {
        usage(stderr);
        goto out;
    }
    struct dagi_config_snapshot *snap = NULL;
    data_dir = dagi_admin_data_dir(data_dir, config, &snap);
    if (!data_dir)
        goto out;
    long status = 0;
    char *body = NULL;
    struct dagi_error err = {0};
    int call = dagi_admin_call(data_dir, "GET", dagi_buf_str(&path), NULL, &status, &body, &err);
    dagi_config_snapshot_unref(snap);
    if (call) {
        fprintf(stderr, "dagi audit list: %s\n", err.message);
        rc = EXIT_BROKEN;
    } else if (status != 200) {
        fprintf(stderr, "dagi audit list: the node answered %ld: %s\n", status, body);
        rc = EXIT_BROKEN;
    } else if (as_json) {
        printf("%s\n", body);
        rc = EXIT_OK;
    } else {
        rc = print_table(body);
    }
    free(body);
out:
    dagi_buf_release(&path);
    return rc;
}

int dagi_audit_cli(int argc, char **argv)
{
    static const struct option verify_options[] = {{"data-dir", required_argument, NULL, 'd'},
                                                   {"config", required_argument, NULL, 'c'},
                                                   {"help", no_argument, NULL, 'h'},
                                                   {NULL, 0, NULL, 0}};
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    if (!strcmp(argv[1], "list"))
        return list(argc - 1, argv + 1);
    if (strcmp(argv[1], "verify") != 0) {
        fprintf(stderr, "dagi audit: unknown subcommand '%s'\n", argv[1]);
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *data_dir = NULL, *config = getenv("DAGI_CONFIG");
    int c;
    optind = 1;
    while ((c = getopt_long(argc - 1, argv + 1, "d:c:h", verify_options, NULL)) != -1) {
        switch (c) {
        case 'd':
            data_dir = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return EXIT_USAGE;
    }
    return verify(config, data_dir);
}
