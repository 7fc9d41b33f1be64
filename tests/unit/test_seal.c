/* Sealing: round trip, every refusal with its own error, rotation, key file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/seal.h"

static const char aad[] = "dagi.work.telegram";

static void ring_with(struct dagi_seal_keyring *ring, unsigned char fill)
{
    unsigned char raw[DAGI_SEAL_KEY_BYTES];
    memset(raw, fill, sizeof(raw));
    memset(ring, 0, sizeof(*ring));
    dagi_seal_key_init(&ring->keys[0], raw);
    ring->count = 1;
}

static void seal_text(const struct dagi_seal_keyring *ring, const char *text, struct dagi_buf *out)
{
    dagi_buf_init(out, 1 << 20);
    assert_int_equal(dagi_seal(ring, text, strlen(text), aad, strlen(aad), out), DAGI_OK);
    assert_int_equal(out->len, strlen(text) + DAGI_SEAL_OVERHEAD);
}

static int open_sealed(const struct dagi_seal_keyring *ring, const struct dagi_buf *sealed,
                       const char *with_aad, struct dagi_buf *plain)
{
    dagi_buf_init(plain, 1 << 20);
    return dagi_seal_open(ring, sealed->data, sealed->len, with_aad, strlen(with_aad), plain);
}

static void test_round_trip(void **state)
{
    (void)state;
    struct dagi_seal_keyring ring;
    struct dagi_buf sealed, plain;
    ring_with(&ring, 7);
    seal_text(&ring, "hello, sealed world", &sealed);
    assert_memory_equal(sealed.data, "dgs1", 4);
    assert_memory_equal(sealed.data + 4, ring.keys[0].id, DAGI_SEAL_KEY_ID_BYTES);
    assert_int_equal(open_sealed(&ring, &sealed, aad, &plain), DAGI_OK);
    assert_string_equal(dagi_buf_str(&plain), "hello, sealed world");

    /* two seals of the same text differ (random nonce) */
    struct dagi_buf again;
    seal_text(&ring, "hello, sealed world", &again);
    assert_true(memcmp(again.data, sealed.data, sealed.len) != 0);

    /* empty plaintext is fine */
    struct dagi_buf empty, empty_plain;
    dagi_buf_init(&empty, 1024);
    assert_int_equal(dagi_seal(&ring, NULL, 0, NULL, 0, &empty), DAGI_OK);
    dagi_buf_init(&empty_plain, 16);
    assert_int_equal(dagi_seal_open(&ring, empty.data, empty.len, NULL, 0, &empty_plain), DAGI_OK);
    assert_int_equal(empty_plain.len, 0);

    dagi_buf_release(&sealed);
    dagi_buf_release(&again);
    dagi_buf_release(&plain);
    dagi_buf_release(&empty);
    dagi_buf_release(&empty_plain);
    dagi_seal_keyring_wipe(&ring);
}

static void test_refusals(void **state)
{
    (void)state;
    struct dagi_seal_keyring ring, other;
    struct dagi_buf sealed, plain;
    ring_with(&ring, 1);
    ring_with(&other, 2);
    seal_text(&ring, "secret", &sealed);

    /* tampered ciphertext */
    sealed.data[sealed.len - 20] ^= 1;
    assert_int_equal(open_sealed(&ring, &sealed, aad, &plain), DAGI_EPERM);
    dagi_buf_release(&plain);
    sealed.data[sealed.len - 20] ^= 1;
    /* tampered tag */
    sealed.data[sealed.len - 1] ^= 0x80;
    assert_int_equal(open_sealed(&ring, &sealed, aad, &plain), DAGI_EPERM);
    dagi_buf_release(&plain);
    sealed.data[sealed.len - 1] ^= 0x80;
    /* wrong aad: sealed for another subject */
    assert_int_equal(open_sealed(&ring, &sealed, "dagi.work.other", &plain), DAGI_EPERM);
    dagi_buf_release(&plain);
    /* a ring without the key */
    assert_int_equal(open_sealed(&other, &sealed, aad, &plain), DAGI_ENOENT);
    dagi_buf_release(&plain);
    /* truncated, and not sealed at all */
    dagi_buf_init(&plain, 1024);
    assert_int_equal(
        dagi_seal_open(&ring, sealed.data, DAGI_SEAL_OVERHEAD - 1, aad, strlen(aad), &plain),
        DAGI_EPARSE);
    assert_int_equal(dagi_seal_open(&ring, "plain text, long enough to pass the size check......",
                                    52, aad, strlen(aad), &plain),
                     DAGI_EPARSE);
    /* still intact after all that */
    dagi_buf_release(&plain);
    assert_int_equal(open_sealed(&ring, &sealed, aad, &plain), DAGI_OK);
    assert_string_equal(dagi_buf_str(&plain), "secret");
    dagi_buf_release(&plain);

    /* the output buffer's cap holds */
    struct dagi_buf small;
    dagi_buf_init(&small, 8);
    assert_int_equal(dagi_seal(&ring, "0123456789", 10, NULL, 0, &small), DAGI_ETOOBIG);
    dagi_buf_release(&small);
    dagi_buf_release(&sealed);
}

