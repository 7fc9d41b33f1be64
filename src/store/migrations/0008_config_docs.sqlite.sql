-- The config registry's documents (src/registry/registry_store.c), SQLite
-- flavour.  History is never rewritten: every change of the set is one
-- revision, and every document it changed gets a new version - a rollback
-- too (a new version with an old text), and a deletion (deleted = 1, text
-- '').  The current set is the newest version of each (kind, name) that is
-- not a deletion; the current revision is the highest.  Times are Unix ms.
CREATE TABLE config_revisions (
    revision      INTEGER PRIMARY KEY CHECK (revision >= 1),
    action        TEXT NOT NULL CHECK (action IN ('import', 'push', 'rollback', 'delete')),
    author        TEXT NOT NULL,
    comment       TEXT NOT NULL DEFAULT '',
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE config_doc_versions (
    kind             TEXT NOT NULL CHECK (kind IN ('agents', 'prompts', 'routing', 'policies',
                                                   'quotas', 'flags', 'lists')),
    name             TEXT NOT NULL,
    version          INTEGER NOT NULL CHECK (version >= 1),
    deleted          INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
    text             TEXT NOT NULL,
    checksum         TEXT NOT NULL,   -- BLAKE2b-256 of text, hex
    author           TEXT NOT NULL,
    comment          TEXT NOT NULL DEFAULT '',
    created_at_ms    INTEGER NOT NULL,
    revision         INTEGER NOT NULL REFERENCES config_revisions(revision),
    action           TEXT NOT NULL CHECK (action IN ('import', 'push', 'rollback', 'delete')),
    rolled_back_from INTEGER,         -- a rollback: the version whose text it restored
    PRIMARY KEY (kind, name, version)
);
-- what a revision made current
CREATE INDEX idx_config_doc_versions_revision ON config_doc_versions(revision);
