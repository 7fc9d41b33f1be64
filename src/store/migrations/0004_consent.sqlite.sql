-- Consent to share confidential content with an agent's model
-- (src/privacy/consent.c, docs/PRIVACY_GATE.md), SQLite flavour.
-- privacy_consent holds the current state per (user principal, agent);
-- privacy_consent_history every change, append-only: who made it, when,
-- through what (api, telegram, admin).  Times are Unix ms.
CREATE TABLE privacy_consent (
    user_principal TEXT NOT NULL,
    agent_id       TEXT NOT NULL,
    granted        INTEGER NOT NULL CHECK (granted IN (0, 1)),
    source         TEXT NOT NULL CHECK (source IN ('api', 'telegram', 'admin')),
    changed_by     TEXT NOT NULL,
    updated_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (user_principal, agent_id)
);
CREATE TABLE privacy_consent_history (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    user_principal TEXT NOT NULL,
    agent_id       TEXT NOT NULL,
    granted        INTEGER NOT NULL CHECK (granted IN (0, 1)),
    source         TEXT NOT NULL CHECK (source IN ('api', 'telegram', 'admin')),
    changed_by     TEXT NOT NULL,
    changed_at_ms  INTEGER NOT NULL
);
CREATE INDEX idx_privacy_consent_history_user
    ON privacy_consent_history(user_principal, agent_id, id);
CREATE TRIGGER privacy_consent_history_no_update BEFORE UPDATE ON privacy_consent_history
BEGIN
    SELECT RAISE(ABORT, 'privacy_consent_history is append-only');
END;
CREATE TRIGGER privacy_consent_history_no_delete BEFORE DELETE ON privacy_consent_history
BEGIN
    SELECT RAISE(ABORT, 'privacy_consent_history is append-only');
END;
