-- Operator API keys (issue #17) and the operator who acted in an audit
-- entry.
--
-- A key is stored by the SHA-256 of its text only (`hash`, hex). Names are
-- unique among all keys, revoked ones included; keys are never deleted.
-- Timestamps are INTEGER milliseconds since the Unix epoch (UTC);
-- `expires_at` NULL: never expires; `revoked_at` NULL: not revoked.
--
-- Applied inside a transaction: no BEGIN/COMMIT here. Never edit this file
-- once released; add a new migration instead.

CREATE TABLE operator_keys (
    id           TEXT    NOT NULL PRIMARY KEY,
    name         TEXT    NOT NULL UNIQUE,
    scope        TEXT    NOT NULL CHECK (scope IN ('read', 'write')),
    hash         TEXT    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER,
    revoked_at   INTEGER
) STRICT;

-- The operator key (its name) that acted; NULL for every other entry,
-- including all entries recorded before this migration.
ALTER TABLE audit_events ADD COLUMN operator TEXT;
