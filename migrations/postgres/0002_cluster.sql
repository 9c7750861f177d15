-- Replicas sharing the database, and who polls which server (see
-- src/domain/cluster.rs and migrations/sqlite/0015_cluster.sql).
CREATE TABLE replicas (
    id           TEXT   PRIMARY KEY,  -- random, new at every start
    name         TEXT   NOT NULL,     -- host name and process id, for people
    started_at   BIGINT NOT NULL,     -- Unix ms
    heartbeat_at BIGINT NOT NULL      -- Unix ms
);

CREATE TABLE server_leases (
    server_id  BIGINT PRIMARY KEY REFERENCES servers(id) ON DELETE CASCADE,
    owner      TEXT   NOT NULL,  -- replicas.id
    fence      BIGINT NOT NULL,  -- raised by every new owner; poll writes carry it
    expires_at BIGINT NOT NULL   -- Unix ms
);

-- Work that runs on one replica at a time (roll-ups and retention).
CREATE TABLE job_leases (
    name       TEXT   PRIMARY KEY,
    owner      TEXT   NOT NULL,
    expires_at BIGINT NOT NULL   -- Unix ms
);
