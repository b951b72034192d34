-- Proactive outreach, prediction: users, usage events, per user-topic feature state, models.
-- Portable across SQLite and PostgreSQL; flags are 0/1, times Unix milliseconds.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    tier TEXT NOT NULL DEFAULT 'free',
    tz TEXT NOT NULL DEFAULT 'UTC',
    phone TEXT,
    consent BIGINT NOT NULL DEFAULT 0,
    do_not_call BIGINT NOT NULL DEFAULT 0,
    sdk_version TEXT,
    sdk_seen_at BIGINT NOT NULL DEFAULT 0,
    -- When the reported version last changed; 0 while unknown.
    sdk_upgraded_at BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL
);

CREATE TABLE events (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    ts BIGINT NOT NULL,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    attrs TEXT NOT NULL,
    received_at BIGINT NOT NULL
);

CREATE INDEX events_by_time ON events (ts);

-- The running feature state of each (user, topic) (TopicState::encode), updated with every event.
CREATE TABLE topic_features (
    user_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    state TEXT NOT NULL,
    reference_ms BIGINT NOT NULL,
    PRIMARY KEY (user_id, topic)
);

CREATE TABLE models (
    id BIGINT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    active BIGINT NOT NULL DEFAULT 0,
    metrics TEXT NOT NULL,
    model TEXT NOT NULL
);
