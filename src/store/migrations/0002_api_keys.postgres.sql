-- User API keys (src/access/keystore.c), PostgreSQL flavour.  Only a keyed
-- BLAKE2b-256 of each key is stored, never the key.  Times are Unix ms;
-- NULL where unset.  roles is a JSON array of role names.
CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY,
    hash            BYTEA NOT NULL CHECK (octet_length(hash) = 32),
    user_id         TEXT NOT NULL,
    team            TEXT,
    roles           JSONB NOT NULL DEFAULT '[]',
    name            TEXT,
    created_at_ms   BIGINT NOT NULL,
    expires_at_ms   BIGINT,
    revoked_at_ms   BIGINT,
    last_used_at_ms BIGINT
);
CREATE INDEX idx_api_keys_user ON api_keys(user_id, created_at_ms);
