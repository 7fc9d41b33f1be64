/* libFuzzer driver: "<header value>\n<body>" verified against two fixed
 * secrets; then the body signed and verified again, which must pass. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/hooksig.h"

/* The corpus's valid headers are signed with these, at t near NOW. */
static const uint8_t secret_a[] = "fuzz-hook-secret-a-0123456789";
static const uint8_t secret_b[] = "fuzz-hook-secret-b-0123456789";
#define NOW 1700000000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t header_len = nl ? (size_t)(nl - data) : size;
    const uint8_t *body = nl ? nl + 1 : data + size;
    size_t body_len = size - header_len - (nl ? 1 : 0);
    /* The header is a C string: a NUL in the input ends it, as in HTTP code. */
    char *header = malloc(header_len + 1);
    memcpy(header, data, header_len);
    header[header_len] = '\0';

    const struct dagi_hooksig_secret secrets[] = {{secret_a, sizeof(secret_a) - 1},
                                                  {secret_b, sizeof(secret_b) - 1}};
    struct dagi_error err;
    dagi_hooksig_verify(header, body, body_len, secrets, 2, NOW, 0, &err);

    char signed_header[DAGI_HOOKSIG_SIGN_CAP];
    if (dagi_hooksig_sign(secret_b, sizeof(secret_b) - 1, NOW - 5, body, body_len, signed_header,
                          sizeof(signed_header)) != 0 ||
        dagi_hooksig_verify(signed_header, body, body_len, secrets, 2, NOW, 0, &err) != 0)
        abort();
    free(header);
    return 0;
}
