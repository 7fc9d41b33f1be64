/* Feature flags (flags.h). */
#include "cplane/flags.h"

#include <sodium.h>
#include <stddef.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"

static bool slug_ok(const char *s)
{
    if (!s || !(*s >= 'a' && *s <= 'z'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || strchr("_.-", *s)))
            return false;
    return true;
}

static void check_flag(void *record, struct dagi_cfg_ctx *ctx)
{
    const struct dagi_flag *f = record;
    if (!slug_ok(f->id))
        dagi_cfg_report(ctx, "id", "\"%s\" is not a flag id ([a-z][a-z0-9_.-]*)", f->id);
}

static const struct dagi_cfg_field flag_fields[] = {
    {"id", DAGI_CFG_STRING, offsetof(struct dagi_flag, id), NULL, 1, 64, NULL, NULL,
     DAGI_CFG_REQUIRED, "The flag's name, as the code asks for it."},
    {"enabled", DAGI_CFG_BOOL, offsetof(struct dagi_flag, enabled), "true", 0, 0, NULL, NULL, 0,
     "false = the kill switch: off for everyone."},
    {"default", DAGI_CFG_BOOL, offsetof(struct dagi_flag, def), "false", 0, 0, NULL, NULL, 0,
     "The answer when no rule below matches."},
    {"users", DAGI_CFG_STRING_LIST, offsetof(struct dagi_flag, users), NULL, 0, 100000, NULL,
     NULL, 0, "Principals it is on for (user:<id>, tg:<id>)."},
    {"teams", DAGI_CFG_STRING_LIST, offsetof(struct dagi_flag, teams), NULL, 0, 100000, NULL,
     NULL, 0, "Teams it is on for."},
    {"percent", DAGI_CFG_INT, offsetof(struct dagi_flag, percent), "0", 0, 100, NULL, NULL, 0,
     "The share of other principals it is on for, by stable hashing."},
};
static const struct dagi_cfg_schema flag_schema = {
    "flag", "A feature flag.", sizeof(struct dagi_flag), flag_fields,
    DAGI_ARRAY_LEN(flag_fields), check_flag};

struct flags_file {
    int64_t version;
    struct dagi_cfg_list flags;
};

static void check_file(void *record, struct dagi_cfg_ctx *ctx)
{
    const struct flags_file *file = record;
    const struct dagi_flag *f = file->flags.items;
    for (size_t i = 0; i < file->flags.count; i++)
        for (size_t j = 0; j < i; j++)
            if (!strcmp(f[i].id, f[j].id))
                dagi_cfg_report(ctx, "flags", "flag \"%s\" is defined twice (flags[%zu], [%zu])",
                                f[i].id, j, i);
}

static const struct dagi_cfg_field file_fields[] = {
    {"version", DAGI_CFG_INT, offsetof(struct flags_file, version), "1", 0, 0, NULL, NULL, 0,
     "Format version (1)."},
    {"flags", DAGI_CFG_LIST, offsetof(struct flags_file, flags), NULL, 0, 10000, NULL,
     &flag_schema, 0, "The flags."},
};
const struct dagi_cfg_schema dagi_flags_schema = {
    "flags.yml", "Feature flags.", sizeof(struct flags_file), file_fields,
    DAGI_ARRAY_LEN(file_fields), check_file};

int dagi_flags_load(const char *name, const char *text, size_t len, struct dagi_arena *arena,
                    struct dagi_flags *out, struct dagi_cfg_errors *errs)
{
    void *obj = NULL;
    int rc = dagi_cfg_load_yaml(&dagi_flags_schema, name, text, len, arena, &obj, errs);
    if (rc)
        return rc;
    const struct flags_file *file = obj;
    out->items = file->flags.items;
    out->count = file->flags.count;
    return DAGI_OK;
}

unsigned dagi_flags_bucket(const char *flag, const char *principal)
{
    unsigned char h[8];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof(h));
    crypto_generichash_update(&st, (const unsigned char *)flag, strlen(flag) + 1);
    crypto_generichash_update(&st, (const unsigned char *)principal, strlen(principal));
    crypto_generichash_final(&st, h, sizeof(h));
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof(h); i++)
        v = v << 8 | h[i];
    return (unsigned)(v % 100);
}

static bool in_list(const struct dagi_cfg_strings *l, const char *s)
{
    for (size_t i = 0; s && i < l->count; i++)
        if (!strcmp(l->items[i], s))
            return true;
    return false;
}

bool dagi_flags_on(const struct dagi_flags *flags, const char *flag, const char *principal,
                   const char *team)
{
    for (size_t i = 0; flags && flag && i < flags->count; i++) {
        const struct dagi_flag *f = &flags->items[i];
        if (strcmp(f->id, flag))
            continue;
        if (!f->enabled)
            return false;
        if (in_list(&f->users, principal) || (team && *team && in_list(&f->teams, team)))
            return true;
        if (principal && f->percent > 0 && dagi_flags_bucket(f->id, principal) < f->percent)
            return true;
        return f->def;
    }
    return false;
}
