-- Tokens, assist sessions, their participants and annotations.
-- Portable SQL: the same file runs on SQLite and PostgreSQL. Ids are chosen by the server
-- (random, below 2^53 so a browser can hold them exactly); times are Unix microseconds.

CREATE TABLE tokens (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE sessions (
    id BIGINT PRIMARY KEY,
    owner_token BIGINT NOT NULL REFERENCES tokens (id),
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_group BIGINT NOT NULL DEFAULT 0,
    ended_at BIGINT
);

CREATE TABLE participants (
    session_id BIGINT NOT NULL REFERENCES sessions (id),
    id BIGINT NOT NULL,
    token_id BIGINT NOT NULL REFERENCES tokens (id),
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    joined_at BIGINT NOT NULL,
    left_at BIGINT,
    PRIMARY KEY (session_id, id)
);

CREATE TABLE annotations (
    session_id BIGINT NOT NULL REFERENCES sessions (id),
    id BIGINT NOT NULL,
    author BIGINT NOT NULL,
    kind BIGINT NOT NULL,
    frame BIGINT NOT NULL,
    points TEXT NOT NULL,
    rgba BIGINT NOT NULL,
    width DOUBLE PRECISION NOT NULL,
    label TEXT NOT NULL,
    world_points TEXT,
    depth_source BIGINT,
    created_at BIGINT NOT NULL,
    erased_at BIGINT,
    PRIMARY KEY (session_id, id)
);
