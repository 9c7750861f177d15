-- A deleted client whose usage history is kept: the row stays for its
-- ledgers and sessions, and is left out of every list and pass.
ALTER TABLE clients ADD COLUMN deleted_at INTEGER;
