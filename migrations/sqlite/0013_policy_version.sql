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
CREATE TRIGGER policy_clients_changed AFTER UPDATE OF
    access, disabled_reason, pending, user_id, managed, deleted_at, traffic_limit, traffic_warn_threshold,
    limit_period, reset_day, expiry_date, warned_usage, warned_expiry_day, period_start, period_base
    ON clients BEGIN
    UPDATE servers SET policy_version = policy_version + 1 WHERE id IN (OLD.server_id, NEW.server_id);
END;
CREATE TRIGGER policy_users_changed AFTER UPDATE OF max_connections ON users BEGIN
    UPDATE servers SET policy_version = policy_version + 1
     WHERE id IN (SELECT server_id FROM clients WHERE user_id = NEW.id);
END;
CREATE TRIGGER policy_users_removed BEFORE DELETE ON users BEGIN
    UPDATE servers SET policy_version = policy_version + 1
     WHERE id IN (SELECT server_id FROM clients WHERE user_id = OLD.id);
END;
