/* libFuzzer driver: bytes as an audit event off the bus (the audit role's
 * parser).  What decodes must be a record the chain accepts, hash, and
 * round-trip through the envelope builder to the same hash. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auditlog/chain.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned char zero[DAGI_AUDIT_HASH_BYTES];
    struct dagi_audit_record *r = calloc(2, sizeof(*r));
    const char *why = NULL;
    if (dagi_audit_event_decode((const char *)data, size, NULL, &r[0], &why) == 0) {
        if (dagi_audit_record_check(&r[0], NULL) != 0)
            abort();
        unsigned char h0[DAGI_AUDIT_HASH_BYTES], h1[DAGI_AUDIT_HASH_BYTES];
        dagi_audit_record_hash(zero, &r[0], h0);
        char *text = dagi_audit_event_build(&r[0], "fuzz@node");
        if (!text || dagi_audit_event_decode(text, strlen(text), NULL, &r[1], &why) != 0)
            abort();
        dagi_audit_record_hash(zero, &r[1], h1);
        if (memcmp(h0, h1, sizeof(h0)) != 0)
            abort();
        free(text);
    } else if (!why) {
        abort();
    }
    free(r);
    return 0;
}
