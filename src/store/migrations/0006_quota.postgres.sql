-- Quota counters and reservations in flight (src/quota/quota_store_db.c),
-- PostgreSQL flavour.  Times are Unix ms (the business clock).  Writers of
-- one counter queue on a session advisory lock taken before their
-- SERIALIZABLE transaction, so a hot counter is a queue, not a retry storm.
--
-- One counter per (budget, per, subject): the window it covers and what was
-- spent in it.  A counter found in an older window starts the current one
-- at zero (the reserve that finds it rewrites the row).
CREATE TABLE quota_counters (
    budget_id       TEXT NOT NULL,
    per             TEXT NOT NULL CHECK (per IN ('user', 'team', 'agent')),
    subject_id      TEXT NOT NULL,
    window_start_ms BIGINT NOT NULL,
    window_end_ms   BIGINT NOT NULL,
    requests        BIGINT NOT NULL DEFAULT 0,
    tokens_used     BIGINT NOT NULL DEFAULT 0,
    updated_at_ms   BIGINT NOT NULL,
    PRIMARY KEY (budget_id, per, subject_id)
);

-- What each reservation in flight holds on each counter.  A hold counts
-- while expires_at_ms > now; settle and release delete it; purge removes
-- holds a day after they expired (their process died before settling);
-- it scans the table, which holds only what is in flight, rather than
-- every reserve and settle paying for one more index.
CREATE TABLE quota_holds (
    reservation_id  TEXT NOT NULL,
    budget_id       TEXT NOT NULL,
    per             TEXT NOT NULL,
    subject_id      TEXT NOT NULL,
    window_start_ms BIGINT NOT NULL,
    tokens          BIGINT NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    expires_at_ms   BIGINT NOT NULL,
    PRIMARY KEY (reservation_id, budget_id)
);
CREATE INDEX idx_quota_holds_counter
    ON quota_holds(budget_id, per, subject_id, window_start_ms, expires_at_ms);
