/* A policy decision from the cached bundle (dagi_authz_decide), on one
 * thread, with a generated bundle of the size the issue names:
 *
 *   1,000 roles and 10,000 grants (exact actions, agent.tool.* and
 *   memory.read.* wildcards, grants restricted to agents, some denies),
 *   bindings for 3,000 users, 200 teams, 50 key roles, tg:* and *;
 *   200 teams on 4 plans (agent and model lists, max modes).
 *
 * Requests carry 5-10 subjects (the user, its key, 1-3 teams, 1-4 key
 * roles) and ask agent.use on an agent, agent.tool.<tool>, memory reads and
 * writes, a mode, config.write - a mix of allows, no_grants, explicit denies
 * and not_entitled.  Each decision is timed alone (clock_gettime around it,
 * as gate_bench.c) for p50/p99/p99.9; throughput is a loop of decisions
 * timed as a whole.  Baseline in the same run: one hash lookup of one key
 * (json_object_get in an object of 10,000 keys), timed the same way, so the
 * ratio says how many plain lookups a decision costs.
 *
 *   authz_bench [requests [runs]]   (1000000 5) */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "authz/authz.h"
#include "core/buf.h"
#include "core/config.h"

#define ROLES 1000
#define GRANTS_PER_ROLE 10
#define USERS 3000
#define TEAMS 200
#define KEY_ROLES 50
#define AGENTS 20
#define TOOLS 50
#define VARIANTS 8192

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

static uint64_t rng = 0x2545f4914f6cdd1dull;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static const char *const scopes[] = {"personal", "team", "public"};
static const char *const modes[] = {"public", "team", "confidential"};

/* One allow_on record: an action or pattern on one to three agents. */
static void grant_on(struct dagi_buf *y)
{
    char action[96];
    unsigned kind = rnd(10);
    if (kind < 3)
        snprintf(action, sizeof(action), "agent.use");
    else if (kind < 6)
        snprintf(action, sizeof(action), "agent.tool.t%u", rnd(TOOLS));
    else if (kind == 6)
        snprintf(action, sizeof(action), "agent.tool.*");
    else if (kind == 7)
        snprintf(action, sizeof(action), "memory.%s.%s", rnd(2) ? "read" : "write", scopes[rnd(3)]);
    else if (kind == 8)
        snprintf(action, sizeof(action), "memory.read.*");
    else
        snprintf(action, sizeof(action), "mode.%s", modes[rnd(3)]);
    if (rnd(3) == 0) {
        dagi_buf_appendf(y, "      - {action: \"%s\", resources: [a%u, a%u, a%u]}\n", action,
                         rnd(AGENTS), rnd(AGENTS), rnd(AGENTS));
    } else {
        dagi_buf_appendf(y, "      - {action: \"%s\", resources: [a%u]}\n", action, rnd(AGENTS));
    }
}

