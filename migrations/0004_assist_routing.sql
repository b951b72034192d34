-- Assist requests are routed by the plan tier and the likely need of the platform user behind
-- a wearable: a wearable token may name that user (outreach `users.id`).
ALTER TABLE tokens ADD COLUMN subject TEXT;
