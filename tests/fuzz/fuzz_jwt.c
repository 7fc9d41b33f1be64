/* libFuzzer driver: bytes as a token, verified against a fixed HS256 key set
 * (one key without kid, one with kid "k1").  The same bytes also go to the
 * claims layer directly: behind a signature, random bytes never reach it. */
#include <stddef.h>
#include <stdint.h>

#include "auth/jwt.h"
#include "core/arena.h"

/* The corpus's valid tokens are signed with these, at iat 1700000000 with
 * iss "fuzz-issuer" and aud "dagi", so mutations start from accepted input. */
static const uint8_t secret[] = "fuzz-secret-0123456789abcdefghij";
static const uint8_t secret_k1[] = "fuzz-secret-kid1-0123456789abcde";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dagi_jwt_keys *keys = dagi_jwt_keys_new();
    dagi_jwt_keys_add_hs256(keys, NULL, secret, 32, NULL);
    dagi_jwt_keys_add_hs256(keys, "k1", secret_k1, 32, NULL);
    struct dagi_arena *arena = dagi_arena_new(1 << 20);
    struct dagi_jwt_opts opts;
    dagi_jwt_opts_init(&opts, 1700000000);
    opts.issuer = "fuzz-issuer";
    opts.audience = "dagi";
    struct dagi_jwt_claims claims;
    struct dagi_error err;
    dagi_jwt_verify(keys, (const char *)data, size, &opts, arena, &claims, &err);
    dagi_jwt_check_claims((const char *)data, size, &opts, arena, &claims, &err);
    dagi_arena_free(arena);
    dagi_jwt_keys_free(keys);
    return 0;
}
