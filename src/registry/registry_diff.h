/* A line-based unified diff of two document versions (GET .../diff).
 *
 * Myers' O((N+M)D) algorithm on the lines between the common prefix and
 * suffix, with caps: past DAGI_DIFF_MAX_EDITS edits or DAGI_DIFF_MAX_WORK
 * steps the middle is shown as removed and added whole - still a correct
 * diff, only not the shortest.  A line includes its newline, so a last
 * line that lost or gained one differs ("\ No newline at end of file"). */
#ifndef DAGI_REGISTRY_DIFF_H
#define DAGI_REGISTRY_DIFF_H

#include <stddef.h>

#include "core/buf.h"

#define DAGI_DIFF_MAX_EDITS 1000
#define DAGI_DIFF_MAX_WORK (32u * 1000 * 1000)

/* Appends to out "--- a_label\n+++ b_label\n" and the hunks, each with
 * `context` lines of context; nothing at all when the texts are equal.
 * Returns 0, or DAGI_ETOOBIG when out's cap is reached (out then holds a
 * prefix of the diff). */
int dagi_diff_unified(const char *a, size_t alen, const char *b, size_t blen, const char *a_label,
                      const char *b_label, unsigned context, struct dagi_buf *out);

#endif
