/* The agent registry as the node configuration names it: the one loader the
 * roles and commands share (the router routes with it, the telegram role
 * finds its bots in it), so every reader checks the same model ids. */
#include "agents/registry.h"

#include <stdlib.h>

#include "core/err.h"
#include "node/dagi_config.h"

int dagi_registry_load_config(const struct dagi_config *c, struct dagi_registry **out,
                              struct dagi_error *err)
{
    *out = NULL;
    if (!c->router.registry)
        return DAGI_OK;
    size_t n;
    const char **known = dagi_config_model_ids(c, &n);
    struct dagi_cfg_errors errs;
    dagi_cfg_errors_init(&errs);
    int rc = dagi_registry_load(c->router.registry, c->router.prompts_dir, known, n, out, &errs);
    if (rc)
        dagi_error_set(err, rc, "cannot load the agent registry %s: %s", c->router.registry,
                       dagi_buf_str(&errs.text));
    dagi_cfg_errors_release(&errs);
    free(known);
    return rc;
}