static void test_rotation(void **state)
{
    (void)state;
    struct dagi_seal_keyring old_ring, ring;
    struct dagi_buf old_sealed, new_sealed, plain;
    ring_with(&old_ring, 0xaa);
    seal_text(&old_ring, "sealed before rotation", &old_sealed);

    /* new key first (it seals), the old one second (it still opens) */
    ring_with(&ring, 0xbb);
    ring.keys[1] = old_ring.keys[0];
    ring.count = 2;
    seal_text(&ring, "sealed after rotation", &new_sealed);
    assert_memory_equal(new_sealed.data + 4, ring.keys[0].id, DAGI_SEAL_KEY_ID_BYTES);
    assert_int_equal(open_sealed(&ring, &old_sealed, aad, &plain), DAGI_OK);
    assert_string_equal(dagi_buf_str(&plain), "sealed before rotation");
    dagi_buf_release(&plain);
    assert_int_equal(open_sealed(&ring, &new_sealed, aad, &plain), DAGI_OK);
    assert_string_equal(dagi_buf_str(&plain), "sealed after rotation");
    dagi_buf_release(&plain);
    /* the old ring cannot open the new payload */
    assert_int_equal(open_sealed(&old_ring, &new_sealed, aad, &plain), DAGI_ENOENT);
    dagi_buf_release(&plain);

    dagi_buf_release(&old_sealed);
    dagi_buf_release(&new_sealed);
    dagi_seal_keyring_wipe(&ring);
    for (size_t i = 0; i < sizeof(ring); i++)
        assert_int_equal(((unsigned char *)&ring)[i], 0);
}

static void test_key_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/dagi-seal-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/data.key", dir);
    struct dagi_seal_keyring ring, again;
    struct dagi_error err = {0};

    assert_int_equal(dagi_seal_keyring_load(&ring, dir, &err), DAGI_OK);
    assert_int_equal(ring.count, 1);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, DAGI_SEAL_KEY_BYTES);

    /* reloaded: the same key */
    assert_int_equal(dagi_seal_keyring_load(&again, dir, &err), DAGI_OK);
    assert_memory_equal(ring.keys[0].key, again.keys[0].key, DAGI_SEAL_KEY_BYTES);
    assert_memory_equal(ring.keys[0].id, again.keys[0].id, DAGI_SEAL_KEY_ID_BYTES);
    struct dagi_buf sealed, plain;
    seal_text(&ring, "across restarts", &sealed);
    assert_int_equal(open_sealed(&again, &sealed, aad, &plain), DAGI_OK);
    dagi_buf_release(&sealed);
    dagi_buf_release(&plain);

    /* readable by others: refused, and the ring is left alone */
    assert_int_equal(chmod(path, 0644), 0);
    again.count = 0;
    assert_int_equal(dagi_seal_keyring_load(&again, dir, &err), DAGI_EPERM);
    assert_non_null(strstr(err.message, "644"));
    assert_int_equal(again.count, 0);
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(dagi_seal_keyring_load(&again, dir, &err), DAGI_EPERM);

    /* a key file of the wrong size */
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(truncate(path, 16), 0);
    assert_int_equal(dagi_seal_keyring_load(&again, dir, &err), DAGI_EPARSE);

    /* a directory that does not exist */
    assert_int_equal(dagi_seal_keyring_load(&again, "/nonexistent/dagi", &err), DAGI_EIO);

    unlink(path);
    rmdir(dir);
    dagi_seal_keyring_wipe(&ring);
    dagi_seal_keyring_wipe(&again);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_key_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
