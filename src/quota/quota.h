/* Quotas (seed 1.2, 5.1): budgets of requests and tokens per user, team and
 * agent, per UTC minute, day or calendar month.  This header is the budgets
 * document, the window arithmetic and the subject encoding; the counters
 * live behind quota_store.h, the loop side in quota_async.h, the answers to
 * a refused request in quota_reply.h, the node's service and admin routes
 * in quota_node.h.  docs/QUOTAS.md is the operator's view.
 *
 * The document (config/quotas.yml; the config registry keeps it as kind
 * "quotas", name "quotas.yml"):
 *
 *     budgets:
 *       - id: free-user-daily   # [a-z0-9][a-z0-9_-]*, at most 64; unique
 *         per: user             # user | team | agent: whose counter
 *         match: "*"            # every user/team/agent, or one id
 *         agents: [helion]      # optional: only requests to these agents count
 *         window: day           # minute | day | month (UTC calendar windows)
 *         requests: 5           # optional limit (at least one of the two)
 *         tokens: 10000         # optional limit: prompt + completion
 *
 * A budget applies to a request when the request has the budget's subject
 * (per: team needs a team, per: agent an agent), `match` is "*" or that
 * subject's id, and `agents` is absent or names the request's agent.  Each
 * budget that applies has its own counter, keyed by (budget id, per,
 * subject id); a request must fit every one of them.
 *
 * Memory: a loaded document is immutable and reference counted, so the
 * current one can be swapped while requests still hold the previous one.
 * Safe to share between threads. */
#ifndef DAGI_QUOTA_H
#define DAGI_QUOTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/err.h"

#define DAGI_QUOTA_ID_MAX 64       /* a budget id */
#define DAGI_QUOTA_NAME_MAX 128    /* a user, team or agent id */
#define DAGI_QUOTA_MAX_BUDGETS 256 /* budgets in one document */
#define DAGI_QUOTA_MAX_AGENTS 64   /* names in one budget's agents list */
/* A subject token (below) of a DAGI_QUOTA_NAME_MAX id, with its NUL. */
#define DAGI_QUOTA_TOKEN_MAX (3 * DAGI_QUOTA_NAME_MAX + 1)

enum dagi_quota_per { DAGI_QUOTA_PER_USER, DAGI_QUOTA_PER_TEAM, DAGI_QUOTA_PER_AGENT };
enum dagi_quota_window { DAGI_QUOTA_MINUTE, DAGI_QUOTA_DAY, DAGI_QUOTA_MONTH };

/* "user" / "team" / "agent"; "minute" / "day" / "month". */
const char *dagi_quota_per_name(int per);
const char *dagi_quota_window_name(int window);

/* One budget as bound from the document. */
struct dagi_quota_budget {
    char *id;
    int per;                        /* enum dagi_quota_per */
    char *match;                    /* "*" or one id */
    struct dagi_cfg_strings agents; /* empty = every agent */
    int window;                     /* enum dagi_quota_window */
    int64_t requests;               /* 0 = no request limit */
    int64_t tokens;                 /* 0 = no token limit */
};

struct dagi_quota_budgets;

/* The schema of the document, for `dagi config docs` and the registry. */
extern const struct dagi_cfg_schema dagi_quota_schema;

/* Validates a document: 0, or DAGI_EINVAL / DAGI_EPARSE / DAGI_ETOOBIG
 * with every problem in errs as "<source>:<line>: key.path: reason".
 * `source` names the text in errors ("quotas.yml"). */
int dagi_quota_check_text(const char *text, size_t len, const char *source,
                          struct dagi_cfg_errors *errs);

/* Compiles a document: 0 and *out (one reference), or the errors of
 * dagi_quota_check_text.  An empty text is a valid document with no
 * budgets. */
int dagi_quota_budgets_load(const char *text, size_t len, const char *source,
                            struct dagi_quota_budgets **out, struct dagi_cfg_errors *errs);
/* The same from a file (errors name the path); DAGI_EIO when unreadable. */
int dagi_quota_budgets_load_file(const char *path, struct dagi_quota_budgets **out,
                                 struct dagi_cfg_errors *errs);
/* A document with no budgets (nothing is ever limited). */
struct dagi_quota_budgets *dagi_quota_budgets_empty(void);

struct dagi_quota_budgets *dagi_quota_budgets_ref(struct dagi_quota_budgets *b);
/* NULL is ignored. */
void dagi_quota_budgets_unref(struct dagi_quota_budgets *b);

/* Budgets in document order (the order in which a request is checked, so
 * a block names the first budget that refuses). */
size_t dagi_quota_budgets_count(const struct dagi_quota_budgets *b);
const struct dagi_quota_budget *dagi_quota_budgets_at(const struct dagi_quota_budgets *b, size_t i);
/* By id, or NULL. */
const struct dagi_quota_budget *dagi_quota_budgets_find(const struct dagi_quota_budgets *b,
                                                        const char *id);

/* Who a request is for.  Strings are borrowed for the call. */
struct dagi_quota_subject {
    const char *user;     /* the principal: "olena", "tg:42"; required */
    const char *team;     /* NULL or "" = none */
    const char *agent;    /* NULL or "" = none */
    const char *trace_id; /* carried into the events' envelopes; NULL = none */
};

/* Whether `budget` applies to `s`; if so, *subject_id (may be NULL) is the
 * id its counter is kept under (s->user, s->team or s->agent). */
bool dagi_quota_budget_applies(const struct dagi_quota_budget *budget,
                               const struct dagi_quota_subject *s, const char **subject_id);

/* Checks a subject: a user of 1..DAGI_QUOTA_NAME_MAX bytes, team and agent
 * absent or as long at most, no control characters.  0 or DAGI_EINVAL. */
int dagi_quota_subject_check(const struct dagi_quota_subject *s, struct dagi_error *err);

/* --- windows (UTC calendar) --- */

/* The window of kind `window` that contains t_ms: [*start_ms, *end_ms).
 * end is the reset time: the next minute, the next 00:00 UTC, or 00:00 UTC
 * on the first of the next month. */
void dagi_quota_window_bounds(int window, int64_t t_ms, int64_t *start_ms, int64_t *end_ms);
/* The same for now (dagi_clock_now_ms(): the clock tests can move). */
void dagi_quota_window_now(int window, int64_t *start_ms, int64_t *end_ms);
/* RFC 3339 UTC with milliseconds, "2026-11-28T00:00:00.000Z"; out must
 * hold 32 bytes. */
void dagi_quota_format_time(int64_t t_ms, char out[32]);

/* --- subjects on the bus --- */

/* The NATS subject token for an id: bytes [A-Za-z0-9_-] are kept, ':'
 * becomes '_' ("tg:42" -> "tg_42"), every other byte (dots, wildcards,
 * spaces, UTF-8) becomes "%XX" (upper-case hex), so the token is never
 * empty of meaning, never splits a subject and never matches a wildcard.
 * Not reversible for '_' vs ':' ("tg_42" is also "tg_42"): events carry
 * the exact id in their data.  Returns the length, or DAGI_EINVAL for an
 * empty id or DAGI_ETOOBIG when out is too small (DAGI_QUOTA_TOKEN_MAX
 * always suffices for a valid id). */
int dagi_quota_subject_token(const char *id, char *out, size_t out_len);

#endif
