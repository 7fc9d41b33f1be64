-- Telegram updates being or already answered (src/telegram/tg_store.c),
-- PostgreSQL flavour: a redelivered update that was answered is not
-- answered again.  Only ids and a state: never the message.  Times are Unix ms.
CREATE TABLE telegram_updates (
    agent_id      VARCHAR(64) NOT NULL,
    update_id     BIGINT NOT NULL,
    state         VARCHAR(16) NOT NULL CHECK (state IN ('processing', 'done')),
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (agent_id, update_id)
);
CREATE INDEX idx_telegram_updates_age ON telegram_updates(updated_at_ms);
