-- The identity graph's embedded backend (src/identity/graph_sql.c), SQLite
-- flavour.  Keys compare as bytes (SQLite's BINARY), as the PostgreSQL
-- flavour's COLLATE "C" does, so pages come in the same order on both.
-- Times are Unix ms.  attrs is a JSON object in canonical text (compact,
-- keys sorted: the library writes it so).  ACL edges name their ends by
-- reference ("user:alice", "tg:42", "team:core", "project:p1",
-- "agent:helion"), which no foreign key can follow: the library deletes
-- them with the nodes they name.
CREATE TABLE graph_users (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL DEFAULT '',
    attrs         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(attrs) AND json_type(attrs) = 'object'),
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
CREATE TABLE graph_teams (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL DEFAULT '',
    plan          TEXT NOT NULL DEFAULT 'free',
    attrs         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(attrs) AND json_type(attrs) = 'object'),
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
CREATE TABLE graph_projects (
    id            TEXT PRIMARY KEY,
    team_id       TEXT NOT NULL REFERENCES graph_teams(id) ON DELETE CASCADE,
    name          TEXT NOT NULL DEFAULT '',
    attrs         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(attrs) AND json_type(attrs) = 'object'),
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
CREATE INDEX idx_graph_projects_team ON graph_projects(team_id, id);
CREATE TABLE graph_members (
    team_id       TEXT NOT NULL REFERENCES graph_teams(id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL REFERENCES graph_users(id) ON DELETE CASCADE,
    role          TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX idx_graph_members_user ON graph_members(user_id, team_id);
-- A Telegram chat belongs to one team; agent NULL = every agent in it.
CREATE TABLE graph_chats (
    chat_id       INTEGER PRIMARY KEY,
    team_id       TEXT NOT NULL REFERENCES graph_teams(id) ON DELETE CASCADE,
    agent         TEXT,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
CREATE INDEX idx_graph_chats_team ON graph_chats(team_id, chat_id);
CREATE TABLE graph_acl (
    subject       TEXT NOT NULL,
    relation      TEXT NOT NULL,
    object        TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (subject, relation, object)
);
CREATE INDEX idx_graph_acl_object ON graph_acl(object, relation, subject);
