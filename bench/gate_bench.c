/* The gate's cost per request, in-process: what dagi_gate_check and
 * dagi_gate_check_body do for a user-key request to /v1/agents/{id}/infer
 * with a 1 KB JSON body, step for step with the gate's own functions:
 *
 *   per-IP bucket -> API key from the key cache (keyed BLAKE2b of the key,
 *   constant-time compare) -> per-key and per-user buckets -> parse the body
 *   -> validate it against the infer route's own rules (dagi_gateway_infer_body).
 *
 * Three auth.rate_limits rules (ip, key, user) with limits no request
 * reaches.  Each request is timed alone (clock_gettime around it); p50, p99
 * and p99.9 over `requests`, median of `runs`.  The parse is reported apart:
 * the handler reuses the gate's parsed document, so it is not an added
 * cost - the baseline of the same run.
 *
 *   gate_bench [requests [runs]]   (200000 5) */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "access/apikey.h"
#include "access/keystore.h"
#include "access/ratelimit.h"
#include "core/arena.h"
#include "core/config.h"
#include "gateway/gateway.h"
#include "node/dagi_config.h"
#include "node/gate.h"
#include "store/db.h"
#include "store/migrate.h"

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(int64_t *v, size_t n, double p)
{
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)v[i] / 1000.0;
}

static double median(double *v, size_t n)
{
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v[n / 2];
}

