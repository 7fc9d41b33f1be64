-- The tamper-evident audit log (src/auditlog/chain.c, docs/AUDIT.md), SQLite
-- flavour.  Append-only: every record links to the one before through
-- prev_hash, and hash = BLAKE2b-256(prev_hash || the record's encoding).
-- actor is a keyed pseudonym ("p_" + 32 hex), "system" or "anonymous", never
-- a principal.  metadata is the exact JSON text the hash covers.  Times are
-- Unix ms.
CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY CHECK (seq > 0),
    event_id  TEXT NOT NULL UNIQUE,
    time_ms   INTEGER NOT NULL,
    service   TEXT NOT NULL,
    action    TEXT NOT NULL,
    actor     TEXT NOT NULL,
    subject   TEXT NOT NULL DEFAULT '',
    decision  TEXT NOT NULL,
    trace_id  TEXT NOT NULL DEFAULT '',
    metadata  TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32),
    hash      BLOB NOT NULL CHECK (length(hash) = 32)
);
CREATE INDEX idx_audit_log_time ON audit_log(time_ms);
CREATE INDEX idx_audit_log_actor ON audit_log(actor, seq);
CREATE INDEX idx_audit_log_service ON audit_log(service, action, seq);

-- Rows are never changed or removed.  INSERT OR REPLACE would delete the row
-- it replaces without firing a DELETE trigger (SQLite fires those only with
-- recursive_triggers on), so an insert that would collide is refused too.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused');
END;
CREATE TRIGGER audit_log_no_replace BEFORE INSERT ON audit_log
WHEN EXISTS (SELECT 1 FROM audit_log WHERE seq = NEW.seq OR event_id = NEW.event_id)
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: a record is never replaced');
END;
