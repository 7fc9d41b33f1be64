/* A snapshot from a document set (cplane.h): every kind parsed by its own
 * library, the cross-references checked.  The config registry validates a
 * push with this, `dagi config check` too, so what is accepted is exactly
 * what the data plane can run. */
#include "cplane/cplane.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/registry.h"
#include "authz/authz.h"
#include "core/arena.h"
#include "core/mem.h"
#include "node/dagi_config.h"
#include "quota/quota.h"
#include "routing/rules.h"

struct dagi_cplane_snap *dagi_cplane_snap_ref(struct dagi_cplane_snap *s)
{
    atomic_fetch_add(&s->refs, 1);
    return s;
}

void dagi_cplane_snap_unref(struct dagi_cplane_snap *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    dagi_registry_unref(s->agents);
    dagi_authz_bundle_unref(s->policy);
    dagi_quota_budgets_unref(s->quotas);
    if (s->arena)
        dagi_arena_free(s->arena);
    dagi_docset_release(&s->docs);
    free(s);
}

/* Prompts come from the set's prompts documents. */
static int set_prompt(void *ud, const char *file, const char **text, size_t *len, char *why,
                      size_t why_len)
{
    const struct dagi_docset *set = ud;
    const struct dagi_doc *d = dagi_docset_find(set, DAGI_DOC_PROMPTS, file);
    if (!d) {
        snprintf(why, why_len, "no prompts document \"%s\"", file);
        return DAGI_ENOENT;
    }
    *text = d->text;
    *len = d->len;
    return DAGI_OK;
}

static void doc_name(const struct dagi_doc *d, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", dagi_doc_kind_name(d->kind), d->name);
}

static int build_kind(struct dagi_cplane_snap *s, const struct dagi_doc *d, const char **known,
                      size_t n_known, struct dagi_cfg_errors *errs)
{
    char name[DAGI_DOC_MAX_NAME + 16];
    doc_name(d, name, sizeof(name));
    switch (d->kind) {
    case DAGI_DOC_AGENTS:
        return dagi_registry_load_text(name, d->text, d->len, set_prompt, &s->docs, known,
                                       n_known, &s->agents, errs);
    case DAGI_DOC_ROUTING: {
        dagi_rules_check_models_during(known, n_known);
        int rc = dagi_rules_load_yaml(name, d->text, d->len, s->arena, &s->rules, errs);
        dagi_rules_check_models_done();
        return rc;
    }
    case DAGI_DOC_POLICIES:
        return dagi_authz_compile(d->text, d->len, name, &s->policy, errs);
    case DAGI_DOC_QUOTAS:
        return dagi_quota_budgets_load(d->text, d->len, name, &s->quotas, errs);
    case DAGI_DOC_FLAGS:
        return dagi_flags_load(name, d->text, d->len, s->arena, &s->flags, errs);
    case DAGI_DOC_LISTS:
        return dagi_lists_load(name, d->text, d->len, s->arena, &s->lists, errs);
    case DAGI_DOC_PROMPTS:
        if (!d->len || memchr(d->text, '\0', d->len)) {
            dagi_cfg_errors_add(errs, "%s: a prompt must be non-empty text without NUL bytes",
                                name);
            return DAGI_EINVAL;
        }
        if (d->len > DAGI_REGISTRY_MAX_PROMPT) {
            dagi_cfg_errors_add(errs, "%s: larger than %d bytes", name, DAGI_REGISTRY_MAX_PROMPT);
            return DAGI_ETOOBIG;
        }
        return DAGI_OK;
    case DAGI_DOC_KIND_COUNT:
        break;
    }
    return DAGI_EINVAL;
}

int dagi_cplane_build(const struct dagi_docset *set, const struct dagi_config *c,
                      struct dagi_cplane_snap **out, struct dagi_cfg_errors *errs)
{
    struct dagi_cplane_snap *s = dagi_xcalloc(1, sizeof(*s));
    atomic_init(&s->refs, 1);
    s->source = "files";
    dagi_docset_copy(&s->docs, set);
    s->arena = dagi_arena_new(0);
    size_t n_known;
    const char **known = dagi_config_model_ids(c, &n_known);
    int rc = DAGI_OK;
    /* Prompts first: the agents document refers to them. */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < s->docs.count; i++) {
            const struct dagi_doc *d = &s->docs.docs[i];
            if ((d->kind == DAGI_DOC_PROMPTS) != (pass == 0))
                continue;
            int r = build_kind(s, d, known, n_known, errs);
            if (r && !rc)
                rc = r;
        }
    free(known);
    /* The policy names agents: they must be the registry's. */
    if (!rc && s->policy) {
        size_t n = s->agents ? dagi_registry_count(s->agents) : 0;
        const char **ids = dagi_xcalloc(n ? n : 1, sizeof(*ids));
        for (size_t i = 0; i < n; i++)
            ids[i] = dagi_registry_agent(s->agents, i)->id;
        rc = dagi_authz_check_agents(s->policy, ids, n, errs);
        free(ids);
    }
    if (rc) {
        dagi_cplane_snap_unref(s);
        return rc;
    }
    *out = s;
    return DAGI_OK;
}

int dagi_docset_validate(const struct dagi_docset *set, const struct dagi_config *c,
                         struct dagi_cfg_errors *errs)
{
    struct dagi_cplane_snap *s = NULL;
    int rc = dagi_cplane_build(set, c, &s, errs);
    dagi_cplane_snap_unref(s);
    return rc;
}
