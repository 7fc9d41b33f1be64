/* Feature flags (seed 1.2), the "flags" document of the config registry:
 *
 *     flags:
 *       - id: long_answers          # [a-z][a-z0-9_.-]*, unique
 *         enabled: true             # false = the kill switch: off for everyone
 *         default: false            # when nothing below matches
 *         users: ["tg:42", "user:alice"]   # on for these principals
 *         teams: [daarion]          # on for members acting in these teams
 *         percent: 10               # on for this share of the other principals
 *
 * A percentage rollout hashes (flag id, principal) with BLAKE2b, so a
 * principal stays on the same side as the share grows, and two flags at 10 %
 * do not pick the same 10 %.  Order: kill switch, users, teams, percent,
 * default. */
#ifndef DAGI_CPLANE_FLAGS_H
#define DAGI_CPLANE_FLAGS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"

struct dagi_flag {
    char *id;
    bool enabled;
    bool def;
    struct dagi_cfg_strings users;
    struct dagi_cfg_strings teams;
    int64_t percent; /* 0..100 */
};

struct dagi_flags {
    const struct dagi_flag *items;
    size_t count;
};

extern const struct dagi_cfg_schema dagi_flags_schema;

/* Parses the document into the arena; errors "name:line: ...". */
int dagi_flags_load(const char *name, const char *text, size_t len, struct dagi_arena *arena,
                    struct dagi_flags *out, struct dagi_cfg_errors *errs);
/* Whether `flag` is on for the principal acting in team (either may be
 * NULL).  An unknown flag is off. */
bool dagi_flags_on(const struct dagi_flags *flags, const char *flag, const char *principal,
                   const char *team);
/* The rollout bucket of (flag, principal): 0..99. */
unsigned dagi_flags_bucket(const char *flag, const char *principal);

#endif
