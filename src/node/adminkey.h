/* The node's admin API key.
 *
 * On first start the node makes a random key, writes it to <data_dir>/admin.key
 * with mode 0600 (created with O_EXCL, so two starts cannot both write one)
 * and tells the caller it was created, so `dagi node` can print it once.
 * Requests present it as `Authorization: Bearer <key>`.  Only a BLAKE2b hash
 * of the key is kept in memory, and presented keys are hashed and compared in
 * constant time, so neither timing nor a core dump gives the key away. */
#ifndef DAGI_ADMINKEY_H
#define DAGI_ADMINKEY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

#define DAGI_ADMIN_KEY_PREFIX "dagi_admin_"
#define DAGI_ADMIN_KEY_HASH_BYTES 32

struct dagi_admin_key {
    unsigned char hash[DAGI_ADMIN_KEY_HASH_BYTES];
};

/* Loads <data_dir>/admin.key, or creates it.  When created, *new_key_out (if
 * not NULL) receives the key text to show once; the caller frees it with
 * sodium's or plain free().  A key file readable by group or others is an
 * error (fix its mode). */
int dagi_admin_key_load_or_create(const char *data_dir, struct dagi_admin_key *out,
                                  char **new_key_out, struct dagi_error *err);
/* True when `presented` is the admin key. */
bool dagi_admin_key_check(const struct dagi_admin_key *key, const char *presented, size_t len);
/* Extracts the token of an `Authorization: Bearer <token>` header value. */
bool dagi_bearer_token(const char *header_value, const char **token, size_t *len);

#endif
