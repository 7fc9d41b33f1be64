-- User API keys (src/access/keystore.c), SQLite flavour.  Only a keyed
-- BLAKE2b-256 of each key is stored, never the key.  Times are Unix ms;
-- NULL where unset.  roles is a JSON array of role names.
CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY,
    hash            BLOB NOT NULL CHECK (length(hash) = 32),
    user_id         TEXT NOT NULL,
    team            TEXT,
    roles           TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(roles)),
    name            TEXT,
    created_at_ms   INTEGER NOT NULL,
    expires_at_ms   INTEGER,
    revoked_at_ms   INTEGER,
    last_used_at_ms INTEGER
);
CREATE INDEX idx_api_keys_user ON api_keys(user_id, created_at_ms);
