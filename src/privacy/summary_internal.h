/* Private to the summary's files (summary.h has the algorithm). */
#ifndef DAGI_PRIVACY_SUMMARY_INTERNAL_H
#define DAGI_PRIVACY_SUMMARY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dagi_arena;

/* A sentence: trimmed, with at least one word. */
struct sum_sentence {
    size_t at, len;
    size_t word_at, word_n; /* its content words, in sum_scan.hashes */
    unsigned tokens;        /* dagi_summary_tokens of its text */
};

/* What one pass over a text finds: its sentences and the hashes (FNV-1a
 * over case-folded code points) of their content words - words of the
 * scripts textnorm.h covers, stop words of English and Ukrainian, single
 * letters and the insides of placeholders ("[email]") left out. */
struct sum_scan {
    struct sum_sentence *s;
    size_t ns;
    uint64_t *hashes;
    size_t nh;
};

/* Scans t[0..n) into arrays from the arena; t[n] must be a NUL (a
 * dagi_buf's).  DAGI_ETOOBIG when the arena's cap is reached. */
int sum_scan_text(const char *t, size_t n, struct dagi_arena *arena, struct sum_scan *out);

#endif
