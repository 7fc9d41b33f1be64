/* libFuzzer driver: bytes as a Telegram webhook body.  When they parse, ask
 * the addressing helpers and split the text, so the UTF-16 entity ranges
 * are read back and the splitter sees real message text; the same bytes
 * also go through the Bot API response parser. */
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/arena.h"
#include "core/err.h"
#include "telegram/tg_api.h"
#include "telegram/tg_split.h"
#include "telegram/tg_update.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dagi_arena *arena = dagi_arena_new(4 << 20);
    struct dagi_error err;
    const struct dagi_tg_update *u = NULL;
    struct dagi_tg_slice parts[32];
    size_t n;
    if (dagi_tg_update_parse((const char *)data, size, arena, &u, &err) == 0) {
        dagi_tg_addressed_to(u, "helion_bot", 7000000001);
        dagi_tg_addressed_to(u, NULL, 0);
        size_t len;
        const char *t = dagi_tg_update_text_without_mention(u, "@helion_bot", &len);
        if (t)
            dagi_tg_split(t, len, 64, parts, 32, &n);
    }
    dagi_tg_split((const char *)data, size, 7, parts, 32, &n);

    json_t *result = NULL;
    struct dagi_tg_api_error api_err;
    if (dagi_tg_api_parse_response((const char *)data, size, &result, &api_err, &err) == 0) {
        struct dagi_tg_me me;
        struct dagi_tg_file file;
        dagi_tg_parse_me(result, &me, &err);
        dagi_tg_parse_file(result, &file, &err);
        json_decref(result);
    }
    dagi_arena_free(arena);
    return 0;
}
