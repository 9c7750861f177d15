-- Tollgate schema, SQLite. Instants are Unix seconds (UTC) in INTEGER columns.

CREATE TABLE admins (
    id            INTEGER PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,          -- argon2id PHC string
    created_at    INTEGER NOT NULL
);

-- Sessions are found by the SHA-256 of the cookie's token; the token itself is never stored.
CREATE TABLE sessions (
    token_hash BLOB    PRIMARY KEY,
    admin_id   INTEGER NOT NULL REFERENCES admins(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

CREATE TABLE servers (
    id                   INTEGER PRIMARY KEY,
    name                 TEXT    NOT NULL UNIQUE,
    protocol             TEXT    NOT NULL CHECK (protocol IN ('wireguard')),
    host                 TEXT    NOT NULL,
    port                 INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    ssh_user             TEXT    NOT NULL,
    ssh_key_path         TEXT,               -- a key file on the panel's machine, or
    ssh_private_key      TEXT,               -- the key itself; never returned by the API
    interface            TEXT    NOT NULL,
    command_prefix       TEXT    NOT NULL DEFAULT '[]',  -- JSON array of validated words
    host_key             TEXT,               -- pinned OpenSSH public key of the host
    host_key_fingerprint TEXT,
    created_at           INTEGER NOT NULL,
    last_poll_at         INTEGER,
    last_success_at      INTEGER,
    last_error           TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    CHECK ((ssh_key_path IS NULL) <> (ssh_private_key IS NULL))
);

CREATE TABLE clients (
    id                   INTEGER PRIMARY KEY,
    server_id            INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    public_key           TEXT    NOT NULL,
    name                 TEXT,
    access               TEXT    NOT NULL DEFAULT 'active' CHECK (access IN ('active', 'disabled')),
    endpoint             TEXT,
    allowed_ips          TEXT    NOT NULL DEFAULT '',    -- comma-separated networks
    has_preshared_key    INTEGER NOT NULL DEFAULT 0,
    persistent_keepalive INTEGER,
    latest_handshake     INTEGER,            -- NULL: never connected
    rx_bytes             INTEGER NOT NULL DEFAULT 0,     -- host's counters at the last poll
    tx_bytes             INTEGER NOT NULL DEFAULT 0,
    on_host              INTEGER NOT NULL DEFAULT 1,     -- present in the last poll
    first_seen_at        INTEGER NOT NULL,
    last_sync_at         INTEGER NOT NULL,
    UNIQUE (server_id, public_key)
);
