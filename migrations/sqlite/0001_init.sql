-- Tollgate schema, SQLite. Instants are Unix seconds (UTC) in INTEGER columns;
-- byte counts are INTEGER. Rows are written by one connection at a time.

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
    id                          INTEGER PRIMARY KEY,
    name                        TEXT    NOT NULL UNIQUE,
    protocol                    TEXT    NOT NULL CHECK (protocol IN ('wireguard', 'amneziawg', 'openvpn')),
    host                        TEXT    NOT NULL,
    port                        INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    ssh_user                    TEXT    NOT NULL,
    ssh_key_path                TEXT,    -- a key file on the panel's machine, or
    ssh_private_key             TEXT,    -- the key itself; never returned by the API
    interface                   TEXT,    -- WireGuard and AmneziaWG
    command_prefix              TEXT    NOT NULL DEFAULT '[]',  -- JSON array of validated words
    openvpn_status_path         TEXT,    -- OpenVPN: a status file to read, and/or
    openvpn_management_port     INTEGER CHECK (openvpn_management_port BETWEEN 1 AND 65535),
    openvpn_management_password TEXT,    -- never returned by the API
    host_key                    TEXT,    -- pinned OpenSSH public key of the host
    host_key_fingerprint        TEXT,
    created_at                  INTEGER NOT NULL,
    last_poll_at                INTEGER,
    last_success_at             INTEGER,
    last_error                  TEXT,
    consecutive_failures        INTEGER NOT NULL DEFAULT 0,
    last_sample_at              INTEGER, -- the last applied poll (Unix ms); older or equal polls are ignored
    polls_applied               INTEGER NOT NULL DEFAULT 0,
    total_rx                    INTEGER NOT NULL DEFAULT 0,
    total_tx                    INTEGER NOT NULL DEFAULT 0,
    CHECK ((ssh_key_path IS NULL) <> (ssh_private_key IS NULL)),
    CHECK (protocol = 'openvpn' OR interface IS NOT NULL),
    CHECK (protocol <> 'openvpn' OR openvpn_status_path IS NOT NULL OR openvpn_management_port IS NOT NULL)
);

-- A client: a WireGuard/AmneziaWG peer (identity = public key) or an OpenVPN
-- user (identity = common name) on one server.
CREATE TABLE clients (
    id                   INTEGER PRIMARY KEY,
    server_id            INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    identity             TEXT    NOT NULL,
    name                 TEXT,
    username             TEXT,    -- OpenVPN auth username, when reported
    access               TEXT    NOT NULL DEFAULT 'active' CHECK (access IN ('active', 'disabled')),
    managed              INTEGER NOT NULL DEFAULT 0,  -- 1: part of the wanted configuration (see `sync`)
    desired_allowed_ips  TEXT,    -- managed peers: the allowed IPs the host should have
    endpoint             TEXT,
    allowed_ips          TEXT    NOT NULL DEFAULT '',  -- comma-separated, as last seen
    virtual_ip           TEXT,
    has_preshared_key    INTEGER NOT NULL DEFAULT 0,
    persistent_keepalive INTEGER,
    latest_handshake     INTEGER, -- WireGuard; NULL: never connected
    last_seen_at         INTEGER, -- last sign of life: handshake, traffic, or a live session
    rx_counter           INTEGER NOT NULL DEFAULT 0,  -- WireGuard: the peer's counters at the
    tx_counter           INTEGER NOT NULL DEFAULT 0,  -- last poll that saw it
    on_host              INTEGER NOT NULL DEFAULT 1,  -- WireGuard: in the last poll; OpenVPN: connected
    total_rx             INTEGER NOT NULL DEFAULT 0,  -- lifetime, as accounted
    total_tx             INTEGER NOT NULL DEFAULT 0,
    first_seen_at        INTEGER NOT NULL,
    last_sync_at         INTEGER NOT NULL,
    UNIQUE (server_id, identity)
);

-- VPN sessions. WireGuard: from a fresh handshake until the handshake is
-- stale. OpenVPN: one CLIENT_LIST entry, whose counters are kept here.
CREATE TABLE connections (
    id              INTEGER PRIMARY KEY,
    server_id       INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    client_id       INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    session_key     TEXT    NOT NULL,  -- wg:{public_key} or ovpn:{server}:{client_id}
    source          TEXT    NOT NULL,  -- what the counters belong to (OpenVPN: client id and start)
    protocol        TEXT    NOT NULL,
    connected_at    INTEGER NOT NULL,
    disconnected_at INTEGER,
    last_seen_at    INTEGER NOT NULL,
    endpoint        TEXT,              -- the client's real address
    virtual_ip      TEXT,
    rx              INTEGER NOT NULL DEFAULT 0,  -- bytes during this session
    tx              INTEGER NOT NULL DEFAULT 0,
    rx_counter      INTEGER NOT NULL DEFAULT 0,  -- OpenVPN: the session's counters at the last poll
    tx_counter      INTEGER NOT NULL DEFAULT 0,
    openvpn_client_id INTEGER
);
CREATE UNIQUE INDEX connections_open ON connections (server_id, source) WHERE disconnected_at IS NULL;
CREATE INDEX connections_by_client ON connections (client_id, connected_at);
CREATE INDEX connections_closed ON connections (disconnected_at) WHERE disconnected_at IS NOT NULL;

-- Ledgers. Monthly: calendar months in the configured time zone.
CREATE TABLE usage_monthly (
    client_id INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    month     TEXT    NOT NULL,  -- YYYY-MM
    rx        INTEGER NOT NULL DEFAULT 0,
    tx        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (client_id, month)
) WITHOUT ROWID;

CREATE TABLE server_usage_monthly (
    server_id INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    month     TEXT    NOT NULL,
    rx        INTEGER NOT NULL DEFAULT 0,
    tx        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (server_id, month)
) WITHOUT ROWID;

-- Raw samples (one row per client and poll that moved bytes), kept for a
-- bounded time and rolled up into hourly (UTC hours) and daily (configured
-- time zone) buckets.
CREATE TABLE traffic_samples (
    client_id INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    at        INTEGER NOT NULL,
    rx        INTEGER NOT NULL,
    tx        INTEGER NOT NULL
);
CREATE INDEX traffic_samples_by_time ON traffic_samples (at);

CREATE TABLE traffic_hourly (
    client_id INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    hour      INTEGER NOT NULL,  -- Unix seconds at the start of the UTC hour
    rx        INTEGER NOT NULL DEFAULT 0,
    tx        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (client_id, hour)
) WITHOUT ROWID;

CREATE TABLE traffic_daily (
    client_id INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    day       TEXT    NOT NULL,  -- YYYY-MM-DD
    rx        INTEGER NOT NULL DEFAULT 0,
    tx        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (client_id, day)
) WITHOUT ROWID;

-- Samples with `at` below this have been rolled up.
CREATE TABLE rollup_state (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    rolled_up_to  INTEGER NOT NULL
);
INSERT INTO rollup_state (id, rolled_up_to) VALUES (1, 0);
