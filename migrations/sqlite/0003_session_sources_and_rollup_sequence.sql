-- OpenVPN sessions are named alike in every status form: `source` becomes
-- "common name|real address" (see OvpnSession::source), with the start kept
-- apart so that a version-1 file's local time can be matched to the exact
-- one the management interface gives.
ALTER TABLE connections ADD COLUMN source_since INTEGER;
ALTER TABLE connections ADD COLUMN source_exact INTEGER NOT NULL DEFAULT 1;
-- Two open sessions may now share a source (for a moment, within a poll).
DROP INDEX connections_open;
-- The start is the digits after the last '@' (a common name may hold one);
-- the old keys wrote an unknown start as 0.
UPDATE connections
   SET source_since = NULLIF(CAST(substr(source, length(rtrim(source, '0123456789')) + 1) AS INTEGER), 0),
       source_exact = (source LIKE 'cid:%'),
       source = (SELECT c.identity FROM clients c WHERE c.id = connections.client_id) || '|' ||
                CASE WHEN endpoint IS NOT NULL THEN endpoint
                     WHEN openvpn_client_id IS NOT NULL THEN 'cid:' || openvpn_client_id
                     ELSE '' END
 WHERE protocol = 'openvpn';
-- Open sessions are read on every poll; closed ones are looked up by source
-- or by exact start (a session read again).
CREATE INDEX connections_open ON connections (server_id) WHERE disconnected_at IS NULL;
CREATE INDEX connections_by_source ON connections (server_id, source);
CREATE INDEX connections_by_start ON connections (server_id, source_since);

-- Raw samples are rolled up in the order they were committed, not by the
-- time their poll began: `seq` only grows (AUTOINCREMENT never reuses a
-- number) and a row is visible only once committed by the one writer.
CREATE TABLE traffic_polls_new (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    server_id INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    at        INTEGER NOT NULL,
    data      TEXT    NOT NULL
);
-- Rows the old time mark already covered come first, so the new mark can
-- sit right after them.
INSERT INTO traffic_polls_new (server_id, at, data)
SELECT server_id, at, data FROM traffic_polls
 WHERE at < (SELECT rolled_up_to FROM rollup_state WHERE id = 1) ORDER BY rowid;
ALTER TABLE rollup_state ADD COLUMN rolled_up_seq INTEGER NOT NULL DEFAULT 0;
UPDATE rollup_state SET rolled_up_seq = (SELECT COALESCE(MAX(seq), 0) FROM traffic_polls_new) WHERE id = 1;
INSERT INTO traffic_polls_new (server_id, at, data)
SELECT server_id, at, data FROM traffic_polls
 WHERE at >= (SELECT rolled_up_to FROM rollup_state WHERE id = 1) ORDER BY rowid;
DROP TABLE traffic_polls;
ALTER TABLE traffic_polls_new RENAME TO traffic_polls;
CREATE INDEX traffic_polls_by_time ON traffic_polls (at);
