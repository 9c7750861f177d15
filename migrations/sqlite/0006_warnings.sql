-- What the enforcer last warned a client about, so each warning is given
-- once: the threshold crossing ("<period>:<limit>") and the local day of the
-- last expiry warning.
ALTER TABLE clients ADD COLUMN warned_usage TEXT;
ALTER TABLE clients ADD COLUMN warned_expiry_day TEXT;
