-- Tokens may expire: µs since the Unix epoch, NULL for never.
ALTER TABLE tokens ADD COLUMN expires_at BIGINT;