static char *generate(size_t *len)
{
    struct dagi_buf y;
    dagi_buf_init(&y, 8 << 20);
    dagi_buf_append_str(&y, "version: 1\nroles:\n");
    for (unsigned r = 0; r < ROLES; r++) {
        dagi_buf_appendf(&y, "  - id: role%u\n", r);
        /* 10 grants: 6 plain allows, then allows on agents (one fewer in the
         * roles that have a deny, so grants + denies = 10,000) */
        bool has_deny = r % 10 == 0;
        unsigned plain = 6, on = GRANTS_PER_ROLE - plain - (has_deny ? 1 : 0);
        dagi_buf_append_str(&y, "    allow:\n");
        for (unsigned k = 0; k < plain; k++) {
            unsigned kind = rnd(4);
            if (kind == 0)
                dagi_buf_append_str(&y, "      - agent.use\n");
            else if (kind == 1)
                dagi_buf_appendf(&y, "      - agent.tool.t%u\n", rnd(TOOLS));
            else if (kind == 2)
                dagi_buf_appendf(&y, "      - memory.read.%s\n", scopes[rnd(3)]);
            else
                dagi_buf_appendf(&y, "      - mode.%s\n", modes[rnd(2)]);
        }
        dagi_buf_append_str(&y, "    allow_on:\n");
        for (unsigned k = 0; k < on; k++)
            grant_on(&y);
        if (has_deny)
            dagi_buf_appendf(&y, "    deny: [\"agent.tool.t%u\"]\n", rnd(TOOLS));
    }
    dagi_buf_append_str(&y, "bindings:\n");
    for (unsigned u = 0; u < USERS; u++)
        dagi_buf_appendf(&y, "  - {subject: \"user:u%u\", roles: [role%u, role%u]}\n", u,
                         rnd(ROLES), rnd(ROLES));
    for (unsigned t = 0; t < TEAMS; t++)
        dagi_buf_appendf(&y, "  - {subject: \"team:t%u\", roles: [role%u, role%u, role%u]}\n", t,
                         rnd(ROLES), rnd(ROLES), rnd(ROLES));
    for (unsigned k = 0; k < KEY_ROLES; k++)
        dagi_buf_appendf(&y, "  - {subject: \"role:r%u\", roles: [role%u, role%u]}\n", k,
                         rnd(ROLES), rnd(ROLES));
    dagi_buf_appendf(&y, "  - {subject: \"tg:*\", roles: [role%u]}\n", rnd(ROLES));
    dagi_buf_appendf(&y, "  - {subject: \"*\", roles: [role%u]}\n", rnd(ROLES));
    dagi_buf_append_str(&y,
                        "plans:\n"
                        "  - {id: all, agents: [\"*\"], models: [\"*\"], max_mode: confidential}\n"
                        "  - {id: basic, agents: [a0, a1, a2, a3, a4, a5, a6, a7, a8, a9],"
                        " models: [m0, m1], max_mode: team}\n"
                        "  - {id: small, agents: [a0, a1], models: [m0], max_mode: public}\n"
                        "  - {id: mid, agents: [a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10,"
                        " a11, a12, a13, a14], models: [\"*\"], max_mode: team}\n"
                        "teams:\n  - {id: \"*\", plan: small}\n");
    static const char *const plans[] = {"all", "basic", "small", "mid"};
    for (unsigned t = 0; t < TEAMS; t++)
        dagi_buf_appendf(&y, "  - {id: t%u, plan: %s}\n", t, plans[t % 4]);
    *len = y.len;
    char *text = strdup(dagi_buf_str(&y));
    dagi_buf_release(&y);
    return text;
}

struct variant {
    char names[10][32];
    const char *subjects[10];
    struct dagi_authz_request req;
    char action[64], resource[16], team[16];
};

static void make_variant(struct variant *v)
{
    unsigned user = rnd(USERS);
    size_t n = 0;
    snprintf(v->names[n++], 32, "user:u%u", user);
    snprintf(v->names[n++], 32, "key:k%u", user);
    for (unsigned i = 0, teams = 1 + rnd(3); i < teams; i++)
        snprintf(v->names[n++], 32, "team:t%u", rnd(TEAMS));
    for (unsigned i = 0, roles = 2 + rnd(3); i < roles; i++)
        snprintf(v->names[n++], 32, "role:r%u", rnd(KEY_ROLES));
    for (size_t i = 0; i < n; i++)
        v->subjects[i] = v->names[i];
    snprintf(v->team, sizeof(v->team), "t%u", rnd(TEAMS));
    snprintf(v->resource, sizeof(v->resource), "a%u", rnd(AGENTS));
    unsigned kind = rnd(10);
    const char *resource = v->resource;
    if (kind < 4) {
        snprintf(v->action, sizeof(v->action), "agent.use");
    } else if (kind < 7) {
        snprintf(v->action, sizeof(v->action), "agent.tool.t%u", rnd(TOOLS));
    } else if (kind == 7) {
        snprintf(v->action, sizeof(v->action), "memory.%s.%s", rnd(2) ? "read" : "write",
                 scopes[rnd(3)]);
        resource = NULL;
    } else if (kind == 8) {
        snprintf(v->action, sizeof(v->action), "mode.%s", modes[rnd(3)]);
        resource = NULL;
    } else {
        snprintf(v->action, sizeof(v->action), "config.write");
        resource = NULL;
    }
    v->req = (struct dagi_authz_request){v->names[0], v->subjects, n, v->team, v->action, resource};
}

