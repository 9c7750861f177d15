-- Replicas sharing one database, and who polls which server (see
-- src/domain/cluster.rs). On SQLite there is normally one replica; the
-- leases still keep a second `tollgate serve` on the same file from
-- polling the same hosts.
CREATE TABLE replicas (
    id           TEXT    PRIMARY KEY,  -- random, new at every start
    name         TEXT    NOT NULL,     -- host name and process id, for people
    started_at   INTEGER NOT NULL,     -- Unix ms
    heartbeat_at INTEGER NOT NULL      -- Unix ms
);

CREATE TABLE server_leases (
    server_id  INTEGER PRIMARY KEY REFERENCES servers(id) ON DELETE CASCADE,
    owner      TEXT    NOT NULL,  -- replicas.id
    fence      INTEGER NOT NULL,  -- raised by every new owner; poll writes carry it
    expires_at INTEGER NOT NULL   -- Unix ms
);

-- Work that runs on one replica at a time (roll-ups and retention).
CREATE TABLE job_leases (
    name       TEXT    PRIMARY KEY,
    owner      TEXT    NOT NULL,
    expires_at INTEGER NOT NULL   -- Unix ms
);
