/* Unified diff (registry_diff.h).
 *
 * Lines are compared by a 64-bit hash first and by their bytes only when
 * the hashes agree.  Myers' forward search keeps, for every edit count d,
 * the furthest x reached on each diagonal k in [-d, d]; the snapshots of
 * those rows (O(D^2) ints, bounded by DAGI_DIFF_MAX_EDITS) let the edit
 * script be walked back from the end. */
#include "registry/registry_diff.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"

struct line {
    const char *p;
    size_t len; /* including the '\n', when there is one */
    uint64_t hash;
};

enum op_kind { OP_EQUAL, OP_DELETE, OP_INSERT };

struct op {
    enum op_kind kind;
    size_t a, b; /* indexes of the lines before which / at which it happens */
};

struct ops {
    struct op *v;
    size_t n, cap;
};

static void ops_push(struct ops *o, enum op_kind kind, size_t a, size_t b)
{
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 64;
        o->v = dagi_xrealloc(o->v, o->cap * sizeof(*o->v));
    }
    o->v[o->n++] = (struct op){kind, a, b};
}

static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static struct line *split_lines(const char *text, size_t len, size_t *count)
{
    size_t n = 0, cap = 16;
    struct line *v = dagi_xmalloc(cap * sizeof(*v));
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t l = nl ? (size_t)(nl - (text + i)) + 1 : len - i;
        if (n == cap) {
            cap *= 2;
            v = dagi_xrealloc(v, cap * sizeof(*v));
        }
        v[n++] = (struct line){text + i, l, fnv1a(text + i, l)};
        i += l;
    }
    *count = n;
    return v;
}

static bool line_eq(const struct line *x, const struct line *y)
{
    return x->hash == y->hash && x->len == y->len && memcmp(x->p, y->p, x->len) == 0;
}

/* The edit script of a[0..n) -> b[0..m) (the middle, offsets added by the
 * caller) appended to o; false when over the caps (nothing appended). */
static bool myers(const struct line *a, size_t n, const struct line *b, size_t m, size_t a0,
                  size_t b0, struct ops *o)
{
    long N = (long)n, M = (long)m, dmax = N + M;
    if (dmax > DAGI_DIFF_MAX_EDITS)
        dmax = DAGI_DIFF_MAX_EDITS;
    long off = dmax + 1;
    long *V = dagi_xcalloc((size_t)(2 * dmax + 3), sizeof(*V));
    /* trace[d] = V[-d..d] after step d */
    long **trace = dagi_xcalloc((size_t)dmax + 1, sizeof(*trace));
    size_t work = 0;
    long D = -1;
    V[off + 1] = 0;
    for (long d = 0; d <= dmax && D < 0; d++) {
        for (long k = -d; k <= d; k += 2) {
            long x = (k == -d || (k != d && V[off + k - 1] < V[off + k + 1])) ? V[off + k + 1]
                                                                              : V[off + k - 1] + 1;
            long y = x - k;
            while (x < N && y < M && line_eq(&a[x], &b[y]))
                x++, y++, work++;
            V[off + k] = x;
            work++;
            if (x >= N && y >= M) {
                D = d;
                break;
            }
        }
        trace[d] = dagi_xmalloc((size_t)(2 * d + 1) * sizeof(long));
        memcpy(trace[d], &V[off - d], (size_t)(2 * d + 1) * sizeof(long));
        if (work > DAGI_DIFF_MAX_WORK)
            break;
    }
    bool ok = D >= 0;
    if (ok) {
        /* Walk back; the ops come out last first. */
        struct ops rev = {0};
        long x = N, y = M;
        for (long d = D; d > 0; d--) {
            const long *P = trace[d - 1]; /* P[k + d - 1] = V[k] after step d-1 */
            long k = x - y, pk;
#define PV(kk) P[(kk) + d - 1]
            if (k == -d || (k != d && PV(k - 1) < PV(k + 1)))
                pk = k + 1;
            else
                pk = k - 1;
            long px = PV(pk), py = px - pk;
#undef PV
            long sx = pk == k + 1 ? px : px + 1; /* where the snake of step d starts */
            while (x > sx) {
                x--, y--;
                ops_push(&rev, OP_EQUAL, a0 + (size_t)x, b0 + (size_t)y);
            }
            if (pk == k + 1)
                ops_push(&rev, OP_INSERT, a0 + (size_t)px, b0 + (size_t)py);
            else
                ops_push(&rev, OP_DELETE, a0 + (size_t)px, b0 + (size_t)py);
            x = px, y = py;
        }
        while (x > 0 && y > 0) {
            x--, y--;
            ops_push(&rev, OP_EQUAL, a0 + (size_t)x, b0 + (size_t)y);
        }
        for (size_t i = rev.n; i-- > 0;)
            ops_push(o, rev.v[i].kind, rev.v[i].a, rev.v[i].b);
        free(rev.v);
    }
    for (long d = 0; d <= dmax; d++)
        free(trace[d]);
    free(trace);
    free(V);
    return ok;
}

