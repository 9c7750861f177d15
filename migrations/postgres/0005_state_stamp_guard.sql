-- A state row rewritten without a new stamp (by a panel from before
-- stamps, during a rolling upgrade) loses its stamp: no replica may take a
-- state it kept for the row's content afterwards.
CREATE FUNCTION server_state_stamp_guard() RETURNS trigger AS $$
BEGIN
    IF NEW.stamp = OLD.stamp THEN
        NEW.stamp := 0;
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER server_state_stamp_guard BEFORE UPDATE OF data ON server_state
FOR EACH ROW EXECUTE FUNCTION server_state_stamp_guard();
