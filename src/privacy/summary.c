/* The extractive summary (summary.h has the algorithm): redact, split,
 * score, pick within the budget, write in the original order.
 *
 * All bookkeeping (sentences, the term table) comes from one arena per
 * call; the only copy of text is the working buffer, which holds the
 * redacted text alone (so what its growth leaves behind in freed memory
 * holds no secret) and is wiped before it is freed. */
#include "privacy/summary.h"

#include <math.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/err.h"
#include "core/mem.h"
#include "privacy/summary_internal.h"

#define DUPLICATE_JACCARD 0.7
#define DUPLICATE_WINDOW 64
#define ELLIPSIS "\xe2\x80\xa6"

struct sentence {
    size_t at, len;
    size_t term_at, term_n; /* distinct term ids in ctx.ids */
    unsigned tokens;
    double score;
    bool priority, chosen;
};

struct term {
    uint32_t hash; /* the word's, folded to 32 bits: a rare collision only merges two counts */
    uint32_t df, tf;
    uint32_t last; /* 1 + the last sentence that counted it */
    uint32_t mark; /* near_duplicate's stamp */
    float weight;
};

struct ctx {
    struct dagi_arena *arena;
    const char *t;
    struct sentence *s;
    size_t ns;
    uint32_t *ids;
    size_t nids;
    uint32_t stamp;
    struct term *terms;
    size_t table_size, nterms;
};

static const unsigned char space[256] = {
    [' '] = 1, ['\t'] = 1, ['\r'] = 1, ['\n'] = 1, ['\f'] = 1, ['\v'] = 1,
};

static bool is_space(unsigned char c)
{
    return space[c];
}

unsigned dagi_summary_tokens(const char *text, size_t len)
{
    const unsigned char *t = (const unsigned char *)text;
    unsigned tokens = 0;
    for (size_t i = 0; i < len;) {
        while (i < len && space[t[i]])
            i++;
        size_t start = i;
        while (i < len && !space[t[i]])
            i++;
        tokens += (unsigned)((i - start + 3) / 4);
    }
    return tokens;
}

/* --- terms --- */

static uint32_t term_id(struct ctx *c, uint64_t wide)
{
    uint32_t hash = (uint32_t)(wide ^ (wide >> 32));
    size_t mask = c->table_size - 1, k = (size_t)hash & mask;
    while (c->terms[k].tf && c->terms[k].hash != hash)
        k = (k + 1) & mask;
    if (!c->terms[k].tf) {
        c->terms[k].hash = hash;
        c->nterms++;
    }
    c->terms[k].tf++;
    return (uint32_t)k;
}

/* The scan's word hashes become term ids, distinct per sentence. */
static int index_terms(struct ctx *c, const struct sum_scan *scan)
{
    size_t n = scan->nh;
    c->table_size = 16;
    while (c->table_size < n + n / 2 + 1)
        c->table_size *= 2;
    c->terms = dagi_arena_zalloc(c->arena, c->table_size * sizeof(*c->terms));
    c->ids = dagi_arena_alloc(c->arena, (n + 1) * sizeof(*c->ids));
    if (!c->terms || !c->ids)
        return DAGI_ETOOBIG;
    for (size_t k = 0; k < c->ns; k++) {
        struct sentence *s = &c->s[k];
        const struct sum_sentence *from = &scan->s[k];
        s->term_at = c->nids;
        for (size_t i = from->word_at; i < from->word_at + from->word_n; i++) {
            uint32_t id = term_id(c, scan->hashes[i]);
            if (c->terms[id].last != k + 1) {
                c->terms[id].last = (uint32_t)(k + 1);
                c->terms[id].df++;
                c->ids[c->nids++] = id;
            }
        }
        s->term_n = c->nids - s->term_at;
    }
    return DAGI_OK;
}

static void score(struct ctx *c)
{
    double n = (double)c->ns;
    for (size_t k = 0; k < c->table_size; k++)
        if (c->terms[k].tf)
            c->terms[k].weight =
                (1.0f + logf((float)c->terms[k].tf)) * logf(1.0f + (float)(n / c->terms[k].df));
    for (size_t k = 0; k < c->ns; k++) {
        struct sentence *s = &c->s[k];
        double sum = 0.0;
        for (size_t i = 0; i < s->term_n; i++)
            sum += c->terms[c->ids[s->term_at + i]].weight;
        s->score = s->term_n ? sum / sqrt((double)s->term_n) : 0.0;
    }
}

/* --- choosing --- */

static int by_rank(const struct sentence *a, const struct sentence *b)
{
    if (a->priority != b->priority)
        return a->priority ? -1 : 1;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return a->at < b->at ? -1 : a->at > b->at;
}