static int put_line(struct dagi_buf *out, char mark, const struct line *l)
{
    int rc = dagi_buf_append_char(out, mark);
    if (!rc)
        rc = dagi_buf_append(out, l->p, l->len);
    if (!rc && (l->len == 0 || l->p[l->len - 1] != '\n'))
        rc = dagi_buf_append_str(out, "\n\\ No newline at end of file\n");
    return rc;
}

/* "-start,count" as GNU diff writes it: ",count" left out when 1, and an
 * empty range starts at the line before it. */
static int put_range(struct dagi_buf *out, char sign, size_t first, size_t count)
{
    if (count == 1)
        return dagi_buf_appendf(out, "%c%zu", sign, first + 1);
    return dagi_buf_appendf(out, "%c%zu,%zu", sign, count ? first + 1 : first, count);
}

static int emit_hunks(const struct ops *o, const struct line *a, const struct line *b,
                      unsigned context, struct dagi_buf *out)
{
    size_t i = 0;
    int rc = DAGI_OK;
    while (i < o->n && !rc) {
        while (i < o->n && o->v[i].kind == OP_EQUAL)
            i++;
        if (i == o->n)
            break;
        size_t start = i > context ? i - context : 0, end = i; /* end: one past the last change */
        for (size_t j = i; j < o->n; j++) {
            if (o->v[j].kind != OP_EQUAL) {
                end = j + 1;
                continue;
            }
            if (j - end >= 2 * (size_t)context) /* the next change is too far to join */
                break;
        }
        size_t stop = end + context < o->n ? end + context : o->n;
        size_t acount = 0, bcount = 0;
        for (size_t j = start; j < stop; j++) {
            acount += o->v[j].kind != OP_INSERT;
            bcount += o->v[j].kind != OP_DELETE;
        }
        rc = dagi_buf_append_str(out, "@@ ");
        if (!rc)
            rc = put_range(out, '-', o->v[start].a, acount);
        if (!rc)
            rc = dagi_buf_append_char(out, ' ');
        if (!rc)
            rc = put_range(out, '+', o->v[start].b, bcount);
        if (!rc)
            rc = dagi_buf_append_str(out, " @@\n");
        for (size_t j = start; j < stop && !rc; j++) {
            const struct op *p = &o->v[j];
            if (p->kind == OP_EQUAL)
                rc = put_line(out, ' ', &a[p->a]);
            else if (p->kind == OP_DELETE)
                rc = put_line(out, '-', &a[p->a]);
            else
                rc = put_line(out, '+', &b[p->b]);
        }
        i = stop;
    }
    return rc;
}

int dagi_diff_unified(const char *a, size_t alen, const char *b, size_t blen, const char *a_label,
                      const char *b_label, unsigned context, struct dagi_buf *out)
{
    size_t n, m;
    struct line *la = split_lines(a, alen, &n), *lb = split_lines(b, blen, &m);
    struct ops o = {0};
    size_t pre = 0, suf = 0;
    while (pre < n && pre < m && line_eq(&la[pre], &lb[pre]))
        pre++;
    while (suf < n - pre && suf < m - pre && line_eq(&la[n - 1 - suf], &lb[m - 1 - suf]))
        suf++;
    int rc = DAGI_OK;
    if (pre == n && pre == m)
        goto out; /* equal */
    for (size_t i = 0; i < pre; i++)
        ops_push(&o, OP_EQUAL, i, i);
    size_t an = n - pre - suf, bm = m - pre - suf;
    if (!myers(la + pre, an, lb + pre, bm, pre, pre, &o)) {
        for (size_t i = 0; i < an; i++)
            ops_push(&o, OP_DELETE, pre + i, pre);
        for (size_t j = 0; j < bm; j++)
            ops_push(&o, OP_INSERT, pre + an, pre + j);
    }
    for (size_t i = 0; i < suf; i++)
        ops_push(&o, OP_EQUAL, n - suf + i, m - suf + i);
    rc = dagi_buf_appendf(out, "--- %s\n+++ %s\n", a_label, b_label);
    if (!rc)
        rc = emit_hunks(&o, la, lb, context, out);
out:
    free(o.v);
    free(la);
    free(lb);
    return rc;
}
