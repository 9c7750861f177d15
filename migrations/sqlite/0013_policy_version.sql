-- Bumped whenever anything an enforcement pass decides by changes for one of
-- the server's clients: its policy, access, owner, warnings, period, or the
-- owner's device limit. A pass that found nothing to do remembers the
-- version; while it is the same (and no new poll, no moment in time calls
-- for a look), the next pass need not read the clients again.
ALTER TABLE servers ADD COLUMN policy_version INTEGER NOT NULL DEFAULT 0;
CREATE TRIGGER policy_clients_added AFTER INSERT ON clients BEGIN
    UPDATE servers SET policy_version = policy_version + 1 WHERE id = NEW.server_id;
END;
CREATE TRIGGER policy_clients_removed AFTER DELETE ON clients BEGIN
    UPDATE servers SET policy_version = policy_version + 1 WHERE id = OLD.server_id;
END;
-- Only a real change counts: a statement that writes a value back unchanged
-- (as a poll matching OpenVPN usernames to users does) bumps nothing.
CREATE TRIGGER policy_clients_changed AFTER UPDATE ON clients
    WHEN OLD.access IS NOT NEW.access OR OLD.disabled_reason IS NOT NEW.disabled_reason
      OR OLD.pending IS NOT NEW.pending OR OLD.user_id IS NOT NEW.user_id OR OLD.managed IS NOT NEW.managed
      OR OLD.deleted_at IS NOT NEW.deleted_at OR OLD.traffic_limit IS NOT NEW.traffic_limit
      OR OLD.traffic_warn_threshold IS NOT NEW.traffic_warn_threshold OR OLD.limit_period IS NOT NEW.limit_period
      OR OLD.reset_day IS NOT NEW.reset_day OR OLD.expiry_date IS NOT NEW.expiry_date
      OR OLD.warned_usage IS NOT NEW.warned_usage OR OLD.warned_expiry_day IS NOT NEW.warned_expiry_day
      OR OLD.period_start IS NOT NEW.period_start OR OLD.period_base IS NOT NEW.period_base
      OR OLD.server_id IS NOT NEW.server_id
BEGIN
    UPDATE servers SET policy_version = policy_version + 1 WHERE id IN (OLD.server_id, NEW.server_id);
END;
CREATE TRIGGER policy_users_changed AFTER UPDATE ON users
    WHEN OLD.max_connections IS NOT NEW.max_connections
BEGIN
    UPDATE servers SET policy_version = policy_version + 1
     WHERE id IN (SELECT server_id FROM clients WHERE user_id = NEW.id);
END;
CREATE TRIGGER policy_users_removed BEFORE DELETE ON users BEGIN
    UPDATE servers SET policy_version = policy_version + 1
     WHERE id IN (SELECT server_id FROM clients WHERE user_id = OLD.id);
END;
