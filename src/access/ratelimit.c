/* Rate limiting: the backend-independent part (ratelimit.h).  Arguments are
 * checked here once, so every backend may take them as valid. */
#include "access/ratelimit.h"

#include "core/mem.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

const struct dagi_ratelimit_ops *const dagi_ratelimit_backends[] = {
    &dagi_ratelimit_local_ops,
    NULL,
};

struct dagi_ratelimit {
    const struct dagi_ratelimit_ops *ops;
    void *state;
    atomic_uint_fast64_t invalid;
};

int dagi_ratelimit_new_with(const struct dagi_ratelimit_ops *ops,
                            const struct dagi_ratelimit_opts *opts, struct dagi_ratelimit **out,
                            struct dagi_error *err)
{
    struct dagi_ratelimit_opts o = opts ? *opts : (struct dagi_ratelimit_opts){0};
    if (o.max_buckets == 0)
        o.max_buckets = 100000;
    void *state = NULL;
    int rc = ops->open(&o, &state, err);
    if (rc)
        return rc;
    struct dagi_ratelimit *rl = dagi_xcalloc(1, sizeof(*rl));
    rl->ops = ops;
    rl->state = state;
    atomic_init(&rl->invalid, 0);
    *out = rl;
    return DAGI_OK;
}

int dagi_ratelimit_new(const char *backend, const struct dagi_ratelimit_opts *opts,
                       struct dagi_ratelimit **out, struct dagi_error *err)
{
    for (size_t i = 0; backend && dagi_ratelimit_backends[i]; i++)
        if (strcmp(dagi_ratelimit_backends[i]->name, backend) == 0)
            return dagi_ratelimit_new_with(dagi_ratelimit_backends[i], opts, out, err);
    return dagi_error_set(err, DAGI_EINVAL, "rate limit backend \"%s\" unknown (try \"local\")",
                          backend ? backend : "");
}

void dagi_ratelimit_free(struct dagi_ratelimit *rl)
{
    if (!rl)
        return;
    rl->ops->close(rl->state);
    free(rl);
}

const struct dagi_ratelimit_ops *dagi_ratelimit_backend(const struct dagi_ratelimit *rl)
{
    return rl->ops;
}

bool dagi_ratelimit_take(struct dagi_ratelimit *rl, const char *bucket_key, double rate_per_s,
                         double burst, int64_t now_ms, int64_t *retry_after_ms)
{
    int64_t ignored;
    if (!retry_after_ms)
        retry_after_ms = &ignored;
    size_t len = bucket_key ? strnlen(bucket_key, DAGI_RATELIMIT_KEY_MAX + 1) : 0;
    /* written so that NaN fails every test */
    if (len == 0 || len > DAGI_RATELIMIT_KEY_MAX || !(rate_per_s > 0) || !isfinite(rate_per_s) ||
        !(burst >= 1) || !isfinite(burst)) {
        atomic_fetch_add(&rl->invalid, 1);
        *retry_after_ms = -1;
        return false;
    }
    return rl->ops->take(rl->state, bucket_key, len, rate_per_s, burst, now_ms, retry_after_ms);
}

void dagi_ratelimit_stats(struct dagi_ratelimit *rl, struct dagi_ratelimit_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (rl->ops->stats)
        rl->ops->stats(rl->state, out);
    out->invalid = atomic_load(&rl->invalid);
}

struct dagi_ratelimit_rule dagi_ratelimit_per(double count, int64_t period_ms)
{
    struct dagi_ratelimit_rule r = {0, 0};
    if (count > 0 && period_ms > 0) {
        r.rate_per_s = count * 1000.0 / (double)period_ms;
        r.burst = count;
    }
    return r;
}
