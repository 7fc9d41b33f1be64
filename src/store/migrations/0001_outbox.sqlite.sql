-- The outbox (seed 5.2), SQLite flavour: portable types, seq from the rowid.
CREATE TABLE outbox (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL UNIQUE,
    aggregate_type TEXT NOT NULL,
    aggregate_id   TEXT NOT NULL,
    event_type     TEXT NOT NULL,
    subject        TEXT NOT NULL,
    headers        TEXT,
    payload        TEXT NOT NULL CHECK (json_valid(payload)),
    created_at     INTEGER NOT NULL,
    published_at   INTEGER,
    status         TEXT NOT NULL DEFAULT 'pending'
);
CREATE INDEX idx_outbox_pending ON outbox(seq) WHERE status = 'pending';

CREATE TABLE outbox_lease (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
