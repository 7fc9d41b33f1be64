/* libFuzzer driver: bytes as the KV value of the config set
 * (dagi_docset_from_json); what loads is serialized, parsed again and must
 * come back the same, so the reader and the writer agree on every set the
 * reader accepts. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "cplane/docset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dagi_docset s, again;
    struct dagi_error err;
    if (dagi_docset_from_json((const char *)data, size, &s, &err) != 0)
        return 0;
    size_t len;
    char *json = dagi_docset_to_json(&s, &len);
    if (dagi_docset_from_json(json, len, &again, &err) != 0 || again.count != s.count ||
        again.revision != s.revision)
        abort();
    for (size_t i = 0; i < s.count; i++) {
        const struct dagi_doc *a = &s.docs[i], *b = &again.docs[i];
        if (a->kind != b->kind || strcmp(a->name, b->name) || a->len != b->len ||
            memcmp(a->text, b->text, a->len) || strcmp(a->checksum, b->checksum) ||
            !dagi_docset_find(&s, a->kind, a->name))
            abort();
    }
    free(json);
    dagi_docset_release(&again);
    dagi_docset_release(&s);
    return 0;
}
