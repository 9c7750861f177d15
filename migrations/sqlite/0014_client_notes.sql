-- The admin's free-text note about a client (who has the device, why it has
-- a limit): plain text, shown as text, never sent to a host.
ALTER TABLE clients ADD COLUMN note TEXT;
