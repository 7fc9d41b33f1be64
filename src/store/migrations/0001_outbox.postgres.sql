-- The outbox (seed 5.2), PostgreSQL flavour.  seq comes from a sequence at
-- insert time, not at commit, so outbox inserts are serialised with a
-- transaction-scoped advisory lock (src/store/outbox.c): a second writer
-- waits at its insert until the first commits, and seq order is commit order.
CREATE TABLE outbox (
    seq            BIGSERIAL PRIMARY KEY,
    id             UUID NOT NULL UNIQUE,
    aggregate_type VARCHAR(255) NOT NULL,
    aggregate_id   VARCHAR(255) NOT NULL,
    event_type     VARCHAR(255) NOT NULL,
    subject        VARCHAR(255) NOT NULL,
    headers        JSONB,
    payload        JSONB NOT NULL,
    created_at     BIGINT NOT NULL,
    published_at   BIGINT,
    status         VARCHAR(20) NOT NULL DEFAULT 'pending'
);
CREATE INDEX idx_outbox_pending ON outbox(seq) WHERE status = 'pending';

CREATE TABLE outbox_lease (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
