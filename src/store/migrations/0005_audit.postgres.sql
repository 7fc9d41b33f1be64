-- The tamper-evident audit log (src/auditlog/chain.c, docs/AUDIT.md),
-- PostgreSQL flavour.  Append-only: every record links to the one before
-- through prev_hash, and hash = BLAKE2b-256(prev_hash || the record's
-- encoding).  actor is a keyed pseudonym ("p_" + 32 hex), "system" or
-- "anonymous", never a principal.  metadata is JSON, not JSONB: json keeps
-- the exact text the hash covers, jsonb would reorder it.  Times are Unix ms.
-- Appenders take LOCK TABLE audit_log IN EXCLUSIVE MODE, so seq needs no
-- sequence: it is the last one plus one.
CREATE TABLE audit_log (
    seq       BIGINT PRIMARY KEY CHECK (seq > 0),
    event_id  TEXT NOT NULL UNIQUE,
    time_ms   BIGINT NOT NULL,
    service   TEXT NOT NULL,
    action    TEXT NOT NULL,
    actor     TEXT NOT NULL,
    subject   TEXT NOT NULL DEFAULT '',
    decision  TEXT NOT NULL,
    trace_id  TEXT NOT NULL DEFAULT '',
    metadata  JSON NOT NULL DEFAULT '{}',
    prev_hash BYTEA NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash      BYTEA NOT NULL CHECK (octet_length(hash) = 32)
);
CREATE INDEX idx_audit_log_time ON audit_log(time_ms);
CREATE INDEX idx_audit_log_actor ON audit_log(actor, seq);
CREATE INDEX idx_audit_log_service ON audit_log(service, action, seq);

-- Rows are never changed or removed (an upsert's DO UPDATE fires the UPDATE
-- trigger too).  42501 = insufficient_privilege.
CREATE FUNCTION audit_log_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = '42501';
END
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse();
