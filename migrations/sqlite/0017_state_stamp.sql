-- A random stamp written with every state row: a replica that kept a
-- server's state in memory since it wrote it knows, by the stamp alone,
-- that the row is still that state (see src/server/store/state_cache.rs).
ALTER TABLE server_state ADD COLUMN stamp INTEGER NOT NULL DEFAULT 0;
