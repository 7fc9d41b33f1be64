/* base64url without padding (RFC 4648 section 5, as JWS uses it: RFC 7515
 * section 2), decoded strictly.
 *
 * Strict means one spelling per byte string: only the 64 alphabet characters,
 * no '=' padding, no whitespace, no length that leaves a lone character, and
 * the unused low bits of the last character must be zero.  A lenient decoder
 * lets an attacker change a token's text without changing its bytes, which
 * breaks deny lists and caches keyed on the token text. */
#ifndef DAGI_AUTH_B64URL_H
#define DAGI_AUTH_B64URL_H

#include <stddef.h>
#include <stdint.h>

/* Bytes that decoding `len` characters yields at most (exact for valid input). */
#define DAGI_B64URL_DECODED_MAX(len) (((len) / 4) * 3 + 2)
/* Characters that encoding `n` bytes yields, without the terminating NUL. */
#define DAGI_B64URL_ENCODED_LEN(n) (((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))

/* Decodes `len` characters of `in` into `out` (capacity `cap`), setting
 * *out_len.  Returns 0, DAGI_EPARSE for anything but canonical unpadded
 * base64url, DAGI_ETOOBIG when `cap` is too small.  `out` may be written even
 * on failure; *out_len is set only on success. */
int dagi_b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len);

/* Encodes `n` bytes into `out` (capacity `cap`, NUL-terminated).  Returns 0,
 * or DAGI_ETOOBIG when DAGI_B64URL_ENCODED_LEN(n) + 1 > cap. */
int dagi_b64url_encode(const uint8_t *in, size_t n, char *out, size_t cap);

#endif