int main(int argc, char **argv)
{
    size_t requests = argc > 1 ? strtoul(argv[1], NULL, 10) : 200000;
    size_t runs = argc > 2 ? strtoul(argv[2], NULL, 10) : 5;
    char dir[] = "/tmp/dagi-gate-bench-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    struct dagi_error err = {0};
    char url[256];
    snprintf(url, sizeof(url), "sqlite:%s/dagi.db", dir);
    struct dagi_db *db = NULL;
    struct dagi_migrate_status st;
    struct dagi_apikey_secret secret;
    bool created;
    struct dagi_keystore *ks = NULL;
    if (dagi_db_open(url, NULL, &db, &err) || dagi_migrate(db, NULL, 0, &st, &err) ||
        dagi_apikey_secret_load_or_create(dir, &secret, &created, &err) ||
        dagi_keystore_new(db, &secret, &(struct dagi_keystore_opts){.cache_ttl_ms = 3600000}, &ks,
                          &err)) {
        fprintf(stderr, "gate_bench: %s\n", err.message);
        return 1;
    }
    char key[DAGI_KEYSTORE_KEY_BUF], id[DAGI_APIKEY_ID_LEN + 1];
    struct dagi_keystore_key_spec spec = {.user_id = "user-7", .team = "energy"};
    struct dagi_principal p;
    int64_t t = 1795000000000;
    if (dagi_keystore_create(ks, &spec, t, key, id, &err) ||
        dagi_keystore_lookup(ks, key, strlen(key), t, &p, &err)) { /* warms the cache */
        fprintf(stderr, "gate_bench: %s\n", err.message);
        return 1;
    }

    /* The rate limits, through the configuration as a node reads them. */
    const char *yaml = "auth:\n  rate_limits:\n"
                       "    - {routes: agents, per: ip, limit: 1000000000, window: 1m}\n"
                       "    - {routes: agents, per: key, limit: 1000000000, window: 1m}\n"
                       "    - {routes: agents, per: user, limit: 1000000000, window: 1m}\n";
    char cfg_path[300];
    snprintf(cfg_path, sizeof(cfg_path), "%s/dagi.yml", dir);
    FILE *f = fopen(cfg_path, "w");
    fputs(yaml, f);
    fclose(f);
    struct dagi_config_snapshot *snap = NULL;
    struct dagi_cfg_errors errs;
    dagi_cfg_errors_init(&errs);
    struct gate_limits *limits = NULL;
    struct dagi_ratelimit *rl = NULL;
    if (dagi_config_snapshot_load(cfg_path, &(struct dagi_config_overrides){0}, &snap, &errs) ||
        gate_limits_build(snap->cfg, &limits, &err) ||
        dagi_ratelimit_new("local", NULL, &rl, &err)) {
        fprintf(stderr, "gate_bench: config: %s%s\n", dagi_buf_str(&errs.text), err.message);
        return 1;
    }

    /* A 1 KB body of the infer route's shape. */
    char body[1100];
    int blen = snprintf(body, sizeof(body),
                        "{\"message\":\"%.*s\",\"user_id\":\"user-7\",\"chat\":{\"id\":\"-100123\","
                        "\"type\":\"group\",\"addressed\":true},\"stream\":false,\"max_tokens\":"
                        "512,\"temperature\":0.7,\"mode\":\"public\"}",
                        880,
                        "Розкажи, будь ласка, про сонячні панелі для громади: скільки коштує "
                        "встановлення, яка окупність, і які токени EcoMiner можна отримати за "
                        "вироблену енергію. Tell me also about BioMiner and the tokenomics of "
                        "the Energy Union, in detail, with numbers where you have them, and what "
                        "a small village of two hundred households should start with first. "
                        "Розкажи, будь ласка, про сонячні панелі для громади: скільки коштує "
                        "встановлення, яка окупність, і які токени EcoMiner можна отримати за "
                        "вироблену енергію. Tell me also about BioMiner and the tokenomics of "
                        "the Energy Union, in detail, with numbers where you have them.");
    int64_t *gate_ns = malloc(requests * sizeof(int64_t));
    int64_t *parse_ns = malloc(requests * sizeof(int64_t));
    double p50[16], p99[16], p999[16], parse50[16], parse99[16];
    if (runs > 16)
        runs = 16;
    struct dagi_caller caller = {.kind = DAGI_CALLER_KEY};
    snprintf(caller.ip, sizeof(caller.ip), "127.0.0.1");
    for (size_t r = 0; r < runs; r++) {
        for (size_t i = 0; i < requests; i++) {
            int64_t a = now_ns();
            int64_t now_ms = t + (int64_t)i;
            /* before the body */
            int64_t wait = gate_limits_take(limits, rl, "agents", 2, &caller, now_ms);
            int rc = dagi_keystore_lookup_cached(ks, key, strlen(key), now_ms, &p, &err);
            snprintf(caller.user_id, sizeof(caller.user_id), "%s", p.user_id);
            snprintf(caller.key_id, sizeof(caller.key_id), "%s", p.key_id);
            snprintf(caller.team, sizeof(caller.team), "%s", p.team);
            wait += gate_limits_take(limits, rl, "agents", -1, &caller, now_ms);
            int64_t b = now_ns();
            /* after the body: the parse (reused by the handler), then the check */
            json_t *doc = json_loadb(body, (size_t)blen, JSON_REJECT_DUPLICATES, NULL);
            int64_t c = now_ns();
            struct dagi_body_problem prob;
            rc |= dagi_body_validate(doc, &dagi_gateway_infer_body, &prob);
            int64_t d = now_ns();
            json_decref(doc);
            if (rc || wait) {
                fprintf(stderr, "gate_bench: request %zu refused (rc %d, wait %lld)\n", i, rc,
                        (long long)wait);
                return 1;
            }
            gate_ns[i] = (b - a) + (d - c);
            parse_ns[i] = c - b;
        }
        qsort(gate_ns, requests, sizeof(int64_t), cmp_i64);
        qsort(parse_ns, requests, sizeof(int64_t), cmp_i64);
        p50[r] = pct(gate_ns, requests, 0.50);
        p99[r] = pct(gate_ns, requests, 0.99);
        p999[r] = pct(gate_ns, requests, 0.999);
        parse50[r] = pct(parse_ns, requests, 0.50);
        parse99[r] = pct(parse_ns, requests, 0.99);
        printf("run %zu: gate p50 %.2f us, p99 %.2f us, p99.9 %.2f us; the body's parse (baseline, "
               "reused by the handler) p50 %.2f us, p99 %.2f us\n",
               r + 1, p50[r], p99[r], p999[r], parse50[r], parse99[r]);
    }
    double m99 = median(p99, runs), mparse = median(parse99, runs);
    printf("\ngate (IP bucket, key from the cache, key and user buckets, 1 KB body validated), "
           "median of %zu runs x %zu requests:\n"
           "  p50 %.2f us, p99 %.2f us (target <= 5 us), p99.9 %.2f us; "
           "p99 with the parse %.2f us (parse alone %.2f us: %.2fx of it)\n",
           runs, requests, median(p50, runs), m99, median(p999, runs), m99 + mparse, mparse,
           m99 / mparse);
    dagi_ratelimit_free(rl);
    gate_limits_free(limits);
    dagi_config_snapshot_unref(snap);
    dagi_cfg_errors_release(&errs);
    dagi_keystore_free(ks);
    dagi_apikey_secret_wipe(&secret);
    dagi_db_close(db);
    free(gate_ns);
    free(parse_ns);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 0;
}
