-- 1: the client's access (active or disabled) changed in the database and
-- its host has not confirmed it yet; the server's task applies it on its
-- next pass.
ALTER TABLE clients ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
-- How often a server was found to differ from the wanted state (a disabled
-- peer back on the host) and was set right again.
ALTER TABLE servers ADD COLUMN drift_count INTEGER NOT NULL DEFAULT 0 CHECK (drift_count >= 0);
