-- A state row rewritten without a new stamp (by a panel from before
-- stamps, during a rolling upgrade) loses its stamp: no replica may take a
-- state it kept for the row's content afterwards.
CREATE TRIGGER server_state_stamp_guard AFTER UPDATE OF data ON server_state
WHEN NEW.stamp = OLD.stamp AND NEW.stamp <> 0
BEGIN
    UPDATE server_state SET stamp = 0 WHERE server_id = NEW.server_id;
END;
