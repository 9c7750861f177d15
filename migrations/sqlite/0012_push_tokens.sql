-- The SHA-256 of the token a server's hooks push events with
-- (`POST /api/vpn-servers/{id}/events`); the token itself is shown once.
ALTER TABLE servers ADD COLUMN push_token_hash BLOB;
