-- A monthly limit's current period: when it began (Unix seconds) and the
-- client's lifetime bytes (sent + received) at that moment. NULL: no period
-- begun yet (the enforcer starts one on its next pass).
ALTER TABLE clients ADD COLUMN period_start INTEGER;
ALTER TABLE clients ADD COLUMN period_base INTEGER NOT NULL DEFAULT 0 CHECK (period_base >= 0);
