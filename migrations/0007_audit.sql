-- The audit log: who signed in, joined, annotated, erased or cleared, and who created,
-- rotated or revoked credentials. Rows are only ever added, and removed by age
-- (`--audit-retention-days`); nothing updates them.
CREATE TABLE audit (
    id BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    -- The token that acted; NULL for the command line and for refused sign-ins.
    token_id BIGINT,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    session_id BIGINT,
    detail TEXT NOT NULL
);
CREATE INDEX audit_at ON audit (at);
