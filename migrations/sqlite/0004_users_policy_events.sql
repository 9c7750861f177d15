-- Users (people) own clients (devices); client policy; the event log.

CREATE TABLE users (
    id              INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL,
    email           TEXT,
    max_connections INTEGER NOT NULL DEFAULT 0 CHECK (max_connections >= 0),  -- 0: no limit
    created_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX users_by_email ON users (email COLLATE NOCASE) WHERE email IS NOT NULL;

ALTER TABLE clients ADD COLUMN user_id INTEGER REFERENCES users(id) ON DELETE SET NULL;
ALTER TABLE clients ADD COLUMN email TEXT;
-- Bytes, RX + TX, in the limit's period; NULL: no limit.
ALTER TABLE clients ADD COLUMN traffic_limit INTEGER CHECK (traffic_limit IS NULL OR traffic_limit >= 0);
ALTER TABLE clients ADD COLUMN traffic_warn_threshold INTEGER NOT NULL DEFAULT 80
    CHECK (traffic_warn_threshold BETWEEN 1 AND 100);
ALTER TABLE clients ADD COLUMN limit_period TEXT NOT NULL DEFAULT 'lifetime'
    CHECK (limit_period IN ('lifetime', 'monthly'));
ALTER TABLE clients ADD COLUMN reset_day INTEGER CHECK (reset_day IS NULL OR reset_day BETWEEN 1 AND 31);
ALTER TABLE clients ADD COLUMN expiry_date INTEGER;  -- Unix seconds; NULL: never
ALTER TABLE clients ADD COLUMN disabled_reason TEXT
    CHECK (disabled_reason IS NULL OR disabled_reason IN ('manual', 'traffic_limit', 'expired', 'device_limit'));
CREATE INDEX clients_by_user ON clients (user_id) WHERE user_id IS NOT NULL;

-- Every action, by an admin or the enforcer. Ids of clients, users and
-- servers are kept without foreign keys, with a label, so the history stays
-- when they are deleted.
CREATE TABLE events (
    id        INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    actor     TEXT    NOT NULL,  -- an admin's name, or 'enforcer'
    action    TEXT    NOT NULL,
    reason    TEXT,
    figures   TEXT,
    client_id INTEGER,
    user_id   INTEGER,
    server_id INTEGER,
    label     TEXT    NOT NULL DEFAULT ''  -- the client's name or identity when it happened
);
CREATE INDEX events_by_time ON events (at);
CREATE INDEX events_by_client ON events (client_id, at);
CREATE INDEX events_by_server ON events (server_id, at);
