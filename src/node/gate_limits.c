/* The gate's rate limits (gate.h): auth.rate_limits turned into a table the
 * gate walks per request, and one token bucket per (rule, caller) in the
 * rate limiter (access/ratelimit.h: in-process now, Redis at scale).
 *
 * A bucket's key is "<rule index>/<per>/<value>": the rule index keeps two
 * rules on the same caller apart, and a reload that changes a rule starts
 * its buckets afresh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/ratelimit.h"
#include "core/mem.h"
#include "node/dagi_config.h"
#include "node/gate.h"

enum { PER_KEY, PER_USER, PER_IP, PER_TEAM };

struct gate_rule {
    const char *class; /* a dagi_route_classes name; "*" = every class */
    int per;
    double rate_per_s, burst;
};

struct gate_limits {
    struct gate_rule *rules;
    size_t count;
};

int gate_limits_build(const struct dagi_config *c, struct gate_limits **out,
                      struct dagi_error *err)
{
    (void)err;
    const struct dagi_rate_limit_config *rc = c->auth.rate_limits.items;
    size_t n = c->auth.rate_limits.count;
    struct gate_limits *l = dagi_xcalloc(1, sizeof(*l));
    l->rules = dagi_xcalloc(n ? n : 1, sizeof(*l->rules));
    for (size_t i = 0; i < n; i++) {
        struct dagi_ratelimit_rule r = dagi_ratelimit_per((double)rc[i].limit, rc[i].window);
        l->rules[i] = (struct gate_rule){
            .class = dagi_route_classes[rc[i].routes],
            .per = rc[i].per,
            .rate_per_s = r.rate_per_s,
            .burst = rc[i].burst ? (double)rc[i].burst : r.burst,
        };
    }
    l->count = n;
    *out = l;
    return DAGI_OK;
}

void gate_limits_free(struct gate_limits *l)
{
    if (!l)
        return;
    free(l->rules);
    free(l);
}

/* What the bucket is keyed by; NULL when the caller has none (no team). */
static const char *value_of(int per, const struct dagi_caller *caller)
{
    switch (per) {
    case PER_KEY:
        /* The admin key and a JWT are keys too: a JWT's subject stands for it. */
        return caller->key_id[0] ? caller->key_id
               : caller->kind == DAGI_CALLER_ADMIN ? "admin"
               : caller->user_id[0]              ? caller->user_id
                                                 : NULL;
    case PER_USER:
        return caller->user_id[0] ? caller->user_id : NULL;
    case PER_IP:
        return caller->ip[0] ? caller->ip : NULL;
    case PER_TEAM:
        return caller->team[0] ? caller->team : NULL;
    default:
        return NULL;
    }
}

int64_t gate_limits_take(struct gate_limits *l, struct dagi_ratelimit *rl, const char *class,
                         int per, const struct dagi_caller *caller, int64_t now_ms)
{
    int64_t wait = 0;
    for (size_t i = 0; l && i < l->count; i++) {
        const struct gate_rule *r = &l->rules[i];
        if (per >= 0 ? r->per != per : r->per == PER_IP)
            continue;
        if (strcmp(r->class, "*") != 0 && strcmp(r->class, class) != 0)
            continue;
        const char *v = value_of(r->per, caller);
        if (!v)
            continue;
        char key[256];
        snprintf(key, sizeof(key), "%zu/%s/%.200s", i, dagi_rate_limit_per[r->per], v);
        int64_t retry = 0;
        if (!dagi_ratelimit_take(rl, key, r->rate_per_s, r->burst, now_ms, &retry) &&
            retry > wait)
            wait = retry;
    }
    return wait;
}
