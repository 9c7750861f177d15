-- Live client figures move to one packed row per server (see
-- src/server/store/state.rs): a poll writes one row whatever the number of
-- peers. Raw samples become one row per poll.

-- The columns a poll used to rewrite now hold a client's figures as of its
-- insertion (or of this upgrade); a server without a state row starts its
-- state from them.
ALTER TABLE clients RENAME COLUMN rx_counter TO seed_rx_counter;
ALTER TABLE clients RENAME COLUMN tx_counter TO seed_tx_counter;
ALTER TABLE clients RENAME COLUMN total_rx TO seed_total_rx;
ALTER TABLE clients RENAME COLUMN total_tx TO seed_total_tx;
ALTER TABLE clients RENAME COLUMN latest_handshake TO seed_latest_handshake;
ALTER TABLE clients RENAME COLUMN last_seen_at TO seed_last_seen_at;
ALTER TABLE clients RENAME COLUMN on_host TO seed_on_host;
ALTER TABLE clients RENAME COLUMN last_sync_at TO seed_last_sync_at;

-- Bumped whenever a client row is added or removed, so a state row written
-- before that is known to be out of date.
ALTER TABLE servers ADD COLUMN clients_version INTEGER NOT NULL DEFAULT 0;
CREATE TRIGGER clients_added AFTER INSERT ON clients BEGIN
    UPDATE servers SET clients_version = clients_version + 1 WHERE id = NEW.server_id;
END;
CREATE TRIGGER clients_removed AFTER DELETE ON clients BEGIN
    UPDATE servers SET clients_version = clients_version + 1 WHERE id = OLD.server_id;
END;

CREATE TABLE server_state (
    server_id       INTEGER PRIMARY KEY REFERENCES servers(id) ON DELETE CASCADE,
    clients_version INTEGER NOT NULL,  -- servers.clients_version when written
    data            BLOB    NOT NULL
);

-- WireGuard sessions: the client's lifetime total when the session began.
-- An open session's bytes are the client's total minus these; a closed
-- session's are frozen in rx/tx.
ALTER TABLE connections ADD COLUMN base_rx INTEGER;
ALTER TABLE connections ADD COLUMN base_tx INTEGER;
UPDATE connections
   SET base_rx = (SELECT c.seed_total_rx FROM clients c WHERE c.id = connections.client_id) - rx,
       base_tx = (SELECT c.seed_total_tx FROM clients c WHERE c.id = connections.client_id) - tx
 WHERE disconnected_at IS NULL AND protocol <> 'openvpn';

-- Raw samples: one row per server and poll, `data` a JSON array of
-- [client_id, rx, tx] for the clients that moved bytes.
CREATE TABLE traffic_polls (
    server_id INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    at        INTEGER NOT NULL,
    data      TEXT    NOT NULL
);
CREATE INDEX traffic_polls_by_time ON traffic_polls (at);
INSERT INTO traffic_polls (server_id, at, data)
SELECT c.server_id, t.at, json_group_array(json_array(t.client_id, t.rx, t.tx))
  FROM traffic_samples t JOIN clients c ON c.id = t.client_id
 GROUP BY c.server_id, t.at;
DROP TABLE traffic_samples;
