-- Proactive outreach, calling: the hold-out assignment and every planned call.
-- A call row and its Call-ID are written before the first message leaves, so a crash can
-- never dial the same call twice.

CREATE TABLE outreach_groups (
    user_id TEXT PRIMARY KEY,
    holdout BIGINT NOT NULL,
    assigned_at BIGINT NOT NULL
);

CREATE TABLE calls (
    id BIGINT PRIMARY KEY,
    user_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    probability DOUBLE PRECISION NOT NULL,
    priority DOUBLE PRECISION NOT NULL,
    reasons TEXT NOT NULL,
    -- 1 for a hold-out user's would-be call: planned like the others, never dialled.
    holdout BIGINT NOT NULL,
    -- planned, dialing, placed, answered, busy, no_answer, declined, not_found, failed,
    -- interrupted, holdout
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    due_at BIGINT NOT NULL,
    first_dialed_at BIGINT,
    call_id TEXT,
    claimed_by TEXT,
    disposition TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX calls_due ON calls (state, due_at);
CREATE INDEX calls_by_pair ON calls (user_id, topic);
