/* The command line's way into a running node: CLI commands that change state
 * go through the node's admin API (so they are authenticated, and audited
 * once the audit role exists), found through <data_dir>/http.addr and
 * authenticated with <data_dir>/admin.key. */
#ifndef DAGI_ADMIN_CLIENT_H
#define DAGI_ADMIN_CLIENT_H

#include "core/err.h"

/* Blocking.  On success (any HTTP status) sets *status and *body (caller
 * frees); DAGI_EUNAVAIL when no node runs on that data dir. */
int dagi_admin_call(const char *data_dir, const char *method, const char *path,
                    const char *json_body, long *status, char **body, struct dagi_error *err);

/* The data dir a CLI command talks to: `data_dir` when given, else the one
 * the configuration (`config`, else the defaults and DAGI_* variables)
 * names, held by *snap (release it with dagi_config_snapshot_unref; NULL
 * when not needed).  NULL after printing the configuration's errors. */
struct dagi_config_snapshot;
const char *dagi_admin_data_dir(const char *data_dir, const char *config,
                                struct dagi_config_snapshot **snap);

#endif