/* A stable merge sort by rank; tmp holds n pointers. */
static void rank(struct sentence **order, struct sentence **tmp, size_t n)
{
    if (n < 2)
        return;
    size_t h = n / 2;
    rank(order, tmp, h);
    rank(order + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = by_rank(order[i], order[j]) <= 0 ? order[i++] : order[j++];
    while (i < h)
        tmp[k++] = order[i++];
    while (j < n)
        tmp[k++] = order[j++];
    memcpy(order, tmp, n * sizeof(*tmp));
}

/* Jaccard over the two term sets: b's terms are stamped, a's counted. */
static bool near_duplicate(struct ctx *c, const struct sentence *a, const struct sentence *b)
{
    if (!a->term_n || !b->term_n)
        return false;
    uint32_t stamp = ++c->stamp;
    for (size_t j = 0; j < b->term_n; j++)
        c->terms[c->ids[b->term_at + j]].mark = stamp;
    size_t both = 0;
    for (size_t i = 0; i < a->term_n; i++)
        both += c->terms[c->ids[a->term_at + i]].mark == stamp;
    size_t either = a->term_n + b->term_n - both;
    return (double)both >= DUPLICATE_JACCARD * (double)either;
}

/* Writes t[at..at+len) with every run of white space as one space. */
static int append_collapsed(struct dagi_buf *out, const char *t, size_t at, size_t len)
{
    int rc = DAGI_OK;
    for (size_t i = at, end = at + len; i < end && rc == DAGI_OK;) {
        size_t start = i;
        while (i < end && !is_space((unsigned char)t[i]))
            i++;
        rc = dagi_buf_append(out, t + start, i - start);
        if (i < end && rc == DAGI_OK) {
            while (i < end && is_space((unsigned char)t[i]))
                i++;
            if (i < end)
                rc = dagi_buf_append_char(out, ' ');
        }
    }
    return rc;
}

/* The best sentence cut to `budget` tokens, then "…" (one token more). */
static int append_cut(struct dagi_buf *out, const char *t, const struct sentence *s,
                      unsigned budget, unsigned *tokens)
{
    unsigned used = 0;
    int rc = DAGI_OK;
    size_t i = s->at, end = s->at + s->len;
    bool any = false;
    while (i < end && rc == DAGI_OK) {
        while (i < end && is_space((unsigned char)t[i]))
            i++;
        size_t start = i;
        while (i < end && !is_space((unsigned char)t[i]))
            i++;
        if (i == start)
            break;
        unsigned cost = (unsigned)((i - start + 3) / 4);
        size_t take = i - start;
        if (used + cost > budget) {
            if (any || budget == 0)
                break;
            /* one word longer than the whole budget: its first bytes, cut
             * at a character boundary */
            take = (size_t)budget * 4;
            while (take > 0 && ((unsigned char)t[start + take] & 0xc0) == 0x80)
                take--;
            cost = budget;
        }
        if (any)
            rc = dagi_buf_append_char(out, ' ');
        if (!rc)
            rc = dagi_buf_append(out, t + start, take);
        used += cost;
        any = true;
        if (take < i - start)
            break;
    }
    if (!rc)
        rc = any ? dagi_buf_append_str(out, " " ELLIPSIS) : dagi_buf_append_str(out, ELLIPSIS);
    *tokens = used + 1;
    return rc;
}

/* Takes sentences in rank order while they fit, but no near-duplicate of
 * one taken. */
static void pick(struct ctx *c, struct sentence **order, struct sentence **chosen, size_t *nchosen,
                 unsigned *used, unsigned budget, bool stop_words_only_too)
{
    for (size_t k = 0; k < c->ns && *used < budget; k++) {
        struct sentence *s = order[k];
        if ((!s->term_n && !s->priority && !stop_words_only_too) || *used + s->tokens > budget)
            continue;
        /* against the latest few taken: a budget of thousands of tokens
         * must not make this quadratic */
        bool dup = false;
        for (size_t j = *nchosen > DUPLICATE_WINDOW ? *nchosen - DUPLICATE_WINDOW : 0;
             j < *nchosen && !dup; j++)
            dup = near_duplicate(c, s, chosen[j]);
        if (dup)
            continue;
        s->chosen = true;
        chosen[(*nchosen)++] = s;
        *used += s->tokens;
    }
}

static int choose_and_write(struct ctx *c, unsigned budget, struct dagi_buf *out,
                            struct dagi_summary_stats *st)
{
    if (!c->ns)
        return DAGI_OK;
    struct sentence **order = dagi_arena_alloc(c->arena, c->ns * sizeof(*order));
    struct sentence **chosen = dagi_arena_alloc(c->arena, c->ns * sizeof(*chosen));
    if (!order || !chosen)
        return DAGI_ETOOBIG;
    for (size_t k = 0; k < c->ns; k++)
        order[k] = &c->s[k];
    rank(order, chosen, c->ns); /* chosen is scratch until the picking */
    unsigned used = 0;
    size_t nchosen = 0;
    /* Sentences of stop words alone ("Ok, thanks!") only when nothing
     * else fits. */
    pick(c, order, chosen, &nchosen, &used, budget, false);
    if (!nchosen)
        pick(c, order, chosen, &nchosen, &used, budget, true);
    if (!nchosen) {
        st->kept = 1;
        st->cut = true;
        return append_cut(out, c->t, order[0], budget > 1 ? budget - 1 : 0, &st->tokens);
    }
    int rc = DAGI_OK;
    bool first = true;
    for (size_t k = 0; k < c->ns && rc == DAGI_OK; k++) {
        if (!c->s[k].chosen)
            continue;
        if (!first)
            rc = dagi_buf_append_char(out, ' ');
        if (!rc)
            rc = append_collapsed(out, c->t, c->s[k].at, c->s[k].len);
        first = false;
    }
    st->kept = nchosen;
    st->tokens = used;
    return rc;
}

/* --- the whole --- */

struct range {
    size_t from, to;
};

int dagi_summary_build(const struct dagi_summary_part *parts, size_t n, unsigned max_tokens,
                       struct dagi_buf *out, struct dagi_summary_stats *stats)
{
    struct dagi_summary_stats st = {0};
    unsigned budget = max_tokens ? max_tokens : DAGI_SUMMARY_DEFAULT_TOKENS;
    if (budget > DAGI_SUMMARY_MAX_TOKENS)
        return DAGI_EINVAL;
    size_t total = 0, cap = 1;
    for (size_t k = 0; k < n; k++) {
        total += parts[k].len;
        if (total > DAGI_SUMMARY_INPUT_MAX)
            return DAGI_ETOOBIG;
        cap += DAGI_PII_REDACTED_MAX(parts[k].len) + 1;
    }
    size_t old_len = out->len;
    struct dagi_buf work;
    dagi_buf_init(&work, cap);
    /* One allocation of the whole cap up front: appends never move the
     * text, so no copy of it is left behind in freed memory, and it costs
     * no reallocations.  (alloc > len + extra is what spares dagi_buf's
     * growth; the fields are the header's.) */
    work.data = dagi_xmalloc(cap + 1);
    work.data[0] = '\0';
    work.alloc = cap + 1;
    struct dagi_arena *arena = dagi_arena_new(64 * cap + (1u << 20));
    struct range *ranges = dagi_arena_alloc(arena, (n + 1) * sizeof(*ranges));
    size_t nranges = 0;
    struct ctx c = {.arena = arena};
    int rc = ranges ? DAGI_OK : DAGI_ETOOBIG;
    for (size_t k = 0; k < n && rc == DAGI_OK; k++) {
        size_t from = work.len;
        rc = dagi_pii_redact(parts[k].text, parts[k].len, &work, &st.redacted);
        if (!rc)
            rc = dagi_buf_append_char(&work, '\n');
        if (!rc && parts[k].priority)
            ranges[nranges++] = (struct range){from, work.len};
    }
    c.t = dagi_buf_str(&work);
    struct sum_scan scan = {0};
    if (!rc)
        rc = sum_scan_text(c.t, work.len, arena, &scan);
    if (!rc) {
        c.ns = scan.ns;
        c.s = dagi_arena_zalloc(arena, (c.ns + 1) * sizeof(*c.s));
        if (!c.s)
            rc = DAGI_ETOOBIG;
        for (size_t k = 0; k < c.ns && c.s; k++) {
            c.s[k].at = scan.s[k].at;
            c.s[k].len = scan.s[k].len;
            c.s[k].tokens = scan.s[k].tokens;
            for (size_t r = 0; r < nranges; r++)
                if (c.s[k].at >= ranges[r].from && c.s[k].at < ranges[r].to)
                    c.s[k].priority = true;
        }
    }
    if (!rc)
        rc = index_terms(&c, &scan);
    if (!rc) {
        score(&c);
        st.sentences = c.ns;
        rc = choose_and_write(&c, budget, out, &st);
    }
    sodium_memzero(work.data, work.len); /* the rest was never written */
    dagi_buf_release(&work);
    dagi_arena_free(arena);
    if (rc) {
        out->len = old_len;
        if (out->data)
            out->data[old_len] = '\0';
        return rc;
    }
    if (stats)
        *stats = st;
    return DAGI_OK;
}
