-- A token may be limited to one session (a colleague invited to it, a device for one job):
-- the session's id, NULL for none.
ALTER TABLE tokens ADD COLUMN session_id BIGINT;