int main(int argc, char **argv)
{
    size_t requests = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
    size_t runs = argc > 2 ? strtoul(argv[2], NULL, 10) : 5;
    if (runs > 16)
        runs = 16;
    if (requests < 1000)
        requests = 1000;
    size_t len;
    char *text = generate(&len);
    struct dagi_cfg_errors errs;
    dagi_cfg_errors_init(&errs);
    struct dagi_authz_bundle *b = NULL;
    int64_t t0 = now_ns();
    if (dagi_authz_compile(text, len, "bench.yml", &b, &errs) != 0) {
        fprintf(stderr, "authz_bench: %s", dagi_buf_str(&errs.text));
        return 1;
    }
    int64_t t1 = now_ns();
    struct dagi_authz_summary s;
    dagi_authz_bundle_summary(b, &s);
    printf("bundle: %zu bytes, %zu roles, %zu grants + %zu denies, %zu bindings, %zu teams; "
           "compiled in %.1f ms\n",
           len, s.roles, s.grants, s.denies, s.bindings, s.teams, (double)(t1 - t0) / 1e6);

    struct variant *vs = calloc(VARIANTS, sizeof(*vs));
    size_t allowed = 0, reasons[5] = {0};
    static const char *const names[] = {"granted", "no_grant", "explicit_deny", "not_entitled",
                                        "other"};
    for (size_t i = 0; i < VARIANTS; i++) {
        make_variant(&vs[i]);
        struct dagi_authz_decision d;
        dagi_authz_decide(b, &vs[i].req, &d);
        allowed += d.allow;
        size_t k = 0;
        while (k < 4 && strcmp(names[k], d.reason) != 0)
            k++;
        reasons[k]++;
    }
    printf("request mix over %d variants:", VARIANTS);
    for (size_t k = 0; k < 5; k++)
        printf(" %s %.0f%%", names[k], 100.0 * (double)reasons[k] / VARIANTS);
    printf("\n");

    /* The baseline's table: 10,000 keys, looked up one at a time. */
    json_t *table = json_object();
    char key[32];
    for (unsigned i = 0; i < 10000; i++) {
        snprintf(key, sizeof(key), "user:u%u", i);
        json_object_set_new(table, key, json_integer(i));
    }

    int64_t *ns = malloc(requests * sizeof(int64_t));
    int64_t *base_ns = malloc(requests * sizeof(int64_t));
    double p50[16], p99[16], p999[16], rate[16], b50[16], b99[16];
    volatile size_t sink = 0;
    for (size_t r = 0; r < runs; r++) {
        for (size_t i = 0; i < requests; i++) {
            const struct variant *v = &vs[i % VARIANTS];
            struct dagi_authz_decision d;
            int64_t a = now_ns();
            dagi_authz_decide(b, &v->req, &d);
            int64_t c = now_ns();
            sink += d.allow;
            ns[i] = c - a;
            a = now_ns();
            json_t *hit = json_object_get(table, v->names[0]);
            c = now_ns();
            sink += hit != NULL;
            base_ns[i] = c - a;
        }
        qsort(ns, requests, sizeof(int64_t), cmp_i64);
        qsort(base_ns, requests, sizeof(int64_t), cmp_i64);
        p50[r] = pct(ns, requests, 0.50);
        p99[r] = pct(ns, requests, 0.99);
        p999[r] = pct(ns, requests, 0.999);
        b50[r] = pct(base_ns, requests, 0.50);
        b99[r] = pct(base_ns, requests, 0.99);
        /* throughput: the same decisions back to back */
        int64_t a = now_ns();
        for (size_t i = 0; i < requests; i++) {
            struct dagi_authz_decision d;
            dagi_authz_decide(b, &vs[i % VARIANTS].req, &d);
            sink += d.allow;
        }
        rate[r] = (double)requests / ((double)(now_ns() - a) / 1e9);
        printf("run %zu: decide p50 %.3f us, p99 %.3f us, p99.9 %.3f us, %.0f decisions/s; "
               "baseline (one hash lookup) p50 %.3f us, p99 %.3f us\n",
               r + 1, p50[r], p99[r], p999[r], rate[r], b50[r], b99[r]);
    }
    double m50 = median(p50, runs), mb50 = median(b50, runs);
    printf("\ndecide from the cached bundle (%zu roles, %zu grants, 5-10 subjects), median of "
           "%zu runs x %zu requests:\n"
           "  p50 %.3f us, p99 %.3f us (target <= 10 us), p99.9 %.3f us; %.0f decisions/s on one "
           "thread (target >= 500,000)\n"
           "  baseline, one hash lookup of one key: p50 %.3f us, p99 %.3f us; decide p50 = %.1fx "
           "the baseline (timer overhead included in both)\n",
           s.roles, s.grants + s.denies, runs, requests, m50, median(p99, runs), median(p999, runs),
           median(rate, runs), mb50, median(b99, runs), m50 / mb50);
    (void)sink;
    (void)allowed;
    json_decref(table);
    free(ns);
    free(base_ns);
    free(vs);
    dagi_authz_bundle_unref(b);
    dagi_cfg_errors_release(&errs);
    free(text);
    return 0;
}
